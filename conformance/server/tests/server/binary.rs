//! The `tether-server` binary as operators run it: `--help`, TLS from PEM files, Prometheus metrics, and the drain on SIGTERM (DRAIN-3).

use crate::common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_tether-server");

/// Start the binary; its endpoint URL (from the first stdout line).
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
        .to_owned();
    (child, url)
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[test]
fn help_documents_settings_and_bad_flags_exit_2() {
    let out = Command::new(BIN).arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for s in [
        "--redis-url",
        "TETHER_REDIS_URL",
        "--jwt-hs256-secret",
        "--tls-cert",
        "--drain-window-ms",
        "--publish-keys",
        "--config",
    ] {
        assert!(text.contains(s), "--help lacks {s}");
    }
    let out = Command::new(BIN)
        .arg("--no-such-flag")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn scale_5_sigterm_drains_every_client_refuses_handshakes_then_exits() {
    let (mut child, url) = start(&["--drain-window-ms", "200,600", "--drain-grace-ms", "1000"]);
    let ws_url = format!("{}/ws?v=1&channels=c", url.replacen("http", "ws", 1));
    let (mut w, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("ws");
    assert_eq!(frame(&mut w).await["type"], "hello");
    let t0 = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success());
    let f = loop {
        let f = frame(&mut w).await;
        if f["type"] != "subscribed" {
            break f;
        }
    };
    assert_eq!(
        (
            f["type"].as_str(),
            f["from_ms"].as_u64(),
            f["to_ms"].as_u64()
        ),
        (Some("drain"), Some(200), Some(600))
    );
    assert_eq!(close_code(&mut w).await, Some(1000));
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            assert_eq!(r.headers()["tether-error"], "draining");
            assert!(r.headers().contains_key("retry-after"));
        }
        other => panic!(
            "a handshake while draining must be refused, got {:?}",
            other.map(|_| ())
        ),
    }
    let code = tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(5)))
        .await
        .expect("join");
    assert_eq!(code, Some(0), "a clean exit after the drain");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "no connection left: exits before the grace ends"
    );
}

#[tokio::test]
async fn tls_binary_serves_https_from_pem_files_and_metrics() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let (cert, key) = (format!("{dir}/tls-cert.pem"), format!("{dir}/tls-key.pem"));
    let (mut child, url) = start(&["--tls-cert", &cert, "--tls-key", &key]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let addr = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .expect("addr")
        .to_owned();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(format!("{dir}/tls-ca.pem")).expect("ca");
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.expect("pem")).expect("root");
    }
    use rustls::pki_types::pem::PemObject;
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let get = |path: &'static str| {
        let (cfg, addr) = (cfg.clone(), addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, tcp)
                .await
                .expect("tls handshake");
            tls.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("write");
            let mut out = String::new();
            let _ = tokio::time::timeout(T, tls.read_to_string(&mut out)).await;
            out
        }
    };
    let ready = get("/tether/ready").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains("\"ready\":true"));
    let metrics = get("/metrics").await;
    assert!(
        metrics.contains("# TYPE tether_handshakes_total counter"),
        "{metrics}"
    );
    // Plain HTTP on the TLS port is not served.
    let plain = http()
        .get(format!("http://{addr}/tether/ready"))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
    let _ = child.kill();
    let _ = child.wait();
}
