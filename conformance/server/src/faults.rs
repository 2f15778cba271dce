//! The fault catalogue (a serde enum scenario files can hold) and the runtime plan of one-shot and persistent faults.
//!
//! JSON shape: the fault's fields, its name under `"fault"`, and optionally `"transport"`
//! (`websocket`, `sse`, `long_poll`, `send`; absent = the three stream transports),
//! `"count"` (apply to the next N matching handshakes; absent = persistent until cleared) and
//! `"every_request"` (also match long-poll polls without `hello=1`), e.g.
//! `{"fault":"close_after_hello","code":4001,"transport":"websocket","count":1}`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Which requests a fault matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// `GET /ws`.
    #[serde(rename = "websocket", alias = "web_socket")]
    WebSocket,
    /// `GET /sse`.
    Sse,
    /// `GET /poll`.
    #[serde(alias = "longpoll", alias = "poll")]
    LongPoll,
    /// `POST /send`.
    Send,
}

impl FaultTarget {
    /// Stable name, as in the observation log.
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultTarget::WebSocket => "websocket",
            FaultTarget::Sse => "sse",
            FaultTarget::LongPoll => "long_poll",
            FaultTarget::Send => "send",
        }
    }
}

/// Kinds of malformed output for [`Fault::Malformed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// Random-looking bytes: a binary WebSocket message, raw bytes in an SSE `data:` line, a
    /// long-poll body that is not JSON.
    GarbageBytes,
    /// Invalid UTF-8 where text is expected (a WebSocket text frame, an SSE line, a poll body).
    InvalidUtf8,
    /// Text that is not JSON.
    NonJson,
    /// A JSON object without `type`.
    NoType,
    /// A known type with missing fields (`{"type":"msg","channel":"x"}`).
    BadFields,
    /// An unknown frame type (must be ignored by the client, WIRE-5).
    UnknownType,
}

