//! Engine events and states as the JSON objects the JavaScript layer turns into DOM events (camelCase fields, SPEC stable names).
//!
//! Names go through the engine's `as_str()` / `name()`, and variants this module does not
//! know yet fall through wildcard arms, so a cause, state field or event the engine gains
//! reaches JavaScript by its stable name without a change here.
//!
//! The JSON text is written directly ([`Obj`]) and parsed once by JavaScript's own
//! `JSON.parse`: no `serde_json::Value` tree is built per event, which keeps both the work
//! per message and the browser module small. Only a message's `data` goes through
//! `serde_json` (the engine's own serializer).

use core::time::Duration;
use tether_engine::{Cause, DropReason, Event, State};

/// A JSON object being written: `{"k":v,...}`.
pub(crate) struct Obj(String);

impl Obj {
    pub(crate) fn new() -> Obj {
        Obj(String::from("{"))
    }

    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        string_into(&mut self.0, k);
        self.0.push(':');
    }

    pub(crate) fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        string_into(&mut self.0, v);
        self
    }

    pub(crate) fn num(mut self, k: &str, v: u64) -> Obj {
        self.key(k);
        self.0.push_str(&v.to_string());
        self
    }

    pub(crate) fn opt_num(self, k: &str, v: Option<u64>) -> Obj {
        match v {
            Some(v) => self.num(k, v),
            None => self.raw(k, "null"),
        }
    }

    /// A duration in milliseconds, to the microsecond (`23.418`).
    pub(crate) fn ms(mut self, k: &str, d: Duration) -> Obj {
        self.key(k);
        let us = d.as_micros();
        self.0.push_str(&(us / 1000).to_string());
        let frac = us % 1000;
        if frac != 0 {
            let f = format!("{:03}", frac);
            self.0.push('.');
            self.0.push_str(f.trim_end_matches('0'));
        }
        self
    }

    /// `v`, already JSON.
    pub(crate) fn raw(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        self.0.push_str(v);
        self
    }

    pub(crate) fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `s` as a JSON string (RFC 8259 escapes).
