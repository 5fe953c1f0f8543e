//! Shared helpers for the integration tests: sample packages, isolated data dirs on
//! every catalog backend, the `cairn` binary, a served instance, and an XML tree
//! comparison for metadata parity.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// The folder of real third-party packages, when the environment provides it.
pub fn real_rpms() -> Option<PathBuf> {
    let dir = std::env::var_os("CAIRN_REAL_RPMS")?;
    let dir = PathBuf::from(dir);
    assert!(
        dir.is_dir(),
        "CAIRN_REAL_RPMS={} is not a directory",
        dir.display()
    );
    Some(dir)
}

/// Copies `*.rpm` from `src` into `dst`, keeping modification times.
pub fn copy_rpms(src: &Path, dst: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dst).unwrap();
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(src).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "rpm") {
            let to = dst.join(e.file_name());
            std::fs::copy(&p, &to).unwrap();
            let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
            std::fs::File::options()
                .write(true)
                .open(&to)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
            out.push(to);
        }
    }
    out
}

/// What import would record about a file: its sha256, size and modification time.
pub fn file_facts(path: &Path) -> cairn::formats::rpmread::FileFacts {
    let bytes = std::fs::read(path).unwrap();
    let meta = std::fs::metadata(path).unwrap();
    cairn::formats::rpmread::FileFacts {
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        size: meta.len(),
        mtime: meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    }
}

/// Requires an external tool the suite compares against (installed by `.ci/run`).
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed; `.ci/run` installs it (apt-get install)"
    );
}

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

fn create_pg_database(admin_url: &str) -> String {
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
        let mut cmd = self.cmd(&["serve"]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd
            .env("CAIRN_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
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

/// Runs dnf against `baseurl` in a fresh install root and returns the installed names.
pub fn dnf_install(baseurl: &str, packages: &[&str]) -> Vec<String> {
    let mut args = vec!["install"];
    args.extend_from_slice(packages);
    dnf(baseurl, &args).1
}

/// Runs `dnf ARGS` against `baseurl` in a fresh install root (as DESIGN.md describes),
/// insisting on success; returns its stdout and the names installed afterwards.
pub fn dnf(baseurl: &str, args: &[&str]) -> (String, Vec<String>) {
    require_tool("dnf");
    let root = tempfile::tempdir().unwrap();
    let r = root.path().join("root");
    let cache = root.path().join("cache");
    let out = Command::new("dnf")
        .arg(format!("--installroot={}", r.display()))
        .arg("--releasever=1")
        .arg("--setopt=reposdir=/dev/null")
        .arg(format!("--setopt=cachedir={}", cache.display()))
        .arg("--setopt=skip_if_unavailable=False")
        .arg(format!("--repofrompath=t,{baseurl}"))
        .arg("--repo=t")
        .arg("--nogpgcheck")
        .arg("-y")
        .args(args)
        .output()
        .expect("dnf runs");
    assert!(
        out.status.success(),
        "dnf {args:?} from {baseurl} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let q = Command::new("rpm")
        .arg("--root")
        .arg(&r)
        .arg("-qa")
        .arg("--qf")
        .arg("%{NAME}\n")
        .output()
        .expect("rpm runs");
    let mut names: Vec<String> = String::from_utf8_lossy(&q.stdout)
        .lines()
        .map(str::to_string)
        .filter(|s| !s.is_empty() && !s.starts_with("gpg-pubkey"))
        .collect();
    names.sort();
    (String::from_utf8_lossy(&out.stdout).into_owned(), names)
}

// ---- generic XML trees, for field-by-field comparison ---------------------------------

/// An XML element with sorted attributes, its text (whitespace-only text dropped) and
/// children in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    pub fn set_attr(&mut self, k: &str, v: &str) {
        if let Some(a) = self.attrs.iter_mut().find(|(a, _)| a == k) {
            a.1 = v.to_string();
        }
    }
}

/// Parses a whole document into its root element.
#[allow(deprecated)]
pub fn parse_xml(bytes: &[u8]) -> Node {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    let mut buf = Vec::new();
    let make = |e: &quick_xml::events::BytesStart| {
        let mut attrs: Vec<(String, String)> = e
            .attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    a.key.as_ref().to_string(),
                    a.unescape_value().unwrap().into_owned(),
                )
            })
            .collect();
        attrs.sort();
        Node {
            name: e.name().as_ref().to_string(),
            attrs,
            text: String::new(),
            children: Vec::new(),
        }
    };
    loop {
        match reader.read_event_into(&mut buf).unwrap() {
            Event::Start(e) => stack.push(make(&e)),
            Event::Empty(e) => {
                let n = make(&e);
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => root = Some(n),
                }
            }
            Event::End(_) => {
                let mut n = stack.pop().unwrap();
                if n.text.trim().is_empty() && !n.children.is_empty() {
                    n.text.clear();
                }
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => root = Some(n),
                }
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(n) = stack.last_mut() {
                    let name = r.xml10_content();
                    let s = match name.as_ref() {
                        "amp" => "&".to_string(),
                        "lt" => "<".to_string(),
                        "gt" => ">".to_string(),
                        "quot" => "\"".to_string(),
                        "apos" => "'".to_string(),
                        other => {
                            let code = other
                                .strip_prefix("#x")
                                .map(|h| u32::from_str_radix(h, 16).unwrap())
                                .or_else(|| other.strip_prefix('#').map(|d| d.parse().unwrap()))
                                .unwrap_or_else(|| panic!("unknown entity {other}"));
                            char::from_u32(code).unwrap().to_string()
                        }
                    };
                    n.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    root.expect("document has a root element")
}

/// Decompresses gzip (multi-member) or zstd by magic.
pub fn decompress(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        out = zstd::stream::decode_all(bytes).unwrap();
    } else {
        out = bytes.to_vec();
    }
    out
}

