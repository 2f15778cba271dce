//! Connection-scoped shaping of outgoing `msg` frames for the faults `reorder`, `skip_seq`
//! and `long_cursor` (ORDER-3, ORDER-4, LIMIT-4): frames in, frames to send now out, plus
//! what happened for the observation log.

use crate::faults::Fault;
use std::time::Duration;
use tether_engine::frame::ServerFrame;
use tokio::time::Instant;

/// Longest cursor a `long_cursor` fault produces.
const MAX_LONG_CURSOR: usize = 1024 * 1024;

enum Kind {
    Reorder {
        window: usize,
        flush: Duration,
    },
    Skip {
        skip: usize,
        after: usize,
        deliver_after: Option<Duration>,
        withheld: usize,
    },
    LongCursor {
        bytes: usize,
        after: usize,
    },
}

/// The shaping state of one connection.
pub(crate) struct Shaper {
    kind: Kind,
    channel: Option<String>,
    /// Messages of the channel seen so far.
    seen: usize,
    held: Vec<ServerFrame>,
    release_at: Option<Instant>,
}

/// Frames to send, and notes for the log.
pub(crate) type Shaped = (Vec<ServerFrame>, Vec<String>);

fn msg_id(f: &ServerFrame) -> String {
    match f {
        ServerFrame::Msg { channel, seq, .. } => format!("{channel}#{seq}"),
        _ => "-".into(),
    }
}

fn ids(frames: &[ServerFrame]) -> String {
    frames.iter().map(msg_id).collect::<Vec<_>>().join(",")
}

/// `cursor`, padded with an unreadable position to `bytes` bytes.
fn long_cursor(cursor: &str, bytes: usize) -> String {
    let bytes = bytes.min(MAX_LONG_CURSOR);
    let mut c = format!("{cursor}~");
    let pad = bytes.saturating_sub(c.len() + 2).max(1);
    c.extend(std::iter::repeat_n('x', pad));
    c.push_str("!0");
    c
}

impl Shaper {
    /// The shaper of a stream fault, if it is one.
    pub fn of(f: Option<&Fault>) -> Option<Shaper> {
        let (kind, channel) = match f? {
            Fault::Reorder {
                channel,
                window,
                flush_ms,
            } => (
                Kind::Reorder {
                    window: (*window).max(2),
                    flush: Duration::from_millis(*flush_ms),
                },
                channel.clone(),
            ),
            Fault::SkipSeq {
                channel,
                skip,
                after,
                deliver_after_ms,
            } => (
                Kind::Skip {
                    skip: *skip,
                    after: *after,
                    deliver_after: deliver_after_ms.map(Duration::from_millis),
                    withheld: 0,
                },
                channel.clone(),
            ),
            Fault::LongCursor { bytes, after } => (
                Kind::LongCursor {
                    bytes: *bytes,
                    after: *after,
                },
                None,
            ),
            _ => return None,
        };
        Some(Shaper {
            kind,
            channel,
            seen: 0,
            held: Vec::new(),
            release_at: None,
        })
    }

    fn mine(&self, f: &ServerFrame) -> bool {
        match f {
            ServerFrame::Msg { channel, .. } => self.channel.as_ref().is_none_or(|c| c == channel),
            _ => false,
        }
    }

    /// The frames to send now in place of `frames`.
    pub fn shape(&mut self, frames: Vec<ServerFrame>, now: Instant) -> Shaped {
        let mut out = Vec::with_capacity(frames.len());
        let mut notes = Vec::new();
        for mut f in frames {
            if !self.mine(&f) {
                out.push(f);
                continue;
            }
            self.seen += 1;
            match &mut self.kind {
                Kind::Reorder { window, flush } => {
                    if self.held.is_empty() {
                        self.release_at = Some(now + *flush);
                    }
                    self.held.push(f);
                    if self.held.len() >= *window {
                        self.release_at = None;
                        let mut group = std::mem::take(&mut self.held);
                        group.reverse();
                        notes.push(format!("reorder: sent {}", ids(&group)));
                        out.extend(group);
                    }
                }
                Kind::Skip {
                    skip,
                    after,
                    deliver_after,
                    withheld,
                } => {
                    if self.seen > *after && *withheld < *skip {
                        *withheld += 1;
                        notes.push(format!("skip_seq: withheld {}", msg_id(&f)));
                        if self.held.is_empty() {
                            self.release_at = deliver_after.map(|d| now + d);
                        }
                        self.held.push(f);
                    } else {
                        out.push(f);
                    }
                }
                Kind::LongCursor { bytes, after } => {
                    if self.seen > *after {
                        let name = msg_id(&f);
                        if let ServerFrame::Msg {
                            cursor: Some(c), ..
                        } = &mut f
                        {
                            *c = long_cursor(c, *bytes);
                            notes.push(format!(
                                "long_cursor: {name} with a {}-byte cursor",
                                c.len()
                            ));
                        }
                    }
                    out.push(f);
                }
            }
        }
        (out, notes)
    }

