//! What the front ends show, composed once: a repository's or view's details and a
//! tree's packages with their signers. The command line's `--json` output and the
//! API answer with these same documents.

use crate::app::context::{App, AppError};
use crate::store::catalog::{
    AliasRow, CatalogError, PackageRow, RepoRow, SnapshotRow, Space, SyncRun, ViewSnapshotRow,
};

/// What a repository's configuration says, as clients may see it (never credentials:
/// no proxy, certificate or key paths).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RepoSettings {
    /// The upstream (a password in it hidden); none for a local repository.
    pub feed: Option<String>,
    /// Or the mirrorlist it reads its mirrors from.
    pub mirrorlist: Option<String>,
    /// Or the metalink.
    pub metalink: Option<String>,
    /// Its bandwidth limit in bytes per second, when it has one.
    pub max_rate: Option<u64>,
    /// `regenerate` or `mirror`.
    pub mode: String,
    /// `repo` or `tree`.
    pub kind: String,
    pub schedule: Option<String>,
    pub arch: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// `require`, `warn` or `off`.
    pub gpgcheck: String,
    pub repo_gpgcheck: bool,
    pub sign: bool,
    /// `public` or `token`.
    pub access: String,
    pub snapshot_name: Option<String>,
}

impl RepoSettings {
    pub fn of(c: &crate::app::config::RepoConfig) -> RepoSettings {
        let lower = |d: &dyn std::fmt::Debug| format!("{d:?}").to_lowercase();
        RepoSettings {
            feed: c.feed.as_deref().map(crate::app::context::redact),
            mirrorlist: c.mirrorlist.as_deref().map(crate::app::context::redact),
            metalink: c.metalink.as_deref().map(crate::app::context::redact),
            max_rate: c.max_rate,
            mode: lower(&c.mode()),
            kind: lower(&c.kind),
            schedule: c.schedule.map(|s| s.to_string()),
            arch: c.arch.clone(),
            include: c.include.clone(),
            exclude: c.exclude.clone(),
            gpgcheck: lower(&c.gpgcheck()),
            repo_gpgcheck: c.repo_gpgcheck,
            sign: c.sign,
            access: lower(&c.access),
            snapshot_name: c.snapshot_name.clone(),
        }
    }
}

/// A repository in a list: its catalog row and settings.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RepoSummary {
    pub repo: RepoRow,
    /// Absent for a repository the catalog knows but the configuration no longer
    /// declares.
    pub config: Option<RepoSettings>,
}

/// A view in a list.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ViewSummary {
    pub name: String,
    pub repos: Vec<String>,
}

/// A repository: its catalog row, settings, snapshots, aliases and newest syncs.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RepoDetails {
    pub repo: RepoRow,
    pub config: Option<RepoSettings>,
    pub snapshots: Vec<SnapshotRow>,
    pub aliases: Vec<AliasRow>,
    /// Newest first.
    pub syncs: Vec<SyncRun>,
}

/// A view: its members (from the config) and snapshots.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ViewDetails {
    pub name: String,
    pub repos: Vec<String>,
    pub snapshots: Vec<ViewSnapshotRow>,
    /// Its aliases (`repo` names the view).
    pub aliases: Vec<AliasRow>,
}

/// The most an updateinfo document may open to (it was checked when it came in; this
/// bounds a damaged pool copy).
const UPDATEINFO_LIMIT: u64 = 1024 * 1024 * 1024;

/// A package's header signature as recorded.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SignatureInfo {
    /// `RSA`, `EdDSA`, …, or `none` when unsigned.
    pub algorithm: String,
    pub key_id: Option<String>,
}

