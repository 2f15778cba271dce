//! The JSON wire frames both ways and their codec (SPEC WIRE-1..8, LIMIT-1, LIMIT-4).

use crate::error::FrameError;
use crate::policy::PolicyWire;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Protocol version spoken by this engine (WIRE-2 `v=1`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest cursor the client keeps (LIMIT-4).
pub const MAX_CURSOR_BYTES: usize = 1024;

/// Longest channel name (WIRE-8).
pub const MAX_CHANNEL_BYTES: usize = 128;

/// Frames the server sends (WIRE-3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        #[serde(default = "default_version")]
        v: u32,
        #[serde(default)]
        server_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "crate::policy::lenient_policy"
        )]
        policy: Option<Box<PolicyWire>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reset: Vec<String>,
    },
    Msg {
        channel: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        #[serde(default)]
        data: Value,
    },
    Subscribed {
        channel: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
    Reset {
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
    Ack {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    Error {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default)]
        terminal: bool,
    },
    Drain {
        from_ms: u64,
        to_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RetryLater {
        after_ms: u64,
    },
    Ping {},
    Pong {},
}

fn default_version() -> u32 {
    PROTOCOL_VERSION
}

/// Frames the client sends (WIRE-4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Subscribe {
        channel: String,
    },
    Unsubscribe {
        channel: String,
    },
    Publish {
        id: String,
        channel: String,
        data: Value,
    },
    Ping {},
    Pong {},
}

/// How a `msg` frame written `type` first begins (the fast path's gate).
const MSG_PREFIX: &str = "{\"type\":\"msg\"";

/// `msg` as a plain struct: the same fields and defaults as [`ServerFrame::Msg`].
#[derive(Deserialize)]
struct MsgWire {
    #[serde(rename = "type")]
    _kind: MsgTag,
    channel: String,
    seq: u64,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
enum MsgTag {
    #[serde(rename = "msg")]
    Msg,
}

impl From<MsgWire> for ServerFrame {
    fn from(m: MsgWire) -> ServerFrame {
        ServerFrame::Msg {
            channel: m.channel,
            seq: m.seq,
            cursor: m.cursor,
            data: m.data,
        }
    }
}

/// The fast path: `msg` (nearly all traffic, and sent `type` first by servers) decodes
/// straight from the text into its own struct. `None` sends the text to the classifying
/// path, so the result and every error are the same whichever path decodes a frame.
fn decode_fast(text: &str) -> Option<ServerFrame> {
    if text.starts_with(MSG_PREFIX) {
        if let Ok(m) = serde_json::from_str::<MsgWire>(text) {
            return Some(m.into());
        }
    }
    None
}

// One struct per server frame type, with the same fields and defaults as its
// [`ServerFrame`] variant: a frame object is decoded by its `type` into one of them
// ([`decode_server_value`]) instead of through serde's internally tagged enum, whose
// buffering (`Content`) costs the browser build about 34 KB of code for the same result.

#[derive(Deserialize)]
struct HelloWire {
    #[serde(default = "default_version")]
    v: u32,
    #[serde(default)]
    server_id: String,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default, deserialize_with = "crate::policy::lenient_policy")]
    policy: Option<Box<PolicyWire>>,
    #[serde(default)]
    reset: Vec<String>,
}

