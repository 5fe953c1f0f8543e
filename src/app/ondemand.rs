//! Fetching a package of an `on_demand` or `streamed` repository when a client first
//! asks for it (the server's side of those policies).
//!
//! One download per package at a time, however many clients ask: the first request
//! starts it into a temp file of the pool; every request (the first too) reads that
//! file as it grows, from its own position. The download is checked as it arrives
//! against the size and upstream's checksum the sync recorded, and against the sha256
//! the package is published under. No client receives the last byte of a package
//! before the whole file verified: a client whose package fails the check sees its
//! transfer break (and dnf tries again), never wrong bytes passed as complete. A
//! range request is answered once the whole file verified ("fetch whole, serve the
//! range"). Verified, an `on_demand` package is moved into the pool and served from
//! there from then on; a `streamed` one is dropped once its readers are done.
//!
//! A package upstream cannot give (it is down, or no longer has it) is answered as
//! unavailable, never as unknown: the server says 502 with the reason. At most
//! [`MAX_FETCHES`] downloads run at once; requests for more packages wait their turn.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::app::config::Policy;
use crate::app::context::App;
use crate::app::sync::source::{self, Source};
use crate::app::sync::upstream::{self, UpstreamError};
use crate::store::catalog::RemotePackage;

/// Bytes read from the growing file per chunk sent.
const CHUNK: usize = 256 * 1024;

/// What a fetch gives a request.
pub enum Fetched {
    /// The bytes asked for, as they arrive and are checked; an `Err` ends them (the
    /// transfer must break off). The last chunk comes only once the file verified.
    Body(mpsc::Receiver<io::Result<Bytes>>),
    /// A remote package, not fetched (for HEAD).
    Known,
    /// Upstream cannot give it now: why.
    Unavailable(String),
    /// Not a package any repository fetches on demand.
    Unknown,
}

/// How one download stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Asking upstream.
    Asking,
    /// Bytes written so far.
    Receiving(u64),
    /// Complete and verified.
    Verified,
    /// Failed: why.
    Failed(String),
}

/// One download and what its readers share.
struct Inflight {
    file: std::fs::File,
    size: u64,
    state: watch::Receiver<State>,
}

/// Upstream downloads running at once, at most; requests for more packages wait.
pub const MAX_FETCHES: usize = 32;

impl Inflight {
    fn failed(&self) -> bool {
        matches!(*self.state.borrow(), State::Failed(_))
    }
}

/// The downloads in progress, and each repository's upstream.
pub struct Fetcher {
    inflight: Mutex<HashMap<String, Arc<Inflight>>>,
    sources: tokio::sync::Mutex<HashMap<String, Arc<Source>>>,
    /// [`MAX_FETCHES`] permits: clients asking for many packages at once cannot make
    /// the server open any number of upstream connections.
    slots: Arc<tokio::sync::Semaphore>,
}

impl Default for Fetcher {
    fn default() -> Fetcher {
        Fetcher {
            inflight: Mutex::default(),
            sources: tokio::sync::Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_FETCHES)),
        }
    }
}

fn metric(outcome: &str) {
    crate::app::metrics::metrics()
        .ondemand_fetches
        .with_label_values(&[outcome])
        .inc();
}

