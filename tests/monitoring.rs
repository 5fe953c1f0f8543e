//! Monitoring against real Prometheus tooling: `promtool check metrics` accepts
//! `/metrics`, the counters follow requests, catalog state (syncs, snapshots, GC,
//! verify, pool) shows whichever process changed it, the alert rules pass
//! `promtool check rules` and `promtool test rules`, and every query of the Grafana
//! dashboard returns data from a real Prometheus scraping a running Cairn.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn appliance() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("appliance")
}

/// The value of the sample whose series (name and labels, as exposed) is `series`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

fn scrape(server: &Server) -> String {
    let r = http().get(server.url("/metrics")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    r.text().unwrap()
}

fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    require_tool("promtool");
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// An installation with a local repository, a mirror of an nginx upstream and a view
/// over both, after an import, a sync, snapshots, a GC and a verify.
struct Site {
    env: Env,
    _upstream: Upstream,
    _up_dir: tempfile::TempDir,
    files: Vec<PathBuf>,
}

fn site(backend: &Backend, extra_toml: &str) -> Site {
    let up_dir = tempfile::tempdir().unwrap();
    let repo = up_dir.path().join("repo");
    let files = cairn::formats::samples::demo_packages(&repo).unwrap();
    createrepo_dir(&repo, false);
    let upstream = Upstream::start(up_dir.path());
    let env = Env::with_repo_toml(
        backend,
        &format!(
            "[[repo]]\nid = \"local\"\n\
             [[repo]]\nid = \"mirror\"\nfeed = \"{}\"\n{extra_toml}\
             [[view]]\nname = \"all\"\nrepos = [\"local\", \"mirror\"]\n",
            upstream.url("/repo/")
        ),
    );
    env.ok(&["import", "local", repo.to_str().unwrap()]);
    env.ok(&["repo", "sync", "mirror"]);
    env.ok(&["snapshot", "create", "local", "--name", "s1"]);
    env.ok(&["view", "snapshot", "all", "--name", "v1"]);
    env.ok(&["gc"]);
    env.ok(&["db", "verify"]);
    Site {
        env,
        _upstream: upstream,
        _up_dir: up_dir,
        files,
    }
}

#[test]
fn metrics_follow_requests_and_catalog_state_and_promtool_accepts_them() {
    for backend in backends() {
        let s = site(&backend, "");
        let name = backend.name();
        let server = s.env.serve();
        let text = scrape(&server);

        // Catalog state, written by other processes before the server started.
        let n = s.files.len() as f64;
        assert_eq!(
            must(&text, "cairn_repo_packages{repo=\"local\"}"),
            n,
            "{name}"
        );
        assert_eq!(
            must(&text, "cairn_repo_packages{repo=\"mirror\"}"),
            n,
            "{name}"
        );
        assert_eq!(
            must(&text, "cairn_view_packages{view=\"all\"}"),
            n,
            "{name}"
        );
        assert_eq!(must(&text, "cairn_repo_snapshots{repo=\"local\"}"), 2.0);
        assert_eq!(must(&text, "cairn_view_snapshots{view=\"all\"}"), 1.0);
        assert_eq!(
            must(&text, "cairn_repo_newest_snapshot_packages{repo=\"local\"}"),
            n
        );
        assert_eq!(
            must(&text, "cairn_view_newest_snapshot_packages{view=\"all\"}"),
            n
        );
        assert_eq!(
            must(
                &text,
                "cairn_sync_runs_total{repo=\"mirror\",result=\"ok\"}"
            ),
            1.0
        );
        assert_eq!(
            must(
                &text,
                "cairn_sync_runs_total{repo=\"mirror\",result=\"failed\"}"
            ),
            0.0
        );
        assert_eq!(
            must(&text, "cairn_sync_last_run_success{repo=\"mirror\"}"),
            1.0
        );
        assert_eq!(
            must(
                &text,
                "cairn_sync_downloaded_packages_total{repo=\"mirror\"}"
            ),
            0.0,
            "{name}: the mirror's packages were already in the pool from the import"
        );
        assert!(
            must(
                &text,
                "cairn_sync_last_success_timestamp_seconds{repo=\"mirror\"}"
            ) > 1.7e9
        );
        assert!(value(&text, "cairn_sync_last_run_success{repo=\"local\"}").is_none());
        assert_eq!(must(&text, "cairn_gc_runs_total"), 1.0);
        assert_eq!(must(&text, "cairn_verify_problems"), 0.0);
        assert!(must(&text, "cairn_pool_blobs") >= n);
        assert!(must(&text, "cairn_pool_bytes") > 0.0);
        assert!(must(&text, "cairn_pool_filesystem_free_bytes") > 0.0);
        assert!(must(&text, "cairn_catalog_bytes") > 0.0);
        assert!(must(&text, "cairn_process_resident_memory_bytes") > 0.0);
        assert!(text.contains("cairn_build_info{commit=\""));

        // Requests move the serving counters, each in its class.
        let c = http();
        let before = scrape(&server);
        let repomd = server.url("/repos/local/s1/repodata/repomd.xml");
        let first = c.get(&repomd).send().unwrap();
        assert_eq!(first.status(), 200);
        let etag = first.headers()["etag"].clone();
        let len = first.bytes().unwrap().len() as f64;
        let again = c.get(&repomd).header("If-None-Match", etag).send().unwrap();
        assert_eq!(again.status(), 304);
        for page in ["/repos/local/s1/", "/repos/local/s1/Packages/"] {
            assert_eq!(c.get(server.url(page)).send().unwrap().status(), 200);
        }
        let file = s.files[0].file_name().unwrap().to_str().unwrap();
        let href = format!(
            "/repos/local/s1/Packages/{}/{file}",
            file[..1].to_ascii_lowercase()
        );
        let ranged = c
            .get(server.url(&href))
            .header("Range", "bytes=0-99")
            .send()
            .unwrap();
        assert_eq!(ranged.status(), 206);
        assert_eq!(ranged.bytes().unwrap().len(), 100);
        let missing = c
            .get(server.url("/repos/local/s1/Packages/n/none-1-1.noarch.rpm"))
            .send()
            .unwrap();
        assert_eq!(missing.status(), 404);
        let bad = c.post(server.url("/repos/")).send().unwrap();
        assert_eq!(bad.status(), 405);

        let after = scrape(&server);
        let delta = |series: &str| must(&after, series) - value(&before, series).unwrap_or(0.0);
        assert_eq!(
            delta("cairn_http_requests_total{class=\"metadata\",code=\"2xx\"}"),
            1.0
        );
        assert_eq!(
            delta("cairn_http_requests_total{class=\"metadata\",code=\"3xx\"}"),
            1.0
        );
        assert_eq!(
            delta("cairn_http_requests_total{class=\"package\",code=\"2xx\"}"),
            1.0
        );
        assert_eq!(
            delta("cairn_http_requests_total{class=\"package\",code=\"4xx\"}"),
            1.0
        );
        assert_eq!(
            delta("cairn_http_requests_total{class=\"other\",code=\"4xx\"}"),
            1.0
        );
        assert_eq!(
            delta("cairn_http_requests_total{class=\"page\",code=\"2xx\"}"),
            2.0
        );
        assert_eq!(delta("cairn_http_not_modified_total"), 1.0);
        assert_eq!(delta("cairn_http_range_requests_total"), 1.0);
        assert_eq!(
            delta("cairn_http_response_bytes_total{class=\"metadata\"}"),
            len
        );
        assert!(delta("cairn_http_response_bytes_total{class=\"package\"}") >= 100.0);
        assert!(delta("cairn_http_request_duration_seconds_count{class=\"metadata\"}") >= 2.0);
        assert!(must(&after, "cairn_http_open_connections") >= 1.0);

        // promtool reads the exposition as Prometheus would, and lints it.
        let out = promtool(&["check", "metrics"], Some(&after));
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{name}: promtool check metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = appliance().join("prometheus");
    let rules = dir.join("cairn-alerts.yml");
    let out = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 7 rules found"));
    let tests = dir.join("cairn-alerts.test.yml");
    let out = promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus on a free loopback port scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        require_tool("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: cairn\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// Runs an instant query; returns (status, result array).
    fn query(&self, q: &str) -> (String, Vec<serde_json::Value>) {
        let r = http()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", q)])
            .send();
        let Ok(r) = r else {
            return ("unreachable".into(), Vec::new());
        };
        let v: serde_json::Value = r
            .bytes()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let status = v["status"].as_str().unwrap_or("none").to_string();
        let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
        (status, result)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PromQL expressions of every panel target of a Grafana dashboard.
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

/// Metric names a PromQL expression uses (Cairn's, which all start with `cairn_`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("cairn_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.insert(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let backend = backends().remove(0);
    // A scheduled sync that keeps working, and one whose upstream has no repository,
    // so the served process has its own sync series (schedule lag, upstream errors).
    let s = site(
        &backend,
        "schedule = \"every 1s\"\n\
         [[repo]]\nid = \"broken\"\nfeed = \"http://127.0.0.1:9/none/\"\nschedule = \"every 1s\"\n",
    );
    let server = s.env.serve();
    wait_for("a scheduled sync to fail and be counted", || {
        scrape(&server)
            .contains("cairn_sync_upstream_errors_total{kind=\"connect\",repo=\"broken\"}")
    });
    let text = scrape(&server);
    let c = http();
    for path in [
        "/",
        "/repos/local/s1/repodata/repomd.xml",
        "/views/all/v1/repodata/repomd.xml",
        "/repos/none/",
    ] {
        c.get(server.url(path)).send().unwrap();
    }

    let dashboard: serde_json::Value = serde_json::from_slice(
        &std::fs::read(appliance().join("grafana/cairn-dashboard.json")).unwrap(),
    )
    .unwrap();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 20, "{exprs:?}");

    // Every metric a query names is one Cairn exports.
    for name in exprs.iter().flat_map(|e| metric_names(e)) {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|sfx| name.strip_suffix(sfx))
            .filter(|b| text.contains(&format!("# TYPE {b} histogram")))
            .unwrap_or(&name);
        assert!(
            text.contains(&format!("# TYPE {base} ")),
            "the dashboard uses {name}, which /metrics does not export"
        );
    }

    let prometheus = Prometheus::start(&server.addr);
    let mut tries = 0;
    loop {
        let (status, result) = prometheus.query("count_over_time(up{job=\"cairn\"}[1m])");
        let samples = result
            .first()
            .and_then(|r| r["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if status == "success" && samples >= 5.0 {
            break;
        }
        tries += 1;
        assert!(
            tries < 120,
            "Prometheus did not scrape Cairn five times in 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, up) = prometheus.query("up{job=\"cairn\"}");
    assert_eq!(up[0]["value"][1], "1", "{up:?}");

    for expr in &exprs {
        let q = expr
            .replace("$__rate_interval", "20s")
            .replace("$repo", ".*");
        let (status, result) = prometheus.query(&q);
        assert_eq!(status, "success", "{q}");
        assert!(!result.is_empty(), "no data for the dashboard query {q}");
    }
    // The per-repository panels see every repository.
    let (_, repos) = prometheus.query("cairn_sync_last_run_success");
    let names: BTreeSet<&str> = repos
        .iter()
        .filter_map(|r| r["metric"]["repo"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["broken", "mirror"]));
    let (_, broken) = prometheus.query("cairn_sync_last_run_success{repo=\"broken\"}");
    assert_eq!(broken[0]["value"][1], "0");
}
