//! Importing local `.rpm` files into a local repository.
//!
//! Files are hashed while being copied into the pool and their headers parsed, on all
//! cores. The batch's blobs are made durable together, then the catalog rows are
//! committed, then the repository's content and its `latest` publication switch in
//! one transaction. A file that is not a valid package is reported with its path and
//! the reason, and skipped; the rest of the batch lands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::app::config::GpgCheck;
use crate::app::ingest::{self, IngestError};
pub use crate::app::progress::Progress;
use crate::app::publish::{self, Format, PublishError, Published};
use crate::domain::package::Package;
use crate::formats::openpgp::{self, HeaderVerdict, Keyring, PgpError};
use crate::formats::repodata::packed::{self, Packed};
use crate::formats::repodata::xml;
use crate::formats::rpmcheck;
use crate::formats::rpmread::{self, FileFacts};
use crate::store::catalog::{Catalog, CatalogError, PackageSignature, PackageWriter, Placed};
use crate::store::datadir::DataDir;
use crate::store::pool::{Pool, PoolError, Staged};

/// Errors that stop a whole import (per-file problems are reported, not raised).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The reader threads ended abnormally (a panic).
    #[error("reading the files: {0}")]
    Task(String),
    #[error("taking the pool lease: {0}")]
    Lease(#[source] std::io::Error),
}

/// A file that was not imported, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// A file of an import that a later file of the same import superseded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Superseded {
    pub path: PathBuf,
    pub by: PathBuf,
    pub location: String,
}

/// A package that took the place of another with the same file name.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replaced {
    pub location: String,
    pub old_sha256: String,
    pub new_sha256: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ImportReport {
    /// NEVRAs newly placed in the repository.
    pub added: Vec<String>,
    /// Files whose exact bytes the repository already held.
    pub unchanged: usize,
    pub replaced: Vec<Replaced>,
    pub skipped: Vec<Skipped>,
    /// Files whose name a later file of the same import took (with other content):
    /// the later file was used, by the rule that the last file given for a name wins.
    pub superseded: Vec<Superseded>,
    /// Files imported under `gpgcheck = "warn"` that are unsigned or not signed by a
    /// key of the repository, and why.
    pub untrusted: Vec<Skipped>,
    pub published: Option<Published>,
}

/// The repository an import goes into: its id, how its metadata is rendered, and
/// how its packages' signatures are checked.
#[derive(Debug, Clone, Copy)]
pub struct Into<'a> {
    pub repo: &'a str,
    pub format: &'a Format,
    pub trust: &'a Trust,
}

impl Trust {
    /// No signature checks (signers are still recorded).
    pub fn off() -> Trust {
        Trust {
            mode: GpgCheck::Off,
            keyring: Keyring::default(),
        }
    }
}

/// How an import treats the packages' header signatures: the repository's keys and
/// the `gpgcheck` in force (the repository's, or `--gpgcheck`).
#[derive(Debug, Clone)]
pub struct Trust {
    pub mode: GpgCheck,
    pub keyring: Keyring,
}

impl Trust {
    /// The signature recorded for a package whose head is `head` (the first bytes of
    /// the file; `file` is read when the header is longer), and, unless the mode is
    /// "off", why it is not trusted (unsigned, or not signed by one of the keys).
    fn judge(
        &self,
        head: &[u8],
        file: &Path,
    ) -> Result<(Option<PackageSignature>, Option<String>), String> {
        let parsed = match rpmcheck::header_signature(&mut std::io::Cursor::new(head)) {
            Ok(h) => h,
            Err(_) => {
                let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
                rpmcheck::header_signature(&mut std::io::BufReader::new(f))
                    .map_err(|e| e.to_string())?
            }
        };
        let checking = self.mode != GpgCheck::Off;
        let verdict = openpgp::check_header(&parsed, checking.then_some(&self.keyring));
        let (signature, problem) = match verdict {
            HeaderVerdict::Signed(info) => (
                Some(PackageSignature {
                    sha256: String::new(),
                    key_id: Some(info.key_id),
                    algorithm: info.algorithm,
                }),
                None,
            ),
            HeaderVerdict::Unsigned => (
                Some(PackageSignature {
                    sha256: String::new(),
                    key_id: None,
                    algorithm: "none".into(),
                }),
                Some("unsigned".to_string()),
            ),
            HeaderVerdict::Bad(e) => {
                let claimed = match &e {
                    PgpError::UnknownKey { found, .. } => Some(found.clone()),
                    PgpError::Mismatch { key, .. } => Some(key.clone()),
                    _ => None,
                };
                (
                    claimed.map(|key_id| PackageSignature {
                        sha256: String::new(),
                        key_id: Some(key_id),
                        algorithm: "unverified".into(),
                    }),
                    Some(e.to_string()),
                )
            }
        };
        match (problem, self.mode) {
            (_, GpgCheck::Off) | (None, _) => Ok((signature, None)),
            (Some(p), GpgCheck::Warn) => Ok((signature, Some(p))),
            (Some(p), GpgCheck::Require) => Err(format!(
                "not signed by a key of this repository ({}): {p} (import with --gpgcheck warn to accept it anyway)",
                self.keyring.key_ids().join(", ")
            )),
        }
    }
}

