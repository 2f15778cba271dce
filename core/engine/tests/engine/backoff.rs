//! BACKOFF-*: exponential backoff with full jitter, the policy, its bounds and its memo.

use crate::support;

use serde_json::json;
use support::*;
use tether_engine::{backoff, Cause, ErrorCode, Event, Policy, State, TransportFailure};

/// Fail every attempt as unreachable and collect the scheduled delays.
fn failing_delays(s: &mut Sim, n: usize) -> Vec<std::time::Duration> {
    s.connect();
    for _ in 0..n {
        let c = s.last_open().conn;
        s.unreachable(c);
        s.step_to_open();
    }
    s.scheduled().into_iter().map(|(_, d, _)| d).collect()
}

#[test]
fn backoff_1_full_jitter_under_capped_ceiling() {
    let p = Policy::default();
    for seed in 0..40 {
        let mut cfg = config();
        cfg.seed = seed;
        let mut s = Sim::new(cfg);
        let delays = failing_delays(&mut s, 9);
        for (n, d) in delays.iter().enumerate() {
            let ceiling = backoff::ceiling(&p, n as u32);
            assert!(
                *d >= p.floor && *d <= ceiling,
                "n={n} d={d:?} > {ceiling:?}"
            );
        }
    }
    // Cap before jitter: at n = 8 the ceiling is the cap (30 s), and draws are spread
    // below it, not piled at the cap as "cap after jitter" would do.
    let mut at_cap = Vec::new();
    for seed in 0..60 {
        let mut cfg = config();
        cfg.seed = 1000 + seed;
        let mut s = Sim::new(cfg);
        at_cap.push(*failing_delays(&mut s, 9).last().expect("delay"));
    }
    let below_half = at_cap.iter().filter(|d| **d < secs(15)).count();
    assert!(
        below_half > 10,
        "full jitter spreads over [0, cap]: {below_half}/60"
    );
    assert!(at_cap.iter().all(|d| *d <= secs(30)));
}

#[test]
fn backoff_2_defaults() {
    let s = Sim::default_sim();
    let p = s.engine.policy();
    assert_eq!(p.base, secs(1));
    assert_eq!(p.multiplier, 2.0);
    assert_eq!(p.cap, secs(30));
    assert_eq!(p.floor, ms(100));
    assert_eq!(p.max_attempts, None);
    assert_eq!(p.max_elapsed, None);
}

#[test]
fn backoff_3_delay_counts_from_failure_instant() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    let started = s.now;
    s.opened(c);
    // The attempt hangs for 7 s, then fails.
    s.run_for(secs(7));
    let failed_at = s.now;
    assert!(failed_at > started);
    s.failed(c, TransportFailure::Io("reset by peer".into()));
    let d = s.last_delay();
    s.step_to_open();
    assert_eq!(
        s.now,
        failed_at + d,
        "delay counted from the failure, not the start"
    );

    // Same for a drop of a live connection observed late.
    let c = s.last_open().conn;
    s.accept(c);
    s.run_for(secs(3));
    let dropped_at = s.now;
    s.closed(c, Some(1006), "");
    let d = s.last_delay();
    s.step_to_open();
    assert_eq!(s.now, dropped_at + d);
}

#[test]
fn backoff_4_attempt_resets_only_on_hello() {
    let mut s = Sim::default_sim();
    s.connect();
    // Two unreachable failures, then an open that never says hello (closed after 101).
    for _ in 0..2 {
        let c = s.last_open().conn;
        s.unreachable(c);
        s.step_to_open();
    }
    let c = s.last_open().conn;
    s.opened(c);
    s.failed(
        c,
        TransportFailure::Unreachable("reset before hello".into()),
    );
    let attempts: Vec<u32> = s.scheduled().iter().map(|x| x.0).collect();
    assert_eq!(
        attempts,
        vec![1, 2, 3],
        "TCP open does not reset the counter"
    );
    let c = s.step_to_open().conn;
    assert!(matches!(s.state(), State::Connecting { attempt: 3, .. }));
    s.accept(c);
    s.closed(c, Some(1006), "");
    assert_eq!(
        s.scheduled().last().map(|x| x.0),
        Some(1),
        "hello reset it: n = 0 again"
    );
    assert!(s.last_delay() <= secs(1));
}

#[test]
fn backoff_5_drop_after_hello_schedules_n0_jittered_never_immediate() {
    let mut delays = Vec::new();
    for seed in 0..300 {
        let mut cfg = config();
        cfg.seed = seed;
        let mut s = Sim::new(cfg);
        let c = s.connect_up();
        s.closed(c, Some(1001), "going away");
        let d = s.last_delay();
        assert!(d >= ms(100), "never immediate: floor applies");
        assert!(d <= secs(1), "n = 0: ceiling = base");
        assert!(s.opens().len() == 1, "no attempt before the delay");
        delays.push(d.as_secs_f64());
    }
    // Spread uniformly over [floor, base]: every tenth of [0.1 s, 1 s] gets about 30 of the
    // 300 clients, the lowest tenth too (no pile of clients on the floor).
    for decile in 0..10 {
        let lo = 0.1 + 0.09 * decile as f64;
        let n = delays
            .iter()
            .filter(|d| **d >= lo && **d < lo + 0.09)
            .count();
        assert!((10..60).contains(&n), "tenth {decile} has {n} of 300");
    }
}

