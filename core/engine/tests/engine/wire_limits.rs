//! WIRE-*, LIMIT-* and ERR-* through the engine.

use crate::support;

use serde_json::json;
use support::*;
use tether_engine::{
    terminal_close, Action, CallError, Cause, ErrorCode, Event, State, TransportEvent,
};

#[test]
fn wire_1_same_frames_on_every_transport() {
    for t in [WebSocket, Sse, LongPoll] {
        let mut cfg = config();
        cfg.transports = vec![t];
        let mut s = Sim::new(cfg);
        s.subscribe("a");
        let c = s.connect_up();
        s.frames(c, &[msg("a", 1), msg("a", 2), json!({"type":"ping"})]);
        assert_eq!(s.delivered("a"), vec![1, 2], "{t:?}");
        assert!(s.errors().is_empty(), "{t:?}: {:?}", s.errors());
    }
    // SSE: one frame per event, `data` lines joined with LF (JSON allows the newline).
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    s.subscribe("a");
    let c = s.connect_up();
    s.ev(
        c,
        TransportEvent::SseBytes(
            b"data: {\"type\":\"msg\",\ndata: \"channel\":\"a\",\"seq\":1}\n\n".to_vec(),
        ),
    );
    assert_eq!(s.delivered("a"), vec![1]);
    // POST answers are arrays of frames too.
    let id = s.publish("a", json!(1));
    s.ev(
        c,
        TransportEvent::SendReply(
            format!("[{{\"type\":\"ack\",\"id\":\"{id}\",\"seq\":9}}]").into_bytes(),
        ),
    );
    assert!(s.events.contains(&Event::Acked { id, seq: Some(9) }));
}

#[test]
fn wire_2_open_request_and_poll_carry_query_parameters() {
    let mut cfg = config();
    cfg.transports = vec![LongPoll];
    let mut s = Sim::new(cfg);
    s.subscribe("b");
    s.subscribe("a");
    s.connect();
    let o = s.last_open();
    assert_eq!(o.channels, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(o.cursor, None);
    assert_eq!(o.poll_hold, secs(25));
    s.accept(o.conn);
    let poll = s
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Poll {
                conn,
                cursor,
                channels,
            } if *conn == o.conn => Some((cursor.clone(), channels.clone())),
            _ => None,
        })
        .expect("poll");
    assert_eq!(
        poll,
        (
            Some("c0".to_string()),
            vec!["a".to_string(), "b".to_string()]
        )
    );
}

#[test]
fn wire_3_every_server_frame_is_understood() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    let id = s.publish("a", json!(1));
    s.frames(
        c,
        &[
            subscribed("a", 0),
            msg("a", 1),
            json!({"type":"reset","channel":"a","cursor":"r"}),
            json!({"type":"ack","id":id,"channel":"a","seq":5}),
            json!({"type":"error","code":"slow_down","message":"m","terminal":false}),
            json!({"type":"ping"}),
            json!({"type":"pong"}),
        ],
    );
    assert!(!s.errors().contains(&ErrorCode::FrameMalformed));
    assert!(s.state().is_up());
    s.frame(c, json!({"type":"retry_later","after_ms":1000}));
    assert!(matches!(
        s.state(),
        State::Reconnecting {
            cause: Cause::RetryLater,
            ..
        }
    ));
    let c = s.step_to_open().conn;
    s.accept(c);
    s.frame(
        c,
        json!({"type":"drain","from_ms":0,"to_ms":1,"reason":"r"}),
    );
    assert!(matches!(
        s.state(),
        State::Reconnecting {
            cause: Cause::Drain,
            ..
        }
    ));
    assert!(!s.errors().contains(&ErrorCode::FrameMalformed));
}

