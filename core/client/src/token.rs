//! The token provider hook (SPEC AUTH-1, AUTH-2).

use futures_util::future::BoxFuture;
use std::future::Future;
pub use tether_engine::TokenError;

/// Supplies bearer tokens before every attempt (AUTH-1).
///
/// `forced` is true after the server said the token expired (AUTH-2): the provider must not
/// serve a cached token then. Return a [`TokenError`] with `fatal: true` to stop the client in
/// `Failed{auth_failed}`; a non-fatal error counts as a failed attempt and backs off.
///
/// Object safe (no `async fn`, no async-trait dependency). Any closure
/// `Fn(bool) -> impl Future<Output = Result<String, TokenError>>` is a provider:
///
/// ```
/// use tether::{TokenError, TokenProvider};
/// fn assert_provider<P: TokenProvider>(_: P) {}
/// assert_provider(|forced: bool| async move {
///     if forced { /* skip the cache */ }
///     Ok::<_, TokenError>("secret-token".to_string())
/// });
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// Fetch a token; the driver waits at most `open_timeout` for it.
    fn token(&self, forced: bool) -> BoxFuture<'static, Result<String, TokenError>>;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn(bool) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, TokenError>> + Send + 'static,
{
    fn token(&self, forced: bool) -> BoxFuture<'static, Result<String, TokenError>> {
        Box::pin(self(forced))
    }
}
