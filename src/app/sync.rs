//! Mirroring an upstream yum/dnf repository (`cairn repo sync`).
//!
//! A sync fetches `repodata/repomd.xml`; if its bytes equal those of the last successful
//! sync, nothing else happens. Otherwise it fetches primary, filelists and other,
//! verifies each against repomd's checksum, reads them as a stream in lockstep, applies
//! the repository's filters, and downloads the packages the pool does not already hold
//! (in parallel, with retries, verified against upstream's checksum and size; the pool
//! always stores by sha256). The catalog is filled from upstream's metadata, so RPMs are
//! never opened.
//!
//! Every request, for metadata or a package, is tried up to three times when it fails
//! in a way that may pass: a connection or transfer error, a server error (5xx), or a
//! 408 or 429 asking the client to come back later; the pauses between attempts are 1 s
//! and then 2 s. A 404, a checksum mismatch or an oversized body fails at once.
//!
//! All or nothing: if any package fails, the sync names every failure, records it in
//! the sync history and leaves the repository's content and `latest` exactly as they
//! were. What was downloaded and verified stays in the pool, so the next run fetches
//! only what is missing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use crate::app::config::{RepoConfig, SyncMode};
use crate::app::ingest::{self, IngestError};
use crate::app::progress::Progress;
use crate::app::publish::{self, PublishError};
use crate::domain::package::Package;
use crate::domain::status::RunStatus;
use crate::formats::repodata::parse::{
    self, Checksum, PackageStream, ParseError, PrimaryEntry, Repomd,
};
use crate::formats::repodata::updateinfo::{self, Nevra};
use crate::formats::repodata::{xml, ExtraKind};
use crate::store::catalog::{Catalog, CatalogError, ExtraRef, PlacedFragments, SyncRun};
use crate::store::datadir::DataDir;
use crate::store::pool::{Pool, PoolError, Staged, Stager};

/// Largest repomd.xml accepted.
const MAX_REPOMD: u64 = 16 * 1024 * 1024;
/// Largest compressed metadata file accepted.
const MAX_METADATA: u64 = 4 * 1024 * 1024 * 1024;
/// Largest decompressed metadata file accepted.
const MAX_OPEN_METADATA: u64 = 32 * 1024 * 1024 * 1024;
/// Largest package accepted.
const MAX_PACKAGE: u64 = 64 * 1024 * 1024 * 1024;
/// Packages up to this size are downloaded into memory before being written.
const IN_MEMORY: u64 = 4 * 1024 * 1024;
/// Attempts per download.
const ATTEMPTS: u32 = 3;

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("repository {0:?} has no feed (it is a local repository)")]
    NoFeed(String),
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: {algorithm} checksum mismatch (expected {expected}, got {actual})")]
    Checksum {
        url: String,
        algorithm: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{} package(s) failed:\n{}", .0.len(), .0.iter().map(|(p, e)| format!("  {p}: {e}")).collect::<Vec<_>>().join("\n"))]
    Packages(Vec<(String, String)>),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("{0}")]
    Other(String),
}