#[test]
fn wire_4_client_frames() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.subscribe("a");
    let id = s.publish("a", json!({"k":[1,2]}));
    s.engine.unsubscribe("a", s.now).expect("unsubscribe");
    s.pump();
    s.frame(c, json!({"type":"ping"}));
    assert_eq!(
        s.sent(c),
        vec![
            json!({"type":"subscribe","channel":"a"}),
            json!({"type":"publish","id":id,"channel":"a","data":{"k":[1,2]}}),
            json!({"type":"unsubscribe","channel":"a"}),
            json!({"type":"pong"}),
        ]
    );
}

#[test]
fn wire_5_unknown_types_and_fields_ignored() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.mark();
    s.frame(c, json!({"type":"hologram","x":1}));
    s.frame(
        c,
        json!({"type":"msg","channel":"a","seq":1,"data":1,"priority":"high","extra":{"deep":[]}}),
    );
    assert!(s.errors().is_empty());
    assert_eq!(s.delivered("a"), vec![1]);
    assert!(s.state().is_up());
    // An unknown type does not count towards the malformed limit either.
    for _ in 0..40 {
        s.frame(c, json!({"type":"future"}));
    }
    assert!(s.state().is_up());
}

#[test]
fn wire_6_malformed_skipped_then_closed_after_16() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    let bad = [
        "{",
        "[]",
        "42",
        r#"{"type":7}"#,
        r#"{"no_type":1}"#,
        r#"{"type":"msg","channel":"a"}"#,
        r#"{"type":"msg","channel":"a","seq":"one"}"#,
        r#"{"type":"ack"}"#,
    ];
    for b in bad {
        s.ev(c, TransportEvent::Text(b.to_string()));
    }
    assert_eq!(s.count_errors(ErrorCode::FrameMalformed), 8);
    assert!(s.state().is_up(), "the connection continues");
    s.msg(c, "a", 1);
    assert_eq!(s.delivered("a"), vec![1]);
    for _ in 0..8 {
        s.ev(c, TransportEvent::Text("nope".into()));
    }
    assert!(s.state().is_up(), "16 are tolerated");
    s.ev(c, TransportEvent::Text("nope".into()));
    assert!(s.closes().iter().any(|x| x.0 == c && x.1 == 4002));
    assert!(is_reconnecting(&s.state()), "reconnect with backoff");
    assert!(s.last_delay() >= ms(100));
    // The count is per connection.
    let c = s.step_to_open().conn;
    s.accept(c);
    for _ in 0..16 {
        s.ev(c, TransportEvent::Text("nope".into()));
    }
    assert!(s.state().is_up());
}

#[test]
fn wire_7_subscribed_sets_the_baseline() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.frame(c, subscribed("a", 10));
    s.msg(c, "a", 10);
    s.msg(c, "a", 11);
    assert_eq!(s.delivered("a"), vec![11]);
    // Subscribing later on a live WebSocket: the `subscribed` answer sets its baseline.
    s.subscribe("b");
    assert!(s
        .sent(c)
        .contains(&json!({"type":"subscribe","channel":"b"})));
    s.frame(c, subscribed("b", 99));
    s.msg(c, "b", 100);
    assert_eq!(s.delivered("b"), vec![100]);
}

#[test]
fn wire_8_invalid_channels_rejected_locally() {
    let mut s = Sim::default_sim();
    let long = "x".repeat(129);
    for bad in ["", "a b", "a,b", "é", long.as_str(), "a/b"] {
        let e = s.engine.subscribe(bad, s.now).expect_err(bad);
        assert_eq!(e.code(), ErrorCode::InvalidChannel);
        assert_eq!(e, CallError::InvalidChannel(bad.to_string()));
        let e = s.engine.publish(bad, json!(1), None, s.now).expect_err(bad);
        assert_eq!(e.code(), ErrorCode::InvalidChannel);
        assert!(s.engine.unsubscribe(bad, s.now).is_err());
    }
    for good in ["a", "room:42.x-y_z@t", &"x".repeat(128)] {
        assert!(s.engine.subscribe(good, s.now).is_ok(), "{good}");
    }
    s.pump();
    assert!(s.actions.is_empty());
}

