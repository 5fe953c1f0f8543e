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
//! - [`upstream`]: HTTP, retries, digests, the error kinds;
//! - [`records`]: the metadata files; [`filter`]: what the mirror keeps;
//! - [`download`]: packages into the pool; [`mirror`]: mirror mode's publication.

pub mod download;
pub mod filter;
pub mod mirror;
pub mod records;
pub mod upstream;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::StreamExt;
use sha2::Digest;

use crate::app::config::{RepoConfig, SyncMode};
use crate::app::ingest::{self, IngestError};
use crate::app::progress::Progress;
use crate::app::publish::{self, PublishError};
use crate::domain::package::Package;
use crate::domain::status::RunStatus;
use crate::formats::repodata::parse::{self, PackageStream, ParseError, PrimaryEntry, Repomd};
use crate::formats::repodata::updateinfo::Nevra;
use crate::formats::repodata::xml;
use crate::store::catalog::{Catalog, CatalogError, ExtraRef, PlacedFragments, SyncRun};
use crate::store::datadir::DataDir;
use crate::store::pool::{Pool, PoolError, Staged, StagedJournal};
use download::{Downloads, Wanted};
use upstream::{ClientError, UpstreamError};

/// Largest package accepted.
const MAX_PACKAGE: u64 = 64 * 1024 * 1024 * 1024;

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
    #[error("locking repository {repo}: {source}")]
    Lock {
        repo: String,
        #[source]
        source: std::io::Error,
    },
    /// A task of the sync ended abnormally (a panic).
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
    fn count(&self, repo: &str) {
        let m = crate::app::metrics::metrics();
        match self {
            SyncError::Packages(failures) => {
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
            | SyncError::MissingRecord { .. }
            | SyncError::AbsurdSize { .. } => m.upstream_error(repo, "metadata"),
            _ => {}
        }
    }
}

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
    let feed = repo
        .feed
        .clone()
        .ok_or_else(|| SyncError::NoFeed(repo.id.clone()))?;
    let base = upstream::base_url(&feed);
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
    let cx = Cx {
        catalog,
        pool,
        datadir,
        repo,
        repo_id,
        base,
        started: Instant::now(),
        deadline: tokio::time::Instant::now() + repo.deadline,
    };
    let result = cx.run(&mut run, progress).await;
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
    base: String,
    started: Instant,
    /// When the sync stops as if interrupted (`deadline`).
    deadline: tokio::time::Instant,
}

/// Upstream's packages after the filters: the parsed entries, and which entry each
/// published location holds (the later upstream entry wins).
struct Upstream {
    entries: Vec<PrimaryEntry>,
    by_location: HashMap<String, usize>,
    /// Upstream's packages the filters (arch, include, exclude, keep_latest) left out.
    removed: HashSet<Nevra>,
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

/// How a sync gets the publication of its new content.
enum Publishing {
    /// Mirror mode: upstream's metadata bytes, for these packages.
    Mirror(Vec<(String, String, Vec<u8>)>, Vec<PlacedFragments>),
    /// Regenerated repodata, found or being rendered.
    Regenerated(publish::Pending),
}

/// The download plan: the sha256 of each entry the pool holds already, and the entries
/// to download.
struct Plan {
    known: HashMap<usize, String>,
    wanted: Vec<usize>,
}

impl Cx<'_> {
    fn phase(&self, what: &str) {
        tracing::debug!("{what} at {:.3} s", self.started.elapsed().as_secs_f64());
    }

