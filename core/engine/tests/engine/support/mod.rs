//! A virtual-clock harness for engine scenario tests.
//!
//! [`Sim`] owns an [`Engine`] and a virtual [`Instant`]. Time moves only by
//! jumping to the engine's own `poll_timeout()` (never by sleeping); after
//! every input all actions and events are drained into logs. Helpers play a
//! scripted server: answer `Open` with `Opened` + hello, send frames on the
//! right transport encoding (WebSocket text, SSE bytes, long-poll bodies),
//! close or fail connections, answer token fetches and readiness probes.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tether_engine::{
    Action, Cause, Config, ConnId, Engine, ErrorCode, Event, Memo, MemoryStore, Network,
    OpenRequest, OutboxRecord, ReadyAnswer, State, Token, TokenError, TransportEvent,
    TransportFailure, TransportKind,
};

pub const ENDPOINT: &str = "https://rt.example.com/tether";
pub const T0: Instant = Instant::from_millis(10_000_000);
pub const WALL0: u64 = 1_700_000_000_000;

pub use tether_engine::Instant;
pub use TransportKind::{LongPoll, Sse, WebSocket};

/// A store whose state outlives the engine that owns it (cold-start tests); a store through
/// `tether_engine`'s blanket `Store` impl for `Arc<Mutex<S>>`.
pub type SharedStore = Arc<Mutex<MemoryStore>>;

/// Run `f` on the memory store behind `store`.
pub fn with_memory<R>(store: &SharedStore, f: impl FnOnce(&mut MemoryStore) -> R) -> R {
    let mut g = store.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut g)
}

/// The memo saved in `store`, if any.
pub fn saved_memo(store: &SharedStore) -> Option<Memo> {
    with_memory(store, |s| s.memo.clone())
}

/// The outbox records persisted in `store`.
pub fn saved_records(store: &SharedStore) -> Vec<OutboxRecord> {
    with_memory(store, |s| s.records.clone())
}

/// The default test configuration.
pub fn config() -> Config {
    let mut c = Config::new(ENDPOINT);
    c.seed = 42;
    c
}

/// The engine under test, a virtual clock, and everything it said.
pub struct Sim {
    pub engine: Engine,
    pub now: Instant,
    pub store: SharedStore,
    /// Every action since the start, in order.
    pub actions: Vec<Action>,
    /// Every event since the start, in order.
    pub events: Vec<Event>,
    /// Index into `actions`/`events` of what `take_*` already returned.
    seen_actions: usize,
    seen_events: usize,
    transports: Vec<(ConnId, TransportKind)>,
}

impl Sim {
    pub fn new(config: Config) -> Sim {
        Sim::with_store(config, SharedStore::default(), T0)
    }

    pub fn default_sim() -> Sim {
        Sim::new(config())
    }

    /// An engine over `store` (possibly already holding records and a memo), starting at `now`.
    pub fn with_store(config: Config, store: SharedStore, now: Instant) -> Sim {
        let wall = WALL0 + (now.as_millis() - T0.as_millis().min(now.as_millis()));
        let engine = Engine::new(config, Box::new(store.clone()), now, wall);
        let mut sim = Sim {
            engine,
            now,
            store,
            actions: Vec::new(),
            events: Vec::new(),
            seen_actions: 0,
            seen_events: 0,
            transports: Vec::new(),
        };
        sim.pump();
        sim
    }

    /// A fresh engine over the same store (a cold start), at the current virtual time.
    pub fn restart(&self, config: Config) -> Sim {
        Sim::with_store(config, self.store.clone(), self.now)
    }

