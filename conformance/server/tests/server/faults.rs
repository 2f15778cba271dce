//! Every fault of the catalogue observably does what it says, over real sockets.

use crate::common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tether_server::{Cursor, Fault, FaultRule, FaultTarget, LogKind, MalformedKind, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn once(t: FaultTarget, f: Fault) -> FaultRule {
    FaultRule::next(t, 1, f)
}

#[tokio::test]
async fn refuse_tcp_accepts_then_drops() {
    let s = default_server().await;
    s.apply_fault(FaultRule::always(Fault::RefuseTcp).times(1));
    let mut tcp = tokio::net::TcpStream::connect(s.addr())
        .await
        .expect("kernel accepts");
    let _ = tcp
        .write_all(b"GET /tether/ready HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, tcp.read(&mut buf))
        .await
        .expect("answer in time");
    assert!(matches!(n, Ok(0) | Err(_)), "no HTTP answer: {n:?}");
    assert_eq!(s.log().entries(LogKind::TcpRefused, None).len(), 1);
    let r = http()
        .get(format!("{}/ready", s.endpoint_url()))
        .send()
        .await
        .expect("next connection served");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn stop_listening_refuses_connections_until_resumed() {
    let s = default_server().await;
    s.apply_fault(FaultRule::always(Fault::StopListening { for_ms: None }));
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(s.addr()).await.is_ok() {
        assert!(t0.elapsed() < T, "listener never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.apply_fault(FaultRule::always(Fault::ResumeListening));
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(s.addr()).await.is_err() {
        assert!(t0.elapsed() < T, "listener never reopened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut w = ws(&s, "").await;
    assert_eq!(frame(&mut w).await["type"], "hello");
}

#[tokio::test]
async fn fallback_2_refuse_upgrade_has_no_tether_error() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::RefuseUpgrade { status: 403 },
    ));
    let resp = ws_refused(&s, "").await;
    assert_eq!(resp.status(), 403);
    assert!(
        !resp.headers().contains_key("tether-error"),
        "a proxy's answer"
    );
    let mut w = ws(&s, "").await;
    assert_eq!(
        frame(&mut w).await["type"],
        "hello",
        "count 1: the next one works"
    );
}

#[tokio::test]
async fn swallow_upgrade_never_answers() {
    let s = default_server().await;
    s.apply_fault(once(FaultTarget::Sse, Fault::SwallowUpgrade));
    let client = client_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let r = client.get(sse_url(&s, "")).send().await;
    assert!(r.expect_err("no answer").is_timeout());
    assert_eq!(s.log().handshake_times_us(Some("sse")).len(), 1);
}

#[tokio::test]
async fn ready_1_close_before_hello_with_4009() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::CloseBeforeHello {
            code: 4009,
            reason: "1500".into(),
        },
    ));
    let mut w = ws(&s, "").await;
    match next_msg(&mut w).await {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!((u16::from(f.code), f.reason.as_str()), (4009, "1500"))
        }
        other => panic!("expected close 4009, got {other:?}"),
    }
}

#[tokio::test]
async fn close_after_hello_with_code() {
    let s = default_server().await;
    let rule: FaultRule = serde_json::from_str(r#"{"fault":"close_after_hello","code":4001,"transport":"websocket","count":1,"after_ms":50}"#).expect("json");
    s.apply_fault(rule);
    let mut w = ws(&s, "channels=a").await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    assert_eq!(frame(&mut w).await["type"], "subscribed");
    assert_eq!(close_code(&mut w).await, Some(4001));
    // SSE: the stream ends after the hello.
    s.apply_fault(once(
        FaultTarget::Sse,
        Fault::CloseAfterHello {
            code: 1000,
            reason: String::new(),
            after_ms: 0,
        },
    ));
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    assert_eq!(sse.frame().await.1["type"], "hello");
    assert!(sse.event().await.is_none());
}

#[tokio::test]
async fn drop_mid_frame_cuts_without_close() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::DropMidFrame { after_ms: 20 },
    ));
    let mut w = ws(&s, "").await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    match next_msg(&mut w).await {
        Some(Err(_)) | None => {}
        other => panic!("expected a cut, got {other:?}"),
    }
    s.apply_fault(once(FaultTarget::Sse, Fault::DropMidFrame { after_ms: 0 }));
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    sse.frame().await;
    let mut cut = false;
    while let Some(c) = sse.chunk().await {
        if c.is_err() {
            cut = true;
            break;
        }
    }
    assert!(cut, "the SSE body ends with an error, not cleanly");
}

