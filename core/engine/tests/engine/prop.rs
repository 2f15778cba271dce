//! ERR-2 and timer progress under random input: the engine never panics, whatever the
//! transports, the server, the app and the clock do; `handle_timeout(poll_timeout())` always
//! moves the next deadline into the future; the reported state matches the real one (STATE-3).

#![allow(clippy::manual_is_multiple_of)] // keep the workspace MSRV (1.85)

use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;
use tether_engine::{
    Action, Config, ConnId, Engine, Event, Instant, MemoryStore, Network, ReadyAnswer, Token,
    TokenError, TransportEvent, TransportFailure, TransportKind,
};

#[derive(Clone, Debug)]
enum Input {
    Connect,
    Close,
    Subscribe(u8),
    Publish(u8, u16),
    Transport(u8, Ev),
    Timeout,
    Advance(u32),
    Network(u8),
    Token(u8, bool),
    Ready(u8, u16, u16),
}

#[derive(Clone, Debug)]
enum Ev {
    Opened,
    Frame(u8, u64, u64),
    Raw(Vec<u8>),
    Sse(Vec<u8>),
    Poll(Vec<u8>),
    Reply(Vec<u8>),
    SendFailed,
    Closed(Option<u16>, u16),
    Failed(u8, u16),
}

fn frame(kind: u8, a: u64, b: u64) -> String {
    let ch = ["a", "b", "bad name", ""][(a % 4) as usize];
    match kind % 14 {
        0 => json!({"type":"hello","v":1,"cursor":format!("c{b}")}).to_string(),
        1 => json!({"type":"hello","v":1,"cursor":"p","policy":{"base_ms":a as f64, "cap_ms": b as f64, "floor_ms": 0, "heartbeat_ms": b, "open_timeout_ms": a, "probe_interval_ms": 1, "upgrade_after_ms": 1}, "reset":["a"]}).to_string(),
        2 => json!({"type":"msg","channel":ch,"seq":b % 50,"cursor":format!("m{b}"),"data":a}).to_string(),
        3 => json!({"type":"subscribed","channel":ch,"seq":b}).to_string(),
        4 => json!({"type":"reset","channel":ch}).to_string(),
        5 => json!({"type":"ack","id":format!("k{}", a % 5)}).to_string(),
        6 => {
            let code = ["auth_expired", "forbidden", "x", "server_error"][(a % 4) as usize];
            let id = if b % 2 == 0 {
                json!(format!("k{}", a % 5))
            } else {
                json!(null)
            };
            json!({"type":"error","code":code,"id":id,"terminal": b % 7 == 0}).to_string()
        }
        7 => json!({"type":"drain","from_ms":a,"to_ms":b}).to_string(),
        8 => json!({"type":"retry_later","after_ms":a}).to_string(),
        9 => json!({"type":"ping"}).to_string(),
        10 => json!({"type":"msg","channel":"a","seq":u64::MAX - (b % 3),"data":1}).to_string(),
        11 => json!({"type":"subscribed","channel":"a","seq":u64::MAX - (a % 2)}).to_string(),
        12 => json!({"type":"hello","v":b % 3}).to_string(),
        _ => "{\"type\":".to_string(),
    }
}

fn ev_strategy() -> impl Strategy<Value = Ev> {
    prop_oneof![
        Just(Ev::Opened),
        (any::<u8>(), any::<u64>(), any::<u64>()).prop_map(|(k, a, b)| Ev::Frame(k, a, b)),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Ev::Raw),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Ev::Sse),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Ev::Poll),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(Ev::Reply),
        Just(Ev::SendFailed),
        (
            proptest::option::of(prop_oneof![
                Just(1000u16),
                Just(1006),
                Just(4001),
                Just(4003),
                Just(4009),
                any::<u16>()
            ]),
            any::<u16>()
        )
            .prop_map(|(c, r)| Ev::Closed(c, r)),
        (any::<u8>(), any::<u16>()).prop_map(|(k, s)| Ev::Failed(k, s)),
    ]
}

fn input_strategy() -> impl Strategy<Value = Input> {
    prop_oneof![
        2 => Just(Input::Connect),
        1 => Just(Input::Close),
        1 => any::<u8>().prop_map(Input::Subscribe),
        1 => (any::<u8>(), any::<u16>()).prop_map(|(c, n)| Input::Publish(c, n)),
        10 => (any::<u8>(), ev_strategy()).prop_map(|(c, e)| Input::Transport(c, e)),
        5 => Just(Input::Timeout),
        2 => any::<u32>().prop_map(Input::Advance),
        1 => any::<u8>().prop_map(Input::Network),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(r, ok)| Input::Token(r, ok)),
        1 => (any::<u8>(), any::<u16>(), any::<u16>()).prop_map(|(p, a, b)| Input::Ready(p, a, b)),
    ]
}

