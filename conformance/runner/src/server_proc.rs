//! The reference server as a separate process, for the faults that need one (`kill -9`, restart on the same port): started on a port the runner keeps, driven over its control channel (`tether_server::control`), its log streamed into the case's log.
//!
//! The process is, by default, this runner's own executable in server mode
//! (`tether-conformance __server ...`, which is `tether_server::cli`, the `tether-server`
//! binary's code): built from the same sources as the runner, so it is never a stale binary
//! (the same reasoning as the built-in adapter and the cluster instances). `--server-bin PATH`
//! runs a `tether-server` binary instead; both take the same flags ([`server_args`]) and
//! speak the same control protocol.

use crate::scenario::ServerSetup;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tether_server::{LogEntry, LogKind, ObservationLog};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};

/// How long a started process may take to listen.
const START: Duration = Duration::from_secs(15);
/// How long a control command may take.
const REPLY: Duration = Duration::from_secs(5);
/// Connection ids of incarnation `i` are offset by `i * CONN_STRIDE` in the case log, so
/// the connections of two incarnations never share an id.
const CONN_STRIDE: u64 = 1_000_000;
/// Bytes of server stderr kept for reports.
const STDERR_KEEP: usize = 16 * 1024;

/// How to start the server process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCmd {
    pub program: PathBuf,
    /// Arguments before the server's own flags (`__server` for the runner itself).
    pub args: Vec<String>,
}

impl ServerCmd {
    /// This executable in server mode.
    pub fn builtin() -> Result<ServerCmd, String> {
        let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        Ok(ServerCmd {
            program: me,
            args: vec!["__server".into()],
        })
    }
}

/// The flags a case's setup becomes (the `tether-server` binary's own flags).
pub fn server_args(setup: &ServerSetup, listen: SocketAddr) -> Result<Vec<String>, String> {
    let mut a = vec![
        "--listen".to_owned(),
        listen.to_string(),
        "--heartbeat-ms".into(),
        setup.heartbeat_ms.to_string(),
        "--poll-hold-ms".into(),
        setup.poll_hold_ms.to_string(),
    ];
    if let Some(r) = setup.ring {
        a.push("--ring-capacity".into());
        a.push(r.to_string());
    }
    if let Some(p) = &setup.policy {
        a.push("--policy".into());
        a.push(Value::Object(p.clone()).to_string());
    }
    for t in setup.tokens.iter().flatten() {
        a.push("--token".into());
        a.push(t.clone());
    }
    for t in &setup.forbidden_tokens {
        a.push("--forbidden-token".into());
        a.push(t.clone());
    }
    if let Some(n) = setup.max_frame_bytes {
        a.push("--max-frame-bytes".into());
        a.push(n.to_string());
    }
    if let Some((from, to)) = setup.ready_window_ms {
        a.push("--ready-window-ms".into());
        a.push(format!("{from},{to}"));
    }
    if let Some(s) = &setup.jwt_hs256_secret {
        a.push("--jwt-hs256-secret".into());
        a.push(s.clone());
    }
    if setup.cluster.is_some() {
        return Err("a cluster case runs its own instances".into());
    }
    a.push("--control".into());
    a.push("stdio".into());
    Ok(a)
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One incarnation's control channel.
struct Control {
    stdin: mpsc::UnboundedSender<String>,
    pending: Pending,
    incarnation: u32,
}

/// What the traffic tasks share with the process owner: the current incarnation's control.
#[derive(Default)]
pub struct ProcHandle {
    control: Mutex<Option<Arc<Control>>>,
    next_id: AtomicU64,
}

impl ProcHandle {
    /// Send a command to the current incarnation; `Err` when it is down or did not answer.
    pub async fn call(&self, mut cmd: Value) -> Result<(Value, u32), CallError> {
        let ctl = self
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(CallError::Down)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        cmd["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        ctl.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        if ctl.stdin.send(cmd.to_string()).is_err() {
            return Err(CallError::Down);
        }
        match tokio::time::timeout(REPLY, rx).await {
            Ok(Ok(v)) if v["ok"] == json!(true) => Ok((v, ctl.incarnation)),
            Ok(Ok(v)) => Err(CallError::Refused(
                v["error"].as_str().unwrap_or("refused").to_owned(),
            )),
            // The process died (or stalled) with the command in flight: it may have run.
            Ok(Err(_)) | Err(_) => Err(CallError::Lost(ctl.incarnation)),
        }
    }

    /// Publish from the server side: the seq and the incarnation that stored it.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<(u64, u32), CallError> {
        let (v, inc) = self
            .call(json!({"op": "publish", "channel": channel, "data": data}))
            .await?;
        let seq = v["seq"]
            .as_u64()
            .ok_or_else(|| CallError::Refused("no seq in the reply".into()))?;
        Ok((seq, inc))
    }
}

