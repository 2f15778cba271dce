//! File-backed outbox store: append-only, CRC-framed, crash-safe, compacted as acks arrive.
//!
//! [`FileStore`] implements [`Store`] over one directory (SPEC OUTBOX-2, OUTBOX-8):
//!
//! - `outbox.log`: an append-only log of frames `[u32 len LE][u32 crc32 LE][payload]`, where
//!   `len` is the payload length, the CRC is CRC-32 (IEEE, the zlib/PNG one) of the payload,
//!   and the payload is a tag byte then a body: `A` + the JSON of an [`OutboxRecord`] (append)
//!   or `R` + the UTF-8 id (remove every live record with that id, as [`MemoryStore`] does).
//!   A payload is 1 to [`MAX_PAYLOAD_BYTES`] bytes.
//! - `memo.json`: the [`Memo`] as JSON, replaced atomically (temp file, fsync, rename, fsync of
//!   the directory).
//!
//! **Durability.** `append` and `remove` write their whole frame with one `write_all` and then
//! `sync_data` before returning `Ok`, so a publish is on disk before `publish` returns. A failed
//! write is rolled back (the log is cut back to its last good end) so that later frames never
//! land after garbage; if even the rollback fails, the next write retries it first. A created
//! or renamed file is followed by an fsync of the directory before any later write reports `Ok`.
//!
//! **Recovery.** [`FileStore::open`] scans the whole log. Damage is a short header, a zero or
//! absurd length (over the cap, or running past the end of the file), or a CRC mismatch.
//! Damage after which no valid frame follows is a torn tail, what a crash during an append
//! leaves behind: it is cut off the file (fsynced, counted in
//! [`FileStoreStats::torn_bytes_truncated`]) so later appends never land after garbage.
//! Damage followed by a valid frame is corruption: a frame with a bad CRC whose framing still
//! holds is skipped; when the length field itself is damaged the scan re-synchronises on the
//! next valid frame (sane length, matching CRC, a payload that decodes). Either way the damaged
//! bytes count once in [`FileStoreStats::corrupt_skipped`], every other frame is kept, and the
//! log is compacted at once (an error if that fails), so that frames appended later can never
//! be read as part of the damaged region (a damaged length running past the end of the file
//! could otherwise come to fit, and swallow them). Nothing is ever allocated from a length
//! field that is over the cap or runs past the end of the file, and the scan never panics.
//! A corrupted `R` frame resurrects the record it removed (resent; the server deduplicates
//! it, OUTBOX-5); a corrupted `A` frame is lost. `load` re-checks each live frame's CRC.
//!
//! **Compaction.** Every frame that is not a live `A` frame is dead (`R` frames, removed `A`
//! frames, damaged regions). When dead frames exceed both
//! [`FileStoreOptions::compact_min_dead`] (1,000) and half of the frames in the log, the live
//! frames are copied (CRC re-checked) in order to `outbox.log.tmp`, which is fsynced, renamed
//! over `outbox.log`, and the directory fsynced. A crash at any point leaves either the old or
//! the new log, both complete; a stale `outbox.log.tmp` is deleted by the next `open`.
//!
//! **Memory.** Only an index of live records is held: per live record its offset and frame
//! length (in append order) and its id, roughly `id.len() + 100` bytes. Payloads stay on disk
//! and [`Store::load`] reads them back, so memory does not grow with `data` sizes or with the
//! log's dead frames.
//!
//! **Concurrency.** One `FileStore` per directory: two processes (or two stores) writing the
//! same directory are not detected and would interleave frames.
//!
//! [`MemoryStore`]: tether_engine::MemoryStore

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tether_engine::{Memo, OutboxRecord, Store, StoreError};

/// The outbox log's file name inside the store directory.
pub const LOG_FILE: &str = "outbox.log";
/// The compaction target, renamed over [`LOG_FILE`] when complete.
pub const LOG_TMP_FILE: &str = "outbox.log.tmp";
/// The memo's file name inside the store directory.
pub const MEMO_FILE: &str = "memo.json";
/// The memo's temporary file, renamed over [`MEMO_FILE`] when complete.
pub const MEMO_TMP_FILE: &str = "memo.json.tmp";
/// Bytes of a frame header: `u32` payload length and `u32` CRC, little-endian.
pub const HEADER_BYTES: usize = 8;
/// The largest payload a frame may carry; a longer length field is damage.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;
/// The largest memo file `load_memo` reads.
pub const MAX_MEMO_BYTES: u64 = 16 * 1024 * 1024;
/// Tag byte of an append frame in the first format (`A` + JSON of an [`OutboxRecord`]),
/// still read; no longer written.
pub const TAG_APPEND: u8 = b'A';
/// Tag byte of a packed append frame (`P` + varints and raw strings, see the module docs),
/// what [`Store::append`] writes.
pub const TAG_PACKED: u8 = b'P';
/// Tag byte of a remove frame (`R` + the id).
pub const TAG_REMOVE: u8 = b'R';

