//! Signing what Cairn publishes, checked with real tools: signing keys made by `gpg`,
//! signatures checked by `gpg --verify` and by dnf with `repo_gpgcheck=1`.

mod common;

use common::*;

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
        // `repo republish` signs latest with the new key now; snapshots stay as they
        // were; a second run has nothing to do.
        let out = env.ok(&["repo", "republish"]);
        assert!(
            out.contains("republished fx/latest") && out.contains("republished v/latest"),
            "{out}"
        );
        let out = env.ok(&["repo", "republish"]);
        assert!(out.contains("nothing to republish"), "{out}");
        {
            let server = env.serve();
            let second_public = gpg.export(&second, &env.dir.path().join("second.pub.asc"), true);
            assert!(gpg_verifies(
                &second_public,
                &server.url("/repos/fx/latest/")
            ));
            assert!(gpg_verifies(
                &second_public,
                &server.url("/views/v/latest/")
            ));
            assert!(gpg_verifies(&first_public, &server.url("/repos/fx/s1/")));
            assert!(!gpg_verifies(&second_public, &server.url("/repos/fx/s1/")));
        }
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
    let blob = env.blob(&sha);
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
    let err = run_failing(&bad, &["import", "fx", rpms.to_str().unwrap()]);
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
        assert_config_refused(
            &format!("[signing]\n{signing}[[repo]]\nid = \"fx\"\n"),
            expected,
        );
    }
}

#[test]
fn a_repository_or_view_can_sign_with_a_signer_of_its_own() {
    let gpg = Gpg::new();
    let house = gpg.generate("House Key", "ed25519");
    let partner = gpg.generate("Partner Key", "rsa2048");
    let keys = tempfile::tempdir().unwrap();
    let house_secret = gpg.export_secret(&house, &keys.path().join("house.sec.asc"), "");
    let partner_secret = gpg.export_secret(&partner, &keys.path().join("partner.sec.asc"), "");
    let house_public = gpg.export(&house, &keys.path().join("house.asc"), true);
    let partner_public = gpg.export(&partner, &keys.path().join("partner.asc"), true);
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[signing]\nkey = \"{}\"\n[signing.other.partner]\nkey = \"{}\"\n\
             [[repo]]\nid = \"fx\"\n[[repo]]\nid = \"px\"\nsigner = \"partner\"\n\
             [[view]]\nname = \"pv\"\nrepos = [\"px\"]\nsigner = \"partner\"\n",
            house_secret.display(),
            partner_secret.display()
        ),
    );
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    env.ok(&["import", "px", rpms.to_str().unwrap()]);
    let server = env.serve();
    for (tree, signer, other) in [
        ("/repos/fx/latest/", &house_public, &partner_public),
        ("/repos/px/latest/", &partner_public, &house_public),
        ("/views/pv/latest/", &partner_public, &house_public),
    ] {
        assert!(gpg_verifies(signer, &server.url(tree)), "{tree}");
        assert!(!gpg_verifies(other, &server.url(tree)), "{tree}");
    }
    // Each tree's .repo file names its own signer's keys, served under /keys/.
    let served = env.dir.path().join("served-partner.asc");
    std::fs::write(&served, fetch(&server.url("/keys/partner.asc"))).unwrap();
    assert!(gpg_verifies(&served, &server.url("/repos/px/latest/")));
    let px = String::from_utf8(fetch(&server.url("/repos/px/latest.repo"))).unwrap();
    assert!(
        px.contains("/keys/partner.asc") && !px.contains("/keys/cairn.asc"),
        "{px}"
    );
    let fx = String::from_utf8(fetch(&server.url("/repos/fx/latest.repo"))).unwrap();
    assert!(
        fx.contains("/keys/cairn.asc") && !fx.contains("/keys/partner.asc"),
        "{fx}"
    );
    let (ok, out) = dnf_install_checked(
        &server.url("/repos/px/latest/"),
        &server.url("/keys/partner.asc"),
        false,
        &["demo-app"],
    );
    assert!(ok, "{out}");

    // A signer that is not declared is refused, naming it.
    assert_config_refused(
        &format!(
            "[signing]\nkey = \"{}\"\n[[repo]]\nid = \"fx\"\nsigner = \"nobody\"\n",
            house_secret.display()
        ),
        "names no [signing.other.nobody]",
    );
}
