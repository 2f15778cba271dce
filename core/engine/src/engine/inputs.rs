//! Engine inputs, part 1: the application's calls, the host's timers, network, token and readiness answers, and transport events.

use super::*;

impl Engine {
    /// Start connecting (CONN-1). From `Failed` or `Closed` it starts afresh.
    pub fn connect(&mut self, now: Instant) {
        if matches!(
            self.state,
            State::Connecting { .. }
                | State::Connected { .. }
                | State::Degraded { .. }
                | State::Reconnecting { .. }
        ) {
            return;
        }
        self.retries = 0;
        self.failed_attempts = 0;
        self.streak_start = None;
        self.auth_retry_used = false;
        if self.offline {
            self.wait = Wait::Network;
            self.set_state(
                State::Reconnecting {
                    attempt: 0,
                    delay: None,
                    cause: Cause::NetworkOffline,
                },
                Cause::UserConnect,
            );
            return;
        }
        if let Some(deadline) = self.memo.retry_after_unix_ms {
            let at = self.instant_of_wall(deadline);
            if at > now {
                self.schedule(now, at - now, Cause::RetryLater);
                return;
            }
        }
        self.begin_attempt(now, Cause::UserConnect);
    }

    /// Close for good (CONN-3). The outbox stays in the store.
    pub fn close(&mut self, _now: Instant) {
        self.close_conns(1000, "client close");
        self.stop_timers();
        self.set_state(State::Closed, Cause::UserClose);
    }

    /// Subscribe to a channel; takes effect on the live connection or the next one.
    pub fn subscribe(&mut self, channel: &str, now: Instant) -> Result<(), CallError> {
        self.check_channel(channel)?;
        if self.channels.contains_key(channel) {
            return Ok(());
        }
        self.channels
            .insert(channel.to_string(), ChannelOrder::default());
        self.sync_subscriptions(now);
        Ok(())
    }

    /// Unsubscribe; messages of the channel are no longer delivered.
    pub fn unsubscribe(&mut self, channel: &str, now: Instant) -> Result<(), CallError> {
        self.check_channel(channel)?;
        if self.channels.remove(channel).is_none() {
            return Ok(());
        }
        if let Some(c) = self
            .primary
            .as_mut()
            .filter(|c| c.phase == Phase::Up && c.transport == TransportKind::WebSocket)
        {
            // Forget it on the connection too, so a later subscribe sends `subscribe` again.
            c.channels.retain(|ch| ch != channel);
            let frame = ClientFrame::Unsubscribe {
                channel: channel.to_string(),
            }
            .encode();
            let conn = c.id;
            self.actions.push_back(Action::Transmit {
                conn,
                frames: vec![frame],
            });
        } else {
            // WIRE-11: SSE and long-poll carry the channel set in the request.
            self.sync_subscriptions(now);
        }
        Ok(())
    }

    /// Queue a publish (OUTBOX-1, -2): durable when this returns `Ok(id)`.
    pub fn publish(
        &mut self,
        channel: &str,
        data: Value,
        id: Option<String>,
        now: Instant,
    ) -> Result<String, CallError> {
        if matches!(self.state, State::Closed) {
            return Err(CallError::Closed);
        }
        self.check_channel(channel)?;
        let data = data.to_string();
        let id = match id {
            Some(id) => id,
            None => self.next_key()?,
        };
        let record = OutboxRecord {
            id: id.clone(),
            channel: channel.to_string(),
            data,
            enqueued_unix_ms: self.wall(now),
        };
        let frame_size = record.size() + 48;
        if frame_size > self.config.max_frame_bytes {
            return Err(CallError::MessageTooLarge {
                size: frame_size,
                limit: self.config.max_frame_bytes,
            });
        }
        if self.outbox.contains(&id) {
            return Ok(id);
        }
        let dropped = self.outbox.push(record, &self.policy)?;
        for d in dropped {
            self.events.push_back(Event::Dropped {
                id: d.id,
                reason: d.reason,
            });
        }
        self.flush_outbox(now);
        Ok(id)
    }

    /// OUTBOX-1: the next generated key. When it starts a new counter block, the block is
    /// reserved in the memo first; a memo that cannot be saved refuses the publish
    /// (`store_failed`) and the key is never used.
    fn next_key(&mut self) -> Result<String, CallError> {
        match self.keys.next(&self.memo) {
            NextKey::Ready(key) => Ok(key),
            NextKey::Reserve { key, memo } => {
                self.outbox.store_mut().save_memo(&memo)?;
                self.keys.reserved(&memo);
                self.memo = *memo;
                Ok(key)
            }
        }
    }

