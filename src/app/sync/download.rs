//! Downloading packages into the pool: the plan (what the pool holds already, by
//! sha256 or by a checksum an earlier sync learned), then small ones into memory and
//! through the pool's stager, large ones into a resumable `pool/tmp/partial-*` file,
//! each verified against upstream's checksum and size, with the progress display's
//! byte count kept true across failed attempts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use super::upstream::{self, Hasher, UpstreamError};
use super::{Cx, Listed, Plan, SyncError, Upstream};
use crate::app::progress::Progress;
use crate::formats::repodata::parse::Checksum;
use crate::store::catalog::SyncRun;
use crate::store::pool::{Pool, Staged, StagedJournal, Stager};

/// Packages up to this size are downloaded into memory before being written.
const IN_MEMORY: u64 = 4 * 1024 * 1024;

/// What the package downloads of one sync share.
pub struct Downloads<'a> {
    pub source: &'a super::source::Source,
    pub pool: &'a Pool,
    /// Writes small verified packages into the pool.
    pub stager: &'a Stager,
    /// Bytes of packages received so far (the progress display's).
    pub received: &'a AtomicU64,
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

/// One file to download: where from, what it must be, and the key of its resumable
/// partial file. A file upstream gives no checksum for (a tree file `.treeinfo` does not
/// list in `[checksums]`) has `checksum: None`: only its size is checked.
pub struct Wanted<'a> {
    pub url: &'a str,
    pub checksum: Option<&'a Checksum>,
    pub size: u64,
    pub partial_key: &'a str,
}

