//! soak: tether clients under churn for a given time, watching their memory and descriptors.
//!
//! ```text
//! cargo run --release -p tether-examples --bin soak -- --duration 600 [--clients 24]
//!     [--kill-every-ms 3000] [--publish-every-ms 200] [--sample-every 10] [--store file|memory]
//! ```
//!
//! The reference server runs in a child process (so the figures below are the clients' own);
//! every `--kill-every-ms` it kills every connection, alternately dropping them (TCP closed
//! with no close frame, as a crash or a NAT would) and closing them with 1001 (a restart).
//! Clients are spread over the three transports (WebSocket, SSE, long-poll), each subscribed
//! to one shared channel and publishing to it at a steady rate through its outbox
//! (a `FileStore` per client by default), so every kill interrupts traffic both ways.
//!
//! Every `--sample-every` seconds, just before a kill (when the clients have had the whole
//! interval to reconnect), it prints the client process's RSS and open descriptors, the
//! server's, and the traffic counters. At the end it fits a least-squares line to the
//! client's RSS and descriptor counts over the second half of the run and says GROWTH or
//! STABLE with the numbers; the exit status is 1 on GROWTH. The server's trend is printed
//! for reference (its dedupe keys and replay rings fill by design for the first minutes).

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether::store::file::FileStore;
use tether::{Client, Event, State, TransportKind};
use tether_examples::args;
use tether_server::{Server, ServerConfig};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A fitted change over the second half above this many KiB of client RSS is growth
/// (or 2% of the mean RSS, whichever is larger).
const RSS_LIMIT_KIB: f64 = 1024.0;
/// A fitted change over the second half above this many descriptors is growth.
const FD_LIMIT: f64 = 2.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

/// Traffic counters shared by the clients' tasks.
#[derive(Default)]
struct Counters {
    published: AtomicU64,
    publish_refused: AtomicU64,
    acked: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    resets: AtomicU64,
    reconnects: AtomicU64,
    /// Per receiving transport (ladder order): messages skipped and received twice, judged
    /// by each publisher's counter (one publisher's messages arrive in order, OUTBOX-3).
    gaps: [AtomicU64; 3],
    duplicates: [AtomicU64; 3],
    /// Per receiving transport: deliveries whose `seq` was not one more than the last one
    /// delivered on the channel, with no reset between (ORDER-1).
    seq_jumps: [AtomicU64; 3],
}

