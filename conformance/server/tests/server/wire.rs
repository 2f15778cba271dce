//! Handshake, resume, publish and endpoint behaviour over real sockets (WIRE, RESUME, OUTBOX, READY, DRAIN, HEARTBEAT, AUTH).

use crate::common;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use std::time::Duration;
use tether_server::{Cursor, LogKind, ServerConfig};

#[tokio::test]
async fn wire_7_resume_1_subscribed_before_msgs_with_cursors() {
    let s = default_server().await;
    s.publish("a", json!("old")).await.expect("publish");
    let mut ws = ws(&s, "v=1&channels=a,b").await;
    let hello = frame(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["v"], 1);
    assert_eq!(hello["server_id"], s.server_id());
    assert!(hello.get("reset").is_none());
    let c = Cursor::parse(hello["cursor"].as_str().expect("cursor")).expect("parse");
    assert_eq!(c.epoch, s.epoch());
    assert_eq!(c.positions.get("a"), Some(&1));
    let sa = frame(&mut ws).await;
    assert_eq!(
        (
            sa["type"].as_str(),
            sa["channel"].as_str(),
            sa["seq"].as_u64()
        ),
        (Some("subscribed"), Some("a"), Some(1))
    );
    let sb = frame(&mut ws).await;
    assert_eq!(
        (
            sb["type"].as_str(),
            sb["channel"].as_str(),
            sb["seq"].as_u64()
        ),
        (Some("subscribed"), Some("b"), Some(0))
    );
    assert_eq!(s.publish("b", json!({"x": 1})).await.expect("publish"), 1);
    let m = frame(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["channel"].as_str(), m["seq"].as_u64()),
        (Some("msg"), Some("b"), Some(1))
    );
    assert_eq!(m["data"], json!({"x": 1}));
    let c = Cursor::parse(m["cursor"].as_str().expect("cursor")).expect("parse");
    assert_eq!((c.positions["a"], c.positions["b"]), (1, 1));
}

#[tokio::test]
async fn resume_3_replays_from_cursor() {
    let s = default_server().await;
    for i in 1..=3 {
        s.publish("a", json!(i)).await.expect("publish");
    }
    let mut cur = Cursor::new(s.epoch());
    cur.positions.insert("a".into(), 1);
    let mut ws = ws(&s, &format!("v=1&channels=a&cursor={}", enc(&cur.encode()))).await;
    assert_eq!(frame(&mut ws).await["type"], "hello");
    let sub = frame(&mut ws).await;
    assert_eq!(
        (sub["type"].as_str(), sub["seq"].as_u64()),
        (Some("subscribed"), Some(1))
    );
    for seq in 2..=3 {
        let m = frame(&mut ws).await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64(), m["data"].as_i64()),
            (Some("msg"), Some(seq), Some(seq as i64))
        );
        // RESUME-1: each msg's cursor is the position after it.
        let c = Cursor::parse(m["cursor"].as_str().expect("cursor")).expect("parse");
        assert_eq!(c.positions["a"], seq);
    }
    s.publish("a", json!(4)).await.expect("publish");
    assert_eq!(frame(&mut ws).await["seq"], 4, "live after replay");
}

#[tokio::test]
async fn resume_4_reset_when_ring_overrun() {
    let s = server(ServerConfig {
        ring_capacity: 4,
        ..Default::default()
    })
    .await;
    for i in 1..=10 {
        s.publish("a", json!(i)).await.expect("publish");
    }
    let mut cur = Cursor::new(s.epoch());
    cur.positions.insert("a".into(), 2);
    cur.positions.insert("b".into(), 0);
    let mut ws = ws(&s, &format!("channels=a,b&cursor={}", enc(&cur.encode()))).await;
    let hello = frame(&mut ws).await;
    assert_eq!(hello["reset"], json!(["a"]));
    let sub = frame(&mut ws).await;
    assert_eq!(
        (sub["channel"].as_str(), sub["seq"].as_u64()),
        (Some("a"), Some(10))
    );
    // A cursor still covered (6 is in the ring 7..=10) replays.
    cur.positions.insert("a".into(), 6);
    let mut ws2 = ws_client(&s, &cur).await;
    let hello = frame(&mut ws2).await;
    assert!(hello.get("reset").is_none());
    frame(&mut ws2).await;
    frame(&mut ws2).await;
    assert_eq!(frame(&mut ws2).await["seq"], 7);
}

