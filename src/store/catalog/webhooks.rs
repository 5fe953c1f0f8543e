//! The webhook delivery queue.

use super::*;

/// One delivery.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    pub id: i64,
    pub url: String,
    pub event: String,
    pub body: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, url, event, body, state, attempts, next_attempt_at, \
     last_status, last_error, created_at, delivered_at";

impl Catalog {
    /// Queues `body` for each of `urls`, due now.
    pub async fn enqueue_deliveries(&self, urls: &[&str], event: &str, body: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for url in urls {
            sqlx::query(
                "INSERT INTO webhook_deliveries (url, event, body, state, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, 'pending', $4, $4)",
            )
            .bind(*url)
            .bind(event)
            .bind(body)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Pending deliveries due by now, oldest first.
    pub async fn due_deliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
        );
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(now())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records an attempt: delivered (`state` = 'delivered'), to be retried at `next`
    /// ('pending'), or given up ('failed').
    pub async fn record_attempt(
        &self,
        id: i64,
        state: &str,
        next: i64,
        status: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, \
             next_attempt_at = $2, last_status = $3, last_error = $4, \
             delivered_at = CASE WHEN $1 = 'delivered' THEN $5 ELSE NULL END WHERE id = $6",
        )
        .bind(state)
        .bind(next)
        .bind(status)
        .bind(error)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest deliveries (of one state, when given), newest first.
    pub async fn deliveries(&self, state: Option<&str>, limit: i64) -> Result<Vec<DeliveryRow>> {
        let filter = if state.is_some() {
            "WHERE state = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries {filter} ORDER BY id DESC LIMIT $1"
        );
        let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(limit);
        if let Some(s) = state {
            q = q.bind(s.to_string());
        }
        Ok(q.fetch_all(&self.pool).await?)
    }
}
