//! The engine's synchronous `Store` over an asynchronous browser database: a mirror in memory plus an ordered log of writes the driver carries out (OUTBOX-2, OUTBOX-8).
//!
//! # Design: how "queued" means "durable" when IndexedDB is asynchronous
//!
//! The engine calls `Store::append` synchronously inside `publish` and expects it to be
//! durable when it returns `Ok`. IndexedDB only reports durability later, in a transaction's
//! `complete` event. The browser client therefore splits the store in two:
//!
//! 1. [`Mirror`], the store the engine owns: the outbox records and the memo in memory,
//!    which answers every `Store` call at once, and records each change as a [`Write`]
//!    in an ordered log.
//! 2. The writer ([`idb::Writer`]), owned by the driver: after every engine input the
//!    driver takes the log and issues one IndexedDB transaction per write, in order
//!    (IndexedDB runs read-write transactions on the same object store in the order they
//!    were created, so the database goes through the same states as the mirror).
//!
//! A publish's *queued* promise (`enqueue()` in the JavaScript API, the adapter's `publish`
//! reply) resolves only on the `complete` event of the transaction that wrote its record,
//! with `durability: "strict"` (flushed to disk, not just handed to the OS). So "queued"
//! keeps OUTBOX-2's meaning: the app is told only once the record survives a reload or a
//! crashed tab. The engine may already send the publish before that: if the tab dies in
//! between, the server may have it (and acks it again on resend, OUTBOX-5) or not, but the
//! app was never told it was queued.
//!
//! If a write fails (quota, the database was deleted or blocked), the writer marks the
//! mirror broken: that publish's *queued* promise rejects with `store_failed`, and every later
//! `append` fails at once with `store_failed` (OUTBOX-2: nothing is queued), so no caller is
//! told "queued" for a record that is not durable. Records already queued stay in memory and
//! are still sent.
//!
//! Acks remove records and memo updates replace the memo with ordinary (relaxed) transactions:
//! losing the last of them in a crash only means a resend the server deduplicates, or an
//! older memo.

pub mod idb;

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard};
use tether_engine::{Memo, OutboxRecord, Store, StoreError};

/// One change to carry out on the database, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Put `record` under `key` (keys grow with every append: the queue order).
    Put { key: u64, record: OutboxRecord },
    /// Delete the record under `key`.
    Delete { key: u64 },
    /// Replace the memo (boxed: it is far larger than the other writes).
    Memo(Box<Memo>),
}

/// A persisted record: the key that orders it and the record itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Keyed {
    pub key: u64,
    pub record: OutboxRecord,
}

#[derive(Debug, Default)]
struct State {
    records: Vec<Keyed>,
    memo: Option<Memo>,
    next_key: u64,
    log: Vec<Write>,
    /// Log writes at all (false for the memory store: nothing to carry out).
    persistent: bool,
    /// Why the database can no longer be trusted to keep appends (see the module docs).
    broken: Option<String>,
}

/// The store the engine owns; clones share the same state (the driver keeps one to take the
/// write log and to mark the store broken).
#[derive(Clone, Debug, Default)]
pub struct Mirror {
    state: Arc<Mutex<State>>,
}

impl Mirror {
    /// A store that keeps everything in memory only (lost with the page).
    pub fn memory() -> Mirror {
        Mirror::default()
    }

    /// A mirror of a database holding `records` (any order; sorted by key) and `memo`.
    pub fn persistent(mut records: Vec<Keyed>, memo: Option<Memo>) -> Mirror {
        records.sort_by_key(|k| k.key);
        let next_key = records.last().map_or(1, |k| k.key.saturating_add(1));
        Mirror {
            state: Arc::new(Mutex::new(State {
                records,
                memo,
                next_key,
                log: Vec::new(),
                persistent: true,
                broken: None,
            })),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError("store mutex poisoned".into()))
    }

    /// The writes made since the last call, oldest first.
    pub fn take_writes(&self) -> Vec<Write> {
        self.lock()
            .map(|mut s| std::mem::take(&mut s.log))
            .unwrap_or_default()
    }