async fn ws_client(s: &tether_server::Server, cur: &Cursor) -> Ws {
    ws(s, &format!("channels=a,b&cursor={}", enc(&cur.encode()))).await
}

#[tokio::test]
async fn resume_4_reset_on_new_epoch_and_garbage_cursor() {
    let s = default_server().await;
    s.publish("a", json!(1)).await.expect("publish");
    let mut cur = Cursor::new(s.epoch());
    cur.positions.insert("a".into(), 1);
    s.restart(true);
    assert_ne!(cur.epoch, s.epoch());
    let mut w = ws(&s, &format!("channels=a,b&cursor={}", enc(&cur.encode()))).await;
    let hello = frame(&mut w).await;
    assert_eq!(
        hello["reset"],
        json!(["a"]),
        "b had no position: fresh, not reset"
    );
    let mut w = ws(&s, "channels=a&cursor=garbage").await;
    assert_eq!(frame(&mut w).await["reset"], json!(["a"]));
}

#[tokio::test]
async fn outbox_5_dedupes_by_id() {
    let s = default_server().await;
    let mut sub = ws(&s, "channels=room").await;
    frame(&mut sub).await;
    frame(&mut sub).await;
    let mut pubr = ws(&s, "").await;
    frame(&mut pubr).await;
    for _ in 0..2 {
        send(
            &mut pubr,
            json!({"type":"publish","id":"c1-1","channel":"room","data":{"t":"hi"}}),
        )
        .await;
    }
    let a1 = frame(&mut pubr).await;
    let a2 = frame(&mut pubr).await;
    assert_eq!(
        a1,
        json!({"type":"ack","id":"c1-1","channel":"room","seq":1})
    );
    assert_eq!(a1, a2, "the repeated id gets the original ack");
    assert_eq!(frame(&mut sub).await["seq"], 1);
    send(
        &mut pubr,
        json!({"type":"publish","id":"c1-2","channel":"room","data":2}),
    )
    .await;
    assert_eq!(frame(&mut pubr).await["seq"], 2);
    assert_eq!(frame(&mut sub).await["seq"], 2, "seq 1 was broadcast once");
    // Over POST /send too, with the same store.
    let body = json!([{"type":"publish","id":"c1-1","channel":"room","data":0},{"type":"ping"},{"type":"bogus"},{"nope":1}]);
    let r = http()
        .post(format!("{}/send", s.endpoint_url()))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let out: Vec<serde_json::Value> = r.json().await.expect("json");
    assert_eq!(
        out[0],
        json!({"type":"ack","id":"c1-1","channel":"room","seq":1})
    );
    assert_eq!(out[1]["type"], "pong");
    assert_eq!(out[2]["code"], "frame_malformed");
    assert_eq!(out.len(), 3, "unknown types are ignored (WIRE-5)");
}

#[tokio::test]
async fn wire_6_malformed_client_frames_are_answered() {
    let s = default_server().await;
    let mut w = ws(&s, "").await;
    frame(&mut w).await;
    w.send(tokio_tungstenite::tungstenite::Message::text("not json"))
        .await
        .expect("send");
    let e = frame(&mut w).await;
    assert_eq!(
        (
            e["type"].as_str(),
            e["code"].as_str(),
            e["terminal"].as_bool()
        ),
        (Some("error"), Some("frame_malformed"), Some(false))
    );
    send(&mut w, json!({"type":"ping"})).await;
    assert_eq!(
        frame(&mut w).await["type"],
        "pong",
        "the connection continues"
    );
    send(&mut w, json!({"type":"subscribe","channel":"late"})).await;
    let sub = frame(&mut w).await;
    assert_eq!(
        (sub["type"].as_str(), sub["channel"].as_str()),
        (Some("subscribed"), Some("late"))
    );
    s.publish("late", json!(1)).await.expect("publish");
    assert_eq!(frame(&mut w).await["channel"], "late");
}

