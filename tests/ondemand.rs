//! `policy = "on_demand"` and `"streamed"` against nginx as upstream, on both backends:
//! a sync fetches metadata only; the first request for a package fetches it (once,
//! however many clients ask), streams it while it is verified, and keeps it (or, when
//! streamed, does not); bad bytes are never passed as complete; an upstream that is
//! gone gives 502 for what is not stored and 200 for what is; however many packages
//! clients ask for at once, at most `MAX_FETCHES` are fetched from upstream at a time.

mod common;

use common::*;
use reqwest::blocking::Client;
use serde_json::Value;
use sha2::Digest;
use std::io::Read;

/// An upstream with the demo packages and a 3 MiB one, served at `rate` by nginx that
/// logs every request; and an installation mirroring it with `policy`.
/// The upstream also has a small package named `only` (no other test's upstream has
/// it, so a port reused by another test's nginx cannot serve it).
fn setup(
    backend: &Backend,
    rate: &str,
    policy: &str,
    only: &str,
) -> (tempfile::TempDir, Upstream, Env) {
    let (dir, _repo, _) = upstream_tree(|r| {
        cairn::formats::samples::demo_packages(r).unwrap();
        cairn::formats::samples::large_package(r, "bigpkg", 3 * 1024 * 1024).unwrap();
        // Never installed by the tests' dnf runs.
        cairn::formats::samples::large_package(r, only, 20_000).unwrap();
    });
    let up = Upstream::start_busy_while(dir.path(), Some(rate), &[]);
    let env = mirror_env(backend, &up, &format!("policy = \"{policy}\"\n"));
    (dir, up, env)
}

/// The `.rpm` requests upstream got, as "GET /repo/NAME.rpm STATUS".
fn rpm_requests(up: &Upstream) -> Vec<String> {
    up.requests()
        .into_iter()
        .filter(|r| r.contains(".rpm "))
        .collect()
}

