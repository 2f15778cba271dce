//! A slow adapter is not a broken one: with its first `close` answering 300 ms late while the
//! client keeps reconnecting (`tether-adapter-native --break slow-close`), the cases that configure
//! a second client must still pass. Before `configure` started a new wait count, the first
//! client's late events satisfied the second client's wait in `backoff/seed/reproducible`.

use serde_json::Value;
use std::process::Command;

const RUNNER: &str = env!("CARGO_BIN_EXE_tether-conformance");
const ADAPTER: &str = env!("CARGO_BIN_EXE_tether-adapter-native");

#[test]
fn backoff_7_a_slow_adapter_still_compares_seeded_delays() {
    let json =
        std::env::temp_dir().join(format!("tether-slow-adapter-{}.json", std::process::id()));
    let out = Command::new(RUNNER)
        .args(["run", "--adapter", &format!("{ADAPTER} --break slow-close")])
        .args(["--include", "backoff/seed/reproducible", "--json"])
        .arg(&json)
        .args(["--junit", "/dev/null", "--html", "/dev/null"])
        .output()
        .unwrap_or_else(|e| panic!("runner: {e}"));
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let _ = std::fs::remove_file(&json);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("report: {e}"));
    let case = &v["cases"][0];
    assert_eq!(case["name"], "backoff/seed/reproducible");
    assert_eq!(
        case["status"], "PASS",
        "{}\n{}",
        case["message"], case["details"]
    );
}
