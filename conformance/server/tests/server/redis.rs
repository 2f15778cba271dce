//! The Redis store on a real `redis-server`: several instances share channels, cursors and publish ids (ADR-2), order stays total, and Redis outages answer `not_ready` and heal by themselves.

use crate::common;
use common::redis::RedisServer;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tether_server::{
    ChannelStore, ReadOutcome, RedisConfig, RedisStore, Server, ServerConfig, ServerState,
};

fn store(r: &RedisServer, prefix: &str, ring: usize) -> RedisStore {
    let mut c = RedisConfig::new(r.url());
    c.prefix = prefix.into();
    c.ring_capacity = ring;
    c.health_interval = Duration::from_millis(50);
    RedisStore::connect(c).expect("store")
}

async fn up(s: &RedisStore) {
    assert!(
        s.wait_available(Duration::from_secs(5)).await,
        "store available"
    );
}

async fn instance(s: &RedisStore) -> Server {
    let cfg = ServerConfig {
        heartbeat: Duration::from_millis(500),
        ..Default::default()
    };
    let st = ServerState::with_store(cfg, Arc::new(s.clone())).expect("state");
    Server::start_with_state(st).await.expect("server")
}

fn no_reset(hello: &Value) -> bool {
    hello["type"] == "hello" && hello["reset"].as_array().is_none_or(|a| a.is_empty())
}

/// The `msg` frames of a WebSocket until `n` arrived (pings, hello and subscribed skipped).
async fn msgs(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let f = frame(ws).await;
        if f["type"] == "msg" {
            out.push(f);
        }
    }
    out
}

