//! The SSE rung over `fetch` with a streaming body reader: the bytes go to the engine's own WHATWG parser, never to `EventSource`; client frames go by `POST /send`.
//!
//! `EventSource` would not do: it cannot send the cursor on a first request, hides the HTTP
//! status, `Content-Type` and `Tether-Error` that FALLBACK-2 needs, and reconnects by itself,
//! which would fight the contract's backoff. Here the cursor travels as the `cursor` query
//! parameter (RESUME-2's form for clients that do not set headers: no CORS preflight per
//! connection) and every answer is seen whole.

use super::http::{self, abort_controller, Sender};
use super::Emitter;
use std::rc::Rc;
use tether_engine::{OpenRequest, TransportEvent, TransportFailure};
use web_sys::{AbortController, Response};

/// A live SSE stream and its `POST /send` worker. Dropping it aborts both.
pub(crate) struct SseConn {
    abort: AbortController,
    sender: Rc<Sender>,
}

impl SseConn {
    pub(crate) fn open(
        base: &str,
        req: &OpenRequest,
        max_body: usize,
        em: Emitter,
    ) -> Result<SseConn, TransportFailure> {
        let abort = abort_controller()?;
        let token = req.token.as_ref().map(|t| t.expose());
        let url = http::endpoint_url(
            base,
            "sse",
            &req.channels,
            req.cursor.as_deref(),
            token,
            &[],
        );
        let send_url = http::endpoint_url(base, "send", &[], None, token, &[]);
        let sender = Sender::new(send_url, abort.signal(), max_body, em.clone());
        let signal = abort.signal();
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(ev) = stream(&url, &signal, &em).await {
                em.emit(ev);
            }
        });
        Ok(SseConn { abort, sender })
    }

    pub(crate) fn transmit(&self, frames: Vec<String>) {
        self.sender.push(frames);
    }
}

impl Drop for SseConn {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// Run the stream; the last event to report (`None` when we aborted it).
async fn stream(url: &str, signal: &web_sys::AbortSignal, em: &Emitter) -> Option<TransportEvent> {
    let req = match http::request("GET", url, None, "text/event-stream", signal) {
        Ok(r) => r,
        Err(e) => {
            return Some(TransportEvent::Failed(TransportFailure::Unreachable(
                crate::js::describe(&e),
            )))
        }
    };
    let resp: Response = match http::fetch(&req).await {
        Ok(r) => r,
        Err(None) => return None,
        Err(Some(e)) => return Some(TransportEvent::Failed(TransportFailure::Unreachable(e))),
    };
    if resp.status() != 200 {
        return Some(TransportEvent::Failed(http::status_failure(&resp)));
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("text/event-stream") {
        return Some(TransportEvent::Failed(TransportFailure::WrongContentType(
            content_type,
        )));
    }
    em.emit(TransportEvent::Opened);
    let Some(reader) = http::reader(&resp) else {
        return Some(TransportEvent::Closed {
            code: None,
            reason: "no body".into(),
        });
    };
    loop {
        match http::next_chunk(&reader).await {
            // One chunk as the browser read it: its size is the browser's business, and the
            // engine's parser bounds what it buffers (LIMIT-3). Every chunk is liveness
            // already, so SSE needs no `Receiving` (HEARTBEAT-4).
            Ok(Some(chunk)) => em.emit(TransportEvent::SseBytes(chunk.to_vec())),
            Ok(None) => {
                return Some(TransportEvent::Closed {
                    code: None,
                    reason: "stream ended".into(),
                })
            }
            Err(None) => return None,
            Err(Some(e)) => return Some(TransportEvent::Failed(TransportFailure::Io(e))),
        }
    }
}
