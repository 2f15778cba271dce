//! Just enough HTTP/1.1 for a proxy on the way: request heads (to log requests, refuse or strip WebSocket upgrades) and response framing (to hold a response until it ends).
//!
//! Both parsers are incremental and observe bytes as they pass; they never fail the
//! connection. Anything they cannot read (not HTTP, a head over [`MAX_HEAD`], a bad
//! length) turns them off for the rest of the connection, which is then forwarded as
//! opaque bytes. After an upgrade request (or a `101` answer) the connection is opaque too.

/// Largest request or response head read (bytes up to and including the blank line).
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// One request head as the proxy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: String,
    pub target: String,
    /// `Upgrade: websocket` (a WebSocket handshake).
    pub upgrade: bool,
}

/// The head bytes parsed: request or status line and the headers (lower-case names).
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(bytes: &[u8]) -> Option<Head> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.split("\r\n");
        let line = lines.next()?.to_owned();
        let mut headers = Vec::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let (k, v) = l.split_once(':')?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        Some(Head { line, headers })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// The body framing the headers announce (`None`: a length that cannot be read).
    fn body(&self) -> Option<Body> {
        if self.has_token("transfer-encoding", "chunked") {
            return Some(Body::Chunked);
        }
        match self.header("content-length") {
            Some(v) => v.parse::<u64>().ok().map(Body::Length),
            None => Some(Body::None),
        }
    }
}

/// The end of a head (`\r\n\r\n`) in `buf`, as the length of the head.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parse a complete request head.
pub(crate) fn parse_request(head: &[u8]) -> Option<RequestHead> {
    let h = Head::parse(head)?;
    let mut parts = h.line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return None;
    }
    Some(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        upgrade: h.has_token("upgrade", "websocket"),
    })
}

/// The request head without its hop-by-hop `Upgrade` and `Connection` headers: what a
/// proxy that does not know WebSocket forwards.
pub(crate) fn strip_upgrade(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        let name = line
            .split_once(':')
            .map(|(k, _)| k.trim().to_ascii_lowercase());
        if matches!(name.as_deref(), Some("upgrade" | "connection")) {
            continue;
        }
        out.push_str(line);
    }
    out.into_bytes()
}

/// The proxy's own answer to a refused upgrade: `status`, an HTML page, no `Tether-Error`.
pub(crate) fn refusal(status: u16) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        426 => "Upgrade Required",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Refused",
    };
    let body = format!(
        "<html><body><h1>{status} {reason}</h1><p>WebSocket is not allowed by the proxy policy.</p></body></html>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading a size line (`len` bytes of it so far).
    Size { value: u64, digits: bool, ext: bool },
    /// Inside a chunk's data.
    Data(u64),
    /// The CRLF after a chunk's data (bytes still expected).
    DataEnd(u8),
    /// The trailer section after the last chunk: bytes of the current line.
    Trailer(usize),
}

/// Body-skipping state shared by both parsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Reading a head.
    Head,
    /// `n` body bytes left.
    Length(u64),
    Chunked(Chunk),
    /// The body runs until the connection closes.
    UntilClose,
    /// Not parsing any more (upgrade, or unreadable).
    Opaque,
}

