//! The real tools the suite compares against or drives: dnf, createrepo_c.

use std::path::Path;
use std::process::Command;

/// Runs `cmd`, insisting on success (the failure shows the command and its stderr),
/// and returns its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

/// Runs dnf against `baseurl` in a fresh install root and returns the installed names.
pub fn dnf_install(baseurl: &str, packages: &[&str]) -> Vec<String> {
    let mut args = vec!["install"];
    args.extend_from_slice(packages);
    dnf(baseurl, &args).1
}

/// Runs `dnf ARGS` against `baseurl` in a fresh install root (as DESIGN.md describes),
/// insisting on success; returns its stdout and the names installed afterwards.
pub fn dnf(baseurl: &str, args: &[&str]) -> (String, Vec<String>) {
    let run = dnf_with(baseurl, &["--nogpgcheck"], args);
    assert!(
        run.ok,
        "dnf {args:?} from {baseurl} failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    (run.stdout, run.installed)
}

/// What a dnf run did.
pub struct DnfRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    /// The package names in the install root afterwards.
    pub installed: Vec<String>,
}

/// Runs `dnf OPTIONS ARGS` against `baseurl` (repository id `t`) in a fresh install
/// root.
pub fn dnf_with(baseurl: &str, options: &[&str], args: &[&str]) -> DnfRun {
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
        .args(options)
        .arg("-y")
        .args(args)
        .output()
        .expect("dnf runs");
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
    DnfRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        installed: names,
    }
}

/// Runs `dnf install PACKAGES` against `baseurl` in a fresh install root with
/// `repo_gpgcheck=1` and `gpgkey=KEY_URL` (and, with `gpgcheck`, package signature
/// checks too); returns whether it succeeded and what it printed.
pub fn dnf_install_checked(
    baseurl: &str,
    key_url: &str,
    gpgcheck: bool,
    packages: &[&str],
) -> (bool, String) {
    dnf_install_trusting(baseurl, key_url, true, gpgcheck, packages)
}

/// [`dnf_install_checked`] with `repo_gpgcheck` chosen too.
pub fn dnf_install_trusting(
    baseurl: &str,
    key_url: &str,
    repo_gpgcheck: bool,
    gpgcheck: bool,
    packages: &[&str],
) -> (bool, String) {
    require_tool("dnf");
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("dnf")
        .arg(format!(
            "--installroot={}",
            root.path().join("root").display()
        ))
        .arg("--releasever=1")
        .arg("--setopt=reposdir=/dev/null")
        .arg(format!(
            "--setopt=cachedir={}",
            root.path().join("cache").display()
        ))
        .arg("--setopt=skip_if_unavailable=False")
        .arg(format!("--repofrompath=t,{baseurl}"))
        .arg("--repo=t")
        .arg(format!(
            "--setopt=t.repo_gpgcheck={}",
            u8::from(repo_gpgcheck)
        ))
        .arg(format!("--setopt=t.gpgcheck={}", u8::from(gpgcheck)))
        .arg(format!("--setopt=t.gpgkey={key_url}"))
        .arg("-y")
        .arg("install")
        .args(packages)
        .output()
        .expect("dnf runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// ---- generic XML trees, for field-by-field comparison ---------------------------------

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
