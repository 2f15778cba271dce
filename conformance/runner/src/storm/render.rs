//! The storm calculator's printed report: every figure with what it means.

use super::{Draw, StormParams, StormResult, Width, MAX_ATTEMPTS};
use std::fmt::Write;

/// `1234567.8` as `1,234,568`.
fn group(x: f64) -> String {
    if !x.is_finite() {
        return "unbounded".into();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A duration in ms as `850 ms`, `41.50 s`, `3.30 h`.
fn span(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{} ms", group(ms))
    } else if ms < 3_600_000.0 {
        format!("{:.2} s", ms / 1_000.0)
    } else {
        format!("{:.2} h", ms / 3_600_000.0)
    }
}

/// The printed report.
pub fn render(p: &StormParams, r: &StormResult) -> String {
    let mut o = String::new();
    let n = p.clients as f64;
    let _ = writeln!(
        o,
        "storm: {} clients lose their connections at t = 0 and reconnect (seed {})",
        group(n),
        p.seed
    );
    let _ = writeln!(
        o,
        "  fleet:   accepts {} handshakes/s through a token bucket holding at most {} tokens\n           (--burst; default 50 ms of the accept rate): an attempt that finds it empty is refused",
        group(p.accept_rate),
        group(r.burst)
    );
    let policy = format!(
        "floor {} ms, base {} ms, cap {} ms, multiplier {}",
        group(p.floor_ms),
        group(p.base_ms),
        group(p.cap_ms),
        p.multiplier
    );
    match (p.draw, p.drain_window_ms) {
        (Draw::Engine, None) => {
            let _ = writeln!(
                o,
                "  clients: back off with tether_engine::backoff (BACKOFF-1): {policy};\n           a refused client tries again after its next draw (n + 1)"
            );
        }
        (Draw::Engine, Some((a, b))) => {
            let _ = writeln!(
                o,
                "  clients: drain window {}..{} ms: each comes back at U(from, to) (DRAIN-1);\n           a refused client then backs off ({policy}) from n = 0",
                group(a),
                group(b)
            );
        }
        (Draw::NoJitter, None) => {
            let _ = writeln!(
                o,
                "  clients: NO JITTER (--no-jitter, the failure ADR-3 prevents): every client waits exactly\n           max(floor, min(cap, base·mult^n)) ({policy})"
            );
        }
        (Draw::FloorAtom, None) => {
            let _ = writeln!(
                o,
                "  clients: FLOOR CLAMP (--floor-atom, the draw BACKOFF-1 replaced): max(floor, U(0, c)), which\n           puts a fraction floor / c of the fleet exactly on the floor ({policy})"
            );
        }
        (Draw::FloorAtom, Some((a, b))) => {
            let _ = writeln!(
                o,
                "  clients: drain window {}..{} ms: each comes back at U(from, to) (DRAIN-1);\n           a refused client then backs off with the old clamp max(floor, U(0, c)) (--floor-atom; {policy})",
                group(a),
                group(b)
            );
        }
        (Draw::NoJitter, Some((a, b))) => {
            let _ = writeln!(
                o,
                "  clients: NO JITTER (--no-jitter): every client comes back at the drain window's start ({} ms)\n           and does not use the rest of the {}..{} ms window; after a refusal it waits exactly\n           max(floor, min(cap, base·mult^n)) ({policy})",
                group(a),
                group(a),
                group(b)
            );
        }
    }

    let (lo, hi) = r.first_window_ms;
    let w_s = (hi - lo) / 1000.0;
    let need_w = n / p.accept_rate;
    let _ = writeln!(
        o,
        "\nmodel (ADR-3): N clients reconnecting at uniformly random points of a window W arrive at about N / W per second"
    );
    if w_s > 0.0 {
        let _ = writeln!(
            o,
            "  W      = {:<12} the first reconnects fall in [{}, {}] ms",
            format!("{w_s:.3} s"),
            group(lo),
            group(hi)
        );
    } else {
        let _ = writeln!(
            o,
            "  W      = {:<12} every first reconnect falls at {} ms: one instant",
            "0",
            group(lo)
        );
    }
    let _ = writeln!(
        o,
        "  N / W  = {:<12} the expected peak reconnect rate of the first wave{}",
        if w_s > 0.0 {
            format!("{}/s", group(r.expected_peak_per_s))
        } else {
            "unbounded".into()
        },
        if w_s > 0.0 { "" } else { ": all N at once" }
    );
    let _ = writeln!(
        o,
        "  N / R  = {:<12} the narrowest W this accept rate R absorbs without refusals: {}",
        format!("{need_w:.1} s"),
        if w_s >= need_w {
            "W is wide enough"
        } else {
            "W is narrower, so refusals and retries follow"
        }
    );

    let _ = writeln!(o, "\nsimulated:");
    let window = format!("{} ms", group(p.peak_ms));
    let ratio = if r.expected_peak_per_s.is_finite() && r.expected_peak_per_s > 0.0 {
        format!(
            ": {:.2} × N / W",
            r.first_wave_peak_per_s / r.expected_peak_per_s
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "  first-wave peak  {:<12} the most first attempts in any {window} window (--peak-ms), per second{ratio}",
        format!("{}/s", group(r.first_wave_peak_per_s)),
    );
    if let Some(u) = r.uniform_peak_per_s {
        let _ = writeln!(
            o,
            "                   {:<12} the same for N clients drawn uniformly over W (sampling noise alone)",
            format!("{}/s", group(u)),
        );
    }
    let _ = writeln!(
        o,
        "  overall peak     {:<12} the same over every attempt: first attempts and retries after refusals",
        format!("{}/s", group(r.peak_per_s)),
    );
    let _ = writeln!(
        o,
        "  attempts         {:<12} {} first attempts + {} retries",
        group(r.attempts as f64),
        group(r.attempts.min(p.clients) as f64),
        group(r.attempts.saturating_sub(p.clients) as f64)
    );
    let _ = writeln!(
        o,
        "  refused          {:<12} attempts that found the bucket empty (each refused client tried again)",
        group(r.refused as f64)
    );
    if r.truncated {
        let _ = writeln!(
            o,
            "  all connected    never        the simulation stopped after {} attempts with clients still waiting",
            group(MAX_ATTEMPTS as f64)
        );
    } else {
        let _ = writeln!(
            o,
            "  all connected    {:<12} when the last client was accepted",
            span(r.all_connected_ms)
        );
    }
    if p.draw == Draw::NoJitter && r.refused > 0 {
        let cap_ms = p.cap_ms.max(p.floor_ms);
        let spikes = (n / r.burst).ceil();
        let _ = writeln!(
            o,
            "\nwhy so long: every spike meets a bucket holding at most {burst} tokens (--burst), so about {burst} clients\nget in per spike and the others wait the same fixed delay again; once the delay reaches the cap\n({cap}), {burst} clients get in per cap: about N / burst × cap = {spikes} × {cap} ≈ {est}.\nThe figure scales with 1 / burst (try --burst {bigger}); with jitter the same fleet spreads out.",
            burst = group(r.burst),
            cap = span(cap_ms),
            spikes = group(spikes),
            est = span(spikes * cap_ms),
            bigger = group((r.burst * 20.0).min(n)),
        );
    }

    let h = &r.histogram;
    let why = match h.width {
        Width::Given => "--bucket-ms".to_owned(),
        Width::Spread => format!(
            "the run cut into about {} rows; --bucket-ms to choose",
            p.buckets.max(1)
        ),
        Width::Spikes => format!(
            "attempts fall on only {} distinct milliseconds: spikes, one row each",
            group(h.busy_ms as f64)
        ),
    };
    let _ = writeln!(
        o,
        "\nattempts per {} bucket ('#' accepted, 'x' refused; only buckets with attempts; width: {why}):",
        span(h.bucket_ms)
    );
    let max = h
        .rows
        .iter()
        .map(|x| x.accepted + x.refused)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut prev: Option<u64> = None;
    for row in &h.rows {
        if let Some(pi) = prev {
            if row.index > pi + 1 {
                let _ = writeln!(
                    o,
                    "{:>12} ⋮  nothing for {}",
                    "",
                    span((row.index - pi - 1) as f64 * h.bucket_ms)
                );
            }
        }
        prev = Some(row.index);
        let width = 60.0;
        let na = ((row.accepted as f64 / max as f64) * width).round() as usize;
        let nb = ((row.refused as f64 / max as f64) * width).round() as usize;
        let _ = writeln!(
            o,
            "{:>12} |{}{} {} ({} accepted)",
            span(row.index as f64 * h.bucket_ms),
            "#".repeat(na),
            "x".repeat(nb),
            group((row.accepted + row.refused) as f64),
            group(row.accepted as f64)
        );
    }
    if h.non_empty > h.rows.len() {
        let _ = writeln!(
            o,
            "{:>12} …  {} more buckets with attempts, the last at {} (--buckets to print more)",
            "",
            group((h.non_empty - h.rows.len()) as f64),
            span(r.all_connected_ms.max(0.0))
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::{simulate, Draw, StormParams};
    use super::*;

    #[test]
    fn group_and_span() {
        assert_eq!(group(1_234_567.8), "1,234,568");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(f64::INFINITY), "unbounded");
        assert_eq!(span(850.0), "850 ms");
        assert_eq!(span(41_500.0), "41.50 s");
        assert_eq!(span(11_880_000.0), "3.30 h");
    }

    #[test]
    fn every_figure_is_explained() {
        let p = StormParams {
            clients: 2_000,
            ..StormParams::default()
        };
        let out = render(&p, &simulate(&p));
        for label in [
            "N / W",
            "N / R",
            "first-wave peak",
            "overall peak",
            "attempts",
            "refused",
            "all connected",
            "token bucket",
        ] {
            assert!(out.contains(label), "{label} missing:\n{out}");
        }
    }

    #[test]
    fn no_jitter_with_a_drain_window_is_honest() {
        let p = StormParams {
            clients: 2_000,
            accept_rate: 100.0,
            drain_window_ms: Some((0.0, 20_000.0)),
            draw: Draw::NoJitter,
            ..StormParams::default()
        };
        let out = render(&p, &simulate(&p));
        assert!(!out.contains("wide enough"), "{out}");
        assert!(out.contains("one instant"), "{out}");
        assert!(out.contains("does not use the rest"), "{out}");
        assert!(out.contains("scales with 1 / burst"), "{out}");
        // With jitter the same 20 s window is wide enough for 2,000 clients at 100/s.
        let j = StormParams {
            draw: Draw::Engine,
            ..p
        };
        assert!(render(&j, &simulate(&j)).contains("W is wide enough"));
    }
}
