//! HTTP plumbing shared by the rungs: URLs (WIRE-2), TLS, status mapping (WIRE-10, READY-1),
//! bounded body reads (LIMIT-2), `POST /send` and the readiness probe (READY-3/4).

use super::{Emitter, Io};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tether_engine::frame::encode_batch;
use tether_engine::transport::RECEIVING_INTERVAL;
use tether_engine::{ReadyAnswer, Token, TransportEvent, TransportFailure};
use tokio::sync::mpsc;
use url::Url;

/// `Tether-Error` (WIRE-10).
pub(crate) const TETHER_ERROR: &str = "tether-error";
/// `Tether-Retry-After-Ms` (READY-1).
pub(crate) const TETHER_RETRY_AFTER_MS: &str = "tether-retry-after-ms";
/// Largest `/ready` answer read.
const MAX_READY_BODY: usize = 4096;

/// The URL of `path` under the endpoint, with the protocol query (WIRE-2).
pub(crate) fn endpoint_url(
    endpoint: &Url,
    path: &str,
    channels: &[String],
    cursor: Option<&str>,
) -> Url {
    let mut url = endpoint.clone();
    let base = endpoint.path().trim_end_matches('/');
    url.set_path(&format!("{base}/{path}"));
    url.set_fragment(None);
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        q.append_pair("v", "1");
        if !channels.is_empty() {
            q.append_pair("channels", &channels.join(","));
        }
        if let Some(c) = cursor {
            q.append_pair("cursor", c);
        }
    }
    url
}

/// `Authorization: Bearer <token>` (AUTH-3), marked sensitive so no layer logs it (AUTH-4).
pub(crate) fn bearer(token: &Token) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// The TLS configuration of every rung and every client of the process: rustls with the ring
/// provider and the webpki roots (immutable, so shared).
pub(crate) fn shared_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    static TLS: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    TLS.get_or_init(|| tls_config().map(Arc::new)).clone()
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// How long an idle pooled HTTP connection is kept for reuse: below the idle timeouts of
/// common NAT gateways and load balancers (AWS ALB's default is 60 s, many carrier NATs
/// forget TCP mappings after 30 s to a few minutes), so a publish rarely lands on a
/// connection the network has already forgotten. See [`crate::transport_settings`].
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// TCP keepalive: first probe after this much idleness (it also refreshes NAT mappings).
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// TCP keepalive: interval between unanswered probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// TCP keepalive: unanswered probes before the kernel gives the connection up.
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// Linux `TCP_USER_TIMEOUT`: sent data unacknowledged this long fails the socket.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The pooled HTTP client of SSE, long-poll, `/send` and `/ready`.
///
/// No overall request timeout: SSE streams live for hours and the engine owns every
/// deadline (open timeout, heartbeat, poll hold, the `POST /send` deadline of OUTBOX-9),
/// closing connections it gave up on; aborting a request that never got its answer drops
/// its socket instead of returning it to the pool. The pool and TCP settings below only
/// make such dead sockets rarer and shorter-lived (see [`crate::transport_settings`]).
pub(crate) fn http_client(tls: rustls::ClientConfig) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(30))
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE_IDLE)
        .tcp_keepalive_interval(TCP_KEEPALIVE_INTERVAL)
        .tcp_keepalive_retries(TCP_KEEPALIVE_RETRIES);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let builder = builder.tcp_user_timeout(TCP_USER_TIMEOUT);
    builder.build().map_err(|e| e.to_string())
}

/// The retry-after hint of an answer: `Tether-Retry-After-Ms`, else `Retry-After` seconds.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get(TETHER_RETRY_AFTER_MS).and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    get("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(86_400)))
}

/// An answer that is not the expected one, as the engine needs to see it (FALLBACK-2a, READY-1).
pub(crate) fn status_failure(status: u16, headers: &HeaderMap) -> TransportFailure {
    TransportFailure::HttpStatus {
        status,
        tether_error: headers
            .get(TETHER_ERROR)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_owned()),
        retry_after: retry_after(headers),
    }
}

/// A request error before any answer: the server is unreachable (not a blocking signal).
pub(crate) fn request_failure(e: &reqwest::Error) -> TransportFailure {
    TransportFailure::Unreachable(describe(e))
}

/// An error text with its chain of sources (the URL carries no token: that goes in a header).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Read a whole body, at most `limit + 1` bytes: an over-long body is handed on truncated to
/// `limit + 1` bytes so the engine rejects it as `frame_too_large` (LIMIT-2) without this task
/// ever holding more.
pub(crate) async fn read_capped(resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    read_body(resp, limit, None).await
}

/// [`read_capped`], reporting bytes of the body still arriving to the engine as
/// `Receiving` at most once per `RECEIVING_INTERVAL` (HEARTBEAT-4, CONN-6): a large answer on
/// a slow link is alive, not a dead poll or a slow open.
pub(crate) async fn read_body(
    resp: reqwest::Response,
    limit: usize,
    progress: Option<&Emitter>,
) -> Result<Vec<u8>, String> {
    if let Some(len) = resp.content_length() {
        if len > limit as u64 {
            return Ok(vec![b' '; limit.saturating_add(1)]);
        }
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut meter = progress.map(|em| Meter::new(em.clone()));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| describe(&e))?;
        let room = limit.saturating_add(1).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() > limit {
            break;
        }
        if let Some(m) = meter.as_mut() {
            m.add(chunk.len()).await;
        }
    }
    Ok(body)
}

