//! Import: corrupt files, duplicates, same-NEVRA replacements, determinism, crash safety.

mod common;

use common::*;

#[test]
fn corrupt_and_foreign_files_are_reported_and_skipped_while_the_rest_lands() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        let good = cairn::formats::samples::demo_packages(&rpms).unwrap();
        std::fs::write(rpms.join("garbage.rpm"), b"this is not an rpm").unwrap();
        let bytes = std::fs::read(&good[0]).unwrap();
        std::fs::write(rpms.join("truncated.rpm"), &bytes[..200]).unwrap();
        // A package whose name would put its file outside Packages/ (builders refuse such
        // names, so the name string in the header is patched in place).
        let mut evil = rpm::PackageBuilder::new("evilescape", "1", "MIT", "noarch", "Escapes");
        evil.using_config(rpm::BuildConfig::v4().compression(rpm::CompressionType::None))
            .release("1");
        let mut bytes = Vec::new();
        evil.build().unwrap().write(&mut bytes).unwrap();
        let hits: Vec<usize> = (0..bytes.len() - 11)
            .filter(|&i| &bytes[i..i + 11] == b"evilescape\0")
            .collect();
        assert!(!hits.is_empty(), "the name string is in the header");
        for at in hits {
            bytes[at..at + 10].copy_from_slice(b"../../evil");
        }
        // Its digests are made to match: the name check, not the digest check, must
        // refuse it.
        refresh_digests(&mut bytes);
        std::fs::write(rpms.join("evil.rpm"), &bytes).unwrap();
        let out = env.run(&["import", "fx", rpms.to_str().unwrap(), "/nonexistent/x.rpm"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: non-zero when anything was skipped",
            backend.name()
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("garbage.rpm"), "{err}");
        assert!(err.contains("truncated.rpm"), "{err}");
        assert!(err.contains("/nonexistent/x.rpm"), "{err}");
        assert!(
            err.contains("evil.rpm") && err.contains("../../evil"),
            "{err}"
        );
        let repo = env.json(&["repo", "show", "fx"]);
        assert_eq!(
            repo["repo"]["package_count"], 4,
            "the valid packages landed"
        );
        // Nothing of the bad files is left in the pool's temp area.
        assert_eq!(
            std::fs::read_dir(env.data().join("pool/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}

#[test]
fn reimport_is_a_no_op_and_same_nevra_replaces_but_snapshots_keep_the_old_file() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let a = env.dir.path().join("a");
        cairn::formats::samples::demo_packages(&a).unwrap();
        env.ok(&["import", "fx", a.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "one"]);
        let repomd_before = std::fs::read_dir(env.data().join("pool")).unwrap().count();

        // The same files again: nothing changes, the exit code is 0.
        let report: serde_json::Value =
            serde_json::from_str(&env.ok(&["import", "fx", a.to_str().unwrap(), "--json"]))
                .unwrap();
        assert_eq!(report["added"].as_array().unwrap().len(), 0);
        assert_eq!(report["unchanged"], 4);
        assert!(report["published"].is_null());
        assert_eq!(
            std::fs::read_dir(env.data().join("pool")).unwrap().count(),
            repomd_before
        );

        // A different build of demo-lib 1.2.0-1 (same NEVRA, other bytes) replaces it.
        let b = env.dir.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        let mut p = rpm::PackageBuilder::new("demo-lib", "1.2.0", "MIT", "noarch", "Rebuilt");
        p.using_config(rpm::BuildConfig::v4().compression(rpm::CompressionType::Gzip))
            .release("1")
            .with_file_contents(
                b"answer=43\n".to_vec(),
                rpm::FileOptions::new("/usr/share/demo-lib/data.conf"),
            )
            .unwrap();
        let file = b.join("demo-lib-rebuilt.rpm");
        p.build().unwrap().write_file(&file).unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&env.ok(&["import", "fx", file.to_str().unwrap(), "--json"]))
                .unwrap();
        let replaced = report["replaced"].as_array().unwrap();
        assert_eq!(replaced.len(), 1, "{report}");
        assert_eq!(
            replaced[0]["location"],
            "Packages/d/demo-lib-1.2.0-1.noarch.rpm"
        );
        let old = replaced[0]["old_sha256"].as_str().unwrap().to_string();
        let new = replaced[0]["new_sha256"].as_str().unwrap().to_string();

        env.ok(&["snapshot", "create", "fx", "--name", "two"]);
        let server = env.serve();
        let c = http();
        let etag = |snap: &str| {
            c.head(server.url(&format!(
                "/repos/fx/{snap}/Packages/d/demo-lib-1.2.0-1.noarch.rpm"
            )))
            .send()
            .unwrap()
            .headers()["etag"]
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            etag("one"),
            format!("\"{old}\""),
            "{}: the old snapshot keeps the old file",
            backend.name()
        );
        assert_eq!(etag("two"), format!("\"{new}\""));
        assert_eq!(etag("latest"), format!("\"{new}\""));
    }
}

#[test]
fn same_package_set_gives_byte_identical_metadata_and_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let rpms = tmp.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    cairn::formats::samples::tricky_packages(&rpms).unwrap();
    let mut repomds = Vec::new();
    for backend in backends() {
        for _ in 0..2 {
            let env = Env::new(&backend, &["fx"]);
            env.ok(&["import", "fx", rpms.to_str().unwrap()]);
            let snap = env.json(&["snapshot", "create", "fx", "--name", "a"]);
            assert_eq!(
                snap["publish"]["rendered"], false,
                "latest's metadata is reused"
            );
            let show = env.json(&["snapshot", "show", "fx", "a"]);
            let repomd = show["repodata"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["type"] == "repomd")
                .unwrap()["sha256"]
                .as_str()
                .unwrap()
                .to_string();
            repomds.push(repomd);
            let again = env.json(&["snapshot", "create", "fx", "--name", "b"]);
            assert_eq!(again["publish"]["rendered"], false);
        }
    }
    assert!(
        repomds.windows(2).all(|w| w[0] == w[1]),
        "identical repomd.xml everywhere: {repomds:?}"
    );
}

