//! Who is calling: the token from `Authorization: Bearer TOKEN` (or HTTP Basic with the
//! token as the password), checked by [`App::authenticate`]; and the limit on failed
//! attempts per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header;
use hyper::StatusCode;

use super::ApiResponse;
use crate::app::context::App;
use crate::app::tokens::{AuthError, Principal};

/// Failed authentications a client address may make within [`WINDOW`]; after that it
/// is answered 429 until the window has passed.
pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; the oldest windows are forgotten first.
const MAX_TRACKED: usize = 10_000;

/// Failed authentications by client address.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Limiter {
    /// Seconds until `peer` may try again, when it is over the limit.
    fn blocked(&self, peer: IpAddr) -> Option<u64> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, since) = map.get(&peer)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (*count >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    fn fail(&self, peer: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(peer).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// The token a request carries, if any: Bearer, or Basic with the token as password.
fn token_of(authorization: &str) -> Option<String> {
    let (scheme, value) = authorization.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_string());
    }
    None
}

fn unauthorized(message: &str) -> ApiResponse {
    ApiResponse::error(StatusCode::UNAUTHORIZED, "unauthenticated", message).with_header(
        header::WWW_AUTHENTICATE,
        "Bearer realm=\"cairn\", Basic realm=\"cairn\"".into(),
    )
}

/// Authenticates a request, or answers it (401, or 429 after too many failures).
/// Failures are logged with the client address and the reason, never the token.
pub async fn authenticate(
    app: &App,
    limiter: &Limiter,
    peer: IpAddr,
    authorization: Option<&str>,
) -> Result<Principal, ApiResponse> {
    if let Some(wait) = limiter.blocked(peer) {
        return Err(ApiResponse::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            "too many failed authentications from this address: wait and try again",
        )
        .with_header(header::RETRY_AFTER, wait.to_string()));
    }
    let Some(token) = authorization.and_then(token_of) else {
        return Err(unauthorized(
            "a token is required: send `Authorization: Bearer TOKEN` (make one with `cairn token create`)",
        ));
    };
    match app.authenticate(&token).await {
        Ok(principal) => Ok(principal),
        Err(AuthError::Catalog(e)) => {
            tracing::error!("api: checking a token: {e}");
            Err(ApiResponse::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the catalog cannot be read right now: try again shortly",
            ))
        }
        Err(e) => {
            limiter.fail(peer);
            crate::app::metrics::metrics()
                .api_auth_failures
                .with_label_values(&[e.kind()])
                .inc();
            tracing::warn!("api: authentication failed from {peer}: {e}");
            Err(unauthorized(
                "the token is not valid (unknown, revoked or expired)",
            ))
        }
    }
}

/// May the request see what needs a token of `scope` for repository or view `owner`
/// (`None`: the installation as a whole)?
pub async fn may_see(
    app: &App,
    limiter: &Limiter,
    peer: IpAddr,
    authorization: Option<&str>,
    owner: Option<&str>,
    scope: crate::app::tokens::Scope,
) -> Result<(), ApiResponse> {
    let who = authenticate(app, limiter, peer, authorization).await?;
    if who.may(scope, owner) {
        Ok(())
    } else {
        let what = owner.map_or("this".to_string(), |o| format!("{o:?}"));
        tracing::warn!("token {:?} from {peer} may not see {what}", who.name);
        Err(ApiResponse::error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "token {:?} may not see {what}: it needs {} scope",
                who.name,
                scope.as_str()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_carry_the_token() {
        assert_eq!(token_of("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token_of("bearer  abc ").as_deref(), Some("abc"));
        // "user:abc" in base64.
        assert_eq!(token_of("Basic dXNlcjphYmM=").as_deref(), Some("abc"));
        assert_eq!(token_of("Digest abc"), None);
        assert_eq!(token_of("Basic !!!"), None);
    }

    #[test]
    fn an_address_is_held_off_after_too_many_failures() {
        let limiter = Limiter::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(limiter.blocked(a).is_none());
            limiter.fail(a);
        }
        assert!(limiter.blocked(a).is_some_and(|s| s <= WINDOW.as_secs()));
        assert!(limiter.blocked(b).is_none());
    }
}
