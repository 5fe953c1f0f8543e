//! Test inputs: real third-party packages (when `CAIRN_REAL_RPMS` names them),
//! packages built by rpmbuild, TLS certificates.

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Recomputes the header and whole-file digests of an RPM's signature header in place
/// (SHA-256 and SHA-1 of the main header, MD5 of header and payload), so that a test
/// can patch a header's contents and still present a package whose digests hold: what
/// a hostile but consistent builder would produce.
pub fn refresh_digests(bytes: &mut [u8]) {
    use sha2::Digest;
    let word = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let (il, dl) = (word(bytes, 96 + 8), word(bytes, 96 + 12));
    let index_at = 96 + 16;
    let data_at = index_at + il * 16;
    let main_at = (data_at + dl).div_ceil(8) * 8;
    let main_len = 16 + word(bytes, main_at + 8) * 16 + word(bytes, main_at + 12);
    let header = bytes[main_at..main_at + main_len].to_vec();
    let sha256 = hex::encode(sha2::Sha256::digest(&header));
    let sha1 = hex::encode(sha1::Sha1::digest(&header));
    let md5 = md5::Md5::digest(&bytes[main_at..]).to_vec();
    for i in 0..il {
        let e = index_at + i * 16;
        let (tag, offset) = (word(bytes, e), data_at + word(bytes, e + 8));
        let value: &[u8] = match tag {
            273 => sha256.as_bytes(),
            269 => sha1.as_bytes(),
            1004 => &md5,
            _ => continue,
        };
        bytes[offset..offset + value.len()].copy_from_slice(value);
    }
}

/// A rebuild of demo-lib 1.2.0-1 (the demo package's NEVRA and file name, other
/// content), written to `path`.
pub fn rebuilt_demo_lib(path: &Path) -> PathBuf {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut p = rpm::PackageBuilder::new("demo-lib", "1.2.0", "MIT", "noarch", "Rebuilt");
    p.using_config(rpm::BuildConfig::v4().compression(rpm::CompressionType::None))
        .release("1")
        .with_file_contents(
            b"answer=43\n".to_vec(),
            rpm::FileOptions::new("/usr/share/demo-lib/data.conf"),
        )
        .unwrap();
    p.build().unwrap().write_file(path).unwrap();
    path.to_path_buf()
}