    fn mirror(&self) -> bool {
        self.repo.mode == SyncMode::Mirror
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
        let client = upstream::client(self.repo)?;
        let metadata = async {
            let repomd_url = upstream::join(&self.base, "repodata/repomd.xml");
            progress.set_stage(format!("{}: fetching {repomd_url}", self.repo.id));
            let repomd_bytes = records::fetch(&client, &repomd_url, records::MAX_REPOMD).await?;
            let repomd_sha = hex::encode(sha2::Sha256::digest(&repomd_bytes));
            if self.unchanged(&repomd_sha).await? {
                return Ok(None);
            }
            let repomd = parse::parse_repomd(&repomd_bytes, &repomd_url)?;
            progress.set_stage(format!(
                "{}: fetching and reading the package lists (primary, filelists, other) of {}",
                self.repo.id, self.base
            ));
            let up = self.read_packages(&client, &repomd, &repomd_url).await?;
            self.phase("metadata fetched and parsed");
            progress.set_stage(format!(
                "{}: fetching the other metadata (comps, updateinfo, modules) of {}",
                self.repo.id, self.base
            ));
            let side = self
                .fetch_side_records(&client, &repomd, &repomd_bytes, &up)
                .await?;
            self.phase("comps, updateinfo and modules fetched");
            progress.set_stage(format!(
                "{}: checking which packages the pool holds",
                self.repo.id
            ));
            let plan = self.plan_downloads(&up).await?;
            let mut warnings: Vec<String> = side.warnings().to_vec();
            warnings.extend(upstream::weak_checksums(&repomd, &up.entries));
            for w in &warnings {
                tracing::warn!("{}: {w}", self.repo.id);
            }
            Ok::<_, SyncError>(Some((repomd_sha, up, side, plan, warnings)))
        };
        let fetched = tokio::select! {
            fetched = metadata => fetched?,
            _ = self.halted(progress) => return Err(self.stopped(progress, 0)),
        };
        let Some((repomd_sha, mut up, side, mut plan, warnings)) = fetched else {
            tracing::info!("{}: upstream unchanged", self.repo.id);
            return Ok(SyncReport {
                status: RunStatus::Unchanged,
                packages: self.catalog.repo_content(self.repo_id).await?.len(),
                ..Default::default()
            });
        };
        let (staged, journal) = self
            .download(&client, &up.entries, &mut plan, run, progress)
            .await?;
        self.phase("downloads finished");
        let ingested = self.ingest(&mut up, plan, staged, side, &repomd_sha).await;
        // Every staged blob is now committed or removed.
        journal.discard();
        let mut report = ingested?;
        report.downloaded = run.packages_downloaded as usize;
        report.bytes = run.bytes_downloaded as u64;
        report.warnings.extend(warnings);
        run.packages_added = report.added as i64;
        run.packages_removed = report.removed as i64;
        Ok(report)
    }

    /// Is upstream's repomd.xml the one the current content came from?
    async fn unchanged(&self, repomd_sha: &str) -> Result<bool, SyncError> {
        let has_latest = self
            .catalog
            .repo(&self.repo.id)
            .await?
            .is_some_and(|r| r.latest_publication_id.is_some());
        if !(has_latest
            && self.catalog.upstream_repomd(self.repo_id).await?.as_deref() == Some(repomd_sha))
        {
            return Ok(false);
        }
        // The catalog says nothing changed; the pool must still hold what it names. A
        // package file lost since (deleted, or quarantined by `db verify --repair`)
        // makes this a full sync, which downloads what is missing.
        let content = self.catalog.repo_content(self.repo_id).await?;
        let pool = self.pool.clone();
        let missing = tokio::task::spawn_blocking(move || {
            content.iter().filter(|c| !pool.contains(&c.sha256)).count()
        })
        .await
        .map_err(|e| SyncError::Task {
            what: "checking the pool",
            message: e.to_string(),
        })?;
        if missing > 0 {
            tracing::warn!(
                "{}: upstream unchanged, but {missing} package file(s) of the current content are missing from the pool: fetching them again",
                self.repo.id
            );
        }
        Ok(missing == 0)
    }

