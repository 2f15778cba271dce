//! The HTML report: one self-contained file (inline CSS, no scripts or external assets) with the run's provenance, a per-suite summary, every case with its details, and every requirement with its full SPEC text.

use super::summary::{self, SuiteSummary, STATUSES};
use super::{escape, markdown, utc};
use crate::outcome::{CaseResult, Status};
use crate::suite::RunReport;
use std::fmt::Write;

const CSS: &str = r#"
:root{--fg:#1f2328;--muted:#59636e;--border:#d1d9e0;--soft:#f6f8fa;--link:#0969da;
--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;--warn:#9a6700;--warn-bg:#fff8c5;
--xfail:#8250df;--xfail-bg:#fbefff;--unsup:#59636e;--unsup-bg:#eff2f5}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI","Noto Sans",Helvetica,Arial,sans-serif}
main{max-width:1320px;margin:0 auto;padding:28px 28px 64px}
h1{font-size:24px;margin:0}
h2{font-size:18px;margin:36px 0 8px;padding-bottom:6px;border-bottom:1px solid var(--border)}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
code,pre{font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",monospace}
code{font-size:12px;background:#eff1f3;padding:.1em .35em;border-radius:4px}
.top{display:flex;align-items:center;gap:16px;flex-wrap:wrap}
.verdict{color:#fff;font-weight:700;font-size:16px;letter-spacing:.04em;padding:4px 14px;border-radius:6px}
.verdict.PASS{background:var(--pass)}.verdict.FAIL{background:var(--fail)}
.coverage{font-size:16px;font-weight:600}
.uncovered{color:var(--fail);margin:6px 0 0}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:18px 0 0;padding:14px 18px;background:var(--soft);border:1px solid var(--border);border-radius:8px}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;overflow-wrap:anywhere}
.caps code{margin-right:4px}
.chips{display:flex;gap:8px;flex-wrap:wrap;margin:14px 0 0}
table{border-collapse:collapse;width:100%;margin:6px 0 0}
th,td{text-align:left;vertical-align:top;padding:6px 10px;border-bottom:1px solid var(--border)}
thead th{background:var(--soft);font-weight:600;font-size:13px;color:var(--muted);border-top:1px solid var(--border)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.zero{color:#b7bdc4}
tr.total td{font-weight:600;border-top:2px solid var(--border)}
tr.group th{background:#fff;font-size:15px;color:var(--fg);padding-top:20px;border-bottom:2px solid var(--border)}
tr.group th .count{color:var(--muted);font-weight:400;font-size:13px;margin-left:8px}
.badge{display:inline-block;font-size:12px;font-weight:600;line-height:18px;padding:0 8px;border-radius:2em;border:1px solid transparent;white-space:nowrap}
.badge.PASS{color:var(--pass);background:var(--pass-bg);border-color:#aceebb}
.badge.FAIL,.badge.XPASS{color:var(--fail);background:var(--fail-bg);border-color:#ffcecb}
.badge.NON-STRICT{color:var(--warn);background:var(--warn-bg);border-color:#f5e0a0}
.badge.XFAIL{color:var(--xfail);background:var(--xfail-bg);border-color:#ecd8ff}
.badge.UNSUPPORTED,.badge.NOT-COVERED{color:var(--unsup);background:var(--unsup-bg);border-color:var(--border)}
tr.bad td:first-child{box-shadow:inset 3px 0 0 var(--fail)}
.case{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;white-space:nowrap}
.ids a{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;margin-right:6px;white-space:nowrap}
.msg{color:var(--fail);margin-bottom:4px;overflow-wrap:anywhere}
table.cases td.ids{max-width:280px}table.cases td.det{width:36%}
tr.more td{border-top:0;padding-top:0}tr.more.bad td{box-shadow:inset 3px 0 0 var(--fail)}
table.suites{width:auto;min-width:760px}table.suites td,table.suites th{padding:5px 14px}
details summary{cursor:pointer;color:var(--link);font-size:13px}
details pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;line-height:1.45;background:var(--soft);border:1px solid var(--border);border-radius:6px;padding:8px 10px;margin:6px 0 0;max-height:520px;overflow:auto}
.req p{margin:0 0 6px}.req p:last-child{margin-bottom:0}
.req table.md{width:auto;margin:6px 0 8px}
.req table.md th,.req table.md td{border:1px solid var(--border);padding:3px 8px;font-size:13px}
.req table.md th{background:var(--soft);color:var(--fg)}
.req ul,.req ol{margin:0 0 6px;padding-left:20px}
.server{font-size:11px;color:var(--muted);display:block}
.muted{color:var(--muted)}
td.id{white-space:nowrap;font-weight:600}
table.reqs td.req{min-width:520px}table.reqs a.case{font-size:12px;white-space:nowrap}
footer{margin-top:40px;color:var(--muted);font-size:12px}
@media print{details pre{max-height:none}thead th{position:static}}
"#;

fn badge(status: &str) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", escape(status))
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// A case's duration: milliseconds under a second, else seconds.
fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        secs(ms)
    }
}

/// The anchor of a case or a requirement.
fn anchor(kind: &str, name: &str) -> String {
    escape(&format!("{kind}-{name}"))
}

/// The report as a standalone HTML page.
pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    let verdict = if r.failed { "FAIL" } else { "PASS" };
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Tether conformance: {verdict}, {}</title><style>{CSS}</style></head><body><main>",
        escape(&r.coverage_line())
    );
    header(r, verdict, &mut o);
    let (suites, total) = summary::by_suite(&r.cases);
    suite_table(&suites, &total, &mut o);
    cases(r, &suites, &mut o);
    requirements(r, &mut o);
    let _ = write!(
        o,
        "<footer>Generated by tether-conformance {} on {}. Statuses: PASS passed; FAIL failed a \
         MUST or normative case; NON-STRICT failed a SHOULD/MAY case; XFAIL failed as the \
         known-failures list expects; XPASS passed although listed (fails the run); \
         UNSUPPORTED needs a capability the adapter did not declare.</footer></main></body></html>",
        escape(env!("CARGO_PKG_VERSION")),
        escape(&utc(r.started_unix_ms))
    );
    o
}

fn header(r: &RunReport, verdict: &str, o: &mut String) {
    let _ = write!(
        o,
        "<div class=\"top\"><h1>Tether conformance report</h1>\
         <span class=\"verdict {verdict}\">{verdict}</span>\
         <span class=\"coverage\">{}</span></div>",
        escape(&r.coverage_line())
    );
    if !r.coverage.uncovered_must.is_empty() {
        let ids: Vec<String> = r
            .coverage
            .uncovered_must
            .iter()
            .map(|id| format!("<a href=\"#{}\">{}</a>", anchor("req", id), escape(id)))
            .collect();
        let _ = write!(
            o,
            "<p class=\"uncovered\">MUST requirements not covered: {}</p>",
            ids.join(" ")
        );
    }
    let adapter = match &r.adapter_hello {
        Some(h) => format!(
            "<strong>{}</strong> {} <span class=\"muted\">(adapter protocol {})</span>",
            escape(&h.adapter),
            escape(&h.version),
            h.protocol
        ),
        None => "<span class=\"muted\">no adapter answered with a hello</span>".into(),
    };
    let commit = match &r.source {
        Some(s) => format!(
            "<code title=\"{}\">{}</code>{}",
            escape(&s.commit),
            escape(&s.short()),
            if s.dirty {
                " <span class=\"muted\">(uncommitted changes to tracked files)</span>"
            } else {
                ""
            }
        ),
        None => "<span class=\"muted\">unknown (not a git checkout)</span>".into(),
    };
    let _ = write!(
        o,
        "<dl class=\"meta\"><dt>Date</dt><dd>{}</dd><dt>Commit</dt><dd>{commit}</dd>\
         <dt>Adapter</dt><dd>{adapter}</dd><dt>Command</dt><dd><code>{}</code></dd>",
        escape(&utc(r.started_unix_ms)),
        escape(&r.adapter)
    );
    if let Some(h) = &r.adapter_hello {
        let caps: Vec<String> = h
            .capabilities
            .iter()
            .map(|c| format!("<code>{}</code>", escape(c)))
            .collect();
        let _ = write!(
            o,
            "<dt>Capabilities</dt><dd class=\"caps\">{}</dd>",
            caps.join("")
        );
    }
    let _ = write!(
        o,
        "<dt>Run</dt><dd>{} cases in {} ({} at a time)</dd></dl>",
        r.cases.len(),
        secs(r.duration_ms),
        r.jobs
    );
    let chips: Vec<String> = STATUSES
        .iter()
        .filter_map(|s| {
            let n = r.counts.get(s.as_str()).copied().unwrap_or(0);
            (n > 0).then(|| {
                format!(
                    "<span class=\"badge {0}\">{n} {0}</span>",
                    escape(s.as_str())
                )
            })
        })
        .collect();
    let _ = write!(o, "<div class=\"chips\">{}</div>", chips.join(""));
}

fn suite_table(suites: &[SuiteSummary], total: &SuiteSummary, o: &mut String) {
    let _ = write!(
        o,
        "<h2>Summary by suite</h2><table class=\"suites\"><thead><tr><th>suite</th>\
         <th class=\"num\">cases</th>"
    );
    for s in STATUSES {
        let _ = write!(o, "<th class=\"num\">{}</th>", s.as_str());
    }
    let _ = write!(
        o,
        "<th class=\"num\" title=\"case durations added up; cases run concurrently\">time</th></tr></thead><tbody>"
    );
    let row = |s: &SuiteSummary, name: String, class: &str, o: &mut String| {
        let _ = write!(
            o,
            "<tr class=\"{class}\"><td>{name}</td><td class=\"num\">{}</td>",
            s.cases
        );
        for st in STATUSES {
            let n = s.count(st);
            let _ = write!(
                o,
                "<td class=\"num{}\">{n}</td>",
                if n == 0 { " zero" } else { "" }
            );
        }
        let _ = write!(o, "<td class=\"num\">{}</td></tr>", secs(s.duration_ms));
    };
    for s in suites {
        let name = format!(
            "<a href=\"#{}\">{}</a>",
            anchor("suite", &s.suite),
            escape(&s.suite)
        );
        row(s, name, if s.failed() { "bad" } else { "" }, o);
    }
    row(total, "all suites".into(), "total", o);
    let _ = write!(
        o,
        "</tbody></table><p class=\"muted\">time: the suite's case durations added up \
         (cases run concurrently, so they exceed the run's wall time)</p>"
    );
}

/// The case's message (and known-failure reason), for its row.
fn case_message(c: &CaseResult) -> String {
    let mut m = String::new();
    if !c.message.is_empty() {
        let _ = write!(m, "<div class=\"msg\">{}</div>", escape(&c.message));
    }
    if let Some(k) = &c.known_failure {
        let _ = write!(m, "<div class=\"muted\">known failure: {}</div>", escape(k));
    }
    m
}

/// The case's details (check notes, metrics, adapter stderr) as a `<details>` block.
fn case_details(c: &CaseResult, open: bool) -> String {
    let mut body = c.details.join("\n");
    if !c.metrics.is_empty() {
        body.push_str("\nmetrics: ");
        body.push_str(&serde_json::to_string_pretty(&c.metrics).unwrap_or_default());
    }
    if !c.adapter_stderr.is_empty() && c.status != Status::Pass {
        body.push_str("\nadapter stderr:\n");
        body.push_str(&c.adapter_stderr);
    }
    if body.trim().is_empty() {
        return String::new();
    }
    format!(
        "<details{}><summary>details</summary><pre>{}</pre></details>",
        if open { " open" } else { "" },
        escape(body.trim())
    )
}

fn cases(r: &RunReport, suites: &[SuiteSummary], o: &mut String) {
    let _ = write!(
        o,
        "<h2>Cases</h2><table class=\"cases\"><thead><tr><th>case</th><th>result</th>\
         <th>level</th><th class=\"num\">time</th><th>covers</th><th>details</th></tr></thead><tbody>"
    );
    let mut current = "";
    for c in &r.cases {
        let suite = summary::suite_of(&c.name);
        if suite != current {
            current = suite;
            let n = suites
                .iter()
                .find(|s| s.suite == suite)
                .map_or(0, |s| s.cases);
            let _ = write!(
                o,
                "<tr class=\"group\"><th colspan=\"6\" id=\"{}\">{}<span class=\"count\">{n} cases</span></th></tr>",
                anchor("suite", suite),
                escape(suite)
            );
        }
        let covers: Vec<String> = c
            .covers
            .iter()
            .map(|id| format!("<a href=\"#{}\">{}</a>", anchor("req", id), escape(id)))
            .collect();
        // A case that did not pass gets its details open on a full-width row of its own.
        let wide = c.status != Status::Pass;
        let _ = write!(
            o,
            "<tr id=\"{}\" class=\"{}\"><td class=\"case\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"ids\">{}</td><td class=\"det\">{}</td></tr>",
            anchor("case", &c.name),
            if c.status.fails_run() { "bad" } else { "" },
            escape(&c.name),
            badge(c.status.as_str()),
            escape(&c.level),
            duration(c.duration_ms),
            covers.join(" "),
            if wide {
                case_message(c)
            } else {
                case_details(c, false)
            }
        );
        if wide {
            let details = case_details(c, true);
            if !details.is_empty() {
                let _ = write!(
                    o,
                    "<tr class=\"more{}\"><td colspan=\"6\">{details}</td></tr>",
                    if c.status.fails_run() { " bad" } else { "" }
                );
            }
        }
    }
    let _ = write!(o, "</tbody></table>");
}

fn requirements(r: &RunReport, o: &mut String) {
    let _ = write!(
        o,
        "<h2>Requirements</h2><table class=\"reqs\"><thead><tr><th>ID</th><th>level</th>\
         <th>status</th><th>requirement (SPEC.md)</th><th>cases</th></tr></thead><tbody>"
    );
    for q in &r.coverage.requirements {
        let cases: Vec<String> = q
            .cases
            .iter()
            .map(|n| {
                format!(
                    "<a class=\"case\" href=\"#{}\">{}</a>",
                    anchor("case", n),
                    escape(n)
                )
            })
            .collect();
        let _ = write!(
            o,
            "<tr id=\"{}\"{}><td class=\"id\">{}{}</td><td>{}</td><td>{}</td>\
             <td class=\"req\">{}</td><td>{}</td></tr>",
            anchor("req", &q.id),
            if matches!(q.status.as_str(), "FAIL" | "XPASS") {
                " class=\"bad\""
            } else {
                ""
            },
            escape(&q.id),
            if q.server {
                "<span class=\"server\">server</span>"
            } else {
                ""
            },
            escape(&q.level),
            badge(&q.status),
            markdown::to_html(&q.text),
            cases.join("<br>")
        );
    }
    let _ = write!(o, "</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome;
    use crate::protocol::Hello;
    use crate::report::summary::tests::case;
    use crate::source::Source;
    use crate::spec::Spec;
    use std::collections::BTreeMap;

    fn report(cases: Vec<CaseResult>) -> RunReport {
        let spec = Spec::embedded();
        let coverage = outcome::coverage(&spec, &cases);
        let mut counts = BTreeMap::new();
        for c in &cases {
            *counts.entry(c.status.as_str().to_owned()).or_insert(0) += 1;
        }
        RunReport {
            adapter: "/x/tether-conformance __adapter-native".into(),
            adapter_hello: Some(Hello {
                adapter: "tether-native".into(),
                version: "0.1.0".into(),
                protocol: 1,
                capabilities: vec!["websocket".into(), "sse".into()],
            }),
            source: Some(Source {
                commit: "b6a0a03a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f".into(),
                dirty: false,
            }),
            jobs: 4,
            started_unix_ms: 1_796_169_600_000,
            duration_ms: 11_900,
            failed: cases.iter().any(|c| c.status.fails_run()),
            counts,
            cases,
            coverage,
        }
    }

    #[test]
    fn header_shows_date_commit_and_adapter() {
        let html = render(&report(vec![case(
            "state/lifecycle/connect_close",
            Status::Pass,
            300,
        )]));
        assert!(html.contains("2026-12-02 00:00:00 UTC"), "date");
        assert!(html.contains(">b6a0a03a1c2d</code>"), "short commit");
        assert!(
            html.contains("<strong>tether-native</strong> 0.1.0"),
            "adapter"
        );
        assert!(
            html.contains("<code>websocket</code><code>sse</code>"),
            "capabilities"
        );
        let mut r = report(Vec::new());
        r.source = None;
        r.adapter_hello = None;
        let html = render(&r);
        assert!(html.contains("not a git checkout"));
        assert!(html.contains("no adapter answered with a hello"));
    }

    #[test]
    fn requirements_render_their_full_text() {
        let html = render(&report(Vec::new()));
        // BACKOFF-8's table and the sentence after it, which the old one-line summary cut.
        assert!(html.contains("<td><code>floor_ms</code></td>"), "table");
        assert!(html.contains("After clamping"), "text after the table");
        assert!(
            html.contains("<code>connect</code> MUST start"),
            "inline code"
        );
        let mut reqs = html[html.find("<h2>Requirements</h2>").expect("section")..].to_owned();
        // Code may hold anything (AUTH-4's `***`): look at the prose around it.
        while let Some(a) = reqs.find("<code>") {
            let b = reqs[a..].find("</code>").map_or(reqs.len(), |b| a + b + 7);
            reqs.replace_range(a..b, "");
        }
        assert!(!reqs.contains("**"), "raw bold left");
        assert!(!reqs.contains('`'), "raw code left");
        assert!(!reqs.contains("|---"), "raw table left");
        assert!(!reqs.contains('…'), "no truncated summaries");
    }

    #[test]
    fn suite_summary_and_case_groups() {
        let mut bad = case("backoff/growth/refused", Status::Fail, 5200);
        bad.message = "retry: 3 < 5".into();
        bad.details = vec!["http_answer: a -> 200 {\"ok\":true}".into()];
        let html = render(&report(vec![
            case("backoff/jitter/distribution", Status::Pass, 4800),
            bad,
            case("wire/sse/bom", Status::Pass, 100),
        ]));
        assert!(html.contains("<span class=\"verdict FAIL\">FAIL</span>"));
        let table = &html[html.find("Summary by suite").expect("summary")..];
        let table = &table[..table.find("</table>").expect("end")];
        assert!(table.contains("href=\"#suite-backoff\">backoff</a></td><td class=\"num\">2</td><td class=\"num\">1</td><td class=\"num\">1</td>"), "{table}");
        assert!(table.contains("<td>all suites</td><td class=\"num\">3</td><td class=\"num\">2</td><td class=\"num\">1</td>"), "{table}");
        assert!(table.contains("10.1 s"), "{table}");
        assert!(html.contains("id=\"suite-wire\">wire<span class=\"count\">1 cases</span>"));
        assert!(
            html.contains("<details open><summary>details</summary>"),
            "failures open"
        );
        assert!(html.contains("retry: 3 &lt; 5"));
        assert!(!html.contains("<script"), "self-contained, no scripts");
        assert!(
            !html.contains(" src=") && !html.contains("<link"),
            "no external assets"
        );
    }
}
