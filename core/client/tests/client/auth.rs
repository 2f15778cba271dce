//! AUTH-1/2/3: tokens come from the provider before every attempt, travel as a Bearer header,
//! and an auth-expired signal triggers exactly one immediate forced refresh.

use crate::support;

use std::sync::{Arc, Mutex};
use support::*;
use tether::{ErrorCode, Event, State, TokenError, TransportKind};

async fn refresh_on_expiry(t: TransportKind) {
    let server = server_with(|c| c.tokens = Some(vec!["t1".into()])).await;
    server.add_token("t2");
    let calls: Arc<Mutex<Vec<bool>>> = Arc::default();
    let log = calls.clone();
    let client = build(builder(&server, t).token_provider(move |forced: bool| {
        log.lock().map(|mut c| c.push(forced)).ok();
        async move { Ok::<_, TokenError>(if forced { "t2" } else { "t1" }.to_string()) }
    }));
    let mut events = client.events();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    up(&mut events).await;
    assert_eq!(
        calls.lock().map(|c| c.clone()).unwrap_or_default(),
        vec![false],
        "AUTH-1"
    );
    assert!(server.expire_token("t1") >= 1 || t != TransportKind::WebSocket);
    let mut seen = until(&mut events, "auth-expired signal", |e| {
        matches!(
            e,
            Event::Error {
                code: ErrorCode::AuthExpired,
                ..
            }
        )
    })
    .await;
    let expired_at = seen.len();
    seen.extend(up(&mut events).await);
    // AUTH-2: the retry is immediate: no backoff between the expiry and the new hello
    // (an SSE stream that simply ended first backs off once, before the 401 says why).
    assert!(
        !seen[expired_at..]
            .iter()
            .any(|e| matches!(e.event, Event::ReconnectScheduled { .. })),
        "AUTH-2: immediate retry:\n{}",
        dump(&seen)
    );
    assert!(
        seen[expired_at..]
            .iter()
            .any(|e| matches!(e.event, Event::TransportSelected { .. })),
        "a new attempt:\n{}",
        dump(&seen)
    );
    let calls = calls.lock().map(|c| c.clone()).unwrap_or_default();
    assert_eq!(
        calls.last(),
        Some(&true),
        "AUTH-2: forced refresh: {calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|f| **f).count(),
        1,
        "exactly one forced refresh: {calls:?}"
    );
}

per_transport!(refresh_on_expiry: auth_2_websocket, auth_2_sse, auth_2_long_poll);

/// AUTH-1: a fatal provider error ends in `Failed{auth_failed}` without retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_1_fatal_provider_error_fails() {
    let server = server().await;
    let client = build(builder(&server, TransportKind::WebSocket).token_provider(
        |_forced: bool| async {
            Err::<String, _>(TokenError {
                fatal: true,
                message: "revoked".into(),
            })
        },
    ));
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    state(&client, "failed", |s| matches!(s, State::Failed { .. })).await;
    assert_eq!(
        client.state(),
        State::Failed {
            reason: ErrorCode::AuthFailed
        }
    );
}

/// AUTH-4: the token never shows in the server's log (the query carries none: it is a header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_3_token_is_a_bearer_header() {
    let server = server_with(|c| c.tokens = Some(vec!["very-secret".into()])).await;
    for t in TransportKind::LADDER {
        let client =
            build(builder(&server, t).token_provider(|_f: bool| async {
                Ok::<_, TokenError>("very-secret".to_string())
            }));
        let mut events = client.events();
        client.connect().unwrap_or_else(|e| panic!("{e}"));
        up(&mut events).await;
        client.close().await.unwrap_or_else(|e| panic!("{e}"));
    }
    let log = serde_json::to_string(&server.log().snapshot()).unwrap_or_default();
    assert!(!log.contains("very-secret"));
    assert!(
        !log.contains("access_token"),
        "native clients use the header (AUTH-3)"
    );
}
