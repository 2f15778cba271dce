//! Decoding `Transfer-Encoding: chunked` HTTP/1.1 bodies (the runner's own `http_get` answers), tolerant of a stream cut off mid-chunk.

/// A decoded body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The payload: every chunk's data, concatenated.
    pub body: Vec<u8>,
    /// Chunks seen (the final zero-size chunk not counted).
    pub chunks: usize,
    /// True when the final zero-size chunk arrived. A streaming answer read for a bounded
    /// time (an SSE stream) ends without it; what arrived is kept, a partial last chunk too.
    pub complete: bool,
}

/// Decode a chunked body: `size-in-hex[;ext]\r\n data \r\n` ... `0\r\n[trailers]\r\n`.
/// Malformed framing stops the decoding there (keeping what was decoded), so an odd answer
/// still shows in a report instead of failing it.
pub fn decode(raw: &[u8]) -> Decoded {
    let mut out = Decoded {
        body: Vec::new(),
        chunks: 0,
        complete: false,
    };
    let mut i = 0;
    while i < raw.len() {
        let Some(eol) = find_crlf(raw, i) else { break };
        let line = String::from_utf8_lossy(&raw[i..eol]);
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        i = eol + 2;
        if n == 0 {
            out.complete = true;
            break;
        }
        let end = i.saturating_add(n).min(raw.len());
        out.body.extend_from_slice(&raw[i..end]);
        out.chunks += 1;
        if end < i + n {
            break;
        }
        i = end;
        match raw.get(i..i + 2) {
            Some(b"\r\n") => i += 2,
            _ => break,
        }
    }
    out
}

fn find_crlf(raw: &[u8], from: usize) -> Option<usize> {
    raw.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chunks_extensions_and_the_final_chunk() {
        let d = decode(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n");
        assert_eq!(d.body, b"hello, world");
        assert_eq!(d.chunks, 2);
        assert!(d.complete);
        // Upper-case hex, a chunk holding CR LF itself.
        let d = decode(b"A\r\nline\r\nnext\r\n0\r\n\r\n");
        assert_eq!(d.body, b"line\r\nnext");
        assert!(d.complete);
    }

    #[test]
    fn a_cut_off_stream_keeps_what_arrived() {
        // An SSE answer read for one second: two whole chunks, then half of a third.
        let raw = b"7\r\n: ping\n\r\n19\r\nid: e1\ndata: {\"type\":1}\n\n\r\n20\r\nid: e2\ndata:";
        let d = decode(raw);
        assert_eq!(
            String::from_utf8_lossy(&d.body),
            ": ping\nid: e1\ndata: {\"type\":1}\n\nid: e2\ndata:"
        );
        assert_eq!(d.chunks, 3);
        assert!(!d.complete);
        assert_eq!(decode(b"").body, b"");
        assert_eq!(decode(b"5\r\nhel").body, b"hel");
    }

    #[test]
    fn bad_framing_stops_without_losing_the_decoded_part() {
        let d = decode(b"3\r\nabc\r\nzz\r\nmore");
        assert_eq!(d.body, b"abc");
        assert!(!d.complete);
        // Data longer than its size line says: stop after the declared bytes.
        let d = decode(b"2\r\nabc\r\n0\r\n\r\n");
        assert_eq!(d.body, b"ab");
        assert!(!d.complete);
    }
}
