//! `RedisStore`: the channel store shared by every instance (ADR-2): replay rings in Redis Streams, seq by `INCR`, publish ids with a TTL, fan-out by pub/sub.
//!
//! One Lua script per operation ([`scripts`]), so an append is atomic and totally ordered per
//! channel across instances, and costs one round trip. Streams hold the replay rings (a
//! read from a cursor is one `XRANGE`); pub/sub carries every append, payload included, to
//! every instance, which keeps the newest messages of each channel in a local [`mirror`],
//! so live delivery to any number of local connections reads nothing from Redis. Pub/sub is
//! at most once: when its link drops, the mirror is cleared and, once the link is back,
//! every connection catches up from the streams (`resync`). The commands go through a
//! reconnecting [`ConnectionManager`]; while Redis does not answer, [`ChannelStore::available`]
//! is false and the server refuses handshakes with `not_ready`.

mod mirror;
mod scripts;

use crate::error::StoreError;
use crate::store::{random_u64, ChannelStore, FanoutSink, Published, ReadOutcome, StoredMsg};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use mirror::{Hit, Mirror};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, Value as RValue};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How to reach Redis and what to keep there.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` (or `redis+unix:///path`).
    pub url: String,
    /// Prefix of every key and of the pub/sub channel (several deployments can share a Redis).
    pub prefix: String,
    /// Messages kept per channel for replay (RESUME-3).
    pub ring_capacity: usize,
    /// Most channels the store creates.
    pub max_channels: usize,
    /// How long publish ids are remembered (OUTBOX-5: at least 10 minutes).
    pub dedupe_ttl: Duration,
    /// Most publish ids remembered (OUTBOX-5's memory bound): beyond it the oldest go first.
    pub dedupe_capacity: usize,
    /// Longest wait for one Redis answer; a slower one counts as Redis unreachable.
    pub op_timeout: Duration,
    /// How often the links are checked (a `PING` on each).
    pub health_interval: Duration,
    /// Newest messages mirrored per channel in this instance (0: every read goes to Redis).
    pub mirror_per_channel: usize,
    /// Most channels mirrored in this instance.
    pub mirror_channels: usize,
    /// Most messages mirrored in this instance, over every channel.
    pub mirror_budget: usize,
}

impl RedisConfig {
    /// Defaults for `url`: prefix `tether`, the server defaults for rings and dedupe.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        let d = crate::ServerConfig::default();
        RedisConfig {
            url: url.into(),
            prefix: "tether".into(),
            ring_capacity: d.ring_capacity,
            max_channels: d.max_channels,
            dedupe_ttl: d.dedupe_ttl,
            dedupe_capacity: d.dedupe_capacity,
            op_timeout: Duration::from_secs(1),
            health_interval: Duration::from_millis(250),
            mirror_per_channel: 1024,
            mirror_channels: 10_000,
            mirror_budget: 65_536,
        }
    }

    /// Take the ring and dedupe limits of a server configuration.
    pub fn with_limits_of(mut self, cfg: &crate::ServerConfig) -> RedisConfig {
        self.ring_capacity = cfg.ring_capacity;
        self.max_channels = cfg.max_channels;
        self.dedupe_ttl = cfg.dedupe_ttl;
        self.dedupe_capacity = cfg.dedupe_capacity;
        self
    }
}

/// Counters of a [`RedisStore`] (also in `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Commands sent by store operations (each script call is one round trip; the health
    /// checks' pings are not counted).
    pub round_trips: u64,
    /// Commands that failed or timed out, and links that dropped.
    pub errors: u64,
    /// Reads answered by the local mirror.
    pub mirror_hits: u64,
    /// Reads that went to Redis.
    pub mirror_misses: u64,
    /// Appends received on pub/sub.
    pub announced: u64,
}

#[derive(Default)]
struct Counters {
    round_trips: AtomicU64,
    errors: AtomicU64,
    mirror_hits: AtomicU64,
    mirror_misses: AtomicU64,
    announced: AtomicU64,
}

struct Keys {
    epoch: String,
    channels: String,
    ids: String,
    notify: String,
    prefix: String,
}

impl Keys {
    fn seq(&self, ch: &str) -> String {
        format!("{}:seq:{ch}", self.prefix)
    }
    fn ring(&self, ch: &str) -> String {
        format!("{}:ring:{ch}", self.prefix)
    }
    fn id(&self, id: &str) -> String {
        format!("{}:id:{id}", self.prefix)
    }
}

struct Inner {
    cfg: RedisConfig,
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    append: Script,
    read: Script,
    head: Script,
    epoch: AtomicU64,
    commands_up: AtomicBool,
    fanout_up: AtomicBool,
    sinks: Mutex<Vec<FanoutSink>>,
    mirror: Mirror,
    n: Counters,
    /// Dropped with the store: the link tasks end.
    _stop: tokio::sync::watch::Sender<()>,
}

