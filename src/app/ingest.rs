//! The one ingest protocol every way a package arrives goes through (a local import, a
//! sync from upstream; later uploads and on-demand fetches):
//!
//! 1. the caller stages the blobs in the pool (reading files, downloading) and renders
//!    each package's metadata fragments;
//! 2. the blobs become durable while the packages' catalog rows (package,
//!    dependencies, files, changelog, fragments) are written, a batch at a time, with
//!    one [`crate::store::catalog::PackageWriter`]; the rows are committed only after
//!    the blobs are durable;
//! 3. [`lock`]: the repository's write lock is taken ([`Locked`] holds it);
//! 4. [`Locked::current`] and [`compare`]: the new content against the current one;
//! 5. the caller publishes the new content ([`crate::app::publish`]);
//! 6. [`Locked::merge`] or [`Locked::replace`] places it and points `latest` at the
//!    publication, in one transaction, and tells running servers.
//!
//! The write lock is a value ([`WriteLock`]): the steps that need it take it, so they
//! cannot be called without it.

use std::collections::HashMap;

use crate::store::catalog::{Catalog, CatalogError, ExtraRef};
use crate::store::datadir::{DataDir, PoolLease, WriteLock};
use crate::store::pool::Pool;

/// Why an ingest step failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("locking repository {repo:?}: {source}")]
    Lock {
        repo: String,
        #[source]
        source: std::io::Error,
    },
    /// A blob the new content references is not in the pool (removed while the
    /// operation ran, by something that does not respect the pool lease).
    #[error("{count} package file(s) vanished from the pool before they were placed (first: {first}); nothing was placed: run the operation again")]
    BlobsMissing { count: usize, first: String },
}

/// Step 5½: every blob the new content references is in the pool, checked right
/// before it is placed, so an operation never reports success over a missing file.
pub fn check_blobs<'s>(
    pool: &Pool,
    sha256s: impl IntoIterator<Item = &'s str>,
) -> Result<(), IngestError> {
    let missing: Vec<&str> = sha256s.into_iter().filter(|s| !pool.contains(s)).collect();
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(IngestError::BlobsMissing {
            count: missing.len(),
            first: first.to_string(),
        }),
    }
}

/// Step 3: waits for the write lock of repository `repo` (created in the catalog if
/// new).
pub async fn lock<'a>(
    catalog: &'a Catalog,
    datadir: &'a DataDir,
    repo: &str,
) -> Result<Locked<'a>, IngestError> {
    let lock = datadir
        .lock_repo_async(repo)
        .await
        .map_err(|source| IngestError::Lock {
            repo: repo.to_string(),
            source,
        })?;
    let repo_id = catalog.ensure_repo(repo).await?;
    Ok(Locked {
        catalog,
        datadir,
        lock,
        repo_id,
    })
}

/// A repository whose write lock this process holds.
pub struct Locked<'a> {
    catalog: &'a Catalog,
    datadir: &'a DataDir,
    lock: WriteLock,
    pub repo_id: i64,
}

/// How a new content differs from the current one, location by location.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Locations the current content does not have.
    pub added: Vec<String>,
    /// Locations whose package changes: (location, the current package's sha256).
    pub replaced: Vec<(String, String)>,
    /// Locations that hold the same package already.
    pub unchanged: usize,
    /// Current locations the new content does not name.
    pub absent: Vec<String>,
}

/// Step 4: compares `new` (location → sha256) with `current`.
pub fn compare<'n>(
    current: &HashMap<String, String>,
    new: impl IntoIterator<Item = (&'n str, &'n str)>,
) -> Comparison {
    let mut out = Comparison::default();
    let mut named = std::collections::HashSet::new();
    for (location, sha256) in new {
        named.insert(location);
        match current.get(location) {
            None => out.added.push(location.to_string()),
            Some(old) if old == sha256 => out.unchanged += 1,
            Some(old) => out.replaced.push((location.to_string(), old.clone())),
        }
    }
    out.absent = current
        .keys()
        .filter(|l| !named.contains(l.as_str()))
        .cloned()
        .collect();
    out.absent.sort();
    out
}

