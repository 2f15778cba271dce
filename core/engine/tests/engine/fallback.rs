//! FALLBACK-*: the transport ladder, blocked detection, memo, upgrade probes, no loss across switches.

use crate::support;

use support::*;
use tether_engine::{
    ErrorCode, Event, FallbackReason, State, TransportEvent, TransportFailure, TransportKind,
};

fn fallbacks(s: &Sim) -> Vec<(TransportKind, TransportKind, FallbackReason)> {
    s.events
        .iter()
        .filter_map(|e| match e {
            Event::Fallback { from, to, reason } => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn fallback_1_ladder_order_restricted_to_allowed() {
    let mut cfg = config();
    cfg.transports = vec![LongPoll, Sse];
    let mut s = Sim::new(cfg);
    s.connect();
    assert_eq!(
        s.last_open().transport,
        Sse,
        "ladder order, not config order"
    );
    let c = s.last_open().conn;
    s.failed(c, TransportFailure::WrongContentType("text/html".into()));
    assert_eq!(s.last_open().transport, LongPoll);
    assert_eq!(s.engine.transport(), LongPoll);

    let mut s = Sim::default_sim();
    s.connect();
    let order: Vec<TransportKind> = (0..3)
        .map(|_| {
            let o = s.last_open();
            s.failed(o.conn, http(405, None, None));
            o.transport
        })
        .collect();
    assert_eq!(order, vec![WebSocket, Sse, LongPoll]);
}

#[test]
fn fallback_2a_upgrade_refused_falls_to_sse_at_once() {
    // The table of FALLBACK-2: answers that show the request itself was refused on the way.
    for status in [200, 302, 400, 403, 404, 405, 410, 414, 426, 431] {
        let mut s = Sim::default_sim();
        s.connect();
        let c = s.last_open().conn;
        s.failed(c, http(status, None, None));
        let open = s.last_open();
        assert_eq!(open.transport, Sse, "HTTP {status}");
        assert_eq!(s.now, T0, "no delay");
        assert!(s.scheduled().is_empty());
        assert_eq!(
            fallbacks(&s),
            vec![(WebSocket, Sse, FallbackReason::Blocked)]
        );
        assert!(s.errors().contains(&ErrorCode::TransportBlocked));
    }
}

#[test]
fn fallback_2a_server_refusal_with_tether_error_is_not_blocking() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(500, Some("server_error"), None));
    assert!(fallbacks(&s).is_empty());
    assert!(is_reconnecting(&s.state()));
    assert_eq!(s.step_to_open().transport, WebSocket);
}

#[test]
fn fallback_2a_sse_wrong_content_type_blocks_at_once() {
    let mut cfg = config();
    cfg.transports = vec![Sse, LongPoll];
    let mut s = Sim::new(cfg);
    s.connect();
    let c = s.last_open().conn;
    s.failed(
        c,
        TransportFailure::WrongContentType("text/html; charset=utf-8".into()),
    );
    assert_eq!(s.last_open().transport, LongPoll);
    assert_eq!(
        fallbacks(&s),
        vec![(Sse, LongPoll, FallbackReason::Blocked)]
    );
    assert_eq!(s.now, T0);
}

#[test]
fn fallback_2b_two_closes_before_hello() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.opened(c);
    s.closed(c, Some(1006), "");
    assert!(
        fallbacks(&s).is_empty(),
        "one close before hello is not enough"
    );
    assert!(is_reconnecting(&s.state()), "first one backs off");
    let c = s.step_to_open().conn;
    assert_eq!(s.last_open().transport, WebSocket);
    s.opened(c);
    s.failed(c, TransportFailure::Io("EOF".into()));
    let failed_at = s.now;
    assert_eq!(s.last_open().transport, Sse);
    assert_eq!(s.now, failed_at, "immediately");
    assert_eq!(
        fallbacks(&s),
        vec![(WebSocket, Sse, FallbackReason::Blocked)]
    );
}

