//! Writers that run beside a batch: the stager thread that writes small verified
//! downloads beside their final names, and the bucket maker that creates `ab/cd`
//! directories on an idle core while metadata is parsed.

use super::*;

/// Creates, on a thread of its own, the bucket directories (`ab/cd/`) of blobs that are
/// about to be staged, so that committing them is a single rename each. A sync feeds it
/// upstream's sha256 checksums while it parses the metadata, which leaves a core idle.
/// Directories made for blobs that never arrive stay empty, which is harmless; anything
/// the thread did not get to, the commit creates itself.
#[derive(Debug)]
pub struct BucketMaker {
    pub(super) tx: Option<std::sync::mpsc::Sender<String>>,
}

impl BucketMaker {
    /// Queues the bucket of `sha256` (anything that is not a sha256 is ignored).
    pub fn add(&self, sha256: &str) {
        if let Some(tx) = &self.tx {
            if is_sha256(sha256) {
                // Fails only if the thread is gone; the commit then makes the bucket.
                let _ = tx.send(sha256.to_string());
            }
        }
    }
}

/// Writes staged blobs on a thread of its own, in the order they were queued. A sync
/// hands it each small download as soon as it is verified, instead of a blocking-pool
/// task per package: the network side never waits for the disk, and a many-package
/// sync saves two thread hand-offs per package. The queue is bounded ([`STAGER_QUEUE`]
/// blobs), so a slow disk holds back the downloads rather than filling memory.
///
/// A [`Staged`] it returns names a file that exists only once [`Stager::finish`]
/// returned `Ok`; commit nothing before that. A stager dropped without `finish` (a
/// cancelled sync) still writes what was queued; those files are left over like a
/// crashed writer's, and the next process to open the pool removes them (its journal
/// says where), as garbage collection would.
#[derive(Debug)]
pub struct Stager {
    pub(super) tx: Option<std::sync::mpsc::SyncSender<(PathBuf, Vec<u8>)>>,
    pub(super) worker: Option<std::thread::JoinHandle<Result<(), PoolError>>>,
    /// The journal of the buckets its temp files went to (see [`Pool::stager`]).
    pub(super) journal: PathBuf,
}

/// The buckets a [`Stager`] wrote temp files into, noted in `tmp/<pid>-<n>-buckets.tmp`
/// before the first file in each.
pub(super) struct Journal {
    path: PathBuf,
    file: Option<File>,
    noted: std::collections::HashSet<String>,
}

impl Journal {
    pub(super) fn new(path: PathBuf) -> Journal {
        Journal {
            path,
            file: None,
            noted: Default::default(),
        }
    }

    /// Notes the bucket of `tmp` (`ab/cd`, relative to `root`) unless it already is.
    pub(super) fn note(&mut self, root: &Path, tmp: &Path) -> Result<(), PoolError> {
        let Some(bucket) = tmp
            .parent()
            .and_then(|d| d.strip_prefix(root).ok())
            .map(|d| d.to_string_lossy().into_owned())
        else {
            return Ok(());
        };
        if self.noted.contains(&bucket) {
            return Ok(());
        }
        if self.file.is_none() {
            let file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(io_err(&self.path))?;
            self.file = Some(file);
        }
        if let Some(file) = &mut self.file {
            file.write_all(format!("{bucket}\n").as_bytes())
                .map_err(io_err(&self.path))?;
        }
        self.noted.insert(bucket);
        Ok(())
    }
}

/// Is `path` a stager's journal?
pub(super) fn is_journal(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with("-buckets.tmp"))
}

/// Is `line` a bucket's relative path (`ab/cd`, lowercase hex)? A journal is only
/// trusted that far.
pub(super) fn is_bucket_name(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() == 5
        && b[2] == b'/'
        && [b[0], b[1], b[3], b[4]]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

impl Stager {
    /// Queues `bytes`, whose sha256 the caller has just computed over these very bytes,
    /// for writing. Blocks while the queue is full.
    pub fn stage_hashed(
        &self,
        pool: &Pool,
        bytes: Vec<u8>,
        sha256: String,
    ) -> Result<Staged, PoolError> {
        if !is_sha256(&sha256) {
            return Err(PoolError::BadAddress(sha256));
        }
        let tmp = pool.temp_beside(&sha256);
        let size = bytes.len() as u64;
        let gone = || io_err(&pool.root)(io::Error::other("the pool's writer thread stopped"));
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send((tmp.clone(), bytes)).map_err(|_| gone())?;
        Ok(Staged {
            tmp: Some(tmp),
            sha256,
            size,
        })
    }

    /// Waits until everything queued is written; the first failure (naming its file)
    /// if any write failed. The [`StagedJournal`] it returns is to be discarded once
    /// every blob staged is committed or dropped.
    pub fn finish(mut self) -> Result<StagedJournal, PoolError> {
        self.tx = None;
        let journal = StagedJournal {
            path: std::mem::take(&mut self.journal),
        };
        if let Some(worker) = self.worker.take() {
            worker.join().unwrap_or_else(|_| {
                Err(PoolError::Io {
                    path: PathBuf::from(TMP_DIR),
                    source: io::Error::other("the pool's writer thread panicked"),
                })
            })?;
        }
        Ok(journal)
    }
}

/// The journal of a finished [`Stager`]. Kept (not removed on drop) until
/// [`StagedJournal::discard`]: if the process dies before its blobs are committed, the
/// next process to open the pool removes the leftovers it names.
#[derive(Debug)]
#[must_use = "discard the journal once the staged blobs are committed"]
pub struct StagedJournal {
    path: PathBuf,
}

impl StagedJournal {
    /// Removes the journal: every blob it covers is committed or gone.
    pub fn discard(self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes a new file in a bucket, making the bucket if it is not there yet.
pub(super) fn write_in_bucket(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match fs::write(path, bytes) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(path, bytes)
        }
        r => r,
    }
}
