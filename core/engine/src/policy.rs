//! The reconnection policy: defaults, server-announced values clamped to safe bounds, app overrides (SPEC BACKOFF-2, -8, -9).

use core::time::Duration;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// What the outbox does when a publish would exceed its count or byte limit (SPEC OUTBOX-6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// Drop the oldest queued publishes to make room (default).
    #[default]
    DropOldest,
    /// Refuse the new publish with `outbox_full`.
    RejectNew,
}

/// The effective policy the engine runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub floor: Duration,
    pub base: Duration,
    pub cap: Duration,
    pub multiplier: f64,
    pub max_attempts: Option<u32>,
    pub max_elapsed: Option<Duration>,
    pub heartbeat: Duration,
    pub heartbeat_grace: Duration,
    pub open_timeout: Duration,
    pub poll_hold: Duration,
    pub probe_interval: Duration,
    pub upgrade_after: Duration,
    pub outbox_max_count: usize,
    pub outbox_max_bytes: usize,
    pub outbox_max_age: Duration,
    pub drop_policy: DropPolicy,
    pub max_frame_bytes: usize,
    pub max_in_flight: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            floor: Duration::from_millis(100),
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            multiplier: 2.0,
            max_attempts: None,
            max_elapsed: None,
            heartbeat: Duration::from_secs(15),
            heartbeat_grace: Duration::from_secs(10),
            open_timeout: Duration::from_secs(10),
            poll_hold: Duration::from_secs(25),
            probe_interval: Duration::from_secs(5),
            upgrade_after: Duration::from_secs(300),
            outbox_max_count: 1000,
            outbox_max_bytes: 4 * 1024 * 1024,
            outbox_max_age: Duration::from_secs(3600),
            drop_policy: DropPolicy::DropOldest,
            max_frame_bytes: 1024 * 1024,
            max_in_flight: 256,
        }
    }
}

/// Policy fields as they travel on the wire (hello `policy`) and in app overrides.
/// Every field is optional: absent means "keep the current value".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyWire {
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub floor_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub base_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub cap_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub multiplier: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub max_attempts: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub max_elapsed_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub heartbeat_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub heartbeat_grace_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub open_timeout_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub poll_hold_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub probe_interval_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub upgrade_after_ms: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub outbox_max_count: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub outbox_max_bytes: Option<f64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_number"
    )]
    pub outbox_max_age_ms: Option<f64>,
}

/// A policy value: a JSON number, anything else reads as absent (BACKOFF-8: absent or
/// non-numeric values keep the current value; they do not make the hello malformed).
fn lenient_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Value::deserialize(d)?.as_f64())
}

/// A hello `policy` that is not an object reads as absent (BACKOFF-8).
pub(crate) fn lenient_policy<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Box<PolicyWire>>, D::Error> {
    // Only an object: serde would also read a struct from an array, by position.
    match Value::deserialize(d)? {
        v @ Value::Object(_) => Ok(serde_json::from_value::<PolicyWire>(v).ok().map(Box::new)),
        _ => Ok(None),
    }
}

/// One value the engine replaced with a bound (reported as `policy_clamped`).
#[derive(Clone, Debug, PartialEq)]
pub struct Clamp {
    pub field: &'static str,
    pub requested: f64,
    pub applied: f64,
}

/// The safe bounds for server-announced values (SPEC BACKOFF-8): `(field, min, max)`.
pub const BOUNDS: [(&str, f64, f64); 14] = [
    ("floor_ms", 100.0, 10_000.0),
    ("base_ms", 100.0, 60_000.0),
    ("cap_ms", 1_000.0, 600_000.0),
    ("multiplier", 1.0, 10.0),
    ("max_attempts", 1.0, 1_000_000.0),
    ("heartbeat_ms", 1_000.0, 300_000.0),
    ("heartbeat_grace_ms", 1_000.0, 120_000.0),
    ("open_timeout_ms", 1_000.0, 120_000.0),
    ("poll_hold_ms", 1_000.0, 120_000.0),
    ("probe_interval_ms", 1_000.0, 3_600_000.0),
    ("upgrade_after_ms", 10_000.0, 86_400_000.0),
    ("outbox_max_count", 1.0, 100_000.0),
    ("outbox_max_bytes", 1_024.0, 67_108_864.0),
    ("outbox_max_age_ms", 1_000.0, 604_800_000.0),
];

/// Bounds for `max_elapsed_ms`, which the table leaves to the app; servers get 1 s .. 30 days.
const MAX_ELAPSED_BOUNDS: (f64, f64) = (1_000.0, 2_592_000_000.0);

