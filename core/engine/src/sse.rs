//! Incremental Server-Sent Events parser (WHATWG event-stream rules): bytes in, events out.
//!
//! [`SseParser`] implements the "event stream interpretation" of the WHATWG
//! HTML standard. Bytes arrive in chunks of any size ([`SseParser::feed`]);
//! every complete line is interpreted as soon as its terminator is seen and
//! the resulting [`SseItem`]s are appended to the caller's vector. The end of
//! the stream ([`SseParser::finish`]) discards any unfinished line and event.
//!
//! Hostile input is bounded by [`SseLimits`]: neither the pending line nor the
//! data of one event can make the parser hold more than its limit, and work is
//! linear in the number of input bytes however the input is chunked.

use std::mem;

/// The UTF-8 byte order mark, skipped once at the very start of a stream.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Initial allocation for a growing buffer (capped by the buffer's limit).
const MIN_GROWTH: usize = 64;

/// Memory bounds for one parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SseLimits {
    /// Longest line accepted, in bytes, not counting its terminator.
    pub max_line_bytes: usize,
    /// Largest data buffer of one event, in bytes of UTF-8. The buffer holds
    /// one `'\n'` per `data:` line (the last one is stripped at dispatch).
    pub max_event_bytes: usize,
}

impl Default for SseLimits {
    /// 1 MiB per line, 1 MiB of data per event.
    fn default() -> Self {
        SseLimits {
            max_line_bytes: 1 << 20,
            max_event_bytes: 1 << 20,
        }
    }
}

/// A dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, or `"message"` if it was absent or empty.
    pub event_type: String,
    /// The `data:` lines joined with `'\n'`.
    pub data: String,
    /// The parser's last-event-id buffer at dispatch time (persists across events).
    pub last_event_id: String,
    /// True if this event's own block carried an (accepted) `id:` line.
    pub id_set: bool,
}

/// One output of the parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseItem {
    /// A complete event (a block with data, ended by an empty line).
    Event(SseEvent),
    /// A valid `retry:` field: the server's reconnection time in milliseconds.
    Retry(u64),
    /// A comment line (starting with `':'`); its text is not kept. Hosts
    /// count comments as heartbeats.
    Comment,
}

/// Why the parser gave up on a stream. After an error the parser is poisoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A line grew beyond `limit` bytes before its terminator.
    #[error("SSE line longer than {limit} bytes")]
    LineTooLong {
        /// The configured `max_line_bytes`.
        limit: usize,
    },
    /// The data buffer of one event grew beyond `limit` bytes.
    #[error("SSE event data larger than {limit} bytes")]
    EventTooLarge {
        /// The configured `max_event_bytes`.
        limit: usize,
    },
}

impl SseError {
    /// A stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            SseError::LineTooLong { .. } => "sse_line_too_long",
            SseError::EventTooLarge { .. } => "sse_event_too_large",
        }
    }
}

/// Progress of the byte-order-mark check at the start of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bom {
    /// This many leading bytes of the stream matched the BOM so far.
    Checking(usize),
    /// The start of the stream is behind us.
    Done,
}

