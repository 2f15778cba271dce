//! The answer to a browser's diagnosis of a refused WebSocket upgrade (WEB-3): the refusals given to browsers' upgrades, remembered briefly, and the rules for a plain `GET /ws`.
//!
//! A browser's `WebSocket` hides the HTTP answer to a refused upgrade, so a browser client
//! asks again with a plain `GET` of the same URL (WEB-2). That `GET` is not a handshake: it
//! is answered with the refusal the last upgrade of the same URL from the same peer got in
//! the last [`TTL`] (whatever refused it: a fault, drain, auth or admission), else with the
//! refusal drain or auth would give now, else `426 upgrade_required` (this server would have
//! upgraded it). Only upgrades that carry an `Origin` header (browsers always send one) are
//! remembered, at most [`MAX_ENTRIES`] of them.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long a refusal is remembered for the diagnosis that follows it.
pub const TTL: Duration = Duration::from_secs(10);

/// Most refusals remembered at once (the oldest is forgotten first).
pub const MAX_ENTRIES: usize = 1024;

/// Largest refusal body kept (refusals are short JSON or HTML pages).
const MAX_BODY: usize = 16 * 1024;

/// The peer of a request, inserted by [`Server`](crate::Server)'s accept loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub SocketAddr);

struct Entry {
    key: String,
    at: Instant,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Refusals of browsers' upgrades, by peer address and query.
#[derive(Default)]
pub(crate) struct Refusals {
    entries: Mutex<VecDeque<Entry>>,
}

/// The key of a request: its peer's IP (when known) and its query string.
pub(crate) fn key(peer: Option<Peer>, query: Option<&str>) -> String {
    let ip = peer.map(|p| p.0.ip().to_string()).unwrap_or_default();
    format!("{ip} {}", query.unwrap_or(""))
}

impl Refusals {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember `resp` (a refusal of an upgrade) under `key`, and hand it back unchanged.
    pub(crate) async fn remember(&self, key: String, resp: Response) -> Response {
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .unwrap_or_default();
        {
            let now = Instant::now();
            let mut e = self.lock();
            e.retain(|x| now.duration_since(x.at) < TTL && x.key != key);
            while e.len() >= MAX_ENTRIES {
                e.pop_front();
            }
            e.push_back(Entry {
                key,
                at: now,
                status: parts.status,
                headers: parts.headers.clone(),
                body: body.clone(),
            });
        }
        Response::from_parts(parts, Body::from(body))
    }

    /// The refusal remembered under `key` in the last [`TTL`], forgotten once answered.
    pub(crate) fn take(&self, key: &str) -> Option<Response> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &str, now: Instant) -> Option<Response> {
        let mut e = self.lock();
        e.retain(|x| now.duration_since(x.at) < TTL);
        let i = e.iter().position(|x| x.key == key)?;
        let entry = e.remove(i)?;
        let mut resp = Response::new(Body::from(entry.body));
        *resp.status_mut() = entry.status;
        *resp.headers_mut() = entry.headers;
        Some(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn refusal(code: &str) -> Response {
        let mut r = Response::new(Body::from(format!("{{\"error\":\"{code}\"}}")));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        r.headers_mut()
            .insert("tether-error", HeaderValue::from_str(code).unwrap());
        r
    }

    #[tokio::test]
    async fn web_3_a_refusal_is_answered_once_to_the_same_key() {
        let r = Refusals::default();
        let peer = Peer("127.0.0.1:5000".parse().unwrap());
        let k = key(Some(peer), Some("v=1&channels=a"));
        let back = r.remember(k.clone(), refusal("retry_later")).await;
        assert_eq!(back.status(), 503);
        assert!(r.take(&key(Some(peer), Some("v=1&channels=b"))).is_none());
        let again = r.take(&k).expect("remembered");
        assert_eq!(again.status(), 503);
        assert_eq!(again.headers()["tether-error"], "retry_later");
        assert!(r.take(&k).is_none(), "answered once");
    }

    #[tokio::test]
    async fn web_3_refusals_expire_and_are_bounded() {
        let r = Refusals::default();
        r.remember("a".into(), refusal("draining")).await;
        assert!(r
            .take_at("a", Instant::now() + TTL + Duration::from_millis(1))
            .is_none());
        for i in 0..MAX_ENTRIES + 5 {
            r.remember(format!("k{i}"), refusal("draining")).await;
        }
        assert_eq!(r.lock().len(), MAX_ENTRIES);
        assert!(r.take("k0").is_none(), "the oldest went first");
        assert!(r.take(&format!("k{}", MAX_ENTRIES + 4)).is_some());
    }
}
