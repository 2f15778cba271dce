//! Scenarios as data: suite files (embedded with `include_str!`, or read from `--scenarios DIR`), cases, steps and setups.

use crate::cluster::InstanceRef;
use crate::protocol::AuthScript;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use tether_server::FaultRule;
use thiserror::Error;

/// The suites compiled into the binary, so the main job runs from any directory.
pub const EMBEDDED: [(&str, &str); 14] = [
    ("state.json", include_str!("../../scenarios/state.json")),
    ("backoff.json", include_str!("../../scenarios/backoff.json")),
    ("ready.json", include_str!("../../scenarios/ready.json")),
    ("drain.json", include_str!("../../scenarios/drain.json")),
    ("resume.json", include_str!("../../scenarios/resume.json")),
    (
        "fallback.json",
        include_str!("../../scenarios/fallback.json"),
    ),
    ("outbox.json", include_str!("../../scenarios/outbox.json")),
    (
        "heartbeat.json",
        include_str!("../../scenarios/heartbeat.json"),
    ),
    ("auth.json", include_str!("../../scenarios/auth.json")),
    ("net.json", include_str!("../../scenarios/net.json")),
    ("wire.json", include_str!("../../scenarios/wire.json")),
    ("limits.json", include_str!("../../scenarios/limits.json")),
    ("cluster.json", include_str!("../../scenarios/cluster.json")),
    ("network.json", include_str!("../../scenarios/network.json")),
];

/// Why scenarios could not be loaded.
#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("{file}: {source}")]
    Parse {
        file: String,
        source: serde_json::Error,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}: case {case}: {message}")]
    Invalid {
        file: String,
        case: String,
        message: String,
    },
    #[error("duplicate case name {0}")]
    Duplicate(String),
}

/// Defaults every case starts from (fast millisecond timings, BACKOFF-9).
pub fn global_defaults() -> (Value, Value) {
    let server = serde_json::json!({
        "heartbeat_ms": 200,
        "poll_hold_ms": 500,
    });
    let client = serde_json::json!({
        "transports": ["websocket"],
        "seed": 7,
        "policy": {
            "floor_ms": 5, "base_ms": 30, "cap_ms": 200, "multiplier": 2,
            "heartbeat_ms": 400, "heartbeat_grace_ms": 300, "open_timeout_ms": 1500,
            "poll_hold_ms": 500, "probe_interval_ms": 60000, "upgrade_after_ms": 600000
        }
    });
    (server, client)
}

/// One suite file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub suite: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub defaults: SuiteDefaults,
    pub cases: Vec<RawCase>,
}

/// Suite-wide setup merged under every case's own.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteDefaults {
    #[serde(default)]
    pub server: Option<Value>,
    #[serde(default)]
    pub client: Option<Value>,
}

/// A case as written (setups not yet merged).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCase {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub covers: Vec<String>,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Run alone (not concurrently with other cases): for tight timing measurements.
    #[serde(default)]
    pub serial: bool,
    #[serde(default)]
    pub server: Option<Value>,
    #[serde(default)]
    pub client: Option<Value>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub check: Option<CheckSpec>,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

/// The embedded reference server's setup for a case.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSetup {
    pub heartbeat_ms: u64,
    pub poll_hold_ms: u64,
    /// Policy announced in the hello (clamped by clients, BACKOFF-8).
    #[serde(default)]
    pub policy: Option<Map<String, Value>>,
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    #[serde(default)]
    pub ring: Option<usize>,
    #[serde(default)]
    pub tokens: Option<Vec<String>>,
    #[serde(default)]
    pub forbidden_tokens: Vec<String>,
    #[serde(default)]
    pub ready_window_ms: Option<(u64, u64)>,
    #[serde(default)]
    pub max_frame_bytes: Option<usize>,
    /// Verify client tokens as HS256 JWTs with this secret (AUTH-5) instead of the token list.
    #[serde(default)]
    pub jwt_hs256_secret: Option<String>,
    /// Run the case against several instances on a real Redis behind the runner's balancer
    /// (the `cluster/...` cases, ADR-2) instead of one embedded server.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterSetup>,
    /// Run the server as its own process (`tether-conformance __server`, the
    /// `tether-server` code) on a port the runner keeps, so `kill_server` is a real
    /// `kill -9` and `start_server` a restart on the same port (the `network/...` cases).
    #[serde(default)]
    pub process: bool,
    /// Put the fault proxy between the client and the server, with these faults at start
    /// (`[]`: a clean proxy); the client's endpoint is the proxy's port, the server log still
    /// observes the server side, the proxy's events the client side.
    #[serde(default)]
    pub proxy: Option<Vec<tether_fault_proxy::Fault>>,
}

