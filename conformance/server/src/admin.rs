//! `POST {endpoint}/_admin/ACTION`: remote control of a running instance for the conformance runner and operators (faults, drain, close, readiness), behind an admin key; off unless configured.
//!
//! Actions: `faults` (body: a JSON array of fault rules, actions carried out at once),
//! `clear_faults`, `drain` (`{"from_ms", "to_ms"}`), `undrain`, `close_all`
//! (`{"code", "reason"}`), `set_ready` (`{"ready"}`), `expire_token` (`{"token"}`).
//! `GET {endpoint}/_admin/connections` lists the live connections. Every request needs
//! `Authorization: Bearer <admin key>`.

use crate::faults::FaultRule;
use crate::http::{plain, tether_error};
use crate::log::{LogEntry, LogKind};
use crate::ServerState;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

fn allowed(st: &ServerState, req: &Request) -> bool {
    let Some(key) = &st.config().admin_key else {
        return false;
    };
    let got = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    got.len() == key.len()
        && got
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
}

fn ok(v: Value) -> Response {
    plain(StatusCode::OK, "application/json", v.to_string())
}

fn bad(m: &str) -> Response {
    tether_error(StatusCode::BAD_REQUEST, "bad_request", None, m)
}

/// The handler.
pub(crate) async fn handler(st: ServerState, action: String, req: Request) -> Response {
    if st.config().admin_key.is_none() {
        return tether_error(StatusCode::NOT_FOUND, "not_found", None, "no such endpoint");
    }
    if !allowed(&st, &req) {
        return tether_error(
            StatusCode::UNAUTHORIZED,
            "forbidden",
            None,
            "admin key required",
        );
    }
    st.shared
        .record(LogEntry::new(LogKind::Action).detail(format!("admin {action}")));
    if req.method() == Method::GET {
        return match action.as_str() {
            "connections" => ok(json!(st.connections())),
            _ => bad("unknown admin action"),
        };
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 1 << 20).await else {
        return bad("body too large");
    };
    let v: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return bad(&format!("bad JSON: {e}")),
        }
    };
    let u = |k: &str| v.get(k).and_then(Value::as_u64);
    match action.as_str() {
        "faults" => match serde_json::from_value::<Vec<FaultRule>>(v) {
            Ok(rules) => {
                let n = rules.len();
                for r in rules {
                    st.apply_fault(r);
                }
                ok(json!({ "applied": n }))
            }
            Err(e) => bad(&format!("bad fault rules: {e}")),
        },
        "clear_faults" => {
            st.clear_faults();
            ok(json!({}))
        }
        "drain" => {
            let (Some(from), Some(to)) = (u("from_ms"), u("to_ms")) else {
                return bad("drain needs from_ms and to_ms");
            };
            ok(json!({ "told": st.drain(from, to) }))
        }
        "undrain" => {
            st.undrain();
            ok(json!({}))
        }
        "close_all" => {
            let code = u("code")
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(1000);
            let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
            ok(json!({ "closed": st.close_all(code, reason) }))
        }
        "set_ready" => {
            st.set_ready(v.get("ready").and_then(Value::as_bool).unwrap_or(true));
            ok(json!({}))
        }
        "expire_token" => match v.get("token").and_then(Value::as_str) {
            Some(t) => ok(json!({ "closed": st.expire_token(t) })),
            None => bad("expire_token needs token"),
        },
        _ => bad("unknown admin action"),
    }
}
