//! tether-wasm: the Tether client in the browser, a driver of `tether-engine` on browser APIs, exported to JavaScript with wasm-bindgen.
//!
//! The npm package (`wasm/npm`) wraps these exports in its TypeScript API; applications use
//! that, not this module directly. What runs where:
//!
//! - [`driver`]: feeds the engine its inputs and performs its actions, like the native
//!   driver (`core/client`); every decision stays in the engine.
//! - [`transport`]: WebSocket on `WebSocket`, SSE and long-poll on `fetch` (the SSE bytes go
//!   to the engine's own parser), `AbortController` to cancel.
//! - [`clock`]: `performance.now()`, `Date.now()`, one `setTimeout`, `crypto.getRandomValues`.
//! - [`store`]: the outbox and the memo in IndexedDB (or in memory), with "queued" meaning
//!   durable (OUTBOX-2); the design is in that module's documentation.
//! - [`network`]: `online` / `offline` and `navigator.connection` events (NET-1..3).

pub mod clock;
pub mod config;
mod driver;
pub mod events;
mod js;
mod network;
pub mod store;
mod token;
mod transport;

use config::{Options, StoreKind};
use driver::{Parts, Shared};
use js_sys::{Function, Promise};
use std::rc::Rc;
use tether_engine::{CallError, Engine, Network};
use wasm_bindgen::prelude::*;

/// A `{code, message}` error for a refused call (ERR-1 codes).
fn call_error(e: &CallError) -> JsValue {
    js::error_object(e.code().as_str(), &e.to_string())
}

/// The client's driver could not be reached (never expected: only from inside an engine call).
fn busy() -> JsValue {
    js::error_object(
        "closed",
        "the client is busy (called from inside its own driver)",
    )
}

/// Build a client. `options` is the JSON of [`config::Options`]; `on_event` receives every
/// event object in order; `tokens` is the token provider `(forced) => Promise<string>`.
/// With an IndexedDB store, the outbox and the memo are read before the engine starts
/// (OUTBOX-8, BACKOFF-10, FALLBACK-5, READY-2).
#[wasm_bindgen(js_name = createClient)]
pub async fn create_client(
    options: String,
    on_event: Function,
    tokens: Option<Function>,
) -> Result<WasmClient, JsValue> {
    let opts = Options::parse(&options, clock::random_u64)
        .map_err(|e| js::error_object("bad_request", &e.0))?;
    let (mirror, writer) = match &opts.store {
        StoreKind::Memory => (store::Mirror::memory(), None),
        StoreKind::IndexedDb { name } => {
            let loaded = store::idb::Writer::open(name)
                .await
                .map_err(|e| js::error_object("store_failed", &e))?;
            (loaded.mirror, Some(loaded.writer))
        }
    };
    let now = clock::now();
    let engine = Engine::new(
        opts.config.clone(),
        Box::new(mirror.clone()),
        now,
        clock::wall_unix_ms(),
    );
    let shared = Shared::new(Parts {
        engine,
        base: opts.base,
        max_frame_bytes: opts.config.max_frame_bytes,
        tokens,
        mirror,
        writer,
        watch_network: opts.watch_network,
        on_event,
    });
    Ok(WasmClient { shared })
}

/// One client, as the TypeScript layer sees it.
#[wasm_bindgen]
pub struct WasmClient {
    shared: Rc<Shared>,
}

/// A queued publish: its key, when it is durable, and its outcome.
#[wasm_bindgen]
pub struct Published {
    id: String,
    queued: Promise,
    outcome: Promise,
}

#[wasm_bindgen]
impl Published {
    /// The idempotency key (OUTBOX-1).
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// Resolves once the record is durable in the store (OUTBOX-2); rejects with
    /// `store_failed`.
    #[wasm_bindgen(getter)]
    pub fn queued(&self) -> Promise {
        self.queued.clone()
    }

    /// Resolves with `{id, seq}` on the server's ack; rejects with `{code, reason, id}` when
    /// the publish is dropped (OUTBOX-6, OUTBOX-7) or the client closed first.
    #[wasm_bindgen(getter)]
    pub fn outcome(&self) -> Promise {
        self.outcome.clone()
    }
}

#[wasm_bindgen]
impl WasmClient {
    /// Start connecting (CONN-1).
    pub fn connect(&self) -> Result<(), JsValue> {
        driver::with(&self.shared, |d, now| d.connect(now)).ok_or_else(busy)
    }

    /// Subscribe to `channel` (WIRE-8 names).
    pub fn subscribe(&self, channel: &str) -> Result<(), JsValue> {
        driver::with(&self.shared, |d, now| d.subscribe(now, channel))
            .ok_or_else(busy)?
            .map_err(|e| call_error(&e))
    }

    /// Stop receiving `channel`.
    pub fn unsubscribe(&self, channel: &str) -> Result<(), JsValue> {
        driver::with(&self.shared, |d, now| d.unsubscribe(now, channel))
            .ok_or_else(busy)?
            .map_err(|e| call_error(&e))
    }

    /// Queue a publish of `data` (JSON text), with the app's own idempotency key or a
    /// generated one (OUTBOX-1).
    pub fn publish(
        &self,
        channel: &str,
        data: &str,
        key: Option<String>,
    ) -> Result<Published, JsValue> {
        let data: serde_json::Value = serde_json::from_str(data)
            .map_err(|e| js::error_object("bad_request", &format!("data is not JSON: {e}")))?;
        let (id, queued, outcome) =
            driver::with(&self.shared, |d, now| d.publish(now, channel, data, key))
                .ok_or_else(busy)?
                .map_err(|e| call_error(&e))?;
        Ok(Published {
            id,
            queued,
            outcome,
        })
    }

    /// `online`, `offline` or `changed` (NET-1..3).
    #[wasm_bindgen(js_name = setNetwork)]
    pub fn set_network(&self, state: &str) -> Result<(), JsValue> {
        let n = match state {
            "online" => Network::Online,
            "offline" => Network::Offline,
            "changed" => Network::Changed,
            other => {
                return Err(js::error_object(
                    "bad_request",
                    &format!("network state {other:?} is not online, offline or changed"),
                ))
            }
        };
        driver::with(&self.shared, |d, now| d.set_network(now, n)).ok_or_else(busy)
    }

    /// Close for good (CONN-3); the outbox stays in the store.
    pub fn close(&self) -> Result<(), JsValue> {
        driver::with(&self.shared, |d, now| d.close(now)).ok_or_else(busy)
    }

    /// The current state as JSON (STATE-1).
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        driver::peek(&self.shared, |d| d.state_json()).unwrap_or_default()
    }

    /// Publishes waiting for an ack.
    #[wasm_bindgen(getter, js_name = outboxLength)]
    pub fn outbox_length(&self) -> usize {
        driver::peek(&self.shared, |d| d.outbox_len()).unwrap_or(0)
    }

    /// Why the store refuses new publishes (a failed IndexedDB write), if it does.
    #[wasm_bindgen(getter, js_name = storeFailure)]
    pub fn store_failure(&self) -> Option<String> {
        driver::peek(&self.shared, |d| d.store_broken()).flatten()
    }
}
