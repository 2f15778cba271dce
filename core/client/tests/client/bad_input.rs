//! WIRE-6, ERR-2, LIMIT-1/2/3, SSE-6, SSE-8: garbage, invalid UTF-8, a 10 MB line and an absurd
//! `retry:` from the server end in typed errors (frame skipped) or a bounded reconnect.

use crate::support;

use serde_json::json;
use std::time::Duration;
use support::*;
use tether::{Cause, ErrorCode, Event, State, TransportKind};
use tether_server::{Fault, FaultRule, FaultTarget, LogKind, MalformedKind};

async fn connected_with(
    t: TransportKind,
    fault: Fault,
    max_frame: usize,
) -> (
    tether_server::Server,
    tether::Client,
    tether::EventStream,
    Vec<tether::ClientEvent>,
) {
    let server = server().await;
    server.apply_fault(FaultRule::next(target(t), 1, fault));
    let client = build(builder(&server, t).max_frame_bytes(max_frame));
    let mut events = client.events();
    client
        .subscribe("b")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let seen = up(&mut events).await;
    (server, client, events, seen)
}

async fn garbage_is_skipped(t: TransportKind, kind: MalformedKind, codes: &[ErrorCode]) {
    let (server, client, mut events, mut seen) =
        connected_with(t, Fault::Malformed { kind, frames: 3 }, 1 << 20).await;
    seen.extend(
        until(
            &mut events,
            "typed error",
            |e| matches!(e, Event::Error { code, .. } if codes.contains(code)),
        )
        .await,
    );
    // The connection continues (WIRE-6): a message published now arrives on it.
    let _ = server.publish("b", json!("after")).await;
    let got = messages(&mut events, "b", 1).await;
    assert_eq!(got[0].1, json!("after"));
    assert_eq!(client.state(), State::Connected { transport: t });
    assert_eq!(
        log_of(&server, LogKind::Handshake, t).len(),
        1,
        "no reconnect:\n{}",
        dump(&seen)
    );
}

async fn garbage_bytes(t: TransportKind) {
    garbage_is_skipped(
        t,
        MalformedKind::GarbageBytes,
        &[ErrorCode::FrameMalformed, ErrorCode::InvalidUtf8],
    )
    .await
}
per_transport!(garbage_bytes: wire_6_garbage_websocket, wire_6_garbage_sse, wire_6_garbage_long_poll);

async fn invalid_utf8(t: TransportKind) {
    match t {
        // The long-poll body is not UTF-8: `invalid_utf8`, the body is skipped, the poll goes on.
        TransportKind::LongPoll => {
            garbage_is_skipped(t, MalformedKind::InvalidUtf8, &[ErrorCode::InvalidUtf8]).await
        }
        // SSE-8: the parser replaces invalid UTF-8 with U+FFFD, never an error; the payload
        // then reads as a valid `ping` and the stream simply goes on.
        TransportKind::Sse => {
            let (server, client, mut events, _) = connected_with(
                t,
                Fault::Malformed {
                    kind: MalformedKind::InvalidUtf8,
                    frames: 3,
                },
                1 << 20,
            )
            .await;
            let _ = server.publish("b", json!("after")).await;
            let seen = until(&mut events, "message", |e| {
                matches!(e, Event::Message { .. })
            })
            .await;
            assert!(
                !seen
                    .iter()
                    .any(|e| matches!(e.event, Event::Error { .. } | Event::StateChanged { .. })),
                "SSE-8:\n{}",
                dump(&seen)
            );
            assert_eq!(client.state(), State::Connected { transport: t });
        }
        // `invalid_utf8` is reported, then the connection is failed (RFC 6455 §8.1) and resumed.
        TransportKind::WebSocket => {
            let (server, client, mut events, _) = connected_with(
                t,
                Fault::Malformed {
                    kind: MalformedKind::InvalidUtf8,
                    frames: 3,
                },
                1 << 20,
            )
            .await;
            until(&mut events, "invalid_utf8", |e| {
                matches!(
                    e,
                    Event::Error {
                        code: ErrorCode::InvalidUtf8,
                        ..
                    }
                )
            })
            .await;
            up(&mut events).await;
            let _ = server.publish("b", json!("after")).await;
            assert_eq!(messages(&mut events, "b", 1).await[0].1, json!("after"));
            assert_eq!(client.state(), State::Connected { transport: t });
        }
    }
}

per_transport!(invalid_utf8: err_1_invalid_utf8_websocket, err_1_invalid_utf8_sse, err_1_invalid_utf8_long_poll);

async fn ten_mb_line(t: TransportKind) {
    // max_frame 64 KiB: the WS message limit, the SSE line limit and a 1 MiB poll body cap.
    let (server, client, mut events, _) = connected_with(
        t,
        Fault::Oversized {
            bytes: 10 * 1024 * 1024,
        },
        64 * 1024,
    )
    .await;
    let expected: &[ErrorCode] = match t {
        // tungstenite refuses the message itself; the transport reports FrameTooLarge.
        TransportKind::WebSocket => &[ErrorCode::FrameTooLarge],
        TransportKind::Sse => &[ErrorCode::SseLineTooLong, ErrorCode::SseEventTooLarge],
        TransportKind::LongPoll => &[ErrorCode::FrameTooLarge],
    };
    let seen = until(
        &mut events,
        "limit error",
        |e| matches!(e, Event::Error { code, .. } if expected.contains(code)),
    )
    .await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(&e.event, Event::Message { .. })),
        "nothing delivered from the oversized input"
    );
    up(&mut events).await;
    assert_eq!(client.state(), State::Connected { transport: t });
    assert_eq!(
        log_of(&server, LogKind::Handshake, t).len(),
        2,
        "LIMIT-1/2/3: reconnected"
    );
    let _ = server.publish("b", json!("fine")).await;
    assert_eq!(messages(&mut events, "b", 1).await[0].1, json!("fine"));
}
per_transport!(ten_mb_line: limit_1_ten_mb_websocket, limit_3_ten_mb_sse, limit_2_ten_mb_long_poll);

/// SSE-6: an absurd `retry:` is clamped to [floor, cap]: the next delay is at most the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_6_absurd_retry_is_clamped() {
    let (server, _client, mut events, _) = connected_with(
        TransportKind::Sse,
        Fault::SseRetry {
            value: "99999999999".into(),
        },
        1 << 20,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.close_all(1000, "bye");
    let seen = until(&mut events, "reconnect", |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await;
    let Some(Event::ReconnectScheduled { delay, cause, .. }) = seen.last().map(|e| &e.event) else {
        panic!("no schedule")
    };
    assert!(matches!(cause, Cause::TransportClosed { .. }));
    assert!(
        *delay <= Duration::from_millis(200),
        "SSE-6: clamped to cap 200 ms: {delay:?}"
    );
    up(&mut events).await;
}

/// SSE-6: a non-numeric `retry:` is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_6_non_numeric_retry_is_ignored() {
    let (server, client, mut events, _) = connected_with(
        TransportKind::Sse,
        Fault::SseRetry { value: "-5".into() },
        1 << 20,
    )
    .await;
    let _ = server.publish("b", json!(1)).await;
    messages(&mut events, "b", 1).await;
    assert_eq!(
        client.state(),
        State::Connected {
            transport: TransportKind::Sse
        }
    );
    let _ = FaultTarget::Sse;
}
