//! The runner's own HTTP load balancer on loopback: per-request round robin with no affinity (and no two publishes in a row on one instance), WebSocket and SSE proxied through streaming, health checks on `/ready`, and a record of which instance served each request.
//!
//! Balancing TCP connections would let HTTP keep-alive pin a client's requests to one
//! instance; this balancer parses HTTP and picks a backend for every request. Like nginx
//! with `proxy_next_upstream error timeout http_503`, a GET that cannot reach a backend or
//! is answered 503 by the server (`Tether-Error` present) is tried on the next one; a
//! backend whose `/ready` is not 200 is left out of the rotation (unless all are).

use super::http;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// One request as the balancer served it.
#[derive(Clone, Debug, Serialize)]
pub struct Served {
    /// When it arrived, µs on the case clock.
    pub at_us: u64,
    /// The instance that answered, or that took the request and failed it (502); None: no
    /// backend could be reached.
    pub instance: Option<usize>,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// `hello=1` (a long-poll handshake) or a stream/upgrade request: a handshake.
    pub handshake: bool,
    /// The request carried a cursor (query or `Last-Event-ID`).
    pub cursor: bool,
    /// The answer's status; 0: the client went away before any answer (the request is still
    /// recorded: it took its turn in the rotation).
    pub status: u16,
    pub tether_error: Option<String>,
    /// Backends tried before this one answered.
    pub retries: usize,
    #[serde(skip)]
    pub open: Arc<AtomicBool>,
}

struct Backend {
    addr: SocketAddr,
    healthy: AtomicBool,
}

pub(crate) struct Inner {
    backends: Vec<Backend>,
    ready_path: String,
    next: AtomicUsize,
    /// The turn (mod the backends) the last publish (`POST .../send`) took.
    last_send: AtomicUsize,
    clock: Instant,
    pub served: Mutex<Vec<Served>>,
    /// Stream requests (WebSocket, SSE, poll) sent to a backend and not answered yet: a held
    /// long-poll lives here until its answer, since `served` records a request at its answer.
    pub(crate) pending: Mutex<Vec<Pending>>,
}

/// A stream request a backend holds: when it arrived (µs on the case clock), which backend,
/// and whether it is still unanswered.
pub(crate) struct Pending {
    pub at_us: u64,
    pub instance: usize,
    pub waiting: Arc<AtomicBool>,
}

/// True for the paths of streams (WebSocket, SSE, long-poll).
pub(crate) fn is_stream_path(path: &str) -> bool {
    path.ends_with("/ws") || path.ends_with("/sse") || path.ends_with("/poll")
}

