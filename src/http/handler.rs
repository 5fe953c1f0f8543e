//! The HTTP request path: URL → tree → blob, with the headers and conditional/range
//! semantics dnf, browsers and caches rely on.
//!
//! Request paths are looked up in the in-memory [`Index`]; nothing from a URL is ever
//! joined to a filesystem path (blobs are opened by sha256 only). Paths with `..`,
//! encoded dots or slashes, NUL or backslashes are refused before any lookup.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::blob::{Blob, ReadMode, CHUNK, SMALL_FILE};
use super::index::{FileEntry, Index, Tree};
use super::pages::{error_page, PageRequest, Pages};
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
}

/// Per-worker memory for file bytes in flight (read, not yet written to a socket).
pub const IN_FLIGHT_BYTES: usize = 16 * 1024 * 1024;

/// Waits until the worker's in-flight budget has room for `n` bytes and takes it.
async fn reserve(
    budget: &Arc<tokio::sync::Semaphore>,
    n: usize,
) -> io::Result<tokio::sync::OwnedSemaphorePermit> {
    let kib = n.div_ceil(1024).clamp(1, IN_FLIGHT_BYTES / 1024) as u32;
    budget
        .clone()
        .acquire_many_owned(kib)
        .await
        .map_err(io::Error::other)
}

/// Reads `n` bytes at `off` once the worker's in-flight budget has room for them; the
/// room is given back when the bytes are dropped (after hyper has written them).
async fn read_budgeted(
    budget: &Arc<tokio::sync::Semaphore>,
    blob: &Blob,
    off: u64,
    n: usize,
) -> io::Result<Bytes> {
    let permit = reserve(budget, n).await?;
    let bytes = blob.read_exact_at(off, n).await?;
    Ok(holding(bytes, permit))
}

/// `bytes` that keep `permit` (their share of the in-flight budget) until dropped.
fn holding(bytes: Bytes, permit: tokio::sync::OwnedSemaphorePermit) -> Bytes {
    Bytes::from_owner(Budgeted {
        bytes,
        _permit: permit,
    })
}

