//! Plays a [`Script`] against the engine, as a host and a server would, and checks the
//! contract after every step: no panic; STATE-2/3 (transitions chain, the state is the last
//! reported `to`); every delay within its SPEC bounds (BACKOFF-1/3/5, READY-1/4, DRAIN-1/2,
//! NET-2); `poll_timeout` never in the past after `handle_timeout`; LIMIT-5 (held messages,
//! outbox, SSE buffers); ORDER-1/2 (per channel, delivered at most once and in order, only
//! while subscribed); OUTBOX-6 (every publish acknowledged once or dropped once); CONN-3/4/5
//! and NET-1 (no action while closed, none for unknown connections, no attempt while
//! failed or offline).

use crate::script::{
    Ev, Failure, FrameSpec, Op, PolicySpec, Script, Setup, CHANNELS, CLOSE_CODES, ERROR_CODES,
    POLICY_FIELDS, STATUSES, TETHER_ERRORS,
};
use core::time::Duration;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tether_engine::frame::ServerFrame;
use tether_engine::sse::{SseItem, SseLimits, SseParser};
use tether_engine::{
    Action, Cause, Config, ConnId, DropPolicy, Engine, Event, Instant, MemoryStore, Network,
    Policy, PolicyWire, ReadyAnswer, State, Token, TokenError, TransportEvent, TransportFailure,
    TransportKind,
};

/// The virtual clock's start, and the wall clock (ms since the epoch) at that instant.
pub const T0: Instant = Instant::from_millis(1_000_000);
pub const WALL0: u64 = 1_700_000_000_000;

/// DRAIN-1: windows are clamped to [0, 600 s].
const MAX_DRAIN_MS: u64 = 600_000;
/// READY-1: hints are clamped to [floor, 600 s].
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// ORDER-3: at most 1,024 held per channel.
const MAX_HELD: usize = 1024;
/// Draws are made at microsecond resolution from `f64`s.
const TOL: Duration = Duration::from_micros(2);

/// The harness's view of one connection the engine opened.
struct Conn {
    id: ConnId,
    kind: TransportKind,
    /// A mirror of the engine's SSE parser, fed the same bytes.
    sse: Option<SseParser>,
    /// The largest `retry:` the engine may have applied for it (SSE-6), clamped.
    sse_retry: Option<Duration>,
}

/// What the host and the server gave the engine during one step.
#[derive(Default)]
struct Given {
    /// Retry-after hints (READY-1): `retry_later` frames, close 4009, HTTP 429/503.
    hints: Vec<Duration>,
    /// Drain windows (DRAIN-1), ordered and clamped.
    drains: Vec<(u64, u64)>,
    /// Readiness windows answered (READY-4), ordered and clamped.
    ready: Vec<(u64, u64)>,
    /// `retry:` values (ms) seen on SSE connections, to clamp once the step is done.
    sse_retries: Vec<(ConnId, u64)>,
    /// Connections that ended in this step (the one an event was for, those closed).
    ended: BTreeSet<ConnId>,
    /// `handle_timeout` was called.
    timed: bool,
    /// The retry-after deadline remembered in the memo, for a `connect` (READY-2).
    memo_deadline: Option<Instant>,
    /// A new publish was queued (OUTBOX-6 applies to it at once; the outbox may be over a
    /// limit a server lowered since, until then: limits apply when a publish is added).
    published: bool,
    /// An event went to a connection the engine never opened (CONN-4).
    unknown_conn: bool,
}

/// One engine under test, its virtual clock, and the state the checks need.
pub struct Run {
    config: Config,
    store: Arc<Mutex<MemoryStore>>,
    engine: Engine,
    now: Instant,
    conns: Vec<Conn>,
    fetches: Vec<u64>,
    probes: Vec<u64>,
    /// Ids the app published, newest last.
    ids: Vec<String>,
    /// Ids queued and not yet acknowledged or dropped.
    outstanding: BTreeSet<String>,
    subscribed: BTreeSet<String>,
    /// Last delivered `seq` per channel, since its last reset.
    delivered: BTreeMap<String, u64>,
    last_to: State,
    offline: bool,
    scheduled_at: Option<Instant>,
    /// When the last probe went out, and the shortest probe interval in effect since.
    last_probe: Option<(Instant, Duration)>,
    /// The largest outbox limits ever in effect (LIMIT-5 bounds the queue by them).
    outbox_count_bound: usize,
    outbox_bytes_bound: usize,
    step: usize,
}

