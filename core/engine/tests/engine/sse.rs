//! Conformance tests for the incremental SSE parser (WHATWG event-stream interpretation).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tether_engine::sse::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Feeds `chunks` in order, stopping at the first error, then finishes the stream.
fn run_chunks<'a>(
    limits: SseLimits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<SseItem>, Option<SseError>) {
    let mut parser = SseParser::new(limits);
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(err) = parser.feed(chunk, &mut out) {
            return (out, Some(err));
        }
    }
    parser.finish(&mut out);
    (out, None)
}

fn whole(input: &[u8]) -> Vec<SseItem> {
    let (items, err) = run_chunks(SseLimits::default(), [input]);
    assert_eq!(err, None);
    items
}

fn byte_by_byte(limits: SseLimits, input: &[u8]) -> (Vec<SseItem>, Option<SseError>) {
    run_chunks(limits, input.chunks(1))
}

/// SplitMix64: a tiny deterministic generator for chunk sizes.
struct Chunker(u64);

impl Chunker {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Splits `input` into chunks of 1..=max_len bytes (some empty chunks too).
    fn split<'a>(&mut self, input: &'a [u8], max_len: usize) -> Vec<&'a [u8]> {
        let mut chunks = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = (self.next() % (max_len as u64 + 1)) as usize;
            let n = n.min(rest.len());
            let (head, tail) = rest.split_at(n);
            chunks.push(head);
            rest = tail;
        }
        chunks
    }
}

fn random_chunks(seed: u64, input: &[u8]) -> Vec<&[u8]> {
    Chunker(seed).split(input, 7)
}

/// Asserts `input` gives `expected` fed whole, byte by byte, and in 3 seeded random chunkings.
fn check(input: &[u8], expected: &[SseItem]) {
    let limits = SseLimits::default();
    let ctx = String::from_utf8_lossy(input).into_owned();
    assert_eq!(whole(input), expected, "whole: {ctx:?}");
    assert_eq!(
        byte_by_byte(limits, input),
        (expected.to_vec(), None),
        "byte-by-byte: {ctx:?}"
    );
    for seed in [1, 2, 3] {
        assert_eq!(
            run_chunks(limits, random_chunks(seed, input)),
            (expected.to_vec(), None),
            "seed {seed}: {ctx:?}"
        );
    }
}

fn ev(event_type: &str, data: &str, last_event_id: &str, id_set: bool) -> SseItem {
    SseItem::Event(SseEvent {
        event_type: event_type.into(),
        data: data.into(),
        last_event_id: last_event_id.into(),
        id_set,
    })
}

fn msg(data: &str) -> SseItem {
    ev("message", data, "", false)
}

fn small(max_line_bytes: usize, max_event_bytes: usize) -> SseLimits {
    SseLimits {
        max_line_bytes,
        max_event_bytes,
    }
}

// ---------------------------------------------------------------------------
// WHATWG-style vectors
// ---------------------------------------------------------------------------

