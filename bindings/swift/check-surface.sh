#!/usr/bin/env bash
# The Swift test that runs here (no Swift toolchain on Linux): generate the Swift bindings
# from the cdylib (library mode), check that the generated public surface equals the committed
# snapshot (surface.txt), and that every generated API the hand-written layer
# (Sources/Tether/Tether.swift) calls exists, and that the generated `Cause` and the layer's
# `ErrorCode` name exactly the engine's causes and ERR-1 codes (read from the cdylib through
# the generated Python module). A surface change fails until the snapshot is updated on purpose:
#   bindings/swift/check-surface.sh            check
#   bindings/swift/check-surface.sh --update   regenerate surface.txt (then commit it)
set -euo pipefail
cd "$(dirname "$0")/../.."
bindings/generate.sh --lang swift,python >&2
gen=target/bindings/swift
for f in TetherFFI.swift TetherFFIC.h TetherFFIC.modulemap; do
  [ -s "$gen/$f" ] || { echo "generation did not produce $f" >&2; exit 1; }
done
if [ "${1:-}" = --update ]; then
  python3 bindings/swift/scripts/surface.py "$gen/TetherFFI.swift" --update bindings/swift/surface.txt
else
  python3 bindings/swift/scripts/surface.py "$gen/TetherFFI.swift" --check bindings/swift/surface.txt
fi
python3 bindings/swift/scripts/surface.py "$gen/TetherFFI.swift" --layer bindings/swift/Sources/Tether/Tether.swift
python3 bindings/swift/scripts/surface.py "$gen/TetherFFI.swift" --names bindings/swift/Sources/Tether/Tether.swift \
  target/bindings/python target/release/libtether_ffi.so