#[tokio::test]
async fn resume_2_sse_id_is_cursor_and_last_event_id_resumes() {
    let s = default_server().await;
    let mut sse = Sse::open(&sse_url(&s, "v=1&channels=a"), None).await;
    assert_eq!(sse.resp_status, 200);
    assert_eq!(sse.content_type, "text/event-stream");
    let (id, hello) = sse.frame().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(id.as_deref(), hello["cursor"].as_str());
    let (_, sub) = sse.frame().await;
    assert_eq!(sub["type"], "subscribed");
    s.publish("a", json!("one")).await.expect("publish");
    let (id1, m1) = sse.frame().await;
    assert_eq!(id1.as_deref(), m1["cursor"].as_str());
    s.publish("a", json!("two")).await.expect("publish");
    s.publish("a", json!("three")).await.expect("publish");
    drop(sse);
    let mut sse = Sse::open(
        &sse_url(&s, "v=1&channels=a&cursor=ignored"),
        id1.as_deref(),
    )
    .await;
    let (_, hello) = sse.frame().await;
    assert!(hello.get("reset").is_none(), "{hello}");
    let (_, sub) = sse.frame().await;
    assert_eq!(sub["seq"], 1);
    assert_eq!(sse.frame().await.1["data"], "two");
    assert_eq!(sse.frame().await.1["data"], "three");
}

#[tokio::test]
async fn wire_2_long_poll_hello_hold_and_wake() {
    let s = server(ServerConfig {
        heartbeat: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    s.publish("a", json!(1)).await.expect("publish");
    let first = poll_frames(&s, "v=1&channels=a&hello=1").await;
    assert_eq!(first[0]["type"], "hello");
    assert_eq!(
        (first[1]["type"].as_str(), first[1]["seq"].as_u64()),
        (Some("subscribed"), Some(1))
    );
    assert_eq!(first.len(), 2);
    let cursor = first[1]["cursor"].as_str().expect("cursor").to_owned();
    // Nothing new: held, then answered with a ping (HEARTBEAT-1), bounded by hold_ms.
    let t0 = std::time::Instant::now();
    let idle = poll_frames(
        &s,
        &format!("v=1&channels=a&cursor={}&hold_ms=150", enc(&cursor)),
    )
    .await;
    assert_eq!(idle, vec![json!({"type":"ping"})]);
    assert!(
        t0.elapsed() >= Duration::from_millis(140),
        "held {:?}",
        t0.elapsed()
    );
    let t0 = std::time::Instant::now();
    let idle = poll_frames(&s, &format!("v=1&channels=a&cursor={}", enc(&cursor))).await;
    assert_eq!(idle, vec![json!({"type":"ping"})]);
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "hold is capped by the heartbeat"
    );
    // A live message wakes a held poll.
    let s2 = s.state().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = s2.publish("a", json!(2)).await;
    });
    let live = poll_frames(
        &s,
        &format!("v=1&channels=a&cursor={}&hold_ms=5000", enc(&cursor)),
    )
    .await;
    assert_eq!(
        (live[0]["type"].as_str(), live[0]["seq"].as_u64()),
        (Some("msg"), Some(2))
    );
    // A channel added to a later poll is announced with `subscribed` (baseline at the head).
    let more = poll_frames(
        &s,
        &format!(
            "channels=a,b&cursor={}&hold_ms=10",
            enc(live[0]["cursor"].as_str().expect("c"))
        ),
    )
    .await;
    assert_eq!(
        (more[0]["type"].as_str(), more[0]["channel"].as_str()),
        (Some("subscribed"), Some("b"))
    );
    // Another epoch: reset + subscribed.
    s.restart(true);
    let after = poll_frames(
        &s,
        &format!("channels=a&cursor={}&hold_ms=10", enc(&cursor)),
    )
    .await;
    assert_eq!(after[0]["type"], "reset");
    assert_eq!(after[1]["type"], "subscribed");
}

