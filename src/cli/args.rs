//! The command line's arguments (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Cairn: an RPM mirror appliance.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// Configuration file (default: $CAIRN_CONFIG, else ./cairn.toml if present).
    #[arg(long, global = true, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines on standard error as text or as JSON objects, one per line (for a
    /// log collector). The level is set with $CAIRN_LOG (default "info").
    #[arg(long, global = true, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
        /// Check the packages' header signatures against the repository's gpgkeys:
        /// "require" (skip, naming them, packages that are unsigned or signed by another
        /// key), "warn" (import them and report them) or "off". Default: the
        /// repository's gpgcheck.
        #[arg(long, value_enum)]
        gpgcheck: Option<GpgCheckArg>,
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
        /// Files per generated package (a distribution's packages have tens).
        #[arg(long, default_value_t = 1)]
        files: usize,
        /// Changelog entries per generated package.
        #[arg(long, default_value_t = 0)]
        changelogs: usize,
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
    /// Aliases of repositories and views (set one with `cairn publish`).
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
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
        /// Keep unreferenced blobs and rows younger than this ("1h", "30m", "0s").
        /// Work in progress is protected whatever this says: gc waits for running
        /// imports, syncs, publishes and snapshots and keeps them out while it runs.
        #[arg(long, default_value = "1h", value_parser = crate::domain::schedule::parse_duration)]
        min_age: std::time::Duration,
        /// Fail at once (exit 1, nothing removed) instead of waiting when an import,
        /// sync, publish or snapshot is running on this data dir.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// API tokens: stored as salted hashes; the secret is printed once, when made.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Who changed what (command line, scheduler, API tokens), newest first.
    Audit {
        /// Only changes within this long ("1d", "12h", "30m"); default: all.
        #[arg(long, value_parser = crate::domain::schedule::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only changes by this actor ("cli:root", "scheduler", "token:ci").
        #[arg(long)]
        actor: Option<String>,
        /// Only this operation ("sync", "import", "snapshot.create", "alias.publish", …).
        #[arg(long)]
        operation: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Catalog maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Print a shell completion script (`cairn completions bash > /etc/bash_completion.d/cairn`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (cairn.1 and one per subcommand) into DIR.
    Man {
        /// The directory to write into (created if missing), e.g. /usr/share/man/man1.
        dir: PathBuf,
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
    /// List the packages of one of a repository's trees (`latest`, a snapshot or an
    /// alias) with their header signatures (issuer key ID and algorithm).
    Packages {
        repo: String,
        #[arg(default_value = "latest")]
        tree: String,
        /// Only the unsigned packages.
        #[arg(long)]
        unsigned: bool,
        #[arg(long)]
        json: bool,
    },
    /// Render `latest` again with the current settings (after `[signing]` was set or
    /// its key rotated): one repository or view, or all of them. Snapshots keep the
    /// signature they were published with.
    Republish {
        /// A repository or view (default: all).
        name: Option<String>,
    },
    /// Download what a tree of an on_demand or streamed repository lacks (default:
    /// latest), so it no longer depends on upstream.
    Fetch {
        repo: String,
        /// A snapshot or alias (default: latest).
        tree: Option<String>,
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
pub enum TokenCommand {
    /// Make a token and print it (once: only its hash is kept).
    Create {
        /// Its name, as the audit log and `token list` show it.
        #[arg(long)]
        name: String,
        /// read (the API, guarded trees), write (also syncs, snapshots, aliases,
        /// uploads) or admin (also gc, verify, tokens, reload).
        #[arg(long, value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<crate::app::tokens::Scope>()))]
        scope: crate::app::tokens::Scope,
        /// Limit it to this repository (repeat for more; with --view, those only).
        #[arg(long = "repo", value_name = "REPO")]
        repos: Vec<String>,
        /// Limit it to this view (repeat for more).
        #[arg(long = "view", value_name = "VIEW")]
        views: Vec<String>,
        /// Valid for this long ("90d", "12h"); default: until revoked.
        #[arg(long, value_parser = crate::domain::schedule::parse_duration)]
        expires: Option<std::time::Duration>,
        #[arg(long)]
        json: bool,
    },
    /// Every token (never a secret): scope, limits, state, last use.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: refused from now on.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending catalog migrations.
    Migrate,
    /// Re-hash every pool blob on all cores and check every catalog reference.
    /// Exits non-zero when a referenced blob is missing or corrupt; unreferenced
    /// blobs (left by interrupted work) are listed but are not an error.
    Verify {
        /// Repair what is found: quarantine corrupt blobs (pool/quarantine/), restore
        /// missing ones from --from and from upstream (a sync of each mirrored
        /// repository that holds them), then verify again.
        #[arg(long)]
        repair: bool,
        /// With --repair: a directory whose files (any that hash right) restore blobs.
        #[arg(long, requires = "repair")]
        from: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Remove an alias: its URL answers 404 at once (no grace period), and the
    /// snapshots it served are free to delete.
    Delete { repo: String, alias: String },
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
    /// What changed between two trees of a repository or view, by name.arch. FROM and
    /// TO are snapshot names, aliases or `latest`.
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

/// `--gpgcheck` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GpgCheckArg {
    Require,
    Warn,
    Off,
}

impl From<GpgCheckArg> for crate::app::config::GpgCheck {
    fn from(a: GpgCheckArg) -> Self {
        match a {
            GpgCheckArg::Require => Self::Require,
            GpgCheckArg::Warn => Self::Warn,
            GpgCheckArg::Off => Self::Off,
        }
    }
}
