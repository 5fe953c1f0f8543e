//! The in-memory index of everything published: (repo, snapshot-or-`latest`, path) →
//! blob. Built from the catalog when the server starts and whenever something is
//! published; requests only read it (no SQL on the request path). Trees that share a
//! publication share one file map.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use hyper::header::HeaderValue;

use crate::catalog::{Catalog, CatalogError};

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
}

/// A published tree: a snapshot or a repository's `latest`.
#[derive(Debug, Clone)]
pub struct Tree {
    pub files: Arc<Files>,
    /// Snapshots never change; `latest` does.
    pub immutable: bool,
    pub revision: i64,
}

/// Everything the server can serve.
#[derive(Debug, Default)]
pub struct Index {
    /// repo → tree name → tree.
    pub repos: HashMap<String, HashMap<String, Tree>>,
}

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
    /// Loads the index from the catalog.
    pub async fn load(catalog: &Catalog) -> Result<Index, CatalogError> {
        let trees = catalog.trees().await?;
        let mut by_publication: HashMap<i64, Arc<Files>> = HashMap::new();
        let mut index = Index::default();
        for tree in trees {
            let files = match by_publication.get(&tree.publication_id) {
                Some(f) => f.clone(),
                None => {
                    let mut files = Files::default();
                    for f in catalog.publication_files(tree.publication_id).await? {
                        let entry = FileEntry::new(&f.path, f.sha256, f.size as u64, tree.revision);
                        files.files.insert(f.path, entry);
                    }
                    for p in catalog.tree_packages(&tree).await? {
                        let entry = FileEntry::new(&p.path, p.sha256, p.size as u64, p.mtime);
                        files.files.insert(p.path, entry);
                    }
                    let files = Arc::new(files);
                    by_publication.insert(tree.publication_id, files.clone());
                    files
                }
            };
            index.repos.entry(tree.repo.clone()).or_default().insert(
                tree.name.clone(),
                Tree {
                    files,
                    immutable: tree.immutable,
                    revision: tree.revision,
                },
            );
        }
        Ok(index)
    }

    /// The tree `name` of repository `repo`.
    pub fn tree(&self, repo: &str, name: &str) -> Option<&Tree> {
        self.repos.get(repo)?.get(name)
    }

    /// How many trees are indexed.
    pub fn tree_count(&self) -> usize {
        self.repos.values().map(HashMap::len).sum()
    }
}
