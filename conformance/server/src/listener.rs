//! The TCP accept loop of [`Server`](crate::Server): HTTP/1.1 with upgrades, connection-level faults (refuse TCP, stop listening, cut), restart kills.

use crate::http::TcpCut;
use crate::log::{LogEntry, LogKind};
use crate::state::{ListenMode, Shared};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tower::ServiceExt;

/// Bind a listener with `SO_REUSEADDR`, so it can be reopened on the same port.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    router: Router,
    listener: TcpListener,
    addr: SocketAddr,
) {
    let mut listener = Some(listener);
    let mut listen_rx = shared.listen.subscribe();
    let mut shutdown_rx = shared.shutdown.subscribe();
    loop {
        if *shutdown_rx.borrow() {
            return;
        }
        let mode = *listen_rx.borrow_and_update();
        match (mode, listener.is_some()) {
            (ListenMode::Stopped, true) => {
                listener = None;
                shared.record(LogEntry::new(LogKind::Listener).detail("closed"));
            }
            (ListenMode::Listening, false) => match bind(addr) {
                Ok(l) => {
                    listener = Some(l);
                    shared.record(LogEntry::new(LogKind::Listener).detail("reopened"));
                }
                Err(e) => {
                    shared.record(
                        LogEntry::new(LogKind::Listener).detail(format!("reopen failed: {e}")),
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = shutdown_rx.changed() => {}
                    }
                    continue;
                }
            },
            _ => {}
        }
        shared.listen_applied.send_if_modified(|applied| {
            let changed = *applied != mode;
            *applied = mode;
            changed
        });
        let Some(l) = &listener else {
            tokio::select! {
                _ = listen_rx.changed() => {}
                _ = shutdown_rx.changed() => {}
            }
            continue;
        };
        tokio::select! {
            r = l.accept() => match r {
                Ok((stream, peer)) => serve(&shared, &router, stream, peer),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = listen_rx.changed() => {}
            _ = shutdown_rx.changed() => {}
        }
    }
}

fn serve(shared: &Arc<Shared>, router: &Router, stream: TcpStream, peer: SocketAddr) {
    if shared.faults.take_tcp() {
        // RST rather than FIN: as close to "connection refused" as an open port gets.
        let _ = socket_linger_zero(&stream);
        drop(stream);
        shared.record(LogEntry::new(LogKind::TcpRefused).detail(peer.to_string()));
        return;
    }
    let _ = stream.set_nodelay(true);
    shared.record(LogEntry::new(LogKind::TcpAccept).detail(peer.to_string()));
    let cut = TcpCut::default();
    let svc = router.clone().map_request({
        let cut = cut.clone();
        move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(cut.clone());
            req.extensions_mut().insert(crate::diagnose::Peer(peer));
            req
        }
    });
    let shared = shared.clone();
    let tls = shared.cfg.tls.clone();
    tokio::spawn(async move {
        let mut kill = shared.kill.subscribe();
        match tls {
            None => serve_io(stream, svc, &mut kill, &cut).await,
            Some(cfg) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                let hs = tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream));
                let stream = tokio::select! {
                    r = hs => match r {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            shared.record(LogEntry::new(LogKind::TcpAccept).detail(format!("tls handshake failed: {e}")));
                            return;
                        }
                        Err(_) => return,
                    },
                    _ = kill.changed() => return,
                };
                serve_io(stream, svc, &mut kill, &cut).await
            }
        }
    });
}

/// Longest TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

async fn serve_io<I, S>(io: I, svc: S, kill: &mut tokio::sync::watch::Receiver<u64>, cut: &TcpCut)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(svc))
        .with_upgrades();
    tokio::select! {
        _ = conn => {}
        _ = kill.changed() => {}
        _ = cut.0.notified() => {}
    }
}

#[allow(deprecated)]
fn socket_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_linger(Some(Duration::ZERO))
}
