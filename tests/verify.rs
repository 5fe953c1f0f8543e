//! `cairn db verify` finds corrupt, missing and unreferenced blobs.

mod common;

use common::*;

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
        let mut bytes = std::fs::read(env.blob(&corrupted)).unwrap();
        bytes[100] ^= 0x55;
        std::fs::write(env.blob(&corrupted), &bytes).unwrap();
        std::fs::remove_file(env.blob(&removed)).unwrap();
        let stray = "f".repeat(64);
        std::fs::create_dir_all(env.blob(&stray).parent().unwrap()).unwrap();
        std::fs::write(env.blob(&stray), b"left over").unwrap();

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

#[test]
fn damaged_blobs_are_named_refused_by_the_server_and_repaired() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        let files = cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s"]);
        let sha = |f: &std::path::Path| file_facts(f).sha256;
        let (corrupted, removed) = (sha(&files[0]), sha(&files[1]));
        let mut bytes = std::fs::read(env.blob(&corrupted)).unwrap();
        bytes[100] ^= 0x55;
        std::fs::write(env.blob(&corrupted), &bytes).unwrap();
        std::fs::remove_file(env.blob(&removed)).unwrap();

        // verify names the package and every tree that serves it.
        let out = env.run(&["db", "verify", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let uses: Vec<String> = report["used_by"][&corrupted]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect();
        let name = files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".rpm", "");
        assert!(
            uses.iter().any(|u| u == &format!("package {name}")),
            "{uses:?}"
        );
        assert!(uses.iter().any(|u| u == "in repos/fx/latest"), "{uses:?}");
        assert!(uses.iter().any(|u| u == "in repos/fx/s"), "{uses:?}");
        let text = env.run(&["db", "verify"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains(&format!("package {name}")), "{text}");

        // The server never passes the damaged bytes off as the package.
        let server = env.serve();
        let location = format!(
            "/repos/fx/s/Packages/{}/{}",
            &name[..1],
            files[0].file_name().unwrap().to_string_lossy()
        );
        let r = http().get(server.url(&location)).send().unwrap();
        assert_eq!(r.status(), 500, "{}: {location}", backend.name());
        drop(server);

        // Importing the good file again replaces the damaged copy.
        env.ok(&["import", "fx", files[0].to_str().unwrap()]);
        let out = env.run(&["db", "verify", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["corrupt"].as_array().unwrap().len(), 0, "{report}");
        assert_eq!(report["missing"], serde_json::json!([removed]), "{report}");

        // --repair restores the missing one from a directory holding it.
        let spare = env.dir.path().join("spare");
        std::fs::create_dir_all(&spare).unwrap();
        std::fs::copy(&files[1], spare.join("x.rpm")).unwrap();
        let out = env.run(&[
            "db",
            "verify",
            "--repair",
            "--from",
            spare.to_str().unwrap(),
            "--json",
        ]);
        let repaired: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{repaired}");
        assert_eq!(
            repaired["restored"],
            serde_json::json!([removed]),
            "{repaired}"
        );
        assert_eq!(repaired["after"]["missing"].as_array().unwrap().len(), 0);
        assert!(env.blob(&removed).is_file());
    }
}

#[test]
fn a_mirror_fetches_lost_packages_again_even_when_upstream_is_unchanged() {
    for backend in backends() {
        let (up_dir, repo) = demo_upstream_tree();
        let upstream = Upstream::start(up_dir.path());
        let env = mirror_env(&backend, &upstream, "");
        env.ok(&["repo", "sync", "m"]);
        let mut rpms: Vec<_> = std::fs::read_dir(&repo)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
            .collect();
        rpms.sort();
        let (lost, damaged) = (file_facts(&rpms[0]).sha256, file_facts(&rpms[1]).sha256);

        std::fs::remove_file(env.blob(&lost)).unwrap();
        env.ok(&["repo", "sync", "m"]);
        assert!(
            env.blob(&lost).is_file(),
            "{}: the sync fetched it again",
            backend.name()
        );

        let mut bytes = std::fs::read(env.blob(&damaged)).unwrap();
        bytes[200] ^= 0x01;
        std::fs::write(env.blob(&damaged), &bytes).unwrap();
        let out = env.run(&["db", "verify", "--repair", "--json"]);
        let repaired: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(out.status.success(), "{}: {repaired}", backend.name());
        assert_eq!(repaired["quarantined"][0][0], damaged, "{repaired}");
        assert_eq!(repaired["synced"], serde_json::json!(["m"]), "{repaired}");
        assert_eq!(repaired["after"]["corrupt"].as_array().unwrap().len(), 0);
        assert_eq!(
            cairn::app::verify::sha256_of(&env.blob(&damaged)).unwrap(),
            damaged
        );
        assert!(
            env.data()
                .join("pool/quarantine")
                .read_dir()
                .unwrap()
                .count()
                == 1
        );
    }
}
