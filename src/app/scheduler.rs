//! Sync schedules (`schedule = "daily 02:00"` or `"every 6h"`) and the loop that runs
//! them inside `cairn serve`.
//!
//! Scheduled syncs run on the control runtime, not on the serving threads, so a sync
//! never blocks serving; a failing sync is logged and recorded in the sync history, and
//! the next run happens at the next scheduled time.

use crate::app::config::Config;
use crate::store::catalog::Catalog;
use crate::store::datadir::DataDir;
use crate::store::pool::Pool;

/// Starts one task per repository with a feed and a schedule.
pub fn start(
    config: &Config,
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for repo in config.repos.iter().filter(|r| r.feed.is_some()) {
        let Some(schedule) = repo.schedule else {
            continue;
        };
        let (repo, catalog, pool, datadir) =
            (repo.clone(), catalog.clone(), pool.clone(), datadir.clone());
        let config = config.clone();
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
                match crate::app::sync::sync(&catalog, &pool, &datadir, &repo, &Default::default())
                    .await
                {
                    Ok(r) => {
                        tracing::info!(
                            "{}: scheduled sync {} ({} packages, {} added, {} removed)",
                            repo.id,
                            r.status,
                            r.packages,
                            r.added,
                            r.removed
                        );
                        if r.status == "ok" {
                            if let Err(e) = crate::app::view::refresh_views_of(
                                &catalog, &pool, &datadir, &config, &repo.id,
                            )
                            .await
                            {
                                tracing::error!("{}: republishing its views failed: {e}", repo.id);
                            }
                            let grace = config.server.alias_grace.as_secs() as i64;
                            match crate::app::retention::after_sync(
                                &catalog, &pool, &datadir, &repo, grace,
                            )
                            .await
                            {
                                Ok((created, deleted)) => {
                                    if let Some(name) = created {
                                        tracing::info!("{}: created snapshot {name}", repo.id);
                                    }
                                    for name in deleted {
                                        tracing::info!(
                                            "{}: retention deleted snapshot {name}",
                                            repo.id
                                        );
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(
                                        "{}: snapshot/retention after sync failed: {e}",
                                        repo.id
                                    )
                                }
                            }
                        }
                    }
                    Err(e) => tracing::error!("{}: scheduled sync failed: {e}", repo.id),
                }
            }
        }));
    }
    tasks
}
