//! Real `gpg` keys and signatures for the signature tests: each [`Gpg`] is a private
//! keyring in a temporary home.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A gpg home with its own keys; removed on drop.
pub struct Gpg {
    home: tempfile::TempDir,
}

/// One key of a [`Gpg`]: its fingerprint and 16-digit key ID (lower case).
#[derive(Debug, Clone)]
pub struct Key {
    pub fingerprint: String,
    pub key_id: String,
}

impl Gpg {
    pub fn new() -> Gpg {
        require_tool("gpg");
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        Gpg { home }
    }

    pub fn cmd(&self) -> Command {
        self.cmd_with("")
    }

    /// gpg in this home, batch mode, with `passphrase` for any key it unlocks.
    pub fn cmd_with(&self, passphrase: &str) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            passphrase,
        ]);
        c
    }

    /// Generates a signing key: `algo` is `rsa2048`, `rsa4096` or `ed25519`.
    pub fn generate(&self, name: &str, algo: &str) -> Key {
        self.generate_with_passphrase(name, algo, "")
    }

    /// Writes `key`'s public key to `path`, ASCII-armoured or binary.
    pub fn export(&self, key: &Key, path: &Path, armor: bool) -> PathBuf {
        let mut c = self.cmd();
        c.arg("--output").arg(path).arg("--export");
        if armor {
            c.arg("--armor");
        }
        run_ok(c.arg(&key.fingerprint));
        path.to_path_buf()
    }

    /// Writes `key`'s secret key to `path`, ASCII-armoured (as it is stored: with the
    /// passphrase it was made with).
    pub fn export_secret(&self, key: &Key, path: &Path, passphrase: &str) -> PathBuf {
        run_ok(
            self.cmd_with(passphrase)
                .arg("--output")
                .arg(path)
                .args(["--armor", "--export-secret-keys"])
                .arg(&key.fingerprint),
        );
        path.to_path_buf()
    }

    /// Generates a signing key protected by `passphrase`.
    pub fn generate_with_passphrase(&self, name: &str, algo: &str, passphrase: &str) -> Key {
        let uid = format!(
            "{name} <{}@example.org>",
            name.to_lowercase().replace(' ', ".")
        );
        run_ok(
            self.cmd_with(passphrase)
                .args(["--quick-gen-key", &uid, algo, "sign", "never"]),
        );
        let listing = run_ok(self.cmd().args(["--with-colons", "--list-keys", &uid]));
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| !f.is_empty()))
            .unwrap()
            .to_string();
        let key_id = fingerprint[fingerprint.len() - 16..].to_lowercase();
        Key {
            fingerprint,
            key_id,
        }
    }

    /// Imports the keys in `file` into this keyring.
    pub fn import(&self, file: &Path) {
        run_ok(self.cmd().arg("--import").arg(file));
    }

    /// Signs `file` with `key` into `file.asc` (detached, armoured), as repositories are.
    pub fn detach_sign(&self, key: &Key, file: &Path) {
        let mut asc = file.as_os_str().to_owned();
        asc.push(".asc");
        run_ok(
            self.cmd()
                .args([
                    "--local-user",
                    &key.fingerprint,
                    "--detach-sign",
                    "--armor",
                    "--output",
                ])
                .arg(&asc)
                .arg(file),
        );
    }

    /// A binary detached signature by `key` over `data`, as rpm stores them.
    pub fn sign_bytes(&self, key: &Key, data: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (file, sig) = (dir.path().join("data"), dir.path().join("data.sig"));
        std::fs::write(&file, data).unwrap();
        run_ok(
            self.cmd()
                .args([
                    "--local-user",
                    &key.fingerprint,
                    "--detach-sign",
                    "--output",
                ])
                .arg(&sig)
                .arg(&file),
        );
        std::fs::read(sig).unwrap()
    }

    /// Signs the package `rpm` with `key` using `rpmsign --addsign` (replacing any
    /// signature it had).
    pub fn rpmsign(&self, key: &Key, rpm: &Path) {
        require_tool("rpmsign");
        run_ok(
            Command::new("rpmsign")
                .env("GNUPGHOME", self.home.path())
                .arg("--define")
                .arg("__gpg /usr/bin/gpg")
                .arg("--define")
                .arg(format!("_gpg_name {}", key.fingerprint))
                .arg("--define")
                .arg("_gpg_sign_cmd_extra_args --pinentry-mode loopback --passphrase=")
                .arg("--resign")
                .arg(rpm),
        );
    }

    /// Checks `file.asc` over `file` with gpg itself; returns whether it verifies.
    pub fn verifies(&self, file: &Path, signature: &Path) -> bool {
        self.cmd()
            .arg("--verify")
            .arg(signature)
            .arg(file)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }
}

/// GETs `url`, insisting on 200.
pub fn fetch(url: &str) -> Vec<u8> {
    let r = http().get(url).send().unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().unwrap().to_vec()
}

/// Checks with gpg (trusting only the keys in `keys`) that the served repomd.xml of the
/// tree at `tree_url` carries a valid signature; returns whether it verifies.
pub fn gpg_verifies(keys: &Path, tree_url: &str) -> bool {
    let client = Gpg::new();
    client.import(keys);
    let dir = tempfile::tempdir().unwrap();
    let repomd = dir.path().join("repomd.xml");
    let asc = dir.path().join("repomd.xml.asc");
    std::fs::write(&repomd, fetch(&format!("{tree_url}repodata/repomd.xml"))).unwrap();
    std::fs::write(&asc, fetch(&format!("{tree_url}repodata/repomd.xml.asc"))).unwrap();
    client.verifies(&repomd, &asc)
}
