#!/usr/bin/env bash
# Builds the Python package with maturin's UniFFI mode (cdylib + generated module + the
# asyncio layer in python/tether) into a wheel under target/wheels, and installs that wheel
# into the project's venv (target/tools/py, created with maturin and pytest when missing).
# Does nothing when the installed wheel is up to date.
#   bindings/python/build.sh [--force]
set -euo pipefail
. "$(dirname "$0")/../tools.sh"
cd "$TETHER_ROOT"
stamp="$TETHER_ROOT/target/python/installed"
inputs=("${RUST_INPUTS[@]}" bindings/python/python bindings/python/pyproject.toml bindings/tools.sh bindings/python/build.sh)
if [ "${1:-}" != --force ] && [ -x target/release/tether-server ] && [ -x "$PY_VENV/bin/python" ] \
   && ! stale "$stamp" "${inputs[@]}" >/dev/null; then
  exit 0
fi
ensure_py_venv
cargo build --release -p tether-server >&2
rm -rf target/wheels/tether_client-*.whl
t0=$(date +%s)
(cd bindings/python && "$PY_VENV/bin/maturin" build --release --out "$TETHER_ROOT/target/wheels" >&2)
t1=$(date +%s)
wheel=$(ls target/wheels/tether_client-*.whl | head -1)
echo "maturin: $(( t1 - t0 )) s -> $wheel" >&2
"$PY_VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel" >&2
mkdir -p "$(dirname "$stamp")"
touch "$stamp"
