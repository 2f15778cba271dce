//! Typed errors with the stable codes of SPEC.md ERR-1.

use thiserror::Error;

/// Every error code the client reports (SPEC ERR-1). `as_str` is the stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    FrameMalformed,
    FrameTooLarge,
    SseLineTooLong,
    SseEventTooLarge,
    InvalidUtf8,
    PolicyClamped,
    MessageTooLarge,
    InvalidChannel,
    OutboxFull,
    StoreFailed,
    Closed,
    AuthExpired,
    AuthFailed,
    Forbidden,
    NotFound,
    ProtocolVersion,
    BadRequest,
    AttemptsExhausted,
    HeartbeatTimeout,
    SendTimeout,
    TransportBlocked,
    TransportError,
    ServerError,
}

impl ErrorCode {
    /// All codes, in SPEC order.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::FrameMalformed,
        ErrorCode::FrameTooLarge,
        ErrorCode::SseLineTooLong,
        ErrorCode::SseEventTooLarge,
        ErrorCode::InvalidUtf8,
        ErrorCode::PolicyClamped,
        ErrorCode::MessageTooLarge,
        ErrorCode::InvalidChannel,
        ErrorCode::OutboxFull,
        ErrorCode::StoreFailed,
        ErrorCode::Closed,
        ErrorCode::AuthExpired,
        ErrorCode::AuthFailed,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::ProtocolVersion,
        ErrorCode::BadRequest,
        ErrorCode::AttemptsExhausted,
        ErrorCode::HeartbeatTimeout,
        ErrorCode::SendTimeout,
        ErrorCode::TransportBlocked,
        ErrorCode::TransportError,
        ErrorCode::ServerError,
    ];

    /// The stable string code (SPEC ERR-1).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FrameMalformed => "frame_malformed",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::SseLineTooLong => "sse_line_too_long",
            ErrorCode::SseEventTooLarge => "sse_event_too_large",
            ErrorCode::InvalidUtf8 => "invalid_utf8",
            ErrorCode::PolicyClamped => "policy_clamped",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::InvalidChannel => "invalid_channel",
            ErrorCode::OutboxFull => "outbox_full",
            ErrorCode::StoreFailed => "store_failed",
            ErrorCode::Closed => "closed",
            ErrorCode::AuthExpired => "auth_expired",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ProtocolVersion => "protocol_version",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::AttemptsExhausted => "attempts_exhausted",
            ErrorCode::HeartbeatTimeout => "heartbeat_timeout",
            ErrorCode::SendTimeout => "send_timeout",
            ErrorCode::TransportBlocked => "transport_blocked",
            ErrorCode::TransportError => "transport_error",
            ErrorCode::ServerError => "server_error",
        }
    }

    /// The code for a stable string, if it is one.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call from the application was refused (publish, subscribe, ...).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    #[error("invalid channel name {0:?} (SPEC WIRE-8)")]
    InvalidChannel(String),
    #[error("message of {size} bytes exceeds max_frame_bytes {limit} (SPEC LIMIT-1)")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("outbox full (SPEC OUTBOX-6, reject_new)")]
    OutboxFull,
    #[error("outbox store failed: {0}")]
    Store(#[from] StoreError),
    #[error("client is closed")]
    Closed,
}

impl CallError {
    /// The stable code (SPEC ERR-1).
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::InvalidChannel(_) => ErrorCode::InvalidChannel,
            CallError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            CallError::OutboxFull => ErrorCode::OutboxFull,
            CallError::Store(_) => ErrorCode::StoreFailed,
            CallError::Closed => ErrorCode::Closed,
        }
    }
}

/// A failure of an outbox/memo store (SPEC OUTBOX-8).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Why a frame from the server could not be used (SPEC WIRE-6, LIMIT-1).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("frame of {size} bytes exceeds limit {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("frame type {0:?} is unknown (ignored)")]
    UnknownType(String),
    #[error("frame is not valid UTF-8")]
    InvalidUtf8,
}

impl FrameError {
    /// The stable code (SPEC ERR-1). Unknown types are not errors (WIRE-5) and have none.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            FrameError::Malformed(_) => Some(ErrorCode::FrameMalformed),
            FrameError::TooLarge { .. } => Some(ErrorCode::FrameTooLarge),
            FrameError::UnknownType(_) => None,
            FrameError::InvalidUtf8 => Some(ErrorCode::InvalidUtf8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_1_codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
    }

    /// `ALL` is complete: no wildcard, so a new code does not compile here until it is listed.
    #[test]
    fn err_1_all_lists_every_code() {
        for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
            let pos = match c {
                ErrorCode::FrameMalformed => 0,
                ErrorCode::FrameTooLarge => 1,
                ErrorCode::SseLineTooLong => 2,
                ErrorCode::SseEventTooLarge => 3,
                ErrorCode::InvalidUtf8 => 4,
                ErrorCode::PolicyClamped => 5,
                ErrorCode::MessageTooLarge => 6,
                ErrorCode::InvalidChannel => 7,
                ErrorCode::OutboxFull => 8,
                ErrorCode::StoreFailed => 9,
                ErrorCode::Closed => 10,
                ErrorCode::AuthExpired => 11,
                ErrorCode::AuthFailed => 12,
                ErrorCode::Forbidden => 13,
                ErrorCode::NotFound => 14,
                ErrorCode::ProtocolVersion => 15,
                ErrorCode::BadRequest => 16,
                ErrorCode::AttemptsExhausted => 17,
                ErrorCode::HeartbeatTimeout => 18,
                ErrorCode::SendTimeout => 19,
                ErrorCode::TransportBlocked => 20,
                ErrorCode::TransportError => 21,
                ErrorCode::ServerError => 22,
            };
            assert_eq!(pos, i, "{c} is out of place in ErrorCode::ALL");
        }
    }
}
