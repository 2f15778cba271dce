//! The checks of the `network/...` cases: the traffic arrived once and in order (or with a `reset` where the server really lost it), every publish was answered exactly once, attempts seen on the wire were never closer than the client's declared delays, and the proxy's faults really fired.

use super::{Ctx, Verdict};
use crate::trace::TraceEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

fn d10() -> usize {
    10
}
fn d1() -> usize {
    1
}
fn dgran() -> f64 {
    2.0
}

fn n_of(e: &TraceEvent) -> Option<u64> {
    e.v.get("data")
        .and_then(|d| d.get("n"))
        .and_then(Value::as_u64)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamP {
    channels: Vec<String>,
    /// Messages each channel must deliver at least (a case that delivered nothing proves nothing).
    #[serde(default = "d10")]
    min_delivered: usize,
}

/// ORDER-1/2, RESUME-3/4/5, FALLBACK-7 under network faults: on each traffic channel the
/// app saw the server's messages once each, in order; within one server incarnation
/// (process) nothing is missing between the first and the last it saw, the first
/// incarnation from its start and the last to its end; a message is missing only where a
/// `reset` stands in its place in the app's stream, and a `reset` only comes after a
/// `kill_server` lost the history (at most one per kill).
pub(super) fn stream_integrity(p: StreamP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let kills = ctx.marks.iter().filter(|m| m.name == "kill_server").count();
    let mut delivered_total = 0;
    let mut justified_total = 0;
    for ch in &p.channels {
        let seen: Vec<(usize, u64)> = ctx
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.ty() == "message" && e.str("channel") == Some(ch))
            .filter_map(|(i, e)| n_of(e).map(|n| (i, n)))
            .collect();
        let resets: Vec<usize> = ctx
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.ty() == "reset" && e.str("channel") == Some(ch))
            .map(|(i, _)| i)
            .collect();
        delivered_total += seen.len();
        let published: Vec<_> = ctx.published.iter().filter(|x| &x.channel == ch).collect();
        let all_n: BTreeSet<u64> = published.iter().map(|x| x.n).collect();
        if seen.len() < p.min_delivered {
            v.fail(format!(
                "{ch}: {} messages delivered, need at least {} ({} published)",
                seen.len(),
                p.min_delivered,
                published.len()
            ));
        }
        // Once, in order.
        for w in seen.windows(2) {
            if w[1].1 <= w[0].1 {
                v.fail(format!(
                    "{ch}: n={} delivered after n={} ({}, ORDER-1/2)",
                    w[1].1,
                    w[0].1,
                    if w[1].1 == w[0].1 {
                        "a duplicate"
                    } else {
                        "out of order"
                    }
                ));
                break;
            }
        }
        if let Some((_, n)) = seen.iter().find(|(_, n)| !all_n.contains(n)) {
            v.fail(format!("{ch}: n={n} delivered but never published"));
        }
        // Resets only where history was lost.
        if resets.len() > kills {
            v.fail(format!(
                "{ch}: {} reset(s) with {kills} server kill(s): a reset without lost history (RESUME-4/5)",
                resets.len()
            ));
        }
        // Per incarnation: what was seen is one unbroken run.
        let seen_at: BTreeMap<u64, usize> = seen.iter().map(|(i, n)| (*n, *i)).collect();
        let mut incs: Vec<u32> = published.iter().map(|x| x.incarnation).collect();
        incs.sort_unstable();
        incs.dedup();
        let (first_inc, last_inc) = (incs.first().copied(), incs.last().copied());
        let mut missing: Vec<u64> = Vec::new();
        for inc in &incs {
            let certain: Vec<u64> = published
                .iter()
                .filter(|x| x.incarnation == *inc && x.certain)
                .map(|x| x.n)
                .collect();
            let pos: Vec<usize> = certain
                .iter()
                .enumerate()
                .filter(|(_, n)| seen_at.contains_key(n))
                .map(|(i, _)| i)
                .collect();
            let (lo, hi) = match (pos.first(), pos.last()) {
                (Some(a), Some(b)) => (*a, *b),
                _ => {
                    // Nothing of this incarnation arrived: only possible if it was killed
                    // before the client got there, and never for the only one.
                    if incs.len() == 1 || Some(*inc) == last_inc {
                        v.fail(format!(
                            "{ch}: none of the {} messages of server incarnation {inc} arrived",
                            certain.len()
                        ));
                    }
                    missing.extend(&certain);
                    continue;
                }
            };
            let holes: Vec<u64> = certain[lo..=hi]
                .iter()
                .copied()
                .filter(|n| !seen_at.contains_key(n))
                .collect();
            if !holes.is_empty() {
                v.fail(format!(
                    "{ch}: {} message(s) missing inside what incarnation {inc} delivered, e.g. n={:?} (the server still had them: RESUME-3)",
                    holes.len(),
                    &holes[..holes.len().min(8)]
                ));
            }
            let head = &certain[..lo];
            let tail = &certain[hi + 1..];
            if Some(*inc) == first_inc && !head.is_empty() {
                v.fail(format!(
                    "{ch}: the first {} message(s) of the first incarnation never arrived (n={:?}…)",
                    head.len(),
                    &head[..head.len().min(8)]
                ));
            }
            if Some(*inc) == last_inc && !tail.is_empty() {
                v.fail(format!(
                    "{ch}: the last {} message(s) never arrived (n={:?}…; the client did not catch up, or did not end connected)",
                    tail.len(),
                    &tail[..tail.len().min(8)]
                ));
            }
            missing.extend(head);
            missing.extend(tail);
        }
        // Every gap in the app's stream is reported as a reset (RESUME-5).
        missing.sort_unstable();
        missing.dedup();
        for n in &missing {
            let before = seen.iter().rev().find(|(_, s)| s < n).map(|(i, _)| *i);
            let after = seen.iter().find(|(_, s)| s > n).map(|(i, _)| *i);
            let reported = resets
                .iter()
                .any(|r| before.is_none_or(|b| *r > b) && after.is_none_or(|a| *r < a));
            if !reported {
                v.fail(format!(
                    "{ch}: n={n} was lost with the server's history but no reset stands in its place (RESUME-5: the gap must not look filled)"
                ));
                break;
            }
            justified_total += 1;
        }
        v.note(format!(
            "{ch}: {} of {} published delivered, {} lost with a killed server's history, {} reset(s)",
            seen.len(),
            published.len(),
            missing.len(),
            resets.len()
        ));
    }
    v.metric("delivered", json!(delivered_total));
    v.metric("lost_with_history", json!(justified_total));
    v.metric("kills", json!(kills));
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountingP {
    #[serde(default = "d1")]
    min_acked: usize,
    /// Largest number of drops allowed (default 0: a lossy network is no reason to drop).
    #[serde(default)]
    max_dropped: usize,
}

