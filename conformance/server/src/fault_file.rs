//! The `--faults` file of the `tether-server` binary: a JSON array of [`FaultRule`]s, parsed and checked rule by rule.
//!
//! The format is documented in the crate's README (section "The `--faults` file"), which
//! embeds `faults.example.json`; the tests load that file with [`parse`] so the two cannot
//! drift.

use crate::faults::{FaultRule, FaultTarget};
use thiserror::Error;

/// Why a faults file was refused. Positions are 1-based; `rule` counts from 1 in file order.
#[derive(Debug, Error)]
pub enum FaultFileError {
    /// Not JSON, or not an array.
    #[error("line {line}, column {column}: {message} (a faults file is a JSON array of rules)")]
    Syntax {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What serde_json said.
        message: String,
    },
    /// One element is not a valid rule (unknown `fault`, a missing or mistyped field...).
    #[error("rule {rule}: {message}")]
    Rule {
        /// Which rule.
        rule: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// Parse a faults file: every element must be a rule, and every rule must be able to fire.
///
/// Refused, besides malformed rules: `count: 0` (it would never apply), and a stream fault
/// whose `transport` it cannot act on (for example `sse_retry` on `websocket`), which the
/// server would otherwise keep without ever applying it.
pub fn parse(text: &str) -> Result<Vec<FaultRule>, FaultFileError> {
    let items: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| FaultFileError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let rule = i + 1;
            let bad = |message: String| FaultFileError::Rule { rule, message };
            let r: FaultRule = serde_json::from_value(item).map_err(|e| bad(e.to_string()))?;
            if r.count == Some(0) {
                return Err(bad(format!(
                    "`{}` has count 0, so it would never apply",
                    r.fault.name()
                )));
            }
            if let Some(t) = r.transport {
                let inert = !r.fault.is_action()
                    && !matches!(r.fault, crate::faults::Fault::RefuseTcp)
                    && !r.fault.applies_to(t);
                if inert {
                    return Err(bad(format!(
                        "`{}` never applies to transport `{}` (it acts on {})",
                        r.fault.name(),
                        t.as_str(),
                        targets(&r)
                    )));
                }
            }
            Ok(r)
        })
        .collect()
}

/// The transports a rule's fault can act on, for error messages.
fn targets(r: &FaultRule) -> String {
    let all = [
        FaultTarget::WebSocket,
        FaultTarget::Sse,
        FaultTarget::LongPoll,
        FaultTarget::Send,
    ];
    let names: Vec<&str> = all
        .into_iter()
        .filter(|t| r.fault.applies_to(*t))
        .map(FaultTarget::as_str)
        .collect();
    if names.is_empty() {
        "no transport".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;

    const EXAMPLE: &str = include_str!("../faults.example.json");
    const README: &str = include_str!("../README.md");

    #[test]
    fn the_example_file_parses_and_uses_every_rule_field() {
        let rules = parse(EXAMPLE).expect("faults.example.json is a valid faults file");
        assert!(rules.len() >= 5, "{} rules", rules.len());
        assert!(rules.iter().any(|r| r.fault.is_action()), "an action");
        assert!(
            rules
                .iter()
                .any(|r| !r.fault.is_action() && r.count.is_none()),
            "a persistent rule"
        );
        assert!(rules.iter().any(|r| r.count.is_some()), "a counted rule");
        assert!(rules.iter().any(|r| r.every_request), "every_request");
        for t in [FaultTarget::WebSocket, FaultTarget::Sse, FaultTarget::Send] {
            assert!(rules.iter().any(|r| r.transport == Some(t)), "{t:?}");
        }
        // What the README says the first two rules do.
        assert_eq!(rules[0].fault, Fault::StopListening { for_ms: Some(2000) });
        assert_eq!(
            (&rules[1].fault, rules[1].transport, rules[1].count),
            (
                &Fault::RefuseUpgrade { status: 403 },
                Some(FaultTarget::WebSocket),
                Some(1)
            )
        );
    }

    #[test]
    fn the_readme_embeds_the_example_file_verbatim() {
        assert!(
            README.contains(EXAMPLE.trim_end()),
            "conformance/server/README.md must contain faults.example.json verbatim"
        );
    }

    #[test]
    fn the_usage_text_example_parses() {
        let usage = include_str!("cli/faults_help.txt");
        let from = usage
            .find("--faults FILE:")
            .expect("usage documents --faults");
        let start = from + usage[from..].find("\n  [").expect("an example array") + 1;
        let end = start + usage[start..].find("\n  ]").expect("its end") + 4;
        let rules = parse(&usage[start..end]).expect("the usage example is a valid file");
        assert_eq!(rules.len(), 2);
    }

    #[test]
    fn bad_files_name_the_rule_and_the_reason() {
        let e = parse(r#"{"fault":"clear"}"#).expect_err("not an array");
        assert!(matches!(e, FaultFileError::Syntax { line: 1, .. }), "{e}");
        let e =
            parse("[\n  {\"fault\": \"clear\"},\n  {\"fault\": \"nope\"}\n]").expect_err("unknown");
        assert!(matches!(e, FaultFileError::Rule { rule: 2, .. }), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
        let e = parse(r#"[{"fault":"close_after_hello","after_ms":5}]"#).expect_err("no code");
        assert!(e.to_string().contains("code"), "{e}");
        let e = parse(r#"[{"fault":"sse_retry","value":"5","transport":"websocket"}]"#)
            .expect_err("inert");
        assert!(e.to_string().contains("acts on sse"), "{e}");
        let e = parse(r#"[{"fault":"swallow_upgrade","count":0}]"#).expect_err("count 0");
        assert!(e.to_string().contains("count 0"), "{e}");
        assert!(parse("[]").expect("empty").is_empty());
    }
}
