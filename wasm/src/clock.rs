//! Time and randomness from the browser: `performance.now()` as the engine's monotonic clock, `Date.now()` as its wall clock, one `setTimeout` as its timer, `crypto.getRandomValues` as its seed.

use crate::js;
use js_sys::Function;
use tether_engine::Instant;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The engine's monotonic time: `performance.now()` in microseconds (its origin is the page's
/// time origin; the engine only compares and subtracts instants).
pub fn now() -> Instant {
    let ms = js::performance().map_or_else(js_sys::Date::now, |p| p.now());
    Instant::from_micros(micros(ms))
}

/// Milliseconds as whole microseconds, never negative.
pub fn micros(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1000.0) as u64
    } else {
        0
    }
}

/// Wall-clock milliseconds since the UNIX epoch (outbox ages, remembered deadlines).
pub fn wall_unix_ms() -> u64 {
    let ms = js_sys::Date::now();
    if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    }
}

/// 64 random bits from `crypto.getRandomValues`: the default seed (BACKOFF-7) and the client
/// id's entropy (OUTBOX-1). Without Web Crypto (never in a browser), the time and
/// `Math.random` are mixed instead.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let filled =
        js::crypto().is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if filled {
        return u64::from_le_bytes(bytes);
    }
    let a = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let b = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (a << 32) ^ b ^ micros(js_sys::Date::now())
}

/// Milliseconds to wait from `now` until `at`, rounded up so the timer never fires early.
pub fn delay_ms(now: Instant, at: Instant) -> f64 {
    let us = at.saturating_duration_since(now).as_micros();
    us.div_ceil(1000) as f64
}

/// One armed `setTimeout`. Dropping it clears the timeout, so its callback never runs after
/// the closure is freed.
pub struct Timer {
    /// The engine deadline this timer was armed for.
    pub at: Instant,
    id: JsValue,
    _callback: Closure<dyn FnMut()>,
}

impl Timer {
    /// Call `fire` once, at `at` (measured from `now`).
    pub fn arm(now: Instant, at: Instant, fire: impl FnMut() + 'static) -> Timer {
        let callback = Closure::<dyn FnMut()>::new(fire);
        let f: &Function = callback.as_ref().unchecked_ref();
        let id = js::set_timeout(f, delay_ms(now, at));
        Timer {
            at,
            id,
            _callback: callback,
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        js::clear_timeout(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_and_saturate() {
        let t = Instant::from_micros(1_000);
        assert_eq!(delay_ms(t, Instant::from_micros(1_001)), 1.0);
        assert_eq!(delay_ms(t, Instant::from_micros(3_000)), 2.0);
        assert_eq!(delay_ms(t, Instant::from_micros(500)), 0.0);
        assert_eq!(micros(-3.0), 0);
        assert_eq!(micros(f64::NAN), 0);
        assert_eq!(micros(1.5), 1500);
    }
}
