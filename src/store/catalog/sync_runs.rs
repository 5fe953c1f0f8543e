//! The sync history: one row per run, started, finished or interrupted.

use super::*;

impl Catalog {
    /// Starts a sync run record.
    pub async fn start_sync_run(&self, repo_id: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO sync_runs (repo_id, started_at, status) VALUES ($1, $2, 'running') RETURNING id",
        )
        .bind(repo_id)
        .bind(now())
        .fetch_one(&self.pool)
        .await?)
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
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(repo_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}