#[test]
fn wire_9_close_codes() {
    for code in [
        Some(1000),
        Some(1001),
        Some(1009),
        Some(1011),
        Some(4000),
        Some(4002),
        None,
    ] {
        let mut s = Sim::default_sim();
        let c = s.connect_up();
        s.closed(c, code, "");
        assert!(is_reconnecting(&s.state()), "{code:?} is retryable");
        assert_eq!(
            s.transitions().last().map(|t| t.2.clone()),
            Some(Cause::TransportClosed { code })
        );
    }
    for code in [4001, 4009] {
        let mut s = Sim::default_sim();
        let c = s.connect_up();
        s.closed(c, Some(code), "100");
        assert!(
            !matches!(s.state(), State::Failed { .. }),
            "{code} is retryable"
        );
    }
    for (code, err) in [
        (4003, ErrorCode::Forbidden),
        (4004, ErrorCode::NotFound),
        (4010, ErrorCode::ProtocolVersion),
        (4400, ErrorCode::BadRequest),
    ] {
        assert_eq!(terminal_close(code), Some(err));
        let mut s = Sim::default_sim();
        let c = s.connect_up();
        s.closed(c, Some(code), "");
        assert_eq!(s.state(), State::Failed { reason: err });
        assert_eq!(
            s.transitions().last().map(|t| t.2.clone()),
            Some(Cause::Terminal { code: err })
        );
    }
    assert_eq!(terminal_close(1005), None);
}

#[test]
fn wire_10_tether_error_tells_server_from_proxy() {
    // Same status, with and without the header.
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(404, Some("not_found"), None));
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::NotFound
        }
    );

    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(404, None, None));
    assert_eq!(s.last_open().transport, Sse, "a proxy answered: blocked");

    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(400, Some("bad_request"), None));
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::BadRequest
        }
    );
}

#[test]
fn limit_1_ten_megabyte_frame_closes_1009_and_resumes() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    let big = format!(
        r#"{{"type":"msg","channel":"a","seq":2,"data":"{}"}}"#,
        "x".repeat(10 << 20)
    );
    s.ev(c, TransportEvent::Text(big));
    assert!(s.errors().contains(&ErrorCode::FrameTooLarge));
    assert!(s.closes().iter().any(|x| x.0 == c && x.1 == 1009));
    assert!(is_reconnecting(&s.state()));
    let o = s.step_to_open();
    assert_eq!(o.cursor.as_deref(), Some("a:1"), "resumed");
    // Binary frames too.
    s.accept(o.conn);
    s.ev(o.conn, TransportEvent::Binary(vec![b' '; (1 << 20) + 1]));
    assert!(s.closes().iter().any(|x| x.0 == o.conn && x.1 == 1009));
    // Outbound.
    let e = s
        .engine
        .publish("a", json!("y".repeat(1 << 20)), None, s.now)
        .expect_err("too large");
    assert_eq!(e.code(), ErrorCode::MessageTooLarge);
}

#[test]
fn limit_1_transport_refused_oversized_message_resumes() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    s.failed(
        c,
        tether_engine::TransportFailure::FrameTooLarge("message too big".into()),
    );
    assert!(s.errors().contains(&ErrorCode::FrameTooLarge));
    assert!(is_reconnecting(&s.state()));
    let o = s.step_to_open();
    assert_eq!(o.cursor.as_deref(), Some("a:1"), "resumed");
}

#[test]
fn limit_2_body_over_16_times_max_frame() {
    let mut cfg = config();
    cfg.transports = vec![LongPoll];
    cfg.max_frame_bytes = 1024;
    let mut s = Sim::new(cfg);
    let c = s.connect_up();
    // 16 frames of < 1 KiB each in one body is fine ...
    let ok: Vec<serde_json::Value> = (0..15)
        .map(|_| json!({"type":"pong","pad":"x".repeat(900)}))
        .collect();
    s.frames(c, &ok);
    assert!(s.errors().is_empty());
    // ... a body over 16 KiB is not.
    let body = format!(
        "[{}]",
        vec![json!({"type":"pong","pad":"x".repeat(900)}).to_string(); 20].join(",")
    );
    assert!(body.len() > 16 * 1024);
    s.ev(c, TransportEvent::PollBody(body.clone().into_bytes()));
    assert!(s.errors().contains(&ErrorCode::FrameTooLarge));
    assert!(is_reconnecting(&s.state()));
    // Also for POST answers, with default limits (16 MiB).
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.ev(c, TransportEvent::SendReply(vec![b' '; (16 << 20) + 1]));
    assert!(s.errors().contains(&ErrorCode::FrameTooLarge));
}

