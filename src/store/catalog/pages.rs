//! Reads for the web pages: overviews of repositories and views, their snapshots and
//! sync history, a tree's packages (searchable, one page at a time), where a package
//! is published, and the input of a snapshot diff. Every query is generic over the
//! namespace ([`Space`]) and bounded by a page size or an owner.

use std::collections::HashMap;

use sqlx::AssertSqlSafe;

use super::{Catalog, PublicationFile, Result, Space, SyncRun, TreeKind, SYNC_RUN_COLUMNS};

/// A repository or view on the overview page.
#[derive(Debug, Clone, Default)]
pub struct OwnerSummary {
    pub name: String,
    /// Packages and bytes of the current content (repository) or `latest` (view).
    pub packages: i64,
    pub size: i64,
    pub snapshots: i64,
    pub newest_snapshot: Option<String>,
    /// (alias, snapshot it points at).
    pub aliases: Vec<(String, String)>,
    /// Repositories only.
    pub last_sync: Option<SyncRun>,
}

/// Package count and size of each owner's current content, remembered with the
/// content version they were computed at, so the overview sums only what changed.
#[derive(Debug, Default)]
pub(super) struct SizeCache {
    /// owner id → (version stamp, packages, bytes)
    entries: HashMap<i64, (String, i64, i64)>,
}

/// A snapshot as the owner's page lists it.
#[derive(Debug, Clone)]
pub struct PageSnapshot {
    pub name: String,
    pub created_at: i64,
    pub package_count: i64,
    pub total_size: i64,
    /// Aliases pointing at it.
    pub aliases: Vec<String>,
}

/// A tree a page shows: `latest`, a snapshot, or an alias (resolved).
#[derive(Debug, Clone)]
pub struct PageTree {
    pub kind: TreeKind,
    /// The repository or view id (for `latest`) or the snapshot id.
    pub id: i64,
    /// The snapshot an alias points at.
    pub alias_of: Option<String>,
    pub created_at: Option<i64>,
}

/// A package row of a tree page.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PackageRow {
    pub sha256: String,
    pub name: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub size: i64,
    pub summary: String,
    pub location: String,
    /// The header signature's issuer key ID (see `PackageSignature`).
    pub sig_key_id: Option<String>,
    /// `none` when unsigned; `None` while not read.
    pub sig_algorithm: Option<String>,
}

/// Where a package is published: (namespace, owner, tree, location).
#[derive(Debug, Clone)]
pub struct Place {
    pub space: Space,
    pub owner: String,
    pub tree: String,
    pub location: String,
}

/// The placement table of a tree kind and its owner column.
pub(super) fn placement(kind: TreeKind) -> (&'static str, &'static str) {
    match kind {
        TreeKind::RepoSnapshot => ("snapshot_packages", "snapshot_id"),
        TreeKind::RepoLatest => ("repo_packages", "repo_id"),
        TreeKind::ViewSnapshot => ("view_snapshot_packages", "view_snapshot_id"),
        TreeKind::ViewLatest => ("view_latest_packages", "view_id"),
    }
}

/// A search fetches up to this many matches in its one scan before counting apart.
const SEARCH_WINDOW: i64 = 1000;

