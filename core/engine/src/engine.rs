//! The engine: one client's connection state machine, wiring backoff, ladder, ordering, outbox and heartbeat together.

use crate::action::Action;
use crate::backoff;
use crate::error::{CallError, ErrorCode, FrameError};
use crate::event::{Event, FallbackReason, ResetReason};
use crate::frame::{valid_channel, ClientFrame, ServerFrame, MAX_CURSOR_BYTES, PROTOCOL_VERSION};
use crate::ladder::{Ladder, Step};
use crate::order::{ChannelOrder, Delivery, Outcome};
use crate::outbox::Outbox;
use crate::policy::{DropPolicy, Policy, PolicyWire};
use crate::rng::Rng;
use crate::sse::{SseItem, SseLimits, SseParser};
use crate::state::{Cause, State};
use crate::store::{Memo, OutboxRecord, Store};
use crate::time::Instant;
use crate::transport::{
    ConnId, OpenRequest, Token, TransportEvent, TransportFailure, TransportKind,
};
use core::time::Duration;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// Malformed frames tolerated on one connection before it is closed (WIRE-6).
pub const MAX_MALFORMED: u32 = 16;

/// Longest retry-after hint honoured (READY-1).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Longest drain window honoured (DRAIN-1).
pub const MAX_DRAIN_MS: u64 = 600_000;

/// How the application configures an engine.
#[derive(Clone, Debug)]
pub struct Config {
    /// The endpoint URL; the key of the remembered transport (FALLBACK-5).
    pub endpoint: String,
    /// Allowed transports; the ladder keeps their ladder order (FALLBACK-1).
    pub transports: Vec<TransportKind>,
    /// The app's own policy overrides (BACKOFF-9).
    pub overrides: PolicyWire,
    pub drop_policy: DropPolicy,
    /// Largest frame accepted or sent (LIMIT-1).
    pub max_frame_bytes: usize,
    /// True when a token provider exists (AUTH-1).
    pub auth: bool,
    /// Seed of the engine's random generator (BACKOFF-7).
    pub seed: u64,
}

impl Config {
    /// A configuration with defaults for `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Config {
        Config {
            endpoint: endpoint.into(),
            transports: TransportKind::LADDER.to_vec(),
            overrides: PolicyWire::default(),
            drop_policy: DropPolicy::DropOldest,
            max_frame_bytes: Policy::default().max_frame_bytes,
            auth: false,
            seed: 0,
        }
    }
}

/// What the host knows about connectivity (NET-1..3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Online,
    Offline,
    Changed,
}

/// The token provider could not give a token (AUTH-1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenError {
    /// A fatal error ends in `Failed{auth_failed}`; otherwise the attempt fails and backs off.
    pub fatal: bool,
    pub message: String,
}

/// The answer of a readiness probe (READY-3, READY-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyAnswer {
    Ready { from_ms: u64, to_ms: u64 },
    NotReady,
    Failed,
}

/// Why a second connection is being opened beside the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Switch {
    /// FALLBACK-6.
    Upgrade,
    /// NET-3.
    NetworkChanged,
    /// The channel set changed on a transport that carries it in the request.
    Resubscribe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the hello (CONN-2).
    Opening,
    Up,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    transport: TransportKind,
    phase: Phase,
    started: Instant,
    transport_open: bool,
    last_rx: Instant,
    poll_sent: Instant,
    malformed: u32,
    sse: Option<SseParser>,
    sse_retry: Option<Duration>,
    channels: Vec<String>,
    switch: Option<Switch>,
}

/// What the engine is waiting for between connections.
#[derive(Clone, Debug)]
enum Wait {
    /// Nothing scheduled (idle, closed, failed, or connected).
    None,
    /// A timer: the next attempt at `at`.
    Retry { at: Instant, cause: Cause },
    /// The token for the next attempt (AUTH-1).
    Token {
        request: u64,
        deadline: Instant,
        transport: TransportKind,
    },
    /// The network to come back (NET-1).
    Network,
}

/// A sans-IO Tether client: feed it inputs, drain its outputs.
pub struct Engine {
    config: Config,
    policy: Policy,
    server_policy: Option<PolicyWire>,
    rng: Rng,
    outbox: Outbox,
    memo: Memo,
    state: State,
    wait: Wait,
    primary: Option<Conn>,
    candidate: Option<Conn>,
    next_conn: u64,
    next_request: u64,
    /// Delays scheduled since the last hello: `n` of BACKOFF-1.
    retries: u32,
    /// Attempts failed since the last hello (BACKOFF-6).
    failed_attempts: u32,
    streak_start: Option<Instant>,
    auth_retry_used: bool,
    force_token: bool,
    last_token: Option<Token>,
    ladder: Ladder,
    upgrade_at: Option<Instant>,
    probe_at: Option<Instant>,
    probe_outstanding: Option<u64>,
    /// When the last readiness probe was sent (READY-4: at most one per interval).
    probe_sent: Option<Instant>,
    offline: bool,
    cursor: Option<String>,
    channels: BTreeMap<String, ChannelOrder>,
    resend_at: Option<Instant>,
    client_id: String,
    publish_counter: u64,
    now0: Instant,
    wall0_unix_ms: u64,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("state", &self.state)
            .field("transport", &self.ladder.current())
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A new engine. `now` is the host's monotonic time, `wall_unix_ms` its wall clock
    /// (used only for outbox ages and remembered deadlines, which outlive the process).
    pub fn new(
        config: Config,
        store: Box<dyn Store + Send>,
        now: Instant,
        wall_unix_ms: u64,
    ) -> Engine {
        let mut rng = Rng::new(config.seed);
        let client_id = rng.hex_id();
        let (mut outbox, restored) = Outbox::restore(store);
        let memo = outbox.store_mut().load_memo();
        let mut events = VecDeque::new();
        if let Err(e) = &restored {
            events.push_back(Event::Error {
                code: ErrorCode::StoreFailed,
                detail: e.to_string(),
            });
        }
        let memo = match memo {
            Ok(m) => m.unwrap_or_default(),
            Err(e) => {
                events.push_back(Event::Error {
                    code: ErrorCode::StoreFailed,
                    detail: e.to_string(),
                });
                Memo::default()
            }
        };
        let mut ladder = Ladder::new(&config.transports);
        if let Some(t) = memo.transports.get(&config.endpoint) {
            ladder.remember(*t);
        }
        let mut engine = Engine {
            policy: Policy::default(),
            server_policy: memo.policy.clone(),
            rng,
            outbox,
            memo,
            state: State::Idle,
            wait: Wait::None,
            primary: None,
            candidate: None,
            next_conn: 1,
            next_request: 1,
            retries: 0,
            failed_attempts: 0,
            streak_start: None,
            auth_retry_used: false,
            force_token: false,
            last_token: None,
            ladder,
            upgrade_at: None,
            probe_at: None,
            probe_outstanding: None,
            probe_sent: None,
            offline: false,
            cursor: None,
            channels: BTreeMap::new(),
            resend_at: None,
            client_id,
            publish_counter: 0,
            now0: now,
            wall0_unix_ms: wall_unix_ms,
            actions: VecDeque::new(),
            events,
            config,
        };
        engine.recompute_policy();
        engine
    }

