//! The body of every fuzz target, as plain functions: `fuzz_targets/*.rs` hand libFuzzer's
//! input to them, and `cargo test` replays the committed corpora through them on stable.

pub mod sse_parser {
    //! The SSE parser (SSE-1..9, LIMIT-3): arbitrary bytes, fed whole, in chunks and byte by
    //! byte, must read exactly as the naive whole-input oracle reads them, and no buffer may
    //! grow past its limit.
    //!
    //! Input: one control byte, then the stream. Control bits 0-3: chunk size - 1;
    //! bits 4-5: limits (1 MiB, 8, 32 or 128 bytes); bit 6: the event limit is half the line limit.

    use crate::sse_ref;
    use tether_engine::sse::{SseItem, SseLimits, SseParser};

    fn limits(ctrl: u8) -> SseLimits {
        let line = [1 << 20, 8, 32, 128][usize::from((ctrl >> 4) & 3)];
        let event = if ctrl & 0x40 != 0 { line / 2 } else { line };
        SseLimits {
            max_line_bytes: line,
            max_event_bytes: event,
        }
    }

    /// Feed `stream` in chunks of `chunk` bytes; check the buffers after every feed.
    fn read(stream: &[u8], limits: SseLimits, chunk: usize) -> sse_ref::Reading {
        let mut p = SseParser::new(limits);
        let mut items: Vec<SseItem> = Vec::new();
        let mut error = None;
        for piece in stream.chunks(chunk.max(1)) {
            let r = p.feed(piece, &mut items);
            assert!(
                p.line_capacity() <= limits.max_line_bytes,
                "LIMIT-3: line buffer {} > {}",
                p.line_capacity(),
                limits.max_line_bytes
            );
            assert!(
                p.data_capacity() <= limits.max_event_bytes,
                "LIMIT-3: data buffer {} > {}",
                p.data_capacity(),
                limits.max_event_bytes
            );
            if let Err(e) = r {
                error = Some(e);
                // A poisoned parser returns the same error and adds nothing.
                let n = items.len();
                assert_eq!(p.feed(b"data: x\n\n", &mut items), Err(e));
                assert_eq!(items.len(), n);
                break;
            }
        }
        let n = items.len();
        p.finish(&mut items);
        assert_eq!(items.len(), n, "SSE-7: finish dispatches nothing");
        sse_ref::Reading {
            items,
            error,
            last_event_id: p.last_event_id().to_owned(),
        }
    }

    /// One input.
    pub fn run(data: &[u8]) {
        let Some((&ctrl, stream)) = data.split_first() else {
            return;
        };
        let limits = limits(ctrl);
        let chunk = usize::from(ctrl & 0x0f) + 1;
        let expected = sse_ref::parse(stream, limits);
        let whole = read(stream, limits, stream.len());
        assert_eq!(whole.items, expected.items, "items differ from the oracle");
        assert_eq!(whole.error, expected.error, "error differs from the oracle");
        if expected.error.is_none() {
            assert_eq!(
                whole.last_event_id, expected.last_event_id,
                "RESUME-2 last event id"
            );
        }
        // SSE-9: the output does not depend on how the input is chunked.
        assert_eq!(read(stream, limits, chunk), whole, "chunks of {chunk}");
        assert_eq!(read(stream, limits, 1), whole, "byte by byte");
    }
}

pub mod frame_decoder {
    //! The frame decoder (WIRE-1/3/5/6/8, LIMIT-1, ERR-1): arbitrary bytes as one WebSocket
    //! message. The decoder (with its fast paths) must agree with the plain value-first reading,
    //! refuse oversize and non-UTF-8 input with the right error, and what it decodes must
    //! re-encode to itself. The client-frame decoder (the server's half) is held to the same.
    //!
    //! Input: one control byte (the limit: 1 MiB, 16, 64 or 256 bytes), then the message.

    use crate::frame_ref::{self, reduce, Kind};
    use tether_engine::frame::{ClientFrame, ServerFrame};

