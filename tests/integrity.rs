//! Integrity: nothing committed is lost and nothing broken is served. Garbage
//! collection beside running imports and syncs, damaged packages, conditional ranges.

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// `db verify` finds nothing missing or corrupt, and every package of `latest` is served.
fn assert_whole(env: &Env, repo: &str, packages: usize, context: &str) {
    let report = env.json(&["db", "verify"]);
    assert_eq!(
        report["missing"].as_array().map(Vec::len),
        Some(0),
        "{context}: blobs missing after the run: {report}"
    );
    assert_eq!(
        report["corrupt"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    let listed = env.json(&["repo", "list"]);
    let row = listed
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == repo))
        .unwrap_or_else(|| panic!("{context}: {repo} not listed: {listed}"));
    assert_eq!(row["package_count"], packages, "{context}: {row}");
}

/// Runs `cairn gc --min-age 0s` in a loop until `stop`; returns the failures' output.
fn gc_loop(env: &Env, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    let mut cmd = env.cmd(&["gc", "--min-age", "0s"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    std::thread::spawn(move || {
        let (mut runs, mut failures) = (0, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            let out = std::process::Command::new(&program)
                .args(&args)
                .env_remove("CAIRN_DATABASE_URL")
                .env("CAIRN_LOG", "warn")
                .output()
                .expect("cairn gc runs");
            runs += 1;
            if !out.status.success() {
                failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
            }
        }
        (runs, failures)
    })
}

#[test]
fn gc_with_no_minimum_age_never_removes_what_a_running_import_is_placing() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        let n = 1500;
        cairn::formats::samples::generate(&rpms, n).unwrap();
        // Two imports of halves, so that the second runs beside placed content too.
        let (first, second) = (env.dir.path().join("a"), env.dir.path().join("b"));
        std::fs::create_dir_all(&first).unwrap();
        std::fs::create_dir_all(&second).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(&rpms)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for (i, f) in files.iter().enumerate() {
            let dir = if i % 2 == 0 { &first } else { &second };
            std::fs::rename(f, dir.join(f.file_name().unwrap())).unwrap();
        }
        env.ok(&["repo", "list"]);

        let stop = Arc::new(AtomicBool::new(false));
        let gc = gc_loop(&env, stop.clone());
        // Let the loop start before the imports.
        std::thread::sleep(Duration::from_millis(200));
        let one = env.run(&["import", "fx", first.to_str().unwrap()]);
        let two = env.run(&["import", "fx", second.to_str().unwrap()]);
        stop.store(true, Ordering::SeqCst);
        let (runs, failures) = gc.join().unwrap();
        for (name, out) in [("first", &one), ("second", &two)] {
            assert!(
                out.status.success(),
                "{}: the {name} import failed beside gc:\n{}",
                backend.name(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(runs >= 2, "{}: gc ran {runs} times", backend.name());
        assert!(
            failures.is_empty(),
            "{}: gc failed beside the imports: {failures:?}",
            backend.name()
        );
        assert_whole(&env, "fx", n, backend.name());
        // And a last collection after everything is placed removes nothing referenced.
        env.ok(&["gc", "--min-age", "0s"]);
        assert_whole(&env, "fx", n, backend.name());
    }
}

#[test]
fn gc_waits_for_a_holder_of_the_pool_lease_or_skips_when_told_not_to_wait() {
    let env = Env::new(&backends()[0], &["fx"]);
    env.ok(&["repo", "list"]);
    let data = cairn::store::datadir::DataDir::open(env.data()).unwrap();
    let lease = data.lease_pool().unwrap();

    let out = env.run(&["gc", "--min-age", "0s", "--no-wait"]);
    assert!(!out.status.success(), "gc --no-wait ran beside a lease");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gc skipped"), "{err}");

    let mut waiting = env
        .cmd(&["gc", "--min-age", "0s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "gc finished while an operation held the pool lease"
    );
    drop(lease);
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gc_with_no_minimum_age_never_removes_what_a_running_sync_is_placing() {
    let n = 1500;
    let (up_dir, _, _) = upstream_tree(|repo| cairn::formats::samples::generate(repo, n).unwrap());
    // Slow enough that several collections run while the downloads land.
    let upstream = Upstream::start_slow(up_dir.path(), "2m");
    for backend in backends() {
        let env = Env::with_repo_toml(
            &backend,
            &format!(
                "[[repo]]\nid = \"m\"\nfeed = \"{}\"\n",
                upstream.url("repo/")
            ),
        );
        env.ok(&["repo", "list"]);
        let stop = Arc::new(AtomicBool::new(false));
        let gc = gc_loop(&env, stop.clone());
        std::thread::sleep(Duration::from_millis(200));
        let out = env.run(&["repo", "sync", "m"]);
        stop.store(true, Ordering::SeqCst);
        let (runs, failures) = gc.join().unwrap();
        assert!(
            out.status.success(),
            "{}: the sync failed beside gc:\n{}",
            backend.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(runs >= 2, "{}: gc ran {runs} times", backend.name());
        assert!(failures.is_empty(), "{}: {failures:?}", backend.name());
        assert_whole(&env, "m", n, backend.name());
    }
}
