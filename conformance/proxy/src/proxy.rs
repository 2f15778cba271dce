//! The proxy: a loopback listener forwarding every accepted connection to one upstream under a live script, with counters, an event log and cuts on demand.

use crate::events::{EventLog, ProxyEvent};
use crate::pipe;
use crate::script::{Cut, Direction, Script};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};

/// What a proxy has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections still being served.
    pub open: u64,
    /// Connections blackholed ([`Fault::IdleKill`](crate::Fault::IdleKill),
    /// [`Fault::Blackhole`](crate::Fault::Blackhole), [`Cut::Blackhole`]).
    pub blackholed: u64,
    /// Connections reset ([`Fault::Reset`](crate::Fault::Reset), [`Cut::Reset`]).
    pub resets: u64,
    /// Connections FIN-closed ([`Fault::Fin`](crate::Fault::Fin), [`Cut::Fin`]).
    pub fins: u64,
    /// Upgrade requests the proxy answered itself ([`Fault::RefuseUpgrade`](crate::Fault::RefuseUpgrade)).
    pub upgrades_refused: u64,
    /// Upgrade requests forwarded stripped ([`Fault::StripUpgrade`](crate::Fault::StripUpgrade)).
    pub upgrades_stripped: u64,
    /// Responses held until complete ([`Fault::Buffer`](crate::Fault::Buffer)).
    pub responses_buffered: u64,
    /// Connections the upstream refused (server down).
    pub upstream_refused: u64,
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
    pub resets: AtomicU64,
    pub fins: AtomicU64,
    pub upgrades_refused: AtomicU64,
    pub upgrades_stripped: AtomicU64,
    pub responses_buffered: AtomicU64,
    pub upstream_refused: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl Counters {
    pub(crate) fn add(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_bytes(&self, dir: Direction, n: usize) {
        let c = match dir {
            Direction::Up => &self.bytes_up,
            Direction::Down => &self.bytes_down,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            accepted: g(&self.accepted),
            open: g(&self.open),
            blackholed: g(&self.blackholed),
            resets: g(&self.resets),
            fins: g(&self.fins),
            upgrades_refused: g(&self.upgrades_refused),
            upgrades_stripped: g(&self.upgrades_stripped),
            responses_buffered: g(&self.responses_buffered),
            upstream_refused: g(&self.upstream_refused),
            bytes_up: g(&self.bytes_up),
            bytes_down: g(&self.bytes_down),
        }
    }
}

/// The script as every connection reads it: a version (bumped by each
/// [`FaultProxy::set_script`]) and the instant it was set, from which time triggers count.
#[derive(Debug)]
pub(crate) struct Live {
    pub version: u64,
    pub set_at: tokio::time::Instant,
    pub script: Script,
}

/// What the accept loop and every connection share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub counters: Counters,
    pub events: EventLog,
    /// [`FaultProxy::cut_all`]: every open connection listens.
    pub cuts: broadcast::Sender<Cut>,
}

/// A running fault proxy. Dropping it (or [`FaultProxy::shutdown`]) stops the listener and
/// ends every connection it serves.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    script: watch::Sender<Arc<Live>>,
    shared: Arc<Shared>,
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
        let (tx, rx) = watch::channel(Arc::new(Live {
            version: 0,
            set_at: tokio::time::Instant::now(),
            script,
        }));
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            events: EventLog::default(),
            cuts: broadcast::channel(64).0,
        });
        let task = tokio::spawn(accept_loop(listener, upstream, rx, shared.clone()));
        Ok(FaultProxy {
            addr,
            upstream,
            script: tx,
            shared,
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
    /// delays from the next chunk on, the idle timer from its next check, cut triggers
    /// re-armed from now (a time trigger counts from the later of the connection's open and
    /// this call; a byte trigger counts the bytes from this call on).
    pub fn set_script(&self, script: Script) {
        self.script.send_modify(|live| {
            *live = Arc::new(Live {
                version: live.version + 1,
                set_at: tokio::time::Instant::now(),
                script,
            });
        });
    }

    /// The current script.
    pub fn script(&self) -> Script {
        self.script.borrow().script.clone()
    }

    /// Cut every connection open now (`Reset`, `Fin` or `Blackhole`), as a network event
    /// at one instant: a router reboot, a cable pulled, a NAT table flushed. Connections
    /// accepted later are not affected. Returns how many connections were told.
    pub fn cut_all(&self, cut: Cut) -> usize {
        self.shared.cuts.send(cut).unwrap_or(0)
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Everything the proxy saw and did, oldest first (the last 200,000 events).
    pub fn events(&self) -> Vec<ProxyEvent> {
        self.shared.events.snapshot()
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
    script: watch::Receiver<Arc<Live>>,
    shared: Arc<Shared>,
) {
    let mut conns = JoinSet::new();
    let mut next: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                next += 1;
                shared.counters.add(&shared.counters.accepted);
                shared.counters.add(&shared.counters.open);
                let (script, shared) = (script.clone(), shared.clone());
                let n = next;
                // Created here so an aborted task (never polled) still gives its count back.
                let guard = OpenGuard(shared.clone());
                conns.spawn(async move {
                    let _guard = guard;
                    pipe::serve(n, client, upstream, script, shared).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Counts a connection as open for as long as its task lives (aborted ones too).
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}
