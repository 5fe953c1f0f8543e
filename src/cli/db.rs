//! `cairn db migrate|verify`.

use std::process::ExitCode;

use anyhow::Result;

use super::actor;
use super::args::DbCommand;
use super::display::show_progress;
use super::App;

pub(super) async fn db_cmd(app: &App, command: DbCommand) -> Result<ExitCode> {
    match command {
        DbCommand::Migrate => {
            // App::open already applied them.
            out!("catalog migrated ({:?})", app.catalog.backend());
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Verify { repair, from, json } => {
            let progress = std::sync::Arc::new(crate::app::progress::Progress::default());
            let display = show_progress(progress.clone(), "verifying");
            let (report, repaired) = if repair {
                let result = app.repair(&actor(), from.as_deref(), &progress).await;
                display.finish().await;
                let repaired = result?;
                (repaired.after.clone(), Some(repaired))
            } else {
                let result = app.verify(&progress).await;
                display.finish().await;
                (result?, None)
            };
            if json {
                match &repaired {
                    Some(r) => out!("{}", serde_json::to_string_pretty(r)?),
                    None => out!("{}", serde_json::to_string_pretty(&report)?),
                }
            } else {
                if let Some(r) = &repaired {
                    for (sha, to) in &r.quarantined {
                        out!("quarantined  {sha} -> {}", to.display());
                    }
                    for sha in &r.restored {
                        out!("restored     {sha}");
                    }
                    for repo in &r.synced {
                        out!("synced       {repo} (to fetch its missing packages again)");
                    }
                    out!("after the repair:");
                }
                let uses = |sha: &str| {
                    for u in report.used_by.get(sha).into_iter().flatten() {
                        out!("               {u}");
                    }
                };
                for sha in &report.missing {
                    out!("missing      {sha}");
                    uses(sha);
                }
                for (sha, why) in &report.corrupt {
                    out!("corrupt      {sha}: {why}");
                    uses(sha);
                }
                for sha in &report.unreferenced {
                    out!("unreferenced {sha}");
                }
                out!(
                    "{} blobs checked: {} missing, {} corrupt, {} unreferenced",
                    report.checked,
                    report.missing.len(),
                    report.corrupt.len(),
                    report.unreferenced.len()
                );
                if report.not_fetched > 0 {
                    out!(
                        "{} packages of on_demand or streamed repositories are not fetched yet (expected)",
                        report.not_fetched
                    );
                }
            }
            Ok(if report.has_problems() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