#[test]
fn limit_3_sse_line_too_long_ends_connection() {
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    let c = s.connect_up();
    // Default limits: feed 64 KiB chunks of one endless line.
    let chunk = vec![b'x'; 64 * 1024];
    let mut fed = 0usize;
    while s.state().is_up() {
        s.ev(c, TransportEvent::SseBytes(chunk.clone()));
        fed += chunk.len();
        assert!(
            fed <= (1 << 20) + chunk.len(),
            "ended before more than the limit was buffered"
        );
    }
    assert!(s.errors().contains(&ErrorCode::SseLineTooLong));
    assert!(s.closes().iter().any(|x| x.0 == c));
    assert!(is_reconnecting(&s.state()));
}

#[test]
fn limit_4_long_cursor_ignored_previous_stays() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    let long = "c".repeat(1025);
    s.frame(
        c,
        json!({"type":"msg","channel":"a","seq":2,"cursor":long,"data":2}),
    );
    assert!(s.errors().contains(&ErrorCode::FrameMalformed));
    assert_eq!(s.engine.cursor(), Some("a:1"), "the long cursor is ignored");
    assert!(s.state().is_up());
    assert_eq!(s.delivered("a"), vec![1, 2], "the frame itself is kept");
    // Exactly 1024 bytes is fine.
    let ok = "c".repeat(1024);
    s.frame(
        c,
        json!({"type":"msg","channel":"a","seq":3,"cursor":ok,"data":3}),
    );
    assert_eq!(s.engine.cursor(), Some(ok.as_str()));
}

#[test]
fn limit_5_queues_bounded() {
    let mut cfg = config();
    cfg.overrides.outbox_max_count = Some(100.0);
    let mut s = Sim::new(cfg);
    s.subscribe("a");
    let c = s.connect_up();
    // Held messages: at most 1024 per channel.
    s.msg(c, "a", 1);
    for seq in 3..5000 {
        s.msg(c, "a", seq);
    }
    assert!(s.delivered("a").len() > 1, "hold overflow forced delivery");
    // Outbox.
    for i in 0..1000 {
        s.publish("a", json!(i));
    }
    assert_eq!(s.engine.outbox_len(), 100);
    assert_eq!(saved_records(&s.store).len(), 100);
}

#[test]
fn err_1_stable_codes() {
    let table = [
        "frame_malformed",
        "frame_too_large",
        "sse_line_too_long",
        "sse_event_too_large",
        "invalid_utf8",
        "policy_clamped",
        "message_too_large",
        "invalid_channel",
        "outbox_full",
        "store_failed",
        "closed",
        "auth_expired",
        "auth_failed",
        "forbidden",
        "not_found",
        "protocol_version",
        "bad_request",
        "attempts_exhausted",
        "heartbeat_timeout",
        "send_timeout",
        "transport_blocked",
        "transport_error",
        "server_error",
    ];
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, table);
    for c in table {
        assert_eq!(ErrorCode::parse(c).map(|x| x.as_str()), Some(c));
    }
    // Invalid UTF-8 from a text transport.
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.ev(c, TransportEvent::Binary(vec![0xff, 0xfe, 0xfd]));
    assert_eq!(s.errors(), vec![ErrorCode::InvalidUtf8]);
    assert!(s.state().is_up(), "frame skipped");
    // Every error event the engine reports carries a code of the table.
    for e in &s.events {
        if let Event::Error { code, .. } = e {
            assert!(table.contains(&code.as_str()));
        }
    }
}

