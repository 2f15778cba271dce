//! The seed inputs of every target: the SPEC's edge cases and the engine tests' scenarios,
//! written as `corpus/<target>/seed-<name>`. `cargo test` checks the committed files are
//! what this module writes (`TETHER_FUZZ_WRITE_SEEDS=1 cargo test` rewrites them), that
//! scripts read back unchanged, and replays every corpus file through its target.

use crate::file_store::{FileStore, HEADER_BYTES};
use crate::script::{AppPolicy, Ev, Failure, FrameSpec, Op, PolicySpec, Script, Setup};
use crate::store_case::{StoreCase, StoreOp};
use tether_engine::{OutboxRecord, Store};

/// One seed: target, name, bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    out.extend(sse());
    out.extend(frames());
    out.extend(polls());
    out.extend(policies());
    out.extend(stores());
    out.extend(
        scripts()
            .into_iter()
            .map(|(n, s)| ("engine", n.to_owned(), s.encode())),
    );
    out
}

fn named(target: &'static str, items: Vec<(&str, Vec<u8>)>) -> Vec<Seed> {
    items
        .into_iter()
        .map(|(n, b)| (target, n.to_owned(), b))
        .collect()
}

fn ctrl(c: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![c];
    v.extend_from_slice(body);
    v
}

/// SSE-1..9 and LIMIT-3 (control byte: chunk size - 1 in bits 0-3, limits in bits 4-6).
fn sse() -> Vec<Seed> {
    let hello = br#"{"type":"hello","v":1,"cursor":"c1"}"#;
    let mut server = b"id: c1\ndata: ".to_vec();
    server.extend_from_slice(hello);
    server.extend_from_slice(b"\n\n: ping\n\n");
    named(
        "sse_parser",
        vec![
            ("basic", ctrl(0, b"data: hi\n\n")),
            ("line-ends", ctrl(2, b"data: a\r\ndata: b\rdata: c\n\r\n")),
            ("cr-lf-split", ctrl(6, b"data: x\r\n\r\ndata: y\r\r")),
            ("bom", ctrl(1, b"\xEF\xBB\xBFdata: bom\n\n")),
            (
                "double-bom",
                ctrl(0, b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"),
            ),
            ("partial-bom", ctrl(0, b"\xEF\xBBdata: x\n\n")),
            ("comments", ctrl(3, b": ping\n:\n\n")),
            (
                "fields",
                ctrl(
                    4,
                    b"event: e\nid: 7\nretry: 5000\ndata:x\ndata\nfoo: bar\n\n",
                ),
            ),
            (
                "bogus-retry",
                ctrl(
                    5,
                    b"retry: 5x\nretry: +1\nretry:\nretry: 99999999999999999999\n\n",
                ),
            ),
            ("id-with-nul", ctrl(0, b"id: a\x00b\ndata: x\n\n")),
            ("id-only-block", ctrl(0, b"id: 7\n\nid: 8\ndata: x")),
            ("unfinished", ctrl(0, b"data: x\ndata: y")),
            ("invalid-utf8", ctrl(1, b"data: \xff\xfe\xc3\n\xe2\x82\n\n")),
            ("server-stream", ctrl(7, &server)),
            ("line-limit", ctrl(0x10, b"data: 0123456789\n\n")),
            (
                "event-limit",
                ctrl(0x60, b"data: 0123456789\ndata: 0123456789\n\n"),
            ),
            ("limit-at-end", ctrl(0x20, &[b'x'; 40])),
        ],
    )
}

/// WIRE-3/5/6/8, LIMIT-1 and ERR-1 (control byte: the limit).
fn frames() -> Vec<Seed> {
    let texts: [(&str, &[u8]); 16] = [
        (
            "hello",
            br#"{"type":"hello","v":1,"server_id":"s1","cursor":"c","reset":["a"]}"#,
        ),
        (
            "msg",
            br#"{"type":"msg","channel":"a","seq":3,"cursor":"c3","data":{"x":[1,2]}}"#,
        ),
        (
            "msg-type-last",
            br#"{"channel":"a","seq":2,"type":"msg","data":null}"#,
        ),
        (
            "msg-duplicate-field",
            br#"{"type":"msg","channel":"a","seq":1,"seq":2}"#,
        ),
        (
            "msg-negative-seq",
            br#"{"type":"msg","channel":"a","seq":-1}"#,
        ),
        (
            "msg-bad-channel",
            br#"{"type":"msg","channel":"bad channel!","seq":1}"#,
        ),
        ("truncated", br#"{"type":"msg","channel":"a","seq":1"#),
        ("unknown-type", br#"{"type":"future_thing","x":1}"#),
        ("no-type", br#"{"x":1}"#),
        ("type-not-string", br#"{"type":5}"#),
        ("not-object", b"[1]"),
        (
            "error",
            br#"{"type":"error","code":"forbidden","id":"k","terminal":true}"#,
        ),
        (
            "drain",
            br#"{"type":"drain","from_ms":5000,"to_ms":0,"reason":"deploy"}"#,
        ),
        (
            "policy",
            br#"{"type":"hello","v":1,"policy":{"base_ms":"x","cap_ms":1e9}}"#,
        ),
        ("invalid-utf8", b"{\"type\":\"ping\",\"x\":\"\xff\"}"),
        ("ack", br#"{"type":"ack","id":"k","seq":3}"#),
    ];
    let mut items: Vec<(&str, Vec<u8>)> = texts.iter().map(|(n, t)| (*n, ctrl(0, t))).collect();
    items.push((
        "over-limit",
        ctrl(1, br#"{"type":"ping","pad":"xxxxxxxxxx"}"#),
    ));
    items.push((
        "client-publish",
        ctrl(
            0,
            br#"{"type":"publish","id":"k1","channel":"a","data":{"t":1}}"#,
        ),
    ));
    named("frame_decoder", items)
}

/// WIRE-1, LIMIT-2 (control byte: the limit).
fn polls() -> Vec<Seed> {
    named(
        "poll_body",
        vec![
            ("mixed", ctrl(0, br#"[{"type":"ping"},{"type":"nope"},{"bad":1},{"type":"ack","id":"k"}]"#)),
            ("empty", ctrl(0, b"[]")),
            ("not-array", ctrl(0, br#"{"type":"ping"}"#)),
            ("scalars", ctrl(0, br#"[1,"x",null,[]]"#)),
            (
                "handshake",
                ctrl(
                    0,
                    br#"[{"type":"hello","v":1,"cursor":"e1~a!0"},{"type":"subscribed","channel":"a","seq":0,"cursor":"e1~a!0"},{"type":"msg","channel":"a","seq":1,"cursor":"e1~a!1","data":1e2}]"#,
                ),
            ),
            ("over-limit", ctrl(1, br#"[{"type":"ping"},{"type":"ping"},{"type":"ping"}]"#)),
            ("client-frames", ctrl(0, br#"[{"type":"publish","id":"k","channel":"a","data":1e3},{"type":"subscribe","channel":"b"}]"#)),
            ("invalid-utf8", ctrl(0, b"[\"\xc3\"]")),
        ],
    )
}

/// BACKOFF-8/9/10: `policy` values.
fn policies() -> Vec<Seed> {
    let texts: [(&str, &str); 10] = [
        ("one", r#"{"base_ms":2000}"#),
        (
            "hostile",
            r#"{"floor_ms":0,"base_ms":1,"cap_ms":-5,"multiplier":1e9,"heartbeat_ms":1,"outbox_max_count":1e12,"max_attempts":0.5}"#,
        ),
        (
            "non-numeric",
            r#"{"base_ms":"x","cap_ms":null,"multiplier":[2],"floor_ms":{}}"#,
        ),
        ("empty", "{}"),
        ("null", "null"),
        ("array", "[5000,20000]"),
        ("base-raised", r#"{"floor_ms":20000,"base_ms":100}"#),
        ("cap-raised", r#"{"cap_ms":500,"base_ms":60000}"#),
        (
            "fractions",
            r#"{"outbox_max_count":2.9,"outbox_max_bytes":2048.5,"max_attempts":3.7}"#,
        ),
        (
            "all",
            r#"{"floor_ms":150,"base_ms":900,"cap_ms":45000,"multiplier":1.5,"max_attempts":9,"max_elapsed_ms":60000,"heartbeat_ms":2000,"heartbeat_grace_ms":1000,"open_timeout_ms":3000,"poll_hold_ms":4000,"probe_interval_ms":1000,"upgrade_after_ms":20000,"outbox_max_count":10,"outbox_max_bytes":4096,"outbox_max_age_ms":5000}"#,
        ),
    ];
    named(
        "policy",
        texts
            .iter()
            .map(|(n, t)| (*n, t.as_bytes().to_vec()))
            .collect(),
    )
}

fn record(id: &str) -> OutboxRecord {
    OutboxRecord {
        id: id.to_owned(),
        channel: "c".to_owned(),
        data: format!("\"payload of {id}\""),
        enqueued_unix_ms: 1_700_000_000_000,
    }
}

/// A log as the store writes it: appends of `ids`, removes of `removed`; with the offset of
/// each append frame.
fn written_log(ids: &[&str], removed: &[&str]) -> (Vec<u8>, Vec<usize>) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tether-fuzz-seed-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut offsets = Vec::new();
    {
        let mut store = FileStore::open(&dir).expect("seed store");
        for id in ids {
            offsets.push(store.stats().log_bytes as usize);
            store.append(&record(id)).expect("seed append");
        }
        for id in removed {
            store.remove(id).expect("seed remove");
        }
    }
    let bytes = std::fs::read(dir.join(crate::file_store::LOG_FILE)).expect("seed log");
    let _ = std::fs::remove_dir_all(&dir);
    (bytes, offsets)
}

/// OUTBOX-2/8: logs as the store writes them, torn, corrupted and with damaged lengths.
fn stores() -> Vec<Seed> {
    let (log, at) = written_log(&["a", "b", "c"], &["b"]);
    let ops = vec![
        StoreOp::Append {
            id: 1,
            len: 10,
            at: 1,
        },
        StoreOp::Append {
            id: 2,
            len: 0,
            at: 2,
        },
        StoreOp::Remove { id: 1 },
        StoreOp::SaveMemo { retry: 9 },
        StoreOp::Append {
            id: 3,
            len: 200,
            at: 3,
        },
    ];
    let case = |flags: u8, log: Vec<u8>, memo: Option<&[u8]>| {
        StoreCase {
            flags,
            log,
            memo: memo.map(<[u8]>::to_vec),
            ops: ops.clone(),
        }
        .encode()
    };
    let mut torn = log.clone();
    torn.truncate(log.len() - 5);
    let mut flipped = log.clone();
    flipped[at[1] + HEADER_BYTES + 2] ^= 0x20;
    let mut absurd = log.clone();
    absurd[at[1]..at[1] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut past_end = log.clone();
    past_end[at[1]..at[1] + 4].copy_from_slice(&(log.len() as u32).to_le_bytes());
    let mut garbage = log[..at[2]].to_vec();
    garbage.extend_from_slice(b"\x00\x01garbage\xff");
    garbage.extend_from_slice(&log[at[2]..]);
    // A damaged length that runs past the end at open and fits exactly once the first
    // append is in: the scan used to read it as one frame and skip c and that append.
    let (log3, at3) = written_log(&["a", "b", "c"], &[]);
    let first = crate::store_case::record(1, 10, 1);
    let frame = HEADER_BYTES + 1 + serde_json::to_vec(&first).expect("json").len();
    let claimed = log3.len() + frame - at3[1] - HEADER_BYTES;
    let mut swallow = log3;
    swallow[at3[1]..at3[1] + 4].copy_from_slice(&(claimed as u32).to_le_bytes());
    let swallow = StoreCase {
        flags: 0,
        log: swallow,
        memo: None,
        ops: vec![
            StoreOp::Append {
                id: 1,
                len: 10,
                at: 1,
            },
            StoreOp::Append {
                id: 2,
                len: 0,
                at: 2,
            },
            StoreOp::Append {
                id: 3,
                len: 5,
                at: 3,
            },
        ],
    }
    .encode();
    named(
        "file_store",
        vec![
            ("damaged-length-swallows-appends", swallow),
            ("empty", case(0, Vec::new(), None)),
            (
                "written",
                case(0, log.clone(), Some(br#"{"retry_after_unix_ms":5}"#)),
            ),
            ("torn-tail", case(0, torn, None)),
            ("flipped-crc", case(1, flipped, None)),
            ("absurd-length", case(0, absurd, None)),
            ("length-past-end", case(2, past_end, None)),
            ("garbage-between", case(3, garbage, Some(b"{not json"))),
            ("stale-compaction", case(16, log, Some(b"null"))),
        ],
    )
}

fn t(event: Ev) -> Op {
    Op::Transport { target: 0, event }
}

fn hello() -> Ev {
    Ev::Frame(FrameSpec::Hello {
        v: 1,
        cursor: 1,
        policy: None,
        reset: 0,
    })
}

fn hello_with(mask: u16, values: Vec<u32>) -> Ev {
    Ev::Frame(FrameSpec::Hello {
        v: 1,
        cursor: 2,
        policy: Some(PolicySpec { mask, values }),
        reset: 1,
    })
}

fn msg(channel: u8, seq: u16) -> Ev {
    Ev::Frame(FrameSpec::Msg {
        channel,
        seq,
        cursor: (seq % 250) as u8 + 1,
    })
}

fn setup(flags: u8) -> Setup {
    Setup {
        seed: 42,
        flags,
        app: None,
    }
}

const SSE_ONLY: u8 = 0b0100;
const POLL_ONLY: u8 = 0b1000;
const AUTH: u8 = 1;
const SMALL_FRAMES: u8 = 0x40;

/// The engine tests' scenarios, as scripts.
pub fn scripts() -> Vec<(&'static str, Script)> {
    use Op::*;
    let mut sse_hello = b"\xEF\xBB\xBF: hi\r\nretry: 5000\r\nid: c1\ndata: ".to_vec();
    sse_hello.extend_from_slice(br#"{"type":"hello","v":1,"cursor":"c1"}"#);
    sse_hello.extend_from_slice(
        b"\n\ndata: {\"type\":\"subscribed\",\"channel\":\"a\",\"seq\":0}\r\n\r",
    );
    let sse_msg = b"\ndata: {\"type\":\"msg\",\"channel\":\"a\",\"seq\":1,\"data\":1}\n\n".to_vec();
    vec![
        (
            "connect-messages",
            Script {
                setup: setup(0),
                ops: vec![
                    Subscribe(0),
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    t(Ev::Frame(FrameSpec::Subscribed { channel: 0, seq: 0 })),
                    t(msg(0, 1)),
                    t(msg(0, 2)),
                    t(msg(0, 2)),
                    t(Ev::Frame(FrameSpec::Ping)),
                    Close,
                    Connect,
                ],
            },
        ),
        (
            "order-gap",
            Script {
                setup: setup(0),
                ops: vec![
                    Subscribe(0),
                    Subscribe(1),
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    t(Ev::Frame(FrameSpec::Subscribed { channel: 0, seq: 0 })),
                    t(msg(0, 1)),
                    t(msg(0, 3)),
                    t(msg(0, 4)),
                    Advance(6000),
                    t(msg(0, 2)),
                    t(msg(1, 0xFFFE)),
                    t(msg(1, 0xFFFF)),
                    t(Ev::Frame(FrameSpec::Reset { channel: 0 })),
                    t(msg(0, 9)),
                ],
            },
        ),
        (
            "backoff-unreachable",
            Script {
                setup: setup(0),
                ops: [Connect]
                    .into_iter()
                    .chain((0..8).flat_map(|_| [t(Ev::Failed(Failure::Unreachable)), Timeout]))
                    .collect(),
            },
        ),
        (
            "drain",
            Script {
                setup: setup(0),
                ops: vec![
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    t(Ev::Frame(FrameSpec::Drain {
                        from_ms: 5000,
                        to_ms: 1000,
                    })),
                    Timeout,
                    t(Ev::Opened),
                    t(hello()),
                ],
            },
        ),
        (
            "retry-after-memo",
            Script {
                setup: setup(0),
                ops: vec![
                    Connect,
                    t(Ev::Failed(Failure::Http {
                        status: 9,
                        tether_error: 5,
                        retry_after_ms: 3000,
                    })),
                    Restart,
                    Connect,
                    Timeout,
                    t(Ev::Closed {
                        code: 12,
                        raw: 0,
                        reason: b"2500".to_vec(),
                    }),
                    Timeout,
                    t(Ev::Frame(FrameSpec::RetryLater { after_ms: 700_000 })),
                ],
            },
        ),
        (
            "sse-stream",
            Script {
                setup: setup(SSE_ONLY),
                ops: vec![
                    Subscribe(0),
                    Connect,
                    t(Ev::Opened),
                    t(Ev::SseBytes(sse_hello)),
                    t(Ev::SseBytes(sse_msg)),
                    t(Ev::Closed {
                        code: 0,
                        raw: 0,
                        reason: Vec::new(),
                    }),
                    Timeout,
                ],
            },
        ),
        (
            "fallback-ladder",
            Script {
                setup: Setup {
                    seed: 42,
                    flags: 0,
                    app: Some(AppPolicy {
                        upgrade_after_ms: 10_000,
                        ..AppPolicy::default()
                    }),
                },
                ops: vec![
                    Connect,
                    t(Ev::Failed(Failure::Http {
                        status: 2,
                        tether_error: 0,
                        retry_after_ms: 0,
                    })),
                    t(Ev::Failed(Failure::WrongContentType)),
                    t(Ev::Opened),
                    t(hello()),
                    Advance(10_000),
                    t(Ev::Opened),
                    t(hello()),
                    Advance(1000),
                ],
            },
        ),
        (
            "auth-expired",
            Script {
                setup: setup(AUTH),
                ops: vec![
                    Connect,
                    Token { pick: 0, kind: 0 },
                    t(Ev::Opened),
                    t(Ev::Closed {
                        code: 8,
                        raw: 0,
                        reason: Vec::new(),
                    }),
                    Token { pick: 0, kind: 0 },
                    t(Ev::Opened),
                    t(hello()),
                    t(Ev::Frame(FrameSpec::Error {
                        code: 0,
                        id: 0,
                        flags: 0,
                    })),
                    Token { pick: 0, kind: 1 },
                    Timeout,
                    Token { pick: 0, kind: 2 },
                ],
            },
        ),
        (
            "network",
            Script {
                setup: setup(0),
                ops: vec![
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    Network(1),
                    Connect,
                    Network(0),
                    Timeout,
                    t(Ev::Opened),
                    t(hello()),
                    Network(2),
                    t(Ev::Opened),
                    t(hello()),
                ],
            },
        ),
        (
            "outbox",
            Script {
                setup: Setup {
                    seed: 7,
                    flags: 0x10,
                    app: Some(AppPolicy {
                        outbox_max_count: 3,
                        ..AppPolicy::default()
                    }),
                },
                ops: vec![
                    Publish {
                        channel: 0,
                        len: 10,
                        id: 0,
                    },
                    Publish {
                        channel: 0,
                        len: 10,
                        id: 0,
                    },
                    Publish {
                        channel: 1,
                        len: 5,
                        id: 1,
                    },
                    Publish {
                        channel: 1,
                        len: 5,
                        id: 2,
                    },
                    Publish {
                        channel: 3,
                        len: 5,
                        id: 0,
                    },
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    t(Ev::Frame(FrameSpec::Ack { pick: 0 })),
                    t(Ev::Frame(FrameSpec::Error {
                        code: 5,
                        id: 1,
                        flags: 2,
                    })),
                    t(Ev::SendReply(vec![FrameSpec::Ack { pick: 2 }])),
                    t(Ev::SendFailed),
                    Timeout,
                ],
            },
        ),
        (
            "hostile-policy",
            Script {
                setup: setup(0),
                ops: vec![
                    Connect,
                    t(Ev::Opened),
                    t(hello_with(
                        0x7FFF,
                        vec![0, 1, u32::MAX, 100_000, 0, 5, 1, 1, 1, 1, 1, 1, 0, 0, 1],
                    )),
                    t(Ev::Closed {
                        code: 4,
                        raw: 0,
                        reason: Vec::new(),
                    }),
                    Timeout,
                    t(Ev::Failed(Failure::Io)),
                    Timeout,
                    Restart,
                    Connect,
                ],
            },
        ),
        (
            "ready-probe",
            Script {
                setup: setup(0),
                ops: vec![
                    Connect,
                    t(Ev::Opened),
                    t(hello_with(0b100_0000_0110, vec![60_000, 600_000, 1000])),
                    t(Ev::Closed {
                        code: 4,
                        raw: 0,
                        reason: Vec::new(),
                    }),
                    Advance(600),
                    Advance(600),
                    Ready {
                        pick: 0,
                        kind: 1,
                        from_ms: 0,
                        to_ms: 0,
                    },
                    Advance(1200),
                    Ready {
                        pick: 0,
                        kind: 0,
                        from_ms: 800,
                        to_ms: 100,
                    },
                    Timeout,
                ],
            },
        ),
        (
            "limits",
            Script {
                setup: setup(SMALL_FRAMES),
                ops: vec![
                    Subscribe(0),
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    t(Ev::Frame(FrameSpec::Big { n: 8 })),
                    Timeout,
                    t(Ev::Opened),
                    t(hello()),
                ],
            },
        ),
        (
            "malformed",
            Script {
                setup: setup(0),
                ops: [
                    Subscribe(0),
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    t(Ev::Frame(FrameSpec::Msg {
                        channel: 0,
                        seq: 1,
                        cursor: 255,
                    })),
                ]
                .into_iter()
                .chain((0..17).map(|_| t(Ev::Text(b"{garbage".to_vec()))))
                .collect(),
            },
        ),
        (
            "terminal",
            Script {
                setup: setup(0),
                ops: vec![
                    Connect,
                    t(Ev::Opened),
                    t(Ev::Closed {
                        code: 10,
                        raw: 0,
                        reason: Vec::new(),
                    }),
                    Timeout,
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    t(Ev::Frame(FrameSpec::Error {
                        code: 1,
                        id: 0,
                        flags: 1,
                    })),
                    Publish {
                        channel: 0,
                        len: 1,
                        id: 0,
                    },
                ],
            },
        ),
        (
            "heartbeat",
            Script {
                setup: setup(0),
                ops: vec![
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    Advance(26_000),
                    Timeout,
                    t(Ev::Opened),
                    Advance(11_000),
                ],
            },
        ),
        (
            "long-poll",
            Script {
                setup: setup(POLL_ONLY),
                ops: vec![
                    Subscribe(0),
                    Connect,
                    t(Ev::Opened),
                    t(Ev::Frames(vec![
                        FrameSpec::Hello {
                            v: 1,
                            cursor: 3,
                            policy: None,
                            reset: 0,
                        },
                        FrameSpec::Subscribed { channel: 0, seq: 0 },
                    ])),
                    t(Ev::Frames(vec![
                        FrameSpec::Msg {
                            channel: 0,
                            seq: 1,
                            cursor: 1,
                        },
                        FrameSpec::Msg {
                            channel: 0,
                            seq: 2,
                            cursor: 2,
                        },
                    ])),
                    Publish {
                        channel: 0,
                        len: 3,
                        id: 0,
                    },
                    t(Ev::SendReply(vec![FrameSpec::Ack { pick: 0 }])),
                    Advance(40_000),
                    Subscribe(1),
                ],
            },
        ),
        (
            "stale-connections",
            Script {
                setup: setup(0),
                ops: vec![
                    Connect,
                    t(Ev::Failed(Failure::Io)),
                    Op::Transport {
                        target: 1,
                        event: hello(),
                    },
                    Op::Transport {
                        target: 255,
                        event: hello(),
                    },
                    Timeout,
                    Op::Transport {
                        target: 1,
                        event: Ev::Closed {
                            code: 10,
                            raw: 0,
                            reason: Vec::new(),
                        },
                    },
                ],
            },
        ),
        (
            "resubscribe-sse",
            Script {
                setup: setup(SSE_ONLY | 0x20),
                ops: vec![
                    Connect,
                    t(Ev::Opened),
                    t(hello()),
                    Subscribe(1),
                    t(Ev::Failed(Failure::Unreachable)),
                    Timeout,
                    Unsubscribe(1),
                ],
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[global_allocator]
    static ALLOC: crate::alloc::Counting = crate::alloc::Counting;

    fn corpus() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
    }

    #[test]
    fn seeds_match_the_committed_corpus() {
        let write = std::env::var_os("TETHER_FUZZ_WRITE_SEEDS").is_some();
        for (target, name, bytes) in all() {
            let path = corpus().join(target).join(format!("seed-{name}"));
            if write {
                std::fs::create_dir_all(path.parent().expect("dir")).expect("corpus dir");
                std::fs::write(&path, &bytes).expect("write seed");
            } else {
                let committed = std::fs::read(&path).unwrap_or_default();
                assert!(
                    committed == bytes,
                    "{} is not what seeds.rs writes (TETHER_FUZZ_WRITE_SEEDS=1 cargo test rewrites it)",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn scripts_and_store_cases_read_back_unchanged() {
        for (name, script) in scripts() {
            let back = Script::decode(&script.encode());
            assert_eq!(back.ops, script.ops, "{name}");
            assert_eq!(back.encode(), script.encode(), "{name}");
        }
        for (target, name, bytes) in all() {
            if target == "file_store" {
                assert_eq!(StoreCase::decode(&bytes).encode(), bytes, "{name}");
            }
        }
    }

    #[test]
    fn every_corpus_input_passes_its_target() {
        if std::env::var_os("TETHER_FUZZ_WRITE_SEEDS").is_some() {
            return; // the seeds are being rewritten beside this test
        }
        let mut ran = 0;
        for entry in std::fs::read_dir(corpus()).expect("corpus") {
            let dir = entry.expect("entry").path();
            let target = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned();
            let run: fn(&[u8]) = match target.as_str() {
                "sse_parser" => crate::targets::sse_parser::run,
                "frame_decoder" => crate::targets::frame_decoder::run,
                "poll_body" => crate::targets::poll_body::run,
                "policy" => crate::targets::policy::run,
                "file_store" => crate::targets::file_store::run,
                "engine" => crate::targets::engine::run,
                other => panic!("corpus/{other}: no such target"),
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .expect("target corpus")
                .map(|e| e.expect("entry").path())
                .collect();
            files.sort();
            for file in files {
                let bytes = std::fs::read(&file).expect("corpus file");
                if let Err(e) = std::panic::catch_unwind(|| run(&bytes)) {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    panic!("{}: {msg}", file.display());
                }
                ran += 1;
            }
        }
        assert!(ran >= all().len(), "only {ran} corpus files ran");
    }
}
