//! The content-addressed blob pool: every package and metadata file, stored once under
//! its sha256 at `pool/ab/cd/<sha256>`.
//!
//! Durability without an fsync per file: blobs are first written to `pool/tmp/` while
//! being hashed ([`Pool::stage_file`], [`Pool::stage_bytes`]), or, already hashed, by a
//! writer thread of their own beside their final names ([`Stager`], for many small
//! downloads; dot-files ending in `.tmp`). [`Pool::commit`] then
//! makes the whole batch durable with one `syncfs`, renames each temp file to its final
//! name and syncs again so the renames are durable. A file under its final name is
//! therefore always complete; a crash leaves at most stray temp files and never a
//! partial blob. Temp files name their writer's process: when it is gone, the next
//! process to open the pool removes them, in `tmp/` and in the buckets its stager's
//! journal names (garbage collection also sweeps every bucket). Callers commit catalog rows only after
//! [`Pool::commit`] returned, so no row ever points at a blob that is not durable.

mod stager;
mod temp;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use stager::write_in_bucket;
pub use stager::{BucketMaker, StagedJournal, Stager};
use temp::process_id;
pub use temp::{is_stale_temp, is_temp_name};

/// The pool layout this code reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

const LAYOUT_FILE: &str = "LAYOUT";

const TMP_DIR: &str = "tmp";

/// Temp files older than this, whose writer process has ended, are leftovers of a
/// crashed or cancelled writer (see [`is_stale_temp`]).
pub const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

/// Batches at least this large are placed by one thread per core.
const PARALLEL_COMMIT: usize = 64;

