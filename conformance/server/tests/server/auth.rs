//! Client authentication over loopback: JWT (HS256, RS256) with channel permissions checked on handshake, subscribe and publish, expiry of live connections, and the backend publish API (AUTH-3, AUTH-4, AUTH-5, OUTBOX-5).

use crate::common;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tether_server::{JwtVerifier, Server, ServerConfig, SharedAuthenticator};

const SECRET: &[u8] = b"a-test-secret-that-is-32-bytes-long!";
const RS_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt-rs256-private.pem");
const RS_PUBLIC: &[u8] = include_bytes!("../fixtures/jwt-rs256-public.pem");
const OTHER_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt-other-private.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hs(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET).expect("key"),
    )
    .expect("sign")
}

fn rs(claims: Value, key: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(key).expect("key"),
    )
    .expect("sign")
}

async fn jwt_server(v: JwtVerifier) -> Server {
    server(ServerConfig {
        authenticator: Some(SharedAuthenticator::new(v)),
        heartbeat: Duration::from_millis(500),
        ..Default::default()
    })
    .await
}

async fn frames_until(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let f = frame(ws).await;
        if f["type"] == ty {
            return f;
        }
    }
}

#[tokio::test]
async fn auth_5_hs256_token_grants_its_channels_only() {
    let s = jwt_server(JwtVerifier::hs256(SECRET).expect("v")).await;
    let t = hs(
        json!({"sub": "u1", "exp": now() + 600, "channels": ["chat:*"], "publish": ["chat:room1"]}),
    );
    // Handshake: a permitted channel is served, another is a terminal 403.
    let mut w = ws(&s, &format!("v=1&channels=chat:room1&access_token={t}")).await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    let r = ws_refused(&s, &format!("v=1&channels=news&access_token={t}")).await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["tether-error"].to_str().ok()
        ),
        (403, Some("forbidden"))
    );
    // Publish: permitted channel acked, another refused with the publish's id (OUTBOX-7).
    send(
        &mut w,
        json!({"type": "publish", "id": "p1", "channel": "chat:room1", "data": 1}),
    )
    .await;
    assert_eq!(frames_until(&mut w, "ack").await["id"], "p1");
    send(
        &mut w,
        json!({"type": "publish", "id": "p2", "channel": "chat:room2", "data": 1}),
    )
    .await;
    let e = frames_until(&mut w, "error").await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_str()),
        (Some("forbidden"), Some("p2"))
    );
    // Subscribe to a channel the token may not use: terminal error, close 4003.
    send(&mut w, json!({"type": "subscribe", "channel": "news"})).await;
    let e = frames_until(&mut w, "error").await;
    assert_eq!(
        (e["code"].as_str(), e["terminal"].as_bool()),
        (Some("forbidden"), Some(true))
    );
    assert_eq!(close_code(&mut w).await, Some(4003));
    // SSE and long-poll carry the channels in the request: the same check (Bearer header, AUTH-3).
    let resp = http()
        .get(format!(
            "{}/poll?v=1&hello=1&channels=news",
            s.endpoint_url()
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("poll");
    assert_eq!(resp.status(), 403);
    let resp = http()
        .get(format!(
            "{}/poll?v=1&hello=1&channels=chat:x",
            s.endpoint_url()
        ))
        .bearer_auth(&t)
        .send()
        .await
        .expect("poll");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn auth_3_bad_missing_and_expired_tokens_are_auth_expired() {
    let s = jwt_server(JwtVerifier::hs256(SECRET).expect("v")).await;
    let expired = hs(json!({"exp": now() - 3600}));
    let no_exp = hs(json!({"sub": "x"}));
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &json!({"exp": now() + 600}),
        &EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long").expect("key"),
    )
    .expect("sign");
    for q in [
        "v=1&channels=c".to_owned(),
        format!("v=1&channels=c&access_token={expired}"),
        format!("v=1&channels=c&access_token={no_exp}"),
        format!("v=1&channels=c&access_token={wrong_key}"),
        "v=1&channels=c&access_token=not.a.jwt".to_owned(),
    ] {
        let r = ws_refused(&s, &q).await;
        assert_eq!(r.status(), 401, "{q}");
        assert_eq!(r.headers()["tether-error"], "auth_expired");
    }
    // AUTH-4: no token in the log, in any form.
    let log = serde_json::to_string(&s.log().snapshot()).expect("log");
    for t in [&expired, &no_exp, &wrong_key] {
        assert!(!log.contains(t.as_str()), "a token reached the log");
    }
}

#[tokio::test]
async fn auth_3_rs256_verifies_with_the_public_key_only() {
    let v = JwtVerifier::rs256_pem(RS_PUBLIC)
        .expect("v")
        .issuer("https://auth.example")
        .audience("rt");
    let s = jwt_server(v).await;
    let good = rs(
        json!({"exp": now() + 600, "iss": "https://auth.example", "aud": "rt", "channels": "c d"}),
        RS_PRIVATE,
    );
    let mut w = ws(&s, &format!("v=1&channels=c,d&access_token={good}")).await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    let other = rs(
        json!({"exp": now() + 600, "iss": "https://auth.example", "aud": "rt"}),
        OTHER_PRIVATE,
    );
    let wrong_aud = rs(
        json!({"exp": now() + 600, "iss": "https://auth.example", "aud": "x"}),
        RS_PRIVATE,
    );
    for t in [other, wrong_aud] {
        let r = ws_refused(&s, &format!("v=1&channels=c&access_token={t}")).await;
        assert_eq!(r.status(), 401);
    }
    // An HS256 token against an RS256 verifier (algorithm confusion) is refused.
    let r = ws_refused(
        &s,
        &format!(
            "v=1&channels=c&access_token={}",
            hs(json!({"exp": now() + 600}))
        ),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(!format!("{:?}", JwtVerifier::hs256(SECRET).expect("v")).contains("secret"));
}

#[tokio::test]
async fn auth_2_a_live_connection_is_told_when_its_token_expires() {
    let s = jwt_server(
        JwtVerifier::hs256(SECRET)
            .expect("v")
            .leeway(Duration::ZERO),
    )
    .await;
    let t = hs(json!({"exp": now() + 2}));
    let mut w = ws(&s, &format!("v=1&channels=c&access_token={t}")).await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    let started = std::time::Instant::now();
    let code = tokio::time::timeout(Duration::from_secs(5), close_code(&mut w))
        .await
        .expect("closed in time");
    assert_eq!(code, Some(4001));
    assert!(started.elapsed() <= Duration::from_secs(4));
}

const KEY: &str = "backend-key-for-tests-0001";

async fn publish_server() -> Server {
    server(ServerConfig {
        publish_keys: vec![KEY.into()],
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn api_1_publish_api_needs_the_key_and_dedupes_by_id() {
    let s = publish_server().await;
    let url = format!("{}/publish", s.endpoint_url());
    let body = json!({"channel": "c", "data": {"x": 1}});
    let r = http().post(&url).json(&body).send().await.expect("post");
    assert_eq!(r.status(), 401);
    let r = http()
        .post(&url)
        .bearer_auth("backend-key-for-tests-0002")
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let mut w = ws(&s, "v=1&channels=c").await;
    assert_eq!(frame(&mut w).await["type"], "hello");
    assert_eq!(frame(&mut w).await["type"], "subscribed");
    let r: Value = http()
        .post(&url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(r, json!({"channel": "c", "seq": 1, "duplicate": false}));
    let post_id = || {
        http()
            .post(&url)
            .bearer_auth(KEY)
            .header("Idempotency-Key", "order-9")
            .json(&json!({"channel": "c", "data": {"x": 2}}))
            .send()
    };
    let r1: Value = post_id().await.expect("post").json().await.expect("json");
    let r2: Value = post_id().await.expect("post").json().await.expect("json");
    assert_eq!(r1["seq"], 2);
    assert_eq!(r2, json!({"channel": "c", "seq": 2, "duplicate": true}));
    // A batch: per-item answers, a bad channel does not stop the others.
    let batch = json!([
        {"channel": "c", "data": 3, "id": "b1"},
        {"channel": "bad channel", "data": 4},
        {"channel": "c", "data": 5, "id": "b1"}
    ]);
    let r: Value = http()
        .post(&url)
        .bearer_auth(KEY)
        .json(&batch)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(r[0], json!({"channel": "c", "seq": 3, "duplicate": false}));
    assert_eq!(r[1]["error"], "invalid_channel");
    assert_eq!(r[2], json!({"channel": "c", "seq": 3, "duplicate": true}));
    // Subscribers saw each message once.
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let f = frame(&mut w).await;
        if f["type"] == "msg" {
            seqs.push(f["seq"].as_u64().unwrap_or(0));
        }
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    let m = http()
        .get(format!("http://{}/metrics", s.addr()))
        .send()
        .await
        .expect("metrics");
    let text = m.text().await.expect("text");
    assert!(text.contains("tether_publish_duplicates_total 2"), "{text}");
    assert!(
        text.contains("tether_publish_api_requests_total 4"),
        "{text}"
    );
    let off = default_server().await;
    let r = http()
        .post(format!("{}/publish", off.endpoint_url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404, "the API is off without keys");
}
