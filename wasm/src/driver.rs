//! The browser driver: the twin of the native driver on the page's event loop, feeding the engine its inputs and performing its actions.
//!
//! Inputs come from browser callbacks (WebSocket and fetch readers, the one `setTimeout`,
//! `online` / `offline` events, token and readiness promises) and from the application's
//! calls. After every input the driver drains `poll_action` (performing each), then
//! `poll_event` (settling publish promises and queueing the events for JavaScript), carries
//! out the store's writes, and keeps one timer armed at `poll_timeout`. No reconnection
//! logic lives here: the engine decides, the driver obeys.
//!
//! Re-entrancy: the engine sits in a `RefCell`. An input that arrives while it is borrowed
//! (a callback fired from inside an engine call) waits in [`Shared::inbox`] and is handled
//! before the borrow ends; events reach JavaScript only after the borrow ends, in order, so
//! a listener may call the client again.

use crate::clock::{self, Timer};
use crate::events;
use crate::js;
use crate::network::Watch;
use crate::store::{idb::Writer, Mirror};
use crate::token;
use crate::transport::{http, Conn, Emitter};
use js_sys::{Function, Promise};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use tether_engine::{
    Action, CallError, ConnId, Engine, Event, Instant, Network, ReadyAnswer, Token, TokenError,
    TransportEvent,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Something that happened outside the engine, to feed it.
pub(crate) enum Input {
    Transport(ConnId, TransportEvent),
    Timeout,
    Token {
        request: u64,
        result: Result<String, TokenError>,
    },
    Ready {
        probe: u64,
        answer: ReadyAnswer,
    },
    Network(Network),
}

/// One client: its driver, the inputs waiting for it and the events waiting for JavaScript.
pub(crate) struct Shared {
    driver: RefCell<Driver>,
    inbox: RefCell<VecDeque<Input>>,
    out: RefCell<VecDeque<JsValue>>,
    dispatching: Cell<bool>,
    on_event: Function,
}

/// How to settle one publish's promise.
struct Settle {
    resolve: Function,
    reject: Function,
}

pub(crate) struct Driver {
    engine: Engine,
    base: String,
    max_frame_bytes: usize,
    conns: HashMap<ConnId, Conn>,
    pending: HashMap<String, Vec<Settle>>,
    timer: Option<Timer>,
    tokens: Option<Function>,
    mirror: Mirror,
    writer: Option<Writer>,
    me: Weak<Shared>,
    /// Transport events produced while performing actions (an open that failed at once).
    immediate: VecDeque<(ConnId, TransportEvent)>,
    network: Option<Watch>,
}

/// What creating a driver needs.
pub(crate) struct Parts {
    pub engine: Engine,
    pub base: String,
    pub max_frame_bytes: usize,
    pub tokens: Option<Function>,
    pub mirror: Mirror,
    pub writer: Option<Writer>,
    pub watch_network: bool,
    pub on_event: Function,
}

impl Shared {
    pub(crate) fn new(parts: Parts) -> Rc<Shared> {
        let shared = Rc::new_cyclic(|me: &Weak<Shared>| Shared {
            driver: RefCell::new(Driver {
                engine: parts.engine,
                base: parts.base,
                max_frame_bytes: parts.max_frame_bytes,
                conns: HashMap::new(),
                pending: HashMap::new(),
                timer: None,
                tokens: parts.tokens,
                mirror: parts.mirror,
                writer: parts.writer,
                me: me.clone(),
                immediate: VecDeque::new(),
                network: None,
            }),
            inbox: RefCell::default(),
            out: RefCell::default(),
            dispatching: Cell::new(false),
            on_event: parts.on_event,
        });
        if parts.watch_network {
            let watch = Watch::start(Rc::downgrade(&shared));
            if let Ok(mut d) = shared.driver.try_borrow_mut() {
                d.network = Some(watch);
                if !js::on_line() {
                    d.engine.handle_network(clock::now(), Network::Offline);
                }
            }
        }
        shared
    }
}

/// Queue `input` and handle it now unless the driver is busy (then its holder handles it).
pub(crate) fn feed(shared: &Rc<Shared>, input: Input) {
    shared.inbox.borrow_mut().push_back(input);
    let _ = with(shared, |_, _| ());
}

/// Run `f` on the driver, handle everything it caused, then hand the events to JavaScript.
/// `None` when the driver is busy (only possible from inside an engine call).
pub(crate) fn with<R>(shared: &Rc<Shared>, f: impl FnOnce(&mut Driver, Instant) -> R) -> Option<R> {
    let r = {
        let mut d = shared.driver.try_borrow_mut().ok()?;
        let now = clock::now();
        let r = f(&mut d, now);
        d.settle(shared, now);
        r
    };
    dispatch(shared);
    Some(r)
}

/// Read the driver without feeding it anything.
pub(crate) fn peek<R>(shared: &Shared, f: impl FnOnce(&Driver) -> R) -> Option<R> {
    shared.driver.try_borrow().ok().map(|d| f(&d))
}

/// Hand queued events to the application's callback, in order. A callback that calls the
/// client queues more events, delivered by this same loop after the ones before them.
fn dispatch(shared: &Rc<Shared>) {
    if shared.dispatching.replace(true) {
        return;
    }
    loop {
        let next = shared.out.borrow_mut().pop_front();
        let Some(ev) = next else { break };
        // An exception in a listener must not stop the driver: it is reported to the page.
        if let Err(e) = shared.on_event.call1(&JsValue::NULL, &ev) {
            report_listener_error(&e);
        }
    }
    shared.dispatching.set(false);
}

fn report_listener_error(e: &JsValue) {
    // `reportError` shows it as an uncaught error without unwinding into the driver.
    if let Some(f) = js::global_property("reportError").and_then(|f| f.dyn_into::<Function>().ok())
    {
        let _ = f.call1(&JsValue::NULL, e);
    }
}

impl Driver {
    /// Drain everything the last input caused, then every input that queued meanwhile.
    fn settle(&mut self, shared: &Shared, now: Instant) {
        loop {
            self.drain(shared);
            let next = shared.inbox.borrow_mut().pop_front();
            match next {
                Some(input) => self.handle(now, input),
                None => break,
            }
        }
        if let Some(w) = &self.writer {
            w.flush();
        }
        self.arm_timer(now);
    }

    fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Transport(conn, ev) => self.on_transport(now, conn, ev),
            Input::Timeout => {
                self.timer = None;
                // The timer may predate a later deadline (see `arm_timer`): only a due
                // deadline is a timeout for the engine.
                if self.engine.poll_timeout().is_some_and(|at| at <= now) {
                    self.engine.handle_timeout(now);
                }
            }
            Input::Token { request, result } => {
                self.engine
                    .handle_token(now, request, result.map(Token::new));
            }
            Input::Ready { probe, answer } => self.engine.handle_ready(now, probe, answer),
            Input::Network(n) => self.engine.handle_network(now, n),
        }
    }

    fn on_transport(&mut self, now: Instant, conn: ConnId, ev: TransportEvent) {
        if matches!(
            ev,
            TransportEvent::Closed { .. } | TransportEvent::Failed(_)
        ) {
            // The connection is over on the transport's side: drop its handle.
            self.conns.remove(&conn);
        }
        self.engine.handle_transport_event(now, conn, ev);
    }

    /// Keep one timer at the engine's deadline. A deadline that only moved later (the
    /// heartbeat deadline moves with every frame received) keeps the armed timer, which
    /// re-arms when it fires early, instead of a new timer per frame.
    fn arm_timer(&mut self, now: Instant) {
        match self.engine.poll_timeout() {
            None => self.timer = None,
            Some(at) => {
                if self.timer.as_ref().is_none_or(|t| t.at > at) {
                    let me = self.me.clone();
                    self.timer = Some(Timer::arm(now, at, move || {
                        if let Some(shared) = me.upgrade() {
                            feed(&shared, Input::Timeout);
                        }
                    }));
                }
            }
        }
    }

    /// Perform every action, then take every event.
    fn drain(&mut self, shared: &Shared) {
        loop {
            while let Some(action) = self.engine.poll_action() {
                self.perform(action);
            }
            let Some((conn, ev)) = self.immediate.pop_front() else {
                break;
            };
            self.on_transport(crate::clock::now(), conn, ev);
        }
        while let Some(event) = self.engine.poll_event() {
            match &event {
                Event::Acked { id, seq } => {
                    let ack = events::Obj::new().str("id", id).opt_num("seq", *seq).end();
                    let v = js_sys::JSON::parse(&ack).unwrap_or(JsValue::NULL);
                    self.settle_publish(id, Ok(v));
                }
                Event::Dropped { id, reason } => {
                    let e = dropped_error(id, Some(reason));
                    self.settle_publish(id, Err(e));
                }
                _ => {}
            }
            if let Some(v) = events::event_json(&event) {
                let parsed = js_sys::JSON::parse(&v).unwrap_or(JsValue::NULL);
                shared.out.borrow_mut().push_back(parsed);
            }
        }
    }

    fn settle_publish(&mut self, id: &str, outcome: Result<JsValue, JsValue>) {
        if let Some(waiters) = self.pending.remove(id) {
            for w in waiters {
                let _ = match &outcome {
                    Ok(v) => w.resolve.call1(&JsValue::NULL, v),
                    Err(e) => w.reject.call1(&JsValue::NULL, e),
                };
            }
        }
    }

    fn perform(&mut self, action: Action) {
        #[allow(unreachable_patterns)]
        match action {
            Action::Open(req) => {
                let em = Emitter {
                    conn: req.conn,
                    driver: self.me.clone(),
                };
                match Conn::open(&self.base, &req, self.max_frame_bytes, em) {
                    Ok(c) => {
                        self.conns.insert(req.conn, c);
                    }
                    Err(failure) => self
                        .immediate
                        .push_back((req.conn, TransportEvent::Failed(failure))),
                }
            }
            Action::Transmit { conn, frames } => {
                if let Some(c) = self.conns.get(&conn) {
                    c.transmit(frames);
                }
            }
            Action::Poll {
                conn,
                cursor,
                channels,
            } => {
                if let Some(c) = self.conns.get(&conn) {
                    c.poll(cursor, channels);
                }
            }
            Action::Close { conn, code, reason } => {
                if let Some(c) = self.conns.remove(&conn) {
                    c.close(code, &reason);
                }
            }
            Action::FetchToken { request, forced } => {
                let me = self.me.clone();
                let provider = self.tokens.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let result = match provider {
                        Some(p) => token::fetch_token(&p, forced).await,
                        None => Err(TokenError {
                            fatal: true,
                            message: "no token provider configured".into(),
                        }),
                    };
                    if let Some(shared) = me.upgrade() {
                        feed(&shared, Input::Token { request, result });
                    }
                });
            }
            Action::ProbeReady { probe } => {
                let me = self.me.clone();
                let base = self.base.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let answer = http::probe_ready(&base).await;
                    if let Some(shared) = me.upgrade() {
                        feed(&shared, Input::Ready { probe, answer });
                    }
                });
            }
            // An action this version does not know: nothing to perform.
            _ => {}
        }
    }

    // ----- the application's calls -----

    pub(crate) fn connect(&mut self, now: Instant) {
        self.engine.connect(now);
    }

    pub(crate) fn subscribe(&mut self, now: Instant, channel: &str) -> Result<(), CallError> {
        self.engine.subscribe(channel, now)
    }

    pub(crate) fn unsubscribe(&mut self, now: Instant, channel: &str) -> Result<(), CallError> {
        self.engine.unsubscribe(channel, now)
    }

    /// Queue a publish: its key, a promise of its durability (OUTBOX-2, see `store`) and a
    /// promise of its outcome (the ack, or the drop).
    pub(crate) fn publish(
        &mut self,
        now: Instant,
        channel: &str,
        data: serde_json::Value,
        key: Option<String>,
    ) -> Result<(String, Promise, Promise), CallError> {
        let id = self.engine.publish(channel, data, key, now)?;
        if let Some(w) = &self.writer {
            w.flush();
        }
        let durable = match &self.writer {
            Some(w) => w.durable(&id),
            None => Promise::resolve(&JsValue::UNDEFINED),
        };
        let mut settle = None;
        let outcome = Promise::new(&mut |resolve, reject| {
            settle = Some(Settle { resolve, reject });
        });
        if let Some(s) = settle {
            self.pending.entry(id.clone()).or_default().push(s);
        }
        Ok((id, durable, outcome))
    }

    pub(crate) fn set_network(&mut self, now: Instant, n: Network) {
        self.engine.handle_network(now, n);
    }

    /// Close for good (CONN-3); publishes still queued stay in the store, and their promises
    /// reject with `closed`.
    pub(crate) fn close(&mut self, now: Instant) {
        self.engine.close(now);
        for (id, waiters) in self.pending.drain() {
            let e = dropped_error(&id, None);
            for w in waiters {
                let _ = w.reject.call1(&JsValue::NULL, &e);
            }
        }
    }

    pub(crate) fn state_json(&self) -> String {
        events::state_json(self.engine.state())
    }

    pub(crate) fn outbox_len(&self) -> usize {
        self.engine.outbox_len()
    }

    /// Why the store refuses appends, if it does.
    pub(crate) fn store_broken(&self) -> Option<String> {
        self.mirror.broken()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The application let go of the client without closing it: close like `close`
        // would, without events (nobody listens any more).
        self.timer = None;
        self.network = None;
        for (_, c) in self.conns.drain() {
            c.close(1000, "client dropped");
        }
    }
}