#[test]
fn kill_during_import_leaves_only_complete_blobs_and_a_consistent_catalog() {
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::generate(&rpms, 400).unwrap();
    let mut child = env
        .cmd(&["import", "fx", rpms.to_str().unwrap()])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();

    // Every blob under its final name hashes to its name.
    let pool = env.data().join("pool");
    let mut blobs = 0;
    for e in walkdir::WalkDir::new(&pool).min_depth(3).max_depth(3) {
        let e = e.unwrap();
        if !e.file_type().is_file() || e.path().starts_with(pool.join("tmp")) {
            continue;
        }
        let name = e.file_name().to_str().unwrap().to_string();
        let bytes = std::fs::read(e.path()).unwrap();
        assert_eq!(
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            name
        );
        blobs += 1;
    }
    // The catalog never points at a missing blob: re-running completes the import.
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    let repo = env.json(&["repo", "show", "fx"]);
    assert_eq!(repo["repo"]["package_count"], 400);
    let url = format!("sqlite://{}", env.data().join("catalog.db").display());
    let refs = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let catalog = cairn::store::catalog::Catalog::connect(&url).await.unwrap();
        catalog.referenced_blobs().await.unwrap()
    });
    assert!(refs.len() >= 400 + 4);
    for (sha, size) in refs {
        let meta = std::fs::metadata(pool.join(&sha[..2]).join(&sha[2..4]).join(&sha))
            .unwrap_or_else(|e| panic!("{sha} is referenced but missing: {e}"));
        assert_eq!(meta.len() as i64, size, "{sha}");
    }
    eprintln!("{blobs} complete blobs were present after the kill");
}
