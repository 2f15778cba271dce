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

/// The channel every blasted message is on.
pub const CHANNEL: &str = "bench";

/// The frames one connection receives: hello, the subscription baseline, `n` messages.
fn frames(n: usize) -> Vec<(Option<String>, String)> {
    let mut out = Vec::with_capacity(n + 2);
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
    out.push((
        None,
        ServerFrame::Subscribed {
            channel: CHANNEL.into(),
            seq: 0,
            cursor: Some("c0".into()),
        }
        .encode(),
    ));
    for i in 1..=n {
        let cursor = format!("c{i}");
        let frame = ServerFrame::Msg {
            channel: CHANNEL.into(),
            seq: i as u64,
            cursor: Some(cursor.clone()),
            data: json!({ "i": i, "pad": "0123456789abcdef" }),
        };
        out.push((Some(cursor), frame.encode()));
    }
    out
}

/// A WebSocket server that sends every connection the same `n`-message backlog, then
/// reads (and discards) until the client goes away.
pub async fn websocket(n: usize) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let texts: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new(frames(n).into_iter().map(|(_, t)| t).collect());
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
pub async fn sse(n: usize) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut body = String::new();
    for (id, text) in frames(n) {
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