/// One fault of the catalogue. Stream faults act on the connection the handshake opens;
/// "actions" (`restart`, `drain`, `undrain`, `stop_listening`, `resume_listening`,
/// `expire_token`, `clear`) act once, as soon as they are applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Accept TCP connections and drop them at once (RST), before any HTTP. Matches every
    /// TCP connection whatever `transport` says.
    RefuseTcp,
    /// Action: close the listening socket (connection refused); reopen after `for_ms`, or on
    /// `resume_listening`/`clear`.
    StopListening {
        /// Reopen after this many milliseconds.
        #[serde(default)]
        for_ms: Option<u64>,
    },
    /// Action: reopen the listening socket.
    ResumeListening,
    /// Answer the handshake with `status` and no `Tether-Error` header, like a proxy (FALLBACK-2a).
    RefuseUpgrade {
        /// The HTTP status (default 403).
        #[serde(default = "default_refuse_status")]
        status: u16,
    },
    /// Read the handshake request and never answer it (the TCP connection stays open).
    SwallowUpgrade,
    /// WebSocket: upgrade, then close with `code`/`reason` before the hello (e.g. 4009 with a
    /// delay). SSE: end the stream before the hello. Long-poll: cut the connection.
    CloseBeforeHello {
        /// The WebSocket close code.
        code: u16,
        /// The close reason.
        #[serde(default)]
        reason: String,
    },
    /// Send the hello and `subscribed` frames, then after `after_ms` close: WebSocket with
    /// `code`/`reason`, SSE by ending the stream, long-poll by cutting the next poll.
    CloseAfterHello {
        /// The WebSocket close code.
        code: u16,
        /// The close reason.
        #[serde(default)]
        reason: String,
        /// Delay after the hello.
        #[serde(default)]
        after_ms: u64,
    },
    /// After the hello (and `after_ms`), send half a frame and cut TCP.
    DropMidFrame {
        /// Delay after the hello.
        #[serde(default)]
        after_ms: u64,
    },
    /// After the hello (and `after_ms`), stop sending anything (no heartbeat either), ignore
    /// input, keep the socket open. Long-poll: the next polls are never answered.
    Blackhole {
        /// Delay after the hello.
        #[serde(default)]
        after_ms: u64,
    },
    /// SSE: hold all output (headers are sent) until `events` events were produced or `ms`
    /// passed, then flush it in one write and end the response, like a buffering CDN.
    BufferSse {
        /// Flush and end after this many events.
        #[serde(default)]
        events: Option<usize>,
        /// Flush and end after this many milliseconds.
        #[serde(default)]
        ms: Option<u64>,
    },
    /// Answer 200 with this content type (default `text/html`) and an HTML body.
    WrongContentType {
        /// The content type.
        #[serde(default = "default_html")]
        content_type: String,
    },
    /// Answer with an arbitrary status, headers and body (add `Tether-Error` yourself to look
    /// like the server).
    Status {
        /// The HTTP status.
        status: u16,
        /// Extra headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// The body.
        #[serde(default)]
        body: String,
    },
    /// Redirect (default 302) to `location`, default: the same endpoint under the alternate
    /// base path (`/tether-alt`), which works normally.
    Redirect {
        /// The redirect status.
        #[serde(default = "default_redirect_status")]
        status: u16,
        /// The `Location` header.
        #[serde(default)]
        location: Option<String>,
    },
    /// After the hello and `subscribed` frames, send `frames` malformed frames of `kind`,
    /// then go on normally.
    Malformed {
        /// What to send.
        kind: MalformedKind,
        /// How many.
        #[serde(default = "default_one")]
        frames: usize,
    },
    /// After the hello, send one frame (WebSocket), SSE line or poll body of `bytes` bytes
    /// (at most 64 MiB).
    Oversized {
        /// The size.
        #[serde(default = "default_oversized")]
        bytes: usize,
    },
    /// SSE: send `retry: <value>` right after the hello.
    SseRetry {
        /// The raw value (e.g. `abc`, `-5`, `99999999999`).
        value: String,
    },
    /// Refuse the handshake with a `retry_later{after_ms}` frame instead of the hello, then
    /// close (WebSocket 1000, SSE end of stream, long-poll answer `[retry_later]`).
    RetryLater {
        /// The hint.
        after_ms: u64,
    },
    /// WebSocket/SSE: deliver the `msg` frames of `channel` (absent: every channel) out of
    /// order: each group of `window` consecutive messages is sent reversed (window 2 swaps
    /// adjacent pairs: N+1 before N). A group still incomplete `flush_ms` after its first
    /// message is sent reversed as it is (ORDER-3).
    Reorder {
        /// The channel (absent: every channel).
        #[serde(default)]
        channel: Option<String>,
        /// Messages per reversed group (at least 2).
        #[serde(default = "default_two")]
        window: usize,
        /// Send an incomplete group after this many milliseconds.
        #[serde(default = "default_flush_ms")]
        flush_ms: u64,
    },
    /// WebSocket/SSE: let `after` messages of `channel` (absent: every channel) through,
    /// then withhold the next `skip` (a gap in `seq`); later messages go on normally. The
    /// withheld ones are sent, in order, `deliver_after_ms` after the first was withheld
    /// (the gap fills late, ORDER-3), or never when absent (ORDER-4). (`skip`, not `count`:
    /// `count` is the rule's own field.)
    SkipSeq {
        /// The channel (absent: every channel).
        #[serde(default)]
        channel: Option<String>,
        /// How many messages to withhold.
        #[serde(default = "default_one")]
        skip: usize,
        /// Messages let through before the gap.
        #[serde(default)]
        after: usize,
        /// Send the withheld messages this long after the first was withheld.
        #[serde(default)]
        deliver_after_ms: Option<u64>,
    },
    /// Answer publishes with a non-terminal `error{code, id}` instead of storing and acking
    /// them (OUTBOX-7). WebSocket: every publish of the connection; `send`: every publish of
    /// the `POST /send` (each POST consumes one of `count`).
    RejectPublish {
        /// The error code.
        code: String,
    },
    /// Store the next publish (WebSocket frame or `POST /send`), then cut the connection
    /// before its `ack` goes out: the client never hears of it and sends it again, maybe
    /// through another instance, which must deduplicate it (OUTBOX-4/5). Taken when a
    /// publish arrives, so it acts on live connections too; `count` publishes (default: all).
    DropAck,
    /// After the hello and `subscribed` frames, send `error{code, message?, id?, terminal}`
    /// (ERR-3), then go on normally. Long-poll: appended to the hello poll's answer.
    ErrorFrame {
        /// The error code.
        code: String,
        /// The `terminal` flag.
        #[serde(default)]
        terminal: bool,
        /// The `id` field (a publish id).
        #[serde(default)]
        id: Option<String>,
        /// The `message` field.
        #[serde(default)]
        message: Option<String>,
    },
    /// WebSocket/SSE: after `after` messages, every `msg` carries a cursor of `bytes` bytes
    /// (the real cursor, then an unreadable padding; at most 1 MiB), also as the SSE `id:`
    /// (LIMIT-4). A client that kept it and resumed with it gets its channels reset.
    LongCursor {
        /// The cursor length (LIMIT-4 limit: 1,024).
        #[serde(default = "default_long_cursor")]
        bytes: usize,
        /// Messages sent with their real cursor first.
        #[serde(default)]
        after: usize,
    },
    /// SSE: write these raw chunks (JSON strings: any text, `\r`, `\ufeff`...) one per
    /// write, `gap_ms` apart, after the hello and `subscribed` events; then go on normally,
    /// or end the response when `end`. Placeholders: `${hello}` (the hello frame's JSON;
    /// when a chunk holds it the server sends no handshake events of its own),
    /// `${subscribed}` (the `subscribed` events, encoded) and `${cursor}` (the hello's cursor).
    SseRaw {
        /// The chunks, written one by one.
        chunks: Vec<String>,
        /// Pause between chunks.
        #[serde(default = "default_chunk_gap")]
        gap_ms: u64,
        /// End the response after the last chunk.
        #[serde(default)]
        end: bool,
    },
    /// Action: drop every connection; `lose_state` replaces the store by an empty one with a
    /// new epoch; `down_ms` keeps the listener closed that long.
    Restart {
        /// Lose all channel state (new epoch: cursors get `reset`).
        #[serde(default)]
        lose_state: bool,
        /// Stay unreachable this long.
        #[serde(default)]
        down_ms: u64,
    },
    /// Action: drain (DRAIN-1/3).
    Drain {
        /// Window start.
        from_ms: u64,
        /// Window end.
        to_ms: u64,
    },
    /// Action: accept handshakes again.
    Undrain,
    /// Action: expire a token (AUTH-2).
    ExpireToken {
        /// The token.
        token: String,
    },
    /// Action: remove every queued fault and reopen the listener.
    Clear,
}

