//! OUTBOX-2/OUTBOX-8: the file-backed store. Round trips, restore on reopen, the memo,
//! compaction, and recovery from torn tails and corrupted records.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tether::engine::outbox::Outbox;
use tether::store::file::{
    crc32, FileStore, FileStoreOptions, HEADER_BYTES, LOG_FILE, LOG_TMP_FILE, MAX_PAYLOAD_BYTES,
    MEMO_FILE, MEMO_TMP_FILE,
};
use tether::{Memo, MemoryStore, OutboxRecord, Policy, Store, TransportKind};

// ---- the largest single allocation made by this thread, to catch allocations sized by a
// ---- damaged length field.

struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = PEAK.try_with(|p| {
        if size > p.get() {
            p.set(size);
        }
    });
}

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

fn reset_peak() {
    PEAK.with(|p| p.set(0));
}

fn peak() -> usize {
    PEAK.with(|p| p.get())
}

// ---- helpers

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tether-file-store-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn log(&self) -> PathBuf {
        self.0.join(LOG_FILE)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn rec(id: &str) -> OutboxRecord {
    OutboxRecord {
        id: id.to_owned(),
        channel: "lobby".to_owned(),
        data: format!(r#"{{"text":"hello from {id}","n":[1,2,3]}}"#),
        enqueued_unix_ms: 1_700_000_000_000,
    }
}

fn ids(records: &[OutboxRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn load_ids(store: &mut FileStore) -> Vec<String> {
    ids(&store.load().unwrap())
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// A log holding `names` appended in order; returns the dir and each frame's start offset
/// (plus the end of the log as the last element).
fn log_with(tag: &str, names: &[&str]) -> (TempDir, Vec<u64>) {
    let dir = TempDir::new(tag);
    let mut store = FileStore::open(dir.path()).unwrap();
    let mut offsets = vec![0];
    for name in names {
        store.append(&rec(name)).unwrap();
        offsets.push(store.stats().log_bytes);
    }
    (dir, offsets)
}

/// Reopen `bytes` as a log in a fresh directory.
fn dir_with_log(tag: &str, bytes: &[u8]) -> TempDir {
    let dir = TempDir::new(tag);
    fs::write(dir.log(), bytes).unwrap();
    dir
}

/// After recovery a new append must land on a clean tail and load after the survivors.
fn assert_appends_after_reopen(dir: &TempDir, survivors: &[&str]) {
    let mut store = FileStore::open(dir.path()).unwrap();
    store.append(&rec("after-crash")).unwrap();
    drop(store);
    let mut store = FileStore::open(dir.path()).unwrap();
    let mut want = strs(survivors);
    want.push("after-crash".into());
    assert_eq!(load_ids(&mut store), want);
    let stats = store.stats();
    assert_eq!(stats.torn_bytes_truncated, 0, "{stats:?}");
}

/// Frames in a log, parsed independently of the store: (tag, body) per valid frame.
fn parse_frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let payload = &bytes[at + HEADER_BYTES..at + HEADER_BYTES + len];
        assert_eq!(crc32(payload), crc);
        out.push((payload[0], payload[1..].to_vec()));
        at += HEADER_BYTES + len;
    }
    assert_eq!(at, bytes.len());
    out
}

// ---- format

#[test]
fn crc32_is_ieee() {
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414F_A339
    );
}

#[test]
fn outbox_2_append_is_in_the_log_when_it_returns() {
    let dir = TempDir::new("format");
    let mut store = FileStore::open(dir.path()).unwrap();
    store.append(&rec("a")).unwrap();
    store.append(&rec("b")).unwrap();
    store.remove("a").unwrap();
    // Read with a second handle while the store is still open: nothing is buffered.
    let frames = parse_frames(&fs::read(dir.log()).unwrap());
    assert_eq!(frames.len(), 3);
    // Packed appends (`P`): varints, the id, the channel, then the data to the end.
    let a = rec("a");
    assert_eq!(frames[0].0, b'P');
    assert!(frames[0].1.ends_with(a.data.as_bytes()));
    assert!(frames[0]
        .1
        .windows(a.channel.len())
        .any(|w| w == a.channel.as_bytes()));
    assert_eq!(frames[1].0, b'P');
    assert_eq!((frames[2].0, frames[2].1.as_slice()), (b'R', &b"a"[..]));
}

// ---- round trips

#[test]
fn outbox_8_file_store_round_trip() {
    let dir = TempDir::new("round-trip");
    let mut store = FileStore::open(dir.path()).unwrap();
    assert!(store.load().unwrap().is_empty());
    for id in ["a", "b", "c", "d", "e"] {
        store.append(&rec(id)).unwrap();
    }
    store.remove("b").unwrap();
    store.remove("d").unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded, vec![rec("a"), rec("c"), rec("e")]);
    store.append(&rec("f")).unwrap();
    store.remove("a").unwrap();
    assert_eq!(load_ids(&mut store), strs(&["c", "e", "f"]));
    let stats = store.stats();
    assert_eq!(stats.live_records, 3);
    assert_eq!(stats.dead_records, 6, "3 removed appends + 3 remove frames");
    assert_eq!(stats.log_bytes, file_len(&dir.log()));
}

#[test]
fn outbox_8_reopen_restores_in_order() {
    let dir = TempDir::new("reopen");
    let want: Vec<OutboxRecord> = {
        let mut store = FileStore::open(dir.path()).unwrap();
        for i in 0..50 {
            store.append(&rec(&format!("id-{i}"))).unwrap();
        }
        for i in (0..50).step_by(3) {
            store.remove(&format!("id-{i}")).unwrap();
        }
        store.load().unwrap()
    };
    assert_eq!(want.len(), 33);
    let mut store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.load().unwrap(), want);
    let stats = store.stats();
    assert_eq!(stats.records_loaded, 33);
    assert_eq!(stats.frames_scanned, 50 + 17);
    assert_eq!(stats.torn_bytes_truncated, 0);
    assert_eq!(stats.corrupt_skipped, 0);
    // Loading twice gives the same answer.
    assert_eq!(store.load().unwrap(), want);
}

