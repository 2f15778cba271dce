//! Per-channel exactly-once, in-order delivery: dedupe by sequence number and hold out-of-order messages (SPEC ORDER-1..4).

use crate::time::Instant;
use core::time::Duration;
use serde_json::Value;
use std::collections::BTreeMap;

/// Most messages held per channel while a gap is open (ORDER-3).
pub const MAX_HELD: usize = 1024;

/// How long a gap may stay open before the channel is reset (ORDER-4).
pub const GAP_TIMEOUT: Duration = Duration::from_secs(5);

/// A message ready for the application, with the cursor that came with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub seq: u64,
    pub data: Value,
    pub cursor: Option<String>,
}

/// What happened to one incoming message.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Deliver these, in order (the message and any held ones it unblocked).
    Deliver(Vec<Delivery>),
    /// A duplicate, dropped (ORDER-2).
    Duplicate,
    /// Held until the gap fills (ORDER-3).
    Held,
    /// The hold overflowed: reset the channel, then deliver these in order (ORDER-4).
    GapReset(Vec<Delivery>),
}

/// The ordering state of one channel.
#[derive(Clone, Debug, Default)]
pub struct ChannelOrder {
    last: Option<u64>,
    held: BTreeMap<u64, Delivery>,
    gap_since: Option<Instant>,
    duplicates: u64,
}

impl ChannelOrder {
    /// The last delivered sequence number, if there is a baseline.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Duplicates dropped so far (ORDER-2).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Number of messages held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The instant the open gap must be given up, if one is open.
    pub fn gap_deadline(&self) -> Option<Instant> {
        self.gap_since.map(|t| t + GAP_TIMEOUT)
    }

    /// Set the baseline from a `subscribed` frame (WIRE-7). A baseline below what was
    /// already delivered keeps the higher one (replays of those are duplicates).
    pub fn set_baseline(&mut self, seq: u64) -> Vec<Delivery> {
        let last = self.last.map_or(seq, |l| l.max(seq));
        self.last = Some(last);
        self.held.retain(|s, _| *s > last);
        self.drain_contiguous()
    }

    /// Forget everything (a server `reset`, RESUME-4): the next message or `subscribed` sets the baseline.
    pub fn clear(&mut self) {
        self.last = None;
        self.held.clear();
        self.gap_since = None;
    }

    /// Take one incoming message (ORDER-1..3).
    pub fn accept(&mut self, now: Instant, delivery: Delivery) -> Outcome {
        let seq = delivery.seq;
        match self.last {
            None => {
                self.last = Some(seq);
                let mut out = vec![delivery];
                out.extend(self.drain_contiguous());
                Outcome::Deliver(out)
            }
            Some(last) if seq <= last => {
                self.duplicates += 1;
                Outcome::Duplicate
            }
            Some(last) if Some(seq) == last.checked_add(1) => {
                self.last = Some(seq);
                let mut out = vec![delivery];
                out.extend(self.drain_contiguous());
                Outcome::Deliver(out)
            }
            Some(_) => {
                if self.held.contains_key(&seq) {
                    self.duplicates += 1;
                    return Outcome::Duplicate;
                }
                self.held.insert(seq, delivery);
                if self.gap_since.is_none() {
                    self.gap_since = Some(now);
                }
                if self.held.len() > MAX_HELD {
                    Outcome::GapReset(self.give_up())
                } else {
                    Outcome::Held
                }
            }
        }
    }

    /// If the gap timed out at `now`, give up on it: the held messages to deliver after a reset (ORDER-4).
    pub fn expire(&mut self, now: Instant) -> Option<Vec<Delivery>> {
        match self.gap_deadline() {
            Some(deadline) if now >= deadline => Some(self.give_up()),
            _ => None,
        }
    }

    fn give_up(&mut self) -> Vec<Delivery> {
        let held = core::mem::take(&mut self.held);
        self.gap_since = None;
        let out: Vec<Delivery> = held.into_values().collect();
        if let Some(d) = out.last() {
            self.last = Some(d.seq);
        }
        out
    }

    fn drain_contiguous(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Some(next) = self.last.and_then(|l| l.checked_add(1)) {
            match self.held.remove(&next) {
                Some(d) => {
                    self.last = Some(d.seq);
                    out.push(d);
                }
                None => break,
            }
        }
        if self.held.is_empty() {
            self.gap_since = None;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seq: u64) -> Delivery {
        Delivery {
            seq,
            data: Value::from(seq),
            cursor: Some(format!("c{seq}")),
        }
    }

    fn seqs(o: &Outcome) -> Vec<u64> {
        match o {
            Outcome::Deliver(v) | Outcome::GapReset(v) => v.iter().map(|d| d.seq).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn order_1_2_3_dedupe_and_reorder() {
        let t = Instant::ZERO;
        let mut c = ChannelOrder::default();
        assert_eq!(seqs(&c.accept(t, d(5))), vec![5]);
        assert_eq!(c.accept(t, d(5)), Outcome::Duplicate);
        assert_eq!(c.accept(t, d(3)), Outcome::Duplicate);
        assert_eq!(c.accept(t, d(7)), Outcome::Held);
        assert_eq!(c.accept(t, d(7)), Outcome::Duplicate);
        assert_eq!(c.accept(t, d(8)), Outcome::Held);
        assert_eq!(seqs(&c.accept(t, d(6))), vec![6, 7, 8]);
        assert_eq!(c.gap_deadline(), None);
        assert_eq!(c.duplicates(), 3);
    }

    #[test]
    fn order_4_gap_times_out_then_held_delivered_in_order() {
        let mut c = ChannelOrder::default();
        c.set_baseline(1);
        assert_eq!(c.accept(Instant::from_millis(10), d(4)), Outcome::Held);
        assert_eq!(c.accept(Instant::from_millis(20), d(3)), Outcome::Held);
        assert_eq!(c.expire(Instant::from_millis(5000)), None);
        let out = c.expire(Instant::from_millis(5010)).expect("gap expires");
        assert_eq!(out.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(c.last(), Some(4));
    }

    #[test]
    fn order_4_hold_overflow_resets() {
        let mut c = ChannelOrder::default();
        c.set_baseline(0);
        for s in 2..(2 + MAX_HELD as u64) {
            assert_eq!(c.accept(Instant::ZERO, d(s)), Outcome::Held);
        }
        let o = c.accept(Instant::ZERO, d(5000));
        assert!(matches!(o, Outcome::GapReset(ref v) if v.len() == MAX_HELD + 1));
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn wire_7_baseline_never_moves_back() {
        let mut c = ChannelOrder::default();
        c.accept(Instant::ZERO, d(10));
        c.set_baseline(7);
        assert_eq!(c.last(), Some(10));
        assert_eq!(c.accept(Instant::ZERO, d(9)), Outcome::Duplicate);
    }
}
