//! The observation log: every connection, request and frame with monotonic timestamps, bounded (tests read the server's view).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

/// What a [`LogEntry`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// A TCP connection was accepted.
    TcpAccept,
    /// A TCP connection was accepted and dropped at once (fault `refuse_tcp`).
    TcpRefused,
    /// The listener socket was closed (fault `stop_listening`) or reopened.
    Listener,
    /// An HTTP request arrived (every endpoint).
    Request,
    /// A connection attempt arrived: WebSocket upgrade request, SSE GET, or a long-poll with `hello=1`.
    Handshake,
    /// A request was answered with an error status (`status`, `code` in `detail`).
    Refused,
    /// A connection was accepted (`conn` is its id).
    Open,
    /// A frame was sent to a client.
    FrameOut,
    /// A frame was received from a client.
    FrameIn,
    /// A connection ended (`detail` says how).
    Close,
    /// A fault was applied.
    Fault,
    /// An operator action: drain, undrain, restart, token expiry, server-side publish.
    Action,
}

/// One observation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the log since start (never reused, even after entries are evicted).
    pub index: u64,
    /// Microseconds since the server started (monotonic, non-decreasing along the log).
    pub at_us: u64,
    /// What happened.
    pub kind: LogKind,
    /// `websocket`, `sse`, `long_poll`, `send`, `ready`, or absent.
    pub transport: Option<String>,
    /// The connection id, for connection-scoped entries.
    pub conn: Option<u64>,
    /// The request's query string, `access_token` redacted as `***` (AUTH-4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The resume cursor the request carried, or the cursor of a frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The frame `type` for frame entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_type: Option<String>,
    /// The HTTP status or close code, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Free-form detail (error code, close reason, fault JSON, frame channel/seq...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl LogEntry {
    /// A blank entry of `kind` (index and time are set when it is recorded).
    pub fn new(kind: LogKind) -> LogEntry {
        LogEntry {
            index: 0,
            at_us: 0,
            kind,
            transport: None,
            conn: None,
            query: None,
            cursor: None,
            frame_type: None,
            status: None,
            detail: None,
        }
    }
    /// Set the transport.
    pub fn transport(mut self, t: &str) -> Self {
        self.transport = Some(t.to_owned());
        self
    }
    /// Set the connection id.
    pub fn conn(mut self, c: u64) -> Self {
        self.conn = Some(c);
        self
    }
    /// Set the (already redacted) query.
    pub fn query(mut self, q: Option<String>) -> Self {
        self.query = q;
        self
    }
    /// Set the cursor.
    pub fn cursor(mut self, c: Option<String>) -> Self {
        self.cursor = c;
        self
    }
    /// Set the frame type.
    pub fn frame_type(mut self, t: &str) -> Self {
        self.frame_type = Some(t.to_owned());
        self
    }
    /// Set the status or close code.
    pub fn status(mut self, s: u16) -> Self {
        self.status = Some(s);
        self
    }
    /// Set the detail.
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

struct Ring {
    entries: VecDeque<LogEntry>,
    next: u64,
}

/// The bounded in-memory log (a ring: the oldest entries are evicted first).
pub struct ObservationLog {
    start: Instant,
    capacity: usize,
    ring: Mutex<Ring>,
    evicted: AtomicU64,
}

impl ObservationLog {
    /// A log holding at most `capacity` entries, timed from now.
    pub fn new(capacity: usize) -> ObservationLog {
        ObservationLog {
            start: Instant::now(),
            capacity: capacity.max(1),
            ring: Mutex::new(Ring {
                entries: VecDeque::new(),
                next: 0,
            }),
            evicted: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Microseconds since the log (the server) started.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Record an entry; its index and timestamp are assigned under the lock, so timestamps
    /// never decrease along the log.
    pub fn record(&self, mut entry: LogEntry) {
        if self.capacity == 0 {
            return;
        }
        let mut ring = self.lock();
        entry.at_us = self.now_us();
        entry.index = ring.next;
        ring.next += 1;
        if ring.entries.len() >= self.capacity {
            ring.entries.pop_front();
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        ring.entries.push_back(entry);
    }

    /// A copy of every entry still held, oldest first.
    pub fn snapshot(&self) -> Vec<LogEntry> {
        self.lock().entries.iter().cloned().collect()
    }

    /// A copy of the entries held whose index is at least `index`, oldest first (what a
    /// reader that has seen everything before `index` is missing).
    pub fn since(&self, index: u64) -> Vec<LogEntry> {
        let ring = self.lock();
        let skip = ring.entries.partition_point(|e| e.index < index);
        ring.entries.iter().skip(skip).cloned().collect()
    }

    /// Entries evicted because the ring was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Forget every entry (indices keep counting).
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Entries of `kind`, optionally only of `transport`.
    pub fn entries(&self, kind: LogKind, transport: Option<&str>) -> Vec<LogEntry> {
        self.lock()
            .entries
            .iter()
            .filter(|e| {
                e.kind == kind && transport.is_none_or(|t| e.transport.as_deref() == Some(t))
            })
            .cloned()
            .collect()
    }

    /// Arrival times (µs) of connection attempts, optionally of one transport: what a test
    /// compares with the delays the client declared.
    pub fn handshake_times_us(&self, transport: Option<&str>) -> Vec<u64> {
        self.entries(LogKind::Handshake, transport)
            .into_iter()
            .map(|e| e.at_us)
            .collect()
    }

    /// Frame types sent to connection `conn`, in order.
    pub fn frames_out(&self, conn: u64) -> Vec<String> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.kind == LogKind::FrameOut && e.conn == Some(conn))
            .filter_map(|e| e.frame_type.clone())
            .collect()
    }

    /// True when the timestamps of the held entries never decrease.
    pub fn is_monotonic(&self) -> bool {
        let ring = self.lock();
        ring.entries
            .iter()
            .zip(ring.entries.iter().skip(1))
            .all(|(a, b)| a.at_us <= b.at_us && a.index < b.index)
    }
}

/// The query string with the `access_token` value replaced by `***` (AUTH-4).
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k == "access_token" => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_monotonic_and_redacted() {
        let log = ObservationLog::new(3);
        for _ in 0..5 {
            log.record(LogEntry::new(LogKind::Request));
        }
        let snap = log.snapshot();
        assert_eq!(snap.len(), 3);
        assert_eq!(snap[0].index, 2);
        assert!(log.is_monotonic());
        assert_eq!(log.evicted(), 2);
        assert_eq!(
            log.since(3).iter().map(|e| e.index).collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(log.since(0).len(), 3);
        assert!(log.since(5).is_empty());
        let json = serde_json::to_string(&snap[0]).unwrap_or_default();
        let back: LogEntry = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            back, snap[0],
            "entries travel as JSON (a server in its own process)"
        );
        assert_eq!(
            redact_query("v=1&access_token=s3cret&channels=a"),
            "v=1&access_token=***&channels=a"
        );
    }
}
