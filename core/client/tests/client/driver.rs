//! The driver on paused tokio time (Clock hook): every engine deadline is a tokio timer, so a
//! whole backoff streak runs in virtual time, instantly and deterministically.

use futures_util::future::pending;
use std::time::Duration;
use tether::{Client, ErrorCode, Event, PolicyWire, State, TokenError};

/// AUTH-1 + BACKOFF-1/6: a provider that never answers times out after `open_timeout`, each
/// failure backs off, and `max_attempts` ends in `Failed{attempts_exhausted}`: all in virtual time.
#[tokio::test(start_paused = true)]
async fn backoff_6_streak_runs_on_paused_time() {
    let policy = PolicyWire {
        open_timeout_ms: Some(10_000.0),
        base_ms: Some(1_000.0),
        cap_ms: Some(30_000.0),
        max_attempts: Some(3.0),
        probe_interval_ms: Some(3_600_000.0),
        ..PolicyWire::default()
    };
    let client = Client::builder("http://127.0.0.1:9/tether")
        .policy(policy)
        .seed(42)
        .token_provider(|_forced: bool| async {
            pending::<()>().await;
            Ok::<_, TokenError>(String::new())
        })
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut events = client.events();
    let real = std::time::Instant::now();
    client.connect().unwrap_or_else(|e| panic!("{e}"));
    let mut timeouts = Vec::new();
    let mut delays = Vec::new();
    let end = loop {
        let Some(ev) = tokio::time::timeout(Duration::from_secs(3600), events.recv())
            .await
            .unwrap_or_else(|_| panic!("stuck"))
        else {
            panic!("driver ended")
        };
        match ev.event {
            Event::Error {
                code: ErrorCode::AuthFailed,
                ..
            } => timeouts.push(ev.at),
            Event::ReconnectScheduled { delay, .. } => delays.push(delay),
            Event::StateChanged {
                to: State::Failed { reason },
                ..
            } => break (ev.at, reason),
            _ => {}
        }
    };
    assert_eq!(end.1, ErrorCode::AttemptsExhausted);
    assert_eq!(
        timeouts.len(),
        3,
        "three attempts, each timed out waiting for a token"
    );
    assert_eq!(delays.len(), 2, "two backoff waits between them");
    // Virtual time: 3 × 10 s of token waits plus the two jittered delays, to the microsecond.
    let expected = Duration::from_secs(30) + delays.iter().sum::<Duration>();
    let diff = end.0.abs_diff(expected);
    assert!(
        diff < Duration::from_millis(5),
        "virtual {:?} vs expected {expected:?}",
        end.0
    );
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "ran on paused time"
    );
    assert_eq!(
        client.state(),
        State::Failed {
            reason: ErrorCode::AttemptsExhausted
        }
    );
}

/// BACKOFF-7: the same seed reproduces the same delays; another seed draws others.
#[tokio::test(start_paused = true)]
async fn backoff_7_seed_reproduces_delays() {
    async fn delays(seed: u64) -> Vec<Duration> {
        let client = Client::builder("http://127.0.0.1:9/tether")
            .policy(PolicyWire {
                open_timeout_ms: Some(1_000.0),
                max_attempts: Some(4.0),
                ..PolicyWire::default()
            })
            .seed(seed)
            .token_provider(|_f: bool| async {
                Err::<String, _>(TokenError {
                    fatal: false,
                    message: "not yet".into(),
                })
            })
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut events = client.events();
        client.connect().unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        while let Some(ev) = events.recv().await {
            match ev.event {
                Event::ReconnectScheduled { delay, .. } => out.push(delay),
                Event::StateChanged {
                    to: State::Failed { .. },
                    ..
                } => break,
                _ => {}
            }
        }
        out
    }
    let a = delays(1).await;
    assert_eq!(a.len(), 3);
    assert_eq!(a, delays(1).await);
    assert_ne!(a, delays(2).await);
}

/// CONN-3: close ends in `Closed`, and later calls are refused with `closed`.
#[tokio::test(start_paused = true)]
async fn conn_3_close_is_final() {
    let client = Client::builder("http://127.0.0.1:9/tether")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(client.state(), State::Idle);
    client.close().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(client.state(), State::Closed);
    let r = client.subscribe("x").await;
    assert_eq!(r.map_err(|e| e.code()), Err(ErrorCode::Closed));
}
