//! The engine's scenario tests on a virtual clock, its statistics and its property tests.
//!
//! One test binary (one link) with a module per file; each module's own `//!` says what it covers.

#[macro_use]
mod support;

mod auth_net;
mod backoff;
mod backoff_stats;
mod conn;
mod fallback;
mod outbox;
mod prop;
mod publish_keys;
mod ready_drain;
mod resume;
mod slow_link;
mod sse;
mod sse_engine;
mod wire_limits;
