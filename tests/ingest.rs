//! One ingest protocol: a package's catalog content is the same whichever way it
//! arrived (a local import or a sync from an upstream served by nginx).

mod common;

use std::collections::BTreeMap;

use common::*;
use sqlx::{Column, Row};

/// A runtime and a connection pool to the catalog of `env`.
fn connect(env: &Env) -> (tokio::runtime::Runtime, sqlx::AnyPool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    sqlx::any::install_default_drivers();
    let pool = rt
        .block_on(sqlx::AnyPool::connect(&env.database_url()))
        .unwrap();
    (rt, pool)
}

/// Every catalog row that belongs to the package `sha256`, table by table, with the
/// columns that name the row itself (surrogate ids, insertion times) left out.
fn package_rows(env: &Env, sha256: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let (rt, pool) = connect(env);
    rt.block_on(async {
        let mut out = BTreeMap::new();
        for (table, key) in [
            ("packages", "id"),
            ("package_deps", "package_id"),
            ("package_fragments", "package_id"),
        ] {
            let sql = format!(
                "SELECT t.* FROM {table} t WHERE t.{key} = \
                 (SELECT id FROM packages WHERE sha256 = $1) ORDER BY 1, 2"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(sha256)
                .fetch_all(&pool)
                .await
                .unwrap();
            let mut values = Vec::new();
            for row in rows {
                let mut cells = Vec::new();
                for (i, col) in row.columns().iter().enumerate() {
                    if matches!(col.name(), "id" | "package_id" | "created_at") {
                        continue;
                    }
                    let cell = row
                        .try_get::<Option<String>, _>(i)
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                        .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                        .or_else(|_| row.try_get::<Option<bool>, _>(i).map(|v| format!("{v:?}")))
                        .or_else(|_| {
                            row.try_get::<Option<Vec<u8>>, _>(i)
                                .map(|v| v.map_or("NULL".into(), hex::encode))
                        })
                        .unwrap_or_else(|e| panic!("{table}.{}: {e}", col.name()));
                    cells.push(format!("{}={cell}", col.name()));
                }
                values.push(cells);
            }
            out.insert(table.to_string(), values);
        }
        pool.close().await;
        out
    })
}

/// The package `sha256` as the catalog of `env` gives it back.
fn stored(env: &Env, sha256: &str) -> cairn::domain::package::Package {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let catalog = cairn::store::catalog::Catalog::connect(&env.database_url())
            .await
            .unwrap();
        let package = catalog.package(sha256).await.unwrap();
        catalog.close().await;
        package.unwrap_or_else(|| panic!("{sha256} is in the catalog"))
    })
}