/// Read buffer of the log scanner and window of the re-synchronising search.
const READ_BUFFER: usize = 64 * 1024;

/// Tuning of a [`FileStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// Compact once dead frames exceed this many (and half of the log). Default 1,000.
    pub compact_min_dead: u64,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            compact_min_dead: 1000,
        }
    }
}

/// What a [`FileStore`] found when it opened its log, and what it holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStoreStats {
    /// Live records the open scan recovered.
    pub records_loaded: u64,
    /// Valid frames (appends and `R`) the open scan read.
    pub frames_scanned: u64,
    /// Bytes of a torn last frame cut off the log by the open scan.
    pub torn_bytes_truncated: u64,
    /// Damaged frames or regions skipped (by the open scan, `load` or compaction).
    pub corrupt_skipped: u64,
    /// Live records now.
    pub live_records: u64,
    /// Dead frames now (`R` frames, removed appends, damaged regions).
    pub dead_records: u64,
    /// Bytes of the log now.
    pub log_bytes: u64,
    /// Compactions done since open.
    pub compactions: u64,
}

/// A durable, file-backed [`Store`]; see the module documentation for format and guarantees.
pub struct FileStore {
    dir: PathBuf,
    file: File,
    /// End of the last good frame; the log is exactly this long unless `tail_dirty`.
    end: u64,
    /// A failed write may have left bytes past `end`: cut them before writing again.
    tail_dirty: bool,
    /// A file was created or renamed in `dir` and the directory is not yet fsynced.
    dir_dirty: bool,
    /// Live `A` frames in append order: offset → frame length (header included).
    live: BTreeMap<u64, u32>,
    /// Offsets of the live frames of each id.
    ids: HashMap<String, Vec<u64>>,
    /// Frames in the log, live or dead (a damaged region counts as one).
    frames: u64,
    options: FileStoreOptions,
    stats: FileStoreStats,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

impl FileStore {
    /// Open (creating if needed) the store in `dir`, recovering the log (see module docs).
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        FileStore::open_with(dir, FileStoreOptions::default())
    }

