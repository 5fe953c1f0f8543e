//! The data directory: where the pool lives, per-repository locks, and the publish
//! generation marker that tells a running server to reload its index.
//!
//! ```text
//! data_dir/
//!   pool/              content-addressed blobs (see `pool`)
//!   catalog.db         the SQLite catalog (when no database_url is set)
//!   locks/<repo>       flock(2) files serialising writers of one repository
//!   sync-locks/<repo>  flock(2) files: one sync of a repository at a time
//!   generation         bumped after every catalog commit that changes what is served
//!   pool.lease         flock(2): shared by every writer, exclusive for `gc`
//!   serve.lock         flock(2) held by the one `cairn serve` of this data dir; says
//!                      its pid and address
//! ```
//!
//! The pool lease closes the window between a blob entering the pool and the catalog
//! row that references it: every operation that adds blobs or rows (import, sync,
//! publish, snapshot, view refresh) holds it shared from before its first blob until
//! its content is placed, and `gc` holds it exclusively, so gc never sees a blob or row
//! that an operation is about to reference, whatever its `--min-age`.
//!
//! A write lock is held only while a repository's content or snapshots change, which
//! is quick: a sync holds its repository's sync lock while it downloads, for as long as
//! that takes, and the write lock only to put the new content in place. Snapshots and
//! imports therefore never wait for a download.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where the write locks are.
const WRITE_LOCKS: &str = "locks";
/// Where the sync locks are.
const SYNC_LOCKS: &str = "sync-locks";

/// Takes an exclusive flock(2) on the file at `path` (created if needed): waiting for it
/// if `wait`, else `None` when someone else holds it.
fn lock(path: &Path, wait: bool) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(at(path))?;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock on a descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(Some(file));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(None),
            _ => return Err(err),
        }
    }
}

/// [`lock`], waiting.
fn lock_waiting(path: &Path) -> io::Result<File> {
    lock(path, true)?.ok_or_else(|| io::Error::other("flock returned without the lock"))
}

/// [`lock_waiting`] on the blocking thread pool, for async callers.
async fn lock_waiting_async(path: PathBuf) -> io::Result<File> {
    tokio::task::spawn_blocking(move || lock_waiting(&path))
        .await
        .map_err(io::Error::other)?
}

/// The pool lease's file (see the module header).
const POOL_LEASE: &str = "pool.lease";

/// Takes a shared flock(2) on `path` (created if needed), waiting for it.
fn lock_shared(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    loop {
        // SAFETY: flock on a descriptor owned by `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) } == 0 {
            return Ok(file);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Names the file in an I/O error, so that a permission problem says where.
fn at(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Name of the marker file the server watches.
pub const GENERATION_FILE: &str = "generation";

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// The write lock of one repository, held by this process; released on drop. Every
/// function that changes a repository's content or snapshots takes it as an argument,
/// so holding the lock is a precondition the compiler checks. It holds the pool lease
/// too.
#[derive(Debug)]
pub struct WriteLock {
    repo: String,
    _file: File,
    _lease: PoolLease,
}

/// A shared hold on the pool (see the module header): while any exists, `gc` waits.
/// Released on drop.
#[derive(Debug)]
pub struct PoolLease {
    _file: File,
}

/// The exclusive hold `gc` takes on the pool: no import, sync, publish or snapshot
/// runs while it is held. Released on drop.
#[derive(Debug)]
pub struct GcLock {
    _file: File,
}

impl WriteLock {
    /// The repository this lock is for.
    pub fn repo(&self) -> &str {
        &self.repo
    }
}

/// The write locks of several repositories (one repository, or every member of a
/// view), taken in name order so that two holders never wait on each other. Deleting a
/// snapshot and moving an alias take the locks of the repositories whose snapshots they
/// touch, so neither races a snapshot being created or retention running.
#[derive(Debug)]
pub struct WriteLocks {
    locks: Vec<WriteLock>,
}

impl From<WriteLock> for WriteLocks {
    fn from(lock: WriteLock) -> WriteLocks {
        WriteLocks { locks: vec![lock] }
    }
}

impl WriteLocks {
    /// True when repository `repo`'s write lock is among these.
    pub fn holds(&self, repo: &str) -> bool {
        self.locks.iter().any(|l| l.repo == repo)
    }
}

/// A data dir the running user must not or cannot write to.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("{path} belongs to {owner} (uid {owner_uid}), but this command runs as {user} (uid {user_uid}): files it wrote would lock the service out; run it as the owner: sudo -u {owner} cairn …")]
    OtherOwner {
        path: PathBuf,
        owner: String,
        owner_uid: u32,
        user: String,
        user_uid: u32,
    },
    #[error(
        "{path} is not writable by {user} (uid {uid}): run as its owner or fix its permissions"
    )]
    NotWritable {
        path: PathBuf,
        user: String,
        uid: u32,
    },
}

/// The name of the user this process runs as.
pub fn current_user() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    user_name(unsafe { libc::getuid() })
}

/// The name of user `uid` (or the number when it has none).
fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both valid for the sizes given,
    // and sets `found` to `pwd` or null.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return uid.to_string();
    }
    // SAFETY: getpwuid_r succeeded, so `pwd` is initialised and pw_name points into
    // `buf` as a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.assume_init().pw_name) };
    name.to_string_lossy().into_owned()
}

/// A write lock that could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("locking repository {repo:?}: {source}")]
pub struct LockError {
    pub repo: String,
    #[source]
    pub source: io::Error,
}

/// Held by the one server of a data dir; released on drop.
#[derive(Debug)]
pub struct ServeLock {
    file: File,
}

