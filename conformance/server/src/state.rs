//! The shared server state and the operator/test handle `ServerState` (publish, drain, faults, restart, tokens, log).

use crate::admission::TokenBucket;
use crate::auth::{AuthRefusal, AuthState, Identity};
use crate::config::ServerConfig;
use crate::error::{ServerError, StoreError};
use crate::faults::{Fault, FaultPlan, FaultRule};
use crate::log::{LogEntry, LogKind, ObservationLog};
use crate::store::{random_u64, ChannelStore, MemoryStore, MemoryStoreConfig, Published};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tether_engine::policy::PolicyWire;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

/// A new message was appended to `channel` with `seq` (wakes the connections subscribed to it);
/// `all`: announcements may have been lost, every connection catches up on every channel.
#[derive(Clone, Debug)]
pub(crate) struct Notice {
    pub(crate) channel: Arc<str>,
    pub(crate) seq: u64,
    pub(crate) all: bool,
}

/// What the operator asks of one live connection.
#[derive(Clone, Debug)]
pub(crate) enum Control {
    /// Send `drain` then close (DRAIN-3).
    Drain { from_ms: u64, to_ms: u64 },
    /// Close with this WebSocket code (SSE / long-poll: end the response).
    Close { code: u16, reason: String },
    /// The connection's token expired: WebSocket close 4001, SSE end, held poll 401 (AUTH-2).
    AuthExpired,
}

struct ConnEntry {
    transport: &'static str,
    token: Option<String>,
    opened_us: u64,
    ctrl: mpsc::Sender<Control>,
}

/// A live connection, as [`ServerState::connections`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnInfo {
    /// The connection id (as in the log).
    pub id: u64,
    /// `websocket`, `sse` or `long_poll` (a held poll).
    pub transport: &'static str,
    /// When it opened, µs since start.
    pub opened_us: u64,
}

/// Whether the listener accepts TCP connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListenMode {
    Listening,
    Stopped,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct DrainState {
    pub from_ms: u64,
    pub to_ms: u64,
    pub since: Instant,
}

/// A long-poll fault armed by a handshake poll, applied to the next poll with the same channels.
#[derive(Clone, Debug)]
pub(crate) struct LpFollowup {
    pub channels: String,
    pub fault: Fault,
    pub not_before: Instant,
}