#[test]
fn outbox_8_remove_of_unknown_id_writes_nothing() {
    let dir = TempDir::new("unknown");
    let mut store = FileStore::open(dir.path()).unwrap();
    store.append(&rec("a")).unwrap();
    let before = file_len(&dir.log());
    store.remove("nope").unwrap();
    store.remove("a").unwrap();
    let after_remove = file_len(&dir.log());
    assert!(after_remove > before);
    store.remove("a").unwrap();
    assert_eq!(file_len(&dir.log()), after_remove);
}

#[test]
fn outbox_8_duplicate_ids_behave_like_memory_store() {
    let dir = TempDir::new("dupes");
    let mut file = FileStore::open(dir.path()).unwrap();
    let mut memory = MemoryStore::default();
    let ops: &[(&str, &str)] = &[
        ("+", "x"),
        ("+", "y"),
        ("+", "x"),
        ("+", "z"),
        ("-", "x"),
        ("+", "x"),
        ("-", "y"),
    ];
    for &(op, id) in ops {
        let mut r = rec(id);
        r.data = format!("{}", memory.records.len());
        match op {
            "+" => {
                file.append(&r).unwrap();
                memory.append(&r).unwrap();
            }
            _ => {
                file.remove(id).unwrap();
                memory.remove(id).unwrap();
            }
        }
        assert_eq!(file.load().unwrap(), memory.load().unwrap());
    }
    drop(file);
    let mut file = FileStore::open(dir.path()).unwrap();
    assert_eq!(file.load().unwrap(), memory.records);
}

#[test]
fn outbox_8_engine_outbox_restores_from_file_store() {
    let dir = TempDir::new("engine");
    let policy = Policy {
        outbox_max_count: 4,
        ..Policy::default()
    };
    {
        let (mut outbox, restored) =
            Outbox::restore(Box::new(FileStore::open(dir.path()).unwrap()));
        restored.unwrap();
        for i in 0..6 {
            outbox.push(rec(&format!("p{i}")), &policy).unwrap();
        }
        // drop_oldest removed p0 and p1 from the store too.
        outbox.remove("p3");
        assert_eq!(outbox.ids(), strs(&["p2", "p4", "p5"]));
    }
    let (outbox, restored) = Outbox::restore(Box::new(FileStore::open(dir.path()).unwrap()));
    restored.unwrap();
    assert_eq!(outbox.ids(), strs(&["p2", "p4", "p5"]));
}

// ---- memo

