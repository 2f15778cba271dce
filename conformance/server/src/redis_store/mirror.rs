//! The instance's local copy of each channel's newest messages, fed by the fan-out, so live delivery reads no Redis.
//!
//! Per channel a window of consecutive messages `first..=last` as announced on pub/sub
//! (whose order per channel is the append order: the append script publishes). A message
//! that does not follow `last` restarts the window. The whole mirror is cleared when the
//! pub/sub link drops, since announcements may have been missed. Reads the window cannot
//! answer for sure go to Redis.

use crate::store::StoredMsg;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

struct Window {
    msgs: VecDeque<StoredMsg>,
    /// Bumped on every append: eviction picks the least recently appended channel.
    touched: u64,
}

/// What the mirror can say about a read after `after`.
#[derive(Debug, PartialEq)]
pub(crate) enum Hit {
    /// The messages after `after` it holds (empty: `after` is the newest it knows of; anything
    /// newer has not been announced yet and will be).
    Msgs(Vec<StoredMsg>),
    /// Not covered: ask Redis.
    Miss,
}

pub(crate) struct Mirror {
    per_channel: usize,
    max_channels: usize,
    /// Most messages held over every channel.
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    windows: HashMap<String, Window>,
    clock: u64,
    total: usize,
}

impl Mirror {
    /// Keep up to `per_channel` messages for up to `max_channels` channels, and at most
    /// `budget` messages in all (0: no mirror).
    pub fn new(per_channel: usize, max_channels: usize, budget: usize) -> Mirror {
        Mirror {
            per_channel,
            max_channels,
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Evict the least recently appended window other than `keep`.
    fn evict_one(inner: &mut Inner, keep: &str) -> bool {
        let oldest = inner
            .windows
            .iter()
            .filter(|(k, _)| k.as_str() != keep)
            .min_by_key(|(_, w)| w.touched)
            .map(|(k, _)| k.clone());
        match oldest.and_then(|k| inner.windows.remove(&k)) {
            Some(w) => {
                inner.total -= w.msgs.len();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An announced append.
    pub fn push(&self, channel: &str, msg: StoredMsg) {
        if self.per_channel == 0 || self.max_channels == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        if !inner.windows.contains_key(channel) && inner.windows.len() >= self.max_channels {
            Self::evict_one(&mut inner, channel);
        }
        let w = inner
            .windows
            .entry(channel.to_owned())
            .or_insert_with(|| Window {
                msgs: VecDeque::new(),
                touched: clock,
            });
        w.touched = clock;
        let before = w.msgs.len();
        let follows = w.msgs.back().is_some_and(|m| m.seq + 1 == msg.seq);
        if !follows {
            w.msgs.clear();
        }
        w.msgs.push_back(msg);
        while w.msgs.len() > self.per_channel {
            w.msgs.pop_front();
        }
        let after = w.msgs.len();
        inner.total = inner.total + after - before;
        while inner.total > self.budget {
            if !Self::evict_one(&mut inner, channel) {
                // Only this channel is left: shorten it.
                if let Some(w) = inner.windows.get_mut(channel) {
                    w.msgs.pop_front();
                }
                inner.total -= 1;
            }
        }
    }

    /// Up to `max` messages after `after`, when the window covers `after + 1`.
    pub fn read_after(&self, channel: &str, after: u64, max: usize) -> Hit {
        let inner = self.lock();
        let Some(w) = inner.windows.get(channel) else {
            return Hit::Miss;
        };
        let (Some(first), Some(last)) = (w.msgs.front(), w.msgs.back()) else {
            return Hit::Miss;
        };
        if after == last.seq {
            return Hit::Msgs(Vec::new());
        }
        if after + 1 < first.seq || after > last.seq {
            // Older than the window (Redis has it, or says gone), or beyond what was
            // announced (a position placed at Redis' head, or from before a data loss).
            return Hit::Miss;
        }
        let skip = usize::try_from(after + 1 - first.seq).unwrap_or(usize::MAX);
        Hit::Msgs(w.msgs.iter().skip(skip).take(max.max(1)).cloned().collect())
    }

    /// Forget everything (the announcements may have gaps).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.windows.clear();
        inner.total = 0;
    }

    /// Channels mirrored.
    #[cfg(test)]
    pub fn channels(&self) -> usize {
        self.lock().windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn m(seq: u64) -> StoredMsg {
        StoredMsg {
            seq,
            data: Arc::new(json!(seq)),
        }
    }

    fn seqs(h: Hit) -> Option<Vec<u64>> {
        match h {
            Hit::Msgs(v) => Some(v.iter().map(|m| m.seq).collect()),
            Hit::Miss => None,
        }
    }

    #[test]
    fn window_answers_only_what_it_covers() {
        let mi = Mirror::new(3, 10, 100);
        assert_eq!(mi.read_after("c", 0, 10), Hit::Miss);
        for s in 5..=9 {
            mi.push("c", m(s));
        }
        // Holds 7, 8, 9.
        assert_eq!(seqs(mi.read_after("c", 6, 10)), Some(vec![7, 8, 9]));
        assert_eq!(seqs(mi.read_after("c", 7, 1)), Some(vec![8]));
        assert_eq!(seqs(mi.read_after("c", 9, 10)), Some(vec![]));
        // 6 is older than the window's first message: Redis has to say.
        assert_eq!(mi.read_after("c", 5, 10), Hit::Miss);
        // Beyond the newest announced: Redis has to say (placed at its head, or a data loss).
        assert_eq!(mi.read_after("c", 12, 10), Hit::Miss);
    }

    #[test]
    fn a_gap_restarts_the_window_and_clear_forgets() {
        let mi = Mirror::new(10, 10, 100);
        mi.push("c", m(1));
        mi.push("c", m(2));
        mi.push("c", m(5));
        assert_eq!(mi.read_after("c", 1, 10), Hit::Miss);
        assert_eq!(seqs(mi.read_after("c", 4, 10)), Some(vec![5]));
        mi.clear();
        assert_eq!(mi.read_after("c", 4, 10), Hit::Miss);
    }

    #[test]
    fn channel_count_is_bounded() {
        let mi = Mirror::new(2, 2, 100);
        mi.push("a", m(1));
        mi.push("b", m(1));
        mi.push("a", m(2));
        mi.push("c", m(1));
        assert_eq!(mi.channels(), 2);
        assert_eq!(
            mi.read_after("b", 0, 10),
            Hit::Miss,
            "least recently appended evicted"
        );
        assert_eq!(seqs(mi.read_after("a", 1, 10)), Some(vec![2]));
    }

    #[test]
    fn message_budget_is_bounded_over_channels() {
        let mi = Mirror::new(10, 10, 5);
        for s in 1..=4 {
            mi.push("a", m(s));
        }
        for s in 1..=3 {
            mi.push("b", m(s));
        }
        assert_eq!(
            mi.read_after("a", 0, 10),
            Hit::Miss,
            "a evicted to stay within 5"
        );
        assert_eq!(seqs(mi.read_after("b", 0, 10)), Some(vec![1, 2, 3]));
        for s in 4..=9 {
            mi.push("b", m(s));
        }
        assert_eq!(seqs(mi.read_after("b", 4, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(mi.read_after("b", 3, 10), Hit::Miss);
    }
}
