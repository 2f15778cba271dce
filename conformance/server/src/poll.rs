//! `GET /poll`: long-polling (a JSON array per answer; `hello=1` opens a connection), holds up to the heartbeat, with its faults.

use crate::faults::{Fault, FaultTarget, MalformedKind};
use crate::http::{
    bad_params, gate, json_batch, log_out, log_request, plain, store_failed, swallow, tether_error,
    Gate, Params, TcpCut,
};
use crate::log::{LogEntry, LogKind};
use crate::malformed;
use crate::session::{log_open, Session};
use crate::state::{lock, Control, LpFollowup, Shared};
use crate::ServerState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tether_engine::frame::ServerFrame;
use tokio::time::{sleep_until, Instant};

const T: &str = "long_poll";
/// Most frames in one answer (RESUME-7).
const MAX_FRAMES: usize = 1024;
/// Most bytes of replayed or live messages in the hello answer (`hello=1`): the hello must
/// not wait behind its own catch-up on a slow link (RESUME-7, CONN-6).
pub const HELLO_CATCH_UP_BYTES: usize = 16 * 1024;
/// Most bytes of messages in any later answer; at least one message goes whatever its size
/// (RESUME-7).
pub const ANSWER_BYTES: usize = 256 * 1024;
/// Messages read per store call while filling an answer.
const FILL_BATCH: usize = 8;
/// Most armed follow-up faults kept.
const MAX_FOLLOWUPS: usize = 1024;

/// The poll handler.
pub(crate) async fn handler(st: ServerState, alt: bool, req: Request) -> Response {
    let shared = st.shared.clone();
    let path = req.uri().path().to_owned();
    let cut = req.extensions().get::<TcpCut>().cloned();
    let params = match Params::parse(&req, shared.cfg.max_channels_per_connection) {
        Ok(p) => p,
        Err(b) => {
            log_request(&shared, T, None, true, path);
            return bad_params(&shared, T, b);
        }
    };
    let handshake = params.hello;
    log_request(&shared, T, Some(&params), handshake, path.clone());
    let fault = match gate(
        &shared,
        FaultTarget::LongPoll,
        &params,
        handshake,
        alt,
        &path,
    ) {
        Gate::Pass(f) => f,
        Gate::Answer(r) => return r,
        Gate::Swallow => return swallow(&shared).await,
    };
    if handshake {
        hello_poll(&shared, params, fault, cut).await
    } else {
        poll(&shared, params, fault, cut).await
    }
}

fn answer(shared: &Shared, conn: Option<u64>, frames: &[ServerFrame]) -> Response {
    for f in frames {
        log_out(shared, T, conn, f);
    }
    json_batch(frames)
}

