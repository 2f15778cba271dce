//! SSE-* at the engine level (the parser itself is tested in sse.rs beside it).

use crate::support;

use support::*;
use tether_engine::{ErrorCode, State, TransportEvent};

fn sse_sim() -> (Sim, tether_engine::ConnId) {
    let mut cfg = config();
    cfg.transports = vec![Sse];
    let mut s = Sim::new(cfg);
    s.subscribe("a");
    s.connect();
    let c = s.last_open().conn;
    s.opened(c);
    (s, c)
}

fn feed(s: &mut Sim, c: tether_engine::ConnId, bytes: &[u8]) {
    s.ev(c, TransportEvent::SseBytes(bytes.to_vec()));
}

const HELLO: &str = "data: {\"type\":\"hello\",\"v\":1,\"cursor\":\"h\"}";
const SUB: &str = "data: {\"type\":\"subscribed\",\"channel\":\"a\",\"seq\":0}";

fn msg_line(seq: u64) -> String {
    format!("data: {{\"type\":\"msg\",\"channel\":\"a\",\"seq\":{seq},\"data\":{seq}}}")
}

#[test]
fn sse_1_any_line_ending_and_split_crlf() {
    let (mut s, c) = sse_sim();
    feed(&mut s, c, format!("{HELLO}\r\n\r\n{SUB}\r\r").as_bytes());
    feed(&mut s, c, format!("{}\r", msg_line(1)).as_bytes());
    feed(&mut s, c, b"\n\r");
    feed(&mut s, c, b"\n");
    assert_eq!(s.delivered("a"), vec![1]);
}

#[test]
fn sse_2_leading_bom_skipped() {
    let (mut s, c) = sse_sim();
    feed(&mut s, c, &[0xEF, 0xBB]);
    feed(&mut s, c, &[0xBF]);
    feed(&mut s, c, format!("{HELLO}\n\n").as_bytes());
    assert!(s.state().is_up());
}

#[test]
fn sse_3_comments_are_liveness() {
    let (mut s, c) = sse_sim();
    feed(&mut s, c, format!("{HELLO}\n\n").as_bytes());
    for _ in 0..20 {
        s.run_for(secs(20));
        feed(&mut s, c, b": keepalive\n");
    }
    assert!(s.state().is_up());
    assert!(s.errors().is_empty());
}

#[test]
fn sse_4_fields_and_buffering_proxy() {
    let (mut s, c) = sse_sim();
    feed(
        &mut s,
        c,
        format!(
            "event: tether\nfoo: bar\n{HELLO}\n\n{SUB}\n\ndata:{}\n\n",
            &msg_line(1)[6..]
        )
        .as_bytes(),
    );
    assert_eq!(s.delivered("a"), vec![1]);
    // Headers but no hello within open_timeout: a buffering proxy, one strike (FALLBACK-2b).
    let mut cfg = config();
    cfg.transports = vec![Sse, LongPoll];
    let mut s = Sim::new(cfg);
    s.connect();
    for _ in 0..2 {
        let c = s.last_open().conn;
        s.opened(c);
        s.step_until(10, |s| s.last_open().conn != c);
    }
    assert_eq!(s.last_open().transport, LongPoll);
}

#[test]
fn sse_5_id_is_the_resume_cursor_and_nul_ignored() {
    let (mut s, c) = sse_sim();
    feed(
        &mut s,
        c,
        format!("{HELLO}\n\n{SUB}\n\nid: m1\n{}\n\n", msg_line(1)).as_bytes(),
    );
    assert_eq!(s.engine.cursor(), Some("m1"));
    feed(
        &mut s,
        c,
        format!("id: bad\0id\n{}\n\n", msg_line(2)).as_bytes(),
    );
    assert_eq!(s.delivered("a"), vec![1, 2]);
    assert_eq!(s.engine.cursor(), Some("m1"), "an id with NUL is ignored");
    s.closed(c, None, "");
    assert_eq!(s.step_to_open().cursor.as_deref(), Some("m1"));
}