/// `TETHER_FUZZ_TRACE=1` prints every step (to replay one input: run the fuzz binary on it).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("TETHER_FUZZ_TRACE").is_some())
}

fn wall(now: Instant) -> u64 {
    WALL0 + (now - T0).as_millis() as u64
}

fn instant_of_wall(ms: u64) -> Instant {
    if ms >= WALL0 {
        T0 + Duration::from_millis(ms - WALL0)
    } else {
        T0 - Duration::from_millis(WALL0 - ms)
    }
}

/// The engine configuration a script's setup asks for.
pub fn config(setup: &Setup) -> Config {
    let mut c = Config::new("https://fuzz.example/tether");
    c.seed = setup.seed;
    c.auth = setup.flags & 1 != 0;
    let mask = (setup.flags >> 1) & 7;
    c.transports = TransportKind::LADDER
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask == 0 || mask & (1 << i) != 0)
        .map(|(_, t)| t)
        .collect();
    c.drop_policy = if setup.flags & 0x10 != 0 {
        DropPolicy::RejectNew
    } else {
        DropPolicy::DropOldest
    };
    c.max_frame_bytes = [1 << 20, 256, 1024, 4096][usize::from(setup.flags >> 6)];
    if let Some(a) = &setup.app {
        let nz = |v: u16| (v != 0).then_some(f64::from(v));
        c.overrides = PolicyWire {
            floor_ms: nz(a.floor_ms),
            base_ms: nz(a.base_ms),
            cap_ms: nz(a.cap_ms),
            multiplier: (a.multiplier != 0).then_some(f64::from(a.multiplier) / 10.0),
            heartbeat_ms: nz(a.heartbeat_ms),
            open_timeout_ms: nz(a.open_timeout_ms),
            probe_interval_ms: nz(a.probe_interval_ms),
            upgrade_after_ms: nz(a.upgrade_after_ms),
            outbox_max_count: (a.outbox_max_count != 0).then_some(f64::from(a.outbox_max_count)),
            outbox_max_bytes: nz(a.outbox_max_bytes),
            ..PolicyWire::default()
        };
    }
    c
}

fn seq_of(s: u16) -> u64 {
    if s >= 0xFFF0 {
        u64::MAX - u64::from(0xFFFF - s)
    } else {
        u64::from(s)
    }
}

fn channel(c: u8) -> &'static str {
    CHANNELS[usize::from(c) % CHANNELS.len()]
}

fn ordered(a: u64, b: u64) -> (u64, u64) {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (lo.min(MAX_DRAIN_MS), hi.min(MAX_DRAIN_MS))
}

fn policy_json(p: &PolicySpec) -> Value {
    let mut obj = Map::new();
    let mut values = p.values.iter().copied();
    for (i, field) in POLICY_FIELDS.iter().enumerate() {
        if p.mask & (1 << i) == 0 {
            continue;
        }
        let v = values.next().unwrap_or(0);
        let value = if v == u32::MAX {
            json!("x")
        } else if *field == "multiplier" {
            json!(f64::from(v) / 100.0)
        } else {
            json!(f64::from(v))
        };
        obj.insert((*field).to_owned(), value);
    }
    Value::Object(obj)
}

/// `max(floor, min(cap, base * multiplier^n))`: BACKOFF-1's ceiling, computed here.
fn ceiling(p: &Policy, n: u32) -> Duration {
    let grown = p.base.as_secs_f64() * p.multiplier.powf(f64::from(n));
    let c = if grown.is_finite() && grown < p.cap.as_secs_f64() {
        Duration::from_secs_f64(grown)
    } else {
        p.cap
    };
    c.max(p.floor)
}

