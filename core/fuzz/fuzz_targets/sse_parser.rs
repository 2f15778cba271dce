//! The SSE parser (SSE-1..9, LIMIT-3): arbitrary bytes, fed whole, in chunks and byte by
//! byte, must read exactly as the naive whole-input oracle reads them, and no buffer may
//! grow past its limit.
//!
//! Input: one control byte, then the stream. Control bits 0-3: chunk size - 1;
//! bits 4-5: limits (1 MiB, 8, 32 or 128 bytes); bit 6: the event limit is half the line limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether_fuzz::targets::sse_parser::run(data));
