//! A slow link with a large catch-up (the fault proxy's bandwidth limit): every transport
//! recovers and delivers everything once, in order (HEARTBEAT-2/4, CONN-6, RESUME-7).

use crate::support;

use serde_json::json;
use std::time::Duration;
use support::*;
use tether::{Client, Event, Network, TransportKind};
use tether_fault_proxy::{Direction, FaultProxy, Script};
use tether_server::Server;
use tokio::time::Instant;

/// The downlink while catching up.
const RATE: u64 = 128 * 1024;
/// Messages missed while offline: small ones, one large one (300 kB, a single frame that takes
/// 2.3 s to arrive, longer than the 0.7 s heartbeat deadline), then small ones again.
const SMALL_BEFORE: u64 = 400;
const SMALL_AFTER: u64 = 100;
const LARGE_BYTES: usize = 300_000;

fn via(proxy: &FaultProxy, server: &Server) -> String {
    server
        .endpoint_url()
        .replace(&server.addr().to_string(), &proxy.addr().to_string())
}

/// Connected through the proxy, the client goes offline; ~850 kB of messages are published;
/// the link drops to 128 KiB/s; the client comes back and must catch up through it.
///
/// Before CONN-6/HEARTBEAT-4/RESUME-7, long-poll never caught up: its hello came inside a
/// first answer that also carried the whole catch-up, which took longer than open_timeout,
/// so every attempt was a slow open and every retry downloaded the same answer again. And
/// WebSocket never got past the large message: no complete frame for longer than the
/// heartbeat deadline looked like a dead connection.
async fn catches_up_on_a_slow_link(t: TransportKind) {
    let server = server().await;
    let proxy = FaultProxy::start(server.addr(), Script::new())
        .await
        .unwrap_or_else(|e| panic!("proxy: {e}"));
    let client = build(
        Client::builder(via(&proxy, &server))
            .transports(&[t])
            .policy(fast_policy())
            .seed(21),
    );
    let mut events = client.events();
    client
        .subscribe("s")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    client
        .set_network(Network::Offline)
        .unwrap_or_else(|e| panic!("{e}"));
    state(&client, "offline", |s| !s.is_up()).await;
    let pad = "x".repeat(1000);
    let total = SMALL_BEFORE + 1 + SMALL_AFTER;
    let mut bytes = 0usize;
    for n in 0..total {
        let data = if n == SMALL_BEFORE {
            json!({"n": n, "pad": "y".repeat(LARGE_BYTES)})
        } else {
            json!({"n": n, "pad": pad})
        };
        bytes += data.to_string().len();
        server
            .publish("s", data)
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }
    proxy.set_script(Script::new().seed(3).bandwidth(RATE, Some(Direction::Down)));
    let started = Instant::now();
    client
        .set_network(Network::Online)
        .unwrap_or_else(|e| panic!("{e}"));
    let ideal = Duration::from_secs_f64(bytes as f64 / RATE as f64);
    let budget = ideal * 4 + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut seen = Vec::new();
    let done = tokio::time::timeout(budget, async {
        while (got.len() as u64) < total {
            let Some(ev) = events.recv().await else { break };
            if let Event::Message { channel, data, .. } = &ev.event {
                if channel == "s" {
                    got.push(data["n"].as_u64().unwrap_or(u64::MAX));
                }
            }
            if !matches!(ev.event, Event::Message { .. }) {
                seen.push(ev);
            }
        }
    })
    .await;
    let took = started.elapsed();
    if done.is_err() || (got.len() as u64) < total {
        panic!(
            "{t}: {} of {total} messages after {took:?} (ideal {ideal:?}); last delivered {:?}; events:\n{}",
            got.len(),
            got.last(),
            dump(&seen)
        );
    }
    assert_eq!(
        got,
        (0..total).collect::<Vec<_>>(),
        "{t}: everything once, in order"
    );
    assert!(
        took >= ideal.mul_f64(0.7),
        "{t}: the link was throttled: {took:?} for {bytes} bytes (ideal {ideal:?})"
    );
    // Nothing more arrives (no duplicate from a retried download).
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Some(ev) = events.try_recv() {
        assert!(
            !matches!(ev.event, Event::Message { .. }),
            "{t}: duplicate {:?}",
            ev.event
        );
    }
    eprintln!(
        "{t}: {total} messages ({bytes} bytes) over {RATE} B/s in {took:?} (ideal {ideal:?})"
    );
    client.close().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_6_long_poll_catches_up_on_a_slow_link() {
    catches_up_on_a_slow_link(TransportKind::LongPoll).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_2_websocket_catches_up_on_a_slow_link() {
    catches_up_on_a_slow_link(TransportKind::WebSocket).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_2_sse_catches_up_on_a_slow_link() {
    catches_up_on_a_slow_link(TransportKind::Sse).await
}