/// The kind of an upstream error message (a `cairn_sync_upstream_errors_total` label).
pub fn error_kind(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.starts_with("http ") {
        "http"
    } else if m.contains("checksum mismatch") {
        "checksum"
    } else if m.contains("bytes received") || m.contains("larger than") {
        "size"
    } else if m.contains("timed out") || m.contains("timeout") {
        "timeout"
    } else if m.contains("reset") || m.contains("closed") || m.contains("end of") {
        "transfer"
    } else if m.contains("connect") || m.contains("dns") || m.contains("resolve") {
        "connect"
    } else {
        "transfer"
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    /// [`RunStatus::Ok`] or [`RunStatus::Unchanged`].
    pub status: RunStatus,
    pub packages: usize,
    pub added: usize,
    pub removed: usize,
    pub downloaded: usize,
    pub bytes: u64,
}

/// An incremental digest of one of the algorithms yum metadata uses.
enum Hasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: &str) -> Option<Hasher> {
        Some(match algorithm {
            "sha1" | "sha" => Hasher::Sha1(sha1::Sha1::new()),
            "sha224" => Hasher::Sha224(sha2::Sha224::new()),
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha384" => Hasher::Sha384(sha2::Sha384::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha224(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha384(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

fn verify(url: &str, data: &[u8], expected: &Checksum) -> Result<(), SyncError> {
    let mut h = Hasher::new(&expected.algorithm).ok_or_else(|| SyncError::Http {
        url: url.to_string(),
        message: format!("unsupported checksum type {:?}", expected.algorithm),
    })?;
    h.update(data);
    let actual = h.hex();
    if actual != expected.hex {
        return Err(SyncError::Checksum {
            url: url.to_string(),
            algorithm: expected.algorithm.clone(),
            expected: expected.hex.clone(),
            actual,
        });
    }
    Ok(())
}

/// The HTTP client for one repository: its client certificate, extra CA and proxy.
fn client(repo: &RepoConfig) -> Result<reqwest::Client, SyncError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| SyncError::Other(format!("repo {}: {}: {e}", repo.id, p.display())))
    };
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
    if let (Some(cert), Some(key)) = (&repo.tls_client_cert, &repo.tls_client_key) {
        let mut pem = read(cert)?;
        pem.push(b'\n');
        pem.extend(read(key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            SyncError::Other(format!(
                "repo {}: client certificate {} / key {}: {e}",
                repo.id,
                cert.display(),
                key.display()
            ))
        })?;
        b = b.identity(identity);
    }
    if let Some(ca) = &repo.tls_ca {
        let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?)
            .map_err(|e| SyncError::Other(format!("repo {}: CA {}: {e}", repo.id, ca.display())))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some(proxy) = &repo.proxy {
        let p = reqwest::Proxy::all(proxy)
            .map_err(|e| SyncError::Other(format!("repo {}: proxy {proxy:?}: {e}", repo.id)))?;
        b = b.proxy(p);
    }
    b.build()
        .map_err(|e| SyncError::Other(format!("repo {}: HTTP client: {e}", repo.id)))
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
async fn fetch(client: &reqwest::Client, url: &str, limit: u64) -> Result<Vec<u8>, SyncError> {
    retrying(url, || fetch_once(client, url, limit))
        .await
        .map_err(|message| SyncError::Http {
            url: url.to_string(),
            message,
        })
}

/// One attempt of [`fetch`]; the error says whether another attempt may succeed.
async fn fetch_once(
    client: &reqwest::Client,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, (String, bool)> {
    let resp = get(client, url).await?;
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err((format!("larger than {limit} bytes"), false));
    }
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| (chain(&e), true))?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err((format!("larger than {limit} bytes"), false));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// GETs `url`: the response if its status is a success, else why not and whether another
/// attempt may succeed.
async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, (String, bool)> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| (chain(&e), true))?;
    let status = resp.status();
    if !status.is_success() {
        return Err((format!("HTTP {status}"), retryable(status)));
    }
    Ok(resp)
}

/// Runs `attempt` (a request for `url`) until it succeeds, fails in a way another try
/// cannot mend (its error's `false`), or has run [`ATTEMPTS`] times; pauses for
/// [`backoff`] between tries, saying so in the log.
async fn retrying<T, F, Fut>(url: &str, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, (String, bool)>>,
{
    let mut tried = 0;
    loop {
        tried += 1;
        match attempt().await {
            Ok(done) => return Ok(done),
            Err((message, true)) if tried < ATTEMPTS => {
                let pause = backoff(tried);
                tracing::warn!("{url}: {message}; retrying in {} s", pause.as_secs_f32());
                tokio::time::sleep(pause).await;
            }
            Err((message, _)) => return Err(message),
        }
    }
}

/// Is a failed request with this status worth another attempt? Server errors, and the
/// statuses by which a server or proxy asks the client to come back later.
fn retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// The pause after failed attempt `attempt` (1, 2, …): 1 s, 2 s, 4 s…
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 << attempt.min(6))
}

/// What the package downloads of one sync share.
struct Downloads<'a> {
    client: &'a reqwest::Client,
    pool: &'a Pool,
    /// Writes small verified packages into the pool.
    stager: &'a Stager,
    /// Bytes of packages received so far (the progress display's).
    received: &'a AtomicU64,
}

/// The bytes one download attempt adds to [`Downloads::received`], taken back if the
/// attempt fails (the next attempt counts what it keeps again).
struct Received<'a> {
    total: &'a AtomicU64,
    mine: AtomicU64,
}

