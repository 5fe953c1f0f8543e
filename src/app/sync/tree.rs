//! Installation trees (`kind = "tree"`): a feed whose root holds `.treeinfo`.
//!
//! A tree's sync reads `.treeinfo` ([`crate::formats::treeinfo`]), mirrors every
//! repository its variants and addons name (each as mirror mode mirrors a repository:
//! upstream's metadata bytes, packages at upstream's locations, under the variant's
//! directory; the packages are left upstream until asked for under an on-demand or
//! streamed policy, as a repository's are), downloads every file it names (images,
//! stage2) into the pool through the same resumable, verified downloads packages use
//! (checked against `[checksums]`), and carries the small files installers and people read beside them (`.discinfo`,
//! `media.repo`, `EULA`, `GPL`, the `RPM-GPG-KEY-*` files the root's listing shows,
//! and `tree_files`). All of it becomes one publication, so a snapshot freezes the
//! whole tree and an alias switches it at once; one bad file fails the sync, naming it,
//! and nothing changes.
//!
//! Upstream's state is identified by a digest over `.treeinfo` and every repository's
//! `repomd.xml`: when none changed, the sync ends there, as a repository's does.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::download::{Batch, Job};
use super::records::{self, Carry};
use super::upstream;
use super::{Cx, Found, SideRecords, SyncError, Upstream};
use crate::app::progress::Progress;
use crate::formats::repodata::merge;
use crate::formats::repodata::parse::{self, Checksum};
use crate::formats::repodata::updateinfo::Nevra;
use crate::formats::repodata::ExtraKind;
use crate::formats::treeinfo::{self, Treeinfo};
use crate::store::catalog::{PublicationFile, SyncRun};
use crate::store::pool::{Staged, StagedJournal};

/// Small files carried when upstream has them (a 404 means it has not).
const OPTIONAL_FILES: [&str; 5] = [".discinfo", "media.repo", "EULA", "GPL", "extra_files.json"];
/// Largest optional small file (and root listing) read.
const MAX_SMALL_FILE: u64 = 16 * 1024 * 1024;

/// `href` under the directory `prefix` of the tree (`""`: the root).
pub fn under(prefix: &str, href: &str) -> String {
    if prefix.is_empty() {
        href.to_string()
    } else {
        format!("{prefix}/{href}")
    }
}

/// A file of the tree to download: an image, the stage2 image, or one of `tree_files`.
pub struct TreeFetch {
    path: String,
    checksum: Option<Checksum>,
}

/// What one of the tree's repositories gave (or all of them, combined).
struct RepoPart {
    up: Upstream,
    files: Vec<(String, String, Vec<u8>)>,
    carry: Carry,
}