/// A LIKE pattern matching names that contain `term` (case-insensitive, `\` escapes).
fn contains_pattern(term: &str) -> String {
    let mut p = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Catalog {
    /// Every repository or view with its current size, snapshots, aliases and (for
    /// repositories) last sync.
    pub async fn page_owners(&self, space: Space) -> Result<Vec<OwnerSummary>> {
        let slot = match space {
            Space::Repos => 0,
            Space::Views => 1,
        };
        let t = space.tables();
        let (current, _) = placement(t.latest_kind);
        let mut tx = self.begin_read().await?;
        let mut out: Vec<(i64, OwnerSummary)> = Vec::new();
        let sql = format!("SELECT id, name FROM {} ORDER BY name", t.owners);
        let owners: Vec<(i64, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await?;
        for (id, name) in owners {
            let summary = OwnerSummary {
                name,
                ..Default::default()
            };
            out.push((id, summary));
        }
        let index: HashMap<i64, usize> = out
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        // What each owner's current content is at: repositories count every change,
        // a view's latest is named by its publication and member stamp.
        let sql = match space {
            Space::Repos => "SELECT id, CAST(content_version AS TEXT) FROM repos",
            Space::Views => {
                "SELECT id, COALESCE(CAST(latest_publication_id AS TEXT), '') || '/' || \
                 COALESCE(latest_stamp, '') FROM views"
            }
        };
        let stamps: HashMap<i64, String> = sqlx::query_as::<_, (i64, String)>(sql)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        let mut known: HashMap<i64, (String, i64, i64)> = match self.sizes.lock() {
            Ok(c) => c[slot].entries.clone(),
            Err(_) => HashMap::new(),
        };
        let stale: Vec<i64> = stamps
            .iter()
            .filter(|(id, stamp)| known.get(id).map(|e| &e.0) != Some(*stamp))
            .map(|(id, _)| *id)
            .collect();
        let select = |ids: &str| {
            format!(
                "SELECT c.{owner}, COUNT(*), CAST(COALESCE(SUM(p.size_package), 0) AS BIGINT) \
                 FROM {current} c JOIN packages p ON p.id = c.package_id \
                 WHERE c.{owner} IN ({ids}) GROUP BY c.{owner}",
                owner = t.owner_col,
            )
        };
        let sizes: Vec<(i64, i64, i64)> = self.select_in(&mut tx, select, &[], &stale).await?;
        let found: HashMap<i64, (i64, i64)> = sizes
            .into_iter()
            .map(|(owner, n, size)| (owner, (n, size)))
            .collect();
        for id in &stale {
            let (n, size) = found.get(id).copied().unwrap_or((0, 0));
            let stamp = stamps.get(id).cloned().unwrap_or_default();
            known.insert(*id, (stamp, n, size));
        }
        for (id, o) in &mut out {
            if let Some((_, n, size)) = known.get(id) {
                o.packages = *n;
                o.size = *size;
            }
        }
        if let Ok(mut c) = self.sizes.lock() {
            c[slot].entries = known;
        }
        let sql = format!(
            "SELECT s.{owner}, s.name, (SELECT COUNT(*) FROM {snaps} c WHERE c.{owner} = s.{owner}) \
             FROM {snaps} s WHERE s.id = (SELECT s2.id FROM {snaps} s2 WHERE s2.{owner} = s.{owner} \
             ORDER BY s2.created_at DESC, s2.id DESC LIMIT 1)",
            owner = t.owner_col,
            snaps = t.snapshots
        );
        let newest: Vec<(i64, String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await?;
        for (owner, name, count) in newest {
            if let Some(&i) = index.get(&owner) {
                out[i].1.newest_snapshot = Some(name);
                out[i].1.snapshots = count;
            }
        }
        let sql = format!(
            "SELECT a.{owner}, a.name, s.name FROM {aliases} a JOIN {snaps} s ON s.id = a.{target} \
             ORDER BY a.name",
            owner = t.owner_col,
            aliases = t.aliases,
            snaps = t.snapshots,
            target = t.target_col
        );
        let aliases: Vec<(i64, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await?;
        for (owner, alias, snapshot) in aliases {
            if let Some(&i) = index.get(&owner) {
                out[i].1.aliases.push((alias, snapshot));
            }
        }
        if space == Space::Repos {
            let sql = format!(
                "SELECT repo_id, {SYNC_RUN_COLUMNS} FROM sync_runs \
                 WHERE id IN (SELECT MAX(id) FROM sync_runs GROUP BY repo_id)"
            );
            let runs: Vec<LastRun> = sqlx::query_as(AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await?;
            for r in runs {
                if let Some(&i) = index.get(&r.repo_id) {
                    out[i].1.last_sync = Some(r.run);
                }
            }
        }
        tx.commit().await?;
        Ok(out.into_iter().map(|(_, o)| o).collect())
    }

    /// The snapshots of one repository or view (newest first), with the aliases that
    /// point at each; `None` when there is no such owner.
    pub async fn page_snapshots(
        &self,
        space: Space,
        owner: &str,
    ) -> Result<Option<Vec<PageSnapshot>>> {
        let t = space.tables();
        let mut tx = self.begin_read().await?;
        let sql = format!("SELECT id FROM {} WHERE name = $1", t.owners);
        let Some(owner_id): Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT s.name, s.created_at, s.package_count, s.total_size, \
             (SELECT a.name FROM {aliases} a WHERE a.{target} = s.id ORDER BY a.name LIMIT 1) \
                AS first_alias, \
             (SELECT COUNT(*) FROM {aliases} a WHERE a.{target} = s.id) AS alias_count \
             FROM {snaps} s WHERE s.{owner} = $1 ORDER BY s.created_at DESC, s.id DESC",
            aliases = t.aliases,
            target = t.target_col,
            snaps = t.snapshots,
            owner = t.owner_col
        );
        let mut out = Vec::new();
        let mut with_many = Vec::new();
        let rows: Vec<SnapshotLine> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner_id)
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            if r.alias_count > 1 {
                with_many.push(out.len());
            }
            out.push(PageSnapshot {
                name: r.name,
                created_at: r.created_at,
                package_count: r.package_count,
                total_size: r.total_size,
                aliases: r.first_alias.into_iter().collect(),
            });
        }
        if !with_many.is_empty() {
            let sql = format!(
                "SELECT s.name, a.name FROM {aliases} a JOIN {snaps} s ON s.id = a.{target} \
                 WHERE a.{owner} = $1 ORDER BY a.name",
                aliases = t.aliases,
                target = t.target_col,
                snaps = t.snapshots,
                owner = t.owner_col
            );
            let mut by_snapshot: HashMap<String, Vec<String>> = HashMap::new();
            let pairs: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(owner_id)
                .fetch_all(&mut *tx)
                .await?;
            for (snapshot, alias) in pairs {
                by_snapshot.entry(snapshot).or_default().push(alias);
            }
            for i in with_many {
                if let Some(all) = by_snapshot.remove(&out[i].name) {
                    out[i].aliases = all;
                }
            }
        }
        tx.commit().await?;
        Ok(Some(out))
    }

    /// Resolves `latest`, a snapshot name or an alias of a repository or view.
    pub async fn page_tree(
        &self,
        space: Space,
        owner: &str,
        tree: &str,
    ) -> Result<Option<PageTree>> {
        let t = space.tables();
        let mut tx = self.begin_read().await?;
        let sql = format!(
            "SELECT id FROM {} WHERE name = $1 AND latest_publication_id IS NOT NULL",
            t.owners
        );
        let found = if tree == "latest" {
            sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?
                .map(|id| PageTree {
                    kind: t.latest_kind,
                    id,
                    alias_of: None,
                    created_at: None,
                })
        } else {
            let sql = format!(
                "SELECT s.id, s.created_at, NULL AS alias_of FROM {snaps} s \
                 JOIN {owners} o ON o.id = s.{owner} WHERE o.name = $1 AND s.name = $2 \
                 UNION ALL \
                 SELECT s.id, s.created_at, s.name AS alias_of FROM {aliases} a JOIN {owners} o ON o.id = a.{owner} \
                 JOIN {snaps} s ON s.id = a.{target} WHERE o.name = $1 AND a.name = $2",
                snaps = t.snapshots,
                owners = t.owners,
                owner = t.owner_col,
                aliases = t.aliases,
                target = t.target_col
            );
            sqlx::query_as::<_, ResolvedTree>(AssertSqlSafe(sql))
                .bind(owner)
                .bind(tree)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| PageTree {
                    kind: t.kind,
                    id: r.id,
                    alias_of: r.alias_of,
                    created_at: Some(r.created_at),
                })
        };
        tx.commit().await?;
        Ok(found)
    }

    /// What makes a tree an installation tree: its `.treeinfo`, images and other tree
    /// files, and every `repomd.xml` (one per variant repository), by path. Empty for
    /// a tree without a `.treeinfo`.
    pub async fn page_tree_files(&self, tree: &PageTree) -> Result<Vec<PublicationFile>> {
        let publication = publication_of(tree.kind);
        let sql = format!(
            "SELECT path, kind, sha256, size FROM publication_files \
             WHERE publication_id = ({publication}) \
             AND (kind IN ('image', 'tree', 'treeinfo') OR path LIKE '%repodata/repomd.xml') \
             ORDER BY path"
        );
        let files: Vec<PublicationFile> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(tree.id)
            .fetch_all(&self.pool)
            .await?;
        if !files.iter().any(|f| f.kind == "treeinfo") {
            return Ok(Vec::new());
        }
        Ok(files)
    }

    /// The metadata file of type `kind` (`updateinfo`, `group`, …) a tree publishes.
    pub async fn page_tree_record(
        &self,
        tree: &PageTree,
        kind: &str,
    ) -> Result<Option<PublicationFile>> {
        let publication = publication_of(tree.kind);
        let sql = format!(
            "SELECT path, kind, sha256, size FROM publication_files \
             WHERE publication_id = ({publication}) AND kind = $2 ORDER BY path LIMIT 1"
        );
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(tree.id)
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The packages of a tree in location order, `limit` from `offset`, whose names
    /// contain `search` (all when empty), only the unsigned ones with `unsigned`; and
    /// how many there are in all.
    pub async fn page_packages(
        &self,
        tree: &PageTree,
        search: &str,
        unsigned: bool,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<PackageRow>)> {
        let (table, owner) = placement(tree.kind);
        let everything = search.is_empty() && !unsigned;
        let filter = if everything {
            String::new()
        } else if unsigned {
            " AND LOWER(p.name) LIKE $2 ESCAPE '\\' AND p.sig_algorithm = 'none'".to_string()
        } else {
            " AND LOWER(p.name) LIKE $2 ESCAPE '\\'".to_string()
        };
        let mut tx = self.begin_read().await?;
        let select = format!(
            "SELECT p.sha256, p.name, p.epoch, p.version, p.release, p.arch, p.size_package AS size, \
             p.summary, t.location, p.sig_key_id, p.sig_algorithm FROM {table} t \
             JOIN packages p ON p.id = t.package_id WHERE t.{owner} = $1{filter} ORDER BY t.location"
        );
        let (total, rows) = if everything {
            // Index-only: the placement table's primary key starts with the owner.
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE {owner} = $1");
            let total: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(tree.id)
                .fetch_one(&mut *tx)
                .await?;
            let sql = format!("{select} LIMIT $2 OFFSET $3");
            let rows = sqlx::query_as(AssertSqlSafe(sql))
                .bind(tree.id)
                .bind(limit)
                .bind(offset)
                .fetch_all(&mut *tx)
                .await?;
            (total, rows)
        } else {
            // A search scans the tree once: when it matches few packages, that scan
            // yields all of them (and their count); only a broad one is counted apart.
            let fetch = offset
                .saturating_add(limit)
                .max(SEARCH_WINDOW)
                .saturating_add(1);
            let sql = format!("{select} LIMIT $3");
            let mut all: Vec<PackageRow> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(tree.id)
                .bind(contains_pattern(search))
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?;
            let total = if (all.len() as i64) < fetch {
                all.len() as i64
            } else {
                let sql = format!(
                    "SELECT COUNT(*) FROM {table} t JOIN packages p ON p.id = t.package_id \
                     WHERE t.{owner} = $1{filter}"
                );
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(tree.id)
                    .bind(contains_pattern(search))
                    .fetch_one(&mut *tx)
                    .await?
            };
            let start = (offset.max(0) as usize).min(all.len());
            let end = start.saturating_add(limit.max(0) as usize).min(all.len());
            all.truncate(end);
            let rows = all.split_off(start);
            (total, rows)
        };
        tx.commit().await?;
        Ok((total, rows))
    }

    /// Every tree that publishes the package `sha256` (at most `limit`).
    pub async fn package_places(&self, sha256: &str, limit: i64) -> Result<Vec<Place>> {
        let rows: Vec<PlaceRow> = sqlx::query_as(
            "SELECT 'r' AS space, r.name AS owner, s.name AS tree, sp.location FROM snapshot_packages sp \
               JOIN snapshots s ON s.id = sp.snapshot_id JOIN repos r ON r.id = s.repo_id \
               JOIN packages p ON p.id = sp.package_id WHERE p.sha256 = $1 \
             UNION ALL \
             SELECT 'r', r.name, 'latest', rp.location FROM repo_packages rp \
               JOIN repos r ON r.id = rp.repo_id JOIN packages p ON p.id = rp.package_id \
               WHERE p.sha256 = $1 \
             UNION ALL \
             SELECT 'v', v.name, s.name, vp.location FROM view_snapshot_packages vp \
               JOIN view_snapshots s ON s.id = vp.view_snapshot_id JOIN views v ON v.id = s.view_id \
               JOIN packages p ON p.id = vp.package_id WHERE p.sha256 = $1 \
             UNION ALL \
             SELECT 'v', v.name, 'latest', vp.location FROM view_latest_packages vp \
               JOIN views v ON v.id = vp.view_id JOIN packages p ON p.id = vp.package_id \
               WHERE p.sha256 = $1 \
             LIMIT $2",
        )
        .bind(sha256)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Place {
                space: if r.space == "v" {
                    Space::Views
                } else {
                    Space::Repos
                },
                owner: r.owner,
                tree: r.tree,
                location: r.location,
            })
            .collect())
    }

    /// The package identities a diff of two trees needs: only those of the name.arch
    /// groups whose package sets differ leave SQL.
    pub async fn tree_diff_candidates(
        &self,
        a: &PageTree,
        b: &PageTree,
    ) -> Result<(
        Vec<crate::formats::diff::Nevra>,
        Vec<crate::formats::diff::Nevra>,
    )> {
        let (ta, oa) = placement(a.kind);
        let (tb, ob) = placement(b.kind);
        let sql = format!(
            "WITH changed AS ( \
               SELECT p.name, p.arch FROM {ta} x JOIN packages p ON p.id = x.package_id \
                WHERE x.{oa} = $1 AND x.package_id NOT IN (SELECT package_id FROM {tb} WHERE {ob} = $2) \
               UNION \
               SELECT p.name, p.arch FROM {tb} x JOIN packages p ON p.id = x.package_id \
                WHERE x.{ob} = $2 AND x.package_id NOT IN (SELECT package_id FROM {ta} WHERE {oa} = $1)) \
             SELECT 0 AS side, p.name, p.arch, p.epoch, p.version, p.release FROM {ta} x \
               JOIN packages p ON p.id = x.package_id JOIN changed c ON c.name = p.name AND c.arch = p.arch \
              WHERE x.{oa} = $1 \
             UNION ALL \
             SELECT 1, p.name, p.arch, p.epoch, p.version, p.release FROM {tb} x \
               JOIN packages p ON p.id = x.package_id JOIN changed c ON c.name = p.name AND c.arch = p.arch \
              WHERE x.{ob} = $2"
        );
        let rows: Vec<SideNevra> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(a.id)
            .bind(b.id)
            .fetch_all(&self.pool)
            .await?;
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for r in rows {
            let n = crate::formats::diff::Nevra {
                name: r.name,
                arch: r.arch,
                epoch: r.epoch,
                version: r.version,
                release: r.release,
            };
            if r.side == 0 {
                left.push(n);
            } else {
                right.push(n);
            }
        }
        Ok((left, right))
    }

    /// The last `limit` syncs of repository `repo`, newest first (empty when unknown).
    pub async fn page_sync_runs(&self, repo: &str, limit: i64) -> Result<Vec<SyncRun>> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM repos WHERE name = $1")
            .bind(repo)
            .fetch_optional(&self.pool)
            .await?;
        match id {
            Some(id) => self.sync_runs(id, limit).await,
            None => Ok(Vec::new()),
        }
    }
}

