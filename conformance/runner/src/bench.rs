//! `tether-conformance server-bench`: the server half measured on this machine, one instance as a separate process, with the load generator in the same run: idle connections held and RSS per connection, sustained handshakes/s under admission control (and uncapped), and Redis round trips per published message. Prints each figure beside the ADR-3 worked example.

use crate::cluster::http;
use crate::cluster::instance::Instance;
use crate::cluster::redis::{self, RedisProc};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOpts {
    pub connections: usize,
    pub seconds: f64,
    pub admission: f64,
    pub workers: usize,
    pub messages: usize,
    pub subscribers: usize,
}

impl Default for BenchOpts {
    fn default() -> Self {
        BenchOpts {
            connections: 10_000,
            seconds: 3.0,
            admission: 1_000.0,
            workers: 64,
            messages: 1_000,
            subscribers: 1_000,
        }
    }
}

/// The worked example of the issue: one instance draining 100,000 connections over 60 s
/// sends about 1,700 handshakes/s to the rest of the fleet.
const WORKED_EXAMPLE: f64 = 100_000.0 / 60.0;

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[allow(deprecated)]
fn no_time_wait(s: &TcpStream) {
    // RST on close: a handshake storm does not leave thousands of ports in TIME_WAIT.
    let _ = s.set_linger(Some(Duration::ZERO));
}

/// How a raw WebSocket handshake ended.
pub(crate) enum Hs {
    /// 101 and the hello frame arrived.
    Open(TcpStream),
    /// Refused (any other status).
    Refused,
}

/// A WebSocket handshake by hand (no client stack per connection): request, 101, hello.
pub(crate) async fn ws_handshake(addr: SocketAddr, target: &str) -> std::io::Result<Hs> {
    let mut s = TcpStream::connect(addr).await?;
    no_time_wait(&s);
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed during the handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let status: u16 = std::str::from_utf8(&buf[..end])
            .ok()
            .and_then(|h| h.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if status != 101 {
            return Ok(Hs::Refused);
        }
        if buf[end + 4..].windows(7).any(|w| w == b"\"hello\"") {
            return Ok(Hs::Open(s));
        }
    }
}

async fn start_instance(args: &[&str]) -> Result<Instance, String> {
    let program = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut a: Vec<String> = vec!["__server".into(), "--listen".into(), "127.0.0.1:0".into()];
    a.extend(args.iter().map(|s| s.to_string()));
    let inst = Instance::spawn(0, &program, &a).await?;
    for _ in 0..500 {
        if http::call(
            inst.addr,
            "GET",
            "/tether/ready",
            None,
            None,
            Duration::from_millis(300),
        )
        .await
        .is_ok_and(|r| r.status == 200)
        {
            return Ok(inst);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the instance never became ready".into())
}

/// Hold `n` idle WebSocket connections on one instance; RSS before and after.
async fn idle(out: &mut String, store_args: &[&str], label: &str, n: usize) -> Result<(), String> {
    let inst = start_instance(store_args).await?;
    let pid = inst.pid().ok_or("no pid")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid).ok_or("no RSS")?;
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(n);
    let mut failed = 0;
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let sem = sem.clone();
        let addr = inst.addr;
        tasks.spawn(async move {
            let _p = sem.acquire_owned().await;
            ws_handshake(addr, &format!("/tether/ws?v=1&channels=idle{}", i % 100)).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(Hs::Open(s))) => held.push(s),
            _ => failed += 1,
        }
    }
    let opened_in = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid).ok_or("no RSS")?;
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / held.len().max(1) as f64;
    out.push_str(&format!(
        "idle connections ({label}): {} held ({failed} failed), opened in {:.1} s; server RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per connection\n",
        held.len(),
        opened_in.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per / 1024.0
    ));
    drop(held);
    let mut inst = inst;
    inst.kill9().await;
    Ok(())
}