/// Expands files and directories (recursively, `*.rpm` only inside directories).
/// Paths that do not exist are reported as skipped.
pub fn collect_files(paths: &[PathBuf], skipped: &mut Vec<Skipped>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .follow_links(true)
                .into_iter()
                .filter_map(|e| match e {
                    Ok(e) => Some(e),
                    Err(err) => {
                        skipped.push(Skipped {
                            path: err
                                .path()
                                .map(Path::to_path_buf)
                                .unwrap_or_else(|| p.clone()),
                            reason: err.to_string(),
                        });
                        None
                    }
                })
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            skipped.push(Skipped {
                path: p.clone(),
                reason: "no such file or directory".into(),
            });
        }
    }
    out
}

struct Read {
    /// The file it was read from (set once read).
    path: PathBuf,
    /// `None` when the pool already holds these exact bytes.
    staged: Option<Staged>,
    size: u64,
    package: Package,
    fragments: Packed,
    /// Its header signature as read (`None` when unreadable).
    signature: Option<PackageSignature>,
    /// Under `gpgcheck = "warn"`: why it is not trusted.
    untrusted: Option<String>,
}

/// Files up to this size are read into memory once: hashed, checked against the pool
/// (bytes the pool already holds are not written again) and parsed from memory.
/// Larger files are hashed while being copied into the pool, and their headers parsed
/// from the first [`HEAD_KEEP`] bytes (or, for bigger headers, the staged copy).
const HEAD_KEEP: usize = 4 * 1024 * 1024;

/// A reader that keeps the first bytes it passes on and checks the package's
/// structure and digests as they pass.
struct Tee<R> {
    inner: R,
    head: Vec<u8>,
    check: rpmcheck::Checker,
}

impl<R: std::io::Read> std::io::Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let room = HEAD_KEEP.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..room]);
        self.check.update(&buf[..n]);
        Ok(n)
    }
}

/// Why one file was not read: its own fault (reported, the import goes on), or the
/// pool's (a full disk: the whole import stops, since every other file would fail
/// the same way).
enum Failure {
    File(String),
    Pool(PoolError),
}

impl From<String> for Failure {
    fn from(reason: String) -> Failure {
        Failure::File(reason)
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Failure {
        Failure::Pool(e)
    }
}

/// [`read_one`], with a panic in a package reader (a malformed header can make a
/// parser panic) turned into this file's error: the rest of the batch goes on.
fn read_one_guarded(pool: &Pool, path: &Path, trust: &Trust) -> Result<Read, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_one(pool, path, trust)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(Failure::File(format!(
                "the package reader failed on this file ({what}): the file is damaged"
            )))
        })
}

