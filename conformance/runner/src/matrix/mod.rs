//! `tether-conformance matrix`: the suite against every client available on this machine, one JSON and one HTML page side by side.
//!
//! Clients come from a registry file (`conformance/adapters/clients.json`: name, adapter
//! command, what must exist); each available one runs the same selected cases, one client
//! after the other (cases of a client run concurrently as in `run`). Adapter commands run from
//! the repository root. `--reuse native=report.json` takes a client's column from the JSON
//! report of a `run` of the same selection on the same source tree instead of running it again
//! (the test command's main-job run feeds the matrix this way).

pub mod html;
pub mod registry;

use crate::adapter::AdapterCmd;
use crate::cli::CliError;
use crate::outcome;
use crate::preflight;
use crate::protocol::Hello;
use crate::scenario::Case;
use crate::source::Source;
use crate::spec::Spec;
use crate::suite::{self, RunOptions, RunReport};
use registry::{ClientEntry, Registry};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `matrix`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatrixArgs {
    /// Only these clients (default: every client of the registry).
    pub clients: Vec<String>,
    /// These clients must be available (the run fails otherwise).
    pub require: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub scenarios: Option<PathBuf>,
    pub registry: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub verbose: bool,
    /// `client=report.json`: that client's column comes from a `run`'s JSON report.
    pub reuse: Vec<(String, PathBuf)>,
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parse the arguments after `matrix`.
pub fn parse_args(args: &[String]) -> Result<MatrixArgs, CliError> {
    let mut m = MatrixArgs::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| CliError::MissingValue(a.clone()))
        };
        match a.as_str() {
            "--clients" => m.clients.extend(list(&val()?)),
            "--require" => m.require.extend(list(&val()?)),
            "--include" => m.include.push(val()?),
            "--exclude" => m.exclude.push(val()?),
            "--scenarios" => m.scenarios = Some(val()?.into()),
            "--registry" => m.registry = Some(val()?.into()),
            "--out" => m.out = Some(val()?.into()),
            "--json" => m.json = Some(val()?.into()),
            "--html" => m.html = Some(val()?.into()),
            "--jobs" => {
                let v = val()?;
                m.jobs = Some(v.parse().map_err(|_| CliError::BadValue {
                    flag: a.clone(),
                    value: v.clone(),
                })?);
            }
            "--verbose" | "-v" => m.verbose = true,
            "--reuse" => {
                let v = val()?;
                match v.split_once('=') {
                    Some((name, path)) if !name.is_empty() && !path.is_empty() => {
                        m.reuse.push((name.to_owned(), path.into()));
                    }
                    _ => {
                        return Err(CliError::BadValue {
                            flag: a.clone(),
                            value: v.clone(),
                        })
                    }
                }
            }
            other => return Err(CliError::Unknown(other.to_owned())),
        }
    }
    Ok(m)
}

/// One client's column.
#[derive(Clone, Debug, Serialize)]
pub struct ClientRun {
    pub name: String,
    pub label: String,
    /// The adapter command line as run.
    pub command: String,
    pub available: bool,
    /// The `requires` entries not found (when not available).
    pub missing: Vec<String>,
    /// The adapter's hello (name, version, capabilities), from the preflight.
    pub hello: Option<Hello>,
    /// How long the preflight start took (a first start may include a build).
    pub preflight_ms: Option<u64>,
    /// The `run` report this column was read from (`--reuse`), instead of running the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// Why the client could not be run (prepare or preflight failed).
    pub error: Option<String>,
    /// True when this client fails the matrix.
    pub failed: bool,
    pub coverage_line: Option<String>,
    pub report: Option<RunReport>,
}

/// One requirement's row: status per client (absent for clients that did not run).
#[derive(Clone, Debug, Serialize)]
pub struct RequirementRow {
    pub id: String,
    pub level: &'static str,
    pub server: bool,
    pub summary: String,
    pub status: BTreeMap<String, String>,
    pub cases: Vec<String>,
}

/// One case's row: status per client.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRow {
    pub name: String,
    pub suite: String,
    pub covers: Vec<String>,
    pub level: &'static str,
    pub status: BTreeMap<String, String>,
}

/// The whole matrix.
#[derive(Clone, Debug, Serialize)]
pub struct MatrixReport {
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    pub clients: Vec<ClientRun>,
    pub requirements: Vec<RequirementRow>,
    pub cases: Vec<CaseRow>,
    /// True when an available client failed, or a required one was not available.
    pub failed: bool,
}

/// Where adapters run (the repository root), the built-in native adapter, and the source tree
/// being tested (a reused report must come from the same one).
pub struct Context {
    pub root: PathBuf,
    pub native: AdapterCmd,
    pub source: Option<Source>,
}