#[test]
fn sse_whatwg_vectors_table() {
    use SseItem::{Comment, Retry};
    let vectors: Vec<(&[u8], Vec<SseItem>)> = vec![
        (b"data: a\n\n", vec![msg("a")]),
        (b"data: a\r\n\r\n", vec![msg("a")]),
        (b"data: a\r\r", vec![msg("a")]),
        (b"data: a\n\r\n", vec![msg("a")]),
        (b"data: a\rdata: b\r\n\n", vec![msg("a\nb")]),
        (b"data\n\n", vec![msg("")]),
        (b"data:\n\n", vec![msg("")]),
        (b"data\ndata\n\n", vec![msg("\n")]),
        (b"data:a\n\n", vec![msg("a")]),
        (b"data:  a \n\n", vec![msg(" a ")]),
        (b"data: a:b: c\n\n", vec![msg("a:b: c")]),
        (b"data: a\ndata: b\n\n", vec![msg("a\nb")]),
        (b"data: a\n\ndata: b\n\n", vec![msg("a"), msg("b")]),
        (b"data: a\n\n\n\n\n", vec![msg("a")]),
        (b"\n\n\ndata: a\n\n", vec![msg("a")]),
        (
            b"event: ping\ndata: x\n\n",
            vec![ev("ping", "x", "", false)],
        ),
        (
            b"event: a\nevent: b\ndata: x\n\n",
            vec![ev("b", "x", "", false)],
        ),
        (b"event: ping\n\ndata: x\n\n", vec![msg("x")]),
        (b"event:\ndata: x\n\n", vec![msg("x")]),
        (b": hello\ndata: x\n\n", vec![Comment, msg("x")]),
        (b":\n:\r\n:x\r", vec![Comment, Comment, Comment]),
        (b"data: a\n: c\ndata: b\n\n", vec![Comment, msg("a\nb")]),
        (b"foo: bar\ndata: x\nbaz\n\n", vec![msg("x")]),
        (b"Data: x\n\n", vec![]),
        (b" data: x\n\n", vec![]),
        (b"data : x\n\n", vec![]),
        (b"data: x\nid: 1\n\n", vec![ev("message", "x", "1", true)]),
        (
            b"id: 1\ndata: a\n\ndata: b\n\n",
            vec![
                ev("message", "a", "1", true),
                ev("message", "b", "1", false),
            ],
        ),
        (
            b"id: 1\ndata: a\n\nid\ndata: b\n\n",
            vec![ev("message", "a", "1", true), ev("message", "b", "", true)],
        ),
        (
            b"id: 1\ndata: a\n\nid: a\0b\ndata: b\n\n",
            vec![
                ev("message", "a", "1", true),
                ev("message", "b", "1", false),
            ],
        ),
        (
            b"id: 3\n\ndata: a\n\n",
            vec![ev("message", "a", "3", false)],
        ),
        (b"retry: 1000\n", vec![Retry(1000)]),
        (b"retry:007\r", vec![Retry(7)]),
        (
            b"retry: 10a\nretry: -1\nretry:\nretry\nretry: 99999999999999999999999\nretry: 5\n",
            vec![Retry(5)],
        ),
        (b"retry:  5\nretry: 5 \nretry: 1.5\n", vec![]),
        (b"data: a\nretry: 9\n\n", vec![Retry(9), msg("a")]),
        (b"\xEF\xBB\xBFdata: x\n\n", vec![msg("x")]),
        (b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n", vec![]),
        (b"\xEF\xBBdata: x\n\ndata: y\n\n", vec![msg("y")]),
        (b"data: x", vec![]),
        (b"data: x\n", vec![]),
        (b"data: x\r\n:c", vec![]),
        (b"data: \xFF\n\n", vec![msg("\u{FFFD}")]),
        (
            b"data: caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\n\n",
            vec![msg("caf\u{e9} \u{20ac} \u{1F600}")],
        ),
        (b"data: \xE2\x82\n\n", vec![msg("\u{FFFD}")]),
        (b"data: \xC3\x28\n\n", vec![msg("\u{FFFD}(")]),
        (
            b"data: \xED\xA0\x80\n\n",
            vec![msg("\u{FFFD}\u{FFFD}\u{FFFD}")],
        ),
        (b"data: a\0b\n\n", vec![msg("a\0b")]),
    ];
    assert!(vectors.len() >= 25);
    for (input, expected) in &vectors {
        check(input, expected);
    }
}

// ---------------------------------------------------------------------------
// SSE-1: line endings
// ---------------------------------------------------------------------------

#[test]
fn sse_1_line_endings_lf() {
    check(b"data: a\ndata: b\n\n", &[msg("a\nb")]);
}

#[test]
fn sse_1_line_endings_cr() {
    check(b"data: a\rdata: b\r\r", &[msg("a\nb")]);
}

#[test]
fn sse_1_line_endings_crlf() {
    check(b"data: a\r\ndata: b\r\n\r\n", &[msg("a\nb")]);
}

#[test]
fn sse_1_line_endings_mixed() {
    check(b"data: a\rdata: b\ndata: c\r\n\r", &[msg("a\nb\nc")]);
}

#[test]
fn sse_1_line_endings_cr_at_chunk_edge_then_lf_is_one_ending() {
    // If the LF were a second line ending, it would dispatch "a" alone.
    let chunks: [&[u8]; 2] = [b"data: a\r", b"\ndata: b\r\n\r\n"];
    assert_eq!(
        run_chunks(SseLimits::default(), chunks),
        (vec![msg("a\nb")], None)
    );
}

#[test]
fn sse_1_line_endings_cr_at_chunk_edge_empty_chunks_between() {
    let chunks: [&[u8]; 4] = [b"data: a\r", b"", b"", b"\ndata: b\r\n\r\n"];
    assert_eq!(
        run_chunks(SseLimits::default(), chunks),
        (vec![msg("a\nb")], None)
    );
}

#[test]
fn sse_1_line_endings_cr_at_chunk_edge_then_cr_dispatches() {
    let chunks: [&[u8]; 2] = [b"data: a\r", b"\r"];
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, &mut out).unwrap();
    }
    assert_eq!(out, vec![msg("a")]);
}

