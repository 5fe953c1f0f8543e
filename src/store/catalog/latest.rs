//! `latest` of repositories and views: applying a new content to it (only the locations that change are written), and remembering what it served before, which stays servable under `latest` for the grace period.

use super::bulk::Insert;
use super::*;

/// A publication a `latest` served before, within the grace period.
#[derive(Debug, Clone, sqlx::FromRow)]
struct LatestBefore {
    /// The repository or view.
    owner: String,
    publication_id: i64,
    revision: i64,
}

/// A package a `latest` served at a location before, within the grace period.
#[derive(Debug, Clone, sqlx::FromRow)]
struct DisplacedFile {
    owner: String,
    #[sqlx(flatten)]
    file: TreeFile,
}

impl Catalog {
    /// Inside `tx`: makes `placements` (location → package id) part of the `latest`
    /// content of `owner_id` in `space` (with `whole`, all of it: other locations
    /// leave), remembers the packages that left or were replaced and the publication
    /// `latest` served, and points `latest` at `publication_id`. Locations whose
    /// package does not change are not written.
    pub(super) async fn apply_latest(
        &self,
        tx: &mut AnyConnection,
        space: Space,
        owner_id: i64,
        placements: &[(String, i64)],
        whole: bool,
        publication_id: i64,
    ) -> Result<()> {
        let t = space.tables();
        let (table, column) = super::pages::placement(t.latest_kind);
        let sql = format!("SELECT location, package_id FROM {table} WHERE {column} = $1");
        let current: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner_id)
            .fetch_all(&mut *tx)
            .await?;
        let new: HashMap<&str, i64> = placements.iter().map(|(l, id)| (l.as_str(), *id)).collect();
        let have: HashMap<&str, i64> = current.iter().map(|(l, id)| (l.as_str(), *id)).collect();
        let displaced: Vec<&(String, i64)> = current
            .iter()
            .filter(|(l, id)| match new.get(l.as_str()) {
                Some(n) => n != id,
                None => whole,
            })
            .collect();
        let changed: Vec<&(String, i64)> = placements
            .iter()
            .filter(|(l, id)| have.get(l.as_str()) != Some(id))
            .collect();
        let at = now();
        for chunk in displaced.chunks(BATCH_ROWS) {
            let mut owner = String::new();
            self.backend.placeholder(1, &mut owner);
            let list = self.backend.in_clause(2, chunk.len());
            let sql =
                format!("DELETE FROM {table} WHERE {column} = {owner} AND location IN ({list})");
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(owner_id);
            for (location, _) in chunk {
                q = q.bind(location.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        let (head, columns) = match space {
            Space::Repos => (
                "INSERT INTO repo_packages (repo_id, location, package_id, added_at)",
                4,
            ),
            Space::Views => (
                "INSERT INTO view_latest_packages (view_id, location, package_id)",
                3,
            ),
        };
        let insert = Insert {
            head,
            columns,
            tail: "",
            per_statement: BATCH_ROWS,
        };
        self.insert_rows(tx, &insert, &changed, |q, (location, id)| {
            let q = q.bind(owner_id).bind(location.as_str()).bind(*id);
            match space {
                Space::Repos => q.bind(at),
                Space::Views => q,
            }
        })
        .await?;
        let head = format!(
            "INSERT INTO latest_displaced ({}, location, package_id, displaced_at)",
            t.owner_col
        );
        let insert = Insert {
            head: &head,
            columns: 4,
            tail: "",
            per_statement: BATCH_ROWS,
        };
        self.insert_rows(tx, &insert, &displaced, |q, (location, id)| {
            q.bind(owner_id).bind(location.as_str()).bind(*id).bind(at)
        })
        .await?;
        self.point_latest(tx, space, owner_id, publication_id).await
    }

    /// Inside `tx`: points `latest` of `owner_id` at `publication_id`, remembering the
    /// publication it served before.
    pub(super) async fn point_latest(
        &self,
        tx: &mut AnyConnection,
        space: Space,
        owner_id: i64,
        publication_id: i64,
    ) -> Result<()> {
        let t = space.tables();
        let sql = format!(
            "INSERT INTO latest_history ({owner_col}, publication_id, replaced_at) \
             SELECT id, latest_publication_id, $1 FROM {owners} \
             WHERE id = $2 AND latest_publication_id IS NOT NULL AND latest_publication_id <> $3",
            owner_col = t.owner_col,
            owners = t.owners
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(now())
            .bind(owner_id)
            .bind(publication_id)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "UPDATE {} SET latest_publication_id = $1 WHERE id = $2",
            t.owners
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(publication_id)
            .bind(owner_id)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// What every `latest` of `space` served within the grace period (since `cutoff`)
    /// and no longer does, by owner, newest first: the files of the publications it
    /// served (dated by their revision) and the packages that left or were replaced.
    pub(super) async fn latest_before(
        &self,
        conn: &mut AnyConnection,
        space: Space,
        cutoff: i64,
    ) -> Result<HashMap<String, Vec<TreeFile>>> {
        let t = space.tables();
        let sql = format!(
            "SELECT o.name AS owner, h.publication_id, p.revision FROM latest_history h \
             JOIN {owners} o ON o.id = h.{owner_col} JOIN publications p ON p.id = h.publication_id \
             WHERE h.replaced_at > $1 ORDER BY h.replaced_at DESC",
            owners = t.owners,
            owner_col = t.owner_col
        );
        let publications: Vec<LatestBefore> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(cutoff)
            .fetch_all(&mut *conn)
            .await?;
        let sql = format!(
            "SELECT o.name AS owner, d.location AS path, p.sha256, p.size_package AS size, \
             p.time_file AS mtime FROM latest_displaced d \
             JOIN {owners} o ON o.id = d.{owner_col} JOIN packages p ON p.id = d.package_id \
             WHERE d.displaced_at > $1 ORDER BY d.displaced_at DESC",
            owners = t.owners,
            owner_col = t.owner_col
        );
        let packages: Vec<DisplacedFile> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(cutoff)
            .fetch_all(&mut *conn)
            .await?;
        let mut out: HashMap<String, Vec<TreeFile>> = HashMap::new();
        for before in publications {
            let files = Self::publication_files_on(&mut *conn, before.publication_id).await?;
            out.entry(before.owner)
                .or_default()
                .extend(files.into_iter().map(|f| TreeFile {
                    path: f.path,
                    sha256: f.sha256,
                    size: f.size,
                    mtime: before.revision,
                    sig_key_id: None,
                    sig_algorithm: None,
                }));
        }
        for d in packages {
            out.entry(d.owner).or_default().push(d.file);
        }
        Ok(out)
    }
}
