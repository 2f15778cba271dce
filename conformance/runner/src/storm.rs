//! The `storm` calculator (ADR-3): expected peak reconnect rate, and a seeded simulation of N clients reconnecting against an accept rate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write;
use std::time::Duration;
use tether_engine::backoff;
use tether_engine::rng::Rng;
use tether_engine::Policy;

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct StormParams {
    pub clients: u64,
    pub floor_ms: f64,
    pub base_ms: f64,
    pub cap_ms: f64,
    pub multiplier: f64,
    /// A drain window: the first reconnect is `U(from, to)` instead of a backoff draw.
    pub drain_window_ms: Option<(f64, f64)>,
    /// Handshakes the fleet accepts per second.
    pub accept_rate: f64,
    /// Burst of the accept token bucket (default: 50 ms worth of `accept_rate`, at least 1).
    pub burst: Option<f64>,
    /// Contrast: every client waits exactly `min(cap, base·mult^n)`.
    pub no_jitter: bool,
    pub seed: u64,
    pub buckets: usize,
}

impl Default for StormParams {
    fn default() -> Self {
        StormParams {
            clients: 20_000,
            floor_ms: 100.0,
            base_ms: 1_000.0,
            cap_ms: 30_000.0,
            multiplier: 2.0,
            drain_window_ms: None,
            accept_rate: 1_000.0,
            burst: None,
            no_jitter: false,
            seed: 1,
            buckets: 30,
        }
    }
}

/// What the simulation found.
#[derive(Clone, Debug, PartialEq)]
pub struct StormResult {
    pub window_ms: f64,
    pub expected_peak_per_s: f64,
    pub attempts: u64,
    pub refused: u64,
    pub all_connected_ms: f64,
    pub peak_per_s: f64,
    /// Attempts per bucket: (accepted, refused).
    pub histogram: Vec<(u64, u64)>,
    pub bucket_ms: f64,
}

fn policy(p: &StormParams) -> Policy {
    let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1000.0);
    Policy {
        floor: ms(p.floor_ms),
        base: ms(p.base_ms),
        cap: ms(p.cap_ms),
        multiplier: p.multiplier,
        ..Policy::default()
    }
}

/// Simulate: every client lost its connection at t = 0.
pub fn simulate(p: &StormParams) -> StormResult {
    let pol = policy(p);
    let mut rng = Rng::new(p.seed);
    let window_ms = match p.drain_window_ms {
        Some((a, b)) => (b - a).max(0.0),
        None => p.base_ms,
    };
    let expected_peak_per_s = if window_ms > 0.0 {
        p.clients as f64 / (window_ms / 1000.0)
    } else {
        f64::INFINITY
    };
    let draw = |rng: &mut Rng, n: u32| -> f64 {
        if p.no_jitter {
            backoff::ceiling(&pol, n).max(pol.floor).as_secs_f64() * 1000.0
        } else {
            backoff::delay(&pol, n, rng).as_secs_f64() * 1000.0
        }
    };
    // (time in µs, client, retries so far)
    let mut q: BinaryHeap<Reverse<(u64, u64, u32)>> = BinaryHeap::new();
    for c in 0..p.clients {
        let t = match p.drain_window_ms {
            Some((a, b)) if !p.no_jitter => a + (b - a) * rng.next_f64(),
            Some((a, _)) => a,
            None => draw(&mut rng, 0),
        };
        q.push(Reverse(((t * 1000.0) as u64, c, 1)));
    }
    let burst = p.burst.unwrap_or((p.accept_rate * 0.05).max(1.0));
    let mut tokens = burst;
    let mut last = 0u64;
    let mut arrivals: Vec<(u64, bool)> = Vec::new();
    let (mut attempts, mut refused) = (0u64, 0u64);
    let mut done_at = 0u64;
    let max_attempts = 50_000_000u64;
    while let Some(Reverse((t, c, n))) = q.pop() {
        attempts += 1;
        tokens = (tokens + (t - last) as f64 / 1e6 * p.accept_rate).min(burst);
        last = t;
        if tokens >= 1.0 {
            tokens -= 1.0;
            arrivals.push((t, true));
            done_at = done_at.max(t);
        } else {
            refused += 1;
            arrivals.push((t, false));
            let d = draw(&mut rng, n);
            q.push(Reverse((t + (d * 1000.0) as u64, c, n + 1)));
        }
        if attempts >= max_attempts {
            break;
        }
    }
    let end = arrivals.iter().map(|a| a.0).max().unwrap_or(0).max(1);
    let buckets = p.buckets.max(1);
    let bucket_us = (end / buckets as u64).max(1) + 1;
    let mut histogram = vec![(0u64, 0u64); buckets];
    for (t, ok) in &arrivals {
        let i = ((t / bucket_us) as usize).min(buckets - 1);
        if *ok {
            histogram[i].0 += 1;
        } else {
            histogram[i].1 += 1;
        }
    }
    // Peak rate over 100 ms sliding buckets.
    let mut per100: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for (t, _) in &arrivals {
        *per100.entry(t / 100_000).or_insert(0) += 1;
    }
    let peak_per_s = per100.values().copied().max().unwrap_or(0) as f64 * 10.0;
    StormResult {
        window_ms,
        expected_peak_per_s,
        attempts,
        refused,
        all_connected_ms: done_at as f64 / 1000.0,
        peak_per_s,
        histogram,
        bucket_ms: bucket_us as f64 / 1000.0,
    }
}

