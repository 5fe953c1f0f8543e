//! Jobs: long operations started through the API, and how they ended.

use super::*;

/// One job's row.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub actor: String,
    /// A JSON object.
    pub params: String,
    pub state: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub done: i64,
    pub total: i64,
    pub bytes: i64,
    pub bytes_total: i64,
    /// JSON, when it succeeded.
    pub result: Option<String>,
    pub error: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub struct JobEnd<'a> {
    pub state: &'a str,
    pub counters: [i64; 4],
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
}

const JOB_COLUMNS: &str = "id, kind, target, actor, params, state, created_at, started_at, \
     finished_at, done, total, bytes, bytes_total, result, error";

impl Catalog {
    /// Records a job, queued.
    pub async fn insert_job(
        &self,
        kind: &str,
        target: &str,
        actor: &str,
        params: &str,
    ) -> Result<JobRow> {
        let sql = format!(
            "INSERT INTO jobs (kind, target, actor, params, state, created_at) \
             VALUES ($1, $2, $3, $4, 'queued', $5) RETURNING {JOB_COLUMNS}"
        );
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(kind)
            .bind(target)
            .bind(actor)
            .bind(params)
            .bind(now())
            .fetch_one(&self.pool)
            .await?)
    }

    /// Records that queued job `id` runs from now on.
    pub async fn start_job(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'running', started_at = $1 WHERE id = $2 AND state = 'queued'",
        )
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how job `id` ended.
    pub async fn finish_job(&self, id: i64, end: &JobEnd<'_>) -> Result<()> {
        let [done, total, bytes, bytes_total] = end.counters;
        sqlx::query(
            "UPDATE jobs SET state = $1, finished_at = $2, done = $3, total = $4, bytes = $5, \
             bytes_total = $6, result = $7, error = $8 WHERE id = $9",
        )
        .bind(end.state)
        .bind(now())
        .bind(done)
        .bind(total)
        .bind(bytes)
        .bind(bytes_total)
        .bind(end.result)
        .bind(end.error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks every job still queued or running as interrupted: called when a server
    /// starts, as whoever ran them has ended. Returns how many there were.
    pub async fn interrupt_jobs(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'interrupted', finished_at = $1, \
             error = 'the server stopped while it ran' WHERE state IN ('queued', 'running')",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The newest jobs, newest first.
    pub async fn jobs(&self, limit: i64) -> Result<Vec<JobRow>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT $1");
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}