#[test]
fn sse_1_line_endings_cr_at_chunk_edge_then_text() {
    let chunks: [&[u8]; 3] = [b"data: a\r", b"data: b\r", b"\n\r\n"];
    assert_eq!(
        run_chunks(SseLimits::default(), chunks),
        (vec![msg("a\nb")], None)
    );
}

#[test]
fn sse_1_line_endings_line_is_processed_at_its_terminator() {
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    parser.feed(b":c", &mut out).unwrap();
    assert!(out.is_empty());
    parser.feed(b"\r", &mut out).unwrap();
    assert_eq!(out, vec![SseItem::Comment]);
}

// ---------------------------------------------------------------------------
// SSE-2: byte order mark
// ---------------------------------------------------------------------------

#[test]
fn sse_2_bom_skipped_at_stream_start() {
    check(b"\xEF\xBB\xBFdata: x\n\n", &[msg("x")]);
}

#[test]
fn sse_2_bom_split_across_chunks() {
    let chunks: [&[u8]; 4] = [b"\xEF", b"\xBB", b"\xBF", b"data: x\n\n"];
    assert_eq!(
        run_chunks(SseLimits::default(), chunks),
        (vec![msg("x")], None)
    );
    let chunks: [&[u8]; 2] = [b"\xEF\xBB", b"\xBFdata: x\n\n"];
    assert_eq!(
        run_chunks(SseLimits::default(), chunks),
        (vec![msg("x")], None)
    );
}

#[test]
fn sse_2_bom_skipped_only_once() {
    // The second BOM decodes to U+FEFF, making the field name "\u{FEFF}data".
    check(
        b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n",
        &[msg("y")],
    );
}

#[test]
fn sse_2_bom_not_skipped_after_stream_start() {
    check(b"\n\xEF\xBB\xBFdata: x\n\ndata: y\n\n", &[msg("y")]);
    let chunks: [&[u8]; 2] = [b":\n", b"\xEF\xBB\xBFdata: x\n\n"];
    assert_eq!(
        run_chunks(SseLimits::default(), chunks),
        (vec![SseItem::Comment], None)
    );
}

#[test]
fn sse_2_bom_partial_prefix_is_ordinary_bytes() {
    // EF BB then "d": the held bytes are line content (one U+FFFD), not dropped.
    check(b"\xEF\xBBdata: x\n\ndata: y\n\n", &[msg("y")]);
    // EF then ':': the line is "\u{FFFD}:", an unknown field, not a comment.
    check(b"\xEF:\n", &[]);
    // EF BB then LF: a line of its own.
    check(b"\xEF\xBB\ndata: y\n\n", &[msg("y")]);
}

#[test]
fn sse_2_bom_only_stream_yields_nothing() {
    check(b"\xEF\xBB\xBF", &[]);
    check(b"\xEF\xBB", &[]);
}

// ---------------------------------------------------------------------------
// SSE-3: comments
// ---------------------------------------------------------------------------

#[test]
fn sse_3_comments_one_item_per_comment_line() {
    check(
        b": a\n:b\r\n:\r",
        &[SseItem::Comment, SseItem::Comment, SseItem::Comment],
    );
}

#[test]
fn sse_3_comments_do_not_dispatch_or_touch_buffers() {
    check(
        b"event: t\ndata: a\n: heartbeat\ndata: b\n\n",
        &[SseItem::Comment, ev("t", "a\nb", "", false)],
    );
}

#[test]
fn sse_3_comments_heartbeat_stream() {
    let input = b":\n".repeat(1000);
    let (items, err) = byte_by_byte(SseLimits::default(), &input);
    assert_eq!(err, None);
    assert_eq!(items.len(), 1000);
    assert!(items.iter().all(|i| *i == SseItem::Comment));
}

#[test]
fn sse_3_comments_unterminated_comment_is_not_emitted() {
    check(b": partial", &[]);
}

// ---------------------------------------------------------------------------
// SSE-4: fields
// ---------------------------------------------------------------------------

#[test]
fn sse_4_fields_data_multi_line() {
    check(b"data: 1\ndata: 2\ndata: 3\n\n", &[msg("1\n2\n3")]);
    check(b"data:\ndata\ndata: x\n\n", &[msg("\n\nx")]);
}

