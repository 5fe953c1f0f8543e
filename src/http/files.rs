//! File responses: conditional requests (ETag, 304), single ranges (206/416), cache
//! headers by tree, and bodies read from the pool in memory or streamed.
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self};
use hyper::{Method, Request, Response, StatusCode};

use super::blob::{Blob, CHUNK, SMALL_FILE};
use super::budget::{holding, read_budgeted, reserve};
use super::cache::{CACHEABLE, UNBUDGETED};
use super::handler::{ResBody, Shared};
use super::index::{FileEntry, Tree};
use super::respond::{empty, full, text};
use crate::app::metrics::RouteClass;

pub(super) fn cache_control(tree: &Tree, path: &str) -> &'static str {
    if tree.immutable {
        "public, max-age=31536000, immutable"
    } else if path.ends_with("repodata/repomd.xml") || path.ends_with(".treeinfo") {
        // What names every other file (a tree's variants have their own) is checked
        // again on every use.
        "no-cache"
    } else {
        "public, max-age=300"
    }
}

pub(super) fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// RFC 9110 §13.1.5: whether a `Range` may be honoured given the request's `If-Range`
/// value. An entity tag must match the current one by strong comparison (a weak tag
/// never does); a date must equal the current `Last-Modified`. Otherwise the client
/// holds another version of the file and gets the whole current body (200).
pub(super) fn if_range_allows(if_range: &str, etag: &str, last_modified: &str) -> bool {
    let v = if_range.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        return v == etag;
    }
    match (
        httpdate::parse_http_date(v),
        httpdate::parse_http_date(last_modified),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
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
pub(super) async fn cached_body(
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

pub(super) async fn serve_file(
    shared: &Shared,
    req: &Request<Incoming>,
    entry: &FileEntry,
    cache: &'static str,
    class: RouteClass,
) -> Response<ResBody> {
    let builder = Response::builder()
        .header(header::ETAG, entry.etag.clone())
        .header(header::LAST_MODIFIED, entry.last_modified.clone())
        .header(header::CACHE_CONTROL, cache)
        .header(header::ACCEPT_RANGES, "bytes");
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|inm| etag_matches(inm, entry.etag.to_str().unwrap_or_default())) {
        return respond(builder.status(StatusCode::NOT_MODIFIED), empty());
    }
    let size = entry.size;
    // A Range applies only when If-Range (if any) names the current version.
    let range_applies = match req.headers().get(header::IF_RANGE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| {
            if_range_allows(
                v,
                entry.etag.to_str().unwrap_or_default(),
                entry.last_modified.to_str().unwrap_or_default(),
            )
        }),
    };
    let range = req
        .headers()
        .get(header::RANGE)
        .filter(|_| range_applies)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size))
        .unwrap_or(RangeReq::Full);
    let (builder, start, len) = match range {
        RangeReq::Full => (builder.status(StatusCode::OK), 0, size),
        RangeReq::Part(s, e) => (
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{size}")),
            s,
            e - s + 1,
        ),
        RangeReq::Unsatisfiable => {
            let builder = builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"));
            return respond(builder, empty());
        }
    };
    let builder = builder
        .header(header::CONTENT_TYPE, entry.content_type)
        .header(header::CONTENT_LENGTH, len);
    let head_only = req.method() == Method::HEAD;
    let cached = shared.small.borrow().get(&entry.sha256);
    let body = match cached {
        Some(_) if head_only => Ok(empty()),
        Some(data) => {
            let range = start as usize..(start + len) as usize;
            cached_body(&shared.budget, data, range)
                .await
                .map_err(|e| failed(entry, "read", e, "response error"))
        }
        None => match open_blob(shared, entry).await {
            Ok(_) if head_only => Ok(empty()),
            Ok(blob) => read_body(shared, entry, blob, start, len, class).await,
            Err(Opened::Missing(e)) => {
                let partial = (start, len) != (0, size);
                return fetched(shared, entry, builder, (start, len), partial, head_only, e).await;
            }
            Err(Opened::Refused(refused)) => return refused,
        },
    };
    match body {
        Ok(body) => respond(builder, body),
        Err(refused) => refused,
    }
}

/// The response `builder` makes with `body`.
fn respond(builder: hyper::http::response::Builder, body: ResBody) -> Response<ResBody> {
    builder
        .body(body)
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response error"))
}

/// Logs a failure with a blob and answers 500 with `shown`.
fn failed(entry: &FileEntry, what: &str, e: io::Error, shown: &str) -> Response<ResBody> {
    tracing::error!("blob {} {what} failed: {e}", entry.sha256);
    text(StatusCode::INTERNAL_SERVER_ERROR, shown)
}

/// Why a blob could not be served from the pool.
enum Opened {
    /// The pool has no such file (a package fetched on demand, or a lost blob).
    Missing(io::Error),
    /// The answer to give.
    Refused(Response<ResBody>),
}

