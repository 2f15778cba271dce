//! The `storm` calculator (ADR-3): N clients dropped at once, the N / W model, and a seeded simulation of their reconnects against an accept rate.
//!
//! Every client loses its connection at t = 0. Its first reconnect comes at a draw of the
//! engine's own backoff (`tether_engine::backoff::delay`, n = 0) or, with a drain window, at
//! `U(from, to)` (DRAIN-1). The fleet accepts handshakes through a token bucket (`accept_rate`
//! tokens per second, holding at most `burst`); an attempt that finds no token is refused and
//! the client tries again after its next backoff draw (n + 1), as a refused client does.
//! [`simulate`] returns the figures, [`render`] prints them with what each one means.

mod render;

pub use render::render;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;
use tether_engine::backoff;
use tether_engine::rng::Rng;
use tether_engine::Policy;

/// How the simulated clients pick their delays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    /// The engine's backoff (BACKOFF-1) and `U(from, to)` for a drain window (DRAIN-1).
    Engine,
    /// Contrast (`--no-jitter`): every client waits exactly `max(floor, min(cap, base·mult^n))`;
    /// with a drain window every client comes back at the window's start, as a client without
    /// jitter would (it does not use the window).
    NoJitter,
    /// Contrast (`--floor-atom`): the draw BACKOFF-1 replaced, `max(floor, U(0, c))`, which
    /// puts a fraction `floor / c` of the fleet exactly on the floor. Kept here only to show
    /// that spike; no client draws this way.
    FloorAtom,
}

/// A peer SDK's default reconnect schedule, for the measured storm's side-by-side rows
/// (`tether-conformance storm-bench`): what those clients wait, not anything Tether does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// socket.io-client's Manager: `1 s × 2^n`, ± randomization 0.5 of it, then capped at 5 s.
    SocketIo,
    /// SignalR `withAutomaticReconnect()`: 0, 2, 10, 30 s, no jitter, then it gives up.
    SignalR,
    /// phoenix.js `reconnectAfterMs`: 10, 50, 100, 150, 200, 250, 500, 1,000, 2,000 ms, then
    /// 5 s, no jitter.
    Phoenix,
    /// A fixed 1 s retry, no jitter.
    Fixed1s,
}

impl Peer {
    /// Every peer, in the order the storm bench prints them.
    pub const ALL: [Peer; 4] = [Peer::SocketIo, Peer::SignalR, Peer::Phoenix, Peer::Fixed1s];

    pub fn name(self) -> &'static str {
        match self {
            Peer::SocketIo => "socket.io-client",
            Peer::SignalR => "SignalR",
            Peer::Phoenix => "phoenix.js",
            Peer::Fixed1s => "fixed 1 s",
        }
    }

    /// The wait before attempt `n` after a disconnect (`n` = 0: the first; each failure adds
    /// one), in ms; `None`: the client gives up.
    pub fn delay_ms(self, n: u32, rng: &mut Rng) -> Option<f64> {
        match self {
            Peer::SocketIo => {
                // socket.io-client's Backoff.duration(): ms = min * factor^attempts; with
                // jitter, deviation = floor(rand * jitter * ms), subtracted or added on
                // another coin; then min(ms, max).
                let ms = 1000.0 * 2f64.powi(n.min(30) as i32);
                let deviation = (rng.next_f64() * 0.5 * ms).floor();
                let ms = if (rng.next_f64() * 10.0).floor() as u64 & 1 == 0 {
                    ms - deviation
                } else {
                    ms + deviation
                };
                Some(ms.min(5000.0))
            }
            Peer::SignalR => [0.0, 2_000.0, 10_000.0, 30_000.0].get(n as usize).copied(),
            Peer::Phoenix => Some(
                [
                    10.0, 50.0, 100.0, 150.0, 200.0, 250.0, 500.0, 1_000.0, 2_000.0,
                ]
                .get(n as usize)
                .copied()
                .unwrap_or(5_000.0),
            ),
            Peer::Fixed1s => Some(1_000.0),
        }
    }
}

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
    /// Tokens the accept bucket holds at most (default: 50 ms worth of `accept_rate`, at least 1).
    pub burst: Option<f64>,
    pub draw: Draw,
    /// Seed of the simulation's random generator (same seed, same run).
    pub seed: u64,
    /// Most histogram rows printed (and, without `bucket_ms`, the run is cut into about this many).
    pub buckets: usize,
    /// Histogram bucket width; `None`: chosen from the data.
    pub bucket_ms: Option<f64>,
    /// Width of the sliding window the peak rates are measured over.
    pub peak_ms: f64,
    /// The fleet is down for the first `down_ms`: attempts before then are refused at the
    /// TCP level (no token spent, not counted in the figures) and retried after the next draw.
    pub down_ms: f64,
    /// The smallest retry-after hint an admission refusal carries (the server's
    /// `admission_retry_after`); the engine draw honours it as READY-1 says. `None`: no hint.
    pub retry_after_ms: Option<f64>,
    /// Draw as this peer SDK does instead of the engine (`draw` is then ignored).
    pub peer: Option<Peer>,
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
            draw: Draw::Engine,
            seed: 1,
            buckets: 30,
            bucket_ms: None,
            peak_ms: 100.0,
            down_ms: 0.0,
            retry_after_ms: None,
            peer: None,
        }
    }
}

