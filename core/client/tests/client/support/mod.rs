//! Shared helpers of the integration tests: an embedded reference server, fast clients, event waits.
#![allow(dead_code)]

use std::time::Duration;
use tether::{
    Client, ClientBuilder, ClientEvent, Event, EventStream, PolicyWire, State, TransportKind,
};
use tether_server::{Server, ServerConfig};

/// Upper bound of every wait: tests never hang.
pub const WAIT: Duration = Duration::from_secs(15);

/// A server with a fast heartbeat and short long-poll holds.
pub async fn server() -> Server {
    server_with(|_| {}).await
}

/// A server with the test defaults, adjusted by `f`.
pub async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut cfg = ServerConfig {
        heartbeat: Duration::from_millis(200),
        poll_hold: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    f(&mut cfg);
    match Server::start(cfg).await {
        Ok(s) => s,
        Err(e) => panic!("server start: {e}"),
    }
}

/// Millisecond timings (BACKOFF-9) so every scenario runs in well under a second.
pub fn fast_policy() -> PolicyWire {
    PolicyWire {
        floor_ms: Some(5.0),
        base_ms: Some(30.0),
        cap_ms: Some(200.0),
        heartbeat_ms: Some(400.0),
        heartbeat_grace_ms: Some(300.0),
        open_timeout_ms: Some(1500.0),
        poll_hold_ms: Some(500.0),
        probe_interval_ms: Some(60_000.0),
        upgrade_after_ms: Some(600_000.0),
        ..PolicyWire::default()
    }
}

/// A client builder for `server`, allowing only `transport`.
pub fn builder(server: &Server, transport: TransportKind) -> ClientBuilder {
    Client::builder(server.endpoint_url())
        .transports(&[transport])
        .policy(fast_policy())
        .seed(7)
}

/// Wait for the first event matching `pred`; returns everything seen up to it.
pub async fn until(
    events: &mut EventStream,
    what: &str,
    mut pred: impl FnMut(&Event) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let r = tokio::time::timeout(WAIT, async {
        while let Some(ev) = events.recv().await {
            let hit = pred(&ev.event);
            seen.push(ev);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    if r != Ok(true) {
        panic!("timed out waiting for {what}; saw:\n{}", dump(&seen));
    }
    seen
}

/// Wait until the client is up (Connected or Degraded).
pub async fn up(events: &mut EventStream) -> Vec<ClientEvent> {
    until(
        events,
        "connected",
        |e| matches!(e, Event::StateChanged { to, .. } if to.is_up()),
    )
    .await
}

/// Wait until the state watch satisfies `pred`.
pub async fn state(client: &Client, what: &str, pred: impl FnMut(&State) -> bool) {
    let mut w = client.state_watch();
    let r = tokio::time::timeout(WAIT, w.wait_for(pred)).await;
    if !matches!(r, Ok(Ok(_))) {
        panic!(
            "timed out waiting for state {what}; now {:?}",
            client.state()
        );
    }
}

/// Collect `n` messages of `channel` (seq, data).
pub async fn messages(
    events: &mut EventStream,
    channel: &str,
    n: usize,
) -> Vec<(u64, serde_json::Value)> {
    let mut got = Vec::new();
    let mut seen = Vec::new();
    let r = tokio::time::timeout(WAIT, async {
        while got.len() < n {
            let Some(ev) = events.recv().await else { break };
            if let Event::Message {
                channel: c,
                seq,
                data,
            } = &ev.event
            {
                if c == channel {
                    got.push((*seq, data.clone()));
                }
            }
            seen.push(ev);
        }
    })
    .await;
    if r.is_err() || got.len() < n {
        panic!(
            "got {} of {n} messages on {channel}; events:\n{}",
            got.len(),
            dump(&seen)
        );
    }
    got
}

pub fn dump(events: &[ClientEvent]) -> String {
    events
        .iter()
        .map(|e| format!("  {:>6}ms {:?}", e.at.as_millis(), e.event))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Generate one test per transport from `async fn name(t: TransportKind)`.
#[macro_export]
macro_rules! per_transport {
    ($scenario:ident: $ws:ident, $sse:ident, $lp:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $ws() {
            $scenario(tether::TransportKind::WebSocket).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sse() {
            $scenario(tether::TransportKind::Sse).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $lp() {
            $scenario(tether::TransportKind::LongPoll).await
        }
    };
}

/// The fault target of a transport.
pub fn target(t: TransportKind) -> tether_server::FaultTarget {
    match t {
        TransportKind::WebSocket => tether_server::FaultTarget::WebSocket,
        TransportKind::Sse => tether_server::FaultTarget::Sse,
        TransportKind::LongPoll => tether_server::FaultTarget::LongPoll,
    }
}

/// Server log entries of `kind` for transport `t`, in order.
pub fn log_of(
    server: &Server,
    kind: tether_server::LogKind,
    t: TransportKind,
) -> Vec<tether_server::LogEntry> {
    server.log().entries(kind, Some(t.as_str()))
}

/// The server log without outgoing frames, one entry per line (for failure messages).
pub fn log_dump(server: &Server) -> String {
    server
        .log()
        .snapshot()
        .iter()
        .filter(|e| !matches!(e.kind, tether_server::LogKind::FrameOut))
        .map(|e| {
            format!(
                "\n{} {:?} {:?} {:?} {:?}",
                e.at_us, e.kind, e.conn, e.query, e.detail
            )
        })
        .collect()
}

/// Server log time (µs) of the first action entry whose detail starts with `prefix`.
pub fn action_at(server: &Server, prefix: &str) -> u64 {
    server
        .log()
        .entries(tether_server::LogKind::Action, None)
        .iter()
        .find(|e| e.detail.as_deref().is_some_and(|d| d.starts_with(prefix)))
        .map(|e| e.at_us)
        .unwrap_or_else(|| panic!("no action {prefix:?} in the server log"))
}

/// Build a client, panicking with the error.
pub fn build(b: ClientBuilder) -> Client {
    b.build().unwrap_or_else(|e| panic!("build: {e}"))
}
