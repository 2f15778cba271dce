//! The README's quick start is the `quickstart` example, verbatim: this test fails when they drift
//! (the example itself is compiled by every `cargo build` / `cargo clippy --all-targets`).

const README: &str = include_str!("../../../README.md");
const QUICKSTART: &str = include_str!("../src/bin/quickstart.rs");

/// The first ```rust block after the `## Quick start: Rust` heading.
fn readme_block() -> Option<&'static str> {
    let section = README.split_once("\n## Quick start: Rust\n")?.1;
    let start = section.find("```rust\n")? + "```rust\n".len();
    let len = section[start..].find("\n```")?;
    Some(&section[start..start + len])
}

/// The example without its `//!` header (and the blank line after it).
fn example_body() -> &'static str {
    let mut rest = QUICKSTART;
    while let Some(line_end) = rest.find('\n') {
        if rest.starts_with("//!") {
            rest = &rest[line_end + 1..];
        } else {
            break;
        }
    }
    rest.trim_matches('\n')
}

#[test]
fn readme_quick_start_is_the_quickstart_example() {
    let block = readme_block().expect("README.md has a ```rust block under `## Quick start: Rust`");
    let body = example_body();
    if block.trim_matches('\n') != body {
        let first = block
            .lines()
            .zip(body.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(block.lines().count().min(body.lines().count()));
        panic!(
            "README quick start and examples/native/src/bin/quickstart.rs differ at line {}:\n  README:  {:?}\n  example: {:?}",
            first + 1,
            block.lines().nth(first),
            body.lines().nth(first)
        );
    }
}

#[test]
fn quick_start_uses_the_client_api() {
    let block = readme_block().unwrap_or_default();
    for call in [
        "Client::builder(",
        ".events()",
        ".subscribe(",
        ".connect()",
        ".state_watch()",
        ".state()",
        ".publish(",
        ".close()",
    ] {
        assert!(block.contains(call), "the quick start should show {call}");
    }
}
