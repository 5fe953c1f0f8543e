//! `cairn db verify`: re-hashes every blob in the pool on all cores and checks every
//! catalog reference against it.
//!
//! Reports blobs that the catalog references but the pool lacks (missing), blobs whose
//! content or size is not what their name and the catalog say (corrupt), and pool
//! files that nothing references (unreferenced: leftovers of interrupted work, which
//! garbage collection removes; reported, but not an error).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::app::progress::Progress;
use crate::store::catalog::{Catalog, CatalogError};
use crate::store::pool::{is_sha256, BlobState, Pool, PoolError};

/// What verification found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub checked: usize,
    pub missing: Vec<String>,
    /// (sha256, what is wrong)
    pub corrupt: Vec<(String, String)>,
    pub unreferenced: Vec<String>,
    /// Packages of on_demand and streamed repositories not fetched yet: absent from
    /// the pool as expected, not missing.
    pub not_fetched: usize,
    /// For each missing or corrupt blob: the package or metadata file it is and the
    /// trees that serve it.
    pub used_by: std::collections::BTreeMap<String, Vec<String>>,
}

impl VerifyReport {
    /// Missing or corrupt blobs: the catalog promises something the pool cannot give.
    pub fn has_problems(&self) -> bool {
        !self.missing.is_empty() || !self.corrupt.is_empty()
    }
}

/// Errors that stop verification itself.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("verification worker: {0}")]
    Worker(String),
    /// Stopped on request before every blob was checked.
    #[error("verification cancelled after {checked} of {total} pool files")]
    Cancelled { checked: usize, total: usize },
}

/// The sha256 of the file at `path`, hex.
pub fn sha256_of(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Every blob file under the pool's `ab/cd/` directories.
fn pool_blobs(pool: &Pool) -> Vec<String> {
    let mut out = Vec::new();
    for e in pool.bucket_files() {
        let name = e.file_name().to_string_lossy();
        if is_sha256(&name) {
            out.push(name.into_owned());
        }
    }
    out
}

/// Verifies the pool against the catalog.
pub async fn verify(
    catalog: &Catalog,
    pool: &Pool,
    progress: &std::sync::Arc<Progress>,
) -> Result<VerifyReport, VerifyError> {
    let referenced: HashMap<String, i64> = catalog.referenced_blobs().await?.into_iter().collect();
    // Packages left upstream until asked for are expected to be absent; once fetched,
    // they are checked like any other.
    let remote = catalog.unfetched_remote().await?;
    let pool2 = pool.clone();
    let progress = progress.clone();
    let mut report = tokio::task::spawn_blocking(move || check(&pool2, &referenced, &progress))
        .await
        .map_err(|e| VerifyError::Worker(e.to_string()))??;
    let before = report.missing.len();
    report.missing.retain(|sha| !remote.contains(sha));
    report.not_fetched = before - report.missing.len();
    let bad: Vec<&str> = report
        .missing
        .iter()
        .map(String::as_str)
        .chain(report.corrupt.iter().map(|(sha, _)| sha.as_str()))
        .collect();
    let users = catalog.blob_users(&bad).await?;
    report.used_by = users.into_iter().collect();
    catalog
        .record_maintenance(
            "verify",
            report.checked as i64,
            0,
            (report.missing.len() + report.corrupt.len()) as i64,
        )
        .await?;
    Ok(report)
}

fn check(
    pool: &Pool,
    referenced: &HashMap<String, i64>,
    progress: &Progress,
) -> Result<VerifyReport, VerifyError> {
    let on_disk = pool_blobs(pool);
    let mut report = VerifyReport::default();
    let present: std::collections::HashSet<&str> = on_disk.iter().map(String::as_str).collect();
    for sha in referenced.keys() {
        if !present.contains(sha.as_str()) {
            report.missing.push(sha.clone());
        }
    }
    progress.total.store(on_disk.len(), Ordering::Relaxed);
    let next = AtomicUsize::new(0);
    let found: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<PoolError>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if progress.stop.is_requested() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(sha) = on_disk.get(i) else { break };
                let problem = match pool.verify(sha) {
                    Ok(BlobState::Ok) => referenced.get(sha).and_then(|&size| {
                        let actual = std::fs::metadata(pool.path_of(sha))
                            .map(|m| m.len())
                            .unwrap_or(0);
                        (actual as i64 != size)
                            .then(|| format!("{actual} bytes, the catalog records {size}"))
                    }),
                    Ok(BlobState::Corrupt { actual }) => {
                        Some(format!("content hashes to {actual}"))
                    }
                    Ok(BlobState::Missing) => Some("vanished during verification".to_string()),
                    Err(e) => {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        None
                    }
                };
                if let Some(p) = problem {
                    if let Ok(mut f) = found.lock() {
                        f.push((sha.clone(), p));
                    }
                }
                if let Ok(size) = std::fs::metadata(pool.path_of(sha)).map(|m| m.len()) {
                    progress.bytes.fetch_add(size, Ordering::Relaxed);
                }
                progress.done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e.into());
    }
    if progress.stop.is_requested() {
        return Err(VerifyError::Cancelled {
            checked: progress.done.load(Ordering::Relaxed),
            total: on_disk.len(),
        });
    }
    report.checked = on_disk.len();
    report.corrupt = found.into_inner().unwrap_or_default();
    report.corrupt.sort();
    report.missing.sort();
    report.unreferenced = on_disk
        .iter()
        .filter(|sha| !referenced.contains_key(*sha))
        .cloned()
        .collect();
    report.unreferenced.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_stop_ends_verification_early_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path().join("pool")).unwrap();
        let blob = pool.stage_bytes(b"one blob").unwrap();
        pool.commit(vec![blob]).unwrap();
        let progress = Progress::default();
        let report = check(&pool, &HashMap::new(), &progress).unwrap();
        assert_eq!(report.checked, 1);
        progress.stop.request();
        match check(&pool, &HashMap::new(), &progress) {
            Err(VerifyError::Cancelled { total: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