impl StormParams {
    /// The token bucket's size.
    pub fn burst(&self) -> f64 {
        self.burst
            .unwrap_or((self.accept_rate * 0.05).max(1.0))
            .max(1.0)
    }

    /// The backoff policy of the simulated clients.
    pub fn policy(&self) -> Policy {
        let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1000.0);
        Policy {
            floor: ms(self.floor_ms),
            base: ms(self.base_ms),
            cap: ms(self.cap_ms),
            multiplier: self.multiplier,
            ..Policy::default()
        }
    }

    /// The interval the first reconnects fall in, in ms (`lo == hi`: all at one instant).
    pub fn first_window_ms(&self) -> (f64, f64) {
        let pol = self.policy();
        match (self.drain_window_ms, self.draw) {
            (Some((a, _)), Draw::NoJitter) => (a, a),
            (Some((a, b)), Draw::Engine | Draw::FloorAtom) => (a, b),
            (None, Draw::NoJitter) => {
                let t = ms_of(backoff::ceiling(&pol, 0).max(pol.floor));
                (t, t)
            }
            // Both draws span [floor, max(floor, c)]; the clamp's mass below the floor sits on it.
            (None, Draw::Engine | Draw::FloorAtom) => {
                let (lo, hi) = backoff::bounds(&pol, 0);
                (ms_of(lo), ms_of(hi))
            }
        }
    }
}

/// Why the histogram has the bucket width it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// `--bucket-ms`.
    Given,
    /// The run cut into about `buckets` rows.
    Spread,
    /// Arrivals fall on few instants (spikes): 1 ms buckets, so each spike is its own row.
    Spikes,
}

/// Attempts in one histogram bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Bucket index (its start is `index * bucket_ms`).
    pub index: u64,
    pub accepted: u64,
    pub refused: u64,
}

/// Attempts per bucket; only buckets with attempts are listed.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bucket_ms: f64,
    pub width: Width,
    /// The first `buckets` non-empty rows.
    pub rows: Vec<Row>,
    /// How many buckets had attempts in all.
    pub non_empty: usize,
    /// Distinct milliseconds with an attempt.
    pub busy_ms: usize,
}

/// What the simulation found.
#[derive(Clone, Debug, PartialEq)]
pub struct StormResult {
    /// Where the first reconnects fall, in ms.
    pub first_window_ms: (f64, f64),
    /// N / W per second (infinite when every client comes back in one instant).
    pub expected_peak_per_s: f64,
    pub burst: f64,
    pub attempts: u64,
    pub refused: u64,
    /// The simulation stopped at its attempt limit before everyone was connected.
    pub truncated: bool,
    /// When the last client was accepted.
    pub all_connected_ms: f64,
    /// The most first attempts in any `peak_ms` window, as a rate per second.
    pub first_wave_peak_per_s: f64,
    /// The same figure for N clients drawn uniformly over the first window (what sampling
    /// noise alone gives); `None` when the window is one instant.
    pub uniform_peak_per_s: Option<f64>,
    /// The most attempts of any kind (first attempts and retries) in any `peak_ms` window, per second.
    pub peak_per_s: f64,
    pub histogram: Histogram,
    /// When 99% of the clients were accepted, in ms after `down_ms`; `None` if they never were.
    pub p99_connected_ms: Option<f64>,
    /// Clients that stopped retrying (a peer schedule that ends).
    pub gave_up: u64,
}

