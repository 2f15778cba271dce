//! CONN-2 / OUTBOX-3: every transport reaches the reference server, receives and publishes.

use crate::support;

use serde_json::json;
use support::*;
use tether::{Event, State, TransportKind};

async fn connects_and_round_trips(t: TransportKind) {
    let server = server().await;
    let client = builder(&server, t)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut events = client.events();
    client
        .subscribe("room")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    assert_eq!(client.state(), State::Connected { transport: t });
    server
        .publish("room", json!({"n": 1}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = messages(&mut events, "room", 1).await;
    assert_eq!(got[0].1, json!({"n": 1}));
    let handle = client
        .publish("room", json!({"from": "client"}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ack = tokio::time::timeout(WAIT, handle)
        .await
        .unwrap_or_else(|_| panic!("no ack"))
        .unwrap_or_else(|d| panic!("{d}"));
    assert!(ack.seq.is_some());
    // The publish comes back on the subscribed channel, exactly once.
    let got = messages(&mut events, "room", 1).await;
    assert_eq!(got[0].1, json!({"from": "client"}));
    client.close().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(client.state(), State::Closed);
    let closed = until(&mut events, "closed", |e| {
        matches!(
            e,
            Event::StateChanged {
                to: State::Closed,
                ..
            }
        )
    })
    .await;
    assert!(!closed.is_empty());
}

per_transport!(connects_and_round_trips: conn_2_websocket_round_trip, conn_2_sse_round_trip, conn_2_long_poll_round_trip);
