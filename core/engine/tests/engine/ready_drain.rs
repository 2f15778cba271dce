//! READY-* (retry-after hints, readiness probes) and DRAIN-*.

use crate::support;

use serde_json::json;
use std::time::Duration;
use support::*;
use tether_engine::{Cause, ReadyAnswer, State};

fn within(d: Duration, lo: Duration, hi: Duration) -> bool {
    d >= lo && d <= hi
}

#[test]
fn ready_1_retry_after_hints_all_three_forms() {
    for seed in 0..50 {
        // HTTP 503 + Retry-After: 2 s.
        let mut cfg = config();
        cfg.seed = seed;
        let mut s = Sim::new(cfg.clone());
        s.connect();
        let c = s.last_open().conn;
        s.failed(c, http(503, Some("unavailable"), Some(secs(2))));
        let d = s.last_delay();
        assert!(within(d, secs(2), secs(3)), "503: {d:?}");
        assert_eq!(s.scheduled()[0].2, Cause::RetryLater);
        let failed_at = s.now;
        s.step_to_open();
        assert_eq!(s.now, failed_at + d);

        // retry_later frame (before the hello).
        let mut s = Sim::new(cfg.clone());
        s.connect();
        let c = s.last_open().conn;
        s.opened(c);
        s.frame(c, json!({"type":"retry_later","after_ms":4000}));
        assert!(s.closes().iter().any(|x| x.0 == c && x.1 == 1000));
        let d = s.last_delay();
        assert!(within(d, secs(4), secs(6)), "retry_later: {d:?}");

        // Close 4009 with the delay in the reason.
        let mut s = Sim::new(cfg.clone());
        s.connect();
        let c = s.last_open().conn;
        s.opened(c);
        s.closed(c, Some(4009), "1500");
        let d = s.last_delay();
        assert!(within(d, ms(1500), ms(2250)), "4009: {d:?}");

        // HTTP 429 with a tiny hint: clamped up to the floor, and never below the backoff draw.
        let mut s = Sim::new(cfg.clone());
        s.connect();
        let c = s.last_open().conn;
        s.failed(c, http(429, Some("rate_limited"), Some(ms(1))));
        let d = s.last_delay();
        assert!(within(d, ms(100), secs(1)), "429: {d:?}");

        // Huge hint: clamped to 600 s (+ up to half).
        let mut s = Sim::new(cfg);
        s.connect();
        let c = s.last_open().conn;
        s.failed(c, http(503, Some("unavailable"), Some(secs(100_000))));
        let d = s.last_delay();
        assert!(within(d, secs(600), secs(900)), "clamped: {d:?}");
    }
}

#[test]
fn ready_1_never_less_than_the_backoff_draw() {
    // A floor of 5 s makes every backoff draw exactly 5 s; a 1 s hint must not shorten it.
    let mut cfg = config();
    cfg.overrides.floor_ms = Some(5_000.0);
    cfg.overrides.base_ms = Some(5_000.0);
    cfg.overrides.cap_ms = Some(5_000.0);
    let mut s = Sim::new(cfg);
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(503, Some("unavailable"), Some(secs(1))));
    assert!(s.last_delay() >= secs(5));
    // And without a hint, a 503 is plain backoff.
    let c = s.step_to_open().conn;
    s.failed(c, http(503, Some("unavailable"), None));
    assert_eq!(s.last_delay(), secs(5));
}

#[test]
fn ready_2_retry_after_deadline_survives_restart() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(503, Some("unavailable"), Some(secs(30))));
    let deadline = s.now + s.last_delay();
    let memo = saved_memo(&s.store).expect("memo");
    assert!(memo.retry_after_unix_ms.is_some());
    // The process dies 5 s later and restarts.
    s.run_for(secs(5));
    let mut s2 = s.restart(config());
    s2.connect();
    assert!(s2.opens().is_empty(), "the remembered deadline is honoured");
    s2.step_to_open();
    assert!(s2.now >= deadline - ms(1) && s2.now <= deadline + ms(1));
    // A hello clears it.
    let c = s2.last_open().conn;
    s2.accept(c);
    assert_eq!(
        saved_memo(&s2.store).and_then(|m| m.retry_after_unix_ms),
        None
    );
}