#[test]
fn outbox_8_memo_round_trip() {
    let dir = TempDir::new("memo");
    let mut store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.load_memo().unwrap(), None);
    let mut memo = Memo {
        retry_after_unix_ms: Some(1_700_000_123_456),
        ..Memo::default()
    };
    memo.transports
        .insert("https://example.test/tether".into(), TransportKind::Sse);
    memo.policy = Some(serde_json::from_str(r#"{"base_ms": 2000}"#).unwrap());
    store.save_memo(&memo).unwrap();
    assert_eq!(store.load_memo().unwrap(), Some(memo.clone()));
    drop(store);

    let mut store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.load_memo().unwrap(), Some(memo.clone()));
    let replaced = Memo::default();
    store.save_memo(&replaced).unwrap();
    assert_eq!(store.load_memo().unwrap(), Some(replaced));
    assert!(!dir.path().join(MEMO_TMP_FILE).exists());
    // The memo does not touch the outbox.
    assert!(store.load().unwrap().is_empty());
}

#[test]
fn outbox_8_damaged_memo_is_an_error_not_a_panic() {
    let dir = TempDir::new("memo-bad");
    fs::write(dir.path().join(MEMO_FILE), b"{\"transports\": [").unwrap();
    let mut store = FileStore::open(dir.path()).unwrap();
    let err = store.load_memo().unwrap_err();
    assert!(err.0.contains("bad memo"), "{err}");
    // Saving a good one repairs it.
    store.save_memo(&Memo::default()).unwrap();
    assert_eq!(store.load_memo().unwrap(), Some(Memo::default()));
}

#[test]
fn outbox_8_stale_temp_files_are_removed_on_open() {
    let (dir, _) = log_with("stale", &["a", "b"]);
    fs::write(dir.path().join(LOG_TMP_FILE), b"half a compaction").unwrap();
    fs::write(dir.path().join(MEMO_TMP_FILE), b"half a memo").unwrap();
    let mut store = FileStore::open(dir.path()).unwrap();
    assert_eq!(load_ids(&mut store), strs(&["a", "b"]));
    assert!(!dir.path().join(LOG_TMP_FILE).exists());
    assert!(!dir.path().join(MEMO_TMP_FILE).exists());
    assert_eq!(store.load_memo().unwrap(), None);
}

// ---- compaction

#[test]
fn outbox_8_compaction_triggers_and_keeps_order() {
    let dir = TempDir::new("compact");
    let mut store = FileStore::open(dir.path()).unwrap();
    let n = 2100;
    for i in 0..n {
        store.append(&rec(&format!("id-{i:05}"))).unwrap();
    }
    let full = file_len(&dir.log());
    // Remove all but every 7th record; a remove adds a dead `R` frame and kills an `A` frame.
    let mut expected: Vec<String> = Vec::new();
    let mut removed = 0u64;
    let mut sizes = Vec::new();
    for i in 0..n {
        let id = format!("id-{i:05}");
        if i % 7 == 0 {
            expected.push(id);
            continue;
        }
        store.remove(&id).unwrap();
        removed += 1;
        // After k removes: frames = n + k, dead = 2k. First compaction when
        // 2k > 1000 and 2k > (n + k) / 2, i.e. at k = 701.
        if removed == 700 {
            assert_eq!(store.stats().compactions, 0, "{:?}", store.stats());
        }
        if removed == 701 {
            let stats = store.stats();
            assert_eq!(stats.compactions, 1, "{stats:?}");
            assert_eq!(stats.dead_records, 0);
            assert_eq!(stats.live_records, n - 701);
        }
        sizes.push(file_len(&dir.log()));
    }
    let stats = store.stats();
    assert!(stats.compactions >= 2, "{stats:?}");
    assert_eq!(stats.live_records, expected.len() as u64);
    assert_eq!(stats.log_bytes, file_len(&dir.log()));
    // The file shrank at each compaction.
    let shrinks = sizes.windows(2).filter(|w| w[1] < w[0]).count() as u64;
    assert_eq!(shrinks, stats.compactions);
    let max = sizes.iter().copied().max().unwrap_or(0);
    assert!(stats.log_bytes < full / 2, "{} vs {full}", stats.log_bytes);
    assert!(max > full);
    assert_eq!(load_ids(&mut store), expected);
    assert!(!dir.path().join(LOG_TMP_FILE).exists());

    // Appends after a compaction land in the new log; reopen restores everything in order.
    store.append(&rec("late")).unwrap();
    expected.push("late".into());
    drop(store);
    let mut store = FileStore::open(dir.path()).unwrap();
    assert_eq!(load_ids(&mut store), expected);
    assert_eq!(store.stats().corrupt_skipped, 0);
}

