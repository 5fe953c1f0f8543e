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
        let env = mirror_env(&backend, &upstream, "");
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

/// `rpm -K --nosignature FILE` accepts the file (digests and structure, no keys).
fn rpm_k_ok(path: &std::path::Path) -> bool {
    std::process::Command::new("rpm")
        .args(["-K", "--nosignature"])
        .arg(path)
        .output()
        .expect("rpm runs")
        .status
        .success()
}

/// Offset of the main header of an RPM file's bytes.
fn main_header_at(bytes: &[u8]) -> usize {
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let sig_end = 96 + 16 + word(96 + 8) * 16 + word(96 + 12);
    sig_end.div_ceil(8) * 8
}

#[test]
fn damaged_packages_are_refused_by_name_and_never_replace_a_good_one() {
    require_tool("rpm");
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let good_dir = env.dir.path().join("good");
        let files = cairn::formats::samples::demo_packages(&good_dir).unwrap();
        env.ok(&["import", "fx", good_dir.to_str().unwrap()]);
        let before = env.json(&["repo", "show", "fx"]);

        // Damaged copies under the good files' own names, so that each would replace
        // the good package of its NEVRA if it were accepted.
        let bad_dir = env.dir.path().join("bad");
        std::fs::create_dir_all(&bad_dir).unwrap();
        let mut bad = Vec::new();
        let mut damage = |i: usize, what: &str, f: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = std::fs::read(&files[i % files.len()]).unwrap();
            f(&mut bytes);
            // One folder per damage: each keeps the good file's name.
            let folder = bad_dir.join(i.to_string());
            std::fs::create_dir_all(&folder).unwrap();
            let path = folder.join(files[i % files.len()].file_name().unwrap());
            std::fs::write(&path, &bytes).unwrap();
            assert!(!rpm_k_ok(&path), "rpm -K accepts the {what} file");
            bad.push((path, what.to_string()));
        };
        damage(0, "truncated by 1 byte", &|b| b.truncate(b.len() - 1));
        damage(1, "truncated by 2,000 bytes", &|b| {
            b.truncate(b.len() - 2000)
        });
        damage(2, "header count 0x7FFFFFFF", &|b| {
            let at = main_header_at(b);
            b[at + 8..at + 12].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        });
        damage(3, "index offset out of range", &|b| {
            let at = main_header_at(b);
            b[at + 16 + 8..at + 16 + 12].copy_from_slice(&0x0100_0000u32.to_be_bytes());
        });
        damage(4, "payload byte flipped", &|b| {
            let last = b.len() - 100;
            b[last] ^= 0x40;
        });
        let secret = "root:x:0:0:root:/root:/bin/bash";
        let not_rpm = bad_dir.join("passwd.rpm");
        std::fs::write(&not_rpm, format!("{secret}\n").repeat(8)).unwrap();

        let out = env.run(&["import", "fx", bad_dir.to_str().unwrap(), "--json"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: skipped files exit 2: {}",
            backend.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let skipped = report["skipped"].as_array().unwrap();
        for (path, what) in &bad {
            assert!(
                skipped.iter().any(|s| s["path"] == path.to_str().unwrap()),
                "{}: the {what} file was not refused: {report}",
                backend.name()
            );
        }
        assert_eq!(report["added"].as_array().unwrap().len(), 0, "{report}");
        assert_eq!(report["replaced"].as_array().unwrap().len(), 0, "{report}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("root:x") && !report.to_string().contains("root:x"),
            "a non-RPM file's content leaks into the output: {stderr}"
        );
        let passwd = skipped
            .iter()
            .find(|s| s["path"] == not_rpm.to_str().unwrap())
            .unwrap();
        let reason = passwd["reason"].as_str().unwrap();
        assert!(reason.contains("not an RPM"), "{passwd}");
        // Neither the text nor its bytes as numbers ("root" is 114, 111, 111, 116).
        assert!(
            !reason.contains("114, 111, 111, 116") && reason.len() < 120,
            "the reason carries the file's content: {reason}"
        );
        assert!(
            !stderr.contains("114, 111, 111, 116"),
            "the log carries the file's content: {stderr}"
        );
        // Nothing changed: the same publication serves the same packages.
        let after = env.json(&["repo", "show", "fx"]);
        assert_eq!(
            before["repo"]["latest_publication_id"],
            after["repo"]["latest_publication_id"],
            "{}: a refused file changed latest",
            backend.name()
        );
    }
}