#[test]
fn fallback_2b_two_slow_opens() {
    let mut cfg = config();
    cfg.transports = vec![Sse, LongPoll];
    let mut s = Sim::new(cfg);
    s.connect();
    let c = s.last_open().conn;
    s.opened(c); // headers arrive, then nothing (a buffering proxy)
    s.step_until(10, |s| is_reconnecting(&s.state()));
    assert_eq!(s.elapsed(), secs(10), "open_timeout");
    assert!(s.closes().iter().any(|x| x.0 == c));
    let c = s.step_to_open().conn;
    s.opened(c);
    let started = s.now;
    s.step_until(10, |s| s.last_open().transport == LongPoll);
    assert_eq!(s.now - started, secs(10));
    assert!(s.closes().iter().any(|x| x.0 == c));
    assert_eq!(
        fallbacks(&s),
        vec![(Sse, LongPoll, FallbackReason::Blocked)]
    );
}

#[test]
fn fallback_3_unreachable_is_not_blocking() {
    let mut s = Sim::default_sim();
    s.connect();
    for _ in 0..10 {
        let o = s.last_open();
        assert_eq!(o.transport, WebSocket);
        s.unreachable(o.conn);
        s.step_to_open();
    }
    // Nor is an I/O error before the transport opened (TCP reset, TLS failure).
    let o = s.last_open();
    s.failed(o.conn, TransportFailure::Io("tls handshake".into()));
    assert_eq!(s.step_to_open().transport, WebSocket);
    assert!(fallbacks(&s).is_empty());
    assert_eq!(s.scheduled().len(), 11, "normal backoff every time");
}

#[test]
fn fallback_3_blocked_move_keeps_attempt_counter() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.unreachable(c);
    let c = s.step_to_open().conn;
    assert!(matches!(
        s.state(),
        State::Connecting {
            attempt: 1,
            transport: WebSocket
        }
    ));
    s.failed(c, http(403, None, None));
    assert_eq!(
        s.state(),
        State::Connecting {
            attempt: 1,
            transport: Sse
        }
    );
}

#[test]
fn fallback_4_all_blocked_wraps_with_backoff() {
    let mut s = Sim::default_sim();
    s.connect();
    for _ in 0..3 {
        let c = s.last_open().conn;
        s.failed(c, http(403, None, None));
    }
    assert_eq!(
        fallbacks(&s),
        vec![
            (WebSocket, Sse, FallbackReason::Blocked),
            (Sse, LongPoll, FallbackReason::Blocked),
            (LongPoll, WebSocket, FallbackReason::AllBlocked),
        ]
    );
    assert!(
        is_reconnecting(&s.state()),
        "backoff, not an immediate retry"
    );
    assert_eq!(s.opens().len(), 3);
    let open = s.step_to_open();
    assert_eq!(open.transport, WebSocket, "back at the top");
    assert!(s.elapsed() >= ms(100));
}

#[test]
fn fallback_5_memo_remembers_the_rung() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(403, None, None));
    let c = s.last_open().conn;
    s.accept(c);
    let memo = saved_memo(&s.store).expect("memo");
    assert_eq!(memo.transports.get(ENDPOINT), Some(&Sse));
    s.close();
    let mut s2 = s.restart(config());
    s2.connect();
    assert_eq!(
        s2.last_open().transport,
        Sse,
        "used first at the next start"
    );
    let c = s2.last_open().conn;
    s2.accept(c);
    assert_eq!(
        s2.state(),
        State::Degraded {
            transport: Sse,
            reason: ErrorCode::TransportBlocked
        }
    );
    // Another endpoint has its own memory.
    let mut other = config();
    other.endpoint = "https://other.example/t".into();
    let mut s3 = s2.restart(other);
    s3.connect();
    assert_eq!(s3.last_open().transport, WebSocket);
}

