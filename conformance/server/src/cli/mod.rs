//! The `tether-server` binary as a library function (the binary and the conformance runner's cluster instances run the same code): settings, store, TLS, drain on SIGTERM.

mod settings;

use crate::auth::SharedAuthenticator;
use crate::faults::FaultRule;
use crate::jwt::JwtVerifier;
use crate::redis_store::{RedisConfig, RedisStore};
use crate::{ChannelStore, Server, ServerConfig, ServerError, ServerState};
use serde_json::json;
use settings::{find, Kind, Raw};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tether_engine::policy::PolicyWire;

/// Why the binary stopped.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--help`: print the usage, exit 0.
    #[error("{0}")]
    Help(String),
    /// A bad setting (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server failed (exit 1).
    #[error(transparent)]
    Server(#[from] ServerError),
    /// I/O (exit 1).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

fn usage(m: impl Into<String>) -> CliError {
    CliError::Usage(m.into())
}

/// Which store the binary runs with.
#[derive(Clone, Debug)]
pub enum StoreChoice {
    /// [`MemoryStore`](crate::MemoryStore): one instance.
    Memory,
    /// [`RedisStore`]: shared by every instance.
    Redis(RedisConfig),
}

/// Everything the binary needs to start, from the settings.
#[derive(Debug)]
pub struct Launch {
    /// The server configuration.
    pub config: ServerConfig,
    /// The store.
    pub store: StoreChoice,
    /// The drain window told to clients on SIGTERM.
    pub drain_window_ms: (u64, u64),
    /// After the window, how long to wait for connections to close.
    pub drain_grace: Duration,
    /// Fault rules applied at start.
    pub faults: Vec<FaultRule>,
    /// Demo traffic: `(channel, every ms)`.
    pub ticks: Vec<(String, u64)>,
    /// Where to write the observation log at exit.
    pub log_json: Option<PathBuf>,
    /// `control = "stdio"`: driven by a harness over stdin/stdout ([`crate::control`]).
    pub control: bool,
}

/// Read the settings: `--config` / `TETHER_CONFIG` file, then `TETHER_*` variables of
/// `env`, then `args` (the arguments after the program name).
pub fn parse(
    args: &[String],
    env: impl Iterator<Item = (String, String)>,
) -> Result<Launch, CliError> {
    let env: Vec<(String, String)> = env.collect();
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    let mut config_file = env
        .iter()
        .find(|(k, _)| k == "TETHER_CONFIG")
        .map(|(_, v)| v.clone());
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(CliError::Help(settings::help()));
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        if name == "--config" {
            config_file = Some(value()?);
            continue;
        }
        // Singular spellings of the list settings, repeatable.
        let key = match name {
            "--token" => "tokens",
            "--forbidden-token" => "forbidden_tokens",
            "--publish-key" => "publish_keys",
            other => other
                .strip_prefix("--")
                .map(|k| k.replace('-', "_"))
                .and_then(|k| find(&k).map(|s| s.key))
                .ok_or_else(|| usage(format!("unknown argument {other:?} (try --help)")))?,
        };
        flags.push((key, value()?));
    }
    let mut raw = Raw::default();
    if let Some(path) = &config_file {
        let text =
            std::fs::read_to_string(path).map_err(|e| usage(format!("config file {path}: {e}")))?;
        raw.file(path, &text).map_err(usage)?;
    }
    raw.env(env.into_iter());
    let mut lists: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (key, v) in flags {
        let kind = find(key).map(|s| s.kind);
        if matches!(kind, Some(Kind::List | Kind::SecretList)) {
            lists.entry(key).or_default().push(v);
        } else {
            raw.flag(key, v);
        }
    }
    for (key, vs) in lists {
        if let Some(s) = find(key) {
            raw.flag(s.key, vs.join(","));
        }
    }
    build(&raw)
}

fn num<T: std::str::FromStr>(raw: &Raw, key: &str) -> Result<Option<T>, CliError> {
    match raw.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| usage(format!("{}: not a valid number", raw.origin(key)))),
    }
}