#[tokio::test]
async fn scale_3_store_is_shared_by_instances_rings_and_ids() {
    let r = RedisServer::start();
    let (a, b) = (store(&r, "t1", 3), store(&r, "t1", 3));
    up(&a).await;
    up(&b).await;
    assert_eq!(a.epoch(), b.epoch(), "one epoch for the shared store");
    assert_ne!(a.epoch(), 0);
    assert_eq!(a.append("c", json!({"n": 1})).await, Ok(1));
    assert_eq!(b.head("c").await, Ok(1));
    let ReadOutcome::Msgs(m) = b.read_after("c", 0, 10).await.expect("read") else {
        panic!("gone")
    };
    assert_eq!(
        (m.len(), m[0].seq, (*m[0].data).clone()),
        (1, 1, json!({"n": 1}))
    );
    // OUTBOX-5 across instances: the second instance answers the first one's seq.
    let p1 = a.publish_once("k1", "c", json!(2)).await.expect("p1");
    let p2 = b.publish_once("k1", "c", json!(2)).await.expect("p2");
    assert_eq!((p1.seq, p1.duplicate), (2, false));
    assert_eq!((p2.seq, p2.duplicate, p2.channel.as_str()), (2, true, "c"));
    assert_eq!(b.head("c").await, Ok(2), "a duplicate appends nothing");
    // RESUME-4: the ring keeps 3; after 6 messages, position 1 is gone, 3 is not.
    for i in 0..4 {
        b.append("c", json!(i)).await.expect("append");
    }
    assert_eq!(
        a.read_after("c", 1, 10).await,
        Ok(ReadOutcome::Gone { head: 6 })
    );
    let ReadOutcome::Msgs(m) = a.read_after("c", 3, 10).await.expect("read") else {
        panic!("gone")
    };
    assert_eq!(m.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert_eq!(
        a.read_after("c", 9, 10).await,
        Ok(ReadOutcome::Gone { head: 6 })
    );
    assert_eq!(
        a.read_after("new", 0, 10).await,
        Ok(ReadOutcome::Msgs(vec![]))
    );
    assert!(matches!(
        a.append("bad name", json!(1)).await,
        Err(tether_server::StoreError::InvalidChannel(_))
    ));
}

#[tokio::test]
async fn scale_1_cursor_of_one_instance_resumes_on_another_with_fanout() {
    let r = RedisServer::start();
    let (sa, sb) = (store(&r, "t2", 100), store(&r, "t2", 100));
    up(&sa).await;
    up(&sb).await;
    let (a, b) = (instance(&sa).await, instance(&sb).await);
    let mut wa = ws(&a, "v=1&channels=c").await;
    let hello = frame(&mut wa).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(frame(&mut wa).await["type"], "subscribed");
    // Published on B, delivered by A (fan-out through pub/sub).
    for i in 1..=3 {
        b.publish("c", json!({ "n": i })).await.expect("publish");
    }
    let got = msgs(&mut wa, 3).await;
    assert_eq!(
        got.iter().map(|m| m["seq"].as_u64()).collect::<Vec<_>>(),
        vec![Some(1), Some(2), Some(3)]
    );
    let cursor = got[2]["cursor"].as_str().expect("cursor").to_owned();
    drop(wa);
    a.publish("c", json!({"n": 4})).await.expect("publish");
    a.publish("c", json!({"n": 5})).await.expect("publish");
    // RESUME-3/4: B resumes A's cursor, replays 4 and 5, no reset.
    let mut wb = ws(&b, &format!("v=1&channels=c&cursor={cursor}")).await;
    let hello = frame(&mut wb).await;
    assert!(no_reset(&hello), "no reset: {hello}");
    let sub = frame(&mut wb).await;
    assert_eq!(
        (sub["type"].as_str(), sub["seq"].as_u64()),
        (Some("subscribed"), Some(3))
    );
    let got = msgs(&mut wb, 2).await;
    assert_eq!(
        got.iter()
            .map(|m| m["data"]["n"].as_u64())
            .collect::<Vec<_>>(),
        vec![Some(4), Some(5)]
    );
}

#[tokio::test]
async fn scale_2_order_per_channel_is_total_across_instances() {
    let r = RedisServer::start();
    let (sa, sb) = (store(&r, "t3", 1000), store(&r, "t3", 1000));
    up(&sa).await;
    up(&sb).await;
    let (a, b) = (instance(&sa).await, instance(&sb).await);
    let mut wa = ws(&a, "v=1&channels=c").await;
    let mut wb = ws(&b, "v=1&channels=c").await;
    for w in [&mut wa, &mut wb] {
        assert_eq!(frame(w).await["type"], "hello");
        assert_eq!(frame(w).await["type"], "subscribed");
    }
    let pa = async {
        for i in 0..100 {
            a.publish("c", json!({ "from": "a", "i": i }))
                .await
                .expect("a");
        }
    };
    let pb = async {
        for i in 0..100 {
            b.publish("c", json!({ "from": "b", "i": i }))
                .await
                .expect("b");
        }
    };
    tokio::join!(pa, pb);
    let (ga, gb) = (msgs(&mut wa, 200).await, msgs(&mut wb, 200).await);
    let seqs: Vec<u64> = ga.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>(), "consecutive seqs");
    let da: Vec<&Value> = ga.iter().map(|m| &m["data"]).collect();
    let db: Vec<&Value> = gb.iter().map(|m| &m["data"]).collect();
    assert_eq!(da, db, "both instances deliver the same total order");
    for from in ["a", "b"] {
        let is: Vec<u64> = da
            .iter()
            .filter(|d| d["from"] == from)
            .filter_map(|d| d["i"].as_u64())
            .collect();
        assert_eq!(
            is,
            (0..100).collect::<Vec<_>>(),
            "each publisher's order kept"
        );
    }
}

