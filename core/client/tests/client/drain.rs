//! DRAIN-1/2: a drain frame closes the connection and reconnects inside the window, measured
//! from the server's own log; the attempt counter is not touched.

use crate::support;

use std::time::Duration;
use support::*;
use tether::{Cause, Event, TransportKind};
use tether_server::LogKind;

async fn drain_window_is_honoured(t: TransportKind) {
    let server = server().await;
    let client = build(builder(&server, t));
    let mut events = client.events();
    client
        .subscribe("d")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    let before = log_of(&server, LogKind::Handshake, t).len();
    let (from_ms, to_ms) = (250u64, 450u64);
    let told = server.drain(from_ms, to_ms);
    // Long-poll: between two polls no request is held; the next poll hears the drain.
    assert!(
        told >= 1 || t == TransportKind::LongPoll,
        "the client's connection was told"
    );
    let seen = until(&mut events, "drain schedule", |e| {
        matches!(
            e,
            Event::ReconnectScheduled {
                cause: Cause::Drain,
                ..
            }
        )
    })
    .await;
    // Accept handshakes again: only the client's own wait is measured.
    server.undrain();
    let Some(Event::ReconnectScheduled { attempt, delay, .. }) = seen.last().map(|e| &e.event)
    else {
        panic!("no schedule")
    };
    assert_eq!(*attempt, 0, "DRAIN-2: a drain is not a failure");
    assert!(
        (Duration::from_millis(from_ms)..=Duration::from_millis(to_ms)).contains(delay),
        "DRAIN-1: t = U(from, to): {delay:?}"
    );
    up(&mut events).await;
    let drained_at = action_at(&server, "drain ");
    let handshakes = log_of(&server, LogKind::Handshake, t);
    assert_eq!(handshakes.len(), before + 1, "exactly one reconnect");
    let waited = Duration::from_micros(handshakes[before].at_us.saturating_sub(drained_at));
    assert!(
        waited >= Duration::from_millis(from_ms),
        "DRAIN-1: reconnected after {waited:?}, before the window opened"
    );
    assert!(
        waited <= Duration::from_millis(to_ms + 250),
        "DRAIN-1: reconnected after {waited:?}, well after the window closed"
    );
    client.close().await.unwrap_or_else(|e| panic!("{e}"));
}

per_transport!(drain_window_is_honoured: drain_1_websocket, drain_1_sse, drain_1_long_poll);
