//! One proxied connection: the first request read when a fault needs it, a reader and a writer per direction (latency queue, bandwidth pacing, byte triggers, response buffering), and a controller that fires cuts, idle kills and blackholes.

use crate::events::EventKind;
use crate::http::{self, RequestParser, ResponseMark, ResponseParser};
use crate::proxy::{Live, Shared};
use crate::script::{Cut, Direction};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::time::{sleep_until, Instant};

/// Largest chunk read at once.
const READ_CHUNK: usize = 16 * 1024;
/// Chunks queued per direction between its reader and its writer (the latency line).
const QUEUE: usize = 64;
/// Pacing slice of a rate-limited direction: this much of a second's worth per write.
const SLICE: Duration = Duration::from_millis(50);
/// How long the proxy waits for the first request head when a fault needs it.
const FIRST_HEAD_WAIT: Duration = Duration::from_secs(2);
/// How long the proxy reads a request it cannot forward (upstream down), for its log.
const REFUSED_HEAD_WAIT: Duration = Duration::from_millis(300);
/// How long a FIN-closed connection is drained before its sockets are dropped.
const FIN_DRAIN: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A byte trigger armed on a connection: the cut, the direction and the bytes left.
struct Arm {
    cut: Cut,
    dir: Direction,
    left: u64,
    detail: String,
}

/// What the two directions of one connection and its controller share.
struct Link {
    last_activity: Mutex<Instant>,
    /// Nothing passes any more (set by a writer the instant a byte trigger fires).
    blackholed: AtomicBool,
    /// The blackhole was counted and logged (once, by the controller).
    blackhole_reported: AtomicBool,
    arms: Mutex<Vec<Arm>>,
    /// Byte triggers that fired, for the controller.
    fired: Mutex<Vec<(Cut, String)>>,
    fire: Notify,
    client_closed: AtomicBool,
    upstream_closed: AtomicBool,
}

