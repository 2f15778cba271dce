//! The fault proxy on loopback: faithful forwarding, idle kills that blackhole without FIN or RST, bandwidth and latency, live scripts.

use std::net::SocketAddr;
use std::time::Duration;
use tether_fault_proxy::{Direction, FaultProxy, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

/// An upstream that echoes every byte back, one task per connection.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// An upstream that writes `n` bytes to every connection, then waits for the client to close.
async fn source_server(n: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let data = vec![7u8; n];
                let _ = s.write_all(&data).await;
                let mut sink = [0u8; 64];
                while matches!(s.read(&mut sink).await, Ok(k) if k > 0) {}
            });
        }
    });
    addr
}

async fn connect(p: &FaultProxy) -> TcpStream {
    TcpStream::connect(p.addr())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

async fn proxy(upstream: SocketAddr, script: Script) -> FaultProxy {
    FaultProxy::start(upstream, script)
        .await
        .unwrap_or_else(|e| panic!("proxy: {e}"))
}

async fn round_trip(s: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    s.write_all(payload)
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut got = vec![0u8; payload.len()];
    timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("echo timed out"))
        .unwrap_or_else(|e| panic!("read: {e}"));
    got
}

#[tokio::test]
async fn forwards_both_ways_unchanged_and_passes_fin_on() {
    let p = proxy(echo_server().await, Script::new()).await;
    let mut s = connect(&p).await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.split();
    let (sent, got) = tokio::join!(
        async {
            w.write_all(&payload)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            w.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        },
        async {
            let mut got = Vec::new();
            timeout(Duration::from_secs(10), r.read_to_end(&mut got))
                .await
                .unwrap_or_else(|_| panic!("no EOF: the FIN was not passed on"))
                .unwrap_or_else(|e| panic!("{e}"));
            got
        }
    );
    let () = sent;
    assert_eq!(got, payload);
    let st = p.stats();
    assert_eq!(st.accepted, 1);
    assert_eq!(st.bytes_up, 200_000);
    assert_eq!(st.bytes_down, 200_000);
    assert_eq!(st.blackholed, 0);
}

#[tokio::test]
async fn idle_kill_blackholes_a_silent_connection_without_fin_or_rst() {
    let idle = Duration::from_millis(300);
    let p = proxy(echo_server().await, Script::new().idle_kill(idle)).await;
    let mut s = connect(&p).await;
    // Activity more often than the idle time keeps the connection alive.
    for i in 0..6u8 {
        assert_eq!(round_trip(&mut s, &[i; 10]).await, vec![i; 10]);
        tokio::time::sleep(idle / 3).await;
    }
    assert_eq!(p.stats().blackholed, 0, "a busy connection is not idle");
    // Silence longer than the idle time: blackholed.
    tokio::time::sleep(idle * 2).await;
    assert_eq!(p.stats().blackholed, 1);
    // Writes still succeed (the socket is open) but nothing comes back, and the socket is
    // neither closed (EOF) nor reset (error): the read just never completes.
    s.write_all(b"anyone there?")
        .await
        .unwrap_or_else(|e| panic!("write after blackhole: {e}"));
    let mut buf = [0u8; 16];
    let r = timeout(Duration::from_millis(800), s.read(&mut buf)).await;
    assert!(r.is_err(), "expected silence, got {r:?}");
    // A new connection is not affected.
    let mut fresh = connect(&p).await;
    assert_eq!(round_trip(&mut fresh, b"hello").await, b"hello");
    assert_eq!(p.stats().open, 2);
}

#[tokio::test]
async fn bandwidth_limits_the_rate_in_one_direction() {
    let rate = 40_000u64;
    let size = 60_000usize;
    let up = source_server(size).await;
    let p = proxy(up, Script::new().bandwidth(rate, Some(Direction::Down))).await;
    let mut s = connect(&p).await;
    let started = Instant::now();
    let mut got = vec![0u8; size];
    timeout(Duration::from_secs(20), s.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("transfer timed out"))
        .unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed();
    let ideal = Duration::from_secs_f64(size as f64 / rate as f64); // 1.5 s
    assert!(
        took >= ideal.mul_f64(0.9),
        "60 kB at 40 kB/s took only {took:?}"
    );
    assert!(took < ideal * 4, "far too slow: {took:?}");
    // The other direction is not limited: the echo of a quick request is immediate.
    let p2 = proxy(
        echo_server().await,
        Script::new().bandwidth(1_000, Some(Direction::Down)),
    )
    .await;
    let mut e = connect(&p2).await;
    let t = Instant::now();
    e.write_all(&[1u8; 30_000])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(t.elapsed() < Duration::from_secs(1), "uplink throttled");
}

