//! Records and enums that cross the FFI, and their mapping from the `tether` types: the one
//! place where new engine variants are wired.
//!
//! Error codes (SPEC ERR-1) cross as their stable strings, so a new `ErrorCode` needs no change
//! here. A new unit `Cause` is one name in the `causes!` list; until then it arrives as
//! `Cause::Other { name }`. A new engine `Event` arrives as `Event::Other { name }` until it
//! gets a variant here. Every enum has `stable_name()`: the SPEC's snake_case name.

use std::time::Duration;

/// JSON text. Kotlin and Swift see a `String`; Python sees the parsed value (`json.loads`),
/// see `uniffi.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json(pub String);

uniffi::custom_newtype!(Json, String);

impl From<&serde_json::Value> for Json {
    fn from(v: &serde_json::Value) -> Json {
        Json(v.to_string())
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One rung of the transport ladder (FALLBACK-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum TransportKind {
    WebSocket,
    Sse,
    LongPoll,
}

impl From<tether::TransportKind> for TransportKind {
    fn from(t: tether::TransportKind) -> TransportKind {
        match t {
            tether::TransportKind::WebSocket => TransportKind::WebSocket,
            tether::TransportKind::Sse => TransportKind::Sse,
            tether::TransportKind::LongPoll => TransportKind::LongPoll,
        }
    }
}

impl From<TransportKind> for tether::TransportKind {
    fn from(t: TransportKind) -> tether::TransportKind {
        match t {
            TransportKind::WebSocket => tether::TransportKind::WebSocket,
            TransportKind::Sse => tether::TransportKind::Sse,
            TransportKind::LongPoll => tether::TransportKind::LongPoll,
        }
    }
}

#[uniffi::export]
impl TransportKind {
    /// `websocket`, `sse` or `long_poll`.
    pub fn stable_name(&self) -> String {
        tether::TransportKind::from(*self).as_str().to_owned()
    }
}

/// Connectivity as the app sees it (NET-1..3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Network {
    /// Connectivity is back: an attempt is scheduled at `U(0, base)` (NET-2).
    Online,
    /// No connectivity: the transport is closed and attempts stop (NET-1).
    Offline,
    /// Another network (Wi-Fi to cellular): reconnect make-before-break (NET-3).
    Changed,
}

impl From<Network> for tether::Network {
    fn from(n: Network) -> tether::Network {
        match n {
            Network::Online => tether::Network::Online,
            Network::Offline => tether::Network::Offline,
            Network::Changed => tether::Network::Changed,
        }
    }
}

/// What a full outbox does (OUTBOX-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DropPolicy {
    /// Drop the oldest queued publishes (default).
    DropOldest,
    /// Refuse the new publish with `outbox_full`.
    RejectNew,
}

impl From<DropPolicy> for tether::DropPolicy {
    fn from(p: DropPolicy) -> tether::DropPolicy {
        match p {
            DropPolicy::DropOldest => tether::DropPolicy::DropOldest,
            DropPolicy::RejectNew => tether::DropPolicy::RejectNew,
        }
    }
}

/// The application's policy overrides (BACKOFF-9): every field is optional (`None` keeps the
/// server's value or the default), validated but not clamped. Same names as the hello's
/// `policy` (BACKOFF-8).
#[derive(Clone, Debug, Default, PartialEq, uniffi::Record)]
pub struct PolicyOverrides {
    #[uniffi(default)]
    pub floor_ms: Option<f64>,
    #[uniffi(default)]
    pub base_ms: Option<f64>,
    #[uniffi(default)]
    pub cap_ms: Option<f64>,
    #[uniffi(default)]
    pub multiplier: Option<f64>,
    #[uniffi(default)]
    pub max_attempts: Option<f64>,
    #[uniffi(default)]
    pub max_elapsed_ms: Option<f64>,
    #[uniffi(default)]
    pub heartbeat_ms: Option<f64>,
    #[uniffi(default)]
    pub heartbeat_grace_ms: Option<f64>,
    #[uniffi(default)]
    pub open_timeout_ms: Option<f64>,
    #[uniffi(default)]
    pub poll_hold_ms: Option<f64>,
    #[uniffi(default)]
    pub probe_interval_ms: Option<f64>,
    #[uniffi(default)]
    pub upgrade_after_ms: Option<f64>,
    #[uniffi(default)]
    pub outbox_max_count: Option<f64>,
    #[uniffi(default)]
    pub outbox_max_bytes: Option<f64>,
    #[uniffi(default)]
    pub outbox_max_age_ms: Option<f64>,
}

impl From<PolicyOverrides> for tether::PolicyWire {
    fn from(p: PolicyOverrides) -> tether::PolicyWire {
        tether::PolicyWire {
            floor_ms: p.floor_ms,
            base_ms: p.base_ms,
            cap_ms: p.cap_ms,
            multiplier: p.multiplier,
            max_attempts: p.max_attempts,
            max_elapsed_ms: p.max_elapsed_ms,
            heartbeat_ms: p.heartbeat_ms,
            heartbeat_grace_ms: p.heartbeat_grace_ms,
            open_timeout_ms: p.open_timeout_ms,
            poll_hold_ms: p.poll_hold_ms,
            probe_interval_ms: p.probe_interval_ms,
            upgrade_after_ms: p.upgrade_after_ms,
            outbox_max_count: p.outbox_max_count,
            outbox_max_bytes: p.outbox_max_bytes,
            outbox_max_age_ms: p.outbox_max_age_ms,
        }
    }
}

/// Declares [`Cause`] with its unit variants listed once, so a new unit cause in the engine is
/// one name here (its stable name comes from the engine's `as_str`). The engine's full list is
/// `tether::Cause::KINDS`; a test here and one per language fail while the two differ.
macro_rules! causes {
    ($($(#[$doc:meta])* $unit:ident),* $(,)?) => {
        /// Why a transition happened (STATE-2); `stable_name()` is the SPEC's name.
        #[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
        pub enum Cause {
            $($(#[$doc])* $unit,)*
            /// The transport closed, with the WebSocket close code when there was one.
            TransportClosed { code: Option<u16> },
            /// A terminal failure, with its ERR-1 code (CONN-5).
            Terminal { code: String },
            /// A cause these bindings do not name yet (newer engine), by its stable name.
            Other { name: String },
        }

        impl From<&tether::Cause> for Cause {
            fn from(c: &tether::Cause) -> Cause {
                match c {
                    $(tether::Cause::$unit => Cause::$unit,)*
                    tether::Cause::TransportClosed { code } => Cause::TransportClosed { code: *code },
                    tether::Cause::Terminal { code } => Cause::Terminal { code: code.as_str().to_owned() },
                    // Causes added to the engine after these bindings: kept by name.
                    #[allow(unreachable_patterns)]
                    other => Cause::Other { name: other.as_str().to_owned() },
                }
            }
        }

        impl Cause {
            fn name(&self) -> String {
                match self {
                    $(Cause::$unit => tether::Cause::$unit.as_str().to_owned(),)*
                    Cause::TransportClosed { code } => tether::Cause::TransportClosed { code: *code }.as_str().to_owned(),
                    Cause::Terminal { .. } => "terminal".to_owned(),
                    Cause::Other { name } => name.clone(),
                }
            }

            /// The stable names of every kind these bindings name (not `Other`).
            #[cfg(test)]
            fn kind_names() -> Vec<String> {
                let mut names = vec![$(tether::Cause::$unit.as_str().to_owned(),)*];
                names.push("transport_closed".to_owned());
                names.push("terminal".to_owned());
                names
            }
        }
    };
}

causes!(
    /// `connect()` was called (CONN-1).
    UserConnect,
    /// `close()` was called (CONN-3).
    UserClose,
    /// The server's hello arrived: the connection is up (CONN-2).
    Hello,
    /// The transport failed without a close (a refused connection, a reset, a failed request).
    TransportError,
    /// No frame within the heartbeat interval plus grace (HEARTBEAT-1).
    HeartbeatTimeout,
    /// The server announced a drain (DRAIN-1): reconnect elsewhere.
    Drain,
    /// The server said retry later (`retry_after`, 503 + Retry-After; BACKOFF-4).
    RetryLater,
    /// A readiness probe answered ready and moved the attempt earlier (READY-4).
    Ready,
    /// The token was refused as expired: fetched again with `forced` (AUTH-2).
    AuthExpired,
    /// The app reported no connectivity (NET-1).
    NetworkOffline,
    /// The app reported connectivity back (NET-2).
    NetworkOnline,
    /// The transport is blocked on this network (FALLBACK-2): the ladder moves down.
    Blocked,
    /// The attempt did not open within `open_timeout` (FALLBACK-2).
    SlowOpen,
    /// The server broke the protocol (WIRE-6).
    ProtocolError,
    /// `max_attempts` or `max_elapsed` was reached (BACKOFF-6).
    AttemptsExhausted,
    /// Not reported by today's engine (a readiness probe that moves an attempt earlier
    /// reports `Ready`); kept so the name stays known.
    Backoff,
    /// A better transport answered its probe (FALLBACK-6): the ladder moves up.
    Upgrade,
    /// A `POST /send` got no answer within its deadline (OUTBOX-9): the connection is
    /// replaced and the publishes are resent.
    SendTimeout,
);

#[uniffi::export]
impl Cause {
    /// The SPEC name (`user_connect`, `transport_closed`, ...).
    pub fn stable_name(&self) -> String {
        self.name()
    }
}

/// The client state (STATE-1).
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum State {
    Idle,
    Connecting {
        attempt: u32,
        transport: TransportKind,
    },
    Connected {
        transport: TransportKind,
    },
    /// Connected on a rung below the best allowed one; `reason` is an ERR-1 code.
    Degraded {
        transport: TransportKind,
        reason: String,
    },
    /// Waiting before attempt `attempt`; `delay_ms` is `None` while waiting for the network.
    Reconnecting {
        attempt: u32,
        delay_ms: Option<f64>,
        cause: Cause,
    },
    /// Stopped for good; `reason` is an ERR-1 code.
    Failed {
        reason: String,
    },
    Closed,
}

impl From<&tether::State> for State {
    fn from(s: &tether::State) -> State {
        match s {
            tether::State::Idle => State::Idle,
            tether::State::Connecting { attempt, transport } => State::Connecting {
                attempt: *attempt,
                transport: (*transport).into(),
            },
            tether::State::Connected { transport } => State::Connected {
                transport: (*transport).into(),
            },
            tether::State::Degraded { transport, reason } => State::Degraded {
                transport: (*transport).into(),
                reason: reason.as_str().to_owned(),
            },
            tether::State::Reconnecting {
                attempt,
                delay,
                cause,
            } => State::Reconnecting {
                attempt: *attempt,
                delay_ms: delay.map(millis),
                cause: cause.into(),
            },
            tether::State::Failed { reason } => State::Failed {
                reason: reason.as_str().to_owned(),
            },
            tether::State::Closed => State::Closed,
        }
    }
}

#[uniffi::export]
impl State {
    /// `idle`, `connecting`, `connected`, `degraded`, `reconnecting`, `failed` or `closed`.
    pub fn stable_name(&self) -> String {
        match self {
            State::Idle => "idle",
            State::Connecting { .. } => "connecting",
            State::Connected { .. } => "connected",
            State::Degraded { .. } => "degraded",
            State::Reconnecting { .. } => "reconnecting",
            State::Failed { .. } => "failed",
            State::Closed => "closed",
        }
        .to_owned()
    }

    /// True in `Connected` or `Degraded`: messages flow.
    pub fn is_up(&self) -> bool {
        matches!(self, State::Connected { .. } | State::Degraded { .. })
    }
}

/// Why a queued publish was dropped (OUTBOX-6, OUTBOX-7).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DropReason {
    /// The outbox was full (count or bytes) under `drop_oldest`.
    Overflow,
    /// Older than `outbox_max_age`.
    Expired,
    /// The server refused it for good, with its error code.
    Rejected { code: String },
    /// Larger than `max_frame_bytes`.
    TooLarge,
    /// A reason added to the client after these bindings, by its stable name.
    Other { name: String },
}

impl From<&tether::DropReason> for DropReason {
    fn from(r: &tether::DropReason) -> DropReason {
        match r {
            tether::DropReason::Overflow => DropReason::Overflow,
            tether::DropReason::Expired => DropReason::Expired,
            tether::DropReason::Rejected { code } => DropReason::Rejected { code: code.clone() },
            tether::DropReason::TooLarge => DropReason::TooLarge,
            other => DropReason::Other {
                name: other.as_str().to_owned(),
            },
        }
    }
}

#[uniffi::export]
impl DropReason {
    /// `overflow`, `expired`, `rejected` or `too_large`.
    pub fn stable_name(&self) -> String {
        match self {
            DropReason::Overflow => "overflow",
            DropReason::Expired => "expired",
            DropReason::Rejected { .. } => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::Other { name } => return name.clone(),
        }
        .to_owned()
    }
}

/// Why the application must resynchronise a channel (RESUME-5, ORDER-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ResetReason {
    /// The server's replay buffer no longer covers the gap.
    Server,
    /// A gap in sequence numbers did not fill in time.
    Gap,
}

#[uniffi::export]
impl ResetReason {
    /// `server` or `gap`.
    pub fn stable_name(&self) -> String {
        match self {
            ResetReason::Server => "server",
            ResetReason::Gap => "gap",
        }
        .to_owned()
    }
}

/// Why the transport changed (FALLBACK-3, FALLBACK-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum FallbackReason {
    Blocked,
    Upgrade,
    AllBlocked,
}

#[uniffi::export]
impl FallbackReason {
    /// `blocked`, `upgrade` or `all_blocked`.
    pub fn stable_name(&self) -> String {
        match self {
            FallbackReason::Blocked => "blocked",
            FallbackReason::Upgrade => "upgrade",
            FallbackReason::AllBlocked => "all_blocked",
        }
        .to_owned()
    }
}

/// A server policy value replaced by its bound (BACKOFF-8).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PolicyClamp {
    pub field: String,
    pub requested: f64,
    pub applied: f64,
}

/// A publish the server acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Ack {
    /// The idempotency key (OUTBOX-1).
    pub id: String,
    /// The message's sequence number on its channel, when the server gave it.
    pub seq: Option<u64>,
}

