//! The cluster cases' world (ADR-2): a real `redis-server`, two or three `tether-server` instances as separate processes on it, and the runner's own round-robin balancer in front, with no affinity.

pub mod balancer;
pub mod http;
pub mod instance;
pub mod redis;

use balancer::{Balancer, Served};
use instance::Instance;
use redis::RedisProc;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The `server.cluster` setup of a case.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSetup {
    /// Instances behind the balancer (2 or 3).
    #[serde(default = "three")]
    pub instances: usize,
    /// What SIGTERM tells clients (`drain_instance`).
    #[serde(default = "drain_default")]
    pub drain_window_ms: (u64, u64),
}

fn three() -> usize {
    3
}
fn drain_default() -> (u64, u64) {
    (0, 1_000)
}

/// Which instance a step acts on: an index, `"stream"` (the one serving the client's latest
/// open stream: WebSocket, SSE or held poll), `"killed"` / `"drained"` (the last ones a step
/// killed or drained) or `"all"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum InstanceRef {
    Index(usize),
    Named(String),
}

/// How long `kill_instance` / `drain_instance` on `"stream"` wait for the client to have a
/// stream open (a long-poll client re-polls within milliseconds of an answer).
const STREAM_SETTLE: Duration = Duration::from_secs(2);

/// A WebSocket, SSE or long-poll request that got its stream (101 or 200).
fn is_stream(s: &Served) -> bool {
    balancer::is_stream_path(&s.path) && (s.status == 101 || s.status == 200)
}

/// The latest stream open among what the balancer served and holds: a WebSocket or SSE
/// stream whose body is still being forwarded, or a long-poll a backend holds unanswered.
/// A long-poll's answer ends it: its record stays open while the body is forwarded, and by
/// then the client may hold the answer and have sent the next poll elsewhere, so a poll
/// counts only while it is held.
fn latest_open(served: &[Served], pending: &[balancer::Pending]) -> Option<(u64, usize)> {
    let streaming = served
        .iter()
        .filter(|s| is_stream(s) && !s.path.ends_with("/poll") && s.open.load(Ordering::Relaxed))
        .filter_map(|s| Some((s.at_us, s.instance?)))
        .max();
    let held = pending
        .iter()
        .filter(|p| p.waiting.load(Ordering::Relaxed))
        .map(|p| (p.at_us, p.instance))
        .max();
    streaming.max(held)
}

const ADMIN_KEY: &str = "conformance-admin-key";
const PUBLISH_KEY: &str = "conformance-publish-key";

pub struct Cluster {
    pub redis: RedisProc,
    pub instances: Vec<Instance>,
    pub balancer: Balancer,
    pub clock: Instant,
    pub base_path: String,
    next_publish: usize,
    /// Publishes made so far: the idempotency key of one the step gave none.
    published: u64,
    setup: ClusterSetup,
    killed: Vec<usize>,
    drained: Vec<usize>,
}

/// The runner binary's own path, re-run as `__server`.
fn server_program() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("current_exe: {e}"))
}

/// Flags of the server setup every instance shares.
pub struct InstanceFlags {
    pub heartbeat_ms: u64,
    pub poll_hold_ms: u64,
    pub ring: Option<usize>,
    pub policy: Option<String>,
}

