//! `[[repo]]`: a repository's settings (its feed, filters, mode, kind, schedule and
//! retention) and the checks of their values against each other.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::{de_opt_timeout, de_timeout};
use crate::app::publish::Format;
use crate::app::signing::Signer;
use crate::domain::names::{self, valid_name};
use crate::domain::schedule::Schedule;
use crate::formats::repodata::Compression;

/// `[[repo]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// The repository id used in commands and URLs.
    pub id: String,
    /// Metadata compression for this repo's published trees.
    #[serde(default)]
    pub compression: Compression,
    /// Upstream yum repository (the URL holding `repodata/`, http(s) or file); none
    /// (and no mirrorlist or metalink) means a local repo.
    #[serde(default, deserialize_with = "de_feed")]
    pub feed: Option<String>,
    /// Instead of `feed`: a yum mirrorlist (one repository URL per line).
    #[serde(default)]
    pub mirrorlist: Option<String>,
    /// Instead of `feed`: a metalink (mirrors, and repomd.xml's size and digests).
    #[serde(default)]
    pub metalink: Option<String>,
    /// Values of `$name` (or `${name}`) in feed, mirrorlist and metalink, such as
    /// `releasever` and `basearch`.
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
    /// When packages are downloaded: "immediate" (by the sync, the default),
    /// "on_demand" (on a client's first request, then kept) or "streamed" (on every
    /// request, passed through verified, never kept).
    #[serde(default)]
    pub policy: Policy,
    /// Bandwidth limit of this repository's syncs, bytes per second ("10M", "512k").
    #[serde(default, deserialize_with = "de_rate")]
    pub max_rate: Option<u64>,
    /// Only packages of these architectures (empty: all).
    #[serde(default)]
    pub arch: Vec<String>,
    /// Only packages whose name matches one of these globs (empty: all).
    #[serde(default)]
    pub include: Vec<String>,
    /// Never packages whose name matches one of these globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Keep only the newest N versions of each name.arch (rpm version order).
    #[serde(default)]
    pub keep_latest: Option<usize>,
    /// Package downloads running at once during a sync.
    #[serde(default = "default_downloads")]
    pub downloads: usize,
    /// "regenerate" (default for a repository): publish Cairn's own metadata for the
    /// kept packages; "mirror" (always, for a tree): serve upstream's metadata bytes
    /// (and repomd.xml.asc) unchanged. Read it through [`RepoConfig::mode`].
    #[serde(default, rename = "mode")]
    pub mode_setting: Option<SyncMode>,
    /// "repo" (default): the feed is a yum repository; "tree": the feed is an
    /// installation tree described by its `.treeinfo`.
    #[serde(default)]
    pub kind: RepoKind,
    /// A tree's files to carry besides those `.treeinfo` names and the usual ones
    /// (`.discinfo`, `media.repo`, `EULA`, `GPL`, `RPM-GPG-KEY-*` the root lists).
    #[serde(default)]
    pub tree_files: Vec<String>,
    /// OpenPGP public key files (ASCII-armoured or binary, several keys each) trusted
    /// for this repository: upstream's repomd.xml signature and the packages' header
    /// signatures are checked against them.
    #[serde(default)]
    pub gpgkeys: Vec<PathBuf>,
    /// Check upstream's `repodata/repomd.xml.asc` against `gpgkeys` before anything
    /// else of upstream's is trusted (needs `gpgkeys` and a feed).
    #[serde(default)]
    pub repo_gpgcheck: bool,
    /// The packages' header signatures: "require", "warn" or "off". Read it through
    /// [`RepoConfig::gpgcheck`] (default: "require" with `gpgkeys`, "off" without).
    #[serde(default, rename = "gpgcheck")]
    pub gpgcheck_setting: Option<GpgCheck>,
    /// Sign the metadata Cairn renders for this repository with `[signing]` (default:
    /// true when it is set; mirror mode serves upstream's own signature instead).
    #[serde(default = "super::yes")]
    pub sign: bool,
    /// The name of a `[signing.other.NAME]` signer to sign with instead of `[signing]`.
    #[serde(default, rename = "signer")]
    pub signer_name: Option<String>,
    /// Who may fetch its trees: "public" (default) or "token".
    #[serde(default)]
    pub access: Access,
    /// The signer of `[signing]` when `sign` (set when the installation is opened).
    #[serde(skip)]
    pub signer: Option<Arc<Signer>>,
    /// PEM client certificate for the upstream (entitlement CDNs); needs `tls_client_key`.
    #[serde(default)]
    pub tls_client_cert: Option<PathBuf>,
    /// PEM private key of `tls_client_cert`.
    #[serde(default)]
    pub tls_client_key: Option<PathBuf>,
    /// PEM CA certificate(s) trusted for the upstream, in addition to the system roots.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// `connect_timeout` and `idle_timeout` both ("30s"); not with either of them.
    #[serde(default, deserialize_with = "de_opt_timeout")]
    pub timeout: Option<std::time::Duration>,
    /// `connect_timeout` as set (see [`RepoConfig::connect_timeout`]).
    #[serde(
        default,
        rename = "connect_timeout",
        deserialize_with = "de_opt_timeout"
    )]
    pub connect_timeout_setting: Option<std::time::Duration>,
    /// `idle_timeout` as set (see [`RepoConfig::idle_timeout`]).
    #[serde(default, rename = "idle_timeout", deserialize_with = "de_opt_timeout")]
    pub idle_timeout_setting: Option<std::time::Duration>,
    /// The longest a sync may run ("6h"). When it passes, the sync stops as if
    /// interrupted: finished downloads are kept and the next sync goes on from there.
    #[serde(default = "default_sync_deadline", deserialize_with = "de_timeout")]
    pub deadline: std::time::Duration,
    /// HTTP(S) proxy for this repository's upstream, e.g. "http://proxy:3128".
    #[serde(default)]
    pub proxy: Option<String>,
    /// After each sync that changed the repository, create a snapshot named by this
    /// template: `{date}`, `{datetime}`, `{repo}` (e.g. "{date}").
    #[serde(default)]
    pub snapshot_name: Option<String>,
    /// Retention: keep the newest N snapshots (and/or those younger than keep_days).
    #[serde(default)]
    pub keep_snapshots: Option<usize>,
    /// Retention: keep snapshots younger than this many days.
    #[serde(default)]
    pub keep_days: Option<u32>,
    /// When `cairn serve` syncs this repository: "daily HH:MM" (UTC) or "every 6h".
    #[serde(default, deserialize_with = "de_schedule")]
    pub schedule: Option<Schedule>,
}