#[test]
fn one_bad_header_or_random_damage_never_aborts_the_rest_of_an_import() {
    require_tool("rpm");
    let env = Env::new(&backends()[0], &["fx"]);
    let dir = env.dir.path().join("in");
    let good = cairn::formats::samples::generate(&dir.join("good"), 10).unwrap();
    let source = std::fs::read(&good[0]).unwrap();
    // 30 copies, each with a few bytes flipped at positions from a fixed sequence,
    // under distinct names (so that each would be added if accepted).
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut flipped = Vec::new();
    for i in 0..30 {
        let mut bytes = source.clone();
        for _ in 0..3 {
            let at = 96 + (next() as usize) % (bytes.len() - 96);
            bytes[at] ^= 1 << (next() % 8);
        }
        let path = dir.join(format!("flipped-{i:02}.rpm"));
        std::fs::write(&path, &bytes).unwrap();
        flipped.push(path);
    }
    let out = env.run(&["import", "fx", dir.to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the import aborted instead of skipping the damaged files: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    for f in &good {
        assert!(!skipped.contains(&f.to_str().unwrap()), "{report}");
    }
    let mut refused_by_rpm = 0;
    for f in &flipped {
        if !rpm_k_ok(f) {
            refused_by_rpm += 1;
            assert!(
                skipped.contains(&f.to_str().unwrap()),
                "rpm -K refuses {} but the import took it: {report}",
                f.display()
            );
        }
    }
    assert!(refused_by_rpm >= 20, "only {refused_by_rpm} of 30 damaged");
    let listed = env.json(&["repo", "show", "fx"]);
    assert!(
        listed["repo"]["package_count"].as_u64().unwrap() >= 10,
        "{listed}"
    );
}

#[test]
fn every_real_package_passes_the_digest_check_exactly_when_rpm_k_accepts_it() {
    let Some(real) = real_rpms() else {
        eprintln!("CAIRN_REAL_RPMS is not set: the real packages are not checked");
        return;
    };
    require_tool("rpm");
    let mut checked = 0;
    for e in std::fs::read_dir(&real).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "rpm") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let ours = cairn::formats::rpmcheck::check_bytes(&bytes);
        assert_eq!(
            ours.is_ok(),
            rpm_k_ok(&path),
            "{}: ours {ours:?}",
            path.display()
        );
        // Truncated by one byte: refused by both.
        let cut = env_tmp_file(&bytes[..bytes.len() - 1]);
        assert!(!rpm_k_ok(cut.path()), "{}", path.display());
        assert!(
            cairn::formats::rpmcheck::check_bytes(&bytes[..bytes.len() - 1]).is_err(),
            "{}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 30, "{checked} packages");
}

fn env_tmp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".rpm").tempfile().unwrap();
    std::io::Write::write_all(&mut f, bytes).unwrap();
    f
}

#[test]
fn if_range_with_an_old_etag_gets_the_whole_current_file_never_a_spliced_range() {
    let env = Env::new(&backends()[0], &["fx"]);
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    let server = env.serve();
    let c = http();
    let url = server.url("/repos/fx/latest/repodata/repomd.xml");
    let first = c.get(&url).send().unwrap();
    let old_etag = first.headers()["etag"].to_str().unwrap().to_string();
    let old_body = first.bytes().unwrap();
    assert!(
        old_body.len() > 700,
        "repomd.xml is {} bytes",
        old_body.len()
    );

    // The file under that URL changes.
    let more = env.dir.path().join("more");
    cairn::formats::samples::generate(&more, 3).unwrap();
    env.ok(&["import", "fx", more.to_str().unwrap()]);
    wait_for("the new latest", || {
        c.get(&url).send().unwrap().headers()["etag"] != old_etag.as_str()
    });
    let current = c.get(&url).send().unwrap();
    let etag = current.headers()["etag"].to_str().unwrap().to_string();
    let modified = current.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    let body = current.bytes().unwrap();

    let ranged = |if_range: &str| {
        c.get(&url)
            .header("Range", "bytes=700-")
            .header("If-Range", if_range)
            .send()
            .unwrap()
    };
    let stale = ranged(&old_etag);
    assert_eq!(stale.status(), 200, "an old validator gets the whole file");
    assert_eq!(stale.bytes().unwrap(), body);
    let weak = ranged(&format!("W/{etag}"));
    assert_eq!(weak.status(), 200, "a weak validator never allows a range");
    let fresh = ranged(&etag);
    assert_eq!(fresh.status(), 206);
    assert_eq!(fresh.bytes().unwrap(), body.slice(700..));
    let dated = ranged(&modified);
    assert_eq!(
        dated.status(),
        206,
        "the exact Last-Modified date allows it"
    );
    let old_date = ranged("Thu, 01 Jan 1998 00:00:00 GMT");
    assert_eq!(old_date.status(), 200);
}

