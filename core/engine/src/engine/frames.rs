//! Engine inputs, part 2: decoding what a connection delivered and acting on each server frame (WIRE-3, RESUME, ORDER).

use super::*;

/// SSE-5: the cursor an event's `id:` offers to the frame in its data, if any.
///
/// Only the event's own `id:` line counts (an id persisted from an earlier event adds
/// nothing the cursor does not already hold), and an empty one offers nothing: WHATWG resets
/// the last event ID on it, but clearing the resume cursor would make the next reconnect
/// start from the head and lose the history in between (SSE-5 b). The offer is taken only
/// by a frame that is processed, by that frame's own rules (`on_frame`): an event whose data
/// is malformed or of an unknown type, a frame without a position and a duplicate `msg`
/// drop it (SSE-5 a, RESUME-2).
fn offered_cursor(ev: &SseEvent) -> Option<String> {
    (ev.id_set && !ev.last_event_id.is_empty()).then(|| ev.last_event_id.clone())
}

impl Engine {
    pub(super) fn on_sse_bytes(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let mut items = Vec::new();
        let result = match self
            .role_of(conn)
            .and_then(|role| self.conn_mut(role))
            .and_then(|c| c.sse.as_mut())
        {
            Some(parser) => parser.feed(bytes, &mut items),
            None => return,
        };
        for item in items {
            // A hello on a candidate moves it to the primary slot: look it up per item.
            let Some(role) = self.role_of(conn) else {
                return;
            };
            match item {
                SseItem::Event(ev) => {
                    let decoded = ServerFrame::decode(&ev.data, self.config.max_frame_bytes);
                    self.on_decoded(now, role, decoded, offered_cursor(&ev));
                }
                SseItem::Retry(ms) => {
                    let r = Duration::from_millis(ms)
                        .min(self.policy.cap)
                        .max(self.policy.floor);
                    if let Some(c) = self.conn_mut(role) {
                        c.sse_retry = Some(r);
                    }
                }
                SseItem::Comment => {}
            }
        }
        let Some(role) = self.role_of(conn) else {
            return;
        };
        if let Err(e) = result {
            let code = ErrorCode::parse(e.code()).unwrap_or(ErrorCode::FrameTooLarge);
            self.events.push_back(Event::Error {
                code,
                detail: e.to_string(),
            });
            self.conn_broken(now, role, 1009, "sse limit", Cause::ProtocolError);
        }
    }

    pub(super) fn on_batch(&mut self, now: Instant, conn: ConnId, body: &[u8]) {
        let limit = self.config.max_frame_bytes.saturating_mul(16);
        match ServerFrame::decode_batch(body, limit) {
            Ok(frames) => {
                for f in frames {
                    // A hello on a candidate moves it to the primary slot: look it up per frame.
                    let Some(role) = self.role_of(conn) else {
                        return;
                    };
                    self.on_decoded(now, role, f, None);
                }
            }
            Err(e) => {
                if let Some(role) = self.role_of(conn) {
                    self.on_decoded(now, role, Err(e), None);
                }
            }
        }
    }

