//! [`App`]: one opened installation (its config, data dir, pool and catalog) and the
//! operations every front end calls on it. The command line parses arguments, calls
//! one of these and formats the result; the server's scheduler calls the same ones; so
//! will the HTTP API. Whether a name is a repository or a view, what a snapshot is
//! called when no name is given, and what follows a sync are decided here, once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::app::audit::Change;
use crate::app::config::{Config, GpgCheck, RepoConfig};
use crate::app::gc::{self, GcError, GcReport};
use crate::app::import::{self, ImportError, ImportReport};
use crate::app::progress::Progress;
use crate::app::publish::{self, Format, PublishError, Published};
use crate::app::retention::{self, RetentionError};
use crate::app::signing::{SignError, Signer};
use crate::app::sync::{self, SyncError, SyncReport};
use crate::app::verify::{self, VerifyError, VerifyReport};
use crate::app::view::{self, ViewError};
use crate::domain::actor::Actor;
use crate::domain::names;
use crate::domain::status::RunStatus;
use crate::formats::openpgp::Keyring;
use crate::store::catalog::{Catalog, CatalogError, SnapshotRow, Space, ViewSnapshotRow};
use crate::store::datadir::{DataDir, LockError, OwnerError, PoolLease, WriteLocks};
use crate::store::pool::{Pool, PoolError};

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("creating data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the catalog at {url}: {source}")]
    Connect {
        /// The database URL with any password hidden.
        url: String,
        #[source]
        source: CatalogError,
    },
    #[error("repository {0:?} is not declared in the config (add a [[repo]] with id = {0:?})")]
    UndeclaredRepo(String),
    #[error("view {0:?} is not declared in the config")]
    UndeclaredView(String),
    #[error("unknown repository {0:?}")]
    UnknownRepo(String),
    #[error("{0:?} cannot be a token name: use letters, digits, '.', '_' and '-'")]
    BadTokenName(String),
    #[error("no live token named {0:?} (`cairn token list` shows them)")]
    UnknownToken(String),
    #[error("repository {0:?} has no feed to sync from (it is filled by `cairn import`)")]
    NoFeed(String),
    #[error("no job {0}")]
    UnknownJob(i64),
    #[error("job {id} is not running here (it is {state})")]
    JobNotRunning { id: i64, state: String },
    /// Published metadata could not be read back (a damaged pool copy).
    #[error("reading published metadata: {0} (run `cairn db verify`)")]
    Metadata(String),
    /// A configuration reload was refused (the old configuration stays in force).
    #[error("{0}")]
    Reload(String),
    #[error("a token's lifetime (--expires) must be longer than 0s; leave it out for a token valid until revoked")]
    TokenExpiry,
    #[error("repository {0:?} mirrors a feed; import into a local repository instead")]
    NotLocal(String),
    #[error("repo {repo}: gpgkeys: {source}")]
    Keys {
        repo: String,
        #[source]
        source: crate::formats::openpgp::PgpError,
    },
    #[error(transparent)]
    Signing(#[from] SignError),
    #[error("repository {0:?} has no gpgkeys to check signatures against: add gpgkeys to its [[repo]], or import with --gpgcheck off")]
    NoKeys(String),
    #[error("{alias:?} cannot be an alias name: {source}")]
    BadAlias {
        alias: String,
        #[source]
        source: PublishError,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// The sync itself failed (recorded in the sync history).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The sync succeeded; what follows it (views, snapshot, retention) failed.
    #[error("{repo}: after the sync: {source}")]
    AfterSync {
        repo: String,
        #[source]
        source: Box<AppError>,
    },
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error(transparent)]
    Retention(#[from] RetentionError),
    #[error(transparent)]
    Gc(#[from] GcError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// `repo fetch` left packages unfetched.
    #[error(transparent)]
    Fetch(#[from] crate::app::fetch::FetchIncomplete),
}

/// What owns snapshots and aliases: a repository or a view (a view when the config
/// declares one by that name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Repo,
    View,
}

impl Owner {
    fn space(self) -> Space {
        match self {
            Owner::Repo => Space::Repos,
            Owner::View => Space::Views,
        }
    }
}

/// A sync and what followed it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Synced {
    pub report: SyncReport,
    /// The snapshot the repository's `snapshot_name` made after a sync that changed it.
    pub snapshot_created: Option<String>,
    /// Snapshots retention deleted.
    pub snapshots_deleted: Vec<String>,
}

/// What `db verify --repair` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepairReport {
    /// Corrupt blobs moved out of the pool: (sha256, where they are now).
    pub quarantined: Vec<(String, PathBuf)>,
    /// Blobs restored from the files of `--from`.
    pub restored: Vec<String>,
    /// Mirrored repositories synced to fetch their missing packages again.
    pub synced: Vec<String>,
    /// What is still missing or corrupt afterwards (with what uses it).
    pub after: VerifyReport,
}