impl Received<'_> {
    fn add(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
        self.mine.fetch_add(n, Ordering::Relaxed);
    }

    fn take_back(&self) {
        self.total
            .fetch_sub(self.mine.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Downloads one package into the pool's temp area, verifying size and checksum, with
/// [`retrying`].
async fn download(
    d: &Downloads<'_>,
    url: &str,
    expected: &Checksum,
    size: u64,
    partial_key: &str,
) -> Result<(Staged, u64), String> {
    retrying(url, || async {
        let received = Received {
            total: d.received,
            mine: AtomicU64::new(0),
        };
        let result = if size > IN_MEMORY {
            download_resumable(d, &received, url, expected, size, partial_key).await
        } else {
            download_small(d, &received, url, expected, size)
                .await
                .map(|s| (s, size))
        };
        if result.is_err() {
            received.take_back();
        }
        result
    })
    .await
}

/// Downloads a small package into memory, verifies it, and stages it in one write.
async fn download_small(
    d: &Downloads<'_>,
    received: &Received<'_>,
    url: &str,
    expected: &Checksum,
    size: u64,
) -> Result<Staged, (String, bool)> {
    let resp = get(d.client, url).await?;
    let mut upstream = Hasher::new(&expected.algorithm).ok_or_else(|| {
        (
            format!("unsupported checksum type {:?}", expected.algorithm),
            false,
        )
    })?;
    let mut data = Vec::with_capacity(size as usize);
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| (e.to_string(), true))?;
        if data.len() as u64 + chunk.len() as u64 > size {
            return Err((
                format!("larger than the {size} bytes upstream declares"),
                false,
            ));
        }
        data.extend_from_slice(&chunk);
        received.add(chunk.len() as u64);
    }
    if data.len() as u64 != size {
        return Err((
            format!("{} bytes received, upstream declares {size}", data.len()),
            true,
        ));
    }
    upstream.update(&data);
    let actual = upstream.hex();
    if actual != expected.hex {
        return Err((
            format!(
                "{} checksum mismatch (expected {}, got {actual})",
                expected.algorithm, expected.hex
            ),
            false,
        ));
    }
    if expected.algorithm == "sha256" {
        // Just verified over these bytes: no second hash, and the write is queued.
        return d
            .stager
            .stage_hashed(d.pool, data, actual)
            .map_err(|e| (e.to_string(), false));
    }
    let pool = d.pool.clone();
    tokio::task::spawn_blocking(move || pool.stage_bytes(&data))
        .await
        .map_err(|e| (e.to_string(), false))?
        .map_err(|e| (e.to_string(), false))
}

/// Downloads a large package into `pool/tmp/partial-<key>`, resuming with a Range
/// request from whatever an earlier attempt or an interrupted run left there. Returns
/// the staged blob and the bytes transferred by this attempt.
async fn download_resumable(
    d: &Downloads<'_>,
    received: &Received<'_>,
    url: &str,
    expected: &Checksum,
    size: u64,
    partial_key: &str,
) -> Result<(Staged, u64), (String, bool)> {
    use tokio::io::AsyncReadExt;
    let part = d.pool.partial_path(partial_key);
    let io = |e: std::io::Error| (format!("{}: {e}", part.display()), false);
    let mut have = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if have >= size {
        have = 0;
    }
    let mut req = d.client.get(url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let resp = req.send().await.map_err(|e| (chain(&e), true))?;
    let status = resp.status();
    if !status.is_success() {
        if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            let _ = tokio::fs::remove_file(&part).await;
        }
        return Err((
            format!("HTTP {status}"),
            retryable(status) || status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE,
        ));
    }
    let resumed = have > 0 && status == reqwest::StatusCode::PARTIAL_CONTENT;
    let mut upstream = Hasher::new(&expected.algorithm).ok_or_else(|| {
        (
            format!("unsupported checksum type {:?}", expected.algorithm),
            false,
        )
    })?;
    let mut sha256 = sha2::Sha256::new();
    let mut written = 0u64;
    if resumed {
        // Re-hash what is already there.
        let mut f = tokio::fs::File::open(&part).await.map_err(io)?;
        let mut buf = vec![0u8; 256 * 1024];
        while written < have {
            let n = f.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            let n = n.min((have - written) as usize);
            upstream.update(&buf[..n]);
            sha256.update(&buf[..n]);
            written += n as u64;
        }
        tracing::info!("{url}: resuming at byte {written}");
        received.add(written);
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(!resumed)
        .append(resumed)
        .open(&part)
        .await
        .map_err(io)?;
    let start = written;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| (chain(&e), true))?;
        written += chunk.len() as u64;
        if written > size {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            return Err((
                format!("larger than the {size} bytes upstream declares"),
                false,
            ));
        }
        upstream.update(&chunk);
        sha256.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
        received.add(chunk.len() as u64);
    }
    file.flush().await.map_err(io)?;
    drop(file);
    if written != size {
        // Keep the partial file: the next attempt resumes from it.
        return Err((
            format!("{written} bytes received, upstream declares {size}"),
            true,
        ));
    }
    let actual = upstream.hex();
    if actual != expected.hex {
        let _ = tokio::fs::remove_file(&part).await;
        return Err((
            format!(
                "{} checksum mismatch (expected {}, got {actual})",
                expected.algorithm, expected.hex
            ),
            false,
        ));
    }
    // Complete and verified: from here it is this process's temp file, kept however long
    // the rest of the sync takes and removed as a leftover only once the process ended.
    let tmp = d.pool.new_tmp_path();
    tokio::fs::rename(&part, &tmp).await.map_err(io)?;
    Ok((
        d.pool.adopt(tmp, hex::encode(sha256.finalize()), size),
        written - start,
    ))
}

