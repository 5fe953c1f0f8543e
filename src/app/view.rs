//! Views: an ordered list of repositories published as one repository, so dnf resolves
//! dependencies across them.
//!
//! Composition rules: members are taken in view order; when two members carry the
//! same name.arch at the same EVR, the earlier member's package wins; different
//! versions are all kept. Every package keeps its member location unless another file
//! already sits there, in which case it is published under `<repo>/<location>`, so no
//! two files ever share a path. `view snapshot` freezes every member repository and the
//! view together, in one catalog transaction.

use std::collections::{HashMap, HashSet};

use crate::app::config::{Config, ViewConfig};
use crate::app::publish::{self, Format, PublishError, Published};
use crate::formats::repodata::parse::ParseError;
use crate::formats::repodata::updateinfo::Nevra;
use crate::formats::repodata::{merge, ExtraKind};
use crate::store::catalog::{
    content_stamp, Catalog, CatalogError, ExtraRef, MemberPackage, Placed, ViewContent,
    ViewSnapshotRow,
};
use crate::store::datadir::{DataDir, LockError, PoolLease};
use crate::store::pool::Pool;
use crate::store::pool::PoolError;

/// Errors of view operations.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("merging member metadata: {0}")]
    Merge(#[from] ParseError),
    #[error("view {view:?}: snapshot {name:?} was not created")]
    NotCreated { view: String, name: String },
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// Composes members (in view order) into (location, package) placements.
pub fn compose(members: &[(String, Vec<MemberPackage>)]) -> Vec<(String, &MemberPackage)> {
    let mut seen: HashSet<(String, String, String)> = HashSet::new();
    let mut used: HashMap<String, &str> = HashMap::new();
    let mut out = Vec::new();
    for (repo, packages) in members {
        let mut sorted: Vec<&MemberPackage> = packages.iter().collect();
        sorted.sort_by(|a, b| a.location.cmp(&b.location));
        for p in sorted {
            let n = &p.nevra;
            let key = (
                n.name.clone(),
                n.arch.clone(),
                format!("{}:{}-{}", n.epoch, n.version, n.release),
            );
            if !seen.insert(key) {
                continue;
            }
            let mut location = p.location.clone();
            if used.get(&location).is_some_and(|sha| *sha != p.sha256) {
                location = format!("{repo}/{location}");
            }
            used.insert(location.clone(), &p.sha256);
            out.push((location, p));
        }
    }
    out
}

/// The members' current packages, in view order, and the stamp of the content
/// versions they were read at.
async fn members(
    catalog: &Catalog,
    view: &ViewConfig,
) -> Result<(Vec<(String, Vec<MemberPackage>)>, String), ViewError> {
    let mut out = Vec::with_capacity(view.repos.len());
    let mut versions = Vec::with_capacity(view.repos.len());
    for repo in &view.repos {
        let repo_id = catalog.ensure_repo(repo).await?;
        let (packages, version) = catalog.member_packages(repo_id).await?;
        versions.push((repo_id, version));
        out.push((repo.clone(), packages));
    }
    Ok((out, content_stamp(&versions)))
}

/// Publishes a composition. Its content key comes from (location, sha256) alone, so an
/// unchanged composition costs one lookup; fragments are fetched only to render.
async fn publish_composition(
    catalog: &Catalog,
    pool: &Pool,
    members: &[(String, Vec<MemberPackage>)],
    format: &Format,
) -> Result<(Published, Vec<(String, i64)>), ViewError> {
    let composed = compose(members);
    let placements: Vec<(String, i64)> = composed
        .iter()
        .map(|(loc, p)| (loc.clone(), p.package_id))
        .collect();
    let extras = merged_extras(catalog, pool, members, &composed).await?;
    let key = publish::content_key(
        composed
            .iter()
            .map(|(loc, p)| (loc.as_str(), p.sha256.as_str())),
        format,
        &extras,
    );
    if let Some(id) = catalog.publication_by_key(&key).await? {
        let published = Published {
            publication_id: id,
            rendered: false,
            package_count: composed.len(),
            seconds: 0.0,
            content_version: None,
        };
        return Ok((published, placements));
    }
    let items: Vec<Placed> = composed
        .iter()
        .map(|(loc, p)| Placed {
            package_id: p.package_id,
            sha256: p.sha256.clone(),
            location: loc.clone(),
            time_file: p.time_file,
        })
        .collect();
    let published = publish::publish_set(catalog, pool, items, format, &extras, false).await?;
    Ok((published, placements))
}

/// The members' comps, updateinfo and modules merged for the view (updateinfo trimmed to
/// the composed packages), stored in the pool; and the records the members carry
/// unchanged (productid, custom types), the first member's in view order for each type.
async fn merged_extras(
    catalog: &Catalog,
    pool: &Pool,
    members: &[(String, Vec<MemberPackage>)],
    composed: &[(String, &MemberPackage)],
) -> Result<Vec<ExtraRef>, ViewError> {
    let mut by_kind: Vec<(ExtraKind, Vec<Vec<u8>>)> =
        ExtraKind::ALL.iter().map(|k| (*k, Vec::new())).collect();
    let mut carried: Vec<ExtraRef> = Vec::new();
    for (repo, _) in members {
        let repo_id = catalog.ensure_repo(repo).await?;
        for e in catalog.repo_extras(repo_id).await? {
            if e.as_carried().is_some() {
                if !carried.iter().any(|c| c.kind == e.kind) {
                    carried.push(e);
                }
                continue;
            }
            let Some(kind) = ExtraKind::from_name(&e.kind) else {
                continue;
            };
            let path = pool.path_of(&e.sha256);
            let bytes = std::fs::read(&path).map_err(|source| PoolError::Io { path, source })?;
            if let Some((_, docs)) = by_kind.iter_mut().find(|(k, _)| *k == kind) {
                docs.push(bytes);
            }
        }
    }
    let keep: HashSet<Nevra> = composed
        .iter()
        .map(|(_, p)| Nevra {
            name: p.nevra.name.clone(),
            epoch: p.nevra.epoch.clone(),
            version: p.nevra.version.clone(),
            release: p.nevra.release.clone(),
            arch: p.nevra.arch.clone(),
        })
        .collect();
    let mut refs = Vec::new();
    let mut staged = Vec::new();
    for (kind, docs) in by_kind {
        if docs.is_empty() {
            continue;
        }
        let slices: Vec<&[u8]> = docs.iter().map(Vec::as_slice).collect();
        let merged = match kind {
            ExtraKind::Comps => merge::comps(&slices)?,
            ExtraKind::Updateinfo => merge::updateinfo(&slices, &keep)?,
            ExtraKind::Modules => merge::modules(&slices),
        };
        let s = pool.stage_bytes(&merged)?;
        refs.push(ExtraRef::opened(kind.name(), &s.sha256, s.size as i64));
        staged.push(s);
    }
    pool.commit_async(staged).await?;
    refs.extend(carried);
    Ok(refs)
}

/// Republishes a view's `latest` from its members' current content. The caller holds
/// the pool lease (`gc` waits meanwhile).
pub async fn publish_latest(
    catalog: &Catalog,
    pool: &Pool,
    _lease: &PoolLease,
    view: &ViewConfig,
) -> Result<Published, ViewError> {
    let view_id = catalog.ensure_view(&view.name).await?;
    let (members, stamp) = members(catalog, view).await?;
    let (published, placements) =
        publish_composition(catalog, pool, &members, &view.format()).await?;
    catalog
        .set_view_latest(view_id, &placements, published.publication_id, &stamp)
        .await?;
    Ok(published)
}

/// Republishes `latest` of every view that includes `repo` (after an import or sync).
pub async fn refresh_views_of(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    config: &Config,
    repo: &str,
) -> Result<(), ViewError> {
    let lease = datadir
        .lease_pool_async()
        .await
        .map_err(|source| LockError {
            repo: repo.to_string(),
            source,
        })?;
    for view in config
        .views
        .iter()
        .filter(|v| v.repos.iter().any(|r| r == repo))
    {
        publish_latest(catalog, pool, &lease, view).await?;
    }
    let _ = datadir.bump_generation();
    Ok(())
}

/// Freezes every member repository and the view, atomically, as snapshot `name`.
pub async fn snapshot(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    config: &Config,
    view: &ViewConfig,
    name: &str,
) -> Result<ViewSnapshotRow, ViewError> {
    publish::check_snapshot_name(name)?;
    let started = std::time::Instant::now();
    let phase = |what: &str| {
        tracing::debug!(
            "view snapshot: {what} at {:.3} s",
            started.elapsed().as_secs_f64()
        )
    };
    // Hold every member's write lock (in name order: no deadlock between two views).
    let _locks = datadir.lock_repos_async(&view.repos).await?;
    let view_id = catalog.ensure_view(&view.name).await?;
    let mut member_pubs = Vec::new();
    let mut repo_ids = Vec::new();
    for repo in &view.repos {
        let format = config.repo(repo).map(|r| r.format()).unwrap_or_default();
        let repo_id = catalog.ensure_repo(repo).await?;
        let published =
            publish::snapshot_publication(catalog, pool, repo, repo_id, &format).await?;
        member_pubs.push((repo_id, repo.clone(), published.publication_id));
        repo_ids.push(repo_id);
    }
    phase("member publications ready");
    // Usually the view's latest was composed from exactly the members' current content
    // (imports and syncs refresh it): then the snapshot is a copy of it, made in the
    // same transaction that checks the stamp.
    let stamp = catalog.current_stamp(&repo_ids).await?;
    let latest = catalog.view_latest_stamp(view_id).await?;
    let has_latest = latest.is_some();
    if let Some((_, latest_stamp)) = latest {
        if latest_stamp == stamp {
            if let Some(row) = catalog
                .create_view_snapshot(
                    view_id,
                    &view.name,
                    name,
                    &member_pubs,
                    ViewContent::Latest { stamp: &stamp },
                )
                .await?
            {
                let _ = datadir.bump_generation();
                phase("committed (copy of latest)");
                return Ok(row);
            }
        }
    }
    let (members, _) = members(catalog, view).await?;
    phase("member packages read");
    let (published, placements) =
        publish_composition(catalog, pool, &members, &view.format()).await?;
    phase("view composed and published");
    if !has_latest {
        // A view that never had a `latest` (new, or declared while nothing refreshed
        // it) gets this composition as its `latest` too: the members cannot move while
        // their locks are held.
        catalog
            .set_view_latest(view_id, &placements, published.publication_id, &stamp)
            .await?;
    }
    let row = catalog
        .create_view_snapshot(
            view_id,
            &view.name,
            name,
            &member_pubs,
            ViewContent::Composed {
                publication_id: published.publication_id,
                placements: &placements,
            },
        )
        .await?
        .ok_or_else(|| ViewError::NotCreated {
            view: view.name.clone(),
            name: name.to_string(),
        })?;
    let _ = datadir.bump_generation();
    phase("committed");
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::diff::Nevra;

    fn pkg(id: i64, name: &str, epoch: &str, version: &str, sha: &str) -> MemberPackage {
        MemberPackage {
            package_id: id,
            nevra: Nevra {
                name: name.into(),
                arch: "noarch".into(),
                epoch: epoch.into(),
                version: version.into(),
                release: "1".into(),
            },
            sha256: sha.into(),
            location: format!("Packages/{}/{name}-{version}-1.noarch.rpm", &name[..1]),
            time_file: 0,
        }
    }

    #[test]
    fn earlier_members_win_and_paths_never_collide() {
        let members = vec![
            (
                "a".to_string(),
                vec![pkg(1, "x", "0", "1", "s1"), pkg(2, "y", "0", "1", "s2")],
            ),
            (
                "b".to_string(),
                // Same x EVR (dropped), y with another epoch but the same file name.
                vec![
                    pkg(3, "x", "0", "1", "s3"),
                    pkg(4, "y", "1", "1", "s4"),
                    pkg(5, "z", "0", "2", "s5"),
                ],
            ),
        ];
        let out = compose(&members);
        let got: Vec<(String, i64)> = out.iter().map(|(l, p)| (l.clone(), p.package_id)).collect();
        assert_eq!(
            got,
            vec![
                ("Packages/x/x-1-1.noarch.rpm".to_string(), 1),
                ("Packages/y/y-1-1.noarch.rpm".to_string(), 2),
                ("b/Packages/y/y-1-1.noarch.rpm".to_string(), 4),
                ("Packages/z/z-2-1.noarch.rpm".to_string(), 5),
            ]
        );
    }
}
