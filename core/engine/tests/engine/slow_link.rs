//! A slow link: bytes of a message or body still arriving count as liveness (HEARTBEAT-2/4)
//! and extend an open up to a hard bound (CONN-6), so a large answer is never mistaken for a
//! dead connection, and a buffering proxy that delivers nothing is still a slow open (SSE-4).

use crate::support;

use support::*;
use tether_engine::{Cause, ErrorCode, Event, State, TransportEvent};

fn receiving(s: &mut Sim, c: tether_engine::ConnId) {
    s.ev(c, TransportEvent::Receiving { bytes: 4096 });
}

fn only(t: tether_engine::TransportKind) -> Sim {
    let mut cfg = config();
    cfg.transports = vec![t];
    Sim::new(cfg)
}

fn slow_opens(s: &Sim) -> usize {
    s.closes().iter().filter(|c| c.2 == "open timeout").count()
}

#[test]
fn heartbeat_2_bytes_of_an_incomplete_message_count_as_liveness() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    // A large WebSocket message trickles in for 200 s: no complete frame, only bytes.
    for _ in 0..10 {
        s.run_for(secs(20));
        receiving(&mut s, c);
    }
    assert!(s.state().is_up(), "{:?}", s.state());
    assert_eq!(s.count_errors(ErrorCode::HeartbeatTimeout), 0);
    // Then the bytes stop: heartbeat_ms + heartbeat_grace_ms after the last of them.
    let last = s.now;
    s.step_until(10, |s| is_reconnecting(&s.state()));
    assert_eq!(s.now - last, secs(25));
    assert!(s.errors().contains(&ErrorCode::HeartbeatTimeout));
}

#[test]
fn heartbeat_4_a_poll_answer_still_arriving_is_not_a_dead_poll() {
    let mut s = only(LongPoll);
    s.subscribe("a");
    let c = s.connect_up();
    let polls = s.polls(c).len();
    // The server answers after 20 s; its large answer then takes 60 s to arrive.
    s.run_for(secs(20));
    for _ in 0..12 {
        receiving(&mut s, c);
        s.run_for(secs(5));
    }
    assert!(s.state().is_up(), "HEARTBEAT-4: {:?}", s.state());
    let body: Vec<_> = (1..=3).map(|n| msg("a", n)).collect();
    s.frames(c, &body);
    assert_eq!(s.delivered("a"), vec![1, 2, 3]);
    assert_eq!(s.polls(c).len(), polls + 1, "the next poll goes out");
    assert_eq!(s.engine.cursor(), Some("a:3"));
    // A poll whose answer never starts: poll_hold + heartbeat_grace after it was sent.
    let sent = s.now;
    s.step_until(10, |s| is_reconnecting(&s.state()));
    assert_eq!(s.now - sent, secs(35));
}

#[test]
fn conn_6_a_long_poll_hello_answer_on_a_slow_link_opens() {
    let mut s = only(LongPoll);
    s.subscribe("a");
    s.connect();
    let c = s.last_open().conn;
    s.opened(c);
    // The hello answer takes 14 s to arrive (bytes every second), longer than open_timeout.
    for _ in 0..14 {
        s.run_for(secs(1));
        receiving(&mut s, c);
    }
    assert_eq!(slow_opens(&s), 0, "CONN-6: still opening, not a slow open");
    let mut body = vec![hello("c0"), subscribed("a", 0)];
    body.extend((1..=5).map(|n| msg("a", n)));
    s.frames(c, &body);
    assert_eq!(
        s.state(),
        State::Connected {
            transport: LongPoll
        }
    );
    assert_eq!(s.delivered("a"), vec![1, 2, 3, 4, 5]);
    assert_eq!(s.engine.cursor(), Some("a:5"), "the cursor advances");
}

#[test]
fn conn_6_bytes_extend_an_open_at_most_to_three_open_timeouts() {
    let mut s = only(LongPoll);
    s.connect();
    let c = s.last_open().conn;
    let started = s.now;
    s.opened(c);
    // Bytes keep coming but no hello ever completes (something trickles forever).
    let mut closed_at = None;
    for _ in 0..40 {
        s.run_for(secs(1));
        if slow_opens(&s) > 0 {
            closed_at = Some(s.now);
            break;
        }
        receiving(&mut s, c);
    }
    let closed_at = closed_at.expect("a slow open eventually");
    let took = closed_at - started;
    assert!(
        took >= secs(30) && took <= secs(31),
        "hard bound 3 x open_timeout: {took:?}"
    );
    assert!(s
        .transitions()
        .iter()
        .any(|(_, _, cause)| *cause == Cause::SlowOpen));
}

#[test]
fn conn_6_an_open_times_out_open_timeout_after_the_last_bytes() {
    let mut s = only(LongPoll);
    s.connect();
    let c = s.last_open().conn;
    s.opened(c);
    s.run_for(secs(6));
    receiving(&mut s, c);
    let last = s.now;
    s.step_until(10, |s| slow_opens(s) > 0);
    assert_eq!(s.now - last, secs(10), "open_timeout after the last bytes");
}

/// SSE-4 still works: a buffering proxy delivers headers and then nothing, and headers are
/// not bytes of the hello. (Comment lines are bytes: a proxy that trickles them gets the
/// CONN-6 extension, bounded at three open timeouts.)
#[test]
fn sse_4_buffering_proxy_headers_do_not_extend_the_open() {
    let mut s = only(Sse);
    s.connect();
    let c = s.last_open().conn;
    let started = s.now;
    s.opened(c);
    s.run_for(secs(5));
    s.opened(c);
    s.step_until(10, |s| slow_opens(s) > 0);
    assert_eq!(s.now - started, secs(10), "open_timeout from the start");
    // A proxy trickling comments forever: slow open at the hard bound.
    let mut s = only(Sse);
    s.connect();
    let c = s.last_open().conn;
    let started = s.now;
    s.opened(c);
    while slow_opens(&s) == 0 && s.now - started < secs(60) {
        s.run_for(secs(2));
        if slow_opens(&s) == 0 {
            s.ev(c, TransportEvent::SseBytes(b": keepalive\n".to_vec()));
        }
    }
    assert_eq!(s.now - started, secs(30), "3 x open_timeout");
}

#[test]
fn conn_4_receiving_on_a_stale_connection_is_ignored() {
    let mut s = Sim::default_sim();
    let c = s.connect_up();
    s.closed(c, Some(1006), "");
    let events = s.events.len();
    receiving(&mut s, c);
    assert_eq!(s.events.len(), events, "CONN-4: nothing happens");
    assert!(!s.events[events..]
        .iter()
        .any(|e| matches!(e, Event::StateChanged { .. })));
}
