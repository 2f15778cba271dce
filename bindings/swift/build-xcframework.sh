#!/usr/bin/env bash
# On a Mac with Xcode and rustup: builds the Rust static library for iOS (device and
# simulator) and macOS, generates the Swift bindings, and assembles
# build/TetherFFIC.xcframework + Sources/TetherFFI/TetherFFI.swift for Package.swift.
#   bindings/swift/build-xcframework.sh        then: cd bindings/swift && swift build && swift test
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"
for t in "${targets[@]}"; do
  cargo build --release -p tether-ffi --target "$t"
done
# The bindings come from the host library (library mode), then go with every slice.
cargo build --release -p tether-ffi
cargo run -q -p tether-uniffi-bindgen --bin uniffi-bindgen -- generate --library \
  target/release/libtether_ffi.dylib --language swift --out-dir target/bindings/swift
out="$root/bindings/swift/build"
rm -rf "$out" && mkdir -p "$out/headers" "$out/lib"
cp target/bindings/swift/TetherFFIC.h "$out/headers/"
cp target/bindings/swift/TetherFFIC.modulemap "$out/headers/module.modulemap"
mkdir -p bindings/swift/Sources/TetherFFI
cp target/bindings/swift/TetherFFI.swift bindings/swift/Sources/TetherFFI/
# One fat library per platform (simulators: arm64 + x86_64; macOS: arm64 + x86_64).
lipo -create target/aarch64-apple-ios-sim/release/libtether_ffi.a target/x86_64-apple-ios/release/libtether_ffi.a \
  -output "$out/lib/libtether_ffi-ios-sim.a"
lipo -create target/aarch64-apple-darwin/release/libtether_ffi.a target/x86_64-apple-darwin/release/libtether_ffi.a \
  -output "$out/lib/libtether_ffi-macos.a"
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libtether_ffi.a -headers "$out/headers" \
  -library "$out/lib/libtether_ffi-ios-sim.a" -headers "$out/headers" \
  -library "$out/lib/libtether_ffi-macos.a" -headers "$out/headers" \
  -output "$out/TetherFFIC.xcframework"
echo "built $out/TetherFFIC.xcframework and Sources/TetherFFI/TetherFFI.swift"
