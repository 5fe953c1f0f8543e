//! Mirroring an upstream yum/dnf repository (`cairn repo sync`).
//!
//! A sync fetches `repodata/repomd.xml`; if its bytes equal those of the last successful
//! sync, nothing else happens. Otherwise it fetches primary, filelists and other,
//! verifies each against repomd's checksum, reads them as a stream in lockstep, applies
//! the repository's filters, and downloads the packages the pool does not already hold
//! (in parallel, with retries, verified against upstream's checksum and size; the pool
//! always stores by sha256). The catalog is filled from upstream's metadata, so RPMs are
//! never opened; the new content enters through the one ingest protocol
//! ([`crate::app::ingest`]), as an import's does.
//!
//! Every request, for metadata or a package, is tried up to three times when it fails
//! in a way that may pass ([`upstream::UpstreamError::retryable`]); the pauses between
//! attempts are 1 s and then 2 s. A 404, a checksum mismatch or an oversized body fails
//! at once.
//!
//! All or nothing: if any package fails, the sync names every failure, records it in
//! the sync history and leaves the repository's content and `latest` exactly as they
//! were. What was downloaded and verified stays in the pool, so the next run fetches
//! only what is missing.
//!
//! - [`upstream`]: HTTP, retries, digests, the error kinds; [`source`]: where a sync
//!   reads from (feed, mirrors, files) and [`SyncError`]: why it failed;
//! - [`records`]: the metadata files; [`filter`]: what the mirror keeps;
//! - [`download`]: packages into the pool; [`mirror`]: mirror mode's publication.

mod content;
pub mod download;
mod error;
pub mod filter;
pub mod mirror;
pub mod records;
pub mod source;
pub mod tree;
mod trust;
pub mod upstream;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use sha2::Digest;

use crate::app::config::{RepoConfig, RepoKind, SyncMode};
use crate::app::progress::Progress;
use crate::domain::status::RunStatus;
use crate::formats::openpgp::Keyring;
use crate::formats::repodata::parse::{self, Checksum, PrimaryStream, Repomd};
use crate::formats::repodata::updateinfo::Nevra;
use crate::store::catalog::{Catalog, SyncRun};
use crate::store::datadir::DataDir;
use crate::store::pool::Pool;
pub use error::SyncError;

/// Largest package accepted.
const MAX_PACKAGE: u64 = 64 * 1024 * 1024 * 1024;

/// What a sync did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    /// [`RunStatus::Ok`] or [`RunStatus::Unchanged`].
    pub status: RunStatus,
    pub packages: usize,
    pub added: usize,
    pub removed: usize,
    pub downloaded: usize,
    pub bytes: u64,
    /// What the sync accepted but an operator should know (weak upstream checksums).
    pub warnings: Vec<String>,
}

/// Syncs one mirrored repository, recording the run in the sync history.
pub async fn sync(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    repo: &RepoConfig,
    progress: &Progress,
) -> Result<SyncReport, SyncError> {
    let spec = repo
        .upstream()
        .ok_or_else(|| SyncError::NoFeed(repo.id.clone()))?;
    // One sync of a repository at a time; its content is replaced under the write lock,
    // taken only for that (see `datadir`).
    let locking = |source| SyncError::Lock {
        repo: repo.id.clone(),
        source,
    };
    let _sync_lock = match datadir.try_lock_sync(&repo.id).await.map_err(locking)? {
        Some(lock) => lock,
        None => {
            tracing::info!(
                "{}: another sync of it is running; waiting for it to end",
                repo.id
            );
            datadir.lock_sync_async(&repo.id).await.map_err(locking)?
        }
    };
    let repo_id = catalog.ensure_repo(&repo.id).await?;
    let interrupted = catalog.interrupt_sync_runs(repo_id).await?;
    if interrupted > 0 {
        tracing::warn!(
            "{}: {interrupted} earlier sync(s) ended without a result (killed?); recorded as failed",
            repo.id
        );
    }
    let mut run = SyncRun {
        id: catalog.start_sync_run(repo_id).await?,
        ..Default::default()
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + repo.deadline;
    let prepared = async {
        let keyring = Keyring::load(&repo.gpgkeys).map_err(|source| SyncError::Keys {
            repo: repo.id.clone(),
            source,
        })?;
        progress.set_stage(format!(
            "{}: reading {}",
            repo.id,
            crate::app::context::redact(spec.url())
        ));
        let (source, metalink) = tokio::select! {
            resolved = source::resolve(repo, &spec) => resolved?,
            _ = progress.stop.requested() => return Err(SyncError::Interrupted { kept: 0 }),
        };
        Ok((keyring, source, metalink))
    };
    let result = match prepared.await {
        Ok((keyring, source, metalink)) => {
            let cx = Cx {
                catalog,
                pool,
                datadir,
                repo,
                repo_id,
                base: source.base().to_string(),
                source,
                metalink,
                keyring,
                started,
                deadline,
            };
            cx.run(&mut run, progress).await
        }
        Err(e) => Err(e),
    };
    match &result {
        Ok(report) => run.status = report.status,
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
            e.count(&repo.id);
        }
    }
    catalog.finish_sync_run(&run).await?;
    result
}

