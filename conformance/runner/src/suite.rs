//! Runs a selection of cases (concurrently where safe), with live progress, and assembles the run's report data.

use crate::adapter::AdapterCmd;
use crate::exec;
use crate::outcome::{self, CaseResult, Coverage, Raw, Status};
use crate::protocol::Hello;
use crate::scenario::Case;
use crate::source::Source;
use crate::spec::Spec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// Options of one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub adapter: AdapterCmd,
    pub jobs: usize,
    pub known_failures: BTreeMap<String, String>,
    /// Print a progress line per case.
    pub progress: bool,
}

/// Everything a report shows (and what `matrix --reuse` reads back from a JSON report).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// The adapter's command line.
    pub adapter: String,
    /// The adapter's `hello` (name, version, capabilities), from the first case that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_hello: Option<Hello>,
    /// The git commit of the source tree, when the caller found one ([`crate::source`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Cases run concurrently.
    pub jobs: usize,
    pub started_unix_ms: u64,
    pub duration_ms: u64,
    pub counts: BTreeMap<String, usize>,
    pub cases: Vec<CaseResult>,
    pub coverage: Coverage,
    /// True when the run fails (a FAIL or an XPASS).
    pub failed: bool,
}

impl RunReport {
    /// "N of M SPEC requirements covered".
    pub fn coverage_line(&self) -> String {
        format!(
            "{} of {} SPEC requirements covered",
            self.coverage.covered, self.coverage.total
        )
    }
}

/// Run `cases` and build the report.
pub async fn run(spec: &Spec, cases: Vec<Case>, opts: &RunOptions) -> RunReport {
    let started = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let total = cases.len();
    let (parallel, serial): (Vec<Case>, Vec<Case>) = cases.into_iter().partition(|c| !c.serial);
    let sem = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let spec = Arc::new(spec.clone());
    let opts_a = Arc::new(opts.clone());
    let mut set = tokio::task::JoinSet::new();
    for case in parallel {
        let (sem, done, spec, opts) = (sem.clone(), done.clone(), spec.clone(), opts_a.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = one(&spec, &case, &opts).await;
            progress(&opts, &done, total, &r.0);
            r
        });
    }
    let mut results = Vec::new();
    let mut adapter_hello = None;
    while let Some(r) = set.join_next().await {
        if let Ok((r, hello)) = r {
            adapter_hello = adapter_hello.or(hello);
            results.push(r);
        }
    }
    for case in serial {
        let (r, hello) = one(&spec, &case, opts).await;
        progress(opts, &done, total, &r);
        adapter_hello = adapter_hello.or(hello);
        results.push(r);
    }
    results.sort_by(|a, b| a.suite.cmp(&b.suite).then(a.name.cmp(&b.name)));
    let coverage = outcome::coverage(&spec, &results);
    let mut counts = BTreeMap::new();
    for r in &results {
        *counts.entry(r.status.as_str().to_owned()).or_insert(0) += 1;
    }
    let failed = results.iter().any(|r| r.status.fails_run());
    RunReport {
        adapter: opts.adapter.display(),
        adapter_hello,
        source: None,
        jobs: opts.jobs.max(1),
        started_unix_ms,
        duration_ms: started.elapsed().as_millis() as u64,
        counts,
        cases: results,
        coverage,
        failed,
    }
}

fn progress(
    opts: &RunOptions,
    done: &std::sync::atomic::AtomicUsize,
    total: usize,
    r: &CaseResult,
) {
    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if !opts.progress {
        return;
    }
    let mut line = format!(
        "[{n:>3}/{total}] {:<11} {:<48} {:>6.1}s",
        r.status.as_str(),
        r.name,
        r.duration_ms as f64 / 1000.0
    );
    if r.status != Status::Pass && !r.message.is_empty() {
        let m: String = r.message.chars().take(160).collect();
        line.push_str(&format!("\n              {m}"));
    }
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "{line}");
}

async fn one(spec: &Spec, case: &Case, opts: &RunOptions) -> (CaseResult, Option<Hello>) {
    let t0 = Instant::now();
    let out = exec::run_case(case, &opts.adapter).await;
    let level = outcome::case_level(spec, &case.covers);
    let known = opts.known_failures.get(&case.name).map(String::as_str);
    let status = outcome::status_of(&out.raw, level, known);
    let message = match &out.raw {
        Raw::Pass if known.is_some() => "passed, but listed as a known failure".to_owned(),
        Raw::Pass => String::new(),
        Raw::Fail(m) => m.clone(),
        Raw::Unsupported(caps) if caps.iter().any(|c| c == "redis-server") => {
            "needs redis-server, which is not installed (scripts/test-all.sh installs it)"
                .to_owned()
        }
        Raw::Unsupported(caps) => format!("adapter lacks capability {}", caps.join(", ")),
    };
    let result = CaseResult {
        name: case.name.clone(),
        suite: case.suite.clone(),
        covers: case.covers.clone(),
        level: level.as_str().to_owned(),
        status,
        duration_ms: t0.elapsed().as_millis() as u64,
        message,
        details: out.details,
        metrics: out.metrics,
        known_failure: known.map(str::to_owned),
        adapter_stderr: out
            .stderr
            .chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
    };
    (result, out.hello)
}
