//! Mirroring an upstream served by a real nginx: sync, snapshot, dnf; failures that
//! change nothing; upstream removals; filters; hostile metadata.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// An upstream of the demo packages served by nginx, and a mirror of it synced once.
fn synced_demo_mirror(backend: &Backend) -> (tempfile::TempDir, std::path::PathBuf, Upstream, Env) {
    let (up_dir, repo) = demo_upstream_tree();
    let upstream = Upstream::start(up_dir.path());
    let env = mirror_env(backend, &upstream, "");
    env.ok(&["repo", "sync", "m"]);
    (up_dir, repo, upstream, env)
}

fn package_count(env: &Env) -> u64 {
    env.json(&["repo", "show", "m"])["repo"]["package_count"]
        .as_u64()
        .unwrap()
}

#[test]
fn sync_mirrors_upstream_metadata_and_dnf_installs_from_a_snapshot() {
    let up_dir = tempfile::tempdir().unwrap();
    let repo = up_dir.path().join("repo");
    cairn::formats::samples::demo_packages(&repo).unwrap();
    cairn::formats::samples::tricky_packages(&repo).unwrap();
    if let Some(real) = real_rpms() {
        copy_rpms(&real, &repo.join("real"));
    }
    createrepo_dir(&repo, false);
    let upstream = Upstream::start_logged(up_dir.path());
    let reference = {
        let repomd = parse_xml(&std::fs::read(repo.join("repodata/repomd.xml")).unwrap());
        let href = |kind: &str| {
            repomd
                .children
                .iter()
                .find(|d| d.attr("type") == Some(kind))
                .unwrap()
                .child("location")
                .unwrap()
                .attr("href")
                .unwrap()
                .to_string()
        };
        ["primary", "filelists", "other"].map(|k| {
            (
                k,
                packages_by_pkgid(&parse_xml(&decompress(
                    &std::fs::read(repo.join(href(k))).unwrap(),
                ))),
            )
        })
    };
    for backend in backends() {
        let env = mirror_env(&backend, &upstream, "");
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{report}");
        let synced = report["m"]["packages"].as_u64().unwrap();
        assert!(synced >= 7, "{report}");
        assert_eq!(report["m"]["downloaded"].as_u64().unwrap(), synced);

        // Unchanged upstream: one request, nothing downloaded.
        let before = upstream.requests().len();
        let again = env.json(&["repo", "sync", "m"]);
        assert_eq!(again["m"]["status"], "unchanged", "{again}");
        assert_eq!(
            upstream.requests()[before..],
            ["GET /repo/repodata/repomd.xml 200"],
            "{}",
            backend.name()
        );

        env.ok(&["snapshot", "create", "m", "--name", "s1"]);
        let show = env.json(&["snapshot", "show", "m", "s1"]);
        let pool = env.data().join("pool");
        for (kind, theirs) in &reference {
            let f = show["repodata"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["type"] == *kind)
                .unwrap();
            let sha = f["sha256"].as_str().unwrap();
            let bytes = std::fs::read(pool.join(&sha[..2]).join(&sha[2..4]).join(sha)).unwrap();
            let ours = packages_by_pkgid(&parse_xml(&decompress(&bytes)));
            assert_eq!(ours.len() as u64, synced);
            for (id, node) in &ours {
                let r = theirs
                    .get(id)
                    .unwrap_or_else(|| panic!("{kind}: {id} not upstream"));
                if let Some(d) = first_difference(node, r, "") {
                    panic!("{}: {kind}: {id}: {d}", backend.name());
                }
            }
        }
        let server = env.serve();
        let installed = dnf_install(&server.url("/repos/m/s1/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
        let history = env.json(&["repo", "show", "m"]);
        let syncs = history["syncs"].as_array().unwrap();
        assert_eq!(syncs.len(), 2);
        assert_eq!(syncs[0]["status"], "unchanged");
        assert_eq!(syncs[1]["status"], "ok");
    }
}

#[test]
fn regenerated_upstream_metadata_with_the_same_packages_reuses_the_publication() {
    for backend in backends() {
        let (_up_dir, repo, _upstream, env) = synced_demo_mirror(&backend);
        let latest =
            |env: &Env| env.json(&["repo", "show", "m"])["repo"]["latest_publication_id"].clone();
        let before = latest(&env);
        assert!(before.is_i64(), "{before}");
        let served = |env: &Env| {
            let server = env.serve();
            http()
                .get(server.url("/repos/m/latest/repodata/repomd.xml"))
                .send()
                .unwrap()
                .bytes()
                .unwrap()
        };
        let repomd_before = served(&env);

        // Upstream re-indexed the same packages: repomd.xml differs, the content not.
        let repomd = repo.join("repodata/repomd.xml");
        let mut bytes = std::fs::read(&repomd).unwrap();
        bytes.extend_from_slice(b"\n");
        std::fs::write(&repomd, bytes).unwrap();
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{}: {report}", backend.name());
        assert_eq!(report["m"]["downloaded"], 0, "{report}");
        assert_eq!(report["m"]["added"], 0, "{report}");
        assert_eq!(
            latest(&env),
            before,
            "{}: the publication is reused",
            backend.name()
        );
        assert_eq!(served(&env), repomd_before);
    }
}

#[test]
fn a_failed_sync_changes_nothing_names_every_failure_and_keeps_good_downloads() {
    for backend in backends() {
        let (up_dir, repo, _upstream, env) = synced_demo_mirror(&backend);
        env.ok(&["snapshot", "create", "m", "--name", "before"]);

        // Three new packages upstream: one fine, one corrupted after indexing, one gone.
        let new = cairn::formats::samples::generate(&repo.join("new"), 3).unwrap();
        createrepo_dir(&repo, true);
        make_world_readable(up_dir.path());
        let corrupt = std::fs::read(&new[1]).unwrap();
        let mut flipped = corrupt.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        std::fs::write(&new[1], &flipped).unwrap();
        let missing = std::fs::read(&new[2]).unwrap();
        std::fs::remove_file(&new[2]).unwrap();

        let out = env.run(&["repo", "sync", "m"]);
        assert!(!out.status.success(), "{}: the sync fails", backend.name());
        let err = String::from_utf8_lossy(&out.stderr);
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            err.contains(&name(&new[1])) && err.contains("checksum mismatch"),
            "{err}"
        );
        assert!(err.contains(&name(&new[2])) && err.contains("404"), "{err}");
        assert_eq!(package_count(&env), 4, "the repo content did not move");
        let history = env.json(&["repo", "show", "m"]);
        assert_eq!(history["syncs"][0]["status"], "failed");
        assert!(history["syncs"][0]["error"]
            .as_str()
            .unwrap()
            .contains(&name(&new[1])));

        // Upstream fixed: only the two packages that failed are fetched.
        std::fs::write(&new[1], &corrupt).unwrap();
        std::fs::write(&new[2], &missing).unwrap();
        make_world_readable(up_dir.path());
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{report}");
        assert_eq!(report["m"]["downloaded"], 2, "{report}");
        assert_eq!(report["m"]["added"], 3, "{report}");
        assert_eq!(package_count(&env), 7);
        let before = env.json(&["snapshot", "show", "m", "before"]);
        assert_eq!(
            before["snapshot"]["package_count"], 4,
            "snapshots never move"
        );
    }
}

/// A tiny tmpfs mounted over a directory (as root) for as long as it lives.
struct TinyFs(std::path::PathBuf);

impl TinyFs {
    fn mount(dir: &Path, size: &str) -> TinyFs {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (the suite runs as root, as `.ci/run` does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TinyFs(dir.to_path_buf())
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_downloads_fails_the_sync_naming_the_file_and_changes_nothing() {
    for backend in backends() {
        let (up_dir, repo, _upstream, env) = synced_demo_mirror(&backend);
        let new = cairn::formats::samples::generate(&repo.join("new"), 3).unwrap();
        createrepo_dir(&repo, true);
        make_world_readable(up_dir.path());

        // The file system under one new package's pool bucket is full: that package
        // cannot be written.
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&new[0]).unwrap()));
        let bucket = env.data().join("pool").join(&sha[..2]).join(&sha[2..4]);
        std::fs::create_dir_all(&bucket).unwrap();
        let full = TinyFs::mount(&bucket, "4k");
        let out = env.run(&["repo", "sync", "m"]);
        assert!(!out.status.success(), "{}: the sync fails", backend.name());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("No space left on device") && err.contains(&bucket.display().to_string()),
            "{}: the error names the file and the cause: {err}",
            backend.name()
        );
        assert_eq!(package_count(&env), 4, "the repo content did not move");
        let history = env.json(&["repo", "show", "m"]);
        assert_eq!(history["syncs"][0]["status"], "failed");
        drop(full);

        // Space again: the same sync succeeds and the pool holds every package whole.
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{report}");
        assert_eq!(report["m"]["added"], 3, "{report}");
        assert_eq!(package_count(&env), 7);
        let verify = env.json(&["db", "verify"]);
        assert_eq!(verify["corrupt"], serde_json::json!([]), "{verify}");
        assert_eq!(verify["missing"], serde_json::json!([]), "{verify}");
    }
}