#[tokio::test]
async fn blackhole_stops_everything() {
    let s = server(ServerConfig {
        heartbeat: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::Blackhole { after_ms: 0 },
    ));
    let mut w = ws(&s, "channels=a").await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    assert_eq!(frame(&mut w).await["type"], "subscribed");
    s.publish("a", json!(1)).await.expect("publish");
    let quiet = tokio::time::timeout(
        Duration::from_millis(400),
        futures_util::StreamExt::next(&mut w),
    )
    .await;
    assert!(quiet.is_err(), "nothing at all, not even pings: {quiet:?}");
}

#[tokio::test]
async fn sse_4_buffer_sse_holds_output_until_the_end() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::Sse,
        Fault::BufferSse {
            events: Some(4),
            ms: None,
        },
    ));
    let st = s.state().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = st.publish("a", json!(1)).await;
        let _ = st.publish("a", json!(2)).await;
    });
    let t0 = Instant::now();
    let mut sse = Sse::open(&sse_url(&s, "channels=a"), None).await;
    assert_eq!(sse.resp_status, 200, "headers arrive at once");
    let first = sse.chunk().await.expect("data").expect("ok");
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "nothing before the flush ({:?})",
        t0.elapsed()
    );
    let text = String::from_utf8_lossy(&first);
    assert_eq!(
        text.matches("data: ").count(),
        4,
        "everything in one write: {text}"
    );
    assert!(sse.chunk().await.is_none(), "then the response ends");
    // Time-based flush.
    s.apply_fault(once(
        FaultTarget::Sse,
        Fault::BufferSse {
            events: None,
            ms: Some(200),
        },
    ));
    let t0 = Instant::now();
    let mut sse = Sse::open(&sse_url(&s, "channels=a"), None).await;
    let _ = sse.chunk().await;
    assert!(t0.elapsed() >= Duration::from_millis(180));
}

#[tokio::test]
async fn wrong_content_type_status_and_redirect() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::Sse,
        Fault::WrongContentType {
            content_type: "text/html".into(),
        },
    ));
    let r = http().get(sse_url(&s, "")).send().await.expect("answer");
    assert_eq!(
        (r.status().as_u16(), header(&r, "content-type").as_deref()),
        (200, Some("text/html"))
    );
    let rule: FaultRule = serde_json::from_str(r#"{"fault":"status","status":502,"headers":{"x-proxy":"squid"},"body":"bad gateway","transport":"long_poll","count":1}"#).expect("json");
    s.apply_fault(rule);
    let r = poll(&s, "hello=1").await;
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-proxy").as_deref(), Some("squid"));
    assert!(header(&r, "tether-error").is_none());
    s.apply_fault(once(
        FaultTarget::Sse,
        Fault::Redirect {
            status: 302,
            location: None,
        },
    ));
    let mut sse = Sse::open(&sse_url(&s, "channels=a"), None).await;
    assert_eq!(sse.resp_status, 200);
    assert_eq!(
        sse.frame().await.1["type"],
        "hello",
        "the redirect target works"
    );
    let paths: Vec<String> = s
        .log()
        .entries(LogKind::Request, Some("sse"))
        .into_iter()
        .filter_map(|e| e.detail)
        .collect();
    assert!(paths.iter().any(|p| p == "/tether-alt/sse"), "{paths:?}");
}

