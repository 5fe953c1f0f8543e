//! The package model shared by every layer: what Cairn knows about one `.rpm` file.
//!
//! A [`Package`] holds exactly the fields that `primary.xml`, `filelists.xml` and
//! `other.xml` need, already normalised the way createrepo_c normalises them
//! (requires filtered, EVRs split, changelogs trimmed). The RPM reader builds it, the
//! catalog stores it and the repodata writer renders it.

use serde::Serialize;

/// One dependency list of a package, in the order createrepo_c writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DepKind {
    Provides = 0,
    Requires = 1,
    Conflicts = 2,
    Obsoletes = 3,
    Suggests = 4,
    Enhances = 5,
    Recommends = 6,
    Supplements = 7,
}

impl DepKind {
    /// Every kind, in primary.xml order.
    pub const ALL: [DepKind; 8] = [
        DepKind::Provides,
        DepKind::Requires,
        DepKind::Conflicts,
        DepKind::Obsoletes,
        DepKind::Suggests,
        DepKind::Enhances,
        DepKind::Recommends,
        DepKind::Supplements,
    ];

    /// The element name in primary.xml (without the `rpm:` prefix).
    pub fn element(self) -> &'static str {
        match self {
            DepKind::Provides => "provides",
            DepKind::Requires => "requires",
            DepKind::Conflicts => "conflicts",
            DepKind::Obsoletes => "obsoletes",
            DepKind::Suggests => "suggests",
            DepKind::Enhances => "enhances",
            DepKind::Recommends => "recommends",
            DepKind::Supplements => "supplements",
        }
    }

    /// The kind stored under a numeric code in the catalog.
    pub fn from_code(code: i64) -> Option<DepKind> {
        DepKind::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

/// One `<rpm:entry>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub kind: DepKind,
    pub name: String,
    /// `LT`, `GT`, `EQ`, `LE` or `GE`; `None` writes no flags and no EVR.
    pub flags: Option<String>,
    pub epoch: Option<String>,
    pub ver: Option<String>,
    pub rel: Option<String>,
    /// `pre="1"` (requires only).
    pub pre: bool,
}

/// The `type` attribute of a `<file>` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File = 0,
    Dir = 1,
    Ghost = 2,
}

impl FileKind {
    pub fn from_code(code: i64) -> FileKind {
        match code {
            1 => FileKind::Dir,
            2 => FileKind::Ghost,
            _ => FileKind::File,
        }
    }
}

/// One file of the package, full path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageFile {
    pub path: String,
    pub kind: FileKind,
}

/// One `<changelog>` entry, already in the order and with the dates createrepo_c writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changelog {
    pub author: String,
    pub date: i64,
    pub text: String,
}

/// Everything the repository metadata says about one package file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Package {
    /// sha256 of the whole file, lower-case hex: the pool address and the pkgid.
    pub pkgid: String,
    pub name: String,
    pub arch: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    pub summary: String,
    pub description: String,
    pub packager: String,
    pub url: String,
    pub time_file: i64,
    pub time_build: i64,
    pub size_package: i64,
    pub size_installed: i64,
    pub size_archive: i64,
    pub license: String,
    pub vendor: String,
    pub group: String,
    pub buildhost: String,
    pub sourcerpm: String,
    pub header_start: i64,
    pub header_end: i64,
    /// All dependency entries, grouped by kind in [`DepKind::ALL`] order.
    pub deps: Vec<Dependency>,
    /// Every file, in header order.
    pub files: Vec<PackageFile>,
    /// Changelog entries, oldest first.
    pub changelogs: Vec<Changelog>,
}

impl Package {
    /// `name-[epoch:]version-release.arch`, the way people write it.
    pub fn nevra(&self) -> String {
        if self.epoch == "0" || self.epoch.is_empty() {
            format!(
                "{}-{}-{}.{}",
                self.name, self.version, self.release, self.arch
            )
        } else {
            format!(
                "{}-{}:{}-{}.{}",
                self.name, self.epoch, self.version, self.release, self.arch
            )
        }
    }

    /// The file name Cairn publishes the package under: `name-version-release.arch.rpm`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}.{}.rpm",
            self.name, self.version, self.release, self.arch
        )
    }

    /// Where the package lives inside a published tree: `Packages/<first letter>/<file>`.
    pub fn location(&self) -> String {
        package_location(&self.file_name())
    }
}

/// `Packages/<first letter, lower case>/<file name>`.
pub fn package_location(file_name: &str) -> String {
    let letter = file_name
        .chars()
        .next()
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or('_');
    format!("Packages/{letter}/{file_name}")
}

/// Is this path one that createrepo_c lists in primary.xml (and not only in filelists)?
pub fn is_primary_file(path: &str) -> bool {
    path.starts_with("/etc/") || path == "/usr/lib/sendmail" || path.contains("bin/")
}
