//! The WebSocket rung on the browser's `WebSocket`: one text message per frame (WIRE-1), the token as `access_token` (AUTH-3), close codes passed through, and a diagnosis when the socket closes before it opened.
//!
//! What the browser does differently from a native stack, and what this rung does about it:
//! - A refused upgrade is an `error` then `close 1006`, with no HTTP status or headers: the
//!   rung asks the server with a plain `GET` of the same URL ([`http::diagnose`], WEB-2).
//! - Messages arrive whole (the browser has no message size limit): one over
//!   `max_frame_bytes` is reported as `frame_too_large` from its length, before it is copied
//!   into the module's memory (LIMIT-1), and the socket is closed.
//! - Invalid UTF-8 in a text message fails the connection inside the browser (RFC 6455 §8.1),
//!   which reports only `close 1006`: it reaches the engine as a broken connection.
//! - Scripts may only send close codes 1000 and 3000–4999: others (1007, 1009) are sent as
//!   1000 with the code in the reason.
//! - No `Receiving` (HEARTBEAT-2, CONN-6): the browser hands over a message only once it is
//!   whole and never says that bytes of one are arriving, so a large message on a slow link
//!   is seen only when it completes. The engine's deadlines (seconds) cover a message that
//!   arrives within them; a longer one looks like silence here, as the engine's
//!   `TransportEvent::Receiving` documents for hosts that cannot count socket bytes.

use super::http::{self, abort_controller};
use super::Emitter;
use js_sys::{ArrayBuffer, JsString, Uint8Array};
use std::cell::Cell;
use std::rc::Rc;
use tether_engine::{OpenRequest, TransportEvent, TransportFailure};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{AbortController, BinaryType, CloseEvent, MessageEvent, WebSocket};

/// The code the browser reports when a connection ended without a close frame.
const ABNORMAL: u16 = 1006;
/// The code the browser reports for a close frame without a code.
const NO_STATUS: u16 = 1005;

/// A live WebSocket and its handlers. Dropping it detaches the handlers first.
pub(crate) struct WsConn {
    ws: WebSocket,
    /// Aborts the diagnosis fetch when the engine gives up on the connection.
    abort: AbortController,
    closed: Rc<Cell<bool>>,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

/// The `ws(s)://` URL for an `http(s)://` one.
pub(crate) fn ws_scheme(http_url: &str) -> String {
    if let Some(rest) = http_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http_url.to_owned()
    }
}

/// A close code a script may send: 1000 and 3000–4999 as they are, others as 1000 (the
/// reason then starts with the code the engine asked for).
pub(crate) fn sendable_close(code: u16, reason: &str) -> (u16, String) {
    let (code, reason) = if code == 1000 || (3000..=4999).contains(&code) {
        (code, reason.to_owned())
    } else {
        (1000, format!("{code} {reason}"))
    };
    // A close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5).
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    (code, reason[..end].to_owned())
}

/// What a `close` event means for the engine: a clean close with its code (1005: none), or a
/// connection that broke (1006, 1015: no close frame).
pub(crate) fn close_event(code: u16, reason: String) -> TransportEvent {
    match code {
        NO_STATUS => TransportEvent::Closed { code: None, reason },
        ABNORMAL | 1015 => TransportEvent::Failed(TransportFailure::Io(
            "connection ended without a close frame".into(),
        )),
        c => TransportEvent::Closed {
            code: Some(c),
            reason,
        },
    }
}

