//! How connections end: closes, failures, timeouts and heartbeats, and what each means for the ladder (CONN-5, FALLBACK-2, HEARTBEAT-2).

use super::*;

/// What an answer without `Tether-Error` to an upgrade or stream request says about the rung
/// (SPEC FALLBACK-2, the table). 401, 429 and 503 are handled before (AUTH-2, READY-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProxyAnswer {
    /// The request itself was refused on the way: the rung is blocked at once.
    Blocked,
    /// The server could not be reached through the intermediary, whatever the rung.
    Unreachable,
}

/// FALLBACK-2: 407 (the proxy wants credentials the client does not have), 408 (request
/// timeout) and every 5xx (a gateway with no backend) fail every rung alike; any other
/// status (200 or another non-101 answer to an upgrade, a 3xx not followed, 400, 403, 404,
/// 405, 426 and other 4xx) shows that this kind of request is refused on this path.
pub(super) fn proxy_answer(status: u16) -> ProxyAnswer {
    match status {
        407 | 408 | 500..=599 => ProxyAnswer::Unreachable,
        _ => ProxyAnswer::Blocked,
    }
}

impl Engine {
    pub(super) fn on_closed(&mut self, now: Instant, role: Role, code: Option<u16>, reason: &str) {
        let code_v = code.unwrap_or(1005);
        if role == Role::Candidate {
            return self.drop_candidate(now, 1000, "candidate closed");
        }
        if let Some(err) = terminal_close(code_v) {
            self.primary = None;
            return self.fail(err, Cause::Terminal { code: err });
        }
        match code_v {
            4001 => {
                self.primary = None;
                self.auth_expired(now, role)
            }
            4009 => {
                self.primary = None;
                let ra = reason.trim().parse::<u64>().ok().map(Duration::from_millis);
                self.retry_later(now, ra)
            }
            _ => {
                let Some(c) = self.primary.take() else { return };
                self.close_candidate();
                if c.phase == Phase::Opening {
                    // FALLBACK-2b: closed before the hello.
                    self.strike(now, c.sse_retry, Cause::TransportClosed { code })
                } else {
                    self.connection_lost(now, c.sse_retry, Cause::TransportClosed { code })
                }
            }
        }
    }