    /// One input.
    pub fn run(data: &[u8]) {
        let Some((&ctrl, msg)) = data.split_first() else {
            return;
        };
        let limit = [1 << 20, 16, 64, 256][usize::from(ctrl & 3)];
        let got = reduce(ServerFrame::decode_bytes(msg, limit));
        if msg.len() > limit {
            assert_eq!(got, Err(Kind::TooLarge), "LIMIT-1");
            return;
        }
        let Ok(text) = std::str::from_utf8(msg) else {
            assert_eq!(got, Err(Kind::InvalidUtf8), "ERR-1 invalid_utf8");
            return;
        };
        assert_eq!(
            got,
            reduce(ServerFrame::decode(text, limit)),
            "decode_bytes vs decode"
        );
        assert_eq!(
            got,
            frame_ref::server(text, limit),
            "decoder vs value-first reading"
        );
        if let Ok(frame) = &got {
            let again = ServerFrame::decode(&frame.encode(), usize::MAX);
            assert_eq!(again.as_ref(), Ok(frame), "encode/decode round trip");
        }
        // The server's half: client frames.
        let client = reduce(ClientFrame::decode(text, limit));
        let expected = if text.len() > limit {
            Err(Kind::TooLarge)
        } else {
            serde_json::from_str(text)
                .map_err(|_| Kind::Malformed)
                .and_then(frame_ref::client_from_value)
        };
        assert_eq!(client, expected, "client decoder vs value-first reading");
        if let Ok(frame) = &client {
            assert_eq!(
                ClientFrame::decode(&frame.encode(), usize::MAX).as_ref(),
                Ok(frame),
                "client encode/decode round trip"
            );
        }
    }
}

pub mod poll_body {
    //! The long-poll and POST answer decoder (WIRE-1, LIMIT-2): arbitrary bytes as one body, a
    //! JSON array of frames. The batch must be refused whole only when it is over the limit,
    //! not UTF-8 or not a JSON array; otherwise every element decodes exactly as it would alone
    //! (bad ones as errors in place, the good ones kept). The server's batch decoder for POST
    //! bodies (client frames) is held to the same.
    //!
    //! Input: one control byte (the limit: 16 MiB, 32, 128 or 1024 bytes), then the body.

    use crate::frame_ref::{self, reduce, Kind};
    use serde_json::Value;
    use tether_engine::frame::{encode_batch, ClientFrame, ServerFrame};

    /// One input.
    pub fn run(data: &[u8]) {
        let Some((&ctrl, body)) = data.split_first() else {
            return;
        };
        let limit = [16 << 20, 32, 128, 1024][usize::from(ctrl & 3)];
        let got = ServerFrame::decode_batch(body, limit);
        if body.len() > limit {
            assert!(
                matches!(got, Err(ref e) if reduce::<()>(Err(e.clone())) == Err(Kind::TooLarge)),
                "LIMIT-2"
            );
            return;
        }
        let Ok(text) = std::str::from_utf8(body) else {
            assert!(
                matches!(got, Err(tether_engine::FrameError::InvalidUtf8)),
                "ERR-1 invalid_utf8"
            );
            return;
        };
        let items = match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items,
            _ => {
                assert!(
                    matches!(got, Err(tether_engine::FrameError::Malformed(_))),
                    "a body that is not a JSON array is malformed: {got:?}"
                );
                return;
            }
        };
        let got = got.expect("a JSON array within the limit decodes");
        assert_eq!(got.len(), items.len(), "one result per element");
        let mut good = Vec::new();
        for (result, item) in got.into_iter().zip(&items) {
            let alone = reduce(ServerFrame::decode(&item.to_string(), usize::MAX));
            let result = reduce(result);
            assert_eq!(result, alone, "element in a batch vs alone: {item}");
            assert_eq!(
                result,
                frame_ref::server_from_value(item.clone()),
                "vs value-first"
            );
            if let Ok(f) = result {
                good.push(f);
            }
        }
        // The good frames, re-encoded as a batch, decode to themselves.
        let again = encode_batch(good.iter().map(ServerFrame::encode));
        let back: Vec<ServerFrame> = ServerFrame::decode_batch(again.as_bytes(), usize::MAX)
            .expect("re-encoded batch")
            .into_iter()
            .map(|r| r.expect("re-encoded frame"))
            .collect();
        assert_eq!(back, good, "batch round trip");
        // The server's half: a POST body of client frames.
        let client = ClientFrame::decode_batch(text, limit).expect("a JSON array within the limit");
        assert_eq!(client.len(), items.len());
        for (result, item) in client.into_iter().zip(items) {
            assert_eq!(
                reduce(result),
                frame_ref::client_from_value(item),
                "client batch element"
            );
        }
    }
}

