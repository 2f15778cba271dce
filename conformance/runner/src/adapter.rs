//! Adapter processes: spawn one per case, read its `hello`, send commands and await replies, collect events into the trace.

use crate::protocol::{self, Command, Hello, Incoming};
use crate::trace::{TraceBuf, TraceEvent};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;

/// Why talking to an adapter failed.
#[derive(Debug, Error)]
pub enum AdapterError {
    #[error("could not start adapter `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("adapter sent no hello within {0:?}")]
    NoHello(Duration),
    #[error("adapter protocol {0} is not supported (runner speaks 1)")]
    Version(u32),
    #[error("adapter protocol error: {0}")]
    Protocol(String),
    #[error("adapter exited: {0}")]
    Gone(String),
    #[error("`{cmd}` got no reply within {timeout:?}")]
    Timeout { cmd: String, timeout: Duration },
    #[error("`{cmd}` failed: {code}: {message}")]
    Failed {
        cmd: String,
        code: String,
        message: String,
    },
}

/// A reply to a command: the `ok` object, or `(code, message)`.
pub type Reply = Result<Value, (String, String)>;

/// How to start an adapter: program and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterCmd {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl AdapterCmd {
    /// Split a command line on whitespace, honouring single and double quotes.
    pub fn parse(line: &str) -> Option<AdapterCmd> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        let mut any = false;
        for ch in line.chars() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => cur.push(c),
                (None, '\'' | '"') => {
                    quote = Some(ch);
                    any = true;
                }
                (None, c) if c.is_whitespace() => {
                    if any || !cur.is_empty() {
                        words.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                (None, c) => cur.push(c),
            }
        }
        if any || !cur.is_empty() {
            words.push(cur);
        }
        let mut it = words.into_iter();
        let program = PathBuf::from(it.next()?);
        Some(AdapterCmd {
            program,
            args: it.collect(),
        })
    }

    /// The command line, for reports.
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// One running adapter.
pub struct Adapter {
    child: Child,
    stdin: tokio::sync::Mutex<ChildStdin>,
    next_id: AtomicU64,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>,
    pub trace: Arc<TraceBuf>,
    pub hello: Hello,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Bytes of adapter stderr kept for the report.
const STDERR_KEEP: usize = 64 * 1024;

impl Adapter {
    /// Start the adapter and wait for its `hello`. `now_us` stamps events with the server clock.
    pub async fn spawn(
        cmd: &AdapterCmd,
        now_us: Arc<dyn Fn() -> u64 + Send + Sync>,
        hello_timeout: Duration,
    ) -> Result<Adapter, AdapterError> {
        let mut child = tokio::process::Command::new(&cmd.program)
            .args(&cmd.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| AdapterError::Spawn {
                cmd: cmd.display(),
                source,
            })?;
        let (Some(stdin), Some(mut stdout), Some(mut stderr_pipe)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(AdapterError::Protocol("no stdio pipes".into()));
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let keep = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
                k.extend_from_slice(&buf[..n]);
                if k.len() > STDERR_KEEP {
                    let cut = k.len() - STDERR_KEEP;
                    k.drain(..cut);
                }
            }
        });
        let hello =
            match tokio::time::timeout(hello_timeout, protocol::read_frame(&mut stdout)).await {
                Err(_) => return Err(AdapterError::NoHello(hello_timeout)),
                Ok(Err(e)) => return Err(AdapterError::Protocol(e.to_string())),
                Ok(Ok(None)) => return Err(AdapterError::Gone("no output".into())),
                Ok(Ok(Some(v))) => match Incoming::classify(v) {
                    Ok(Incoming::Hello(h)) => h,
                    Ok(other) => {
                        return Err(AdapterError::Protocol(format!(
                            "first message must be hello, got {other:?}"
                        )))
                    }
                    Err(e) => return Err(AdapterError::Protocol(e)),
                },
            };
        if hello.protocol != protocol::PROTOCOL_VERSION {
            return Err(AdapterError::Version(hello.protocol));
        }
        let trace = Arc::new(TraceBuf::default());
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>> = Arc::default();
        let (t, p) = (trace.clone(), pending.clone());
        tokio::spawn(async move {
            let why = loop {
                match protocol::read_frame(&mut stdout).await {
                    Ok(None) => break "end of output".to_owned(),
                    Err(e) => break e.to_string(),
                    Ok(Some(v)) => match Incoming::classify(v) {
                        Ok(Incoming::Event(v)) => {
                            let t_ms = v.get("t_ms").and_then(Value::as_f64).unwrap_or(0.0);
                            t.push(TraceEvent {
                                t_ms,
                                recv_us: now_us(),
                                v,
                            });
                        }
                        Ok(Incoming::Ok { id, result }) => {
                            let tx = p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                            if let Some(tx) = tx {
                                let _ = tx.send(Ok(result));
                            }
                        }
                        Ok(Incoming::Failed { id, code, message }) => {
                            let tx = p.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                            if let Some(tx) = tx {
                                let _ = tx.send(Err((code, message)));
                            }
                        }
                        Ok(Incoming::Hello(_)) => break "a second hello".to_owned(),
                        Err(e) => break e,
                    },
                }
            };
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
            t.close(why);
        });
        Ok(Adapter {
            child,
            stdin: tokio::sync::Mutex::new(stdin),
            next_id: AtomicU64::new(1),
            pending,
            trace,
            hello,
            stderr,
        })
    }

    /// True when the adapter declared `cap`.
    pub fn has(&self, cap: &str) -> bool {
        self.hello.capabilities.iter().any(|c| c == cap)
    }

    /// A fresh command id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Send `cmd` and wait for its reply.
    pub async fn call(&self, cmd: Command, timeout: Duration) -> Result<Value, AdapterError> {
        let name = cmd.name().to_owned();
        match self.call_raw(cmd, timeout).await? {
            Ok(v) => Ok(v),
            Err((code, message)) => Err(AdapterError::Failed {
                cmd: name,
                code,
                message,
            }),
        }
    }

    /// Send `cmd` and return its reply, an error reply included.
    pub async fn call_raw(&self, cmd: Command, timeout: Duration) -> Result<Reply, AdapterError> {
        let id = cmd.id();
        let name = cmd.name().to_owned();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        if let Some(why) = self.trace.closed() {
            return Err(AdapterError::Gone(why));
        }
        {
            let mut w = self.stdin.lock().await;
            protocol::write_frame(&mut *w, &cmd)
                .await
                .map_err(|e| AdapterError::Gone(e.to_string()))?;
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(AdapterError::Timeout { cmd: name, timeout }),
            Ok(Err(_)) => Err(AdapterError::Gone(
                self.trace.closed().unwrap_or_else(|| "reply lost".into()),
            )),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// The adapter's stderr (last 64 KiB).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Ask the adapter to shut down; kill it if it does not exit within 3 s.
    pub async fn shutdown(mut self) {
        let id = self.next_id();
        let _ = self
            .call_raw(Command::Shutdown { id }, Duration::from_secs(3))
            .await;
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split() {
        let c = AdapterCmd::parse("node 'my adapter.js' --x \"a b\"").expect("cmd");
        assert_eq!(c.program, PathBuf::from("node"));
        assert_eq!(c.args, vec!["my adapter.js", "--x", "a b"]);
        assert!(AdapterCmd::parse("   ").is_none());
    }
}
