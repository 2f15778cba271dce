//! The engine fuzz target's input: a script of application calls, transport events (for the
//! live and stale connections, with structured frames or fuzzed bytes), token and readiness
//! answers, network changes, time steps and cold starts.
//!
//! Decoded with `arbitrary` from a simple, stable byte format (one tag byte per item, fixed
//! little-endian integers, byte strings as a length byte then the bytes), so seed inputs can
//! be written by [`Script::encode`] and read back unchanged ([`Script::decode`]).

use arbitrary::{Arbitrary, Result, Unstructured};

/// A whole fuzz input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub setup: Setup,
    pub ops: Vec<Op>,
}

/// How the engine under test is configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Setup {
    pub seed: u64,
    /// Bit 0: a token provider (AUTH-1). Bits 1-3: allowed transports (WebSocket, SSE,
    /// long-poll; none set = all). Bit 4: `reject_new` outbox policy. Bits 6-7:
    /// `max_frame_bytes` of 1 MiB, 256, 1,024 or 4,096.
    pub flags: u8,
    /// App overrides (BACKOFF-9), if any.
    pub app: Option<AppPolicy>,
}

/// App policy overrides; 0 means absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppPolicy {
    pub floor_ms: u16,
    pub base_ms: u16,
    pub cap_ms: u16,
    /// Tenths.
    pub multiplier: u8,
    pub heartbeat_ms: u16,
    pub open_timeout_ms: u16,
    pub probe_interval_ms: u16,
    pub upgrade_after_ms: u16,
    pub outbox_max_count: u8,
    pub outbox_max_bytes: u16,
}

/// One step of the script; the checks run after each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Connect,
    Close,
    Subscribe(u8),
    Unsubscribe(u8),
    /// Channel, payload length, id (0: the engine's own, else one of eight app ids).
    Publish {
        channel: u8,
        len: u8,
        id: u8,
    },
    /// `target` picks one of the newest four connections (255: one the engine never opened).
    Transport {
        target: u8,
        event: Ev,
    },
    /// Jump to `poll_timeout()` and handle it.
    Timeout,
    /// Let `ms % 4,000,000` ms pass, then call `handle_timeout`.
    Advance(u32),
    /// 0 online, 1 offline, 2 changed.
    Network(u8),
    /// Answer one of the token requests: kind 0/3 a token, 1 an error, 2 a fatal error.
    Token {
        pick: u8,
        kind: u8,
    },
    /// Answer one of the readiness probes: kind 0 ready with the window, 1 not ready, 2 failed.
    Ready {
        pick: u8,
        kind: u8,
        from_ms: u32,
        to_ms: u32,
    },
    /// A cold start: a new engine over the same store, at the same instant.
    Restart,
}

/// What a transport reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Opened,
    /// One frame, framed for the connection's transport.
    Frame(FrameSpec),
    /// Several frames: one SSE chunk, one poll body, or WebSocket messages in a row.
    Frames(Vec<FrameSpec>),
    Text(Vec<u8>),
    Binary(Vec<u8>),
    SseBytes(Vec<u8>),
    PollBody(Vec<u8>),
    SendReply(Vec<FrameSpec>),
    SendFailed,
    /// `code` indexes [`CLOSE_CODES`] (past its end: `raw`); the reason's bytes.
    Closed {
        code: u8,
        raw: u16,
        reason: Vec<u8>,
    },
    Failed(Failure),
}

/// How a transport failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Unreachable,
    /// `status` indexes [`STATUSES`], `tether_error` [`TETHER_ERRORS`]; `retry_after_ms` 0 = none.
    Http {
        status: u8,
        tether_error: u8,
        retry_after_ms: u32,
    },
    WrongContentType,
    Io,
    FrameTooLarge,
}

/// A server frame, built from a few numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameSpec {
    /// `v % 8 == 7` announces version 2; `cursor` 0 = none; `reset` is a channel bit mask.
    Hello {
        v: u8,
        cursor: u8,
        policy: Option<PolicySpec>,
        reset: u8,
    },
    /// `seq` at or above 0xFFF0 counts down from `u64::MAX`; `cursor` 0 none, 255 a long one.
    Msg {
        channel: u8,
        seq: u16,
        cursor: u8,
    },
    Subscribed {
        channel: u8,
        seq: u16,
    },
    Reset {
        channel: u8,
    },
    /// `pick` chooses a published id (or an unknown one).
    Ack {
        pick: u8,
    },
    /// `code` indexes [`ERROR_CODES`]; `id` 0 = none; flags bit 0 terminal, bit 1 a message.
    Error {
        code: u8,
        id: u8,
        flags: u8,
    },
    Drain {
        from_ms: u32,
        to_ms: u32,
    },
    RetryLater {
        after_ms: u32,
    },
    Ping,
    Pong,
    Unknown,
    /// A `msg` with `n * 64` bytes of data (over small frame limits).
    Big {
        n: u8,
    },
}

