//! The proxy: a loopback listener forwarding every accepted connection to one upstream under a live script, with counters.

use crate::pipe;
use crate::script::{Direction, Script};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What a proxy has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections still being served.
    pub open: u64,
    /// Connections blackholed by [`Fault::IdleKill`](crate::Fault::IdleKill).
    pub blackholed: u64,
    /// Bytes read from clients (whether forwarded or discarded).
    pub bytes_up: u64,
    /// Bytes read from the upstream (whether forwarded or discarded).
    pub bytes_down: u64,
}

/// Shared counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub open: AtomicU64,
    pub blackholed: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl Counters {
    pub(crate) fn add_bytes(&self, dir: Direction, n: usize) {
        let c = match dir {
            Direction::Up => &self.bytes_up,
            Direction::Down => &self.bytes_down,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        Stats {
            accepted: self.accepted.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            blackholed: self.blackholed.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
        }
    }
}

/// A running fault proxy. Dropping it (or [`FaultProxy::shutdown`]) stops the listener and
/// ends every connection it serves.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    script: watch::Sender<Arc<Script>>,
    counters: Arc<Counters>,
    task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to `upstream` under `script`.
    pub async fn start(upstream: SocketAddr, script: Script) -> io::Result<FaultProxy> {
        FaultProxy::bind(SocketAddr::from(([127, 0, 0, 1], 0)), upstream, script).await
    }

    /// Listen on `listen` and forward to `upstream` under `script`.
    pub async fn bind(
        listen: SocketAddr,
        upstream: SocketAddr,
        script: Script,
    ) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(Arc::new(script));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(listener, upstream, rx, counters.clone()));
        Ok(FaultProxy {
            addr,
            upstream,
            script: tx,
            counters,
            task: Some(task),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Replace the script. It applies at once to every connection, open or new: rates and
    /// delays from the next chunk on, the idle timer from its next check.
    pub fn set_script(&self, script: Script) {
        self.script.send_replace(Arc::new(script));
    }

    /// The current script.
    pub fn script(&self) -> Script {
        (**self.script.borrow()).clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Stop listening and end every connection (their sockets are dropped).
    pub async fn shutdown(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Accept until aborted; the connections live in a `JoinSet`, so aborting this task
/// (dropping the set) ends them all.
async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    script: watch::Receiver<Arc<Script>>,
    counters: Arc<Counters>,
) {
    let mut conns = JoinSet::new();
    let mut next: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                next += 1;
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                counters.open.fetch_add(1, Ordering::Relaxed);
                let (script, counters) = (script.clone(), counters.clone());
                let n = next;
                // Created here so an aborted task (never polled) still gives its count back.
                let guard = OpenGuard(counters.clone());
                conns.spawn(async move {
                    let _guard = guard;
                    pipe::serve(n, client, upstream, script, counters).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Counts a connection as open for as long as its task lives (aborted ones too).
struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}
