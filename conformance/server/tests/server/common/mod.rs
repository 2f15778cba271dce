//! Test helpers: a server on loopback and small WebSocket / SSE / HTTP clients.
#![allow(dead_code)]

pub mod redis;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tether_server::{Server, ServerConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const T: Duration = Duration::from_secs(5);

pub async fn server(cfg: ServerConfig) -> Server {
    Server::start(cfg).await.expect("server starts")
}

pub async fn default_server() -> Server {
    server(ServerConfig::default()).await
}

pub fn ws_url(s: &Server, query: &str) -> String {
    format!("{}?{query}", s.ws_url())
}

pub async fn ws(s: &Server, query: &str) -> Ws {
    let (ws, resp) = tokio::time::timeout(T, tokio_tungstenite::connect_async(ws_url(s, query)))
        .await
        .expect("connect in time")
        .expect("upgrade accepted");
    assert_eq!(resp.status(), 101);
    ws
}

/// The HTTP refusal of a WebSocket handshake.
pub async fn ws_refused(
    s: &Server,
    query: &str,
) -> tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>> {
    match tokio::time::timeout(T, tokio_tungstenite::connect_async(ws_url(s, query)))
        .await
        .expect("answer in time")
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => *resp,
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got an upgrade"),
    }
}

/// The next WebSocket message of any kind.
pub async fn next_msg(
    ws: &mut Ws,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    tokio::time::timeout(T, ws.next())
        .await
        .expect("message in time")
}

/// The next JSON frame, skipping pings.
pub async fn frame(ws: &mut Ws) -> Value {
    loop {
        match next_msg(ws).await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json frame");
                if v["type"] != "ping" {
                    return v;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// Read until the close frame; its code.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match next_msg(ws).await {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error before close: {e}"),
            None => return None,
        }
    }
}

/// A reqwest builder that works however the workspace unifies reqwest's features:
/// the client crate turns on `rustls-no-provider`, so a process-wide rustls provider
/// must exist before any reqwest client is built.
pub fn client_builder() -> reqwest::ClientBuilder {
    static TLS: std::sync::Once = std::sync::Once::new();
    TLS.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

pub fn http() -> reqwest::Client {
    client_builder().timeout(T).build().expect("client")
}

/// An incremental SSE reader over a streaming response.
pub struct Sse {
    pub resp_status: u16,
    pub content_type: String,
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: Vec<u8>,
    pub comments: usize,
    pub retry: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Option<String>,
    pub data: String,
}

impl Sse {
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = client_builder().build().expect("client").get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = tokio::time::timeout(T, req.send())
            .await
            .expect("headers in time")
            .expect("sse response");
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Sse {
            resp_status: resp.status().as_u16(),
            content_type,
            stream: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
            comments: 0,
            retry: Vec::new(),
        }
    }

    /// Next raw chunk (None at end of stream, Err on a cut).
    pub async fn chunk(&mut self) -> Option<reqwest::Result<bytes::Bytes>> {
        tokio::time::timeout(T, self.stream.next())
            .await
            .expect("chunk in time")
    }

    /// The next event with data (comments and `retry:` are counted). None at end of stream.
    pub async fn event(&mut self) -> Option<Event> {
        let mut id = None;
        let mut data: Option<String> = None;
        loop {
            while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                if line.is_empty() {
                    if let Some(d) = data.take() {
                        return Some(Event {
                            id: id.take(),
                            data: d,
                        });
                    }
                    continue;
                }
                if line.starts_with(':') {
                    self.comments += 1;
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("retry: ") {
                    self.retry.push(v.to_owned());
                }
            }
            match self.chunk().await {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                _ => return None,
            }
        }
    }

    /// The next event's frame as JSON, skipping pings.
    pub async fn frame(&mut self) -> (Option<String>, Value) {
        loop {
            let e = self.event().await.expect("an event");
            let v: Value = serde_json::from_str(&e.data).expect("json data");
            if v["type"] != "ping" {
                return (e.id, v);
            }
        }
    }
}

pub fn sse_url(s: &Server, query: &str) -> String {
    format!("{}/sse?{query}", s.endpoint_url())
}

pub async fn poll(s: &Server, query: &str) -> reqwest::Response {
    http()
        .get(format!("{}/poll?{query}", s.endpoint_url()))
        .send()
        .await
        .expect("poll answer")
}

pub async fn poll_frames(s: &Server, query: &str) -> Vec<Value> {
    let r = poll(s, query).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json array")
}

pub fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
