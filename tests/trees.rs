//! Installation trees (`kind = "tree"`): a tree built as a distribution publishes one
//! (`.treeinfo` written by productmd, images with real checksums, two variants made
//! with createrepo_c) is mirrored whole and served byte for byte; productmd reads what
//! Cairn serves; dnf installs from each variant; a bad image fails the sync naming it;
//! with an on-demand or streamed policy the images are downloaded and the packages
//! fetched when asked for.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Fails with the way to install productmd when Python cannot import it.
fn require_productmd() {
    let ok = Command::new("python3")
        .args(["-c", "import productmd.treeinfo"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests need Python's productmd library: python3 -m pip install productmd"
    );
}

/// Bytes that look like nothing in particular, `n` of them, different per `seed`.
fn noise(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// An installation tree under `root/tree/`: BaseOS (demo-lib, demo-tools, demo-app)
/// and AppStream (demo-docs), each a createrepo_c repository with its packages in
/// `Packages/`; a kernel, an initrd large enough to be downloaded resumably, a stage2
/// image and an EFI boot image; `.treeinfo` written by productmd with the images'
/// sha256; and the small files a distribution has at its root.
fn build_tree(root: &Path) -> PathBuf {
    require_productmd();
    let tree = root.join("tree");
    let all = root.join("all");
    let files = cairn::formats::samples::demo_packages(&all).unwrap();
    for variant in ["BaseOS", "AppStream"] {
        let packages = tree.join(variant).join("Packages");
        std::fs::create_dir_all(&packages).unwrap();
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap();
            if name.starts_with("demo-docs") == (variant == "AppStream") {
                std::fs::copy(f, packages.join(name)).unwrap();
            }
        }
        createrepo_dir(&tree.join(variant), false);
    }
    for (path, size, seed) in [
        ("images/pxeboot/vmlinuz", 64 * 1024, 1),
        ("images/pxeboot/initrd.img", 6 * 1024 * 1024, 2),
        ("images/install.img", 300 * 1024, 3),
        ("images/efiboot.img", 20 * 1024, 4),
    ] {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, noise(size, seed)).unwrap();
    }
    std::fs::write(tree.join("EULA"), "Demo Linux end user licence.\n").unwrap();
    std::fs::write(tree.join("GPL"), "GNU General Public License.\n").unwrap();
    std::fs::write(
        tree.join("media.repo"),
        "[InstallMedia]\nname=Demo Linux 9.4\nmediaid=None\nmetadata_expire=-1\ngpgcheck=0\ncost=500\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("RPM-GPG-KEY-Demo-9"),
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\ndemo\n-----END PGP PUBLIC KEY BLOCK-----\n",
    )
    .unwrap();
    write_treeinfo(&tree);
    tree
}

/// Writes `tree/.treeinfo` with productmd, with the sha256 of the images as they are.
fn write_treeinfo(tree: &Path) {
    let script = r#"
import sys
import productmd.treeinfo as T
root = sys.argv[1]
ti = T.TreeInfo()
ti.release.name = "Demo Linux"
ti.release.short = "Demo"
ti.release.version = "9.4"
ti.release.type = "ga"
ti.tree.arch = "x86_64"
ti.tree.build_timestamp = 1700000000
ti.tree.platforms.add("x86_64")
for vid in ["BaseOS", "AppStream"]:
    v = T.Variant(ti)
    v.id = vid
    v.uid = vid
    v.name = vid
    v.type = "variant"
    v.paths.repository = vid
    v.paths.packages = vid + "/Packages"
    ti.variants.add(v)
ti.images.images["x86_64"] = {
    "kernel": "images/pxeboot/vmlinuz",
    "initrd": "images/pxeboot/initrd.img",
    "efiboot.img": "images/efiboot.img",
}
ti.stage2.mainimage = "images/install.img"
for p in ["images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "images/install.img", "images/efiboot.img"]:
    ti.checksums.add(p, "sha256", root_dir=root)
ti.dump(root + "/.treeinfo")
"#;
    run_ok(Command::new("python3").args(["-c", script]).arg(tree));
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_str().unwrap().to_string());
            }
        }
    }
    out.sort();
    out
}

fn tree_env(backend: &Backend, upstream: &Upstream) -> Env {
    tree_env_with(backend, upstream, "")
}

