//! `cairn gc`: removes what nothing references any more, catalog rows first, then pool
//! blobs, so no catalog row ever points at a deleted blob.
//!
//! Safe while `cairn serve` runs: what the server's index can reach is referenced by a
//! repository's `latest`, a snapshot or an alias (directly or within its grace period),
//! and those are kept. Safe beside a running import, sync, publish or snapshot: those
//! hold the pool lease ([`crate::store::datadir::PoolLease`]) from before their first
//! blob until their content is placed, and a collection runs only under the exclusive
//! [`GcLock`], so it never sees a blob or row that work in progress is about to
//! reference, whatever `min_age` says. `min_age` (default [`MIN_AGE`]) keeps recent
//! leftovers for inspection and protects against writers of older releases. An interrupted GC leaves a consistent state: the
//! catalog step is one transaction, and the blob step only deletes unreferenced files
//! (and temp files that crashed or cancelled writers left beside the blobs, once their
//! writer has ended: see [`crate::store::pool::is_stale_temp`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::app::progress::{Progress, Stop};

use crate::store::catalog::{Catalog, CatalogError, GcRows};
use crate::store::datadir::{DataDir, GcLock};
use crate::store::pool::{is_sha256, is_stale_temp, is_temp_name, Pool};

/// Nothing younger than this is collected.
pub const MIN_AGE: Duration = Duration::from_secs(3600);

/// What a collection freed (or, dry, would free).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub rows: GcRows,
    pub blobs: usize,
    pub bytes: u64,
}

/// Errors of a collection.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("pool sweep: {0}")]
    Worker(String),
    /// `--no-wait`, and an import, sync, publish or snapshot holds the pool lease.
    #[error("gc skipped: an import, sync, publish or snapshot is running on this data dir (run gc again later, or without --no-wait to wait for it)")]
    Busy,
    #[error("taking the pool for gc: {0}")]
    Lock(#[source] std::io::Error),
    /// Stopped on request; what was removed stays removed (run gc again to finish).
    #[error("gc cancelled after removing {blobs} unreferenced pool files ({bytes} bytes): run it again to finish")]
    Cancelled { blobs: usize, bytes: u64 },
}

/// Takes the exclusive pool lock for a collection: waits for running writers, or (not
/// `wait`) fails with [`GcError::Busy`] while any runs; a stop requested while it
/// waits ends the wait.
pub async fn lock(datadir: &DataDir, wait: bool, stop: &Stop) -> Result<GcLock, GcError> {
    if let Some(lock) = datadir.lock_gc_async(false).await.map_err(GcError::Lock)? {
        return Ok(lock);
    }
    if !wait {
        return Err(GcError::Busy);
    }
    tracing::info!("gc waits for the running imports, syncs, publishes and snapshots to end");
    tokio::select! {
        lock = datadir.lock_gc_async(true) => lock.map_err(GcError::Lock)?.ok_or(GcError::Busy),
        () = stop.requested() => Err(GcError::Cancelled { blobs: 0, bytes: 0 }),
    }
}

