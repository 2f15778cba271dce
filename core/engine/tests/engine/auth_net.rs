//! AUTH-* (tokens), NET-* (network awareness) and HEARTBEAT-* (liveness).

use crate::support;

use serde_json::json;
use support::*;
use tether_engine::{Action, Cause, ErrorCode, Network, State, Token, TokenError, TransportEvent};

fn auth_config() -> tether_engine::Config {
    let mut c = config();
    c.auth = true;
    c
}

fn tok(s: &str) -> Result<Token, TokenError> {
    Ok(Token::new(s))
}

#[test]
fn auth_1_token_fetched_before_every_attempt() {
    let mut s = Sim::new(auth_config());
    s.connect();
    assert_eq!(s.fetches(), vec![(1, false)]);
    assert!(s.opens().is_empty(), "no open before the token");
    s.token(1, tok("secret-1"));
    let open = s.last_open();
    assert_eq!(open.token.as_ref().map(|t| t.expose()), Some("secret-1"));
    s.unreachable(open.conn);
    s.step_until(10, |s| s.fetches().len() == 2);
    assert!(!s.fetches()[1].1);
    let (req, _) = s.fetches()[1];
    // A wrong request id is ignored.
    s.token(req + 100, tok("nope"));
    assert_eq!(s.opens().len(), 1);
    s.token(req, tok("secret-2"));
    assert_eq!(
        s.last_open().token.map(|t| t.expose().to_string()),
        Some("secret-2".into())
    );
}

#[test]
fn auth_1_provider_timeout_and_errors() {
    // No answer within open_timeout: a failed attempt, with backoff.
    let mut s = Sim::new(auth_config());
    s.connect();
    s.step();
    assert_eq!(s.elapsed(), secs(10));
    assert!(is_reconnecting(&s.state()));
    assert!(s.errors().contains(&ErrorCode::AuthFailed));
    assert!(s.opens().is_empty());

    // A provider error: failed attempt, backoff.
    let mut s = Sim::new(auth_config());
    s.connect();
    s.token(
        1,
        Err(TokenError {
            fatal: false,
            message: "offline".into(),
        }),
    );
    assert!(is_reconnecting(&s.state()));
    s.step_until(10, |s| s.fetches().len() == 2);
    assert_eq!(s.fetches().len(), 2);

    // A fatal provider error: Failed{auth_failed}.
    let mut s = Sim::new(auth_config());
    s.connect();
    s.token(
        1,
        Err(TokenError {
            fatal: true,
            message: "revoked".into(),
        }),
    );
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::AuthFailed
        }
    );
    assert_eq!(s.engine.poll_timeout(), None);
}

#[test]
fn auth_2_one_immediate_forced_refresh_then_backoff() {
    let mut s = Sim::new(auth_config());
    s.connect();
    s.token(1, tok("stale"));
    let c = s.last_open().conn;
    s.accept(c);
    s.run_alive(&[c], secs(20));
    let expired_at = s.now;
    s.closed(c, Some(4001), "token expired");
    // Exactly one immediate retry, with a forced token.
    assert_eq!(s.fetches().last().copied(), Some((2, true)));
    assert_eq!(s.now, expired_at);
    assert!(s.scheduled().is_empty());
    assert_eq!(
        s.transitions().last().map(|t| t.2.clone()),
        Some(Cause::AuthExpired)
    );
    s.token(2, tok("fresh?"));
    let c = s.last_open().conn;
    // Refused for auth again (HTTP 401): normal backoff now, still forced tokens.
    s.failed(c, http(401, Some("auth_expired"), None));
    assert!(is_reconnecting(&s.state()));
    assert_eq!(s.fetches().len(), 2);
    s.step_until(10, |s| s.fetches().len() == 3);
    assert!(s.fetches()[2].1, "every attempt still forced");
    s.token(3, tok("fresh"));
    let c = s.last_open().conn;
    s.failed(c, http(401, None, None));
    s.step_until(10, |s| s.fetches().len() == 4);
    assert!(s.fetches()[3].1);
    s.token(4, tok("fresh!"));
    let c = s.last_open().conn;
    s.accept(c);
    // After a hello, the cache may be used again, and a new expiry gets its immediate retry.
    s.frame(
        c,
        json!({"type":"error","code":"auth_expired","terminal":false}),
    );
    assert_eq!(s.fetches().last().copied(), Some((5, true)));
    assert!(s.closes().iter().any(|x| x.0 == c));
    s.token(5, tok("t5"));
    let c = s.last_open().conn;
    s.accept(c);
    s.closed(c, Some(1006), "");
    s.step_until(10, |s| s.fetches().len() == 6);
    assert!(!s.fetches()[5].1);
}