fn read_one(pool: &Pool, path: &Path, trust: &Trust) -> Result<Read, Failure> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // Parse the bytes that were hashed, not the source (which could change meanwhile).
    let (staged, facts, meta, (signature, untrusted)) = if meta.len() <= HEAD_KEEP as u64 {
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        rpmcheck::check_bytes(&bytes).map_err(|e| e.to_string())?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let size = bytes.len() as u64;
        // A damaged copy in the pool is not reused: these bytes replace it.
        let staged = if pool.holds_exactly(&sha256, &bytes) {
            None
        } else {
            Some(pool.stage_bytes(&bytes)?)
        };
        let parsed = rpm::PackageMetadata::parse(&mut std::io::Cursor::new(&bytes))
            .map_err(|e| rpmread::RpmError::Parse(e).to_string())?;
        let judged = trust.judge(&bytes, path)?;
        (
            staged,
            FileFacts {
                sha256,
                size,
                mtime,
            },
            parsed,
            judged,
        )
    } else {
        let mut tee = Tee {
            inner: file,
            head: Vec::new(),
            check: rpmcheck::Checker::new(),
        };
        let staged = match pool.stage_reader(&mut tee) {
            Ok(staged) => staged,
            // An error reading the source is the file's; writing the pool, the pool's.
            Err(e @ PoolError::NoSpace { .. }) => return Err(Failure::Pool(e)),
            Err(e) => return Err(Failure::File(e.to_string())),
        };
        std::mem::take(&mut tee.check)
            .finish()
            .map_err(|e| e.to_string())?;
        let facts = FileFacts {
            sha256: staged.sha256.clone(),
            size: staged.size,
            mtime,
        };
        let parsed = match rpm::PackageMetadata::parse(&mut std::io::Cursor::new(&tee.head)) {
            Ok(meta) => meta,
            Err(_) if tee.head.len() == HEAD_KEEP => {
                let staged_path = staged
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| path.to_path_buf());
                rpmread::read_metadata(&staged_path).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(rpmread::RpmError::Parse(e).to_string().into()),
        };
        let staged_path = staged
            .path()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| path.to_path_buf());
        let judged = trust.judge(&tee.head, &staged_path)?;
        (Some(staged), facts, parsed, judged)
    };
    let package = rpmread::package_from_metadata(&meta, &facts, rpmread::DEFAULT_CHANGELOG_LIMIT)
        .map_err(|e| e.to_string())?;
    let fragments = packed::pack(&xml::render(&package))
        .map_err(|e| format!("compressing its metadata: {e}"))?;
    let signature = signature.map(|s| PackageSignature {
        sha256: package.pkgid.clone(),
        ..s
    });
    Ok(Read {
        path: path.to_path_buf(),
        staged,
        size: facts.size,
        package,
        fragments,
        signature,
        untrusted,
    })
}

/// Reads all `files` on all cores. Returns the readable ones in input order; a pool
/// failure (a full disk) stops every reader and is returned instead.
fn read_all(
    pool: &Pool,
    trust: &Trust,
    files: &[PathBuf],
    skipped: &mut Vec<Skipped>,
    progress: &Progress,
) -> Result<Vec<Read>, PoolError> {
    let slots: Vec<Mutex<Option<Result<Read, String>>>> =
        files.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let halted: Mutex<Option<PoolError>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if halted.lock().map_or(true, |h| h.is_some()) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let r = match read_one_guarded(pool, path, trust) {
                    Ok(read) => Ok(read),
                    Err(Failure::File(reason)) => Err(reason),
                    Err(Failure::Pool(e)) => {
                        if let Ok(mut h) = halted.lock() {
                            h.get_or_insert(e);
                        }
                        break;
                    }
                };
                if let Ok(read) = &r {
                    progress.bytes.fetch_add(read.size, Ordering::Relaxed);
                }
                progress.done.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    if let Some(e) = halted.into_inner().ok().flatten() {
        // The files read so far are dropped with their temp files.
        return Err(e);
    }
    let mut out = Vec::with_capacity(files.len());
    for (path, slot) in files.iter().zip(slots) {
        match slot.into_inner().ok().flatten() {
            Some(Ok(r)) => out.push(r),
            Some(Err(reason)) => {
                tracing::warn!("skipped {}: {reason}", path.display());
                skipped.push(Skipped {
                    path: path.clone(),
                    reason,
                })
            }
            None => skipped.push(Skipped {
                path: path.clone(),
                reason: "reader thread failed".into(),
            }),
        }
    }
    Ok(out)
}

/// A package of this import, as the placement and the report need it once its rows
/// are written (its dependencies, files and changelogs are in the catalog by then).
struct Imported {
    path: PathBuf,
    location: String,
    sha256: String,
    nevra: String,
    time_file: i64,
}

/// The files of one import by location: the last file given for a location wins.
struct Batch<'a> {
    by_location: HashMap<&'a str, &'a Imported>,
    /// Locations in the order their first file was given.
    order: Vec<&'a str>,
    /// Files whose location a later file of this import (with other content) took:
    /// (the earlier file, the later one, the location).
    superseded: Vec<(PathBuf, PathBuf, String)>,
}