/// Repository `m`'s package named `name`: its served path and sha256.
fn package(env: &Env, name: &str) -> (String, String) {
    let listed: Value = env.json(&["repo", "packages", "m"]);
    let p = listed["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {listed}"))
        .clone();
    (
        format!("/repos/m/latest/{}", p["location"].as_str().unwrap()),
        p["sha256"].as_str().unwrap().to_string(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// GETs `url` whole; `Err` when the transfer broke off.
fn get_all(c: &Client, url: &str) -> Result<(u16, Vec<u8>), String> {
    let mut resp = c.get(url).send().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    resp.read_to_end(&mut body).map_err(|e| e.to_string())?;
    Ok((status, body))
}

#[test]
fn on_demand_fetches_what_clients_ask_for_once_and_keeps_it() {
    for backend in backends() {
        let name = backend.name();
        let (dir, up, env) = setup(
            &backend,
            "1m",
            "on_demand",
            &format!("only-keeps-{}", backend.name()),
        );
        env.ok(&["repo", "sync", "m"]);
        // Metadata only.
        assert!(rpm_requests(&up).is_empty(), "{name}: {:?}", up.requests());
        let (big_path, big_sha) = package(&env, "bigpkg");
        assert!(!env.blob(&big_sha).exists());
        let verify = env.ok(&["db", "verify"]);
        assert!(verify.contains("not fetched yet"), "{name}: {verify}");
        let listed = env.json(&["repo", "packages", "m"]);
        assert_eq!(listed["not_stored"], listed["total"], "{name}: {listed}");

        let server = env.serve();
        // dnf gets what it installs, through Cairn; upstream is asked for exactly that.
        let mut installed = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
        installed.sort();
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
        // "GET /repo/demo-lib-1.2.0-1.noarch.rpm 200" -> "demo-lib"
        let asked = || -> Vec<String> {
            let mut names: Vec<String> = rpm_requests(&up)
                .iter()
                .map(|r| {
                    let file = r.split('/').nth(2).unwrap().split(' ').next().unwrap();
                    let parts: Vec<&str> = file.rsplitn(3, '-').collect();
                    parts[2].to_string()
                })
                .collect();
            names.sort();
            names
        };
        assert_eq!(asked(), installed, "{name}: {:?}", rpm_requests(&up));
        // A second install asks upstream for nothing.
        let again = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
        assert!(again.contains(&"demo-app".to_string()));
        assert_eq!(asked(), installed, "{name}: {:?}", rpm_requests(&up));

        // Two clients at once: one upstream download, both get the verified bytes.
        let c = http();
        let url = server.url(&big_path);
        let both: Vec<_> = std::thread::scope(|s| {
            let a = s.spawn(|| get_all(&c, &url));
            let b = s.spawn(|| get_all(&c, &url));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        for got in both {
            let (status, bytes) = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(status, 200);
            assert_eq!(sha256_hex(&bytes), big_sha, "{name}");
        }
        let big_requests = rpm_requests(&up)
            .iter()
            .filter(|r| r.contains("bigpkg"))
            .count();
        assert_eq!(big_requests, 1, "{name}: {:?}", rpm_requests(&up));

        // Pages and --json say how much is stored (each package is recorded as stored
        // just after its clients got their last byte).
        let stored = installed.len() as i64 + 1;
        wait_for("the fetched packages to be recorded", || {
            let listed = env.json(&["repo", "packages", "m"]);
            listed["total"].as_i64().unwrap() - listed["not_stored"].as_i64().unwrap() == stored
        });
        let page = c
            .get(server.url("/repos/m/latest/"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            page.contains(&format!("({stored} stored here,")),
            "{name}: {page}"
        );
        // Upstream gone: what is stored is served, what is not is a 502 that says so.
        // (The file goes too: a stopping nginx may still answer on a kept-alive
        // connection for a moment, and then it must not have it either.)
        let only = format!("only-keeps-{name}");
        for e in std::fs::read_dir(dir.path().join("repo"))
            .unwrap()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(&only) {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        drop(up);
        let (status, bytes) = get_all(&c, &url).unwrap();
        assert_eq!((status, sha256_hex(&bytes)), (200, big_sha.clone()));
        let (unfetched, _) = package(&env, &only);
        let resp = c.get(server.url(&unfetched)).send().unwrap();
        assert_eq!(resp.status(), 502, "{name}");
        let text = resp.text().unwrap();
        assert!(text.contains("upstream"), "{text}");
        assert!(!text.contains("127.0.0.1"), "no upstream URL: {text}");
        let verify = env.ok(&["db", "verify"]);
        assert!(verify.contains("0 missing"), "{name}: {verify}");
        drop(dir);
    }
}

#[test]
fn a_package_that_does_not_verify_is_never_passed_as_complete_nor_kept() {
    for backend in backends() {
        let name = backend.name();
        let (dir, up, env) = setup(&backend, "2m", "on_demand", "only-tampered");
        env.ok(&["repo", "sync", "m"]);
        let (path, sha) = package(&env, "bigpkg");
        // Upstream's file changes after the sync (same size, other bytes).
        let file = dir.path().join("repo/bigpkg-1.0-1.noarch.rpm");
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let server = env.serve();
        let c = http();
        for _ in 0..2 {
            match get_all(&c, &server.url(&path)) {
                Err(_) => {}
                Ok((status, got)) => {
                    assert!(
                        status != 200 || got.len() < bytes.len(),
                        "{name}: a complete body of bad bytes ({status}, {} bytes)",
                        got.len()
                    );
                }
            }
        }
        assert!(!env.blob(&sha).exists(), "{name}: not kept");
        assert_eq!(
            rpm_requests(&up).len(),
            2,
            "{name}: asked again, not served from the pool"
        );
        let metrics = c
            .get(server.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            metrics.contains("cairn_ondemand_fetches_total{outcome=\"failed\"} 2"),
            "{name}: {metrics}"
        );
    }
}

#[test]
fn a_range_of_an_unfetched_package_is_served_from_the_verified_file() {
    for backend in backends() {
        let name = backend.name();
        let (dir, up, env) = setup(&backend, "100m", "on_demand", "only-range");
        env.ok(&["repo", "sync", "m"]);
        let (path, _) = package(&env, "bigpkg");
        let whole = std::fs::read(dir.path().join("repo/bigpkg-1.0-1.noarch.rpm")).unwrap();
        let server = env.serve();
        let resp = http()
            .get(server.url(&path))
            .header("Range", "bytes=1000-1999")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 206, "{name}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes 1000-1999/{}", whole.len()).as_str()
        );
        assert_eq!(resp.bytes().unwrap().as_ref(), &whole[1000..2000]);
        assert_eq!(rpm_requests(&up).len(), 1);
    }
}

#[test]
fn a_server_killed_mid_fetch_leaves_nothing_half_stored() {
    for backend in backends() {
        let name = backend.name();
        // 3 MiB at 512 KiB/s: the fetch is under way for seconds.
        let (_dir, _up, env) = setup(&backend, "512k", "on_demand", "only-killed");
        env.ok(&["repo", "sync", "m"]);
        let (path, sha) = package(&env, "bigpkg");
        let server = env.serve();
        let url = server.url(&path);
        let mut resp = http().get(&url).send().unwrap();
        let mut first = [0u8; 4096];
        resp.read_exact(&mut first).unwrap();
        unsafe {
            libc::kill(server.pid() as i32, libc::SIGKILL);
        }
        drop(resp);
        drop(server);
        let blob = env.blob(&sha);
        assert!(!blob.exists(), "{name}: a partial blob in the pool");
        let verify = env.ok(&["db", "verify"]);
        assert!(verify.contains("0 missing, 0 corrupt"), "{name}: {verify}");
        // The next server fetches it whole.
        let server = env.serve();
        let (status, bytes) = get_all(&http(), &server.url(&path)).unwrap();
        assert_eq!((status, sha256_hex(&bytes)), (200, sha.clone()), "{name}");
        // Kept once verified (just after the client got its last byte).
        wait_for("the fetched package to be kept", || blob.exists());
    }
}

#[test]
fn streamed_packages_pass_through_verified_and_are_not_kept() {
    for backend in backends() {
        let name = backend.name();
        let (_dir, up, env) = setup(&backend, "100m", "streamed", "only-streamed");
        env.ok(&["repo", "sync", "m"]);
        let (path, sha) = package(&env, "bigpkg");
        let server = env.serve();
        let c = http();
        for round in 1..=2 {
            let (status, bytes) = get_all(&c, &server.url(&path)).unwrap();
            assert_eq!((status, sha256_hex(&bytes)), (200, sha.clone()), "{name}");
            assert_eq!(rpm_requests(&up).len(), round, "{name}: fetched every time");
        }
        assert!(!env.blob(&sha).exists());
        let installed = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
    }
}

#[test]
fn repo_fetch_makes_a_tree_independent_of_upstream() {
    for backend in backends() {
        let name = backend.name();
        let (_dir, up, env) = setup(&backend, "100m", "on_demand", "only-fetch");
        env.ok(&["repo", "sync", "m"]);
        env.ok(&["snapshot", "create", "m", "--name", "s1"]);
        let token = env.json(&["token", "create", "--name", "ops", "--scope", "write"])["token"]
            .as_str()
            .unwrap()
            .to_string();
        let server = env.serve();
        let c = http();
        // Through the API, as a job: latest.
        let job: Value = c
            .post(server.url("/api/v1/repos/m/fetch"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .text()
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        let id = job["id"].as_i64().unwrap();
        let mut done = Value::Null;
        wait_for("the fetch job to end", || {
            done = c
                .get(server.url(&format!("/api/v1/jobs/{id}")))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .text()
                .map(|t| serde_json::from_str(&t).unwrap())
                .unwrap();
            done["finished_at"].is_i64()
        });
        assert_eq!(done["state"], "succeeded", "{name}: {done}");
        let packages = done["result"]["packages"].as_i64().unwrap();
        assert_eq!(done["result"]["fetched"].as_i64(), Some(packages), "{done}");
        assert_eq!(rpm_requests(&up).len() as i64, packages);
        // The command line on the snapshot: nothing left to fetch.
        let report = env.json(&["repo", "fetch", "m", "s1"]);
        assert_eq!(
            report["stored"].as_i64(),
            Some(packages),
            "{name}: {report}"
        );
        assert_eq!(report["fetched"], 0);
        // Upstream gone: the snapshot serves every package.
        drop(up);
        let listed: Value = env.json(&["repo", "packages", "m"]);
        for p in listed["packages"].as_array().unwrap() {
            let path = format!("/repos/m/s1/{}", p["location"].as_str().unwrap());
            let (status, bytes) = get_all(&c, &server.url(&path)).unwrap();
            assert_eq!(status, 200, "{name}: {path}");
            assert_eq!(sha256_hex(&bytes), p["sha256"].as_str().unwrap());
        }
        let verify = env.ok(&["db", "verify"]);
        assert!(!verify.contains("not fetched yet"), "{name}: {verify}");
    }
}

#[test]
fn on_demand_serves_upstreams_own_metadata_in_mirror_mode() {
    for backend in backends() {
        let name = backend.name();
        let (dir, up, env) = {
            let (dir, _repo, _) = upstream_tree(|r| {
                cairn::formats::samples::demo_packages(r).unwrap();
            });
            let up = Upstream::start_logged(dir.path());
            let env = mirror_env(&backend, &up, "policy = \"on_demand\"\nmode = \"mirror\"\n");
            (dir, up, env)
        };
        env.ok(&["repo", "sync", "m"]);
        assert!(rpm_requests(&up).is_empty(), "{name}");
        let server = env.serve();
        // Upstream's repomd.xml, byte for byte; the packages fetched when dnf asks.
        let served = http()
            .get(server.url("/repos/m/latest/repodata/repomd.xml"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let upstream = std::fs::read(dir.path().join("repo/repodata/repomd.xml")).unwrap();
        assert_eq!(served.as_ref(), upstream.as_slice(), "{name}");
        let installed = dnf_install(&server.url("/repos/m/latest/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
        assert_eq!(rpm_requests(&up).len(), installed.len(), "{name}");
    }
}

#[test]
fn on_demand_checks_package_signatures_when_it_fetches() {
    let gpg = Gpg::new();
    let vendor = gpg.generate("Vendor", "rsa2048");
    let keys = tempfile::tempdir().unwrap();
    let key_file = gpg.export(&vendor, &keys.path().join("vendor.asc"), true);
    let (dir, repo, _) = upstream_tree(|r| {
        cairn::formats::samples::demo_packages(r).unwrap();
    });
    for name in ["demo-lib", "demo-app", "demo-tools"] {
        gpg.rpmsign(&vendor, &rpm_named(&repo, name));
    }
    // demo-docs stays unsigned.
    createrepo_dir(&repo, false);
    let up = Upstream::start_logged(dir.path());
    for backend in backends() {
        let name = backend.name();
        let keys_toml = format!(
            "policy = \"on_demand\"\ngpgkeys = [\"{}\"]\n",
            key_file.display()
        );
        // gpgcheck "require" (the default with keys): the sync fetches no package.
        let env = mirror_env(&backend, &up, &keys_toml);
        let before = rpm_requests(&up).len();
        env.ok(&["repo", "sync", "m"]);
        assert_eq!(rpm_requests(&up).len(), before, "{name}: metadata only");
        let server = env.serve();
        let c = http();
        let (lib, lib_sha) = package(&env, "demo-lib");
        let (status, bytes) = get_all(&c, &server.url(&lib)).unwrap();
        assert_eq!((status, sha256_hex(&bytes)), (200, lib_sha), "{name}");
        wait_for("the signer to be recorded", || {
            let listed = env.json(&["repo", "packages", "m"]);
            listed["packages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "demo-lib" && p["signature"]["key_id"] == vendor.key_id)
        });
        // The unsigned package never reaches a client whole, nor the pool.
        let (docs, docs_sha) = package(&env, "demo-docs");
        let complete = match get_all(&c, &server.url(&docs)) {
            Ok((200, got)) => sha256_hex(&got) == docs_sha,
            _ => false,
        };
        assert!(!complete, "{name}: an unsigned package served whole");
        assert!(!env.blob(&docs_sha).exists(), "{name}");
        drop(server);

        // "warn": served, and said in the log.
        let warn = mirror_env(&backend, &up, &format!("{keys_toml}gpgcheck = \"warn\"\n"));
        warn.ok(&["repo", "sync", "m"]);
        let server = warn.serve();
        let (docs, docs_sha) = package(&warn, "demo-docs");
        let (status, bytes) = get_all(&c, &server.url(&docs)).unwrap();
        assert_eq!((status, sha256_hex(&bytes)), (200, docs_sha), "{name}");
    }
}

#[test]
fn clients_asking_for_many_packages_at_once_share_a_bounded_number_of_upstream_fetches() {
    let count = cairn::app::ondemand::MAX_FETCHES + 8;
    let (dir, _repo, _) = upstream_tree(|r| {
        for i in 0..count {
            cairn::formats::samples::large_package(r, &format!("slot{i}"), 256 * 1024).unwrap();
        }
    });
    // Each download takes about 4 s: long enough to see how many run at once.
    let up = Upstream::start_counted(dir.path(), "64k");
    let backend = &backends()[0];
    let env = mirror_env(backend, &up, "policy = \"on_demand\"\n");
    env.ok(&["repo", "sync", "m"]);
    let listed: Value = env.json(&["repo", "packages", "m"]);
    let packages: Vec<(String, String)> = listed["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!("/repos/m/latest/{}", p["location"].as_str().unwrap()),
                p["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(packages.len(), count);
    let server = env.serve();
    let done = std::sync::atomic::AtomicBool::new(false);
    let most = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(up.responses_being_written());
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            most
        });
        let clients: Vec<_> = packages
            .iter()
            .map(|(path, sha)| {
                let url = server.url(path);
                s.spawn(move || {
                    let (status, bytes) = get_all(&http(), &url).unwrap();
                    assert_eq!(status, 200, "{url}");
                    assert_eq!(&sha256_hex(&bytes), sha, "{url}");
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        watcher.join().unwrap()
    });
    // Every client got its package; upstream never wrote more responses at once than
    // there are fetch slots, and all of them were in use.
    assert_eq!(most, cairn::app::ondemand::MAX_FETCHES, "responses at once");
    // Each is kept once verified (the clients got their last bytes before that).
    for (_, sha) in &packages {
        wait_for(&format!("{sha} to be kept"), || env.blob(sha).exists());
    }
}
