//! Operator safety: a site goes where its config says, whatever directory a command
//! runs in; no config means a clear refusal; feed URLs keep their query.

mod common;

use std::process::Command;

use common::*;

fn cairn_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_DATABASE_URL")
        .env("CAIRN_LOG", "warn")
        .output()
        .expect("cairn runs")
}

#[test]
fn relative_paths_follow_the_config_file_not_the_working_directory() {
    let site = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = site.path().join("cairn.toml");
    std::fs::write(
        &config,
        "[server]\ndata_dir = \"./cairn-data\"\n[[repo]]\nid = \"fx\"\n",
    )
    .unwrap();
    let rpms = elsewhere.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    let out = cairn_in(
        elsewhere.path(),
        &["--config", config.to_str().unwrap(), "import", "fx", "rpms"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(site.path().join("cairn-data/catalog.db").is_file());
    assert!(!elsewhere.path().join("cairn-data").exists());
    // The same site from a third directory sees the same content.
    let third = tempfile::tempdir().unwrap();
    let out = cairn_in(
        third.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "repo",
            "list",
            "--json",
        ],
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["package_count"], 4, "{listed}");
}

#[test]
fn without_a_config_commands_refuse_and_say_where_they_looked() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        &["repo", "list"][..],
        &["serve"],
        &["gc"],
        &["db", "verify"],
    ] {
        let out = cairn_in(empty.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran without a config");
        assert!(
            err.contains("no configuration") && err.contains("cairn init"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(&empty.path().join("cairn.toml").display().to_string()),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "nothing created"
    );
    // init makes one, and then commands work here.
    let out = cairn_in(empty.path(), &["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(empty.path().join("cairn.toml").is_file());
    let out = cairn_in(empty.path(), &["repo", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_feed_with_a_query_string_gets_its_paths_joined_before_the_query() {
    let (up_dir, _) = demo_upstream_tree();
    let upstream = Upstream::start_logged(up_dir.path());
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"{}?token=abc\"\n",
            upstream.url("repo")
        ),
    );
    let report = env.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["status"], "ok", "{report}");
    let requests = upstream.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/repo/repodata/repomd.xml?token=abc ")),
        "{requests:?}"
    );
    assert!(
        requests.iter().all(|r| r.contains("?token=abc")),
        "every request carries the query: {requests:?}"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::generate(&rpms, 300).unwrap();
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    // `cairn snapshot … --json | head -c 1`: the reader leaves after one byte.
    for name in ["a", "b", "c"] {
        env.ok(&["snapshot", "create", "fx", "--name", name]);
    }
    let mut child = env
        .cmd(&["repo", "show", "fx", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn sighup_does_not_stop_the_server() {
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let server = env.serve();
    // SAFETY: signals our own child process.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = http().get(server.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200, "the server survives SIGHUP");
}

#[test]
fn an_unknown_repository_is_named_as_such() {
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    for args in [
        &["snapshot", "list", "nope"][..],
        &["publish", "nope", "x", "--as", "prod"],
        &["snapshot", "delete", "nope", "x"],
    ] {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains("unknown repository \"nope\""),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn dashboard_series_exist_at_zero_from_the_start() {
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        "[[repo]]\nid = \"m\"\nfeed = \"http://127.0.0.1:9/none/\"\nschedule = \"every 6h\"\n",
    );
    let server = env.serve();
    let text = http()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for kind in [
        "http", "connect", "timeout", "transfer", "size", "checksum", "metadata",
    ] {
        let series = format!("cairn_sync_upstream_errors_total{{kind=\"{kind}\",repo=\"m\"}} 0");
        assert!(text.contains(&series), "{series} missing");
    }
    assert!(
        text.contains("cairn_sync_schedule_lag_seconds{repo=\"m\"} 0"),
        "schedule lag missing"
    );
}

#[test]
fn healthz_says_whether_the_catalog_answers() {
    let Some(Backend::Postgres(admin)) = backends().into_iter().find(|b| b.name() == "postgres")
    else {
        eprintln!("CAIRN_TEST_POSTGRES_URL is not set: the catalog outage is not simulated");
        return;
    };
    let env = Env::new(&Backend::Postgres(admin.clone()), &["fx"]);
    let db = env.database_url().rsplit('/').next().unwrap().to_string();
    let server = env.serve();
    let c = http();
    let health = || {
        let r = c.get(server.url("/healthz")).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, body) = health();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("catalog: reachable"), "{body}");
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .arg(&admin)
            .args(["-qAtc", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"));
    psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ));
    wait_for("healthz to report the catalog unreachable", || {
        let (status, body) = health();
        status == 503 && body.contains("catalog: unreachable")
    });
    psql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"));
    wait_for("healthz to recover", || health().0 == 200);
}

/// Runs `cmd`, killing it if it has not ended within `limit` (a hang detector, not a
/// speed check); returns its output.
fn run_bounded(mut cmd: Command, limit: std::time::Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still waiting after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_unreachable_or_refusing_database_is_reported_at_once_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"data\"\ndatabase_url = \"postgres://cairn:pw@127.0.0.1:{port}/cairn\"\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", config.to_str().unwrap(), "repo", "list"])
        .env_remove("CAIRN_DATABASE_URL");
    let out = run_bounded(cmd, std::time::Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains("timed out"), "{err}");
    assert_eq!(err.matches("refused").count(), 1, "said once: {err}");

    let Some(Backend::Postgres(admin)) = backends().into_iter().find(|b| b.name() == "postgres")
    else {
        return;
    };
    let wrong = admin.replacen("postgres:postgres@", "postgres:wrong@", 1);
    std::fs::write(
        &config,
        format!("[server]\ndata_dir = \"data\"\ndatabase_url = \"{wrong}\"\n"),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", config.to_str().unwrap(), "repo", "list"])
        .env_remove("CAIRN_DATABASE_URL");
    let out = run_bounded(cmd, std::time::Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password authentication failed"), "{err}");
    assert_eq!(
        err.matches("password authentication failed").count(),
        1,
        "said once: {err}"
    );
}

#[test]
fn snapshot_diff_accepts_latest_and_aliases_as_the_web_page_does() {
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
    env.ok(&["publish", "fx", "s1", "--as", "prod"]);
    let more = env.dir.path().join("more");
    cairn::formats::samples::generate(&more, 2).unwrap();
    env.ok(&["import", "fx", more.to_str().unwrap()]);
    let d = env.json(&["snapshot", "diff", "fx", "prod", "latest"]);
    assert_eq!(d["added"].as_array().unwrap().len(), 2, "{d}");
    let d = env.json(&["snapshot", "diff", "fx", "latest", "s1"]);
    assert_eq!(d["removed"].as_array().unwrap().len(), 2, "{d}");
    let out = env.run(&["snapshot", "diff", "fx", "s1", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("\"nope\""), "{err}");
}

#[test]
fn two_files_of_one_name_in_one_import_are_not_counted_as_a_replacement() {
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let dir = env.dir.path().join("in");
    let first = dir.join("a");
    let second = dir.join("b");
    cairn::formats::samples::demo_packages(&first).unwrap();
    // A rebuild of demo-lib 1.2.0-1: the same file name, other content.
    let rebuilt = rebuilt_demo_lib(&second.join("demo-lib-1.2.0-1.noarch.rpm"));
    let out = env.run(&["import", "fx", dir.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["replaced"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["added"].as_array().unwrap().len(), 4, "{report}");
    let superseded = report["superseded"].as_array().unwrap();
    assert_eq!(superseded.len(), 1, "{report}");
    assert!(
        superseded[0]["path"]
            .as_str()
            .unwrap()
            .contains("/a/demo-lib"),
        "{report}"
    );
    assert_eq!(superseded[0]["by"], rebuilt.to_str().unwrap(), "{report}");
}

#[test]
fn a_command_run_as_another_user_than_the_data_dirs_owner_refuses_naming_both() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the ownership check is not exercised here");
        return;
    }
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    env.ok(&["repo", "list"]);
    // The service user (nobody here) owns the data dir; root runs a command.
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.data())
        .status()
        .unwrap();
    assert!(status.success());
    let before: Vec<_> = walk(&env.data());
    let out = env.run(&["repo", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "root ran on nobody's data dir");
    assert!(err.contains(&env.data().display().to_string()), "{err}");
    assert!(
        err.contains("uid 65534") && err.contains("sudo -u"),
        "{err}"
    );
    assert_eq!(walk(&env.data()), before, "nothing was written");
}

fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .map(|e| (e.path().to_path_buf(), e.metadata().unwrap().uid()))
        .collect();
    out.sort();
    out
}

#[test]
fn an_alias_can_be_deleted_and_then_frees_its_snapshot() {
    for backend in backends() {
        let env = Env::new(&backend, &["fx"]);
        let rpms = env.dir.path().join("rpms");
        cairn::formats::samples::demo_packages(&rpms).unwrap();
        env.ok(&["import", "fx", rpms.to_str().unwrap()]);
        env.ok(&["snapshot", "create", "fx", "--name", "s1"]);
        env.ok(&["publish", "fx", "s1", "--as", "prod"]);
        let server = env.serve();
        let url = server.url("/repos/fx/prod/repodata/repomd.xml");
        assert_eq!(http().get(&url).send().unwrap().status(), 200);
        // In use by the alias: the snapshot cannot go.
        assert!(!env
            .run(&["snapshot", "delete", "fx", "s1"])
            .status
            .success());
        env.ok(&["alias", "delete", "fx", "prod"]);
        wait_for("the alias to go", || {
            http().get(&url).send().unwrap().status() == 404
        });
        env.ok(&["snapshot", "delete", "fx", "s1"]);
        let out = env.run(&["alias", "delete", "fx", "prod"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("no alias \"prod\""),
            "{err}"
        );
    }
}

#[test]
fn leftovers_of_a_killed_import_go_with_the_next_command() {
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::generate(&rpms, 3000).unwrap();
    env.ok(&["repo", "list"]);
    let mut child = env
        .cmd(&["import", "fx", rpms.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let tmp = env.data().join("pool/tmp");
    // Kill it while it stages (its temp files are in pool/tmp), or give up after 10 s.
    let mut saw = 0;
    for _ in 0..2000 {
        saw = std::fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{pid}-"))
                    })
                    .count()
            })
            .unwrap_or(0);
        if saw > 0 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    // Also one left beside a blob, as a killed sync leaves them.
    let sha = "ab".repeat(32);
    let bucket = env.data().join("pool/ab/ab");
    std::fs::create_dir_all(&bucket).unwrap();
    let beside = bucket.join(format!(".{sha}.{pid}-1.tmp"));
    std::fs::write(&beside, b"partial").unwrap();

    env.ok(&["repo", "list"]);
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "saw {saw} while it ran; left after the next command: {left:?}"
    );
    env.ok(&["gc"]);
    assert!(
        !beside.exists(),
        "gc removes a dead writer's file beside a blob"
    );
    // And the import, run again, completes.
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    let report = env.json(&["db", "verify"]);
    assert_eq!(report["missing"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn an_interrupted_sync_keeps_its_finished_downloads_for_the_next_one() {
    let n = 40;
    let (up_dir, _, _) = upstream_tree(|repo| cairn::formats::samples::generate(repo, n).unwrap());
    // Slow: each package (about 8 KB) takes seconds, so the interrupt lands while
    // packages are still arriving.
    let slow = Upstream::start_slow(up_dir.path(), "2k");
    let config = |upstream: &Upstream| {
        format!(
            "[[repo]]\nid = \"m\"\nfeed = \"{}\"\ndownloads = 4\n",
            upstream.url("repo/")
        )
    };
    let env = Env::with_repo_toml(&Backend::Sqlite, &config(&slow));
    env.ok(&["repo", "list"]);
    let child = env
        .cmd(&["repo", "sync", "m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pool = env.data().join("pool");
    let files = |suffix: &'static str| {
        walkdir::WalkDir::new(&pool)
            .min_depth(3)
            .max_depth(3)
            .into_iter()
            .flatten()
            .filter(move |e| {
                let name = e.file_name().to_string_lossy().into_owned();
                match suffix {
                    "blob" => cairn::store::pool::is_sha256(&name),
                    _ => name.ends_with(suffix),
                }
            })
            .count()
    };
    wait_for("downloads to start", || files(".tmp") > 0);
    // Long enough for the first few to finish, far from all 40.
    std::thread::sleep(std::time::Duration::from_secs(8));
    // SAFETY: signals our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && err.contains("kept"), "{err}");
    let kept = files("blob");
    assert!(kept > 0 && kept < n, "{kept} of {n} kept");
    // The next sync, from a fast server of the same files, fetches only the rest.
    let fast = Upstream::start(up_dir.path());
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(&slow.url("repo/"), &fast.url("repo/")),
    )
    .unwrap();
    let report = env.json(&["repo", "sync", "m"]);
    assert_eq!(report["m"]["status"], "ok", "{report}");
    let downloaded = report["m"]["downloaded"].as_u64().unwrap() as usize;
    assert_eq!(downloaded, n - kept, "{kept} were kept: {report}");
}

/// A sync killed outright (SIGKILL) leaves its verified downloads as temp files beside
/// their blobs; the next command that opens the pool removes them (the dead writer's
/// journal says which buckets), without waiting for gc.
#[test]
fn temp_files_of_a_killed_sync_go_with_the_next_command() {
    let n = 40;
    let (up_dir, _, _) = upstream_tree(|repo| cairn::formats::samples::generate(repo, n).unwrap());
    let slow = Upstream::start_slow(up_dir.path(), "4k");
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"{}\"\ndownloads = 8\n",
            slow.url("repo/")
        ),
    );
    env.ok(&["repo", "list"]);
    let mut child = env
        .cmd(&["repo", "sync", "m"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pool = env.data().join("pool");
    let temps = || {
        walkdir::WalkDir::new(&pool)
            .min_depth(3)
            .max_depth(3)
            .into_iter()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    };
    wait_for("verified downloads waiting in the buckets", || temps() >= 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = temps();
    assert!(left >= 3, "{left}");
    env.ok(&["repo", "list"]);
    assert_eq!(
        temps(),
        0,
        "{left} temp files were left; the next command removes them"
    );
    let journals: Vec<_> = std::fs::read_dir(pool.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(journals.is_empty(), "{journals:?}");
}

#[test]
fn an_upstream_that_accepts_and_never_answers_fails_the_sync_with_a_clear_reason() {
    // Accepts connections and holds them, saying nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"http://127.0.0.1:{port}/repo/\"\nconnect_timeout = \"1s\"\nidle_timeout = \"1s\"\n"
        ),
    );
    let out = run_bounded(
        env.cmd(&["repo", "sync", "m"]),
        std::time::Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("stopped answering"), "{err}");
    assert!(err.contains("repomd.xml"), "names the URL: {err}");
}

/// An upstream that trickles a byte every half second never trips the idle timeout:
/// the sync's `deadline` ends it, and until then the log says what it is fetching
/// rather than "downloading 0/0 files".
#[test]
fn a_trickling_upstream_is_stopped_by_the_sync_deadline() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = [0u8; 4096];
                let _ = s.read(&mut head);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
                while s.write_all(b"<").is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
            });
        }
    });
    let env = Env::with_repo_toml(
        &Backend::Sqlite,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"http://127.0.0.1:{port}/repo/\"\ndeadline = \"7s\"\n"
        ),
    );
    let mut cmd = env.cmd(&["repo", "sync", "m"]);
    cmd.env("CAIRN_LOG", "info");
    let out = run_bounded(cmd, std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("stopped after 7s, the repository's deadline"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "m: fetching http://127.0.0.1:{port}/repo/repodata/repomd.xml, for"
        )),
        "{err}"
    );
    assert!(!err.contains("0/0 files"), "{err}");
    let shown = env.json(&["repo", "show", "m"]);
    assert!(
        shown.to_string().contains("deadline"),
        "the run is recorded as failed with the reason: {shown}"
    );
}

/// `access_log = "json"` writes one JSON object per answered request on standard
/// output, after the address line; `--log-format json` makes every log line on
/// standard error a JSON object. A format the server does not know is refused at load.
#[test]
fn access_log_and_json_logs() {
    use std::io::{BufRead, BufReader, Read};
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replacen("[server]\n", "[server]\naccess_log = \"xml\"\n", 1),
    )
    .unwrap();
    let out = env.run(&["repo", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("access_log") && err.contains("line 2"),
        "{err}"
    );
    assert!(err.contains("common") && err.contains("json"), "{err}");
    std::fs::write(
        &env.config,
        text.replacen("[server]\n", "[server]\naccess_log = \"json\"\n", 1),
    )
    .unwrap();

    let mut child = env
        .cmd(&["serve", "--log-format", "json"])
        .env("CAIRN_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let client = http();
    let ok = client
        .get(format!("http://{addr}/healthz?probe=1"))
        .header("User-Agent", "ops-check/1.0")
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body_len = ok.bytes().unwrap().len() as u64;
    let missing = client
        .get(format!("http://{addr}/repos/fx/no-such-snapshot/x.rpm"))
        .header("Referer", "http://example.test/")
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    let head = client
        .head(format!("http://{addr}/healthz"))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success());

    let lines: Vec<serde_json::Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 3, "{rest}");
    assert_eq!(lines[0]["method"], "GET");
    assert_eq!(lines[0]["target"], "/healthz?probe=1");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["bytes"], body_len);
    assert_eq!(lines[0]["user_agent"], "ops-check/1.0");
    assert_eq!(lines[0]["remote"], "127.0.0.1");
    assert_eq!(lines[0]["protocol"], "HTTP/1.1");
    assert!(lines[0]["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[1]["status"], 404);
    assert_eq!(lines[1]["referer"], "http://example.test/");
    assert_eq!(lines[2]["method"], "HEAD");
    assert_eq!(lines[2]["bytes"], 0);

    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        logs.iter().any(
            |l| l["level"] == "INFO" && l["message"].as_str().unwrap_or("").contains("serving")
        ),
        "{stderr}"
    );
    assert!(logs.iter().all(|l| l["timestamp"].is_string()), "{stderr}");
}

