//! `cairn db verify` finds corrupt, missing and unreferenced blobs.

mod common;

use common::*;

fn blob(env: &Env, sha: &str) -> std::path::PathBuf {
    env.data()
        .join("pool")
        .join(&sha[..2])
        .join(&sha[2..4])
        .join(sha)
}

#[test]
fn verify_reports_corrupt_missing_and_unreferenced_blobs() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        let files = cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s"]);
        let clean = env.json(&["db", "verify"]);
        assert!(clean["checked"].as_u64().unwrap() >= 8, "{clean}");
        assert_eq!(clean["missing"].as_array().unwrap().len(), 0);
        assert_eq!(clean["corrupt"].as_array().unwrap().len(), 0);

        let sha = |f: &std::path::Path| file_facts(f).sha256;
        let (corrupted, removed) = (sha(&files[0]), sha(&files[1]));
        let mut bytes = std::fs::read(blob(&env, &corrupted)).unwrap();
        bytes[100] ^= 0x55;
        std::fs::write(blob(&env, &corrupted), &bytes).unwrap();
        std::fs::remove_file(blob(&env, &removed)).unwrap();
        let stray = "f".repeat(64);
        std::fs::create_dir_all(blob(&env, &stray).parent().unwrap()).unwrap();
        std::fs::write(blob(&env, &stray), b"left over").unwrap();

        let out = env.run(&["db", "verify", "--json"]);
        assert!(
            !out.status.success(),
            "{}: problems give a non-zero exit",
            backend.name()
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["missing"], serde_json::json!([removed]), "{report}");
        assert_eq!(report["corrupt"][0][0], corrupted, "{report}");
        assert_eq!(
            report["unreferenced"],
            serde_json::json!([stray]),
            "{report}"
        );
    }
}