/// A hello's `policy`: `mask` says which of [`POLICY_FIELDS`] are present; each present field
/// takes the next value (`u32::MAX` sends a string instead of a number). The multiplier is
/// in hundredths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    pub mask: u16,
    pub values: Vec<u32>,
}

pub const CHANNELS: [&str; 4] = ["a", "b", "c", "bad name"];
pub const CLOSE_CODES: [Option<u16>; 15] = [
    None,
    Some(1000),
    Some(1001),
    Some(1005),
    Some(1006),
    Some(1009),
    Some(1011),
    Some(4000),
    Some(4001),
    Some(4002),
    Some(4003),
    Some(4004),
    Some(4009),
    Some(4010),
    Some(4400),
];
pub const STATUSES: [u16; 13] = [
    400, 401, 403, 404, 405, 426, 429, 500, 502, 503, 204, 200, 301,
];
pub const TETHER_ERRORS: [Option<&str>; 10] = [
    None,
    Some("forbidden"),
    Some("auth_expired"),
    Some("not_found"),
    Some("draining"),
    Some("retry_later"),
    Some("not_ready"),
    Some("upgrade_required"),
    Some("channel_limit"),
    Some("bogus"),
];
pub const ERROR_CODES: [&str; 8] = [
    "auth_expired",
    "forbidden",
    "not_found",
    "protocol_version",
    "bad_request",
    "server_error",
    "bogus",
    "channel_limit",
];
pub const POLICY_FIELDS: [&str; 15] = [
    "floor_ms",
    "base_ms",
    "cap_ms",
    "multiplier",
    "max_attempts",
    "max_elapsed_ms",
    "heartbeat_ms",
    "heartbeat_grace_ms",
    "open_timeout_ms",
    "poll_hold_ms",
    "probe_interval_ms",
    "upgrade_after_ms",
    "outbox_max_count",
    "outbox_max_bytes",
    "outbox_max_age_ms",
];

// ----- reading -----

fn bytes(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let len = usize::from(u8::arbitrary(u)?).min(u.len());
    Ok(u.bytes(len)?.to_vec())
}

fn list<'a, T: Arbitrary<'a>>(u: &mut Unstructured<'a>, max: u8) -> Result<Vec<T>> {
    let n = u8::arbitrary(u)? % max;
    (0..n).map(|_| T::arbitrary(u)).collect()
}

impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let setup = Setup::arbitrary(u)?;
        let mut ops = Vec::new();
        while !u.is_empty() {
            ops.push(Op::arbitrary(u)?);
        }
        Ok(Script { setup, ops })
    }
}

impl<'a> Arbitrary<'a> for Setup {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let seed = u64::arbitrary(u)?;
        let flags = u8::arbitrary(u)?;
        let app = if flags & 0x20 != 0 {
            Some(AppPolicy {
                floor_ms: u16::arbitrary(u)?,
                base_ms: u16::arbitrary(u)?,
                cap_ms: u16::arbitrary(u)?,
                multiplier: u8::arbitrary(u)?,
                heartbeat_ms: u16::arbitrary(u)?,
                open_timeout_ms: u16::arbitrary(u)?,
                probe_interval_ms: u16::arbitrary(u)?,
                upgrade_after_ms: u16::arbitrary(u)?,
                outbox_max_count: u8::arbitrary(u)?,
                outbox_max_bytes: u16::arbitrary(u)?,
            })
        } else {
            None
        };
        Ok(Setup { seed, flags, app })
    }
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? % 32 {
            0 | 1 => Op::Connect,
            2 => Op::Close,
            3 | 4 => Op::Subscribe(u8::arbitrary(u)?),
            5 => Op::Unsubscribe(u8::arbitrary(u)?),
            6 | 7 => Op::Publish {
                channel: u8::arbitrary(u)?,
                len: u8::arbitrary(u)?,
                id: u8::arbitrary(u)?,
            },
            8..=19 => Op::Transport {
                target: u8::arbitrary(u)?,
                event: Ev::arbitrary(u)?,
            },
            20..=23 => Op::Timeout,
            24 | 25 => Op::Advance(u32::arbitrary(u)?),
            26 => Op::Network(u8::arbitrary(u)?),
            27 | 28 => Op::Token {
                pick: u8::arbitrary(u)?,
                kind: u8::arbitrary(u)?,
            },
            29 => Op::Ready {
                pick: u8::arbitrary(u)?,
                kind: u8::arbitrary(u)?,
                from_ms: u32::arbitrary(u)?,
                to_ms: u32::arbitrary(u)?,
            },
            30 => Op::Restart,
            _ => Op::Timeout,
        })
    }
}

