//! The transport ladder: allowed rungs, blocked detection by strikes, and the upgrade probe interval (SPEC FALLBACK-1..6).

use crate::transport::TransportKind;
use core::time::Duration;

/// Consecutive ambiguous failures (closed before hello, slow open) that block a rung (FALLBACK-2b).
pub const STRIKES_TO_BLOCK: u8 = 2;

/// Longest interval between upgrade probes (FALLBACK-6).
pub const MAX_UPGRADE_INTERVAL: Duration = Duration::from_secs(3600);

/// Where the client stands on the ladder.
#[derive(Clone, Debug)]
pub struct Ladder {
    rungs: Vec<TransportKind>,
    current: usize,
    strikes: Vec<u8>,
    blocked: Vec<bool>,
    upgrade_interval: Option<Duration>,
}

/// What a blocking signal led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not blocked yet: retry the same rung with backoff.
    Stay,
    /// Move down to this rung now (FALLBACK-3).
    Down(TransportKind),
    /// Every rung is blocked: back to the top, with backoff (FALLBACK-4).
    Wrapped(TransportKind),
}

impl Ladder {
    /// A ladder over the allowed transports, in ladder order; all three if none are given.
    pub fn new(allowed: &[TransportKind]) -> Ladder {
        let mut rungs: Vec<TransportKind> = TransportKind::LADDER
            .into_iter()
            .filter(|t| allowed.contains(t))
            .collect();
        if rungs.is_empty() {
            rungs = TransportKind::LADDER.to_vec();
        }
        let n = rungs.len();
        Ladder {
            rungs,
            current: 0,
            strikes: vec![0; n],
            blocked: vec![false; n],
            upgrade_interval: None,
        }
    }

    /// The rung in use.
    pub fn current(&self) -> TransportKind {
        self.rungs[self.current.min(self.rungs.len() - 1)]
    }

    /// The best allowed rung.
    pub fn top(&self) -> TransportKind {
        self.rungs[0]
    }

    /// True when the current rung is below the best one (Degraded, ADR-5).
    pub fn is_degraded(&self) -> bool {
        self.current > 0
    }

    /// Start on a remembered rung, if it is allowed (FALLBACK-5).
    pub fn remember(&mut self, t: TransportKind) {
        if let Some(i) = self.rungs.iter().position(|r| *r == t) {
            self.current = i;
        }
    }

    /// A hello arrived on `t`: it works (clears its strikes).
    pub fn worked(&mut self, t: TransportKind) {
        if let Some(i) = self.rungs.iter().position(|r| *r == t) {
            self.current = i;
            self.strikes[i] = 0;
            self.blocked[i] = false;
            if i == 0 {
                self.upgrade_interval = None;
            }
        }
    }

    /// A definitive blocking signal on the current rung (FALLBACK-2a).
    pub fn blocked_now(&mut self) -> Step {
        self.strikes[self.current] = STRIKES_TO_BLOCK;
        self.descend()
    }

    /// An ambiguous blocking signal on the current rung (FALLBACK-2b).
    pub fn strike(&mut self) -> Step {
        let s = &mut self.strikes[self.current];
        *s = s.saturating_add(1);
        if *s >= STRIKES_TO_BLOCK {
            self.descend()
        } else {
            Step::Stay
        }
    }

    /// A failure that says nothing about the rung (server unreachable): strikes stay.
    fn descend(&mut self) -> Step {
        self.blocked[self.current] = true;
        if let Some(next) = (self.current + 1..self.rungs.len()).find(|i| !self.blocked[*i]) {
            self.current = next;
            return Step::Down(self.rungs[next]);
        }
        for i in 0..self.rungs.len() {
            self.blocked[i] = false;
            self.strikes[i] = 0;
        }
        self.current = 0;
        Step::Wrapped(self.rungs[0])
    }

    /// The interval before the next upgrade probe, starting at `upgrade_after` (FALLBACK-6).
    pub fn upgrade_interval(&self, upgrade_after: Duration) -> Duration {
        self.upgrade_interval.unwrap_or(upgrade_after)
    }

    /// An upgrade probe failed: double the interval, up to an hour (FALLBACK-6).
    pub fn upgrade_failed(&mut self, upgrade_after: Duration) {
        let next = self
            .upgrade_interval(upgrade_after)
            .saturating_mul(2)
            .min(MAX_UPGRADE_INTERVAL);
        self.upgrade_interval = Some(next.max(upgrade_after.min(MAX_UPGRADE_INTERVAL)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransportKind::*;

    #[test]
    fn fallback_2_3_4_ladder_steps() {
        let mut l = Ladder::new(&[LongPoll, WebSocket, Sse]);
        assert_eq!(l.current(), WebSocket);
        assert_eq!(l.blocked_now(), Step::Down(Sse));
        assert_eq!(l.strike(), Step::Stay);
        assert_eq!(l.strike(), Step::Down(LongPoll));
        assert!(l.is_degraded());
        assert_eq!(l.blocked_now(), Step::Wrapped(WebSocket));
        assert!(!l.is_degraded());
    }

    #[test]
    fn fallback_1_only_allowed_rungs() {
        let mut l = Ladder::new(&[Sse, LongPoll]);
        assert_eq!(l.top(), Sse);
        assert_eq!(l.blocked_now(), Step::Down(LongPoll));
        assert_eq!(Ladder::new(&[]).top(), WebSocket);
    }

    #[test]
    fn fallback_6_upgrade_interval_doubles_to_an_hour() {
        let mut l = Ladder::new(&[WebSocket, Sse]);
        let base = Duration::from_secs(300);
        assert_eq!(l.upgrade_interval(base), base);
        l.upgrade_failed(base);
        assert_eq!(l.upgrade_interval(base), Duration::from_secs(600));
        for _ in 0..10 {
            l.upgrade_failed(base);
        }
        assert_eq!(l.upgrade_interval(base), MAX_UPGRADE_INTERVAL);
    }
}
