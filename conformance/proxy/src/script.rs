//! What a proxy does to the bytes it forwards: a seeded list of faults, as data (serde), read live by every connection.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Which way bytes travel through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client to upstream (requests, publishes, WebSocket frames the client sends).
    Up,
    /// Upstream to client (answers, streams, replays).
    Down,
}

impl Direction {
    /// Both directions, `Up` first.
    pub const BOTH: [Direction; 2] = [Direction::Up, Direction::Down];

    /// Stable name (`up`, `down`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// One fault. JSON shape: the fields and the fault's name under `"fault"`, e.g.
/// `{"fault":"idle_kill","after_ms":1500}`,
/// `{"fault":"bandwidth","bytes_per_sec":32768,"direction":"down"}` or
/// `{"fault":"reset","after_bytes":2000,"jitter_bytes":3000}`.
///
/// Byte-level faults act on every connection ([`Fault::Reset`], [`Fault::Fin`],
/// [`Fault::Blackhole`], [`Fault::IdleKill`], [`Fault::Bandwidth`], [`Fault::Latency`]).
/// HTTP-aware ones read just enough HTTP/1.1 to act like a proxy on the way: the first
/// request of a connection for the WebSocket upgrade faults ([`Fault::RefuseUpgrade`],
/// [`Fault::StripUpgrade`]: browsers and native stacks open a fresh connection for every
/// upgrade), and response framing (`Content-Length`, chunked, until close) for
/// [`Fault::Buffer`]. The enum is `#[non_exhaustive]`: it grows by variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fault {
    /// A connection on which no byte moved in either direction for `after_ms` is
    /// **blackholed**, as a NAT gateway or cloud load balancer does when its idle timer
    /// expires: from then on nothing is forwarded either way, both sockets stay open, and
    /// neither peer gets a FIN or a RST. (What each peer still writes is read and
    /// discarded, so the proxy notices a peer's close; that peer's socket is then closed
    /// quietly and the other one is left open. The proxy's own kernel acknowledges what it
    /// reads, so TCP keepalive cannot see this blackhole; only an application deadline can.)
    IdleKill {
        /// Silence, in milliseconds, after which the connection is blackholed.
        after_ms: u64,
    },
    /// At most `bytes_per_sec` bytes per second in `direction` (both when absent), paced in
    /// slices of about 50 ms so a slow link trickles instead of bursting.
    Bandwidth {
        /// The rate (at least 1).
        bytes_per_sec: u64,
        /// The direction it limits; absent: both.
        #[serde(default)]
        direction: Option<Direction>,
    },
    /// Every chunk read is forwarded `ms` later, plus a seeded `U(0, jitter_ms)`, in order,
    /// in `direction` (both when absent). Latency and bandwidth add up like on a real link.
    Latency {
        /// Fixed one-way delay.
        ms: u64,
        /// Extra random delay, uniform in `[0, jitter_ms]`, drawn per chunk from the seed.
        #[serde(default)]
        jitter_ms: u64,
        /// The direction it delays; absent: both.
        #[serde(default)]
        direction: Option<Direction>,
    },
    /// Reset the connection (RST to both peers, as a pulled cable answered by a router, or
    /// a crashed middlebox) when its [`Trigger`] fires: at a time, or after a number of
    /// bytes in one direction, which cuts a frame, a chunk or an SSE line in the middle.
    /// What is still queued in the proxy is discarded.
    Reset(Trigger),
    /// Close the connection cleanly (FIN to both peers, then the proxy reads and discards
    /// until they close, so neither gets a RST) when its [`Trigger`] fires: a load balancer
    /// ending a connection, mid-message when triggered by bytes.
    Fin(Trigger),
    /// Blackhole the connection when its [`Trigger`] fires: from then on nothing is
    /// forwarded either way and both sockets stay open (half-open), as with
    /// [`Fault::IdleKill`], but at a chosen time or byte count.
    Blackhole(Trigger),
    /// Answer WebSocket upgrade requests itself with `status` (403 or 400, an HTML body, no
    /// `Tether-Error`), as a corporate proxy that blocks WebSocket does; the server never
    /// sees them. Other requests pass.
    RefuseUpgrade {
        /// The status of the proxy's answer (default 403).
        #[serde(default = "forbidden")]
        status: u16,
        /// Share of upgrade requests refused (seeded per connection; default 1: all).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        chance: f64,
    },
    /// Forward WebSocket upgrade requests without their hop-by-hop `Upgrade` and
    /// `Connection` headers, as a proxy that does not know WebSocket does; the server sees
    /// a plain GET (and answers `upgrade_required`).
    StripUpgrade {
        /// Share of upgrade requests stripped (seeded per connection; default 1: all).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        chance: f64,
    },
    /// Hold every HTTP response until it is complete (its `Content-Length`, its last chunk,
    /// or the server closing), then pass it on at once, as a buffering CDN or anti-virus
    /// gateway does: a long-poll answer arrives whole, an event stream never (its headers
    /// included). After a `101 Switching Protocols` the connection passes unbuffered. A
    /// response larger than `max_bytes` is passed on from there (bounded memory).
    Buffer {
        /// Largest response held (default 16 MiB).
        #[serde(default = "buffer_max")]
        max_bytes: usize,
    },
}