/// Where a mirrored repository is read from, its variables expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Feed(String),
    Mirrorlist(String),
    Metalink(String),
}

impl Upstream {
    /// The URL as configured (expanded).
    pub fn url(&self) -> &str {
        match self {
            Upstream::Feed(u) | Upstream::Mirrorlist(u) | Upstream::Metalink(u) => u,
        }
    }
}

/// `text` with every `$name` and `${name}` of `vars` replaced; `Err` names the first
/// variable `vars` lacks.
pub fn expand(
    text: &str,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => return Err(after.to_string()),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match vars.get(name) {
            Some(v) if !name.is_empty() => out.push_str(v),
            _ => return Err(name.to_string()),
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A bandwidth: bytes per second, with an optional k, M or G (powers of 1024).
fn de_rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let unit = match unit.trim().trim_end_matches("B/s").trim_end_matches('B') {
        "" => 1,
        "k" | "K" => 1024,
        "M" | "m" => 1024 * 1024,
        "G" | "g" => 1024 * 1024 * 1024,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && unit > 0 => Ok(Some(n.saturating_mul(unit))),
        _ => Err(serde::de::Error::custom(format!(
            "{text:?} is not a rate: give bytes per second such as \"10M\" or \"512k\" (leave max_rate out for no limit)"
        ))),
    }
}

fn de_schedule<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// What a package's header signature must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GpgCheck {
    /// Signed by one of the repository's keys, or the sync (import) fails naming it.
    Require,
    /// Checked and recorded; a package unsigned or signed by another key is reported.
    Warn,
    /// Not checked (the signature's key ID is still recorded).
    Off,
}

/// Who may fetch a repository's or view's trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone (the default).
    #[default]
    Public,
    /// Only requests with a token of read scope for it (HTTP Basic with the token as
    /// the password, or Bearer): every tree, alias, `.repo` file and page of it.
    Token,
}

/// What a feed is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    /// A yum/dnf repository (`repodata/` at the feed URL).
    #[default]
    Repo,
    /// An installation tree: `.treeinfo` at the feed URL, its images and its variants'
    /// repositories.
    Tree,
}

/// When a mirrored repository's packages are downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// By the sync, every package (what a complete mirror is).
    #[default]
    Immediate,
    /// On the first request for it, streamed to the client while it is verified and
    /// stored; kept from then on.
    OnDemand,
    /// On every request, streamed to the client while it is verified; never stored.
    Streamed,
}

/// How a mirrored repository publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    #[default]
    Regenerate,
    Mirror,
}

fn default_connect_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(15)
}

fn default_upstream_idle() -> std::time::Duration {
    std::time::Duration::from_secs(20)
}

fn default_sync_deadline() -> std::time::Duration {
    std::time::Duration::from_secs(6 * 3600)
}

fn default_downloads() -> usize {
    8
}

