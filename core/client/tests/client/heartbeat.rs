//! HEARTBEAT-2/4: a half-open connection (the server goes silent without closing) is detected
//! after `heartbeat + grace` (`poll_hold + grace` for long-poll) and replaced.

use crate::support;

use std::time::Duration;
use support::*;
use tether::{Cause, ErrorCode, Event, State, TransportKind};
use tether_server::{Fault, FaultRule, LogKind};

async fn blackhole_is_detected(t: TransportKind) {
    let server = server().await;
    server.apply_fault(FaultRule::next(
        target(t),
        1,
        Fault::Blackhole { after_ms: 0 },
    ));
    let client = build(builder(&server, t));
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let seen = up(&mut events).await;
    let connected_at = seen.last().map(|e| e.at).unwrap_or_default();
    let seen = until(&mut events, "heartbeat timeout", |e| {
        matches!(
            e,
            Event::StateChanged {
                cause: Cause::HeartbeatTimeout,
                ..
            }
        )
    })
    .await;
    assert!(
        seen.iter().any(|e| matches!(
            &e.event,
            Event::Error {
                code: ErrorCode::HeartbeatTimeout,
                ..
            }
        )),
        "{}",
        dump(&seen)
    );
    let silent = seen.last().map(|e| e.at).unwrap_or_default() - connected_at;
    // heartbeat 400 + grace 300 (long-poll: hold 500 + grace 300), from the last byte received.
    let floor = if t == TransportKind::LongPoll {
        800
    } else {
        700
    };
    assert!(
        silent >= Duration::from_millis(floor),
        "HEARTBEAT-2: gave up after {silent:?}"
    );
    assert!(
        silent <= Duration::from_millis(floor + 600),
        "HEARTBEAT-2: detected late: {silent:?}"
    );
    up(&mut events).await;
    assert_eq!(client.state(), State::Connected { transport: t });
    assert_eq!(log_of(&server, LogKind::Handshake, t).len(), 2);
}

per_transport!(blackhole_is_detected: heartbeat_2_websocket, heartbeat_2_sse, heartbeat_4_long_poll);
