//! Catalog round trips on every backend: what goes in (packages with their
//! dependencies, files and changelogs) comes back out unchanged.

mod common;

use cairn::catalog::Catalog;
use cairn::rpmread;
use common::*;

#[test]
fn packages_round_trip_through_the_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rpms");
    let mut files = cairn::samples::tricky_packages(&dir).unwrap();
    files.extend(cairn::samples::demo_packages(&dir).unwrap());
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