/// An incremental, chunking-insensitive event-stream parser.
#[derive(Clone, Debug)]
pub struct SseParser {
    limits: SseLimits,
    bom: Bom,
    /// The previous byte was a CR: a LF right after it belongs to the same line ending.
    pending_cr: bool,
    /// Bytes of the current, unterminated line.
    line: Vec<u8>,
    data: String,
    event_type: String,
    /// The last-event-id buffer (set by `id:` lines, persists across events).
    id_buffer: String,
    /// The last-event-id buffer as of the last dispatch (WHATWG "last event ID string").
    committed_id: String,
    /// `id_buffer` changed since it was last copied into `committed_id`.
    id_dirty: bool,
    /// The current block carried an accepted `id:` line.
    id_set: bool,
    error: Option<SseError>,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(SseLimits::default())
    }
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new(limits: SseLimits) -> Self {
        SseParser {
            limits,
            bom: Bom::Checking(0),
            pending_cr: false,
            line: Vec::new(),
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            committed_id: String::new(),
            id_dirty: false,
            id_set: false,
            error: None,
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> SseLimits {
        self.limits
    }

    /// The last event ID as of the last dispatch (WHATWG "last event ID
    /// string"): what a reconnect should send as `Last-Event-ID`. Unlike
    /// [`SseEvent::last_event_id`] it also follows blocks that set an `id:`
    /// but carried no data.
    pub fn last_event_id(&self) -> &str {
        &self.committed_id
    }

    /// The error that poisoned this parser, if any.
    pub fn error(&self) -> Option<SseError> {
        self.error
    }

    /// Capacity of the pending-line buffer, in bytes (never above `max_line_bytes`).
    pub fn line_capacity(&self) -> usize {
        self.line.capacity()
    }

    /// Capacity of the event data buffer, in bytes (never above `max_event_bytes`).
    pub fn data_capacity(&self) -> usize {
        self.data.capacity()
    }

    /// Feeds the next chunk of the stream, appending every item it completes
    /// to `out`.
    ///
    /// On error, items completed before the offending line are still in
    /// `out`, the parser drops its buffers and every later call returns the
    /// same error.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let mut rest = chunk;
        while let Bom::Checking(matched) = self.bom {
            let Some((&byte, tail)) = rest.split_first() else {
                return Ok(());
            };
            if BOM.get(matched) == Some(&byte) {
                rest = tail;
                self.bom = if matched + 1 == BOM.len() {
                    Bom::Done
                } else {
                    Bom::Checking(matched + 1)
                };
            } else {
                // Not a BOM: the bytes held back are ordinary stream bytes
                // (none of them is CR or LF).
                self.bom = Bom::Done;
                let held = BOM.get(..matched).unwrap_or(&[]);
                self.consume(held, out)?;
            }
        }
        self.consume(rest, out)
    }

    /// Ends the stream. Per WHATWG, an unterminated line and an event without
    /// its closing empty line are discarded, so nothing is ever added to
    /// `out`.
    ///
    /// Afterwards the parser is ready for a new stream (the BOM check is
    /// re-armed) and its last-event-id buffer rolls back to
    /// [`SseParser::last_event_id`]. A poisoned parser stays poisoned.
    pub fn finish(&mut self, out: &mut Vec<SseItem>) {
        let _ = out;
        if self.error.is_some() {
            return;
        }
        self.bom = Bom::Checking(0);
        self.pending_cr = false;
        self.line.clear();
        self.data.clear();
        self.event_type.clear();
        self.id_set = false;
        if self.id_dirty {
            self.id_buffer.clone_from(&self.committed_id);
            self.id_dirty = false;
        }
    }

    /// Splits `bytes` into lines, each byte looked at once.
    fn consume(&mut self, mut bytes: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        if self.pending_cr {
            if let Some((&first, tail)) = bytes.split_first() {
                self.pending_cr = false;
                if first == b'\n' {
                    bytes = tail;
                }
            }
        }
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => return self.append_line(bytes),
                Some(end) => {
                    let (content, tail) = bytes.split_at(end);
                    self.append_line(content)?;
                    let Some((&terminator, after)) = tail.split_first() else {
                        return Ok(());
                    };
                    bytes = after;
                    if terminator == b'\r' {
                        match bytes.split_first() {
                            Some((&b'\n', after_lf)) => bytes = after_lf,
                            Some(_) => {}
                            None => self.pending_cr = true,
                        }
                    }
                    let mut line = mem::take(&mut self.line);
                    self.process_line(&line, out)?;
                    line.clear();
                    self.line = line;
                }
            }
        }
        Ok(())
    }

    /// Adds bytes to the pending line, never holding more than the limit.
    fn append_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        let max = self.limits.max_line_bytes;
        let needed = self.line.len().saturating_add(bytes.len());
        if needed > max {
            return Err(self.poison(SseError::LineTooLong { limit: max }));
        }
        if needed > self.line.capacity() {
            let target = bounded_growth(self.line.capacity(), needed, max);
            self.line.reserve_exact(target - self.line.len());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Interprets one complete line (without its terminator).
    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        let (name, value) = match line.iter().position(|&b| b == b':') {
            None if line.is_empty() => {
                self.dispatch(out);
                return Ok(());
            }
            Some(0) => {
                out.push(SseItem::Comment);
                return Ok(());
            }
            None => (line, &[][..]),
            Some(colon) => {
                let (name, tail) = line.split_at(colon);
                let value = tail.get(1..).unwrap_or(&[]);
                (name, value.strip_prefix(b" ").unwrap_or(value))
            }
        };
        // Bytes ':', ' ' and ASCII letters never take part in an invalid
        // UTF-8 sequence, so splitting and matching before decoding is the
        // same as decoding the whole line first.
        match name {
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&String::from_utf8_lossy(value));
            }
            b"data" => {
                let value = String::from_utf8_lossy(value);
                self.append_data(&value)?;
            }
            // An id containing NUL is ignored entirely.
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.push_str(&String::from_utf8_lossy(value));
                self.id_dirty = true;
                self.id_set = true;
            }
            b"retry" => {
                if let Some(ms) = parse_retry(value) {
                    out.push(SseItem::Retry(ms));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Appends `value` and a `'\n'` to the data buffer, within the limit.
    fn append_data(&mut self, value: &str) -> Result<(), SseError> {
        let max = self.limits.max_event_bytes;
        let needed = self
            .data
            .len()
            .saturating_add(value.len())
            .saturating_add(1);
        if needed > max {
            return Err(self.poison(SseError::EventTooLarge { limit: max }));
        }
        if needed > self.data.capacity() {
            let target = bounded_growth(self.data.capacity(), needed, max);
            self.data.reserve_exact(target - self.data.len());
        }
        self.data.push_str(value);
        self.data.push('\n');
        Ok(())
    }

    /// Handles an empty line: emits the block's event if it has data.
    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        if self.id_dirty {
            self.committed_id.clone_from(&self.id_buffer);
            self.id_dirty = false;
        }
        let id_set = mem::take(&mut self.id_set);
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let mut event_type = mem::take(&mut self.event_type);
        if event_type.is_empty() {
            event_type.push_str("message");
        }
        out.push(SseItem::Event(SseEvent {
            event_type,
            data,
            last_event_id: self.id_buffer.clone(),
            id_set,
        }));
    }

    /// Records `err`, releases the buffers, and returns `err`.
    fn poison(&mut self, err: SseError) -> SseError {
        self.error = Some(err);
        self.line = Vec::new();
        self.data = String::new();
        self.event_type = String::new();
        err
    }
}