#[tokio::test]
async fn drain_3_refuses_while_draining() {
    let s = default_server().await;
    let mut w = ws(&s, "channels=a").await;
    frame(&mut w).await;
    frame(&mut w).await;
    let mut sse = Sse::open(&sse_url(&s, "channels=a"), None).await;
    sse.frame().await;
    sse.frame().await;
    assert_eq!(s.drain(1000, 5000), 2);
    let d = frame(&mut w).await;
    assert_eq!(
        d,
        json!({"type":"drain","from_ms":1000,"to_ms":5000,"reason":"draining"})
    );
    assert_eq!(close_code(&mut w).await, Some(1000));
    let (_, d) = sse.frame().await;
    assert_eq!(d["type"], "drain");
    assert!(sse.event().await.is_none(), "SSE response ends after drain");
    let resp = ws_refused(&s, "channels=a").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["tether-error"], "draining");
    assert!(resp.headers().contains_key("retry-after"));
    assert!(resp.headers().contains_key("tether-retry-after-ms"));
    let r = http()
        .get(sse_url(&s, "channels=a"))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        (r.status().as_u16(), header(&r, "tether-error").as_deref()),
        (503, Some("draining"))
    );
    let r = http()
        .get(format!("{}/ready", s.endpoint_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
    assert!(header(&r, "retry-after").is_some());
    let lp = poll_frames(&s, "channels=a&cursor=x").await;
    assert_eq!(
        lp[0]["type"], "drain",
        "a poll of a live long-poll connection is told to drain"
    );
    s.undrain();
    let mut w = ws(&s, "channels=a").await;
    assert_eq!(frame(&mut w).await["type"], "hello");
}

#[tokio::test]
async fn ready_1_admission_refuses_over_rate() {
    let s = server(ServerConfig {
        admission_per_sec: Some(0.5),
        admission_burst: Some(2.0),
        ..Default::default()
    })
    .await;
    let _a = ws(&s, "").await;
    let _b = ws(&s, "").await;
    let resp = ws_refused(&s, "").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["tether-error"], "retry_later");
    let secs: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("delta-seconds");
    let ms: u64 = resp.headers()["tether-retry-after-ms"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("ms");
    assert!(secs >= 1 && secs * 1000 >= ms, "{secs} s vs {ms} ms");
    // /ready is not subject to admission (constant, cheap).
    let r = http()
        .get(format!("{}/ready", s.endpoint_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn ready_3_endpoint() {
    let s = server(ServerConfig {
        ready_window_ms: (100, 900),
        tokens: Some(vec!["t".into()]),
        ..Default::default()
    })
    .await;
    let r = http()
        .get(format!("{}/ready", s.endpoint_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200, "no auth needed");
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json"),
        json!({"ready":true,"window_ms":[100,900]})
    );
    s.set_ready(false);
    let r = http()
        .get(format!("{}/ready", s.endpoint_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
    assert!(header(&r, "retry-after").is_some());
}

#[tokio::test]
async fn heartbeat_1_pings() {
    let s = server(ServerConfig {
        heartbeat: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let mut w = ws(&s, "").await;
    frame(&mut w).await;
    let t0 = std::time::Instant::now();
    loop {
        if let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = next_msg(&mut w).await {
            if t.as_str() == r#"{"type":"ping"}"# {
                break;
            }
        }
    }
    assert!(t0.elapsed() < Duration::from_millis(1000));
    send(&mut w, json!({"type":"pong"})).await;
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    sse.frame().await;
    let got = tokio::time::timeout(Duration::from_millis(600), sse.event()).await;
    assert!(got.is_err(), "comments are not events");
    assert!(
        sse.comments >= 2,
        "SSE heartbeat comments: {}",
        sse.comments
    );
}

#[tokio::test]
async fn wire_10_tether_error_header() {
    let s = server(ServerConfig {
        tokens: Some(vec!["good".into()]),
        forbidden_tokens: vec!["evil".into()],
        ..Default::default()
    })
    .await;
    let base = s.endpoint_url();
    let cases = [
        (format!("{base}/nope"), None, 404, "not_found"),
        (format!("{base}/sse"), None, 401, "auth_expired"),
        (
            format!("{base}/sse?access_token=wrong"),
            None,
            401,
            "auth_expired",
        ),
        (format!("{base}/sse"), Some("evil"), 403, "forbidden"),
        (
            format!("{base}/sse?access_token=good&channels=bad%20name"),
            None,
            400,
            "bad_request",
        ),
        (
            format!("{base}/poll?access_token=good&v=2"),
            None,
            400,
            "protocol_version",
        ),
        (
            format!("{base}/ws?access_token=good"),
            None,
            426,
            "upgrade_required",
        ),
    ];
    for (url, bearer, status, code) in cases {
        let mut req = http().get(&url);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let r = req.send().await.expect("answer");
        assert_eq!(r.status().as_u16(), status, "{url}");
        assert_eq!(header(&r, "tether-error").as_deref(), Some(code), "{url}");
    }
    let r = http()
        .get(format!("{base}/sse"))
        .bearer_auth("good")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200, "AUTH-3: bearer header");
    drop(r);
    let big = vec![b'['; 16 * 1024 * 1024 + 10];
    let r = http()
        .post(format!("{base}/send?access_token=good"))
        .body(big)
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(
            (r.status().as_u16(), header(&r, "tether-error").as_deref()),
            (413, Some("frame_too_large"))
        );
    }
}

#[tokio::test]
async fn auth_2_expired_token_closes_with_4001() {
    let s = server(ServerConfig {
        tokens: Some(vec!["t1".into()]),
        ..Default::default()
    })
    .await;
    let mut w = ws(&s, "access_token=t1").await;
    frame(&mut w).await;
    assert_eq!(s.expire_token("t1"), 1);
    assert_eq!(close_code(&mut w).await, Some(4001));
    let resp = ws_refused(&s, "access_token=t1").await;
    assert_eq!(
        (
            resp.status().as_u16(),
            resp.headers()["tether-error"].to_str().ok()
        ),
        (401, Some("auth_expired"))
    );
    s.add_token("t1");
    let _ = ws(&s, "access_token=t1").await;
    // AUTH-4: the log never shows the token.
    let log = serde_json::to_string(&s.log().snapshot()).expect("json");
    assert!(!log.contains("t1"), "token leaked into the log");
    assert!(log.contains("access_token=***"));
}

#[tokio::test]
async fn log_is_monotonic_and_records_handshakes() {
    let s = default_server().await;
    for _ in 0..3 {
        let mut w = ws(&s, "channels=a").await;
        frame(&mut w).await;
    }
    let _ = poll_frames(&s, "hello=1&channels=a").await;
    let mut w = ws(&s, "channels=a").await;
    frame(&mut w).await;
    send(&mut w, json!({"type":"ping"})).await;
    while frame(&mut w).await["type"] != "pong" {}
    let times = s.log().handshake_times_us(Some("websocket"));
    assert_eq!(times.len(), 4);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(s.log().handshake_times_us(Some("long_poll")).len(), 1);
    assert!(s.log().is_monotonic());
    assert!(!s
        .log()
        .entries(LogKind::FrameIn, Some("websocket"))
        .is_empty());
    let snap = s.log().snapshot();
    assert!(snap.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    let conn = s
        .connections()
        .first()
        .map(|c| c.id)
        .expect("live connection");
    assert_eq!(
        s.log().frames_out(conn)[..2],
        ["hello".to_owned(), "subscribed".to_owned()]
    );
}

#[tokio::test]
async fn router_mounts_in_an_app() {
    let state = tether_server::ServerState::new(ServerConfig::default()).expect("state");
    let app = axum::Router::new().merge(tether_server::router(state.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (mut w, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/tether/ws?channels=a"))
        .await
        .expect("upgrade through axum::serve");
    assert_eq!(frame(&mut w).await["type"], "hello");
    assert_eq!(frame(&mut w).await["type"], "subscribed");
    state.publish("a", json!(1)).await.expect("publish");
    assert_eq!(frame(&mut w).await["type"], "msg");
}

/// RESUME-7: a large catch-up never holds the hello back. The long-poll hello answer carries
/// the hello, `subscribed` and at most 16 KiB of messages; later answers are bounded by bytes
/// (256 KiB, at least one message) as well as frames; together they deliver everything, in
/// order, each poll resuming from the cursor of the last message received. On WebSocket the
/// hello and `subscribed` come before any replayed message.
#[tokio::test]
async fn resume_7_catch_up_never_holds_the_hello_back() {
    let s = server(ServerConfig {
        ring_capacity: 2048,
        ..Default::default()
    })
    .await;
    let first = poll_frames(&s, "channels=a&hello=1").await;
    let cursor = first[1]["cursor"].as_str().expect("cursor").to_owned();
    let pad = "p".repeat(1000);
    for n in 0..1500u64 {
        let data = if n == 700 {
            json!({"n": n, "pad": "L".repeat(400_000)})
        } else {
            json!({"n": n, "pad": pad})
        };
        s.publish("a", data).await.expect("publish");
    }
    // The hello answer: small, whatever the catch-up.
    let r = poll(&s, &format!("channels=a&hello=1&cursor={}", enc(&cursor))).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.expect("body");
    let frames: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("json");
    assert_eq!(frames[0]["type"], "hello");
    assert_eq!(frames[1]["type"], "subscribed");
    let msg_bytes: usize = frames[2..].iter().map(|f| f.to_string().len()).sum();
    assert!(
        msg_bytes <= 16 * 1024,
        "hello answer carries {msg_bytes} bytes of messages"
    );
    assert!(
        body.len() < 20 * 1024,
        "hello answer of {} bytes",
        body.len()
    );
    let mut got: Vec<u64> = frames[2..]
        .iter()
        .map(|f| f["data"]["n"].as_u64().expect("n"))
        .collect();
    let mut cursor = frames
        .last()
        .and_then(|f| f["cursor"].as_str())
        .expect("cursor")
        .to_owned();
    // Later answers: bounded by bytes, at least one message each.
    let mut answers = 0;
    while got.len() < 1500 {
        answers += 1;
        assert!(answers < 100, "no progress: {} of 1500", got.len());
        let r = poll(
            &s,
            &format!("channels=a&cursor={}&hold_ms=100", enc(&cursor)),
        )
        .await;
        let body = r.bytes().await.expect("body");
        let frames: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("json");
        let msgs: Vec<&serde_json::Value> = frames.iter().filter(|f| f["type"] == "msg").collect();
        assert!(!msgs.is_empty(), "at least one message per answer");
        let bytes: usize = msgs.iter().map(|f| f.to_string().len()).sum();
        assert!(
            msgs.len() == 1 || bytes <= 256 * 1024,
            "an answer of {} messages, {bytes} bytes",
            msgs.len()
        );
        assert!(frames.len() <= 1024);
        got.extend(msgs.iter().map(|f| f["data"]["n"].as_u64().expect("n")));
        cursor = msgs
            .last()
            .and_then(|f| f["cursor"].as_str())
            .expect("cursor")
            .to_owned();
    }
    assert_eq!(
        got,
        (0..1500).collect::<Vec<_>>(),
        "everything once, in order"
    );
    assert!(answers >= 6, "bounded answers: {answers}");
    // WebSocket: hello and subscribed first, the replay after.
    let mut w = ws(
        &s,
        &format!(
            "channels=a&cursor={}",
            enc(first[1]["cursor"].as_str().expect("c"))
        ),
    )
    .await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    assert_eq!(frame(&mut w).await["type"], "subscribed");
    assert_eq!(frame(&mut w).await["data"]["n"], 0);
}