#[test]
fn an_empty_local_repository_and_a_new_view_serve_valid_empty_repositories() {
    for backend in backends() {
        let env = Env::new(&backend, &["loc"]);
        let mut server = env.serve();
        let c = http();
        let repo_url = server.url("/repos/loc/latest/");
        let repomd = c
            .get(format!("{repo_url}repodata/repomd.xml"))
            .send()
            .unwrap();
        assert_eq!(
            repomd.status(),
            200,
            "{}: empty repo latest",
            backend.name()
        );
        let (out, _) = dnf(&repo_url, &["makecache"]);
        assert!(out.contains("Metadata cache created"), "{out}");

        // A view declared while the server runs, and snapshotted: both its snapshot
        // and its latest are served.
        let text = std::fs::read_to_string(&env.config).unwrap();
        std::fs::write(
            &env.config,
            format!("{text}\n[[view]]\nname = \"vw\"\nrepos = [\"loc\"]\n"),
        )
        .unwrap();
        env.ok(&["view", "snapshot", "vw", "--name", "v1"]);
        for tree in ["v1", "latest"] {
            let url = server.url(&format!("/views/vw/{tree}/repodata/repomd.xml"));
            wait_for(&format!("{}: view {tree}", backend.name()), || {
                c.get(&url).send().unwrap().status() == 200
            });
        }
        server.stop();
    }
}

/// Runs `cmd` expecting it to fail at start (with a timeout, so that a server that
/// starts anyway is stopped and reported); returns its stderr.
fn fails_at_start(mut cmd: std::process::Command, what: &str) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(!out.status.success(), "{what} succeeded");
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "{what} started and kept running: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_second_server_on_a_taken_address_or_the_same_data_dir_fails_at_start() {
    let first = Env::new(&backends()[0], &["a"]);
    let server = first.serve();

    // Another installation on the first one's address.
    let other = Env::new(&backends()[0], &["b"]);
    let err = fails_at_start(
        other.cmd(&["serve", "--listen", &server.addr]),
        "a second serve on a taken address",
    );
    assert!(
        err.contains("already in use") && err.contains(&server.addr),
        "{err}"
    );
    // The demo too.
    let demo_dir = other.dir.path().join("demo");
    let err = fails_at_start(
        other.cmd(&[
            "demo",
            "--listen",
            &server.addr,
            "--dir",
            demo_dir.to_str().unwrap(),
        ]),
        "a demo on a taken address",
    );
    assert!(err.contains("already in use"), "{err}");

    // The same data dir on another address: refused, naming the first server.
    let err = fails_at_start(
        first.cmd(&["serve", "--listen", "127.0.0.1:0"]),
        "a second serve of the same data dir",
    );
    assert!(
        err.contains("already served") && err.contains(&format!("pid {}", server.pid())),
        "{err}"
    );
    // The first one still answers alone.
    let c = http();
    for _ in 0..20 {
        assert_eq!(c.get(server.url("/healthz")).send().unwrap().status(), 200);
    }
}

