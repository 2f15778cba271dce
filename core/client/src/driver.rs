//! The driver: one tokio task per client feeding the engine its inputs and performing its actions.
//!
//! It selects over transport events, application commands, token/readiness answers and one
//! timer armed at the engine's `poll_timeout`. After every input it drains `poll_action`
//! (performing each), then `poll_event` (updating the state watch, resolving publish handles
//! and fanning out to subscribers). No reconnection logic lives here: the engine decides,
//! the driver obeys.

use crate::client::{Ack, ClientEvent, Dropped, PublishOutcome};
use crate::clock::Clock;
use crate::token::TokenProvider;
use crate::transport::{self, http, ConnCommand, ConnHandle, Io};
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tether_engine::{
    Action, CallError, ConnId, Engine, Event, Instant, Network, ReadyAnswer, State, Token,
    TokenError, TransportEvent,
};
use tokio::sync::{mpsc, oneshot, watch};

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

/// Answers of helper tasks (token provider, readiness probe).
enum Answer {
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
#[derive(Debug, Default)]
pub(crate) struct Hub {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<ClientEvent>>>,
}

impl Hub {
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<ClientEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(tx);
        }
        rx
    }

    fn publish(&self, events: Vec<ClientEvent>) {
        let Ok(mut subs) = self.subscribers.lock() else {
            return;
        };
        subs.retain(|s| !s.is_closed());
        let Some((last, rest)) = subs.split_last() else {
            return;
        };
        for ev in events {
            for s in rest {
                let _ = s.send(ev.clone());
            }
            let _ = last.send(ev);
        }
    }
}

/// The timer armed at the engine's deadline; kept across inputs while the deadline holds.
struct Timer {
    at: Instant,
    sleep: BoxFuture<'static, ()>,
}

pub(crate) struct Driver {
    engine: Engine,
    clock: Arc<dyn Clock>,
    start: Instant,
    io: Arc<Io>,
    transport_rx: mpsc::Receiver<(ConnId, TransportEvent)>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    answer_tx: mpsc::UnboundedSender<Answer>,
    answer_rx: mpsc::UnboundedReceiver<Answer>,
    hub: Arc<Hub>,
    state_tx: watch::Sender<State>,
    tokens: Option<Arc<dyn TokenProvider>>,
    conns: HashMap<ConnId, ConnHandle>,
    pending: HashMap<String, Vec<oneshot::Sender<PublishOutcome>>>,
    timer: Option<Timer>,
    /// The last scheduled reconnect delay, for the next attempt's span.
    last_delay: Option<Duration>,
    /// Transport events taken in one wake-up.
    batch: Vec<(ConnId, TransportEvent)>,
    /// Events drained from the engine, not yet handed to subscribers.
    out: Vec<ClientEvent>,
}

/// At most this many queued transport events are taken per wake-up; each is still its own
/// engine input followed by a full drain, only the hand-off to subscribers is batched.
const TRANSPORT_BATCH: usize = 64;

