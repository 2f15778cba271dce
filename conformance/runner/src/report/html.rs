//! The HTML report: one self-contained file (inline CSS, no scripts or external assets) with cases, details and the requirement matrix.

use super::escape;
use crate::outcome::Status;
use crate::suite::RunReport;
use std::fmt::Write;

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;width:100%;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;\
text-align:left;vertical-align:top;font-size:14px}th{background:#f4f4f4}\
.PASS{background:#e6f6e6}.FAIL,.XPASS{background:#fbe3e3}.NON-STRICT{background:#fff4d6}\
.XFAIL{background:#eee8f8}.UNSUPPORTED,.NOT-COVERED{background:#f0f0f0;color:#666}\
details pre{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:6px}\
.big{font-size:20px;font-weight:600}";

fn class(s: &str) -> String {
    escape(s)
}

/// The report as a standalone HTML page.
pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Tether conformance</title><style>{CSS}</style></head><body>"
    );
    let _ = write!(o, "<h1>Tether conformance report</h1>");
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = write!(
        o,
        "<p class=\"big {}\">{} — {}</p><p>{} cases: {} · {:.1} s · adapter <code>{}</code></p>",
        if r.failed { "FAIL" } else { "PASS" },
        if r.failed { "FAIL" } else { "PASS" },
        escape(&r.coverage_line()),
        r.cases.len(),
        escape(&counts.join(", ")),
        r.duration_ms as f64 / 1000.0,
        escape(&r.adapter)
    );
    if !r.coverage.uncovered_must.is_empty() {
        let _ = write!(
            o,
            "<p>MUST requirements not covered: {}</p>",
            escape(&r.coverage.uncovered_must.join(" "))
        );
    }
    let _ = write!(o, "<h2>Cases</h2><table><tr><th>case</th><th>result</th><th>level</th><th>time</th><th>covers</th><th>details</th></tr>");
    for c in &r.cases {
        let s = c.status.as_str();
        let mut detail = String::new();
        if !c.message.is_empty() {
            detail.push_str(&escape(&c.message));
        }
        let mut body = c.details.join("\n");
        if !c.metrics.is_empty() {
            body.push_str("\nmetrics: ");
            body.push_str(&serde_json::to_string_pretty(&c.metrics).unwrap_or_default());
        }
        if !c.adapter_stderr.is_empty() && c.status != Status::Pass {
            body.push_str("\nadapter stderr:\n");
            body.push_str(&c.adapter_stderr);
        }
        if !body.trim().is_empty() {
            let _ = write!(
                detail,
                "<details><summary>more</summary><pre>{}</pre></details>",
                escape(&body)
            );
        }
        let _ = write!(
            o,
            "<tr class=\"{}\"><td>{}</td><td>{s}</td><td>{}</td><td>{:.1}s</td><td>{}</td><td>{detail}</td></tr>",
            class(s),
            escape(&c.name),
            c.level,
            c.duration_ms as f64 / 1000.0,
            escape(&c.covers.join(" "))
        );
    }
    let _ = write!(o, "</table><h2>Requirements</h2><table><tr><th>ID</th><th>level</th><th>status</th><th>cases</th><th>requirement</th></tr>");
    for q in &r.coverage.requirements {
        let _ = write!(
            o,
            "<tr class=\"{}\"><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            class(&q.status),
            escape(&q.id),
            if q.server {
                " <small>(server)</small>"
            } else {
                ""
            },
            q.level,
            escape(&q.status),
            escape(&q.cases.join(", ")),
            escape(&q.summary)
        );
    }
    let _ = write!(o, "</table></body></html>");
    o
}