/// The client's configuration (the adapter's `configure`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSetup {
    pub transports: Vec<String>,
    #[serde(default)]
    pub policy: Map<String, Value>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub auth: Option<AuthScript>,
    #[serde(default)]
    pub drop_policy: Option<String>,
    #[serde(default)]
    pub max_frame_bytes: Option<usize>,
    /// Replaces the endpoint path (`/tether`), e.g. to reach an unknown endpoint.
    #[serde(default)]
    pub path: Option<String>,
}

/// A check and its parameters: `{"check": "name", ...}`.
#[derive(Clone, Debug, Deserialize)]
pub struct CheckSpec {
    pub check: String,
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

fn one() -> u32 {
    1
}
fn wait_default() -> u64 {
    5_000
}

/// One step of a case.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    // --- adapter commands ---
    /// Re-send `configure`, with `client` merged over the case's client setup.
    Configure {
        #[serde(default)]
        client: Option<Value>,
    },
    Connect,
    Subscribe {
        channel: String,
        /// The command must fail with this code.
        #[serde(default)]
        expect_error: Option<String>,
    },
    Unsubscribe {
        channel: String,
    },
    /// Publish `count` messages (`data` or `{"n": i}`), optionally with an app key.
    Publish {
        channel: String,
        #[serde(default)]
        data: Option<Value>,
        #[serde(default)]
        key: Option<String>,
        #[serde(default = "one")]
        count: u32,
        /// The command must fail with this code.
        #[serde(default)]
        expect_error: Option<String>,
    },
    SetNetwork {
        state: String,
    },
    Close,
    Barrier,
    /// Capability `persistence`: a new client on the same store.
    Restart,
    /// Barrier, then the client's `state` must contain these fields.
    ExpectState {
        state: Value,
    },
    // --- server actions ---
    ServerPublish {
        channel: String,
        #[serde(default = "one")]
        count: u32,
        #[serde(default)]
        data: Option<Value>,
        #[serde(default)]
        interval_ms: u64,
        /// Cluster: the instance whose publish API takes it (default: round robin).
        #[serde(default)]
        instance: Option<InstanceRef>,
        /// An idempotency key (OUTBOX-5, API-1): a repeated one appends nothing.
        #[serde(default)]
        id: Option<String>,
    },
    /// Apply fault rules (actions act at once).
    Faults {
        rules: Vec<FaultRule>,
        /// Cluster: the instances that get them (default: all).
        #[serde(default)]
        instance: Option<InstanceRef>,
    },
    ClearFaults,
    Drain {
        from_ms: u64,
        to_ms: u64,
    },
    Undrain,
    ServerRestart {
        #[serde(default)]
        lose_state: bool,
        #[serde(default)]
        down_ms: u64,
    },
    CloseAll {
        code: u16,
        #[serde(default)]
        reason: String,
        /// Cluster: the instances that close (default: all).
        #[serde(default)]
        instance: Option<InstanceRef>,
    },
    // --- cluster actions ---
    /// `kill -9` an instance (`"stream"`: the one serving the client's stream).
    KillInstance {
        instance: InstanceRef,
    },
    /// SIGTERM an instance: it drains (DRAIN-3) over the cluster's `drain_window_ms`, then exits.
    DrainInstance {
        instance: InstanceRef,
    },
    /// Wait until an instance has exited, with `code` (default 0).
    WaitInstanceExit {
        instance: InstanceRef,
        #[serde(default)]
        code: i32,
        #[serde(default = "wait_default")]
        timeout_ms: u64,
    },
    /// Stop the cluster's Redis (SIGTERM; the append-only file keeps what was acknowledged).
    StopRedis,
    /// Start it again on the same port and data.
    StartRedis,
    SetReady {
        ready: bool,
    },
    ExpireToken {
        token: String,
    },
    AddToken {
        token: String,
    },
    ForbidToken {
        token: String,
    },
    SetPolicy {
        #[serde(default)]
        policy: Option<Map<String, Value>>,
    },
    StopListening,
    ResumeListening,
    /// The runner's own HTTP GET on the server (path relative to the endpoint), saved under `name`.
    HttpGet {
        path: String,
        name: String,
        /// `GET` by default; `OPTIONS` for a CORS preflight (WEB-1).
        #[serde(default)]
        method: Option<String>,
        /// Extra request headers (e.g. `Origin`).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    // --- flow ---
    /// Wait until `count` more events match `event` (a JSON subset), consuming the stream.
    Wait {
        event: Value,
        #[serde(default = "one")]
        count: u32,
        #[serde(default = "wait_default")]
        timeout_ms: u64,
    },
    Sleep {
        ms: u64,
    },
    /// Remember this instant (server clock) and trace position under `name`.
    Mark {
        name: String,
    },
    Repeat {
        times: u32,
        steps: Vec<Step>,
    },
    /// `then` when the adapter declared `capability`, else `else`: for a requirement whose
    /// form differs on some clients (e.g. what a browser's WebSocket can see, ADAPTERS.md).
    If {
        capability: String,
        #[serde(default)]
        then: Vec<Step>,
        #[serde(default, rename = "else")]
        otherwise: Vec<Step>,
    },
    // --- network (the fault proxy and the server process) ---
    /// Replace the proxy's faults (seeded with the case seed; `[]` clears them).
    Net {
        faults: Vec<tether_fault_proxy::Fault>,
    },
    /// Cut every connection open through the proxy now (`reset`, `fin`, `blackhole`).
    NetCut {
        cut: tether_fault_proxy::Cut,
    },
    /// `kill -9` the server process (`server.process`); its in-memory history is lost.
    KillServer,
    /// Start the server process again on the same port (a new epoch, RESUME-4).
    StartServer,
    /// Start continuous traffic in the background: the server publishes `{"n": k}` on each
    /// of `channels` every `every_ms`; with `publish`, the client publishes `{"n": k}`
    /// through the adapter every `publish.every_ms`. Runs until `traffic_stop`.
    TrafficStart {
        channels: Vec<String>,
        every_ms: u64,
        #[serde(default)]
        publish: Option<TrafficPublish>,
        /// Pad every server message with a string of this many bytes (`"pad"`): large
        /// messages on a slow link.
        #[serde(default)]
        pad_bytes: usize,
    },
    /// Stop the traffic, then wait (at most `settle_ms`) until the app saw the last message
    /// of every channel and every publish was acknowledged or dropped.
    TrafficStop {
        #[serde(default = "settle_default")]
        settle_ms: u64,
    },
    /// For `ms`: pause a seeded `U(gap_ms.0, gap_ms.1)`, then run one step drawn from
    /// `menu` (seeded with the case seed), again and again: a random mix of faults.
    Mix {
        ms: u64,
        gap_ms: (u64, u64),
        menu: Vec<Step>,
    },
}

/// The client half of `traffic_start`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficPublish {
    pub channel: String,
    pub every_ms: u64,
}

