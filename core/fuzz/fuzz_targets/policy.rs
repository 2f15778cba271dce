//! The policy parser (BACKOFF-8, BACKOFF-9, BACKOFF-10): arbitrary bytes as the `policy` of a
//! hello. A policy never makes a hello malformed; every numeric field is clamped to the
//! SPEC's table (and reported when it was), every absent or non-numeric field keeps the
//! current value, `base >= floor` and `cap >= base` hold after clamping; app overrides are
//! validated, not clamped; and an applied policy saved as the memo reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether_fuzz::targets::policy::run(data));
