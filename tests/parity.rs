//! Metadata parity: what Cairn writes for a package equals what createrepo_c writes,
//! field by field (primary, filelists, other), for the real third-party packages and
//! for tricky packages built here.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn::domain::package::Package;
use cairn::formats::repodata::{self, Compression, Entry, Fragments};
use cairn::formats::rpmread::{self, FileFacts};
use common::*;

/// Every test package in one directory: the real ones (when provided) and built ones.
fn package_dir(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("rpms");
    let mut files = Vec::new();
    if let Some(real) = real_rpms() {
        files.extend(copy_rpms(&real, &dir));
    }
    files.extend(cairn::formats::samples::tricky_packages(&dir).unwrap());
    files.extend(cairn::formats::samples::demo_packages(&dir).unwrap());
    files.extend(rpmbuild_packages(&dir));
    files
}

fn createrepo(dir: &Path) -> BTreeMap<&'static str, Node> {
    require_tool("createrepo_c");
    let out = Command::new("createrepo_c")
        .arg("--no-database")
        .arg("--workers=2")
        .arg(dir)
        .output()
        .expect("createrepo_c runs");
    assert!(
        out.status.success(),
        "createrepo_c failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repomd = parse_xml(&std::fs::read(dir.join("repodata/repomd.xml")).unwrap());
    let mut docs = BTreeMap::new();
    for data in repomd.children.iter().filter(|c| c.name == "data") {
        let kind = data.attr("type").unwrap();
        let kind: &'static str = match kind {
            "primary" => "primary",
            "filelists" => "filelists",
            "other" => "other",
            _ => continue,
        };
        let href = data.child("location").unwrap().attr("href").unwrap();
        docs.insert(
            kind,
            parse_xml(&decompress(&std::fs::read(dir.join(href)).unwrap())),
        );
    }
    docs
}