pub(crate) struct Shared {
    pub cfg: ServerConfig,
    pub server_id: String,
    policy: RwLock<Option<PolicyWire>>,
    store: RwLock<Arc<dyn ChannelStore>>,
    pub log: Arc<ObservationLog>,
    pub faults: FaultPlan,
    drain: Mutex<Option<DrainState>>,
    ready: AtomicBool,
    admission: Option<Mutex<TokenBucket>>,
    auth: Mutex<AuthState>,
    conns: Mutex<HashMap<u64, ConnEntry>>,
    next_conn: AtomicU64,
    pub notify: broadcast::Sender<Notice>,
    /// The store announces appends itself (shared by several instances): see [`ChannelStore::attach`].
    pub store_fans_out: bool,
    /// Bumped to drop every connection (restart, shutdown).
    pub kill: watch::Sender<u64>,
    pub shutdown: watch::Sender<bool>,
    pub listen: watch::Sender<ListenMode>,
    /// The mode the accept loop has put into effect (it follows `listen` asynchronously).
    pub listen_applied: watch::Sender<ListenMode>,
    pub lp_followups: Mutex<VecDeque<LpFollowup>>,
    pub metrics: crate::metrics::Metrics,
    /// Refusals of browsers' WebSocket upgrades, for their diagnosis (WEB-3).
    pub ws_refusals: crate::diagnose::Refusals,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn store(&self) -> Arc<dyn ChannelStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn policy(&self) -> Option<PolicyWire> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn record(&self, e: LogEntry) {
        self.log.record(e);
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn draining(&self) -> Option<DrainState> {
        *lock(&self.drain)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// 503 retry-after while draining: the rest of the drain window, at least 1 s.
    pub fn drain_retry_after(&self, d: &DrainState) -> Duration {
        let left = Duration::from_millis(d.to_ms).saturating_sub(d.since.elapsed());
        left.max(Duration::from_secs(1))
    }

    /// The identity of a request's token: the runtime lists first (expired, forbidden), then
    /// the configured [`Authenticator`](crate::Authenticator), else the static token list.
    pub fn check_auth(&self, token: Option<&str>) -> Result<Identity, AuthRefusal> {
        {
            let a = lock(&self.auth);
            a.overrides(token)?;
            if self.cfg.authenticator.is_none() {
                return a.check(token).map(|()| Identity::anonymous());
            }
        }
        match &self.cfg.authenticator {
            Some(auth) => auth.0.authenticate(token),
            None => Ok(Identity::anonymous()),
        }
    }

    /// May `token` subscribe to `channel` (AUTH-5)?
    pub fn may_subscribe(&self, token: Option<&str>, channel: &str) -> bool {
        self.check_auth(token)
            .is_ok_and(|i| i.subscribe.allows(channel))
    }

    /// May `token` publish to `channel` (AUTH-5)?
    pub fn may_publish(&self, token: Option<&str>, channel: &str) -> bool {
        self.check_auth(token)
            .is_ok_and(|i| i.publish.allows(channel))
    }

    pub fn admit(&self) -> Result<(), Duration> {
        match &self.admission {
            Some(b) => lock(b).try_acquire(),
            None => Ok(()),
        }
    }

    /// Register a live connection; the returned guard unregisters it when dropped.
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        transport: &'static str,
        token: Option<String>,
    ) -> (ConnGuard, mpsc::Receiver<Control>) {
        let (tx, rx) = mpsc::channel(8);
        let opened_us = self.log.now_us();
        if self.cfg.authenticator.is_some() {
            // A token with an expiry: tell the connection when it passes (AUTH-2).
            if let Ok(Identity {
                expires_at: Some(at),
                ..
            }) = self.check_auth(token.as_deref())
            {
                let left = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(left) => { let _ = tx.send(Control::AuthExpired).await; }
                        _ = tx.closed() => {}
                    }
                });
            }
        }
        // DRAIN-3: a connection that registers once a drain began (its handshake or poll
        // passed the drain check just before, then waited on the store) is told at once;
        // one registered before is told by the drain's broadcast. Both under the registry's
        // lock, which the drain holds from setting its state to its last notice: exactly one
        // notice either way.
        let mut conns = lock(&self.conns);
        if let Some(d) = self.draining() {
            let _ = tx.try_send(Control::Drain {
                from_ms: d.from_ms,
                to_ms: d.to_ms,
            });
        }
        conns.insert(
            id,
            ConnEntry {
                transport,
                token,
                opened_us,
                ctrl: tx,
            },
        );
        drop(conns);
        (
            ConnGuard {
                shared: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Append with dedupe, then wake subscribers (OUTBOX-5).
    pub async fn publish_once(
        &self,
        id: &str,
        channel: &str,
        data: Value,
    ) -> Result<Published, StoreError> {
        let store = self.store();
        let p = store
            .publish_once(id, channel, data)
            .await
            .inspect_err(|e| self.store_failed(e))?;
        if p.duplicate {
            self.metrics.duplicate();
        } else {
            self.announce(&p.channel, p.seq);
        }
        Ok(p)
    }

    /// Append without dedupe, then wake subscribers.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<Published, StoreError> {
        let seq = self
            .store()
            .append(channel, data)
            .await
            .inspect_err(|e| self.store_failed(e))?;
        self.announce(channel, seq);
        Ok(Published {
            channel: channel.to_owned(),
            seq,
            duplicate: false,
        })
    }

    /// Count a store failure that is the backend's (not a refused channel).
    pub fn store_failed(&self, e: &StoreError) {
        if matches!(e, StoreError::Backend(_)) {
            self.metrics.store_error();
        }
    }

    /// Wake the local connections behind `channel`'s `seq`, unless the store does it.
    pub fn announce(&self, channel: &str, seq: u64) {
        self.metrics.published();
        if !self.store_fans_out {
            let _ = self.notify.send(Notice {
                channel: Arc::from(channel),
                seq,
                all: false,
            });
        }
    }

    /// The shared store is reachable (new handshakes are refused with `not_ready` otherwise).
    pub fn store_available(&self) -> bool {
        self.store().available()
    }

    fn broadcast_ctrl(&self, pred: impl Fn(&ConnEntry) -> bool, ctrl: Control) -> usize {
        tell(&lock(&self.conns), pred, ctrl)
    }
}

/// Send `ctrl` to the registered connections `pred` selects; how many took it.
fn tell(
    conns: &HashMap<u64, ConnEntry>,
    pred: impl Fn(&ConnEntry) -> bool,
    ctrl: Control,
) -> usize {
    conns
        .values()
        .filter(|c| pred(c) && c.ctrl.try_send(ctrl.clone()).is_ok())
        .count()
}

