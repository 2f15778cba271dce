//! The file store fuzz target's input and checks: arbitrary bytes as the outbox log and the
//! memo, then appends, removes and memo saves, then reopens. Recovery never panics and never
//! allocates from a length field; after recovery the store behaves exactly like the
//! in-memory reference store, and everything it acknowledged survives every reopen.
//!
//! Input: a flags byte (bits 0-2: `compact_min_dead`; bit 3: a memo file follows the log;
//! bit 4: a stale compaction file is left behind), the log as a little-endian `u16` length
//! and its bytes, the memo likewise, then operations to the end: `0` append (id, data
//! length, enqueue time: one byte each), `2` remove (id), `3` save the memo (retry byte).

use crate::alloc;
use crate::file_store::{FileStore, FileStoreOptions, LOG_FILE, LOG_TMP_FILE, MEMO_FILE};
use arbitrary::{Arbitrary, Result, Unstructured};
use std::fs;
use std::path::{Path, PathBuf};
use tether_engine::{Memo, MemoryStore, OutboxRecord, Store};

/// One fuzz input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreCase {
    pub flags: u8,
    pub log: Vec<u8>,
    pub memo: Option<Vec<u8>>,
    pub ops: Vec<StoreOp>,
}

/// What the app does with the recovered store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    Append { id: u8, len: u8, at: u8 },
    Remove { id: u8 },
    SaveMemo { retry: u8 },
}

fn blob(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let len = usize::from(u16::arbitrary(u)?).min(u.len());
    Ok(u.bytes(len)?.to_vec())
}

impl<'a> Arbitrary<'a> for StoreCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let flags = u8::arbitrary(u)?;
        let log = blob(u)?;
        let memo = if flags & 8 != 0 { Some(blob(u)?) } else { None };
        let mut ops = Vec::new();
        while !u.is_empty() {
            ops.push(match u8::arbitrary(u)? % 4 {
                0 | 1 => StoreOp::Append {
                    id: u8::arbitrary(u)?,
                    len: u8::arbitrary(u)?,
                    at: u8::arbitrary(u)?,
                },
                2 => StoreOp::Remove {
                    id: u8::arbitrary(u)?,
                },
                _ => StoreOp::SaveMemo {
                    retry: u8::arbitrary(u)?,
                },
            });
        }
        Ok(StoreCase {
            flags,
            log,
            memo,
            ops,
        })
    }
}

impl StoreCase {
    /// Read a case from fuzz input (missing bytes read as zeros).
    pub fn decode(data: &[u8]) -> StoreCase {
        StoreCase::arbitrary(&mut Unstructured::new(data)).unwrap_or(StoreCase {
            flags: 0,
            log: Vec::new(),
            memo: None,
            ops: Vec::new(),
        })
    }

    /// The bytes [`StoreCase::decode`] reads back as this case.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![match self.memo {
            Some(_) => self.flags | 8,
            None => self.flags & !8,
        }];
        for b in std::iter::once(&self.log).chain(self.memo.as_ref()) {
            let b = &b[..b.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(b.len() as u16).to_le_bytes());
            out.extend_from_slice(b);
        }
        for op in &self.ops {
            match op {
                StoreOp::Append { id, len, at } => out.extend_from_slice(&[0, *id, *len, *at]),
                StoreOp::Remove { id } => out.extend_from_slice(&[2, *id]),
                StoreOp::SaveMemo { retry } => out.extend_from_slice(&[3, *retry]),
            }
        }
        out
    }
}

/// The record an `Append` op writes.
pub fn record(id: u8, len: u8, at: u8) -> OutboxRecord {
    OutboxRecord {
        id: format!("k{}", id % 8),
        channel: "c".into(),
        data: serde_json::json!("d".repeat(usize::from(len))).to_string(),
        enqueued_unix_ms: u64::from(at),
    }
}

fn memo(retry: u8) -> Memo {
    Memo {
        retry_after_unix_ms: Some(u64::from(retry)),
        ..Memo::default()
    }
}

