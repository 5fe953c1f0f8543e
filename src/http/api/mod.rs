//! The admin API under `/api/v1/`: JSON for automation, answered by the same [`App`]
//! operations the command line calls (and audited as the token's).
//!
//! Like pages, the API needs the catalog and the operations, which live on the control
//! runtime: a worker reads the request (its body bounded by [`MAX_BODY`]), sends it
//! over a channel and awaits the answer; the control runtime authenticates it
//! ([`auth`]), routes it ([`routes`]) and answers. Every error has one shape,
//! `{"error": {"code": "...", "message": "..."}}`, with its status; an internal
//! failure is logged in full and answered without details.

mod auth;
mod errors;
pub mod openapi;
mod routes;
mod upload;

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::handler::ResBody;
use super::respond::full;
use crate::app::context::App;

/// Largest request body the API reads (JSON documents).
pub const MAX_BODY: usize = 1024 * 1024;
/// API requests answered at the same time, at most.
pub const CONCURRENT_CALLS: usize = 16;
/// API requests waiting, at most; more are answered 503 at once.
pub const QUEUED_CALLS: usize = 256;

/// A request as the control runtime gets it.
#[derive(Debug)]
pub struct ApiRequest {
    pub method: Method,
    /// The path after `/api/v1`, percent-decoded, without the query.
    pub path: String,
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body's sha256 the client states (`X-Checksum-Sha256: HEX`, or `Digest:
    /// sha-256=BASE64`), as lower-case hex; `Some("")` when a header is there but
    /// unreadable.
    pub checksum: Option<String>,
    pub peer: IpAddr,
    pub body: Bytes,
}

/// Every error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// What a client branches on: `unauthenticated`, `forbidden`, `not_found`,
    /// `conflict`, `in_use`, `invalid`, `too_large`, `too_many_failures`, …
    pub code: String,
    /// For people.
    pub message: String,
}

/// An answer: status, JSON body and any extra headers; or a stream of server-sent
/// events.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub headers: Vec<(header::HeaderName, String)>,
    /// `text/event-stream` chunks, sent as they come, instead of `body`.
    pub events: Option<mpsc::Receiver<Bytes>>,
}

impl ApiResponse {
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> ApiResponse {
        let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
        ApiResponse {
            status,
            body,
            headers: Vec::new(),
            events: None,
        }
    }

    /// A stream of server-sent events from `events`.
    pub fn event_stream(events: mpsc::Receiver<Bytes>) -> ApiResponse {
        ApiResponse {
            status: StatusCode::OK,
            body: Vec::new(),
            headers: Vec::new(),
            events: Some(events),
        }
    }

    pub fn no_content() -> ApiResponse {
        ApiResponse {
            status: StatusCode::NO_CONTENT,
            body: Vec::new(),
            headers: Vec::new(),
            events: None,
        }
    }

    pub fn error(status: StatusCode, code: &str, message: &str) -> ApiResponse {
        ApiResponse::json(
            status,
            &ErrorBody {
                error: ErrorDetail {
                    code: code.to_string(),
                    message: message.to_string(),
                },
            },
        )
    }

    pub fn with_header(mut self, name: header::HeaderName, value: String) -> ApiResponse {
        self.headers.push((name, value));
        self
    }
}

/// A request to re-read the configuration, and where its outcome goes: what changed,
/// or the errors that kept the old configuration in force.
pub type ReloadRequest = oneshot::Sender<Result<serde_json::Value, String>>;

/// What workers ask of the control runtime.
enum Call {
    /// An API request.
    Request(ApiRequest, oneshot::Sender<ApiResponse>),
    /// An upload: the request (its body empty) and the body's chunks as they arrive.
    Upload(
        ApiRequest,
        mpsc::Receiver<Result<Bytes, String>>,
        oneshot::Sender<ApiResponse>,
    ),
    /// May this request see what needs a token of `scope` (for repository or view
    /// `owner`, or the installation)? (An answer refusing it, or `None`.)
    Access {
        authorization: Option<String>,
        peer: IpAddr,
        owner: Option<String>,
        scope: crate::app::tokens::Scope,
        reply: oneshot::Sender<Option<ApiResponse>>,
    },
    /// A package of an on_demand or streamed repository the pool lacks (see
    /// [`crate::app::ondemand`]).
    Fetch {
        sha256: String,
        range: Option<(u64, u64)>,
        head: bool,
        reply: oneshot::Sender<crate::app::ondemand::Fetched>,
    },
}

/// The workers' handle on the API.
#[derive(Clone)]
pub struct Api {
    tx: mpsc::Sender<Call>,
}

