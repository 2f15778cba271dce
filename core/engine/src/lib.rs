//! tether-engine: the sans-IO reconnection state machine; the contract of SPEC.md in code.
//!
//! Time goes in (`now`), randomness comes from a seeded RNG, and the engine
//! never sleeps or touches a socket. Hosts feed it `handle_*` inputs and drain
//! `poll_action`, `poll_timeout` and `poll_event` after every input.
//!
//! Enums that grow with the contract are `#[non_exhaustive]`: [`Cause`], [`Event`],
//! [`DropReason`], [`ResetReason`], [`FallbackReason`], [`ErrorCode`], [`CallError`],
//! [`FrameError`], [`TransportFailure`] and [`sse::SseError`]; an app or binding matches
//! them with a fallback arm and keeps working when a new value appears (name it by its
//! stable `as_str()`). [`Action`], [`State`] and [`TransportKind`] are deliberately
//! exhaustive: a new action, state or transport is something every host must implement,
//! so it should stop the build of a host that does not.

pub mod action;
pub mod backoff;
mod engine;
pub mod error;
pub mod event;
pub mod frame;
pub mod keys;
pub mod ladder;
pub mod order;
pub mod outbox;
pub mod policy;
pub mod rng;
pub mod sse;
pub mod state;
pub mod stats;
pub mod store;
pub mod time;
pub mod transport;

pub use action::Action;
pub use engine::{terminal_close, Config, Engine, Network, Queues, ReadyAnswer, TokenError};
pub use error::{CallError, ErrorCode, FrameError, StoreError};
pub use event::{DropReason, Event, FallbackReason, ResetReason};
pub use policy::{DropPolicy, Policy, PolicyWire};
pub use state::{Cause, State};
pub use store::{Memo, MemoryStore, OutboxRecord, Store};
pub use time::Instant;
pub use transport::{ConnId, OpenRequest, Token, TransportEvent, TransportFailure, TransportKind};
