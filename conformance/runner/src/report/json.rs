//! The JSON report: the whole run (cases, metrics, per-requirement coverage) as one document.

use crate::suite::RunReport;

/// The report as pretty JSON.
pub fn render(r: &RunReport) -> Result<String, serde_json::Error> {
    let mut v = serde_json::to_value(r)?;
    v["coverage_line"] = serde_json::json!(r.coverage_line());
    serde_json::to_string_pretty(&v)
}
