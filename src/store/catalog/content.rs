//! Repositories and their current content: which package each location holds, the carried-through records, `latest`, and the content version that tells a publication is current. Changing the content takes the repository's write lock ([`WriteLock`]).

use super::bulk::Insert;
use super::*;

impl Catalog {
    // ---- repositories -------------------------------------------------------------

    /// Returns the id of repository `name`, creating the row if needed.
    pub async fn ensure_repo(&self, name: &str) -> Result<i64> {
        // Read first: a known repository needs no write (a command that only reads
        // then works on a full disk).
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM repos WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(id) = known {
            return Ok(id);
        }
        sqlx::query(
            "INSERT INTO repos (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar("SELECT id FROM repos WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    const REPO_SELECT: &'static str = "SELECT r.id, r.name, r.created_at, r.latest_publication_id, \
        (SELECT COUNT(*) FROM repo_packages rp WHERE rp.repo_id = r.id) AS package_count, \
        (SELECT CAST(COALESCE(SUM(p.size_package), 0) AS BIGINT) FROM repo_packages rp JOIN packages p ON p.id = rp.package_id WHERE rp.repo_id = r.id) AS total_size, \
        (SELECT COUNT(*) FROM snapshots s WHERE s.repo_id = r.id) AS snapshot_count \
        FROM repos r";

    /// Every repository, by name.
    pub async fn repos(&self) -> Result<Vec<RepoRow>> {
        let sql = format!("{} ORDER BY r.name", Self::REPO_SELECT);
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Repository `name`, if it exists in the catalog.
    pub async fn repo(&self, name: &str) -> Result<Option<RepoRow>> {
        let sql = format!("{} WHERE r.name = $1", Self::REPO_SELECT);
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    // ---- repository content -------------------------------------------------------

    /// The current content of a repository.
    pub async fn repo_content(&self, repo_id: i64) -> Result<Vec<ContentRow>> {
        let mut conn = self.pool.acquire().await?;
        Self::content_rows(&mut conn, repo_id).await
    }

    pub(super) async fn content_rows(
        conn: &mut AnyConnection,
        repo_id: i64,
    ) -> Result<Vec<ContentRow>> {
        Ok(sqlx::query_as(
            "SELECT rp.location, rp.package_id, p.sha256 FROM repo_packages rp \
             JOIN packages p ON p.id = rp.package_id WHERE rp.repo_id = $1",
        )
        .bind(repo_id)
        .fetch_all(&mut *conn)
        .await?)
    }

    pub(super) async fn content_version(conn: &mut AnyConnection, repo_id: i64) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT content_version FROM repos WHERE id = $1")
                .bind(repo_id)
                .fetch_one(&mut *conn)
                .await?,
        )
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
        Ok(sqlx::query_as(
            "SELECT p.id AS publication_id, p.package_count, pf.path AS primary_path FROM repos r \
             JOIN publications p ON p.id = r.latest_publication_id \
             JOIN publication_files pf ON pf.publication_id = p.id AND pf.kind = 'primary' \
             WHERE r.id = $1 AND r.latest_version = r.content_version",
        )
        .bind(repo_id)
        .fetch_optional(&self.pool)
        .await?)
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
        self.apply_latest(
            &mut tx,
            Space::Repos,
            repo_id,
            placements,
            false,
            publication_id,
        )
        .await?;
        // The caller published the content this transaction leaves (it holds the
        // repository lock), so latest describes the current content version.
        sqlx::query("UPDATE repos SET latest_version = content_version WHERE id = $1")
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
        sqlx::query("DELETE FROM repo_extras WHERE repo_id = $1")
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        for e in extras {
            sqlx::query(
                "INSERT INTO repo_extras (repo_id, kind, sha256, size, file_name, \
                 checksum_type, checksum, open_checksum_type, open_checksum, open_size, \
                 upstream_timestamp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(repo_id)
            .bind(e.kind.as_str())
            .bind(e.sha256.as_str())
            .bind(e.size)
            .bind(e.file_name.as_deref())
            .bind(e.checksum_type.as_deref())
            .bind(e.checksum.as_deref())
            .bind(e.open_checksum_type.as_deref())
            .bind(e.open_checksum.as_deref())
            .bind(e.open_size)
            .bind(e.upstream_timestamp)
            .execute(&mut *tx)
            .await?;
        }
        self.apply_latest(
            &mut tx,
            Space::Repos,
            repo_id,
            placements,
            true,
            publication_id,
        )
        .await?;
        sqlx::query(
            "UPDATE repos SET latest_version = content_version, upstream_repomd_sha256 = $1 \
             WHERE id = $2",
        )
        .bind(upstream_repomd_sha256)
        .bind(repo_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The carried-through metadata of a repository, by kind.
    pub async fn repo_extras(&self, repo_id: i64) -> Result<Vec<ExtraRef>> {
        let mut conn = self.pool.acquire().await?;
        Self::extra_rows(&mut conn, repo_id).await
    }

    pub(super) async fn extra_rows(
        conn: &mut AnyConnection,
        repo_id: i64,
    ) -> Result<Vec<ExtraRef>> {
        Ok(sqlx::query_as(
            "SELECT kind, sha256, size, file_name, checksum_type, checksum, \
             open_checksum_type, open_checksum, open_size, upstream_timestamp \
             FROM repo_extras WHERE repo_id = $1 ORDER BY kind",
        )
        .bind(repo_id)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// The digest of the upstream repomd.xml the repository's content came from.
    pub async fn upstream_repomd(&self, repo_id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT upstream_repomd_sha256 FROM repos WHERE id = $1")
                .bind(repo_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Points a repository's `latest` at a publication made from the content at
    /// `content_version` (`None`: not known to match any content version).
    pub async fn set_repo_latest(
        &self,
        repo_id: i64,
        publication_id: i64,
        content_version: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.point_latest(&mut tx, Space::Repos, repo_id, publication_id)
            .await?;
        sqlx::query("UPDATE repos SET latest_version = $1 WHERE id = $2")
            .bind(content_version)
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A repository's current content, for publishing `latest`.
    pub async fn repo_placed(&self, repo_id: i64) -> Result<Vec<Placed>> {
        self.placed(
            "SELECT p.id AS package_id, p.sha256, rp.location, p.time_file \
             FROM repo_packages rp JOIN packages p ON p.id = rp.package_id WHERE rp.repo_id = $1",
            repo_id,
        )
        .await
    }

    pub(super) async fn insert_placements(
        &self,
        tx: &mut Transaction<'_, Any>,
        table: &'static str,
        owner_column: &'static str,
        owner: i64,
        placements: &[(String, i64)],
    ) -> Result<()> {
        let head = format!("INSERT INTO {table} ({owner_column}, location, package_id)");
        let insert = Insert {
            head: &head,
            columns: 3,
            tail: "",
            per_statement: BATCH_ROWS,
        };
        self.insert_rows(tx, &insert, placements, |q, (location, id)| {
            q.bind(owner).bind(location.as_str()).bind(*id)
        })
        .await
    }
}
