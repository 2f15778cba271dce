#!/usr/bin/env bash
# Runs the libFuzzer targets of core/fuzz (cargo fuzz), one after another, and prints
# libFuzzer's figures for each: executions, executions per second, coverage (cov: edges,
# ft: features), corpus size.
#
#   scripts/fuzz.sh                      every target for 10 minutes (ASan, the cargo-fuzz default)
#   scripts/fuzz.sh --seconds 60 engine  one target for a minute
#   scripts/fuzz.sh --smoke              every target for 10 s, no sanitizer (what test-all runs)
#
# First the committed corpora (core/fuzz/corpus/<target>: seeds and every input that ever
# failed) are replayed on stable by `cargo test`, which also checks the seeds are current.
# Long runs keep what they find in core/fuzz/target/corpus/<target> (not committed) and
# start from it next time; a smoke run starts from the committed corpus only. A failing
# input is saved in core/fuzz/artifacts/<target>/ and the run stops with the command that
# replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=600
smoke=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; secs=10 ;;
    --seconds) secs="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  # opt-level 1 compiles faster; cargo-fuzz only drives cargo and libFuzzer.
  # Its own lock file first, afresh when the registry lacks a version that lock names.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install cargo-fuzz --locked --target-dir target/tools/install \
    || CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install cargo-fuzz --target-dir target/tools/install
fi

echo "replaying the committed corpora (cargo test, stable)"
cargo test --quiet --manifest-path core/fuzz/Cargo.toml --no-default-features

# libFuzzer needs nightly compiler flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir core/fuzz)
if [ "$smoke" = 1 ]; then
  flags+=(--sanitizer none --codegen-units 16)
fi
cargo fuzz build "${flags[@]}"
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir core/fuzz)
fi

logs=core/fuzz/target/logs
mkdir -p "$logs"
rows=()
for t in "${targets[@]}"; do
  if [ "$smoke" = 1 ]; then
    work=$(mktemp -d)
  else
    work=core/fuzz/target/corpus/$t
    mkdir -p "$work"
  fi
  log=$logs/$t.log
  # The stateful targets read scripts: let libFuzzer try long inputs from the start.
  case "$t" in
    engine|file_store) extra=(-max_len=4096 -len_control=0) ;;
    *) extra=() ;;
  esac
  echo "fuzzing $t for ${secs} s (log: $log)"
  if ! cargo fuzz run "${flags[@]}" "$t" "$work" "core/fuzz/corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -print_final_stats=1 "${extra[@]}" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t failed; the input is in core/fuzz/artifacts/$t/ (replay: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir core/fuzz $t <file>)" >&2
    exit 1
  fi
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
  final_stat() { grep -E "^stat::$1:" "$log" | tail -n 1 | awk '{print $2}'; }
  field() { sed -nE "s/.* $1: ([^ ]+).*/\\1/p" <<<"$done_line"; }
  rows+=("$(printf '%-14s %12s %10s %7s %8s %14s' "$t" "$(final_stat number_of_executed_units)" \
    "$(final_stat average_exec_per_sec)" "$(field cov)" "$(field ft)" "$(field corp)")")
  if [ "$smoke" = 1 ]; then rm -rf "$work"; fi
done

echo
printf '%-14s %12s %10s %7s %8s %14s\n' target executions "execs/s" cov ft "corpus"
printf '%s\n' "${rows[@]}"
echo "no failures in ${#targets[@]} targets, ${secs} s each"