#[test]
fn sse_6_retry_raises_the_floor_for_this_connection() {
    for seed in 0..20 {
        let mut cfg = config();
        cfg.transports = vec![Sse];
        cfg.seed = seed;
        let mut s = Sim::new(cfg);
        s.connect();
        let c = s.last_open().conn;
        s.opened(c);
        feed(&mut s, c, format!("retry: 5000\n{HELLO}\n\n").as_bytes());
        s.closed(c, None, "");
        assert!(s.last_delay() >= secs(5), "retry raises the delay");
        // A new connection without retry: back to normal.
        let c = s.step_to_open().conn;
        s.opened(c);
        feed(&mut s, c, format!("retry: 5s\n{HELLO}\n\n").as_bytes());
        s.closed(c, None, "");
        assert!(s.last_delay() <= secs(1), "non-digit retry ignored");
        // Clamped to the cap.
        let c = s.step_to_open().conn;
        s.opened(c);
        feed(
            &mut s,
            c,
            format!("retry: 99999999\n{HELLO}\n\n").as_bytes(),
        );
        s.closed(c, None, "");
        assert_eq!(s.last_delay(), secs(30));
    }
}

#[test]
fn sse_7_unfinished_event_discarded() {
    let (mut s, c) = sse_sim();
    feed(
        &mut s,
        c,
        format!("{HELLO}\n\n{SUB}\n\n{}\n", msg_line(1)).as_bytes(),
    );
    s.closed(c, None, "eof");
    assert!(s.delivered("a").is_empty());
}

#[test]
fn sse_8_invalid_utf8_replaced_never_an_error() {
    let (mut s, c) = sse_sim();
    feed(&mut s, c, format!("{HELLO}\n\n{SUB}\n\n").as_bytes());
    let mut ev = b"data: {\"type\":\"msg\",\"channel\":\"a\",\"seq\":1,\"data\":\"".to_vec();
    ev.extend_from_slice(&[0xff, 0xfe]);
    ev.extend_from_slice(b"\"}\n\n");
    feed(&mut s, c, &ev);
    assert_eq!(s.delivered("a"), vec![1]);
    assert!(!s.errors().contains(&ErrorCode::InvalidUtf8));
}

#[test]
fn sse_9_chunking_does_not_change_the_outcome() {
    let stream = format!(
        "{HELLO}\r\n\r\n{SUB}\n\nid: x1\n{}\n\n: c\n{}\n\n",
        msg_line(1),
        msg_line(2)
    );
    let bytes = stream.as_bytes();
    let whole = {
        let (mut s, c) = sse_sim();
        feed(&mut s, c, bytes);
        (
            s.delivered("a"),
            s.engine.cursor().map(str::to_string),
            s.state(),
        )
    };
    for size in [1, 2, 3, 7, 64] {
        let (mut s, c) = sse_sim();
        for chunk in bytes.chunks(size) {
            feed(&mut s, c, chunk);
        }
        assert_eq!(
            (
                s.delivered("a"),
                s.engine.cursor().map(str::to_string),
                s.state()
            ),
            whole,
            "chunk size {size}"
        );
    }
    assert_eq!(whole.0, vec![1, 2]);
    assert_eq!(whole.2, State::Connected { transport: Sse });
}

fn msg_with_id(id: &str, seq: u64) -> String {
    format!("id: {id}\n{}\n\n", msg_line(seq))
}

