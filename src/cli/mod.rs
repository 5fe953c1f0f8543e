//! The `cairn` command line: argument parsing, output formatting and exit codes.
//! This is the only layer that uses `anyhow`; everything below returns typed errors.

pub mod demo;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::app::config::Config;
pub use crate::app::context::App;
use crate::domain::status::RunStatus;

/// Cairn: an RPM mirror appliance.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// Configuration file (default: $CAIRN_CONFIG, else ./cairn.toml if present).
    #[arg(long, global = true, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a starter config (if missing), create the data dir and apply migrations.
    Init,
    /// Serve every snapshot and `latest` over HTTP.
    Serve {
        /// Override `server.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Add local .rpm files (files or directories, recursively) to a local repository.
    Import {
        repo: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Repositories.
    Repo {
        #[command(subcommand)]
        command: RepoCommand,
    },
    /// Immutable snapshots of repositories.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Write N generated sample packages into DIR (for benchmarks and load tests).
    #[command(hide = true)]
    Generate {
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Instead, write one package with this many bytes of payload.
        #[arg(long)]
        payload_bytes: Option<usize>,
        /// The name of that package.
        #[arg(long, default_value = "large")]
        name: String,
    },
    /// Views: repositories published together.
    View {
        #[command(subcommand)]
        command: ViewCommand,
    },
    /// Point an alias (e.g. `prod`) of a repository or a view at one of its snapshots;
    /// switching is atomic, and rolling back is publishing the older snapshot again.
    Publish {
        repo: String,
        snapshot: String,
        /// The alias, served at /repos/REPO/ALIAS/.
        #[arg(long = "as", value_name = "ALIAS")]
        alias: String,
    },
    /// Remove catalog rows and pool blobs that nothing references any more.
    Gc {
        /// Only report what would be freed.
        #[arg(long)]
        dry_run: bool,
        /// Keep anything younger than this ("1h", "30m"): work in progress may be about
        /// to reference it. Never set it below how long your imports and syncs take.
        #[arg(long, default_value = "1h", value_parser = crate::domain::schedule::parse_duration)]
        min_age: std::time::Duration,
        #[arg(long)]
        json: bool,
    },
    /// Catalog maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Build sample packages, import, snapshot and serve them: works offline.
    Demo {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Keep the demo's files in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// List repositories.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one repository, with its latest syncs.
    Show {
        repo: String,
        #[arg(long)]
        json: bool,
    },
    /// Mirror upstream: one repository with a feed, or all of them.
    Sync {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        repo: Option<String>,
        /// Sync every repository that has a feed.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ViewCommand {
    /// List the views of the config.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a view: members and snapshots.
    Show {
        view: String,
        #[arg(long)]
        json: bool,
    },
    /// Snapshot every member repository and the view together, atomically.
    Snapshot {
        view: String,
        /// Snapshot name (default: the UTC date and time); each member gets a snapshot of
        /// the same name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending catalog migrations.
    Migrate,
    /// Re-hash every pool blob on all cores and check every catalog reference.
    /// Exits non-zero when a referenced blob is missing or corrupt; unreferenced
    /// blobs (left by interrupted work) are listed but are not an error.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Freeze a repository's current content.
    Create {
        repo: String,
        /// Snapshot name (default: the UTC date and time, e.g. 2026-11-23T120000Z).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List snapshots (of one repository, or all).
    List {
        repo: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot of a repository or a view (refused while an alias or a view
    /// snapshot uses it, or an alias used it within the grace period). Its files stay in
    /// the pool until garbage collection.
    Delete { repo: String, snapshot: String },
    /// What changed between two snapshots of a repository, by name.arch.
    Diff {
        repo: String,
        from: String,
        to: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one snapshot.
    Show {
        repo: String,
        snapshot: String,
        #[arg(long)]
        json: bool,
    },
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    // A server's control runtime (pages, scheduled syncs) keeps two workers. A one-shot
    // command runs its tasks on one thread and its CPU and disk work on threads of
    // their own: tasks never hop between workers, which measurably cuts the context
    // switches and CPU time of a sync of many small packages.
    let mut builder = if matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| AroundTheBar)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// The progress bar on screen, if any (see [`show_progress`]).
static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Standard error for log lines: while a progress bar is on screen, each line is
/// written with the bar taken off and drawn again below it, so the two never share a
/// line.
struct AroundTheBar;

impl std::io::Write for AroundTheBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Everything a command needs: config, data dir, pool, catalog.
fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None if Path::new("cairn.toml").is_file() => Ok(Config::load(Path::new("cairn.toml"))?),
        None => Ok(Config::default()),
    }
}

/// What `cairn init` writes when the config file does not exist yet.
const STARTER_CONFIG: &str = r#"# Cairn configuration (every key: config/cairn.example.toml in the source tree).

[server]
listen = "127.0.0.1:8080"
data_dir = "./cairn-data"

# A local repository, filled with `cairn import local FILE|DIR...`.
[[repo]]
id = "local"

# A mirror of an upstream yum repository, filled with `cairn repo sync epel9`:
# [[repo]]
# id = "epel9"
# feed = "https://mirror.example/epel/9/Everything/x86_64/"
"#;

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Demo { listen, dir } = &cli.command {
        return crate::cli::demo::run(*listen, dir.clone()).await;
    }
    if let Command::Generate {
        dir,
        count,
        payload_bytes,
        name,
    } = &cli.command
    {
        let files = match payload_bytes {
            Some(bytes) => vec![crate::formats::samples::large_package(dir, name, *bytes)?],
            None => crate::formats::samples::generate(dir, *count)?,
        };
        println!("wrote {} packages to {}", files.len(), dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Init = cli.command {
        let path = cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("cairn.toml"));
        if !path.exists() {
            std::fs::write(&path, STARTER_CONFIG)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote a starter config to {}", path.display());
        }
        let app = App::open(Config::load(&path)?).await?;
        println!(
            "data dir {} ready, catalog migrated ({:?})",
            app.datadir.root().display(),
            app.catalog.backend()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let config = load_config(cli.config.as_deref())?;
    let app = App::open(config).await?;
    match cli.command {
        Command::Init | Command::Demo { .. } | Command::Generate { .. } => {
            unreachable!("handled above")
        }
        Command::Serve { listen } => serve(app, listen).await,
        Command::Import { repo, paths, json } => import(&app, &repo, &paths, json).await,
        Command::Repo { command } => repo_cmd(&app, command).await,
        Command::Snapshot { command } => snapshot_cmd(&app, command).await,
        Command::Db { command } => db_cmd(&app, command).await,
        Command::View { command } => view_cmd(&app, command).await,
        Command::Gc {
            dry_run,
            min_age,
            json,
        } => {
            let report = app.gc(min_age, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} {} blobs ({} bytes), {} publications and {} packages from the catalog",
                    if dry_run { "would free" } else { "freed" },
                    report.blobs,
                    report.bytes,
                    report.rows.publications,
                    report.rows.packages
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish {
            repo,
            snapshot,
            alias,
        } => {
            let previous = app.set_alias(&repo, &snapshot, &alias).await?.previous;
            match previous {
                Some(old) if old != snapshot => {
                    println!("{repo}/{alias}: {old} -> {snapshot} (the files of {old} stay served under {alias} for the grace period)")
                }
                Some(_) => println!("{repo}/{alias} already points at {snapshot}"),
                None => println!("{repo}/{alias} -> {snapshot}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(app: App, listen: Option<std::net::SocketAddr>) -> Result<ExitCode> {
    let addr = listen.unwrap_or(app.config.server.listen);
    for repo in &app.config.repos {
        app.catalog.ensure_repo(&repo.id).await?;
    }
    for view in &app.config.views {
        crate::app::view::publish_latest(&app.catalog, &app.pool, view).await?;
    }
    let server = crate::http::Server::start(
        app.catalog.clone(),
        app.pool.clone(),
        app.datadir.clone(),
        addr,
        app.config.server.workers,
        app.config.server.alias_grace,
        crate::http::Limits::from_config(&app.config.server),
    )
    .await?;
    println!("listening on http://{}/", server.addr);
    let scheduled = crate::app::scheduler::start(&app);
    wait_for_shutdown().await;
    for task in scheduled {
        task.abort();
    }
    tracing::info!("shutting down: draining connections");
    tokio::task::spawn_blocking(move || server.stop()).await?;
    app.catalog.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn import(app: &App, repo: &str, paths: &[PathBuf], json: bool) -> Result<ExitCode> {
    if app.config.repo(repo).is_none() {
        bail!(
            "repository {repo:?} is not declared in the config (add a [[repo]] with id = {repo:?})"
        );
    }
    if app.config.repo(repo).is_some_and(|r| r.feed.is_some()) {
        bail!("repository {repo:?} mirrors a feed; import into a local repository instead");
    }
    let progress = std::sync::Arc::new(crate::app::progress::Progress::default());
    let display = show_progress(progress.clone(), "reading");
    let result = crate::app::import::import(
        &app.catalog,
        &app.pool,
        &app.datadir,
        repo,
        app.compression(repo),
        paths,
        progress,
    )
    .await;
    display.finish().await;
    let report = result?;
    if report.published.is_some() {
        crate::app::view::refresh_views_of(
            &app.catalog,
            &app.pool,
            &app.datadir,
            &app.config,
            repo,
        )
        .await?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for r in &report.replaced {
            println!(
                "replaced {} ({} -> {})",
                r.location,
                &r.old_sha256[..12],
                &r.new_sha256[..12]
            );
        }
        for s in &report.skipped {
            eprintln!("skipped {}: {}", s.path.display(), s.reason);
        }
        println!(
            "{repo}: {} added, {} replaced, {} already present, {} skipped",
            report.added.len(),
            report.replaced.len(),
            report.unchanged,
            report.skipped.len()
        );
        if let Some(p) = &report.published {
            println!(
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

/// Shows long work's progress on stderr: on a terminal a bar with files, bytes, the
/// byte rate and the time left (drawn once the work is counted); otherwise a log line
/// with the same facts every 5 s.
fn show_progress(p: std::sync::Arc<crate::app::progress::Progress>, verb: &'static str) -> Display {
    use std::time::{Duration, Instant};
    let terminal = std::io::stderr().is_terminal();
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut bar: Option<indicatif::ProgressBar> = None;
        let mut rate =
            crate::app::progress::Rate::new(Duration::from_secs(if terminal { 1 } else { 5 }));
        loop {
            let (reading, closed) = rate.read(&p, Instant::now());
            if terminal && reading.total > 0 {
                let bar = bar.get_or_insert_with(|| {
                    let bar = indicatif::ProgressBar::new(0);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(&format!(
                            "{{spinner}} {verb} [{{bar:30}}] {{msg}}"
                        ))
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    if let Ok(mut on_screen) = BAR.lock() {
                        *on_screen = Some(bar.clone());
                    }
                    bar
                });
                let (position, length) = reading.bar();
                bar.set_length(length);
                bar.set_position(position);
                bar.set_message(reading.describe());
            } else if !terminal && closed {
                tracing::info!("{verb} {}", reading.describe());
            }
            if reading.finished() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.notified() => break,
            }
        }
        // Cleared, so that what the command prints next starts on a clean line.
        if let Some(bar) = &bar {
            if let Ok(mut on_screen) = BAR.lock() {
                *on_screen = None;
            }
            bar.finish_and_clear();
        }
    });
    Display { stop, task }
}

/// A running [`show_progress`].
struct Display {
    stop: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Display {
    /// Stops the display and clears its bar.
    async fn finish(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

async fn view_cmd(app: &App, command: ViewCommand) -> Result<ExitCode> {
    let get = |name: &str| {
        app.config
            .view(name)
            .with_context(|| format!("view {name:?} is not declared in the config"))
    };
    match command {
        ViewCommand::List { json } => {
            if json {
                let list: Vec<_> = app
                    .config
                    .views
                    .iter()
                    .map(|v| serde_json::json!({"name": v.name, "repos": v.repos}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for v in &app.config.views {
                    println!("{:<24} {}", v.name, v.repos.join(", "));
                }
            }
        }
        ViewCommand::Show { view, json } => {
            let v = get(&view)?;
            let snaps = app.catalog.view_snapshots(&view).await?;
            if json {
                let doc = serde_json::json!({"name": v.name, "repos": v.repos, "snapshots": snaps});
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("view:      {}", v.name);
                println!("repos:     {}", v.repos.join(", "));
                for s in snaps {
                    println!(
                        "  {} ({}, {} packages)",
                        s.name,
                        fmt_time(s.created_at),
                        s.package_count
                    );
                }
            }
        }
        ViewCommand::Snapshot { view, name, json } => {
            let row = app.snapshot_view(&view, name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                println!(
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

async fn db_cmd(app: &App, command: DbCommand) -> Result<ExitCode> {
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

async fn sync_cmd(app: &App, repo: Option<String>, all: bool, json: bool) -> Result<ExitCode> {
    let targets = app.sync_targets(if all {
        None
    } else {
        Some(repo.as_deref().unwrap_or(""))
    })?;
    let mut failed = false;
    let mut reports = serde_json::Map::new();
    for r in targets {
        let progress = std::sync::Arc::new(crate::app::progress::Progress::default());
        let display = show_progress(progress.clone(), "downloading");
        let result = app.sync(r, &progress).await;
        display.finish().await;
        match result {
            Ok(synced) => {
                let report = &synced.report;
                if !json {
                    if let Some(name) = &synced.snapshot_created {
                        println!("{}: created snapshot {name}", r.id);
                    }
                    for name in &synced.snapshots_deleted {
                        println!("{}: retention deleted snapshot {name}", r.id);
                    }
                    println!(
                        "{}: {} ({} packages, {} added, {} removed, {} downloaded, {} bytes)",
                        r.id,
                        report.status,
                        report.packages,
                        report.added,
                        report.removed,
                        report.downloaded,
                        report.bytes
                    );
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
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn fmt_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

async fn repo_cmd(app: &App, command: RepoCommand) -> Result<ExitCode> {
    for repo in &app.config.repos {
        app.catalog.ensure_repo(&repo.id).await?;
    }
    match command {
        RepoCommand::List { json } => {
            let repos = app.catalog.repos().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&repos)?);
            } else {
                println!(
                    "{:<24} {:>9} {:>14} {:>9}",
                    "REPO", "PACKAGES", "BYTES", "SNAPSHOTS"
                );
                for r in repos {
                    println!(
                        "{:<24} {:>9} {:>14} {:>9}",
                        r.name, r.package_count, r.total_size, r.snapshot_count
                    );
                }
            }
        }
        RepoCommand::Sync { repo, all, json } => return sync_cmd(app, repo, all, json).await,
        RepoCommand::Show { repo, json } => {
            let Some(r) = app.catalog.repo(&repo).await? else {
                bail!("unknown repository {repo:?}");
            };
            let snaps = app.catalog.snapshots(Some(&repo)).await?;
            let syncs = app.catalog.sync_runs(r.id, 10).await?;
            let aliases = app.catalog.aliases(Some(&repo)).await?;
            if json {
                let doc = serde_json::json!({"repo": r, "snapshots": snaps, "aliases": aliases, "syncs": syncs});
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("repo:      {}", r.name);
                println!("packages:  {}", r.package_count);
                println!("bytes:     {}", r.total_size);
                println!("snapshots: {}", r.snapshot_count);
                for s in snaps {
                    println!(
                        "  {} ({}, {} packages)",
                        s.name,
                        fmt_time(s.created_at),
                        s.package_count
                    );
                }
                for a in &aliases {
                    println!("  alias {} -> {}", a.name, a.snapshot);
                }
                if !syncs.is_empty() {
                    println!("syncs, newest first:");
                }
                for s in syncs {
                    println!(
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

async fn snapshot_cmd(app: &App, command: SnapshotCommand) -> Result<ExitCode> {
    match command {
        SnapshotCommand::Create { repo, name, json } => {
            let (snap, published) = app.snapshot_repo(&repo, name).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"snapshot": snap, "publish": published})
                    )?
                );
            } else {
                println!(
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
            app.delete_snapshot(&repo, &snapshot).await?;
            println!("deleted snapshot {repo}/{snapshot}");
        }
        SnapshotCommand::Diff {
            repo,
            from,
            to,
            json,
        } => {
            let a = app.catalog.snapshot(&repo, &from).await?;
            let b = app.catalog.snapshot(&repo, &to).await?;
            let (left, right) = app.catalog.snapshot_diff_candidates(a.id, b.id).await?;
            let d = crate::formats::diff::diff(&left, &right);
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                for n in &d.added {
                    println!("added      {}.{} {}", n.name, n.arch, n.evr());
                }
                for n in &d.removed {
                    println!("removed    {}.{} {}", n.name, n.arch, n.evr());
                }
                for c in &d.upgraded {
                    println!("upgraded   {}.{} {} -> {}", c.name, c.arch, c.from, c.to);
                }
                for c in &d.downgraded {
                    println!("downgraded {}.{} {} -> {}", c.name, c.arch, c.from, c.to);
                }
                println!(
                    "{repo} {from} -> {to}: {} added, {} removed, {} upgraded, {} downgraded",
                    d.added.len(),
                    d.removed.len(),
                    d.upgraded.len(),
                    d.downgraded.len()
                );
            }
        }
        SnapshotCommand::List { repo, json } => {
            let snaps = app.catalog.snapshots(repo.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&snaps)?);
            } else {
                println!(
                    "{:<20} {:<28} {:<21} {:>9} {:>14}",
                    "REPO", "SNAPSHOT", "CREATED", "PACKAGES", "BYTES"
                );
                for s in snaps {
                    println!(
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
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"snapshot": s, "repodata": files})
                    )?
                );
            } else {
                println!("snapshot: {}/{}", s.repo, s.name);
                println!("created:  {}", fmt_time(s.created_at));
                println!("packages: {}", s.package_count);
                println!("bytes:    {}", s.total_size);
                println!("url:      /repos/{}/{}/", s.repo, s.name);
                for f in files {
                    println!("  {} ({} bytes)", f.path, f.size);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
