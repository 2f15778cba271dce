//! The matrix page: one self-contained HTML file (inline CSS, no scripts or external assets): clients side by side, requirement by client, case by client, and every case's detail one click away.

use super::{ClientRun, MatrixReport};
use crate::outcome::{CaseResult, Status};
use crate::report::escape;
use std::fmt::Write;

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:3px 8px;\
text-align:left;vertical-align:top;font-size:13px}th{background:#f4f4f4;position:sticky;top:0}\
td.s{text-align:center;white-space:nowrap}td.s a{color:inherit;text-decoration:none;display:block}\
.PASS{background:#e6f6e6}.FAIL,.XPASS,.ERROR,.MISSING{background:#fbe3e3}.NON-STRICT{background:#fff4d6}\
.XFAIL{background:#eee8f8}.UNSUPPORTED,.NOT-COVERED,.NA{background:#f0f0f0;color:#777}\
pre{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:6px;margin:4px 0}\
section.case{border:1px solid #ddd;margin:6px 0;padding:4px 10px}section.case:target{outline:3px solid #36c}\
.big{font-size:20px;font-weight:600}small{color:#666}nav a{margin-right:1em}";

/// Lines of a case's details shown on the page (the JSON has them all).
const DETAIL_LINES: usize = 40;

fn anchor(client: &str, case: &str) -> String {
    let mut a = format!("c-{client}-");
    for ch in case.chars() {
        a.push(if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
            ch
        } else {
            '-'
        });
    }
    a
}

fn client_status(c: &ClientRun) -> (&'static str, String) {
    if !c.available {
        if c.failed {
            ("MISSING", "MISSING (required)".into())
        } else {
            ("NA", "not available".into())
        }
    } else if let Some(e) = &c.error {
        ("ERROR", format!("ERROR: {e}"))
    } else if c.failed {
        ("FAIL", "FAIL".into())
    } else {
        ("PASS", "PASS".into())
    }
}

fn cell(status: Option<&String>, href: Option<String>) -> String {
    match status {
        None => "<td class=\"s NA\">–</td>".to_owned(),
        Some(s) => {
            let inner = match href {
                Some(h) => format!("<a href=\"#{h}\">{}</a>", escape(s)),
                None => escape(s),
            };
            format!("<td class=\"s {}\">{inner}</td>", escape(s))
        }
    }
}

fn case_section(o: &mut String, client: &str, c: &CaseResult) {
    let _ = write!(
        o,
        "<section class=\"case\" id=\"{}\"><b>{}</b> · {} · <span class=\"{}\">{}</span> · {:.1} s · covers {}",
        anchor(client, &c.name),
        escape(client),
        escape(&c.name),
        c.status.as_str(),
        c.status.as_str(),
        c.duration_ms as f64 / 1000.0,
        escape(&c.covers.join(" "))
    );
    if !c.message.is_empty() {
        let _ = write!(o, "<div>{}</div>", escape(&c.message));
    }
    if let Some(k) = &c.known_failure {
        let _ = write!(o, "<div>known failure: {}</div>", escape(k));
    }
    let mut body: Vec<String> = c.details.iter().take(DETAIL_LINES).cloned().collect();
    if c.details.len() > DETAIL_LINES {
        body.push(format!(
            "... {} more lines in matrix.json",
            c.details.len() - DETAIL_LINES
        ));
    }
    if !c.metrics.is_empty() {
        body.push(format!(
            "metrics: {}",
            serde_json::to_string(&c.metrics).unwrap_or_default()
        ));
    }
    if !c.adapter_stderr.is_empty() && c.status != Status::Pass {
        body.push(format!("adapter stderr:\n{}", c.adapter_stderr));
    }
    if !body.is_empty() {
        let _ = write!(o, "<pre>{}</pre>", escape(&body.join("\n")));
    }
    o.push_str("</section>");
}

/// The matrix as a standalone HTML page.
pub fn render(m: &MatrixReport) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Tether conformance matrix</title><style>{CSS}</style></head><body>"
    );
    let _ = write!(
        o,
        "<h1>Tether conformance matrix</h1><p class=\"big {0}\">{0}</p><p>The same suite against every client available on this machine, \
         on the embedded reference server · {1} cases · {2:.1} s</p>\
         <nav><a href=\"#clients\">clients</a><a href=\"#requirements\">requirements</a><a href=\"#cases\">cases</a><a href=\"#details\">case details</a></nav>",
        if m.failed { "FAIL" } else { "PASS" },
        m.cases.len(),
        m.duration_ms as f64 / 1000.0
    );

    // Clients side by side.
    let _ = write!(
        o,
        "<h2 id=\"clients\">Clients</h2><table><tr><th>client</th><th>result</th><th>coverage</th><th>cases</th><th>adapter</th><th>capabilities</th><th>time</th></tr>"
    );
    for c in &m.clients {
        let (class, text) = client_status(c);
        let counts = c
            .report
            .as_ref()
            .map(|r| {
                r.counts
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| {
                if c.missing.is_empty() {
                    String::new()
                } else {
                    format!("missing {}", c.missing.join(", "))
                }
            });
        let adapter = match &c.hello {
            Some(h) => format!(
                "{} {}<br><small><code>{}</code></small>",
                escape(&h.adapter),
                escape(&h.version),
                escape(&c.command)
            ),
            None => format!("<small><code>{}</code></small>", escape(&c.command)),
        };
        let caps = c
            .hello
            .as_ref()
            .map(|h| h.capabilities.join(" "))
            .unwrap_or_default();
        let mut time = c
            .report
            .as_ref()
            .map(|r| format!("{:.1} s", r.duration_ms as f64 / 1000.0))
            .unwrap_or_default();
        if let Some(from) = &c.reused_from {
            let _ = write!(
                time,
                "<br><small>from <code>{}</code> (same source, not run again)</small>",
                escape(from)
            );
        }
        let _ = write!(
            o,
            "<tr><td><b>{}</b><br><small>{}</small></td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{adapter}</td><td><small>{}</small></td><td>{time}</td></tr>",
            escape(&c.name),
            escape(&c.label),
            escape(&text),
            escape(c.coverage_line.as_deref().unwrap_or("")),
            escape(&counts),
            escape(&caps)
        );
    }
    o.push_str("</table>");
    let ran: Vec<&ClientRun> = m.clients.iter().filter(|c| c.report.is_some()).collect();
    let head: String = ran
        .iter()
        .map(|c| format!("<th>{}</th>", escape(&c.name)))
        .collect();

    // Requirement by client.
    let _ = write!(
        o,
        "<h2 id=\"requirements\">Requirements by client</h2><p><small>A requirement is PASS for a client when a case naming it ran and passed; a cell links to the first case that decided it.</small></p>\
         <table><tr><th>ID</th><th>level</th>{head}<th>requirement</th><th>cases</th></tr>"
    );
    for q in &m.requirements {
        let mut cells = String::new();
        for c in &ran {
            let status = q.status.get(&c.name);
            let href = c.report.as_ref().and_then(|rep| {
                let worst = rep
                    .cases
                    .iter()
                    .filter(|r| r.covers.contains(&q.id))
                    .find(|r| Some(&r.status.as_str().to_owned()) == status)
                    .or_else(|| rep.cases.iter().find(|r| r.covers.contains(&q.id)));
                worst.map(|r| anchor(&c.name, &r.name))
            });
            cells.push_str(&cell(status, href));
        }
        let _ = write!(
            o,
            "<tr><td>{}{}</td><td>{}</td>{cells}<td>{}</td><td><small>{}</small></td></tr>",
            escape(&q.id),
            if q.server {
                " <small>(server)</small>"
            } else {
                ""
            },
            q.level,
            escape(&q.summary),
            escape(&q.cases.join(", "))
        );
    }
    o.push_str("</table>");

    // Case by client.
    let _ = write!(
        o,
        "<h2 id=\"cases\">Cases by client</h2><table><tr><th>case</th><th>level</th>{head}<th>covers</th></tr>"
    );
    for k in &m.cases {
        let mut cells = String::new();
        for c in &ran {
            cells.push_str(&cell(k.status.get(&c.name), Some(anchor(&c.name, &k.name))));
        }
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td>{cells}<td><small>{}</small></td></tr>",
            escape(&k.name),
            k.level,
            escape(&k.covers.join(" "))
        );
    }
    o.push_str("</table>");

    // Every case's detail, per client.
    let _ = write!(o, "<h2 id=\"details\">Case details</h2>");
    for c in &ran {
        let _ = write!(o, "<h3>{}</h3>", escape(&c.label));
        if let Some(rep) = &c.report {
            for r in &rep.cases {
                case_section(&mut o, &c.name, r);
            }
        }
    }
    o.push_str("</body></html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_html_ids() {
        assert_eq!(
            anchor("kotlin", "backoff/jitter/distribution"),
            "c-kotlin-backoff-jitter-distribution"
        );
    }
}
