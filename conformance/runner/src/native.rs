//! The native adapter: speaks the adapter protocol on stdin/stdout and drives the `tether` client (translation only).
//!
//! `--break MODE` corrupts behaviour at the adapter boundary to prove the suite can fail:
//! `no-jitter` (fixed delays), `no-cursor` (a fresh client on every drop), `ignore-drain`
//! (reconnect at once on a drain), `retry-terminal` (connect again after `Failed`),
//! `no-backoff` (a client on the same store connects at once instead of waiting the delay).
//! `slow-close` is no defect but a slow adapter: the first `close` waits 300 ms before
//! closing while the client keeps running (a JVM or a browser adapter warming up).

use crate::protocol::{self, AuthScript, Command, Hello, TokenStep};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tether::{
    Cause, Client, DropPolicy, DropReason, Event, EventStream, MemoryStore, Network, PolicyWire,
    State, TokenError, TransportKind,
};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A deliberate defect (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    NoJitter,
    NoCursor,
    IgnoreDrain,
    RetryTerminal,
    NoBackoff,
    /// Not a defect: the first `close` is 300 ms late (a slow adapter); the suite must still pass.
    SlowClose,
}

impl Break {
    /// Parse a `--break` value.
    pub fn parse(s: &str) -> Option<Break> {
        match s {
            "no-jitter" => Some(Break::NoJitter),
            "no-cursor" => Some(Break::NoCursor),
            "ignore-drain" => Some(Break::IgnoreDrain),
            "retry-terminal" => Some(Break::RetryTerminal),
            "no-backoff" => Some(Break::NoBackoff),
            "slow-close" => Some(Break::SlowClose),
            _ => None,
        }
    }
}

/// Why the adapter stopped.
#[derive(Debug, Error)]
pub enum AdapterError {
    #[error("protocol: {0}")]
    Protocol(#[from] protocol::ProtocolError),
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The adapter's command line: `[--break MODE]`.
pub fn parse_args(args: &[String]) -> Result<Option<Break>, String> {
    let mut brk = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--break" => {
                let v = it.next().ok_or("--break needs a value")?;
                brk = Some(Break::parse(v).ok_or_else(|| {
                    format!("unknown --break {v} (no-jitter|no-cursor|ignore-drain|retry-terminal|no-backoff|slow-close)")
                })?);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(brk)
}

/// Run the adapter on this process's stdin/stdout until `shutdown` or end of input.
pub fn run_stdio(brk: Option<Break>) -> Result<(), AdapterError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = rt.block_on(serve(brk));
    // The stdin reader sits in a blocking read: do not wait for it.
    rt.shutdown_background();
    r
}

/// A store shared by successive clients of one configuration (capability `persistence`);
/// `tether_engine`'s blanket `Store` impl for `Arc<Mutex<S>>` makes it a store.
type SharedStore = Arc<Mutex<MemoryStore>>;

/// What `configure` said, kept to rebuild clients.
#[derive(Clone)]
struct Setup {
    endpoint: String,
    transports: Vec<TransportKind>,
    policy: PolicyWire,
    seed: Option<u64>,
    auth: Option<AuthScript>,
    drop_policy: DropPolicy,
    max_frame_bytes: Option<usize>,
}

/// The live client and what is needed to rebuild it.
struct Session {
    setup: Setup,
    store: SharedStore,
    client: Client,
    events: EventStream,
    built: Instant,
    channels: Vec<String>,
}

struct Adapter {
    start: Instant,
    out: mpsc::UnboundedSender<Value>,
    tokens: mpsc::UnboundedSender<Value>,
    brk: Option<Break>,
    session: Option<Session>,
    /// `close` commands answered so far (`slow-close` slows the first).
    closes: u32,
}

async fn serve(brk: Option<Break>) -> Result<(), AdapterError> {
    let start = Instant::now();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(v) = out_rx.recv().await {
            if protocol::write_frame(&mut stdout, &v).await.is_err() {
                break;
            }
        }
    });
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Result<Command, String>>();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        while let Ok(Some(v)) = protocol::read_frame(&mut stdin).await {
            let parsed = serde_json::from_value::<Command>(v.clone()).map_err(|e| {
                let id = v.get("id").and_then(Value::as_u64).unwrap_or(0);
                format!("{id}\u{0}{e}")
            });
            if cmd_tx.send(parsed).is_err() {
                break;
            }
        }
    });
    let hello = Hello {
        adapter: "tether-native".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: protocol::PROTOCOL_VERSION,
        capabilities: protocol::CAPABILITIES
            .iter()
            .filter(|c| !protocol::FORMS.contains(c))
            .map(|c| c.to_string())
            .collect(),
    };
    let _ = out_tx.send(with_type(
        "hello",
        serde_json::to_value(&hello).unwrap_or_default(),
    ));
    let (tok_tx, mut tok_rx) = mpsc::unbounded_channel::<Value>();
    let mut a = Adapter {
        start,
        out: out_tx,
        tokens: tok_tx,
        brk,
        session: None,
        closes: 0,
    };
    loop {
        tokio::select! {
            cmd = cmd_rx.recv() => match cmd {
                None => break,
                Some(Err(e)) => {
                    let (id, msg) = e.split_once('\u{0}').unwrap_or(("0", &e));
                    a.reply_err(id.parse().unwrap_or(0), "bad_command", msg);
                }
                Some(Ok(Command::Shutdown { id })) => {
                    a.teardown(true).await;
                    a.flush_events();
                    a.reply_ok(id, Map::new());
                    break;
                }
                Some(Ok(cmd)) => a.command(cmd).await,
            },
            ev = next_event(&mut a.session) => match ev {
                Some(ev) => a.forward(ev).await,
                None => {
                    // The client's driver ended; forget the stream but keep the session data.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            Some(tok) = tok_rx.recv() => { let _ = a.out.send(tok); }
        }
    }
    drop(a);
    let _ = writer.await;
    Ok(())
}

async fn next_event(session: &mut Option<Session>) -> Option<(Duration, tether::ClientEvent)> {
    match session {
        Some(s) => {
            let built = s.built;
            s.events.recv().await.map(|e| (built.elapsed(), e))
        }
        None => std::future::pending().await,
    }
}

fn with_type(ty: &str, mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert("type".into(), json!(ty));
    }
    v
}

