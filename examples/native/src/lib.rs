//! tether-examples: shared helpers of the runnable native examples (argument parsing, event printing).

use std::collections::HashMap;
use tether::{ClientEvent, Event, ResetReason, State};

/// `--flag value` pairs from the command line, and bare flags as `"true"`.
pub fn args() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1).peekable();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            let value = match it.peek() {
                Some(v) if !v.starts_with("--") => it.next().unwrap_or_default(),
                _ => "true".to_owned(),
            };
            out.insert(name.to_owned(), value);
        }
    }
    out
}

/// A state in one short phrase, with what matters for a user (attempt, delay, transport).
pub fn describe_state(s: &State) -> String {
    match s {
        State::Idle => "idle".into(),
        State::Connecting { attempt, transport } => {
            format!("connecting over {transport} (attempt {attempt})")
        }
        State::Connected { transport } => format!("connected over {transport}"),
        State::Degraded { transport, reason } => {
            format!("degraded: connected over {transport} ({reason})")
        }
        State::Reconnecting {
            attempt,
            delay,
            cause,
        } => match delay {
            Some(d) => format!(
                "reconnecting in {} ms (attempt {attempt}, {cause})",
                d.as_millis()
            ),
            None => format!("offline, waiting for the network ({cause})"),
        },
        State::Failed { reason } => format!("failed: {reason}"),
        State::Closed => "closed".into(),
    }
}

/// One line for a non-message event, or `None` for events not worth printing.
pub fn describe_event(ev: &ClientEvent) -> Option<String> {
    let t = ev.at.as_secs_f64();
    let line = match &ev.event {
        // A reconnecting state already names its cause.
        Event::StateChanged { to, .. } if matches!(to, State::Reconnecting { .. }) => {
            format!("[{t:8.3}s] state: {}", describe_state(to))
        }
        Event::StateChanged { to, cause, .. } => {
            format!("[{t:8.3}s] state: {} (cause: {cause})", describe_state(to))
        }
        Event::Fallback { from, to, reason } => {
            format!("[{t:8.3}s] transport: {from} -> {to} ({reason})")
        }
        Event::Reset { channel, reason } => {
            let why = if *reason == ResetReason::Gap {
                "missing messages did not arrive in time"
            } else {
                "the server no longer has the messages missed"
            };
            format!("[{t:8.3}s] {channel}: reset ({reason}): {why}; resynchronise")
        }
        Event::Dropped { id, reason } => {
            format!("[{t:8.3}s] message {id} dropped: {reason}")
        }
        Event::Error { code, detail } => format!("[{t:8.3}s] warning {code}: {detail}"),
        _ => return None,
    };
    Some(line)
}
