//! Aliases (`prod`, `stable`) of repositories and views, their history, and the trees an alias still serves during its grace period.

use super::*;

impl Catalog {
    // ---- aliases ------------------------------------------------------------------

    /// Points alias `name` of repository or view `owner` at its snapshot `snapshot`, in
    /// one transaction; the snapshot it pointed at before (returned) is remembered for
    /// the grace period. `_locks` (the owner's write locks) keep snapshots from being
    /// created or deleted meanwhile.
    pub async fn set_alias(
        &self,
        _locks: &WriteLocks,
        space: Space,
        owner: &str,
        name: &str,
        snapshot: &str,
    ) -> Result<Option<String>> {
        let t = space.tables();
        let unknown = || CatalogError::UnknownSnapshot {
            repo: owner.to_string(),
            snapshot: snapshot.to_string(),
        };
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT o.id, s.id FROM {owners} o JOIN {snapshots} s ON s.{owner_col} = o.id \
             WHERE o.name = $1 AND s.name = $2",
            owners = t.owners,
            snapshots = t.snapshots,
            owner_col = t.owner_col
        );
        let (owner_id, target): (i64, i64) = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner)
            .bind(snapshot)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(unknown)?;
        let sql = format!(
            "SELECT 1 FROM {} WHERE {} = $1 AND name = $2",
            t.snapshots, t.owner_col
        );
        let shadow = sqlx::query(AssertSqlSafe(sql))
            .bind(owner_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if shadow.is_some() {
            return Err(CatalogError::AliasShadowsSnapshot {
                repo: owner.to_string(),
                name: name.to_string(),
            });
        }
        let sql = format!(
            "SELECT a.id, a.{target_col}, s.name FROM {aliases} a JOIN {snapshots} s ON s.id = a.{target_col} \
             WHERE a.{owner_col} = $1 AND a.name = $2",
            target_col = t.target_col,
            aliases = t.aliases,
            snapshots = t.snapshots,
            owner_col = t.owner_col
        );
        let existing: Option<(i64, i64, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let previous = match existing {
            Some((alias_id, old, old_name)) => {
                if old != target {
                    let sql = format!(
                        "INSERT INTO {} (alias_id, {}, replaced_at) VALUES ($1, $2, $3)",
                        t.history, t.target_col
                    );
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(alias_id)
                        .bind(old)
                        .bind(now())
                        .execute(&mut *tx)
                        .await?;
                }
                let sql = format!(
                    "UPDATE {} SET {} = $1, updated_at = $2 WHERE id = $3",
                    t.aliases, t.target_col
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(target)
                    .bind(now())
                    .bind(alias_id)
                    .execute(&mut *tx)
                    .await?;
                Some(old_name)
            }
            None => {
                let sql = format!(
                    "INSERT INTO {} ({}, name, {}, updated_at) VALUES ($1, $2, $3, $4)",
                    t.aliases, t.owner_col, t.target_col
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(owner_id)
                    .bind(name)
                    .bind(target)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                None
            }
        };
        tx.commit().await?;
        Ok(previous)
    }

    /// Removes alias `name` of repository or view `owner`, with its history: its URL
    /// stops answering at once. `_locks` (the owner's write locks) keep snapshots and
    /// aliases from changing meanwhile.
    pub async fn delete_alias(
        &self,
        _locks: &WriteLocks,
        space: Space,
        owner: &str,
        name: &str,
    ) -> Result<()> {
        let t = space.tables();
        let mut tx = self.pool.begin().await?;
        let id = Self::named_id(&mut tx, space, t.aliases, owner, name)
            .await?
            .ok_or_else(|| CatalogError::UnknownAlias {
                repo: owner.to_string(),
                alias: name.to_string(),
            })?;
        for sql in [
            format!("DELETE FROM {} WHERE alias_id = $1", t.history),
            format!("DELETE FROM {} WHERE id = $1", t.aliases),
        ] {
            sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Aliases of one repository (or all).
    pub async fn aliases(&self, repo: Option<&str>) -> Result<Vec<AliasRow>> {
        Ok(sqlx::query_as(
            "SELECT r.name AS repo, a.name, s.name AS snapshot, a.updated_at FROM aliases a \
             JOIN repos r ON r.id = a.repo_id JOIN snapshots s ON s.id = a.snapshot_id \
             WHERE $1 = '' OR r.name = $1 ORDER BY r.name, a.name",
        )
        .bind(repo.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Aliases of view `view` (`repo` names the view in the rows).
    pub async fn view_aliases(&self, view: &str) -> Result<Vec<AliasRow>> {
        Ok(sqlx::query_as(
            "SELECT v.name AS repo, a.name, s.name AS snapshot, a.updated_at FROM view_aliases a \
             JOIN views v ON v.id = a.view_id JOIN view_snapshots s ON s.id = a.view_snapshot_id \
             WHERE v.name = $1 ORDER BY a.name",
        )
        .bind(view)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every alias (of repositories and views) with its current tree and the trees it
    /// served within `grace_secs`.
    pub(super) async fn alias_trees(
        &self,
        conn: &mut AnyConnection,
        grace_secs: i64,
    ) -> Result<Vec<AliasTree>> {
        let cutoff = now() - grace_secs;
        let mut out = Vec::new();
        for space in [Space::Repos, Space::Views] {
            let t = space.tables();
            let sql = format!(
                "SELECT a.id, o.name AS owner, a.name, s.name AS snapshot, s.publication_id, \
                 p.revision FROM {aliases} a \
                 JOIN {owners} o ON o.id = a.{owner_col} JOIN {snapshots} s ON s.id = a.{target_col} \
                 JOIN publications p ON p.id = s.publication_id",
                aliases = t.aliases,
                owners = t.owners,
                owner_col = t.owner_col,
                snapshots = t.snapshots,
                target_col = t.target_col
            );
            let rows: Vec<AliasTreeRow> = sqlx::query_as(AssertSqlSafe(sql))
                .fetch_all(&mut *conn)
                .await?;
            for r in rows {
                let sql = format!(
                    "SELECT s.name, s.publication_id, p.revision FROM {history} h \
                     JOIN {snapshots} s ON s.id = h.{target_col} JOIN publications p ON p.id = s.publication_id \
                     WHERE h.alias_id = $1 AND h.replaced_at > $2 ORDER BY h.replaced_at DESC",
                    history = t.history,
                    snapshots = t.snapshots,
                    target_col = t.target_col
                );
                let served: Vec<ServedSnapshot> = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(r.id)
                    .bind(cutoff)
                    .fetch_all(&mut *conn)
                    .await?;
                let tree = |snapshot: String, publication_id: i64, revision: i64| TreeRow {
                    repo: r.owner.clone(),
                    name: snapshot,
                    publication_id,
                    revision,
                    immutable: true,
                    kind: t.kind,
                };
                let previous = served
                    .into_iter()
                    .map(|p| tree(p.name, p.publication_id, p.revision))
                    .collect();
                out.push(AliasTree {
                    space,
                    current: tree(r.snapshot, r.publication_id, r.revision),
                    name: r.name,
                    previous,
                    repo: r.owner,
                });
            }
        }
        Ok(out)
    }
}

/// An alias with the snapshot it points at, as [`Catalog::alias_trees`] reads it.
#[derive(sqlx::FromRow)]
struct AliasTreeRow {
    id: i64,
    owner: String,
    name: String,
    snapshot: String,
    publication_id: i64,
    revision: i64,
}

/// A snapshot an alias served before, as [`Catalog::alias_trees`] reads it.
#[derive(sqlx::FromRow)]
struct ServedSnapshot {
    name: String,
    publication_id: i64,
    revision: i64,
}