/// Enter a long wait (a 60 s retry-after) and return when it began and the scheduled attempt.
fn long_wait(seed: u64) -> (Sim, tether_engine::Instant, tether_engine::Instant) {
    let mut cfg = config();
    cfg.seed = seed;
    let mut s = Sim::new(cfg);
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(503, Some("unavailable"), Some(secs(60))));
    let began = s.now;
    let at = began + s.last_delay();
    (s, began, at)
}

#[test]
fn ready_4_probe_only_in_long_waits_jittered_at_most_once_per_interval() {
    let interval = secs(5);
    for seed in 0..20 {
        let (mut s, began, at) = long_wait(seed);
        assert!(s.step_until(10, |s| !s.probes().is_empty()));
        let first = s.now - began;
        assert!(
            within(first, interval / 2, interval),
            "first probe at U(0.5, 1) * interval: {first:?}"
        );
        // Not ready, repeatedly: probes keep coming at most once per interval.
        let mut sent = vec![s.now];
        while s.now < at {
            let p = *s.probes().last().expect("probe");
            s.ready(p, ReadyAnswer::NotReady);
            let before = s.probes().len();
            if !s.step_until(10, |s| s.probes().len() > before || s.opens().len() > 1) {
                break;
            }
            if s.probes().len() > before {
                sent.push(s.now);
            } else {
                break;
            }
        }
        assert!(
            sent.len() >= 5,
            "a 60 s wait is probed repeatedly: {}",
            sent.len()
        );
        for w in sent.windows(2) {
            assert!(w[1] - w[0] >= interval, "probes {:?} apart", w[1] - w[0]);
        }
        assert!(sent.len() as u64 <= (at - began).as_secs() / 5 + 1);
    }
    // A short wait never probes.
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(503, Some("unavailable"), Some(secs(4))));
    s.step_to_open();
    assert!(s.probes().is_empty());
}

#[test]
fn ready_4_ready_answer_shortens_the_wait() {
    let (mut s, _began, at) = long_wait(3);
    assert!(s.step_until(10, |s| !s.probes().is_empty()));
    let p = s.probes()[0];
    let answered = s.now;
    s.ready(
        p,
        ReadyAnswer::Ready {
            from_ms: 100,
            to_ms: 2000,
        },
    );
    match s.state() {
        State::Reconnecting {
            delay: Some(d),
            cause,
            ..
        } => {
            assert!(within(d, ms(100), secs(2)));
            assert_eq!(cause, Cause::Ready, "the probe moved it, not backoff");
        }
        other => panic!("{other:?}"),
    }
    let (_, d, cause) = s.scheduled().last().cloned().expect("rescheduled");
    assert_eq!(cause, Cause::Ready);
    assert_eq!(cause.as_str(), "ready");
    assert!(within(d, ms(100), secs(2)));
    let (_, _, moved) = s.transitions().last().cloned().expect("transition");
    assert_eq!(moved, Cause::Ready, "STATE-2: Reconnecting{{cause: ready}}");
    s.step_to_open();
    assert!(within(s.now - answered, ms(100), secs(2)));
    assert!(s.now < at);
    let (_, to, start) = s.transitions().last().cloned().expect("transition");
    assert!(matches!(to, State::Connecting { .. }), "{to:?}");
    assert_eq!(
        start,
        Cause::Ready,
        "the attempt it starts carries the cause"
    );
    // A ready window later than the schedule never delays it.
    let (mut s, _b, at) = long_wait(4);
    assert!(s.step_until(10, |s| !s.probes().is_empty()));
    let p = s.probes()[0];
    s.ready(
        p,
        ReadyAnswer::Ready {
            from_ms: 500_000,
            to_ms: 600_000,
        },
    );
    s.step_to_open();
    assert_eq!(s.now, at);
}