/// How a connection is cut: the three ways a network ends a connection under a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    /// RST to both peers.
    Reset,
    /// FIN to both peers.
    Fin,
    /// Nothing forwarded any more, sockets kept open.
    Blackhole,
}

impl Cut {
    /// Stable name (`reset`, `fin`, `blackhole`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Cut::Reset => "reset",
            Cut::Fin => "fin",
            Cut::Blackhole => "blackhole",
        }
    }
}

/// When a cut fires on a connection: `after_ms` (plus a seeded `U(0, jitter_ms)`) after the
/// connection opened or the script carrying it was set, whichever is later, or once
/// `after_bytes` (plus a seeded `U(0, jitter_bytes)`) were forwarded in `direction` since
/// then; with both, whichever comes first. The extras and `chance` are drawn per connection
/// from the script's seed, so a run replays exactly. JSON:
/// `{"fault":"reset","after_bytes":1000,"jitter_bytes":4000,"direction":"down"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Milliseconds after the connection opened (or the script was set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    /// Extra random delay, uniform in `[0, jitter_ms]`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_ms: u64,
    /// Bytes forwarded in `direction` before the cut (the cut falls right after them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_bytes: Option<u64>,
    /// Extra random bytes, uniform in `[0, jitter_bytes]`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_bytes: u64,
    /// The direction whose bytes count (default `down`).
    #[serde(default = "down")]
    pub direction: Direction,
    /// Share of connections the fault applies to, drawn per connection (default 1: all).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub chance: f64,
}

impl Trigger {
    /// Fire `after` the connection opened.
    pub fn after(after: Duration) -> Trigger {
        Trigger {
            after_ms: Some(millis(after)),
            ..Trigger::never()
        }
    }

    /// Fire once `bytes` were forwarded in `direction`.
    pub fn after_bytes(bytes: u64, direction: Direction) -> Trigger {
        Trigger {
            after_bytes: Some(bytes),
            direction,
            ..Trigger::never()
        }
    }

    /// A trigger that never fires (no time, no byte count): the base of the builders.
    pub fn never() -> Trigger {
        Trigger {
            after_ms: None,
            jitter_ms: 0,
            after_bytes: None,
            jitter_bytes: 0,
            direction: Direction::Down,
            chance: 1.0,
        }
    }

    /// Add a random extra delay, uniform in `[0, jitter]`.
    pub fn jitter(mut self, jitter: Duration) -> Trigger {
        self.jitter_ms = millis(jitter);
        self
    }

    /// Add random extra bytes, uniform in `[0, bytes]`.
    pub fn jitter_bytes(mut self, bytes: u64) -> Trigger {
        self.jitter_bytes = bytes;
        self
    }

    /// Apply to a share of the connections only.
    pub fn chance(mut self, chance: f64) -> Trigger {
        self.chance = chance;
        self
    }
}

fn forbidden() -> u16 {
    403
}
fn one() -> f64 {
    1.0
}
fn is_one(x: &f64) -> bool {
    *x == 1.0
}
fn is_zero(x: &u64) -> bool {
    *x == 0
}
fn down() -> Direction {
    Direction::Down
}
fn buffer_max() -> usize {
    16 * 1024 * 1024
}

impl Fault {
    /// Stable name, as in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::IdleKill { .. } => "idle_kill",
            Fault::Bandwidth { .. } => "bandwidth",
            Fault::Latency { .. } => "latency",
            Fault::Reset(_) => "reset",
            Fault::Fin(_) => "fin",
            Fault::Blackhole(_) => "blackhole",
            Fault::RefuseUpgrade { .. } => "refuse_upgrade",
            Fault::StripUpgrade { .. } => "strip_upgrade",
            Fault::Buffer { .. } => "buffer",
        }
    }

    /// The cut and its trigger, for [`Fault::Reset`], [`Fault::Fin`] and [`Fault::Blackhole`].
    pub fn cut(&self) -> Option<(Cut, &Trigger)> {
        match self {
            Fault::Reset(t) => Some((Cut::Reset, t)),
            Fault::Fin(t) => Some((Cut::Fin, t)),
            Fault::Blackhole(t) => Some((Cut::Blackhole, t)),
            _ => None,
        }
    }

    fn applies(direction: Option<Direction>, d: Direction) -> bool {
        direction.is_none_or(|x| x == d)
    }
}

