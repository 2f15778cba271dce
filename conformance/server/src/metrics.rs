//! Prometheus metrics (`GET /metrics`, text format 0.0.4): connections by transport, handshakes, refusals, resumes vs resets, replays, dedupes, store errors.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The transports counted, in output order.
const TRANSPORTS: [&str; 3] = ["websocket", "sse", "long_poll"];

/// The server's counters.
#[derive(Default)]
pub(crate) struct Metrics {
    handshakes: [AtomicU64; 3],
    refused: Mutex<BTreeMap<(String, String), u64>>,
    resumed: AtomicU64,
    reset: AtomicU64,
    replayed: AtomicU64,
    published: AtomicU64,
    duplicates: AtomicU64,
    store_errors: AtomicU64,
    publish_api: AtomicU64,
}

fn index(transport: &str) -> Option<usize> {
    TRANSPORTS.iter().position(|t| *t == transport)
}

impl Metrics {
    /// A connection opened (its hello went out).
    pub fn opened(&self, transport: &str) {
        if let Some(i) = index(transport) {
            self.handshakes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request was refused with `code` (WIRE-10).
    pub fn refused(&self, transport: &str, code: &str) {
        let mut m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() < 256 || m.contains_key(&(transport.to_owned(), code.to_owned())) {
            *m.entry((transport.to_owned(), code.to_owned()))
                .or_insert(0) += 1;
        }
    }

    /// A handshake came with a cursor: resumed every channel, or reset some; `behind`
    /// messages are to be replayed.
    pub fn reconnected(&self, any_reset: bool, behind: u64) {
        if any_reset {
            self.reset.fetch_add(1, Ordering::Relaxed);
        } else {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
        self.replayed.fetch_add(behind, Ordering::Relaxed);
    }

    pub fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn publish_api(&self) {
        self.publish_api.fetch_add(1, Ordering::Relaxed);
    }

    /// Handshakes so far, all transports.
    pub fn handshakes(&self) -> u64 {
        self.handshakes
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .sum()
    }
}

/// What the text needs besides the counters.
pub(crate) struct Gauges {
    pub connections: [u64; 3],
    pub store_available: bool,
    pub draining: bool,
    pub store: Vec<(&'static str, &'static str, u64)>,
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Count connections by transport from their names.
pub(crate) fn by_transport<'a>(names: impl Iterator<Item = &'a str>) -> [u64; 3] {
    let mut c = [0; 3];
    for n in names {
        if let Some(i) = index(n) {
            c[i] += 1;
        }
    }
    c
}

impl Metrics {
    /// The Prometheus text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut o = String::with_capacity(2048);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        head(
            &mut o,
            "tether_connections",
            "gauge",
            "Live connections (long_poll: held polls).",
        );
        for (i, t) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                o,
                "tether_connections{{transport=\"{t}\"}} {}",
                g.connections[i]
            );
        }
        head(
            &mut o,
            "tether_handshakes_total",
            "counter",
            "Connections opened (hello sent); rate() gives handshakes/s.",
        );
        for (i, t) in TRANSPORTS.iter().enumerate() {
            let _ = writeln!(
                o,
                "tether_handshakes_total{{transport=\"{t}\"}} {}",
                load(&self.handshakes[i])
            );
        }
        head(
            &mut o,
            "tether_refused_total",
            "counter",
            "Requests refused, by transport and Tether-Error code (draining, retry_later, not_ready, auth_expired, ...).",
        );
        for ((t, c), n) in self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                o,
                "tether_refused_total{{transport=\"{t}\",code=\"{c}\"}} {n}"
            );
        }
        head(
            &mut o,
            "tether_reconnects_total",
            "counter",
            "Handshakes that came with a cursor: every channel resumed, or some reset (RESUME-4).",
        );
        let _ = writeln!(
            o,
            "tether_reconnects_total{{outcome=\"resume\"}} {}",
            load(&self.resumed)
        );
        let _ = writeln!(
            o,
            "tether_reconnects_total{{outcome=\"reset\"}} {}",
            load(&self.reset)
        );
        for (name, help, v) in [
            (
                "tether_replayed_messages_total",
                "Messages behind the head when a cursor resumed (replayed from the ring).",
                &self.replayed,
            ),
            (
                "tether_published_total",
                "Messages appended (client, server and backend publishes).",
                &self.published,
            ),
            (
                "tether_publish_duplicates_total",
                "Publishes deduplicated by id (OUTBOX-5).",
                &self.duplicates,
            ),
            (
                "tether_publish_api_requests_total",
                "POST {endpoint}/publish requests accepted.",
                &self.publish_api,
            ),
            (
                "tether_store_errors_total",
                "Store operations that failed in a request (e.g. Redis unreachable).",
                &self.store_errors,
            ),
        ] {
            head(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {}", load(v));
        }
        head(
            &mut o,
            "tether_store_available",
            "gauge",
            "1 while the store answers (else handshakes get not_ready).",
        );
        let _ = writeln!(o, "tether_store_available {}", u8::from(g.store_available));
        head(
            &mut o,
            "tether_draining",
            "gauge",
            "1 while draining (DRAIN-3).",
        );
        let _ = writeln!(o, "tether_draining {}", u8::from(g.draining));
        for (name, help, v) in &g.store {
            let full = format!("tether_store_{name}");
            head(
                &mut o,
                &full,
                if name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                },
                help,
            );
            let _ = writeln!(o, "{full} {v}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.opened("websocket");
        m.opened("sse");
        m.refused("websocket", "draining");
        m.reconnected(false, 3);
        m.reconnected(true, 0);
        m.duplicate();
        let text = m.render(&Gauges {
            connections: by_transport(["websocket", "websocket", "long_poll"].into_iter()),
            store_available: true,
            draining: false,
            store: vec![("redis_errors_total", "Errors.", 4)],
        });
        for line in [
            "tether_connections{transport=\"websocket\"} 2",
            "tether_connections{transport=\"long_poll\"} 1",
            "tether_handshakes_total{transport=\"sse\"} 1",
            "tether_refused_total{transport=\"websocket\",code=\"draining\"} 1",
            "tether_reconnects_total{outcome=\"resume\"} 1",
            "tether_reconnects_total{outcome=\"reset\"} 1",
            "tether_replayed_messages_total 3",
            "tether_publish_duplicates_total 1",
            "tether_store_available 1",
            "# TYPE tether_store_redis_errors_total counter",
            "tether_store_redis_errors_total 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = l.rsplit_once(' ').expect("name value");
            assert!(v.parse::<f64>().is_ok(), "bad sample {l}");
        }
    }
}