impl Run {
    pub fn new(setup: &Setup) -> Run {
        let config = config(setup);
        let store = Arc::new(Mutex::new(MemoryStore::default()));
        let engine = Engine::new(config.clone(), Box::new(store.clone()), T0, wall(T0));
        let p = engine.policy().clone();
        let mut run = Run {
            config,
            store,
            engine,
            now: T0,
            conns: Vec::new(),
            fetches: Vec::new(),
            probes: Vec::new(),
            ids: Vec::new(),
            outstanding: BTreeSet::new(),
            subscribed: BTreeSet::new(),
            delivered: BTreeMap::new(),
            last_to: State::Idle,
            offline: false,
            scheduled_at: None,
            last_probe: None,
            outbox_count_bound: p.outbox_max_count.max(1),
            outbox_bytes_bound: p.outbox_max_bytes,
            step: 0,
        };
        run.settle(&Op::Restart, State::Idle, p, false, Given::default());
        run
    }

    /// Run a whole script.
    pub fn script(script: &Script) {
        let mut run = Run::new(&script.setup);
        for op in &script.ops {
            run.apply(op);
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "step {}: {what}\n  now {:?}, state {:?}, policy {:?}",
            self.step,
            self.now,
            self.engine.state(),
            self.engine.policy()
        );
    }

    // ----- the server's frames -----

    fn pick_id(&self, pick: u8) -> String {
        if self.ids.is_empty() || pick == 255 {
            return "unknown-id".into();
        }
        let n = self.ids.len().min(8);
        self.ids[self.ids.len() - 1 - usize::from(pick) % n].clone()
    }

    fn frame_json(&self, f: &FrameSpec) -> (String, Option<String>) {
        let mut cursor_of = None;
        let v = match f {
            FrameSpec::Hello {
                v,
                cursor,
                policy,
                reset,
            } => {
                let mut o = json!({"type": "hello", "v": if v % 8 == 7 { 2 } else { 1 }, "server_id": "fz"});
                if *cursor != 0 {
                    o["cursor"] = json!(format!("h{cursor}"));
                }
                if let Some(p) = policy {
                    o["policy"] = policy_json(p);
                }
                let resets: Vec<&str> = (0..CHANNELS.len())
                    .filter(|i| reset & (1 << i) != 0)
                    .map(|i| CHANNELS[i])
                    .collect();
                if !resets.is_empty() {
                    o["reset"] = json!(resets);
                }
                o
            }
            FrameSpec::Msg {
                channel: c,
                seq,
                cursor,
            } => {
                let seq = seq_of(*seq);
                let mut o = json!({"type": "msg", "channel": channel(*c), "seq": seq, "data": seq});
                match cursor {
                    0 => {}
                    255 => o["cursor"] = json!("L".repeat(1100)),
                    n => {
                        let c = format!("m{seq}-{n}");
                        cursor_of = Some(c.clone());
                        o["cursor"] = json!(c);
                    }
                }
                o
            }
            FrameSpec::Subscribed { channel: c, seq } => {
                let seq = seq_of(*seq);
                json!({"type": "subscribed", "channel": channel(*c), "seq": seq, "cursor": format!("s{seq}")})
            }
            FrameSpec::Reset { channel: c } => json!({"type": "reset", "channel": channel(*c)}),
            FrameSpec::Ack { pick } => json!({"type": "ack", "id": self.pick_id(*pick), "seq": 1}),
            FrameSpec::Error { code, id, flags } => {
                let mut o = json!({
                    "type": "error",
                    "code": ERROR_CODES[usize::from(*code) % ERROR_CODES.len()],
                    "terminal": flags & 1 != 0,
                });
                if *id != 0 {
                    o["id"] = json!(self.pick_id(*id));
                }
                if flags & 2 != 0 {
                    o["message"] = json!("m");
                }
                o
            }
            FrameSpec::Drain { from_ms, to_ms } => {
                json!({"type": "drain", "from_ms": from_ms, "to_ms": to_ms})
            }
            FrameSpec::RetryLater { after_ms } => {
                json!({"type": "retry_later", "after_ms": after_ms})
            }
            FrameSpec::Ping => json!({"type": "ping"}),
            FrameSpec::Pong => json!({"type": "pong"}),
            FrameSpec::Unknown => json!({"type": "future_thing", "x": 1}),
            FrameSpec::Big { n } => {
                json!({"type": "msg", "channel": "a", "seq": 1, "data": "x".repeat(usize::from(*n) * 64)})
            }
        };
        (v.to_string(), cursor_of)
    }

