//! `tether-conformance storm-bench`: the reconnect storm measured with real clients. A reference server (a child process) with admission control, N clients in this process, the server killed, kept down, restarted on the same port, and every handshake attempt recorded on the server's clock; Tether's default policy and, side by side in the same run, peers' default schedules, each row beside the storm calculator's prediction.
//!
//! Per policy: a first server instance (admitting without limit, so the fleet fills fast)
//! takes N connections; it is killed (SIGKILL: every socket reset at once); after `down`
//! a second instance binds the same port with admission control (`admission` handshakes/s,
//! `burst` tokens) and records every `GET …/ws` with its arrival time and status. The run
//! of a policy ends when every client is back, when the rest have given up (SignalR's
//! schedule ends), or at `timeout`.
//!
//! The Tether rows use the native client with its defaults (WebSocket only). The peer rows
//! use this program's own minimal clients: a handshake by hand, then the peer's schedule
//! after each disconnect or refusal (socket.io-client, SignalR, phoenix.js, fixed 1 s;
//! [`Peer`]), so no peer policy is ever an option of the SDK.

use crate::bench::{ws_handshake, Hs};
use crate::storm::{self, sliding_peak, Peer, StormParams};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tether_engine::rng::Rng;
use tokio::io::AsyncReadExt;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct StormBenchOpts {
    pub clients: usize,
    pub admission: f64,
    pub burst: f64,
    pub down: Duration,
    pub timeout: Duration,
    /// `tether` and peer names (`socketio`, `signalr`, `phoenix`, `fixed1s`).
    pub policies: Vec<String>,
}

