//! CONN-* and STATE-*: connection lifecycle and the observable state machine.

use crate::support;

use support::*;
use tether_engine::{Action, Cause, ConnId, ErrorCode, Event, State, TransportEvent};

#[test]
fn conn_1_first_attempt_is_immediate() {
    let mut s = Sim::default_sim();
    assert_eq!(s.state(), State::Idle);
    s.connect();
    let open = s.last_open();
    assert_eq!(open.transport, WebSocket);
    assert_eq!(s.now, T0, "no time passed");
    assert!(
        s.scheduled().is_empty(),
        "no delay before the first attempt"
    );
    assert_eq!(
        s.state(),
        State::Connecting {
            attempt: 0,
            transport: WebSocket
        }
    );
}

#[test]
fn conn_1_remembered_retry_after_deadline_delays_first_attempt() {
    let store = SharedStore::default();
    with_memory(&store, |m| {
        m.memo = Some(tether_engine::Memo {
            retry_after_unix_ms: Some(WALL0 + 7_000),
            ..Default::default()
        })
    });
    let mut s = Sim::with_store(config(), store, T0);
    s.connect();
    assert!(s.opens().is_empty(), "deadline in the future: wait");
    let open = s.step_to_open();
    assert_eq!(open.conn, ConnId(1));
    assert_eq!(s.elapsed(), secs(7));

    // A deadline in the past does not delay.
    let store = SharedStore::default();
    with_memory(&store, |m| {
        m.memo = Some(tether_engine::Memo {
            retry_after_unix_ms: Some(WALL0 - 1),
            ..Default::default()
        })
    });
    let mut s = Sim::with_store(config(), store, T0);
    s.connect();
    assert_eq!(s.opens().len(), 1);
}

#[test]
fn conn_2_established_only_on_hello() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.opened(c);
    assert!(
        matches!(s.state(), State::Connecting { .. }),
        "HTTP 101 is not connected"
    );
    // A frame other than hello before the hello does not establish either.
    s.frame(c, serde_json::json!({"type":"ping"}));
    assert!(matches!(s.state(), State::Connecting { .. }));
    s.frame(c, hello("c0"));
    assert_eq!(
        s.state(),
        State::Connected {
            transport: WebSocket
        }
    );
    let (_, _, cause) = s.transitions().last().cloned().expect("transition");
    assert_eq!(cause, Cause::Hello);
}

#[test]
fn conn_2_sse_headers_are_not_enough() {
    let mut c = config();
    c.transports = vec![Sse];
    let mut s = Sim::new(c);
    s.connect();
    let conn = s.last_open().conn;
    s.opened(conn);
    s.ev(conn, TransportEvent::SseBytes(b": comment\n\n".to_vec()));
    assert!(matches!(s.state(), State::Connecting { .. }));
    s.frame(conn, hello("c0"));
    assert_eq!(s.state(), State::Connected { transport: Sse });
}

#[test]
fn conn_3_close_sends_1000_cancels_timers_ends_closed() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    // Open a gap (a timer) and queue a publish that stays unacknowledged.
    s.msg(c, "a", 1);
    s.msg(c, "a", 3);
    let id = s.publish("a", serde_json::json!(1));
    assert!(s.engine.poll_timeout().is_some());
    s.mark();
    s.close();
    let actions = s.take_actions();
    assert_eq!(
        actions,
        vec![Action::Close {
            conn: c,
            code: 1000,
            reason: "client close".into()
        }]
    );
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.engine.poll_timeout(), None, "every timer cancelled");
    // Nothing more comes out, whatever happens.
    s.run_for(secs(3600));
    s.closed(c, Some(1006), "");
    s.network(tether_engine::Network::Changed);
    s.network(tether_engine::Network::Offline);
    s.network(tether_engine::Network::Online);
    assert!(s.take_actions().is_empty(), "no further action");
    assert_eq!(s.state(), State::Closed);
    assert!(
        saved_records(&s.store).iter().any(|r| r.id == id),
        "outbox kept"
    );
    assert_eq!(
        s.engine.publish("a", serde_json::json!(2), None, s.now),
        Err(tether_engine::CallError::Closed)
    );
}

