//! A naive, whole-input reading of the WHATWG event-stream rules: the oracle the engine's
//! incremental parser is compared with (SSE-1..9, LIMIT-3). Written for clarity, not speed:
//! strip the BOM, split the bytes into lines, decode and interpret each line in turn.

use tether_engine::sse::{SseError, SseEvent, SseItem, SseLimits};

/// What a whole stream yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Every dispatched item, in order (an unfinished last line or event yields none, SSE-7).
    pub items: Vec<SseItem>,
    /// The first limit the stream broke, if any; nothing after it is read.
    pub error: Option<SseError>,
    /// The last event ID as of the last dispatch (RESUME-2's `Last-Event-ID`).
    pub last_event_id: String,
}

/// Read `stream` under `limits`.
pub fn parse(stream: &[u8], limits: SseLimits) -> Reading {
    // SSE-2: one leading BOM is skipped.
    let body = stream
        .strip_prefix(&[0xEF, 0xBB, 0xBF][..])
        .unwrap_or(stream);
    let mut r = Reading {
        items: Vec::new(),
        error: None,
        last_event_id: String::new(),
    };
    let mut data = String::new();
    let mut event_type = String::new();
    let mut id_buffer = String::new();
    let mut id_set = false;
    let (lines, unfinished) = split_lines(body);
    for line in lines {
        if line.len() > limits.max_line_bytes {
            r.error = Some(SseError::LineTooLong {
                limit: limits.max_line_bytes,
            });
            return r;
        }
        // SSE-8: invalid UTF-8 becomes U+FFFD (CR, LF and ':' never take part in a sequence).
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            r.last_event_id.clone_from(&id_buffer);
            let set = std::mem::take(&mut id_set);
            let kind = std::mem::take(&mut event_type);
            if data.is_empty() {
                continue;
            }
            data.pop(); // the last data line's LF
            r.items.push(SseItem::Event(SseEvent {
                event_type: if kind.is_empty() {
                    "message".into()
                } else {
                    kind
                },
                data: std::mem::take(&mut data),
                last_event_id: id_buffer.clone(),
                id_set: set,
            }));
            continue;
        }
        if line.starts_with(':') {
            r.items.push(SseItem::Comment);
            continue;
        }
        let (name, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match name {
            "event" => event_type = value.to_owned(),
            "data" => {
                if data.len() + value.len() + 1 > limits.max_event_bytes {
                    r.error = Some(SseError::EventTooLarge {
                        limit: limits.max_event_bytes,
                    });
                    return r;
                }
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => {
                id_buffer = value.to_owned();
                id_set = true;
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    r.items.push(SseItem::Retry(ms));
                }
            }
            _ => {}
        }
    }
    if unfinished.len() > limits.max_line_bytes {
        r.error = Some(SseError::LineTooLong {
            limit: limits.max_line_bytes,
        });
    }
    r
}

/// The terminated lines of `body` (CRLF, LF or CR end a line, SSE-1), and what follows the
/// last terminator.
fn split_lines(body: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\n' => {
                lines.push(&body[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&body[start..i]);
                i += if body.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    (lines, &body[start..])
}
