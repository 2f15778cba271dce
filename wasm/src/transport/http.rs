//! `fetch` plumbing shared by the rungs: URLs (WIRE-2, AUTH-3's browser form), status mapping (WIRE-10, READY-1), bounded body reads (LIMIT-2), `POST /send`, the readiness probe (READY-4) and the diagnosis of a refused WebSocket upgrade.

use super::Emitter;
use crate::js;
use js_sys::{Reflect, Uint8Array};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use tether_engine::frame::encode_batch;
use tether_engine::transport::RECEIVING_INTERVAL;
use tether_engine::{Instant, ReadyAnswer, TransportEvent, TransportFailure};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, Request, RequestCache, RequestInit, Response};

/// `Tether-Error` (WIRE-10).
pub(crate) const TETHER_ERROR: &str = "tether-error";
/// `Tether-Retry-After-Ms` (READY-1).
pub(crate) const TETHER_RETRY_AFTER_MS: &str = "tether-retry-after-ms";
/// Largest `/ready` answer read.
const MAX_READY_BODY: usize = 4096;
/// How long a readiness probe may take.
const READY_TIMEOUT_MS: f64 = 10_000.0;

/// `encodeURIComponent` for one query value (RFC 3986 unreserved characters kept).
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The URL of `path` under the endpoint with the protocol query (WIRE-2): `v=1`, `channels`,
/// `cursor`, the token as `access_token` (AUTH-3: browsers cannot set headers on WebSocket;
/// every rung uses the same form), then `extra`.
pub(crate) fn endpoint_url(
    base: &str,
    path: &str,
    channels: &[String],
    cursor: Option<&str>,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> String {
    let mut url = format!("{base}/{path}?v=1");
    if !channels.is_empty() {
        url.push_str("&channels=");
        url.push_str(&encode_component(&channels.join(",")));
    }
    if let Some(c) = cursor {
        url.push_str("&cursor=");
        url.push_str(&encode_component(c));
    }
    if let Some(t) = token {
        url.push_str("&access_token=");
        url.push_str(&encode_component(t));
    }
    for (k, v) in extra {
        url.push('&');
        url.push_str(k);
        url.push('=');
        url.push_str(&encode_component(v));
    }
    url
}

/// The same URL with any `access_token` value replaced by `***`, for messages (AUTH-4).
pub(crate) fn redact(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some(("access_token", _)) => "access_token=***".to_owned(),
            _ => p.to_owned(),
        })
        .collect();
    format!("{head}?{}", parts.join("&"))
}

/// The retry-after hint: `Tether-Retry-After-Ms`, else `Retry-After` seconds (READY-1).
pub(crate) fn retry_after(ms: Option<&str>, seconds: Option<&str>) -> Option<core::time::Duration> {
    if let Some(ms) = ms.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(core::time::Duration::from_millis(ms));
    }
    seconds
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| core::time::Duration::from_secs(s.min(86_400)))
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).ok().flatten()
}

/// An answer that is not the expected one, as the engine needs to see it (FALLBACK-2a,
/// READY-1). The server exposes these headers to scripts with CORS (WEB-1).
pub(crate) fn status_failure(resp: &Response) -> TransportFailure {
    TransportFailure::HttpStatus {
        status: resp.status(),
        tether_error: header(resp, TETHER_ERROR).map(|s| s.trim().to_owned()),
        retry_after: retry_after(
            header(resp, TETHER_RETRY_AFTER_MS).as_deref(),
            header(resp, "retry-after").as_deref(),
        ),
    }
}

/// The `Content-Type` of a `POST /send` (WEB-5): CORS-safelisted, unlike `application/json`.
pub(crate) const SIMPLE_CONTENT_TYPE: &str = "text/plain;charset=UTF-8";

/// A `fetch` of `url` with `method`, aborted by `signal`. Only CORS-safelisted headers
/// (`Accept`, and `Content-Type: text/plain` for a body): no request needs a preflight.
pub(crate) fn request(
    method: &str,
    url: &str,
    body: Option<&str>,
    accept: &str,
    signal: &AbortSignal,
) -> Result<Request, JsValue> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_cache(RequestCache::NoStore);
    init.set_signal(Some(signal));
    let headers = web_sys::Headers::new()?;
    headers.set("accept", accept)?;
    if let Some(b) = body {
        // WEB-5: a CORS simple request, so no preflight precedes a publish. The body is
        // still the JSON array of WIRE-1; the server reads it whatever the type says.
        headers.set("content-type", SIMPLE_CONTENT_TYPE)?;
        init.set_body(&JsValue::from_str(b));
    }
    init.set_headers(&headers);
    Request::new_with_str_and_init(url, &init)
}