/// The `<package>` elements of a primary/filelists/other document, by pkgid, with the
/// location href removed (it differs by design).
pub fn packages_by_pkgid(doc: &Node) -> std::collections::BTreeMap<String, Node> {
    let mut out = std::collections::BTreeMap::new();
    for p in &doc.children {
        let mut p = p.clone();
        let id = match p.child("checksum") {
            Some(c) => c.text.clone(),
            None => p.attr("pkgid").unwrap().to_string(),
        };
        if let Some(loc) = p.child_mut("location") {
            loc.set_attr("href", "-");
        }
        out.insert(id, p);
    }
    out
}

/// Describes the first difference between two trees.
pub fn first_difference(a: &Node, b: &Node, path: &str) -> Option<String> {
    let here = format!("{path}/{}", a.name);
    if a.name != b.name {
        return Some(format!("{here}: element {} vs {}", a.name, b.name));
    }
    if a.attrs != b.attrs {
        return Some(format!("{here}: attributes {:?} vs {:?}", a.attrs, b.attrs));
    }
    if a.text != b.text {
        return Some(format!("{here}: text {:?} vs {:?}", a.text, b.text));
    }
    for (i, (x, y)) in a.children.iter().zip(&b.children).enumerate() {
        if let Some(d) = first_difference(x, y, &format!("{here}[{i}]")) {
            return Some(d);
        }
    }
    if a.children.len() != b.children.len() {
        return Some(format!(
            "{here}: {} children vs {} ({:?} vs {:?})",
            a.children.len(),
            b.children.len(),
            a.children.iter().map(|c| &c.name).collect::<Vec<_>>(),
            b.children.iter().map(|c| &c.name).collect::<Vec<_>>()
        ));
    }
    None
}