impl Fetcher {
    /// Bytes `range` (start, end exclusive; `None`: all) of package `sha256`, fetched
    /// from upstream or joined to its running download; with `head`, only whether it
    /// is a remote package.
    pub async fn fetch(
        self: &Arc<Self>,
        app: &App,
        sha256: &str,
        range: Option<(u64, u64)>,
        head: bool,
    ) -> Fetched {
        let joined = self.running(sha256);
        let inflight = match joined {
            Some(i) if head => {
                drop(i);
                return Fetched::Known;
            }
            Some(i) => {
                metric("shared");
                i
            }
            None => {
                let remote = match app.catalog.remote_package(sha256).await {
                    Ok(Some(r)) => r,
                    Ok(None) => return Fetched::Unknown,
                    Err(e) => {
                        tracing::error!("on-demand fetch of {sha256}: reading the catalog: {e}");
                        return Fetched::Unavailable("the catalog cannot be read now".into());
                    }
                };
                if head {
                    return Fetched::Known;
                }
                // Fetched by a download that ended after this request found the pool
                // without it: served from the pool, not fetched again.
                if let Ok(file) = std::fs::File::open(app.pool.path_of(sha256)) {
                    let (_, verified) = watch::channel(State::Verified);
                    let (start, end) = range.unwrap_or((0, remote.size as u64));
                    let (tx, rx) = mpsc::channel(2);
                    tokio::spawn(feed(file, verified, start, end, false, tx));
                    return Fetched::Body(rx);
                }
                match self.start(app, remote).await {
                    Ok(i) => i,
                    Err(why) => {
                        metric("unavailable");
                        return Fetched::Unavailable(why);
                    }
                }
            }
        };
        // Wait for upstream's answer: the status of the reply depends on it.
        let mut state = inflight.state.clone();
        loop {
            let now = state.borrow_and_update().clone();
            match now {
                State::Asking => {}
                State::Failed(why) => return Fetched::Unavailable(why),
                State::Receiving(_) | State::Verified => break,
            }
            if state.changed().await.is_err() {
                if let State::Failed(why) = state.borrow().clone() {
                    return Fetched::Unavailable(why);
                }
                if *state.borrow() != State::Verified {
                    return Fetched::Unavailable("the download ended abnormally".into());
                }
                break;
            }
        }
        let file = match inflight.file.try_clone() {
            Ok(f) => f,
            Err(e) => return Fetched::Unavailable(format!("reading the download: {e}")),
        };
        let (start, end) = range.unwrap_or((0, inflight.size));
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(feed(
            file,
            inflight.state.clone(),
            start,
            end,
            range.is_some(),
            tx,
        ));
        Fetched::Body(rx)
    }

    /// Starts downloading `remote` (unless another request just did).
    async fn start(
        self: &Arc<Self>,
        app: &App,
        remote: RemotePackage,
    ) -> Result<Arc<Inflight>, String> {
        let Some(repo) = app.config.repo(&remote.repo).cloned() else {
            return Err(format!(
                "repository {:?}, which names this package, is no longer configured",
                remote.repo
            ));
        };
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the server is shutting down".to_string())?;
        if let Some(other) = self.running(&remote.sha256) {
            // Started by another request while this one waited for a slot.
            return Ok(other);
        }
        let source = self.source(&repo).await?;
        let path = app.pool.new_tmp_path();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let writer = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (tx, rx) = watch::channel(State::Asking);
        let inflight = Arc::new(Inflight {
            file,
            size: remote.size as u64,
            state: rx,
        });
        {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&remote.sha256) {
                Some(other) if !other.failed() => {
                    // Another request started it meanwhile: join that one.
                    let _ = std::fs::remove_file(&path);
                    return Ok(other.clone());
                }
                _ => {
                    map.insert(remote.sha256.clone(), inflight.clone());
                }
            }
        }
        let (app, me, mine) = (app.clone(), self.clone(), inflight.clone());
        tokio::spawn(async move {
            let sha256 = remote.sha256.clone();
            let failed = !download(&app, &repo, &source, remote, path, writer, &tx, slot).await;
            if failed {
                // Mirrors are read again for the next request.
                me.sources.lock().await.remove(&source_key(&repo));
            }
            // Readers keep their own handles; new requests start afresh. (A failed
            // download may have been replaced by a new one already: that one stays.)
            let mut map = me.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if map.get(&sha256).is_some_and(|i| Arc::ptr_eq(i, &mine)) {
                map.remove(&sha256);
            }
        });
        Ok(inflight)
    }

    /// The download of `sha256` under way or just verified, if any (one that failed
    /// is forgotten: the next request tries again).
    fn running(&self, sha256: &str) -> Option<Arc<Inflight>> {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(sha256) {
            Some(i) if i.failed() => {
                map.remove(sha256);
                None
            }
            other => other.cloned(),
        }
    }

    /// The upstream of `repo` (its feed, or the mirrors its list gives: read once and
    /// kept while it works).
    async fn source(&self, repo: &crate::app::config::RepoConfig) -> Result<Arc<Source>, String> {
        let mut sources = self.sources.lock().await;
        if let Some(s) = sources.get(&source_key(repo)) {
            return Ok(s.clone());
        }
        let spec = repo
            .upstream()
            .ok_or_else(|| format!("repository {:?} has no upstream", repo.id))?;
        let (s, _) = source::resolve(repo, &spec).await.map_err(|e| {
            tracing::warn!(
                "{}: reading its upstream for an on-demand fetch: {e}",
                repo.id
            );
            "its upstream's mirror list cannot be read".to_string()
        })?;
        let s = Arc::new(s);
        sources.insert(source_key(repo), s.clone());
        Ok(s)
    }
}

