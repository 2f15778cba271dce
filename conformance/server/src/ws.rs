//! `GET /ws`: the WebSocket transport (one JSON frame per text message), with its faults.

use crate::auth::AuthRefusal;
use crate::diagnose::{self, Peer};
use crate::faults::{Fault, FaultTarget};
use crate::http::{
    bad_params, gate, log_out, log_request, refuse, swallow, tether_error, Gate, Params,
};
use crate::log::{LogEntry, LogKind};
use crate::malformed;
use crate::send::handle_publish;
use crate::session::{log_open, Session, Sink};
use crate::shape::{self, Shaper};
use crate::state::{Control, Notice, Shared};
use crate::ServerState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tether_engine::error::FrameError;
use tether_engine::frame::{ClientFrame, ServerFrame};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const T: &str = "websocket";
/// Initial read buffer of a connection.
const READ_BUFFER: usize = 4 * 1024;
/// Malformed client frames tolerated per connection before closing with 4002 (WIRE-6).
const MAX_MALFORMED: u32 = 16;

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The `Sec-WebSocket-Key` of a valid upgrade request.
fn upgrade_key(headers: &HeaderMap) -> Option<String> {
    if !header_has(headers, header::UPGRADE, "websocket")
        || !header_has(headers, header::CONNECTION, "upgrade")
    {
        return None;
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return None;
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The upgrade handler.
pub(crate) async fn handler(st: ServerState, alt: bool, mut req: Request) -> Response {
    let shared = st.shared.clone();
    let path = req.uri().path().to_owned();
    let params = match Params::parse(&req, shared.cfg.max_channels_per_connection) {
        Ok(p) => p,
        Err(b) => {
            log_request(&shared, T, None, true, path);
            return bad_params(&shared, T, b);
        }
    };
    let Some(key) = upgrade_key(req.headers()) else {
        return diagnosis(&shared, &req, &params, path);
    };
    log_request(&shared, T, Some(&params), true, path.clone());
    let fault = match gate(&shared, FaultTarget::WebSocket, &params, true, alt, &path) {
        Gate::Pass(f) => f,
        Gate::Answer(r) if req.headers().contains_key(header::ORIGIN) => {
            // A browser cannot read this answer: keep it for its diagnosis (WEB-3).
            let k = diagnose::key(req.extensions().get::<Peer>().copied(), req.uri().query());
            return shared.ws_refusals.remember(k, r).await;
        }
        Gate::Answer(r) => return r,
        Gate::Swallow => return swallow(&shared).await,
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        let resp = tether_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            "connection cannot be upgraded",
        );
        return refuse(&shared, T, None, resp);
    };
    let id = shared.next_conn_id();
    // Subscribe before the handshake reads heads, so no message falls between.
    let notices = shared.notify.subscribe();
    let kill = shared.kill.subscribe();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => run(shared, id, params, up, fault, notices, kill).await,
            Err(e) => shared.record(
                LogEntry::new(LogKind::Close)
                    .transport(T)
                    .conn(id)
                    .detail(format!("upgrade failed: {e}")),
            ),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// A `GET /ws` without upgrade headers: a browser asking why its upgrade was refused (WEB-3).
/// Not a handshake: no fault or admission applies. The answer is the refusal that upgrade got
/// (remembered briefly), else drain's or auth's refusal now, else `426 upgrade_required`.
fn diagnosis(shared: &Arc<Shared>, req: &Request, params: &Params, path: String) -> Response {
    log_request(
        shared,
        T,
        Some(params),
        false,
        format!("{path} (no upgrade: diagnosis)"),
    );
    let k = diagnose::key(req.extensions().get::<Peer>().copied(), req.uri().query());
    if let Some(r) = shared.ws_refusals.take(&k) {
        shared.record(
            LogEntry::new(LogKind::Action)
                .transport(T)
                .status(r.status().as_u16())
                .detail("diagnosis answered with the upgrade's refusal"),
        );
        return r;
    }
    if let Some(d) = shared.draining() {
        let resp = tether_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            Some(shared.drain_retry_after(&d)),
            "server is draining",
        );
        return refuse(shared, T, None, resp);
    }
    let refusal = match shared.check_auth(params.token.as_deref()) {
        Ok(_) => None,
        Err(AuthRefusal::Expired) => Some((
            StatusCode::UNAUTHORIZED,
            "auth_expired",
            "missing, unknown or expired token",
        )),
        Err(AuthRefusal::Forbidden) => Some((
            StatusCode::FORBIDDEN,
            "forbidden",
            "this client is not allowed",
        )),
    };
    let (status, code, message) = refusal.unwrap_or((
        StatusCode::UPGRADE_REQUIRED,
        "upgrade_required",
        "not a WebSocket upgrade request",
    ));
    refuse(shared, T, None, tether_error(status, code, None, message))
}

struct Conn {
    ws: WebSocketStream<TokioIo<Upgraded>>,
    shared: Arc<Shared>,
    id: u64,
    malformed: u32,
    /// `reorder`, `skip_seq`, `long_cursor`.
    shaper: Option<Shaper>,
    /// `reject_publish`: the error code publishes get.
    reject: Option<String>,
    /// The connection's token (AUTH-5 checks on subscribe and publish).
    token: Option<String>,
}

/// How the loop ended.
type End = String;

impl Sink for Conn {
    /// Send `frames` through the shaper, if any.
    async fn deliver(&mut self, frames: Vec<ServerFrame>) -> Result<(), End> {
        let (frames, notes) = shape::through(self.shaper.as_mut(), frames);
        self.notes(notes);
        self.send_all(&frames).await
    }
}

async fn run(
    shared: Arc<Shared>,
    id: u64,
    params: Params,
    up: Upgraded,
    fault: Option<Fault>,
    notices: broadcast::Receiver<Notice>,
    kill: watch::Receiver<u64>,
) {
    let max = shared.cfg.max_frame_bytes;
    // A small read buffer: tungstenite zero-fills the whole buffer, so its 128 KiB default
    // is resident in every idle connection; it grows for larger messages (up to `max`).
    let cfg = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, Some(cfg)).await;
    let (_guard, ctrl) = shared.register(id, T, params.token.clone());
    log_open(&shared, T, id, &params);
    let mut conn = Conn {
        ws,
        shared: shared.clone(),
        id,
        malformed: 0,
        shaper: Shaper::of(fault.as_ref()),
        reject: match &fault {
            Some(Fault::RejectPublish { code }) => Some(code.clone()),
            _ => None,
        },
        token: params.token.clone(),
    };
    let end = conn.drive(&params, fault, notices, kill, ctrl).await;
    shared.record(
        LogEntry::new(LogKind::Close)
            .transport(T)
            .conn(id)
            .detail(end),
    );
}

