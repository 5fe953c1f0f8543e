//! `cairn import`, `cairn repo sync`, `cairn repo list|show`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::actor;
use super::args::RepoCommand;
use super::display::{fmt_time, print_snapshots, show_progress};
use super::App;
use crate::app::config::GpgCheck;
use crate::app::reads::PackageFilter;
use crate::app::sync::SyncError;
use crate::domain::status::RunStatus;
use crate::store::catalog::Space;

pub(super) async fn import(
    app: &App,
    repo: &str,
    paths: &[PathBuf],
    gpgcheck: Option<GpgCheck>,
    json: bool,
) -> Result<ExitCode> {
    let progress = std::sync::Arc::new(crate::app::progress::Progress::default());
    let display = show_progress(progress.clone(), "reading");
    let result = app.import(&actor(), repo, paths, gpgcheck, progress).await;
    display.finish().await;
    let report = result?;
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for r in &report.replaced {
            out!(
                "replaced {} ({} -> {})",
                r.location,
                &r.old_sha256[..12],
                &r.new_sha256[..12]
            );
        }
        for s in &report.skipped {
            eprintln!("skipped {}: {}", s.path.display(), s.reason);
        }
        for s in &report.untrusted {
            eprintln!("imported {} although {}", s.path.display(), s.reason);
        }
        for s in &report.superseded {
            out!(
                "superseded {} by {} (both {}; the later file given is used)",
                s.path.display(),
                s.by.display(),
                s.location
            );
        }
        out!(
            "{repo}: {} added, {} replaced, {} already present, {} skipped",
            report.added.len(),
            report.replaced.len(),
            report.unchanged,
            report.skipped.len()
        );
        if let Some(p) = &report.published {
            out!(
                "published {repo}/latest: {} packages{}",
                p.package_count,
                if p.rendered {
                    ""
                } else {
                    " (unchanged metadata reused)"
                }
            );
        }
    }
    Ok(if report.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub(super) async fn sync_cmd(
    app: &App,
    repo: Option<String>,
    all: bool,
    json: bool,
) -> Result<ExitCode> {
    let targets = app.sync_targets(if all {
        None
    } else {
        Some(repo.as_deref().unwrap_or(""))
    })?;
    let mut failed = false;
    let mut interrupted = false;
    let mut reports = serde_json::Map::new();
    for r in targets {
        if interrupted {
            break; // the other repositories are not started
        }
        let progress = std::sync::Arc::new(crate::app::progress::Progress::default());
        let signals = stop_on_signal(progress.clone());
        let display = show_progress(progress.clone(), "downloading");
        let result = app.sync(&actor(), r, &progress).await;
        display.finish().await;
        signals.abort();
        if let Err(crate::app::context::AppError::Sync(SyncError::Interrupted { .. })) = &result {
            interrupted = true;
        }
        match result {
            Ok(synced) => {
                let report = &synced.report;
                if !json {
                    if let Some(name) = &synced.snapshot_created {
                        out!("{}: created snapshot {name}", r.id);
                    }
                    for name in &synced.snapshots_deleted {
                        out!("{}: retention deleted snapshot {name}", r.id);
                    }
                    out!(
                        "{}: {} ({} packages, {} added, {} removed, {} downloaded, {} bytes)",
                        r.id,
                        report.status,
                        report.packages,
                        report.added,
                        report.removed,
                        report.downloaded,
                        report.bytes
                    );
                    for w in &report.warnings {
                        out!("{}: warning: {w}", r.id);
                    }
                }
                reports.insert(r.id.clone(), serde_json::to_value(report)?);
            }
            Err(crate::app::context::AppError::Sync(e)) => {
                failed = true;
                eprintln!("{}: sync failed: {e}", r.id);
                reports.insert(
                    r.id.clone(),
                    serde_json::json!({"status": RunStatus::Failed, "error": e.to_string()}),
                );
            }
            Err(other) => return Err(other.into()),
        }
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if interrupted {
        ExitCode::from(130)
    } else if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Ctrl-C or SIGTERM during a sync: the first asks it to stop at its next safe point,
/// keeping finished downloads; a second ends the process at once.
fn stop_on_signal(
    progress: std::sync::Arc<crate::app::progress::Progress>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        for first in [true, false] {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if first {
                eprintln!(
                    "stopping: finished downloads are kept (interrupt again to quit at once)"
                );
                progress.stop.request();
            } else {
                std::process::exit(130);
            }
        }
    })
}

pub(super) async fn repo_cmd(app: &App, command: RepoCommand) -> Result<ExitCode> {
    for repo in &app.config.repos {
        app.catalog.ensure_repo(&repo.id).await?;
    }
    match command {
        RepoCommand::List { json } => {
            let repos = app.catalog.repos().await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&repos)?);
            } else {
                out!(
                    "{:<24} {:>9} {:>14} {:>9}",
                    "REPO",
                    "PACKAGES",
                    "BYTES",
                    "SNAPSHOTS"
                );
                for r in repos {
                    out!(
                        "{:<24} {:>9} {:>14} {:>9}",
                        r.name,
                        r.package_count,
                        r.total_size,
                        r.snapshot_count
                    );
                }
            }
        }
        RepoCommand::Sync { repo, all, json } => return sync_cmd(app, repo, all, json).await,
        RepoCommand::Fetch { repo, tree, json } => {
            let tree = tree.unwrap_or_else(|| "latest".to_string());
            let progress = std::sync::Arc::new(crate::app::progress::Progress::default());
            let signals = stop_on_signal(progress.clone());
            let display = show_progress(progress.clone(), "fetching");
            let result = app.fetch_tree(&actor(), &repo, &tree, &progress).await;
            display.finish().await;
            signals.abort();
            let report = result?;
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!(
                    "{repo}/{tree}: {} packages, {} fetched now ({} bytes), {} stored already",
                    report.packages,
                    report.fetched,
                    report.bytes,
                    report.stored
                );
            }
        }
        RepoCommand::Packages {
            repo,
            tree,
            unsigned,
            json,
        } => {
            let filter = PackageFilter {
                unsigned,
                limit: i64::MAX,
                ..Default::default()
            };
            let listed = app
                .tree_packages(Space::Repos, &repo, &tree, &filter)
                .await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                for p in &listed.packages {
                    let sig = match &p.signature {
                        None => "signature not read".to_string(),
                        Some(s) if s.algorithm == "none" => "unsigned".to_string(),
                        Some(s) => match &s.key_id {
                            Some(k) => format!("{} {k}", s.algorithm),
                            None => s.algorithm.clone(),
                        },
                    };
                    out!("{}  {sig}", p.location);
                }
            }
        }
        RepoCommand::Republish { name } => {
            let done = app.republish(&actor(), name.as_deref()).await?;
            if done.is_empty() {
                out!("nothing to republish: every latest is rendered with the current settings");
            }
            for n in done {
                out!("republished {n}/latest");
            }
        }
        RepoCommand::Show { repo, json } => {
            let details = app.repo_details(&repo, 10).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&details)?);
            } else {
                let (r, snaps, aliases, syncs) = (
                    details.repo,
                    details.snapshots,
                    details.aliases,
                    details.syncs,
                );
                out!("repo:      {}", r.name);
                out!("packages:  {}", r.package_count);
                out!("bytes:     {}", r.total_size);
                out!("snapshots: {}", r.snapshot_count);
                print_snapshots(
                    snaps
                        .iter()
                        .map(|s| (s.name.as_str(), s.created_at, s.package_count)),
                );
                for a in &aliases {
                    out!("  alias {} -> {}", a.name, a.snapshot);
                }
                if !syncs.is_empty() {
                    out!("syncs, newest first:");
                }
                for s in syncs {
                    out!(
                        "  {} {:<9} +{} -{}, {} downloaded ({} bytes){}",
                        fmt_time(s.started_at),
                        s.status,
                        s.packages_added,
                        s.packages_removed,
                        s.packages_downloaded,
                        s.bytes_downloaded,
                        s.error.map(|e| format!(": {e}")).unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