#[test]
fn packages_another_repository_brought_into_the_pool_are_not_downloaded_again() {
    let (up_dir, _) = demo_upstream_tree();
    let upstream = Upstream::start_logged(up_dir.path());
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            &format!(
                "[[repo]]\nid = \"a\"\nfeed = \"{0}\"\n[[repo]]\nid = \"b\"\nfeed = \"{0}\"\n",
                upstream.url("repo/")
            ),
        );
        let first = env.json(&["repo", "sync", "a"]);
        assert_eq!(first["a"]["downloaded"], 4, "{first}");
        let before = upstream.requests().len();
        let second = env.json(&["repo", "sync", "b"]);
        assert_eq!(second["b"]["status"], "ok", "{second}");
        assert_eq!(second["b"]["packages"], 4, "{second}");
        assert_eq!(second["b"]["downloaded"], 0, "{second}");
        let packages_fetched = upstream.requests()[before..]
            .iter()
            .filter(|r| r.contains(".rpm "))
            .count();
        assert_eq!(packages_fetched, 0, "{}", backend.name());
    }
}

#[test]
fn requests_that_may_pass_later_are_retried_and_the_rest_fail_at_once() {
    let (up_dir, repo) = demo_upstream_tree();
    let busy_meta = up_dir.path().join("busy-meta");
    let busy_rpm = up_dir.path().join("busy-rpm");
    std::fs::write(&busy_meta, "").unwrap();
    std::fs::write(&busy_rpm, "").unwrap();
    let upstream = Upstream::start_busy_while(
        up_dir.path(),
        None,
        &[(r"repomd\.xml$", &busy_meta), (r"\.rpm$", &busy_rpm)],
    );
    let env = mirror_env(&Backend::Sqlite, &upstream, "");
    let saw = |path_part: &str, status: &str| {
        upstream
            .requests()
            .iter()
            .filter(|r| r.contains(path_part) && r.ends_with(status))
            .count()
    };

    // The upstream is busy: repomd.xml, then every package, answer 503 until the
    // marker goes; the sync waits and tries again.
    let child = env
        .cmd(&["repo", "sync", "m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("a 503 for repomd.xml", || saw("repomd.xml", " 503") > 0);
    std::fs::remove_file(&busy_meta).unwrap();
    wait_for("a 503 for a package", || saw(".rpm", " 503") > 0);
    std::fs::remove_file(&busy_rpm).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the sync succeeds on retry: {err}");
    assert!(
        err.contains("503 Service Unavailable; retrying in 1 s"),
        "{err}"
    );
    assert_eq!(saw("repomd.xml", " 200"), 1, "{:?}", upstream.requests());
    assert_eq!(package_count(&env), 4);

    // A package that stays busy fails after three attempts; a missing one after one.
    let new = cairn::formats::samples::generate(&repo.join("new"), 2).unwrap();
    createrepo_dir(&repo, true);
    make_world_readable(up_dir.path());
    std::fs::remove_file(&new[1]).unwrap();
    std::fs::write(&busy_rpm, "").unwrap();
    let out = env.run(&["repo", "sync", "m"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let (busy, missing) = (name(&new[0]), name(&new[1]));
    assert!(
        err.contains(&format!("{busy}: HTTP 503 Service Unavailable")),
        "{err}"
    );
    // The missing package's path matches the busy pattern too: it fails the same way.
    assert!(err.contains(&missing), "{err}");
    assert_eq!(saw(&busy, " 503"), 3, "{:?}", upstream.requests());
    // Upstream no longer busy: the missing package is asked for once.
    std::fs::remove_file(&busy_rpm).unwrap();
    let out = env.run(&["repo", "sync", "m"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{missing}: HTTP 404 Not Found")),
        "{err}"
    );
    assert_eq!(saw(&missing, " 404"), 1, "a 404 is not retried");
    assert_eq!(package_count(&env), 4, "the failed syncs changed nothing");
}

#[test]
fn removals_upstream_and_filters_shape_the_mirror() {
    let (up_dir, repo, files) = upstream_tree(|repo| {
        cairn::formats::samples::tricky_packages(repo).unwrap();
        cairn::formats::samples::demo_packages(repo).unwrap()
    });
    let upstream = Upstream::start(up_dir.path());
    let backend = Backend::Sqlite;

    let env = mirror_env(&backend, &upstream, "");
    env.ok(&["repo", "sync", "m"]);
    assert_eq!(package_count(&env), 7);
    // demo-docs disappears upstream: it leaves the mirror's current content.
    let docs = files
        .iter()
        .find(|f| f.to_string_lossy().contains("demo-docs"))
        .unwrap();
    std::fs::remove_file(docs).unwrap();
    createrepo_dir(&repo, true);
    make_world_readable(up_dir.path());
    let report = env.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["removed"], 1, "{report}");
    assert_eq!(package_count(&env), 6);

    // Filters: only noarch, only demo-*, but not demo-tools.
    let filtered = mirror_env(
        &backend,
        &upstream,
        "arch = [\"noarch\"]\ninclude = [\"demo-*\", \"tricky-*\"]\nexclude = [\"demo-tools\"]\n",
    );
    let report = filtered.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["status"], "ok", "{report}");
    // demo-app, demo-lib (noarch) and tricky-minimal, tricky-deps (noarch); not the
    // x86_64 tricky-escapes, not demo-tools, and demo-docs is gone upstream.
    assert_eq!(report["m"]["packages"], 4, "{report}");
}

/// Writes a hand-made repository whose primary says `primary_body`.
fn hostile_repo(root: &Path, primary: &[u8]) {
    use std::io::Write;
    let repodata = root.join("repo/repodata");
    std::fs::create_dir_all(&repodata).unwrap();
    // filelists and other list the one package the hostile primaries describe.
    let evil = format!(
        "<package pkgid=\"{}\" name=\"evil\" arch=\"noarch\"><version epoch=\"0\" ver=\"1\" rel=\"1\"/></package>",
        "a".repeat(64)
    );
    let fl = format!("<?xml version=\"1.0\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"1\">{evil}</filelists>");
    let ot = format!("<?xml version=\"1.0\"?>\n<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"1\">{evil}</otherdata>");
    let mut repomd = String::from("<?xml version=\"1.0\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\">\n<revision>1</revision>\n");
    for (kind, body) in [
        ("primary", primary),
        ("filelists", fl.as_bytes()),
        ("other", ot.as_bytes()),
    ] {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(body).unwrap();
        let mut gz = enc.finish().unwrap();
        if kind == "primary" && body.starts_with(b"TRUNCATE") {
            gz.truncate(gz.len() / 2);
        }
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&gz));
        let name = format!("repodata/{sha}-{kind}.xml.gz");
        std::fs::write(root.join("repo").join(&name), &gz).unwrap();
        repomd.push_str(&format!(
            "<data type=\"{kind}\"><checksum type=\"sha256\">{sha}</checksum><location href=\"{name}\"/><size>{}</size></data>\n",
            gz.len()
        ));
    }
    repomd.push_str("</repomd>\n");
    std::fs::write(repodata.join("repomd.xml"), repomd).unwrap();
}

#[test]
fn hostile_or_broken_upstream_metadata_is_refused_with_a_clear_error() {
    let package = |href: &str| {
        format!(
            "<?xml version=\"1.0\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" packages=\"1\"><package type=\"rpm\"><name>evil</name><arch>noarch</arch><version epoch=\"0\" ver=\"1\" rel=\"1\"/><checksum type=\"sha256\" pkgid=\"YES\">{}</checksum><size package=\"10\" installed=\"0\" archive=\"0\"/><location href=\"{href}\"/></package></metadata>",
            "a".repeat(64)
        )
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("leaves the repository", package("../../etc/passwd").into_bytes()),
        ("leaves the repository", package("http://elsewhere/x.rpm").into_bytes()),
        // Percent-encoded escapes (an upstream server decodes them) and query strings.
        ("leaves the repository", package("%2e%2e/%2e%2e/etc/passwd").into_bytes()),
        ("leaves the repository", package("%2E%2E/escaped-pkgs/x.rpm").into_bytes()),
        ("leaves the repository", package("Packages/e/evil.rpm?x=1").into_bytes()),
        ("unknown entity", b"<!DOCTYPE m [<!ENTITY x \"y\">]><metadata><package><name>&x;</name></package></metadata>".to_vec()),
        ("deflate", b"TRUNCATE".iter().chain(package("Packages/e/evil.rpm").as_bytes()).copied().collect()),
        (
            "absurd package size",
            package("Packages/e/evil.rpm")
                .replace("package=\"10\"", "package=\"100000000000000000\"")
                .into_bytes(),
        ),
        // One element of 70 MB (a gzip of 70 KB): refused before it fills memory.
        (
            "an element is larger than",
            package("Packages/e/evil.rpm")
                .replace("<name>evil</name>", &format!("<name>evil</name><description>{}</description>", "a".repeat(70 << 20)))
                .into_bytes(),
        ),
    ];
    for (expect, primary) in cases {
        let up_dir = tempfile::tempdir().unwrap();
        hostile_repo(up_dir.path(), &primary);
        let upstream = Upstream::start(up_dir.path());
        let env = mirror_env(&Backend::Sqlite, &upstream, "");
        let out = env.run(&["repo", "sync", "m"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "refused: {err}");
        assert!(err.contains("sync failed"), "{err}");
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
        assert_eq!(package_count(&env), 0);
    }
    // Mirror mode publishes upstream's locations as they are: one the server would
    // decode into another name is refused, not published unservable.
    let up_dir = tempfile::tempdir().unwrap();
    hostile_repo(up_dir.path(), package("Packages/e/evil%2Bx.rpm").as_bytes());
    let upstream = Upstream::start_logged(up_dir.path());
    let env = mirror_env(&Backend::Sqlite, &upstream, "mode = \"mirror\"\n");
    let out = env.run(&["repo", "sync", "m"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot be served"), "{err}");
    assert!(err.contains("evil%2Bx.rpm"), "{err}");
    assert_eq!(package_count(&env), 0);
    // Not a yum repository at all.
    let up_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(up_dir.path().join("repo/repodata")).unwrap();
    std::fs::write(
        up_dir.path().join("repo/repodata/repomd.xml"),
        "<html><body>hello</body></html>",
    )
    .unwrap();
    let upstream = Upstream::start(up_dir.path());
    let env = mirror_env(&Backend::Sqlite, &upstream, "");
    let out = env.run(&["repo", "sync", "m"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a repomd.xml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keep_latest_keeps_the_newest_versions_in_rpm_order() {
    let up_dir = tempfile::tempdir().unwrap();
    let repo = up_dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for v in ["1.0", "1.9", "1.10", "2.0~rc1"] {
        let mut b = rpm::PackageBuilder::new("multi", v, "MIT", "noarch", "Many versions");
        b.using_config(rpm::BuildConfig::v4().compression(rpm::CompressionType::None))
            .release("1");
        b.build()
            .unwrap()
            .write_file(repo.join(format!("multi-{v}-1.noarch.rpm")))
            .unwrap();
    }
    createrepo_dir(&repo, false);
    let upstream = Upstream::start(up_dir.path());
    let env = mirror_env(&Backend::Sqlite, &upstream, "keep_latest = 2\n");
    let report = env.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["packages"], 2, "{report}");
    env.ok(&["snapshot", "create", "m", "--name", "s"]);
    let server = env.serve();
    let c = http();
    let status = |v: &str| {
        c.head(server.url(&format!("/repos/m/s/Packages/m/multi-{v}-1.noarch.rpm")))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // rpm order: 2.0~rc1 > 1.10 > 1.9 > 1.0.
    assert_eq!(status("2.0~rc1"), 200);
    assert_eq!(status("1.10"), 200);
    assert_eq!(status("1.9"), 404);
    assert_eq!(status("1.0"), 404);
}

/// Recompresses the primary, filelists and other of the createrepo_c repository at
/// `repo` with zstd (createrepo_c of some distributions cannot write it), rewriting
/// their records in repomd.xml.
fn recompress_with_zstd(repo: &Path) {
    let repomd_path = repo.join("repodata/repomd.xml");
    let repomd = std::fs::read_to_string(&repomd_path).unwrap();
    let mut out = String::new();
    for (i, block) in repomd.split("<data ").enumerate() {
        let kind = ["primary\"", "filelists\"", "other\""]
            .iter()
            .any(|k| block.starts_with(&format!("type=\"{k}")));
        if i == 0 || !kind {
            if i > 0 {
                out.push_str("<data ");
            }
            out.push_str(block);
            continue;
        }
        let between = |a: &str, b: &str| block.split(a).nth(1).unwrap().split(b).next().unwrap();
        let href = between("<location href=\"", "\"");
        let checksum = between("<checksum type=\"sha256\">", "<");
        let size = between("<size>", "<");
        let gz = std::fs::read(repo.join(href)).unwrap();
        let zst = zstd::encode_all(&decompress(&gz)[..], 3).unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&zst));
        let new_href = format!(
            "repodata/{sha}-{}.zst",
            href.rsplit('-').next().unwrap().trim_end_matches(".gz")
        );
        std::fs::write(repo.join(&new_href), &zst).unwrap();
        std::fs::remove_file(repo.join(href)).unwrap();
        out.push_str("<data ");
        out.push_str(
            &block
                .replace(href, &new_href)
                .replace(&format!(">{checksum}<"), &format!(">{sha}<"))
                .replace(
                    &format!("<size>{size}</size>"),
                    &format!("<size>{}</size>", zst.len()),
                ),
        );
    }
    std::fs::write(&repomd_path, out).unwrap();
}

#[test]
fn upstream_metadata_in_xz_bzip2_and_zstd_is_read() {
    for compression in ["xz", "bz2", "zstd"] {
        let up_dir = tempfile::tempdir().unwrap();
        let repo = up_dir.path().join("repo");
        cairn::formats::samples::demo_packages(&repo).unwrap();
        let written_by_createrepo = if compression == "zstd" {
            "gz"
        } else {
            compression
        };
        let out = std::process::Command::new("createrepo_c")
            .args([
                "--no-database",
                "--quiet",
                "--compress-type",
                written_by_createrepo,
            ])
            .arg(&repo)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if compression == "zstd" {
            recompress_with_zstd(&repo);
            let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
            assert_eq!(repomd.matches("primary.xml.zst").count(), 1, "{repomd}");
        }
        let upstream = Upstream::start(up_dir.path());
        let env = mirror_env(&Backend::Sqlite, &upstream, "");
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{compression}: {report}");
        assert_eq!(report["m"]["packages"], 4, "{compression}: {report}");
        let server = env.serve();
        let installed = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
        assert!(
            installed.contains(&"demo-lib".to_string()),
            "{compression}: {installed:?}"
        );
    }
}

#[test]
fn serve_runs_scheduled_syncs_and_serves_their_result() {
    let (up_dir, _) = demo_upstream_tree();
    let upstream = Upstream::start(up_dir.path());
    let env = mirror_env(&Backend::Sqlite, &upstream, "schedule = \"every 1s\"\n");
    let server = env.serve();
    let c = http();
    wait_for("the scheduled sync to publish latest", || {
        c.get(server.url("/repos/m/latest/repodata/repomd.xml"))
            .send()
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    });
    let installed = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
    assert!(
        installed.contains(&"demo-tools".to_string()),
        "{installed:?}"
    );
    let history = env.json(&["repo", "show", "m"]);
    assert!(!history["syncs"].as_array().unwrap().is_empty());
    assert_eq!(
        history["syncs"].as_array().unwrap().last().unwrap()["status"],
        "ok"
    );
    // The scheduler's syncs are audited as the scheduler's.
    let audit = env.json(&["audit", "--actor", "scheduler"]);
    let rows = audit.as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["operation"] == "sync" && r["target"] == "repo:m" && r["outcome"] == "ok"),
        "{audit}"
    );
}

/// A child process killed (if still running) when the test ends, even by a panic.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// While a sync downloads a large package from a slow upstream (`sync` starts it, for
/// as long as it lasts), the server keeps serving the last published content and the
/// command line keeps reading, and taking snapshots of, the catalog.
fn reads_go_on_during_a_sync(backend: &Backend, scheduled: bool) {
    let (up_dir, repo) = demo_upstream_tree();
    let upstream = Upstream::start_slow(up_dir.path(), "2m");
    let schedule = if scheduled {
        "schedule = \"every 2s\"\n"
    } else {
        ""
    };
    let env = mirror_env(backend, &upstream, schedule);
    env.ok(&["repo", "sync", "m"]);
    cairn::formats::samples::large_package(&repo, "bigpkg", 16 * 1024 * 1024).unwrap();
    createrepo_dir(&repo, true);
    make_world_readable(up_dir.path());

    let server = env.serve();
    let c = http();
    let repomd_url = server.url("/repos/m/latest/repodata/repomd.xml");
    let repomd_before = c.get(&repomd_url).send().unwrap().bytes().unwrap();
    let mut cli_sync = (!scheduled).then(|| {
        KillOnDrop(
            env.cmd(&["repo", "sync", "m"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    });
    let tmp = env.data().join("pool/tmp");
    let downloading = || {
        std::fs::read_dir(&tmp).is_ok_and(|d| {
            d.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("partial-")
                    && e.metadata().is_ok_and(|m| m.len() > 1024 * 1024)
            })
        })
    };
    wait_for("the sync to be downloading", downloading);

    let what = format!("{}, scheduled: {scheduled}", backend.name());
    let get = |path: &str| {
        let r = c.get(server.url(path)).send().unwrap();
        assert_eq!(r.status(), 200, "{what}: GET {path}");
        r.bytes().unwrap()
    };
    assert_eq!(
        get("/repos/m/latest/repodata/repomd.xml"),
        repomd_before,
        "{what}"
    );
    get("/");
    get("/repos/m/");
    let list = env.json(&["repo", "list"]);
    assert!(list.to_string().contains("\"m\""), "{what}: {list}");
    let show = env.json(&["repo", "show", "m"]);
    assert_eq!(show["syncs"][0]["status"], "running", "{what}: {show}");
    env.ok(&["snapshot", "create", "m", "--name", "during"]);
    assert!(
        downloading(),
        "{what}: the sync was still running after the reads"
    );
    // A second sync of the same repository waits for the first, saying so.
    let second = (!scheduled).then(|| {
        env.cmd(&["repo", "sync", "m", "--json"])
            .env("CAIRN_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    });

    // The sync then publishes; the snapshot taken meanwhile holds the earlier content.
    match cli_sync.as_mut() {
        Some(KillOnDrop(child)) => assert!(child.wait().unwrap().success(), "{what}"),
        None => wait_for("the scheduled sync to publish", || package_count(&env) == 5),
    }
    assert_eq!(package_count(&env), 5, "{what}");
    let during = env.json(&["snapshot", "show", "m", "during"]);
    assert_eq!(during["snapshot"]["package_count"], 4, "{what}: {during}");
    if let Some(second) = second {
        let out = second.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("m: another sync of it is running; waiting"),
            "{err}"
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["m"]["status"], "unchanged", "{what}: {report}");
    }
    wait_for("the server to serve the new latest", || {
        get("/repos/m/latest/repodata/repomd.xml") != repomd_before
    });
}

#[test]
fn a_sync_never_blocks_serving_or_cli_reads() {
    for backend in backends() {
        reads_go_on_during_a_sync(&backend, false);
        reads_go_on_during_a_sync(&backend, true);
    }
}

#[test]
fn entitlement_style_tls_client_certificates_and_proxies() {
    let (up_dir, _) = demo_upstream_tree();
    let certs = make_certificates();
    let c = |f: &str| certs.path().join(f);
    let upstream = Upstream::start_tls(
        up_dir.path(),
        &c("server.pem"),
        &c("server.key"),
        Some(&c("ca.pem")),
    );
    let feed = upstream.https_url("repo/");

    // Without a client certificate the upstream refuses us: a failed sync that says why.
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"{feed}\"\ntls_ca = \"{}\"\n",
            c("ca.pem").display()
        ),
    );
    let out = env.run(&["repo", "sync", "m"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("repomd.xml") && err.contains("400"), "{err}");

    // With it, the sync works.
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"{feed}\"\ntls_ca = \"{}\"\ntls_client_cert = \"{}\"\ntls_client_key = \"{}\"\n",
            c("ca.pem").display(),
            c("client.pem").display(),
            c("client.key").display()
        ),
    );
    let report = env.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["packages"], 4, "{report}");

    // A feed only reachable through a proxy.
    let plain = Upstream::start(up_dir.path());
    let proxy = Upstream::proxy_to(&plain);
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"http://mirror.invalid/repo/\"\nproxy = \"{}\"\n",
            proxy.url("")
        ),
    );
    let report = env.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["packages"], 4, "{report}");
}

