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
    run_failing(env, &["repo", "sync", "m"])
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
        assert_ne!(latest_repomd(&server), latest, "{}", backend.name());
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
        assert_config_refused(toml, expected);
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
    gpg.rpmsign(&rsa, &rpm_named(&repo, "demo-lib"));
    gpg.rpmsign(&rsa, &rpm_named(&repo, "demo-tools"));
    gpg.rpmsign(&ed, &rpm_named(&repo, "demo-app"));
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
    gpg.rpmsign(&other, &rpm_named(&repo, "demo-docs"));
    createrepo_dir(&repo, false);
    let env = mirror_env(&Backend::Sqlite, &upstream, &keys_toml);
    let err = failing_sync(&env);
    assert!(
        err.contains("demo-docs") && err.contains(&other.key_id),
        "{err}"
    );
    // Every package signed by a trusted key: the sync succeeds, and the catalog
    // records each package's signer, whatever the setting.
    gpg.rpmsign(&ed, &rpm_named(&repo, "demo-docs"));
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
        gpg.rpmsign(&vendor, &rpm_named(&dir, "demo-lib"));
        gpg.rpmsign(&vendor, &rpm_named(&dir, "demo-tools"));
        gpg.rpmsign(&other, &rpm_named(&dir, "demo-app"));
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

/// A key in the OpenPGP v6 format (RFC 9580, Ed25519), which gpg 2.2 cannot make: made
/// with rpgp. Returns the secret key and the file its public key is written to.
fn v6_key(dir: &Path) -> (pgp::composed::SignedSecretKey, std::path::PathBuf) {
    use pgp::composed::{KeyType, SecretKeyParamsBuilder};
    let key = SecretKeyParamsBuilder::default()
        .version(pgp::types::KeyVersion::V6)
        .key_type(KeyType::Ed25519)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id("Modern Vendor <modern@example.org>".into())
        .build()
        .unwrap()
        .generate(rand::thread_rng())
        .unwrap();
    let public = dir.join("modern.asc");
    let armored = key
        .to_public_key()
        .to_armored_bytes(pgp::composed::ArmorOptions::default())
        .unwrap();
    std::fs::write(&public, armored).unwrap();
    (key, public)
}

fn v6_sign(key: &pgp::composed::SignedSecretKey, data: &[u8]) -> Vec<u8> {
    use pgp::ser::Serialize;
    pgp::composed::DetachedSignature::sign_binary_data(
        rand::thread_rng(),
        &key.primary_key,
        &pgp::types::Password::empty(),
        pgp::crypto::hash::HashAlgorithm::Sha256,
        data,
    )
    .unwrap()
    .to_bytes()
    .unwrap()
}

/// Writes `dir/NAME.rpm`, laid out as rpm 6 lays out packages (format `v6`, or rpm 6's
/// `v4`, which keeps the newest signature in the legacy tag too), its signature header
/// holding the OpenPGP signatures `sign` makes over its main header.
fn rpm6_package(
    dir: &Path,
    name: &str,
    format: rpm::RpmFormat,
    sign: impl Fn(&[u8]) -> Vec<Vec<u8>>,
) -> std::path::PathBuf {
    let mut pkg = rpm::PackageBuilder::new(name, "1.0", "MIT", "noarch", "rpm 6 layout")
        .using_config(format)
        .with_file_contents(
            format!("{name}\n").into_bytes(),
            rpm::FileOptions::new(format!("/usr/share/{name}/data")),
        )
        .unwrap()
        .build()
        .unwrap();
    let mut unsigned = Vec::new();
    pkg.write(&mut unsigned).unwrap();
    let header = cairn::formats::rpmcheck::header_signature(&mut unsigned.as_slice())
        .unwrap()
        .header;
    let mut signature = rpm::SignatureHeaderBuilder::from_existing(&pkg.metadata.signature)
        .unwrap()
        .clear_signatures();
    for s in sign(&header) {
        signature = signature.add_openpgp_signature(s);
    }
    pkg.metadata.signature = signature.build().unwrap();
    let path = dir.join(format!("{name}.rpm"));
    pkg.write_file(&path).unwrap();
    path
}

