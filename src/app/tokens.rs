//! API tokens: made, listed, revoked and checked here; only a salted hash is stored.
//!
//! A token is `cairn_<lookup>_<secret>`: `lookup` (16 hex digits) finds its row, and
//! `secret` (32 random bytes, base64url) is checked against the row's
//! `sha256(salt || secret)` in constant time. SHA-256 rather than a password hash
//! (argon2): the secret is 256 random bits, which no amount of hashing speed lets
//! anyone guess, while argon2's deliberate cost (tens of milliseconds and megabytes per
//! check) would be paid on every API request and hand out a way to load the server.
//! The secret is shown once, when made, and appears nowhere else: not in the catalog,
//! the audit log, the logs or any answer.

use crate::app::unix_now;
use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::app::audit::Change;
use crate::app::context::{App, AppError};
use crate::domain::actor::Actor;
use crate::store::catalog::{NewToken, TokenRow};

/// What a token may do, each including the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read the API; fetch trees guarded by `access = "token"`.
    Read,
    /// Also start syncs, make and delete snapshots, publish aliases, upload packages.
    Write,
    /// Also run gc and verify, manage tokens, reload the configuration.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?}: give read, write or admin"
            )),
        }
    }
}

/// A token to make.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub name: String,
    pub scope: Scope,
    /// Repositories it is limited to (with `views`; both empty: every one).
    pub repos: Vec<String>,
    pub views: Vec<String>,
    /// How long it is valid; `None`: until revoked.
    pub expires: Option<std::time::Duration>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub scope: Scope,
    pub repos: Vec<String>,
    pub views: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
}

/// A token just made: its secret, shown this once.
#[derive(Debug)]
pub struct CreatedToken {
    pub info: TokenInfo,
    pub secret: zeroize::Zeroizing<String>,
}

/// Who a valid token says the caller is.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub scope: Scope,
    pub repos: Vec<String>,
    pub views: Vec<String>,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor::Token(self.name.clone())
    }

    /// May this token act with `scope` on the repository or view `name` (`None`: on
    /// the installation as a whole, which a limited token never may)?
    pub fn may(&self, scope: Scope, name: Option<&str>) -> bool {
        let limited = !self.repos.is_empty() || !self.views.is_empty();
        self.scope >= scope
            && match name {
                None => !limited,
                Some(n) => !limited || self.repos.iter().chain(&self.views).any(|r| r == n),
            }
    }
}

/// Why a token was refused. The caller answers 401 to every kind alike; the kind is
/// for the log and the failure counter.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("not a Cairn token")]
    Malformed,
    #[error("no such token")]
    Unknown,
    #[error("token {0:?} is revoked")]
    Revoked(String),
    #[error("token {0:?} has expired")]
    Expired(String),
    #[error(transparent)]
    Catalog(#[from] crate::store::catalog::CatalogError),
}

impl AuthError {
    /// The reason as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed",
            AuthError::Unknown => "unknown",
            AuthError::Revoked(_) => "revoked",
            AuthError::Expired(_) => "expired",
            AuthError::Catalog(_) => "catalog",
        }
    }
}

const PREFIX: &str = "cairn_";

fn digest(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    h.finalize().into()
}

fn info(row: &TokenRow, now: i64) -> TokenInfo {
    let list = |json: &str| serde_json::from_str::<Vec<String>>(json).unwrap_or_default();
    TokenInfo {
        name: row.name.clone(),
        // Written by this module only; an unknown value grants the least.
        scope: row.scope.parse().unwrap_or(Scope::Read),
        repos: list(&row.repos),
        views: list(&row.views),
        created_at: row.created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        last_used_at: row.last_used_at,
        state: if row.revoked_at.is_some() {
            "revoked"
        } else if row.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        },
    }
}

