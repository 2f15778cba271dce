//! The client's error type, with the stable codes of SPEC ERR-1.

use tether_engine::{CallError, ErrorCode};
use thiserror::Error;

/// Why a call on a [`Client`](crate::Client) or [`ClientBuilder`](crate::ClientBuilder) failed.
///
/// Every variant maps to a stable [`ErrorCode`] with [`ClientError::code`] (SPEC ERR-1), so
/// applications and bindings can match on codes rather than messages.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The engine refused the call: invalid channel, message too large, outbox full, store failure,
    /// or a call on a closed client.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The client's driver task is gone (its runtime shut down, or every handle was dropped).
    #[error("the client's driver is no longer running")]
    DriverGone,
    /// The endpoint is not an absolute `http://` or `https://` URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    /// A builder setting is out of range (BACKOFF-9 validation, empty transport list, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// `build` was called outside a tokio runtime.
    #[error("no tokio runtime: build the client from within a tokio runtime")]
    NoRuntime,
    /// The TLS or HTTP stack could not be set up.
    #[error("transport setup failed: {0}")]
    Setup(String),
}

impl ClientError {
    /// The stable code (SPEC ERR-1).
    ///
    /// Configuration mistakes map to `bad_request` (the client is broken), a missing
    /// runtime or driver to `closed`, and a TLS/HTTP setup failure to `transport_error`.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Call(e) => e.code(),
            ClientError::DriverGone | ClientError::NoRuntime => ErrorCode::Closed,
            ClientError::InvalidEndpoint { .. } | ClientError::InvalidConfig(_) => {
                ErrorCode::BadRequest
            }
            ClientError::Setup(_) => ErrorCode::TransportError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_1_codes_are_stable() {
        assert_eq!(
            ClientError::Call(CallError::InvalidChannel("a b".into())).code(),
            ErrorCode::InvalidChannel
        );
        assert_eq!(ClientError::DriverGone.code().as_str(), "closed");
        assert_eq!(
            ClientError::InvalidConfig("x".into()).code().as_str(),
            "bad_request"
        );
    }
}