/// A snapshot line of [`Catalog::page_snapshots`].
#[derive(sqlx::FromRow)]
struct SnapshotLine {
    name: String,
    created_at: i64,
    package_count: i64,
    total_size: i64,
    first_alias: Option<String>,
    alias_count: i64,
}

/// A tree a page names, resolved to its snapshot (see [`Catalog::page_tree`]).
#[derive(sqlx::FromRow)]
struct ResolvedTree {
    id: i64,
    created_at: i64,
    alias_of: Option<String>,
}

/// A tree publishing a package (see [`Catalog::package_places`]).
#[derive(sqlx::FromRow)]
struct PlaceRow {
    space: String,
    owner: String,
    tree: String,
    location: String,
}

/// A package identity on one side of a diff (0: the first tree).
#[derive(sqlx::FromRow)]
struct SideNevra {
    side: i64,
    name: String,
    arch: String,
    epoch: String,
    version: String,
    release: String,
}

/// Each repository's last sync run.
#[derive(sqlx::FromRow)]
struct LastRun {
    repo_id: i64,
    #[sqlx(flatten)]
    run: SyncRun,
}

/// The query (`$1`: the tree's id) for the publication a tree of kind `kind` serves.
fn publication_of(kind: TreeKind) -> &'static str {
    match kind {
        TreeKind::RepoSnapshot => "SELECT publication_id FROM snapshots WHERE id = $1",
        TreeKind::RepoLatest => "SELECT latest_publication_id FROM repos WHERE id = $1",
        TreeKind::ViewSnapshot => "SELECT publication_id FROM view_snapshots WHERE id = $1",
        TreeKind::ViewLatest => "SELECT latest_publication_id FROM views WHERE id = $1",
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn search_terms_are_literal() {
        assert_eq!(contains_pattern("Py_3%"), "%py\\_3\\%%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
    }
}