/// Attempts the simulation makes at most.
pub const MAX_ATTEMPTS: u64 = 50_000_000;

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn us_of_ms(ms: f64) -> u64 {
    (ms.max(0.0) * 1000.0) as u64
}

/// The most entries of `times_us` (sorted) inside any window `[t, t + window_us)`.
pub fn sliding_peak(times_us: &[u64], window_us: u64) -> u64 {
    let window_us = window_us.max(1);
    let (mut best, mut i) = (0usize, 0usize);
    for j in 0..times_us.len() {
        while times_us[j] - times_us[i] >= window_us {
            i += 1;
        }
        best = best.max(j - i + 1);
    }
    best as u64
}

/// `x` rounded up to 1, 2 or 5 times a power of ten (at least 1).
fn nice_ceil(x: f64) -> f64 {
    if !x.is_finite() || x <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= x - 1e-9)
        .unwrap_or(10.0 * p)
}

/// Simulate: every client lost its connection at t = 0.
pub fn simulate(p: &StormParams) -> StormResult {
    let pol = p.policy();
    let mut rng = Rng::new(p.seed);
    let first_window_ms = p.first_window_ms();
    let w_s = (first_window_ms.1 - first_window_ms.0) / 1000.0;
    let expected_peak_per_s = if w_s > 0.0 {
        p.clients as f64 / w_s
    } else {
        f64::INFINITY
    };
    let draw = |rng: &mut Rng, n: u32| -> f64 {
        match p.draw {
            Draw::NoJitter => ms_of(backoff::ceiling(&pol, n).max(pol.floor)),
            Draw::Engine => ms_of(backoff::delay(&pol, n, rng)),
            Draw::FloorAtom => {
                let c = backoff::ceiling(&pol, n).as_secs_f64();
                ms_of(Duration::from_secs_f64(c * rng.next_f64()).max(pol.floor))
            }
        }
    };
    // A peer schedule instead of the engine draw; `None`: the client gives up.
    let next = |rng: &mut Rng, n: u32| -> Option<f64> {
        match p.peer {
            Some(peer) => peer.delay_ms(n, rng),
            None => Some(draw(rng, n)),
        }
    };
    let down_us = us_of_ms(p.down_ms);
    let mut gave_up = 0u64;
    // (time in µs, client, n of the backoff draw after a refusal of this attempt, first attempt)
    let mut q: BinaryHeap<Reverse<(u64, u64, u32, bool)>> = BinaryHeap::new();
    for c in 0..p.clients {
        let (t, n) = match (p.drain_window_ms, p.draw, p.peer) {
            (None, _, _) | (_, _, Some(_)) => match next(&mut rng, 0) {
                Some(t) => (t, 1),
                None => {
                    gave_up += 1;
                    continue;
                }
            },
            // A drain is not a failure (DRAIN-2): a refused attempt after it draws n = 0.
            (Some((a, b)), Draw::Engine | Draw::FloorAtom, None) => {
                (a + (b - a) * rng.next_f64(), 0)
            }
            (Some((a, _)), Draw::NoJitter, None) => (a, 0),
        };
        q.push(Reverse((us_of_ms(t), c, n, true)));
    }
    let burst = p.burst();
    let mut tokens = burst;
    let mut last = 0u64;
    // Attempt times in order (the queue pops them in time order), whether each was accepted,
    // and the times of first attempts.
    let mut times: Vec<u64> = Vec::with_capacity(p.clients as usize);
    let mut accepted: Vec<bool> = Vec::with_capacity(p.clients as usize);
    let mut first: Vec<u64> = Vec::with_capacity(p.clients as usize);
    let (mut attempts, mut refused) = (0u64, 0u64);
    let mut done_at = 0u64;
    let mut accepted_at: Vec<u64> = Vec::with_capacity(p.clients as usize);
    let mut truncated = false;
    if down_us > 0 {
        last = down_us;
    }
    while let Some(Reverse((t, c, n, is_first))) = q.pop() {
        if attempts >= MAX_ATTEMPTS {
            truncated = true;
            break;
        }
        if t < down_us {
            // Refused TCP while the fleet is down: not an attempt the fleet sees.
            match next(&mut rng, n) {
                Some(d) => q.push(Reverse((t + us_of_ms(d), c, n.saturating_add(1), false))),
                None => gave_up += 1,
            }
            continue;
        }
        attempts += 1;
        tokens = (tokens + (t - last) as f64 / 1e6 * p.accept_rate).min(burst);
        last = t;
        times.push(t);
        if is_first {
            first.push(t);
        }
        if tokens >= 1.0 {
            tokens -= 1.0;
            accepted.push(true);
            accepted_at.push(t);
            done_at = done_at.max(t);
        } else {
            refused += 1;
            accepted.push(false);
            // The server's hint: the token deficit, at least its smallest hint.
            let hint_ms = p
                .retry_after_ms
                .map(|min| ((1.0 - tokens) / p.accept_rate * 1000.0).max(min));
            let d = match (p.peer, hint_ms) {
                (None, Some(hint)) => {
                    // READY-1: RA + U(0, RA / 2), RA clamped to [floor, 600 s], never less
                    // than the backoff draw.
                    let ra = hint.clamp(p.floor_ms, 600_000.0);
                    let b = draw(&mut rng, n);
                    Some(b.max(ra + ra / 2.0 * rng.next_f64()))
                }
                _ => next(&mut rng, n),
            };
            match d {
                Some(d) => q.push(Reverse((t + us_of_ms(d), c, n.saturating_add(1), false))),
                None => gave_up += 1,
            }
        }
    }
    let p99_connected_ms = {
        let want = ((p.clients as f64) * 0.99).ceil() as usize;
        (want > 0 && accepted_at.len() >= want)
            .then(|| accepted_at[want - 1].saturating_sub(down_us) as f64 / 1000.0)
    };
    let peak_us = us_of_ms(p.peak_ms).max(1);
    let per_s = |count: u64| count as f64 / (peak_us as f64 / 1e6);
    let first_wave_peak_per_s = per_s(sliding_peak(&first, peak_us));
    let peak_per_s = per_s(sliding_peak(&times, peak_us));
    let uniform_peak_per_s = (w_s > 0.0).then(|| {
        let mut r = Rng::new(p.seed ^ 0x005E_ED0F_0DD5);
        let (lo, hi) = (us_of_ms(first_window_ms.0), us_of_ms(first_window_ms.1));
        let mut u: Vec<u64> = (0..p.clients)
            .map(|_| lo + ((hi - lo) as f64 * r.next_f64()) as u64)
            .collect();
        u.sort_unstable();
        per_s(sliding_peak(&u, peak_us))
    });
    let histogram = histogram(p, &times, &accepted);
    StormResult {
        first_window_ms,
        expected_peak_per_s,
        burst,
        attempts,
        refused,
        truncated,
        all_connected_ms: done_at as f64 / 1000.0,
        first_wave_peak_per_s,
        uniform_peak_per_s,
        peak_per_s,
        histogram,
        p99_connected_ms,
        gave_up,
    }
}

