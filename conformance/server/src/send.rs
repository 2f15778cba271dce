//! `POST /send`: client frames in as a JSON array, acks and errors out (publishes of SSE and long-poll clients), and the shared publish path (OUTBOX-5).

use crate::error::StoreError;
use crate::faults::{Fault, FaultTarget};
use crate::http::{
    bad_params, gate, json_batch, log_out, log_request, refuse, swallow, tether_error, Gate, Params,
};
use crate::log::{LogEntry, LogKind};
use crate::state::Shared;
use crate::ServerState;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use tether_engine::error::FrameError;
use tether_engine::frame::{ClientFrame, ServerFrame};

const T: &str = "send";
/// Longest publish id accepted.
pub(crate) const MAX_ID_BYTES: usize = 512;

/// Publish with dedupe: `ack{id, channel, seq}` (the original one for a repeated id), or a
/// non-terminal `error{code, id}` (the client drops that publish, OUTBOX-7). `Err` when the
/// store is unreachable: nothing was acknowledged and nothing is kept, so the caller makes
/// the client retry later (it keeps the publish in its outbox).
pub(crate) async fn handle_publish(
    shared: &Shared,
    token: Option<&str>,
    id: String,
    channel: String,
    data: Value,
) -> Result<ServerFrame, StoreError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Ok(ServerFrame::Error {
            code: "frame_malformed".into(),
            message: Some(format!("publish id must be 1..={MAX_ID_BYTES} bytes")),
            id: None,
            terminal: false,
        });
    }
    if !shared.may_publish(token, &channel) {
        return Ok(ServerFrame::Error {
            code: "forbidden".into(),
            message: Some(format!("publishing to {channel} is not permitted")),
            id: Some(id),
            terminal: false,
        });
    }
    let r = shared.publish_once(&id, &channel, data).await;
    if let Err(e @ StoreError::Backend(_)) = r {
        shared.record(LogEntry::new(LogKind::Action).detail(format!("publish not stored: {e}")));
        return Err(e);
    }
    Ok(match r {
        Ok(p) => {
            if p.duplicate {
                shared.record(LogEntry::new(LogKind::Action).detail(format!(
                    "duplicate publish id={} acked again",
                    id.chars().take(64).collect::<String>()
                )));
            }
            ServerFrame::Ack {
                id,
                channel: Some(p.channel),
                seq: Some(p.seq),
            }
        }
        Err(e) => ServerFrame::Error {
            code: e.code().into(),
            message: Some(e.to_string()),
            id: Some(id),
            terminal: false,
        },
    })
}

/// The answer to a publish under the `reject_publish` fault (OUTBOX-7): nothing is stored.
pub(crate) fn reject_publish(code: &str, id: String) -> ServerFrame {
    ServerFrame::Error {
        code: code.to_owned(),
        message: Some("publish rejected (fault reject_publish)".into()),
        id: Some(id),
        terminal: false,
    }
}

/// The POST handler.
pub(crate) async fn handler(st: ServerState, alt: bool, req: Request) -> Response {
    let shared = st.shared.clone();
    let path = req.uri().path().to_owned();
    let cut = req.extensions().get::<crate::http::TcpCut>().cloned();
    let params = match Params::parse(&req, usize::MAX) {
        Ok(p) => p,
        Err(b) => {
            log_request(&shared, T, None, false, path);
            return bad_params(&shared, T, b);
        }
    };
    log_request(&shared, T, Some(&params), false, path.clone());
    let reject = match gate(&shared, FaultTarget::Send, &params, false, alt, &path) {
        Gate::Pass(Some(Fault::RejectPublish { code })) => Some(code),
        Gate::Pass(_) => None,
        Gate::Answer(r) => return r,
        Gate::Swallow => return swallow(&shared).await,
    };
    let limit = shared.cfg.max_frame_bytes.saturating_mul(16);
    let body = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => {
            let resp = tether_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "frame_too_large",
                None,
                "body too large or unreadable",
            );
            return refuse(&shared, T, None, resp);
        }
    };
    let malformed = |why: String| ServerFrame::Error {
        code: "frame_malformed".into(),
        message: Some(why),
        id: None,
        terminal: false,
    };
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => return answer(&shared, vec![malformed("body is not UTF-8".into())]),
    };
    let items = match ClientFrame::decode_batch(text, limit) {
        Ok(items) => items,
        Err(e) => return answer(&shared, vec![malformed(e.to_string())]),
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Ok(ClientFrame::Publish { id, channel, data }) => {
                shared.record(LogEntry::new(LogKind::FrameIn).transport(T).frame_type("publish").detail(channel.clone()));
                out.push(match &reject {
                    Some(code) => reject_publish(code, id),
                    None => match handle_publish(&shared, params.token.as_deref(), id, channel, data).await {
                        Ok(_) if shared.faults.take_drop_ack(FaultTarget::Send) => {
                            return drop_ack(&shared, cut).await;
                        }
                        Ok(f) => f,
                        Err(e) => return not_ready_for(&shared, T, &e),
                    },
                });
            }
            Ok(ClientFrame::Ping {}) => out.push(ServerFrame::Pong {}),
            Ok(ClientFrame::Pong {}) => {}
            Ok(ClientFrame::Subscribe { .. } | ClientFrame::Unsubscribe { .. }) => out.push(ServerFrame::Error {
                code: "bad_request".into(),
                message: Some("SSE and long-poll subscriptions are the `channels` of the stream request; reconnect to change them".into()),
                id: None,
                terminal: false,
            }),
            Err(FrameError::UnknownType(_)) => {}
            Err(e) => out.push(malformed(e.to_string())),
        }
    }
    answer(&shared, out)
}

/// `drop_ack`: the publish is stored; cut the connection instead of answering.
async fn drop_ack(shared: &Shared, cut: Option<crate::http::TcpCut>) -> Response {
    shared.record(
        LogEntry::new(LogKind::Fault)
            .transport(T)
            .detail("drop_ack: publish stored, answer cut"),
    );
    if let Some(c) = cut {
        c.0.notify_one();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let stream = futures_util::stream::iter([Err::<bytes::Bytes, _>(std::io::Error::other(
        "fault: drop_ack",
    ))]);
    crate::http::plain(
        StatusCode::OK,
        "application/json",
        axum::body::Body::from_stream(stream),
    )
}

/// 503 `not_ready`: the store could not take a publish; the client sends it again later.
pub(crate) fn not_ready_for(shared: &Shared, transport: &str, e: &StoreError) -> Response {
    let resp = tether_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        Some(shared.cfg.not_ready_retry_after),
        &e.to_string(),
    );
    refuse(shared, transport, None, resp)
}

fn answer(shared: &Shared, frames: Vec<ServerFrame>) -> Response {
    for f in &frames {
        log_out(shared, T, None, f);
    }
    json_batch(&frames)
}
