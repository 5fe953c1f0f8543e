//! The harness: an isolated installation per test ([`Env`]) on each catalog backend,
//! a running `cairn serve` ([`Server`]), and polling.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// A catalog backend to run a test against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// Admin URL of a PostgreSQL server; each test gets a fresh database.
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// SQLite always; PostgreSQL when `CAIRN_TEST_POSTGRES_URL` is set. Under CI the
/// PostgreSQL run is mandatory.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match std::env::var("CAIRN_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => out.push(Backend::Postgres(url)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set CAIRN_TEST_POSTGRES_URL so the suite runs on PostgreSQL too"
            );
            eprintln!("note: CAIRN_TEST_POSTGRES_URL is not set; PostgreSQL variants not run here");
        }
    }
    out
}

pub fn create_pg_database(admin_url: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "cairn_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let out = Command::new("psql")
        .arg(admin_url)
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-c")
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "creating a test database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("admin URL ends with /dbname");
    format!("{base}/{name}")
}

/// An isolated Cairn installation: config file, data dir, catalog.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub backend: Backend,
}

impl Env {
    /// A new installation declaring `repos`.
    pub fn new(backend: &Backend, repos: &[&str]) -> Env {
        Env::with_repo_toml(
            backend,
            &repos
                .iter()
                .map(|r| format!("[[repo]]\nid = \"{r}\"\n"))
                .collect::<String>(),
        )
    }

    pub fn with_repo_toml(backend: &Backend, repo_toml: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = match backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres(admin) => {
                format!("database_url = \"{}\"\n", create_pg_database(admin))
            }
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nworkers = 2\n{db}\n{repo_toml}",
            dir.path().join("data").display()
        );
        let config = dir.path().join("cairn.toml");
        std::fs::write(&config, text).unwrap();
        Env {
            dir,
            config,
            backend: backend.clone(),
        }
    }

    /// The catalog URL this installation uses.
    pub fn database_url(&self) -> String {
        let text = std::fs::read_to_string(&self.config).unwrap();
        match text.lines().find_map(|l| l.strip_prefix("database_url = ")) {
            Some(url) => url.trim_matches('"').to_string(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data().join("catalog.db").display()
            ),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the pool keeps the blob `sha`.
    pub fn blob(&self, sha: &str) -> PathBuf {
        self.data()
            .join("pool")
            .join(&sha[..2])
            .join(&sha[2..4])
            .join(sha)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&self.config).args(args);
        c.env_remove("CAIRN_DATABASE_URL").env("CAIRN_LOG", "warn");
        c
    }

    /// Runs `cairn ARGS`, returning the output (whatever the exit code).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("cairn runs")
    }

    /// Runs `cairn ARGS` and insists on success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `cairn ARGS --json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).expect("valid JSON")
    }

    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// Starts `cairn serve` with extra environment variables.
    pub fn serve_with(&self, vars: &[(&str, &str)]) -> Server {
        self.serve_logging(vars, Stdio::inherit())
    }

    /// Starts `cairn serve` with its log (standard error) going to `log`.
    pub fn serve_logging(&self, vars: &[(&str, &str)], log: impl Into<Stdio>) -> Server {
        let mut cmd = self.cmd(&["serve"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd
            .env("CAIRN_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("cairn serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().expect("serve prints its address").unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|s| s.strip_suffix('/'))
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        Server {
            child: Some(child),
            addr,
        }
    }
}

/// A running `cairn serve`; stopped (SIGTERM) on drop.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// How many file descriptors the server holds open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..200 {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().ok();
        panic!("cairn serve did not exit within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            std::thread::sleep(Duration::from_millis(100));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Waits until `f` is true (polling), or panics with `what`.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Asserts that an installation configured with `repo_toml` refuses to run `cairn repo
/// list`, with `expected` in its error.
pub fn assert_config_refused(repo_toml: &str, expected: &str) {
    let env = Env::with_repo_toml(&Backend::Sqlite, repo_toml);
    let out = env.run(&["repo", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {repo_toml}");
    assert!(err.contains(expected), "{repo_toml}: {err}");
}

/// Runs `cairn ARGS` in `env`, insisting that it fails; returns its error output.
pub fn run_failing(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "cairn {args:?} should fail: {err}");
    err
}
