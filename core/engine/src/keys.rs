//! Idempotency keys of publishes (SPEC OUTBOX-1): a client id from host entropy, kept in the memo with a reserved counter block, so keys never repeat.
//!
//! A key is `<client id>-<counter>`. The client id is 64 bits the host took from the OS
//! (`Config::id_entropy`), never the backoff seed: two clients given the same seed
//! (BACKOFF-7 allows it) still get different ids. The id is kept in the memo, with a
//! high-water mark `keys_reserved`: every counter value up to it may have been used. Before
//! a counter above the mark is used, the mark is raised by [`KEY_BLOCK`] and the memo saved,
//! so the memo is written once per block, not per publish, and a restarted client, even
//! after a crash, continues after the mark: it may skip numbers, never repeat one.

use crate::rng::Rng;
use crate::store::Memo;
use core::sync::atomic::{AtomicU64, Ordering};

/// Counter values reserved per memo write.
pub const KEY_BLOCK: u64 = 1_000;

/// Longest client id accepted from a memo.
const MAX_CLIENT_ID: usize = 64;

/// Engines created in this process without host entropy (the fallback mixes it in).
static UNSEEDED: AtomicU64 = AtomicU64::new(0);

/// The key generator of one engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    client_id: String,
    /// The last counter value handed out.
    counter: u64,
    /// Counter values up to this one are reserved in the saved memo.
    reserved: u64,
}

/// What [`Keys::next`] needs before the key may be used.
#[derive(Clone, Debug, PartialEq)]
pub enum NextKey {
    /// The counter is inside the reserved block: use the key.
    Ready(String),
    /// Save `memo` first (it reserves a new block); then call [`Keys::reserved`] and use the key.
    Reserve { key: String, memo: Box<Memo> },
}

impl Keys {
    /// The generator for a client whose memo is `memo`: the stored id and the next counter
    /// after its reserved mark, or a fresh id (from `entropy`, else the fallback) at 0.
    pub fn restore(memo: &Memo, entropy: Option<u64>, seed: u64, wall_unix_ms: u64) -> Keys {
        match memo.client_id.as_deref().filter(|id| valid_client_id(id)) {
            Some(id) => Keys {
                client_id: id.to_owned(),
                counter: memo.keys_reserved,
                reserved: memo.keys_reserved,
            },
            None => Keys {
                client_id: fresh_client_id(entropy, seed, wall_unix_ms),
                counter: 0,
                reserved: 0,
            },
        }
    }

    /// The client id (the prefix of every generated key).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The next key. Inside the reserved block it is ready; past it, the caller saves the
    /// returned memo (a copy of `memo` with this id and a mark [`KEY_BLOCK`] further) and,
    /// only once that succeeded, calls [`Keys::reserved`]. If the save fails the key is
    /// never used (its counter value is skipped).
    pub fn next(&mut self, memo: &Memo) -> NextKey {
        self.counter = self.counter.saturating_add(1);
        let key = format!("{}-{}", self.client_id, self.counter);
        if self.counter <= self.reserved && memo.client_id.as_deref() == Some(&self.client_id) {
            return NextKey::Ready(key);
        }
        let mut memo = Box::new(memo.clone());
        memo.client_id = Some(self.client_id.clone());
        memo.keys_reserved = self.counter.saturating_add(KEY_BLOCK - 1);
        NextKey::Reserve { key, memo }
    }

    /// The memo returned by [`Keys::next`] was saved: its block is reserved.
    pub fn reserved(&mut self, memo: &Memo) {
        self.reserved = self.reserved.max(memo.keys_reserved);
    }
}

/// An id a memo may hold: 1 to 64 visible ASCII characters.
fn valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// 16 hex digits from the host's entropy. Without it: the wall clock at first start, a
/// process-wide count of such engines and the seed, mixed; distinct within one process and
/// across restarts of one store (the id is then kept), not guaranteed between devices.
fn fresh_client_id(entropy: Option<u64>, seed: u64, wall_unix_ms: u64) -> String {
    let bits = match entropy {
        Some(e) => Rng::new(e).next_u64(),
        None => {
            let n = UNSEEDED.fetch_add(1, Ordering::Relaxed);
            Rng::new(wall_unix_ms ^ n.rotate_left(40) ^ seed.rotate_left(17) ^ 0x7E7E_0017)
                .next_u64()
        }
    };
    format!("{bits:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(keys: &mut Keys, memo: &mut Memo) -> String {
        match keys.next(memo) {
            NextKey::Ready(k) => k,
            NextKey::Reserve { key, memo: m } => {
                *memo = *m;
                keys.reserved(memo);
                key
            }
        }
    }

    #[test]
    fn outbox_1_id_comes_from_entropy_not_the_seed() {
        let m = Memo::default();
        let a = Keys::restore(&m, Some(1), 7, 0);
        let b = Keys::restore(&m, Some(2), 7, 0);
        assert_ne!(a.client_id(), b.client_id(), "same seed, other entropy");
        let c = Keys::restore(&m, Some(1), 8, 5);
        assert_eq!(
            a.client_id(),
            c.client_id(),
            "the seed and the clock play no part"
        );
        assert_eq!(a.client_id().len(), 16);
        // Without entropy: two engines of one process differ even with the same seed and clock.
        let d = Keys::restore(&m, None, 7, 0);
        let e = Keys::restore(&m, None, 7, 0);
        assert_ne!(d.client_id(), e.client_id());
    }

    #[test]
    fn outbox_1_one_memo_write_per_block_and_restart_continues_after_it() {
        let mut memo = Memo::default();
        let mut keys = Keys::restore(&memo, Some(9), 0, 0);
        let id = keys.client_id().to_owned();
        assert!(
            matches!(keys.next(&memo), NextKey::Reserve { ref key, .. } if *key == format!("{id}-1"))
        );
        // That key was not used (the save "failed"): the next one asks again, one further.
        let mut writes = 0;
        let mut used = Vec::new();
        for _ in 0..2_500 {
            match keys.next(&memo) {
                NextKey::Ready(k) => used.push(k),
                NextKey::Reserve { key, memo: m } => {
                    writes += 1;
                    memo = *m;
                    keys.reserved(&memo);
                    used.push(key);
                }
            }
        }
        assert_eq!(writes, 3, "blocks at 2, 1002 and 2002");
        assert_eq!(memo.keys_reserved, 2_002 + KEY_BLOCK - 1);
        assert_eq!(used[0], format!("{id}-2"));
        // A restart (or a crash) continues after the mark: nothing used is repeated.
        let mut again = Keys::restore(&memo, Some(123), 0, 0);
        assert_eq!(again.client_id(), id, "the stored id wins over new entropy");
        let next = take(&mut again, &mut memo);
        assert_eq!(next, format!("{id}-{}", 2_002 + KEY_BLOCK));
        assert!(!used.contains(&next));
    }

    #[test]
    fn outbox_1_a_bad_stored_id_is_replaced() {
        for bad in ["", "with space", &"x".repeat(65)] {
            let memo = Memo {
                client_id: Some(bad.to_owned()),
                keys_reserved: 50,
                ..Memo::default()
            };
            let mut keys = Keys::restore(&memo, Some(4), 0, 0);
            assert_ne!(keys.client_id(), bad);
            // The fresh id is not yet in the memo: its first key reserves a block.
            assert!(matches!(keys.next(&memo), NextKey::Reserve { .. }));
        }
    }
}
