//! Signing what Cairn publishes (`[signing]`): every `repomd.xml` Cairn renders gets
//! `repodata/repomd.xml.asc`, made by the built-in OpenPGP signer (a secret key file,
//! passphrase from a file or an environment variable, never from the config itself)
//! or by an external command (gpg with an agent, an HSM client) whose output is
//! checked against its public key before it is published. The public keys (current
//! and previous) are served under `/keys/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::app::config::SigningConfig;
use crate::formats::openpgp::{Keyring, PgpError, SecretSigner};

/// Why signing cannot be set up, or a signature was not made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("[signing]: {0}")]
    Key(#[from] PgpError),
    #[error("[signing]: reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("[signing]: the passphrase variable {0} is not set in the environment")]
    NoPassphrase(String),
    #[error("[signing]: the signing command {command:?} failed: {message}")]
    Command { command: String, message: String },
    #[error("[signing]: the signing command {command:?} wrote no valid signature by the key in public_key: {source}")]
    CommandSignature {
        command: String,
        #[source]
        source: PgpError,
    },
}

enum How {
    Key(Box<SecretSigner>),
    Command { command: String, keyring: Keyring },
}

/// The signer of every publication Cairn renders.
pub struct Signer {
    how: How,
    /// The current key, ASCII-armoured (served as `repodata/repomd.xml.key`).
    public_key: Vec<u8>,
    /// The current and previous keys, ASCII-armoured, one after the other.
    all_keys: Vec<u8>,
    /// sha256 of `public_key`: identifies what signs.
    id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("id", &self.id).finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SignError> {
    std::fs::read(path).map_err(|source| SignError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl Signer {
    /// Loads the key (checking the passphrase unlocks it) or the command's public key.
    pub fn load(config: &SigningConfig) -> Result<Signer, SignError> {
        let (how, public_key) = match (&config.key, &config.command, &config.public_key) {
            (Some(key), _, _) => {
                let passphrase = match (&config.passphrase_file, &config.passphrase_env) {
                    (Some(file), _) => {
                        let bytes = Zeroizing::new(read(file)?);
                        let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        Zeroizing::new(line.to_vec())
                    }
                    (None, Some(var)) => Zeroizing::new(
                        std::env::var_os(var)
                            .ok_or_else(|| SignError::NoPassphrase(var.clone()))?
                            .into_encoded_bytes(),
                    ),
                    (None, None) => Zeroizing::new(Vec::new()),
                };
                let signer =
                    SecretSigner::load(&read(key)?, &key.display().to_string(), passphrase)?;
                let public = signer.public_armored()?;
                (How::Key(Box::new(signer)), public)
            }
            (None, Some(command), Some(public)) => {
                let bytes = read(public)?;
                let mut keyring = Keyring::default();
                keyring.add(&bytes, &public.display().to_string())?;
                (
                    How::Command {
                        command: command.clone(),
                        keyring,
                    },
                    bytes,
                )
            }
            // The config's checks refuse every other combination.
            _ => {
                return Err(SignError::Command {
                    command: String::new(),
                    message: "give key, or command with public_key".into(),
                })
            }
        };
        let mut all_keys = public_key.clone();
        for previous in &config.previous_keys {
            let bytes = read(previous)?;
            Keyring::default().add(&bytes, &previous.display().to_string())?;
            if !all_keys.ends_with(b"\n") {
                all_keys.push(b'\n');
            }
            all_keys.extend_from_slice(&bytes);
        }
        Ok(Signer {
            how,
            id: hex::encode(Sha256::digest(&public_key)),
            public_key,
            all_keys,
        })
    }

    /// An ASCII-armoured detached signature over `data` (blocking: may run a command).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.how {
            How::Key(key) => Ok(key.sign(data)?),
            How::Command { command, keyring } => {
                let failed = |message: String| SignError::Command {
                    command: command.clone(),
                    message,
                };
                let mut child = Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| failed(e.to_string()))?;
                let mut stdin = child
                    .stdin
                    .take()
                    .ok_or_else(|| failed("no standard input".into()))?;
                let input = data.to_vec();
                let writer = std::thread::spawn(move || stdin.write_all(&input));
                let out = child
                    .wait_with_output()
                    .map_err(|e| failed(e.to_string()))?;
                let _ = writer.join();
                if !out.status.success() {
                    return Err(failed(format!(
                        "{}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                keyring.verify(data, &out.stdout).map_err(|source| {
                    SignError::CommandSignature {
                        command: command.clone(),
                        source,
                    }
                })?;
                Ok(out.stdout)
            }
        }
    }

    /// The current public key, ASCII-armoured.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The current and previous public keys, ASCII-armoured.
    pub fn all_keys(&self) -> &[u8] {
        &self.all_keys
    }

    /// What identifies the signing key (the sha256 of its public key): part of every
    /// signed publication's content key.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Loads the signers `config` names and hands each signing repository and view its
/// own; returns the signer of `[signing]`.
pub fn load_signers(
    config: &mut crate::app::config::Config,
) -> Result<Option<std::sync::Arc<Signer>>, SignError> {
    let signer = match &config.signing {
        Some(signing) => Some(std::sync::Arc::new(Signer::load(signing)?)),
        None => None,
    };
    let mut others = std::collections::HashMap::new();
    for (name, other) in config.signing.iter().flat_map(|s| &s.other) {
        others.insert(name.clone(), std::sync::Arc::new(Signer::load(other)?));
    }
    let choose = |name: &Option<String>| match name {
        Some(name) => others.get(name).cloned(),
        None => signer.clone(),
    };
    for repo in config.repos.iter_mut().filter(|r| r.sign) {
        repo.signer = choose(&repo.signer_name);
    }
    for view in config.views.iter_mut().filter(|v| v.sign) {
        view.signer = choose(&view.signer_name);
    }
    Ok(signer)
}