impl From<tether::Ack> for Ack {
    fn from(a: tether::Ack) -> Ack {
        Ack {
            id: a.id,
            seq: a.seq,
        }
    }
}

/// Something the application should know.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum Event {
    /// A state transition (STATE-2).
    StateChanged {
        from: State,
        to: State,
        cause: Cause,
    },
    /// A reconnect attempt was scheduled: the exact delay drawn.
    ReconnectScheduled {
        attempt: u32,
        delay_ms: f64,
        cause: Cause,
    },
    /// A transport was chosen for an attempt.
    TransportSelected { transport: TransportKind },
    /// A message, exactly once and in order per channel (ORDER-1).
    Message {
        channel: String,
        seq: u64,
        data: Json,
    },
    /// The app must resynchronise this channel (RESUME-5, ORDER-4).
    Reset {
        channel: String,
        reason: ResetReason,
    },
    /// A publish was acknowledged.
    Acked { id: String, seq: Option<u64> },
    /// A publish was dropped (OUTBOX-6).
    Dropped { id: String, reason: DropReason },
    /// The ladder moved (FALLBACK-3, FALLBACK-6).
    Fallback {
        from: TransportKind,
        to: TransportKind,
        reason: FallbackReason,
    },
    /// A server policy was applied; `clamped` lists values replaced by bounds (BACKOFF-8).
    PolicyApplied { clamped: Vec<PolicyClamp> },
    /// A non-fatal problem (ERR-2); `code` is an ERR-1 code.
    Error { code: String, detail: String },
    /// An event these bindings do not name yet (newer engine), with its debug text.
    Other { name: String },
}