impl Cx<'_> {
    /// A tree's metadata phase: `.treeinfo` and every repository's `repomd.xml`
    /// (nothing more when the digest over them is the current content's), then each
    /// repository's package lists and records, the small files, and the plan.
    pub(super) async fn tree_metadata(
        &self,
        client: &super::source::Source,
        progress: &Progress,
    ) -> Result<Option<Found>, SyncError> {
        let treeinfo_url = upstream::join(&self.base, ".treeinfo");
        progress.set_stage(format!("{}: fetching {treeinfo_url}", self.repo.id));
        let treeinfo_bytes = records::fetch(client, &treeinfo_url, records::MAX_REPOMD).await?;
        let tree = treeinfo::parse(&treeinfo_bytes, &treeinfo_url)?;
        let mut digest = Sha256::new();
        digest.update(b"tree\n");
        digest.update(&treeinfo_bytes);
        let mut repomds = Vec::with_capacity(tree.repos.len());
        for repo in &tree.repos {
            let base = self.repo_base(&repo.path);
            let url = upstream::join(&base, "repodata/repomd.xml");
            progress.set_stage(format!("{}: fetching {url}", self.repo.id));
            let bytes = records::fetch(client, &url, records::MAX_REPOMD).await?;
            self.check_repomd_signature(client, &url, &bytes).await?;
            digest.update(format!("\n{} ", repo.path).as_bytes());
            digest.update(hex::encode(Sha256::digest(&bytes)).as_bytes());
            repomds.push((base, url, bytes));
        }
        let digest = hex::encode(digest.finalize());
        if self.unchanged(&digest).await? {
            return Ok(None);
        }

        let mut warnings = Vec::new();
        let mut parts = Vec::with_capacity(tree.repos.len());
        for (repo, (base, url, bytes)) in tree.repos.iter().zip(repomds) {
            let repomd = parse::parse_repomd(&bytes, &url)?;
            progress.set_stage(format!(
                "{}: fetching and reading the package lists of {base}",
                self.repo.id
            ));
            let up = self
                .read_packages(client, &base, &repo.path, &repomd, &url)
                .await?;
            warnings.extend(upstream::weak_checksums(
                &repomd,
                up.entries.iter().map(|e| e.checksum.algorithm.as_str()),
            ));
            let (files, carry) = self
                .fetch_mirror_records(client, &base, &repomd, &bytes, &up)
                .await?;
            let files = files
                .into_iter()
                .map(|(path, kind, bytes)| (under(&repo.path, &path), kind, bytes))
                .collect();
            parts.push(RepoPart { up, files, carry });
        }
        self.phase("the tree's repositories fetched and parsed");

        let RepoPart {
            up,
            mut files,
            carry,
        } = combine(parts)?;
        warnings.extend(carry.warnings.iter().cloned());
        files.push((".treeinfo".into(), "treeinfo".into(), treeinfo_bytes));
        progress.set_stage(format!("{}: fetching the tree's small files", self.repo.id));
        let taken: HashSet<String> = files
            .iter()
            .map(|(p, _, _)| p.clone())
            .chain(up.by_location.keys().cloned())
            .chain(tree.files.iter().map(|f| f.path.clone()))
            .chain(self.repo.tree_files.iter().cloned())
            .collect();
        for (path, bytes) in self.small_files(client, &taken).await? {
            files.push((path, "tree".into(), bytes));
        }
        let fetches = self.tree_fetches(&tree, &files, &up, &mut warnings)?;
        let side = SideRecords::Mirror(files, carry);
        progress.set_stage(format!(
            "{}: checking which packages the pool holds",
            self.repo.id
        ));
        let plan = self.plan_downloads(&up).await?;
        for w in &warnings {
            tracing::warn!("{}: {w}", self.repo.id);
        }
        Ok(Some(Found {
            digest,
            up,
            side,
            plan,
            warnings,
            tree_files: fetches,
        }))
    }

    /// The URL of the tree's repository at `path` (ending in `/`).
    fn repo_base(&self, path: &str) -> String {
        if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}{path}/", self.base)
        }
    }

    /// The files `.treeinfo` names and `tree_files`, to download; a path the tree's
    /// repositories publish already is not fetched twice (a warning says so when
    /// `[checksums]` disagrees with the bytes mirrored).
    fn tree_fetches(
        &self,
        tree: &Treeinfo,
        files: &[(String, String, Vec<u8>)],
        up: &Upstream,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<TreeFetch>, SyncError> {
        let mut fetches: Vec<TreeFetch> = Vec::new();
        for f in &tree.files {
            if let Some((_, _, bytes)) = files.iter().find(|(p, _, _)| *p == f.path) {
                if let Some(c) = &f.checksum {
                    if upstream::verify(bytes, c).is_err() {
                        warnings.push(format!(
                            ".treeinfo's [checksums] entry for {} does not match the file its repository publishes (served as the repository has it)",
                            f.path
                        ));
                    }
                }
                continue;
            }
            if up.by_location.contains_key(&f.path) {
                continue;
            }
            if f.checksum.is_none() {
                warnings.push(format!(
                    "{} ({}) has no [checksums] entry in .treeinfo: only its size could be checked",
                    f.path, f.role
                ));
            }
            fetches.push(TreeFetch {
                path: f.path.clone(),
                checksum: f.checksum.clone(),
            });
        }
        for path in &self.repo.tree_files {
            if !fetches.iter().any(|f| f.path == *path)
                && !files.iter().any(|(p, _, _)| p == path)
                && !tree.files.iter().any(|f| f.path == *path)
            {
                fetches.push(TreeFetch {
                    path: path.clone(),
                    checksum: None,
                });
            }
        }
        Ok(fetches)
    }

    /// The optional small files upstream has (`OPTIONAL_FILES`, and the
    /// `RPM-GPG-KEY-*` files the root's HTML listing links to), but none in `taken`.
    async fn small_files(
        &self,
        client: &super::source::Source,
        taken: &HashSet<String>,
    ) -> Result<Vec<(String, Vec<u8>)>, SyncError> {
        let mut names: Vec<String> = OPTIONAL_FILES.iter().map(|s| s.to_string()).collect();
        match client.fetch_optional(&self.base, MAX_SMALL_FILE).await {
            Ok(Some(listing)) => names.extend(gpg_keys_listed(&String::from_utf8_lossy(&listing))),
            // No listing (or none allowed): only the fixed names are tried.
            Ok(None) => {}
            Err(e) => tracing::debug!("{}: no listing of the tree root: {e}", self.base),
        }
        let mut out = Vec::new();
        for name in names {
            if taken.contains(&name) || out.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let url = upstream::join(&self.base, &name);
            match client.fetch_optional(&url, MAX_SMALL_FILE).await {
                Ok(Some(bytes)) => out.push((name, bytes)),
                Ok(None) => {}
                Err(source) => return Err(SyncError::Upstream { url, source }),
            }
        }
        Ok(out)
    }

    /// Downloads the tree's files into the pool (those it holds already are reused),
    /// verified against `.treeinfo`'s checksums. All or nothing: any failure fails the
    /// sync naming every file that failed; verified downloads are kept for the next run.
    pub(super) async fn download_tree_files(
        &self,
        client: &super::source::Source,
        fetches: Vec<TreeFetch>,
        run: &mut SyncRun,
        progress: &Progress,
    ) -> Result<(Vec<Staged>, Vec<PublicationFile>, StagedJournal), SyncError> {
        if !fetches.is_empty() {
            progress.set_stage(format!(
                "{}: checking the sizes of the tree's {} file(s)",
                self.repo.id,
                fetches.len()
            ));
        }
        let mut sized = Vec::with_capacity(fetches.len());
        let mut failures = Vec::new();
        for f in fetches {
            let url = upstream::join(&self.base, &f.path);
            match client.content_length(&url).await {
                Ok(size) => sized.push((f, url, size)),
                Err(e) => failures.push((f.path, e)),
            }
        }
        let mut refs = Vec::new();
        let mut wanted = Vec::new();
        for (f, url, size) in sized {
            let known = f
                .checksum
                .as_ref()
                .filter(|c| c.algorithm == "sha256" && self.pool.reuse(&c.hex, size));
            match known {
                Some(c) => refs.push(PublicationFile {
                    path: f.path.clone(),
                    kind: "image".into(),
                    sha256: c.hex.clone(),
                    size: size as i64,
                }),
                None => wanted.push((f, url, size)),
            }
        }
        let jobs = wanted
            .into_iter()
            .map(|(f, url, size)| {
                let job = Job {
                    url,
                    checksum: f.checksum,
                    size,
                    partial_key: format!(
                        "{}-tree-{}",
                        self.repo.id,
                        hex::encode(Sha256::digest(f.path.as_bytes()))
                    ),
                };
                (f.path, job)
            })
            .collect();
        let Batch {
            results,
            interrupted,
            journal,
        } = self
            .download_batch(
                client,
                jobs,
                self.repo.downloads.min(4),
                progress,
                "writing the tree's files",
            )
            .await?;
        let mut staged = Vec::new();
        for (path, r) in results {
            match r {
                Ok((s, transferred)) => {
                    run.bytes_downloaded += transferred as i64;
                    refs.push(PublicationFile {
                        path,
                        kind: "image".into(),
                        sha256: s.sha256.clone(),
                        size: s.size as i64,
                    });
                    staged.push(s);
                }
                Err(e) => failures.push((path, e)),
            }
        }
        if interrupted || !failures.is_empty() {
            let kept = staged.len();
            self.pool.commit_async(staged).await?;
            journal.discard();
            if interrupted {
                return Err(self.stopped(progress, kept));
            }
            failures.sort_by(|a, b| a.0.cmp(&b.0));
            return Err(SyncError::TreeFiles(failures));
        }
        refs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((staged, refs, journal))
    }
}

