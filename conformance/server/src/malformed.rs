//! Bytes for the `malformed` and `oversized` faults, and raw WebSocket frame headers.

use crate::faults::MalformedKind;

/// The payload of one malformed frame of `kind` (text transports wrap it).
pub(crate) fn payload(kind: MalformedKind, n: usize) -> Vec<u8> {
    match kind {
        MalformedKind::GarbageBytes => {
            let mut x = (n as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(0x9e37_79b9);
            (0..32)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // Never a newline, so an SSE line stays one line.
                    match (x >> 24) as u8 {
                        b'\n' | b'\r' => 0xff,
                        b => b,
                    }
                })
                .collect()
        }
        MalformedKind::InvalidUtf8 => b"{\"type\":\"ping\",\"junk\":\"\xff\xfe\xc3\"}".to_vec(),
        MalformedKind::NonJson => b"this is not json".to_vec(),
        MalformedKind::NoType => br#"{"channel":"x","seq":1}"#.to_vec(),
        MalformedKind::BadFields => br#"{"type":"msg","channel":"x"}"#.to_vec(),
        MalformedKind::UnknownType => br#"{"type":"x_future_frame","n":1}"#.to_vec(),
    }
}

/// A JSON `ping` frame padded to `bytes` bytes (at least its minimal size).
pub(crate) fn oversized_frame(bytes: usize) -> String {
    let head = r#"{"type":"ping","pad":""#;
    let tail = r#""}"#;
    let pad = bytes
        .min(crate::faults::MAX_OVERSIZED)
        .saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(head.len() + pad + tail.len());
    s.push_str(head);
    // One bulk fill, not 10 million pushes: fast even in a debug build, so the frame goes
    // out at once instead of after a pause a fast heartbeat would take for a dead peer.
    s.push_str(&"x".repeat(pad));
    s.push_str(tail);
    s
}

/// An unmasked, final WebSocket frame (server to client) with `opcode` and `payload`.
pub(crate) fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | (opcode & 0x0f));
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&l.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// A plausible message frame for `drop_mid_frame` (cut in half by the caller).
pub(crate) fn sample_msg() -> String {
    format!(
        r#"{{"type":"msg","channel":"x","seq":1,"cursor":"e0000000000000000","data":{{"text":"{}"}}}}"#,
        "y".repeat(200)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_payloads() {
        assert_eq!(ws_frame(1, b"hi"), vec![0x81, 2, b'h', b'i']);
        assert_eq!(ws_frame(2, &[0; 300])[..4], [0x82, 126, 1, 44]);
        assert_eq!(oversized_frame(100).len(), 100);
        assert!(std::str::from_utf8(&payload(MalformedKind::InvalidUtf8, 0)).is_err());
        assert!(!payload(MalformedKind::GarbageBytes, 3).contains(&b'\n'));
    }
}