#[tokio::test]
async fn latency_delays_each_direction_and_keeps_order() {
    let p = proxy(
        echo_server().await,
        Script::new()
            .seed(9)
            .latency(Duration::from_millis(60), Duration::from_millis(20), None),
    )
    .await;
    let mut s = connect(&p).await;
    let t = Instant::now();
    let payload: Vec<u8> = (0..50u8).collect();
    for chunk in payload.chunks(5) {
        s.write_all(chunk).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let mut got = vec![0u8; payload.len()];
    timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("timed out"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, payload, "in order despite jitter");
    assert!(
        t.elapsed() >= Duration::from_millis(120),
        "a round trip costs two one-way delays: {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn set_script_applies_to_open_connections() {
    let p = proxy(echo_server().await, Script::new()).await;
    let mut s = connect(&p).await;
    assert_eq!(round_trip(&mut s, b"before").await, b"before");
    p.set_script(Script::new().idle_kill(Duration::from_millis(200)));
    assert_eq!(p.script().idle_after(), Some(Duration::from_millis(200)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        p.stats().blackholed,
        1,
        "the open connection got the new idle time"
    );
    let stats_before = p.stats();
    p.shutdown().await;
    assert_eq!(stats_before.accepted, 1);
    // After shutdown the socket is gone: reads end (EOF or reset), they do not hang.
    let mut buf = [0u8; 4];
    let r = timeout(Duration::from_secs(2), s.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
}

// ---------------------------------------------------------------- cuts, HTTP faults, events

use std::sync::{Arc, Mutex};
use tether_fault_proxy::{Cut, EventKind, Trigger};

/// How an upstream's side of a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// Clean EOF (the proxy passed a FIN), with the bytes received.
    Eof(usize),
    /// A read error (a RST), with the bytes received.
    Reset(usize),
}

/// An upstream that writes `n` bytes (in 1 KiB pieces) to every connection, then reads
/// until the connection ends and reports how it ended.
async fn source_reporting(n: usize) -> (SocketAddr, Arc<Mutex<Vec<End>>>) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let ends = Arc::new(Mutex::new(Vec::new()));
    let e2 = ends.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let ends = e2.clone();
            tokio::spawn(async move {
                for _ in 0..n / 1024 {
                    if s.write_all(&[7u8; 1024]).await.is_err() {
                        break;
                    }
                }
                let mut got = 0;
                let mut buf = [0u8; 1024];
                let end = loop {
                    match s.read(&mut buf).await {
                        Ok(0) => break End::Eof(got),
                        Ok(k) => got += k,
                        Err(_) => break End::Reset(got),
                    }
                };
                ends.lock().unwrap_or_else(|e| e.into_inner()).push(end);
            });
        }
    });
    (addr, ends)
}

/// Read until the stream ends: the bytes read and whether it ended with an error (RST).
async fn read_to_end_or_error(s: &mut TcpStream, within: Duration) -> (usize, bool) {
    let mut got = 0;
    let mut buf = vec![0u8; 8192];
    let r = timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return false,
                Ok(k) => got += k,
                Err(_) => return true,
            }
        }
    })
    .await;
    match r {
        Ok(err) => (got, err),
        Err(_) => panic!("the stream did not end within {within:?} ({got} bytes read)"),
    }
}

