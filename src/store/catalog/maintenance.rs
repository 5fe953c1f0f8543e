//! Maintenance: what the pool must keep (referenced blobs), garbage collection of unused rows, maintenance runs, and the catalog-derived metrics.

use super::*;

impl Catalog {
    /// Every blob the catalog references (packages and published metadata) with its
    /// recorded size: what `db verify` checks and what GC must keep.
    pub async fn referenced_blobs(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT sha256, size_package FROM packages UNION SELECT sha256, size FROM publication_files \
             UNION SELECT sha256, size FROM repo_extras",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The blobs that rows surviving [`Catalog::collect_garbage`] reference (what a dry
    /// run must assume stays).
    pub async fn blobs_still_referenced_after_gc(
        &self,
        min_age_secs: i64,
        grace_secs: i64,
    ) -> Result<HashSet<String>> {
        let sql = format!(
            "SELECT sha256 FROM packages WHERE id NOT IN (SELECT id {UNUSED_PACKAGES}) \
             UNION SELECT sha256 FROM publication_files WHERE publication_id NOT IN (SELECT id {UNUSED_PUBLICATIONS}) \
             UNION SELECT sha256 FROM repo_extras"
        );
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(now() - min_age_secs)
            .bind(now() - grace_secs)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().collect())
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
        let grace_cutoff = now() - grace_secs;
        let mut tx = self.pool.begin().await?;
        let count = |sql: &'static str| format!("SELECT COUNT(*) {sql}");
        let publications: i64 = sqlx::query_scalar(AssertSqlSafe(count(UNUSED_PUBLICATIONS)))
            .bind(cutoff)
            .bind(grace_cutoff)
            .fetch_one(&mut *tx)
            .await?;
        let packages: i64 = sqlx::query_scalar(AssertSqlSafe(count(UNUSED_PACKAGES)))
            .bind(cutoff)
            .bind(grace_cutoff)
            .fetch_one(&mut *tx)
            .await?;
        if !dry_run {
            for (table, column) in [
                ("alias_history", "replaced_at"),
                ("view_alias_history", "replaced_at"),
                ("latest_history", "replaced_at"),
                ("latest_displaced", "displaced_at"),
            ] {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE {column} < $1"
                )))
                .bind(grace_cutoff)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(AssertSqlSafe(format!("DELETE {UNUSED_PUBLICATIONS}")))
                .bind(cutoff)
                .bind(grace_cutoff)
                .execute(&mut *tx)
                .await?;
            sqlx::query(AssertSqlSafe(format!("DELETE {UNUSED_PACKAGES}")))
                .bind(cutoff)
                .bind(grace_cutoff)
                .execute(&mut *tx)
                .await?;
            // Where to fetch a package from is kept while a package row is.
            sqlx::query(
                "DELETE FROM remote_packages WHERE sha256 NOT IN (SELECT sha256 FROM packages)",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(GcRows {
            publications,
            packages,
        })
    }

