//! The checks a case can name, implemented in Rust over the event trace and the server's observation log, plus trace invariants.

use crate::scenario::{CheckSpec, ClientSetup, ServerSetup};
use crate::stats;
use crate::trace::{matches, TraceEvent};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use tether_server::{LogEntry, LogKind};

/// A named instant of the case (server clock) and the trace length then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub name: String,
    pub at_us: u64,
    pub trace_index: usize,
}

/// An HTTP answer the runner fetched itself (`http_get` step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRecord {
    pub name: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpRecord {
    fn header(&self, k: &str) -> Option<&str> {
        let k = k.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(h, _)| *h == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Everything a check may look at.
pub struct Ctx<'a> {
    pub events: &'a [TraceEvent],
    pub log: &'a [LogEntry],
    pub marks: &'a [Mark],
    pub http: &'a [HttpRecord],
    pub client: &'a ClientSetup,
    pub server: &'a ServerSetup,
    pub final_state: Option<&'a Value>,
    pub stderr: &'a str,
    /// Idempotency keys of the publishes the adapter accepted, in order.
    pub keys: &'a [String],
    /// Cluster cases: every request the balancer served, in arrival order.
    pub served: &'a [crate::cluster::balancer::Served],
    /// Cases through the fault proxy: everything it saw, on the case clock.
    pub net: &'a [crate::net::NetEvent],
    /// The traffic's server-side publishes.
    pub published: &'a [crate::traffic::Published],
}

/// A check's verdict: details explain it (the first one is the headline on failure).
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    pub ok: bool,
    pub details: Vec<String>,
    pub metrics: Map<String, Value>,
}

impl Verdict {
    fn pass() -> Verdict {
        Verdict {
            ok: true,
            ..Verdict::default()
        }
    }
    fn fail(&mut self, why: impl Into<String>) {
        if self.ok {
            self.details.insert(0, why.into());
        } else {
            self.details.push(why.into());
        }
        self.ok = false;
    }
    fn note(&mut self, s: impl Into<String>) {
        self.details.push(s.into());
    }
    fn metric(&mut self, k: &str, v: Value) {
        self.metrics.insert(k.to_owned(), v);
    }
}

/// Names of every check, for `list` and validation.
pub const NAMES: [&str; 29] = [
    "stream_integrity",
    "publish_accounting",
    "attempt_spacing",
    "net_fired",
    "balancer",
    "event_gap",
    "log_intervals",
    "make_before_break",
    "field_range",
    "backoff_distribution",
    "never_earlier_than",
    "drain_window",
    "retry_after",
    "gap_after_mark",
    "exactly_once_in_order",
    "event_sequence",
    "no_event",
    "terminal_no_retry",
    "final_state",
    "acks",
    "dropped",
    "tokens",
    "server_log",
    "no_secret",
    "http_answer",
    "heartbeat_interval",
    "delays_compare",
    "count",
    "message_counts",
];

fn params<T: DeserializeOwned>(spec: &CheckSpec) -> Result<T, String> {
    serde_json::from_value(Value::Object(spec.params.clone())).map_err(|e| e.to_string())
}

/// Run one check.
pub fn run(spec: &CheckSpec, ctx: &Ctx) -> Result<Verdict, String> {
    match spec.check.as_str() {
        "backoff_distribution" => Ok(backoff_distribution(params(spec)?, ctx)),
        "never_earlier_than" => Ok(never_earlier_than(params(spec)?, ctx)),
        "drain_window" => Ok(drain_window(params(spec)?, ctx)),
        "retry_after" => Ok(retry_after(params(spec)?, ctx)),
        "gap_after_mark" => Ok(gap_after_mark(params(spec)?, ctx)),
        "exactly_once_in_order" => Ok(exactly_once_in_order(params(spec)?, ctx)),
        "event_sequence" => Ok(event_sequence(params(spec)?, ctx)),
        "no_event" => Ok(no_event(params(spec)?, ctx)),
        "terminal_no_retry" => Ok(terminal_no_retry(params(spec)?, ctx)),
        "final_state" => Ok(final_state(params(spec)?, ctx)),
        "acks" => Ok(acks(params(spec)?, ctx)),
        "dropped" => Ok(dropped(params(spec)?, ctx)),
        "tokens" => Ok(tokens(params(spec)?, ctx)),
        "server_log" => Ok(server_log(params(spec)?, ctx)),
        "no_secret" => Ok(no_secret(params(spec)?, ctx)),
        "http_answer" => Ok(http_answer(params(spec)?, ctx)),
        "heartbeat_interval" => Ok(heartbeat_interval(params(spec)?, ctx)),
        "delays_compare" => Ok(delays_compare(params(spec)?, ctx)),
        "count" => Ok(count(params(spec)?, ctx)),
        "message_counts" => Ok(message_counts(params(spec)?, ctx)),
        "balancer" => Ok(balancer(params(spec)?, ctx)),
        "field_range" => Ok(field_range(params(spec)?, ctx)),
        "event_gap" => Ok(event_gap(params(spec)?, ctx)),
        "log_intervals" => Ok(log_intervals(params(spec)?, ctx)),
        "make_before_break" => Ok(make_before_break(params(spec)?, ctx)),
        "stream_integrity" => Ok(network::stream_integrity(params(spec)?, ctx)),
        "publish_accounting" => Ok(network::publish_accounting(params(spec)?, ctx)),
        "attempt_spacing" => Ok(network::attempt_spacing(params(spec)?, ctx)),
        "net_fired" => Ok(network::net_fired(params(spec)?, ctx)),
        other => Err(format!("unknown check `{other}`")),
    }
}

mod network;
#[cfg(test)]
mod tests;

// ---------------------------------------------------------------- helpers

/// The backoff policy the client runs with: app overrides, else the defaults (BACKOFF-2).
#[derive(Clone, Copy, Debug)]
struct Backoff {
    floor: f64,
    base: f64,
    cap: f64,
    mult: f64,
}

impl Backoff {
    fn of(c: &ClientSetup) -> Backoff {
        let g = |k: &str, d: f64| c.policy.get(k).and_then(Value::as_f64).unwrap_or(d);
        Backoff {
            floor: g("floor_ms", 100.0),
            base: g("base_ms", 1000.0),
            cap: g("cap_ms", 30_000.0),
            mult: g("multiplier", 2.0),
        }
    }
    /// `min(cap, base * mult^n)`.
    fn ceiling(&self, n: u32) -> f64 {
        (self.base * self.mult.powi(n.min(1000) as i32)).min(self.cap)
    }
}

/// Causes whose delay is a backoff draw (not a drain window, a network event or a hint).
fn is_backoff_cause(c: &str) -> bool {
    !matches!(
        c,
        "drain" | "network_online" | "network_offline" | "retry_later" | "ready" | "user_connect"
    )
}

fn scheduled<'a>(ctx: &Ctx<'a>) -> Vec<&'a TraceEvent> {
    ctx.events
        .iter()
        .filter(|e| e.ty() == "reconnect_scheduled")
        .collect()
}

fn mark<'a>(ctx: &'a Ctx, name: &str, nth: usize) -> Option<&'a Mark> {
    ctx.marks.iter().filter(|m| m.name == name).nth(nth)
}

fn handshakes<'a>(ctx: &'a Ctx, transport: Option<&str>) -> Vec<&'a LogEntry> {
    ctx.log
        .iter()
        .filter(|e| e.kind == LogKind::Handshake)
        .filter(|e| transport.is_none_or(|t| e.transport.as_deref() == Some(t)))
        .collect()
}

