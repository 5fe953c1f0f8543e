//! Sync schedules (`schedule = "daily 02:00"` or `"every 6h"`) and the loop that runs
//! them inside `cairn serve`.
//!
//! Scheduled syncs run on the control runtime, not on the serving threads, so a sync
//! never blocks serving; a failing sync is logged and recorded in the sync history, and
//! the next run happens at the next scheduled time.

use crate::app::context::{App, AppError};

/// Starts one task per repository with a feed and a schedule; each runs the same
/// [`App::sync`] as `cairn repo sync`.
pub fn start(app: &App) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for repo in app.config.repos.iter().filter(|r| r.feed.is_some()) {
        let Some(schedule) = repo.schedule else {
            continue;
        };
        let (repo, app) = (repo.clone(), app.clone());
        tracing::info!("{}: syncing {schedule}", repo.id);
        tasks.push(tokio::spawn(async move {
            loop {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                let wait = schedule.wait_from(now);
                let due = now + wait.as_secs() as i64;
                tokio::time::sleep(wait).await;
                let started = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(due);
                crate::app::metrics::metrics()
                    .schedule_lag
                    .with_label_values(&[repo.id.as_str()])
                    .set((started - due).max(0));
                match app.sync(&repo, &Default::default()).await {
                    Ok(synced) => {
                        let r = &synced.report;
                        tracing::info!(
                            "{}: scheduled sync {} ({} packages, {} added, {} removed)",
                            repo.id,
                            r.status,
                            r.packages,
                            r.added,
                            r.removed
                        );
                        if let Some(name) = &synced.snapshot_created {
                            tracing::info!("{}: created snapshot {name}", repo.id);
                        }
                        for name in &synced.snapshots_deleted {
                            tracing::info!("{}: retention deleted snapshot {name}", repo.id);
                        }
                    }
                    Err(AppError::Sync(e)) => {
                        tracing::error!("{}: scheduled sync failed: {e}", repo.id)
                    }
                    Err(e) => tracing::error!("{e}"),
                }
            }
        }));
    }
    tasks
}
