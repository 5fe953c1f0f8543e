//! The read model of the HTTP server: every servable tree and its files, loaded into the in-memory index.

use super::*;

/// A published tree as the catalog stores it (a snapshot, or an owner's `latest`).
#[derive(sqlx::FromRow)]
struct PublishedTree {
    owner: String,
    name: String,
    publication_id: i64,
    revision: i64,
}

/// Every published tree and alias, as the server's index holds them.
#[derive(Debug, Default)]
pub struct ServingTrees {
    /// Snapshots and `latest` trees of repositories and views.
    pub trees: Vec<(Space, TreeRow)>,
    pub aliases: Vec<AliasTree>,
    /// What each `latest` served within the grace period and no longer does (newest
    /// first), by namespace and owner.
    pub latest_before: Vec<(Space, HashMap<String, Vec<TreeFile>>)>,
}

impl Catalog {
    // ---- serving index ------------------------------------------------------------

    /// Everything the server serves, read in one read transaction so it is one
    /// consistent state (trees sharing a publication share one file map, so a
    /// half-applied change seen by a later query would leak into every tree that shares
    /// it): every tree and alias (with what an alias served within `alias_grace_secs`),
    /// and, once per publication they use, `files(a tree of it, its metadata files,
    /// its packages)`.
    pub async fn serving_trees(
        &self,
        alias_grace_secs: i64,
        mut files: impl FnMut(&TreeRow, Vec<PublicationFile>, Vec<TreeFile>),
    ) -> Result<ServingTrees> {
        let mut tx = self.begin_read().await?;
        let mut out = ServingTrees::default();
        for space in [Space::Repos, Space::Views] {
            for tree in self.trees(&mut tx, space).await? {
                out.trees.push((space, tree));
            }
        }
        out.aliases = self.alias_trees(&mut tx, alias_grace_secs).await?;
        for space in [Space::Repos, Space::Views] {
            let before = self
                .latest_before(&mut tx, space, now() - alias_grace_secs)
                .await?;
            out.latest_before.push((space, before));
        }
        let mut used: Vec<&TreeRow> = out.trees.iter().map(|(_, t)| t).collect();
        for alias in &out.aliases {
            used.push(&alias.current);
            used.extend(&alias.previous);
        }
        let mut seen = HashSet::new();
        for tree in used {
            if seen.insert(tree.publication_id) {
                let metadata = Self::publication_files_on(&mut tx, tree.publication_id).await?;
                let packages = self.tree_packages(&mut tx, tree).await?;
                files(tree, metadata, packages);
            }
        }
        tx.rollback().await?;
        Ok(out)
    }

    /// Every published tree of a namespace: each snapshot, and each `latest`.
    async fn trees(&self, conn: &mut AnyConnection, space: Space) -> Result<Vec<TreeRow>> {
        let t = space.tables();
        let mut out = Vec::new();
        let sql = format!(
            "SELECT o.name AS owner, s.name, s.publication_id, p.revision FROM {snapshots} s \
             JOIN {owners} o ON o.id = s.{owner_col} JOIN publications p ON p.id = s.publication_id",
            snapshots = t.snapshots,
            owners = t.owners,
            owner_col = t.owner_col
        );
        let snapshots: Vec<PublishedTree> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?;
        let sql = format!(
            "SELECT o.name AS owner, 'latest' AS name, o.latest_publication_id AS publication_id, \
             p.revision FROM {} o \
             JOIN publications p ON p.id = o.latest_publication_id",
            t.owners
        );
        let latest: Vec<PublishedTree> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?;
        let trees = |rows: Vec<PublishedTree>, immutable: bool, kind: TreeKind| {
            rows.into_iter().map(move |r| TreeRow {
                repo: r.owner,
                name: r.name,
                publication_id: r.publication_id,
                revision: r.revision,
                immutable,
                kind,
            })
        };
        out.extend(trees(snapshots, true, t.kind));
        out.extend(trees(latest, false, t.latest_kind));
        Ok(out)
    }

    /// The package files of a tree. A publication's content key covers every package
    /// and location, so all trees sharing a publication hold the same files.
    async fn tree_packages(
        &self,
        conn: &mut AnyConnection,
        tree: &TreeRow,
    ) -> Result<Vec<TreeFile>> {
        let space = match tree.kind {
            TreeKind::RepoSnapshot | TreeKind::RepoLatest => Space::Repos,
            TreeKind::ViewSnapshot | TreeKind::ViewLatest => Space::Views,
        };
        let t = space.tables();
        let (table, column) = super::pages::placement(tree.kind);
        let select = format!(
            "SELECT x.location AS path, p.sha256, p.size_package AS size, p.time_file AS mtime, \
             p.sig_key_id, p.sig_algorithm FROM {table} x JOIN packages p ON p.id = x.package_id"
        );
        let snapshot = tree.kind == t.kind;
        let sql = if snapshot {
            format!(
                "{select} JOIN {snapshots} s ON s.id = x.{column} \
                 JOIN {owners} o ON o.id = s.{owner_col} WHERE o.name = $1 AND s.name = $2",
                snapshots = t.snapshots,
                owners = t.owners,
                owner_col = t.owner_col
            )
        } else {
            format!(
                "{select} JOIN {owners} o ON o.id = x.{column} WHERE o.name = $1",
                owners = t.owners
            )
        };
        let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(tree.repo.as_str());
        if snapshot {
            q = q.bind(tree.name.as_str());
        }
        Ok(q.fetch_all(&mut *conn).await?)
    }
}