    /// Removes those of the packages `ids` (rows a failed operation wrote) that nothing
    /// places or ever placed: no repository, snapshot or view, and no displaced
    /// `latest`. Call only with every other writer kept out (the exclusive pool lease):
    /// another writer may be about to place them. With SQLite, the write-ahead log the
    /// rows went through is emptied too, so the failure gives that space back (on a
    /// full disk, the rest of the failed operation's space). Returns how many went.
    pub async fn remove_unplaced_packages(&self, ids: &[i64]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for chunk in ids.chunks(BATCH_ROWS) {
            let list = self.backend.in_clause(1, chunk.len());
            let sql = format!(
                "DELETE FROM packages WHERE id IN ({list}) AND {} \
                 AND id NOT IN (SELECT package_id FROM latest_displaced)",
                unplaced!()
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(removed)
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
        let sql = owner_stats_sql(
            Space::Repos,
            ", (SELECT COUNT(*) FROM sync_runs sr WHERE sr.repo_id = o.id AND sr.status = 'ok') AS runs_ok, \
             (SELECT COUNT(*) FROM sync_runs sr WHERE sr.repo_id = o.id AND sr.status = 'unchanged') \
                AS runs_unchanged, \
             (SELECT COUNT(*) FROM sync_runs sr WHERE sr.repo_id = o.id AND sr.status = 'failed') \
                AS runs_failed, \
             (SELECT CAST(COALESCE(SUM(sr.packages_downloaded), 0) AS BIGINT) FROM sync_runs sr \
                WHERE sr.repo_id = o.id) AS downloaded_packages, \
             (SELECT CAST(COALESCE(SUM(sr.bytes_downloaded), 0) AS BIGINT) FROM sync_runs sr \
                WHERE sr.repo_id = o.id) AS downloaded_bytes, \
             (SELECT MAX(sr.finished_at) FROM sync_runs sr WHERE sr.repo_id = o.id \
                AND sr.status IN ('ok', 'unchanged')) AS last_success",
        );
        let repo_rows: Vec<RepoStatsRow> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await?;
        // The last finished run of every repository, in one query.
        let sql = format!(
            "SELECT repo_id, {SYNC_RUN_COLUMNS} FROM sync_runs WHERE id IN \
             (SELECT MAX(id) FROM sync_runs WHERE finished_at IS NOT NULL GROUP BY repo_id)"
        );
        let last_runs: Vec<LastRun> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await?;
        let mut last_runs: HashMap<i64, SyncRun> =
            last_runs.into_iter().map(|l| (l.repo_id, l.run)).collect();
        let mut repos = Vec::with_capacity(repo_rows.len());
        for r in repo_rows {
            let o = r.owner;
            repos.push(RepoStats {
                last_run: last_runs.remove(&o.id),
                name: o.name,
                packages: o.packages,
                snapshots: o.snapshots,
                runs_ok: r.runs_ok,
                runs_unchanged: r.runs_unchanged,
                runs_failed: r.runs_failed,
                downloaded_packages: r.downloaded_packages,
                downloaded_bytes: r.downloaded_bytes,
                last_success: r.last_success,
                newest_snapshot: o.newest_at.zip(o.newest_packages),
            });
        }
        let view_rows: Vec<OwnerStatsRow> =
            sqlx::query_as(AssertSqlSafe(owner_stats_sql(Space::Views, "")))
                .fetch_all(&mut *tx)
                .await?;
        let views = view_rows
            .into_iter()
            .map(|r| ViewStats {
                name: r.name,
                packages: r.packages,
                snapshots: r.snapshots,
                newest_snapshot: r.newest_at.zip(r.newest_packages),
            })
            .collect();
        let gc: GcStatsRow = sqlx::query_as(
            "SELECT COUNT(*) AS runs, CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS freed_bytes, \
             CAST(COALESCE(SUM(blobs), 0) AS BIGINT) AS freed_blobs, MAX(finished_at) AS last_at \
             FROM maintenance_runs WHERE kind = 'gc'",
        )
        .fetch_one(&mut *tx)
        .await?;
        let verify_last: Option<(i64, i64)> = sqlx::query_as(
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
        let catalog_bytes: i64 = sqlx::query_scalar(size_sql).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(MetricStats {
            repos,
            views,
            catalog_bytes,
            gc_runs: gc.runs,
            gc_freed_bytes: gc.freed_bytes,
            gc_freed_blobs: gc.freed_blobs,
            gc_last_at: gc.last_at,
            verify_last,
        })
    }
}

/// One repository's line of [`Catalog::metric_stats`].
#[derive(sqlx::FromRow)]
struct RepoStatsRow {
    #[sqlx(flatten)]
    owner: OwnerStatsRow,
    runs_ok: i64,
    runs_unchanged: i64,
    runs_failed: i64,
    downloaded_packages: i64,
    downloaded_bytes: i64,
    last_success: Option<i64>,
}

/// What [`Catalog::metric_stats`] reads of every repository and view.
#[derive(sqlx::FromRow)]
struct OwnerStatsRow {
    id: i64,
    name: String,
    packages: i64,
    snapshots: i64,
    newest_packages: Option<i64>,
    newest_at: Option<i64>,
}

/// The garbage collections' totals.
#[derive(sqlx::FromRow)]
struct GcStatsRow {
    runs: i64,
    freed_bytes: i64,
    freed_blobs: i64,
    last_at: Option<i64>,
}

/// A repository's last finished sync run, as [`Catalog::metric_stats`] reads it.
#[derive(sqlx::FromRow)]
struct LastRun {
    repo_id: i64,
    #[sqlx(flatten)]
    run: SyncRun,
}

/// The query of [`OwnerStatsRow`]s of `space` (owner `o`), with `extra` columns.
fn owner_stats_sql(space: Space, extra: &str) -> String {
    let t = space.tables();
    let (latest, latest_col) = super::pages::placement(t.latest_kind);
    format!(
        "SELECT o.id, o.name, \
         (SELECT COUNT(*) FROM {latest} l WHERE l.{latest_col} = o.id) AS packages, \
         (SELECT COUNT(*) FROM {snapshots} s WHERE s.{owner_col} = o.id) AS snapshots, \
         (SELECT s.package_count FROM {snapshots} s WHERE s.{owner_col} = o.id \
            ORDER BY s.created_at DESC, s.id DESC LIMIT 1) AS newest_packages, \
         (SELECT MAX(s.created_at) FROM {snapshots} s WHERE s.{owner_col} = o.id) AS newest_at\
         {extra} FROM {owners} o ORDER BY o.name",
        snapshots = t.snapshots,
        owner_col = t.owner_col,
        owners = t.owners,
    )
}

/// Who uses a blob, as [`Catalog::blob_users`] reads it.
#[derive(sqlx::FromRow)]
struct BlobUse {
    sha256: String,
    what: String,
}

impl Catalog {
    /// For each of `shas`, what uses it, in words: the package (NEVRA) or metadata
    /// file it is, and every tree (`repos/R/latest`, `repos/R/SNAP`, `views/V/…`) that
    /// serves it.
    pub async fn blob_users(&self, shas: &[&str]) -> Result<HashMap<String, Vec<String>>> {
        let mut conn = self.pool.acquire().await?;
        let nevra =
            "p.name || '-' || CASE WHEN p.epoch IN ('', '0') THEN '' ELSE p.epoch || ':' END \
                     || p.version || '-' || p.release || '.' || p.arch";
        let selects: Vec<String> = vec![
            format!("SELECT p.sha256, 'package ' || {nevra} AS what FROM packages p WHERE p.sha256 IN ({{list}})"),
            "SELECT p.sha256, 'in repos/' || r.name || '/latest' AS what FROM repo_packages x \
             JOIN packages p ON p.id = x.package_id JOIN repos r ON r.id = x.repo_id WHERE p.sha256 IN ({list})".into(),
            "SELECT p.sha256, 'in repos/' || r.name || '/' || s.name AS what FROM snapshot_packages x \
             JOIN packages p ON p.id = x.package_id JOIN snapshots s ON s.id = x.snapshot_id \
             JOIN repos r ON r.id = s.repo_id WHERE p.sha256 IN ({list})".into(),
            "SELECT p.sha256, 'in views/' || v.name || '/latest' AS what FROM view_latest_packages x \
             JOIN packages p ON p.id = x.package_id JOIN views v ON v.id = x.view_id WHERE p.sha256 IN ({list})".into(),
            "SELECT p.sha256, 'in views/' || v.name || '/' || s.name AS what FROM view_snapshot_packages x \
             JOIN packages p ON p.id = x.package_id JOIN view_snapshots s ON s.id = x.view_snapshot_id \
             JOIN views v ON v.id = s.view_id WHERE p.sha256 IN ({list})".into(),
            "SELECT f.sha256, CASE WHEN f.kind IN ('image', 'tree', 'treeinfo') THEN 'tree file ' ELSE 'metadata ' END || f.path || ' of repos/' || r.name || '/latest' AS what \
             FROM publication_files f JOIN repos r ON r.latest_publication_id = f.publication_id \
             WHERE f.sha256 IN ({list})".into(),
            "SELECT f.sha256, CASE WHEN f.kind IN ('image', 'tree', 'treeinfo') THEN 'tree file ' ELSE 'metadata ' END || f.path || ' of repos/' || r.name || '/' || s.name AS what \
             FROM publication_files f JOIN snapshots s ON s.publication_id = f.publication_id \
             JOIN repos r ON r.id = s.repo_id WHERE f.sha256 IN ({list})".into(),
            "SELECT f.sha256, CASE WHEN f.kind IN ('image', 'tree', 'treeinfo') THEN 'tree file ' ELSE 'metadata ' END || f.path || ' of views/' || v.name || '/latest' AS what \
             FROM publication_files f JOIN views v ON v.latest_publication_id = f.publication_id \
             WHERE f.sha256 IN ({list})".into(),
            "SELECT f.sha256, CASE WHEN f.kind IN ('image', 'tree', 'treeinfo') THEN 'tree file ' ELSE 'metadata ' END || f.path || ' of views/' || v.name || '/' || s.name AS what \
             FROM publication_files f JOIN view_snapshots s ON s.publication_id = f.publication_id \
             JOIN views v ON v.id = s.view_id WHERE f.sha256 IN ({list})".into(),
        ];
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for template in &selects {
            let select = |list: &str| template.replace("{list}", list);
            let rows: Vec<BlobUse> = self.select_in(&mut conn, select, &[], shas).await?;
            for r in rows {
                out.entry(r.sha256).or_default().push(r.what);
            }
        }
        for uses in out.values_mut() {
            uses.sort();
            uses.dedup();
            // The package line first, then the trees.
            uses.sort_by_key(|u| !u.starts_with("package "));
        }
        Ok(out)
    }
}

impl Catalog {
    /// The repositories whose current content holds any of the packages `shas`.
    pub async fn repos_holding(&self, shas: &[&str]) -> Result<Vec<String>> {
        let mut conn = self.pool.acquire().await?;
        let select = |list: &str| {
            format!(
                "SELECT DISTINCT r.name FROM repo_packages x JOIN packages p ON p.id = x.package_id \
                 JOIN repos r ON r.id = x.repo_id WHERE p.sha256 IN ({list})"
            )
        };
        let rows: Vec<(String,)> = self.select_in(&mut conn, select, &[], shas).await?;
        let mut names: Vec<String> = rows.into_iter().map(|(n,)| n).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}