impl Conn {
    async fn send_msg(&mut self, m: Message) -> Result<(), End> {
        match tokio::time::timeout(self.shared.cfg.send_timeout, self.ws.send(m)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("send failed: {e}")),
            Err(_) => Err("send timed out".into()),
        }
    }

    async fn send(&mut self, f: &ServerFrame) -> Result<(), End> {
        log_out(&self.shared, T, Some(self.id), f);
        self.send_msg(Message::text(f.encode())).await
    }

    /// Send frames with one flush for the batch (a replay or a catch-up is one write, not one
    /// system call per message).
    async fn send_all(&mut self, frames: &[ServerFrame]) -> Result<(), End> {
        if frames.len() <= 1 {
            for f in frames {
                self.send(f).await?;
            }
            return Ok(());
        }
        let (shared, id) = (self.shared.clone(), self.id);
        let ws = &mut self.ws;
        let r = tokio::time::timeout(shared.cfg.send_timeout, async {
            for f in frames {
                log_out(&shared, T, Some(id), f);
                ws.feed(Message::text(f.encode())).await?;
            }
            ws.flush().await
        })
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("send failed: {e}")),
            Err(_) => Err("send timed out".into()),
        }
    }

    /// Send a close frame (1005 = none), wait briefly for the client's, and say so.
    async fn close(&mut self, code: u16, reason: &str) -> End {
        let reason: String = reason.chars().take(60).collect();
        let frame = (code != 1005).then(|| CloseFrame {
            code: CloseCode::from(code),
            reason: reason.clone().into(),
        });
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.ws.send(Message::Close(frame))).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        format!("close {code} {reason}")
    }

    /// Write raw bytes under the WebSocket layer.
    async fn raw(&mut self, bytes: &[u8]) -> Result<(), End> {
        let _ = self.ws.flush().await;
        let io = self.ws.get_mut();
        io.write_all(bytes)
            .await
            .map_err(|e| format!("raw write failed: {e}"))?;
        io.flush()
            .await
            .map_err(|e| format!("raw flush failed: {e}"))
    }

    /// The shaper's held frames are due.
    async fn release(&mut self) -> Result<(), End> {
        let Some((frames, notes)) = self.shaper.as_mut().map(Shaper::release) else {
            return Ok(());
        };
        self.notes(notes);
        self.send_all(&frames).await
    }

    fn notes(&self, notes: Vec<String>) {
        for n in notes {
            self.shared.record(
                LogEntry::new(LogKind::Fault)
                    .transport(T)
                    .conn(self.id)
                    .detail(n),
            );
        }
    }

    async fn malformed(&mut self, kind: crate::faults::MalformedKind, n: usize) -> Result<(), End> {
        use crate::faults::MalformedKind as K;
        for i in 0..n.min(1000) {
            let p = malformed::payload(kind, i);
            self.shared.record(
                LogEntry::new(LogKind::FrameOut)
                    .transport(T)
                    .conn(self.id)
                    .frame_type("malformed"),
            );
            match kind {
                K::GarbageBytes => self.send_msg(Message::binary(p)).await?,
                K::InvalidUtf8 => self.raw(&malformed::ws_frame(0x1, &p)).await?,
                _ => {
                    self.send_msg(Message::text(String::from_utf8_lossy(&p).into_owned()))
                        .await?
                }
            }
        }
        Ok(())
    }

    async fn drive(
        &mut self,
        params: &Params,
        fault: Option<Fault>,
        mut notices: broadcast::Receiver<Notice>,
        mut kill: watch::Receiver<u64>,
        mut ctrl: mpsc::Receiver<Control>,
    ) -> End {
        match &fault {
            Some(Fault::CloseBeforeHello { code, reason }) => {
                return self.close(*code, reason).await
            }
            Some(Fault::RetryLater { after_ms }) => {
                if let Err(e) = self
                    .send(&ServerFrame::RetryLater {
                        after_ms: *after_ms,
                    })
                    .await
                {
                    return e;
                }
                return self.close(1000, "retry later").await;
            }
            _ => {}
        }
        let (mut session, frames) =
            match Session::open(&self.shared, &params.channels, params.cursor.as_deref()).await {
                Ok(x) => x,
                Err(e) => {
                    let f = ServerFrame::Error {
                        code: "server_error".into(),
                        message: Some(e.to_string()),
                        id: None,
                        terminal: false,
                    };
                    let _ = self.send(&f).await;
                    return self.close(1011, "store failed").await;
                }
            };
        if let Err(e) = self.send_all(&frames).await {
            return e;
        }
        let mut deadline: Option<(Instant, Fault)> = None;
        match fault {
            Some(Fault::Malformed { kind, frames }) => {
                if let Err(e) = self.malformed(kind, frames).await {
                    return e;
                }
            }
            Some(Fault::ErrorFrame {
                code,
                terminal,
                id,
                message,
            }) => {
                let f = ServerFrame::Error {
                    code,
                    message,
                    id,
                    terminal,
                };
                if let Err(e) = self.send(&f).await {
                    return e;
                }
            }
            Some(Fault::Oversized { bytes }) => {
                self.shared.record(
                    LogEntry::new(LogKind::FrameOut)
                        .transport(T)
                        .conn(self.id)
                        .frame_type("oversized"),
                );
                if let Err(e) = self
                    .send_msg(Message::text(malformed::oversized_frame(bytes)))
                    .await
                {
                    return e;
                }
            }
            Some(
                f @ (Fault::CloseAfterHello { after_ms, .. }
                | Fault::DropMidFrame { after_ms }
                | Fault::Blackhole { after_ms }),
            ) => {
                deadline = Some((Instant::now() + Duration::from_millis(after_ms), f));
            }
            _ => {}
        }
        if let Some((at, f)) = deadline.take() {
            if at <= Instant::now() {
                return self.on_fault(f, &mut kill).await;
            }
            deadline = Some((at, f));
        }
        if let Err(e) = session.catch_up_all(session.channels(), self).await {
            return e;
        }
        let hb = self.shared.cfg.heartbeat;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + hb, hb);
        loop {
            let fault_at = async {
                match &deadline {
                    Some((t, _)) => sleep_until(*t).await,
                    None => std::future::pending().await,
                }
            };
            let shaped_at = shape::due(self.shaper.as_ref().and_then(Shaper::deadline));
            tokio::select! {
                biased;
                _ = kill.changed() => return "dropped (restart)".into(),
                _ = fault_at => {
                    let Some((_, f)) = deadline.take() else { continue };
                    return self.on_fault(f, &mut kill).await;
                }
                _ = shaped_at => {
                    if let Err(e) = self.release().await {
                        return e;
                    }
                }
                c = ctrl.recv() => match c {
                    Some(Control::Drain { from_ms, to_ms }) => {
                        if let Err(e) = self.send(&ServerFrame::Drain { from_ms, to_ms, reason: Some("draining".into()) }).await {
                            return e;
                        }
                        return self.close(1000, "draining").await;
                    }
                    Some(Control::Close { code, reason }) => return self.close(code, &reason).await,
                    Some(Control::AuthExpired) => return self.close(4001, "auth expired").await,
                    None => return "unregistered".into(),
                },
                n = notices.recv() => {
                    if let Err(e) = session.on_notice(n, self).await {
                        return e;
                    }
                }
                m = self.ws.next() => match m {
                    None => return "client closed TCP".into(),
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)) {
                            return self.close(1009, "frame too large").await;
                        }
                        return format!("read failed: {text}");
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
                        return match frame {
                            Some(f) => format!("client close {} {}", u16::from(f.code), f.reason),
                            None => "client close".into(),
                        };
                    }
                    Some(Ok(Message::Text(t))) => {
                        if let Err(e) = self.on_text(&mut session, t.as_str()).await {
                            return e;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        if let Err(e) = self.on_malformed("binary message").await {
                            return e;
                        }
                    }
                    Some(Ok(_)) => {}
                },
                _ = heartbeat.tick() => {
                    if let Err(e) = self.send(&ServerFrame::Ping {}).await {
                        return e;
                    }
                }
            }
        }
    }

    /// A delayed stream fault fires.
    async fn on_fault(&mut self, f: Fault, kill: &mut watch::Receiver<u64>) -> End {
        self.shared.record(
            LogEntry::new(LogKind::Fault)
                .transport(T)
                .conn(self.id)
                .detail(f.name()),
        );
        match f {
            Fault::CloseAfterHello { code, reason, .. } => self.close(code, &reason).await,
            Fault::DropMidFrame { .. } => {
                let frame = malformed::ws_frame(0x1, malformed::sample_msg().as_bytes());
                let _ = self.raw(&frame[..frame.len() / 2]).await;
                "dropped mid-frame".into()
            }
            _ => {
                // Blackhole: send nothing, read nothing, until the server drops it.
                let _ = kill.changed().await;
                "blackhole ended".into()
            }
        }
    }

    async fn on_malformed(&mut self, why: &str) -> Result<(), End> {
        self.malformed += 1;
        self.shared.record(
            LogEntry::new(LogKind::FrameIn)
                .transport(T)
                .conn(self.id)
                .frame_type("malformed")
                .detail(why),
        );
        let f = ServerFrame::Error {
            code: "frame_malformed".into(),
            message: Some(why.chars().take(200).collect()),
            id: None,
            terminal: false,
        };
        self.send(&f).await?;
        if self.malformed > MAX_MALFORMED {
            return Err(self.close(4002, "too many malformed frames").await);
        }
        Ok(())
    }

    async fn on_text(&mut self, session: &mut Session, text: &str) -> Result<(), End> {
        let frame = match ClientFrame::decode(text, self.shared.cfg.max_frame_bytes) {
            Ok(f) => f,
            Err(FrameError::UnknownType(t)) => {
                self.shared.record(
                    LogEntry::new(LogKind::FrameIn)
                        .transport(T)
                        .conn(self.id)
                        .frame_type("unknown")
                        .detail(t.chars().take(64).collect::<String>()),
                );
                return Ok(());
            }
            Err(e) => return self.on_malformed(&e.to_string()).await,
        };
        let kind = match &frame {
            ClientFrame::Subscribe { .. } => "subscribe",
            ClientFrame::Unsubscribe { .. } => "unsubscribe",
            ClientFrame::Publish { .. } => "publish",
            ClientFrame::Ping {} => "ping",
            ClientFrame::Pong {} => "pong",
        };
        let mut e = LogEntry::new(LogKind::FrameIn)
            .transport(T)
            .conn(self.id)
            .frame_type(kind);
        match &frame {
            ClientFrame::Subscribe { channel } | ClientFrame::Unsubscribe { channel } => {
                e.detail = Some(channel.clone())
            }
            ClientFrame::Publish { id, channel, .. } => {
                e.detail = Some(format!(
                    "{channel} id={}",
                    id.chars().take(64).collect::<String>()
                ))
            }
            _ => {}
        }
        self.shared.record(e);
        match frame {
            ClientFrame::Subscribe { channel } => {
                if !self.shared.may_subscribe(self.token.as_deref(), &channel) {
                    // AUTH-5: a channel the token may not use is a terminal refusal.
                    let f = ServerFrame::Error {
                        code: "forbidden".into(),
                        message: Some(format!("channel {channel} is not permitted")),
                        id: None,
                        terminal: true,
                    };
                    self.send(&f).await?;
                    return Err(self.close(4003, "forbidden").await);
                }
                if !session.positions.contains_key(&channel)
                    && session.positions.len() >= self.shared.cfg.max_channels_per_connection
                {
                    let f = ServerFrame::Error {
                        code: "channel_limit".into(),
                        message: Some("too many channels on this connection".into()),
                        id: None,
                        terminal: false,
                    };
                    return self.send(&f).await;
                }
                match session.subscribe(&channel).await {
                    Ok(f) => self.send(&f).await,
                    Err(e) => {
                        let f = ServerFrame::Error {
                            code: e.code().into(),
                            message: Some(e.to_string()),
                            id: None,
                            terminal: false,
                        };
                        self.send(&f).await
                    }
                }
            }
            ClientFrame::Unsubscribe { channel } => {
                session.positions.remove(&channel);
                Ok(())
            }
            ClientFrame::Publish { id, channel, data } => {
                let f = match &self.reject {
                    Some(code) => crate::send::reject_publish(code, id),
                    None => {
                        match handle_publish(&self.shared, self.token.as_deref(), id, channel, data)
                            .await
                        {
                            Ok(f) if self.shared.faults.take_drop_ack(FaultTarget::WebSocket) => {
                                let _ = f;
                                self.notes(vec![
                                    "drop_ack: publish stored, connection cut before its ack"
                                        .into(),
                                ]);
                                return Err("cut (drop_ack)".into());
                            }
                            Ok(f) => f,
                            Err(_) => {
                                // Not stored, not acknowledged: the client keeps it and sends
                                // it again after the hint (READY-1, close 4009).
                                let ms = self.shared.cfg.not_ready_retry_after.as_millis();
                                return Err(self.close(4009, &ms.to_string()).await);
                            }
                        }
                    }
                };
                self.send(&f).await
            }
            ClientFrame::Ping {} => self.send(&ServerFrame::Pong {}).await,
            ClientFrame::Pong {} => Ok(()),
        }
    }
}
