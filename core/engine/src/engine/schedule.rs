//! Scheduling the next attempt: backoff, retry-after, drain, probes, fallback steps and terminal failure (BACKOFF, READY, DRAIN).

use super::*;

impl Engine {
    /// The connection was up and is gone: reconnect with backoff from n = 0 (BACKOFF-5).
    pub(super) fn connection_lost(
        &mut self,
        now: Instant,
        sse_retry: Option<Duration>,
        cause: Cause,
    ) {
        self.streak_start.get_or_insert(now);
        self.schedule_backoff(now, cause, sse_retry);
    }

    /// An attempt failed (BACKOFF-1, BACKOFF-6).
    pub(super) fn attempt_failed(
        &mut self,
        now: Instant,
        cause: Cause,
        sse_retry: Option<Duration>,
    ) {
        if self.count_failure(now) {
            return self.fail(ErrorCode::AttemptsExhausted, Cause::AttemptsExhausted);
        }
        self.schedule_backoff(now, cause, sse_retry);
    }

    /// Count one failed attempt; true when BACKOFF-6 says to stop.
    pub(super) fn count_failure(&mut self, now: Instant) -> bool {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        let start = *self.streak_start.get_or_insert(now);
        self.policy
            .max_attempts
            .is_some_and(|m| self.failed_attempts >= m)
            || self.policy.max_elapsed.is_some_and(|m| now - start >= m)
    }

    pub(super) fn schedule_backoff(
        &mut self,
        now: Instant,
        cause: Cause,
        sse_retry: Option<Duration>,
    ) {
        let mut d = backoff::delay(&self.policy, self.retries, &mut self.rng);
        if let Some(r) = sse_retry {
            d = d.max(r);
        }
        self.schedule(now, d, cause);
    }

    /// A retry-after hint (READY-1): wait `RA + U(0, RA/2)`, never less than the backoff draw.
    pub(super) fn retry_later(&mut self, now: Instant, hint: Option<Duration>) {
        let Some(ra) = hint else {
            return self.attempt_failed(now, Cause::RetryLater, None);
        };
        if self.count_failure(now) {
            return self.fail(ErrorCode::AttemptsExhausted, Cause::AttemptsExhausted);
        }
        let ra = ra.max(self.policy.floor).min(MAX_RETRY_AFTER);
        let hinted = ra + self.rng.duration_between(Duration::ZERO, ra / 2);
        let drawn = backoff::delay(&self.policy, self.retries, &mut self.rng);
        let d = hinted.max(drawn);
        self.memo.retry_after_unix_ms = Some(self.wall(now + d));
        self.save_memo();
        self.schedule(now, d, Cause::RetryLater);
    }

    /// Schedule the next attempt after `d`, counting it as a retry.
    pub(super) fn schedule(&mut self, now: Instant, d: Duration, cause: Cause) {
        self.retries = self.retries.saturating_add(1);
        self.schedule_plain(now, d, cause);
    }

    /// Schedule without counting (drain, network back).
    pub(super) fn schedule_plain(&mut self, now: Instant, d: Duration, cause: Cause) {
        let at = now + d;
        self.wait = Wait::Retry {
            at,
            cause: cause.clone(),
        };
        let attempt = self.retries;
        self.events.push_back(Event::ReconnectScheduled {
            attempt,
            delay: d,
            cause: cause.clone(),
        });
        self.set_state(
            State::Reconnecting {
                attempt,
                delay: Some(d),
                cause: cause.clone(),
            },
            cause,
        );
        self.plan_probe(now, at);
    }

    /// READY-4: probe readiness only in long waits, at most once per probe interval.
    /// The first probe of a wait comes `U(0.5, 1.0) * interval` after the wait began; later
    /// ones never sooner than one interval after the previous probe was answered (or sent,
    /// while it is unanswered).
    pub(super) fn plan_probe(&mut self, now: Instant, at: Instant) {
        let interval = self.policy.probe_interval;
        if at <= now || at - now <= interval.saturating_mul(2) {
            self.probe_at = None;
            return;
        }
        let f = 0.5 + 0.5 * self.rng.next_f64();
        let mut when = now + Duration::from_secs_f64(interval.as_secs_f64() * f);
        if let Some(prev) = self.probe_last {
            when = when.max(prev + interval);
        }
        self.probe_at = Some(when);
    }

    pub(super) fn reset_streak(&mut self) {
        self.retries = 0;
        self.failed_attempts = 0;
        self.streak_start = None;
    }

    pub(super) fn strike(&mut self, now: Instant, sse_retry: Option<Duration>, cause: Cause) {
        let from = self.ladder.current();
        match self.ladder.strike() {
            Step::Stay => self.attempt_failed(now, cause, sse_retry),
            step => self.step_ladder(now, from, step),
        }
    }

    pub(super) fn blocked(&mut self, now: Instant) {
        let from = self.ladder.current();
        let step = self.ladder.blocked_now();
        self.step_ladder(now, from, step);
    }

    pub(super) fn step_ladder(&mut self, now: Instant, from: TransportKind, step: Step) {
        match step {
            Step::Stay => self.attempt_failed(now, Cause::Blocked, None),
            Step::Down(to) => {
                self.events.push_back(Event::Fallback {
                    from,
                    to,
                    reason: FallbackReason::Blocked,
                });
                self.begin_attempt(now, Cause::Blocked);
            }
            Step::Wrapped(to) => {
                self.events.push_back(Event::Fallback {
                    from,
                    to,
                    reason: FallbackReason::AllBlocked,
                });
                self.attempt_failed(now, Cause::Blocked, None);
            }
        }
    }

    pub(super) fn auth_expired(&mut self, now: Instant, role: Role) {
        if role == Role::Candidate {
            return self.drop_candidate(now, 1000, "auth expired");
        }
        if let Some(c) = self.primary.take() {
            self.actions.push_back(Action::Close {
                conn: c.id,
                code: 1000,
                reason: "auth expired".into(),
            });
        }
        self.close_candidate();
        self.events.push_back(Event::Error {
            code: ErrorCode::AuthExpired,
            detail: "server refused the token".into(),
        });
        self.force_token = true;
        if !self.auth_retry_used {
            // AUTH-2: exactly one immediate refresh-and-retry.
            self.auth_retry_used = true;
            self.begin_attempt(now, Cause::AuthExpired);
        } else {
            self.attempt_failed(now, Cause::AuthExpired, None);
        }
    }

    pub(super) fn fail(&mut self, code: ErrorCode, cause: Cause) {
        self.close_conns(1000, "failed");
        self.stop_timers();
        self.set_state(State::Failed { reason: code }, cause);
    }
}