/// One package of a tree.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TreePackages {
    pub owner: String,
    pub tree: String,
    pub total: i64,
    /// Of the tree's packages (all, not only this page's), how many are left upstream
    /// until a client asks (on_demand and streamed repositories); the others are
    /// stored here.
    pub not_stored: i64,
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
            config: self.config.repo(name).map(RepoSettings::of),
            snapshots: self.catalog.snapshots(Some(name)).await?,
            aliases: self.catalog.aliases(Some(name)).await?,
            syncs: self.catalog.sync_runs(repo.id, syncs).await?,
            repo,
        })
    }

    /// Every repository the catalog knows, with its settings.
    pub async fn repo_list(&self) -> Result<Vec<RepoSummary>, AppError> {
        Ok(self
            .catalog
            .repos()
            .await?
            .into_iter()
            .map(|repo| RepoSummary {
                config: self.config.repo(&repo.name).map(RepoSettings::of),
                repo,
            })
            .collect())
    }

    /// Every view declared.
    pub fn view_list(&self) -> Vec<ViewSummary> {
        self.config
            .views
            .iter()
            .map(|v| ViewSummary {
                name: v.name.clone(),
                repos: v.repos.clone(),
            })
            .collect()
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
            aliases: self.catalog.view_aliases(name).await?,
        })
    }

    /// The advisories tree `tree` of repository or view `owner` publishes (its
    /// updateinfo; none when it has none).
    pub async fn tree_advisories(
        &self,
        space: Space,
        owner: &str,
        tree: &str,
    ) -> Result<Vec<crate::formats::repodata::updateinfo::Advisory>, AppError> {
        let Some(t) = self.catalog.page_tree(space, owner, tree).await? else {
            return Err(CatalogError::UnknownSnapshot {
                repo: owner.to_string(),
                snapshot: tree.to_string(),
            }
            .into());
        };
        let Some(file) = self.catalog.page_tree_record(&t, "updateinfo").await? else {
            return Ok(Vec::new());
        };
        let pool = self.pool.clone();
        let read = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(pool.path_of(&file.sha256))
                .map_err(|e| format!("{}: {e}", file.path))?;
            let doc = crate::formats::repodata::decompress::decompress(
                &bytes,
                UPDATEINFO_LIMIT,
                &file.path,
            )
            .map_err(|e| e.to_string())?;
            crate::formats::repodata::updateinfo::advisories(doc, &file.path)
                .map_err(|e| e.to_string())
        });
        match read.await {
            Ok(Ok(list)) => Ok(list),
            Ok(Err(e)) => Err(AppError::Metadata(e)),
            Err(e) => Err(AppError::Metadata(e.to_string())),
        }
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
            not_stored: self.catalog.not_stored(&t).await?,
            packages: rows.into_iter().map(PackageInfo::from).collect(),
        })
    }

    /// Everything the catalog knows of the package whose sha256 is `sha256`.
    pub async fn package(&self, sha256: &str) -> Result<Option<PackageDetails>, AppError> {
        Ok(self
            .catalog
            .package(sha256)
            .await?
            .map(PackageDetails::from))
    }
}

/// One package as the metadata describes it (the API's `/packages/{sha256}`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PackageDetails {
    /// The sha256 of the whole file: its pool address and its pkgid.
    pub sha256: String,
    pub name: String,
    pub arch: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    pub summary: String,
    pub description: String,
    pub packager: String,
    pub url: String,
    pub license: String,
    pub vendor: String,
    pub group: String,
    pub buildhost: String,
    pub sourcerpm: String,
    /// The file's time and the build time (seconds since the epoch).
    pub time_file: i64,
    pub time_build: i64,
    /// The file's size, the installed size and the payload archive's size, in bytes.
    pub size_package: i64,
    pub size_installed: i64,
    pub size_archive: i64,
    /// Provides, requires and the other dependency lists, in primary.xml order.
    pub dependencies: Vec<DependencyInfo>,
    /// Every file, in header order.
    pub files: Vec<FileInfo>,
    /// Changelog entries, oldest first.
    pub changelogs: Vec<ChangelogInfo>,
}

/// One dependency entry.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DependencyInfo {
    /// `provides`, `requires`, `conflicts`, `obsoletes`, `suggests`, `enhances`,
    /// `recommends` or `supplements`.
    pub kind: String,
    pub name: String,
    /// `LT`, `GT`, `EQ`, `LE` or `GE`; absent for an unversioned entry.
    pub flags: Option<String>,
    pub epoch: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    /// Needed before the package's scripts run (requires only).
    pub pre: bool,
}

/// One file of a package.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FileInfo {
    pub path: String,
    /// `file`, `dir` or `ghost`.
    pub kind: String,
}

/// One changelog entry.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ChangelogInfo {
    pub author: String,
    /// Seconds since the epoch.
    pub date: i64,
    pub text: String,
}

impl From<crate::domain::package::Package> for PackageDetails {
    fn from(p: crate::domain::package::Package) -> PackageDetails {
        use crate::domain::package::{FileKind, Package};
        // Every field named: a field added to the model must be placed here.
        let Package {
            pkgid,
            name,
            arch,
            epoch,
            version,
            release,
            summary,
            description,
            packager,
            url,
            time_file,
            time_build,
            size_package,
            size_installed,
            size_archive,
            license,
            vendor,
            group,
            buildhost,
            sourcerpm,
            header_start: _,
            header_end: _,
            deps,
            files,
            changelogs,
        } = p;
        PackageDetails {
            sha256: pkgid,
            name,
            arch,
            epoch,
            version,
            release,
            summary,
            description,
            packager,
            url,
            license,
            vendor,
            group,
            buildhost,
            sourcerpm,
            time_file,
            time_build,
            size_package,
            size_installed,
            size_archive,
            dependencies: deps
                .into_iter()
                .map(|d| DependencyInfo {
                    kind: d.kind.element().to_string(),
                    name: d.name,
                    flags: d.flags,
                    epoch: d.epoch,
                    version: d.ver,
                    release: d.rel,
                    pre: d.pre,
                })
                .collect(),
            files: files
                .into_iter()
                .map(|f| FileInfo {
                    path: f.path,
                    kind: match f.kind {
                        FileKind::File => "file",
                        FileKind::Dir => "dir",
                        FileKind::Ghost => "ghost",
                    }
                    .to_string(),
                })
                .collect(),
            changelogs: changelogs
                .into_iter()
                .map(|c| ChangelogInfo {
                    author: c.author,
                    date: c.date,
                    text: c.text,
                })
                .collect(),
        }
    }
}
