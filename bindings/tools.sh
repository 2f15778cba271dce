# Sourced by the bindings' scripts: installs what a bare Debian machine lacks, on demand.
#   a Java 17 runtime and JNA (apt), kotlinc (npm `kotlin-compiler`, into target/tools/kotlin),
#   a Python venv with maturin, pytest and mypy (pip, into target/tools/py).
# Every installer's output goes to stderr, so adapters can call these before speaking.

TETHER_ROOT=${TETHER_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TOOLS="$TETHER_ROOT/target/tools"
KOTLIN_VERSION=2.4.20
KOTLIN_HOME="$TOOLS/kotlin/node_modules/kotlin-compiler"
JNA_JAR=/usr/share/java/jna.jar
PY_VENV="$TOOLS/py"

_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
_apt_updated=0
_apt_install() {
  if [ "$_apt_updated" = 0 ]; then _as_root apt-get update -qq >&2; _apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq "$@" >&2
}

ensure_java() {
  command -v java >/dev/null || _apt_install openjdk-17-jre-headless
}

ensure_jna() {
  [ -f "$JNA_JAR" ] || _apt_install libjna-java
}

ensure_kotlinc() {
  ensure_java
  if [ ! -x "$KOTLIN_HOME/bin/kotlinc" ]; then
    command -v npm >/dev/null || _apt_install npm
    mkdir -p "$TOOLS/kotlin"
    npm install --prefix "$TOOLS/kotlin" --no-audit --no-fund --silent "kotlin-compiler@$KOTLIN_VERSION" >&2
  fi
}

# The runtime classpath of a Kotlin program using the bindings (jar first).
kotlin_classpath() {
  echo "$1:$JNA_JAR:$KOTLIN_HOME/lib/kotlin-stdlib.jar:$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar"
}

ensure_py_venv() {
  if [ ! -x "$PY_VENV/bin/python" ]; then
    command -v python3 >/dev/null || _apt_install python3
    python3 -m venv "$PY_VENV" >&2 2>/dev/null || { _apt_install python3-venv; python3 -m venv "$PY_VENV" >&2; }
  fi
  if [ ! -x "$PY_VENV/bin/maturin" ] || [ ! -x "$PY_VENV/bin/pytest" ] || [ ! -x "$PY_VENV/bin/mypy" ]; then
    "$PY_VENV/bin/pip" install -q --disable-pip-version-check "maturin>=1.9,<2" "pytest>=8" "mypy>=1.10" >&2
  fi
}

# True (prints a path) when a file under the given paths is newer than $1 (or $1 is missing).
stale() {
  local stamp=$1; shift
  [ -e "$stamp" ] || { echo "$stamp"; return 0; }
  local p
  for p in "$@"; do
    [ -e "$p" ] || continue
    find "$p" -newer "$stamp" -type f -print -quit | grep . && return 0
  done
  return 1
}

# Inputs of the cdylib: a change here means rebuilding and regenerating.
RUST_INPUTS=("$TETHER_ROOT/core/engine/src" "$TETHER_ROOT/core/client/src" "$TETHER_ROOT/bindings/ffi")
