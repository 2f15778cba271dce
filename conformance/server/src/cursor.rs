//! The opaque resume cursor: server epoch plus the connection's per-channel positions (RESUME-1..4).
//!
//! Format: `e<epoch as 16 lowercase hex digits>` followed by `~<channel>!<seq>` for every
//! channel, sorted by name, e.g. `e00c0ffee0ddba11~chat!42~news:eu!7`. `~` and `!` are outside
//! the channel alphabet of WIRE-8, and every character is URL-safe in a query value.

use std::collections::BTreeMap;
use tether_engine::frame::{valid_channel, MAX_CURSOR_BYTES};
use thiserror::Error;

/// A decoded cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The store epoch the positions belong to.
    pub epoch: u64,
    /// Last sequence number delivered, per channel.
    pub positions: BTreeMap<String, u64>,
}

/// Why a cursor string could not be decoded (the server then resets every channel).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CursorError {
    /// Longer than [`MAX_CURSOR_BYTES`] (LIMIT-4).
    #[error("cursor of {0} bytes is too long")]
    TooLong(usize),
    /// Not of the form described in the module documentation.
    #[error("cursor is malformed: {0}")]
    Malformed(&'static str),
}

impl Cursor {
    /// A cursor of `epoch` with no position.
    pub fn new(epoch: u64) -> Cursor {
        Cursor {
            epoch,
            positions: BTreeMap::new(),
        }
    }

    /// Encode (see the module documentation).
    pub fn encode(&self) -> String {
        let mut out = format!("e{:016x}", self.epoch);
        for (channel, seq) in &self.positions {
            out.push('~');
            out.push_str(channel);
            out.push('!');
            out.push_str(&seq.to_string());
        }
        out
    }

    /// Decode a cursor; never panics on any input.
    pub fn parse(text: &str) -> Result<Cursor, CursorError> {
        if text.len() > MAX_CURSOR_BYTES {
            return Err(CursorError::TooLong(text.len()));
        }
        let mut parts = text.split('~');
        let head = parts.next().unwrap_or_default();
        let hex = head
            .strip_prefix('e')
            .ok_or(CursorError::Malformed("no epoch"))?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CursorError::Malformed("bad epoch"));
        }
        let epoch =
            u64::from_str_radix(hex, 16).map_err(|_| CursorError::Malformed("bad epoch"))?;
        let mut positions = BTreeMap::new();
        for part in parts {
            let (channel, seq) = part
                .split_once('!')
                .ok_or(CursorError::Malformed("entry without `!`"))?;
            if !valid_channel(channel) {
                return Err(CursorError::Malformed("bad channel"));
            }
            if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CursorError::Malformed("bad seq"));
            }
            let seq: u64 = seq.parse().map_err(|_| CursorError::Malformed("bad seq"))?;
            if positions.insert(channel.to_owned(), seq).is_some() {
                return Err(CursorError::Malformed("duplicate channel"));
            }
        }
        Ok(Cursor { epoch, positions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut c = Cursor::new(0xc0ffee);
        c.positions.insert("chat".into(), 42);
        c.positions.insert("news:eu@x-1.2_3".into(), 7);
        let s = c.encode();
        assert_eq!(s, "e0000000000c0ffee~chat!42~news:eu@x-1.2_3!7");
        assert_eq!(Cursor::parse(&s), Ok(c));
        assert_eq!(Cursor::parse("e0000000000000001"), Ok(Cursor::new(1)));
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        for bad in [
            "",
            "x",
            "e12",
            "e000000000000000g",
            "e0000000000000001~",
            "e0000000000000001~a",
            "e0000000000000001~a!",
            "e0000000000000001~a!-1",
            "e0000000000000001~a b!1",
            "e0000000000000001~a!1~a!2",
            "e0000000000000001~a!99999999999999999999999",
            "é",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Cursor::parse(&"e".repeat(2000)),
            Err(CursorError::TooLong(2000))
        );
    }
}
