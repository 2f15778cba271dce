#!/usr/bin/env bash
# Runs every test of the project on a bare machine: installs what is missing,
# then format, lint, unit + integration tests, the sans-IO guard, the wasm32
# build of the engine, the SPEC coverage check and the conformance suite.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

step "toolchain"
command -v cargo >/dev/null || { echo "cargo (rustup stable) is required" >&2; exit 1; }
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
# wasm32 needs Debian's rustc-web with its std sources (see ../shared/TOOLCHAINS.md).
if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -x /usr/bin/lld-22 ]; then
  apt_install rustc-web cargo-web rust-web-src lld-22
fi
command -v python3 >/dev/null || apt_install python3

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --no-fail-fast

step "sans-IO guard: tether-engine depends on no I/O runtime"
if cargo tree -p tether-engine -e normal --prefix none | grep -E '^(tokio|reqwest|hyper|web-sys|mio|async-std) ' ; then
  echo "tether-engine must not depend on an I/O runtime" >&2; exit 1
fi
echo "ok: $(cargo tree -p tether-engine -e normal --prefix none | sort -u | wc -l) crates, none of tokio/reqwest/hyper/web-sys"

step "tether-engine builds for wasm32-unknown-unknown"
CARGO_TARGET_DIR="$root/target/wasm" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
  /usr/bin/cargo build --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort -p tether-engine
ls -l "$root"/target/wasm/wasm32-unknown-unknown/release/libtether_engine.rlib

step "every SPEC requirement is named by a test or a conformance scenario"
python3 scripts/spec-coverage.py

step "conformance suite against the native client (the main job)"
cargo run --release -p tether-conformance -- run

echo
echo "all tests passed"
