//! The long-poll and POST answer decoder (WIRE-1, LIMIT-2): arbitrary bytes as one body, a
//! JSON array of frames. The batch must be refused whole only when it is over the limit,
//! not UTF-8 or not a JSON array; otherwise every element decodes exactly as it would alone
//! (bad ones as errors in place, the good ones kept). The server's batch decoder for POST
//! bodies (client frames) is held to the same.
//!
//! Input: one control byte (the limit: 16 MiB, 32, 128 or 1024 bytes), then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether_fuzz::targets::poll_body::run(data));
