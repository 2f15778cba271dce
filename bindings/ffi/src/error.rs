//! The one error type of the bindings; every variant carries the SPEC ERR-1 `code`.

use crate::types::DropReason;

/// Why a call failed. `code` is always a stable SPEC ERR-1 code, so apps match on codes, not
/// messages; `detail` is for humans (it never contains a token, AUTH-4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TetherError {
    /// The client refused the call: `invalid_channel`, `message_too_large`, `outbox_full`,
    /// `store_failed` or `closed`.
    #[error("{code}: {detail}")]
    Refused { code: String, detail: String },
    /// A setting or argument is invalid (endpoint, policy, transports, JSON text):
    /// `bad_request`.
    #[error("{code}: {detail}")]
    Invalid { code: String, detail: String },
    /// The client no longer runs (every handle released, or no runtime): `closed`.
    #[error("{code}: {detail}")]
    Closed { code: String, detail: String },
    /// The file store could not be opened: `store_failed`.
    #[error("{code}: {detail}")]
    Store { code: String, detail: String },
    /// The TLS or HTTP stack could not be set up: `transport_error`.
    #[error("{code}: {detail}")]
    Transport { code: String, detail: String },
    /// A publish will not be acknowledged. `reason` is the outbox's reason (OUTBOX-6/7), or
    /// `None` when the client was closed first (the publish stays in the store, CONN-3).
    /// `code`: `outbox_full` (overflow, expired), `message_too_large` (too large), the
    /// server's code when it is an ERR-1 code or else `server_error` (rejected), `closed`.
    #[error("{code}: publish {id} dropped ({detail})")]
    Dropped {
        code: String,
        detail: String,
        id: String,
        reason: Option<DropReason>,
    },
}

impl TetherError {
    /// The ERR-1 code of any variant.
    pub fn code(&self) -> &str {
        match self {
            TetherError::Refused { code, .. }
            | TetherError::Invalid { code, .. }
            | TetherError::Closed { code, .. }
            | TetherError::Store { code, .. }
            | TetherError::Transport { code, .. }
            | TetherError::Dropped { code, .. } => code,
        }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> TetherError {
        TetherError::Invalid {
            code: tether::ErrorCode::BadRequest.as_str().to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn store(e: tether::StoreError) -> TetherError {
        TetherError::Store {
            code: tether::ErrorCode::StoreFailed.as_str().to_owned(),
            detail: e.to_string(),
        }
    }
}

impl From<tether::ClientError> for TetherError {
    fn from(e: tether::ClientError) -> TetherError {
        let code = e.code().as_str().to_owned();
        let detail = e.to_string();
        match e {
            tether::ClientError::Call(_) => TetherError::Refused { code, detail },
            tether::ClientError::InvalidEndpoint { .. } | tether::ClientError::InvalidConfig(_) => {
                TetherError::Invalid { code, detail }
            }
            tether::ClientError::DriverGone | tether::ClientError::NoRuntime => {
                TetherError::Closed { code, detail }
            }
            tether::ClientError::Setup(_) => TetherError::Transport { code, detail },
            // Errors added to the client after these bindings keep their code.
            #[allow(unreachable_patterns)]
            _ => TetherError::Refused { code, detail },
        }
    }
}

impl From<tether::Dropped> for TetherError {
    fn from(d: tether::Dropped) -> TetherError {
        let code = match &d.reason {
            None => tether::ErrorCode::Closed,
            Some(tether::DropReason::Overflow | tether::DropReason::Expired) => {
                tether::ErrorCode::OutboxFull
            }
            Some(tether::DropReason::TooLarge) => tether::ErrorCode::MessageTooLarge,
            Some(tether::DropReason::Rejected { code }) => {
                tether::ErrorCode::parse(code).unwrap_or(tether::ErrorCode::ServerError)
            }
            // A reason added to the client after these bindings: the outbox gave it up.
            Some(_) => tether::ErrorCode::OutboxFull,
        };
        let detail = match &d.reason {
            None => "the client was closed before an outcome was known".to_owned(),
            Some(tether::DropReason::Rejected { code }) => {
                format!("rejected by the server: {code}")
            }
            Some(r) => r.as_str().to_owned(),
        };
        TetherError::Dropped {
            code: code.as_str().to_owned(),
            detail,
            id: d.id,
            reason: d.reason.as_ref().map(DropReason::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_1_every_variant_carries_a_spec_code() {
        let codes: Vec<&str> = tether::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let errors = [
            TetherError::from(tether::ClientError::Call(
                tether::engine::CallError::InvalidChannel("a b".into()),
            )),
            TetherError::from(tether::ClientError::InvalidConfig("x".into())),
            TetherError::from(tether::ClientError::DriverGone),
            TetherError::from(tether::ClientError::Setup("tls".into())),
            TetherError::store(tether::StoreError("disk".into())),
            TetherError::invalid("bad json"),
            TetherError::from(tether::Dropped {
                id: "k".into(),
                reason: None,
            }),
        ];
        for e in &errors {
            assert!(codes.contains(&e.code()), "{e:?}");
        }
        assert_eq!(errors[0].code(), "invalid_channel");
        assert_eq!(errors[2].code(), "closed");
        assert_eq!(errors[4].code(), "store_failed");
    }

    #[test]
    fn outbox_7_a_rejected_publish_raises_its_server_code() {
        let e = TetherError::from(tether::Dropped {
            id: "k-1".into(),
            reason: Some(tether::DropReason::Rejected {
                code: "forbidden".into(),
            }),
        });
        assert_eq!(e.code(), "forbidden");
        let TetherError::Dropped { id, reason, .. } = e else {
            panic!("dropped")
        };
        assert_eq!(id, "k-1");
        assert_eq!(
            reason,
            Some(DropReason::Rejected {
                code: "forbidden".into()
            })
        );
        let e = TetherError::from(tether::Dropped {
            id: "k-2".into(),
            reason: Some(tether::DropReason::Rejected {
                code: "no_such_code".into(),
            }),
        });
        assert_eq!(e.code(), "server_error");
        let e = TetherError::from(tether::Dropped {
            id: "k-3".into(),
            reason: Some(tether::DropReason::Overflow),
        });
        assert_eq!(e.code(), "outbox_full");
    }
}