async fn ends_of(ends: &Arc<Mutex<Vec<End>>>, n: usize) -> Vec<End> {
    for _ in 0..200 {
        let e = ends.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if e.len() >= n {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the upstream saw fewer than {n} ends");
}

fn fired(p: &FaultProxy) -> Vec<(String, String)> {
    p.events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Fired { fault, detail } => Some((fault, detail)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn fin_after_bytes_closes_cleanly_exactly_there() {
    let (up, ends) = source_reporting(64 * 1024).await;
    let p = proxy(
        up,
        Script::new().fin(Trigger::after_bytes(5_000, Direction::Down)),
    )
    .await;
    let mut s = connect(&p).await;
    let (got, err) = read_to_end_or_error(&mut s, Duration::from_secs(5)).await;
    assert_eq!(
        (got, err),
        (5_000, false),
        "exactly 5,000 bytes (mid-frame), then a clean EOF"
    );
    assert_eq!(
        ends_of(&ends, 1).await,
        vec![End::Eof(0)],
        "FIN upstream too"
    );
    assert_eq!(p.stats().fins, 1);
    assert_eq!(
        fired(&p),
        vec![("fin".to_owned(), "after 5000 bytes down".to_owned())]
    );
}

#[tokio::test]
async fn reset_after_bytes_resets_both_peers_and_passes_no_byte_more() {
    let (up, ends) = source_reporting(64 * 1024).await;
    let p = proxy(
        up,
        Script::new()
            .seed(4)
            .reset(Trigger::after_bytes(3_000, Direction::Down).jitter_bytes(2_000)),
    )
    .await;
    let mut s = connect(&p).await;
    let (got, err) = read_to_end_or_error(&mut s, Duration::from_secs(5)).await;
    assert!(err, "a RST is an error, not an EOF ({got} bytes)");
    let f = fired(&p);
    assert_eq!(f.len(), 1, "{f:?}");
    let at: usize = f[0]
        .1
        .trim_start_matches("after ")
        .trim_end_matches(" bytes down")
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {:?}", f[0]));
    assert!((3_000..=5_000).contains(&at), "{at}");
    assert!(got <= at, "{got} bytes arrived, the cut was after {at}");
    assert_eq!(
        ends_of(&ends, 1).await,
        vec![End::Reset(0)],
        "RST upstream too"
    );
    assert_eq!(p.stats().resets, 1);
    // The same seed cuts the next connection of another proxy at the same byte.
    let (up2, _) = source_reporting(64 * 1024).await;
    let p2 = proxy(
        up2,
        Script::new()
            .seed(4)
            .reset(Trigger::after_bytes(3_000, Direction::Down).jitter_bytes(2_000)),
    )
    .await;
    let mut s2 = connect(&p2).await;
    let _ = read_to_end_or_error(&mut s2, Duration::from_secs(5)).await;
    assert_eq!(fired(&p2), f, "seeded: the run replays");
}

#[tokio::test]
async fn reset_after_bytes_up_cuts_a_request_in_the_middle() {
    let (up, ends) = source_reporting(0).await;
    let p = proxy(
        up,
        Script::new().reset(Trigger::after_bytes(1_500, Direction::Up)),
    )
    .await;
    let mut s = connect(&p).await;
    let _ = s.write_all(&[1u8; 1_000]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = s.write_all(&[2u8; 1_000]).await;
    let (_, err) = read_to_end_or_error(&mut s, Duration::from_secs(5)).await;
    assert!(err);
    match ends_of(&ends, 1).await[0] {
        End::Reset(n) => assert!(n <= 1_500, "{n} bytes passed a cut at 1,500"),
        ref other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn reset_at_a_time_counts_from_the_open() {
    let p = proxy(
        echo_server().await,
        Script::new().reset(Trigger::after(Duration::from_millis(300))),
    )
    .await;
    let t = Instant::now();
    let mut s = connect(&p).await;
    assert_eq!(round_trip(&mut s, b"early").await, b"early");
    let (_, err) = read_to_end_or_error(&mut s, Duration::from_secs(5)).await;
    assert!(err);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert_eq!(
        fired(&p),
        vec![("reset".to_owned(), "after 300 ms".to_owned())]
    );
}

#[tokio::test]
async fn blackhole_at_a_time_keeps_both_sockets_open_and_silent() {
    let p = proxy(
        echo_server().await,
        Script::new().blackhole(Trigger::after(Duration::from_millis(200))),
    )
    .await;
    let mut s = connect(&p).await;
    assert_eq!(round_trip(&mut s, b"hi").await, b"hi");
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(b"anyone?")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 8];
    let r = timeout(Duration::from_millis(600), s.read(&mut buf)).await;
    assert!(r.is_err(), "no answer, no EOF, no RST: {r:?}");
    let st = p.stats();
    assert_eq!((st.blackholed, st.resets, st.fins, st.open), (1, 0, 0, 1));
    assert_eq!(fired(&p)[0].0, "blackhole");
}

#[tokio::test]
async fn a_new_script_rearms_triggers_from_when_it_was_set() {
    let p = proxy(echo_server().await, Script::new()).await;
    let mut s = connect(&p).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 200 ms from now, although the connection is 300 ms old already.
    let t = Instant::now();
    p.set_script(Script::new().fin(Trigger::after(Duration::from_millis(200))));
    assert_eq!(round_trip(&mut s, b"still up").await, b"still up");
    let (_, err) = read_to_end_or_error(&mut s, Duration::from_secs(5)).await;
    assert!(!err, "a FIN is a clean EOF");
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn chance_picks_connections_by_seed() {
    let picked = |seed: u64| async move {
        let p = proxy(
            echo_server().await,
            Script::new()
                .seed(seed)
                .fin(Trigger::after(Duration::from_millis(50)).chance(0.5)),
        )
        .await;
        let mut socks = Vec::new();
        for _ in 0..24 {
            socks.push(connect(&p).await);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut cut: Vec<u64> = p
            .events()
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::Fired { .. }))
            .map(|e| e.conn)
            .collect();
        cut.sort_unstable();
        cut
    };
    let a = picked(11).await;
    assert!((4..=20).contains(&a.len()), "about half of 24: {a:?}");
    assert_eq!(picked(11).await, a, "same seed, same connections");
    assert_ne!(picked(12).await, a, "another seed, others");
}

#[tokio::test]
async fn cut_all_acts_on_open_connections_only() {
    let p = proxy(echo_server().await, Script::new()).await;
    let mut a = connect(&p).await;
    let mut b = connect(&p).await;
    assert_eq!(round_trip(&mut a, b"a").await, b"a");
    assert_eq!(round_trip(&mut b, b"b").await, b"b");
    assert_eq!(p.cut_all(Cut::Reset), 2);
    assert!(read_to_end_or_error(&mut a, Duration::from_secs(3)).await.1);
    assert!(read_to_end_or_error(&mut b, Duration::from_secs(3)).await.1);
    let mut c = connect(&p).await;
    assert_eq!(
        round_trip(&mut c, b"c").await,
        b"c",
        "a later connection passes"
    );
    assert_eq!(p.cut_all(Cut::Fin), 1);
    assert!(!read_to_end_or_error(&mut c, Duration::from_secs(3)).await.1);
    let mut d = connect(&p).await;
    assert_eq!(round_trip(&mut d, b"d").await, b"d");
    p.cut_all(Cut::Blackhole);
    d.write_all(b"x").await.unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 1];
    assert!(timeout(Duration::from_millis(400), d.read(&mut buf))
        .await
        .is_err());
    let st = p.stats();
    assert_eq!((st.resets, st.fins, st.blackholed), (2, 1, 1));
}

/// An upstream HTTP server: answers every request head with `answer`, keeps the heads it
/// got, and counts connections.
async fn http_upstream(answer: &'static [u8]) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h2 = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let heads = h2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..i + 4).collect();
                        heads
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(String::from_utf8_lossy(&head).into_owned());
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, heads)
}

const UPGRADE: &[u8] = b"GET /tether/ws?v=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const PLAIN: &[u8] = b"GET /tether/sse?v=1 HTTP/1.1\r\nHost: h\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

async fn request(p: &FaultProxy, req: &[u8]) -> String {
    let mut s = connect(p).await;
    s.write_all(req).await.unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = timeout(Duration::from_millis(500), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn refuse_upgrade_answers_for_the_server_which_never_sees_it() {
    for status in [403u16, 400] {
        let (up, heads) = http_upstream(OK).await;
        let p = proxy(up, Script::new().refuse_upgrade(status)).await;
        let answer = request(&p, UPGRADE).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(!answer.to_ascii_lowercase().contains("tether-error"));
        assert!(heads.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
        // Other requests pass.
        assert!(request(&p, PLAIN).await.ends_with("ok"));
        assert_eq!(heads.lock().unwrap_or_else(|e| e.into_inner()).len(), 1);
        let st = p.stats();
        assert_eq!(st.upgrades_refused, 1);
        let kinds: Vec<String> = p
            .events()
            .into_iter()
            .filter(|e| e.conn == 1)
            .map(|e| match e.kind {
                EventKind::Request {
                    target, upgrade, ..
                } => format!("request {target} {upgrade}"),
                EventKind::Fired { fault, detail } => format!("{fault} {detail}"),
                EventKind::Response { status } => format!("response {status}"),
                other => other.name().to_owned(),
            })
            .collect();
        assert_eq!(
            kinds[..4],
            [
                "accepted".to_owned(),
                "request /tether/ws?v=1 true".to_owned(),
                format!("refuse_upgrade {status}"),
                format!("response {status}"),
            ]
        );
    }
}

#[tokio::test]
async fn strip_upgrade_forwards_a_plain_get() {
    let (up, heads) = http_upstream(
        b"HTTP/1.1 426 Upgrade Required\r\ntether-error: upgrade_required\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let p = proxy(up, Script::new().strip_upgrade()).await;
    let answer = request(&p, UPGRADE).await;
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    let got = heads.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(got.len(), 1);
    let lower = got[0].to_ascii_lowercase();
    assert!(
        lower.starts_with("get /tether/ws?v=1 http/1.1\r\n"),
        "{lower}"
    );
    assert!(
        !lower.contains("\r\nupgrade:") && !lower.contains("\r\nconnection:"),
        "{lower}"
    );
    assert!(lower.contains("sec-websocket-key"), "the rest is kept");
    assert_eq!(p.stats().upgrades_stripped, 1);
}

/// An upstream that writes `pieces`, `gap` apart, to each connection, then stays open.
async fn slow_writer(pieces: Vec<&'static [u8]>, gap: Duration, close: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let pieces = pieces.clone();
            tokio::spawn(async move {
                for p in pieces {
                    if s.write_all(p).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(gap).await;
                }
                if close {
                    return;
                }
                let mut sink = [0u8; 64];
                while matches!(s.read(&mut sink).await, Ok(k) if k > 0) {}
            });
        }
    });
    addr
}

/// When each byte group arrived, relative to the first read.
async fn arrivals(s: &mut TcpStream, within: Duration) -> Vec<(Duration, Vec<u8>)> {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    let _ = timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(k) => out.push((t.elapsed(), buf[..k].to_vec())),
            }
        }
    })
    .await;
    out
}

#[tokio::test]
async fn buffer_holds_each_response_until_it_ends() {
    let gap = Duration::from_millis(150);
    // A long-poll answer in three pieces, then a chunked one in two, on one connection.
    let up = slow_writer(
        vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
            b"[1,2,",
            b"3,4]",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
            b"0\r\n\r\n",
        ],
        gap,
        false,
    )
    .await;
    let p = proxy(up, Script::new().buffer()).await;
    let mut s = connect(&p).await;
    s.write_all(PLAIN).await.unwrap_or_else(|e| panic!("{e}"));
    let got = arrivals(&mut s, Duration::from_millis(1_200)).await;
    let whole: Vec<u8> = got.iter().flat_map(|g| g.1.clone()).collect();
    assert!(whole.ends_with(b"0\r\n\r\n"), "{got:?}");
    assert_eq!(got.len(), 2, "two responses, each in one piece: {got:?}");
    assert!(got[0].1.ends_with(b"3,4]") && got[0].1.starts_with(b"HTTP/1.1 200"));
    assert!(
        got[1].0 >= gap,
        "the second answer waited for its last chunk"
    );
    assert_eq!(p.stats().responses_buffered, 2);
}