impl From<&tether::Event> for Event {
    fn from(e: &tether::Event) -> Event {
        match e {
            tether::Event::StateChanged { from, to, cause } => Event::StateChanged {
                from: from.into(),
                to: to.into(),
                cause: cause.into(),
            },
            tether::Event::ReconnectScheduled {
                attempt,
                delay,
                cause,
            } => Event::ReconnectScheduled {
                attempt: *attempt,
                delay_ms: millis(*delay),
                cause: cause.into(),
            },
            tether::Event::TransportSelected { transport } => Event::TransportSelected {
                transport: (*transport).into(),
            },
            tether::Event::Message { channel, seq, data } => Event::Message {
                channel: channel.clone(),
                seq: *seq,
                data: data.into(),
            },
            tether::Event::Reset {
                channel,
                reason: reason @ (tether::ResetReason::Server | tether::ResetReason::Gap),
            } => Event::Reset {
                channel: channel.clone(),
                reason: match reason {
                    tether::ResetReason::Gap => ResetReason::Gap,
                    _ => ResetReason::Server,
                },
            },
            tether::Event::Acked { id, seq } => Event::Acked {
                id: id.clone(),
                seq: *seq,
            },
            tether::Event::Dropped { id, reason } => Event::Dropped {
                id: id.clone(),
                reason: reason.into(),
            },
            tether::Event::Fallback {
                from,
                to,
                reason:
                    reason @ (tether::FallbackReason::Blocked
                    | tether::FallbackReason::Upgrade
                    | tether::FallbackReason::AllBlocked),
            } => Event::Fallback {
                from: (*from).into(),
                to: (*to).into(),
                reason: match reason {
                    tether::FallbackReason::Blocked => FallbackReason::Blocked,
                    tether::FallbackReason::Upgrade => FallbackReason::Upgrade,
                    _ => FallbackReason::AllBlocked,
                },
            },
            tether::Event::PolicyApplied { clamped } => Event::PolicyApplied {
                clamped: clamped
                    .iter()
                    .map(|c| PolicyClamp {
                        field: c.field.to_owned(),
                        requested: c.requested,
                        applied: c.applied,
                    })
                    .collect(),
            },
            tether::Event::Error { code, detail } => Event::Error {
                code: code.as_str().to_owned(),
                detail: detail.clone(),
            },
            // Events added to the engine after these bindings (and resets or fallbacks with
            // a reason added after them).
            other => Event::Other {
                name: format!("{other:?}"),
            },
        }
    }
}

