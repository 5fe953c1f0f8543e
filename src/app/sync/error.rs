//! Why a sync failed ([`SyncError`]), and how a failure is counted in
//! `cairn_sync_upstream_errors_total`.

use super::upstream::{ClientError, UpstreamError};
use super::{filter, trust};
use crate::app::ingest::IngestError;
use crate::app::publish::PublishError;
use crate::formats::openpgp::PgpError;
use crate::formats::repodata::parse::ParseError;
use crate::store::catalog::CatalogError;
use crate::store::pool::PoolError;

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("repository {0:?} has no feed (it is a local repository)")]
    NoFeed(String),
    /// A metadata request failed.
    #[error("{url}: {source}")]
    Upstream {
        url: String,
        #[source]
        source: UpstreamError,
    },
    #[error("{url}: no {kind} record")]
    MissingRecord { url: String, kind: &'static str },
    #[error("{href}: absurd package size {size}")]
    AbsurdSize { href: String, size: i64 },
    /// Mirror mode serves upstream's locations as they are, and the server decodes
    /// request paths: a percent-encoded location could be published but never served.
    #[error("{href}: a percent-encoded location cannot be served as it is in mirror mode (use mode = \"regenerate\", which names packages by their NEVRA)")]
    Unservable { href: String },
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A mirrorlist or metalink gives nothing to sync from.
    #[error(transparent)]
    Mirrors(#[from] crate::formats::mirrors::MirrorsError),
    #[error(transparent)]
    Filter(#[from] filter::BadGlob),
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Stopped on request (Ctrl-C, SIGTERM): the downloads that had finished are kept in
    /// the pool, and the next sync does not fetch them again.
    #[error(
        "interrupted: {kept} finished download(s) were kept; the next sync continues from there"
    )]
    Interrupted { kept: usize },
    /// The sync ran past its `deadline`: stopped as if interrupted.
    #[error(
        "stopped after {}, the repository's deadline: {kept} finished download(s) were kept and the next sync continues from there (raise `deadline` in its [[repo]] if it needs longer)",
        crate::domain::schedule::format_duration(*.limit)
    )]
    Deadline {
        limit: std::time::Duration,
        kept: usize,
    },
    /// Package downloads failed: (href, why) for each.
    #[error("{} package(s) failed:\n{}", .0.len(), .0.iter().map(|(p, e)| format!("  {p}: {e}")).collect::<Vec<_>>().join("\n"))]
    Packages(Vec<(String, UpstreamError)>),
    /// A tree's `.treeinfo` cannot be used.
    #[error(transparent)]
    Treeinfo(#[from] crate::formats::treeinfo::TreeinfoError),
    /// Downloads of a tree's files (images) failed: (path, why) for each.
    #[error("{} file(s) of the tree failed:\n{}", .0.len(), .0.iter().map(|(p, e)| format!("  {p}: {e}")).collect::<Vec<_>>().join("\n"))]
    TreeFiles(Vec<(String, UpstreamError)>),
    /// A key file of `gpgkeys` cannot be read.
    #[error("repo {repo}: gpgkeys: {source}")]
    Keys {
        repo: String,
        #[source]
        source: PgpError,
    },
    /// `gpgcheck = "require"`: packages unsigned or not signed by a trusted key.
    #[error("{} package(s) are not signed by a key of this repository ({expected}): {}; nothing was changed (gpgcheck = \"warn\" reports them instead)", .failures.len(), trust::named(.failures))]
    PackageSignatures {
        expected: String,
        failures: Vec<(String, String)>,
    },
    /// `repo_gpgcheck`: upstream has no signature beside repomd.xml.
    #[error("{url}: HTTP 404: upstream's repomd.xml is not signed, but repo_gpgcheck = true (expected a signature by one of the keys {expected}); nothing was changed")]
    NoRepoSignature { url: String, expected: String },
    /// `repo_gpgcheck`: the signature beside repomd.xml does not hold.
    #[error("{url}: repomd.xml signature check failed: {source}; nothing was changed")]
    RepoSignature {
        url: String,
        #[source]
        source: PgpError,
    },
    #[error("locking repository {repo}: {source}")]
    Lock {
        repo: String,
        #[source]
        source: std::io::Error,
    },
    /// A task of the sync ended abnormally (a panic, or no memory for a compression
    /// context).
    #[error("{what}: {message}")]
    Task { what: &'static str, message: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl SyncError {
    /// Counts this failure's upstream errors in `cairn_sync_upstream_errors_total`.
    pub(super) fn count(&self, repo: &str) {
        let m = crate::app::metrics::metrics();
        match self {
            SyncError::Packages(failures) | SyncError::TreeFiles(failures) => {
                for kind in failures.iter().filter_map(|(_, e)| e.kind()) {
                    m.upstream_error(repo, kind);
                }
            }
            SyncError::Upstream { source, .. } => {
                if let Some(kind) = source.kind() {
                    m.upstream_error(repo, kind);
                }
            }
            SyncError::Parse(_)
            | SyncError::Mirrors(_)
            | SyncError::Treeinfo(_)
            | SyncError::MissingRecord { .. }
            | SyncError::AbsurdSize { .. } => m.upstream_error(repo, "metadata"),
            _ => {}
        }
    }
}