/// In mirror mode, a location the server can serve under the same name.
fn servable(href: &str) -> Result<(), SyncError> {
    if href.contains('%') {
        return Err(SyncError::Unservable {
            href: href.to_string(),
        });
    }
    Ok(())
}

/// What one sync works with: the stores, the repository (config, catalog id, feed URL
/// ending in `/`) and when it started.
struct Cx<'a> {
    catalog: &'a Catalog,
    pool: &'a Pool,
    datadir: &'a DataDir,
    repo: &'a RepoConfig,
    repo_id: i64,
    /// The base URL files are named under (the first mirror's).
    base: String,
    /// Where files are read from.
    source: source::Source,
    /// What a metalink says repomd.xml must be (empty without one).
    metalink: Vec<crate::formats::mirrors::RepomdVersion>,
    /// The repository's `gpgkeys`.
    keyring: Keyring,
    started: Instant,
    /// When the sync stops as if interrupted (`deadline`).
    deadline: tokio::time::Instant,
}

/// An upstream package as primary.xml lists it: what a sync decides on before it reads
/// the package's whole metadata (dependencies, files, changelogs), which it does only
/// when the package enters the catalog ([`content`]).
#[derive(Debug, Clone)]
pub struct Listed {
    /// `<location href>` (a tree's: from the tree root).
    pub href: String,
    /// Where the package is published: `href` in mirror mode (upstream's metadata
    /// names it so), `Packages/<letter>/<file name>` otherwise.
    pub location: String,
    /// Upstream's checksum of the package file.
    pub checksum: Checksum,
    pub size: u64,
    pub nevra: Nevra,
    pub time_file: i64,
    /// Which of [`Upstream::lists`] lists it, and where (0 for the first package).
    pub list: usize,
    pub position: usize,
}

/// Upstream's packages after the filters: the listed entries (in upstream's order),
/// which entry each published location holds (the later upstream entry wins), and the
/// package lists they were read from, read again when the packages enter the catalog.
struct Upstream {
    entries: Vec<Listed>,
    by_location: HashMap<String, usize>,
    /// Upstream's packages the filters (arch, include, exclude, keep_latest) left out.
    removed: HashSet<Nevra>,
    lists: Vec<PackageLists>,
}

/// One repository's package lists (primary, filelists, other), verified.
struct PackageLists {
    docs: [records::Fetched; 3],
}

/// The records a publication carries besides the packages'.
enum SideRecords {
    /// Regenerated repodata: comps, updateinfo, modules (open bytes) and the records
    /// carried unchanged.
    Extras(records::Carry),
    /// Mirror mode: every upstream metadata file (path, kind, bytes), and what
    /// regenerated metadata would carry of them (for views).
    Mirror(Vec<(String, String, Vec<u8>)>, records::Carry),
}

impl SideRecords {
    fn warnings(&self) -> &[String] {
        match self {
            SideRecords::Extras(carry) | SideRecords::Mirror(_, carry) => &carry.warnings,
        }
    }
}

/// What the metadata phase found for the downloads and the ingest.
struct Found {
    /// What identifies upstream's state: repomd.xml's sha256 (a tree's: see `tree`).
    digest: String,
    up: Upstream,
    side: SideRecords,
    plan: Plan,
    warnings: Vec<String>,
    /// A tree's files besides its repositories' (images, `.treeinfo`, …).
    tree_files: Vec<tree::TreeFetch>,
}