#[test]
fn err_2_non_failures_change_nothing_else() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.mark();
    let state = s.state();
    s.ev(c, TransportEvent::Text("{garbage".into()));
    s.frame(c, json!({"type":"msg","channel":"a"}));
    let ev = s.take_events();
    assert!(
        ev.iter().all(|e| matches!(e, Event::Error { .. })),
        "{ev:?}"
    );
    assert_eq!(ev.len(), 2);
    assert!(s.take_actions().is_empty());
    assert_eq!(s.state(), state);
}

#[test]
fn err_2_never_panics_on_garbage() {
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        b"\0\0\0".to_vec(),
        b"{\"type\":\"hello\",\"v\":18446744073709551616}".to_vec(),
        b"{\"type\":\"msg\",\"channel\":\"a\",\"seq\":18446744073709551615}".to_vec(),
        b"{\"type\":\"drain\",\"from_ms\":18446744073709551615,\"to_ms\":0}".to_vec(),
        b"{\"type\":\"retry_later\",\"after_ms\":18446744073709551615}".to_vec(),
        b"{\"type\":\"hello\",\"policy\":{\"cap_ms\":1e308,\"multiplier\":-1e308}}".to_vec(),
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
        vec![0xff; 100],
    ];
    for t in [WebSocket, Sse, LongPoll] {
        let mut cfg = config();
        cfg.transports = vec![t];
        let mut s = Sim::new(cfg);
        s.subscribe("a");
        s.connect();
        let c = s.last_open().conn;
        for g in &garbage {
            s.ev(c, TransportEvent::Binary(g.clone()));
            s.ev(
                c,
                TransportEvent::Text(String::from_utf8_lossy(g).into_owned()),
            );
            s.ev(c, TransportEvent::SseBytes(g.clone()));
            s.ev(c, TransportEvent::PollBody(g.clone()));
            s.ev(c, TransportEvent::SendReply(g.clone()));
        }
        s.accept(c);
        s.frame(c, msg("a", u64::MAX));
        s.frame(c, subscribed("a", u64::MAX));
        s.frame(c, json!({"type":"retry_later","after_ms":u64::MAX}));
        s.run_for(secs(100_000));
    }
}

#[test]
fn err_3_terminal_error_frame_fails_nonterminal_continues() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.frame(
        c,
        json!({"type":"error","code":"overloaded","message":"busy","terminal":false}),
    );
    assert!(s.state().is_up(), "reported, the connection continues");
    assert_eq!(s.errors(), vec![ErrorCode::ServerError]);
    s.frame(
        c,
        json!({"type":"error","code":"protocol_version","terminal":true}),
    );
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::ProtocolVersion
        }
    );
    assert!(s.closes().iter().any(|x| x.0 == c));

    // An unknown terminal code is still terminal.
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.frame(
        c,
        json!({"type":"error","code":"banned_forever","terminal":true}),
    );
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::ServerError
        }
    );
    assert_eq!(s.engine.poll_timeout(), None);

    // Terminal with an id: the publish is dropped and the client fails.
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    let id = s.publish("a", json!(1));
    s.frame(
        c,
        json!({"type":"error","code":"forbidden","id":id,"terminal":true}),
    );
    assert_eq!(
        s.state(),
        State::Failed {
            reason: ErrorCode::Forbidden
        }
    );
    assert_eq!(s.engine.outbox_len(), 0);
}

