//! OUTBOX-2: a publish the app was told is queued survives the process being killed.
//!
//! Each test re-executes this test binary as a writer child (selected by an environment
//! variable): the child opens the store in a shared directory, appends records in a loop and
//! prints each id on stdout only after `append` returned `Ok`. The parent SIGKILLs it at a
//! random moment, 20 times over the same directory, and after each kill checks a copy of the
//! directory (so the next child still recovers the real torn log itself): every printed id is
//! present, in order, once, uncorrupted. A second test also removes records (acks), in order
//! and out of order, with a low compaction threshold so kills also land inside compactions.
//!
//! The seed is printed; rerun with `TETHER_CRASH_SEED=<seed>` to repeat the delays.
//! SIGKILL tests process crashes (the page cache survives); it does not simulate power loss.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tether::store::file::{FileStore, FileStoreOptions, HEADER_BYTES, LOG_FILE};
use tether::{OutboxRecord, Store};

const CHILD_ENV: &str = "TETHER_STORE_CRASH_CHILD";
const KILLS: u32 = 20;
const MAX_DELAY_MS: u64 = 30;
/// The mixed-mode child keeps at most this many records queued (acks the oldest).
const MIXED_LIVE: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Append,
    Mixed,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Mixed => "mixed",
        }
    }

    fn options(self) -> FileStoreOptions {
        match self {
            Mode::Append => FileStoreOptions::default(),
            // Compact every few acks, so that kills land inside compactions too.
            Mode::Mixed => FileStoreOptions {
                compact_min_dead: 8,
            },
        }
    }
}

