//! The persistence trait for the outbox and the memo, and the in-memory store (SPEC OUTBOX-8, BACKOFF-10, FALLBACK-5, READY-2).

use crate::error::StoreError;
use crate::policy::PolicyWire;
use crate::transport::TransportKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One queued publish as it is persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The idempotency key (OUTBOX-1).
    pub id: String,
    pub channel: String,
    /// The payload as JSON text.
    pub data: String,
    /// Wall-clock enqueue time in ms since the UNIX epoch (ages survive restarts).
    pub enqueued_unix_ms: u64,
}

impl OutboxRecord {
    /// Bytes this record counts against `outbox_max_bytes`.
    pub fn size(&self) -> usize {
        self.id.len() + self.channel.len() + self.data.len()
    }
}

/// What the client remembers across cold starts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memo {
    /// The last server-announced policy (BACKOFF-10).
    #[serde(default)]
    pub policy: Option<PolicyWire>,
    /// The working rung per endpoint (FALLBACK-5).
    #[serde(default)]
    pub transports: BTreeMap<String, TransportKind>,
    /// A retry-after deadline, wall-clock ms since the UNIX epoch (READY-2).
    #[serde(default)]
    pub retry_after_unix_ms: Option<u64>,
    /// The client id of generated publish keys (OUTBOX-1), once one was used.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Publish-key counters up to this value may have been used: a restart continues after
    /// it (OUTBOX-1).
    #[serde(default)]
    pub keys_reserved: u64,
}

/// Durable storage for the outbox and the memo. Calls are synchronous and must be
/// durable when they return `Ok` (OUTBOX-2).
pub trait Store {
    /// Every queued record, oldest first.
    fn load(&mut self) -> Result<Vec<OutboxRecord>, StoreError>;
    /// Persist a new record at the end of the queue.
    fn append(&mut self, record: &OutboxRecord) -> Result<(), StoreError>;
    /// Forget a record (acknowledged or dropped).
    fn remove(&mut self, id: &str) -> Result<(), StoreError>;
    /// The memo, if one was saved.
    fn load_memo(&mut self) -> Result<Option<Memo>, StoreError>;
    /// Replace the memo.
    fn save_memo(&mut self, memo: &Memo) -> Result<(), StoreError>;
}

/// A store in memory: the default, and the reference for tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    pub records: Vec<OutboxRecord>,
    pub memo: Option<Memo>,
    /// When set, every write fails (for testing OUTBOX-2).
    pub fail_writes: bool,
}

impl MemoryStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.fail_writes {
            Err(StoreError("memory store set to fail".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Vec<OutboxRecord>, StoreError> {
        Ok(self.records.clone())
    }
    fn append(&mut self, record: &OutboxRecord) -> Result<(), StoreError> {
        self.check()?;
        self.records.push(record.clone());
        Ok(())
    }
    fn remove(&mut self, id: &str) -> Result<(), StoreError> {
        self.check()?;
        self.records.retain(|r| r.id != id);
        Ok(())
    }
    fn load_memo(&mut self) -> Result<Option<Memo>, StoreError> {
        Ok(self.memo.clone())
    }
    fn save_memo(&mut self, memo: &Memo) -> Result<(), StoreError> {
        self.check()?;
        self.memo = Some(memo.clone());
        Ok(())
    }
}

/// A store shared behind a mutex, so its state outlives the engine or client that owns a
/// handle to it (cold starts); a poisoned mutex is an error, never a panic.
impl<S: Store + ?Sized> Store for Arc<Mutex<S>> {
    fn load(&mut self) -> Result<Vec<OutboxRecord>, StoreError> {
        locked(self)?.load()
    }
    fn append(&mut self, record: &OutboxRecord) -> Result<(), StoreError> {
        locked(self)?.append(record)
    }
    fn remove(&mut self, id: &str) -> Result<(), StoreError> {
        locked(self)?.remove(id)
    }
    fn load_memo(&mut self) -> Result<Option<Memo>, StoreError> {
        locked(self)?.load_memo()
    }
    fn save_memo(&mut self, memo: &Memo) -> Result<(), StoreError> {
        locked(self)?.save_memo(memo)
    }
}

fn locked<S: ?Sized>(m: &Mutex<S>) -> Result<MutexGuard<'_, S>, StoreError> {
    m.lock()
        .map_err(|_| StoreError("store mutex poisoned".into()))
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
    fn shared_store_delegates_and_outlives_its_handle() {
        let shared = Arc::new(Mutex::new(MemoryStore::default()));
        let mut handle: Box<dyn Store + Send> = Box::new(shared.clone());
        handle.append(&record("a")).unwrap();
        handle.append(&record("b")).unwrap();
        handle.remove("a").unwrap();
        handle.save_memo(&Memo::default()).unwrap();
        drop(handle);
        let mut again = shared.clone();
        assert_eq!(again.load().unwrap(), vec![record("b")]);
        assert_eq!(again.load_memo().unwrap(), Some(Memo::default()));
        shared.lock().unwrap().fail_writes = true;
        assert!(again.append(&record("c")).is_err());
    }

    #[test]
    fn outbox_1_memo_without_key_fields_still_loads() {
        let old: Memo = serde_json::from_str(
            r#"{"policy":null,"transports":{"https://x/t":"sse"},"retry_after_unix_ms":5}"#,
        )
        .unwrap();
        assert_eq!(old.client_id, None);
        assert_eq!(old.keys_reserved, 0);
        assert_eq!(old.retry_after_unix_ms, Some(5));
        let new = Memo {
            client_id: Some("abc".into()),
            keys_reserved: 2_000,
            ..old
        };
        let back: Memo = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn shared_store_poisoned_mutex_is_an_error() {
        let shared = Arc::new(Mutex::new(MemoryStore::default()));
        let s2 = shared.clone();
        let _ = std::thread::spawn(move || {
            let _g = s2.lock().unwrap();
            panic!("poison the store mutex");
        })
        .join();
        let mut s = shared;
        let want = Err(StoreError("store mutex poisoned".into()));
        assert_eq!(s.load(), want);
        assert_eq!(
            s.append(&record("a")),
            Err(StoreError("store mutex poisoned".into()))
        );
        assert_eq!(
            s.remove("a"),
            Err(StoreError("store mutex poisoned".into()))
        );
        assert_eq!(
            s.load_memo(),
            Err(StoreError("store mutex poisoned".into()))
        );
        assert_eq!(
            s.save_memo(&Memo::default()),
            Err(StoreError("store mutex poisoned".into()))
        );
    }
}