/// Cut the TCP connection now (when served by [`Server`](crate::Server)), else abort the body.
async fn cut_now(shared: &Shared, cut: Option<TcpCut>, why: &str) -> Response {
    shared.record(
        LogEntry::new(LogKind::Close)
            .transport(T)
            .detail(format!("cut: {why}")),
    );
    if let Some(c) = cut {
        c.0.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let stream = futures_util::stream::iter([Err::<Bytes, _>(std::io::Error::other("fault: cut"))]);
    plain(
        StatusCode::OK,
        "application/json",
        Body::from_stream(stream),
    )
}

fn arm(shared: &Shared, params: &Params, fault: Fault, after_ms: u64) {
    let mut q = lock(&shared.lp_followups);
    if q.len() >= MAX_FOLLOWUPS {
        q.pop_front();
    }
    q.push_back(LpFollowup {
        channels: params.channels_key(),
        fault,
        not_before: Instant::now() + Duration::from_millis(after_ms),
    });
}

fn take_followup(shared: &Shared, key: &str) -> Option<Fault> {
    let mut q = lock(&shared.lp_followups);
    let now = Instant::now();
    let i = q
        .iter()
        .position(|f| f.channels == key && f.not_before <= now)?;
    q.remove(i).map(|f| f.fault)
}

async fn hello_poll(
    shared: &Arc<Shared>,
    params: Params,
    fault: Option<Fault>,
    cut: Option<TcpCut>,
) -> Response {
    match &fault {
        Some(Fault::CloseBeforeHello { .. }) => {
            return cut_now(shared, cut, "close before hello").await
        }
        Some(Fault::RetryLater { after_ms }) => {
            return answer(
                shared,
                None,
                &[ServerFrame::RetryLater {
                    after_ms: *after_ms,
                }],
            )
        }
        Some(
            f @ (Fault::CloseAfterHello { after_ms, .. }
            | Fault::DropMidFrame { after_ms }
            | Fault::Blackhole { after_ms }),
        ) => arm(shared, &params, f.clone(), *after_ms),
        Some(f @ (Fault::Malformed { .. } | Fault::Oversized { .. })) => {
            arm(shared, &params, f.clone(), 0)
        }
        _ => {}
    }
    let id = shared.next_conn_id();
    let (mut session, mut frames) =
        match Session::open(shared, &params.channels, params.cursor.as_deref()).await {
            Ok(x) => x,
            Err(e) => return store_failed(shared, T, &e),
        };
    log_open(shared, T, id, &params);
    if let Some(Fault::ErrorFrame {
        code,
        terminal,
        id,
        message,
    }) = fault
    {
        frames.push(ServerFrame::Error {
            code,
            message,
            id,
            terminal,
        });
    }
    let channels = session.channels();
    let budget = Budget::hello();
    if let Err(e) = fill(&mut session, &mut frames, channels, budget).await {
        return store_failed(shared, T, &e);
    }
    answer(shared, Some(id), &frames)
}

/// How much catch-up an answer may carry (RESUME-7).
#[derive(Clone, Copy, Debug)]
struct Budget {
    /// Most bytes of `msg` frames.
    bytes: usize,
    /// True when at least one message goes whatever its size (not for the hello answer,
    /// which must stay small: its messages follow on the next poll).
    at_least_one: bool,
}

impl Budget {
    fn hello() -> Budget {
        Budget {
            bytes: HELLO_CATCH_UP_BYTES,
            at_least_one: false,
        }
    }

    fn answer() -> Budget {
        Budget {
            bytes: ANSWER_BYTES,
            at_least_one: true,
        }
    }
}

/// Append replayed/live messages on `channels` after the session's positions, within the
/// answer's frame and byte budget (RESUME-7). A batch read past the budget is cut: each
/// `msg` carries the cursor after it, so the next poll resumes from the last one sent (the
/// session's own positions are not used again).
async fn fill(
    session: &mut Session,
    frames: &mut Vec<ServerFrame>,
    channels: Vec<String>,
    budget: Budget,
) -> Result<(), crate::error::StoreError> {
    let mut bytes = 0usize;
    let mut msgs = 0usize;
    for ch in channels {
        loop {
            if frames.len() >= MAX_FRAMES || bytes >= budget.bytes {
                return Ok(());
            }
            let batch = session.next_batch(&ch, FILL_BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for f in batch {
                if let ServerFrame::Msg { .. } = f {
                    let size = f.encode().len();
                    let first = msgs == 0 && budget.at_least_one;
                    if frames.len() >= MAX_FRAMES || (bytes + size > budget.bytes && !first) {
                        return Ok(());
                    }
                    bytes += size;
                    msgs += 1;
                }
                // `reset` and its `subscribed` stay together and are not counted.
                frames.push(f);
            }
        }
    }
    Ok(())
}

/// The answer of a poll hit by a follow-up fault, or `None` to go on normally.
async fn apply_followup(shared: &Shared, fault: Fault, cut: Option<TcpCut>) -> Option<Response> {
    shared.record(
        LogEntry::new(LogKind::Fault)
            .transport(T)
            .detail(fault.name()),
    );
    let json = |body: Vec<u8>| plain(StatusCode::OK, "application/json", body);
    match fault {
        Fault::CloseAfterHello { .. } => Some(cut_now(shared, cut, "close after hello").await),
        Fault::DropMidFrame { .. } => {
            let whole = format!("[{}]", malformed::sample_msg());
            let half = Bytes::from(whole.into_bytes()).slice(..40);
            let stream = futures_util::stream::unfold(0u8, move |step| {
                let half = half.clone();
                async move {
                    match step {
                        0 => Some((Ok(half), 1)),
                        1 => {
                            // Let the half body reach the socket before the body fails.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((Err(std::io::Error::other("fault: drop mid-frame")), 2))
                        }
                        _ => None,
                    }
                }
            });
            Some(plain(
                StatusCode::OK,
                "application/json",
                Body::from_stream(stream),
            ))
        }
        Fault::Blackhole { .. } => Some(swallow(shared).await),
        Fault::Malformed { kind, frames } => {
            let n = frames.clamp(1, 1000);
            let body = match kind {
                MalformedKind::GarbageBytes | MalformedKind::NonJson => malformed::payload(kind, 0),
                _ => {
                    let mut b = b"[".to_vec();
                    for i in 0..n {
                        b.extend_from_slice(&malformed::payload(kind, i));
                        b.push(b',');
                    }
                    b.extend_from_slice(br#"{"type":"ping"}]"#);
                    b
                }
            };
            Some(json(body))
        }
        Fault::Oversized { bytes } => Some(json(
            format!("[{}]", malformed::oversized_frame(bytes)).into_bytes(),
        )),
        _ => None,
    }
}

async fn poll(
    shared: &Arc<Shared>,
    params: Params,
    fault: Option<Fault>,
    cut: Option<TcpCut>,
) -> Response {
    let key = params.channels_key();
    if let Some(f) = fault.or_else(|| take_followup(shared, &key)) {
        if let Some(resp) = apply_followup(shared, f, cut.clone()).await {
            return resp;
        }
    }
    if let Some(d) = shared.draining() {
        return answer(
            shared,
            None,
            &[ServerFrame::Drain {
                from_ms: d.from_ms,
                to_ms: d.to_ms,
                reason: Some("draining".into()),
            }],
        );
    }
    let mut notices = shared.notify.subscribe();
    let mut kill = shared.kill.subscribe();
    let (mut session, placement) =
        match Session::place(shared.store(), &params.channels, params.cursor.as_deref()).await {
            Ok(x) => x,
            Err(e) => return store_failed(shared, T, &e),
        };
    let mut frames = Vec::new();
    let c = session.cursor();
    for ch in &params.channels {
        let seq = session.positions.get(ch).copied().unwrap_or(0);
        if placement.reset.contains(ch) {
            frames.push(ServerFrame::Reset {
                channel: ch.clone(),
                cursor: Some(c.clone()),
            });
        }
        if placement.reset.contains(ch) || placement.fresh.contains(ch) {
            frames.push(ServerFrame::Subscribed {
                channel: ch.clone(),
                seq,
                cursor: Some(c.clone()),
            });
        }
    }
    let channels = session.channels();
    if let Err(e) = fill(&mut session, &mut frames, channels, Budget::answer()).await {
        return store_failed(shared, T, &e);
    }
    if !frames.is_empty() {
        return answer(shared, None, &frames);
    }
    let mut hold = shared.cfg.poll_hold.min(shared.cfg.heartbeat);
    if let Some(ms) = params.hold_ms {
        hold = hold.min(Duration::from_millis(ms));
    }
    let deadline = Instant::now() + hold;
    let held = shared.next_conn_id();
    let (_guard, mut ctrl) = shared.register(held, T, params.token.clone());
    loop {
        // Biased, restart first: a restart with a publish right behind it must cut the held
        // poll, not answer it (an unbiased select would pick either).
        tokio::select! {
            biased;
            _ = kill.changed() => return cut_now(shared, cut, "restart").await,
            _ = sleep_until(deadline) => return answer(shared, None, &[ServerFrame::Ping {}]),
            c = ctrl.recv() => match c {
                Some(Control::Drain { from_ms, to_ms }) => {
                    return answer(shared, None, &[ServerFrame::Drain { from_ms, to_ms, reason: Some("draining".into()) }]);
                }
                Some(Control::AuthExpired) => {
                    return tether_error(StatusCode::UNAUTHORIZED, "auth_expired", None, "token expired");
                }
                Some(Control::Close { .. }) | None => return answer(shared, None, &[]),
            },
            n = notices.recv() => {
                let Some(channels) = session.noticed(n) else {
                    return answer(shared, None, &[]);
                };
                if let Err(e) = fill(&mut session, &mut frames, channels, Budget::answer()).await {
                    return store_failed(shared, T, &e);
                }
                if !frames.is_empty() {
                    return answer(shared, None, &frames);
                }
            }
        }
    }
}
