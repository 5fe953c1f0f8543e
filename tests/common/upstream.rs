//! Upstream repositories served by a real nginx on a free loopback port.

use super::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

    /// Serves `root` with directory listings (nginx `autoindex`), as public mirrors do.
    pub fn start_listing(root: &Path) -> Upstream {
        Upstream::start_with(root, "", &format!("root {}; autoindex on;", root.display()))
    }

    /// Serves `root` at most `rate` bytes per second per connection (nginx `limit_rate`).
    pub fn start_slow(root: &Path, rate: &str) -> Upstream {
        Upstream::start_with(
            root,
            "",
            &format!("root {}; limit_rate {rate};", root.display()),
        )
    }

    /// Answers every request `500 Internal Server Error`, logging it (see
    /// [`Upstream::requests`]): a broken mirror.
    pub fn start_failing(root: &Path) -> Upstream {
        Upstream::start_with(
            root,
            "",
            &format!(
                "root {}; access_log access.log; location / {{ return 500; }}",
                root.display()
            ),
        )
    }

    /// Serves `root` at most `rate` bytes per second per connection, with nginx's
    /// counters of the connections it has open (see [`Upstream::responses_being_written`]).
    pub fn start_counted(root: &Path, rate: &str) -> Upstream {
        Upstream::start_with(
            root,
            "",
            &format!(
                "root {}; limit_rate {rate}; location = /nginx-status {{ stub_status; limit_rate 0; }}",
                root.display()
            ),
        )
    }

    /// How many responses nginx is writing now, the one giving this count left out
    /// (only for an upstream started with [`Upstream::start_counted`]).
    pub fn responses_being_written(&self) -> usize {
        let status = http()
            .get(self.url("nginx-status"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        // "... Reading: 0 Writing: 3 Waiting: 1"
        let writing = status
            .split_whitespace()
            .skip_while(|w| *w != "Writing:")
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("nginx status: {status:?}"));
        writing - 1
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

/// A temporary directory whose `repo/` `fill` puts packages in, indexed by
/// createrepo_c: what an [`Upstream`] serves. Returns the directory, `repo/` and what
/// `fill` returned.
pub fn upstream_tree<T>(
    fill: impl FnOnce(&std::path::Path) -> T,
) -> (tempfile::TempDir, std::path::PathBuf, T) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let filled = fill(&repo);
    createrepo_dir(&repo, false);
    (dir, repo, filled)
}

/// [`upstream_tree`] with the demo packages: what most sync tests mirror.
pub fn demo_upstream_tree() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, repo, _) =
        upstream_tree(|repo| cairn::formats::samples::demo_packages(repo).unwrap());
    (dir, repo)
}

/// An installation declaring repository `m`, a mirror of `upstream`'s `repo/`, with
/// `extra` keys of that `[[repo]]` (and of the tables after it).
pub fn mirror_env(backend: &Backend, upstream: &Upstream, extra: &str) -> Env {
    Env::with_repo_toml(
        backend,
        &format!(
            "[[repo]]\nid = \"m\"\nfeed = \"{}\"\n{extra}",
            upstream.url("repo/")
        ),
    )
}

/// The `.rpm` in `repo` whose name starts with `name-`.
pub fn rpm_named(repo: &std::path::Path, name: &str) -> std::path::PathBuf {
    std::fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().to_string();
            f.starts_with(&format!("{name}-")) && f.ends_with(".rpm")
        })
        .unwrap_or_else(|| panic!("no {name} in {}", repo.display()))
}
