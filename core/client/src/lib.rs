//! tether: the native async client of the Tether reconnection contract (SPEC.md).
//!
//! A [`Client`] owns one driver task on the current tokio runtime. The driver feeds the
//! sans-IO [`tether_engine::Engine`] with transport events, application calls and timer
//! ticks, and performs what the engine decides: which transport to open, when to retry,
//! what to resend. The transports (WebSocket framed by the client itself, SSE and long-poll via
//! reqwest, TLS by rustls) only report what they see.
//!
//! ```
//! use futures_util::StreamExt;
//! use serde_json::json;
//! use tether::{Client, Event, TransportKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = tether_server::Server::start(Default::default()).await?;
//! # let endpoint = server.endpoint_url(); // e.g. "http://127.0.0.1:8787/tether"
//! let client = Client::builder(endpoint)
//!     .transports(&[TransportKind::WebSocket, TransportKind::Sse, TransportKind::LongPoll])
//!     .build()?;
//! let mut events = client.events();
//! client.subscribe("lobby").await?;
//! client.connect()?;
//!
//! // Durable in the outbox once `publish` returns; the handle resolves on the server's ack.
//! let ack = client.publish("lobby", json!({"text": "hi"})).await?.await?;
//! assert!(ack.seq.is_some());
//!
//! while let Some(ev) = events.next().await {
//!     match ev.event {
//!         Event::StateChanged { to, cause, .. } => println!("now {to} (cause: {cause})"),
//!         Event::Message { channel, seq, data } => {
//!             println!("{channel}#{seq}: {data}");
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! client.close().await?;
//! # Ok(()) }
//! ```
//!
//! States, causes and reasons print (`Display`) as the SPEC's stable snake_case names:
//! `connected (websocket)`, `transport_closed`, `blocked`.
//!
//! # Transport settings
//!
//! See [`transport_settings`] for the buffer and limit choices.

mod client;
pub mod clock;
mod driver;
mod error;
mod inbox;
pub mod store;
mod token;
mod transport;

pub use client::{
    Ack, Client, ClientBuilder, ClientEvent, Dropped, EventStream, PublishHandle, PublishOutcome,
};
pub use clock::{Clock, TokioClock};
pub use error::ClientError;
pub use store::file::{FileStore, FileStoreOptions, FileStoreStats};
pub use token::{TokenError, TokenProvider};

pub use tether_engine::{
    Cause, DropPolicy, DropReason, ErrorCode, Event, FallbackReason, Instant, Memo, MemoryStore,
    Network, OutboxRecord, Policy, PolicyWire, ResetReason, State, Store, StoreError,
    TransportKind,
};

/// The engine itself, for hosts that need more than the re-exports.
pub use tether_engine as engine;

/// Buffer and limit settings of the transports, and why.
///
/// - **WebSocket** (RFC 6455 framing of its own over tokio's TCP or rustls, polled by the
///   driver task itself: no connection task, no queue or thread wake-up per message): the read
///   buffer (64 KiB by default, [`ClientBuilder::ws_read_buffer`]) is allocated only while
///   bytes arrive and given back once the socket has been quiet for 100 ms, so an idle
///   connection holds none;
///   a frame larger than half of it is read straight into its own allocation. Frames queued for
///   a slow socket wait in a write buffer of at most 16 × `max_frame_bytes` (64 KiB at least),
///   beyond which the connection fails and is replaced; a message is at most `max_frame_bytes`
///   (1 MiB by default, LIMIT-1), checked from the frame header before anything is buffered.
///   The handshake's state is boxed and freed once the connection is open. An idle client
///   (driver task, engine, inboxes, socket) keeps well under 16 KiB of heap (`bench`, P2).
/// - **SSE** (reqwest, streaming): the body is never collected; each chunk hyper reads is handed
///   to the engine's own incremental WHATWG parser, which bounds lines and events at
///   `max_frame_bytes` (LIMIT-3). The same parser runs on every platform;
///   `eventsource-stream` is used only as a peer in the benchmark program.
/// - **Long-poll and `POST /send`** (reqwest): answer bodies are read up to
///   16 × `max_frame_bytes` (LIMIT-2); a longer one is cut there and rejected by the engine as
///   `frame_too_large`.
/// - **Bounded queues**: SSE and long-poll tasks report to the driver through a bounded inbox
///   (256 events), so a slow driver slows socket reads instead of buffering; a WebSocket is
///   read by the driver itself, at most 256 messages per wake-up. Each wake-up's events reach
///   the application's [`EventStream`]s in one hand-off.
/// - **Pooled HTTP connections and dead paths** (SSE, long-poll, `POST /send`): NAT gateways
///   and cloud load balancers forget idle TCP connections without telling either end (no FIN,
///   no RST), after as little as 30 s to a few minutes (AWS ALB: 60 s by default). A request
///   sent on such a pooled connection is never answered. Three layers deal with it:
///   1. idle pooled connections are dropped after [`POOL_IDLE_TIMEOUT`] (20 s), below those
///      timeouts, so reuse rarely meets a forgotten connection;
///   2. TCP keepalive probes after [`TCP_KEEPALIVE_IDLE`] (15 s) of idleness, every
///      [`TCP_KEEPALIVE_INTERVAL`] (5 s), [`TCP_KEEPALIVE_RETRIES`] (3) times, keep NAT
///      mappings of kept connections fresh and let the kernel fail a dead one within about
///      30 s; on Linux `TCP_USER_TIMEOUT` ([`TCP_USER_TIMEOUT`], 30 s) fails a socket whose
///      sent data stays unacknowledged;
///   3. the guarantee is the engine's: every `POST /send` has a deadline (SPEC OUTBOX-9,
///      `open_timeout` plus one second per 16 KiB of body); when it passes, the connection
///      is closed, which aborts the hung request so its socket is never reused, and the
///      publishes are resent on a fresh connection.
///
///   WebSocket needs none of this: publishes share the stream's socket, and the server's
///   pings (HEARTBEAT-2) prove it alive or fail it.
pub mod transport_settings {
    /// The default WebSocket read buffer (held only while bytes arrive).
    pub const WS_READ_BUFFER: usize = crate::transport::ws::DEFAULT_READ_BUFFER;
    pub use crate::transport::http::{
        POOL_IDLE_TIMEOUT, TCP_KEEPALIVE_IDLE, TCP_KEEPALIVE_INTERVAL, TCP_KEEPALIVE_RETRIES,
        TCP_USER_TIMEOUT,
    };
}