/// Opens the blob of `entry`, checking its size against the catalog's.
async fn open_blob(shared: &Shared, entry: &FileEntry) -> Result<Blob, Opened> {
    let path = shared.pool.path_of(&entry.sha256);
    match Blob::open(shared.mode, &path).await {
        Ok((blob, on_disk)) if on_disk == entry.size => Ok(blob),
        Ok((_, on_disk)) => {
            tracing::error!(
                "blob {} is {on_disk} bytes on disk, {} in the catalog: run `cairn db verify`",
                entry.sha256,
                entry.size
            );
            Err(Opened::Refused(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored file is damaged",
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Opened::Missing(e)),
        Err(e) => Err(Opened::Refused(failed(
            entry,
            "open",
            e,
            "stored file is missing",
        ))),
    }
}

/// Answers for a blob the pool lacks: a package of an on_demand or streamed
/// repository is fetched from upstream (502 when upstream cannot give it); anything
/// else is a lost blob (500, as before).
async fn fetched(
    shared: &Shared,
    entry: &FileEntry,
    builder: hyper::http::response::Builder,
    (start, len): (u64, u64),
    partial: bool,
    head_only: bool,
    missing: io::Error,
) -> Response<ResBody> {
    use crate::app::ondemand::Fetched;
    let Some(api) = shared.api.as_ref() else {
        return failed(entry, "open", missing, "stored file is missing");
    };
    let range = partial.then_some((start, start + len));
    match api.fetch(&entry.sha256, range, head_only).await {
        Fetched::Known => respond(builder, empty()),
        Fetched::Body(rx) => respond(builder, ChannelBody { rx }.boxed_unsync()),
        Fetched::Unavailable(why) => {
            tracing::warn!(
                "package {} is not in the pool and upstream cannot give it: {why}",
                entry.sha256
            );
            text(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "This package is not stored here yet and its upstream cannot give it now ({why}). \
                     Try again later; `cairn repo fetch` stores what a tree lacks while upstream has it.\n"
                ),
            )
        }
        Fetched::Unknown => failed(entry, "open", missing, "stored file is missing"),
    }
}

/// The body of bytes `start..start + len` of `blob`: a small blob read whole (within
/// the budget when large) and kept for the next request, a small range read at once,
/// anything larger streamed.
async fn read_body(
    shared: &Shared,
    entry: &FileEntry,
    blob: Blob,
    start: u64,
    len: u64,
    class: RouteClass,
) -> Result<ResBody, Response<ResBody>> {
    let size = entry.size;
    if size <= CACHEABLE {
        let read = async {
            let permit = if size as usize > UNBUDGETED {
                Some(reserve(&shared.budget, size as usize).await?)
            } else {
                None
            };
            Ok::<_, io::Error>((blob.read_exact_at(0, size as usize).await?, permit))
        };
        let (bytes, permit) = read
            .await
            .map_err(|e| failed(entry, "read", e, "stored file is damaged"))?;
        // Kept in memory and served from there from now on: checked once, here, so a
        // damaged blob is never cached (nor served) as if it were whole.
        let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if actual != entry.sha256 {
            tracing::error!(
                "blob {} is damaged (its bytes hash to {actual}): run `cairn db verify --repair`",
                entry.sha256
            );
            return Err(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored file is damaged",
            ));
        }
        shared.small.borrow_mut().put(&entry.sha256, bytes.clone());
        let part = bytes.slice(start as usize..(start + len) as usize);
        return Ok(full(match permit {
            Some(permit) => holding(part, permit),
            None => part,
        }));
    }
    if len <= SMALL_FILE {
        return read_budgeted(&shared.budget, &blob, start, len as usize)
            .await
            .map(full)
            .map_err(|e| failed(entry, "read", e, "stored file is damaged"));
    }
    Ok(stream_body(
        blob,
        start..start + len,
        entry.sha256.clone(),
        shared.budget.clone(),
        (shared.stats.clone(), class),
    ))
}

/// A body fed by a local task that reads the blob in [`CHUNK`]s; the bounded channel
/// holds at most one chunk while the next is read (bounded memory per response).
pub(super) fn stream_body(
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

pub(super) struct ChannelBody {
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
    use super::{etag_matches, if_range_allows, parse_range, RangeReq};

    #[test]
    fn if_range_needs_the_current_strong_etag_or_the_exact_date() {
        let (etag, date) = ("\"abc\"", "Fri, 04 Dec 2026 10:00:00 GMT");
        assert!(if_range_allows("\"abc\"", etag, date));
        assert!(!if_range_allows("\"old\"", etag, date));
        assert!(
            !if_range_allows("W/\"abc\"", etag, date),
            "weak never matches"
        );
        assert!(if_range_allows(date, etag, date));
        assert!(!if_range_allows(
            "Fri, 04 Dec 2026 10:00:01 GMT",
            etag,
            date
        ));
        assert!(!if_range_allows("not a date", etag, date));
    }

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
    fn etags() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