/// Up on SSE after WebSocket was blocked; returns the SSE connection.
fn degraded_on_sse(s: &mut Sim) -> tether_engine::ConnId {
    s.subscribe("a");
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(403, None, None));
    let c = s.last_open().conn;
    s.accept(c);
    assert!(matches!(s.state(), State::Degraded { .. }));
    c
}

#[test]
fn fallback_6_upgrade_probe_make_before_break() {
    let mut s = Sim::default_sim();
    let sse = degraded_on_sse(&mut s);
    let up_at = s.now;
    s.msg(sse, "a", 1);
    let n_opens = s.opens().len();
    s.run_alive(&[sse], secs(299));
    assert_eq!(s.opens().len(), n_opens, "not before upgrade_after");
    s.run_alive(&[sse], secs(1));
    let probe = s.last_open();
    assert_eq!(s.opens().len(), n_opens + 1);
    assert_eq!(s.now - up_at, secs(300));
    assert_eq!(probe.transport, WebSocket);
    assert_eq!(
        probe.cursor.as_deref(),
        Some("a:1"),
        "carries the current cursor"
    );
    assert!(
        !s.closes().iter().any(|x| x.0 == sse),
        "old connection stays until the new hello"
    );
    assert!(matches!(s.state(), State::Degraded { .. }));
    s.accept(probe.conn);
    assert!(s.closes().contains(&(sse, 1000, "switched".into())));
    assert_eq!(
        s.state(),
        State::Connected {
            transport: WebSocket
        }
    );
    assert_eq!(
        fallbacks(&s).last().copied(),
        Some((Sse, WebSocket, FallbackReason::Upgrade))
    );
    assert_eq!(
        saved_memo(&s.store).and_then(|m| m.transports.get(ENDPOINT).copied()),
        Some(WebSocket)
    );
}

#[test]
fn fallback_6_failed_upgrade_stays_and_doubles_interval() {
    let mut s = Sim::default_sim();
    let sse = degraded_on_sse(&mut s);
    let mut probe_times = Vec::new();
    let start = s.now;
    for _ in 0..6 {
        let before = s.opens().len();
        while s.opens().len() == before {
            s.run_alive(&[sse], secs(5));
        }
        probe_times.push(s.now - start);
        let p = s.last_open();
        assert_eq!(p.transport, WebSocket);
        s.failed(p.conn, http(403, None, None));
        assert!(
            matches!(s.state(), State::Degraded { transport: Sse, .. }),
            "stays"
        );
        assert!(!s.closes().iter().any(|x| x.0 == sse));
    }
    let gaps: Vec<u64> = std::iter::once(probe_times[0])
        .chain(probe_times.windows(2).map(|w| w[1] - w[0]))
        .map(|d| d.as_secs())
        .collect();
    // 300, 600, 1200, 2400, 3600 (max 1 h), 3600; within the 5 s keepalive granularity.
    let want = [300, 600, 1200, 2400, 3600, 3600];
    for (g, w) in gaps.iter().zip(want) {
        assert!(*g >= w && *g <= w + 5, "gaps {gaps:?}");
    }
}

#[test]
fn fallback_6_upgrade_candidate_slow_open_counts_as_failure() {
    let mut s = Sim::default_sim();
    let sse = degraded_on_sse(&mut s);
    s.run_alive(&[sse], secs(300));
    let p = s.last_open();
    assert_eq!(p.transport, WebSocket);
    s.run_alive(&[sse], secs(15));
    assert!(
        s.closes().iter().any(|x| x.0 == p.conn),
        "candidate given up"
    );
    assert!(matches!(s.state(), State::Degraded { transport: Sse, .. }));
}