fn histogram(p: &StormParams, times: &[u64], accepted: &[bool]) -> Histogram {
    let end_ms = times.last().map_or(0.0, |t| *t as f64 / 1000.0);
    let mut busy_ms = 0usize;
    let mut prev: Option<u64> = None;
    for t in times {
        let m = t / 1000;
        if prev != Some(m) {
            busy_ms += 1;
            prev = Some(m);
        }
    }
    let rows_wanted = p.buckets.max(1);
    let (bucket_ms, width) = match p.bucket_ms {
        Some(w) if w > 0.0 => (w, Width::Given),
        // Attempts on fewer than 5% of the run's milliseconds: spikes; show each one.
        _ if (busy_ms as f64) < 0.05 * end_ms.max(1.0) => (1.0, Width::Spikes),
        _ => (nice_ceil(end_ms / rows_wanted as f64), Width::Spread),
    };
    let bucket_us = us_of_ms(bucket_ms).max(1);
    let mut by: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (t, ok) in times.iter().zip(accepted) {
        let e = by.entry(t / bucket_us).or_insert((0, 0));
        if *ok {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let non_empty = by.len();
    let rows = by
        .into_iter()
        .take(rows_wanted)
        .map(|(index, (accepted, refused))| Row {
            index,
            accepted,
            refused,
        })
        .collect();
    Histogram {
        bucket_ms,
        width,
        rows,
        non_empty,
        busy_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> StormParams {
        StormParams {
            clients: 2_000,
            accept_rate: 1_000.0,
            ..StormParams::default()
        }
    }

    #[test]
    fn peer_schedules_after_an_outage() {
        // Fixed 1 s: retries at 1, 2, 3 s; the fleet is back at 3 s: all N at one instant.
        let fixed = simulate(&StormParams {
            peer: Some(Peer::Fixed1s),
            down_ms: 3_000.0,
            burst: Some(100.0),
            ..small()
        });
        assert_eq!(
            fixed.first_wave_peak_per_s, 0.0,
            "no first attempt reaches the fleet"
        );
        assert_eq!(
            fixed.peak_per_s,
            2_000.0 * 10.0,
            "every client in one instant"
        );
        assert_eq!(fixed.gave_up, 0);
        assert!(fixed.p99_connected_ms.is_some());
        // SignalR: 0 and 2 s fall in the outage, then 12 s, 42 s, then it gives up.
        let signalr = simulate(&StormParams {
            peer: Some(Peer::SignalR),
            down_ms: 3_000.0,
            accept_rate: 100.0,
            burst: Some(100.0),
            ..small()
        });
        assert!(
            signalr.gave_up > 0,
            "refused at 12 s and 42 s: no more tries"
        );
        assert!(
            signalr.attempts <= 2 * 2_000,
            "at most two attempts reach the fleet"
        );
        assert!(signalr.p99_connected_ms.is_none());
        let mut rng = Rng::new(1);
        for n in 0..8 {
            let d = Peer::SocketIo.delay_ms(n, &mut rng).unwrap_or(0.0);
            let base = 1000.0 * 2f64.powi(n as i32);
            assert!(
                d >= (base * 0.5).min(5000.0) && d <= 5000.0_f64.min(base * 1.5),
                "{n}: {d}"
            );
        }
        assert_eq!(Peer::Phoenix.delay_ms(0, &mut rng), Some(10.0));
        assert_eq!(Peer::Phoenix.delay_ms(9, &mut rng), Some(5_000.0));
    }

    #[test]
    fn engine_clients_honour_the_retry_after_hint() {
        let base = StormParams {
            down_ms: 3_000.0,
            burst: Some(100.0),
            ..small()
        };
        let plain = simulate(&base);
        let hinted = simulate(&StormParams {
            retry_after_ms: Some(1_000.0),
            ..base
        });
        assert!(
            hinted.attempts <= plain.attempts,
            "{} vs {}",
            hinted.attempts,
            plain.attempts
        );
        assert_eq!(hinted.attempts - hinted.refused, 2_000);
    }

    #[test]
    fn jitter_spreads_and_no_jitter_spikes() {
        let p = small();
        let j = simulate(&p);
        assert_eq!(j.first_window_ms, (100.0, 1_000.0), "U(floor, base)");
        let nj = simulate(&StormParams {
            draw: Draw::NoJitter,
            ..p.clone()
        });
        assert!(nj.refused > j.refused, "{} vs {}", nj.refused, j.refused);
        assert!(nj.expected_peak_per_s.is_infinite());
        // Without jitter every first attempt lands in one instant.
        assert_eq!(nj.first_wave_peak_per_s, 2_000.0 * 10.0);
        let d = simulate(&StormParams {
            drain_window_ms: Some((0.0, 4_000.0)),
            ..p
        });
        assert!(d.refused < j.refused);
        assert!((d.expected_peak_per_s - 500.0).abs() < 1e-9);
    }

    #[test]
    fn every_client_connects_once_and_attempts_add_up() {
        for draw in [Draw::Engine, Draw::NoJitter] {
            let r = simulate(&StormParams {
                draw,
                burst: Some(200.0),
                ..small()
            });
            assert!(!r.truncated);
            assert_eq!(r.attempts - r.refused, 2_000, "{draw:?}");
            let rows: u64 = r
                .histogram
                .rows
                .iter()
                .map(|x| x.accepted + x.refused)
                .sum();
            if r.histogram.non_empty <= r.histogram.rows.len() {
                assert_eq!(rows, r.attempts);
            }
        }
    }

    #[test]
    fn first_wave_follows_the_engine_draw() {
        // Nobody is refused: the first wave alone, through tether_engine::backoff.
        let p = StormParams {
            accept_rate: 1e12,
            burst: Some(1e9),
            ..small()
        };
        let r = simulate(&p);
        assert_eq!(r.refused, 0);
        let mut rng = Rng::new(p.seed);
        let pol = p.policy();
        let mut want: Vec<u64> = (0..p.clients)
            .map(|_| us_of_ms(ms_of(backoff::delay(&pol, 0, &mut rng))))
            .collect();
        want.sort_unstable();
        assert!((r.all_connected_ms - *want.last().unwrap_or(&0) as f64 / 1000.0).abs() < 1e-6);
    }

    #[test]
    fn the_no_jitter_histogram_shows_each_spike() {
        let r = simulate(&StormParams {
            draw: Draw::NoJitter,
            ..small()
        });
        assert_eq!(r.histogram.width, Width::Spikes);
        assert_eq!(r.histogram.bucket_ms, 1.0);
        // Spikes at 1 s, then 2 s, 4 s, 8 s... later: each spike one row of 1 ms.
        let starts: Vec<u64> = r.histogram.rows.iter().take(4).map(|x| x.index).collect();
        assert_eq!(starts, vec![1_000, 3_000, 7_000, 15_000]);
        let jittered = simulate(&small());
        assert_eq!(jittered.histogram.width, Width::Spread);
        assert!(jittered.histogram.rows.len() <= 30);
    }

    #[test]
    fn no_jitter_duration_scales_with_the_burst() {
        let at = |burst: f64| {
            simulate(&StormParams {
                draw: Draw::NoJitter,
                burst: Some(burst),
                ..small()
            })
            .all_connected_ms
        };
        let (b50, b200) = (at(50.0), at(200.0));
        // About N / burst spikes at the cap: four times the burst, about a quarter of the time.
        assert!(b50 > 3.0 * b200, "{b50} vs {b200}");
    }

    #[test]
    fn backoff_1_the_first_wave_has_no_spike_at_the_floor() {
        // 20,000 clients, base 1 s, 1 ms windows: the engine's draw peaks near what a uniform
        // spread gives; the clamp max(floor, U(0, c)) puts 2,000 clients in one instant.
        let p = StormParams {
            peak_ms: 1.0,
            ..StormParams::default()
        };
        let r = simulate(&p);
        let uniform = r.uniform_peak_per_s.unwrap_or(0.0);
        assert!(
            r.first_wave_peak_per_s < 1.5 * uniform,
            "{} vs uniform {uniform}",
            r.first_wave_peak_per_s
        );
        assert!(r.first_wave_peak_per_s < 3.0 * r.expected_peak_per_s);
        let old = simulate(&StormParams {
            draw: Draw::FloorAtom,
            ..p
        });
        // 10% of the fleet on the floor: at least 2,000 attempts in that millisecond.
        assert!(
            old.first_wave_peak_per_s >= 2_000_000.0,
            "{}",
            old.first_wave_peak_per_s
        );
    }

    #[test]
    fn sliding_peak_counts_the_busiest_window() {
        assert_eq!(sliding_peak(&[], 10), 0);
        assert_eq!(sliding_peak(&[0, 5, 9, 10, 11, 30], 10), 4);
        assert_eq!(sliding_peak(&[0, 5, 9, 10, 11, 30], 5), 3);
        assert_eq!(sliding_peak(&[7, 7, 7], 1), 3);
        assert_eq!(nice_ceil(1383.0), 2000.0);
        assert_eq!(nice_ceil(0.2), 1.0);
        assert_eq!(nice_ceil(500.0), 500.0);
    }
}