#[tokio::test]
async fn malformed_frames_of_each_kind() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::Malformed {
            kind: MalformedKind::NonJson,
            frames: 2,
        },
    ));
    let mut w = ws(&s, "channels=a").await;
    frame(&mut w).await;
    frame(&mut w).await;
    for _ in 0..2 {
        match next_msg(&mut w).await {
            Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), "this is not json"),
            other => panic!("{other:?}"),
        }
    }
    s.publish("a", json!(1)).await.expect("publish");
    assert_eq!(frame(&mut w).await["type"], "msg", "the connection goes on");
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::Malformed {
            kind: MalformedKind::GarbageBytes,
            frames: 1,
        },
    ));
    let mut w = ws(&s, "").await;
    frame(&mut w).await;
    assert!(matches!(
        next_msg(&mut w).await,
        Some(Ok(Message::Binary(_)))
    ));
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::Malformed {
            kind: MalformedKind::InvalidUtf8,
            frames: 1,
        },
    ));
    let mut w = ws(&s, "").await;
    frame(&mut w).await;
    assert!(
        matches!(next_msg(&mut w).await, Some(Err(_))),
        "a text frame that is not UTF-8"
    );
    s.apply_fault(once(
        FaultTarget::Sse,
        Fault::Malformed {
            kind: MalformedKind::UnknownType,
            frames: 1,
        },
    ));
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    sse.frame().await;
    assert_eq!(sse.frame().await.1["type"], "x_future_frame");
    s.apply_fault(FaultRule::next(
        FaultTarget::LongPoll,
        1,
        Fault::Malformed {
            kind: MalformedKind::BadFields,
            frames: 1,
        },
    ));
    let first = poll_frames(&s, "hello=1&channels=a").await;
    assert_eq!(first[0]["type"], "hello", "the hello poll is intact");
    let next = poll_frames(&s, "channels=a&cursor=x").await;
    assert_eq!(next[0], json!({"type":"msg","channel":"x"}));
}

#[tokio::test]
async fn oversized_frames_and_lines() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::Oversized { bytes: 2_000_000 },
    ));
    let mut w = ws(&s, "").await;
    frame(&mut w).await;
    match next_msg(&mut w).await {
        Some(Ok(Message::Text(t))) => assert_eq!(t.len(), 2_000_000),
        other => panic!("{other:?}"),
    }
    s.apply_fault(once(
        FaultTarget::Sse,
        Fault::Oversized { bytes: 3_000_000 },
    ));
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    sse.frame().await;
    let e = sse.event().await.expect("the long line");
    assert_eq!(e.data.len(), 3_000_000);
}

#[tokio::test]
async fn sse_retry_and_retry_later() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::Sse,
        Fault::SseRetry {
            value: "abc".into(),
        },
    ));
    s.apply_fault(once(FaultTarget::Sse, Fault::RetryLater { after_ms: 2500 }));
    // Rules apply in order: first retry:, then retry_later.
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    sse.frame().await;
    s.publish("z", json!(0)).await.expect("publish");
    let _ = tokio::time::timeout(Duration::from_millis(200), sse.event()).await;
    assert_eq!(sse.retry, vec!["abc".to_owned()]);
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    assert_eq!(
        sse.frame().await.1,
        json!({"type":"retry_later","after_ms":2500})
    );
    assert!(sse.event().await.is_none());
    s.apply_fault(once(
        FaultTarget::WebSocket,
        Fault::RetryLater { after_ms: 700 },
    ));
    let mut w = ws(&s, "").await;
    assert_eq!(
        frame(&mut w).await,
        json!({"type":"retry_later","after_ms":700})
    );
    assert_eq!(close_code(&mut w).await, Some(1000));
    s.apply_fault(once(
        FaultTarget::LongPoll,
        Fault::RetryLater { after_ms: 900 },
    ));
    assert_eq!(
        poll_frames(&s, "hello=1").await,
        vec![json!({"type":"retry_later","after_ms":900})]
    );
}

