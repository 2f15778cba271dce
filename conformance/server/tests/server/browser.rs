//! What the server owes to browser clients, over real sockets: CORS on every answer and preflights, and an origin allowlist (WEB-1), the diagnosis of a refused WebSocket upgrade (WEB-3), and `/send` bodies read whatever their type (WEB-5).

use crate::common;
use common::*;
use std::collections::BTreeMap;
use tether_server::{Fault, FaultRule, FaultTarget, LogKind};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ORIGIN: &str = "http://app.example";

#[tokio::test]
async fn web_1_answers_allow_the_origin_and_expose_the_tether_headers() {
    let s = default_server().await;
    let base = s.endpoint_url();
    // A refusal: the script must be able to read Tether-Error and the retry hints.
    s.apply_fault(FaultRule::next(
        FaultTarget::Sse,
        1,
        Fault::Status {
            status: 503,
            headers: BTreeMap::from([
                ("Tether-Error".to_owned(), "retry_later".to_owned()),
                ("Tether-Retry-After-Ms".to_owned(), "250".to_owned()),
            ]),
            body: String::new(),
        },
    ));
    let r = http()
        .get(format!("{base}/sse?v=1&channels=a"))
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    assert_eq!(header(&r, "vary").as_deref(), Some("Origin"));
    let exposed = header(&r, "access-control-expose-headers").expect("exposed");
    for h in [
        "Tether-Error",
        "Tether-Retry-After-Ms",
        "Retry-After",
        "Content-Type",
    ] {
        assert!(exposed.contains(h), "{h} in {exposed}");
    }
    assert!(header(&r, "access-control-allow-credentials").is_none());
    // Without an Origin (not a browser), any origin.
    let r = http()
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[tokio::test]
async fn web_1_preflights_are_answered_without_reaching_the_endpoints() {
    let s = default_server().await;
    let base = s.endpoint_url();
    let before = s.log().snapshot().len();
    for (path, method, headers) in [
        ("send?v=1", "POST", "content-type"),
        ("sse?v=1&channels=a", "GET", "last-event-id"),
        ("poll?v=1", "GET", "authorization"),
    ] {
        let r = http()
            .request(reqwest::Method::OPTIONS, format!("{base}/{path}"))
            .header("origin", ORIGIN)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some(ORIGIN)
        );
        assert_eq!(
            header(&r, "access-control-allow-methods").as_deref(),
            Some("GET, POST, OPTIONS")
        );
        assert_eq!(
            header(&r, "access-control-allow-headers").as_deref(),
            Some(headers)
        );
        assert!(header(&r, "access-control-max-age").is_some());
    }
    let requests = s.log().snapshot()[before..]
        .iter()
        .filter(|e| e.kind == LogKind::Request)
        .count();
    assert_eq!(requests, 0, "preflights are not requests of the contract");
}

#[tokio::test]
async fn web_3_a_plain_get_replays_the_refusal_of_a_browser_upgrade_once() {
    let s = default_server().await;
    s.apply_fault(FaultRule::next(
        FaultTarget::WebSocket,
        1,
        Fault::Status {
            status: 503,
            headers: BTreeMap::from([
                ("Tether-Error".to_owned(), "retry_later".to_owned()),
                ("Tether-Retry-After-Ms".to_owned(), "180".to_owned()),
            ]),
            body: String::new(),
        },
    ));
    let query = "v=1&channels=room";
    let mut req = ws_url(&s, query).into_client_request().expect("request");
    req.headers_mut()
        .insert("origin", ORIGIN.parse().expect("origin"));
    let refused = match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    };
    assert_eq!(refused, 503);
    let url = format!("{}/ws?{query}", s.endpoint_url());
    // The count-1 fault is spent; the diagnosis still gets the answer the upgrade got.
    let r = http()
        .get(&url)
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "tether-error").as_deref(), Some("retry_later"));
    assert_eq!(header(&r, "tether-retry-after-ms").as_deref(), Some("180"));
    // Answered once: the next plain GET is the server's own answer (it would upgrade).
    let r = http()
        .get(&url)
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 426);
    assert_eq!(
        header(&r, "tether-error").as_deref(),
        Some("upgrade_required")
    );
    let handshakes = s
        .log()
        .snapshot()
        .iter()
        .filter(|e| e.kind == LogKind::Handshake)
        .count();
    assert_eq!(handshakes, 1, "a diagnosis is not a handshake");
}

#[tokio::test]
async fn web_3_a_diagnosis_without_a_refusal_reports_drain_and_auth() {
    let s = server(tether_server::ServerConfig {
        tokens: Some(vec!["good".into()]),
        ..Default::default()
    })
    .await;
    let url = format!("{}/ws?v=1", s.endpoint_url());
    let r = http().get(&url).send().await.expect("answer");
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "tether-error").as_deref(), Some("auth_expired"));
    let r = http()
        .get(format!("{url}&access_token=good"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 426);
    // No fault applies to a diagnosis: a pending refusal fault stays for the next upgrade.
    s.apply_fault(FaultRule::next(
        FaultTarget::WebSocket,
        1,
        Fault::Status {
            status: 500,
            headers: BTreeMap::new(),
            body: String::new(),
        },
    ));
    let r = http()
        .get(format!("{url}&access_token=good"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 426);
    let refused = ws_refused(&s, "v=1&access_token=good").await;
    assert_eq!(refused.status(), 500);
}

#[tokio::test]
async fn web_1_an_origin_outside_the_allowed_list_gets_no_cors_headers_but_is_served() {
    let s = tether_server::Server::start(tether_server::ServerConfig {
        allowed_origins: Some(vec!["HTTPS://App.Example".into()]),
        ..tether_server::ServerConfig::default()
    })
    .await
    .expect("server starts");
    let base = s.endpoint_url();
    // Listed (case-insensitively): allowed, headers exposed.
    let r = http()
        .get(format!("{base}/ready"))
        .header("origin", "https://app.example")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    assert!(header(&r, "access-control-expose-headers").is_some());
    // Not listed: the request is served, but the page may not read it.
    let r = http()
        .get(format!("{base}/ready"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    for h in [
        "access-control-allow-origin",
        "access-control-expose-headers",
    ] {
        assert!(header(&r, h).is_none(), "{h} for an unlisted origin");
    }
    // Its preflight reaches the router (no CORS answer): the browser then refuses the request.
    let r = http()
        .request(reqwest::Method::OPTIONS, format!("{base}/send?v=1"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("answer");
    assert!(header(&r, "access-control-allow-origin").is_none());
    assert!(header(&r, "access-control-allow-methods").is_none());
    s.shutdown().await;
}

#[tokio::test]
async fn web_5_send_reads_a_text_plain_body_as_json() {
    // A browser client posts `/send` as a CORS simple request (no preflight): the body is
    // the JSON array of WIRE-1 whatever its Content-Type says.
    let s = default_server().await;
    let base = s.endpoint_url();
    let r = http()
        .post(format!("{base}/send?v=1"))
        .header("origin", ORIGIN)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(r#"[{"type":"ping"},{"type":"publish","id":"k-1","channel":"c","data":{"n":1}}]"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    let frames: serde_json::Value = r.json().await.expect("a JSON array");
    let types: Vec<&str> = frames
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|f| f["type"].as_str())
        .collect();
    assert_eq!(types, ["pong", "ack"], "{frames}");
    assert_eq!(frames[1]["id"], "k-1");
}
