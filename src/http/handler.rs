//! The HTTP request path: URL → tree → blob, with the headers and conditional/range
//! semantics dnf, browsers and caches rely on.
//!
//! Request paths are looked up in the in-memory [`Index`]; nothing from a URL is ever
//! joined to a filesystem path (blobs are opened by sha256 only). Paths with `..`,
//! encoded dots or slashes, NUL or backslashes are refused before any lookup.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::blob::ReadMode;
use super::cache::SmallCache;
use super::files::{cache_control, serve_file};
use super::index::Index;
use super::listing::{base_url, repo_file, tree_listing, Serving};
use super::pages::{PageRequest, Pages};
use super::respond::{empty, full, html_response, not_found, redirect, text};
use super::router::{path_is_safe, prefix, Query, Route};
use crate::app::metrics::RouteClass;
use crate::store::catalog::Space;
use crate::store::pool::Pool;

/// Response body type: in-memory or streamed from a blob.
pub type ResBody = UnsyncBoxBody<Bytes, io::Error>;

/// What every request handler shares on one worker (one thread).
pub struct Shared {
    pub index: Arc<ArcSwap<Index>>,
    pub pool: Pool,
    pub mode: ReadMode,
    /// Small blobs kept in memory. Blobs are immutable (named by their sha256), so a
    /// cached copy never goes stale.
    pub small: std::cell::RefCell<SmallCache>,
    /// The page renderer on the control runtime.
    pub pages: Pages,
    /// This worker's request counters (see [`crate::app::metrics`]).
    pub stats: Arc<crate::app::metrics::Serving>,
    /// This worker's budget for file bytes read but not yet sent, in KiB permits:
    /// responses wait for room instead of growing memory with their number.
    pub budget: Arc<tokio::sync::Semaphore>,
    /// This worker's current run of back-to-back requests (see [`super::fair`]).
    pub busy: super::fair::BusyRun,
    /// Whether the index is behind what is published (see [`super::Freshness`]).
    pub(crate) fresh: super::Freshness,
    /// This worker's access log, when one is kept.
    pub access: Option<super::access::WorkerLog>,
    /// What serving takes from the configuration (keys, guarded trees).
    pub settings: Arc<ArcSwap<super::Settings>>,
    /// The admin API on the control runtime (`None`: a server without one).
    pub api: Option<super::api::Api>,
    /// The tokens this worker saw accepted for guarded trees (see [`super::grants`]).
    pub grants: std::cell::RefCell<super::grants::Grants>,
}

/// Handles one request (and counts it: see [`crate::app::metrics`]).
pub async fn handle(
    shared: std::rc::Rc<Shared>,
    peer: std::net::SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    shared.busy.request(std::time::Instant::now());
    let started = std::time::Instant::now();
    // What the access log needs of the request, kept only when it is on (reference
    // counted clones: no copy of the bytes).
    let logged = shared.access.as_ref().map(|_| {
        (
            req.method().clone(),
            req.uri().clone(),
            req.version(),
            req.headers().get(header::REFERER).cloned(),
            req.headers().get(header::USER_AGENT).cloned(),
        )
    });
    let (class, resp) = if req.uri().path().starts_with("/api/") {
        (
            RouteClass::Api,
            super::api::forward(shared.api.as_ref(), peer, req).await,
        )
    } else {
        answer(&shared, peer, req).await
    };
    let elapsed = started.elapsed();
    shared.stats.request(class, resp.status().as_u16(), elapsed);
    // In-memory bodies are counted here; streamed ones as their chunks are handed on.
    let exact = resp.body().size_hint().exact();
    if let Some(n) = exact {
        shared.stats.sent(class, n);
    }
    if let (Some(log), Some((method, uri, version, referer, user_agent))) = (&shared.access, logged)
    {
        let declared = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        log.log(&super::access::Entry {
            peer,
            method: method.as_str(),
            target,
            version,
            status: resp.status().as_u16(),
            bytes: exact.or(declared).unwrap_or(0),
            referer: referer.as_ref().and_then(|v| v.to_str().ok()),
            user_agent: user_agent.as_ref().and_then(|v| v.to_str().ok()),
            duration: elapsed,
        });
    }
    Ok(resp)
}

