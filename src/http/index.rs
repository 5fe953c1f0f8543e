//! The in-memory index of everything published: (repo, snapshot-or-`latest`, path) →
//! blob. Built from the catalog when the server starts and whenever something is
//! published; requests only read it (no SQL on the request path). Trees that share a
//! publication share one file map.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use hyper::header::HeaderValue;

use crate::store::catalog::{Catalog, CatalogError, Space, TreeRow};

/// One servable file, with its response headers prepared when the index is built.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub sha256: String,
    pub size: u64,
    pub content_type: &'static str,
    /// `"<sha256>"`.
    pub etag: HeaderValue,
    /// HTTP date of the file time.
    pub last_modified: HeaderValue,
}

impl FileEntry {
    pub fn new(path: &str, sha256: String, size: u64, mtime: i64) -> FileEntry {
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(mtime.max(0) as u64));
        FileEntry {
            content_type: content_type(path),
            etag: HeaderValue::from_str(&format!("\"{sha256}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"\"")),
            last_modified: HeaderValue::from_str(&date)
                .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT")),
            sha256,
            size,
        }
    }
}

/// The files of one publication (metadata and packages), by path relative to the tree.
#[derive(Debug, Default)]
pub struct Files {
    pub files: HashMap<String, FileEntry>,
    /// The key IDs that signed the packages, when every package is signed (by a key
    /// its repository trusted or not: see `listing::repo_file`); `None` otherwise.
    pub signers: Option<std::collections::BTreeSet<String>>,
}

/// A published tree: a snapshot or a repository's `latest`.
#[derive(Debug, Clone)]
pub struct Tree {
    pub files: Arc<Files>,
    /// Files a `latest` served within the grace period and no longer does: still
    /// served under it (not listed), so a client holding the previous repomd.xml gets
    /// every file it names.
    pub before: Option<Arc<Files>>,
    /// Snapshots never change; `latest` does.
    pub immutable: bool,
    pub revision: i64,
}

impl Tree {
    /// The file at `path`: the tree's own, or one it served within the grace period.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .files
            .get(path)
            .or_else(|| self.before.as_ref()?.files.get(path))
    }
}

/// Everything the server can serve.
#[derive(Debug, Default)]
pub struct Index {
    /// repo → tree name → tree.
    pub repos: HashMap<String, HashMap<String, Tree>>,
    /// view → tree name → tree.
    pub views: HashMap<String, HashMap<String, Tree>>,
    /// The data dir's generation marker as read before this index was loaded: when
    /// the marker says otherwise, something newer is published.
    pub generation: String,
    /// Which load this is (each load gets a new number; 0: the empty index): what a
    /// worker granted under an older index it checks again (see `super::grants`).
    pub serial: u64,
}

/// The serial the next loaded index gets.
static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The Content-Type for a path inside a tree.
pub fn content_type(path: &str) -> &'static str {
    if path.ends_with(".rpm") {
        "application/x-rpm"
    } else if path.ends_with(".xml") {
        "application/xml"
    } else if path.ends_with(".gz") {
        "application/gzip"
    } else if path.ends_with(".zst") {
        "application/zstd"
    } else if path.ends_with(".xz") {
        "application/x-xz"
    } else if path.ends_with(".bz2") {
        "application/x-bzip2"
    } else if path.ends_with(".asc") {
        "application/pgp-signature"
    } else {
        "application/octet-stream"
    }
}

