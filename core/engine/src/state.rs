//! The observable connection state and the causes of its transitions (SPEC STATE-1, STATE-2).

use crate::error::ErrorCode;
use crate::transport::TransportKind;
use core::time::Duration;

/// Why a transition happened (STATE-2).
#[derive(Clone, Debug, PartialEq, Eq)]
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
        }
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