/// Builds, with the real `rpmbuild`, a binary and a source package with scriptlets
/// (their interpreters become pre-requires), a `%ghost`, `%config` and `%dir` entries, an
/// epoch, weak dependencies and a changelog. Returns the written files.
pub fn rpmbuild_packages(out: &Path) -> Vec<PathBuf> {
    require_tool("rpmbuild");
    let top = tempfile::tempdir().unwrap();
    let spec = top.path().join("built.spec");
    std::fs::write(
        &spec,
        r#"Name: rpmbuilt-demo
Epoch: 3
Version: 2.5
Release: 7%{?dist}
Summary: Built by rpmbuild <with> & "escapes"
License: MIT
URL: https://example.com/rpmbuilt?x=1&y=2
BuildArch: noarch
Requires: bash >= 4
Requires(pre): shadow-utils
Requires(post): coreutils
Requires: /usr/share/rpmbuilt/data
Recommends: rpmbuilt-extras
Provides: rpmbuilt-virtual = 1:9.9

%description
A package built with rpmbuild for the metadata tests.
Second line.

%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/etc/rpmbuilt %{buildroot}/usr/share/rpmbuilt %{buildroot}/var/lib/rpmbuilt
echo 'echo hi' > %{buildroot}/usr/bin/rpmbuilt
chmod 755 %{buildroot}/usr/bin/rpmbuilt
echo conf > %{buildroot}/etc/rpmbuilt/rpmbuilt.conf
echo data > %{buildroot}/usr/share/rpmbuilt/data

%pre
exit 0

%post
exit 0

%files
/usr/bin/rpmbuilt
%dir /etc/rpmbuilt
%config(noreplace) /etc/rpmbuilt/rpmbuilt.conf
/usr/share/rpmbuilt/data
%dir /var/lib/rpmbuilt
%ghost /var/lib/rpmbuilt/state

%changelog
* Mon Nov 23 2026 Jane Doe <jane@example.com> - 3:2.5-7
- Same day, second entry
* Mon Nov 23 2026 Jane Doe <jane@example.com> - 3:2.5-6
- Same day, first entry
* Sun Nov 01 2026 John Roe <john@example.com> - 3:2.5-1
- Initial <package> & "release"
"#,
    )
    .unwrap();
    let output = Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.path().display()))
        .arg("--define")
        .arg("_source_payload w2.gzdio")
        .arg("-ba")
        .arg(&spec)
        .output()
        .expect("rpmbuild runs");
    assert!(
        output.status.success(),
        "rpmbuild failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::create_dir_all(out).unwrap();
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(top.path()) {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "rpm") {
            let to = out.join(e.file_name());
            std::fs::copy(e.path(), &to).unwrap();
            files.push(to);
        }
    }
    assert_eq!(files.len(), 2, "a binary and a source package");
    files
}

/// An nginx serving a directory on a free loopback port; stopped on drop.
pub struct Upstream {
    child: Child,
    pub port: u16,
    _conf: tempfile::TempDir,
}

impl Upstream {
    /// Serves `root` (made world-readable: nginx workers run as `nobody`).
    pub fn start(root: &Path) -> Upstream {
        Upstream::start_with(root, "", &format!("root {};", root.display()))
    }

    /// Serves `root` at most `rate` bytes per second per connection (nginx `limit_rate`).
    pub fn start_slow(root: &Path, rate: &str) -> Upstream {
        Upstream::start_with(
            root,
            "",
            &format!("root {}; limit_rate {rate};", root.display()),
        )
    }

    /// Serves `root`, logging every request (see [`Upstream::requests`]).
    pub fn start_logged(root: &Path) -> Upstream {
        Upstream::start_busy_while(root, None, &[])
    }

    /// Serves `root` (at most `rate` bytes per second per connection, if given),
    /// logging every request (see [`Upstream::requests`]), and answers `503 Service
    /// Unavailable` to any request whose path matches the regex `pattern` while the
    /// file `busy` exists.
    pub fn start_busy_while(root: &Path, rate: Option<&str>, busy: &[(&str, &Path)]) -> Upstream {
        let mut server = format!("root {}; access_log access.log;", root.display());
        if let Some(rate) = rate {
            server.push_str(&format!(" limit_rate {rate};"));
        }
        for (pattern, marker) in busy {
            server.push_str(&format!(
                " location ~ {pattern} {{ if (-f {}) {{ return 503; }} }}",
                marker.display()
            ));
        }
        Upstream::start_with(root, "", &server)
    }

