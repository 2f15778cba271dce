//! The WebSocket rung: the HTTP upgrade and RFC 6455 frames over TCP or rustls, read and
//! written by the driver task itself; one text message per frame (WIRE-1).
//!
//! There is no connection task: the driver polls each [`WsConn`] beside its other inputs,
//! so a message goes from the socket to the engine in one task, without a queue or a thread
//! wake-up per message (see the driver's module docs for the batches this allows).
//!
//! Buffers are sized for idle connections and fast bursts (see [`settings`]):
//! - the read buffer ([`DEFAULT_READ_BUFFER`], `ClientBuilder::ws_read_buffer`) is allocated
//!   when bytes arrive and given back once the socket has had nothing more for
//!   `KEEP_READ_BUFFER` (100 ms) with no frame half read, so an idle connection holds none
//!   while a fast stream keeps one buffer; a frame larger than half of it is read straight
//!   into its own allocation (no copy through the buffer);
//! - queued outgoing frames wait in a write buffer only until the socket takes them; at most
//!   16 × `max_frame_bytes` (64 KiB at least) may wait behind a slow socket, beyond that the
//!   connection fails and is replaced (bounded memory);
//! - a message (one frame or the fragments of one) is at most `max_frame_bytes` (LIMIT-1),
//!   checked from the frame header before anything is buffered.
//!
//! **Why the client frames WebSocket itself** (RFC 6455 in [`super::wsframe`], about 300
//! lines, instead of tokio-tungstenite): measured with `bench` (README, P1 and P2).
//! - Idle memory: tungstenite's frame codec allocates its read buffer when the connection
//!   opens and keeps it for the connection's life (`read_buffer_size`, 128 KiB by default);
//!   at 10,000 idle connections a bare tokio-tungstenite connection holds 128.4 KiB of heap
//!   with the default and 8.4 KiB with an 8 KiB buffer (bench (b')), before any client
//!   state; the whole idle Tether client (driver task, engine, inboxes, socket) holds
//!   11.2 KiB, because here the buffer exists only while bytes arrive. On tungstenite the
//!   16 KiB goal (P2) would take a read buffer of 4 KiB or less, read 16 KiB messages in
//!   four reads and more.
//! - Throughput: the driver polls the socket in its own task and hands each wake-up's
//!   messages to the application at once. The frames are parsed where they were read and
//!   a text message is checked as UTF-8 once; a large one is read into its own allocation.
//! - What it takes on: the client side of RFC 6455 only (no extensions, no server role).
//!   `ws_peer_tests` runs it against a real tokio-tungstenite server: fragments with control
//!   frames between them, ping/pong, the close handshake both ways with codes and reasons,
//!   LIMIT-1 refused from the header without allocating the claimed length, invalid UTF-8
//!   (1007), protocol violations (1002), byte-at-a-time reads, a fresh mask on every client
//!   frame, and `wss://` through rustls. tungstenite still lends the handshake key helpers.
//!
//! Bytes of a message still arriving are reported as `Receiving` at most once per
//! `RECEIVING_INTERVAL` (HEARTBEAT-2), so a large message on a slow link does not look like a
//! silent, dead connection.

use super::http::{bearer, endpoint_url, status_failure};
use super::wsframe::{self, Header, MaskKeys, Opcode};
use super::Io;
use futures_util::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tether_engine::transport::RECEIVING_INTERVAL;
use tether_engine::{OpenRequest, TransportEvent, TransportFailure};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tracing::Instrument;

/// Default read buffer: the most read from the socket at once. It exists only while bytes
/// arrive (see the module docs), so its size costs nothing on idle connections.
pub const DEFAULT_READ_BUFFER: usize = 64 * 1024;

/// Smallest read buffer accepted (`ClientBuilder::ws_read_buffer` values below are raised).
const MIN_READ_BUFFER: usize = 1024;

/// How long a close frame may take to leave before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Longest upgrade answer head read.
const MAX_ANSWER_HEAD: usize = 64 * 1024;

/// Most messages taken from one connection per driver wake-up: the engine handles them, the
/// application gets them in one hand-off, then the socket is read again.
pub(crate) const READ_BATCH: usize = 256;