    pub(super) fn on_decoded(
        &mut self,
        now: Instant,
        role: Role,
        decoded: Result<ServerFrame, FrameError>,
        sse_id: Option<String>,
    ) {
        match decoded {
            Ok(frame) => self.on_frame(now, role, frame, sse_id),
            Err(FrameError::UnknownType(_)) => {}
            Err(FrameError::TooLarge { size, limit }) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::FrameTooLarge,
                    detail: format!("{size} > {limit} bytes"),
                });
                self.conn_broken(now, role, 1009, "frame too large", Cause::ProtocolError);
            }
            Err(e) => {
                let code = e.code().unwrap_or(ErrorCode::FrameMalformed);
                self.events.push_back(Event::Error {
                    code,
                    detail: e.to_string(),
                });
                let too_many = self.conn_mut(role).map(|c| {
                    c.malformed += 1;
                    c.malformed > MAX_MALFORMED
                });
                if too_many == Some(true) {
                    self.conn_broken(
                        now,
                        role,
                        4002,
                        "too many malformed frames",
                        Cause::ProtocolError,
                    );
                }
            }
        }
    }

    pub(super) fn on_frame(
        &mut self,
        now: Instant,
        role: Role,
        frame: ServerFrame,
        sse_id: Option<String>,
    ) {
        let opening = self
            .conn_ref(role)
            .is_some_and(|c| c.phase == Phase::Opening);
        match frame {
            ServerFrame::Hello {
                v,
                cursor,
                policy,
                reset,
                ..
            } => {
                if !opening {
                    return;
                }
                if v != PROTOCOL_VERSION {
                    return self.fail(
                        ErrorCode::ProtocolVersion,
                        Cause::Terminal {
                            code: ErrorCode::ProtocolVersion,
                        },
                    );
                }
                self.on_hello(now, role, cursor.or(sse_id), policy.map(|p| *p), reset);
            }
            _ if opening => match frame {
                ServerFrame::RetryLater { .. }
                | ServerFrame::Error { .. }
                | ServerFrame::Drain { .. } => self.on_control(now, role, frame),
                _ => self.events.push_back(Event::Error {
                    code: ErrorCode::FrameMalformed,
                    detail: "frame before hello".into(),
                }),
            },
            ServerFrame::Msg {
                channel,
                seq,
                cursor,
                data,
            } => {
                let cursor = cursor.or(sse_id);
                let Some(order) = self.channels.get_mut(&channel) else {
                    return;
                };
                let outcome = order.accept(now, Delivery { seq, data, cursor });
                match outcome {
                    Outcome::Deliver(ds) => self.deliver(&channel, ds),
                    Outcome::GapReset(ds) => {
                        self.events.push_back(Event::Reset {
                            channel: channel.clone(),
                            reason: ResetReason::Gap,
                        });
                        self.deliver(&channel, ds);
                    }
                    Outcome::Duplicate | Outcome::Held => {}
                }
            }
            ServerFrame::Subscribed {
                channel,
                seq,
                cursor,
            } => {
                if let Some(order) = self.channels.get_mut(&channel) {
                    let ds = order.set_baseline(seq);
                    self.set_cursor(cursor.or(sse_id));
                    self.deliver(&channel, ds);
                }
            }
            ServerFrame::Reset { channel, cursor } => {
                if let Some(order) = self.channels.get_mut(&channel) {
                    order.clear();
                    self.set_cursor(cursor.or(sse_id));
                    self.events.push_back(Event::Reset {
                        channel,
                        reason: ResetReason::Server,
                    });
                }
            }
            ServerFrame::Ack { id, seq, .. } => {
                if self.outbox.remove(&id).is_some() {
                    self.events.push_back(Event::Acked { id, seq });
                    self.flush_outbox(now);
                }
            }
            ServerFrame::Ping {} => {
                if let Some(c) = self
                    .conn_ref(role)
                    .filter(|c| c.transport == TransportKind::WebSocket)
                {
                    let conn = c.id;
                    self.actions.push_back(Action::Transmit {
                        conn,
                        frames: vec![ClientFrame::Pong {}.encode()],
                    });
                }
            }
            ServerFrame::Pong {} => {}
            other => self.on_control(now, role, other),
        }
    }

    /// `error`, `drain` and `retry_later`, before or after the hello.
    pub(super) fn on_control(&mut self, now: Instant, role: Role, frame: ServerFrame) {
        match frame {
            ServerFrame::Error {
                code,
                message,
                id: Some(id),
                terminal,
            } => {
                // OUTBOX-7: the publish is rejected for good; its code (even `forbidden`)
                // concerns that publish only, unless the server marks the error terminal (ERR-3).
                if self.outbox.remove(&id).is_some() {
                    self.events.push_back(Event::Dropped {
                        id,
                        reason: crate::event::DropReason::Rejected { code: code.clone() },
                    });
                    self.flush_outbox(now);
                }
                if terminal {
                    let code = ErrorCode::parse(&code)
                        .filter(|c| is_terminal_code(*c))
                        .unwrap_or(ErrorCode::ServerError);
                    return self.fail(code, Cause::Terminal { code });
                }
                if let Some(m) = message {
                    self.events.push_back(Event::Error {
                        code: ErrorCode::ServerError,
                        detail: format!("{code}: {m}"),
                    });
                }
            }
            ServerFrame::Error {
                code,
                message,
                id: None,
                terminal,
            } => {
                let parsed = ErrorCode::parse(&code);
                if parsed == Some(ErrorCode::AuthExpired) {
                    return self.auth_expired(now, role);
                }
                let terminal_code = parsed.filter(|c| is_terminal_code(*c));
                if terminal || terminal_code.is_some() {
                    let code = terminal_code.unwrap_or(ErrorCode::ServerError);
                    return self.fail(code, Cause::Terminal { code });
                }
                self.events.push_back(Event::Error {
                    code: ErrorCode::ServerError,
                    detail: format!("{code}: {}", message.unwrap_or_default()),
                });
            }
            ServerFrame::Drain { from_ms, to_ms, .. } => {
                let (lo, hi) = ordered_window(from_ms, to_ms);
                let t = self
                    .rng
                    .duration_between(Duration::from_millis(lo), Duration::from_millis(hi));
                match role {
                    Role::Candidate => self.drop_candidate(now, 1000, "drain"),
                    Role::Primary => {
                        self.close_conns(1000, "drain");
                        self.schedule_plain(now, t, Cause::Drain);
                    }
                }
            }
            ServerFrame::RetryLater { after_ms } => match role {
                Role::Candidate => self.drop_candidate(now, 1000, "retry later"),
                Role::Primary => {
                    self.close_conns(1000, "retry later");
                    self.retry_later(now, Some(Duration::from_millis(after_ms)));
                }
            },
            _ => {}
        }
    }

    pub(super) fn on_hello(
        &mut self,
        now: Instant,
        role: Role,
        cursor: Option<String>,
        policy: Option<PolicyWire>,
        reset: Vec<String>,
    ) {
        if let Some(wire) = policy {
            self.server_policy = Some(wire.clone());
            let clamped = self.recompute_policy();
            for c in &clamped {
                self.events.push_back(Event::Error {
                    code: ErrorCode::PolicyClamped,
                    detail: format!("{}: {} -> {}", c.field, c.requested, c.applied),
                });
            }
            self.events.push_back(Event::PolicyApplied { clamped });
            self.memo.policy = Some(wire);
        }
        for ch in reset {
            if let Some(order) = self.channels.get_mut(&ch) {
                order.clear();
                self.events.push_back(Event::Reset {
                    channel: ch,
                    reason: ResetReason::Server,
                });
            }
        }
        self.set_cursor(cursor);
        self.reset_streak();
        self.auth_retry_used = false;
        self.force_token = false;
        self.memo.retry_after_unix_ms = None;
        let (transport, switch) = match role {
            Role::Primary => match self.primary.as_mut() {
                Some(c) => {
                    c.phase = Phase::Up;
                    c.poll_sent = now;
                    (c.transport, None)
                }
                None => return,
            },
            Role::Candidate => {
                let Some(mut cand) = self.candidate.take() else {
                    return;
                };
                cand.phase = Phase::Up;
                cand.poll_sent = now;
                let switch = cand.switch.take();
                if let Some(old) = self.primary.replace(cand) {
                    self.actions.push_back(Action::Close {
                        conn: old.id,
                        code: 1000,
                        reason: "switched".into(),
                    });
                    if switch == Some(Switch::Upgrade) {
                        self.events.push_back(Event::Fallback {
                            from: old.transport,
                            to: self.ladder.top(),
                            reason: FallbackReason::Upgrade,
                        });
                    }
                }
                let t = self
                    .primary
                    .as_ref()
                    .map_or(self.ladder.current(), |c| c.transport);
                (t, switch)
            }
        };
        self.ladder.worked(transport);
        self.memo
            .transports
            .insert(self.config.endpoint.clone(), transport);
        self.save_memo();
        let cause = if switch == Some(Switch::Upgrade) {
            Cause::Upgrade
        } else {
            Cause::Hello
        };
        let next = if self.ladder.is_degraded() {
            self.upgrade_at = Some(now + self.ladder.upgrade_interval(self.policy.upgrade_after));
            State::Degraded {
                transport,
                reason: ErrorCode::TransportBlocked,
            }
        } else {
            self.upgrade_at = None;
            State::Connected { transport }
        };
        self.set_state(next, cause);
        // Long-poll: the hello came in a poll answer; the PollBody handler issues the next poll.
        self.sync_subscriptions(now);
        self.flush_outbox(now);
    }

    pub(super) fn deliver(&mut self, channel: &str, deliveries: Vec<Delivery>) {
        for d in deliveries {
            self.set_cursor(d.cursor);
            self.events.push_back(Event::Message {
                channel: channel.to_string(),
                seq: d.seq,
                data: d.data,
            });
        }
    }

    /// Keep the newest cursor (RESUME-2); one over 1,024 bytes is ignored (LIMIT-4).
    pub(super) fn set_cursor(&mut self, cursor: Option<String>) {
        match cursor {
            Some(c) if c.len() > MAX_CURSOR_BYTES => self.events.push_back(Event::Error {
                code: ErrorCode::FrameMalformed,
                detail: format!(
                    "cursor of {} bytes ignored (limit {MAX_CURSOR_BYTES})",
                    c.len()
                ),
            }),
            Some(c) => self.cursor = Some(c),
            None => {}
        }
    }
}