/// What a repository's [`Source`] is made from: a reload that changes any of it (the
/// upstream, TLS, proxy, timeouts, rate) gets a new one.
fn source_key(repo: &crate::app::config::RepoConfig) -> String {
    format!(
        "{}\n{:?}\n{:?} {:?} {:?} {:?}\n{:?} {:?} {:?}",
        repo.id,
        repo.upstream(),
        repo.tls_client_cert,
        repo.tls_client_key,
        repo.tls_ca,
        repo.proxy,
        repo.connect_timeout(),
        repo.idle_timeout(),
        repo.max_rate
    )
}

/// Downloads `remote` into `path` (through `file`), telling readers how far it got;
/// verified, keeps it in the pool (`on_demand`) or drops the file (`streamed`).
/// Returns whether it verified.
#[allow(clippy::too_many_arguments)]
async fn download(
    app: &App,
    repo: &crate::app::config::RepoConfig,
    source: &Source,
    remote: RemotePackage,
    path: std::path::PathBuf,
    file: std::fs::File,
    state: &watch::Sender<State>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> bool {
    let policy = repo.policy;
    let url = upstream::join(source.base(), &remote.href);
    let outcome = match receive(source, &url, &remote, &file, state).await {
        Ok(()) => check_signature(app, repo, &remote, &file).await,
        Err(e) => Err(e),
    };
    // Upstream is done with: the next download may start while this one is kept (a
    // file system sync, which can take long when much else is being written).
    drop(slot);
    let verified = match outcome {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("on-demand fetch of {url} failed: {e}");
            let _ = std::fs::remove_file(&path);
            metric(if matches!(e, Failure::Before(_)) {
                "unavailable"
            } else {
                "failed"
            });
            let _ = state.send(State::Failed(e.public()));
            return false;
        }
    };
    // Readers get their last bytes now; keeping the file (a file system sync) does
    // not hold them back. They read through their own handles, whatever its name.
    let _ = state.send(State::Verified);
    if policy == Policy::Streamed {
        let _ = std::fs::remove_file(&path);
        metric("streamed");
        return verified;
    }
    let staged = app
        .pool
        .adopt(path.clone(), remote.sha256.clone(), remote.size as u64);
    match app.pool.commit_async(vec![staged]).await {
        Ok(()) => {
            if let Err(e) = app.catalog.mark_fetched(&remote.sha256).await {
                tracing::warn!("recording that {} was fetched: {e}", remote.sha256);
            }
            metric("fetched");
            tracing::info!("fetched {url} on demand ({} bytes)", remote.size);
        }
        Err(e) => {
            // Served to those who asked, verified; the next request fetches it again.
            tracing::error!("keeping {url} in the pool failed: {e}");
            let _ = std::fs::remove_file(&path);
        }
    }
    true
}

/// Why a download failed: before upstream gave a byte, or after.
enum Failure {
    Before(UpstreamError),
    After(String),
}

impl Failure {
    /// What a client may be told (no upstream URL: it may carry credentials).
    fn public(&self) -> String {
        match self {
            Failure::Before(UpstreamError::Status(s)) => format!("upstream answered HTTP {s}"),
            Failure::Before(UpstreamError::Connect(_)) => "upstream cannot be reached".into(),
            Failure::Before(UpstreamError::Timeout(_)) => "upstream did not answer in time".into(),
            Failure::Before(UpstreamError::NoFile(_)) => "upstream has no such file".into(),
            Failure::Before(_) => "upstream could not give it".into(),
            Failure::After(_) => "the download broke off or did not verify".into(),
        }
    }

