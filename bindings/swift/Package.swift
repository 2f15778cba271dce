// swift-tools-version:5.9
// The Tether Swift package. Build the XCFramework and the generated sources first, on a Mac:
//   bindings/swift/build-xcframework.sh
// which writes build/TetherFFIC.xcframework (the Rust static library for iOS, the iOS
// simulator and macOS, with the C header and module map) and Sources/TetherFFI/TetherFFI.swift
// (the generated bindings). Neither is committed: both come from the Rust sources.
import PackageDescription

let package = Package(
    name: "Tether",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Tether", targets: ["Tether"]),
    ],
    targets: [
        .binaryTarget(name: "TetherFFIC", path: "build/TetherFFIC.xcframework"),
        .target(name: "TetherFFI", dependencies: ["TetherFFIC"], path: "Sources/TetherFFI"),
        .target(name: "Tether", dependencies: ["TetherFFI"], path: "Sources/Tether"),
        .testTarget(name: "TetherTests", dependencies: ["Tether"], path: "Tests/TetherTests"),
    ]
)