/// A tmpfs of `size` mounted at `dir`, unmounted on drop (the tests run as root, as
/// CI does).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        // SAFETY: getuid/getgid only read the process's ids.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let st = Tmpfs::as_root("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},uid={uid},gid={gid},mode=0755"))
            .arg("tmpfs")
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs at {} needs root or password-less sudo",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }

    /// `program`, through `sudo -n` unless this is root already.
    fn as_root(program: &str) -> Command {
        // SAFETY: geteuid only reads the process's effective id.
        if unsafe { libc::geteuid() } == 0 {
            Command::new(program)
        } else {
            let mut c = Command::new("sudo");
            c.arg("-n").arg(program);
            c
        }
    }

    fn resize(&self, size: &str) {
        let st = Tmpfs::as_root("mount")
            .arg("-o")
            .arg(format!("remount,size={size}"))
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Tmpfs::as_root("umount").arg("-l").arg(&self.0).status();
    }
}

/// A site in `dir`: `count` generated packages in `rpms/`, the data dir `data/`, and
/// `cairn.toml` declaring repository `fx` with `server_extra` in `[server]`. Returns
/// the packages' directory, the data dir and the config.
fn generated_site(
    dir: &std::path::Path,
    count: usize,
    server_extra: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let rpms = dir.join("rpms");
    cairn::formats::samples::generate(&rpms, count).unwrap();
    let data = dir.join("data");
    let config = dir.join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n{server_extra}[[repo]]\nid = \"fx\"\n",
            data.display()
        ),
    )
    .unwrap();
    (rpms, data, config)
}

