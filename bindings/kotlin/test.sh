#!/usr/bin/env bash
# Runs the Kotlin binding's tests on a real JVM against the reference server on loopback.
#   bindings/kotlin/test.sh [name-filter...]
set -euo pipefail
. "$(dirname "$0")/../tools.sh"
"$TETHER_ROOT/bindings/kotlin/build.sh"
exec java -Djna.library.path="$TETHER_ROOT/target/release" -Dtether.root="$TETHER_ROOT" \
  -cp "$(kotlin_classpath "$TETHER_ROOT/target/kotlin/tether.jar"):$KOTLIN_HOME/lib/kotlin-test.jar" \
  dev.tether.tests.TestsKt "$@"