#[test]
fn fallback_7_no_loss_or_dup_across_upgrade() {
    let mut s = Sim::default_sim();
    let sse = degraded_on_sse(&mut s);
    for seq in 1..=3 {
        s.msg(sse, "a", seq);
    }
    s.run_alive(&[sse], secs(300));
    let probe = s.last_open();
    assert_eq!(probe.cursor.as_deref(), Some("a:3"));
    // The old connection keeps delivering while the new one opens.
    s.msg(sse, "a", 4);
    s.msg(sse, "a", 5);
    // The new one replays from a:3 (4, 5 again) then continues.
    s.opened(probe.conn);
    s.frames(probe.conn, &[hello("a:3"), subscribed("a", 3)]);
    for seq in 4..=7 {
        s.msg(probe.conn, "a", seq);
    }
    // Late frames from the old connection are ignored.
    s.msg(sse, "a", 8);
    assert_eq!(s.delivered("a"), (1..=7).collect::<Vec<_>>());
    assert_eq!(s.engine.duplicates("a"), 2);
}

#[test]
fn fallback_7_no_loss_or_dup_across_fallback() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    s.msg(c, "a", 2);
    s.closed(c, Some(1006), "");
    let c = s.step_to_open().conn;
    s.failed(c, http(403, None, None));
    let sse = s.last_open();
    assert_eq!(sse.transport, Sse);
    assert_eq!(sse.cursor.as_deref(), Some("a:2"));
    s.opened(sse.conn);
    // Replay overlaps what was delivered (at-least-once on the wire).
    s.frames(
        sse.conn,
        &[
            hello("a:1"),
            subscribed("a", 1),
            msg("a", 2),
            msg("a", 3),
            msg("a", 4),
        ],
    );
    assert_eq!(s.delivered("a"), vec![1, 2, 3, 4]);
}

#[test]
fn fallback_sse_candidate_switch_keeps_rest_of_chunk() {
    // One SSE chunk carrying the hello and the frames after it, on a make-before-break candidate
    // (NET-3 on the SSE rung): nothing after the hello may be lost when the candidate becomes primary.
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    s.network(tether_engine::Network::Changed);
    let cand = s.last_open();
    assert_ne!(cand.conn, c);
    s.opened(cand.conn);
    s.frames(
        cand.conn,
        &[hello("a:1"), subscribed("a", 1), msg("a", 2), msg("a", 3)],
    );
    assert_eq!(s.delivered("a"), vec![1, 2, 3]);
    assert!(s.closes().contains(&(c, 1000, "switched".into())));
    s.ev(cand.conn, TransportEvent::SseBytes(b": ping\n".to_vec()));
    assert_eq!(s.state(), State::Connected { transport: Sse });
}

#[test]
fn fallback_2a_tether_error_upgrade_required_blocks_at_once() {
    let mut s = Sim::default_sim();
    s.connect();
    let c = s.last_open().conn;
    s.failed(c, http(426, Some("upgrade_required"), None));
    assert_eq!(s.last_open().transport, Sse);
    assert_eq!(s.now, T0, "at once");
    assert_eq!(
        fallbacks(&s),
        vec![(WebSocket, Sse, FallbackReason::Blocked)]
    );
    assert!(s.errors().contains(&ErrorCode::TransportBlocked));
}

