//! Client authentication (AUTH-3, AUTH-5): the `Authenticator` trait (token -> identity + channel permissions), and the static token lists the faults drive (AUTH-2).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Missing, unknown, invalid or expired: 401 `auth_expired` (the client fetches a fresh
    /// token and retries, AUTH-2).
    Expired,
    /// Forbidden: 403 `forbidden` (terminal, CONN-5).
    Forbidden,
}

/// Channel names a token may use: `*` (every channel), `prefix*` (every channel starting
/// with `prefix`), or an exact name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelRules {
    patterns: Vec<String>,
}

impl ChannelRules {
    /// Every channel.
    pub fn any() -> ChannelRules {
        ChannelRules {
            patterns: vec!["*".into()],
        }
    }

    /// No channel.
    pub fn none() -> ChannelRules {
        ChannelRules::default()
    }

    /// These patterns.
    pub fn of<I, S>(patterns: I) -> ChannelRules
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ChannelRules {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }

    /// True when `channel` matches a pattern.
    pub fn allows(&self, channel: &str) -> bool {
        self.patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => channel.starts_with(prefix),
            None => p == channel,
        })
    }
}

/// Who a token belongs to and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The subject (`sub`), if the token names one. Never the token itself.
    pub subject: Option<String>,
    /// Channels it may subscribe to (checked on the handshake and on every `subscribe`).
    pub subscribe: ChannelRules,
    /// Channels it may publish to.
    pub publish: ChannelRules,
    /// When the token stops being valid: live connections using it are then told
    /// `auth_expired` (WebSocket close 4001, SSE end, held poll 401).
    pub expires_at: Option<SystemTime>,
}

impl Identity {
    /// No subject, every channel, no expiry (what a server without authentication grants).
    pub fn anonymous() -> Identity {
        Identity {
            subject: None,
            subscribe: ChannelRules::any(),
            publish: ChannelRules::any(),
            expires_at: None,
        }
    }
}

/// Verifies client tokens: `Authorization: Bearer` or the `access_token` query parameter
/// (AUTH-3). Called on every handshake and long-poll request, on every WebSocket
/// `subscribe` and publish, and must therefore be fast and never block: keep lookups in
/// memory. Implementations must not put the token in errors or logs (AUTH-4).
pub trait Authenticator: Send + Sync + 'static {
    /// The identity of `token` (`None`: the request carried no token).
    fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthRefusal>;
}

/// An [`Authenticator`] as a [`ServerConfig`](crate::ServerConfig) holds it.
#[derive(Clone)]
pub struct SharedAuthenticator(pub Arc<dyn Authenticator>);

impl SharedAuthenticator {
    /// Wrap an authenticator.
    pub fn new(a: impl Authenticator) -> SharedAuthenticator {
        SharedAuthenticator(Arc::new(a))
    }
}

impl std::fmt::Debug for SharedAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

/// The server's static token state: the configured token list, and the expired and
/// forbidden tokens set at runtime (faults, operators).
#[derive(Clone, Debug, Default)]
pub struct AuthState {
    /// When true, only tokens of `valid` are accepted.
    pub required: bool,
    /// Accepted tokens (when `required`).
    pub valid: HashSet<String>,
    /// Tokens expired at runtime: refused with 401 even when tokens are not required.
    pub expired: HashSet<String>,
    /// Tokens refused with 403.
    pub forbidden: HashSet<String>,
}

impl AuthState {
    /// Check a request's token against the lists only.
    pub fn check(&self, token: Option<&str>) -> Result<(), AuthRefusal> {
        self.overrides(token)?;
        if !self.required {
            return Ok(());
        }
        match token {
            Some(t) if self.valid.contains(t) => Ok(()),
            _ => Err(AuthRefusal::Expired),
        }
    }

    /// The runtime lists, which win over any authenticator.
    pub fn overrides(&self, token: Option<&str>) -> Result<(), AuthRefusal> {
        if let Some(t) = token {
            if self.forbidden.contains(t) {
                return Err(AuthRefusal::Forbidden);
            }
            if self.expired.contains(t) {
                return Err(AuthRefusal::Expired);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_states() {
        let mut a = AuthState::default();
        assert_eq!(a.check(None), Ok(()));
        a.required = true;
        a.valid.insert("good".into());
        a.forbidden.insert("bad".into());
        assert_eq!(a.check(None), Err(AuthRefusal::Expired));
        assert_eq!(a.check(Some("good")), Ok(()));
        assert_eq!(a.check(Some("bad")), Err(AuthRefusal::Forbidden));
        a.valid.remove("good");
        a.expired.insert("good".into());
        assert_eq!(a.check(Some("good")), Err(AuthRefusal::Expired));
    }

    #[test]
    fn auth_5_channel_rules_match_exact_prefix_and_any() {
        let r = ChannelRules::of(["chat", "news:*"]);
        assert!(r.allows("chat"));
        assert!(!r.allows("chat2"));
        assert!(r.allows("news:eu"));
        assert!(r.allows("news:"));
        assert!(!r.allows("news"));
        assert!(ChannelRules::any().allows("x"));
        assert!(!ChannelRules::none().allows("x"));
    }
}