/// Unregisters a connection when dropped.
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.shared.conns).remove(&self.id);
    }
}

/// The handle to a server's state: what handlers share and what tests and operators drive.
/// Cheap to clone. [`Server`](crate::Server) derefs to it.
#[derive(Clone)]
pub struct ServerState {
    pub(crate) shared: Arc<Shared>,
}

impl ServerState {
    /// State with the default [`MemoryStore`].
    pub fn new(config: ServerConfig) -> Result<ServerState, ServerError> {
        let store = MemoryStore::new(memory_config(&config));
        ServerState::with_store(config, Arc::new(store))
    }

    /// State over another [`ChannelStore`] (for example one shared by several instances).
    pub fn with_store(
        config: ServerConfig,
        store: Arc<dyn ChannelStore>,
    ) -> Result<ServerState, ServerError> {
        config.validate()?;
        let admission = config.admission_per_sec.map(|rate| {
            let burst = config.admission_burst.unwrap_or(rate.max(1.0));
            Mutex::new(TokenBucket::new(rate, burst, config.admission_retry_after))
        });
        let auth = AuthState {
            required: config.tokens.is_some(),
            valid: config.tokens.iter().flatten().cloned().collect(),
            expired: Default::default(),
            forbidden: config.forbidden_tokens.iter().cloned().collect(),
        };
        let server_id = config
            .server_id
            .clone()
            .unwrap_or_else(|| format!("tether-{:08x}", random_u64() as u32));
        let (notify, _) = broadcast::channel(4096);
        let store_fans_out = store.attach(crate::store::FanoutSink::new(notify.clone()));
        let shared = Shared {
            server_id,
            policy: RwLock::new(config.policy.clone()),
            store: RwLock::new(store),
            log: Arc::new(ObservationLog::new(config.log_capacity)),
            faults: FaultPlan::default(),
            drain: Mutex::new(None),
            ready: AtomicBool::new(true),
            admission,
            auth: Mutex::new(auth),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            notify,
            store_fans_out,
            kill: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            listen: watch::channel(ListenMode::Listening).0,
            listen_applied: watch::channel(ListenMode::Listening).0,
            lp_followups: Mutex::new(VecDeque::new()),
            metrics: crate::metrics::Metrics::default(),
            ws_refusals: crate::diagnose::Refusals::default(),
            cfg: config,
        };
        Ok(ServerState {
            shared: Arc::new(shared),
        })
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.cfg
    }

    /// The hello's `server_id`.
    pub fn server_id(&self) -> &str {
        &self.shared.server_id
    }

    /// The current store epoch (changes on `restart(true)`).
    pub fn epoch(&self) -> u64 {
        self.shared.store().epoch()
    }

    /// The store in use.
    pub fn store(&self) -> Arc<dyn ChannelStore> {
        self.shared.store()
    }

    /// The observation log.
    pub fn log(&self) -> &ObservationLog {
        &self.shared.log
    }

