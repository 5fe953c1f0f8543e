//! The TOML configuration file: `[server]`, `[[repo]]`.
//!
//! Every key is documented in `config/cairn.example.toml`. Unknown keys and bad values
//! are errors that name the key and the line; cross-field checks (duplicate repo ids,
//! ids that are not URL-safe) name the repo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::names::valid_name;
use crate::domain::schedule::parse_duration;

mod repo;
mod webhook;

pub use repo::{Access, GpgCheck, Policy, RepoConfig, RepoKind, SyncMode, Upstream};
pub use webhook::{WebhookConfig, EVENTS};

/// Configuration errors, each naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default, rename = "repo")]
    pub repos: Vec<RepoConfig>,
    #[serde(default, rename = "view")]
    pub views: Vec<ViewConfig>,
    /// `[signing]`: who signs the metadata Cairn renders.
    #[serde(default)]
    pub signing: Option<SigningConfig>,
    /// `[[webhook]]`: where events are posted.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[signing]`: the key (or external command) that signs every `repomd.xml` Cairn
/// renders, and the public keys served to clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// An OpenPGP secret key file (ASCII-armoured or binary) that signs.
    pub key: Option<PathBuf>,
    /// A file holding the key's passphrase (its first line).
    pub passphrase_file: Option<PathBuf>,
    /// An environment variable holding the key's passphrase.
    pub passphrase_env: Option<String>,
    /// Instead of `key`: a command (run with `sh -c`) that reads repomd.xml on its
    /// standard input and writes an ASCII-armoured detached signature on its standard
    /// output (gpg with an agent, an HSM client).
    pub command: Option<String>,
    /// With `command`: the public key file of the key the command signs with.
    pub public_key: Option<PathBuf>,
    /// Public keys of earlier signing keys, still served after a rotation so that
    /// snapshots signed with them keep verifying.
    #[serde(default)]
    pub previous_keys: Vec<PathBuf>,
    /// Further signers by name (`[signing.other.NAME]`, the same keys as `[signing]`),
    /// for the repositories and views that choose one with `signer = "NAME"`.
    #[serde(default)]
    pub other: std::collections::BTreeMap<String, SigningConfig>,
}

impl SigningConfig {
    fn check(&self) -> Result<(), String> {
        for (name, other) in &self.other {
            if !valid_name(name) || name == "cairn" {
                return Err(format!(
                    "[signing.other.{name}]: a signer name is letters, digits, '-', '_', '.', '+' or ':', and not \"cairn\""
                ));
            }
            if !other.other.is_empty() {
                return Err(format!(
                    "[signing.other.{name}]: signers cannot nest further signers"
                ));
            }
            other
                .check()
                .map_err(|e| e.replacen("[signing]", &format!("[signing.other.{name}]"), 1))?;
        }
        match (&self.key, &self.command) {
            (Some(_), Some(_)) => {
                return Err("[signing]: give key or command, not both".into());
            }
            (None, None) => {
                return Err("[signing]: give key (a secret key file) or command".into());
            }
            (None, Some(_)) if self.public_key.is_none() => {
                return Err("[signing]: command needs public_key (the public key of the key it signs with), to serve it and check what the command writes".into());
            }
            (None, Some(_)) if self.passphrase_file.is_some() || self.passphrase_env.is_some() => {
                return Err(
                    "[signing]: passphrase_file and passphrase_env go with key, not command".into(),
                );
            }
            (Some(_), None) if self.public_key.is_some() => {
                return Err("[signing]: public_key goes with command; with key, the public key is taken from the secret key".into());
            }
            _ => {}
        }
        if self.passphrase_file.is_some() && self.passphrase_env.is_some() {
            return Err("[signing]: give passphrase_file or passphrase_env, not both".into());
        }
        Ok(())
    }
}

/// Where ids and names stand in the file (for messages that name a line).
#[derive(Deserialize)]
struct Spans {
    #[serde(default)]
    repo: Vec<RepoSpans>,
    #[serde(default)]
    view: Vec<ViewSpans>,
}