/// The Redis-backed [`ChannelStore`]. Cheap to clone; the link tasks end when the last clone
/// is dropped.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

fn parse_epoch(v: &RValue) -> Option<u64> {
    let s = match v {
        RValue::BulkString(b) => std::str::from_utf8(b).ok()?.to_owned(),
        RValue::SimpleString(s) => s.clone(),
        _ => return None,
    };
    u64::from_str_radix(&s, 16).ok()
}

fn as_u64(v: &RValue) -> Option<u64> {
    match v {
        RValue::Int(i) => u64::try_from(*i).ok(),
        RValue::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        RValue::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_str(v: &RValue) -> Option<&str> {
    match v {
        RValue::BulkString(b) => std::str::from_utf8(b).ok(),
        RValue::SimpleString(s) => Some(s),
        _ => None,
    }
}

fn array(v: RValue) -> Result<Vec<RValue>, StoreError> {
    match v {
        RValue::Array(a) => Ok(a),
        other => Err(backend(format!("unexpected answer {other:?}"))),
    }
}

impl RedisStore {
    /// Set up the store and its links. Returns at once, without waiting for Redis: the
    /// store reports itself unavailable until both links answer (see
    /// [`wait_available`](Self::wait_available)). Fails only on an unusable URL. Must be
    /// called inside a Tokio runtime.
    pub fn connect(cfg: RedisConfig) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(cfg.url.as_str()).map_err(backend)?;
        let mcfg = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(cfg.op_timeout))
            .set_response_timeout(Some(cfg.op_timeout));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), mcfg).map_err(backend)?;
        let prefix = cfg.prefix.clone();
        let keys = Keys {
            epoch: format!("{prefix}:epoch"),
            channels: format!("{prefix}:channels"),
            ids: format!("{prefix}:ids"),
            notify: format!("{prefix}:notify"),
            prefix,
        };
        let (stop, stopped) = tokio::sync::watch::channel(());
        let inner = Arc::new(Inner {
            mirror: Mirror::new(
                cfg.mirror_per_channel.min(cfg.ring_capacity),
                cfg.mirror_channels,
                cfg.mirror_budget,
            ),
            cfg,
            client,
            conn,
            keys,
            append: Script::new(scripts::APPEND),
            read: Script::new(scripts::READ),
            head: Script::new(scripts::HEAD),
            epoch: AtomicU64::new(0),
            commands_up: AtomicBool::new(false),
            fanout_up: AtomicBool::new(false),
            sinks: Mutex::new(Vec::new()),
            n: Counters::default(),
            _stop: stop,
        });
        tokio::spawn(health_loop(Arc::downgrade(&inner), stopped.clone()));
        tokio::spawn(fanout_loop(Arc::downgrade(&inner), stopped));
        Ok(RedisStore { inner })
    }

    /// Wait until the store is available (both links up), at most `timeout`.
    pub async fn wait_available(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.available() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.cfg
    }

    /// The counters so far.
    pub fn stats(&self) -> RedisStats {
        let n = &self.inner.n;
        RedisStats {
            round_trips: n.round_trips.load(Ordering::Relaxed),
            errors: n.errors.load(Ordering::Relaxed),
            mirror_hits: n.mirror_hits.load(Ordering::Relaxed),
            mirror_misses: n.mirror_misses.load(Ordering::Relaxed),
            announced: n.announced.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    fn candidate_epoch() -> String {
        format!("{:016x}", random_u64())
    }

    fn saw_epoch(&self, v: &RValue) {
        if let Some(e) = parse_epoch(v) {
            self.epoch.store(e, Ordering::Relaxed);
        }
    }

    /// One script call: a round trip, bounded by `op_timeout`. A failure that is not the
    /// script's own marks the command link down until the health check sees it answer.
    async fn call(&self, inv: redis::ScriptInvocation<'_>) -> Result<RValue, StoreError> {
        let mut conn = self.conn.clone();
        self.n.round_trips.fetch_add(1, Ordering::Relaxed);
        let r =
            tokio::time::timeout(self.cfg.op_timeout, inv.invoke_async::<RValue>(&mut conn)).await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.n.errors.fetch_add(1, Ordering::Relaxed);
                if link_error(&e) {
                    self.commands_up.store(false, Ordering::Relaxed);
                }
                Err(backend(e))
            }
            Err(_) => {
                self.n.errors.fetch_add(1, Ordering::Relaxed);
                self.commands_up.store(false, Ordering::Relaxed);
                Err(backend("no answer in time"))
            }
        }
    }

    async fn head(&self, channel: &str) -> Result<u64, StoreError> {
        let mut inv = self.head.prepare_invoke();
        inv.key(&self.keys.epoch)
            .key(self.keys.seq(channel))
            .arg(Self::candidate_epoch());
        let a = array(self.call(inv).await?)?;
        if let Some(e) = a.get(1) {
            self.saw_epoch(e);
        }
        a.first()
            .and_then(as_u64)
            .ok_or_else(|| backend("bad head answer"))
    }

    async fn read_redis(
        &self,
        channel: &str,
        after: u64,
        max: usize,
    ) -> Result<ReadOutcome, StoreError> {
        let mut inv = self.read.prepare_invoke();
        inv.key(&self.keys.epoch)
            .key(self.keys.seq(channel))
            .key(self.keys.ring(channel))
            .arg(after)
            .arg(max.max(1))
            .arg(Self::candidate_epoch());
        let a = array(self.call(inv).await?)?;
        if a.len() < 3 {
            return Err(backend("bad read answer"));
        }
        self.saw_epoch(&a[2]);
        let head = as_u64(&a[1]).ok_or_else(|| backend("bad head in read answer"))?;
        if as_u64(&a[0]) == Some(1) {
            return Ok(ReadOutcome::Gone { head });
        }
        let mut msgs = Vec::with_capacity((a.len() - 3) / 2);
        for pair in a[3..].chunks(2) {
            let [id, data] = pair else { break };
            let seq = as_str(id)
                .and_then(|s| s.strip_prefix("0-"))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| backend("bad stream entry id"))?;
            let text = as_str(data).ok_or_else(|| backend("bad stream entry"))?;
            let data: Value = serde_json::from_str(text).map_err(backend)?;
            msgs.push(StoredMsg {
                seq,
                data: Arc::new(data),
            });
        }
        Ok(ReadOutcome::Msgs(msgs))
    }

    async fn append(
        &self,
        id: Option<&str>,
        channel: &str,
        data: Value,
    ) -> Result<Published, StoreError> {
        if !tether_engine::frame::valid_channel(channel) {
            return Err(StoreError::InvalidChannel(channel.to_owned()));
        }
        let text = serde_json::to_string(&data).map_err(backend)?;
        let mut inv = self.append.prepare_invoke();
        inv.key(&self.keys.epoch)
            .key(self.keys.seq(channel))
            .key(self.keys.ring(channel))
            .key(&self.keys.channels)
            .key(id.map(|i| self.keys.id(i)).unwrap_or_default())
            .key(&self.keys.ids)
            .arg(channel)
            .arg(text)
            .arg(self.cfg.ring_capacity.max(1))
            .arg(self.cfg.max_channels)
            .arg(Self::candidate_epoch())
            .arg(self.cfg.dedupe_ttl.as_secs().max(1))
            .arg(self.cfg.dedupe_capacity.max(1))
            .arg(&self.keys.notify)
            .arg(if id.is_some() { "1" } else { "0" });
        let a = array(self.call(inv).await?)?;
        if a.len() < 3 {
            return Err(backend("bad append answer"));
        }
        self.saw_epoch(&a[2]);
        match as_u64(&a[0]) {
            Some(0) => Ok(Published {
                channel: channel.to_owned(),
                seq: as_u64(&a[1]).ok_or_else(|| backend("bad seq"))?,
                duplicate: false,
            }),
            Some(1) => {
                let prev = as_str(&a[1]).ok_or_else(|| backend("bad publish id record"))?;
                let (seq, ch) = prev
                    .split_once(' ')
                    .ok_or_else(|| backend("bad publish id record"))?;
                Ok(Published {
                    channel: ch.to_owned(),
                    seq: seq.parse().map_err(|_| backend("bad publish id record"))?,
                    duplicate: true,
                })
            }
            Some(2) => Err(StoreError::ChannelLimit(self.cfg.max_channels)),
            _ => Err(backend("bad append status")),
        }
    }

    fn sinks(&self) -> Vec<FanoutSink> {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One announcement from pub/sub: mirror it, then wake the connections (in that order,
    /// so a connection woken finds the message in the mirror).
    fn announced(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let mut parts = text.splitn(3, '\n');
        let (Some(ch), Some(seq), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let (Ok(seq), Ok(data)) = (seq.parse::<u64>(), serde_json::from_str::<Value>(data)) else {
            return;
        };
        self.n.announced.fetch_add(1, Ordering::Relaxed);
        self.mirror.push(
            ch,
            StoredMsg {
                seq,
                data: Arc::new(data),
            },
        );
        for s in self.sinks() {
            s.appended(ch, seq);
        }
    }

    fn fanout_down(&self) {
        if self.fanout_up.swap(false, Ordering::Relaxed) {
            self.n.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.mirror.clear();
    }
}

/// Errors that say the link, not the request, is broken.
fn link_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
}

/// Ping the command link every `health_interval`; the store is available again once it answers.
async fn health_loop(inner: Weak<Inner>, mut stopped: tokio::sync::watch::Receiver<()>) {
    loop {
        let Some(i) = inner.upgrade() else { return };
        let mut conn = i.conn.clone();
        let ok = matches!(
            tokio::time::timeout(
                i.cfg.op_timeout,
                redis::cmd("PING").query_async::<String>(&mut conn)
            )
            .await,
            Ok(Ok(_))
        );
        let was = i.commands_up.swap(ok, Ordering::Relaxed);
        if !ok && was {
            i.n.errors.fetch_add(1, Ordering::Relaxed);
        }
        if ok && !was {
            // Refresh the epoch (Redis may have come back empty: a new epoch then).
            let _ = i.head("-").await;
        }
        let every = i.cfg.health_interval;
        drop(i);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Keep one pub/sub subscription to the notify channel; on every (re)subscription, resync.
async fn fanout_loop(inner: Weak<Inner>, mut stopped: tokio::sync::watch::Receiver<()>) {
    let mut delay = Duration::from_millis(50);
    loop {
        let Some(i) = inner.upgrade() else { return };
        let (client, timeout, notify, every) = (
            i.client.clone(),
            i.cfg.op_timeout,
            i.keys.notify.clone(),
            i.cfg.health_interval,
        );
        drop(i);
        let linked = tokio::time::timeout(timeout, async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&notify).await?;
            Ok::<_, RedisError>(ps)
        })
        .await;
        let ps = match linked {
            Ok(Ok(ps)) => ps,
            _ => {
                if let Some(i) = inner.upgrade() {
                    i.fanout_down();
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped.changed() => return,
                }
                delay = (delay * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        delay = Duration::from_millis(50);
        let (mut sink, mut stream) = ps.split();
        {
            let Some(i) = inner.upgrade() else { return };
            i.mirror.clear();
            i.fanout_up.store(true, Ordering::Relaxed);
            // Appends announced while the link was down were missed: catch up from the streams.
            for s in i.sinks() {
                s.resync();
            }
        }
        let mut ping = tokio::time::interval(every);
        ping.tick().await;
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    Some(m) => {
                        let Some(i) = inner.upgrade() else { return };
                        i.announced(m.get_payload_bytes());
                    }
                    None => break,
                },
                _ = ping.tick() => {
                    let ok = matches!(
                        tokio::time::timeout(timeout, sink.ping::<RValue>()).await,
                        Ok(Ok(_))
                    );
                    if !ok {
                        break;
                    }
                }
                _ = stopped.changed() => return,
            }
        }
        if let Some(i) = inner.upgrade() {
            i.fanout_down();
        }
    }
}

impl ChannelStore for RedisStore {
    fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Relaxed)
    }

    fn append<'a>(
        &'a self,
        channel: &'a str,
        data: Value,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move { Ok(self.inner.append(None, channel, data).await?.seq) })
    }

    fn head<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.inner.head(channel))
    }

    fn read_after<'a>(
        &'a self,
        channel: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<ReadOutcome, StoreError>> {
        Box::pin(async move {
            let i = &self.inner;
            if i.fanout_up.load(Ordering::Relaxed) {
                if let Hit::Msgs(m) = i.mirror.read_after(channel, after, max) {
                    i.n.mirror_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(ReadOutcome::Msgs(m));
                }
            }
            i.n.mirror_misses.fetch_add(1, Ordering::Relaxed);
            i.read_redis(channel, after, max).await
        })
    }

    fn publish_once<'a>(
        &'a self,
        id: &'a str,
        channel: &'a str,
        data: Value,
    ) -> BoxFuture<'a, Result<Published, StoreError>> {
        Box::pin(self.inner.append(Some(id), channel, data))
    }

    fn available(&self) -> bool {
        self.inner.commands_up.load(Ordering::Relaxed)
            && self.inner.fanout_up.load(Ordering::Relaxed)
    }

    fn attach(&self, sink: FanoutSink) -> bool {
        self.inner
            .sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
        true
    }

    fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let s = self.stats();
        vec![
            (
                "redis_round_trips_total",
                "Commands sent to Redis (one round trip each).",
                s.round_trips,
            ),
            (
                "redis_errors_total",
                "Redis commands that failed or timed out, and links that dropped.",
                s.errors,
            ),
            (
                "redis_mirror_hits_total",
                "Reads answered by this instance's mirror of the newest messages.",
                s.mirror_hits,
            ),
            (
                "redis_mirror_misses_total",
                "Reads that went to Redis.",
                s.mirror_misses,
            ),
            (
                "redis_announced_total",
                "Appends received on the pub/sub fan-out.",
                s.announced,
            ),
        ]
    }
}