/// A running balancer.
pub struct Balancer {
    pub addr: SocketAddr,
    pub(crate) inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn answer(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(
        http_body_util::Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

/// Records its request when the proxying ends: answered, failed (502), or abandoned by a
/// client that went away first (status 0: the request still took its turn).
struct Recorder<'a> {
    inner: &'a Inner,
    record: Served,
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.inner.record(self.record.clone());
    }
}

/// Marks its record closed when the response body is done or dropped.
struct Guard(Arc<AtomicBool>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

struct Guarded {
    inner: ProxyBody,
    _guard: Guard,
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

impl Balancer {
    /// Listen on a free loopback port in front of `backends`.
    pub async fn start(
        backends: Vec<SocketAddr>,
        ready_path: String,
        clock: Instant,
    ) -> std::io::Result<Balancer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            backends: backends
                .into_iter()
                .map(|addr| Backend {
                    addr,
                    healthy: AtomicBool::new(true),
                })
                .collect(),
            ready_path,
            next: AtomicUsize::new(0),
            last_send: AtomicUsize::new(usize::MAX),
            clock,
            served: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
        });
        let accept = {
            let inner = inner.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let inner = inner.clone();
                            async move { Ok::<_, Infallible>(inner.proxy(req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await;
                    });
                }
            })
        };
        let health = {
            let inner = inner.clone();
            tokio::spawn(async move {
                // Like HAProxy's `fall 2`: a check that only timed out (a loaded machine) takes
                // a backend out of the rotation on the second in a row; an answer that is not
                // 200 (draining) or a refused connection (killed) does at once.
                let mut timeouts = vec![0u32; inner.backends.len()];
                loop {
                    for (b, timeouts) in inner.backends.iter().zip(timeouts.iter_mut()) {
                        let limit = Duration::from_millis(300);
                        let started = Instant::now();
                        let checked =
                            http::call(b.addr, "GET", &inner.ready_path, None, None, limit).await;
                        let timed_out = checked.is_err() && started.elapsed() >= limit;
                        *timeouts = if timed_out { *timeouts + 1 } else { 0 };
                        let ok = checked.is_ok_and(|a| a.status == 200);
                        if ok || !timed_out || *timeouts >= 2 {
                            b.healthy.store(ok, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Ok(Balancer {
            addr,
            inner,
            tasks: vec![accept, health],
        })
    }

    /// Every request served so far.
    pub fn served(&self) -> Vec<Served> {
        self.inner
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn header_has(req: &Request<Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

impl Inner {
    fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// The backends to try, in round-robin order from this request's turn: the healthy ones,
    /// or all when none is. With three or more backends a publish whose turn falls on the
    /// instance of the publish before it takes the next turn as well: two publishes in a row
    /// (a resend after a lost answer included) never reach the same instance, however many
    /// polls went between them, and the rotation still never gives two consecutive requests
    /// one instance. With plain turns, whether a resend crossed instances depended on the
    /// client's poll timing.
    fn order(&self, send: bool) -> Vec<usize> {
        let n = self.backends.len();
        let mut start = self.next.fetch_add(1, Ordering::Relaxed);
        if send && n > 2 {
            if start % n == self.last_send.load(Ordering::Relaxed) {
                start = self.next.fetch_add(1, Ordering::Relaxed);
            }
            self.last_send.store(start % n, Ordering::Relaxed);
        }
        let all: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
        let healthy: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| self.backends[*i].healthy.load(Ordering::Relaxed))
            .collect();
        if healthy.is_empty() {
            all
        } else {
            healthy
        }
    }

    /// Note that `instance` holds a stream request from `at_us` on; the request counts as
    /// pending until the guard is dropped (its answer came, or it failed).
    fn hold(&self, at_us: u64, instance: usize) -> Guard {
        let waiting = Arc::new(AtomicBool::new(true));
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.retain(|h| h.waiting.load(Ordering::Relaxed));
        p.push(Pending {
            at_us,
            instance,
            waiting: waiting.clone(),
        });
        Guard(waiting)
    }

    fn record(&self, s: Served) {
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
    }

    async fn proxy(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let at_us = self.now_us();
        let upgrade = header_has(&req, hyper::header::UPGRADE, "websocket");
        let client_up = upgrade.then(|| hyper::upgrade::on(&mut req));
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let cursor = query
            .split('&')
            .any(|kv| kv.starts_with("cursor=") && kv.len() > 7)
            || req.headers().contains_key("last-event-id");
        let handshake = upgrade
            || path.ends_with("/sse")
            || (path.ends_with("/poll") && query.split('&').any(|kv| kv == "hello=1"));
        let method = req.method().clone();
        let (parts, body) = req.into_parts();
        let mut body = Some(body);
        let order = self.order(method == Method::POST && path.ends_with("/send"));
        // Recorded when this future ends, or is dropped because the client went away.
        let mut recorder = Recorder {
            inner: self,
            record: Served {
                at_us,
                instance: None,
                method: method.to_string(),
                path,
                handshake,
                cursor,
                status: 0,
                tether_error: None,
                retries: 0,
                open: Arc::new(AtomicBool::new(false)),
            },
        };
        let record = &mut recorder.record;
        for (k, &idx) in order.iter().enumerate() {
            let last = k + 1 == order.len();
            let b = &self.backends[idx];
            let tcp = match tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(b.addr),
            )
            .await
            {
                Ok(Ok(s)) => s,
                _ => {
                    b.healthy.store(false, Ordering::Relaxed);
                    record.retries += 1;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Ok((mut sender, conn)) =
                hyper::client::conn::http1::handshake::<_, ProxyBody>(TokioIo::new(tcp)).await
            else {
                record.retries += 1;
                continue;
            };
            tokio::spawn(conn.with_upgrades());
            let mut breq = Request::builder()
                .method(parts.method.clone())
                .uri(parts.uri.clone())
                .version(hyper::Version::HTTP_11);
            for (k, v) in &parts.headers {
                breq = breq.header(k, v);
            }
            let bbody = match (&method, body.take()) {
                (&Method::GET, _) | (_, None) => empty(),
                (_, Some(b)) => b.boxed(),
            };
            let Ok(breq) = breq.body(bbody) else {
                record.status = 400;
                return answer(StatusCode::BAD_REQUEST, "bad request");
            };
            let held = (method == Method::GET && is_stream_path(&record.path))
                .then(|| self.hold(at_us, idx));
            // Abandoned while here, the request is the instance's that held it.
            record.instance = Some(idx);
            let sent = sender.send_request(breq).await;
            drop(held);
            let mut resp = match sent {
                Ok(r) => r,
                Err(_) if method == Method::GET && !last => {
                    record.instance = None;
                    record.retries += 1;
                    continue;
                }
                // The backend took the request and vanished (or cut it): 502, its index kept.
                Err(_) => break,
            };
            let status = resp.status();
            let terr = resp
                .headers()
                .get("tether-error")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if status == StatusCode::SERVICE_UNAVAILABLE
                && terr.is_some()
                && method == Method::GET
                && !last
            {
                record.instance = None;
                record.retries += 1;
                continue;
            }
            record.status = status.as_u16();
            record.tether_error = terr;
            let open = record.open.clone();
            open.store(true, Ordering::Relaxed);
            if status == StatusCode::SWITCHING_PROTOCOLS {
                let backend_up = hyper::upgrade::on(&mut resp);
                if let Some(client_up) = client_up {
                    tokio::spawn(async move {
                        let _guard = Guard(open);
                        if let (Ok(c), Ok(b)) = (client_up.await, backend_up.await) {
                            let (mut c, mut b) = (TokioIo::new(c), TokioIo::new(b));
                            let _ = tokio::io::copy_bidirectional(&mut c, &mut b).await;
                        }
                    });
                }
                return resp.map(|_| empty());
            }
            return resp.map(|b| {
                Guarded {
                    inner: b.boxed(),
                    _guard: Guard(open),
                }
                .boxed()
            });
        }
        record.status = 502;
        answer(StatusCode::BAD_GATEWAY, "no backend answered")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Inner {
        Inner {
            backends: (0..3)
                .map(|i| Backend {
                    addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i)),
                    healthy: AtomicBool::new(true),
                })
                .collect(),
            ready_path: "/ready".into(),
            next: AtomicUsize::new(0),
            last_send: AtomicUsize::new(usize::MAX),
            clock: Instant::now(),
            served: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn scale_3_no_two_publishes_in_a_row_and_no_two_requests_in_a_row_on_one_instance() {
        let b = three();
        // poll, send, poll, poll, send (a resend): the second send's turn would be the first
        // send's instance, so it takes the next turn.
        let kinds = [false, true, false, false, true, false, true, true];
        let got: Vec<(bool, usize)> = kinds.iter().map(|&s| (s, b.order(s)[0])).collect();
        for w in got.windows(2) {
            assert_ne!(
                w[0].1, w[1].1,
                "consecutive requests on one instance: {got:?}"
            );
        }
        let sends: Vec<usize> = got.iter().filter(|g| g.0).map(|g| g.1).collect();
        for w in sends.windows(2) {
            assert_ne!(w[0], w[1], "consecutive publishes on one instance: {got:?}");
        }
        assert_eq!(got[1].1, 1);
        assert_eq!(got[4].1, 2, "{got:?}");
    }
}
