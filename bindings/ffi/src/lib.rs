//! tether-ffi: the `tether` native client exported to Kotlin, Swift and Python through UniFFI.
//!
//! This crate adapts names and types and nothing else: every method is a one-line delegation
//! to [`tether::Client`] / [`tether::ClientBuilder`], and every reconnection decision stays in
//! the engine (SPEC.md). The generated bindings come from this crate's cdylib in library mode
//! (`bindings/generate.sh`); each language adds a thin idiomatic layer on top
//! (`bindings/kotlin`, `bindings/swift`, `bindings/python`).
//!
//! # Shape
//!
//! - [`ClientBuilder`] (endpoint, transports, [`PolicyOverrides`], [`TokenProvider`],
//!   [`StoreConfig`], seed, drop policy, frame limit) builds a [`Client`].
//! - [`Client`]: async `connect`, `close`, `subscribe`, `unsubscribe`, `publish` (resolves with
//!   the [`Ack`] or raises [`TetherError::Dropped`]) and `enqueue` (returns a
//!   [`PendingPublish`] as soon as the publish is durable, OUTBOX-2); `state()`, `set_network`.
//! - Events: [`Client::events`] returns an [`EventSubscription`] the foreign side pulls with
//!   the async `next()` (see below); [`Client::state_watcher`] returns a [`StateWatcher`] whose
//!   async `changed()` yields each new [`State`].
//! - Errors: one [`TetherError`] enum; every variant carries the SPEC ERR-1 `code`.
//!
//! # Why events are pulled (`next()`), not pushed (a foreign listener)
//!
//! Kotlin `Flow`, Swift `AsyncSequence` and Python's `async for` are all pull-based: the
//! consumer asks for the next element when it is ready for it. An async `next()` maps onto each
//! of them in a few lines (`flow { while (true) emit(sub.next() ?: break) }`,
//! `AsyncStream(unfolding:)`, `__anext__`), with their own cancellation: cancelling the
//! foreign coroutine or task drops the Rust future, and `next()` is cancel-safe (an event is
//! taken only when the future completes). A foreign listener (`with_foreign`) would instead run
//! application code on the client's driver threads: Python would need the GIL and a hop to
//! its event loop on every event, a slow Kotlin or Swift listener would stall the driver (and
//! with it heartbeats and reconnect timers), and each language would still have to re-buffer
//! the callbacks into a channel to offer a `Flow` or an `AsyncSequence`. Pulling keeps foreign
//! code off the driver, keeps the one unbounded queue the core client already has
//! ([`tether::EventStream`]), and gives the same ordering guarantees in every language.
//! A subscription ends when it is closed ([`EventSubscription::close`]) or dropped, and when
//! the client's driver ends (the last [`Client`] handle released).

mod builder;
mod client;
mod error;
mod events;
mod token;
mod types;

pub use builder::{ClientBuilder, StoreConfig};
pub use client::{Client, PendingPublish};
pub use error::TetherError;
pub use events::{EventSubscription, StateWatcher};
pub use token::{TokenError, TokenProvider};
pub use types::{
    Ack, Cause, ClientEvent, DropPolicy, DropReason, Event, FallbackReason, Json, Network,
    PolicyClamp, PolicyOverrides, ResetReason, State, TransportKind,
};

uniffi::setup_scaffolding!();

/// The version of the bindings (the workspace version).
#[uniffi::export]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Every stable error code of SPEC ERR-1, in SPEC order (what `TetherError` codes and
/// `Event.Error` codes are drawn from).
#[uniffi::export]
pub fn error_codes() -> Vec<String> {
    tether::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect()
}

/// The stable name of every cause of the engine (STATE-2), in the engine's order, from
/// `tether::Cause::KINDS`: what each language's tests check its `Cause` against.
#[uniffi::export]
pub fn cause_names() -> Vec<String> {
    tether::Cause::KINDS
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect()
}
