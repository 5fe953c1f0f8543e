//! What the front ends show, composed once: a repository's or view's details and a
//! tree's packages with their signers. The command line's `--json` output and the
//! API answer with these same documents.

use crate::app::context::{App, AppError};
use crate::store::catalog::{
    AliasRow, CatalogError, PackageRow, RepoRow, SnapshotRow, Space, SyncRun, ViewSnapshotRow,
};

/// A repository: its catalog row, snapshots, aliases and newest syncs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoDetails {
    pub repo: RepoRow,
    pub snapshots: Vec<SnapshotRow>,
    pub aliases: Vec<AliasRow>,
    /// Newest first.
    pub syncs: Vec<SyncRun>,
}

/// A view: its members (from the config) and snapshots.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewDetails {
    pub name: String,
    pub repos: Vec<String>,
    pub snapshots: Vec<ViewSnapshotRow>,
}

/// A package's header signature as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignatureInfo {
    /// `RSA`, `EdDSA`, …, or `none` when unsigned.
    pub algorithm: String,
    pub key_id: Option<String>,
}

/// One package of a tree.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackageInfo {
    pub name: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub location: String,
    pub sha256: String,
    pub size: i64,
    /// `None` while the package has not been read for it.
    pub signature: Option<SignatureInfo>,
}

impl From<PackageRow> for PackageInfo {
    fn from(r: PackageRow) -> PackageInfo {
        PackageInfo {
            signature: r.sig_algorithm.map(|algorithm| SignatureInfo {
                algorithm,
                key_id: r.sig_key_id,
            }),
            name: r.name,
            epoch: r.epoch,
            version: r.version,
            release: r.release,
            arch: r.arch,
            location: r.location,
            sha256: r.sha256,
            size: r.size,
        }
    }
}

/// Some packages of a tree, and how many match in all.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreePackages {
    pub owner: String,
    pub tree: String,
    pub total: i64,
    pub packages: Vec<PackageInfo>,
}

/// Which packages of a tree.
#[derive(Debug, Clone, Default)]
pub struct PackageFilter {
    /// Names containing this (case-insensitive); empty: all.
    pub name: String,
    /// Only the unsigned ones.
    pub unsigned: bool,
    pub offset: i64,
    pub limit: i64,
}

impl App {
    /// Repository `name`'s details (with its `limit` newest syncs).
    pub async fn repo_details(&self, name: &str, syncs: i64) -> Result<RepoDetails, AppError> {
        let Some(repo) = self.catalog.repo(name).await? else {
            return Err(AppError::UnknownRepo(name.to_string()));
        };
        Ok(RepoDetails {
            snapshots: self.catalog.snapshots(Some(name)).await?,
            aliases: self.catalog.aliases(Some(name)).await?,
            syncs: self.catalog.sync_runs(repo.id, syncs).await?,
            repo,
        })
    }

    /// View `name`'s details.
    pub async fn view_details(&self, name: &str) -> Result<ViewDetails, AppError> {
        let declared = self
            .config
            .view(name)
            .ok_or_else(|| AppError::UndeclaredView(name.to_string()))?;
        Ok(ViewDetails {
            name: declared.name.clone(),
            repos: declared.repos.clone(),
            snapshots: self.catalog.view_snapshots(name).await?,
        })
    }

    /// The packages of tree `tree` (`latest`, a snapshot or an alias) of repository or
    /// view `owner` that `filter` selects, in location order.
    pub async fn tree_packages(
        &self,
        space: Space,
        owner: &str,
        tree: &str,
        filter: &PackageFilter,
    ) -> Result<TreePackages, AppError> {
        let Some(t) = self.catalog.page_tree(space, owner, tree).await? else {
            return Err(CatalogError::UnknownSnapshot {
                repo: owner.to_string(),
                snapshot: tree.to_string(),
            }
            .into());
        };
        let (total, rows) = self
            .catalog
            .page_packages(
                &t,
                &filter.name,
                filter.unsigned,
                filter.offset,
                filter.limit,
            )
            .await?;
        Ok(TreePackages {
            owner: owner.to_string(),
            tree: tree.to_string(),
            total,
            packages: rows.into_iter().map(PackageInfo::from).collect(),
        })
    }
}
