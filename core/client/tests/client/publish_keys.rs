//! OUTBOX-1 end to end on the reference server: generated publish keys never repeat, so the
//! server's deduplication (OUTBOX-5) never swallows a new message. Two clients built with the
//! same seed, and one client restarted on its store with its seed, publish; every message
//! reaches a subscriber.

use crate::support;

use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use support::*;
use tether::store::file::FileStore;
use tether::{Client, EventStream, MemoryStore, PublishHandle, Store, TransportKind};
use tether_server::Server;

/// Await every handle: (key, seq) per publish, in order.
async fn acked(handles: Vec<PublishHandle>) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for h in handles {
        let id = h.id().to_owned();
        match tokio::time::timeout(WAIT, h).await {
            Ok(Ok(ack)) => out.push((id, ack.seq.unwrap_or(0))),
            Ok(Err(d)) => panic!("{id} dropped: {d}"),
            Err(_) => panic!("{id}: no ack"),
        }
    }
    out
}

/// A connected subscriber of `channel`.
async fn subscriber(server: &Server, channel: &str) -> (Client, EventStream) {
    let sub = build(builder(server, TransportKind::WebSocket).seed(99));
    let mut events = sub.events();
    sub.subscribe(channel)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sub.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    (sub, events)
}

async fn publish_all(client: &Client, channel: &str, payloads: &[Value]) -> Vec<PublishHandle> {
    let mut handles = Vec::new();
    for p in payloads {
        handles.push(
            client
                .publish(channel, p.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    handles
}

fn counter(key: &str) -> u64 {
    key.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("key {key}"))
}

fn prefix(key: &str) -> &str {
    key.rsplit_once('-').map_or(key, |(p, _)| p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_1_two_clients_with_the_same_seed_never_share_a_key() {
    let server = server().await;
    let (_sub, mut events) = subscriber(&server, "k").await;
    // Both with seed 7 (the test builder's), on different transports.
    let a = build(builder(&server, TransportKind::WebSocket).seed(7));
    let b = build(builder(&server, TransportKind::Sse).seed(7));
    a.connect().unwrap_or_else(|e| panic!("{e}"));
    b.connect().unwrap_or_else(|e| panic!("{e}"));
    let from_a: Vec<Value> = (0..5).map(|n| json!({"from": "a", "n": n})).collect();
    let from_b: Vec<Value> = (0..5).map(|n| json!({"from": "b", "n": n})).collect();
    let ha = publish_all(&a, "k", &from_a).await;
    let hb = publish_all(&b, "k", &from_b).await;
    let acks: Vec<(String, u64)> = [acked(ha).await, acked(hb).await].concat();
    let keys: HashSet<&str> = acks.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 10, "every key distinct: {acks:?}");
    let seqs: HashSet<u64> = acks.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        seqs.len(),
        10,
        "ten messages, not five acked twice: {acks:?}"
    );
    let got: HashSet<String> = messages(&mut events, "k", 10)
        .await
        .into_iter()
        .map(|(_, d)| d.to_string())
        .collect();
    let want: HashSet<String> = from_a.iter().chain(&from_b).map(Value::to_string).collect();
    assert_eq!(got, want, "every message reached the subscriber");
}

/// Publish three, close; a new client with the same seed on the same store publishes three
/// more: they continue the key sequence and all six reach the subscriber.
async fn restarted_client_continues<S: Store + Send + 'static>(
    transport: TransportKind,
    store: impl Fn() -> S,
) {
    let server = server().await;
    let (_sub, mut events) = subscriber(&server, "r").await;
    let before: Vec<Value> = (0..3).map(|n| json!({"n": n})).collect();
    let after: Vec<Value> = (3..6).map(|n| json!({"n": n})).collect();

    let first = build(builder(&server, transport).seed(7).store(store()));
    first.connect().unwrap_or_else(|e| panic!("{e}"));
    let acks1 = acked(publish_all(&first, "r", &before).await).await;
    first.close().await.unwrap_or_else(|e| panic!("{e}"));
    drop(first);

    let second = build(builder(&server, transport).seed(7).store(store()));
    second.connect().unwrap_or_else(|e| panic!("{e}"));
    let acks2 = acked(publish_all(&second, "r", &after).await).await;

    let old_keys: HashSet<&str> = acks1.iter().map(|(k, _)| k.as_str()).collect();
    for (k, _) in &acks2 {
        assert!(!old_keys.contains(k.as_str()), "key {k} repeated");
        assert_eq!(prefix(k), prefix(&acks1[0].0), "the stored client id");
        assert!(
            counter(k) > counter(&acks1[2].0),
            "{k} continues the sequence"
        );
    }
    let old_seqs: HashSet<u64> = acks1.iter().map(|(_, s)| *s).collect();
    assert!(
        acks2.iter().all(|(_, s)| !old_seqs.contains(s)),
        "new messages got new seqs, not the old ones (OUTBOX-5): {acks1:?} {acks2:?}"
    );
    let got: Vec<Value> = messages(&mut events, "r", 6)
        .await
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        got,
        [before, after].concat(),
        "every message delivered once"
    );
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tether-publish-keys-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{e}"));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_1_restart_on_a_file_store_continues_the_keys() {
    let dir = TempDir::new("file");
    let path = dir.0.clone();
    restarted_client_continues(TransportKind::WebSocket, move || {
        FileStore::open(&path).unwrap_or_else(|e| panic!("{e}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_1_restart_on_a_shared_memory_store_continues_the_keys() {
    let shared = Arc::new(Mutex::new(MemoryStore::default()));
    restarted_client_continues(TransportKind::LongPoll, move || shared.clone()).await;
}