#[tokio::test]
async fn buffer_holds_a_stream_until_the_server_closes_and_passes_websockets() {
    let gap = Duration::from_millis(100);
    let sse = slow_writer(
        vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n",
            b"data: {\"type\":\"hello\"}\n\n",
            b": ping\n\n",
        ],
        gap,
        true,
    )
    .await;
    let p = proxy(sse, Script::new().buffer()).await;
    let mut s = connect(&p).await;
    s.write_all(PLAIN).await.unwrap_or_else(|e| panic!("{e}"));
    let got = arrivals(&mut s, Duration::from_secs(2)).await;
    assert_eq!(
        got.len(),
        1,
        "nothing, headers included, until the end: {got:?}"
    );
    assert!(got[0].0 >= gap * 2);
    // A 101 passes, and so does everything after it, as it comes.
    let ws = slow_writer(
        vec![
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
            b"\x81\x02hi",
            b"\x81\x02yo",
        ],
        gap,
        false,
    )
    .await;
    let p = proxy(ws, Script::new().buffer()).await;
    let mut s = connect(&p).await;
    s.write_all(UPGRADE).await.unwrap_or_else(|e| panic!("{e}"));
    let got = arrivals(&mut s, Duration::from_millis(600)).await;
    assert_eq!(got.len(), 3, "{got:?}");
}