fn compare(kind: &str, ours: &BTreeMap<String, Node>, reference: &BTreeMap<String, Node>) {
    let mut problems = Vec::new();
    for (id, node) in ours {
        match reference.get(id) {
            None => problems.push(format!(
                "{kind}: package {id} is not in createrepo_c's output"
            )),
            Some(r) => {
                if let Some(d) = first_difference(node, r, "") {
                    problems.push(format!("{kind}: package {id}: {d}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every file, rendered on its own, equals createrepo_c's entry for it.
#[test]
fn every_package_renders_like_createrepo_c() {
    let tmp = tempfile::tempdir().unwrap();
    let files = package_dir(tmp.path());
    let reference = createrepo(&tmp.path().join("rpms"));
    let mut read = Vec::new();
    for f in &files {
        let facts = file_facts(f);
        let pkg =
            rpmread::read_package(f, &facts).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        read.push((repodata::xml::render(&pkg), pkg));
    }
    let mut read: Vec<(Fragments, Package, String)> = read
        .into_iter()
        .map(|(f, p)| {
            let href = format!("x/{}", p.pkgid);
            (f, p, href)
        })
        .collect();
    repodata::sort_by_href(&mut read, |(_, _, h)| h.as_str());
    let entries: Vec<Entry> = read
        .iter()
        .map(|(_, p, h)| Entry {
            href: h,
            time_file: p.time_file,
        })
        .collect();
    let mut fragments = read.iter().map(|(f, _, _)| Ok(f.clone()));
    let data = repodata::build(&entries, &mut fragments, Compression::Gzip, &[], &[]).unwrap();
    for f in &data.files {
        if f.kind == "repomd" {
            continue;
        }
        let ours = packages_by_pkgid(&parse_xml(&decompress(&f.bytes)));
        let theirs = packages_by_pkgid(&reference[f.kind.as_str()]);
        assert_eq!(ours.len(), files.len(), "{}: one entry per file", f.kind);
        compare(&f.kind, &ours, &theirs);
        // The header's package count matches.
        let doc = parse_xml(&decompress(&f.bytes));
        assert_eq!(doc.attr("packages"), Some(files.len().to_string().as_str()));
    }
    if real_rpms().is_some() {
        assert!(files.len() >= 41 + 9, "the real packages were all read");
    }
}

/// The metadata of a published snapshot (through import, catalog and publish) equals
/// createrepo_c's for the packages it holds, on every catalog backend.
#[test]
fn published_snapshot_metadata_matches_createrepo_c() {
    let tmp = tempfile::tempdir().unwrap();
    package_dir(tmp.path());
    let reference = createrepo(&tmp.path().join("rpms"));
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let out = env.run(&["import", "fx", tmp.path().join("rpms").to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
        let (count, published) = snapshot_packages(&env, "fx", "s1");
        for (kind, ours) in &published {
            let theirs = packages_by_pkgid(&reference[kind]);
            assert_eq!(
                ours.len(),
                count,
                "{}: {kind} lists every package of the snapshot",
                backend.name()
            );
            compare(kind, ours, &theirs);
        }
    }
}

/// A metadata file's packages by pkgid.
type Packages = BTreeMap<String, Node>;

/// The package count of snapshot `snap` of `repo`, and its primary, filelists and
/// other by pkgid, read from the pool.
fn snapshot_packages(env: &Env, repo: &str, snap: &str) -> (usize, Vec<(&'static str, Packages)>) {
    let show = env.json(&["snapshot", "show", repo, snap]);
    let pool = env.data().join("pool");
    let mut out = Vec::new();
    for kind in ["primary", "filelists", "other"] {
        let f = show["repodata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["type"] == kind)
            .unwrap_or_else(|| panic!("{kind} is published"));
        let sha = f["sha256"].as_str().unwrap();
        let bytes = std::fs::read(pool.join(&sha[..2]).join(&sha[2..4]).join(sha)).unwrap();
        out.push((kind, packages_by_pkgid(&parse_xml(&decompress(&bytes)))));
    }
    let count = show["snapshot"]["package_count"].as_u64().unwrap() as usize;
    (count, out)
}

/// A sync and an import of more packages than go into the catalog at a time (they are
/// read, rendered and written in batches, and the repodata is rendered from the
/// catalog a window at a time) publish every package, each as createrepo_c describes
/// it; the sync's filters leave gaps in upstream's order that the batches must skip.
#[test]
fn many_packages_synced_and_imported_match_createrepo_c() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("www/repo");
    let files = cairn::formats::samples::generate_rich(&dir, 2600, 3, 2).unwrap();
    let reference = createrepo(&dir);
    make_world_readable(tmp.path());
    let upstream = Upstream::start(&tmp.path().join("www"));
    for backend in backends() {
        // Every name ending in 3 is left out: 260 gaps, some across batch borders.
        let env = mirror_env(&backend, &upstream, "exclude = [\"gen-*3\"]\n");
        env.ok(&["repo", "sync", "m"]);
        env.ok(&["snapshot", "create", "m", "--name", "s1"]);
        let (count, published) = snapshot_packages(&env, "m", "s1");
        assert_eq!(count, 2340, "{}", backend.name());
        for (kind, ours) in &published {
            let theirs = packages_by_pkgid(&reference[kind]);
            assert_eq!(ours.len(), count, "{}: {kind}", backend.name());
            compare(kind, ours, &theirs);
            assert!(
                ours.values()
                    .all(|p| !p.child("name").is_some_and(|n| n.text.ends_with('3'))),
                "{}: {kind} leaves the excluded packages out",
                backend.name()
            );
        }

        let env = Env::new(&backend, &["fx"]);
        env.ok(&["import", "fx", dir.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
        let (count, published) = snapshot_packages(&env, "fx", "s1");
        assert_eq!(count, files.len(), "{}", backend.name());
        for (kind, ours) in &published {
            let theirs = packages_by_pkgid(&reference[kind]);
            assert_eq!(ours.len(), count, "{}: {kind}", backend.name());
            compare(kind, ours, &theirs);
        }
    }
}

/// The tricky package's requires follow createrepo_c's filtering rules exactly (checked
/// here on its own, so the rules stay pinned even if the reference tool changes).
#[test]
fn requires_filtering_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let files = cairn::formats::samples::tricky_packages(tmp.path()).unwrap();
    let f = files
        .iter()
        .find(|f| f.to_string_lossy().contains("tricky-escapes"))
        .unwrap();
    let facts = FileFacts {
        sha256: "0".repeat(64),
        size: 1,
        mtime: 1,
    };
    let pkg = rpmread::read_package(f, &facts).unwrap();
    let requires: Vec<String> = pkg
        .deps
        .iter()
        .filter(|d| d.kind == cairn::domain::package::DepKind::Requires)
        .map(|d| {
            format!(
                "{}{}{}{}",
                d.name,
                d.flags
                    .as_deref()
                    .map(|f| format!(" {f}"))
                    .unwrap_or_default(),
                d.ver
                    .as_deref()
                    .map(|v| format!(" {}:{v}", d.epoch.as_deref().unwrap_or("")))
                    .unwrap_or_default(),
                if d.pre { " pre" } else { "" }
            )
        })
        .collect();
    // rpmlib() requires, the self-provided `selfprov = 0:1.0` and the primary file
    // /usr/bin/tricky are dropped; /usr/share/tricky/data.txt (not a primary file) is
    // kept; the duplicate dup-req collapses; the highest libc.so.6 comes last.
    assert!(
        !requires.iter().any(|r| r.starts_with("rpmlib(")),
        "{requires:?}"
    );
    assert!(
        !requires.iter().any(|r| r.starts_with("/usr/bin/tricky")),
        "{requires:?}"
    );
    assert!(
        requires.iter().any(|r| r == "/usr/share/tricky/data.txt"),
        "{requires:?}"
    );
    assert!(
        requires.iter().any(|r| r == "selfprov EQ 0:1.0"),
        "raw-string compare keeps `= 1.0`: {requires:?}"
    );
    assert_eq!(
        requires
            .iter()
            .filter(|r| r.starts_with("selfprov"))
            .count(),
        1,
        "{requires:?}"
    );
    assert_eq!(
        requires.iter().filter(|r| *r == "dup-req").count(),
        1,
        "{requires:?}"
    );
    assert_eq!(
        requires.last().map(String::as_str),
        Some("libc.so.6(GLIBC_2.34)(64bit)"),
        "{requires:?}"
    );
    assert_eq!(
        requires
            .iter()
            .filter(|r| r.starts_with("libc.so.6"))
            .count(),
        1,
        "{requires:?}"
    );
    assert!(
        requires.iter().any(|r| r == "shadow-utils pre"),
        "{requires:?}"
    );
    assert!(
        requires.iter().any(|r| r == "coreutils"),
        "preun never sets pre: {requires:?}"
    );
    assert!(
        requires.iter().any(|r| r == "/bin/sh") && requires.iter().any(|r| r == "/bin/sh pre"),
        "{requires:?}"
    );
    // Ten changelog entries (the limit), oldest first, shared timestamps moved apart.
    assert_eq!(pkg.changelogs.len(), 10);
    let dates: Vec<i64> = pkg.changelogs.iter().map(|c| c.date).collect();
    assert!(
        dates.windows(2).all(|w| w[0] < w[1]),
        "strictly ascending: {dates:?}"
    );
    assert!(pkg.changelogs.iter().all(|c| !c.author.ends_with(' ')));
}

/// Reading createrepo_c's metadata back (as a sync does) and rendering it again gives
/// createrepo_c's entries, field by field: the parser loses nothing.
#[test]
fn parsed_createrepo_c_metadata_renders_back_identically() {
    use cairn::formats::repodata::decompress::decompress as open_capped;
    use cairn::formats::repodata::parse::{self, PackageStream};
    let tmp = tempfile::tempdir().unwrap();
    let files = package_dir(tmp.path());
    let dir = tmp.path().join("rpms");
    let reference = createrepo(&dir);
    let repomd_bytes = std::fs::read(dir.join("repodata/repomd.xml")).unwrap();
    let repomd = parse::parse_repomd(&repomd_bytes, "repomd.xml").unwrap();
    let open = |kind: &str| std::fs::read(dir.join(&repomd.record(kind).unwrap().href)).unwrap();
    let (p, f, o) = (open("primary"), open("filelists"), open("other"));
    let limit = 1 << 30;
    let mut stream = PackageStream::new(
        open_capped(&p, limit, "primary").unwrap(),
        open_capped(&f, limit, "filelists").unwrap(),
        open_capped(&o, limit, "other").unwrap(),
    );
    let mut read = Vec::new();
    while let Some(entry) = stream.next_package().unwrap() {
        assert_eq!(entry.checksum.algorithm, "sha256");
        read.push((repodata::xml::render(&entry.package), entry));
    }
    assert_eq!(read.len(), files.len());
    repodata::sort_by_href(&mut read, |(_, e)| e.href.as_str());
    let entries: Vec<Entry> = read
        .iter()
        .map(|(_, e)| Entry {
            href: &e.href,
            time_file: e.package.time_file,
        })
        .collect();
    let mut fragments = read.iter().map(|(f, _)| Ok(f.clone()));
    let data = repodata::build(&entries, &mut fragments, Compression::Gzip, &[], &[]).unwrap();
    for f in data.files.iter().filter(|f| f.kind != "repomd") {
        let ours = packages_by_pkgid(&parse_xml(&decompress(&f.bytes)));
        compare(
            &f.kind,
            &ours,
            &packages_by_pkgid(&reference[f.kind.as_str()]),
        );
    }
}