    /// [`FileStore::open`] with explicit options.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: FileStoreOptions,
    ) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| io_err("create directory", &dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(|e| io_err("sync directory", parent, e))?;
            }
        }
        for stale in [LOG_TMP_FILE, MEMO_TMP_FILE] {
            let path = dir.join(stale);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove stale", &path, e)),
            }
        }
        let path = dir.join(LOG_FILE);
        let (file, created) = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| io_err("open", &path, e))?;
                (f, false)
            }
            Err(e) => return Err(io_err("create", &path, e)),
        };
        let mut store = FileStore {
            dir,
            file,
            end: 0,
            tail_dirty: false,
            dir_dirty: created,
            live: BTreeMap::new(),
            ids: HashMap::new(),
            frames: 0,
            options,
            stats: FileStoreStats::default(),
        };
        store.sync_dir_if_dirty()?;
        store.recover()?;
        if store.stats.corrupt_skipped > 0 {
            // Damage read as damage only while the log keeps its length: a damaged length
            // that runs past the end now may fit once more frames are appended, and would
            // then swallow them. Rewrite the log without it before anything is appended.
            store.compact()?;
        } else if store.should_compact() {
            // The log is complete as it is; a failed compaction is retried on a later ack.
            if let Err(e) = store.compact() {
                tracing::warn!(error = %e, "outbox log compaction failed");
            }
        }
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the open scan found and what the log holds now.
    pub fn stats(&self) -> FileStoreStats {
        FileStoreStats {
            live_records: self.live.len() as u64,
            dead_records: self.dead(),
            log_bytes: self.end,
            ..self.stats
        }
    }

    /// Rewrite the log with only the live records now, whatever the thresholds say.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.prepare_write()?;
        let tmp_path = self.dir.join(LOG_TMP_FILE);
        let Compacted {
            file: tmp,
            moved,
            end,
            damaged,
        } = match self.write_compacted(&tmp_path) {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                return Err(io_err("compact into", &tmp_path, e));
            }
        };
        let log_path = self.dir.join(LOG_FILE);
        if let Err(e) = fs::rename(&tmp_path, &log_path) {
            let _ = fs::remove_file(&tmp_path);
            return Err(io_err("rename compacted log over", &log_path, e));
        }
        // The directory now names the new log: switch to it before anything can fail.
        self.file = tmp;
        self.end = end;
        self.tail_dirty = false;
        self.dir_dirty = true;
        let relocate: HashMap<u64, u64> = moved.iter().map(|&(old, new, _)| (old, new)).collect();
        self.live = moved.iter().map(|&(_, new, len)| (new, len)).collect();
        self.ids.retain(|_, offsets| {
            offsets.retain_mut(|off| match relocate.get(off) {
                Some(&new) => {
                    *off = new;
                    true
                }
                None => false,
            });
            !offsets.is_empty()
        });
        self.frames = self.live.len() as u64;
        self.stats.corrupt_skipped += damaged;
        self.stats.compactions += 1;
        self.sync_dir_if_dirty()
    }

    /// Copy the live frames, in order, to a fresh file at `path`, fsynced.
    fn write_compacted(&self, path: &Path) -> io::Result<Compacted> {
        let tmp = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let mut reader = LogReader::new(&self.file, self.end);
        let mut writer = BufWriter::with_capacity(READ_BUFFER, &tmp);
        let mut moved = Vec::with_capacity(self.live.len());
        let mut damaged = 0;
        let mut at = 0u64;
        let mut buf = Vec::new();
        for (&off, &len) in &self.live {
            if !reader.read_raw(off, len, &mut buf)? {
                damaged += 1;
                continue;
            }
            writer.write_all(&buf)?;
            moved.push((off, at, len));
            at += u64::from(len);
        }
        writer.flush()?;
        drop(writer);
        tmp.sync_all()?;
        Ok(Compacted {
            file: tmp,
            moved,
            end: at,
            damaged,
        })
    }

    fn dead(&self) -> u64 {
        self.frames.saturating_sub(self.live.len() as u64)
    }

    fn should_compact(&self) -> bool {
        let dead = self.dead();
        dead > self.options.compact_min_dead && dead.saturating_mul(2) > self.frames
    }

    /// Scan the log, build the index, cut a torn tail.
    fn recover(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join(LOG_FILE);
        let len = self
            .file
            .metadata()
            .map_err(|e| io_err("stat", &path, e))?
            .len();
        let mut reader = LogReader::new(&self.file, len);
        let mut pos = 0u64;
        let mut damaged = 0u64;
        let mut scanned = 0u64;
        // Built as the scan goes, so only ids of live records are ever held.
        let mut live = BTreeMap::new();
        let mut ids: HashMap<String, Vec<u64>> = HashMap::new();
        let mut frames = 0u64;
        let mut torn_at = None;
        while pos < len {
            let check = reader.check_at(pos).map_err(|e| io_err("read", &path, e))?;
            let next = match check {
                Check::Valid { end, frame } => {
                    scanned += 1;
                    frames += 1;
                    match frame {
                        Frame::Append(record) => {
                            live.insert(pos, frame_len(pos, end));
                            ids.entry(record.id).or_default().push(pos);
                        }
                        Frame::Remove(id) => forget(&mut live, &mut ids, &id),
                    }
                    pos = end;
                    continue;
                }
                // Framing holds, the payload is not ours: skip the frame.
                Check::Unreadable { end } => Some(end),
                // Damage: a valid frame after it makes it corruption, none makes it the tail.
                Check::BadCrc { end } => match reader.check_at(end) {
                    Ok(Check::Valid { .. }) => Some(end),
                    Ok(_) => reader
                        .resync(pos + 1)
                        .map_err(|e| io_err("read", &path, e))?,
                    Err(e) => return Err(io_err("read", &path, e)),
                },
                Check::Broken => reader
                    .resync(pos + 1)
                    .map_err(|e| io_err("read", &path, e))?,
            };
            match next {
                Some(next) => {
                    // A damaged frame or region before the tail: skip it, keep scanning.
                    damaged += 1;
                    frames += 1;
                    pos = next;
                }
                None => {
                    torn_at = Some(pos);
                    break;
                }
            }
        }
        drop(reader);
        self.live = live;
        self.ids = ids;
        self.frames = frames;
        self.end = len;
        if let Some(cut) = torn_at {
            self.file
                .set_len(cut)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| io_err("truncate torn tail of", &path, e))?;
            self.end = cut;
            self.stats.torn_bytes_truncated = len - cut;
        }
        self.stats.records_loaded = self.live.len() as u64;
        self.stats.frames_scanned = scanned;
        self.stats.corrupt_skipped = damaged;
        Ok(())
    }

    /// Drop a damaged live frame found after open from the index.
    fn forget_damaged(&mut self, off: u64) {
        self.live.remove(&off);
        self.ids.retain(|_, offsets| {
            offsets.retain(|&o| o != off);
            !offsets.is_empty()
        });
        self.stats.corrupt_skipped += 1;
    }

    /// Before a write: cut bytes a failed write left, fsync a pending directory change.
    fn prepare_write(&mut self) -> Result<(), StoreError> {
        if self.tail_dirty {
            let path = self.dir.join(LOG_FILE);
            self.file
                .set_len(self.end)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| io_err("roll back failed write to", &path, e))?;
            self.tail_dirty = false;
        }
        self.sync_dir_if_dirty()
    }

    fn sync_dir_if_dirty(&mut self) -> Result<(), StoreError> {
        if self.dir_dirty {
            sync_dir(&self.dir).map_err(|e| io_err("sync directory", &self.dir, e))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Write one whole frame at the end of the log and make it durable; returns its offset.
    fn write_frame(&mut self, frame: &[u8]) -> Result<u64, StoreError> {
        self.prepare_write()?;
        let off = self.end;
        let written = self
            .file
            .seek(SeekFrom::Start(off))
            .and_then(|_| self.file.write_all(frame))
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            self.tail_dirty = true;
            // Best effort now; `prepare_write` retries before the next write.
            let _ = self.prepare_write();
            return Err(io_err("append to", &self.dir.join(LOG_FILE), e));
        }
        self.end += frame.len() as u64;
        self.frames += 1;
        Ok(off)
    }
}