#[derive(Deserialize)]
struct RepoSpans {
    id: toml::Spanned<String>,
}

#[derive(Deserialize)]
struct ViewSpans {
    name: toml::Spanned<String>,
    #[serde(default)]
    repos: Vec<toml::Spanned<String>>,
}

/// `[[view]]`: repositories published together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// The view name used in commands and URLs (/views/<name>/...).
    pub name: String,
    /// Member repositories; earlier ones win when two carry the same name.arch and EVR.
    pub repos: Vec<String>,
    /// Sign the view's metadata with `[signing]` (default: true when it is set).
    #[serde(default = "yes")]
    pub sign: bool,
    /// The name of a `[signing.other.NAME]` signer to sign with instead of `[signing]`.
    #[serde(default, rename = "signer")]
    pub signer_name: Option<String>,
    /// Who may fetch its trees: "public" (default) or "token".
    #[serde(default)]
    pub access: repo::Access,
    /// The signer of `[signing]` when `sign` (set when the installation is opened).
    #[serde(skip)]
    pub signer: Option<std::sync::Arc<crate::app::signing::Signer>>,
}

impl ViewConfig {
    /// How the view's metadata is rendered: gzip (what every client reads), signed
    /// when the view signs.
    pub fn format(&self) -> crate::app::publish::Format {
        crate::app::publish::Format::new(
            crate::formats::repodata::Compression::Gzip,
            self.signer.clone(),
        )
    }
}

