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
        Self::check_name_free(tx, Space::Repos, repo_id, repo, name).await?;
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
        Self::record_totals(tx, Space::Repos, id).await?;
        Ok(id)
    }

    /// Inside `tx`: refuses `name` for a new snapshot of `owner_id` (labelled `label` in
    /// errors) when a snapshot or an alias of it already has that name.
    pub(super) async fn check_name_free(
        tx: &mut AnyConnection,
        space: Space,
        owner_id: i64,
        label: &str,
        name: &str,
    ) -> Result<()> {
        let t = space.tables();
        let taken = |table: &str| {
            format!(
                "SELECT 1 FROM {table} WHERE {} = $1 AND name = $2",
                t.owner_col
            )
        };
        let alias = sqlx::query(AssertSqlSafe(taken(t.aliases)))
            .bind(owner_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if alias.is_some() {
            return Err(CatalogError::AliasExists {
                repo: label.to_string(),
                name: name.to_string(),
            });
        }
        let exists = sqlx::query(AssertSqlSafe(taken(t.snapshots)))
            .bind(owner_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(CatalogError::SnapshotExists {
                repo: label.to_string(),
                snapshot: name.to_string(),
            });
        }
        Ok(())
    }

    /// Inside `tx`: records the package count and total size of snapshot `id` of
    /// `space` from its placements. Returns the package count.
    pub(super) async fn record_totals(
        tx: &mut AnyConnection,
        space: Space,
        id: i64,
    ) -> Result<i64> {
        let t = space.tables();
        let (packages, target_col) = super::pages::placement(t.kind);
        let sql = format!(
            "UPDATE {snapshots} SET \
             package_count = (SELECT COUNT(*) FROM {packages} WHERE {target_col} = $1), \
             total_size = (SELECT CAST(COALESCE(SUM(p.size_package), 0) AS BIGINT) FROM {packages} sp \
                           JOIN packages p ON p.id = sp.package_id WHERE sp.{target_col} = $1) \
             WHERE id = $1 RETURNING package_count",
            snapshots = t.snapshots
        );
        Ok(sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?)
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

    /// Deletes snapshot `name` of repository or view `owner` unless an alias points at
    /// it, served it within `grace_secs`, or (a repository's) a view snapshot holds it;
    /// the error names them. Its publication and blobs stay for garbage collection.
    /// `_locks` (the owner's write locks) keep aliases and snapshots from changing
    /// meanwhile.
    pub async fn delete_snapshot(
        &self,
        _locks: &WriteLocks,
        space: Space,
        owner: &str,
        name: &str,
        grace_secs: i64,
    ) -> Result<()> {
        let t = space.tables();
        let label = match space {
            Space::Repos => owner.to_string(),
            Space::Views => format!("view {owner}"),
        };
        let mut tx = self.pool.begin().await?;
        let id = Self::named_id(&mut tx, space, t.snapshots, owner, name)
            .await?
            .ok_or_else(|| CatalogError::UnknownSnapshot {
                repo: label.clone(),
                snapshot: name.to_string(),
            })?;
        let users = Self::snapshot_users(&mut tx, space, id, now() - grace_secs).await?;
        if !users.is_empty() {
            return Err(CatalogError::SnapshotInUse {
                repo: label,
                snapshot: name.to_string(),
                users: users.join(", "),
            });
        }
        let (packages, _) = super::pages::placement(t.kind);
        let mut deletes = vec![
            format!("DELETE FROM {} WHERE {} = $1", t.history, t.target_col),
            format!("DELETE FROM {packages} WHERE {} = $1", t.target_col),
        ];
        if space == Space::Views {
            deletes.push("DELETE FROM view_snapshot_members WHERE view_snapshot_id = $1".into());
        }
        deletes.push(format!("DELETE FROM {} WHERE id = $1", t.snapshots));
        for sql in deletes {
            sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inside `tx`: the id of the row named `name` of owner `owner` in `table` (the
    /// snapshots or the aliases of `space`).
    pub(super) async fn named_id(
        tx: &mut AnyConnection,
        space: Space,
        table: &str,
        owner: &str,
        name: &str,
    ) -> Result<Option<i64>> {
        let t = space.tables();
        let sql = format!(
            "SELECT x.id FROM {table} x JOIN {owners} o ON o.id = x.{owner_col} \
             WHERE o.name = $1 AND x.name = $2",
            owners = t.owners,
            owner_col = t.owner_col
        );
        Ok(sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(owner)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?)
    }

    /// What keeps snapshot `id` of `space`: aliases pointing at it, view snapshots
    /// holding it (a repository's), aliases that served it after `cutoff`.
    async fn snapshot_users(
        tx: &mut AnyConnection,
        space: Space,
        id: i64,
        cutoff: i64,
    ) -> Result<Vec<String>> {
        let t = space.tables();
        let mut users = Vec::new();
        let sql = format!(
            "SELECT name FROM {} WHERE {} = $1 ORDER BY name",
            t.aliases, t.target_col
        );
        let aliases: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        users.extend(aliases.into_iter().map(|a| format!("alias {a:?}")));
        if space == Space::Repos {
            let views: Vec<(String, String)> = sqlx::query_as(
                "SELECT v.name, vs.name FROM view_snapshot_members m \
                 JOIN view_snapshots vs ON vs.id = m.view_snapshot_id \
                 JOIN views v ON v.id = vs.view_id WHERE m.snapshot_id = $1 ORDER BY v.name, vs.name",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            users.extend(
                views
                    .into_iter()
                    .map(|(view, snapshot)| format!("view snapshot {view}/{snapshot}")),
            );
        }
        let sql = format!(
            "SELECT a.name, MAX(h.replaced_at) FROM {history} h JOIN {aliases} a ON a.id = h.alias_id \
             WHERE h.{target} = $1 AND h.replaced_at > $2 GROUP BY a.name ORDER BY a.name",
            history = t.history,
            aliases = t.aliases,
            target = t.target_col
        );
        let recent: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
        let grace = now() - cutoff;
        users.extend(recent.into_iter().map(|(alias, replaced_at)| {
            let until = time::OffsetDateTime::from_unix_timestamp(replaced_at + grace)
                .ok()
                .and_then(|t| {
                    t.format(time::macros::format_description!(
                        "[year]-[month]-[day] [hour]:[minute] UTC"
                    ))
                    .ok()
                })
                .unwrap_or_else(|| format!("{} (unix time)", replaced_at + grace));
            format!("alias {alias:?} served it recently; it stays servable for the grace period, until {until}")
        }));
        Ok(users)
    }
}