impl Store for FileStore {
    fn load(&mut self) -> Result<Vec<OutboxRecord>, StoreError> {
        let path = self.dir.join(LOG_FILE);
        let mut records = Vec::with_capacity(self.live.len());
        let mut damaged = Vec::new();
        {
            let mut reader = LogReader::new(&self.file, self.end);
            for (&off, &len) in &self.live {
                match reader.check_at(off).map_err(|e| io_err("read", &path, e))? {
                    Check::Valid {
                        end,
                        frame: Frame::Append(record),
                    } if end == off + u64::from(len) => records.push(record),
                    _ => damaged.push(off),
                }
            }
        }
        for off in damaged {
            self.forget_damaged(off);
        }
        Ok(records)
    }

    fn append(&mut self, record: &OutboxRecord) -> Result<(), StoreError> {
        // The JSON is never shorter than the strings it carries: refuse before encoding.
        if record.size() > MAX_PAYLOAD_BYTES {
            return Err(StoreError(format!(
                "outbox record of {} bytes exceeds {MAX_PAYLOAD_BYTES}",
                record.size()
            )));
        }
        let mut frame = Vec::with_capacity(HEADER_BYTES + 1 + 30 + record.size());
        frame.extend_from_slice(&[0; HEADER_BYTES]);
        frame.push(TAG_PACKED);
        pack(&mut frame, record);
        seal(&mut frame)?;
        let off = self.write_frame(&frame)?;
        self.live
            .insert(off, frame_len(off, off + frame.len() as u64));
        self.ids.entry(record.id.clone()).or_default().push(off);
        Ok(())
    }

