//! Unit tests of checks over synthetic traces: what a check accepts and what it rejects.

use super::*;
use tether_engine::rng::Rng;

fn scheduled_events(delays: &[f64]) -> Vec<TraceEvent> {
    delays
        .iter()
        .map(|d| TraceEvent {
            t_ms: 0.0,
            recv_us: 0,
            v: json!({"type": "reconnect_scheduled", "attempt": 1, "delay_ms": d,
                      "cause": "transport_closed"}),
        })
        .collect()
}

fn client(policy: Value) -> ClientSetup {
    ClientSetup {
        policy: policy.as_object().cloned().unwrap_or_default(),
        ..ClientSetup::default()
    }
}

fn distribution(events: &[TraceEvent], client: &ClientSetup) -> Verdict {
    let server = ServerSetup::default();
    let ctx = Ctx {
        events,
        log: &[],
        marks: &[],
        http: &[],
        client,
        server: &server,
        final_state: None,
        stderr: "",
        keys: &[],
        served: &[],
        net: &[],
        published: &[],
    };
    backoff_distribution(
        BackoffP {
            min_draws: 150,
            alpha: 1e-6,
            tolerance_ms: 1.0,
            ks: true,
        },
        &ctx,
    )
}

#[test]
fn backoff_1_distribution_rejects_the_floor_clamp() {
    // Floor 20 ms, base 40 ms: the first retry is U(20, 40) ms. The clamp max(20, U(0, 40))
    // puts half of the draws exactly on the floor, and the check must say so.
    let c = client(json!({"floor_ms": 20, "base_ms": 40, "cap_ms": 1000}));
    let mut rng = Rng::new(8);
    let honest: Vec<f64> = (0..160).map(|_| 20.0 + 20.0 * rng.next_f64()).collect();
    let v = distribution(&scheduled_events(&honest), &c);
    assert!(v.ok, "{:?}", v.details);
    let clamp: Vec<f64> = (0..160)
        .map(|_| (40.0 * rng.next_f64()).max(20.0))
        .collect();
    let v = distribution(&scheduled_events(&clamp), &c);
    assert!(!v.ok);
    assert!(
        v.details[0].contains("BACKOFF-1") && v.details[0].contains("of the floor"),
        "{:?}",
        v.details
    );
    // Out of bounds is a hard failure too.
    let mut low = honest.clone();
    low[0] = 10.0;
    assert!(!distribution(&scheduled_events(&low), &c).ok);
}
