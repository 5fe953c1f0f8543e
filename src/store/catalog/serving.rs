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

impl Catalog {
    // ---- serving index ------------------------------------------------------------

    /// Every published tree of a namespace: each snapshot, and each `latest`.
    pub async fn trees(&self, conn: &mut AnyConnection, space: Space) -> Result<Vec<TreeRow>> {
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
        for r in snapshots {
            out.push(TreeRow {
                repo: r.owner,
                name: r.name,
                publication_id: r.publication_id,
                revision: r.revision,
                immutable: true,
                kind: t.kind,
            });
        }
        let sql = format!(
            "SELECT o.name AS owner, 'latest' AS name, o.latest_publication_id AS publication_id, \
             p.revision FROM {} o \
             JOIN publications p ON p.id = o.latest_publication_id",
            t.owners
        );
        let latest: Vec<PublishedTree> = sqlx::query_as(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?;
        for r in latest {
            out.push(TreeRow {
                repo: r.owner,
                name: r.name,
                publication_id: r.publication_id,
                revision: r.revision,
                immutable: false,
                kind: t.latest_kind,
            });
        }
        Ok(out)
    }

    /// The package files of a tree. A publication's content key covers every package
    /// and location, so all trees sharing a publication hold the same files.
    pub async fn tree_packages(
        &self,
        conn: &mut AnyConnection,
        tree: &TreeRow,
    ) -> Result<Vec<TreeFile>> {
        let sql = match tree.kind {
            TreeKind::RepoSnapshot => {
                "SELECT sp.location AS path, p.sha256, p.size_package AS size, p.time_file AS mtime FROM snapshot_packages sp \
                 JOIN packages p ON p.id = sp.package_id JOIN snapshots s ON s.id = sp.snapshot_id \
                 JOIN repos r ON r.id = s.repo_id WHERE r.name = $1 AND s.name = $2"
            }
            TreeKind::RepoLatest => {
                "SELECT rp.location AS path, p.sha256, p.size_package AS size, p.time_file AS mtime FROM repo_packages rp \
                 JOIN packages p ON p.id = rp.package_id JOIN repos r ON r.id = rp.repo_id \
                 WHERE r.name = $1"
            }
            TreeKind::ViewSnapshot => {
                "SELECT vp.location AS path, p.sha256, p.size_package AS size, p.time_file AS mtime FROM view_snapshot_packages vp \
                 JOIN packages p ON p.id = vp.package_id JOIN view_snapshots s ON s.id = vp.view_snapshot_id \
                 JOIN views v ON v.id = s.view_id WHERE v.name = $1 AND s.name = $2"
            }
            TreeKind::ViewLatest => {
                "SELECT vp.location AS path, p.sha256, p.size_package AS size, p.time_file AS mtime FROM view_latest_packages vp \
                 JOIN packages p ON p.id = vp.package_id JOIN views v ON v.id = vp.view_id \
                 WHERE v.name = $1"
            }
        };
        let mut q = sqlx::query_as(sql).bind(tree.repo.as_str());
        if matches!(tree.kind, TreeKind::RepoSnapshot | TreeKind::ViewSnapshot) {
            q = q.bind(tree.name.as_str());
        }
        Ok(q.fetch_all(&mut *conn).await?)
    }
}
