//! Bulk statements: many rows in one `INSERT … VALUES (…),(…)` and many keys in one
//! `SELECT … IN (…)`, cut into statements whose bind parameters stay well under both
//! engines' limits. Every multi-row write and keyed read of the catalog goes through
//! these two.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe, Encode, FromRow, Type};

use super::{Catalog, Result};

/// A query being built: what a row binder receives and returns.
pub(super) type Binding = Query<'static, Any, AnyArguments>;

/// The shape of a multi-row INSERT: `head` (`INSERT INTO t (a, b)`), its column
/// count, and `tail` after the VALUES list (an `ON CONFLICT …` clause, or empty).
pub(super) struct Insert<'a> {
    pub head: &'a str,
    pub columns: usize,
    pub tail: &'a str,
    /// Rows per statement.
    pub per_statement: usize,
}

impl Catalog {
    /// Inserts `rows` with `insert`, `bind` binding one row's columns in order.
    pub(super) async fn insert_rows<T>(
        &self,
        conn: &mut AnyConnection,
        insert: &Insert<'_>,
        rows: &[T],
        bind: impl Fn(Binding, &T) -> Binding,
    ) -> Result<()> {
        for q in self.statements(insert, rows, &bind) {
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// [`Catalog::insert_rows`] for an INSERT whose `tail` is a `RETURNING` clause:
    /// the rows it returns.
    pub(super) async fn insert_returning<T, R>(
        &self,
        conn: &mut AnyConnection,
        insert: &Insert<'_>,
        rows: &[T],
        bind: impl Fn(Binding, &T) -> Binding,
    ) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, AnyRow>,
    {
        let mut out = Vec::with_capacity(rows.len());
        for q in self.statements(insert, rows, &bind) {
            for row in q.fetch_all(&mut *conn).await? {
                out.push(R::from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// The statements of `insert` for `rows`, bound one at a time as they are run.
    fn statements<'a, T>(
        &'a self,
        insert: &'a Insert<'_>,
        rows: &'a [T],
        bind: &'a impl Fn(Binding, &T) -> Binding,
    ) -> impl Iterator<Item = Binding> + 'a {
        rows.chunks(insert.per_statement.max(1)).map(move |chunk| {
            let sql = format!(
                "{} VALUES {} {}",
                insert.head,
                self.backend.values_clause(chunk.len(), insert.columns),
                insert.tail
            );
            chunk.iter().fold(sqlx::query(AssertSqlSafe(sql)), bind)
        })
    }

    /// The rows `select` returns for `keys`: `select` receives the `IN (…)` list to
    /// splice in (its placeholders follow `leading`, the values bound before the keys).
    pub(super) async fn select_in<'k, K, T>(
        &self,
        conn: &mut AnyConnection,
        select: impl Fn(&str) -> String,
        leading: &[&str],
        keys: &[K],
    ) -> Result<Vec<T>>
    where
        K: Encode<'k, Any> + Type<Any> + Copy,
        T: for<'r> FromRow<'r, AnyRow>,
    {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(super::BATCH_ROWS) {
            let list = self.backend.in_clause(leading.len() + 1, chunk.len());
            let mut q: Binding = sqlx::query(AssertSqlSafe(select(&list)));
            for value in leading {
                q = q.bind(*value);
            }
            for key in chunk {
                q = q.bind(*key);
            }
            for row in q.fetch_all(&mut *conn).await? {
                out.push(T::from_row(&row)?);
            }
        }
        Ok(out)
    }
}
