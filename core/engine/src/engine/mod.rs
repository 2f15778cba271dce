//! The engine: one client's connection state machine, wiring backoff, ladder, ordering, outbox and heartbeat together.

mod ends;
mod frames;
mod inputs;
mod open;
mod schedule;

use crate::action::Action;
use crate::backoff;
use crate::error::{CallError, ErrorCode, FrameError};
use crate::event::{Event, FallbackReason, ResetReason};
use crate::frame::{valid_channel, ClientFrame, ServerFrame, MAX_CURSOR_BYTES, PROTOCOL_VERSION};
use crate::keys::{Keys, NextKey};
use crate::ladder::{Ladder, Step};
use crate::order::{ChannelOrder, Delivery, Outcome};
use crate::outbox::Outbox;
use crate::policy::{DropPolicy, Policy, PolicyWire};
use crate::rng::Rng;
use crate::sse::{SseEvent, SseItem, SseLimits, SseParser};
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

/// The slowest upload a `POST /send` is allowed before it counts as dead: its deadline is
/// `open_timeout` plus one second per this many bytes of body (OUTBOX-9).
pub const SEND_ALLOWANCE_BYTES_PER_SEC: usize = 16 * 1024;

/// Bytes arriving before the hello extend an open to `open_timeout` after the last of
/// them, but never beyond this many `open_timeout`s from the attempt's start (CONN-6).
pub const MAX_OPEN_STRETCH: u32 = 3;

/// The sizes of the engine's bounded queues (LIMIT-5), from [`Engine::queues`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Queues {
    /// Publishes in the outbox (bounded by `outbox_max_count`, OUTBOX-6).
    pub outbox_count: usize,
    /// Bytes of those publishes (bounded by `outbox_max_bytes`, OUTBOX-6).
    pub outbox_bytes: usize,
    /// Most messages held on one channel while a gap is open (at most 1,024, ORDER-3).
    pub held_max: usize,
    /// Messages held over all channels.
    pub held_total: usize,
    /// Largest SSE pending-line buffer of a live connection, in bytes (LIMIT-3).
    pub sse_line_capacity: usize,
    /// Largest SSE event-data buffer of a live connection, in bytes (LIMIT-3).
    pub sse_data_capacity: usize,
}

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
    /// 64 bits of OS entropy from the host for the client id of publish keys (OUTBOX-1);
    /// never derived from `seed`. Used only when the memo holds no client id yet. `None`
    /// falls back to the wall clock, a process-wide count and the seed (unique within a
    /// process, not guaranteed between devices): hosts should always supply it.
    pub id_entropy: Option<u64>,
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
            id_entropy: None,
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
    /// When bytes of a message or body last arrived before the hello (CONN-6).
    open_progress: Option<Instant>,
    poll_sent: Instant,
    malformed: u32,
    sse: Option<SseParser>,
    sse_retry: Option<Duration>,
    channels: Vec<String>,
    switch: Option<Switch>,
    /// `POST /send` requests not answered yet, oldest first (SSE and long-poll, OUTBOX-9).
    sends: VecDeque<PendingSend>,
    /// When the last `POST /send` answer (reply or failure) arrived.
    send_answered: Instant,
}

/// One `POST /send` waiting for its answer (OUTBOX-9).
#[derive(Clone, Copy, Debug)]
struct PendingSend {
    issued: Instant,
    bytes: usize,
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
    /// When the last readiness probe was sent, or answered once it was (READY-4: at most
    /// one per interval, measured from the answer so that the server sees the interval
    /// whatever the probe's latency).
    probe_last: Option<Instant>,
    offline: bool,
    cursor: Option<String>,
    channels: BTreeMap<String, ChannelOrder>,
    resend_at: Option<Instant>,
    keys: Keys,
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
        let rng = Rng::new(config.seed);
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
        let keys = Keys::restore(&memo, config.id_entropy, config.seed, wall_unix_ms);
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
            probe_last: None,
            offline: false,
            cursor: None,
            channels: BTreeMap::new(),
            resend_at: None,
            keys,
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

    /// How full the engine's bounded queues are (LIMIT-5): for monitoring, and for tests
    /// that check the bounds hold under hostile input.
    pub fn queues(&self) -> Queues {
        let parsers = || {
            [self.primary.as_ref(), self.candidate.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|c| c.sse.as_ref())
        };
        Queues {
            outbox_count: self.outbox.len(),
            outbox_bytes: self.outbox.bytes(),
            held_max: self.channels.values().map(|c| c.held()).max().unwrap_or(0),
            held_total: self.channels.values().map(|c| c.held()).sum(),
            sse_line_capacity: parsers().map(|p| p.line_capacity()).max().unwrap_or(0),
            sse_data_capacity: parsers().map(|p| p.data_capacity()).max().unwrap_or(0),
        }
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