fn settle_default() -> u64 {
    5_000
}

/// A case ready to run: setups merged and parsed.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub suite: String,
    pub description: String,
    pub covers: Vec<String>,
    pub requires: Vec<String>,
    pub timeout_ms: u64,
    pub serial: bool,
    /// The case seed: the fault proxy's and the `mix` steps' randomness (a hash of the
    /// name unless `--seed` gives one; printed when the case fails).
    pub seed: u64,
    pub server: ServerSetup,
    /// The merged client setup as JSON (re-merged by `configure` steps).
    pub client_json: Value,
    pub client: ClientSetup,
    pub steps: Vec<Step>,
    pub checks: Vec<CheckSpec>,
}

/// Deep-merge `over` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Parse one suite file's text into cases.
pub fn parse_suite(file: &str, text: &str) -> Result<Vec<Case>, ScenarioError> {
    let suite: SuiteFile = serde_json::from_str(text).map_err(|source| ScenarioError::Parse {
        file: file.to_owned(),
        source,
    })?;
    let (gs, gc) = global_defaults();
    let mut out = Vec::new();
    for raw in suite.cases {
        let invalid = |message: String| ScenarioError::Invalid {
            file: file.to_owned(),
            case: raw.name.clone(),
            message,
        };
        let mut server = gs.clone();
        let mut client = gc.clone();
        if let Some(s) = &suite.defaults.server {
            merge(&mut server, s);
        }
        if let Some(c) = &suite.defaults.client {
            merge(&mut client, c);
        }
        if let Some(s) = &raw.server {
            merge(&mut server, s);
        }
        if let Some(c) = &raw.client {
            merge(&mut client, c);
        }
        let server_setup: ServerSetup =
            serde_json::from_value(server).map_err(|e| invalid(format!("server setup: {e}")))?;
        let client_setup: ClientSetup = serde_json::from_value(client.clone())
            .map_err(|e| invalid(format!("client setup: {e}")))?;
        let mut checks = raw.checks.clone();
        if let Some(c) = raw.check.clone() {
            checks.insert(0, c);
        }
        if checks.is_empty() {
            return Err(invalid("no check".into()));
        }
        if raw.covers.is_empty() {
            return Err(invalid("`covers` is empty".into()));
        }
        out.push(Case {
            name: raw.name.clone(),
            suite: suite.suite.clone(),
            description: raw.description.clone(),
            covers: raw.covers.clone(),
            requires: raw.requires.clone(),
            timeout_ms: raw.timeout_ms.unwrap_or(30_000),
            serial: raw.serial,
            seed: name_seed(&raw.name),
            server: server_setup,
            client_json: client,
            client: client_setup,
            steps: raw.steps.clone(),
            checks,
        });
    }
    Ok(out)
}

