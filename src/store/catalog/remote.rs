//! Remote packages: those of `on_demand` and `streamed` repositories that the sync
//! recorded without downloading, with where upstream has them and what they must be.

use super::bulk::Insert;
use super::*;

/// Where a package not (yet) in the pool is fetched from, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RemotePackage {
    pub sha256: String,
    /// The repository (its id in the configuration) whose upstream has it.
    pub repo: String,
    /// Its location under that upstream.
    pub href: String,
    /// Upstream's checksum of it.
    pub algorithm: String,
    pub checksum: String,
    pub size: i64,
    /// When it reached the pool (never for a `streamed` repository).
    pub fetched_at: Option<i64>,
}

impl Catalog {
    /// Records (or updates) where the packages of repository `repo_id` that a sync did
    /// not download are: (sha256, href, algorithm, checksum, size).
    pub async fn record_remote(
        &self,
        repo_id: i64,
        rows: &[(String, String, String, String, i64)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let insert = Insert {
            head: "INSERT INTO remote_packages (sha256, repo_id, href, algorithm, checksum, size)",
            columns: 6,
            tail: "ON CONFLICT (sha256) DO UPDATE SET repo_id = excluded.repo_id, \
                   href = excluded.href, algorithm = excluded.algorithm, \
                   checksum = excluded.checksum, size = excluded.size",
            per_statement: BATCH_ROWS,
        };
        self.insert_rows(
            &mut tx,
            &insert,
            rows,
            |q, (sha, href, algorithm, checksum, size)| {
                q.bind(sha.as_str())
                    .bind(repo_id)
                    .bind(href.as_str())
                    .bind(algorithm.as_str())
                    .bind(checksum.as_str())
                    .bind(*size)
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Where package `sha256` is fetched from, when it is a remote one.
    pub async fn remote_package(&self, sha256: &str) -> Result<Option<RemotePackage>> {
        Ok(sqlx::query_as(
            "SELECT rp.sha256, r.name AS repo, rp.href, rp.algorithm, rp.checksum, rp.size, \
             rp.fetched_at FROM remote_packages rp JOIN repos r ON r.id = rp.repo_id \
             WHERE rp.sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records that remote package `sha256` is in the pool now.
    pub async fn mark_fetched(&self, sha256: &str) -> Result<()> {
        sqlx::query(
            "UPDATE remote_packages SET fetched_at = $1 WHERE sha256 = $2 AND fetched_at IS NULL",
        )
        .bind(now())
        .bind(sha256)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every remote package never fetched into the pool: what verification expects to
    /// be missing.
    pub async fn unfetched_remote(&self) -> Result<std::collections::HashSet<String>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT sha256 FROM remote_packages WHERE fetched_at IS NULL")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// How many packages of `tree` are left upstream (never fetched into the pool).
    pub async fn not_stored(&self, tree: &PageTree) -> Result<i64> {
        let (table, owner) = super::pages::placement(tree.kind);
        let sql = format!(
            "SELECT COUNT(*) FROM {table} t JOIN packages p ON p.id = t.package_id \
             JOIN remote_packages rp ON rp.sha256 = p.sha256 \
             WHERE t.{owner} = $1 AND rp.fetched_at IS NULL"
        );
        Ok(sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(tree.id)
            .fetch_one(&self.pool)
            .await?)
    }
}
