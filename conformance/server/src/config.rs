//! Server configuration.

use std::net::SocketAddr;
use std::time::Duration;
use tether_engine::policy::PolicyWire;

/// Everything the server can be configured with. Build with `..Default::default()`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port; see [`Server::addr`](crate::Server::addr)).
    pub listen: SocketAddr,
    /// Base path of the endpoints (`/tether`).
    pub base_path: String,
    /// A second base path serving the same endpoints, the default target of the `redirect`
    /// fault (`/tether-alt`).
    pub alt_base_path: String,
    /// The hello's `server_id`; random when absent.
    pub server_id: Option<String>,
    /// Heartbeat interval (HEARTBEAT-1): WebSocket ping, SSE comment, longest long-poll hold.
    pub heartbeat: Duration,
    /// Policy announced in every hello (ADR-3); see [`ServerConfig::announce_timings`].
    pub policy: Option<PolicyWire>,
    /// Messages kept per channel for replay (RESUME-3).
    pub ring_capacity: usize,
    /// Most channels the store creates.
    pub max_channels: usize,
    /// Most channels one connection subscribes to.
    pub max_channels_per_connection: usize,
    /// Longest long-poll hold.
    pub poll_hold: Duration,
    /// The `window_ms` of `GET /ready` (READY-3/4).
    pub ready_window_ms: (u64, u64),
    /// Handshakes admitted per second (READY-1); `None`: unlimited.
    pub admission_per_sec: Option<f64>,
    /// Token-bucket burst; default: `max(1, admission_per_sec)`.
    pub admission_burst: Option<f64>,
    /// Smallest retry-after hint of an admission refusal.
    pub admission_retry_after: Duration,
    /// Accepted tokens; `Some`: a valid token is required (AUTH-3).
    pub tokens: Option<Vec<String>>,
    /// Tokens refused with 403 `forbidden`.
    pub forbidden_tokens: Vec<String>,
    /// Largest inbound frame (LIMIT-1); POST bodies may be 16 times that.
    pub max_frame_bytes: usize,
    /// How long publish ids are remembered (OUTBOX-5: at least 10 minutes).
    pub dedupe_ttl: Duration,
    /// Most publish ids remembered.
    pub dedupe_capacity: usize,
    /// Entries kept by the observation log.
    pub log_capacity: usize,
    /// A connection whose socket accepts no write for this long is dropped.
    pub send_timeout: Duration,
    /// The `Retry-After` of `not_ready` answers while the shared store is unreachable.
    pub not_ready_retry_after: Duration,
    /// Server API keys accepted by `POST {endpoint}/publish` (`Authorization: Bearer KEY`);
    /// empty: the backend publish API is off (404).
    pub publish_keys: Vec<String>,
    /// Verifies client tokens (AUTH-3), e.g. [`JwtVerifier`](crate::JwtVerifier); `None`: the
    /// static `tokens` list decides.
    pub authenticator: Option<crate::auth::SharedAuthenticator>,
    /// TLS for [`Server::start`](crate::Server::start) (see [`tls::load_pem`](crate::tls::load_pem)).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Path of the Prometheus metrics (outside the base path); `None`: not served.
    pub metrics_path: Option<String>,
    /// Enables `{base}/_admin/...` (faults, drain, close) for this bearer key; `None`: off.
    pub admin_key: Option<String>,
    /// Origins whose pages may read the answers (WEB-1), exact `scheme://host[:port]`
    /// strings; `None`: every origin (the reference default).
    pub allowed_origins: Option<Vec<String>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_path: "/tether".into(),
            alt_base_path: "/tether-alt".into(),
            server_id: None,
            heartbeat: Duration::from_secs(15),
            policy: None,
            ring_capacity: 1024,
            max_channels: 100_000,
            max_channels_per_connection: 256,
            poll_hold: Duration::from_secs(25),
            ready_window_ms: (0, 5_000),
            admission_per_sec: None,
            admission_burst: None,
            admission_retry_after: Duration::from_secs(1),
            tokens: None,
            forbidden_tokens: Vec::new(),
            max_frame_bytes: 1024 * 1024,
            dedupe_ttl: Duration::from_secs(600),
            dedupe_capacity: 100_000,
            log_capacity: 100_000,
            send_timeout: Duration::from_secs(10),
            not_ready_retry_after: Duration::from_secs(1),
            publish_keys: Vec::new(),
            authenticator: None,
            tls: None,
            metrics_path: Some("/metrics".into()),
            admin_key: None,
            allowed_origins: None,
        }
    }
}

impl ServerConfig {
    /// Fill the announced policy's `heartbeat_ms` and `poll_hold_ms` from this server's
    /// settings (where not already set), so clients time out consistently (HEARTBEAT-2/4).
    pub fn announce_timings(mut self) -> Self {
        let mut p = self.policy.take().unwrap_or_default();
        p.heartbeat_ms
            .get_or_insert(self.heartbeat.as_secs_f64() * 1000.0);
        p.poll_hold_ms
            .get_or_insert(self.poll_hold.as_secs_f64() * 1000.0);
        self.policy = Some(p);
        self
    }

    /// Check values that would make the server misbehave.
    pub fn validate(&self) -> Result<(), crate::ServerError> {
        let bad = |m: &str| Err(crate::ServerError::Config(m.to_owned()));
        if !self.base_path.starts_with('/')
            || self.base_path.len() < 2
            || self.base_path.ends_with('/')
        {
            return bad("base_path must start with `/` and not end with one");
        }
        if !self.alt_base_path.starts_with('/')
            || self.alt_base_path == self.base_path
            || self.alt_base_path.ends_with('/')
        {
            return bad("alt_base_path must start with `/` and differ from base_path");
        }
        if self.heartbeat.is_zero() || self.poll_hold.is_zero() || self.send_timeout.is_zero() {
            return bad("heartbeat, poll_hold and send_timeout must be positive");
        }
        if self.ring_capacity == 0 || self.max_frame_bytes < 1024 {
            return bad("ring_capacity must be >= 1 and max_frame_bytes >= 1024");
        }
        if self.ready_window_ms.0 > self.ready_window_ms.1 {
            return bad("ready_window_ms must be [from, to] with from <= to");
        }
        if let Some(m) = &self.metrics_path {
            if !m.starts_with('/') || m.starts_with(&format!("{}/", self.base_path)) {
                return bad("metrics_path must start with `/` and lie outside base_path");
            }
        }
        if self.publish_keys.iter().any(|k| k.len() < 16) {
            return bad("publish keys must be at least 16 characters");
        }
        if let Some(r) = self.admission_per_sec {
            if !(r.is_finite() && r > 0.0) {
                return bad("admission_per_sec must be positive");
            }
        }
        Ok(())
    }
}
