//! Command-line parsing for `run`, `list` and `storm` (no dependencies; `--help` prints usage).

use crate::storm::StormParams;
use std::path::PathBuf;
use thiserror::Error;

/// Usage text.
pub const USAGE: &str = "\
tether-conformance — the Tether conformance suite

USAGE:
  tether-conformance [run] [OPTIONS]     run the suite (default: native adapter, embedded server)
  tether-conformance list [--include G] [--scenarios DIR]
  tether-conformance storm --clients N --accept-rate R [POLICY] [--no-jitter]

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

STORM OPTIONS:
  --clients N  --accept-rate R  [--floor-ms F] [--base-ms B] [--cap-ms C] [--multiplier M]
  [--drain-window-ms A..B] [--no-jitter] [--seed S] [--buckets K] [--burst N]
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
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Cli {
    Run(RunArgs),
    List(RunArgs),
    Storm(StormParams),
    /// The native adapter built into this binary (the default adapter of `run`).
    Adapter(Vec<String>),
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

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cli, CliError> {
    let (cmd, rest) = match args.first().map(String::as_str) {
        Some("run") => ("run", &args[1..]),
        Some("list") => ("list", &args[1..]),
        Some("storm") => ("storm", &args[1..]),
        Some("__adapter-native") => return Ok(Cli::Adapter(args[1..].to_vec())),
        Some("-h" | "--help" | "help") => return Ok(Cli::Help),
        _ => ("run", args),
    };
    if cmd == "storm" {
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
            "--burst" => p.burst = Some(num(&value(&mut it, a)?, a)?),
            "--no-jitter" => p.no_jitter = true,
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
    }
}
