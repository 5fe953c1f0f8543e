//! Where one sync reads upstream from: one base URL (`feed`), or the mirrors a
//! `mirrorlist` or `metalink` lists, over HTTP(S) or from `file://` directories (a
//! mounted ISO, an NFS tree), at most at the repository's `max_rate`.
//!
//! The sync names every file by its URL under the first base (the one its messages
//! and the catalog record); [`Source`] reads it from the mirror in use. When a mirror
//! fails (it answers an error, breaks off, times out, or gives bytes that do not
//! verify), the next one is tried at once, and the sync stays with the one that
//! answered; past the last mirror, failures are retried with the usual pauses. A
//! `file://` base reads the file named under it (metadata `href`s never leave the
//! repository: see `href_is_safe`), with the same size and checksum checks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::upstream::{self, UpstreamError};
use crate::formats::mirrors::{self, RepomdVersion};

/// The bandwidth limit of one sync (`max_rate`), shared by all its downloads: each
/// chunk read books its time on one clock, and the reader waits until its booking ends.
#[derive(Debug)]
pub struct Rate {
    bytes_per_second: u64,
    next: Mutex<Option<tokio::time::Instant>>,
}

impl Rate {
    pub fn new(bytes_per_second: u64) -> Rate {
        Rate {
            bytes_per_second: bytes_per_second.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits as long as `n` bytes take at this rate, after what was booked before.
    pub async fn take(&self, n: usize) {
        let until = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            let start = next.filter(|t| *t > now).unwrap_or(now);
            let end = start + Duration::from_secs_f64(n as f64 / self.bytes_per_second as f64);
            *next = Some(end);
            end
        };
        tokio::time::sleep_until(until).await;
    }
}

/// A response body: from an HTTP response or a file, paced by the sync's [`Rate`].
pub struct Body {
    /// It starts at the byte asked for (a range request was honoured).
    pub resumed: bool,
    inner: Inner,
    rate: Option<Arc<Rate>>,
}

enum Inner {
    Http(futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>),
    File {
        file: tokio::fs::File,
        path: std::path::PathBuf,
    },
}

/// Bytes read from a file per chunk.
const FILE_CHUNK: usize = 256 * 1024;

impl Body {
    /// The next chunk, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        let chunk = match &mut self.inner {
            Inner::Http(stream) => match stream.next().await {
                None => None,
                Some(Ok(b)) => Some(b),
                Some(Err(e)) => return Err(UpstreamError::from_reqwest(&e)),
            },
            Inner::File { file, path } => {
                use tokio::io::AsyncReadExt;
                let mut buf = vec![0u8; FILE_CHUNK];
                let n = file.read(&mut buf).await.map_err(|e| file_error(path, e))?;
                buf.truncate(n);
                (n > 0).then(|| Bytes::from(buf))
            }
        };
        if let (Some(b), Some(rate)) = (&chunk, &self.rate) {
            rate.take(b.len()).await;
        }
        Ok(chunk)
    }
}

fn file_error(path: &std::path::Path, e: std::io::Error) -> UpstreamError {
    if e.kind() == std::io::ErrorKind::NotFound {
        UpstreamError::NoFile(path.to_path_buf())
    } else {
        UpstreamError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// The local path of a `file://` URL (its query, if any, ignored); `None` for any
/// other URL.
fn file_path(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("file://") {
        return None;
    }
    let parsed = reqwest::Url::parse(url.split('?').next().unwrap_or(url)).ok()?;
    parsed.to_file_path().ok()
}

/// The names in directory `dir` as an HTML listing, one `<a href="NAME">` each.
fn listing(dir: &std::path::Path) -> std::io::Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.contains(['"', '<', '>', '&']))
        .collect();
    names.sort();
    Ok(names
        .iter()
        .map(|n| format!("<a href=\"{n}\">{n}</a>\n"))
        .collect())
}

/// Where a sync reads upstream from (see the module header).
pub struct Source {
    client: reqwest::Client,
    /// Base URLs ending in `/` (with a feed's query after it), in the order tried.
    mirrors: Vec<String>,
    /// The index of the mirror in use.
    current: AtomicUsize,
    rate: Option<Arc<Rate>>,
}