    fn remove(&mut self, id: &str) -> Result<(), StoreError> {
        if !self.ids.contains_key(id) {
            return Ok(());
        }
        let mut frame = Vec::with_capacity(HEADER_BYTES + 1 + id.len());
        frame.extend_from_slice(&[0; HEADER_BYTES]);
        frame.push(TAG_REMOVE);
        frame.extend_from_slice(id.as_bytes());
        seal(&mut frame)?;
        self.write_frame(&frame)?;
        forget(&mut self.live, &mut self.ids, id);
        if self.should_compact() {
            // The removal is durable already; a failed compaction is retried on the next ack.
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "outbox log compaction failed");
            }
        }
        Ok(())
    }

    fn load_memo(&mut self) -> Result<Option<Memo>, StoreError> {
        let path = self.dir.join(MEMO_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path, e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_MEMO_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_err("read", &path, e))?;
        if bytes.len() as u64 > MAX_MEMO_BYTES {
            return Err(StoreError(format!(
                "{}: memo larger than {MAX_MEMO_BYTES} bytes",
                path.display()
            )));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError(format!("{}: bad memo: {e}", path.display())))
    }

    fn save_memo(&mut self, memo: &Memo) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(memo).map_err(|e| StoreError(format!("encode memo: {e}")))?;
        let tmp = self.dir.join(MEMO_TMP_FILE);
        let path = self.dir.join(MEMO_FILE);
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", &path, e));
        }
        self.dir_dirty = true;
        self.sync_dir_if_dirty()
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as zlib and PNG compute it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Drop every live record with `id` from the index.
fn forget(live: &mut BTreeMap<u64, u32>, ids: &mut HashMap<String, Vec<u64>>, id: &str) {
    if let Some(offsets) = ids.remove(id) {
        for off in offsets {
            live.remove(&off);
        }
    }
}

/// Fill in the header of `frame` (8 placeholder bytes, then the payload).
fn seal(frame: &mut [u8]) -> Result<(), StoreError> {
    let payload_len = frame.len() - HEADER_BYTES;
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(StoreError(format!(
            "outbox record of {payload_len} bytes exceeds {MAX_PAYLOAD_BYTES}"
        )));
    }
    let crc = crc32(&frame[HEADER_BYTES..]);
    frame[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Append `v` as an unsigned LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Read a varint at the start of `*buf` and advance past it; `None` if it is cut short or
/// longer than 10 bytes.
fn take_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7F).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(v);
        }
    }
    None
}

/// A UTF-8 string of the varint length at the start of `*buf`, advancing past both.
fn take_str<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    let len = usize::try_from(take_varint(buf)?).ok()?;
    if len > buf.len() {
        return None;
    }
    let (s, rest) = buf.split_at(len);
    *buf = rest;
    std::str::from_utf8(s).ok()
}

/// The body of a `P` frame (see the module docs).
fn pack(out: &mut Vec<u8>, r: &OutboxRecord) {
    put_varint(out, r.enqueued_unix_ms);
    put_varint(out, r.id.len() as u64);
    out.extend_from_slice(r.id.as_bytes());
    put_varint(out, r.channel.len() as u64);
    out.extend_from_slice(r.channel.as_bytes());
    out.extend_from_slice(r.data.as_bytes());
}

/// Decode a `P` frame body; `None` for anything that is not one.
fn unpack(mut body: &[u8]) -> Option<OutboxRecord> {
    let enqueued_unix_ms = take_varint(&mut body)?;
    let id = take_str(&mut body)?.to_owned();
    let channel = take_str(&mut body)?.to_owned();
    let data = std::str::from_utf8(body).ok()?.to_owned();
    Some(OutboxRecord {
        id,
        channel,
        data,
        enqueued_unix_ms,
    })
}

/// Length of the frame spanning `start..end` (never over `HEADER_BYTES + MAX_PAYLOAD_BYTES`).
fn frame_len(start: u64, end: u64) -> u32 {
    u32::try_from(end - start).unwrap_or(u32::MAX)
}

fn io_err(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError(format!("{what} {}: {e}", path.display()))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened for fsync here; renames are as durable as the OS makes them.
    Ok(())
}

/// A compacted log, written and fsynced but not yet renamed into place.
struct Compacted {
    file: File,
    /// (old offset, new offset, frame length) of each frame kept, in order.
    moved: Vec<(u64, u64, u32)>,
    end: u64,
    /// Live frames found damaged and left out.
    damaged: u64,
}

/// A decoded payload.
enum Frame {
    Append(OutboxRecord),
    Remove(String),
}

/// What sits at an offset of the log.
enum Check {
    /// A frame with a sane length, a matching CRC and a payload we understand.
    Valid { end: u64, frame: Frame },
    /// Length and CRC hold but the payload is not one we understand.
    Unreadable { end: u64 },
    /// Length is sane and in the file, but the CRC does not match.
    BadCrc { end: u64 },
    /// Short header, zero or absurd length, or a frame running past the end of the log.
    Broken,
}

