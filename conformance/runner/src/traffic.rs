//! Continuous traffic in a case: the server publishes on several channels at a steady rate and the client publishes through its adapter at a steady rate, in the background while the case's faults run, every publish recorded for the checks.

use crate::adapter::Adapter;
use crate::protocol::Command;
use crate::server_proc::{CallError, ProcHandle};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tether_server::ServerState;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long one client publish command may take to be answered.
const PUBLISH_CALL: Duration = Duration::from_secs(10);

/// One server-side publish of the traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub channel: String,
    /// The payload's `n` (1, 2, ... per channel, across server incarnations).
    pub n: u64,
    /// The server incarnation that stored it (0 for an embedded server).
    pub incarnation: u32,
    /// Its `seq`, when the server answered.
    pub seq: Option<u64>,
    /// False when the server died with the publish in flight: it may or may not be stored.
    pub certain: bool,
    /// When the runner had the answer (case clock, µs).
    pub at_us: u64,
}

/// Where the server half publishes.
#[derive(Clone)]
pub enum Publisher {
    Embedded(ServerState),
    Process(Arc<ProcHandle>),
}

impl Publisher {
    /// Publish once: `Ok(Some(..))` stored, `Ok(None)` certainly not stored (server down).
    async fn publish(&self, channel: &str, data: Value) -> Result<Option<(u64, u32)>, u32> {
        match self {
            Publisher::Embedded(st) => Ok(st.publish(channel, data).await.ok().map(|s| (s, 0))),
            Publisher::Process(h) => match h.publish(channel, data).await {
                Ok(r) => Ok(Some(r)),
                Err(CallError::Lost(inc)) => Err(inc),
                Err(CallError::Down | CallError::Refused(_)) => Ok(None),
            },
        }
    }
}

/// What the client half recorded.
#[derive(Clone, Debug, Default)]
pub struct ClientSide {
    /// Idempotency keys of the publishes the adapter queued, in order.
    pub keys: Vec<String>,
    /// Publish commands the adapter refused (`code: message`).
    pub refused: Vec<String>,
}

/// The running traffic of a case.
pub struct Traffic {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    published: Arc<Mutex<Vec<Published>>>,
    client: Arc<Mutex<ClientSide>>,
    /// The server half's channels.
    pub channels: Vec<String>,
}

impl Traffic {
    /// Start it (a case runs one traffic: `n` starts at 1 on every channel).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        publisher: Publisher,
        adapter: Arc<Adapter>,
        channels: Vec<String>,
        pad_bytes: usize,
        every: Duration,
        publish: Option<(String, Duration)>,
        now_us: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Traffic {
        let (stop, rx) = watch::channel(false);
        let published: Arc<Mutex<Vec<Published>>> = Arc::default();
        let client: Arc<Mutex<ClientSide>> = Arc::default();
        let mut tasks = Vec::new();
        {
            let (mut rx, published, channels) = (rx.clone(), published.clone(), channels.clone());
            tasks.push(tokio::spawn(async move {
                let mut iv = tokio::time::interval(every.max(Duration::from_millis(1)));
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u64;
                loop {
                    tokio::select! {
                        _ = iv.tick() => {}
                        _ = rx.changed() => return,
                    }
                    n += 1;
                    for ch in &channels {
                        let data = if pad_bytes == 0 {
                            json!({ "n": n })
                        } else {
                            json!({ "n": n, "pad": "x".repeat(pad_bytes) })
                        };
                        let r = publisher.publish(ch, data).await;
                        let (incarnation, seq, certain) = match r {
                            Ok(Some((seq, inc))) => (inc, Some(seq), true),
                            Ok(None) => continue,
                            Err(inc) => (inc, None, false),
                        };
                        published
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(Published {
                                channel: ch.clone(),
                                n,
                                incarnation,
                                seq,
                                certain,
                                at_us: now_us(),
                            });
                    }
                }
            }));
        }
        if let Some((channel, every)) = publish {
            let (mut rx, client) = (rx, client.clone());
            tasks.push(tokio::spawn(async move {
                let mut iv = tokio::time::interval(every.max(Duration::from_millis(1)));
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u64;
                loop {
                    tokio::select! {
                        _ = iv.tick() => {}
                        _ = rx.changed() => return,
                    }
                    n += 1;
                    let cmd = Command::Publish {
                        id: adapter.next_id(),
                        channel: channel.clone(),
                        data: json!({ "n": n }),
                        key: None,
                    };
                    let reply = adapter.call_raw(cmd, PUBLISH_CALL).await;
                    let mut c = client.lock().unwrap_or_else(|e| e.into_inner());
                    match reply {
                        Ok(Ok(v)) => {
                            if let Some(k) = v.get("key").and_then(Value::as_str) {
                                c.keys.push(k.to_owned());
                            }
                        }
                        Ok(Err((code, message))) => c.refused.push(format!("{code}: {message}")),
                        Err(e) => {
                            c.refused.push(e.to_string());
                            return;
                        }
                    }
                }
            }));
        }
        Traffic {
            stop,
            tasks,
            published,
            client,
            channels,
        }
    }

    /// Stop both halves and wait for them; what they recorded.
    pub async fn stop(self) -> (Vec<Published>, ClientSide) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let p = std::mem::take(&mut *self.published.lock().unwrap_or_else(|e| e.into_inner()));
        let c = std::mem::take(&mut *self.client.lock().unwrap_or_else(|e| e.into_inner()));
        (p, c)
    }
}