#[test]
fn ready_5_not_ready_or_failed_probe_changes_nothing() {
    for answer in [ReadyAnswer::NotReady, ReadyAnswer::Failed] {
        let (mut s, _b, at) = long_wait(5);
        assert!(s.step_until(10, |s| !s.probes().is_empty()));
        let state = s.state();
        let p = s.probes()[0];
        s.ready(p, answer);
        assert_eq!(s.state(), state);
        s.step_to_open();
        assert_eq!(s.now, at, "{answer:?}: the scheduled attempt stays");
        // A stale or unknown probe answer is ignored too.
        s.ready(
            p,
            ReadyAnswer::Ready {
                from_ms: 0,
                to_ms: 0,
            },
        );
        s.ready(
            9999,
            ReadyAnswer::Ready {
                from_ms: 0,
                to_ms: 0,
            },
        );
        assert_eq!(s.opens().len(), 2);
    }
}

#[test]
fn drain_1_reconnect_inside_window() {
    for seed in 0..100 {
        let mut cfg = config();
        cfg.seed = seed;
        let mut s = Sim::new(cfg);
        let c = s.connect_up();
        s.run_for(secs(1));
        let received = s.now;
        s.frame(
            c,
            json!({"type":"drain","from_ms":1000,"to_ms":3000,"reason":"deploy"}),
        );
        assert!(s.closes().contains(&(c, 1000, "drain".into())));
        s.step_to_open();
        assert!(
            within(s.now - received, secs(1), secs(3)),
            "{:?}",
            s.now - received
        );
    }
    // Reversed windows are swapped, huge ones clamped to 600 s.
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.frame(c, json!({"type":"drain","from_ms":5000,"to_ms":4000}));
    assert!(within(s.last_delay(), secs(4), secs(5)));
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.frame(
        c,
        json!({"type":"drain","from_ms":10_000_000u64,"to_ms":20_000_000u64}),
    );
    assert_eq!(s.last_delay(), secs(600));
}

#[test]
fn drain_2_not_a_failure() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.frame(c, json!({"type":"drain","from_ms":0,"to_ms":20_000}));
    let t = s.last_delay();
    assert_eq!(
        s.state(),
        State::Reconnecting {
            attempt: 0,
            delay: Some(t),
            cause: Cause::Drain
        }
    );
    assert_eq!(s.scheduled()[0].0, 0);
    // If the reconnect then fails, backoff starts at n = 0.
    let c = s.step_to_open().conn;
    assert!(matches!(s.state(), State::Connecting { attempt: 0, .. }));
    s.unreachable(c);
    assert!(s.last_delay() <= secs(1));
}

#[test]
fn ready_4_next_probe_waits_an_interval_after_the_answer() {
    // A probe whose answer takes long (a loaded browser or server): the next one must still
    // reach the server at least one interval after this one did. The server saw this probe
    // at some instant before it answered, so only "an interval after the answer" bounds the
    // spacing the server observes, whatever each request's latency.
    let interval = secs(5);
    for seed in 0..20 {
        let (mut s, _began, at) = long_wait(seed);
        assert!(s.step_until(10, |s| !s.probes().is_empty()));
        for _ in 0..4 {
            let p = *s.probes().last().expect("probe");
            // The answer arrives 3 s after the probe was sent.
            s.run_for(secs(3));
            if s.now >= at || s.probes().last() != Some(&p) {
                break;
            }
            s.ready(p, ReadyAnswer::NotReady);
            let answered = s.now;
            let before = s.probes().len();
            if !s.step_until(10, |s| s.probes().len() > before || s.opens().len() > 1) {
                break;
            }
            if s.probes().len() == before {
                break;
            }
            assert!(
                s.now - answered >= interval,
                "seed {seed}: next probe {:?} after the answer",
                s.now - answered
            );
        }
    }
}
