//! Mirroring what a distribution publishes besides packages: every repomd record
//! (productid, custom types) carried through regenerated metadata and views.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Adds `file` to `repo`'s repodata with `modifyrepo_c` under `mdtype`, with `extra`
/// arguments (compression).
fn modifyrepo(repo: &Path, file: &Path, mdtype: &str, extra: &[&str]) {
    run_ok(
        Command::new("modifyrepo_c")
            .arg(format!("--mdtype={mdtype}"))
            .args(extra)
            .arg(file)
            .arg(repo.join("repodata")),
    );
}

/// The `<data>` records of a repomd.xml by type.
fn records(repomd: &[u8]) -> std::collections::BTreeMap<String, Node> {
    parse_xml(repomd)
        .children
        .into_iter()
        .filter(|d| d.name == "data")
        .map(|d| (d.attr("type").unwrap_or_default().to_string(), d))
        .collect()
}

fn text(record: &Node, child: &str) -> Option<String> {
    record.child(child).map(|c| c.text.clone())
}

/// What repomd.xml says of a record, apart from where it is: checksums with their
/// types, sizes and timestamp.
fn described(record: &Node) -> Vec<(String, Option<String>, Option<String>)> {
    [
        "checksum",
        "open-checksum",
        "size",
        "open-size",
        "timestamp",
    ]
    .iter()
    .map(|c| {
        (
            c.to_string(),
            record
                .child(c)
                .and_then(|n| n.attr("type"))
                .map(str::to_string),
            text(record, c),
        )
    })
    .collect()
}

