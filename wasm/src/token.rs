//! The application's token provider: a JavaScript function `(forced: boolean) => Promise<string>` (AUTH-1, AUTH-2).
//!
//! The engine bounds the wait (`open_timeout`) and ignores late answers; this only calls the
//! function and turns its outcome into a token or a [`TokenError`]. A rejection whose value
//! has `fatal: true` is fatal (the client ends in `Failed{auth_failed}`).

use crate::js;
use js_sys::{Function, Promise, Reflect};
use tether_engine::TokenError;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Ask `provider` for a token.
pub(crate) async fn fetch_token(provider: &Function, forced: bool) -> Result<String, TokenError> {
    let returned = provider
        .call1(&JsValue::NULL, &JsValue::from_bool(forced))
        .map_err(|e| provider_error(&e))?;
    // A plain string is accepted as well as a promise of one.
    let value = match returned.dyn_into::<Promise>() {
        Ok(p) => JsFuture::from(p).await.map_err(|e| provider_error(&e))?,
        Err(v) => v,
    };
    match value.as_string() {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(TokenError {
            fatal: false,
            message: "the token provider returned no token (a non-empty string)".into(),
        }),
    }
}

/// A thrown or rejected value as a provider error; `fatal: true` on it makes it fatal.
fn provider_error(e: &JsValue) -> TokenError {
    let fatal = Reflect::get(e, &JsValue::from_str("fatal"))
        .ok()
        .and_then(|f| f.as_bool())
        .unwrap_or(false);
    TokenError {
        fatal,
        message: js::describe(e),
    }
}
