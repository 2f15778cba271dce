//! The WebSocket rung: tokio-tungstenite over TCP or rustls, one text message per frame (WIRE-1).
//!
//! Buffers are set deliberately (see [`config`]): tungstenite's defaults (128 KiB read buffer,
//! 128 KiB write buffer target, 64 MiB messages) cost a lot per idle connection and accept far
//! larger frames than the contract allows.
//!
//! The socket is wrapped in [`Counted`], which counts the bytes read so that a large message
//! still arriving on a slow link is reported as `Receiving` (HEARTBEAT-2) instead of looking
//! like a silent, dead connection.

use super::http::{bearer, endpoint_url, status_failure};
use super::{closed, ConnCommand, Emitter, Io};
use futures_util::{SinkExt, StreamExt};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tether_engine::transport::RECEIVING_INTERVAL;
use tether_engine::{OpenRequest, TransportEvent, TransportFailure};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// Default read buffer per connection: 8 KiB instead of tungstenite's 128 KiB.
pub const DEFAULT_READ_BUFFER: usize = 8 * 1024;

/// How long a close frame may take to leave before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The tungstenite configuration of every Tether WebSocket.
///
/// - `read_buffer_size`: the chunk read from the socket at once; allocated per connection for
///   its whole life. Tether frames are small and a client holds one connection, so 8 KiB (the
///   default here, [`ClientBuilder::ws_read_buffer`](crate::ClientBuilder::ws_read_buffer))
///   keeps idle memory low; tungstenite grows the buffer for larger messages and they
///   are bounded by `max_message_size`.
/// - `write_buffer_size` 0: frames are written out as soon as they are queued (the driver
///   flushes per batch anyway), so no 128 KiB write buffer builds up.
/// - `max_write_buffer_size`: at most 16 frames of the maximum size may wait behind a slow
///   socket; beyond that a write fails and the connection is replaced (bounded memory).
/// - `max_message_size` / `max_frame_size` = the engine's `max_frame_bytes` (LIMIT-1), instead
///   of 64 MiB / 16 MiB: a bigger message is refused before it is buffered.
pub fn config(read_buffer: usize, max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer.max(1024))
        .write_buffer_size(0)
        .max_write_buffer_size(max_frame_bytes.saturating_mul(16).max(64 * 1024))
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
}

/// Bytes standing for a text message tungstenite refused as invalid UTF-8: tungstenite does
/// not hand the bytes over, so the engine is given an invalid sequence to report
/// `invalid_utf8` (ERR-1) before the connection is failed as RFC 6455 §8.1 requires.
const INVALID_UTF8_MARK: &[u8] = &[0xff];

type Socket = WebSocketStream<MaybeTlsStream<Counted>>;

/// Bytes read on one connection's socket, and a wake-up for its pump at most once per
/// `RECEIVING_INTERVAL` while bytes keep arriving.
#[derive(Debug, Default)]
struct ReadMeter {
    bytes: AtomicU64,
    tick: Notify,
}

