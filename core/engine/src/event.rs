//! What the engine tells the application (polled with `poll_event`).

use crate::error::ErrorCode;
use crate::policy::Clamp;
use crate::state::{Cause, State};
use crate::transport::TransportKind;
use core::time::Duration;
use serde_json::Value;

/// Why a queued publish was dropped (OUTBOX-6, OUTBOX-7).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    Overflow,
    Expired,
    Rejected { code: String },
    TooLarge,
}

impl DropReason {
    /// Every stable name, in declaration order (hosts and bindings compare their own lists
    /// with it; a test keeps it complete).
    pub const NAMES: [&'static str; 4] = ["overflow", "expired", "rejected", "too_large"];

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

/// The stable name (`overflow`, `expired`, `rejected`, `too_large`); a rejection's code is in
/// [`DropReason::Rejected`].
impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the application must resynchronise a channel (RESUME-5, ORDER-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// The server's replay buffer no longer covers the gap.
    Server,
    /// A gap in sequence numbers did not fill in time.
    Gap,
}

impl ResetReason {
    /// Every reason, in declaration order (a test keeps it complete).
    pub const ALL: [ResetReason; 2] = [ResetReason::Server, ResetReason::Gap];

    /// Stable name (`server`, `gap`), as adapters and logs print it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResetReason::Server => "server",
            ResetReason::Gap => "gap",
        }
    }
}

/// The stable name, e.g. `server`.
impl core::fmt::Display for ResetReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the transport changed (FALLBACK-3, FALLBACK-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FallbackReason {
    /// The rung was blocked (FALLBACK-2): the ladder went down one rung.
    Blocked,
    /// An upper rung answered a probe (FALLBACK-6): the ladder went back up.
    Upgrade,
    /// Every allowed rung was blocked (FALLBACK-4): the ladder wrapped to the top.
    AllBlocked,
}

impl FallbackReason {
    /// Every reason, in declaration order (a test keeps it complete).
    pub const ALL: [FallbackReason; 3] = [
        FallbackReason::Blocked,
        FallbackReason::Upgrade,
        FallbackReason::AllBlocked,
    ];

    /// Stable name (`blocked`, `upgrade`, `all_blocked`), as adapters and logs print it.
    pub const fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Blocked => "blocked",
            FallbackReason::Upgrade => "upgrade",
            FallbackReason::AllBlocked => "all_blocked",
        }
    }
}

/// The stable name, e.g. `all_blocked`.
impl core::fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the application should know.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists are complete: each match has no wildcard, so a new reason does not compile
    /// here until it has its place in the list.
    #[test]
    fn reason_lists_are_complete() {
        let drop_pos = |r: &DropReason| match r {
            DropReason::Overflow => 0,
            DropReason::Expired => 1,
            DropReason::Rejected { .. } => 2,
            DropReason::TooLarge => 3,
        };
        for r in [
            DropReason::Overflow,
            DropReason::Expired,
            DropReason::Rejected { code: "x".into() },
            DropReason::TooLarge,
        ] {
            assert_eq!(DropReason::NAMES[drop_pos(&r)], r.as_str());
        }
        for (i, r) in ResetReason::ALL.into_iter().enumerate() {
            let pos = match r {
                ResetReason::Server => 0,
                ResetReason::Gap => 1,
            };
            assert_eq!(pos, i);
        }
        for (i, r) in FallbackReason::ALL.into_iter().enumerate() {
            let pos = match r {
                FallbackReason::Blocked => 0,
                FallbackReason::Upgrade => 1,
                FallbackReason::AllBlocked => 2,
            };
            assert_eq!(pos, i);
        }
    }

    fn snake(s: &str) -> bool {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    }

    #[test]
    fn reasons_display_their_stable_names() {
        let resets = [(ResetReason::Server, "server"), (ResetReason::Gap, "gap")];
        for (r, want) in resets {
            assert_eq!(r.to_string(), want);
            assert_eq!(r.as_str(), want);
        }
        let fallbacks = [
            (FallbackReason::Blocked, "blocked"),
            (FallbackReason::Upgrade, "upgrade"),
            (FallbackReason::AllBlocked, "all_blocked"),
        ];
        for (r, want) in fallbacks {
            assert_eq!(r.to_string(), want);
            assert_eq!(format!("({r})"), format!("({want})"));
        }
        let drops = [
            (DropReason::Overflow, "overflow"),
            (DropReason::Expired, "expired"),
            (
                DropReason::Rejected {
                    code: "nope".into(),
                },
                "rejected",
            ),
            (DropReason::TooLarge, "too_large"),
        ];
        for (r, want) in drops {
            assert_eq!(r.to_string(), want);
            assert!(snake(&r.to_string()));
        }
    }
}