/// Positioned, buffered reads of the log, bounded by its length.
struct LogReader<'a> {
    inner: BufReader<&'a File>,
    /// Where `inner` stands, if known.
    pos: Option<u64>,
    len: u64,
}

impl<'a> LogReader<'a> {
    fn new(file: &'a File, len: u64) -> LogReader<'a> {
        LogReader {
            inner: BufReader::with_capacity(READ_BUFFER, file),
            pos: None,
            len,
        }
    }

    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.pos != Some(off) {
            let buffered = self.inner.buffer().len() as u64;
            match self.pos {
                Some(pos) if off > pos && off - pos <= buffered => {
                    // Within the buffer: both fit in i64 (at most READ_BUFFER).
                    self.inner.seek_relative((off - pos) as i64)?;
                }
                _ => {
                    self.pos = None;
                    self.inner.seek(SeekFrom::Start(off))?;
                }
            }
            self.pos = Some(off);
        }
        let read = self.inner.read_exact(buf);
        self.pos = if read.is_ok() {
            Some(off + buf.len() as u64)
        } else {
            None
        };
        read
    }

    /// Header at `off`: `(payload length, crc)` if the frame is sane and inside the log.
    fn header_at(&mut self, off: u64) -> io::Result<Option<(usize, u32)>> {
        if self.len.saturating_sub(off) < HEADER_BYTES as u64 {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_BYTES];
        self.read_at(off, &mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_PAYLOAD_BYTES {
            return Ok(None);
        }
        // Never allocate for a frame that is not all in the file.
        if off + (HEADER_BYTES + len) as u64 > self.len {
            return Ok(None);
        }
        Ok(Some((len, crc)))
    }

    fn check_at(&mut self, off: u64) -> io::Result<Check> {
        let Some((len, crc)) = self.header_at(off)? else {
            return Ok(Check::Broken);
        };
        let mut payload = vec![0u8; len];
        self.read_at(off + HEADER_BYTES as u64, &mut payload)?;
        let end = off + (HEADER_BYTES + len) as u64;
        if crc32(&payload) != crc {
            return Ok(Check::BadCrc { end });
        }
        let body = &payload[1..];
        let frame = match payload[0] {
            TAG_PACKED => unpack(body).map(Frame::Append),
            TAG_APPEND => serde_json::from_slice(body).ok().map(Frame::Append),
            TAG_REMOVE => std::str::from_utf8(body)
                .ok()
                .map(|id| Frame::Remove(id.to_owned())),
            _ => None,
        };
        Ok(match frame {
            Some(frame) => Check::Valid { end, frame },
            None => Check::Unreadable { end },
        })
    }

    /// The raw frame at `off` of length `len` into `buf`, if its header and CRC still hold.
    fn read_raw(&mut self, off: u64, len: u32, buf: &mut Vec<u8>) -> io::Result<bool> {
        let Some((payload_len, crc)) = self.header_at(off)? else {
            return Ok(false);
        };
        if HEADER_BYTES + payload_len != len as usize {
            return Ok(false);
        }
        buf.clear();
        buf.resize(len as usize, 0);
        self.read_at(off, buf)?;
        Ok(crc32(&buf[HEADER_BYTES..]) == crc)
    }

    /// The first offset at or after `from` where a valid frame starts, if any.
    fn resync(&mut self, from: u64) -> io::Result<Option<u64>> {
        const PROBE: usize = HEADER_BYTES + 1;
        let mut window = vec![0u8; READ_BUFFER + PROBE];
        let mut base = from;
        while self.len.saturating_sub(base) >= PROBE as u64 {
            let n = (self.len - base).min(window.len() as u64) as usize;
            self.read_at(base, &mut window[..n])?;
            for i in 0..=(n - PROBE) {
                let w = &window[i..i + PROBE];
                let len = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
                let tag = w[HEADER_BYTES];
                let at = base + i as u64;
                if len == 0
                    || len > MAX_PAYLOAD_BYTES as u64
                    || !matches!(tag, TAG_PACKED | TAG_APPEND | TAG_REMOVE)
                    || at + HEADER_BYTES as u64 + len > self.len
                {
                    continue;
                }
                if let Check::Valid { .. } = self.check_at(at)? {
                    return Ok(Some(at));
                }
            }
            base += (n - PROBE + 1) as u64;
        }
        Ok(None)
    }
}