/// Why a control command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No server process is running: the command certainly did not run.
    Down,
    /// The server refused it.
    Refused(String),
    /// No answer (the process died with it in flight): it may have run in this incarnation.
    Lost(u32),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Down => f.write_str("the server process is down"),
            CallError::Refused(e) => write!(f, "refused: {e}"),
            CallError::Lost(i) => write!(f, "no answer from incarnation {i}"),
        }
    }
}

/// The running server process (or the gap between two of them).
pub struct ServerProc {
    cmd: ServerCmd,
    setup: ServerSetup,
    addr: SocketAddr,
    base_path: String,
    log: Arc<ObservationLog>,
    handle: Arc<ProcHandle>,
    child: Option<Child>,
    incarnation: u32,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl ServerProc {
    /// Start the first incarnation on a free port of its own, kept for every restart.
    pub async fn start(
        cmd: ServerCmd,
        setup: &ServerSetup,
        log: Arc<ObservationLog>,
    ) -> Result<ServerProc, String> {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().map_err(|e| e.to_string())?
        };
        let mut p = ServerProc {
            cmd,
            setup: setup.clone(),
            addr,
            base_path: "/tether".into(),
            log,
            handle: Arc::new(ProcHandle::default()),
            child: None,
            incarnation: 0,
            stderr: Arc::default(),
        };
        p.spawn().await?;
        Ok(p)
    }

    /// The address it listens on, the same for every incarnation.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}{}", self.addr, self.base_path)
    }

    /// The handle traffic tasks publish through.
    pub fn handle(&self) -> Arc<ProcHandle> {
        self.handle.clone()
    }

    /// The number of the running incarnation (0 for the first).
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// The server's stderr (its last 16 KiB), for reports.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let args = server_args(&self.setup, self.addr)?;
        let mut last = String::new();
        // The port may still be held for an instant by the killed incarnation's sockets.
        for _ in 0..20 {
            match self.spawn_once(&args).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Err(format!("server process did not start: {last}"))
    }

    async fn spawn_once(&mut self, args: &[String]) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.cmd.program)
            .args(&self.cmd.args)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.cmd.program.display()))?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("no stdio pipes".into());
        };
        let keep = self.stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
                k.extend_from_slice(&buf[..n]);
                let cut = k.len().saturating_sub(STDERR_KEEP);
                k.drain(..cut);
            }
        });
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(write_lines(stdin, rx));
        let pending: Pending = Arc::default();
        let (up_tx, up_rx) = oneshot::channel();
        let incarnation = self.incarnation;
        tokio::spawn(read_lines(
            stdout,
            pending.clone(),
            self.log.clone(),
            incarnation,
            up_tx,
        ));
        match tokio::time::timeout(START, up_rx).await {
            Ok(Ok(addr)) if addr == self.addr.to_string() => {}
            Ok(Ok(addr)) => return Err(format!("listening on {addr}, not {}", self.addr)),
            Ok(Err(_)) => {
                let _ = child.kill().await;
                return Err(format!("exited before listening: {}", self.stderr()));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err("did not listen in time".into());
            }
        }
        *self
            .handle
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Control {
            stdin: tx,
            pending,
            incarnation,
        }));
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9` the running incarnation and wait until it is gone.
    pub async fn kill(&mut self) {
        self.handle
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill(); // SIGKILL
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
        }
        self.log.record(
            LogEntry::new(LogKind::Action)
                .detail(format!("kill -9 incarnation {}", self.incarnation)),
        );
    }

    /// Start the next incarnation on the same port.
    pub async fn restart(&mut self) -> Result<(), String> {
        self.incarnation += 1;
        self.spawn().await?;
        self.log.record(
            LogEntry::new(LogKind::Action)
                .detail(format!("incarnation {} started", self.incarnation)),
        );
        Ok(())
    }

    /// Stop: end the control channel (the process exits), kill it if it lingers.
    pub async fn shutdown(mut self) {
        self.handle
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut c) = self.child.take() {
            if tokio::time::timeout(Duration::from_secs(2), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
    }
}

async fn write_lines(mut stdin: ChildStdin, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
    // Dropping stdin ends the server's control channel: it exits.
}

async fn read_lines(
    stdout: tokio::process::ChildStdout,
    pending: Pending,
    log: Arc<ObservationLog>,
    incarnation: u32,
    up: oneshot::Sender<String>,
) {
    let mut up = Some(up);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        match v["type"].as_str() {
            Some("listening") => {
                if let Some(tx) = up.take() {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                }
            }
            Some("log") => {
                if let Ok(mut e) = serde_json::from_value::<LogEntry>(v["entry"].clone()) {
                    e.conn = e.conn.map(|c| c + u64::from(incarnation) * CONN_STRIDE);
                    // Stamped on arrival: at most a control tick after the server saw it.
                    log.record(e);
                }
            }
            Some("reply") => {
                let id = v["id"].as_u64().unwrap_or(0);
                let tx = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                if let Some(tx) = tx {
                    let _ = tx.send(v);
                }
            }
            _ => {}
        }
    }
    // The process is gone: commands in flight get no answer (their senders drop here).
    pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
}
