//! RESUME-* (cursor and replay) and ORDER-* (exactly once, in order, per channel) through the engine.

use crate::support;

use serde_json::json;
use support::*;
use tether_engine::{Event, ResetReason, TransportEvent};

fn resets(s: &Sim) -> Vec<(String, ResetReason)> {
    s.events
        .iter()
        .filter_map(|e| match e {
            Event::Reset { channel, reason } => Some((channel.clone(), *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn resume_2_cursor_carried_in_open_request_after_drop() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    assert_eq!(
        s.engine.cursor(),
        Some("c0"),
        "hello and subscribed carry the cursor"
    );
    s.msg(c, "a", 1);
    s.msg(c, "a", 2);
    s.msg(c, "a", 4); // held: not processed in order, its cursor is not taken
    assert_eq!(s.engine.cursor(), Some("a:2"));
    s.closed(c, Some(1006), "");
    let open = s.step_to_open();
    assert_eq!(open.cursor.as_deref(), Some("a:2"));
    assert_eq!(open.channels, vec!["a".to_string()]);
}

#[test]
fn resume_2_sse_id_is_the_cursor() {
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    s.subscribe("a");
    s.connect();
    let c = s.last_open().conn;
    s.opened(c);
    // Frames without a `cursor` field: the SSE `id:` is the cursor.
    let stream = concat!(
        "id: h0\ndata: {\"type\":\"hello\",\"v\":1}\n\n",
        "id: s0\ndata: {\"type\":\"subscribed\",\"channel\":\"a\",\"seq\":0}\n\n",
        "id: m1\ndata: {\"type\":\"msg\",\"channel\":\"a\",\"seq\":1,\"data\":1}\n\n",
    );
    s.ev(c, TransportEvent::SseBytes(stream.as_bytes().to_vec()));
    assert_eq!(s.delivered("a"), vec![1]);
    assert_eq!(s.engine.cursor(), Some("m1"));
    s.closed(c, None, "");
    let open = s.step_to_open();
    assert_eq!(
        open.cursor.as_deref(),
        Some("m1"),
        "Last-Event-ID on reconnect"
    );
}

#[test]
fn resume_2_long_poll_cursor_in_every_poll() {
    let mut cfg = config();
    cfg.transports = vec![LongPoll];
    let mut s = Sim::new(cfg);
    s.subscribe("a");
    let c = s.connect_up();
    assert_eq!(
        s.polls(c),
        vec![Some("c0".to_string())],
        "one poll after the hello"
    );
    s.frames(c, &[msg("a", 1), msg("a", 2)]);
    assert_eq!(s.polls(c).last().cloned().flatten().as_deref(), Some("a:2"));
    assert_eq!(
        s.polls(c).len(),
        2,
        "exactly one poll outstanding at a time"
    );
}

#[test]
fn resume_5_hello_reset_reported() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    s.subscribe("b");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    s.msg(c, "b", 1);
    s.closed(c, Some(1006), "");
    let c = s.step_to_open().conn;
    s.opened(c);
    s.frames(
        c,
        &[
            json!({"type":"hello","v":1,"cursor":"x","reset":["a"]}),
            subscribed("a", 500),
            subscribed("b", 1),
        ],
    );
    assert_eq!(resets(&s), vec![("a".to_string(), ResetReason::Server)]);
    // The gap is not pretended filled: a continues from the head, b from where it was.
    s.msg(c, "a", 501);
    s.msg(c, "b", 2);
    assert_eq!(s.delivered("a"), vec![1, 501]);
    assert_eq!(s.delivered("b"), vec![1, 2]);
    // A later `reset` frame is reported the same way.
    s.frame(c, json!({"type":"reset","channel":"b","cursor":"y"}));
    assert_eq!(resets(&s).len(), 2);
    assert_eq!(s.engine.cursor(), Some("y"));
}

#[test]
fn resume_6_cursor_survives_fallback() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    s.msg(c, "a", 2);
    s.closed(c, Some(1006), "");
    let c = s.step_to_open().conn;
    s.failed(c, http(200, None, None)); // a proxy answered the upgrade
    let open = s.last_open();
    assert_eq!(open.transport, Sse);
    assert_eq!(open.cursor.as_deref(), Some("a:2"));
}

#[test]
fn order_1_deliver_only_next_seq() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.frame(c, subscribed("a", 5));
    s.msg(c, "a", 6);
    s.msg(c, "a", 8);
    assert_eq!(s.delivered("a"), vec![6]);
    s.msg(c, "a", 7);
    assert_eq!(s.delivered("a"), vec![6, 7, 8]);
    // A channel without a baseline takes its first message as it comes.
    s.subscribe("b");
    s.msg(c, "b", 40);
    assert_eq!(s.delivered("b"), vec![40]);
    // Messages of channels not subscribed are not delivered.
    s.msg(c, "zzz", 1);
    assert!(s.delivered("zzz").is_empty());
}

#[test]
fn order_2_duplicates_dropped_silently_and_counted() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    for seq in [1, 2, 2, 1, 3, 3] {
        s.msg(c, "a", seq);
    }
    assert_eq!(s.delivered("a"), vec![1, 2, 3]);
    assert_eq!(s.engine.duplicates("a"), 3);
    assert!(s.errors().is_empty(), "silently");
}