#[test]
fn fallback_2_which_signals_block_a_rung() {
    type Script = fn(&mut Sim, tether_engine::ConnId);
    // (a) signals: blocked at once.
    let at_once: [(&str, Script); 4] = [
        ("proxy status", |s, c| s.failed(c, http(403, None, None))),
        ("upgrade_required", |s, c| {
            s.failed(c, http(426, Some("upgrade_required"), None))
        }),
        ("proxy 404", |s, c| s.failed(c, http(404, None, None))),
        ("200 instead of 101", |s, c| {
            s.failed(c, http(200, None, None))
        }),
    ];
    for (name, script) in at_once {
        let mut s = Sim::default_sim();
        s.connect();
        let c = s.last_open().conn;
        script(&mut s, c);
        assert_eq!(s.last_open().transport, Sse, "{name}");
    }
    // Not blocking (the server answered, or is unreachable): backoff on the same rung.
    let not_blocking: [(&str, Script); 6] = [
        ("server 500", |s, c| {
            s.failed(c, http(500, Some("server_error"), None))
        }),
        ("gateway 502", |s, c| s.failed(c, http(502, None, None))),
        ("gateway 504", |s, c| s.failed(c, http(504, None, None))),
        ("unreachable", |s, c| s.unreachable(c)),
        ("io before open", |s, c| {
            s.failed(c, TransportFailure::Io("tls".into()))
        }),
        ("one close before hello", |s, c| {
            s.opened(c);
            s.closed(c, Some(1006), "")
        }),
    ];
    for (name, script) in not_blocking {
        let mut s = Sim::default_sim();
        s.connect();
        let c = s.last_open().conn;
        script(&mut s, c);
        assert!(fallbacks(&s).is_empty(), "{name}");
        assert_eq!(s.step_to_open().transport, WebSocket, "{name}");
    }
}

/// A load balancer in front of a server that is down: 5xx without `Tether-Error` on every
/// rung. Before FALLBACK-2's table, each one blocked the rung, so every backoff step was
/// three immediate attempts (one per rung) and the memo could keep a lower rung.
#[test]
fn fallback_2_gateway_errors_keep_the_rung_under_backoff() {
    for status in [500, 502, 503, 504, 407, 408] {
        let mut s = Sim::default_sim();
        s.connect();
        let mut attempts = Vec::new();
        for n in 0..6 {
            let o = s.last_open();
            attempts.push((s.now, o.transport));
            s.failed(o.conn, http(status, None, None));
            assert!(is_reconnecting(&s.state()), "HTTP {status}: backs off");
            assert_eq!(
                s.scheduled().len(),
                n + 1,
                "HTTP {status}: one delay per attempt"
            );
            s.step_to_open();
        }
        assert!(
            attempts.iter().all(|(_, t)| *t == WebSocket),
            "HTTP {status}: the rung is kept: {attempts:?}"
        );
        assert!(fallbacks(&s).is_empty(), "HTTP {status}: no fallback");
        assert!(
            !s.errors().contains(&ErrorCode::TransportBlocked),
            "HTTP {status}"
        );
        // Every attempt after the first waited the declared backoff delay (BACKOFF-1/3).
        let delays: Vec<_> = s.scheduled().iter().map(|d| d.1).collect();
        for (i, w) in attempts.windows(2).enumerate() {
            let waited = w[1].0 - w[0].0;
            assert!(
                waited.abs_diff(delays[i]) < ms(1),
                "HTTP {status}: attempt {} waited {waited:?}, declared {:?}",
                i + 1,
                delays[i]
            );
        }
        // The server comes back: connected on WebSocket, not degraded, memo on WebSocket.
        let c = s.last_open().conn;
        s.accept(c);
        assert_eq!(
            s.state(),
            State::Connected {
                transport: WebSocket
            }
        );
        let memo = saved_memo(&s.store).expect("memo saved on hello");
        assert_eq!(
            memo.transports.get(ENDPOINT),
            Some(&WebSocket),
            "HTTP {status}"
        );
    }
}

#[test]
fn fallback_2_gateway_errors_on_a_lower_rung_keep_that_rung() {
    // Degraded on SSE (WebSocket refused by a proxy), then the balancer loses its backends.
    let mut s = Sim::default_sim();
    let c = degraded_on_sse(&mut s);
    s.closed(c, Some(1006), "");
    for _ in 0..4 {
        let o = s.step_to_open();
        assert_eq!(o.transport, Sse);
        s.failed(o.conn, http(502, None, None));
    }
    assert_eq!(
        fallbacks(&s),
        vec![(WebSocket, Sse, FallbackReason::Blocked)],
        "only the proxy's refusal moved the client"
    );
}
