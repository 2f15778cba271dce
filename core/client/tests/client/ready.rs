//! READY-1: a refused handshake's retry-after hint is honoured (`RA + U(0, RA/2)`), measured
//! between the refusal and the next handshake in the server's log.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::*;
use tether::{Cause, Event, TransportKind};
use tether_server::{Fault, FaultRule, FaultTarget, LogKind};

const RA_MS: u64 = 300;

async fn check_wait(server: &tether_server::Server, t: TransportKind) {
    let refused = log_of(server, LogKind::Handshake, t);
    assert!(
        refused.len() >= 2,
        "a refused and a retried handshake: {refused:?}"
    );
    let waited = Duration::from_micros(refused[1].at_us - refused[0].at_us);
    assert!(
        waited >= Duration::from_millis(RA_MS),
        "READY-1: retried after {waited:?} < RA {RA_MS} ms"
    );
    assert!(
        waited <= Duration::from_millis(RA_MS * 3 / 2 + 250),
        "READY-1: retried after {waited:?}, beyond RA + RA/2"
    );
}

async fn http_503_hint(t: TransportKind) {
    let server = server().await;
    let mut headers = BTreeMap::new();
    headers.insert("Tether-Retry-After-Ms".to_owned(), RA_MS.to_string());
    headers.insert("Tether-Error".to_owned(), "retry_later".to_owned());
    server.apply_fault(FaultRule::next(
        target(t),
        1,
        Fault::Status {
            status: 503,
            headers,
            body: String::new(),
        },
    ));
    let client = build(builder(&server, t));
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let seen = up(&mut events).await;
    assert!(
        seen.iter().any(|e| matches!(
            &e.event,
            Event::ReconnectScheduled { cause: Cause::RetryLater, delay, .. }
                if *delay >= Duration::from_millis(RA_MS) && *delay <= Duration::from_millis(RA_MS * 3 / 2)
        )),
        "READY-1 schedule:\n{}",
        dump(&seen)
    );
    check_wait(&server, t).await;
}

per_transport!(http_503_hint: ready_1_http_503_websocket, ready_1_http_503_sse, ready_1_http_503_long_poll);

/// READY-1: WebSocket close 4009 whose reason is the delay in milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_1_close_4009_websocket() {
    let server = server().await;
    server.apply_fault(FaultRule::next(
        FaultTarget::WebSocket,
        1,
        Fault::CloseBeforeHello {
            code: 4009,
            reason: RA_MS.to_string(),
        },
    ));
    let client = build(builder(&server, TransportKind::WebSocket));
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    check_wait(&server, TransportKind::WebSocket).await;
}

/// READY-1: a `retry_later{after_ms}` frame instead of the hello.
async fn retry_later_frame(t: TransportKind) {
    let server = server().await;
    server.apply_fault(FaultRule::next(
        target(t),
        1,
        Fault::RetryLater { after_ms: RA_MS },
    ));
    let client = build(builder(&server, t));
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    check_wait(&server, t).await;
}

per_transport!(retry_later_frame: ready_1_frame_websocket, ready_1_frame_sse, ready_1_frame_long_poll);
