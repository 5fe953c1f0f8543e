//! Real dnf installs from what `cairn serve` publishes, on every catalog backend.

mod common;

use common::*;

#[test]
fn dnf_installs_with_dependencies_from_a_snapshot_and_latest() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        if let Some(real) = real_rpms() {
            // Real packages ride along so the repo is not only our own builds.
            copy_rpms(&real, &rpms.join("real"));
        }
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "2026-11-23"]);
        let server = env.serve();

        let installed = dnf_install(&server.url("/repos/fx/2026-11-23/"), &["demo-app"]);
        for name in ["demo-app", "demo-lib", "demo-tools", "demo-docs"] {
            assert!(
                installed.iter().any(|n| n == name),
                "{}: {name} installed from the snapshot (got {installed:?})",
                backend.name()
            );
        }
        let installed = dnf_install(&server.url("/repos/fx/latest/"), &["demo-lib"]);
        assert_eq!(
            installed,
            vec!["demo-lib".to_string()],
            "{}",
            backend.name()
        );
    }
}

/// A repo publishing zstd metadata installs just as well, and its metadata is zstd.
#[test]
fn dnf_installs_from_zstd_metadata() {
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        "[[repo]]\nid = \"z\"\ncompression = \"zstd\"\n",
    );
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    env.ok(&["import", "z", rpms.to_str().unwrap()]);
    env.ok(&["snapshot", "create", "z", "--name", "s"]);
    let show = env.json(&["snapshot", "show", "z", "s"]);
    let paths: Vec<&str> = show["repodata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("-primary.xml.zst")),
        "{paths:?}"
    );
    let server = env.serve();
    let installed = dnf_install(&server.url("/repos/z/s/"), &["demo-app"]);
    assert!(installed.contains(&"demo-app".to_string()), "{installed:?}");
}