    /// Publish from the server side (no dedupe); returns the message's seq.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<u64, ServerError> {
        let seq = self.shared.publish(channel, data).await?.seq;
        self.shared
            .record(LogEntry::new(LogKind::Action).detail(format!("publish {channel}#{seq}")));
        Ok(seq)
    }

    /// Publish from the server side with an idempotency key (OUTBOX-5): a repeated `id`
    /// appends nothing and answers the original channel and seq with `duplicate: true`.
    pub async fn publish_once(
        &self,
        id: &str,
        channel: &str,
        data: Value,
    ) -> Result<Published, ServerError> {
        let p = self.shared.publish_once(id, channel, data).await?;
        self.shared
            .record(LogEntry::new(LogKind::Action).detail(format!(
                "publish {}#{}{}",
                p.channel,
                p.seq,
                if p.duplicate { " (duplicate id)" } else { "" }
            )));
        Ok(p)
    }

    /// Change the policy announced in later hellos.
    pub fn set_policy(&self, policy: Option<PolicyWire>) {
        *self
            .shared
            .policy
            .write()
            .unwrap_or_else(|e| e.into_inner()) = policy;
    }

    /// Drain (DRAIN-1/3): send `drain{from_ms,to_ms}` to every live connection and close it,
    /// and refuse new handshakes with 503 until [`undrain`](Self::undrain). Returns how many
    /// connections were told.
    pub fn drain(&self, from_ms: u64, to_ms: u64) -> usize {
        // The registry's lock from the state to the last notice (see `register`).
        let conns = lock(&self.shared.conns);
        *lock(&self.shared.drain) = Some(DrainState {
            from_ms,
            to_ms,
            since: Instant::now(),
        });
        let n = tell(&conns, |_| true, Control::Drain { from_ms, to_ms });
        drop(conns);
        self.shared.record(
            LogEntry::new(LogKind::Action)
                .detail(format!("drain {from_ms}..{to_ms} to {n} connections")),
        );
        n
    }

    /// Accept handshakes again after a drain.
    pub fn undrain(&self) {
        *lock(&self.shared.drain) = None;
        self.shared
            .record(LogEntry::new(LogKind::Action).detail("undrain"));
    }

    /// True while draining.
    pub fn is_draining(&self) -> bool {
        self.shared.draining().is_some()
    }

    /// Set what `GET /ready` says (it also says not ready while draining).
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::Relaxed);
    }

    /// Close every live connection with a WebSocket close code (SSE and polls: end the response).
    pub fn close_all(&self, code: u16, reason: &str) -> usize {
        self.shared.broadcast_ctrl(
            |_| true,
            Control::Close {
                code,
                reason: reason.to_owned(),
            },
        )
    }

    /// Simulated restart: drop every connection at once (no close frame); with `lose_state`
    /// the store is replaced by an empty [`MemoryStore`] with a new epoch (not a store shared
    /// with other instances: that one outlives an instance, so it is kept).
    pub fn restart(&self, lose_state: bool) {
        if lose_state && !self.shared.store_fans_out {
            let store = MemoryStore::new(memory_config(&self.shared.cfg));
            *self.shared.store.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(store);
        }
        lock(&self.shared.lp_followups).clear();
        self.shared.kill.send_modify(|g| *g += 1);
        self.shared.record(
            LogEntry::new(LogKind::Action).detail(format!("restart lose_state={lose_state}")),
        );
    }

    /// Close the listening socket: new TCP connections are refused by the OS (only with
    /// [`Server`](crate::Server), which owns the listener).
    pub fn stop_listening(&self) {
        self.shared.listen.send_replace(ListenMode::Stopped);
    }

    /// Reopen the listening socket on the same address.
    pub fn resume_listening(&self) {
        self.shared.listen.send_replace(ListenMode::Listening);
    }

    /// Wait until the accept loop has put the requested listen mode into effect
    /// ([`stop_listening`](Self::stop_listening) and
    /// [`resume_listening`](Self::resume_listening) take effect asynchronously).
    pub async fn listener_settled(&self) {
        let mut applied = self.shared.listen_applied.subscribe();
        loop {
            if *applied.borrow_and_update() == *self.shared.listen.borrow() {
                return;
            }
            if applied.changed().await.is_err() {
                return;
            }
        }
    }

    /// Accept `token` (when tokens are required).
    pub fn add_token(&self, token: &str) {
        let mut a = lock(&self.shared.auth);
        a.expired.remove(token);
        a.valid.insert(token.to_owned());
    }

    /// Expire `token`: later requests with it get 401 `auth_expired`; live WebSocket
    /// connections using it are closed with 4001, SSE streams end, held polls answer 401.
    pub fn expire_token(&self, token: &str) -> usize {
        {
            let mut a = lock(&self.shared.auth);
            a.valid.remove(token);
            a.expired.insert(token.to_owned());
        }
        let n = self
            .shared
            .broadcast_ctrl(|c| c.token.as_deref() == Some(token), Control::AuthExpired);
        self.shared.record(
            LogEntry::new(LogKind::Action).detail(format!("expire_token *** ({n} connections)")),
        );
        n
    }

    /// Refuse `token` with 403 `forbidden` from now on (live connections are not touched).
    pub fn forbid_token(&self, token: &str) {
        lock(&self.shared.auth).forbidden.insert(token.to_owned());
    }

    /// The live connections.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let mut v: Vec<ConnInfo> = lock(&self.shared.conns)
            .iter()
            .map(|(id, c)| ConnInfo {
                id: *id,
                transport: c.transport,
                opened_us: c.opened_us,
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Replace the fault plan. Actions among the rules are carried out at once.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.shared.faults.clear();
        lock(&self.shared.lp_followups).clear();
        for r in rules {
            self.apply_fault(r);
        }
    }

    /// Add one rule to the plan, or carry it out at once if it is an action.
    pub fn apply_fault(&self, rule: FaultRule) {
        self.shared
            .record(LogEntry::new(LogKind::Fault).detail(format!(
                "plan {}",
                serde_json::to_string(&rule).unwrap_or_default()
            )));
        match rule.fault {
            Fault::StopListening { for_ms } => {
                self.stop_listening();
                if let Some(ms) = for_ms {
                    let st = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        st.resume_listening();
                    });
                }
            }
            Fault::ResumeListening => self.resume_listening(),
            Fault::Restart {
                lose_state,
                down_ms,
            } => {
                if down_ms > 0 {
                    self.stop_listening();
                }
                self.restart(lose_state);
                if down_ms > 0 {
                    let st = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(down_ms)).await;
                        st.resume_listening();
                    });
                }
            }
            Fault::Drain { from_ms, to_ms } => {
                self.drain(from_ms, to_ms);
            }
            Fault::Undrain => self.undrain(),
            Fault::ExpireToken { token } => {
                self.expire_token(&token);
            }
            Fault::Clear => self.clear_faults(),
            _ => self.shared.faults.push(rule),
        }
    }

    /// Parse a JSON array of rules (scenario data) and [`set_faults`](Self::set_faults).
    pub fn set_faults_json(&self, json: &str) -> Result<(), serde_json::Error> {
        let rules: Vec<FaultRule> = serde_json::from_str(json)?;
        self.set_faults(rules);
        Ok(())
    }

    /// Remove every queued fault and reopen the listener.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
        lock(&self.shared.lp_followups).clear();
        self.resume_listening();
    }

    /// The rules still in force (one-shot rules with their remaining counts).
    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.faults.rules()
    }

    /// The Prometheus metrics text (what `GET /metrics` answers).
    pub fn metrics_text(&self) -> String {
        let sh = &self.shared;
        let connections = {
            let conns = lock(&sh.conns);
            crate::metrics::by_transport(conns.values().map(|c| c.transport))
        };
        let store = sh.store();
        sh.metrics.render(&crate::metrics::Gauges {
            connections,
            store_available: store.available(),
            draining: sh.draining().is_some(),
            store: store.counters(),
        })
    }

    /// Handshakes accepted so far (every transport).
    pub fn handshakes(&self) -> u64 {
        self.shared.metrics.handshakes()
    }

    /// The router serving the endpoints (see [`router`](crate::router)).
    pub fn router(&self) -> axum::Router {
        crate::router(self.clone())
    }
}

