//! The terminal summary: per-case table, failures with details, per-suite counts and the coverage line.

use super::summary::{self, STATUSES};
use crate::outcome::Status;
use crate::suite::RunReport;
use std::fmt::Write;

/// The summary printed after the live progress.
pub fn render(r: &RunReport, verbose: bool) -> String {
    let mut o = String::new();
    let w = r
        .cases
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(10)
        .max(10);
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<w$}  {:<11} {:>7}  covers", "case", "result", "time");
    let _ = writeln!(o, "{}", "-".repeat(w + 40));
    for c in &r.cases {
        let _ = writeln!(
            o,
            "{:<w$}  {:<11} {:>6.1}s  {}",
            c.name,
            c.status.as_str(),
            c.duration_ms as f64 / 1000.0,
            c.covers.join(" ")
        );
    }
    let bad: Vec<_> = r
        .cases
        .iter()
        .filter(|c| !matches!(c.status, Status::Pass))
        .collect();
    if !bad.is_empty() {
        let _ = writeln!(o, "\nnot passing:");
        for c in bad {
            let _ = writeln!(o, "  {} {}: {}", c.status.as_str(), c.name, c.message);
            if let Some(k) = &c.known_failure {
                let _ = writeln!(o, "      known failure: {k}");
            }
            let n = if verbose { usize::MAX } else { 4 };
            for d in c.details.iter().take(n) {
                let d: String = d.chars().take(if verbose { 4000 } else { 300 }).collect();
                let _ = writeln!(o, "      {d}");
            }
        }
    }
    let _ = writeln!(o);
    let (suites, _) = summary::by_suite(&r.cases);
    let sw = suites
        .iter()
        .map(|s| s.suite.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut head = format!("{:<sw$}  {:>5}", "suite", "cases");
    for st in STATUSES {
        head.push_str(&format!(
            " {:>w$}",
            st.as_str(),
            w = st.as_str().len().max(4)
        ));
    }
    let _ = writeln!(o, "{head}  {:>7}", "time");
    for s in &suites {
        let mut line = format!("{:<sw$}  {:>5}", s.suite, s.cases);
        for st in STATUSES {
            line.push_str(&format!(
                " {:>w$}",
                s.count(st),
                w = st.as_str().len().max(4)
            ));
        }
        let _ = writeln!(o, "{line}  {:>6.1}s", s.duration_ms as f64 / 1000.0);
    }
    let _ = writeln!(o);
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(
        o,
        "{} cases: {}   ({:.1} s, adapter: {})",
        r.cases.len(),
        counts.join(", "),
        r.duration_ms as f64 / 1000.0,
        r.adapter
    );
    let _ = writeln!(o, "{}", r.coverage_line());
    if !r.coverage.uncovered_must.is_empty() {
        let _ = writeln!(
            o,
            "MUST requirements not covered: {}",
            r.coverage.uncovered_must.join(" ")
        );
    }
    let _ = writeln!(
        o,
        "{}",
        if r.failed {
            "RESULT: FAIL"
        } else {
            "RESULT: PASS"
        }
    );
    o
}
