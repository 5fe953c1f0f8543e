//! Packages: their rows (package, dependencies, fragments), written once per sha256
//! whichever way a package arrived, and the checksums upstream names them by. A
//! package's file list and changelog are kept in its fragments only, and read from
//! there. Fragments are kept packed ([`crate::formats::repodata::packed`]): the catalog
//! stores and returns them as they are, and unpacks them only to show one package.

use super::bulk::Insert;
use super::*;

impl Catalog {
    // ---- packages -----------------------------------------------------------------

    /// Which of `shas` are already in the catalog: sha → package id.
    pub async fn package_ids(&self, shas: &[&str]) -> Result<HashMap<String, i64>> {
        let mut conn = self.pool.acquire().await?;
        self.package_ids_in(&mut conn, shas).await
    }

    /// [`Catalog::package_ids`] on `conn` (a transaction sees its own rows).
    async fn package_ids_in(
        &self,
        conn: &mut AnyConnection,
        shas: &[&str],
    ) -> Result<HashMap<String, i64>> {
        let select =
            |list: &str| format!("SELECT sha256, id FROM packages WHERE sha256 IN ({list})");
        let rows: Vec<(String, i64)> = self.select_in(conn, select, &[], shas).await?;
        Ok(rows.into_iter().collect())
    }

    /// Inserts packages (with their dependency rows and their rendered fragments, which
    /// hold the file lists and changelogs) in one transaction; packages already present
    /// are left as they are. Returns sha → id for all of them.
    pub async fn insert_packages(
        &self,
        packages: &[(Package, Packed)],
    ) -> Result<HashMap<String, i64>> {
        self.insert_packages_after(packages, async { Ok::<(), CatalogError>(()) })
            .await
    }

    /// [`Catalog::insert_packages`] once `durable` (the pool commit of the packages'
    /// blobs) has succeeded, so that no committed row ever points at a blob that is
    /// not durable. If `durable` fails, nothing is written and its error is returned.
    pub async fn insert_packages_after<E: From<CatalogError>>(
        &self,
        packages: &[(Package, Packed)],
        durable: impl std::future::Future<Output = std::result::Result<(), E>>,
    ) -> std::result::Result<HashMap<String, i64>, E> {
        durable.await?;
        let mut writer = self.package_writer();
        writer.write(packages).await?;
        Ok(writer.into_ids())
    }

