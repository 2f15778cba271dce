//! Opening connections: attempts, tokens, make-before-break candidates, subscriptions and the outbox flush (AUTH-1, WIRE-11, OUTBOX-3).

use super::*;

impl Engine {
    pub(super) fn begin_attempt(&mut self, now: Instant, cause: Cause) {
        if self.offline {
            self.wait = Wait::Network;
            let attempt = self.retries;
            return self.set_state(
                State::Reconnecting {
                    attempt,
                    delay: None,
                    cause: Cause::NetworkOffline,
                },
                Cause::NetworkOffline,
            );
        }
        let transport = self.ladder.current();
        self.set_state(
            State::Connecting {
                attempt: self.retries,
                transport,
            },
            cause,
        );
        self.events
            .push_back(Event::TransportSelected { transport });
        if self.config.auth {
            let request = self.next_request();
            self.wait = Wait::Token {
                request,
                deadline: now + self.policy.open_timeout,
                transport,
            };
            self.actions.push_back(Action::FetchToken {
                request,
                forced: self.force_token,
            });
        } else {
            self.open_primary(now, transport, None);
        }
    }

    pub(super) fn open_primary(
        &mut self,
        now: Instant,
        transport: TransportKind,
        token: Option<Token>,
    ) {
        let conn = self.new_conn(now, transport, token, None);
        self.primary = Some(conn);
    }

    pub(super) fn open_candidate(
        &mut self,
        now: Instant,
        transport: TransportKind,
        switch: Switch,
    ) {
        if self.candidate.is_some() {
            return;
        }
        let token = self.last_token.clone();
        let conn = self.new_conn(now, transport, token, Some(switch));
        self.candidate = Some(conn);
    }

    pub(super) fn new_conn(
        &mut self,
        now: Instant,
        transport: TransportKind,
        token: Option<Token>,
        switch: Option<Switch>,
    ) -> Conn {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let channels = self.channels();
        self.actions.push_back(Action::Open(OpenRequest {
            conn: id,
            transport,
            cursor: self.cursor.clone(),
            channels: channels.clone(),
            token,
            poll_hold: self.policy.poll_hold,
        }));
        let sse = (transport == TransportKind::Sse).then(|| {
            SseParser::new(SseLimits {
                max_line_bytes: self.config.max_frame_bytes,
                max_event_bytes: self.config.max_frame_bytes,
            })
        });
        Conn {
            id,
            transport,
            phase: Phase::Opening,
            started: now,
            transport_open: false,
            last_rx: now,
            open_progress: None,
            poll_sent: now,
            malformed: 0,
            sse,
            sse_retry: None,
            channels,
            switch,
            sends: VecDeque::new(),
            send_answered: now,
        }
    }

    /// Bring the live connection's channel set in line with the app's (WS frames, or a switch).
    pub(super) fn sync_subscriptions(&mut self, now: Instant) {
        let Some(c) = self.primary.as_ref().filter(|c| c.phase == Phase::Up) else {
            return;
        };
        let wanted = self.channels();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !c.channels.contains(w))
            .cloned()
            .collect();
        let (id, transport) = (c.id, c.transport);
        // On WebSocket, `unsubscribe` frames are sent at once; elsewhere a dropped channel
        // also needs a new request (WIRE-11).
        let extra = transport != TransportKind::WebSocket
            && c.channels.iter().any(|ch| !wanted.contains(ch));
        if missing.is_empty() && !extra {
            return;
        }
        if transport == TransportKind::WebSocket {
            let frames = missing
                .iter()
                .map(|ch| {
                    ClientFrame::Subscribe {
                        channel: ch.clone(),
                    }
                    .encode()
                })
                .collect();
            if let Some(c) = self.primary.as_mut() {
                c.channels.extend(missing);
            }
            self.actions
                .push_back(Action::Transmit { conn: id, frames });
        } else if self.candidate.is_none() {
            self.open_candidate(now, transport, Switch::Resubscribe);
        }
    }

    pub(super) fn flush_outbox(&mut self, now: Instant) {
        let Some(c) = self.primary.as_ref().filter(|c| c.phase == Phase::Up) else {
            return;
        };
        let (conn, transport) = (c.id, c.transport);
        let records = self.outbox.take_sendable(conn, self.policy.max_in_flight);
        if records.is_empty() {
            return;
        }
        let frames: Vec<String> = records
            .into_iter()
            .map(|r| {
                let data = serde_json::from_str(&r.data).unwrap_or(Value::String(r.data));
                ClientFrame::Publish {
                    id: r.id,
                    channel: r.channel,
                    data,
                }
                .encode()
            })
            .collect();
        if transport != TransportKind::WebSocket {
            // OUTBOX-9: this Transmit is one `POST /send`; its answer has a deadline.
            let bytes = frames.iter().map(|f| f.len() + 1).sum::<usize>() + 1;
            if let Some(c) = self.primary.as_mut() {
                c.sends.push_back(PendingSend { issued: now, bytes });
            }
        }
        self.actions.push_back(Action::Transmit { conn, frames });
    }
}