pub mod policy {
    //! The policy parser (BACKOFF-8, BACKOFF-9, BACKOFF-10): arbitrary bytes as the `policy` of a
    //! hello. A policy never makes a hello malformed; every numeric field is clamped to the
    //! SPEC's table (and reported when it was), every absent or non-numeric field keeps the
    //! current value, `base >= floor` and `cap >= base` hold after clamping; app overrides are
    //! validated, not clamped; and an applied policy saved as the memo reads back the same.

    use core::time::Duration;
    use serde_json::Value;
    use tether_engine::frame::ServerFrame;
    use tether_engine::{Policy, PolicyWire};

    /// BACKOFF-8, as the SPEC's table says (not the engine's copy of it).
    const TABLE: [(&str, f64, f64); 14] = [
        ("floor_ms", 100.0, 10_000.0),
        ("base_ms", 100.0, 60_000.0),
        ("cap_ms", 1_000.0, 600_000.0),
        ("multiplier", 1.0, 10.0),
        ("max_attempts", 1.0, 1_000_000.0),
        ("heartbeat_ms", 1_000.0, 300_000.0),
        ("heartbeat_grace_ms", 1_000.0, 120_000.0),
        ("open_timeout_ms", 1_000.0, 120_000.0),
        ("poll_hold_ms", 1_000.0, 120_000.0),
        ("probe_interval_ms", 1_000.0, 3_600_000.0),
        ("upgrade_after_ms", 10_000.0, 86_400_000.0),
        ("outbox_max_count", 1.0, 100_000.0),
        ("outbox_max_bytes", 1_024.0, 67_108_864.0),
        ("outbox_max_age_ms", 1_000.0, 604_800_000.0),
    ];

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    /// Each table field of `p`, in the table's units.
    fn fields(p: &Policy) -> [f64; 14] {
        [
            ms(p.floor),
            ms(p.base),
            ms(p.cap),
            p.multiplier,
            p.max_attempts.map_or(f64::INFINITY, f64::from),
            ms(p.heartbeat),
            ms(p.heartbeat_grace),
            ms(p.open_timeout),
            ms(p.poll_hold),
            ms(p.probe_interval),
            ms(p.upgrade_after),
            p.outbox_max_count as f64,
            p.outbox_max_bytes as f64,
            ms(p.outbox_max_age),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
    }

    /// One input.
    pub fn run(data: &[u8]) {
        let Ok(policy_text) = std::str::from_utf8(data) else {
            return;
        };
        let hello = format!("{{\"type\":\"hello\",\"v\":1,\"policy\":{policy_text}}}");
        let decoded = ServerFrame::decode(&hello, usize::MAX);
        let value: Option<Value> = serde_json::from_str(policy_text).ok();
        let Some(value) = value else {
            // Not JSON (or trailing bytes that close the hello early): nothing to apply.
            return;
        };
        let frame = decoded
            .unwrap_or_else(|e| panic!("BACKOFF-8: a JSON policy made the hello malformed: {e}"));
        let ServerFrame::Hello { policy, .. } = frame else {
            panic!("a hello decoded as {frame:?}");
        };
        let obj = value.as_object();
        assert_eq!(
            policy.is_some(),
            obj.is_some(),
            "a policy that is not an object reads as absent"
        );
        let Some(wire) = policy else { return };
        let obj = obj.expect("object");

        // Apply over a current policy that is not the default, so "keep" is observable.
        let mut current = Policy::default();
        current.apply_app(&PolicyWire {
            floor_ms: Some(250.0),
            base_ms: Some(2_000.0),
            cap_ms: Some(40_000.0),
            multiplier: Some(3.0),
            heartbeat_ms: Some(20_000.0),
            outbox_max_count: Some(77.0),
            ..Default::default()
        });
        let before = fields(&current);
        let mut p = current.clone();
        let clamps = p.apply_server(&wire);
        let after = fields(&p);
        for (i, (name, lo, hi)) in TABLE.iter().enumerate() {
            let requested = obj
                .get(*name)
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite());
            let got = after[i];
            // After clamping, base is raised to floor and cap to base when needed (BACKOFF-8).
            let raise = |v: f64| match *name {
                "base_ms" => v.max(after[0]),
                "cap_ms" => v.max(after[1]),
                _ => v,
            };
            match requested {
                None => {
                    let expect = raise(before[i]);
                    assert!(
                        close(got, expect),
                        "{name}: absent/non-numeric must keep {expect} (got {got})"
                    );
                }
                Some(v) => {
                    let clamped = v.clamp(*lo, *hi);
                    let whole = matches!(
                        *name,
                        "max_attempts" | "outbox_max_count" | "outbox_max_bytes"
                    );
                    // BACKOFF-10: durations apply at 1 us, the multiplier at 10^-6.
                    let resolution = match *name {
                        "multiplier" => 1e6,
                        n if n.ends_with("_ms") => 1e3,
                        _ => 1.0,
                    };
                    let applied = if whole {
                        clamped.trunc()
                    } else {
                        (clamped * resolution).round() / resolution
                    };
                    let expect = raise(applied);
                    assert!(
                        close(got, expect),
                        "{name}: {v} must apply as {expect} (got {got})"
                    );
                    assert!(
                        got >= *lo && got <= *hi,
                        "{name} = {got} outside [{lo}, {hi}]"
                    );
                    let reported = clamps.iter().any(|c| c.field == *name);
                    assert_eq!(
                        reported,
                        clamped != v,
                        "{name}: policy_clamped reported iff clamped"
                    );
                }
            }
        }
        assert!(p.base >= p.floor, "BACKOFF-8: base >= floor");
        assert!(p.cap >= p.base, "BACKOFF-8: cap >= base");

        // BACKOFF-9: the same values as app overrides are validated, not clamped.
        let mut app = Policy::default();
        app.apply_app(&wire);
        assert!(
            app.floor >= Duration::from_millis(1),
            "BACKOFF-9 floor >= 1 ms"
        );
        assert!(
            app.base >= app.floor && app.cap >= app.base,
            "BACKOFF-9 ordering"
        );
        assert!(
            (1.0..=10.0).contains(&app.multiplier),
            "BACKOFF-9 multiplier"
        );

        // BACKOFF-10: the memo keeps the announced policy; applied again it gives the same policy.
        let memo = serde_json::to_string(&wire).expect("encode policy");
        let back: PolicyWire = serde_json::from_str(&memo).expect("memo policy reads back");
        let mut again = current.clone();
        again.apply_server(&back);
        assert_eq!(
            fields(&again).map(|f| f.to_bits()),
            after.map(|f| f.to_bits()),
            "memo round trip"
        );
    }
}

pub mod file_store {
    //! The outbox file store's recovery (OUTBOX-2, OUTBOX-8): arbitrary bytes as the log and
    //! the memo; open, load, append, remove, reopen (`crate::store_case` lists the checks).

    use crate::store_case::{self, StoreCase};
    use std::path::PathBuf;
    use std::sync::OnceLock;

    static DIR: OnceLock<PathBuf> = OnceLock::new();

    /// One input.
    pub fn run(data: &[u8]) {
        let dir = DIR.get_or_init(store_case::scratch_dir);
        store_case::run(&StoreCase::decode(data), dir);
    }
}

pub mod engine {
    //! The whole engine, driven by a script of app calls, transport events (live and stale
    //! connections, structured frames and fuzzed bytes), token and readiness answers, network
    //! changes, time steps and cold starts; the contract is checked after every step
    //! (`crate::engine_run` lists the checks).

    use crate::engine_run::Run;
    use crate::script::Script;

    /// One input.
    pub fn run(data: &[u8]) {
        Run::script(&Script::decode(data));
    }
}
