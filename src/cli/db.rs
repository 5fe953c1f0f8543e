//! `cairn db migrate|verify`.

use std::process::ExitCode;

use anyhow::Result;

use super::args::DbCommand;
use super::display::show_progress;
use super::App;

pub(super) async fn db_cmd(app: &App, command: DbCommand) -> Result<ExitCode> {
    match command {
        DbCommand::Migrate => {
            // App::open already applied them.
            println!("catalog migrated ({:?})", app.catalog.backend());
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Verify { json } => {
            let progress = std::sync::Arc::new(crate::app::progress::Progress::default());
            let display = show_progress(progress.clone(), "verifying");
            let result = app.verify(&progress).await;
            display.finish().await;
            let report = result?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for sha in &report.missing {
                    println!("missing      {sha}");
                }
                for (sha, why) in &report.corrupt {
                    println!("corrupt      {sha}: {why}");
                }
                for sha in &report.unreferenced {
                    println!("unreferenced {sha}");
                }
                println!(
                    "{} blobs checked: {} missing, {} corrupt, {} unreferenced",
                    report.checked,
                    report.missing.len(),
                    report.corrupt.len(),
                    report.unreferenced.len()
                );
            }
            Ok(if report.has_problems() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