impl Cluster {
    /// Start Redis, the instances (waiting until each is ready) and the balancer.
    pub async fn start(setup: &ClusterSetup, flags: &InstanceFlags) -> Result<Cluster, String> {
        let clock = Instant::now();
        let redis = RedisProc::start().await?;
        let program = server_program()?;
        let n = setup.instances.clamp(2, 3);
        let mut instances = Vec::with_capacity(n);
        for i in 0..n {
            let mut args = vec![
                "__server".to_owned(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--store".into(),
                "redis".into(),
                "--redis-url".into(),
                redis.url(),
                "--server-id".into(),
                format!("node-{i}"),
                "--heartbeat-ms".into(),
                flags.heartbeat_ms.to_string(),
                "--poll-hold-ms".into(),
                flags.poll_hold_ms.to_string(),
                "--drain-window-ms".into(),
                format!("{},{}", setup.drain_window_ms.0, setup.drain_window_ms.1),
                "--drain-grace-ms".into(),
                "1000".into(),
                "--admin-key".into(),
                ADMIN_KEY.into(),
                "--publish-keys".into(),
                PUBLISH_KEY.into(),
                "--metrics-path".into(),
                "/metrics".into(),
            ];
            if let Some(r) = flags.ring {
                args.extend(["--ring-capacity".into(), r.to_string()]);
            }
            if let Some(p) = &flags.policy {
                args.extend(["--policy".into(), p.clone()]);
            }
            instances.push(Instance::spawn(i, &program, &args).await?);
        }
        let base_path = instances[0].base_path.clone();
        for inst in &instances {
            wait_ready(inst.addr, &base_path).await?;
        }
        let balancer = Balancer::start(
            instances.iter().map(|i| i.addr).collect(),
            format!("{base_path}/ready"),
            clock,
        )
        .await
        .map_err(|e| format!("balancer: {e}"))?;
        Ok(Cluster {
            redis,
            instances,
            balancer,
            clock,
            base_path,
            next_publish: 0,
            published: 0,
            setup: setup.clone(),
            killed: Vec::new(),
            drained: Vec::new(),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// The endpoint clients use: through the balancer.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}{}", self.balancer.addr, self.base_path)
    }

    pub fn balancer_addr(&self) -> SocketAddr {
        self.balancer.addr
    }

    pub fn served(&self) -> Vec<Served> {
        self.balancer.served()
    }

    /// The instances a reference names.
    pub fn resolve(&mut self, r: &Option<InstanceRef>) -> Result<Vec<usize>, String> {
        match r {
            None => Ok((0..self.instances.len()).collect()),
            Some(InstanceRef::Index(i)) if *i < self.instances.len() => Ok(vec![*i]),
            Some(InstanceRef::Index(i)) => Err(format!("no instance {i}")),
            Some(InstanceRef::Named(n)) if n == "all" => Ok((0..self.instances.len()).collect()),
            Some(InstanceRef::Named(n)) if n == "stream" => Ok(vec![self.stream_instance()?]),
            Some(InstanceRef::Named(n)) if n == "killed" => Ok(self.killed.clone()),
            Some(InstanceRef::Named(n)) if n == "drained" => Ok(self.drained.clone()),
            Some(InstanceRef::Named(n)) => Err(format!("unknown instance {n:?}")),
        }
    }

    /// The instance serving the client's latest stream still open: a WebSocket or SSE stream,
    /// or a long-poll the instance holds (sent to it, not answered yet); the latest one served
    /// when none is open.
    pub fn stream_instance(&self) -> Result<usize, String> {
        self.open_stream()
            .map(|(_, i)| i)
            .or_else(|| {
                let served = self
                    .balancer
                    .inner
                    .served
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                served
                    .iter()
                    .rev()
                    .find(|s| is_stream(s))
                    .and_then(|s| s.instance)
            })
            .ok_or_else(|| "no stream has been served yet".to_owned())
    }

    /// The latest stream open now (its start in µs on the case clock, and its instance).
    fn open_stream(&self) -> Option<(u64, usize)> {
        let inner = &self.balancer.inner;
        let served = inner.served.lock().unwrap_or_else(|e| e.into_inner());
        let pending = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        latest_open(&served, &pending)
    }

    /// The instances a kill or drain acts on, as [`resolve`](Self::resolve) says, except for
    /// `"stream"`: wait (up to `within`) until the client has a stream open and take the
    /// instance seen holding it then. A long-poll client is between two polls for a moment
    /// after each answer; acting then, or resolving again a moment later, would pick the
    /// instance of a poll that has ended while the next one goes elsewhere.
    async fn settle_stream(
        &mut self,
        r: &Option<InstanceRef>,
        within: Duration,
    ) -> Result<Vec<usize>, String> {
        if !matches!(r, Some(InstanceRef::Named(n)) if n == "stream") {
            return self.resolve(r);
        }
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some((_, i)) = self.open_stream() {
                return Ok(vec![i]);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.resolve(r)
    }

    /// Publish through the backend publish API of `instance` (or the next live one, round
    /// robin). The seq.
    pub async fn publish(
        &mut self,
        instance: &Option<InstanceRef>,
        channel: &str,
        data: &Value,
        id: Option<&str>,
    ) -> Result<u64, String> {
        let candidates = match instance {
            None => {
                let n = self.instances.len();
                let start = self.next_publish;
                self.next_publish += 1;
                (0..n).map(|k| (start + k) % n).collect()
            }
            some => self.resolve(some)?,
        };
        // Tried on the next instance when one fails, so always under an idempotency key
        // (API-1): an instance that appended and then failed to answer (a drained one
        // exiting) must not make the message appear twice.
        self.published += 1;
        let id = id.map_or_else(
            || format!("runner-publish-{}", self.published),
            str::to_owned,
        );
        let body = json!({"channel": channel, "data": data, "id": id}).to_string();
        let mut last = String::from("no live instance");
        for i in candidates {
            if !self.instances[i].alive() {
                continue;
            }
            let path = format!("{}/publish", self.base_path);
            match http::call(
                self.instances[i].addr,
                "POST",
                &path,
                Some(PUBLISH_KEY),
                Some(&body),
                Duration::from_secs(5),
            )
            .await
            {
                Ok(a) if a.status == 200 => {
                    let v: Value = serde_json::from_str(&a.body)
                        .map_err(|e| format!("publish answer: {e}"))?;
                    return v["seq"]
                        .as_u64()
                        .ok_or_else(|| format!("publish answer {v}"));
                }
                Ok(a) => last = format!("instance {i}: HTTP {} {}", a.status, a.body),
                Err(e) => last = format!("instance {i}: {e}"),
            }
        }
        Err(format!("publish failed: {last}"))
    }

    /// `POST {base}/_admin/{action}` on the referenced instances (live ones).
    pub async fn admin(
        &mut self,
        r: &Option<InstanceRef>,
        action: &str,
        body: &Value,
    ) -> Result<(), String> {
        let body = body.to_string();
        for i in self.resolve(r)? {
            if !self.instances[i].alive() {
                continue;
            }
            let path = format!("{}/_admin/{action}", self.base_path);
            let a = http::call(
                self.instances[i].addr,
                "POST",
                &path,
                Some(ADMIN_KEY),
                Some(&body),
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| format!("admin {action} on instance {i}: {e}"))?;
            if a.status != 200 {
                return Err(format!(
                    "admin {action} on instance {i}: HTTP {} {}",
                    a.status, a.body
                ));
            }
        }
        Ok(())
    }

    pub async fn kill(&mut self, r: &Option<InstanceRef>) -> Result<Vec<usize>, String> {
        let ids = self.settle_stream(r, STREAM_SETTLE).await?;
        for &i in &ids {
            self.instances[i].kill9().await;
        }
        self.killed = ids.clone();
        Ok(ids)
    }

    pub async fn drain(&mut self, r: &Option<InstanceRef>) -> Result<Vec<usize>, String> {
        let ids = self.settle_stream(r, STREAM_SETTLE).await?;
        for &i in &ids {
            self.instances[i].sigterm().await?;
        }
        // The next steps act during the drain window: not before the instance has told its
        // clients. A publish racing the signal could answer a held poll with a message, and
        // the drain notice would wait for a poll the balancer sends elsewhere.
        for &i in &ids {
            let inst = &self.instances[i];
            wait_draining(inst.addr, &inst.base_path).await?;
        }
        self.drained = ids.clone();
        Ok(ids)
    }

    /// Wait for the referenced instances to exit; each must exit with `code`.
    pub async fn wait_exit(
        &mut self,
        r: &Option<InstanceRef>,
        code: i32,
        timeout: Duration,
    ) -> Result<(), String> {
        for i in self.resolve(r)? {
            let got = self.instances[i].wait_exit(timeout).await?;
            if got != Some(code) {
                return Err(format!("instance {i} exited with {got:?}, want {code}"));
            }
        }
        Ok(())
    }

    pub fn drain_window(&self) -> (u64, u64) {
        self.setup.drain_window_ms
    }

    /// What the instances wrote on stderr (for failure reports).
    pub fn stderr(&self) -> String {
        let mut out = String::new();
        for i in &self.instances {
            let e = i.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if !e.trim().is_empty() {
                out.push_str(&format!("--- instance {} ---\n{e}", i.index));
            }
        }
        out
    }
}

async fn wait_ready(addr: SocketAddr, base: &str) -> Result<(), String> {
    until_ready_is(addr, base, true, 500, Duration::from_millis(20))
        .await
        .map_err(|()| format!("instance {addr} never became ready"))
}

/// Until the instance's `/ready` says it is not ready (it drains from the moment it says so,
/// DRAIN-3) or it is gone.
async fn wait_draining(addr: SocketAddr, base: &str) -> Result<(), String> {
    until_ready_is(addr, base, false, 250, Duration::from_millis(2))
        .await
        .map_err(|()| format!("instance {addr} still ready after SIGTERM"))
}

/// Ask `/ready` up to `tries` times, `pause` apart, until whether it answers 200 is `ready`.
async fn until_ready_is(
    addr: SocketAddr,
    base: &str,
    ready: bool,
    tries: usize,
    pause: Duration,
) -> Result<(), ()> {
    let path = format!("{base}/ready");
    for _ in 0..tries {
        let is = http::call(addr, "GET", &path, None, None, Duration::from_millis(300))
            .await
            .is_ok_and(|a| a.status == 200);
        if is == ready {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn served(at_us: u64, instance: usize, path: &str, open: bool) -> Served {
        Served {
            at_us,
            instance: Some(instance),
            method: "GET".into(),
            path: path.into(),
            handshake: false,
            cursor: true,
            status: 200,
            tether_error: None,
            retries: 0,
            open: Arc::new(AtomicBool::new(open)),
        }
    }
    fn held(at_us: u64, instance: usize, waiting: bool) -> balancer::Pending {
        balancer::Pending {
            at_us,
            instance,
            waiting: Arc::new(AtomicBool::new(waiting)),
        }
    }

    #[test]
    fn scale_5_an_answered_poll_is_no_open_stream_while_its_body_is_forwarded() {
        // Instance 0 answered a poll (body still being forwarded): no stream is open, the
        // client's next poll is on its way. `drain_instance "stream"` must wait for it.
        let answered = [served(100, 0, "/tether/poll", true)];
        assert_eq!(latest_open(&answered, &[held(100, 0, false)]), None);
        // The next poll, held by instance 2, is the stream.
        assert_eq!(
            latest_open(&answered, &[held(100, 0, false), held(180, 2, true)]),
            Some((180, 2))
        );
        // An SSE stream being forwarded is open.
        let sse = [served(50, 1, "/tether/sse", true)];
        assert_eq!(latest_open(&sse, &[]), Some((50, 1)));
        assert_eq!(
            latest_open(&[served(50, 1, "/tether/sse", false)], &[]),
            None
        );
    }
}