/// A private scratch directory, on tmpfs when there is one (fsync is then cheap). libFuzzer
/// ends processes without running destructors, so the directories of processes that are
/// gone are removed here.
pub fn scratch_dir() -> PathBuf {
    const PREFIX: &str = "tether-fuzz-store-";
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let procs = Path::new("/proc/self").exists();
    for entry in fs::read_dir(&base)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|_| procs)
    {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
        if pid.is_some_and(|p| !Path::new("/proc").join(p).exists()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    base.join(format!("{PREFIX}{}", std::process::id()))
}

fn reopen(dir: &Path, options: &FileStoreOptions) -> FileStore {
    FileStore::open_with(dir, options.clone())
        .unwrap_or_else(|e| panic!("reopening a store it wrote itself failed: {e}"))
}

/// Run the case in `dir` (emptied first) and check it.
pub fn run(case: &StoreCase, dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("scratch directory");
    fs::write(dir.join(LOG_FILE), &case.log).expect("write log");
    if let Some(m) = &case.memo {
        fs::write(dir.join(MEMO_FILE), m).expect("write memo");
    }
    if case.flags & 16 != 0 {
        fs::write(dir.join(LOG_TMP_FILE), &case.log).expect("write stale compaction file");
    }
    let options = FileStoreOptions {
        compact_min_dead: u64::from(case.flags & 7),
    };
    let input = case.log.len() + case.memo.as_ref().map_or(0, Vec::len);

    // Recovery: never panics, never allocates from a length field.
    let live = alloc::live();
    alloc::reset();
    let mut store = FileStore::open_with(dir, options.clone())
        .unwrap_or_else(|e| panic!("open must recover any log: {e}"));
    let recovered = store
        .load()
        .unwrap_or_else(|e| panic!("load after open: {e}"));
    let _ = store.load_memo(); // a damaged memo is a typed error, not a panic
    let used = alloc::usage(live);
    let bound = 2 * input + 256 * 1024;
    assert!(
        used.largest <= bound,
        "an allocation of {} bytes from {input} bytes of files",
        used.largest
    );
    let stats = store.stats();
    assert_eq!(
        fs::metadata(dir.join(LOG_FILE)).map(|m| m.len()).ok(),
        Some(stats.log_bytes),
        "the log on disk is what the store thinks it is"
    );
    assert!(
        !dir.join(LOG_TMP_FILE).exists(),
        "a stale compaction file is removed"
    );
    assert_eq!(stats.live_records as usize, recovered.len());

    // After recovery the store is the reference store.
    let mut model = MemoryStore {
        records: recovered,
        ..MemoryStore::default()
    };
    let mut saved = None;
    for op in &case.ops {
        match op {
            StoreOp::Append { id, len, at } => {
                let r = record(*id, *len, *at);
                store.append(&r).expect("append");
                model.append(&r).expect("model append");
            }
            StoreOp::Remove { id } => {
                let id = format!("k{}", id % 8);
                store.remove(&id).expect("remove");
                model.remove(&id).expect("model remove");
            }
            StoreOp::SaveMemo { retry } => {
                store.save_memo(&memo(*retry)).expect("save memo");
                saved = Some(memo(*retry));
            }
        }
    }
    let want = model.records;
    assert_eq!(
        store.load().expect("load"),
        want,
        "the store differs from the reference"
    );
    drop(store);

    // OUTBOX-2, OUTBOX-8: what was acknowledged survives a reopen (twice: recovery is stable).
    for round in 0..2 {
        let mut again = reopen(dir, &options);
        assert_eq!(
            again.load().expect("load after reopen"),
            want,
            "reopen {round}: records lost or resurrected"
        );
        assert_eq!(
            again.stats().torn_bytes_truncated,
            0,
            "reopen {round}: a torn tail after clean writes"
        );
        if let Some(m) = &saved {
            assert_eq!(
                again.load_memo().ok(),
                Some(Some(m.clone())),
                "the saved memo"
            );
        }
    }
}