    /// The host's view of connectivity changed (NET-1..3).
    pub fn handle_network(&mut self, now: Instant, network: Network) {
        match network {
            Network::Offline => {
                if self.offline {
                    return;
                }
                self.offline = true;
                if !self.is_running() {
                    return;
                }
                self.close_conns(1000, "network offline");
                self.stop_timers();
                self.wait = Wait::Network;
                let attempt = self.retries;
                self.set_state(
                    State::Reconnecting {
                        attempt,
                        delay: None,
                        cause: Cause::NetworkOffline,
                    },
                    Cause::NetworkOffline,
                );
            }
            Network::Online => {
                let was_offline = core::mem::replace(&mut self.offline, false);
                if was_offline && matches!(self.wait, Wait::Network) {
                    self.reset_streak();
                    // NET-2: the n = 0 backoff draw, U(floor, base), like a first retry.
                    let d = backoff::delay(&self.policy, 0, &mut self.rng);
                    self.schedule_plain(now, d, Cause::NetworkOnline);
                }
            }
            Network::Changed => {
                if self.offline {
                    return self.handle_network(now, Network::Online);
                }
                match &self.wait {
                    Wait::Retry { at, .. } => {
                        let d = backoff::delay(&self.policy, 0, &mut self.rng);
                        if now + d < *at {
                            self.reset_streak();
                            self.schedule_plain(now, d, Cause::NetworkOnline);
                        }
                    }
                    Wait::None => {
                        if let Some(t) = self
                            .primary
                            .as_ref()
                            .filter(|c| c.phase == Phase::Up)
                            .map(|c| c.transport)
                        {
                            self.open_candidate(now, t, Switch::NetworkChanged);
                        }
                    }
                    Wait::Token { .. } | Wait::Network => {}
                }
            }
        }
    }