/// The download plan: the sha256 of each entry the pool holds already, and the entries
/// to download.
struct Plan {
    known: HashMap<usize, String>,
    wanted: Vec<usize>,
    /// Entries left upstream until a client asks (policy on_demand or streamed): in
    /// `known` by upstream's sha256, not downloaded.
    remote: Vec<usize>,
}

impl Cx<'_> {
    fn phase(&self, what: &str) {
        tracing::debug!("{what} at {:.3} s", self.started.elapsed().as_secs_f64());
    }

    fn mirror(&self) -> bool {
        self.repo.mode() == SyncMode::Mirror
    }

    /// Completes when the sync must stop early: a stop was requested (Ctrl-C,
    /// SIGTERM) or its deadline passed.
    async fn halted(&self, progress: &Progress) {
        tokio::select! {
            _ = progress.stop.requested() => {}
            _ = tokio::time::sleep_until(self.deadline) => {}
        }
    }

    /// The error of a sync stopped early, keeping `kept` downloads.
    fn stopped(&self, progress: &Progress, kept: usize) -> SyncError {
        if !progress.stop.is_requested() && tokio::time::Instant::now() >= self.deadline {
            SyncError::Deadline {
                limit: self.repo.deadline,
                kept,
            }
        } else {
            SyncError::Interrupted { kept }
        }
    }

    /// The whole sync, step by step. Until the downloads start nothing is kept, so a
    /// stop or the deadline ends the metadata phase at once.
    async fn run(&self, run: &mut SyncRun, progress: &Progress) -> Result<SyncReport, SyncError> {
        let client = &self.source;
        let metadata = async {
            match self.repo.kind {
                RepoKind::Repo => self.repo_metadata(client, progress).await,
                RepoKind::Tree => self.tree_metadata(client, progress).await,
            }
        };
        let fetched = tokio::select! {
            fetched = metadata => fetched?,
            _ = self.halted(progress) => return Err(self.stopped(progress, 0)),
        };
        let Some(Found {
            digest,
            mut up,
            side,
            mut plan,
            warnings,
            tree_files,
        }) = fetched
        else {
            tracing::info!("{}: upstream unchanged", self.repo.id);
            return Ok(SyncReport {
                status: RunStatus::Unchanged,
                packages: self.catalog.repo_content(self.repo_id).await?.len(),
                ..Default::default()
            });
        };
        let (tree_staged, tree_refs, tree_journal) = self
            .download_tree_files(client, tree_files, run, progress)
            .await?;
        let (mut staged, journal) = match self
            .download(client, &up.entries, &mut plan, run, progress)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                // The tree's verified files are kept, as verified packages are.
                self.pool.commit_async(tree_staged).await?;
                tree_journal.discard();
                return Err(e);
            }
        };
        staged.extend(tree_staged);
        self.phase("downloads finished");
        let checked = match self.check_package_signatures(&up, &plan, &staged).await {
            Ok(checked) => checked,
            Err(e) => {
                // Verified downloads are kept, as when downloads fail.
                self.pool.commit_async(staged).await?;
                journal.discard();
                tree_journal.discard();
                self.remember_checksums(&up.entries, &plan.known).await?;
                return Err(e);
            }
        };
        let ingested = self
            .ingest(
                &mut up,
                plan,
                staged,
                checked.read,
                side,
                tree_refs,
                &digest,
                progress,
            )
            .await;
        // Every staged blob is now committed or removed.
        journal.discard();
        tree_journal.discard();
        let mut report = ingested?;
        report.warnings.extend(checked.warning);
        report.downloaded = run.packages_downloaded as usize;
        report.bytes = run.bytes_downloaded as u64;
        report.warnings.extend(warnings);
        run.packages_added = report.added as i64;
        run.packages_removed = report.removed as i64;
        Ok(report)
    }

    /// A repository's metadata phase: repomd.xml (nothing more when it is the one the
    /// current content came from), the package lists, the side records, the plan.
    async fn repo_metadata(
        &self,
        client: &source::Source,
        progress: &Progress,
    ) -> Result<Option<Found>, SyncError> {
        let repomd_url = upstream::join(&self.base, "repodata/repomd.xml");
        progress.set_stage(format!("{}: fetching {repomd_url}", self.repo.id));
        // With a metalink, a mirror whose repomd.xml is not one it lists is passed
        // over (behind, or tampered with).
        let repomd_bytes = client
            .fetch_checked(&repomd_url, records::MAX_REPOMD, |bytes| {
                source::metalink_check(&self.metalink, bytes)
            })
            .await
            .map_err(|source| SyncError::Upstream {
                url: repomd_url.clone(),
                source,
            })?;
        self.check_repomd_signature(client, &repomd_url, &repomd_bytes)
            .await?;
        let repomd_sha = hex::encode(sha2::Sha256::digest(&repomd_bytes));
        if self.unchanged(&repomd_sha).await? {
            return Ok(None);
        }
        let repomd = parse::parse_repomd(&repomd_bytes, &repomd_url)?;
        progress.set_stage(format!(
            "{}: fetching and reading the package lists (primary, filelists, other) of {}",
            self.repo.id, self.base
        ));
        let up = self
            .read_packages(client, &self.base, "", &repomd, &repomd_url)
            .await?;
        self.phase("metadata fetched and parsed");
        progress.set_stage(format!(
            "{}: fetching the other metadata (comps, updateinfo, modules) of {}",
            self.repo.id, self.base
        ));
        let side = self
            .fetch_side_records(client, &self.base, &repomd, &repomd_bytes, &up)
            .await?;
        self.phase("comps, updateinfo and modules fetched");
        progress.set_stage(format!(
            "{}: checking which packages the pool holds",
            self.repo.id
        ));
        let plan = self.plan_downloads(&up).await?;
        let mut warnings: Vec<String> = side.warnings().to_vec();
        warnings.extend(upstream::weak_checksums(
            &repomd,
            up.entries.iter().map(|e| e.checksum.algorithm.as_str()),
        ));
        for w in &warnings {
            tracing::warn!("{}: {w}", self.repo.id);
        }
        Ok(Some(Found {
            digest: repomd_sha,
            up,
            side,
            plan,
            warnings,
            tree_files: Vec::new(),
        }))
    }

    /// Is upstream's repomd.xml (a tree's digest) the one the current content came
    /// from?
    async fn unchanged(&self, repomd_sha: &str) -> Result<bool, SyncError> {
        let latest = self
            .catalog
            .repo(&self.repo.id)
            .await?
            .and_then(|r| r.latest_publication_id);
        let Some(latest) = latest else {
            return Ok(false);
        };
        if self.catalog.upstream_repomd(self.repo_id).await?.as_deref() != Some(repomd_sha) {
            return Ok(false);
        }
        // The catalog says nothing changed; the pool must still hold what it names. A
        // package or tree file lost since (deleted, or quarantined by `db verify
        // --repair`) makes this a full sync, which downloads what is missing.
        let content = self.catalog.repo_content(self.repo_id).await?;
        let files = self.catalog.publication_files(latest).await?;
        let pool = self.pool.clone();
        let missing = tokio::task::spawn_blocking(move || {
            content.iter().filter(|c| !pool.contains(&c.sha256)).count()
                + files.iter().filter(|f| !pool.contains(&f.sha256)).count()
        })
        .await
        .map_err(|e| SyncError::Task {
            what: "checking the pool",
            message: e.to_string(),
        })?;
        if missing > 0 {
            tracing::warn!(
                "{}: upstream unchanged, but {missing} file(s) of the current content are missing from the pool: fetching them again",
                self.repo.id
            );
        }
        Ok(missing == 0)
    }

    /// Fetches primary, filelists and other and parses them in lockstep, keeping what
    /// the filters allow.
    /// `base` is the repository's URL (ending in `/`) and `prefix` its directory in
    /// the published tree (`""` but for a tree's variants).
    async fn read_packages(
        &self,
        client: &source::Source,
        base: &str,
        prefix: &str,
        repomd: &Repomd,
        repomd_url: &str,
    ) -> Result<Upstream, SyncError> {
        let docs = records::fetch_package_records(client, base, repomd, repomd_url).await?;
        let filter = filter::Filter::new(self.repo)?;
        let mut entries: Vec<Listed> = Vec::new();
        let mut removed: HashSet<Nevra> = HashSet::new();
        {
            // The parse keeps one core busy: the other makes the pool's bucket
            // directories for the packages it will most likely download. A policy
            // that fetches packages when asked for downloads none now: making their
            // buckets (up to 65,536 directories) would only compete with the ingest.
            let immediate = self.repo.policy == crate::app::config::Policy::Immediate;
            let buckets = immediate.then(|| self.pool.bucket_maker());
            let mut stream = PrimaryStream::new(docs[0].open()?);
            let mut position = 0;
            while let Some(entry) = stream.next_entry()? {
                // A tree's variant: locations (and downloads) from the tree root.
                let href = if prefix.is_empty() {
                    entry.href
                } else {
                    tree::under(prefix, &entry.href)
                };
                let size = entry.package.size_package;
                if size < 0 || size as u64 > MAX_PACKAGE {
                    return Err(SyncError::AbsurdSize { href, size });
                }
                let nevra = filter::nevra_of(&entry.package);
                if filter.keeps(&entry.package) {
                    if let Some(buckets) = &buckets {
                        buckets.add(&entry.checksum.hex);
                    }
                    let location = if self.mirror() {
                        servable(&href)?;
                        href.clone()
                    } else {
                        entry.package.location()
                    };
                    entries.push(Listed {
                        href,
                        location,
                        checksum: entry.checksum,
                        size: size as u64,
                        nevra,
                        time_file: entry.package.time_file,
                        list: 0,
                        position,
                    });
                } else {
                    removed.insert(nevra);
                }
                position += 1;
            }
        }
        entries.shrink_to_fit();
        if let Some(n) = self.repo.keep_latest {
            let before: Vec<Nevra> = entries.iter().map(|e| e.nevra.clone()).collect();
            entries = filter::keep_newest(entries, n);
            let kept: HashSet<&Nevra> = entries.iter().map(|e| &e.nevra).collect();
            removed.extend(before.into_iter().filter(|n| !kept.contains(n)));
        }
        // One package per published location (the later upstream entry wins). A mirror
        // keeps upstream's locations, which its unchanged metadata names.
        let mut by_location: HashMap<String, usize> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_location.insert(e.location.clone(), i);
        }
        Ok(Upstream {
            entries,
            by_location,
            removed,
            lists: vec![PackageLists { docs }],
        })
    }

    /// comps, updateinfo (trimmed to what the mirror keeps) and modules; in mirror
    /// mode, every metadata file.
    async fn fetch_side_records(
        &self,
        client: &source::Source,
        base: &str,
        repomd: &Repomd,
        repomd_bytes: &[u8],
        up: &Upstream,
    ) -> Result<SideRecords, SyncError> {
        let keep: HashSet<Nevra> = up
            .by_location
            .values()
            .map(|&i| up.entries[i].nevra.clone())
            .collect();
        if self.mirror() {
            let (files, carry) = self
                .fetch_mirror_records(client, base, repomd, repomd_bytes, up)
                .await?;
            return Ok(SideRecords::Mirror(files, carry));
        }
        Ok(SideRecords::Extras(
            records::fetch_extras(client, base, repomd, &keep, &up.removed).await?,
        ))
    }

    /// Mirror mode's records: every metadata file upstream has (path, kind, bytes),
    /// served as upstream's bytes, and what regenerated metadata would carry of them,
    /// for the views the repository is a member of.
    async fn fetch_mirror_records(
        &self,
        client: &source::Source,
        base: &str,
        repomd: &Repomd,
        repomd_bytes: &[u8],
        up: &Upstream,
    ) -> Result<(Vec<(String, String, Vec<u8>)>, records::Carry), SyncError> {
        for r in &repomd.records {
            servable(&r.href)?;
        }
        let keep: HashSet<Nevra> = up
            .by_location
            .values()
            .map(|&i| up.entries[i].nevra.clone())
            .collect();
        let files = records::fetch_all_records(client, base, repomd, repomd_bytes).await?;
        let carry = records::extras_of_mirror(base, repomd, &files, &keep)?;
        Ok((files, carry))
    }
}
