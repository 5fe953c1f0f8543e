//! Downloading packages into the pool: small ones into memory and through the pool's
//! stager, large ones into a resumable `pool/tmp/partial-*` file, each verified against
//! upstream's checksum and size, with the progress display's byte count kept true
//! across failed attempts.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

use super::upstream::{self, Hasher, UpstreamError};
use crate::formats::repodata::parse::Checksum;
use crate::store::pool::{Pool, Staged, Stager};

/// Packages up to this size are downloaded into memory before being written.
const IN_MEMORY: u64 = 4 * 1024 * 1024;

/// What the package downloads of one sync share.
pub struct Downloads<'a> {
    pub client: &'a reqwest::Client,
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

/// One package to download: where from, what it must be, and the key of its
/// resumable partial file.
pub struct Wanted<'a> {
    pub url: &'a str,
    pub checksum: &'a Checksum,
    pub size: u64,
    pub partial_key: &'a str,
}

/// Downloads one package into the pool's temp area, verifying size and checksum, with
/// [`upstream::retrying`]. Returns the staged blob and the bytes this run transferred.
pub async fn download(d: &Downloads<'_>, w: &Wanted<'_>) -> Result<(Staged, u64), UpstreamError> {
    upstream::retrying(w.url, || async {
        let received = Received {
            total: d.received,
            mine: AtomicU64::new(0),
        };
        let result = if w.size > IN_MEMORY {
            download_resumable(d, &received, w).await
        } else {
            download_small(d, &received, w).await.map(|s| (s, w.size))
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
) -> Result<Staged, UpstreamError> {
    let resp = upstream::get(d.client, w.url).await?;
    let mut upstream = Hasher::new(&w.checksum.algorithm)?;
    let mut data = Vec::with_capacity(w.size as usize);
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| UpstreamError::from_reqwest(&e))?;
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
    let actual = upstream.check(w.checksum)?;
    if w.checksum.algorithm == "sha256" {
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
    let resp = match upstream::get_from(d.client, w.url, (have > 0).then_some(have)).await {
        Err(UpstreamError::Status(reqwest::StatusCode::RANGE_NOT_SATISFIABLE)) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(UpstreamError::RangeRefused);
        }
        other => other?,
    };
    let resumed = have > 0 && resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
    let mut upstream = Hasher::new(&w.checksum.algorithm)?;
    let mut sha256 = sha2::Sha256::new();
    let mut written = 0u64;
    if resumed {
        written = rehash_partial(&part, have, &mut upstream, &mut sha256)
            .await
            .map_err(io)?;
        tracing::info!("{}: resuming at byte {written}", w.url);
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
        let chunk = chunk.map_err(|e| UpstreamError::from_reqwest(&e))?;
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
    if let Err(e) = upstream.check(w.checksum) {
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
