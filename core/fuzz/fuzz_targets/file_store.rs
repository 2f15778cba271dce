//! The outbox file store's recovery (OUTBOX-2, OUTBOX-8): arbitrary bytes as the log and the
//! memo; open, load, append, remove, reopen (`tether_fuzz::store_case` lists the checks).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: tether_fuzz::alloc::Counting = tether_fuzz::alloc::Counting;

fuzz_target!(|data: &[u8]| tether_fuzz::targets::file_store::run(data));
