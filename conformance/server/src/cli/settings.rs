//! Every setting of the `tether-server` binary, from three sources: a TOML file, `TETHER_*` environment variables, and `--flags` (later ones win); `--help` is generated from the same table.

use std::collections::BTreeMap;
use std::fmt::Write;

/// How a setting's value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    /// A secret: never printed (AUTH-4).
    Secret,
    Int,
    Float,
    /// `A,B` (integers).
    Pair,
    /// Comma-separated strings (TOML: an array).
    List,
    /// Comma-separated secrets.
    SecretList,
    Path,
    /// A JSON object (TOML: a string holding it).
    Json,
}

pub(crate) struct Setting {
    pub key: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

const fn s(key: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        kind,
        default,
        help,
    }
}

use Kind::*;

/// The table, in `--help` order, by section.
pub(crate) const SECTIONS: &[(&str, &[Setting])] = &[
    (
        "Listening",
        &[
            s(
                "listen",
                Str,
                "127.0.0.1:8787",
                "address to listen on (0.0.0.0:8787 for every interface)",
            ),
            s(
                "base_path",
                Str,
                "/tether",
                "path of the endpoints: /ws /sse /poll /send /ready /publish",
            ),
            s("server_id", Str, "random", "the hello's server_id"),
            s(
                "tls_cert",
                Path,
                "",
                "PEM certificate chain: serve HTTPS/WSS (with tls_key)",
            ),
            s("tls_key", Path, "", "PEM private key of tls_cert"),
            s(
                "allowed_origins",
                List,
                "any",
                "origins whose pages may read answers, e.g. https://app.example (WEB-1)",
            ),
            s(
                "metrics_path",
                Str,
                "/metrics",
                "Prometheus metrics path, outside base_path (empty: off)",
            ),
        ],
    ),
    (
        "Store (ADR-2)",
        &[
            s(
                "store",
                Str,
                "memory",
                "`memory` (one instance) or `redis` (any number of instances)",
            ),
            s(
                "redis_url",
                Secret,
                "redis://127.0.0.1:6379/",
                "redis://[:password@]host:port[/db]",
            ),
            s(
                "redis_prefix",
                Str,
                "tether",
                "prefix of every Redis key (deployments can share a Redis)",
            ),
            s(
                "ring_capacity",
                Int,
                "1024",
                "messages kept per channel for replay (RESUME-3)",
            ),
            s(
                "max_channels",
                Int,
                "100000",
                "most channels the store creates",
            ),
            s(
                "max_channels_per_connection",
                Int,
                "256",
                "most channels one connection subscribes to",
            ),
            s(
                "dedupe_ttl_s",
                Int,
                "600",
                "how long publish ids are remembered (OUTBOX-5: >= 600)",
            ),
            s(
                "dedupe_capacity",
                Int,
                "100000",
                "most publish ids remembered (the memory bound)",
            ),
        ],
    ),
    (
        "Protocol",
        &[
            s(
                "heartbeat_ms",
                Int,
                "15000",
                "ping / SSE comment interval and longest poll hold (HEARTBEAT-1)",
            ),
            s("poll_hold_ms", Int, "25000", "longest long-poll hold"),
            s(
                "max_frame_bytes",
                Int,
                "1048576",
                "largest inbound frame (LIMIT-1)",
            ),
            s(
                "policy",
                Json,
                "",
                "policy announced in the hello, e.g. {\"base_ms\":2000} (ADR-3)",
            ),
            s(
                "ready_window_ms",
                Pair,
                "0,5000",
                "window_ms of GET /ready (READY-4)",
            ),
            s(
                "admission_per_sec",
                Float,
                "",
                "handshakes admitted per second; over it 503 retry_later (READY-1)",
            ),
            s(
                "admission_burst",
                Float,
                "",
                "token-bucket burst (default: admission_per_sec)",
            ),
        ],
    ),
    (
        "Drain (SIGTERM, DRAIN-3)",
        &[
            s(
                "drain_window_ms",
                Pair,
                "0,10000",
                "on SIGTERM every client is told to reconnect in this window",
            ),
            s(
                "drain_grace_ms",
                Int,
                "2000",
                "after the window, longest wait for connections to close before exit",
            ),
        ],
    ),
    (
        "Client authentication (AUTH-3, AUTH-5)",
        &[
            s(
                "tokens",
                SecretList,
                "",
                "accepted bearer tokens (static list; empty: no token needed)",
            ),
            s(
                "forbidden_tokens",
                SecretList,
                "",
                "tokens refused with 403 forbidden",
            ),
            s(
                "jwt_hs256_secret",
                Secret,
                "",
                "verify HS256 JWTs with this secret (>= 32 bytes)",
            ),
            s(
                "jwt_hs256_secret_file",
                Path,
                "",
                "... or with the secret in this file",
            ),
            s(
                "jwt_rs256_public_key_file",
                Path,
                "",
                "verify RS256 JWTs with this PEM public key",
            ),
            s("jwt_issuer", Str, "", "required iss"),
            s("jwt_audience", Str, "", "required aud"),
            s(
                "jwt_leeway_s",
                Int,
                "5",
                "clock skew tolerated on exp / nbf",
            ),
            s(
                "jwt_channels_claim",
                Str,
                "channels",
                "claim listing subscribe patterns (chat, news:*, *)",
            ),
            s(
                "jwt_publish_claim",
                Str,
                "publish",
                "claim listing publish patterns",
            ),
        ],
    ),
    (
        "Backend publish API (POST {base_path}/publish)",
        &[
            s(
                "publish_keys",
                SecretList,
                "",
                "server API keys (>= 16 chars); empty: the API is off",
            ),
            s(
                "publish_keys_file",
                Path,
                "",
                "... or one key per line in this file",
            ),
        ],
    ),
    (
        "Testing and operations",
        &[
            s(
                "admin_key",
                Secret,
                "",
                "enables {base_path}/_admin/* (faults, drain, close) for this bearer key",
            ),
            s(
                "faults",
                Path,
                "",
                "JSON file of fault rules applied at start (conformance/server/README.md)",
            ),
            s(
                "tick",
                List,
                "",
                "CHANNEL:MS,... publish {\"tick\": n} on CHANNEL every MS (demo traffic)",
            ),
            s(
                "log_json",
                Path,
                "",
                "write the observation log to this file at exit",
            ),
            s(
                "log_capacity",
                Int,
                "0",
                "entries kept by the observation log of every request and frame (testing aid; 0: off)",
            ),
            s(
                "control",
                Str,
                "",
                "stdio: driven over JSON lines on stdin/stdout, the log streamed out, exit when stdin ends (conformance runner; tether_server::control)",
            ),
        ],
    ),
];

