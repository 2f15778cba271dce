//! CORS for browser clients on another origin (WEB-1): every answer allows the request's origin and exposes the headers the client reads; preflights are answered here.
//!
//! A page served from `https://app.example` reaching `https://rt.example/tether` makes
//! cross-origin `fetch` requests (SSE, long-poll, `POST /send`, `GET /ready`, the WebSocket
//! diagnosis of WEB-2). The browser only lets the script read an answer that allows its
//! origin, and only the response headers listed in `Access-Control-Expose-Headers`: the
//! client needs `Tether-Error`, `Tether-Retry-After-Ms`, `Retry-After` (FALLBACK-2, READY-1)
//! and `Content-Type` (an SSE answer that is not `text/event-stream` is a proxy's). A `POST`
//! with `Content-Type: application/json`, or a request with `Authorization` or
//! `Last-Event-ID`, is preceded by an `OPTIONS` preflight, answered `204` without reaching
//! the endpoints (and without a log entry: it is not a request of the contract). The browser
//! client itself needs none: it posts `/send` as `text/plain` (WEB-5), which `/send` reads
//! as JSON like any other body.
//!
//! Credentials (cookies) are not allowed: the client sends its token itself (AUTH-3).
//! With [`ServerConfig::allowed_origins`](crate::ServerConfig::allowed_origins) set, an
//! origin outside the list gets no `Access-Control-*` header: its pages cannot read the
//! answers (nor pass a preflight), while the request itself is still served.

use crate::ServerState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// Response headers a browser script may read (WIRE-10, READY-1, FALLBACK-2).
pub const EXPOSED: &str = "Tether-Error, Tether-Retry-After-Ms, Retry-After, Content-Type";

/// Request headers a client may send (answered when a preflight does not list its own).
pub const ALLOWED_HEADERS: &str =
    "Authorization, Content-Type, Last-Event-ID, Cache-Control, Accept";

/// Methods of the endpoints (WIRE-2).
pub const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";

/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_S: &str = "600";

/// The middleware: answer preflights, add the CORS headers to every other answer.
pub(crate) async fn layer(State(st): State<ServerState>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    if let (Some(o), Some(list)) = (&origin, &st.config().allowed_origins) {
        if !allowed(o, list) {
            return next.run(req).await;
        }
    }
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(origin.as_ref(), req.headers());
    }
    let mut resp = next.run(req).await;
    allow(resp.headers_mut(), origin.as_ref());
    resp
}

/// Whether `origin` is one of `list` (exact, ASCII case-insensitive: origins are
/// serialised lowercase by browsers, configuration may not be).
fn allowed(origin: &HeaderValue, list: &[String]) -> bool {
    origin.to_str().is_ok_and(|o| {
        list.iter()
            .any(|a| a.eq_ignore_ascii_case(o.trim_end_matches('/')))
    })
}

fn allow(h: &mut HeaderMap, origin: Option<&HeaderValue>) {
    match origin {
        Some(o) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
}

fn preflight(origin: Option<&HeaderValue>, req: &HeaderMap) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    allow(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    // Echo what the browser asks for (it lists exactly the headers the script set), else
    // the headers clients of this contract send.
    let asked = req
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| v.to_str().is_ok_and(|s| !s.trim().is_empty()))
        .cloned();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        asked.unwrap_or_else(|| HeaderValue::from_static(ALLOWED_HEADERS)),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_S),
    );
    h.append(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
    resp
}
