//! The chain of trust, checked with real tools: keys made by `gpg`, upstream metadata
//! signed by `gpg --detach-sign`, packages signed by `rpmsign`.

mod common;

use std::path::Path;

use common::*;

/// The sha256 of the served `latest` repomd.xml of repository `m`.
fn latest_repomd(server: &Server) -> String {
    use sha2::Digest;
    let bytes = http()
        .get(server.url("/repos/m/latest/repodata/repomd.xml"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    hex::encode(sha2::Sha256::digest(&bytes))
}

/// Runs a sync of `m` that must fail; returns its error output.
fn failing_sync(env: &Env) -> String {
    let out = env.run(&["repo", "sync", "m"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "the sync should fail: {err}");
    err
}

/// Adds one more package (`extra-N`) upstream and re-indexes it (a new repomd.xml,
/// unsigned).
fn upstream_changes(repo: &Path, n: usize) {
    cairn::formats::samples::large_package(&repo.join("more"), &format!("extra-{n}"), 100).unwrap();
    createrepo_dir(repo, false);
}

#[test]
fn upstream_repomd_signatures_are_checked_before_anything_is_trusted() {
    let gpg = Gpg::new();
    let rsa = gpg.generate("Upstream RSA", "rsa2048");
    let ed = gpg.generate("Upstream Ed", "ed25519");
    let other = gpg.generate("Someone Else", "ed25519");
    let (up_dir, repo) = demo_upstream_tree();
    let repomd = repo.join("repodata/repomd.xml");
    let upstream = Upstream::start(up_dir.path());
    let keys = tempfile::tempdir().unwrap();
    // Armoured and binary key files, one holding two keys.
    let rsa_file = gpg.export(&rsa, &keys.path().join("RPM-GPG-KEY-rsa"), true);
    let ed_file = gpg.export(&ed, &keys.path().join("ed.gpg"), false);
    let mut changes = 0;
    for backend in backends() {
        gpg.detach_sign(&rsa, &repomd);
        let env = mirror_env(
            &backend,
            &upstream,
            &format!(
                "gpgkeys = [\"{}\", \"{}\"]\nrepo_gpgcheck = true\ngpgcheck = \"off\"\n",
                rsa_file.display(),
                ed_file.display()
            ),
        );
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{}: {report}", backend.name());
        let server = env.serve();
        let latest = latest_repomd(&server);

        // Signed by a key the repository does not trust: named, with the trusted ones.
        changes += 1;
        upstream_changes(&repo, changes);
        gpg.detach_sign(&other, &repomd);
        let err = failing_sync(&env);
        assert!(
            err.contains(&repomd_url(&upstream))
                && err.contains(&other.key_id)
                && err.contains(&rsa.key_id)
                && err.contains(&ed.key_id),
            "{}: {err}",
            backend.name()
        );
        assert_eq!(latest_repomd(&server), latest, "{}", backend.name());

        // Signed by a trusted key, but repomd.xml changed after signing.
        gpg.detach_sign(&ed, &repomd);
        let mut tampered = std::fs::read(&repomd).unwrap();
        tampered.extend_from_slice(b"<!-- changed -->\n");
        std::fs::write(&repomd, &tampered).unwrap();
        let err = failing_sync(&env);
        assert!(
            err.contains(&repomd_url(&upstream))
                && err.contains(&ed.key_id)
                && err.contains("does not match"),
            "{}: {err}",
            backend.name()
        );
        assert_eq!(latest_repomd(&server), latest, "{}", backend.name());

        // No signature at all.
        changes += 1;
        upstream_changes(&repo, changes);
        std::fs::remove_file(repo.join("repodata/repomd.xml.asc")).unwrap();
        let err = failing_sync(&env);
        assert!(
            err.contains(&format!("{}.asc", repomd_url(&upstream)))
                && err.contains("not signed")
                && err.contains(&rsa.key_id),
            "{}: {err}",
            backend.name()
        );
        assert_eq!(latest_repomd(&server), latest, "{}", backend.name());

        // Signed properly with the Ed25519 key (a binary key file): the sync goes on.
        gpg.detach_sign(&ed, &repomd);
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{}: {report}", backend.name());
        // (The running server swaps its index in as soon as it sees the change.)
        wait_for("latest to be the newly synced tree", || {
            latest_repomd(&server) != latest
        });
    }
}

fn repomd_url(upstream: &Upstream) -> String {
    upstream.url("repo/repodata/repomd.xml")
}

#[test]
fn signature_settings_are_checked() {
    for (toml, expected) in [
        (
            "[[repo]]\nid = \"m\"\nfeed = \"http://127.0.0.1:9/\"\nrepo_gpgcheck = true\n",
            "repo_gpgcheck = true needs a feed and gpgkeys",
        ),
        (
            "[[repo]]\nid = \"m\"\nfeed = \"http://127.0.0.1:9/\"\ngpgcheck = \"require\"\n",
            "gpgcheck = \"require\" needs gpgkeys",
        ),
        (
            "[[repo]]\nid = \"m\"\nfeed = \"http://127.0.0.1:9/\"\ngpgcheck = \"sometimes\"\n",
            "gpgcheck",
        ),
    ] {
        let env = Env::with_repo_toml(&Backend::Sqlite, toml);
        let out = env.run(&["repo", "list"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}");
        assert!(err.contains(expected), "{toml}: {err}");
    }
    // A key file that is not a key is named when the sync starts.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "not a key\n").unwrap();
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"http://127.0.0.1:9/\"\ngpgkeys = [\"{}\"]\n",
            bad.path().display()
        ),
    );
    let out = env.run(&["repo", "sync", "m"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&bad.path().display().to_string()) && err.contains("public key"),
        "{err}"
    );
}

/// The demo packages upstream, by name: `repo/demo-*.rpm`.
fn demo_file(repo: &Path, name: &str) -> std::path::PathBuf {
    std::fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{name}-"))
        })
        .unwrap_or_else(|| panic!("no {name} in {}", repo.display()))
}

