//! HTTP plumbing shared by the endpoints: query parsing, `Tether-Error` answers (WIRE-10), the handshake gate, request-stage faults.

use crate::auth::AuthRefusal;
use crate::faults::{Fault, FaultTarget};
use crate::log::{redact_query, LogEntry, LogKind};
use crate::state::Shared;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tether_engine::frame::{valid_channel, ServerFrame, MAX_CURSOR_BYTES};
use tokio::sync::Notify;

/// Header naming the server's refusal code (WIRE-10).
pub const TETHER_ERROR: &str = "tether-error";
/// Header carrying a retry-after hint in milliseconds (READY-1).
pub const TETHER_RETRY_AFTER_MS: &str = "tether-retry-after-ms";

/// Inserted into every request by [`Server`](crate::Server)'s accept loop: notifying it cuts
/// the TCP connection at once.
#[derive(Clone, Default)]
pub(crate) struct TcpCut(pub Arc<Notify>);

/// The query parameters of WIRE-2, plus the token from `Authorization: Bearer`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params {
    pub v: Option<String>,
    pub channels: Vec<String>,
    pub cursor: Option<String>,
    pub token: Option<String>,
    pub hello: bool,
    pub hold_ms: Option<u64>,
    /// The query with the token redacted, for the log.
    pub redacted: Option<String>,
    /// The raw query, for redirects.
    pub raw: Option<String>,
}

/// Why the parameters were refused (400).
pub(crate) struct BadParams {
    pub code: &'static str,
    pub message: String,
}

impl Params {
    pub fn parse<B>(req: &Request<B>, max_channels: usize) -> Result<Params, BadParams> {
        let raw = req.uri().query().map(str::to_owned);
        let pairs: Vec<(String, String)> = match &raw {
            Some(q) => axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
                .map(|q| q.0)
                .map_err(|_| BadParams {
                    code: "bad_request",
                    message: format!("bad query {}", redact_query(q)),
                })?,
            None => Vec::new(),
        };
        let mut p = Params {
            redacted: raw.as_deref().map(redact_query),
            raw,
            ..Params::default()
        };
        for (k, v) in pairs {
            match k.as_str() {
                "v" => p.v = Some(v),
                "channels" => {
                    for c in v.split(',').filter(|c| !c.is_empty()) {
                        if !valid_channel(c) {
                            return Err(BadParams {
                                code: "bad_request",
                                message: format!("invalid channel {c:?}"),
                            });
                        }
                        if !p.channels.iter().any(|x| x == c) {
                            p.channels.push(c.to_owned());
                        }
                    }
                }
                "cursor" if !v.is_empty() => p.cursor = Some(v),
                "access_token" if !v.is_empty() => p.token = Some(v),
                "hello" => p.hello = v == "1" || v == "true",
                "hold_ms" => p.hold_ms = v.parse().ok(),
                _ => {}
            }
        }
        if p.channels.len() > max_channels {
            return Err(BadParams {
                code: "bad_request",
                message: format!("more than {max_channels} channels"),
            });
        }
        if let Some(v) = &p.v {
            if v != "1" {
                return Err(BadParams {
                    code: "protocol_version",
                    message: format!("protocol version {v:?} is not supported"),
                });
            }
        }
        if let Some(t) = bearer(req.headers()) {
            p.token = Some(t);
        }
        if p.cursor
            .as_ref()
            .is_some_and(|c| c.len() > MAX_CURSOR_BYTES * 4)
        {
            p.cursor = Some(String::from("!too-long"));
        }
        Ok(p)
    }

    /// The channel list as a key (long-poll follow-up faults).
    pub fn channels_key(&self) -> String {
        self.channels.join(",")
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

/// An error answer with `Tether-Error: code` (WIRE-10), optional retry-after headers (READY-1).
pub(crate) fn tether_error(
    status: StatusCode,
    code: &str,
    retry_after: Option<Duration>,
    message: &str,
) -> Response {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert(TETHER_ERROR, v);
    }
    if let Some(ra) = retry_after {
        let ms = u64::try_from(ra.as_millis()).unwrap_or(u64::MAX);
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(ms.div_ceil(1000).max(1)),
        );
        h.insert(TETHER_RETRY_AFTER_MS, HeaderValue::from(ms));
    }
    resp
}