impl ServeLock {
    /// Records who holds the lock, for a second server's error message.
    pub fn describe(&mut self, what: &str) -> io::Result<()> {
        use std::io::{Seek, Write};
        self.file.set_len(0)?;
        self.file.seek(io::SeekFrom::Start(0))?;
        self.file.write_all(what.as_bytes())?;
        self.file.flush()
    }
}

/// The sync lock of one repository (one sync of it at a time), with the pool lease;
/// released on drop.
#[derive(Debug)]
pub struct SyncLock {
    _file: File,
    _lease: PoolLease,
}

impl DataDir {
    /// The data dir at `root`, creating nothing (see [`DataDir::open`]).
    pub fn at(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// Creates the directory (and its `locks/` and `sync-locks/`) if needed.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<DataDir> {
        let root = root.into();
        fs::create_dir_all(root.join(WRITE_LOCKS))?;
        fs::create_dir_all(root.join(SYNC_LOCKS))?;
        Ok(DataDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Refuses a data dir owned by another user (a root-run command would leave
    /// root-owned files that lock the service out) or not writable by this one.
    pub fn check_owner(&self) -> Result<(), OwnerError> {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let Ok(meta) = fs::metadata(&self.root) else {
            return Ok(()); // opening it reports that, naming the path
        };
        if meta.uid() != uid {
            return Err(OwnerError::OtherOwner {
                path: self.root.clone(),
                owner: user_name(meta.uid()),
                owner_uid: meta.uid(),
                user: user_name(uid),
                user_uid: uid,
            });
        }
        let c = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes()).ok();
        // SAFETY: access takes a valid NUL-terminated path.
        let writable = c.is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0);
        if !writable {
            return Err(OwnerError::NotWritable {
                path: self.root.clone(),
                user: user_name(uid),
                uid,
            });
        }
        Ok(())
    }

    pub fn pool_dir(&self) -> PathBuf {
        self.root.join("pool")
    }

    pub fn generation_path(&self) -> PathBuf {
        self.root.join(GENERATION_FILE)
    }

    /// Blocks until this process holds the write lock of repository `repo`.
    pub fn lock_repo(&self, repo: &str) -> io::Result<WriteLock> {
        let lease = self.lease_pool()?;
        Ok(WriteLock {
            repo: repo.to_string(),
            _file: lock_waiting(&self.root.join(WRITE_LOCKS).join(repo))?,
            _lease: lease,
        })
    }

    /// [`DataDir::lock_repo`] without blocking the async runtime while waiting.
    pub async fn lock_repo_async(&self, repo: &str) -> io::Result<WriteLock> {
        let lease = self.lease_pool_async().await?;
        Ok(WriteLock {
            repo: repo.to_string(),
            _file: lock_waiting_async(self.root.join(WRITE_LOCKS).join(repo)).await?,
            _lease: lease,
        })
    }

    /// A shared hold on the pool, waiting while `gc` runs (see the module header).
    pub fn lease_pool(&self) -> io::Result<PoolLease> {
        let path = self.root.join(POOL_LEASE);
        Ok(PoolLease {
            _file: lock_shared(&path).map_err(at(&path))?,
        })
    }

    /// [`DataDir::lease_pool`] without blocking the async runtime while waiting.
    pub async fn lease_pool_async(&self) -> io::Result<PoolLease> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.lease_pool())
            .await
            .map_err(io::Error::other)?
    }

    /// The server lock of this data dir, or (`Err`) what the server holding it
    /// recorded (see [`ServeLock::describe`]).
    pub fn try_lock_serve(&self) -> io::Result<Result<ServeLock, String>> {
        let path = self.root.join("serve.lock");
        match lock(&path, false)? {
            Some(file) => Ok(Ok(ServeLock { file })),
            None => Ok(Err(fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_string())),
        }
    }

    /// The exclusive hold of `gc` on the pool: `None` at once when an operation holds
    /// the lease and `wait` is false, else waits until none does.
    pub async fn lock_gc_async(&self, wait: bool) -> io::Result<Option<GcLock>> {
        let path = self.root.join(POOL_LEASE);
        tokio::task::spawn_blocking(move || Ok(lock(&path, wait)?.map(|f| GcLock { _file: f })))
            .await
            .map_err(io::Error::other)?
    }

    /// Waits until this process holds the write lock of every repository in `repos`
    /// (taken in name order; duplicates once).
    pub async fn lock_repos_async<S: AsRef<str>>(
        &self,
        repos: &[S],
    ) -> Result<WriteLocks, LockError> {
        let mut order: Vec<&str> = repos.iter().map(AsRef::as_ref).collect();
        order.sort_unstable();
        order.dedup();
        let mut locks = Vec::with_capacity(order.len());
        for repo in order {
            locks.push(
                self.lock_repo_async(repo)
                    .await
                    .map_err(|source| LockError {
                        repo: repo.to_string(),
                        source,
                    })?,
            );
        }
        Ok(WriteLocks { locks })
    }

    /// The sync lock of repository `repo` if nobody holds it; `None` if another sync
    /// of it is running.
    pub async fn try_lock_sync(&self, repo: &str) -> io::Result<Option<SyncLock>> {
        let Some(file) = lock(&self.root.join(SYNC_LOCKS).join(repo), false)? else {
            return Ok(None);
        };
        Ok(Some(SyncLock {
            _file: file,
            _lease: self.lease_pool_async().await?,
        }))
    }

    /// Waits (without blocking the async runtime) until this process holds the sync
    /// lock of repository `repo`.
    pub async fn lock_sync_async(&self, repo: &str) -> io::Result<SyncLock> {
        let file = lock_waiting_async(self.root.join(SYNC_LOCKS).join(repo)).await?;
        Ok(SyncLock {
            _file: file,
            _lease: self.lease_pool_async().await?,
        })
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
