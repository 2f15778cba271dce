#!/usr/bin/env bash
# Runs every test of the project on a bare machine: installs what is missing,
# then format, lint, unit + integration tests, the fuzz targets briefly, the sans-IO
# guard, the wasm32 build of the engine, the SPEC coverage check, the conformance
# suite against the native client (cluster cases on a real Redis included), the
# browser package (build + size budget, type checks, wasm-bindgen tests in headless
# Chromium, the browser example's test), the bindings' tests (Swift surface, Kotlin on
# a JVM, Python) and the conformance matrix: the same suite against the native, browser,
# Kotlin and Python clients, every case, side by side in one report.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Each step prints how long the previous one took, and the total so far (CI's budget is 30 min).
t_start=$SECONDS
t_step=
step() {
  [ -n "$t_step" ] && printf '    (%d s; %d s in all)\n' "$((SECONDS - t_step))" "$((SECONDS - t_start))"
  printf '\n==> %s\n' "$*"
  t_step=$SECONDS
}
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
# wasm32 needs Debian's rustc-web with its std sources and lld (README: Prerequisites).
if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -x /usr/bin/lld-22 ]; then
  apt_install rustc-web cargo-web rust-web-src lld-22
fi
command -v python3 >/dev/null || apt_install python3
# The Redis tests of tether-server and the cluster/... conformance cases run a real redis-server.
command -v redis-server >/dev/null || apt_install redis-server

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path core/fuzz/Cargo.toml -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --manifest-path core/fuzz/Cargo.toml --no-default-features --all-targets -- -D warnings

step "cargo test (workspace; tether-server's Redis tests run a real redis-server)"
cargo test --workspace --no-fail-fast

step "fuzz targets: the committed corpora replayed, then every target briefly (cargo fuzz)"
# The long run is a separate command: scripts/fuzz.sh (10 minutes per target).
scripts/fuzz.sh --smoke

step "sans-IO guard: tether-engine depends on no I/O runtime"
if cargo tree -p tether-engine -e normal --prefix none | grep -E '^(tokio|reqwest|hyper|web-sys|mio|async-std) ' ; then
  echo "tether-engine must not depend on an I/O runtime" >&2; exit 1
fi
echo "ok: $(cargo tree -p tether-engine -e normal --prefix none | sort -u | wc -l) crates, none of tokio/reqwest/hyper/web-sys"

step "every SPEC requirement is named by a test or a conformance scenario"
python3 scripts/spec-coverage.py

step "conformance suite against the native client (the main job, cluster/... included)"
cargo run --release -p tether-conformance -- run

# ---- the browser package (wasm/): build, types, browser tests, conformance in Chromium ----
step "browser toolchain: Chromium, chromedriver, Node.js"
command -v chromium >/dev/null || apt_install chromium
command -v chromedriver >/dev/null || apt_install chromium-driver
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi

step "the npm package @tether/browser: build and size budget (wasm/size-budget.json)"
# This build compiles tether-engine for wasm32-unknown-unknown (tether-wasm depends on it), so
# it is also the check that the engine builds there; a separate engine-only build cost 100 s.
# Installs the pinned wasm-bindgen CLI and the package's npm dev dependencies when missing.
./wasm/build.sh

step "the npm package: strict type checks of the public API, no \`any\` in its declarations"
(cd wasm/npm && node_modules/.bin/tsc -p test/tsconfig.json)
node wasm/npm/test/no-any.mjs

step "tether-wasm: wasm-bindgen-test tests in headless Chromium"
# (The release profile: the test harness cannot be built with panic = "immediate-abort".)
(cd wasm && CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$HOME/.cargo/bin/wasm-bindgen-test-runner" \
  CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=120 \
  CARGO_TARGET_DIR="$root/target/wasm" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
  /usr/bin/cargo test --release --target wasm32-unknown-unknown \
  -Zbuild-std=std,panic_abort -p tether-wasm --tests)

step "examples/browser: the chat page's Playwright test (server restart, every message once)"
cargo build --release -p tether-server
[ -d examples/browser/node_modules/playwright-core ] || (cd examples/browser && npm ci --no-audit --no-fund --loglevel=error)
node examples/browser/test.mjs

# ---- the bindings (bindings/): Swift surface, Kotlin and Python tests, then every client side by side ----
step "bindings: Swift generation and its public surface (no Swift toolchain here)"
bindings/swift/check-surface.sh

step "bindings: Kotlin tests on a JVM (installs a JDK, JNA and kotlinc when missing)"
bindings/kotlin/test.sh

step "bindings: Python tests (maturin wheel in target/tools/py; installs maturin and pytest when missing)"
bindings/python/test.sh

step "conformance matrix: the suite against the native, browser, Kotlin and Python clients, one report"
# conformance/reports/out/: matrix.json and a self-contained matrix.html. Every client runs the
# whole suite; the native column is the main job's run above (its report.json, same cases, same
# source tree), not a second run.
cargo run --release -p tether-conformance -- matrix --require native,browser,kotlin,python \
  --reuse native=conformance/reports/out/report.json
node conformance/adapters/browser/adapter.mjs --stop-browser

step "done"
echo "all tests passed in $((SECONDS - t_start)) s"
