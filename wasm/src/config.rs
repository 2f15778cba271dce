//! The options the JavaScript layer passes (one JSON object), validated into an engine `Config` and the host's own settings.

use serde_json::{Map, Value};
use tether_engine::{Config, DropPolicy, PolicyWire, TransportKind};

/// Where the outbox and the memo live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Lost with the page.
    Memory,
    /// IndexedDB database `tether:<name>`: survives reloads and crashed tabs.
    IndexedDb { name: String },
}

/// Everything `createClient` was given, checked.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: Config,
    /// The endpoint without query or fragment, no trailing slash.
    pub base: String,
    pub store: StoreKind,
    /// Follow `online` / `offline` / `navigator.connection` events (NET-1..3).
    pub watch_network: bool,
}

/// The fields `createClient`'s JSON may have (anything else is refused):
/// `endpoint`; `transports` (names); `policy` (a `PolicyWire`); `seed` (decimal: a JavaScript
/// number cannot hold every u64); `drop_policy`; `max_frame_bytes`; `store` (`"memory"` or
/// the IndexedDB store name); `watch_network` (default true); `auth` (set by the JavaScript
/// layer when a token provider was given, AUTH-1).
///
/// Read by hand from a parsed `serde_json::Value`, not with a derived `Deserialize`: the
/// engine has the value parser already, and a derived struct parser would add its own code
/// to the browser module for a call made once per client.
const FIELDS: [&str; 9] = [
    "endpoint",
    "transports",
    "policy",
    "seed",
    "drop_policy",
    "max_frame_bytes",
    "store",
    "watch_network",
    "auth",
];

/// A field, `None` when absent or null.
fn field<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.get(name).filter(|v| !v.is_null())
}

fn string<'a>(o: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Invalid> {
    match field(o, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Invalid(format!("{name} must be a string"))),
    }
}

fn boolean(o: &Map<String, Value>, name: &str, default: bool) -> Result<bool, Invalid> {
    match field(o, name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Invalid(format!("{name} must be a boolean"))),
    }
}

/// Why options were refused: always the ERR-1 code `bad_request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

impl Options {
    /// Parse the JSON the JavaScript layer built. `random` is the host's entropy
    /// (`crypto.getRandomValues`): the seed when none is given (BACKOFF-7), and always the
    /// client id's entropy (`Config::id_entropy`, OUTBOX-1), never derived from the seed.
    pub fn parse(json: &str, mut random: impl FnMut() -> u64) -> Result<Options, Invalid> {
        let value: Value = serde_json::from_str(json).map_err(|e| Invalid(e.to_string()))?;
        let Value::Object(o) = value else {
            return Err(Invalid("options must be a JSON object".into()));
        };
        if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Invalid(format!("unknown option {k:?}")));
        }
        let endpoint = string(&o, "endpoint")?.ok_or_else(|| Invalid("no endpoint".into()))?;
        let base = parse_endpoint(endpoint)?;
        let transports = match field(&o, "transports") {
            None => TransportKind::LADDER.to_vec(),
            Some(Value::Array(names)) => {
                let mut ts = Vec::new();
                for n in names {
                    ts.push(
                        n.as_str()
                            .and_then(TransportKind::parse)
                            .ok_or_else(|| Invalid(format!("unknown transport {n}")))?,
                    );
                }
                ts
            }
            Some(_) => return Err(Invalid("transports must be an array".into())),
        };
        if transports.is_empty() {
            return Err(Invalid("at least one transport must be allowed".into()));
        }
        let policy: PolicyWire = match field(&o, "policy") {
            None => PolicyWire::default(),
            Some(p @ Value::Object(_)) => {
                serde_json::from_value(p.clone()).map_err(|e| Invalid(format!("policy: {e}")))?
            }
            Some(_) => return Err(Invalid("policy must be an object".into())),
        };
        validate_policy(&policy)?;
        let drop_policy = match string(&o, "drop_policy")? {
            None | Some("drop_oldest") => DropPolicy::DropOldest,
            Some("reject_new") => DropPolicy::RejectNew,
            Some(other) => return Err(Invalid(format!("unknown drop policy {other:?}"))),
        };
        let defaults = Config::new("");
        let max_frame_bytes = match field(&o, "max_frame_bytes") {
            None => defaults.max_frame_bytes,
            Some(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| Invalid("max_frame_bytes must be a whole number".into()))?,
        };
        if max_frame_bytes < 1024 {
            return Err(Invalid("maxFrameBytes must be at least 1024".into()));
        }
        let seed = match string(&o, "seed")? {
            Some(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| Invalid(format!("seed {s:?} is not an unsigned 64-bit integer")))?,
            None => random(),
        };
        let store = match string(&o, "store")? {
            None | Some("memory") => StoreKind::Memory,
            Some(name) if valid_store_name(name) => StoreKind::IndexedDb {
                name: name.to_owned(),
            },
            Some(name) => {
                return Err(Invalid(format!(
                    "store name {name:?} must be 1..=128 characters of [A-Za-z0-9_.:@-]"
                )))
            }
        };
        // Field by field, so fields the engine gains keep their defaults.
        let mut config = Config::new(endpoint);
        config.transports = transports;
        config.overrides = policy;
        config.drop_policy = drop_policy;
        config.max_frame_bytes = max_frame_bytes;
        config.auth = boolean(&o, "auth", false)?;
        config.seed = seed;
        config.id_entropy = Some(random());
        Ok(Options {
            config,
            base,
            store,
            watch_network: boolean(&o, "watch_network", true)?,
        })
    }
}

