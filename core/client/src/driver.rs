//! The driver: one tokio task per client feeding the engine its inputs and performing its actions.
//!
//! Each wake-up takes every input that is ready: application commands, the messages waiting
//! on its WebSocket (read by this task itself, at most `READ_BATCH` per connection), events of
//! task-run connections (SSE, long-poll, `POST /send`) and helper answers from its inbox, and
//! the timer armed at the engine's `poll_timeout`. Each input is handed to the engine, then
//! `poll_action` is drained (performing each action) and `poll_event` (updating the state
//! watch, resolving publish handles, collecting events); the collected events reach every
//! subscriber in one hand-off per wake-up. No reconnection logic lives here: the engine
//! decides, the driver obeys.

use crate::client::{Ack, ClientEvent, Dropped, PublishOutcome};
use crate::clock::Clock;
use crate::inbox::{trim, Inbox, Take};
use crate::token::TokenProvider;
use crate::transport::ws::WsConn;
use crate::transport::{self, http, ConnCommand, ConnHandle, Io};
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tether_engine::{
    Action, CallError, ConnId, Engine, Event, Instant, Network, ReadyAnswer, State, Token,
    TokenError, TransportEvent, TransportKind,
};
use tokio::sync::{oneshot, watch};

/// What the public API asks of the driver.
pub(crate) enum Command {
    Connect,
    Subscribe {
        channel: String,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Unsubscribe {
        channel: String,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Publish {
        channel: String,
        data: Value,
        id: Option<String>,
        reply: oneshot::Sender<PublishReply>,
    },
    Network(Network),
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// The answer to a publish command: the id and the receiver of its outcome.
pub(crate) type PublishReply = Result<(String, oneshot::Receiver<PublishOutcome>), CallError>;

/// What other tasks send the driver: events of task-run connections and helper answers
/// (token provider, readiness probe).
pub(crate) enum Incoming {
    Transport(ConnId, TransportEvent),
    Token {
        request: u64,
        result: Result<String, TokenError>,
    },
    Ready {
        probe: u64,
        answer: ReadyAnswer,
    },
}

/// The event subscribers of one client.
#[derive(Default)]
pub(crate) struct Hub {
    subscribers: Mutex<Subscribers>,
}

#[derive(Default)]
struct Subscribers {
    inboxes: Vec<Arc<Inbox<ClientEvent>>>,
    /// The driver ended: new subscribers get an ended stream.
    ended: bool,
}

impl core::fmt::Debug for Hub {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn subscribe(&self) -> Arc<Inbox<ClientEvent>> {
        let inbox = Arc::new(Inbox::new(usize::MAX));
        match self.subscribers.lock() {
            Ok(mut subs) if !subs.ended => subs.inboxes.push(inbox.clone()),
            _ => inbox.close_senders(),
        }
        inbox
    }

    /// Hand one wake-up's events to every subscriber: one lock and one wake-up each.
    fn publish(&self, events: Vec<ClientEvent>) {
        let Ok(mut subs) = self.subscribers.lock() else {
            return;
        };
        subs.inboxes.retain(|s| !s.receiver_gone());
        let Some((last, rest)) = subs.inboxes.split_last() else {
            return;
        };
        for s in rest {
            s.send_all(events.clone());
        }
        last.send_all(events);
    }

    /// The driver ended: every stream ends once drained.
    fn end(&self) {
        let mut subs = match self.subscribers.lock() {
            Ok(s) => s,
            Err(e) => e.into_inner(),
        };
        subs.ended = true;
        for s in subs.inboxes.drain(..) {
            s.close_senders();
        }
    }
}

/// The timer armed at the engine's deadline; kept across inputs while the deadline holds.
struct Timer {
    at: Instant,
    sleep: BoxFuture<'static, ()>,
}

/// A live connection: read by the driver (WebSocket) or run by a task (SSE, long-poll).
enum Conn {
    Ws(WsConn),
    Task(ConnHandle),
}

pub(crate) struct Driver {
    engine: Engine,
    clock: Arc<dyn Clock>,
    start: Instant,
    io: Arc<Io>,
    /// Commands from the `Client` handles.
    commands: Arc<Inbox<Command>>,
    /// Events of task-run connections and helper answers.
    inbox: Arc<Inbox<Incoming>>,
    hub: Arc<Hub>,
    state_tx: watch::Sender<State>,
    tokens: Option<Arc<dyn TokenProvider>>,
    /// Live connections (rarely more than two: make-before-break).
    conns: Vec<(ConnId, Conn)>,
    pending: HashMap<String, Vec<oneshot::Sender<PublishOutcome>>>,
    timer: Option<Timer>,
    /// The last scheduled reconnect delay, for the next attempt's span.
    last_delay: Option<Duration>,
    /// Inputs taken in one wake-up.
    woke: Woke,
    /// Events drained from the engine, not yet handed to subscribers.
    out: Vec<ClientEvent>,
}

/// What one wake-up took.
#[derive(Default)]
struct Woke {
    commands: VecDeque<Command>,
    /// Every `Client` handle is gone.
    commands_ended: bool,
    incoming: VecDeque<Incoming>,
    /// Events read from the WebSockets, in order per connection.
    ws: Vec<(ConnId, TransportEvent)>,
    ws_scratch: Vec<TransportEvent>,
    timeout: bool,
    /// Inputs the last wake-up took.
    took: usize,
}

impl Woke {
    /// After a burst (a wake-up that took few inputs), give large buffers back.
    fn trim(&mut self) {
        if self.took >= 16 {
            return;
        }
        trim(&mut self.commands);
        trim(&mut self.incoming);
        if self.ws.capacity() > 16 {
            self.ws = Vec::new();
        }
        if self.ws_scratch.capacity() > 16 {
            self.ws_scratch = Vec::new();
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // However the task ends (returned, aborted at runtime shutdown), nobody waits on it.
        self.hub.end();
        self.commands.close_receiver();
        self.inbox.close_receiver();
    }
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        engine: Engine,
        clock: Arc<dyn Clock>,
        start: Instant,
        io: Arc<Io>,
        inbox: Arc<Inbox<Incoming>>,
        commands: Arc<Inbox<Command>>,
        hub: Arc<Hub>,
        state_tx: watch::Sender<State>,
        tokens: Option<Arc<dyn TokenProvider>>,
    ) -> Driver {
        Driver {
            engine,
            clock,
            start,
            io,
            commands,
            inbox,
            hub,
            state_tx,
            tokens,
            conns: Vec::new(),
            pending: HashMap::new(),
            timer: None,
            last_delay: None,
            woke: Woke::default(),
            out: Vec::new(),
        }
    }

    /// Run until every [`Client`](crate::Client) handle is dropped.
    pub(crate) async fn run(mut self) {
        let now = self.clock.now();
        self.drain(now);
        self.publish();
        loop {
            self.arm_timer();
            poll_fn(|cx| self.poll_inputs(cx)).await;
            let now = self.clock.now();
            let go_on = self.handle_inputs(now);
            self.publish();
            self.woke.trim();
            if !go_on {
                tracing::debug!("all client handles dropped; driver ends");
                return;
            }
        }
    }

    /// Take every input that is ready; `Ready` when there is at least one.
    fn poll_inputs(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut ready = false;
        match self.commands.poll_take(cx, &mut self.woke.commands) {
            Poll::Ready(Take::Items) => ready = true,
            Poll::Ready(Take::Ended) => {
                self.woke.commands_ended = true;
                ready = true;
            }
            Poll::Pending => {}
        }
        if self.inbox.poll_take(cx, &mut self.woke.incoming).is_ready() {
            ready = true;
        }
        let woke = &mut self.woke;
        for (id, conn) in &mut self.conns {
            if let Conn::Ws(ws) = conn {
                if ws.poll(cx, &mut woke.ws_scratch).is_ready() {
                    woke.ws
                        .extend(woke.ws_scratch.drain(..).map(|ev| (*id, ev)));
                    ready = true;
                }
            }
        }
        if let Some(t) = self.timer.as_mut() {
            if t.sleep.as_mut().poll(cx).is_ready() {
                self.woke.timeout = true;
                ready = true;
            }
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Hand what one wake-up took to the engine; false once the driver should end.
    fn handle_inputs(&mut self, now: Instant) -> bool {
        self.woke.took = self.woke.commands.len() + self.woke.incoming.len() + self.woke.ws.len();
        self.out.reserve(self.woke.took);
        while let Some(cmd) = self.woke.commands.pop_front() {
            self.on_command(now, cmd);
            self.drain(now);
        }
        let mut ws = std::mem::take(&mut self.woke.ws);
        for (conn, ev) in ws.drain(..) {
            self.on_transport(now, conn, ev);
        }
        self.woke.ws = ws;
        while let Some(input) = self.woke.incoming.pop_front() {
            match input {
                Incoming::Transport(conn, ev) => self.on_transport(now, conn, ev),
                Incoming::Token { request, result } => {
                    self.engine
                        .handle_token(now, request, result.map(Token::new));
                    self.drain(now);
                }
                Incoming::Ready { probe, answer } => {
                    self.engine.handle_ready(now, probe, answer);
                    self.drain(now);
                }
            }
        }
        if std::mem::take(&mut self.woke.timeout) {
            self.timer = None;
            // The timer may predate a later deadline (see `arm_timer`): only a due
            // deadline is a timeout for the engine.
            if self.engine.poll_timeout().is_some_and(|at| at <= now) {
                self.engine.handle_timeout(now);
                self.drain(now);
            }
        }
        if self.woke.commands_ended {
            self.engine.close(now);
            self.drain(now);
            return false;
        }
        true
    }

    fn on_transport(&mut self, now: Instant, conn: ConnId, ev: TransportEvent) {
        if matches!(
            ev,
            TransportEvent::Closed { .. } | TransportEvent::Failed(_)
        ) {
            // Its end is reported: a task ends by itself, a WebSocket sends what it queued
            // (a close answer) and goes.
            if let Some(Conn::Ws(ws)) = self.take_conn(conn) {
                ws.finish();
            }
        }
        self.engine.handle_transport_event(now, conn, ev);
        self.drain(now);
    }

    fn conn(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns
            .iter_mut()
            .find(|(c, _)| *c == id)
            .map(|(_, conn)| conn)
    }

    fn take_conn(&mut self, id: ConnId) -> Option<Conn> {
        let i = self.conns.iter().position(|(c, _)| *c == id)?;
        Some(self.conns.swap_remove(i).1)
    }

    /// Keep one timer at the engine's deadline. A deadline that only moved later (the
    /// heartbeat deadline moves with every frame received) keeps the armed timer, which
    /// re-arms when it fires early, instead of a new timer per frame.
    fn arm_timer(&mut self) {
        match self.engine.poll_timeout() {
            None => self.timer = None,
            Some(at) => {
                if self.timer.as_ref().is_none_or(|t| t.at > at) {
                    self.timer = Some(Timer {
                        at,
                        sleep: self.clock.sleep_until(at),
                    });
                }
            }
        }
    }

    fn on_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Connect => self.engine.connect(now),
            Command::Subscribe { channel, reply } => {
                let _ = reply.send(self.engine.subscribe(&channel, now));
            }
            Command::Unsubscribe { channel, reply } => {
                let _ = reply.send(self.engine.unsubscribe(&channel, now));
            }
            Command::Publish {
                channel,
                data,
                id,
                reply,
            } => {
                let answer = self.engine.publish(&channel, data, id, now).map(|id| {
                    let (tx, rx) = oneshot::channel();
                    self.pending.entry(id.clone()).or_default().push(tx);
                    (id, rx)
                });
                let _ = reply.send(answer);
            }
            Command::Network(n) => self.engine.handle_network(now, n),
            Command::Close { reply } => {
                self.engine.close(now);
                self.drain(now);
                self.publish();
                // The outbox stays in the store (CONN-3); nobody will hear about these here.
                self.pending.clear();
                let _ = reply.send(());
            }
        }
    }

    /// Perform every action, then take every event (STATE-3: the watch is updated first);
    /// the events reach subscribers at [`Driver::publish`].
    fn drain(&mut self, now: Instant) {
        while let Some(action) = self.engine.poll_action() {
            self.perform(action);
        }
        let at = now.saturating_duration_since(self.start);
        let mut state_changed = false;
        while let Some(event) = self.engine.poll_event() {
            match &event {
                Event::Message { .. } => {}
                Event::StateChanged { from, to, cause } => {
                    state_changed = true;
                    tracing::info!(from = from.name(), %to, %cause, "state changed");
                }
                Event::ReconnectScheduled { delay, .. } => self.last_delay = Some(*delay),
                Event::Acked { id, seq } => self.resolve(
                    id,
                    Ok(Ack {
                        id: id.clone(),
                        seq: *seq,
                    }),
                ),
                Event::Dropped { id, reason } => self.resolve(
                    id,
                    Err(Dropped {
                        id: id.clone(),
                        reason: Some(reason.clone()),
                    }),
                ),
                Event::Fallback { from, to, reason } => {
                    tracing::info!(%from, %to, %reason, "transport fallback");
                }
                Event::Error { code, detail } => {
                    tracing::debug!(code = code.as_str(), %detail, "engine reported an error");
                }
                _ => {}
            }
            self.out.push(ClientEvent { at, event });
        }
        if state_changed {
            self.state_tx.send_replace(self.engine.state().clone());
        }
    }

    /// Hand the drained events to subscribers, once per wake-up.
    fn publish(&mut self) {
        if !self.out.is_empty() {
            self.hub.publish(std::mem::take(&mut self.out));
        }
    }

    fn resolve(&mut self, id: &str, outcome: PublishOutcome) {
        if let Some(waiters) = self.pending.remove(id) {
            for w in waiters {
                let _ = w.send(outcome.clone());
            }
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Open(req) => {
                let attempt = match self.engine.state() {
                    State::Connecting { attempt, .. } => Some(*attempt),
                    _ => None,
                };
                let delay_ms = self
                    .last_delay
                    .take()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                let span = tracing::info_span!(
                    "tether_conn",
                    conn = req.conn.0,
                    transport = req.transport.as_str(),
                    attempt,
                    delay_ms,
                    close_code = tracing::field::Empty,
                );
                span.in_scope(|| {
                    tracing::info!(
                        cursor = req.cursor.is_some(),
                        channels = req.channels.len(),
                        auth = req.token.is_some(),
                        "opening connection"
                    );
                });
                let id = req.conn;
                let conn = if req.transport == TransportKind::WebSocket {
                    Conn::Ws(WsConn::open(&self.io, req, span))
                } else {
                    Conn::Task(transport::open(&self.io, req, span))
                };
                self.conns.push((id, conn));
            }
            Action::Transmit { conn, frames } => match self.conn(conn) {
                Some(Conn::Ws(ws)) => ws.transmit(frames),
                Some(Conn::Task(h)) => h.send(ConnCommand::Transmit(frames)),
                None => {}
            },
            Action::Poll {
                conn,
                cursor,
                channels,
            } => {
                if let Some(Conn::Task(h)) = self.conn(conn) {
                    h.send(ConnCommand::Poll { cursor, channels });
                }
            }
            Action::Close { conn, code, reason } => match self.take_conn(conn) {
                Some(Conn::Ws(ws)) => ws.close(code, &reason),
                Some(Conn::Task(h)) => h.close(code),
                None => {}
            },
            Action::FetchToken { request, forced } => {
                let inbox = self.inbox.clone();
                match &self.tokens {
                    Some(p) => {
                        let fut = p.token(forced);
                        tokio::spawn(async move {
                            let result = fut.await;
                            let _ = inbox.send_now(Incoming::Token { request, result });
                        });
                    }
                    None => {
                        let _ = inbox.send_now(Incoming::Token {
                            request,
                            result: Err(TokenError {
                                fatal: true,
                                message: "no token provider configured".into(),
                            }),
                        });
                    }
                }
            }
            Action::ProbeReady { probe } => {
                let inbox = self.inbox.clone();
                let io = self.io.clone();
                tokio::spawn(async move {
                    let answer = http::probe_ready(io).await;
                    let _ = inbox.send_now(Incoming::Ready { probe, answer });
                });
            }
        }
    }
}
