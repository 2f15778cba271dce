//! Statistics used to check timing claims: Kolmogorov-Smirnov against uniform and the backoff draw's distribution.
//!
//! The backoff of BACKOFF-1 draws `U(floor, max(floor, ceiling))`. Divided by the ceiling,
//! a delay is `U(f, 1)` with `f = floor / ceiling`; its CDF is [`backoff_cdf`]:
//! `F(u) = (u - f) / (1 - f)` on `[f, 1]` (with `f = 0` the plain uniform CDF on `[0, 1]`).
//! It has no atom: the earlier draw `max(floor, U(0, ceiling))` piled the mass below `f` onto
//! `f` itself, and a sample of it is rejected against this CDF (its KS distance is `f`).
//!
//! [`ks_statistic`] computes the one-sample Kolmogorov-Smirnov distance
//! `D = sup |F_n(x) - F(x)|` between samples and a CDF, handling ties and
//! CDFs with jumps (it takes the CDF's left limit too). [`ks_p_value`] gives
//! the asymptotic p-value from the Kolmogorov distribution (with Stephens'
//! small-sample correction), and [`ks_critical_d`] the distance that a sample
//! of size `n` must exceed to be rejected at level `alpha`.
//!
//! For a CDF with a jump the test is conservative: the true p-value is never
//! smaller than the one computed here, so a rejection is trustworthy.
//!
//! Pure math, no dependencies, no allocation beyond one sorted copy.

/// The CDF of `U(f, 1)`, the BACKOFF-1 delay divided by its ceiling (`f = floor / ceiling`).
/// With `f >= 1` (floor at or above the ceiling) every delay is the floor: a step at 1.
pub fn backoff_cdf(u: f64, f: f64) -> f64 {
    let f = f.max(0.0);
    if u >= 1.0 {
        1.0
    } else if f >= 1.0 || u <= f {
        0.0
    } else {
        (u - f) / (1.0 - f)
    }
}

/// The left limit `F(u-)` of [`backoff_cdf`]: it differs from `F(u)` only in the degenerate
/// case `f >= 1`, at `u = 1`.
pub fn backoff_cdf_left(u: f64, f: f64) -> f64 {
    if f >= 1.0 {
        if u > 1.0 {
            1.0
        } else {
            0.0
        }
    } else {
        backoff_cdf(u, f)
    }
}

/// The CDF of `U(0, 1)`.
pub fn uniform_cdf(u: f64) -> f64 {
    u.clamp(0.0, 1.0)
}

/// One-sample KS distance `sup |F_n - F|` for a continuous CDF `cdf`.
///
/// NaN samples are ignored. Returns 0 for an empty sample.
pub fn ks_statistic(samples: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    ks_statistic_with(samples, &cdf, &cdf)
}

/// One-sample KS distance for a CDF that may jump: `cdf(x) = F(x)` and
/// `cdf_left(x) = F(x-)`. Ties in the sample are handled exactly.
///
/// Between two distinct sample values `F_n` is constant and `F` is
/// non-decreasing, so the supremum is reached at a sample value, from the
/// right (`F_n(x) - F(x)`) or from the left (`F(x-) - F_n(x-)`).
pub fn ks_statistic_with(
    samples: &[f64],
    cdf: impl Fn(f64) -> f64,
    cdf_left: impl Fn(f64) -> f64,
) -> f64 {
    let mut xs: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    let mut d: f64 = 0.0;
    let mut i = 0;
    while i < xs.len() {
        let x = xs[i];
        let mut j = i;
        while j < xs.len() && xs[j] == x {
            j += 1;
        }
        let below = i as f64 / n; // F_n(x-)
        let at = j as f64 / n; // F_n(x)
        d = d.max((at - cdf(x)).abs()).max((cdf_left(x) - below).abs());
        i = j;
    }
    d
}

/// Stephens' effective `sqrt(n)`: `sqrt(n) + 0.12 + 0.11 / sqrt(n)`.
fn effective_sqrt_n(n: usize) -> f64 {
    let s = (n.max(1) as f64).sqrt();
    s + 0.12 + 0.11 / s
}

/// Survival function of the Kolmogorov distribution, `Q(λ) = P(K > λ)`.
///
/// For `λ >= 1.18`: `2 Σ_{k>=1} (-1)^(k-1) exp(-2 k² λ²)`; below, the
/// equivalent theta-function form `1 - sqrt(2π)/λ Σ_{k>=1} exp(-(2k-1)² π² / (8 λ²))`,
/// which converges fast there. Both are accurate to about 1e-15.
pub fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda.is_nan() {
        return f64::NAN;
    }
    if lambda <= 0.0 {
        return 1.0;
    }
    if lambda < 1.18 {
        let pi = core::f64::consts::PI;
        let y = -pi * pi / (8.0 * lambda * lambda);
        let mut sum = 0.0;
        for k in 1..=20 {
            let m = (2 * k - 1) as f64;
            sum += (m * m * y).exp();
        }
        (1.0 - (2.0 * pi).sqrt() / lambda * sum).clamp(0.0, 1.0)
    } else {
        let mut sum = 0.0;
        let mut sign = 1.0;
        for k in 1..=100 {
            let kf = k as f64;
            let term = (-2.0 * kf * kf * lambda * lambda).exp();
            sum += sign * term;
            if term < 1e-300 {
                break;
            }
            sign = -sign;
        }
        (2.0 * sum).clamp(0.0, 1.0)
    }
}