/// Mirror mode: every record repomd.xml names (verified), repomd.xml itself and its
/// detached signature when upstream has one, as (path, kind, bytes).
async fn fetch_all_records(
    client: &reqwest::Client,
    base: &str,
    repomd: &Repomd,
    repomd_bytes: &[u8],
) -> Result<Vec<(String, String, Vec<u8>)>, SyncError> {
    let mut out = Vec::new();
    for record in &repomd.records {
        let url = format!("{base}{}", record.href);
        let limit = record.size.map_or(MAX_METADATA, |s| s.min(MAX_METADATA));
        let bytes = fetch(client, &url, limit).await?;
        verify(&url, &bytes, &record.checksum)?;
        out.push((record.href.clone(), record.kind.clone(), bytes));
    }
    out.push((
        "repodata/repomd.xml".to_string(),
        "repomd".to_string(),
        repomd_bytes.to_vec(),
    ));
    let asc_url = format!("{base}repodata/repomd.xml.asc");
    match fetch(client, &asc_url, MAX_REPOMD).await {
        Ok(asc) => out.push(("repodata/repomd.xml.asc".into(), "repomd_asc".into(), asc)),
        Err(SyncError::Http { message, .. }) if message.starts_with("HTTP 404") => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// Records a mirror-mode publication: upstream's metadata bytes, unchanged.
async fn publish_mirror(
    catalog: &Catalog,
    pool: &Pool,
    files: &[(String, String, Vec<u8>)],
    items: &[PlacedFragments],
) -> Result<i64, SyncError> {
    let mut key = sha2::Sha256::new();
    key.update(b"mirror\n");
    let mut staged = Vec::new();
    let mut records = Vec::new();
    for (path, kind, bytes) in files {
        let s = pool.stage_bytes(bytes)?;
        key.update(path.as_bytes());
        key.update(b" ");
        key.update(s.sha256.as_bytes());
        key.update(b"\n");
        records.push(crate::store::catalog::PublicationFile {
            path: path.clone(),
            kind: kind.clone(),
            sha256: s.sha256.clone(),
            size: s.size as i64,
        });
        staged.push(s);
    }
    pool.commit_async(staged).await?;
    let key = format!(
        "{}{}",
        publish::MIRROR_KEY_PREFIX,
        hex::encode(key.finalize())
    );
    let revision = items.iter().map(|i| i.time_file).max().unwrap_or(0);
    Ok(catalog
        .insert_publication(&key, revision, items.len() as i64, &records)
        .await?)
}

/// Fetches, verifies and decompresses upstream's comps, updateinfo and modules (those it
/// has); updateinfo is trimmed to the packages in `keep`.
async fn fetch_extras(
    client: &reqwest::Client,
    base: &str,
    repomd: &Repomd,
    keep: &HashSet<Nevra>,
) -> Result<Vec<(ExtraKind, Vec<u8>)>, SyncError> {
    use std::io::Read;
    let mut out = Vec::new();
    for kind in ExtraKind::ALL {
        let record = match kind {
            // Plain "group" first; else any compressed group_* (not zchunk).
            ExtraKind::Comps => repomd.record("group").or_else(|| {
                repomd
                    .records
                    .iter()
                    .find(|r| r.kind.starts_with("group_") && !r.kind.ends_with("_zck"))
            }),
            ExtraKind::Updateinfo => repomd.record("updateinfo"),
            ExtraKind::Modules => repomd.record("modules"),
        };
        let Some(record) = record else { continue };
        let url = format!("{base}{}", record.href);
        let limit = record.size.map_or(MAX_METADATA, |s| s.min(MAX_METADATA));
        let bytes = fetch(client, &url, limit).await?;
        verify(&url, &bytes, &record.checksum)?;
        let open_limit = record
            .open_size
            .map_or(MAX_OPEN_METADATA, |s| s.min(MAX_OPEN_METADATA));
        let mut open = Vec::new();
        parse::decompress(&bytes, open_limit, &url)?
            .read_to_end(&mut open)
            .map_err(|source| ParseError::Io {
                file: url.clone(),
                source,
            })?;
        if kind == ExtraKind::Updateinfo {
            let (trimmed, count) = updateinfo::trim(&open, keep, &url)?;
            tracing::info!("{url}: {count} advisories apply to the mirrored packages");
            open = trimmed;
        }
        out.push((kind, open));
    }
    Ok(out)
}

/// A finished download (the staged blob and the bytes this run transferred) or why not.
type Downloaded = Result<(Staged, u64), String>;

/// Does the repository's config keep this package?
struct Filter {
    arch: Vec<String>,
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
}

impl Filter {
    fn new(repo: &RepoConfig) -> Result<Filter, SyncError> {
        let set = |globs: &[String]| -> Result<Option<globset::GlobSet>, SyncError> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut b = globset::GlobSetBuilder::new();
            for g in globs {
                b.add(
                    globset::Glob::new(g)
                        .map_err(|e| SyncError::Other(format!("glob {g:?}: {e}")))?,
                );
            }
            b.build()
                .map(Some)
                .map_err(|e| SyncError::Other(e.to_string()))
        };
        Ok(Filter {
            arch: repo.arch.clone(),
            include: set(&repo.include)?,
            exclude: set(&repo.exclude)?,
        })
    }

    fn keeps(&self, p: &Package) -> bool {
        (self.arch.is_empty() || self.arch.contains(&p.arch))
            && self.include.as_ref().is_none_or(|s| s.is_match(&p.name))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(&p.name))
    }
}