#[test]
fn a_tree_is_served_the_moment_the_command_that_published_it_returns() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        let server = env.serve();
        let c = http();
        for i in 0..5 {
            let name = format!("s{i}");
            env.ok(&["snapshot", "create", "fx", "--name", &name]);
            let r = c
                .get(server.url(&format!("/repos/fx/{name}/repodata/repomd.xml")))
                .send()
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "{}: snapshot {name} right after",
                backend.name()
            );
            let alias = format!("a{i}");
            env.ok(&["publish", "fx", &name, "--as", &alias]);
            let r = c
                .get(server.url(&format!("/repos/fx/{alias}/repodata/repomd.xml")))
                .send()
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "{}: alias {alias} right after",
                backend.name()
            );
        }
        // What does not exist is still 404, at once.
        let r = c
            .get(server.url("/repos/fx/nothing/repodata/repomd.xml"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 404);
    }
}

/// Runs `cmd` to its end; returns whether it succeeded, its stderr and its peak RSS
/// in bytes (from wait4's rusage of that one process).
// The child is reaped by wait4, not by `Child::wait`, which cannot report rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(mut cmd: std::process::Command) -> (bool, String, u64) {
    let err_file = tempfile::NamedTempFile::new().unwrap();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(err_file.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(rc, child.id() as i32, "wait4");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let stderr = std::fs::read_to_string(err_file.path()).unwrap();
    (ok, stderr, usage.ru_maxrss as u64 * 1024)
}

/// gzip of `head`, `fill` repeated to `fill_bytes`, then `tail` (fast: a bomb).
fn gzip_bomb(head: &str, fill: u8, fill_bytes: usize, tail: &str) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(head.as_bytes()).unwrap();
    let chunk = vec![fill; 1 << 20];
    for _ in 0..fill_bytes / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.write_all(tail.as_bytes()).unwrap();
    enc.finish().unwrap()
}

/// Puts `gz` into `repo/repodata/` as the `kind` record of its repomd.xml (replacing
/// one of that kind), with checksum and size but no open size, as a hostile upstream
/// would.
fn set_record(repo: &std::path::Path, kind: &str, gz: &[u8]) {
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(gz));
    let name = format!("repodata/{sha}-{kind}.xml.gz");
    std::fs::write(repo.join(&name), gz).unwrap();
    let path = repo.join("repodata/repomd.xml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let open = format!("<data type=\"{kind}\">");
    if let Some(start) = text.find(&open) {
        let end = start + text[start..].find("</data>").unwrap() + "</data>".len();
        text.replace_range(start..end, "");
    }
    let record = format!(
        "{open}<checksum type=\"sha256\">{sha}</checksum><location href=\"{name}\"/><timestamp>1</timestamp><size>{}</size></data>\n",
        gz.len()
    );
    let at = text.find("</repomd>").unwrap();
    text.insert_str(at, &record);
    std::fs::write(&path, text).unwrap();
}

#[test]
fn decompression_bombs_fail_the_sync_in_bounded_memory() {
    const GIB: usize = 1 << 30;
    const ALLOWED: u64 = 64 << 20;
    let ns = "xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\"";
    let primary_head = format!("<?xml version=\"1.0\"?>\n<metadata {ns} packages=\"1\">");
    let bombs: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "primary: whitespace between packages",
            "primary",
            gzip_bomb(&primary_head, b' ', GIB, "</metadata>"),
        ),
        (
            "primary: one comment",
            "primary",
            gzip_bomb(&format!("{primary_head}<!--"), b'x', GIB, "--></metadata>"),
        ),
        (
            "primary: text in a package",
            "primary",
            gzip_bomb(
                &format!("{primary_head}<package type=\"rpm\"><description>"),
                b'a',
                GIB,
                "</description></package></metadata>",
            ),
        ),
        (
            "updateinfo: text in an advisory",
            "updateinfo",
            gzip_bomb(
                "<?xml version=\"1.0\"?>\n<updates><update><description>",
                b'a',
                GIB,
                "</description></update></updates>",
            ),
        ),
        (
            "comps: whitespace",
            "group",
            gzip_bomb("<?xml version=\"1.0\"?>\n<comps>", b' ', GIB, "</comps>"),
        ),
    ];
    // The same sync of an ordinary upstream: the baseline.
    let (up_dir, _) = demo_upstream_tree();
    let upstream = Upstream::start(up_dir.path());
    let env = mirror_env(&backends()[0], &upstream, "");
    let (ok, err, baseline) = run_measured(env.cmd(&["repo", "sync", "m"]));
    assert!(ok, "{err}");
    for (what, kind, gz) in bombs {
        let (up_dir, repo) = demo_upstream_tree();
        set_record(&repo, kind, &gz);
        let upstream = Upstream::start(up_dir.path());
        let env = mirror_env(&backends()[0], &upstream, "");
        let (ok, err, peak) = run_measured(env.cmd(&["repo", "sync", "m"]));
        assert!(!ok, "{what}: the sync succeeded");
        assert!(
            err.contains("sync failed") && (err.contains("larger than") || err.contains("exceeds")),
            "{what}: {err}"
        );
        assert!(
            peak <= baseline + ALLOWED,
            "{what}: peak RSS {} MiB, baseline {} MiB",
            peak >> 20,
            baseline >> 20
        );
        eprintln!(
            "{what}: peak RSS {} MiB (baseline {} MiB)",
            peak >> 20,
            baseline >> 20
        );
    }
}

