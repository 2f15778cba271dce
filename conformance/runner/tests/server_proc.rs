//! The reference server as a separate process (`tether-conformance __server --control stdio`): commands answer, the log streams into the case log, `kill -9` really kills it and a restart comes back on the same port with a new epoch.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tether_conformance::scenario::ServerSetup;
use tether_conformance::server_proc::{CallError, ServerCmd, ServerProc};
use tether_server::{LogKind, ObservationLog};

const RUNNER: &str = env!("CARGO_BIN_EXE_tether-conformance");

fn setup() -> ServerSetup {
    ServerSetup {
        heartbeat_ms: 200,
        poll_hold_ms: 500,
        ..ServerSetup::default()
    }
}

/// The process answers HTTP on `addr` (`GET /tether/ready`).
async fn answers_http(addr: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let req = format!("GET /tether/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    let head = String::from_utf8_lossy(&buf);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn kill_9_and_restart_on_the_same_port() {
    let log = Arc::new(ObservationLog::new(10_000));
    let cmd = ServerCmd {
        program: RUNNER.into(),
        args: vec!["__server".into()],
    };
    let mut p = ServerProc::start(cmd, &setup(), log.clone())
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let addr = p.addr();
    let h = p.handle();
    assert_eq!(h.publish("c", json!({"n": 1})).await, Ok((1, 0)));
    assert_eq!(h.publish("c", json!({"n": 2})).await, Ok((2, 0)));
    answers_http(addr).await;
    // The server's log entries reach the case log.
    let mut seen = false;
    for _ in 0..100 {
        if log
            .snapshot()
            .iter()
            .any(|e| e.detail.as_deref() == Some("publish c#2"))
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "the publish never reached the case log");

    p.kill().await;
    assert_eq!(h.publish("c", json!({"n": 3})).await, Err(CallError::Down));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the killed process still accepts connections"
    );
    p.restart().await.unwrap_or_else(|e| panic!("restart: {e}"));
    assert_eq!(p.addr(), addr, "the port is kept");
    assert_eq!(p.incarnation(), 1);
    // Memory died with the process: the channel starts again at seq 1.
    assert_eq!(h.publish("c", json!({"n": 4})).await, Ok((1, 1)));
    answers_http(addr).await;
    let actions: Vec<String> = log
        .snapshot()
        .into_iter()
        .filter(|e| e.kind == LogKind::Action)
        .filter_map(|e| e.detail)
        .collect();
    assert!(
        actions.iter().any(|a| a == "kill -9 incarnation 0")
            && actions.iter().any(|a| a == "incarnation 1 started"),
        "{actions:?}"
    );
    p.shutdown().await;
}
