//! `POST {endpoint}/publish`: the backend publish API for services in any language, authenticated by a server API key, idempotent by id (OUTBOX-5).
//!
//! `Authorization: Bearer <server API key>` (one of `ServerConfig::publish_keys`). The body
//! is one publish or an array of them: `{"channel": "chat", "data": {...}, "id": "order-17"}`
//! (`id` optional; for a single publish the `Idempotency-Key` header works too). The answer
//! is `{"channel", "seq", "duplicate"}` per publish (an array for an array), or
//! `{"error", "message"}` for a publish that was refused (bad channel, channel limit). A
//! repeated id is answered with the original channel and seq and `duplicate: true`, and is
//! not broadcast again, through any instance sharing the store. While the store is
//! unreachable the whole request is answered 503 `not_ready` with `Retry-After`: send it
//! again with the same ids.

use crate::error::StoreError;
use crate::http::{plain, refuse, tether_error};
use crate::log::{LogEntry, LogKind};
use crate::state::Shared;
use crate::ServerState;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

const T: &str = "publish";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    channel: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    id: Option<String>,
}

/// Constant-time comparison (the key must not leak through timing).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(shared: &Shared, req: &Request) -> bool {
    let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, key)) = v.split_once(' ') else {
        return false;
    };
    let key = key.trim().as_bytes();
    scheme.eq_ignore_ascii_case("bearer")
        && shared
            .cfg
            .publish_keys
            .iter()
            .fold(false, |ok, k| ok | same(k.as_bytes(), key))
}

fn bad(shared: &Shared, status: StatusCode, code: &str, message: &str) -> Response {
    refuse(shared, T, None, tether_error(status, code, None, message))
}

/// The handler.
pub(crate) async fn handler(st: ServerState, req: Request) -> Response {
    let shared = st.shared.clone();
    shared.record(LogEntry::new(LogKind::Request).transport(T));
    if shared.cfg.publish_keys.is_empty() {
        return bad(
            &shared,
            StatusCode::NOT_FOUND,
            "not_found",
            "the publish API is not enabled",
        );
    }
    if !authorized(&shared, &req) {
        return bad(
            &shared,
            StatusCode::UNAUTHORIZED,
            "forbidden",
            "a server API key is required: Authorization: Bearer <key>",
        );
    }
    let header_id = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = shared.cfg.max_frame_bytes.saturating_mul(16);
    let Ok(body) = axum::body::to_bytes(req.into_body(), limit).await else {
        return bad(
            &shared,
            StatusCode::PAYLOAD_TOO_LARGE,
            "frame_too_large",
            "body too large or unreadable",
        );
    };
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let (items, single) = match parsed {
        Ok(Value::Array(a)) => (a, false),
        Ok(v @ Value::Object(_)) => (vec![v], true),
        _ => {
            return bad(
                &shared,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body must be a JSON object or array",
            );
        }
    };
    if items.len() > 1000 {
        return bad(
            &shared,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "at most 1000 publishes per request",
        );
    }
    shared.metrics.publish_api();
    let mut out = Vec::with_capacity(items.len());
    for v in items {
        let item: Item = match serde_json::from_value(v) {
            Ok(i) => i,
            Err(e) => {
                out.push(json!({"error": "bad_request", "message": e.to_string()}));
                continue;
            }
        };
        let id = item
            .id
            .or_else(|| single.then(|| header_id.clone()).flatten());
        if id
            .as_ref()
            .is_some_and(|i| i.is_empty() || i.len() > crate::send::MAX_ID_BYTES)
        {
            out.push(json!({"error": "bad_request", "message": "id must be 1..=512 bytes"}));
            continue;
        }
        let r = match &id {
            Some(id) => shared.publish_once(id, &item.channel, item.data).await,
            None => shared.publish(&item.channel, item.data).await,
        };
        match r {
            Ok(p) => {
                out.push(json!({"channel": p.channel, "seq": p.seq, "duplicate": p.duplicate}))
            }
            Err(e @ StoreError::Backend(_)) => return crate::send::not_ready_for(&shared, T, &e),
            Err(e) => out.push(json!({"error": e.code(), "message": e.to_string()})),
        }
    }
    let body = if single {
        out.swap_remove(0)
    } else {
        Value::Array(out)
    };
    plain(StatusCode::OK, "application/json", body.to_string())
}