/// The faults a proxy applies, and the seed of its random draws (each connection draws
/// from its own generator, seeded from `seed` and the connection's number, so a run
/// replays exactly). JSON: `{"seed": 7, "faults": [...]}`; an empty script forwards
/// faithfully.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// Seed of the random draws (latency jitter, and the random faults still to come).
    #[serde(default)]
    pub seed: u64,
    /// The faults, all applied together; when two of a kind apply to the same direction,
    /// the strictest wins (shortest idle time, lowest rate, longest delay).
    #[serde(default)]
    pub faults: Vec<Fault>,
}

impl Script {
    /// A script that forwards faithfully.
    pub fn new() -> Script {
        Script::default()
    }

    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> Script {
        self.seed = seed;
        self
    }

    /// Add a fault.
    pub fn with(mut self, fault: Fault) -> Script {
        self.faults.push(fault);
        self
    }

    /// Add [`Fault::IdleKill`].
    pub fn idle_kill(self, after: Duration) -> Script {
        self.with(Fault::IdleKill {
            after_ms: millis(after),
        })
    }

    /// Add [`Fault::Bandwidth`] in `direction` (both when `None`).
    pub fn bandwidth(self, bytes_per_sec: u64, direction: Option<Direction>) -> Script {
        self.with(Fault::Bandwidth {
            bytes_per_sec,
            direction,
        })
    }

    /// Add [`Fault::Latency`] in `direction` (both when `None`).
    pub fn latency(
        self,
        delay: Duration,
        jitter: Duration,
        direction: Option<Direction>,
    ) -> Script {
        self.with(Fault::Latency {
            ms: millis(delay),
            jitter_ms: millis(jitter),
            direction,
        })
    }

    /// Add [`Fault::Reset`].
    pub fn reset(self, trigger: Trigger) -> Script {
        self.with(Fault::Reset(trigger))
    }

    /// Add [`Fault::Fin`].
    pub fn fin(self, trigger: Trigger) -> Script {
        self.with(Fault::Fin(trigger))
    }

    /// Add [`Fault::Blackhole`].
    pub fn blackhole(self, trigger: Trigger) -> Script {
        self.with(Fault::Blackhole(trigger))
    }

    /// Add [`Fault::RefuseUpgrade`] (every upgrade request answered with `status`).
    pub fn refuse_upgrade(self, status: u16) -> Script {
        self.with(Fault::RefuseUpgrade {
            status,
            chance: 1.0,
        })
    }

    /// Add [`Fault::StripUpgrade`] (every upgrade request stripped).
    pub fn strip_upgrade(self) -> Script {
        self.with(Fault::StripUpgrade { chance: 1.0 })
    }

    /// Add [`Fault::Buffer`] (16 MiB per response at most).
    pub fn buffer(self) -> Script {
        self.with(Fault::Buffer {
            max_bytes: buffer_max(),
        })
    }

    /// The cuts with their triggers, in script order.
    pub fn cuts(&self) -> impl Iterator<Item = (Cut, &Trigger)> {
        self.faults.iter().filter_map(Fault::cut)
    }