impl<'a> Batch<'a> {
    /// The packages of one import, in the order their files were given.
    fn of(imported: &'a [Imported]) -> Batch<'a> {
        let mut batch = Batch {
            by_location: HashMap::new(),
            order: Vec::new(),
            superseded: Vec::new(),
        };
        for item in imported {
            let loc = item.location.as_str();
            match batch.by_location.insert(loc, item) {
                None => batch.order.push(loc),
                Some(prev) if prev.sha256 != item.sha256 => {
                    batch
                        .superseded
                        .push((prev.path.clone(), item.path.clone(), loc.to_string()));
                }
                Some(_) => {}
            }
        }
        batch
    }

    /// What changes against `current`: the placements (location → package id) and, in
    /// `report`, what was added, replaced or already there.
    fn placements(
        &self,
        current: &HashMap<String, String>,
        ids: &HashMap<String, i64>,
        report: &mut ImportReport,
    ) -> Result<Vec<(String, i64)>, ImportError> {
        let new = self
            .order
            .iter()
            .map(|loc| (*loc, self.by_location[loc].sha256.as_str()));
        let comparison = ingest::compare(current, new);
        report.unchanged = comparison.unchanged;
        let id_of = |p: &Imported| {
            ids.get(&p.sha256)
                .copied()
                .ok_or_else(|| ImportError::Task(format!("package {} has no row", p.sha256)))
        };
        let mut placements = Vec::new();
        for (loc, old) in comparison.replaced {
            let p = self.by_location[loc.as_str()];
            tracing::info!(
                "{} replaces the package at {loc} ({} → {})",
                p.nevra,
                &old[..12.min(old.len())],
                &p.sha256[..12]
            );
            report.replaced.push(Replaced {
                location: loc.clone(),
                old_sha256: old,
                new_sha256: p.sha256.clone(),
            });
            placements.push((loc, id_of(p)?));
        }
        // A file whose name a later file of this import took (with other content)
        // was not placed: it replaced nothing, and is reported as superseded.
        for (earlier, later, loc) in &self.superseded {
            report.superseded.push(Superseded {
                path: earlier.clone(),
                by: later.clone(),
                location: loc.clone(),
            });
        }
        for loc in comparison.added {
            let p = self.by_location[loc.as_str()];
            report.added.push(p.nevra.clone());
            placements.push((loc, id_of(p)?));
        }
        Ok(placements)
    }
}

/// How many files are read, staged and written to the catalog at a time: memory holds
/// a few batches of whole packages, whatever the number of files.
const BATCH: usize = 256;

/// One batch of files read: the readable ones in input order, and the skipped ones.
type ReadBatch = (Vec<Read>, Vec<Skipped>);

/// Reads and stages `files` on all cores, [`BATCH`] at a time, sending each batch to
/// `tx`. A pool failure (a full disk) stops the reading and is returned.
fn read_batches(
    pool: &Pool,
    trust: &Trust,
    files: &[PathBuf],
    progress: &Progress,
    tx: &tokio::sync::mpsc::Sender<ReadBatch>,
) -> Result<(), PoolError> {
    for chunk in files.chunks(BATCH) {
        let mut skipped = Vec::new();
        let reads = read_all(pool, trust, chunk, &mut skipped, progress)?;
        if tx.blocking_send((reads, skipped)).is_err() {
            // The writer failed, and says why.
            return Ok(());
        }
    }
    Ok(())
}

/// What the batches of an import left for the placement: the packages read, their
/// signatures, and the blobs new to the pool.
#[derive(Default)]
struct Recorded {
    imported: Vec<Imported>,
    signatures: Vec<PackageSignature>,
    new_blobs: Vec<String>,
}

/// Reads, stages and writes the rows of `files`, a batch at a time: while the next
/// batch is read, each batch's blobs become durable and then its rows commit.
async fn record_files(
    pool: &Pool,
    trust: &Trust,
    files: Vec<PathBuf>,
    progress: Arc<Progress>,
    writer: &mut PackageWriter<'_>,
    recorded: &mut Recorded,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ReadBatch>(1);
    let reading = {
        let pool = pool.clone();
        let trust = trust.clone();
        tokio::task::spawn_blocking(move || read_batches(&pool, &trust, &files, &progress, &tx))
    };
    while let Some((reads, skipped)) = rx.recv().await {
        report.skipped.extend(skipped);
        let mut staged = Vec::with_capacity(reads.len());
        let mut packages = Vec::with_capacity(reads.len());
        for r in reads {
            if let Some(reason) = r.untrusted {
                tracing::warn!("{}: {reason}", r.path.display());
                report.untrusted.push(Skipped {
                    path: r.path.clone(),
                    reason,
                });
            }
            if let Some(s) = r.staged {
                if !pool.contains(&s.sha256) {
                    recorded.new_blobs.push(s.sha256.clone());
                }
                staged.push(s);
            }
            recorded.signatures.extend(r.signature);
            recorded.imported.push(Imported {
                path: r.path,
                location: r.package.location(),
                sha256: r.package.pkgid.clone(),
                nevra: r.package.nevra(),
                time_file: r.package.time_file,
            });
            packages.push((r.package, r.fragments));
        }
        // The batch's rows commit once its blobs are durable (the next batch is read
        // meanwhile).
        pool.commit_async(staged).await?;
        writer.write(&packages).await?;
    }
    reading
        .await
        .map_err(|e| ImportError::Task(e.to_string()))??;
    Ok(())
}

/// Imports `paths` into repository `repo` and republishes its `latest`, through the
/// ingest protocol ([`crate::app::ingest`]).
pub async fn import(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    into: &Into<'_>,
    paths: &[PathBuf],
    progress: Arc<Progress>,
) -> Result<ImportReport, ImportError> {
    let Into {
        repo,
        format,
        trust,
    } = *into;
    let mut report = ImportReport::default();
    let started = std::time::Instant::now();
    let phase = |what: &str| tracing::debug!("{what} at {:.3} s", started.elapsed().as_secs_f64());
    // From the first blob until the content is placed, gc keeps out.
    let lease = datadir
        .lease_pool_async()
        .await
        .map_err(ImportError::Lease)?;
    let files = collect_files(paths, &mut report.skipped);
    progress.total.store(files.len(), Ordering::Relaxed);
    let mut writer = catalog.package_writer();
    let mut recorded = Recorded::default();
    let shown = Arc::clone(&progress);
    let recorded_files = record_files(
        pool,
        trust,
        files,
        progress,
        &mut writer,
        &mut recorded,
        &mut report,
    )
    .await;
    phase("read, staged and written");
    let placed = match recorded_files {
        Ok(()) => {
            shown.set_closing_stage(format!("{repo}: publishing"));
            place(
                catalog,
                pool,
                datadir,
                repo,
                format,
                writer.ids(),
                &recorded,
                &mut report,
            )
            .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = placed {
        // The batches committed before the failure are taken back with their blobs.
        ingest::release_new_blobs(
            catalog,
            pool,
            datadir,
            lease,
            &recorded.new_blobs,
            writer.written(),
        )
        .await;
        return Err(e);
    }
    Ok(report)
}

/// The ingest protocol for the files recorded: commit, compare, publish, place.
#[allow(clippy::too_many_arguments)]
async fn place(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    repo: &str,
    format: &Format,
    ids: &HashMap<String, i64>,
    recorded: &Recorded,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let started = std::time::Instant::now();
    let phase = |what: &str| tracing::debug!("{what} at {:.3} s", started.elapsed().as_secs_f64());
    catalog.record_signatures(&recorded.signatures).await?;
    phase("signatures recorded");

    let locked = ingest::lock(catalog, datadir, repo).await?;
    let current = locked.current().await?;
    let batch = Batch::of(&recorded.imported);
    let placements = batch.placements(&current, ids, report)?;
    let has_latest = catalog
        .repo(repo)
        .await?
        .is_some_and(|r| r.latest_publication_id.is_some());
    if placements.is_empty() && has_latest {
        return Ok(());
    }
    // The new content = current content with the placements applied.
    let mut items: Vec<Placed> = catalog.repo_placed(locked.repo_id).await?;
    let placed: HashMap<&str, i64> = placements.iter().map(|(l, id)| (l.as_str(), *id)).collect();
    items.retain(|i| !placed.contains_key(i.location.as_str()));
    for (loc, id) in &placed {
        let p = batch.by_location[loc];
        items.push(Placed {
            package_id: *id,
            sha256: p.sha256.clone(),
            location: (*loc).to_string(),
            time_file: p.time_file,
        });
    }
    let extras = catalog.repo_extras(locked.repo_id).await?;
    let published = publish::publish_set(catalog, pool, items, format, &extras, false).await?;
    phase("published");
    ingest::check_blobs(
        pool,
        placed.keys().map(|l| batch.by_location[l].sha256.as_str()),
    )?;
    locked.merge(&placements, published.publication_id).await?;
    phase("placed");
    report.published = Some(published);
    Ok(())
}
