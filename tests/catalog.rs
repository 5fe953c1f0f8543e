//! Catalog round trips on every backend: what goes in (packages with their
//! dependencies, files and changelogs) comes back out unchanged.

mod common;

use cairn::formats::rpmread;
use cairn::store::catalog::Catalog;
use common::*;

#[test]
fn packages_round_trip_through_the_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rpms");
    let mut files = cairn::formats::samples::tricky_packages(&dir).unwrap();
    files.extend(cairn::formats::samples::demo_packages(&dir).unwrap());
    if let Some(real) = real_rpms() {
        files.extend(copy_rpms(&real, &dir.join("real")));
    }
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let out = env.run(&["import", "fx", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let catalog = Catalog::connect(&env.database_url()).await.unwrap();
            for f in &files {
                let facts = file_facts(f);
                let expected = rpmread::read_package(f, &facts).unwrap();
                let stored = catalog
                    .package(&facts.sha256)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| {
                        panic!("{}: {} not in the catalog", backend.name(), f.display())
                    });
                assert_eq!(stored, expected, "{}: {}", backend.name(), f.display());
            }
            assert!(catalog.package(&"0".repeat(64)).await.unwrap().is_none());
            catalog.close().await;
        });
    }
}

/// Rows written alongside a pool commit are committed only if the commit succeeded,
/// and nobody sees them before it finished.
#[test]
fn package_rows_wait_for_their_blobs_to_be_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rpms");
    let files = cairn::formats::samples::demo_packages(&dir).unwrap();
    let packages: Vec<_> = files
        .iter()
        .map(|f| {
            let p = rpmread::read_package(f, &file_facts(f)).unwrap();
            let fragments =
                cairn::formats::repodata::packed::pack(&cairn::formats::repodata::xml::render(&p))
                    .unwrap();
            (p, fragments)
        })
        .collect();
    let shas: Vec<String> = packages.iter().map(|(p, _)| p.pkgid.clone()).collect();
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        std::fs::create_dir_all(env.data()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let catalog = Catalog::connect(&env.database_url()).await.unwrap();
            catalog.migrate().await.unwrap();
            // A failed commit: nothing is left behind.
            let failed: Result<_, FakeError> = catalog
                .insert_packages_after(&packages, async {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    Err(FakeError::Pool("disk full"))
                })
                .await;
            assert!(
                matches!(failed, Err(FakeError::Pool("disk full"))),
                "{}: {failed:?}",
                backend.name()
            );
            for sha in &shas {
                assert!(
                    catalog.package(sha).await.unwrap().is_none(),
                    "{}: {sha} committed although its blob never became durable",
                    backend.name()
                );
            }
            // A commit that succeeds: while it runs, another reader sees nothing yet.
            let reader = Catalog::connect(&env.database_url()).await.unwrap();
            let first = shas[0].clone();
            let ids = catalog
                .insert_packages_after(&packages, async {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    let seen = reader.package(&first).await.map_err(FakeError::Catalog)?;
                    assert!(
                        seen.is_none(),
                        "{}: a row was visible before its blob was durable",
                        backend.name()
                    );
                    Ok::<(), FakeError>(())
                })
                .await
                .unwrap();
            assert_eq!(ids.len(), shas.len());
            for sha in &shas {
                assert!(catalog.package(sha).await.unwrap().is_some());
                assert!(reader.package(sha).await.unwrap().is_some());
            }
            reader.close().await;
            catalog.close().await;
        });
    }
}

/// A caller's error type: the pool's failure, or the catalog's.
#[derive(Debug)]
enum FakeError {
    Pool(&'static str),
    Catalog(#[allow(dead_code)] cairn::store::catalog::CatalogError),
}

impl From<cairn::store::catalog::CatalogError> for FakeError {
    fn from(e: cairn::store::catalog::CatalogError) -> FakeError {
        FakeError::Catalog(e)
    }
}
