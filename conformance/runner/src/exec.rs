//! Runs one case: its own embedded server on port 0, its own adapter process, the steps, then the checks.

use crate::adapter::{Adapter, AdapterCmd, AdapterError};
use crate::checks::{self, Ctx, HttpRecord, Mark};
use crate::outcome::Raw;
use crate::protocol::{AuthScript, Command, Hello};
use crate::scenario::{merge, Case, ClientSetup, Step};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tether_engine::PolicyWire;
use tether_server::{FaultRule, Server, ServerConfig};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reply timeout of ordinary commands.
const CALL: Duration = Duration::from_secs(10);

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

struct Run<'a> {
    case: &'a Case,
    server: Server,
    adapter: Adapter,
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
    let server = match start_server(case).await {
        Ok(s) => s,
        Err(e) => return fail(format!("server did not start: {e}")),
    };
    let st = server.state().clone();
    let now_us: Arc<dyn Fn() -> u64 + Send + Sync> = Arc::new(move || st.log().now_us());
    let adapter = match Adapter::spawn(cmd, now_us, Duration::from_secs(10)).await {
        Ok(a) => a,
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
        adapter.shutdown().await;
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
    let log = run.server.log().snapshot();
    let stderr = run.adapter.stderr();
    let mut out = CaseOutput {
        raw: Raw::Pass,
        details: Vec::new(),
        metrics: Map::new(),
        stderr: String::new(),
        hello: Some(run.adapter.hello.clone()),
    };
    out.metrics.insert("events".into(), json!(events.len()));
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
        };
        let mut failures = Vec::new();
        for inv in checks::invariants(&ctx) {
            failures.push(format!("invariant: {inv}"));
        }
        for spec in &case.checks {
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
        out.stderr = stderr;
    }
    run.adapter.shutdown().await;
    run.server.shutdown().await;
    out
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
    let server = Server::start(cfg).await.map_err(|e| e.to_string())?;
    for r in &s.faults {
        server.apply_fault(r.clone());
    }
    Ok(server)
}

/// Expand `repeat` steps into a flat list (no recursion at run time).
fn unroll(steps: &[Step]) -> Vec<Step> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::Repeat { times, steps } => {
                let inner = unroll(steps);
                for _ in 0..*times {
                    out.extend(inner.iter().cloned());
                }
            }
            other => out.push(other.clone()),
        }
    }
    out
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
        let endpoint = match &c.path {
            Some(p) => format!("http://{}{p}", self.server.addr()),
            None => self.server.endpoint_url(),
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
        for s in unroll(steps) {
            self.step(&s).await?;
        }
        Ok(())
    }

    fn apply(&self, rule: FaultRule) {
        self.server.apply_fault(rule);
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
            } => {
                for i in 0..*count {
                    let n = {
                        let c = self.server_counters.entry(channel.clone()).or_insert(0);
                        *c += 1;
                        *c
                    };
                    let data = data.clone().unwrap_or_else(|| json!({ "n": n }));
                    self.server
                        .publish(channel, data)
                        .await
                        .map_err(|e| StepError::Server(e.to_string()))?;
                    if *interval_ms > 0 && i + 1 < *count {
                        tokio::time::sleep(Duration::from_millis(*interval_ms)).await;
                    }
                }
            }
            Step::Faults { rules } => {
                for r in rules {
                    self.apply(r.clone());
                }
            }
            Step::ClearFaults => self.server.clear_faults(),
            Step::Drain { from_ms, to_ms } => {
                self.mark("drain");
                self.server.drain(*from_ms, *to_ms);
            }
            Step::Undrain => self.server.undrain(),
            Step::ServerRestart {
                lose_state,
                down_ms,
            } => {
                self.mark("server_restart");
                self.apply(FaultRule::always(tether_server::Fault::Restart {
                    lose_state: *lose_state,
                    down_ms: *down_ms,
                }));
            }
            Step::CloseAll { code, reason } => {
                self.mark("close_all");
                self.server.close_all(*code, reason);
            }
            Step::SetReady { ready } => self.server.set_ready(*ready),
            Step::ExpireToken { token } => {
                self.mark("expire_token");
                self.server.expire_token(token);
            }
            Step::AddToken { token } => self.server.add_token(token),
            Step::ForbidToken { token } => self.server.forbid_token(token),
            Step::SetPolicy { policy } => {
                let p = match policy {
                    Some(p) => Some(
                        serde_json::from_value::<PolicyWire>(Value::Object(p.clone()))
                            .map_err(|e| StepError::Setup(e.to_string()))?,
                    ),
                    None => None,
                };
                self.server.set_policy(p);
            }
            Step::StopListening => {
                self.mark("stop_listening");
                self.server.stop_listening();
            }
            Step::ResumeListening => {
                self.mark("resume_listening");
                self.server.resume_listening();
            }
            Step::HttpGet { path, name } => {
                let rec = http_get(&self.server, path, name).await?;
                self.http.push(rec);
            }
            Step::Wait {
                event,
                count,
                timeout_ms,
            } => self.wait(event, *count, *timeout_ms).await?,
            Step::Sleep { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::Mark { name } => self.mark(name),
            Step::Repeat { .. } => {
                return Err(StepError::Setup("nested repeat not unrolled".into()))
            }
        }
        Ok(())
    }

    fn mark(&mut self, name: &str) {
        self.marks.push(Mark {
            name: name.to_owned(),
            at_us: self.server.log().now_us(),
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

/// A minimal HTTP/1.1 GET (Connection: close), read for at most 1 s.
async fn http_get(server: &Server, path: &str, name: &str) -> Result<HttpRecord, StepError> {
    let base = server.endpoint_url();
    let base_path = base
        .splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap_or_default();
    let target = format!("{base_path}{path}");
    let io = |e: std::io::Error| StepError::Server(format!("GET {target}: {e}"));
    let mut s = tokio::net::TcpStream::connect(server.addr())
        .await
        .map_err(io)?;
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr()
    );
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
        let rec = http_get(&server, "/sse?v=1&channels=c", "sse")
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