#[test]
fn sse_5_id_of_an_event_that_is_not_a_valid_frame_leaves_the_cursor() {
    let (mut s, c) = sse_sim();
    feed(
        &mut s,
        c,
        format!("{HELLO}\n\n{SUB}\n\n{}", msg_with_id("m1", 1)).as_bytes(),
    );
    assert_eq!(s.engine.cursor(), Some("m1"));
    // Malformed (a mistyped seq, then not JSON at all), of an unknown type, frames without a
    // position, and a block without data: none of their ids is a position the client has.
    feed(
        &mut s,
        c,
        b"id: bad\ndata: {\"type\":\"msg\",\"channel\":\"a\",\"seq\":\"two\",\"data\":2}\n\n\
          id: not-json\ndata: {oops\n\n\
          id: future\ndata: {\"type\":\"future_frame\",\"seq\":9}\n\n\
          id: pong\ndata: {\"type\":\"pong\"}\n\n\
          id: ack\ndata: {\"type\":\"ack\",\"id\":\"unknown\"}\n\n\
          id: dataless\n\n",
    );
    assert_eq!(s.count_errors(ErrorCode::FrameMalformed), 2);
    assert_eq!(s.engine.cursor(), Some("m1"));
    // The WHATWG last event ID is now "dataless" and persists into the next event, but only
    // an event's own `id:` is offered to its frame.
    feed(&mut s, c, format!("{}\n\n", msg_line(2)).as_bytes());
    assert_eq!(s.delivered("a"), vec![1, 2]);
    assert_eq!(s.engine.cursor(), Some("m1"));
    s.closed(c, None, "eof");
    assert_eq!(
        s.step_to_open().cursor.as_deref(),
        Some("m1"),
        "the reconnect resumes after the last frame processed"
    );
}

#[test]
fn sse_5_empty_id_never_clears_the_cursor() {
    let (mut s, c) = sse_sim();
    feed(
        &mut s,
        c,
        format!("{HELLO}\n\n{SUB}\n\n{}", msg_with_id("m1", 1)).as_bytes(),
    );
    // `id:` and a bare `id` reset the WHATWG last event ID; the messages are delivered and
    // the resume cursor stays.
    feed(
        &mut s,
        c,
        format!("id:\n{}\n\nid\n{}\n\n", msg_line(2), msg_line(3)).as_bytes(),
    );
    assert_eq!(s.delivered("a"), vec![1, 2, 3]);
    assert_eq!(s.engine.cursor(), Some("m1"));
    s.closed(c, None, "eof");
    let open = s.step_to_open();
    assert_eq!(
        open.cursor.as_deref(),
        Some("m1"),
        "Last-Event-ID is still sent: the history after m1 is replayed, not lost"
    );
    // A non-empty id on a processed frame is taken again.
    s.opened(open.conn);
    feed(
        &mut s,
        open.conn,
        format!("{HELLO}\n\n{}", msg_with_id("m4", 4)).as_bytes(),
    );
    assert_eq!(s.engine.cursor(), Some("m4"));
}

#[test]
fn resume_2_sse_ids_of_duplicates_and_held_messages() {
    let (mut s, c) = sse_sim();
    feed(
        &mut s,
        c,
        format!(
            "{HELLO}\n\n{SUB}\n\n{}{}",
            msg_with_id("m1", 1),
            msg_with_id("m2", 2)
        )
        .as_bytes(),
    );
    assert_eq!(s.engine.cursor(), Some("m2"));
    // A replayed duplicate carries an older position: the cursor does not move back.
    feed(&mut s, c, msg_with_id("m1", 1).as_bytes());
    assert_eq!(s.engine.cursor(), Some("m2"));
    // After a gap the message is held with its id; the cursor moves when it is delivered.
    feed(&mut s, c, msg_with_id("m4", 4).as_bytes());
    assert_eq!(s.engine.cursor(), Some("m2"));
    feed(&mut s, c, msg_with_id("m3", 3).as_bytes());
    assert_eq!(s.delivered("a"), vec![1, 2, 3, 4]);
    assert_eq!(s.engine.cursor(), Some("m4"));
    // A frame's own cursor wins over the event's id.
    feed(
        &mut s,
        c,
        b"id: from-id\ndata: {\"type\":\"msg\",\"channel\":\"a\",\"seq\":5,\"cursor\":\"from-frame\",\"data\":5}\n\n",
    );
    assert_eq!(s.engine.cursor(), Some("from-frame"));
}