#[test]
fn package_signatures_are_checked_against_the_keys_and_recorded() {
    let gpg = Gpg::new();
    let rsa = gpg.generate("Vendor RSA", "rsa2048");
    let ed = gpg.generate("Vendor Ed", "ed25519");
    let other = gpg.generate("Someone Else", "rsa2048");
    let keys = tempfile::tempdir().unwrap();
    let rsa_file = gpg.export(&rsa, &keys.path().join("rsa.asc"), true);
    let ed_file = gpg.export(&ed, &keys.path().join("ed.asc"), true);
    let (up_dir, repo) = demo_upstream_tree();
    // RSA (rpm puts it in RSAHEADER) and EdDSA (DSAHEADER) header signatures; demo-docs
    // stays unsigned.
    gpg.rpmsign(&rsa, &demo_file(&repo, "demo-lib"));
    gpg.rpmsign(&rsa, &demo_file(&repo, "demo-tools"));
    gpg.rpmsign(&ed, &demo_file(&repo, "demo-app"));
    createrepo_dir(&repo, false);
    let upstream = Upstream::start(up_dir.path());
    let keys_toml = format!(
        "gpgkeys = [\"{}\", \"{}\"]\n",
        rsa_file.display(),
        ed_file.display()
    );
    for backend in backends() {
        // Keys configured: gpgcheck is "require". The unsigned package is named.
        let env = mirror_env(&backend, &upstream, &keys_toml);
        let err = failing_sync(&env);
        assert!(
            err.contains("demo-docs") && err.contains("unsigned") && err.contains(&rsa.key_id),
            "{}: {err}",
            backend.name()
        );
        assert!(!err.contains("demo-lib-"), "{}: {err}", backend.name());
        let server = env.serve();
        let status = http()
            .get(server.url("/repos/m/latest/repodata/repomd.xml"))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 404, "{}: nothing published", backend.name());

        // "warn": the sync goes on and reports it.
        let warn = mirror_env(
            &backend,
            &upstream,
            &format!("{keys_toml}gpgcheck = \"warn\"\n"),
        );
        let report = warn.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{report}");
        let warnings = report["m"]["warnings"].to_string();
        assert!(
            warnings.contains("demo-docs") && warnings.contains("unsigned"),
            "{report}"
        );
        assert!(!warnings.contains("demo-lib"), "{report}");
        // Not every package is signed: the .repo file leaves gpgcheck off.
        let server = warn.serve();
        let repo_file = String::from_utf8(fetch(&server.url("/repos/m/latest.repo"))).unwrap();
        assert!(repo_file.contains("gpgcheck=0\n"), "{repo_file}");
    }

    // Signed by a key the repository does not trust: named with the key found.
    gpg.rpmsign(&other, &demo_file(&repo, "demo-docs"));
    createrepo_dir(&repo, false);
    let env = mirror_env(&Backend::Sqlite, &upstream, &keys_toml);
    let err = failing_sync(&env);
    assert!(
        err.contains("demo-docs") && err.contains(&other.key_id),
        "{err}"
    );
    // Every package signed by a trusted key: the sync succeeds, and the catalog
    // records each package's signer, whatever the setting.
    gpg.rpmsign(&ed, &demo_file(&repo, "demo-docs"));
    createrepo_dir(&repo, false);
    let report = env.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["status"], "ok", "{report}");
    let listed = env.json(&["repo", "packages", "m"]);
    let signer = |name: &str| {
        let p = listed["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {listed}"))
            .clone();
        (
            p["signature"]["key_id"].as_str().unwrap_or("").to_string(),
            p["signature"]["algorithm"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    assert_eq!(signer("demo-lib"), (rsa.key_id.clone(), "RSA".to_string()));
    assert_eq!(signer("demo-app"), (ed.key_id.clone(), "EdDSA".to_string()));
    assert_eq!(
        signer("demo-docs"),
        (ed.key_id.clone(), "EdDSA".to_string())
    );

    // Every package is signed by a key the repository trusts: its .repo file turns
    // gpgcheck on with the repository's keys, served by Cairn, and dnf checks them.
    let server = env.serve();
    let repo_file = String::from_utf8(fetch(&server.url("/repos/m/latest.repo"))).unwrap();
    let keys_url = server.url("/keys/repos/m.asc");
    assert!(
        repo_file.contains("gpgcheck=1\n") && repo_file.contains(&keys_url),
        "{repo_file}"
    );
    let (ok, out) = dnf_install_trusting(
        &server.url("/repos/m/latest/"),
        &keys_url,
        false,
        true,
        &["demo-app"],
    );
    assert!(ok, "{out}");
    // dnf with a stranger's key refuses the same packages.
    let stranger_key = gpg.export(&other, &keys.path().join("other.asc"), true);
    let (ok, out) = dnf_install_trusting(
        &server.url("/repos/m/latest/"),
        &format!("file://{}", stranger_key.display()),
        false,
        true,
        &["demo-app"],
    );
    assert!(!ok, "{out}");
}

#[test]
fn imports_check_signatures_as_syncs_do() {
    let gpg = Gpg::new();
    let vendor = gpg.generate("Local Vendor", "ed25519");
    let other = gpg.generate("Someone Else", "rsa2048");
    let keys = tempfile::tempdir().unwrap();
    let key_file = gpg.export(&vendor, &keys.path().join("vendor.asc"), true);
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            &format!(
                "[[repo]]\nid = \"fx\"\ngpgkeys = [\"{}\"]\n",
                key_file.display()
            ),
        );
        let dir = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&dir).unwrap();
        gpg.rpmsign(&vendor, &demo_file(&dir, "demo-lib"));
        gpg.rpmsign(&vendor, &demo_file(&dir, "demo-tools"));
        gpg.rpmsign(&other, &demo_file(&dir, "demo-app"));
        // demo-docs stays unsigned.

        // "require" (the default with keys): the two others are skipped, named, with why.
        let out = env.run(&["import", "fx", dir.to_str().unwrap(), "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let skipped = report["skipped"].to_string();
        assert!(
            skipped.contains("demo-docs") && skipped.contains("unsigned"),
            "{}: {report}",
            backend.name()
        );
        assert!(
            skipped.contains("demo-app") && skipped.contains(&other.key_id),
            "{}: {report}",
            backend.name()
        );
        assert_eq!(report["added"].as_array().unwrap().len(), 2, "{report}");

        // "warn": imported, and reported.
        let report = env.json(&["import", "fx", dir.to_str().unwrap(), "--gpgcheck", "warn"]);
        assert_eq!(report["added"].as_array().unwrap().len(), 2, "{report}");
        let untrusted = report["untrusted"].to_string();
        assert!(
            untrusted.contains("demo-docs") && untrusted.contains("demo-app"),
            "{report}"
        );

        // The catalog records every package's signer; --unsigned lists the unsigned.
        let listed = env.json(&["repo", "packages", "fx"]);
        let by_name = |name: &str| {
            listed["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()["signature"]
                .clone()
        };
        assert_eq!(by_name("demo-lib")["key_id"], vendor.key_id.as_str());
        assert_eq!(by_name("demo-lib")["algorithm"], "EdDSA");
        assert_eq!(by_name("demo-docs")["algorithm"], "none");
        assert_eq!(by_name("demo-app")["key_id"], other.key_id.as_str());
        let unsigned = env.json(&["repo", "packages", "fx", "--unsigned"]);
        let names: Vec<&str> = unsigned["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["demo-docs"], "{unsigned}");

        // The pages show it: the package's signer, and the tree filtered to unsigned.
        let server = env.serve();
        let c = http();
        let lib_sha = listed["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "demo-lib")
            .unwrap()["sha256"]
            .as_str()
            .unwrap()
            .to_string();
        let page = c
            .get(server.url(&format!("/packages/{lib_sha}")))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(page.contains(&format!("EdDSA {}", vendor.key_id)), "{page}");
        let tree = c
            .get(server.url("/repos/fx/latest/?unsigned=1"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            tree.contains("demo-docs") && !tree.contains(">demo-lib<"),
            "{tree}"
        );

        // --gpgcheck off imports anything, and still records the signer.
        let fresh = Env::with_repo_toml(&backend, "[[repo]]\nid = \"fx\"\n");
        let report = fresh.json(&["import", "fx", dir.to_str().unwrap()]);
        assert_eq!(report["added"].as_array().unwrap().len(), 4, "{report}");
        // Without keys, asking for checks is refused with the fix.
        let out = fresh.run(&[
            "import",
            "fx",
            dir.to_str().unwrap(),
            "--gpgcheck",
            "require",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("no gpgkeys"), "{err}");
    }
}

/// The signer rpm itself reads from a package's header signature: "RSA 0123…" or
/// "unsigned"; `None` when rpm cannot read the package.
fn rpm_says(path: &Path) -> Option<String> {
    let out = std::process::Command::new("rpm")
        .args(["-qp", "--nosignature", "--nodigest", "--qf"])
        .arg("%{RSAHEADER:pgpsig}|%{DSAHEADER:pgpsig}")
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let sig = text.split('|').find(|s| !s.contains("(none)"));
    Some(match sig {
        None => "unsigned".to_string(),
        Some(s) => {
            let algorithm = s.split('/').next().unwrap_or("").to_string();
            let key = s.rsplit("Key ID ").next().unwrap_or("").trim().to_string();
            format!("{algorithm} {key}")
        }
    })
}

#[test]
fn real_packages_signers_are_read_as_rpm_reads_them() {
    let Some(real) = real_rpms() else {
        eprintln!("CAIRN_REAL_RPMS is not set: the real packages are not checked");
        return;
    };
    require_tool("rpm");
    let mut compared = 0;
    let mut signed = 0;
    let mut v6 = 0;
    for e in std::fs::read_dir(&real).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "rpm") {
            continue;
        }
        let Some(expected) = rpm_says(&path) else {
            continue;
        };
        let mut file = std::fs::File::open(&path).unwrap();
        let head = cairn::formats::rpmcheck::header_signature(&mut file)
            .unwrap_or_else(|e| panic!("{}: rpm reads it, but: {e}", path.display()));
        let ours = match cairn::formats::openpgp::check_header(&head, None) {
            cairn::formats::openpgp::HeaderVerdict::Unsigned => "unsigned".to_string(),
            cairn::formats::openpgp::HeaderVerdict::Signed(info) => {
                signed += 1;
                format!("{} {}", info.algorithm, info.key_id)
            }
            cairn::formats::openpgp::HeaderVerdict::Bad(e) => format!("unreadable: {e}"),
        };
        compared += 1;
        if expected == "unsigned" && ours != "unsigned" {
            // rpm 4.18 knows only the v4 tags; an rpm 6 OPENPGP signature reads as
            // unsigned to it. gpg reads the signature packet itself.
            let packet = head.signature.as_ref().unwrap();
            match gpg_reads(packet) {
                Some(gpg_says) => assert_eq!(ours, gpg_says, "{}", path.display()),
                // gpg 2.2 knows no v6 packets: only that it is read at all is checked.
                None => assert!(
                    !ours.starts_with("unreadable"),
                    "{}: {ours}",
                    path.display()
                ),
            }
            v6 += 1;
            continue;
        }
        assert_eq!(ours, expected, "{}", path.display());
    }
    assert!(
        compared >= 10 && signed >= 3 && v6 >= 1,
        "{compared} compared, {signed} signed, {v6} with rpm 6 signatures"
    );
}

/// "ALGORITHM keyid" of a binary signature packet, as `gpg --list-packets` reads it;
/// `None` for a v6 packet, which gpg 2.2 does not read.
fn gpg_reads(packet: &[u8]) -> Option<String> {
    let gpg = Gpg::new();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), packet).unwrap();
    let out = gpg
        .cmd()
        .arg("--list-packets")
        .arg(file.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("unknown version 6") {
        return None;
    }
    assert!(out.status.success(), "{err}");
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    let line = out
        .lines()
        .find(|l| l.contains(":signature packet:"))
        .unwrap_or_else(|| panic!("no signature packet: {out}"));
    let field = |name: &str| {
        line.split(&format!("{name} "))
            .nth(1)
            .and_then(|r| r.split([',', ' ']).next())
            .unwrap_or("")
            .to_string()
    };
    let algorithm = match field("algo").as_str() {
        "1" | "3" => "RSA",
        "17" => "DSA",
        "19" => "ECDSA",
        "22" | "27" => "EdDSA",
        other => panic!("algorithm {other} in {line}"),
    };
    Some(format!("{algorithm} {}", field("keyid").to_lowercase()))
}

/// GETs `url`, insisting on 200.
fn fetch(url: &str) -> Vec<u8> {
    let r = http().get(url).send().unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().unwrap().to_vec()
}

/// Checks with gpg (trusting only the keys in `keys`) that the served repomd.xml of the
/// tree at `tree_url` carries a valid signature; returns whether it verifies.
fn gpg_verifies(keys: &Path, tree_url: &str) -> bool {
    let client = Gpg::new();
    client.import(keys);
    let dir = tempfile::tempdir().unwrap();
    let repomd = dir.path().join("repomd.xml");
    let asc = dir.path().join("repomd.xml.asc");
    std::fs::write(&repomd, fetch(&format!("{tree_url}repodata/repomd.xml"))).unwrap();
    std::fs::write(&asc, fetch(&format!("{tree_url}repodata/repomd.xml.asc"))).unwrap();
    client.verifies(&repomd, &asc)
}

#[test]
fn cairn_signs_every_publication_it_renders_and_dnf_checks_it() {
    let gpg = Gpg::new();
    let first = gpg.generate("Cairn Signing 2026", "rsa3072");
    let second = gpg.generate_with_passphrase("Cairn Signing 2027", "ed25519", "correct horse");
    let stranger = gpg.generate("Stranger", "ed25519");
    let keys = tempfile::tempdir().unwrap();
    let first_secret = gpg.export_secret(&first, &keys.path().join("first.sec.asc"), "");
    let first_public = gpg.export(&first, &keys.path().join("first.pub.asc"), true);
    let second_secret = gpg.export_secret(
        &second,
        &keys.path().join("second.sec.asc"),
        "correct horse",
    );
    let stranger_public = gpg.export(&stranger, &keys.path().join("stranger.pub.asc"), true);
    let pass_file = keys.path().join("second.pass");
    std::fs::write(&pass_file, "correct horse\n").unwrap();
    // The packages are signed by their vendor, whose key the repository trusts.
    let vendor = gpg.generate("Package Vendor", "rsa2048");
    let vendor_public = gpg.export(&vendor, &keys.path().join("vendor.asc"), true);
    for backend in backends() {
        let repos = format!(
            "[[repo]]\nid = \"fx\"\ngpgkeys = [\"{}\"]\n[[view]]\nname = \"v\"\nrepos = [\"fx\"]\n",
            vendor_public.display()
        );
        let env = Env::with_repo_toml(
            &backend,
            &format!("[signing]\nkey = \"{}\"\n{repos}", first_secret.display()),
        );
        let one = env.dir.path().join("one");
        for rpm in cairn::formats::samples::demo_packages(&one).unwrap() {
            gpg.rpmsign(&vendor, &rpm);
        }
        env.ok(&["import", "fx", one.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
        env.ok(&["publish", "fx", "s1", "--as", "prod"]);
        env.ok(&["view", "snapshot", "v", "--name", "s1"]);
        let mut server = env.serve();
        let served_keys = env.dir.path().join("served-keys.asc");
        std::fs::write(&served_keys, fetch(&server.url("/keys/cairn.asc"))).unwrap();
        // Every kind of publication verifies with gpg against the served key only.
        for tree in [
            "/repos/fx/latest/",
            "/repos/fx/s1/",
            "/repos/fx/prod/",
            "/views/v/latest/",
            "/views/v/s1/",
        ] {
            assert!(
                gpg_verifies(&served_keys, &server.url(tree)),
                "{}: {tree}",
                backend.name()
            );
            assert!(!gpg_verifies(&stranger_public, &server.url(tree)), "{tree}");
        }
        // The .repo file points dnf at the key and turns repo_gpgcheck on.
        let repo_file = String::from_utf8(fetch(&server.url("/repos/fx/prod.repo"))).unwrap();
        assert!(
            repo_file.contains("repo_gpgcheck=1")
                && repo_file.contains(&server.url("/keys/cairn.asc")),
            "{repo_file}"
        );
        assert!(
            repo_file.contains("gpgcheck=1\n") && repo_file.contains("/keys/repos/fx.asc"),
            "{repo_file}"
        );
        // dnf with repo_gpgcheck=1 and gpgcheck=1 installs from a snapshot, a view and
        // an alias, with the keys the .repo files name...
        let key_url = server.url("/keys/cairn.asc");
        for (tree, owner_keys) in [
            ("/repos/fx/s1/", "/keys/repos/fx.asc"),
            ("/views/v/s1/", "/keys/views/v.asc"),
            ("/repos/fx/prod/", "/keys/repos/fx.asc"),
        ] {
            let keys = format!("{key_url} {}", server.url(owner_keys));
            let (ok, out) = dnf_install_checked(&server.url(tree), &keys, true, &["demo-app"]);
            assert!(ok, "{}: {tree}: {out}", backend.name());
        }
        // ...and refuses a key that did not sign it.
        let stranger_url = format!("file://{}", stranger_public.display());
        let (ok, out) = dnf_install_checked(
            &server.url("/repos/fx/s1/"),
            &stranger_url,
            false,
            &["demo-app"],
        );
        assert!(
            !ok,
            "{}: a stranger's key was accepted: {out}",
            backend.name()
        );
        server.stop();

        // Rotation: the second key signs from now on; the first is still served.
        let env2_toml = format!(
            "[signing]\nkey = \"{}\"\npassphrase_file = \"{}\"\nprevious_keys = [\"{}\"]\n{repos}",
            second_secret.display(),
            pass_file.display(),
            first_public.display()
        );
        std::fs::write(env.dir.path().join("cairn.toml"), {
            let old = std::fs::read_to_string(env.dir.path().join("cairn.toml")).unwrap();
            let server_part = old.split("[signing]").next().unwrap().to_string();
            format!("{server_part}{env2_toml}")
        })
        .unwrap();
        let two = env.dir.path().join("two");
        for rpm in cairn::formats::samples::generate(&two, 1).unwrap() {
            gpg.rpmsign(&vendor, &rpm);
        }
        env.ok(&["import", "fx", two.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s2"]);
        let server = env.serve();
        std::fs::write(&served_keys, fetch(&server.url("/keys/cairn.asc"))).unwrap();
        let first_only = env.dir.path().join("first-only.asc");
        std::fs::copy(&first_public, &first_only).unwrap();
        let second_public = gpg.export(&second, &env.dir.path().join("second.pub.asc"), true);
        // The old snapshot keeps the signature it was published with (first key); the
        // new one is signed with the second; the served keys verify both.
        assert!(gpg_verifies(&first_only, &server.url("/repos/fx/s1/")));
        assert!(!gpg_verifies(&second_public, &server.url("/repos/fx/s1/")));
        assert!(gpg_verifies(&second_public, &server.url("/repos/fx/s2/")));
        assert!(gpg_verifies(&served_keys, &server.url("/repos/fx/s1/")));
        assert!(gpg_verifies(&served_keys, &server.url("/repos/fx/s2/")));
        let (ok, out) = dnf_install_checked(
            &server.url("/repos/fx/s2/"),
            &server.url("/keys/cairn.asc"),
            false,
            &["demo-app"],
        );
        assert!(ok, "{}: {out}", backend.name());
    }
}

#[test]
fn an_external_command_can_sign_and_what_it_writes_is_checked() {
    let gpg = Gpg::new();
    let key = gpg.generate("Agent Held Key", "ed25519");
    let keys = tempfile::tempdir().unwrap();
    let public = gpg.export(&key, &keys.path().join("agent.pub.asc"), true);
    let command = format!(
        "GNUPGHOME={} gpg --batch --pinentry-mode loopback --passphrase '' --local-user {} --detach-sign --armor",
        gpg.home().display(),
        key.fingerprint
    );
    let repos = "[[repo]]\nid = \"fx\"\n[[repo]]\nid = \"plain\"\nsign = false\n";
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[signing]\ncommand = \"{}\"\npublic_key = \"{}\"\n{repos}",
            command.replace('\\', "\\\\").replace('"', "\\\""),
            public.display()
        ),
    );
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    env.ok(&["import", "plain", rpms.to_str().unwrap()]);
    let server = env.serve();
    assert!(gpg_verifies(&public, &server.url("/repos/fx/latest/")));
    // A repository with sign = false publishes no signature.
    let status = http()
        .get(server.url("/repos/plain/latest/repodata/repomd.xml.asc"))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 404);

    // Tampering with a published file in the pool is caught by the checksum chain:
    // dnf refuses the tree.
    let (ok, out) = dnf_install_checked(
        &server.url("/repos/fx/latest/"),
        &server.url("/keys/cairn.asc"),
        false,
        &["demo-app"],
    );
    assert!(ok, "{out}");
    let repomd = fetch(&server.url("/repos/fx/latest/repodata/repomd.xml"));
    let primary_href = parse_xml(&repomd)
        .children
        .iter()
        .find(|d| d.attr("type") == Some("primary"))
        .unwrap()
        .child("location")
        .unwrap()
        .attr("href")
        .unwrap()
        .to_string();
    let sha = primary_href
        .trim_start_matches("repodata/")
        .split('-')
        .next()
        .unwrap()
        .to_string();
    let blob = env
        .data()
        .join("pool")
        .join(&sha[..2])
        .join(&sha[2..4])
        .join(&sha);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    // (A fresh server: the running one holds the intact bytes in its cache.)
    drop(server);
    std::fs::write(&blob, &bytes).unwrap();
    let server = env.serve();
    let (ok, out) = dnf_install_checked(
        &server.url("/repos/fx/latest/"),
        &server.url("/keys/cairn.asc"),
        false,
        &["demo-app"],
    );
    assert!(!ok, "a damaged primary was accepted: {out}");
    drop(server);

    // A command that writes something other than a signature by the configured key
    // fails the publish, naming the command; nothing is published.
    let bad = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[signing]\ncommand = \"echo not-a-signature\"\npublic_key = \"{}\"\n[[repo]]\nid = \"fx\"\n",
            public.display()
        ),
    );
    let out = bad.run(&["import", "fx", rpms.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("echo not-a-signature"), "{err}");
}

#[test]
fn a_wrong_passphrase_or_a_missing_key_is_named_before_anything_runs() {
    let gpg = Gpg::new();
    let key = gpg.generate_with_passphrase("Locked", "ed25519", "right");
    let keys = tempfile::tempdir().unwrap();
    let secret = gpg.export_secret(&key, &keys.path().join("locked.sec.asc"), "right");
    let wrong = keys.path().join("wrong.pass");
    std::fs::write(&wrong, "wrong\n").unwrap();
    for (signing, expected) in [
        (
            format!(
                "key = \"{}\"\npassphrase_file = \"{}\"\n",
                secret.display(),
                wrong.display()
            ),
            "passphrase",
        ),
        (
            format!(
                "key = \"{}\"\npassphrase_env = \"CAIRN_TEST_NO_SUCH_VARIABLE\"\n",
                secret.display()
            ),
            "CAIRN_TEST_NO_SUCH_VARIABLE",
        ),
        (
            "key = \"/nonexistent/signing.asc\"\n".to_string(),
            "/nonexistent/signing.asc",
        ),
        ("command = \"cat\"\n".to_string(), "public_key"),
    ] {
        let env = Env::with_repo_toml(
            &Backend::Sqlite,
            &format!("[signing]\n{signing}[[repo]]\nid = \"fx\"\n"),
        );
        let out = env.run(&["repo", "list"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{signing}");
        assert!(err.contains(expected), "{signing}: {err}");
    }
}

#[test]
fn mirror_mode_serves_upstreams_signature_which_gpg_verifies() {
    let gpg = Gpg::new();
    let vendor = gpg.generate("Upstream Vendor", "rsa2048");
    let keys = tempfile::tempdir().unwrap();
    let public = gpg.export(&vendor, &keys.path().join("vendor.asc"), true);
    let (up_dir, repo) = demo_upstream_tree();
    gpg.detach_sign(&vendor, &repo.join("repodata/repomd.xml"));
    let upstream = Upstream::start(up_dir.path());
    let env = mirror_env(
        &Backend::Sqlite,
        &upstream,
        &format!(
            "mode = \"mirror\"\ngpgkeys = [\"{}\"]\nrepo_gpgcheck = true\ngpgcheck = \"off\"\n",
            public.display()
        ),
    );
    env.ok(&["repo", "sync", "m"]);
    env.ok(&["snapshot", "create", "m", "--name", "s"]);
    let server = env.serve();
    for tree in ["/repos/m/latest/", "/repos/m/s/"] {
        assert!(gpg_verifies(&public, &server.url(tree)), "{tree}");
    }
    let (ok, out) = dnf_install_checked(
        &server.url("/repos/m/s/"),
        &format!("file://{}", public.display()),
        false,
        &["demo-app"],
    );
    assert!(ok, "{out}");
}