impl RepoConfig {
    /// How the repository publishes: a tree always mirrors (its `.treeinfo` lists the
    /// checksums of what it names, and installers read its files as they are).
    pub fn mode(&self) -> SyncMode {
        match self.kind {
            RepoKind::Tree => SyncMode::Mirror,
            RepoKind::Repo => self.mode_setting.unwrap_or_default(),
        }
    }

    /// Where a mirrored repository is read from (`None`: a local repository).
    /// Its variables are checked when the configuration loads.
    pub fn upstream(&self) -> Option<Upstream> {
        let expanded = |u: &String| expand(u, &self.vars).unwrap_or_else(|_| u.clone());
        if let Some(u) = &self.feed {
            Some(Upstream::Feed(expanded(u)))
        } else if let Some(u) = &self.mirrorlist {
            Some(Upstream::Mirrorlist(expanded(u)))
        } else {
            self.metalink
                .as_ref()
                .map(|u| Upstream::Metalink(expanded(u)))
        }
    }

    /// How long connecting to the upstream may take: `connect_timeout`, else
    /// `timeout`, else 15 s.
    pub fn connect_timeout(&self) -> std::time::Duration {
        self.connect_timeout_setting
            .or(self.timeout)
            .unwrap_or_else(default_connect_timeout)
    }

    /// How long the upstream may send nothing while a response is expected or under
    /// way: `idle_timeout`, else `timeout`, else 20 s. Each request is tried 3 times,
    /// so a dead upstream fails the sync within about a minute.
    pub fn idle_timeout(&self) -> std::time::Duration {
        self.idle_timeout_setting
            .or(self.timeout)
            .unwrap_or_else(default_upstream_idle)
    }

    /// Is it mirrored from upstream (a feed, mirrorlist or metalink)?
    pub fn is_mirrored(&self) -> bool {
        self.feed.is_some() || self.mirrorlist.is_some() || self.metalink.is_some()
    }

    /// How the metadata Cairn renders for this repository is compressed and signed.
    pub fn format(&self) -> Format {
        Format::new(self.compression, self.signer.clone())
    }

    /// How the packages' header signatures are checked: as set, else "require" when
    /// the repository has keys and "off" when it has none.
    pub fn gpgcheck(&self) -> GpgCheck {
        self.gpgcheck_setting.unwrap_or(if self.gpgkeys.is_empty() {
            GpgCheck::Off
        } else {
            GpgCheck::Require
        })
    }

