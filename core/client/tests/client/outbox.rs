//! OUTBOX-2/3/4/5: publishes queued offline flush in order once connected, unacknowledged ones
//! are resent after a reconnect with the same id, and the server's dedupe makes them count once.

use crate::support;

use serde_json::json;
use std::time::Duration;
use support::*;
use tether::{Client, ClientError, Event, MemoryStore, PublishHandle, TransportKind};
use tether_server::{Fault, FaultRule, LogKind};

async fn acks(handles: Vec<PublishHandle>) -> Vec<u64> {
    let mut seqs = Vec::new();
    for h in handles {
        let id = h.id().to_owned();
        match tokio::time::timeout(WAIT, h).await {
            Ok(Ok(ack)) => seqs.push(ack.seq.unwrap_or(0)),
            Ok(Err(d)) => panic!("{id} dropped: {d}"),
            Err(_) => panic!("{id}: no ack"),
        }
    }
    seqs
}

async fn queued_offline_flush_in_order(t: TransportKind) {
    let server = server().await;
    let client = build(builder(&server, t));
    let mut events = client.events();
    client
        .subscribe("o")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(
            client
                .publish("o", json!(i))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let seqs = acks(handles).await;
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "OUTBOX-3: acked in order: {seqs:?}"
    );
    let got = messages(&mut events, "o", 20).await;
    let data: Vec<i64> = got.iter().map(|(_, d)| d.as_i64().unwrap_or(-1)).collect();
    assert_eq!(data, (0..20).collect::<Vec<_>>(), "OUTBOX-3: sent in order");
}

per_transport!(queued_offline_flush_in_order: outbox_3_websocket, outbox_3_sse, outbox_3_long_poll);

async fn resent_after_reconnect(t: TransportKind) {
    let server = server().await;
    // The first connection goes silent after its hello: publishes sent on it get no ack.
    server.apply_fault(FaultRule::next(
        target(t),
        1,
        Fault::Blackhole { after_ms: 0 },
    ));
    if t != TransportKind::WebSocket {
        // POSTs of that first connection are swallowed too.
        server.apply_fault(FaultRule::next(
            tether_server::FaultTarget::Send,
            1,
            Fault::SwallowUpgrade,
        ));
    }
    let client = build(builder(&server, t));
    let mut events = client.events();
    client
        .subscribe("r")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    let mut handles = Vec::new();
    for i in 0..5 {
        handles.push(
            client
                .publish("r", json!(i))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let ids: Vec<String> = handles.iter().map(|h| h.id().to_owned()).collect();
    let seqs = acks(handles).await;
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "OUTBOX-4: original order: {seqs:?}"
    );
    let got = messages(&mut events, "r", 5).await;
    let data: Vec<i64> = got.iter().map(|(_, d)| d.as_i64().unwrap_or(-1)).collect();
    assert_eq!(
        data,
        (0..5).collect::<Vec<_>>(),
        "each publish delivered once, in order"
    );
    assert!(
        log_of(&server, LogKind::Handshake, t).len() >= 2,
        "the publishes were resent on a new connection"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Some(ev) = events.try_recv() {
        assert!(
            !matches!(ev.event, Event::Message { .. }),
            "duplicate: {:?}",
            ev.event
        );
    }
    drop(ids);
}

per_transport!(resent_after_reconnect: outbox_4_websocket, outbox_4_sse, outbox_4_long_poll);

/// OUTBOX-5: a repeated id is acknowledged again with the original seq and not re-broadcast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_5_repeated_id_is_deduplicated() {
    let server = server().await;
    let client = build(builder(&server, TransportKind::WebSocket));
    let mut events = client.events();
    client
        .subscribe("k")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    let first = acks(vec![client
        .publish_with_id("k", json!("once"), "app-key-1")
        .await
        .unwrap_or_else(|e| panic!("{e}"))])
    .await;
    // A second client (another store: a restarted app) publishes the same key.
    let other = build(builder(&server, TransportKind::Sse));
    other.connect().unwrap_or_else(|e| panic!("{e}"));
    let second = acks(vec![other
        .publish_with_id("k", json!("once"), "app-key-1")
        .await
        .unwrap_or_else(|e| panic!("{e}"))])
    .await;
    assert_eq!(first, second, "OUTBOX-5: acked again with the original seq");
    let got = messages(&mut events, "k", 1).await;
    assert_eq!(got[0].1, json!("once"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    while let Some(ev) = events.try_recv() {
        assert!(
            !matches!(ev.event, Event::Message { .. }),
            "re-broadcast: {:?}",
            ev.event
        );
    }
}

/// OUTBOX-2: a store failure refuses the publish with `store_failed`; nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_2_store_failure_refuses_publish() {
    let store = MemoryStore {
        fail_writes: true,
        ..MemoryStore::default()
    };
    let client = build(Client::builder("http://127.0.0.1:9/tether").store(store));
    let err = client.publish("c", json!(1)).await.map(|_| ());
    assert!(matches!(err, Err(ClientError::Call(_))));
    assert_eq!(err.map_err(|e| e.code().as_str()), Err("store_failed"));
}

/// OUTBOX-6 + WIRE-8 + LIMIT-1: local refusals come back as typed errors with stable codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn err_1_local_refusals_are_typed() {
    let client = build(Client::builder("http://127.0.0.1:9/tether").max_frame_bytes(2048));
    let code = |r: Result<PublishHandle, ClientError>| r.map(|_| ()).map_err(|e| e.code().as_str());
    assert_eq!(
        code(client.publish("bad channel", json!(1)).await),
        Err("invalid_channel")
    );
    assert_eq!(
        code(client.publish("c", json!("x".repeat(4096))).await),
        Err("message_too_large")
    );
    client.close().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(client.publish("c", json!(1)).await), Err("closed"));
}
