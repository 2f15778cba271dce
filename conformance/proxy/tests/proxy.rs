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