/// Most message bytes taken from one connection per driver wake-up: large messages are
/// handed on while still in cache, a few at a time, instead of 256 of them (4 MiB at 16 KiB)
/// allocated at once and freed together (bench P1: page faults and cache misses).
const READ_BATCH_BYTES: usize = 128 * 1024;

/// A freed write buffer larger than this is given back to the allocator.
const KEEP_WRITE_BUFFER: usize = 4096;

/// How long the read buffer is kept once the socket has nothing more to read. Giving it back
/// at every empty read made a fast stream pay for it again and again (allocator trims and
/// page faults: 0.7 of a fault per 16 KiB message, bench P1); a connection quiet this long
/// is idle and holds no buffer.
const KEEP_READ_BUFFER: Duration = Duration::from_millis(100);

/// Bytes standing for a text message that is not valid UTF-8: the engine is given an invalid
/// sequence to report `invalid_utf8` (ERR-1) before the connection is failed with 1007 as
/// RFC 6455 §8.1 requires.
const INVALID_UTF8_MARK: &[u8] = &[0xff];

/// Buffer sizes and limits of every WebSocket of one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WsSettings {
    /// Most bytes read at once; larger frames bypass the buffer.
    pub read_buffer: usize,
    /// Largest message (LIMIT-1).
    pub max_message: usize,
    /// Most bytes of frames waiting behind a slow socket.
    pub max_write_buffer: usize,
}

/// The WebSocket settings for a read buffer size and the engine's `max_frame_bytes`.
pub(crate) fn settings(read_buffer: usize, max_frame_bytes: usize) -> WsSettings {
    WsSettings {
        read_buffer: read_buffer.max(MIN_READ_BUFFER),
        max_message: max_frame_bytes,
        max_write_buffer: max_frame_bytes.saturating_mul(16).max(64 * 1024),
    }
}

/// TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One WebSocket connection, owned and polled by the driver.
pub(crate) struct WsConn {
    span: tracing::Span,
    settings: WsSettings,
    phase: Phase,
}

enum Phase {
    /// TCP connect, TLS, the upgrade request and its answer (boxed: that state is large and
    /// freed once open).
    Opening(BoxFuture<'static, Result<(Stream, Vec<u8>), TransportFailure>>),
    Open(Box<Live>),
    /// The open failed (reported).
    Failed,
}

impl WsConn {
    /// Start opening connection `req.conn`.
    pub(crate) fn open(io: &Arc<Io>, req: OpenRequest, span: tracing::Span) -> WsConn {
        let opening = handshake(io.clone(), req).instrument(span.clone());
        WsConn {
            span,
            settings: io.ws,
            phase: Phase::Opening(Box::pin(opening)),
        }
    }

    /// Advance the connection: finish opening, send queued frames, read messages (at most
    /// [`READ_BATCH`], or `READ_BATCH_BYTES` of them). Events go to `out`; `Ready` when at least one was added.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, out: &mut Vec<TransportEvent>) -> Poll<()> {
        let before = out.len();
        if let Phase::Opening(opening) = &mut self.phase {
            match opening.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(failure)) => {
                    self.span
                        .in_scope(|| tracing::debug!(?failure, "websocket open failed"));
                    out.push(TransportEvent::Failed(failure));
                    self.phase = Phase::Failed;
                    return Poll::Ready(());
                }
                Poll::Ready(Ok((stream, leftover))) => {
                    self.span.in_scope(|| tracing::debug!("websocket opened"));
                    out.push(TransportEvent::Opened);
                    self.phase = Phase::Open(Box::new(Live::new(stream, leftover, self.settings)));
                }
            }
        }
        if let Phase::Open(live) = &mut self.phase {
            live.poll(cx, out, &self.span);
        }
        if out.len() > before {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Queue text frames; a full write buffer fails the connection at the next poll.
    pub(crate) fn transmit(&mut self, frames: Vec<String>) {
        if let Phase::Open(live) = &mut self.phase {
            live.transmit(frames);
        }
    }

    /// Close with `code`: the close frame is sent within `CLOSE_GRACE` in the background,
    /// then the socket is dropped. An opening connection is simply abandoned.
    pub(crate) fn close(self, code: u16, reason: &str) {
        self.span.record("close_code", code);
        self.span
            .in_scope(|| tracing::debug!(close_code = code, %reason, "closing websocket"));
        if let Phase::Open(mut live) = self.phase {
            live.send_close(code, reason);
            live.linger();
        }
    }

    /// The connection is over (its end was reported): frames already queued (the answer to
    /// the server's close, or a close 1007/1009) are sent within `CLOSE_GRACE`, then the
    /// socket is dropped.
    pub(crate) fn finish(self) {
        if let Phase::Open(live) = self.phase {
            live.linger();
        }
    }
}

