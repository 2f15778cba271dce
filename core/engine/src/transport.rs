//! Transports, the ladder's rungs, and what a transport reports to the engine (SPEC FALLBACK-1, WIRE-2).

use core::time::Duration;
use serde::{Deserialize, Serialize};

/// One rung of the ladder, best first (FALLBACK-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    WebSocket,
    Sse,
    LongPoll,
}

impl TransportKind {
    /// The full ladder, best rung first.
    pub const LADDER: [TransportKind; 3] = [
        TransportKind::WebSocket,
        TransportKind::Sse,
        TransportKind::LongPoll,
    ];

    /// Stable name (`websocket`, `sse`, `long_poll`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::Sse => "sse",
            TransportKind::LongPoll => "long_poll",
        }
    }

    /// Parse a stable name.
    pub fn parse(s: &str) -> Option<TransportKind> {
        TransportKind::LADDER.into_iter().find(|t| t.as_str() == s)
    }
}

impl core::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most often a host reports [`TransportEvent::Receiving`] for one connection.
pub const RECEIVING_INTERVAL: Duration = Duration::from_millis(250);

/// Identifies one connection (CONN-4). Never reused within an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

/// A bearer token. Its `Debug` and `Display` never show the secret (AUTH-4).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wrap a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into())
    }
    /// The secret itself, for the transport to put on the wire (AUTH-3). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl core::fmt::Display for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("***")
    }
}

/// How an attempt or a connection failed, as the transport saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportFailure {
    /// TCP refused, DNS, TLS, reset before any HTTP answer: the server is unreachable (not a blocking signal).
    Unreachable(String),
    /// The server or a proxy answered the upgrade/stream/poll request with this HTTP status.
    HttpStatus {
        status: u16,
        /// The `Tether-Error` header: present when the tether server itself answered (WIRE-10).
        tether_error: Option<String>,
        /// `Tether-Retry-After-Ms`, or `Retry-After` seconds × 1000 (READY-1).
        retry_after: Option<Duration>,
    },
    /// An SSE answer with a content type other than `text/event-stream` (FALLBACK-2a).
    WrongContentType(String),
    /// The connection broke after it opened (I/O error, reset, EOF without close frame).
    Io(String),
    /// The transport refused an inbound message over `max_frame_bytes` before buffering
    /// it, and closed the connection with 1009 (LIMIT-1).
    FrameTooLarge(String),
}

/// What a transport reports about connection `conn` (CONN-4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// The transport-level open succeeded: HTTP 101, SSE 200 headers, or a poll answered 200.
    /// This is not "connected" (CONN-2): that takes the hello.
    Opened,
    /// One complete text frame (a WebSocket text message).
    Text(String),
    /// One complete binary WebSocket message or a text message that was not UTF-8.
    Binary(Vec<u8>),
    /// A chunk of an SSE stream, for the engine's parser.
    SseBytes(Vec<u8>),
    /// The complete body of a long-poll answer (a JSON array of frames).
    PollBody(Vec<u8>),
    /// The complete body of a POST `/send` answer (a JSON array of frames).
    SendReply(Vec<u8>),
    /// A POST `/send` failed; the publishes stay in the outbox.
    SendFailed(TransportFailure),
    /// Bytes arrived on the connection for a message or body that is not complete yet
    /// (SPEC HEARTBEAT-2, HEARTBEAT-4, CONN-6): the connection is alive even though no
    /// complete event could be reported. `bytes` counts what arrived since the previous
    /// `Receiving` of this connection (for diagnostics; the engine needs only the instant).
    ///
    /// When a host MUST emit it:
    /// - **long-poll**: while a poll answer's body is being read (after its headers,
    ///   before its [`TransportEvent::PollBody`]), the hello poll included;
    /// - **WebSocket**: while bytes are read from the socket and no complete message came
    ///   out of them (a large message on a slow link), where the stack lets the host count
    ///   socket bytes; a host that cannot (a browser's `WebSocket`) does without;
    /// - never for `POST /send` answers (they travel on another connection, HEARTBEAT-2),
    ///   and not needed on SSE, whose every chunk is already a
    ///   [`TransportEvent::SseBytes`].
    ///
    /// How often: throttled in the host so it costs nothing on the hot path, at most one
    /// per [`RECEIVING_INTERVAL`] per connection, and only when bytes arrived since the last
    /// one; a body or message completing within the interval needs none (its complete event
    /// is liveness itself). A host SHOULD report within one interval of bytes arriving, so
    /// the engine's deadlines (seconds) never see a live connection as silent.
    Receiving { bytes: u64 },
    /// The stream ended cleanly (WebSocket close frame, SSE EOF).
    Closed { code: Option<u16>, reason: String },
    /// The attempt or the connection failed.
    Failed(TransportFailure),
}

/// Everything a transport needs to open a connection (WIRE-2, RESUME-2, AUTH-3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRequest {
    pub conn: ConnId,
    pub transport: TransportKind,
    /// The resume cursor: `cursor` query (WS, long-poll) or `Last-Event-ID` (SSE).
    pub cursor: Option<String>,
    /// Channels to subscribe to on open (`channels` query).
    pub channels: Vec<String>,
    pub token: Option<Token>,
    /// For long-poll: the poll hold the server may use.
    pub poll_hold: Duration,
}