impl Locked<'_> {
    /// Step 4: the repository's current content, location → sha256.
    pub async fn current(&self) -> Result<HashMap<String, String>, IngestError> {
        Ok(self
            .catalog
            .repo_content(self.repo_id)
            .await?
            .into_iter()
            .map(|c| (c.location, c.sha256))
            .collect())
    }

    /// Step 6 for an import: `placements` (location → package id) take their locations,
    /// the rest of the content stays, and `latest` points at `publication_id`.
    pub async fn merge(
        &self,
        placements: &[(String, i64)],
        publication_id: i64,
    ) -> Result<(), IngestError> {
        self.catalog
            .place_in_repo(&self.lock, self.repo_id, placements, publication_id)
            .await?;
        self.published();
        Ok(())
    }

    /// Step 6 for a sync: `placements` and `extras` become the whole content (what they
    /// do not name leaves), `latest` points at `publication_id`, and the upstream
    /// repomd.xml digest is recorded.
    pub async fn replace(
        &self,
        placements: &[(String, i64)],
        publication_id: i64,
        upstream_repomd_sha256: &str,
        extras: &[ExtraRef],
    ) -> Result<(), IngestError> {
        self.catalog
            .replace_repo_content(
                &self.lock,
                self.repo_id,
                placements,
                publication_id,
                upstream_repomd_sha256,
                extras,
            )
            .await?;
        self.published();
        Ok(())
    }

    /// Tells running servers; a failure only delays their reload until the next change.
    fn published(&self) {
        if let Err(e) = self.datadir.bump_generation() {
            tracing::warn!("telling servers about the new content: {e}");
        }
    }
}

/// After a failed ingest (a full disk, say): removes the blobs it newly placed in the
/// pool that no catalog row references but the package rows it wrote (`written`,
/// (sha256, id), committed batch by batch), and then those rows, so that the failure
/// gives its space back at once instead of leaving it to `gc` (which keeps young
/// blobs). The blobs go first: on a full disk, the catalog may need their space to
/// delete the rows (rows it cannot delete name no placed package, and `gc` removes
/// them later). Safe only with every writer kept out, so the caller's shared `lease`
/// is given up for the exclusive one; when another writer is running (it may be about
/// to reference the same blobs or rows), or anything fails, nothing more is removed and
/// `gc` deals with the rest later. Returns the number of blobs and bytes removed.
pub async fn release_new_blobs(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    lease: PoolLease,
    new_blobs: &[String],
    written: &[(String, i64)],
) -> (usize, u64) {
    drop(lease);
    if new_blobs.is_empty() && written.is_empty() {
        return (0, 0);
    }
    let Ok(Some(_exclusive)) = datadir.lock_gc_async(false).await else {
        return (0, 0);
    };
    // The rows written are about to go: what only they reference is free.
    let ours: std::collections::HashSet<&str> = written.iter().map(|(s, _)| s.as_str()).collect();
    let referenced: std::collections::HashSet<String> = match catalog.referenced_blobs().await {
        Ok(rows) => rows
            .into_iter()
            .map(|(sha, _)| sha)
            .filter(|sha| !ours.contains(sha.as_str()))
            .collect(),
        Err(_) => return (0, 0),
    };
    let (mut blobs, mut bytes) = (0, 0);
    for sha in new_blobs.iter().filter(|s| !referenced.contains(*s)) {
        if let Ok(Some(size)) = pool.remove(sha) {
            blobs += 1;
            bytes += size;
        }
    }
    if blobs > 0 {
        tracing::info!(
            "removed the {blobs} pool file(s) ({bytes} bytes) this failed operation had added"
        );
    }
    let ids: Vec<i64> = written.iter().map(|(_, id)| *id).collect();
    match catalog.remove_unplaced_packages(&ids).await {
        Ok(0) => {}
        Ok(rows) => {
            tracing::info!("removed the {rows} package row(s) this failed operation had written")
        }
        Err(e) => tracing::warn!("the package rows this failed operation wrote stay until gc: {e}"),
    }
    (blobs, bytes)
}

#[cfg(test)]
mod tests {
    use super::{check_blobs, compare, IngestError};
    use crate::store::pool::Pool;
    use std::collections::HashMap;

    #[test]
    fn placing_fails_when_a_blob_of_the_new_content_vanished() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path().join("pool")).unwrap();
        let kept = pool.stage_bytes(b"kept").unwrap();
        let sha = kept.sha256.clone();
        pool.commit(vec![kept]).unwrap();
        assert!(check_blobs(&pool, [sha.as_str()]).is_ok());
        let gone = "0".repeat(64);
        match check_blobs(&pool, [sha.as_str(), gone.as_str()]) {
            Err(IngestError::BlobsMissing { count, first }) => {
                assert_eq!((count, first), (1, gone));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_comparison_names_added_replaced_unchanged_and_absent_locations() {
        let current: HashMap<String, String> = [("a", "1"), ("b", "2"), ("c", "3")]
            .into_iter()
            .map(|(l, s)| (l.to_string(), s.to_string()))
            .collect();
        let c = compare(&current, [("a", "1"), ("b", "9"), ("d", "4")]);
        assert_eq!(c.added, ["d"]);
        assert_eq!(c.replaced, [("b".to_string(), "2".to_string())]);
        assert_eq!(c.unchanged, 1);
        assert_eq!(c.absent, ["c"]);
    }
}
