//! FALLBACK-2/3/7: a refused upgrade moves to SSE, a wrong content type or a buffering proxy
//! moves SSE to long-poll, at once and without loss or duplicates; refused TCP is not blocking.

use crate::support;

use serde_json::json;
use std::time::Duration;
use support::*;
use tether::{Client, ErrorCode, Event, FallbackReason, PolicyWire, State, TransportKind};
use tether_server::{Fault, FaultRule, FaultTarget};

use TransportKind::{LongPoll, Sse, WebSocket};

fn fell(seen: &[tether::ClientEvent], from: TransportKind, to: TransportKind) -> bool {
    seen.iter().any(|e| {
        matches!(&e.event, Event::Fallback { from: f, to: t, reason: FallbackReason::Blocked } if *f == from && *t == to)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_2a_refused_upgrade_moves_to_sse() {
    let server = server().await;
    server.apply_fault(
        FaultRule::always(Fault::RefuseUpgrade { status: 403 }).on(FaultTarget::WebSocket),
    );
    let client = build(
        Client::builder(server.endpoint_url())
            .policy(fast_policy())
            .seed(1),
    );
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let seen = up(&mut events).await;
    assert!(fell(&seen, WebSocket, Sse), "FALLBACK-3:\n{}", dump(&seen));
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e.event, Event::ReconnectScheduled { .. })),
        "FALLBACK-3: no backoff before the next rung:\n{}",
        dump(&seen)
    );
    assert_eq!(
        client.state(),
        State::Degraded {
            transport: Sse,
            reason: ErrorCode::TransportBlocked
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_2a_wrong_content_type_moves_to_long_poll() {
    let server = server().await;
    server.apply_fault(
        FaultRule::always(Fault::WrongContentType {
            content_type: "text/html".into(),
        })
        .on(FaultTarget::Sse),
    );
    let client = build(
        Client::builder(server.endpoint_url())
            .transports(&[Sse, LongPoll])
            .policy(fast_policy())
            .seed(2),
    );
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let seen = up(&mut events).await;
    assert!(fell(&seen, Sse, LongPoll), "FALLBACK-3:\n{}", dump(&seen));
    assert!(matches!(
        client.state(),
        State::Degraded {
            transport: LongPoll,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_2b_buffering_proxy_moves_to_long_poll() {
    let server = server().await;
    server.apply_fault(
        FaultRule::always(Fault::BufferSse {
            events: None,
            ms: Some(10_000),
        })
        .on(FaultTarget::Sse),
    );
    let policy = PolicyWire {
        open_timeout_ms: Some(300.0),
        ..fast_policy()
    };
    let client = build(
        Client::builder(server.endpoint_url())
            .transports(&[Sse, LongPoll])
            .policy(policy)
            .seed(3),
    );
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let seen = up(&mut events).await;
    assert!(
        fell(&seen, Sse, LongPoll),
        "FALLBACK-2b after two slow opens:\n{}",
        dump(&seen)
    );
    let sse_opens = seen
        .iter()
        .filter(|e| matches!(e.event, Event::TransportSelected { transport: Sse }))
        .count();
    assert_eq!(sse_opens, 2, "FALLBACK-2b: two consecutive slow opens");
}

/// FALLBACK-7 + RESUME-6: moving down two rungs mid-stream loses and duplicates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_7_no_loss_across_rungs() {
    let server = server().await;
    let client = build(
        Client::builder(server.endpoint_url())
            .policy(fast_policy())
            .seed(4),
    );
    let mut events = client.events();
    client
        .subscribe("f")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    for i in 1..=10 {
        let _ = server.publish("f", json!(i)).await;
    }
    let first = messages(&mut events, "f", 10).await;
    // The network turns hostile: upgrades refused, SSE answered by an HTML proxy.
    server.apply_fault(
        FaultRule::always(Fault::RefuseUpgrade { status: 405 }).on(FaultTarget::WebSocket),
    );
    server.apply_fault(
        FaultRule::always(Fault::WrongContentType {
            content_type: "text/html".into(),
        })
        .on(FaultTarget::Sse),
    );
    server.restart(false);
    for i in 11..=20 {
        let _ = server.publish("f", json!(i)).await;
    }
    let rest = messages(&mut events, "f", 10).await;
    assert!(matches!(
        client.state(),
        State::Degraded {
            transport: LongPoll,
            ..
        }
    ));
    let seqs: Vec<u64> = first.iter().chain(rest.iter()).map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Some(ev) = events.try_recv() {
        assert!(
            !matches!(ev.event, Event::Message { .. }),
            "duplicate: {:?}",
            ev.event
        );
    }
}

/// FALLBACK-3: connection refused is the server being down, not a blocked rung: plain backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_3_refused_tcp_is_not_blocking() {
    let server = server().await;
    server.stop_listening();
    let client = build(
        Client::builder(server.endpoint_url())
            .policy(fast_policy())
            .seed(5),
    );
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let seen = until(&mut events, "three retries", |e| {
        matches!(e, Event::ReconnectScheduled { attempt: 3, .. })
    })
    .await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e.event, Event::Fallback { .. })),
        "no fallback on refused TCP:\n{}",
        dump(&seen)
    );
    server.resume_listening();
    let seen = up(&mut events).await;
    assert!(!seen
        .iter()
        .any(|e| matches!(e.event, Event::Fallback { .. })));
    assert_eq!(
        client.state(),
        State::Connected {
            transport: WebSocket
        }
    );
}

/// Handshakes the server saw, per transport name.
fn handshakes(server: &tether_server::Server) -> Vec<String> {
    server
        .log()
        .entries(tether_server::LogKind::Handshake, None)
        .into_iter()
        .filter_map(|e| e.transport)
        .collect()
}

/// FALLBACK-2: a load balancer whose backend is down answers 502 without `Tether-Error`. That
/// is the server being unreachable, like refused TCP: the client backs off on WebSocket at
/// the same pace as against a server that refuses TCP, with no fallback. (Before FALLBACK-2's
/// table each 502 blocked the rung: one immediate attempt per rung at every backoff step,
/// about three times the attempts.) Default timings (BACKOFF-2), four seeded clients each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_2_gateway_502_front_keeps_the_rung_and_the_attempt_rate() {
    const CLIENTS: u64 = 4;
    const WINDOW: Duration = Duration::from_secs(8);
    let gateway = server().await;
    gateway.apply_fault(FaultRule::always(Fault::Status {
        status: 502,
        headers: Default::default(),
        body: "<html>502 Bad Gateway</html>".into(),
    }));
    let direct = server().await;
    direct.apply_fault(FaultRule::always(Fault::RefuseTcp));
    let mut clients = Vec::new();
    let mut streams = Vec::new();
    for seed in 1..=CLIENTS {
        for s in [&gateway, &direct] {
            let c = build(Client::builder(s.endpoint_url()).seed(seed));
            streams.push(c.events());
            c.connect().unwrap_or_else(|e| panic!("{e}"));
            clients.push(c);
        }
    }
    tokio::time::sleep(WINDOW).await;
    let behind_gateway = handshakes(&gateway);
    let direct_attempts = direct
        .log()
        .entries(tether_server::LogKind::TcpRefused, None)
        .len();
    for c in &clients {
        c.close().await.unwrap_or_else(|e| panic!("{e}"));
    }
    let per_sec = |n: usize| n as f64 / (CLIENTS as f64 * WINDOW.as_secs_f64());
    eprintln!(
        "attempts/s per client over {WINDOW:?}: behind a 502 front {:.2} ({} attempts), refused TCP {:.2} ({} attempts)",
        per_sec(behind_gateway.len()),
        behind_gateway.len(),
        per_sec(direct_attempts),
        direct_attempts
    );
    assert!(
        behind_gateway.iter().all(|t| t == "websocket"),
        "FALLBACK-2: the rung is kept: {behind_gateway:?}"
    );
    for mut events in streams {
        while let Some(ev) = events.try_recv() {
            assert!(
                !matches!(ev.event, Event::Fallback { .. }),
                "FALLBACK-2: no fallback behind a 502 front: {:?}",
                ev.event
            );
        }
    }
    assert!(
        behind_gateway.len() <= direct_attempts + 2 * CLIENTS as usize,
        "FALLBACK-2: {} attempts behind a 502 front against {direct_attempts} with refused TCP (same seeds)",
        behind_gateway.len()
    );
}