#[tokio::test]
async fn restart_drops_connections_and_loses_state() {
    let s = default_server().await;
    s.publish("a", json!(1)).await.expect("publish");
    let mut w = ws(&s, "channels=a").await;
    let hello = frame(&mut w).await;
    let cursor = hello["cursor"].as_str().expect("cursor").to_owned();
    assert_eq!(frame(&mut w).await["type"], "subscribed");
    s.apply_fault(FaultRule::always(Fault::Restart {
        lose_state: true,
        down_ms: 300,
    }));
    match next_msg(&mut w).await {
        Some(Err(_)) | None => {}
        other => panic!("expected the connection to drop without a close frame, got {other:?}"),
    }
    assert!(
        tokio::net::TcpStream::connect(s.addr()).await.is_err(),
        "down for down_ms"
    );
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(s.addr()).await.is_err() {
        assert!(t0.elapsed() < T);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut w = ws(&s, &format!("channels=a&cursor={}", enc(&cursor))).await;
    let hello = frame(&mut w).await;
    assert_eq!(hello["reset"], json!(["a"]), "new epoch");
    assert_ne!(
        Cursor::parse(hello["cursor"].as_str().expect("c"))
            .expect("parse")
            .epoch,
        Cursor::parse(&cursor).expect("parse").epoch
    );
}

#[tokio::test]
async fn long_poll_followup_faults() {
    let s = default_server().await;
    s.apply_fault(once(
        FaultTarget::LongPoll,
        Fault::CloseAfterHello {
            code: 1000,
            reason: String::new(),
            after_ms: 0,
        },
    ));
    let first = poll_frames(&s, "hello=1&channels=a").await;
    assert_eq!(first[0]["type"], "hello");
    let c = enc(first[0]["cursor"].as_str().expect("cursor"));
    let cut = http()
        .get(format!("{}/poll?channels=a&cursor={c}", s.endpoint_url()))
        .send()
        .await;
    assert!(
        cut.is_err() || cut.expect("resp").bytes().await.is_err(),
        "the next poll is cut"
    );
    s.apply_fault(once(
        FaultTarget::LongPoll,
        Fault::Blackhole { after_ms: 0 },
    ));
    poll_frames(&s, "hello=1&channels=a").await;
    let client = client_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let r = client
        .get(format!(
            "{}/poll?channels=a&cursor={c}&hold_ms=10",
            s.endpoint_url()
        ))
        .send()
        .await;
    assert!(r.expect_err("never answered").is_timeout());
    // every_request: a persistent status on every poll, not only the hello.
    let rule: FaultRule = serde_json::from_str(
        r#"{"fault":"status","status":500,"transport":"long_poll","every_request":true}"#,
    )
    .expect("json");
    s.apply_fault(rule);
    assert_eq!(
        poll(&s, &format!("channels=a&cursor={c}")).await.status(),
        500
    );
    assert_eq!(poll(&s, "hello=1").await.status(), 500);
    s.clear_faults();
    assert_eq!(
        poll(&s, &format!("channels=a&cursor={c}&hold_ms=10"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn scenario_json_actions_and_send_faults() {
    let s = server(ServerConfig {
        tokens: Some(vec!["tok".into()]),
        ..Default::default()
    })
    .await;
    let mut w = ws(&s, "access_token=tok").await;
    frame(&mut w).await;
    s.set_faults_json(
        r#"[
            {"fault":"expire_token","token":"tok"},
            {"fault":"status","status":503,"transport":"send","count":1,"headers":{"retry-after":"1"}},
            {"fault":"refuse_upgrade","status":405,"transport":"websocket"},
            {"fault":"drain","from_ms":0,"to_ms":10}
        ]"#,
    )
    .expect("scenario");
    assert_eq!(close_code(&mut w).await, Some(4001));
    assert!(s.is_draining());
    assert_eq!(s.faults().len(), 2, "actions are carried out, not queued");
    s.add_token("tok");
    let url = format!("{}/send?access_token=tok", s.endpoint_url());
    let r = http().post(&url).body("[]").send().await.expect("answer");
    assert_eq!(r.status(), 503);
    let r = http().post(&url).body("[]").send().await.expect("answer");
    assert_eq!(r.status(), 200, "count 1");
    s.apply_fault(FaultRule::always(Fault::Undrain));
    assert_eq!(
        ws_refused(&s, "access_token=tok").await.status(),
        405,
        "persistent"
    );
    assert_eq!(ws_refused(&s, "access_token=tok").await.status(), 405);
}

fn rule(json: &str) -> FaultRule {
    serde_json::from_str(json).expect("fault json")
}

/// The `seq`s of the next `n` msg frames.
async fn ws_seqs(w: &mut Ws, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        let f = frame(w).await;
        if f["type"] == "msg" {
            out.push(f["seq"].as_u64().expect("seq"));
        }
    }
    out
}

#[tokio::test]
async fn order_3_reorder_swaps_adjacent_messages() {
    let s = default_server().await;
    s.apply_fault(rule(
        r#"{"fault":"reorder","channel":"a","window":2,"transport":"websocket","count":1}"#,
    ));
    let mut w = ws(&s, "channels=a,b").await;
    for _ in 0..3 {
        frame(&mut w).await;
    }
    for i in 1..=4 {
        s.publish("a", json!(i)).await.expect("publish");
    }
    assert_eq!(ws_seqs(&mut w, 4).await, vec![2, 1, 4, 3]);
    // An incomplete group goes out after flush_ms; other channels are untouched.
    s.publish("a", json!(5)).await.expect("publish");
    s.publish("b", json!(1)).await.expect("publish");
    let f = frame(&mut w).await;
    assert_eq!(
        (f["channel"].as_str(), f["seq"].as_u64()),
        (Some("b"), Some(1))
    );
    assert_eq!(ws_seqs(&mut w, 1).await, vec![5]);
    let notes: Vec<String> = s
        .log()
        .entries(LogKind::Fault, Some("websocket"))
        .into_iter()
        .filter_map(|e| e.detail)
        .collect();
    assert!(
        notes.iter().any(|n| n == "reorder: sent a#2,a#1"),
        "{notes:?}"
    );
    // SSE too.
    s.apply_fault(rule(
        r#"{"fault":"reorder","window":3,"transport":"sse","count":1}"#,
    ));
    let mut sse = Sse::open(&sse_url(&s, "channels=c"), None).await;
    sse.frame().await;
    sse.frame().await;
    for i in 1..=3 {
        s.publish("c", json!(i)).await.expect("publish");
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sse.frame().await.1["seq"].as_u64().expect("seq"));
    }
    assert_eq!(got, vec![3, 2, 1]);
}

#[tokio::test]
async fn order_3_4_skip_seq_withholds_then_delivers_late_or_never() {
    let s = default_server().await;
    s.apply_fault(rule(
        r#"{"fault":"skip_seq","channel":"a","skip":2,"after":1,"deliver_after_ms":300,"transport":"websocket","count":1}"#,
    ));
    let mut w = ws(&s, "channels=a").await;
    frame(&mut w).await;
    frame(&mut w).await;
    let t0 = Instant::now();
    for i in 1..=5 {
        s.publish("a", json!(i)).await.expect("publish");
    }
    assert_eq!(ws_seqs(&mut w, 3).await, vec![1, 4, 5]);
    assert_eq!(ws_seqs(&mut w, 2).await, vec![2, 3], "the gap fills late");
    assert!(
        t0.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t0.elapsed()
    );
    // Never: the gap stays open.
    s.apply_fault(rule(
        r#"{"fault":"skip_seq","skip":1,"transport":"sse","count":1}"#,
    ));
    let mut sse = Sse::open(&sse_url(&s, "channels=b"), None).await;
    sse.frame().await;
    sse.frame().await;
    for i in 1..=3 {
        s.publish("b", json!(i)).await.expect("publish");
    }
    assert_eq!(sse.frame().await.1["seq"], 2);
    assert_eq!(sse.frame().await.1["seq"], 3);
    let quiet = tokio::time::timeout(Duration::from_millis(400), async {
        loop {
            let (_, f) = sse.frame().await;
            if f["type"] == "msg" {
                return f;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "seq 1 is never sent: {quiet:?}");
}

#[tokio::test]
async fn outbox_7_reject_publish_answers_error_with_id() {
    let s = default_server().await;
    s.apply_fault(rule(
        r#"{"fault":"reject_publish","code":"forbidden","transport":"websocket","count":1}"#,
    ));
    let mut w = ws(&s, "channels=a").await;
    frame(&mut w).await;
    frame(&mut w).await;
    send(
        &mut w,
        json!({"type":"publish","id":"k1","channel":"a","data":1}),
    )
    .await;
    let f = frame(&mut w).await;
    assert_eq!(
        (
            f["type"].as_str(),
            f["code"].as_str(),
            f["id"].as_str(),
            f["terminal"].as_bool()
        ),
        (Some("error"), Some("forbidden"), Some("k1"), Some(false))
    );
    assert_eq!(
        s.log().entries(LogKind::Action, None).len(),
        0,
        "nothing stored"
    );
    // POST /send: the next POST only.
    s.apply_fault(rule(
        r#"{"fault":"reject_publish","code":"too_big","transport":"send","count":1}"#,
    ));
    let url = format!("{}/send", s.endpoint_url());
    let body = json!([{"type":"publish","id":"k2","channel":"a","data":2}]).to_string();
    let a: Vec<serde_json::Value> = http()
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(a[0]["type"], "error");
    assert_eq!(a[0]["id"], "k2");
    let b: Vec<serde_json::Value> = http()
        .post(&url)
        .body(body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(b[0]["type"], "ack", "count 1: the next POST is acked");
}

#[tokio::test]
async fn err_3_error_frame_after_hello() {
    let s = default_server().await;
    s.apply_fault(rule(
        r#"{"fault":"error_frame","code":"bad_request","terminal":true,"transport":"websocket","count":1}"#,
    ));
    let mut w = ws(&s, "channels=a").await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    assert_eq!(frame(&mut w).await["type"], "subscribed");
    assert_eq!(
        frame(&mut w).await,
        json!({"type":"error","code":"bad_request","terminal":true})
    );
    s.apply_fault(rule(
        r#"{"fault":"error_frame","code":"overloaded","message":"busy","transport":"sse","count":1}"#,
    ));
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    sse.frame().await;
    let (_, f) = sse.frame().await;
    assert_eq!(
        (
            f["code"].as_str(),
            f["terminal"].as_bool(),
            f["message"].as_str()
        ),
        (Some("overloaded"), Some(false), Some("busy"))
    );
    s.publish("z", json!(1)).await.expect("publish");
    s.apply_fault(rule(
        r#"{"fault":"error_frame","code":"overloaded","id":"p1","transport":"long_poll","count":1}"#,
    ));
    let frames = poll_frames(&s, "hello=1&channels=a").await;
    assert_eq!(frames[0]["type"], "hello");
    let last = frames.last().expect("frames");
    assert_eq!(
        (last["type"].as_str(), last["id"].as_str()),
        (Some("error"), Some("p1"))
    );
}

#[tokio::test]
async fn limit_4_long_cursor_on_messages() {
    let s = default_server().await;
    s.apply_fault(rule(
        r#"{"fault":"long_cursor","bytes":2000,"after":1,"transport":"websocket","count":1}"#,
    ));
    let mut w = ws(&s, "channels=a").await;
    frame(&mut w).await;
    frame(&mut w).await;
    for i in 1..=3 {
        s.publish("a", json!(i)).await.expect("publish");
    }
    let mut lens = Vec::new();
    while lens.len() < 3 {
        let f = frame(&mut w).await;
        if f["type"] == "msg" {
            lens.push(f["cursor"].as_str().expect("cursor").len());
        }
    }
    assert!(
        lens[0] < 100 && lens[1] == 2000 && lens[2] == 2000,
        "{lens:?}"
    );
    // SSE: the `id:` carries it too; a client resuming with it is reset.
    s.apply_fault(rule(
        r#"{"fault":"long_cursor","transport":"sse","count":1}"#,
    ));
    let mut sse = Sse::open(&sse_url(&s, "channels=a"), None).await;
    sse.frame().await;
    sse.frame().await;
    s.publish("a", json!(4)).await.expect("publish");
    let (id, f) = sse.frame().await;
    let id = id.expect("id");
    assert_eq!(id.len(), 2048);
    assert_eq!(f["cursor"].as_str(), Some(id.as_str()));
    let frames = poll_frames(&s, &format!("hello=1&channels=a&cursor={}", enc(&id))).await;
    assert_eq!(frames[0]["reset"], json!(["a"]), "{}", frames[0]);
}

#[tokio::test]
async fn sse_raw_writes_chunks_as_given() {
    let s = default_server().await;
    s.apply_fault(rule(
        r#"{"fault":"sse_raw","chunks":["\ufeffid: ${cursor}\rdata: ${hello}\r","\n\r\n${subscribed}",": c\r\ndata: {\"type\":\"ping\"}\n\ndata: unfinished\n"],"gap_ms":30,"end":true,"transport":"sse","count":1}"#,
    ));
    let mut sse = Sse::open(&sse_url(&s, "channels=a"), None).await;
    let mut chunks = Vec::new();
    while let Some(c) = sse.chunk().await {
        chunks.push(c.expect("chunk"));
    }
    let all: Vec<u8> = chunks.concat();
    assert!(chunks.len() >= 3, "one write per chunk: {chunks:?}");
    assert!(all.starts_with(&[0xEF, 0xBB, 0xBF]), "the BOM first");
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("\rdata: {\"type\":\"hello\""), "{text}");
    assert!(text.contains("\"type\":\"subscribed\""), "{text}");
    assert!(
        text.ends_with("data: unfinished\n"),
        "then the response ends: {text}"
    );
    assert!(!text.contains("${"), "placeholders filled: {text}");
    // Without ${hello} the server's own handshake events come first.
    s.apply_fault(rule(
        r#"{"fault":"sse_raw","chunks":["data: {\"type\":\"x_raw\"}\n\n"],"transport":"sse","count":1}"#,
    ));
    let mut sse = Sse::open(&sse_url(&s, ""), None).await;
    assert_eq!(sse.frame().await.1["type"], "hello");
    assert_eq!(sse.frame().await.1["type"], "x_raw");
}