#[test]
fn outbox_8_compaction_on_open_and_explicit() {
    let dir = TempDir::new("compact-open");
    let options = FileStoreOptions {
        compact_min_dead: 1_000_000,
    };
    {
        let mut store = FileStore::open_with(dir.path(), options.clone()).unwrap();
        for i in 0..30 {
            store.append(&rec(&format!("r{i}"))).unwrap();
        }
        for i in 0..25 {
            store.remove(&format!("r{i}")).unwrap();
        }
        assert_eq!(store.stats().compactions, 0);
    }
    let before = file_len(&dir.log());
    // A low threshold at open compacts straight away.
    let mut store = FileStore::open_with(
        dir.path(),
        FileStoreOptions {
            compact_min_dead: 10,
        },
    )
    .unwrap();
    assert_eq!(store.stats().compactions, 1);
    let after = file_len(&dir.log());
    assert!(after < before / 5, "{after} vs {before}");
    assert_eq!(
        load_ids(&mut store),
        strs(&["r25", "r26", "r27", "r28", "r29"])
    );
    // Explicit compaction of an already compact log changes nothing.
    store.compact().unwrap();
    assert_eq!(file_len(&dir.log()), after);
    assert_eq!(
        load_ids(&mut store),
        strs(&["r25", "r26", "r27", "r28", "r29"])
    );
}

// ---- torn tails

#[test]
fn outbox_2_torn_tail_is_skipped() {
    let (dir, offsets) = log_with("torn-src", &["a", "b", "c"]);
    let bytes = fs::read(dir.log()).unwrap();
    let (start, end) = (offsets[2], offsets[3]);
    assert_eq!(end, bytes.len() as u64);
    // Cut at every byte offset inside the last frame (start = the frame never began).
    for cut in start..end {
        let d = dir_with_log("torn", &bytes[..cut as usize]);
        let mut store = FileStore::open(d.path()).unwrap();
        assert_eq!(load_ids(&mut store), strs(&["a", "b"]), "cut at {cut}");
        let stats = store.stats();
        assert_eq!(stats.torn_bytes_truncated, cut - start, "cut at {cut}");
        assert_eq!(stats.corrupt_skipped, 0, "cut at {cut}");
        assert_eq!(stats.log_bytes, start);
        assert_eq!(file_len(&d.log()), start, "torn bytes are truncated away");
        drop(store);
        assert_appends_after_reopen(&d, &["a", "b"]);
    }
}

#[test]
fn outbox_2_torn_tail_of_a_remove_is_skipped() {
    let (dir, offsets) = log_with("torn-r-src", &["a", "b"]);
    {
        let mut store = FileStore::open(dir.path()).unwrap();
        store.remove("a").unwrap();
    }
    let bytes = fs::read(dir.log()).unwrap();
    for cut in offsets[2]..bytes.len() as u64 {
        let d = dir_with_log("torn-r", &bytes[..cut as usize]);
        let mut store = FileStore::open(d.path()).unwrap();
        // The removal never completed: `a` is still queued (resent, deduplicated by the server).
        assert_eq!(load_ids(&mut store), strs(&["a", "b"]), "cut at {cut}");
        drop(store);
        assert_appends_after_reopen(&d, &["a", "b"]);
    }
}

