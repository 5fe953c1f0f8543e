//! Views: their `latest` composition, the stamp that tells it is current, and view snapshots (the members and the view frozen together).

use super::*;

impl Catalog {
    // ---- views --------------------------------------------------------------------

    /// Returns the id of view `name`, creating the row if needed.
    pub async fn ensure_view(&self, name: &str) -> Result<i64> {
        sqlx::query(
            "INSERT INTO views (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar("SELECT id FROM views WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    /// A repository's current content with package identities (view input).
    pub async fn member_packages(&self, repo_id: i64) -> Result<(Vec<MemberPackage>, i64)> {
        let mut tx = self.begin_read().await?;
        let version = Self::content_version(&mut tx, repo_id).await?;
        let rows: Vec<MemberRow> = sqlx::query_as(
            "SELECT p.id, p.name, p.arch, p.epoch, p.version, p.release, p.sha256, rp.location, \
             p.time_file FROM repo_packages rp JOIN packages p ON p.id = rp.package_id WHERE rp.repo_id = $1",
        )
        .bind(repo_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let packages = rows
            .into_iter()
            .map(|r| MemberPackage {
                package_id: r.id,
                nevra: crate::formats::diff::Nevra {
                    name: r.name,
                    arch: r.arch,
                    epoch: r.epoch,
                    version: r.version,
                    release: r.release,
                },
                sha256: r.sha256,
                location: r.location,
                time_file: r.time_file,
            })
            .collect();
        Ok((packages, version))
    }

    /// The stamp of the members' current content versions (see [`content_stamp`]).
    pub async fn current_stamp(&self, repo_ids: &[i64]) -> Result<String> {
        let mut conn = self.pool.acquire().await?;
        Self::stamp_of(&mut conn, repo_ids).await
    }

    pub(super) async fn stamp_of(conn: &mut AnyConnection, repo_ids: &[i64]) -> Result<String> {
        let mut versions = Vec::with_capacity(repo_ids.len());
        for id in repo_ids {
            versions.push((*id, Self::content_version(&mut *conn, *id).await?));
        }
        Ok(content_stamp(&versions))
    }

    /// A view's `latest` publication and the stamp of the member content it was
    /// composed from.
    pub async fn view_latest_stamp(&self, view_id: i64) -> Result<Option<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT latest_publication_id, latest_stamp FROM views WHERE id = $1 \
             AND latest_publication_id IS NOT NULL AND latest_stamp IS NOT NULL",
        )
        .bind(view_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Replaces a view's `latest` content and publication, in one transaction.
    /// `stamp` names the member content versions the placements were composed from.
    pub async fn set_view_latest(
        &self,
        view_id: i64,
        placements: &[(String, i64)],
        publication_id: i64,
        stamp: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.apply_latest(
            &mut tx,
            Space::Views,
            view_id,
            placements,
            true,
            publication_id,
        )
        .await?;
        sqlx::query("UPDATE views SET latest_stamp = $1 WHERE id = $2")
            .bind(stamp)
            .bind(view_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates, in one transaction, a snapshot named `name` of every member repository
    /// (each with its own publication) and the view snapshot over them. With
    /// [`ViewContent::Latest`] the view snapshot copies the view's `latest`; `Ok(None)`
    /// (and nothing written) when the members moved on since `latest` was composed.
    pub async fn create_view_snapshot(
        &self,
        view_id: i64,
        view: &str,
        name: &str,
        members: &[(i64, String, i64)],
        content: ViewContent<'_>,
    ) -> Result<Option<ViewSnapshotRow>> {
        let mut tx: Transaction<'_, Any> = self.pool.begin().await?;
        Self::check_name_free(
            &mut tx,
            Space::Views,
            view_id,
            &format!("view {view}"),
            name,
        )
        .await?;
        let publication_id = match content {
            ViewContent::Composed { publication_id, .. } => publication_id,
            ViewContent::Latest { stamp } => {
                let repo_ids: Vec<i64> = members.iter().map(|(id, _, _)| *id).collect();
                let now_stamp = Self::stamp_of(&mut tx, &repo_ids).await?;
                let (latest, latest_stamp): (Option<i64>, Option<String>) = sqlx::query_as(
                    "SELECT latest_publication_id, latest_stamp FROM views WHERE id = $1",
                )
                .bind(view_id)
                .fetch_one(&mut *tx)
                .await?;
                match latest {
                    Some(id) if now_stamp == stamp && latest_stamp.as_deref() == Some(stamp) => id,
                    _ => return Ok(None),
                }
            }
        };
        let vs_id: i64 = sqlx::query_scalar(
            "INSERT INTO view_snapshots (view_id, name, created_at, publication_id, package_count) \
             VALUES ($1, $2, $3, $4, 0) RETURNING id",
        )
        .bind(view_id)
        .bind(name)
        .bind(now())
        .bind(publication_id)
        .fetch_one(&mut *tx)
        .await?;
        // Each member's own snapshot is named after the view and the view snapshot
        // ("stack@v1"): no name a user can give has an "@", so two views sharing a
        // member, or the member's own snapshots, never collide with it.
        let member_name = member_snapshot_name(view, name);
        for (position, (repo_id, repo, member_pub)) in members.iter().enumerate() {
            let snapshot_id =
                Self::insert_snapshot(&mut tx, *repo_id, repo, &member_name, *member_pub).await?;
            sqlx::query(
                "INSERT INTO view_snapshot_members (view_snapshot_id, position, snapshot_id) VALUES ($1, $2, $3)",
            )
            .bind(vs_id)
            .bind(position as i64)
            .bind(snapshot_id)
            .execute(&mut *tx)
            .await?;
        }
        match content {
            ViewContent::Composed { placements, .. } => {
                self.insert_placements(
                    &mut tx,
                    "view_snapshot_packages",
                    "view_snapshot_id",
                    vs_id,
                    placements,
                )
                .await?;
            }
            ViewContent::Latest { .. } => {
                sqlx::query(
                    "INSERT INTO view_snapshot_packages (view_snapshot_id, package_id, location) \
                     SELECT $1, package_id, location FROM view_latest_packages WHERE view_id = $2",
                )
                .bind(vs_id)
                .bind(view_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        let package_count = Self::record_totals(&mut tx, Space::Views, vs_id).await?;
        tx.commit().await?;
        Ok(Some(ViewSnapshotRow {
            view: view.to_string(),
            name: name.to_string(),
            created_at: now(),
            package_count,
            members: members
                .iter()
                .map(|(_, r, _)| (r.clone(), name.to_string()))
                .collect(),
        }))
    }

    /// Snapshots of a view, oldest first.
    pub async fn view_snapshots(&self, view: &str) -> Result<Vec<ViewSnapshotRow>> {
        let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT vs.id, vs.name, vs.created_at, vs.package_count FROM view_snapshots vs \
             JOIN views v ON v.id = vs.view_id WHERE v.name = $1 ORDER BY vs.created_at, vs.id",
        )
        .bind(view)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for (id, name, created_at, package_count) in rows {
            let members: Vec<(String, String)> = sqlx::query_as(
                "SELECT rp.name, s.name FROM view_snapshot_members m JOIN snapshots s ON s.id = m.snapshot_id \
                 JOIN repos rp ON rp.id = s.repo_id WHERE m.view_snapshot_id = $1 ORDER BY m.position",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            out.push(ViewSnapshotRow {
                view: view.to_string(),
                name,
                created_at,
                package_count,
                members,
            });
        }
        Ok(out)
    }
}

/// A member repository's package, as [`Catalog::member_packages`] reads it.
#[derive(sqlx::FromRow)]
struct MemberRow {
    id: i64,
    name: String,
    arch: String,
    epoch: String,
    version: String,
    release: String,
    sha256: String,
    location: String,
    time_file: i64,
}

/// The name of the snapshot a view snapshot `name` of `view` makes of each member.
pub fn member_snapshot_name(view: &str, name: &str) -> String {
    format!("{view}@{name}")
}
