//! `JwtVerifier`: the built-in [`Authenticator`] for JSON Web Tokens signed HS256 (shared secret) or RS256 (RSA public key), with channel permissions from claims.
//!
//! Claims read: `exp` (required), `nbf`, `iss` / `aud` when configured, `sub` (the
//! identity), and the channel claims (default `channels` for subscribe and `publish` for
//! publish): an array of patterns (`chat`, `news:*`, `*`) or one space-separated string.
//! An absent channel claim grants [`JwtVerifier::default_channels`] (every channel unless
//! changed). Every verification failure is `auth_expired` (the client fetches a new token,
//! AUTH-2); errors never contain the token (AUTH-4).

use crate::auth::{AuthRefusal, Authenticator, ChannelRules, Identity};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// Why a verifier could not be built.
#[derive(Debug, Error)]
pub enum JwtError {
    /// The key is unusable (an RSA public key must be a PEM `PUBLIC KEY` / `RSA PUBLIC KEY`).
    #[error("bad key: {0}")]
    Key(String),
    /// The HS256 secret is shorter than 32 bytes.
    #[error("the HS256 secret must be at least 32 bytes")]
    ShortSecret,
}

/// Verifies HS256 or RS256 JWTs.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    subscribe_claim: String,
    publish_claim: String,
    default_channels: ChannelRules,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .field("key", &"***")
            .finish()
    }
}

impl JwtVerifier {
    fn with(key: DecodingKey, alg: Algorithm) -> JwtVerifier {
        let mut validation = Validation::new(alg);
        validation.leeway = 5;
        JwtVerifier {
            key,
            validation,
            subscribe_claim: "channels".into(),
            publish_claim: "publish".into(),
            default_channels: ChannelRules::any(),
        }
    }

    /// HS256 with a shared secret (at least 32 bytes).
    pub fn hs256(secret: &[u8]) -> Result<JwtVerifier, JwtError> {
        if secret.len() < 32 {
            return Err(JwtError::ShortSecret);
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| JwtError::Key(e.to_string()))?;
        Ok(JwtVerifier::with(key, Algorithm::HS256))
    }

    /// RS256 with an RSA public key in PEM.
    pub fn rs256_pem(public_key_pem: &[u8]) -> Result<JwtVerifier, JwtError> {
        let key =
            DecodingKey::from_rsa_pem(public_key_pem).map_err(|e| JwtError::Key(e.to_string()))?;
        Ok(JwtVerifier::with(key, Algorithm::RS256))
    }

    /// Require this `iss`.
    pub fn issuer(mut self, iss: &str) -> JwtVerifier {
        self.validation.set_issuer(&[iss]);
        self
    }

    /// Require this `aud`.
    pub fn audience(mut self, aud: &str) -> JwtVerifier {
        self.validation.set_audience(&[aud]);
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 5 s).
    pub fn leeway(mut self, leeway: Duration) -> JwtVerifier {
        self.validation.leeway = leeway.as_secs();
        self
    }

    /// The claims naming the channels a token may subscribe and publish to.
    pub fn channel_claims(mut self, subscribe: &str, publish: &str) -> JwtVerifier {
        self.subscribe_claim = subscribe.into();
        self.publish_claim = publish.into();
        self
    }

    /// What a token without a channel claim may use (default: every channel).
    pub fn default_channels(mut self, rules: ChannelRules) -> JwtVerifier {
        self.default_channels = rules;
        self
    }

    fn rules(&self, claims: &Map<String, Value>, name: &str) -> ChannelRules {
        match claims.get(name) {
            None | Some(Value::Null) => self.default_channels.clone(),
            Some(Value::String(s)) => ChannelRules::of(s.split_whitespace()),
            Some(Value::Array(a)) => ChannelRules::of(a.iter().filter_map(Value::as_str)),
            Some(_) => ChannelRules::none(),
        }
    }
}

impl Authenticator for JwtVerifier {
    fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthRefusal> {
        let token = token.ok_or(AuthRefusal::Expired)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|_| AuthRefusal::Expired)?;
        let claims = data.claims;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| SystemTime::UNIX_EPOCH + Duration::from_secs(exp + self.validation.leeway));
        Ok(Identity {
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            subscribe: self.rules(&claims, &self.subscribe_claim),
            publish: self.rules(&claims, &self.publish_claim),
            expires_at,
        })
    }
}