#[test]
fn auth_3_token_given_to_the_transport_on_every_connection() {
    let mut s = Sim::new(auth_config());
    s.connect();
    s.token(1, tok("abc"));
    let c = s.last_open().conn;
    assert_eq!(
        s.last_open().token.map(|t| t.expose().to_string()),
        Some("abc".into())
    );
    s.accept(c);
    // A make-before-break connection carries it too.
    s.network(Network::Changed);
    let cand = s.last_open();
    assert_ne!(cand.conn, c);
    assert_eq!(
        cand.token.map(|t| t.expose().to_string()),
        Some("abc".into())
    );
}

#[test]
fn auth_4_token_never_in_debug_output() {
    let secret = "s3cr3t-T0KEN-value";
    let mut s = Sim::new(auth_config());
    s.subscribe("a");
    s.connect();
    s.token(1, tok(secret));
    let c = s.last_open().conn;
    s.accept(c);
    s.closed(c, Some(4001), "");
    s.token(2, tok(secret));
    s.network(Network::Changed);
    let all = format!(
        "{:?} {:?} {:?} {:?}",
        s.actions,
        s.events,
        s.engine,
        s.opens()
    );
    assert!(!all.contains(secret), "token leaked");
    assert!(all.contains("***"), "redacted as ***");
    let t = Token::new(secret);
    assert_eq!(format!("{t}"), "***");
    assert!(!format!("{t:?}").contains(secret));
    let open = Action::Open(s.last_open());
    assert!(!format!("{open:?}").contains(secret));
    assert!(!format!("{open:#?}").contains(secret));
}

#[test]
fn net_1_offline_closes_and_waits() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.network(Network::Offline);
    assert!(s.closes().contains(&(c, 1000, "network offline".into())));
    assert_eq!(
        s.state(),
        State::Reconnecting {
            attempt: 0,
            delay: None,
            cause: Cause::NetworkOffline
        }
    );
    assert_eq!(s.engine.poll_timeout(), None, "no attempt while offline");
    s.run_for(secs(3600));
    assert_eq!(s.opens().len(), 1);
    // Offline while a retry is scheduled: the retry is cancelled, nothing is counted.
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.unreachable(c);
    s.network(Network::Offline);
    assert!(matches!(s.state(), State::Reconnecting { delay: None, .. }));
    s.run_for(secs(600));
    assert_eq!(s.opens().len(), 1);
    // connect() while offline waits too.
    let mut s = Sim::default_sim();
    s.network(Network::Offline);
    s.connect();
    assert!(s.opens().is_empty());
    assert!(matches!(
        s.state(),
        State::Reconnecting {
            delay: None,
            cause: Cause::NetworkOffline,
            ..
        }
    ));
}

#[test]
fn net_2_online_schedules_within_base_attempt_reset() {
    for seed in 0..100 {
        let mut cfg = config();
        cfg.seed = seed;
        let mut s = Sim::new(cfg);
        s.connect();
        for _ in 0..5 {
            let c = s.last_open().conn;
            s.unreachable(c);
            s.step_to_open();
        }
        s.network(Network::Offline);
        s.run_for(secs(100));
        s.network(Network::Online);
        let (attempt, d, cause) = s.scheduled().last().cloned().expect("scheduled");
        assert_eq!(attempt, 0, "attempt counter reset");
        assert_eq!(cause, Cause::NetworkOnline);
        // The n = 0 backoff draw U(floor, base): never sooner than the floor (with U(0, base)
        // a tenth of the fleet came back within 100 ms of the network).
        assert!(d >= ms(100) && d <= secs(1), "U(floor, base): {d:?}");
        let back = s.now;
        let c = s.step_to_open().conn;
        assert!((s.now - back).abs_diff(d) < std::time::Duration::from_micros(1));
        assert!(matches!(s.state(), State::Connecting { attempt: 0, .. }));
        s.unreachable(c);
        assert!(
            s.last_delay() <= secs(1),
            "n = 0 after the network came back"
        );
    }
}

#[test]
fn net_3_changed_switches_make_before_break() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    s.network(Network::Changed);
    let cand = s.last_open();
    assert_eq!(cand.transport, WebSocket, "same rung");
    assert_eq!(cand.cursor.as_deref(), Some("a:1"), "current cursor");
    assert!(
        !s.closes().iter().any(|x| x.0 == c),
        "old one kept until the hello"
    );
    assert!(s.state().is_up());
    s.msg(c, "a", 2);
    s.opened(cand.conn);
    s.frames(
        cand.conn,
        &[hello("a:1"), subscribed("a", 1), msg("a", 2), msg("a", 3)],
    );
    assert!(s.closes().contains(&(c, 1000, "switched".into())));
    assert_eq!(s.delivered("a"), vec![1, 2, 3]);
    assert_eq!(
        s.state(),
        State::Connected {
            transport: WebSocket
        }
    );
    // Publishes move to the new connection.
    let id = s.publish("a", json!(1));
    assert_eq!(s.published_ids(cand.conn), vec![id]);
}