/// The href of `kind`'s record in a repomd.xml.
fn record_href(repomd: &str, kind: &str) -> String {
    let at = repomd.find(&format!("<data type=\"{kind}\">")).unwrap();
    let rest = &repomd[at..];
    let start = rest.find("href=\"").unwrap() + 6;
    rest[start..start + rest[start..].find('"').unwrap()].to_string()
}

#[test]
fn what_latest_served_stays_servable_for_the_grace_period_then_goes() {
    for backend in backends() {
        let (up_dir, repo) = demo_upstream_tree();
        let upstream = Upstream::start(up_dir.path());
        let env = Env::with_repo_toml(
            &backend,
            &format!(
                "alias_grace = \"4s\"\n[[repo]]\nid = \"m\"\nfeed = \"{}\"\n",
                upstream.url("repo/")
            ),
        );
        env.ok(&["repo", "sync", "m"]);
        let server = env.serve();
        let c = http();
        let get = |path: &str| {
            c.get(server.url(&format!("/repos/m/latest/{path}")))
                .send()
                .unwrap()
        };
        let old_repomd = get("repodata/repomd.xml").text().unwrap();
        let old_primary = record_href(&old_repomd, "primary");
        let gone = "Packages/d/demo-docs-1.0-1.noarch.rpm";
        let gone_bytes = get(gone).bytes().unwrap();
        assert!(!gone_bytes.is_empty());

        // Upstream drops a package; the next sync follows.
        let removed = std::fs::read_dir(&repo)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("demo-docs")
            })
            .unwrap();
        std::fs::remove_file(&removed).unwrap();
        createrepo_dir(&repo, false);
        env.ok(&["repo", "sync", "m"]);
        wait_for("the new latest", || {
            get("repodata/repomd.xml").text().unwrap() != old_repomd
        });
        let new_repomd = get("repodata/repomd.xml").text().unwrap();
        assert!(!new_repomd.contains("demo-docs"), "sanity");

        // A client holding the old repomd.xml still gets what it names.
        assert_eq!(
            get(&old_primary).status(),
            200,
            "{}: old primary",
            backend.name()
        );
        let r = get(gone);
        assert_eq!(
            r.status(),
            200,
            "{}: a package latest no longer has",
            backend.name()
        );
        assert_eq!(r.bytes().unwrap(), gone_bytes);
        // Not listed: the listing shows what latest has now.
        let listing = get("Packages/d/").text().unwrap();
        assert!(!listing.contains("demo-docs"), "{listing}");

        // After the grace period (and the next change), they are gone.
        std::thread::sleep(Duration::from_millis(4500));
        env.ok(&["snapshot", "create", "m", "--name", "after"]);
        wait_for("the grace period to end", || {
            get(&old_primary).status() == 404
        });
        assert_eq!(get(gone).status(), 404, "{}", backend.name());
        // And gc may remove them now, but never what latest serves.
        env.ok(&["gc", "--min-age", "0s"]);
        let report = env.json(&["db", "verify"]);
        assert_eq!(
            report["missing"].as_array().map(Vec::len),
            Some(0),
            "{report}"
        );
        assert_eq!(get("repodata/repomd.xml").status(), 200);
    }
}
