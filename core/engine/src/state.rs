//! The observable connection state and the causes of its transitions (SPEC STATE-1, STATE-2).

use crate::error::ErrorCode;
use crate::transport::TransportKind;
use core::time::Duration;

/// Why a transition happened (STATE-2).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    UserConnect,
    UserClose,
    Hello,
    TransportClosed {
        code: Option<u16>,
    },
    TransportError,
    HeartbeatTimeout,
    Drain,
    RetryLater,
    /// A readiness probe answered ready and moved the attempt earlier (READY-4).
    Ready,
    AuthExpired,
    NetworkOffline,
    NetworkOnline,
    Blocked,
    SlowOpen,
    ProtocolError,
    AttemptsExhausted,
    Terminal {
        code: ErrorCode,
    },
    Backoff,
    Upgrade,
    /// A `POST /send` got no answer within its deadline (OUTBOX-9).
    SendTimeout,
}

impl Cause {
    /// Stable name, e.g. for adapters and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::UserConnect => "user_connect",
            Cause::UserClose => "user_close",
            Cause::Hello => "hello",
            Cause::TransportClosed { .. } => "transport_closed",
            Cause::TransportError => "transport_error",
            Cause::HeartbeatTimeout => "heartbeat_timeout",
            Cause::Drain => "drain",
            Cause::RetryLater => "retry_later",
            Cause::Ready => "ready",
            Cause::AuthExpired => "auth_expired",
            Cause::NetworkOffline => "network_offline",
            Cause::NetworkOnline => "network_online",
            Cause::Blocked => "blocked",
            Cause::SlowOpen => "slow_open",
            Cause::ProtocolError => "protocol_error",
            Cause::AttemptsExhausted => "attempts_exhausted",
            Cause::Terminal { .. } => "terminal",
            Cause::Backoff => "backoff",
            Cause::Upgrade => "upgrade",
            Cause::SendTimeout => "send_timeout",
        }
    }

    /// One cause of each kind, in declaration order (`TransportClosed` and `Terminal` with a
    /// sample field): the list the bindings check their own causes against, so a new cause
    /// cannot be forgotten there. A new variant goes here too (a test of this module does not
    /// compile until it is listed).
    pub const KINDS: [Cause; 20] = [
        Cause::UserConnect,
        Cause::UserClose,
        Cause::Hello,
        Cause::TransportClosed { code: None },
        Cause::TransportError,
        Cause::HeartbeatTimeout,
        Cause::Drain,
        Cause::RetryLater,
        Cause::Ready,
        Cause::AuthExpired,
        Cause::NetworkOffline,
        Cause::NetworkOnline,
        Cause::Blocked,
        Cause::SlowOpen,
        Cause::ProtocolError,
        Cause::AttemptsExhausted,
        Cause::Terminal {
            code: ErrorCode::ServerError,
        },
        Cause::Backoff,
        Cause::Upgrade,
        Cause::SendTimeout,
    ];
}

/// The stable name (STATE-2), e.g. `transport_closed`; codes are in the variant's fields.
impl core::fmt::Display for Cause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client state (STATE-1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    Connecting {
        attempt: u32,
        transport: TransportKind,
    },
    Connected {
        transport: TransportKind,
    },
    /// Connected on a rung below the best allowed one (ADR-5).
    Degraded {
        transport: TransportKind,
        reason: ErrorCode,
    },
    /// Waiting before attempt `attempt`; `delay` is `None` while waiting for the network.
    Reconnecting {
        attempt: u32,
        delay: Option<Duration>,
        cause: Cause,
    },
    Failed {
        reason: ErrorCode,
    },
    Closed,
}

impl State {
    /// Stable name of the variant.
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting { .. } => "connecting",
            State::Connected { .. } => "connected",
            State::Degraded { .. } => "degraded",
            State::Reconnecting { .. } => "reconnecting",
            State::Failed { .. } => "failed",
            State::Closed => "closed",
        }
    }

    /// True in `Connected` or `Degraded`: messages flow.
    pub fn is_up(&self) -> bool {
        matches!(self, State::Connected { .. } | State::Degraded { .. })
    }
}

