//! bench: throughput and idle memory of the tether client against raw tokio-tungstenite, and
//! the engine's SSE parser against eventsource-stream. A normal program (not a timed test):
//!
//! ```text
//! cargo run --release -p tether-examples --bin bench -- [--messages 50000] [--rounds 5] [--conns 1000] [--appends 300]
//! ```
//!
//! (a) messages/s received over WebSocket, tether client vs raw tokio-tungstenite (parsing
//!     each frame as JSON, the least any client does), from one fixed-backlog server
//!     ([`blast`]) that costs the same for both; alternating rounds, medians;
//! (a') the same over SSE, tether client vs reqwest + eventsource-stream;
//! (b) idle memory per WebSocket connection: VmRSS delta over N idle connections, tether
//!     clients vs raw tokio-tungstenite with its default config, each measured in a fresh child
//!     process against a server in another child process (so only client memory counts);
//! (c) SSE parse throughput on the same bytes: the engine's parser vs eventsource-stream
//!     (used here only as a benchmark peer; the client never uses it);
//! (d) durable outbox appends, FileStore vs raw write + fdatasync of the same bytes.

mod blast;
mod fallback;
mod heap;
mod outbox;

use blast::Backlog;

use futures_util::StreamExt;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tether::{Client, Event, State, TransportKind};
use tether_examples::args;
use tether_server::{Server, ServerConfig};
use tokio_tungstenite::tungstenite::Message;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Res<()> {
    let a = args();
    let num = |k: &str, d: usize| a.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    raise_fd_limit();
    if a.contains_key("serve") {
        return serve().await;
    }
    if let Some(kind) = a.get("mem") {
        let port: u16 = a.get("port").and_then(|p| p.parse().ok()).ok_or("--port")?;
        return mem_child(kind, port, num("conns", 10_000)).await;
    }
    let messages = num("messages", 50_000);
    let conns = num("conns", 10_000);
    // reqwest (the raw SSE peer) shares the workspace's `rustls-no-provider` build.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if cfg!(debug_assertions) {
        println!("note: debug build; run with --release for meaningful figures");
    }
    let started = Instant::now();

    let rounds = num("rounds", 5);
    let big = num("big-messages", 5_000);
    println!(
        "(a) WebSocket receive throughput, {messages} messages of 32 B from a fixed-backlog server"
    );
    let ws_small = throughput(Wire::WebSocket, Backlog::small(messages), rounds).await?;
    println!("(a) WebSocket receive throughput, {big} messages of 16 KiB");
    let ws_big = throughput(
        Wire::WebSocket,
        Backlog {
            n: big,
            payload: 16 * 1024,
            channels: 1,
        },
        rounds,
    )
    .await?;
    let mut by_channels = Vec::new();
    for channels in [1usize, 10, 100] {
        println!("(a) WebSocket messages/s delivered to the app, {messages} messages over {channels} subscribed channel(s)");
        let b = Backlog {
            n: messages,
            payload: 32,
            channels,
        };
        by_channels.push((channels, throughput(Wire::WebSocket, b, rounds).await?));
    }
    if a.contains_key("throughput-only") {
        return Ok(());
    }
    println!("(a') SSE receive throughput, {messages} messages from a fixed-backlog server");
    let sse = throughput(Wire::Sse, Backlog::small(messages), rounds).await?;
    println!(
        "(a'') long-poll receive throughput, {messages} messages, {} per answer",
        blast::POLL_BATCH
    );
    let poll = throughput(Wire::LongPoll, Backlog::small(messages), rounds).await?;

    println!("(b) idle memory per WebSocket connection, {conns} connections");
    let (mut server, port) = spawn_server()?;
    let raw_kib = mem_in_child("raw", port, conns)?;
    let raw8k_kib = mem_in_child("raw8k", port, conns)?;
    let tether_kib = mem_in_child("tether", port, conns)?;
    let _ = server.kill();
    let _ = server.wait();

    println!("(c) SSE parse throughput");
    let (engine_mbs, es_mbs, mb) = sse_parse().await?;

    println!("(d) durable outbox appends (FileStore vs raw write + fdatasync)");
    let (store_rate, fsync_rate) = store_rates(num("appends", 300), rounds)?;

    println!("(P7) fallback latency: refused upgrade -> first message over SSE (20 in a row); stalled upgrade (20 at once, default open_timeout)");
    let (refused, stalled) = fallback::fallback_latency(20).await?;
    println!(
        "    refused: median {:.1} ms ({:.1}-{:.1}); stalled: median {:.0} ms ({:.0}-{:.0})",
        refused[0], refused[1], refused[2], stalled[0], stalled[1], stalled[2]
    );
    let queued = num("queued", 10_000);
    println!("(P8) outbox: {queued} publishes queued while the server is down, flushed after the reconnect");
    let (flush_s, records) = outbox::flush_after_reconnect(queued).await?;
    let overhead = outbox::file_store_overhead(&records[..records.len().min(1000)])?;
    println!(
        "    all acknowledged {:.0} ms after the reconnect; FileStore: {overhead:.1} bytes per queued publish beyond its data",
        flush_s * 1e3
    );

    println!();
    println!("| measure                                  | tether        | peer          | tether/peer |");
    println!("|------------------------------------------|---------------|---------------|-------------|");
    let row = |name: &str, (peer, tether): (f64, f64)| {
        println!(
            "| {name:<40} | {tether:>13.0} | {peer:>13.0} | {:>11.2} |",
            tether / peer
        );
    };
    row("(a) WS messages/s received, 32 B", ws_small);
    row("(a) WS messages/s received, 16 KiB", ws_big);
    for (channels, rates) in &by_channels {
        row(
            &format!("(a) WS messages/s to the app, {channels} ch."),
            *rates,
        );
    }
    row("(a') SSE messages/s received", sse);
    row("(a'') long-poll messages/s received", poll);
    println!(
        "| (b) idle RSS KiB per WS connection       | {:>13.1} | {:>13.1} | {:>11.2} |",
        tether_kib.0,
        raw_kib.0,
        tether_kib.0 / raw_kib.0
    );
    println!(
        "| (b') idle heap KiB per WS connection     | {:>13.1} | {:>13.1} | {:>11.2} |",
        tether_kib.1,
        raw_kib.1,
        tether_kib.1 / raw_kib.1
    );
    println!(
        "| (b') ... peer with an 8 KiB read buffer   | {:>13.1} | {:>13.1} | {:>11.2} |",
        tether_kib.1,
        raw8k_kib.1,
        tether_kib.1 / raw8k_kib.1
    );
    println!(
        "| (c) SSE parse MB/s ({mb:.0} MB)               | {:>13.1} | {:>13.1} | {:>11.2} |",
        engine_mbs,
        es_mbs,
        engine_mbs / es_mbs
    );
    println!(
        "| (d) durable outbox appends/s             | {:>13.0} | {:>13.0} | {:>11.2} |",
        store_rate,
        fsync_rate,
        store_rate / fsync_rate
    );
    println!(
        "| (P7) refused upgrade -> 1st SSE msg, ms   | {:>13.1} | goal    100.0 | {:>11.2} |",
        refused[0],
        refused[0] / 100.0
    );
    println!(
        "| (P7) stalled upgrade -> 1st SSE msg, ms   | {:>13.0} | open_timeout {:>0} | {:>11.2} |",
        stalled[0],
        "10 s",
        stalled[0] / 10_000.0
    );
    println!(
        "| (P8) flush {queued} queued publishes, ms   | {:>13.0} | goal   1000.0 | {:>11.2} |",
        flush_s * 1e3,
        flush_s
    );
    println!(
        "| (P8) FileStore bytes/publish beyond data | {:>13.1} | goal     64.0 | {:>11.2} |",
        overhead,
        overhead / 64.0
    );
    println!();
    println!("peers: (a) raw tokio-tungstenite + serde_json; (a') reqwest + eventsource-stream + serde_json;");
    println!("       (a'') a reqwest GET loop + serde_json of each answer, cursor from its last message;");
    println!("       (b) raw tokio-tungstenite, default WebSocketConfig (128 KiB read buffer), and with read_buffer_size 8 KiB;");
    println!("       (c) eventsource-stream 0.2; (d) the same bytes, write_all + sync_data each.");
    println!("Total {:.1} s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// Raise the open-file limit to its hard limit (10,000 idle connections need 10,000 sockets
/// in the client child and as many in the server child, which inherit it).
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Which wire a throughput round runs on.
#[derive(Clone, Copy)]
enum Wire {
    WebSocket,
    Sse,
    LongPoll,
}

/// `rounds` alternating raw/tether rounds against one blaster per wire; medians of each.
async fn throughput(wire: Wire, b: Backlog, rounds: usize) -> Res<(f64, f64)> {
    let addr = match wire {
        Wire::WebSocket => blast::websocket(b).await?,
        Wire::Sse => blast::sse(b).await?,
        Wire::LongPoll => blast::long_poll(b).await?,
    };
    let (mut raws, mut tethers) = (Vec::new(), Vec::new());
    // `--side raw|tether` runs one side only (for instruction counts with perf or callgrind).
    let side = tether_examples::args().get("side").cloned();
    for _ in 0..rounds {
        if side.as_deref() != Some("tether") {
            raws.push(match wire {
                Wire::WebSocket => raw_ws(addr, b).await?,
                Wire::Sse => raw_sse(addr, b.n).await?,
                Wire::LongPoll => raw_poll(addr, b.n).await?,
            });
        }
        if side.as_deref() != Some("raw") {
            tethers.push(tether_rate(addr, wire, b).await?);
        }
    }
    let (raw, tether) = (median(raws), median(tethers));
    println!(
        "    raw peer: {raw:.0} msg/s, tether client: {tether:.0} msg/s, ratio {:.2} (medians of {rounds})",
        tether / raw
    );
    Ok((raw, tether))
}

/// Raw WebSocket peer: tokio-tungstenite with its defaults, every text frame parsed as
/// JSON (the least any client does), `msg` frames counted.
async fn raw_ws(addr: SocketAddr, b: Backlog) -> Res<f64> {
    let n = b.n;
    let start = Instant::now();
    let url = format!(
        "ws://{addr}/tether/ws?v=1&channels={}",
        b.channel_names().join(",")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let mut got = 0;
    while got < n {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                if v["type"] == "msg" {
                    got += 1;
                }
            }
            Some(Ok(_)) => {}
            _ => return Err("raw websocket peer: stream ended early".into()),
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Raw SSE peer: a reqwest stream through eventsource-stream, every `data` parsed as JSON.
async fn raw_sse(addr: SocketAddr, n: usize) -> Res<f64> {
    use eventsource_stream::Eventsource;
    let start = Instant::now();
    let url = format!("http://{addr}/tether/sse?v=1&channels={}", blast::CHANNEL);
    let response = reqwest::Client::new().get(url).send().await?;
    let mut events = response.bytes_stream().eventsource();
    let mut got = 0;
    while got < n {
        match events.next().await {
            Some(Ok(ev)) => {
                let v: Value = serde_json::from_str(&ev.data)?;
                if v["type"] == "msg" {
                    got += 1;
                }
            }
            Some(Err(e)) => return Err(e.to_string().into()),
            None => return Err("raw sse peer: stream ended early".into()),
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Raw long-poll peer: a reqwest GET loop, each answer parsed as a JSON array, the next
/// poll after the cursor of the answer's last message.
async fn raw_poll(addr: SocketAddr, n: usize) -> Res<f64> {
    let start = Instant::now();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/tether/poll?v=1&channels={}", blast::CHANNEL);
    let mut url = format!("{base}&hello=1");
    let mut got = 0;
    while got < n {
        let body = http.get(&url).send().await?.bytes().await?;
        let frames: Vec<Value> = serde_json::from_slice(&body)?;
        let mut cursor = None;
        for f in &frames {
            if f["type"] == "msg" {
                got += 1;
            }
            if let Some(c) = f["cursor"].as_str() {
                cursor = Some(c.to_owned());
            }
        }
        url = format!(
            "{base}&cursor={}",
            cursor.ok_or("raw poll peer: no cursor")?
        );
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The tether client on one transport: build, subscribe, connect, count delivered
/// messages (each one decoded, sequence-checked and handed to the app as an event).
async fn tether_rate(addr: SocketAddr, wire: Wire, b: Backlog) -> Res<f64> {
    let n = b.n;
    let start = Instant::now();
    let kind = match wire {
        Wire::WebSocket => TransportKind::WebSocket,
        Wire::Sse => TransportKind::Sse,
        Wire::LongPoll => TransportKind::LongPoll,
    };
    let client = Client::builder(format!("http://{addr}/tether"))
        .transports(&[kind])
        .build()?;
    let mut events = client.events();
    for ch in b.channel_names() {
        client.subscribe(&ch).await?;
    }
    client.connect()?;
    let mut got = 0;
    while got < n {
        match events.recv().await {
            Some(ev) => {
                if matches!(ev.event, Event::Message { .. }) {
                    got += 1;
                }
            }
            None => return Err("tether: driver ended".into()),
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    client.close().await?;
    Ok(rate)
}

/// Child mode: a reference server on a free port; prints `PORT n`, runs until killed.
async fn serve() -> Res<()> {
    let cfg = ServerConfig {
        max_channels_per_connection: 16,
        ring_capacity: 1024,
        heartbeat: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let server = Server::start(cfg).await?;
    println!("PORT {}", server.addr().port());
    std::io::stdout().flush()?;
    std::future::pending::<()>().await;
    Ok(())
}

fn spawn_server() -> Res<(Child, u16)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
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
    Ok((child, port))
}

/// (RSS KiB, live heap KiB) per idle connection of `kind`, measured in a fresh child.
fn mem_in_child(kind: &str, port: u16, conns: usize) -> Res<(f64, f64)> {
    let out = Command::new(std::env::current_exe()?)
        .args([
            "--mem",
            kind,
            "--port",
            &port.to_string(),
            "--conns",
            &conns.to_string(),
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let figures: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("KIB_PER_CONN "))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [rss, heap] = figures[..] else {
        return Err(format!(
            "{kind} child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    };
    println!("    {kind:<6}: {rss:.1} KiB resident, {heap:.1} KiB live heap per idle connection");
    Ok((rss, heap))
}

fn rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Child mode: open `n` idle connections of `kind`, print the RSS and live-heap deltas per
/// connection.
async fn mem_child(kind: &str, port: u16, n: usize) -> Res<()> {
    let endpoint = format!("http://127.0.0.1:{port}/tether");
    let ws_url = format!("ws://127.0.0.1:{port}/tether/ws?v=1&channels=idle");
    let kib = if let Some(size) = kind.strip_prefix("raw") {
        // `raw`: tungstenite's default read buffer (128 KiB); `raw8k`/`raw4k`: smaller ones.
        let read_buffer = size.strip_suffix('k').and_then(|k| k.parse::<usize>().ok());
        hold_idle(n, || raw_idle(&ws_url, read_buffer.map(|k| k * 1024))).await?
    } else {
        hold_idle(n, || tether_idle(&endpoint)).await?
    };
    println!(
        "KIB_PER_CONN {:.2} {:.2}",
        kib.0 / n as f64,
        kib.1 / n as f64
    );
    Ok(())
}

/// Open one connection to warm up (lazy statics, TLS roots, allocator arenas), then `n`
/// more, and return the (RSS, live heap) KiB they added while all are held idle.
async fn hold_idle<T, F, Fut>(n: usize, open: F) -> Res<(f64, f64)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Res<T>>,
{
    let mut keep = Vec::with_capacity(n + 1);
    keep.push(open().await?);
    let (before, heap_before) = (rss_kib(), heap::live_kib());
    for _ in 0..n {
        keep.push(open().await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((rss_kib() - before, heap::live_kib() - heap_before))
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw connection with tokio-tungstenite's default config, after its hello was read.
async fn raw_idle(url: &str, read_buffer: Option<usize>) -> Res<RawWs> {
    let config = read_buffer.map(|size| {
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(size)
    });
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, config, false).await?;
    while let Some(m) = ws.next().await {
        if let Message::Text(t) = m? {
            if t.as_str().contains("\"hello\"") {
                return Ok(ws);
            }
        }
    }
    Err("raw: no hello".into())
}

/// A tether client connected over WebSocket (hello received).
async fn tether_idle(endpoint: &str) -> Res<Client> {
    let client = Client::builder(endpoint)
        .transports(&[TransportKind::WebSocket])
        .build()?;
    client.subscribe("idle").await?;
    client.connect()?;
    client
        .state_watch()
        .wait_for(|s| matches!(s, State::Connected { .. }))
        .await?;
    Ok(client)
}

/// The same SSE bytes through both parsers, in 4 KiB chunks.
async fn sse_parse() -> Res<(f64, f64, f64)> {
    use eventsource_stream::Eventsource;
    use tether::engine::sse::{SseItem, SseLimits, SseParser};
    let mut text = String::new();
    let mut i = 0u64;
    let mut comment_in = 50u32;
    while text.len() < 32 << 20 {
        text.push_str(&format!(
            "id: e{i}\ndata: {{\"type\":\"msg\",\"channel\":\"feed\",\"seq\":{i},\"cursor\":\"e{i}\",\"data\":{{\"text\":\"hello world number {i}\"}}}}\n\n"
        ));
        i += 1;
        // A comment line every 50 events, as servers send heartbeats (SSE-3).
        comment_in -= 1;
        if comment_in == 0 {
            text.push_str(": keep-alive\n");
            comment_in = 50;
        }
    }
    let bytes = text.into_bytes();
    let mb = bytes.len() as f64 / 1e6;
    let chunks: Vec<Vec<u8>> = bytes.chunks(4096).map(<[u8]>::to_vec).collect();

    let start = Instant::now();
    let mut parser = SseParser::new(SseLimits::default());
    let mut out = Vec::new();
    let mut events = 0u64;
    for c in &chunks {
        parser.feed(c, &mut out).map_err(|e| e.to_string())?;
        events += out
            .iter()
            .filter(|x| matches!(x, SseItem::Event(_)))
            .count() as u64;
        out.clear();
    }
    let engine_mbs = mb / start.elapsed().as_secs_f64();

    let owned = chunks.clone();
    let start = Instant::now();
    let stream = futures_util::stream::iter(owned.into_iter().map(Ok::<_, std::io::Error>));
    let mut es = stream.eventsource();
    let mut peer_events = 0u64;
    while let Some(ev) = es.next().await {
        ev.map_err(|e| e.to_string())?;
        peer_events += 1;
    }
    let es_mbs = mb / start.elapsed().as_secs_f64();
    if events != i || peer_events != i {
        return Err(format!(
            "parsers disagree: engine {events}, eventsource-stream {peer_events}, expected {i}"
        )
        .into());
    }
    println!("    engine parser: {engine_mbs:.1} MB/s, eventsource-stream: {es_mbs:.1} MB/s ({events} events)");
    Ok((engine_mbs, es_mbs, mb))
}

/// (d) FileStore appends (framed, CRC'd, fsynced) against the floor of any durable
/// append: a raw `write_all` + `sync_data` of the same bytes, in the same directory.
/// fsync latency swings a lot from one moment to the next, so the two alternate in
/// `rounds` rounds of `n` appends and the medians are compared.
fn store_rates(n: usize, rounds: usize) -> Res<(f64, f64)> {
    use std::io::Write;
    use tether::engine::store::{OutboxRecord, Store};
    let dir = std::env::temp_dir().join(format!("tether-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let record = |i: usize| OutboxRecord {
        id: format!("bench-{i}"),
        channel: "bench".into(),
        data: format!("{{\"n\":{i},\"text\":\"{}\"}}", "x".repeat(64)),
        enqueued_unix_ms: 0,
    };
    let mut store = tether::FileStore::open(dir.join("store"))?;
    let mut raw = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("raw.log"))?;
    let (mut stores, mut raws) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let ids = round * n..(round + 1) * n;
        let t = Instant::now();
        for i in ids.clone() {
            store.append(&record(i))?;
        }
        stores.push(n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for i in ids {
            let bytes = serde_json::to_vec(&record(i))?;
            raw.write_all(&bytes)?;
            raw.sync_data()?;
        }
        raws.push(n as f64 / t.elapsed().as_secs_f64());
    }
    let (store_rate, fsync_rate) = (median(stores), median(raws));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "    FileStore: {store_rate:.0} appends/s, raw write+fdatasync: {fsync_rate:.0}/s (medians of {rounds})"
    );
    Ok((store_rate, fsync_rate))
}
