//! Results: per-case status (PASS, FAIL, NON-STRICT, XFAIL, XPASS, UNSUPPORTED), known failures, and per-requirement coverage.

use crate::spec::{Level, Spec};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// A case's final status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Status {
    Pass,
    Fail,
    /// A SHOULD-level case missed.
    NonStrict,
    /// Failed, and listed as a known failure.
    Xfail,
    /// Passed although listed as a known failure: fails the run.
    Xpass,
    /// The adapter lacks a required capability.
    Unsupported,
}

impl Status {
    /// Stable name as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NonStrict => "NON-STRICT",
            Status::Xfail => "XFAIL",
            Status::Xpass => "XPASS",
            Status::Unsupported => "UNSUPPORTED",
        }
    }
    /// True when this status fails the run.
    pub fn fails_run(self) -> bool {
        matches!(self, Status::Fail | Status::Xpass)
    }
}

/// What running a case produced, before known failures are applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    Pass,
    Fail(String),
    Unsupported(Vec<String>),
}

/// One case's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    pub name: String,
    pub suite: String,
    pub covers: Vec<String>,
    /// `MUST`, `NORMATIVE`, `SHOULD` or `MAY`.
    pub level: String,
    pub status: Status,
    pub duration_ms: u64,
    pub message: String,
    pub details: Vec<String>,
    pub metrics: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_failure: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub adapter_stderr: String,
}

/// The strictest level among the IDs a case covers (unknown IDs count as MUST).
pub fn case_level(spec: &Spec, covers: &[String]) -> Level {
    covers
        .iter()
        .map(|id| spec.get(id).map_or(Level::Must, |r| r.level))
        .min()
        .unwrap_or(Level::Must)
}

/// A known failure whose reason starts with this fails only sometimes: a pass is a PASS (not
/// an XPASS), a failure an XFAIL. For an open defect that shows up under timing, so the run
/// stays green while the report keeps showing it.
pub const FLAKY: &str = "flaky:";

/// Map a raw outcome to a status given the case level and the known-failure list.
pub fn status_of(raw: &Raw, level: Level, known: Option<&str>) -> Status {
    match (raw, known) {
        (Raw::Unsupported(_), _) => Status::Unsupported,
        (Raw::Pass, None) => Status::Pass,
        (Raw::Pass, Some(r)) if r.starts_with(FLAKY) => Status::Pass,
        (Raw::Pass, Some(_)) => Status::Xpass,
        (Raw::Fail(_), Some(_)) => Status::Xfail,
        (Raw::Fail(_), None) if matches!(level, Level::Should | Level::May) => Status::NonStrict,
        (Raw::Fail(_), None) => Status::Fail,
    }
}

/// Why a known-failures file could not be read.
#[derive(Debug, Error)]
#[error("known failures {path}: {source}")]
pub struct KnownFailuresError {
    path: String,
    source: std::io::Error,
}

/// Case names expected to fail, with the reason: one per line, `name  reason...`; `#` comments.
pub fn load_known_failures(path: &Path) -> Result<BTreeMap<String, String>, KnownFailuresError> {
    let text = std::fs::read_to_string(path).map_err(|source| KnownFailuresError {
        path: path.display().to_string(),
        source,
    })?;
    Ok(parse_known_failures(&text))
}

/// Parse the known-failures format.
pub fn parse_known_failures(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((n, r)) => (n.to_owned(), r.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

/// One requirement's standing in a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReqResult {
    pub id: String,
    /// `MUST`, `NORMATIVE`, `SHOULD` or `MAY`.
    pub level: String,
    pub server: bool,
    pub summary: String,
    /// The requirement's whole text, as Markdown (from SPEC.md).
    pub text: String,
    /// PASS (covered), FAIL, NON-STRICT, XFAIL, UNSUPPORTED, or NOT-COVERED (no case names it).
    pub status: String,
    pub cases: Vec<String>,
}

/// Coverage: a requirement is covered when a case that declares it ran and passed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Coverage {
    pub covered: usize,
    pub total: usize,
    pub uncovered_must: Vec<String>,
    pub requirements: Vec<ReqResult>,
}

/// Per-requirement results from case results.
pub fn coverage(spec: &Spec, cases: &[CaseResult]) -> Coverage {
    let mut by_id: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for c in cases {
        for id in &c.covers {
            by_id.entry(id.as_str()).or_default().push(c);
        }
    }
    let mut reqs = Vec::new();
    let mut covered = 0;
    let mut uncovered_must = Vec::new();
    for r in &spec.requirements {
        let cs = by_id.get(r.id.as_str()).cloned().unwrap_or_default();
        let worst = cs
            .iter()
            .map(|c| c.status)
            .filter(|s| *s != Status::Unsupported)
            .max_by_key(|s| match s {
                Status::Fail | Status::Xpass => 4,
                Status::NonStrict => 3,
                Status::Xfail => 2,
                Status::Pass => 1,
                Status::Unsupported => 0,
            });
        let passed = cs.iter().any(|c| c.status == Status::Pass);
        let status = match worst {
            None if cs.is_empty() => "NOT-COVERED".to_owned(),
            None => "UNSUPPORTED".to_owned(),
            Some(s) => s.as_str().to_owned(),
        };
        if passed {
            covered += 1;
        } else if r.level == Level::Must {
            uncovered_must.push(r.id.clone());
        }
        reqs.push(ReqResult {
            id: r.id.clone(),
            level: r.level.as_str().to_owned(),
            server: r.server,
            summary: r.summary.clone(),
            text: r.text.clone(),
            status,
            cases: cs.iter().map(|c| c.name.clone()).collect(),
        });
    }
    Coverage {
        covered,
        total: spec.len(),
        uncovered_must,
        requirements: reqs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_of(&Raw::Pass, Level::Must, None), Status::Pass);
        assert_eq!(status_of(&Raw::Pass, Level::Must, Some("x")), Status::Xpass);
        // A flaky known failure: a pass is a pass, a failure is still shown (XFAIL).
        let flaky = Some("flaky: issue 9");
        assert_eq!(status_of(&Raw::Pass, Level::Must, flaky), Status::Pass);
        assert_eq!(
            status_of(&Raw::Fail("x".into()), Level::Must, flaky),
            Status::Xfail
        );
        assert_eq!(
            status_of(&Raw::Fail("x".into()), Level::Should, None),
            Status::NonStrict
        );
        assert_eq!(
            status_of(&Raw::Fail("x".into()), Level::Must, Some("r")),
            Status::Xfail
        );
        assert!(Status::Xpass.fails_run());
        let k = parse_known_failures("# c\nbackoff/x   flaky on CI\n\nwire/y\n");
        assert_eq!(k.get("backoff/x").map(String::as_str), Some("flaky on CI"));
        assert_eq!(k.get("wire/y").map(String::as_str), Some(""));
    }
}