/// The stable name, then the state's fields in stable names: `connected (websocket)`,
/// `reconnecting (attempt 2, in 734 ms, transport_error)`, `failed (auth_failed)`.
impl core::fmt::Display for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())?;
        match self {
            State::Connecting { attempt, transport } => {
                write!(f, " (attempt {attempt}, {transport})")
            }
            State::Connected { transport } => write!(f, " ({transport})"),
            State::Degraded { transport, reason } => write!(f, " ({transport}, {reason})"),
            State::Reconnecting {
                attempt,
                delay: Some(delay),
                cause,
            } => write!(
                f,
                " (attempt {attempt}, in {} ms, {cause})",
                delay.as_millis()
            ),
            State::Reconnecting {
                attempt,
                delay: None,
                cause,
            } => write!(f, " (attempt {attempt}, waiting for the network, {cause})"),
            State::Failed { reason } => write!(f, " ({reason})"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The position of a cause's kind in [`Cause::KINDS`]. No wildcard: a new cause does not
    /// compile here until it gets the next position, and its place in `KINDS` with it.
    fn kind_index(c: &Cause) -> usize {
        match c {
            Cause::UserConnect => 0,
            Cause::UserClose => 1,
            Cause::Hello => 2,
            Cause::TransportClosed { .. } => 3,
            Cause::TransportError => 4,
            Cause::HeartbeatTimeout => 5,
            Cause::Drain => 6,
            Cause::RetryLater => 7,
            Cause::Ready => 8,
            Cause::AuthExpired => 9,
            Cause::NetworkOffline => 10,
            Cause::NetworkOnline => 11,
            Cause::Blocked => 12,
            Cause::SlowOpen => 13,
            Cause::ProtocolError => 14,
            Cause::AttemptsExhausted => 15,
            Cause::Terminal { .. } => 16,
            Cause::Backoff => 17,
            Cause::Upgrade => 18,
            Cause::SendTimeout => 19,
        }
    }

    #[test]
    fn state_2_kinds_lists_every_cause_once_with_a_unique_name() {
        let mut names = std::collections::HashSet::new();
        for (i, c) in Cause::KINDS.iter().enumerate() {
            assert_eq!(kind_index(c), i, "{c:?} is out of place in Cause::KINDS");
            assert!(names.insert(c.as_str()), "duplicate name {}", c.as_str());
        }
    }

    #[test]
    fn causes_and_states_display_stable_names() {
        let causes = [
            Cause::UserConnect,
            Cause::TransportClosed { code: Some(4000) },
            Cause::Terminal {
                code: ErrorCode::Forbidden,
            },
            Cause::AttemptsExhausted,
        ];
        for c in causes {
            let shown = c.to_string();
            assert_eq!(shown, c.as_str());
            assert!(shown.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
        }
        let cases = [
            (State::Idle, "idle"),
            (
                State::Connecting {
                    attempt: 0,
                    transport: TransportKind::WebSocket,
                },
                "connecting (attempt 0, websocket)",
            ),
            (
                State::Connected {
                    transport: TransportKind::LongPoll,
                },
                "connected (long_poll)",
            ),
            (
                State::Degraded {
                    transport: TransportKind::Sse,
                    reason: ErrorCode::TransportBlocked,
                },
                "degraded (sse, transport_blocked)",
            ),
            (
                State::Reconnecting {
                    attempt: 2,
                    delay: Some(Duration::from_micros(734_900)),
                    cause: Cause::TransportError,
                },
                "reconnecting (attempt 2, in 734 ms, transport_error)",
            ),
            (
                State::Reconnecting {
                    attempt: 1,
                    delay: None,
                    cause: Cause::NetworkOffline,
                },
                "reconnecting (attempt 1, waiting for the network, network_offline)",
            ),
            (
                State::Failed {
                    reason: ErrorCode::AuthFailed,
                },
                "failed (auth_failed)",
            ),
            (State::Closed, "closed"),
        ];
        for (s, want) in cases {
            assert_eq!(s.to_string(), want);
        }
    }
}
