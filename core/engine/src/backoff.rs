//! Exponential backoff with full jitter and a floor (SPEC BACKOFF-1, BACKOFF-5).

use crate::policy::Policy;
use crate::rng::Rng;
use core::time::Duration;

/// The jitter ceiling for failed attempt `n`: `min(cap, base * multiplier^n)` (the cap applies before jitter).
pub fn ceiling(policy: &Policy, attempt: u32) -> Duration {
    let base = policy.base.as_secs_f64();
    let grown = base * policy.multiplier.max(1.0).powi(attempt.min(1_000) as i32);
    let cap = policy.cap.as_secs_f64();
    if !grown.is_finite() || grown >= cap {
        policy.cap
    } else {
        Duration::from_secs_f64(grown)
    }
}

/// Draw the delay before the next attempt after failed attempt `n`:
/// `max(floor, U(0, ceiling(n)))` (BACKOFF-1).
pub fn delay(policy: &Policy, attempt: u32, rng: &mut Rng) -> Duration {
    let drawn = rng.duration_between(Duration::ZERO, ceiling(policy, attempt));
    drawn.max(policy.floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_1_ceiling_grows_then_caps() {
        let p = Policy::default();
        assert_eq!(ceiling(&p, 0), Duration::from_secs(1));
        assert_eq!(ceiling(&p, 3), Duration::from_secs(8));
        assert_eq!(ceiling(&p, 5), Duration::from_secs(30));
        assert_eq!(ceiling(&p, u32::MAX), Duration::from_secs(30));
    }
}