/// Keeps the newest `n` versions of each name.arch, in rpm version order.
fn keep_newest(entries: Vec<PrimaryEntry>, n: usize) -> Vec<PrimaryEntry> {
    let evr = |p: &Package| format!("{}:{}-{}", p.epoch, p.version, p.release);
    let mut groups: HashMap<(String, String), Vec<PrimaryEntry>> = HashMap::new();
    for e in entries {
        groups
            .entry((e.package.name.clone(), e.package.arch.clone()))
            .or_default()
            .push(e);
    }
    let mut out = Vec::new();
    for (_, mut group) in groups {
        group.sort_by(|a, b| rpm_version::rpm_evr_compare(&evr(&b.package), &evr(&a.package)));
        // Distinct versions: two builds of one EVR count once.
        let mut kept_versions: Vec<String> = Vec::new();
        for e in group {
            let v = evr(&e.package);
            if !kept_versions.contains(&v) {
                if kept_versions.len() == n {
                    continue;
                }
                kept_versions.push(v);
            }
            out.push(e);
        }
    }
    out
}

/// Syncs one mirrored repository, recording the run in the sync history.
pub async fn sync(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    repo: &RepoConfig,
    progress: &Progress,
) -> Result<SyncReport, SyncError> {
    let feed = repo
        .feed
        .clone()
        .ok_or_else(|| SyncError::NoFeed(repo.id.clone()))?;
    let base = if feed.ends_with('/') {
        feed
    } else {
        format!("{feed}/")
    };
    // One sync of a repository at a time; its content is replaced under the write lock,
    // taken only for that (see `datadir`).
    let locking =
        |e: std::io::Error| SyncError::Other(format!("locking repository {}: {e}", repo.id));
    let _sync_lock = match datadir.try_lock_sync(&repo.id).map_err(locking)? {
        Some(lock) => lock,
        None => {
            tracing::info!(
                "{}: another sync of it is running; waiting for it to end",
                repo.id
            );
            datadir.lock_sync_async(&repo.id).await.map_err(locking)?
        }
    };
    let repo_id = catalog.ensure_repo(&repo.id).await?;
    let interrupted = catalog.interrupt_sync_runs(repo_id).await?;
    if interrupted > 0 {
        tracing::warn!(
            "{}: {interrupted} earlier sync(s) ended without a result (killed?); recorded as failed",
            repo.id
        );
    }
    let run_id = catalog.start_sync_run(repo_id).await?;
    let mut run = SyncRun {
        id: run_id,
        ..Default::default()
    };
    let target = Target {
        repo,
        repo_id,
        base,
    };
    let result = sync_locked(catalog, pool, datadir, &target, &mut run, progress).await;
    match &result {
        Ok(report) => run.status = report.status,
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
            let m = crate::app::metrics::metrics();
            match e {
                SyncError::Packages(failures) => {
                    for (_, message) in failures {
                        m.upstream_error(&repo.id, error_kind(message));
                    }
                }
                SyncError::Http { message, .. } => m.upstream_error(&repo.id, error_kind(message)),
                SyncError::Checksum { .. } => m.upstream_error(&repo.id, "checksum"),
                SyncError::Parse(_) => m.upstream_error(&repo.id, "metadata"),
                _ => {}
            }
        }
    }
    catalog.finish_sync_run(&run).await?;
    result
}

/// How a sync gets the publication of its new content.
enum Publishing {
    /// Mirror mode: upstream's metadata bytes, for these packages.
    Mirror(Vec<PlacedFragments>),
    /// Regenerated repodata, found or being rendered.
    Regenerated(publish::Pending),
}