async fn answer(
    shared: &Shared,
    peer: std::net::SocketAddr,
    req: Request<Incoming>,
) -> (RouteClass, Response<ResBody>) {
    let head_only = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head_only {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are supported",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return (RouteClass::Other, r);
    }
    let raw = req.uri().path();
    if !path_is_safe(raw) {
        return (
            RouteClass::Other,
            text(StatusCode::BAD_REQUEST, "invalid path"),
        );
    }
    let decoded = match percent_encoding::percent_decode_str(raw).decode_utf8() {
        Ok(p) => p,
        Err(_) => {
            return (
                RouteClass::Other,
                text(StatusCode::BAD_REQUEST, "invalid path"),
            )
        }
    };
    let target = Route::of(&decoded);
    let class = target.class();
    // What needs a token: a guarded owner's trees and pages (read scope for it), the
    // audit page (admin).
    use crate::app::tokens::Scope;
    let needs = match target.owner() {
        Some((space, owner)) if shared.settings.load().guarded(prefix(space), owner) => {
            Some((Some(owner), Scope::Read))
        }
        _ if target == Route::Audit => Some((None, Scope::Admin)),
        _ => None,
    };
    if let Some((owner, scope)) = needs {
        if let Some(refusal) = guard(shared, peer, &req, owner, scope).await {
            return (class, refusal);
        }
    }
    // What names every other file of a tree (repomd.xml, .treeinfo) is answered from
    // an index at least as new as the last publication: a client that asks right after
    // a command returns gets what it published, never the metadata before it. (One
    // small file read per such request; package requests never wait.)
    if target.names_the_tree() {
        shared.fresh.newer(&shared.index).await;
    }
    let mut resp = route(shared, &req, target.clone()).await;
    // A 404 inside the trees may only mean that this index predates a change that
    // was just published: check, and answer again from the newer index.
    if resp.status() == StatusCode::NOT_FOUND
        && target.in_trees()
        && shared.fresh.newer(&shared.index).await
    {
        resp = route(shared, &req, target).await;
    }
    if head_only {
        let (parts, _) = resp.into_parts();
        resp = Response::from_parts(parts, empty());
    }
    (class, resp)
}

/// Checks the token a request for something guarded carries: from this worker's
/// grants when it was accepted lately, else on the control runtime. `Some`: the
/// refusal to answer with.
async fn guard(
    shared: &Shared,
    peer: std::net::SocketAddr,
    req: &Request<Incoming>,
    owner: Option<&str>,
    scope: crate::app::tokens::Scope,
) -> Option<Response<ResBody>> {
    let lifetime = shared.settings.load().token_cache;
    let credentials = req.headers().get(header::AUTHORIZATION);
    let key = credentials
        .filter(|_| !lifetime.is_zero())
        .map(|c| super::grants::key(c.as_bytes(), owner, scope));
    let serial = shared.index.load().serial;
    let metrics = crate::app::metrics::metrics();
    if let Some(key) = &key {
        if shared
            .grants
            .borrow_mut()
            .holds(key, serial, std::time::Instant::now())
        {
            metrics.guard_remembered.inc();
            return None;
        }
    }
    metrics.guard_checked.inc();
    let refusal = super::api::refuse(shared.api.as_ref(), peer, req, owner, scope).await;
    if let (None, Some(key)) = (&refusal, key) {
        shared
            .grants
            .borrow_mut()
            .grant(key, serial, std::time::Instant::now(), lifetime);
    }
    refusal
}

