//! Snapshots taken automatically after a successful sync, and retention: which old
//! snapshots of a repository are deleted.
//!
//! A snapshot is kept when it is among the newest `keep_snapshots`, or younger than
//! `keep_days`; with neither set, all are kept. Snapshots that an alias or a view
//! snapshot uses are never deleted (the catalog refuses, and that is logged).

use crate::app::config::RepoConfig;
use crate::app::publish::{self, PublishError};
use crate::store::catalog::{Catalog, CatalogError, Space};
use crate::store::datadir::{DataDir, LockError, WriteLocks};
use crate::store::pool::Pool;

/// Errors of automatic snapshots and retention.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// After a sync that changed the repository: snapshot it (when the repo has a
/// `snapshot_name` template and its content differs from the newest snapshot; a name
/// already used today gets `-2`, `-3`, …), then apply retention. Returns the snapshot created and the snapshots deleted.
pub async fn after_sync(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    repo: &RepoConfig,
    alias_grace_secs: i64,
) -> Result<(Option<String>, Vec<String>), RetentionError> {
    let lock = datadir
        .lock_repo_async(&repo.id)
        .await
        .map_err(|source| LockError {
            repo: repo.id.clone(),
            source,
        })?;
    let mut created = None;
    if let Some(template) = &repo.snapshot_name {
        let snaps = catalog.snapshots(Some(&repo.id)).await?;
        let latest = catalog
            .repo(&repo.id)
            .await?
            .and_then(|r| r.latest_publication_id);
        // Nothing new since the newest snapshot (same publication): no new snapshot.
        let newest = snaps.iter().max_by_key(|s| (s.created_at, s.id));
        if latest.is_some() && newest.map(|s| s.publication_id) != latest {
            let base =
                crate::domain::names::expand(template, &repo.id, time::OffsetDateTime::now_utc());
            // The next free suffix after any existing `base`, `base-2`, … (never reusing
            // the name of a deleted older snapshot).
            let highest = snaps
                .iter()
                .filter_map(|s| {
                    if s.name == base {
                        Some(1)
                    } else {
                        s.name
                            .strip_prefix(&format!("{base}-"))?
                            .parse::<u32>()
                            .ok()
                    }
                })
                .max();
            let name = match highest {
                None => base.clone(),
                Some(n) => format!("{base}-{}", n + 1),
            };
            publish::create_snapshot(catalog, pool, datadir, &lock, &name, &repo.format()).await?;
            created = Some(name);
        }
    }
    let deleted = apply(
        catalog,
        datadir,
        &WriteLocks::from(lock),
        repo,
        alias_grace_secs,
    )
    .await?;
    Ok((created, deleted))
}

/// Deletes the snapshots retention does not keep (under the repository's write lock,
/// so no snapshot is created or aliased meanwhile); returns their names.
pub async fn apply(
    catalog: &Catalog,
    datadir: &DataDir,
    locks: &WriteLocks,
    repo: &RepoConfig,
    alias_grace_secs: i64,
) -> Result<Vec<String>, RetentionError> {
    if repo.keep_snapshots.is_none() && repo.keep_days.is_none() {
        return Ok(Vec::new());
    }
    let mut snaps = catalog.snapshots(Some(&repo.id)).await?;
    snaps.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.name.cmp(&a.name)));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut deleted = Vec::new();
    for (i, s) in snaps.iter().enumerate() {
        let newest = repo.keep_snapshots.is_some_and(|n| i < n);
        let young = repo
            .keep_days
            .is_some_and(|d| now - s.created_at < i64::from(d) * 86_400);
        if newest || young {
            continue;
        }
        match catalog
            .delete_snapshot(locks, Space::Repos, &repo.id, &s.name, alias_grace_secs)
            .await
        {
            Ok(()) => deleted.push(s.name.clone()),
            Err(CatalogError::SnapshotInUse { users, .. }) => {
                tracing::info!("{}: retention keeps {} ({users})", repo.id, s.name)
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !deleted.is_empty() {
        let _ = datadir.bump_generation();
    }
    Ok(deleted)
}
