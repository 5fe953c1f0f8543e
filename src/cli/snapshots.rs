//! `cairn snapshot …` and `cairn view …`.

use std::process::ExitCode;

use anyhow::Result;

use super::actor;
use super::args::{SnapshotCommand, ViewCommand};
use super::display::{fmt_time, print_snapshots};
use super::App;

pub(super) async fn view_cmd(app: &App, command: ViewCommand) -> Result<ExitCode> {
    match command {
        ViewCommand::List { json } => {
            if json {
                let list: Vec<_> = app
                    .config
                    .views
                    .iter()
                    .map(|v| serde_json::json!({"name": v.name, "repos": v.repos}))
                    .collect();
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for v in &app.config.views {
                    out!("{:<24} {}", v.name, v.repos.join(", "));
                }
            }
        }
        ViewCommand::Show { view, json } => {
            let v = app.view_details(&view).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                out!("view:      {}", v.name);
                out!("repos:     {}", v.repos.join(", "));
                print_snapshots(
                    v.snapshots
                        .iter()
                        .map(|s| (s.name.as_str(), s.created_at, s.package_count)),
                );
            }
        }
        ViewCommand::Snapshot { view, name, json } => {
            let row = app.snapshot_view(&actor(), &view, name).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                out!(
                    "created view snapshot {}/{} with {} packages (members: {})",
                    row.view,
                    row.name,
                    row.package_count,
                    row.members
                        .iter()
                        .map(|(r, s)| format!("{r}/{s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn snapshot_cmd(app: &App, command: SnapshotCommand) -> Result<ExitCode> {
    match command {
        SnapshotCommand::Create { repo, name, json } => {
            let (snap, published) = app.snapshot_repo(&actor(), &repo, name).await?;
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"snapshot": snap, "publish": published})
                    )?
                );
            } else {
                out!(
                    "created snapshot {}/{} with {} packages ({}; {:.3} s)",
                    snap.repo,
                    snap.name,
                    snap.package_count,
                    if published.rendered {
                        "metadata written"
                    } else {
                        "metadata reused"
                    },
                    published.seconds
                );
            }
        }
        SnapshotCommand::Delete { repo, snapshot } => {
            app.delete_snapshot(&actor(), &repo, &snapshot).await?;
            out!("deleted snapshot {repo}/{snapshot}");
        }
        SnapshotCommand::Diff {
            repo,
            from,
            to,
            json,
        } => {
            let d = app.diff(&repo, &from, &to).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                for n in &d.added {
                    out!("added      {}.{} {}", n.name, n.arch, n.evr());
                }
                for n in &d.removed {
                    out!("removed    {}.{} {}", n.name, n.arch, n.evr());
                }
                for c in &d.upgraded {
                    out!("upgraded   {}.{} {} -> {}", c.name, c.arch, c.from, c.to);
                }
                for c in &d.downgraded {
                    out!("downgraded {}.{} {} -> {}", c.name, c.arch, c.from, c.to);
                }
                out!(
                    "{repo} {from} -> {to}: {} added, {} removed, {} upgraded, {} downgraded",
                    d.added.len(),
                    d.removed.len(),
                    d.upgraded.len(),
                    d.downgraded.len()
                );
            }
        }
        SnapshotCommand::List { repo, json } => {
            if let Some(repo) = &repo {
                app.check_owner(repo).await?;
            }
            let snaps = app.catalog.snapshots(repo.as_deref()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&snaps)?);
            } else {
                out!(
                    "{:<20} {:<28} {:<21} {:>9} {:>14}",
                    "REPO",
                    "SNAPSHOT",
                    "CREATED",
                    "PACKAGES",
                    "BYTES"
                );
                for s in snaps {
                    out!(
                        "{:<20} {:<28} {:<21} {:>9} {:>14}",
                        s.repo,
                        s.name,
                        fmt_time(s.created_at),
                        s.package_count,
                        s.total_size
                    );
                }
            }
        }
        SnapshotCommand::Show {
            repo,
            snapshot,
            json,
        } => {
            let s = app.catalog.snapshot(&repo, &snapshot).await?;
            let files = app.catalog.publication_files(s.publication_id).await?;
            if json {
                let files: Vec<_> = files
                    .iter()
                    .map(|f| serde_json::json!({"path": f.path, "type": f.kind, "sha256": f.sha256, "size": f.size}))
                    .collect();
                out!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"snapshot": s, "repodata": files})
                    )?
                );
            } else {
                out!("snapshot: {}/{}", s.repo, s.name);
                out!("created:  {}", fmt_time(s.created_at));
                out!("packages: {}", s.package_count);
                out!("bytes:    {}", s.total_size);
                out!("url:      /repos/{}/{}/", s.repo, s.name);
                for f in files {
                    out!("  {} ({} bytes)", f.path, f.size);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