impl Counters {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
struct Sample {
    t: f64,
    rss_kib: f64,
    fds: f64,
    server_rss_kib: f64,
    server_fds: f64,
}

async fn run() -> Res<bool> {
    let a = args();
    if a.contains_key("serve") {
        serve().await?;
        return Ok(true);
    }
    let num = |k: &str, d: u64| a.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let duration = Duration::from_secs(num("duration", 60));
    let clients_n = num("clients", 24) as usize;
    let kill_every = Duration::from_millis(num("kill-every-ms", 3000).max(100));
    let publish_every = Duration::from_millis(num("publish-every-ms", 200).max(1));
    let sample_every = Duration::from_secs(num("sample-every", 10).max(1));
    let file_store = a.get("store").is_none_or(|s| s != "memory");
    if cfg!(debug_assertions) {
        println!("note: debug build; run with --release for meaningful figures");
    }

    let (mut server, port, mut control) = spawn_server()?;
    let endpoint = format!("http://127.0.0.1:{port}/tether");
    let root = std::env::temp_dir().join(format!("tether-soak-{}", std::process::id()));
    let counters = Arc::new(Counters::default());
    let mut clients = Vec::with_capacity(clients_n);
    let mut readers = Vec::new();
    let mut publishers = Vec::new();
    for i in 0..clients_n {
        let transport = TransportKind::LADDER[i % TransportKind::LADDER.len()];
        let mut builder = Client::builder(endpoint.clone())
            .transports(&[transport])
            .seed(i as u64 + 1);
        if file_store {
            builder = builder.store(FileStore::open(root.join(i.to_string()))?);
        }
        let client = builder.build()?;
        let mut events = client.events();
        client.subscribe("soak").await?;
        client.connect()?;
        let c = counters.clone();
        let rung = i % TransportKind::LADDER.len();
        readers.push(tokio::spawn(async move {
            // The next `n` expected from each publisher.
            let mut next = vec![0u64; clients_n];
            let mut last_seq: Option<u64> = None;
            while let Some(ev) = events.recv().await {
                match ev.event {
                    Event::Message { data, seq, .. } => {
                        Counters::add(&c.received);
                        if last_seq.is_some_and(|l| seq != l + 1) {
                            Counters::add(&c.seq_jumps[rung]);
                        }
                        last_seq = Some(seq);
                        let from = data["from"].as_u64().unwrap_or(0) as usize;
                        let n = data["n"].as_u64().unwrap_or(0);
                        if let Some(want) = next.get_mut(from) {
                            if n < *want {
                                Counters::add(&c.duplicates[rung]);
                            } else {
                                c.gaps[rung].fetch_add(n - *want, Ordering::Relaxed);
                                *want = n + 1;
                            }
                        }
                    }
                    Event::Reset { .. } => {
                        last_seq = None;
                        Counters::add(&c.resets)
                    }
                    Event::StateChanged {
                        to: State::Reconnecting { .. },
                        ..
                    } => Counters::add(&c.reconnects),
                    _ => {}
                }
            }
        }));
        clients.push(client);
    }

    // Publish only once every client is up, so every publish is due to every client.
    let up_by = Instant::now() + Duration::from_secs(30);
    for client in &clients {
        let mut state = client.state_watch();
        let left = up_by.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, state.wait_for(State::is_up))
            .await
            .map_err(|_| "clients did not connect within 30 s")??;
    }
    for (i, client) in clients.iter().enumerate() {
        let (publisher, c) = (client.clone(), counters.clone());
        publishers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(publish_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 0u64.. {
                tick.tick().await;
                match publisher.publish("soak", json!({"from": i, "n": n})).await {
                    Ok(handle) => {
                        Counters::add(&c.published);
                        let c = c.clone();
                        tokio::spawn(async move {
                            match handle.await {
                                Ok(_) => Counters::add(&c.acked),
                                Err(_) => Counters::add(&c.dropped),
                            }
                        });
                    }
                    Err(_) => Counters::add(&c.publish_refused),
                }
            }
        }));
    }

    println!(
        "soak: {clients_n} clients ({} store) over WebSocket, SSE and long-poll, one publish each every {} ms;",
        if file_store { "file" } else { "memory" },
        publish_every.as_millis()
    );
    println!(
        "server in process {} kills every connection every {} ms (alternately dropped and closed 1001); {} s",
        server.id(),
        kill_every.as_millis(),
        duration.as_secs()
    );
    println!();
    println!(
        "{:>7} | {:>10} {:>5} | {:>10} {:>5} | {:>5} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10} {:>6}",
        "t (s)",
        "client RSS",
        "fds",
        "server RSS",
        "fds",
        "up",
        "reconnect",
        "published",
        "acked",
        "dropped",
        "pending",
        "received",
        "resets"
    );
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut kills = 0u64;
    loop {
        let due = kill_every * (kills as u32 + 1);
        if due > duration {
            break;
        }
        tokio::time::sleep_until((started + due).into()).await;
        let t = started.elapsed();
        if t >= next_sample {
            let s = sample(t, server.id())?;
            let up = clients.iter().filter(|c| c.state().is_up()).count();
            let g = |x: &AtomicU64| Counters::get(x);
            let pending =
                g(&counters.published).saturating_sub(g(&counters.acked) + g(&counters.dropped));
            println!(
                "{:>7.1} | {:>6.1} MiB {:>5} | {:>6.1} MiB {:>5} | {:>2}/{:<2} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10} {:>6}",
                s.t,
                s.rss_kib / 1024.0,
                s.fds,
                s.server_rss_kib / 1024.0,
                s.server_fds,
                up,
                clients_n,
                g(&counters.reconnects),
                g(&counters.published),
                g(&counters.acked),
                g(&counters.dropped),
                pending,
                g(&counters.received),
                g(&counters.resets),
            );
            samples.push(s);
            next_sample += sample_every;
        }
        let mode = if kills & 1 == 0 { "drop" } else { "close" };
        writeln!(control, "{mode}")?;
        control.flush()?;
        kills += 1;
    }

    // Settle: no more publishes or kills; wait until every publish has its outcome and
    // every acknowledged one has reached every client (or 20 s pass).
    for t in &publishers {
        t.abort();
    }
    let expected = || Counters::get(&counters.acked) * clients_n as u64;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(20) {
        let g = |x: &AtomicU64| Counters::get(x);
        let pending =
            g(&counters.published).saturating_sub(g(&counters.acked) + g(&counters.dropped));
        if pending == 0 && g(&counters.received) >= expected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in &clients {
        let _ = c.close().await;
    }
    for t in &readers {
        t.abort();
    }
    drop(control);
    let _ = server.wait();
    if file_store {
        let _ = std::fs::remove_dir_all(&root);
    }
    println!();
    println!(
        "{kills} kills; {} publishes acknowledged, {} dropped, {} refused; {} messages received, {} resets, {} reconnects",
        Counters::get(&counters.acked),
        Counters::get(&counters.dropped),
        Counters::get(&counters.publish_refused),
        Counters::get(&counters.received),
        Counters::get(&counters.resets),
        Counters::get(&counters.reconnects),
    );
    // Every acknowledged publish goes to every client (all subscribe to the channel),
    // exactly once unless a reset said history was lost (ADR-4).
    for (rung, t) in TransportKind::LADDER.iter().enumerate() {
        println!(
            "  received over {t}: {} skipped, {} twice, {} seq jumps",
            Counters::get(&counters.gaps[rung]),
            Counters::get(&counters.duplicates[rung]),
            Counters::get(&counters.seq_jumps[rung])
        );
    }
    let (expected, received) = (expected(), Counters::get(&counters.received));
    let exact = received == expected || Counters::get(&counters.resets) > 0;
    println!(
        "deliveries: {received} of {expected} expected (every acknowledged publish to every client): {}",
        if received == expected { "exact" } else if exact { "differs, after resets" } else { "MISMATCH" }
    );
    Ok(judge(&samples) && exact)
}

