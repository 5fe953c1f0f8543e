//! Aliases that switch atomically (with the old metadata still served for a grace
//! period), rollbacks, and snapshot deletion that refuses to break an alias.

mod common;

use common::*;

/// The demo packages split into two directories: `apps` (demo-app) and `libs` (the
/// rest, which demo-app depends on).
fn split_demo(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let all = env.dir.path().join("all");
    let files = cairn::formats::samples::demo_packages(&all).unwrap();
    let (apps, libs) = (env.dir.path().join("apps"), env.dir.path().join("libs"));
    std::fs::create_dir_all(&apps).unwrap();
    std::fs::create_dir_all(&libs).unwrap();
    for f in &files {
        let name = f.file_name().unwrap();
        let to = if name.to_string_lossy().starts_with("demo-app") {
            &apps
        } else {
            &libs
        };
        std::fs::copy(f, to.join(name)).unwrap();
    }
    (apps, libs)
}

#[test]
fn aliases_switch_atomically_keep_old_metadata_servable_and_roll_back() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let one = env.dir.path().join("one");
        cairn::formats::samples::demo_packages(&one).unwrap();
        env.ok(&["import", "fx", one.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "2026-10"]);
        let two = env.dir.path().join("two");
        let extra = cairn::formats::samples::generate(&two, 2).unwrap();
        env.ok(&["import", "fx", two.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "2026-11"]);

        env.ok(&["publish", "fx", "2026-10", "--as", "prod"]);
        let server = env.serve();
        let c = http();
        let get = |path: &str| c.get(server.url(path)).send().unwrap();
        let installed = dnf_install(&server.url("/repos/fx/prod/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
        let old_repomd = get("/repos/fx/prod/repodata/repomd.xml").bytes().unwrap();
        assert_eq!(
            get("/repos/fx/prod/repodata/repomd.xml").headers()["cache-control"],
            "no-cache"
        );
        let old_primary = repomd_href(&old_repomd, "primary");
        let new_pkg = format!(
            "/repos/fx/prod/Packages/g/{}",
            extra[0].file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(get(&new_pkg).status(), 404);

        // Switch prod to the newer snapshot while serving.
        let out = env.ok(&["publish", "fx", "2026-11", "--as", "prod"]);
        assert!(out.contains("2026-10 -> 2026-11"), "{out}");
        wait_for("prod to switch", || {
            get("/repos/fx/prod/repodata/repomd.xml").bytes().unwrap() != old_repomd
        });
        assert_eq!(get(&new_pkg).status(), 200, "{}", backend.name());
        // A client holding the old repomd.xml still gets what it names.
        assert_eq!(get(&format!("/repos/fx/prod/{old_primary}")).status(), 200);
        // Snapshot URLs never change.
        assert_eq!(
            get("/repos/fx/2026-10/repodata/repomd.xml")
                .bytes()
                .unwrap(),
            old_repomd
        );

        // Roll back.
        env.ok(&["publish", "fx", "2026-10", "--as", "prod"]);
        wait_for("prod to roll back", || {
            get("/repos/fx/prod/repodata/repomd.xml").bytes().unwrap() == old_repomd
        });

        // Deleting what an alias uses, or used within the grace period, is refused.
        let out = env.run(&["snapshot", "delete", "fx", "2026-10"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("\"prod\""));
        let out = env.run(&["snapshot", "delete", "fx", "2026-11"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("grace"), "{err}");
        // It says until when (the default grace is three days from the switch).
        let until = time::OffsetDateTime::now_utc() + time::Duration::days(3);
        let day = format!(
            "{:04}-{:02}-{:02}",
            until.year(),
            u8::from(until.month()),
            until.day()
        );
        assert!(err.contains(&format!("until {day}")), "{err}");
        env.ok(&["snapshot", "create", "fx", "--name", "scratch"]);
        env.ok(&["snapshot", "delete", "fx", "scratch"]);
        wait_for("the deleted snapshot to disappear", || {
            get("/repos/fx/scratch/repodata/repomd.xml").status() == 404
        });

        // Names never shadow each other.
        assert!(!env
            .run(&["publish", "fx", "2026-10", "--as", "2026-11"])
            .status
            .success());
        assert!(!env
            .run(&["publish", "fx", "2026-10", "--as", "latest"])
            .status
            .success());
        assert!(!env
            .run(&["snapshot", "create", "fx", "--name", "prod"])
            .status
            .success());
        let show = env.json(&["repo", "show", "fx"]);
        assert_eq!(show["aliases"][0]["snapshot"], "2026-10");
    }
}

#[test]
fn gc_frees_what_nothing_references_and_keeps_everything_served() {
    for backend in backends() {
        // A short grace period: what latest served before is kept that long, then freed.
        let env = Env::with_repo_toml(&backend, "alias_grace = \"2s\"\n[[repo]]\nid = \"fx\"\n");
        let one = env.dir.path().join("one");
        let files = cairn::formats::samples::demo_packages(&one).unwrap();
        env.ok(&["import", "fx", one.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "old"]);
        // A rebuild of demo-lib replaces it in the repo; only snapshot "old" holds the first.
        let rebuilt = env.dir.path().join("rebuilt");
        rebuilt_demo_lib(&rebuilt.join("demo-lib.rpm"));
        env.ok(&["import", "fx", rebuilt.to_str().unwrap()]);
        let old_lib = file_facts(
            files
                .iter()
                .find(|f| f.to_string_lossy().contains("demo-lib"))
                .unwrap(),
        )
        .sha256;
        let blob = env
            .data()
            .join("pool")
            .join(&old_lib[..2])
            .join(&old_lib[2..4])
            .join(&old_lib);

        // While snapshot "old" exists, nothing it needs goes.
        let report = env.json(&["gc", "--min-age", "0s"]);
        assert!(blob.is_file(), "{}: {report}", backend.name());

        env.ok(&["snapshot", "delete", "fx", "old"]);
        // Within the grace period latest's previous demo-lib is still kept.
        let report = env.json(&["gc", "--min-age", "0s"]);
        assert!(blob.is_file(), "{}: {report}", backend.name());
        // (Times are whole seconds: past the grace period by more than one.)
        std::thread::sleep(std::time::Duration::from_millis(3500));
        let dry = env.json(&["gc", "--min-age", "0s", "--dry-run"]);
        assert!(dry["blobs"].as_u64().unwrap() >= 1, "{dry}");
        assert!(blob.is_file(), "a dry run deletes nothing");
        let report = env.json(&["gc", "--min-age", "0s"]);
        assert_eq!(report["blobs"], dry["blobs"], "{report} vs {dry}");
        assert_eq!(report["rows"]["packages"], 1, "{report}");
        assert!(!blob.exists(), "the old demo-lib is gone");
        // Young blobs are kept by default.
        let again = env.json(&["gc", "--dry-run"]);
        assert_eq!(again["blobs"], 0, "{again}");

        // Everything still referenced is intact and served.
        let verify = env.json(&["db", "verify"]);
        assert_eq!(verify["missing"].as_array().unwrap().len(), 0, "{verify}");
        assert_eq!(
            verify["unreferenced"].as_array().unwrap().len(),
            0,
            "{verify}"
        );
        let server = env.serve();
        let installed = dnf_install(&server.url("/repos/fx/latest/"), &["demo-app"]);
        assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
    }
}

#[test]
fn views_resolve_dependencies_across_member_repos_and_freeze_atomically() {
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            "[[repo]]\nid = \"apps\"\n[[repo]]\nid = \"libs\"\n\
             [[view]]\nname = \"stack\"\nrepos = [\"apps\", \"libs\"]\n",
        );
        let (apps, libs) = split_demo(&env);
        // The same demo-lib build in both members: the view lists it once (apps wins).
        std::fs::copy(
            libs.join("demo-lib-1.2.0-1.noarch.rpm"),
            apps.join("demo-lib-1.2.0-1.noarch.rpm"),
        )
        .unwrap();
        env.ok(&["import", "apps", apps.to_str().unwrap()]);
        env.ok(&["import", "libs", libs.to_str().unwrap()]);
        let snap = env.json(&["view", "snapshot", "stack", "--name", "v1"]);
        assert_eq!(snap["package_count"], 4, "{}: {snap}", backend.name());
        assert_eq!(snap["members"][0][0], "apps");

        // Member repos got their own snapshot, in the same transaction, named after the
        // view snapshot.
        env.json(&["snapshot", "show", "apps", "stack@v1"]);
        env.json(&["snapshot", "show", "libs", "stack@v1"]);
        // Which a delete must not break.
        let out = env.run(&["snapshot", "delete", "libs", "stack@v1"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("view snapshot stack/v1"));

        env.ok(&["publish", "stack", "v1", "--as", "prod"]);
        assert!(!env
            .run(&["publish", "stack", "v1", "--as", "v1"])
            .status
            .success());
        let server = env.serve();
        let installed = dnf_install(&server.url("/views/stack/prod/"), &["demo-app"]);
        assert!(
            installed.contains(&"demo-lib".to_string()),
            "view alias: {installed:?}"
        );
        let installed = dnf_install(&server.url("/views/stack/v1/"), &["demo-app"]);
        for name in ["demo-app", "demo-lib", "demo-tools"] {
            assert!(
                installed.contains(&name.to_string()),
                "{}: {installed:?}",
                backend.name()
            );
        }
        let installed = dnf_install(&server.url("/views/stack/latest/"), &["demo-app"]);
        assert!(
            installed.contains(&"demo-tools".to_string()),
            "{installed:?}"
        );

        // The member repos move on; the frozen view snapshot does not, latest does.
        let c = http();
        let v1 = c
            .get(server.url("/views/stack/v1/repodata/repomd.xml"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let more = env.dir.path().join("more");
        let extra = cairn::formats::samples::generate(&more, 1).unwrap();
        env.ok(&["import", "libs", more.to_str().unwrap()]);
        let path = format!(
            "Packages/g/{}",
            extra[0].file_name().unwrap().to_str().unwrap()
        );
        wait_for("view latest to include the new package", || {
            c.get(server.url(&format!("/views/stack/latest/{path}")))
                .send()
                .unwrap()
                .status()
                == 200
        });
        assert_eq!(
            c.get(server.url(&format!("/views/stack/v1/{path}")))
                .send()
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            c.get(server.url("/views/stack/v1/repodata/repomd.xml"))
                .send()
                .unwrap()
                .bytes()
                .unwrap(),
            v1
        );
        // The view snapshot is in use by prod: refused; a fresh one can go, and then its
        // member snapshots can too.
        let out = env.run(&["snapshot", "delete", "stack", "v1"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("\"prod\""));
        env.ok(&["view", "snapshot", "stack", "--name", "v2"]);
        env.ok(&["snapshot", "delete", "stack", "v2"]);
        env.ok(&["snapshot", "delete", "libs", "stack@v2"]);
        wait_for("the view snapshot to disappear", || {
            c.get(server.url("/views/stack/v2/repodata/repomd.xml"))
                .send()
                .unwrap()
                .status()
                == 404
        });
    }
}

#[test]
fn gc_while_serving_never_breaks_what_is_still_published() {
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let one = env.dir.path().join("one");
    cairn::formats::samples::demo_packages(&one).unwrap();
    env.ok(&["import", "fx", one.to_str().unwrap()]);
    env.ok(&["snapshot", "create", "fx", "--name", "keep"]);
    env.ok(&["publish", "fx", "keep", "--as", "prod"]);
    for round in 0..3 {
        let more = env.dir.path().join(format!("more{round}"));
        // A different count per round gives different packages (and replacements).
        cairn::formats::samples::generate(&more, round + 2).unwrap();
        env.ok(&["import", "fx", more.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", &format!("tmp{round}")]);
    }
    let server = env.serve();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = server.url("");
    let loader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let c = http();
            let mut fetched = 0u32;
            let mut failures = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for tree in ["keep", "prod", "latest"] {
                    for path in [
                        "repodata/repomd.xml",
                        "Packages/d/demo-lib-1.2.0-1.noarch.rpm",
                    ] {
                        let url = format!("{addr}/repos/fx/{tree}/{path}");
                        match c.get(&url).send() {
                            Ok(r) if r.status() == 200 => {
                                let _ = r.bytes();
                                fetched += 1;
                            }
                            Ok(r) => failures.push(format!("{url}: {}", r.status())),
                            Err(e) => failures.push(format!("{url}: {e}")),
                        }
                    }
                }
            }
            (fetched, failures)
        })
    };
    for round in 0..3 {
        env.ok(&["snapshot", "delete", "fx", &format!("tmp{round}")]);
        env.ok(&["gc", "--min-age", "0s"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (fetched, failures) = loader.join().unwrap();
    assert!(fetched > 20, "the load ran ({fetched} fetches)");
    assert!(failures.is_empty(), "{failures:?}");
    let verify = env.json(&["db", "verify"]);
    assert_eq!(verify["missing"].as_array().unwrap().len(), 0, "{verify}");
}

/// The pkgids the primary metadata of a served tree (`/views/V/S/`) lists.
fn served_pkgids(server: &Server, tree: &str) -> std::collections::BTreeSet<String> {
    let c = http();
    let get = |path: &str| {
        let r = c.get(server.url(&format!("{tree}{path}"))).send().unwrap();
        assert_eq!(r.status(), 200, "{tree}{path}");
        r.bytes().unwrap()
    };
    let repomd = get("repodata/repomd.xml");
    let primary = get(&repomd_href(&repomd, "primary"));
    packages_by_pkgid(&parse_xml(&decompress(&primary)))
        .into_keys()
        .collect()
}

/// Places a package file into a repository's current content straight through the
/// catalog (no view refresh, as a crash between the two would leave it), at `location`
/// or its own, and republishes the repository's latest.
fn place_without_view_refresh(
    env: &Env,
    repo: &str,
    file: &std::path::Path,
    location: Option<&str>,
) -> String {
    let facts = file_facts(file);
    let package = cairn::formats::rpmread::read_package(file, &facts).unwrap();
    let fragments =
        cairn::formats::repodata::packed::pack(&cairn::formats::repodata::xml::render(&package))
            .unwrap();
    let location = location
        .map(str::to_string)
        .unwrap_or_else(|| package.location());
    let pool = cairn::store::pool::Pool::open(env.data().join("pool")).unwrap();
    let staged = pool.stage_file(file).unwrap();
    pool.commit(vec![staged]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let catalog = cairn::store::catalog::Catalog::connect(&env.database_url())
            .await
            .unwrap();
        let repo_id = catalog.ensure_repo(repo).await.unwrap();
        let ids = catalog
            .insert_packages(&[(package.clone(), fragments)])
            .await
            .unwrap();
        let before = catalog.repo(repo).await.unwrap().unwrap();
        let lock = cairn::store::datadir::DataDir::open(env.data())
            .unwrap()
            .lock_repo(repo)
            .unwrap();
        catalog
            .place_in_repo(
                &lock,
                repo_id,
                &[(location, ids[&package.pkgid])],
                before.latest_publication_id.unwrap(),
            )
            .await
            .unwrap();
        let published = cairn::app::publish::publish_repo_content(
            &catalog,
            &pool,
            repo_id,
            &cairn::app::publish::Format::default(),
        )
        .await
        .unwrap();
        catalog
            .set_repo_latest(repo_id, published.publication_id, published.content_version)
            .await
            .unwrap();
        catalog.close().await;
    });
    package.pkgid
}

#[test]
fn view_snapshots_copy_latest_only_while_it_matches_the_members() {
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            "[[repo]]\nid = \"apps\"\n[[repo]]\nid = \"libs\"\n\
             [[view]]\nname = \"stack\"\nrepos = [\"apps\"]\n",
        );
        let (apps, libs) = split_demo(&env);
        env.ok(&["import", "apps", apps.to_str().unwrap()]);
        env.ok(&["import", "libs", libs.to_str().unwrap()]);
        // Latest is current: the snapshot is a copy of it.
        env.ok(&["view", "snapshot", "stack", "--name", "one"]);

        // The view gains a member: latest was composed without it.
        let text = std::fs::read_to_string(&env.config).unwrap();
        std::fs::write(
            &env.config,
            text.replace("repos = [\"apps\"]", "repos = [\"apps\", \"libs\"]"),
        )
        .unwrap();
        env.ok(&["view", "snapshot", "stack", "--name", "two"]);

        // A member's content changes without the view being recomposed: a new location
        // (an insert), then another package at that same location (an update).
        let more = env.dir.path().join("more");
        let extra = cairn::formats::samples::generate(&more, 2).unwrap();
        let first = place_without_view_refresh(&env, "libs", &extra[0], None);
        env.ok(&["view", "snapshot", "stack", "--name", "three"]);
        let first_location = format!(
            "Packages/g/{}",
            extra[0].file_name().unwrap().to_str().unwrap()
        );
        let second = place_without_view_refresh(&env, "libs", &extra[1], Some(&first_location));
        env.ok(&["view", "snapshot", "stack", "--name", "four"]);

        let server = env.serve();
        let name = backend.name();
        let app_ids = served_pkgids(&server, "/repos/apps/stack@one/");
        let lib_ids = served_pkgids(&server, "/repos/libs/stack@two/");
        assert_eq!(
            served_pkgids(&server, "/views/stack/one/"),
            app_ids,
            "{name}"
        );
        let mut expected: std::collections::BTreeSet<String> =
            app_ids.union(&lib_ids).cloned().collect();
        assert_eq!(
            served_pkgids(&server, "/views/stack/two/"),
            expected,
            "{name}"
        );
        expected.insert(first.clone());
        assert_eq!(
            served_pkgids(&server, "/views/stack/three/"),
            expected,
            "{name}"
        );
        expected.remove(&first);
        expected.insert(second);
        assert_eq!(
            served_pkgids(&server, "/views/stack/four/"),
            expected,
            "{name}"
        );
        // The member snapshots froze the same content as their view snapshots.
        assert_eq!(
            served_pkgids(&server, "/repos/libs/stack@four/").len(),
            lib_ids.len() + 1
        );
    }
}

/// Two views that share a member both take a snapshot named `v1`, and the member can
/// have its own `v1` too: member snapshots are named `VIEW@NAME`, which no command can
/// give a snapshot. Before, the second view's `v1` failed on the member's name.
#[test]
fn views_sharing_a_member_never_collide_on_snapshot_names() {
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        "[[repo]]\nid = \"apps\"\n[[repo]]\nid = \"libs\"\n\
         [[view]]\nname = \"one\"\nrepos = [\"apps\", \"libs\"]\n\
         [[view]]\nname = \"two\"\nrepos = [\"libs\"]\n",
    );
    let (apps, libs) = split_demo(&env);
    env.ok(&["import", "apps", apps.to_str().unwrap()]);
    env.ok(&["import", "libs", libs.to_str().unwrap()]);
    env.ok(&["snapshot", "create", "libs", "--name", "v1"]);
    env.ok(&["view", "snapshot", "one", "--name", "v1"]);
    env.ok(&["view", "snapshot", "two", "--name", "v1"]);
    let names: Vec<String> = env
        .json(&["snapshot", "list", "libs"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for name in ["v1", "one@v1", "two@v1"] {
        assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
    }
    // "@" stays out of the names commands give.
    let out = env.run(&["snapshot", "create", "libs", "--name", "one@v2"]);
    assert!(!out.status.success());
    let server = env.serve();
    for path in [
        "/views/one/v1/",
        "/views/two/v1/",
        "/repos/libs/two@v1/",
        "/repos/libs/v1/",
    ] {
        let r = http()
            .get(server.url(&format!("{path}repodata/repomd.xml")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}