#[test]
fn sse_4_fields_data_only_one_trailing_newline_stripped() {
    check(b"data: x\ndata\n\n", &[msg("x\n")]);
}

#[test]
fn sse_4_fields_event_type() {
    check(
        b"event: update\ndata: x\n\n",
        &[ev("update", "x", "", false)],
    );
    check(b"data: x\nevent: late\n\n", &[ev("late", "x", "", false)]);
}

#[test]
fn sse_4_fields_event_type_resets_after_each_block() {
    check(
        b"event: a\ndata: 1\n\ndata: 2\n\nevent: b\n\ndata: 3\n\n",
        &[ev("a", "1", "", false), msg("2"), msg("3")],
    );
}

#[test]
fn sse_4_fields_unknown_field_ignored() {
    check(b"foo: bar\ndata: x\nevent2: y\n\n", &[msg("x")]);
}

#[test]
fn sse_4_fields_no_colon_is_name_with_empty_value() {
    check(b"data\n\n", &[msg("")]);
    check(b"event: t\nevent\ndata: x\n\n", &[msg("x")]);
    check(b"id: 5\nid\ndata: x\n\n", &[ev("message", "x", "", true)]);
}

#[test]
fn sse_4_fields_space_stripping_removes_exactly_one_space() {
    check(b"data:x\n\n", &[msg("x")]);
    check(b"data: x\n\n", &[msg("x")]);
    check(b"data:  x\n\n", &[msg(" x")]);
    check(b"data:\tx\n\n", &[msg("\tx")]);
    check(b"data: x \n\n", &[msg("x ")]);
    check(b"event:  t\ndata: x\n\n", &[ev(" t", "x", "", false)]);
}

#[test]
fn sse_4_fields_split_at_first_colon() {
    check(b"data: a: b:c\n\n", &[msg("a: b:c")]);
    check(b"data::\n\n", &[msg(":")]);
}

#[test]
fn sse_4_fields_names_are_exact() {
    check(b"DATA: x\n\n data: x\n\ndata : x\n\ndata\t: x\n\n", &[]);
}

#[test]
fn sse_4_fields_empty_data_block_dispatches_nothing() {
    check(b"event: t\n\n\n", &[]);
}

// ---------------------------------------------------------------------------
// SSE-5: id
// ---------------------------------------------------------------------------

#[test]
fn sse_5_id_sets_last_event_id() {
    check(b"id: 42\ndata: x\n\n", &[ev("message", "x", "42", true)]);
    check(
        b"id:  42 \ndata: x\n\n",
        &[ev("message", "x", " 42 ", true)],
    );
}

#[test]
fn sse_5_id_nul_ignored() {
    check(
        b"id: 1\ndata: a\n\nid: 2\0\ndata: b\n\nid: \0\ndata: c\n\n",
        &[
            ev("message", "a", "1", true),
            ev("message", "b", "1", false),
            ev("message", "c", "1", false),
        ],
    );
}

#[test]
fn sse_5_id_persists_across_events() {
    check(
        b"id: 7\ndata: a\n\ndata: b\n\nevent: t\ndata: c\n\n",
        &[
            ev("message", "a", "7", true),
            ev("message", "b", "7", false),
            ev("t", "c", "7", false),
        ],
    );
}

/// The parser follows WHATWG: an empty `id:` resets the last event ID, reported as an event
/// with `id_set` and an empty `last_event_id`. The engine tells that apart from "no id" and
/// keeps its resume cursor (SSE-5 b, sse_engine.rs).
#[test]
fn sse_5_id_empty_id_resets() {
    check(
        b"id: 7\ndata: a\n\nid:\ndata: b\n\ndata: c\n\n",
        &[
            ev("message", "a", "7", true),
            ev("message", "b", "", true),
            ev("message", "c", "", false),
        ],
    );
}