/// The asymptotic p-value of KS distance `d` for a sample of size `n`
/// (Kolmogorov distribution with Stephens' correction).
pub fn ks_p_value(d: f64, n: usize) -> f64 {
    kolmogorov_q(effective_sqrt_n(n) * d)
}

/// The smallest KS distance rejected at level `alpha` for a sample of size `n`:
/// `ks_p_value(d, n) <= alpha` exactly when `d >= ks_critical_d(n, alpha)`.
pub fn ks_critical_d(n: usize, alpha: f64) -> f64 {
    let alpha = alpha.clamp(1e-300, 1.0);
    // Q is decreasing in λ: bisect Q(λ) = alpha on [0, 40].
    let (mut lo, mut hi) = (0.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if kolmogorov_q(mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi / effective_sqrt_n(n)
}

/// True when the sample is rejected at level `alpha` as coming from `cdf` (with left limit `cdf_left`).
pub fn ks_rejects(
    samples: &[f64],
    cdf: impl Fn(f64) -> f64,
    cdf_left: impl Fn(f64) -> f64,
    alpha: f64,
) -> bool {
    let d = ks_statistic_with(samples, cdf, cdf_left);
    ks_p_value(d, samples.len()) <= alpha
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_1_cdf_is_uniform_from_the_floor() {
        assert_eq!(backoff_cdf(0.05, 0.1), 0.0);
        assert_eq!(backoff_cdf(0.1, 0.1), 0.0);
        assert!((backoff_cdf(0.55, 0.1) - 0.5).abs() < 1e-12);
        assert_eq!(backoff_cdf(1.0, 0.1), 1.0);
        assert!((backoff_cdf(0.3, 0.0) - uniform_cdf(0.3)).abs() < 1e-12);
        // Degenerate: floor at the ceiling, all mass at 1.
        assert_eq!(backoff_cdf(0.99, 1.0), 0.0);
        assert_eq!(backoff_cdf(1.0, 1.0), 1.0);
        assert_eq!(backoff_cdf_left(1.0, 1.0), 0.0);
    }

    #[test]
    fn kolmogorov_known_values() {
        // Classic table: Q(1.36) ≈ 0.049, Q(1.63) ≈ 0.0098, Q(0.5) ≈ 0.9639.
        assert!((kolmogorov_q(1.358_099) - 0.05).abs() < 1e-4);
        assert!((kolmogorov_q(1.627_624) - 0.01).abs() < 1e-4);
        assert!((kolmogorov_q(0.5) - 0.963_945).abs() < 1e-5);
        // Both series agree where they meet.
        let a = kolmogorov_q(1.18 - 1e-12);
        let b = kolmogorov_q(1.18);
        assert!((a - b).abs() < 1e-9);
        assert_eq!(kolmogorov_q(0.0), 1.0);
        assert!(kolmogorov_q(10.0) < 1e-80);
    }

    #[test]
    fn critical_d_inverts_p_value() {
        for n in [10, 100, 1000, 100_000] {
            for alpha in [0.05, 1e-3, 1e-6] {
                let d = ks_critical_d(n, alpha);
                assert!((ks_p_value(d, n) - alpha).abs() < alpha * 1e-6);
            }
        }
        // D_crit(1000, 0.05) ≈ 1.358 / 31.74.
        assert!((ks_critical_d(1000, 0.05) - 0.0428).abs() < 5e-4);
    }

    #[test]
    fn statistic_exact_on_small_samples() {
        // Samples 0.1, 0.5, 0.9 against U(0,1): D = max(1/3-0.1, 0.5-1/3, 0.9-2/3, 1-0.9) = 0.2333...
        let d = ks_statistic(&[0.9, 0.1, 0.5], uniform_cdf);
        assert!((d - (0.9 - 2.0 / 3.0)).abs() < 1e-12);
        // A CDF with a jump (the atom of max(0.5, U(0, 1)) at 0.5, F(0.5-) = 0, F(0.5) = 0.5):
        // ties on it are handled exactly; 3 of 4 samples there fit F(0.5) = 0.5 badly.
        let atom = |u: f64| if u < 0.5 { 0.0 } else { u.min(1.0) };
        let atom_left = |u: f64| if u <= 0.5 { 0.0 } else { u.min(1.0) };
        let d = ks_statistic_with(&[0.5, 0.5, 0.5, 0.75], atom, atom_left);
        assert!((d - 0.25).abs() < 1e-12, "{d}");
        // The same samples against the backoff CDF U(0.5, 1): three at its lower end.
        let d = ks_statistic_with(
            &[0.5, 0.5, 0.5, 0.75],
            |u| backoff_cdf(u, 0.5),
            |u| backoff_cdf_left(u, 0.5),
        );
        assert!((d - 0.75).abs() < 1e-12, "{d}");
        assert_eq!(ks_statistic(&[], uniform_cdf), 0.0);
    }
}
