//! Runs one case: its own server (embedded on port 0, a cluster, or a separate process), optionally the fault proxy in front of it, its own adapter process, the steps, then the checks.

use crate::adapter::{Adapter, AdapterCmd, AdapterError};
use crate::checks::{self, Ctx, HttpRecord, Mark};
use crate::cluster::{self, Cluster};
use crate::net::{Net, NetEvent};
use crate::outcome::Raw;
use crate::protocol::{AuthScript, Command, Hello};
use crate::scenario::{merge, Case, CheckSpec, ClientSetup, Step};
use crate::server_proc::{ServerCmd, ServerProc};
use crate::traffic::{Published, Publisher, Traffic};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tether_engine::PolicyWire;
use tether_server::{FaultRule, ObservationLog, Server, ServerConfig};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reply timeout of ordinary commands.
const CALL: Duration = Duration::from_secs(10);

/// How long an adapter may take to say hello: a browser adapter opens its page first, which
/// takes seconds on a busy 2-core machine (ADAPTERS.md §2).
pub const HELLO: Duration = Duration::from_secs(30);

/// Why a case stopped before its checks.
#[derive(Debug, Error)]
pub enum StepError {
    #[error("{0}")]
    Adapter(#[from] AdapterError),
    #[error("server: {0}")]
    Server(String),
    #[error("timed out after {timeout_ms} ms waiting for {count} × {pattern}")]
    WaitTimeout {
        pattern: String,
        count: u32,
        timeout_ms: u64,
    },
    #[error("adapter output ended while waiting for {pattern}: {why}")]
    WaitGone { pattern: String, why: String },
    #[error("{0}")]
    Expect(String),
    #[error("bad setup: {0}")]
    Setup(String),
}

/// What a case run produced.
pub struct CaseOutput {
    pub raw: Raw,
    pub details: Vec<String>,
    pub metrics: Map<String, Value>,
    pub stderr: String,
    /// The adapter's `hello` (its name, version and capabilities), when it started.
    pub hello: Option<Hello>,
}

/// The program process-server cases run (`--server-bin`; default: this runner, `__server`).
static SERVER_BIN: OnceLock<ServerCmd> = OnceLock::new();

/// Run process-server cases with the `tether-server` binary at `path` (first call wins).
pub fn set_server_bin(path: std::path::PathBuf) {
    let _ = SERVER_BIN.set(ServerCmd {
        program: path,
        args: Vec::new(),
    });
}

fn server_cmd() -> Result<ServerCmd, String> {
    match SERVER_BIN.get() {
        Some(c) => Ok(c.clone()),
        None => ServerCmd::builtin(),
    }
}

/// What a case runs against: one embedded server, a cluster of instances on Redis, or one
/// server in its own process (killable).
pub enum Target {
    Embedded(Server),
    Cluster(Box<Cluster>),
    Process(Box<ProcTarget>),
}

/// A server in its own process and the case log its log streams into.
pub struct ProcTarget {
    pub proc: ServerProc,
    pub log: Arc<ObservationLog>,
}

impl Target {
    fn now_us(&self) -> u64 {
        match self {
            Target::Embedded(s) => s.log().now_us(),
            Target::Cluster(c) => c.now_us(),
            Target::Process(p) => p.log.now_us(),
        }
    }

    /// The endpoint clients use.
    fn endpoint_url(&self) -> String {
        match self {
            Target::Embedded(s) => s.endpoint_url(),
            Target::Cluster(c) => c.endpoint_url(),
            Target::Process(p) => p.proc.endpoint_url(),
        }
    }

    /// Where the runner's own requests go (the balancer for a cluster).
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Target::Embedded(s) => s.addr(),
            Target::Cluster(c) => c.balancer_addr(),
            Target::Process(p) => p.proc.addr(),
        }
    }

    async fn shutdown(self) {
        match self {
            Target::Embedded(s) => s.shutdown().await,
            Target::Cluster(c) => drop(c),
            Target::Process(p) => p.proc.shutdown().await,
        }
    }
}

struct Run<'a> {
    case: &'a Case,
    server: Target,
    adapter: Arc<Adapter>,
    /// The fault proxy between the client and the server (`server.proxy`).
    net: Option<Net>,
    traffic: Option<Traffic>,
    published: Vec<Published>,
    /// The case clock, for background tasks.
    now_us: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// The `mix` steps' generator (seeded with the case seed).
    rng: u64,
    client: ClientSetup,
    /// Where waits start scanning: the trace length when the first action after the last wait ran.
    since: usize,
    /// True once a wait ran since `since` was set.
    waited: bool,
    marks: Vec<Mark>,
    http: Vec<HttpRecord>,
    client_counters: BTreeMap<String, u64>,
    server_counters: BTreeMap<String, u64>,
    keys: Vec<String>,
}