impl WsConn {
    /// Open connection `req.conn`.
    pub(crate) fn open(
        base: &str,
        req: &OpenRequest,
        max_frame_bytes: usize,
        em: Emitter,
    ) -> Result<WsConn, TransportFailure> {
        let token = req.token.as_ref().map(|t| t.expose());
        let http_url =
            http::endpoint_url(base, "ws", &req.channels, req.cursor.as_deref(), token, &[]);
        let ws = WebSocket::new(&ws_scheme(&http_url)).map_err(|e| {
            TransportFailure::Unreachable(format!(
                "{}: {}",
                http::redact(&http_url),
                crate::js::describe(&e)
            ))
        })?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let abort = abort_controller()?;
        let opened = Rc::new(Cell::new(false));
        let closed = Rc::new(Cell::new(false));

        let on_open = {
            let (em, opened, closed) = (em.clone(), opened.clone(), closed.clone());
            Closure::<dyn FnMut()>::new(move || {
                if closed.get() {
                    return;
                }
                opened.set(true);
                em.emit(TransportEvent::Opened);
            })
        };
        let on_message = {
            let (em, closed, ws2) = (em.clone(), closed.clone(), ws.clone());
            Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                if closed.get() {
                    return;
                }
                let data = ev.data();
                let event = if let Some(s) = data.dyn_ref::<JsString>() {
                    // UTF-8 needs at least one byte per UTF-16 unit: longer is too large.
                    if s.length() as usize > max_frame_bytes {
                        too_large(&ws2, &closed, s.length() as usize, max_frame_bytes)
                    } else {
                        TransportEvent::Text(String::from(s))
                    }
                } else if let Some(buf) = data.dyn_ref::<ArrayBuffer>() {
                    if buf.byte_length() as usize > max_frame_bytes {
                        too_large(&ws2, &closed, buf.byte_length() as usize, max_frame_bytes)
                    } else {
                        TransportEvent::Binary(Uint8Array::new(buf).to_vec())
                    }
                } else {
                    return;
                };
                em.emit(event);
            })
        };
        let on_close = {
            let (em, opened, closed, signal) =
                (em.clone(), opened.clone(), closed.clone(), abort.signal());
            Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
                if closed.replace(true) {
                    return;
                }
                if opened.get() {
                    em.emit(close_event(ev.code(), ev.reason()));
                    return;
                }
                // Closed before it opened: the browser hides why; ask the server (WEB-2).
                let (em, url, signal) = (em.clone(), http_url.clone(), signal.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    if let Some(failure) = http::diagnose(&url, &signal).await {
                        em.emit(TransportEvent::Failed(failure));
                    }
                });
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(WsConn {
            ws,
            abort,
            closed,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Send each frame as one text message. A send on a socket that is not open is dropped:
    /// the engine only transmits on open connections and resends what was not acknowledged.
    pub(crate) fn transmit(&self, frames: Vec<String>) {
        for f in frames {
            if self.ws.send_with_str(&f).is_err() {
                return;
            }
        }
    }

    /// Close with `code` (or the nearest code a script may send) and stop reporting.
    pub(crate) fn close(self, code: u16, reason: &str) {
        self.closed.set(true);
        self.abort.abort();
        let (code, reason) = sendable_close(code, reason);
        let _ = self.ws.close_with_code_and_reason(code, &reason);
        // `Drop` detaches the handlers.
    }
}

impl Drop for WsConn {
    fn drop(&mut self) {
        self.closed.set(true);
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close_with_code_and_reason(1000, "client gone");
        }
    }
}

/// LIMIT-1: refuse a message over the limit without copying it, and close (1009, sent as 1000).
fn too_large(ws: &WebSocket, closed: &Cell<bool>, size: usize, limit: usize) -> TransportEvent {
    closed.set(true);
    let (code, reason) = sendable_close(1009, "message too big");
    let _ = ws.close_with_code_and_reason(code, &reason);
    TransportEvent::Failed(TransportFailure::FrameTooLarge(format!(
        "a message of at least {size} bytes exceeds max_frame_bytes {limit}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_9_close_codes_scripts_may_send() {
        assert_eq!(sendable_close(1000, "bye"), (1000, "bye".into()));
        assert_eq!(sendable_close(4002, "bad"), (4002, "bad".into()));
        assert_eq!(
            sendable_close(1009, "message too big"),
            (1000, "1009 message too big".into())
        );
        let long = "é".repeat(100);
        let (_, r) = sendable_close(4000, &long);
        assert!(r.len() <= 123 && long.starts_with(&r));
    }

    #[test]
    fn wire_9_close_events_map_to_the_engine() {
        assert_eq!(
            close_event(1005, String::new()),
            TransportEvent::Closed {
                code: None,
                reason: String::new()
            }
        );
        assert_eq!(
            close_event(4009, "180".into()),
            TransportEvent::Closed {
                code: Some(4009),
                reason: "180".into()
            }
        );
        assert!(matches!(
            close_event(1006, String::new()),
            TransportEvent::Failed(TransportFailure::Io(_))
        ));
    }

    #[test]
    fn ws_urls_follow_the_endpoint_scheme() {
        assert_eq!(ws_scheme("https://h/t/ws?v=1"), "wss://h/t/ws?v=1");
        assert_eq!(ws_scheme("http://h:1/t/ws"), "ws://h:1/t/ws");
    }
}
