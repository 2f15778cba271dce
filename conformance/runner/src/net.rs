//! The fault proxy in a case: started between the client and the server, scripted with the case seed, its events on the case clock (what every connection attempt looked like on the wire, the ones the server never saw included).

use serde::Serialize;
use std::net::SocketAddr;
use std::time::Instant;
use tether_fault_proxy::{Cut, EventKind, Fault, FaultProxy, Script};

/// A proxy event on the case clock (µs, the clock of the server log and of the trace's
/// `recv_us`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetEvent {
    pub at_us: u64,
    pub conn: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl NetEvent {
    /// The transport whose connection attempt this request is (`websocket` for an
    /// upgrade request to `/ws`, `sse` for `/sse`, `long_poll` for `/poll?…hello=1`).
    pub fn handshake(&self) -> Option<&'static str> {
        let EventKind::Request {
            method,
            target,
            upgrade,
        } = &self.kind
        else {
            return None;
        };
        if method != "GET" {
            return None;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path.ends_with("/ws") {
            // WEB-3: a plain GET of the WebSocket URL is not a handshake; it is the browser's
            // WEB-2 question about the upgrade that just failed, part of that attempt.
            upgrade.then_some("websocket")
        } else if path.ends_with("/sse") {
            Some("sse")
        } else if path.ends_with("/poll") && query.split('&').any(|kv| kv == "hello=1") {
            Some("long_poll")
        } else {
            None
        }
    }

    /// The fault's name, for a `fired` event.
    pub fn fired(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Fired { fault, .. } => Some(fault),
            _ => None,
        }
    }
}

/// The proxy of one case.
pub struct Net {
    proxy: FaultProxy,
    /// The same instant on both clocks: the proxy's `Instant` and the case clock (µs).
    base: (Instant, u64),
    seed: u64,
}

impl Net {
    /// Start a proxy to `upstream` with `faults`, seeded with the case seed; `now_us` is
    /// the case clock now.
    pub async fn start(
        upstream: SocketAddr,
        faults: Vec<Fault>,
        seed: u64,
        now_us: u64,
    ) -> Result<Net, String> {
        let base = (Instant::now(), now_us);
        let proxy = FaultProxy::start(upstream, script(faults, seed))
            .await
            .map_err(|e| format!("fault proxy: {e}"))?;
        Ok(Net { proxy, base, seed })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// Replace the proxy's faults (the seed stays the case seed).
    pub fn set(&self, faults: Vec<Fault>) {
        self.proxy.set_script(script(faults, self.seed));
    }

    /// Cut every open connection now.
    pub fn cut_all(&self, cut: Cut) -> usize {
        self.proxy.cut_all(cut)
    }

    /// Everything the proxy saw, on the case clock.
    pub fn events(&self) -> Vec<NetEvent> {
        self.proxy
            .events()
            .into_iter()
            .map(|e| {
                let at_us = match e.at.checked_duration_since(self.base.0) {
                    Some(d) => self.base.1 + d.as_micros() as u64,
                    None => self
                        .base
                        .1
                        .saturating_sub(self.base.0.duration_since(e.at).as_micros() as u64),
                };
                NetEvent {
                    at_us,
                    conn: e.conn,
                    kind: e.kind,
                }
            })
            .collect()
    }

    /// The proxy's counters, for the case's metrics.
    pub fn stats(&self) -> tether_fault_proxy::Stats {
        self.proxy.stats()
    }

    /// Stop the proxy (every connection through it ends).
    pub async fn shutdown(self) {
        self.proxy.shutdown().await;
    }
}

fn script(faults: Vec<Fault>, seed: u64) -> Script {
    Script { seed, faults }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, method: &str) -> NetEvent {
        NetEvent {
            at_us: 0,
            conn: 1,
            kind: EventKind::Request {
                method: method.into(),
                target: target.into(),
                upgrade: target.contains("/ws"),
            },
        }
    }

    #[test]
    fn handshakes_are_recognised_from_the_request_line() {
        assert_eq!(
            req("/tether/ws?v=1&channels=a", "GET").handshake(),
            Some("websocket")
        );
        assert_eq!(req("/tether/sse?v=1", "GET").handshake(), Some("sse"));
        assert_eq!(
            req("/tether/poll?v=1&hello=1&channels=a", "GET").handshake(),
            Some("long_poll")
        );
        assert_eq!(req("/tether/poll?v=1&channels=a", "GET").handshake(), None);
        assert_eq!(req("/tether/send", "POST").handshake(), None);
        assert_eq!(req("/tether/ready", "GET").handshake(), None);
    }

    #[test]
    fn web_3_a_plain_get_of_the_websocket_url_is_not_a_handshake() {
        let mut probe = req("/tether/ws?v=1&channels=a", "GET");
        if let EventKind::Request { upgrade, .. } = &mut probe.kind {
            *upgrade = false;
        }
        assert_eq!(probe.handshake(), None);
    }
}
