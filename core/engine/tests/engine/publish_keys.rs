//! OUTBOX-1 at the engine level: generated publish keys never repeat, between engines with the
//! same seed and across restarts (and crashes) on one store.

use crate::support;

use serde_json::json;
use std::collections::HashSet;
use support::*;
use tether_engine::{CallError, ErrorCode};

fn with_entropy(e: Option<u64>) -> tether_engine::Config {
    let mut c = config();
    c.id_entropy = e;
    c
}

fn counter(key: &str) -> u64 {
    key.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("key {key}"))
}

fn prefix(key: &str) -> &str {
    key.rsplit_once('-').map_or(key, |(p, _)| p)
}

#[test]
fn outbox_1_same_seed_engines_publish_different_keys() {
    // config() gives every engine seed 42: the client id must not come from it.
    for (ea, eb) in [(Some(1), Some(2)), (None, None)] {
        let mut a = Sim::new(with_entropy(ea));
        let mut b = Sim::new(with_entropy(eb));
        let ka: HashSet<String> = (0..20).map(|i| a.publish("c", json!(i))).collect();
        let kb: HashSet<String> = (0..20).map(|i| b.publish("c", json!(i))).collect();
        assert_eq!(ka.len(), 20);
        assert!(ka.is_disjoint(&kb), "{ea:?}/{eb:?}: {ka:?} {kb:?}");
    }
}

#[test]
fn outbox_1_restart_on_the_store_continues_the_sequence() {
    let mut s = Sim::new(with_entropy(Some(77)));
    let first: Vec<String> = (0..3).map(|i| s.publish("c", json!(i))).collect();
    assert_eq!(
        first.iter().map(|k| counter(k)).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let memo = saved_memo(&s.store).expect("memo saved with the block");
    assert_eq!(memo.client_id.as_deref(), Some(prefix(&first[0])));
    assert_eq!(
        memo.keys_reserved, 1_000,
        "one block reserved, one memo write"
    );
    // A cold start on the same store, with the same seed and other entropy: the stored id,
    // and the counter continues after the reserved block.
    let mut again = s.restart(with_entropy(Some(78)));
    let next = again.publish("c", json!("after restart"));
    assert_eq!(
        prefix(&next),
        prefix(&first[0]),
        "the id is kept in the store"
    );
    assert_eq!(counter(&next), 1_001);
    assert!(!first.contains(&next));
    // The restored outbox still holds the first three with their own keys (OUTBOX-4).
    let ids: Vec<String> = saved_records(&again.store)
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(&ids[..3], &first[..]);
}

#[test]
fn outbox_1_a_crash_inside_a_block_never_repeats_a_key() {
    // Publish 1,500 keys (into the second block), then the process dies: no close, the
    // engine is just gone. Every key used is at most the reserved mark, so the next start
    // continues above all of them.
    let mut s = Sim::new(with_entropy(Some(5)));
    let mut used = HashSet::new();
    for i in 0..1_500 {
        used.insert(s.publish("c", json!(i)));
        if i == 999 {
            assert_eq!(saved_memo(&s.store).map(|m| m.keys_reserved), Some(1_000));
        }
    }
    assert_eq!(
        saved_memo(&s.store).map(|m| m.keys_reserved),
        Some(2_000),
        "the 1,001st key reserved the second block"
    );
    let store = s.store.clone();
    drop(s);
    let mut again = Sim::with_store(with_entropy(Some(6)), store, T0);
    for i in 0..10 {
        let k = again.publish("c", json!(i));
        assert!(counter(&k) > 1_500);
        assert!(used.insert(k), "a key repeated");
    }
}

#[test]
fn outbox_1_a_block_that_cannot_be_reserved_refuses_the_publish() {
    let mut s = Sim::new(with_entropy(Some(3)));
    with_memory(&s.store, |m| m.fail_writes = true);
    let err = s
        .engine
        .publish("c", json!(1), None, s.now)
        .expect_err("the memo cannot be written");
    assert!(matches!(err, CallError::Store(_)));
    assert_eq!(err.code(), ErrorCode::StoreFailed);
    assert_eq!(s.engine.outbox_len(), 0, "nothing queued (OUTBOX-2)");
    with_memory(&s.store, |m| m.fail_writes = false);
    let k = s.publish("c", json!(2));
    let memo = saved_memo(&s.store).expect("memo");
    assert!(
        counter(&k) <= memo.keys_reserved,
        "a key is used only inside a reserved block"
    );
    assert_eq!(memo.client_id.as_deref(), Some(prefix(&k)));
}
