//! Building responses: bodies, plain-text and HTML answers, errors in the house
//! style, redirects.
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::handler::ResBody;
use super::pages::error_page;

pub(super) fn full(body: impl Into<Bytes>) -> ResBody {
    Full::new(body.into())
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

pub(super) fn empty() -> ResBody {
    Empty::<Bytes>::new()
        .map_err(|e: Infallible| match e {})
        .boxed_unsync()
}

pub(super) fn text(status: StatusCode, msg: &str) -> Response<ResBody> {
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

pub(super) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub(super) fn html_response(status: u16, body: String) -> Response<ResBody> {
    let mut r = uncached(body, "text/html; charset=utf-8");
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// A generated response (a page, a `.repo` file) that clients must not cache.
pub(super) fn uncached(body: String, content_type: &'static str) -> Response<ResBody> {
    let mut r = Response::new(full(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A 404 in the house style.
pub(super) fn not_found(message: &str) -> Response<ResBody> {
    let p = error_page(404, message);
    html_response(p.status, p.html)
}

pub(super) fn redirect(to: &str, exists: bool) -> Response<ResBody> {
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