/// OUTBOX-3/4/6: every publish the adapter queued was answered exactly once, by one `acked`
/// or one `dropped`, and nothing was answered that was never queued.
pub(super) fn publish_accounting(p: AccountingP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let mut acked: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dropped: BTreeMap<&str, usize> = BTreeMap::new();
    for e in ctx.events {
        let Some(id) = e.str("id") else { continue };
        match e.ty() {
            "acked" => *acked.entry(id).or_insert(0) += 1,
            "dropped" => *dropped.entry(id).or_insert(0) += 1,
            _ => {}
        }
    }
    let keys: BTreeSet<&str> = ctx.keys.iter().map(String::as_str).collect();
    let (mut n_acked, mut n_dropped, mut bad) = (0, 0, 0);
    for k in ctx.keys {
        let a = acked.get(k.as_str()).copied().unwrap_or(0);
        let d = dropped.get(k.as_str()).copied().unwrap_or(0);
        n_acked += usize::from(a > 0);
        n_dropped += usize::from(d > 0);
        let why = match (a, d) {
            (1, 0) | (0, 1) => continue,
            (0, 0) => "never acknowledged nor dropped".to_owned(),
            (a, 0) => format!("acknowledged {a} times"),
            (0, d) => format!("dropped {d} times"),
            (a, d) => format!("acknowledged {a} and dropped {d} times"),
        };
        bad += 1;
        if bad <= 3 {
            v.fail(format!("publish {k}: {why}"));
        }
    }
    for id in acked.keys().chain(dropped.keys()) {
        if !keys.contains(id) {
            v.fail(format!("an answer for {id}, which was never published"));
            break;
        }
    }
    if n_acked < p.min_acked {
        v.fail(format!(
            "{n_acked} of {} publishes acknowledged, need at least {}",
            ctx.keys.len(),
            p.min_acked
        ));
    }
    if n_dropped > p.max_dropped {
        v.fail(format!(
            "{n_dropped} publishes dropped, at most {} allowed",
            p.max_dropped
        ));
    }
    v.metric("published", json!(ctx.keys.len()));
    v.metric("acked", json!(n_acked));
    v.metric("dropped", json!(n_dropped));
    v.note(format!(
        "{} publishes: {n_acked} acknowledged, {n_dropped} dropped, {bad} wrong",
        ctx.keys.len()
    ));
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpacingP {
    /// Clock granularity allowed (ms).
    #[serde(default = "dgran")]
    granularity_ms: f64,
    /// Attempts the proxy must have seen (the faults made the client reconnect).
    #[serde(default = "d1")]
    min_attempts: usize,
}

/// One attempt as the client reported it: when it began on the adapter's clock (`t_ms`)
/// and the delay it declared before it (0 after an immediate fallback, FALLBACK-3, or for
/// the first attempt).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Declared {
    t_ms: f64,
    delay_ms: f64,
}

