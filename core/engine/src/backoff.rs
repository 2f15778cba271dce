//! Exponential backoff with full jitter above a floor (SPEC BACKOFF-1, BACKOFF-5).
//!
//! After failed attempt `n` the delay is uniform on `[floor, max(floor, c)]` with
//! `c = min(cap, base * multiplier^n)`: the cap applies before the jitter, and the floor is
//! the lower end of the interval, not a clamp. A clamp (`max(floor, U(0, c))`) would put
//! every draw below the floor exactly on it, a fraction `floor / c` of all clients (10% of a
//! fleet with the defaults) reconnecting in the same instant.

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

/// The interval the delay after failed attempt `n` is drawn from: `[floor, max(floor, ceiling(n))]`.
pub fn bounds(policy: &Policy, attempt: u32) -> (Duration, Duration) {
    let lo = policy.floor;
    (lo, ceiling(policy, attempt).max(lo))
}

/// Draw the delay before the next attempt after failed attempt `n`: `U(floor, max(floor,
/// ceiling(n)))` (BACKOFF-1). Exactly one draw of `rng` per call, whatever the policy.
pub fn delay(policy: &Policy, attempt: u32, rng: &mut Rng) -> Duration {
    let (lo, hi) = bounds(policy, attempt);
    let u = rng.next_f64();
    lo + Duration::from_secs_f64((hi - lo).as_secs_f64() * u)
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

    #[test]
    fn backoff_1_draws_span_floor_to_ceiling() {
        let p = Policy::default();
        assert_eq!(
            bounds(&p, 0),
            (Duration::from_millis(100), Duration::from_secs(1))
        );
        let mut rng = Rng::new(3);
        let ds: Vec<Duration> = (0..10_000).map(|_| delay(&p, 0, &mut rng)).collect();
        assert!(ds
            .iter()
            .all(|d| *d >= p.floor && *d <= Duration::from_secs(1)));
        // No atom: the lowest tenth of [floor, base] holds about a tenth of the draws, and
        // no draw sits exactly on the floor.
        let low = ds
            .iter()
            .filter(|d| **d < Duration::from_millis(190))
            .count();
        assert!((800..1_200).contains(&low), "{low}");
        assert_eq!(ds.iter().filter(|d| **d == p.floor).count(), 0);
        // A floor at the ceiling leaves one value.
        let flat = Policy {
            floor: Duration::from_secs(1),
            ..Policy::default()
        };
        assert_eq!(delay(&flat, 0, &mut rng), Duration::from_secs(1));
    }
}