#[uniffi::export]
impl Event {
    /// The adapter-protocol name: `state`, `reconnect_scheduled`, `transport_selected`,
    /// `message`, `reset`, `acked`, `dropped`, `fallback`, `policy_applied`, `error`, or
    /// `other`.
    pub fn stable_name(&self) -> String {
        match self {
            Event::StateChanged { .. } => "state",
            Event::ReconnectScheduled { .. } => "reconnect_scheduled",
            Event::TransportSelected { .. } => "transport_selected",
            Event::Message { .. } => "message",
            Event::Reset { .. } => "reset",
            Event::Acked { .. } => "acked",
            Event::Dropped { .. } => "dropped",
            Event::Fallback { .. } => "fallback",
            Event::PolicyApplied { .. } => "policy_applied",
            Event::Error { .. } => "error",
            Event::Other { .. } => "other",
        }
        .to_owned()
    }
}

/// One event, stamped with the time since the client was built (on the client's clock).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ClientEvent {
    /// Milliseconds since `ClientBuilder.build()`; never goes backwards.
    pub at_ms: f64,
    pub event: Event,
}

impl From<tether::ClientEvent> for ClientEvent {
    fn from(e: tether::ClientEvent) -> ClientEvent {
        ClientEvent {
            at_ms: millis(e.at),
            event: (&e.event).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_2_causes_keep_their_spec_names() {
        for c in &tether::Cause::KINDS {
            let f = Cause::from(c);
            assert!(!matches!(f, Cause::Other { .. }), "{c:?} is not wired");
            assert_eq!(f.stable_name(), c.as_str());
        }
        assert_eq!(
            Cause::from(&tether::Cause::Terminal {
                code: tether::ErrorCode::Forbidden
            }),
            Cause::Terminal {
                code: "forbidden".into()
            }
        );
        assert_eq!(
            Cause::from(&tether::Cause::TransportClosed { code: Some(4000) }),
            Cause::TransportClosed { code: Some(4000) }
        );
    }

    #[test]
    fn state_2_the_bindings_name_exactly_the_engine_causes() {
        let engine: Vec<&str> = tether::Cause::KINDS.iter().map(|c| c.as_str()).collect();
        let mut ours = Cause::kind_names();
        let mut want: Vec<String> = engine.iter().map(|n| n.to_string()).collect();
        ours.sort();
        want.sort();
        assert_eq!(
            ours, want,
            "the causes! list and tether::Cause::KINDS differ"
        );
        assert_eq!(crate::cause_names(), engine);
    }

    #[test]
    fn state_1_states_keep_their_spec_names() {
        let states = [
            tether::State::Idle,
            tether::State::Connecting {
                attempt: 2,
                transport: tether::TransportKind::Sse,
            },
            tether::State::Connected {
                transport: tether::TransportKind::WebSocket,
            },
            tether::State::Degraded {
                transport: tether::TransportKind::LongPoll,
                reason: tether::ErrorCode::TransportBlocked,
            },
            tether::State::Reconnecting {
                attempt: 1,
                delay: Some(Duration::from_micros(12_345)),
                cause: tether::Cause::Drain,
            },
            tether::State::Failed {
                reason: tether::ErrorCode::AttemptsExhausted,
            },
            tether::State::Closed,
        ];
        for s in &states {
            assert_eq!(State::from(s).stable_name(), s.name());
        }
        let State::Reconnecting { delay_ms, .. } = State::from(&states[4]) else {
            panic!("reconnecting")
        };
        assert_eq!(delay_ms, Some(12.345));
        assert_eq!(
            State::from(&states[3]),
            State::Degraded {
                transport: TransportKind::LongPoll,
                reason: "transport_blocked".into()
            }
        );
    }

    #[test]
    fn transports_round_trip_by_name() {
        for t in tether::TransportKind::LADDER {
            let f = TransportKind::from(t);
            assert_eq!(tether::TransportKind::from(f), t);
            assert_eq!(f.stable_name(), t.as_str());
        }
    }

    #[test]
    fn events_carry_json_text_and_exact_delays() {
        let e = Event::from(&tether::Event::Message {
            channel: "c".into(),
            seq: 7,
            data: serde_json::json!({"n": 1}),
        });
        assert_eq!(
            e,
            Event::Message {
                channel: "c".into(),
                seq: 7,
                data: Json(r#"{"n":1}"#.into())
            }
        );
        let e = Event::from(&tether::Event::ReconnectScheduled {
            attempt: 3,
            delay: Duration::from_nanos(23_418_001),
            cause: tether::Cause::TransportError,
        });
        let Event::ReconnectScheduled { delay_ms, .. } = e else {
            panic!("scheduled")
        };
        assert!((delay_ms - 23.418001).abs() < 1e-9);
        let e = Event::from(&tether::Event::Error {
            code: tether::ErrorCode::FrameMalformed,
            detail: "x".into(),
        });
        assert_eq!(e.stable_name(), "error");
        assert_eq!(
            e,
            Event::Error {
                code: "frame_malformed".into(),
                detail: "x".into()
            }
        );
    }

    #[test]
    fn backoff_9_overrides_pass_through_unclamped() {
        let p = PolicyOverrides {
            floor_ms: Some(1.0),
            base_ms: Some(4.0),
            outbox_max_count: Some(3.0),
            ..PolicyOverrides::default()
        };
        let w = tether::PolicyWire::from(p);
        assert_eq!(w.floor_ms, Some(1.0));
        assert_eq!(w.base_ms, Some(4.0));
        assert_eq!(w.outbox_max_count, Some(3.0));
        assert_eq!(w.cap_ms, None);
    }
}