#[test]
fn backoff_5_first_connect_failures_use_the_same_policy() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.unreachable(c);
    assert_eq!(s.scheduled()[0].0, 1);
    assert!(s.last_delay() >= ms(100) && s.last_delay() <= secs(1));
}

#[test]
fn backoff_6_max_attempts_then_failed_attempts_exhausted() {
    let mut cfg = fast_config();
    cfg.overrides.max_attempts = Some(3.0);
    let mut s = Sim::new(cfg);
    s.connect();
    for i in 0..3 {
        let c = s.last_open().conn;
        s.unreachable(c);
        if i < 2 {
            s.step_to_open();
        }
    }
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::AttemptsExhausted
        }
    );
    let (_, _, cause) = s.transitions().last().cloned().expect("transition");
    assert_eq!(cause, Cause::AttemptsExhausted);
    assert_eq!(s.opens().len(), 3);
    assert_eq!(s.engine.poll_timeout(), None);
}

#[test]
fn backoff_6_max_elapsed_then_failed() {
    let mut cfg = fast_config();
    cfg.overrides.max_elapsed_ms = Some(5_000.0);
    let mut s = Sim::new(cfg);
    s.connect();
    let first_failure = s.now;
    let mut n = 0;
    while !matches!(s.state(), State::Failed { .. }) {
        let c = s.last_open().conn;
        s.unreachable(c);
        n += 1;
        if matches!(s.state(), State::Failed { .. }) {
            break;
        }
        s.step_to_open();
        assert!(n < 1000);
    }
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::AttemptsExhausted
        }
    );
    assert!(s.now - first_failure >= secs(5));
    assert!(
        s.now - first_failure < secs(7),
        "stops soon after max_elapsed"
    );
}

#[test]
fn backoff_6_retry_later_refusals_count_towards_max_attempts() {
    let mut cfg = fast_config();
    cfg.overrides.max_attempts = Some(2.0);
    let mut s = Sim::new(cfg);
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(503, Some("unavailable"), Some(ms(200))));
    let c = s.step_to_open().conn;
    s.failed(c, http(503, Some("unavailable"), Some(ms(200))));
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::AttemptsExhausted
        }
    );
}

#[test]
fn backoff_6_unlimited_by_default() {
    let mut s = Sim::new(fast_config());
    failing_delays(&mut s, 200);
    assert!(is_reconnecting(&s.state()) || matches!(s.state(), State::Connecting { .. }));
}

#[test]
fn backoff_7_seeded_dispersion_and_reproducibility() {
    let run = |seed| {
        let mut cfg = config();
        cfg.seed = seed;
        let mut s = Sim::new(cfg);
        failing_delays(&mut s, 8)
    };
    assert_eq!(run(7), run(7), "same seed, same delays");
    let a = run(7);
    let b = run(8);
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(same <= 1, "different seeds disperse: {a:?} vs {b:?}");
}

#[test]
fn backoff_8_hostile_hello_policy_is_clamped_and_reported() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.accept_with(
        c,
        Sim::hello_policy(json!({
            "floor_ms": 0, "base_ms": 1, "cap_ms": 1e12, "multiplier": 1000,
            "max_attempts": 0, "heartbeat_ms": 10, "heartbeat_grace_ms": 1e9,
            "open_timeout_ms": 5, "poll_hold_ms": 0, "probe_interval_ms": 1,
            "upgrade_after_ms": 1, "outbox_max_count": 0, "outbox_max_bytes": 1,
            "outbox_max_age_ms": 1
        })),
    );
    assert!(s.state().is_up());
    let p = s.engine.policy().clone();
    assert_eq!(p.floor, ms(100));
    assert_eq!(p.base, ms(100));
    assert_eq!(p.cap, secs(600));
    assert_eq!(p.multiplier, 10.0);
    assert_eq!(p.max_attempts, Some(1));
    assert_eq!(p.heartbeat, secs(1));
    assert_eq!(p.heartbeat_grace, secs(120));
    assert_eq!(p.open_timeout, secs(1));
    assert_eq!(p.poll_hold, secs(1));
    assert_eq!(p.probe_interval, secs(1));
    assert_eq!(p.upgrade_after, secs(10));
    assert_eq!(p.outbox_max_count, 1);
    assert_eq!(p.outbox_max_bytes, 1024);
    assert_eq!(p.outbox_max_age, secs(1));
    let clamped = s
        .events
        .iter()
        .find_map(|e| match e {
            Event::PolicyApplied { clamped } => Some(clamped.clone()),
            _ => None,
        })
        .expect("PolicyApplied");
    assert_eq!(
        clamped.len(),
        14,
        "every field was out of bounds: {clamped:?}"
    );
    assert_eq!(s.count_errors(ErrorCode::PolicyClamped), 14);
}