    /// The token provider answered request `request` (AUTH-1).
    pub fn handle_token(&mut self, now: Instant, request: u64, token: Result<Token, TokenError>) {
        let Wait::Token {
            request: expected,
            transport,
            ..
        } = self.wait
        else {
            return;
        };
        if expected != request {
            return;
        }
        self.wait = Wait::None;
        match token {
            Ok(token) => {
                self.last_token = Some(token.clone());
                self.open_primary(now, transport, Some(token));
            }
            Err(e) if e.fatal => self.fail(
                ErrorCode::AuthFailed,
                Cause::Terminal {
                    code: ErrorCode::AuthFailed,
                },
            ),
            Err(e) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::AuthFailed,
                    detail: e.message,
                });
                self.attempt_failed(now, Cause::TransportError, None);
            }
        }
    }

    /// A readiness probe answered (READY-4, READY-5).
    pub fn handle_ready(&mut self, now: Instant, probe: u64, answer: ReadyAnswer) {
        if self.probe_outstanding != Some(probe) {
            return;
        }
        self.probe_outstanding = None;
        // READY-4: the next probe counts its interval from this answer, not from when this
        // probe was sent: the server saw this probe before it answered, so it sees the next
        // one at least an interval later however long either took to reach it.
        self.probe_last = Some(now);
        let Wait::Retry { at, .. } = self.wait.clone() else {
            return;
        };
        match answer {
            ReadyAnswer::Ready { from_ms, to_ms } => {
                let (lo, hi) = ordered_window(from_ms, to_ms);
                let d = self
                    .rng
                    .duration_between(Duration::from_millis(lo), Duration::from_millis(hi));
                if now + d < at {
                    // READY-4: the attempt moves earlier because of the probe: its own cause.
                    self.wait = Wait::Retry {
                        at: now + d,
                        cause: Cause::Ready,
                    };
                    let attempt = self.retries;
                    self.events.push_back(Event::ReconnectScheduled {
                        attempt,
                        delay: d,
                        cause: Cause::Ready,
                    });
                    self.set_state(
                        State::Reconnecting {
                            attempt,
                            delay: Some(d),
                            cause: Cause::Ready,
                        },
                        Cause::Ready,
                    );
                }
                self.probe_at = None;
            }
            ReadyAnswer::NotReady | ReadyAnswer::Failed => self.plan_probe(now, at),
        }
    }

    /// A timer fired: act on every deadline that has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Wait::Retry { at, cause } = self.wait.clone() {
            if now >= at {
                self.wait = Wait::None;
                self.probe_at = None;
                self.probe_outstanding = None;
                self.begin_attempt(now, cause);
            }
        }
        if let Wait::Token { deadline, .. } = self.wait {
            if now >= deadline {
                self.wait = Wait::None;
                self.events.push_back(Event::Error {
                    code: ErrorCode::AuthFailed,
                    detail: "token provider timed out".into(),
                });
                self.attempt_failed(now, Cause::TransportError, None);
            }
        }
        if let Some(at) = self.probe_at {
            if now >= at {
                // A newer probe supersedes one still unanswered (its answer is then ignored).
                self.probe_at = None;
                let probe = self.next_request();
                self.probe_outstanding = Some(probe);
                self.probe_last = Some(now);
                self.actions.push_back(Action::ProbeReady { probe });
            }
        }
        if let Some(at) = self.resend_at {
            if now >= at {
                self.resend_at = None;
                self.flush_outbox(now);
            }
        }
        self.check_conn_deadlines(now);
        if let Some(at) = self.upgrade_at {
            if now >= at {
                self.upgrade_at = None;
                let top = self.ladder.top();
                if self
                    .primary
                    .as_ref()
                    .is_some_and(|c| c.phase == Phase::Up && c.transport != top)
                {
                    match self.candidate.as_ref().map(|c| self.conn_deadline(c)) {
                        // Another switch is under way: try again once it is settled.
                        Some(busy_until) => self.upgrade_at = Some(busy_until.max(now)),
                        None => self.open_candidate(now, top, Switch::Upgrade),
                    }
                }
            }
        }
        if self.is_running() {
            self.check_gaps(now);
        }
        if self.is_running() {
            let wall = self.wall(now);
            for d in self.outbox.expire(wall, &self.policy) {
                self.events.push_back(Event::Dropped {
                    id: d.id,
                    reason: d.reason,
                });
            }
        }
    }

    /// Something happened on connection `conn` (CONN-4: stale connections are ignored).
    pub fn handle_transport_event(&mut self, now: Instant, conn: ConnId, event: TransportEvent) {
        let Some(role) = self.role_of(conn) else {
            return;
        };
        // HEARTBEAT-2: only what arrives on the connection itself counts as liveness;
        // a POST answer or a failed POST says nothing about the stream.
        if !matches!(
            event,
            TransportEvent::SendReply(_) | TransportEvent::SendFailed(_)
        ) {
            if let Some(c) = self.conn_mut(role) {
                c.last_rx = now;
            }
        }
        // CONN-6: bytes of a message or body (not bare headers) before the hello show the
        // open is progressing, e.g. a long-poll hello answer on a slow link.
        if matches!(
            event,
            TransportEvent::Receiving { .. }
                | TransportEvent::Text(_)
                | TransportEvent::Binary(_)
                | TransportEvent::SseBytes(_)
                | TransportEvent::PollBody(_)
        ) {
            if let Some(c) = self.conn_mut(role).filter(|c| c.phase == Phase::Opening) {
                c.open_progress = Some(now);
            }
        }
        match event {
            TransportEvent::Opened => {
                if let Some(c) = self.conn_mut(role) {
                    c.transport_open = true;
                }
            }
            TransportEvent::Text(text) => {
                let decoded = ServerFrame::decode(&text, self.config.max_frame_bytes);
                self.on_decoded(now, role, decoded, None);
            }
            TransportEvent::Binary(bytes) => {
                let decoded = ServerFrame::decode_bytes(&bytes, self.config.max_frame_bytes);
                self.on_decoded(now, role, decoded, None);
            }
            TransportEvent::SseBytes(bytes) => self.on_sse_bytes(now, conn, &bytes),
            TransportEvent::PollBody(body) => {
                self.on_batch(now, conn, &body);
                // The connection may have become the primary during the batch (a switch).
                let Some(role) = self.role_of(conn) else {
                    return;
                };
                if self.conn_ref(role).is_some_and(|c| c.phase == Phase::Up) {
                    let channels = self.channels();
                    let cursor = self.cursor.clone();
                    if let Some(c) = self.conn_mut(role) {
                        c.poll_sent = now;
                    }
                    self.actions.push_back(Action::Poll {
                        conn,
                        cursor,
                        channels,
                    });
                }
            }
            TransportEvent::SendReply(body) => {
                self.send_answered(now, role);
                self.on_batch(now, conn, &body)
            }
            TransportEvent::SendFailed(_) => {
                self.send_answered(now, role);
                self.outbox.unsend(conn);
                self.resend_at = Some(now + self.policy.floor.max(Duration::from_millis(1)));
            }
            // Liveness and open progress only (above).
            TransportEvent::Receiving { .. } => {}
            TransportEvent::Closed { code, reason } => self.on_closed(now, role, code, &reason),
            TransportEvent::Failed(failure) => self.on_failed(now, role, failure),
        }
    }
}
