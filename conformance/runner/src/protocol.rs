//! The adapter protocol: length-prefixed JSON frames and the message schemas (see ADAPTERS.md).
//!
//! Every message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON
//! (one object with a string `type`). Runner → adapter: [`Command`]s, each with an integer
//! `id`. Adapter → runner: one `hello` first, then replies (`ok` / `error` with the command's
//! `id`) and events (with `t_ms`, the adapter's monotonic clock in milliseconds).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version this runner speaks (`hello.protocol`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts (16 MiB).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Every capability a runner knows; adapters declare a subset in their `hello`.
pub const CAPABILITIES: [&str; 14] = [
    "websocket",
    "sse",
    "long_poll",
    "outbox",
    "auth",
    "network",
    "drain",
    "ready_probe",
    "persistence",
    "retry_after",
    "seed",
    // Forms that differ (ADAPTERS.md): cases check the declared form.
    "token_query",
    "opaque_websocket",
    "http_resend",
];

/// The capabilities that name a form of a requirement rather than a feature (ADAPTERS.md):
/// a client declares the forms it has; the native client has none of these.
pub const FORMS: [&str; 3] = ["token_query", "opaque_websocket", "http_resend"];

/// Why a frame could not be read or written.
#[derive(Debug, Error)]
pub enum ProtocolError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the 16 MiB limit")]
    TooLarge(usize),
    #[error("frame is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("frame is not a JSON object with a string `type`")]
    NoType,
}

/// Read one frame; `Ok(None)` at a clean end of stream (before a length prefix).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Value>, ProtocolError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(ProtocolError::TooLarge(n));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).await?;
    let v: Value = serde_json::from_slice(&buf)?;
    if !v.get("type").is_some_and(Value::is_string) {
        return Err(ProtocolError::NoType);
    }
    Ok(Some(v))
}

/// Write one frame and flush.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &impl Serialize,
) -> Result<(), ProtocolError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(ProtocolError::TooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| ProtocolError::TooLarge(body.len()))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

/// One entry of a token script (`configure.auth.tokens`): a token, or an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenStep {
    /// Answer with this token.
    Token(String),
    /// Fail the fetch; `fatal: true` ends in `Failed{auth_failed}` (AUTH-1).
    Error {
        error: String,
        #[serde(default)]
        fatal: bool,
    },
}

/// The token provider script: the n-th fetch gets `tokens[n]`, the last entry repeats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthScript {
    pub tokens: Vec<TokenStep>,
}

/// Runner → adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// (Re)create the client: replaces any previous one (which is closed first).
    Configure {
        id: u64,
        endpoint: String,
        transports: Vec<String>,
        /// App policy overrides (SPEC BACKOFF-9), fields as in the hello `policy`.
        #[serde(default)]
        policy: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<AuthScript>,
        /// `drop_oldest` (default) or `reject_new` (OUTBOX-6).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drop_policy: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_frame_bytes: Option<usize>,
    },
    Connect {
        id: u64,
    },
    Subscribe {
        id: u64,
        channel: String,
    },
    Unsubscribe {
        id: u64,
        channel: String,
    },
    /// Answered with `ok{id, key}` once the publish is queued (OUTBOX-2).
    Publish {
        id: u64,
        channel: String,
        data: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// `online`, `offline` or `changed` (NET-1..3).
    SetNetwork {
        id: u64,
        state: String,
    },
    Close {
        id: u64,
    },
    /// Answered once every event the client emitted before it was written out.
    Barrier {
        id: u64,
    },
    /// Answered with `ok{id, state}`: the client's current state object.
    State {
        id: u64,
    },
    /// Capability `persistence`: drop the client without a clean close and build a new one
    /// with the same configuration and the same store (memo + outbox), as a process restart.
    Restart {
        id: u64,
    },
    /// Close everything, answer, and exit.
    Shutdown {
        id: u64,
    },
}