    fn sse_event(&self, f: &FrameSpec) -> String {
        let (json, cursor) = self.frame_json(f);
        match cursor {
            Some(c) => format!("id: {c}\ndata: {json}\n\n"),
            None => format!("data: {json}\n\n"),
        }
    }

    fn batch(&self, fs: &[FrameSpec]) -> Vec<u8> {
        let items: Vec<String> = fs.iter().map(|f| self.frame_json(f).0).collect();
        format!("[{}]", items.join(",")).into_bytes()
    }

    fn transport_events(&self, ev: &Ev, kind: TransportKind) -> Vec<TransportEvent> {
        let framed = |fs: &[FrameSpec]| -> Vec<TransportEvent> {
            match kind {
                TransportKind::WebSocket => fs
                    .iter()
                    .map(|f| TransportEvent::Text(self.frame_json(f).0))
                    .collect(),
                TransportKind::Sse => vec![TransportEvent::SseBytes(
                    fs.iter()
                        .map(|f| self.sse_event(f))
                        .collect::<String>()
                        .into_bytes(),
                )],
                TransportKind::LongPoll => vec![TransportEvent::PollBody(self.batch(fs))],
            }
        };
        match ev {
            Ev::Opened => vec![TransportEvent::Opened],
            Ev::Frame(f) => framed(std::slice::from_ref(f)),
            Ev::Frames(fs) => framed(fs),
            Ev::Text(b) => vec![TransportEvent::Text(
                String::from_utf8_lossy(b).into_owned(),
            )],
            Ev::Binary(b) => vec![TransportEvent::Binary(b.clone())],
            Ev::SseBytes(b) => vec![TransportEvent::SseBytes(b.clone())],
            Ev::PollBody(b) => vec![TransportEvent::PollBody(b.clone())],
            Ev::SendReply(fs) => vec![TransportEvent::SendReply(self.batch(fs))],
            Ev::SendFailed => vec![TransportEvent::SendFailed(TransportFailure::Io(
                "fuzz".into(),
            ))],
            Ev::Closed { code, raw, reason } => {
                let code = CLOSE_CODES
                    .get(usize::from(*code))
                    .copied()
                    .unwrap_or(Some(*raw));
                vec![TransportEvent::Closed {
                    code,
                    reason: String::from_utf8_lossy(reason).into_owned(),
                }]
            }
            Ev::Failed(f) => vec![TransportEvent::Failed(match f {
                Failure::Unreachable => TransportFailure::Unreachable("refused".into()),
                Failure::Http {
                    status,
                    tether_error,
                    retry_after_ms,
                } => TransportFailure::HttpStatus {
                    status: STATUSES[usize::from(*status) % STATUSES.len()],
                    tether_error: TETHER_ERRORS[usize::from(*tether_error) % TETHER_ERRORS.len()]
                        .map(str::to_owned),
                    retry_after: (*retry_after_ms != 0)
                        .then(|| Duration::from_millis(u64::from(*retry_after_ms))),
                },
                Failure::WrongContentType => TransportFailure::WrongContentType("text/html".into()),
                Failure::Io => TransportFailure::Io("reset".into()),
                Failure::FrameTooLarge => TransportFailure::FrameTooLarge("big".into()),
            })],
        }
    }

