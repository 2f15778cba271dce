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
/// `{"fault":"idle_kill","after_ms":1500}` or
/// `{"fault":"bandwidth","bytes_per_sec":32768,"direction":"down"}`.
///
/// The catalogue grows by new variants (the enum is `#[non_exhaustive]`): a reset or FIN
/// after N bytes, a blackhole at a given time, answering WebSocket upgrades itself,
/// stripping `Upgrade`, holding a response until it ends like a buffering CDN.
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
}

impl Fault {
    /// Stable name, as in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::IdleKill { .. } => "idle_kill",
            Fault::Bandwidth { .. } => "bandwidth",
            Fault::Latency { .. } => "latency",
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
