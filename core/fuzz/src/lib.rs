//! tether-fuzz: shared pieces of the libFuzzer targets (`cargo fuzz list`): a counting
//! allocator, the SSE and frame oracles, the engine script and the checks it runs, the
//! outbox file store compiled in from the client's source, and the seed corpora's writer.

pub mod alloc;
pub mod engine_run;
pub mod frame_ref;
pub mod script;
pub mod seeds;
pub mod sse_ref;
pub mod store_case;
pub mod targets;

/// `tether::store::file`, compiled from its source so the fuzz build needs neither tokio
/// nor reqwest; the code is the client's own, byte for byte.
#[path = "../../client/src/store/file.rs"]
pub mod file_store;
