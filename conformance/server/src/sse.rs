//! `GET /sse`: the Server-Sent Events transport (`id: <cursor>` + `data: <frame>` per event, `:` comments as heartbeat), with its faults.

use crate::faults::{Fault, FaultTarget, MalformedKind};
use crate::http::{
    bad_params, frame_cursor, gate, log_out, log_request, plain, store_failed, swallow, Gate,
    Params,
};
use crate::log::{LogEntry, LogKind};
use crate::malformed;
use crate::session::{log_open, Session, Sink};
use crate::shape::{self, Shaper};
use crate::state::{Control, Notice, Shared};
use crate::ServerState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tether_engine::frame::ServerFrame;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{sleep_until, Instant};

const T: &str = "sse";
/// Most bytes a `buffer_sse` fault holds before it flushes anyway.
const MAX_BUFFERED: usize = 8 * 1024 * 1024;

type Chunk = Result<Bytes, std::io::Error>;

/// Encode one frame as an SSE event: `id:` is the frame's cursor when it has one.
pub fn encode_event(f: &ServerFrame) -> String {
    match frame_cursor(f) {
        Some(c) => format!("id: {c}\ndata: {}\n\n", f.encode()),
        None => format!("data: {}\n\n", f.encode()),
    }
}

fn stream_response(rx: mpsc::Receiver<Chunk>) -> Response {
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let mut resp = plain(
        StatusCode::OK,
        "text/event-stream",
        Body::from_stream(stream),
    );
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// The SSE handler.
pub(crate) async fn handler(st: ServerState, alt: bool, req: Request) -> Response {
    let shared = st.shared.clone();
    let path = req.uri().path().to_owned();
    let mut params = match Params::parse(&req, shared.cfg.max_channels_per_connection) {
        Ok(p) => p,
        Err(b) => {
            log_request(&shared, T, None, true, path);
            return bad_params(&shared, T, b);
        }
    };
    if let Some(id) = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
    {
        if !id.is_empty() {
            params.cursor = Some(id.chars().take(4096).collect());
        }
    }
    log_request(&shared, T, Some(&params), true, path.clone());
    let fault = match gate(&shared, FaultTarget::Sse, &params, true, alt, &path) {
        Gate::Pass(f) => f,
        Gate::Answer(r) => return r,
        Gate::Swallow => return swallow(&shared).await,
    };
    let id = shared.next_conn_id();
    let (tx, rx) = mpsc::channel::<Chunk>(16);
    match &fault {
        Some(Fault::CloseBeforeHello { .. }) => {
            shared.record(
                LogEntry::new(LogKind::Close)
                    .transport(T)
                    .conn(id)
                    .detail("ended before hello"),
            );
            return stream_response(rx);
        }
        Some(Fault::RetryLater { after_ms }) => {
            let f = ServerFrame::RetryLater {
                after_ms: *after_ms,
            };
            log_out(&shared, T, Some(id), &f);
            let _ = tx.try_send(Ok(Bytes::from(encode_event(&f))));
            return stream_response(rx);
        }
        _ => {}
    }
    let notices = shared.notify.subscribe();
    let kill = shared.kill.subscribe();
    let (session, frames) =
        match Session::open(&shared, &params.channels, params.cursor.as_deref()).await {
            Ok(x) => x,
            Err(e) => return store_failed(&shared, T, &e),
        };
    let (guard, ctrl) = shared.register(id, T, params.token.clone());
    log_open(&shared, T, id, &params);
    let buffer = match &fault {
        Some(Fault::BufferSse { events, ms }) => Some(Buffered {
            buf: Vec::new(),
            events: 0,
            max_events: *events,
            until: ms.map(|ms| Instant::now() + Duration::from_millis(ms)),
        }),
        _ => None,
    };
    let out = Out {
        tx,
        buffer,
        shared: shared.clone(),
        id,
        shaper: Shaper::of(fault.as_ref()),
    };
    tokio::spawn(async move {
        let _guard = guard;
        let end = run(out, session, frames, fault, notices, kill, ctrl).await;
        shared.record(
            LogEntry::new(LogKind::Close)
                .transport(T)
                .conn(id)
                .detail(end),
        );
    });
    stream_response(rx)
}

struct Buffered {
    buf: Vec<u8>,
    events: usize,
    max_events: Option<usize>,
    until: Option<Instant>,
}

struct Out {
    tx: mpsc::Sender<Chunk>,
    buffer: Option<Buffered>,
    shared: Arc<Shared>,
    id: u64,
    /// `reorder`, `skip_seq`, `long_cursor`.
    shaper: Option<Shaper>,
}

type End = String;

impl Out {
    async fn write(&mut self, bytes: Bytes) -> Result<(), End> {
        if let Some(b) = &mut self.buffer {
            b.buf.extend_from_slice(&bytes);
            if b.buf.len() > MAX_BUFFERED {
                return Err(self.flush_end().await);
            }
            return Ok(());
        }
        match tokio::time::timeout(self.shared.cfg.send_timeout, self.tx.send(Ok(bytes))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("client gone".into()),
            Err(_) => Err("send timed out".into()),
        }
    }

    async fn event(&mut self, f: &ServerFrame) -> Result<(), End> {
        log_out(&self.shared, T, Some(self.id), f);
        self.write(Bytes::from(encode_event(f))).await?;
        if let Some(b) = &mut self.buffer {
            b.events += 1;
            if b.max_events.is_some_and(|m| b.events >= m) {
                return Err(self.flush_end().await);
            }
        }
        Ok(())
    }

    async fn events(&mut self, frames: &[ServerFrame]) -> Result<(), End> {
        for f in frames {
            self.event(f).await?;
        }
        Ok(())
    }

    /// `buffer_sse`: send everything held in one write, then end the response.
    async fn flush_end(&mut self) -> End {
        if let Some(b) = self.buffer.take() {
            let n = b.buf.len();
            let _ = self.tx.send(Ok(Bytes::from(b.buf))).await;
            return format!("buffered {n} bytes flushed, response ended");
        }
        "response ended".into()
    }

    /// The shaper's held frames are due.
    async fn release(&mut self) -> Result<(), End> {
        let Some((frames, notes)) = self.shaper.as_mut().map(Shaper::release) else {
            return Ok(());
        };
        self.notes(notes);
        self.events(&frames).await
    }

    fn notes(&self, notes: Vec<String>) {
        for n in notes {
            self.fault_note(n);
        }
    }

    fn fault_note(&self, n: String) {
        self.shared.record(
            LogEntry::new(LogKind::Fault)
                .transport(T)
                .conn(self.id)
                .detail(n),
        );
    }

    /// `sse_raw`: the chunks, placeholders filled, one write each.
    async fn raw(
        &mut self,
        frames: &[ServerFrame],
        chunks: &[String],
        gap_ms: u64,
    ) -> Result<(), End> {
        let own_hello = chunks.iter().any(|c| c.contains("${hello}"));
        if own_hello {
            for f in frames {
                log_out(&self.shared, T, Some(self.id), f);
            }
        } else {
            self.events(frames).await?;
        }
        let hello = frames.first().map(ServerFrame::encode).unwrap_or_default();
        let cursor = frames
            .first()
            .and_then(frame_cursor)
            .unwrap_or_default()
            .to_owned();
        let subscribed: String = frames.iter().skip(1).map(encode_event).collect();
        let mut bytes = 0;
        for (i, c) in chunks.iter().enumerate() {
            if i > 0 && gap_ms > 0 {
                tokio::time::sleep(Duration::from_millis(gap_ms)).await;
            }
            let text = c
                .replace("${hello}", &hello)
                .replace("${subscribed}", &subscribed)
                .replace("${cursor}", &cursor);
            bytes += text.len();
            self.write(Bytes::from(text)).await?;
        }
        self.fault_note(format!(
            "sse_raw: {} chunks, {bytes} bytes written",
            chunks.len()
        ));
        Ok(())
    }

    async fn malformed(&mut self, kind: MalformedKind, n: usize) -> Result<(), End> {
        for i in 0..n.min(1000) {
            self.shared.record(
                LogEntry::new(LogKind::FrameOut)
                    .transport(T)
                    .conn(self.id)
                    .frame_type("malformed"),
            );
            let mut line = b"data: ".to_vec();
            line.extend_from_slice(&malformed::payload(kind, i));
            line.extend_from_slice(b"\n\n");
            self.write(Bytes::from(line)).await?;
        }
        Ok(())
    }

    async fn oversized(&mut self, bytes: usize) -> Result<(), End> {
        self.shared.record(
            LogEntry::new(LogKind::FrameOut)
                .transport(T)
                .conn(self.id)
                .frame_type("oversized"),
        );
        let mut left = bytes.min(crate::faults::MAX_OVERSIZED);
        self.write(Bytes::from_static(b"data: ")).await?;
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        while left > 0 {
            let n = left.min(chunk.len());
            self.write(chunk.slice(..n)).await?;
            left -= n;
        }
        self.write(Bytes::from_static(b"\n\n")).await
    }
}

impl Sink for Out {
    /// Through the shaper, if any, then as SSE events.
    async fn deliver(&mut self, frames: Vec<ServerFrame>) -> Result<(), End> {
        let (frames, notes) = shape::through(self.shaper.as_mut(), frames);
        self.notes(notes);
        self.events(&frames).await
    }
}

/// A delayed stream fault fires.
async fn on_fault(out: &mut Out, f: Fault, kill: &mut watch::Receiver<u64>) -> End {
    out.shared.record(
        LogEntry::new(LogKind::Fault)
            .transport(T)
            .conn(out.id)
            .detail(f.name()),
    );
    match f {
        Fault::CloseAfterHello { .. } => out.flush_end().await,
        Fault::DropMidFrame { .. } => {
            let ev = format!("id: e0\ndata: {}\n\n", malformed::sample_msg());
            let half = Bytes::from(ev.into_bytes()).slice(..40);
            let _ = out.tx.send(Ok(half)).await;
            // Let the half event reach the socket before the body fails.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = out
                .tx
                .send(Err(std::io::Error::other("fault: drop mid-frame")))
                .await;
            "dropped mid-frame".into()
        }
        _ => {
            let tx = out.tx.clone();
            tokio::select! {
                _ = kill.changed() => {}
                _ = tx.closed() => {}
            }
            "blackhole ended".into()
        }
    }
}

async fn run(
    mut out: Out,
    mut session: Session,
    frames: Vec<ServerFrame>,
    fault: Option<Fault>,
    mut notices: broadcast::Receiver<Notice>,
    mut kill: watch::Receiver<u64>,
    mut ctrl: mpsc::Receiver<Control>,
) -> End {
    if let Some(Fault::SseRaw {
        chunks,
        gap_ms,
        end,
    }) = &fault
    {
        if let Err(e) = out.raw(&frames, chunks, *gap_ms).await {
            return e;
        }
        if *end {
            out.flush_end().await;
            return "sse_raw: response ended".into();
        }
    } else if let Err(e) = out.events(&frames).await {
        return e;
    }
    let mut deadline: Option<(Instant, Fault)> = None;
    let r = match fault {
        Some(Fault::ErrorFrame {
            code,
            terminal,
            id,
            message,
        }) => {
            out.event(&ServerFrame::Error {
                code,
                message,
                id,
                terminal,
            })
            .await
        }
        Some(Fault::SseRetry { value }) => {
            let v: String = value.chars().filter(|c| *c != '\n' && *c != '\r').collect();
            out.write(Bytes::from(format!("retry: {v}\n\n"))).await
        }
        Some(Fault::Malformed { kind, frames }) => out.malformed(kind, frames).await,
        Some(Fault::Oversized { bytes }) => out.oversized(bytes).await,
        Some(
            f @ (Fault::CloseAfterHello { after_ms, .. }
            | Fault::DropMidFrame { after_ms }
            | Fault::Blackhole { after_ms }),
        ) => {
            deadline = Some((Instant::now() + Duration::from_millis(after_ms), f));
            Ok(())
        }
        _ => Ok(()),
    };
    if let Err(e) = r {
        return e;
    }
    if let Some((at, f)) = deadline.take() {
        if at <= Instant::now() {
            return on_fault(&mut out, f, &mut kill).await;
        }
        deadline = Some((at, f));
    }
    if let Err(e) = session.catch_up_all(session.channels(), &mut out).await {
        return e;
    }
    let hb = out.shared.cfg.heartbeat;
    let mut heartbeat = tokio::time::interval_at(Instant::now() + hb, hb);
    let tx = out.tx.clone();
    loop {
        let fault_at = async {
            match &deadline {
                Some((t, _)) => sleep_until(*t).await,
                None => std::future::pending().await,
            }
        };
        let buffer_until = out.buffer.as_ref().and_then(|b| b.until);
        let flush_at = async {
            match buffer_until {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let shaped_at = shape::due(out.shaper.as_ref().and_then(Shaper::deadline));
        tokio::select! {
            biased;
            _ = kill.changed() => return "dropped (restart)".into(),
            _ = fault_at => {
                let Some((_, f)) = deadline.take() else { continue };
                return on_fault(&mut out, f, &mut kill).await;
            }
            _ = shaped_at => {
                if let Err(e) = out.release().await {
                    return e;
                }
            }
            _ = tx.closed() => return "client gone".into(),
            c = ctrl.recv() => match c {
                Some(Control::Drain { from_ms, to_ms }) => {
                    let _ = out.event(&ServerFrame::Drain { from_ms, to_ms, reason: Some("draining".into()) }).await;
                    out.flush_end().await;
                    return "drained".into();
                }
                Some(Control::Close { code, reason }) => {
                    out.flush_end().await;
                    return format!("ended ({code} {reason})");
                }
                Some(Control::AuthExpired) => {
                    out.flush_end().await;
                    return "ended (auth expired)".into();
                }
                None => return "unregistered".into(),
            },
            n = notices.recv() => {
                if let Err(e) = session.on_notice(n, &mut out).await {
                    return e;
                }
            }
            _ = heartbeat.tick() => {
                if let Err(e) = out.write(Bytes::from_static(b": ping\n")).await {
                    return e;
                }
            }
            _ = flush_at => return out.flush_end().await,

        }
    }
}