/// `cairn --config CONFIG ARGS`, failing the test if it runs over a minute (a full
/// disk must be reported at once).
fn cairn_bounded(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("CAIRN_DATABASE_URL")
        .env("CAIRN_LOG", "warn");
    run_bounded(cmd, std::time::Duration::from_secs(60))
}

fn pool_blobs(data: &std::path::Path) -> usize {
    walkdir::WalkDir::new(data.join("pool"))
        .min_depth(3)
        .max_depth(3)
        .into_iter()
        .flatten()
        .filter(|e| cairn::store::pool::is_sha256(&e.file_name().to_string_lossy()))
        .count()
}

/// A full pool disk stops an import at once with one clear error (not a warning per
/// file), a full catalog disk fails every command at once naming the cause, and once
/// space is back the same import succeeds without a manual gc.
#[test]
fn a_full_disk_fails_fast_and_clearly_and_the_retry_succeeds_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (rpms, data, config) = generated_site(dir.path(), 3000, "");
    let disk = Tmpfs::mount(&data, "12m");
    let cairn = |args: &[&str]| cairn_bounded(&config, args);
    let out = cairn(&["import", "fx", rpms.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    // Pool and catalog share this file system, and an import writes both batch by
    // batch: whichever fills it first is named, with the fix.
    assert!(
        err.contains("the pool's file system is full")
            || err.contains("the catalog's disk is full"),
        "{err}"
    );
    assert!(
        err.lines().count() < 5,
        "one error, not one per file: {err}"
    );
    assert_eq!(
        pool_blobs(&data),
        0,
        "nothing half-imported is left in the pool"
    );

    // The disk filled by something else: the catalog cannot work, and says so at once.
    let filler = data.join("filler");
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .arg("bs=64k")
        .output();
    let out = cairn(&["snapshot", "create", "fx"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("disk is full") || err.contains("file system is full"),
        "{err}"
    );
    assert!(
        !err.contains("pool timed out"),
        "the first error, not a timeout: {err}"
    );

    // Space is back: the same import succeeds, with no gc in between.
    std::fs::remove_file(&filler).unwrap();
    disk.resize("64m");
    let out = cairn(&["import", "fx", rpms.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The packages, and the four metadata files of `latest` (repomd, primary,
    // filelists, other).
    assert_eq!(pool_blobs(&data), 3000 + 4);
    let out = cairn(&["db", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// When the pool has room but the catalog's disk fills while the rows are written,
/// the import fails naming the catalog, and gives back the pool files it had added
/// (the default gc would keep them for an hour).
#[test]
fn an_import_that_fails_on_a_full_catalog_gives_its_new_pool_files_back() {
    let dir = tempfile::tempdir().unwrap();
    let catalog_dir = dir.path().join("catalog");
    let (rpms, data, config) = generated_site(
        dir.path(),
        1500,
        &format!(
            "database_url = \"sqlite://{}/catalog.db?mode=rwc\"\n",
            catalog_dir.display()
        ),
    );
    let catalog_disk = Tmpfs::mount(&catalog_dir, "1m");
    let cairn = |args: &[&str]| cairn_bounded(&config, args);
    let out = cairn(&["import", "fx", rpms.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("the catalog's disk is full"), "{err}");
    assert_eq!(
        pool_blobs(&data),
        0,
        "the failed import's files were given back"
    );
    // gc, what an operator runs to make room, runs on the full catalog disk.
    let out = cairn(&["gc", "--min-age", "0s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    catalog_disk.resize("64m");
    let out = cairn(&["import", "fx", rpms.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pool_blobs(&data), 1500 + 4);
}
