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

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Executor, Transaction};

mod aliases;
mod audit;
mod bulk;
mod content;
mod jobs;
mod latest;
mod maintenance;
mod packages;
mod pages;
mod publications;
mod remote;
mod serving;
mod snapshots;
mod sync_runs;
mod views;
mod webhooks;
pub use audit::{AuditFilter, AuditRow, NewToken, TokenRow};
pub use jobs::{JobEnd, JobRow};
pub use packages::PackageWriter;
pub use pages::{OwnerSummary, PackageRow, PageSnapshot, PageTree, Place};
pub use remote::RemotePackage;
pub use webhooks::DeliveryRow;

use crate::domain::package::{Changelog, DepKind, Dependency, Package, PackageFile};
use crate::domain::status::{RunStatus, UnknownStatus};
use crate::formats::repodata::packed::{self, Packed};
use crate::formats::repodata::parse::Checksum;
use crate::formats::repodata::{Carried, Fragments};
use crate::store::datadir::{WriteLock, WriteLocks};

/// Catalog errors.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("database: {0}")]
    Sql(sqlx::Error),
    /// The catalog's storage is full (SQLite's file system, or the PostgreSQL server's
    /// disk): nothing was changed by the failed statement.
    #[error("the catalog's disk is full ({0}): free space where the catalog lives (the data_dir for SQLite, the server's disk for PostgreSQL) and run the command again")]
    Full(sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unknown repository {0:?}")]
    UnknownRepo(String),
    #[error("repository {repo:?} has no snapshot {snapshot:?}")]
    UnknownSnapshot { repo: String, snapshot: String },
    #[error("{repo:?} has no alias {alias:?}")]
    UnknownAlias { repo: String, alias: String },
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
    #[error("a token named {0:?} exists: revoke it first (`cairn token revoke {0}`) or choose another name")]
    TokenExists(String),
    #[error("unsupported database URL {0:?} (expected sqlite:… or postgres://…)")]
    BadUrl(String),
    #[error("catalog row: {0}")]
    BadStatus(#[from] UnknownStatus),
    /// A package's stored metadata fragments (which hold its file list and
    /// changelog) cannot be read back.
    #[error("the stored metadata of package {sha256} cannot be read back ({problem}): the catalog is damaged; restore it from a backup")]
    BadFragments { sha256: String, problem: String },
}

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> CatalogError {
        if is_disk_full(&e) {
            CatalogError::Full(e)
        } else {
            CatalogError::Sql(e)
        }
    }
}

/// Is this the database saying its storage is full? SQLite: SQLITE_FULL (13), with
/// or without an extended code; PostgreSQL: disk_full (53100); or a write the OS
/// refused with ENOSPC or EDQUOT.
fn is_disk_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code == "53100" || code.parse::<i64>().is_ok_and(|n| n & 0xff == 13)
        }),
        sqlx::Error::Io(io) => matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)),
        _ => false,
    }
}

type Result<T> = std::result::Result<T, CatalogError>;

/// Every SQLite connection's settings.
const SQLITE_SETUP: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
     PRAGMA foreign_keys=ON; PRAGMA busy_timeout=30000; \
     PRAGMA cache_size=-8192; PRAGMA temp_store=MEMORY;";

/// The file of a `sqlite://PATH?…` URL.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// SQLite's "disk I/O error" (SQLITE_IOERR and its extended codes), which is what a
/// full disk looks like when SQLite grows its shared-memory or WAL file.
fn sqlite_io_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|n| n & 0xff == 10 || n & 0xff == 13),
        _ => false,
    }
}

/// Is the file system holding `file` out of space (for this user)?
fn no_space_beside(file: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    // "Full" means less than one 64 KiB WAL chunk left.
    rc == 0 && (st.f_bavail as u128) * (st.f_frsize as u128) < 64 * 1024
}

/// Which SQL engine is behind the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A repository row.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
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