/// The rejection of a publish that will not be acknowledged: a `TetherError` shape whose
/// `code` is the ERR-1 code closest to the reason (`reason` is exact).
fn dropped_error(id: &str, reason: Option<&tether_engine::DropReason>) -> JsValue {
    use tether_engine::DropReason;
    let (code, name, server_code) = match reason {
        None => ("closed", "closed", None),
        Some(DropReason::Overflow) => ("outbox_full", "overflow", None),
        Some(DropReason::Expired) => ("outbox_full", "expired", None),
        Some(DropReason::TooLarge) => ("message_too_large", "too_large", None),
        Some(DropReason::Rejected { code }) => (
            tether_engine::ErrorCode::parse(code).map_or("server_error", |c| c.as_str()),
            "rejected",
            Some(code.as_str()),
        ),
        #[allow(unreachable_patterns)]
        Some(other) => ("outbox_full", other.as_str(), None),
    };
    let message = match server_code {
        Some(c) => format!("publish {id} dropped: rejected by the server ({c})"),
        None => format!("publish {id} dropped: {name}"),
    };
    let e = js::error_object(code, &message);
    let _ = js_sys::Reflect::set(&e, &"id".into(), &id.into());
    let _ = js_sys::Reflect::set(&e, &"reason".into(), &name.into());
    if let Some(c) = server_code {
        let _ = js_sys::Reflect::set(&e, &"serverCode".into(), &c.into());
    }
    e
}
