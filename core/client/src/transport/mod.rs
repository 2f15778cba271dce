//! Transports: connections on real sockets, reporting faithfully to the engine.
//!
//! Each rung turns an engine [`OpenRequest`] into a connection that reports
//! [`TransportEvent`]s tagged with the connection id (CONN-4) and obeys the driver (transmit,
//! poll, close). A WebSocket ([`ws`]) is polled by the driver task itself, so its messages
//! reach the engine without a hand-off; SSE ([`sse`]) and long-poll ([`poll`]) run as tokio
//! tasks around reqwest and report through the driver's inbox, obeying [`ConnCommand`]s.
//! Transports decide nothing: blocked-rung
//! detection, timeouts, retries and parsing of frames (and of SSE) are the engine's job, so
//! every platform behaves the same. Every read is bounded (WS max message size, SSE chunks
//! streamed to the engine's bounded parser, long-poll and POST bodies capped).

pub(crate) mod http;
pub(crate) mod poll;
pub(crate) mod sse;
pub(crate) mod ws;
#[cfg(test)]
mod ws_peer_tests;
mod wsframe;

use crate::driver::Incoming;
use crate::inbox::Inbox;
use std::sync::{Arc, OnceLock};
use tether_engine::{ConnId, OpenRequest, TransportEvent, TransportKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;
use url::Url;

/// Events of the task-run connections of one client, to its driver. Bounded: a slow driver
/// slows the socket reads down (back-pressure) instead of buffering without limit.
pub(crate) type EventTx = Arc<Inbox<Incoming>>;

/// Capacity of the transport → driver inbox.
pub(crate) const EVENT_QUEUE: usize = 256;

/// What the driver asks of a live connection.
#[derive(Debug)]
pub(crate) enum ConnCommand {
    /// Send frames: WebSocket text messages, or one POST `/send` with a JSON array.
    Transmit(Vec<String>),
    /// Long-poll: issue the next poll.
    Poll {
        cursor: Option<String>,
        channels: Vec<String>,
    },
    /// Close and end the task (the code is the engine's, for the span).
    Close { code: u16 },
}

/// Shared, immutable I/O configuration of one client.
#[derive(Debug)]
pub(crate) struct Io {
    /// The endpoint, e.g. `http://127.0.0.1:8787/tether`.
    pub endpoint: Url,
    /// Pooled HTTP client for SSE, long-poll, `/send` and `/ready`, built on first use (a
    /// WebSocket-only client that never probes readiness never pays for one).
    pub http: OnceLock<reqwest::Client>,
    /// TLS for `wss://` and HTTPS: one configuration shared by every client of the process.
    pub tls: Arc<rustls::ClientConfig>,
    /// WebSocket buffers and limits (see [`ws::settings`]).
    pub ws: ws::WsSettings,
    /// LIMIT-1: largest inbound frame; bodies are capped at 16 times this (LIMIT-2).
    pub max_frame_bytes: usize,
    /// Where connection tasks report.
    pub events: EventTx,
}

impl Io {
    /// The HTTP client, built on first use.
    pub fn http(&self) -> Result<&reqwest::Client, String> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        let built = http::http_client((*self.tls).clone())?;
        Ok(self.http.get_or_init(|| built))
    }

    /// The largest long-poll or POST answer body read (LIMIT-2).
    pub fn max_body_bytes(&self) -> usize {
        self.max_frame_bytes.saturating_mul(16)
    }
}

/// Reports events of one connection.
#[derive(Clone, Debug)]
pub(crate) struct Emitter {
    pub conn: ConnId,
    tx: EventTx,
}

impl Emitter {
    /// Send one event, waiting while the driver's inbox is full; false when the driver is
    /// gone (the task should end).
    pub async fn emit(&self, event: TransportEvent) -> bool {
        self.tx
            .send(Incoming::Transport(self.conn, event))
            .await
            .is_ok()
    }
}

/// The driver's handle on a connection task. Dropping it aborts the task (and its socket).
#[derive(Debug)]
pub(crate) struct ConnHandle {
    tx: mpsc::UnboundedSender<ConnCommand>,
    task: Option<JoinHandle<()>>,
}

impl ConnHandle {
    /// Queue a command (ignored when the task already ended).
    pub fn send(&self, cmd: ConnCommand) {
        let _ = self.tx.send(cmd);
    }

    /// Ask the task to close gracefully and let it finish on its own.
    pub fn close(mut self, code: u16) {
        let _ = self.tx.send(ConnCommand::Close { code });
        self.task = None;
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Spawn the task of connection `req.conn` (SSE or long-poll; a WebSocket is a
/// [`ws::WsConn`] polled by the driver).
pub(crate) fn open(io: &Arc<Io>, req: OpenRequest, span: tracing::Span) -> ConnHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let emitter = Emitter {
        conn: req.conn,
        tx: io.events.clone(),
    };
    let io = io.clone();
    let task = match req.transport {
        TransportKind::LongPoll => tokio::spawn(poll::run(io, req, rx, emitter).instrument(span)),
        _ => tokio::spawn(sse::run(io, req, rx, emitter).instrument(span)),
    };
    ConnHandle {
        tx,
        task: Some(task),
    }
}

/// Waits until the driver asks to close or drops the handle; other commands are ignored
/// (none are sent before the transport opened). Used to cancel an opening handshake.
pub(crate) async fn closed(rx: &mut mpsc::UnboundedReceiver<ConnCommand>) {
    loop {
        match rx.recv().await {
            None | Some(ConnCommand::Close { .. }) => return,
            Some(_) => {}
        }
    }
}

/// Aborts a helper task when its connection task ends.
pub(crate) struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
