//! OUTBOX-*: the persistent queue of publishes, through the engine.

use crate::support;

use serde_json::json;
use support::*;
use tether_engine::{
    CallError, DropPolicy, DropReason, ErrorCode, Event, OutboxRecord, State, TransportEvent,
};

fn dropped(s: &Sim) -> Vec<(String, DropReason)> {
    s.events
        .iter()
        .filter_map(|e| match e {
            Event::Dropped { id, reason } => Some((id.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn ack(id: &str) -> serde_json::Value {
    json!({"type":"ack","id":id,"channel":"a","seq":1})
}

#[test]
fn outbox_1_idempotency_keys() {
    let mut s = Sim::default_sim();
    let a = s.publish("a", json!(1));
    let b = s.publish("a", json!(2));
    let (prefix, n) = a.rsplit_once('-').expect("<client id>-<counter>");
    assert_eq!(prefix.len(), 16, "64-bit client id in hex");
    assert!(u64::from_str_radix(prefix, 16).is_ok());
    assert_eq!(n, "1");
    assert_eq!(b, format!("{prefix}-2"));
    // The app's own key is kept.
    let own = s
        .engine
        .publish("a", json!(3), Some("order-77".into()), s.now)
        .expect("publish");
    assert_eq!(own, "order-77");
    // Different seeds, different client ids.
    let mut cfg = config();
    cfg.seed = 43;
    let mut s2 = Sim::new(cfg);
    let other = s2.publish("a", json!(1));
    assert_ne!(other.rsplit_once('-').map(|x| x.0), Some(prefix));
}

#[test]
fn outbox_2_durable_before_success_store_failure_queues_nothing() {
    let mut s = Sim::default_sim();
    let id = s.publish("a", json!({"x":1}));
    assert_eq!(
        saved_records(&s.store).len(),
        1,
        "in the store when publish returns"
    );
    assert_eq!(saved_records(&s.store)[0].id, id);
    with_memory(&s.store, |m| m.fail_writes = true);
    let err = s
        .engine
        .publish("a", json!(2), None, s.now)
        .expect_err("store fails");
    assert_eq!(err.code(), ErrorCode::StoreFailed);
    assert_eq!(s.engine.outbox_len(), 1, "nothing queued");
}

#[test]
fn outbox_3_sent_in_order_after_hello_and_resubscribe_window_256() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let ids: Vec<String> = (0..300).map(|i| s.publish("a", json!(i))).collect();
    s.connect();
    let c = s.last_open().conn;
    s.opened(c);
    assert!(s.sent(c).is_empty(), "nothing before the hello");
    s.accept(c);
    let sent = s.published_ids(c);
    assert_eq!(sent, ids[..256].to_vec(), "in order, at most 256 in flight");
    // Acks open the window; each publish is kept until its ack.
    for id in &ids[..10] {
        s.frame(c, ack(id));
    }
    assert_eq!(s.published_ids(c), ids[..266].to_vec());
    assert_eq!(s.engine.outbox_len(), 290);
    let acked = s
        .events
        .iter()
        .filter(|e| matches!(e, Event::Acked { .. }))
        .count();
    assert_eq!(acked, 10);
    // A publish made while up goes out at once, after the queue.
    for id in &ids[10..] {
        s.frame(c, ack(id));
    }
    let late = s.publish("a", json!("late"));
    assert_eq!(s.published_ids(c).last(), Some(&late));
}

#[test]
fn outbox_3_resubscription_precedes_publishes_on_websocket() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.closed(c, Some(1006), "");
    // While down: a new channel and a publish.
    s.subscribe("b");
    s.publish("b", json!(1));
    let c = s.step_to_open().conn;
    s.accept(c);
    let sent = s.sent(c);
    assert!(
        sent.iter().all(|f| f["type"] == "publish"),
        "channel b went in the handshake"
    );
    assert_eq!(s.last_open().channels, vec!["b".to_string()]);
}

#[test]
fn outbox_4_resent_in_order_after_reconnect() {
    let mut s = Sim::default_sim();
    let c1 = s.connect_up();
    let ids: Vec<String> = (0..5).map(|i| s.publish("a", json!(i))).collect();
    assert_eq!(s.published_ids(c1), ids);
    s.frame(c1, ack(&ids[0]));
    s.frame(c1, ack(&ids[2]));
    s.closed(c1, Some(1006), "");
    let c2 = s.step_to_open().conn;
    s.accept(c2);
    assert_eq!(
        s.published_ids(c2),
        vec![ids[1].clone(), ids[3].clone(), ids[4].clone()],
        "same ids, original order"
    );
    // The same payload too.
    let f = &s.sent(c2)[0];
    assert_eq!(f["data"], json!(1));
    assert_eq!(f["channel"], "a");
}

#[test]
fn outbox_4_sse_post_failure_resends() {
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    let c = s.connect_up();
    let id = s.publish("a", json!(1));
    assert_eq!(s.published_ids(c), vec![id.clone()]);
    s.ev(
        c,
        TransportEvent::SendFailed(tether_engine::TransportFailure::Io("POST failed".into())),
    );
    s.run_alive(&[c], secs(1));
    assert_eq!(
        s.published_ids(c),
        vec![id.clone(), id.clone()],
        "resent after a failed POST"
    );
    s.ev(
        c,
        TransportEvent::SendReply(format!("[{}]", ack(&id)).into_bytes()),
    );
    assert_eq!(s.engine.outbox_len(), 0);
}

#[test]
fn outbox_6_drop_oldest_overflow_by_count_and_bytes() {
    let mut cfg = config();
    cfg.overrides.outbox_max_count = Some(3.0);
    let mut s = Sim::new(cfg);
    let ids: Vec<String> = (0..5).map(|i| s.publish("a", json!(i))).collect();
    assert_eq!(
        dropped(&s),
        vec![
            (ids[0].clone(), DropReason::Overflow),
            (ids[1].clone(), DropReason::Overflow)
        ]
    );
    assert_eq!(s.engine.outbox_len(), 3);
    assert_eq!(
        saved_records(&s.store).len(),
        3,
        "dropped from the store too"
    );

    let mut cfg = config();
    cfg.overrides.outbox_max_bytes = Some(2000.0);
    let mut s = Sim::new(cfg);
    let a = s.publish("a", json!("x".repeat(900)));
    let _b = s.publish("a", json!("x".repeat(900)));
    let _c = s.publish("a", json!("x".repeat(900)));
    assert_eq!(dropped(&s), vec![(a, DropReason::Overflow)]);
}

#[test]
fn outbox_6_reject_new() {
    let mut cfg = config();
    cfg.overrides.outbox_max_count = Some(2.0);
    cfg.drop_policy = DropPolicy::RejectNew;
    let mut s = Sim::new(cfg);
    s.publish("a", json!(1));
    s.publish("a", json!(2));
    let err = s.engine.publish("a", json!(3), None, s.now);
    assert_eq!(err, Err(CallError::OutboxFull));
    assert_eq!(err.map_err(|e| e.code()), Err(ErrorCode::OutboxFull));
    assert!(dropped(&s).is_empty());
    assert_eq!(s.engine.outbox_len(), 2);
}

#[test]
fn outbox_6_expired_publishes_dropped() {
    let mut cfg = fast_config();
    cfg.overrides.outbox_max_age_ms = Some(60_000.0);
    let mut s = Sim::new(cfg);
    s.connect();
    let a = s.publish("a", json!(1));
    s.run_for(secs(30));
    let b = s.publish("a", json!(2));
    // The server is unreachable the whole time.
    let until = T0 + secs(200);
    while s.now < until {
        if let Some(o) = s.opens().last().cloned() {
            s.unreachable(o.conn);
        }
        s.run_for(secs(1));
    }
    assert_eq!(
        dropped(&s),
        vec![(a, DropReason::Expired), (b, DropReason::Expired)]
    );
    assert!(saved_records(&s.store).is_empty());
}

#[test]
fn outbox_6_too_large_refused() {
    let mut s = Sim::default_sim();
    let err = s
        .engine
        .publish("a", json!("x".repeat(2 << 20)), None, s.now)
        .expect_err("too large");
    assert_eq!(err.code(), ErrorCode::MessageTooLarge);
    assert_eq!(s.engine.outbox_len(), 0);
}

#[test]
fn outbox_7_error_with_id_rejects_publish() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    let a = s.publish("a", json!(1));
    let b = s.publish("a", json!(2));
    s.frame(
        c,
        json!({"type":"error","code":"forbidden","message":"no publish on a","id":a,"terminal":false}),
    );
    assert_eq!(
        dropped(&s),
        vec![(
            a,
            DropReason::Rejected {
                code: "forbidden".into()
            }
        )]
    );
    assert!(
        s.state().is_up(),
        "the publish's error does not fail the client"
    );
    assert_eq!(s.engine.outbox_len(), 1);
    s.closed(c, Some(1006), "");
    let c = s.step_to_open().conn;
    s.accept(c);
    assert_eq!(s.published_ids(c), vec![b], "never resent");
}

#[test]
fn outbox_8_store_records_restored_in_order() {
    let store = SharedStore::default();
    with_memory(&store, |m| {
        for (i, id) in ["k3", "k1", "k2"].iter().enumerate() {
            m.records.push(OutboxRecord {
                id: id.to_string(),
                channel: "a".into(),
                data: format!("{{\"n\":{i}}}"),
                enqueued_unix_ms: WALL0,
            });
        }
    });
    let mut s = Sim::with_store(config(), store, T0);
    assert_eq!(s.engine.outbox_len(), 3);
    let c = s.connect_up();
    assert_eq!(s.published_ids(c), vec!["k3", "k1", "k2"]);
    assert_eq!(s.sent(c)[1]["data"], json!({"n":1}));
    // Acks remove them from the store.
    s.frame(c, ack("k3"));
    assert_eq!(
        saved_records(&s.store)
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        vec!["k1", "k2"]
    );
    assert!(matches!(s.state(), State::Connected { .. }));
}

fn only(t: tether_engine::TransportKind) -> Sim {
    let mut cfg = config();
    cfg.transports = vec![t];
    Sim::new(cfg)
}

/// A pooled connection a NAT dropped without a RST: the POST is never answered while the
/// stream itself stays alive (its heartbeats keep coming). Before OUTBOX-9 the publishes
/// stayed unacknowledged for as long as the stream lived, with the client `connected`.
#[test]
fn outbox_9_unanswered_post_fails_the_connection_and_resends() {
    for t in [Sse, LongPoll] {
        let mut s = only(t);
        let c1 = s.connect_up();
        let ids: Vec<String> = (0..3).map(|i| s.publish("a", json!(i))).collect();
        assert_eq!(s.published_ids(c1), ids, "{t}: one POST");
        // No answer, but the stream is alive: 9 s later the client is still up.
        s.run_alive(&[c1], secs(9));
        assert!(s.engine.state().is_up(), "{t}: {:?}", s.state());
        // open_timeout (10 s) plus the body allowance: the connection is given up.
        s.run_alive(&[c1], secs(2));
        let closed = s.closes();
        assert!(
            closed.contains(&(c1, 4000, "send timeout".into())),
            "{t}: {closed:?}"
        );
        assert_eq!(s.count_errors(ErrorCode::SendTimeout), 1, "{t}");
        let (attempt, delay, cause) = s.scheduled()[0].clone();
        assert_eq!(
            (attempt, cause.as_str()),
            (1, "send_timeout"),
            "{t}: reconnect with backoff from n = 0"
        );
        assert!(delay <= secs(1), "{t}: n = 0 draw, at most base: {delay:?}");
        assert!(
            s.transitions().iter().any(|(from, to, cause)| from.is_up()
                && matches!(to, State::Reconnecting { .. })
                && cause.as_str() == "send_timeout"),
            "{t}: {:?}",
            s.transitions()
        );
        // OUTBOX-4: resent on the fresh connection, same ids, same order.
        let c2 = s.step_to_open().conn;
        s.accept(c2);
        assert_eq!(s.published_ids(c2), ids, "{t}: resent in order");
        s.ev(
            c2,
            TransportEvent::SendReply(
                format!("[{},{},{}]", ack(&ids[0]), ack(&ids[1]), ack(&ids[2])).into_bytes(),
            ),
        );
        assert_eq!(s.engine.outbox_len(), 0, "{t}");
    }
}

#[test]
fn outbox_9_deadline_is_open_timeout_plus_body_allowance() {
    let mut s = only(Sse);
    let c = s.connect_up();
    let big = "x".repeat(160 * 1024);
    s.publish("a", json!(big));
    // 160 KiB of body: ten more seconds than open_timeout (one per 16 KiB).
    s.run_alive(&[c], secs(19));
    assert!(s.engine.state().is_up(), "{:?}", s.state());
    s.run_alive(&[c], secs(2));
    assert!(s.closes().contains(&(c, 4000, "send timeout".into())));
}

#[test]
fn outbox_9_deadline_counts_from_the_previous_answer() {
    let mut s = only(Sse);
    let c = s.connect_up();
    let a = s.publish("a", json!(1));
    // The outbox window lets the second publish go while the first POST is pending.
    let b = s.publish("a", json!(2));
    assert_eq!(s.published_ids(c), vec![a.clone(), b.clone()]);
    // The first POST answers after 8 s: the second (sent after it, on the same worker)
    // gets its own full deadline from that answer.
    s.run_alive(&[c], secs(8));
    s.ev(
        c,
        TransportEvent::SendReply(format!("[{}]", ack(&a)).into_bytes()),
    );
    s.run_alive(&[c], secs(9));
    assert!(
        s.engine.state().is_up(),
        "17 s after the second POST, 9 s after the answer"
    );
    assert!(!s.closes().iter().any(|x| x.0 == c));
    s.run_alive(&[c], secs(2));
    assert!(s.closes().contains(&(c, 4000, "send timeout".into())));
}

#[test]
fn outbox_9_answered_posts_and_websocket_have_no_deadline() {
    // Answered POSTs leave nothing pending.
    let mut s = only(LongPoll);
    let c = s.connect_up();
    for i in 0..5 {
        let id = s.publish("a", json!(i));
        s.run_alive(&[c], secs(6));
        s.ev(
            c,
            TransportEvent::SendReply(format!("[{}]", ack(&id)).into_bytes()),
        );
    }
    s.run_alive(&[c], secs(60));
    assert!(s.engine.state().is_up());
    assert_eq!(s.count_errors(ErrorCode::SendTimeout), 0);
    // WebSocket: publishes share the stream's socket, whose liveness HEARTBEAT-2 checks; a
    // late ack on a live socket is a slow server, not a dead connection.
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.publish("a", json!(1));
    s.run_alive(&[c], secs(120));
    assert!(s.engine.state().is_up());
    assert_eq!(s.count_errors(ErrorCode::SendTimeout), 0);
    assert_eq!(s.engine.outbox_len(), 1);
}
