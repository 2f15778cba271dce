//! The `tether-server` binary with the documented example `--faults` file: it starts, and the
//! file's first rules do what conformance/server/README.md says they do.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the binary on port 0 with `args`; the endpoint URL it prints.
fn start(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tether-server starts");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("a line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
        .to_owned();
    (Running(child), url)
}

#[tokio::test]
async fn example_faults_file_runs_in_the_binary() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/faults.example.json");
    let started = Instant::now();
    let (_server, endpoint) = start(&["--faults", example]);
    let ws = format!(
        "{}/ws?v=1&channels=c",
        endpoint.replacen("http://", "ws://", 1)
    );
    let addr = endpoint
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();

    // Rule 1, `stop_listening` for 2 s: refused at first, then accepted.
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "connections are refused during the first 2 s"
    );
    loop {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the listener never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1900));

    // Rule 2: the first WebSocket handshake gets 403 with no Tether-Error; the next upgrades.
    match tokio_tungstenite::connect_async(ws.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403);
            assert!(resp.headers().get(tether_server::TETHER_ERROR).is_none());
        }
        other => panic!("first handshake: want 403, got {:?}", other.map(|r| r.1)),
    }
    let (_ws, resp) = tokio_tungstenite::connect_async(ws.as_str())
        .await
        .expect("the second handshake upgrades (count 1 is used up)");
    assert_eq!(resp.status(), 101);
}

#[test]
fn a_bad_faults_file_is_refused_with_the_rule_number() {
    let dir = std::env::temp_dir().join(format!("tether-fault-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("bad.json");
    std::fs::write(
        &path,
        r#"[{"fault":"clear"}, {"fault":"sse_retry","value":"1","transport":"send"}]"#,
    )
    .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether-server"))
        .args(["--listen", "127.0.0.1:0", "--faults"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started with a file whose rule 2 can never apply");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rule 2") && err.contains("sse_retry"), "{err}");
}

#[test]
fn help_documents_the_faults_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_tether-server"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--faults FILE",
        "\"transport\"",
        "\"count\"",
        "\"every_request\"",
        "first rule",
    ] {
        assert!(text.contains(word), "--help should mention {word}: {text}");
    }
}