#[test]
fn conn_3_close_while_reconnecting_and_while_fetching_token() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.closed(c, Some(1006), "");
    assert!(is_reconnecting(&s.state()));
    s.mark();
    s.close();
    assert!(s.take_actions().is_empty(), "nothing open to close");
    assert_eq!(s.engine.poll_timeout(), None);
    assert_eq!(s.state(), State::Closed);

    let mut cfg = config();
    cfg.auth = true;
    let mut s = Sim::new(cfg);
    s.connect();
    let (req, _) = s.fetches()[0];
    s.close();
    s.mark();
    s.token(req, Ok(tether_engine::Token::new("t")));
    assert!(s.take_actions().is_empty(), "late token opens nothing");
    assert_eq!(s.engine.poll_timeout(), None);
}

#[test]
fn conn_4_stale_connection_events_are_ignored() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c1 = s.connect_up();
    s.closed(c1, Some(1006), "");
    let c2 = s.step_to_open().conn;
    assert_ne!(c1, c2);
    s.accept(c2);
    let before = (s.state(), s.events.len(), s.actions.len());
    // Everything on c1 (and on a never-used id) is ignored now.
    s.msg(c1, "a", 1);
    s.closed(c1, Some(4003), "forbidden");
    s.failed(c1, http(403, None, None));
    s.ev(ConnId(999), TransportEvent::Text(hello("x").to_string()));
    assert_eq!((s.state(), s.events.len(), s.actions.len()), before);
}

#[test]
fn conn_5_terminal_failures_end_in_failed_without_retry() {
    type Script = Box<dyn Fn(&mut Sim, ConnId)>;
    let cases: Vec<(&str, Script, ErrorCode)> = vec![
        (
            "close 4003",
            Box::new(|s, c| s.closed(c, Some(4003), "")),
            ErrorCode::Forbidden,
        ),
        (
            "close 4004",
            Box::new(|s, c| s.closed(c, Some(4004), "")),
            ErrorCode::NotFound,
        ),
        (
            "close 4010",
            Box::new(|s, c| s.closed(c, Some(4010), "")),
            ErrorCode::ProtocolVersion,
        ),
        (
            "close 4400",
            Box::new(|s, c| s.closed(c, Some(4400), "")),
            ErrorCode::BadRequest,
        ),
        (
            "terminal error frame",
            Box::new(|s, c| {
                s.frame(
                    c,
                    serde_json::json!({"type":"error","code":"forbidden","terminal":true}),
                )
            }),
            ErrorCode::Forbidden,
        ),
        (
            "HTTP 403 Tether-Error: forbidden",
            Box::new(|s, c| s.failed(c, http(403, Some("forbidden"), None))),
            ErrorCode::Forbidden,
        ),
    ];
    for (name, script, code) in cases {
        let mut s = Sim::default_sim();
        s.connect();
        let c = s.last_open().conn;
        s.opened(c);
        script(&mut s, c);
        assert_eq!(s.state(), State::Failed { reason: code }, "{name}");
        assert_eq!(s.engine.poll_timeout(), None, "{name}: no retry");
        s.run_for(secs(3600));
        assert_eq!(s.opens().len(), 1, "{name}: never retried");
    }
    // HTTP 204 on SSE.
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(204, None, None));
    assert!(matches!(s.state(), State::Failed { .. }));
    assert_eq!(s.engine.poll_timeout(), None);
}

