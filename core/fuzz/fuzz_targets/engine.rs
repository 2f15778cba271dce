//! The whole engine, driven by a script of app calls, transport events (live and stale
//! connections, structured frames and fuzzed bytes), token and readiness answers, network
//! changes, time steps and cold starts; the contract is checked after every step
//! (`tether_fuzz::engine_run` lists the checks).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether_fuzz::targets::engine::run(data));
