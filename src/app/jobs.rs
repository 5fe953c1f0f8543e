//! Jobs: the long operations (a sync, gc, verify) started without waiting for them, as
//! the API does. A job is a catalog row (so its outcome outlives the process) plus,
//! while it runs, live [`Progress`] counters in this process; it runs the same `App`
//! operation the command line runs, audited as whoever started it.
//!
//! A job starts `queued`, and runs when one of `[server] max_jobs` slots is free and no
//! earlier job of the same target runs (two syncs of one repository, or gc and verify,
//! run one after the other, in the order they were asked for). Cancelling a queued job
//! ends it before it starts; cancelling a running one stops it at its next safe point:
//! a sync keeps its finished downloads (as Ctrl-C does), gc keeps what it removed,
//! verify stops checking.

use crate::app::unix_now;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::app::context::{App, AppError};
use crate::app::progress::Progress;
use crate::domain::actor::Actor;
use crate::store::catalog::{JobEnd, JobRow};

/// What a job does.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// Sync one repository (with what follows a sync: views, snapshot, retention).
    Sync(String),
    /// Garbage collection.
    Gc {
        min_age: std::time::Duration,
        dry_run: bool,
    },
    /// Re-hash the pool against the catalog.
    Verify,
    /// Download what a tree of an on-demand repository lacks.
    Fetch { repo: String, tree: String },
}

impl JobKind {
    fn name(&self) -> &'static str {
        match self {
            JobKind::Sync(_) => "sync",
            JobKind::Gc { .. } => "gc",
            JobKind::Verify => "verify",
            JobKind::Fetch { .. } => "fetch",
        }
    }

    fn target(&self) -> String {
        match self {
            JobKind::Sync(repo) | JobKind::Fetch { repo, .. } => format!("repo:{repo}"),
            _ => String::new(),
        }
    }

    fn params(&self) -> serde_json::Value {
        match self {
            JobKind::Gc { min_age, dry_run } => {
                serde_json::json!({"min_age_secs": min_age.as_secs(), "dry_run": dry_run})
            }
            JobKind::Fetch { tree, .. } => serde_json::json!({ "tree": tree }),
            _ => serde_json::json!({}),
        }
    }
}

/// The jobs queued or running in this process: their counters, whether a cancel was
/// asked, and what admits them.
#[derive(Debug)]
pub struct Running {
    jobs: Mutex<HashMap<i64, Arc<Progress>>>,
    /// Jobs that may run at once.
    slots: Arc<tokio::sync::Semaphore>,
    /// One lock per target: its jobs run one at a time, first asked first run
    /// (tokio's mutex is fair).
    targets: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a running job holds: its target's lock and a slot.
struct Admission {
    _target: tokio::sync::OwnedMutexGuard<()>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Running {
    /// Room for `max_jobs` jobs at once (at least one).
    pub fn new(max_jobs: usize) -> Running {
        Running {
            jobs: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(max_jobs.max(1))),
            targets: Mutex::default(),
        }
    }

    /// Waits until a job on `target` may run: no earlier one on it runs, and a slot
    /// is free.
    async fn admit(&self, target: &str) -> Option<Admission> {
        let lock = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(target.to_string())
            .or_default()
            .clone();
        // The target first: a job waiting behind its target holds no slot.
        let target = lock.lock_owned().await;
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        Some(Admission {
            _target: target,
            _slot: slot,
        })
    }

    fn get(&self, id: i64) -> Option<Arc<Progress>> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    fn insert(&self, id: i64, progress: Arc<Progress>) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, progress);
    }

    fn remove(&self, id: i64) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// A job as shown: its row, with live counters and the rate while it runs.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobInfo {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub actor: String,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `interrupted`.
    pub state: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub progress: JobProgress,
    /// The operation's report, when it succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// Files (or blobs) and bytes: done, and in all when known (0: not yet).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct JobProgress {
    pub files: i64,
    pub files_total: i64,
    pub bytes: i64,
    pub bytes_total: i64,
    /// Bytes per second since the job started.
    pub rate: i64,
}

fn counters(p: &Progress) -> [i64; 4] {
    use std::sync::atomic::Ordering::Relaxed;
    [
        p.done.load(Relaxed) as i64,
        p.total.load(Relaxed) as i64,
        p.bytes.load(Relaxed) as i64,
        p.bytes_total.load(Relaxed) as i64,
    ]
}

fn info(row: JobRow, live: Option<&Progress>) -> JobInfo {
    let [files, files_total, bytes, bytes_total] = match live {
        Some(p) => counters(p),
        None => [row.done, row.total, row.bytes, row.bytes_total],
    };
    let elapsed =
        row.finished_at.unwrap_or_else(unix_now) - row.started_at.unwrap_or(row.created_at);
    JobInfo {
        id: row.id,
        kind: row.kind,
        target: row.target,
        actor: row.actor,
        params: serde_json::from_str(&row.params).unwrap_or_default(),
        state: row.state,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        progress: JobProgress {
            files,
            files_total,
            bytes,
            bytes_total,
            rate: if elapsed > 0 { bytes / elapsed } else { bytes },
        },
        result: row.result.and_then(|r| serde_json::from_str(&r).ok()),
        error: row.error,
    }
}