/// Throttled `Receiving` reports of one connection (see `TransportEvent::Receiving`).
pub(crate) struct Meter {
    em: Emitter,
    unreported: u64,
    last: Option<std::time::Instant>,
}

impl Meter {
    pub(crate) fn new(em: Emitter) -> Meter {
        Meter {
            em,
            unreported: 0,
            last: None,
        }
    }

    /// `n` more bytes arrived; report them if the last report is an interval old. The first
    /// bytes start the interval instead: a body that completes within it needs no report.
    pub(crate) async fn add(&mut self, n: usize) {
        self.unreported = self.unreported.saturating_add(n as u64);
        let now = std::time::Instant::now();
        match self.last {
            None => self.last = Some(now),
            Some(t) if now.duration_since(t) >= RECEIVING_INTERVAL => {
                self.last = Some(now);
                let bytes = std::mem::take(&mut self.unreported);
                self.em.emit(TransportEvent::Receiving { bytes }).await;
            }
            Some(_) => {}
        }
    }
}

/// The `POST /send` worker of an SSE or long-poll connection: batches are posted one after the
/// other, so publishes reach the server in outbox order (OUTBOX-3).
pub(crate) async fn sender(
    io: Arc<Io>,
    url: Url,
    auth: Option<HeaderValue>,
    mut batches: mpsc::UnboundedReceiver<Vec<String>>,
    em: Emitter,
) {
    while let Some(frames) = batches.recv().await {
        let body = encode_batch(frames);
        let http = match io.http() {
            Ok(h) => h,
            Err(e) => {
                em.emit(TransportEvent::SendFailed(TransportFailure::Unreachable(e)))
                    .await;
                continue;
            }
        };
        let mut req = http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(a) = &auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let event = match req.send().await {
            Err(e) => TransportEvent::SendFailed(request_failure(&e)),
            Ok(resp) if !resp.status().is_success() => {
                TransportEvent::SendFailed(status_failure(resp.status().as_u16(), resp.headers()))
            }
            Ok(resp) => match read_capped(resp, io.max_body_bytes()).await {
                Ok(body) => TransportEvent::SendReply(body),
                Err(e) => TransportEvent::SendFailed(TransportFailure::Io(e)),
            },
        };
        if let TransportEvent::SendFailed(f) = &event {
            tracing::debug!(failure = ?f, "POST /send failed");
        }
        if !em.emit(event).await {
            return;
        }
    }
}

/// One readiness probe (READY-4): `200 {"ready":true,"window_ms":[from,to]}` is ready,
/// any other answer is not ready, no answer is a failed probe.
pub(crate) async fn probe_ready(io: Arc<Io>) -> ReadyAnswer {
    let mut url = io.endpoint.clone();
    let base = io.endpoint.path().trim_end_matches('/');
    url.set_path(&format!("{base}/ready"));
    url.set_query(None);
    let Ok(http) = io.http() else {
        return ReadyAnswer::Failed;
    };
    let resp = match tokio::time::timeout(Duration::from_secs(10), http.get(url).send()).await {
        Ok(Ok(r)) => r,
        _ => return ReadyAnswer::Failed,
    };
    if resp.status().as_u16() != 200 {
        return ReadyAnswer::NotReady;
    }
    let Ok(body) = read_capped(resp, MAX_READY_BODY).await else {
        return ReadyAnswer::Failed;
    };
    parse_ready(&body)
}

fn parse_ready(body: &[u8]) -> ReadyAnswer {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ReadyAnswer::Failed;
    };
    if v.get("ready").and_then(|r| r.as_bool()) != Some(true) {
        return ReadyAnswer::NotReady;
    }
    let window = v.get("window_ms").and_then(|w| w.as_array());
    let num = |i: usize| window.and_then(|w| w.get(i)).and_then(|x| x.as_u64());
    match (num(0), num(1)) {
        (Some(from_ms), Some(to_ms)) => ReadyAnswer::Ready { from_ms, to_ms },
        _ => ReadyAnswer::Ready {
            from_ms: 0,
            to_ms: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_2_urls_keep_the_base_path() {
        let ep = Url::parse("http://h:1/tether/").unwrap_or_else(|e| panic!("{e}"));
        let u = endpoint_url(&ep, "poll", &["a".into(), "b:c".into()], Some("x y"));
        assert_eq!(u.path(), "/tether/poll");
        assert_eq!(u.query(), Some("v=1&channels=a%2Cb%3Ac&cursor=x+y"));
    }

    #[test]
    fn ready_1_hints_prefer_the_ms_header() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(TETHER_RETRY_AFTER_MS, HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn ready_3_answers_parse() {
        assert_eq!(
            parse_ready(br#"{"ready":true,"window_ms":[10,20]}"#),
            ReadyAnswer::Ready {
                from_ms: 10,
                to_ms: 20
            }
        );
        assert_eq!(parse_ready(br#"{"ready":false}"#), ReadyAnswer::NotReady);
        assert_eq!(parse_ready(b"nope"), ReadyAnswer::Failed);
    }

    #[test]
    fn auth_4_bearer_is_sensitive() {
        let v = bearer(&Token::new("s3cret")).unwrap_or_else(|| panic!("header"));
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("s3cret"));
    }
}