/// rpm 6 packages carry any number of signatures in their OPENPGP tag: one by a trusted
/// key that verifies makes the package signed by it (others by unknown keys do not
/// matter); one by a trusted key over other bytes makes it bad; v6 keys (RFC 9580) are
/// trusted like v4 ones.
#[test]
fn rpm6_signatures_are_checked_one_by_one() {
    let gpg = Gpg::new();
    let vendor = gpg.generate("Classic Vendor", "ed25519");
    let other = gpg.generate("Someone Else", "rsa2048");
    let keys = tempfile::tempdir().unwrap();
    let vendor_file = gpg.export(&vendor, &keys.path().join("vendor.asc"), true);
    let (modern, modern_file) = v6_key(keys.path());
    let modern_id =
        hex::encode(&pgp::types::KeyDetails::fingerprint(&modern.primary_key).as_bytes()[..8]);
    let dir = tempfile::tempdir().unwrap();
    let v6 = rpm::RpmFormat::V6;
    rpm6_package(dir.path(), "six-modern", v6, |h| {
        vec![gpg.sign_bytes(&other, h), v6_sign(&modern, h)]
    });
    rpm6_package(dir.path(), "six-vendor", v6, |h| {
        vec![gpg.sign_bytes(&vendor, h)]
    });
    rpm6_package(dir.path(), "six-stranger", v6, |h| {
        vec![gpg.sign_bytes(&other, h)]
    });
    rpm6_package(dir.path(), "six-tampered", v6, |h| {
        let mut changed = h.to_vec();
        changed[20] ^= 1;
        vec![gpg.sign_bytes(&other, h), v6_sign(&modern, &changed)]
    });
    // rpm 6's v4 layout: the legacy RSA tag holds the newest signature (by an unknown
    // key), which rpm 6 ignores for the OPENPGP tag, as Cairn does.
    let four = rpm6_package(dir.path(), "four-both", rpm::RpmFormat::V4, |h| {
        vec![gpg.sign_bytes(&vendor, h), gpg.sign_bytes(&other, h)]
    });
    let legacy = rpm::PackageMetadata::open(&four).unwrap();
    assert!(legacy
        .signature
        .get_entry_data_as_binary(rpm::IndexSignatureTag::RPMSIGTAG_RSA)
        .is_ok());

    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            &format!(
                "[[repo]]\nid = \"fx\"\ngpgkeys = [\"{}\", \"{}\"]\n",
                vendor_file.display(),
                modern_file.display()
            ),
        );
        // Some are skipped: exit code 2, the report still on stdout.
        let out = env.run(&["import", "fx", dir.path().to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(2));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let reason = |name: &str| {
            report["skipped"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["path"].as_str().unwrap().contains(name))
                .map(|s| s["reason"].as_str().unwrap().to_string())
        };
        let stranger = reason("six-stranger").unwrap_or_else(|| panic!("{report}"));
        assert!(
            stranger.contains(&other.key_id) && stranger.contains(&modern_id),
            "{stranger}"
        );
        let tampered = reason("six-tampered").unwrap_or_else(|| panic!("{report}"));
        assert!(
            tampered.contains(&modern_id) && tampered.contains("does not match"),
            "{tampered}"
        );
        assert_eq!(report["added"].as_array().unwrap().len(), 3, "{report}");

        let listed = env.json(&["repo", "packages", "fx"]);
        let signer = |name: &str| {
            let p = listed["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{name} not in {listed}"));
            format!(
                "{} {}",
                p["signature"]["algorithm"].as_str().unwrap(),
                p["signature"]["key_id"].as_str().unwrap()
            )
        };
        assert_eq!(signer("six-modern"), format!("EdDSA {modern_id}"));
        assert_eq!(signer("six-vendor"), format!("EdDSA {}", vendor.key_id));
        assert_eq!(signer("four-both"), format!("EdDSA {}", vendor.key_id));
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
            let packet = head.signatures.first().unwrap();
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
