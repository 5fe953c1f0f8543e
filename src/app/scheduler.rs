//! Sync schedules (`schedule = "daily 02:00"` or `"every 6h"`) and the loop that runs
//! them inside `cairn serve`.
//!
//! Scheduled syncs run on the control runtime, not on the serving threads, so a sync
//! never blocks serving; a failing sync is logged and recorded in the sync history, and
//! the next run happens at the next scheduled time. A sync that panics fails that run
//! only (it runs in a task of its own).

use crate::app::context::{App, AppError};

/// Starts one task per repository with a feed and a schedule; each runs the same
/// [`App::sync`] as `cairn repo sync`.
pub fn start(app: &App) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    // The series the dashboard and alerts query exist from the start, at 0, so a fresh
    // installation shows 0 rather than "No data".
    let m = crate::app::metrics::metrics();
    for repo in app.config.repos.iter().filter(|r| r.is_mirrored()) {
        for kind in crate::app::sync::upstream::UpstreamError::KINDS {
            m.upstream_errors
                .with_label_values(&[repo.id.as_str(), kind]);
        }
        if repo.schedule.is_some() {
            m.schedule_lag.with_label_values(&[repo.id.as_str()]).set(0);
        }
    }
    for repo in app.config.repos.iter().filter(|r| r.is_mirrored()) {
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
                // Run in a task of its own: a panic in a sync fails that run (logged)
                // and the schedule goes on; the server is not affected.
                let run = {
                    let (app, repo) = (app.clone(), repo.clone());
                    tokio::spawn(async move {
                        app.sync(
                            &crate::domain::actor::Actor::Scheduler,
                            &repo,
                            &Default::default(),
                        )
                        .await
                    })
                };
                let result = match run.await {
                    Ok(result) => result,
                    Err(e) => {
                        tracing::error!("{}: scheduled sync ended abnormally: {e}", repo.id);
                        continue;
                    }
                };
                match result {
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
