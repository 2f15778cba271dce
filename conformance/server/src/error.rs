//! Error types of the reference server.

use std::net::SocketAddr;
use thiserror::Error;

/// Why the server could not start or act.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The channel store refused an operation.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a [`ChannelStore`](crate::store::ChannelStore) operation failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StoreError {
    /// The channel name does not match WIRE-8.
    #[error("invalid channel name {0:?}")]
    InvalidChannel(String),
    /// The store already holds its maximum number of channels.
    #[error("channel limit of {0} reached")]
    ChannelLimit(usize),
    /// The backend (for example Redis) failed.
    #[error("store backend failed: {0}")]
    Backend(String),
}

impl StoreError {
    /// The stable code sent to clients in an `error` frame.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidChannel(_) => "invalid_channel",
            StoreError::ChannelLimit(_) => "channel_limit",
            StoreError::Backend(_) => "server_error",
        }
    }
}