#[test]
fn wire_10_server_codes() {
    // draining / not_ready / retry_later come with 503 + Retry-After: READY-1 wait.
    for code in ["draining", "not_ready", "retry_later"] {
        let mut s = Sim::default_sim();
        s.connect();
        let c = s.last_open().conn;
        s.failed(c, http(503, Some(code), Some(secs(3))));
        assert!(
            matches!(
                s.state(),
                State::Reconnecting {
                    cause: Cause::RetryLater,
                    ..
                }
            ),
            "{code}"
        );
        assert!(
            s.last_delay() >= secs(3) && s.last_delay() <= ms(4500),
            "{code}"
        );
        assert_eq!(
            s.last_open().transport,
            WebSocket,
            "{code}: not a blocked rung"
        );
    }
    // channel_limit: reported, retried with backoff on the same rung.
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(400, Some("channel_limit"), None));
    assert!(s.errors().contains(&ErrorCode::TransportError));
    assert!(is_reconnecting(&s.state()));
    assert_eq!(s.step_to_open().transport, WebSocket);
    // auth_expired: AUTH-2.
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(401, Some("auth_expired"), None));
    assert_eq!(s.opens().len(), 2, "one immediate retry");
}

#[test]
fn wire_11_subscription_change_on_sse_is_make_before_break() {
    for t in [Sse, LongPoll] {
        let mut cfg = config();
        cfg.transports = vec![t];
        let mut s = Sim::new(cfg);
        s.subscribe("a");
        let c = s.connect_up();
        s.msg(c, "a", 1);
        s.subscribe("b");
        let cand = s.last_open();
        assert_ne!(cand.conn, c, "{t:?}: a second connection");
        assert_eq!(cand.channels, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(cand.cursor.as_deref(), Some("a:1"));
        assert!(!s.closes().iter().any(|x| x.0 == c));
        s.msg(c, "a", 2);
        s.opened(cand.conn);
        s.frames(
            cand.conn,
            &[
                hello("a:1"),
                subscribed("a", 1),
                subscribed("b", 7),
                msg("a", 2),
                msg("b", 8),
            ],
        );
        assert!(s.closes().contains(&(c, 1000, "switched".into())), "{t:?}");
        assert_eq!(s.delivered("a"), vec![1, 2]);
        assert_eq!(s.delivered("b"), vec![8]);
        // Unsubscribing is a subscription change too.
        s.engine.unsubscribe("a", s.now).expect("unsubscribe");
        s.pump();
        let cand2 = s.last_open();
        assert_ne!(cand2.conn, cand.conn, "{t:?}");
        assert_eq!(cand2.channels, vec!["b".to_string()]);
    }
}

#[test]
fn wire_11_refused_subscription_change_reconnects_under_backoff() {
    for t in [Sse, LongPoll] {
        let mut cfg = config();
        cfg.transports = vec![t];
        let mut s = Sim::new(cfg);
        s.subscribe("a");
        let c = s.connect_up();
        s.msg(c, "a", 1);
        s.subscribe("b");
        let cand = s.last_open();
        let opens_before = s.opens().len();
        s.failed(
            cand.conn,
            tether_engine::TransportFailure::HttpStatus {
                status: 500,
                tether_error: Some("server_error".into()),
                retry_after: None,
            },
        );
        assert_eq!(s.opens().len(), opens_before, "{t:?}: no immediate retry");
        assert!(matches!(s.state(), State::Reconnecting { .. }), "{t:?}");
        assert!(
            s.closes().iter().any(|x| x.0 == c),
            "{t:?}: old connection closed"
        );
        let delay = s.last_delay();
        assert!(delay >= s.engine.policy().floor, "{t:?}: a backoff delay");
        s.step_to_open();
        let next = s.last_open();
        assert_eq!(next.channels, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(next.cursor.as_deref(), Some("a:1"));
    }
}

#[test]
fn wire_11_websocket_uses_frames_and_resubscribe_works() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.subscribe("a");
    s.engine.unsubscribe("a", s.now).expect("unsubscribe");
    s.pump();
    s.subscribe("a");
    assert_eq!(
        s.sent(c),
        vec![
            json!({"type":"subscribe","channel":"a"}),
            json!({"type":"unsubscribe","channel":"a"}),
            json!({"type":"subscribe","channel":"a"}),
        ]
    );
    assert_eq!(s.opens().len(), 1, "no second connection on WebSocket");
}
