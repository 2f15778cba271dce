//! The public client: a cloneable handle on one driver task, its builder, publish handles and event streams.

use crate::clock::{Clock, TokioClock};
use crate::driver::{Command, Driver, Hub};
use crate::error::ClientError;
use crate::inbox::{trim, Inbox, Take};
use crate::token::TokenProvider;
use crate::transport::{self, http, Io};
use futures_util::Stream;
use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tether_engine::{
    Config, DropPolicy, DropReason, Engine, Event, MemoryStore, Network, PolicyWire, State, Store,
    TransportKind,
};
use tokio::sync::{oneshot, watch};
use url::Url;

/// One event for the application, stamped with the time since the client was built.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientEvent {
    /// Time since [`ClientBuilder::build`], on the client's [`Clock`].
    pub at: Duration,
    /// What happened (state changes with their cause, messages, acks, drops, errors...).
    pub event: Event,
}

/// A publish the server acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The idempotency key (OUTBOX-1).
    pub id: String,
    /// The sequence number the server gave the message on its channel, when it said.
    pub seq: Option<u64>,
}

/// A publish that will not be acknowledged (OUTBOX-6, OUTBOX-7).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("publish {id} dropped ({})", reason.as_ref().map_or("client closed", DropReason::as_str))]
pub struct Dropped {
    /// The idempotency key.
    pub id: String,
    /// Why the outbox dropped it; `None` when the client was closed (or dropped) before an
    /// outcome was known: the publish then stays in the store for the next client (CONN-3).
    pub reason: Option<DropReason>,
}

/// What a [`PublishHandle`] resolves to.
pub type PublishOutcome = Result<Ack, Dropped>;

/// A queued publish: durable in the store already (OUTBOX-2); await it for its outcome.
///
/// Dropping the handle does not cancel the publish.
#[derive(Debug)]
pub struct PublishHandle {
    id: String,
    rx: oneshot::Receiver<PublishOutcome>,
}

impl PublishHandle {
    pub(crate) fn new(id: String, rx: oneshot::Receiver<PublishOutcome>) -> PublishHandle {
        PublishHandle { id, rx }
    }

    /// The publish's idempotency key.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Future for PublishHandle {
    type Output = PublishOutcome;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PublishOutcome> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(outcome)) => Poll::Ready(outcome),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Dropped {
                id: self.id.clone(),
                reason: None,
            })),
        }
    }
}

/// The events of one client, from the moment [`Client::events`] was called. Unbounded so
/// nothing is lost: a subscriber that stops reading keeps its backlog in memory, so drop
/// streams you no longer read. Ends when the client's driver ends.
///
/// The driver hands over each wake-up's events at once; the stream then serves them one by
/// one from its own buffer, without a lock or a wake-up per event.
pub struct EventStream {
    inbox: Arc<Inbox<ClientEvent>>,
    buf: VecDeque<ClientEvent>,
}

impl core::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EventStream")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// The next event, `None` once the driver has ended.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// An event already waiting, if any (never waits).
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        if self.buf.is_empty() {
            self.inbox.take_now(&mut self.buf);
        }
        self.buf.pop_front()
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        if let Some(ev) = self.buf.pop_front() {
            return Poll::Ready(Some(ev));
        }
        trim(&mut self.buf);
        match self.inbox.poll_take(cx, &mut self.buf) {
            Poll::Ready(Take::Items) => Poll::Ready(self.buf.pop_front()),
            Poll::Ready(Take::Ended) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.inbox.close_receiver();
    }
}

impl Stream for EventStream {
    type Item = ClientEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.poll_event(cx)
    }
}

/// Configures and starts a [`Client`].
pub struct ClientBuilder {
    endpoint: String,
    transports: Vec<TransportKind>,
    policy: PolicyWire,
    token_provider: Option<Arc<dyn TokenProvider>>,
    store: Option<Box<dyn Store + Send>>,
    seed: Option<u64>,
    drop_policy: DropPolicy,
    max_frame_bytes: usize,
    ws_read_buffer: usize,
    clock: Option<Arc<dyn Clock>>,
}

