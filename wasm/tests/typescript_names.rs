//! The TypeScript package's name lists (`wasm/npm/src/types.ts`, `errors.ts`) against the engine's: every error code, cause, state, drop, reset and fallback reason and transport the engine reports has its TypeScript name, and no TypeScript name is one the engine lacks.
//!
//! The engine's lists are built with exhaustive `match`es (no wildcard arm), so a variant
//! added to the engine stops this test from compiling until it is listed here, and the
//! comparison then fails until the TypeScript side has it too.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;
use tether_engine::{
    Cause, DropReason, ErrorCode, FallbackReason, ResetReason, State, TransportKind,
};

const TYPES_TS: &str = include_str!("../npm/src/types.ts");
const ERRORS_TS: &str = include_str!("../npm/src/errors.ts");

/// The string literals of `export type <name> = ... ;`.
fn ts_union(src: &str, name: &str) -> BTreeSet<String> {
    let src = &strip_comments(src);
    let head = format!("export type {name} =");
    let start = src
        .find(&head)
        .unwrap_or_else(|| panic!("types.ts has no `{head}`"));
    let body = &src[start + head.len()..];
    // The type ends at the first `;` outside braces (object members end with `;` too).
    let mut depth = 0i32;
    let end = body
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ';' if depth == 0 => return true,
                _ => {}
            }
            false
        })
        .map(|(i, _)| i)
        .expect("the type ends with `;`");
    literals(&body[..end])
}

/// `code` without its `//` and `/* */` comments.
fn strip_comments(code: &str) -> String {
    let mut clean = String::new();
    let mut rest = code;
    while let Some(i) = rest.find("/*") {
        clean.push_str(&rest[..i]);
        rest = rest[i..].split_once("*/").map_or("", |(_, r)| r);
    }
    clean.push_str(rest);
    clean
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The string literals `"..."` of `code`.
fn literals(code: &str) -> BTreeSet<String> {
    code.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn set<const N: usize>(names: [&str; N]) -> BTreeSet<String> {
    names.into_iter().map(str::to_owned).collect()
}

fn error_codes() -> BTreeSet<String> {
    // ErrorCode::ALL is kept complete by the engine's own test (no wildcard there).
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect()
}

fn causes() -> Vec<Cause> {
    // The engine's causes are non_exhaustive across crates: Cause::KINDS is the engine's own
    // complete list (its test has no wildcard), one value of every kind.
    Cause::KINDS.to_vec()
}

fn state_names() -> BTreeSet<String> {
    let t = TransportKind::WebSocket;
    let all = [
        State::Idle,
        State::Connecting {
            attempt: 0,
            transport: t,
        },
        State::Connected { transport: t },
        State::Degraded {
            transport: t,
            reason: ErrorCode::TransportBlocked,
        },
        State::Reconnecting {
            attempt: 0,
            delay: None,
            cause: Cause::Backoff,
        },
        State::Failed {
            reason: ErrorCode::Closed,
        },
        State::Closed,
    ];
    for s in &all {
        match s {
            State::Idle
            | State::Connecting { .. }
            | State::Connected { .. }
            | State::Degraded { .. }
            | State::Reconnecting { .. }
            | State::Failed { .. }
            | State::Closed => {}
        }
    }
    all.iter().map(|s| s.name().to_owned()).collect()
}

fn drop_reasons() -> BTreeSet<String> {
    DropReason::NAMES.iter().map(|n| (*n).to_owned()).collect()
}

fn fallback_reasons() -> BTreeSet<String> {
    FallbackReason::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect()
}

fn reset_reasons() -> BTreeSet<String> {
    ResetReason::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect()
}

#[test]
fn err_1_typescript_error_codes_are_the_engines() {
    let engine = error_codes();
    assert_eq!(
        ts_union(TYPES_TS, "ErrorCode"),
        engine,
        "types.ts ErrorCode"
    );
    let errors = strip_comments(ERRORS_TS);
    let start = errors.find("const CODES").expect("errors.ts has CODES");
    let body = &errors[start..];
    let end = body.find("]);").expect("CODES ends with `]);`");
    assert_eq!(literals(&body[..end]), engine, "errors.ts CODES");
}

#[test]
fn state_2_typescript_causes_are_the_engines() {
    let engine: BTreeSet<String> = causes().iter().map(|c| c.as_str().to_owned()).collect();
    let mut ts = ts_union(TYPES_TS, "PlainCauseName");
    // The two causes with a code are spelled out in `Cause` itself.
    let with_code = ts_union(TYPES_TS, "Cause");
    assert_eq!(with_code, set(["transport_closed", "terminal"]));
    ts.extend(with_code);
    assert_eq!(ts, engine, "types.ts PlainCauseName + Cause");
}

#[test]
fn state_1_typescript_states_and_reasons_are_the_engines() {
    assert_eq!(ts_union(TYPES_TS, "State"), state_names(), "types.ts State");
    assert_eq!(
        ts_union(TYPES_TS, "DropReason"),
        drop_reasons(),
        "types.ts DropReason"
    );
    assert_eq!(
        ts_union(TYPES_TS, "FallbackReason"),
        fallback_reasons(),
        "types.ts FallbackReason"
    );
    assert_eq!(
        ts_union(TYPES_TS, "ResetReason"),
        reset_reasons(),
        "types.ts ResetReason"
    );
    let transports: BTreeSet<String> = TransportKind::LADDER
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(
        ts_union(TYPES_TS, "Transport"),
        transports,
        "types.ts Transport"
    );
}
