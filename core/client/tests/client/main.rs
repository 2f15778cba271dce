//! The native client's integration tests on real loopback sockets against the embedded reference server.
//!
//! One test binary (one link) with a module per file; each module's own `//!` says what it covers.

#[macro_use]
mod support;

mod auth;
mod bad_input;
mod dead_path;
mod drain;
mod driver;
mod fallback;
mod file_store;
mod file_store_crash;
mod file_store_format;
mod heartbeat;
mod outbox;
mod publish_keys;
mod ready;
mod resume;
mod slow_link;
mod smoke;
