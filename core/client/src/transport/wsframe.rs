//! RFC 6455 framing, client side: server frame headers parsed and checked (§5.2), client
//! frames encoded and masked (§5.3), close payloads (§5.5.1). Pure functions, no I/O.

/// A frame's opcode (§5.2); reserved opcodes are a protocol error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong (§5.5).
    pub(crate) fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub fin: bool,
    pub opcode: Opcode,
    /// Payload length in bytes.
    pub len: u64,
    /// Bytes of the header itself (2 to 10: the server never masks).
    pub header_len: usize,
}

/// Longest control frame payload (§5.5).
pub(crate) const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Parse the header at the start of `buf`: `Ok(None)` while more bytes are needed.
/// `Err` names the violated rule (no extension is negotiated, so RSV bits must be 0; a
/// server never masks; control frames are short and never fragmented).
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<Header>, &'static str> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err("reserved bits set without a negotiated extension");
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or("reserved opcode")?;
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 != 0 {
        return Err("masked frame from the server");
    }
    let (len, header_len) = match b1 & 0x7F {
        126 => {
            let Some(ext) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
        }
        127 => {
            let Some(ext) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(ext);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err("payload length with the most significant bit set");
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (!fin || len > MAX_CONTROL_PAYLOAD) {
        return Err("fragmented or oversized control frame");
    }
    Ok(Some(Header {
        fin,
        opcode,
        len,
        header_len,
    }))
}

/// XOR `buf` with the 4-byte `mask`, starting at mask offset 0 (§5.3).
pub(crate) fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Bytes a client frame with `payload_len` bytes of payload takes.
pub(crate) fn encoded_len(payload_len: usize) -> usize {
    let ext = match payload_len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + ext + 4 + payload_len
}

/// Append one final (FIN) client frame, masked with `mask`, to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: [u8; 4]) {
    out.reserve(encoded_len(payload.len()));
    out.push(0x80 | opcode.bits());
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// The payload of a close frame: the code, then the reason cut to 123 bytes on a character
/// boundary (§5.5: a control payload is at most 125 bytes).
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = Vec::with_capacity(2 + end);
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&reason.as_bytes()[..end]);
    p
}

/// A received close payload: `(code, reason)`; `Err` for a 1-byte payload (§5.5.1).
pub(crate) fn parse_close(payload: &[u8]) -> Result<(Option<u16>, String), &'static str> {
    match payload {
        [] => Ok((None, String::new())),
        [_] => Err("close frame with a 1-byte payload"),
        [hi, lo, reason @ ..] => Ok((
            Some(u16::from_be_bytes([*hi, *lo])),
            String::from_utf8_lossy(reason).into_owned(),
        )),
    }
}

/// Masking keys from the OS's random source, drawn 64 at a time (§5.3: unpredictable keys).
#[derive(Debug, Default)]
pub(crate) struct MaskKeys {
    pool: Vec<u8>,
}

impl MaskKeys {
    /// The next key. Should the OS source fail, std's `RandomState` (OS-seeded) fills in.
    pub(crate) fn next(&mut self) -> [u8; 4] {
        if self.pool.len() < 4 {
            let mut fresh = [0u8; 256];
            if getrandom::getrandom(&mut fresh).is_err() {
                use std::hash::{BuildHasher, Hasher};
                for (i, chunk) in fresh.chunks_mut(8).enumerate() {
                    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                    h.write_usize(i);
                    chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
                }
            }
            self.pool = fresh.to_vec();
        }
        let n = self.pool.len();
        let mut key = [0u8; 4];
        key.copy_from_slice(&self.pool[n - 4..]);
        self.pool.truncate(n - 4);
        if self.pool.is_empty() {
            self.pool = Vec::new();
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_every_length_form() {
        assert_eq!(parse_header(&[0x81]), Ok(None));
        let h = parse_header(&[0x81, 5]).ok().flatten();
        assert_eq!(
            h,
            Some(Header {
                fin: true,
                opcode: Opcode::Text,
                len: 5,
                header_len: 2
            })
        );
        assert_eq!(parse_header(&[0x82, 126, 1]), Ok(None));
        let h = parse_header(&[0x02, 126, 1, 0]).ok().flatten();
        assert_eq!(
            h.map(|h| (h.fin, h.len, h.header_len)),
            Some((false, 256, 4))
        );
        let mut long = vec![0x81, 127];
        long.extend_from_slice(&70_000u64.to_be_bytes());
        let h = parse_header(&long).ok().flatten();
        assert_eq!(h.map(|h| (h.len, h.header_len)), Some((70_000, 10)));
        long[2] = 0x80;
        assert!(parse_header(&long).is_err(), "top bit of a 64-bit length");
    }

    #[test]
    fn headers_refuse_what_a_client_must_not_accept() {
        assert!(parse_header(&[0xC1, 0]).is_err(), "RSV1 without extension");
        assert!(parse_header(&[0x83, 0]).is_err(), "reserved opcode");
        assert!(parse_header(&[0x81, 0x80]).is_err(), "masked server frame");
        assert!(parse_header(&[0x09, 0]).is_err(), "fragmented ping");
        assert!(parse_header(&[0x89, 126, 0, 126]).is_err(), "126-byte ping");
        assert!(parse_header(&[0x89, 125]).is_ok());
    }

    #[test]
    fn encoded_frames_are_masked_and_unmask_to_the_payload() {
        for len in [0usize, 5, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            let mask = [0x11, 0x22, 0x33, 0x44];
            encode(&mut out, Opcode::Text, &payload, mask);
            assert_eq!(out.len(), encoded_len(len));
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0x80, "client frames are masked");
            let body_at = out.len() - len;
            assert_eq!(&out[body_at - 4..body_at], &mask);
            let mut body = out[body_at..].to_vec();
            apply_mask(&mut body, mask);
            assert_eq!(body, payload, "length {len}");
        }
    }

    #[test]
    fn close_payloads_round_trip_and_cut_reasons_on_a_character_boundary() {
        let p = close_payload(1000, "bye");
        assert_eq!(parse_close(&p), Ok((Some(1000), "bye".into())));
        let long = "é".repeat(100);
        let p = close_payload(4001, &long);
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert_eq!(parse_close(&[]), Ok((None, String::new())));
        assert!(parse_close(&[3]).is_err());
    }

    #[test]
    fn mask_keys_vary() {
        let mut keys = MaskKeys::default();
        let drawn: std::collections::HashSet<[u8; 4]> = (0..200).map(|_| keys.next()).collect();
        assert!(drawn.len() > 190, "{} distinct of 200", drawn.len());
    }
}
