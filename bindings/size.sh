#!/usr/bin/env bash
# Measures the tether-ffi cdylib: its size as built and stripped (`strip --strip-all`), for
# the release profile and for the `ffi-small` size profile (opt-level "z", fat LTO, one
# codegen unit, symbols stripped; see Cargo.toml). Not part of the test run (a fat-LTO build
# takes minutes); the figures in bindings/README.md come from it.
#   bindings/size.sh [release|ffi-small]...
set -euo pipefail
cd "$(dirname "$0")/.."
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(release ffi-small)
ext=so; [ "$(uname -s)" = Darwin ] && ext=dylib
kib() { echo "$(( ($1 + 512) / 1024 )) KiB"; }
for p in "${profiles[@]}"; do
  t0=$(date +%s)
  cargo build --profile "$p" -p tether-ffi >&2
  t1=$(date +%s)
  lib=target/$p/libtether_ffi.$ext
  tmp=$(mktemp)
  cp "$lib" "$tmp"
  strip --strip-all "$tmp" 2>/dev/null || strip -x "$tmp"
  built=$(wc -c < "$lib"); stripped=$(wc -c < "$tmp")
  rm -f "$tmp"
  echo "profile $p: $lib $(kib "$built") as built, $(kib "$stripped") stripped ($(( t1 - t0 )) s to build, $(uname -m)-$(uname -s | tr A-Z a-z))"
done
