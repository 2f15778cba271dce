//! `GET /ready`: the cheap readiness answer (READY-3): no auth, no store access, constant.

use crate::http::{plain, tether_error};
use crate::log::{LogEntry, LogKind};
use crate::ServerState;
use axum::http::StatusCode;
use axum::response::Response;
use std::time::Duration;

/// The readiness handler.
pub(crate) async fn handler(st: ServerState) -> Response {
    let shared = &st.shared;
    shared.record(LogEntry::new(LogKind::Request).transport("ready"));
    if let Some(d) = shared.draining() {
        return tether_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            Some(shared.drain_retry_after(&d)),
            "draining",
        );
    }
    if !shared.is_ready() {
        return tether_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            Some(Duration::from_secs(1)),
            "not ready",
        );
    }
    if !shared.store_available() {
        // A flag the store keeps up to date, not a round trip (READY-3: no store access).
        return tether_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            Some(shared.cfg.not_ready_retry_after),
            "the shared store is unreachable",
        );
    }
    let (from, to) = shared.cfg.ready_window_ms;
    let body = serde_json::json!({"ready": true, "window_ms": [from, to]}).to_string();
    let mut resp = plain(StatusCode::OK, "application/json", body);
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}
