//! The client object and pending publishes: one-line delegations to `tether::Client`.

use crate::error::TetherError;
use crate::events::{EventSubscription, StateWatcher};
use crate::types::{Ack, Json, Network, State};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::sync::Arc;

/// A Tether client (SPEC.md). Every decision is the engine's; this object sends commands to
/// the client's driver and reads its state. Releasing the last reference ends the driver
/// (the connection is closed with 1000).
#[derive(uniffi::Object)]
pub struct Client {
    inner: tether::Client,
}

impl Client {
    pub(crate) fn new(inner: tether::Client) -> Client {
        Client { inner }
    }
}

fn parse(data: Json) -> Result<serde_json::Value, TetherError> {
    serde_json::from_str(&data.0)
        .map_err(|e| TetherError::invalid(format!("data is not JSON: {e}")))
}

#[uniffi::export(async_runtime = "tokio")]
impl Client {
    /// Start connecting (CONN-1); from `Failed` or `Closed` it starts afresh.
    pub async fn connect(&self) -> Result<(), TetherError> {
        Ok(self.inner.connect()?)
    }

    /// Close for good (CONN-3): code 1000, timers stop, the state ends in `Closed`; queued
    /// publishes stay in the store.
    pub async fn close(&self) -> Result<(), TetherError> {
        Ok(self.inner.close().await?)
    }

    /// Subscribe to `channel` (WIRE-8 names).
    pub async fn subscribe(&self, channel: String) -> Result<(), TetherError> {
        Ok(self.inner.subscribe(&channel).await?)
    }

    /// Stop receiving `channel`.
    pub async fn unsubscribe(&self, channel: String) -> Result<(), TetherError> {
        Ok(self.inner.unsubscribe(&channel).await?)
    }

    /// Publish `data` (JSON text) on `channel` and wait for the server's ack; raises
    /// `TetherError::Dropped` when the outbox drops it.
    pub async fn publish(&self, channel: String, data: Json) -> Result<Ack, TetherError> {
        self.enqueue(channel, data, None).await?.ack().await
    }

    /// Queue a publish and return as soon as it is in the store (OUTBOX-2), with the app's
    /// own idempotency key `id` or a generated one (OUTBOX-1). Await `ack()` for the outcome.
    pub async fn enqueue(
        &self,
        channel: String,
        data: Json,
        id: Option<String>,
    ) -> Result<Arc<PendingPublish>, TetherError> {
        let data = parse(data)?;
        let handle = match id {
            Some(id) => self.inner.publish_with_id(&channel, data, id).await?,
            None => self.inner.publish(&channel, data).await?,
        };
        Ok(Arc::new(PendingPublish::new(handle)))
    }
}

#[uniffi::export]
impl Client {
    /// The current state (STATE-1), as of the last events drained (STATE-3).
    pub fn state(&self) -> State {
        State::from(&self.inner.state())
    }

    /// Tell the client about connectivity (NET-1..3).
    pub fn set_network(&self, network: Network) -> Result<(), TetherError> {
        Ok(self.inner.set_network(network.into())?)
    }

    /// A new, independent subscription to this client's events from now on.
    pub fn events(&self) -> Arc<EventSubscription> {
        Arc::new(EventSubscription::new(self.inner.events()))
    }

    /// A watcher of the state.
    pub fn state_watcher(&self) -> Arc<StateWatcher> {
        Arc::new(StateWatcher::new(self.inner.state_watch()))
    }
}

/// A queued publish, durable in the store already. Releasing it does not cancel the publish.
#[derive(uniffi::Object)]
pub struct PendingPublish {
    id: String,
    outcome: Shared<BoxFuture<'static, tether::PublishOutcome>>,
}

impl PendingPublish {
    fn new(handle: tether::PublishHandle) -> PendingPublish {
        PendingPublish {
            id: handle.id().to_owned(),
            outcome: handle.boxed().shared(),
        }
    }
}

#[uniffi::export]
impl PendingPublish {
    /// The idempotency key (OUTBOX-1).
    pub fn id(&self) -> String {
        self.id.clone()
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl PendingPublish {
    /// The server's ack, or `TetherError::Dropped`. May be awaited any number of times.
    pub async fn ack(&self) -> Result<Ack, TetherError> {
        Ok(self.outcome.clone().await?.into())
    }
}
