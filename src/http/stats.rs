//! The catalog-, pool- and filesystem-derived metrics of `cairn serve`, refreshed on
//! the control runtime (workers never touch the catalog) and handed to
//! [`crate::app::metrics`] as one text block.
//!
//! Sync history, snapshot counts and GC/verify results come from the catalog, so they
//! include what other processes (`cairn repo sync`, `cairn gc`) did. The pool is walked
//! at most every [`POOL_WALK_EVERY`]; the filesystem's free space is read every refresh.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::app::metrics::{metrics, Exposition, Sample};
use crate::domain::status::RunStatus;
use crate::store::catalog::{Catalog, MetricStats};
use crate::store::pool::Pool;

/// How often the catalog block is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How often the pool is walked for its blob count and size.
pub const POOL_WALK_EVERY: Duration = Duration::from_secs(60);

/// Blob count and bytes of the pool (files under its `ab/cd/` buckets).
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolUsage {
    pub blobs: u64,
    pub bytes: u64,
}

/// Walks the pool's buckets.
pub fn pool_usage(root: &Path) -> PoolUsage {
    let mut usage = PoolUsage::default();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(3)
        .max_depth(3)
        .into_iter()
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy();
        if !crate::store::pool::is_sha256(&name) {
            continue;
        }
        if let Ok(m) = entry.metadata() {
            if m.is_file() {
                usage.blobs += 1;
                usage.bytes += m.len();
            }
        }
    }
    usage
}

/// (size, free bytes for unprivileged users) of the filesystem holding `path`.
fn filesystem(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory
    // of the right type; statvfs fills it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    // The field types (c_ulong, fsblkcnt_t) differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    let frsize = st.f_frsize as u64;
    #[allow(clippy::unnecessary_cast)]
    let (blocks, avail) = (st.f_blocks as u64, st.f_bavail as u64);
    Some((blocks * frsize, avail * frsize))
}

/// Renders the block from catalog state, pool usage and the filesystem.
pub fn render(stats: &MetricStats, usage: PoolUsage, fs: Option<(u64, u64)>) -> String {
    let mut e = Exposition::default();
    render_syncs(&mut e, stats);
    render_contents(&mut e, stats);
    render_storage(&mut e, stats, usage, fs);
    e.finish()
}

/// Labels and values of a per-repository metric (repositories without a value left
/// out).
fn per_repo<'s>(
    stats: &'s MetricStats,
    f: &dyn Fn(&crate::store::catalog::RepoStats) -> Option<f64>,
) -> Vec<Sample<'s>> {
    stats
        .repos
        .iter()
        .filter_map(|r| f(r).map(|v| (vec![("repo", r.name.as_str())], v)))
        .collect()
}

/// The sync history: runs, downloads, the last run and success.
fn render_syncs(e: &mut Exposition, stats: &MetricStats) {
    let mut runs: Vec<Sample<'_>> = Vec::new();
    for r in &stats.repos {
        for (result, n) in [
            ("ok", r.runs_ok),
            ("unchanged", r.runs_unchanged),
            ("failed", r.runs_failed),
        ] {
            runs.push((
                vec![("repo", r.name.as_str()), ("result", result)],
                n as f64,
            ));
        }
    }
    e.family(
        "cairn_sync_runs_total",
        "counter",
        "Finished syncs by repository and result (catalog history, any process).",
        &runs,
    );
    e.family(
        "cairn_sync_downloaded_packages_total",
        "counter",
        "Packages downloaded by syncs, by repository.",
        &per_repo(stats, &|r| Some(r.downloaded_packages as f64)),
    );
    e.family(
        "cairn_sync_downloaded_bytes_total",
        "counter",
        "Bytes downloaded by syncs, by repository.",
        &per_repo(stats, &|r| Some(r.downloaded_bytes as f64)),
    );
    e.family(
        "cairn_sync_last_success_timestamp_seconds",
        "gauge",
        "When the last successful sync of a repository finished (Unix time).",
        &per_repo(stats, &|r| r.last_success.map(|t| t as f64)),
    );
    e.family(
        "cairn_sync_last_run_timestamp_seconds",
        "gauge",
        "When the last sync of a repository finished (Unix time).",
        &per_repo(stats, &|r| {
            r.last_run
                .as_ref()
                .and_then(|l| l.finished_at)
                .map(|t| t as f64)
        }),
    );
    e.family(
        "cairn_sync_last_run_success",
        "gauge",
        "1 if the last sync of a repository succeeded, 0 if it failed.",
        &per_repo(stats, &|r| {
            r.last_run.as_ref().map(|l| {
                if l.status == RunStatus::Failed {
                    0.0
                } else {
                    1.0
                }
            })
        }),
    );
    e.family(
        "cairn_sync_last_duration_seconds",
        "gauge",
        "How long the last sync of a repository took.",
        &per_repo(stats, &|r| {
            r.last_run
                .as_ref()
                .and_then(|l| l.finished_at.map(|f| (f - l.started_at).max(0) as f64))
        }),
    );
}