fn transports(names: &[String]) -> Result<Vec<TransportKind>, String> {
    names
        .iter()
        .map(|n| TransportKind::parse(n).ok_or_else(|| format!("unknown transport {n}")))
        .collect()
}

impl Adapter {
    fn reply_ok(&self, id: u64, mut result: Map<String, Value>) {
        result.insert("type".into(), json!("ok"));
        result.insert("id".into(), json!(id));
        let _ = self.out.send(Value::Object(result));
    }

    fn reply_err(&self, id: u64, code: &str, message: &str) {
        let _ = self
            .out
            .send(json!({"type":"error","id":id,"code":code,"message":message}));
    }

    /// Write out every event the client has emitted so far (barrier semantics).
    fn flush_events(&mut self) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let mut pending = Vec::new();
        while let Some(e) = s.events.try_recv() {
            pending.push(e);
        }
        let base = s.built.duration_since(self.start);
        for e in pending {
            let t = (base + e.at).as_secs_f64() * 1000.0;
            let _ = self.out.send(event_json(t, &e.event));
        }
    }

    async fn command(&mut self, cmd: Command) {
        let id = cmd.id();
        match self.execute(cmd).await {
            Ok(result) => self.reply_ok(id, result),
            Err((code, message)) => self.reply_err(id, &code, &message),
        }
    }

    async fn execute(&mut self, cmd: Command) -> Result<Map<String, Value>, (String, String)> {
        let none = Map::new();
        let call = |e: tether::ClientError| (e.code().as_str().to_owned(), e.to_string());
        match cmd {
            Command::Configure {
                endpoint,
                transports: ts,
                policy,
                seed,
                auth,
                drop_policy,
                max_frame_bytes,
                ..
            } => {
                self.teardown(true).await;
                self.flush_events();
                let transports = transports(&ts).map_err(|m| ("bad_request".into(), m))?;
                let policy: PolicyWire = serde_json::from_value(Value::Object(policy))
                    .map_err(|e| ("bad_request".to_owned(), e.to_string()))?;
                let drop_policy = match drop_policy.as_deref() {
                    None | Some("drop_oldest") => DropPolicy::DropOldest,
                    Some("reject_new") => DropPolicy::RejectNew,
                    Some(other) => {
                        return Err(("bad_request".into(), format!("drop_policy {other}")))
                    }
                };
                let setup = Setup {
                    endpoint,
                    transports,
                    policy,
                    seed,
                    auth,
                    drop_policy,
                    max_frame_bytes,
                };
                let s = self.build(setup, SharedStore::default(), Vec::new())?;
                self.session = Some(s);
                Ok(none)
            }
            Command::Connect { .. } => {
                self.client()?.connect().map_err(call)?;
                Ok(none)
            }
            Command::Subscribe { channel, .. } => {
                self.client()?.subscribe(&channel).await.map_err(call)?;
                if let Some(s) = self.session.as_mut() {
                    if !s.channels.contains(&channel) {
                        s.channels.push(channel);
                    }
                }
                Ok(none)
            }
            Command::Unsubscribe { channel, .. } => {
                self.client()?.unsubscribe(&channel).await.map_err(call)?;
                if let Some(s) = self.session.as_mut() {
                    s.channels.retain(|c| c != &channel);
                }
                Ok(none)
            }
            Command::Publish {
                channel, data, key, ..
            } => {
                let client = self.client()?;
                let handle = match key {
                    Some(k) => client.publish_with_id(&channel, data, k).await,
                    None => client.publish(&channel, data).await,
                }
                .map_err(call)?;
                let mut m = Map::new();
                m.insert("key".into(), json!(handle.id()));
                Ok(m)
            }
            Command::SetNetwork { state, .. } => {
                let n = match state.as_str() {
                    "online" => Network::Online,
                    "offline" => Network::Offline,
                    "changed" => Network::Changed,
                    other => return Err(("bad_request".into(), format!("network {other}"))),
                };
                self.client()?.set_network(n).map_err(call)?;
                Ok(none)
            }
            Command::Close { .. } => {
                self.closes += 1;
                if self.brk == Some(Break::SlowClose) && self.closes == 1 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                self.client()?.close().await.map_err(call)?;
                Ok(none)
            }
            Command::Barrier { .. } => {
                tokio::task::yield_now().await;
                self.flush_events();
                Ok(none)
            }
            Command::State { .. } => {
                let st = self.client()?.state();
                self.flush_events();
                let mut m = Map::new();
                m.insert("state".into(), state_json(&st));
                Ok(m)
            }
            Command::Restart { .. } => {
                let Some(old) = self.session.take() else {
                    return Err(("closed".into(), "not configured".into()));
                };
                let (setup, store) = (old.setup.clone(), old.store.clone());
                // A crash, not a close: drop the handle (the driver ends on its own).
                drop(old);
                let s = self.build(setup, store, Vec::new())?;
                self.session = Some(s);
                Ok(none)
            }
            Command::Shutdown { .. } => Ok(none),
        }
    }

    fn client(&self) -> Result<Client, (String, String)> {
        self.session
            .as_ref()
            .map(|s| s.client.clone())
            .ok_or_else(|| ("closed".into(), "send `configure` first".into()))
    }

    async fn teardown(&mut self, close: bool) {
        if let Some(s) = self.session.as_ref() {
            if close {
                let _ = tokio::time::timeout(Duration::from_secs(2), s.client.close()).await;
            }
        }
        if close {
            self.flush_events();
        }
        self.session = None;
    }

    fn build(
        &self,
        setup: Setup,
        store: SharedStore,
        channels: Vec<String>,
    ) -> Result<Session, (String, String)> {
        let mut policy = setup.policy.clone();
        if self.brk == Some(Break::NoJitter) {
            // Broken on purpose: a fixed delay (floor = cap = base) instead of full jitter.
            let base = policy.base_ms.unwrap_or(1000.0);
            policy.floor_ms = Some(base);
            policy.cap_ms = Some(base);
            policy.multiplier = Some(1.0);
        }
        let mut b = Client::builder(setup.endpoint.clone())
            .transports(&setup.transports)
            .policy(policy)
            .drop_policy(setup.drop_policy)
            .store(store.clone());
        if let Some(seed) = setup.seed {
            b = b.seed(seed);
        }
        if let Some(m) = setup.max_frame_bytes {
            b = b.max_frame_bytes(m);
        }
        if let Some(script) = setup.auth.clone() {
            let calls = Arc::new(Mutex::new(0usize));
            let tx = self.tokens.clone();
            let start = self.start;
            b = b.token_provider(move |forced: bool| {
                let n = {
                    let mut g = calls.lock().unwrap_or_else(|e| e.into_inner());
                    *g += 1;
                    *g - 1
                };
                let t_ms = start.elapsed().as_secs_f64() * 1000.0;
                let _ = tx.send(json!({"type":"token_requested","t_ms":t_ms,"forced":forced}));
                let step = script
                    .tokens
                    .get(n)
                    .or(script.tokens.last())
                    .cloned()
                    .unwrap_or(TokenStep::Error {
                        error: "empty token script".into(),
                        fatal: true,
                    });
                async move {
                    match step {
                        TokenStep::Token(t) => Ok(t),
                        TokenStep::Error { error, fatal } => Err(TokenError {
                            fatal,
                            message: error,
                        }),
                    }
                }
            });
        }
        let client = b
            .build()
            .map_err(|e| (e.code().as_str().to_owned(), e.to_string()))?;
        let events = client.events();
        Ok(Session {
            setup,
            store,
            client,
            events,
            built: Instant::now(),
            channels,
        })
    }

    /// Forward one client event, then apply the `--break` defect if it is triggered.
    async fn forward(&mut self, (_, ev): (Duration, tether::ClientEvent)) {
        let Some(s) = self.session.as_ref() else {
            return;
        };
        let t = (s.built.duration_since(self.start) + ev.at).as_secs_f64() * 1000.0;
        let _ = self.out.send(event_json(t, &ev.event));
        match (self.brk, &ev.event) {
            (
                Some(Break::NoCursor),
                Event::StateChanged {
                    to: State::Reconnecting { .. },
                    cause,
                    ..
                },
            ) if !matches!(cause, Cause::UserClose | Cause::NetworkOffline) => {
                // Broken on purpose: a brand-new client (no cursor, empty store) on every drop.
                self.rebuild(false).await;
            }
            (
                Some(Break::IgnoreDrain),
                Event::ReconnectScheduled {
                    cause: Cause::Drain,
                    ..
                },
            ) => {
                // Broken on purpose: reconnect at once instead of inside the drain window.
                self.rebuild(true).await;
            }
            (Some(Break::NoBackoff), Event::ReconnectScheduled { .. }) => {
                // Broken on purpose: the declared delay is not waited; a client with the
                // same store connects at once.
                self.rebuild(true).await;
            }
            (
                Some(Break::RetryTerminal),
                Event::StateChanged {
                    to: State::Failed { .. },
                    ..
                },
            ) => {
                // Broken on purpose: retry after a terminal failure.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Some(s) = self.session.as_ref() {
                    let _ = s.client.connect();
                }
            }
            _ => {}
        }
    }

    async fn rebuild(&mut self, keep_store: bool) {
        let Some(old) = self.session.take() else {
            return;
        };
        let store = if keep_store {
            old.store.clone()
        } else {
            SharedStore::default()
        };
        let (setup, channels) = (old.setup.clone(), old.channels.clone());
        drop(old);
        let Ok(s) = self.build(setup, store, channels.clone()) else {
            return;
        };
        for c in &channels {
            let _ = s.client.subscribe(c).await;
        }
        let _ = s.client.connect();
        self.session = Some(s);
    }
}