/// Run `case` against a fresh server and a fresh adapter started with `cmd`.
pub async fn run_case(case: &Case, cmd: &AdapterCmd) -> CaseOutput {
    let fail = |m: String| CaseOutput {
        raw: Raw::Fail(m),
        details: Vec::new(),
        metrics: Map::new(),
        stderr: String::new(),
        hello: None,
    };
    let (server, now_us): (Target, Arc<dyn Fn() -> u64 + Send + Sync>) = match &case.server.cluster
    {
        Some(setup) => {
            if !cluster::redis::installed() {
                return CaseOutput {
                    raw: Raw::Unsupported(vec!["redis-server".into()]),
                    details: Vec::new(),
                    metrics: Map::new(),
                    stderr: String::new(),
                    hello: None,
                };
            }
            let flags = cluster::InstanceFlags {
                heartbeat_ms: case.server.heartbeat_ms,
                poll_hold_ms: case.server.poll_hold_ms,
                ring: case.server.ring,
                policy: case
                    .server
                    .policy
                    .as_ref()
                    .map(|p| Value::Object(p.clone()).to_string()),
            };
            match Cluster::start(setup, &flags).await {
                Ok(c) => {
                    let clock = c.clock;
                    (
                        Target::Cluster(Box::new(c)),
                        Arc::new(move || clock.elapsed().as_micros() as u64),
                    )
                }
                Err(e) => return fail(format!("cluster did not start: {e}")),
            }
        }
        None if case.server.process => match start_process(case).await {
            Ok(p) => {
                let log = p.log.clone();
                (Target::Process(Box::new(p)), Arc::new(move || log.now_us()))
            }
            Err(e) => return fail(format!("server process did not start: {e}")),
        },
        None => match start_server(case).await {
            Ok(s) => {
                let st = s.state().clone();
                (Target::Embedded(s), Arc::new(move || st.log().now_us()))
            }
            Err(e) => return fail(format!("server did not start: {e}")),
        },
    };
    let net = match &case.server.proxy {
        None => None,
        Some(faults) => {
            match Net::start(server.addr(), faults.clone(), case.seed, now_us()).await {
                Ok(n) => Some(n),
                Err(e) => {
                    server.shutdown().await;
                    return fail(e);
                }
            }
        }
    };
    let adapter = match Adapter::spawn(cmd, now_us.clone(), HELLO).await {
        Ok(a) => Arc::new(a),
        Err(e) => return fail(format!("adapter: {e}")),
    };
    let mut needed: Vec<String> = case.requires.clone();
    for t in &case.client.transports {
        if !needed.contains(t) {
            needed.push(t.clone());
        }
    }
    let missing: Vec<String> = needed.into_iter().filter(|c| !adapter.has(c)).collect();
    if !missing.is_empty() {
        let hello = adapter.hello.clone();
        if let Ok(a) = Arc::try_unwrap(adapter) {
            a.shutdown().await;
        }
        if let Some(n) = net {
            n.shutdown().await;
        }
        server.shutdown().await;
        return CaseOutput {
            raw: Raw::Unsupported(missing),
            details: Vec::new(),
            metrics: Map::new(),
            stderr: String::new(),
            hello: Some(hello),
        };
    }
    let mut run = Run {
        case,
        client: case.client.clone(),
        server,
        adapter,
        net,
        traffic: None,
        published: Vec::new(),
        now_us,
        rng: case.seed ^ 0x9e37_79b9_7f4a_7c15,
        since: 0,
        waited: true,
        marks: Vec::new(),
        http: Vec::new(),
        client_counters: BTreeMap::new(),
        server_counters: BTreeMap::new(),
        keys: Vec::new(),
    };
    let budget = Duration::from_millis(case.timeout_ms);
    let steps = tokio::time::timeout(budget, async {
        run.configure().await?;
        run.steps(&case.steps).await
    })
    .await;
    // Traffic still running when the steps ended (or timed out) stops here.
    if let Some(t) = run.traffic.take() {
        let (p, c) = t.stop().await;
        run.published.extend(p);
        run.keys.extend(c.keys);
    }
    let step_error = match steps {
        Err(_) => Some(format!("case timed out after {} ms", case.timeout_ms)),
        Ok(Err(e)) => Some(e.to_string()),
        Ok(Ok(())) => None,
    };
    // Flush, then ask the final state (STATE-3).
    let id = run.adapter.next_id();
    let _ = run.adapter.call(Command::Barrier { id }, CALL).await;
    let id = run.adapter.next_id();
    let final_state = run
        .adapter
        .call(Command::State { id }, CALL)
        .await
        .ok()
        .and_then(|v| v.get("state").cloned());
    let events = run.adapter.trace.snapshot();
    let (log, served, cluster_stderr) = match &run.server {
        Target::Embedded(s) => (s.log().snapshot(), Vec::new(), String::new()),
        Target::Cluster(c) => (Vec::new(), c.served(), c.stderr()),
        Target::Process(p) => (p.log.snapshot(), Vec::new(), p.proc.stderr()),
    };
    let net_events: Vec<NetEvent> = run.net.as_ref().map(Net::events).unwrap_or_default();
    let stderr = run.adapter.stderr();
    let mut out = CaseOutput {
        raw: Raw::Pass,
        details: Vec::new(),
        metrics: Map::new(),
        stderr: String::new(),
        hello: Some(run.adapter.hello.clone()),
    };
    out.metrics.insert("events".into(), json!(events.len()));
    if let Some(n) = &run.net {
        let st = n.stats();
        out.metrics.insert(
            "proxy".into(),
            json!({
                "accepted": st.accepted, "resets": st.resets, "fins": st.fins,
                "blackholed": st.blackholed, "upgrades_refused": st.upgrades_refused,
                "upgrades_stripped": st.upgrades_stripped,
                "responses_buffered": st.responses_buffered,
                "upstream_refused": st.upstream_refused,
                "bytes_up": st.bytes_up, "bytes_down": st.bytes_down,
            }),
        );
    }
    if !run.published.is_empty() {
        out.metrics
            .insert("published".into(), json!(run.published.len()));
    }
    if let Some(e) = step_error {
        out.raw = Raw::Fail(e);
        out.details
            .push(format!("last events: {}", tail(&events, 12)));
    } else {
        let ctx = Ctx {
            events: &events,
            log: &log,
            marks: &run.marks,
            http: &run.http,
            client: &run.client,
            server: &case.server,
            final_state: final_state.as_ref(),
            stderr: &stderr,
            keys: &run.keys,
            served: &served,
            net: &net_events,
            published: &run.published,
        };
        let mut failures = Vec::new();
        for inv in checks::invariants(&ctx) {
            failures.push(format!("invariant: {inv}"));
        }
        for spec in &case.checks {
            let (applies, spec) = check_applies(spec, &|c| run.adapter.has(c));
            if !applies {
                continue;
            }
            let spec = &spec;
            match checks::run(spec, &ctx) {
                Ok(v) => {
                    for (k, m) in v.metrics {
                        out.metrics.insert(format!("{}.{k}", spec.check), m);
                    }
                    for d in &v.details {
                        out.details.push(format!("{}: {d}", spec.check));
                    }
                    if !v.ok {
                        failures.push(format!(
                            "{}: {}",
                            spec.check,
                            v.details.first().cloned().unwrap_or_default()
                        ));
                    }
                }
                Err(e) => failures.push(format!("{}: bad parameters: {e}", spec.check)),
            }
        }
        if !failures.is_empty() {
            out.raw = Raw::Fail(failures.join("; "));
            out.details
                .push(format!("last events: {}", tail(&events, 12)));
        }
    }
    if matches!(out.raw, Raw::Fail(_)) {
        if let Some(dir) = std::env::var_os("TETHER_CONFORMANCE_DUMP") {
            dump(
                std::path::Path::new(&dir),
                case,
                &events,
                &net_events,
                &log,
                &served,
                &run.marks,
            );
        }
        if case.server.proxy.is_some() || case.server.process {
            out.details.insert(
                0,
                format!(
                    "case seed {} (replay: --include {} --seed {})",
                    case.seed, case.name, case.seed
                ),
            );
            if let Raw::Fail(m) = &mut out.raw {
                m.push_str(&format!(" [seed {}]", case.seed));
            }
        }
        out.stderr = stderr;
        if !cluster_stderr.is_empty() {
            out.details.push(format!("instances: {cluster_stderr}"));
        }
    }
    if let Some(n) = run.net.take() {
        n.shutdown().await;
    }
    if let Ok(a) = Arc::try_unwrap(run.adapter) {
        a.shutdown().await;
    }
    run.server.shutdown().await;
    out
}

