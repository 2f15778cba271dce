//! OUTBOX-2: the `FileStore` log format. Appends are packed (`P` frames, about 18 bytes
//! beside the id, channel and data), and a log written by the first format (JSON `A` frames,
//! the committed fixture `fixtures/filestore-json-v1/outbox.log`, written by that code) still
//! opens, loads, takes new appends, compacts and reopens with nothing lost.

use std::fs;
use std::path::{Path, PathBuf};
use tether::store::file::{FileStore, FileStoreOptions, HEADER_BYTES, LOG_FILE, TAG_PACKED};
use tether::{OutboxRecord, Store};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-format-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn rec(id: &str, channel: &str, data: &str, ms: u64) -> OutboxRecord {
    OutboxRecord {
        id: id.into(),
        channel: channel.into(),
        data: data.into(),
        enqueued_unix_ms: ms,
    }
}

/// What the fixture holds: three appends, the second removed.
fn fixture_records() -> Vec<OutboxRecord> {
    vec![
        rec(
            "c0ffee00c0ffee00-1",
            "chat",
            r#"{"text":"hello"}"#,
            1_764_633_600_000,
        ),
        rec(
            "c0ffee00c0ffee00-3",
            "room/é",
            r#"{"text":"naïve \"quoted\"","n":[1,2.5,null]}"#,
            1_764_633_600_002,
        ),
    ]
}

fn with_fixture(name: &str) -> PathBuf {
    let dir = scratch(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/filestore-json-v1");
    fs::copy(src.join(LOG_FILE), dir.join(LOG_FILE)).expect("copy fixture");
    dir
}

#[test]
fn outbox_2_a_log_of_the_json_format_opens_and_loads() {
    let dir = with_fixture("load");
    let mut store = FileStore::open(&dir).expect("open");
    assert_eq!(store.load().expect("load"), fixture_records());
    let stats = store.stats();
    assert_eq!(stats.corrupt_skipped, 0, "{stats:?}");
    assert_eq!(stats.torn_bytes_truncated, 0, "{stats:?}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn outbox_2_json_and_packed_frames_live_side_by_side_through_compaction() {
    let dir = with_fixture("mixed");
    let opts = FileStoreOptions {
        compact_min_dead: 1,
    };
    let mut want = fixture_records();
    {
        let mut store = FileStore::open_with(&dir, opts.clone()).expect("open");
        for i in 0..3 {
            let r = rec(
                &format!("new-{i}"),
                "chat",
                &format!("{{\"i\":{i}}}"),
                42 + i,
            );
            store.append(&r).expect("append");
            want.push(r);
        }
        // Remove one old (JSON) and one new (packed) record: compaction copies the rest.
        store.remove("c0ffee00c0ffee00-1").expect("remove");
        store.remove("new-1").expect("remove");
        want.retain(|r| r.id != "c0ffee00c0ffee00-1" && r.id != "new-1");
        store.compact().expect("compact");
        assert_eq!(store.load().expect("load"), want);
    }
    let mut store = FileStore::open_with(&dir, opts).expect("reopen");
    assert_eq!(store.load().expect("load after reopen"), want);
    assert_eq!(store.stats().corrupt_skipped, 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn outbox_2_packed_appends_take_18_bytes_beside_id_channel_and_data() {
    let dir = scratch("size");
    let mut store = FileStore::open(&dir).expect("open");
    let records: Vec<OutboxRecord> = (0..100)
        .map(|i| {
            rec(
                &format!("8f3a2c41d9e07b65-{i}"),
                "chat/room-1",
                &format!("{{\"i\":{i},\"text\":\"queued\"}}"),
                1_780_000_000_000 + i,
            )
        })
        .collect();
    for r in &records {
        store.append(r).expect("append");
    }
    let log = fs::read(dir.join(LOG_FILE)).expect("log");
    let strings: usize = records
        .iter()
        .map(|r| r.id.len() + r.channel.len() + r.data.len())
        .sum();
    let per = (log.len() - strings) as f64 / records.len() as f64;
    assert!(per <= 18.0, "{per} bytes per record beside its strings");
    assert_eq!(log[HEADER_BYTES], TAG_PACKED, "appends are packed frames");
    // Every record reads back exactly, after a reopen too.
    drop(store);
    let mut store = FileStore::open(&dir).expect("reopen");
    assert_eq!(store.load().expect("load"), records);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn outbox_2_damaged_packed_bodies_are_skipped_not_trusted() {
    // A packed frame whose CRC holds but whose varints lie is unreadable, never a panic or
    // an allocation of the claimed length.
    let dir = scratch("lying");
    {
        let mut store = FileStore::open(&dir).expect("open");
        store.append(&rec("a", "c", "1", 1)).expect("append");
    }
    let mut log = fs::read(dir.join(LOG_FILE)).expect("log");
    let good = log.clone();
    // Body: tag, varint ms, varint id len (1), 'a', varint ch len (1), 'c', "1".
    for (at, byte) in [
        (HEADER_BYTES + 2, 0x7Fu8),
        (HEADER_BYTES + 2, 0xFF),
        (HEADER_BYTES + 4, 0x7F),
    ] {
        log.copy_from_slice(&good);
        log[at] = byte;
        let crc = tether::store::file::crc32(&log[HEADER_BYTES..]);
        log[4..8].copy_from_slice(&crc.to_le_bytes());
        fs::write(dir.join(LOG_FILE), &log).expect("write");
        let mut store = FileStore::open(&dir).expect("open");
        assert!(
            store.load().expect("load").is_empty(),
            "byte {at} = {byte:#x}"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}
