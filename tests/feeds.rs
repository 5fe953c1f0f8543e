//! The feeds people use besides one http(s) URL: `file://` trees (a mounted ISO, an
//! NFS export), mirrorlists with failover from a broken mirror, and metalinks, whose
//! repomd.xml size and digest decide which mirror's metadata is taken. Against nginx
//! and real dnf.

mod common;

use common::*;
use sha2::Digest;

/// A server of `env` has no `latest` of repository `m` to serve.
fn assert_nothing_published(env: &Env, name: &str) {
    let server = env.serve();
    let status = http()
        .get(server.url("/repos/m/latest/repodata/repomd.xml"))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 404, "{name}");
}

#[test]
fn a_file_feed_is_synced_with_the_same_verification() {
    for backend in backends() {
        let (_dir, repo) = demo_upstream_tree();
        let toml = format!(
            "[[repo]]\nid = \"m\"\nfeed = \"file://{}/\"\n",
            repo.display()
        );
        let env = Env::with_repo_toml(&backend, &toml);
        env.ok(&["repo", "sync", "m"]);
        let server = env.serve();
        let installed = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
        drop(server);

        // A package changed under the same name and size is refused, naming it, and
        // nothing is published.
        let victim = std::fs::read_dir(&repo)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "rpm"))
            .unwrap();
        let mut bytes = std::fs::read(&victim).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&victim, &bytes).unwrap();
        let fresh = Env::with_repo_toml(&backend, &toml);
        let err = run_failing(&fresh, &["repo", "sync", "m"]);
        let name = victim.file_name().unwrap().to_str().unwrap();
        assert!(
            err.contains(name) && err.contains("checksum mismatch"),
            "{err}"
        );
        assert_nothing_published(&fresh, backend.name());
    }
}

#[test]
fn a_mirrorlist_fails_over_from_a_broken_mirror_and_stays_with_the_good_one() {
    for backend in backends() {
        let (dir, _repo) = demo_upstream_tree();
        let broken = Upstream::start_failing(dir.path());
        let good = Upstream::start_logged(dir.path());
        let list = dir.path().join("mirrorlist");
        std::fs::write(
            &list,
            format!(
                "# mirrors of m\n{}\nrsync://unused.example/m/\n{}\n",
                broken.url("repo/"),
                good.url("repo/")
            ),
        )
        .unwrap();
        let env = Env::with_repo_toml(
            &backend,
            &format!(
                "[[repo]]\nid = \"m\"\nmirrorlist = \"file://{}\"\n",
                list.display()
            ),
        );
        let out = env.run(&["repo", "sync", "m"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", backend.name());
        assert!(err.contains("trying the next mirror"), "{err}");
        // The broken mirror was asked once, for repomd.xml; everything else came from
        // the good one.
        let asked = broken.requests();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert!(asked[0].ends_with("repomd.xml 500"), "{asked:?}");
        let served = good.requests();
        assert!(served.iter().any(|r| r.contains(".rpm 200")), "{served:?}");
        let server = env.serve();
        let installed = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
        assert!(installed.contains(&"demo-app".to_string()), "{installed:?}");
    }
}

/// A metalink (MirrorManager's 3.0 format) for repomd.xml `repomd` at `mirrors` (base
/// URLs, best first).
fn metalink(repomd: &[u8], sha256: &str, mirrors: &[String]) -> String {
    let urls: String = mirrors
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "<url protocol=\"http\" type=\"http\" location=\"US\" preference=\"{}\">{m}repodata/repomd.xml</url>\n",
                100 - i
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <metalink version=\"3.0\" xmlns=\"http://www.metalinker.org/\" xmlns:mm0=\"http://fedorahosted.org/mirrormanager\">\n\
         <files><file name=\"repomd.xml\"><mm0:timestamp>1</mm0:timestamp><size>{}</size>\n\
         <verification><hash type=\"md5\">00</hash><hash type=\"sha256\">{sha256}</hash></verification>\n\
         <resources maxconnections=\"1\">{urls}</resources></file></files></metalink>\n",
        repomd.len()
    )
}

#[test]
fn a_metalink_decides_which_mirrors_metadata_is_taken() {
    for backend in backends() {
        let (dir, repo) = demo_upstream_tree();
        let repomd = std::fs::read(repo.join("repodata/repomd.xml")).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(&repomd));
        // A stale mirror: another repository, so another repomd.xml.
        let (stale_dir, _stale_repo, _) = upstream_tree(|r| {
            cairn::formats::samples::generate(r, 2).unwrap();
        });
        let stale = Upstream::start_logged(stale_dir.path());
        let good = Upstream::start_logged(dir.path());
        let mirrors = [stale.url("repo/"), good.url("repo/")];
        std::fs::write(
            dir.path().join("metalink-x86_64.xml"),
            metalink(&repomd, &sha, &mirrors),
        )
        .unwrap();
        let toml = format!(
            "[[repo]]\nid = \"m\"\nmetalink = \"file://{}/metalink-$basearch.xml\"\n\
             vars = {{ basearch = \"x86_64\" }}\n",
            dir.path().display()
        );
        let env = Env::with_repo_toml(&backend, &toml);
        let out = env.run(&["repo", "sync", "m"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", backend.name());
        // The stale mirror's repomd.xml was read and passed over: nothing else of it.
        let asked = stale.requests();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert!(asked[0].contains("repomd.xml 200"), "{asked:?}");
        let server = env.serve();
        let served = http()
            .get(server.url("/repos/m/latest/repodata/repomd.xml"))
            .send()
            .unwrap();
        assert_eq!(served.status(), 200);
        let installed = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
        assert!(installed.contains(&"demo-app".to_string()), "{installed:?}");
        drop(server);

        // A metalink whose digest no mirror's repomd.xml has: refused, nothing published.
        let wrong = "0".repeat(64);
        std::fs::write(
            dir.path().join("metalink-x86_64.xml"),
            metalink(&repomd, &wrong, &[good.url("repo/")]),
        )
        .unwrap();
        let fresh = Env::with_repo_toml(&backend, &toml);
        let err = run_failing(&fresh, &["repo", "sync", "m"]);
        assert!(
            err.contains("repomd.xml") && err.contains("not a repomd.xml the metalink lists"),
            "{err}"
        );
        assert_nothing_published(&fresh, backend.name());
    }
}