/// For consecutive handshakes `H_i`, `H_i+1`: the latest server instant in between that is
/// certainly before the client saw attempt `i` end (a refusal, or a fault firing on the
/// connection), else `H_i`; and `H_i+1`. Gaps measured from it are never longer than the
/// client's own wait, so "never earlier than declared" is a safe one-sided test.
fn server_gaps(ctx: &Ctx, transport: Option<&str>) -> Vec<(u64, u64)> {
    let hs = handshakes(ctx, transport);
    let mut out = Vec::new();
    for w in hs.windows(2) {
        let (a, b) = (w[0].at_us, w[1].at_us);
        let end = ctx
            .log
            .iter()
            .filter(|e| e.at_us >= a && e.at_us <= b)
            .filter(|e| {
                e.kind == LogKind::Refused || (e.kind == LogKind::Fault && e.conn.is_some())
            })
            .filter(|e| transport.is_none_or(|t| e.transport.as_deref() == Some(t)))
            .map(|e| e.at_us)
            .max()
            .unwrap_or(a);
        out.push((end, b));
    }
    out
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

// ---------------------------------------------------------------- checks

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackoffP {
    #[serde(default = "d200")]
    min_draws: usize,
    #[serde(default = "d1e6")]
    alpha: f64,
    #[serde(default = "d1")]
    tolerance_ms: f64,
    #[serde(default = "dtrue")]
    ks: bool,
}
fn d200() -> usize {
    200
}
fn d1e6() -> f64 {
    1e-6
}
fn d1() -> f64 {
    1.0
}
fn dtrue() -> bool {
    true
}
fn d5() -> f64 {
    5.0
}

/// BACKOFF-1: every declared delay within `[floor, max(floor, min(cap, base·mult^n))]`, and
/// the draws of each `n` uniform on that interval, with no atom at the floor (exact CDF of
/// delay / ceiling, `U(floor / ceiling, 1)`, KS at `alpha`, Bonferroni over the groups tested).
fn backoff_distribution(p: BackoffP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let pol = Backoff::of(ctx.client);
    let draws: Vec<(u32, f64)> = scheduled(ctx)
        .into_iter()
        .filter(|e| e.str("cause").is_some_and(is_backoff_cause))
        .filter_map(|e| {
            let a = e.num("attempt")? as u32;
            Some((a.saturating_sub(1), e.num("delay_ms")?))
        })
        .collect();
    v.metric("draws", json!(draws.len()));
    if draws.len() < p.min_draws {
        v.fail(format!(
            "{} backoff draws, need at least {}",
            draws.len(),
            p.min_draws
        ));
        return v;
    }
    let mut out_of_bounds = 0;
    for &(n, d) in &draws {
        let hi = pol.ceiling(n).max(pol.floor);
        if d < pol.floor - p.tolerance_ms || d > hi + p.tolerance_ms {
            out_of_bounds += 1;
            if out_of_bounds <= 3 {
                v.fail(format!(
                    "draw n={n}: {d:.2} ms outside [{:.0}, {hi:.0}] (BACKOFF-1)",
                    pol.floor
                ));
            }
        }
    }
    v.metric("out_of_bounds", json!(out_of_bounds));
    if !p.ks {
        return v;
    }
    // Group by ceiling (attempt levels at the cap share one distribution).
    let mut groups: BTreeMap<u64, (u32, Vec<f64>)> = BTreeMap::new();
    for &(n, d) in &draws {
        let c = pol.ceiling(n);
        // A ceiling at or below the floor leaves one value (the floor): nothing to test.
        if c > pol.floor {
            let g = groups.entry((c * 1000.0) as u64).or_insert((n, Vec::new()));
            g.1.push((d / c).min(1.0));
        }
    }
    let tested: Vec<(u32, Vec<f64>)> = groups
        .into_values()
        .filter(|(_, u)| u.len() >= 30)
        .collect();
    if tested.is_empty() {
        v.fail("no attempt level has 30 draws for the KS test");
        return v;
    }
    let k = tested.len() as f64;
    for (n, u) in &tested {
        let f = (pol.floor / pol.ceiling(*n)).min(1.0);
        let ks = stats::ks_backoff(u, f, p.alpha / k);
        // Draws within the tolerance of the floor: an atom there shows as a large share.
        let at_floor = u
            .iter()
            .filter(|x| **x * pol.ceiling(*n) <= pol.floor + p.tolerance_ms)
            .count();
        let (mean, sd) = stats::mean_sd(u);
        v.metric(
            &format!("ks_n{n}"),
            json!({"draws": ks.n, "D": ks.d, "p": ks.p, "critical_D": ks.critical_d,
                   "floor_fraction": f, "at_floor": at_floor, "mean_u": mean, "sd_u": sd}),
        );
        v.note(format!(
            "n={n}: {} draws, KS D={:.4} (critical {:.4}), p={:.3e}, {at_floor} within {} ms of the floor",
            ks.n, ks.d, ks.critical_d, ks.p, p.tolerance_ms
        ));
        if ks.rejects(p.alpha / k) {
            v.fail(format!(
                "n={n}: delays are not U(floor, ceiling): KS D={:.4} > {:.4}, p={:.2e} <= {:.0e}, {at_floor} of {} draws within {} ms of the floor (BACKOFF-1 full jitter)",
                ks.d, ks.critical_d, ks.p, p.alpha, ks.n, p.tolerance_ms
            ));
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GapP {
    #[serde(default = "d5")]
    granularity_ms: f64,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default = "d1u")]
    min_pairs: usize,
}
fn d1u() -> usize {
    1
}

/// BACKOFF-1/3 seen from the server: the wait between an attempt's end and the next
/// handshake is never shorter than the delay the client declared (minus clock granularity).
fn never_earlier_than(p: GapP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let declared: Vec<f64> = scheduled(ctx)
        .into_iter()
        .filter_map(|e| e.num("delay_ms"))
        .collect();
    let gaps = server_gaps(ctx, p.transport.as_deref());
    let pairs = declared.len().min(gaps.len());
    v.metric("pairs", json!(pairs));
    if pairs < p.min_pairs {
        v.fail(format!(
            "{pairs} declared-delay/server-gap pairs, need {}",
            p.min_pairs
        ));
        return v;
    }
    let mut early = 0;
    let mut worst: f64 = f64::INFINITY;
    for (i, (d, (end, next))) in declared.iter().zip(gaps.iter()).enumerate() {
        let gap = ms(next.saturating_sub(*end));
        worst = worst.min(gap - d);
        if gap < d - p.granularity_ms {
            early += 1;
            if early <= 3 {
                v.fail(format!(
                    "attempt {} came {gap:.1} ms after the failure, {d:.1} ms declared (server-observed, BACKOFF-3)",
                    i + 1
                ));
            }
        }
    }
    v.metric("early", json!(early));
    v.metric("min_margin_ms", json!(worst));
    v.note(format!(
        "{pairs} pairs, smallest margin gap - declared = {worst:.1} ms"
    ));
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainP {
    from_ms: f64,
    to_ms: f64,
    #[serde(default = "d5")]
    granularity_ms: f64,
    #[serde(default = "d300")]
    slack_ms: f64,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default = "d1e6")]
    alpha: f64,
}
fn d300() -> f64 {
    300.0
}

/// DRAIN-1/2: after every drain the client declares `attempt 0, delay in [from, to]`, and
/// the server sees its next handshake inside the window (never before `from`). With 30 or
/// more drains the declared delays are tested for uniformity.
fn drain_window(p: DrainP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let drains: Vec<&Mark> = ctx.marks.iter().filter(|m| m.name == "drain").collect();
    if drains.is_empty() {
        v.fail("no drain step ran");
        return v;
    }
    let hs = handshakes(ctx, p.transport.as_deref());
    let mut unif = Vec::new();
    for (i, m) in drains.iter().enumerate() {
        let end = drains.get(i + 1).map_or(usize::MAX, |n| n.trace_index);
        let sched = ctx.events[m.trace_index.min(ctx.events.len())..end.min(ctx.events.len())]
            .iter()
            .find(|e| e.ty() == "reconnect_scheduled" && e.str("cause") == Some("drain"));
        match sched {
            None => v.fail(format!(
                "drain {}: no reconnect_scheduled{{cause: drain}}",
                i + 1
            )),
            Some(e) => {
                let d = e.num("delay_ms").unwrap_or(-1.0);
                let a = e.num("attempt").unwrap_or(-1.0);
                if a != 0.0 {
                    v.fail(format!(
                        "drain {}: attempt {a}, a drain is not a failure (DRAIN-2)",
                        i + 1
                    ));
                }
                if d < p.from_ms - 0.5 || d > p.to_ms + 0.5 {
                    v.fail(format!(
                        "drain {}: declared {d:.1} ms outside [{}, {}] (DRAIN-1)",
                        i + 1,
                        p.from_ms,
                        p.to_ms
                    ));
                } else if p.to_ms > p.from_ms {
                    unif.push((d - p.from_ms) / (p.to_ms - p.from_ms));
                }
            }
        }
        match hs.iter().find(|h| h.at_us > m.at_us) {
            None => v.fail(format!("drain {}: the client never came back", i + 1)),
            Some(h) => {
                let gap = ms(h.at_us - m.at_us);
                if gap < p.from_ms - p.granularity_ms {
                    v.fail(format!(
                        "drain {}: server saw the reconnect {gap:.1} ms after the drain, before the window opened at {} ms (DRAIN-1)",
                        i + 1,
                        p.from_ms
                    ));
                } else if gap > p.to_ms + p.slack_ms {
                    v.fail(format!(
                        "drain {}: server saw the reconnect {gap:.1} ms after the drain, window closed at {} ms (+{} slack)",
                        i + 1,
                        p.to_ms,
                        p.slack_ms
                    ));
                }
            }
        }
    }
    v.metric("drains", json!(drains.len()));
    if unif.len() >= 30 {
        let ks = stats::ks_uniform(&unif, p.alpha);
        v.metric("ks", json!({"draws": ks.n, "D": ks.d, "p": ks.p}));
        if ks.rejects(p.alpha) {
            v.fail(format!(
                "drain delays not uniform over the window: KS D={:.3}, p={:.2e}",
                ks.d, ks.p
            ));
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryAfterP {
    after_ms: f64,
    #[serde(default = "d5")]
    granularity_ms: f64,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default = "d1u")]
    min: usize,
}

/// READY-1: after a refusal with hint RA the client declares `>= RA` (and at most
/// `max(1.5·RA, ceiling)`) and the server sees no handshake before RA has passed.
fn retry_after(p: RetryAfterP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let pol = Backoff::of(ctx.client);
    let ra = p.after_ms.max(pol.floor);
    let sched: Vec<&TraceEvent> = scheduled(ctx);
    let hinted: Vec<(usize, f64, u32)> = sched
        .iter()
        .enumerate()
        .filter(|(_, e)| e.str("cause") == Some("retry_later"))
        .map(|(i, e)| {
            (
                i,
                e.num("delay_ms").unwrap_or(-1.0),
                e.num("attempt").unwrap_or(1.0) as u32,
            )
        })
        .collect();
    v.metric("hinted", json!(hinted.len()));
    if hinted.len() < p.min {
        v.fail(format!(
            "{} reconnects scheduled for retry_later, need {}",
            hinted.len(),
            p.min
        ));
        return v;
    }
    let gaps = server_gaps(ctx, p.transport.as_deref());
    for (i, d, attempt) in hinted {
        let hi = (1.5 * ra).max(pol.ceiling(attempt.saturating_sub(1)));
        if d < ra - 0.5 || d > hi + 0.5 {
            v.fail(format!(
                "declared {d:.1} ms for hint {ra} ms, want [{ra}, {hi:.0}] (READY-1)"
            ));
        }
        if let Some((end, next)) = gaps.get(i) {
            let gap = ms(next.saturating_sub(*end));
            if gap < ra - p.granularity_ms {
                v.fail(format!(
                    "server saw the next attempt {gap:.1} ms after the refusal, hint was {ra} ms (READY-1)"
                ));
            }
            v.note(format!(
                "hint {ra} ms: declared {d:.1} ms, server-observed {gap:.1} ms"
            ));
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkGapP {
    mark: String,
    #[serde(default)]
    nth: usize,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default)]
    min_ms: Option<f64>,
    #[serde(default)]
    max_ms: Option<f64>,
    #[serde(default = "d5")]
    granularity_ms: f64,
    /// Expect no handshake at all after the mark.
    #[serde(default)]
    none: bool,
    /// Look at the handshake after this many others (0: the first after the mark).
    #[serde(default)]
    skip: usize,
}

/// The first handshake after a marked instant comes within `[min_ms, max_ms]`.
fn gap_after_mark(p: MarkGapP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let Some(m) = mark(ctx, &p.mark, p.nth) else {
        v.fail(format!("no mark `{}` #{}", p.mark, p.nth));
        return v;
    };
    let next = handshakes(ctx, p.transport.as_deref())
        .into_iter()
        .filter(|h| h.at_us >= m.at_us)
        .nth(p.skip);
    match (next, p.none) {
        (None, true) => v.note("no handshake after the mark"),
        (Some(h), true) => v.fail(format!(
            "a handshake came {:.1} ms after `{}`; none was allowed",
            ms(h.at_us - m.at_us),
            p.mark
        )),
        (None, false) => v.fail(format!("no handshake after `{}`", p.mark)),
        (Some(h), false) => {
            let gap = ms(h.at_us - m.at_us);
            v.metric("gap_ms", json!(gap));
            v.note(format!("first handshake {gap:.1} ms after `{}`", p.mark));
            if let Some(lo) = p.min_ms {
                if gap < lo - p.granularity_ms {
                    v.fail(format!(
                        "handshake {gap:.1} ms after `{}`, not before {lo} ms allowed",
                        p.mark
                    ));
                }
            }
            if let Some(hi) = p.max_ms {
                if gap > hi {
                    v.fail(format!(
                        "handshake {gap:.1} ms after `{}`, expected within {hi} ms",
                        p.mark
                    ));
                }
            }
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnceP {
    channel: String,
    count: u64,
    #[serde(default = "d1u64")]
    first_n: u64,
    /// Allow a `reset` on the channel (then only order and uniqueness are checked).
    #[serde(default)]
    allow_reset: bool,
}
fn d1u64() -> u64 {
    1
}

/// RESUME-3 / ORDER-1/2 / FALLBACK-7: the app got payloads `first_n .. first_n+count-1` of
/// the channel exactly once each, in order, with consecutive `seq`.
fn exactly_once_in_order(p: OnceP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let msgs: Vec<&TraceEvent> = ctx
        .events
        .iter()
        .filter(|e| e.ty() == "message" && e.str("channel") == Some(&p.channel))
        .collect();
    let ns: Vec<u64> = msgs
        .iter()
        .filter_map(|e| {
            e.v.get("data")
                .and_then(|d| d.get("n"))
                .and_then(Value::as_u64)
        })
        .collect();
    let seqs: Vec<u64> = msgs
        .iter()
        .filter_map(|e| e.num("seq"))
        .map(|s| s as u64)
        .collect();
    v.metric("delivered", json!(msgs.len()));
    let want: Vec<u64> = (p.first_n..p.first_n + p.count).collect();
    let resets = ctx
        .events
        .iter()
        .filter(|e| e.ty() == "reset" && e.str("channel") == Some(&p.channel))
        .count();
    if resets > 0 && !p.allow_reset {
        v.fail(format!(
            "{resets} reset(s) on {}: a gap was reported",
            p.channel
        ));
    }
    if ns != want {
        let mut seen = std::collections::BTreeSet::new();
        let dups: Vec<u64> = ns.iter().copied().filter(|n| !seen.insert(*n)).collect();
        let missing: Vec<u64> = want.iter().copied().filter(|n| !ns.contains(n)).collect();
        let first_bad = ns
            .iter()
            .zip(want.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(ns.len().min(want.len()));
        v.fail(format!(
            "{}: got {} messages, want {} exactly once in order; missing {:?}{}, duplicates {:?}, first difference at #{}",
            p.channel,
            ns.len(),
            want.len(),
            &missing[..missing.len().min(10)],
            if missing.len() > 10 { " …" } else { "" },
            &dups[..dups.len().min(10)],
            first_bad
        ));
    }
    for w in seqs.windows(2) {
        if w[1] != w[0] + 1 && !p.allow_reset {
            v.fail(format!("seq {} followed by {} (ORDER-1)", w[0], w[1]));
            break;
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeqP {
    events: Vec<Value>,
    #[serde(default)]
    after_mark: Option<String>,
}

fn start_index(ctx: &Ctx, after_mark: &Option<String>) -> Result<usize, String> {
    match after_mark {
        None => Ok(0),
        Some(m) => mark(ctx, m, 0)
            .map(|m| m.trace_index)
            .ok_or_else(|| format!("no mark `{m}`")),
    }
}

/// The given event patterns occur in this order (other events may come in between).
fn event_sequence(p: SeqP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let mut i = match start_index(ctx, &p.after_mark) {
        Ok(i) => i,
        Err(e) => {
            v.fail(e);
            return v;
        }
    };
    for (k, pat) in p.events.iter().enumerate() {
        match ctx.events[i.min(ctx.events.len())..]
            .iter()
            .position(|e| matches(pat, &e.v))
        {
            Some(j) => i += j + 1,
            None => {
                v.fail(format!(
                    "expected event #{} {pat} (after the previous ones) never came",
                    k + 1
                ));
                return v;
            }
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoEventP {
    event: Value,
    #[serde(default)]
    after_mark: Option<String>,
    #[serde(default)]
    after_event: Option<Value>,
}

/// No event matches `event` (after a mark, or after the first `after_event`).
fn no_event(p: NoEventP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let mut i = match start_index(ctx, &p.after_mark) {
        Ok(i) => i,
        Err(e) => {
            v.fail(e);
            return v;
        }
    };
    if let Some(a) = &p.after_event {
        match ctx.events[i..].iter().position(|e| matches(a, &e.v)) {
            Some(j) => i += j + 1,
            None => {
                v.fail(format!("the anchor event {a} never came"));
                return v;
            }
        }
    }
    if let Some(e) = ctx.events[i..].iter().find(|e| matches(&p.event, &e.v)) {
        v.fail(format!("unexpected event {}", e.v));
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalP {
    reason: String,
    #[serde(default)]
    transport: Option<String>,
}

/// CONN-5 / BACKOFF-6: the client ends in `Failed{reason}`, never leaves it, and the server
/// sees no attempt after it.
fn terminal_no_retry(p: TerminalP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let failed = ctx
        .events
        .iter()
        .position(|e| e.ty() == "state" && e.str("to") == Some("failed"));
    let Some(fi) = failed else {
        v.fail("the client never reported Failed");
        return v;
    };
    let fe = &ctx.events[fi];
    if fe.str("reason") != Some(&p.reason) {
        v.fail(format!(
            "Failed with reason {:?}, want {} (ERR-1)",
            fe.str("reason"),
            p.reason
        ));
    }
    if let Some(e) = ctx.events[fi + 1..].iter().find(|e| {
        matches!(
            e.ty(),
            "state" | "reconnect_scheduled" | "transport_selected"
        )
    }) {
        v.fail(format!("activity after Failed: {}", e.v));
    }
    let later = handshakes(ctx, p.transport.as_deref())
        .into_iter()
        .filter(|h| h.at_us > fe.recv_us)
        .count();
    if later > 0 {
        v.fail(format!(
            "the server saw {later} handshake(s) after the client reported Failed (retry after a terminal failure)"
        ));
    }
    if let Some(s) = ctx.final_state {
        if s.get("name").and_then(Value::as_str) != Some("failed") {
            v.fail(format!("final state {s}, want failed"));
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinalP {
    state: Value,
}

/// STATE-3: the final state matches, and equals the last reported `to`.
fn final_state(p: FinalP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let Some(s) = ctx.final_state else {
        v.fail("the adapter did not answer `state`");
        return v;
    };
    if !matches(&p.state, s) {
        v.fail(format!("final state {s}, want {}", p.state));
    }
    let last_to = ctx
        .events
        .iter()
        .rev()
        .find(|e| e.ty() == "state")
        .and_then(|e| e.str("to"));
    let name = s.get("name").and_then(Value::as_str);
    if last_to.is_some() && last_to != name {
        v.fail(format!(
            "state is {name:?} but the last reported transition went to {last_to:?} (STATE-3)"
        ));
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcksP {
    #[serde(default)]
    count: Option<usize>,
    /// Keys that must be acknowledged with the same seq (OUTBOX-5 dedupe).
    #[serde(default)]
    same_seq: Option<String>,
}

/// Every accepted publish acknowledged, in publish order (OUTBOX-3/4); repeated keys get
/// the same seq (OUTBOX-5).
fn acks(p: AcksP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let acked: Vec<(&str, Option<f64>)> = ctx
        .events
        .iter()
        .filter(|e| e.ty() == "acked")
        .filter_map(|e| Some((e.str("id")?, e.num("seq"))))
        .collect();
    v.metric("acked", json!(acked.len()));
    let want = p.count.unwrap_or(ctx.keys.len());
    let mut first_seen: Vec<&str> = Vec::new();
    for (id, _) in &acked {
        if !first_seen.contains(id) {
            first_seen.push(id);
        }
    }
    let unique_keys: Vec<&str> = {
        let mut u: Vec<&str> = Vec::new();
        for k in ctx.keys {
            if !u.contains(&k.as_str()) {
                u.push(k);
            }
        }
        u
    };
    if first_seen.len() != want.min(unique_keys.len())
        || first_seen.len() < want.min(unique_keys.len())
    {
        v.fail(format!(
            "{} distinct publishes acknowledged, want {}",
            first_seen.len(),
            want
        ));
    }
    if first_seen != unique_keys[..first_seen.len().min(unique_keys.len())] {
        v.fail("acknowledgements are not in publish order (OUTBOX-3)");
    }
    if let Some(key) = &p.same_seq {
        let seqs: Vec<Option<f64>> = acked
            .iter()
            .filter(|(id, _)| id == key)
            .map(|(_, s)| *s)
            .collect();
        if seqs.len() < 2 {
            v.fail(format!(
                "key {key} acknowledged {} time(s), want 2",
                seqs.len()
            ));
        } else if seqs.windows(2).any(|w| w[0] != w[1]) {
            v.fail(format!(
                "key {key} acknowledged with different seqs {seqs:?} (OUTBOX-5 dedupe)"
            ));
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DroppedP {
    reason: String,
    count: usize,
    /// The dropped keys must be the first `count` accepted (drop_oldest).
    #[serde(default)]
    oldest: bool,
}

/// OUTBOX-6: exactly `count` publishes dropped with `reason`, reported by id.
fn dropped(p: DroppedP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let ds: Vec<&str> = ctx
        .events
        .iter()
        .filter(|e| e.ty() == "dropped" && e.str("reason") == Some(&p.reason))
        .filter_map(|e| e.str("id"))
        .collect();
    if ds.len() != p.count {
        v.fail(format!(
            "{} publishes dropped with {}, want {}",
            ds.len(),
            p.reason,
            p.count
        ));
    }
    if p.oldest {
        let want: Vec<&str> = ctx.keys.iter().take(p.count).map(String::as_str).collect();
        if ds != want {
            v.fail(format!("dropped {ds:?}, want the oldest {want:?}"));
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensP {
    /// Every handshake preceded by a token request.
    #[serde(default = "dtrue")]
    before_every_attempt: bool,
    /// After an `auth_expired` cause the next request is `forced: true`.
    #[serde(default)]
    forced_after_expiry: bool,
    /// The retry after the expiry comes at once (before `max_ms`) with no backoff.
    #[serde(default)]
    immediate_ms: Option<f64>,
}

/// AUTH-1/2: a token is fetched before every attempt; after auth expiry exactly one
/// immediate retry with a forced token.
fn tokens(p: TokensP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let reqs: Vec<&TraceEvent> = ctx
        .events
        .iter()
        .filter(|e| e.ty() == "token_requested")
        .collect();
    let attempts = ctx
        .events
        .iter()
        .filter(|e| e.ty() == "state" && e.str("to") == Some("connecting"))
        .count();
    v.metric("token_requests", json!(reqs.len()));
    v.metric("attempts", json!(attempts));
    if p.before_every_attempt && reqs.len() < attempts {
        v.fail(format!(
            "{} token requests for {attempts} attempts (AUTH-1: one before every attempt)",
            reqs.len()
        ));
    }
    if p.forced_after_expiry {
        let expiry = ctx.events.iter().find(|e| {
            e.ty() == "state"
                && e.str("cause") == Some("auth_expired")
                && e.str("from") != e.str("to")
        });
        let Some(x) = expiry else {
            v.fail("no transition with cause auth_expired");
            return v;
        };
        // The request for the retry comes after the expired connection's hello (token
        // requests travel apart from state events, so order them by the adapter clock).
        let xi = ctx
            .events
            .iter()
            .position(|e| std::ptr::eq(e, x))
            .unwrap_or(0);
        let anchor = ctx.events[..xi]
            .iter()
            .rev()
            .find(|e| e.ty() == "state" && e.str("to") == Some("connected"))
            .map_or(f64::NEG_INFINITY, |e| e.t_ms);
        match reqs.iter().find(|r| r.t_ms > anchor) {
            None => v.fail("no token request after auth expiry"),
            Some(r) => {
                if r.v.get("forced") != Some(&json!(true)) {
                    v.fail("the token request after auth expiry was not forced (AUTH-2)");
                }
                if let Some(max) = p.immediate_ms {
                    if r.t_ms - x.t_ms > max {
                        v.fail(format!(
                            "forced token requested {:.1} ms after the expiry, want an immediate retry (< {max} ms)",
                            r.t_ms - x.t_ms
                        ));
                    }
                }
            }
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogP {
    kind: String,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default)]
    frame_type: Option<String>,
    #[serde(default)]
    detail_contains: Option<String>,
    #[serde(default)]
    query_contains: Option<String>,
    #[serde(default)]
    query_lacks: Option<String>,
    #[serde(default)]
    has_cursor: Option<bool>,
    /// Only entries with (true) or without (false) a connection id; long-poll frames carry
    /// one only in the hello answer (RESUME-7).
    #[serde(default)]
    has_conn: Option<bool>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    after_mark: Option<String>,
    #[serde(default)]
    before_mark: Option<String>,
    /// The entry's cursor equals this exactly.
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    cursor_min_bytes: Option<usize>,
    #[serde(default)]
    cursor_max_bytes: Option<usize>,
    #[serde(default)]
    min: Option<usize>,
    #[serde(default)]
    max: Option<usize>,
}

/// Count server log entries matching filters; `min`/`max` bound the count.
fn server_log(p: LogP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let kind = match p.kind.as_str() {
        "tcp_accept" => Some(LogKind::TcpAccept),
        "tcp_refused" => Some(LogKind::TcpRefused),
        "listener" => Some(LogKind::Listener),
        "request" => Some(LogKind::Request),
        "handshake" => Some(LogKind::Handshake),
        "refused" => Some(LogKind::Refused),
        "open" => Some(LogKind::Open),
        "frame_out" => Some(LogKind::FrameOut),
        "frame_in" => Some(LogKind::FrameIn),
        "close" => Some(LogKind::Close),
        "fault" => Some(LogKind::Fault),
        "action" => Some(LogKind::Action),
        _ => None,
    };
    let Some(kind) = kind else {
        v.fail(format!("unknown log kind {}", p.kind));
        return v;
    };
    let since = match &p.after_mark {
        None => 0,
        Some(m) => match mark(ctx, m, 0) {
            Some(m) => m.at_us,
            None => {
                v.fail(format!("no mark `{m}`"));
                return v;
            }
        },
    };
    let until = match &p.before_mark {
        None => u64::MAX,
        Some(m) => match mark(ctx, m, 0) {
            Some(m) => m.at_us,
            None => {
                v.fail(format!("no mark `{m}`"));
                return v;
            }
        },
    };
    let n = ctx
        .log
        .iter()
        .filter(|e| e.kind == kind && e.at_us >= since && e.at_us < until)
        .filter(|e| {
            p.cursor_min_bytes
                .is_none_or(|b| e.cursor.as_ref().is_some_and(|c| c.len() >= b))
        })
        .filter(|e| {
            p.cursor_max_bytes
                .is_none_or(|b| e.cursor.as_ref().is_some_and(|c| c.len() <= b))
        })
        .filter(|e| {
            p.transport
                .as_ref()
                .is_none_or(|t| e.transport.as_ref() == Some(t))
        })
        .filter(|e| {
            p.frame_type
                .as_ref()
                .is_none_or(|t| e.frame_type.as_ref() == Some(t))
        })
        .filter(|e| p.status.is_none_or(|s| e.status == Some(s)))
        .filter(|e| {
            p.detail_contains
                .as_ref()
                .is_none_or(|d| e.detail.as_ref().is_some_and(|x| x.contains(d.as_str())))
        })
        .filter(|e| {
            p.query_contains
                .as_ref()
                .is_none_or(|d| e.query.as_ref().is_some_and(|x| x.contains(d.as_str())))
        })
        .filter(|e| {
            p.query_lacks
                .as_ref()
                .is_none_or(|d| !e.query.as_ref().is_some_and(|x| x.contains(d.as_str())))
        })
        .filter(|e| p.has_cursor.is_none_or(|c| e.cursor.is_some() == c))
        .filter(|e| p.has_conn.is_none_or(|c| e.conn.is_some() == c))
        .filter(|e| {
            p.cursor
                .as_ref()
                .is_none_or(|c| e.cursor.as_deref() == Some(c.as_str()))
        })
        .count();
    v.metric("count", json!(n));
    let what = format!(
        "server log {}{}{}{}",
        p.kind,
        p.transport
            .as_ref()
            .map(|t| format!(" on {t}"))
            .unwrap_or_default(),
        p.frame_type
            .as_ref()
            .map(|t| format!(" frame {t}"))
            .unwrap_or_default(),
        p.detail_contains
            .as_ref()
            .map(|t| format!(" ~{t}"))
            .unwrap_or_default()
    );
    if let Some(min) = p.min {
        if n < min {
            v.fail(format!("{what}: {n} entries, want at least {min}"));
        }
    }
    if let Some(max) = p.max {
        if n > max {
            v.fail(format!("{what}: {n} entries, want at most {max}"));
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretP {
    secret: String,
}

/// AUTH-4: the token appears nowhere: not in events, adapter stderr, or the server's log.
fn no_secret(p: SecretP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    if let Some(e) = ctx
        .events
        .iter()
        .find(|e| e.v.to_string().contains(&p.secret))
    {
        v.fail(format!("the token appears in an event: {}", e.ty()));
    }
    if ctx.stderr.contains(&p.secret) {
        v.fail("the token appears in the adapter's log output");
    }
    if ctx.log.iter().any(|e| {
        e.query.as_ref().is_some_and(|q| q.contains(&p.secret))
            || e.detail.as_ref().is_some_and(|q| q.contains(&p.secret))
    }) {
        v.fail("the token appears in the server's log");
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpP {
    name: String,
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    has_headers: Vec<String>,
    #[serde(default)]
    json: Option<Value>,
    #[serde(default)]
    window: bool,
}

/// An HTTP answer the runner fetched: status, headers, JSON body subset, `window_ms` shape.
fn http_answer(p: HttpP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let Some(r) = ctx.http.iter().find(|r| r.name == p.name) else {
        v.fail(format!("no HTTP answer `{}`", p.name));
        return v;
    };
    v.note(format!("{} -> {} {}", p.name, r.status, r.body.trim()));
    if r.status != p.status {
        v.fail(format!(
            "{}: status {}, want {}",
            p.name, r.status, p.status
        ));
    }
    for (k, want) in &p.headers {
        if r.header(k) != Some(want) {
            v.fail(format!(
                "{}: header {k} = {:?}, want {want}",
                p.name,
                r.header(k)
            ));
        }
    }
    for k in &p.has_headers {
        if r.header(k).is_none() {
            v.fail(format!("{}: header {k} missing", p.name));
        }
    }
    let body_json = r
        .body
        .find('{')
        .and_then(|i| r.body.rfind('}').map(|j| &r.body[i..=j]))
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    if let Some(want) = &p.json {
        match &body_json {
            Some(b) if matches(want, b) => {}
            _ => v.fail(format!("{}: body {}, want {want}", p.name, r.body.trim())),
        }
    }
    if p.window {
        let w = body_json
            .as_ref()
            .and_then(|b| b.get("window_ms"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<_>>());
        match w.as_deref() {
            Some([a, b]) if a <= b => {}
            _ => v.fail(format!("{}: window_ms is not [from, to]", p.name)),
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HbP {
    transport: String,
    max_ms: f64,
    #[serde(default = "d2")]
    min_pings: usize,
}
fn d2() -> usize {
    2
}

/// HEARTBEAT-1 (server): on each connection, pings (WebSocket) or comments (SSE) at least
/// every `max_ms`.
fn heartbeat_interval(p: HbP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let mut by_conn: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for e in ctx.log {
        if e.kind == LogKind::FrameOut
            && e.transport.as_deref() == Some(&p.transport)
            && matches!(e.frame_type.as_deref(), Some("ping") | Some("comment"))
        {
            if let Some(c) = e.conn {
                by_conn.entry(c).or_default().push(e.at_us);
            }
        }
    }
    let total: usize = by_conn.values().map(Vec::len).sum();
    v.metric("pings", json!(total));
    if total < p.min_pings {
        v.fail(format!(
            "{total} heartbeats on {} seen in the server log, want at least {}",
            p.transport, p.min_pings
        ));
    }
    let mut worst: f64 = 0.0;
    for ts in by_conn.values() {
        for w in ts.windows(2) {
            worst = worst.max(ms(w[1] - w[0]));
        }
    }
    v.metric("max_interval_ms", json!(worst));
    if worst > p.max_ms {
        v.fail(format!(
            "heartbeat interval {worst:.1} ms > {} ms (HEARTBEAT-1)",
            p.max_ms
        ));
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareP {
    /// Segments between marks: `[start_mark, end_mark]`.
    a: (String, String),
    b: (String, String),
    equal: bool,
    #[serde(default = "d3")]
    min: usize,
}
fn d3() -> usize {
    3
}

fn delays_between(ctx: &Ctx, seg: &(String, String)) -> Option<Vec<f64>> {
    let s = mark(ctx, &seg.0, 0)?.trace_index;
    let e = mark(ctx, &seg.1, 0)?.trace_index;
    Some(
        ctx.events[s.min(ctx.events.len())..e.min(ctx.events.len())]
            .iter()
            .filter(|x| x.ty() == "reconnect_scheduled")
            .filter_map(|x| x.num("delay_ms"))
            .collect(),
    )
}

/// BACKOFF-7: the delays of two segments are identical (same seed) or differ (other seed).
fn delays_compare(p: CompareP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let (Some(a), Some(b)) = (delays_between(ctx, &p.a), delays_between(ctx, &p.b)) else {
        v.fail("missing marks");
        return v;
    };
    let n = a.len().min(b.len()).min(p.min.max(1));
    if n < p.min {
        v.fail(format!(
            "segments hold {} and {} delays, need {}",
            a.len(),
            b.len(),
            p.min
        ));
        return v;
    }
    let same = a[..n]
        .iter()
        .zip(&b[..n])
        .all(|(x, y)| (x - y).abs() < 1e-3);
    v.note(format!("first {n}: {:?} vs {:?}", &a[..n], &b[..n]));
    if same != p.equal {
        v.fail(if p.equal {
            "the same seed drew different delays (BACKOFF-7)"
        } else {
            "different seeds drew the same delays (BACKOFF-7)"
        });
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountP {
    event: Value,
    #[serde(default)]
    min: Option<usize>,
    #[serde(default)]
    max: Option<usize>,
    #[serde(default)]
    after_mark: Option<String>,
    #[serde(default)]
    before_mark: Option<String>,
}

/// The number of events matching `event` is within `[min, max]`.
fn count(p: CountP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let start = match start_index(ctx, &p.after_mark) {
        Ok(i) => i,
        Err(e) => {
            v.fail(e);
            return v;
        }
    };
    let end = match &p.before_mark {
        None => ctx.events.len(),
        Some(_) => match start_index(ctx, &p.before_mark) {
            Ok(i) => i,
            Err(e) => {
                v.fail(e);
                return v;
            }
        },
    };
    let end = end.min(ctx.events.len());
    let n = ctx.events[start.min(end)..end]
        .iter()
        .filter(|e| matches(&p.event, &e.v))
        .count();
    v.metric("count", json!(n));
    if p.min.is_some_and(|m| n < m) || p.max.is_some_and(|m| n > m) {
        v.fail(format!(
            "{n} events matching {}, want [{}, {}]",
            p.event,
            p.min.map_or("-".into(), |m| m.to_string()),
            p.max.map_or("-".into(), |m| m.to_string())
        ));
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MsgCountP {
    channel: String,
    /// Distinct payloads delivered.
    count: usize,
}

/// No duplicates reach the app, and exactly `count` distinct payloads arrived (order free).
fn message_counts(p: MsgCountP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let ns: Vec<String> = ctx
        .events
        .iter()
        .filter(|e| e.ty() == "message" && e.str("channel") == Some(&p.channel))
        .map(|e| e.v.get("data").map(Value::to_string).unwrap_or_default())
        .collect();
    let uniq: std::collections::BTreeSet<&String> = ns.iter().collect();
    if uniq.len() != ns.len() {
        v.fail(format!(
            "{} duplicate deliveries on {} (ORDER-2)",
            ns.len() - uniq.len(),
            p.channel
        ));
    }
    if uniq.len() != p.count {
        v.fail(format!(
            "{} distinct messages on {}, want {}",
            uniq.len(),
            p.channel,
            p.count
        ));
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeP {
    event: Value,
    field: String,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    /// Policy field names as bounds instead of numbers (e.g. `floor_ms`, `base_ms`).
    #[serde(default)]
    min_policy: Option<String>,
    #[serde(default)]
    max_policy: Option<String>,
    #[serde(default = "d1u")]
    at_least: usize,
}

/// Every event matching `event` has numeric `field` within `[min, max]` (at least `at_least` of them).
fn field_range(p: RangeP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let from_policy = |k: &Option<String>, v: Option<f64>| match k {
        Some(k) => ctx.client.policy.get(k).and_then(Value::as_f64).or(v),
        None => v,
    };
    let min = from_policy(&p.min_policy, p.min);
    let max = from_policy(&p.max_policy, p.max);
    let hits: Vec<&TraceEvent> = ctx
        .events
        .iter()
        .filter(|e| matches(&p.event, &e.v))
        .collect();
    if hits.len() < p.at_least {
        v.fail(format!(
            "{} events match {}, want at least {}",
            hits.len(),
            p.event,
            p.at_least
        ));
    }
    for e in hits {
        let x = e.num(&p.field);
        let ok = x.is_some_and(|x| {
            min.is_none_or(|m| x >= m - 1e-9) && max.is_none_or(|m| x <= m + 1e-9)
        });
        if !ok {
            v.fail(format!(
                "{}.{} = {:?} outside [{}, {}]",
                e.ty(),
                p.field,
                x,
                min.map_or("-".into(), |m| m.to_string()),
                max.map_or("-".into(), |m| m.to_string())
            ));
            break;
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventGapP {
    from: Value,
    to: Value,
    #[serde(default)]
    min_ms: Option<f64>,
    #[serde(default)]
    max_ms: Option<f64>,
}

/// On the adapter's clock: from the first event matching `from` to the first event matching
/// `to` after it, within `[min_ms, max_ms]` (e.g. ORDER-4's 5 s gap timeout).
fn event_gap(p: EventGapP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let Some(i) = ctx.events.iter().position(|e| matches(&p.from, &e.v)) else {
        v.fail(format!("no event matches {}", p.from));
        return v;
    };
    let Some(b) = ctx.events[i..].iter().find(|e| matches(&p.to, &e.v)) else {
        v.fail(format!("no event matches {} after {}", p.to, p.from));
        return v;
    };
    let gap = b.t_ms - ctx.events[i].t_ms;
    v.metric("gap_ms", json!(gap));
    v.note(format!("{gap:.1} ms from {} to {}", p.from, p.to));
    if p.min_ms.is_some_and(|m| gap < m) || p.max_ms.is_some_and(|m| gap > m) {
        v.fail(format!(
            "{gap:.1} ms from {} to {}, want [{}, {}]",
            p.from,
            p.to,
            p.min_ms.map_or("-".into(), |m| m.to_string()),
            p.max_ms.map_or("-".into(), |m| m.to_string())
        ));
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntervalsP {
    kind: String,
    #[serde(default)]
    transport: Option<String>,
    after_mark: String,
    #[serde(default)]
    before_mark: Option<String>,
    /// Consecutive entries at least this far apart (minus `granularity_ms`).
    #[serde(default)]
    min_interval_ms: Option<f64>,
    /// The first entry at least this long after `after_mark` (minus `granularity_ms`).
    #[serde(default)]
    first_after_ms: Option<f64>,
    #[serde(default = "d5")]
    granularity_ms: f64,
    #[serde(default)]
    min: Option<usize>,
    #[serde(default)]
    max: Option<usize>,
}

/// Server-observed spacing of log entries between two marks (READY-4: at most one probe per
/// interval, the first not before half an interval).
fn log_intervals(p: IntervalsP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let Some(from) = mark(ctx, &p.after_mark, 0).map(|m| m.at_us) else {
        v.fail(format!("no mark `{}`", p.after_mark));
        return v;
    };
    let until = match &p.before_mark {
        None => u64::MAX,
        Some(m) => match mark(ctx, m, 0) {
            Some(m) => m.at_us,
            None => {
                v.fail(format!("no mark `{m}`"));
                return v;
            }
        },
    };
    let ts: Vec<u64> = ctx
        .log
        .iter()
        .filter(|e| format!("{:?}", e.kind).eq_ignore_ascii_case(&p.kind.replace('_', "")))
        .filter(|e| {
            p.transport
                .as_ref()
                .is_none_or(|t| e.transport.as_ref() == Some(t))
        })
        .filter(|e| e.at_us >= from && e.at_us < until)
        .map(|e| e.at_us)
        .collect();
    let gaps: Vec<f64> = ts.windows(2).map(|w| ms(w[1] - w[0])).collect();
    v.metric("entries", json!(ts.len()));
    v.metric("intervals_ms", json!(gaps));
    v.note(format!(
        "{} {} entries; intervals {:?} ms",
        ts.len(),
        p.kind,
        gaps.iter().map(|g| g.round()).collect::<Vec<_>>()
    ));
    if p.min.is_some_and(|m| ts.len() < m) || p.max.is_some_and(|m| ts.len() > m) {
        v.fail(format!(
            "{} {} entries between the marks, want [{}, {}]",
            ts.len(),
            p.kind,
            p.min.map_or("-".into(), |m| m.to_string()),
            p.max.map_or("-".into(), |m| m.to_string())
        ));
    }
    if let (Some(min), Some(g)) = (p.min_interval_ms, gaps.iter().copied().reduce(f64::min)) {
        if g < min - p.granularity_ms {
            v.fail(format!(
                "two {} entries {g:.1} ms apart, want at least {min} ms",
                p.kind
            ));
        }
    }
    if let (Some(first), Some(t)) = (p.first_after_ms, ts.first()) {
        let d = ms(t - from);
        if d < first - p.granularity_ms {
            v.fail(format!(
                "the first {} entry came {d:.1} ms after `{}`, want at least {first} ms",
                p.kind, p.after_mark
            ));
        }
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MbbP {
    transport: String,
    after_mark: String,
}

/// WIRE-11 / NET-3 / FALLBACK-6 seen from the server: after the mark a new connection opens
/// while the old one is still open, and the old one closes after that.
fn make_before_break(p: MbbP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let Some(from) = mark(ctx, &p.after_mark, 0).map(|m| m.at_us) else {
        v.fail(format!("no mark `{}`", p.after_mark));
        return v;
    };
    let on = |e: &&LogEntry| e.transport.as_deref() == Some(p.transport.as_str());
    let opened = |k: LogKind, c: u64| {
        ctx.log
            .iter()
            .filter(on)
            .find(|e| e.kind == k && e.conn == Some(c))
            .map(|e| e.at_us)
    };
    // The connection open at the mark.
    let old = ctx
        .log
        .iter()
        .filter(on)
        .filter(|e| e.kind == LogKind::Open && e.at_us < from)
        .filter_map(|e| e.conn)
        .rfind(|c| opened(LogKind::Close, *c).is_none_or(|t| t >= from));
    let new = ctx
        .log
        .iter()
        .filter(on)
        .find(|e| e.kind == LogKind::Open && e.at_us >= from);
    let (Some(old), Some(new)) = (old, new) else {
        v.fail(format!(
            "no {} connection open at `{}` and another one opened after it",
            p.transport, p.after_mark
        ));
        return v;
    };
    match opened(LogKind::Close, old) {
        None => v.fail(format!("the old connection {old} was never closed")),
        Some(t) if t < new.at_us => v.fail(format!(
            "the old connection {old} closed {:.1} ms before the new one opened (break before make)",
            ms(new.at_us - t)
        )),
        Some(t) => v.note(format!(
            "connection {} opened, old {old} closed {:.1} ms later",
            new.conn.unwrap_or(0),
            ms(t - new.at_us)
        )),
    }
    v
}

// ---------------------------------------------------------------- invariants

/// Checked on every case: state transitions chain (`from` = previous `to`, STATE-2/3),
/// carry a cause, and the adapter clock never runs backwards.
pub fn invariants(ctx: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev: Option<&str> = None;
    let mut last_t = f64::NEG_INFINITY;
    // A `configure` or `restart` starts a new client: its chain starts afresh.
    let fresh: Vec<usize> = ctx
        .marks
        .iter()
        .filter(|m| m.name == "configure" || m.name == "restart")
        .map(|m| m.trace_index)
        .collect();
    for (i, e) in ctx.events.iter().enumerate() {
        if fresh.iter().any(|&f| f <= i) && e.str("from") == Some("idle") {
            prev = None;
        }
        if e.ty() != "token_requested" {
            if e.t_ms + 1e-6 < last_t {
                out.push(format!("t_ms went backwards ({} < {last_t})", e.t_ms));
                break;
            }
            last_t = e.t_ms;
        }
        if e.ty() != "state" {
            continue;
        }
        let (from, to) = (e.str("from"), e.str("to"));
        if from.is_none() || to.is_none() || e.str("cause").is_none_or(str::is_empty) {
            out.push(format!("state event without from/to/cause: {}", e.v));
            break;
        }
        if let (Some(p), Some(f)) = (prev, from) {
            if p != f {
                out.push(format!(
                    "transition from {f} but the last reported state was {p}"
                ));
                break;
            }
        }
        prev = to;
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BalancerP {
    /// Path suffixes counted (default: the client's `/ws`, `/sse`, `/poll`, `/send`).
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    after_mark: Option<String>,
    #[serde(default)]
    before_mark: Option<String>,
    #[serde(default)]
    handshake: Option<bool>,
    #[serde(default)]
    cursor: Option<bool>,
    /// Statuses counted (default: any).
    #[serde(default)]
    status: Vec<u16>,
    /// Methods counted (default: any), e.g. `OPTIONS` for CORS preflights (WEB-5).
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    tether_error: Option<String>,
    /// Leave out the instances named by the mark `<prefix>_<ids>` (e.g. `kill_instance`).
    #[serde(default)]
    not_instance_of_mark: Option<String>,
    #[serde(default)]
    min: Option<usize>,
    #[serde(default)]
    max: Option<usize>,
    /// At least this many distinct instances served the counted requests.
    #[serde(default)]
    min_instances: Option<usize>,
    /// No two consecutive counted requests were served by the same instance.
    #[serde(default)]
    no_repeat: bool,
    /// The first counted request came at most this long after `after_mark`.
    #[serde(default)]
    within_ms: Option<u64>,
}

/// Cluster cases (ADR-2): the requests the runner's balancer served, which instance served
/// each, and when.
fn balancer(p: BalancerP, ctx: &Ctx) -> Verdict {
    let mut v = Verdict::pass();
    let after = p.after_mark.as_deref().and_then(|m| mark(ctx, m, 0));
    if p.after_mark.is_some() && after.is_none() {
        v.fail(format!("no mark {:?}", p.after_mark));
        return v;
    }
    let before = p
        .before_mark
        .as_deref()
        .and_then(|m| mark(ctx, m, 0))
        .map(|m| m.at_us);
    let excluded: Vec<usize> = p
        .not_instance_of_mark
        .as_deref()
        .and_then(|prefix| {
            ctx.marks
                .iter()
                .find_map(|m| m.name.strip_prefix(&format!("{prefix}_")))
        })
        .map(|ids| ids.split('_').filter_map(|i| i.parse().ok()).collect())
        .unwrap_or_default();
    let paths: Vec<String> = if p.paths.is_empty() {
        ["/ws", "/sse", "/poll", "/send"]
            .map(str::to_owned)
            .to_vec()
    } else {
        p.paths.clone()
    };
    let mut arrived: Vec<&crate::cluster::balancer::Served> = ctx.served.iter().collect();
    // Recorded when answered; counted in arrival order.
    arrived.sort_by_key(|s| s.at_us);
    let counted: Vec<&crate::cluster::balancer::Served> = arrived
        .into_iter()
        .filter(|s| paths.iter().any(|x| s.path.ends_with(x.as_str())))
        .filter(|s| after.is_none_or(|m| s.at_us >= m.at_us))
        .filter(|s| before.is_none_or(|b| s.at_us < b))
        .filter(|s| p.handshake.is_none_or(|h| s.handshake == h))
        .filter(|s| p.cursor.is_none_or(|c| s.cursor == c))
        .filter(|s| p.status.is_empty() || p.status.contains(&s.status))
        .filter(|s| p.methods.is_empty() || p.methods.contains(&s.method))
        .filter(|s| p.tether_error.is_none() || s.tether_error == p.tether_error)
        .filter(|s| s.instance.is_none_or(|i| !excluded.contains(&i)))
        .collect();
    let instances: std::collections::BTreeSet<usize> =
        counted.iter().filter_map(|s| s.instance).collect();
    v.metric("requests", json!(counted.len()));
    v.metric("instances", json!(instances.len()));
    v.details.push(format!(
        "{} requests on instances {:?} (of {} served)",
        counted.len(),
        instances,
        ctx.served.len()
    ));
    if let Some(min) = p.min {
        if counted.len() < min {
            v.fail(format!(
                "{} matching requests, want at least {min}",
                counted.len()
            ));
        }
    }
    if let Some(max) = p.max {
        if counted.len() > max {
            v.fail(format!(
                "{} matching requests, want at most {max}",
                counted.len()
            ));
        }
    }
    if let Some(min) = p.min_instances {
        if instances.len() < min {
            v.fail(format!(
                "requests served by {} instance(s) {instances:?}, want at least {min}",
                instances.len()
            ));
        }
    }
    if p.no_repeat {
        if let Some(w) = counted
            .windows(2)
            .find(|w| w[0].instance.is_some() && w[0].instance == w[1].instance)
        {
            v.fail(format!(
                "two consecutive requests ({} {} then {} {}) on instance {:?}: affinity",
                w[0].method, w[0].path, w[1].method, w[1].path, w[0].instance
            ));
        }
    }
    if let (Some(ms), Some(m)) = (p.within_ms, after) {
        match counted.first() {
            Some(first) => {
                let gap = first.at_us.saturating_sub(m.at_us) / 1000;
                v.metric("first_after_ms", json!(gap));
                if gap > ms {
                    v.fail(format!(
                        "first matching request {gap} ms after the mark, want <= {ms}"
                    ));
                }
            }
            None => v.fail("no matching request after the mark"),
        }
    }
    v.metric(
        "unserved",
        json!(counted.iter().filter(|s| s.instance.is_none()).count()),
    );
    v
}