/// The parser knows nothing of frames: an event whose data is not a valid frame reports its
/// id like any other; the engine ignores it with the frame (SSE-5 a).
#[test]
fn sse_5_id_reported_whatever_the_data() {
    check(
        b"id: x1
data: {oops

id: x2
data: {\"type\":\"future\"}

",
        &[
            ev("message", "{oops", "x1", true),
            ev("message", "{\"type\":\"future\"}", "x2", true),
        ],
    );
}

#[test]
fn sse_5_id_in_data_less_block_carries_over() {
    // The buffer is set even when the block dispatches nothing.
    check(b"id: 3\n\ndata: a\n\n", &[ev("message", "a", "3", false)]);
}

#[test]
fn sse_5_id_last_event_id_accessor_tracks_dispatches() {
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    assert_eq!(parser.last_event_id(), "");
    parser.feed(b"id: 1\n", &mut out).unwrap();
    assert_eq!(
        parser.last_event_id(),
        "",
        "only committed at the blank line"
    );
    parser.feed(b"\n", &mut out).unwrap();
    assert_eq!(parser.last_event_id(), "1");
    parser.feed(b"id: 2\ndata: x", &mut out).unwrap();
    parser.finish(&mut out);
    assert!(out.is_empty());
    assert_eq!(
        parser.last_event_id(),
        "1",
        "unfinished block does not commit"
    );
}

#[test]
fn sse_5_id_invalid_utf8_replaced() {
    check(
        b"id: \xFF1\ndata: x\n\n",
        &[ev("message", "x", "\u{FFFD}1", true)],
    );
}

// ---------------------------------------------------------------------------
// SSE-6: retry
// ---------------------------------------------------------------------------

#[test]
fn sse_6_retry_digits_only() {
    check(b"retry: 3000\n", &[SseItem::Retry(3000)]);
    check(b"retry:0\n", &[SseItem::Retry(0)]);
    check(b"retry: 0042\n", &[SseItem::Retry(42)]);
    check(
        b"retry: 18446744073709551615\n",
        &[SseItem::Retry(u64::MAX)],
    );
}

#[test]
fn sse_6_retry_bogus_values_ignored() {
    for value in [
        &b"10a"[..],
        b"-1",
        b"",
        b"99999999999999999999999",
        b"18446744073709551616",
        b"+1",
        b"1.5",
        b"1 ",
        b" 1",
        b"\xEF\xBC\x91", // FULLWIDTH DIGIT ONE
        b"1\0",
    ] {
        let mut input = b"retry: ".to_vec();
        input.extend_from_slice(value);
        input.extend_from_slice(b"\ndata: x\n\n");
        check(&input, &[msg("x")]);
    }
    check(b"retry\n", &[]);
}

#[test]
fn sse_6_retry_emitted_immediately_not_at_dispatch() {
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    parser.feed(b"data: a\nretry: 5\n", &mut out).unwrap();
    assert_eq!(out, vec![SseItem::Retry(5)]);
    parser.feed(b"\n", &mut out).unwrap();
    assert_eq!(out, vec![SseItem::Retry(5), msg("a")]);
}

// ---------------------------------------------------------------------------
// SSE-7: end of stream
// ---------------------------------------------------------------------------

#[test]
fn sse_7_eof_unfinished_event_discarded() {
    check(b"data: a\n\ndata: b\n", &[msg("a")]);
    check(b"data: a\n\ndata: b\r", &[msg("a")]);
    check(b"data: a\n\nevent: t\ndata: b\r\n", &[msg("a")]);
}

#[test]
fn sse_7_eof_pending_line_discarded() {
    check(b"data: a\n\ndata: b", &[msg("a")]);
    check(b"retry: 100", &[]);
    check(b":comment", &[]);
}

#[test]
fn sse_7_eof_finish_emits_nothing_and_rearms_for_next_stream() {
    let mut parser = SseParser::default();
    let mut out = Vec::new();
    parser.feed(b"event: t\ndata: a\ndata", &mut out).unwrap();
    parser.finish(&mut out);
    assert!(out.is_empty());
    // Nothing of the discarded block leaks into the next stream.
    parser.feed(b"\xEF\xBB\xBFdata: b\n\n", &mut out).unwrap();
    assert_eq!(out, vec![msg("b")]);
}

// ---------------------------------------------------------------------------
// SSE-8: UTF-8 decoding
// ---------------------------------------------------------------------------

#[test]
fn sse_8_utf8_invalid_replaced_with_fffd() {
    check(b"data: a\xFFb\n\n", &[msg("a\u{FFFD}b")]);
    check(b"data: \x80\x80\n\n", &[msg("\u{FFFD}\u{FFFD}")]);
    check(b"data: \xC0\xAF\n\n", &[msg("\u{FFFD}\u{FFFD}")]);
    check(
        b"data: \xF4\x90\x80\x80\n\n",
        &[msg("\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}")],
    );
    check(
        b"event: \xFE\ndata: x\n\n",
        &[ev("\u{FFFD}", "x", "", false)],
    );
}

#[test]
fn sse_8_utf8_truncated_sequence_at_line_end() {
    // A maximal subpart gets exactly one U+FFFD; the line ending is not swallowed.
    check(b"data: \xF0\x9F\x98\n\n", &[msg("\u{FFFD}")]);
    check(b"data: \xE2\x82\rdata: z\r\r", &[msg("\u{FFFD}\nz")]);
}

#[test]
fn sse_8_utf8_multibyte_split_across_chunks() {
    let input = "data: h\u{e9}llo \u{20ac}\u{1F600}\u{4E16}\n\n".as_bytes();
    let expected = vec![msg("h\u{e9}llo \u{20ac}\u{1F600}\u{4E16}")];
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        assert_eq!(
            run_chunks(SseLimits::default(), [a, b]),
            (expected.clone(), None),
            "split at {split}"
        );
    }
    check(input, &expected);
}

#[test]
fn sse_8_utf8_invalid_bytes_in_field_name_make_it_unknown() {
    check(b"dat\xE1: x\n\nd\xFFata: y\n\n", &[]);
}

// ---------------------------------------------------------------------------
// LIMIT-3: hostile sizes
// ---------------------------------------------------------------------------

#[test]
fn limit_3_line_too_long_is_an_error() {
    let limits = small(16, 1024);
    let mut input = b"data: ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 100));
    let expected_err = Some(SseError::LineTooLong { limit: 16 });
    assert_eq!(run_chunks(limits, [&input[..]]), (vec![], expected_err));
    assert_eq!(byte_by_byte(limits, &input), (vec![], expected_err));
    // Also when the terminator is in the same chunk: the limit is on lines, not on chunks.
    input.extend_from_slice(b"\n\n");
    assert_eq!(run_chunks(limits, [&input[..]]), (vec![], expected_err));
}

#[test]
fn limit_3_line_exactly_at_limit_is_accepted() {
    let limits = small(8, 1024);
    let (items, err) = run_chunks(limits, [&b"data: ab\n\ndata: abc\n\n"[..]]);
    assert_eq!(items, vec![msg("ab")]);
    assert_eq!(err, Some(SseError::LineTooLong { limit: 8 }));
}

#[test]
fn limit_3_line_too_long_bounded_memory() {
    let limit = 1024;
    let chunk_len = 100;
    let mut parser = SseParser::new(small(limit, 1 << 20));
    let mut out = Vec::new();
    let chunk = vec![b'a'; chunk_len];
    let mut fed = 0;
    let err = loop {
        match parser.feed(&chunk, &mut out) {
            Ok(()) => fed += chunk_len,
            Err(err) => break err,
        }
        assert!(parser.line_capacity() <= limit + chunk_len);
        assert!(
            fed <= limit,
            "error not raised once the line passed the limit"
        );
    };
    assert_eq!(err, SseError::LineTooLong { limit });
    assert_eq!(err.code(), "sse_line_too_long");
    // The buffer is released and the parser is poisoned.
    assert_eq!(parser.line_capacity(), 0);
    assert_eq!(parser.error(), Some(err));
    assert_eq!(parser.feed(b"\n\ndata: x\n\n", &mut out), Err(err));
    parser.finish(&mut out);
    assert!(out.is_empty());
}

#[test]
fn limit_3_poisoned_parser_repeats_the_error() {
    let mut parser = SseParser::new(small(4, 1024));
    let mut out = Vec::new();
    let err = parser.feed(b":\ndata: toolong\n", &mut out).unwrap_err();
    assert_eq!(out, vec![SseItem::Comment]);
    for _ in 0..3 {
        assert_eq!(parser.feed(b":\n", &mut out), Err(err));
        assert_eq!(parser.feed(b"", &mut out), Err(err));
    }
    assert_eq!(out, vec![SseItem::Comment]);
}

#[test]
fn limit_3_event_too_large() {
    let limits = small(1 << 20, 10);
    // Data buffer "12345\n1234\n" is 11 bytes > 10.
    let input = b"data: 12345\ndata: 1234\n\n";
    let expected = (vec![], Some(SseError::EventTooLarge { limit: 10 }));
    assert_eq!(run_chunks(limits, [&input[..]]), expected);
    assert_eq!(byte_by_byte(limits, input), expected);
    // The buffer (one '\n' per data line) of exactly the limit is fine.
    let (items, err) = run_chunks(limits, [&b"data: 1234\ndata: 1234\n\n"[..]]);
    assert_eq!((items, err), (vec![msg("1234\n1234")], None));
    // Limits are per event: many events at the limit are fine.
    let input = b"data: 123456789\n\n".repeat(100);
    let (items, err) = byte_by_byte(limits, &input);
    assert_eq!(err, None);
    assert_eq!(items.len(), 100);
}

#[test]
fn limit_3_event_too_large_bounded_memory() {
    let limit = 4096;
    let mut parser = SseParser::new(small(1 << 20, limit));
    let mut out = Vec::new();
    let line = b"data: 0123456789abcdef0123456789abcdef\n";
    let err = loop {
        match parser.feed(line, &mut out) {
            Ok(()) => assert!(parser.data_capacity() <= limit),
            Err(err) => break err,
        }
    };
    assert_eq!(err, SseError::EventTooLarge { limit });
    assert_eq!(err.code(), "sse_event_too_large");
    assert_eq!(parser.data_capacity(), 0);
    assert_eq!(parser.feed(b"\n", &mut out), Err(err));
    assert!(out.is_empty());
}

#[test]
fn limit_3_event_limit_counts_decoded_bytes() {
    // Each invalid byte decodes to U+FFFD (3 bytes): 4 bytes in, 12 + 1 out.
    let limits = small(1024, 12);
    let (items, err) = run_chunks(limits, [&b"data:\xFF\xFF\xFF\xFF\n\n"[..]]);
    assert_eq!(items, vec![]);
    assert_eq!(err, Some(SseError::EventTooLarge { limit: 12 }));
}

#[test]
fn limit_3_defaults_and_error_codes() {
    let limits = SseLimits::default();
    assert_eq!(limits.max_line_bytes, 1 << 20);
    assert_eq!(limits.max_event_bytes, 1 << 20);
    assert_eq!(SseParser::default().limits(), limits);
    let a = SseError::LineTooLong { limit: 1 };
    let b = SseError::EventTooLarge { limit: 2 };
    assert_eq!(a.code(), "sse_line_too_long");
    assert_eq!(b.code(), "sse_event_too_large");
    assert!(a.to_string().contains('1'));
    assert!(b.to_string().contains('2'));
}

// ---------------------------------------------------------------------------
// SSE-9: linear time, chunking invariance
// ---------------------------------------------------------------------------

/// Generous: a quadratic parser needs hours on these inputs, a linear one well under a second.
const TIME_BUDGET: Duration = Duration::from_secs(30);

/// Fails early (instead of hanging for hours) once a run is over budget.
fn within_budget(step: usize, start: Instant) {
    if step & 0xFFFF == 0 {
        let elapsed = start.elapsed();
        assert!(
            elapsed < TIME_BUDGET,
            "over budget after {step} steps: {elapsed:?}"
        );
    }
}

#[test]
fn sse_9_linear_byte_by_byte_2mb_of_events() {
    let block = b"id: 1\nevent: tick\ndata: 0123456789abcdefghijklmnopqrstuvwxyz\n: hb\n\n";
    let input = block.repeat((2 << 20) / block.len() + 1);
    let limits = small(4096, 4096);
    let mut parser = SseParser::new(limits);
    let mut out = Vec::new();
    let start = Instant::now();
    for (i, byte) in input.chunks(1).enumerate() {
        parser.feed(byte, &mut out).unwrap();
        assert!(parser.line_capacity() <= limits.max_line_bytes + 1);
        assert!(parser.data_capacity() <= limits.max_event_bytes);
        within_budget(i, start);
    }
    parser.finish(&mut out);
    assert!(start.elapsed() < TIME_BUDGET, "took {:?}", start.elapsed());
    let events = out
        .iter()
        .filter(|i| matches!(i, SseItem::Event(_)))
        .count();
    assert_eq!(events, input.len() / block.len());
    assert_eq!(out.len(), 2 * events);
}

#[test]
fn sse_9_linear_single_2mb_line_byte_by_byte() {
    // One huge line: appending must be amortised and line-end scanning must
    // only look at new bytes.
    let len = 2 << 20;
    let limits = small(4 << 20, 4 << 20);
    let mut parser = SseParser::new(limits);
    let mut out = Vec::new();
    let start = Instant::now();
    parser.feed(b"data: ", &mut out).unwrap();
    let payload = vec![b'x'; len];
    for (i, byte) in payload.chunks(1).enumerate() {
        parser.feed(byte, &mut out).unwrap();
        assert!(parser.line_capacity() <= limits.max_line_bytes + 1);
        within_budget(i, start);
    }
    parser.feed(b"\n\n", &mut out).unwrap();
    assert!(start.elapsed() < TIME_BUDGET, "took {:?}", start.elapsed());
    assert_eq!(out.len(), 1);
    match &out[0] {
        SseItem::Event(event) => assert_eq!(event.data.len(), len),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn sse_9_linear_many_data_lines_one_event() {
    let line = b"data: 0123456789\n";
    let input = line.repeat((2 << 20) / line.len());
    let limits = small(1024, 4 << 20);
    let mut parser = SseParser::new(limits);
    let mut out = Vec::new();
    let start = Instant::now();
    for (i, chunk) in input.chunks(3).enumerate() {
        parser.feed(chunk, &mut out).unwrap();
        within_budget(i, start);
        assert!(parser.data_capacity() <= limits.max_event_bytes);
        assert!(parser.line_capacity() <= limits.max_line_bytes + 3);
    }
    parser.feed(b"\n", &mut out).unwrap();
    assert!(start.elapsed() < TIME_BUDGET, "took {:?}", start.elapsed());
    assert_eq!(out.len(), 1);
}

#[test]
fn sse_9_linear_capacity_bounded_under_random_chunking() {
    let limit = 2048;
    let mut input = Vec::new();
    for i in 0..200 {
        input.extend_from_slice(format!("data: {}\n", "y".repeat(i * 7 % 1500)).as_bytes());
        if i % 3 == 0 {
            input.extend_from_slice(b"\r\n");
        }
    }
    for seed in 0..5 {
        let mut chunker = Chunker(seed);
        let chunks = chunker.split(&input, 700);
        let max_chunk = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut parser = SseParser::new(small(limit, 1 << 20));
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out).unwrap();
            assert!(parser.line_capacity() <= limit + max_chunk);
        }
    }
}

/// Pieces random streams are built from: every syntactic feature plus
/// bytes that stress decoding and chunk boundaries.
const TOKENS: &[&[u8]] = &[
    b"data: x",
    b"data:",
    b"data",
    b"data: ",
    b"event: t",
    b"event:",
    b"id: 1",
    b"id: 22",
    b"id",
    b"id: \0",
    b"retry: 10",
    b"retry: 1a",
    b"retry: 99999999999999999999999",
    b": c",
    b":",
    b"foo: bar",
    b" ",
    b"a",
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b"\xEF\xBB\xBF",
    b"\xEF\xBB",
    b"\xC3\xA9",
    b"\xE2\x82\xAC",
    b"\xF0\x9F\x98\x80",
    b"\xFF",
    b"\xC3",
    b"\xF0\x9F",
    b"\x80",
    b"\0",
];

fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|tokens| tokens.concat())
}

