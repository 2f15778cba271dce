//! One connection's channel positions: the handshake (hello, `subscribed`, `reset` list), replay and live catch-up (WIRE-7, RESUME-1..4).

use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::http::Params;
use crate::log::{LogEntry, LogKind};
use crate::state::{Notice, Shared};
use crate::store::{ChannelStore, ReadOutcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use tether_engine::frame::{ServerFrame, PROTOCOL_VERSION};
use tokio::sync::broadcast::error::RecvError;

/// Messages read from the store per batch.
pub(crate) const BATCH: usize = 256;

/// A connection's view: the store it reads and the last seq delivered per channel.
pub(crate) struct Session {
    pub store: Arc<dyn ChannelStore>,
    pub epoch: u64,
    pub positions: BTreeMap<String, u64>,
}

/// Where a streaming transport writes the frames a catch-up reads (its own I/O and shaping).
pub(crate) trait Sink {
    /// Write `frames`; `Err` ends the connection with that reason.
    async fn deliver(&mut self, frames: Vec<ServerFrame>) -> Result<(), String>;
}

/// Log a connection's `open` (the query with the token redacted and the cursor it came with).
pub(crate) fn log_open(shared: &Shared, transport: &str, id: u64, params: &Params) {
    shared.metrics.opened(transport);
    shared.record(
        LogEntry::new(LogKind::Open)
            .transport(transport)
            .conn(id)
            .query(params.redacted.clone())
            .cursor(params.cursor.clone()),
    );
}

/// How the handshake placed the channels.
pub(crate) struct Placement {
    /// Channels whose position could not be honoured (RESUME-4).
    pub reset: Vec<String>,
    /// Channels the cursor did not name (or no cursor): started at the head.
    pub fresh: Vec<String>,
    /// Messages between the kept positions and the heads (to be replayed).
    pub behind: u64,
}

impl Session {
    /// Place `channels` from `cursor` (RESUME-3/4): a position still covered by the ring is
    /// kept; an uncovered one, or one from another epoch or an unreadable cursor, is reset
    /// to the head; a channel the cursor does not name starts at the head.
    pub async fn place(
        store: Arc<dyn ChannelStore>,
        channels: &[String],
        cursor: Option<&str>,
    ) -> Result<(Session, Placement), StoreError> {
        let epoch = store.epoch();
        let parsed = cursor.map(Cursor::parse);
        let mut positions = BTreeMap::new();
        let mut reset = Vec::new();
        let mut fresh = Vec::new();
        let mut behind = 0;
        for ch in channels {
            let head = store.head(ch).await?;
            let claimed = match &parsed {
                None => None,
                Some(Err(_)) => {
                    reset.push(ch.clone());
                    None
                }
                Some(Ok(c)) if c.epoch != epoch => {
                    if c.positions.contains_key(ch) {
                        reset.push(ch.clone());
                    }
                    None
                }
                Some(Ok(c)) => c.positions.get(ch).copied(),
            };
            let pos = match claimed {
                None => {
                    if !reset.contains(ch) {
                        fresh.push(ch.clone());
                    }
                    head
                }
                Some(p) => match store.read_after(ch, p, 1).await? {
                    ReadOutcome::Msgs(_) => {
                        behind += head.saturating_sub(p);
                        p
                    }
                    ReadOutcome::Gone { head } => {
                        reset.push(ch.clone());
                        head
                    }
                },
            };
            positions.insert(ch.clone(), pos);
        }
        Ok((
            Session {
                store,
                epoch,
                positions,
            },
            Placement {
                reset,
                fresh,
                behind,
            },
        ))
    }

    /// Handshake frames: the hello and one `subscribed` per channel (WIRE-7).
    pub async fn open(
        shared: &Shared,
        channels: &[String],
        cursor: Option<&str>,
    ) -> Result<(Session, Vec<ServerFrame>), StoreError> {
        let (s, placement) = Session::place(shared.store(), channels, cursor)
            .await
            .inspect_err(|e| shared.store_failed(e))?;
        if cursor.is_some() {
            shared
                .metrics
                .reconnected(!placement.reset.is_empty(), placement.behind);
        }
        let c = s.cursor();
        let mut frames = vec![ServerFrame::Hello {
            v: PROTOCOL_VERSION,
            server_id: shared.server_id.clone(),
            cursor: Some(c.clone()),
            policy: shared.policy().map(Box::new),
            reset: placement.reset,
        }];
        for ch in channels {
            let seq = s.positions.get(ch).copied().unwrap_or(0);
            frames.push(ServerFrame::Subscribed {
                channel: ch.clone(),
                seq,
                cursor: Some(c.clone()),
            });
        }
        Ok((s, frames))
    }

    /// The cursor of the current positions.
    pub fn cursor(&self) -> String {
        Cursor {
            epoch: self.epoch,
            positions: self.positions.clone(),
        }
        .encode()
    }

    /// Subscribe to a channel later (WebSocket `subscribe`): at the head. Already subscribed:
    /// the current position.
    pub async fn subscribe(&mut self, channel: &str) -> Result<ServerFrame, StoreError> {
        if !self.positions.contains_key(channel) {
            let head = self.store.head(channel).await?;
            self.positions.insert(channel.to_owned(), head);
        }
        let seq = self.positions.get(channel).copied().unwrap_or(0);
        Ok(ServerFrame::Subscribed {
            channel: channel.to_owned(),
            seq,
            cursor: Some(self.cursor()),
        })
    }

    /// The next batch of frames for `channel` after its position: messages (each with the
    /// cursor after it), or `reset` + `subscribed` at the head when the ring was overrun.
    /// Empty when caught up or not subscribed.
    pub async fn next_batch(
        &mut self,
        channel: &str,
        max: usize,
    ) -> Result<Vec<ServerFrame>, StoreError> {
        let Some(pos) = self.positions.get(channel).copied() else {
            return Ok(Vec::new());
        };
        match self.store.read_after(channel, pos, max.max(1)).await? {
            ReadOutcome::Msgs(msgs) => {
                let mut out = Vec::with_capacity(msgs.len());
                for m in msgs {
                    if m.seq <= pos {
                        continue;
                    }
                    self.positions.insert(channel.to_owned(), m.seq);
                    out.push(ServerFrame::Msg {
                        channel: channel.to_owned(),
                        seq: m.seq,
                        cursor: Some(self.cursor()),
                        data: (*m.data).clone(),
                    });
                }
                Ok(out)
            }
            ReadOutcome::Gone { head } => {
                self.positions.insert(channel.to_owned(), head);
                let c = self.cursor();
                Ok(vec![
                    ServerFrame::Reset {
                        channel: channel.to_owned(),
                        cursor: Some(c.clone()),
                    },
                    ServerFrame::Subscribed {
                        channel: channel.to_owned(),
                        seq: head,
                        cursor: Some(c),
                    },
                ])
            }
        }
    }

    /// True when `channel` is subscribed and behind `seq`.
    pub fn behind(&self, channel: &str, seq: u64) -> bool {
        self.positions.get(channel).is_some_and(|p| *p < seq)
    }

    /// The subscribed channels.
    pub fn channels(&self) -> Vec<String> {
        self.positions.keys().cloned().collect()
    }

    /// The channels a live notice leaves behind: the notice's channel when subscribed and
    /// behind it, every channel when notices were lost (lagged), none otherwise. `None`
    /// when the notice channel is closed (the server is going away).
    pub fn noticed(&self, n: Result<Notice, RecvError>) -> Option<Vec<String>> {
        match n {
            Ok(n) if n.all => Some(self.channels()),
            Ok(n) if self.behind(&n.channel, n.seq) => Some(vec![n.channel.to_string()]),
            Ok(_) => Some(Vec::new()),
            Err(RecvError::Lagged(_)) => Some(self.channels()),
            Err(RecvError::Closed) => None,
        }
    }

    /// Deliver everything after `channel`'s position to `sink`, batch by batch.
    pub async fn catch_up(&mut self, channel: &str, sink: &mut impl Sink) -> Result<(), String> {
        loop {
            let frames = self
                .next_batch(channel, BATCH)
                .await
                .map_err(|e| format!("store failed: {e}"))?;
            if frames.is_empty() {
                return Ok(());
            }
            sink.deliver(frames).await?;
        }
    }

    /// Catch up on `channels` in order, stopping at the first failure.
    pub async fn catch_up_all(
        &mut self,
        channels: Vec<String>,
        sink: &mut impl Sink,
    ) -> Result<(), String> {
        for ch in channels {
            self.catch_up(&ch, sink).await?;
        }
        Ok(())
    }

    /// Handle one live notice on a streaming connection: catch up on the channels it
    /// leaves behind. `Err` ends the connection (`"server gone"` when notices closed).
    pub async fn on_notice(
        &mut self,
        n: Result<Notice, RecvError>,
        sink: &mut impl Sink,
    ) -> Result<(), String> {
        let channels = self.noticed(n).ok_or_else(|| "server gone".to_owned())?;
        self.catch_up_all(channels, sink).await
    }
}