/// Answers a request for `route`.
async fn route(shared: &Shared, req: &Request<Incoming>, route: Route<'_>) -> Response<ResBody> {
    let index = shared.index.load();
    let tree_of = |space: Space, owner: &str, tree: &str| {
        index
            .space(prefix(space))
            .and_then(|trees| trees.get(owner))
            .and_then(|t| t.get(tree))
    };
    let query = || Query::parse(req.uri().query().unwrap_or(""));
    match route {
        Route::Metrics => metrics(),
        Route::Healthz => {
            let reads = match shared.mode {
                ReadMode::Uring => "io_uring",
                ReadMode::Blocking => "blocking",
            };
            // The catalog is read every few seconds on the control runtime; its last
            // answer says whether it is reachable (serving goes on from the index).
            match crate::app::metrics::metrics().catalog_error() {
                None => text(
                    StatusCode::OK,
                    &format!("ok\nreads: {reads}\ncatalog: reachable"),
                ),
                Some(e) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("degraded\nreads: {reads}\ncatalog: unreachable ({e})"),
                ),
            }
        }
        Route::Stylesheet => stylesheet(),
        Route::Keys(name) => shared.settings.load().keys.respond(name),
        Route::Home => {
            let hidden = shared.settings.load().hidden.clone();
            page(shared, PageRequest::Home { hidden }).await
        }
        Route::Audit => {
            let query = query();
            let text = |k: &str| query.get(k).unwrap_or("").to_string();
            let before = query.get("before").and_then(|b| b.parse().ok());
            let (actor, operation) = (text("actor"), text("operation"));
            page(
                shared,
                PageRequest::Audit {
                    actor,
                    operation,
                    before,
                },
            )
            .await
        }
        Route::Package(sha) => {
            let sha256 = sha.to_string();
            let hidden = shared.settings.load().hidden.clone();
            page(shared, PageRequest::Package { sha256, hidden }).await
        }
        Route::Owner(space, owner) => {
            let query = query();
            let diff = match (query.get("from"), query.get("to")) {
                (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
                    Some((a.to_string(), b.to_string()))
                }
                _ => None,
            };
            let owner = owner.to_string();
            page(shared, PageRequest::Owner { space, owner, diff }).await
        }
        Route::Short(space, owner, tree) => match tree.strip_suffix(".repo") {
            Some(name) if tree_of(space, owner, name).is_some() => {
                let settings = shared.settings.load();
                repo_file(
                    prefix(space),
                    owner,
                    name,
                    &base_url(req),
                    tree_of(space, owner, name),
                    &Serving {
                        owner_keys: settings.keys.owner(prefix(space), owner),
                        signer_file: settings.keys.signer_file(prefix(space), owner),
                        guarded: settings.guarded(prefix(space), owner),
                    },
                )
            }
            _ => redirect(
                &format!("/{}/{owner}/{tree}/", prefix(space)),
                tree_of(space, owner, tree).is_some(),
            ),
        },
        Route::Tree(space, owner, tree) => {
            if tree_of(space, owner, tree).is_none() {
                return not_found("There is no such repository, view, snapshot or alias.");
            }
            let query = query();
            let page_no = query
                .get("page")
                .and_then(|p| p.parse::<i64>().ok())
                .unwrap_or(1);
            let request = PageRequest::Tree {
                space,
                owner: owner.to_string(),
                tree: tree.to_string(),
                search: query.get("q").unwrap_or("").trim().to_string(),
                unsigned: query.get("unsigned") == Some("1"),
                page: page_no,
                base: base_url(req),
            };
            page(shared, request).await
        }
        Route::Listing(space, owner, tree, dir) => match tree_of(space, owner, tree) {
            Some(t) => tree_listing(prefix(space), owner, tree, t, dir),
            None => not_found("There is no such repository, view, snapshot or alias."),
        },
        Route::File(space, owner, tree, path) => {
            let Some(t) = tree_of(space, owner, tree) else {
                return not_found("There is no such repository, view, snapshot or alias.");
            };
            match t.file(path) {
                Some(entry) => {
                    let class = Route::File(space, owner, tree, path).class();
                    serve_file(shared, req, entry, cache_control(t, path), class).await
                }
                None => not_found("This tree has no such file."),
            }
        }
        Route::Unknown => not_found("Nothing is published at this address."),
    }
}

/// The metrics exposition.
fn metrics() -> Response<ResBody> {
    let mut r = Response::new(full(crate::app::metrics::metrics().encode()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The stylesheet of the pages.
fn stylesheet() -> Response<ResBody> {
    let mut r = Response::new(full(STYLESHEET));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    );
    r
}

/// The one stylesheet of the pages.
pub const STYLESHEET: &str = include_str!("../../static/cairn.css");

/// A page rendered on the control runtime.
async fn page(shared: &Shared, req: PageRequest) -> Response<ResBody> {
    let p = shared.pages.get(req).await;
    html_response(p.status, p.html)
}