/// The TCP stream under the WebSocket (and TLS), counting the bytes read. One atomic add and
/// one clock read per socket read; the pump is woken only every `RECEIVING_INTERVAL`.
#[derive(Debug)]
struct Counted {
    inner: TcpStream,
    meter: Arc<ReadMeter>,
    last_tick: Option<Instant>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.meter.bytes.fetch_add(n as u64, Ordering::Relaxed);
            let now = Instant::now();
            if self
                .last_tick
                .is_none_or(|t| now.duration_since(t) >= RECEIVING_INTERVAL)
            {
                self.last_tick = Some(now);
                self.meter.tick.notify_one();
            }
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Run connection `req.conn` until it ends or the driver closes it.
pub(crate) async fn run(
    io: Arc<Io>,
    req: OpenRequest,
    mut rx: mpsc::UnboundedReceiver<ConnCommand>,
    em: Emitter,
) {
    // Boxed: the handshake's large state (TCP, TLS, HTTP upgrade) is freed once open, so
    // an idle connection's task holds only the pump (idle memory, see `config`).
    let opened = tokio::select! {
        r = Box::pin(handshake(&io, &req)) => r,
        () = closed(&mut rx) => return,
    };
    let (socket, meter) = match opened {
        Ok(s) => s,
        Err(failure) => {
            tracing::debug!(?failure, "websocket open failed");
            em.emit(TransportEvent::Failed(failure)).await;
            return;
        }
    };
    tracing::debug!("websocket opened");
    if !em.emit(TransportEvent::Opened).await {
        return;
    }
    pump(socket, meter, rx, em).await;
}

async fn handshake(
    io: &Io,
    req: &OpenRequest,
) -> Result<(Socket, Arc<ReadMeter>), TransportFailure> {
    let mut url = endpoint_url(&io.endpoint, "ws", &req.channels, req.cursor.as_deref());
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| TransportFailure::Unreachable("bad endpoint scheme".into()))?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| TransportFailure::Unreachable(e.to_string()))?;
    if let Some(v) = req.token.as_ref().and_then(bearer) {
        request.headers_mut().insert("authorization", v);
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| TransportFailure::Unreachable(format!("connect {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let meter = Arc::new(ReadMeter::default());
    let tcp = Counted {
        inner: tcp,
        meter: meter.clone(),
        last_tick: None,
    };
    let connector = if scheme == "wss" {
        Connector::Rustls(io.tls.clone())
    } else {
        Connector::Plain
    };
    match tokio_tungstenite::client_async_tls_with_config(
        request,
        tcp,
        Some(io.ws_config),
        Some(connector),
    )
    .await
    {
        Ok((socket, _response)) => Ok((socket, meter)),
        Err(WsError::Http(resp)) => Err(status_failure(resp.status().as_u16(), resp.headers())),
        // TLS, a reset or EOF before any HTTP answer: unreachable, not a blocking signal.
        Err(e) => Err(TransportFailure::Unreachable(e.to_string())),
    }
}

async fn pump(
    socket: Socket,
    meter: Arc<ReadMeter>,
    mut rx: mpsc::UnboundedReceiver<ConnCommand>,
    em: Emitter,
) {
    let (mut sink, mut stream) = socket.split();
    let mut close_seen = false;
    // Socket bytes accounted for (by a message or a `Receiving`), and whether a message
    // was reported since the last tick (then the engine has fresh liveness already).
    let mut reported = meter.bytes.load(Ordering::Relaxed);
    let mut message_since_tick = false;
    loop {
        tokio::select! {
            () = meter.tick.notified() => {
                let total = meter.bytes.load(Ordering::Relaxed);
                if total > reported && !message_since_tick {
                    // HEARTBEAT-2: a message is still arriving.
                    if !em.emit(TransportEvent::Receiving { bytes: total - reported }).await {
                        return;
                    }
                }
                reported = total;
                message_since_tick = false;
            }
            msg = stream.next() => {
                let event = match msg {
                    Some(Ok(Message::Text(t))) => TransportEvent::Text(t.as_str().to_owned()),
                    Some(Ok(Message::Binary(b))) => TransportEvent::Binary(b.to_vec()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        close_seen = true;
                        let (code, reason) = match frame {
                            Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_owned()),
                            None => (None, String::new()),
                        };
                        tracing::info!(close_code = code, %reason, "websocket closed by server");
                        tracing::Span::current().record("close_code", code);
                        // tungstenite answers the close; keep reading until the stream ends.
                        TransportEvent::Closed { code, reason }
                    }
                    Some(Err(WsError::Utf8(_))) => {
                        // The engine reports `invalid_utf8` for the frame; RFC 6455 §8.1 then
                        // requires failing the connection (1007), and tokio-tungstenite ends its
                        // stream after any error anyway: the engine reconnects with backoff.
                        em.emit(TransportEvent::Binary(INVALID_UTF8_MARK.to_vec())).await;
                        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close(1007, "invalid UTF-8"))).await;
                        em.emit(TransportEvent::Failed(TransportFailure::Io(
                            "invalid UTF-8 in a text message (RFC 6455 8.1)".into(),
                        )))
                        .await;
                        return;
                    }
                    Some(Err(e)) => {
                        if close_seen {
                            return;
                        }
                        let failure = match &e {
                            WsError::Capacity(c) => {
                                // LIMIT-1: refused before buffering; tell the server why (1009).
                                let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close(1009, "message too big"))).await;
                                TransportFailure::FrameTooLarge(c.to_string())
                            }
                            other => TransportFailure::Io(other.to_string()),
                        };
                        tracing::info!(error = ?failure, "websocket failed");
                        em.emit(TransportEvent::Failed(failure)).await;
                        return;
                    }
                    None => {
                        if !close_seen {
                            tracing::info!("websocket ended without a close frame");
                            em.emit(TransportEvent::Failed(TransportFailure::Io(
                                "connection ended without a close frame".into(),
                            )))
                            .await;
                        }
                        return;
                    }
                };
                reported = meter.bytes.load(Ordering::Relaxed);
                message_since_tick = true;
                if !em.emit(event).await {
                    return;
                }
            }
            cmd = rx.recv() => match cmd {
                Some(ConnCommand::Transmit(frames)) => {
                    let mut result = Ok(());
                    for f in frames {
                        result = sink.feed(Message::text(f)).await;
                        if result.is_err() {
                            break;
                        }
                    }
                    if result.is_ok() {
                        result = sink.flush().await;
                    }
                    if let Err(e) = result {
                        if !close_seen {
                            em.emit(TransportEvent::Failed(TransportFailure::Io(e.to_string()))).await;
                        }
                        return;
                    }
                }
                Some(ConnCommand::Poll { .. }) => {}
                Some(ConnCommand::Close { code, reason }) => {
                    tracing::debug!(close_code = code, %reason, "closing websocket");
                    tracing::Span::current().record("close_code", code);
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close(code, &reason))).await;
                    return;
                }
                None => return,
            }
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    // A close reason is at most 123 bytes (RFC 6455 §5.5).
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_owned().into(),
    }))
}