fn yes() -> bool {
    true
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address `cairn serve` listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the pool, the SQLite catalog and the publish marker live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; empty means `sqlite://<data_dir>/catalog.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Serving threads (one io_uring runtime each); 0 means one per core.
    #[serde(default, deserialize_with = "de_workers")]
    pub workers: usize,
    /// How long an alias keeps serving what it pointed at before a switch ("3d", "12h").
    #[serde(default = "default_alias_grace", deserialize_with = "de_duration")]
    pub alias_grace: std::time::Duration,
    /// Open client connections at most; more are answered 503 and closed.
    #[serde(
        default = "default_max_connections",
        deserialize_with = "de_max_connections"
    )]
    pub max_connections: usize,
    /// A client must send a request's whole header within this time, and a
    /// keep-alive connection is closed when no request starts within it.
    #[serde(default = "default_header_timeout", deserialize_with = "de_timeout")]
    pub header_timeout: std::time::Duration,
    /// A connection that moves no byte either way for this long is closed (a client
    /// that stopped reading a download, a dead peer).
    #[serde(default = "default_idle_timeout", deserialize_with = "de_timeout")]
    pub idle_timeout: std::time::Duration,
    /// Largest request head (request line and headers) accepted; larger gets 431.
    #[serde(
        default = "default_max_header_bytes",
        deserialize_with = "de_max_header_bytes"
    )]
    pub max_header_bytes: usize,
    /// One line per HTTP request on standard output: "off" (default), "common" (NCSA
    /// Common Log Format), "combined" (common plus referer and user agent) or "json".
    #[serde(default)]
    pub access_log: AccessLog,
    /// How long a serving worker trusts a token it saw accepted for a guarded tree
    /// before checking it in the catalog again ("0s": every request is checked).
    #[serde(default = "default_token_cache", deserialize_with = "de_token_cache")]
    pub token_cache: std::time::Duration,
    /// Jobs (API syncs, gc, verify) running at once; more wait, queued. Read at start.
    #[serde(default = "default_max_jobs", deserialize_with = "de_max_jobs")]
    pub max_jobs: usize,
}

/// The `[server] access_log` formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    #[default]
    Off,
    Common,
    Combined,
    Json,
}

fn default_max_connections() -> usize {
    10_000
}

fn default_header_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

fn default_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(120)
}

fn default_max_header_bytes() -> usize {
    16 * 1024
}

fn default_alias_grace() -> std::time::Duration {
    std::time::Duration::from_secs(3 * 86_400)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// A duration that must not be zero (a zero timeout fails requests at random).
fn de_timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let t = de_duration(d)?;
    if t.is_zero() {
        return Err(serde::de::Error::custom(
            "a timeout of 0 would fail requests at random: give a duration such as \"30s\"",
        ));
    }
    Ok(t)
}

/// An optional [`de_timeout`].
fn de_opt_timeout<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    de_timeout(d).map(Some)
}

fn default_max_jobs() -> usize {
    2
}

fn de_max_jobs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if !(1..=64).contains(&n) {
        return Err(serde::de::Error::custom(
            "give from 1 to 64 jobs at once (default 2); more only wait",
        ));
    }
    Ok(n)
}

fn default_token_cache() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

/// Longest `token_cache`: a revocation the server cannot notice (another machine's
/// catalog change) must not take longer than this to take effect.
const MAX_TOKEN_CACHE: std::time::Duration = std::time::Duration::from_secs(300);

fn de_token_cache<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let t = de_duration(d)?;
    if t > MAX_TOKEN_CACHE {
        return Err(serde::de::Error::custom(
            "a token would stay trusted this long after it is revoked: give at most \"5m\" (default \"10s\"; \"0s\" checks every request)",
        ));
    }
    Ok(t)
}

fn de_max_connections<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom(
            "0 connections would refuse every client: give at least 1 (default 10000)",
        ));
    }
    Ok(n)
}

/// Most serving threads accepted (each holds a socket, an io_uring and buffers).
pub const MAX_WORKERS: usize = 1024;

fn de_workers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n > MAX_WORKERS {
        return Err(serde::de::Error::custom(format!(
            "{n} serving threads is more than {MAX_WORKERS}: use 0 (one per core) or a number up to the core count"
        )));
    }
    Ok(n)
}

/// Smallest request head accepted (the HTTP library needs this much).
pub const MIN_HEADER_BYTES: usize = 8192;

fn de_max_header_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n < MIN_HEADER_BYTES {
        return Err(serde::de::Error::custom(format!(
            "{n} is below the smallest request head the server supports ({MIN_HEADER_BYTES})"
        )));
    }
    Ok(n)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            data_dir: default_data_dir(),
            database_url: None,
            workers: 0,
            alias_grace: default_alias_grace(),
            max_connections: default_max_connections(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            max_header_bytes: default_max_header_bytes(),
            access_log: AccessLog::Off,
            token_cache: default_token_cache(),
            max_jobs: default_max_jobs(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./cairn-data")
}

impl Config {
    /// Reads and validates the file at `path`.
    /// Relative paths in it (`data_dir`, TLS files) are taken from the config file's
    /// own directory, not from wherever the command runs.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        let base = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut config.server.data_dir);
        if let Some(signing) = &mut config.signing {
            for file in [
                &mut signing.key,
                &mut signing.passphrase_file,
                &mut signing.public_key,
            ]
            .into_iter()
            .flatten()
            {
                resolve(file);
            }
            for file in &mut signing.previous_keys {
                resolve(file);
            }
        }
        for hook in &mut config.webhooks {
            if let Some(file) = &mut hook.secret_file {
                resolve(file);
            }
        }
        for repo in &mut config.repos {
            for file in [
                &mut repo.tls_client_cert,
                &mut repo.tls_client_key,
                &mut repo.tls_ca,
            ]
            .into_iter()
            .flatten()
            {
                resolve(file);
            }
            for file in &mut repo.gpgkeys {
                resolve(file);
            }
        }
        Ok(config)
    }

    /// Parses and validates `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut config: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        // Where each id and name stands, for checks across keys that name their line.
        let spans: Spans = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let line = |span: std::ops::Range<usize>| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        };
        let at = |span: std::ops::Range<usize>, message: String| {
            invalid(format!("line {}: {message}", line(span)))
        };
        if let Some(signing) = &config.signing {
            signing.check().map_err(invalid)?;
        }
        for hook in &config.webhooks {
            hook.check().map_err(invalid)?;
        }
        let chosen = config
            .repos
            .iter()
            .map(|r| (format!("repo {:?}", r.id), &r.signer_name))
            .chain(
                config
                    .views
                    .iter()
                    .map(|v| (format!("view {:?}", v.name), &v.signer_name)),
            );
        for (owner, name) in chosen {
            let Some(name) = name else { continue };
            if !config
                .signing
                .as_ref()
                .is_some_and(|s| s.other.contains_key(name))
            {
                return Err(invalid(format!(
                    "{owner}: signer = {name:?} names no [signing.other.{name}] table"
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (repo, spanned) in config.repos.iter().zip(&spans.repo) {
            let span = spanned.id.span();
            repo.check().map_err(|m| at(span.clone(), m))?;
            if !seen.insert(repo.id.clone()) {
                return Err(at(span, format!("repo id {:?} is declared twice", repo.id)));
            }
            if crate::domain::names::RESERVED_NAMES.contains(&repo.id.as_str()) {
                return Err(at(
                    span,
                    format!(
                        "repo id {:?} is reserved (URLs use it): choose another",
                        repo.id
                    ),
                ));
            }
        }
        for (view, spanned) in config.views.iter().zip(&spans.view) {
            let span = spanned.name.span();
            if seen.contains(&view.name) {
                return Err(at(
                    span,
                    format!(
                        "view {:?} has the name of a repo: commands would reach the view, never the repo; rename one",
                        view.name
                    ),
                ));
            }
            if crate::domain::names::RESERVED_NAMES.contains(&view.name.as_str()) {
                return Err(at(
                    span,
                    format!(
                        "view name {:?} is reserved (URLs use it): choose another",
                        view.name
                    ),
                ));
            }
            let mut members = std::collections::HashSet::new();
            for (member, member_span) in view.repos.iter().zip(&spanned.repos) {
                if !members.insert(member) {
                    return Err(at(
                        member_span.span(),
                        format!("view {:?} lists repo {member:?} twice", view.name),
                    ));
                }
            }
        }
        let mut view_names = std::collections::HashSet::new();
        for view in &config.views {
            if !valid_name(&view.name) {
                return Err(invalid(format!(
                    "view name {:?}: use letters, digits, '-', '_', '.', '+' or ':'",
                    view.name
                )));
            }
            if !view_names.insert(view.name.clone()) {
                return Err(invalid(format!("view {:?} is declared twice", view.name)));
            }
            if view.repos.is_empty() {
                return Err(invalid(format!("view {:?} has no repos", view.name)));
            }
            for r in &view.repos {
                if !seen.contains(r) {
                    return Err(invalid(format!(
                        "view {:?}: repo {r:?} is not declared as a [[repo]]",
                        view.name
                    )));
                }
            }
        }
        if let Some(url) = &config.server.database_url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(invalid(format!(
                    "server.database_url {url:?}: expected sqlite://… or postgres://…"
                )));
            }
        }
        if config.server.data_dir.as_os_str().is_empty() {
            return Err(invalid("server.data_dir must not be empty".into()));
        }
        // Environment override for secrets (a database password does not belong in a file).
        if let Ok(url) = std::env::var("CAIRN_DATABASE_URL") {
            if !url.is_empty() {
                config.server.database_url = Some(url);
            }
        }
        Ok(config)
    }

    /// The view declared as `name`.
    pub fn view(&self, name: &str) -> Option<&ViewConfig> {
        self.views.iter().find(|v| v.name == name)
    }

    /// The repo declared as `id`.
    pub fn repo(&self, id: &str) -> Option<&RepoConfig> {
        self.repos.iter().find(|r| r.id == id)
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.server.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("catalog.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests;