#[test]
fn state_1_every_state_is_reachable() {
    let mut s = Sim::default_sim();
    assert_eq!(s.state(), State::Idle);
    s.connect();
    assert!(matches!(
        s.state(),
        State::Connecting {
            attempt: 0,
            transport: WebSocket
        }
    ));
    let c = s.last_open().conn;
    s.accept(c);
    assert_eq!(
        s.state(),
        State::Connected {
            transport: WebSocket
        }
    );
    s.closed(c, Some(1006), "");
    match s.state() {
        State::Reconnecting {
            attempt,
            delay: Some(d),
            cause: Cause::TransportClosed { code: Some(1006) },
        } => {
            assert_eq!(attempt, 1);
            assert!(d > ms(0));
        }
        other => panic!("{other:?}"),
    }
    s.network(tether_engine::Network::Offline);
    assert_eq!(
        s.state(),
        State::Reconnecting {
            attempt: 1,
            delay: None,
            cause: Cause::NetworkOffline
        },
        "delay absent while waiting for the network"
    );
    s.network(tether_engine::Network::Online);
    let c2 = s.step_to_open().conn;
    // A blocked WebSocket: degraded on SSE.
    s.failed(c2, http(200, None, None));
    let c3 = s.last_open().conn;
    assert_eq!(s.last_open().transport, Sse);
    s.accept(c3);
    assert_eq!(
        s.state(),
        State::Degraded {
            transport: Sse,
            reason: ErrorCode::TransportBlocked
        }
    );
    s.closed(c3, Some(4003), "");
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::Forbidden
        }
    );
    s.close();
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn state_2_every_transition_has_cause() {
    let mut s = Sim::new(fast_config());
    s.subscribe("a");
    let c = s.connect_up();
    s.closed(c, Some(1001), "");
    let c = s.step_to_open().conn;
    s.failed(c, tether_engine::TransportFailure::Io("reset".into()));
    let c = s.step_to_open().conn;
    s.accept(c);
    s.frame(
        c,
        serde_json::json!({"type":"drain","from_ms":10,"to_ms":20}),
    );
    let c = s.step_to_open().conn;
    s.accept(c);
    s.run_for(secs(25)); // heartbeat timeout
    assert!(is_reconnecting(&s.state()));
    s.network(tether_engine::Network::Offline);
    s.network(tether_engine::Network::Online);
    let c = s.step_to_open().conn;
    s.accept(c);
    s.closed(c, Some(4001), "");
    s.close();

    let ts = s.transitions();
    let causes: Vec<&str> = ts.iter().map(|(_, _, c)| c.as_str()).collect();
    for needed in [
        "user_connect",
        "hello",
        "transport_closed",
        "transport_error",
        "drain",
        "heartbeat_timeout",
        "network_offline",
        "network_online",
        "auth_expired",
        "user_close",
    ] {
        assert!(
            causes.contains(&needed),
            "missing cause {needed} in {causes:?}"
        );
    }
    // Transitions chain: each `from` is the previous `to`, and none is to the same state.
    let mut prev = State::Idle;
    for (from, to, _) in &ts {
        assert_eq!(from, &prev);
        assert_ne!(from, to, "STATE-3: no self transitions");
        prev = to.clone();
    }
    assert_eq!(&prev, s.engine.state());
}

#[test]
fn state_3_observed_state_equals_last_reported() {
    let mut s = Sim::new(fast_config());
    s.subscribe("a");
    s.connect();
    for i in 0..30 {
        s.assert_state_consistent();
        if !s.step() {
            break;
        }
        if let Some(o) = s.opens().last().cloned() {
            if i % 3 == 0 {
                s.accept(o.conn);
            } else {
                s.unreachable(o.conn);
            }
        }
        s.assert_state_consistent();
    }
    // A repeated identical state is not reported twice.
    let n = s.transitions().len();
    s.network(tether_engine::Network::Offline);
    let n1 = s.transitions().len();
    s.network(tether_engine::Network::Offline);
    assert_eq!(s.transitions().len(), n1);
    assert!(n1 >= n);
    s.assert_state_consistent();
    assert!(s
        .events
        .iter()
        .all(|e| !matches!(e, Event::StateChanged { from, to, .. } if from == to)));
}
