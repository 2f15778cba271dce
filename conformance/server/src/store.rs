//! Channel state behind the `ChannelStore` trait: per-channel seq, bounded replay rings, publish-id dedupe (ADR-2, RESUME-3, OUTBOX-5).

use crate::error::StoreError;
use crate::state::Notice;
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tether_engine::frame::valid_channel;

/// One message kept in a channel's replay ring.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMsg {
    /// Per-channel sequence number, starting at 1.
    pub seq: u64,
    /// The application payload.
    pub data: Arc<Value>,
}

/// The answer to [`ChannelStore::read_after`].
#[derive(Clone, Debug, PartialEq)]
pub enum ReadOutcome {
    /// The messages after the asked position, oldest first (empty when the position is the head).
    Msgs(Vec<StoredMsg>),
    /// The ring no longer holds the message after the asked position (or the position is
    /// beyond the head): the reader must reset to `head` (RESUME-4).
    Gone {
        /// The channel's current head.
        head: u64,
    },
}

/// The result of an idempotent publish (OUTBOX-5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The channel the message was (originally) appended to.
    pub channel: String,
    /// Its sequence number.
    pub seq: u64,
    /// True when the id was seen before: nothing was appended, this is the original answer.
    pub duplicate: bool,
}

/// Where a store shared by several instances announces appends (its own instance's and every
/// other's) to the connections of one instance ([`ChannelStore::attach`]).
#[derive(Clone, Debug)]
pub struct FanoutSink {
    tx: tokio::sync::broadcast::Sender<Notice>,
}

impl FanoutSink {
    pub(crate) fn new(tx: tokio::sync::broadcast::Sender<Notice>) -> FanoutSink {
        FanoutSink { tx }
    }

    /// A message was appended to `channel` with `seq`: wake the connections behind it.
    pub fn appended(&self, channel: &str, seq: u64) {
        let _ = self.tx.send(Notice {
            channel: Arc::from(channel),
            seq,
            all: false,
        });
    }

    /// Announcements may have been missed (the fan-out link was down): every connection
    /// catches up on every channel from the store.
    pub fn resync(&self) {
        let _ = self.tx.send(Notice {
            channel: Arc::from(""),
            seq: 0,
            all: true,
        });
    }
}

/// Shared server-side state (ADR-2). Every handler goes through this trait, so a store shared
/// by several instances ([`RedisStore`](crate::RedisStore): a stream per channel, `INCR` for
/// seq, `SET EX` for publish ids, one script per operation, pub/sub for fan-out) replaces
/// [`MemoryStore`] without touching them.
pub trait ChannelStore: Send + Sync + 'static {
    /// Identifies this store's lifetime: a store that lost its memory has a new epoch, and
    /// cursors of another epoch are answered with `reset` (RESUME-4).
    fn epoch(&self) -> u64;

    /// Append a message; returns its sequence number.
    fn append<'a>(
        &'a self,
        channel: &'a str,
        data: Value,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// The last sequence number of `channel` (0 when it has no message yet).
    fn head<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Up to `max` messages with `seq > after`, oldest first, or `Gone` when the ring no longer
    /// covers `after + 1` (or `after` is beyond the head).
    fn read_after<'a>(
        &'a self,
        channel: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<ReadOutcome, StoreError>>;

    /// Check-and-insert the publish `id`, then append: a repeated id appends nothing and answers
    /// the original channel and seq (OUTBOX-5). Atomic with respect to concurrent calls.
    fn publish_once<'a>(
        &'a self,
        id: &'a str,
        channel: &'a str,
        data: Value,
    ) -> BoxFuture<'a, Result<Published, StoreError>>;

    /// False while the backend is unreachable: the server then answers `/ready` and new
    /// handshakes with 503 `not_ready` + `Retry-After` (WIRE-10). Must be cheap (no I/O).
    fn available(&self) -> bool {
        true
    }

    /// Called once per server state using this store. A store that fans out across
    /// instances keeps `sink` and announces every append through it (this instance's too),
    /// and returns true; the state then does not announce local appends itself.
    fn attach(&self, sink: FanoutSink) -> bool {
        let _ = sink;
        false
    }

    /// Store-specific counters for `/metrics`: `(name, help, value)`, each exported as
    /// `tether_store_<name>`.
    fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        Vec::new()
    }
}

