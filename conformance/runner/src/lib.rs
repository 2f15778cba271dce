//! tether-conformance: the Tether conformance suite (scenarios as data, adapters over stdin/stdout, statistics, reports, the cross-client matrix, storm calculator).

pub mod adapter;
pub mod bench;
pub mod checks;
pub mod chunked;
pub mod cli;
pub mod cluster;
pub mod exec;
pub mod glob;
pub mod matrix;
pub mod native;
pub mod net;
pub mod outcome;
pub mod preflight;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod server_proc;
pub mod source;
pub mod spec;
pub mod stats;
pub mod storm;
pub mod storm_bench;
pub mod suite;
pub mod trace;
pub mod traffic;
