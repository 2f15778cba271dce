//! (P8) the outbox: 10,000 publishes queued while the server is unreachable (listener closed,
//! connections dropped), then the time from the reconnect (state `Connected` again) until
//! every one is acknowledged; and the bytes a `FileStore` log takes per queued publish beyond
//! the publish's `data`.

use super::Res;
use std::time::{Duration, Instant};
use tether::engine::store::{OutboxRecord, Store};
use tether::{Client, PolicyWire, State, TransportKind};
use tether_server::{Server, ServerConfig};

/// Seconds from the reconnect until all `n` queued publishes are acknowledged.
pub async fn flush_after_reconnect(n: usize) -> Res<(f64, Vec<OutboxRecord>)> {
    let server = Server::start(ServerConfig {
        heartbeat: Duration::from_secs(30),
        ..ServerConfig::default()
    })
    .await?;
    // Policy overrides: an outbox that holds the whole batch (OUTBOX-6 default: 1,000), and
    // quick retries so the bench does not wait out a long backoff (the flush does not depend
    // on it).
    let policy = PolicyWire {
        outbox_max_count: Some(n as f64),
        outbox_max_bytes: Some(64.0 * 1024.0 * 1024.0),
        floor_ms: Some(50.0),
        base_ms: Some(100.0),
        cap_ms: Some(200.0),
        ..PolicyWire::default()
    };
    let client = Client::builder(server.endpoint_url())
        .transports(&[TransportKind::WebSocket])
        .policy(policy)
        .build()?;
    client.connect()?;
    let mut state = client.state_watch();
    state
        .wait_for(|s| matches!(s, State::Connected { .. }))
        .await?;
    server.stop_listening();
    server.listener_settled().await;
    server.close_all(1012, "restart");
    state
        .wait_for(|s| !matches!(s, State::Connected { .. }))
        .await?;
    let mut handles = Vec::with_capacity(n);
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let data = serde_json::json!({ "i": i, "text": "queued while offline" });
        let h = client.publish("p8", data.clone()).await?;
        records.push(OutboxRecord {
            id: h.id().to_owned(),
            channel: "p8".into(),
            data: data.to_string(),
            enqueued_unix_ms: 1_780_000_000_000 + i as u64,
        });
        handles.push(h);
    }
    server.resume_listening();
    state
        .wait_for(|s| matches!(s, State::Connected { .. }))
        .await?;
    let start = Instant::now();
    for h in handles {
        h.await.map_err(|d| format!("p8: publish dropped: {d:?}"))?;
    }
    let secs = start.elapsed().as_secs_f64();
    client.close().await?;
    Ok((secs, records))
}

/// Bytes per record of a `FileStore` log holding `records`, beyond each record's `data`.
pub fn file_store_overhead(records: &[OutboxRecord]) -> Res<f64> {
    let dir = std::env::temp_dir().join(format!("tether-bench-p8-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut store = tether::FileStore::open(&dir)?;
    for r in records {
        store.append(r)?;
    }
    drop(store);
    let mut log_bytes = 0u64;
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("outbox.log")
        {
            log_bytes += entry.metadata()?.len();
        }
    }
    let data: u64 = records.iter().map(|r| r.data.len() as u64).sum();
    let _ = std::fs::remove_dir_all(&dir);
    Ok((log_bytes - data) as f64 / records.len() as f64)
}
