//! `/keys/`: the public keys clients need to check what is served, held in memory.
//!
//! - `/keys/cairn.asc`: the keys that sign what Cairn publishes (`[signing]`, current
//!   and previous); `/keys/NAME.asc`: those of a `[signing.other.NAME]` signer;
//! - `/keys/repos/REPO.asc`, `/keys/views/VIEW.asc`: the keys a repository trusts
//!   (`gpgkeys`), or a view's members do: what its packages (and a mirror's upstream
//!   metadata) are signed with.

use std::collections::{HashMap, HashSet};

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::handler::ResBody;
use super::respond::{full, not_found, text};
use crate::app::config::SyncMode;
use crate::formats::openpgp::Keyring;

/// The file under `/keys/` with every signing key.
pub const KEYS_FILE: &str = "cairn.asc";

/// The keys one repository or view trusts.
#[derive(Debug, Default)]
pub struct OwnerKeys {
    /// The key files, ASCII-armoured or binary as configured, one after the other.
    pub bytes: Vec<u8>,
    /// The key IDs of every key and subkey in them.
    pub key_ids: HashSet<String>,
    /// A mirror whose upstream metadata signature Cairn checks (`repo_gpgcheck`): its
    /// `repomd.xml.asc` is upstream's, made with these keys.
    pub upstream_signed: bool,
}

/// Every key the server serves.
#[derive(Debug, Default)]
pub struct ServedKeys {
    /// `[signing]`'s public keys, when set.
    pub signing: Option<Vec<u8>>,
    /// The public keys of the `[signing.other.NAME]` signers in use, by "NAME.asc".
    pub named: HashMap<String, Vec<u8>>,
    /// The key file under `/keys/` of the signer of each owner that signs with a
    /// named signer ("repos/NAME" or "views/NAME" → "SIGNER.asc").
    pub signer_files: HashMap<String, String>,
    /// By "repos/NAME" or "views/NAME".
    pub owners: HashMap<String, OwnerKeys>,
}

impl ServedKeys {
    /// The keys of `app`'s configuration. A key file that cannot be read is left out
    /// with a warning (syncs and imports name it when they need it).
    pub fn of(app: &crate::app::context::App) -> ServedKeys {
        let mut served = ServedKeys {
            signing: app.signer().map(|s| s.all_keys().to_vec()),
            ..ServedKeys::default()
        };
        let named = app
            .config
            .repos
            .iter()
            .map(|r| (format!("repos/{}", r.id), &r.signer_name, &r.signer))
            .chain(
                app.config
                    .views
                    .iter()
                    .map(|v| (format!("views/{}", v.name), &v.signer_name, &v.signer)),
            );
        for (owner, name, signer) in named {
            if let (Some(name), Some(signer)) = (name, signer) {
                let file = format!("{name}.asc");
                served
                    .named
                    .insert(file.clone(), signer.all_keys().to_vec());
                served.signer_files.insert(owner, file);
            }
        }
        let read = |paths: &[std::path::PathBuf], keys: &mut OwnerKeys| {
            for path in paths {
                let bytes = match std::fs::read(path) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("not serving key {}: {e}", path.display());
                        continue;
                    }
                };
                let mut ring = Keyring::default();
                if let Err(e) = ring.add(&bytes, &path.display().to_string()) {
                    tracing::warn!("not serving key {}: {e}", path.display());
                    continue;
                }
                keys.key_ids.extend(ring.key_ids());
                keys.bytes.extend_from_slice(&bytes);
                if !keys.bytes.ends_with(b"\n") {
                    keys.bytes.push(b'\n');
                }
            }
        };
        for repo in &app.config.repos {
            if repo.gpgkeys.is_empty() {
                continue;
            }
            let mut keys = OwnerKeys {
                upstream_signed: repo.mode() == SyncMode::Mirror && repo.repo_gpgcheck,
                ..OwnerKeys::default()
            };
            read(&repo.gpgkeys, &mut keys);
            served.owners.insert(format!("repos/{}", repo.id), keys);
        }
        for view in &app.config.views {
            let mut keys = OwnerKeys::default();
            for member in &view.repos {
                if let Some(repo) = app.config.repo(member) {
                    read(&repo.gpgkeys, &mut keys);
                }
            }
            if !keys.bytes.is_empty() {
                served.owners.insert(format!("views/{}", view.name), keys);
            }
        }
        served
    }

    /// The file under `/keys/` with the keys of the signer of `prefix/owner`.
    pub fn signer_file(&self, prefix: &str, owner: &str) -> &str {
        self.signer_files
            .get(&format!("{prefix}/{owner}"))
            .map_or(KEYS_FILE, String::as_str)
    }

    /// The keys of the owner at `prefix/owner`, when it has any.
    pub fn owner(&self, prefix: &str, owner: &str) -> Option<&OwnerKeys> {
        self.owners.get(&format!("{prefix}/{owner}"))
    }

    /// The answer to `/keys/NAME`.
    pub fn respond(&self, name: &str) -> Response<ResBody> {
        let bytes = if name == KEYS_FILE {
            self.signing.as_ref()
        } else if let Some(keys) = self.named.get(name) {
            Some(keys)
        } else {
            name.strip_suffix(".asc")
                .and_then(|owner| self.owners.get(owner))
                .map(|k| &k.bytes)
        };
        match (name, bytes) {
            ("", _) => {
                let mut listing = String::new();
                if self.signing.is_some() {
                    listing.push_str(&format!(
                        "{KEYS_FILE}: the keys that sign this server's repository metadata (current and previous)\n"
                    ));
                }
                let mut named: Vec<&String> = self.named.keys().collect();
                named.sort();
                for n in named {
                    listing.push_str(&format!(
                        "{n}: the keys of a signer some repositories or views sign with\n"
                    ));
                }
                let mut owners: Vec<&String> = self.owners.keys().collect();
                owners.sort();
                for o in owners {
                    listing.push_str(&format!("{o}.asc: the keys {o} trusts\n"));
                }
                text(StatusCode::OK, &listing)
            }
            (_, Some(bytes)) => {
                let mut r = Response::new(full(bytes.clone()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/pgp-keys"),
                );
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                r
            }
            (_, None) => not_found("There is no such key file."),
        }
    }
}