/// An alias switch: the snapshot it pointed at before, if any.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AliasSet {
    pub previous: Option<String>,
}

/// One opened installation (cheap to clone: the handles inside are shared).
#[derive(Clone)]
pub struct App {
    pub config: Config,
    /// The signer of `[signing]`, when set (also in each signing repository's and
    /// view's config).
    pub signer: Option<Arc<Signer>>,
    pub datadir: DataDir,
    pub pool: Pool,
    pub catalog: Catalog,
    /// The jobs running in this process.
    pub jobs: Arc<crate::app::jobs::Running>,
}

/// Hides a password in a database URL.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl App {
    /// Opens the data dir, pool and catalog described by `config`, applying migrations.
    pub async fn open(mut config: Config) -> Result<App, AppError> {
        // The signing keys are loaded (and their passphrases checked) before anything
        // else.
        let signer = crate::app::signing::load_signers(&mut config)?;
        let path = &config.server.data_dir;
        // Ownership first: creating the directories below as the wrong user is what
        // the check prevents.
        DataDir::at(path).check_owner()?;
        let datadir = DataDir::open(path).map_err(|source| AppError::DataDir {
            path: path.clone(),
            source,
        })?;
        let pool = Pool::open(datadir.pool_dir())?;
        let url = config.database_url();
        let catalog = Catalog::connect(&url)
            .await
            .map_err(|source| AppError::Connect {
                url: redact(&url),
                source,
            })?;
        catalog.migrate().await?;
        let jobs = Arc::new(crate::app::jobs::Running::new(config.server.max_jobs));
        Ok(App {
            config,
            signer,
            datadir,
            pool,
            catalog,
            jobs,
        })
    }

    /// This installation with `config` instead of its configuration (a reload): the
    /// same data dir, pool, catalog and running jobs; the signing keys loaded afresh.
    /// Where the data lives cannot change this way.
    pub fn reconfigured(&self, mut config: Config) -> Result<App, AppError> {
        if config.server.data_dir != self.config.server.data_dir
            || config.database_url() != self.config.database_url()
        {
            return Err(AppError::Reload(
                "data_dir and database_url cannot change while the server runs: restart it to move the data"
                    .into(),
            ));
        }
        let signer = crate::app::signing::load_signers(&mut config)?;
        Ok(App {
            config,
            signer,
            datadir: self.datadir.clone(),
            pool: self.pool.clone(),
            catalog: self.catalog.clone(),
            jobs: self.jobs.clone(),
        })
    }

    /// The shared pool lease (`gc` waits while it is held).
    pub(crate) async fn pool_lease(&self) -> Result<PoolLease, AppError> {
        self.datadir
            .lease_pool_async()
            .await
            .map_err(|source| AppError::DataDir {
                path: self.datadir.root().to_path_buf(),
                source,
            })
    }

    /// The signer of `[signing]`, when set.
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_deref()
    }

    /// How repository `repo`'s metadata is rendered (its config's, or the default).
    pub fn format(&self, repo: &str) -> Format {
        self.config
            .repo(repo)
            .map(RepoConfig::format)
            .unwrap_or_default()
    }

    /// The audit target naming repository or view `name` (`None`: every one).
    fn target(&self, name: Option<&str>) -> String {
        match name {
            None => String::new(),
            Some(n) if self.config.view(n).is_some() => format!("view:{n}"),
            Some(n) => format!("repo:{n}"),
        }
    }

    /// Is `name` a view or a repository?
    pub fn owner(&self, name: &str) -> Owner {
        if self.config.view(name).is_some() {
            Owner::View
        } else {
            Owner::Repo
        }
    }

    /// The write locks that changing `owner`'s snapshots or aliases needs: the
    /// repository's own, or every member's of a view (a view snapshot is created under
    /// its members' locks).
    async fn lock_owner(&self, owner: &str) -> Result<WriteLocks, LockError> {
        match self.config.view(owner) {
            Some(view) => self.datadir.lock_repos_async(&view.repos).await,
            None => self.datadir.lock_repos_async(&[owner]).await,
        }
    }

    fn alias_grace_secs(&self) -> i64 {
        self.config.server.alias_grace.as_secs() as i64
    }

    /// Imports `paths` into the local repository `repo`, then republishes the views
    /// that include it.
    /// `gpgcheck` overrides the repository's setting for this import.
    pub async fn import(
        &self,
        by: &Actor,
        repo: &str,
        paths: &[PathBuf],
        gpgcheck: Option<GpgCheck>,
        progress: Arc<Progress>,
    ) -> Result<ImportReport, AppError> {
        let change = Change::new("import", format!("repo:{repo}")).with(serde_json::json!({
            "paths": paths,
            "gpgcheck": gpgcheck.map(|g| format!("{g:?}").to_lowercase()),
        }));
        self.audited(
            by,
            change,
            self.import_unaudited(repo, paths, gpgcheck, progress),
        )
        .await
    }

    async fn import_unaudited(
        &self,
        repo: &str,
        paths: &[PathBuf],
        gpgcheck: Option<GpgCheck>,
        progress: Arc<Progress>,
    ) -> Result<ImportReport, AppError> {
        let declared = self
            .config
            .repo(repo)
            .ok_or_else(|| AppError::UndeclaredRepo(repo.to_string()))?;
        if declared.is_mirrored() {
            return Err(AppError::NotLocal(repo.to_string()));
        }
        let mode = gpgcheck.unwrap_or(declared.gpgcheck());
        let keyring = Keyring::load(&declared.gpgkeys).map_err(|source| AppError::Keys {
            repo: repo.to_string(),
            source,
        })?;
        if mode != GpgCheck::Off && keyring.is_empty() {
            return Err(AppError::NoKeys(repo.to_string()));
        }
        let trust = import::Trust { mode, keyring };
        let report = import::import(
            &self.catalog,
            &self.pool,
            &self.datadir,
            &import::Into {
                repo,
                format: &declared.format(),
                trust: &trust,
            },
            paths,
            progress,
        )
        .await?;
        if report.published.is_some() {
            self.refresh_views_of(repo).await?;
        }
        Ok(report)
    }

    /// The repositories `cairn repo sync` names: one declared repository, or every
    /// repository with a feed.
    pub fn sync_targets(&self, repo: Option<&str>) -> Result<Vec<&RepoConfig>, AppError> {
        match repo {
            None => Ok(self
                .config
                .repos
                .iter()
                .filter(|r| r.is_mirrored())
                .collect()),
            Some(id) => self
                .config
                .repo(id)
                .map(|r| vec![r])
                .ok_or_else(|| AppError::UndeclaredRepo(id.to_string())),
        }
    }

    /// Syncs `repo` and, when that changed it, does what follows a sync: republish the
    /// views that include it, snapshot it (its `snapshot_name`) and apply retention.
    /// [`AppError::Sync`] is the sync's own failure; [`AppError::AfterSync`] a failure
    /// of what follows a successful one.
    pub async fn sync(
        &self,
        by: &Actor,
        repo: &RepoConfig,
        progress: &Progress,
    ) -> Result<Synced, AppError> {
        let change = Change::new("sync", format!("repo:{}", repo.id));
        self.audited(by, change, self.sync_unaudited(repo, progress))
            .await
    }

    async fn sync_unaudited(
        &self,
        repo: &RepoConfig,
        progress: &Progress,
    ) -> Result<Synced, AppError> {
        let report = sync::sync(&self.catalog, &self.pool, &self.datadir, repo, progress).await?;
        let mut synced = Synced {
            report,
            snapshot_created: None,
            snapshots_deleted: Vec::new(),
        };
        if synced.report.status == RunStatus::Ok {
            let after = async {
                self.refresh_views_of(&repo.id).await?;
                let (created, deleted) = retention::after_sync(
                    &self.catalog,
                    &self.pool,
                    &self.datadir,
                    repo,
                    self.alias_grace_secs(),
                )
                .await?;
                Ok::<_, AppError>((created, deleted))
            };
            let (created, deleted) = after.await.map_err(|e| AppError::AfterSync {
                repo: repo.id.clone(),
                source: Box::new(e),
            })?;
            synced.snapshot_created = created;
            synced.snapshots_deleted = deleted;
        }
        Ok(synced)
    }

    /// Renders `latest` again with the current settings (signing key, compression)
    /// for `repo`, or for every repository and view with `None`: after `[signing]` is
    /// set or its key rotated, `latest` is signed with the current key now rather than
    /// at its next change. Snapshots are never touched. A tree already published with
    /// the current settings is left as is; mirror-mode repositories (upstream's
    /// metadata) are skipped. Returns the names republished.
    pub async fn republish(&self, by: &Actor, repo: Option<&str>) -> Result<Vec<String>, AppError> {
        let change = Change::new("republish", self.target(repo));
        self.audited(by, change, self.republish_unaudited(repo))
            .await
    }

    async fn republish_unaudited(&self, repo: Option<&str>) -> Result<Vec<String>, AppError> {
        if let Some(name) = repo {
            if self.config.repo(name).is_none() && self.config.view(name).is_none() {
                return Err(AppError::UnknownRepo(name.to_string()));
            }
        }
        let lease = self.pool_lease().await?;
        let mut done = Vec::new();
        for r in &self.config.repos {
            if repo.is_some_and(|n| n != r.id) || r.mode() == crate::app::config::SyncMode::Mirror {
                continue;
            }
            let Some(row) = self.catalog.repo(&r.id).await? else {
                continue;
            };
            let Some(current) = row.latest_publication_id else {
                continue;
            };
            let lock = self
                .datadir
                .lock_repo_async(&r.id)
                .await
                .map_err(|source| LockError {
                    repo: r.id.clone(),
                    source,
                })?;
            let published =
                publish::publish_repo_content(&self.catalog, &self.pool, row.id, &r.format())
                    .await?;
            if published.publication_id != current {
                self.catalog
                    .set_repo_latest(row.id, published.publication_id, published.content_version)
                    .await?;
                done.push(r.id.clone());
            }
            drop(lock);
        }
        for v in &self.config.views {
            let included = match repo {
                None => true,
                Some(n) => v.name == n || v.repos.iter().any(|m| m == n),
            };
            if included {
                let view_id = self.catalog.ensure_view(&v.name).await?;
                let before = self
                    .catalog
                    .view_latest_stamp(view_id)
                    .await?
                    .map(|(id, _)| id);
                let published = view::publish_latest(&self.catalog, &self.pool, &lease, v).await?;
                if before != Some(published.publication_id) {
                    done.push(v.name.clone());
                }
            }
        }
        self.published();
        Ok(done)
    }

    /// Before serving: every configured repository has its catalog row and every view
    /// its `latest`.
    pub async fn prepare_serving(&self) -> Result<(), AppError> {
        let mut published = false;
        for repo in &self.config.repos {
            self.catalog.ensure_repo(&repo.id).await?;
            let known = self.catalog.repo(&repo.id).await?;
            // A mirror has no `latest` until its first sync (404: nothing known yet);
            // a local repository declared but never imported into serves an empty
            // one, as it is.
            if repo.is_mirrored() || known.is_some_and(|r| r.latest_publication_id.is_some()) {
                continue;
            }
            let lock = self
                .datadir
                .lock_repo_async(&repo.id)
                .await
                .map_err(|source| LockError {
                    repo: repo.id.clone(),
                    source,
                })?;
            published |=
                publish::ensure_latest(&self.catalog, &self.pool, &lock, &repo.format()).await?;
        }
        if published {
            self.published();
        }
        let lease = self.pool_lease().await?;
        for view in &self.config.views {
            view::publish_latest(&self.catalog, &self.pool, &lease, view).await?;
        }
        Ok(())
    }

    /// Republishes `latest` of every view that includes `repo`.
    pub async fn refresh_views_of(&self, repo: &str) -> Result<(), AppError> {
        view::refresh_views_of(&self.catalog, &self.pool, &self.datadir, &self.config, repo)
            .await?;
        Ok(())
    }

    /// Freezes the current content of `repo` as snapshot `name` (default: the UTC date
    /// and time).
    pub async fn snapshot_repo(
        &self,
        by: &Actor,
        repo: &str,
        name: Option<String>,
    ) -> Result<(SnapshotRow, Published), AppError> {
        let change = Change::new("snapshot.create", format!("repo:{repo}"))
            .with(serde_json::json!({ "name": name }));
        self.audited(by, change, self.snapshot_repo_unaudited(repo, name))
            .await
    }

    async fn snapshot_repo_unaudited(
        &self,
        repo: &str,
        name: Option<String>,
    ) -> Result<(SnapshotRow, Published), AppError> {
        if self.config.repo(repo).is_none() && self.catalog.repo(repo).await?.is_none() {
            return Err(AppError::UnknownRepo(repo.to_string()));
        }
        let name = name.unwrap_or_else(|| names::default_snapshot_name(now()));
        let lock = self
            .datadir
            .lock_repo_async(repo)
            .await
            .map_err(|source| LockError {
                repo: repo.to_string(),
                source,
            })?;
        Ok(publish::create_snapshot(
            &self.catalog,
            &self.pool,
            &self.datadir,
            &lock,
            &name,
            &self.format(repo),
        )
        .await?)
    }

    /// Snapshots every member of view `view` and the view together, as `name`
    /// (default: the UTC date and time).
    pub async fn snapshot_view(
        &self,
        by: &Actor,
        view: &str,
        name: Option<String>,
    ) -> Result<ViewSnapshotRow, AppError> {
        let change = Change::new("snapshot.create", format!("view:{view}"))
            .with(serde_json::json!({ "name": name }));
        self.audited(by, change, async {
            let declared = self
                .config
                .view(view)
                .ok_or_else(|| AppError::UndeclaredView(view.to_string()))?;
            let name = name.unwrap_or_else(|| names::default_snapshot_name(now()));
            Ok(view::snapshot(
                &self.catalog,
                &self.pool,
                &self.datadir,
                &self.config,
                declared,
                &name,
            )
            .await?)
        })
        .await
    }

    /// What changed between two trees of repository or view `owner`: each `latest`, a
    /// snapshot or an alias.
    pub async fn diff(
        &self,
        owner: &str,
        from: &str,
        to: &str,
    ) -> Result<crate::formats::diff::Diff, AppError> {
        self.check_owner(owner).await?;
        let space = self.owner(owner).space();
        let mut trees = Vec::with_capacity(2);
        for name in [from, to] {
            let tree = self
                .catalog
                .page_tree(space, owner, name)
                .await?
                .ok_or_else(|| CatalogError::UnknownSnapshot {
                    repo: owner.to_string(),
                    snapshot: name.to_string(),
                })?;
            trees.push(tree);
        }
        let (left, right) = self
            .catalog
            .tree_diff_candidates(&trees[0], &trees[1])
            .await?;
        Ok(crate::formats::diff::diff(&left, &right))
    }

    /// Refuses a name that is neither a declared repository or view nor a repository
    /// the catalog knows.
    pub async fn check_owner(&self, name: &str) -> Result<(), AppError> {
        if self.config.view(name).is_some()
            || self.config.repo(name).is_some()
            || self.catalog.repo(name).await?.is_some()
        {
            Ok(())
        } else {
            Err(AppError::UnknownRepo(name.to_string()))
        }
    }

    /// Deletes snapshot `snapshot` of repository or view `owner` (refused while an
    /// alias or a view snapshot uses it, or an alias used it within the grace period).
    pub async fn delete_snapshot(
        &self,
        by: &Actor,
        owner: &str,
        snapshot: &str,
    ) -> Result<(), AppError> {
        let change = Change::new("snapshot.delete", self.target(Some(owner)))
            .with(serde_json::json!({ "snapshot": snapshot }));
        self.audited(by, change, async {
            self.check_owner(owner).await?;
            let grace = self.alias_grace_secs();
            let locks = self.lock_owner(owner).await?;
            self.catalog
                .delete_snapshot(&locks, self.owner(owner).space(), owner, snapshot, grace)
                .await?;
            self.published();
            Ok(())
        })
        .await
    }

    /// Points alias `alias` of repository or view `owner` at its snapshot `snapshot`.
    pub async fn set_alias(
        &self,
        by: &Actor,
        owner: &str,
        snapshot: &str,
        alias: &str,
    ) -> Result<AliasSet, AppError> {
        let change = Change::new("alias.publish", self.target(Some(owner)))
            .with(serde_json::json!({ "alias": alias, "snapshot": snapshot }));
        self.audited(by, change, async {
            self.check_owner(owner).await?;
            publish::check_snapshot_name(alias).map_err(|source| AppError::BadAlias {
                alias: alias.to_string(),
                source,
            })?;
            let locks = self.lock_owner(owner).await?;
            let previous = self
                .catalog
                .set_alias(&locks, self.owner(owner).space(), owner, alias, snapshot)
                .await?;
            self.published();
            Ok(AliasSet { previous })
        })
        .await
    }

    /// Removes alias `alias` of repository or view `owner` (and its grace-period
    /// history): its URL answers 404 from now on.
    pub async fn delete_alias(&self, by: &Actor, owner: &str, alias: &str) -> Result<(), AppError> {
        let change = Change::new("alias.delete", self.target(Some(owner)))
            .with(serde_json::json!({ "alias": alias }));
        self.audited(by, change, async {
            self.check_owner(owner).await?;
            let locks = self.lock_owner(owner).await?;
            self.catalog
                .delete_alias(&locks, self.owner(owner).space(), owner, alias)
                .await?;
            self.published();
            Ok(())
        })
        .await
    }

    /// Removes what nothing references (see [`gc::collect`]).
    /// Waits for running writers first, or (not `wait`) fails with
    /// [`gc::GcError::Busy`] while any runs.
    pub async fn gc(
        &self,
        by: &Actor,
        min_age: Duration,
        dry_run: bool,
        wait: bool,
        progress: &Arc<Progress>,
    ) -> Result<GcReport, AppError> {
        let change = Change::new("gc", "").with(serde_json::json!({
            "min_age_secs": min_age.as_secs(),
            "dry_run": dry_run,
        }));
        self.audited(
            by,
            change,
            self.gc_unaudited(min_age, dry_run, wait, progress),
        )
        .await
    }

    async fn gc_unaudited(
        &self,
        min_age: Duration,
        dry_run: bool,
        wait: bool,
        progress: &Arc<Progress>,
    ) -> Result<GcReport, AppError> {
        let lock = gc::lock(&self.datadir, wait, &progress.stop).await?;
        let report = gc::collect(
            &self.catalog,
            &self.pool,
            &lock,
            self.config.server.alias_grace,
            min_age,
            dry_run,
            progress,
        )
        .await;
        if !dry_run && !matches!(report, Err(GcError::Cancelled { blobs: 0, .. })) {
            self.published();
        }
        let report = report?;
        Ok(report)
    }

    /// Re-hashes the pool against the catalog.
    pub async fn verify(&self, progress: &Arc<Progress>) -> Result<VerifyReport, AppError> {
        Ok(verify::verify(&self.catalog, &self.pool, progress).await?)
    }

    /// Tells running servers that what they serve changed; a failure only delays their
    /// reload until the next change.
    pub(crate) fn published(&self) {
        if let Err(e) = self.datadir.bump_generation() {
            tracing::warn!("telling servers about the change: {e}");
        }
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