#[test]
fn a_killed_sync_resumes_its_partial_download() {
    let (up_dir, _, big) = upstream_tree(|repo| {
        cairn::formats::samples::large_package(repo, "bigpkg", 12 * 1024 * 1024).unwrap()
    });
    let full = std::fs::metadata(&big).unwrap().len();
    let upstream = Upstream::start_slow(up_dir.path(), "4m");
    let env = mirror_env(&Backend::Sqlite, &upstream, "");
    let mut child = env.cmd(&["repo", "sync", "m"]).spawn().unwrap();
    let tmp = env.data().join("pool/tmp");
    wait_for("a partial download of at least 2 MiB", || {
        std::fs::read_dir(&tmp).is_ok_and(|d| {
            d.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("partial-")
                    && e.metadata().is_ok_and(|m| m.len() > 2 * 1024 * 1024)
            })
        })
    });
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    // Nothing half-written: the catalog and the pool agree, and the repository has no
    // content yet; the history still shows the run as running.
    let verify = env.json(&["db", "verify"]);
    assert_eq!(verify["corrupt"], serde_json::json!([]), "{verify}");
    assert_eq!(verify["missing"], serde_json::json!([]), "{verify}");
    assert_eq!(package_count(&env), 0);
    assert_eq!(
        env.json(&["repo", "show", "m"])["syncs"][0]["status"],
        "running"
    );
    let report = env.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["status"], "ok", "{report}");
    // The next sync recorded the killed one as failed.
    let syncs = env.json(&["repo", "show", "m"])["syncs"].clone();
    assert_eq!(syncs[0]["status"], "ok", "{syncs}");
    assert_eq!(syncs[1]["status"], "failed", "{syncs}");
    assert!(
        syncs[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{syncs}"
    );
    let bytes = report["m"]["bytes"].as_u64().unwrap();
    assert!(
        bytes < full - 2 * 1024 * 1024,
        "resumed: {bytes} of {full} bytes fetched again"
    );
    // The resumed blob is complete and correct.
    env.ok(&["snapshot", "create", "m", "--name", "s"]);
    let server = env.serve();
    let body = http()
        .get(server.url("/repos/m/s/Packages/b/bigpkg-1.0-1.noarch.rpm"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(body.as_ref(), std::fs::read(&big).unwrap().as_slice());
}

/// `cairn repo sync m` in a 200-column pseudo-terminal made by script(1), which prints
/// the screen's bytes on its standard output.
fn sync_on_a_terminal(env: &Env) -> std::process::Command {
    let command = format!(
        "stty cols 200 rows 50; {BIN} --config {} repo sync m",
        env.config.display()
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env("CAIRN_LOG", "warn");
    script
}

#[test]
fn a_sync_shows_progress_as_a_bar_on_a_terminal_and_as_log_lines_otherwise() {
    require_tool("script");
    let (up_dir, repo, _) = upstream_tree(|repo| {
        cairn::formats::samples::large_package(repo, "bigpkg", 16 * 1024 * 1024).unwrap()
    });
    // "0/1 files, 9.50 MiB of 16.00 MiB, 2.00 MiB/s, 3 seconds left": bytes so far
    // (counted while the package arrives), of how many, the rate and the time left.
    let check = |facts: &str, files: &str| {
        let parts: Vec<&str> = facts.split(", ").collect();
        assert_eq!(parts.len(), 4, "{facts}");
        assert!(parts[0].ends_with(files), "{facts}");
        let (bytes, of) = parts[1].split_once(" of ").expect(facts);
        assert!(
            bytes.ends_with("MiB") && !bytes.starts_with("0."),
            "{facts}"
        );
        assert!(of.starts_with("16.") && of.ends_with(" MiB"), "{facts}");
        assert!(parts[2].ends_with("MiB/s"), "{facts}");
        assert!(parts[3].ends_with(" left"), "{facts}");
    };

    // Not a terminal: a log line every 5 s (16 MiB at 2 MB/s take at least 7 s).
    let upstream = Upstream::start_slow(up_dir.path(), "2m");
    let env = mirror_env(&Backend::Sqlite, &upstream, "");
    let out = env
        .cmd(&["repo", "sync", "m"])
        .env("CAIRN_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("downloading 0/1 files, "))
        .unwrap_or_else(|| panic!("no progress line in:\n{err}"));
    check(line.split_once("downloading ").unwrap().1, "0/1 files");

    // On a terminal (a pseudo-terminal made by script(1), 200 columns wide): a bar with
    // the same facts, measured every second (16 MiB at 4 MB/s take at least 3 s). A
    // second package is gone upstream: when the sync fails, the bar is cleared and the
    // error starts on a clean line.
    let gone = cairn::formats::samples::generate(&repo.join("gone"), 1).unwrap();
    createrepo_dir(&repo, true);
    std::fs::remove_file(&gone[0]).unwrap();
    make_world_readable(up_dir.path());
    let upstream = Upstream::start_slow(up_dir.path(), "4m");
    let env = mirror_env(&Backend::Sqlite, &upstream, "");
    let out = sync_on_a_terminal(&env).output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{screen}");
    let frame = screen
        .split(['\r', '\n'])
        .filter(|f| f.contains("downloading [") && f.contains("MiB/s"))
        .find(|f| !f.contains(" 0 B/s"))
        .unwrap_or_else(|| panic!("no bar with a rate in:\n{screen}"));
    let facts = frame.split_once("] ").unwrap().1;
    check(facts.split('\x1b').next().unwrap().trim_end(), "/2 files");
    let failed = screen
        .find("m: sync failed")
        .expect("the failure is reported");
    let before = &screen[..failed];
    assert!(
        before.ends_with("\x1b[2K") || before.ends_with('\n'),
        "the error shares the bar's line: {:?}",
        &before[before.len().saturating_sub(120)..]
    );
}

#[test]
fn log_lines_never_share_a_line_with_the_progress_bar() {
    require_tool("script");
    let (up_dir, _, _) = upstream_tree(|repo| {
        cairn::formats::samples::large_package(repo, "bigpkg", 16 * 1024 * 1024).unwrap();
        cairn::formats::samples::generate(&repo.join("small"), 1).unwrap()
    });
    // The small package is busy (503) for its first two attempts, the second of which
    // comes a second into the 16 MiB download at 4 MB/s, with the bar on screen.
    let busy = up_dir.path().join("busy");
    std::fs::write(&busy, "").unwrap();
    let upstream =
        Upstream::start_busy_while(up_dir.path(), Some("4m"), &[(r"gen-[^/]*\.rpm$", &busy)]);
    let env = mirror_env(&Backend::Sqlite, &upstream, "");
    let child = sync_on_a_terminal(&env)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let busy_answers = || {
        upstream
            .requests()
            .iter()
            .filter(|r| r.contains("/gen-") && r.ends_with(" 503"))
            .count()
    };
    wait_for("two 503s for the small package", || busy_answers() >= 2);
    std::fs::remove_file(&busy).unwrap();
    let out = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    let second_warning = screen.match_indices("retrying in").nth(1).expect(&screen).0;
    assert!(
        screen[..second_warning].contains("downloading ["),
        "the bar was on screen before the second warning: {screen:?}"
    );
    for line in screen.split(['\r', '\n']) {
        assert!(
            !(line.contains("downloading [") && line.contains("retrying in")),
            "a log line shares the bar's line: {line:?}"
        );
    }
}

const COMPS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">
<comps>
  <group>
    <id>demo-group</id>
    <name>Demo Group</name>
    <description>Everything the demo needs</description>
    <default>true</default>
    <uservisible>true</uservisible>
    <packagelist>
      <packagereq type="mandatory">demo-app</packagereq>
    </packagelist>
  </group>
</comps>
"#;

fn advisory(id: &str, name: &str, version: &str) -> String {
    format!(
        r#"  <update from="security@example.com" status="final" type="security" version="2.0">
    <id>{id}</id>
    <title>Update for {name}</title>
    <issued date="2026-11-01 00:00:00"/>
    <description>Fixes &lt;things&gt;.</description>
    <pkglist>
      <collection short="demo">
        <name>demo</name>
        <package name="{name}" version="{version}" release="1" epoch="0" arch="noarch" src="{name}-{version}-1.src.rpm">
          <filename>{name}-{version}-1.noarch.rpm</filename>
        </package>
      </collection>
    </pkglist>
  </update>
"#
    )
}

/// A module stream of demo-lib, with its defaults, as modulemd v2 documents.
const DEMO_MODULE: &str = "---
document: modulemd
version: 2
data:
  name: demo
  stream: \"1\"
  version: 20261101000000
  context: c0ffee42
  arch: noarch
  summary: Demo module
  description: The demo library as a module stream.
  license:
    module: [MIT]
  profiles:
    default:
      rpms: [demo-lib]
  artifacts:
    rpms:
    - demo-lib-0:1.2.0-1.noarch
...
---
document: modulemd-defaults
version: 1
data:
  module: demo
  stream: \"1\"
  profiles:
    \"1\": [default]
...
";

const MODULES: &str =
    "---\ndocument: modulemd-defaults\nversion: 1\ndata:\n  module: demo\n  stream: \"1\"\n...\n";

#[test]
fn comps_updateinfo_and_modules_are_carried_and_updateinfo_is_trimmed() {
    let up_dir = tempfile::tempdir().unwrap();
    let repo = up_dir.path().join("repo");
    cairn::formats::samples::demo_packages(&repo).unwrap();
    let extra = up_dir.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("comps.xml"), COMPS).unwrap();
    let updateinfo = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>\n{}{}</updates>\n",
        advisory("ADV-LIB", "demo-lib", "1.2.0"),
        advisory("ADV-DOCS", "demo-docs", "1.0")
    );
    std::fs::write(extra.join("updateinfo.xml"), &updateinfo).unwrap();
    std::fs::write(extra.join("modules.yaml"), MODULES).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let repo_s = repo.to_str().unwrap();
    let comps = extra.join("comps.xml");
    run(&[
        "createrepo_c",
        "--no-database",
        "--quiet",
        "-g",
        comps.to_str().unwrap(),
        repo_s,
    ]);
    let repodata = repo.join("repodata");
    let ui = extra.join("updateinfo.xml");
    run(&[
        "modifyrepo_c",
        ui.to_str().unwrap(),
        repodata.to_str().unwrap(),
    ]);
    let modules = extra.join("modules.yaml");
    run(&[
        "modifyrepo_c",
        "--mdtype=modules",
        modules.to_str().unwrap(),
        repodata.to_str().unwrap(),
    ]);
    let upstream = Upstream::start(up_dir.path());

    for backend in backends() {
        let env = mirror_env(&backend, &upstream, "exclude = [\"demo-docs\"]\n");
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["packages"], 3, "{report}");
        env.ok(&["snapshot", "create", "m", "--name", "s"]);
        let show = env.json(&["snapshot", "show", "m", "s"]);
        let pool = env.data().join("pool");
        let record = |kind: &str| -> Vec<u8> {
            let f = show["repodata"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["type"] == kind)
                .unwrap_or_else(|| panic!("{}: no {kind} record in {show}", backend.name()));
            let sha = f["sha256"].as_str().unwrap();
            decompress(&std::fs::read(pool.join(&sha[..2]).join(&sha[2..4]).join(sha)).unwrap())
        };
        assert_eq!(record("group"), COMPS.as_bytes());
        assert_eq!(record("group_gz"), COMPS.as_bytes());
        assert_eq!(record("modules"), MODULES.as_bytes());
        let ui = String::from_utf8(record("updateinfo")).unwrap();
        assert!(ui.contains("ADV-LIB"), "{ui}");
        assert!(
            !ui.contains("ADV-DOCS"),
            "advisories of filtered packages are dropped: {ui}"
        );

        let server = env.serve();
        let url = server.url("/repos/m/s/");
        let (out, _) = dnf(&url, &["group", "list", "--hidden"]);
        assert!(out.contains("Demo Group"), "{out}");
        let (_, installed) = dnf(&url, &["group", "install", "demo-group"]);
        assert!(installed.contains(&"demo-app".to_string()), "{installed:?}");

        // The API lists the advisories the snapshot publishes: the trimmed ones.
        let token = env.json(&["token", "create", "--name", "r", "--scope", "read"])["token"]
            .as_str()
            .unwrap()
            .to_string();
        let text = http()
            .get(server.url("/api/v1/repos/m/trees/s/advisories"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            listed,
            serde_json::json!([{
                "id": "ADV-LIB", "type": "security", "severity": "",
                "title": "Update for demo-lib", "issued": "2026-11-01 00:00:00",
                "packages": ["demo-lib-1.2.0-1.noarch"],
            }]),
            "{}",
            backend.name()
        );
    }
}

#[test]
fn mirror_mode_serves_upstream_metadata_bytes_unchanged() {
    let (up_dir, repo, _) =
        upstream_tree(|repo| cairn::formats::samples::demo_packages(&repo.join("pkgs")).unwrap());
    // A detached signature next to repomd.xml (its content is opaque to Cairn).
    std::fs::write(
        repo.join("repodata/repomd.xml.asc"),
        b"-----BEGIN PGP SIGNATURE-----\nfake\n",
    )
    .unwrap();
    let upstream = Upstream::start(up_dir.path());
    for backend in backends() {
        let env = mirror_env(&backend, &upstream, "mode = \"mirror\"\n");
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{report}");
        env.ok(&["snapshot", "create", "m", "--name", "s"]);
        let server = env.serve();
        let c = http();
        let get = |path: &str| {
            let r = c
                .get(server.url(&format!("/repos/m/s/{path}")))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "{}: {path}", backend.name());
            r.bytes().unwrap().to_vec()
        };
        let repomd = std::fs::read(repo.join("repodata/repomd.xml")).unwrap();
        assert_eq!(
            get("repodata/repomd.xml"),
            repomd,
            "repomd.xml byte-identical"
        );
        assert_eq!(
            get("repodata/repomd.xml.asc"),
            std::fs::read(repo.join("repodata/repomd.xml.asc")).unwrap()
        );
        let doc = parse_xml(&repomd);
        for data in doc.children.iter().filter(|d| d.name == "data") {
            let href = data.child("location").unwrap().attr("href").unwrap();
            assert_eq!(get(href), std::fs::read(repo.join(href)).unwrap(), "{href}");
        }
        // Packages keep upstream's locations.
        assert_eq!(
            get("pkgs/demo-lib-1.2.0-1.noarch.rpm"),
            std::fs::read(repo.join("pkgs/demo-lib-1.2.0-1.noarch.rpm")).unwrap()
        );
        let installed = dnf_install(&server.url("/repos/m/s/"), &["demo-app"]);
        assert!(
            installed.contains(&"demo-tools".to_string()),
            "{installed:?}"
        );
        // Mirrors are filled by sync, not by import.
        let out = env.run(&["import", "m", repo.join("pkgs").to_str().unwrap()]);
        assert!(!out.status.success());
    }
}

#[test]
fn sha1_and_sha512_upstreams_are_verified_and_known_packages_not_downloaded_again() {
    for (backend, checksum) in backends()
        .into_iter()
        .flat_map(|b| [(b.clone(), "sha1"), (b, "sha512")])
    {
        let what = format!("{}, {checksum}", backend.name());
        let up_dir = tempfile::tempdir().unwrap();
        let repo = up_dir.path().join("repo");
        cairn::formats::samples::demo_packages(&repo).unwrap();
        let createrepo = || {
            let out = std::process::Command::new("createrepo_c")
                .args(["--no-database", "--quiet", "--checksum", checksum])
                .arg(&repo)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        createrepo();
        let upstream = Upstream::start(up_dir.path());
        let env = mirror_env(&backend, &upstream, "");
        let first = env.json(&["repo", "sync", "m"]);
        assert_eq!(first["m"]["downloaded"], 4, "{what}: {first}");
        let more = cairn::formats::samples::generate(&repo.join("more"), 2).unwrap();
        createrepo();
        // One of the new packages changes after indexing: its checksum, of upstream's
        // type, no longer matches.
        let mut bytes = std::fs::read(&more[1]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&more[1], &bytes).unwrap();
        make_world_readable(up_dir.path());
        let out = env.run(&["repo", "sync", "m"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {err}");
        assert!(
            err.contains(&format!("{checksum} checksum mismatch")),
            "{what}: {err}"
        );
        bytes[last] ^= 0xff;
        std::fs::write(&more[1], &bytes).unwrap();
        let second = env.json(&["repo", "sync", "m"]);
        assert_eq!(second["m"]["status"], "ok", "{what}: {second}");
        assert_eq!(second["m"]["packages"], 6, "{what}: {second}");
        assert_eq!(
            second["m"]["downloaded"], 1,
            "{what}: only the package that failed: {second}"
        );
        let verify = env.json(&["db", "verify"]);
        assert_eq!(verify["corrupt"], serde_json::json!([]), "{what}: {verify}");
    }
}

fn build_pkg(dir: &Path, name: &str, version: &str, epoch: Option<u32>) -> std::path::PathBuf {
    let mut b = rpm::PackageBuilder::new(name, version, "MIT", "noarch", "diff test");
    b.using_config(rpm::BuildConfig::v4().compression(rpm::CompressionType::None))
        .release("1");
    if let Some(e) = epoch {
        b.epoch(e);
    }
    let path = dir.join(format!("{name}-{version}-1.noarch.rpm"));
    b.build().unwrap().write_file(&path).unwrap();
    path
}

#[test]
fn snapshot_diff_follows_rpm_version_order() {
    for backend in backends() {
        let up_dir = tempfile::tempdir().unwrap();
        let repo = up_dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let a = build_pkg(&repo, "alpha", "1.9", None);
        let b = build_pkg(&repo, "beta", "2.0", None);
        let c = build_pkg(&repo, "gamma", "1.0", Some(1));
        build_pkg(&repo, "delta", "1.0", None);
        createrepo_dir(&repo, false);
        let upstream = Upstream::start(up_dir.path());
        let env = mirror_env(&backend, &upstream, "");
        env.ok(&["repo", "sync", "m"]);
        env.ok(&["snapshot", "create", "m", "--name", "one"]);

        for f in [&a, &b, &c] {
            std::fs::remove_file(f).unwrap();
        }
        build_pkg(&repo, "alpha", "1.10", None);
        build_pkg(&repo, "beta", "2.0~rc1", None);
        build_pkg(&repo, "epsilon", "0.1", None);
        createrepo_dir(&repo, false);
        make_world_readable(up_dir.path());
        env.ok(&["repo", "sync", "m"]);
        env.ok(&["snapshot", "create", "m", "--name", "two"]);

        let d = env.json(&["snapshot", "diff", "m", "one", "two"]);
        let names = |k: &str| -> Vec<String> {
            d[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names("added"), vec!["epsilon"], "{d}");
        assert_eq!(names("removed"), vec!["gamma"], "{d}");
        assert_eq!(names("upgraded"), vec!["alpha"], "{d}");
        assert_eq!(d["upgraded"][0]["to"], "1.10-1");
        assert_eq!(
            names("downgraded"),
            vec!["beta"],
            "{}: 2.0~rc1 sorts before 2.0: {d}",
            backend.name()
        );
        let text = env.ok(&["snapshot", "diff", "m", "one", "two"]);
        assert!(
            text.contains("upgraded   alpha.noarch 1.9-1 -> 1.10-1"),
            "{text}"
        );
    }
}

#[test]
fn syncs_snapshot_automatically_and_retention_spares_what_aliases_use() {
    let (up_dir, repo) = demo_upstream_tree();
    let upstream = Upstream::start(up_dir.path());
    let env = mirror_env(
        &Backend::Sqlite,
        &upstream,
        "snapshot_name = \"{date}\"\nkeep_snapshots = 2\n",
    );
    let names = || -> Vec<String> {
        env.json(&["snapshot", "list", "m"])
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    let change = |n: usize| {
        build_pkg(&repo, &format!("round{n}"), "1.0", None);
        createrepo_dir(&repo, false);
        make_world_readable(up_dir.path());
    };
    env.ok(&["repo", "sync", "m"]);
    let first = names();
    assert_eq!(first.len(), 1, "{first:?}");
    let date = first[0].clone();
    // Unchanged upstream: no new snapshot.
    env.ok(&["repo", "sync", "m"]);
    assert_eq!(names().len(), 1);
    change(1);
    env.ok(&["repo", "sync", "m"]);
    assert_eq!(names(), vec![date.clone(), format!("{date}-2")]);
    env.ok(&["publish", "m", &format!("{date}-2"), "--as", "prod"]);
    change(2);
    env.ok(&["repo", "sync", "m"]);
    // Keep the newest two; the oldest goes.
    assert_eq!(names(), vec![format!("{date}-2"), format!("{date}-3")]);
    change(3);
    let out = env.ok(&["repo", "sync", "m"]);
    // {date}-2 is third newest now, but prod uses it: kept.
    assert_eq!(
        names(),
        vec![
            format!("{date}-2"),
            format!("{date}-3"),
            format!("{date}-4")
        ],
        "{out}"
    );
}

#[test]
fn views_merge_member_comps_and_updateinfo_whatever_the_members_mode() {
    let up_dir = tempfile::tempdir().unwrap();
    let all = up_dir.path().join("all");
    let files = cairn::formats::samples::demo_packages(&all).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Member "a": demo-app with a group; member "b": the rest with another group and an advisory.
    for (member, group, filter) in [("a", "group-a", "demo-app"), ("b", "group-b", "demo-")] {
        let dir = up_dir.path().join(member);
        std::fs::create_dir_all(&dir).unwrap();
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let is_app = name.starts_with("demo-app");
            if (member == "a") == is_app && name.starts_with(filter) {
                std::fs::copy(f, dir.join(&name)).unwrap();
            }
        }
        let comps = COMPS
            .replace("demo-group", group)
            .replace("Demo Group", &format!("Group {member}"));
        let comps_path = up_dir.path().join(format!("{member}-comps.xml"));
        std::fs::write(&comps_path, comps).unwrap();
        run(&[
            "createrepo_c",
            "--no-database",
            "--quiet",
            "-g",
            comps_path.to_str().unwrap(),
            dir.to_str().unwrap(),
        ]);
        if member == "b" {
            let ui = up_dir.path().join("updateinfo.xml");
            std::fs::write(
                &ui,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>\n{}</updates>\n",
                    advisory("ADV-LIB", "demo-lib", "1.2.0")
                ),
            )
            .unwrap();
            run(&[
                "modifyrepo_c",
                ui.to_str().unwrap(),
                dir.join("repodata").to_str().unwrap(),
            ]);
            let modules = up_dir.path().join("modules.yaml");
            std::fs::write(&modules, DEMO_MODULE).unwrap();
            run(&[
                "modifyrepo_c",
                "--mdtype=modules",
                modules.to_str().unwrap(),
                dir.join("repodata").to_str().unwrap(),
            ]);
        }
    }
    let upstream = Upstream::start(up_dir.path());
    // What dnf sees pointed at the upstreams themselves.
    let module_list = |url: &str| {
        let (out, _) = dnf(url, &["module", "list"]);
        out.lines()
            .filter(|l| l.starts_with("demo "))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    let upstream_modules = module_list(&upstream.url("b/"));
    assert_eq!(upstream_modules.len(), 1, "{upstream_modules:?}");
    assert!(upstream_modules[0].contains("[d]"), "{upstream_modules:?}");
    let groups = |url: &str| {
        let (out, _) = dnf(url, &["group", "list", "--hidden"]);
        out.lines()
            .filter(|l| l.trim_start().starts_with("Group "))
            .map(|l| l.trim().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    // The packages dnf finds through the advisory (no package needs installing first).
    let advisories = |url: &str| {
        let (out, _) = dnf(url, &["repoquery", "--advisory", "ADV-LIB"]);
        out.lines()
            .filter(|l| l.starts_with("demo-"))
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let mut upstream_groups = groups(&upstream.url("a/"));
    upstream_groups.extend(groups(&upstream.url("b/")));
    let mut upstream_advisories = advisories(&upstream.url("a/"));
    upstream_advisories.extend(advisories(&upstream.url("b/")));
    assert_eq!(upstream_groups.len(), 2, "{upstream_groups:?}");
    assert_eq!(upstream_advisories.len(), 1, "{upstream_advisories:?}");
    // Members regenerated, mirrored, or one of each: the view carries every member's
    // comps and updateinfo whatever its mode.
    for (mode_a, mode_b) in [
        ("regenerate", "regenerate"),
        ("mirror", "mirror"),
        ("regenerate", "mirror"),
    ] {
        let env = Env::with_repo_toml(
            &Backend::Sqlite,
            &format!(
                "[[repo]]\nid = \"a\"\nfeed = \"{}\"\nmode = \"{mode_a}\"\n\
                 [[repo]]\nid = \"b\"\nfeed = \"{}\"\nmode = \"{mode_b}\"\n\
                 [[view]]\nname = \"v\"\nrepos = [\"a\", \"b\"]\n",
                upstream.url("a/"),
                upstream.url("b/")
            ),
        );
        env.ok(&["repo", "sync", "--all"]);
        env.ok(&["view", "snapshot", "v", "--name", "s"]);
        let server = env.serve();
        let c = http();
        let repomd = c
            .get(server.url("/views/v/s/repodata/repomd.xml"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let doc = parse_xml(&repomd);
        let href = |kind: &str| {
            doc.children
                .iter()
                .find(|d| d.attr("type") == Some(kind))
                .unwrap_or_else(|| panic!("{mode_a}/{mode_b}: no {kind} record"))
                .child("location")
                .unwrap()
                .attr("href")
                .unwrap()
                .to_string()
        };
        let get = |path: &str| {
            decompress(
                &c.get(server.url(&format!("/views/v/s/{path}")))
                    .send()
                    .unwrap()
                    .bytes()
                    .unwrap(),
            )
        };
        let comps = String::from_utf8(get(&href("group_gz"))).unwrap();
        assert!(
            comps.contains("group-a") && comps.contains("group-b"),
            "{mode_a}/{mode_b}: {comps}"
        );
        let ui = String::from_utf8(get(&href("updateinfo"))).unwrap();
        assert!(ui.contains("ADV-LIB"), "{mode_a}/{mode_b}: {ui}");
        for tree in ["s", "latest"] {
            let url = server.url(&format!("/views/v/{tree}/"));
            assert_eq!(groups(&url), upstream_groups, "{mode_a}/{mode_b} {tree}");
            assert_eq!(
                advisories(&url),
                upstream_advisories,
                "{mode_a}/{mode_b} {tree}"
            );
            assert_eq!(
                module_list(&url),
                upstream_modules,
                "{mode_a}/{mode_b} {tree}"
            );
        }
        let (_, installed) = dnf(&server.url("/views/v/s/"), &["install", "demo-app"]);
        assert!(
            installed.contains(&"demo-lib".to_string()),
            "{mode_a}/{mode_b}: {installed:?}"
        );
    }
}

/// An upstream indexed with `createrepo_c --checksum md5` (dnf accepts it) syncs: md5 is
/// verified for metadata and packages, the report warns about it, and the republished
/// metadata uses sha256. A package whose bytes differ from its md5 fails the sync.
#[test]
fn an_upstream_with_md5_checksums_syncs_with_a_warning_and_is_still_verified() {
    let (up_dir, repo) = demo_upstream_tree();
    run_ok(
        Command::new("createrepo_c")
            .args(["--no-database", "--quiet", "--checksum", "md5"])
            .arg(&repo),
    );
    let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    assert!(repomd.contains("type=\"md5\""), "{repomd}");
    let upstream = Upstream::start(up_dir.path());
    for backend in backends() {
        let env = mirror_env(&backend, &upstream, "");
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{report}");
        assert_eq!(report["m"]["packages"], 4, "{report}");
        let warnings = report["m"]["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{report}");
        let warning = warnings[0].as_str().unwrap();
        assert!(
            warning.contains("md5") && warning.contains("4 package(s)"),
            "{warning}"
        );
        let server = env.serve();
        let published = http()
            .get(server.url("/repos/m/latest/repodata/repomd.xml"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(published.contains("type=\"sha256\""), "{published}");
        assert!(!published.contains("type=\"md5\""), "{published}");
        let text = env.ok(&["repo", "sync", "m"]);
        assert!(text.contains("unchanged"), "{text}");
    }

    // The same upstream with one package's bytes changed (same size): refused.
    let victim = std::fs::read_dir(&repo)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "rpm"))
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let env = mirror_env(&Backend::Sqlite, &upstream, "");
    let out = env.run(&["repo", "sync", "m"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("md5"), "{err}");
    assert!(
        err.contains(victim.file_name().unwrap().to_str().unwrap()),
        "names the package: {err}"
    );
}

/// With filters, the published modules document never names a package the filters
/// removed: a stream whose artifacts lose a package is left out with its defaults
/// (documented rule), while a filter that spares the stream's packages keeps it
/// installable.
#[test]
fn module_streams_stay_consistent_with_filters() {
    let (up_dir, repo) = demo_upstream_tree();
    let modules = up_dir.path().join("modules.yaml");
    std::fs::write(&modules, DEMO_MODULE).unwrap();
    run_ok(
        Command::new("modifyrepo_c")
            .arg("--mdtype=modules")
            .arg(&modules)
            .arg(repo.join("repodata")),
    );
    let upstream = Upstream::start(up_dir.path());
    let module_lines = |url: &str| {
        let (out, _) = dnf(url, &["module", "list"]);
        out.lines()
            .filter(|l| l.starts_with("demo "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(module_lines(&upstream.url("repo/")).len(), 1);

    // The filter spares the stream's packages: the stream is there and installs.
    let env = mirror_env(&Backend::Sqlite, &upstream, "exclude = [\"demo-docs\"]\n");
    env.ok(&["repo", "sync", "m"]);
    let server = env.serve();
    let url = server.url("/repos/m/latest/");
    assert_eq!(module_lines(&url).len(), 1);
    let (_, installed) = dnf(&url, &["module", "install", "demo:1"]);
    assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
    drop(server);

    // The filter removes demo-lib, an artifact of demo:1: the stream and its defaults
    // are left out, and dnf works on the rest with no "broken modules" complaint.
    let env = mirror_env(&Backend::Sqlite, &upstream, "exclude = [\"demo-lib\"]\n");
    env.ok(&["repo", "sync", "m"]);
    let server = env.serve();
    let url = server.url("/repos/m/latest/");
    assert!(module_lines(&url).is_empty(), "{:?}", module_lines(&url));
    let (out, installed) = dnf(&url, &["install", "demo-docs"]);
    assert!(
        installed.contains(&"demo-docs".to_string()),
        "{installed:?}"
    );
    assert!(!out.to_lowercase().contains("broken"), "{out}");
}
