//! Talking to an upstream repository over HTTP: the client (client certificate, extra
//! CA, proxy), GETs with size limits, the retry loop every request goes through, the
//! digests yum metadata names files by, and [`UpstreamError`], whose kinds decide
//! whether a request is tried again and label `cairn_sync_upstream_errors_total`.

use std::time::Duration;

use futures_util::StreamExt;
use sha2::Digest;

use crate::app::config::RepoConfig;
use crate::formats::repodata::parse::{Checksum, Repomd};

/// Attempts per request (at one mirror).
pub const ATTEMPTS: u32 = 3;

/// Why one request to upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A status that is not a success.
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    /// The connection could not be made (DNS, refused, TLS handshake).
    #[error("{0}")]
    Connect(String),
    /// The request or the body timed out.
    #[error("{0}")]
    Timeout(String),
    /// The connection broke during the transfer.
    #[error("{0}")]
    Transfer(String),
    /// The body is larger than the limit for its kind of file.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// The body is larger than the size upstream's metadata declares.
    #[error("larger than the {0} bytes upstream declares")]
    LargerThanDeclared(u64),
    /// The body ended before the size upstream's metadata declares.
    #[error("{received} bytes received, upstream declares {declared}")]
    Short { received: u64, declared: u64 },
    #[error("{algorithm} checksum mismatch (expected {expected}, got {actual})")]
    Checksum {
        algorithm: String,
        expected: String,
        actual: String,
    },
    #[error("unsupported checksum type {0:?}")]
    UnsupportedChecksum(String),
    /// A resumed download's range was refused: the partial file is dropped and the
    /// next attempt starts over.
    #[error("HTTP 416 Range Not Satisfiable (starting over)")]
    RangeRefused,
    /// Writing what arrived failed (a full disk): not upstream's fault, not retried.
    #[error("{path}: {source}")]
    Local {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Staging what arrived in the pool failed (a full disk).
    #[error(transparent)]
    Pool(#[from] crate::store::pool::PoolError),
    /// Writing what arrived failed in a task that ended abnormally (a panic).
    #[error("writing the download: {0}")]
    Task(String),
    /// A mirror's repomd.xml is none of those its metalink lists (the mirror is
    /// behind, or what it serves was changed).
    #[error("not a repomd.xml the metalink lists ({0})")]
    NotInMetalink(String),
    /// A `file://` feed lacks the file.
    #[error("{}: no such file", .0.display())]
    NoFile(std::path::PathBuf),
    /// A `file://` feed's file cannot be read.
    #[error("{}: {message}", .path.display())]
    File {
        path: std::path::PathBuf,
        message: String,
    },
}

impl UpstreamError {
    /// Is another attempt worth it? Connection and transfer errors, time-outs, short
    /// bodies, server errors (5xx) and the statuses by which a server or proxy asks the
    /// client to come back later (408, 429).
    pub fn retryable(&self) -> bool {
        match self {
            UpstreamError::Status(s) => {
                s.is_server_error()
                    || *s == reqwest::StatusCode::REQUEST_TIMEOUT
                    || *s == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            UpstreamError::Connect(_)
            | UpstreamError::Timeout(_)
            | UpstreamError::Transfer(_)
            | UpstreamError::Short { .. }
            | UpstreamError::RangeRefused => true,
            UpstreamError::TooLarge(_)
            | UpstreamError::LargerThanDeclared(_)
            | UpstreamError::Checksum { .. }
            | UpstreamError::NotInMetalink(_)
            | UpstreamError::UnsupportedChecksum(_)
            | UpstreamError::Local { .. }
            | UpstreamError::Pool(_)
            | UpstreamError::Task(_)
            | UpstreamError::NoFile(_)
            | UpstreamError::File { .. } => false,
        }
    }

    /// Could another mirror do better? Anything upstream's: an error status (a mirror
    /// that lacks a file or is behind), a broken or timed-out transfer, bytes that do
    /// not verify. Not a failure on this side, nor a limit every mirror would hit.
    pub fn mirror_may_help(&self) -> bool {
        !matches!(
            self,
            UpstreamError::Local { .. }
                | UpstreamError::Pool(_)
                | UpstreamError::Task(_)
                | UpstreamError::TooLarge(_)
                | UpstreamError::UnsupportedChecksum(_)
        )
    }

    /// Every `kind` label of `cairn_sync_upstream_errors_total` ([`UpstreamError::kind`]
    /// and the sync's own "metadata").
    pub const KINDS: [&'static str; 7] = [
        "http", "connect", "timeout", "transfer", "size", "checksum", "metadata",
    ];

    /// The `kind` label of `cairn_sync_upstream_errors_total`; `None` for a failure
    /// on this side (writing what arrived), which is not upstream's.
    pub fn kind(&self) -> Option<&'static str> {
        Some(match self {
            UpstreamError::Status(_) | UpstreamError::RangeRefused | UpstreamError::NoFile(_) => {
                "http"
            }
            UpstreamError::File { .. } => "transfer",
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Transfer(_) => "transfer",
            UpstreamError::TooLarge(_)
            | UpstreamError::LargerThanDeclared(_)
            | UpstreamError::Short { .. } => "size",
            UpstreamError::Checksum { .. }
            | UpstreamError::UnsupportedChecksum(_)
            | UpstreamError::NotInMetalink(_) => "checksum",
            UpstreamError::Local { .. } | UpstreamError::Pool(_) | UpstreamError::Task(_) => {
                return None
            }
        })
    }

    /// A failed request or body read, by what reqwest says went wrong.
    pub fn from_reqwest(e: &reqwest::Error) -> UpstreamError {
        let text = chain(e);
        if e.is_timeout() {
            UpstreamError::Timeout(format!(
                "the upstream stopped answering (nothing within the repository's timeout): {text}"
            ))
        } else if e.is_connect() {
            UpstreamError::Connect(text)
        } else if e.is_body() || e.is_decode() {
            UpstreamError::Transfer(format!(
                "the connection broke while the body arrived (reset or closed early): {text}"
            ))
        } else {
            UpstreamError::Transfer(text)
        }
    }
}

/// An incremental digest of one of the algorithms yum metadata uses.
pub enum Hasher {
    Sha1(sha1::Sha1),
    /// Weak: accepted because dnf accepts it, with a warning in the sync's report.
    Md5(md5::Md5),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for `algorithm`, or [`UpstreamError::UnsupportedChecksum`].
    pub fn new(algorithm: &str) -> Result<Hasher, UpstreamError> {
        Ok(match algorithm {
            "md5" => Hasher::Md5(md5::Md5::new()),
            "sha1" | "sha" => Hasher::Sha1(sha1::Sha1::new()),
            "sha224" => Hasher::Sha224(sha2::Sha224::new()),
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha384" => Hasher::Sha384(sha2::Sha384::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            other => return Err(UpstreamError::UnsupportedChecksum(other.to_string())),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha224(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha384(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }

    /// Compares the digest with `expected`.
    pub fn check(self, expected: &Checksum) -> Result<String, UpstreamError> {
        let actual = self.hex();
        if actual != expected.hex {
            return Err(UpstreamError::Checksum {
                algorithm: expected.algorithm.clone(),
                expected: expected.hex.clone(),
                actual,
            });
        }
        Ok(actual)
    }
}

/// Checksum types that are accepted (dnf accepts them) but protect only against
/// accidents, not against someone who can change the bytes: a sync reports them.
pub fn is_weak(algorithm: &str) -> bool {
    matches!(algorithm, "md5" | "sha1" | "sha")
}

/// The warning for upstream metadata checked with weak checksums (md5, sha1): `records`
/// of repomd.xml and the packages whose checksum algorithms are `packages` use them.
pub fn weak_checksums<'a>(
    repomd: &'a Repomd,
    packages: impl Iterator<Item = &'a str>,
) -> Option<String> {
    let records = repomd
        .records
        .iter()
        .filter(|r| is_weak(&r.checksum.algorithm))
        .count();
    let mut weak_packages = 0;
    let mut algorithms: Vec<&str> = Vec::new();
    for a in repomd
        .records
        .iter()
        .map(|r| r.checksum.algorithm.as_str())
        .chain(packages.inspect(|a| weak_packages += usize::from(is_weak(a))))
        .filter(|a| is_weak(a))
        .map(|a| if a == "sha" { "sha1" } else { a })
    {
        if !algorithms.contains(&a) {
            algorithms.push(a);
        }
    }
    let packages = weak_packages;
    algorithms.sort_unstable();
    algorithms.dedup();
    if algorithms.is_empty() {
        return None;
    }
    Some(format!(
        "upstream names its files by {} checksums ({records} metadata file(s), {packages} package(s)): they were verified, but {} detects damage, not deliberate changes; prefer an https feed (Cairn republishes with sha256)",
        algorithms.join(" and "),
        if algorithms.len() == 1 { "it" } else { "each" },
    ))
}

/// Checks `data` against `expected`.
pub fn verify(data: &[u8], expected: &Checksum) -> Result<(), UpstreamError> {
    let mut h = Hasher::new(&expected.algorithm)?;
    h.update(data);
    h.check(expected).map(|_| ())
}

/// Why the HTTP client of a repository could not be made.
#[derive(Debug, thiserror::Error)]
#[error("repo {repo}: {what}: {message}")]
pub struct ClientError {
    pub repo: String,
    pub what: String,
    pub message: String,
}

/// The HTTP client for one repository: its client certificate, extra CA and proxy.
pub fn client(repo: &RepoConfig) -> Result<reqwest::Client, ClientError> {
    let fail = |what: String, message: String| ClientError {
        repo: repo.id.clone(),
        what,
        message,
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| fail(p.display().to_string(), e.to_string()))
    };
    let mut b = reqwest::Client::builder()
        .connect_timeout(repo.connect_timeout())
        .read_timeout(repo.idle_timeout())
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
    if let (Some(cert), Some(key)) = (&repo.tls_client_cert, &repo.tls_client_key) {
        let mut pem = read(cert)?;
        pem.push(b'\n');
        pem.extend(read(key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            fail(
                format!(
                    "client certificate {} / key {}",
                    cert.display(),
                    key.display()
                ),
                e.to_string(),
            )
        })?;
        b = b.identity(identity);
    }
    if let Some(ca) = &repo.tls_ca {
        let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?)
            .map_err(|e| fail(format!("CA {}", ca.display()), e.to_string()))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some(proxy) = &repo.proxy {
        let p = reqwest::Proxy::all(proxy)
            .map_err(|e| fail(format!("proxy {proxy:?}"), e.to_string()))?;
        b = b.proxy(p);
    }
    b.build()
        .map_err(|e| fail("HTTP client".into(), e.to_string()))
}

/// An error with its causes ("error sending request: … : certificate expired").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

/// GETs `url` into memory, refusing bodies larger than `limit`, with [`retrying`].
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, UpstreamError> {
    retrying(url, || fetch_once(client, url, limit)).await
}

/// One attempt of [`fetch`].
async fn fetch_once(
    client: &reqwest::Client,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, UpstreamError> {
    let resp = get(client, url).await?;
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(UpstreamError::TooLarge(limit));
    }
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| UpstreamError::from_reqwest(&e))?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(UpstreamError::TooLarge(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The size of the file at `url`, from the `Content-Length` of a HEAD request (with
/// [`retrying`]); a server that does not give one fails with [`UpstreamError::Transfer`].
pub async fn content_length(client: &reqwest::Client, url: &str) -> Result<u64, UpstreamError> {
    retrying(url, || content_length_once(client, url)).await
}

/// One attempt of [`content_length`].
pub async fn content_length_once(
    client: &reqwest::Client,
    url: &str,
) -> Result<u64, UpstreamError> {
    {
        let resp = client
            .head(url)
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))?;
        if !resp.status().is_success() {
            return Err(UpstreamError::Status(resp.status()));
        }
        resp.headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                UpstreamError::Transfer("the server gives no Content-Length for it".into())
            })
    }
}

/// GETs `url` (with `range` from that byte, if given): the response if its status is
/// a success.
pub async fn get_from(
    client: &reqwest::Client,
    url: &str,
    range: Option<u64>,
) -> Result<reqwest::Response, UpstreamError> {
    let mut req = client.get(url);
    if let Some(from) = range {
        req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| UpstreamError::from_reqwest(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(UpstreamError::Status(status));
    }
    Ok(resp)
}

/// GETs `url`: the response if its status is a success.
pub async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, UpstreamError> {
    get_from(client, url, None).await
}

/// Runs `attempt` (a request for `url`) until it succeeds, fails in a way another try
/// cannot mend ([`UpstreamError::retryable`]), or has run [`ATTEMPTS`] times; pauses
/// for [`backoff`] between tries, saying so in the log.
pub async fn retrying<T, F, Fut>(url: &str, mut attempt: F) -> Result<T, UpstreamError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, UpstreamError>>,
{
    let mut tried = 0;
    loop {
        tried += 1;
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(e) if e.retryable() && tried < ATTEMPTS => {
                let pause = backoff(tried);
                tracing::warn!("{url}: {e}; retrying in {} s", pause.as_secs_f32());
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The pause after failed attempt `attempt` (1, 2, …): 1 s, 2 s, 4 s…
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 << attempt.min(6))
}

#[cfg(test)]
mod tests {
    use super::UpstreamError;
    use reqwest::StatusCode;

    #[test]
    fn kinds_decide_retries_and_metric_labels() {
        let cases = [
            (UpstreamError::Status(StatusCode::NOT_FOUND), false, "http"),
            (
                UpstreamError::Status(StatusCode::SERVICE_UNAVAILABLE),
                true,
                "http",
            ),
            (
                UpstreamError::Status(StatusCode::TOO_MANY_REQUESTS),
                true,
                "http",
            ),
            (
                UpstreamError::Status(StatusCode::REQUEST_TIMEOUT),
                true,
                "http",
            ),
            (
                UpstreamError::Timeout("operation timed out".into()),
                true,
                "timeout",
            ),
            (
                UpstreamError::Connect("tcp connect error".into()),
                true,
                "connect",
            ),
            (
                UpstreamError::Transfer("connection reset".into()),
                true,
                "transfer",
            ),
            (
                UpstreamError::Short {
                    received: 10,
                    declared: 20,
                },
                true,
                "size",
            ),
            (UpstreamError::LargerThanDeclared(20), false, "size"),
            (UpstreamError::TooLarge(20), false, "size"),
            (
                UpstreamError::Checksum {
                    algorithm: "sha256".into(),
                    expected: "a".into(),
                    actual: "b".into(),
                },
                false,
                "checksum",
            ),
        ];
        for (e, retry, kind) in cases {
            assert_eq!(e.retryable(), retry, "{e}");
            assert_eq!(e.kind(), Some(kind), "{e}");
            assert!(UpstreamError::KINDS.contains(&kind), "{kind} is listed");
        }
        let full = UpstreamError::Local {
            path: "pool/tmp/x".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert!(!full.retryable());
        assert_eq!(full.kind(), None, "not upstream's failure");
        assert_eq!(
            UpstreamError::Status(StatusCode::NOT_FOUND).to_string(),
            "HTTP 404 Not Found"
        );
    }
}

/// The base of a feed URL: its path ending in `/`, and its query (`?token=…`) kept
/// apart so that paths are joined before it (see [`join`]).
pub fn base_url(feed: &str) -> String {
    let (path, query) = match feed.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (feed, None),
    };
    let slash = if path.ends_with('/') { "" } else { "/" };
    match query {
        Some(q) => format!("{path}{slash}?{q}"),
        None => format!("{path}{slash}"),
    }
}

/// `path` (relative, from upstream's metadata) under the feed `base` (from
/// [`base_url`]): joined to the base's path, with the base's query after it.
pub fn join(base: &str, path: &str) -> String {
    match base.split_once('?') {
        Some((dir, query)) => format!("{dir}{path}?{query}"),
        None => format!("{base}{path}"),
    }
}

#[cfg(test)]
mod join_tests {
    use super::{base_url, join};

    #[test]
    fn paths_are_joined_before_the_feeds_query() {
        let base = base_url("https://cdn.example/repo?token=abc");
        assert_eq!(base, "https://cdn.example/repo/?token=abc");
        assert_eq!(
            join(&base, "repodata/repomd.xml"),
            "https://cdn.example/repo/repodata/repomd.xml?token=abc"
        );
        let plain = base_url("https://m.example/el9/");
        assert_eq!(
            join(&plain, "Packages/a.rpm"),
            "https://m.example/el9/Packages/a.rpm"
        );
    }
}