    /// Checks the values of one `[[repo]]` against each other; the message names the
    /// repository and the key.
    pub(super) fn check(&self) -> Result<(), String> {
        let repo = self;
        if repo.repo_gpgcheck && (repo.gpgkeys.is_empty() || !repo.is_mirrored()) {
            return Err(format!(
                "repo {:?}: repo_gpgcheck = true needs a feed and gpgkeys (the public key files upstream's repomd.xml.asc is checked against)",
                repo.id
            ));
        }
        if repo.gpgkeys.is_empty() && repo.gpgcheck() != GpgCheck::Off {
            return Err(format!(
                "repo {:?}: gpgcheck = \"{}\" needs gpgkeys (the public key files the packages are checked against)",
                repo.id,
                if repo.gpgcheck() == GpgCheck::Require { "require" } else { "warn" }
            ));
        }
        if repo.kind == RepoKind::Tree {
            if !repo.is_mirrored() {
                return Err(format!(
                    "repo {:?}: kind = \"tree\" needs a feed (the URL holding .treeinfo)",
                    repo.id
                ));
            }
            if repo.mode_setting == Some(SyncMode::Regenerate) {
                return Err(format!(
                    "repo {:?}: a tree is mirrored byte for byte (its .treeinfo lists the checksums of what it names): remove mode = \"regenerate\"",
                    repo.id
                ));
            }
        } else if !repo.tree_files.is_empty() {
            return Err(format!(
                "repo {:?}: tree_files needs kind = \"tree\"",
                repo.id
            ));
        }
        for f in &repo.tree_files {
            if !crate::formats::repodata::parse::href_is_safe(f) || f.ends_with('/') {
                return Err(format!(
                    "repo {:?}: tree_files entry {f:?} must be a file path relative to the tree root",
                    repo.id
                ));
            }
        }
        if !valid_name(&repo.id) {
            return Err(format!(
                "repo id {:?}: use letters, digits, '-', '_', '.', '+' or ':' (not starting with '.')",
                repo.id
            ));
        }
        if repo.timeout.is_some()
            && (repo.connect_timeout_setting.is_some() || repo.idle_timeout_setting.is_some())
        {
            return Err(format!(
                "repo {:?}: timeout sets both connect_timeout and idle_timeout: give timeout, or those two, not both",
                repo.id
            ));
        }
        let given = [
            ("feed", &repo.feed),
            ("mirrorlist", &repo.mirrorlist),
            ("metalink", &repo.metalink),
        ];
        let set: Vec<&str> = given
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| *k)
            .collect();
        if set.len() > 1 {
            return Err(format!(
                "repo {:?}: give one of feed, mirrorlist and metalink, not {}",
                repo.id,
                set.join(" and ")
            ));
        }
        for (key, value) in given {
            let Some(value) = value else { continue };
            let url = expand(value, &repo.vars).map_err(|name| {
                format!(
                    "repo {:?}: {key} uses ${name}, which vars does not set (add vars = {{ {name} = \"...\" }})",
                    repo.id
                )
            })?;
            check_url(&url).map_err(|why| format!("repo {:?}: {key} {url:?} {why}", repo.id))?;
        }
        if repo.policy != Policy::Immediate {
            let policy = if repo.policy == Policy::OnDemand {
                "on_demand"
            } else {
                "streamed"
            };
            if !repo.is_mirrored() {
                return Err(format!(
                    "repo {:?}: policy = \"{policy}\" needs a feed, mirrorlist or metalink to fetch from",
                    repo.id
                ));
            }
        }
        if repo.metalink.is_some() && repo.kind == RepoKind::Tree {
            return Err(format!(
                "repo {:?}: a metalink describes a repository's repomd.xml, not a tree: use feed or mirrorlist with kind = \"tree\"",
                repo.id
            ));
        }
        for glob in repo.include.iter().chain(&repo.exclude) {
            if let Err(e) = globset::Glob::new(glob) {
                return Err(format!("repo {:?}: bad name glob {glob:?}: {e}", repo.id));
            }
        }
        if repo.tls_client_cert.is_some() != repo.tls_client_key.is_some() {
            return Err(format!(
                "repo {:?}: tls_client_cert and tls_client_key go together",
                repo.id
            ));
        }
        if let Some(proxy) = &repo.proxy {
            if !(proxy.starts_with("http://")
                || proxy.starts_with("https://")
                || proxy.starts_with("socks5://"))
            {
                return Err(format!(
                    "repo {:?}: proxy {proxy:?} must be an http://, https:// or socks5:// URL",
                    repo.id
                ));
            }
        }
        if repo.mode() == SyncMode::Mirror
            && (!repo.arch.is_empty()
                || !repo.include.is_empty()
                || !repo.exclude.is_empty()
                || repo.keep_latest.is_some())
        {
            return Err(format!(
                "repo {:?}: mode = \"mirror\" (and kind = \"tree\") keeps upstream's metadata unchanged, so it cannot be combined with arch, include, exclude or keep_latest",
                repo.id
            ));
        }
        if let Some(t) = &repo.snapshot_name {
            let probe = names::expand(t, &repo.id, time::OffsetDateTime::UNIX_EPOCH);
            if !valid_name(&probe) {
                return Err(format!(
                    "repo {:?}: snapshot_name {t:?} does not make a valid snapshot name",
                    repo.id
                ));
            }
        }
        if repo.keep_snapshots == Some(0) {
            return Err(format!(
                "repo {:?}: keep_snapshots must be at least 1",
                repo.id
            ));
        }
        if repo.schedule.is_some() && !repo.is_mirrored() {
            return Err(format!(
                "repo {:?}: schedule needs a feed (local repositories are not synced)",
                repo.id
            ));
        }
        if repo.keep_latest == Some(0) {
            return Err(format!(
                "repo {:?}: keep_latest must be at least 1",
                repo.id
            ));
        }
        if repo.downloads == 0 || repo.downloads > 256 {
            return Err(format!(
                "repo {:?}: downloads must be between 1 and 256, not {}",
                repo.id, repo.downloads
            ));
        }
        Ok(())
    }
}

/// Is `url` (variables expanded) one a sync can read: http(s) with a host, or file://
/// with an absolute path? `Err` says why not.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "file" if parsed.to_file_path().is_ok() => Ok(()),
        _ => Err("must be an http:// or https:// URL with a host, or a file:// URL with an absolute path".into()),
    }
}

/// An upstream URL (see [`check_url`], after variables are expanded), not pointing
/// into `repodata/`.
fn de_feed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(feed) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if !feed.contains('$') {
        check_url(&feed).map_err(|why| serde::de::Error::custom(format!("{feed:?} {why}")))?;
    }
    if feed
        .split('?')
        .next()
        .unwrap_or(&feed)
        .trim_end_matches('/')
        .ends_with("/repodata")
    {
        return Err(serde::de::Error::custom(format!(
            "{feed:?} points into repodata/: give the repository's root, the directory that contains repodata/"
        )));
    }
    Ok(Some(feed))
}