fn rec(id: &str) -> OutboxRecord {
    OutboxRecord {
        id: id.to_owned(),
        channel: "crash".to_owned(),
        data: format!(r#"{{"id":"{id}","pad":"{}"}}"#, "p".repeat(id.len() * 3)),
        enqueued_unix_ms: 1_700_000_000_000,
    }
}

fn round_id(round: u32, n: u64) -> String {
    format!("r{round:02}-{n:06}")
}

// ---- the child

fn say(line: &str) {
    let mut out = io::stdout().lock();
    // A parent that went away ends the child.
    if out
        .write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

fn child_main(spec: &str) -> ! {
    let mut parts = spec.splitn(3, ':');
    let mode = match parts.next() {
        Some("mixed") => Mode::Mixed,
        _ => Mode::Append,
    };
    let round: u32 = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
    let dir = PathBuf::from(parts.next().unwrap_or("."));
    let fail = |what: &str, e: tether::StoreError| -> ! {
        say(&format!("FAIL {what}: {e}\n"));
        std::process::exit(2)
    };
    let mut store = FileStore::open_with(&dir, mode.options()).unwrap_or_else(|e| fail("open", e));
    let mut live: VecDeque<String> = store
        .load()
        .unwrap_or_else(|e| fail("load", e))
        .into_iter()
        .map(|r| r.id)
        .collect();
    say(&format!(
        "READY {} {}\n",
        live.len(),
        store.stats().torn_bytes_truncated
    ));
    let started = Instant::now();
    let mut compactions = 0;
    for n in 0.. {
        // Never outlive a parent that failed to kill us.
        if started.elapsed() > Duration::from_secs(60) {
            std::process::exit(4);
        }
        let id = round_id(round, n);
        store
            .append(&rec(&id))
            .unwrap_or_else(|e| fail("append", e));
        say(&format!("A {id}\n"));
        if mode == Mode::Mixed {
            live.push_back(id);
            let mut acks = Vec::new();
            if n % 7 == 3 && live.len() > 2 {
                // An ack out of order.
                acks.extend(live.remove(1));
            }
            while live.len() > MIXED_LIVE {
                acks.extend(live.pop_front());
            }
            for old in acks {
                store.remove(&old).unwrap_or_else(|e| fail("remove", e));
                say(&format!("R {old}\n"));
            }
            if store.stats().compactions != compactions {
                compactions = store.stats().compactions;
                say(&format!("C {compactions}\n"));
            }
        }
    }
    unreachable!()
}

// ---- the parent

/// xorshift64*: deterministic delays from a printed seed.
struct Rng(u64);

impl Rng {
    fn new() -> (Rng, u64) {
        let seed = std::env::var("TETHER_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9E37_79B9_7F4A_7C15)
            });
        (Rng(seed.max(1)), seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tether-store-crash-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Complete lines the child printed before it died.
struct Round {
    child: Child,
    lines: mpsc::Receiver<String>,
    reader: thread::JoinHandle<()>,
}

fn spawn_child(test: &str, mode: Mode, round: u32, dir: &Path) -> Round {
    // The test's name as libtest lists it: its module path inside this test binary.
    let name = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_string(),
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}:{round}:{}", mode.name(), dir.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match stdout.read_line(&mut line) {
                // A line cut by the kill has no newline: the child never finished saying it.
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    if tx.send(line.trim_end().to_owned()).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    Round {
        child,
        lines,
        reader,
    }
}

/// Cut the real log somewhere inside its last frame; returns the bytes left of that frame.
fn tear_last_frame(dir: &Path, rng: &mut Rng) -> u64 {
    let path = dir.join(LOG_FILE);
    let bytes = fs::read(&path).unwrap();
    let mut start = 0;
    let mut at = 0;
    while at + HEADER_BYTES <= bytes.len() {
        start = at;
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += HEADER_BYTES + len;
    }
    assert_eq!(at, bytes.len(), "the log is whole before we tear it");
    let kept = rng.below((bytes.len() - start) as u64);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(start as u64 + kept).unwrap();
    kept
}

#[derive(Default, Debug)]
struct Totals {
    acked_appends: u64,
    acked_removes: u64,
    in_flight_seen: u64,
    torn_injected: u64,
    /// Kills after which the log had a torn tail (SIGKILL cannot cut a `write` in practice).
    torn_rounds: u64,
    torn_bytes: u64,
    compactions: u64,
}

fn crash_rounds(test: &str, mode: Mode) {
    let (mut rng, seed) = Rng::new();
    eprintln!("{test}: seed {seed} (TETHER_CRASH_SEED to repeat)");
    let dir = TempDir::new(mode.name());
    // The queue as the app was told it is: printed appends minus printed removes, in order.
    let mut expected: Vec<String> = Vec::new();
    let mut removed: HashSet<String> = HashSet::new();
    let mut totals = Totals::default();
    // Bytes of a torn tail we left in the real log for the next child to recover.
    let mut injected_torn: Option<u64> = None;

    for round in 0..KILLS {
        let ctx = format!("{test} seed {seed} round {round}");
        let mut run = spawn_child(test, mode, round, &dir.0);
        let ready = run
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{ctx}: child never got ready: {e}"));
        // Skip libtest's own output.
        let mut first = Some(ready);
        let (ready, torn) = loop {
            let line = match first.take() {
                Some(l) => l,
                None => run.lines.recv_timeout(Duration::from_secs(60)).unwrap(),
            };
            // libtest's "test <name> ... " has no newline: READY may follow it on the line.
            if let Some((_, rest)) = line.split_once("READY ") {
                let mut fields = rest.split(' ').map(|f| f.parse::<u64>().unwrap());
                break (fields.next().unwrap(), fields.next().unwrap());
            }
            assert!(!line.contains("FAIL "), "{ctx}: {line}");
        };
        assert_eq!(
            ready,
            expected.len() as u64,
            "{ctx}: the child loaded what we checked"
        );
        assert_eq!(
            torn,
            injected_torn.take().unwrap_or(0),
            "{ctx}: child cut the torn tail"
        );

        thread::sleep(Duration::from_millis(rng.below(MAX_DELAY_MS + 1)));
        run.child.kill().unwrap(); // SIGKILL
        run.child.wait().unwrap();
        run.reader.join().unwrap();

        let mut appended_this_round = 0u64;
        let mut max_compactions = 0;
        for line in run.lines.try_iter() {
            if let Some(id) = line.strip_prefix("A ") {
                assert_eq!(id, round_id(round, appended_this_round), "{ctx}");
                appended_this_round += 1;
                expected.push(id.to_owned());
                totals.acked_appends += 1;
            } else if let Some(id) = line.strip_prefix("R ") {
                let at = expected.iter().position(|e| e == id);
                let at = at.unwrap_or_else(|| panic!("{ctx}: removed unknown {id}"));
                expected.remove(at);
                removed.insert(id.to_owned());
                totals.acked_removes += 1;
            } else if let Some(c) = line.strip_prefix("C ") {
                max_compactions = c.parse().unwrap();
            } else {
                assert!(!line.contains("FAIL "), "{ctx}: {line}");
            }
        }
        totals.compactions += max_compactions;

        // Check a copy: the next child must recover the real (possibly torn) log itself.
        let check = TempDir::new("check");
        copy_dir(&dir.0, &check.0);
        let mut store = FileStore::open_with(&check.0, mode.options()).unwrap();
        let records = store.load().unwrap();
        let stats = store.stats();
        assert_eq!(stats.corrupt_skipped, 0, "{ctx}: {stats:?}");
        if stats.torn_bytes_truncated > 0 {
            totals.torn_rounds += 1;
            totals.torn_bytes += stats.torn_bytes_truncated;
        }
        for r in &records {
            assert_eq!(r, &rec(&r.id), "{ctx}: record intact");
        }
        let mut got: Vec<String> = records.into_iter().map(|r| r.id).collect();
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "{ctx}: duplicates in {got:?}");
        for id in &got {
            assert!(
                !removed.contains(id),
                "{ctx}: acked removal of {id} came back"
            );
        }
        // Every id the app was told is queued is there, in order; the only difference allowed
        // is the one operation in flight at the kill (an append not yet printed, or a removal
        // not yet printed).
        let got_set: HashSet<&String> = got.iter().collect();
        let expected_set: HashSet<&String> = expected.iter().collect();
        let missing: Vec<&String> = expected.iter().filter(|id| !got_set.contains(id)).collect();
        let extra: Vec<&String> = got.iter().filter(|id| !expected_set.contains(id)).collect();
        let mut tear = false;
        match (missing.as_slice(), extra.as_slice()) {
            ([], []) => {}
            ([], [id]) => {
                assert_eq!(**id, round_id(round, appended_this_round), "{ctx}: extra");
                assert_eq!(got.last(), Some(*id), "{ctx}: in-flight append is last");
                totals.in_flight_seen += 1;
                // The app was never told this one is queued, so power loss could have torn
                // it: sometimes tear it in the real log and let the next child recover.
                tear = rng.below(2) == 0;
            }
            ([id], []) if mode == Mode::Mixed => {
                // A removal that was durable but not yet printed.
                let id = (*id).clone();
                removed.insert(id);
                totals.in_flight_seen += 1;
            }
            _ => panic!("{ctx}: missing {missing:?}, extra {extra:?}; got {got:?}"),
        }
        let in_order: Vec<&String> = got.iter().filter(|id| expected_set.contains(id)).collect();
        let want: Vec<&String> = expected.iter().filter(|id| got_set.contains(id)).collect();
        assert_eq!(in_order, want, "{ctx}: order");
        if tear {
            injected_torn = Some(tear_last_frame(&dir.0, &mut rng));
            totals.torn_injected += 1;
            got.pop();
        }
        expected = got;
    }

    // The real directory, after 20 crashes, recovers to the same queue.
    let mut store = FileStore::open_with(&dir.0, mode.options()).unwrap();
    let got: Vec<String> = store.load().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(got, expected, "{test} seed {seed}: final");
    assert_eq!(store.stats().corrupt_skipped, 0);
    eprintln!("{test}: {totals:?}, final stats {:?}", store.stats());
    assert!(totals.acked_appends > 0, "{test}: the child never appended");
    if mode == Mode::Mixed {
        assert!(totals.acked_removes > 0, "{test}: the child never removed");
    }
}

#[test]
fn outbox_2_sigkill_during_appends_loses_nothing() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child_main(&spec);
    }
    crash_rounds(
        "outbox_2_sigkill_during_appends_loses_nothing",
        Mode::Append,
    );
}

#[test]
fn outbox_2_sigkill_during_appends_and_removes_loses_nothing() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child_main(&spec);
    }
    crash_rounds(
        "outbox_2_sigkill_during_appends_and_removes_loses_nothing",
        Mode::Mixed,
    );
}