/// Bytes that hold their share of the in-flight budget until dropped.
struct Budgeted {
    bytes: Bytes,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A per-worker cache of blob contents up to [`CACHEABLE`] with a byte budget (FIFO
/// eviction).
pub struct SmallCache {
    map: std::collections::HashMap<String, Bytes>,
    order: std::collections::VecDeque<String>,
    bytes: usize,
    budget: usize,
}

/// Blobs up to this size (those read in one read) are kept in the worker's memory cache.
pub const CACHEABLE: u64 = SMALL_FILE;
/// Responses up to this size are sent without taking in-flight budget (their memory
/// is small next to the connection's own buffers).
const UNBUDGETED: usize = 64 * 1024;

impl SmallCache {
    pub fn new(budget: usize) -> SmallCache {
        SmallCache {
            map: Default::default(),
            order: Default::default(),
            bytes: 0,
            budget,
        }
    }

    fn get(&self, sha: &str) -> Option<Bytes> {
        self.map.get(sha).cloned()
    }

    fn put(&mut self, sha: &str, data: Bytes) {
        if data.len() > self.budget || self.map.contains_key(sha) {
            return;
        }
        while self.bytes + data.len() > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.map.remove(&old) {
                self.bytes -= b.len();
            }
        }
        self.bytes += data.len();
        self.order.push_back(sha.to_string());
        self.map.insert(sha.to_string(), data);
    }
}

fn full(body: impl Into<Bytes>) -> ResBody {
    Full::new(body.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn empty() -> ResBody {
    Empty::<Bytes>::new()
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

fn text(status: StatusCode, msg: &str) -> Response<ResBody> {
    if status.is_client_error() || status.is_server_error() {
        // Errors are pages in the house style (a client that wants bytes only looks at
        // the status).
        let p = error_page(status.as_u16(), &format!("{}.", capitalise(msg)));
        return html_response(p.status, p.html);
    }
    let mut r = Response::new(full(format!("{msg}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Is the raw request path safe to interpret?
pub fn path_is_safe(raw: &str) -> bool {
    if !raw.starts_with('/') || raw.contains('\\') || raw.contains('\0') {
        return false;
    }
    let lower = raw.to_ascii_lowercase();
    // Encoded dot, slash, backslash, NUL, or percent: never needed by our URLs.
    if ["%2e", "%2f", "%5c", "%00", "%25"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return false;
    }
    !raw.split('/').any(|seg| seg == "." || seg == "..")
}

/// Handles one request (and counts it: see [`crate::app::metrics`]).
pub async fn handle(
    shared: std::rc::Rc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    shared.busy.request(std::time::Instant::now());
    let started = std::time::Instant::now();
    let (class, resp) = answer(&shared, req).await;
    shared
        .stats
        .request(class, resp.status().as_u16(), started.elapsed());
    // In-memory bodies are counted here; streamed ones as their chunks are handed on.
    if let Some(n) = resp.body().size_hint().exact() {
        shared.stats.sent(class, n);
    }
    Ok(resp)
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> (RouteClass, Response<ResBody>) {
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
    let class = RouteClass::of_path(&decoded);
    let mut resp = route(shared, &req, &decoded).await;
    if head_only {
        let (parts, _) = resp.into_parts();
        resp = Response::from_parts(parts, empty());
    }
    (class, resp)
}

async fn route(shared: &Shared, req: &Request<Incoming>, path: &str) -> Response<ResBody> {
    if path == "/metrics" {
        let mut r = Response::new(full(crate::app::metrics::metrics().encode()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    if path == "/healthz" {
        let reads = match shared.mode {
            ReadMode::Uring => "io_uring",
            ReadMode::Blocking => "blocking",
        };
        return text(StatusCode::OK, &format!("ok\nreads: {reads}"));
    }
    if path == STYLESHEET_PATH {
        let mut r = Response::new(full(STYLESHEET));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        );
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=3600"),
        );
        return r;
    }
    if path == "/" {
        return page(shared, PageRequest::Home).await;
    }
    if let Some(sha) = path.strip_prefix("/packages/") {
        return page(
            shared,
            PageRequest::Package {
                sha256: sha.to_string(),
            },
        )
        .await;
    }
    let segs: Vec<&str> = path.trim_start_matches('/').splitn(4, '/').collect();
    let index = shared.index.load();
    let (prefix, space, rest_segs) = match segs.as_slice() {
        [first, rest @ ..] => match (index.space(first), *first) {
            (Some(trees), "repos") => (("repos", trees), Space::Repos, rest),
            (Some(trees), _) => (("views", trees), Space::Views, rest),
            (None, _) => return not_found("Nothing is published at this address."),
        },
        [] => return not_found("Nothing is published at this address."),
    };
    let (prefix, trees_of) = prefix;
    let tree_of = |owner: &str, tree: &str| trees_of.get(owner).and_then(|t| t.get(tree));
    let query = Query::parse(req.uri().query().unwrap_or(""));
    match rest_segs {
        [] | [""] => page(shared, PageRequest::Home).await,
        [owner] | [owner, ""] => {
            let diff = match (query.get("from"), query.get("to")) {
                (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
                    Some((a.to_string(), b.to_string()))
                }
                _ => None,
            };
            page(
                shared,
                PageRequest::Owner {
                    space,
                    owner: owner.to_string(),
                    diff,
                },
            )
            .await
        }
        [owner, tree] => match tree.strip_suffix(".repo") {
            Some(name) if tree_of(owner, name).is_some() => {
                repo_file(prefix, owner, name, &base_url(req), tree_of(owner, name))
            }
            _ => redirect(
                &format!("/{prefix}/{owner}/{tree}/"),
                tree_of(owner, tree).is_some(),
            ),
        },
        [owner, tree, rest] => {
            let Some(t) = tree_of(owner, tree) else {
                return not_found("There is no such repository, view, snapshot or alias.");
            };
            if rest.is_empty() {
                let page_no = query
                    .get("page")
                    .and_then(|p| p.parse::<i64>().ok())
                    .unwrap_or(1);
                return page(
                    shared,
                    PageRequest::Tree {
                        space,
                        owner: owner.to_string(),
                        tree: tree.to_string(),
                        search: query.get("q").unwrap_or("").trim().to_string(),
                        page: page_no,
                        base: base_url(req),
                    },
                )
                .await;
            }
            if rest.ends_with('/') {
                return tree_listing(prefix, owner, tree, t, rest);
            }
            match t.files.files.get(*rest) {
                Some(entry) => {
                    let class = if rest.starts_with("repodata/") {
                        RouteClass::Metadata
                    } else {
                        RouteClass::Package
                    };
                    serve_file(shared, req, entry, cache_control(t, rest), class).await
                }
                None => not_found("This tree has no such file."),
            }
        }
        _ => not_found("Nothing is published at this address."),
    }
}

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/static/cairn.css";
/// The one stylesheet of the pages.
pub const STYLESHEET: &str = include_str!("../../static/cairn.css");

/// A page rendered on the control runtime.
async fn page(shared: &Shared, req: PageRequest) -> Response<ResBody> {
    let p = shared.pages.get(req).await;
    html_response(p.status, p.html)
}

fn html_response(status: u16, body: String) -> Response<ResBody> {
    let mut r = uncached(body, "text/html; charset=utf-8");
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// A generated response (a page, a `.repo` file) that clients must not cache.
fn uncached(body: String, content_type: &'static str) -> Response<ResBody> {
    let mut r = Response::new(full(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A 404 in the house style.
fn not_found(message: &str) -> Response<ResBody> {
    let p = error_page(404, message);
    html_response(p.status, p.html)
}

/// `http://HOST` from the request's Host header (only host-name characters kept).
fn base_url(req: &Request<Incoming>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A `.repo` file for `/etc/yum.repos.d/` pointing at a tree.
fn repo_file(
    prefix: &str,
    owner: &str,
    tree: &str,
    base: &str,
    t: Option<&Tree>,
) -> Response<ResBody> {
    let id = format!("cairn-{owner}-{tree}");
    let expire = match t {
        Some(t) if t.immutable => "metadata_expire=never\n",
        _ => "",
    };
    let body = format!(
        "# {owner} {tree}, served by Cairn.\n\
         # curl -o /etc/yum.repos.d/{id}.repo {base}/{prefix}/{owner}/{tree}.repo\n\
         [{id}]\n\
         name=Cairn {owner} {tree}\n\
         baseurl={base}/{prefix}/{owner}/{tree}/\n\
         enabled=1\n\
         {expire}\
         # Set gpgcheck=1 and gpgkey= to the vendor's key when the packages are signed.\n\
         gpgcheck=0\n"
    );
    uncached(body, "text/plain; charset=utf-8")
}

/// A request's query parameters (`application/x-www-form-urlencoded`).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            raw.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(kv), String::new()),
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn redirect(to: &str, exists: bool) -> Response<ResBody> {
    if !exists {
        return not_found("There is no such repository, view, snapshot or alias.");
    }
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn cache_control(tree: &Tree, path: &str) -> &'static str {
    if tree.immutable {
        "public, max-age=31536000, immutable"
    } else if path == "repodata/repomd.xml" {
        "no-cache"
    } else {
        "public, max-age=300"
    }
}

/// One link of a directory page.
pub struct Link {
    pub href: String,
    pub label: String,
}

/// A directory page (`templates/listing.html`). Askama escapes every value.
#[derive(askama::Template)]
#[template(path = "listing.html")]
struct Listing<'a> {
    title: &'a str,
    parent: Option<String>,
    items: Vec<Link>,
}

fn html(title: &str, parent: Option<String>, items: Vec<Link>) -> Response<ResBody> {
    use askama::Template;
    let page = Listing {
        title,
        parent,
        items,
    };
    let body = match page.render() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("rendering a listing failed: {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "page error");
        }
    };
    uncached(body, "text/html; charset=utf-8")
}

/// `/repos/`, `/views/` (the owners) or one owner's trees.
fn tree_listing(
    prefix: &str,
    repo: &str,
    tree_name: &str,
    tree: &Tree,
    dir: &str,
) -> Response<ResBody> {
    let mut entries: Vec<String> = tree
        .files
        .files
        .keys()
        .filter_map(|p| p.strip_prefix(dir))
        .map(|rest| match rest.find('/') {
            Some(i) => rest[..=i].to_string(),
            None => rest.to_string(),
        })
        .collect();
    if entries.is_empty() {
        return not_found("This tree has no such directory.");
    }
    entries.sort();
    entries.dedup();
    let base = format!("/{prefix}/{repo}/{tree_name}/{dir}");
    let parent = match base.trim_end_matches('/').rfind('/') {
        Some(i) => base[..=i].to_string(),
        None => "/".to_string(),
    };
    let items: Vec<_> = entries
        .into_iter()
        .map(|e| Link {
            href: format!("{base}{e}"),
            label: e,
        })
        .collect();
    html(&base, Some(parent), items)
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// A parsed single `Range: bytes=…` header.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeReq {
    /// Serve the whole file (no header, a multi-range, or one we do not understand).
    Full,
    /// Serve `start..=end`.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a Range header against a file of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> RangeReq {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last N bytes.
        let Ok(n) = b.parse::<u64>() else {
            return RangeReq::Full;
        };
        if n == 0 || size == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::Part(size.saturating_sub(n), size - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeReq::Full;
    };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return RangeReq::Full,
        }
    };
    if start >= size {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Part(start, end)
}

/// The body for `range` of a cached blob. A large body takes in-flight budget for the
/// whole cached buffer it keeps alive (it may outlive its cache entry), so memory stays
/// bounded by the cache plus the budget; a small part of a large blob is copied out
/// instead of keeping the whole buffer.
async fn cached_body(
    budget: &Arc<tokio::sync::Semaphore>,
    data: Bytes,
    range: std::ops::Range<usize>,
) -> io::Result<ResBody> {
    if data.len() <= UNBUDGETED {
        return Ok(full(data.slice(range)));
    }
    if range.len() <= UNBUDGETED {
        return Ok(full(Bytes::copy_from_slice(&data[range])));
    }
    let permit = reserve(budget, data.len()).await?;
    Ok(full(holding(data.slice(range), permit)))
}

async fn serve_file(
    shared: &Shared,
    req: &Request<Incoming>,
    entry: &FileEntry,
    cache: &'static str,
    class: RouteClass,
) -> Response<ResBody> {
    let mut builder = Response::builder()
        .header(header::ETAG, entry.etag.clone())
        .header(header::LAST_MODIFIED, entry.last_modified.clone())
        .header(header::CACHE_CONTROL, cache)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(inm) = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if etag_matches(inm, entry.etag.to_str().unwrap_or_default()) {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(empty())
                .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response error"));
        }
    }
    let size = entry.size;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size))
        .unwrap_or(RangeReq::Full);
    let (status, start, len) = match range {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Part(s, e) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{size}"));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        RangeReq::Unsatisfiable => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(empty())
                .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response error"));
        }
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_TYPE, entry.content_type)
        .header(header::CONTENT_LENGTH, len);
    let cached = shared.small.borrow().get(&entry.sha256);
    if let Some(data) = cached {
        let body = if req.method() == Method::HEAD {
            empty()
        } else {
            match cached_body(&shared.budget, data, start as usize..(start + len) as usize).await {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!("blob {}: {e}", entry.sha256);
                    return text(StatusCode::INTERNAL_SERVER_ERROR, "response error");
                }
            }
        };
        return builder
            .body(body)
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response error"));
    }
    let path = shared.pool.path_of(&entry.sha256);
    let blob = match Blob::open(shared.mode, &path).await {
        Ok((blob, on_disk)) if on_disk == size => blob,
        Ok((_, on_disk)) => {
            tracing::error!(
                "blob {} is {on_disk} bytes on disk, {size} in the catalog: run `cairn db verify`",
                entry.sha256
            );
            return text(StatusCode::INTERNAL_SERVER_ERROR, "stored file is damaged");
        }
        Err(e) => {
            tracing::error!("blob {} cannot be opened: {e}", entry.sha256);
            return text(StatusCode::INTERNAL_SERVER_ERROR, "stored file is missing");
        }
    };
    if req.method() == Method::HEAD {
        return builder
            .body(empty())
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response error"));
    }
    let body = if size <= CACHEABLE {
        // Read whole (within the budget when large), kept for the next request.
        let read = async {
            let permit = if size as usize > UNBUDGETED {
                Some(reserve(&shared.budget, size as usize).await?)
            } else {
                None
            };
            Ok::<_, io::Error>((blob.read_exact_at(0, size as usize).await?, permit))
        };
        match read.await {
            Ok((bytes, permit)) => {
                shared.small.borrow_mut().put(&entry.sha256, bytes.clone());
                let part = bytes.slice(start as usize..(start + len) as usize);
                full(match permit {
                    Some(permit) => holding(part, permit),
                    None => part,
                })
            }
            Err(e) => {
                tracing::error!("blob {} read failed: {e}", entry.sha256);
                return text(StatusCode::INTERNAL_SERVER_ERROR, "stored file is damaged");
            }
        }
    } else if len <= SMALL_FILE {
        match read_budgeted(&shared.budget, &blob, start, len as usize).await {
            Ok(bytes) => full(bytes),
            Err(e) => {
                tracing::error!("blob {} read failed: {e}", entry.sha256);
                return text(StatusCode::INTERNAL_SERVER_ERROR, "stored file is damaged");
            }
        }
    } else {
        stream_body(
            blob,
            start..start + len,
            entry.sha256.clone(),
            shared.budget.clone(),
            (shared.stats.clone(), class),
        )
    };
    builder
        .body(body)
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response error"))
}

/// A body fed by a local task that reads the blob in [`CHUNK`]s; the bounded channel
/// holds at most one chunk while the next is read (bounded memory per response).
fn stream_body(
    blob: Blob,
    range: std::ops::Range<u64>,
    sha: String,
    budget: Arc<tokio::sync::Semaphore>,
    (stats, class): (Arc<crate::app::metrics::Serving>, RouteClass),
) -> ResBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
    tokio::task::spawn_local(async move {
        let mut off = range.start;
        let end = range.end;
        while off < end {
            let n = ((end - off) as usize).min(CHUNK);
            let res = read_budgeted(&budget, &blob, off, n).await;
            let failed = res.is_err();
            if let Err(e) = &res {
                tracing::error!("blob {sha} read failed mid-body at {off}: {e}");
            }
            if tx.send(res).await.is_err() || failed {
                return;
            }
            stats.sent(class, n as u64);
            off += n as u64;
        }
    });
    ChannelBody { rx }.boxed_unsync()
}

struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeReq::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeReq::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeReq::Part(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), RangeReq::Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), RangeReq::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeReq::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeReq::Full);
        assert_eq!(parse_range("items=0-1", 100), RangeReq::Full);
        assert_eq!(parse_range("bytes=9-3", 100), RangeReq::Full);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(path_is_safe("/repos/a/b/Packages/x/y.rpm"));
        assert!(!path_is_safe("/repos/a/../../etc/passwd"));
        assert!(!path_is_safe("/repos/a/%2e%2e/x"));
        assert!(!path_is_safe("/repos/a/%2E%2E/x"));
        assert!(!path_is_safe("/repos/a/b%2fc"));
        assert!(!path_is_safe("/repos/a\\b"));
        assert!(!path_is_safe("/repos/a/%00"));
        assert!(!path_is_safe("/repos/./a"));
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