impl Index {
    /// Loads the index from the catalog. An alias serves its snapshot's files plus, for
    /// `alias_grace` after a switch, the files of what it served before (so a client
    /// holding the old repomd.xml still gets everything it names). Trees sharing a
    /// publication share one file map.
    pub async fn load(catalog: &Catalog, alias_grace: Duration) -> Result<Index, CatalogError> {
        let mut by_publication: HashMap<i64, Arc<Files>> = HashMap::new();
        let state = catalog
            .serving_trees(alias_grace.as_secs() as i64, |tree, metadata, packages| {
                let mut files = Files::default();
                for f in metadata {
                    // Metadata files date from the publication's revision.
                    let entry = FileEntry::new(&f.path, f.sha256, f.size as u64, tree.revision);
                    files.files.insert(f.path, entry);
                }
                let mut signers = Some(std::collections::BTreeSet::new());
                for p in packages {
                    match (&p.sig_algorithm, &p.sig_key_id, &mut signers) {
                        (Some(a), Some(k), Some(set)) if a != "none" && a != "unverified" => {
                            set.insert(k.clone());
                        }
                        _ => signers = None,
                    }
                    let entry = FileEntry::new(&p.path, p.sha256, p.size as u64, p.mtime);
                    files.files.insert(p.path, entry);
                }
                files.signers = signers.filter(|s| !s.is_empty());
                by_publication.insert(tree.publication_id, Arc::new(files));
            })
            .await?;
        let files_of = |tree: &TreeRow| {
            by_publication
                .get(&tree.publication_id)
                .cloned()
                .unwrap_or_default()
        };
        let mut index = Index {
            serial: NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Index::default()
        };
        let before_of = |space: Space, tree: &TreeRow, files: &Files| {
            if tree.immutable {
                return None;
            }
            let (_, owners) = state.latest_before.iter().find(|(s, _)| *s == space)?;
            let mut before = Files::default();
            // Newest first: the first file named at a path is the one served.
            for f in owners.get(&tree.repo)? {
                if !files.files.contains_key(&f.path) && !before.files.contains_key(&f.path) {
                    let entry = FileEntry::new(&f.path, f.sha256.clone(), f.size as u64, f.mtime);
                    before.files.insert(f.path.clone(), entry);
                }
            }
            (!before.files.is_empty()).then(|| Arc::new(before))
        };
        for (space, tree) in &state.trees {
            let files = files_of(tree);
            let t = Tree {
                before: before_of(*space, tree, &files),
                files,
                immutable: tree.immutable,
                revision: tree.revision,
            };
            index
                .space_mut(*space)
                .entry(tree.repo.clone())
                .or_default()
                .insert(tree.name.clone(), t);
        }
        for alias in &state.aliases {
            let current = files_of(&alias.current);
            let files = if alias.previous.is_empty() {
                current
            } else {
                let mut merged = Files {
                    files: current.files.clone(),
                    signers: current.signers.clone(),
                };
                for prev in &alias.previous {
                    for (path, entry) in &files_of(prev).files {
                        merged
                            .files
                            .entry(path.clone())
                            .or_insert_with(|| entry.clone());
                    }
                }
                Arc::new(merged)
            };
            let t = Tree {
                files,
                before: None,
                immutable: false,
                revision: alias.current.revision,
            };
            index
                .space_mut(alias.space)
                .entry(alias.repo.clone())
                .or_default()
                .insert(alias.name.clone(), t);
        }
        Ok(index)
    }

    /// The tree `name` of repository `repo`.
    pub fn tree(&self, repo: &str, name: &str) -> Option<&Tree> {
        self.repos.get(repo)?.get(name)
    }

    /// The repositories (`repos`) or the views (`views`).
    pub fn space(&self, space: &str) -> Option<&HashMap<String, HashMap<String, Tree>>> {
        match space {
            "repos" => Some(&self.repos),
            "views" => Some(&self.views),
            _ => None,
        }
    }

    fn space_mut(&mut self, space: Space) -> &mut HashMap<String, HashMap<String, Tree>> {
        match space {
            Space::Repos => &mut self.repos,
            Space::Views => &mut self.views,
        }
    }

    /// How many trees are indexed.
    pub fn tree_count(&self) -> usize {
        self.repos
            .values()
            .chain(self.views.values())
            .map(HashMap::len)
            .sum()
    }
}
