//! Fixed-backlog servers for the throughput measures: they speak just enough of the wire
//! (hello, subscribed, then `n` pre-encoded `msg` frames) over WebSocket or SSE and do no
//! per-message work while a client is timed, so the ratio measures the clients, not a server.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::net::SocketAddr;
use tether::engine::frame::ServerFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// The channel every blasted message is on (with one channel).
pub const CHANNEL: &str = "bench";

/// What a blaster sends each connection: `n` messages of about `payload` bytes of `data`,
/// spread round-robin over `channels` channels.
#[derive(Clone, Copy, Debug)]
pub struct Backlog {
    pub n: usize,
    pub payload: usize,
    pub channels: usize,
}

impl Backlog {
    /// `n` messages of the bench's 32-byte `data` on one channel.
    pub fn small(n: usize) -> Backlog {
        Backlog {
            n,
            payload: 32,
            channels: 1,
        }
    }

    /// The channel names, in the order messages go round.
    pub fn channel_names(&self) -> Vec<String> {
        if self.channels <= 1 {
            return vec![CHANNEL.to_owned()];
        }
        (0..self.channels)
            .map(|c| format!("{CHANNEL}{c}"))
            .collect()
    }
}

/// The frames one connection receives: hello, the subscription baselines, the messages.
fn frames(b: Backlog) -> Vec<(Option<String>, String)> {
    let names = b.channel_names();
    let mut out = Vec::with_capacity(b.n + 1 + names.len());
    out.push((
        None,
        ServerFrame::Hello {
            v: 1,
            server_id: "blast".into(),
            cursor: Some("c0".into()),
            policy: None,
            reset: Vec::new(),
        }
        .encode(),
    ));
    for ch in &names {
        out.push((
            None,
            ServerFrame::Subscribed {
                channel: ch.clone(),
                seq: 0,
                cursor: Some("c0".into()),
            }
            .encode(),
        ));
    }
    // `{"i":N,"pad":"..."}` of about `payload` bytes.
    let pad = "0123456789abcdef".repeat(b.payload / 16 + 1);
    let pad_len = b.payload.saturating_sub(16).max(1);
    for i in 1..=b.n {
        let cursor = format!("c{i}");
        let ch = &names[(i - 1) % names.len()];
        let seq = ((i - 1) / names.len() + 1) as u64;
        let frame = ServerFrame::Msg {
            channel: ch.clone(),
            seq,
            cursor: Some(cursor.clone()),
            data: json!({ "i": i, "pad": &pad[..pad_len] }),
        };
        out.push((Some(cursor), frame.encode()));
    }
    out
}

/// A WebSocket server that sends every connection the same `n`-message backlog, then
/// reads (and discards) until the client goes away.
pub async fn websocket(b: Backlog) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let texts: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new(frames(b).into_iter().map(|(_, t)| t).collect());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let texts = texts.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                for t in texts.iter() {
                    if ws.feed(Message::text(t.as_str())).await.is_err() {
                        return;
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    Ok(addr)
}

/// An SSE server (`GET` streams the backlog as `id:`/`data:` events; any `POST` is
/// answered `202`), HTTP/1.1 written by hand so nothing but the bytes costs time.
pub async fn sse(b: Backlog) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut body = String::new();
    for (id, text) in frames(b) {
        if let Some(id) = id {
            body.push_str("id: ");
            body.push_str(&id);
            body.push('\n');
        }
        body.push_str("data: ");
        body.push_str(&text);
        body.push_str("\n\n");
    }
    let body: std::sync::Arc<[u8]> = body.into_bytes().into();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve_http(tcp, body.clone()));
        }
    });
    Ok(addr)
}

async fn serve_http(mut tcp: TcpStream, body: std::sync::Arc<[u8]>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&buf[..k]),
        }
        if head.len() > 64 << 10 {
            return;
        }
    }
    if head.starts_with(b"POST ") {
        let _ = tcp
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    }
    let header = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                   cache-control: no-cache\r\nconnection: close\r\n\r\n";
    if tcp.write_all(header).await.is_err() || tcp.write_all(&body).await.is_err() {
        return;
    }
    // Keep the stream open (a live SSE response) until the client hangs up.
    while let Ok(k) = tcp.read(&mut buf).await {
        if k == 0 {
            return;
        }
    }
}

/// A long-poll server: `GET /poll?hello=1` answers the hello and `subscribed` frames, every
/// other poll the next `POLL_BATCH` messages after its `cursor` (`c{i}`), as a JSON array;
/// `POST` is answered `202`. Keep-alive HTTP/1.1 written by hand, like [`sse`].
pub async fn long_poll(b: Backlog) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let texts: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new(frames(b).into_iter().map(|(_, t)| t).collect());
    let head_frames = 1 + b.channel_names().len();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve_polls(tcp, texts.clone(), head_frames));
        }
    });
    Ok(addr)
}

/// Messages per long-poll answer.
pub const POLL_BATCH: usize = 256;

async fn serve_polls(mut tcp: TcpStream, texts: std::sync::Arc<Vec<String>>, head_frames: usize) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(k) => pending.extend_from_slice(&buf[..k]),
            }
            if pending.len() > 64 << 10 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        let body_len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        while pending.len() < end + body_len {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(k) => pending.extend_from_slice(&buf[..k]),
            }
        }
        pending.drain(..end + body_len);
        let target = head.split_whitespace().nth(1).unwrap_or("");
        let answer = if head.starts_with("POST ") {
            "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
                .as_bytes()
                .to_vec()
        } else {
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            };
            let range = if param("hello") == Some("1") {
                0..head_frames
            } else {
                let after: usize = param("cursor")
                    .and_then(|c| c.strip_prefix('c'))
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0);
                let from = (head_frames + after).min(texts.len());
                from..(from + POLL_BATCH).min(texts.len())
            };
            if range.is_empty() {
                // The backlog is spent: hold this poll until the client goes away.
                while let Ok(k) = tcp.read(&mut buf).await {
                    if k == 0 {
                        return;
                    }
                }
                return;
            }
            let mut body = String::from("[");
            for (k, t) in texts[range].iter().enumerate() {
                if k > 0 {
                    body.push(',');
                }
                body.push_str(t);
            }
            body.push(']');
            let mut a = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            a.extend_from_slice(body.as_bytes());
            a
        };
        if tcp.write_all(&answer).await.is_err() {
            return;
        }
    }
}