/// A client's column from a `run`'s JSON report: it must be a run of exactly the selected cases,
/// on the same source tree (commit and dirty flag).
fn reuse_report(path: &Path, cases: &[Case], source: Option<&Source>) -> Result<RunReport, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("reuse {shown}: {e}"))?;
    let rep: RunReport = serde_json::from_str(&text).map_err(|e| format!("reuse {shown}: {e}"))?;
    if rep.source.as_ref() != source {
        let show = |s: Option<&Source>| s.map_or_else(|| "unknown".to_owned(), Source::short);
        return Err(format!(
            "reuse {shown}: the report tested source {}, this is {}; run it again",
            show(rep.source.as_ref()),
            show(source)
        ));
    }
    let mut want: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    let mut got: Vec<&str> = rep.cases.iter().map(|c| c.name.as_str()).collect();
    want.sort_unstable();
    got.sort_unstable();
    if want != got {
        return Err(format!(
            "reuse {shown}: the report ran {} cases, not the {} selected here; run it with the same selection",
            got.len(),
            want.len()
        ));
    }
    Ok(rep)
}

fn known_failures(entry: &ClientEntry, root: &Path) -> Result<BTreeMap<String, String>, String> {
    let path = match &entry.known_failures {
        Some(p) => root.join(p),
        None => root.join(format!("conformance/known-failures/{}.txt", entry.name)),
    };
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    outcome::load_known_failures(&path).map_err(|e| e.to_string())
}

async fn prepare(line: &str, root: &Path) -> Result<(), String> {
    eprintln!("matrix: prepare `{line}`");
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(root)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status()
        .await
        .map_err(|e| format!("prepare `{line}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("prepare `{line}` failed ({status})"))
    }
}

/// Run one client; `Err` when it could not be run at all.
async fn run_client(
    spec: &Spec,
    cases: &[Case],
    entry: &ClientEntry,
    adapter: AdapterCmd,
    ctx: &Context,
    jobs: usize,
) -> Result<(Hello, u64, RunReport), String> {
    if let Some(p) = &entry.prepare {
        prepare(p, &ctx.root).await?;
    }
    let known_failures = known_failures(entry, &ctx.root)?;
    let (hello, took) = preflight::check(&adapter, preflight::DEFAULT_TIMEOUT).await?;
    eprintln!(
        "matrix: {} ({} {}) started in {:.1} s; {} cases, {jobs} jobs",
        entry.name,
        hello.adapter,
        hello.version,
        took.as_secs_f64(),
        cases.len()
    );
    let opts = RunOptions {
        adapter,
        jobs,
        known_failures,
        progress: true,
    };
    let rep = suite::run(spec, cases.to_vec(), &opts).await;
    Ok((hello, took.as_millis() as u64, rep))
}

/// Run the matrix. `cases` are already selected; the registry is read by the caller.
pub async fn run(
    spec: &Spec,
    cases: Vec<Case>,
    registry: &Registry,
    ctx: &Context,
    args: &MatrixArgs,
) -> MatrixReport {
    let t0 = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let path_var = std::env::var_os("PATH");
    let mut clients = Vec::new();
    for entry in &registry.clients {
        if !args.clients.is_empty() && !args.clients.contains(&entry.name) {
            continue;
        }
        let adapter = match &entry.command {
            None => Some(ctx.native.clone()),
            Some(line) => AdapterCmd::parse(line),
        };
        let command = adapter
            .as_ref()
            .map(AdapterCmd::display)
            .unwrap_or_default();
        let mut run = ClientRun {
            name: entry.name.clone(),
            label: if entry.label.is_empty() {
                entry.name.clone()
            } else {
                entry.label.clone()
            },
            command,
            available: false,
            missing: registry::missing(entry, &ctx.root, path_var.as_deref()),
            hello: None,
            preflight_ms: None,
            reused_from: None,
            error: None,
            failed: false,
            coverage_line: None,
            report: None,
        };
        if let Some((_, path)) = args.reuse.iter().find(|(n, _)| n == &entry.name) {
            run.available = true;
            run.reused_from = Some(path.display().to_string());
            match reuse_report(path, &cases, ctx.source.as_ref()) {
                Ok(rep) => {
                    eprintln!(
                        "\nmatrix: client {} from {} (not run again)",
                        entry.name,
                        path.display()
                    );
                    run.hello = rep.adapter_hello.clone();
                    run.failed = rep.failed;
                    run.coverage_line = Some(rep.coverage_line());
                    eprintln!("{}", summary(&entry.name, &rep, args.verbose));
                    run.report = Some(rep);
                }
                Err(e) => {
                    eprintln!("matrix: {}: {e}", entry.name);
                    run.error = Some(e);
                    run.failed = true;
                }
            }
            clients.push(run);
            continue;
        }
        let Some(adapter) = adapter else {
            run.error = Some("empty adapter command".into());
            run.failed = true;
            clients.push(run);
            continue;
        };
        if !run.missing.is_empty() {
            eprintln!(
                "matrix: {} not available (missing {})",
                entry.name,
                run.missing.join(", ")
            );
            run.failed = args.require.contains(&entry.name);
            clients.push(run);
            continue;
        }
        run.available = true;
        eprintln!("\nmatrix: client {} (`{}`)", entry.name, run.command);
        match run_client(spec, &cases, entry, adapter, ctx, args.jobs.unwrap_or(4)).await {
            Ok((hello, ms, rep)) => {
                run.hello = Some(hello);
                run.preflight_ms = Some(ms);
                run.failed = rep.failed;
                run.coverage_line = Some(rep.coverage_line());
                eprintln!("{}", summary(&entry.name, &rep, args.verbose));
                run.report = Some(rep);
            }
            Err(e) => {
                eprintln!("matrix: {}: {e}", entry.name);
                run.error = Some(e);
                run.failed = true;
            }
        }
        clients.push(run);
    }
    for r in &args.require {
        if !clients.iter().any(|c| &c.name == r) {
            clients.push(ClientRun {
                name: r.clone(),
                label: r.clone(),
                command: String::new(),
                available: false,
                missing: vec![format!("{r} (not in the registry)")],
                hello: None,
                preflight_ms: None,
                reused_from: None,
                error: Some("required client is not in the registry".into()),
                failed: true,
                coverage_line: None,
                report: None,
            });
        }
    }
    let requirements = spec
        .requirements
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let mut status = BTreeMap::new();
            let mut case_names = Vec::new();
            for c in &clients {
                if let Some(rep) = &c.report {
                    if let Some(r) = rep.coverage.requirements.get(i).filter(|r| r.id == q.id) {
                        status.insert(c.name.clone(), r.status.clone());
                        for n in &r.cases {
                            if !case_names.contains(n) {
                                case_names.push(n.clone());
                            }
                        }
                    }
                }
            }
            RequirementRow {
                id: q.id.clone(),
                level: q.level.as_str(),
                server: q.server,
                summary: q.summary.clone(),
                status,
                cases: case_names,
            }
        })
        .collect();
    let case_rows = cases
        .iter()
        .map(|case| {
            let mut status = BTreeMap::new();
            for c in &clients {
                if let Some(r) = c
                    .report
                    .as_ref()
                    .and_then(|rep| rep.cases.iter().find(|r| r.name == case.name))
                {
                    status.insert(c.name.clone(), r.status.as_str().to_owned());
                }
            }
            CaseRow {
                name: case.name.clone(),
                suite: case.suite.clone(),
                covers: case.covers.clone(),
                level: outcome::case_level(spec, &case.covers).as_str(),
                status,
            }
        })
        .collect();
    let failed = clients.iter().any(|c| c.failed);
    MatrixReport {
        started_unix_ms,
        duration_ms: t0.elapsed().as_millis() as u64,
        clients,
        requirements,
        cases: case_rows,
        failed,
    }
}