    /// A writer of package rows for packages that arrive in batches (a sync or import
    /// of many packages keeps one batch in memory at a time).
    pub fn package_writer(&self) -> PackageWriter<'_> {
        PackageWriter {
            catalog: self,
            ids: HashMap::new(),
            written: Vec::new(),
        }
    }

    /// Writes the rows of `fresh` (packages not in the catalog yet) into `tx`, adding
    /// their ids to `ids`.
    pub(super) async fn write_packages(
        &self,
        conn: &mut AnyConnection,
        fresh: &[&(Package, Packed)],
        ids: &mut HashMap<String, i64>,
    ) -> Result<()> {
        let created = now();
        let insert = Insert {
            head: "INSERT INTO packages (sha256, name, arch, epoch, version, release, summary, \
                   description, packager, url, time_file, time_build, size_package, size_installed, \
                   size_archive, license, vendor, rpm_group, buildhost, sourcerpm, header_start, \
                   header_end, created_at)",
            columns: 23,
            tail: "RETURNING sha256, id",
            per_statement: BATCH_ROWS / 2,
        };
        let returned: Vec<(String, i64)> = self
            .insert_returning(conn, &insert, fresh, |q, (p, _)| {
                q.bind(p.pkgid.as_str())
                    .bind(p.name.as_str())
                    .bind(p.arch.as_str())
                    .bind(p.epoch.as_str())
                    .bind(p.version.as_str())
                    .bind(p.release.as_str())
                    .bind(p.summary.as_str())
                    .bind(p.description.as_str())
                    .bind(p.packager.as_str())
                    .bind(p.url.as_str())
                    .bind(p.time_file)
                    .bind(p.time_build)
                    .bind(p.size_package)
                    .bind(p.size_installed)
                    .bind(p.size_archive)
                    .bind(p.license.as_str())
                    .bind(p.vendor.as_str())
                    .bind(p.group.as_str())
                    .bind(p.buildhost.as_str())
                    .bind(p.sourcerpm.as_str())
                    .bind(p.header_start)
                    .bind(p.header_end)
                    .bind(created)
            })
            .await?;
        ids.extend(returned);
        let fragments: Vec<(i64, &Packed)> =
            fresh.iter().map(|(p, f)| (ids[&p.pkgid], f)).collect();
        self.write_fragments(conn, &fragments, "").await?;
        let lists: Vec<(i64, &Package)> = fresh.iter().map(|(p, _)| (ids[&p.pkgid], p)).collect();
        self.write_deps(conn, &lists, "").await
    }

    /// Writes the packed fragments of packages (by id), with `tail` after each INSERT
    /// (an `ON CONFLICT` clause, or empty).
    async fn write_fragments(
        &self,
        conn: &mut AnyConnection,
        rows: &[(i64, &Packed)],
        tail: &str,
    ) -> Result<()> {
        let insert = Insert {
            head: "INSERT INTO package_fragments (package_id, primary_href_at, primary_len, \
                   filelists_len, other_len, packed)",
            columns: 6,
            tail,
            per_statement: BATCH_ROWS,
        };
        self.insert_rows(conn, &insert, rows, |q, (id, f)| {
            q.bind(*id)
                .bind(f.href_at as i64)
                .bind(f.lens[0] as i64)
                .bind(f.lens[1] as i64)
                .bind(f.lens[2] as i64)
                .bind(f.bytes.as_slice())
        })
        .await
    }

    /// Writes the dependency rows of packages (by id), with `tail` after each INSERT
    /// (an `ON CONFLICT` clause, or empty).
    async fn write_deps(
        &self,
        conn: &mut AnyConnection,
        packages: &[(i64, &Package)],
        tail: &str,
    ) -> Result<()> {
        let mut deps: Vec<(i64, i64, &Dependency)> = Vec::new();
        for &(id, p) in packages {
            deps.extend(p.deps.iter().enumerate().map(|(i, d)| (id, i as i64, d)));
        }
        let insert = Insert {
            head: "INSERT INTO package_deps (package_id, seq, kind, name, flags, epoch, ver, rel, pre)",
            columns: 9,
            tail,
            per_statement: BATCH_ROWS,
        };
        self.insert_rows(conn, &insert, &deps, |q, (id, seq, d)| {
            q.bind(*id)
                .bind(*seq)
                .bind(d.kind as i64)
                .bind(d.name.as_str())
                .bind(d.flags.as_deref())
                .bind(d.epoch.as_deref())
                .bind(d.ver.as_deref())
                .bind(d.rel.as_deref())
                .bind(i64::from(d.pre))
        })
        .await
    }

    /// Reads a package back, with its dependencies, files and changelogs (the last two
    /// from its fragments).
    pub async fn package(&self, sha256: &str) -> Result<Option<Package>> {
        let Some(row): Option<PackageRow> = sqlx::query_as(
            "SELECT id, sha256, name, arch, epoch, version, release, summary, description, \
             packager, url, time_file, time_build, size_package, size_installed, size_archive, \
             license, vendor, rpm_group, buildhost, sourcerpm, header_start, header_end \
             FROM packages WHERE sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let deps: Vec<DepRow> = sqlx::query_as(
            "SELECT kind, name, flags, epoch, ver, rel, pre FROM package_deps WHERE package_id = $1 ORDER BY seq",
        )
        .bind(row.id)
        .fetch_all(&self.pool)
        .await?;
        let packed = self
            .fragments_by_ids(&[row.id])
            .await?
            .remove(&row.id)
            .ok_or_else(|| CatalogError::BadFragments {
                sha256: row.sha256.clone(),
                problem: "they are missing".into(),
            })?;
        let bad = |problem: String| CatalogError::BadFragments {
            sha256: row.sha256.clone(),
            problem,
        };
        let fragments = packed::unpack(&packed).map_err(|e| bad(e.to_string()))?;
        let lists = crate::formats::repodata::package_from_fragments(&fragments)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Some(row.into_package(deps, lists.files, lists.changelogs)))
    }

    /// Gives every package without dependency rows (every package provides itself,
    /// so it has at least one) the dependency rows its fragments describe. A sync of
    /// an earlier release wrote them into the fragments only.
    /// A package whose fragments do not parse is named in the log and left as it is.
    /// Returns how many packages got their rows.
    pub async fn backfill_package_lists(&self) -> Result<usize> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT p.id FROM packages p WHERE NOT EXISTS \
             (SELECT 1 FROM package_deps d WHERE d.package_id = p.id) ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut repaired = 0;
        for chunk in ids.chunks(BATCH_ROWS) {
            let fragments = self.fragments_by_ids(chunk).await?;
            let mut packages = Vec::with_capacity(chunk.len());
            for id in chunk {
                let Some(f) = fragments.get(id) else { continue };
                let read = packed::unpack(f).map_err(|e| e.to_string()).and_then(|f| {
                    crate::formats::repodata::package_from_fragments(&f).map_err(|e| e.to_string())
                });
                match read {
                    Ok(p) => packages.push((*id, p)),
                    Err(e) => {
                        tracing::warn!("package {id}: its dependency rows cannot be restored: {e}")
                    }
                }
            }
            let lists: Vec<(i64, &Package)> = packages.iter().map(|(id, p)| (*id, p)).collect();
            let mut tx = self.pool.begin().await?;
            // Another process opening the catalog may be doing the same.
            self.write_deps(&mut tx, &lists, "ON CONFLICT DO NOTHING")
                .await?;
            tx.commit().await?;
            repaired += lists.len();
        }
        Ok(repaired)
    }

    /// Moves the fragments an earlier release kept as text (`package_fragments_text`)
    /// into `package_fragments`, packed, a batch at a time (each batch in one
    /// transaction, so a stop midway loses nothing and the next opening goes on), then
    /// drops the emptied table. Returns how many packages it moved.
    pub async fn pack_text_fragments(&self) -> Result<usize> {
        let mut moved = 0;
        // Gone already when this repair runs again (its record was lost).
        let exists: Option<String> = sqlx::query_scalar(match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'package_fragments_text'"
            }
            Backend::Postgres => "SELECT CAST(to_regclass('package_fragments_text') AS TEXT)",
        })
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        if exists.is_none() {
            return Ok(0);
        }
        loop {
            let rows: Vec<TextFragmentsRow> = sqlx::query_as(
                "SELECT package_id, primary_xml, primary_href_at, filelists_xml, other_xml \
                 FROM package_fragments_text ORDER BY package_id LIMIT 256",
            )
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            let mut packs = Vec::with_capacity(rows.len());
            for r in &rows {
                let fragments = Fragments {
                    primary: r.primary_xml.as_str().into(),
                    href_at: usize::try_from(r.primary_href_at).unwrap_or(usize::MAX),
                    filelists: r.filelists_xml.as_str().into(),
                    other: r.other_xml.as_str().into(),
                };
                let p = packed::pack(&fragments).map_err(|e| CatalogError::BadFragments {
                    sha256: format!("#{}", r.package_id),
                    problem: format!("they cannot be compressed: {e}"),
                })?;
                packs.push((r.package_id, p));
            }
            let mut tx = self.pool.begin().await?;
            let packed_rows: Vec<(i64, &Packed)> = packs.iter().map(|(id, p)| (*id, p)).collect();
            // Another process opening the catalog may be doing the same.
            self.write_fragments(&mut tx, &packed_rows, "ON CONFLICT (package_id) DO NOTHING")
                .await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.package_id).collect();
            let list = self.backend.in_clause(1, ids.len());
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM package_fragments_text WHERE package_id IN ({list})"
            )));
            for id in &ids {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
            tx.commit().await?;
            moved += rows.len();
        }
        sqlx::query("DROP TABLE IF EXISTS package_fragments_text")
            .execute(&self.pool)
            .await?;
        Ok(moved)
    }

    /// sha256 of packages known by another upstream checksum: (algorithm, digest) → sha256.
    pub async fn sha256_for(
        &self,
        algorithm: &str,
        digests: &[&str],
    ) -> Result<HashMap<String, String>> {
        let mut conn = self.pool.acquire().await?;
        let algorithm_at = self.backend.in_clause(1, 1);
        let select = |list: &str| {
            format!(
                "SELECT digest, sha256 FROM upstream_checksums \
                 WHERE algorithm = {algorithm_at} AND digest IN ({list})"
            )
        };
        let rows: Vec<(String, String)> = self
            .select_in(&mut conn, select, &[algorithm], digests)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// What the catalog knows of the header signatures of the packages `shas` (those
    /// it has rows for): sha256 → signature (`None` while not read).
    pub async fn package_signatures(
        &self,
        shas: &[&str],
    ) -> Result<HashMap<String, Option<PackageSignature>>> {
        let mut conn = self.pool.acquire().await?;
        let select = |list: &str| {
            format!(
                "SELECT sha256, sig_key_id, sig_algorithm FROM packages WHERE sha256 IN ({list})"
            )
        };
        let rows: Vec<(String, Option<String>, Option<String>)> =
            self.select_in(&mut conn, select, &[], shas).await?;
        Ok(rows
            .into_iter()
            .map(|(sha256, key_id, algorithm)| {
                let sig = algorithm.map(|algorithm| PackageSignature {
                    sha256: sha256.clone(),
                    key_id,
                    algorithm,
                });
                (sha256, sig)
            })
            .collect())
    }

    /// Records the header signatures read from packages (their rows exist).
    pub async fn record_signatures(&self, signatures: &[PackageSignature]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for s in signatures {
            sqlx::query(
                "UPDATE packages SET sig_key_id = $1, sig_algorithm = $2 WHERE sha256 = $3",
            )
            .bind(s.key_id.as_deref())
            .bind(s.algorithm.as_str())
            .bind(s.sha256.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Remembers which sha256 an upstream (algorithm, digest) names.
    pub async fn remember_checksums(
        &self,
        algorithm: &str,
        pairs: &[(String, String)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let insert = Insert {
            head: "INSERT INTO upstream_checksums (algorithm, digest, sha256)",
            columns: 3,
            tail: "ON CONFLICT (algorithm, digest) DO NOTHING",
            per_statement: BATCH_ROWS,
        };
        self.insert_rows(&mut tx, &insert, pairs, |q, (digest, sha)| {
            q.bind(algorithm).bind(digest.as_str()).bind(sha.as_str())
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The packages `sql` selects (package_id, sha256, location, time_file) for the
    /// owner `id`.
    pub(super) async fn placed(&self, sql: &'static str, id: i64) -> Result<Vec<Placed>> {
        Ok(sqlx::query_as(sql).bind(id).fetch_all(&self.pool).await?)
    }

    /// The packed fragments of packages, by package id.
    pub async fn fragments_by_ids(&self, ids: &[i64]) -> Result<HashMap<i64, Packed>> {
        let mut conn = self.pool.acquire().await?;
        let select = |list: &str| {
            format!(
                "SELECT package_id, primary_href_at, primary_len, filelists_len, other_len, \
                 packed FROM package_fragments WHERE package_id IN ({list})"
            )
        };
        let rows: Vec<IdFragmentsRow> = self.select_in(&mut conn, select, &[], ids).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.package_id, r.fragments.into()))
            .collect())
    }
}

/// Package rows written in batches ([`Catalog::package_writer`]), each batch in a
/// transaction of its own, so that no other writer of the catalog waits for more than
/// one batch. The caller writes a batch only once its blobs are durable.
pub struct PackageWriter<'c> {
    catalog: &'c Catalog,
    /// sha256 → id of every package written or found so far.
    ids: HashMap<String, i64>,
    /// The packages this writer wrote: (sha256, id).
    written: Vec<(String, i64)>,
}

impl PackageWriter<'_> {
    /// Which of `shas` the catalog holds already: their ids are remembered, and the
    /// packages need not be written.
    pub async fn known(&mut self, shas: &[&str]) -> Result<Vec<String>> {
        let found = self.catalog.package_ids(shas).await?;
        let known = found.keys().cloned().collect();
        self.ids.extend(found);
        Ok(known)
    }

    /// Writes and commits the rows of those of `packages` the catalog does not hold yet.
    pub async fn write(&mut self, packages: &[(Package, Packed)]) -> Result<()> {
        let unseen: Vec<&str> = packages
            .iter()
            .map(|(p, _)| p.pkgid.as_str())
            .filter(|sha| !self.ids.contains_key(*sha))
            .collect();
        if unseen.is_empty() {
            return Ok(());
        }
        let mut tx = self.catalog.pool.begin().await?;
        // Looked up in the transaction: another writer may have written some since.
        let found = self.catalog.package_ids_in(&mut tx, &unseen).await?;
        self.ids.extend(found);
        let mut fresh: Vec<&(Package, Packed)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for item in packages {
            if !self.ids.contains_key(&item.0.pkgid) && seen.insert(item.0.pkgid.as_str()) {
                fresh.push(item);
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let mut ids = HashMap::new();
        self.catalog
            .write_packages(&mut tx, &fresh, &mut ids)
            .await?;
        tx.commit().await?;
        self.written
            .extend(ids.iter().map(|(sha, id)| (sha.clone(), *id)));
        self.ids.extend(ids);
        Ok(())
    }

    /// The packages this writer wrote (not those it found), as (sha256, id): what a
    /// failed operation takes back ([`Catalog::remove_unplaced_packages`]).
    pub fn written(&self) -> &[(String, i64)] {
        &self.written
    }

    /// The id of every package written or found so far, by sha256.
    pub fn ids(&self) -> &HashMap<String, i64> {
        &self.ids
    }

    /// The id of every package written or found, by sha256.
    pub fn into_ids(self) -> HashMap<String, i64> {
        self.ids
    }
}

/// A `packages` row.
#[derive(sqlx::FromRow)]
struct PackageRow {
    id: i64,
    sha256: String,
    name: String,
    arch: String,
    epoch: String,
    version: String,
    release: String,
    summary: String,
    description: String,
    packager: String,
    url: String,
    time_file: i64,
    time_build: i64,
    size_package: i64,
    size_installed: i64,
    size_archive: i64,
    license: String,
    vendor: String,
    rpm_group: String,
    buildhost: String,
    sourcerpm: String,
    header_start: i64,
    header_end: i64,
}

impl PackageRow {
    fn into_package(
        self,
        deps: Vec<DepRow>,
        files: Vec<PackageFile>,
        changelogs: Vec<Changelog>,
    ) -> Package {
        Package {
            pkgid: self.sha256,
            name: self.name,
            arch: self.arch,
            epoch: self.epoch,
            version: self.version,
            release: self.release,
            summary: self.summary,
            description: self.description,
            packager: self.packager,
            url: self.url,
            time_file: self.time_file,
            time_build: self.time_build,
            size_package: self.size_package,
            size_installed: self.size_installed,
            size_archive: self.size_archive,
            license: self.license,
            vendor: self.vendor,
            group: self.rpm_group,
            buildhost: self.buildhost,
            sourcerpm: self.sourcerpm,
            header_start: self.header_start,
            header_end: self.header_end,
            deps: deps.into_iter().map(Dependency::from).collect(),
            files,
            changelogs,
        }
    }
}

/// A `package_deps` row.
#[derive(sqlx::FromRow)]
struct DepRow {
    kind: i64,
    name: String,
    flags: Option<String>,
    epoch: Option<String>,
    ver: Option<String>,
    rel: Option<String>,
    pre: i64,
}

impl From<DepRow> for Dependency {
    fn from(r: DepRow) -> Dependency {
        Dependency {
            kind: DepKind::from_code(r.kind).unwrap_or(DepKind::Requires),
            name: r.name,
            flags: r.flags,
            epoch: r.epoch,
            ver: r.ver,
            rel: r.rel,
            pre: r.pre != 0,
        }
    }
}

/// The columns of `package_fragments`.
#[derive(sqlx::FromRow)]
pub(super) struct FragmentsRow {
    primary_href_at: i64,
    primary_len: i64,
    filelists_len: i64,
    other_len: i64,
    packed: Vec<u8>,
}

impl From<FragmentsRow> for Packed {
    fn from(r: FragmentsRow) -> Packed {
        // A negative number (a damaged row) becomes one no frame matches.
        let size = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
        Packed {
            href_at: size(r.primary_href_at),
            lens: [
                size(r.primary_len),
                size(r.filelists_len),
                size(r.other_len),
            ],
            bytes: r.packed,
        }
    }
}

/// A row of the fragments an earlier release kept as text.
#[derive(sqlx::FromRow)]
struct TextFragmentsRow {
    package_id: i64,
    primary_xml: String,
    primary_href_at: i64,
    filelists_xml: String,
    other_xml: String,
}

/// A package's fragments with its id.
#[derive(sqlx::FromRow)]
struct IdFragmentsRow {
    package_id: i64,
    #[sqlx(flatten)]
    fragments: FragmentsRow,
}