/// `msg` from a value whose `type` was checked already.
#[derive(Deserialize)]
struct MsgValue {
    channel: String,
    seq: u64,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct SubscribedWire {
    channel: String,
    seq: u64,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct ResetWire {
    channel: String,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct AckWire {
    id: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorWire {
    code: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    terminal: bool,
}

#[derive(Deserialize)]
struct DrainWire {
    from_ms: u64,
    to_ms: u64,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct RetryLaterWire {
    after_ms: u64,
}

/// A server frame object by its `type` (WIRE-3, WIRE-5, WIRE-6).
fn decode_server_value(value: Value) -> Result<ServerFrame, FrameError> {
    let kind = frame_type(&value, &SERVER_TYPES)?;
    fn get<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(v)
    }
    let frame = match kind.as_str() {
        "hello" => get::<HelloWire>(value).map(|h| ServerFrame::Hello {
            v: h.v,
            server_id: h.server_id,
            cursor: h.cursor,
            policy: h.policy,
            reset: h.reset,
        }),
        "msg" => get::<MsgValue>(value).map(|m| ServerFrame::Msg {
            channel: m.channel,
            seq: m.seq,
            cursor: m.cursor,
            data: m.data,
        }),
        "subscribed" => get::<SubscribedWire>(value).map(|m| ServerFrame::Subscribed {
            channel: m.channel,
            seq: m.seq,
            cursor: m.cursor,
        }),
        "reset" => get::<ResetWire>(value).map(|m| ServerFrame::Reset {
            channel: m.channel,
            cursor: m.cursor,
        }),
        "ack" => get::<AckWire>(value).map(|m| ServerFrame::Ack {
            id: m.id,
            channel: m.channel,
            seq: m.seq,
        }),
        "error" => get::<ErrorWire>(value).map(|m| ServerFrame::Error {
            code: m.code,
            message: m.message,
            id: m.id,
            terminal: m.terminal,
        }),
        "drain" => get::<DrainWire>(value).map(|m| ServerFrame::Drain {
            from_ms: m.from_ms,
            to_ms: m.to_ms,
            reason: m.reason,
        }),
        "retry_later" => get::<RetryLaterWire>(value).map(|m| ServerFrame::RetryLater {
            after_ms: m.after_ms,
        }),
        "ping" => Ok(ServerFrame::Ping {}),
        _ => Ok(ServerFrame::Pong {}),
    };
    frame.map_err(|e| FrameError::Malformed(format!("{kind}: {e}")))
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

/// The `type` of a frame object, if it is one of `known` (WIRE-5, WIRE-6).
fn frame_type(value: &Value, known: &[&str]) -> Result<String, FrameError> {
    let kind = match value.get("type") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(FrameError::Malformed("`type` is not a string".into())),
        None => return Err(FrameError::Malformed("no `type` field".into())),
    };
    if !known.contains(&kind.as_str()) {
        return Err(FrameError::UnknownType(kind));
    }
    Ok(kind)
}

/// Decode a frame object whose `type` is one of `known` (WIRE-5, WIRE-6).
fn decode_value<T: serde::de::DeserializeOwned>(
    value: Value,
    known: &[&str],
) -> Result<T, FrameError> {
    let kind = frame_type(&value, known)?;
    serde_json::from_value(value).map_err(|e| FrameError::Malformed(format!("{kind}: {e}")))
}

fn parse_text(text: &str, limit: usize) -> Result<Value, FrameError> {
    if text.len() > limit {
        return Err(FrameError::TooLarge {
            size: text.len(),
            limit,
        });
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(FrameError::Malformed("frame is not a JSON object".into()));
    }
    Ok(value)
}

impl ServerFrame {
    /// Decode one text frame of at most `limit` bytes.
    pub fn decode(text: &str, limit: usize) -> Result<ServerFrame, FrameError> {
        if text.len() > limit {
            return Err(FrameError::TooLarge {
                size: text.len(),
                limit,
            });
        }
        match decode_fast(text) {
            Some(frame) => {
                frame.validate()?;
                Ok(frame)
            }
            None => ServerFrame::decode_classified(text, limit),
        }
    }

    /// The classifying decode: JSON, object, known `type`, fields (WIRE-5, WIRE-6).
    fn decode_classified(text: &str, limit: usize) -> Result<ServerFrame, FrameError> {
        let frame = decode_server_value(parse_text(text, limit)?)?;
        frame.validate()?;
        Ok(frame)
    }

    /// Decode raw bytes: invalid UTF-8 is `InvalidUtf8` (ERR-1).
    pub fn decode_bytes(bytes: &[u8], limit: usize) -> Result<ServerFrame, FrameError> {
        if bytes.len() > limit {
            return Err(FrameError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let text = core::str::from_utf8(bytes).map_err(|_| FrameError::InvalidUtf8)?;
        ServerFrame::decode(text, limit)
    }

    /// Decode a JSON array of frames (long-poll answer or POST reply, WIRE-1), at most
    /// `limit` bytes in all. Bad elements come back as errors in place, so the good
    /// ones are not lost.
    pub fn decode_batch(
        bytes: &[u8],
        limit: usize,
    ) -> Result<Vec<Result<ServerFrame, FrameError>>, FrameError> {
        if bytes.len() > limit {
            return Err(FrameError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let text = core::str::from_utf8(bytes).map_err(|_| FrameError::InvalidUtf8)?;
        Ok(parse_array(text, limit)?
            .into_iter()
            .map(|item| {
                if !item.is_object() {
                    return Err(FrameError::Malformed("frame is not a JSON object".into()));
                }
                let frame = decode_server_value(item)?;
                frame.validate()?;
                Ok(frame)
            })
            .collect())
    }

    /// Checks serde cannot express: channel names (WIRE-8). Cursor length (LIMIT-4) is
    /// the engine's business: a long cursor is ignored, the frame is kept.
    fn validate(&self) -> Result<(), FrameError> {
        match self {
            ServerFrame::Msg { channel, .. }
            | ServerFrame::Subscribed { channel, .. }
            | ServerFrame::Reset { channel, .. }
                if !valid_channel(channel) =>
            {
                Err(FrameError::Malformed(format!(
                    "invalid channel {channel:?}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Encode as one JSON text frame.
    pub fn encode(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| String::from("{\"type\":\"error\",\"code\":\"server_error\"}"))
    }
}

impl ClientFrame {
    /// Encode as one JSON text frame.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"ping\"}"))
    }

    /// Decode one client frame (the server side of WIRE-4).
    pub fn decode(text: &str, limit: usize) -> Result<ClientFrame, FrameError> {
        ClientFrame::from_value(parse_text(text, limit)?)
    }

    /// A client frame from a parsed JSON value (WIRE-5, WIRE-6, WIRE-8).
    fn from_value(value: Value) -> Result<ClientFrame, FrameError> {
        if !value.is_object() {
            return Err(FrameError::Malformed("frame is not a JSON object".into()));
        }
        let frame: ClientFrame = decode_value(value, &CLIENT_TYPES)?;
        match &frame {
            ClientFrame::Subscribe { channel }
            | ClientFrame::Unsubscribe { channel }
            | ClientFrame::Publish { channel, .. }
                if !valid_channel(channel) =>
            {
                Err(FrameError::Malformed(format!(
                    "invalid channel {channel:?}"
                )))
            }
            _ => Ok(frame),
        }
    }

    /// Decode a JSON array of client frames (a POST body, WIRE-1), at most `limit` bytes
    /// in all; each element is decoded as it was sent (never re-encoded), bad ones as
    /// errors in place.
    pub fn decode_batch(
        text: &str,
        limit: usize,
    ) -> Result<Vec<Result<ClientFrame, FrameError>>, FrameError> {
        Ok(parse_array(text, limit)?
            .into_iter()
            .map(ClientFrame::from_value)
            .collect())
    }
}

/// Parse a JSON array of at most `limit` bytes (a batch, WIRE-1).
fn parse_array(text: &str, limit: usize) -> Result<Vec<Value>, FrameError> {
    if text.len() > limit {
        return Err(FrameError::TooLarge {
            size: text.len(),
            limit,
        });
    }
    match serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))? {
        Value::Array(items) => Ok(items),
        _ => Err(FrameError::Malformed("batch is not a JSON array".into())),
    }
}

/// Encode frames as a JSON array (POST bodies, long-poll answers).
pub fn encode_batch<I: IntoIterator<Item = String>>(frames: I) -> String {
    let mut out = String::from("[");
    for (i, f) in frames.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&f);
    }
    out.push(']');
    out
}

/// Channel names match `[A-Za-z0-9_.:@-]{1,128}` (WIRE-8).
pub fn valid_channel(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_3_round_trip_server_frames() {
        let frames = vec![
            ServerFrame::Hello {
                v: 1,
                server_id: "s1".into(),
                cursor: Some("c".into()),
                policy: None,
                reset: vec!["a".into()],
            },
            ServerFrame::Msg {
                channel: "a".into(),
                seq: 3,
                cursor: Some("c3".into()),
                data: serde_json::json!({"x": 1}),
            },
            ServerFrame::Drain {
                from_ms: 1,
                to_ms: 2,
                reason: None,
            },
            ServerFrame::Ping {},
        ];
        for f in frames {
            assert_eq!(ServerFrame::decode(&f.encode(), 1 << 20), Ok(f));
        }
    }

    #[test]
    fn wire_5_unknown_type_is_not_malformed() {
        assert_eq!(
            ServerFrame::decode(r#"{"type":"future_thing","x":1}"#, 1024),
            Err(FrameError::UnknownType("future_thing".into()))
        );
        // Unknown fields are ignored.
        assert!(ServerFrame::decode(r#"{"type":"ping","extra":[1,2]}"#, 1024).is_ok());
    }

    #[test]
    fn wire_6_malformed_frames() {
        for bad in [
            "",
            "{",
            "[]",
            "42",
            r#"{"type":5}"#,
            r#"{"x":1}"#,
            r#"{"type":"msg","channel":"a"}"#,
            r#"{"type":"msg","channel":"a","seq":-1}"#,
            r#"{"type":"msg","channel":"bad name","seq":1}"#,
        ] {
            let err = ServerFrame::decode(bad, 1024).expect_err(bad);
            assert_eq!(
                err.code(),
                Some(crate::error::ErrorCode::FrameMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn limit_1_oversized_frame() {
        let big = format!(
            r#"{{"type":"msg","channel":"a","seq":1,"data":"{}"}}"#,
            "x".repeat(2000)
        );
        assert!(matches!(
            ServerFrame::decode(&big, 1000),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn limit_4_long_cursor_still_decodes() {
        let f = format!(
            r#"{{"type":"hello","cursor":"{}"}}"#,
            "c".repeat(MAX_CURSOR_BYTES + 1)
        );
        assert!(ServerFrame::decode(&f, 1 << 20).is_ok());
    }

    #[test]
    fn wire_1_batch_keeps_good_frames_beside_bad_ones() {
        let batch = br#"[{"type":"ping"},{"type":"nope"},{"bad":1},{"type":"ack","id":"k"}]"#;
        let out = ServerFrame::decode_batch(batch, 1 << 20).expect("batch");
        assert_eq!(out.len(), 4);
        assert!(out[0].is_ok() && out[3].is_ok());
        assert!(matches!(out[1], Err(FrameError::UnknownType(_))));
        assert!(matches!(out[2], Err(FrameError::Malformed(_))));
        assert_eq!(
            ServerFrame::decode_bytes(&[0xff, 0xfe], 10),
            Err(FrameError::InvalidUtf8)
        );
    }

    #[test]
    fn wire_1_post_body_elements_decode_as_sent() {
        // Found with the poll_body fuzz target's oracle: each element used to be re-encoded
        // and held to the body's limit on its own, and `1e5` re-encodes as `100000.0`, so a
        // body within the limit had an element refused as too large.
        let body = r#"[{"type":"ping","aaaaaaa":1e5}]"#;
        assert!(body.len() <= 32);
        assert_eq!(
            ClientFrame::decode_batch(body, 32),
            Ok(vec![Ok(ClientFrame::Ping {})])
        );
        let body = r#"[{"type":"publish","id":"k","channel":"bad name","data":1},{"type":"x"}]"#;
        let out = ClientFrame::decode_batch(body, 1024).expect("batch");
        assert!(matches!(out[0], Err(FrameError::Malformed(_))), "{out:?}");
        assert_eq!(out[1], Err(FrameError::UnknownType("x".into())));
        assert!(matches!(
            ClientFrame::decode_batch(body, 16),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn wire_8_channel_names() {
        assert!(valid_channel("room:42.a-b_c@x"));
        assert!(!valid_channel(""));
        assert!(!valid_channel("a b"));
        assert!(!valid_channel("a,b"));
        assert!(!valid_channel(&"a".repeat(129)));
    }

    #[test]
    fn wire_3_type_dispatch_agrees_with_the_tagged_enum() {
        // The per-type decode must accept and refuse exactly what serde's internally
        // tagged `ServerFrame` does, with the same result.
        let samples = [
            r#"{"type":"hello"}"#,
            r#"{"type":"hello","v":2,"server_id":"s","cursor":null,"reset":["a","b"]}"#,
            r#"{"type":"hello","policy":{"floor_ms":250,"bogus":1}}"#,
            r#"{"type":"hello","policy":[1,2]}"#,
            r#"{"type":"hello","policy":{"floor_ms":"x"}}"#,
            r#"{"type":"hello","reset":"a"}"#,
            r#"{"type":"hello","v":-1}"#,
            r#"{"type":"msg","channel":"a","seq":1,"data":[1,{"b":null}]}"#,
            r#"{"type":"msg","channel":"a","seq":1.5}"#,
            r#"{"type":"msg","channel":7,"seq":1}"#,
            r#"{"type":"subscribed","channel":"a","seq":0}"#,
            r#"{"type":"subscribed","channel":"a"}"#,
            r#"{"type":"reset","channel":"a","cursor":"c"}"#,
            r#"{"type":"reset"}"#,
            r#"{"type":"ack","id":"k"}"#,
            r#"{"type":"ack","id":"k","channel":"a","seq":4}"#,
            r#"{"type":"ack","id":null}"#,
            r#"{"type":"error","code":"forbidden","terminal":true,"id":"k","message":"m"}"#,
            r#"{"type":"error","code":"x","terminal":"yes"}"#,
            r#"{"type":"error"}"#,
            r#"{"type":"drain","from_ms":1,"to_ms":2,"reason":"r"}"#,
            r#"{"type":"drain","from_ms":1}"#,
            r#"{"type":"retry_later","after_ms":5}"#,
            r#"{"type":"retry_later","after_ms":"5"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"pong","extra":[1]}"#,
        ];
        for text in samples {
            let value: Value = serde_json::from_str(text).unwrap();
            let tagged = serde_json::from_value::<ServerFrame>(value.clone()).ok();
            let dispatched = decode_server_value(value).ok();
            assert_eq!(dispatched, tagged, "{text}");
        }
    }

    #[test]
    fn wire_3_fast_and_classifying_decodes_agree() {
        let samples = [
            r#"{"type":"msg","channel":"a","seq":1,"cursor":"c1","data":{"x":[1,2]}}"#,
            r#"{"type":"msg","channel":"a","seq":1}"#,
            r#"{"channel":"a","seq":2,"type":"msg","data":null}"#,
            r#"{"type":"msg","channel":"a","seq":1,"extra":true,"data":"s"}"#,
            r#"{"type":"msg","channel":"a","seq":1,"seq":2}"#,
            r#"{"type":"msg","channel":"a","seq":-1}"#,
            r#"{"type":"msg","channel":"bad channel!","seq":1}"#,
            r#"{"type":"msg","channel":"a"}"#,
            r#"{"type":"msg","channel":"a","seq":1"#,
            r#"{"type":"msgx","channel":"a","seq":1}"#,
            r#"{"type":"ack","id":"k","seq":3}"#,
            r#"{"type":"hello","v":1,"server_id":"s","cursor":"c"}"#,
            r#"{"type":"nope"}"#,
            r#"[1]"#,
        ];
        for text in samples {
            let fast = ServerFrame::decode(text, 1 << 20);
            let classified = ServerFrame::decode_classified(text, 1 << 20);
            assert_eq!(format!("{fast:?}"), format!("{classified:?}"), "{text}");
        }
    }
}