fn default_refuse_status() -> u16 {
    403
}
fn default_redirect_status() -> u16 {
    302
}
fn default_html() -> String {
    "text/html".into()
}
fn default_one() -> usize {
    1
}
fn default_two() -> usize {
    2
}
fn default_flush_ms() -> u64 {
    500
}
fn default_long_cursor() -> usize {
    2048
}
fn default_chunk_gap() -> u64 {
    15
}
fn default_oversized() -> usize {
    10 * 1024 * 1024
}

/// Largest oversized output the server produces.
pub const MAX_OVERSIZED: usize = 64 * 1024 * 1024;

impl Fault {
    /// The fault's name (the `fault` tag).
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("fault").and_then(|f| f.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }

    /// True for faults that act once when applied rather than on a connection.
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Fault::StopListening { .. }
                | Fault::ResumeListening
                | Fault::Restart { .. }
                | Fault::Drain { .. }
                | Fault::Undrain
                | Fault::ExpireToken { .. }
                | Fault::Clear
        )
    }

    /// True when the fault can act on `target`.
    pub fn applies_to(&self, target: FaultTarget) -> bool {
        match self {
            Fault::BufferSse { .. } | Fault::SseRetry { .. } | Fault::SseRaw { .. } => {
                target == FaultTarget::Sse
            }
            Fault::Reorder { .. } | Fault::SkipSeq { .. } | Fault::LongCursor { .. } => {
                matches!(target, FaultTarget::WebSocket | FaultTarget::Sse)
            }
            Fault::RejectPublish { .. } => {
                matches!(target, FaultTarget::WebSocket | FaultTarget::Send)
            }
            Fault::RefuseUpgrade { .. }
            | Fault::SwallowUpgrade
            | Fault::Status { .. }
            | Fault::Redirect { .. }
            | Fault::WrongContentType { .. } => true,
            Fault::RefuseTcp | Fault::DropAck => false,
            f if f.is_action() => false,
            _ => target != FaultTarget::Send,
        }
    }
}

/// A fault with its matching rules (the unit of scenario data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
    /// The target; absent = `websocket`, `sse` and `long_poll`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<FaultTarget>,
    /// Apply to the next `count` matching handshakes; absent = persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Also match long-poll polls without `hello=1` (and every `POST /send`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub every_request: bool,
}

impl FaultRule {
    /// A persistent rule for every stream transport.
    pub fn always(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            transport: None,
            count: None,
            every_request: false,
        }
    }
    /// A rule for the next `count` handshakes of `transport`.
    pub fn next(transport: FaultTarget, count: u32, fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            transport: Some(transport),
            count: Some(count),
            every_request: false,
        }
    }
    /// Limit to `transport`.
    pub fn on(mut self, transport: FaultTarget) -> FaultRule {
        self.transport = Some(transport);
        self
    }
    /// Apply `count` times.
    pub fn times(mut self, count: u32) -> FaultRule {
        self.count = Some(count);
        self
    }

    fn matches(&self, target: FaultTarget, handshake: bool) -> bool {
        let transport_ok = match self.transport {
            Some(t) => t == target,
            None => target != FaultTarget::Send,
        };
        transport_ok
            && (handshake || self.every_request || target == FaultTarget::Send)
            && self.fault.applies_to(target)
    }
}

