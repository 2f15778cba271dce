#!/usr/bin/env bash
# The Kotlin conformance adapter (ADAPTERS.md): builds the binding and the adapter jar when
# missing or stale (bindings/kotlin/build.sh, output on stderr), then runs it on the JVM.
#   cargo run --release -p tether-conformance -- run --adapter "conformance/adapters/kotlin/adapter.sh"
set -euo pipefail
. "$(dirname "$0")/../../../bindings/tools.sh"
jar="$TETHER_ROOT/target/kotlin/tether.jar"
if [ ! -f "$TETHER_ROOT/target/release/libtether_ffi.so" ] || stale "$jar" "${RUST_INPUTS[@]}" \
     "$TETHER_ROOT/bindings/kotlin/src" "$TETHER_ROOT/conformance/adapters/kotlin" >/dev/null; then
  mkdir -p "$TETHER_ROOT/target"
  flock "$TETHER_ROOT/target/.kotlin-build.lock" "$TETHER_ROOT/bindings/kotlin/build.sh" >&2
fi
cds=()
[ -f "$TETHER_ROOT/target/kotlin/adapter.jsa" ] && cds=(-XX:SharedArchiveFile="$TETHER_ROOT/target/kotlin/adapter.jsa")
# Serial GC, C1 only and a small heap: the adapter only translates, start-up time matters.
exec java "${cds[@]}" -Xlog:disable -Xlog:all=error:stderr -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Xms16m -Xmx256m -Xss512k -Djna.library.path="$TETHER_ROOT/target/release" \
  -cp "$(kotlin_classpath "$jar")" dev.tether.conformance.AdapterKt "$@"