/// Handshakes as fast as `workers` loops can go for `seconds`: accepted and refused per second.
async fn storm(addr: SocketAddr, workers: usize, seconds: f64) -> (f64, f64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (ok, refused, errors) = (ok.clone(), refused.clone(), errors.clone());
        tasks.spawn(async move {
            let target = format!("/tether/ws?v=1&channels=s{}", w % 16);
            while Instant::now() < deadline {
                match ws_handshake(addr, &target).await {
                    Ok(Hs::Open(_)) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(Hs::Refused) => refused.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    (
        ok.load(Ordering::Relaxed) as f64 / seconds,
        refused.load(Ordering::Relaxed) as f64 / seconds,
        errors.load(Ordering::Relaxed),
    )
}

async fn handshakes(
    out: &mut String,
    store_args: &[&str],
    label: &str,
    o: &BenchOpts,
) -> Result<f64, String> {
    let inst = start_instance(store_args).await?;
    let (cap, _, e1) = storm(inst.addr, o.workers, o.seconds).await;
    let mut inst = inst;
    inst.kill9().await;
    let rate = o.admission.to_string();
    let burst = (o.admission / 20.0).max(1.0).to_string();
    let mut args: Vec<&str> = store_args.to_vec();
    args.extend(["--admission-per-sec", &rate, "--admission-burst", &burst]);
    let inst = start_instance(&args).await?;
    let (ok, refused, e2) = storm(inst.addr, o.workers, o.seconds).await;
    let mut inst = inst;
    inst.kill9().await;
    out.push_str(&format!(
        "handshakes/s ({label}, WebSocket upgrade + hello + subscribed, {} concurrent clients on the same 2 cores):\n  uncapped: {cap:.0}/s accepted ({e1} errors)\n  admission {:.0}/s: {ok:.0}/s accepted, {refused:.0}/s refused with 503 retry_later ({e2} errors)\n  vs the worked example (100,000 connections drained over 60 s = {WORKED_EXAMPLE:.0}/s): {:.2}x, so {} instance(s) absorb it\n",
        o.workers,
        o.admission,
        cap / WORKED_EXAMPLE,
        (WORKED_EXAMPLE / cap.max(1.0)).ceil()
    ));
    Ok(cap)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn redis_info(port: u16, section: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let cmd = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    if s.write_all(cmd.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.ends_with(b"\r\n\r\n") || out.len() > 8 && out.ends_with(b"\r\n") && n < 4096 {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

fn cmdstat_calls(info: &str, cmd: &str) -> u64 {
    info.lines()
        .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The marker of the last published message.
const LAST: &[u8] = b"\"last\":true";
/// Publishes per publish API request (each is still its own append: one script call).
const BATCH: usize = 50;

/// Two instances on Redis, `subscribers` WebSocket subscribers spread over them; publish
/// `messages` through instance 0's publish API; count round trips.
async fn round_trips(out: &mut String, o: &BenchOpts) -> Result<(), String> {
    let r = RedisProc::start().await?;
    let url = r.url();
    let args = [
        "--store",
        "redis",
        "--redis-url",
        &url,
        "--publish-keys",
        "bench-publish-key-0001",
    ];
    let a = start_instance(&args).await?;
    let b = start_instance(&args).await?;
    let done = Arc::new(AtomicU64::new(0));
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..o.subscribers {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        let Ok(Hs::Open(mut s)) = ws_handshake(addr, "/tether/ws?v=1&channels=rt").await else {
            return Err("a subscriber could not connect".into());
        };
        let done = done.clone();
        readers.spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut tail: Vec<u8> = Vec::new();
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.windows(LAST.len()).any(|w| w == LAST) {
                    done.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let keep = tail.len().saturating_sub(32);
                tail.drain(..keep);
            }
        });
    }
    let m = |addr| async move {
        http::call(addr, "GET", "/metrics", None, None, Duration::from_secs(2))
            .await
            .map(|r| metric(&r.body, "tether_store_redis_round_trips_total"))
            .unwrap_or(0)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a0, b0) = (m(a.addr).await, m(b.addr).await);
    let info0 = redis_info(r.port, "commandstats").await;
    let t0 = Instant::now();
    for start in (0..o.messages).step_by(BATCH) {
        let items: Vec<String> = (start..(start + BATCH).min(o.messages))
            .map(|i| {
                let last = i + 1 == o.messages;
                format!(r#"{{"channel":"rt","data":{{"i":{i},"last":{last}}}}}"#)
            })
            .collect();
        let body = format!("[{}]", items.join(","));
        let ans = http::call(
            a.addr,
            "POST",
            "/tether/publish",
            Some("bench-publish-key-0001"),
            Some(&body),
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| e.to_string())?;
        if ans.status != 200 {
            return Err(format!("publish: HTTP {}", ans.status));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while (done.load(Ordering::Relaxed) as usize) < o.subscribers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t0.elapsed();
    let (a1, b1) = (m(a.addr).await, m(b.addr).await);
    let info1 = redis_info(r.port, "commandstats").await;
    let delivered = done.load(Ordering::Relaxed);
    let per = ((a1 - a0) + (b1 - b0)) as f64 / o.messages as f64;
    let evals = (cmdstat_calls(&info1, "evalsha") + cmdstat_calls(&info1, "eval"))
        .saturating_sub(cmdstat_calls(&info0, "evalsha") + cmdstat_calls(&info0, "eval"));
    let xrange = cmdstat_calls(&info1, "xrange").saturating_sub(cmdstat_calls(&info0, "xrange"));
    out.push_str(&format!(
        "Redis round trips per published message (2 instances, {} subscribers, {} messages via the publish API): {per:.2} (instance 0: {}, instance 1: {}); Redis saw {evals} script calls and {xrange} XRANGE; all {delivered} subscribers got the last message in {:.1} s\n",
        o.subscribers,
        o.messages,
        a1 - a0,
        b1 - b0,
        elapsed.as_secs_f64()
    ));
    readers.abort_all();
    Ok(())
}

/// Run every measurement; the report.
pub async fn run(o: &BenchOpts) -> Result<String, String> {
    let mut out = String::new();
    out.push_str(&format!(
        "tether-server on this machine ({} cores), one instance as a separate process, load generator in the same run\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    idle(&mut out, &[], "memory store", o.connections).await?;
    let have_redis = redis::installed();
    let r = if have_redis {
        Some(RedisProc::start().await?)
    } else {
        None
    };
    let url = r.as_ref().map(|r| r.url()).unwrap_or_default();
    let redis_args = ["--store", "redis", "--redis-url", url.as_str()];
    if have_redis {
        idle(&mut out, &redis_args, "Redis store", o.connections).await?;
    }
    handshakes(&mut out, &[], "memory store", o).await?;
    if have_redis {
        handshakes(&mut out, &redis_args, "Redis store", o).await?;
        round_trips(&mut out, o).await?;
    } else {
        out.push_str("redis-server is not installed: the Redis figures are skipped\n");
    }
    Ok(out)
}
