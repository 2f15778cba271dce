//! `tether-conformance matrix` end to end: clients from a registry side by side, an
//! unavailable client shown as such (and a failure only when required), a broken client
//! failing the matrix, one JSON and one self-contained HTML page.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const RUNNER: &str = env!("CARGO_BIN_EXE_tether-conformance");
const ADAPTER: &str = env!("CARGO_BIN_EXE_tether-adapter-native");

struct Run {
    out: Output,
    json: Value,
    html: String,
}

fn matrix(tag: &str, extra: &[&str]) -> Run {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("tether-matrix-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let registry = dir.join("clients.json");
    let clients = serde_json::json!({"clients": [
        {"name": "native", "label": "Rust"},
        {"name": "broken", "label": "Rust, retrying after Failed",
         "command": format!("{ADAPTER} --break retry-terminal")},
        {"name": "absent", "command": "no-such-adapter", "requires": ["no-such-program-7f3e", "./no/such/file"]}
    ]});
    std::fs::write(&registry, clients.to_string()).expect("registry");
    let out = Command::new(RUNNER)
        .arg("matrix")
        .arg("--registry")
        .arg(&registry)
        .args([
            "--include",
            "state/terminal/close_4003",
            "--include",
            "state/lifecycle/connect_close",
        ])
        .arg("--out")
        .arg(&dir)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("runner: {e}"));
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
            panic!(
                "no {name} ({e}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let json: Value = serde_json::from_str(&read("matrix.json")).expect("matrix.json");
    let html = read("matrix.html");
    let _ = std::fs::remove_dir_all(&dir);
    Run { out, json, html }
}

fn client<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["clients"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("client {name} in {v}"))
}

#[test]
fn matrix_shows_clients_side_by_side_and_fails_on_a_broken_one() {
    let r = matrix("all", &[]);
    assert!(!r.out.status.success(), "a failing client fails the matrix");
    assert_eq!(r.json["failed"], true);

    let native = client(&r.json, "native");
    assert_eq!(native["available"], true);
    assert_eq!(native["failed"], false);
    assert_eq!(native["hello"]["adapter"], "tether-native");
    assert!(native["coverage_line"]
        .as_str()
        .is_some_and(|l| l.ends_with("SPEC requirements covered")));

    let broken = client(&r.json, "broken");
    assert_eq!(broken["failed"], true);
    let absent = client(&r.json, "absent");
    assert_eq!(absent["available"], false);
    assert_eq!(absent["failed"], false, "not required: shown, not failed");
    assert_eq!(
        absent["missing"],
        serde_json::json!(["no-such-program-7f3e", "./no/such/file"])
    );

    // Requirement by client and case by client.
    let conn5 = r.json["requirements"]
        .as_array()
        .and_then(|rs| rs.iter().find(|q| q["id"] == "CONN-5"))
        .expect("CONN-5 row");
    assert_eq!(conn5["status"]["native"], "PASS");
    assert_eq!(conn5["status"]["broken"], "FAIL");
    assert!(conn5["status"].get("absent").is_none());
    let case = r.json["cases"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "state/terminal/close_4003"))
        .expect("case row");
    assert_eq!(case["status"]["native"], "PASS");
    assert_eq!(case["status"]["broken"], "FAIL");

    // One self-contained page: no external assets or scripts, the detail a click away.
    assert!(r.html.starts_with("<!DOCTYPE html>"));
    for bad in ["<script", "src=\"http", "href=\"http", "<link"] {
        assert!(
            !r.html.contains(bad),
            "the page must be self-contained ({bad})"
        );
    }
    assert!(r
        .html
        .contains("href=\"#c-broken-state-terminal-close_4003\""));
    assert!(r.html.contains("id=\"c-broken-state-terminal-close_4003\""));
    assert!(
        r.html.contains("activity after Failed"),
        "the failure's detail is on the page"
    );
    assert!(r.html.contains("not available"));
}

#[test]
fn matrix_fails_when_a_required_client_is_missing() {
    let r = matrix(
        "require",
        &["--clients", "native,absent", "--require", "absent"],
    );
    assert!(!r.out.status.success());
    assert_eq!(client(&r.json, "native")["failed"], false);
    assert_eq!(client(&r.json, "absent")["failed"], true);
    assert!(r.json["clients"]
        .as_array()
        .is_some_and(|cs| cs.iter().all(|c| c["name"] != "broken")));
    let ok = matrix("native", &["--clients", "native"]);
    assert!(
        ok.out.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.out.stderr)
    );
    assert_eq!(ok.json["failed"], false);
}

#[test]
fn matrix_reuses_a_run_report_of_the_same_cases_on_the_same_source() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("tether-matrix-reuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = |name: &str, includes: &[&str]| {
        let mut c = Command::new(RUNNER);
        c.arg("run");
        for i in includes {
            c.args(["--include", i]);
        }
        let out = c
            .arg("--out")
            .arg(dir.join(name))
            .output()
            .unwrap_or_else(|e| panic!("runner: {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join(name).join("report.json")
    };
    let both = ["state/terminal/close_4003", "state/lifecycle/connect_close"];
    let same = run("same", &both);
    let fewer = run("fewer", &both[..1]);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&same).expect("report")).expect("json");
    let mut other = report.clone();
    other["source"] = serde_json::json!({"commit": "0".repeat(40), "dirty": false});
    let other_path = dir.join("other-source.json");
    std::fs::write(&other_path, other.to_string()).expect("write");

    let reuse = |tag: &str, path: &PathBuf| {
        matrix(
            tag,
            &[
                "--clients",
                "native",
                "--reuse",
                &format!("native={}", path.display()),
            ],
        )
    };
    let r = reuse("reuse-same", &same);
    assert!(
        r.out.status.success(),
        "{}",
        String::from_utf8_lossy(&r.out.stderr)
    );
    let native = client(&r.json, "native");
    assert_eq!(native["reused_from"], same.display().to_string());
    assert_eq!(native["coverage_line"], report["coverage_line"]);
    assert_eq!(native["report"]["cases"], report["cases"]);
    assert!(native["preflight_ms"].is_null(), "not started again");
    let case = r.json["cases"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "state/terminal/close_4003"))
        .expect("case row");
    assert_eq!(case["status"]["native"], "PASS");
    assert!(r.html.contains("not run again"));

    // Another selection, or another source tree: the column is an error, the matrix fails.
    for (tag, path, why) in [
        ("reuse-fewer", &fewer, "not the 2 selected"),
        ("reuse-other", &other_path, "tested source 000000000000"),
    ] {
        let r = reuse(tag, path);
        assert!(!r.out.status.success(), "{tag} must fail the matrix");
        let native = client(&r.json, "native");
        assert_eq!(native["failed"], true);
        assert!(
            native["error"].as_str().is_some_and(|e| e.contains(why)),
            "{tag}: {}",
            native["error"]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
