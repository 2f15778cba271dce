//! What a proxy saw and did, in order, with timestamps: connections, the requests and answers on them, the faults that fired (bounded).

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// Events kept at most; the oldest are dropped first.
const CAPACITY: usize = 200_000;

/// One observation of the proxy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProxyEvent {
    /// When it happened (the proxy's process clock).
    #[serde(skip)]
    pub at: Instant,
    /// The connection's number (1 for the first accepted).
    pub conn: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What a [`ProxyEvent`] records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A client connected.
    Accepted,
    /// A request head passed (or was answered by the proxy itself): method, target and
    /// whether it asks for a WebSocket upgrade.
    Request {
        /// `GET`, `POST`...
        method: String,
        /// Path and query, as sent.
        target: String,
        /// `Upgrade: websocket`.
        upgrade: bool,
    },
    /// A response head passed on the way back.
    Response {
        /// Its status.
        status: u16,
    },
    /// A fault acted on the connection: `fault` is its name (`reset`, `fin`, `blackhole`,
    /// `idle_kill`, `refuse_upgrade`, `strip_upgrade`), `detail` says when or how.
    Fired {
        /// The fault's stable name.
        fault: String,
        /// E.g. `after 2310 bytes down`, `after 412 ms`, `cut_all`, `403`.
        detail: String,
    },
    /// The upstream refused the connection (the server is down); the client got a RST.
    UpstreamRefused {
        /// The connect error.
        error: String,
    },
    /// The upstream ended the connection (FIN or RST) while the client's side was open.
    UpstreamClosed,
    /// The client ended the connection while the upstream's side was open.
    ClientClosed,
}

impl EventKind {
    /// Stable name of the kind, as in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Accepted => "accepted",
            EventKind::Request { .. } => "request",
            EventKind::Response { .. } => "response",
            EventKind::Fired { .. } => "fired",
            EventKind::UpstreamRefused { .. } => "upstream_refused",
            EventKind::UpstreamClosed => "upstream_closed",
            EventKind::ClientClosed => "client_closed",
        }
    }
}

/// The bounded log behind [`FaultProxy::events`](crate::FaultProxy::events).
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    entries: Mutex<VecDeque<ProxyEvent>>,
}

impl EventLog {
    pub(crate) fn push(&self, conn: u64, kind: EventKind) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if e.len() >= CAPACITY {
            e.pop_front();
        }
        e.push_back(ProxyEvent {
            at: Instant::now(),
            conn,
            kind,
        });
    }

    pub(crate) fn snapshot(&self) -> Vec<ProxyEvent> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}
