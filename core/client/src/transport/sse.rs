//! The SSE rung: a streaming `GET /sse` (reqwest) whose raw chunks go to the engine's own
//! WHATWG parser, plus `POST /send` for client frames.
//!
//! The transport does not parse the event stream: the engine's incremental parser (SSE-1..9,
//! LIMIT-3) does, identically on every platform. `eventsource-stream` appears only as a peer in
//! the benchmark program, never here.

use super::http::{bearer, endpoint_url, request_failure, sender, status_failure};
use super::{closed, AbortOnDrop, ConnCommand, Emitter, Io};
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use std::sync::Arc;
use tether_engine::{OpenRequest, TransportEvent, TransportFailure};
use tokio::sync::mpsc;

/// Run connection `req.conn` until it ends or the driver closes it.
pub(crate) async fn run(
    io: Arc<Io>,
    req: OpenRequest,
    mut rx: mpsc::UnboundedReceiver<ConnCommand>,
    em: Emitter,
) {
    // RESUME-2: native clients can set headers, so the cursor travels as Last-Event-ID.
    let url = endpoint_url(&io.endpoint, "sse", &req.channels, None);
    let auth = req.token.as_ref().and_then(bearer);
    let http = match io.http() {
        Ok(h) => h,
        Err(e) => return fail(&em, TransportFailure::Unreachable(e)).await,
    };
    let mut get = http
        .get(url)
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache");
    if let Some(c) = &req.cursor {
        get = get.header("last-event-id", c.as_str());
    }
    if let Some(a) = &auth {
        get = get.header(AUTHORIZATION, a.clone());
    }
    // Boxed: the request's state is freed once the stream is open (idle memory).
    let answer = tokio::select! {
        r = Box::pin(get.send()) => r,
        () = closed(&mut rx) => return,
    };
    let resp = match answer {
        Err(e) => return fail(&em, request_failure(&e)).await,
        Ok(r) => r,
    };
    let status = resp.status().as_u16();
    if status != 200 {
        return fail(&em, status_failure(status, resp.headers())).await;
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("text/event-stream") {
        return fail(&em, TransportFailure::WrongContentType(content_type)).await;
    }
    tracing::debug!("sse stream opened");
    if !em.emit(TransportEvent::Opened).await {
        return;
    }
    let send_url = endpoint_url(&io.endpoint, "send", &[], None);
    let (batches, batch_rx) = mpsc::unbounded_channel();
    let _sender = AbortOnDrop(tokio::spawn(sender(
        io.clone(),
        send_url,
        auth,
        batch_rx,
        em.clone(),
    )));
    let mut body = resp.bytes_stream();
    loop {
        tokio::select! {
            chunk = body.next() => {
                let event = match chunk {
                    // hyper hands over what one socket read produced: bounded by its buffer.
                    Some(Ok(bytes)) => TransportEvent::SseBytes(bytes.to_vec()),
                    Some(Err(e)) => {
                        let detail = super::http::describe(&e);
                        tracing::info!(error = %detail, "sse stream failed");
                        em.emit(TransportEvent::Failed(TransportFailure::Io(detail))).await;
                        return;
                    }
                    None => {
                        tracing::info!("sse stream ended");
                        em.emit(TransportEvent::Closed { code: None, reason: "stream ended".into() }).await;
                        return;
                    }
                };
                if !em.emit(event).await {
                    return;
                }
            }
            cmd = rx.recv() => match cmd {
                Some(ConnCommand::Transmit(frames)) => {
                    let _ = batches.send(frames);
                }
                Some(ConnCommand::Poll { .. }) => {}
                Some(ConnCommand::Close { code, .. }) => {
                    tracing::debug!(close_code = code, "closing sse stream");
                    tracing::Span::current().record("close_code", code);
                    return;
                }
                None => return,
            }
        }
    }
}

async fn fail(em: &Emitter, failure: TransportFailure) {
    tracing::debug!(?failure, "sse open failed");
    em.emit(TransportEvent::Failed(failure)).await;
}