fn bound(field: &str) -> (f64, f64) {
    BOUNDS
        .iter()
        .find(|(f, _, _)| *f == field)
        .map(|(_, lo, hi)| (*lo, *hi))
        .unwrap_or(MAX_ELAPSED_BOUNDS)
}

/// A duration in milliseconds, applied at microsecond resolution (BACKOFF-10: a number read
/// back from the memo one ulp away from the one written still applies as the same duration).
fn ms(v: f64) -> Duration {
    Duration::from_micros((v.max(0.0) * 1000.0).round() as u64)
}

/// The multiplier, applied at a resolution of 10^-6 (BACKOFF-10, like [`ms`]).
fn multiplier(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// How a policy source is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trust {
    /// The server: clamp to BOUNDS.
    Server,
    /// The application itself: validate only (BACKOFF-9).
    App,
}

impl Policy {
    /// Apply server-announced values, clamped to BOUNDS (SPEC BACKOFF-8).
    /// Returns the clamps made, for `policy_clamped` reporting.
    pub fn apply_server(&mut self, wire: &PolicyWire) -> Vec<Clamp> {
        self.apply(wire, Trust::Server)
    }

    /// Apply the app's own overrides: validated, not clamped (SPEC BACKOFF-9).
    pub fn apply_app(&mut self, wire: &PolicyWire) -> Vec<Clamp> {
        self.apply(wire, Trust::App)
    }

    fn apply(&mut self, wire: &PolicyWire, trust: Trust) -> Vec<Clamp> {
        let mut clamps = Vec::new();
        let mut take =
            |field: &'static str, v: Option<f64>, app_min: f64, app_max: f64| -> Option<f64> {
                let v = v?;
                if !v.is_finite() {
                    return None;
                }
                let (lo, hi) = match trust {
                    Trust::Server => bound(field),
                    Trust::App => (app_min, app_max),
                };
                let applied = v.clamp(lo, hi);
                if applied != v {
                    clamps.push(Clamp {
                        field,
                        requested: v,
                        applied,
                    });
                }
                Some(applied)
            };
        const DAY_MS: f64 = 86_400_000.0;
        if let Some(v) = take("floor_ms", wire.floor_ms, 1.0, 600_000.0) {
            self.floor = ms(v);
        }
        if let Some(v) = take("base_ms", wire.base_ms, 1.0, 600_000.0) {
            self.base = ms(v);
        }
        if let Some(v) = take("cap_ms", wire.cap_ms, 1.0, DAY_MS) {
            self.cap = ms(v);
        }
        if let Some(v) = take("multiplier", wire.multiplier, 1.0, 10.0) {
            self.multiplier = multiplier(v);
        }
        if let Some(v) = take("max_attempts", wire.max_attempts, 1.0, u32::MAX as f64) {
            self.max_attempts = Some(v as u32);
        }
        if let Some(v) = take("max_elapsed_ms", wire.max_elapsed_ms, 1.0, 365.0 * DAY_MS) {
            self.max_elapsed = Some(ms(v));
        }
        if let Some(v) = take("heartbeat_ms", wire.heartbeat_ms, 1.0, DAY_MS) {
            self.heartbeat = ms(v);
        }
        if let Some(v) = take("heartbeat_grace_ms", wire.heartbeat_grace_ms, 1.0, DAY_MS) {
            self.heartbeat_grace = ms(v);
        }
        if let Some(v) = take("open_timeout_ms", wire.open_timeout_ms, 1.0, DAY_MS) {
            self.open_timeout = ms(v);
        }
        if let Some(v) = take("poll_hold_ms", wire.poll_hold_ms, 1.0, DAY_MS) {
            self.poll_hold = ms(v);
        }
        if let Some(v) = take("probe_interval_ms", wire.probe_interval_ms, 1.0, DAY_MS) {
            self.probe_interval = ms(v);
        }
        if let Some(v) = take(
            "upgrade_after_ms",
            wire.upgrade_after_ms,
            1.0,
            30.0 * DAY_MS,
        ) {
            self.upgrade_after = ms(v);
        }
        if let Some(v) = take("outbox_max_count", wire.outbox_max_count, 1.0, 10_000_000.0) {
            self.outbox_max_count = v as usize;
        }
        if let Some(v) = take("outbox_max_bytes", wire.outbox_max_bytes, 1.0, 1e12) {
            self.outbox_max_bytes = v as usize;
        }
        if let Some(v) = take(
            "outbox_max_age_ms",
            wire.outbox_max_age_ms,
            1.0,
            3650.0 * DAY_MS,
        ) {
            self.outbox_max_age = ms(v);
        }
        // Invariants after clamping (BACKOFF-8): base >= floor, cap >= base.
        if self.base < self.floor {
            self.base = self.floor;
        }
        if self.cap < self.base {
            self.cap = self.base;
        }
        clamps
    }

    /// The policy as wire fields (what the memo stores, BACKOFF-10).
    pub fn to_wire(&self) -> PolicyWire {
        let f = |d: Duration| Some(d.as_secs_f64() * 1000.0);
        PolicyWire {
            floor_ms: f(self.floor),
            base_ms: f(self.base),
            cap_ms: f(self.cap),
            multiplier: Some(self.multiplier),
            max_attempts: self.max_attempts.map(f64::from),
            max_elapsed_ms: self.max_elapsed.and_then(f),
            heartbeat_ms: f(self.heartbeat),
            heartbeat_grace_ms: f(self.heartbeat_grace),
            open_timeout_ms: f(self.open_timeout),
            poll_hold_ms: f(self.poll_hold),
            probe_interval_ms: f(self.probe_interval),
            upgrade_after_ms: f(self.upgrade_after),
            outbox_max_count: Some(self.outbox_max_count as f64),
            outbox_max_bytes: Some(self.outbox_max_bytes as f64),
            outbox_max_age_ms: f(self.outbox_max_age),
        }
    }
}