impl core::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("transports", &self.transports)
            .field("policy", &self.policy)
            .field("token_provider", &self.token_provider.is_some())
            .field("seed", &self.seed)
            .field("drop_policy", &self.drop_policy)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("ws_read_buffer", &self.ws_read_buffer)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    fn new(endpoint: impl Into<String>) -> ClientBuilder {
        let defaults = Config::new("");
        ClientBuilder {
            endpoint: endpoint.into(),
            transports: defaults.transports,
            policy: PolicyWire::default(),
            token_provider: None,
            store: None,
            seed: None,
            drop_policy: defaults.drop_policy,
            max_frame_bytes: defaults.max_frame_bytes,
            ws_read_buffer: transport::ws::DEFAULT_READ_BUFFER,
            clock: None,
        }
    }

    /// The allowed transports; they keep ladder order whatever the order given (FALLBACK-1).
    /// Default: all three.
    pub fn transports(mut self, transports: &[TransportKind]) -> Self {
        self.transports = transports.to_vec();
        self
    }

    /// The application's policy overrides: they win over the server's announced values field
    /// by field and are validated but not clamped, so tests may use millisecond timings
    /// (BACKOFF-9).
    pub fn policy(mut self, policy: PolicyWire) -> Self {
        self.policy = policy;
        self
    }

    /// Ask `provider` for a bearer token before every attempt (AUTH-1).
    pub fn token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.token_provider = Some(Arc::new(provider));
        self
    }

    /// Where the outbox and the memo live (OUTBOX-8). Default: a [`MemoryStore`].
    pub fn store(mut self, store: impl Store + Send + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Seed the engine's random generator (BACKOFF-7). Default: fresh OS randomness.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// What a full outbox does (OUTBOX-6). Default: drop the oldest.
    pub fn drop_policy(mut self, policy: DropPolicy) -> Self {
        self.drop_policy = policy;
        self
    }

    /// Largest frame accepted or sent (LIMIT-1); default 1 MiB. Also the WebSocket message
    /// limit, and 16 times it bounds long-poll and POST answers (LIMIT-2).
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// The most a WebSocket reads from its socket at once (default 64 KiB). The buffer is
    /// allocated only while bytes arrive and given back when the socket is drained, so idle
    /// connections hold none; larger frames are read straight into their own allocation.
    /// See [`crate::transport_settings`].
    pub fn ws_read_buffer(mut self, bytes: usize) -> Self {
        self.ws_read_buffer = bytes;
        self
    }

    /// The driver's clock (default: [`TokioClock`], which follows paused tokio time in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Validate, then spawn the client's driver on the current tokio runtime. The client
    /// stays `Idle` until [`Client::connect`].
    pub fn build(self) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let endpoint = parse_endpoint(&self.endpoint)?;
        if self.transports.is_empty() {
            return Err(ClientError::InvalidConfig(
                "at least one transport must be allowed".into(),
            ));
        }
        if self.max_frame_bytes < 1024 {
            return Err(ClientError::InvalidConfig(
                "max_frame_bytes must be at least 1024".into(),
            ));
        }
        validate_policy(&self.policy)?;
        let tls = http::shared_tls().map_err(ClientError::Setup)?;
        let inbox = Arc::new(Inbox::new(transport::EVENT_QUEUE));
        let io = Arc::new(Io {
            endpoint,
            http: std::sync::OnceLock::new(),
            tls,
            ws: transport::ws::settings(self.ws_read_buffer, self.max_frame_bytes),
            max_frame_bytes: self.max_frame_bytes,
            events: inbox.clone(),
        });
        let clock: Arc<dyn Clock> = match self.clock {
            Some(c) => c,
            None => Arc::new(TokioClock::new()),
        };
        let config = Config {
            endpoint: self.endpoint.clone(),
            transports: self.transports,
            overrides: self.policy,
            drop_policy: self.drop_policy,
            max_frame_bytes: self.max_frame_bytes,
            auth: self.token_provider.is_some(),
            seed: self.seed.unwrap_or_else(os_seed),
            // OUTBOX-1: the publish-key client id comes from the OS, never from the seed.
            id_entropy: Some(os_entropy()),
        };
        let store = self
            .store
            .unwrap_or_else(|| Box::new(MemoryStore::default()));
        let start = clock.now();
        let engine = Engine::new(config, store, start, clock.wall_unix_ms());
        let (state_tx, state_rx) = watch::channel(engine.state().clone());
        let commands = Arc::new(Inbox::new(usize::MAX));
        let hub = Arc::new(Hub::default());
        let driver = Driver::new(
            engine,
            clock,
            start,
            io,
            inbox,
            commands.clone(),
            hub.clone(),
            state_tx,
            self.token_provider,
        );
        runtime.spawn(driver.run());
        Ok(Client {
            inner: Arc::new(Inner {
                cmd: commands,
                state: state_rx,
                hub,
            }),
        })
    }
}

fn parse_endpoint(endpoint: &str) -> Result<Url, ClientError> {
    let bad = |reason: &str| ClientError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(endpoint).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(url)
}

/// BACKOFF-9: the engine's rule ([`PolicyWire::validate_overrides`]), as a typed error.
fn validate_policy(p: &PolicyWire) -> Result<(), ClientError> {
    p.validate_overrides().map_err(ClientError::InvalidConfig)
}

/// 64 bits of OS randomness: std's `RandomState` keys come from the OS; mixed with the time.
fn os_seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish()
}

/// 64 bits straight from the OS (`getrandom`), for the client id of publish keys (OUTBOX-1).
/// Should the OS source fail, std's `RandomState` keys (also from the OS) are used instead.
fn os_entropy() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::getrandom(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => os_seed(),
    }
}

