//! Transports on browser APIs, reporting faithfully to the engine: [`ws`] on `WebSocket`, [`sse`] and [`poll`] on `fetch`, all cancelled with `AbortController` when the engine closes a connection.
//!
//! Like the native transports they decide nothing: blocked-rung detection, timeouts, retries
//! and the parsing of frames and of SSE are the engine's. Every event carries its connection
//! id (CONN-4) through an [`Emitter`].

pub(crate) mod http;
pub(crate) mod poll;
pub(crate) mod sse;
pub(crate) mod ws;

use crate::driver;
use std::rc::Weak;
use tether_engine::{ConnId, OpenRequest, TransportEvent, TransportFailure, TransportKind};

/// Reports the events of one connection to the driver (ignored once the driver is gone).
#[derive(Clone)]
pub(crate) struct Emitter {
    pub conn: ConnId,
    pub driver: Weak<driver::Shared>,
}

impl Emitter {
    pub(crate) fn emit(&self, event: TransportEvent) {
        if let Some(shared) = self.driver.upgrade() {
            driver::feed(&shared, driver::Input::Transport(self.conn, event));
        }
    }
}

/// The driver's handle on one connection. Dropping it closes the connection and cancels
/// everything it had in flight.
pub(crate) enum Conn {
    Ws(ws::WsConn),
    Sse(sse::SseConn),
    Poll(poll::PollConn),
}

impl Conn {
    /// Open `req` on its rung.
    pub(crate) fn open(
        base: &str,
        req: &OpenRequest,
        max_frame_bytes: usize,
        em: Emitter,
    ) -> Result<Conn, TransportFailure> {
        // LIMIT-2: long-poll and POST answers are read up to 16 frames' worth.
        let max_body = max_frame_bytes.saturating_mul(16);
        Ok(match req.transport {
            TransportKind::WebSocket => Conn::Ws(ws::WsConn::open(base, req, max_frame_bytes, em)?),
            TransportKind::Sse => Conn::Sse(sse::SseConn::open(base, req, max_body, em)?),
            TransportKind::LongPoll => Conn::Poll(poll::PollConn::open(base, req, max_body, em)?),
        })
    }

    /// WebSocket text messages, or one `POST /send` with a JSON array.
    pub(crate) fn transmit(&self, frames: Vec<String>) {
        match self {
            Conn::Ws(c) => c.transmit(frames),
            Conn::Sse(c) => c.transmit(frames),
            Conn::Poll(c) => c.transmit(frames),
        }
    }

    /// Long-poll only: the next poll.
    pub(crate) fn poll(&self, cursor: Option<String>, channels: Vec<String>) {
        if let Conn::Poll(c) = self {
            c.poll(cursor, channels);
        }
    }

    /// Close: a WebSocket close frame with `code`; HTTP requests are aborted.
    pub(crate) fn close(self, code: u16, reason: &str) {
        match self {
            Conn::Ws(c) => c.close(code, reason),
            Conn::Sse(_) | Conn::Poll(_) => {}
        }
    }
}
