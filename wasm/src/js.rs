//! The few global browser functions the driver calls, bound on `globalThis` so the client runs in a page or a worker alike.
//!
//! `web-sys` binds them on `Window` or `WorkerGlobalScope`; binding them on the global object
//! directly (`setTimeout`, `fetch`, `performance`, `crypto`, `indexedDB`, `navigator`) works in
//! both without asking which one we are in.

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    /// `setTimeout(handler, ms)`: the id is a number in browsers (an object in Node).
    #[wasm_bindgen(js_name = setTimeout)]
    pub(crate) fn set_timeout(handler: &Function, ms: f64) -> JsValue;

    #[wasm_bindgen(js_name = clearTimeout)]
    pub(crate) fn clear_timeout(id: &JsValue);

    /// `fetch(request)`.
    #[wasm_bindgen(js_name = fetch)]
    pub(crate) fn fetch(request: &web_sys::Request) -> Promise;
}

/// A property of `globalThis`, if it is an object.
pub(crate) fn global_property(name: &str) -> Option<JsValue> {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// `globalThis.performance`.
pub(crate) fn performance() -> Option<web_sys::Performance> {
    global_property("performance").and_then(|p| p.dyn_into().ok())
}

/// `globalThis.crypto`.
pub(crate) fn crypto() -> Option<web_sys::Crypto> {
    global_property("crypto").and_then(|c| c.dyn_into().ok())
}

/// `globalThis.indexedDB`, absent in some private modes and old runtimes.
pub(crate) fn indexed_db() -> Option<JsValue> {
    global_property("indexedDB")
}

/// `globalThis` as an event target (`online` / `offline` events), when it is one.
pub(crate) fn global_target() -> Option<web_sys::EventTarget> {
    js_sys::global().dyn_into().ok()
}

/// `navigator.connection` (Network Information API), where the browser has it.
pub(crate) fn network_information() -> Option<web_sys::EventTarget> {
    let nav = global_property("navigator")?;
    Reflect::get(&nav, &JsValue::from_str("connection"))
        .ok()
        .filter(|c| c.is_object())
        .and_then(|c| c.dyn_into().ok())
}

/// `navigator.onLine`; `true` when unknown.
pub(crate) fn on_line() -> bool {
    global_property("navigator")
        .and_then(|n| Reflect::get(&n, &JsValue::from_str("onLine")).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

/// A plain `{code, message}` object: what every failing call of the wasm API throws. The
/// TypeScript layer turns it into a `TetherError` (SPEC ERR-1 codes).
pub(crate) fn error_object(code: &str, message: &str) -> JsValue {
    let o = Object::new();
    let _ = Reflect::set(&o, &"code".into(), &code.into());
    let _ = Reflect::set(&o, &"message".into(), &message.into());
    o.into()
}

/// The `message` of a thrown JS value (an `Error`, a string, anything else).
pub(crate) fn describe(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        return s;
    }
    Reflect::get(v, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| "unknown JavaScript error".to_owned())
}

/// True when a thrown value is an `AbortError` (a fetch we cancelled ourselves).
pub(crate) fn is_abort(v: &JsValue) -> bool {
    Reflect::get(v, &JsValue::from_str("name"))
        .ok()
        .and_then(|n| n.as_string())
        .is_some_and(|n| n == "AbortError")
}