    /// Fetches primary, filelists and other and parses them in lockstep, keeping what
    /// the filters allow.
    async fn read_packages(
        &self,
        client: &reqwest::Client,
        repomd: &Repomd,
        repomd_url: &str,
    ) -> Result<Upstream, SyncError> {
        let docs = records::fetch_package_records(client, &self.base, repomd, repomd_url).await?;
        let filter = filter::Filter::new(self.repo)?;
        let mut entries: Vec<PrimaryEntry> = Vec::new();
        let mut removed: HashSet<Nevra> = HashSet::new();
        {
            // The parse keeps one core busy: the other makes the pool's bucket
            // directories for the packages it will most likely download.
            let buckets = self.pool.bucket_maker();
            let mut stream = PackageStream::new(docs[0].open()?, docs[1].open()?, docs[2].open()?);
            while let Some(entry) = stream.next_package()? {
                let size = entry.package.size_package;
                if size < 0 || size as u64 > MAX_PACKAGE {
                    return Err(SyncError::AbsurdSize {
                        href: entry.href,
                        size,
                    });
                }
                if filter.keeps(&entry.package) {
                    if entry.checksum.algorithm == "sha256" {
                        buckets.add(&entry.checksum.hex);
                    }
                    entries.push(entry);
                } else {
                    removed.insert(filter::nevra_of(&entry.package));
                }
            }
        }
        if let Some(n) = self.repo.keep_latest {
            let before: Vec<Nevra> = entries
                .iter()
                .map(|e| filter::nevra_of(&e.package))
                .collect();
            entries = filter::keep_newest(entries, n);
            let kept: HashSet<Nevra> = entries
                .iter()
                .map(|e| filter::nevra_of(&e.package))
                .collect();
            removed.extend(before.into_iter().filter(|n| !kept.contains(n)));
        }
        // One package per published location (the later upstream entry wins). A mirror
        // keeps upstream's locations, which its unchanged metadata names.
        let mut by_location: HashMap<String, usize> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let loc = if self.mirror() {
                servable(&e.href)?;
                e.href.clone()
            } else {
                e.package.location()
            };
            by_location.insert(loc, i);
        }
        Ok(Upstream {
            entries,
            by_location,
            removed,
        })
    }

    /// comps, updateinfo (trimmed to what the mirror keeps) and modules; in mirror
    /// mode, every metadata file.
    async fn fetch_side_records(
        &self,
        client: &reqwest::Client,
        repomd: &Repomd,
        repomd_bytes: &[u8],
        up: &Upstream,
    ) -> Result<SideRecords, SyncError> {
        let keep: HashSet<Nevra> = up
            .by_location
            .values()
            .map(|&i| filter::nevra_of(&up.entries[i].package))
            .collect();
        if self.mirror() {
            for r in &repomd.records {
                servable(&r.href)?;
            }
            let files =
                records::fetch_all_records(client, &self.base, repomd, repomd_bytes).await?;
            // Served as upstream's bytes; opened too, for the views the repository is
            // a member of.
            let extras = records::extras_of_mirror(&self.base, repomd, &files, &keep)?;
            return Ok(SideRecords::Mirror(files, extras));
        }
        Ok(SideRecords::Extras(
            records::fetch_extras(client, &self.base, repomd, &keep, &up.removed).await?,
        ))
    }

    /// Which packages the pool holds already (by upstream's sha256, or by another
    /// checksum an earlier sync learned the sha256 of), and which to download.
    async fn plan_downloads(&self, up: &Upstream) -> Result<Plan, SyncError> {
        let mut mapped: HashMap<(String, String), String> = HashMap::new();
        let mut by_algorithm: HashMap<&str, Vec<&str>> = HashMap::new();
        for &i in up.by_location.values() {
            let c = &up.entries[i].checksum;
            if c.algorithm != "sha256" {
                by_algorithm
                    .entry(c.algorithm.as_str())
                    .or_default()
                    .push(c.hex.as_str());
            }
        }
        for (algorithm, digests) in &by_algorithm {
            for (digest, sha) in self.catalog.sha256_for(algorithm, digests).await? {
                mapped.insert((algorithm.to_string(), digest), sha);
            }
        }
        let mut plan = Plan {
            known: HashMap::new(),
            wanted: Vec::new(),
        };
        for &i in up.by_location.values() {
            let e = &up.entries[i];
            let size = e.package.size_package as u64;
            let key = (e.checksum.algorithm.clone(), e.checksum.hex.clone());
            if let Some(sha) = mapped.get(&key) {
                if self.pool.reuse(sha, size) {
                    plan.known.insert(i, sha.clone());
                    continue;
                }
            }
            if e.checksum.algorithm == "sha256" && self.pool.reuse(&e.checksum.hex, size) {
                plan.known.insert(i, e.checksum.hex.clone());
            } else {
                plan.wanted.push(i);
            }
        }
        plan.wanted.sort_unstable();
        tracing::info!(
            "{}: {} packages upstream after filters, {} to download",
            self.repo.id,
            up.by_location.len(),
            plan.wanted.len()
        );
        Ok(plan)
    }

    /// Downloads the plan's wanted packages in parallel, adding each to the plan's
    /// known ones. All or nothing: when any fails, what did arrive is made durable (the
    /// next run skips it) and every failure is named.
    async fn download(
        &self,
        client: &reqwest::Client,
        entries: &[PrimaryEntry],
        plan: &mut Plan,
        run: &mut SyncRun,
        progress: &Progress,
    ) -> Result<(Vec<Staged>, StagedJournal), SyncError> {
        let wanted = std::mem::take(&mut plan.wanted);
        progress.bytes_total.store(
            wanted
                .iter()
                .map(|&i| entries[i].package.size_package as u64)
                .sum(),
            Ordering::Relaxed,
        );
        progress.total.store(wanted.len(), Ordering::Relaxed);
        let stager = self.pool.stager()?;
        let downloads = Downloads {
            client,
            pool: self.pool,
            stager: &stager,
            received: &progress.bytes,
        };
        let results: Vec<_> = futures_util::stream::iter(wanted)
            .map(|i| {
                let e = &entries[i];
                let d = &downloads;
                async move {
                    let url = upstream::join(&self.base, &e.href);
                    let key = format!(
                        "{}-{}-{}",
                        self.repo.id, e.checksum.algorithm, e.checksum.hex
                    );
                    let wanted = Wanted {
                        url: &url,
                        checksum: &e.checksum,
                        size: e.package.size_package as u64,
                        partial_key: &key,
                    };
                    let r = download::download(d, &wanted).await;
                    progress.done.fetch_add(1, Ordering::Relaxed);
                    (i, r)
                }
            })
            .buffer_unordered(self.repo.downloads)
            .take_until(self.halted(progress))
            .collect()
            .await;
        let interrupted =
            progress.stop.is_requested() || tokio::time::Instant::now() >= self.deadline;
        // Every queued write lands before anything is committed; a failed write (a full
        // disk) fails the sync, naming the file.
        let journal = tokio::task::spawn_blocking(move || stager.finish())
            .await
            .map_err(|e| SyncError::Task {
                what: "writing downloads",
                message: e.to_string(),
            })??;
        let mut staged = Vec::new();
        let mut failures = Vec::new();
        for (i, r) in results {
            match r {
                Ok((s, transferred)) => {
                    run.packages_downloaded += 1;
                    run.bytes_downloaded += transferred as i64;
                    plan.known.insert(i, s.sha256.clone());
                    staged.push(s);
                }
                Err(e) => failures.push((entries[i].href.clone(), e)),
            }
        }
        if interrupted || !failures.is_empty() {
            // Verified downloads are kept even when others failed or the sync was
            // stopped: the next run skips them.
            let kept = staged.len();
            self.pool.commit_async(staged).await?;
            journal.discard();
            self.remember_checksums(entries, &plan.known).await?;
            if interrupted {
                return Err(self.stopped(progress, kept));
            }
            failures.sort_by(|a, b| a.0.cmp(&b.0));
            return Err(SyncError::Packages(failures));
        }
        Ok((staged, journal))
    }

    /// The ingest protocol for the new content: the blobs become durable while the
    /// fragments are rendered, the repodata is rendered and the rows are written; then,
    /// under the write lock, the content is compared, published and placed.
    async fn ingest(
        &self,
        up: &mut Upstream,
        plan: Plan,
        mut staged: Vec<Staged>,
        side: SideRecords,
        repomd_sha: &str,
    ) -> Result<SyncReport, SyncError> {
        let (carry, mirror_files) = match side {
            SideRecords::Extras(carry) => (carry, Vec::new()),
            SideRecords::Mirror(files, carry) => (carry, files),
        };
        // Every carried document and record, with its pool reference.
        let mut extras: Vec<(ExtraRef, Vec<u8>)> = Vec::new();
        for (kind, bytes) in carry.opened {
            let s = self.pool.stage_bytes(&bytes)?;
            extras.push((
                ExtraRef::opened(kind.name(), &s.sha256, s.size as i64),
                bytes,
            ));
            staged.push(s);
        }
        for (record, bytes) in carry.carried {
            let s = self.pool.stage_bytes(&bytes)?;
            extras.push((ExtraRef::carried(&record, &s.sha256, s.size as i64), bytes));
            staged.push(s);
        }
        let extra_refs: Vec<ExtraRef> = extras.iter().map(|(r, _)| r.clone()).collect();
        // The blobs become durable on a blocking thread while the fragments are
        // rendered and the catalog rows written; the rows are committed only after.
        let committing = {
            let pool = self.pool.clone();
            tokio::spawn(async move { pool.commit_async(staged).await })
        };
        let durable = async {
            committing.await.map_err(|e| SyncError::Task {
                what: "making the downloads durable",
                message: e.to_string(),
            })??;
            self.phase("pool committed");
            Ok::<(), SyncError>(())
        };
        // Catalog rows from upstream's metadata, keyed by sha256, with their fragments
        // rendered on all cores.
        let (locations, unrendered): (Vec<&str>, Vec<Package>) = up
            .by_location
            .iter()
            .map(|(loc, &i)| {
                // Moved, not copied: only the entries' checksums are needed from here on.
                let mut p = std::mem::take(&mut up.entries[i].package);
                p.pkgid = plan.known[&i].clone();
                (loc.as_str(), p)
            })
            .unzip();
        let mut packages = xml::render_all(unrendered);
        self.phase("fragments rendered");
        let items: Vec<PlacedFragments> = packages
            .iter()
            .zip(&locations)
            .map(|((p, f), loc)| PlacedFragments {
                sha256: p.pkgid.clone(),
                location: loc.to_string(),
                time_file: p.time_file,
                fragments: f.clone(),
            })
            .collect();
        // The repodata is rendered and compressed while the rows are written and the
        // blobs become durable (unless the same publication exists already).
        let publishing = if self.mirror() {
            Publishing::Mirror(mirror_files, items)
        } else {
            let extras = publish::ExtraBytes::Loaded(extras);
            let compression = self.repo.compression;
            Publishing::Regenerated(
                publish::begin(self.catalog, self.pool, items, compression, extras, false).await?,
            )
        };
        let ids = ingest::record(self.catalog, &mut packages, durable).await?;
        self.remember_checksums(&up.entries, &plan.known).await?;
        self.phase("catalog rows written");
        // From here the repository changes: snapshots and imports of it wait for this
        // part only, never for the downloads.
        let locked = ingest::lock(self.catalog, self.datadir, &self.repo.id).await?;
        let current = locked.current().await?;
        let new = packages.iter().zip(&locations);
        let comparison = ingest::compare(&current, new.map(|((p, _), l)| (*l, p.pkgid.as_str())));
        let placements: Vec<(String, i64)> = packages
            .iter()
            .zip(&locations)
            .map(|((p, _), loc)| (loc.to_string(), ids[&p.pkgid]))
            .collect();
        let publication_id = match publishing {
            Publishing::Mirror(files, items) => {
                mirror::publish_mirror(self.catalog, self.pool, &files, &items).await?
            }
            Publishing::Regenerated(pending) => {
                pending
                    .finish(self.catalog, self.pool)
                    .await?
                    .publication_id
            }
        };
        ingest::check_blobs(
            self.pool,
            packages
                .iter()
                .map(|(p, _)| p.pkgid.as_str())
                .chain(extra_refs.iter().map(|e| e.sha256.as_str())),
        )?;
        locked
            .replace(&placements, publication_id, repomd_sha, &extra_refs)
            .await?;
        self.phase("published");
        Ok(SyncReport {
            status: RunStatus::Ok,
            packages: packages.len(),
            added: comparison.added.len() + comparison.replaced.len(),
            removed: comparison.absent.len(),
            ..Default::default()
        })
    }

    /// Remembers what the non-sha256 checksums upstream names packages by stand for
    /// (also for the downloads of a failed run: they are in the pool). Call only once
    /// the blobs are durable.
    async fn remember_checksums(
        &self,
        entries: &[PrimaryEntry],
        known: &HashMap<usize, String>,
    ) -> Result<(), SyncError> {
        let mut learned: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for (&i, sha) in known {
            let c = &entries[i].checksum;
            if c.algorithm != "sha256" {
                learned
                    .entry(c.algorithm.as_str())
                    .or_default()
                    .push((c.hex.clone(), sha.clone()));
            }
        }
        for (algorithm, pairs) in &learned {
            self.catalog.remember_checksums(algorithm, pairs).await?;
        }
        Ok(())
    }
}