fn valid_store_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b))
}

/// The endpoint as a base URL: `http(s)://host[:port]/path`, without query, fragment or
/// trailing slash (WIRE-2 paths are appended to it).
pub fn parse_endpoint(endpoint: &str) -> Result<String, Invalid> {
    let bad = |why: &str| Invalid(format!("invalid endpoint {endpoint:?}: {why}"));
    let e = endpoint.trim();
    let rest = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .ok_or_else(|| bad("the scheme must be http or https"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad("no host"));
    }
    let cut = e.find(['?', '#']).unwrap_or(e.len());
    Ok(e[..cut].trim_end_matches('/').to_owned())
}

/// BACKOFF-9: the engine's rule ([`PolicyWire::validate_overrides`]), as the driver's error.
pub fn validate_policy(p: &PolicyWire) -> Result<(), Invalid> {
    p.validate_overrides().map_err(Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Options, Invalid> {
        Options::parse(json, || 42)
    }

    #[test]
    fn outbox_1_client_id_entropy_is_the_hosts_not_the_seed() {
        let mut draws = [7u64, 9].into_iter();
        let o = Options::parse(r#"{"endpoint":"http://h/t","seed":"42"}"#, || {
            draws.next().unwrap_or(0)
        })
        .unwrap();
        assert_eq!(o.config.seed, 42);
        assert_eq!(
            o.config.id_entropy,
            Some(7),
            "entropy drawn even with a seed"
        );
        let mut draws = [7u64, 9].into_iter();
        let o =
            Options::parse(r#"{"endpoint":"http://h/t"}"#, || draws.next().unwrap_or(0)).unwrap();
        assert_eq!((o.config.seed, o.config.id_entropy), (7, Some(9)));
    }

    #[test]
    fn defaults_and_random_seed() {
        let o = parse(r#"{"endpoint":"https://rt.example.com/tether/?x=1#f"}"#).unwrap();
        assert_eq!(o.base, "https://rt.example.com/tether");
        assert_eq!(o.config.seed, 42);
        assert_eq!(o.config.transports, TransportKind::LADDER.to_vec());
        assert_eq!(o.store, StoreKind::Memory);
        assert!(o.watch_network);
    }

    #[test]
    fn backoff_7_seed_is_taken_exactly() {
        let o = parse(r#"{"endpoint":"http://h:1/t","seed":"18446744073709551615"}"#).unwrap();
        assert_eq!(o.config.seed, u64::MAX);
        assert!(parse(r#"{"endpoint":"http://h:1/t","seed":"-1"}"#).is_err());
    }

    #[test]
    fn backoff_9_overrides_are_validated() {
        let ok = r#"{"endpoint":"http://h/t","policy":{"floor_ms":1,"base_ms":5,"cap_ms":50}}"#;
        assert_eq!(parse(ok).unwrap().config.overrides.base_ms, Some(5.0));
        assert!(parse(r#"{"endpoint":"http://h/t","policy":{"base_ms":10,"cap_ms":5}}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","policy":{"multiplier":0.5}}"#).is_err());
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(r#"{"endpoint":"ftp://h/t"}"#).is_err());
        assert!(parse(r#"{"endpoint":"http:///t"}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","transports":[]}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","transports":["carrier_pigeon"]}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","max_frame_bytes":10}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","store":"a b"}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","bogus":1}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","transports":"sse"}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","max_frame_bytes":2048.5}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","watch_network":"no"}"#).is_err());
        assert!(parse(r#"{"endpoint":"http://h/t","policy":[1]}"#).is_err());
        assert!(parse(r#"{"transports":["sse"]}"#).is_err());
        assert!(parse(r#"[]"#).is_err());
    }

    #[test]
    fn indexeddb_store_and_reject_new() {
        let o = parse(
            r#"{"endpoint":"http://h/t","store":"chat:main","drop_policy":"reject_new","transports":["sse","websocket"]}"#,
        )
        .unwrap();
        assert_eq!(
            o.store,
            StoreKind::IndexedDb {
                name: "chat:main".into()
            }
        );
        assert_eq!(o.config.drop_policy, DropPolicy::RejectNew);
        assert_eq!(
            o.config.transports,
            vec![TransportKind::Sse, TransportKind::WebSocket]
        );
    }
}