#[test]
fn order_3_held_until_gap_fills() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    for seq in (3..=1000).rev() {
        s.msg(c, "a", seq);
    }
    assert_eq!(s.delivered("a"), vec![1]);
    s.msg(c, "a", 2);
    assert_eq!(s.delivered("a"), (1..=1000).collect::<Vec<_>>());
    assert!(resets(&s).is_empty());
}

#[test]
fn order_4_gap_timeout_resets_then_delivers_held() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    let gap_at = s.now;
    s.msg(c, "a", 4);
    s.msg(c, "a", 3);
    s.run_alive(&[c], secs(4));
    assert_eq!(s.delivered("a"), vec![1]);
    s.run_until(gap_at + secs(5));
    assert_eq!(resets(&s), vec![("a".to_string(), ResetReason::Gap)]);
    assert_eq!(s.delivered("a"), vec![1, 3, 4]);
    // The reset comes before the held messages.
    let reset_pos = s
        .events
        .iter()
        .position(|e| matches!(e, Event::Reset { .. }))
        .expect("reset");
    let msg3_pos = s
        .events
        .iter()
        .position(|e| matches!(e, Event::Message { seq: 3, .. }))
        .expect("msg 3");
    assert!(reset_pos < msg3_pos);
    // Late 2 is now a duplicate.
    s.msg(c, "a", 2);
    assert_eq!(s.delivered("a"), vec![1, 3, 4]);
}

#[test]
fn order_4_full_hold_resets_at_once() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    for seq in 3..3 + 1024 {
        s.msg(c, "a", seq);
    }
    assert!(resets(&s).is_empty(), "1024 held is allowed");
    s.msg(c, "a", 3 + 1024);
    assert_eq!(resets(&s), vec![("a".to_string(), ResetReason::Gap)]);
    let d = s.delivered("a");
    assert_eq!(d.len(), 1 + 1025);
    assert!(
        d.windows(2).all(|w| w[0] < w[1]),
        "in order from the lowest"
    );
}

#[test]
fn order_1_reset_frame_clears_the_baseline() {
    let mut s = Sim::default_sim();
    s.subscribe("a");
    let c = s.connect_up();
    s.msg(c, "a", 1);
    s.msg(c, "a", 2);
    s.frame(c, json!({"type":"reset","channel":"a","cursor":"r"}));
    // After a reset, a lower seq is not a duplicate: the baseline is gone.
    s.frame(c, subscribed("a", 0));
    s.msg(c, "a", 1);
    assert_eq!(s.delivered("a"), vec![1, 2, 1]);
    assert_eq!(resets(&s), vec![("a".to_string(), ResetReason::Server)]);
}