/// The `RPM-GPG-KEY-*` files an HTML directory listing links to.
fn gpg_keys_listed(listing: &str) -> Vec<String> {
    let mut keys: Vec<String> = listing
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| {
            name.starts_with("RPM-GPG-KEY-")
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_string)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The tree's repositories as one: their packages (locations already under each
/// repository's directory), metadata files, and carried documents (comps, updateinfo
/// and modules merged as a view merges its members'; for other records, the first
/// repository's of each type).
fn combine(parts: Vec<RepoPart>) -> Result<RepoPart, SyncError> {
    let mut up = Upstream {
        entries: Vec::new(),
        by_location: HashMap::new(),
        removed: HashSet::new(),
        lists: Vec::new(),
    };
    let mut files = Vec::new();
    let mut carry = Carry::default();
    let mut opened: Vec<(ExtraKind, Vec<Vec<u8>>)> = Vec::new();
    for part in parts {
        let offset = up.entries.len();
        let lists = up.lists.len();
        up.entries.extend(part.up.entries.into_iter().map(|mut e| {
            e.list += lists;
            e
        }));
        up.lists.extend(part.up.lists);
        for (loc, i) in part.up.by_location {
            up.by_location.insert(loc, i + offset);
        }
        files.extend(part.files);
        for (kind, bytes) in part.carry.opened {
            match opened.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, docs)) => docs.push(bytes),
                None => opened.push((kind, vec![bytes])),
            }
        }
        for (record, bytes) in part.carry.carried {
            if !carry.carried.iter().any(|(r, _)| r.kind == record.kind) {
                carry.carried.push((record, bytes));
            }
        }
        carry.warnings.extend(part.carry.warnings);
    }
    let keep: HashSet<Nevra> = up.entries.iter().map(|e| e.nevra.clone()).collect();
    for (kind, mut docs) in opened {
        let merged = if docs.len() == 1 {
            docs.swap_remove(0)
        } else {
            let slices: Vec<&[u8]> = docs.iter().map(Vec::as_slice).collect();
            match kind {
                ExtraKind::Comps => merge::comps(&slices)?,
                ExtraKind::Updateinfo => merge::updateinfo(&slices, &keep)?,
                ExtraKind::Modules => merge::modules(&slices),
            }
        };
        carry.opened.push((kind, merged));
    }
    Ok(RepoPart { up, files, carry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpg_keys_are_read_from_a_listing() {
        let nginx = r#"<html><body><a href="../">../</a>
<a href="BaseOS/">BaseOS/</a> <a href="RPM-GPG-KEY-Demo-9">RPM-GPG-KEY-Demo-9</a>
<a href="RPM-GPG-KEY-Demo-9">again</a> <a href="RPM-GPG-KEY-x%2F..">odd</a>
<a href="EULA">EULA</a></body></html>"#;
        assert_eq!(gpg_keys_listed(nginx), ["RPM-GPG-KEY-Demo-9"]);
    }

    #[test]
    fn paths_go_under_their_repository() {
        assert_eq!(under("", "repodata/repomd.xml"), "repodata/repomd.xml");
        assert_eq!(under("BaseOS", "Packages/a.rpm"), "BaseOS/Packages/a.rpm");
    }
}