    pub(super) fn on_failed(&mut self, now: Instant, role: Role, failure: TransportFailure) {
        if role == Role::Candidate {
            return self.drop_candidate(now, 1000, "candidate failed");
        }
        let Some(c) = self.primary.take() else { return };
        self.close_candidate();
        let up = c.phase == Phase::Up;
        match failure {
            TransportFailure::Unreachable(detail) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::TransportError,
                    detail,
                });
                if up {
                    self.connection_lost(now, c.sse_retry, Cause::TransportError)
                } else {
                    self.attempt_failed(now, Cause::TransportError, c.sse_retry)
                }
            }
            TransportFailure::Io(detail) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::TransportError,
                    detail,
                });
                if up {
                    self.connection_lost(now, c.sse_retry, Cause::TransportError)
                } else if c.transport_open {
                    self.strike(now, c.sse_retry, Cause::TransportError)
                } else {
                    self.attempt_failed(now, Cause::TransportError, c.sse_retry)
                }
            }
            TransportFailure::FrameTooLarge(detail) => {
                // LIMIT-1: the transport refused an oversized message before buffering it.
                self.events.push_back(Event::Error {
                    code: ErrorCode::FrameTooLarge,
                    detail,
                });
                if up {
                    self.connection_lost(now, c.sse_retry, Cause::ProtocolError)
                } else {
                    self.attempt_failed(now, Cause::ProtocolError, c.sse_retry)
                }
            }
            TransportFailure::WrongContentType(ct) => {
                self.events.push_back(Event::Error {
                    code: ErrorCode::TransportBlocked,
                    detail: format!("content type {ct}"),
                });
                self.blocked(now)
            }
            TransportFailure::HttpStatus {
                status,
                tether_error,
                retry_after,
            } => {
                let server_code = tether_error.as_deref().and_then(ErrorCode::parse);
                if status == 401 || server_code == Some(ErrorCode::AuthExpired) {
                    return self.auth_expired(now, Role::Primary);
                }
                if let Some(code) = server_code.filter(|c| is_terminal_code(*c)) {
                    return self.fail(code, Cause::Terminal { code });
                }
                if status == 204 && c.transport == TransportKind::Sse {
                    return self.fail(
                        ErrorCode::NotFound,
                        Cause::Terminal {
                            code: ErrorCode::NotFound,
                        },
                    );
                }
                if status == 429 || status == 503 {
                    return self.retry_later(now, retry_after);
                }
                if !up && tether_error.as_deref() == Some("upgrade_required") {
                    // FALLBACK-2a: the server saw the upgrade without its `Upgrade` header.
                    self.events.push_back(Event::Error {
                        code: ErrorCode::TransportBlocked,
                        detail: format!("HTTP {status}: upgrade_required"),
                    });
                    return self.blocked(now);
                }
                if tether_error.is_some() || up {
                    // The server itself refused, or a poll of a live connection failed: not a proxy.
                    self.events.push_back(Event::Error {
                        code: ErrorCode::TransportError,
                        detail: format!("HTTP {status}"),
                    });
                    return if up {
                        self.connection_lost(now, c.sse_retry, Cause::TransportError)
                    } else {
                        self.attempt_failed(now, Cause::TransportError, c.sse_retry)
                    };
                }
                match proxy_answer(status) {
                    ProxyAnswer::Unreachable => {
                        // FALLBACK-2: a gateway could not reach the server (a load balancer
                        // whose backends are down), or the path fails every rung alike:
                        // normal backoff on the same rung, no strike, no fallback.
                        self.events.push_back(Event::Error {
                            code: ErrorCode::TransportError,
                            detail: format!("HTTP {status} from an intermediary (no Tether-Error)"),
                        });
                        self.attempt_failed(now, Cause::TransportError, c.sse_retry)
                    }
                    ProxyAnswer::Blocked => {
                        // FALLBACK-2a: something on the way refused this kind of request.
                        self.events.push_back(Event::Error {
                            code: ErrorCode::TransportBlocked,
                            detail: format!("HTTP {status} without Tether-Error"),
                        });
                        self.blocked(now)
                    }
                }
            }
        }
    }

    /// A live connection must be given up (frame too large, parser limit, too many malformed frames).
    pub(super) fn conn_broken(
        &mut self,
        now: Instant,
        role: Role,
        code: u16,
        reason: &str,
        cause: Cause,
    ) {
        match role {
            Role::Candidate => self.drop_candidate(now, code, reason),
            Role::Primary => {
                let Some(c) = self.primary.take() else { return };
                self.actions.push_back(Action::Close {
                    conn: c.id,
                    code,
                    reason: reason.into(),
                });
                self.close_candidate();
                if c.phase == Phase::Opening {
                    self.attempt_failed(now, cause, c.sse_retry)
                } else {
                    self.connection_lost(now, c.sse_retry, cause)
                }
            }
        }
    }

    /// A `POST /send` of connection `role` was answered: the oldest one (OUTBOX-9).
    pub(super) fn send_answered(&mut self, now: Instant, role: Role) {
        if let Some(c) = self.conn_mut(role) {
            c.sends.pop_front();
            c.send_answered = now;
        }
    }

    /// OUTBOX-9: when the oldest unanswered `POST /send` of `c` counts as dead.
    pub(super) fn send_deadline(&self, c: &Conn) -> Option<Instant> {
        let front = c.sends.front()?;
        let allowance =
            Duration::from_secs_f64(front.bytes as f64 / SEND_ALLOWANCE_BYTES_PER_SEC as f64);
        Some(front.issued.max(c.send_answered) + self.policy.open_timeout + allowance)
    }

    pub(super) fn check_conn_deadlines(&mut self, now: Instant) {
        if let Some(c) = self.candidate.as_ref() {
            if now >= self.conn_deadline(c) {
                self.drop_candidate(now, 4000, "open timeout");
            }
        }
        let Some((deadline, phase)) = self
            .primary
            .as_ref()
            .map(|c| (self.conn_deadline(c), c.phase))
        else {
            return;
        };
        if now < deadline {
            return;
        }
        let Some(c) = self.primary.take() else { return };
        self.close_candidate();
        match phase {
            Phase::Opening => {
                self.actions.push_back(Action::Close {
                    conn: c.id,
                    code: 4000,
                    reason: "open timeout".into(),
                });
                self.strike(now, c.sse_retry, Cause::SlowOpen)
            }
            Phase::Up if self.send_deadline(&c).is_some_and(|d| now >= d) => {
                // OUTBOX-9: a POST got no answer (a pooled connection silently dropped by a
                // NAT or load balancer). Closing makes the host abort the hung request, so
                // its socket is not reused; the publishes are resent on the next connection.
                self.actions.push_back(Action::Close {
                    conn: c.id,
                    code: 4000,
                    reason: "send timeout".into(),
                });
                self.events.push_back(Event::Error {
                    code: ErrorCode::SendTimeout,
                    detail: format!(
                        "POST /send on {} unanswered for {} ms",
                        c.transport,
                        (now - c
                            .sends
                            .front()
                            .map_or(now, |s| s.issued.max(c.send_answered)))
                        .as_millis()
                    ),
                });
                self.connection_lost(now, c.sse_retry, Cause::SendTimeout)
            }
            Phase::Up => {
                self.actions.push_back(Action::Close {
                    conn: c.id,
                    code: 4000,
                    reason: "heartbeat timeout".into(),
                });
                self.events.push_back(Event::Error {
                    code: ErrorCode::HeartbeatTimeout,
                    detail: format!("nothing received on {}", c.transport),
                });
                self.connection_lost(now, c.sse_retry, Cause::HeartbeatTimeout)
            }
        }
    }

    pub(super) fn conn_deadline(&self, c: &Conn) -> Instant {
        let liveness = self.liveness_deadline(c);
        match self.send_deadline(c) {
            Some(d) => liveness.min(d),
            None => liveness,
        }
    }

    /// The open timeout (CONN-2) or the heartbeat deadline (HEARTBEAT-2/4) of `c`.
    fn liveness_deadline(&self, c: &Conn) -> Instant {
        match c.phase {
            Phase::Opening => {
                let timeout = self.policy.open_timeout;
                let first = c.started + timeout;
                match c.open_progress {
                    None => first,
                    Some(p) => (p + timeout)
                        .max(first)
                        .min(c.started + timeout.saturating_mul(MAX_OPEN_STRETCH)),
                }
            }
            // HEARTBEAT-4: bytes of the answer still arriving (`Receiving`) move `last_rx`.
            Phase::Up if c.transport == TransportKind::LongPoll => {
                c.last_rx.max(c.poll_sent) + self.policy.poll_hold + self.policy.heartbeat_grace
            }
            Phase::Up => c.last_rx + self.policy.heartbeat + self.policy.heartbeat_grace,
        }
    }

    pub(super) fn check_gaps(&mut self, now: Instant) {
        let mut resets = Vec::new();
        for (name, order) in self.channels.iter_mut() {
            if let Some(ds) = order.expire(now) {
                resets.push((name.clone(), ds));
            }
        }
        for (name, ds) in resets {
            self.events.push_back(Event::Reset {
                channel: name.clone(),
                reason: ResetReason::Gap,
            });
            self.deliver(&name, ds);
        }
    }
}