    /// What the engine could learn from `ev` on `conn` (hints, windows, `retry:`).
    fn note(&mut self, conn: ConnId, ev: &TransportEvent, given: &mut Given) {
        let max = self.config.max_frame_bytes;
        let mut frames: Vec<ServerFrame> = Vec::new();
        match ev {
            TransportEvent::Text(t) => frames.extend(ServerFrame::decode(t, max).ok()),
            TransportEvent::Binary(b) => frames.extend(ServerFrame::decode_bytes(b, max).ok()),
            TransportEvent::SseBytes(b) => {
                if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
                    if let Some(p) = c.sse.as_mut() {
                        let mut items = Vec::new();
                        let _ = p.feed(b, &mut items);
                        for item in items {
                            match item {
                                SseItem::Event(e) => {
                                    frames.extend(ServerFrame::decode(&e.data, max).ok())
                                }
                                SseItem::Retry(ms) => given.sse_retries.push((conn, ms)),
                                SseItem::Comment => {}
                            }
                        }
                    }
                }
            }
            TransportEvent::PollBody(b) | TransportEvent::SendReply(b) => {
                if let Ok(all) = ServerFrame::decode_batch(b, max.saturating_mul(16)) {
                    frames.extend(all.into_iter().flatten());
                }
            }
            TransportEvent::Closed {
                code: Some(4009),
                reason,
            } => {
                if let Ok(ms) = reason.trim().parse::<u64>() {
                    given.hints.push(Duration::from_millis(ms));
                }
            }
            TransportEvent::Failed(TransportFailure::HttpStatus {
                status: 429 | 503,
                retry_after: Some(d),
                ..
            }) => given.hints.push(*d),
            _ => {}
        }
        for f in frames {
            match f {
                ServerFrame::RetryLater { after_ms } => {
                    given.hints.push(Duration::from_millis(after_ms))
                }
                ServerFrame::Drain { from_ms, to_ms, .. } => {
                    given.drains.push(ordered(from_ms, to_ms))
                }
                _ => {}
            }
        }
    }

    // ----- one step -----

    /// Apply one op, then run every check.
    pub fn apply(&mut self, op: &Op) {
        self.step += 1;
        let state_before = self.engine.state().clone();
        let policy_before = self.engine.policy().clone();
        let offline_before = self.offline;
        let mut given = Given::default();
        let now = self.now;
        match op {
            Op::Connect => {
                let memo = self
                    .store
                    .lock()
                    .ok()
                    .and_then(|s| s.memo.as_ref().and_then(|m| m.retry_after_unix_ms));
                given.memo_deadline = memo.map(instant_of_wall);
                self.engine.connect(now);
            }
            Op::Close => self.engine.close(now),
            Op::Subscribe(c) => {
                if self.engine.subscribe(channel(*c), now).is_ok() {
                    self.subscribed.insert(channel(*c).to_owned());
                }
            }
            Op::Unsubscribe(c) => {
                if self.engine.unsubscribe(channel(*c), now).is_ok() {
                    self.subscribed.remove(channel(*c));
                    self.delivered.remove(channel(*c));
                }
            }
            Op::Publish {
                channel: c,
                len,
                id,
            } => {
                let app_id = (*id != 0).then(|| format!("k{}", id % 8));
                let data = json!("p".repeat(usize::from(*len)));
                if let Ok(id) = self.engine.publish(channel(*c), data, app_id, now) {
                    // An id already queued is the same publish (OUTBOX-1): nothing is added.
                    if self.outstanding.insert(id.clone()) {
                        given.published = true;
                        self.ids.push(id);
                    }
                }
            }
            Op::Transport { target, event } => {
                let (conn, kind) = if self.conns.is_empty() || *target == 255 {
                    given.unknown_conn = true;
                    (
                        ConnId(1_000_000 + u64::from(*target)),
                        TransportKind::WebSocket,
                    )
                } else {
                    let n = self.conns.len().min(4);
                    let c = &self.conns[self.conns.len() - 1 - usize::from(*target) % n];
                    (c.id, c.kind)
                };
                given.ended.insert(conn);
                for ev in self.transport_events(event, kind) {
                    self.note(conn, &ev, &mut given);
                    self.engine.handle_transport_event(now, conn, ev);
                }
            }
            Op::Timeout => {
                if let Some(t) = self.engine.poll_timeout() {
                    self.now = self.now.max(t);
                    self.engine.handle_timeout(self.now);
                    given.timed = true;
                }
            }
            Op::Advance(ms) => {
                self.now = self.now + Duration::from_millis(u64::from(*ms % 4_000_000));
                self.engine.handle_timeout(self.now);
                given.timed = true;
            }
            Op::Network(n) => {
                let network =
                    [Network::Online, Network::Offline, Network::Changed][usize::from(*n % 3)];
                self.offline = network == Network::Offline;
                self.engine.handle_network(now, network);
            }
            Op::Token { pick, kind } => {
                let request = match self.fetches.len() {
                    0 => u64::from(*pick),
                    n => self.fetches[n - 1 - usize::from(*pick) % n.min(3)],
                };
                let answer = match kind % 4 {
                    1 => Err(TokenError {
                        fatal: false,
                        message: "no".into(),
                    }),
                    2 => Err(TokenError {
                        fatal: true,
                        message: "revoked".into(),
                    }),
                    _ => Ok(Token::new("t")),
                };
                self.engine.handle_token(now, request, answer);
            }
            Op::Ready {
                pick,
                kind,
                from_ms,
                to_ms,
            } => {
                let probe = match self.probes.len() {
                    0 => u64::from(*pick),
                    n => self.probes[n - 1 - usize::from(*pick) % n.min(2)],
                };
                let answer = match kind % 3 {
                    0 => {
                        given
                            .ready
                            .push(ordered(u64::from(*from_ms), u64::from(*to_ms)));
                        ReadyAnswer::Ready {
                            from_ms: u64::from(*from_ms),
                            to_ms: u64::from(*to_ms),
                        }
                    }
                    1 => ReadyAnswer::NotReady,
                    _ => ReadyAnswer::Failed,
                };
                self.engine.handle_ready(now, probe, answer);
            }
            Op::Restart => {
                self.engine = Engine::new(
                    self.config.clone(),
                    Box::new(self.store.clone()),
                    now,
                    wall(now),
                );
                self.conns.clear();
                self.fetches.clear();
                self.probes.clear();
                self.subscribed.clear();
                self.delivered.clear();
                self.last_to = State::Idle;
                self.offline = false;
                self.scheduled_at = None;
                self.last_probe = None;
            }
        }
        let offline = offline_before && self.offline;
        self.settle(op, state_before, policy_before, offline, given);
        if trace() {
            eprintln!(
                "{:>3} {:>10?} {op:?} -> {:?}",
                self.step,
                self.now - T0,
                self.engine.state()
            );
        }
    }

    /// Drain the engine's outputs and check everything.
    fn settle(
        &mut self,
        op: &Op,
        before: State,
        policy_before: Policy,
        offline: bool,
        mut given: Given,
    ) {
        let policy = self.engine.policy().clone();
        for p in [&policy_before, &policy] {
            self.outbox_count_bound = self.outbox_count_bound.max(p.outbox_max_count.max(1));
            self.outbox_bytes_bound = self.outbox_bytes_bound.max(p.outbox_max_bytes);
        }
        if let Some((at, iv)) = self.last_probe {
            let iv = iv
                .min(policy_before.probe_interval)
                .min(policy.probe_interval);
            self.last_probe = Some((at, iv));
        }
        let connecting = matches!(op, Op::Connect | Op::Restart);

        // Actions.
        let mut actions = 0;
        let mut opened = false;
        let mut probed = false;
        while let Some(a) = self.engine.poll_action() {
            actions += 1;
            match a {
                Action::Open(o) => {
                    opened = true;
                    let sse = (o.transport == TransportKind::Sse).then(|| {
                        SseParser::new(SseLimits {
                            max_line_bytes: self.config.max_frame_bytes,
                            max_event_bytes: self.config.max_frame_bytes,
                        })
                    });
                    self.conns.push(Conn {
                        id: o.conn,
                        kind: o.transport,
                        sse,
                        sse_retry: None,
                    });
                }
                Action::FetchToken { request, .. } => self.fetches.push(request),
                Action::ProbeReady { probe } => {
                    probed = true;
                    self.probes.push(probe);
                    if let Some((at, iv)) = self.last_probe {
                        if self.now - at + TOL < iv {
                            self.fail(format!(
                                "READY-4: probe {:?} after the last, interval {iv:?}",
                                self.now - at
                            ));
                        }
                    }
                    self.last_probe = Some((
                        self.now,
                        policy_before.probe_interval.min(policy.probe_interval),
                    ));
                }
                Action::Close { conn, .. } => {
                    given.ended.insert(conn);
                }
                Action::Transmit { .. } | Action::Poll { .. } => {}
            }
        }
        if matches!(before, State::Closed) && !connecting && actions > 0 {
            self.fail(format!("CONN-3: {actions} actions while closed"));
        }
        if matches!(before, State::Idle | State::Closed | State::Failed { .. })
            && !connecting
            && opened
        {
            self.fail(format!(
                "CONN-5: a connection opened from {}",
                before.name()
            ));
        }
        if offline && opened {
            self.fail("NET-1: a connection opened while offline".into());
        }
        if given.unknown_conn && actions > 0 {
            self.fail("CONN-4: an event of an unknown connection led to actions".into());
        }

        // SSE-6: a `retry:` raises the next delay's floor, clamped to [floor, cap] when read.
        for (conn, ms) in given.sse_retries.drain(..) {
            let d = Duration::from_millis(ms);
            let clamp = |p: &Policy| d.min(p.cap).max(p.floor);
            let v = clamp(&policy_before).max(clamp(&policy));
            if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
                c.sse_retry = Some(c.sse_retry.map_or(v, |r| r.max(v)));
            }
        }
        let sse_ext = self
            .conns
            .iter()
            .filter(|c| given.ended.contains(&c.id))
            .filter_map(|c| c.sse_retry)
            .max();

        // Events.
        let mut events = 0;
        let mut first_schedule = true;
        while let Some(e) = self.engine.poll_event() {
            events += 1;
            match e {
                Event::StateChanged { from, to, .. } => {
                    if from != self.last_to {
                        self.fail(format!(
                            "STATE-2: from {from:?} but the last `to` was {:?}",
                            self.last_to
                        ));
                    }
                    if from == to {
                        self.fail(format!("STATE-3: a transition to the same state {to:?}"));
                    }
                    self.last_to = to;
                }
                Event::ReconnectScheduled {
                    attempt,
                    delay,
                    cause,
                } => {
                    self.check_delay(
                        attempt,
                        delay,
                        &cause,
                        &given,
                        &[&policy_before, &policy],
                        sse_ext,
                        op,
                    );
                    if first_schedule && before.is_up() {
                        let expect = match cause {
                            Cause::Drain | Cause::NetworkOnline | Cause::Backoff => 0,
                            _ => 1,
                        };
                        if attempt != expect {
                            self.fail(format!(
                                "BACKOFF-5/DRAIN-2: first schedule after a live connection ({}) has attempt {attempt}, want {expect}",
                                cause.as_str()
                            ));
                        }
                    }
                    first_schedule = false;
                    self.scheduled_at = Some(self.now + delay);
                }
                Event::Message { channel, seq, .. } => {
                    if !self.subscribed.contains(&channel) {
                        self.fail(format!("ORDER-1: a message of {channel:?}, not subscribed"));
                    }
                    if let Some(&last) = self.delivered.get(&channel) {
                        if seq <= last {
                            self.fail(format!("ORDER-2: {channel}#{seq} delivered after #{last}"));
                        }
                    }
                    self.delivered.insert(channel, seq);
                }
                Event::Reset { channel, .. } => {
                    self.delivered.remove(&channel);
                }
                Event::Acked { id, .. } => self.settled(&id, "OUTBOX-3: an ack"),
                Event::Dropped { id, .. } => self.settled(&id, "OUTBOX-6: a drop"),
                _ => {}
            }
        }
        if given.unknown_conn && events > 0 {
            self.fail("CONN-4: an event of an unknown connection led to events".into());
        }
        if &self.last_to != self.engine.state() {
            self.fail(format!("STATE-3: last reported {:?}", self.last_to));
        }

        // BACKOFF-3: a scheduled attempt is due `delay` after now, not later.
        if let State::Reconnecting { delay: Some(_), .. } = self.engine.state() {
            let due = self.engine.poll_timeout();
            match (due, self.scheduled_at) {
                (Some(t), Some(at)) if t <= at => {}
                (t, at) => self.fail(format!(
                    "BACKOFF-3: reconnecting, next deadline {t:?}, attempt due {at:?}"
                )),
            }
        }
        if probed
            && !matches!(
                self.engine.state(),
                State::Reconnecting { delay: Some(_), .. }
            )
        {
            self.fail("READY-4: a probe outside a wait".into());
        }
        if given.timed {
            if let Some(t) = self.engine.poll_timeout() {
                if t <= self.now {
                    self.fail(format!(
                        "handle_timeout({:?}) left the deadline {t:?}",
                        self.now
                    ));
                }
            }
        }

        // LIMIT-5.
        let q = self.engine.queues();
        let max_frame = self.config.max_frame_bytes;
        if q.held_max > MAX_HELD {
            self.fail(format!(
                "LIMIT-5/ORDER-3: {} held on one channel",
                q.held_max
            ));
        }
        if q.sse_line_capacity > max_frame || q.sse_data_capacity > max_frame {
            self.fail(format!("LIMIT-3: SSE buffers {q:?} over {max_frame}"));
        }
        if q.outbox_count > self.outbox_count_bound || q.outbox_bytes > self.outbox_bytes_bound {
            self.fail(format!(
                "LIMIT-5: outbox {q:?} over the largest limits in effect ({}, {})",
                self.outbox_count_bound, self.outbox_bytes_bound
            ));
        }
        if given.published
            && (q.outbox_count > policy.outbox_max_count.max(1)
                || q.outbox_bytes > policy.outbox_max_bytes)
        {
            self.fail(format!(
                "OUTBOX-6: after a publish the outbox is {q:?}, limits {} / {}",
                policy.outbox_max_count, policy.outbox_max_bytes
            ));
        }
        if q.outbox_count != self.outstanding.len() {
            self.fail(format!(
                "OUTBOX: {} queued, {} published and neither acknowledged nor dropped",
                q.outbox_count,
                self.outstanding.len()
            ));
        }
    }

    /// A publish was acknowledged or dropped: it must be queued, and is no longer.
    fn settled(&mut self, id: &str, what: &str) {
        if !self.outstanding.remove(id) {
            self.fail(format!("{what} for {id:?}, which is not queued"));
        }
    }

    /// Is `delay` within the SPEC bounds of its cause?
    #[allow(clippy::too_many_arguments)]
    fn check_delay(
        &self,
        attempt: u32,
        d: Duration,
        cause: &Cause,
        given: &Given,
        policies: &[&Policy],
        sse_ext: Option<Duration>,
        op: &Op,
    ) {
        let within = |lo: Duration, hi: Duration| d + TOL >= lo && d <= hi + TOL;
        // BACKOFF-1 (with SSE-6's raised floor): after failed attempt n = attempt - 1.
        let backoff = |p: &Policy| -> Option<Duration> {
            let n = attempt.checked_sub(1)?;
            let mut hi = ceiling(p, n);
            if let Some(r) = sse_ext {
                hi = hi.max(r);
            }
            Some(hi)
        };
        let backoff_ok = |p: &Policy| backoff(p).is_some_and(|hi| within(p.floor, hi));
        let ok = match cause {
            Cause::Drain => given
                .drains
                .iter()
                .any(|&(lo, hi)| within(Duration::from_millis(lo), Duration::from_millis(hi))),
            Cause::NetworkOnline => {
                attempt == 0 && policies.iter().any(|p| within(Duration::ZERO, p.base))
            }
            // READY-4: a ready answer moves the attempt earlier, into the answer's window, with
            // cause `ready` (STATE-2; before that cause existed it was reported as `backoff`).
            Cause::Ready | Cause::Backoff => {
                let earlier = self.scheduled_at.is_some_and(|at| self.now + d < at);
                earlier
                    && given.ready.iter().any(|&(lo, hi)| {
                        within(Duration::from_millis(lo), Duration::from_millis(hi))
                    })
            }
            Cause::RetryLater => {
                let remembered = matches!(op, Op::Connect)
                    && given.memo_deadline.is_some_and(|at| {
                        let due = self.now + d;
                        (if due > at { due - at } else { at - due }) <= Duration::from_millis(1)
                    });
                let hinted = policies.iter().any(|p| {
                    given.hints.iter().any(|&h| {
                        let ra = h.max(p.floor).min(MAX_RETRY_AFTER);
                        let hi = (ra + ra / 2).max(backoff(p).unwrap_or(Duration::ZERO));
                        within(ra, hi)
                    })
                });
                remembered || hinted || policies.iter().any(|p| backoff_ok(p))
            }
            _ => policies.iter().any(|p| backoff_ok(p)),
        };
        if !ok {
            self.fail(format!(
                "{}: delay {d:?} at attempt {attempt} ({}) outside its bounds; hints {:?}, drains {:?}, ready {:?}, sse retry {sse_ext:?}",
                match cause {
                    Cause::Drain => "DRAIN-1",
                    Cause::NetworkOnline => "NET-2",
                    Cause::Backoff => "READY-4",
                    Cause::RetryLater => "READY-1",
                    _ => "BACKOFF-1",
                },
                cause.as_str(),
                given.hints,
                given.drains,
                given.ready
            ));
        }
    }
}