fn client_attempts(ctx: &Ctx) -> Vec<Declared> {
    let at = |e: &TraceEvent, delay: Option<f64>| Declared {
        t_ms: e.t_ms,
        delay_ms: delay.unwrap_or(0.0),
    };
    if ctx.events.iter().any(|e| e.ty() == "transport_selected") {
        // One `transport_selected` per attempt (ADAPTERS.md).
        let mut out = Vec::new();
        let mut pending: Option<f64> = None;
        for e in ctx.events {
            match e.ty() {
                "reconnect_scheduled" => pending = e.num("delay_ms").or(pending),
                "transport_selected" => out.push(at(e, pending.take())),
                _ => {}
            }
        }
        return out;
    }
    let mut out = Vec::new();
    let mut pending: Option<f64> = None;
    let mut fallback = false;
    for e in ctx.events {
        match e.ty() {
            "reconnect_scheduled" => pending = e.num("delay_ms").or(pending),
            "fallback" if e.str("reason") != Some("upgrade") => fallback = true,
            "state" => {
                if e.str("to") == Some("connecting") {
                    out.push(at(e, pending.take()));
                    fallback = false;
                } else if fallback && e.str("from") == Some("connecting") {
                    // A fallback to the next rung is an attempt even when the state's
                    // name did not change (STATE-3 reports no same-name transition).
                    out.push(at(e, None));
                    fallback = false;
                }
            }
            _ => {}
        }
    }
    out
}

/// Which declared attempt each attempt on the wire belongs to (an index into `declared`,
/// possibly past its end: an attempt nobody declared).
///
/// In order, one wire attempt per declared attempt, except that a declared attempt may be
/// missing from the wire: one whose request never reached the proxy (it went on a pooled
/// connection the fault had already cut, and failed writing). Such an attempt is skipped
/// when a later declared attempt had certainly begun before the wire attempt arrived. The
/// adapter's clock is put on the case clock with an offset that is never early: the
/// smallest `recv_us - t_ms` over all events (no event arrives before it happened) and the
/// first request's arrival less the first attempt's start (no request comes before it).
/// An attempt that offset places after its request is not skipped: the alignment then
/// falls back to order.
fn align(ctx: &Ctx, declared: &[Declared], wire: &[u64]) -> Vec<usize> {
    let first = match (wire.first(), declared.first()) {
        (Some(&w), Some(d)) => w as f64 / 1000.0 - d.t_ms,
        _ => f64::INFINITY,
    };
    let offset_ms = ctx
        .events
        .iter()
        .map(|e| e.recv_us as f64 / 1000.0 - e.t_ms)
        .fold(first, f64::min);
    let mut next = 0;
    wire.iter()
        .map(|&w| {
            // Declared attempts are in order on the adapter's clock (`t_ms` never goes back).
            let w_ms = w as f64 / 1000.0;
            let begun = declared.partition_point(|d| d.t_ms + offset_ms <= w_ms);
            let k = next.max(begun.saturating_sub(1));
            next = k + 1;
            k
        })
        .collect()
}

