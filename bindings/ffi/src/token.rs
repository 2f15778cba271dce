//! The token provider as a foreign trait: apps implement it in Kotlin, Swift or Python (AUTH-1, AUTH-2).

use futures_util::future::BoxFuture;
use std::sync::Arc;

/// A token provider could not give a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TokenError {
    /// `fatal: true` stops the client in `Failed{auth_failed}`; otherwise the attempt fails
    /// and backs off (AUTH-1).
    #[error("token provider failed: {detail}")]
    Failed { detail: String, fatal: bool },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TokenError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> TokenError {
        TokenError::Failed {
            detail: e.reason,
            fatal: false,
        }
    }
}

/// Supplies bearer tokens, asked before every attempt (AUTH-1). `forced` is true after the
/// server said the token expired (AUTH-2): do not serve a cached token then. The client waits
/// at most `open_timeout` for an answer. Tokens are never logged (AUTH-4).
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait TokenProvider: Send + Sync {
    async fn token(&self, forced: bool) -> Result<String, TokenError>;
}

/// The foreign provider seen as the client's [`tether::TokenProvider`].
pub(crate) struct ForeignTokens(pub(crate) Arc<dyn TokenProvider>);

impl tether::TokenProvider for ForeignTokens {
    fn token(&self, forced: bool) -> BoxFuture<'static, Result<String, tether::TokenError>> {
        let provider = self.0.clone();
        Box::pin(async move {
            provider.token(forced).await.map_err(|e| match e {
                TokenError::Failed { detail, fatal } => tether::TokenError {
                    fatal,
                    message: detail,
                },
            })
        })
    }
}