impl<'a> Arbitrary<'a> for Ev {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? % 16 {
            0 | 1 => Ev::Opened,
            2..=5 => Ev::Frame(FrameSpec::arbitrary(u)?),
            6 => Ev::Frames(list(u, 8)?),
            7 => Ev::Text(bytes(u)?),
            8 => Ev::Binary(bytes(u)?),
            9 => Ev::SseBytes(bytes(u)?),
            10 => Ev::PollBody(bytes(u)?),
            11 => Ev::SendReply(list(u, 8)?),
            12 => Ev::SendFailed,
            13 => Ev::Closed {
                code: u8::arbitrary(u)?,
                raw: u16::arbitrary(u)?,
                reason: bytes(u)?,
            },
            _ => Ev::Failed(Failure::arbitrary(u)?),
        })
    }
}

impl<'a> Arbitrary<'a> for Failure {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? % 5 {
            0 => Failure::Unreachable,
            1 => Failure::Http {
                status: u8::arbitrary(u)?,
                tether_error: u8::arbitrary(u)?,
                retry_after_ms: u32::arbitrary(u)?,
            },
            2 => Failure::WrongContentType,
            3 => Failure::Io,
            _ => Failure::FrameTooLarge,
        })
    }
}

impl<'a> Arbitrary<'a> for FrameSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u8::arbitrary(u)? % 14 {
            0 | 1 => {
                let v = u8::arbitrary(u)?;
                let cursor = u8::arbitrary(u)?;
                let has_policy = u8::arbitrary(u)? & 1 == 1;
                let policy = if has_policy {
                    Some(PolicySpec::arbitrary(u)?)
                } else {
                    None
                };
                FrameSpec::Hello {
                    v,
                    cursor,
                    policy,
                    reset: u8::arbitrary(u)?,
                }
            }
            2..=4 => FrameSpec::Msg {
                channel: u8::arbitrary(u)?,
                seq: u16::arbitrary(u)?,
                cursor: u8::arbitrary(u)?,
            },
            5 => FrameSpec::Subscribed {
                channel: u8::arbitrary(u)?,
                seq: u16::arbitrary(u)?,
            },
            6 => FrameSpec::Reset {
                channel: u8::arbitrary(u)?,
            },
            7 => FrameSpec::Ack {
                pick: u8::arbitrary(u)?,
            },
            8 => FrameSpec::Error {
                code: u8::arbitrary(u)?,
                id: u8::arbitrary(u)?,
                flags: u8::arbitrary(u)?,
            },
            9 => FrameSpec::Drain {
                from_ms: u32::arbitrary(u)?,
                to_ms: u32::arbitrary(u)?,
            },
            10 => FrameSpec::RetryLater {
                after_ms: u32::arbitrary(u)?,
            },
            11 => FrameSpec::Ping,
            12 => match u8::arbitrary(u)? & 1 {
                0 => FrameSpec::Pong,
                _ => FrameSpec::Unknown,
            },
            _ => FrameSpec::Big {
                n: u8::arbitrary(u)?,
            },
        })
    }
}

impl<'a> Arbitrary<'a> for PolicySpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mask = u16::arbitrary(u)?;
        let present = (0..POLICY_FIELDS.len())
            .filter(|i| mask & (1 << i) != 0)
            .count();
        let values = (0..present)
            .map(|_| u32::arbitrary(u))
            .collect::<Result<_>>()?;
        Ok(PolicySpec { mask, values })
    }
}

impl Script {
    /// Read a script from fuzz input (never fails: missing bytes read as zeros).
    pub fn decode(data: &[u8]) -> Script {
        let mut u = Unstructured::new(data);
        Script::arbitrary(&mut u).unwrap_or(Script {
            setup: Setup::default(),
            ops: Vec::new(),
        })
    }

