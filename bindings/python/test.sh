#!/usr/bin/env bash
# Type-checks the Python layer (mypy --strict) and runs the binding's tests (pytest, asyncio)
# against the reference server on loopback, using the wheel installed by build.sh.
#   bindings/python/test.sh [pytest args...]
set -euo pipefail
. "$(dirname "$0")/../tools.sh"
"$TETHER_ROOT/bindings/python/build.sh"
# The layer's type hints, checked strictly against the installed package (py.typed).
(cd "$TETHER_ROOT/bindings/python" && "$PY_VENV/bin/python" -m mypy -p tether)
cd "$TETHER_ROOT/bindings/python/tests"
exec "$PY_VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
