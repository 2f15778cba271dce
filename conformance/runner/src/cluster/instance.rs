//! One server instance: the runner's own binary re-run as `__server` (the `tether-server` code), a separate process so that `kill -9` is real.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Instance {
    pub index: usize,
    pub addr: SocketAddr,
    pub base_path: String,
    child: Child,
    /// Filled when the process ended: its exit code (None: killed by a signal).
    pub exited: Option<Option<i32>>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Instance {
    /// Start `program args...` and read the endpoint from its first stdout line.
    pub async fn spawn(
        index: usize,
        program: &PathBuf,
        args: &[String],
    ) -> Result<Instance, String> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("instance {index}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| format!("instance {index} printed no endpoint in 10 s"))?
            .map_err(|e| format!("instance {index}: {e}"))?
            .ok_or_else(|| format!("instance {index} exited before listening"))?;
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| format!("instance {index}: no endpoint in {line:?}"))?;
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, "tether"));
        let addr: SocketAddr = host
            .parse()
            .map_err(|_| format!("instance {index}: bad address {host}"))?;
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut e) = child.stderr.take() {
            let sink = stderr.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = e.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                    if s.len() < 64 * 1024 {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Instance {
            index,
            addr,
            base_path: format!("/{path}"),
            child,
            exited: None,
            stderr,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: the process vanishes without a word.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        if let Ok(Ok(st)) = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            self.exited = Some(st.code());
        }
    }

    /// SIGTERM: the instance drains (DRAIN-3) and exits by itself.
    pub async fn sigterm(&self) -> Result<(), String> {
        let pid = self.pid().ok_or("instance already gone")?;
        let st = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .map_err(|e| e.to_string())?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("kill -TERM {pid} failed"))
        }
    }

    /// Wait for the process to end; its exit code (None when a signal ended it).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<Option<i32>, String> {
        if let Some(c) = self.exited {
            return Ok(c);
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(st)) => {
                self.exited = Some(st.code());
                Ok(st.code())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "instance {} still running after {timeout:?}",
                self.index
            )),
        }
    }

    pub fn alive(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(st)) => {
                self.exited = Some(st.code());
                false
            }
            _ => true,
        }
    }
}
