//! Upstream's signatures: `repodata/repomd.xml.asc` checked against the repository's
//! `gpgkeys` before anything upstream says is trusted (`repo_gpgcheck = true`), and
//! the packages' header signatures (`gpgcheck`), read from the packages themselves
//! and recorded in the catalog whatever the setting.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{records, Cx, Plan, SyncError, Upstream};
use crate::app::config::GpgCheck;
use crate::formats::openpgp::{self, HeaderVerdict, Keyring, PgpError};
use crate::formats::rpmcheck;
use crate::store::catalog::PackageSignature;
use crate::store::pool::Staged;

impl Cx<'_> {
    /// With `repo_gpgcheck`, checks the detached signature beside the repomd.xml at
    /// `repomd_url` (whose bytes are `repomd`) against the repository's keys; a missing
    /// or bad signature fails the sync naming the URL, the keys expected and the key
    /// found. Without it, does nothing.
    pub(super) async fn check_repomd_signature(
        &self,
        client: &super::source::Source,
        repomd_url: &str,
        repomd: &[u8],
    ) -> Result<(), SyncError> {
        if !self.repo.repo_gpgcheck {
            return Ok(());
        }
        let asc_url = format!("{repomd_url}.asc");
        let asc = match client.fetch_optional(&asc_url, records::MAX_REPOMD).await {
            Ok(Some(asc)) => asc,
            Ok(None) => {
                return Err(SyncError::NoRepoSignature {
                    url: asc_url,
                    expected: self.keyring.key_ids().join(", "),
                })
            }
            Err(source) => {
                return Err(SyncError::Upstream {
                    url: asc_url,
                    source,
                })
            }
        };
        let signer =
            self.keyring
                .verify(repomd, &asc)
                .map_err(|source| SyncError::RepoSignature {
                    url: repomd_url.to_string(),
                    source,
                })?;
        tracing::info!(
            "{}: {repomd_url} is signed by key {} ({})",
            self.repo.id,
            signer.key_id,
            signer.algorithm
        );
        Ok(())
    }
}

/// What checking the packages' header signatures found.
pub(super) struct Checked {
    /// Signatures read from packages, to record once their rows exist.
    pub read: Vec<PackageSignature>,
    /// Under `gpgcheck = "warn"`: the packages unsigned or not signed by a trusted key.
    pub warning: Option<String>,
}

/// How many packages a message names before "and N more".
const NAMED: usize = 20;