impl App {
    /// Makes a token; its secret is in the answer and nowhere else.
    pub async fn create_token(
        &self,
        by: &Actor,
        spec: &TokenSpec,
    ) -> Result<CreatedToken, AppError> {
        let change =
            Change::new("token.create", format!("token:{}", spec.name)).with(serde_json::json!({
                "scope": spec.scope.as_str(),
                "repos": spec.repos,
                "views": spec.views,
                "expires_in_secs": spec.expires.map(|d| d.as_secs()),
            }));
        self.audited(by, change, async {
            if !crate::domain::names::valid_name(&spec.name) {
                return Err(AppError::BadTokenName(spec.name.clone()));
            }
            if spec.expires.is_some_and(|d| d.is_zero()) {
                return Err(AppError::TokenExpiry);
            }
            for r in &spec.repos {
                if self.config.repo(r).is_none() {
                    return Err(AppError::UndeclaredRepo(r.clone()));
                }
            }
            for v in &spec.views {
                if self.config.view(v).is_none() {
                    return Err(AppError::UndeclaredView(v.clone()));
                }
            }
            use rand::RngCore;
            let mut rng = rand::rngs::OsRng;
            let mut lookup = [0u8; 8];
            let mut salt = [0u8; 16];
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            rng.fill_bytes(&mut lookup);
            rng.fill_bytes(&mut salt);
            rng.fill_bytes(secret.as_mut());
            use base64::Engine;
            let secret = zeroize::Zeroizing::new(
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_slice()),
            );
            let lookup = hex::encode(lookup);
            let expires_at = spec.expires.map(|d| unix_now() + d.as_secs() as i64);
            let row = self
                .catalog
                .insert_token(&NewToken {
                    name: &spec.name,
                    lookup: &lookup,
                    salt: &hex::encode(salt),
                    hash: &hex::encode(digest(&salt, &secret)),
                    scope: spec.scope.as_str(),
                    repos: &serde_json::to_string(&spec.repos).unwrap_or_else(|_| "[]".into()),
                    views: &serde_json::to_string(&spec.views).unwrap_or_else(|_| "[]".into()),
                    expires_at,
                })
                .await?;
            Ok(CreatedToken {
                info: info(&row, unix_now()),
                secret: zeroize::Zeroizing::new(format!("{PREFIX}{lookup}_{}", *secret)),
            })
        })
        .await
    }

    /// Every token made, the revoked and expired ones too.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, AppError> {
        let now = unix_now();
        Ok(self
            .catalog
            .tokens()
            .await?
            .iter()
            .map(|r| info(r, now))
            .collect())
    }

    /// Revokes the live token `name`: it is refused from now on.
    pub async fn revoke_token(&self, by: &Actor, name: &str) -> Result<(), AppError> {
        let change = Change::new("token.revoke", format!("token:{name}"));
        self.audited(by, change, async {
            if self.catalog.revoke_token(name).await? {
                // A running server reloads, and its workers forget every token they
                // accepted (see `http::grants`).
                self.published();
                Ok(())
            } else {
                Err(AppError::UnknownToken(name.to_string()))
            }
        })
        .await
    }

    /// Checks a token as a client sent it.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let (lookup, secret) = token
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .filter(|(lookup, secret)| {
                lookup.len() == 16
                    && lookup.bytes().all(|b| b.is_ascii_hexdigit())
                    && !secret.is_empty()
            })
            .ok_or(AuthError::Malformed)?;
        let row = self.catalog.token_by_lookup(lookup).await?;
        let Some(row) = row else {
            // The same work as for a real row, so timing tells nothing.
            let _ = digest(&[0u8; 16], secret).ct_eq(&[0u8; 32]);
            return Err(AuthError::Unknown);
        };
        let salt = hex::decode(&row.salt).unwrap_or_default();
        let stored = hex::decode(&row.hash).unwrap_or_default();
        if !bool::from(digest(&salt, secret).as_slice().ct_eq(stored.as_slice())) {
            return Err(AuthError::Unknown);
        }
        let now = unix_now();
        if row.revoked_at.is_some() {
            return Err(AuthError::Revoked(row.name));
        }
        if row.expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::Expired(row.name));
        }
        if row.last_used_at.is_none_or(|t| now - t >= 60) {
            self.catalog.touch_token(row.id).await?;
        }
        let i = info(&row, now);
        Ok(Principal {
            name: i.name,
            scope: i.scope,
            repos: i.repos,
            views: i.views,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scope: Scope, repos: &[&str]) -> Principal {
        Principal {
            name: "t".into(),
            scope,
            repos: repos.iter().map(|s| s.to_string()).collect(),
            views: Vec::new(),
        }
    }

    #[test]
    fn scopes_include_the_lesser_and_limits_hold() {
        let write = principal(Scope::Write, &[]);
        assert!(write.may(Scope::Read, Some("a")) && write.may(Scope::Write, None));
        assert!(!write.may(Scope::Admin, None));
        let limited = principal(Scope::Admin, &["a"]);
        assert!(limited.may(Scope::Write, Some("a")));
        assert!(!limited.may(Scope::Read, Some("b")));
        // The installation as a whole is not any one repository's.
        assert!(!limited.may(Scope::Read, None));
    }
}
