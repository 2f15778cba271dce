//! Proof that the suite can fail: deliberately broken adapters (`tether-adapter-native --break MODE`)
//! must FAIL the case written to catch them, for the reason it was written for, while the
//! honest adapter PASSES the same cases.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const RUNNER: &str = env!("CARGO_BIN_EXE_tether-conformance");
const ADAPTER: &str = env!("CARGO_BIN_EXE_tether-adapter-native");

/// (break mode, case that must catch it, text the failure message must contain)
const CATCHES: [(&str, &str, &str); 6] = [
    (
        "no-jitter",
        "backoff/jitter/distribution",
        "BACKOFF-1 full jitter",
    ),
    (
        "no-cursor",
        "resume/replay/websocket",
        "exactly_once_in_order",
    ),
    (
        "ignore-drain",
        "drain/window/reconnect",
        "before the window opened",
    ),
    (
        "retry-terminal",
        "state/terminal/close_4003",
        "activity after Failed",
    ),
    // The network suite: messages lost across a reconnect without a reset, and a retry
    // loop tighter than the declared delays, both seen through the fault proxy.
    // (half_open: the 700 ms until the heartbeat notices always holds messages to lose.)
    (
        "no-cursor",
        "network/websocket/half_open",
        "stream_integrity",
    ),
    (
        "no-backoff",
        "network/websocket/reset_mid_frame",
        "ms declared (BACKOFF-1/3)",
    ),
];

fn run(adapter: &str, cases: &[&str], tag: &str) -> Vec<Value> {
    let json = std::env::temp_dir().join(format!(
        "tether-conformance-{tag}-{}.json",
        std::process::id()
    ));
    let mut cmd = Command::new(RUNNER);
    cmd.arg("run")
        .arg("--adapter")
        .arg(adapter)
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(json.with_extension("xml"))
        .arg("--html")
        .arg(json.with_extension("html"))
        .arg("--jobs")
        .arg("2");
    for c in cases {
        cmd.arg("--include").arg(c);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("runner: {e}"));
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); runner said:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    for p in [
        json.clone(),
        json.with_extension("xml"),
        json.with_extension("html"),
    ] {
        let _ = std::fs::remove_file::<PathBuf>(p);
    }
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("report: {e}"));
    let failed = v["failed"].as_bool().unwrap_or(false);
    assert_eq!(
        failed,
        !out.status.success(),
        "exit code must follow the result"
    );
    v["cases"].as_array().cloned().unwrap_or_default()
}

fn status<'a>(cases: &'a [Value], name: &str) -> (&'a str, &'a str) {
    let c = cases
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("case {name} did not run"));
    (
        c["status"].as_str().unwrap_or_default(),
        c["message"].as_str().unwrap_or_default(),
    )
}

#[test]
fn honest_adapter_passes_the_catching_cases() {
    let names: Vec<&str> = CATCHES.iter().map(|c| c.1).collect();
    let cases = run(ADAPTER, &names, "honest");
    for n in names {
        let (s, m) = status(&cases, n);
        assert_eq!(s, "PASS", "{n}: {m}");
    }
}

#[test]
fn every_broken_adapter_is_caught() {
    for (mode, case, why) in CATCHES {
        let adapter = format!("{ADAPTER} --break {mode}");
        let cases = run(&adapter, &[case], mode);
        let (s, m) = status(&cases, case);
        assert_eq!(s, "FAIL", "--break {mode} must fail {case}; got {s}: {m}");
        assert!(
            m.contains(why),
            "--break {mode} must fail {case} because of `{why}`; message: {m}"
        );
    }
}