/// BACKOFF-1/3/5, FALLBACK-3 seen on the wire: the proxy saw every attempt (the ones the
/// server never saw included); from the end of each attempt as the proxy saw it (the last
/// fault, response head or upstream close on its connection) to the next attempt, never
/// less than the delay the client declared before that attempt (minus `granularity_ms`);
/// and the proxy saw no attempt the client did not report (a hidden retry loop). When a
/// declared attempt never reached the wire ([`align`]), the next one's delay is checked
/// from the end of the last attempt the wire saw: a smaller bound, never a false one.
pub(super) fn attempt_spacing(p: SpacingP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let all: Vec<&crate::net::NetEvent> =
        ctx.net.iter().filter(|e| e.handshake().is_some()).collect();
    let declared = client_attempts(ctx);
    // Only attempts the client did not declare can be the HTTP stack's resends.
    let (hs, resent) = fold_resends(ctx, &all, all.len().saturating_sub(declared.len()));
    if resent > 0 {
        v.metric("http_resends", json!(resent));
        v.note(format!(
            "{resent} handshake(s) resent by the client's HTTP stack after a kept-alive connection failed before the answer (BACKOFF-11: part of the same attempt)"
        ));
    }
    let wire: Vec<u64> = hs.iter().map(|(start, _)| start.at_us).collect();
    let owner = align(ctx, &declared, &wire);
    let unseen = owner.last().map_or(0, |k| k + 1 - owner.len());
    v.metric("wire_attempts", json!(wire.len()));
    v.metric("client_attempts", json!(declared.len()));
    if unseen > 0 {
        v.metric("unseen_attempts", json!(unseen));
        v.note(format!(
            "{unseen} declared attempt(s) never reached the proxy (their request failed on a connection already cut)"
        ));
    }
    if wire.len() < p.min_attempts {
        v.fail(format!(
            "the proxy saw {} attempts, need at least {}",
            wire.len(),
            p.min_attempts
        ));
    }
    // The last attempt's report may still be on its way when the case ends.
    let undeclared = owner.iter().filter(|&&k| k >= declared.len()).count();
    if undeclared > 1 {
        v.fail(format!(
            "the proxy saw {} attempts, the client reported {}: attempts nobody declared (a retry loop without backoff)",
            wire.len(),
            declared.len()
        ));
    }
    let mut early = 0;
    let mut worst = f64::INFINITY;
    for (i, w) in hs.windows(2).enumerate() {
        let Some(d) = declared.get(owner[i + 1]).map(|d| d.delay_ms) else {
            continue;
        };
        // An attempt ends where its last request (a resend's, if any) ended.
        let next = w[1].0.at_us;
        let end = attempt_end(ctx, w[0].1, next);
        let gap = (next.saturating_sub(end)) as f64 / 1000.0;
        worst = worst.min(gap - d);
        if gap < d - p.granularity_ms {
            early += 1;
            if early <= 3 {
                v.fail(format!(
                    "attempt {} reached the wire {gap:.1} ms after the previous one, {d:.1} ms declared (BACKOFF-1/3)",
                    owner[i + 1] + 1
                ));
            }
        }
    }
    v.metric("early", json!(early));
    if worst.is_finite() {
        v.metric("min_margin_ms", json!(worst));
    }
    v.note(format!(
        "{} attempts on the wire, {} reported; smallest margin gap - declared = {worst:.1} ms",
        wire.len(),
        declared.len()
    ));
    v
}

/// How soon after the fault a resend of the same request may come and still be the HTTP
/// stack's own (BACKOFF-11): a browser resends at once, within a millisecond or two.
const RESEND_WITHIN_US: u64 = 50_000;

/// One attempt on the wire: its first request and its last (a resend's, BACKOFF-11).
type Attempt<'a> = (&'a crate::net::NetEvent, &'a crate::net::NetEvent);

/// Attempts as (first request, last request): handshakes with the HTTP stack's own resends
/// (BACKOFF-11) folded into the attempt they repeat, at most `budget` of them, and how many
/// were folded. A handshake is a resend of the one before it when it repeats its request line exactly,
/// on another connection, within [`RESEND_WITHIN_US`] of a fault that cut the earlier one,
/// and the earlier one went on a kept-alive connection (it carried a request before): the
/// case of RFC 9110 9.2.2 that browsers retry by themselves. At most one per attempt.
fn fold_resends<'a>(
    ctx: &Ctx,
    all: &[&'a crate::net::NetEvent],
    budget: usize,
) -> (Vec<Attempt<'a>>, usize) {
    use tether_fault_proxy::EventKind;
    fn target(e: &crate::net::NetEvent) -> Option<&str> {
        match &e.kind {
            EventKind::Request { target, .. } => Some(target),
            _ => None,
        }
    }
    let mut kept: Vec<Attempt<'a>> = Vec::new();
    let mut folded = 0;
    for &h in all {
        let resend = kept.last().is_some_and(|&(first, prev)| {
            let reused = ctx
                .net
                .iter()
                .any(|e| e.conn == prev.conn && e.at_us < prev.at_us && target(e).is_some());
            let cut = ctx.net.iter().find(|e| {
                e.conn == prev.conn
                    && e.at_us >= prev.at_us
                    && e.at_us <= h.at_us
                    && matches!(e.kind, EventKind::Fired { .. })
            });
            folded < budget
                && std::ptr::eq(first, prev)
                && h.conn != prev.conn
                && reused
                && target(h) == target(prev)
                && cut.is_some_and(|c| h.at_us - c.at_us <= RESEND_WITHIN_US)
        });
        match kept.last_mut() {
            Some(last) if resend => {
                last.1 = h;
                folded += 1;
            }
            _ => kept.push((h, h)),
        }
    }
    (kept, folded)
}

