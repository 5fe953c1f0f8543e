//! The README's command sequence, as a new user types it.

mod common;

use std::process::Command;

use common::*;

#[test]
fn readme_flow_init_import_snapshot_list() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["--config", "cairn.toml"])
            .args(args)
            .current_dir(dir.path())
            .env_remove("CAIRN_DATABASE_URL")
            .env("CAIRN_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cairn {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    cairn(&["init"]);
    assert!(dir.path().join("cairn-data/catalog.db").is_file());
    let mut config = std::fs::read_to_string(dir.path().join("cairn.toml")).unwrap();
    config.push_str("[[repo]]\nid = \"fx\"\n");
    std::fs::write(dir.path().join("cairn.toml"), config).unwrap();
    cairn::formats::samples::demo_packages(&dir.path().join("rpms")).unwrap();
    cairn(&["import", "fx", "./rpms/"]);
    cairn(&["snapshot", "create", "fx", "--name", "2026-11-23"]);
    let list: serde_json::Value =
        serde_json::from_str(&cairn(&["snapshot", "list", "fx", "--json"])).unwrap();
    assert_eq!(list[0]["name"], "2026-11-23");
    assert_eq!(list[0]["package_count"], 4);
    // init again is harmless and keeps the config.
    cairn(&["init"]);
    assert!(std::fs::read_to_string(dir.path().join("cairn.toml"))
        .unwrap()
        .contains("fx"));
}
