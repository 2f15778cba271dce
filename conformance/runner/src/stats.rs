//! Timing statistics for the checks: KS tests of backoff draws (uniform from the floor to the ceiling) and of drain draws (uniform).

use tether_engine::stats::{
    backoff_cdf, backoff_cdf_left, ks_critical_d, ks_p_value, ks_statistic, ks_statistic_with,
    uniform_cdf,
};

/// The outcome of one Kolmogorov-Smirnov test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ks {
    pub n: usize,
    pub d: f64,
    pub p: f64,
    pub critical_d: f64,
}

impl Ks {
    /// True when the sample is rejected at `alpha`.
    pub fn rejects(&self, alpha: f64) -> bool {
        self.p <= alpha
    }
}

/// KS of draws `u` (delay / ceiling) against `U(f, 1)`, `f = floor / ceiling` (BACKOFF-1).
pub fn ks_backoff(u: &[f64], f: f64, alpha: f64) -> Ks {
    let d = ks_statistic_with(u, |x| backoff_cdf(x, f), |x| backoff_cdf_left(x, f));
    Ks {
        n: u.len(),
        d,
        p: ks_p_value(d, u.len()),
        critical_d: ks_critical_d(u.len(), alpha),
    }
}

/// KS of draws `u` against `U(0, 1)`.
pub fn ks_uniform(u: &[f64], alpha: f64) -> Ks {
    let d = ks_statistic(u, uniform_cdf);
    Ks {
        n: u.len(),
        d,
        p: ks_p_value(d, u.len()),
        critical_d: ks_critical_d(u.len(), alpha),
    }
}

/// Mean and sample standard deviation.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = if xs.len() > 1 {
        xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_engine::rng::Rng;

    #[test]
    fn honest_draws_pass_and_constant_draws_fail() {
        let mut r = Rng::new(3);
        let f = 0.1;
        let u: Vec<f64> = (0..400).map(|_| f + (1.0 - f) * r.next_f64()).collect();
        assert!(!ks_backoff(&u, f, 1e-6).rejects(1e-6));
        let constant = vec![1.0; 400];
        assert!(ks_backoff(&constant, f, 1e-6).rejects(1e-6));
        // "Cap after jitter" style (all draws in the upper half) is rejected too.
        let upper: Vec<f64> = (0..400).map(|_| 0.5 + 0.5 * r.next_f64()).collect();
        assert!(ks_backoff(&upper, f, 1e-6).rejects(1e-6));
        // And the floor clamp max(f, U(0, 1)) once the floor is a large part of the ceiling.
        let clamp: Vec<f64> = (0..400).map(|_| r.next_f64().max(0.5)).collect();
        assert!(ks_backoff(&clamp, 0.5, 1e-6).rejects(1e-6));
        let plain: Vec<f64> = (0..400).map(|_| r.next_f64()).collect();
        assert!(!ks_uniform(&plain, 1e-6).rejects(1e-6));
        assert_eq!(mean_sd(&[1.0, 3.0]).0, 2.0);
    }
}
