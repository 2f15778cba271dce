//! tether-conformance: the Tether conformance suite (scenarios as data, adapters over stdin/stdout, statistics, reports, storm calculator).

pub mod adapter;
pub mod checks;
pub mod chunked;
pub mod cli;
pub mod exec;
pub mod glob;
pub mod native;
pub mod outcome;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod source;
pub mod spec;
pub mod stats;
pub mod storm;
pub mod suite;
pub mod trace;