    // ----- queries -----

    /// The current state (STATE-1).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The effective policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The resume cursor (RESUME-2).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Publishes waiting for an ack.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The transport in use or being tried.
    pub fn transport(&self) -> TransportKind {
        self.ladder.current()
    }

    /// Subscribed channels.
    pub fn channels(&self) -> Vec<String> {
        self.channels.keys().cloned().collect()
    }

    /// Duplicates dropped on a channel so far (ORDER-2).
    pub fn duplicates(&self, channel: &str) -> u64 {
        self.channels.get(channel).map_or(0, |c| c.duplicates())
    }

    // ----- outputs -----

    /// The next instruction for the host.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The one deadline at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |x| x.min(d)));
            }
        };
        match &self.wait {
            Wait::Retry { at, .. } => consider(Some(*at)),
            Wait::Token { deadline, .. } => consider(Some(*deadline)),
            Wait::None | Wait::Network => {}
        }
        consider(self.primary.as_ref().map(|c| self.conn_deadline(c)));
        consider(self.candidate.as_ref().map(|c| self.conn_deadline(c)));
        consider(self.upgrade_at);
        consider(self.probe_at);
        consider(self.resend_at);
        if self.is_running() {
            // CONN-3: no timer survives `close` (nor `Failed`).
            for ch in self.channels.values() {
                consider(ch.gap_deadline());
            }
        }
        if !self.outbox.is_empty() && self.is_running() {
            consider(
                self.outbox
                    .next_expiry_unix_ms(&self.policy)
                    .map(|w| self.instant_of_wall(w)),
            );
        }
        t
    }

    // ----- application inputs -----

    /// Start connecting (CONN-1). From `Failed` or `Closed` it starts afresh.
    pub fn connect(&mut self, now: Instant) {
        if matches!(
            self.state,
            State::Connecting { .. }
                | State::Connected { .. }
                | State::Degraded { .. }
                | State::Reconnecting { .. }
        ) {
            return;
        }
        self.retries = 0;
        self.failed_attempts = 0;
        self.streak_start = None;
        self.auth_retry_used = false;
        if self.offline {
            self.wait = Wait::Network;
            self.set_state(
                State::Reconnecting {
                    attempt: 0,
                    delay: None,
                    cause: Cause::NetworkOffline,
                },
                Cause::UserConnect,
            );
            return;
        }
        if let Some(deadline) = self.memo.retry_after_unix_ms {
            let at = self.instant_of_wall(deadline);
            if at > now {
                self.schedule(now, at - now, Cause::RetryLater);
                return;
            }
        }
        self.begin_attempt(now, Cause::UserConnect);
    }

    /// Close for good (CONN-3). The outbox stays in the store.
    pub fn close(&mut self, _now: Instant) {
        self.close_conns(1000, "client close");
        self.stop_timers();
        self.set_state(State::Closed, Cause::UserClose);
    }

    /// Subscribe to a channel; takes effect on the live connection or the next one.
    pub fn subscribe(&mut self, channel: &str, now: Instant) -> Result<(), CallError> {
        self.check_channel(channel)?;
        if self.channels.contains_key(channel) {
            return Ok(());
        }
        self.channels
            .insert(channel.to_string(), ChannelOrder::default());
        self.sync_subscriptions(now);
        Ok(())
    }

    /// Unsubscribe; messages of the channel are no longer delivered.
    pub fn unsubscribe(&mut self, channel: &str, now: Instant) -> Result<(), CallError> {
        self.check_channel(channel)?;
        if self.channels.remove(channel).is_none() {
            return Ok(());
        }
        if let Some(c) = self
            .primary
            .as_mut()
            .filter(|c| c.phase == Phase::Up && c.transport == TransportKind::WebSocket)
        {
            // Forget it on the connection too, so a later subscribe sends `subscribe` again.
            c.channels.retain(|ch| ch != channel);
            let frame = ClientFrame::Unsubscribe {
                channel: channel.to_string(),
            }
            .encode();
            let conn = c.id;
            self.actions.push_back(Action::Transmit {
                conn,
                frames: vec![frame],
            });
        } else {
            // WIRE-11: SSE and long-poll carry the channel set in the request.
            self.sync_subscriptions(now);
        }
        Ok(())
    }

    /// Queue a publish (OUTBOX-1, -2): durable when this returns `Ok(id)`.
    pub fn publish(
        &mut self,
        channel: &str,
        data: Value,
        id: Option<String>,
        now: Instant,
    ) -> Result<String, CallError> {
        if matches!(self.state, State::Closed) {
            return Err(CallError::Closed);
        }
        self.check_channel(channel)?;
        let data = data.to_string();
        let id = match id {
            Some(id) => id,
            None => {
                self.publish_counter += 1;
                format!("{}-{}", self.client_id, self.publish_counter)
            }
        };
        let record = OutboxRecord {
            id: id.clone(),
            channel: channel.to_string(),
            data,
            enqueued_unix_ms: self.wall(now),
        };
        let frame_size = record.size() + 48;
        if frame_size > self.config.max_frame_bytes {
            return Err(CallError::MessageTooLarge {
                size: frame_size,
                limit: self.config.max_frame_bytes,
            });
        }
        if self.outbox.contains(&id) {
            return Ok(id);
        }
        let dropped = self.outbox.push(record, &self.policy)?;
        for d in dropped {
            self.events.push_back(Event::Dropped {
                id: d.id,
                reason: d.reason,
            });
        }
        self.flush_outbox();
        Ok(id)
    }

    /// The host's view of connectivity changed (NET-1..3).
    pub fn handle_network(&mut self, now: Instant, network: Network) {
        match network {
            Network::Offline => {
                if self.offline {
                    return;
                }
                self.offline = true;
                if !self.is_running() {
                    return;
                }
                self.close_conns(1000, "network offline");
                self.stop_timers();
                self.wait = Wait::Network;
                let attempt = self.retries;
                self.set_state(
                    State::Reconnecting {
                        attempt,
                        delay: None,
                        cause: Cause::NetworkOffline,
                    },
                    Cause::NetworkOffline,
                );
            }
            Network::Online => {
                let was_offline = core::mem::replace(&mut self.offline, false);
                if was_offline && matches!(self.wait, Wait::Network) {
                    self.reset_streak();
                    let d = self.rng.duration_between(Duration::ZERO, self.policy.base);
                    self.schedule_plain(now, d, Cause::NetworkOnline);
                }
            }
            Network::Changed => {
                if self.offline {
                    return self.handle_network(now, Network::Online);
                }
                match &self.wait {
                    Wait::Retry { at, .. } => {
                        let d = self.rng.duration_between(Duration::ZERO, self.policy.base);
                        if now + d < *at {
                            self.reset_streak();
                            self.schedule_plain(now, d, Cause::NetworkOnline);
                        }
                    }
                    Wait::None => {
                        if let Some(t) = self
                            .primary
                            .as_ref()
                            .filter(|c| c.phase == Phase::Up)
                            .map(|c| c.transport)
                        {
                            self.open_candidate(now, t, Switch::NetworkChanged);
                        }
                    }
                    Wait::Token { .. } | Wait::Network => {}
                }
            }
        }
    }

    /// The token provider answered request `request` (AUTH-1).
    pub fn handle_token(&mut self, now: Instant, request: u64, token: Result<Token, TokenError>) {
        let Wait::Token {
            request: expected,
            transport,
            ..
        } = self.wait
        else {
            return;
        };
        if expected != request {
            return;
        }
        self.wait = Wait::None;
        match token {
            Ok(token) => {
                self.last_token = Some(token.clone());
                self.open_primary(now, transport, Some(token));
            }
            Err(e) if e.fatal => self.fail(
                ErrorCode::AuthFailed,
                Cause::Terminal {
                    code: ErrorCode::AuthFailed,
                },
            ),
            Err(e) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::AuthFailed,
                    detail: e.message,
                });
                self.attempt_failed(now, Cause::TransportError, None);
            }
        }
    }

    /// A readiness probe answered (READY-4, READY-5).
    pub fn handle_ready(&mut self, now: Instant, probe: u64, answer: ReadyAnswer) {
        if self.probe_outstanding != Some(probe) {
            return;
        }
        self.probe_outstanding = None;
        let Wait::Retry { at, .. } = self.wait.clone() else {
            return;
        };
        match answer {
            ReadyAnswer::Ready { from_ms, to_ms } => {
                let (lo, hi) = ordered_window(from_ms, to_ms);
                let d = self
                    .rng
                    .duration_between(Duration::from_millis(lo), Duration::from_millis(hi));
                if now + d < at {
                    self.wait = Wait::Retry {
                        at: now + d,
                        cause: Cause::Backoff,
                    };
                    let attempt = self.retries;
                    self.events.push_back(Event::ReconnectScheduled {
                        attempt,
                        delay: d,
                        cause: Cause::Backoff,
                    });
                    self.set_state(
                        State::Reconnecting {
                            attempt,
                            delay: Some(d),
                            cause: Cause::Backoff,
                        },
                        Cause::Backoff,
                    );
                }
                self.probe_at = None;
            }
            ReadyAnswer::NotReady | ReadyAnswer::Failed => self.plan_probe(now, at),
        }
    }

    /// A timer fired: act on every deadline that has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Wait::Retry { at, cause } = self.wait.clone() {
            if now >= at {
                self.wait = Wait::None;
                self.probe_at = None;
                self.probe_outstanding = None;
                self.begin_attempt(now, cause);
            }
        }
        if let Wait::Token { deadline, .. } = self.wait {
            if now >= deadline {
                self.wait = Wait::None;
                self.events.push_back(Event::Error {
                    code: ErrorCode::AuthFailed,
                    detail: "token provider timed out".into(),
                });
                self.attempt_failed(now, Cause::TransportError, None);
            }
        }
        if let Some(at) = self.probe_at {
            if now >= at {
                // A newer probe supersedes one still unanswered (its answer is then ignored).
                self.probe_at = None;
                let probe = self.next_request();
                self.probe_outstanding = Some(probe);
                self.probe_sent = Some(now);
                self.actions.push_back(Action::ProbeReady { probe });
            }
        }
        if let Some(at) = self.resend_at {
            if now >= at {
                self.resend_at = None;
                self.flush_outbox();
            }
        }
        self.check_conn_deadlines(now);
        if let Some(at) = self.upgrade_at {
            if now >= at {
                self.upgrade_at = None;
                let top = self.ladder.top();
                if self
                    .primary
                    .as_ref()
                    .is_some_and(|c| c.phase == Phase::Up && c.transport != top)
                {
                    match self.candidate.as_ref().map(|c| self.conn_deadline(c)) {
                        // Another switch is under way: try again once it is settled.
                        Some(busy_until) => self.upgrade_at = Some(busy_until.max(now)),
                        None => self.open_candidate(now, top, Switch::Upgrade),
                    }
                }
            }
        }
        if self.is_running() {
            self.check_gaps(now);
        }
        if self.is_running() {
            let wall = self.wall(now);
            for d in self.outbox.expire(wall, &self.policy) {
                self.events.push_back(Event::Dropped {
                    id: d.id,
                    reason: d.reason,
                });
            }
        }
    }

    /// Something happened on connection `conn` (CONN-4: stale connections are ignored).
    pub fn handle_transport_event(&mut self, now: Instant, conn: ConnId, event: TransportEvent) {
        let Some(role) = self.role_of(conn) else {
            return;
        };
        // HEARTBEAT-2: only what arrives on the connection itself counts as liveness;
        // a POST answer or a failed POST says nothing about the stream.
        if !matches!(
            event,
            TransportEvent::SendReply(_) | TransportEvent::SendFailed(_)
        ) {
            if let Some(c) = self.conn_mut(role) {
                c.last_rx = now;
            }
        }
        match event {
            TransportEvent::Opened => {
                if let Some(c) = self.conn_mut(role) {
                    c.transport_open = true;
                }
            }
            TransportEvent::Text(text) => {
                let decoded = ServerFrame::decode(&text, self.config.max_frame_bytes);
                self.on_decoded(now, role, decoded, None);
            }
            TransportEvent::Binary(bytes) => {
                let decoded = ServerFrame::decode_bytes(&bytes, self.config.max_frame_bytes);
                self.on_decoded(now, role, decoded, None);
            }
            TransportEvent::SseBytes(bytes) => self.on_sse_bytes(now, conn, &bytes),
            TransportEvent::PollBody(body) => {
                self.on_batch(now, conn, &body);
                // The connection may have become the primary during the batch (a switch).
                let Some(role) = self.role_of(conn) else {
                    return;
                };
                if self.conn_ref(role).is_some_and(|c| c.phase == Phase::Up) {
                    let channels = self.channels();
                    let cursor = self.cursor.clone();
                    if let Some(c) = self.conn_mut(role) {
                        c.poll_sent = now;
                    }
                    self.actions.push_back(Action::Poll {
                        conn,
                        cursor,
                        channels,
                    });
                }
            }
            TransportEvent::SendReply(body) => self.on_batch(now, conn, &body),
            TransportEvent::SendFailed(_) => {
                self.outbox.unsend(conn);
                self.resend_at = Some(now + self.policy.floor.max(Duration::from_millis(1)));
            }
            TransportEvent::Closed { code, reason } => self.on_closed(now, role, code, &reason),
            TransportEvent::Failed(failure) => self.on_failed(now, role, failure),
        }
    }

    // ----- frames -----

    fn on_sse_bytes(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let mut items = Vec::new();
        let result = match self
            .role_of(conn)
            .and_then(|role| self.conn_mut(role))
            .and_then(|c| c.sse.as_mut())
        {
            Some(parser) => parser.feed(bytes, &mut items),
            None => return,
        };
        for item in items {
            // A hello on a candidate moves it to the primary slot: look it up per item.
            let Some(role) = self.role_of(conn) else {
                return;
            };
            match item {
                SseItem::Event(ev) => {
                    let id = if ev.id_set && !ev.last_event_id.is_empty() {
                        Some(ev.last_event_id)
                    } else {
                        None
                    };
                    let decoded = ServerFrame::decode(&ev.data, self.config.max_frame_bytes);
                    self.on_decoded(now, role, decoded, id);
                }
                SseItem::Retry(ms) => {
                    let r = Duration::from_millis(ms)
                        .min(self.policy.cap)
                        .max(self.policy.floor);
                    if let Some(c) = self.conn_mut(role) {
                        c.sse_retry = Some(r);
                    }
                }
                SseItem::Comment => {}
            }
        }
        let Some(role) = self.role_of(conn) else {
            return;
        };
        if let Err(e) = result {
            let code = ErrorCode::parse(e.code()).unwrap_or(ErrorCode::FrameTooLarge);
            self.events.push_back(Event::Error {
                code,
                detail: e.to_string(),
            });
            self.conn_broken(now, role, 1009, "sse limit", Cause::ProtocolError);
        }
    }

    fn on_batch(&mut self, now: Instant, conn: ConnId, body: &[u8]) {
        let limit = self.config.max_frame_bytes.saturating_mul(16);
        match ServerFrame::decode_batch(body, limit) {
            Ok(frames) => {
                for f in frames {
                    // A hello on a candidate moves it to the primary slot: look it up per frame.
                    let Some(role) = self.role_of(conn) else {
                        return;
                    };
                    self.on_decoded(now, role, f, None);
                }
            }
            Err(e) => {
                if let Some(role) = self.role_of(conn) {
                    self.on_decoded(now, role, Err(e), None);
                }
            }
        }
    }

    fn on_decoded(
        &mut self,
        now: Instant,
        role: Role,
        decoded: Result<ServerFrame, FrameError>,
        sse_id: Option<String>,
    ) {
        match decoded {
            Ok(frame) => self.on_frame(now, role, frame, sse_id),
            Err(FrameError::UnknownType(_)) => {}
            Err(FrameError::TooLarge { size, limit }) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::FrameTooLarge,
                    detail: format!("{size} > {limit} bytes"),
                });
                self.conn_broken(now, role, 1009, "frame too large", Cause::ProtocolError);
            }
            Err(e) => {
                let code = e.code().unwrap_or(ErrorCode::FrameMalformed);
                self.events.push_back(Event::Error {
                    code,
                    detail: e.to_string(),
                });
                let too_many = self.conn_mut(role).map(|c| {
                    c.malformed += 1;
                    c.malformed > MAX_MALFORMED
                });
                if too_many == Some(true) {
                    self.conn_broken(
                        now,
                        role,
                        4002,
                        "too many malformed frames",
                        Cause::ProtocolError,
                    );
                }
            }
        }
    }

    fn on_frame(&mut self, now: Instant, role: Role, frame: ServerFrame, sse_id: Option<String>) {
        let opening = self
            .conn_ref(role)
            .is_some_and(|c| c.phase == Phase::Opening);
        match frame {
            ServerFrame::Hello {
                v,
                cursor,
                policy,
                reset,
                ..
            } => {
                if !opening {
                    return;
                }
                if v != PROTOCOL_VERSION {
                    return self.fail(
                        ErrorCode::ProtocolVersion,
                        Cause::Terminal {
                            code: ErrorCode::ProtocolVersion,
                        },
                    );
                }
                self.on_hello(now, role, cursor.or(sse_id), policy.map(|p| *p), reset);
            }
            _ if opening => match frame {
                ServerFrame::RetryLater { .. }
                | ServerFrame::Error { .. }
                | ServerFrame::Drain { .. } => self.on_control(now, role, frame),
                _ => self.events.push_back(Event::Error {
                    code: ErrorCode::FrameMalformed,
                    detail: "frame before hello".into(),
                }),
            },
            ServerFrame::Msg {
                channel,
                seq,
                cursor,
                data,
            } => {
                let cursor = cursor.or(sse_id);
                let Some(order) = self.channels.get_mut(&channel) else {
                    return;
                };
                let outcome = order.accept(now, Delivery { seq, data, cursor });
                match outcome {
                    Outcome::Deliver(ds) => self.deliver(&channel, ds),
                    Outcome::GapReset(ds) => {
                        self.events.push_back(Event::Reset {
                            channel: channel.clone(),
                            reason: ResetReason::Gap,
                        });
                        self.deliver(&channel, ds);
                    }
                    Outcome::Duplicate | Outcome::Held => {}
                }
            }
            ServerFrame::Subscribed {
                channel,
                seq,
                cursor,
            } => {
                if let Some(order) = self.channels.get_mut(&channel) {
                    let ds = order.set_baseline(seq);
                    self.set_cursor(cursor.or(sse_id));
                    self.deliver(&channel, ds);
                }
            }
            ServerFrame::Reset { channel, cursor } => {
                if let Some(order) = self.channels.get_mut(&channel) {
                    order.clear();
                    self.set_cursor(cursor.or(sse_id));
                    self.events.push_back(Event::Reset {
                        channel,
                        reason: ResetReason::Server,
                    });
                }
            }
            ServerFrame::Ack { id, seq, .. } => {
                if self.outbox.remove(&id).is_some() {
                    self.events.push_back(Event::Acked { id, seq });
                    self.flush_outbox();
                }
            }
            ServerFrame::Ping {} => {
                if let Some(c) = self
                    .conn_ref(role)
                    .filter(|c| c.transport == TransportKind::WebSocket)
                {
                    let conn = c.id;
                    self.actions.push_back(Action::Transmit {
                        conn,
                        frames: vec![ClientFrame::Pong {}.encode()],
                    });
                }
            }
            ServerFrame::Pong {} => {}
            other => self.on_control(now, role, other),
        }
    }

    /// `error`, `drain` and `retry_later`, before or after the hello.
    fn on_control(&mut self, now: Instant, role: Role, frame: ServerFrame) {
        match frame {
            ServerFrame::Error {
                code,
                message,
                id: Some(id),
                terminal,
            } => {
                // OUTBOX-7: the publish is rejected for good; its code (even `forbidden`)
                // concerns that publish only, unless the server marks the error terminal (ERR-3).
                if self.outbox.remove(&id).is_some() {
                    self.events.push_back(Event::Dropped {
                        id,
                        reason: crate::event::DropReason::Rejected { code: code.clone() },
                    });
                    self.flush_outbox();
                }
                if terminal {
                    let code = ErrorCode::parse(&code)
                        .filter(|c| is_terminal_code(*c))
                        .unwrap_or(ErrorCode::ServerError);
                    return self.fail(code, Cause::Terminal { code });
                }
                if let Some(m) = message {
                    self.events.push_back(Event::Error {
                        code: ErrorCode::ServerError,
                        detail: format!("{code}: {m}"),
                    });
                }
            }
            ServerFrame::Error {
                code,
                message,
                id: None,
                terminal,
            } => {
                let parsed = ErrorCode::parse(&code);
                if parsed == Some(ErrorCode::AuthExpired) {
                    return self.auth_expired(now, role);
                }
                let terminal_code = parsed.filter(|c| is_terminal_code(*c));
                if terminal || terminal_code.is_some() {
                    let code = terminal_code.unwrap_or(ErrorCode::ServerError);
                    return self.fail(code, Cause::Terminal { code });
                }
                self.events.push_back(Event::Error {
                    code: ErrorCode::ServerError,
                    detail: format!("{code}: {}", message.unwrap_or_default()),
                });
            }
            ServerFrame::Drain { from_ms, to_ms, .. } => {
                let (lo, hi) = ordered_window(from_ms, to_ms);
                let t = self
                    .rng
                    .duration_between(Duration::from_millis(lo), Duration::from_millis(hi));
                match role {
                    Role::Candidate => self.drop_candidate(now, 1000, "drain"),
                    Role::Primary => {
                        self.close_conns(1000, "drain");
                        self.schedule_plain(now, t, Cause::Drain);
                    }
                }
            }
            ServerFrame::RetryLater { after_ms } => match role {
                Role::Candidate => self.drop_candidate(now, 1000, "retry later"),
                Role::Primary => {
                    self.close_conns(1000, "retry later");
                    self.retry_later(now, Some(Duration::from_millis(after_ms)));
                }
            },
            _ => {}
        }
    }

    fn on_hello(
        &mut self,
        now: Instant,
        role: Role,
        cursor: Option<String>,
        policy: Option<PolicyWire>,
        reset: Vec<String>,
    ) {
        if let Some(wire) = policy {
            self.server_policy = Some(wire.clone());
            let clamped = self.recompute_policy();
            for c in &clamped {
                self.events.push_back(Event::Error {
                    code: ErrorCode::PolicyClamped,
                    detail: format!("{}: {} -> {}", c.field, c.requested, c.applied),
                });
            }
            self.events.push_back(Event::PolicyApplied { clamped });
            self.memo.policy = Some(wire);
        }
        for ch in reset {
            if let Some(order) = self.channels.get_mut(&ch) {
                order.clear();
                self.events.push_back(Event::Reset {
                    channel: ch,
                    reason: ResetReason::Server,
                });
            }
        }
        self.set_cursor(cursor);
        self.reset_streak();
        self.auth_retry_used = false;
        self.force_token = false;
        self.memo.retry_after_unix_ms = None;
        let (transport, switch) = match role {
            Role::Primary => match self.primary.as_mut() {
                Some(c) => {
                    c.phase = Phase::Up;
                    c.poll_sent = now;
                    (c.transport, None)
                }
                None => return,
            },
            Role::Candidate => {
                let Some(mut cand) = self.candidate.take() else {
                    return;
                };
                cand.phase = Phase::Up;
                cand.poll_sent = now;
                let switch = cand.switch.take();
                if let Some(old) = self.primary.replace(cand) {
                    self.actions.push_back(Action::Close {
                        conn: old.id,
                        code: 1000,
                        reason: "switched".into(),
                    });
                    if switch == Some(Switch::Upgrade) {
                        self.events.push_back(Event::Fallback {
                            from: old.transport,
                            to: self.ladder.top(),
                            reason: FallbackReason::Upgrade,
                        });
                    }
                }
                let t = self
                    .primary
                    .as_ref()
                    .map_or(self.ladder.current(), |c| c.transport);
                (t, switch)
            }
        };
        self.ladder.worked(transport);
        self.memo
            .transports
            .insert(self.config.endpoint.clone(), transport);
        self.save_memo();
        let cause = if switch == Some(Switch::Upgrade) {
            Cause::Upgrade
        } else {
            Cause::Hello
        };
        let next = if self.ladder.is_degraded() {
            self.upgrade_at = Some(now + self.ladder.upgrade_interval(self.policy.upgrade_after));
            State::Degraded {
                transport,
                reason: ErrorCode::TransportBlocked,
            }
        } else {
            self.upgrade_at = None;
            State::Connected { transport }
        };
        self.set_state(next, cause);
        // Long-poll: the hello came in a poll answer; the PollBody handler issues the next poll.
        self.sync_subscriptions(now);
        self.flush_outbox();
    }

    fn deliver(&mut self, channel: &str, deliveries: Vec<Delivery>) {
        for d in deliveries {
            self.set_cursor(d.cursor);
            self.events.push_back(Event::Message {
                channel: channel.to_string(),
                seq: d.seq,
                data: d.data,
            });
        }
    }

    /// Keep the newest cursor (RESUME-2); one over 1,024 bytes is ignored (LIMIT-4).
    fn set_cursor(&mut self, cursor: Option<String>) {
        match cursor {
            Some(c) if c.len() > MAX_CURSOR_BYTES => self.events.push_back(Event::Error {
                code: ErrorCode::FrameMalformed,
                detail: format!(
                    "cursor of {} bytes ignored (limit {MAX_CURSOR_BYTES})",
                    c.len()
                ),
            }),
            Some(c) => self.cursor = Some(c),
            None => {}
        }
    }

    // ----- connection ends -----

    fn on_closed(&mut self, now: Instant, role: Role, code: Option<u16>, reason: &str) {
        let code_v = code.unwrap_or(1005);
        if role == Role::Candidate {
            return self.drop_candidate(now, 1000, "candidate closed");
        }
        if let Some(err) = terminal_close(code_v) {
            self.primary = None;
            return self.fail(err, Cause::Terminal { code: err });
        }
        match code_v {
            4001 => {
                self.primary = None;
                self.auth_expired(now, role)
            }
            4009 => {
                self.primary = None;
                let ra = reason.trim().parse::<u64>().ok().map(Duration::from_millis);
                self.retry_later(now, ra)
            }
            _ => {
                let Some(c) = self.primary.take() else { return };
                self.close_candidate();
                if c.phase == Phase::Opening {
                    // FALLBACK-2b: closed before the hello.
                    self.strike(now, c.sse_retry, Cause::TransportClosed { code })
                } else {
                    self.connection_lost(now, c.sse_retry, Cause::TransportClosed { code })
                }
            }
        }
    }

    fn on_failed(&mut self, now: Instant, role: Role, failure: TransportFailure) {
        if role == Role::Candidate {
            return self.drop_candidate(now, 1000, "candidate failed");
        }
        let Some(c) = self.primary.take() else { return };
        self.close_candidate();
        let up = c.phase == Phase::Up;
        match failure {
            TransportFailure::Unreachable(detail) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::TransportError,
                    detail,
                });
                if up {
                    self.connection_lost(now, c.sse_retry, Cause::TransportError)
                } else {
                    self.attempt_failed(now, Cause::TransportError, c.sse_retry)
                }
            }
            TransportFailure::Io(detail) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::TransportError,
                    detail,
                });
                if up {
                    self.connection_lost(now, c.sse_retry, Cause::TransportError)
                } else if c.transport_open {
                    self.strike(now, c.sse_retry, Cause::TransportError)
                } else {
                    self.attempt_failed(now, Cause::TransportError, c.sse_retry)
                }
            }
            TransportFailure::WrongContentType(ct) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::TransportBlocked,
                    detail: format!("content type {ct}"),
                });
                self.blocked(now)
            }
            TransportFailure::HttpStatus {
                status,
                tether_error,
                retry_after,
            } => {
                let server_code = tether_error.as_deref().and_then(ErrorCode::parse);
                if status == 401 || server_code == Some(ErrorCode::AuthExpired) {
                    return self.auth_expired(now, Role::Primary);
                }
                if let Some(code) = server_code.filter(|c| is_terminal_code(*c)) {
                    return self.fail(code, Cause::Terminal { code });
                }
                if status == 204 && c.transport == TransportKind::Sse {
                    return self.fail(
                        ErrorCode::NotFound,
                        Cause::Terminal {
                            code: ErrorCode::NotFound,
                        },
                    );
                }
                if status == 429 || status == 503 {
                    return self.retry_later(now, retry_after);
                }
                if !up && tether_error.as_deref() == Some("upgrade_required") {
                    // FALLBACK-2a: the server saw the upgrade without its `Upgrade` header.
                    self.events.push_back(Event::Error {
                        code: ErrorCode::TransportBlocked,
                        detail: format!("HTTP {status}: upgrade_required"),
                    });
                    return self.blocked(now);
                }
                if tether_error.is_some() || up {
                    // The server itself refused, or a poll of a live connection failed: not a proxy.
                    self.events.push_back(Event::Error {
                        code: ErrorCode::TransportError,
                        detail: format!("HTTP {status}"),
                    });
                    return if up {
                        self.connection_lost(now, c.sse_retry, Cause::TransportError)
                    } else {
                        self.attempt_failed(now, Cause::TransportError, c.sse_retry)
                    };
                }
                // FALLBACK-2a: a proxy answered.
                self.events.push_back(Event::Error {
                    code: ErrorCode::TransportBlocked,
                    detail: format!("HTTP {status} without Tether-Error"),
                });
                self.blocked(now)
            }
        }
    }

    /// A live connection must be given up (frame too large, parser limit, too many malformed frames).
    fn conn_broken(&mut self, now: Instant, role: Role, code: u16, reason: &str, cause: Cause) {
        match role {
            Role::Candidate => self.drop_candidate(now, code, reason),
            Role::Primary => {
                let Some(c) = self.primary.take() else { return };
                self.actions.push_back(Action::Close {
                    conn: c.id,
                    code,
                    reason: reason.into(),
                });
                self.close_candidate();
                if c.phase == Phase::Opening {
                    self.attempt_failed(now, cause, c.sse_retry)
                } else {
                    self.connection_lost(now, c.sse_retry, cause)
                }
            }
        }
    }

    fn check_conn_deadlines(&mut self, now: Instant) {
        if let Some(c) = self.candidate.as_ref() {
            if now >= self.conn_deadline(c) {
                self.drop_candidate(now, 4000, "open timeout");
            }
        }
        let Some((deadline, phase)) = self
            .primary
            .as_ref()
            .map(|c| (self.conn_deadline(c), c.phase))
        else {
            return;
        };
        if now < deadline {
            return;
        }
        let Some(c) = self.primary.take() else { return };
        self.close_candidate();
        match phase {
            Phase::Opening => {
                self.actions.push_back(Action::Close {
                    conn: c.id,
                    code: 4000,
                    reason: "open timeout".into(),
                });
                self.strike(now, c.sse_retry, Cause::SlowOpen)
            }
            Phase::Up => {
                self.actions.push_back(Action::Close {
                    conn: c.id,
                    code: 4000,
                    reason: "heartbeat timeout".into(),
                });
                self.events.push_back(Event::Error {
                    code: ErrorCode::HeartbeatTimeout,
                    detail: format!("nothing received on {}", c.transport),
                });
                self.connection_lost(now, c.sse_retry, Cause::HeartbeatTimeout)
            }
        }
    }

    fn conn_deadline(&self, c: &Conn) -> Instant {
        match c.phase {
            Phase::Opening => c.started + self.policy.open_timeout,
            Phase::Up if c.transport == TransportKind::LongPoll => {
                c.last_rx.max(c.poll_sent) + self.policy.poll_hold + self.policy.heartbeat_grace
            }
            Phase::Up => c.last_rx + self.policy.heartbeat + self.policy.heartbeat_grace,
        }
    }

    fn check_gaps(&mut self, now: Instant) {
        let mut resets = Vec::new();
        for (name, order) in self.channels.iter_mut() {
            if let Some(ds) = order.expire(now) {
                resets.push((name.clone(), ds));
            }
        }
        for (name, ds) in resets {
            self.events.push_back(Event::Reset {
                channel: name.clone(),
                reason: ResetReason::Gap,
            });
            self.deliver(&name, ds);
        }
    }

    // ----- scheduling -----

    /// The connection was up and is gone: reconnect with backoff from n = 0 (BACKOFF-5).
    fn connection_lost(&mut self, now: Instant, sse_retry: Option<Duration>, cause: Cause) {
        self.streak_start.get_or_insert(now);
        self.schedule_backoff(now, cause, sse_retry);
    }

    /// An attempt failed (BACKOFF-1, BACKOFF-6).
    fn attempt_failed(&mut self, now: Instant, cause: Cause, sse_retry: Option<Duration>) {
        if self.count_failure(now) {
            return self.fail(ErrorCode::AttemptsExhausted, Cause::AttemptsExhausted);
        }
        self.schedule_backoff(now, cause, sse_retry);
    }

    /// Count one failed attempt; true when BACKOFF-6 says to stop.
    fn count_failure(&mut self, now: Instant) -> bool {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        let start = *self.streak_start.get_or_insert(now);
        self.policy
            .max_attempts
            .is_some_and(|m| self.failed_attempts >= m)
            || self.policy.max_elapsed.is_some_and(|m| now - start >= m)
    }

    fn schedule_backoff(&mut self, now: Instant, cause: Cause, sse_retry: Option<Duration>) {
        let mut d = backoff::delay(&self.policy, self.retries, &mut self.rng);
        if let Some(r) = sse_retry {
            d = d.max(r);
        }
        self.schedule(now, d, cause);
    }

    /// A retry-after hint (READY-1): wait `RA + U(0, RA/2)`, never less than the backoff draw.
    fn retry_later(&mut self, now: Instant, hint: Option<Duration>) {
        let Some(ra) = hint else {
            return self.attempt_failed(now, Cause::RetryLater, None);
        };
        if self.count_failure(now) {
            return self.fail(ErrorCode::AttemptsExhausted, Cause::AttemptsExhausted);
        }
        let ra = ra.max(self.policy.floor).min(MAX_RETRY_AFTER);
        let hinted = ra + self.rng.duration_between(Duration::ZERO, ra / 2);
        let drawn = backoff::delay(&self.policy, self.retries, &mut self.rng);
        let d = hinted.max(drawn);
        self.memo.retry_after_unix_ms = Some(self.wall(now + d));
        self.save_memo();
        self.schedule(now, d, Cause::RetryLater);
    }

    /// Schedule the next attempt after `d`, counting it as a retry.
    fn schedule(&mut self, now: Instant, d: Duration, cause: Cause) {
        self.retries = self.retries.saturating_add(1);
        self.schedule_plain(now, d, cause);
    }

    /// Schedule without counting (drain, network back).
    fn schedule_plain(&mut self, now: Instant, d: Duration, cause: Cause) {
        let at = now + d;
        self.wait = Wait::Retry {
            at,
            cause: cause.clone(),
        };
        let attempt = self.retries;
        self.events.push_back(Event::ReconnectScheduled {
            attempt,
            delay: d,
            cause: cause.clone(),
        });
        self.set_state(
            State::Reconnecting {
                attempt,
                delay: Some(d),
                cause: cause.clone(),
            },
            cause,
        );
        self.plan_probe(now, at);
    }

    /// READY-4: probe readiness only in long waits, at most once per probe interval.
    /// The first probe of a wait comes `U(0.5, 1.0) * interval` after the wait began; later
    /// ones never sooner than one interval after the previous probe.
    fn plan_probe(&mut self, now: Instant, at: Instant) {
        let interval = self.policy.probe_interval;
        if at <= now || at - now <= interval.saturating_mul(2) {
            self.probe_at = None;
            return;
        }
        let f = 0.5 + 0.5 * self.rng.next_f64();
        let mut when = now + Duration::from_secs_f64(interval.as_secs_f64() * f);
        if let Some(prev) = self.probe_sent {
            when = when.max(prev + interval);
        }
        self.probe_at = Some(when);
    }

    fn reset_streak(&mut self) {
        self.retries = 0;
        self.failed_attempts = 0;
        self.streak_start = None;
    }

    fn strike(&mut self, now: Instant, sse_retry: Option<Duration>, cause: Cause) {
        let from = self.ladder.current();
        match self.ladder.strike() {
            Step::Stay => self.attempt_failed(now, cause, sse_retry),
            step => self.step_ladder(now, from, step),
        }
    }

    fn blocked(&mut self, now: Instant) {
        let from = self.ladder.current();
        let step = self.ladder.blocked_now();
        self.step_ladder(now, from, step);
    }

    fn step_ladder(&mut self, now: Instant, from: TransportKind, step: Step) {
        match step {
            Step::Stay => self.attempt_failed(now, Cause::Blocked, None),
            Step::Down(to) => {
                self.events.push_back(Event::Fallback {
                    from,
                    to,
                    reason: FallbackReason::Blocked,
                });
                self.begin_attempt(now, Cause::Blocked);
            }
            Step::Wrapped(to) => {
                self.events.push_back(Event::Fallback {
                    from,
                    to,
                    reason: FallbackReason::AllBlocked,
                });
                self.attempt_failed(now, Cause::Blocked, None);
            }
        }
    }

    fn auth_expired(&mut self, now: Instant, role: Role) {
        if role == Role::Candidate {
            return self.drop_candidate(now, 1000, "auth expired");
        }
        if let Some(c) = self.primary.take() {
            self.actions.push_back(Action::Close {
                conn: c.id,
                code: 1000,
                reason: "auth expired".into(),
            });
        }
        self.close_candidate();
        self.events.push_back(Event::Error {
            code: ErrorCode::AuthExpired,
            detail: "server refused the token".into(),
        });
        self.force_token = true;
        if !self.auth_retry_used {
            // AUTH-2: exactly one immediate refresh-and-retry.
            self.auth_retry_used = true;
            self.begin_attempt(now, Cause::AuthExpired);
        } else {
            self.attempt_failed(now, Cause::AuthExpired, None);
        }
    }

    fn fail(&mut self, code: ErrorCode, cause: Cause) {
        self.close_conns(1000, "failed");
        self.stop_timers();
        self.set_state(State::Failed { reason: code }, cause);
    }

    // ----- opening -----

    fn begin_attempt(&mut self, now: Instant, cause: Cause) {
        if self.offline {
            self.wait = Wait::Network;
            let attempt = self.retries;
            return self.set_state(
                State::Reconnecting {
                    attempt,
                    delay: None,
                    cause: Cause::NetworkOffline,
                },
                Cause::NetworkOffline,
            );
        }
        let transport = self.ladder.current();
        self.set_state(
            State::Connecting {
                attempt: self.retries,
                transport,
            },
            cause,
        );
        self.events
            .push_back(Event::TransportSelected { transport });
        if self.config.auth {
            let request = self.next_request();
            self.wait = Wait::Token {
                request,
                deadline: now + self.policy.open_timeout,
                transport,
            };
            self.actions.push_back(Action::FetchToken {
                request,
                forced: self.force_token,
            });
        } else {
            self.open_primary(now, transport, None);
        }
    }

    fn open_primary(&mut self, now: Instant, transport: TransportKind, token: Option<Token>) {
        let conn = self.new_conn(now, transport, token, None);
        self.primary = Some(conn);
    }

    fn open_candidate(&mut self, now: Instant, transport: TransportKind, switch: Switch) {
        if self.candidate.is_some() {
            return;
        }
        let token = self.last_token.clone();
        let conn = self.new_conn(now, transport, token, Some(switch));
        self.candidate = Some(conn);
    }

    fn new_conn(
        &mut self,
        now: Instant,
        transport: TransportKind,
        token: Option<Token>,
        switch: Option<Switch>,
    ) -> Conn {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let channels = self.channels();
        self.actions.push_back(Action::Open(OpenRequest {
            conn: id,
            transport,
            cursor: self.cursor.clone(),
            channels: channels.clone(),
            token,
            poll_hold: self.policy.poll_hold,
        }));
        let sse = (transport == TransportKind::Sse).then(|| {
            SseParser::new(SseLimits {
                max_line_bytes: self.config.max_frame_bytes,
                max_event_bytes: self.config.max_frame_bytes,
            })
        });
        Conn {
            id,
            transport,
            phase: Phase::Opening,
            started: now,
            transport_open: false,
            last_rx: now,
            poll_sent: now,
            malformed: 0,
            sse,
            sse_retry: None,
            channels,
            switch,
        }
    }

    /// Bring the live connection's channel set in line with the app's (WS frames, or a switch).
    fn sync_subscriptions(&mut self, now: Instant) {
        let Some(c) = self.primary.as_ref().filter(|c| c.phase == Phase::Up) else {
            return;
        };
        let wanted = self.channels();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !c.channels.contains(w))
            .cloned()
            .collect();
        let (id, transport) = (c.id, c.transport);
        // On WebSocket, `unsubscribe` frames are sent at once; elsewhere a dropped channel
        // also needs a new request (WIRE-11).
        let extra = transport != TransportKind::WebSocket
            && c.channels.iter().any(|ch| !wanted.contains(ch));
        if missing.is_empty() && !extra {
            return;
        }
        if transport == TransportKind::WebSocket {
            let frames = missing
                .iter()
                .map(|ch| {
                    ClientFrame::Subscribe {
                        channel: ch.clone(),
                    }
                    .encode()
                })
                .collect();
            if let Some(c) = self.primary.as_mut() {
                c.channels.extend(missing);
            }
            self.actions
                .push_back(Action::Transmit { conn: id, frames });
        } else if self.candidate.is_none() {
            self.open_candidate(now, transport, Switch::Resubscribe);
        }
    }

    fn flush_outbox(&mut self) {
        let Some(c) = self.primary.as_ref().filter(|c| c.phase == Phase::Up) else {
            return;
        };
        let conn = c.id;
        let records = self.outbox.take_sendable(conn, self.policy.max_in_flight);
        if records.is_empty() {
            return;
        }
        let frames = records
            .into_iter()
            .map(|r| {
                let data = serde_json::from_str(&r.data).unwrap_or(Value::String(r.data));
                ClientFrame::Publish {
                    id: r.id,
                    channel: r.channel,
                    data,
                }
                .encode()
            })
            .collect();
        self.actions.push_back(Action::Transmit { conn, frames });
    }

    // ----- helpers -----

    fn drop_candidate(&mut self, _now: Instant, code: u16, reason: &str) {
        let Some(c) = self.candidate.take() else {
            return;
        };
        self.actions.push_back(Action::Close {
            conn: c.id,
            code,
            reason: reason.into(),
        });
        match c.switch {
            Some(Switch::Upgrade) => {
                self.ladder.upgrade_failed(self.policy.upgrade_after);
                self.upgrade_at =
                    Some(_now + self.ladder.upgrade_interval(self.policy.upgrade_after));
            }
            Some(Switch::Resubscribe) => {
                // WIRE-11: the new channel set could not be opened beside the old
                // connection. Retrying at once could loop as fast as the server refuses;
                // reconnect with the whole set under backoff instead.
                if let Some(p) = self.primary.take() {
                    self.actions.push_back(Action::Close {
                        conn: p.id,
                        code: 1000,
                        reason: "resubscribe".into(),
                    });
                    self.connection_lost(_now, p.sse_retry, Cause::TransportError);
                }
            }
            Some(Switch::NetworkChanged) | None => {}
        }
    }

    fn close_candidate(&mut self) {
        if let Some(c) = self.candidate.take() {
            self.actions.push_back(Action::Close {
                conn: c.id,
                code: 1000,
                reason: "abandoned".into(),
            });
        }
    }

    fn close_conns(&mut self, code: u16, reason: &str) {
        for c in [self.primary.take(), self.candidate.take()]
            .into_iter()
            .flatten()
        {
            self.actions.push_back(Action::Close {
                conn: c.id,
                code,
                reason: reason.into(),
            });
        }
    }

    fn stop_timers(&mut self) {
        self.wait = Wait::None;
        self.upgrade_at = None;
        self.probe_at = None;
        self.probe_outstanding = None;
        self.resend_at = None;
    }

    fn set_state(&mut self, to: State, cause: Cause) {
        if to == self.state {
            return;
        }
        let from = core::mem::replace(&mut self.state, to.clone());
        self.events
            .push_back(Event::StateChanged { from, to, cause });
    }

    fn is_running(&self) -> bool {
        !matches!(
            self.state,
            State::Idle | State::Closed | State::Failed { .. }
        )
    }

    fn recompute_policy(&mut self) -> Vec<crate::policy::Clamp> {
        let mut p = Policy {
            drop_policy: self.config.drop_policy,
            max_frame_bytes: self.config.max_frame_bytes,
            ..Policy::default()
        };
        let clamps = match &self.server_policy {
            Some(w) => p.apply_server(w),
            None => Vec::new(),
        };
        p.apply_app(&self.config.overrides);
        self.policy = p;
        clamps
    }

    fn save_memo(&mut self) {
        if let Err(e) = self.outbox.store_mut().save_memo(&self.memo) {
            self.events.push_back(Event::Error {
                code: ErrorCode::StoreFailed,
                detail: e.to_string(),
            });
        }
    }

    fn check_channel(&self, channel: &str) -> Result<(), CallError> {
        if matches!(self.state, State::Closed) {
            return Err(CallError::Closed);
        }
        if !valid_channel(channel) {
            return Err(CallError::InvalidChannel(channel.to_string()));
        }
        Ok(())
    }

    fn next_request(&mut self) -> u64 {
        let r = self.next_request;
        self.next_request += 1;
        r
    }

    fn wall(&self, now: Instant) -> u64 {
        self.wall0_unix_ms
            .saturating_add((now - self.now0).as_millis() as u64)
    }

    fn instant_of_wall(&self, wall_ms: u64) -> Instant {
        if wall_ms >= self.wall0_unix_ms {
            self.now0 + Duration::from_millis(wall_ms - self.wall0_unix_ms)
        } else {
            self.now0 - Duration::from_millis(self.wall0_unix_ms - wall_ms)
        }
    }

    /// Which slot holds connection `id` (CONN-4: none means stale).
    fn role_of(&self, id: ConnId) -> Option<Role> {
        if self.primary.as_ref().is_some_and(|c| c.id == id) {
            Some(Role::Primary)
        } else if self.candidate.as_ref().is_some_and(|c| c.id == id) {
            Some(Role::Candidate)
        } else {
            None
        }
    }

    fn conn_ref(&self, role: Role) -> Option<&Conn> {
        match role {
            Role::Primary => self.primary.as_ref(),
            Role::Candidate => self.candidate.as_ref(),
        }
    }

    fn conn_mut(&mut self, role: Role) -> Option<&mut Conn> {
        match role {
            Role::Primary => self.primary.as_mut(),
            Role::Candidate => self.candidate.as_mut(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Primary,
    Candidate,
}

/// Terminal error codes (CONN-5, ERR-1).
fn is_terminal_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::ProtocolVersion
            | ErrorCode::BadRequest
    )
}

/// Terminal WebSocket close codes (WIRE-9).
pub fn terminal_close(code: u16) -> Option<ErrorCode> {
    match code {
        4003 => Some(ErrorCode::Forbidden),
        4004 => Some(ErrorCode::NotFound),
        4010 => Some(ErrorCode::ProtocolVersion),
        4400 => Some(ErrorCode::BadRequest),
        _ => None,
    }
}

/// A drain or readiness window, ordered and clamped (DRAIN-1).
fn ordered_window(a: u64, b: u64) -> (u64, u64) {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (lo.min(MAX_DRAIN_MS), hi.min(MAX_DRAIN_MS))
}