/// Downloads one package into the pool's temp area, verifying size and checksum, with
/// the source's retries and mirrors. Returns the staged blob and the bytes this run
/// transferred.
pub async fn download(d: &Downloads<'_>, w: &Wanted<'_>) -> Result<(Staged, u64), UpstreamError> {
    d.source
        .retrying(w.url, |at| async move {
            let received = Received {
                total: d.received,
                mine: AtomicU64::new(0),
            };
            let result = if w.size > IN_MEMORY {
                download_resumable(d, &received, w, &at).await
            } else {
                download_small(d, &received, w, &at)
                    .await
                    .map(|s| (s, w.size))
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
    w: &Wanted<'_>,
    at: &str,
) -> Result<Staged, UpstreamError> {
    let mut body = d.source.open(at, None).await?;
    let mut upstream = hasher_for(w)?;
    let mut data = Vec::with_capacity(w.size as usize);
    while let Some(chunk) = body.chunk().await? {
        if data.len() as u64 + chunk.len() as u64 > w.size {
            return Err(UpstreamError::LargerThanDeclared(w.size));
        }
        data.extend_from_slice(&chunk);
        received.add(chunk.len() as u64);
    }
    if data.len() as u64 != w.size {
        return Err(UpstreamError::Short {
            received: data.len() as u64,
            declared: w.size,
        });
    }
    upstream.update(&data);
    let actual = check(upstream, w)?;
    if w.checksum.is_none_or(|c| c.algorithm == "sha256") {
        // Just verified over these bytes: no second hash, and the write is queued.
        return Ok(d.stager.stage_hashed(d.pool, data, actual)?);
    }
    let pool = d.pool.clone();
    Ok(tokio::task::spawn_blocking(move || pool.stage_bytes(&data))
        .await
        .map_err(|e| UpstreamError::Task(e.to_string()))??)
}

/// Downloads a large package into `pool/tmp/partial-<key>`, resuming with a Range
/// request from whatever an earlier attempt or an interrupted run left there. Returns
/// the staged blob and the bytes transferred by this attempt.
async fn download_resumable(
    d: &Downloads<'_>,
    received: &Received<'_>,
    w: &Wanted<'_>,
    at: &str,
) -> Result<(Staged, u64), UpstreamError> {
    let part = d.pool.partial_path(w.partial_key);
    let io = |source: std::io::Error| UpstreamError::Local {
        path: part.clone(),
        source,
    };
    let mut have = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    if have >= w.size {
        have = 0;
    }
    let mut body = match d.source.open(at, (have > 0).then_some(have)).await {
        Err(UpstreamError::Status(reqwest::StatusCode::RANGE_NOT_SATISFIABLE)) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(UpstreamError::RangeRefused);
        }
        other => other?,
    };
    let resumed = have > 0 && body.resumed;
    let mut upstream = hasher_for(w)?;
    let mut sha256 = sha2::Sha256::new();
    let mut written = 0u64;
    if resumed {
        written = rehash_partial(&part, have, &mut upstream, &mut sha256)
            .await
            .map_err(io)?;
        tracing::info!("{at}: resuming at byte {written}");
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
    while let Some(chunk) = body.chunk().await? {
        written += chunk.len() as u64;
        if written > w.size {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            return Err(UpstreamError::LargerThanDeclared(w.size));
        }
        upstream.update(&chunk);
        sha256.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
        received.add(chunk.len() as u64);
    }
    file.flush().await.map_err(io)?;
    drop(file);
    if written != w.size {
        // Keep the partial file: the next attempt resumes from it.
        return Err(UpstreamError::Short {
            received: written,
            declared: w.size,
        });
    }
    if let Err(e) = check(upstream, w) {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    // Complete and verified: from here it is this process's temp file, kept however long
    // the rest of the sync takes and removed as a leftover only once the process ended.
    let tmp = d.pool.new_tmp_path();
    tokio::fs::rename(&part, &tmp).await.map_err(io)?;
    Ok((
        d.pool.adopt(tmp, hex::encode(sha256.finalize()), w.size),
        written - start,
    ))
}

/// The hasher of `w`'s checksum (sha256 when it has none).
fn hasher_for(w: &Wanted<'_>) -> Result<Hasher, UpstreamError> {
    Hasher::new(w.checksum.map_or("sha256", |c| c.algorithm.as_str()))
}

/// Checks the digest against `w`'s checksum, if it has one; returns the digest.
fn check(hasher: Hasher, w: &Wanted<'_>) -> Result<String, UpstreamError> {
    match w.checksum {
        Some(expected) => hasher.check(expected),
        None => Ok(hasher.hex()),
    }
}

/// Feeds the first `have` bytes of the partial file at `part` to both hashers; returns
/// how many there were.
async fn rehash_partial(
    part: &std::path::Path,
    have: u64,
    upstream: &mut Hasher,
    sha256: &mut sha2::Sha256,
) -> std::io::Result<u64> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(part).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0u64;
    while read < have {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let n = n.min((have - read) as usize);
        upstream.update(&buf[..n]);
        sha256.update(&buf[..n]);
        read += n as u64;
    }
    Ok(read)
}

/// One download's result: the staged blob and the bytes this run transferred.
pub(super) type Downloaded = Result<(Staged, u64), UpstreamError>;

/// One file of a [`Cx::download_batch`].
pub(super) struct Job {
    pub url: String,
    pub checksum: Option<Checksum>,
    pub size: u64,
    /// The key of its resumable partial file.
    pub partial_key: String,
}

/// What a batch of downloads gave: each file's result by its key, whether the batch
/// was cut short (a stop, or the deadline), and the journal of the pool buckets its
/// writes used.
pub(super) struct Batch<K> {
    pub results: Vec<(K, Downloaded)>,
    pub interrupted: bool,
    pub journal: StagedJournal,
}

/// The downloads of a sync: its plan, the package downloads and what they teach.
impl Cx<'_> {
    /// Downloads `jobs`, `parallel` at a time, counting them in `progress`, until all
    /// ended or the sync must stop; every queued write has landed when it returns (a
    /// failed write, a full disk, fails it naming the file; `what` names the step).
    pub(super) async fn download_batch<K>(
        &self,
        client: &super::source::Source,
        jobs: Vec<(K, Job)>,
        parallel: usize,
        progress: &Progress,
        what: &'static str,
    ) -> Result<Batch<K>, SyncError> {
        progress
            .bytes_total
            .store(jobs.iter().map(|(_, j)| j.size).sum(), Ordering::Relaxed);
        progress.total.store(jobs.len(), Ordering::Relaxed);
        progress.done.store(0, Ordering::Relaxed);
        let stager = self.pool.stager()?;
        let downloads = Downloads {
            source: client,
            pool: self.pool,
            stager: &stager,
            received: &progress.bytes,
        };
        let results: Vec<_> = futures_util::stream::iter(jobs)
            .map(|(key, job)| {
                let d = &downloads;
                async move {
                    let wanted = Wanted {
                        url: &job.url,
                        checksum: job.checksum.as_ref(),
                        size: job.size,
                        partial_key: &job.partial_key,
                    };
                    let r = download(d, &wanted).await;
                    progress.done.fetch_add(1, Ordering::Relaxed);
                    (key, r)
                }
            })
            .buffer_unordered(parallel)
            .take_until(self.halted(progress))
            .collect()
            .await;
        let interrupted =
            progress.stop.is_requested() || tokio::time::Instant::now() >= self.deadline;
        let journal = tokio::task::spawn_blocking(move || stager.finish())
            .await
            .map_err(|e| SyncError::Task {
                what,
                message: e.to_string(),
            })??;
        Ok(Batch {
            results,
            interrupted,
            journal,
        })
    }

    /// Which packages the pool holds already (by upstream's sha256, or by another
    /// checksum an earlier sync learned the sha256 of), and which to download.
    pub(super) async fn plan_downloads(&self, up: &Upstream) -> Result<Plan, SyncError> {
        let mut mapped: HashMap<(String, String), String> = HashMap::new();
        let mut by_algorithm: HashMap<&str, Vec<&str>> = HashMap::new();
        for &i in up.by_location.values() {
            let c = &up.entries[i].checksum;
            if c.algorithm != "sha256" {
                by_algorithm
                    .entry(c.algorithm.as_str())
                    .or_default()
                    .push(c.hex.as_str());
            }
        }
        for (algorithm, digests) in &by_algorithm {
            for (digest, sha) in self.catalog.sha256_for(algorithm, digests).await? {
                mapped.insert((algorithm.to_string(), digest), sha);
            }
        }
        let mut plan = Plan {
            known: HashMap::new(),
            wanted: Vec::new(),
            remote: Vec::new(),
        };
        let later = self.repo.policy != crate::app::config::Policy::Immediate;
        for &i in up.by_location.values() {
            let e = &up.entries[i];
            let size = e.size;
            let key = (e.checksum.algorithm.clone(), e.checksum.hex.clone());
            if let Some(sha) = mapped.get(&key) {
                if self.pool.reuse(sha, size) {
                    plan.known.insert(i, sha.clone());
                    continue;
                }
            }
            if e.checksum.algorithm == "sha256" && self.pool.reuse(&e.checksum.hex, size) {
                plan.known.insert(i, e.checksum.hex.clone());
            } else if later
                && e.checksum.algorithm == "sha256"
                && crate::store::pool::is_sha256(&e.checksum.hex)
            {
                // Named by its sha256 already: it can be published now and fetched
                // when asked for. (Another checksum says nothing of the pool address:
                // such a package is downloaded now.)
                plan.known.insert(i, e.checksum.hex.clone());
                plan.remote.push(i);
            } else {
                plan.wanted.push(i);
            }
        }
        plan.wanted.sort_unstable();
        if later {
            tracing::info!(
                "{}: {} packages upstream after filters, {} to download, {} fetched when asked for",
                self.repo.id,
                up.by_location.len(),
                plan.wanted.len(),
                plan.remote.len()
            );
        } else {
            tracing::info!(
                "{}: {} packages upstream after filters, {} to download",
                self.repo.id,
                up.by_location.len(),
                plan.wanted.len()
            );
        }
        Ok(plan)
    }

    /// Downloads the plan's wanted packages in parallel, adding each to the plan's
    /// known ones. All or nothing: when any fails, what did arrive is made durable (the
    /// next run skips it) and every failure is named.
    pub(super) async fn download(
        &self,
        client: &super::source::Source,
        entries: &[Listed],
        plan: &mut Plan,
        run: &mut SyncRun,
        progress: &Progress,
    ) -> Result<(Vec<Staged>, StagedJournal), SyncError> {
        let wanted = std::mem::take(&mut plan.wanted);
        let jobs = wanted
            .into_iter()
            .map(|i| {
                let e = &entries[i];
                let job = Job {
                    url: upstream::join(&self.base, &e.href),
                    checksum: Some(e.checksum.clone()),
                    size: e.size,
                    partial_key: format!(
                        "{}-{}-{}",
                        self.repo.id, e.checksum.algorithm, e.checksum.hex
                    ),
                };
                (i, job)
            })
            .collect();
        let Batch {
            results,
            interrupted,
            journal,
        } = self
            .download_batch(
                client,
                jobs,
                self.repo.downloads,
                progress,
                "writing downloads",
            )
            .await?;
        let mut staged = Vec::new();
        let mut failures = Vec::new();
        for (i, r) in results {
            match r {
                Ok((s, transferred)) => {
                    run.packages_downloaded += 1;
                    run.bytes_downloaded += transferred as i64;
                    plan.known.insert(i, s.sha256.clone());
                    staged.push(s);
                }
                Err(e) => failures.push((entries[i].href.clone(), e)),
            }
        }
        if interrupted || !failures.is_empty() {
            // Verified downloads are kept even when others failed or the sync was
            // stopped: the next run skips them.
            let kept = staged.len();
            self.pool.commit_async(staged).await?;
            journal.discard();
            self.remember_checksums(entries, &plan.known).await?;
            if interrupted {
                return Err(self.stopped(progress, kept));
            }
            failures.sort_by(|a, b| a.0.cmp(&b.0));
            return Err(SyncError::Packages(failures));
        }
        Ok((staged, journal))
    }

    /// Remembers what the non-sha256 checksums upstream names packages by stand for
    /// (also for the downloads of a failed run: they are in the pool). Call only once
    /// the blobs are durable.
    pub(super) async fn remember_checksums(
        &self,
        entries: &[Listed],
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
            self.catalog.remember_checksums(algorithm, pairs).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Received;
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
}