/// The repository a sync works on: its config, catalog id and feed URL ending in `/`.
struct Target<'a> {
    repo: &'a RepoConfig,
    repo_id: i64,
    base: String,
}

/// Remembers what the non-sha256 checksums upstream names packages by stand for (also
/// for the downloads of a failed run: they are in the pool). Call only once the blobs
/// are durable.
async fn remember_checksums(
    catalog: &Catalog,
    entries: &[PrimaryEntry],
    known: &HashMap<usize, String>,
) -> Result<(), SyncError> {
    let mut learned: HashMap<&str, Vec<(String, String)>> = HashMap::new();
    for (&i, sha) in known {
        let c = &entries[i].checksum;
        if c.algorithm != "sha256" {
            learned
                .entry(c.algorithm.as_str())
                .or_default()
                .push((c.hex.clone(), sha.clone()));
        }
    }
    for (algorithm, pairs) in &learned {
        catalog.remember_checksums(algorithm, pairs).await?;
    }
    Ok(())
}

async fn sync_locked(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    target: &Target<'_>,
    run: &mut SyncRun,
    progress: &Progress,
) -> Result<SyncReport, SyncError> {
    let (repo, repo_id, base) = (target.repo, target.repo_id, target.base.as_str());
    let started = std::time::Instant::now();
    let phase = |what: &str| tracing::debug!("{what} at {:.3} s", started.elapsed().as_secs_f64());
    let client = client(repo)?;
    let repomd_url = format!("{base}repodata/repomd.xml");
    let repomd_bytes = fetch(&client, &repomd_url, MAX_REPOMD).await?;
    let repomd_sha = hex::encode(sha2::Sha256::digest(&repomd_bytes));
    let has_latest = catalog
        .repo(&repo.id)
        .await?
        .is_some_and(|r| r.latest_publication_id.is_some());
    if has_latest && catalog.upstream_repomd(repo_id).await?.as_deref() == Some(repomd_sha.as_str())
    {
        tracing::info!("{}: upstream unchanged", repo.id);
        let packages = catalog.repo_content(repo_id).await?.len();
        return Ok(SyncReport {
            status: RunStatus::Unchanged,
            packages,
            ..Default::default()
        });
    }
    let repomd = parse::parse_repomd(&repomd_bytes, &repomd_url)?;
    let mut docs = Vec::new();
    for kind in ["primary", "filelists", "other"] {
        let record = repomd.record(kind).ok_or_else(|| SyncError::Http {
            url: repomd_url.clone(),
            message: format!("no {kind} record"),
        })?;
        let url = format!("{base}{}", record.href);
        let limit = record.size.map_or(MAX_METADATA, |s| s.min(MAX_METADATA));
        let bytes = fetch(&client, &url, limit).await?;
        verify(&url, &bytes, &record.checksum)?;
        let open_limit = record
            .open_size
            .map_or(MAX_OPEN_METADATA, |s| s.min(MAX_OPEN_METADATA));
        docs.push((bytes, url, open_limit));
    }
    // Parse the three files in lockstep, keeping what the filters allow.
    let filter = Filter::new(repo)?;
    let mut entries: Vec<PrimaryEntry> = Vec::new();
    {
        // The parse keeps one core busy: the other makes the pool's bucket directories
        // for the packages it will most likely download.
        let buckets = pool.bucket_maker();
        let open = |i: usize| parse::decompress(&docs[i].0, docs[i].2, &docs[i].1);
        let mut stream = PackageStream::new(open(0)?, open(1)?, open(2)?);
        while let Some(entry) = stream.next_package()? {
            if entry.package.size_package < 0 || entry.package.size_package as u64 > MAX_PACKAGE {
                return Err(SyncError::Other(format!(
                    "{}: absurd package size {}",
                    entry.href, entry.package.size_package
                )));
            }
            if filter.keeps(&entry.package) {
                if entry.checksum.algorithm == "sha256" {
                    buckets.add(&entry.checksum.hex);
                }
                entries.push(entry);
            }
        }
    }
    if let Some(n) = repo.keep_latest {
        entries = keep_newest(entries, n);
    }
    phase("metadata fetched and parsed");
    // One package per published location (the later upstream entry wins). A mirror
    // keeps upstream's locations, which its unchanged metadata names.
    let mirror = repo.mode == SyncMode::Mirror;
    let mut by_location: HashMap<String, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let loc = if mirror {
            e.href.clone()
        } else {
            e.package.location()
        };
        by_location.insert(loc, i);
    }

    // comps, updateinfo (trimmed to what the mirror keeps) and modules.
    let keep: HashSet<Nevra> = by_location
        .values()
        .map(|&i| {
            let p = &entries[i].package;
            Nevra {
                name: p.name.clone(),
                epoch: p.epoch.clone(),
                version: p.version.clone(),
                release: p.release.clone(),
                arch: p.arch.clone(),
            }
        })
        .collect();
    let (extras, mirror_files) = if mirror {
        let files = fetch_all_records(&client, base, &repomd, &repomd_bytes).await?;
        (Vec::new(), files)
    } else {
        (
            fetch_extras(&client, base, &repomd, &keep).await?,
            Vec::new(),
        )
    };
    phase("comps, updateinfo and modules fetched");

    // Download what the pool does not hold.
    let mut known: HashMap<usize, String> = HashMap::new();
    let mut wanted: Vec<usize> = Vec::new();
    // Packages upstream names by another checksum (sha1, sha512…) that an earlier sync
    // already stored: their sha256 is remembered in the catalog.
    let mut mapped: HashMap<(String, String), String> = HashMap::new();
    let mut by_algorithm: HashMap<&str, Vec<&str>> = HashMap::new();
    for &i in by_location.values() {
        let c = &entries[i].checksum;
        if c.algorithm != "sha256" {
            by_algorithm
                .entry(c.algorithm.as_str())
                .or_default()
                .push(c.hex.as_str());
        }
    }
    for (algorithm, digests) in &by_algorithm {
        for (digest, sha) in catalog.sha256_for(algorithm, digests).await? {
            mapped.insert((algorithm.to_string(), digest), sha);
        }
    }
    for &i in by_location.values() {
        let e = &entries[i];
        if let Some(sha) = mapped.get(&(e.checksum.algorithm.clone(), e.checksum.hex.clone())) {
            if pool.reuse(sha, e.package.size_package as u64) {
                known.insert(i, sha.clone());
                continue;
            }
        }
        if e.checksum.algorithm == "sha256"
            && pool.reuse(&e.checksum.hex, e.package.size_package as u64)
        {
            known.insert(i, e.checksum.hex.clone());
        } else {
            wanted.push(i);
        }
    }
    wanted.sort_unstable();
    progress.bytes_total.store(
        wanted
            .iter()
            .map(|&i| entries[i].package.size_package as u64)
            .sum(),
        Ordering::Relaxed,
    );
    progress.total.store(wanted.len(), Ordering::Relaxed);
    tracing::info!(
        "{}: {} packages upstream after filters, {} to download",
        repo.id,
        by_location.len(),
        wanted.len()
    );
    let stager = pool.stager()?;
    let downloads = Downloads {
        client: &client,
        pool,
        stager: &stager,
        received: &progress.bytes,
    };
    let results: Vec<(usize, Downloaded)> = futures_util::stream::iter(wanted)
        .map(|i| {
            let e = &entries[i];
            let url = format!("{base}{}", e.href);
            let key = format!("{}-{}-{}", repo.id, e.checksum.algorithm, e.checksum.hex);
            let d = &downloads;
            async move {
                let size = e.package.size_package as u64;
                let r = download(d, &url, &e.checksum, size, &key).await;
                progress.done.fetch_add(1, Ordering::Relaxed);
                (i, r)
            }
        })
        .buffer_unordered(repo.downloads)
        .collect()
        .await;
    // Every queued write lands before anything is committed; a failed write (a full
    // disk) fails the sync, naming the file.
    tokio::task::spawn_blocking(move || stager.finish())
        .await
        .map_err(|e| SyncError::Other(format!("writing downloads: {e}")))??;
    phase("downloads finished");
    let mut staged = Vec::new();
    let mut failures = Vec::new();
    for (i, r) in results {
        match r {
            Ok((s, transferred)) => {
                run.packages_downloaded += 1;
                run.bytes_downloaded += transferred as i64;
                known.insert(i, s.sha256.clone());
                staged.push(s);
            }
            Err(message) => failures.push((entries[i].href.clone(), message)),
        }
    }
    // Verified downloads are kept even when others failed: the next run skips them.
    let mut extra_refs = Vec::new();
    if failures.is_empty() {
        for (kind, bytes) in &extras {
            let s = pool.stage_bytes(bytes)?;
            extra_refs.push(ExtraRef {
                kind: kind.name().to_string(),
                sha256: s.sha256.clone(),
                size: s.size as i64,
            });
            staged.push(s);
        }
    }
    if !failures.is_empty() {
        pool.commit_async(staged).await?;
        remember_checksums(catalog, &entries, &known).await?;
        failures.sort();
        return Err(SyncError::Packages(failures));
    }

    // The blobs become durable on a blocking thread while the fragments are rendered
    // and the catalog rows written; the rows are committed only after the blobs are.
    let committing = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.commit_async(staged).await })
    };
    let durable = async {
        committing.await.map_err(|e| {
            SyncError::Pool(PoolError::Io {
                path: pool.root().to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })
        })??;
        phase("pool committed");
        Ok::<(), SyncError>(())
    };
    // Catalog rows from upstream's metadata, keyed by sha256, with their fragments
    // rendered on all cores.
    let (locations, unrendered): (Vec<&str>, Vec<Package>) = by_location
        .iter()
        .map(|(loc, &i)| {
            // Moved, not copied: only the entries' checksums are needed from here on.
            let mut p = std::mem::take(&mut entries[i].package);
            p.pkgid = known[&i].clone();
            (loc.as_str(), p)
        })
        .unzip();
    let mut packages = xml::render_all(unrendered);
    phase("fragments rendered");
    let items: Vec<PlacedFragments> = packages
        .iter()
        .zip(&locations)
        .map(|((p, f), loc)| PlacedFragments {
            sha256: p.pkgid.clone(),
            location: loc.to_string(),
            time_file: p.time_file,
            fragments: f.clone(),
        })
        .collect();
    // The repodata is rendered and compressed while the rows are written and the blobs
    // become durable (unless the same publication exists already).
    let publishing = if mirror {
        Publishing::Mirror(items)
    } else {
        // extra_refs was made from extras, one for one and in order.
        let loaded = extra_refs
            .iter()
            .cloned()
            .zip(extras.into_iter().map(|(_, b)| b));
        let extras = publish::ExtraBytes::Loaded(loaded.collect());
        Publishing::Regenerated(
            publish::begin(catalog, pool, items, repo.compression, extras, false).await?,
        )
    };
    let ids = ingest::record(catalog, &mut packages, durable).await?;
    remember_checksums(catalog, &entries, &known).await?;
    phase("catalog rows written");
    // From here the repository changes: snapshots and imports of it wait for this part
    // only, never for the downloads.
    let locked = ingest::lock(catalog, datadir, &repo.id).await?;
    let current = locked.current().await?;
    let comparison = ingest::compare(
        &current,
        packages
            .iter()
            .zip(&locations)
            .map(|((p, _), loc)| (*loc, p.pkgid.as_str())),
    );
    let report = SyncReport {
        status: RunStatus::Ok,
        packages: packages.len(),
        downloaded: run.packages_downloaded as usize,
        bytes: run.bytes_downloaded as u64,
        added: comparison.added.len() + comparison.replaced.len(),
        removed: comparison.absent.len(),
    };
    let placements: Vec<(String, i64)> = packages
        .iter()
        .zip(&locations)
        .map(|((p, _), loc)| (loc.to_string(), ids[&p.pkgid]))
        .collect();
    let publication_id = match publishing {
        Publishing::Mirror(items) => publish_mirror(catalog, pool, &mirror_files, &items).await?,
        Publishing::Regenerated(pending) => pending.finish(catalog, pool).await?.publication_id,
    };
    locked
        .replace(&placements, publication_id, &repomd_sha, &extra_refs)
        .await?;
    phase("published");
    run.packages_added = report.added as i64;
    run.packages_removed = report.removed as i64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::{error_kind, Received};
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn a_failed_attempt_takes_back_the_bytes_it_counted() {
        let total = AtomicU64::new(100);
        let failed = Received {
            total: &total,
            mine: AtomicU64::new(0),
        };
        failed.add(30);
        failed.add(20);
        assert_eq!(total.load(Ordering::Relaxed), 150, "counted as they arrive");
        failed.take_back();
        assert_eq!(total.load(Ordering::Relaxed), 100);
        let kept = Received {
            total: &total,
            mine: AtomicU64::new(0),
        };
        kept.add(50);
        assert_eq!(total.load(Ordering::Relaxed), 150);
    }

    #[test]
    fn upstream_errors_are_classified() {
        assert_eq!(error_kind("HTTP 404 Not Found"), "http");
        assert_eq!(
            error_kind("sha256 checksum mismatch (expected a, got b)"),
            "checksum"
        );
        assert_eq!(
            error_kind("10 bytes received, upstream declares 20"),
            "size"
        );
        assert_eq!(
            error_kind("error sending request: operation timed out"),
            "timeout"
        );
        assert_eq!(
            error_kind("error sending request: tcp connect error"),
            "connect"
        );
        assert_eq!(error_kind("connection reset by peer"), "transfer");
        assert_eq!(error_kind("dns error: failed to lookup address"), "connect");
        assert_eq!(error_kind("unexpected end of body"), "transfer");
    }
}