/// A plain response (status, content type, body).
pub(crate) fn plain(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// A JSON array answer (long-poll, POST /send).
pub(crate) fn json_batch(frames: &[ServerFrame]) -> Response {
    let body = tether_engine::frame::encode_batch(frames.iter().map(ServerFrame::encode));
    let mut resp = plain(StatusCode::OK, "application/json", body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The frame's `type`.
pub(crate) fn frame_type(f: &ServerFrame) -> &'static str {
    match f {
        ServerFrame::Hello { .. } => "hello",
        ServerFrame::Msg { .. } => "msg",
        ServerFrame::Subscribed { .. } => "subscribed",
        ServerFrame::Reset { .. } => "reset",
        ServerFrame::Ack { .. } => "ack",
        ServerFrame::Error { .. } => "error",
        ServerFrame::Drain { .. } => "drain",
        ServerFrame::RetryLater { .. } => "retry_later",
        ServerFrame::Ping {} => "ping",
        ServerFrame::Pong {} => "pong",
    }
}

/// The frame's cursor, if it has one.
pub(crate) fn frame_cursor(f: &ServerFrame) -> Option<&str> {
    match f {
        ServerFrame::Hello { cursor, .. }
        | ServerFrame::Msg { cursor, .. }
        | ServerFrame::Subscribed { cursor, .. }
        | ServerFrame::Reset { cursor, .. } => cursor.as_deref(),
        _ => None,
    }
}

/// Log an outgoing frame.
pub(crate) fn log_out(shared: &Shared, transport: &str, conn: Option<u64>, f: &ServerFrame) {
    let mut e = LogEntry::new(LogKind::FrameOut)
        .transport(transport)
        .frame_type(frame_type(f))
        .cursor(frame_cursor(f).map(str::to_owned));
    e.conn = conn;
    match f {
        ServerFrame::Msg { channel, seq, .. } | ServerFrame::Subscribed { channel, seq, .. } => {
            e.detail = Some(format!("{channel}#{seq}"))
        }
        ServerFrame::Error { code, .. } => e.detail = Some(code.clone()),
        ServerFrame::Ack { id, seq, .. } => e.detail = Some(format!("{id}#{}", seq.unwrap_or(0))),
        ServerFrame::Drain { from_ms, to_ms, .. } => e.detail = Some(format!("{from_ms}..{to_ms}")),
        _ => {}
    }
    shared.record(e);
}

/// Log and answer a refusal.
pub(crate) fn refuse(
    shared: &Shared,
    transport: &str,
    conn: Option<u64>,
    resp: Response,
) -> Response {
    let code = resp
        .headers()
        .get(TETHER_ERROR)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    shared.metrics.refused(transport, &code);
    let mut e = LogEntry::new(LogKind::Refused)
        .transport(transport)
        .status(resp.status().as_u16())
        .detail(code);
    e.conn = conn;
    shared.record(e);
    resp
}

/// What the gate decided for a handshake (or a request).
pub(crate) enum Gate {
    /// Go on, with this stream fault to apply to the connection (if any).
    Pass(Option<Fault>),
    /// Answer this at once.
    Answer(Response),
    /// Never answer (swallow).
    Swallow,
}

/// Request-stage faults, then drain (DRAIN-3), auth (AUTH-3), admission (READY-1).
/// `handshake`: this request opens a connection (drain and admission only apply then).
pub(crate) fn gate(
    shared: &Shared,
    target: FaultTarget,
    params: &Params,
    handshake: bool,
    alt: bool,
    path: &str,
) -> Gate {
    let t = target.as_str();
    let fault = shared.faults.take(target, handshake);
    if let Some(f) = &fault {
        shared.record(
            LogEntry::new(LogKind::Fault)
                .transport(t)
                .detail(serde_json::to_string(f).unwrap_or_default()),
        );
    }
    match fault {
        Some(Fault::RefuseUpgrade { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            let resp = plain(
                status,
                "text/html",
                "<html><body><h1>Blocked by proxy</h1></body></html>",
            );
            return Gate::Answer(refuse(shared, t, None, resp));
        }
        Some(Fault::Status {
            status,
            headers,
            body,
        }) => {
            let mut resp = plain(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                "text/plain",
                body,
            );
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::try_from(k.as_str()),
                    HeaderValue::try_from(v.as_str()),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            return Gate::Answer(refuse(shared, t, None, resp));
        }
        Some(Fault::WrongContentType { content_type }) => {
            return Gate::Answer(plain(
                StatusCode::OK,
                &content_type,
                "<html><body>Please log in to the network</body></html>",
            ));
        }
        Some(Fault::Redirect { status, location }) if !alt => {
            let loc = location.unwrap_or_else(|| {
                let rest = path
                    .strip_prefix(shared.cfg.base_path.as_str())
                    .unwrap_or(path);
                match &params.raw {
                    Some(q) => format!("{}{rest}?{q}", shared.cfg.alt_base_path),
                    None => format!("{}{rest}", shared.cfg.alt_base_path),
                }
            });
            let mut resp = plain(
                StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND),
                "text/plain",
                "",
            );
            if let Ok(v) = HeaderValue::from_str(&loc) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return Gate::Answer(resp);
        }
        Some(Fault::SwallowUpgrade) => return Gate::Swallow,
        _ => {}
    }
    if handshake {
        if let Some(d) = shared.draining() {
            let resp = tether_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                Some(shared.drain_retry_after(&d)),
                "server is draining",
            );
            return Gate::Answer(refuse(shared, t, None, resp));
        }
    }
    if !shared.store_available() {
        // The shared store is unreachable: nothing could be made durable or resumed here.
        let resp = tether_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            Some(shared.cfg.not_ready_retry_after),
            "the shared store is unreachable",
        );
        return Gate::Answer(refuse(shared, t, None, resp));
    }
    match shared.check_auth(params.token.as_deref()) {
        Ok(identity) => {
            if let Some(ch) = params
                .channels
                .iter()
                .find(|c| !identity.subscribe.allows(c))
            {
                let resp = tether_error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    None,
                    &format!("channel {ch} is not permitted"),
                );
                return Gate::Answer(refuse(shared, t, None, resp));
            }
        }
        Err(AuthRefusal::Expired) => {
            let resp = tether_error(
                StatusCode::UNAUTHORIZED,
                "auth_expired",
                None,
                "missing, unknown or expired token",
            );
            return Gate::Answer(refuse(shared, t, None, resp));
        }
        Err(AuthRefusal::Forbidden) => {
            let resp = tether_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                None,
                "this client is not allowed",
            );
            return Gate::Answer(refuse(shared, t, None, resp));
        }
    }
    if handshake {
        if let Err(wait) = shared.admit() {
            let resp = tether_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "retry_later",
                Some(wait),
                "too many handshakes",
            );
            return Gate::Answer(refuse(shared, t, None, resp));
        }
    }
    Gate::Pass(fault)
}