impl App {
    /// Starts `kind` as a job and returns at once; the job runs on this runtime.
    pub async fn start_job(&self, by: &Actor, kind: JobKind) -> Result<JobInfo, AppError> {
        if let JobKind::Sync(repo) | JobKind::Fetch { repo, .. } = &kind {
            match self.config.repo(repo) {
                None => return Err(AppError::UndeclaredRepo(repo.clone())),
                Some(r) if !r.is_mirrored() => return Err(AppError::NoFeed(repo.clone())),
                Some(_) => {}
            }
        }
        let row = self
            .catalog
            .insert_job(
                kind.name(),
                &kind.target(),
                &by.to_string(),
                &kind.params().to_string(),
            )
            .await?;
        let id = row.id;
        let progress = Arc::new(Progress::default());
        self.jobs.insert(id, progress.clone());
        let (app, by) = (self.clone(), by.clone());
        let run = async move {
            let target = kind.target();
            let admitted = tokio::select! {
                biased;
                () = progress.stop.requested() => None,
                admitted = app.jobs.admit(&target) => admitted,
            };
            let Some(_admission) = admitted else {
                app.end_job(
                    id,
                    &kind,
                    &progress,
                    "cancelled",
                    None,
                    Some("cancelled before it started"),
                )
                .await;
                return;
            };
            if let Err(e) = app.catalog.start_job(id).await {
                tracing::error!("job {id}: recording its start: {e}");
            }
            let outcome: Result<serde_json::Value, AppError> = match &kind {
                JobKind::Sync(repo) => match app.config.repo(repo) {
                    Some(config) => app
                        .sync(&by, config, &progress)
                        .await
                        .map(|s| serde_json::to_value(&s.report).unwrap_or_default()),
                    None => Err(AppError::UndeclaredRepo(repo.clone())),
                },
                JobKind::Gc { min_age, dry_run } => app
                    .gc(&by, *min_age, *dry_run, true, &progress)
                    .await
                    .map(|r| serde_json::to_value(&r).unwrap_or_default()),
                JobKind::Verify => app
                    .verify(&progress)
                    .await
                    .map(|r| serde_json::to_value(&r).unwrap_or_default()),
                JobKind::Fetch { repo, tree } => app
                    .fetch_tree(&by, repo, tree, &progress)
                    .await
                    .map(|r| serde_json::to_value(&r).unwrap_or_default()),
            };
            let (state, result, error) = match outcome {
                Ok(report) => ("succeeded", Some(report.to_string()), None),
                Err(e) if progress.stop.is_requested() => (
                    "cancelled",
                    None,
                    Some(format!("cancelled: what was finished is kept ({e})")),
                ),
                Err(e) => ("failed", None, Some(e.to_string())),
            };
            app.end_job(
                id,
                &kind,
                &progress,
                state,
                result.as_deref(),
                error.as_deref(),
            )
            .await;
        };
        tokio::spawn(run);
        Ok(info(row, self.jobs.get(id).as_deref()))
    }

    /// Records how job `id` ended and forgets its live counters.
    async fn end_job(
        &self,
        id: i64,
        kind: &JobKind,
        progress: &Progress,
        state: &str,
        result: Option<&str>,
        error: Option<&str>,
    ) {
        let end = JobEnd {
            state,
            counters: counters(progress),
            result,
            error,
        };
        crate::app::metrics::metrics()
            .jobs
            .with_label_values(&[kind.name(), state])
            .inc();
        if let Err(e) = self.catalog.finish_job(id, &end).await {
            tracing::error!("job {id}: recording its end ({state}): {e}");
        }
        self.jobs.remove(id);
    }

    /// Job `id`, with live counters while it runs here.
    pub async fn job(&self, id: i64) -> Result<Option<JobInfo>, AppError> {
        let row = self.catalog.job(id).await?;
        Ok(row.map(|r| {
            let live = self.jobs.get(r.id);
            info(r, live.as_deref())
        }))
    }

    /// The newest `limit` jobs, newest first.
    pub async fn jobs_list(&self, limit: i64) -> Result<Vec<JobInfo>, AppError> {
        let rows = self.catalog.jobs(limit).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let live = self.jobs.get(r.id);
                info(r, live.as_deref())
            })
            .collect())
    }

    /// Asks queued or running job `id` to stop (see the module's header for what each
    /// keeps).
    pub async fn cancel_job(&self, by: &Actor, id: i64) -> Result<(), AppError> {
        let change = crate::app::audit::Change::new("job.cancel", format!("job:{id}"));
        self.audited(by, change, async {
            let row = self
                .catalog
                .job(id)
                .await?
                .ok_or(AppError::UnknownJob(id))?;
            match self.jobs.get(id) {
                None => Err(AppError::JobNotRunning {
                    id,
                    state: row.state,
                }),
                Some(p) => {
                    p.stop.request();
                    Ok(())
                }
            }
        })
        .await
    }

    /// Marks the jobs a previous server left running as interrupted.
    pub async fn interrupt_jobs(&self) -> Result<u64, AppError> {
        Ok(self.catalog.interrupt_jobs().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `admit` completes within a short wait (it cannot while what it waits
    /// for is held, so a `false` is never a matter of timing).
    async fn admitted_now(r: &Running, target: &str) -> Option<Admission> {
        tokio::time::timeout(Duration::from_millis(50), r.admit(target))
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn jobs_wait_for_a_slot_and_for_their_target() {
        let r = Running::new(2);
        let a = admitted_now(&r, "repo:a").await.expect("a slot is free");
        // The same target waits while its first job runs, whatever the slots.
        assert!(admitted_now(&r, "repo:a").await.is_none());
        let b = admitted_now(&r, "repo:b").await.expect("a second slot");
        // Both slots taken: another target waits too.
        assert!(admitted_now(&r, "").await.is_none());
        drop(b);
        let gc = admitted_now(&r, "").await.expect("a slot freed");
        drop(a);
        assert!(admitted_now(&r, "repo:a").await.is_some());
        drop(gc);
    }
}
