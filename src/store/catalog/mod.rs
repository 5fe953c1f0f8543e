//! The SQL catalog: every query Cairn runs lives in this module.
//!
//! One code path serves SQLite (embedded default, WAL, `synchronous=NORMAL`, foreign
//! keys on) and PostgreSQL (larger sites): runtime queries through sqlx's `Any` driver,
//! `$N` placeholders (which both accept), and plain column types (BIGINT/INTEGER, TEXT).
//! Each backend has its own migration tree under `migrations/`.
//!
//! Bulk work is set-based: packages are inserted in multi-row batches inside one
//! transaction, and a snapshot is an `INSERT … SELECT` of the repository's content.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Executor, Row, Transaction};

mod pages;
pub use pages::{OwnerSummary, PackageRow, PageSnapshot, PageTree, Place};

use crate::domain::package::{Changelog, DepKind, Dependency, FileKind, Package, PackageFile};
use crate::domain::status::{RunStatus, UnknownStatus};
use crate::formats::repodata::Fragments;
use crate::store::datadir::WriteLock;

/// Catalog errors.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unknown repository {0:?}")]
    UnknownRepo(String),
    #[error("repository {repo:?} has no snapshot {snapshot:?}")]
    UnknownSnapshot { repo: String, snapshot: String },
    #[error("repository {repo:?} already has a snapshot named {snapshot:?}")]
    SnapshotExists { repo: String, snapshot: String },
    #[error("repository {repo:?}: {name:?} is an alias; a snapshot cannot shadow it")]
    AliasExists { repo: String, name: String },
    #[error("repository {repo:?}: {name:?} is a snapshot name; an alias cannot shadow it")]
    AliasShadowsSnapshot { repo: String, name: String },
    #[error("snapshot {repo}/{snapshot} is in use: {users}")]
    SnapshotInUse {
        repo: String,
        snapshot: String,
        users: String,
    },
    #[error("unsupported database URL {0:?} (expected sqlite:… or postgres://…)")]
    BadUrl(String),
    #[error("catalog row: {0}")]
    BadStatus(#[from] UnknownStatus),
}

type Result<T> = std::result::Result<T, CatalogError>;

/// Which SQL engine is behind the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A repository row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub latest_publication_id: Option<i64>,
    pub package_count: i64,
    pub total_size: i64,
    pub snapshot_count: i64,
}

/// A snapshot row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotRow {
    #[serde(skip)]
    pub id: i64,
    pub repo: String,
    pub name: String,
    pub created_at: i64,
    #[serde(skip)]
    pub publication_id: i64,
    pub package_count: i64,
    pub total_size: i64,
}

/// Carried-through metadata of a repository (comps, updateinfo, modules): its kind and
/// the pool blob holding the uncompressed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraRef {
    pub kind: String,
    pub sha256: String,
    pub size: i64,
}

/// Repositories or views: the two namespaces that have snapshots and aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Repos,
    Views,
}

/// Table and column names of one namespace (constants: safe to format into SQL).
struct SpaceTables {
    owners: &'static str,
    snapshots: &'static str,
    owner_col: &'static str,
    aliases: &'static str,
    target_col: &'static str,
    history: &'static str,
    /// Kind of a snapshot tree, and of the `latest` tree.
    kind: TreeKind,
    latest_kind: TreeKind,
}

impl Space {
    fn tables(self) -> SpaceTables {
        match self {
            Space::Repos => SpaceTables {
                owners: "repos",
                snapshots: "snapshots",
                owner_col: "repo_id",
                aliases: "aliases",
                target_col: "snapshot_id",
                history: "alias_history",
                kind: TreeKind::RepoSnapshot,
                latest_kind: TreeKind::RepoLatest,
            },
            Space::Views => SpaceTables {
                owners: "views",
                snapshots: "view_snapshots",
                owner_col: "view_id",
                aliases: "view_aliases",
                target_col: "view_snapshot_id",
                history: "view_alias_history",
                kind: TreeKind::ViewSnapshot,
                latest_kind: TreeKind::ViewLatest,
            },
        }
    }
}

/// An alias and the snapshot it points at.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AliasRow {
    pub repo: String,
    pub name: String,
    pub snapshot: String,
    pub updated_at: i64,
}

/// An alias as the server's index needs it: the tree it serves now, and the trees it
/// served before that are still within the grace period (newest first).
#[derive(Debug, Clone)]
pub struct AliasTree {
    pub space: Space,
    /// The repository or view.
    pub repo: String,
    pub name: String,
    pub current: TreeRow,
    pub previous: Vec<TreeRow>,
}

/// Catalog rows garbage collection removed (or would remove).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct GcRows {
    pub publications: i64,
    pub packages: i64,
}

/// A package of a repository's current content, with what a view composition needs
/// (fragments are fetched only when a composition must be rendered).
#[derive(Debug, Clone)]
pub struct MemberPackage {
    pub package_id: i64,
    pub nevra: crate::formats::diff::Nevra,
    pub sha256: String,
    pub location: String,
    pub time_file: i64,
}

/// A view snapshot row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewSnapshotRow {
    pub view: String,
    pub name: String,
    pub created_at: i64,
    pub package_count: i64,
    /// The member repository snapshots, in view order: (repo, snapshot).
    pub members: Vec<(String, String)>,
}

/// One recorded sync of a mirrored repository.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncRun {
    #[serde(skip)]
    pub id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// [`RunStatus::Failed`] also for a run that never ended (see [`INTERRUPTED`]).
    pub status: RunStatus,
    pub packages_added: i64,
    pub packages_removed: i64,
    pub packages_downloaded: i64,
    pub bytes_downloaded: i64,
    pub error: Option<String>,
}

/// One package as placed in a repository or snapshot, with what a publish needs.
#[derive(Debug, Clone)]
pub struct PlacedFragments {
    pub sha256: String,
    pub location: String,
    pub time_file: i64,
    pub fragments: Fragments,
}

/// One package of a tree, as the server's index needs it.
#[derive(Debug, Clone)]
pub struct TreeFile {
    pub path: String,
    pub sha256: String,
    pub size: i64,
    pub mtime: i64,
}

/// A published tree: a snapshot or a repository's `latest`.
#[derive(Debug, Clone)]
pub struct TreeRow {
    /// The repository, or the view for view trees.
    pub repo: String,
    /// Snapshot name, or `latest`.
    pub name: String,
    pub publication_id: i64,
    pub revision: i64,
    pub immutable: bool,
    pub kind: TreeKind,
}

/// Where a tree's packages are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    RepoSnapshot,
    RepoLatest,
    ViewSnapshot,
    ViewLatest,
}

/// A package entry of a repository's current content.
#[derive(Debug, Clone)]
pub struct ContentRow {
    pub location: String,
    pub package_id: i64,
    pub sha256: String,
}

/// What a view snapshot holds.
#[derive(Debug, Clone, Copy)]
pub enum ViewContent<'a> {
    /// A composition made for this snapshot.
    Composed {
        publication_id: i64,
        placements: &'a [(String, i64)],
    },
    /// The view's `latest`, provided it was composed from the content named by `stamp`.
    Latest { stamp: &'a str },
}