    fn text(&self) -> String {
        match self {
            Failure::Before(e) => e.to_string(),
            Failure::After(s) => s.clone(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// With `gpgcheck`, the header signature of the verified download in `file`: by a
/// key of the repository, or (`require`) the download fails. The signer is recorded
/// on the package's row either way.
async fn check_signature(
    app: &App,
    repo: &crate::app::config::RepoConfig,
    remote: &RemotePackage,
    file: &std::fs::File,
) -> Result<(), Failure> {
    use crate::app::config::GpgCheck;
    use crate::formats::openpgp::{self, HeaderVerdict, Keyring};
    let mode = repo.gpgcheck();
    if mode == GpgCheck::Off {
        return Ok(());
    }
    let keyring = Keyring::load(&repo.gpgkeys).map_err(|e| Failure::After(e.to_string()))?;
    let reader = file
        .try_clone()
        .map_err(|e| Failure::After(e.to_string()))?;
    let verdict = tokio::task::spawn_blocking(move || {
        let head = crate::formats::rpmcheck::header_signature(&mut std::io::BufReader::new(
            PositionalReader {
                file: reader,
                at: 0,
            },
        ))
        .map_err(|e| e.to_string())?;
        Ok::<_, String>(openpgp::check_header(&head, Some(&keyring)))
    })
    .await
    .map_err(|e| Failure::After(e.to_string()))?
    .map_err(Failure::After)?;
    let (signature, bad) = match verdict {
        HeaderVerdict::Signed(info) => (
            Some(crate::store::catalog::PackageSignature {
                sha256: remote.sha256.clone(),
                key_id: Some(info.key_id),
                algorithm: info.algorithm,
            }),
            None,
        ),
        HeaderVerdict::Unsigned => (
            Some(crate::store::catalog::PackageSignature {
                sha256: remote.sha256.clone(),
                key_id: None,
                algorithm: "none".into(),
            }),
            Some("unsigned".to_string()),
        ),
        HeaderVerdict::Bad(e) => (None, Some(e.to_string())),
    };
    if let Some(s) = signature {
        if let Err(e) = app.catalog.record_signatures(&[s]).await {
            tracing::warn!("recording the signer of {}: {e}", remote.sha256);
        }
    }
    match (bad, mode) {
        (None, _) => Ok(()),
        (Some(why), GpgCheck::Require) => Err(Failure::After(format!(
            "{}: not signed by a key of repository {:?} ({why})",
            remote.href, repo.id
        ))),
        (Some(why), _) => {
            tracing::warn!(
                "{}: not signed by a key of repository {:?} ({why}); served (gpgcheck = \"warn\")",
                remote.href,
                repo.id
            );
            Ok(())
        }
    }
}

/// Reads a file from a position with `pread`, leaving the shared offset alone.
struct PositionalReader {
    file: std::fs::File,
    at: u64,
}

impl io::Read for PositionalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Receives `url` into `file`, checking size and checksums.
async fn receive(
    source: &Source,
    url: &str,
    remote: &RemotePackage,
    file: &std::fs::File,
    state: &watch::Sender<State>,
) -> Result<(), Failure> {
    let mut body = source
        .retrying(url, |at| async move { source.open(&at, None).await })
        .await
        .map_err(Failure::Before)?;
    let size = remote.size as u64;
    let mut upstream_hash =
        upstream::Hasher::new(&remote.algorithm).map_err(|e| Failure::After(e.to_string()))?;
    let mut sha256 = <sha2::Sha256 as sha2::Digest>::new();
    let file = Arc::new(
        file.try_clone()
            .map_err(|e| Failure::After(format!("writing the download: {e}")))?,
    );
    let mut written = 0u64;
    let _ = state.send(State::Receiving(0));
    loop {
        let chunk = match body.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(Failure::After(e.to_string())),
        };
        if written + chunk.len() as u64 > size {
            return Err(Failure::After(
                UpstreamError::LargerThanDeclared(size).to_string(),
            ));
        }
        upstream_hash.update(&chunk);
        sha2::Digest::update(&mut sha256, &chunk);
        let (f, at, data) = (file.clone(), written, chunk.clone());
        tokio::task::spawn_blocking(move || f.write_all_at(&data, at))
            .await
            .map_err(|e| Failure::After(e.to_string()))?
            .map_err(|e| Failure::After(format!("writing the download: {e}")))?;
        written += chunk.len() as u64;
        let _ = state.send(State::Receiving(written));
    }
    if written != size {
        return Err(Failure::After(
            UpstreamError::Short {
                received: written,
                declared: size,
            }
            .to_string(),
        ));
    }
    let expected = crate::formats::repodata::parse::Checksum {
        algorithm: remote.algorithm.clone(),
        hex: remote.checksum.clone(),
    };
    upstream_hash
        .check(&expected)
        .map_err(|e| Failure::After(e.to_string()))?;
    let actual = hex::encode(sha2::Digest::finalize(sha256));
    if actual != remote.sha256 {
        return Err(Failure::After(format!(
            "sha256 mismatch (published as {}, got {actual})",
            remote.sha256
        )));
    }
    let f = file.clone();
    tokio::task::spawn_blocking(move || f.sync_all())
        .await
        .map_err(|e| Failure::After(e.to_string()))?
        .map_err(|e| Failure::After(format!("writing the download: {e}")))?;
    Ok(())
}

/// Sends bytes `start..end` of the growing `file` to `tx` as the download makes them
/// available: nothing of a range before the file verified, and never the last byte
/// of the file before that; a failed download ends the body with an error.
async fn feed(
    file: std::fs::File,
    mut state: watch::Receiver<State>,
    start: u64,
    end: u64,
    whole_first: bool,
    tx: mpsc::Sender<io::Result<Bytes>>,
) {
    let file = Arc::new(file);
    let mut pos = start;
    loop {
        let now = state.borrow_and_update().clone();
        let allowed = match now {
            State::Verified => end,
            State::Failed(why) => {
                let _ = tx.send(Err(io::Error::other(why))).await;
                return;
            }
            State::Asking => start,
            State::Receiving(_) if whole_first => start,
            State::Receiving(n) => n.min(end.saturating_sub(1)).max(start),
        };
        while pos < allowed {
            let n = ((allowed - pos) as usize).min(CHUNK);
            let (f, at) = (file.clone(), pos);
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                f.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf))
            })
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
            let failed = read.is_err();
            if tx.send(read).await.is_err() || failed {
                return;
            }
            pos += n as u64;
        }
        if pos >= end {
            return;
        }
        if state.changed().await.is_err() {
            let last = state.borrow().clone();
            match last {
                State::Verified | State::Failed(_) => continue,
                _ => {
                    let _ = tx
                        .send(Err(io::Error::other("the download ended abnormally")))
                        .await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, std::fs::File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        (dir, file)
    }

    /// The next chunk, or `None` when nothing comes within a moment (which, while the
    /// state does not change, can only be because nothing may be sent).
    async fn next(rx: &mut mpsc::Receiver<io::Result<Bytes>>) -> Option<io::Result<Bytes>> {
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn the_last_byte_waits_for_verification_and_a_failure_breaks_the_body() {
        let (_dir, file) = file_with(b"0123456789");
        let (state, watch_rx) = watch::channel(State::Receiving(10));
        let (tx, mut rx) = mpsc::channel(2);
        tokio::spawn(feed(file, watch_rx, 0, 10, false, tx));
        let got = next(&mut rx).await.unwrap().unwrap();
        assert_eq!(&got[..], b"012345678", "all but the last byte");
        assert!(next(&mut rx).await.is_none(), "the last byte waits");
        state
            .send(State::Failed("checksum mismatch".into()))
            .unwrap();
        assert!(next(&mut rx).await.unwrap().is_err(), "the body breaks off");
    }

    #[tokio::test]
    async fn a_verified_file_is_sent_whole_and_a_range_only_once_verified() {
        let (_dir, file) = file_with(b"0123456789");
        let (state, watch_rx) = watch::channel(State::Receiving(10));
        let (tx, mut rx) = mpsc::channel(2);
        tokio::spawn(feed(file, watch_rx, 2, 5, true, tx));
        assert!(
            next(&mut rx).await.is_none(),
            "a range waits for the whole file"
        );
        state.send(State::Verified).unwrap();
        assert_eq!(&next(&mut rx).await.unwrap().unwrap()[..], b"234");
        assert!(rx.recv().await.is_none(), "and ends");
    }
}
