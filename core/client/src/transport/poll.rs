//! The long-poll rung: `GET /poll` answered with a JSON array of frames (capped, LIMIT-2), the
//! first one with `hello=1`, plus `POST /send` for client frames. Bytes of an answer still
//! arriving are reported as `Receiving` (HEARTBEAT-4, CONN-6).

use super::http::{bearer, endpoint_url, read_body, request_failure, sender, status_failure};
use super::{AbortOnDrop, ConnCommand, Emitter, Io};
use futures_util::future::{BoxFuture, FutureExt};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use std::future::pending;
use std::sync::Arc;
use tether_engine::{OpenRequest, TransportEvent, TransportFailure};
use tokio::sync::mpsc;

/// The outcome of one poll request.
enum Answer {
    Body(Vec<u8>),
    Failed(TransportFailure),
}

/// Run connection `req.conn` until it ends or the driver closes it.
pub(crate) async fn run(
    io: Arc<Io>,
    req: OpenRequest,
    mut rx: mpsc::UnboundedReceiver<ConnCommand>,
    em: Emitter,
) {
    let auth = req.token.as_ref().and_then(bearer);
    let hold_ms = req.poll_hold.as_millis().to_string();
    let send_url = endpoint_url(&io.endpoint, "send", &[], None);
    let (batches, batch_rx) = mpsc::unbounded_channel();
    let _sender = AbortOnDrop(tokio::spawn(sender(
        io.clone(),
        send_url,
        auth.clone(),
        batch_rx,
        em.clone(),
    )));
    // At most one poll in flight: a Poll asked while one is outstanding is redundant (the
    // engine asks again after every answer), so it is coalesced.
    let mut in_flight: Option<BoxFuture<'static, Answer>> = Some(
        one_poll(
            io.clone(),
            auth.clone(),
            em.clone(),
            &req.channels,
            req.cursor.as_deref(),
            &hold_ms,
            true,
        )
        .boxed(),
    );
    loop {
        let step = {
            let current = async {
                match in_flight.as_mut() {
                    Some(f) => f.await,
                    None => pending().await,
                }
            };
            tokio::select! {
                answer = current => Step::Answer(answer),
                cmd = rx.recv() => Step::Command(cmd),
            }
        };
        match step {
            Step::Answer(Answer::Body(body)) => {
                in_flight = None;
                if !em.emit(TransportEvent::PollBody(body)).await {
                    return;
                }
            }
            Step::Answer(Answer::Failed(f)) => {
                tracing::info!(failure = ?f, "long-poll failed");
                em.emit(TransportEvent::Failed(f)).await;
                return;
            }
            Step::Command(Some(ConnCommand::Poll { cursor, channels })) => {
                if in_flight.is_none() {
                    let next = one_poll(
                        io.clone(),
                        auth.clone(),
                        em.clone(),
                        &channels,
                        cursor.as_deref(),
                        &hold_ms,
                        false,
                    );
                    in_flight = Some(next.boxed());
                }
            }
            Step::Command(Some(ConnCommand::Transmit(frames))) => {
                let _ = batches.send(frames);
            }
            Step::Command(Some(ConnCommand::Close { code, .. })) => {
                tracing::debug!(close_code = code, "closing long-poll");
                tracing::Span::current().record("close_code", code);
                return;
            }
            Step::Command(None) => return,
        }
    }
}

/// What woke the connection task.
enum Step {
    Answer(Answer),
    Command(Option<ConnCommand>),
}

/// One poll. The hello poll reports `Opened` when its 200 headers arrive; every poll reports
/// bytes of its answer still arriving (`Receiving`).
fn one_poll(
    io: Arc<Io>,
    auth: Option<HeaderValue>,
    em: Emitter,
    channels: &[String],
    cursor: Option<&str>,
    hold_ms: &str,
    hello: bool,
) -> impl std::future::Future<Output = Answer> + Send + 'static {
    let mut url = endpoint_url(&io.endpoint, "poll", channels, cursor);
    {
        let mut q = url.query_pairs_mut();
        if hello {
            q.append_pair("hello", "1");
        }
        q.append_pair("hold_ms", hold_ms);
    }
    async move {
        let mut get = match io.http() {
            Ok(h) => h.get(url),
            Err(e) => return Answer::Failed(TransportFailure::Unreachable(e)),
        };
        if let Some(a) = &auth {
            get = get.header(AUTHORIZATION, a.clone());
        }
        let resp = match get.send().await {
            Ok(r) => r,
            Err(e) => return Answer::Failed(request_failure(&e)),
        };
        let status = resp.status().as_u16();
        if status != 200 {
            return Answer::Failed(status_failure(status, resp.headers()));
        }
        if hello {
            tracing::debug!("long-poll opened");
            em.emit(TransportEvent::Opened).await;
        }
        match read_body(resp, io.max_body_bytes(), Some(&em)).await {
            Ok(body) => Answer::Body(body),
            Err(e) => Answer::Failed(TransportFailure::Io(e)),
        }
    }
}
