//! Command-line parsing for `run`, `list`, `matrix` and `storm` (no dependencies; `--help` prints usage).

use crate::matrix::MatrixArgs;
use crate::storm::{Draw, StormParams};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Usage text.
pub const USAGE: &str = "\
tether-conformance — the Tether conformance suite

USAGE:
  tether-conformance [run] [OPTIONS]     run the suite (default: native adapter, embedded server)
  tether-conformance list [--include G] [--scenarios DIR]
  tether-conformance matrix [MATRIX OPTIONS]   the suite against every available client, side by side
  tether-conformance storm --clients N --accept-rate R [STORM OPTIONS]   (storm --help for details)
  tether-conformance storm-bench [--clients 10000] [--admission 1000] [--burst 100] [--down-s 3]
      [--timeout-s 60] [--policies tether,socketio,signalr,phoenix,fixed1s]
  tether-conformance server-bench [--connections 10000] [--seconds 3] [--admission 1000]
                     [--workers 64] [--messages 1000] [--subscribers 1000]

RUN OPTIONS:
  --adapter \"<command line>\"   adapter to run: a program (a bare name is looked up in PATH, a path
                               is relative to the current directory) and its arguments
                               (default: the native adapter built into this binary)
  --scenarios DIR              read suites from DIR/*.json instead of the embedded ones
  --include GLOB, --exclude GLOB   select cases by name (`*`, `?`; a bare prefix selects a subtree)
  --known-failures FILE        case names expected to fail (one per line, then a reason)
  --json FILE --junit FILE --html FILE   report paths (default: conformance/reports/out/report.*)
  --out DIR                    directory for the default report files
  --no-reports                 write no report files
  --jobs N                     cases run concurrently (default 4; `serial` cases always alone)
  --verbose                    full details of failures in the terminal
  --seed S                     the case seed of every selected case (fault proxy, `mix` steps):
                               a failing case prints its seed; --include NAME --seed S replays it
  --server-bin PATH            run process-server cases (network/...) with this tether-server
                               binary instead of this runner's own copy of the server

MATRIX OPTIONS:
  --clients a,b  --require a,b  --registry FILE (default conformance/adapters/clients.json)
  --include/--exclude/--scenarios/--jobs/--verbose as for run; --out DIR --json F --html F
                               (default conformance/reports/out/matrix.json, matrix.html)
  --reuse CLIENT=REPORT.json   take CLIENT's column from a `run` JSON report of the same cases
                               on the same source tree instead of running it again

STORM OPTIONS:
  --clients N  --accept-rate R  [--floor-ms F] [--base-ms B] [--cap-ms C] [--multiplier M]
  [--drain-window-ms A..B] [--no-jitter | --floor-atom] [--burst T] [--seed S]
  [--peak-ms P] [--bucket-ms W] [--buckets K]
";

/// `storm --help`: every option and what the report shows.
pub const STORM_USAGE: &str = "\
tether-conformance storm — how a fleet of clients dropped at once comes back (SPEC ADR-3)

USAGE:
  tether-conformance storm --clients N --accept-rate R [OPTIONS]

N clients lose their connections at t = 0. Each reconnects after a draw of the engine's own
backoff (tether_engine::backoff, BACKOFF-1) or, with a drain window, at U(from, to) (DRAIN-1).
The fleet accepts R handshakes per second through a token bucket; an attempt that finds the
bucket empty is refused and the client tries again after its next backoff draw. The report
prints the N / W model, the simulated peaks, attempts, refusals and the time until everyone is
connected, each with what it means, then a histogram of attempts over time.

OPTIONS:
  --clients N            clients dropped at t = 0 (required)
  --accept-rate R        handshakes per second the fleet accepts (required)
  --floor-ms F           backoff floor (default 100)
  --base-ms B            backoff base (default 1000)
  --cap-ms C             backoff cap (default 30000)
  --multiplier M         backoff multiplier (default 2)
  --drain-window-ms A..B first reconnects at U(A, B) instead of a backoff draw
  --no-jitter            contrast: every client waits exactly max(floor, min(cap, base·mult^n));
                         with a drain window every client comes back at its start A (a client
                         without jitter does not use the window)
  --floor-atom           contrast: the draw BACKOFF-1 replaced, max(floor, U(0, c)), which puts
                         a fraction floor / c of the fleet exactly on the floor (a spike)
  --burst T              tokens the accept bucket holds at most (default: 50 ms of R, at least
                         1): how many clients an instantaneous spike can get in at once. Without
                         jitter the time to reconnect everyone is about N / T × cap
  --seed S               seed of the simulation (default 1): same seed, same run
  --peak-ms P            window of the peak rates, sliding (default 100): a narrower window shows
                         a spike that a wide one averages away, and more sampling noise
  --bucket-ms W          histogram bucket width (default: chosen from the data: the run cut into
                         about K rows, or 1 ms when attempts fall on a few instants)
  --buckets K            histogram rows printed at most (default 30)
  -h, --help             this text
";

/// Why the command line was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CliError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("bad value for {flag}: {value}")]
    BadValue { flag: String, value: String },
    #[error("unknown argument {0}")]
    Unknown(String),
    #[error("storm needs --clients and --accept-rate")]
    StormIncomplete,
}

/// Options of `run` and `list`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunArgs {
    pub adapter: Option<String>,
    pub scenarios: Option<PathBuf>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub known_failures: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub no_reports: bool,
    pub jobs: Option<usize>,
    pub verbose: bool,
    /// Overrides every selected case's seed.
    pub seed: Option<u64>,
    /// The `tether-server` binary of process-server cases (default: this runner, `__server`).
    pub server_bin: Option<PathBuf>,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Cli {
    Run(RunArgs),
    List(RunArgs),
    Storm(StormParams),
    /// `storm --help`.
    StormHelp,
    /// `matrix`: the suite against every available client.
    Matrix(MatrixArgs),
    /// The native adapter built into this binary (the default adapter of `run`).
    Adapter(Vec<String>),
    /// A `tether-server` instance (the cluster cases run several as separate processes).
    Server(Vec<String>),
    /// Measure the server half (idle connections, handshakes/s, Redis round trips).
    Bench(crate::bench::BenchOpts),
    /// The reconnect storm measured with real clients, beside peers' schedules.
    StormBench(crate::storm_bench::StormBenchOpts),
    /// The storm bench's server child.
    StormServer(Vec<String>),
    Help,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<String, CliError> {
    it.next()
        .cloned()
        .ok_or_else(|| CliError::MissingValue(flag.to_owned()))
}

fn num<T: std::str::FromStr>(v: &str, flag: &str) -> Result<T, CliError> {
    v.parse().map_err(|_| CliError::BadValue {
        flag: flag.to_owned(),
        value: v.to_owned(),
    })
}

/// A finite number above zero.
fn positive(v: &str, flag: &str) -> Result<f64, CliError> {
    let x: f64 = num(v, flag)?;
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(CliError::BadValue {
            flag: flag.to_owned(),
            value: v.to_owned(),
        })
    }
}

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cli, CliError> {
    let (cmd, rest) = match args.first().map(String::as_str) {
        Some("run") => ("run", &args[1..]),
        Some("list") => ("list", &args[1..]),
        Some("storm") => ("storm", &args[1..]),
        Some("matrix") => return crate::matrix::parse_args(&args[1..]).map(Cli::Matrix),
        Some("__adapter-native") => return Ok(Cli::Adapter(args[1..].to_vec())),
        Some("__server") => return Ok(Cli::Server(args[1..].to_vec())),
        Some("server-bench") => return parse_bench(&args[1..]).map(Cli::Bench),
        Some("storm-bench") => return parse_storm_bench(&args[1..]).map(Cli::StormBench),
        Some("__storm-server") => return Ok(Cli::StormServer(args[1..].to_vec())),
        Some("-h" | "--help" | "help") => return Ok(Cli::Help),
        _ => ("run", args),
    };
    if cmd == "storm" {
        if rest.iter().any(|a| matches!(a.as_str(), "-h" | "--help")) {
            return Ok(Cli::StormHelp);
        }
        return parse_storm(rest).map(Cli::Storm);
    }
    let mut r = RunArgs::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--adapter" => r.adapter = Some(value(&mut it, a)?),
            "--scenarios" => r.scenarios = Some(value(&mut it, a)?.into()),
            "--include" => r.include.push(value(&mut it, a)?),
            "--exclude" => r.exclude.push(value(&mut it, a)?),
            "--known-failures" => r.known_failures = Some(value(&mut it, a)?.into()),
            "--json" => r.json = Some(value(&mut it, a)?.into()),
            "--junit" => r.junit = Some(value(&mut it, a)?.into()),
            "--html" => r.html = Some(value(&mut it, a)?.into()),
            "--out" => r.out = Some(value(&mut it, a)?.into()),
            "--no-reports" => r.no_reports = true,
            "--jobs" => r.jobs = Some(num(&value(&mut it, a)?, a)?),
            "--verbose" | "-v" => r.verbose = true,
            "--seed" => r.seed = Some(num(&value(&mut it, a)?, a)?),
            "--server-bin" => r.server_bin = Some(value(&mut it, a)?.into()),
            "-h" | "--help" => return Ok(Cli::Help),
            other => return Err(CliError::Unknown(other.to_owned())),
        }
    }
    Ok(if cmd == "list" {
        Cli::List(r)
    } else {
        Cli::Run(r)
    })
}

fn parse_storm_bench(args: &[String]) -> Result<crate::storm_bench::StormBenchOpts, CliError> {
    let mut o = crate::storm_bench::StormBenchOpts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--clients" => o.clients = num(&value(&mut it, a)?, a)?,
            "--admission" => o.admission = positive(&value(&mut it, a)?, a)?,
            "--burst" => o.burst = positive(&value(&mut it, a)?, a)?,
            "--down-s" => o.down = Duration::from_secs_f64(positive(&value(&mut it, a)?, a)?),
            "--timeout-s" => o.timeout = Duration::from_secs_f64(positive(&value(&mut it, a)?, a)?),
            "--policies" => {
                o.policies = value(&mut it, a)?
                    .split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            }
            other => return Err(CliError::Unknown(other.to_owned())),
        }
    }
    Ok(o)
}

fn parse_bench(args: &[String]) -> Result<crate::bench::BenchOpts, CliError> {
    let mut o = crate::bench::BenchOpts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--connections" => o.connections = num(&value(&mut it, a)?, a)?,
            "--seconds" => o.seconds = num(&value(&mut it, a)?, a)?,
            "--admission" => o.admission = num(&value(&mut it, a)?, a)?,
            "--workers" => o.workers = num(&value(&mut it, a)?, a)?,
            "--messages" => o.messages = num(&value(&mut it, a)?, a)?,
            "--subscribers" => o.subscribers = num(&value(&mut it, a)?, a)?,
            other => return Err(CliError::Unknown(other.to_owned())),
        }
    }
    Ok(o)
}

fn parse_storm(args: &[String]) -> Result<StormParams, CliError> {
    let mut p = StormParams::default();
    let (mut clients, mut rate) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--clients" => {
                p.clients = num(&value(&mut it, a)?, a)?;
                clients = true;
            }
            "--accept-rate" => {
                p.accept_rate = num(&value(&mut it, a)?, a)?;
                rate = true;
            }
            "--floor-ms" => p.floor_ms = num(&value(&mut it, a)?, a)?,
            "--base-ms" => p.base_ms = num(&value(&mut it, a)?, a)?,
            "--cap-ms" => p.cap_ms = num(&value(&mut it, a)?, a)?,
            "--multiplier" => p.multiplier = num(&value(&mut it, a)?, a)?,
            "--seed" => p.seed = num(&value(&mut it, a)?, a)?,
            "--buckets" => p.buckets = num(&value(&mut it, a)?, a)?,
            "--burst" => p.burst = Some(positive(&value(&mut it, a)?, a)?),
            "--peak-ms" => p.peak_ms = positive(&value(&mut it, a)?, a)?,
            "--bucket-ms" => p.bucket_ms = Some(positive(&value(&mut it, a)?, a)?),
            "--no-jitter" => p.draw = Draw::NoJitter,
            "--floor-atom" => p.draw = Draw::FloorAtom,
            "--drain-window-ms" => {
                let v = value(&mut it, a)?;
                let bad = || CliError::BadValue {
                    flag: a.clone(),
                    value: v.clone(),
                };
                let (x, y) = v.split_once("..").ok_or_else(bad)?;
                let (x, y): (f64, f64) = (
                    x.trim().parse().map_err(|_| bad())?,
                    y.trim().parse().map_err(|_| bad())?,
                );
                p.drain_window_ms = Some((x.min(y), x.max(y)));
            }
            other => return Err(CliError::Unknown(other.to_owned())),
        }
    }
    if !clients || !rate || p.clients == 0 || p.accept_rate <= 0.0 {
        return Err(CliError::StormIncomplete);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses() {
        assert!(matches!(parse(&[]), Ok(Cli::Run(_))));
        let Ok(Cli::Run(r)) = parse(&s(&["run", "--include", "backoff/*", "--jobs", "2"])) else {
            panic!("run")
        };
        assert_eq!(r.include, vec!["backoff/*"]);
        assert_eq!(r.jobs, Some(2));
        let Ok(Cli::Storm(p)) = parse(&s(&[
            "storm",
            "--clients",
            "100",
            "--accept-rate",
            "50",
            "--drain-window-ms",
            "0..20000",
        ])) else {
            panic!("storm")
        };
        assert_eq!(p.drain_window_ms, Some((0.0, 20_000.0)));
        assert_eq!(
            parse(&s(&["storm", "--clients", "1"])),
            Err(CliError::StormIncomplete)
        );
        assert!(parse(&s(&["--bogus"])).is_err());
        let Ok(Cli::Storm(p)) = parse(&s(&[
            "storm",
            "--clients",
            "5",
            "--accept-rate",
            "1",
            "--no-jitter",
            "--burst",
            "7",
            "--peak-ms",
            "1",
            "--bucket-ms",
            "10",
            "--seed",
            "3",
            "--buckets",
            "4",
        ])) else {
            panic!("storm options")
        };
        assert_eq!(
            (p.draw, p.burst, p.peak_ms, p.bucket_ms, p.seed, p.buckets),
            (Draw::NoJitter, Some(7.0), 1.0, Some(10.0), 3, 4)
        );
        assert!(parse(&s(&[
            "storm",
            "--clients",
            "5",
            "--accept-rate",
            "1",
            "--peak-ms",
            "0"
        ]))
        .is_err());
    }

    #[test]
    fn storm_help_is_help_not_an_error() {
        assert_eq!(parse(&s(&["storm", "--help"])), Ok(Cli::StormHelp));
        assert_eq!(parse(&s(&["storm", "-h"])), Ok(Cli::StormHelp));
        assert_eq!(
            parse(&s(&["storm", "--clients", "3", "--help"])),
            Ok(Cli::StormHelp)
        );
        for flag in [
            "--seed",
            "--buckets",
            "--burst",
            "--bucket-ms",
            "--peak-ms",
            "--no-jitter",
            "--floor-atom",
            "--drain-window-ms",
        ] {
            assert!(STORM_USAGE.contains(flag), "{flag} undocumented");
            assert!(USAGE.contains(flag), "{flag} missing from the usage");
        }
    }
}