/// What repositories and views hold: packages and snapshots.
fn render_contents(e: &mut Exposition, stats: &MetricStats) {
    e.family(
        "cairn_repo_packages",
        "gauge",
        "Packages in a repository's current content.",
        &per_repo(stats, &|r| Some(r.packages as f64)),
    );
    e.family(
        "cairn_repo_snapshots",
        "gauge",
        "Snapshots of a repository.",
        &per_repo(stats, &|r| Some(r.snapshots as f64)),
    );
    e.family(
        "cairn_repo_newest_snapshot_packages",
        "gauge",
        "Packages in a repository's newest snapshot.",
        &per_repo(stats, &|r| r.newest_snapshot.map(|(_, n)| n as f64)),
    );
    e.family(
        "cairn_repo_newest_snapshot_timestamp_seconds",
        "gauge",
        "When a repository's newest snapshot was made (Unix time).",
        &per_repo(stats, &|r| r.newest_snapshot.map(|(t, _)| t as f64)),
    );
    let per_view =
        |f: &dyn Fn(&crate::store::catalog::ViewStats) -> Option<f64>| -> Vec<Sample<'_>> {
            stats
                .views
                .iter()
                .filter_map(|v| f(v).map(|x| (vec![("view", v.name.as_str())], x)))
                .collect()
        };
    e.family(
        "cairn_view_packages",
        "gauge",
        "Packages in a view's latest composition.",
        &per_view(&|v| Some(v.packages as f64)),
    );
    e.family(
        "cairn_view_snapshots",
        "gauge",
        "Snapshots of a view.",
        &per_view(&|v| Some(v.snapshots as f64)),
    );
    e.family(
        "cairn_view_newest_snapshot_packages",
        "gauge",
        "Packages in a view's newest snapshot.",
        &per_view(&|v| v.newest_snapshot.map(|(_, n)| n as f64)),
    );
    e.family(
        "cairn_view_newest_snapshot_timestamp_seconds",
        "gauge",
        "When a view's newest snapshot was made (Unix time).",
        &per_view(&|v| v.newest_snapshot.map(|(t, _)| t as f64)),
    );
}

/// The pool, its file system, the catalog's size, and garbage collection and
/// verification.
fn render_storage(
    e: &mut Exposition,
    stats: &MetricStats,
    usage: PoolUsage,
    fs: Option<(u64, u64)>,
) {
    e.family(
        "cairn_pool_blobs",
        "gauge",
        "Blobs in the pool.",
        &[(vec![], usage.blobs as f64)],
    );
    e.family(
        "cairn_pool_bytes",
        "gauge",
        "Bytes of the blobs in the pool.",
        &[(vec![], usage.bytes as f64)],
    );
    if let Some((size, free)) = fs {
        e.family(
            "cairn_pool_filesystem_size_bytes",
            "gauge",
            "Size of the filesystem holding the pool.",
            &[(vec![], size as f64)],
        );
        e.family(
            "cairn_pool_filesystem_free_bytes",
            "gauge",
            "Bytes available to Cairn on the filesystem holding the pool.",
            &[(vec![], free as f64)],
        );
    }
    e.family(
        "cairn_catalog_bytes",
        "gauge",
        "Size of the catalog database.",
        &[(vec![], stats.catalog_bytes as f64)],
    );
    e.family(
        "cairn_gc_runs_total",
        "counter",
        "Garbage collections run (not dry runs).",
        &[(vec![], stats.gc_runs as f64)],
    );
    e.family(
        "cairn_gc_freed_bytes_total",
        "counter",
        "Bytes freed by garbage collection.",
        &[(vec![], stats.gc_freed_bytes as f64)],
    );
    e.family(
        "cairn_gc_freed_blobs_total",
        "counter",
        "Blobs removed by garbage collection.",
        &[(vec![], stats.gc_freed_blobs as f64)],
    );
    e.family(
        "cairn_gc_last_run_timestamp_seconds",
        "gauge",
        "When the last garbage collection finished (Unix time).",
        &stats
            .gc_last_at
            .map(|t| vec![(vec![], t as f64)])
            .unwrap_or_default(),
    );
    e.family(
        "cairn_verify_last_run_timestamp_seconds",
        "gauge",
        "When the last `cairn db verify` finished (Unix time).",
        &stats
            .verify_last
            .map(|(t, _)| vec![(vec![], t as f64)])
            .unwrap_or_default(),
    );
    e.family(
        "cairn_verify_problems",
        "gauge",
        "Missing or corrupt blobs found by the last `cairn db verify`.",
        &stats
            .verify_last
            .map(|(_, p)| vec![(vec![], p as f64)])
            .unwrap_or_default(),
    );
}

/// What the refresher remembers between rounds.
#[derive(Default)]
pub struct Refresher {
    usage: PoolUsage,
    walked: Option<Instant>,
}

impl Refresher {
    /// One round: reads the catalog (and the pool, when due) and publishes the block.
    pub async fn refresh(&mut self, catalog: &Catalog, pool: &Pool) {
        if self.walked.is_none_or(|t| t.elapsed() >= POOL_WALK_EVERY) {
            let root = pool.root().to_path_buf();
            if let Ok(u) = tokio::task::spawn_blocking(move || pool_usage(&root)).await {
                self.usage = u;
                self.walked = Some(Instant::now());
            }
        }
        match catalog.metric_stats().await {
            Ok(stats) => {
                let text = render(&stats, self.usage, filesystem(pool.root()));
                metrics().set_catalog_text(text);
                metrics().set_catalog_error(None);
            }
            Err(e) => {
                tracing::warn!("reading catalog metrics: {e}");
                metrics().set_catalog_error(Some(e.to_string()));
            }
        }
    }

    /// Refreshes forever (spawn it on the control runtime).
    pub async fn run(mut self, catalog: Catalog, pool: Pool) {
        loop {
            tokio::time::sleep(REFRESH_EVERY).await;
            self.refresh(&catalog, &pool).await;
        }
    }
}