/// The trend of the second half: GROWTH or STABLE for the client, the server's for reference.
fn judge(samples: &[Sample]) -> bool {
    if samples.len() < 4 {
        println!(
            "verdict: too few samples ({}) to judge; run longer",
            samples.len()
        );
        return true;
    }
    let at = |i: usize| samples[i.min(samples.len() - 1)];
    let (first, mid, last) = (at(0), at(samples.len() / 2), at(samples.len() - 1));
    println!(
        "client RSS start/middle/end: {:.1} / {:.1} / {:.1} MiB; fds {} / {} / {}",
        first.rss_kib / 1024.0,
        mid.rss_kib / 1024.0,
        last.rss_kib / 1024.0,
        first.fds,
        mid.fds,
        last.fds
    );
    println!(
        "server RSS start/middle/end: {:.1} / {:.1} / {:.1} MiB; fds {} / {} / {}",
        first.server_rss_kib / 1024.0,
        mid.server_rss_kib / 1024.0,
        last.server_rss_kib / 1024.0,
        first.server_fds,
        mid.server_fds,
        last.server_fds
    );
    let half = &samples[samples.len() / 2..];
    let span = half[half.len() - 1].t - half[0].t;
    println!(
        "second half: t = {:.0}..{:.0} s, {} samples, least-squares fit:",
        half[0].t,
        half[half.len() - 1].t,
        half.len()
    );
    let series =
        |f: fn(&Sample) -> f64| -> Vec<(f64, f64)> { half.iter().map(|s| (s.t, f(s))).collect() };
    let mut stable = true;
    let mut line = |who: &str,
                    what: &str,
                    unit: &str,
                    points: Vec<(f64, f64)>,
                    limit: Option<f64>| {
        let fit = Fit::of(&points);
        let change = fit.slope * span;
        let verdict = match limit {
            Some(l) if change > l => {
                if who == "client" {
                    stable = false;
                }
                format!("GROWTH (limit {l:.0} {unit})")
            }
            Some(l) => format!("STABLE (limit {l:.0} {unit})"),
            None => String::new(),
        };
        println!(
            "  {who} {what}: mean {:.1} {unit}, slope {:+.2} {unit}/min, fitted change {:+.1} {unit} (residual sd {:.1}) {verdict}",
            fit.mean,
            fit.slope * 60.0,
            change,
            fit.sd
        );
    };
    let rss_mean = Fit::of(&series(|s| s.rss_kib)).mean;
    line(
        "client",
        "RSS",
        "KiB",
        series(|s| s.rss_kib),
        Some(RSS_LIMIT_KIB.max(rss_mean * 0.02)),
    );
    line("client", "fds", "fds", series(|s| s.fds), Some(FD_LIMIT));
    // The server's figures are for reference: its dedupe keys (OUTBOX-5, 10 minutes) and
    // replay rings fill by design during the first minutes.
    line("server", "RSS", "KiB", series(|s| s.server_rss_kib), None);
    line("server", "fds", "fds", series(|s| s.server_fds), None);
    println!(
        "verdict: {} (clients)",
        if stable { "STABLE" } else { "GROWTH" }
    );
    stable
}

