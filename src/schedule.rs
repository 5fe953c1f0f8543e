//! Sync schedules (`schedule = "daily 02:00"` or `"every 6h"`) and the loop that runs
//! them inside `cairn serve`.
//!
//! Scheduled syncs run on the control runtime, not on the serving threads, so a sync
//! never blocks serving; a failing sync is logged and recorded in the sync history, and
//! the next run happens at the next scheduled time.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::pool::Pool;

/// When a repository syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this UTC time.
    Daily { hour: u8, minute: u8 },
    /// At this fixed interval, starting one interval after the server starts.
    Every(Duration),
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Daily { hour, minute } => write!(f, "daily {hour:02}:{minute:02} UTC"),
            Schedule::Every(d) => write!(f, "every {}s", d.as_secs()),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Schedule, String> {
        let s = s.trim();
        let bad = || {
            format!("schedule {s:?}: expected \"daily HH:MM\" (UTC) or \"every N\" with s, m, h or d (e.g. \"every 6h\")")
        };
        if let Some(t) = s.strip_prefix("daily ") {
            let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
            let hour: u8 = h.parse().map_err(|_| bad())?;
            let minute: u8 = m.parse().map_err(|_| bad())?;
            if hour > 23 || minute > 59 {
                return Err(bad());
            }
            return Ok(Schedule::Daily { hour, minute });
        }
        if let Some(t) = s.strip_prefix("every ") {
            let d = crate::config::parse_duration(t).map_err(|_| bad())?;
            if d.is_zero() {
                return Err(bad());
            }
            return Ok(Schedule::Every(d));
        }
        Err(bad())
    }
}

impl Schedule {
    /// How long from `now` (unix seconds) until the next run.
    pub fn wait_from(&self, now: i64) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Daily { hour, minute } => {
                let target = i64::from(*hour) * 3600 + i64::from(*minute) * 60;
                let today = now.rem_euclid(86_400);
                let wait = (target - today).rem_euclid(86_400);
                Duration::from_secs(if wait == 0 { 86_400 } else { wait as u64 })
            }
        }
    }
}

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
                crate::metrics::metrics()
                    .schedule_lag
                    .with_label_values(&[repo.id.as_str()])
                    .set((started - due).max(0));
                match crate::sync::sync(&catalog, &pool, &datadir, &repo, &Default::default()).await
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
                            if let Err(e) = crate::view::refresh_views_of(
                                &catalog, &pool, &datadir, &config, &repo.id,
                            )
                            .await
                            {
                                tracing::error!("{}: republishing its views failed: {e}", repo.id);
                            }
                            let grace = config.server.alias_grace.as_secs() as i64;
                            match crate::retention::after_sync(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_wait() {
        assert_eq!(
            "daily 02:00".parse(),
            Ok(Schedule::Daily { hour: 2, minute: 0 })
        );
        assert_eq!(
            "every 6h".parse(),
            Ok(Schedule::Every(Duration::from_secs(6 * 3600)))
        );
        assert_eq!(
            "every 90s".parse(),
            Ok(Schedule::Every(Duration::from_secs(90)))
        );
        for bad in ["daily 25:00", "weekly", "every 0m", "every 5y", "daily 2"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
        let daily = Schedule::Daily { hour: 2, minute: 0 };
        // 01:00 UTC → one hour; 02:00 → a whole day; 03:00 → 23 hours.
        assert_eq!(daily.wait_from(3600), Duration::from_secs(3600));
        assert_eq!(daily.wait_from(7200), Duration::from_secs(86_400));
        assert_eq!(
            daily.wait_from(86_400 * 3 + 3 * 3600),
            Duration::from_secs(23 * 3600)
        );
    }
}
