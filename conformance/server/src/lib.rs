//! tether-server: the reference server half of the Tether contract (SPEC.md), with fault injection and an observation log.
//!
//! Endpoints under a base path (default `/tether`, WIRE-2): `GET /ws`, `GET /sse`,
//! `GET /poll`, `POST /send`, `GET /ready`. Embed it with [`Server::start`] (listen on
//! `127.0.0.1:0`, read [`Server::addr`]), mount [`router`] in an app, or run the
//! `tether-server` binary. Channel state lives behind [`ChannelStore`] ([`MemoryStore`] by
//! default). Faults ([`Fault`], [`FaultRule`]) are scriptable at runtime, and every
//! connection, request and frame lands in the [`ObservationLog`].

#![warn(missing_docs)]

mod admin;
pub mod admission;
pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod cors;
pub mod cursor;
mod diagnose;
pub mod error;
pub mod fault_file;
pub mod faults;
mod http;
pub mod jwt;
mod listener;
pub mod log;
mod malformed;
mod metrics;
mod poll;
mod publish_api;
mod ready;
pub mod redis_store;
mod send;
mod session;
mod shape;
pub mod sse;
pub mod state;
pub mod store;
pub mod tls;
mod ws;

pub use auth::{AuthRefusal, Authenticator, ChannelRules, Identity, SharedAuthenticator};
pub use config::ServerConfig;
pub use cursor::Cursor;
pub use error::{ServerError, StoreError};
pub use fault_file::FaultFileError;
pub use faults::{Fault, FaultPlan, FaultRule, FaultTarget, MalformedKind};
pub use http::{TETHER_ERROR, TETHER_RETRY_AFTER_MS};
pub use jwt::{JwtError, JwtVerifier};
pub use log::{LogEntry, LogKind, ObservationLog};
pub use redis_store::{RedisConfig, RedisStats, RedisStore};
pub use state::{ConnInfo, Publisher, ServerState};
pub use store::{
    ChannelStore, FanoutSink, MemoryStore, MemoryStoreConfig, Published, ReadOutcome, StoredMsg,
};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The endpoints of `state` under its base path and its alternate base path, as a `Router`
/// an application can merge or serve. Served by another server than [`Server`], the
/// TCP-level faults (`refuse_tcp`, `stop_listening`, cuts) have no listener to act on.
pub fn router(state: ServerState) -> Router {
    let base = state.config().base_path.clone();
    let alt = state.config().alt_base_path.clone();
    let mut r = Router::new()
        .merge(routes(&base, false))
        .merge(routes(&alt, true));
    if let Some(m) = state.config().metrics_path.clone() {
        r = r.route(&m, get(|State(st): State<ServerState>| metrics_handler(st)));
    }
    r.method_not_allowed_fallback(|| async {
        http::tether_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
            None,
            "method not allowed",
        )
    })
    .fallback(|| async {
        http::tether_error(StatusCode::NOT_FOUND, "not_found", None, "no such endpoint")
    })
    .with_state(state.clone())
    // WEB-1: pages on other origins may call every endpoint and read the answers.
    .layer(axum::middleware::from_fn_with_state(state, cors::layer))
}

/// The endpoints of `state` relative to the mount point (`/ws`, `/sse`, `/poll`, `/send`,
/// `/ready`, `/publish`), for an application to nest where it wants them:
/// `Router::new().nest("/realtime", endpoints(state))` serves `/realtime/ws` and so on
/// (clients then use the endpoint `https://host/realtime`). No fallback and no metrics:
/// the application keeps its own; serve [`ServerState::metrics_text`] where it fits.
pub fn endpoints(state: ServerState) -> Router {
    routes("", false)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state, cors::layer))
}

async fn metrics_handler(st: ServerState) -> axum::response::Response {
    http::plain(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        st.metrics_text(),
    )
}

fn routes(base: &str, alt: bool) -> Router<ServerState> {
    Router::new()
        .route(
            &format!("{base}/ws"),
            get(move |State(st): State<ServerState>, req: Request| ws::handler(st, alt, req)),
        )
        .route(
            &format!("{base}/sse"),
            get(move |State(st): State<ServerState>, req: Request| sse::handler(st, alt, req)),
        )
        .route(
            &format!("{base}/poll"),
            get(move |State(st): State<ServerState>, req: Request| poll::handler(st, alt, req)),
        )
        .route(
            &format!("{base}/send"),
            post(move |State(st): State<ServerState>, req: Request| send::handler(st, alt, req)),
        )
        .route(
            &format!("{base}/ready"),
            get(|State(st): State<ServerState>| ready::handler(st)),
        )
        .route(
            &format!("{base}/publish"),
            post(|State(st): State<ServerState>, req: Request| publish_api::handler(st, req)),
        )
        .route(
            &format!("{base}/_admin/{{action}}"),
            get(admin_route).post(admin_route),
        )
}

async fn admin_route(
    State(st): State<ServerState>,
    axum::extract::Path(action): axum::extract::Path<String>,
    req: Request,
) -> axum::response::Response {
    admin::handler(st, action, req).await
}

/// A running server: its own listener and accept loop. Derefs to its [`ServerState`] (publish,
/// drain, faults, restart, tokens, log). Dropping it stops it (without waiting).
pub struct Server {
    state: ServerState,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Bind `config.listen` and serve with the default [`MemoryStore`].
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        Server::start_with_state(ServerState::new(config)?).await
    }

    /// Bind and serve an existing state (for example one built with [`ServerState::with_store`]).
    pub async fn start_with_state(state: ServerState) -> Result<Server, ServerError> {
        let want = state.config().listen;
        let listener =
            listener::bind(want).map_err(|source| ServerError::Bind { addr: want, source })?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(listener::accept_loop(
            state.shared.clone(),
            router(state.clone()),
            listener,
            addr,
        ));
        state
            .shared
            .record(LogEntry::new(LogKind::Listener).detail(format!("listening on {addr}")));
        Ok(Server {
            state,
            addr,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:PORT/tether` (`https` with TLS).
    pub fn endpoint_url(&self) -> String {
        let s = if self.state.config().tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{s}://{}{}", self.addr, self.state.config().base_path)
    }

    /// The WebSocket URL, e.g. `ws://127.0.0.1:PORT/tether/ws` (`wss` with TLS).
    pub fn ws_url(&self) -> String {
        let s = if self.state.config().tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{s}://{}{}/ws", self.addr, self.state.config().base_path)
    }

    /// The state handle (also reachable through `Deref`).
    pub fn state(&self) -> &ServerState {
        &self.state
    }

    /// Stop accepting, drop every connection, and wait for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    fn signal_stop(&self) {
        self.state.shared.shutdown.send_replace(true);
        self.state.shared.kill.send_modify(|g| *g += 1);
    }
}

impl std::ops::Deref for Server {
    type Target = ServerState;
    fn deref(&self) -> &ServerState {
        &self.state
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.signal_stop();
        }
    }
}

/// A store shared by handlers (what [`ServerState::with_store`] takes).
pub type SharedStore = Arc<dyn ChannelStore>;