impl Command {
    /// The command's id.
    pub fn id(&self) -> u64 {
        match self {
            Command::Configure { id, .. }
            | Command::Connect { id }
            | Command::Subscribe { id, .. }
            | Command::Unsubscribe { id, .. }
            | Command::Publish { id, .. }
            | Command::SetNetwork { id, .. }
            | Command::Close { id }
            | Command::Barrier { id }
            | Command::State { id }
            | Command::Restart { id }
            | Command::Shutdown { id } => *id,
        }
    }

    /// The command's `type` name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Configure { .. } => "configure",
            Command::Connect { .. } => "connect",
            Command::Subscribe { .. } => "subscribe",
            Command::Unsubscribe { .. } => "unsubscribe",
            Command::Publish { .. } => "publish",
            Command::SetNetwork { .. } => "set_network",
            Command::Close { .. } => "close",
            Command::Barrier { .. } => "barrier",
            Command::State { .. } => "state",
            Command::Restart { .. } => "restart",
            Command::Shutdown { .. } => "shutdown",
        }
    }
}

/// The adapter's first message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub adapter: String,
    pub version: String,
    #[serde(default = "default_protocol")]
    pub protocol: u32,
    pub capabilities: Vec<String>,
}

fn default_protocol() -> u32 {
    PROTOCOL_VERSION
}

/// One adapter → runner message, classified.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Hello(Hello),
    /// `ok{id, ...}`: the other fields are the result.
    Ok {
        id: u64,
        result: Value,
    },
    /// `error{id, code, message}`: the command failed.
    Failed {
        id: u64,
        code: String,
        message: String,
    },
    /// Any other message: an event (with `t_ms`).
    Event(Value),
}

impl Incoming {
    /// Classify a frame. An `error` with an integer `id` is a reply; without one it is the
    /// `error{code, detail}` event (ERR-2).
    pub fn classify(v: Value) -> Result<Incoming, String> {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let id = v.get("id").and_then(Value::as_u64);
        match (ty, id) {
            ("hello", _) => serde_json::from_value(v)
                .map(Incoming::Hello)
                .map_err(|e| format!("bad hello: {e}")),
            ("ok", Some(id)) => Ok(Incoming::Ok { id, result: v }),
            ("ok", None) => Err("`ok` without an integer `id`".into()),
            ("error", Some(id)) => Ok(Incoming::Failed {
                id,
                code: v
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned(),
                message: v
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            }),
            _ => {
                if !v.get("t_ms").is_some_and(Value::is_number) {
                    return Err(format!("event `{ty}` without a numeric `t_ms`"));
                }
                Ok(Incoming::Event(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        let cmd = Command::Subscribe {
            id: 3,
            channel: "c".into(),
        };
        write_frame(&mut buf, &cmd).await.expect("write");
        assert_eq!(&buf[..4], &(buf.len() as u32 - 4).to_be_bytes());
        let mut r = &buf[..];
        let v = read_frame(&mut r).await.expect("read").expect("frame");
        assert_eq!(v, json!({"type":"subscribe","id":3,"channel":"c"}));
        assert!(read_frame(&mut r).await.expect("eof").is_none());
        let back: Command = serde_json::from_value(v).expect("parse");
        assert_eq!(back, cmd);
    }

    #[test]
    fn classify_replies_and_events() {
        let ok = Incoming::classify(json!({"type":"ok","id":1,"key":"k"})).expect("ok");
        assert!(matches!(ok, Incoming::Ok { id: 1, .. }));
        let err = Incoming::classify(json!({"type":"error","id":2,"code":"invalid_channel"}));
        assert!(matches!(err, Ok(Incoming::Failed { id: 2, .. })));
        let ev = Incoming::classify(json!({"type":"error","t_ms":1.5,"code":"frame_malformed"}));
        assert!(matches!(ev, Ok(Incoming::Event(_))));
        assert!(Incoming::classify(json!({"type":"state"})).is_err());
        let auth: AuthScript =
            serde_json::from_value(json!({"tokens":["a",{"error":"x","fatal":true}]}))
                .expect("auth");
        assert_eq!(auth.tokens.len(), 2);
    }
}
