//! A serving worker's memory of the tokens it saw accepted for guarded trees
//! (`access = "token"`), so that a client downloading a thousand packages has its token
//! checked in the catalog once, not a thousand times.
//!
//! Only acceptances are kept (a refusal always goes to the control runtime, where the
//! limit on failed attempts and the log see it), each for at most `[server]
//! token_cache`, and only while the index they were granted under is the current
//! one: `cairn token revoke` bumps the generation marker, the server loads a new
//! index, and every worker forgets what it granted before. Entries are keyed by the
//! SHA-256 of the Authorization header, the owner and the scope: the secret is not
//! kept in a second place.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::app::tokens::Scope;

/// Grants remembered at most per worker; when full, expired ones go, then all.
const MAX_GRANTS: usize = 4096;

type Key = [u8; 32];

/// One worker's accepted (credentials, owner, scope) triples.
#[derive(Debug, Default)]
pub struct Grants {
    granted: HashMap<Key, Grant>,
}

#[derive(Debug, Clone, Copy)]
struct Grant {
    until: Instant,
    /// The serial of the index that was current when it was granted.
    index: u64,
}

/// The key for `authorization` asking for `scope` on `owner` (`None`: the installation).
pub fn key(authorization: &[u8], owner: Option<&str>, scope: Scope) -> Key {
    let mut h = Sha256::new();
    h.update((authorization.len() as u64).to_le_bytes());
    h.update(authorization);
    match owner {
        Some(o) => {
            h.update([1]);
            h.update(o.as_bytes());
        }
        None => h.update([0]),
    }
    h.update(scope.as_str().as_bytes());
    h.finalize().into()
}

impl Grants {
    /// Was `key` granted under index `index` less than its lifetime ago?
    pub fn holds(&mut self, key: &Key, index: u64, now: Instant) -> bool {
        match self.granted.get(key) {
            Some(g) if g.index == index && now < g.until => true,
            Some(_) => {
                self.granted.remove(key);
                false
            }
            None => false,
        }
    }

    /// Remembers that `key` was accepted under index `index`, for `lifetime`.
    pub fn grant(&mut self, key: Key, index: u64, now: Instant, lifetime: Duration) {
        if lifetime.is_zero() {
            return;
        }
        if self.granted.len() >= MAX_GRANTS {
            self.granted
                .retain(|_, g| g.index == index && now < g.until);
            if self.granted.len() >= MAX_GRANTS {
                self.granted.clear();
            }
        }
        self.granted.insert(
            key,
            Grant {
                until: now + lifetime,
                index,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_holds_for_its_lifetime_and_its_index_only() {
        let mut g = Grants::default();
        let now = Instant::now();
        let k = key(b"Bearer cairn_x", Some("a"), Scope::Read);
        assert!(!g.holds(&k, 1, now));
        g.grant(k, 1, now, Duration::from_secs(10));
        assert!(g.holds(&k, 1, now + Duration::from_secs(9)));
        // Another owner, scope or header is another key.
        assert!(!g.holds(&key(b"Bearer cairn_x", Some("b"), Scope::Read), 1, now));
        assert!(!g.holds(&key(b"Bearer cairn_x", Some("a"), Scope::Admin), 1, now));
        assert!(!g.holds(&key(b"Bearer cairn_y", Some("a"), Scope::Read), 1, now));
        assert!(!g.holds(&key(b"Bearer cairn_x", None, Scope::Read), 1, now));
        // A new index (a revocation bumped the marker) forgets it.
        assert!(!g.holds(&k, 2, now));
        assert!(!g.holds(&k, 1, now), "forgotten once seen stale");
        g.grant(k, 2, now, Duration::from_secs(10));
        assert!(!g.holds(&k, 2, now + Duration::from_secs(10)), "expired");
        // A zero lifetime keeps nothing.
        g.grant(k, 2, now, Duration::ZERO);
        assert!(!g.holds(&k, 2, now));
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut g = Grants::default();
        let now = Instant::now();
        for i in 0..(MAX_GRANTS * 3) {
            g.grant(
                key(format!("Bearer {i}").as_bytes(), None, Scope::Read),
                1,
                now,
                Duration::from_secs(60),
            );
        }
        assert!(g.granted.len() <= MAX_GRANTS);
    }
}