    /// Drain the engine's outputs into the logs.
    pub fn pump(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            if let Action::Open(req) = &a {
                self.transports.push((req.conn, req.transport));
            }
            self.actions.push(a);
        }
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
    }

    // ----- time -----

    /// Jump to the engine's next deadline and handle it. Returns false when there is none.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.engine.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(t);
        self.engine.handle_timeout(self.now);
        self.pump();
        true
    }

    /// Handle every deadline up to `until`, then leave the clock at `until`.
    pub fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            match self.engine.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    /// `run_until(now + d)`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Step through deadlines until `pred` holds (at most `max` steps).
    pub fn step_until(&mut self, max: usize, mut pred: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..max {
            if pred(self) {
                return true;
            }
            if !self.step() {
                return pred(self);
            }
        }
        pred(self)
    }

    /// Step until a new `Open` action appears; returns it.
    pub fn step_to_open(&mut self) -> OpenRequest {
        let before = self.opens().len();
        assert!(
            self.step_until(10_000, |s| s.opens().len() > before),
            "no new Open; state {:?}",
            self.engine.state()
        );
        self.opens()[before].clone()
    }

    pub fn elapsed(&self) -> Duration {
        self.now - T0
    }

    // ----- application inputs -----

    pub fn connect(&mut self) {
        self.engine.connect(self.now);
        self.pump();
    }

    pub fn close(&mut self) {
        self.engine.close(self.now);
        self.pump();
    }

    pub fn subscribe(&mut self, ch: &str) {
        self.engine.subscribe(ch, self.now).expect("subscribe");
        self.pump();
    }

    pub fn publish(&mut self, ch: &str, data: Value) -> String {
        let id = self
            .engine
            .publish(ch, data, None, self.now)
            .expect("publish");
        self.pump();
        id
    }

    pub fn network(&mut self, n: Network) {
        self.engine.handle_network(self.now, n);
        self.pump();
    }

    pub fn token(&mut self, request: u64, t: Result<Token, TokenError>) {
        self.engine.handle_token(self.now, request, t);
        self.pump();
    }

    pub fn ready(&mut self, probe: u64, answer: ReadyAnswer) {
        self.engine.handle_ready(self.now, probe, answer);
        self.pump();
    }

    // ----- the scripted server -----

    pub fn transport_of(&self, conn: ConnId) -> TransportKind {
        self.transports
            .iter()
            .find(|(c, _)| *c == conn)
            .map(|(_, t)| *t)
            .unwrap_or(WebSocket)
    }

    pub fn ev(&mut self, conn: ConnId, e: TransportEvent) {
        self.engine.handle_transport_event(self.now, conn, e);
        self.pump();
    }

    pub fn opened(&mut self, conn: ConnId) {
        self.ev(conn, TransportEvent::Opened);
    }

    /// Send frames on `conn`, encoded for its transport (WIRE-1).
    pub fn frames(&mut self, conn: ConnId, frames: &[Value]) {
        match self.transport_of(conn) {
            WebSocket => {
                for f in frames {
                    self.ev(conn, TransportEvent::Text(f.to_string()));
                }
            }
            Sse => {
                let mut bytes = String::new();
                for f in frames {
                    let cursor = f.get("cursor").and_then(Value::as_str);
                    if let Some(c) = cursor {
                        bytes.push_str(&format!("id: {c}\n"));
                    }
                    bytes.push_str(&format!("data: {f}\n\n"));
                }
                self.ev(conn, TransportEvent::SseBytes(bytes.into_bytes()));
            }
            LongPoll => {
                let body = Value::Array(frames.to_vec()).to_string();
                self.ev(conn, TransportEvent::PollBody(body.into_bytes()));
            }
        }
    }

    pub fn frame(&mut self, conn: ConnId, f: Value) {
        self.frames(conn, &[f]);
    }

    /// `Opened` then a hello with cursor `c0` and `subscribed` for each requested channel at seq 0.
    pub fn accept(&mut self, conn: ConnId) {
        self.accept_with(
            conn,
            json!({"type":"hello","v":1,"server_id":"s1","cursor":"c0"}),
        );
    }

    /// `Opened` then the given hello and `subscribed` at seq 0 for each requested channel.
    pub fn accept_with(&mut self, conn: ConnId, hello: Value) {
        let channels = self
            .opens()
            .into_iter()
            .find(|o| o.conn == conn)
            .map(|o| o.channels)
            .unwrap_or_default();
        let cursor = hello.get("cursor").cloned().unwrap_or(json!("c0"));
        let mut fs = vec![hello];
        for ch in channels {
            fs.push(json!({"type":"subscribed","channel":ch,"seq":0,"cursor":cursor}));
        }
        self.opened(conn);
        self.frames(conn, &fs);
    }

    pub fn hello_policy(policy: Value) -> Value {
        json!({"type":"hello","v":1,"server_id":"s1","cursor":"c0","policy":policy})
    }

    pub fn msg(&mut self, conn: ConnId, ch: &str, seq: u64) {
        self.frame(conn, msg(ch, seq));
    }

    pub fn closed(&mut self, conn: ConnId, code: Option<u16>, reason: &str) {
        self.ev(
            conn,
            TransportEvent::Closed {
                code,
                reason: reason.into(),
            },
        );
    }

    pub fn failed(&mut self, conn: ConnId, f: TransportFailure) {
        self.ev(conn, TransportEvent::Failed(f));
    }

    pub fn unreachable(&mut self, conn: ConnId) {
        self.failed(
            conn,
            TransportFailure::Unreachable("connection refused".into()),
        );
    }

    /// Something the server sends to keep `conn` alive: a ping (WebSocket), an SSE
    /// comment, or an empty long-poll answer.
    pub fn keepalive(&mut self, conn: ConnId) {
        match self.transport_of(conn) {
            WebSocket => self.frame(conn, json!({"type":"ping"})),
            Sse => self.ev(conn, TransportEvent::SseBytes(b": ping\n".to_vec())),
            LongPoll => self.ev(conn, TransportEvent::PollBody(b"[]".to_vec())),
        }
    }

    /// Let `d` pass while the server keeps `conns` alive every 5 s.
    pub fn run_alive(&mut self, conns: &[ConnId], d: Duration) {
        let until = self.now + d;
        while self.now < until {
            let next = (self.now + Duration::from_secs(5)).min(until);
            self.run_until(next);
            for c in conns {
                self.keepalive(*c);
            }
        }
    }

    /// Connect and bring the first connection up; returns its id.
    pub fn connect_up(&mut self) -> ConnId {
        self.connect();
        let conn = self.last_open().conn;
        self.accept(conn);
        assert!(self.engine.state().is_up(), "{:?}", self.engine.state());
        conn
    }

    // ----- queries -----

    pub fn state(&self) -> State {
        self.engine.state().clone()
    }

    pub fn opens(&self) -> Vec<OpenRequest> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Open(o) => Some(o.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn last_open(&self) -> OpenRequest {
        self.opens().last().cloned().expect("an Open action")
    }

    pub fn closes(&self) -> Vec<(ConnId, u16, String)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Close { conn, code, reason } => Some((*conn, *code, reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// Frames transmitted on `conn`, parsed.
    pub fn sent(&self, conn: ConnId) -> Vec<Value> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { conn: c, frames } if *c == conn => Some(frames.clone()),
                _ => None,
            })
            .flatten()
            .map(|f| serde_json::from_str(&f).expect("client frames are JSON"))
            .collect()
    }

    /// Ids of publishes transmitted on `conn`, in order.
    pub fn published_ids(&self, conn: ConnId) -> Vec<String> {
        self.sent(conn)
            .into_iter()
            .filter(|f| f["type"] == "publish")
            .map(|f| f["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn fetches(&self) -> Vec<(u64, bool)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::FetchToken { request, forced } => Some((*request, *forced)),
                _ => None,
            })
            .collect()
    }

    pub fn probes(&self) -> Vec<u64> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::ProbeReady { probe } => Some(*probe),
                _ => None,
            })
            .collect()
    }

    pub fn polls(&self, conn: ConnId) -> Vec<Option<String>> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Poll {
                    conn: c, cursor, ..
                } if *c == conn => Some(cursor.clone()),
                _ => None,
            })
            .collect()
    }

    /// State transitions `(from, to, cause)`.
    pub fn transitions(&self) -> Vec<(State, State, Cause)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged { from, to, cause } => {
                    Some((from.clone(), to.clone(), cause.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Scheduled reconnects `(attempt, delay, cause)`.
    pub fn scheduled(&self) -> Vec<(u32, Duration, Cause)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ReconnectScheduled {
                    attempt,
                    delay,
                    cause,
                } => Some((*attempt, *delay, cause.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn last_delay(&self) -> Duration {
        self.scheduled().last().expect("a scheduled reconnect").1
    }

    /// Messages delivered on `ch`, as seq numbers.
    pub fn delivered(&self, ch: &str) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message { channel, seq, .. } if channel == ch => Some(*seq),
                _ => None,
            })
            .collect()
    }

    pub fn errors(&self) -> Vec<ErrorCode> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    pub fn count_errors(&self, code: ErrorCode) -> usize {
        self.errors().into_iter().filter(|c| *c == code).count()
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        let out = self.events[self.seen_events..].to_vec();
        self.seen_events = self.events.len();
        out
    }

    /// Actions since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        let out = self.actions[self.seen_actions..].to_vec();
        self.seen_actions = self.actions.len();
        out
    }

    /// Mark everything so far as seen.
    pub fn mark(&mut self) {
        self.seen_actions = self.actions.len();
        self.seen_events = self.events.len();
    }

    /// The reported state after the last transition equals the engine's state (STATE-3).
    pub fn assert_state_consistent(&self) {
        if let Some((_, to, _)) = self.transitions().last() {
            assert_eq!(to, self.engine.state());
        }
    }
}

// ----- frames -----

pub fn msg(ch: &str, seq: u64) -> Value {
    json!({"type":"msg","channel":ch,"seq":seq,"cursor":format!("{ch}:{seq}"),"data":{"n":seq}})
}

pub fn subscribed(ch: &str, seq: u64) -> Value {
    json!({"type":"subscribed","channel":ch,"seq":seq,"cursor":format!("{ch}:{seq}")})
}

pub fn hello(cursor: &str) -> Value {
    json!({"type":"hello","v":1,"server_id":"s1","cursor":cursor})
}

pub fn http(
    status: u16,
    tether_error: Option<&str>,
    retry_after: Option<Duration>,
) -> TransportFailure {
    TransportFailure::HttpStatus {
        status,
        tether_error: tether_error.map(str::to_string),
        retry_after,
    }
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

/// A config with fast, app-set timings (BACKOFF-9) for long scenarios.
pub fn fast_config() -> Config {
    let mut c = config();
    c.overrides.floor_ms = Some(10.0);
    c.overrides.base_ms = Some(100.0);
    c.overrides.cap_ms = Some(1_000.0);
    c
}

pub fn is_reconnecting(s: &State) -> bool {
    matches!(s, State::Reconnecting { .. })
}
