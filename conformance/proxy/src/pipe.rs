//! One proxied connection: a reader and a writer per direction (latency queue, bandwidth pacing), an idle watchdog, and the blackhole.

use crate::proxy::Counters;
use crate::script::{Direction, Script};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

/// Largest chunk read at once.
const READ_CHUNK: usize = 16 * 1024;
/// Chunks queued per direction between its reader and its writer (the latency line).
const QUEUE: usize = 64;
/// Pacing slice of a rate-limited direction: this much of a second's worth per write.
const SLICE: Duration = Duration::from_millis(50);

/// What the two directions of one connection share.
struct Link {
    last_activity: Mutex<Instant>,
    blackholed: AtomicBool,
}

impl Link {
    fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
    }

    fn last(&self) -> Instant {
        self.last_activity
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now())
    }

    fn is_blackholed(&self) -> bool {
        self.blackholed.load(Ordering::Acquire)
    }
}

/// A small seeded generator (splitmix64) for per-chunk jitter.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, conn: u64, stream: u64) -> Rng {
        Rng(seed
            ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, max]`.
    pub(crate) fn up_to(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        let f = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        max.mul_f64(f)
    }
}

/// Forward between `client` and `upstream` under the live `script` until both sides are
/// done or `stop` fires.
pub(crate) async fn serve(
    n: u64,
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    script: watch::Receiver<Arc<Script>>,
    counters: Arc<Counters>,
) {
    let mut server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(conn = n, error = %e, "fault proxy: upstream refused");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let link = Link {
        last_activity: Mutex::new(Instant::now()),
        blackholed: AtomicBool::new(false),
    };
    let seed = script.borrow().seed;
    let (client_r, client_w) = client.split();
    let (server_r, server_w) = server.split();
    let (up_tx, up_rx) = mpsc::channel(QUEUE);
    let (down_tx, down_rx) = mpsc::channel(QUEUE);
    let pipes = async {
        tokio::join!(
            read_side(
                Direction::Up,
                client_r,
                up_tx,
                &link,
                &script,
                &counters,
                Rng::new(seed, n, 1)
            ),
            write_side(Direction::Up, server_w, up_rx, &link, &script),
            read_side(
                Direction::Down,
                server_r,
                down_tx,
                &link,
                &script,
                &counters,
                Rng::new(seed, n, 2)
            ),
            write_side(Direction::Down, client_w, down_rx, &link, &script),
        )
    };
    tokio::pin!(pipes);
    tokio::select! {
        _ = &mut pipes => {}
        () = watchdog(&link, script.clone()) => {
            counters.blackholed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(conn = n, "fault proxy: idle connection blackholed");
            (&mut pipes).await;
        }
    }
}

/// Blackhole the connection once it has been silent for the script's idle time; never
/// returns otherwise. The idle time is read live.
async fn watchdog(link: &Link, mut script: watch::Receiver<Arc<Script>>) {
    loop {
        let idle = script.borrow_and_update().idle_after();
        match idle {
            None => {
                if script.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
            Some(after) => {
                let at = link.last() + after;
                if Instant::now() >= at {
                    link.blackholed.store(true, Ordering::Release);
                    return;
                }
                tokio::select! {
                    () = sleep_until(at) => {}
                    r = script.changed() => if r.is_err() {
                        // The proxy is gone; its stop aborts this task.
                        return std::future::pending().await;
                    },
                }
            }
        }
    }
}

/// Read one side; queue what it sends for the other side, due after the latency. Once
/// blackholed, read and discard (to notice a close, which is then not passed on).
async fn read_side(
    dir: Direction,
    mut from: impl AsyncRead + Unpin,
    to: mpsc::Sender<(Instant, Vec<u8>)>,
    link: &Link,
    script: &watch::Receiver<Arc<Script>>,
    counters: &Counters,
    mut rng: Rng,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut last_due = Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return, // dropping `to` lets the writer pass the close on
            Ok(n) => n,
        };
        link.touch();
        counters.add_bytes(dir, n);
        if link.is_blackholed() {
            continue;
        }
        let (fixed, jitter) = script.borrow().delay(dir);
        let due = (Instant::now() + fixed + rng.up_to(jitter)).max(last_due);
        last_due = due;
        if to.send((due, buf[..n].to_vec())).await.is_err() {
            return;
        }
    }
}

/// Write the queued chunks to the other side when due, paced to the script's rate; pass a
/// close on as a FIN unless blackholed.
async fn write_side(
    dir: Direction,
    mut to: impl AsyncWrite + Unpin,
    mut from: mpsc::Receiver<(Instant, Vec<u8>)>,
    link: &Link,
    script: &watch::Receiver<Arc<Script>>,
) {
    // When the paced link is next free.
    let mut free_at = Instant::now();
    while let Some((due, chunk)) = from.recv().await {
        sleep_until(due).await;
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            if link.is_blackholed() {
                break;
            }
            let rate = script.borrow().rate(dir);
            let Some(rate) = rate else {
                if to.write_all(rest).await.is_err() {
                    return;
                }
                break;
            };
            let slice = usize::try_from((rate as u128 * SLICE.as_millis() / 1000).max(1))
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let start = free_at.max(Instant::now());
            sleep_until(start).await;
            if link.is_blackholed() {
                break;
            }
            if to.write_all(&rest[..slice]).await.is_err() {
                return;
            }
            free_at = start + Duration::from_secs_f64(slice as f64 / rate as f64);
            rest = &rest[slice..];
        }
    }
    if !link.is_blackholed() {
        let _ = to.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_seeded_and_bounded() {
        let max = Duration::from_millis(10);
        let draws = |seed| {
            let mut r = Rng::new(seed, 3, 1);
            (0..100).map(|_| r.up_to(max)).collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1), "same seed, same draws");
        assert_ne!(draws(1), draws(2), "another seed, other draws");
        assert!(draws(1).iter().all(|d| *d <= max));
        assert_eq!(Rng::new(0, 0, 0).up_to(Duration::ZERO), Duration::ZERO);
    }
}
