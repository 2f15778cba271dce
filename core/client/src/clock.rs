//! The driver's clock hook: engine instants from tokio time, replaceable for tests.

use futures_util::future::BoxFuture;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tether_engine::Instant;

/// Where the driver reads time and how it sleeps.
///
/// The engine never reads a clock (it is sans-IO); the driver passes `now()` into every
/// `handle_*` call and sleeps until the engine's `poll_timeout` with `sleep_until`.
/// The default, [`TokioClock`], follows tokio time, so tests can run a client on paused time
/// (`tokio::time::pause`) and `advance` through backoff delays instantly.
pub trait Clock: Send + Sync + 'static {
    /// The current monotonic instant.
    fn now(&self) -> Instant;
    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
    /// Wall-clock milliseconds since the UNIX epoch, for outbox ages and remembered
    /// deadlines that outlive the process (OUTBOX-6, READY-2).
    fn wall_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// tokio time mapped to engine instants from a fixed origin (the clock's creation).
#[derive(Clone, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> TokioClock {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// The tokio instant of an engine instant.
    pub fn to_tokio(&self, at: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_micros(at.as_micros())
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let us = self.origin.elapsed().as_micros();
        Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(self.to_tokio(deadline)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let clock = TokioClock::new();
        assert_eq!(clock.now(), Instant::ZERO);
        let wake = clock.sleep_until(Instant::from_millis(1500));
        wake.await;
        assert_eq!(clock.now().as_millis(), 1500);
    }
}