impl Api {
    /// Starts answering on the current (control) runtime, [`CONCURRENT_CALLS`] at a
    /// time.
    /// `app` is the current configuration's App (swapped on a reload); reload
    /// requests go to `reload`.
    pub fn start(
        app: std::sync::Arc<arc_swap::ArcSwap<App>>,
        reload: mpsc::Sender<ReloadRequest>,
    ) -> (Api, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Call>(QUEUED_CALLS);
        let calls = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_CALLS));
        let limiter = std::sync::Arc::new(auth::Limiter::default());
        let fetcher = std::sync::Arc::new(crate::app::ondemand::Fetcher::default());
        let task = tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                // A fetch waits for upstream: it takes no API slot.
                let call = match call {
                    Call::Fetch {
                        sha256,
                        range,
                        head,
                        reply,
                    } => {
                        let (app, fetcher) = (app.load_full(), fetcher.clone());
                        tokio::spawn(async move {
                            let fetched = fetcher.fetch(&app, &sha256, range, head).await;
                            let _ = reply.send(fetched);
                        });
                        continue;
                    }
                    other => other,
                };
                let Ok(permit) = calls.clone().acquire_owned().await else {
                    break;
                };
                let (app, limiter, reload) = (app.load_full(), limiter.clone(), reload.clone());
                tokio::spawn(async move {
                    match call {
                        Call::Request(req, reply) => {
                            let answer = routes::dispatch(&app, &limiter, &reload, req).await;
                            let _ = reply.send(answer);
                        }
                        Call::Upload(req, chunks, reply) => {
                            let answer = upload::receive(&app, &limiter, req, chunks).await;
                            let _ = reply.send(answer);
                        }
                        Call::Access {
                            authorization,
                            peer,
                            owner,
                            scope,
                            reply,
                        } => {
                            let refusal = auth::may_see(
                                &app,
                                &limiter,
                                peer,
                                authorization.as_deref(),
                                owner.as_deref(),
                                scope,
                            )
                            .await
                            .err();
                            let _ = reply.send(refusal);
                        }
                        Call::Fetch { .. } => {}
                    }
                    drop(permit);
                });
            }
        });
        (Api { tx }, task)
    }

    /// Package `sha256` from upstream (see [`crate::app::ondemand::Fetcher::fetch`]).
    pub async fn fetch(
        &self,
        sha256: &str,
        range: Option<(u64, u64)>,
        head: bool,
    ) -> crate::app::ondemand::Fetched {
        use crate::app::ondemand::Fetched;
        let (reply, answer) = oneshot::channel();
        let call = Call::Fetch {
            sha256: sha256.to_string(),
            range,
            head,
            reply,
        };
        if self.tx.send(call).await.is_err() {
            return Fetched::Unavailable("the server is shutting down".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Fetched::Unavailable("the fetch ended abnormally".into()))
    }

    async fn call(&self, req: ApiRequest) -> ApiResponse {
        let (reply, answer) = oneshot::channel();
        if self.tx.try_send(Call::Request(req, reply)).is_err() {
            return busy();
        }
        answer.await.unwrap_or_else(|_| {
            ApiResponse::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request ended abnormally (logged)",
            )
        })
    }
}

/// Sends an upload to the control runtime; see [`upload::forward`].
impl Api {
    fn send_upload(
        &self,
        req: ApiRequest,
        chunks: mpsc::Receiver<Result<Bytes, String>>,
    ) -> Result<oneshot::Receiver<ApiResponse>, ApiResponse> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Call::Upload(req, chunks, reply))
            .map_err(|_| busy())?;
        Ok(answer)
    }
}

fn busy() -> ApiResponse {
    ApiResponse::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "too many API requests are waiting: try again shortly",
    )
    .with_header(header::RETRY_AFTER, "1".into())
}

/// On a worker: the answer refusing `req` what needs a token of `scope` for `owner`
/// (the trees of a guarded repository or view; `None`: the installation, as the audit
/// page), or `None` when its token may.
pub async fn refuse(
    api: Option<&Api>,
    peer: std::net::SocketAddr,
    req: &Request<Incoming>,
    owner: Option<&str>,
    scope: crate::app::tokens::Scope,
) -> Option<Response<ResBody>> {
    let Some(api) = api else {
        // Nothing can check a token: nothing guarded is served.
        return Some(respond(ApiResponse::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server cannot check tokens",
        )));
    };
    let (reply, answer) = oneshot::channel();
    let call = Call::Access {
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        peer: peer.ip(),
        owner: owner.map(str::to_string),
        scope,
        reply,
    };
    if api.tx.try_send(call).is_err() {
        return Some(respond(busy()));
    }
    match answer.await {
        Ok(None) => None,
        Ok(Some(refusal)) => Some(respond(refusal)),
        Err(_) => Some(respond(ApiResponse::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "checking the token ended abnormally (logged)",
        ))),
    }
}

/// Answers a request under `/api/` on a worker: reads its body and hands it to the
/// control runtime.
pub async fn forward(
    api: Option<&Api>,
    peer: std::net::SocketAddr,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let Some(api) = api else {
        return respond(ApiResponse::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server has no API",
        ));
    };
    let raw = req.uri().path().to_string();
    let path = match raw.strip_prefix("/api/v1") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => {
            return respond(ApiResponse::error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such API: the API is under /api/v1/",
            ))
        }
    };
    let path = match percent_encoding::percent_decode_str(path).decode_utf8() {
        Ok(p) => p.into_owned(),
        Err(_) => {
            return respond(ApiResponse::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the path is not valid UTF-8",
            ))
        }
    };
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let checksum = upload::stated_checksum(req.headers());
    // An upload's body streams to the control runtime as it arrives.
    if method == Method::PUT && upload::is_upload(&path) {
        let meta = ApiRequest {
            method,
            path,
            query,
            authorization,
            checksum,
            peer: peer.ip(),
            body: Bytes::new(),
        };
        return respond(upload::forward(api, meta, req.into_body()).await);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        respond(ApiResponse::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("the request body is larger than {MAX_BODY} bytes"),
        ))
    };
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(_) => {
            return respond(ApiResponse::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            ))
        }
    };
    let answer = api
        .call(ApiRequest {
            method,
            path,
            query,
            authorization,
            checksum,
            peer: peer.ip(),
            body,
        })
        .await;
    respond(answer)
}

/// A response body fed by a channel (server-sent events); it ends when the sender
/// does, and the sender learns that the client left when sending fails.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c))))
    }
}

fn respond(answer: ApiResponse) -> Response<ResBody> {
    let streamed = answer.events.is_some();
    let body = match answer.events {
        Some(events) => ChannelBody(events).boxed_unsync(),
        None => full(Bytes::from(answer.body)),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = answer.status;
    let h = resp.headers_mut();
    if streamed {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
    } else if answer.status != StatusCode::NO_CONTENT {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}
