//! OUTBOX-9 on real sockets: a NAT that silently forgets idle connections (the fault proxy's
//! idle kill) must not leave publishes unacknowledged behind a live stream.

use crate::support;

use serde_json::json;
use std::time::Duration;
use support::*;
use tether::{Client, Event, PublishHandle, TransportKind};
use tether_fault_proxy::{FaultProxy, Script};
use tether_server::Server;

/// The server's endpoint, reached through `proxy`.
fn via(proxy: &FaultProxy, server: &Server) -> String {
    server
        .endpoint_url()
        .replace(&server.addr().to_string(), &proxy.addr().to_string())
}

async fn acked(h: PublishHandle, within: Duration) -> Result<u64, String> {
    let id = h.id().to_owned();
    match tokio::time::timeout(within, h).await {
        Ok(Ok(ack)) => Ok(ack.seq.unwrap_or(0)),
        Ok(Err(d)) => Err(format!("{id} dropped: {d}")),
        Err(_) => Err(format!("{id}: no ack within {within:?}")),
    }
}

/// A NAT between client and server drops connections idle for 1.2 s without a FIN or RST.
/// The stream stays alive (the server's 200 ms heartbeat keeps it busy), but the pooled
/// connection of the first `POST /send` goes idle and is forgotten; the next publishes are
/// posted on it and never answered. Before OUTBOX-9 they stayed unacknowledged while the
/// client said `connected`; now the POST's deadline (open_timeout 1.5 s here) fails the
/// connection, the hung request is aborted (its socket is not reused) and the publishes are
/// resent on a fresh connection, once each.
async fn publishes_survive_a_nat_idle_kill(t: TransportKind) {
    let server = server().await;
    let proxy = FaultProxy::start(
        server.addr(),
        Script::new().seed(1).idle_kill(Duration::from_millis(1200)),
    )
    .await
    .unwrap_or_else(|e| panic!("proxy: {e}"));
    let client = build(
        Client::builder(via(&proxy, &server))
            .transports(&[t])
            .policy(fast_policy())
            .seed(11),
    );
    let mut events = client.events();
    client
        .subscribe("n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    let first = client
        .publish("n", json!(0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    acked(first, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{t}: {e}"));
    // The POST's pooled connection idles past the NAT's timeout and is blackholed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        proxy.stats().blackholed >= 1,
        "{t}: the idle kill fired: {:?}",
        proxy.stats()
    );
    assert!(client.state().is_up(), "{t}: the stream itself is alive");
    let mut handles = Vec::new();
    for i in 1..=5 {
        handles.push(
            client
                .publish("n", json!(i))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    // open_timeout (1.5 s) + a reconnect (at most base, 30 ms) + the resend: well within 6 s.
    let mut seqs = Vec::new();
    for h in handles {
        match acked(h, Duration::from_secs(6)).await {
            Ok(s) => seqs.push(s),
            Err(e) => panic!(
                "{t}: OUTBOX-9: {e} (state {:?}, proxy {:?})",
                client.state(),
                proxy.stats()
            ),
        }
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "{t}: in order: {seqs:?}"
    );
    let got = messages(&mut events, "n", 6).await;
    let data: Vec<i64> = got.iter().map(|(_, d)| d.as_i64().unwrap_or(-1)).collect();
    assert_eq!(
        data,
        (0..=5).collect::<Vec<_>>(),
        "{t}: each publish once, in order"
    );
    client.close().await.unwrap_or_else(|e| panic!("{e}"));
    let mut timeouts = 0;
    while let Some(ev) = events.try_recv() {
        if let Event::Error { code, .. } = &ev.event {
            if code.as_str() == "send_timeout" {
                timeouts += 1;
            }
        }
        assert!(
            !matches!(ev.event, Event::Message { .. }),
            "{t}: duplicate delivery {:?}",
            ev.event
        );
    }
    assert!(timeouts <= 2, "{t}: {timeouts} send timeouts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_9_sse_publishes_survive_a_nat_idle_kill() {
    publishes_survive_a_nat_idle_kill(TransportKind::Sse).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_9_long_poll_publishes_survive_a_nat_idle_kill() {
    publishes_survive_a_nat_idle_kill(TransportKind::LongPoll).await
}