impl Default for StormBenchOpts {
    fn default() -> Self {
        StormBenchOpts {
            clients: 10_000,
            admission: 1_000.0,
            burst: 100.0,
            down: Duration::from_secs(3),
            timeout: Duration::from_secs(60),
            policies: ["tether", "socketio", "signalr", "phoenix", "fixed1s"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// The server's smallest retry-after hint (its default `admission_retry_after`).
const RETRY_AFTER_MS: f64 = 1_000.0;

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Raise the open-file limit to its hard limit (N client sockets here, N in the server child).
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        lim.rlim_cur
    }
}

/// Child mode (`__storm-server --port P [--admission R --burst B]`): the reference server on
/// `127.0.0.1:P`; prints `PORT p UP us` once bound; when stdin closes, prints one
/// `ATTEMPT us status` line per WebSocket handshake request, then `END`, and exits.
pub async fn serve(args: &[String]) -> Result<(), String> {
    raise_fd_limit();
    let mut port = 0u16;
    let mut admission = None;
    let mut burst = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a}: no value"))?;
        match a.as_str() {
            "--port" => port = v.parse().map_err(|_| "--port")?,
            "--admission" => admission = Some(v.parse::<f64>().map_err(|_| "--admission")?),
            "--burst" => burst = Some(v.parse::<f64>().map_err(|_| "--burst")?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let cfg = tether_server::ServerConfig {
        admission_per_sec: admission,
        admission_burst: burst,
        admission_retry_after: Duration::from_secs_f64(RETRY_AFTER_MS / 1000.0),
        // Idle connections stay quiet for the whole run.
        heartbeat: Duration::from_secs(120),
        ..tether_server::ServerConfig::default()
    };
    let state = tether_server::ServerState::new(cfg).map_err(|e| e.to_string())?;
    let attempts: Arc<Mutex<Vec<(u64, u16)>>> = Arc::default();
    let record = attempts.clone();
    let app = tether_server::router(state).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let record = record.clone();
            async move {
                let ws = req.uri().path().ends_with("/ws");
                let at = unix_us();
                let resp = next.run(req).await;
                if ws {
                    if let Ok(mut v) = record.lock() {
                        v.push((at, resp.status().as_u16()));
                    }
                }
                resp
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!("PORT {} UP {}", bound.port(), unix_us());
    let _ = std::io::stdout().flush();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // Wait for stdin to close (the parent is done with this instance).
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let v = attempts.lock().map(|v| v.clone()).unwrap_or_default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (at, status) in v {
        let _ = writeln!(out, "ATTEMPT {at} {status}");
    }
    let _ = writeln!(out, "END");
    let _ = out.flush();
    std::process::exit(0);
}

/// A server child and what it printed when it came up.
struct Instance {
    child: Child,
    port: u16,
    up_us: u64,
}

fn spawn_server(port: u16, admission: Option<(f64, f64)>) -> Result<Instance, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["__storm-server", "--port", &port.to_string()]);
    if let Some((rate, burst)) = admission {
        cmd.args([
            "--admission",
            &rate.to_string(),
            "--burst",
            &burst.to_string(),
        ]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let out = child.stdout.as_mut().ok_or("no stdout")?;
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let mut w = line.split_whitespace();
    let (Some("PORT"), Some(p), Some("UP"), Some(up)) = (w.next(), w.next(), w.next(), w.next())
    else {
        let _ = child.kill();
        return Err(format!("server child said {line:?}"));
    };
    Ok(Instance {
        port: p.parse().map_err(|_| "port")?,
        up_us: up.parse().map_err(|_| "up")?,
        child,
    })
}

/// Close the instance's stdin and read its attempt records.
fn attempts_of(mut inst: Instance) -> Result<Vec<(u64, u16)>, String> {
    drop(inst.child.stdin.take());
    let out = inst.child.stdout.take().ok_or("no stdout")?;
    let mut v = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line == "END" {
            break;
        }
        let mut w = line.split_whitespace().skip(1);
        if let (Some(at), Some(st)) = (w.next(), w.next()) {
            v.push((at.parse().unwrap_or(0), st.parse().unwrap_or(0)));
        }
    }
    let _ = inst.child.wait();
    Ok(v)
}

/// Counters shared by the clients of one run.
#[derive(Default)]
struct Fleet {
    connected: AtomicU64,
    gave_up: AtomicU64,
}

/// One client with a peer's schedule: connect, hold, and after a disconnect or a refusal wait
/// the schedule's next delay. Ends when the schedule gives up or at `stop`.
async fn peer_client(addr: SocketAddr, peer: Peer, seed: u64, fleet: Arc<Fleet>) {
    let target = "/tether/ws?v=1&channels=storm";
    let mut rng = Rng::new(seed);
    let mut first = true;
    loop {
        // (Re)connect: the first connection at once, later ones after delay(n).
        let mut n = 0u32;
        if !first {
            let Some(d) = peer.delay_ms(n, &mut rng) else {
                fleet.gave_up.fetch_add(1, Ordering::Relaxed);
                return;
            };
            n += 1;
            tokio::time::sleep(Duration::from_secs_f64(d / 1000.0)).await;
        }
        let mut stream = loop {
            match ws_handshake(addr, target).await {
                Ok(Hs::Open(s)) => break s,
                _ => {
                    let Some(d) = peer.delay_ms(n, &mut rng) else {
                        fleet.gave_up.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    n += 1;
                    tokio::time::sleep(Duration::from_secs_f64(d / 1000.0)).await;
                }
            }
        };
        first = false;
        fleet.connected.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 512];
        while stream.read(&mut buf).await.is_ok_and(|k| k > 0) {}
        fleet.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Start `n` clients of `policy` against `port`; the handles and the shared counters.
async fn start_clients(
    policy: Option<Peer>,
    port: u16,
    n: usize,
    fleet: &Arc<Fleet>,
) -> Result<Vec<ClientHandle>, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        match policy {
            Some(peer) => {
                let f = fleet.clone();
                out.push(ClientHandle::Peer(tokio::spawn(peer_client(
                    addr,
                    peer,
                    i as u64 + 1,
                    f,
                ))));
            }
            None => {
                let client = tether::Client::builder(format!("http://{addr}/tether"))
                    .transports(&[tether::TransportKind::WebSocket])
                    .build()
                    .map_err(|e| e.to_string())?;
                client.subscribe("storm").await.map_err(|e| e.to_string())?;
                client.connect().map_err(|e| e.to_string())?;
                let f = fleet.clone();
                let mut watch = client.state_watch();
                let task = tokio::spawn(async move {
                    let mut up = false;
                    loop {
                        let now =
                            matches!(*watch.borrow_and_update(), tether::State::Connected { .. });
                        if now != up {
                            if now {
                                f.connected.fetch_add(1, Ordering::Relaxed);
                            } else {
                                f.connected.fetch_sub(1, Ordering::Relaxed);
                            }
                            up = now;
                        }
                        if watch.changed().await.is_err() {
                            return;
                        }
                    }
                });
                out.push(ClientHandle::Tether(client, task));
            }
        }
    }
    Ok(out)
}

enum ClientHandle {
    Tether(tether::Client, tokio::task::JoinHandle<()>),
    Peer(tokio::task::JoinHandle<()>),
}

/// Wait until `done` holds (checked every 20 ms) or `limit` passes; true if it held.
async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// One measured row and its prediction.
struct Row {
    name: String,
    measured: Figures,
    predicted: Figures,
    down_ms: f64,
}

/// peak / capacity per 100 ms, attempts / N, t99 / (N / capacity); gave-up clients.
struct Figures {
    peak_ratio: f64,
    attempts_ratio: f64,
    t99_ratio: Option<f64>,
    gave_up: u64,
}

async fn run_policy(o: &StormBenchOpts, policy: &str) -> Result<Row, String> {
    let peer = match policy {
        "tether" => None,
        "socketio" => Some(Peer::SocketIo),
        "signalr" => Some(Peer::SignalR),
        "phoenix" => Some(Peer::Phoenix),
        "fixed1s" => Some(Peer::Fixed1s),
        other => return Err(format!("unknown policy {other}")),
    };
    let name = peer.map_or("Tether (defaults)", Peer::name).to_owned();
    let n = o.clients;
    let first = spawn_server(0, None)?;
    let port = first.port;
    let fleet = Arc::new(Fleet::default());
    let clients = start_clients(peer, port, n, &fleet).await?;
    let filled = wait_until(Duration::from_secs(120), || {
        fleet.connected.load(Ordering::Relaxed) as usize >= n
    })
    .await;
    if !filled {
        return Err(format!(
            "{name}: only {} of {n} clients connected to the first instance",
            fleet.connected.load(Ordering::Relaxed)
        ));
    }
    let mut first = first;
    let killed_us = unix_us();
    let _ = first.child.kill();
    let _ = first.child.wait();
    tokio::time::sleep(o.down).await;
    let second = spawn_server(port, Some((o.admission, o.burst)))?;
    let up_us = second.up_us;
    let back = wait_until(o.timeout, || {
        let c = fleet.connected.load(Ordering::Relaxed) as usize;
        let g = fleet.gave_up.load(Ordering::Relaxed) as usize;
        c >= n || c + g >= n
    })
    .await;
    let gave_up = fleet.gave_up.load(Ordering::Relaxed);
    let records = attempts_of(second)?;
    for c in clients {
        match c {
            ClientHandle::Tether(client, task) => {
                task.abort();
                drop(client);
            }
            ClientHandle::Peer(task) => task.abort(),
        }
    }
    if !back {
        eprintln!(
            "    {name}: not every client was back within {:?}",
            o.timeout
        );
    }
    let capacity_100ms = o.admission * 0.1;
    let floor_s = n as f64 / o.admission;
    let mut times: Vec<u64> = records.iter().map(|(t, _)| *t).collect();
    times.sort_unstable();
    let mut ok: Vec<u64> = records
        .iter()
        .filter(|(_, s)| *s == 101)
        .map(|(t, _)| *t)
        .collect();
    ok.sort_unstable();
    let want = ((n as f64) * 0.99).ceil() as usize;
    let measured = Figures {
        peak_ratio: sliding_peak(&times, 100_000) as f64 / capacity_100ms,
        attempts_ratio: times.len() as f64 / n as f64,
        t99_ratio: (ok.len() >= want && want > 0)
            .then(|| ok[want - 1].saturating_sub(up_us) as f64 / 1e6 / floor_s),
        gave_up,
    };
    let down_ms = up_us.saturating_sub(killed_us) as f64 / 1000.0;
    let params = StormParams {
        clients: n as u64,
        accept_rate: o.admission,
        burst: Some(o.burst),
        down_ms,
        retry_after_ms: peer.is_none().then_some(RETRY_AFTER_MS),
        peer,
        ..StormParams::default()
    };
    let r = storm::simulate(&params);
    let predicted = Figures {
        peak_ratio: r.peak_per_s * 0.1 / capacity_100ms,
        attempts_ratio: r.attempts as f64 / n as f64,
        t99_ratio: r.p99_connected_ms.map(|ms| ms / 1000.0 / floor_s),
        gave_up: r.gave_up,
    };
    Ok(Row {
        name,
        measured,
        predicted,
        down_ms,
    })
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("never".into(), |x| format!("{x:.2}"))
}

/// Run every policy in turn and render the side-by-side table.
pub async fn run(o: &StormBenchOpts) -> Result<String, String> {
    let limit = raise_fd_limit();
    if (limit as usize) < o.clients + 256 {
        return Err(format!(
            "open-file limit {limit} is below {} clients + 256",
            o.clients
        ));
    }
    let started = Instant::now();
    let per_policy = o.down + o.timeout + Duration::from_secs(15);
    eprintln!(
        "storm-bench: {} clients, admission {}/s (burst {}), down {:?}; {} policies, each at most {:?} (about {:.0} s in all at worst)",
        o.clients,
        o.admission,
        o.burst,
        o.down,
        o.policies.len(),
        per_policy,
        per_policy.as_secs_f64() * o.policies.len() as f64
    );
    let mut rows = Vec::new();
    for p in &o.policies {
        let t = Instant::now();
        let row = run_policy(o, p).await?;
        eprintln!("    {}: {:.1} s", row.name, t.elapsed().as_secs_f64());
        rows.push(row);
    }
    let mut s = String::new();
    s.push_str(&format!(
        "Reconnect storm, measured: {} clients, server down {:.1} s (median of rows), admission {}/s with a burst of {}; attempts recorded by the restarted server.\n\n",
        o.clients,
        {
            let mut d: Vec<f64> = rows.iter().map(|r| r.down_ms).collect();
            d.sort_by(f64::total_cmp);
            d.get(d.len() / 2).copied().unwrap_or(0.0) / 1000.0
        },
        o.admission,
        o.burst
    ));
    s.push_str("| policy | peak attempts per 100 ms / capacity | attempts / N | time for 99% back / (N / capacity) | gave up |\n");
    s.push_str("|---|---|---|---|---|\n");
    for r in &rows {
        s.push_str(&format!(
            "| {} | {:.2} (predicted {:.2}) | {:.2} (predicted {:.2}) | {} (predicted {}) | {} (predicted {}) |\n",
            r.name,
            r.measured.peak_ratio,
            r.predicted.peak_ratio,
            r.measured.attempts_ratio,
            r.predicted.attempts_ratio,
            ratio(r.measured.t99_ratio),
            ratio(r.predicted.t99_ratio),
            r.measured.gave_up,
            r.predicted.gave_up,
        ));
    }
    s.push_str(&format!(
        "\nPredicted: the storm calculator (`tether-conformance storm`) with the same N, rate, burst and measured downtime; Tether honours the servers' retry-after hint (READY-1, {RETRY_AFTER_MS} ms at least), the peers' schedules do not. Total {:.0} s.\n",
        started.elapsed().as_secs_f64()
    ));
    Ok(s)
}
