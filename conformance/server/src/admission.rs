//! Handshake admission control: a token bucket; over it the server answers 503 with a retry-after hint (READY-1).

use std::time::Duration;
use tokio::time::Instant;

/// A token bucket of `rate` handshakes per second with `burst` capacity.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    min_retry: Duration,
}

impl TokenBucket {
    /// A full bucket. `rate` below 0.001/s is raised to it; `burst` below 1 is raised to 1.
    /// Refusals hint at least `min_retry`.
    pub fn new(rate: f64, burst: f64, min_retry: Duration) -> TokenBucket {
        let rate = if rate.is_finite() {
            rate.max(0.001)
        } else {
            1.0
        };
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
            min_retry,
        }
    }

    /// Take one token, or say how long until one is available (never less than `min_retry`).
    pub fn try_acquire(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).min(600.0));
            Err(wait.max(self.min_retry))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_over_rate() {
        let mut b = TokenBucket::new(1.0, 2.0, Duration::from_millis(500));
        assert!(b.try_acquire().is_ok());
        assert!(b.try_acquire().is_ok());
        let wait = b.try_acquire().expect_err("over rate");
        assert!(wait >= Duration::from_millis(500));
    }
}