#[test]
fn backoff_8_invariants_raise_base_and_cap() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.accept_with(
        c,
        Sim::hello_policy(json!({"floor_ms": 8000, "base_ms": 2000, "cap_ms": 5000})),
    );
    let p = s.engine.policy();
    assert_eq!(p.floor, secs(8));
    assert_eq!(p.base, secs(8), "base raised to floor");
    assert_eq!(p.cap, secs(8), "cap raised to base");
}

#[test]
fn backoff_8_absent_or_non_numeric_values_keep_current() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.accept_with(
        c,
        Sim::hello_policy(
            json!({"base_ms": "fast", "cap_ms": null, "multiplier": [3], "floor_ms": 200}),
        ),
    );
    assert!(
        s.state().is_up(),
        "a non-numeric value does not make the hello malformed"
    );
    let p = s.engine.policy();
    assert_eq!(p.base, secs(1));
    assert_eq!(p.cap, secs(30));
    assert_eq!(p.multiplier, 2.0);
    assert_eq!(p.floor, ms(200));
    assert_eq!(s.count_errors(ErrorCode::FrameMalformed), 0);

    // A policy that is not an object is ignored as a whole.
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.accept_with(c, Sim::hello_policy(json!("nope")));
    assert!(s.state().is_up());
    assert_eq!(s.engine.policy(), &Policy::default());
}

#[test]
fn backoff_9_app_overrides_win_field_by_field_unclamped() {
    let mut cfg = config();
    cfg.overrides.floor_ms = Some(5.0);
    cfg.overrides.base_ms = Some(50.0);
    cfg.overrides.heartbeat_ms = Some(200.0);
    let mut s = Sim::new(cfg);
    assert_eq!(
        s.engine.policy().base,
        ms(50),
        "below the server bounds: allowed for the app"
    );
    s.connect();
    let c = s.last_open().conn;
    s.accept_with(
        c,
        Sim::hello_policy(
            json!({"base_ms": 5000, "cap_ms": 9000, "heartbeat_ms": 2000, "open_timeout_ms": 3000}),
        ),
    );
    let p = s.engine.policy();
    assert_eq!(p.floor, ms(5));
    assert_eq!(p.base, ms(50), "app wins");
    assert_eq!(p.heartbeat, ms(200), "app wins");
    assert_eq!(p.cap, secs(9), "server value where the app set nothing");
    assert_eq!(p.open_timeout, secs(3));
    // Drops now use the app's timings.
    s.closed(c, Some(1006), "");
    assert!(s.last_delay() <= ms(50) && s.last_delay() >= ms(5));

    // Validation: cap < base is raised, multiplier kept in [1, 10], floor >= 1 ms.
    let mut cfg = config();
    cfg.overrides.floor_ms = Some(0.0);
    cfg.overrides.base_ms = Some(20.0);
    cfg.overrides.cap_ms = Some(10.0);
    cfg.overrides.multiplier = Some(50.0);
    let s = Sim::new(cfg);
    let p = s.engine.policy();
    assert_eq!(p.floor, ms(1));
    assert_eq!(p.cap, ms(20));
    assert_eq!(p.multiplier, 10.0);
}

#[test]
fn backoff_10_policy_memo_saved_and_used_at_next_cold_start() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.accept_with(
        c,
        Sim::hello_policy(
            json!({"base_ms": 4000, "cap_ms": 60000, "heartbeat_ms": 20000, "floor_ms": 1}),
        ),
    );
    let memo = saved_memo(&s.store).expect("memo saved");
    assert_eq!(memo.policy.as_ref().and_then(|p| p.base_ms), Some(4000.0));
    s.close();

    // A second engine over the same store: the memo applies before any hello (clamped again).
    let mut s2 = s.restart(config());
    let p = s2.engine.policy().clone();
    assert_eq!(p.base, secs(4));
    assert_eq!(p.cap, secs(60));
    assert_eq!(p.heartbeat, secs(20));
    assert_eq!(p.floor, ms(100), "memo values are clamped like the hello's");
    s2.connect();
    let c = s2.last_open().conn;
    s2.unreachable(c);
    assert!(s2.last_delay() <= secs(4));
    // Until a new hello replaces it.
    let c = s2.step_to_open().conn;
    s2.accept_with(c, Sim::hello_policy(json!({"base_ms": 2000})));
    assert_eq!(s2.engine.policy().base, secs(2));
    assert_eq!(
        s2.engine.policy().cap,
        secs(30),
        "the new policy replaces the old as a whole"
    );
    let s3 = s2.restart(config());
    assert_eq!(s3.engine.policy().base, secs(2));
}