/// Names a list of repository content versions ("id:version,id:version", in order).
pub fn content_stamp(versions: &[(i64, i64)]) -> String {
    versions
        .iter()
        .map(|(id, v)| format!("{id}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Catalog state the metrics export.
#[derive(Debug, Clone, Default)]
pub struct MetricStats {
    pub repos: Vec<RepoStats>,
    pub views: Vec<ViewStats>,
    pub catalog_bytes: i64,
    pub gc_runs: i64,
    pub gc_freed_bytes: i64,
    pub gc_freed_blobs: i64,
    pub gc_last_at: Option<i64>,
    /// (finished at, missing + corrupt blobs) of the last verification.
    pub verify_last: Option<(i64, i64)>,
}

/// Per-repository catalog state for the metrics.
#[derive(Debug, Clone)]
pub struct RepoStats {
    pub name: String,
    pub packages: i64,
    pub snapshots: i64,
    pub runs_ok: i64,
    pub runs_unchanged: i64,
    pub runs_failed: i64,
    pub downloaded_packages: i64,
    pub downloaded_bytes: i64,
    pub last_success: Option<i64>,
    /// (created at, package count) of the newest snapshot.
    pub newest_snapshot: Option<(i64, i64)>,
    /// The last finished sync.
    pub last_run: Option<SyncRun>,
}

/// Per-view catalog state for the metrics.
#[derive(Debug, Clone)]
pub struct ViewStats {
    pub name: String,
    pub packages: i64,
    pub snapshots: i64,
    /// (created at, package count) of the newest view snapshot.
    pub newest_snapshot: Option<(i64, i64)>,
}

/// A repository's current content as of one content version.
#[derive(Debug, Clone)]
pub struct VersionedContent {
    pub rows: Vec<ContentRow>,
    pub extras: Vec<ExtraRef>,
    pub version: i64,
}

/// A repository's `latest` publication, known to describe its current content.
#[derive(Debug, Clone)]
pub struct CurrentLatest {
    pub publication_id: i64,
    pub package_count: i64,
    pub primary_path: String,
}

/// The metadata files of a publication.
#[derive(Debug, Clone)]
pub struct PublicationFile {
    pub path: String,
    pub kind: String,
    pub sha256: String,
    pub size: i64,
}

/// Handle on the catalog database.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
    /// Current-content sizes the overview page remembers (repositories, views).
    sizes: std::sync::Arc<std::sync::Mutex<[pages::SizeCache; 2]>>,
}

/// The error recorded for a sync run that never recorded its end (the next sync of the
/// repository finds it).
pub const INTERRUPTED: &str =
    "interrupted: the process running the sync ended before it finished (killed or crashed)";

/// The columns a [`SyncRun`] is read from, in order.
const SYNC_RUN_COLUMNS: &str = "id, started_at, finished_at, status, packages_added, \
     packages_removed, packages_downloaded, bytes_downloaded, error";

/// Publications no repository and no snapshot points at, older than `$1`.
const UNUSED_PUBLICATIONS: &str = "FROM publications WHERE created_at <= $1 \
     AND id NOT IN (SELECT latest_publication_id FROM repos WHERE latest_publication_id IS NOT NULL) \
     AND id NOT IN (SELECT publication_id FROM snapshots) \
     AND id NOT IN (SELECT latest_publication_id FROM views WHERE latest_publication_id IS NOT NULL) \
     AND id NOT IN (SELECT publication_id FROM view_snapshots)";
/// Packages no repository and no snapshot holds, older than `$1`.
const UNUSED_PACKAGES: &str = "FROM packages WHERE created_at <= $1 \
     AND id NOT IN (SELECT package_id FROM repo_packages) \
     AND id NOT IN (SELECT package_id FROM snapshot_packages) \
     AND id NOT IN (SELECT package_id FROM view_latest_packages) \
     AND id NOT IN (SELECT package_id FROM view_snapshot_packages)";

/// Rows per multi-row INSERT (keeps parameters under both engines' limits).
const BATCH_ROWS: usize = 500;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Backend {
    /// The `n`-th (1-based) bind placeholder. SQLite gets anonymous `?`: looking up a
    /// named parameter (`$N`) in SQLite is linear in the parameter count, which makes
    /// multi-row inserts quadratic. PostgreSQL needs `$N`. Bulk statements use this;
    /// small fixed statements use `$N`, which both engines accept.
    fn placeholder(self, n: usize, out: &mut String) {
        match self {
            Backend::Sqlite => out.push('?'),
            Backend::Postgres => {
                out.push('$');
                out.push_str(&n.to_string());
            }
        }
    }

    /// `(?,?,…),(…)` for `rows` rows of `cols` columns. Dynamic SQL in this module is
    /// only ever built from constant text and placeholders (never from input), which is
    /// what each `AssertSqlSafe` asserts.
    fn values_clause(self, rows: usize, cols: usize) -> String {
        let mut s = String::with_capacity(rows * cols * 5);
        let mut n = 1;
        for r in 0..rows {
            if r > 0 {
                s.push(',');
            }
            s.push('(');
            for c in 0..cols {
                if c > 0 {
                    s.push(',');
                }
                self.placeholder(n, &mut s);
                n += 1;
            }
            s.push(')');
        }
        s
    }

    /// `?,?,…` for an `IN (…)` list of `count` values, numbered from `first`.
    fn in_clause(self, first: usize, count: usize) -> String {
        let mut s = String::with_capacity(count * 5);
        for n in first..first + count {
            if n > first {
                s.push(',');
            }
            self.placeholder(n, &mut s);
        }
        s
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Catalog {
    /// A migrated SQLite catalog in `dir`, for unit tests.
    #[cfg(test)]
    pub(crate) async fn temp_sqlite(dir: &std::path::Path) -> Catalog {
        let url = format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display());
        let catalog = Catalog::connect(&url).await.expect("temp catalog");
        catalog.migrate().await.expect("temp catalog migrations");
        catalog
    }

    /// Connects to `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Catalog> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(CatalogError::BadUrl(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(60));
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                         PRAGMA foreign_keys=ON; PRAGMA busy_timeout=30000; \
                         PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options.connect_with(options).await?;
        Ok(Catalog {
            pool,
            backend,
            sizes: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Closes the connection pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Has [`Catalog::close`] been called (the process is shutting down)?
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    // ---- repositories -------------------------------------------------------------

    /// Returns the id of repository `name`, creating the row if needed.
    pub async fn ensure_repo(&self, name: &str) -> Result<i64> {
        sqlx::query(
            "INSERT INTO repos (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT id FROM repos WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    fn repo_from_row(row: &AnyRow) -> Result<RepoRow> {
        Ok(RepoRow {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            created_at: row.try_get(2)?,
            latest_publication_id: row.try_get(3)?,
            package_count: row.try_get(4)?,
            total_size: row.try_get(5)?,
            snapshot_count: row.try_get(6)?,
        })
    }

    const REPO_SELECT: &'static str = "SELECT r.id, r.name, r.created_at, r.latest_publication_id, \
        (SELECT COUNT(*) FROM repo_packages rp WHERE rp.repo_id = r.id), \
        (SELECT CAST(COALESCE(SUM(p.size_package), 0) AS BIGINT) FROM repo_packages rp JOIN packages p ON p.id = rp.package_id WHERE rp.repo_id = r.id), \
        (SELECT COUNT(*) FROM snapshots s WHERE s.repo_id = r.id) \
        FROM repos r";

    /// Every repository, by name.
    pub async fn repos(&self) -> Result<Vec<RepoRow>> {
        let sql = format!("{} ORDER BY r.name", Self::REPO_SELECT);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::repo_from_row).collect()
    }

    /// Repository `name`, if it exists in the catalog.
    pub async fn repo(&self, name: &str) -> Result<Option<RepoRow>> {
        let sql = format!("{} WHERE r.name = $1", Self::REPO_SELECT);
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::repo_from_row).transpose()
    }

    // ---- packages -----------------------------------------------------------------

    /// Which of `shas` are already in the catalog: sha → package id.
    pub async fn package_ids(&self, shas: &[&str]) -> Result<HashMap<String, i64>> {
        let mut out = HashMap::with_capacity(shas.len());
        for chunk in shas.chunks(BATCH_ROWS) {
            let sql = format!(
                "SELECT sha256, id FROM packages WHERE sha256 IN ({})",
                self.backend.in_clause(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for s in chunk {
                q = q.bind(*s);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
            }
        }
        Ok(out)
    }

    /// Inserts packages (with their dependency, file and changelog rows and their
    /// rendered fragments) in one transaction; packages already present are left as
    /// they are. Returns sha → id for all of them.
    pub async fn insert_packages(
        &self,
        packages: &[(Package, Fragments)],
    ) -> Result<HashMap<String, i64>> {
        self.insert_packages_after(packages, async { Ok::<(), CatalogError>(()) })
            .await
    }

    /// [`Catalog::insert_packages`], with the rows written while `durable` (the pool
    /// commit of the packages' blobs) runs, and committed only once it succeeded: the
    /// database work overlaps the file system's, and no committed row ever points at a
    /// blob that is not durable. If `durable` fails, nothing is committed and its error
    /// is returned.
    pub async fn insert_packages_after<E: From<CatalogError>>(
        &self,
        packages: &[(Package, Fragments)],
        durable: impl std::future::Future<Output = std::result::Result<(), E>>,
    ) -> std::result::Result<HashMap<String, i64>, E> {
        let rows = async {
            let shas: Vec<&str> = packages.iter().map(|(p, _)| p.pkgid.as_str()).collect();
            let mut ids = self.package_ids(&shas).await?;
            let mut fresh: Vec<&(Package, Fragments)> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for item in packages {
                if !ids.contains_key(&item.0.pkgid) && seen.insert(item.0.pkgid.as_str()) {
                    fresh.push(item);
                }
            }
            if fresh.is_empty() {
                return Ok((None, ids));
            }
            let mut tx = self.pool.begin().await?;
            self.write_packages(&mut tx, &fresh, &mut ids).await?;
            Ok::<_, CatalogError>((Some(tx), ids))
        };
        // Both run to the end: a pool commit is never abandoned half-way.
        let (rows, durable) = tokio::join!(rows, durable);
        durable?;
        let (tx, ids) = rows?;
        if let Some(tx) = tx {
            tx.commit().await.map_err(CatalogError::from)?;
        }
        Ok(ids)
    }

    /// Writes the rows of `fresh` (packages not in the catalog yet) into `tx`, adding
    /// their ids to `ids`.
    async fn write_packages(
        &self,
        conn: &mut AnyConnection,
        fresh: &[&(Package, Fragments)],
        ids: &mut HashMap<String, i64>,
    ) -> Result<()> {
        let created = now();
        const COLS: usize = 23;
        for chunk in fresh.chunks(BATCH_ROWS / 2) {
            let sql = format!(
                "INSERT INTO packages (sha256, name, arch, epoch, version, release, summary, \
                 description, packager, url, time_file, time_build, size_package, size_installed, \
                 size_archive, license, vendor, rpm_group, buildhost, sourcerpm, header_start, \
                 header_end, created_at) \
                 VALUES {} RETURNING sha256, id",
                self.backend.values_clause(chunk.len(), COLS)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for p in chunk.iter().map(|x| &x.0) {
                q = q
                    .bind(p.pkgid.as_str())
                    .bind(p.name.as_str())
                    .bind(p.arch.as_str())
                    .bind(p.epoch.as_str())
                    .bind(p.version.as_str())
                    .bind(p.release.as_str())
                    .bind(p.summary.as_str())
                    .bind(p.description.as_str())
                    .bind(p.packager.as_str())
                    .bind(p.url.as_str())
                    .bind(p.time_file)
                    .bind(p.time_build)
                    .bind(p.size_package)
                    .bind(p.size_installed)
                    .bind(p.size_archive)
                    .bind(p.license.as_str())
                    .bind(p.vendor.as_str())
                    .bind(p.group.as_str())
                    .bind(p.buildhost.as_str())
                    .bind(p.sourcerpm.as_str())
                    .bind(p.header_start)
                    .bind(p.header_end)
                    .bind(created);
            }
            for row in q.fetch_all(&mut *conn).await? {
                ids.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
            }
        }
        for chunk in fresh.chunks(BATCH_ROWS) {
            let sql = format!(
                "INSERT INTO package_fragments (package_id, primary_xml, primary_href_at, \
                 filelists_xml, other_xml) VALUES {}",
                self.backend.values_clause(chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (p, f) in chunk.iter().map(|x| (&x.0, &x.1)) {
                q = q
                    .bind(ids[&p.pkgid])
                    .bind(&*f.primary)
                    .bind(f.href_at as i64)
                    .bind(&*f.filelists)
                    .bind(&*f.other);
            }
            q.execute(&mut *conn).await?;
        }
        // Child rows, batched across packages.
        let mut deps: Vec<(i64, i64, &Dependency)> = Vec::new();
        let mut files: Vec<(i64, i64, &PackageFile)> = Vec::new();
        let mut logs: Vec<(i64, i64, &Changelog)> = Vec::new();
        for (p, _) in fresh.iter().map(|x| (&x.0, &x.1)) {
            let id = ids[&p.pkgid];
            deps.extend(p.deps.iter().enumerate().map(|(i, d)| (id, i as i64, d)));
            files.extend(p.files.iter().enumerate().map(|(i, f)| (id, i as i64, f)));
            logs.extend(
                p.changelogs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (id, i as i64, c)),
            );
        }
        for chunk in deps.chunks(BATCH_ROWS) {
            let sql = format!(
                "INSERT INTO package_deps (package_id, seq, kind, name, flags, epoch, ver, rel, pre) VALUES {}",
                self.backend.values_clause(chunk.len(), 9)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, seq, d) in chunk {
                q = q
                    .bind(*id)
                    .bind(*seq)
                    .bind(d.kind as i64)
                    .bind(d.name.as_str())
                    .bind(d.flags.as_deref())
                    .bind(d.epoch.as_deref())
                    .bind(d.ver.as_deref())
                    .bind(d.rel.as_deref())
                    .bind(i64::from(d.pre));
            }
            q.execute(&mut *conn).await?;
        }
        for chunk in files.chunks(BATCH_ROWS * 2) {
            let sql = format!(
                "INSERT INTO package_files (package_id, seq, path, kind) VALUES {}",
                self.backend.values_clause(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, seq, f) in chunk {
                q = q
                    .bind(*id)
                    .bind(*seq)
                    .bind(f.path.as_str())
                    .bind(f.kind as i64);
            }
            q.execute(&mut *conn).await?;
        }
        for chunk in logs.chunks(BATCH_ROWS) {
            let sql = format!(
                "INSERT INTO package_changelogs (package_id, seq, author, date, text) VALUES {}",
                self.backend.values_clause(chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, seq, c) in chunk {
                q = q
                    .bind(*id)
                    .bind(*seq)
                    .bind(c.author.as_str())
                    .bind(c.date)
                    .bind(c.text.as_str());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Reads a package back, with its dependencies, files and changelogs.
    pub async fn package(&self, sha256: &str) -> Result<Option<Package>> {
        let Some(row) = sqlx::query(
            "SELECT id, sha256, name, arch, epoch, version, release, summary, description, \
             packager, url, time_file, time_build, size_package, size_installed, size_archive, \
             license, vendor, rpm_group, buildhost, sourcerpm, header_start, header_end \
             FROM packages WHERE sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0)?;
        let deps = sqlx::query(
            "SELECT kind, name, flags, epoch, ver, rel, pre FROM package_deps WHERE package_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| -> Result<Dependency> {
            Ok(Dependency {
                kind: DepKind::from_code(r.try_get(0)?).unwrap_or(DepKind::Requires),
                name: r.try_get(1)?,
                flags: r.try_get(2)?,
                epoch: r.try_get(3)?,
                ver: r.try_get(4)?,
                rel: r.try_get(5)?,
                pre: r.try_get::<i64, _>(6)? != 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let files =
            sqlx::query("SELECT path, kind FROM package_files WHERE package_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| -> Result<PackageFile> {
                    Ok(PackageFile {
                        path: r.try_get(0)?,
                        kind: FileKind::from_code(r.try_get(1)?),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        let changelogs = sqlx::query(
            "SELECT author, date, text FROM package_changelogs WHERE package_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| -> Result<Changelog> {
            Ok(Changelog {
                author: r.try_get(0)?,
                date: r.try_get(1)?,
                text: r.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(Package {
            pkgid: row.try_get(1)?,
            name: row.try_get(2)?,
            arch: row.try_get(3)?,
            epoch: row.try_get(4)?,
            version: row.try_get(5)?,
            release: row.try_get(6)?,
            summary: row.try_get(7)?,
            description: row.try_get(8)?,
            packager: row.try_get(9)?,
            url: row.try_get(10)?,
            time_file: row.try_get(11)?,
            time_build: row.try_get(12)?,
            size_package: row.try_get(13)?,
            size_installed: row.try_get(14)?,
            size_archive: row.try_get(15)?,
            license: row.try_get(16)?,
            vendor: row.try_get(17)?,
            group: row.try_get(18)?,
            buildhost: row.try_get(19)?,
            sourcerpm: row.try_get(20)?,
            header_start: row.try_get(21)?,
            header_end: row.try_get(22)?,
            deps,
            files,
            changelogs,
        }))
    }

    // ---- repository content -------------------------------------------------------

    /// The current content of a repository.
    pub async fn repo_content(&self, repo_id: i64) -> Result<Vec<ContentRow>> {
        let mut conn = self.pool.acquire().await?;
        Self::content_rows(&mut conn, repo_id).await
    }

    async fn content_rows(conn: &mut AnyConnection, repo_id: i64) -> Result<Vec<ContentRow>> {
        let rows = sqlx::query(
            "SELECT rp.location, rp.package_id, p.sha256 FROM repo_packages rp \
             JOIN packages p ON p.id = rp.package_id WHERE rp.repo_id = $1",
        )
        .bind(repo_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ContentRow {
                    location: r.try_get(0)?,
                    package_id: r.try_get(1)?,
                    sha256: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn content_version(conn: &mut AnyConnection, repo_id: i64) -> Result<i64> {
        let row = sqlx::query("SELECT content_version FROM repos WHERE id = $1")
            .bind(repo_id)
            .fetch_one(&mut *conn)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// A repository's current content, extra metadata and content version, read in one
    /// transaction (so the version describes exactly these rows).
    pub async fn versioned_content(&self, repo_id: i64) -> Result<VersionedContent> {
        let mut tx = self.begin_read().await?;
        let version = Self::content_version(&mut tx, repo_id).await?;
        let rows = Self::content_rows(&mut tx, repo_id).await?;
        let extras = Self::extra_rows(&mut tx, repo_id).await?;
        tx.commit().await?;
        Ok(VersionedContent {
            rows,
            extras,
            version,
        })
    }

    /// A repository's `latest` publication if it was published from the current content
    /// (see the content-versions migration): (publication id, package count, path of its
    /// primary file).
    pub async fn current_latest(&self, repo_id: i64) -> Result<Option<CurrentLatest>> {
        let row = sqlx::query(
            "SELECT p.id, p.package_count, pf.path FROM repos r \
             JOIN publications p ON p.id = r.latest_publication_id \
             JOIN publication_files pf ON pf.publication_id = p.id AND pf.kind = 'primary' \
             WHERE r.id = $1 AND r.latest_version = r.content_version",
        )
        .bind(repo_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(CurrentLatest {
                publication_id: r.try_get(0)?,
                package_count: r.try_get(1)?,
                primary_path: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Places packages in a repository's current content (a package at an occupied
    /// location replaces the one there) and points the repository's `latest` at
    /// `publication_id`, in one transaction.
    pub async fn place_in_repo(
        &self,
        _lock: &WriteLock,
        repo_id: i64,
        placements: &[(String, i64)],
        publication_id: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let added = now();
        for chunk in placements.chunks(BATCH_ROWS) {
            let sql = format!(
                "INSERT INTO repo_packages (repo_id, location, package_id, added_at) VALUES {} \
                 ON CONFLICT (repo_id, location) DO UPDATE SET package_id = excluded.package_id, \
                 added_at = excluded.added_at",
                self.backend.values_clause(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (location, id) in chunk {
                q = q
                    .bind(repo_id)
                    .bind(location.as_str())
                    .bind(*id)
                    .bind(added);
            }
            q.execute(&mut *tx).await?;
        }
        // The caller published the content this transaction leaves (it holds the
        // repository lock), so latest describes the current content version.
        sqlx::query(
            "UPDATE repos SET latest_publication_id = $1, latest_version = content_version WHERE id = $2",
        )
        .bind(publication_id)
        .bind(repo_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes `placements` and `extras` the whole current content of a repository (a
    /// mirror follows its upstream: what is not placed leaves), points `latest` at
    /// `publication_id` and records the upstream repomd.xml digest, in one transaction.
    pub async fn replace_repo_content(
        &self,
        _lock: &WriteLock,
        repo_id: i64,
        placements: &[(String, i64)],
        publication_id: i64,
        upstream_repomd_sha256: &str,
        extras: &[ExtraRef],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM repo_packages WHERE repo_id = $1")
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM repo_extras WHERE repo_id = $1")
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        for e in extras {
            sqlx::query(
                "INSERT INTO repo_extras (repo_id, kind, sha256, size) VALUES ($1, $2, $3, $4)",
            )
            .bind(repo_id)
            .bind(e.kind.as_str())
            .bind(e.sha256.as_str())
            .bind(e.size)
            .execute(&mut *tx)
            .await?;
        }
        let added = now();
        for chunk in placements.chunks(BATCH_ROWS) {
            let sql = format!(
                "INSERT INTO repo_packages (repo_id, location, package_id, added_at) VALUES {}",
                self.backend.values_clause(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (location, id) in chunk {
                q = q
                    .bind(repo_id)
                    .bind(location.as_str())
                    .bind(*id)
                    .bind(added);
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE repos SET latest_publication_id = $1, latest_version = content_version, \
             upstream_repomd_sha256 = $2 WHERE id = $3",
        )
        .bind(publication_id)
        .bind(upstream_repomd_sha256)
        .bind(repo_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// sha256 of packages known by another upstream checksum: (algorithm, digest) → sha256.
    pub async fn sha256_for(
        &self,
        algorithm: &str,
        digests: &[&str],
    ) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for chunk in digests.chunks(BATCH_ROWS) {
            let sql = format!(
                "SELECT digest, sha256 FROM upstream_checksums WHERE algorithm = {} AND digest IN ({})",
                self.backend.in_clause(1, 1),
                self.backend.in_clause(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(algorithm);
            for d in chunk {
                q = q.bind(*d);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
            }
        }
        Ok(out)
    }

    /// Remembers which sha256 an upstream (algorithm, digest) names.
    pub async fn remember_checksums(
        &self,
        algorithm: &str,
        pairs: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in pairs.chunks(BATCH_ROWS) {
            let sql = format!(
                "INSERT INTO upstream_checksums (algorithm, digest, sha256) VALUES {} ON CONFLICT (algorithm, digest) DO NOTHING",
                self.backend.values_clause(chunk.len(), 3)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (digest, sha) in chunk {
                q = q.bind(algorithm).bind(digest.as_str()).bind(sha.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The carried-through metadata of a repository, by kind.
    pub async fn repo_extras(&self, repo_id: i64) -> Result<Vec<ExtraRef>> {
        let mut conn = self.pool.acquire().await?;
        Self::extra_rows(&mut conn, repo_id).await
    }

    async fn extra_rows(conn: &mut AnyConnection, repo_id: i64) -> Result<Vec<ExtraRef>> {
        let rows = sqlx::query(
            "SELECT kind, sha256, size FROM repo_extras WHERE repo_id = $1 ORDER BY kind",
        )
        .bind(repo_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExtraRef {
                    kind: r.try_get(0)?,
                    sha256: r.try_get(1)?,
                    size: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The digest of the upstream repomd.xml the repository's content came from.
    pub async fn upstream_repomd(&self, repo_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT upstream_repomd_sha256 FROM repos WHERE id = $1")
            .bind(repo_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Starts a sync run record.
    pub async fn start_sync_run(&self, repo_id: i64) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO sync_runs (repo_id, started_at, status) VALUES ($1, $2, 'running') RETURNING id",
        )
        .bind(repo_id)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Marks the runs of a repository still recorded as running as failed: called by a
    /// sync holding the repository's sync lock, so whoever started them ended without
    /// recording a result (a killed process). Returns how many there were.
    pub async fn interrupt_sync_runs(&self, repo_id: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sync_runs SET finished_at = $1, status = 'failed', error = $2 \
             WHERE repo_id = $3 AND status = 'running'",
        )
        .bind(now())
        .bind(INTERRUPTED)
        .bind(repo_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Finishes a sync run record.
    pub async fn finish_sync_run(&self, run: &SyncRun) -> Result<()> {
        sqlx::query(
            "UPDATE sync_runs SET finished_at = $1, status = $2, packages_added = $3, \
             packages_removed = $4, packages_downloaded = $5, bytes_downloaded = $6, error = $7 \
             WHERE id = $8",
        )
        .bind(now())
        .bind(run.status.as_str())
        .bind(run.packages_added)
        .bind(run.packages_removed)
        .bind(run.packages_downloaded)
        .bind(run.bytes_downloaded)
        .bind(run.error.as_deref())
        .bind(run.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest sync runs of a repository, newest first.
    pub async fn sync_runs(&self, repo_id: i64, limit: i64) -> Result<Vec<SyncRun>> {
        let sql = format!(
            "SELECT {SYNC_RUN_COLUMNS} FROM sync_runs WHERE repo_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(repo_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Self::sync_run_from_row(r, 0)).collect()
    }

    /// A [`SyncRun`] from [`SYNC_RUN_COLUMNS`] starting at column `first`.
    fn sync_run_from_row(r: &AnyRow, first: usize) -> Result<SyncRun> {
        Ok(SyncRun {
            id: r.try_get(first)?,
            started_at: r.try_get(first + 1)?,
            finished_at: r.try_get(first + 2)?,
            status: r.try_get::<String, _>(first + 3)?.parse()?,
            packages_added: r.try_get(first + 4)?,
            packages_removed: r.try_get(first + 5)?,
            packages_downloaded: r.try_get(first + 6)?,
            bytes_downloaded: r.try_get(first + 7)?,
            error: r.try_get(first + 8)?,
        })
    }

    /// Points a repository's `latest` at a publication made from the content at
    /// `content_version` (`None`: not known to match any content version).
    pub async fn set_repo_latest(
        &self,
        repo_id: i64,
        publication_id: i64,
        content_version: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE repos SET latest_publication_id = $1, latest_version = $2 WHERE id = $3",
        )
        .bind(publication_id)
        .bind(content_version)
        .bind(repo_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn placed_fragments(&self, sql: &'static str, id: i64) -> Result<Vec<PlacedFragments>> {
        let rows = sqlx::query(sql).bind(id).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(PlacedFragments {
                    sha256: r.try_get(0)?,
                    location: r.try_get(1)?,
                    time_file: r.try_get(2)?,
                    fragments: Fragments {
                        primary: r.try_get::<String, _>(3)?.into(),
                        href_at: usize::try_from(r.try_get::<i64, _>(4)?).unwrap_or(0),
                        filelists: r.try_get::<String, _>(5)?.into(),
                        other: r.try_get::<String, _>(6)?.into(),
                    },
                })
            })
            .collect()
    }

    /// Fragments of a repository's current content, for publishing `latest`.
    pub async fn repo_fragments(&self, repo_id: i64) -> Result<Vec<PlacedFragments>> {
        self.placed_fragments(
            "SELECT p.sha256, rp.location, p.time_file, f.primary_xml, f.primary_href_at, \
             f.filelists_xml, f.other_xml FROM repo_packages rp JOIN packages p ON p.id = rp.package_id \
             JOIN package_fragments f ON f.package_id = p.id WHERE rp.repo_id = $1",
            repo_id,
        )
        .await
    }

    // ---- publications -------------------------------------------------------------

    /// The publication with `content_key`, if one was made before.
    pub async fn publication_by_key(&self, content_key: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT id FROM publications WHERE content_key = $1")
            .bind(content_key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The content key of a publication.
    pub async fn publication_key(&self, publication_id: i64) -> Result<String> {
        let row = sqlx::query("SELECT content_key FROM publications WHERE id = $1")
            .bind(publication_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Records a publication whose files are already durable in the pool.
    pub async fn insert_publication(
        &self,
        content_key: &str,
        revision: i64,
        package_count: i64,
        files: &[PublicationFile],
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO publications (content_key, revision, package_count, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (content_key) DO NOTHING RETURNING id",
        )
        .bind(content_key)
        .bind(revision)
        .bind(package_count)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            // Someone else published the same content meanwhile.
            tx.rollback().await?;
            return self
                .publication_by_key(content_key)
                .await?
                .ok_or(CatalogError::Sql(sqlx::Error::RowNotFound));
        };
        let id: i64 = row.try_get(0)?;
        let sql = format!(
            "INSERT INTO publication_files (publication_id, path, kind, sha256, size) VALUES {}",
            self.backend.values_clause(files.len(), 5)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for f in files {
            q = q
                .bind(id)
                .bind(f.path.as_str())
                .bind(f.kind.as_str())
                .bind(f.sha256.as_str())
                .bind(f.size);
        }
        if !files.is_empty() {
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// The metadata files of a publication.
    pub async fn publication_files(&self, publication_id: i64) -> Result<Vec<PublicationFile>> {
        let mut conn = self.pool.acquire().await?;
        self.publication_files_on(&mut conn, publication_id).await
    }

    /// The metadata files of a publication, on a given connection.
    pub async fn publication_files_on(
        &self,
        conn: &mut AnyConnection,
        publication_id: i64,
    ) -> Result<Vec<PublicationFile>> {
        let rows = sqlx::query(
            "SELECT path, kind, sha256, size FROM publication_files WHERE publication_id = $1 ORDER BY path",
        )
        .bind(publication_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PublicationFile {
                    path: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    sha256: r.try_get(2)?,
                    size: r.try_get(3)?,
                })
            })
            .collect()
    }

    // ---- snapshots ----------------------------------------------------------------

    /// Freezes the current content of `repo_id` as snapshot `name`, published as
    /// `publication_id`: one set copy, in one transaction.
    pub async fn create_snapshot(
        &self,
        repo_id: i64,
        repo: &str,
        name: &str,
        publication_id: i64,
    ) -> Result<SnapshotRow> {
        let mut tx: Transaction<'_, Any> = self.pool.begin().await?;
        Self::insert_snapshot(&mut tx, repo_id, repo, name, publication_id).await?;
        tx.commit().await?;
        self.snapshot(repo, name).await
    }

    /// Inside `tx`: the snapshot row and the set copy of the repository's content.
    async fn insert_snapshot(
        tx: &mut Transaction<'_, Any>,
        repo_id: i64,
        repo: &str,
        name: &str,
        publication_id: i64,
    ) -> Result<i64> {
        let alias = sqlx::query("SELECT 1 FROM aliases WHERE repo_id = $1 AND name = $2")
            .bind(repo_id)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        if alias.is_some() {
            return Err(CatalogError::AliasExists {
                repo: repo.to_string(),
                name: name.to_string(),
            });
        }
        let exists = sqlx::query("SELECT 1 FROM snapshots WHERE repo_id = $1 AND name = $2")
            .bind(repo_id)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_some() {
            return Err(CatalogError::SnapshotExists {
                repo: repo.to_string(),
                snapshot: name.to_string(),
            });
        }
        let row = sqlx::query(
            "INSERT INTO snapshots (repo_id, name, created_at, publication_id, package_count, total_size) \
             VALUES ($1, $2, $3, $4, 0, 0) RETURNING id",
        )
        .bind(repo_id)
        .bind(name)
        .bind(now())
        .bind(publication_id)
        .fetch_one(&mut **tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        sqlx::query(
            "INSERT INTO snapshot_packages (snapshot_id, package_id, location) \
             SELECT $1, package_id, location FROM repo_packages WHERE repo_id = $2",
        )
        .bind(id)
        .bind(repo_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE snapshots SET \
             package_count = (SELECT COUNT(*) FROM snapshot_packages WHERE snapshot_id = $1), \
             total_size = (SELECT CAST(COALESCE(SUM(p.size_package), 0) AS BIGINT) FROM snapshot_packages sp \
                           JOIN packages p ON p.id = sp.package_id WHERE sp.snapshot_id = $1) \
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }

    fn snapshot_from_row(r: &AnyRow) -> Result<SnapshotRow> {
        Ok(SnapshotRow {
            id: r.try_get(0)?,
            repo: r.try_get(1)?,
            name: r.try_get(2)?,
            created_at: r.try_get(3)?,
            publication_id: r.try_get(4)?,
            package_count: r.try_get(5)?,
            total_size: r.try_get(6)?,
        })
    }

    const SNAPSHOT_SELECT: &'static str =
        "SELECT s.id, r.name, s.name, s.created_at, s.publication_id, \
        s.package_count, s.total_size FROM snapshots s JOIN repos r ON r.id = s.repo_id";

    /// Snapshots of one repository (or all), oldest first.
    pub async fn snapshots(&self, repo: Option<&str>) -> Result<Vec<SnapshotRow>> {
        let rows = match repo {
            Some(repo) => {
                let sql = format!(
                    "{} WHERE r.name = $1 ORDER BY s.created_at, s.id",
                    Self::SNAPSHOT_SELECT
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(repo)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!(
                    "{} ORDER BY r.name, s.created_at, s.id",
                    Self::SNAPSHOT_SELECT
                );
                sqlx::query(AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(Self::snapshot_from_row).collect()
    }

    /// One snapshot.
    pub async fn snapshot(&self, repo: &str, name: &str) -> Result<SnapshotRow> {
        let sql = format!(
            "{} WHERE r.name = $1 AND s.name = $2",
            Self::SNAPSHOT_SELECT
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(repo)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Self::snapshot_from_row(&r),
            None => Err(CatalogError::UnknownSnapshot {
                repo: repo.to_string(),
                snapshot: name.to_string(),
            }),
        }
    }

    /// Every blob the catalog references (packages and published metadata) with its
    /// recorded size: what `db verify` checks and what GC must keep.
    pub async fn referenced_blobs(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT sha256, size_package FROM packages UNION SELECT sha256, size FROM publication_files \
             UNION SELECT sha256, size FROM repo_extras",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The blobs that rows surviving [`Catalog::collect_garbage`] reference (what a dry
    /// run must assume stays).
    pub async fn blobs_still_referenced_after_gc(
        &self,
        min_age_secs: i64,
    ) -> Result<HashSet<String>> {
        let sql = format!(
            "SELECT sha256 FROM packages WHERE id NOT IN (SELECT id {UNUSED_PACKAGES}) \
             UNION SELECT sha256 FROM publication_files WHERE publication_id NOT IN (SELECT id {UNUSED_PUBLICATIONS}) \
             UNION SELECT sha256 FROM repo_extras"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now() - min_age_secs)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Removes catalog rows nothing uses any more, in one transaction: alias history past
    /// the grace period, publications that no repository and no snapshot points at, and
    /// packages that no repository and no snapshot holds. Rows younger than `min_age_secs`
    /// are kept (work in progress may be about to use them). With `dry_run`, only counts.
    pub async fn collect_garbage(
        &self,
        min_age_secs: i64,
        grace_secs: i64,
        dry_run: bool,
    ) -> Result<GcRows> {
        let cutoff = now() - min_age_secs;
        let mut tx = self.pool.begin().await?;
        let count = |sql: &'static str| format!("SELECT COUNT(*) {sql}");
        let publications: i64 = sqlx::query(AssertSqlSafe(count(UNUSED_PUBLICATIONS)))
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let packages: i64 = sqlx::query(AssertSqlSafe(count(UNUSED_PACKAGES)))
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if !dry_run {
            for table in ["alias_history", "view_alias_history"] {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE replaced_at < $1"
                )))
                .bind(now() - grace_secs)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(AssertSqlSafe(format!("DELETE {UNUSED_PUBLICATIONS}")))
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            sqlx::query(AssertSqlSafe(format!("DELETE {UNUSED_PACKAGES}")))
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(GcRows {
            publications,
            packages,
        })
    }

    /// The packages of two snapshots, restricted to the name.arch groups that differ
    /// between them (everything a diff needs; unchanged groups never leave the
    /// database). Returns (packages of `a`, packages of `b`).
    pub async fn snapshot_diff_candidates(
        &self,
        a: i64,
        b: i64,
    ) -> Result<(
        Vec<crate::formats::diff::Nevra>,
        Vec<crate::formats::diff::Nevra>,
    )> {
        let tree = |id| PageTree {
            kind: TreeKind::RepoSnapshot,
            id,
            alias_of: None,
            created_at: None,
        };
        self.tree_diff_candidates(&tree(a), &tree(b)).await
    }

    // ---- views --------------------------------------------------------------------

    /// Returns the id of view `name`, creating the row if needed.
    pub async fn ensure_view(&self, name: &str) -> Result<i64> {
        sqlx::query(
            "INSERT INTO views (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT id FROM views WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// A repository's current content with package identities (view input).
    pub async fn member_packages(&self, repo_id: i64) -> Result<(Vec<MemberPackage>, i64)> {
        let mut tx = self.begin_read().await?;
        let version = Self::content_version(&mut tx, repo_id).await?;
        let rows = sqlx::query(
            "SELECT p.id, p.name, p.arch, p.epoch, p.version, p.release, p.sha256, rp.location, \
             p.time_file FROM repo_packages rp JOIN packages p ON p.id = rp.package_id WHERE rp.repo_id = $1",
        )
        .bind(repo_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let packages = rows
            .iter()
            .map(|r| {
                Ok(MemberPackage {
                    package_id: r.try_get(0)?,
                    nevra: crate::formats::diff::Nevra {
                        name: r.try_get(1)?,
                        arch: r.try_get(2)?,
                        epoch: r.try_get(3)?,
                        version: r.try_get(4)?,
                        release: r.try_get(5)?,
                    },
                    sha256: r.try_get(6)?,
                    location: r.try_get(7)?,
                    time_file: r.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((packages, version))
    }

    /// The stamp of the members' current content versions (see [`content_stamp`]).
    pub async fn current_stamp(&self, repo_ids: &[i64]) -> Result<String> {
        let mut conn = self.pool.acquire().await?;
        Self::stamp_of(&mut conn, repo_ids).await
    }

    async fn stamp_of(conn: &mut AnyConnection, repo_ids: &[i64]) -> Result<String> {
        let mut versions = Vec::with_capacity(repo_ids.len());
        for id in repo_ids {
            versions.push((*id, Self::content_version(&mut *conn, *id).await?));
        }
        Ok(content_stamp(&versions))
    }

    /// A view's `latest` publication and the stamp of the member content it was
    /// composed from.
    pub async fn view_latest_stamp(&self, view_id: i64) -> Result<Option<(i64, String)>> {
        let row = sqlx::query(
            "SELECT latest_publication_id, latest_stamp FROM views WHERE id = $1 \
             AND latest_publication_id IS NOT NULL AND latest_stamp IS NOT NULL",
        )
        .bind(view_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// The rendered fragments of packages, by package id.
    pub async fn fragments_by_ids(&self, ids: &[i64]) -> Result<HashMap<i64, Fragments>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_ROWS) {
            let sql = format!(
                "SELECT package_id, primary_xml, primary_href_at, filelists_xml, other_xml \
                 FROM package_fragments WHERE package_id IN ({})",
                self.backend.in_clause(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(
                    r.try_get::<i64, _>(0)?,
                    Fragments {
                        primary: r.try_get::<String, _>(1)?.into(),
                        href_at: usize::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
                        filelists: r.try_get::<String, _>(3)?.into(),
                        other: r.try_get::<String, _>(4)?.into(),
                    },
                );
            }
        }
        Ok(out)
    }

    async fn insert_placements(
        &self,
        tx: &mut Transaction<'_, Any>,
        table: &'static str,
        owner_column: &'static str,
        owner: i64,
        placements: &[(String, i64)],
    ) -> Result<()> {
        for chunk in placements.chunks(BATCH_ROWS) {
            let sql = format!(
                "INSERT INTO {table} ({owner_column}, location, package_id) VALUES {}",
                self.backend.values_clause(chunk.len(), 3)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (location, id) in chunk {
                q = q.bind(owner).bind(location.as_str()).bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Replaces a view's `latest` content and publication, in one transaction.
    /// `stamp` names the member content versions the placements were composed from.
    pub async fn set_view_latest(
        &self,
        view_id: i64,
        placements: &[(String, i64)],
        publication_id: i64,
        stamp: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM view_latest_packages WHERE view_id = $1")
            .bind(view_id)
            .execute(&mut *tx)
            .await?;
        self.insert_placements(
            &mut tx,
            "view_latest_packages",
            "view_id",
            view_id,
            placements,
        )
        .await?;
        sqlx::query("UPDATE views SET latest_publication_id = $1, latest_stamp = $2 WHERE id = $3")
            .bind(publication_id)
            .bind(stamp)
            .bind(view_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates, in one transaction, a snapshot named `name` of every member repository
    /// (each with its own publication) and the view snapshot over them. With
    /// [`ViewContent::Latest`] the view snapshot copies the view's `latest`; `Ok(None)`
    /// (and nothing written) when the members moved on since `latest` was composed.
    pub async fn create_view_snapshot(
        &self,
        view_id: i64,
        view: &str,
        name: &str,
        members: &[(i64, String, i64)],
        content: ViewContent<'_>,
    ) -> Result<Option<ViewSnapshotRow>> {
        let mut tx: Transaction<'_, Any> = self.pool.begin().await?;
        let alias = sqlx::query("SELECT 1 FROM view_aliases WHERE view_id = $1 AND name = $2")
            .bind(view_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if alias.is_some() {
            return Err(CatalogError::AliasExists {
                repo: format!("view {view}"),
                name: name.to_string(),
            });
        }
        let exists = sqlx::query("SELECT 1 FROM view_snapshots WHERE view_id = $1 AND name = $2")
            .bind(view_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(CatalogError::SnapshotExists {
                repo: format!("view {view}"),
                snapshot: name.to_string(),
            });
        }
        let publication_id = match content {
            ViewContent::Composed { publication_id, .. } => publication_id,
            ViewContent::Latest { stamp } => {
                let repo_ids: Vec<i64> = members.iter().map(|(id, _, _)| *id).collect();
                let now_stamp = Self::stamp_of(&mut tx, &repo_ids).await?;
                let row = sqlx::query(
                    "SELECT latest_publication_id, latest_stamp FROM views WHERE id = $1",
                )
                .bind(view_id)
                .fetch_one(&mut *tx)
                .await?;
                let latest: Option<i64> = row.try_get(0)?;
                let latest_stamp: Option<String> = row.try_get(1)?;
                match latest {
                    Some(id) if now_stamp == stamp && latest_stamp.as_deref() == Some(stamp) => id,
                    _ => return Ok(None),
                }
            }
        };
        let row = sqlx::query(
            "INSERT INTO view_snapshots (view_id, name, created_at, publication_id, package_count) \
             VALUES ($1, $2, $3, $4, 0) RETURNING id",
        )
        .bind(view_id)
        .bind(name)
        .bind(now())
        .bind(publication_id)
        .fetch_one(&mut *tx)
        .await?;
        let vs_id: i64 = row.try_get(0)?;
        for (position, (repo_id, repo, member_pub)) in members.iter().enumerate() {
            let snapshot_id =
                Self::insert_snapshot(&mut tx, *repo_id, repo, name, *member_pub).await?;
            sqlx::query(
                "INSERT INTO view_snapshot_members (view_snapshot_id, position, snapshot_id) VALUES ($1, $2, $3)",
            )
            .bind(vs_id)
            .bind(position as i64)
            .bind(snapshot_id)
            .execute(&mut *tx)
            .await?;
        }
        let package_count = match content {
            ViewContent::Composed { placements, .. } => {
                self.insert_placements(
                    &mut tx,
                    "view_snapshot_packages",
                    "view_snapshot_id",
                    vs_id,
                    placements,
                )
                .await?;
                placements.len() as i64
            }
            ViewContent::Latest { .. } => sqlx::query(
                "INSERT INTO view_snapshot_packages (view_snapshot_id, package_id, location) \
                 SELECT $1, package_id, location FROM view_latest_packages WHERE view_id = $2",
            )
            .bind(vs_id)
            .bind(view_id)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64,
        };
        sqlx::query(
            "UPDATE view_snapshots SET package_count = $1, total_size = \
             (SELECT CAST(COALESCE(SUM(p.size_package), 0) AS BIGINT) FROM view_snapshot_packages vp \
              JOIN packages p ON p.id = vp.package_id WHERE vp.view_snapshot_id = $2) WHERE id = $2",
        )
        .bind(package_count)
        .bind(vs_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ViewSnapshotRow {
            view: view.to_string(),
            name: name.to_string(),
            created_at: now(),
            package_count,
            members: members
                .iter()
                .map(|(_, r, _)| (r.clone(), name.to_string()))
                .collect(),
        }))
    }

    /// Deletes a view snapshot unless a view alias points at it or served it within
    /// `grace_secs`. Its member repository snapshots stay (delete them separately).
    pub async fn delete_view_snapshot(
        &self,
        view: &str,
        name: &str,
        grace_secs: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT vs.id FROM view_snapshots vs JOIN views v ON v.id = vs.view_id \
             WHERE v.name = $1 AND vs.name = $2",
        )
        .bind(view)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| CatalogError::UnknownSnapshot {
            repo: format!("view {view}"),
            snapshot: name.to_string(),
        })?;
        let id: i64 = row.try_get(0)?;
        let mut users = Vec::new();
        for r in
            sqlx::query("SELECT name FROM view_aliases WHERE view_snapshot_id = $1 ORDER BY name")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
        {
            users.push(format!("alias {:?}", r.try_get::<String, _>(0)?));
        }
        for r in sqlx::query(
            "SELECT a.name FROM view_alias_history h JOIN view_aliases a ON a.id = h.alias_id \
             WHERE h.view_snapshot_id = $1 AND h.replaced_at > $2 ORDER BY a.name",
        )
        .bind(id)
        .bind(now() - grace_secs)
        .fetch_all(&mut *tx)
        .await?
        {
            users.push(format!(
                "alias {:?} served it until recently (grace period)",
                r.try_get::<String, _>(0)?
            ));
        }
        if !users.is_empty() {
            return Err(CatalogError::SnapshotInUse {
                repo: format!("view {view}"),
                snapshot: name.to_string(),
                users: users.join(", "),
            });
        }
        for sql in [
            "DELETE FROM view_alias_history WHERE view_snapshot_id = $1",
            "DELETE FROM view_snapshot_packages WHERE view_snapshot_id = $1",
            "DELETE FROM view_snapshot_members WHERE view_snapshot_id = $1",
            "DELETE FROM view_snapshots WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Snapshots of a view, oldest first.
    pub async fn view_snapshots(&self, view: &str) -> Result<Vec<ViewSnapshotRow>> {
        let rows = sqlx::query(
            "SELECT vs.id, vs.name, vs.created_at, vs.package_count FROM view_snapshots vs \
             JOIN views v ON v.id = vs.view_id WHERE v.name = $1 ORDER BY vs.created_at, vs.id",
        )
        .bind(view)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let id: i64 = r.try_get(0)?;
            let members = sqlx::query(
                "SELECT rp.name, s.name FROM view_snapshot_members m JOIN snapshots s ON s.id = m.snapshot_id \
                 JOIN repos rp ON rp.id = s.repo_id WHERE m.view_snapshot_id = $1 ORDER BY m.position",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|m| Ok((m.try_get(0)?, m.try_get(1)?)))
            .collect::<Result<Vec<_>>>()?;
            out.push(ViewSnapshotRow {
                view: view.to_string(),
                name: r.try_get(1)?,
                created_at: r.try_get(2)?,
                package_count: r.try_get(3)?,
                members,
            });
        }
        Ok(out)
    }

    // ---- aliases ------------------------------------------------------------------

    /// Points alias `name` of repository or view `owner` at its snapshot `snapshot`, in
    /// one transaction; the snapshot it pointed at before (returned) is remembered for
    /// the grace period.
    pub async fn set_alias(
        &self,
        space: Space,
        owner: &str,
        name: &str,
        snapshot: &str,
    ) -> Result<Option<String>> {
        let t = space.tables();
        let unknown = || CatalogError::UnknownSnapshot {
            repo: owner.to_string(),
            snapshot: snapshot.to_string(),
        };
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT o.id, s.id FROM {owners} o JOIN {snapshots} s ON s.{owner_col} = o.id \
             WHERE o.name = $1 AND s.name = $2",
            owners = t.owners,
            snapshots = t.snapshots,
            owner_col = t.owner_col
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(owner)
            .bind(snapshot)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(unknown)?;
        let (owner_id, target): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let sql = format!(
            "SELECT 1 FROM {} WHERE {} = $1 AND name = $2",
            t.snapshots, t.owner_col
        );
        let shadow = sqlx::query(AssertSqlSafe(sql))
            .bind(owner_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if shadow.is_some() {
            return Err(CatalogError::AliasShadowsSnapshot {
                repo: owner.to_string(),
                name: name.to_string(),
            });
        }
        let sql = format!(
            "SELECT a.id, a.{target_col}, s.name FROM {aliases} a JOIN {snapshots} s ON s.id = a.{target_col} \
             WHERE a.{owner_col} = $1 AND a.name = $2",
            target_col = t.target_col,
            aliases = t.aliases,
            snapshots = t.snapshots,
            owner_col = t.owner_col
        );
        let existing = sqlx::query(AssertSqlSafe(sql))
            .bind(owner_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let previous = match existing {
            Some(row) => {
                let (alias_id, old): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                let old_name: String = row.try_get(2)?;
                if old != target {
                    let sql = format!(
                        "INSERT INTO {} (alias_id, {}, replaced_at) VALUES ($1, $2, $3)",
                        t.history, t.target_col
                    );
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(alias_id)
                        .bind(old)
                        .bind(now())
                        .execute(&mut *tx)
                        .await?;
                }
                let sql = format!(
                    "UPDATE {} SET {} = $1, updated_at = $2 WHERE id = $3",
                    t.aliases, t.target_col
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(target)
                    .bind(now())
                    .bind(alias_id)
                    .execute(&mut *tx)
                    .await?;
                Some(old_name)
            }
            None => {
                let sql = format!(
                    "INSERT INTO {} ({}, name, {}, updated_at) VALUES ($1, $2, $3, $4)",
                    t.aliases, t.owner_col, t.target_col
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(owner_id)
                    .bind(name)
                    .bind(target)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                None
            }
        };
        tx.commit().await?;
        Ok(previous)
    }

    /// Aliases of one repository (or all).
    pub async fn aliases(&self, repo: Option<&str>) -> Result<Vec<AliasRow>> {
        let rows = sqlx::query(
            "SELECT r.name, a.name, s.name, a.updated_at FROM aliases a JOIN repos r ON r.id = a.repo_id \
             JOIN snapshots s ON s.id = a.snapshot_id WHERE $1 = '' OR r.name = $1 ORDER BY r.name, a.name",
        )
        .bind(repo.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AliasRow {
                    repo: r.try_get(0)?,
                    name: r.try_get(1)?,
                    snapshot: r.try_get(2)?,
                    updated_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Deletes a snapshot unless an alias points at it or served it within `grace_secs`
    /// (the error names them). Its publication and blobs stay for garbage collection.
    pub async fn delete_snapshot(&self, repo: &str, name: &str, grace_secs: i64) -> Result<()> {
        let snap = self.snapshot(repo, name).await?;
        let mut tx = self.pool.begin().await?;
        let mut users = Vec::new();
        for r in sqlx::query("SELECT name FROM aliases WHERE snapshot_id = $1 ORDER BY name")
            .bind(snap.id)
            .fetch_all(&mut *tx)
            .await?
        {
            users.push(format!("alias {:?}", r.try_get::<String, _>(0)?));
        }
        for r in sqlx::query(
            "SELECT v.name, vs.name FROM view_snapshot_members m JOIN view_snapshots vs ON vs.id = m.view_snapshot_id \
             JOIN views v ON v.id = vs.view_id WHERE m.snapshot_id = $1 ORDER BY v.name, vs.name",
        )
        .bind(snap.id)
        .fetch_all(&mut *tx)
        .await?
        {
            users.push(format!(
                "view snapshot {}/{}",
                r.try_get::<String, _>(0)?,
                r.try_get::<String, _>(1)?
            ));
        }
        let cutoff = now() - grace_secs;
        for r in sqlx::query(
            "SELECT a.name FROM alias_history h JOIN aliases a ON a.id = h.alias_id \
             WHERE h.snapshot_id = $1 AND h.replaced_at > $2 ORDER BY a.name",
        )
        .bind(snap.id)
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?
        {
            users.push(format!(
                "alias {:?} served it until recently (grace period)",
                r.try_get::<String, _>(0)?
            ));
        }
        if !users.is_empty() {
            return Err(CatalogError::SnapshotInUse {
                repo: repo.to_string(),
                snapshot: name.to_string(),
                users: users.join(", "),
            });
        }
        sqlx::query("DELETE FROM alias_history WHERE snapshot_id = $1")
            .bind(snap.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM snapshot_packages WHERE snapshot_id = $1")
            .bind(snap.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM snapshots WHERE id = $1")
            .bind(snap.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every alias (of repositories and views) with its current tree and the trees it
    /// served within `grace_secs`.
    pub async fn alias_trees(
        &self,
        conn: &mut AnyConnection,
        grace_secs: i64,
    ) -> Result<Vec<AliasTree>> {
        let cutoff = now() - grace_secs;
        let mut out = Vec::new();
        for space in [Space::Repos, Space::Views] {
            let t = space.tables();
            let sql = format!(
                "SELECT a.id, o.name, a.name, s.name, s.publication_id, p.revision FROM {aliases} a \
                 JOIN {owners} o ON o.id = a.{owner_col} JOIN {snapshots} s ON s.id = a.{target_col} \
                 JOIN publications p ON p.id = s.publication_id",
                aliases = t.aliases,
                owners = t.owners,
                owner_col = t.owner_col,
                snapshots = t.snapshots,
                target_col = t.target_col
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .fetch_all(&mut *conn)
                .await?;
            for r in rows {
                let alias_id: i64 = r.try_get(0)?;
                let owner: String = r.try_get(1)?;
                let sql = format!(
                    "SELECT s.name, s.publication_id, p.revision FROM {history} h \
                     JOIN {snapshots} s ON s.id = h.{target_col} JOIN publications p ON p.id = s.publication_id \
                     WHERE h.alias_id = $1 AND h.replaced_at > $2 ORDER BY h.replaced_at DESC",
                    history = t.history,
                    snapshots = t.snapshots,
                    target_col = t.target_col
                );
                let previous = sqlx::query(AssertSqlSafe(sql))
                    .bind(alias_id)
                    .bind(cutoff)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|p| {
                        Ok(TreeRow {
                            repo: owner.clone(),
                            name: p.try_get(0)?,
                            publication_id: p.try_get(1)?,
                            revision: p.try_get(2)?,
                            immutable: true,
                            kind: t.kind,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.push(AliasTree {
                    space,
                    name: r.try_get(2)?,
                    current: TreeRow {
                        repo: owner.clone(),
                        name: r.try_get(3)?,
                        publication_id: r.try_get(4)?,
                        revision: r.try_get(5)?,
                        immutable: true,
                        kind: t.kind,
                    },
                    previous,
                    repo: owner,
                });
            }
        }
        Ok(out)
    }

    /// Starts a read transaction that sees one consistent state of the catalog (the
    /// server's index is built from several queries inside one).
    pub async fn begin_read(&self) -> Result<Transaction<'static, Any>> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    // ---- metrics ------------------------------------------------------------------

    /// Records a finished garbage collection or verification.
    pub async fn record_maintenance(
        &self,
        kind: &str,
        blobs: i64,
        bytes: i64,
        problems: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO maintenance_runs (kind, finished_at, blobs, bytes, problems) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(kind)
        .bind(now())
        .bind(blobs)
        .bind(bytes)
        .bind(problems)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What the metrics export of the catalog, read in one transaction.
    pub async fn metric_stats(&self) -> Result<MetricStats> {
        let mut tx = self.begin_read().await?;
        let mut repos = Vec::new();
        for r in sqlx::query(
            "SELECT r.id, r.name, \
             (SELECT COUNT(*) FROM repo_packages rp WHERE rp.repo_id = r.id), \
             (SELECT COUNT(*) FROM snapshots s WHERE s.repo_id = r.id), \
             (SELECT COUNT(*) FROM sync_runs sr WHERE sr.repo_id = r.id AND sr.status = 'ok'), \
             (SELECT COUNT(*) FROM sync_runs sr WHERE sr.repo_id = r.id AND sr.status = 'unchanged'), \
             (SELECT COUNT(*) FROM sync_runs sr WHERE sr.repo_id = r.id AND sr.status = 'failed'), \
             (SELECT CAST(COALESCE(SUM(sr.packages_downloaded), 0) AS BIGINT) FROM sync_runs sr WHERE sr.repo_id = r.id), \
             (SELECT CAST(COALESCE(SUM(sr.bytes_downloaded), 0) AS BIGINT) FROM sync_runs sr WHERE sr.repo_id = r.id), \
             (SELECT MAX(sr.finished_at) FROM sync_runs sr WHERE sr.repo_id = r.id \
                AND sr.status IN ('ok', 'unchanged')), \
             (SELECT s.package_count FROM snapshots s WHERE s.repo_id = r.id \
                ORDER BY s.created_at DESC, s.id DESC LIMIT 1), \
             (SELECT MAX(s.created_at) FROM snapshots s WHERE s.repo_id = r.id) \
             FROM repos r ORDER BY r.name",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let id: i64 = r.try_get(0)?;
            let sql = format!(
                "SELECT {SYNC_RUN_COLUMNS} FROM sync_runs \
                 WHERE repo_id = $1 AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
            );
            let last_run = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|l| Self::sync_run_from_row(&l, 0))
                .transpose()?;
            repos.push(RepoStats {
                name: r.try_get(1)?,
                packages: r.try_get(2)?,
                snapshots: r.try_get(3)?,
                runs_ok: r.try_get(4)?,
                runs_unchanged: r.try_get(5)?,
                runs_failed: r.try_get(6)?,
                downloaded_packages: r.try_get(7)?,
                downloaded_bytes: r.try_get(8)?,
                last_success: r.try_get(9)?,
                newest_snapshot: match (r.try_get::<Option<i64>, _>(10)?, r.try_get(11)?) {
                    (Some(packages), Some(at)) => Some((at, packages)),
                    _ => None,
                },
                last_run,
            });
        }
        let mut views = Vec::new();
        for r in sqlx::query(
            "SELECT v.name, \
             (SELECT COUNT(*) FROM view_latest_packages vl WHERE vl.view_id = v.id), \
             (SELECT COUNT(*) FROM view_snapshots vs WHERE vs.view_id = v.id), \
             (SELECT vs.package_count FROM view_snapshots vs WHERE vs.view_id = v.id \
                ORDER BY vs.created_at DESC, vs.id DESC LIMIT 1), \
             (SELECT MAX(vs.created_at) FROM view_snapshots vs WHERE vs.view_id = v.id) \
             FROM views v ORDER BY v.name",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            views.push(ViewStats {
                name: r.try_get(0)?,
                packages: r.try_get(1)?,
                snapshots: r.try_get(2)?,
                newest_snapshot: match (r.try_get::<Option<i64>, _>(3)?, r.try_get(4)?) {
                    (Some(packages), Some(at)) => Some((at, packages)),
                    _ => None,
                },
            });
        }
        let gc = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT), \
             CAST(COALESCE(SUM(blobs), 0) AS BIGINT), MAX(finished_at) \
             FROM maintenance_runs WHERE kind = 'gc'",
        )
        .fetch_one(&mut *tx)
        .await?;
        let verify = sqlx::query(
            "SELECT finished_at, problems FROM maintenance_runs WHERE kind = 'verify' \
             ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let size_sql = match self.backend {
            Backend::Sqlite => {
                "SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s"
            }
            Backend::Postgres => "SELECT CAST(pg_database_size(current_database()) AS BIGINT)",
        };
        let catalog_bytes: i64 = sqlx::query(size_sql)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(MetricStats {
            repos,
            views,
            catalog_bytes,
            gc_runs: gc.try_get(0)?,
            gc_freed_bytes: gc.try_get(1)?,
            gc_freed_blobs: gc.try_get(2)?,
            gc_last_at: gc.try_get(3)?,
            verify_last: match verify {
                Some(v) => Some((v.try_get(0)?, v.try_get(1)?)),
                None => None,
            },
        })
    }

    // ---- serving index ------------------------------------------------------------

    /// Every published tree of a namespace: each snapshot, and each `latest`.
    pub async fn trees(&self, conn: &mut AnyConnection, space: Space) -> Result<Vec<TreeRow>> {
        let t = space.tables();
        let mut out = Vec::new();
        let sql = format!(
            "SELECT o.name, s.name, s.publication_id, p.revision FROM {snapshots} s \
             JOIN {owners} o ON o.id = s.{owner_col} JOIN publications p ON p.id = s.publication_id",
            snapshots = t.snapshots,
            owners = t.owners,
            owner_col = t.owner_col
        );
        for r in sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?
        {
            out.push(TreeRow {
                repo: r.try_get(0)?,
                name: r.try_get(1)?,
                publication_id: r.try_get(2)?,
                revision: r.try_get(3)?,
                immutable: true,
                kind: t.kind,
            });
        }
        let sql = format!(
            "SELECT o.name, o.latest_publication_id, p.revision FROM {} o \
             JOIN publications p ON p.id = o.latest_publication_id",
            t.owners
        );
        for r in sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?
        {
            out.push(TreeRow {
                repo: r.try_get(0)?,
                name: "latest".to_string(),
                publication_id: r.try_get(1)?,
                revision: r.try_get(2)?,
                immutable: false,
                kind: t.latest_kind,
            });
        }
        Ok(out)
    }

    /// The package files of a tree. A publication's content key covers every package
    /// and location, so all trees sharing a publication hold the same files.
    pub async fn tree_packages(
        &self,
        conn: &mut AnyConnection,
        tree: &TreeRow,
    ) -> Result<Vec<TreeFile>> {
        let sql = match tree.kind {
            TreeKind::RepoSnapshot => {
                "SELECT sp.location, p.sha256, p.size_package, p.time_file FROM snapshot_packages sp \
                 JOIN packages p ON p.id = sp.package_id JOIN snapshots s ON s.id = sp.snapshot_id \
                 JOIN repos r ON r.id = s.repo_id WHERE r.name = $1 AND s.name = $2"
            }
            TreeKind::RepoLatest => {
                "SELECT rp.location, p.sha256, p.size_package, p.time_file FROM repo_packages rp \
                 JOIN packages p ON p.id = rp.package_id JOIN repos r ON r.id = rp.repo_id \
                 WHERE r.name = $1"
            }
            TreeKind::ViewSnapshot => {
                "SELECT vp.location, p.sha256, p.size_package, p.time_file FROM view_snapshot_packages vp \
                 JOIN packages p ON p.id = vp.package_id JOIN view_snapshots s ON s.id = vp.view_snapshot_id \
                 JOIN views v ON v.id = s.view_id WHERE v.name = $1 AND s.name = $2"
            }
            TreeKind::ViewLatest => {
                "SELECT vp.location, p.sha256, p.size_package, p.time_file FROM view_latest_packages vp \
                 JOIN packages p ON p.id = vp.package_id JOIN views v ON v.id = vp.view_id \
                 WHERE v.name = $1"
            }
        };
        let mut q = sqlx::query(sql).bind(tree.repo.as_str());
        if matches!(tree.kind, TreeKind::RepoSnapshot | TreeKind::ViewSnapshot) {
            q = q.bind(tree.name.as_str());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|r| {
                Ok(TreeFile {
                    path: r.try_get(0)?,
                    sha256: r.try_get(1)?,
                    size: r.try_get(2)?,
                    mtime: r.try_get(3)?,
                })
            })
            .collect()
    }
}