/// Send `req`: the response, or why there was none (`Err(None)` when we aborted it).
pub(crate) async fn fetch(req: &Request) -> Result<Response, Option<String>> {
    match JsFuture::from(js::fetch(req)).await {
        Ok(v) => v
            .dyn_into::<Response>()
            .map_err(|_| Some("not a Response".into())),
        Err(e) if js::is_abort(&e) => Err(None),
        Err(e) => Err(Some(js::describe(&e))),
    }
}

/// The body reader of a response.
pub(crate) fn reader(resp: &Response) -> Option<web_sys::ReadableStreamDefaultReader> {
    resp.body()?.get_reader().dyn_into().ok()
}

/// One chunk of a body: `Ok(None)` at its end, `Err(None)` when we aborted it.
pub(crate) async fn next_chunk(
    reader: &web_sys::ReadableStreamDefaultReader,
) -> Result<Option<Uint8Array>, Option<String>> {
    let r = match JsFuture::from(reader.read()).await {
        Ok(r) => r,
        Err(e) if js::is_abort(&e) => return Err(None),
        Err(e) => return Err(Some(js::describe(&e))),
    };
    let done = Reflect::get(&r, &JsValue::from_str("done"))
        .ok()
        .and_then(|d| d.as_bool())
        .unwrap_or(true);
    if done {
        return Ok(None);
    }
    Reflect::get(&r, &JsValue::from_str("value"))
        .ok()
        .and_then(|v| v.dyn_into::<Uint8Array>().ok())
        .map_or(Err(Some("a body chunk that is not bytes".into())), |v| {
            Ok(Some(v))
        })
}