/// The protocol's state object (`to` of a `state` event, answer of `state`).
pub fn state_json(s: &State) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(s.name()));
    match s {
        State::Connecting { attempt, transport } => {
            m.insert("attempt".into(), json!(attempt));
            m.insert("transport".into(), json!(transport.as_str()));
        }
        State::Connected { transport } => {
            m.insert("transport".into(), json!(transport.as_str()));
        }
        State::Degraded { transport, reason } => {
            m.insert("transport".into(), json!(transport.as_str()));
            m.insert("reason".into(), json!(reason.as_str()));
        }
        State::Reconnecting {
            attempt,
            delay,
            cause,
        } => {
            m.insert("attempt".into(), json!(attempt));
            m.insert(
                "delay_ms".into(),
                delay.map_or(Value::Null, |d| json!(d.as_secs_f64() * 1000.0)),
            );
            m.insert("cause".into(), json!(cause.as_str()));
        }
        State::Failed { reason } => {
            m.insert("reason".into(), json!(reason.as_str()));
        }
        State::Idle | State::Closed => {}
    }
    Value::Object(m)
}

fn cause_code(c: &Cause) -> Option<Value> {
    match c {
        Cause::TransportClosed { code } => Some(code.map_or(Value::Null, |c| json!(c))),
        Cause::Terminal { code } => Some(json!(code.as_str())),
        _ => None,
    }
}

