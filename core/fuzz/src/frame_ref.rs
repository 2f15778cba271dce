//! The plain reading of WIRE-1/3/5/6/8 the frame decoder is compared with: parse JSON into a
//! value, classify it, then deserialize the frame from the value. The decoder's fast paths
//! must give the same frame and the same kind of error.

use serde_json::Value;
use tether_engine::frame::{valid_channel, ClientFrame, ServerFrame};
use tether_engine::FrameError;

/// The kind of a decode failure (messages may differ between paths; kinds may not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Malformed,
    TooLarge,
    UnknownType(String),
    InvalidUtf8,
    /// A kind added to the engine after this oracle: it never agrees with the reference, so
    /// the target fails until the oracle learns it.
    Other(String),
}

/// The kind of `e`.
pub fn kind(e: &FrameError) -> Kind {
    match e {
        FrameError::Malformed(_) => Kind::Malformed,
        FrameError::TooLarge { .. } => Kind::TooLarge,
        FrameError::UnknownType(t) => Kind::UnknownType(t.clone()),
        FrameError::InvalidUtf8 => Kind::InvalidUtf8,
        other => Kind::Other(format!("{other:?}")),
    }
}

/// A decode result reduced to what must agree.
pub fn reduce<T>(r: Result<T, FrameError>) -> Result<T, Kind> {
    r.map_err(|e| kind(&e))
}

const SERVER_TYPES: [&str; 10] = [
    "hello",
    "msg",
    "subscribed",
    "reset",
    "ack",
    "error",
    "drain",
    "retry_later",
    "ping",
    "pong",
];

const CLIENT_TYPES: [&str; 5] = ["subscribe", "unsubscribe", "publish", "ping", "pong"];

/// WIRE-5/6: an object with a string `type`; unknown types are their own kind.
fn classify(value: &Value, known: &[&str]) -> Result<(), Kind> {
    let Some(obj) = value.as_object() else {
        return Err(Kind::Malformed);
    };
    match obj.get("type") {
        Some(Value::String(t)) if known.contains(&t.as_str()) => Ok(()),
        Some(Value::String(t)) => Err(Kind::UnknownType(t.clone())),
        _ => Err(Kind::Malformed),
    }
}

/// One server frame from an already parsed value.
pub fn server_from_value(value: Value) -> Result<ServerFrame, Kind> {
    classify(&value, &SERVER_TYPES)?;
    let frame: ServerFrame = serde_json::from_value(value).map_err(|_| Kind::Malformed)?;
    match &frame {
        ServerFrame::Msg { channel, .. }
        | ServerFrame::Subscribed { channel, .. }
        | ServerFrame::Reset { channel, .. }
            if !valid_channel(channel) =>
        {
            Err(Kind::Malformed)
        }
        _ => Ok(frame),
    }
}

/// One server frame from text of at most `limit` bytes.
pub fn server(text: &str, limit: usize) -> Result<ServerFrame, Kind> {
    if text.len() > limit {
        return Err(Kind::TooLarge);
    }
    let value: Value = serde_json::from_str(text).map_err(|_| Kind::Malformed)?;
    server_from_value(value)
}

/// One client frame from an already parsed value (the server half of WIRE-4).
pub fn client_from_value(value: Value) -> Result<ClientFrame, Kind> {
    classify(&value, &CLIENT_TYPES)?;
    let frame: ClientFrame = serde_json::from_value(value).map_err(|_| Kind::Malformed)?;
    match &frame {
        ClientFrame::Subscribe { channel }
        | ClientFrame::Unsubscribe { channel }
        | ClientFrame::Publish { channel, .. }
            if !valid_channel(channel) =>
        {
            Err(Kind::Malformed)
        }
        _ => Ok(frame),
    }
}