impl Link {
    fn new() -> Link {
        Link {
            last_activity: Mutex::new(Instant::now()),
            blackholed: AtomicBool::new(false),
            blackhole_reported: AtomicBool::new(false),
            arms: Mutex::new(Vec::new()),
            fired: Mutex::new(Vec::new()),
            fire: Notify::new(),
            client_closed: AtomicBool::new(false),
            upstream_closed: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    fn last(&self) -> Instant {
        *lock(&self.last_activity)
    }

    fn is_blackholed(&self) -> bool {
        self.blackholed.load(Ordering::Acquire)
    }

    /// How many of `want` bytes may be written in `dir` before a byte trigger fires; the
    /// triggers reaching zero are taken out and reported.
    fn allowance(&self, dir: Direction, want: usize) -> (usize, Vec<(Cut, String)>) {
        let mut arms = lock(&self.arms);
        let Some(min) = arms.iter().filter(|a| a.dir == dir).map(|a| a.left).min() else {
            return (want, Vec::new());
        };
        let allowed = (want as u64).min(min);
        for a in arms.iter_mut().filter(|a| a.dir == dir) {
            a.left -= allowed;
        }
        let mut fired = Vec::new();
        arms.retain(|a| {
            if a.dir == dir && a.left == 0 {
                fired.push((a.cut, a.detail.clone()));
                false
            } else {
                true
            }
        });
        (allowed as usize, fired)
    }
}

/// A small seeded generator (splitmix64) for jitter, byte counts and chances.
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

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, max]`.
    pub(crate) fn up_to(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        max.mul_f64(self.unit())
    }

    /// Uniform integer in `[0, max]`.
    pub(crate) fn up_to_u64(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        self.next_u64() % (max + 1)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || self.unit() < p
    }
}

/// The first request head of a connection, read before anything is forwarded: every byte
/// read, and where the head ends (`None`: no complete head arrived).
async fn read_first_head(client: &mut TcpStream, wait: Duration) -> (Vec<u8>, Option<usize>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let deadline = Instant::now() + wait;
    loop {
        if let Some(end) = http::head_end(&buf) {
            return (buf, Some(end));
        }
        if buf.len() >= http::MAX_HEAD {
            return (buf, None);
        }
        match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return (buf, None),
        }
    }
}

#[allow(deprecated)] // SO_LINGER 0 is what makes the close a RST; zero never blocks.
fn reset(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

/// Forward between `client` and `upstream` under the live script until both sides are
/// done, a cut ends the connection, or the proxy stops.
pub(crate) async fn serve(
    n: u64,
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    script: watch::Receiver<Arc<Live>>,
    shared: Arc<Shared>,
) {
    let log = |kind: EventKind| shared.events.push(n, kind);
    log(EventKind::Accepted);
    let cuts = shared.cuts.subscribe();
    let opened = Instant::now();
    let live = script.borrow().clone();
    let mut rng = Rng::new(live.script.seed, n, 4);
    // What the client sent before forwarding starts, as sent and as forwarded.
    let (mut observed, mut initial) = (Vec::new(), Vec::new());
    if live.script.reads_first_request() {
        let (bytes, end) = read_first_head(&mut client, FIRST_HEAD_WAIT).await;
        let req = end.and_then(|e| http::parse_request(&bytes[..e]).map(|r| (e, r)));
        match req {
            Some((end, r)) if r.upgrade => {
                let refuse = live
                    .script
                    .refused_upgrade()
                    .filter(|(_, p)| rng.chance(*p));
                let strip = live.script.stripped_upgrade().filter(|p| rng.chance(*p));
                if let Some((status, _)) = refuse {
                    refuse_upgrade(n, client, &bytes, status, &shared).await;
                    return;
                }
                if strip.is_some() {
                    initial = http::strip_upgrade(&bytes[..end]);
                    initial.extend_from_slice(&bytes[end..]);
                    shared.counters.add(&shared.counters.upgrades_stripped);
                    log(EventKind::Fired {
                        fault: "strip_upgrade".into(),
                        detail: "Upgrade and Connection removed".into(),
                    });
                } else {
                    initial = bytes.clone();
                }
            }
            _ => initial = bytes.clone(),
        }
        observed = bytes;
    }
    let mut server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            if observed.is_empty() {
                observed = read_first_head(&mut client, REFUSED_HEAD_WAIT).await.0;
            }
            for r in RequestParser::new().feed(&observed) {
                log(request_event(r));
            }
            shared.counters.add(&shared.counters.upstream_refused);
            log(EventKind::UpstreamRefused {
                error: e.to_string(),
            });
            tracing::debug!(conn = n, error = %e, "fault proxy: upstream refused");
            // As close to "connection refused" as an accepted connection gets.
            reset(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let link = Link::new();
    let seed = live.script.seed;
    // Armed before the first byte moves (the controller re-arms on a new script).
    let armed = {
        let now = script.borrow().clone();
        (now.version, arm(n, opened, &now, &link))
    };
    let outcome = {
        let (client_r, client_w) = client.split();
        let (server_r, server_w) = server.split();
        let (up_tx, up_rx) = mpsc::channel(QUEUE);
        let (down_tx, down_rx) = mpsc::channel(QUEUE);
        let up = Reader {
            dir: Direction::Up,
            n,
            link: &link,
            script: &script,
            shared: &shared,
            rng: Rng::new(seed, n, 1),
        };
        let down = Reader {
            dir: Direction::Down,
            n,
            link: &link,
            script: &script,
            shared: &shared,
            rng: Rng::new(seed, n, 2),
        };
        let pipes = async {
            tokio::join!(
                up.run_up(client_r, up_tx, observed, initial),
                write_side(Direction::Up, server_w, up_rx, &link, &script),
                down.run_down(server_r, down_tx),
                write_side(Direction::Down, client_w, down_rx, &link, &script),
            )
        };
        tokio::pin!(pipes);
        tokio::select! {
            _ = &mut pipes => None,
            cut = controller(n, opened, &link, script.clone(), cuts, &shared, armed) => Some(cut),
        }
    };
    let Some((cut, detail)) = outcome else {
        return;
    };
    log(EventKind::Fired {
        fault: cut.as_str().into(),
        detail,
    });
    match cut {
        Cut::Reset => {
            shared.counters.add(&shared.counters.resets);
            reset(&client);
            reset(&server);
        }
        Cut::Blackhole => {}
        Cut::Fin => {
            shared.counters.add(&shared.counters.fins);
            let _ = client.shutdown().await;
            let _ = server.shutdown().await;
            // Read and discard until both peers close, so neither close becomes a RST.
            let (mut cr, _) = client.split();
            let (mut sr, _) = server.split();
            let _ = tokio::time::timeout(FIN_DRAIN, async {
                tokio::join!(drain(&mut cr), drain(&mut sr));
            })
            .await;
        }
    }
}

async fn drain(r: &mut (impl AsyncRead + Unpin)) {
    let mut buf = vec![0u8; READ_CHUNK];
    while matches!(r.read(&mut buf).await, Ok(k) if k > 0) {}
}

fn request_event(r: http::RequestHead) -> EventKind {
    EventKind::Request {
        method: r.method,
        target: r.target,
        upgrade: r.upgrade,
    }
}

/// Answer an upgrade request as a blocking proxy: the proxy's own page, then a clean close.
async fn refuse_upgrade(n: u64, mut client: TcpStream, head: &[u8], status: u16, shared: &Shared) {
    for r in RequestParser::new().feed(head) {
        shared.events.push(n, request_event(r));
    }
    shared.counters.add(&shared.counters.upgrades_refused);
    shared.events.push(
        n,
        EventKind::Fired {
            fault: "refuse_upgrade".into(),
            detail: status.to_string(),
        },
    );
    shared.events.push(n, EventKind::Response { status });
    let _ = client.write_all(&http::refusal(status)).await;
    let _ = client.shutdown().await;
    let _ = tokio::time::timeout(FIN_DRAIN, drain(&mut client)).await;
}

/// A time trigger: when, what, and the detail for the event log.
type Timer = (Instant, Cut, String);

/// Arm the cuts of `live` on this connection: byte triggers into `link` (the writers count
/// them down), time triggers returned. Called before any byte is forwarded, so a byte
/// trigger counts a first write that arrived with the connection, and again by the
/// controller whenever a new script is set.
fn arm(n: u64, opened: Instant, live: &Live, link: &Link) -> Vec<Timer> {
    let mut timers = Vec::new();
    let mut arms = Vec::new();
    let mut rng = Rng::new(live.script.seed, n, 1000 + live.version);
    let from = opened.max(live.set_at);
    for (cut, t) in live.script.cuts() {
        if !rng.chance(t.chance) {
            continue;
        }
        if let Some(ms) = t.after_ms {
            let after = Duration::from_millis(ms) + rng.up_to(Duration::from_millis(t.jitter_ms));
            timers.push((from + after, cut, format!("after {} ms", after.as_millis())));
        }
        if let Some(b) = t.after_bytes {
            let bytes = b.saturating_add(rng.up_to_u64(t.jitter_bytes));
            arms.push(Arm {
                cut,
                dir: t.direction,
                left: bytes,
                detail: format!("after {bytes} bytes {}", t.direction.as_str()),
            });
        }
    }
    *lock(&link.arms) = arms;
    timers
}

/// Fires the script's cuts on this connection: time triggers, byte triggers (armed here,
/// counted by the writers), the idle watchdog, and [`FaultProxy::cut_all`]. Blackholes are
/// applied in place; a reset or a FIN is returned for [`serve`] to carry out. The script is
/// read live: a new one re-arms every trigger from the instant it was set.
///
/// [`FaultProxy::cut_all`]: crate::FaultProxy::cut_all
async fn controller(
    n: u64,
    opened: Instant,
    link: &Link,
    mut script: watch::Receiver<Arc<Live>>,
    mut cuts: broadcast::Receiver<Cut>,
    shared: &Shared,
    armed: (u64, Vec<Timer>),
) -> (Cut, String) {
    let (mut armed_version, mut timers) = armed;
    let mut script_open = true;
    loop {
        let live = script.borrow_and_update().clone();
        if armed_version != live.version {
            armed_version = live.version;
            timers = arm(n, opened, &live, link);
        }
        let fired = link.fire.notified();
        tokio::pin!(fired);
        fired.as_mut().enable();
        // Byte triggers that fired already.
        let hits: Vec<(Cut, String)> = std::mem::take(&mut *lock(&link.fired));
        for (cut, detail) in hits {
            if let Some(end) = act(n, cut, detail, "", link, shared) {
                return end;
            }
        }
        let idle_at = live
            .script
            .idle_after()
            .filter(|_| !link.is_blackholed())
            .map(|a| link.last() + a);
        let next_timer = timers.iter().map(|t| t.0).min();
        let wake = match (idle_at, next_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match wake {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                let now = Instant::now();
                if idle_at.is_some_and(|a| now >= a) && now >= link.last() + live.script.idle_after().unwrap_or_default() {
                    let silent = now.duration_since(link.last());
                    act(n, Cut::Blackhole, format!("silent for {} ms", silent.as_millis()), "idle_kill", link, shared);
                }
                let due: Vec<(Instant, Cut, String)> = {
                    let (due, rest) = timers.drain(..).partition(|t| t.0 <= now);
                    timers = rest;
                    due
                };
                for (_, cut, detail) in due {
                    if let Some(end) = act(n, cut, detail, "", link, shared) {
                        return end;
                    }
                }
            }
            r = script.changed(), if script_open => {
                if r.is_err() {
                    script_open = false; // the proxy is gone; its stop aborts this task
                }
            }
            c = cuts.recv() => match c {
                Ok(cut) => {
                    if let Some(end) = act(n, cut, "cut_all".into(), "", link, shared) {
                        return end;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
            },
            () = &mut fired => {}
        }
    }
}

/// Carry out a cut: a blackhole here (once), a reset or FIN by returning it.
fn act(
    n: u64,
    cut: Cut,
    detail: String,
    name: &str,
    link: &Link,
    shared: &Shared,
) -> Option<(Cut, String)> {
    match cut {
        Cut::Blackhole => {
            // A byte trigger's writer has set `blackholed` already (so that not one more
            // byte passes); the report is separate, or that blackhole would go unlogged.
            link.blackholed.store(true, Ordering::Release);
            if !link.blackhole_reported.swap(true, Ordering::AcqRel) {
                shared.counters.add(&shared.counters.blackholed);
                let fault = if name.is_empty() { "blackhole" } else { name };
                tracing::debug!(conn = n, fault, "fault proxy: connection blackholed");
                shared.events.push(
                    n,
                    EventKind::Fired {
                        fault: fault.into(),
                        detail,
                    },
                );
            }
            None
        }
        Cut::Reset | Cut::Fin => Some((cut, detail)),
    }
}

/// One direction's reading end.
struct Reader<'a> {
    dir: Direction,
    n: u64,
    link: &'a Link,
    script: &'a watch::Receiver<Arc<Live>>,
    shared: &'a Shared,
    rng: Rng,
}

type Queue = mpsc::Sender<(Instant, Vec<u8>)>;

impl Reader<'_> {
    /// Queue `bytes` for the writer, due after the latency. False when the writer is gone.
    async fn queue(&mut self, to: &Queue, last_due: &mut Instant, bytes: Vec<u8>) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let (fixed, jitter) = self.script.borrow().script.delay(self.dir);
        let due = (Instant::now() + fixed + self.rng.up_to(jitter)).max(*last_due);
        *last_due = due;
        to.send((due, bytes)).await.is_ok()
    }

    /// Read one chunk: `None` at the end (EOF or error), noting who closed first.
    async fn read(&self, from: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> Option<usize> {
        match from.read(buf).await {
            Ok(0) | Err(_) => {
                let (me, other, kind) = match self.dir {
                    Direction::Up => (
                        &self.link.client_closed,
                        &self.link.upstream_closed,
                        EventKind::ClientClosed,
                    ),
                    Direction::Down => (
                        &self.link.upstream_closed,
                        &self.link.client_closed,
                        EventKind::UpstreamClosed,
                    ),
                };
                me.store(true, Ordering::Release);
                if !other.load(Ordering::Acquire) && !self.link.is_blackholed() {
                    self.shared.events.push(self.n, kind);
                }
                None
            }
            Ok(k) => {
                self.link.touch();
                self.shared.counters.add_bytes(self.dir, k);
                Some(k)
            }
        }
    }

    /// The client's side: log request heads, queue `initial` (the first request as it is
    /// forwarded) and then everything read. Once blackholed, read and discard (to notice a
    /// close, which is then not passed on).
    async fn run_up(
        mut self,
        mut from: impl AsyncRead + Unpin,
        to: Queue,
        observed: Vec<u8>,
        initial: Vec<u8>,
    ) {
        let mut parser = RequestParser::new();
        let mut last_due = Instant::now();
        for r in parser.feed(&observed) {
            self.shared.events.push(self.n, request_event(r));
        }
        if !initial.is_empty() {
            self.shared.counters.add_bytes(self.dir, initial.len());
        }
        if !self.queue(&to, &mut last_due, initial).await {
            return;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        while let Some(k) = self.read(&mut from, &mut buf).await {
            if self.link.is_blackholed() {
                continue;
            }
            if !parser.is_opaque() {
                for r in parser.feed(&buf[..k]) {
                    self.shared.events.push(self.n, request_event(r));
                }
            }
            if !self.queue(&to, &mut last_due, buf[..k].to_vec()).await {
                return;
            }
        }
    }

    /// The server's side: log response heads and, under [`Fault::Buffer`], hold each
    /// response until it is complete.
    ///
    /// [`Fault::Buffer`]: crate::Fault::Buffer
    async fn run_down(mut self, mut from: impl AsyncRead + Unpin, to: Queue) {
        let mut parser = ResponseParser::new();
        let mut last_due = Instant::now();
        let mut held: Vec<u8> = Vec::new();
        // Passing the rest of a response that outgrew the buffer.
        let mut overflow = false;
        let mut buf = vec![0u8; READ_CHUNK];
        while let Some(k) = self.read(&mut from, &mut buf).await {
            if self.link.is_blackholed() {
                continue;
            }
            let chunk = &buf[..k];
            let marks = if parser.is_opaque() {
                Vec::new()
            } else {
                parser.feed(chunk)
            };
            for (_, m) in &marks {
                if let ResponseMark::Head(status) = m {
                    self.shared
                        .events
                        .push(self.n, EventKind::Response { status: *status });
                }
            }
            let limit = self.script.borrow().script.buffered();
            let Some(limit) = limit else {
                let out = std::mem::take(&mut held);
                if !self.queue(&to, &mut last_due, out).await
                    || !self.queue(&to, &mut last_due, chunk.to_vec()).await
                {
                    return;
                }
                continue;
            };
            let mut start = 0;
            for (off, m) in &marks {
                if *m != ResponseMark::End {
                    continue;
                }
                held.extend_from_slice(&chunk[start..*off]);
                start = *off;
                if !overflow {
                    self.shared
                        .counters
                        .add(&self.shared.counters.responses_buffered);
                }
                overflow = false;
                let out = std::mem::take(&mut held);
                if !self.queue(&to, &mut last_due, out).await {
                    return;
                }
            }
            held.extend_from_slice(&chunk[start..]);
            if parser.is_opaque() || overflow || held.len() > limit {
                // Not HTTP any more (a 101, unreadable framing), or too large to hold.
                overflow = !parser.is_opaque();
                let out = std::mem::take(&mut held);
                if !self.queue(&to, &mut last_due, out).await {
                    return;
                }
            }
        }
        // The server closed: a response that ran until the close is complete now.
        if !held.is_empty() && parser.until_close() {
            self.shared
                .counters
                .add(&self.shared.counters.responses_buffered);
        }
        let out = std::mem::take(&mut held);
        let _ = self.queue(&to, &mut last_due, out).await;
    }
}

/// Write the queued chunks to the other side when due, paced to the script's rate and cut
/// short where a byte trigger fires; pass a close on as a FIN unless blackholed.
async fn write_side(
    dir: Direction,
    mut to: impl AsyncWrite + Unpin,
    mut from: mpsc::Receiver<(Instant, Vec<u8>)>,
    link: &Link,
    script: &watch::Receiver<Arc<Live>>,
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
            let rate = script.borrow().script.rate(dir);
            let (slice, paced) = match rate {
                None => (rest.len(), None),
                Some(rate) => {
                    let start = free_at.max(Instant::now());
                    sleep_until(start).await;
                    if link.is_blackholed() {
                        break;
                    }
                    let slice = usize::try_from((rate as u128 * SLICE.as_millis() / 1000).max(1))
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    (slice, Some((start, rate)))
                }
            };
            let (allowed, fired) = link.allowance(dir, slice);
            if allowed > 0 && to.write_all(&rest[..allowed]).await.is_err() {
                return;
            }
            if let Some((start, rate)) = paced {
                free_at = start + Duration::from_secs_f64(allowed as f64 / rate as f64);
            }
            rest = &rest[allowed..];
            if !fired.is_empty() {
                let stop = fired.iter().any(|(c, _)| *c != Cut::Blackhole);
                if fired.iter().any(|(c, _)| *c == Cut::Blackhole) {
                    // Immediately: not one more byte may pass.
                    link.blackholed.store(true, Ordering::Release);
                }
                lock(&link.fired).extend(fired);
                link.fire.notify_one();
                if stop {
                    // The controller resets or closes the connection; write nothing more.
                    return std::future::pending().await;
                }
            }
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
        let mut r = Rng::new(5, 1, 1);
        assert!((0..1000).all(|_| r.up_to_u64(7) <= 7));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }

    #[test]
    fn allowance_stops_exactly_at_the_trigger() {
        let link = Link::new();
        *lock(&link.arms) = vec![
            Arm {
                cut: Cut::Reset,
                dir: Direction::Down,
                left: 10,
                detail: "r".into(),
            },
            Arm {
                cut: Cut::Fin,
                dir: Direction::Up,
                left: 3,
                detail: "f".into(),
            },
        ];
        assert_eq!(link.allowance(Direction::Down, 4), (4, vec![]));
        let (n, fired) = link.allowance(Direction::Down, 100);
        assert_eq!(n, 6, "the cut falls right after the 10th byte");
        assert_eq!(fired, vec![(Cut::Reset, "r".to_owned())]);
        assert_eq!(link.allowance(Direction::Down, 100), (100, vec![]));
        assert_eq!(link.allowance(Direction::Up, 3).1.len(), 1);
    }
}