    /// True when a fault needs the first request of a connection before it is forwarded
    /// (the upgrade faults).
    pub fn reads_first_request(&self) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::RefuseUpgrade { .. } | Fault::StripUpgrade { .. }))
    }

    /// The [`Fault::RefuseUpgrade`] status and chance, if any (the first one).
    pub fn refused_upgrade(&self) -> Option<(u16, f64)> {
        self.faults.iter().find_map(|f| match f {
            Fault::RefuseUpgrade { status, chance } => Some((*status, *chance)),
            _ => None,
        })
    }

    /// The [`Fault::StripUpgrade`] chance, if any.
    pub fn stripped_upgrade(&self) -> Option<f64> {
        self.faults.iter().find_map(|f| match f {
            Fault::StripUpgrade { chance } => Some(*chance),
            _ => None,
        })
    }

    /// The [`Fault::Buffer`] limit, if responses are buffered (the smallest one).
    pub fn buffered(&self) -> Option<usize> {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::Buffer { max_bytes } => Some(*max_bytes),
                _ => None,
            })
            .min()
    }

    /// The idle time after which connections are blackholed, if any.
    pub fn idle_after(&self) -> Option<Duration> {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::IdleKill { after_ms } => Some(Duration::from_millis(*after_ms)),
                _ => None,
            })
            .min()
    }

    /// The rate limit in direction `d`, if any.
    pub fn rate(&self, d: Direction) -> Option<u64> {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::Bandwidth {
                    bytes_per_sec,
                    direction,
                } if Fault::applies(*direction, d) => Some((*bytes_per_sec).max(1)),
                _ => None,
            })
            .min()
    }

    /// The one-way delay `(fixed, jitter)` in direction `d`.
    pub fn delay(&self, d: Direction) -> (Duration, Duration) {
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::Latency {
                    ms,
                    jitter_ms,
                    direction,
                } if Fault::applies(*direction, d) => Some((*ms, *jitter_ms)),
                _ => None,
            })
            .max()
            .map_or((Duration::ZERO, Duration::ZERO), |(ms, j)| {
                (Duration::from_millis(ms), Duration::from_millis(j))
            })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_round_trips_and_strictest_fault_wins() {
        let json = r#"{"seed":7,"faults":[
            {"fault":"idle_kill","after_ms":1500},
            {"fault":"idle_kill","after_ms":900},
            {"fault":"bandwidth","bytes_per_sec":4096,"direction":"down"},
            {"fault":"bandwidth","bytes_per_sec":100000},
            {"fault":"latency","ms":20,"jitter_ms":5,"direction":"up"}
        ]}"#;
        let s: Script = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.seed, 7);
        assert_eq!(s.idle_after(), Some(Duration::from_millis(900)));
        assert_eq!(s.rate(Direction::Down), Some(4096));
        assert_eq!(s.rate(Direction::Up), Some(100_000));
        assert_eq!(
            s.delay(Direction::Up),
            (Duration::from_millis(20), Duration::from_millis(5))
        );
        assert_eq!(s.delay(Direction::Down), (Duration::ZERO, Duration::ZERO));
        let back: Script = serde_json::from_str(&serde_json::to_string(&s).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, s);
        assert_eq!(s.faults[0].name(), "idle_kill");
    }

    #[test]
    fn cut_and_http_faults_parse_with_their_defaults() {
        let json = r#"{"seed":1,"faults":[
            {"fault":"reset","after_bytes":2000,"jitter_bytes":3000},
            {"fault":"fin","after_ms":500,"direction":"up","chance":0.5},
            {"fault":"blackhole","after_ms":100,"jitter_ms":50},
            {"fault":"refuse_upgrade"},
            {"fault":"refuse_upgrade","status":400},
            {"fault":"strip_upgrade"},
            {"fault":"buffer"}
        ]}"#;
        let s: Script = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        let cuts: Vec<(Cut, Trigger)> = s.cuts().map(|(c, t)| (c, t.clone())).collect();
        assert_eq!(
            cuts,
            vec![
                (
                    Cut::Reset,
                    Trigger::after_bytes(2000, Direction::Down).jitter_bytes(3000)
                ),
                (
                    Cut::Fin,
                    Trigger {
                        direction: Direction::Up,
                        ..Trigger::after(Duration::from_millis(500)).chance(0.5)
                    }
                ),
                (
                    Cut::Blackhole,
                    Trigger::after(Duration::from_millis(100)).jitter(Duration::from_millis(50))
                ),
            ]
        );
        assert_eq!(
            s.refused_upgrade(),
            Some((403, 1.0)),
            "the first one, 403 by default"
        );
        assert_eq!(s.stripped_upgrade(), Some(1.0));
        assert_eq!(s.buffered(), Some(16 * 1024 * 1024));
        assert!(s.reads_first_request());
        assert!(!Script::new().buffer().reads_first_request());
        let names: Vec<&str> = s.faults.iter().map(Fault::name).collect();
        assert_eq!(
            names,
            [
                "reset",
                "fin",
                "blackhole",
                "refuse_upgrade",
                "refuse_upgrade",
                "strip_upgrade",
                "buffer"
            ]
        );
        let back: Script = serde_json::from_str(&serde_json::to_string(&s).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, s);
        let built = Script::new()
            .seed(1)
            .reset(Trigger::after_bytes(2000, Direction::Down).jitter_bytes(3000))
            .refuse_upgrade(400)
            .strip_upgrade()
            .buffer();
        assert_eq!(built.faults[1], s.faults[4]);
        assert_eq!(built.faults[3], s.faults[6]);
        assert!(serde_json::from_str::<Script>(r#"{"faults":[{"fault":"teleport"}]}"#).is_err());
    }

    #[test]
    fn builder_matches_json() {
        let built = Script::new()
            .seed(3)
            .idle_kill(Duration::from_secs(2))
            .bandwidth(1000, Some(Direction::Up));
        let parsed: Script = serde_json::from_str(
            r#"{"seed":3,"faults":[{"fault":"idle_kill","after_ms":2000},{"fault":"bandwidth","bytes_per_sec":1000,"direction":"up"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(built, parsed);
        assert_eq!(Script::new().rate(Direction::Down), None);
        assert_eq!(Script::new().idle_after(), None);
    }
}
