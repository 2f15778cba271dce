//! Bearer tokens: required set, expired and forbidden tokens (AUTH-2, AUTH-3).

use std::collections::HashSet;

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Missing, unknown or expired: 401 `auth_expired`.
    Expired,
    /// Forbidden: 403 `forbidden` (terminal).
    Forbidden,
}

/// The server's token state.
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
    /// Check a request's token.
    pub fn check(&self, token: Option<&str>) -> Result<(), AuthRefusal> {
        if let Some(t) = token {
            if self.forbidden.contains(t) {
                return Err(AuthRefusal::Forbidden);
            }
            if self.expired.contains(t) {
                return Err(AuthRefusal::Expired);
            }
        }
        if !self.required {
            return Ok(());
        }
        match token {
            Some(t) if self.valid.contains(t) => Ok(()),
            _ => Err(AuthRefusal::Expired),
        }
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
}
