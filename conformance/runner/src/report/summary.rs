//! Per-suite summary of a run: for each suite (a case name's first path segment), its cases counted by status and their total duration.

use crate::outcome::{CaseResult, Status};
use std::collections::BTreeMap;

/// Every status, in report column order.
pub const STATUSES: [Status; 6] = [
    Status::Pass,
    Status::Fail,
    Status::NonStrict,
    Status::Xfail,
    Status::Xpass,
    Status::Unsupported,
];

/// One suite's line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuiteSummary {
    /// The suite: `backoff` for `backoff/jitter/distribution`.
    pub suite: String,
    /// Cases in the suite.
    pub cases: usize,
    /// Cases per status (statuses with none are absent).
    pub counts: BTreeMap<Status, usize>,
    /// The cases' durations added up (cases run concurrently, so this is work, not wall time).
    pub duration_ms: u64,
}

impl SuiteSummary {
    /// Cases with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.counts.get(&status).copied().unwrap_or(0)
    }

    /// True when a case of the suite fails the run.
    pub fn failed(&self) -> bool {
        self.counts.keys().any(|s| s.fails_run())
    }
}

/// The suite of a case name: its first path segment.
pub fn suite_of(case: &str) -> &str {
    case.split('/').next().unwrap_or(case)
}

/// One line per suite, sorted by suite name, and the totals line (suite `""`).
pub fn by_suite(cases: &[CaseResult]) -> (Vec<SuiteSummary>, SuiteSummary) {
    let mut suites: BTreeMap<&str, SuiteSummary> = BTreeMap::new();
    let mut total = SuiteSummary::default();
    for c in cases {
        let name = suite_of(&c.name);
        let s = suites.entry(name).or_insert_with(|| SuiteSummary {
            suite: name.to_owned(),
            ..SuiteSummary::default()
        });
        for line in [s, &mut total] {
            line.cases += 1;
            *line.counts.entry(c.status).or_insert(0) += 1;
            line.duration_ms += c.duration_ms;
        }
    }
    (suites.into_values().collect(), total)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Map;

    pub(crate) fn case(name: &str, status: Status, ms: u64) -> CaseResult {
        CaseResult {
            name: name.into(),
            suite: suite_of(name).into(),
            covers: vec!["CONN-1".into()],
            level: "MUST".into(),
            status,
            duration_ms: ms,
            message: String::new(),
            details: Vec::new(),
            metrics: Map::new(),
            known_failure: None,
            adapter_stderr: String::new(),
        }
    }

    #[test]
    fn counts_and_durations_per_suite() {
        let cases = [
            case("wire/sse/bom", Status::Pass, 100),
            case("backoff/jitter/distribution", Status::Pass, 4800),
            case("backoff/growth/refused", Status::Fail, 5200),
            case("wire/unknown_type/ignored", Status::Xfail, 20),
            case("backoff/seed/reproducible", Status::Unsupported, 0),
            case("state", Status::NonStrict, 7),
        ];
        let (suites, total) = by_suite(&cases);
        let names: Vec<&str> = suites.iter().map(|s| s.suite.as_str()).collect();
        assert_eq!(names, ["backoff", "state", "wire"]);
        let b = &suites[0];
        assert_eq!((b.cases, b.duration_ms), (3, 10_000));
        assert_eq!(
            (
                b.count(Status::Pass),
                b.count(Status::Fail),
                b.count(Status::Unsupported),
                b.count(Status::Xpass)
            ),
            (1, 1, 1, 0)
        );
        assert!(b.failed());
        assert!(!suites[2].failed(), "XFAIL does not fail the run");
        assert_eq!(suites[1].count(Status::NonStrict), 1);
        assert_eq!((total.cases, total.duration_ms), (6, 10_127));
        assert_eq!(total.count(Status::Pass), 2);
        assert_eq!(
            STATUSES.iter().map(|s| total.count(*s)).sum::<usize>(),
            cases.len()
        );
        assert_eq!(by_suite(&[]).0, Vec::new());
    }
}