fn to_event(ev: &Ev, kind: TransportKind) -> TransportEvent {
    match ev {
        Ev::Opened => TransportEvent::Opened,
        Ev::Frame(k, a, b) => {
            let f = frame(*k, *a, *b);
            match kind {
                TransportKind::WebSocket => TransportEvent::Text(f),
                TransportKind::Sse => {
                    TransportEvent::SseBytes(format!("data: {f}\n\n").into_bytes())
                }
                TransportKind::LongPoll => TransportEvent::PollBody(format!("[{f}]").into_bytes()),
            }
        }
        Ev::Raw(b) => TransportEvent::Binary(b.clone()),
        Ev::Sse(b) => TransportEvent::SseBytes(b.clone()),
        Ev::Poll(b) => TransportEvent::PollBody(b.clone()),
        Ev::Reply(b) => TransportEvent::SendReply(b.clone()),
        Ev::SendFailed => TransportEvent::SendFailed(TransportFailure::Io("x".into())),
        Ev::Closed(code, r) => TransportEvent::Closed {
            code: *code,
            reason: r.to_string(),
        },
        Ev::Failed(k, status) => TransportEvent::Failed(match k % 4 {
            0 => TransportFailure::Unreachable("refused".into()),
            1 => TransportFailure::HttpStatus {
                status: *status % 600,
                tether_error: if k % 8 < 4 {
                    None
                } else {
                    Some(["forbidden", "auth_expired", "x", "unavailable"][(k % 4) as usize].into())
                },
                retry_after: if status % 3 == 0 {
                    Some(Duration::from_millis(u64::from(*status) * 1000))
                } else {
                    None
                },
            },
            2 => TransportFailure::WrongContentType("text/html".into()),
            _ => TransportFailure::Io("reset".into()),
        }),
    }
}

fn run(inputs: Vec<Input>, seed: u64, auth: bool, transports: u8) -> Result<(), TestCaseError> {
    let mut cfg = Config::new("https://e.example/t");
    cfg.seed = seed;
    cfg.auth = auth;
    cfg.transports = TransportKind::LADDER
        .into_iter()
        .enumerate()
        .filter(|(i, _)| transports & (1 << i) != 0)
        .map(|(_, t)| t)
        .collect();
    let mut now = Instant::from_millis(1_000);
    let mut e = Engine::new(
        cfg,
        Box::new(MemoryStore::default()),
        now,
        1_700_000_000_000,
    );
    let mut conns: Vec<(ConnId, TransportKind)> = Vec::new();
    let mut fetches: Vec<u64> = Vec::new();
    let mut probes: Vec<u64> = Vec::new();
    let mut last_to = e.state().clone();
    for input in inputs {
        match input {
            Input::Connect => e.connect(now),
            Input::Close => e.close(now),
            Input::Subscribe(c) => {
                let _ = e.subscribe(["a", "b", "c", "bad name"][(c % 4) as usize], now);
            }
            Input::Publish(c, n) => {
                let id = if n % 2 == 0 {
                    Some(format!("k{}", n % 5))
                } else {
                    None
                };
                let _ = e.publish(["a", "b", ""][(c % 3) as usize], json!(n), id, now);
            }
            Input::Transport(i, ev) => {
                let (conn, kind) = if conns.is_empty() || i == 255 {
                    (ConnId(u64::from(i)), TransportKind::WebSocket)
                } else {
                    // Mostly the newest connections.
                    let k = conns.len() - 1 - (usize::from(i) % conns.len().min(3));
                    conns[k]
                };
                e.handle_transport_event(now, conn, to_event(&ev, kind));
            }
            Input::Timeout => {
                if let Some(t) = e.poll_timeout() {
                    now = now.max(t);
                    e.handle_timeout(now);
                    if let Some(next) = e.poll_timeout() {
                        prop_assert!(next > now, "handle_timeout({now:?}) left deadline {next:?}");
                    }
                }
            }
            Input::Advance(ms) => {
                now = now + Duration::from_millis(u64::from(ms % 120_000));
                e.handle_timeout(now);
            }
            Input::Network(n) => e.handle_network(
                now,
                [Network::Online, Network::Offline, Network::Changed][(n % 3) as usize],
            ),
            Input::Token(r, ok) => {
                let req = fetches
                    .get(usize::from(r) % fetches.len().max(1))
                    .copied()
                    .unwrap_or(u64::from(r));
                let t = if ok {
                    Ok(Token::new("t"))
                } else {
                    Err(TokenError {
                        fatal: r % 5 == 0,
                        message: "no".into(),
                    })
                };
                e.handle_token(now, req, t);
            }
            Input::Ready(p, a, b) => {
                let probe = probes.last().copied().unwrap_or(u64::from(p));
                let answer = match p % 3 {
                    0 => ReadyAnswer::Ready {
                        from_ms: u64::from(a),
                        to_ms: u64::from(b),
                    },
                    1 => ReadyAnswer::NotReady,
                    _ => ReadyAnswer::Failed,
                };
                e.handle_ready(now, probe, answer);
            }
        }
        while let Some(a) = e.poll_action() {
            match a {
                Action::Open(o) => conns.push((o.conn, o.transport)),
                Action::FetchToken { request, .. } => fetches.push(request),
                Action::ProbeReady { probe } => probes.push(probe),
                _ => {}
            }
        }
        while let Some(ev) = e.poll_event() {
            if let Event::StateChanged { from, to, .. } = ev {
                prop_assert_eq!(&from, &last_to);
                prop_assert_ne!(&from, &to);
                last_to = to;
            }
        }
        prop_assert_eq!(&last_to, e.state(), "STATE-3");
    }
    // Progress: draining every deadline terminates, each strictly later than the last.
    for _ in 0..10_000 {
        let Some(t) = e.poll_timeout() else { break };
        now = now.max(t);
        e.handle_timeout(now);
        while let Some(a) = e.poll_action() {
            if let Action::Open(o) = a {
                e.handle_transport_event(
                    now,
                    o.conn,
                    TransportEvent::Failed(TransportFailure::Unreachable("x".into())),
                );
            }
        }
        while e.poll_event().is_some() {}
        if let Some(next) = e.poll_timeout() {
            prop_assert!(next > now);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn err_2_never_panics_and_timers_progress(
        inputs in proptest::collection::vec(input_strategy(), 1..120),
        seed in any::<u64>(),
        auth in any::<bool>(),
        transports in 0u8..8,
    ) {
        run(inputs, seed, auth, transports)?;
    }
}
