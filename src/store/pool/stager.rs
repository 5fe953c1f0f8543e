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
/// crashed writer's, and garbage collection removes them when they are old.
#[derive(Debug)]
pub struct Stager {
    pub(super) tx: Option<std::sync::mpsc::SyncSender<(PathBuf, Vec<u8>)>>,
    pub(super) worker: Option<std::thread::JoinHandle<Result<(), PoolError>>>,
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
    /// if any write failed.
    pub fn finish(mut self) -> Result<(), PoolError> {
        self.tx = None;
        match self.worker.take() {
            Some(worker) => worker.join().unwrap_or_else(|_| {
                Err(PoolError::Io {
                    path: PathBuf::from(TMP_DIR),
                    source: io::Error::other("the pool's writer thread panicked"),
                })
            }),
            None => Ok(()),
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