/// Carried-through metadata of a repository and the pool blob holding it: either an
/// opened document (comps, updateinfo, modules: `kind` is its name, the blob is the
/// uncompressed document, every other field is `None`), or a record carried unchanged
/// from upstream (`kind` is upstream's type, the blob is upstream's bytes, and the
/// other fields are what upstream's repomd.xml said of it; `file_name` is always set).
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct ExtraRef {
    pub kind: String,
    pub sha256: String,
    pub size: i64,
    pub file_name: Option<String>,
    pub checksum_type: Option<String>,
    pub checksum: Option<String>,
    pub open_checksum_type: Option<String>,
    pub open_checksum: Option<String>,
    pub open_size: Option<i64>,
    pub upstream_timestamp: Option<i64>,
}

impl ExtraRef {
    /// An opened document's reference.
    pub fn opened(kind: &str, sha256: &str, size: i64) -> ExtraRef {
        ExtraRef {
            kind: kind.to_string(),
            sha256: sha256.to_string(),
            size,
            ..ExtraRef::default()
        }
    }

    /// A carried record's reference.
    pub fn carried(record: &Carried, sha256: &str, size: i64) -> ExtraRef {
        ExtraRef {
            kind: record.kind.clone(),
            sha256: sha256.to_string(),
            size,
            file_name: Some(record.file_name.clone()),
            checksum_type: Some(record.checksum.algorithm.clone()),
            checksum: Some(record.checksum.hex.clone()),
            open_checksum_type: record.open_checksum.as_ref().map(|c| c.algorithm.clone()),
            open_checksum: record.open_checksum.as_ref().map(|c| c.hex.clone()),
            open_size: record.open_size.map(|s| s as i64),
            upstream_timestamp: record.timestamp,
        }
    }

    /// The carried record this reference describes, or `None` for an opened document.
    pub fn as_carried(&self) -> Option<Carried> {
        let checksum = |algorithm: &Option<String>, hex: &Option<String>| match (algorithm, hex) {
            (Some(algorithm), Some(hex)) => Some(Checksum {
                algorithm: algorithm.clone(),
                hex: hex.clone(),
            }),
            _ => None,
        };
        Some(Carried {
            kind: self.kind.clone(),
            file_name: self.file_name.clone()?,
            checksum: checksum(&self.checksum_type, &self.checksum)?,
            open_checksum: checksum(&self.open_checksum_type, &self.open_checksum),
            open_size: self.open_size.map(|s| s as u64),
            timestamp: self.upstream_timestamp,
        })
    }
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
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ViewSnapshotRow {
    pub view: String,
    pub name: String,
    pub created_at: i64,
    pub package_count: i64,
    /// The member repository snapshots, in view order: (repo, snapshot).
    #[schema(value_type = Vec<Vec<String>>)]
    pub members: Vec<(String, String)>,
}

/// One recorded sync of a mirrored repository.
#[derive(Debug, Clone, Default, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SyncRun {
    #[serde(skip)]
    pub id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// [`RunStatus::Failed`] also for a run that never ended (see [`INTERRUPTED`]).
    #[sqlx(try_from = "String")]
    #[schema(value_type = String)]
    pub status: RunStatus,
    pub packages_added: i64,
    pub packages_removed: i64,
    pub packages_downloaded: i64,
    pub bytes_downloaded: i64,
    pub error: Option<String>,
}

/// One package as placed in a repository, view or new content, with what a publish
/// needs; its fragments are read by `package_id` when the repodata is rendered
/// ([`Catalog::fragments_by_ids`]), a window at a time.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Placed {
    pub package_id: i64,
    pub sha256: String,
    pub location: String,
    pub time_file: i64,
}

/// One package of a tree, as the server's index needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TreeFile {
    pub path: String,
    pub sha256: String,
    pub size: i64,
    pub mtime: i64,
    /// The package's signer (see [`PackageSignature`]), where the query reads it.
    #[sqlx(default)]
    pub sig_key_id: Option<String>,
    #[sqlx(default)]
    pub sig_algorithm: Option<String>,
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
#[derive(Debug, Clone, sqlx::FromRow)]
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
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CurrentLatest {
    pub publication_id: i64,
    pub package_count: i64,
    pub primary_path: String,
}

/// A package's header signature as read from the package: the issuer's key ID and
/// the algorithm, or `algorithm == "none"` (and no key ID) when it is unsigned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PackageSignature {
    #[serde(skip)]
    pub sha256: String,
    pub key_id: Option<String>,
    pub algorithm: String,
}