/// [`tree_env`] with `extra` lines in the repository's section.
fn tree_env_with(backend: &Backend, upstream: &Upstream, extra: &str) -> Env {
    Env::with_repo_toml(
        backend,
        &format!(
            "[[repo]]\nid = \"t\"\nfeed = \"{}\"\nkind = \"tree\"\n{extra}",
            upstream.url("tree/")
        ),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_kickstart_tree_is_mirrored_whole_and_served_byte_identical() {
    let up_dir = tempfile::tempdir().unwrap();
    let tree = build_tree(up_dir.path());
    let upstream = Upstream::start_listing(up_dir.path());
    let everything = files_under(&tree);
    assert!(everything.contains(&".treeinfo".to_string()));
    for backend in backends() {
        let env = tree_env(&backend, &upstream);
        let report = env.json(&["repo", "sync", "t"]);
        assert_eq!(report["t"]["status"], "ok", "{report}");
        assert_eq!(report["t"]["packages"], 4, "{report}");
        env.ok(&["snapshot", "create", "t", "--name", "s"]);
        env.ok(&["publish", "t", "s", "--as", "prod"]);
        let server = env.serve();
        let c = http();
        let get = |tree_name: &str, path: &str| {
            let r = c
                .get(server.url(&format!("/repos/t/{tree_name}/{path}")))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "{}: {tree_name}/{path}", backend.name());
            r.bytes().unwrap().to_vec()
        };
        // Every file of the tree, at its path, byte for byte, in every tree URL.
        for tree_name in ["s", "prod", "latest"] {
            for path in &everything {
                assert_eq!(
                    get(tree_name, path),
                    std::fs::read(tree.join(path)).unwrap(),
                    "{}: {tree_name}/{path}",
                    backend.name()
                );
            }
        }
        // productmd reads the served .treeinfo, and every checksum it lists matches
        // the bytes served at that path.
        let served = env.dir.path().join("served.treeinfo");
        std::fs::write(&served, get("prod", ".treeinfo")).unwrap();
        let listed = run_ok(Command::new("python3").arg("-c").arg(
            "import sys, productmd.treeinfo as T\n\
             ti = T.TreeInfo(); ti.load(sys.argv[1])\n\
             print('variants', ' '.join(sorted(v.paths.repository for v in ti.variants.get_variants())))\n\
             for path, (algo, digest) in sorted(ti.checksums.checksums.items()): print(path, algo, digest)",
        ).arg(&served));
        let mut lines = listed.lines();
        assert_eq!(lines.next(), Some("variants AppStream BaseOS"), "{listed}");
        let mut checked = 0;
        for line in lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parts[1], "sha256", "{line}");
            assert_eq!(sha256_hex(&get("prod", parts[0])), parts[2], "{line}");
            checked += 1;
        }
        assert_eq!(checked, 4, "{listed}");
        // dnf installs from each variant's repository under the tree URL.
        let installed = dnf_install(&server.url("/repos/t/prod/BaseOS/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
        let installed = dnf_install(&server.url("/repos/t/s/AppStream/"), &["demo-docs"]);
        assert!(
            installed.contains(&"demo-docs".to_string()),
            "{installed:?}"
        );
        // The .repo file has a section per variant.
        let repo_file = String::from_utf8(
            c.get(server.url("/repos/t/prod.repo"))
                .send()
                .unwrap()
                .bytes()
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(
            repo_file.contains("/repos/t/prod/BaseOS/\n")
                && repo_file.contains("/repos/t/prod/AppStream/\n"),
            "{repo_file}"
        );
        // The tree's page shows its variants and images.
        let page = c
            .get(server.url("/repos/t/s/"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        for part in [
            "BaseOS/",
            "AppStream/",
            "images/pxeboot/vmlinuz",
            "images/install.img",
            "6.0 MiB",
            "inst.repo=",
        ] {
            assert!(page.contains(part), "{}: {part} in {page}", backend.name());
        }
        // A second sync of an unchanged tree does nothing; gc keeps every image and
        // db verify checks them.
        let again = env.json(&["repo", "sync", "t"]);
        assert_eq!(again["t"]["status"], "unchanged", "{again}");
        env.ok(&["gc", "--min-age", "0s"]);
        assert_eq!(
            get("s", "images/pxeboot/initrd.img"),
            std::fs::read(tree.join("images/pxeboot/initrd.img")).unwrap()
        );
        let verify = env.json(&["db", "verify"]);
        assert_eq!(verify["corrupt"], serde_json::json!([]), "{verify}");
        assert_eq!(verify["missing"], serde_json::json!([]), "{verify}");
        // A damaged image in the pool is named by db verify.
        let sha = sha256_hex(&std::fs::read(tree.join("images/install.img")).unwrap());
        let blob = env.blob(&sha);
        let mut bytes = std::fs::read(&blob).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&blob, &bytes).unwrap();
        let out = env.run(&["db", "verify"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("images/install.img"),
            "{}: {text}",
            backend.name()
        );
    }
}

#[test]
fn a_corrupted_image_fails_the_tree_sync_naming_it_and_changes_nothing() {
    let up_dir = tempfile::tempdir().unwrap();
    let tree = build_tree(up_dir.path());
    let upstream = Upstream::start(up_dir.path());
    let image = tree.join("images/install.img");
    let good = std::fs::read(&image).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 0xff;
    for backend in backends() {
        // A first sync of a tree with a bad image: nothing is published.
        std::fs::write(&image, &bad).unwrap();
        let env = tree_env(&backend, &upstream);
        let err = run_failing(&env, &["repo", "sync", "t"]);
        assert!(
            err.contains("images/install.img") && err.contains("checksum mismatch"),
            "{}: {err}",
            backend.name()
        );
        let server = env.serve();
        let status = http()
            .get(server.url("/repos/t/latest/.treeinfo"))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 404, "{}: nothing published", backend.name());

        // Good now: the sync completes.
        std::fs::write(&image, &good).unwrap();
        let report = env.json(&["repo", "sync", "t"]);
        assert_eq!(report["t"]["status"], "ok", "{report}");
        let latest = |path: &str| {
            http()
                .get(server.url(&format!("/repos/t/latest/{path}")))
                .send()
                .unwrap()
                .bytes()
                .unwrap()
                .to_vec()
        };
        let before = latest("AppStream/repodata/repomd.xml");

        let treeinfo_before = latest(".treeinfo");

        // Upstream publishes a new image and a variant changes, but the image's bytes
        // are damaged on the way: the sync fails naming the image, and latest still
        // serves the tree as it was.
        let mut new_image = noise(good.len(), 9);
        std::fs::write(&image, &new_image).unwrap();
        write_treeinfo(&tree);
        new_image[5] ^= 0xff;
        std::fs::write(&image, &new_image).unwrap();
        let note = up_dir.path().join("note.txt");
        std::fs::write(&note, "a new record\n").unwrap();
        run_ok(
            Command::new("modifyrepo_c")
                .args(["--mdtype=note", "--no-compress"])
                .arg(&note)
                .arg(tree.join("AppStream/repodata")),
        );
        let err = run_failing(&env, &["repo", "sync", "t"]);
        assert!(
            err.contains("images/install.img") && err.contains("checksum mismatch"),
            "{}: {err}",
            backend.name()
        );
        assert_eq!(latest("AppStream/repodata/repomd.xml"), before);
        assert_eq!(latest(".treeinfo"), treeinfo_before);
        assert_eq!(latest("images/install.img"), good);

        // Restore upstream for the next backend.
        std::fs::write(&image, &good).unwrap();
        write_treeinfo(&tree);
        createrepo_dir(&tree.join("AppStream"), false);
    }
}

#[test]
fn a_tree_on_a_mounted_iso_is_mirrored_from_its_file_url() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let tree = build_tree(dir.path());
        let env = Env::with_repo_toml(
            &backend,
            &format!(
                "[[repo]]\nid = \"t\"\nfeed = \"file://{}/\"\nkind = \"tree\"\n",
                tree.display()
            ),
        );
        env.ok(&["repo", "sync", "t"]);
        let server = env.serve();
        let c = http();
        // Byte-identical: .treeinfo, a large image (read resumably), and the key the
        // root's listing names.
        for path in [
            ".treeinfo",
            "images/pxeboot/initrd.img",
            "RPM-GPG-KEY-Demo-9",
            "media.repo",
        ] {
            let served = c
                .get(server.url(&format!("/repos/t/latest/{path}")))
                .send()
                .unwrap();
            assert_eq!(served.status(), 200, "{}: {path}", backend.name());
            assert_eq!(
                served.bytes().unwrap().as_ref(),
                std::fs::read(tree.join(path)).unwrap(),
                "{path}"
            );
        }
        let installed = dnf_install(&server.url("/repos/t/latest/BaseOS/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
    }
}

#[test]
fn tree_settings_are_checked() {
    for (toml, expected) in [
        (
            "[[repo]]\nid = \"t\"\nkind = \"tree\"\n",
            "needs a feed",
        ),
        (
            "[[repo]]\nid = \"t\"\nfeed = \"http://127.0.0.1:9/\"\nkind = \"tree\"\nmode = \"regenerate\"\n",
            "mirrored byte for byte",
        ),
        (
            "[[repo]]\nid = \"t\"\nfeed = \"http://127.0.0.1:9/\"\nkind = \"tree\"\nexclude = [\"x\"]\n",
            "cannot be combined",
        ),
        (
            "[[repo]]\nid = \"t\"\nfeed = \"http://127.0.0.1:9/\"\ntree_files = [\"a\"]\n",
            "tree_files needs kind = \"tree\"",
        ),
        (
            "[[repo]]\nid = \"t\"\nfeed = \"http://127.0.0.1:9/\"\nkind = \"tree\"\ntree_files = [\"../etc/passwd\"]\n",
            "relative to the tree root",
        ),
    ] {
        assert_config_refused(toml, expected);
    }
}

#[test]
fn on_demand_and_streamed_trees_download_their_images_and_fetch_packages_when_asked() {
    let up_dir = tempfile::tempdir().unwrap();
    let tree = build_tree(up_dir.path());
    let upstream = Upstream::start_logged(up_dir.path());
    let rpm_requests = || -> Vec<String> {
        upstream
            .requests()
            .into_iter()
            .filter(|r| r.contains(".rpm "))
            .collect()
    };
    let images = [
        "images/pxeboot/vmlinuz",
        "images/pxeboot/initrd.img",
        "images/install.img",
        "images/efiboot.img",
    ];
    for backend in backends() {
        let name = backend.name();
        let env = tree_env_with(&backend, &upstream, "policy = \"on_demand\"\n");
        let asked_before = upstream.requests().len();
        let rpms_before = rpm_requests().len();
        let report = env.json(&["repo", "sync", "t"]);
        assert_eq!(report["t"]["status"], "ok", "{name}: {report}");
        assert_eq!(report["t"]["packages"], 4, "{name}: {report}");
        // The sync downloaded every image and no package.
        assert_eq!(rpm_requests().len(), rpms_before, "{name}");
        let asked: Vec<String> = upstream.requests()[asked_before..].to_vec();
        for image in images {
            assert!(
                asked.iter().any(|r| r.contains(&format!("/tree/{image} "))),
                "{name}: {image} in {asked:?}"
            );
        }
        env.ok(&["snapshot", "create", "t", "--name", "s"]);
        let listed = env.json(&["repo", "packages", "t"]);
        assert_eq!(listed["total"], 4, "{name}: {listed}");
        assert_eq!(listed["not_stored"], 4, "{name}: {listed}");
        let verify = env.ok(&["db", "verify"]);
        assert!(verify.contains("not fetched yet"), "{name}: {verify}");

        let server = env.serve();
        let c = http();
        // The images and .treeinfo are served from the pool, byte for byte.
        for path in images.iter().copied().chain([".treeinfo"]) {
            let r = c
                .get(server.url(&format!("/repos/t/s/{path}")))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "{name}: {path}");
            assert_eq!(
                r.bytes().unwrap().to_vec(),
                std::fs::read(tree.join(path)).unwrap(),
                "{name}: {path}"
            );
        }
        // dnf installs from a variant through Cairn: upstream is asked for exactly
        // the packages installed, once each, and a second install asks for nothing.
        let installed = dnf_install(&server.url("/repos/t/s/BaseOS/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
        let fetched: Vec<String> = rpm_requests()[rpms_before..].to_vec();
        assert_eq!(fetched.len(), installed.len(), "{name}: {fetched:?}");
        for r in &fetched {
            assert!(r.starts_with("GET /tree/BaseOS/Packages/"), "{name}: {r}");
            assert!(r.ends_with(" 200"), "{name}: {r}");
        }
        dnf_install(&server.url("/repos/t/s/BaseOS/"), &["demo-app"]);
        assert_eq!(rpm_requests().len(), rpms_before + fetched.len(), "{name}");
        // repo fetch completes the snapshot: the AppStream package too, then nothing
        // is left to fetch.
        let report = env.json(&["repo", "fetch", "t", "s"]);
        assert_eq!(report["fetched"], 4 - fetched.len(), "{name}: {report}");
        let again = env.json(&["repo", "fetch", "t", "s"]);
        assert_eq!(again["fetched"], 0, "{name}: {again}");
        let verify = env.json(&["db", "verify"]);
        assert_eq!(verify["missing"], serde_json::json!([]), "{name}: {verify}");
        assert_eq!(verify["corrupt"], serde_json::json!([]), "{name}: {verify}");

        // Streamed: a package passes through verified, every time, and is not kept.
        let env = tree_env_with(&backend, &upstream, "policy = \"streamed\"\n");
        env.ok(&["repo", "sync", "t"]);
        let server = env.serve();
        let docs = std::fs::read_dir(tree.join("AppStream/Packages"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .next()
            .unwrap();
        let file = docs.file_name().unwrap().to_str().unwrap().to_string();
        let rpms_before = rpm_requests().len();
        for _ in 0..2 {
            let r = c
                .get(server.url(&format!("/repos/t/latest/AppStream/Packages/{file}")))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "{name}: {file}");
            assert_eq!(r.bytes().unwrap().to_vec(), std::fs::read(&docs).unwrap());
        }
        assert_eq!(rpm_requests().len(), rpms_before + 2, "{name}");
        let sha = sha256_hex(&std::fs::read(&docs).unwrap());
        assert!(
            !env.blob(&sha).exists(),
            "{name}: a streamed package is not kept"
        );
    }
}