#[tokio::test]
async fn a_dead_upstream_is_a_reset_after_the_request_is_logged() {
    // A port nothing listens on.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    let p = proxy(dead, Script::new()).await;
    let mut s = connect(&p).await;
    s.write_all(UPGRADE).await.unwrap_or_else(|e| panic!("{e}"));
    let (_, err) = read_to_end_or_error(&mut s, Duration::from_secs(3)).await;
    assert!(err, "refused shows as a reset");
    assert_eq!(p.stats().upstream_refused, 1);
    let kinds: Vec<&'static str> = p.events().iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["accepted", "request", "upstream_refused"]);
}

#[tokio::test]
async fn events_follow_requests_and_answers_on_a_kept_alive_connection() {
    let (up, _) = http_upstream(OK).await;
    let p = proxy(up, Script::new()).await;
    let mut s = connect(&p).await;
    for req in [
        &b"GET /tether/poll?hello=1 HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        &b"POST /tether/send HTTP/1.1\r\nContent-Length: 4\r\n\r\n[{}]"[..],
        &b"GET /tether/poll HTTP/1.1\r\nHost: h\r\n\r\n"[..],
    ] {
        s.write_all(req).await.unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < OK.len() {
            got += timeout(Duration::from_secs(2), s.read(&mut buf[got..]))
                .await
                .unwrap_or_else(|_| panic!("no answer"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    drop(s);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen: Vec<String> = p
        .events()
        .into_iter()
        .map(|e| match e.kind {
            EventKind::Request { method, target, .. } => format!("{method} {target}"),
            EventKind::Response { status } => status.to_string(),
            other => other.name().to_owned(),
        })
        .collect();
    assert_eq!(
        seen,
        [
            "accepted",
            "GET /tether/poll?hello=1",
            "200",
            "POST /tether/send",
            "200",
            "GET /tether/poll",
            "200",
            "client_closed"
        ]
    );
}

/// A blackhole fired by a byte trigger is logged and counted like every other cut, also
/// when it falls in a first write that arrived with the connection. Before the fix the
/// writer that hit the trigger set the connection blackholed itself (so that not one more
/// byte passed), and the controller, finding it set already, neither logged `fired` nor
/// counted it: the cut happened, invisibly, and a test asking whether its fault fired got
/// "never".
#[tokio::test]
async fn a_blackhole_by_bytes_is_logged_and_counted_even_in_a_first_write() {
    for (script, what) in [
        (
            Script::new().blackhole(Trigger::after_bytes(20, Direction::Up)),
            "plain",
        ),
        (
            // An HTTP-aware fault makes the proxy read the first request head itself.
            Script::new()
                .blackhole(Trigger::after_bytes(20, Direction::Up))
                .strip_upgrade(),
            "first request read",
        ),
    ] {
        let p = proxy(echo_server().await, script).await;
        for _ in 0..5 {
            let mut s = connect(&p).await;
            let req = b"GET /tether/sse?v=1&channels=a HTTP/1.1\r\nHost: x\r\n\r\n";
            s.write_all(req).await.unwrap_or_else(|e| panic!("{e}"));
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while let Ok(Ok(n)) = timeout(Duration::from_millis(300), s.read(&mut buf)).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(
                got.len() <= 20,
                "{what}: {} bytes passed a blackhole at 20",
                got.len()
            );
        }
        let f = fired(&p);
        assert_eq!(f.len(), 5, "{what}: {f:?}");
        assert!(f.iter().all(|(k, _)| k == "blackhole"), "{what}: {f:?}");
        assert_eq!(p.stats().blackholed, 5, "{what}");
    }
}
