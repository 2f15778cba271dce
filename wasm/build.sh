#!/usr/bin/env bash
# Builds the npm package @tether/browser in wasm/npm/dist:
#   1. tether-wasm for wasm32-unknown-unknown with Debian's rustc-web (-Zbuild-std, profile `wasm`)
#   2. wasm-bindgen (the CLI pinned to the crate's version in Cargo.lock) --target web
#   3. wasm-opt -Oz (from the npm package `binaryen`)
#   4. tsc: the TypeScript API and its declarations
#   5. the size report (raw, gzip -9, brotli) checked against wasm/size-budget.json
# Installs what is missing (apt: rustc-web, lld-22, nodejs, npm; cargo: wasm-bindgen-cli;
# npm: the package's dev dependencies). Options: --no-size-check (report only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pkg="$root/wasm/npm"
size_check=1
for a in "$@"; do
  case "$a" in
    --no-size-check) size_check=0 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# One build at a time (the browser adapter may start one while another runs).
mkdir -p "$root/target/wasm"
exec 9>"$root/target/wasm/.build.lock"
flock 9

if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -x /usr/bin/lld-22 ]; then
  echo "build.sh: installing rustc-web, rust-web-src, lld-22 (apt)" >&2
  apt_install rustc-web cargo-web rust-web-src lld-22
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "build.sh: installing nodejs, npm (apt)" >&2
  apt_install nodejs npm
fi

export PATH="$HOME/.cargo/bin:$PATH"
# The CLI must be exactly the wasm-bindgen crate version the lock file resolved.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "build.sh: installing wasm-bindgen-cli $want (cargo install, a few minutes)" >&2
  t=$(now)
  # A build tool, not a product: opt-level 1 compiles faster and is quick enough for a
  # package this size; one target dir for every tool the scripts install. Its own lock file
  # first; when the registry no longer carries a version it names (a yanked crate, or a
  # mirror that lags), resolve afresh within the CLI's own version requirements.
  install=(cargo install wasm-bindgen-cli --version "=$want" --target-dir "$root/target/tools/install")
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 "${install[@]}" --locked >&2 \
    || CARGO_PROFILE_RELEASE_OPT_LEVEL=1 "${install[@]}" >&2
  echo "build.sh: wasm-bindgen-cli installed in $(took "$t")" >&2
fi

if [ ! -x "$pkg/node_modules/.bin/tsc" ] || [ ! -x "$pkg/node_modules/.bin/wasm-opt" ]; then
  t=$(now)
  (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error) >&2
  echo "build.sh: npm ci in wasm/npm took $(took "$t")" >&2
fi

t=$(now)
# panic = "immediate-abort" (no panic messages or locations in the module) is unstable: it is
# set here for this build only, so stable cargo still reads the workspace manifest.
CARGO_PROFILE_WASM_PANIC=immediate-abort \
CARGO_TARGET_DIR="$root/target/wasm" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
  /usr/bin/cargo build --profile wasm --target wasm32-unknown-unknown \
  -Zpanic-immediate-abort -Zbuild-std=std,panic_abort -p tether-wasm >&2
echo "build.sh: cargo build (wasm32) took $(took "$t")" >&2

t=$(now)
gen="$pkg/src/wasm"
rm -rf "$gen"
wasm-bindgen --target web --weak-refs --out-dir "$gen" --out-name tether_wasm \
  "$root/target/wasm/wasm32-unknown-unknown/wasm/tether_wasm.wasm"
"$pkg/node_modules/.bin/wasm-opt" -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -o "$gen/tether_wasm_bg.wasm" "$gen/tether_wasm_bg.wasm"

rm -rf "$pkg/dist"
(cd "$pkg" && node_modules/.bin/tsc -p tsconfig.json)
mkdir -p "$pkg/dist/wasm"
cp "$gen/tether_wasm.js" "$gen/tether_wasm.d.ts" "$gen/tether_wasm_bg.wasm" "$pkg/dist/wasm/"
cp -r "$gen/snippets" "$pkg/dist/wasm/"
echo "build.sh: wasm-bindgen, wasm-opt and tsc took $(took "$t")" >&2

if [ "$size_check" = 1 ]; then
  node "$root/wasm/size.mjs" --check
else
  node "$root/wasm/size.mjs"
fi
echo "build.sh: built $pkg/dist" >&2