    /// The request lines and statuses nginx logged so far, as "GET /path 503" (only
    /// for an upstream started with [`Upstream::start_logged`] or
    /// [`Upstream::start_busy_while`]).
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self._conf.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once('"')?;
                let (request, rest) = rest.split_once('"')?;
                let status = rest.split_whitespace().next()?;
                let mut words = request.split_whitespace();
                Some(format!("{} {} {status}", words.next()?, words.next()?))
            })
            .collect()
    }

    /// Forwards every request to `target` (an HTTP proxy for absolute-form requests).
    pub fn proxy_to(target: &Upstream) -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        Upstream::start_with(
            dir.path(),
            "",
            &format!(
                "location / {{ proxy_pass http://127.0.0.1:{}; }}",
                target.port
            ),
        )
    }

    /// Serves `root` over TLS with `cert`/`key`; with `client_ca`, only to clients whose
    /// certificate that CA signed.
    pub fn start_tls(root: &Path, cert: &Path, key: &Path, client_ca: Option<&Path>) -> Upstream {
        let mut tls = format!(
            "ssl_certificate {}; ssl_certificate_key {};",
            cert.display(),
            key.display()
        );
        if let Some(ca) = client_ca {
            tls.push_str(&format!(
                " ssl_client_certificate {}; ssl_verify_client on;",
                ca.display()
            ));
        }
        Upstream::start_with(root, " ssl", &format!("root {}; {tls}", root.display()))
    }

    fn start_with(root: &Path, listen_flags: &str, server: &str) -> Upstream {
        require_tool("nginx");
        make_world_readable(root);
        let conf = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let text = format!(
            "worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\ndaemon off;\n\
             events {{ worker_connections 256; }}\n\
             http {{ access_log off; sendfile on; \
             client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi; \
             uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi; \
             server {{ listen 127.0.0.1:{port}{listen_flags}; {server} }} }}\n",
            dir = conf.path().display(),
        );
        let path = conf.path().join("nginx.conf");
        std::fs::write(&path, text).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(conf.path())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let up = Upstream {
            child,
            port,
            _conf: conf,
        };
        wait_for("nginx to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        up
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub fn https_url(&self, path: &str) -> String {
        format!(
            "https://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGQUIT);
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chmod a+rX on `root` and everything below it, and on its parents' search bits.
pub fn make_world_readable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(root) {
        let e = e.unwrap();
        let mode = if e.file_type().is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut p = root.parent();
    while let Some(dir) = p {
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                let _ =
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011));
            }
        }
        p = dir.parent();
    }
}

/// Runs `createrepo_c` (0.17: gzip, no sqlite) on `dir`, `--update` when asked.
pub fn createrepo_dir(dir: &Path, update: bool) {
    require_tool("createrepo_c");
    let mut c = Command::new("createrepo_c");
    c.arg("--no-database").arg("--quiet");
    if update {
        c.arg("--update");
    }
    let out = c.arg(dir).output().expect("createrepo_c runs");
    assert!(
        out.status.success(),
        "createrepo_c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA with a server certificate for 127.0.0.1 and a client certificate,
/// made with the `openssl` command. Returns the directory holding ca.pem, server.pem,
/// server.key, client.pem and client.key.
pub fn make_certificates() -> tempfile::TempDir {
    require_tool("openssl");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cairn test CA",
    ]);
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{who}.key"),
            "-out",
            &format!("{who}.csr"),
            "-subj",
            &format!("/CN=cairn test {who}"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{who}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{who}.ext"),
        ]);
    }
    make_world_readable(d);
    dir
}
