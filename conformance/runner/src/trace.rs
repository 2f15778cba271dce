//! The event trace of one case: adapter events as received, stamped with the server's clock, and JSON-subset predicates.

use serde_json::Value;
use std::sync::Mutex;
use tokio::sync::Notify;

/// One event from the adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEvent {
    /// The adapter's own clock (`t_ms`).
    pub t_ms: f64,
    /// When the runner received it, on the embedded server's log clock (µs).
    pub recv_us: u64,
    /// The event, as sent (with `type` and `t_ms`).
    pub v: Value,
}

impl TraceEvent {
    /// The event's `type`.
    pub fn ty(&self) -> &str {
        self.v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    /// A string field.
    pub fn str(&self, k: &str) -> Option<&str> {
        self.v.get(k).and_then(Value::as_str)
    }
    /// A numeric field.
    pub fn num(&self, k: &str) -> Option<f64> {
        self.v.get(k).and_then(Value::as_f64)
    }
}

/// The shared, growing trace and a notifier for waiters.
#[derive(Default)]
pub struct TraceBuf {
    events: Mutex<Vec<TraceEvent>>,
    closed: Mutex<Option<String>>,
    pub notify: Notify,
}

impl TraceBuf {
    /// Append an event and wake waiters.
    pub fn push(&self, e: TraceEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
        self.notify.notify_waiters();
    }
    /// Mark the adapter gone (its output ended) and wake waiters.
    pub fn close(&self, why: String) {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        self.notify.notify_waiters();
    }
    /// Why the adapter's output ended, if it did.
    pub fn closed(&self) -> Option<String> {
        self.closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
    /// True when no event arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A copy of the events.
    pub fn snapshot(&self) -> Vec<TraceEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Index after the `count`-th event at or after `from` matching `pred`, if there are that many.
    pub fn find(&self, from: usize, pred: &Value, count: u32) -> Option<usize> {
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        for (i, e) in ev.iter().enumerate().skip(from) {
            if matches(pred, &e.v) {
                n += 1;
                if n >= count {
                    return Some(i + 1);
                }
            }
        }
        None
    }
}

/// True when `value` contains `pattern`: objects match field by field (recursively),
/// numbers by value, everything else by equality. A pattern string starting with `!`
/// matches any value except that string (`"!user_close"`); `"*"` matches any present value.
pub fn matches(pattern: &Value, value: &Value) -> bool {
    match (pattern, value) {
        (Value::Object(p), Value::Object(v)) => p.iter().all(|(k, pv)| match v.get(k) {
            Some(vv) => matches(pv, vv),
            None => pv.is_null(),
        }),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(s), v) if s == "*" => !v.is_null(),
        (Value::String(s), v) if s.starts_with('!') => v.as_str() != Some(&s[1..]),
        (p, v) => p == v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_matching() {
        let v = json!({"type":"state","to":"connected","transport":"websocket","t_ms":3});
        assert!(matches(&json!({"type":"state","to":"connected"}), &v));
        assert!(!matches(&json!({"type":"state","to":"failed"}), &v));
        assert!(matches(&json!({"to":"!failed","transport":"*"}), &v));
        assert!(!matches(&json!({"reason":"*"}), &v));
        assert!(matches(&json!({"t_ms":3.0}), &v));
    }
}
