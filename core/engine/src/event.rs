//! What the engine tells the application (polled with `poll_event`).

use crate::error::ErrorCode;
use crate::policy::Clamp;
use crate::state::{Cause, State};
use crate::transport::TransportKind;
use core::time::Duration;
use serde_json::Value;

/// Why a queued publish was dropped (OUTBOX-6, OUTBOX-7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    Overflow,
    Expired,
    Rejected { code: String },
    TooLarge,
}

impl DropReason {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Overflow => "overflow",
            DropReason::Expired => "expired",
            DropReason::Rejected { .. } => "rejected",
            DropReason::TooLarge => "too_large",
        }
    }
}

/// Why the application must resynchronise a channel (RESUME-5, ORDER-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The server's replay buffer no longer covers the gap.
    Server,
    /// A gap in sequence numbers did not fill in time.
    Gap,
}

/// Why the transport changed (FALLBACK-3, FALLBACK-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    Blocked,
    Upgrade,
    AllBlocked,
}

/// Something the application should know.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A state transition (STATE-2).
    StateChanged {
        from: State,
        to: State,
        cause: Cause,
    },
    /// A reconnect attempt was scheduled (reported alongside `Reconnecting`).
    ReconnectScheduled {
        attempt: u32,
        delay: Duration,
        cause: Cause,
    },
    /// A transport was chosen for an attempt.
    TransportSelected { transport: TransportKind },
    /// A message, exactly once and in order per channel (ORDER-1).
    Message {
        channel: String,
        seq: u64,
        data: Value,
    },
    /// The app must resynchronise this channel (RESUME-5, ORDER-4).
    Reset {
        channel: String,
        reason: ResetReason,
    },
    /// A publish was acknowledged by the server.
    Acked { id: String, seq: Option<u64> },
    /// A publish was dropped (OUTBOX-6).
    Dropped { id: String, reason: DropReason },
    /// The ladder moved (FALLBACK-3, FALLBACK-6).
    Fallback {
        from: TransportKind,
        to: TransportKind,
        reason: FallbackReason,
    },
    /// A server policy was applied; clamps list values replaced by bounds (BACKOFF-8).
    PolicyApplied { clamped: Vec<Clamp> },
    /// A non-fatal problem (ERR-2).
    Error { code: ErrorCode, detail: String },
}