impl Source {
    /// Reads from `mirrors` (at least one base URL) with `client`, at most at
    /// `max_rate` bytes per second when given.
    pub fn new(client: reqwest::Client, mirrors: Vec<String>, max_rate: Option<u64>) -> Source {
        Source {
            client,
            mirrors,
            current: AtomicUsize::new(0),
            rate: max_rate.map(|r| Arc::new(Rate::new(r))),
        }
    }

    /// The first mirror's base: the one files are named under.
    pub fn base(&self) -> &str {
        &self.mirrors[0]
    }

    /// `url` (named under the first base) at mirror `mirror`; a URL under no base is
    /// read as it is.
    fn at(&self, url: &str, mirror: usize) -> String {
        if mirror == 0 || mirror >= self.mirrors.len() {
            return url.to_string();
        }
        let (dir, query) = match self.mirrors[0].split_once('?') {
            Some((d, q)) => (d, Some(q)),
            None => (self.mirrors[0].as_str(), None),
        };
        let Some(rest) = url.strip_prefix(dir) else {
            return url.to_string();
        };
        let path = match query {
            Some(q) => rest.strip_suffix(&format!("?{q}")).unwrap_or(rest),
            None => rest,
        };
        upstream::join(&self.mirrors[mirror], path)
    }

    /// Runs `attempt` with `url` at the mirror in use until it succeeds: a failure
    /// moves on to the next mirror at once while there are mirrors not yet tried for
    /// it; after that it is retried as [`upstream::retrying`] retries.
    pub async fn retrying<T, F, Fut>(&self, url: &str, mut attempt: F) -> Result<T, UpstreamError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, UpstreamError>>,
    {
        let count = self.mirrors.len();
        let mut failovers = 0;
        let mut tried = 0;
        loop {
            let mirror = self.current.load(Ordering::Relaxed);
            let at = self.at(url, mirror);
            match attempt(at.clone()).await {
                Ok(done) => return Ok(done),
                Err(e) if count > 1 && failovers + 1 < count && e.mirror_may_help() => {
                    failovers += 1;
                    let next = (mirror + 1) % count;
                    // Another request may have moved on already: only move once.
                    let _ = self.current.compare_exchange(
                        mirror,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    tracing::warn!(
                        "{at}: {e}; trying the next mirror, {}",
                        crate::app::context::redact(&self.mirrors[next])
                    );
                }
                Err(e) if e.retryable() && tried + 1 < upstream::ATTEMPTS => {
                    tried += 1;
                    let pause = upstream::backoff(tried);
                    tracing::warn!("{at}: {e}; retrying in {} s", pause.as_secs_f32());
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// GETs `url` into memory, refusing bodies larger than `limit`; `check` judges
    /// what arrived (a failure moves on to the next mirror like any other).
    pub async fn fetch_checked(
        &self,
        url: &str,
        limit: u64,
        check: impl Fn(&[u8]) -> Result<(), UpstreamError>,
    ) -> Result<Vec<u8>, UpstreamError> {
        self.retrying(url, |at| {
            let check = &check;
            async move {
                let out = self.read(&at, limit).await?;
                check(&out)?;
                Ok(out)
            }
        })
        .await
    }

    /// GETs `url` into memory, refusing bodies larger than `limit`.
    pub async fn fetch(&self, url: &str, limit: u64) -> Result<Vec<u8>, UpstreamError> {
        self.fetch_checked(url, limit, |_| Ok(())).await
    }

    /// GETs a file upstream may lack (`repomd.xml.asc`, a tree's optional files):
    /// `None` when the mirror in use has none (404, 403, no such file), without asking
    /// other mirrors: it belongs with the metadata this mirror gave.
    pub async fn fetch_optional(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, UpstreamError> {
        let missing = |e: &UpstreamError| {
            matches!(e, UpstreamError::NoFile(_))
                || matches!(e, UpstreamError::Status(s)
                    if *s == reqwest::StatusCode::NOT_FOUND || *s == reqwest::StatusCode::FORBIDDEN)
        };
        self.retrying(url, |at| async move {
            match self.read(&at, limit).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if missing(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// One GET of `at` into memory.
    async fn read(&self, at: &str, limit: u64) -> Result<Vec<u8>, UpstreamError> {
        let mut body = self.open(at, None).await?;
        let mut out = Vec::new();
        while let Some(chunk) = body.chunk().await? {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(UpstreamError::TooLarge(limit));
            }
            out.extend_from_slice(&chunk);
        }
        // Package lists are kept for the whole sync (read twice): not with up to twice
        // their size reserved by the growth.
        out.shrink_to_fit();
        Ok(out)
    }

    /// Opens `at` (a URL at a mirror, as [`Source::retrying`] hands it over) from
    /// byte `from` when given: one attempt.
    pub async fn open(&self, at: &str, from: Option<u64>) -> Result<Body, UpstreamError> {
        if let Some(path) = file_path(at) {
            use tokio::io::AsyncSeekExt;
            if path.is_dir() {
                // A directory reads as the listing a web server would give (what a
                // tree's root is searched for RPM-GPG-KEY-* files in).
                let listing = listing(&path).map_err(|e| file_error(&path, e))?;
                let stream = futures_util::stream::once(async move { Ok(Bytes::from(listing)) });
                return Ok(Body {
                    resumed: false,
                    inner: Inner::Http(stream.boxed()),
                    rate: self.rate.clone(),
                });
            }
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| file_error(&path, e))?;
            if let Some(from) = from {
                file.seek(std::io::SeekFrom::Start(from))
                    .await
                    .map_err(|e| file_error(&path, e))?;
            }
            return Ok(Body {
                resumed: from.is_some(),
                inner: Inner::File { file, path },
                rate: self.rate.clone(),
            });
        }
        if from.is_none() && at.starts_with("file:") {
            return Err(UpstreamError::File {
                path: at.into(),
                message: "not a file:// URL this system can read".into(),
            });
        }
        let resp = upstream::get_from(&self.client, at, from).await?;
        Ok(Body {
            resumed: from.is_some() && resp.status() == reqwest::StatusCode::PARTIAL_CONTENT,
            inner: Inner::Http(resp.bytes_stream().boxed()),
            rate: self.rate.clone(),
        })
    }

    /// The size of the file at `url` (a HEAD request's `Content-Length`, or the file's
    /// size).
    pub async fn content_length(&self, url: &str) -> Result<u64, UpstreamError> {
        self.retrying(url, |at| async move {
            match file_path(&at) {
                Some(path) => tokio::fs::metadata(&path)
                    .await
                    .map(|m| m.len())
                    .map_err(|e| file_error(&path, e)),
                None => upstream::content_length_once(&self.client, &at).await,
            }
        })
        .await
    }
}

/// Largest mirrorlist or metalink read.
const MAX_LIST: u64 = 4 * 1024 * 1024;

/// The source of `repo` as configured: its feed, or the mirrors its mirrorlist or
/// metalink lists (fetched now), with what a metalink says repomd.xml must be (empty
/// otherwise).
pub async fn resolve(
    repo: &crate::app::config::RepoConfig,
    spec: &crate::app::config::Upstream,
) -> Result<(Source, Vec<RepomdVersion>), super::SyncError> {
    use crate::app::config::Upstream;
    let client = upstream::client(repo)?;
    let list_of = |url: &str| upstream::base_url(url);
    let fetch_list = |url: String| {
        let reader = Source::new(client.clone(), vec![list_of(&url)], None);
        async move {
            reader
                .fetch(&url, MAX_LIST)
                .await
                .map_err(|source| super::SyncError::Upstream {
                    url: crate::app::context::redact(&url),
                    source,
                })
        }
    };
    let (mirrors, repomd) = match spec {
        Upstream::Feed(feed) => (vec![upstream::base_url(feed)], Vec::new()),
        Upstream::Mirrorlist(url) => {
            let text = fetch_list(url.clone()).await?;
            let text = String::from_utf8_lossy(&text);
            (mirrors::parse_mirrorlist(&text, url)?, Vec::new())
        }
        Upstream::Metalink(url) => {
            let xml = fetch_list(url.clone()).await?;
            let m = mirrors::parse_metalink(&xml, url)?;
            (m.mirrors, m.repomd)
        }
    };
    if mirrors.len() > 1 {
        tracing::info!(
            "{}: {} mirrors, starting with {}",
            repo.id,
            mirrors.len(),
            crate::app::context::redact(&mirrors[0])
        );
    }
    Ok((Source::new(client, mirrors, repo.max_rate), repomd))
}

/// Does `bytes` (repomd.xml from some mirror) match one of the versions a metalink
/// accepts? A mirror that serves another is behind or tampered with.
pub fn metalink_check(versions: &[RepomdVersion], bytes: &[u8]) -> Result<(), UpstreamError> {
    if versions.is_empty() {
        return Ok(());
    }
    let mut listed = Vec::new();
    for v in versions {
        let Some((algorithm, hex)) = v.strongest() else {
            continue;
        };
        let mut h = upstream::Hasher::new(algorithm)?;
        h.update(bytes);
        let actual = h.hex();
        if v.size.is_none_or(|s| s == bytes.len() as u64) && actual == *hex {
            return Ok(());
        }
        listed.push(format!(
            "{} bytes, {algorithm} {hex}",
            v.size.map_or("any".to_string(), |s| s.to_string())
        ));
    }
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
    Err(UpstreamError::NotInMetalink(format!(
        "it has {} bytes, sha256 {sha256}; the metalink lists {}",
        bytes.len(),
        listed.join(" or ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(mirrors: &[&str]) -> Source {
        Source::new(
            reqwest::Client::new(),
            mirrors.iter().map(|m| m.to_string()).collect(),
            None,
        )
    }

    #[test]
    fn a_url_is_read_at_the_mirror_in_use() {
        let s = source(&["https://a.example/r/?token=1", "http://b.example/x/y/"]);
        let url = upstream::join(s.base(), "repodata/repomd.xml");
        assert_eq!(url, "https://a.example/r/repodata/repomd.xml?token=1");
        assert_eq!(s.at(&url, 0), url);
        assert_eq!(s.at(&url, 1), "http://b.example/x/y/repodata/repomd.xml");
        // Something under no base stays as it is.
        assert_eq!(s.at("https://c.example/z", 1), "https://c.example/z");
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_paces_all_readers_together() {
        let rate = Rate::new(1000);
        let start = tokio::time::Instant::now();
        rate.take(500).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        // Two readers share the rate: 2 x 1000 bytes take 2 s.
        let start = tokio::time::Instant::now();
        tokio::join!(rate.take(1000), rate.take(1000));
        assert_eq!(start.elapsed(), Duration::from_millis(2000));
    }

    #[tokio::test]
    async fn failures_move_to_the_next_mirror_and_stay_there() {
        let s = source(&["http://a.example/", "http://b.example/"]);
        let url = upstream::join(s.base(), "f");
        let seen = Mutex::new(Vec::new());
        let got = s
            .retrying(&url, |at| {
                seen.lock().unwrap().push(at.clone());
                async move {
                    if at.starts_with("http://a.") {
                        Err(UpstreamError::Status(reqwest::StatusCode::NOT_FOUND))
                    } else {
                        Ok(at)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(got, "http://b.example/f");
        // The next request starts at the mirror that answered.
        let again = s.retrying(&url, |at| async move { Ok(at) }).await.unwrap();
        assert_eq!(again, "http://b.example/f");
        assert_eq!(seen.lock().unwrap().len(), 2);
        // A local failure is not a mirror's: no other mirror is tried.
        let calls = AtomicUsize::new(0);
        let local = s
            .retrying(&url, |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async {
                    Err::<(), _>(UpstreamError::Local {
                        path: "x".into(),
                        source: std::io::Error::other("full"),
                    })
                }
            })
            .await;
        assert!(local.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_file_url_reads_the_file_from_a_byte_on() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"hello world").unwrap();
        let base = format!("file://{}/", dir.path().display());
        let s = source(&[&base]);
        let url = upstream::join(s.base(), "a.txt");
        assert_eq!(s.fetch(&url, 100).await.unwrap(), b"hello world");
        assert_eq!(s.content_length(&url).await.unwrap(), 11);
        let mut body = s.open(&url, Some(6)).await.unwrap();
        assert!(body.resumed);
        assert_eq!(&body.chunk().await.unwrap().unwrap()[..], b"world");
        assert!(matches!(
            s.fetch(&upstream::join(s.base(), "missing"), 100).await,
            Err(UpstreamError::NoFile(_))
        ));
        assert!(matches!(
            s.fetch(&url, 5).await,
            Err(UpstreamError::TooLarge(5))
        ));
        // A directory reads as a listing of its names.
        let listed = s.fetch(s.base(), 1000).await.unwrap();
        assert_eq!(listed, b"<a href=\"a.txt\">a.txt</a>\n");
    }
}