/// Errors of the pool layer; each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The pool's file system (or the user's quota) is full.
    #[error("{path}: {source}: the pool's file system is full; free space there (`cairn gc` removes what nothing references) and run the command again")]
    NoSpace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: pool layout version {found} is not supported (expected {LAYOUT_VERSION})")]
    Layout { path: PathBuf, found: String },
    #[error("{0:?} is not a sha256 address")]
    BadAddress(String),
    /// A pool task on the blocking thread pool ended abnormally (a panic).
    #[error("{what} ended abnormally: {message}")]
    Task { what: &'static str, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PoolError + '_ {
    move |source| match source.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => PoolError::NoSpace {
            path: path.to_path_buf(),
            source,
        },
        _ => PoolError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// A handle on the pool directory.
#[derive(Debug, Clone)]
pub struct Pool {
    root: PathBuf,
}

/// A blob written to `tmp/` and hashed, not yet under its final name.
/// Dropping it without [`Pool::commit`] removes the temp file.
#[derive(Debug)]
pub struct Staged {
    tmp: Option<PathBuf>,
    pub sha256: String,
    pub size: u64,
}

impl Staged {
    /// The temp file holding the staged bytes (valid until commit or drop).
    pub fn path(&self) -> Option<&Path> {
        self.tmp.as_deref()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Blobs a [`Stager`] holds in memory at most, waiting to be written.
pub const STAGER_QUEUE: usize = 8;

/// What [`Pool::verify`] found for one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobState {
    Ok,
    Missing,
    /// The content hashes to something else.
    Corrupt {
        actual: String,
    },
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Is `s` a lower-case hex sha256?
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Pool {
    /// Opens (creating if needed) the pool at `root`, checking its layout version.
    pub fn open(root: impl Into<PathBuf>) -> Result<Pool, PoolError> {
        let root = root.into();
        let tmp = root.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let layout = root.join(LAYOUT_FILE);
        match fs::read_to_string(&layout) {
            Ok(text) => {
                let found = text.trim().to_string();
                if found != format!("cairn-pool {LAYOUT_VERSION}") {
                    return Err(PoolError::Layout {
                        path: layout,
                        found,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let pool = Pool { root: root.clone() };
                let staged_tmp = pool.tmp_path();
                fs::write(&staged_tmp, format!("cairn-pool {LAYOUT_VERSION}\n"))
                    .map_err(io_err(&staged_tmp))?;
                File::open(&staged_tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err(&staged_tmp))?;
                fs::rename(&staged_tmp, &layout).map_err(io_err(&layout))?;
                sync_dir(&root)?;
            }
            Err(e) => return Err(io_err(&layout)(e)),
        }
        let pool = Pool { root };
        pool.remove_stale_tmp();
        Ok(pool)
    }

    /// The pool directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every file in the pool's `ab/cd/` buckets: blobs, and temp files of writers.
    pub fn bucket_files(&self) -> impl Iterator<Item = walkdir::DirEntry> {
        walkdir::WalkDir::new(&self.root)
            .min_depth(3)
            .max_depth(3)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
    }

    /// Where the blob `sha256` lives (whether or not it exists).
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let (a, b) = (
            &sha256[..2.min(sha256.len())],
            &sha256[2.min(sha256.len())..4.min(sha256.len())],
        );
        self.root.join(a).join(b).join(sha256)
    }

    /// Moves the blob `sha256` out of the pool into `quarantine/` (kept for
    /// inspection, never served or counted as a blob); returns where it went.
    pub fn quarantine(&self, sha256: &str) -> Result<PathBuf, PoolError> {
        if !is_sha256(sha256) {
            return Err(PoolError::BadAddress(sha256.to_string()));
        }
        let dir = self.root.join("quarantine");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let to = dir.join(format!("{sha256}-{stamp}"));
        let from = self.path_of(sha256);
        fs::rename(&from, &to).map_err(io_err(&from))?;
        Ok(to)
    }

    /// Removes the blob `sha256`; returns its size if it was there. Only for a caller
    /// that keeps every writer out (it holds the exclusive [`crate::store::datadir::GcLock`])
    /// and has checked that no catalog row references the blob.
    pub fn remove(&self, sha256: &str) -> Result<Option<u64>, PoolError> {
        if !is_sha256(sha256) {
            return Err(PoolError::BadAddress(sha256.to_string()));
        }
        let path = self.path_of(sha256);
        let size = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        match fs::remove_file(&path) {
            Ok(()) => Ok(Some(size)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Is the blob present under its final name?
    pub fn contains(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_file()
    }

    /// Is the blob present with the expected size? If so, its modification time is set
    /// to now: garbage collection never removes a blob touched within its minimum age,
    /// so a blob that an import or sync is about to reference again is safe.
    pub fn reuse(&self, sha256: &str, size: u64) -> bool {
        if !self.has(sha256, size) {
            return false;
        }
        let path = self.path_of(sha256);
        File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .is_ok()
    }

    /// Does the pool hold exactly `bytes` as blob `sha256` (compared byte for byte, so
    /// a damaged copy is not taken for it)? If so, touched as [`Pool::reuse`] does.
    pub fn holds_exactly(&self, sha256: &str, bytes: &[u8]) -> bool {
        if !self.has(sha256, bytes.len() as u64) {
            return false;
        }
        let path = self.path_of(sha256);
        match fs::read(&path) {
            Ok(stored) if stored == bytes => File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(SystemTime::now()))
                .is_ok(),
            _ => false,
        }
    }

    /// Is the blob present under its final name with the expected size?
    pub fn has(&self, sha256: &str, size: u64) -> bool {
        is_sha256(sha256)
            && fs::metadata(self.path_of(sha256)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    fn tmp_path(&self) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.root
            .join(TMP_DIR)
            .join(format!("{}-{n}-{nanos}.tmp", process_id()))
    }

    /// Copies `reader` into a temp file while hashing it.
    pub fn stage_reader(&self, reader: &mut dyn Read) -> Result<Staged, PoolError> {
        let tmp = self.tmp_path();
        let mut staged = Staged {
            tmp: Some(tmp.clone()),
            sha256: String::new(),
            size: 0,
        };
        let mut out = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut hasher = Sha256::new();
        with_buffer(|buf| {
            loop {
                let n = match reader.read(buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(&tmp)(e)),
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io_err(&tmp))?;
                staged.size += n as u64;
            }
            Ok(())
        })?;
        out.flush().map_err(io_err(&tmp))?;
        staged.sha256 = hex::encode(hasher.finalize());
        Ok(staged)
    }

    /// A fresh temp path in the bucket of `sha256`, beside its final name: placing it
    /// is then a rename within one small directory, and writers of different blobs do
    /// not contend for one large `tmp/` directory.
    fn temp_beside(&self, sha256: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.path_of(sha256)
            .with_file_name(format!(".{sha256}.{}-{n}.tmp", process_id()))
    }

    /// A fresh temp path in the pool's `tmp/` for a writer that hashes by itself (an
    /// async download); hand the result to [`Pool::adopt`].
    pub fn new_tmp_path(&self) -> PathBuf {
        self.tmp_path()
    }

    /// A stable temp path for a resumable download identified by `key` (letters,
    /// digits, `-`, `_`, `.`; anything else is replaced).
    pub fn partial_path(&self, key: &str) -> PathBuf {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join(TMP_DIR).join(format!("partial-{safe}"))
    }

    /// Takes ownership of a temp file written and hashed by the caller.
    pub fn adopt(&self, tmp: PathBuf, sha256: String, size: u64) -> Staged {
        Staged {
            tmp: Some(tmp),
            sha256,
            size,
        }
    }

    /// Stages the file at `src` (hashing while copying).
    pub fn stage_file(&self, src: &Path) -> Result<Staged, PoolError> {
        let mut f = File::open(src).map_err(io_err(src))?;
        self.stage_reader(&mut f)
    }

    /// Stages `bytes`.
    pub fn stage_bytes(&self, bytes: &[u8]) -> Result<Staged, PoolError> {
        self.stage_reader(&mut &bytes[..])
    }

    /// Makes every staged blob durable under its final name (see the module docs).
    pub fn commit(&self, staged: Vec<Staged>) -> Result<(), PoolError> {
        if staged.is_empty() {
            return Ok(());
        }
        self.syncfs()?;
        // Directory creation and renames dominate a large commit; spread them over the
        // cores, each thread taking whole top-level buckets (fewer shared directory locks).
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let moved = if staged.len() < PARALLEL_COMMIT || threads == 1 {
            self.place(staged)?
        } else {
            let mut parts: Vec<Vec<Staged>> = (0..threads).map(|_| Vec::new()).collect();
            for s in staged {
                let bucket = u8::from_str_radix(s.sha256.get(..2).unwrap_or("00"), 16).unwrap_or(0);
                parts[bucket as usize % threads].push(s);
            }
            std::thread::scope(|scope| {
                let handles: Vec<_> = parts
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .map(|part| scope.spawn(move || self.place(part)))
                    .collect();
                let mut moved = false;
                for h in handles {
                    moved |= h.join().map_err(|_| {
                        io_err(&self.root)(io::Error::other("a commit thread panicked"))
                    })??;
                }
                Ok::<bool, PoolError>(moved)
            })?
        };
        if moved {
            self.syncfs()?;
        }
        Ok(())
    }

    /// Renames staged blobs to their final names; true if any was moved.
    fn place(&self, staged: Vec<Staged>) -> Result<bool, PoolError> {
        let mut moved = false;
        for mut s in staged {
            let Some(tmp) = s.tmp.take() else { continue };
            let dest = self.path_of(&s.sha256);
            // One system call when the bucket exists (made ahead by a BucketMaker or
            // by an earlier blob) and the blob does not.
            let placed = match rename_noreplace(&tmp, &dest) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
                    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                    rename_noreplace(&tmp, &dest)
                }
                r => r,
            };
            match placed {
                Ok(()) => moved = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Stored already, or a damaged copy of the same size that only a
                    // re-hash would tell apart: the staged bytes were hashed to this
                    // address, so they replace it either way (atomically; a reader
                    // holding the old file keeps it).
                    fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
                    moved = true;
                }
                Err(e) => return Err(io_err(&dest)(e)),
            }
        }
        Ok(moved)
    }

    /// A thread that creates the bucket directories of blobs about to be staged (see
    /// [`BucketMaker`]).
    pub fn bucket_maker(&self) -> BucketMaker {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let pool = self.clone();
        let spawned = std::thread::Builder::new()
            .name("pool-buckets".into())
            .spawn(move || {
                for sha256 in rx {
                    if let Some(dir) = pool.path_of(&sha256).parent() {
                        // A failure here shows again, with its path, when the commit
                        // creates what is missing.
                        let _ = fs::create_dir_all(dir);
                    }
                }
            });
        BucketMaker {
            tx: spawned.is_ok().then_some(tx),
        }
    }

    /// A thread that writes staged blobs (see [`Stager`]). Before its first temp file
    /// in a bucket it notes the bucket in a journal in `tmp/` named after this process,
    /// so that, should the process die, the next one to open the pool finds and removes
    /// its leftovers without walking every bucket (see [`Pool::open`]).
    pub fn stager(&self) -> Result<Stager, PoolError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(PathBuf, Vec<u8>)>(STAGER_QUEUE);
        let journal = self.journal_path();
        let root = self.root.clone();
        let path = journal.clone();
        let worker = std::thread::Builder::new()
            .name("pool-stager".into())
            .spawn(move || {
                let mut failed = None;
                let mut noted = stager::Journal::new(path);
                for (tmp, bytes) in rx {
                    // After a failure the rest is drained unwritten: the sync fails.
                    if failed.is_none() {
                        let written = noted
                            .note(&root, &tmp)
                            .and_then(|()| write_in_bucket(&tmp, &bytes).map_err(io_err(&tmp)));
                        if let Err(e) = written {
                            failed = Some(e);
                        }
                    }
                }
                failed.map_or(Ok(()), Err)
            })
            .map_err(io_err(&self.root))?;
        Ok(Stager {
            tx: Some(tx),
            worker: Some(worker),
            journal,
        })
    }

    fn journal_path(&self) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(TMP_DIR)
            .join(format!("{}-{n}-buckets.tmp", process_id()))
    }

    /// [`Pool::commit`] on the blocking thread pool, for async callers.
    pub async fn commit_async(&self, staged: Vec<Staged>) -> Result<(), PoolError> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.commit(staged))
            .await
            .map_err(|e| PoolError::Task {
                what: "committing blobs to the pool",
                message: e.to_string(),
            })?
    }

    /// Flushes the pool's filesystem (data and directory entries).
    fn syncfs(&self) -> Result<(), PoolError> {
        let dir = File::open(&self.root).map_err(io_err(&self.root))?;
        // SAFETY: syncfs takes a valid open file descriptor, which `dir` owns.
        let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
        if rc != 0 {
            return Err(io_err(&self.root)(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Re-hashes the blob `sha256`.
    pub fn verify(&self, sha256: &str) -> Result<BlobState, PoolError> {
        if !is_sha256(sha256) {
            return Err(PoolError::BadAddress(sha256.to_string()));
        }
        let path = self.path_of(sha256);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobState::Missing),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut hasher = Sha256::new();
        with_buffer(|buf| {
            loop {
                let n = f.read(buf).map_err(io_err(&path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Ok(())
        })?;
        let actual = hex::encode(hasher.finalize());
        Ok(if actual == sha256 {
            BlobState::Ok
        } else {
            BlobState::Corrupt { actual }
        })
    }

    fn remove_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join(TMP_DIR)) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !is_stale_temp(&path) {
                continue;
            }
            if stager::is_journal(&path) {
                self.remove_journaled_temps(&path);
            }
            let _ = fs::remove_file(path);
        }
    }

    /// Removes the temp files a dead writer left in the buckets its journal names.
    fn remove_journaled_temps(&self, journal: &Path) {
        let Ok(text) = fs::read_to_string(journal) else {
            return;
        };
        let mut removed = 0usize;
        for bucket in text.lines().filter(|l| stager::is_bucket_name(l)) {
            let Ok(entries) = fs::read_dir(self.root.join(bucket)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                if is_temp_name(&name.to_string_lossy())
                    && is_stale_temp(&e.path())
                    && fs::remove_file(e.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::info!("removed {removed} temp file(s) an interrupted writer left in the pool");
        }
    }
}

/// Runs `f` with this thread's copy buffer (allocated once per thread: a fresh large
/// buffer per file costs an mmap, page faults and an munmap each time).
fn with_buffer<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
    }
    BUF.with(|b| f(&mut b.borrow_mut()))
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then). Where the file
/// system cannot do that in one call, checks first (only the pool writes there).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
    };
    let (cfrom, cto) = (c(from)?, c(to)?);
    // SAFETY: both arguments are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cfrom.as_ptr(),
            libc::AT_FDCWD,
            cto.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        if to.symlink_metadata().is_ok() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        return fs::rename(from, to);
    }
    Err(e)
}

fn sync_dir(dir: &Path) -> Result<(), PoolError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
pub(crate) mod tests;