#[test]
fn outbox_2_torn_tail_garbage_variants_are_skipped() {
    let (dir, offsets) = log_with("garbage-src", &["a", "b", "c"]);
    let bytes = fs::read(dir.log()).unwrap();
    let good = offsets[2] as usize;
    let last = &bytes[good..];

    let mut variants: Vec<(&str, Vec<u8>)> = Vec::new();
    // Full length, payload never reached the disk (zeros): CRC mismatch at the tail.
    let mut zeroed = last.to_vec();
    zeroed[HEADER_BYTES..].fill(0);
    variants.push(("zeroed payload", zeroed));
    // Full length, last payload byte wrong.
    let mut flipped = last.to_vec();
    *flipped.last_mut().unwrap() ^= 0x01;
    variants.push(("flipped last byte", flipped));
    // CRC field wrong.
    let mut bad_crc = last.to_vec();
    bad_crc[5] ^= 0x40;
    variants.push(("bad crc", bad_crc));
    // The file was extended but nothing written: a page of zeros.
    variants.push(("zero page", vec![0; 4096]));
    // A zero length header followed by nothing.
    variants.push(("zero header", vec![0; HEADER_BYTES]));
    // Garbage that is not a frame at all.
    variants.push((
        "garbage",
        (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    ));

    for (name, tail) in variants {
        let mut log = bytes[..good].to_vec();
        log.extend_from_slice(&tail);
        let d = dir_with_log("garbage", &log);
        let mut store = FileStore::open(d.path()).unwrap();
        assert_eq!(load_ids(&mut store), strs(&["a", "b"]), "{name}");
        let stats = store.stats();
        assert_eq!(
            stats.torn_bytes_truncated,
            tail.len() as u64,
            "{name}: {stats:?}"
        );
        assert_eq!(stats.corrupt_skipped, 0, "{name}");
        assert_eq!(file_len(&d.log()), good as u64, "{name}");
        drop(store);
        assert_appends_after_reopen(&d, &["a", "b"]);
    }
}

// ---- corruption before the tail

#[test]
fn outbox_2_flipped_byte_in_middle_record_is_skipped() {
    let (dir, offsets) = log_with("flip-src", &["a", "b", "c"]);
    let bytes = fs::read(dir.log()).unwrap();
    // Every byte of the middle frame: length, CRC, tag and body.
    for at in offsets[1]..offsets[2] {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut log = bytes.clone();
            log[at as usize] ^= mask;
            let d = dir_with_log("flip", &log);
            let mut store = FileStore::open(d.path()).unwrap();
            let what = format!("byte {at} ^ {mask:#x}");
            assert_eq!(load_ids(&mut store), strs(&["a", "c"]), "{what}");
            let stats = store.stats();
            assert_eq!(stats.corrupt_skipped, 1, "{what}: {stats:?}");
            assert_eq!(stats.torn_bytes_truncated, 0, "{what}");
            // Later frames kept; the damaged one compacted away at once.
            assert_eq!(
                file_len(&d.log()),
                bytes.len() as u64 - (offsets[2] - offsets[1]),
                "{what}: the log is a and c"
            );
            assert_eq!(stats.compactions, 1, "{what}");
            drop(store);
            assert_appends_after_reopen(&d, &["a", "c"]);
        }
    }
}

#[test]
fn outbox_2_corrupt_first_record_and_several_corruptions() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let (dir, offsets) = log_with("multi-src", &names);
    let mut log = fs::read(dir.log()).unwrap();
    // Damage a (payload), c (length) and e (CRC).
    log[offsets[0] as usize + HEADER_BYTES + 3] ^= 0x10;
    log[offsets[2] as usize + 1] ^= 0x07;
    log[offsets[4] as usize + 6] ^= 0x20;
    let d = dir_with_log("multi", &log);
    let mut store = FileStore::open(d.path()).unwrap();
    assert_eq!(load_ids(&mut store), strs(&["b", "d", "f"]));
    assert_eq!(store.stats().corrupt_skipped, 3);
    drop(store);
    assert_appends_after_reopen(&d, &["b", "d", "f"]);
}

#[test]
fn outbox_2_corrupt_remove_frame_resurrects_its_record() {
    let dir = TempDir::new("corrupt-r");
    let remove_at;
    {
        let mut store = FileStore::open(dir.path()).unwrap();
        store.append(&rec("a")).unwrap();
        store.append(&rec("b")).unwrap();
        remove_at = store.stats().log_bytes;
        store.remove("a").unwrap();
        store.append(&rec("c")).unwrap();
    }
    let mut log = fs::read(dir.log()).unwrap();
    log[remove_at as usize + HEADER_BYTES + 1] ^= 0x55;
    fs::write(dir.log(), &log).unwrap();
    let mut store = FileStore::open(dir.path()).unwrap();
    // Resent on reconnect; the server's dedupe by id (OUTBOX-5) makes it harmless.
    assert_eq!(load_ids(&mut store), strs(&["a", "b", "c"]));
    assert_eq!(store.stats().corrupt_skipped, 1);
}

#[test]
fn outbox_2_valid_frame_with_unknown_payload_is_skipped() {
    let (dir, _) = log_with("unknown-src", &["a"]);
    let mut log = fs::read(dir.log()).unwrap();
    for payload in [&b"Zfuture"[..], &b"A{not json"[..], &b"R\xff\xfe"[..]] {
        log.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        log.extend_from_slice(&crc32(payload).to_le_bytes());
        log.extend_from_slice(payload);
    }
    let d = dir_with_log("unknown", &log);
    let mut store = FileStore::open(d.path()).unwrap();
    assert_eq!(load_ids(&mut store), strs(&["a"]));
    assert_eq!(store.stats().corrupt_skipped, 3);
    assert_eq!(store.stats().torn_bytes_truncated, 0);
    drop(store);
    assert_appends_after_reopen(&d, &["a"]);
}