#[tokio::test]
async fn api_1_publish_api_dedupes_across_instances() {
    let r = RedisServer::start();
    let (sa, sb) = (store(&r, "t4", 100), store(&r, "t4", 100));
    up(&sa).await;
    up(&sb).await;
    let key = "backend-key-0123456789";
    let start = |s: &RedisStore| {
        let cfg = ServerConfig {
            publish_keys: vec![key.into()],
            ..Default::default()
        };
        let st = ServerState::with_store(cfg, Arc::new(s.clone())).expect("state");
        Server::start_with_state(st)
    };
    let (a, b) = (start(&sa).await.expect("a"), start(&sb).await.expect("b"));
    let post = |s: &Server, body: Value| {
        http()
            .post(format!("{}/publish", s.endpoint_url()))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let one = json!({"channel": "orders", "data": {"total": 5}, "id": "order-17"});
    let r1: Value = post(&a, one.clone())
        .await
        .expect("a")
        .json()
        .await
        .expect("json");
    let r2: Value = post(&b, one).await.expect("b").json().await.expect("json");
    assert_eq!(
        r1,
        json!({"channel": "orders", "seq": 1, "duplicate": false})
    );
    assert_eq!(
        r2,
        json!({"channel": "orders", "seq": 1, "duplicate": true})
    );
    assert_eq!(sa.head("orders").await, Ok(1));
}

#[tokio::test]
async fn scale_4_not_ready_while_redis_is_down_then_recovers_with_history() {
    let mut r = RedisServer::start();
    let s = store(&r, "t5", 100);
    up(&s).await;
    let srv = instance(&s).await;
    srv.publish("c", json!({"n": 1})).await.expect("publish");
    let ready = format!("{}/ready", srv.endpoint_url());
    assert_eq!(
        http().get(&ready).send().await.expect("ready").status(),
        200
    );
    let mut w = ws(&srv, "v=1&channels=c").await;
    let hello = frame(&mut w).await;
    let cursor = hello["cursor"].as_str().expect("cursor").to_owned();
    r.stop();
    tokio::time::timeout(Duration::from_secs(5), async {
        while s.wait_available(Duration::ZERO).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the store notices Redis is gone");
    let resp = http().get(&ready).send().await.expect("ready");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["tether-error"], "not_ready");
    assert!(resp.headers().contains_key("retry-after"));
    let refused = ws_refused(&srv, "v=1&channels=c").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["tether-error"], "not_ready");
    assert!(
        srv.publish("c", json!({"n": 2})).await.is_err(),
        "nothing is kept that cannot be stored"
    );
    // A WebSocket publish is not acknowledged: the connection is closed with 4009 (retry later).
    send(
        &mut w,
        json!({"type": "publish", "id": "p1", "channel": "c", "data": 1}),
    )
    .await;
    assert_eq!(close_code(&mut w).await, Some(4009));
    r.start_again();
    up(&s).await;
    assert_eq!(
        http().get(&ready).send().await.expect("ready").status(),
        200
    );
    // The history survived (append-only file); the old cursor resumes without a reset.
    let mut w = ws(&srv, &format!("v=1&channels=c&cursor={cursor}")).await;
    let hello = frame(&mut w).await;
    assert!(no_reset(&hello), "{hello}");
    assert!(srv.metrics_text().contains("tether_store_available 1"));
    assert!(s.stats().errors > 0);
}

#[tokio::test]
async fn scale_1_one_round_trip_per_published_message_whatever_the_subscribers() {
    let r = RedisServer::start();
    let (sa, sb) = (store(&r, "t6", 1000), store(&r, "t6", 1000));
    up(&sa).await;
    up(&sb).await;
    let (a, b) = (instance(&sa).await, instance(&sb).await);
    let mut clients = Vec::new();
    for i in 0..20 {
        let srv = if i % 2 == 0 { &a } else { &b };
        let mut w = ws(srv, "v=1&channels=c").await;
        assert_eq!(frame(&mut w).await["type"], "hello");
        assert_eq!(frame(&mut w).await["type"], "subscribed");
        clients.push(w);
    }
    let (a0, b0) = (sa.stats(), sb.stats());
    let n = 50;
    for i in 0..n {
        a.publish("c", json!({ "n": i })).await.expect("publish");
    }
    for w in &mut clients {
        assert_eq!(msgs(w, n as usize).await.len(), n as usize);
    }
    let (a1, b1) = (sa.stats(), sb.stats());
    assert_eq!(
        a1.round_trips - a0.round_trips,
        n,
        "one script call per publish"
    );
    assert_eq!(
        b1.round_trips - b0.round_trips,
        0,
        "delivery reads nothing from Redis"
    );
    assert_eq!(b1.announced - b0.announced, n);
    assert!(
        b1.mirror_hits - b0.mirror_hits >= n,
        "served from the mirror"
    );
}
