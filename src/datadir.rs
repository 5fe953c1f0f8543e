//! The data directory: where the pool lives, per-repository write locks, and the
//! publish generation marker that tells a running server to reload its index.
//!
//! ```text
//! data_dir/
//!   pool/          content-addressed blobs (see `pool`)
//!   catalog.db     the SQLite catalog (when no database_url is set)
//!   locks/<repo>   flock(2) files serialising writers of one repository
//!   generation     bumped after every catalog commit that changes what is served
//! ```

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Name of the marker file the server watches.
pub const GENERATION_FILE: &str = "generation";

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// An exclusive lock on one repository; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
}

impl DataDir {
    /// Creates the directory (and its `locks/`) if needed.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<DataDir> {
        let root = root.into();
        fs::create_dir_all(root.join("locks"))?;
        Ok(DataDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pool_dir(&self) -> PathBuf {
        self.root.join("pool")
    }

    pub fn generation_path(&self) -> PathBuf {
        self.root.join(GENERATION_FILE)
    }

    /// Blocks until this process holds the write lock of repository `repo`.
    pub fn lock_repo(&self, repo: &str) -> io::Result<RepoLock> {
        let path = self.root.join("locks").join(repo);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        loop {
            // SAFETY: flock on a descriptor owned by `file`.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(RepoLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// [`DataDir::lock_repo`] without blocking the async runtime while waiting.
    pub async fn lock_repo_async(&self, repo: &str) -> io::Result<RepoLock> {
        let (dir, repo) = (self.clone(), repo.to_string());
        tokio::task::spawn_blocking(move || dir.lock_repo(&repo))
            .await
            .map_err(io::Error::other)?
    }

    /// Tells running servers that the catalog changed (atomic replace of the marker).
    pub fn bump_generation(&self) -> io::Result<()> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = self
            .root
            .join(format!(".{GENERATION_FILE}.{}.tmp", std::process::id()));
        fs::write(&tmp, format!("{stamp}\n"))?;
        fs::rename(&tmp, self.generation_path())
    }
}