#[test]
fn outbox_2_absurd_length_is_torn_without_huge_allocation() {
    let (dir, offsets) = log_with("absurd-src", &["a", "b", "c"]);
    let bytes = fs::read(dir.log()).unwrap();
    let tail_start = offsets[3] as usize;
    // name → (log, ids that must load, torn bytes, corrupt regions)
    type Case = (Vec<u8>, Vec<&'static str>, u64, u64);
    let mut cases: BTreeMap<String, Case> = BTreeMap::new();
    for len in [
        u32::MAX,
        0x8000_0000,
        64 * 1024 * 1024 + 1,
        60 * 1024 * 1024,
    ] {
        // At the tail: an absurd or out-of-file length is a torn append.
        let mut log = bytes.clone();
        log.extend_from_slice(&len.to_le_bytes());
        log.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        log.extend_from_slice(b"A{\"id\":\"x\"");
        let torn = (log.len() - tail_start) as u64;
        cases.insert(
            format!("tail len {len:#x}"),
            (log, vec!["a", "b", "c"], torn, 0),
        );
        // In the middle: the length of `b` is damaged; the scan re-synchronises on `c`.
        let mut log = bytes.clone();
        log[offsets[1] as usize..offsets[1] as usize + 4].copy_from_slice(&len.to_le_bytes());
        cases.insert(format!("middle len {len:#x}"), (log, vec!["a", "c"], 0, 1));
    }
    for (name, (log, want, torn, corrupt)) in cases {
        let d = dir_with_log("absurd", &log);
        reset_peak();
        let mut store = FileStore::open(d.path()).unwrap();
        let loaded = load_ids(&mut store);
        let peak = peak();
        assert!(peak < 1024 * 1024, "{name}: allocated {peak} bytes at once");
        assert_eq!(loaded, strs(&want), "{name}");
        let stats = store.stats();
        assert_eq!(stats.torn_bytes_truncated, torn, "{name}: {stats:?}");
        assert_eq!(stats.corrupt_skipped, corrupt, "{name}: {stats:?}");
        drop(store);
        assert_appends_after_reopen(&d, &want);
    }
}

#[test]
fn outbox_2_oversized_record_is_refused() {
    let dir = TempDir::new("oversized");
    let mut store = FileStore::open(dir.path()).unwrap();
    store.append(&rec("a")).unwrap();
    // Over the cap by its strings alone, and over it only once encoded (tag and varints).
    for data_len in [
        MAX_PAYLOAD_BYTES,
        MAX_PAYLOAD_BYTES - "big".len() - "lobby".len(),
    ] {
        let mut big = rec("big");
        big.data = "x".repeat(data_len);
        let err = store.append(&big).unwrap_err();
        assert!(err.0.contains("exceeds"), "{err}");
    }
    store.append(&rec("b")).unwrap();
    drop(store);
    let mut store = FileStore::open(dir.path()).unwrap();
    assert_eq!(load_ids(&mut store), strs(&["a", "b"]));
}

#[test]
fn outbox_2_damaged_length_never_swallows_later_appends() {
    // A damaged length that runs past the end of the log at open can come to fit once more
    // frames are appended; the scan must not then read the damage as one frame ending on a
    // later frame and skip every frame in between (records the store acknowledged).
    let (dir, offsets) = log_with("swallow-src", &["a", "b", "c"]);
    let bytes = fs::read(dir.log()).unwrap();
    let frame = |id: &str| (HEADER_BYTES + 1 + serde_json::to_vec(&rec(id)).unwrap().len()) as u64;
    // `b`'s length now claims the bytes up to the end of the first frame appended later.
    let claimed = offsets[3] + frame("x1") - offsets[1] - HEADER_BYTES as u64;
    let mut log = bytes.clone();
    log[offsets[1] as usize..offsets[1] as usize + 4]
        .copy_from_slice(&(claimed as u32).to_le_bytes());
    let d = dir_with_log("swallow", &log);
    let mut store = FileStore::open(d.path()).unwrap();
    assert_eq!(load_ids(&mut store), strs(&["a", "c"]));
    for id in ["x1", "x2", "x3"] {
        store.append(&rec(id)).unwrap();
    }
    drop(store);
    for round in 0..2 {
        let mut store = FileStore::open(d.path()).unwrap();
        assert_eq!(
            load_ids(&mut store),
            strs(&["a", "c", "x1", "x2", "x3"]),
            "reopen {round}"
        );
    }
}
