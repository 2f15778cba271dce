//! Durable stores for the outbox and memo.

pub mod file;