/// The latest instant on the handshake's connection, before `next_us`, that certainly
/// came before the client saw the attempt end: a response head passing, the upstream
/// closing or refusing it, or the first fault fired on it. Nothing after that first cut
/// counts (a blackholed connection passes nothing more, and a later trigger on it may fire
/// after the client gave up, e.g. at its open timeout), nor anything after the client
/// closed it; the client's own close is never one either (it may close after it noticed the
/// failure, and its delay counts from the noticing, BACKOFF-3).
fn attempt_end(ctx: &Ctx, h: &crate::net::NetEvent, next_us: u64) -> u64 {
    use tether_fault_proxy::EventKind;
    let mut end = h.at_us;
    for e in ctx
        .net
        .iter()
        .filter(|e| e.conn == h.conn && e.at_us >= h.at_us && e.at_us <= next_us)
    {
        match e.kind {
            EventKind::Fired { .. } => {
                end = end.max(e.at_us);
                break;
            }
            EventKind::ClientClosed => break,
            EventKind::Response { .. }
            | EventKind::UpstreamClosed
            | EventKind::UpstreamRefused { .. } => end = end.max(e.at_us),
            _ => {}
        }
    }
    end
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FiredP {
    /// The fault's name in the proxy's events (`reset`, `fin`, `blackhole`, `idle_kill`,
    /// `refuse_upgrade`, `strip_upgrade`), or `kill_server` for the runner's kills.
    fault: String,
    #[serde(default = "d1")]
    min: usize,
}

/// The case's fault really happened (a network case whose fault never fired proves nothing).
pub(super) fn net_fired(p: FiredP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let n = if p.fault == "kill_server" {
        ctx.marks.iter().filter(|m| m.name == "kill_server").count()
    } else {
        ctx.net
            .iter()
            .filter(|e| e.fired() == Some(p.fault.as_str()))
            .count()
    };
    v.metric("fired", json!(n));
    if n < p.min {
        v.fail(format!(
            "{} fired {n} time(s), need at least {}",
            p.fault, p.min
        ));
    } else {
        v.note(format!("{} fired {n} time(s)", p.fault));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Mark;
    use crate::net::NetEvent;
    use crate::scenario::{ClientSetup, ServerSetup};
    use crate::traffic::Published;
    use tether_fault_proxy::EventKind;

    fn ev(v: Value) -> TraceEvent {
        TraceEvent {
            t_ms: 0.0,
            recv_us: 0,
            v,
        }
    }
    /// An event the client stamped at `case_ms` on the case clock (its own clock starts
    /// 1 s later) and the runner received 0.3 ms after.
    fn ev_at(case_ms: f64, v: Value) -> TraceEvent {
        TraceEvent {
            t_ms: case_ms - 1000.0,
            recv_us: (case_ms * 1000.0) as u64 + 300,
            v,
        }
    }
    fn selected(case_ms: f64, transport: &str) -> TraceEvent {
        ev_at(
            case_ms,
            json!({"type": "transport_selected", "transport": transport}),
        )
    }
    fn sched(case_ms: f64, delay_ms: f64) -> TraceEvent {
        ev_at(
            case_ms,
            json!({"type": "reconnect_scheduled", "attempt": 0, "delay_ms": delay_ms}),
        )
    }
    fn spacing(w: &World) -> Verdict {
        w.check(|c| {
            attempt_spacing(
                SpacingP {
                    granularity_ms: 2.0,
                    min_attempts: 2,
                },
                c,
            )
        })
    }
    fn msg(ch: &str, n: u64) -> TraceEvent {
        ev(json!({"type": "message", "channel": ch, "seq": n, "data": {"n": n}}))
    }
    fn reset(ch: &str) -> TraceEvent {
        ev(json!({"type": "reset", "channel": ch, "reason": "server"}))
    }
    fn published(ch: &str, ns: std::ops::RangeInclusive<u64>, inc: u32) -> Vec<Published> {
        ns.map(|n| Published {
            channel: ch.into(),
            n,
            incarnation: inc,
            seq: Some(n),
            certain: true,
            at_us: n * 1000,
        })
        .collect()
    }
    fn kill() -> Mark {
        Mark {
            name: "kill_server".into(),
            at_us: 0,
            trace_index: 0,
        }
    }

    struct World {
        events: Vec<TraceEvent>,
        published: Vec<Published>,
        marks: Vec<Mark>,
        net: Vec<NetEvent>,
        keys: Vec<String>,
    }

    impl World {
        fn new(events: Vec<TraceEvent>, published: Vec<Published>) -> World {
            World {
                events,
                published,
                marks: Vec::new(),
                net: Vec::new(),
                keys: Vec::new(),
            }
        }
        fn check<T>(&self, f: impl Fn(&Ctx) -> T) -> T {
            let (client, server) = (ClientSetup::default(), ServerSetup::default());
            let ctx = Ctx {
                events: &self.events,
                log: &[],
                marks: &self.marks,
                http: &[],
                client: &client,
                server: &server,
                final_state: None,
                stderr: "",
                keys: &self.keys,
                served: &[],
                net: &self.net,
                published: &self.published,
            };
            f(&ctx)
        }
        fn stream(&self) -> Verdict {
            self.check(|c| {
                stream_integrity(
                    StreamP {
                        channels: vec!["a".into()],
                        min_delivered: 1,
                    },
                    c,
                )
            })
        }
    }

    #[test]
    fn order_1_stream_integrity_passes_a_complete_stream_and_rejects_duplicates_and_reordering() {
        let ok = World::new(
            (1..=5).map(|n| msg("a", n)).collect(),
            published("a", 1..=5, 0),
        );
        assert!(ok.stream().ok, "{:?}", ok.stream().details);
        let dup = World::new(
            [1, 2, 2, 3, 4, 5].iter().map(|n| msg("a", *n)).collect(),
            published("a", 1..=5, 0),
        );
        let v = dup.stream();
        assert!(
            !v.ok && v.details[0].contains("duplicate"),
            "{:?}",
            v.details
        );
        let swapped = World::new(
            [1, 3, 2, 4, 5].iter().map(|n| msg("a", *n)).collect(),
            published("a", 1..=5, 0),
        );
        let v = swapped.stream();
        assert!(
            !v.ok && v.details[0].contains("out of order"),
            "{:?}",
            v.details
        );
    }

    #[test]
    fn resume_3_stream_integrity_rejects_a_gap_the_server_could_replay_reset_or_not() {
        // One incarnation: the server had everything, so no gap is excusable, not even
        // with a reset in its place.
        let gap = World::new(
            [1, 2, 4, 5].iter().map(|n| msg("a", *n)).collect(),
            published("a", 1..=5, 0),
        );
        assert!(!gap.stream().ok);
        let mut with_reset = World::new(
            vec![
                msg("a", 1),
                msg("a", 2),
                reset("a"),
                msg("a", 4),
                msg("a", 5),
            ],
            published("a", 1..=5, 0),
        );
        let v = with_reset.stream();
        assert!(!v.ok, "a reset without a kill: {:?}", v.details);
        // The tail must arrive.
        let short = World::new(
            (1..=3).map(|n| msg("a", n)).collect(),
            published("a", 1..=5, 0),
        );
        assert!(!short.stream().ok);
        with_reset.marks.push(kill());
        let v = with_reset.stream();
        assert!(!v.ok, "a hole inside one incarnation: {:?}", v.details);
    }

    #[test]
    fn resume_5_stream_integrity_accepts_history_lost_with_a_killed_server_only_behind_a_reset() {
        // Incarnation 0 stored 1..=4 (the client saw 1..=2 before the kill), incarnation 1
        // stored 5..=8 (the client came back at 7: 5 and 6 went before its hello).
        let mut p = published("a", 1..=4, 0);
        p.extend(published("a", 5..=8, 1));
        let mut w = World::new(
            vec![
                msg("a", 1),
                msg("a", 2),
                reset("a"),
                msg("a", 7),
                msg("a", 8),
            ],
            p.clone(),
        );
        w.marks.push(kill());
        let v = w.stream();
        assert!(v.ok, "{:?}", v.details);
        assert_eq!(v.metrics["lost_with_history"], json!(4));
        // The same loss without the reset looks filled: RESUME-5.
        let mut silent = World::new(
            vec![msg("a", 1), msg("a", 2), msg("a", 7), msg("a", 8)],
            p.clone(),
        );
        silent.marks.push(kill());
        let v = silent.stream();
        assert!(
            !v.ok && v.details[0].contains("no reset"),
            "{:?}",
            v.details
        );
        // Two resets for one kill.
        let mut twice = World::new(
            vec![
                msg("a", 1),
                msg("a", 2),
                reset("a"),
                reset("a"),
                msg("a", 7),
                msg("a", 8),
            ],
            p,
        );
        twice.marks.push(kill());
        assert!(!twice.stream().ok);
    }

    #[test]
    fn outbox_4_publish_accounting_wants_exactly_one_answer_per_publish() {
        let acked = |id: &str| ev(json!({"type": "acked", "id": id, "seq": 1}));
        let mut w = World::new(vec![acked("k1"), acked("k2")], Vec::new());
        w.keys = vec!["k1".into(), "k2".into()];
        let run = |w: &World| {
            w.check(|c| {
                publish_accounting(
                    AccountingP {
                        min_acked: 1,
                        max_dropped: 0,
                    },
                    c,
                )
            })
        };
        assert!(run(&w).ok);
        w.events.push(acked("k2"));
        let v = run(&w);
        assert!(
            !v.ok && v.details[0].contains("acknowledged 2 times"),
            "{:?}",
            v.details
        );
        w.events.pop();
        w.keys.push("k3".into());
        let v = run(&w);
        assert!(
            !v.ok && v.details[0].contains("never acknowledged"),
            "{:?}",
            v.details
        );
        w.keys.pop();
        w.events.push(acked("stranger"));
        assert!(!run(&w).ok, "an answer for a publish nobody made");
    }

    fn net(at_ms: u64, conn: u64, kind: EventKind) -> NetEvent {
        NetEvent {
            at_us: at_ms * 1000,
            conn,
            kind,
        }
    }
    fn hs(at_ms: u64, conn: u64) -> NetEvent {
        net(
            at_ms,
            conn,
            EventKind::Request {
                method: "GET".into(),
                target: "/tether/ws?v=1".into(),
                upgrade: true,
            },
        )
    }
    fn fired(at_ms: u64, conn: u64) -> NetEvent {
        net(
            at_ms,
            conn,
            EventKind::Fired {
                fault: "reset".into(),
                detail: String::new(),
            },
        )
    }

    #[test]
    fn backoff_3_attempt_spacing_measures_from_the_cut_and_rejects_early_or_hidden_attempts() {
        let sel = |t: f64| selected(t, "websocket");
        // Connected at 0, cut at 500, declared 20 ms, back at 525: fine.
        let mut w = World::new(vec![sel(0.0), sched(500.0, 20.0), sel(520.0)], Vec::new());
        w.net = vec![hs(0, 1), fired(500, 1), hs(525, 2)];
        assert!(spacing(&w).ok, "{:?}", spacing(&w).details);
        // Back 3 ms after the cut although 20 ms were declared (start-to-start is 503 ms:
        // only the cut shows it).
        w.net = vec![hs(0, 1), fired(500, 1), hs(503, 2)];
        let v = spacing(&w);
        assert!(
            !v.ok && v.details[0].contains("20.0 ms declared"),
            "{:?}",
            v.details
        );
        // Attempts on the wire the client never reported.
        w.net = vec![hs(0, 1), fired(500, 1), hs(525, 2), hs(526, 3), hs(527, 4)];
        let v = spacing(&w);
        assert!(
            !v.ok && v.details[0].contains("nobody declared"),
            "{:?}",
            v.details
        );
        // A connection blackholed at 500 that the client gave up at its open timeout; a
        // time trigger resets the dead connection at 905 and the next attempt comes at 910,
        // 410 ms after the cut: the late reset is no end of the attempt.
        let reset_late = net(
            905,
            1,
            EventKind::Fired {
                fault: "reset".into(),
                detail: String::new(),
            },
        );
        let blackhole = net(
            500,
            1,
            EventKind::Fired {
                fault: "blackhole".into(),
                detail: String::new(),
            },
        );
        w.events = vec![sel(0.0), sched(800.0, 100.0), sel(900.0)];
        w.net = vec![hs(0, 1), blackhole, reset_late, hs(910, 2)];
        assert!(spacing(&w).ok, "{:?}", spacing(&w).details);
        // A fallback (no delay declared) may follow at once (FALLBACK-3).
        let mut f = World::new(vec![sel(0.0), sel(0.5)], Vec::new());
        f.net = vec![hs(0, 1), hs(1, 2)];
        assert!(spacing(&f).ok, "{:?}", spacing(&f).details);
    }

    #[test]
    fn backoff_11_one_resend_on_a_fresh_connection_after_a_kept_alive_one_failed_is_the_same_attempt(
    ) {
        let sel = |t: f64| selected(t, "sse");
        let get = |at: u64, conn: u64, target: &str| {
            net(
                at,
                conn,
                EventKind::Request {
                    method: "GET".into(),
                    target: target.into(),
                    upgrade: false,
                },
            )
        };
        let sse = "/tether/sse?v=1&cursor=x";
        // Conn 2 carried a publish before (kept alive); the stream attempt on it is reset at
        // 102 and the browser resends it at 103 on conn 3, which is reset at 104; the client
        // declared 20 ms and came back at 125: two attempts, spaced from the resend's cut.
        let mut w = World::new(vec![sel(99.0), sched(104.0, 20.0), sel(124.0)], Vec::new());
        let base = [
            get(10, 2, "/tether/send"),
            get(100, 2, sse),
            fired(102, 2),
            get(103, 3, sse),
            fired(104, 3),
        ];
        w.net = base.iter().cloned().chain([get(125, 4, sse)]).collect();
        let v = spacing(&w);
        assert!(v.ok, "{:?}", v.details);
        assert!(
            v.details.iter().any(|d| d.contains("BACKOFF-11")),
            "{:?}",
            v.details
        );
        // Spaced from the resend's end, not the first request's: back at 110 is early.
        w.net = base.iter().cloned().chain([get(110, 4, sse)]).collect();
        assert!(!spacing(&w).ok, "{:?}", spacing(&w).details);
        // On a fresh connection (nothing before it) a second request is a retry of the
        // client's own, not the HTTP stack's: an attempt, and one too early.
        w.net = vec![
            get(100, 2, sse),
            fired(102, 2),
            get(103, 3, sse),
            fired(104, 3),
            get(125, 4, sse),
        ];
        let v = spacing(&w);
        assert!(
            !v.ok && v.details[0].contains("20.0 ms declared"),
            "{:?}",
            v.details
        );
        // At most one resend per attempt.
        w.net = base
            .iter()
            .cloned()
            .chain([get(105, 5, sse), fired(106, 5), get(130, 6, sse)])
            .collect();
        let v = spacing(&w);
        assert!(!v.ok, "{:?}", v.details);
    }

    #[test]
    fn backoff_3_an_attempt_that_never_reached_the_wire_does_not_shift_the_declared_delays() {
        let sel = |t: f64| selected(t, "sse");
        // Cut at 300; the attempt at 320 went on a pooled connection already cut and failed
        // writing (the proxy never saw it); then 20 ms, 100 ms and 30 ms, each kept.
        let events = |last: f64| {
            vec![
                sel(0.0),
                sched(300.0, 20.0),
                sel(320.0),
                sched(321.0, 20.0),
                sel(341.0),
                sched(600.0, 100.0),
                sel(700.0),
                sched(900.0, 30.0),
                sel(last),
            ]
        };
        let wire = |last: u64| {
            vec![
                hs(1, 1),
                fired(300, 1),
                hs(342, 3),
                fired(600, 3),
                hs(701, 4),
                fired(900, 4),
                hs(last, 5),
            ]
        };
        let mut w = World::new(events(930.0), Vec::new());
        w.net = wire(931);
        let v = spacing(&w);
        assert!(v.ok, "{:?}", v.details);
        assert!(
            v.details
                .iter()
                .any(|d| d.contains("1 declared attempt(s) never reached")),
            "{:?}",
            v.details
        );
        // Paired in order instead, the 100 ms would be checked against the 30 ms gap.
        // The last attempt 15 ms after its cut, 30 ms declared: early.
        w.events = events(914.0);
        w.net = wire(915);
        let v = spacing(&w);
        assert!(
            !v.ok
                && v.details[0].contains(
                    "attempt 5 reached the wire 15.0 ms after the previous one, 30.0 ms declared"
                ),
            "{:?}",
            v.details
        );
        // A request before the attempt it claims to be began is not skipped past: in order,
        // it is attempt 2, 5 ms after the cut although 20 ms were declared.
        w.events = events(930.0);
        w.net = vec![hs(1, 1), fired(300, 1), hs(305, 3)];
        let v = spacing(&w);
        assert!(
            !v.ok && v.details[0].contains("attempt 2 reached the wire 5.0 ms"),
            "{:?}",
            v.details
        );
    }
}