impl PackageSignature {
    pub fn is_signed(&self) -> bool {
        self.algorithm != "none"
    }
}

/// The metadata files of a publication.
#[derive(Debug, Clone, sqlx::FromRow)]
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

/// Publications no repository and no snapshot points at, older than `$1`, that no
/// `latest` served after `$2` (its grace period).
const UNUSED_PUBLICATIONS: &str = "FROM publications WHERE created_at <= $1 \
     AND id NOT IN (SELECT latest_publication_id FROM repos WHERE latest_publication_id IS NOT NULL) \
     AND id NOT IN (SELECT publication_id FROM snapshots) \
     AND id NOT IN (SELECT latest_publication_id FROM views WHERE latest_publication_id IS NOT NULL) \
     AND id NOT IN (SELECT publication_id FROM view_snapshots) \
     AND id NOT IN (SELECT publication_id FROM latest_history WHERE replaced_at >= $2)";
/// The condition on `packages` of a package that no repository, snapshot or view
/// places.
macro_rules! unplaced {
    () => {
        "id NOT IN (SELECT package_id FROM repo_packages) \
         AND id NOT IN (SELECT package_id FROM snapshot_packages) \
         AND id NOT IN (SELECT package_id FROM view_latest_packages) \
         AND id NOT IN (SELECT package_id FROM view_snapshot_packages)"
    };
}
use unplaced;

/// Packages no repository and no snapshot holds, older than `$1`, that no `latest`
/// served after `$2`.
const UNUSED_PACKAGES: &str = concat!(
    "FROM packages WHERE created_at <= $1 AND ",
    unplaced!(),
    " AND id NOT IN (SELECT package_id FROM latest_displaced WHERE displaced_at >= $2)"
);

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
        // One connection first, set up as the pool's will be: an unreachable server,
        // a refused login or an unusable SQLite file (a full disk) is reported at once
        // with its cause, not retried until the pool's acquire timeout.
        {
            use sqlx::{ConnectOptions, Connection};
            let conn = tokio::time::timeout(Duration::from_secs(15), options.connect())
                .await
                .map_err(|_| {
                    CatalogError::Sql(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no answer from the database server within 15 s",
                    )))
                })?;
            let checked = async {
                let mut conn = conn?;
                if backend == Backend::Sqlite {
                    conn.execute(SQLITE_SETUP).await?;
                }
                let _ = conn.close().await;
                Ok::<(), sqlx::Error>(())
            };
            if let Err(e) = checked.await {
                return Err(match sqlite_file(url) {
                    Some(file) if sqlite_io_error(&e) && no_space_beside(&file) => {
                        CatalogError::Full(e)
                    }
                    _ => e.into(),
                });
            }
        }
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(60));
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(SQLITE_SETUP).await?;
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
        self.repair().await
    }

    /// The one-time repairs of data an earlier release wrote (see the catalog-repairs
    /// migration), each run once, in this order, and recorded.
    async fn repair(&self) -> Result<()> {
        // The fragments first: the next repair reads them.
        const PACKED_FRAGMENTS: &str = "packed-fragments";
        const PACKAGE_LISTS: &str = "package-lists";
        for name in [PACKED_FRAGMENTS, PACKAGE_LISTS] {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT done_at FROM catalog_repairs WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            if name == PACKED_FRAGMENTS {
                let packed = self.pack_text_fragments().await?;
                if packed > 0 {
                    tracing::info!("compressed the stored metadata of {packed} package(s)");
                }
            } else {
                let repaired = self.backfill_package_lists().await?;
                if repaired > 0 {
                    tracing::info!("restored the dependency rows of {repaired} synced package(s)");
                }
            }
            sqlx::query(
                "INSERT INTO catalog_repairs (name, done_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(now())
            .execute(&self.pool)
            .await?;
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

    /// Starts a read transaction that sees one consistent state of the catalog (the
    /// server's index is built from several queries inside one).
    pub(super) async fn begin_read(&self) -> Result<Transaction<'static, Any>> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }
}
