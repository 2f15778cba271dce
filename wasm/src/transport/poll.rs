//! The long-poll rung: `GET /poll` with `fetch`, answered with a JSON array of frames (capped, LIMIT-2), the first one with `hello=1`, plus `POST /send` for client frames.
//!
//! Bytes of an answer still arriving are reported as `Receiving` (throttled, HEARTBEAT-4,
//! CONN-6), so a large answer on a slow link is neither a dead poll nor a slow open.

use super::http::{self, abort_controller, Meter, Sender};
use super::Emitter;
use std::cell::Cell;
use std::rc::Rc;
use tether_engine::{OpenRequest, TransportEvent, TransportFailure};
use web_sys::{AbortController, AbortSignal};

/// A long-poll connection: at most one poll in flight, and its `POST /send` worker.
pub(crate) struct PollConn {
    abort: AbortController,
    sender: Rc<Sender>,
    shared: Rc<Polling>,
}

/// What every poll of a connection needs.
struct Polling {
    base: String,
    token: Option<String>,
    hold_ms: String,
    max_body: usize,
    signal: AbortSignal,
    in_flight: Cell<bool>,
    opened: Cell<bool>,
    em: Emitter,
}

impl PollConn {
    pub(crate) fn open(
        base: &str,
        req: &OpenRequest,
        max_body: usize,
        em: Emitter,
    ) -> Result<PollConn, TransportFailure> {
        let abort = abort_controller()?;
        let token = req.token.as_ref().map(|t| t.expose().to_owned());
        let send_url = http::endpoint_url(base, "send", &[], None, token.as_deref(), &[]);
        let sender = Sender::new(send_url, abort.signal(), max_body, em.clone());
        let shared = Rc::new(Polling {
            base: base.to_owned(),
            token,
            hold_ms: req.poll_hold.as_millis().to_string(),
            max_body,
            signal: abort.signal(),
            in_flight: Cell::new(false),
            opened: Cell::new(false),
            em,
        });
        let conn = PollConn {
            abort,
            sender,
            shared,
        };
        conn.start(req.cursor.clone(), req.channels.clone(), true);
        Ok(conn)
    }

    /// Issue the next poll. A poll asked while one is outstanding is redundant (the engine
    /// asks again after every answer), so it is coalesced.
    pub(crate) fn poll(&self, cursor: Option<String>, channels: Vec<String>) {
        self.start(cursor, channels, false);
    }

    fn start(&self, cursor: Option<String>, channels: Vec<String>, hello: bool) {
        let p = self.shared.clone();
        if p.in_flight.replace(true) {
            return;
        }
        wasm_bindgen_futures::spawn_local(async move {
            let answer = one_poll(&p, cursor.as_deref(), &channels, hello).await;
            p.in_flight.set(false);
            match answer {
                None => {}
                Some(Ok(body)) => {
                    if !p.opened.replace(true) {
                        p.em.emit(TransportEvent::Opened);
                    }
                    p.em.emit(TransportEvent::PollBody(body));
                }
                Some(Err(f)) => p.em.emit(TransportEvent::Failed(f)),
            }
        });
    }

    pub(crate) fn transmit(&self, frames: Vec<String>) {
        self.sender.push(frames);
    }
}

impl Drop for PollConn {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// One poll: the body, a failure, or `None` when we aborted it.
async fn one_poll(
    p: &Polling,
    cursor: Option<&str>,
    channels: &[String],
    hello: bool,
) -> Option<Result<Vec<u8>, TransportFailure>> {
    let mut extra = Vec::new();
    if hello {
        extra.push(("hello", "1"));
    }
    extra.push(("hold_ms", p.hold_ms.as_str()));
    let url = http::endpoint_url(
        &p.base,
        "poll",
        channels,
        cursor,
        p.token.as_deref(),
        &extra,
    );
    let req = match http::request("GET", &url, None, "application/json", &p.signal) {
        Ok(r) => r,
        Err(e) => return Some(Err(TransportFailure::Unreachable(crate::js::describe(&e)))),
    };
    let resp = match http::fetch(&req).await {
        Ok(r) => r,
        Err(None) => return None,
        Err(Some(e)) => return Some(Err(TransportFailure::Unreachable(e))),
    };
    if resp.status() != 200 {
        return Some(Err(http::status_failure(&resp)));
    }
    let mut meter = Meter::new(p.em.clone());
    let progress = |n| meter.add(crate::clock::now(), n);
    match http::read_capped(&resp, p.max_body, progress).await {
        Ok(body) => Some(Ok(body)),
        Err(None) => None,
        Err(Some(e)) => Some(Err(TransportFailure::Io(e))),
    }
}