    /// The database failed to keep a write: refuse appends from now on (OUTBOX-2).
    pub fn mark_broken(&self, why: &str) {
        if let Ok(mut s) = self.lock() {
            if s.broken.is_none() {
                s.broken = Some(why.to_owned());
            }
        }
    }

    /// Why appends are refused, if they are.
    pub fn broken(&self) -> Option<String> {
        self.lock().ok().and_then(|s| s.broken.clone())
    }
}

impl Store for Mirror {
    fn load(&mut self) -> Result<Vec<OutboxRecord>, StoreError> {
        Ok(self
            .lock()?
            .records
            .iter()
            .map(|k| k.record.clone())
            .collect())
    }

    fn append(&mut self, record: &OutboxRecord) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if let Some(why) = &s.broken {
            return Err(StoreError(format!("the browser store failed: {why}")));
        }
        let key = s.next_key;
        s.next_key = key.saturating_add(1);
        s.records.push(Keyed {
            key,
            record: record.clone(),
        });
        if s.persistent {
            s.log.push(Write::Put {
                key,
                record: record.clone(),
            });
        }
        Ok(())
    }

    fn remove(&mut self, id: &str) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let keys: Vec<u64> = s
            .records
            .iter()
            .filter(|k| k.record.id == id)
            .map(|k| k.key)
            .collect();
        s.records.retain(|k| k.record.id != id);
        if s.persistent {
            for key in keys {
                s.log.push(Write::Delete { key });
            }
        }
        Ok(())
    }

    fn load_memo(&mut self) -> Result<Option<Memo>, StoreError> {
        Ok(self.lock()?.memo.clone())
    }

    fn save_memo(&mut self, memo: &Memo) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.memo = Some(memo.clone());
        if s.persistent {
            s.log.push(Write::Memo(Box::new(memo.clone())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> OutboxRecord {
        OutboxRecord {
            id: id.into(),
            channel: "c".into(),
            data: "1".into(),
            enqueued_unix_ms: 7,
        }
    }

    #[test]
    fn outbox_8_restores_in_key_order_and_continues_keys() {
        let mut m = Mirror::persistent(
            vec![
                Keyed {
                    key: 9,
                    record: record("b"),
                },
                Keyed {
                    key: 3,
                    record: record("a"),
                },
            ],
            None,
        );
        assert_eq!(m.load().unwrap(), vec![record("a"), record("b")]);
        m.append(&record("c")).unwrap();
        assert_eq!(
            m.take_writes(),
            vec![Write::Put {
                key: 10,
                record: record("c")
            }]
        );
    }

    #[test]
    fn writes_are_logged_in_order() {
        let mut m = Mirror::persistent(Vec::new(), None);
        m.append(&record("a")).unwrap();
        m.append(&record("b")).unwrap();
        m.remove("a").unwrap();
        m.save_memo(&Memo::default()).unwrap();
        assert_eq!(
            m.take_writes(),
            vec![
                Write::Put {
                    key: 1,
                    record: record("a")
                },
                Write::Put {
                    key: 2,
                    record: record("b")
                },
                Write::Delete { key: 1 },
                Write::Memo(Box::default()),
            ]
        );
        assert!(m.take_writes().is_empty());
        assert_eq!(m.load().unwrap(), vec![record("b")]);
    }

    #[test]
    fn outbox_2_a_broken_store_refuses_appends() {
        let mut m = Mirror::persistent(Vec::new(), None);
        let handle = m.clone();
        handle.mark_broken("QuotaExceededError");
        let err = m.append(&record("a")).unwrap_err();
        assert!(err.0.contains("QuotaExceededError"));
        assert!(m.load().unwrap().is_empty());
        // Removing and the memo still work in memory.
        m.remove("x").unwrap();
        m.save_memo(&Memo::default()).unwrap();
        assert_eq!(handle.broken().as_deref(), Some("QuotaExceededError"));
    }

    #[test]
    fn memory_store_logs_nothing() {
        let mut m = Mirror::memory();
        m.append(&record("a")).unwrap();
        m.save_memo(&Memo::default()).unwrap();
        assert!(m.take_writes().is_empty());
        assert_eq!(m.load().unwrap(), vec![record("a")]);
    }
}