/// An upstream of the demo packages whose repodata also has, added by modifyrepo_c, a
/// gzip-compressed `productid`, an xz-compressed custom record, an uncompressed one, and
/// a `prestodelta` (not carried: delta RPMs are not mirrored). `name` marks the
/// product certificate so members' records differ.
fn distribution_repo(root: &Path, name: &str) -> std::path::PathBuf {
    let repo = root.join(name);
    cairn::formats::samples::demo_packages(&repo).unwrap();
    createrepo_dir(&repo, false);
    let extra = root.join(format!("{name}-extra"));
    std::fs::create_dir_all(&extra).unwrap();
    let productid = extra.join("productid");
    std::fs::write(
        &productid,
        format!("-----BEGIN CERTIFICATE-----\nproduct of {name}\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    modifyrepo(&repo, &productid, "productid", &[]);
    let custom = extra.join("site.txt");
    std::fs::write(&custom, format!("site data of {name}\n")).unwrap();
    modifyrepo(&repo, &custom, "site_data", &["--compress-type=xz"]);
    let plain = extra.join("notes.txt");
    std::fs::write(&plain, format!("notes of {name}\n")).unwrap();
    modifyrepo(&repo, &plain, &format!("{name}_notes"), &["--no-compress"]);
    let delta = extra.join("prestodelta.xml");
    std::fs::write(
        &delta,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<prestodelta>\n</prestodelta>\n",
    )
    .unwrap();
    modifyrepo(&repo, &delta, "prestodelta", &[]);
    let legacy = extra.join("legacy.txt");
    std::fs::write(&legacy, format!("checked with md5 in {name}\n")).unwrap();
    modifyrepo(&repo, &legacy, "legacy", &["--checksum=md5"]);
    repo
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Checks that `served` (a published repomd.xml, its files fetched with `get`) carries
/// each of upstream's `types` from `upstream` (a repository directory) byte for byte,
/// described as upstream describes it.
fn assert_carried(
    served: &[u8],
    get: &dyn Fn(&str) -> Vec<u8>,
    upstream: &Path,
    types: &[&str],
    what: &str,
) {
    let theirs = records(&std::fs::read(upstream.join("repodata/repomd.xml")).unwrap());
    let ours = records(served);
    for kind in types {
        let up = &theirs[*kind];
        let mine = ours
            .get(*kind)
            .unwrap_or_else(|| panic!("{what}: no {kind} record in {ours:?}"));
        assert_eq!(described(mine), described(up), "{what}: {kind}");
        let up_href = up.child("location").unwrap().attr("href").unwrap();
        let my_href = mine.child("location").unwrap().attr("href").unwrap();
        assert_eq!(
            get(my_href),
            std::fs::read(upstream.join(up_href)).unwrap(),
            "{what}: {kind} is upstream's bytes, compressed as upstream had it"
        );
    }
}

#[test]
fn every_repomd_record_upstream_has_is_carried_through_regenerated_metadata() {
    let up_dir = tempfile::tempdir().unwrap();
    let repo = distribution_repo(up_dir.path(), "repo");
    let upstream = Upstream::start(up_dir.path());
    for backend in backends() {
        let env = mirror_env(&backend, &upstream, "");
        let report = env.json(&["repo", "sync", "m"]);
        assert_eq!(report["m"]["status"], "ok", "{report}");
        env.ok(&["snapshot", "create", "m", "--name", "s"]);
        let server = env.serve();
        let c = http();
        let get = |path: &str| -> Vec<u8> {
            let r = c
                .get(server.url(&format!("/repos/m/s/{path}")))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "{}: {path}", backend.name());
            r.bytes().unwrap().to_vec()
        };
        let served = get("repodata/repomd.xml");
        assert_carried(
            &served,
            &get,
            &repo,
            &["productid", "site_data", "repo_notes"],
            backend.name(),
        );
        let ours = records(&served);
        assert!(
            !ours.contains_key("prestodelta"),
            "{}: delta RPMs are not mirrored, so their record is not carried: {ours:?}",
            backend.name()
        );
        // A record upstream checks with md5 is verified with it and listed with sha256
        // (as Cairn lists everything it republishes).
        let legacy = &ours["legacy"];
        let bytes = get(legacy.child("location").unwrap().attr("href").unwrap());
        let theirs = records(&std::fs::read(repo.join("repodata/repomd.xml")).unwrap());
        let upstream_href = theirs["legacy"]
            .child("location")
            .unwrap()
            .attr("href")
            .unwrap();
        assert_eq!(bytes, std::fs::read(repo.join(upstream_href)).unwrap());
        assert_eq!(
            theirs["legacy"].child("checksum").unwrap().attr("type"),
            Some("md5")
        );
        for (checksum, of) in [
            ("checksum", bytes.clone()),
            ("open-checksum", decompress(&bytes)),
        ] {
            let listed = legacy.child(checksum).unwrap();
            assert_eq!(listed.attr("type"), Some("sha256"), "{checksum}");
            assert_eq!(listed.text, sha256_hex(&of), "{checksum}");
        }
        assert!(
            report["m"]["warnings"].to_string().contains("md5"),
            "{report}"
        );
        // The package lists are still Cairn's own, and dnf reads the whole.
        let primary = ours["primary"].child("checksum").unwrap();
        assert_eq!(primary.attr("type"), Some("sha256"));
        let installed = dnf_install(&server.url("/repos/m/s/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
    }
}

#[test]
fn a_damaged_carried_record_fails_the_sync_naming_it_and_changes_nothing() {
    let up_dir = tempfile::tempdir().unwrap();
    let repo = distribution_repo(up_dir.path(), "repo");
    let upstream = Upstream::start(up_dir.path());
    let repomd_path = repo.join("repodata/repomd.xml");
    let repomd = std::fs::read(&repomd_path).unwrap();
    let href_of = |kind: &str| {
        records(&repomd)[kind]
            .child("location")
            .unwrap()
            .attr("href")
            .unwrap()
            .to_string()
    };
    for backend in backends() {
        let env = mirror_env(&backend, &upstream, "");
        env.ok(&["repo", "sync", "m"]);
        let server = env.serve();
        let latest_repomd = || {
            http()
                .get(server.url("/repos/m/latest/repodata/repomd.xml"))
                .send()
                .unwrap()
                .bytes()
                .unwrap()
        };
        let latest = latest_repomd();
        // The sync fails with every one of `needles` in its error, and latest stays.
        let fails_naming = |needles: &[&str]| {
            let err = run_failing(&env, &["repo", "sync", "m"]);
            for needle in needles {
                assert!(
                    err.contains(needle),
                    "{}: {needle} in {err}",
                    backend.name()
                );
            }
            assert_eq!(
                latest_repomd(),
                latest,
                "{}: latest unchanged",
                backend.name()
            );
        };

        // The productid's bytes differ from repomd's checksum.
        let productid = repo.join(href_of("productid"));
        let good = std::fs::read(&productid).unwrap();
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        std::fs::write(&productid, &bad).unwrap();
        // A new repomd.xml (one more record) so the sync does not skip as unchanged.
        let note = up_dir.path().join("more.txt");
        std::fs::write(&note, "more\n").unwrap();
        modifyrepo(&repo, &note, "more", &["--no-compress"]);
        fails_naming(&[&href_of("productid"), "checksum mismatch"]);
        std::fs::write(&productid, &good).unwrap();

        // The compressed bytes match, but their open form does not match the
        // open-checksum upstream lists.
        let mut doc = String::from_utf8(std::fs::read(&repomd_path).unwrap()).unwrap();
        let site = &records(doc.as_bytes())["site_data"];
        let open = text(site, "open-checksum").unwrap();
        let wrong: String = open
            .chars()
            .map(|c| if c == '0' { '1' } else { '0' })
            .collect();
        doc = doc.replace(&open, &wrong);
        std::fs::write(&repomd_path, &doc).unwrap();
        fails_naming(&[&href_of("site_data"), "(decompressed)"]);
        std::fs::write(&repomd_path, &repomd).unwrap();
        std::fs::remove_file(&note).unwrap();
    }
}

#[test]
fn views_carry_their_members_records_the_first_member_winning_per_type() {
    let up_dir = tempfile::tempdir().unwrap();
    let a = distribution_repo(up_dir.path(), "a");
    let b = distribution_repo(up_dir.path(), "b");
    let upstream = Upstream::start(up_dir.path());
    // A regenerated member and a mirrored one; two views listing them in either order.
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"a\"\nfeed = \"{}\"\n\
             [[repo]]\nid = \"b\"\nfeed = \"{}\"\nmode = \"mirror\"\n\
             [[view]]\nname = \"ab\"\nrepos = [\"a\", \"b\"]\n\
             [[view]]\nname = \"ba\"\nrepos = [\"b\", \"a\"]\n",
            upstream.url("a/"),
            upstream.url("b/")
        ),
    );
    env.ok(&["repo", "sync", "--all"]);
    env.ok(&["view", "snapshot", "ab", "--name", "s"]);
    env.ok(&["view", "snapshot", "ba", "--name", "s"]);
    let server = env.serve();
    let c = http();
    for (view, first, second) in [("ab", &a, &b), ("ba", &b, &a)] {
        for tree in ["s", "latest"] {
            let get = |path: &str| -> Vec<u8> {
                let r = c
                    .get(server.url(&format!("/views/{view}/{tree}/{path}")))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200, "{view}/{tree}: {path}");
                r.bytes().unwrap().to_vec()
            };
            let served = get("repodata/repomd.xml");
            let what = format!("view {view} {tree}");
            // Types both members have: the first member's.
            assert_carried(&served, &get, first, &["productid", "site_data"], &what);
            // Types only one member has: carried whichever member it is.
            assert_carried(&served, &get, &a, &["a_notes"], &what);
            assert_carried(&served, &get, &b, &["b_notes"], &what);
            assert_ne!(
                std::fs::read(first.join("repodata/repomd.xml")).unwrap(),
                std::fs::read(second.join("repodata/repomd.xml")).unwrap()
            );
        }
        let installed = dnf_install(&server.url(&format!("/views/{view}/s/")), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
    }
}
