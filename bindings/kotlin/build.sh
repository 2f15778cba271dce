#!/usr/bin/env bash
# Builds the Kotlin binding: the cdylib and reference server (release), the generated Kotlin
# (library mode), then one kotlinc run compiling the generated code, the idiomatic layer
# (src/main), its tests (src/test) and the conformance adapter into target/kotlin/tether.jar,
# and a class-data-sharing archive for a fast adapter start. Does nothing when up to date.
#   bindings/kotlin/build.sh [--force]
set -euo pipefail
. "$(dirname "$0")/../tools.sh"
cd "$TETHER_ROOT"
out="$TETHER_ROOT/target/kotlin"
jar="$out/tether.jar"
inputs=("${RUST_INPUTS[@]}" bindings/kotlin/src conformance/adapters/kotlin bindings/tools.sh bindings/kotlin/build.sh)
if [ "${1:-}" != --force ] && [ -f target/release/libtether_ffi.so ] && [ -x target/release/tether-server ] \
   && ! stale "$jar" "${inputs[@]}" >/dev/null; then
  exit 0
fi
ensure_jna
ensure_kotlinc
mkdir -p "$out"
cargo build --release -p tether-server >&2
bindings/generate.sh --lang kotlin >&2
t0=$(date +%s)
# One compilation for everything (kotlinc starts slowly); -Xno-call-assertions and friends
# keep the adapter's bytecode lean.
"$KOTLIN_HOME/bin/kotlinc" -nowarn -jvm-target 17 \
  -cp "$JNA_JAR:$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar:$KOTLIN_HOME/lib/kotlin-test.jar" \
  target/bindings/kotlin bindings/kotlin/src/main/kotlin bindings/kotlin/src/test/kotlin \
  conformance/adapters/kotlin \
  -d "$out/tether-new.jar" >&2
rm -rf "$jar"
mv "$out/tether-new.jar" "$jar"
t1=$(date +%s)
echo "kotlinc: $(( t1 - t0 )) s -> $jar" >&2
# A dynamic CDS archive of the classes the adapter loads (configure, connect, close), so
# every adapter process (one per conformance case) starts in a fraction of a second.
rm -f "$out/adapter.jsa"
python3 - "$out/cds-training.bin" <<'PY'
import json, struct, sys
cmds = [
    {"type": "configure", "id": 1, "endpoint": "http://127.0.0.1:9/tether",
     "transports": ["websocket", "sse", "long_poll"], "policy": {"base_ms": 10}, "seed": 1},
    {"type": "subscribe", "id": 2, "channel": "c"},
    {"type": "publish", "id": 3, "channel": "c", "data": {"n": 1}},
    {"type": "connect", "id": 4},
    {"type": "barrier", "id": 5},
    {"type": "state", "id": 6},
    {"type": "close", "id": 7},
    {"type": "shutdown", "id": 8},
]
with open(sys.argv[1], "wb") as f:
    for c in cmds:
        b = json.dumps(c).encode()
        f.write(struct.pack(">I", len(b)) + b)
PY
java -XX:ArchiveClassesAtExit="$out/adapter.jsa" -Xlog:disable -Xlog:all=error:stderr \
  -Djna.library.path="$TETHER_ROOT/target/release" -cp "$(kotlin_classpath "$jar")" \
  dev.tether.conformance.AdapterKt < "$out/cds-training.bin" > /dev/null || echo "CDS training run failed (the adapter still works, it starts slower)" >&2
touch "$jar"
