//! Repository snapshots: frozen content with its publication; listing, lookup, deletion (refused while in use) and the candidates a diff compares.

use super::*;

impl Catalog {
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
    pub(super) async fn insert_snapshot(
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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO snapshots (repo_id, name, created_at, publication_id, package_count, total_size) \
             VALUES ($1, $2, $3, $4, 0, 0) RETURNING id",
        )
        .bind(repo_id)
        .bind(name)
        .bind(now())
        .bind(publication_id)
        .fetch_one(&mut **tx)
        .await?;
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

    const SNAPSHOT_SELECT: &'static str =
        "SELECT s.id, r.name AS repo, s.name, s.created_at, s.publication_id, \
        s.package_count, s.total_size FROM snapshots s JOIN repos r ON r.id = s.repo_id";

    /// Snapshots of one repository (or all), oldest first.
    pub async fn snapshots(&self, repo: Option<&str>) -> Result<Vec<SnapshotRow>> {
        Ok(match repo {
            Some(repo) => {
                let sql = format!(
                    "{} WHERE r.name = $1 ORDER BY s.created_at, s.id",
                    Self::SNAPSHOT_SELECT
                );
                sqlx::query_as(AssertSqlSafe(sql))
                    .bind(repo)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!(
                    "{} ORDER BY r.name, s.created_at, s.id",
                    Self::SNAPSHOT_SELECT
                );
                sqlx::query_as(AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await?
            }
        })
    }

    /// One snapshot.
    pub async fn snapshot(&self, repo: &str, name: &str) -> Result<SnapshotRow> {
        let sql = format!(
            "{} WHERE r.name = $1 AND s.name = $2",
            Self::SNAPSHOT_SELECT
        );
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(repo)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CatalogError::UnknownSnapshot {
                repo: repo.to_string(),
                snapshot: name.to_string(),
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

    /// Deletes a snapshot unless an alias points at it or served it within `grace_secs`
    /// (the error names them). Its publication and blobs stay for garbage collection.
    pub async fn delete_snapshot(&self, repo: &str, name: &str, grace_secs: i64) -> Result<()> {
        let snap = self.snapshot(repo, name).await?;
        let mut tx = self.pool.begin().await?;
        let mut users = Vec::new();
        let aliases: Vec<String> =
            sqlx::query_scalar("SELECT name FROM aliases WHERE snapshot_id = $1 ORDER BY name")
                .bind(snap.id)
                .fetch_all(&mut *tx)
                .await?;
        for alias in aliases {
            users.push(format!("alias {alias:?}"));
        }
        let views: Vec<(String, String)> = sqlx::query_as(
            "SELECT v.name, vs.name FROM view_snapshot_members m JOIN view_snapshots vs ON vs.id = m.view_snapshot_id \
             JOIN views v ON v.id = vs.view_id WHERE m.snapshot_id = $1 ORDER BY v.name, vs.name",
        )
        .bind(snap.id)
        .fetch_all(&mut *tx)
        .await?;
        for (view, snapshot) in views {
            users.push(format!("view snapshot {view}/{snapshot}"));
        }
        let cutoff = now() - grace_secs;
        let recent: Vec<String> = sqlx::query_scalar(
            "SELECT a.name FROM alias_history h JOIN aliases a ON a.id = h.alias_id \
             WHERE h.snapshot_id = $1 AND h.replaced_at > $2 ORDER BY a.name",
        )
        .bind(snap.id)
        .bind(cutoff)
        .fetch_all(&mut *tx)
        .await?;
        for alias in recent {
            users.push(format!(
                "alias {alias:?} served it until recently (grace period)"
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
}
