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

/// `cairn completions bash` completes subcommands in a real bash, and `cairn man` writes
/// one page per subcommand that groff renders without a warning. Neither needs a config.
#[test]
fn completions_and_manual_pages_come_from_the_argument_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("CAIRN_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cairn {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let script = dir.path().join("cairn.bash");
    std::fs::write(&script, run(&["completions", "bash"])).unwrap();
    let complete = |words: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _cairn cairn \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
                 echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("cairn sn").trim(), "snapshot");
    let snapshot_words = complete("cairn snapshot ''");
    for sub in ["create", "diff", "list", "delete"] {
        assert!(
            snapshot_words.split_whitespace().any(|w| w == sub),
            "{snapshot_words}"
        );
    }
    for shell in ["zsh", "fish"] {
        assert!(run(&["completions", shell]).contains("snapshot"), "{shell}");
    }

    let man = dir.path().join("man1");
    run(&["man", man.to_str().unwrap()]);
    for page in [
        "cairn.1",
        "cairn-repo-sync.1",
        "cairn-snapshot-diff.1",
        "cairn-alias-delete.1",
    ] {
        let path = man.join(page);
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{page}");
        assert!(
            out.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains("SYNOPSIS"), "{page}: {text}");
    }
    let sync = std::fs::read_to_string(man.join("cairn-repo-sync.1")).unwrap();
    assert!(sync.contains("Mirror upstream"), "{sync}");
    // The hidden sample generator is not documented.
    assert!(!man.join("cairn-generate.1").exists());
}
