//! Maintenance: what the pool must keep (referenced blobs), garbage collection of unused rows, maintenance runs, and the catalog-derived metrics.

use super::*;

impl Catalog {
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
}