    /// When held frames are due.
    pub fn deadline(&self) -> Option<Instant> {
        self.release_at.filter(|_| !self.held.is_empty())
    }

    /// The held frames, now due.
    pub fn release(&mut self) -> Shaped {
        self.release_at = None;
        let mut held = std::mem::take(&mut self.held);
        let note = match self.kind {
            Kind::Reorder { .. } => {
                held.reverse();
                format!("reorder: sent incomplete group {}", ids(&held))
            }
            _ => format!("skip_seq: delivered withheld {}", ids(&held)),
        };
        if held.is_empty() {
            return (held, Vec::new());
        }
        (held, vec![note])
    }
}

/// Sleep until the shaper's deadline (forever without one).
pub(crate) async fn due(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `frames` through `shaper`, if any (shaped now): the frames to send now and notes to log.
pub(crate) fn through(shaper: Option<&mut Shaper>, frames: Vec<ServerFrame>) -> Shaped {
    match shaper {
        Some(s) => s.shape(frames, Instant::now()),
        None => (frames, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(ch: &str, seq: u64) -> ServerFrame {
        ServerFrame::Msg {
            channel: ch.into(),
            seq,
            cursor: Some(format!("e0~{ch}!{seq}")),
            data: json!(seq),
        }
    }

    fn seqs(fs: &[ServerFrame]) -> Vec<u64> {
        fs.iter()
            .filter_map(|f| match f {
                ServerFrame::Msg { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reorder_swaps_pairs_and_flushes_late() {
        let f = Fault::Reorder {
            channel: Some("a".into()),
            window: 2,
            flush_ms: 100,
        };
        let mut s = Shaper::of(Some(&f)).expect("shaper");
        let now = Instant::now();
        let (out, notes) = s.shape(vec![m("a", 1), m("b", 1), m("a", 2), m("a", 3)], now);
        assert_eq!(seqs(&out), vec![1, 2, 1]);
        assert_eq!(notes, vec!["reorder: sent a#2,a#1".to_owned()]);
        assert_eq!(s.deadline(), Some(now + Duration::from_millis(100)));
        let (late, _) = s.release();
        assert_eq!(seqs(&late), vec![3]);
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn skip_withholds_then_releases() {
        let f = Fault::SkipSeq {
            channel: None,
            skip: 2,
            after: 1,
            deliver_after_ms: Some(50),
        };
        let mut s = Shaper::of(Some(&f)).expect("shaper");
        let now = Instant::now();
        let (out, _) = s.shape((1..=5).map(|i| m("a", i)).collect(), now);
        assert_eq!(seqs(&out), vec![1, 4, 5]);
        assert!(s.deadline().is_some());
        assert_eq!(seqs(&s.release().0), vec![2, 3]);
        let never = Fault::SkipSeq {
            channel: None,
            skip: 1,
            after: 0,
            deliver_after_ms: None,
        };
        let mut s = Shaper::of(Some(&never)).expect("shaper");
        let (out, _) = s.shape(vec![m("a", 1), m("a", 2)], now);
        assert_eq!(seqs(&out), vec![2]);
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn long_cursor_pads() {
        let c = long_cursor("e0~a!1", 2000);
        assert_eq!(c.len(), 2000);
        assert!(c.starts_with("e0~a!1~x") && c.ends_with("!0"));
        let f = Fault::LongCursor {
            bytes: 1500,
            after: 1,
        };
        let mut s = Shaper::of(Some(&f)).expect("shaper");
        let (out, notes) = s.shape(vec![m("a", 1), m("a", 2)], Instant::now());
        let lens: Vec<usize> = out
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Msg { cursor, .. } => cursor.as_ref().map(String::len),
                _ => None,
            })
            .collect();
        assert_eq!(lens, vec![6, 1500]);
        assert_eq!(notes.len(), 1);
    }
}