/// The default case seed: FNV-1a of the case name (stable across runs and platforms).
pub fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Load every case: from `dir` (every `*.json`, sorted) or the embedded suites.
pub fn load(dir: Option<&Path>) -> Result<Vec<Case>, ScenarioError> {
    let mut files: Vec<(String, String)> = Vec::new();
    match dir {
        None => {
            for (name, text) in EMBEDDED {
                files.push((name.to_owned(), text.to_owned()));
            }
        }
        Some(d) => {
            let io = |source| ScenarioError::Io {
                path: d.display().to_string(),
                source,
            };
            let mut names: Vec<_> = std::fs::read_dir(d)
                .map_err(io)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            names.sort();
            for p in names {
                let text = std::fs::read_to_string(&p).map_err(|source| ScenarioError::Io {
                    path: p.display().to_string(),
                    source,
                })?;
                files.push((p.display().to_string(), text));
            }
        }
    }
    let mut cases = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, text) in files {
        for c in parse_suite(&name, &text)? {
            if !seen.insert(c.name.clone()) {
                return Err(ScenarioError::Duplicate(c.name));
            }
            cases.push(c);
        }
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_suites_parse() {
        let cases = load(None).expect("embedded suites");
        assert!(cases.len() >= 12);
        for c in &cases {
            assert!(c.name.starts_with(&format!("{}/", c.suite)), "{}", c.name);
        }
    }

    #[test]
    fn merge_is_deep() {
        let mut a = serde_json::json!({"policy":{"a":1,"b":2},"x":[1]});
        merge(&mut a, &serde_json::json!({"policy":{"b":3},"x":[2]}));
        assert_eq!(a, serde_json::json!({"policy":{"a":1,"b":3},"x":[2]}));
    }
}