/// Translate one client event into a protocol event.
pub fn event_json(t_ms: f64, ev: &Event) -> Value {
    let mut v = match ev {
        Event::StateChanged { from, to, cause } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("state"));
            m.insert("from".into(), json!(from.name()));
            m.insert("to".into(), json!(to.name()));
            m.insert("cause".into(), json!(cause.as_str()));
            if let Some(c) = cause_code(cause) {
                m.insert("cause_code".into(), c);
            }
            if let Value::Object(detail) = state_json(to) {
                for (k, v) in detail {
                    if k != "name" && k != "cause" {
                        m.insert(k, v);
                    }
                }
            }
            Value::Object(m)
        }
        Event::ReconnectScheduled {
            attempt,
            delay,
            cause,
        } => json!({"type":"reconnect_scheduled","attempt":attempt,
            "delay_ms":delay.as_secs_f64()*1000.0,"cause":cause.as_str()}),
        Event::TransportSelected { transport } => {
            json!({"type":"transport_selected","transport":transport.as_str()})
        }
        Event::Message { channel, seq, data } => {
            json!({"type":"message","channel":channel,"seq":seq,"data":data})
        }
        Event::Reset { channel, reason } => {
            json!({"type":"reset","channel":channel,"reason":reason.as_str()})
        }
        Event::Acked { id, seq } => json!({"type":"acked","id":id,"seq":seq}),
        Event::Dropped { id, reason } => {
            let mut v = json!({"type":"dropped","id":id,"reason":reason.as_str()});
            if let DropReason::Rejected { code } = reason {
                v["code"] = json!(code);
            }
            v
        }
        Event::Fallback { from, to, reason } => json!({"type":"fallback","from":from.as_str(),
            "to":to.as_str(),"reason":reason.as_str()}),
        Event::PolicyApplied { clamped } => json!({"type":"policy_applied","clamped":
            clamped.iter().map(|c| json!({"field":c.field,"requested":c.requested,"applied":c.applied})).collect::<Vec<_>>()}),
        Event::Error { code, detail } => {
            json!({"type":"error","code":code.as_str(),"detail":detail})
        }
        // An event added to the client after this adapter: reported, never dropped silently.
        other => json!({"type":"other","debug":format!("{other:?}")}),
    };
    v["t_ms"] = json!(t_ms);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_translate() {
        let v = event_json(
            1.5,
            &Event::StateChanged {
                from: State::Connecting {
                    attempt: 0,
                    transport: TransportKind::WebSocket,
                },
                to: State::Reconnecting {
                    attempt: 1,
                    delay: Some(Duration::from_millis(20)),
                    cause: Cause::TransportClosed { code: Some(4000) },
                },
                cause: Cause::TransportClosed { code: Some(4000) },
            },
        );
        assert_eq!(v["type"], "state");
        assert_eq!(v["to"], "reconnecting");
        assert_eq!(v["cause"], "transport_closed");
        assert_eq!(v["cause_code"], 4000);
        assert_eq!(v["attempt"], 1);
        assert_eq!(v["delay_ms"], 20.0);
        assert_eq!(v["t_ms"], 1.5);
        assert_eq!(
            parse_args(&["--break".into(), "no-jitter".into()]),
            Ok(Some(Break::NoJitter))
        );
        assert!(parse_args(&["--x".into()]).is_err());
    }
}