    /// The bytes [`Script::decode`] reads back as this script.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let s = &self.setup;
        out.extend_from_slice(&s.seed.to_le_bytes());
        let flags = match &s.app {
            Some(_) => s.flags | 0x20,
            None => s.flags & !0x20,
        };
        out.push(flags);
        if let Some(a) = &s.app {
            for v in [a.floor_ms, a.base_ms, a.cap_ms] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.push(a.multiplier);
            for v in [
                a.heartbeat_ms,
                a.open_timeout_ms,
                a.probe_interval_ms,
                a.upgrade_after_ms,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.push(a.outbox_max_count);
            out.extend_from_slice(&a.outbox_max_bytes.to_le_bytes());
        }
        for op in &self.ops {
            op.encode(&mut out);
        }
        out
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(255)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

impl Op {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Connect => out.push(0),
            Op::Close => out.push(2),
            Op::Subscribe(c) => out.extend_from_slice(&[3, *c]),
            Op::Unsubscribe(c) => out.extend_from_slice(&[5, *c]),
            Op::Publish { channel, len, id } => out.extend_from_slice(&[6, *channel, *len, *id]),
            Op::Transport { target, event } => {
                out.extend_from_slice(&[8, *target]);
                event.encode(out);
            }
            Op::Timeout => out.push(20),
            Op::Advance(ms) => {
                out.push(24);
                out.extend_from_slice(&ms.to_le_bytes());
            }
            Op::Network(n) => out.extend_from_slice(&[26, *n]),
            Op::Token { pick, kind } => out.extend_from_slice(&[27, *pick, *kind]),
            Op::Ready {
                pick,
                kind,
                from_ms,
                to_ms,
            } => {
                out.extend_from_slice(&[29, *pick, *kind]);
                out.extend_from_slice(&from_ms.to_le_bytes());
                out.extend_from_slice(&to_ms.to_le_bytes());
            }
            Op::Restart => out.push(30),
        }
    }
}

impl Ev {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ev::Opened => out.push(0),
            Ev::Frame(f) => {
                out.push(2);
                f.encode(out);
            }
            Ev::Frames(fs) => {
                out.push(6);
                encode_list(out, fs);
            }
            Ev::Text(b) => {
                out.push(7);
                put_bytes(out, b);
            }
            Ev::Binary(b) => {
                out.push(8);
                put_bytes(out, b);
            }
            Ev::SseBytes(b) => {
                out.push(9);
                put_bytes(out, b);
            }
            Ev::PollBody(b) => {
                out.push(10);
                put_bytes(out, b);
            }
            Ev::SendReply(fs) => {
                out.push(11);
                encode_list(out, fs);
            }
            Ev::SendFailed => out.push(12),
            Ev::Closed { code, raw, reason } => {
                out.extend_from_slice(&[13, *code]);
                out.extend_from_slice(&raw.to_le_bytes());
                put_bytes(out, reason);
            }
            Ev::Failed(f) => {
                out.push(14);
                match f {
                    Failure::Unreachable => out.push(0),
                    Failure::Http {
                        status,
                        tether_error,
                        retry_after_ms,
                    } => {
                        out.extend_from_slice(&[1, *status, *tether_error]);
                        out.extend_from_slice(&retry_after_ms.to_le_bytes());
                    }
                    Failure::WrongContentType => out.push(2),
                    Failure::Io => out.push(3),
                    Failure::FrameTooLarge => out.push(4),
                }
            }
        }
    }
}

fn encode_list(out: &mut Vec<u8>, fs: &[FrameSpec]) {
    let fs = &fs[..fs.len().min(7)];
    out.push(fs.len() as u8);
    for f in fs {
        f.encode(out);
    }
}

impl FrameSpec {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FrameSpec::Hello {
                v,
                cursor,
                policy,
                reset,
            } => {
                out.extend_from_slice(&[0, *v, *cursor, u8::from(policy.is_some())]);
                if let Some(p) = policy {
                    out.extend_from_slice(&p.mask.to_le_bytes());
                    let present = (0..POLICY_FIELDS.len())
                        .filter(|i| p.mask & (1 << i) != 0)
                        .count();
                    for i in 0..present {
                        out.extend_from_slice(&p.values.get(i).copied().unwrap_or(0).to_le_bytes());
                    }
                }
                out.push(*reset);
            }
            FrameSpec::Msg {
                channel,
                seq,
                cursor,
            } => {
                out.extend_from_slice(&[2, *channel]);
                out.extend_from_slice(&seq.to_le_bytes());
                out.push(*cursor);
            }
            FrameSpec::Subscribed { channel, seq } => {
                out.extend_from_slice(&[5, *channel]);
                out.extend_from_slice(&seq.to_le_bytes());
            }
            FrameSpec::Reset { channel } => out.extend_from_slice(&[6, *channel]),
            FrameSpec::Ack { pick } => out.extend_from_slice(&[7, *pick]),
            FrameSpec::Error { code, id, flags } => out.extend_from_slice(&[8, *code, *id, *flags]),
            FrameSpec::Drain { from_ms, to_ms } => {
                out.push(9);
                out.extend_from_slice(&from_ms.to_le_bytes());
                out.extend_from_slice(&to_ms.to_le_bytes());
            }
            FrameSpec::RetryLater { after_ms } => {
                out.push(10);
                out.extend_from_slice(&after_ms.to_le_bytes());
            }
            FrameSpec::Ping => out.push(11),
            FrameSpec::Pong => out.extend_from_slice(&[12, 0]),
            FrameSpec::Unknown => out.extend_from_slice(&[12, 1]),
            FrameSpec::Big { n } => out.extend_from_slice(&[13, *n]),
        }
    }
}
