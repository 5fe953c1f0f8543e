//! The appliance as installed: the systemd units pass `systemd-analyze verify`, the
//! documented layout (sysusers, tmpfiles, config modes) lets the service user start,
//! the RPM holds every operator file and installs, and the TLS proxy example works.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn appliance(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("appliance")
        .join(file)
}

const UNITS: [&str; 5] = [
    "cairn.service",
    "cairn-gc.service",
    "cairn-gc.timer",
    "cairn-verify.service",
    "cairn-verify.timer",
];

#[test]
fn the_units_pass_systemd_analyze_verify() {
    require_tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    let bin = std::fs::canonicalize(BIN).unwrap();
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = std::fs::read_to_string(appliance(unit)).unwrap();
        assert!(!text.contains("example.invalid"), "{unit}: placeholder URL");
        if unit.ends_with(".service") {
            assert!(text.contains("User=cairn"), "{unit} runs as cairn");
            assert!(
                text.contains("--config /etc/cairn/cairn.toml"),
                "{unit} names the installed config"
            );
        }
        // The binary is not installed here: point the units at the one just built.
        let path = dir.path().join(unit);
        std::fs::write(&path, text.replace("/usr/bin/cairn", bin.to_str().unwrap())).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Unknown keys and bad values are warnings, not failures: none are allowed.
    assert!(err.trim().is_empty(), "{err}");
    let service = std::fs::read_to_string(appliance("cairn.service")).unwrap();
    assert!(service.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"));
    assert!(service.contains("EnvironmentFile=-/etc/cairn/cairn.env"));
}

/// A scratch root laid out by `systemd-sysusers` and `systemd-tmpfiles` from the shipped
/// entries, with the config installed as documented: the service user reads the config
/// and `cairn init` (the unit's ExecStartPre) succeeds as that user. Before, the config
/// was root:root 0640 and the service could not read it.
#[test]
fn the_documented_layout_lets_the_service_user_start() {
    for tool in ["systemd-sysusers", "systemd-tmpfiles", "setpriv"] {
        require_tool(tool);
    }
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    // The service user must be able to reach the files below.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["etc", "var/lib"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    run_ok(
        Command::new("systemd-sysusers")
            .arg(format!("--root={}", root.display()))
            .arg(appliance("cairn.sysusers")),
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("cairn:"))
        .expect("sysusers made the cairn user")
        .split(':')
        .collect();
    let (uid, gid): (u32, u32) = (entry[2].parse().unwrap(), entry[3].parse().unwrap());
    assert_ne!(uid, 0);
    assert!(
        entry[6].ends_with("nologin"),
        "no login shell: {}",
        entry[6]
    );

    // The documented install: the config (with the data dir inside the scratch root).
    let config = root.join("etc/cairn/cairn.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let shipped = std::fs::read_to_string(appliance("cairn.toml")).unwrap();
    assert!(shipped.contains("data_dir = \"/var/lib/cairn\""));
    std::fs::write(
        &config,
        shipped.replace(
            "data_dir = \"/var/lib/cairn\"",
            &format!("data_dir = \"{}/var/lib/cairn\"", root.display()),
        ),
    )
    .unwrap();
    std::fs::copy(appliance("cairn.env"), root.join("etc/cairn/cairn.env")).unwrap();
    run_ok(
        Command::new("systemd-tmpfiles")
            .arg(format!("--root={}", root.display()))
            .arg("--create")
            .arg(appliance("cairn.tmpfiles")),
    );
    let mode_owner = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(
        mode_owner(&config),
        (0o640, 0, gid),
        "config: root:cairn 0640"
    );
    assert_eq!(
        mode_owner(&root.join("etc/cairn/cairn.env")),
        (0o640, 0, gid)
    );
    assert_eq!(mode_owner(&root.join("etc/cairn")), (0o750, 0, gid));
    assert_eq!(
        mode_owner(&root.join("var/lib/cairn")),
        (0o750, uid, gid),
        "data dir: cairn's own"
    );

    // What the unit runs, as the unit's user: ExecStartPre, then a command.
    let bin = std::fs::canonicalize(BIN).unwrap();
    let as_cairn = |args: &[&str]| {
        let out = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(&bin)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("CAIRN_DATABASE_URL")
            .env("CAIRN_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cairn {args:?} as the service user: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    as_cairn(&["init"]);
    as_cairn(&["repo", "list"]);
    assert_eq!(
        std::fs::metadata(root.join("var/lib/cairn/catalog.db"))
            .unwrap()
            .uid(),
        uid
    );
}

#[test]
fn the_rpm_holds_the_appliance_and_installs_into_a_scratch_root() {
    for tool in ["rpmbuild", "rpm", "strip"] {
        require_tool(tool);
    }
    let out_dir = tempfile::tempdir().unwrap();
    let bin = std::fs::canonicalize(BIN).unwrap();
    let built = run_ok(
        Command::new(appliance("rpm/build.sh"))
            .arg(&bin)
            .arg(out_dir.path()),
    );
    let rpm = PathBuf::from(built.trim());
    let version = env!("CARGO_PKG_VERSION");
    let name = rpm.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("cairn-{version}-")) && name.ends_with(".x86_64.rpm"),
        "{name}"
    );

    let query = |args: &[&str]| run_ok(Command::new("rpm").args(args).arg(&rpm));
    let files: Vec<String> = query(&["-qpl"]).lines().map(str::to_owned).collect();
    for expected in [
        "/usr/bin/cairn",
        "/usr/lib/systemd/system/cairn.service",
        "/usr/lib/systemd/system/cairn-gc.timer",
        "/usr/lib/systemd/system/cairn-verify.timer",
        "/usr/lib/sysusers.d/cairn.conf",
        "/usr/lib/tmpfiles.d/cairn.conf",
        "/etc/cairn/cairn.toml",
        "/etc/cairn/cairn.env",
        "/usr/share/cairn/grafana/cairn-dashboard.json",
        "/usr/share/cairn/prometheus/cairn-alerts.yml",
        "/usr/share/man/man1/cairn.1",
        "/usr/share/man/man1/cairn-repo-sync.1",
        "/usr/share/bash-completion/completions/cairn",
        "/var/lib/cairn",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} missing: {files:?}"
        );
    }
    // The configuration survives upgrades and is readable by the service's group only.
    let config = query(&["-qp", "--configfiles"]);
    assert!(config.contains("/etc/cairn/cairn.toml"), "{config}");
    let dump = query(&["-qp", "--dump"]);
    let line = dump
        .lines()
        .find(|l| l.starts_with("/etc/cairn/cairn.toml "))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // path size mtime digest mode owner group isconfig isdoc rdev symlink
    assert_eq!(&fields[4][fields[4].len() - 4..], "0640", "{line}");
    assert_eq!((fields[5], fields[6]), ("root", "cairn"), "{line}");
    let scripts = query(&["-qp", "--scripts"]);
    assert!(scripts.contains("useradd -r -g cairn"), "{scripts}");

    // Installed into an empty root (no dependencies there, and no shell for the
    // scriptlets), the files land where the units expect them.
    let root = tempfile::tempdir().unwrap();
    let rpm_root = |args: &[&str]| {
        run_ok(
            Command::new("rpm")
                .arg("--root")
                .arg(root.path())
                .args(args),
        )
    };
    rpm_root(&["--initdb"]);
    run_ok(
        Command::new("rpm")
            .arg("--root")
            .arg(root.path())
            .args(["--nodeps", "--noscripts", "-i"])
            .arg(&rpm),
    );
    assert!(rpm_root(&["-q", "cairn"]).starts_with(&format!("cairn-{version}-")));
    let installed = root.path().join("usr/bin/cairn");
    let version_out = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version_out.stdout).trim(),
        format!("cairn {version}")
    );
    let unit =
        std::fs::read_to_string(root.path().join("usr/lib/systemd/system/cairn.service")).unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(appliance("cairn.service")).unwrap()
    );
    let mode = std::fs::metadata(root.path().join("etc/cairn/cairn.toml"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
}

/// The TLS reverse proxy example, with its names and ports filled in, passes
/// `nginx -t` and carries requests (a Range request too) through to Cairn.
#[test]
fn the_tls_proxy_example_serves_cairn_over_https() {
    require_tool("nginx");
    let env = Env::new(&Backend::Sqlite, &["fx"]);
    let rpms = env.dir.path().join("rpms");
    cairn::formats::samples::demo_packages(&rpms).unwrap();
    env.ok(&["import", "fx", rpms.to_str().unwrap()]);
    let server = env.serve();
    let certs = make_certificates();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (https, http_port) = (free_port(), free_port());
    let example = std::fs::read_to_string(appliance("nginx/cairn.conf")).unwrap();
    let site = example
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{https} ssl;"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{http_port};"))
        .replace("listen [::]:443 ssl;", "")
        .replace("listen [::]:80;", "")
        .replace("http://127.0.0.1:8080", &format!("http://{}", server.addr))
        .replace(
            "/etc/pki/tls/certs/mirror.example.com.crt",
            certs.path().join("server.pem").to_str().unwrap(),
        )
        .replace(
            "/etc/pki/tls/private/mirror.example.com.key",
            certs.path().join("server.key").to_str().unwrap(),
        );
    assert_ne!(site, example);
    let conf = tempfile::tempdir().unwrap();
    let d = conf.path().display();
    std::fs::write(conf.path().join("cairn.conf"), site).unwrap();
    let main = conf.path().join("nginx.conf");
    std::fs::write(
        &main,
        format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\ndaemon off;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; \
             fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi; \
             include {d}/cairn.conf; }}\n"
        ),
    )
    .unwrap();
    run_ok(
        Command::new("nginx")
            .arg("-t")
            .arg("-c")
            .arg(&main)
            .arg("-p")
            .arg(conf.path()),
    );
    /// nginx, stopped with its workers (SIGQUIT to the master) when dropped.
    struct Nginx(std::process::Child);
    impl Drop for Nginx {
        fn drop(&mut self) {
            // SAFETY: signals our own child process.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGQUIT) };
            for _ in 0..100 {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _nginx = Nginx(
        Command::new("nginx")
            .arg("-c")
            .arg(&main)
            .arg("-p")
            .arg(conf.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("nginx to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", https)).is_ok()
    });
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.path().join("ca.pem")).unwrap())
        .unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let path = "/repos/fx/latest/repodata/repomd.xml";
    let direct = http()
        .get(server.url(path))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let proxied = client
        .get(format!("https://127.0.0.1:{https}{path}"))
        .send()
        .unwrap();
    assert_eq!(proxied.status(), 200);
    assert_eq!(proxied.bytes().unwrap(), direct);
    let range = client
        .get(format!("https://127.0.0.1:{https}{path}"))
        .header("Range", "bytes=0-9")
        .send()
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().unwrap(), direct.slice(0..10));
    let plain = http()
        .get(format!("http://127.0.0.1:{http_port}{path}"))
        .send()
        .unwrap();
    assert_eq!(plain.status(), 301);
}