pub(crate) fn memory_config(cfg: &ServerConfig) -> MemoryStoreConfig {
    MemoryStoreConfig {
        ring_capacity: cfg.ring_capacity,
        max_channels: cfg.max_channels,
        dedupe_ttl: cfg.dedupe_ttl,
        dedupe_capacity: cfg.dedupe_capacity,
    }
}

/// A handle for the application's own code to publish (cheap to clone; what
/// [`ServerState::publisher`] gives). Publishes go through the store like every other, so
/// with a shared store they reach the connections of every instance.
#[derive(Clone)]
pub struct Publisher {
    state: ServerState,
}

impl Publisher {
    /// Append `data` to `channel`; the message's seq.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<u64, ServerError> {
        self.state.publish(channel, data).await
    }

    /// Append with an idempotency key (OUTBOX-5): a repeated `id` appends nothing and
    /// answers the original channel and seq, `duplicate: true`.
    pub async fn publish_once(
        &self,
        id: &str,
        channel: &str,
        data: Value,
    ) -> Result<Published, ServerError> {
        self.state.publish_once(id, channel, data).await
    }
}

impl ServerState {
    /// A publish handle for the application's code.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            state: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drains(rx: &mut mpsc::Receiver<Control>) -> usize {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter(|c| matches!(c, Control::Drain { .. }))
            .count()
    }

    #[tokio::test]
    async fn drain_3_a_connection_registered_before_or_after_the_drain_began_is_told_once() {
        let state = ServerState::new(ServerConfig::default()).expect("state");
        let (_before, mut told_before) = state.shared.register(1, "sse", None);
        assert_eq!(state.drain(0, 600), 1);
        // Passed the handshake's drain check before the drain, registered after it (a poll
        // that waited on the store in between): told at registration.
        let (_after, mut told_after) = state.shared.register(2, "long_poll", None);
        assert_eq!(drains(&mut told_before), 1);
        assert_eq!(drains(&mut told_after), 1);
        state.undrain();
        let (_later, mut not_told) = state.shared.register(3, "websocket", None);
        assert_eq!(drains(&mut not_told), 0);
    }
}