/// Runs a collection, keeping anything younger than `min_age` ([`MIN_AGE`] by default).
/// `_lock` (see [`lock`]) keeps every writer out meanwhile.
pub async fn collect(
    catalog: &Catalog,
    pool: &Pool,
    _lock: &GcLock,
    alias_grace: Duration,
    min_age: Duration,
    dry_run: bool,
    progress: &Arc<Progress>,
) -> Result<GcReport, GcError> {
    if progress.stop.is_requested() {
        return Err(GcError::Cancelled { blobs: 0, bytes: 0 });
    }
    let rows = match catalog
        .collect_garbage(
            min_age.as_secs() as i64,
            alias_grace.as_secs() as i64,
            dry_run,
        )
        .await
    {
        Ok(rows) => rows,
        // On a full disk the row deletions cannot be written (they roll back whole),
        // but the blobs that no row references can still go, which frees the space.
        Err(e @ CatalogError::Full(_)) => {
            tracing::warn!("{e}; removing unreferenced pool files only");
            Default::default()
        }
        Err(e) => return Err(e.into()),
    };
    let mut referenced: HashSet<String> = catalog
        .referenced_blobs()
        .await?
        .into_iter()
        .map(|(sha, _)| sha)
        .collect();
    if dry_run {
        // Blobs only the rows that would go reference would go too.
        referenced = catalog
            .blobs_still_referenced_after_gc(min_age.as_secs() as i64, alias_grace.as_secs() as i64)
            .await?;
    }
    let pool = pool.clone();
    let sweeping = progress.clone();
    let (blobs, bytes) =
        tokio::task::spawn_blocking(move || sweep(&pool, &referenced, min_age, dry_run, &sweeping))
            .await
            .map_err(|e| GcError::Worker(e.to_string()))?;
    if !dry_run {
        // The space is freed whether or not the run can be recorded (gc is what an
        // operator runs on a full disk).
        if let Err(e) = catalog
            .record_maintenance("gc", blobs as i64, bytes as i64, 0)
            .await
        {
            tracing::warn!("gc freed {bytes} bytes but could not record its run: {e}");
        }
    }
    if progress.stop.is_requested() {
        return Err(GcError::Cancelled { blobs, bytes });
    }
    Ok(GcReport {
        dry_run,
        rows,
        blobs,
        bytes,
    })
}

fn sweep(
    pool: &Pool,
    referenced: &HashSet<String>,
    min_age: Duration,
    dry_run: bool,
    progress: &Progress,
) -> (usize, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = SystemTime::now();
    let (mut blobs, mut bytes) = (0usize, 0u64);
    for e in pool.bucket_files() {
        if progress.stop.is_requested() {
            break;
        }
        progress.done.fetch_add(1, Relaxed);
        let name = e.file_name().to_string_lossy();
        if is_temp_name(&name) {
            // A crashed or cancelled writer's temp file: never a blob, never served.
            if !dry_run && is_stale_temp(e.path()) {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        }
        if !is_sha256(&name) || referenced.contains(name.as_ref()) {
            continue;
        }
        // Re-read the time right before deleting: a reuse touches it.
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= min_age);
        if !old {
            continue;
        }
        if dry_run || std::fs::remove_file(e.path()).is_ok() {
            blobs += 1;
            bytes += meta.len();
            progress.bytes.fetch_add(meta.len(), Relaxed);
        }
    }
    (blobs, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_removes_stale_temp_files_and_keeps_fresh_ones() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path().join("pool")).unwrap();
        let blob = pool.stage_bytes(b"kept").unwrap();
        let sha = blob.sha256.clone();
        pool.commit(vec![blob]).unwrap();
        let bucket = pool.path_of(&sha).parent().unwrap().to_path_buf();
        let gone = crate::store::pool::tests::ended_pid();
        let stale = bucket.join(format!(".{sha}.{gone}-1.tmp"));
        // Being written: by a live process (this one).
        let fresh = bucket.join(format!(".{sha}.{}-2.tmp", std::process::id()));
        // Left by a writer that ended, just now: removed as well.
        let recent = bucket.join(format!(".{sha}.{gone}-3.tmp"));
        std::fs::write(&recent, b"left over just now").unwrap();
        std::fs::write(&stale, b"left over").unwrap();
        std::fs::write(&fresh, b"being written").unwrap();
        let long_ago = SystemTime::now() - crate::store::pool::STALE_TMP - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let referenced: HashSet<String> = [sha.clone()].into();

        let (blobs, _) = sweep(
            &pool,
            &referenced,
            Duration::ZERO,
            true,
            &Progress::default(),
        );
        assert_eq!(blobs, 0);
        assert!(stale.exists(), "a dry run removes nothing");

        let (blobs, _) = sweep(
            &pool,
            &referenced,
            Duration::ZERO,
            false,
            &Progress::default(),
        );
        assert_eq!(blobs, 0, "temp files are not counted as blobs");
        assert!(!stale.exists(), "the stale temp file is gone");
        assert!(
            !recent.exists(),
            "a recent one whose writer ended is gone too"
        );
        assert!(fresh.exists(), "a temp file being written is kept");
        assert!(pool.contains(&sha), "the referenced blob is kept");
    }
}
