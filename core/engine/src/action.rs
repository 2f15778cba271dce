//! What the engine asks the host to do (polled with `poll_action`).

use crate::transport::{ConnId, OpenRequest};

/// One instruction for the host's I/O layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a connection; report progress with `handle_transport_event(conn, ..)`.
    Open(OpenRequest),
    /// Send one text frame on `conn` (WebSocket), or POST it to `/send` (SSE, long-poll)
    /// and report the answer as `SendReply`/`SendFailed`.
    Transmit { conn: ConnId, frames: Vec<String> },
    /// Long-poll only: issue the next poll for `conn` with this cursor and channel list.
    Poll {
        conn: ConnId,
        cursor: Option<String>,
        channels: Vec<String>,
    },
    /// Close `conn` (WebSocket close code, or abort the HTTP request).
    Close {
        conn: ConnId,
        code: u16,
        reason: String,
    },
    /// Ask the token provider for a token; answer with `handle_token(request, ..)` (AUTH-1).
    FetchToken { request: u64, forced: bool },
    /// GET the readiness endpoint; answer with `handle_ready(probe, ..)` (READY-4).
    ProbeReady { probe: u64 },
}
