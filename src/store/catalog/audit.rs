//! The audit log (one row per change, whoever made it) and the API tokens (stored as
//! salted hashes only).

use super::*;

/// One audit row.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditRow {
    pub id: i64,
    /// Unix time the operation started.
    pub at: i64,
    pub actor: String,
    pub operation: String,
    pub target: String,
    /// A JSON object.
    pub params: String,
    /// `ok` or `error`.
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// Which audit rows to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Rows at or after this unix time.
    pub since: Option<i64>,
    /// Rows whose actor is this (`cli:root`, `scheduler`, `token:ci`).
    pub actor: Option<String>,
    /// Rows of this operation (`sync`, `alias.publish`, …).
    pub operation: Option<String>,
    /// Rows older than this id (the next page after a page ending at it).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One API token's row: never its secret, which is not stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub lookup: String,
    pub salt: String,
    pub hash: String,
    pub scope: String,
    /// JSON array of repository names.
    pub repos: String,
    /// JSON array of view names.
    pub views: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A token to record (its hash, never its secret).
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub lookup: &'a str,
    pub salt: &'a str,
    pub hash: &'a str,
    pub scope: &'a str,
    pub repos: &'a str,
    pub views: &'a str,
    pub expires_at: Option<i64>,
}

const AUDIT_COLUMNS: &str = "id, at, actor, operation, target, params, outcome, error, duration_ms";
const TOKEN_COLUMNS: &str = "id, name, lookup, salt, hash, scope, repos, views, created_at, \
     expires_at, revoked_at, last_used_at";

impl Catalog {
    /// Writes one audit row.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_audit(
        &self,
        at: i64,
        actor: &str,
        operation: &str,
        target: &str,
        params: &str,
        error: Option<&str>,
        duration_ms: i64,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, operation, target, params, outcome, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(at)
        .bind(actor)
        .bind(operation)
        .bind(target)
        .bind(params)
        .bind(if error.is_some() { "error" } else { "ok" })
        .bind(error)
        .bind(duration_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Audit rows matching `filter`, newest first.
    pub async fn audit_rows(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut n = 0;
        let mut next = |column: &str, op: &str, sql: &mut String| {
            n += 1;
            sql.push_str(&format!(" AND {column} {op} ${n}"));
        };
        if filter.since.is_some() {
            next("at", ">=", &mut sql);
        }
        if filter.actor.is_some() {
            next("actor", "=", &mut sql);
        }
        if filter.operation.is_some() {
            next("operation", "=", &mut sql);
        }
        if filter.before_id.is_some() {
            next("id", "<", &mut sql);
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
        let mut q = sqlx::query_as(AssertSqlSafe(sql));
        if let Some(since) = filter.since {
            q = q.bind(since);
        }
        if let Some(actor) = &filter.actor {
            q = q.bind(actor.clone());
        }
        if let Some(operation) = &filter.operation {
            q = q.bind(operation.clone());
        }
        if let Some(before) = filter.before_id {
            q = q.bind(before);
        }
        Ok(q.bind(filter.limit).fetch_all(&self.pool).await?)
    }

    /// Records a new token. Fails with [`CatalogError::TokenExists`] when a token of
    /// that name is live.
    pub async fn insert_token(&self, t: &NewToken<'_>) -> Result<TokenRow> {
        if self.live_token(t.name).await?.is_some() {
            return Err(CatalogError::TokenExists(t.name.to_string()));
        }
        let sql = format!(
            "INSERT INTO api_tokens (name, lookup, salt, hash, scope, repos, views, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {TOKEN_COLUMNS}"
        );
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(t.name)
            .bind(t.lookup)
            .bind(t.salt)
            .bind(t.hash)
            .bind(t.scope)
            .bind(t.repos)
            .bind(t.views)
            .bind(now())
            .bind(t.expires_at)
            .fetch_one(&self.pool)
            .await?)
    }

    /// The live (not revoked) token named `name`.
    pub async fn live_token(&self, name: &str) -> Result<Option<TokenRow>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE name = $1 AND revoked_at IS NULL"
        );
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The token whose public part is `lookup` (revoked or not).
    pub async fn token_by_lookup(&self, lookup: &str) -> Result<Option<TokenRow>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE lookup = $1");
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(lookup)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every token, the revoked ones too, by name.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name, id");
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Revokes the live token named `name`; false when there is none.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records that token `id` was just used.
    pub async fn touch_token(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
