#!/usr/bin/env bash
# The Python conformance adapter (ADAPTERS.md): builds and installs the wheel when missing or
# stale (bindings/python/build.sh, output on stderr), then runs adapter.py in the venv.
#   cargo run --release -p tether-conformance -- run --adapter "conformance/adapters/python/adapter.sh"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../../bindings/tools.sh"
if [ ! -x "$PY_VENV/bin/python" ] || stale "$TETHER_ROOT/target/python/installed" "${RUST_INPUTS[@]}" \
     "$TETHER_ROOT/bindings/python/python" >/dev/null; then
  mkdir -p "$TETHER_ROOT/target"
  flock "$TETHER_ROOT/target/.python-build.lock" "$TETHER_ROOT/bindings/python/build.sh" >&2
fi
exec "$PY_VENV/bin/python" -X utf8 "$here/adapter.py" "$@"