struct Inner {
    cmd: Arc<Inbox<Command>>,
    state: watch::Receiver<State>,
    hub: Arc<Hub>,
}

impl Drop for Inner {
    /// The last handle is gone: the driver closes the connection and ends.
    fn drop(&mut self) {
        self.cmd.close_senders();
    }
}

/// A Tether client: cheap to clone, `Send + Sync`; every clone drives the same connection.
///
/// All reconnection decisions are the engine's (`tether-engine`, SPEC.md); this handle
/// sends commands to the client's driver task and reads its state. When the last clone is
/// dropped, the driver closes the connection (code 1000) and ends.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Start configuring a client for `endpoint` (e.g. `https://rt.example.com/tether`).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint)
    }

    fn send(&self, cmd: Command) -> Result<(), ClientError> {
        self.inner
            .cmd
            .send_now(cmd)
            .map_err(|_| ClientError::DriverGone)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| ClientError::DriverGone)
    }

    /// Start connecting (CONN-1): the first attempt starts at once unless a remembered
    /// retry-after deadline is still ahead (READY-2). From `Failed` or `Closed` it starts afresh.
    pub fn connect(&self) -> Result<(), ClientError> {
        self.send(Command::Connect)
    }

    /// Subscribe to `channel` (WIRE-8 names); takes effect on the live connection or the next.
    pub async fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        let channel = channel.to_owned();
        self.ask(|reply| Command::Subscribe { channel, reply })
            .await?
            .map_err(ClientError::from)
    }

    /// Stop receiving `channel`.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        let channel = channel.to_owned();
        self.ask(|reply| Command::Unsubscribe { channel, reply })
            .await?
            .map_err(ClientError::from)
    }

    /// Queue a publish with a generated idempotency key (OUTBOX-1). When this returns `Ok`,
    /// the publish is in the store (OUTBOX-2); await the handle for the ack or the drop.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<PublishHandle, ClientError> {
        self.publish_inner(channel, data, None).await
    }

    /// Queue a publish with the application's own idempotency key (OUTBOX-1).
    pub async fn publish_with_id(
        &self,
        channel: &str,
        data: Value,
        id: impl Into<String>,
    ) -> Result<PublishHandle, ClientError> {
        self.publish_inner(channel, data, Some(id.into())).await
    }

    async fn publish_inner(
        &self,
        channel: &str,
        data: Value,
        id: Option<String>,
    ) -> Result<PublishHandle, ClientError> {
        let channel = channel.to_owned();
        let (id, rx) = self
            .ask(|reply| Command::Publish {
                channel,
                data,
                id,
                reply,
            })
            .await??;
        Ok(PublishHandle::new(id, rx))
    }

    /// A new, independent subscriber to this client's events from now on.
    pub fn events(&self) -> EventStream {
        EventStream {
            inbox: self.inner.hub.subscribe(),
            buf: VecDeque::new(),
        }
    }

    /// The current state (STATE-1), as of the last events drained (STATE-3).
    pub fn state(&self) -> State {
        self.inner.state.borrow().clone()
    }

    /// A watch of the state, to await transitions (`wait_for`, `changed`).
    pub fn state_watch(&self) -> watch::Receiver<State> {
        self.inner.state.clone()
    }

    /// Tell the client about connectivity (NET-1..3): offline stops attempts, online
    /// schedules one at `U(0, base)`, changed reconnects make-before-break.
    pub fn set_network(&self, network: Network) -> Result<(), ClientError> {
        self.send(Command::Network(network))
    }

    /// Close for good (CONN-3): the connection is closed with 1000, timers stop, the state
    /// ends in `Closed`, and publishes still queued stay in the store. Pending publish
    /// handles resolve as dropped with no reason.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.ask(|reply| Command::Close { reply }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_9_overrides_are_validated() {
        let ok = PolicyWire {
            floor_ms: Some(1.0),
            base_ms: Some(5.0),
            cap_ms: Some(50.0),
            ..PolicyWire::default()
        };
        assert!(validate_policy(&ok).is_ok());
        let bad = PolicyWire {
            base_ms: Some(10.0),
            cap_ms: Some(5.0),
            ..PolicyWire::default()
        };
        assert_eq!(
            validate_policy(&bad).map_err(|e| e.code().as_str()),
            Err("bad_request")
        );
        let bad = PolicyWire {
            multiplier: Some(0.5),
            ..PolicyWire::default()
        };
        assert!(validate_policy(&bad).is_err());
    }

    #[test]
    fn endpoints_must_be_http() {
        assert!(parse_endpoint("http://127.0.0.1:1/tether").is_ok());
        assert!(parse_endpoint("ftp://x/").is_err());
        assert!(parse_endpoint("not a url").is_err());
    }

    #[test]
    fn seeds_differ() {
        assert_ne!(os_seed(), os_seed());
        assert_ne!(os_entropy(), os_entropy());
    }

    #[test]
    fn client_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Client>();
    }
}
