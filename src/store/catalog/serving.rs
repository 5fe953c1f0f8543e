//! The read model of the HTTP server: every servable tree and its files, loaded into the in-memory index.

use super::*;

impl Catalog {
    // ---- serving index ------------------------------------------------------------

    /// Every published tree of a namespace: each snapshot, and each `latest`.
    pub async fn trees(&self, conn: &mut AnyConnection, space: Space) -> Result<Vec<TreeRow>> {
        let t = space.tables();
        let mut out = Vec::new();
        let sql = format!(
            "SELECT o.name, s.name, s.publication_id, p.revision FROM {snapshots} s \
             JOIN {owners} o ON o.id = s.{owner_col} JOIN publications p ON p.id = s.publication_id",
            snapshots = t.snapshots,
            owners = t.owners,
            owner_col = t.owner_col
        );
        for r in sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?
        {
            out.push(TreeRow {
                repo: r.try_get(0)?,
                name: r.try_get(1)?,
                publication_id: r.try_get(2)?,
                revision: r.try_get(3)?,
                immutable: true,
                kind: t.kind,
            });
        }
        let sql = format!(
            "SELECT o.name, o.latest_publication_id, p.revision FROM {} o \
             JOIN publications p ON p.id = o.latest_publication_id",
            t.owners
        );
        for r in sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?
        {
            out.push(TreeRow {
                repo: r.try_get(0)?,
                name: "latest".to_string(),
                publication_id: r.try_get(1)?,
                revision: r.try_get(2)?,
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
                "SELECT sp.location, p.sha256, p.size_package, p.time_file FROM snapshot_packages sp \
                 JOIN packages p ON p.id = sp.package_id JOIN snapshots s ON s.id = sp.snapshot_id \
                 JOIN repos r ON r.id = s.repo_id WHERE r.name = $1 AND s.name = $2"
            }
            TreeKind::RepoLatest => {
                "SELECT rp.location, p.sha256, p.size_package, p.time_file FROM repo_packages rp \
                 JOIN packages p ON p.id = rp.package_id JOIN repos r ON r.id = rp.repo_id \
                 WHERE r.name = $1"
            }
            TreeKind::ViewSnapshot => {
                "SELECT vp.location, p.sha256, p.size_package, p.time_file FROM view_snapshot_packages vp \
                 JOIN packages p ON p.id = vp.package_id JOIN view_snapshots s ON s.id = vp.view_snapshot_id \
                 JOIN views v ON v.id = s.view_id WHERE v.name = $1 AND s.name = $2"
            }
            TreeKind::ViewLatest => {
                "SELECT vp.location, p.sha256, p.size_package, p.time_file FROM view_latest_packages vp \
                 JOIN packages p ON p.id = vp.package_id JOIN views v ON v.id = vp.view_id \
                 WHERE v.name = $1"
            }
        };
        let mut q = sqlx::query(sql).bind(tree.repo.as_str());
        if matches!(tree.kind, TreeKind::RepoSnapshot | TreeKind::ViewSnapshot) {
            q = q.bind(tree.name.as_str());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|r| {
                Ok(TreeFile {
                    path: r.try_get(0)?,
                    sha256: r.try_get(1)?,
                    size: r.try_get(2)?,
                    mtime: r.try_get(3)?,
                })
            })
            .collect()
    }
}