fn string_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[(c as usize) >> 4]));
                out.push(char::from(HEX[(c as usize) & 15]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A cause: `{name}`, plus `code` for `transport_closed` (the close code, or null) and
/// `terminal` (the ERR-1 code).
pub fn cause_json(c: &Cause) -> String {
    let o = Obj::new().str("name", c.as_str());
    #[allow(unreachable_patterns)]
    let o = match c {
        Cause::TransportClosed { code } => o.opt_num("code", code.map(u64::from)),
        Cause::Terminal { code } => o.str("code", code.as_str()),
        _ => o,
    };
    o.end()
}

/// A state: `{name}` plus the fields of its variant (STATE-1).
pub fn state_json(s: &State) -> String {
    let o = Obj::new().str("name", s.name());
    #[allow(unreachable_patterns)]
    let o = match s {
        State::Connecting { attempt, transport } => o
            .num("attempt", u64::from(*attempt))
            .str("transport", transport.as_str()),
        State::Connected { transport } => o.str("transport", transport.as_str()),
        State::Degraded { transport, reason } => o
            .str("transport", transport.as_str())
            .str("reason", reason.as_str()),
        State::Reconnecting {
            attempt,
            delay,
            cause,
        } => {
            let o = o.num("attempt", u64::from(*attempt));
            let o = match delay {
                Some(d) => o.ms("delayMs", *d),
                None => o.raw("delayMs", "null"),
            };
            o.raw("cause", &cause_json(cause))
        }
        State::Failed { reason } => o.str("reason", reason.as_str()),
        _ => o,
    };
    o.end()
}

/// A JSON number for `x` (`null` when it is not finite), by the engine's serializer.
fn float(x: f64) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

/// One event as JSON, or `None` for an event this version does not forward.
pub fn event_json(ev: &Event) -> Option<String> {
    let o = Obj::new();
    #[allow(unreachable_patterns)]
    let o = match ev {
        Event::StateChanged { from, to, cause } => o
            .str("type", "statechange")
            .raw("from", &state_json(from))
            .raw("to", &state_json(to))
            .raw("cause", &cause_json(cause)),
        Event::ReconnectScheduled {
            attempt,
            delay,
            cause,
        } => o
            .str("type", "reconnectscheduled")
            .num("attempt", u64::from(*attempt))
            .ms("delayMs", *delay)
            .raw("cause", &cause_json(cause)),
        Event::TransportSelected { transport } => o
            .str("type", "transport")
            .str("transport", transport.as_str()),
        Event::Message { channel, seq, data } => o
            .str("type", "message")
            .str("channel", channel)
            .num("seq", *seq)
            .raw(
                "data",
                &serde_json::to_string(data).unwrap_or_else(|_| "null".into()),
            ),
        Event::Reset { channel, reason } => o
            .str("type", "reset")
            .str("channel", channel)
            .str("reason", reason.as_str()),
        Event::Acked { id, seq } => o.str("type", "ack").str("id", id).opt_num("seq", *seq),
        Event::Dropped { id, reason } => {
            let o = o
                .str("reason", reason.as_str())
                .str("type", "drop")
                .str("id", id);
            match reason {
                DropReason::Rejected { code } => o.str("code", code),
                _ => o,
            }
        }
        Event::Fallback { from, to, reason } => o
            .str("type", "fallback")
            .str("from", from.as_str())
            .str("to", to.as_str())
            .str("reason", reason.as_str()),
        Event::PolicyApplied { clamped } => {
            let mut list = String::from("[");
            for (i, c) in clamped.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(
                    &Obj::new()
                        .str("field", c.field)
                        .raw("requested", &float(c.requested))
                        .raw("applied", &float(c.applied))
                        .end(),
                );
            }
            list.push(']');
            o.str("type", "policy").raw("clamped", &list)
        }
        Event::Error { code, detail } => o
            .str("type", "error")
            .str("code", code.as_str())
            .str("detail", detail),
        _ => return None,
    };
    Some(o.end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tether_engine::{ErrorCode, TransportKind};

    fn parse(text: Option<String>) -> Value {
        serde_json::from_str(&text.expect("an event")).expect("valid JSON")
    }

    #[test]
    fn wire_1_event_text_is_valid_json_with_exact_values() {
        let v = parse(event_json(&Event::Message {
            channel: "c".into(),
            seq: 7,
            data: json!({"t": "a\"b\\c\n\u{1}é", "n": [1.5, -2, null]}),
        }));
        assert_eq!(
            v["data"],
            json!({"t": "a\"b\\c\n\u{1}é", "n": [1.5, -2, null]})
        );
        let v = parse(event_json(&Event::Error {
            code: ErrorCode::FrameMalformed,
            detail: "bad \"frame\"\t\u{1f}".into(),
        }));
        assert_eq!(v["detail"], "bad \"frame\"\t\u{1f}");
        let v = parse(event_json(&Event::ReconnectScheduled {
            attempt: 2,
            delay: Duration::from_micros(1_500),
            cause: Cause::Backoff,
        }));
        assert_eq!(v["delayMs"], 1.5);
        let v = parse(event_json(&Event::ReconnectScheduled {
            attempt: 2,
            delay: Duration::from_millis(40),
            cause: Cause::Backoff,
        }));
        assert_eq!(v["delayMs"], 40);
        let v = parse(event_json(&Event::PolicyApplied {
            clamped: vec![tether_engine::policy::Clamp {
                field: "floor_ms",
                requested: 1.0,
                applied: 100.0,
            }],
        }));
        assert_eq!(
            v["clamped"],
            json!([{"field": "floor_ms", "requested": 1.0, "applied": 100.0}])
        );
        assert_eq!(
            parse(event_json(&Event::Acked {
                id: "k".into(),
                seq: None
            })),
            json!({"type": "ack", "id": "k", "seq": null})
        );
    }

    #[test]
    fn state_2_transitions_carry_from_to_and_cause() {
        let v = parse(event_json(&Event::StateChanged {
            from: State::Connected {
                transport: TransportKind::WebSocket,
            },
            to: State::Reconnecting {
                attempt: 1,
                delay: Some(Duration::from_micros(23_418)),
                cause: Cause::TransportClosed { code: Some(4000) },
            },
            cause: Cause::TransportClosed { code: Some(4000) },
        }));
        assert_eq!(v["type"], "statechange");
        assert_eq!(
            v["from"],
            json!({"name": "connected", "transport": "websocket"})
        );
        assert_eq!(v["to"]["name"], "reconnecting");
        assert_eq!(v["to"]["delayMs"], 23.418);
        assert_eq!(
            v["cause"],
            json!({"name": "transport_closed", "code": 4000})
        );
    }

    #[test]
    fn state_1_every_state_has_its_fields() {
        assert_eq!(
            parse(Some(state_json(&State::Idle))),
            json!({"name": "idle"})
        );
        assert_eq!(
            parse(Some(state_json(&State::Reconnecting {
                attempt: 0,
                delay: None,
                cause: Cause::NetworkOffline
            }))),
            json!({"name": "reconnecting", "attempt": 0, "delayMs": null, "cause": {"name": "network_offline"}})
        );
        assert_eq!(
            parse(Some(state_json(&State::Failed {
                reason: ErrorCode::Forbidden
            }))),
            json!({"name": "failed", "reason": "forbidden"})
        );
        assert_eq!(
            parse(Some(cause_json(&Cause::Terminal {
                code: ErrorCode::NotFound
            }))),
            json!({"name": "terminal", "code": "not_found"})
        );
    }

    #[test]
    fn outbox_6_drops_carry_reason_and_code() {
        let v = parse(event_json(&Event::Dropped {
            id: "k".into(),
            reason: DropReason::Rejected {
                code: "forbidden".into(),
            },
        }));
        assert_eq!(
            v,
            json!({"type": "drop", "id": "k", "reason": "rejected", "code": "forbidden"})
        );
    }
}