/// Advance a chunked body over `data` from `i`; returns the new position and whether the
/// body ended there, or `None` when the chunk syntax is broken.
fn chunked(state: &mut Chunk, data: &[u8], mut i: usize) -> Option<(usize, bool)> {
    while i < data.len() {
        match state {
            Chunk::Size { value, digits, ext } => {
                let b = data[i];
                i += 1;
                match b {
                    b'\n' => {
                        if !*digits {
                            return None;
                        }
                        *state = if *value == 0 {
                            Chunk::Trailer(0)
                        } else {
                            Chunk::Data(*value)
                        };
                    }
                    b'\r' => {}
                    _ if *ext => {}
                    b';' => *ext = true,
                    _ => {
                        let d = (b as char).to_digit(16)?;
                        *value = value.checked_mul(16)?.checked_add(u64::from(d))?;
                        *digits = true;
                    }
                }
            }
            Chunk::Data(left) => {
                let take = (*left).min((data.len() - i) as u64);
                i += take as usize;
                *left -= take;
                if *left == 0 {
                    *state = Chunk::DataEnd(2);
                }
            }
            Chunk::DataEnd(left) => {
                i += 1;
                *left -= 1;
                if *left == 0 {
                    *state = Chunk::Size {
                        value: 0,
                        digits: false,
                        ext: false,
                    };
                }
            }
            Chunk::Trailer(len) => {
                let b = data[i];
                i += 1;
                match b {
                    b'\n' if *len == 0 => return Some((i, true)),
                    b'\n' => *len = 0,
                    b'\r' => {}
                    _ => *len += 1,
                }
            }
        }
    }
    Some((i, false))
}

/// Observes the requests a client sends on one connection.
pub(crate) struct RequestParser {
    state: Framing,
    head: Vec<u8>,
}

impl RequestParser {
    pub(crate) fn new() -> RequestParser {
        RequestParser {
            state: Framing::Head,
            head: Vec::new(),
        }
    }

    /// True once the parser stopped reading (upgrade or not HTTP).
    pub(crate) fn is_opaque(&self) -> bool {
        self.state == Framing::Opaque
    }

    /// Feed bytes the client sent; returns the request heads completed in them.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Vec<RequestHead> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            match &mut self.state {
                Framing::Opaque | Framing::UntilClose => return out,
                Framing::Head => {
                    // Scan for the end of the head across chunk boundaries.
                    let start = self.head.len().saturating_sub(3);
                    let room = MAX_HEAD.saturating_sub(self.head.len());
                    let take = (data.len() - i).min(room.max(1));
                    self.head.extend_from_slice(&data[i..i + take]);
                    match head_end(&self.head[start..]).map(|e| e + start) {
                        None if self.head.len() >= MAX_HEAD => {
                            self.state = Framing::Opaque;
                            return out;
                        }
                        None => i += take,
                        Some(end) => {
                            let extra = self.head.len() - end;
                            i += take - extra;
                            let head = std::mem::take(&mut self.head);
                            let (Some(req), Some(body)) = (
                                parse_request(&head[..end]),
                                Head::parse(&head[..end]).and_then(|h| h.body()),
                            ) else {
                                self.state = Framing::Opaque;
                                return out;
                            };
                            let upgrade = req.upgrade;
                            out.push(req);
                            self.state = if upgrade {
                                Framing::Opaque
                            } else {
                                match body {
                                    Body::None | Body::Length(0) => Framing::Head,
                                    Body::Length(n) => Framing::Length(n),
                                    Body::Chunked => Framing::Chunked(Chunk::Size {
                                        value: 0,
                                        digits: false,
                                        ext: false,
                                    }),
                                }
                            };
                        }
                    }
                }
                Framing::Length(left) => {
                    let take = (*left).min((data.len() - i) as u64);
                    i += take as usize;
                    *left -= take;
                    if *left == 0 {
                        self.state = Framing::Head;
                    }
                }
                Framing::Chunked(c) => match chunked(c, data, i) {
                    None => {
                        self.state = Framing::Opaque;
                        return out;
                    }
                    Some((j, done)) => {
                        i = j;
                        if done {
                            self.state = Framing::Head;
                        }
                    }
                },
            }
        }
        out
    }
}

/// What a [`ResponseParser`] found, at an offset of the fed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseMark {
    /// A response head ended here, with this status.
    Head(u16),
    /// A response (head and body) ended here.
    End,
}

/// Follows the responses a server sends on one connection: where each one ends.
pub(crate) struct ResponseParser {
    state: Framing,
    head: Vec<u8>,
}

impl ResponseParser {
    pub(crate) fn new() -> ResponseParser {
        ResponseParser {
            state: Framing::Head,
            head: Vec::new(),
        }
    }