/// The visible text of an HTML page: tags dropped, white space folded.
fn page_text(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_synced_package_has_the_same_catalog_rows_and_page_as_an_imported_one() {
    for backend in backends() {
        // The same files: imported into one installation, and served by nginx (with
        // createrepo_c's metadata) to be synced into another.
        let up_dir = tempfile::tempdir().unwrap();
        let repo = up_dir.path().join("repo");
        let mut files = cairn::formats::samples::demo_packages(&repo).unwrap();
        files.extend(rpmbuild_packages(&repo));
        createrepo_dir(&repo, false);
        let upstream = Upstream::start(up_dir.path());

        let imported = Env::new(&backend, &["m"]);
        imported.ok(&["import", "m", repo.to_str().unwrap()]);
        let synced = mirror_env(&backend, &upstream, "");
        synced.ok(&["repo", "sync", "m"]);

        let (a, b) = (imported.serve(), synced.serve());
        let mut with_files = 0;
        for file in &files {
            let sha = file_facts(file).sha256;
            let rows = package_rows(&imported, &sha);
            assert!(
                !rows["packages"].is_empty(),
                "{}: {} was imported",
                backend.name(),
                file.display()
            );
            // The file list and changelog are kept in the fragments (compared
            // above) and read from there.
            let (from_import, from_sync) = (stored(&imported, &sha), stored(&synced, &sha));
            if !from_import.files.is_empty() {
                with_files += 1;
            }
            assert_eq!(
                from_import,
                from_sync,
                "{}: the catalog's package {} after import (left) and sync (right)",
                backend.name(),
                file.display()
            );
            assert!(
                !rows["package_deps"].is_empty(),
                "{}: {} has dependency rows (every package provides itself)",
                backend.name(),
                file.display()
            );
            assert_eq!(
                rows,
                package_rows(&synced, &sha),
                "{}: catalog rows of {} after import (left) and sync (right)",
                backend.name(),
                file.display()
            );
            let page = |server: &Server| {
                let resp = http()
                    .get(server.url(&format!("/packages/{sha}")))
                    .send()
                    .unwrap();
                assert_eq!(resp.status(), 200);
                page_text(&resp.text().unwrap())
            };
            let (page_a, page_b) = (page(&a), page(&b));
            assert!(page_a.contains("Files ("), "{page_a}");
            assert_eq!(
                page_a,
                page_b,
                "{}: package page of {} after import (left) and sync (right)",
                backend.name(),
                file.display()
            );
        }
        assert!(with_files >= 3, "the packages have file lists to compare");
    }
}

/// Runs `statements` against the catalog of `env`.
fn execute(env: &Env, statements: &[&str]) {
    let (rt, pool) = connect(env);
    rt.block_on(async {
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        pool.close().await;
    })
}

/// The bytes of every file of a served tree's `repodata/`, by path.
fn served_repodata(server: &Server, tree: &str) -> BTreeMap<String, Vec<u8>> {
    let client = http();
    let repomd = client
        .get(server.url(&format!("{tree}repodata/repomd.xml")))
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    let doc = parse_xml(&repomd);
    let mut out = BTreeMap::new();
    for data in doc.children.iter().filter(|c| c.name == "data") {
        let href = data.child("location").and_then(|l| l.attr("href")).unwrap();
        let resp = client
            .get(server.url(&format!("{tree}{href}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{href}");
        out.insert(href.to_string(), resp.bytes().unwrap().to_vec());
    }
    out.insert("repodata/repomd.xml".into(), repomd);
    out
}

/// A mirror of the demo packages, synced and snapshotted (`s1`), with what an upgrade
/// of its catalog must keep: every package's rows and the served trees.
struct Upgraded {
    _up_dir: tempfile::TempDir,
    _upstream: Upstream,
    env: Env,
    shas: Vec<String>,
    rows: Vec<BTreeMap<String, Vec<Vec<String>>>>,
    trees: (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>),
}

impl Upgraded {
    fn new(backend: &Backend) -> Upgraded {
        let (up_dir, repo) = demo_upstream_tree();
        let files: Vec<_> = std::fs::read_dir(&repo)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
            .collect();
        let upstream = Upstream::start(up_dir.path());
        let env = mirror_env(backend, &upstream, "");
        env.ok(&["repo", "sync", "m"]);
        env.ok(&["snapshot", "create", "m", "--name", "s1"]);
        let shas: Vec<String> = files.iter().map(|f| file_facts(f).sha256).collect();
        let rows: Vec<_> = shas.iter().map(|s| package_rows(&env, s)).collect();
        assert!(rows.iter().all(|r| !r["package_deps"].is_empty()));
        let mut server = env.serve();
        let trees = Upgraded::served(&server);
        server.stop();
        Upgraded {
            _up_dir: up_dir,
            _upstream: upstream,
            env,
            shas,
            rows,
            trees,
        }
    }

    fn served(server: &Server) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
        (
            served_repodata(server, "/repos/m/latest/"),
            served_repodata(server, "/repos/m/s1/"),
        )
    }

    /// Runs a command (which opens the catalog: migrations, repairs), then checks that
    /// every row, the served trees and a package's page are as they were.
    fn open_and_check(&self, backend: &Backend) {
        self.env.ok(&["repo", "list"]);
        for (sha, before) in self.shas.iter().zip(&self.rows) {
            assert_eq!(
                &package_rows(&self.env, sha),
                before,
                "{}: rows of {sha} after the upgrade",
                backend.name()
            );
        }
        let server = self.env.serve();
        assert!(
            Upgraded::served(&server) == self.trees,
            "{}: served trees changed",
            backend.name()
        );
        let page = http()
            .get(server.url(&format!("/packages/{}", self.shas[0])))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(!page_text(&page).contains("Files (0)"), "{page}");
    }
}

#[test]
fn packages_a_previous_release_synced_get_their_rows_back_and_trees_stay_identical() {
    for backend in backends() {
        let up = Upgraded::new(&backend);
        // The catalog as the previous release left it: its schema (no catalog_repairs,
        // the newest migration not applied) and its synced packages without lists.
        execute(
            &up.env,
            &[
                "DELETE FROM package_deps",
                "DROP TABLE catalog_repairs",
                "DELETE FROM _sqlx_migrations WHERE version = 20261204000012",
            ],
        );
        assert!(package_rows(&up.env, &up.shas[0])["package_deps"].is_empty());
        // The next command opens it: the migration runs and the rows come back.
        up.open_and_check(&backend);
    }
}

#[test]
fn fragments_a_previous_release_kept_as_text_are_packed_when_the_catalog_opens() {
    for backend in backends() {
        let up = Upgraded::new(&backend);
        // The catalog as the previous release left it: the fragments as text, in its
        // table, and neither the migration nor the repair applied.
        let (rt, pool) = connect(&up.env);
        rt.block_on(async {
            use cairn::formats::repodata::packed::{unpack, Packed};
            let stored: Vec<(i64, i64, i64, i64, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT package_id, primary_href_at, primary_len, filelists_len, other_len, \
                 packed FROM package_fragments",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            assert_eq!(stored.len(), up.shas.len());
            let int = match backend {
                Backend::Sqlite => "INTEGER",
                Backend::Postgres(_) => "BIGINT",
            };
            for s in [
                "DROP TABLE package_fragments".to_string(),
                format!(
                    "CREATE TABLE package_fragments (package_id {int} NOT NULL PRIMARY KEY \
                     REFERENCES packages(id) ON DELETE CASCADE, primary_xml TEXT NOT NULL, \
                     primary_href_at {int} NOT NULL, filelists_xml TEXT NOT NULL, \
                     other_xml TEXT NOT NULL)"
                ),
                "DELETE FROM _sqlx_migrations WHERE version = 20261205000021".to_string(),
                "DELETE FROM catalog_repairs WHERE name = 'packed-fragments'".to_string(),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(s))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            for (id, href_at, p, f, o, bytes) in stored {
                let size = |n: i64| n as usize;
                let fragments = unpack(&Packed {
                    href_at: size(href_at),
                    lens: [size(p), size(f), size(o)],
                    bytes,
                })
                .unwrap();
                sqlx::query(
                    "INSERT INTO package_fragments (package_id, primary_xml, primary_href_at, \
                     filelists_xml, other_xml) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(&*fragments.primary)
                .bind(href_at)
                .bind(&*fragments.filelists)
                .bind(&*fragments.other)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        });
        // The next command opens it: the rows are packed as a sync packs them, and
        // the text table is gone.
        up.open_and_check(&backend);
        let (rt, pool) = connect(&up.env);
        let left = rt.block_on(async {
            let left = sqlx::query("SELECT 1 FROM package_fragments_text")
                .fetch_all(&pool)
                .await;
            pool.close().await;
            left
        });
        assert!(
            left.is_err(),
            "{}: the text table is dropped",
            backend.name()
        );
    }
}

#[test]
fn a_damaged_stored_package_fails_a_publish_and_its_reading_naming_it() {
    for backend in backends() {
        let (up_dir, repo) = demo_upstream_tree();
        let upstream = Upstream::start(up_dir.path());
        let env = mirror_env(&backend, &upstream, "");
        env.ok(&["repo", "sync", "m"]);
        let sha = file_facts(&rpm_named(&repo, "demo-lib")).sha256;
        // Bytes that are no zstd frame, where the package's fragments were.
        let garbage = match backend {
            Backend::Sqlite => "X'00010203'",
            Backend::Postgres(_) => "decode('00010203', 'hex')",
        };
        execute(
            &env,
            &[&format!(
                "UPDATE package_fragments SET packed = {garbage} \
                 WHERE package_id = (SELECT id FROM packages WHERE sha256 = '{sha}')"
            )],
        );
        // Rendering latest again (in zstd now) reads every package's fragments.
        let config = env.dir.path().join("cairn.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str("compression = \"zstd\"\n");
        std::fs::write(&config, text).unwrap();
        let err = run_failing(&env, &["repo", "republish", "m"]);
        assert!(
            err.contains(&sha) && err.contains("cannot be read back"),
            "{}: {err}",
            backend.name()
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let read = rt.block_on(async {
            let catalog = cairn::store::catalog::Catalog::connect(&env.database_url())
                .await
                .unwrap();
            let read = catalog.package(&sha).await;
            catalog.close().await;
            read
        });
        assert!(
            matches!(
                read,
                Err(cairn::store::catalog::CatalogError::BadFragments { ref sha256, .. })
                    if *sha256 == sha
            ),
            "{}: {read:?}",
            backend.name()
        );
    }
}
