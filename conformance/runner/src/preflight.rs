//! Preflight: start an adapter once and wait (long) for its `hello` before any case runs.
//!
//! An adapter may build itself on first start (the Kotlin and Python adapters do), which can
//! take minutes; cases then only ever see a warm start within their 10 s hello budget, and an
//! adapter that cannot start at all is reported once instead of failing every case. The
//! preflight adapter's stderr goes to the terminal, so a build's progress and errors show.

use crate::adapter::AdapterCmd;
use crate::protocol::{self, Command, Hello, Incoming};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long a first start may take (a clean machine building a binding).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Start `cmd`, wait up to `timeout` for its hello, shut it down; the hello and the time it took.
pub async fn check(cmd: &AdapterCmd, timeout: Duration) -> Result<(Hello, Duration), String> {
    let t0 = Instant::now();
    let fail = |m: String| format!("adapter `{}` did not start: {m}", cmd.display());
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(fail("no stdio pipes".into()));
    };
    let hello = match tokio::time::timeout(timeout, protocol::read_frame(&mut stdout)).await {
        Err(_) => return Err(fail(format!("no hello within {timeout:?}"))),
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Ok(Ok(None)) => {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_default();
            return Err(fail(format!("it exited before its hello ({status})")));
        }
        Ok(Ok(Some(v))) => match Incoming::classify(v) {
            Ok(Incoming::Hello(h)) => h,
            Ok(other) => return Err(fail(format!("first message must be hello, got {other:?}"))),
            Err(e) => return Err(fail(e)),
        },
    };
    if hello.protocol != protocol::PROTOCOL_VERSION {
        return Err(fail(format!(
            "protocol {} (runner speaks 1)",
            hello.protocol
        )));
    }
    let _ = protocol::write_frame(&mut stdin, &Command::Shutdown { id: 1 }).await;
    drop(stdin);
    // Read until it exits (its `ok`), so it never blocks on a full pipe.
    let drain = async {
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut stdout, &mut sink).await;
        child.wait().await
    };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    Ok((hello, t0.elapsed()))
}