/// `TETHER_CONFORMANCE_DUMP=DIR`: a failing case's whole trace (with the case-clock arrival
/// of every event), proxy events, server log, the balancer's requests and marks go to
/// `DIR/<case>.json`.
fn dump(
    dir: &std::path::Path,
    case: &Case,
    events: &[crate::trace::TraceEvent],
    net: &[NetEvent],
    log: &[tether_server::LogEntry],
    served: &[crate::cluster::balancer::Served],
    marks: &[Mark],
) {
    let v = json!({
        "case": case.name,
        "seed": case.seed,
        "events": events.iter().map(|e| json!({"recv_us": e.recv_us, "event": e.v})).collect::<Vec<_>>(),
        "net": net,
        "log": log,
        "served": served,
        "marks": marks.iter().map(|m| json!({"name": m.name, "at_us": m.at_us, "trace_index": m.trace_index})).collect::<Vec<_>>(),
    });
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(format!("{}.json", case.name.replace('/', "_")));
    let _ = std::fs::write(path, serde_json::to_string_pretty(&v).unwrap_or_default());
}

fn tail(events: &[crate::trace::TraceEvent], n: usize) -> String {
    let start = events.len().saturating_sub(n);
    events[start..]
        .iter()
        .map(|e| {
            let mut v = e.v.clone();
            if let Value::Object(m) = &mut v {
                m.remove("t_ms");
                m.remove("data");
            }
            format!("[{:.0}ms] {}", e.t_ms, v)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn start_server(case: &Case) -> Result<Server, String> {
    let s = &case.server;
    let policy = match &s.policy {
        Some(p) => Some(
            serde_json::from_value::<PolicyWire>(Value::Object(p.clone()))
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut cfg = ServerConfig {
        heartbeat: Duration::from_millis(s.heartbeat_ms),
        poll_hold: Duration::from_millis(s.poll_hold_ms),
        policy,
        tokens: s.tokens.clone(),
        forbidden_tokens: s.forbidden_tokens.clone(),
        ..ServerConfig::default()
    };
    if let Some(r) = s.ring {
        cfg.ring_capacity = r;
    }
    if let Some(w) = s.ready_window_ms {
        cfg.ready_window_ms = w;
    }
    if let Some(m) = s.max_frame_bytes {
        cfg.max_frame_bytes = m;
    }
    if let Some(secret) = &s.jwt_hs256_secret {
        let v = tether_server::JwtVerifier::hs256(secret.as_bytes()).map_err(|e| e.to_string())?;
        cfg.authenticator = Some(tether_server::SharedAuthenticator::new(v));
    }
    let server = Server::start(cfg).await.map_err(|e| e.to_string())?;
    for r in &s.faults {
        server.apply_fault(r.clone());
    }
    Ok(server)
}

async fn start_process(case: &Case) -> Result<ProcTarget, String> {
    let log = Arc::new(ObservationLog::new(ServerConfig::default().log_capacity));
    let proc = ServerProc::start(server_cmd()?, &case.server, log.clone()).await?;
    for r in &case.server.faults {
        let rule = serde_json::to_value(r).map_err(|e| e.to_string())?;
        proc.handle()
            .call(json!({"op": "fault", "rule": rule}))
            .await
            .map_err(|e| format!("fault: {e}"))?;
    }
    Ok(ProcTarget { proc, log })
}

/// Expand `repeat` steps into a flat list (no recursion at run time).
fn unroll(steps: &[Step], has: &dyn Fn(&str) -> bool) -> Vec<Step> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::Repeat { times, steps } => {
                let inner = unroll(steps, has);
                for _ in 0..*times {
                    out.extend(inner.iter().cloned());
                }
            }
            Step::If {
                capability,
                then,
                otherwise,
            } => out.extend(unroll(if has(capability) { then } else { otherwise }, has)),
            other => out.push(other.clone()),
        }
    }
    out
}

/// A check's `when` / `unless` capability conditions, taken out of its parameters: the check
/// runs only when the adapter declared `when` and did not declare `unless`.
fn check_applies(spec: &CheckSpec, has: &dyn Fn(&str) -> bool) -> (bool, CheckSpec) {
    let mut spec = spec.clone();
    let when = spec.params.remove("when");
    let unless = spec.params.remove("unless");
    let cap = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).map(str::to_owned);
    let applies = cap(&when).is_none_or(|c| has(&c)) && cap(&unless).is_none_or(|c| !has(&c));
    (applies, spec)
}

impl Run<'_> {
    async fn call(&self, cmd: Command) -> Result<Value, StepError> {
        Ok(self.adapter.call(cmd, CALL).await?)
    }

    fn id(&self) -> u64 {
        self.adapter.next_id()
    }

    async fn configure(&mut self) -> Result<(), StepError> {
        let c = &self.client;
        let endpoint = match (&c.path, &self.net) {
            (Some(p), None) => format!("http://{}{p}", self.server.addr()),
            (None, None) => self.server.endpoint_url(),
            (p, Some(n)) => format!(
                "http://{}{}",
                n.addr(),
                p.as_deref()
                    .unwrap_or(&base_path(&self.server.endpoint_url()))
            ),
        };
        let cmd = Command::Configure {
            id: self.id(),
            endpoint,
            transports: c.transports.clone(),
            policy: c.policy.clone(),
            seed: c.seed,
            auth: c.auth.clone().map(|a: AuthScript| a),
            drop_policy: c.drop_policy.clone(),
            max_frame_bytes: c.max_frame_bytes,
        };
        self.call(cmd).await?;
        Ok(())
    }

    async fn steps(&mut self, steps: &[Step]) -> Result<(), StepError> {
        let adapter = &self.adapter;
        for s in unroll(steps, &|c| adapter.has(c)) {
            self.step(&s).await?;
        }
        Ok(())
    }

    /// The embedded server, for steps only it supports.
    fn embedded(&self, step: &str) -> Result<&Server, StepError> {
        match &self.server {
            Target::Embedded(s) => Ok(s),
            _ => Err(StepError::Setup(format!(
                "step {step} needs the embedded server (not a cluster or process case)"
            ))),
        }
    }

    /// The server process, for `kill_server` and `start_server`.
    fn process(&mut self, step: &str) -> Result<&mut ProcTarget, StepError> {
        match &mut self.server {
            Target::Process(p) => Ok(p),
            _ => Err(StepError::Setup(format!(
                "step {step} needs a server process (server.process)"
            ))),
        }
    }

    /// The fault proxy, for the `net` steps.
    fn net(&self, step: &str) -> Result<&Net, StepError> {
        self.net.as_ref().ok_or_else(|| {
            StepError::Setup(format!("step {step} needs the fault proxy (server.proxy)"))
        })
    }

    /// A command on the server process's control channel.
    async fn control(&mut self, cmd: Value) -> Result<Value, StepError> {
        let h = self.process("control")?.proc.handle();
        h.call(cmd)
            .await
            .map(|(v, _)| v)
            .map_err(|e| StepError::Server(e.to_string()))
    }

    /// The next draw of the case generator (splitmix64).
    fn draw(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The cluster, for the cluster steps.
    fn cluster(&mut self, step: &str) -> Result<&mut Cluster, StepError> {
        match &mut self.server {
            Target::Cluster(c) => Ok(c),
            _ => Err(StepError::Setup(format!(
                "step {step} needs a cluster case (server.cluster)"
            ))),
        }
    }

    async fn apply(&mut self, rule: FaultRule) -> Result<(), StepError> {
        if let Target::Process(_) = &self.server {
            let rule = serde_json::to_value(&rule).map_err(|e| StepError::Setup(e.to_string()))?;
            self.control(json!({"op": "fault", "rule": rule})).await?;
            return Ok(());
        }
        self.embedded("faults")?.apply_fault(rule);
        Ok(())
    }

    async fn step(&mut self, s: &Step) -> Result<(), StepError> {
        let passive = matches!(
            s,
            Step::Wait { .. }
                | Step::Sleep { .. }
                | Step::Mark { .. }
                | Step::Barrier
                | Step::ExpectState { .. }
                | Step::HttpGet { .. }
        );
        if !passive && self.waited {
            self.since = self.adapter.trace.len();
            self.waited = false;
        }
        match s {
            Step::Configure { client } => {
                self.mark("configure");
                if let Some(over) = client {
                    let mut merged = self.case.client_json.clone();
                    merge(&mut merged, over);
                    self.client = serde_json::from_value(merged)
                        .map_err(|e| StepError::Setup(format!("configure: {e}")))?;
                }
                self.configure().await?;
                // A new client starts a new count: events of the client it replaced (flushed
                // before `configure` answered) never satisfy the waits that follow.
                self.since = self.adapter.trace.len();
                self.waited = false;
            }
            Step::Connect => {
                self.mark("connect");
                self.call(Command::Connect { id: self.id() }).await?;
            }
            Step::Subscribe {
                channel,
                expect_error,
            } => {
                let cmd = Command::Subscribe {
                    id: self.id(),
                    channel: channel.clone(),
                };
                match (self.adapter.call_raw(cmd, CALL).await?, expect_error) {
                    (Ok(_), None) => {}
                    (Err((code, _)), Some(want)) if &code == want => {}
                    (Ok(_), Some(want)) => {
                        return Err(StepError::Expect(format!(
                            "subscribe should have failed with {want}"
                        )))
                    }
                    (Err((code, message)), _) => {
                        return Err(StepError::Expect(format!(
                            "subscribe failed: {code}: {message}"
                        )))
                    }
                }
            }
            Step::Unsubscribe { channel } => {
                self.call(Command::Unsubscribe {
                    id: self.id(),
                    channel: channel.clone(),
                })
                .await?;
            }
            Step::Publish {
                channel,
                data,
                key,
                count,
                expect_error,
            } => {
                for _ in 0..*count {
                    let n = {
                        let c = self.client_counters.entry(channel.clone()).or_insert(0);
                        *c += 1;
                        *c
                    };
                    let data = data.clone().unwrap_or_else(|| json!({ "n": n }));
                    let cmd = Command::Publish {
                        id: self.id(),
                        channel: channel.clone(),
                        data,
                        key: key.clone(),
                    };
                    let reply = self.adapter.call_raw(cmd, CALL).await?;
                    match (reply, expect_error) {
                        (Ok(v), None) => {
                            if let Some(k) = v.get("key").and_then(Value::as_str) {
                                self.keys.push(k.to_owned());
                            }
                        }
                        (Err((code, _)), Some(want)) if &code == want => {}
                        (Ok(_), Some(want)) => {
                            return Err(StepError::Expect(format!(
                                "publish should have failed with {want}"
                            )))
                        }
                        (Err((code, message)), _) => {
                            return Err(StepError::Expect(format!(
                                "publish failed: {code}: {message}"
                            )))
                        }
                    }
                }
            }
            Step::SetNetwork { state } => {
                self.mark(&format!("network_{state}"));
                self.call(Command::SetNetwork {
                    id: self.id(),
                    state: state.clone(),
                })
                .await?;
            }
            Step::Close => {
                self.mark("close");
                self.call(Command::Close { id: self.id() }).await?;
            }
            Step::Barrier => {
                self.call(Command::Barrier { id: self.id() }).await?;
            }
            Step::Restart => {
                self.mark("restart");
                self.call(Command::Restart { id: self.id() }).await?;
            }
            Step::ExpectState { state } => {
                self.call(Command::Barrier { id: self.id() }).await?;
                let v = self.call(Command::State { id: self.id() }).await?;
                let got = v.get("state").cloned().unwrap_or(Value::Null);
                if !crate::trace::matches(state, &got) {
                    return Err(StepError::Expect(format!(
                        "state should match {state}, is {got}"
                    )));
                }
            }
            Step::ServerPublish {
                channel,
                count,
                data,
                interval_ms,
                instance,
                id,
            } => {
                for i in 0..*count {
                    let n = {
                        let c = self.server_counters.entry(channel.clone()).or_insert(0);
                        *c += 1;
                        *c
                    };
                    let data = data.clone().unwrap_or_else(|| json!({ "n": n }));
                    match &mut self.server {
                        Target::Process(p) => {
                            p.proc
                                .handle()
                                .publish(channel, data)
                                .await
                                .map_err(|e| StepError::Server(e.to_string()))?;
                        }
                        Target::Embedded(s) => {
                            let r = match id {
                                Some(id) => s.publish_once(id, channel, data).await.map(|p| p.seq),
                                None => s.publish(channel, data).await,
                            };
                            r.map_err(|e| StepError::Server(e.to_string()))?;
                        }
                        Target::Cluster(c) => {
                            c.publish(instance, channel, &data, id.as_deref())
                                .await
                                .map_err(StepError::Server)?;
                        }
                    }
                    if *interval_ms > 0 && i + 1 < *count {
                        tokio::time::sleep(Duration::from_millis(*interval_ms)).await;
                    }
                }
            }
            Step::Faults { rules, instance } => {
                if let Target::Cluster(c) = &mut self.server {
                    let body =
                        serde_json::to_value(rules).map_err(|e| StepError::Setup(e.to_string()))?;
                    c.admin(instance, "faults", &body)
                        .await
                        .map_err(StepError::Server)?;
                } else {
                    for r in rules {
                        self.apply(r.clone()).await?;
                    }
                }
            }
            Step::ClearFaults => match &mut self.server {
                Target::Process(_) => {
                    self.control(json!({"op": "clear_faults"})).await?;
                }
                Target::Embedded(s) => s.clear_faults(),
                Target::Cluster(c) => c
                    .admin(&None, "clear_faults", &Value::Null)
                    .await
                    .map_err(StepError::Server)?,
            },
            Step::Drain { from_ms, to_ms } => {
                self.mark("drain");
                if let Target::Process(_) = &self.server {
                    self.control(json!({"op": "drain", "from_ms": from_ms, "to_ms": to_ms}))
                        .await?;
                } else {
                    self.embedded("drain")?.drain(*from_ms, *to_ms);
                }
            }
            Step::Undrain => {
                if let Target::Process(_) = &self.server {
                    self.control(json!({"op": "undrain"})).await?;
                } else {
                    self.embedded("undrain")?.undrain();
                }
            }
            Step::ServerRestart {
                lose_state,
                down_ms,
            } => {
                self.mark("server_restart");
                self.apply(FaultRule::always(tether_server::Fault::Restart {
                    lose_state: *lose_state,
                    down_ms: *down_ms,
                }))
                .await?;
            }
            Step::CloseAll {
                code,
                reason,
                instance,
            } => {
                self.mark("close_all");
                match &mut self.server {
                    Target::Process(_) => {
                        self.control(json!({"op": "close_all", "code": code, "reason": reason}))
                            .await?;
                    }
                    Target::Embedded(s) => {
                        s.close_all(*code, reason);
                    }
                    Target::Cluster(c) => c
                        .admin(
                            instance,
                            "close_all",
                            &json!({"code": code, "reason": reason}),
                        )
                        .await
                        .map_err(StepError::Server)?,
                }
            }
            Step::KillInstance { instance } => {
                let r = Some(instance.clone());
                let killed = self
                    .cluster("kill_instance")?
                    .kill(&r)
                    .await
                    .map_err(StepError::Server)?;
                self.mark(&format!("kill_instance_{}", join_ids(&killed)));
                self.mark("kill_instance");
            }
            Step::DrainInstance { instance } => {
                let r = Some(instance.clone());
                let drained = self
                    .cluster("drain_instance")?
                    .drain(&r)
                    .await
                    .map_err(StepError::Server)?;
                self.mark(&format!("drain_instance_{}", join_ids(&drained)));
                self.mark("drain_instance");
            }
            Step::WaitInstanceExit {
                instance,
                code,
                timeout_ms,
            } => {
                let r = Some(instance.clone());
                self.cluster("wait_instance_exit")?
                    .wait_exit(&r, *code, Duration::from_millis(*timeout_ms))
                    .await
                    .map_err(StepError::Expect)?;
            }
            Step::StopRedis => {
                self.cluster("stop_redis")?.redis.stop().await;
                self.mark("stop_redis");
            }
            Step::StartRedis => {
                self.mark("start_redis");
                self.cluster("start_redis")?
                    .redis
                    .start_again()
                    .await
                    .map_err(StepError::Server)?;
            }
            Step::SetReady { ready } => self.embedded("set_ready")?.set_ready(*ready),
            Step::ExpireToken { token } => {
                self.mark("expire_token");
                self.embedded("expire_token")?.expire_token(token);
            }
            Step::AddToken { token } => self.embedded("add_token")?.add_token(token),
            Step::ForbidToken { token } => self.embedded("forbid_token")?.forbid_token(token),
            Step::SetPolicy { policy } => {
                let p = match policy {
                    Some(p) => Some(
                        serde_json::from_value::<PolicyWire>(Value::Object(p.clone()))
                            .map_err(|e| StepError::Setup(e.to_string()))?,
                    ),
                    None => None,
                };
                self.embedded("set_policy")?.set_policy(p);
            }
            Step::StopListening => {
                self.mark("stop_listening");
                self.embedded("stop_listening")?.stop_listening();
            }
            Step::ResumeListening => {
                self.mark("resume_listening");
                self.embedded("resume_listening")?.resume_listening();
            }
            Step::HttpGet {
                path,
                name,
                method,
                headers,
            } => {
                let method = method.as_deref().unwrap_or("GET");
                let rec = http_get(
                    self.server.addr(),
                    &self.server.endpoint_url(),
                    method,
                    path,
                    headers,
                    name,
                )
                .await?;
                self.http.push(rec);
            }
            Step::Wait {
                event,
                count,
                timeout_ms,
            } => self.wait(event, *count, *timeout_ms).await?,
            Step::Sleep { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::Mark { name } => self.mark(name),
            // Only reached inside `mix` (elsewhere `steps` unrolls them first).
            Step::Repeat { .. } | Step::If { .. } => {
                let adapter = self.adapter.clone();
                for s in unroll(std::slice::from_ref(s), &|c| adapter.has(c)) {
                    Box::pin(self.step(&s)).await?;
                }
            }
            Step::Net { faults } => {
                self.mark("net");
                self.net("net")?.set(faults.clone());
            }
            Step::NetCut { cut } => {
                self.mark(&format!("net_cut_{}", cut.as_str()));
                self.net("net_cut")?.cut_all(*cut);
            }
            Step::KillServer => {
                self.process("kill_server")?.proc.kill().await;
                self.mark("kill_server");
            }
            Step::StartServer => {
                self.mark("start_server");
                self.process("start_server")?
                    .proc
                    .restart()
                    .await
                    .map_err(StepError::Server)?;
            }
            Step::TrafficStart {
                channels,
                every_ms,
                publish,
                pad_bytes,
            } => {
                if self.traffic.is_some() {
                    return Err(StepError::Setup("traffic already running".into()));
                }
                let publisher = match &self.server {
                    Target::Embedded(s) => Publisher::Embedded(s.state().clone()),
                    Target::Process(p) => Publisher::Process(p.proc.handle()),
                    Target::Cluster(_) => {
                        return Err(StepError::Setup("traffic needs one server".into()))
                    }
                };
                self.mark("traffic_start");
                self.traffic = Some(Traffic::start(
                    publisher,
                    self.adapter.clone(),
                    channels.clone(),
                    *pad_bytes,
                    Duration::from_millis(*every_ms),
                    publish
                        .as_ref()
                        .map(|p| (p.channel.clone(), Duration::from_millis(p.every_ms))),
                    self.now_us.clone(),
                ));
            }
            Step::TrafficStop { settle_ms } => {
                let t = self
                    .traffic
                    .take()
                    .ok_or_else(|| StepError::Setup("traffic_stop without traffic".into()))?;
                self.mark("traffic_stop");
                let (published, client) = t.stop().await;
                if let Some(r) = client.refused.first() {
                    return Err(StepError::Expect(format!(
                        "the adapter refused {} traffic publish(es), first: {r}",
                        client.refused.len()
                    )));
                }
                self.published.extend(published);
                self.keys.extend(client.keys);
                self.settle(Duration::from_millis(*settle_ms)).await;
                self.mark("settled");
            }
            Step::Mix { ms, gap_ms, menu } => {
                if menu.is_empty() || gap_ms.1 < gap_ms.0 {
                    return Err(StepError::Setup("mix: empty menu or bad gap_ms".into()));
                }
                let end = tokio::time::Instant::now() + Duration::from_millis(*ms);
                loop {
                    let gap = gap_ms.0 + self.draw() % (gap_ms.1 - gap_ms.0 + 1);
                    let at = tokio::time::Instant::now() + Duration::from_millis(gap);
                    if at >= end {
                        tokio::time::sleep_until(end).await;
                        break;
                    }
                    tokio::time::sleep_until(at).await;
                    let pick = (self.draw() % menu.len() as u64) as usize;
                    let s = menu[pick].clone();
                    self.mark(&format!("mix_{pick}"));
                    Box::pin(self.step(&s)).await?;
                }
            }
        }
        Ok(())
    }

    /// After the traffic: until the app saw the last stored message of every channel and
    /// every queued publish was acknowledged or dropped, or `budget` passed. The checks judge
    /// what arrived; this only gives a lossy network the time to deliver it.
    async fn settle(&mut self, budget: Duration) {
        let trace = self.adapter.trace.clone();
        let deadline = tokio::time::Instant::now() + budget;
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for p in &self.published {
            let e = last.entry(p.channel.as_str()).or_insert(0);
            *e = (*e).max(p.n);
        }
        loop {
            let notified = trace.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let events = trace.snapshot();
            let seen_last = last.iter().all(|(ch, n)| {
                events.iter().any(|e| {
                    e.ty() == "message"
                        && e.str("channel") == Some(ch)
                        && e.v
                            .get("data")
                            .and_then(|d| d.get("n"))
                            .and_then(Value::as_u64)
                            >= Some(*n)
                })
            });
            let answered = self.keys.iter().all(|k| {
                events.iter().any(|e| {
                    matches!(e.ty(), "acked" | "dropped") && e.str("id") == Some(k.as_str())
                })
            });
            if (seen_last && answered) || trace.closed().is_some() {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    fn mark(&mut self, name: &str) {
        self.marks.push(Mark {
            name: name.to_owned(),
            at_us: self.server.now_us(),
            trace_index: self.adapter.trace.len(),
        });
    }

    async fn wait(
        &mut self,
        pattern: &Value,
        count: u32,
        timeout_ms: u64,
    ) -> Result<(), StepError> {
        let trace = self.adapter.trace.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        self.waited = true;
        loop {
            let notified = trace.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if trace.find(self.since, pattern, count).is_some() {
                return Ok(());
            }
            if let Some(why) = trace.closed() {
                return Err(StepError::WaitGone {
                    pattern: pattern.to_string(),
                    why,
                });
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(StepError::WaitTimeout {
                    pattern: pattern.to_string(),
                    count,
                    timeout_ms,
                });
            }
        }
    }
}

/// The path of an endpoint URL (`/tether` of `http://127.0.0.1:1/tether`).
fn base_path(url: &str) -> String {
    url.splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap_or_default()
}

fn join_ids(ids: &[usize]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("_")
}

/// A minimal HTTP/1.1 GET (Connection: close), read for at most 1 s.
async fn http_get(
    addr: std::net::SocketAddr,
    base: &str,
    method: &str,
    path: &str,
    headers: &BTreeMap<String, String>,
    name: &str,
) -> Result<HttpRecord, StepError> {
    let base_path = base
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap_or_default();
    let target = format!("{base_path}{path}");
    let io = |e: std::io::Error| StepError::Server(format!("GET {target}: {e}"));
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(io)?;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut buf)).await;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (&buf[..i], &buf[i + 4..]),
        None => (&buf[..], &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    // Keep the payload, not the chunk framing: checks and reports read the body itself.
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        crate::chunked::decode(body).body
    } else {
        body.to_vec()
    };
    Ok(HttpRecord {
        name: name.to_owned(),
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed answer (SSE) comes chunked: the record keeps the payload, not the framing.
    #[tokio::test]
    async fn http_get_decodes_chunked_bodies() {
        let server = Server::start(ServerConfig::default())
            .await
            .expect("server starts");
        let rec = http_get(
            server.addr(),
            &server.endpoint_url(),
            "GET",
            "/sse?v=1&channels=c",
            &BTreeMap::new(),
            "sse",
        )
        .await
        .expect("answer");
        server.shutdown().await;
        assert_eq!(rec.status, 200);
        assert!(
            rec.headers
                .iter()
                .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
            "{:?}",
            rec.headers
        );
        assert!(
            rec.body.starts_with("id: ") || rec.body.starts_with("data: "),
            "chunk sizes left in the body: {:?}",
            rec.body
        );
        assert!(
            rec.body.contains("data: {\"type\":\"hello\""),
            "{:?}",
            rec.body
        );
        assert!(!rec.body.contains("\r\n"), "{:?}", rec.body);
    }
}
