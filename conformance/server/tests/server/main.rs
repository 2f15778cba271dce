//! The reference server's integration tests: wire, faults, auth, the binary, browsers and Redis.
//!
//! One test binary (one link) with a module per file; each module's own `//!` says what it covers.

#[macro_use]
mod common;

mod auth;
mod binary;
mod browser;
mod fault_file;
mod faults;
mod redis;
mod wire;
