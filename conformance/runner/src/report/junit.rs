//! The JUnit XML report: one testsuite per suite, one testcase per case (NON-STRICT and XFAIL pass with a note).

use super::escape;
use crate::outcome::Status;
use crate::suite::RunReport;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The report as JUnit XML.
pub fn render(r: &RunReport) -> String {
    let mut suites: BTreeMap<&str, Vec<&crate::outcome::CaseResult>> = BTreeMap::new();
    for c in &r.cases {
        suites.entry(c.suite.as_str()).or_default().push(c);
    }
    let fails = r.cases.iter().filter(|c| c.status.fails_run()).count();
    let skipped = r
        .cases
        .iter()
        .filter(|c| c.status == Status::Unsupported)
        .count();
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        o,
        r#"<testsuites name="tether-conformance" tests="{}" failures="{fails}" skipped="{skipped}" time="{:.3}">"#,
        r.cases.len(),
        r.duration_ms as f64 / 1000.0
    );
    for (suite, cases) in suites {
        let f = cases.iter().filter(|c| c.status.fails_run()).count();
        let s = cases
            .iter()
            .filter(|c| c.status == Status::Unsupported)
            .count();
        let t: u64 = cases.iter().map(|c| c.duration_ms).sum();
        let _ = writeln!(
            o,
            r#"  <testsuite name="{}" tests="{}" failures="{f}" skipped="{s}" time="{:.3}">"#,
            escape(suite),
            cases.len(),
            t as f64 / 1000.0
        );
        for c in cases {
            let _ = write!(
                o,
                r#"    <testcase classname="{}" name="{}" time="{:.3}">"#,
                escape(suite),
                escape(&c.name),
                c.duration_ms as f64 / 1000.0
            );
            let detail = escape(&format!("{}\n{}", c.message, c.details.join("\n")));
            match c.status {
                Status::Fail | Status::Xpass => {
                    let _ = write!(
                        o,
                        r#"<failure message="{} {}" type="{}">{detail}</failure>"#,
                        c.status.as_str(),
                        escape(&c.message.chars().take(300).collect::<String>()),
                        c.status.as_str()
                    );
                }
                Status::Unsupported => {
                    let _ = write!(o, r#"<skipped message="{}"/>"#, escape(&c.message));
                }
                Status::NonStrict | Status::Xfail => {
                    let _ = write!(o, "<system-out>{} {detail}</system-out>", c.status.as_str());
                }
                Status::Pass => {}
            }
            let _ = writeln!(
                o,
                "<properties><property name=\"covers\" value=\"{}\"/></properties></testcase>",
                escape(&c.covers.join(" "))
            );
        }
        let _ = writeln!(o, "  </testsuite>");
    }
    let _ = writeln!(o, "</testsuites>");
    o
}
