//! Publications: rendered repodata, one per distinct content, found by its content key.

use super::*;

impl Catalog {
    // ---- publications -------------------------------------------------------------

    /// The publication with `content_key`, if one was made before.
    pub async fn publication_by_key(&self, content_key: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM publications WHERE content_key = $1")
                .bind(content_key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The content key of a publication.
    pub async fn publication_key(&self, publication_id: i64) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT content_key FROM publications WHERE id = $1")
                .bind(publication_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Records a publication whose files are already durable in the pool.
    pub async fn insert_publication(
        &self,
        content_key: &str,
        revision: i64,
        package_count: i64,
        files: &[PublicationFile],
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO publications (content_key, revision, package_count, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (content_key) DO NOTHING RETURNING id",
        )
        .bind(content_key)
        .bind(revision)
        .bind(package_count)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = inserted else {
            // Someone else published the same content meanwhile.
            tx.rollback().await?;
            return self
                .publication_by_key(content_key)
                .await?
                .ok_or(CatalogError::Sql(sqlx::Error::RowNotFound));
        };
        let sql = format!(
            "INSERT INTO publication_files (publication_id, path, kind, sha256, size) VALUES {}",
            self.backend.values_clause(files.len(), 5)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for f in files {
            q = q
                .bind(id)
                .bind(f.path.as_str())
                .bind(f.kind.as_str())
                .bind(f.sha256.as_str())
                .bind(f.size);
        }
        if !files.is_empty() {
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// The metadata files of a publication.
    pub async fn publication_files(&self, publication_id: i64) -> Result<Vec<PublicationFile>> {
        let mut conn = self.pool.acquire().await?;
        Self::publication_files_on(&mut conn, publication_id).await
    }

    /// The metadata files of a publication, on a given connection.
    pub(super) async fn publication_files_on(
        conn: &mut AnyConnection,
        publication_id: i64,
    ) -> Result<Vec<PublicationFile>> {
        Ok(sqlx::query_as(
            "SELECT path, kind, sha256, size FROM publication_files WHERE publication_id = $1 ORDER BY path",
        )
        .bind(publication_id)
        .fetch_all(&mut *conn)
        .await?)
    }
}