impl Cx<'_> {
    /// Reads the header signature of every package of the new content the catalog has
    /// not read yet, and, unless `gpgcheck = "off"`, checks every package that is new
    /// to the repository (or whose recorded signer is not one of its keys) against the
    /// repository's keys. Under "require", a package unsigned or signed by another key
    /// fails the sync naming every such package; under "warn" they are reported.
    pub(super) async fn check_package_signatures(
        &self,
        up: &Upstream,
        plan: &Plan,
        staged: &[Staged],
    ) -> Result<Checked, SyncError> {
        let mode = self.repo.gpgcheck();
        let mut wanted: HashMap<&str, &str> = HashMap::new();
        // Packages left upstream are checked when they are fetched.
        let remote: HashSet<usize> = plan.remote.iter().copied().collect();
        for &i in up.by_location.values().filter(|i| !remote.contains(i)) {
            if let Some(sha) = plan.known.get(&i) {
                wanted.insert(sha.as_str(), up.entries[i].href.as_str());
            }
        }
        let shas: Vec<&str> = wanted.keys().copied().collect();
        let recorded = self.catalog.package_signatures(&shas).await?;
        let current: HashSet<String> = self
            .catalog
            .repo_content(self.repo_id)
            .await?
            .into_iter()
            .map(|c| c.sha256)
            .collect();
        let trusted: HashSet<String> = self.keyring.key_ids().into_iter().collect();
        let staged_at: HashMap<&str, &Path> = staged
            .iter()
            .filter_map(|s| Some((s.sha256.as_str(), s.path()?)))
            .collect();
        let mut to_read: Vec<(String, String, PathBuf)> = Vec::new();
        for (&sha, &href) in &wanted {
            let known = recorded.get(sha).cloned().flatten();
            let needs = match (&known, mode) {
                (None, _) => true,
                (Some(_), GpgCheck::Off) => false,
                // Checked when it entered this repository with a key it trusts.
                (Some(k), _) => {
                    !(current.contains(sha)
                        && k.key_id.as_ref().is_some_and(|id| trusted.contains(id)))
                }
            };
            if needs {
                let path = staged_at
                    .get(sha)
                    .map(|p| p.to_path_buf())
                    .unwrap_or_else(|| self.pool.path_of(sha));
                to_read.push((sha.to_string(), href.to_string(), path));
            }
        }
        if to_read.is_empty() {
            return Ok(Checked {
                read: Vec::new(),
                warning: None,
            });
        }
        let keyring = (mode != GpgCheck::Off).then(|| self.keyring.clone());
        let verdicts = tokio::task::spawn_blocking(move || read_all(to_read, keyring.as_ref()))
            .await
            .map_err(|e| SyncError::Task {
                what: "reading the packages' signatures",
                message: e.to_string(),
            })?;
        let mut read = Vec::with_capacity(verdicts.len());
        let mut bad: Vec<(String, String)> = Vec::new();
        for (sha, href, verdict) in verdicts {
            let signature = match verdict {
                Ok(HeaderVerdict::Signed(info)) => PackageSignature {
                    sha256: sha,
                    key_id: Some(info.key_id),
                    algorithm: info.algorithm,
                },
                Ok(HeaderVerdict::Unsigned) => {
                    bad.push((href, "unsigned".into()));
                    PackageSignature {
                        sha256: sha,
                        key_id: None,
                        algorithm: "none".into(),
                    }
                }
                Ok(HeaderVerdict::Bad(e)) => {
                    // Recorded as what it claims; never as checked.
                    let claimed = match &e {
                        PgpError::UnknownKey { found, .. } => Some(found.clone()),
                        PgpError::Mismatch { key, .. } => Some(key.clone()),
                        _ => None,
                    };
                    bad.push((href, e.to_string()));
                    match claimed {
                        Some(key_id) => PackageSignature {
                            sha256: sha,
                            key_id: Some(key_id),
                            algorithm: "unverified".into(),
                        },
                        None => continue,
                    }
                }
                Err(e) => {
                    bad.push((href, e));
                    continue;
                }
            };
            read.push(signature);
        }
        if mode == GpgCheck::Off || bad.is_empty() {
            return Ok(Checked {
                read,
                warning: None,
            });
        }
        bad.sort();
        if mode == GpgCheck::Require {
            return Err(SyncError::PackageSignatures {
                expected: self.keyring.key_ids().join(", "),
                failures: bad,
            });
        }
        Ok(Checked {
            read,
            warning: Some(format!(
                "{} package(s) are not signed by a key of this repository ({}): {}",
                bad.len(),
                self.keyring.key_ids().join(", "),
                named(&bad)
            )),
        })
    }
}

/// `failures` as "href (why), …", the first [`NAMED`] of them.
pub(super) fn named(failures: &[(String, String)]) -> String {
    let mut text: Vec<String> = failures
        .iter()
        .take(NAMED)
        .map(|(href, why)| format!("{href} ({why})"))
        .collect();
    if failures.len() > NAMED {
        text.push(format!("and {} more", failures.len() - NAMED));
    }
    text.join(", ")
}

/// Each package's header signature verdict, read on all cores.
fn read_all(
    files: Vec<(String, String, PathBuf)>,
    keyring: Option<&Keyring>,
) -> Vec<(String, String, Result<HeaderVerdict, String>)> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(files.len()));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((sha, href, path)) = files.get(i) else {
                    break;
                };
                let verdict = std::fs::File::open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))
                    .and_then(|f| {
                        rpmcheck::header_signature(&mut std::io::BufReader::new(f))
                            .map_err(|e| e.to_string())
                    })
                    .map(|head| openpgp::check_header(&head, keyring));
                if let Ok(mut out) = out.lock() {
                    out.push((sha.clone(), href.clone(), verdict));
                }
            });
        }
    });
    out.into_inner().unwrap_or_default()
}
