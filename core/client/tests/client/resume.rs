//! RESUME-2/3, ORDER-1/2, FALLBACK-7: a connection killed mid-stream resumes from the cursor with
//! no loss and no duplicates, on every transport.

use crate::support;

use serde_json::json;
use std::time::Duration;
use support::*;
use tether::{Cause, Event, State, TransportKind};

async fn killed_connection_resumes(t: TransportKind) {
    let server = server().await;
    let client = builder(&server, t)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut events = client.events();
    client
        .subscribe("feed")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    let total = 60u64;
    let publisher = {
        let state = server.state().clone();
        tokio::spawn(async move {
            for i in 1..=total {
                if i == 21 || i == 41 {
                    // Drop every connection without a close frame (RESUME-3 replays the gap).
                    // A long-poll client holds a connection only while a poll is held, and a
                    // restart between polls goes unnoticed: wait for a live one (at most 2 s),
                    // with no publish in flight that could answer it first.
                    for _ in 0..2000 {
                        if state
                            .connections()
                            .iter()
                            .any(|c| c.transport == t.as_str())
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    state.restart(false);
                }
                let _ = state.publish("feed", json!({ "i": i })).await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let got = messages(&mut events, "feed", total as usize).await;
    let _ = publisher.await;
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "ORDER-1: every seq once, in order"
    );
    let data: Vec<u64> = got
        .iter()
        .map(|(_, d)| d["i"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(data, (1..=total).collect::<Vec<_>>());
    // Nothing more arrives (no duplicate delivered late).
    tokio::time::sleep(Duration::from_millis(150)).await;
    while let Some(ev) = events.try_recv() {
        assert!(
            !matches!(ev.event, Event::Message { .. }),
            "ORDER-2: duplicate delivered: {:?}",
            ev.event
        );
    }
    // The reconnects resumed with a cursor (RESUME-2): the server saw handshakes carrying one.
    let handshakes = server
        .log()
        .entries(tether_server::LogKind::Handshake, Some(t.as_str()));
    assert!(
        handshakes.len() >= 2,
        "expected reconnects, log: {}",
        log_dump(&server)
    );
    assert!(
        handshakes.iter().skip(1).all(|h| h.cursor.is_some()),
        "RESUME-2: reconnects carry the cursor: {handshakes:?}"
    );
    client.close().await.unwrap_or_else(|e| panic!("{e}"));
}

per_transport!(killed_connection_resumes: resume_3_order_2_websocket, resume_3_order_2_sse, resume_3_order_2_long_poll);

/// BACKOFF-5: a drop after a hello schedules a jittered reconnect (never immediate), n = 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_5_drop_reconnects_with_jitter() {
    let server = server().await;
    let client = builder(&server, TransportKind::WebSocket)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    server.restart(false);
    let seen = until(&mut events, "reconnect scheduled", |e| {
        matches!(e, Event::ReconnectScheduled { .. })
    })
    .await;
    let Some(Event::ReconnectScheduled {
        attempt,
        delay,
        cause,
    }) = seen.last().map(|e| &e.event)
    else {
        panic!("no schedule")
    };
    assert_eq!(
        *attempt, 1,
        "the first retry after a drop (n = 0 was drawn)"
    );
    assert_eq!(*cause, Cause::TransportError);
    assert!(
        *delay <= Duration::from_millis(30),
        "U(floor, base) with base 30 ms: {delay:?}"
    );
    up(&mut events).await;
    assert_eq!(
        client.state(),
        State::Connected {
            transport: TransportKind::WebSocket
        }
    );
}