/// A least-squares line through points `(t, y)`.
struct Fit {
    slope: f64,
    mean: f64,
    sd: f64,
}

impl Fit {
    fn of(points: &[(f64, f64)]) -> Fit {
        let n = points.len().max(1) as f64;
        let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mt).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let ss: f64 = points
            .iter()
            .map(|p| (p.1 - (my + slope * (p.0 - mt))).powi(2))
            .sum();
        Fit {
            slope,
            mean: my,
            sd: (ss / n).sqrt(),
        }
    }
}

/// VmRSS in KiB and open descriptors of process `pid` ("self" for this one).
fn proc_figures(pid: &str) -> Res<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    // Reading our own fd directory holds one descriptor open for the listing itself.
    let own = usize::from(pid == "self");
    Ok((rss, (fds - own) as f64))
}

fn sample(t: Duration, server_pid: u32) -> Res<Sample> {
    let (rss_kib, fds) = proc_figures("self")?;
    let (server_rss_kib, server_fds) = proc_figures(&server_pid.to_string())?;
    Ok(Sample {
        t: t.as_secs_f64(),
        rss_kib,
        fds,
        server_rss_kib,
        server_fds,
    })
}

/// Child mode: the reference server on a free port; `drop` and `close` lines on stdin kill
/// every connection; end of input ends it.
async fn serve() -> Res<()> {
    let server = Server::start(ServerConfig::default()).await?;
    println!("PORT {}", server.addr().port());
    std::io::stdout().flush()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(cmd) = rx.recv().await {
        match cmd.trim() {
            "drop" => server.restart(false),
            "close" => {
                server.close_all(1001, "soak");
            }
            _ => {}
        }
    }
    server.shutdown().await;
    Ok(())
}

fn spawn_server() -> Res<(Child, u16, ChildStdin)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .ok_or("server child did not print its port")?;
    let control = child.stdin.take().ok_or("no stdin")?;
    Ok((child, port, control))
}
