//! The `cairn` command line: argument parsing, output formatting and exit codes.
//! This is the only layer that uses `anyhow`; everything below returns typed errors.

/// `println!` for command output. When the reader went away (`cairn … --json | head`)
/// the command ends quietly with 141 (128 + SIGPIPE), as the shell's own tools do,
/// instead of panicking.
macro_rules! out {
    () => {
        $crate::cli::write_out(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

mod admin;
mod args;
mod db;
pub mod demo;
mod display;
mod repos;
mod snapshots;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::app::config::Config;
pub use crate::app::context::App;
pub use args::{AliasCommand, Cli, Command, DbCommand, RepoCommand, SnapshotCommand, ViewCommand};
use db::db_cmd;
use display::AroundTheBar;
use repos::{import, repo_cmd};
use snapshots::{snapshot_cmd, view_cmd};

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // A server's control runtime (pages, scheduled syncs) keeps two workers. A one-shot
    // command runs its tasks on one thread and its CPU and disk work on threads of
    // their own: tasks never hop between workers, which measurably cuts the context
    // switches and CPU time of a sync of many small packages.
    let mut builder = if matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        give_back_large_buffers();
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
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// For a one-shot command: every buffer of 128 KiB or more is mapped on its own and
/// unmapped when freed, freed heap above 128 KiB is returned, and threads share two
/// heaps, instead of glibc's defaults, which raise the mapping threshold as large
/// buffers are freed (then keep them in the heap) and give each new thread a heap of
/// its own, up to eight per core (a batch's reader threads each leave freed memory in
/// theirs). A sync or import of a large repository frees hundreds of megabytes of
/// batches, chunks and pages from phase to phase; with the defaults, the peak RSS of
/// a 100,000-package sync was 15 % higher and of an import 27 % (bench/memory.sh),
/// for the same time.
fn give_back_large_buffers() {
    // SAFETY: mallopt only sets allocator parameters; calling it at any time is allowed.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// An error and its causes on one line, each cause once: many messages already end
/// with their cause's text, which the chain would repeat.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Writes one line of command output (see `out!`).
pub(crate) fn write_out(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("error: writing the output: {e}");
            std::process::exit(1);
        }
    }
}

fn init_logging(format: args::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| AroundTheBar)
        .with_target(false);
    let _ = match format {
        args::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // One JSON object per line: time, level, message and the event's fields.
        args::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
}

/// Everything a command needs: config, data dir, pool, catalog.
/// The configuration: `--config` (or `$CAIRN_CONFIG`), else `./cairn.toml`. Without
/// one, commands refuse rather than make a site in whatever directory they run in.
fn config_path(path: Option<&Path>) -> Result<PathBuf> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None if Path::new("cairn.toml").is_file() => Ok(PathBuf::from("cairn.toml")),
        None => {
            let here = std::env::current_dir()
                .map(|d| d.join("cairn.toml").display().to_string())
                .unwrap_or_else(|_| "./cairn.toml".into());
            anyhow::bail!(
                "no configuration: looked for --config, $CAIRN_CONFIG and {here}; \
                 create one with `cairn init` (or `cairn --config FILE init`)"
            )
        }
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
        files,
        changelogs,
        payload_bytes,
        name,
    } = &cli.command
    {
        let files = match payload_bytes {
            Some(bytes) => vec![crate::formats::samples::large_package(dir, name, *bytes)?],
            None => {
                crate::formats::samples::generate_rich(dir, *count, (*files).max(1), *changelogs)?
            }
        };
        out!("wrote {} packages to {}", files.len(), dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Completions { shell } = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut command, "cairn", &mut script);
        out!("{}", String::from_utf8_lossy(&script).trim_end());
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Man { dir } = &cli.command {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let command = <Cli as clap::CommandFactory>::command();
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("writing the manual pages into {}", dir.display()))?;
        out!("wrote the manual pages into {}", dir.display());
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
            out!("wrote a starter config to {}", path.display());
        }
        let app = App::open(Config::load(&path)?).await?;
        out!(
            "data dir {} ready, catalog migrated ({:?})",
            app.datadir.root().display(),
            app.catalog.backend()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let config_file = config_path(cli.config.as_deref())?;
    let app = App::open(Config::load(&config_file)?).await?;
    match cli.command {
        Command::Init
        | Command::Demo { .. }
        | Command::Generate { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => {
            unreachable!("handled above")
        }
        Command::Serve { listen } => serve(app, &config_file, listen).await,
        Command::Import {
            repo,
            paths,
            gpgcheck,
            json,
        } => import(&app, &repo, &paths, gpgcheck.map(Into::into), json).await,
        Command::Repo { command } => repo_cmd(&app, command).await,
        Command::Snapshot { command } => snapshot_cmd(&app, command).await,
        Command::Db { command } => db_cmd(&app, command).await,
        Command::Token { command } => admin::token_cmd(&app, command).await,
        Command::Audit {
            since,
            actor,
            operation,
            limit,
            json,
        } => {
            let filter = crate::store::catalog::AuditFilter {
                since: since
                    .map(|d| time::OffsetDateTime::now_utc().unix_timestamp() - d.as_secs() as i64),
                actor,
                operation,
                before_id: None,
                limit: limit.max(1),
            };
            admin::audit_cmd(&app, &filter, json).await
        }
        Command::View { command } => view_cmd(&app, command).await,
        Command::Gc {
            dry_run,
            min_age,
            no_wait,
            json,
        } => {
            // Interrupting gc is safe as it is (see `app::gc`): no stop is wired here.
            let progress = std::sync::Arc::default();
            let report = app
                .gc(&actor(), min_age, dry_run, !no_wait, &progress)
                .await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!(
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
        Command::Alias {
            command: AliasCommand::Delete { repo, alias },
        } => {
            app.delete_alias(&actor(), &repo, &alias).await?;
            out!("{repo}/{alias} removed");
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish {
            repo,
            snapshot,
            alias,
        } => {
            let previous = app
                .set_alias(&actor(), &repo, &snapshot, &alias)
                .await?
                .previous;
            match previous {
                Some(old) if old != snapshot => {
                    out!("{repo}/{alias}: {old} -> {snapshot} (the files of {old} stay served under {alias} for the grace period)")
                }
                Some(_) => out!("{repo}/{alias} already points at {snapshot}"),
                None => out!("{repo}/{alias} -> {snapshot}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Who a command's changes are audited as: the unix user running it.
pub(crate) fn actor() -> crate::domain::actor::Actor {
    crate::domain::actor::Actor::Cli(crate::store::datadir::current_user())
}

/// Runs the server until SIGTERM or SIGINT. SIGHUP (or `POST /api/v1/config/reload`)
/// re-reads `config_file`: new repositories, views, schedules, webhooks, keys and access
/// rules take effect at once; a configuration with errors is refused with the messages
/// a start would give, and the old one stays in force.
pub async fn serve(
    app: App,
    config_file: &Path,
    listen: Option<std::net::SocketAddr>,
) -> Result<ExitCode> {
    let addr = listen.unwrap_or(app.config.server.listen);
    let mut signals = Shutdown::install();
    app.prepare_serving().await?;
    let mut server = crate::http::Server::for_app(&app, addr).await?;
    out!("listening on http://{}/", server.addr);
    let mut reloads = server.take_reload_requests();
    let mut app = app;
    let mut tasks = background(&app);
    loop {
        let next_reload = async {
            match reloads.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        let (outcome, reply) = tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop => break,
                Signal::Reload => {
                    let by = crate::domain::actor::Actor::Signal("SIGHUP");
                    let change = crate::app::audit::Change::new("config.reload", "");
                    let outcome = app
                        .audited(&by, change, async {
                            reload(&app, config_file).await.map_err(crate::app::context::AppError::Reload)
                        })
                        .await
                        .map_err(|e| e.to_string());
                    (outcome, None)
                }
            },
            Some(reply) = next_reload => (reload(&app, config_file).await, Some(reply)),
        };
        let answer = match outcome {
            Ok((new, summary)) => {
                server.reconfigure(&new);
                for task in tasks.drain(..) {
                    task.abort();
                }
                app = new;
                tasks = background(&app);
                tracing::info!(
                    "configuration reloaded from {}: {summary}",
                    config_file.display()
                );
                Ok(summary)
            }
            Err(e) => {
                tracing::error!("configuration not reloaded, the old one stays in force: {e}");
                Err(e)
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(answer);
        }
    }
    for task in tasks {
        task.abort();
    }
    tracing::info!("shutting down: draining connections");
    tokio::task::spawn_blocking(move || server.stop()).await?;
    app.catalog.close().await;
    Ok(ExitCode::SUCCESS)
}

/// What a server runs besides serving: scheduled syncs and webhook deliveries.
fn background(app: &App) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = crate::app::scheduler::start(app);
    tasks.extend(crate::app::webhooks::start(app));
    tasks
}

/// Reads `config_file` again and makes the installation with it ready to serve;
/// returns it and what changed, or why it was refused (as a start would say it).
async fn reload(app: &App, config_file: &Path) -> Result<(App, serde_json::Value), String> {
    let config = Config::load(config_file).map_err(|e| e.to_string())?;
    let new = app.reconfigured(config).map_err(|e| e.to_string())?;
    new.prepare_serving().await.map_err(|e| e.to_string())?;
    let names = |c: &Config| -> (Vec<String>, Vec<String>) {
        (
            c.repos.iter().map(|r| r.id.clone()).collect(),
            c.views.iter().map(|v| v.name.clone()).collect(),
        )
    };
    let ((old_repos, old_views), (repos, views)) = (names(&app.config), names(&new.config));
    let added = |old: &[String], new: &[String]| -> Vec<String> {
        new.iter().filter(|n| !old.contains(n)).cloned().collect()
    };
    let summary = serde_json::json!({
        "repos": repos.len(),
        "views": views.len(),
        "webhooks": new.config.webhooks.len(),
        "repos_added": added(&old_repos, &repos),
        "repos_removed": added(&repos, &old_repos),
        "views_added": added(&old_views, &views),
        "views_removed": added(&views, &old_views),
    });
    Ok((new, summary))
}

/// SIGTERM and SIGINT end a server; SIGHUP asks it to reload its configuration
/// (without it, SIGHUP would end the process with a status systemd's
/// `Restart=on-failure` does not restart). Installed before the server announces
/// itself, so no signal sent after that finds the default action.
pub(super) struct Shutdown {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

/// What a signal asks of the server.
pub(super) enum Signal {
    Stop,
    Reload,
}

impl Shutdown {
    pub(super) fn install() -> Shutdown {
        use tokio::signal::unix::{signal, SignalKind};
        Shutdown {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The next signal.
    pub(super) async fn next(&mut self) -> Signal {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        if self.term.is_none() && self.int.is_none() {
            let _ = tokio::signal::ctrl_c().await;
            return Signal::Stop;
        }
        tokio::select! {
            _ = next(&mut self.term) => Signal::Stop,
            _ = next(&mut self.int) => Signal::Stop,
            _ = next(&mut self.hup) => Signal::Reload,
        }
    }

    /// Waits for SIGTERM or SIGINT (a SIGHUP is logged and ignored).
    pub(super) async fn wait(mut self) {
        loop {
            if let Signal::Stop = self.next().await {
                return;
            }
            tracing::warn!("SIGHUP: nothing to reload here (still running)");
        }
    }
}