/// Look a setting up.
pub(crate) fn find(key: &str) -> Option<&'static Setting> {
    SECTIONS
        .iter()
        .flat_map(|(_, t)| t.iter())
        .find(|s| s.key == key)
}

/// The environment variable of a key.
pub(crate) fn env_name(key: &str) -> String {
    format!("TETHER_{}", key.to_ascii_uppercase())
}

/// The flag of a key.
pub(crate) fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// Where a value came from (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    File(String),
    Env,
    Flag,
}

/// The raw values, as strings, keyed by setting; later sources replace earlier ones.
#[derive(Debug, Default)]
pub(crate) struct Raw {
    pub values: BTreeMap<&'static str, (String, Source)>,
}

impl Raw {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|(v, _)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Merge a TOML document.
    pub fn file(&mut self, path: &str, text: &str) -> Result<(), String> {
        let table: toml::Table = text.parse().map_err(|e| format!("{path}: {e}"))?;
        for (k, v) in table {
            let s =
                find(&k).ok_or_else(|| format!("{path}: unknown setting `{k}` (see --help)"))?;
            let text = match (&v, s.kind) {
                (toml::Value::String(x), _) => x.clone(),
                (toml::Value::Integer(i), Int | Float) => i.to_string(),
                (toml::Value::Float(f), Float) => f.to_string(),
                (toml::Value::Array(a), List | SecretList | Pair) => a
                    .iter()
                    .map(|x| match x {
                        toml::Value::String(s) => Ok(s.clone()),
                        toml::Value::Integer(i) => Ok(i.to_string()),
                        _ => Err(format!(
                            "{path}: `{k}` must be an array of strings or integers"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                _ => return Err(format!("{path}: `{k}` has the wrong type")),
            };
            self.values
                .insert(s.key, (text, Source::File(path.to_owned())));
        }
        Ok(())
    }

    /// Merge `TETHER_*` variables from `vars`.
    pub fn env(&mut self, vars: impl Iterator<Item = (String, String)>) {
        let vars: BTreeMap<String, String> = vars.collect();
        for (_, table) in SECTIONS {
            for s in *table {
                if let Some(v) = vars.get(&env_name(s.key)) {
                    self.values.insert(s.key, (v.clone(), Source::Env));
                }
            }
        }
    }

    /// Set from a flag.
    pub fn flag(&mut self, key: &'static str, value: String) {
        self.values.insert(key, (value, Source::Flag));
    }

    /// Say where a key's value came from, for an error message (never the value).
    pub fn origin(&self, key: &str) -> String {
        match self.values.get(key).map(|(_, s)| s) {
            Some(Source::File(p)) => format!("`{key}` in {p}"),
            Some(Source::Env) => env_name(key),
            Some(Source::Flag) => flag_name(key),
            None => format!("`{key}`"),
        }
    }
}

/// The `--help` text.
pub(crate) fn help() -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "tether-server: the server half of the Tether contract (SPEC.md)

USAGE:
  tether-server [--config FILE.toml] [--SETTING VALUE]...

Every setting can come from the TOML file (key = value), from the environment
(TETHER_KEY) or from a flag (--key-name value); a flag beats the environment, which
beats the file. The file is --config FILE or TETHER_CONFIG. Lists are TOML arrays or
comma-separated; pairs are [A, B] or A,B. Secrets are never printed or logged.
SIGTERM (or Ctrl-C) drains: every client is told to reconnect within drain_window_ms
(to the other instances), new handshakes get 503 draining, then the process exits.
"
    );
    for (title, table) in SECTIONS {
        let _ = writeln!(o, "{title}:");
        for st in *table {
            let d = if st.default.is_empty() {
                String::new()
            } else {
                format!(" [default: {}]", st.default)
            };
            let _ = writeln!(o, "  {:<32} {}", flag_name(st.key), env_name(st.key));
            let _ = writeln!(o, "      {}{d}", st.help);
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "EXAMPLES:
  tether-server --listen 0.0.0.0:8787 --store redis --redis-url redis://10.0.0.5:6379/
  TETHER_JWT_HS256_SECRET=... TETHER_PUBLISH_KEYS=... tether-server --config /etc/tether.toml
  curl -H 'Authorization: Bearer KEY' -d '{{\"channel\":\"chat\",\"data\":{{\"t\":\"hi\"}},\"id\":\"m-1\"}}' \\
       http://127.0.0.1:8787/tether/publish"
    );
    let _ = writeln!(o);
    o.push_str(include_str!("faults_help.txt"));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_win_and_unknown_keys_are_refused() {
        let mut r = Raw::default();
        r.file("t.toml", "listen = \"0.0.0.0:1\"\nheartbeat_ms = 5000\ntokens = [\"a\", \"b\"]\nready_window_ms = [1, 2]\n")
            .expect("file");
        assert_eq!(r.get("tokens"), Some("a,b"));
        assert_eq!(r.get("ready_window_ms"), Some("1,2"));
        r.env([("TETHER_HEARTBEAT_MS".to_owned(), "7000".to_owned())].into_iter());
        assert_eq!(r.get("heartbeat_ms"), Some("7000"));
        r.flag("heartbeat_ms", "9000".into());
        assert_eq!(r.get("heartbeat_ms"), Some("9000"));
        assert_eq!(r.get("listen"), Some("0.0.0.0:1"));
        assert!(r.file("t.toml", "nope = 1").is_err());
        assert!(r.file("t.toml", "heartbeat_ms = true").is_err());
    }

    #[test]
    fn help_documents_every_setting() {
        let h = help();
        for (_, t) in SECTIONS {
            for s in *t {
                assert!(h.contains(&flag_name(s.key)), "{}", s.key);
                assert!(h.contains(&env_name(s.key)), "{}", s.key);
            }
        }
    }
}