/// A frame whose payload is complete.
enum Frame {
    /// The payload is `rbuf[start..end]`.
    InBuffer {
        header: Header,
        start: usize,
        end: usize,
    },
    /// A large payload read into its own allocation.
    Owned { header: Header, payload: Vec<u8> },
}

/// Why reading stopped with an error.
enum ReadError {
    /// RFC 6455 violated: close 1002.
    Protocol(&'static str),
    /// LIMIT-1: close 1009.
    TooBig { size: u64, max: usize },
}

/// The read side: buffer, large frame in progress, fragments.
#[derive(Default)]
struct Reader {
    /// Bytes read; `buf[start..end]` not yet parsed. Empty (unallocated) while idle.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A frame larger than half the buffer: its header, its payload and how much is read.
    big: Option<(Header, Vec<u8>, usize)>,
}

/// The write side: frames not yet taken by the socket.
struct Writer {
    buf: Vec<u8>,
    pos: usize,
    limit: usize,
    masks: MaskKeys,
}

impl Writer {
    fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Queue one masked frame; `Err` when it would exceed the write buffer limit.
    fn queue(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), String> {
        let pending = self.pending();
        if pending + wsframe::encoded_len(payload.len()) > self.limit {
            return Err(format!(
                "write buffer full: {pending} bytes wait behind a slow socket"
            ));
        }
        if pending == 0 {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mask = self.masks.next();
        wsframe::encode(&mut self.buf, opcode, payload, mask);
        Ok(())
    }

    /// Write what is queued; `Ready(Ok)` once the socket took all of it.
    fn poll_flush(&mut self, stream: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.pos < self.buf.len() {
            let n = ready!(Pin::new(&mut *stream).poll_write(cx, &self.buf[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        ready!(Pin::new(&mut *stream).poll_flush(cx))?;
        if self.buf.capacity() > KEEP_WRITE_BUFFER {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.pos = 0;
        Poll::Ready(Ok(()))
    }
}

/// An open connection.
struct Live {
    stream: Stream,
    settings: WsSettings,
    reader: Reader,
    /// A fragmented message being assembled: its opcode and the bytes so far.
    partial: Option<(Opcode, Vec<u8>)>,
    writer: Writer,
    /// Socket bytes not yet accounted for by a message or a `Receiving`.
    unreported: u64,
    /// A message was reported since the last tick (the engine has fresh liveness).
    message_since_tick: bool,
    last_tick: Instant,
    /// Bytes were read since the last tick check.
    just_read: bool,
    close_seen: bool,
    close_sent: bool,
    /// Its end was reported: nothing more is read; queued frames may still leave.
    ended: bool,
    /// A write failed: nothing more can be sent.
    broken: bool,
    /// A failure found outside a poll (a full write buffer), reported at the next poll.
    failure: Option<TransportFailure>,
    /// When the read buffer is given back if no byte arrives before (armed while it is held
    /// and the socket is drained); the last read that returned bytes.
    release: Option<Pin<Box<tokio::time::Sleep>>>,
    last_bytes: Instant,
}

impl Live {
    fn new(stream: Stream, leftover: Vec<u8>, settings: WsSettings) -> Live {
        let mut reader = Reader::default();
        if !leftover.is_empty() {
            // Bytes after the upgrade answer are the first frames: parse them from here.
            reader.end = leftover.len();
            reader.buf = leftover;
            if reader.buf.len() < settings.read_buffer {
                reader.buf.resize(settings.read_buffer, 0);
            }
        }
        Live {
            stream,
            settings,
            reader,
            partial: None,
            writer: Writer {
                buf: Vec::new(),
                pos: 0,
                limit: settings.max_write_buffer,
                masks: MaskKeys::default(),
            },
            unreported: 0,
            message_since_tick: false,
            last_tick: Instant::now(),
            just_read: false,
            close_seen: false,
            close_sent: false,
            ended: false,
            broken: false,
            failure: None,
            release: None,
            last_bytes: Instant::now(),
        }
    }

    fn transmit(&mut self, frames: Vec<String>) {
        if self.ended || self.broken || self.failure.is_some() {
            return;
        }
        for f in frames {
            if let Err(e) = self.writer.queue(Opcode::Text, f.as_bytes()) {
                self.failure = Some(TransportFailure::Io(e));
                return;
            }
        }
    }

    fn send_close(&mut self, code: u16, reason: &str) {
        if self.close_sent || self.broken {
            return;
        }
        self.close_sent = true;
        // A full write buffer cannot take the close frame: the socket is dropped without it.
        let _ = self
            .writer
            .queue(Opcode::Close, &wsframe::close_payload(code, reason));
    }

    /// End with a failure (once).
    fn fail(&mut self, out: &mut Vec<TransportEvent>, failure: TransportFailure) {
        if !self.ended {
            out.push(TransportEvent::Failed(failure));
            self.ended = true;
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>, out: &mut Vec<TransportEvent>, span: &tracing::Span) {
        if self.ended {
            return;
        }
        if let Some(f) = self.failure.take() {
            span.in_scope(|| tracing::info!(error = ?f, "websocket failed"));
            self.fail(out, f);
            return;
        }
        self.flush(cx, out);
        if !self.ended {
            self.read(cx, out, span);
        }
        // Frames queued while reading (pongs, a close answer) leave now.
        if !self.broken {
            self.flush(cx, out);
        }
    }

    fn flush(&mut self, cx: &mut Context<'_>, out: &mut Vec<TransportEvent>) {
        if self.broken {
            return;
        }
        if let Poll::Ready(Err(e)) = self.writer.poll_flush(&mut self.stream, cx) {
            self.broken = true;
            if !self.close_seen {
                self.fail(out, TransportFailure::Io(e.to_string()));
            }
            self.ended = true;
        }
    }

    fn read(&mut self, cx: &mut Context<'_>, out: &mut Vec<TransportEvent>, span: &tracing::Span) {
        let (mut messages, mut bytes) = (0, 0);
        loop {
            if messages >= READ_BATCH || bytes >= READ_BATCH_BYTES {
                return;
            }
            match self.next_frame() {
                Ok(Some(frame)) => {
                    match self.on_frame(frame, out, span) {
                        Ok(true) => {
                            messages += 1;
                            bytes += match out.last() {
                                Some(TransportEvent::Text(t)) => t.len(),
                                Some(TransportEvent::Binary(b)) => b.len(),
                                _ => 0,
                            };
                        }
                        Ok(false) => {}
                        Err(e) => return self.read_error(e, out, span),
                    }
                    if self.ended {
                        return;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => return self.read_error(e, out, span),
            }
            self.tick(out);
            match self.fill(cx) {
                Poll::Ready(Ok(0)) => {
                    if !self.close_seen {
                        span.in_scope(|| tracing::info!("websocket ended without a close frame"));
                        self.fail(
                            out,
                            TransportFailure::Io("connection ended without a close frame".into()),
                        );
                    }
                    self.ended = true;
                    return;
                }
                Poll::Ready(Ok(n)) => {
                    self.unreported += n as u64;
                    self.just_read = true;
                    self.last_bytes = Instant::now();
                }
                Poll::Ready(Err(e)) => {
                    if !self.close_seen {
                        let f = TransportFailure::Io(e.to_string());
                        span.in_scope(|| tracing::info!(error = ?f, "websocket failed"));
                        self.fail(out, f);
                    }
                    self.ended = true;
                    return;
                }
                Poll::Pending => {
                    self.arm_release(cx);
                    return;
                }
            }
        }
    }

    fn read_error(&mut self, e: ReadError, out: &mut Vec<TransportEvent>, span: &tracing::Span) {
        let failure = match e {
            ReadError::Protocol(rule) => {
                self.send_close(1002, "protocol error");
                TransportFailure::Io(format!("websocket protocol error: {rule}"))
            }
            ReadError::TooBig { size, max } => {
                // LIMIT-1: refused before buffering; tell the server why (1009).
                self.send_close(1009, "message too big");
                TransportFailure::FrameTooLarge(format!("message of {size} bytes > {max}"))
            }
        };
        span.in_scope(|| tracing::info!(error = ?failure, "websocket failed"));
        self.fail(out, failure);
    }

    /// HEARTBEAT-2: bytes arrived and no message since the last tick: report them, at most
    /// once per `RECEIVING_INTERVAL`.
    fn tick(&mut self, out: &mut Vec<TransportEvent>) {
        if !self.just_read {
            return;
        }
        self.just_read = false;
        let now = Instant::now();
        if now.duration_since(self.last_tick) >= RECEIVING_INTERVAL {
            if self.unreported > 0 && !self.message_since_tick {
                out.push(TransportEvent::Receiving {
                    bytes: self.unreported,
                });
            }
            self.unreported = 0;
            self.message_since_tick = false;
            self.last_tick = now;
        }
    }

    /// The next frame whose payload is complete, if the bytes read hold one.
    fn next_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        let r = &mut self.reader;
        if let Some((header, payload, filled)) = &r.big {
            if *filled < payload.len() {
                return Ok(None);
            }
            let header = *header;
            let payload = r.big.take().map(|(_, p, _)| p).unwrap_or_default();
            return Ok(Some(Frame::Owned { header, payload }));
        }
        let avail = &r.buf[r.start..r.end];
        let Some(header) = wsframe::parse_header(avail).map_err(ReadError::Protocol)? else {
            return Ok(None);
        };
        if !header.opcode.is_control() {
            let so_far = self.partial.as_ref().map_or(0, |(_, d)| d.len() as u64);
            let size = so_far.saturating_add(header.len);
            if size > self.settings.max_message as u64 {
                return Err(ReadError::TooBig {
                    size,
                    max: self.settings.max_message,
                });
            }
        }
        // Within max_message (or 125 for control frames): fits in usize.
        let len = header.len as usize;
        let total = header.header_len + len;
        if avail.len() >= total {
            let start = r.start + header.header_len;
            r.start += total;
            return Ok(Some(Frame::InBuffer {
                header,
                start,
                end: start + len,
            }));
        }
        if len > self.settings.read_buffer / 2 {
            let mut payload = vec![0u8; len];
            let have = avail.len() - header.header_len;
            payload[..have].copy_from_slice(&avail[header.header_len..]);
            r.start = r.end;
            r.big = Some((header, payload, have));
        }
        Ok(None)
    }

    /// Read more bytes: into the large frame in progress, else into the buffer (allocated
    /// here when needed, compacted when its free tail is short).
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let r = &mut self.reader;
        let dst: &mut [u8] = match &mut r.big {
            Some((_, payload, filled)) => &mut payload[*filled..],
            None => {
                let size = self.settings.read_buffer;
                if r.buf.is_empty() {
                    r.buf = vec![0u8; size];
                }
                if r.start == r.end {
                    r.start = 0;
                    r.end = 0;
                } else if r.buf.len() - r.end < size / 2 {
                    r.buf.copy_within(r.start..r.end, 0);
                    r.end -= r.start;
                    r.start = 0;
                }
                if r.end == r.buf.len() {
                    // Never read into an empty slice: that reads as end of stream.
                    r.buf.resize(r.buf.len() + size, 0);
                }
                &mut r.buf[r.end..]
            }
        };
        let mut rb = ReadBuf::new(dst);
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        match &mut r.big {
            Some((_, _, filled)) => *filled += n,
            None => r.end += n,
        }
        Poll::Ready(Ok(n))
    }

    /// The socket is drained: give the read buffer back once it has been quiet for
    /// `KEEP_READ_BUFFER` (one timer per quiet spell, re-armed only when it fires early).
    fn arm_release(&mut self, cx: &mut Context<'_>) {
        loop {
            let r = &self.reader;
            if r.buf.is_empty() || r.start != r.end || r.big.is_some() {
                self.release = None;
                return;
            }
            let due = self.last_bytes + KEEP_READ_BUFFER;
            let timer = self
                .release
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due.into())));
            if timer.as_mut().poll(cx).is_pending() {
                return;
            }
            if Instant::now() >= due {
                self.release = None;
                self.release_idle_buffer();
                return;
            }
            // Bytes came since it was armed: wait out the rest of the quiet spell.
            timer.as_mut().reset(due.into());
        }
    }

    /// Nothing to read and nothing half read: give the read buffer back.
    fn release_idle_buffer(&mut self) {
        let r = &mut self.reader;
        if r.start == r.end && r.big.is_none() && !r.buf.is_empty() {
            r.buf = Vec::new();
            r.start = 0;
            r.end = 0;
        }
    }

    /// Handle one complete frame; `Ok(true)` when it completed a message.
    fn on_frame(
        &mut self,
        frame: Frame,
        out: &mut Vec<TransportEvent>,
        span: &tracing::Span,
    ) -> Result<bool, ReadError> {
        let (header, payload): (Header, Cow<'_, [u8]>) = match frame {
            Frame::InBuffer { header, start, end } => {
                (header, Cow::Borrowed(&self.reader.buf[start..end]))
            }
            Frame::Owned { header, payload } => (header, Cow::Owned(payload)),
        };
        let message = match header.opcode {
            Opcode::Text | Opcode::Binary => {
                if self.partial.is_some() {
                    return Err(ReadError::Protocol(
                        "a new message began inside a fragmented one",
                    ));
                }
                if header.fin {
                    Some((header.opcode, payload))
                } else {
                    self.partial = Some((header.opcode, payload.into_owned()));
                    None
                }
            }
            Opcode::Continuation => {
                let Some((opcode, mut data)) = self.partial.take() else {
                    return Err(ReadError::Protocol("continuation frame outside a message"));
                };
                data.extend_from_slice(&payload);
                if header.fin {
                    Some((opcode, Cow::Owned(data)))
                } else {
                    self.partial = Some((opcode, data));
                    None
                }
            }
            Opcode::Ping => {
                if let Err(e) = self.writer.queue(Opcode::Pong, &payload) {
                    self.failure = Some(TransportFailure::Io(e));
                }
                None
            }
            Opcode::Pong => None,
            Opcode::Close => {
                let (code, reason) = wsframe::parse_close(&payload).map_err(ReadError::Protocol)?;
                self.close_seen = true;
                span.in_scope(|| {
                    tracing::info!(close_code = code, %reason, "websocket closed by server");
                });
                span.record("close_code", code);
                if !self.close_sent {
                    // Answer with the same code (RFC 6455 §5.5.1); sent by `finish`.
                    self.close_sent = true;
                    let echo = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
                    let _ = self.writer.queue(Opcode::Close, &echo);
                }
                out.push(TransportEvent::Closed { code, reason });
                self.ended = true;
                None
            }
        };
        let Some((opcode, payload)) = message else {
            return Ok(false);
        };
        let event = if opcode == Opcode::Text {
            let text = match payload {
                Cow::Owned(v) => String::from_utf8(v).ok(),
                Cow::Borrowed(s) => std::str::from_utf8(s).ok().map(str::to_owned),
            };
            match text {
                Some(t) => TransportEvent::Text(t),
                None => {
                    // The engine reports `invalid_utf8` for the message; RFC 6455 §8.1 then
                    // requires failing the connection (1007): the engine reconnects.
                    out.push(TransportEvent::Binary(INVALID_UTF8_MARK.to_vec()));
                    self.send_close(1007, "invalid UTF-8");
                    self.fail(
                        out,
                        TransportFailure::Io(
                            "invalid UTF-8 in a text message (RFC 6455 8.1)".into(),
                        ),
                    );
                    return Ok(true);
                }
            }
        } else {
            TransportEvent::Binary(payload.into_owned())
        };
        out.push(event);
        self.unreported = 0;
        self.message_since_tick = true;
        Ok(true)
    }

    /// Keep the socket until queued frames are sent (at most `CLOSE_GRACE`), in the background.
    fn linger(self: Box<Live>) {
        if self.broken || self.writer.pending() == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut live = self;
            let flushed = std::future::poll_fn(|cx| {
                let Live { writer, stream, .. } = &mut *live;
                writer.poll_flush(stream, cx)
            });
            let _ = tokio::time::timeout(CLOSE_GRACE, flushed).await;
        });
    }
}

/// TCP connect, TLS for `https` endpoints, the upgrade request and its answer. Returns the
/// stream and the bytes read past the answer's head (the first frames).
async fn handshake(io: Arc<Io>, req: OpenRequest) -> Result<(Stream, Vec<u8>), TransportFailure> {
    let unreachable = TransportFailure::Unreachable;
    let url = endpoint_url(&io.endpoint, "ws", &req.channels, req.cursor.as_deref());
    let tls = url.scheme() == "https";
    let host = url.host_str().unwrap_or_default().to_owned();
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(|e| unreachable(format!("connect {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut stream = if tls {
        let name = rustls::pki_types::ServerName::try_from(bare.clone())
            .map_err(|e| unreachable(format!("server name {bare}: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(io.tls.clone());
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(format!("tls: {e}")))?;
        Stream::Tls(Box::new(tls))
    } else {
        Stream::Plain(tcp)
    };
    let key = tungstenite::handshake::client::generate_key();
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    )
    .into_bytes();
    if let Some(v) = req.token.as_ref().and_then(bearer) {
        head.extend_from_slice(b"Authorization: ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let sent = async {
        stream.write_all(&head).await?;
        stream.flush().await
    };
    sent.await
        .map_err(|e| unreachable(format!("send the upgrade request: {e}")))?;
    let (status, headers, rest) = read_answer_head(&mut stream).await?;
    if status != 101 {
        return Err(status_failure(status, &headers));
    }
    check_upgrade(&headers, &key).map_err(|m| unreachable(format!("websocket handshake: {m}")))?;
    Ok((stream, rest))
}

/// Read the upgrade answer's status line and headers; returns them and the bytes after.
async fn read_answer_head(
    stream: &mut Stream,
) -> Result<(u16, HeaderMap, Vec<u8>), TransportFailure> {
    let unreachable = TransportFailure::Unreachable;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| unreachable(format!("read the upgrade answer: {e}")))?;
        if n == 0 {
            return Err(unreachable(
                "connection closed before the upgrade answer".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut answer = httparse::Response::new(&mut slots);
        match answer.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let mut headers = HeaderMap::new();
                for h in answer.headers.iter() {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(h.name.as_bytes()),
                        HeaderValue::from_bytes(h.value),
                    ) {
                        headers.append(name, value);
                    }
                }
                let status = answer.code.unwrap_or(0);
                return Ok((status, headers, buf[len..].to_vec()));
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_ANSWER_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(unreachable("upgrade answer head too long".into()));
            }
            Err(e) => return Err(unreachable(format!("bad upgrade answer: {e}"))),
        }
    }
}

/// A 101 answer must confirm the upgrade (RFC 6455 §4.1).
fn check_upgrade(headers: &HeaderMap, key: &str) -> Result<(), String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if !get("upgrade").eq_ignore_ascii_case("websocket") {
        return Err("no `Upgrade: websocket` in the answer".into());
    }
    if !get("connection")
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    {
        return Err("no `Connection: upgrade` in the answer".into());
    }
    if get("sec-websocket-accept") != tungstenite::handshake::derive_accept_key(key.as_bytes()) {
        return Err("wrong Sec-WebSocket-Accept".into());
    }
    if headers.contains_key("sec-websocket-extensions") {
        return Err("an extension was not asked for".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_answers_are_checked() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("WebSocket"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(
            "sec-websocket-accept",
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        assert_eq!(check_upgrade(&h, key), Ok(()));
        assert!(check_upgrade(&h, "another key").is_err());
        h.insert("connection", HeaderValue::from_static("close"));
        assert!(check_upgrade(&h, key).is_err());
    }

    #[test]
    fn settings_bound_buffers() {
        let s = settings(10, 1 << 20);
        assert_eq!(s.read_buffer, MIN_READ_BUFFER);
        assert_eq!(s.max_message, 1 << 20);
        assert_eq!(s.max_write_buffer, 16 << 20);
        assert_eq!(settings(64 << 10, 1024).max_write_buffer, 64 * 1024);
    }
}