/// What woke the driver.
enum Input {
    Command(Option<Command>),
    /// Transport events were moved into `Driver::batch`.
    Transport,
    Answer(Answer),
    Timeout,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        engine: Engine,
        clock: Arc<dyn Clock>,
        start: Instant,
        io: Arc<Io>,
        transport_rx: mpsc::Receiver<(ConnId, TransportEvent)>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        hub: Arc<Hub>,
        state_tx: watch::Sender<State>,
        tokens: Option<Arc<dyn TokenProvider>>,
    ) -> Driver {
        let (answer_tx, answer_rx) = mpsc::unbounded_channel();
        Driver {
            engine,
            clock,
            start,
            io,
            transport_rx,
            cmd_rx,
            answer_tx,
            answer_rx,
            hub,
            state_tx,
            tokens,
            conns: HashMap::new(),
            pending: HashMap::new(),
            timer: None,
            last_delay: None,
            batch: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Run until every [`Client`](crate::Client) handle is dropped.
    pub(crate) async fn run(mut self) {
        self.drain();
        self.publish();
        loop {
            self.arm_timer();
            let input = {
                let timer = async {
                    match self.timer.as_mut() {
                        Some(t) => (&mut t.sleep).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    cmd = self.cmd_rx.recv() => Input::Command(cmd),
                    _ = self.transport_rx.recv_many(&mut self.batch, TRANSPORT_BATCH), if !self.transport_rx.is_closed() => Input::Transport,
                    Some(answer) = self.answer_rx.recv() => Input::Answer(answer),
                    () = timer => Input::Timeout,
                }
            };
            let now = self.clock.now();
            match input {
                Input::Command(None) => {
                    self.engine.close(now);
                    self.drain();
                    self.publish();
                    tracing::debug!("all client handles dropped; driver ends");
                    return;
                }
                Input::Command(Some(cmd)) => self.on_command(now, cmd),
                Input::Transport => {
                    let mut batch = std::mem::take(&mut self.batch);
                    for (conn, ev) in batch.drain(..) {
                        if matches!(
                            ev,
                            TransportEvent::Closed { .. } | TransportEvent::Failed(_)
                        ) {
                            // The task ends by itself after reporting this.
                            self.conns.remove(&conn);
                        }
                        self.engine.handle_transport_event(now, conn, ev);
                        self.drain();
                    }
                    self.batch = batch;
                }
                Input::Answer(Answer::Token { request, result }) => {
                    self.engine
                        .handle_token(now, request, result.map(Token::new));
                }
                Input::Answer(Answer::Ready { probe, answer }) => {
                    self.engine.handle_ready(now, probe, answer);
                }
                Input::Timeout => {
                    self.timer = None;
                    // The timer may predate a later deadline (see `arm_timer`): only a due
                    // deadline is a timeout for the engine.
                    if self.engine.poll_timeout().is_some_and(|at| at <= now) {
                        self.engine.handle_timeout(now);
                    }
                }
            }
            self.drain();
            self.publish();
        }
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
                self.drain();
                self.publish();
                // The outbox stays in the store (CONN-3); nobody will hear about these here.
                self.pending.clear();
                let _ = reply.send(());
            }
        }
    }

    /// Perform every action, then take every event (STATE-3: the watch is updated first);
    /// the events reach subscribers at [`Driver::publish`].
    fn drain(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            self.perform(action);
        }
        let now = self.clock.now();
        let at = now.saturating_duration_since(self.start);
        let mut state_changed = false;
        while let Some(event) = self.engine.poll_event() {
            match &event {
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
                let conn = req.conn;
                let handle = transport::open(&self.io, req, span);
                self.conns.insert(conn, handle);
            }
            Action::Transmit { conn, frames } => {
                if let Some(h) = self.conns.get(&conn) {
                    h.send(ConnCommand::Transmit(frames));
                }
            }
            Action::Poll {
                conn,
                cursor,
                channels,
            } => {
                if let Some(h) = self.conns.get(&conn) {
                    h.send(ConnCommand::Poll { cursor, channels });
                }
            }
            Action::Close { conn, code, reason } => {
                if let Some(h) = self.conns.remove(&conn) {
                    h.close(code, reason);
                }
            }
            Action::FetchToken { request, forced } => {
                let tx = self.answer_tx.clone();
                match &self.tokens {
                    Some(p) => {
                        let fut = p.token(forced);
                        tokio::spawn(async move {
                            let result = fut.await;
                            let _ = tx.send(Answer::Token { request, result });
                        });
                    }
                    None => {
                        let _ = tx.send(Answer::Token {
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
                let tx = self.answer_tx.clone();
                let io = self.io.clone();
                tokio::spawn(async move {
                    let answer = http::probe_ready(io).await;
                    let _ = tx.send(Answer::Ready { probe, answer });
                });
            }
        }
    }
}