/// The queue of rules in force, in the order they were added.
#[derive(Default)]
pub struct FaultPlan {
    rules: Mutex<Vec<FaultRule>>,
}

impl FaultPlan {
    fn lock(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace every rule.
    pub fn set(&self, rules: Vec<FaultRule>) {
        *self.lock() = rules
            .into_iter()
            .filter(|r| !r.fault.is_action() && r.count != Some(0))
            .collect();
    }

    /// Add a rule at the end.
    pub fn push(&self, rule: FaultRule) {
        if !rule.fault.is_action() && rule.count != Some(0) {
            self.lock().push(rule);
        }
    }

    /// Remove every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The rules in force (with their remaining counts).
    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// Take the first rule matching a request of `target` (`handshake`: it opens a
    /// connection), consuming one of its count.
    pub fn take(&self, target: FaultTarget, handshake: bool) -> Option<Fault> {
        self.take_where(|r| r.matches(target, handshake))
    }

    /// Take a `drop_ack` rule for a publish arriving on `target` (`websocket` or `send`;
    /// a rule without transport matches both).
    pub fn take_drop_ack(&self, target: FaultTarget) -> bool {
        self.take_where(|r| {
            matches!(r.fault, Fault::DropAck)
                && r.transport.map_or(
                    matches!(target, FaultTarget::WebSocket | FaultTarget::Send),
                    |t| t == target,
                )
        })
        .is_some()
    }

    /// Take a `refuse_tcp` rule, if any (checked on every accepted TCP connection).
    pub fn take_tcp(&self) -> bool {
        self.take_where(|r| matches!(r.fault, Fault::RefuseTcp))
            .is_some()
    }

    fn take_where(&self, pred: impl Fn(&FaultRule) -> bool) -> Option<Fault> {
        let mut rules = self.lock();
        let i = rules.iter().position(pred)?;
        let fault = rules[i].fault.clone();
        if let Some(n) = rules[i].count.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rules.remove(i);
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let r: FaultRule = serde_json::from_str(
            r#"{"fault":"close_after_hello","code":4001,"transport":"websocket","count":1}"#,
        )
        .expect("parse");
        assert_eq!(
            r,
            FaultRule::next(
                FaultTarget::WebSocket,
                1,
                Fault::CloseAfterHello {
                    code: 4001,
                    reason: String::new(),
                    after_ms: 0
                }
            )
        );
        let back = serde_json::to_value(&r).expect("ser");
        assert_eq!(back["fault"], "close_after_hello");
        assert_eq!(back["transport"], "websocket");
        let m: FaultRule =
            serde_json::from_str(r#"{"fault":"malformed","kind":"invalid_utf8"}"#).expect("parse");
        assert_eq!(
            m.fault,
            Fault::Malformed {
                kind: MalformedKind::InvalidUtf8,
                frames: 1
            }
        );
        let s: FaultRule =
            serde_json::from_str(r#"{"fault":"status","status":502,"headers":{"x":"y"}}"#)
                .expect("parse");
        assert!(matches!(s.fault, Fault::Status { status: 502, .. }));
        assert!(serde_json::from_str::<FaultRule>(r#"{"fault":"nope"}"#).is_err());
    }

    #[test]
    fn counts_and_targets() {
        let plan = FaultPlan::default();
        plan.push(FaultRule::next(FaultTarget::Sse, 2, Fault::SwallowUpgrade));
        plan.push(
            FaultRule::always(Fault::RefuseUpgrade { status: 403 }).on(FaultTarget::WebSocket),
        );
        assert_eq!(plan.take(FaultTarget::LongPoll, true), None);
        assert_eq!(
            plan.take(FaultTarget::Sse, true),
            Some(Fault::SwallowUpgrade)
        );
        assert_eq!(
            plan.take(FaultTarget::Sse, true),
            Some(Fault::SwallowUpgrade)
        );
        assert_eq!(plan.take(FaultTarget::Sse, true), None);
        for _ in 0..3 {
            assert_eq!(
                plan.take(FaultTarget::WebSocket, true),
                Some(Fault::RefuseUpgrade { status: 403 })
            );
        }
        assert!(!plan.take_tcp());
    }
}