    /// True once the parser stopped reading (after a `101`, or not HTTP).
    pub(crate) fn is_opaque(&self) -> bool {
        self.state == Framing::Opaque
    }

    /// True while inside a response whose end is the connection's close.
    pub(crate) fn until_close(&self) -> bool {
        self.state == Framing::UntilClose
    }

    /// Feed bytes the server sent; returns marks with the offset (into `data`) just after
    /// which each happens.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Vec<(usize, ResponseMark)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            match &mut self.state {
                Framing::Opaque | Framing::UntilClose => return out,
                Framing::Head => {
                    let start = self.head.len().saturating_sub(3);
                    let room = MAX_HEAD.saturating_sub(self.head.len());
                    let take = (data.len() - i).min(room.max(1));
                    self.head.extend_from_slice(&data[i..i + take]);
                    match head_end(&self.head[start..]).map(|e| e + start) {
                        None if self.head.len() >= MAX_HEAD => {
                            self.state = Framing::Opaque;
                            return out;
                        }
                        None => i += take,
                        Some(end) => {
                            let extra = self.head.len() - end;
                            i += take - extra;
                            let head = std::mem::take(&mut self.head);
                            let Some(h) = Head::parse(&head[..end]) else {
                                self.state = Framing::Opaque;
                                return out;
                            };
                            let status = h
                                .line
                                .split(' ')
                                .nth(1)
                                .and_then(|s| s.parse::<u16>().ok())
                                .filter(|_| h.line.starts_with("HTTP/1."));
                            let Some(status) = status else {
                                self.state = Framing::Opaque;
                                return out;
                            };
                            out.push((i, ResponseMark::Head(status)));
                            let body =
                                if (100..200).contains(&status) || status == 204 || status == 304 {
                                    Some(Body::None)
                                } else {
                                    match h.body() {
                                        Some(Body::None) => None, // until close
                                        other => other,
                                    }
                                };
                            match body {
                                _ if status == 101 => {
                                    out.push((i, ResponseMark::End));
                                    self.state = Framing::Opaque;
                                    return out;
                                }
                                Some(Body::None) | Some(Body::Length(0)) => {
                                    out.push((i, ResponseMark::End));
                                }
                                Some(Body::Length(n)) => self.state = Framing::Length(n),
                                Some(Body::Chunked) => {
                                    self.state = Framing::Chunked(Chunk::Size {
                                        value: 0,
                                        digits: false,
                                        ext: false,
                                    })
                                }
                                None if h.header("content-length").is_some() => {
                                    self.state = Framing::Opaque;
                                    return out;
                                }
                                None => {
                                    self.state = Framing::UntilClose;
                                    return out;
                                }
                            }
                        }
                    }
                }
                Framing::Length(left) => {
                    let take = (*left).min((data.len() - i) as u64);
                    i += take as usize;
                    *left -= take;
                    if *left == 0 {
                        out.push((i, ResponseMark::End));
                        self.state = Framing::Head;
                    }
                }
                Framing::Chunked(c) => match chunked(c, data, i) {
                    None => {
                        self.state = Framing::Opaque;
                        return out;
                    }
                    Some((j, done)) => {
                        i = j;
                        if done {
                            out.push((i, ResponseMark::End));
                            self.state = Framing::Head;
                        }
                    }
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_bytewise(p: &mut ResponseParser, data: &[u8]) -> Vec<(usize, ResponseMark)> {
        let mut out = Vec::new();
        for (i, b) in data.iter().enumerate() {
            for (o, m) in p.feed(std::slice::from_ref(b)) {
                out.push((i + o, m));
            }
        }
        out
    }

    #[test]
    fn requests_are_followed_across_bodies_and_chunk_boundaries() {
        let stream = b"GET /tether/poll?v=1&hello=1 HTTP/1.1\r\nHost: x\r\n\r\n\
POST /tether/send HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
POST /tether/send HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
GET /tether/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05GET / HTTP/1.1\r\n\r\n";
        for step in [1, 3, 7, stream.len()] {
            let mut p = RequestParser::new();
            let mut got = Vec::new();
            for c in stream.chunks(step) {
                got.extend(p.feed(c));
            }
            let targets: Vec<(&str, &str, bool)> = got
                .iter()
                .map(|r| (r.method.as_str(), r.target.as_str(), r.upgrade))
                .collect();
            assert_eq!(
                targets,
                vec![
                    ("GET", "/tether/poll?v=1&hello=1", false),
                    ("POST", "/tether/send", false),
                    ("POST", "/tether/send", false),
                    ("GET", "/tether/ws", true),
                ],
                "chunks of {step}"
            );
            assert!(
                p.is_opaque(),
                "after an upgrade the bytes are WebSocket frames"
            );
        }
        let mut junk = RequestParser::new();
        assert!(junk.feed(b"\x16\x03\x01 not http\r\n\r\n").is_empty());
        assert!(junk.is_opaque());
    }

    #[test]
    fn responses_end_where_their_framing_says() {
        let a = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n[{}]";
        let b = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n[1,2]\r\n2;x=y\r\n[]\r\n0\r\n\r\n";
        let c = b"HTTP/1.1 204 No Content\r\n\r\n";
        let mut all = Vec::new();
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        all.extend_from_slice(c);
        let ends = [a.len(), a.len() + b.len(), all.len()];
        for bytewise in [false, true] {
            let mut p = ResponseParser::new();
            let marks = if bytewise {
                feed_bytewise(&mut p, &all)
            } else {
                p.feed(&all)
            };
            let got: Vec<usize> = marks
                .iter()
                .filter(|(_, m)| *m == ResponseMark::End)
                .map(|(o, _)| *o)
                .collect();
            assert_eq!(got, ends, "bytewise {bytewise}");
            let statuses: Vec<u16> = marks
                .iter()
                .filter_map(|(_, m)| match m {
                    ResponseMark::Head(s) => Some(*s),
                    ResponseMark::End => None,
                })
                .collect();
            assert_eq!(statuses, [200, 200, 204]);
        }
        // A stream without a length runs until close; a 101 makes the rest opaque.
        let mut sse = ResponseParser::new();
        let stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: x\n\n";
        let m = sse.feed(stream);
        let head = head_end(stream).unwrap_or_default();
        assert_eq!(m, vec![(head, ResponseMark::Head(200))]);
        assert!(sse.until_close());
        let mut ws = ResponseParser::new();
        let m = ws.feed(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n\x81\x01x");
        assert_eq!(m.last().map(|x| x.1), Some(ResponseMark::End));
        assert!(ws.is_opaque());
        let mut bad = ResponseParser::new();
        bad.feed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
        assert!(bad.is_opaque(), "a broken chunk size stops the parser");
    }

    #[test]
    fn strip_and_refuse_look_like_a_proxy() {
        let head = b"GET /tether/ws?v=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nconnection: Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let stripped = strip_upgrade(head);
        let text = String::from_utf8_lossy(&stripped);
        assert!(!text.to_ascii_lowercase().contains("upgrade: "), "{text}");
        assert!(!text.to_ascii_lowercase().contains("connection:"), "{text}");
        assert!(text.contains("Sec-WebSocket-Key: k\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        let req = parse_request(&stripped).unwrap_or_else(|| panic!("still a request"));
        assert!(!req.upgrade);
        let r = refusal(403);
        let mut p = ResponseParser::new();
        let marks = p.feed(&r);
        let head = head_end(&r).unwrap_or_default();
        assert!(head > 0 && head < r.len());
        assert_eq!(
            marks,
            vec![
                (head, ResponseMark::Head(403)),
                (r.len(), ResponseMark::End)
            ]
        );
        assert!(!String::from_utf8_lossy(&r)
            .to_ascii_lowercase()
            .contains("tether-error"));
    }
}