/// Wait until the server drops every connection (restart or shutdown): a swallowed request.
pub(crate) async fn swallow(shared: &Shared) -> Response {
    let mut kill = shared.kill.subscribe();
    let _ = kill.changed().await;
    plain(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "")
}

/// Log an arriving request (and a handshake when it opens a connection).
pub(crate) fn log_request(
    shared: &Shared,
    transport: &str,
    params: Option<&Params>,
    handshake: bool,
    detail: String,
) {
    let q = params.and_then(|p| p.redacted.clone());
    let c = params.and_then(|p| p.cursor.clone());
    shared.record(
        LogEntry::new(LogKind::Request)
            .transport(transport)
            .query(q.clone())
            .cursor(c.clone())
            .detail(detail),
    );
    if handshake {
        shared.record(
            LogEntry::new(LogKind::Handshake)
                .transport(transport)
                .query(q)
                .cursor(c),
        );
    }
}

/// The 400 answer for bad parameters.
pub(crate) fn bad_params(shared: &Shared, transport: &str, b: BadParams) -> Response {
    refuse(
        shared,
        transport,
        None,
        tether_error(StatusCode::BAD_REQUEST, b.code, None, &b.message),
    )
}

/// A store failure: 503 `not_ready` + `Retry-After` when the backend is unreachable (the
/// client backs off and comes back, READY-1), else 500.
pub(crate) fn store_failed(
    shared: &Shared,
    transport: &str,
    e: &crate::error::StoreError,
) -> Response {
    shared.store_failed(e);
    if matches!(e, crate::error::StoreError::Backend(_)) {
        let resp = tether_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            Some(shared.cfg.not_ready_retry_after),
            &e.to_string(),
        );
        return refuse(shared, transport, None, resp);
    }
    refuse(
        shared,
        transport,
        None,
        tether_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            &e.to_string(),
        ),
    )
}
