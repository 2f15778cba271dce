#!/usr/bin/env bash
# Builds the tether-ffi cdylib and generates its Kotlin, Swift and Python bindings with the
# workspace's uniffi-bindgen, in library mode (the bindings are read from the cdylib itself).
#
#   bindings/generate.sh [--profile release] [--out target/bindings] [--lang kotlin,swift,python]
#
# Writes <out>/kotlin/dev/tether/tether_ffi.kt, <out>/swift/{TetherFFI.swift,
# TetherFFIC.h,TetherFFIC.modulemap} and <out>/python/tether_ffi.py. Sizes: bindings/size.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=release
out="$root/target/bindings"
langs="kotlin,swift,python"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --lang) langs=$2; shift 2 ;;
    *) echo "usage: $0 [--profile P] [--out DIR] [--lang kotlin,swift,python]" >&2; exit 2 ;;
  esac
done
case "$(uname -s)" in
  Darwin) ext=dylib ;;
  *) ext=so ;;
esac
dir=$profile
[ "$profile" = dev ] && dir=debug
lib="$root/target/$dir/libtether_ffi.$ext"

t0=$(date +%s)
cargo build --profile "$profile" -p tether-ffi
t1=$(date +%s)
echo "cdylib: $lib ($(( t1 - t0 )) s to build)"

# Run the bindgen exactly as maturin does (dev profile, `cargo run --bin` from the workspace
# root), so both share one build of it.
for lang in ${langs//,/ }; do
  rm -rf "${out:?}/$lang"
  mkdir -p "$out/$lang"
  cargo run -q --bin uniffi-bindgen -- generate --no-format --library "$lib" --language "$lang" \
    --out-dir "$out/$lang"
  echo "generated $lang: $(cd "$out/$lang" && find . -type f | sort | tr '\n' ' ')"
done