/// Read a whole body, at most `limit + 1` bytes: an over-long body is handed on cut to
/// `limit + 1` bytes so the engine rejects it as `frame_too_large` (LIMIT-2) without more
/// ever being copied into the module's memory. `progress` is called for every chunk that
/// arrives before the body is complete.
pub(crate) async fn read_capped(
    resp: &Response,
    limit: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<u8>, Option<String>> {
    let Some(reader) = reader(resp) else {
        return Ok(Vec::new());
    };
    let mut body = Vec::new();
    while let Some(chunk) = next_chunk(&reader).await? {
        let room = limit.saturating_add(1).saturating_sub(body.len());
        let n = (chunk.length() as usize).min(room);
        let start = body.len();
        body.resize(start + n, 0);
        chunk.subarray(0, n as u32).copy_to(&mut body[start..]);
        progress(n);
        if body.len() > limit {
            let _ = reader.cancel();
            break;
        }
    }
    Ok(body)
}

/// Throttled `Receiving` reports of one body (HEARTBEAT-4, CONN-6): the bytes of an answer
/// still arriving on a slow link show the connection is alive. At most one report per
/// `RECEIVING_INTERVAL`, and none for a body that completes within its first interval (its
/// complete event is liveness itself), as the native driver does.
pub(crate) struct Meter {
    em: Emitter,
    unreported: u64,
    last: Option<Instant>,
}

impl Meter {
    pub(crate) fn new(em: Emitter) -> Meter {
        Meter {
            em,
            unreported: 0,
            last: None,
        }
    }

    /// `n` more bytes arrived at `now`: report them if the last report is an interval old.
    /// The first bytes start the interval instead.
    pub(crate) fn add(&mut self, now: Instant, n: usize) {
        self.unreported = self.unreported.saturating_add(n as u64);
        match self.last {
            None => self.last = Some(now),
            Some(t) if now.saturating_duration_since(t) >= RECEIVING_INTERVAL => {
                self.last = Some(now);
                let bytes = core::mem::take(&mut self.unreported);
                self.em.emit(TransportEvent::Receiving { bytes });
            }
            Some(_) => {}
        }
    }
}

/// An `AbortController`, or an error the engine sees as an unreachable server.
pub(crate) fn abort_controller() -> Result<AbortController, TransportFailure> {
    AbortController::new().map_err(|e| TransportFailure::Unreachable(js::describe(&e)))
}

/// The `POST /send` worker of an SSE or long-poll connection: batches are posted one after
/// the other, so publishes reach the server in outbox order (OUTBOX-3).
pub(crate) struct Sender {
    url: String,
    signal: AbortSignal,
    queue: RefCell<VecDeque<Vec<String>>>,
    running: Cell<bool>,
    max_body: usize,
    em: Emitter,
}

impl Sender {
    pub(crate) fn new(url: String, signal: AbortSignal, max_body: usize, em: Emitter) -> Rc<Self> {
        Rc::new(Sender {
            url,
            signal,
            queue: RefCell::default(),
            running: Cell::new(false),
            max_body,
            em,
        })
    }

    /// Queue a batch; starts the worker when it is idle.
    pub(crate) fn push(self: &Rc<Self>, frames: Vec<String>) {
        self.queue.borrow_mut().push_back(frames);
        if !self.running.replace(true) {
            let me = self.clone();
            wasm_bindgen_futures::spawn_local(async move { me.run().await });
        }
    }

    async fn run(&self) {
        loop {
            let Some(frames) = self.queue.borrow_mut().pop_front() else {
                self.running.set(false);
                return;
            };
            let body = encode_batch(frames);
            let event = match self.post(&body).await {
                Some(ev) => ev,
                None => {
                    // Aborted: the connection is closed, nothing more is sent on it.
                    self.running.set(false);
                    return;
                }
            };
            self.em.emit(event);
        }
    }

    async fn post(&self, body: &str) -> Option<TransportEvent> {
        let req = match request(
            "POST",
            &self.url,
            Some(body),
            "application/json",
            &self.signal,
        ) {
            Ok(r) => r,
            Err(e) => {
                return Some(TransportEvent::SendFailed(TransportFailure::Unreachable(
                    js::describe(&e),
                )))
            }
        };
        let resp = match fetch(&req).await {
            Ok(r) => r,
            Err(None) => return None,
            Err(Some(e)) => {
                return Some(TransportEvent::SendFailed(TransportFailure::Unreachable(e)))
            }
        };
        if !resp.ok() {
            return Some(TransportEvent::SendFailed(status_failure(&resp)));
        }
        // No `Receiving` for a POST answer: it travels on another connection than the
        // stream's and says nothing about the stream's liveness (HEARTBEAT-2).
        match read_capped(&resp, self.max_body, |_| {}).await {
            Ok(body) => Some(TransportEvent::SendReply(body)),
            Err(None) => None,
            Err(Some(e)) => Some(TransportEvent::SendFailed(TransportFailure::Io(e))),
        }
    }
}

/// One readiness probe (READY-4): `200 {"ready":true,"window_ms":[from,to]}` is ready, any
/// other answer is not ready, no answer within 10 s is a failed probe.
pub(crate) async fn probe_ready(base: &str) -> ReadyAnswer {
    let Ok(abort) = AbortController::new() else {
        return ReadyAnswer::Failed;
    };
    let signal = abort.signal();
    let timer = {
        let abort = abort.clone();
        crate::clock::Timer::arm(
            crate::clock::now(),
            crate::clock::now() + core::time::Duration::from_millis(READY_TIMEOUT_MS as u64),
            move || abort.abort(),
        )
    };
    let url = format!("{base}/ready");
    let Ok(req) = request("GET", &url, None, "application/json", &signal) else {
        return ReadyAnswer::Failed;
    };
    let answer = match fetch(&req).await {
        Err(_) => ReadyAnswer::Failed,
        Ok(resp) if resp.status() != 200 => ReadyAnswer::NotReady,
        Ok(resp) => match read_capped(&resp, MAX_READY_BODY, |_| {}).await {
            Ok(body) => parse_ready(&body),
            Err(_) => ReadyAnswer::Failed,
        },
    };
    drop(timer);
    answer
}

/// The answer of `GET /ready` (READY-3).
pub(crate) fn parse_ready(body: &[u8]) -> ReadyAnswer {
    // `from_str`, the engine's own parser instance (`from_slice` would add another).
    let text = core::str::from_utf8(body).unwrap_or("");
    let Ok(serde_json::Value::Object(v)) = serde_json::from_str::<serde_json::Value>(text) else {
        return ReadyAnswer::Failed;
    };
    if v.get("ready").and_then(|r| r.as_bool()) != Some(true) {
        return ReadyAnswer::NotReady;
    }
    let window = v.get("window_ms").and_then(|w| w.as_array());
    let num = |i: usize| window.and_then(|w| w.get(i)).and_then(|x| x.as_u64());
    match (num(0), num(1)) {
        (Some(from_ms), Some(to_ms)) => ReadyAnswer::Ready { from_ms, to_ms },
        _ => ReadyAnswer::Ready {
            from_ms: 0,
            to_ms: 0,
        },
    }
}

/// Why a WebSocket closed before it opened (WEB-2): the browser hides the HTTP answer to a
/// refused upgrade, so ask the same URL with a plain `GET` and report that answer as the
/// upgrade's. A server answers it with the refusal the upgrade got (WEB-3), or with
/// `426 upgrade_required` when it would have upgraded (then something on the way broke the
/// upgrade: blocked, FALLBACK-2a); an answer without `Tether-Error` is a proxy's; no answer
/// at all means the server is unreachable. `None` when the diagnosis was aborted.
pub(crate) async fn diagnose(http_url: &str, signal: &AbortSignal) -> Option<TransportFailure> {
    let req = match request("GET", http_url, None, "application/json", signal) {
        Ok(r) => r,
        Err(e) => return Some(TransportFailure::Unreachable(js::describe(&e))),
    };
    match fetch(&req).await {
        Ok(resp) => Some(status_failure(&resp)),
        Err(None) => None,
        Err(Some(e)) => Some(TransportFailure::Unreachable(format!(
            "websocket closed before it opened and {} is unreachable: {e}",
            redact(http_url)
        ))),
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod web_tests {
    use super::*;
    use wasm_bindgen_test::*;

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn web_5_send_is_a_cors_simple_request() {
        let abort = AbortController::new().unwrap();
        let req = request(
            "POST",
            "http://127.0.0.1:9/tether/send?v=1",
            Some("[]"),
            "application/json",
            &abort.signal(),
        )
        .unwrap();
        assert_eq!(req.method(), "POST");
        // Every header, as [name, value] pairs: only the safelisted ones.
        let pairs = js_sys::Array::from(&req.headers());
        let mut names = Vec::new();
        for p in pairs.iter() {
            let p = js_sys::Array::from(&p);
            names.push((p.get(0).as_string().unwrap(), p.get(1).as_string().unwrap()));
        }
        names.sort();
        assert_eq!(
            names,
            vec![
                ("accept".to_owned(), "application/json".to_owned()),
                ("content-type".to_owned(), SIMPLE_CONTENT_TYPE.to_owned()),
            ]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_2_urls_carry_the_protocol_query() {
        let u = endpoint_url(
            "http://h:1/tether",
            "poll",
            &["a".into(), "b:c".into()],
            Some("x y"),
            Some("t/k"),
            &[("hello", "1"), ("hold_ms", "25000")],
        );
        assert_eq!(
            u,
            "http://h:1/tether/poll?v=1&channels=a%2Cb%3Ac&cursor=x%20y&access_token=t%2Fk&hello=1&hold_ms=25000"
        );
        assert_eq!(
            endpoint_url("https://h/t", "ws", &[], None, None, &[]),
            "https://h/t/ws?v=1"
        );
    }

    #[test]
    fn auth_4_urls_are_redacted() {
        assert_eq!(
            redact("http://h/t/ws?v=1&access_token=s3cret&cursor=c"),
            "http://h/t/ws?v=1&access_token=***&cursor=c"
        );
        assert_eq!(redact("http://h/t/ready"), "http://h/t/ready");
    }

    #[test]
    fn ready_1_hints_prefer_the_ms_header() {
        use core::time::Duration;
        assert_eq!(retry_after(None, Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(Some("250"), Some("2")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(Some("soon"), None), None);
    }

    #[test]
    fn ready_3_answers_parse() {
        assert_eq!(
            parse_ready(br#"{"ready":true,"window_ms":[10,20]}"#),
            ReadyAnswer::Ready {
                from_ms: 10,
                to_ms: 20
            }
        );
        assert_eq!(parse_ready(br#"{"ready":false}"#), ReadyAnswer::NotReady);
        assert_eq!(parse_ready(b"nope"), ReadyAnswer::Failed);
    }
}