#[test]
fn net_3_changed_on_long_poll_keeps_polling_on_new_connection() {
    let mut cfg = config();
    cfg.transports = vec![LongPoll];
    let mut s = Sim::new(cfg);
    s.subscribe("a");
    let c = s.connect_up();
    s.network(Network::Changed);
    let cand = s.last_open();
    s.opened(cand.conn);
    s.frames(cand.conn, &[hello("c1"), subscribed("a", 0), msg("a", 1)]);
    assert!(s.closes().iter().any(|x| x.0 == c));
    assert_eq!(
        s.polls(cand.conn),
        vec![Some("a:1".to_string())],
        "polling continues"
    );
    s.frames(cand.conn, &[msg("a", 2)]);
    assert_eq!(s.polls(cand.conn).len(), 2);
    assert_eq!(s.delivered("a"), vec![1, 2]);
}

#[test]
fn net_2_changed_while_waiting_reschedules_with_the_first_retry_draw() {
    // A long wait (attempt 6: ceiling 30 s) and a network change: the attempt moves to the
    // n = 0 draw U(floor, base) when that is sooner, with the counter reset.
    let mut moved = 0;
    for seed in 0..100 {
        let mut cfg = config();
        cfg.seed = seed;
        let mut s = Sim::new(cfg);
        s.connect();
        for _ in 0..6 {
            let c = s.last_open().conn;
            s.unreachable(c);
            s.step_to_open();
        }
        let c = s.last_open().conn;
        s.unreachable(c);
        let before = s.scheduled().len();
        s.network(Network::Changed);
        let sched = s.scheduled();
        if sched.len() > before {
            moved += 1;
            let (attempt, d, cause) = sched.last().cloned().expect("scheduled");
            assert_eq!((attempt, cause), (0, Cause::NetworkOnline));
            assert!(d >= ms(100) && d <= secs(1), "U(floor, base): {d:?}");
        }
    }
    assert!(moved > 90, "{moved} of 100 waits moved earlier");
}

#[test]
fn net_3_failed_candidate_keeps_old_connection() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.network(Network::Changed);
    let cand = s.last_open();
    s.unreachable(cand.conn);
    assert!(s.state().is_up());
    assert!(!s.closes().iter().any(|x| x.0 == c));
    s.keepalive(c);
    assert_eq!(
        s.state(),
        State::Connected {
            transport: WebSocket
        }
    );
}

#[test]
fn heartbeat_2_half_open_detected() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    let last_rx = s.now;
    // The peer vanished: nothing ever arrives again.
    s.step_until(10, |s| is_reconnecting(&s.state()));
    assert_eq!(
        s.now - last_rx,
        secs(25),
        "heartbeat_ms + heartbeat_grace_ms"
    );
    assert!(s.closes().iter().any(|x| x.0 == c));
    assert!(s.errors().contains(&ErrorCode::HeartbeatTimeout));
    assert!(matches!(
        s.state(),
        State::Reconnecting {
            cause: Cause::HeartbeatTimeout,
            ..
        }
    ));
    assert!(
        s.last_delay() <= secs(1),
        "reconnect with backoff from n = 0"
    );
}

#[test]
fn heartbeat_2_anything_received_counts() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    for seq in 1..=10 {
        s.run_for(secs(20));
        s.msg(c, "a", seq);
    }
    assert!(s.state().is_up());
    // SSE comments count.
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    let c = s.connect_up();
    for _ in 0..10 {
        s.run_for(secs(20));
        s.ev(c, TransportEvent::SseBytes(b":\n".to_vec()));
    }
    assert!(s.state().is_up());
    // POST answers are not the stream: they do not keep a dead stream alive.
    let id = s.publish("a", json!(1));
    for _ in 0..3 {
        s.run_for(secs(10));
        s.ev(
            c,
            TransportEvent::SendReply(
                format!("[{{\"type\":\"ack\",\"id\":\"{id}\"}}]").into_bytes(),
            ),
        );
    }
    assert!(!s.state().is_up(), "{:?}", s.state());
    assert!(s.errors().contains(&ErrorCode::HeartbeatTimeout));
}

#[test]
fn heartbeat_3_ping_answered_with_pong_on_websocket() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.frame(c, json!({"type":"ping"}));
    assert_eq!(s.sent(c), vec![json!({"type":"pong"})]);
    // Not on SSE (there is no client-to-server stream to answer on).
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    let c = s.connect_up();
    s.frame(c, json!({"type":"ping"}));
    assert!(s.sent(c).is_empty());
}

#[test]
fn heartbeat_4_long_poll_deadline_is_hold_plus_grace() {
    let mut cfg = config();
    cfg.transports = vec![LongPoll];
    let mut s = Sim::new(cfg);
    let c = s.connect_up();
    // Answered polls keep it alive, however long.
    for _ in 0..10 {
        s.run_for(secs(25));
        s.keepalive(c);
    }
    assert!(s.state().is_up());
    let poll_sent = s.now;
    s.step_until(10, |s| is_reconnecting(&s.state()));
    assert_eq!(s.now - poll_sent, secs(35), "poll_hold 25 s + grace 10 s");
    assert!(s.closes().iter().any(|x| x.0 == c));
}