fn split_at_points<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points
        .iter()
        .map(|p| {
            if input.is_empty() {
                0
            } else {
                p % (input.len() + 1)
            }
        })
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut prev = 0;
    for cut in cuts {
        chunks.push(&input[prev..cut]);
        prev = cut;
    }
    chunks.push(&input[prev..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sse_9_chunking_never_changes_output(
        input in stream_strategy(),
        points in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let limits = SseLimits::default();
        let reference = run_chunks(limits, [&input[..]]);
        prop_assert_eq!(reference.1, None);
        prop_assert_eq!(&byte_by_byte(limits, &input), &reference);
        prop_assert_eq!(&run_chunks(limits, split_at_points(&input, &points)), &reference);
    }

    #[test]
    fn sse_9_chunking_never_changes_output_or_error_under_tight_limits(
        input in stream_strategy(),
        points in prop::collection::vec(any::<usize>(), 0..20),
        max_line_bytes in 0usize..24,
        max_event_bytes in 0usize..24,
    ) {
        let limits = small(max_line_bytes, max_event_bytes);
        let reference = run_chunks(limits, [&input[..]]);
        prop_assert_eq!(&byte_by_byte(limits, &input), &reference);
        prop_assert_eq!(&run_chunks(limits, split_at_points(&input, &points)), &reference);
    }

    #[test]
    fn sse_9_arbitrary_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..512),
        points in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let limits = small(64, 64);
        let reference = run_chunks(limits, [&input[..]]);
        prop_assert_eq!(&run_chunks(limits, split_at_points(&input, &points)), &reference);
    }
}