impl PolicyWire {
    /// BACKOFF-9: an app's overrides are validated, not clamped (the server's policy is
    /// clamped, BACKOFF-8): every field finite and non-negative, `floor_ms >= 1`,
    /// `base_ms >= floor_ms`, `cap_ms >= base_ms`, `multiplier` within `[1, 10]`. Every host
    /// refuses a policy this rejects, with the message as its detail (`bad_request`).
    pub fn validate_overrides(&self) -> Result<(), String> {
        let fields = [
            ("floor_ms", self.floor_ms),
            ("base_ms", self.base_ms),
            ("cap_ms", self.cap_ms),
            ("multiplier", self.multiplier),
            ("max_attempts", self.max_attempts),
            ("max_elapsed_ms", self.max_elapsed_ms),
            ("heartbeat_ms", self.heartbeat_ms),
            ("heartbeat_grace_ms", self.heartbeat_grace_ms),
            ("open_timeout_ms", self.open_timeout_ms),
            ("poll_hold_ms", self.poll_hold_ms),
            ("probe_interval_ms", self.probe_interval_ms),
            ("upgrade_after_ms", self.upgrade_after_ms),
            ("outbox_max_count", self.outbox_max_count),
            ("outbox_max_bytes", self.outbox_max_bytes),
            ("outbox_max_age_ms", self.outbox_max_age_ms),
        ];
        for (name, v) in fields {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(format!("{name} must be a finite, non-negative number"));
            }
        }
        if self.floor_ms.is_some_and(|f| f < 1.0) {
            return Err("floor_ms must be at least 1".into());
        }
        if self.multiplier.is_some_and(|m| !(1.0..=10.0).contains(&m)) {
            return Err("multiplier must be within [1, 10]".into());
        }
        if let (Some(f), Some(b)) = (self.floor_ms, self.base_ms) {
            if b < f {
                return Err("base_ms must be >= floor_ms".into());
            }
        }
        if let (Some(b), Some(c)) = (self.base_ms, self.cap_ms) {
            if c < b {
                return Err("cap_ms must be >= base_ms".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn backoff_10_memo_numbers_read_back_bit_for_bit() {
        // Found by the policy fuzz target: a multiplier written with more digits than an f64
        // holds was read back from the memo one ulp away (serde_json's float parsing is not
        // exact); applied at 10^-6 (and durations at 1 us) the ulp no longer matters.
        let hello =
            r#"{"multiplier":1.3333333333333333333333333333335,"base_ms":1234.56712345678901}"#;
        let wire: PolicyWire = serde_json::from_str(hello).unwrap();
        let mut announced = super::Policy::default();
        announced.apply_server(&wire);
        let memo = serde_json::to_string(&announced.to_wire()).unwrap();
        let back: PolicyWire = serde_json::from_str(&memo).unwrap();
        let mut restarted = super::Policy::default();
        restarted.apply_server(&back);
        assert_eq!(
            restarted.multiplier.to_bits(),
            announced.multiplier.to_bits()
        );
        assert_eq!(restarted, announced);
        assert_eq!(announced.multiplier, 1.333333);
        assert_eq!(announced.base, super::Duration::from_micros(1_234_567));
    }

    #[test]
    fn backoff_9_overrides_are_validated_not_clamped() {
        let ok = PolicyWire {
            floor_ms: Some(1.0),
            base_ms: Some(5.0),
            cap_ms: Some(50.0),
            multiplier: Some(10.0),
            ..PolicyWire::default()
        };
        assert_eq!(ok.validate_overrides(), Ok(()));
        assert_eq!(PolicyWire::default().validate_overrides(), Ok(()));
        for (bad, why) in [
            (
                PolicyWire {
                    floor_ms: Some(0.5),
                    ..PolicyWire::default()
                },
                "floor_ms",
            ),
            (
                PolicyWire {
                    base_ms: Some(10.0),
                    cap_ms: Some(5.0),
                    ..PolicyWire::default()
                },
                "cap_ms",
            ),
            (
                PolicyWire {
                    floor_ms: Some(20.0),
                    base_ms: Some(10.0),
                    ..PolicyWire::default()
                },
                "base_ms",
            ),
            (
                PolicyWire {
                    multiplier: Some(0.5),
                    ..PolicyWire::default()
                },
                "multiplier",
            ),
            (
                PolicyWire {
                    multiplier: Some(11.0),
                    ..PolicyWire::default()
                },
                "multiplier",
            ),
            (
                PolicyWire {
                    open_timeout_ms: Some(f64::NAN),
                    ..PolicyWire::default()
                },
                "open_timeout_ms",
            ),
            (
                PolicyWire {
                    outbox_max_count: Some(-1.0),
                    ..PolicyWire::default()
                },
                "outbox_max_count",
            ),
        ] {
            let e = bad.validate_overrides().expect_err(why);
            assert!(e.starts_with(why), "{why}: {e}");
        }
    }

    use super::*;

    #[test]
    fn backoff_2_defaults() {
        let p = Policy::default();
        assert_eq!(p.base, Duration::from_secs(1));
        assert_eq!(p.multiplier, 2.0);
        assert_eq!(p.cap, Duration::from_secs(30));
        assert_eq!(p.floor, Duration::from_millis(100));
    }

    #[test]
    fn backoff_8_hostile_server_policy_is_clamped() {
        let mut p = Policy::default();
        let wire = PolicyWire {
            floor_ms: Some(0.0),
            base_ms: Some(1.0),
            cap_ms: Some(-5.0),
            multiplier: Some(1e9),
            heartbeat_ms: Some(1.0),
            outbox_max_count: Some(1e12),
            open_timeout_ms: Some(f64::NAN),
            ..Default::default()
        };
        let clamps = p.apply_server(&wire);
        assert_eq!(p.floor, Duration::from_millis(100));
        assert_eq!(p.base, Duration::from_millis(100));
        assert_eq!(p.cap, Duration::from_secs(1));
        assert_eq!(p.multiplier, 10.0);
        assert_eq!(p.heartbeat, Duration::from_secs(1));
        assert_eq!(p.outbox_max_count, 100_000);
        assert_eq!(
            p.open_timeout,
            Duration::from_secs(10),
            "NaN keeps the current value"
        );
        assert_eq!(clamps.len(), 6);
    }

    #[test]
    fn backoff_8_policy_that_is_not_an_object_reads_as_absent() {
        // Found by fuzzing (core/fuzz, target `policy`): serde reads a struct from a JSON
        // array by position, so `[5000, 20000]` used to apply as floor 5 s, base 20 s.
        use crate::frame::ServerFrame;
        for policy in [
            "[]",
            "[5000, 20000]",
            "[null]",
            "7",
            "\"x\"",
            "true",
            "null",
        ] {
            let hello = format!(r#"{{"type":"hello","v":1,"policy":{policy}}}"#);
            match ServerFrame::decode(&hello, 1 << 20) {
                Ok(ServerFrame::Hello { policy: p, .. }) => assert_eq!(p, None, "{policy}"),
                other => panic!("{policy}: {other:?}"),
            }
        }
        let hello = r#"{"type":"hello","v":1,"policy":{"base_ms":2000,"cap_ms":[1]}}"#;
        match ServerFrame::decode(hello, 1 << 20) {
            Ok(ServerFrame::Hello {
                policy: Some(p), ..
            }) => {
                assert_eq!(p.base_ms, Some(2000.0));
                assert_eq!(p.cap_ms, None, "a non-numeric value is absent");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_9_app_overrides_may_be_fast_but_stay_valid() {
        let mut p = Policy::default();
        p.apply_app(&PolicyWire {
            floor_ms: Some(1.0),
            base_ms: Some(5.0),
            cap_ms: Some(2.0),
            multiplier: Some(0.5),
            ..Default::default()
        });
        assert_eq!(p.floor, Duration::from_millis(1));
        assert_eq!(p.base, Duration::from_millis(5));
        assert_eq!(p.cap, Duration::from_millis(5), "cap raised to base");
        assert_eq!(p.multiplier, 1.0);
    }
}