/// The printed report.
pub fn render(p: &StormParams, r: &StormResult) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "storm: {} clients drop at t=0; accept rate {}/s; {}",
        p.clients,
        p.accept_rate,
        match p.drain_window_ms {
            Some((a, b)) => format!("drain window {a}..{b} ms"),
            None => format!(
                "backoff floor {} ms, base {} ms, cap {} ms, multiplier {}",
                p.floor_ms, p.base_ms, p.cap_ms, p.multiplier
            ),
        }
    );
    if p.no_jitter {
        let _ = writeln!(
            o,
            "NO JITTER: every client waits exactly the same time (the failure ADR-3 prevents)"
        );
    }
    let _ = writeln!(
        o,
        "expected peak reconnect rate ≈ N / W = {} / {:.3} s ≈ {:.0} handshakes/s{}",
        p.clients,
        r.window_ms / 1000.0,
        r.expected_peak_per_s,
        if p.no_jitter {
            " (with jitter; without, all at once)"
        } else {
            ""
        }
    );
    let need_w = p.clients as f64 / p.accept_rate;
    let _ = writeln!(
        o,
        "to stay under the accept rate pick W >= N / R = {:.1} s{}",
        need_w,
        if r.window_ms / 1000.0 >= need_w {
            " (this window is wide enough)"
        } else {
            " (this window is too narrow: refusals and retries follow)"
        }
    );
    let _ = writeln!(
        o,
        "simulated (seed {}): all {} connected after {:.2} s; {} attempts, {} refused and retried; peak {:.0} attempts/s (100 ms buckets)",
        p.seed, p.clients, r.all_connected_ms / 1000.0, r.attempts, r.refused, r.peak_per_s
    );
    let _ = writeln!(
        o,
        "\narrivals per {:.0} ms bucket (# accepted, x refused):",
        r.bucket_ms
    );
    let max = r
        .histogram
        .iter()
        .map(|(a, b)| a + b)
        .max()
        .unwrap_or(1)
        .max(1);
    for (i, (a, b)) in r.histogram.iter().enumerate() {
        let width = 60.0;
        let na = ((*a as f64 / max as f64) * width).round() as usize;
        let nb = ((*b as f64 / max as f64) * width).round() as usize;
        let _ = writeln!(
            o,
            "{:>9.0} ms |{}{} {}",
            i as f64 * r.bucket_ms,
            "#".repeat(na),
            "x".repeat(nb),
            a + b
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_and_no_jitter_spikes() {
        let p = StormParams {
            clients: 2_000,
            accept_rate: 1_000.0,
            ..StormParams::default()
        };
        let j = simulate(&p);
        assert!((j.expected_peak_per_s - 2_000.0).abs() < 1e-6);
        let nj = simulate(&StormParams {
            no_jitter: true,
            ..p.clone()
        });
        assert!(nj.refused > j.refused, "{} vs {}", nj.refused, j.refused);
        let d = simulate(&StormParams {
            drain_window_ms: Some((0.0, 4_000.0)),
            ..p
        });
        assert!(d.refused < j.refused);
        assert!(render(&StormParams::default(), &d).contains("expected peak"));
    }
}
