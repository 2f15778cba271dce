//! The client builder: settings gathered on the foreign side, then one `tether::ClientBuilder` call each.

use crate::client::Client;
use crate::error::TetherError;
use crate::token::{ForeignTokens, TokenProvider};
use crate::types::{DropPolicy, PolicyOverrides, TransportKind};
use std::sync::{Arc, LazyLock};

/// Where the outbox and the memo live (OUTBOX-8), chosen by the app.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum StoreConfig {
    /// In memory: queued publishes do not survive the process.
    Memory,
    /// The crash-safe file store in directory `path` (created if missing): publishes are on
    /// disk before `enqueue`/`publish` return (OUTBOX-2) and survive restarts. One client per
    /// directory at a time.
    File { path: String },
}

#[derive(Clone)]
struct Settings {
    endpoint: String,
    transports: Option<Vec<TransportKind>>,
    policy: PolicyOverrides,
    token_provider: Option<Arc<dyn TokenProvider>>,
    store: StoreConfig,
    seed: Option<u64>,
    drop_policy: Option<DropPolicy>,
    max_frame_bytes: Option<u32>,
}

/// Configures a [`Client`]. Each setter returns a new builder (the old one is unchanged).
#[derive(uniffi::Object)]
pub struct ClientBuilder {
    settings: Settings,
}

/// The runtime the clients' drivers run on: two worker threads shared by every client of the
/// process (a driver mostly waits).
static RUNTIME: LazyLock<Result<tokio::runtime::Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tether")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
});

impl ClientBuilder {
    fn with(&self, change: impl FnOnce(&mut Settings)) -> Arc<ClientBuilder> {
        let mut settings = self.settings.clone();
        change(&mut settings);
        Arc::new(ClientBuilder { settings })
    }
}

#[uniffi::export]
impl ClientBuilder {
    /// A builder for `endpoint` (e.g. `https://rt.example.com/tether`).
    #[uniffi::constructor]
    pub fn new(endpoint: String) -> Arc<ClientBuilder> {
        Arc::new(ClientBuilder {
            settings: Settings {
                endpoint,
                transports: None,
                policy: PolicyOverrides::default(),
                token_provider: None,
                store: StoreConfig::Memory,
                seed: None,
                drop_policy: None,
                max_frame_bytes: None,
            },
        })
    }

    /// The allowed transports, kept in ladder order (FALLBACK-1). Default: all three.
    pub fn transports(&self, transports: Vec<TransportKind>) -> Arc<ClientBuilder> {
        self.with(|s| s.transports = Some(transports))
    }

    /// The app's policy overrides (BACKOFF-9).
    pub fn policy(&self, policy: PolicyOverrides) -> Arc<ClientBuilder> {
        self.with(|s| s.policy = policy)
    }

    /// Ask `provider` for a token before every attempt (AUTH-1).
    pub fn token_provider(&self, provider: Arc<dyn TokenProvider>) -> Arc<ClientBuilder> {
        self.with(|s| s.token_provider = Some(provider))
    }

    /// Where the outbox and memo live. Default: memory.
    pub fn store(&self, store: StoreConfig) -> Arc<ClientBuilder> {
        self.with(|s| s.store = store)
    }

    /// Seed the engine's random generator (BACKOFF-7). Default: OS randomness.
    pub fn seed(&self, seed: u64) -> Arc<ClientBuilder> {
        self.with(|s| s.seed = Some(seed))
    }

    /// What a full outbox does (OUTBOX-6). Default: drop the oldest.
    pub fn drop_policy(&self, policy: DropPolicy) -> Arc<ClientBuilder> {
        self.with(|s| s.drop_policy = Some(policy))
    }

    /// Largest frame accepted or sent (LIMIT-1); default 1 MiB, at least 1024.
    pub fn max_frame_bytes(&self, bytes: u32) -> Arc<ClientBuilder> {
        self.with(|s| s.max_frame_bytes = Some(bytes))
    }

    /// Validate and start the client's driver; it stays `Idle` until `connect()`.
    pub fn build(&self) -> Result<Arc<Client>, TetherError> {
        let s = self.settings.clone();
        let runtime = RUNTIME.as_ref().map_err(|e| TetherError::Closed {
            code: tether::ErrorCode::Closed.as_str().to_owned(),
            detail: format!("could not start the runtime: {e}"),
        })?;
        let _in_runtime = runtime.enter();
        let mut b = tether::Client::builder(s.endpoint).policy(s.policy.into());
        if let Some(ts) = s.transports {
            let ts: Vec<tether::TransportKind> = ts.into_iter().map(Into::into).collect();
            b = b.transports(&ts);
        }
        if let Some(p) = s.token_provider {
            b = b.token_provider(ForeignTokens(p));
        }
        if let StoreConfig::File { path } = s.store {
            b = b.store(tether::store::file::FileStore::open(path).map_err(TetherError::store)?);
        }
        if let Some(seed) = s.seed {
            b = b.seed(seed);
        }
        if let Some(p) = s.drop_policy {
            b = b.drop_policy(p.into());
        }
        if let Some(m) = s.max_frame_bytes {
            b = b.max_frame_bytes(m as usize);
        }
        Ok(Arc::new(Client::new(b.build()?)))
    }
}