/// A client's compact terminal summary: counts, coverage, and what did not pass.
fn summary(name: &str, r: &RunReport, verbose: bool) -> String {
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let mut o = format!(
        "matrix: {name}: {} cases: {} ({:.1} s)\nmatrix: {name}: {}",
        r.cases.len(),
        counts.join(", "),
        r.duration_ms as f64 / 1000.0,
        r.coverage_line()
    );
    for c in r.cases.iter().filter(|c| c.status != outcome::Status::Pass) {
        o.push_str(&format!(
            "\n  {} {}: {}",
            c.status.as_str(),
            c.name,
            c.message
        ));
        let n = if verbose { usize::MAX } else { 3 };
        for d in c.details.iter().take(n) {
            let d: String = d.chars().take(if verbose { 4000 } else { 240 }).collect();
            o.push_str(&format!("\n      {d}"));
        }
    }
    o
}

/// The closing table: one line per client.
pub fn render_terminal(m: &MatrixReport) -> String {
    let mut o = String::from("\nclient      result          coverage\n");
    for c in &m.clients {
        let result = if !c.available {
            if c.failed {
                "MISSING (required)".to_owned()
            } else {
                "not available".to_owned()
            }
        } else if c.error.is_some() {
            "ERROR".to_owned()
        } else if c.failed {
            "FAIL".to_owned()
        } else {
            "PASS".to_owned()
        };
        let detail = c
            .coverage_line
            .clone()
            .or_else(|| c.error.clone())
            .unwrap_or_else(|| format!("missing {}", c.missing.join(", ")));
        o.push_str(&format!("{:<11} {:<15} {detail}\n", c.name, result));
    }
    o.push_str(&format!(
        "MATRIX: {} ({:.1} s)\n",
        if m.failed { "FAIL" } else { "PASS" },
        m.duration_ms as f64 / 1000.0
    ));
    o
}

/// The matrix as pretty JSON.
pub fn render_json(m: &MatrixReport) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn matrix_args_parse() {
        let m = parse_args(&s(&[
            "--clients",
            "native, kotlin",
            "--require",
            "native",
            "--include",
            "state",
            "--jobs",
            "2",
            "--reuse",
            "native=out/report.json",
        ]))
        .expect("parses");
        assert_eq!(
            m.reuse,
            vec![("native".to_owned(), PathBuf::from("out/report.json"))]
        );
        assert!(parse_args(&s(&["--reuse", "native"])).is_err());
        assert_eq!(m.clients, vec!["native", "kotlin"]);
        assert_eq!(m.require, vec!["native"]);
        assert_eq!(m.include, vec!["state"]);
        assert_eq!(m.jobs, Some(2));
        assert!(parse_args(&s(&["--jobs", "x"])).is_err());
        assert!(parse_args(&s(&["--bogus"])).is_err());
    }
}