fn pair(raw: &Raw, key: &str) -> Result<Option<(u64, u64)>, CliError> {
    let Some(v) = raw.get(key) else {
        return Ok(None);
    };
    let bad = || usage(format!("{}: expected FROM,TO in ms", raw.origin(key)));
    let (a, b) = v.split_once(',').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a > b {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

fn list(raw: &Raw, key: &str) -> Vec<String> {
    raw.get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn read_secret(raw: &Raw, key: &str) -> Result<Option<String>, CliError> {
    match raw.get(key) {
        None => Ok(None),
        Some(p) => std::fs::read_to_string(p)
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|e| usage(format!("{}: {e}", raw.origin(key)))),
    }
}

fn build(raw: &Raw) -> Result<Launch, CliError> {
    let mut c = ServerConfig {
        listen: ([127, 0, 0, 1], 8787).into(),
        log_capacity: 0,
        ..Default::default()
    };
    if let Some(v) = raw.get("listen") {
        c.listen = v.parse().map_err(|_| {
            usage(format!(
                "{}: not an address like 0.0.0.0:8787",
                raw.origin("listen")
            ))
        })?;
    }
    if let Some(v) = raw.get("base_path") {
        c.base_path = v.to_owned();
    }
    c.server_id = raw.get("server_id").map(str::to_owned);
    let ms = |k: &str| num::<u64>(raw, k).map(|o| o.map(Duration::from_millis));
    if let Some(d) = ms("heartbeat_ms")? {
        c.heartbeat = d;
    }
    if let Some(d) = ms("poll_hold_ms")? {
        c.poll_hold = d;
    }
    if let Some(n) = num(raw, "ring_capacity")? {
        c.ring_capacity = n;
    }
    if let Some(n) = num(raw, "max_channels")? {
        c.max_channels = n;
    }
    if let Some(n) = num(raw, "max_channels_per_connection")? {
        c.max_channels_per_connection = n;
    }
    if let Some(n) = num(raw, "max_frame_bytes")? {
        c.max_frame_bytes = n;
    }
    if let Some(n) = num::<u64>(raw, "dedupe_ttl_s")? {
        c.dedupe_ttl = Duration::from_secs(n);
    }
    if let Some(n) = num(raw, "dedupe_capacity")? {
        c.dedupe_capacity = n;
    }
    let control = match raw.get("control") {
        None | Some("") => false,
        Some("stdio") => true,
        Some(_) => {
            return Err(usage(format!(
                "{}: the only control channel is stdio",
                raw.origin("control")
            )))
        }
    };
    if control {
        // The control channel streams the observation log out: keep one.
        c.log_capacity = ServerConfig::default().log_capacity;
    }
    if let Some(n) = num(raw, "log_capacity")? {
        c.log_capacity = n;
    }
    if let Some(w) = pair(raw, "ready_window_ms")? {
        c.ready_window_ms = w;
    }
    c.admission_per_sec = num(raw, "admission_per_sec")?;
    c.admission_burst = num(raw, "admission_burst")?;
    if let Some(p) = raw.get("policy") {
        let p: PolicyWire =
            serde_json::from_str(p).map_err(|e| usage(format!("{}: {e}", raw.origin("policy"))))?;
        c.policy = Some(p);
    }
    let tokens = list(raw, "tokens");
    if !tokens.is_empty() {
        c.tokens = Some(tokens);
    }
    c.forbidden_tokens = list(raw, "forbidden_tokens");
    c.publish_keys = list(raw, "publish_keys");
    if let Some(text) = read_secret(raw, "publish_keys_file")? {
        c.publish_keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    c.admin_key = raw.get("admin_key").map(str::to_owned);
    let origins = list(raw, "allowed_origins");
    if !origins.is_empty() && origins.iter().all(|o| o != "any" && o != "*") {
        c.allowed_origins = Some(origins);
    }
    c.metrics_path = match raw.values.get("metrics_path") {
        Some((v, _)) if v.is_empty() => None,
        Some((v, _)) => Some(v.clone()),
        None => c.metrics_path,
    };
    c.authenticator = jwt(raw)?;
    match (raw.get("tls_cert"), raw.get("tls_key")) {
        (Some(cert), Some(key)) => {
            c.tls = Some(crate::tls::load_pem(cert.as_ref(), key.as_ref())?);
        }
        (None, None) => {}
        _ => return Err(usage("tls_cert and tls_key go together")),
    }
    let store = match raw.get("store").unwrap_or("memory") {
        "memory" => StoreChoice::Memory,
        "redis" => {
            let url = raw.get("redis_url").unwrap_or("redis://127.0.0.1:6379/");
            let mut r = RedisConfig::new(url).with_limits_of(&c);
            if let Some(p) = raw.get("redis_prefix") {
                r.prefix = p.to_owned();
            }
            StoreChoice::Redis(r)
        }
        other => {
            return Err(usage(format!(
                "{}: `{other}` is not memory or redis",
                raw.origin("store")
            )))
        }
    };
    let faults = match raw.get("faults") {
        None => Vec::new(),
        Some(p) => {
            let text = std::fs::read_to_string(p)?;
            crate::fault_file::parse(&text).map_err(|e| {
                usage(format!(
                    "{}: bad faults file {p}: {e}",
                    raw.origin("faults")
                ))
            })?
        }
    };
    let mut ticks = Vec::new();
    for t in list(raw, "tick") {
        let (ch, every) = t
            .rsplit_once(':')
            .ok_or_else(|| usage("tick: CHANNEL:MS"))?;
        ticks.push((
            ch.to_owned(),
            every.parse().map_err(|_| usage("tick: bad interval"))?,
        ));
    }
    let config = c.announce_timings();
    config.validate()?;
    Ok(Launch {
        config,
        store,
        drain_window_ms: pair(raw, "drain_window_ms")?.unwrap_or((0, 10_000)),
        drain_grace: Duration::from_millis(num(raw, "drain_grace_ms")?.unwrap_or(2_000)),
        faults,
        ticks,
        log_json: raw.get("log_json").map(PathBuf::from),
        control,
    })
}

fn jwt(raw: &Raw) -> Result<Option<SharedAuthenticator>, CliError> {
    let secret = match raw.get("jwt_hs256_secret") {
        Some(s) => Some(s.to_owned()),
        None => read_secret(raw, "jwt_hs256_secret_file")?,
    };
    let rs = raw.get("jwt_rs256_public_key_file");
    let v = match (secret, rs) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(usage(
                "choose one of jwt_hs256_secret and jwt_rs256_public_key_file",
            ))
        }
        (Some(s), None) => JwtVerifier::hs256(s.as_bytes())
            .map_err(|e| usage(format!("{}: {e}", raw.origin("jwt_hs256_secret"))))?,
        (None, Some(p)) => {
            let pem = std::fs::read(p)
                .map_err(|e| usage(format!("{}: {e}", raw.origin("jwt_rs256_public_key_file"))))?;
            JwtVerifier::rs256_pem(&pem)
                .map_err(|e| usage(format!("{}: {e}", raw.origin("jwt_rs256_public_key_file"))))?
        }
    };
    let mut v = v;
    if let Some(i) = raw.get("jwt_issuer") {
        v = v.issuer(i);
    }
    if let Some(a) = raw.get("jwt_audience") {
        v = v.audience(a);
    }
    if let Some(l) = num::<u64>(raw, "jwt_leeway_s")? {
        v = v.leeway(Duration::from_secs(l));
    }
    v = v.channel_claims(
        raw.get("jwt_channels_claim").unwrap_or("channels"),
        raw.get("jwt_publish_claim").unwrap_or("publish"),
    );
    Ok(Some(SharedAuthenticator::new(v)))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            r = tokio::signal::ctrl_c() => r.map(|()| "Ctrl-C"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

/// Start the server, print its endpoint, run until SIGTERM / Ctrl-C, drain (DRAIN-3), exit.
pub async fn run(l: Launch) -> Result<(), CliError> {
    let (store, kind): (Arc<dyn ChannelStore>, &str) = match &l.store {
        StoreChoice::Memory => (
            Arc::new(crate::MemoryStore::new(crate::state::memory_config(
                &l.config,
            ))),
            "memory",
        ),
        StoreChoice::Redis(r) => (
            Arc::new(RedisStore::connect(r.clone()).map_err(ServerError::from)?),
            "redis",
        ),
    };
    let state = ServerState::with_store(l.config, store)?;
    let server = Server::start_with_state(state).await?;
    server.set_faults(l.faults);
    // Startup actions (e.g. `stop_listening`) are in force before the endpoint is announced.
    server.state().listener_settled().await;
    if l.control {
        // The harness owns the process: it ends the channel (or kills it); no drain.
        spawn_ticks(&server, l.ticks);
        let r = tokio::select! {
            r = crate::control::serve(&server, tokio::io::stdin(), tokio::io::stdout()) => r,
            r = stop_signal() => r.map(|_| ()),
        };
        server.shutdown().await;
        return Ok(r?);
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "tether-server listening on {} (server_id {}, store {kind})",
            server.endpoint_url(),
            server.server_id()
        );
        let _ = out.flush();
    }
    spawn_ticks(&server, l.ticks);
    let why = stop_signal().await?;
    let (from, to) = l.drain_window_ms;
    let told = server.drain(from, to);
    eprintln!(
        "tether-server: {why}: draining {told} connections (reconnect window {from}..{to} ms)"
    );
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_millis(to) + l.drain_grace;
    // Long-poll clients hold no connection between polls: give them a moment to hear it.
    let min = started + Duration::from_millis(500).min(Duration::from_millis(to));
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline || (now >= min && server.connections().is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(path) = l.log_json {
        let text = serde_json::to_string_pretty(&server.log().snapshot()).unwrap_or_default();
        std::fs::write(path, text)?;
    }
    eprintln!(
        "tether-server: drained, {} connections left; exiting",
        server.connections().len()
    );
    server.shutdown().await;
    Ok(())
}

/// Demo traffic: `{"tick": n}` on each channel at its interval.
fn spawn_ticks(server: &Server, ticks: Vec<(String, u64)>) {
    for (channel, every) in ticks {
        let st = server.state().clone();
        tokio::spawn(async move {
            let mut n: u64 = 0;
            let mut iv = tokio::time::interval(Duration::from_millis(every.max(1)));
            loop {
                iv.tick().await;
                n += 1;
                let _ = st.publish(&channel, json!({ "tick": n })).await;
            }
        });
    }
}

/// The binary's `main`: parse `args` (after the program name) and the environment, run on a
/// new Tokio runtime, and return the process exit code (0, 1 failure, 2 bad settings).
pub fn main_with_args(args: Vec<String>) -> i32 {
    let launch = match parse(&args, std::env::vars()) {
        Ok(l) => l,
        Err(CliError::Help(h)) => {
            println!("{h}");
            return 0;
        }
        Err(e) => {
            eprintln!("tether-server: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether-server: runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(launch)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tether-server: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_env_and_file_build_the_config() {
        let dir = std::env::temp_dir().join(format!("tether-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("t.toml");
        std::fs::write(
            &file,
            "heartbeat_ms = 4000\nstore = \"redis\"\nredis_prefix = \"app\"\ntokens = [\"t1\"]\ndrain_window_ms = [100, 900]\n",
        )
        .expect("write");
        let env = vec![
            ("TETHER_CONFIG".to_owned(), file.display().to_string()),
            ("TETHER_HEARTBEAT_MS".to_owned(), "6000".to_owned()),
            (
                "TETHER_PUBLISH_KEYS".to_owned(),
                "k-0123456789abcdef".to_owned(),
            ),
        ];
        let l = parse(
            &args(&[
                "--listen",
                "127.0.0.1:0",
                "--token",
                "t2",
                "--ring-capacity=64",
            ]),
            env.into_iter(),
        )
        .expect("parse");
        assert_eq!(l.config.heartbeat, Duration::from_secs(6));
        assert_eq!(l.config.ring_capacity, 64);
        assert_eq!(
            l.config.tokens,
            Some(vec!["t2".to_owned()]),
            "the flag replaces the file's list"
        );
        assert_eq!(l.config.publish_keys, vec!["k-0123456789abcdef".to_owned()]);
        assert_eq!(l.drain_window_ms, (100, 900));
        match l.store {
            StoreChoice::Redis(r) => {
                assert_eq!(r.prefix, "app");
                assert_eq!(r.ring_capacity, 64);
            }
            StoreChoice::Memory => panic!("redis expected"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_settings_are_usage_errors_that_name_the_source_not_the_value() {
        let env = vec![(
            "TETHER_JWT_HS256_SECRET".to_owned(),
            "short-secret".to_owned(),
        )];
        let e = parse(&[], env.into_iter()).expect_err("short secret");
        let m = e.to_string();
        assert!(matches!(e, CliError::Usage(_)));
        assert!(
            m.contains("TETHER_JWT_HS256_SECRET") && !m.contains("short-secret"),
            "{m}"
        );
        assert!(matches!(
            parse(&args(&["--bogus", "1"]), std::iter::empty()),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            parse(&args(&["--heartbeat-ms", "x"]), std::iter::empty()),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            parse(&args(&["--help"]), std::iter::empty()),
            Err(CliError::Help(_))
        ));
    }
}
