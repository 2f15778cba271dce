//! The frame decoder (WIRE-1/3/5/6/8, LIMIT-1, ERR-1): arbitrary bytes as one WebSocket
//! message. The decoder (with its fast paths) must agree with the plain value-first reading,
//! refuse oversize and non-UTF-8 input with the right error, and what it decodes must
//! re-encode to itself. The client-frame decoder (the server's half) is held to the same.
//!
//! Input: one control byte (the limit: 1 MiB, 16, 64 or 256 bytes), then the message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether_fuzz::targets::frame_decoder::run(data));
