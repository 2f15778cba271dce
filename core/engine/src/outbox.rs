//! The outbox: publishes kept until acknowledged, bounded by count, bytes and age, persisted through a `Store` (SPEC OUTBOX-1..8).

use crate::error::{CallError, StoreError};
use crate::event::DropReason;
use crate::policy::{DropPolicy, Policy};
use crate::store::{OutboxRecord, Store};
use crate::transport::ConnId;
use std::collections::VecDeque;

/// One queued publish and the connection it was last sent on.
#[derive(Clone, Debug)]
struct Entry {
    record: OutboxRecord,
    sent_on: Option<ConnId>,
}

/// A publish that left the outbox without an ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drop {
    pub id: String,
    pub reason: DropReason,
}

/// The ordered queue of unacknowledged publishes.
pub struct Outbox {
    entries: VecDeque<Entry>,
    bytes: usize,
    store: Box<dyn Store + Send>,
}

impl core::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Outbox")
            .field("len", &self.entries.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Outbox {
    /// An outbox over `store`, restoring what the store holds (OUTBOX-8).
    pub fn restore(mut store: Box<dyn Store + Send>) -> (Outbox, Result<(), StoreError>) {
        let loaded = store.load();
        let (records, result) = match loaded {
            Ok(r) => (r, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        let mut outbox = Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            store,
        };
        for record in records {
            if outbox.contains(&record.id) {
                continue;
            }
            outbox.bytes += record.size();
            outbox.entries.push_back(Entry {
                record,
                sent_on: None,
            });
        }
        (outbox, result)
    }

    /// The store, for the memo.
    pub fn store_mut(&mut self) -> &mut (dyn Store + Send) {
        self.store.as_mut()
    }

    /// Number of queued publishes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes queued (OUTBOX-6).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Is a publish with this id queued?
    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.record.id == id)
    }

    /// Enqueue a record, durable before returning (OUTBOX-2); makes room per the drop
    /// policy (OUTBOX-6). Returns the publishes dropped for room.
    pub fn push(&mut self, record: OutboxRecord, policy: &Policy) -> Result<Vec<Drop>, CallError> {
        let size = record.size();
        if size > policy.outbox_max_bytes {
            return Err(CallError::MessageTooLarge {
                size,
                limit: policy.outbox_max_bytes,
            });
        }
        let mut victims = 0;
        let mut count = self.entries.len();
        let mut bytes = self.bytes;
        while count + 1 > policy.outbox_max_count.max(1) || bytes + size > policy.outbox_max_bytes {
            if policy.drop_policy == DropPolicy::RejectNew {
                return Err(CallError::OutboxFull);
            }
            let Some(victim) = self.entries.get(victims) else {
                break;
            };
            bytes -= victim.record.size();
            count -= 1;
            victims += 1;
        }
        self.store.append(&record)?;
        let mut dropped = Vec::with_capacity(victims);
        for _ in 0..victims {
            if let Some(id) = self.entries.front().map(|e| e.record.id.clone()) {
                self.remove(&id);
                dropped.push(Drop {
                    id,
                    reason: DropReason::Overflow,
                });
            }
        }
        self.bytes += size;
        self.entries.push_back(Entry {
            record,
            sent_on: None,
        });
        Ok(dropped)
    }

    /// Remove a publish (acknowledged or dropped). Returns it if it was queued.
    pub fn remove(&mut self, id: &str) -> Option<OutboxRecord> {
        let pos = self.entries.iter().position(|e| e.record.id == id)?;
        let entry = self.entries.remove(pos)?;
        self.bytes -= entry.record.size();
        // A failed removal leaves a record that the next start resends: the server dedupes it (OUTBOX-5).
        let _ = self.store.remove(id);
        Some(entry.record)
    }

    /// Drop every publish older than the policy's max age at wall time `now_unix_ms`.
    pub fn expire(&mut self, now_unix_ms: u64, policy: &Policy) -> Vec<Drop> {
        let max_age = u64::try_from(policy.outbox_max_age.as_millis()).unwrap_or(u64::MAX);
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|e| now_unix_ms.saturating_sub(e.record.enqueued_unix_ms) >= max_age)
            .map(|e| e.record.id.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|id| {
                self.remove(&id).map(|r| Drop {
                    id: r.id,
                    reason: DropReason::Expired,
                })
            })
            .collect()
    }

    /// Wall time (ms) at which the oldest publish expires.
    pub fn next_expiry_unix_ms(&self, policy: &Policy) -> Option<u64> {
        let max_age = u64::try_from(policy.outbox_max_age.as_millis()).unwrap_or(u64::MAX);
        self.entries
            .iter()
            .map(|e| e.record.enqueued_unix_ms.saturating_add(max_age))
            .min()
    }

    /// Take the next publishes to send on `conn`, in order, keeping at most
    /// `max_in_flight` unacknowledged on it (OUTBOX-3, OUTBOX-4).
    pub fn take_sendable(&mut self, conn: ConnId, max_in_flight: usize) -> Vec<OutboxRecord> {
        let in_flight = self
            .entries
            .iter()
            .filter(|e| e.sent_on == Some(conn))
            .count();
        let room = max_in_flight.saturating_sub(in_flight);
        let mut out = Vec::new();
        for entry in self.entries.iter_mut() {
            if out.len() >= room {
                break;
            }
            if entry.sent_on != Some(conn) {
                entry.sent_on = Some(conn);
                out.push(entry.record.clone());
            }
        }
        out
    }

    /// Mark everything sent on `conn` as unsent (a POST failed).
    pub fn unsend(&mut self, conn: ConnId) {
        for e in self.entries.iter_mut().filter(|e| e.sent_on == Some(conn)) {
            e.sent_on = None;
        }
    }

    /// Ids in queue order.
    pub fn ids(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.record.id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn rec(id: &str, bytes: usize, at: u64) -> OutboxRecord {
        OutboxRecord {
            id: id.into(),
            channel: "c".into(),
            data: "x".repeat(bytes),
            enqueued_unix_ms: at,
        }
    }

    fn policy(count: usize, bytes: usize, drop: DropPolicy) -> Policy {
        Policy {
            outbox_max_count: count,
            outbox_max_bytes: bytes,
            drop_policy: drop,
            ..Policy::default()
        }
    }

    #[test]
    fn outbox_6_drop_oldest_by_count_and_bytes() {
        let (mut o, _) = Outbox::restore(Box::new(MemoryStore::default()));
        let p = policy(2, 1000, DropPolicy::DropOldest);
        assert!(o.push(rec("a", 10, 0), &p).expect("a").is_empty());
        assert!(o.push(rec("b", 10, 0), &p).expect("b").is_empty());
        let dropped = o.push(rec("c", 10, 0), &p).expect("c");
        assert_eq!(
            dropped,
            vec![Drop {
                id: "a".into(),
                reason: DropReason::Overflow
            }]
        );
        let p = policy(10, 50, DropPolicy::DropOldest);
        let dropped = o.push(rec("d", 30, 0), &p).expect("d");
        assert_eq!(dropped.len(), 1, "b dropped to fit 50 bytes");
        assert_eq!(o.ids(), vec!["c", "d"]);
    }

    #[test]
    fn outbox_6_reject_new_and_expiry() {
        let (mut o, _) = Outbox::restore(Box::new(MemoryStore::default()));
        let p = Policy {
            outbox_max_age: core::time::Duration::from_secs(1),
            ..policy(1, 1000, DropPolicy::RejectNew)
        };
        o.push(rec("a", 1, 100), &p).expect("a");
        assert_eq!(o.push(rec("b", 1, 100), &p), Err(CallError::OutboxFull));
        assert_eq!(o.next_expiry_unix_ms(&p), Some(1100));
        assert!(o.expire(1099, &p).is_empty());
        assert_eq!(
            o.expire(1100, &p),
            vec![Drop {
                id: "a".into(),
                reason: DropReason::Expired
            }]
        );
    }

    #[test]
    fn outbox_2_store_failure_queues_nothing() {
        let store = MemoryStore {
            fail_writes: true,
            ..Default::default()
        };
        let (mut o, _) = Outbox::restore(Box::new(store));
        let err = o
            .push(rec("a", 1, 0), &Policy::default())
            .expect_err("store fails");
        assert_eq!(err.code(), crate::error::ErrorCode::StoreFailed);
        assert!(o.is_empty());
    }

    #[test]
    fn outbox_3_in_flight_window_and_resend_on_new_conn() {
        let (mut o, _) = Outbox::restore(Box::new(MemoryStore::default()));
        let p = Policy::default();
        for i in 0..5 {
            o.push(rec(&format!("m{i}"), 1, 0), &p).expect("push");
        }
        let first: Vec<_> = o
            .take_sendable(ConnId(1), 3)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(first, vec!["m0", "m1", "m2"]);
        assert!(o.take_sendable(ConnId(1), 3).is_empty());
        o.remove("m0");
        assert_eq!(o.take_sendable(ConnId(1), 3).len(), 1);
        let again: Vec<_> = o
            .take_sendable(ConnId(2), 10)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            again,
            vec!["m1", "m2", "m3", "m4"],
            "OUTBOX-4: resend all, in order"
        );
    }
}