/// Limits of a [`MemoryStore`].
#[derive(Clone, Debug)]
pub struct MemoryStoreConfig {
    /// Messages kept per channel for replay.
    pub ring_capacity: usize,
    /// Most channels the store creates; appends to new channels beyond are refused.
    pub max_channels: usize,
    /// How long publish ids are remembered (OUTBOX-5 asks at least 10 minutes).
    pub dedupe_ttl: Duration,
    /// Most publish ids remembered; beyond it the oldest are forgotten early.
    pub dedupe_capacity: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            ring_capacity: 1024,
            max_channels: 100_000,
            dedupe_ttl: Duration::from_secs(600),
            dedupe_capacity: 100_000,
        }
    }
}

#[derive(Default)]
struct Ring {
    head: u64,
    msgs: VecDeque<StoredMsg>,
}

struct Seen {
    channel: String,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    channels: HashMap<String, Ring>,
    seen: HashMap<String, Seen>,
    seen_order: VecDeque<(Instant, String)>,
}

/// The default in-memory store: one process, state lost on drop (a new one has a new epoch).
pub struct MemoryStore {
    epoch: u64,
    config: MemoryStoreConfig,
    inner: Mutex<Inner>,
}

/// A random 64-bit number from the std hasher's per-process random keys and the clock.
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    /// A new empty store with a fresh random epoch.
    pub fn new(config: MemoryStoreConfig) -> MemoryStore {
        MemoryStore {
            epoch: random_u64(),
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The limits this store runs with.
    pub fn config(&self) -> &MemoryStoreConfig {
        &self.config
    }

    fn append_locked(
        &self,
        inner: &mut Inner,
        channel: &str,
        data: Value,
    ) -> Result<u64, StoreError> {
        if !valid_channel(channel) {
            return Err(StoreError::InvalidChannel(channel.to_owned()));
        }
        if !inner.channels.contains_key(channel) && inner.channels.len() >= self.config.max_channels
        {
            return Err(StoreError::ChannelLimit(self.config.max_channels));
        }
        let ring = inner.channels.entry(channel.to_owned()).or_default();
        ring.head += 1;
        ring.msgs.push_back(StoredMsg {
            seq: ring.head,
            data: Arc::new(data),
        });
        while ring.msgs.len() > self.config.ring_capacity.max(1) {
            ring.msgs.pop_front();
        }
        Ok(ring.head)
    }

    fn prune_seen(&self, inner: &mut Inner, now: Instant) {
        while let Some((at, id)) = inner.seen_order.front() {
            let expired = now.saturating_duration_since(*at) >= self.config.dedupe_ttl;
            let full = inner.seen_order.len() >= self.config.dedupe_capacity.max(1);
            if !expired && !full {
                break;
            }
            let id = id.clone();
            inner.seen_order.pop_front();
            inner.seen.remove(&id);
        }
    }

    fn sync_read(&self, channel: &str, after: u64, max: usize) -> ReadOutcome {
        let inner = lock(&self.inner);
        let Some(ring) = inner.channels.get(channel) else {
            return if after == 0 {
                ReadOutcome::Msgs(Vec::new())
            } else {
                ReadOutcome::Gone { head: 0 }
            };
        };
        if after > ring.head {
            return ReadOutcome::Gone { head: ring.head };
        }
        if after == ring.head {
            return ReadOutcome::Msgs(Vec::new());
        }
        let oldest = ring.msgs.front().map(|m| m.seq).unwrap_or(ring.head + 1);
        if after + 1 < oldest {
            return ReadOutcome::Gone { head: ring.head };
        }
        let skip = usize::try_from(after + 1 - oldest).unwrap_or(usize::MAX);
        ReadOutcome::Msgs(ring.msgs.iter().skip(skip).take(max).cloned().collect())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(MemoryStoreConfig::default())
    }
}

impl ChannelStore for MemoryStore {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn append<'a>(
        &'a self,
        channel: &'a str,
        data: Value,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let r = {
            let mut inner = lock(&self.inner);
            self.append_locked(&mut inner, channel, data)
        };
        Box::pin(async move { r })
    }

    fn head<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        let head = lock(&self.inner)
            .channels
            .get(channel)
            .map(|r| r.head)
            .unwrap_or(0);
        Box::pin(async move { Ok(head) })
    }

    fn read_after<'a>(
        &'a self,
        channel: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<ReadOutcome, StoreError>> {
        let r = self.sync_read(channel, after, max);
        Box::pin(async move { Ok(r) })
    }

    fn publish_once<'a>(
        &'a self,
        id: &'a str,
        channel: &'a str,
        data: Value,
    ) -> BoxFuture<'a, Result<Published, StoreError>> {
        let r = {
            let now = Instant::now();
            let mut inner = lock(&self.inner);
            self.prune_seen(&mut inner, now);
            if let Some(seen) = inner.seen.get(id) {
                Ok(Published {
                    channel: seen.channel.clone(),
                    seq: seen.seq,
                    duplicate: true,
                })
            } else {
                match self.append_locked(&mut inner, channel, data) {
                    Ok(seq) => {
                        inner.seen.insert(
                            id.to_owned(),
                            Seen {
                                channel: channel.to_owned(),
                                seq,
                            },
                        );
                        inner.seen_order.push_back((now, id.to_owned()));
                        Ok(Published {
                            channel: channel.to_owned(),
                            seq,
                            duplicate: false,
                        })
                    }
                    Err(e) => Err(e),
                }
            }
        };
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("memory store futures are ready")
    }

    #[test]
    fn ring_is_bounded_and_reads_report_gone() {
        let s = MemoryStore::new(MemoryStoreConfig {
            ring_capacity: 3,
            ..Default::default()
        });
        for i in 0..5 {
            assert_eq!(block(s.append("a", json!(i))), Ok(i + 1));
        }
        assert_eq!(block(s.head("a")), Ok(5));
        assert_eq!(
            block(s.read_after("a", 1, 10)),
            Ok(ReadOutcome::Gone { head: 5 })
        );
        let ReadOutcome::Msgs(m) = block(s.read_after("a", 2, 10)).expect("read") else {
            panic!("gone")
        };
        assert_eq!(m.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(
            block(s.read_after("a", 5, 10)),
            Ok(ReadOutcome::Msgs(vec![]))
        );
        assert_eq!(
            block(s.read_after("a", 9, 10)),
            Ok(ReadOutcome::Gone { head: 5 })
        );
        assert_eq!(
            block(s.read_after("new", 0, 10)),
            Ok(ReadOutcome::Msgs(vec![]))
        );
        assert_eq!(
            block(s.read_after("new", 3, 10)),
            Ok(ReadOutcome::Gone { head: 0 })
        );
    }

    #[test]
    fn outbox_5_publish_once_dedupes() {
        let s = MemoryStore::default();
        let a = block(s.publish_once("k1", "c", json!(1))).expect("p");
        let b = block(s.publish_once("k1", "c", json!(1))).expect("p");
        assert_eq!((a.seq, a.duplicate), (1, false));
        assert_eq!((b.seq, b.duplicate), (1, true));
        assert_eq!(block(s.head("c")), Ok(1));
    }

    #[test]
    fn limits_are_enforced() {
        let s = MemoryStore::new(MemoryStoreConfig {
            max_channels: 1,
            dedupe_capacity: 2,
            ..Default::default()
        });
        assert!(block(s.append("a", json!(1))).is_ok());
        assert_eq!(
            block(s.append("b", json!(1))),
            Err(StoreError::ChannelLimit(1))
        );
        assert!(matches!(
            block(s.append("bad name", json!(1))),
            Err(StoreError::InvalidChannel(_))
        ));
        for id in ["x", "y", "z"] {
            assert!(block(s.publish_once(id, "a", json!(1))).is_ok());
        }
        assert!(lock(&s.inner).seen.len() <= 2);
    }
}
