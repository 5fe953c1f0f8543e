//! Aliases that switch atomically (with the old metadata still served for a grace
//! period), rollbacks, and snapshot deletion that refuses to break an alias.

mod common;

use common::*;

fn repomd_href(repomd: &[u8], kind: &str) -> String {
    let doc = parse_xml(repomd);
    doc.children
        .iter()
        .find(|d| d.attr("type") == Some(kind))
        .unwrap()
        .child("location")
        .unwrap()
        .attr("href")
        .unwrap()
        .to_string()
}

#[test]
fn aliases_switch_atomically_keep_old_metadata_servable_and_roll_back() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let one = env.dir.path().join("one");
        cairn::samples::demo_packages(&one).unwrap();
        env.ok(&["import", "fx", one.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "2026-10"]);
        let two = env.dir.path().join("two");
        let extra = cairn::samples::generate(&two, 2).unwrap();
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
        assert!(String::from_utf8_lossy(&out.stderr).contains("grace"));
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