/// The capacity to grow a buffer to so that it holds `needed` bytes:
/// amortised doubling, but never beyond `max` (callers ensure `needed <= max`).
fn bounded_growth(capacity: usize, needed: usize, max: usize) -> usize {
    capacity
        .saturating_mul(2)
        .max(MIN_GROWTH)
        .min(max)
        .max(needed)
}

/// A `retry:` value: non-empty ASCII digits that fit in a `u64`.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Vec<SseItem> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(input, &mut out).unwrap();
        p.finish(&mut out);
        out
    }

    fn event(data: &str) -> SseItem {
        SseItem::Event(SseEvent {
            event_type: "message".into(),
            data: data.into(),
            last_event_id: String::new(),
            id_set: false,
        })
    }

    #[test]
    fn sse_basic_event() {
        assert_eq!(parse(b"data: hi\n\n"), vec![event("hi")]);
    }

    #[test]
    fn sse_retry_parsing() {
        assert_eq!(parse_retry(b"0"), Some(0));
        assert_eq!(parse_retry(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_retry(b"18446744073709551616"), None);
        assert_eq!(parse_retry(b""), None);
        assert_eq!(parse_retry(b"+1"), None);
    }

    #[test]
    fn sse_bounded_growth_respects_max() {
        assert_eq!(bounded_growth(0, 1, 10), 10);
        assert_eq!(bounded_growth(0, 1, 1000), 64);
        assert_eq!(bounded_growth(64, 65, 1000), 128);
        assert_eq!(bounded_growth(512, 600, 1000), 1000);
        assert_eq!(bounded_growth(0, 500, 1000), 500);
    }

    #[test]
    fn sse_last_event_id_follows_data_less_blocks() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(b"id: 7\n\nid: 8\ndata: x", &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(p.last_event_id(), "7");
        p.finish(&mut out);
        assert_eq!(p.last_event_id(), "7");
        p.feed(b"data: y\n\n", &mut out).unwrap();
        assert_eq!(
            out,
            vec![SseItem::Event(SseEvent {
                event_type: "message".into(),
                data: "y".into(),
                last_event_id: "7".into(),
                id_set: false,
            })]
        );
    }
}
