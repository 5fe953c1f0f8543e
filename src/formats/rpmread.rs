//! Reading `.rpm` headers into [`Package`]s, applying createrepo_c's rules.
//!
//! This module owns the mapping from RPM header tags to repository-metadata fields:
//! requires filtering (rpmlib, self-provided files and provides, duplicates, the
//! single highest `libc.so.6` require), EVR splitting of dependency versions, the
//! changelog limit and date de-duplication, header byte ranges, source packages and
//! the Latin-1 fallback for header strings that are not UTF-8. The rules follow
//! createrepo_c 0.17 (`parsehdr.c`), which is the reference the test suite compares
//! against.

use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::Path;

use rpm::{IndexSignatureTag, IndexTag, PackageMetadata};

use crate::domain::package::{
    is_primary_file, Changelog, DepKind, Dependency, FileKind, Package, PackageFile,
};

/// How many changelog entries go into other.xml (createrepo_c's default).
pub const DEFAULT_CHANGELOG_LIMIT: usize = 10;

/// Why a file could not be read as a package.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// The file is not an RPM package, or its header is damaged.
    #[error("not a valid RPM package: {0}")]
    Parse(#[from] rpm::Error),
    /// A header field has a tag that every package must have.
    #[error("the header has no {0}")]
    MissingTag(&'static str),
    /// Name, version, release or arch would make an unsafe file name or URL.
    #[error("the {field} {value:?} cannot be part of a file name (it contains '/', '\\', whitespace or starts with '.')")]
    UnsafeName { field: &'static str, value: String },
    /// A header string holds a control character, which XML cannot carry
    /// (createrepo_c skips such packages too).
    #[error("the {0} field contains a forbidden control character")]
    ControlChar(&'static str),
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
}

/// What the caller knows about the file itself (not in the header).
#[derive(Debug, Clone)]
pub struct FileFacts {
    /// sha256 of the whole file, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in unix seconds, recorded once at import.
    pub mtime: i64,
}

/// Parses the lead and headers of the package at `path` (the payload is not read).
pub fn read_metadata(path: &Path) -> Result<PackageMetadata, RpmError> {
    let file = std::fs::File::open(path)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    Ok(PackageMetadata::parse(&mut reader)?)
}

/// Reads the package at `path` into a [`Package`].
pub fn read_package(path: &Path, facts: &FileFacts) -> Result<Package, RpmError> {
    let meta = read_metadata(path)?;
    package_from_metadata(&meta, facts, DEFAULT_CHANGELOG_LIMIT)
}

/// Builds a [`Package`] from parsed headers and the file's own facts.
pub fn package_from_metadata(
    meta: &PackageMetadata,
    facts: &FileFacts,
    changelog_limit: usize,
) -> Result<Package, RpmError> {
    let raw = RawStrings::new(meta);
    let name = meta.get_name().map_err(|_| RpmError::MissingTag("name"))?;
    let version = meta
        .get_version()
        .map_err(|_| RpmError::MissingTag("version"))?;
    let release = meta
        .get_release()
        .map_err(|_| RpmError::MissingTag("release"))?;
    let arch = if meta.is_source_package() {
        "src".to_string()
    } else {
        meta.get_arch()
            .map_err(|_| RpmError::MissingTag("arch"))?
            .to_string()
    };
    let epoch = meta
        .get_epoch()
        .map(|e| e.to_string())
        .unwrap_or_else(|_| "0".into());
    let offsets = meta.get_package_segment_offsets();
    let archive = meta
        .signature
        .get_entry_data_as_u64(IndexSignatureTag::RPMSIGTAG_LONGARCHIVESIZE)
        .or_else(|_| {
            meta.signature
                .get_entry_data_as_u32(IndexSignatureTag::RPMSIGTAG_PAYLOADSIZE)
                .map(u64::from)
        })
        .unwrap_or(0);

    let files = read_files(meta);
    let deps = read_deps(meta, &files, &raw);
    let changelogs = read_changelogs(meta, &raw, changelog_limit);

    let text = |tag: IndexTag, value: Result<&str, rpm::Error>| -> String {
        match value {
            Ok(s) if s.contains('\u{FFFD}') => raw.get(tag).unwrap_or_else(|| s.to_string()),
            Ok(s) => s.to_string(),
            Err(_) => String::new(),
        }
    };

    let pkg = Package {
        pkgid: facts.sha256.clone(),
        name: name.to_string(),
        arch,
        epoch,
        version: version.to_string(),
        release: release.to_string(),
        summary: text(IndexTag::RPMTAG_SUMMARY, meta.get_summary()),
        description: text(IndexTag::RPMTAG_DESCRIPTION, meta.get_description()),
        packager: text(IndexTag::RPMTAG_PACKAGER, meta.get_packager()),
        url: text(IndexTag::RPMTAG_URL, meta.get_url()),
        time_file: facts.mtime,
        time_build: meta.get_build_time().map(|t| t as i64).unwrap_or(0),
        size_package: facts.size as i64,
        size_installed: meta.get_installed_size().map(|s| s as i64).unwrap_or(0),
        size_archive: archive as i64,
        license: text(IndexTag::RPMTAG_LICENSE, meta.get_license()),
        vendor: text(IndexTag::RPMTAG_VENDOR, meta.get_vendor()),
        group: text(IndexTag::RPMTAG_GROUP, meta.get_group()),
        buildhost: text(IndexTag::RPMTAG_BUILDHOST, meta.get_build_host()),
        sourcerpm: if meta.is_source_package() {
            String::new()
        } else {
            text(IndexTag::RPMTAG_SOURCERPM, meta.get_source_rpm())
        },
        header_start: offsets.header as i64,
        header_end: offsets.payload as i64,
        deps,
        files,
        changelogs,
    };
    check_control_chars(&pkg)?;
    check_file_name_parts(&pkg)?;
    Ok(pkg)
}

fn read_files(meta: &PackageMetadata) -> Vec<PackageFile> {
    let Ok(entries) = meta.get_file_entries() else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|e| {
            let kind = if matches!(e.file_type(), rpm::FileType::Dir) {
                FileKind::Dir
            } else if e.flags().contains(rpm::FileFlags::GHOST) {
                FileKind::Ghost
            } else {
                FileKind::File
            };
            PackageFile {
                path: format!("{}{}", e.dirname(), e.basename()),
                kind,
            }
        })
        .collect()
}

/// The comparison operator createrepo_c writes for RPMSENSE flags.
fn flag_str(flags: u32) -> Option<&'static str> {
    match flags & 0xf {
        2 => Some("LT"),
        4 => Some("GT"),
        8 => Some("EQ"),
        10 => Some("LE"),
        12 => Some("GE"),
        _ => None,
    }
}

/// Splits `[epoch:]version[-release]` the way createrepo_c's `cr_str_to_evr` does.
/// Returns `None` when the epoch is not numeric (the dependency is then dropped).
#[allow(clippy::type_complexity)]
pub fn split_evr(s: &str) -> Option<(Option<String>, Option<String>, Option<String>)> {
    if s.is_empty() {
        return Some((None, None, None));
    }
    let (epoch, rest) = match s.find(':') {
        Some(i) => {
            let e = &s[..i];
            if !e.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let epoch = if e.is_empty() {
                "0".to_string()
            } else {
                e.to_string()
            };
            (epoch, &s[i + 1..])
        }
        None => ("0".to_string(), s),
    };
    let (ver, rel) = match rest.find('-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let nonempty = |x: &str| (!x.is_empty()).then(|| x.to_string());
    Some((Some(epoch), nonempty(ver), rel.and_then(nonempty)))
}

const RPMSENSE_PREREQ: u32 = 1 << 6;
const RPMSENSE_SCRIPT_PRE: u32 = 1 << 9;
const RPMSENSE_SCRIPT_POST: u32 = 1 << 10;

/// The header tags holding the names and versions of each dependency kind.
fn dep_tags(kind: DepKind) -> (IndexTag, IndexTag) {
    match kind {
        DepKind::Provides => (
            IndexTag::RPMTAG_PROVIDENAME,
            IndexTag::RPMTAG_PROVIDEVERSION,
        ),
        DepKind::Requires => (
            IndexTag::RPMTAG_REQUIRENAME,
            IndexTag::RPMTAG_REQUIREVERSION,
        ),
        DepKind::Conflicts => (
            IndexTag::RPMTAG_CONFLICTNAME,
            IndexTag::RPMTAG_CONFLICTVERSION,
        ),
        DepKind::Obsoletes => (
            IndexTag::RPMTAG_OBSOLETENAME,
            IndexTag::RPMTAG_OBSOLETEVERSION,
        ),
        DepKind::Suggests => (
            IndexTag::RPMTAG_SUGGESTNAME,
            IndexTag::RPMTAG_SUGGESTVERSION,
        ),
        DepKind::Enhances => (
            IndexTag::RPMTAG_ENHANCENAME,
            IndexTag::RPMTAG_ENHANCEVERSION,
        ),
        DepKind::Recommends => (
            IndexTag::RPMTAG_RECOMMENDNAME,
            IndexTag::RPMTAG_RECOMMENDVERSION,
        ),
        DepKind::Supplements => (
            IndexTag::RPMTAG_SUPPLEMENTNAME,
            IndexTag::RPMTAG_SUPPLEMENTVERSION,
        ),
    }
}

fn read_deps(meta: &PackageMetadata, files: &[PackageFile], raw: &RawStrings) -> Vec<Dependency> {
    let all_files: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut provided: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for kind in DepKind::ALL {
        let list = match kind {
            DepKind::Provides => meta.get_provides(),
            DepKind::Requires => meta.get_requires(),
            DepKind::Conflicts => meta.get_conflicts(),
            DepKind::Obsoletes => meta.get_obsoletes(),
            DepKind::Suggests => meta.get_suggests(),
            DepKind::Enhances => meta.get_enhances(),
            DepKind::Recommends => meta.get_recommends(),
            DepKind::Supplements => meta.get_supplements(),
        }
        .unwrap_or_default();
        let mut list = list;
        if list
            .iter()
            .any(|d| d.name.contains('\u{FFFD}') || d.version.contains('\u{FFFD}'))
        {
            // Not UTF-8: re-read the strings byte for byte (createrepo_c's Latin-1 rule).
            let (name_tag, version_tag) = dep_tags(kind);
            let names = raw.get_array(name_tag).unwrap_or_default();
            let versions = raw.get_array(version_tag).unwrap_or_default();
            for (i, d) in list.iter_mut().enumerate() {
                if let Some(n) = names.get(i).filter(|_| d.name.contains('\u{FFFD}')) {
                    d.name = n.clone();
                }
                if let Some(v) = versions.get(i).filter(|_| d.version.contains('\u{FFFD}')) {
                    d.version = v.clone();
                }
            }
        }
        // The last kept require per name: (flags, raw version, pre).
        let mut last_require: HashMap<String, (Option<&'static str>, String, bool)> =
            HashMap::new();
        let mut libc_highest: Option<Dependency> = None;
        for dep in list {
            let bits = dep.flags.bits();
            let flags = flag_str(bits);
            let nfv = format!("{}{}{}", dep.name, flags.unwrap_or(""), dep.version);
            let mut pre = false;
            if kind == DepKind::Requires {
                if dep.name.starts_with("rpmlib(") {
                    continue;
                }
                if dep.name.starts_with('/')
                    && all_files.contains(dep.name.as_str())
                    && is_primary_file(&dep.name)
                {
                    continue;
                }
                if provided.contains(&nfv) {
                    continue;
                }
                pre = bits & (RPMSENSE_PREREQ | RPMSENSE_SCRIPT_PRE | RPMSENSE_SCRIPT_POST) != 0;
                if let Some((f, v, p)) = last_require.get(&dep.name) {
                    if *f == flags && *v == dep.version && *p == pre {
                        continue;
                    }
                }
            }
            let Some((epoch, ver, rel)) = split_evr(&dep.version) else {
                tracing::warn!(
                    "bad epoch in version {:?} of dependency {:?}: dependency skipped",
                    dep.version,
                    dep.name
                );
                continue;
            };
            let entry = Dependency {
                kind,
                name: dep.name.clone(),
                flags: flags.map(str::to_string),
                epoch,
                ver,
                rel,
                pre,
            };
            match kind {
                DepKind::Provides => {
                    provided.insert(nfv);
                }
                DepKind::Requires if entry.name.starts_with("libc.so.6") => {
                    let higher = match &libc_highest {
                        None => true,
                        Some(cur) => libc_version_higher(&cur.name, &entry.name),
                    };
                    if higher {
                        libc_highest = Some(entry);
                    }
                    continue;
                }
                DepKind::Requires => {
                    last_require.insert(dep.name.clone(), (flags, dep.version.clone(), pre));
                }
                _ => {}
            }
            out.push(entry);
        }
        if let Some(libc) = libc_highest {
            out.push(libc);
        }
    }
    out
}

/// Is the version inside the parentheses of `candidate` (`libc.so.6(GLIBC_2.34)`)
/// higher than that of `current`? Empty parentheses count as the lowest.
fn libc_version_higher(current: &str, candidate: &str) -> bool {
    fn inner(s: &str) -> &str {
        let Some(open) = s.find('(') else { return "" };
        let rest = &s[open + 1..];
        rest.find(')').map(|close| &rest[..close]).unwrap_or("")
    }
    let (a, b) = (inner(current), inner(candidate));
    match (a.is_empty(), b.is_empty()) {
        (_, true) => false,
        (true, false) => true,
        (false, false) => rpm_version::rpm_evr_compare(b, a) == std::cmp::Ordering::Greater,
    }
}

fn read_changelogs(meta: &PackageMetadata, raw: &RawStrings, limit: usize) -> Vec<Changelog> {
    let Ok(entries) = meta.get_changelog_entries() else {
        return Vec::new();
    };
    let raw_names = raw.get_array(IndexTag::RPMTAG_CHANGELOGNAME);
    let raw_texts = raw.get_array(IndexTag::RPMTAG_CHANGELOGTEXT);
    let mut out: Vec<Changelog> = Vec::new();
    let mut last_time: i64 = 0;
    for (i, e) in entries.into_iter().take(limit).enumerate() {
        let fix = |s: String, raws: &Option<Vec<String>>| {
            if s.contains('\u{FFFD}') {
                raws.as_ref().and_then(|r| r.get(i).cloned()).unwrap_or(s)
            } else {
                s
            }
        };
        let mut author = fix(e.name, &raw_names);
        // createrepo_c trims trailing spaces, but never the first character.
        while author.len() > 1 && author.ends_with(' ') {
            author.pop();
        }
        let time = e.timestamp as i64;
        out.push(Changelog {
            author,
            date: time,
            text: fix(e.description, &raw_texts),
        });
        if last_time == time {
            // Entries sharing a timestamp: the newer ones (earlier in the header) move
            // forward one second each, as createrepo_c does.
            for (expected, prev) in (time..).zip(out.iter_mut().rev().skip(1)) {
                if prev.date != expected {
                    break;
                }
                prev.date += 1;
            }
        } else {
            last_time = time;
        }
    }
    out.reverse();
    out
}

/// Rejects packages whose NEVRA would make a published file name escape its directory
/// (the location is `Packages/<letter>/<name>-<version>-<release>.<arch>.rpm`).
fn check_file_name_parts(pkg: &Package) -> Result<(), RpmError> {
    for (field, value) in [
        ("name", &pkg.name),
        ("version", &pkg.version),
        ("release", &pkg.release),
        ("arch", &pkg.arch),
    ] {
        let unsafe_part = value.is_empty()
            || value.starts_with('.')
            || value
                .chars()
                .any(|c| c == '/' || c == '\\' || c.is_whitespace() || c.is_control());
        if unsafe_part {
            return Err(RpmError::UnsafeName {
                field,
                value: value.clone(),
            });
        }
    }
    Ok(())
}

/// Rejects packages whose strings hold bytes XML 1.0 cannot carry.
fn check_control_chars(pkg: &Package) -> Result<(), RpmError> {
    fn bad(s: &str) -> bool {
        s.bytes()
            .any(|b| b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r')
    }
    let fields: [(&'static str, &str); 13] = [
        ("name", &pkg.name),
        ("arch", &pkg.arch),
        ("version", &pkg.version),
        ("release", &pkg.release),
        ("summary", &pkg.summary),
        ("description", &pkg.description),
        ("packager", &pkg.packager),
        ("url", &pkg.url),
        ("license", &pkg.license),
        ("vendor", &pkg.vendor),
        ("group", &pkg.group),
        ("buildhost", &pkg.buildhost),
        ("sourcerpm", &pkg.sourcerpm),
    ];
    for (field, value) in fields {
        if bad(value) {
            return Err(RpmError::ControlChar(field));
        }
    }
    for d in &pkg.deps {
        if bad(&d.name)
            || [&d.epoch, &d.ver, &d.rel]
                .iter()
                .any(|v| v.as_deref().is_some_and(bad))
        {
            return Err(RpmError::ControlChar("dependency"));
        }
    }
    if pkg.files.iter().any(|f| bad(&f.path)) {
        return Err(RpmError::ControlChar("file list"));
    }
    if pkg
        .changelogs
        .iter()
        .any(|c| bad(&c.author) || bad(&c.text))
    {
        return Err(RpmError::ControlChar("changelog"));
    }
    Ok(())
}

/// Header strings read byte for byte, for packages whose strings are not UTF-8.
///
/// The `rpm` crate replaces invalid sequences with U+FFFD; createrepo_c instead reads
/// such a string as Latin-1 and drops bytes 0x80–0xBF. This reads the raw bytes of the
/// serialised main header to do the same.
struct RawStrings {
    bytes: Option<Vec<u8>>,
}

impl RawStrings {
    fn new(meta: &PackageMetadata) -> Self {
        RawStrings {
            bytes: meta.header_bytes().ok(),
        }
    }

    fn entry(&self, tag: IndexTag) -> Option<(&[u8], u32)> {
        let b = self.bytes.as_deref()?;
        let be = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        let count = be(8)? as usize;
        let store_at = 16usize.checked_add(count.checked_mul(16)?)?;
        let store = b.get(store_at..)?;
        for i in 0..count {
            let at = 16 + i * 16;
            if be(at)? == tag as u32 {
                let offset = be(at + 8)? as usize;
                return Some((store.get(offset..)?, be(at + 12)?));
            }
        }
        None
    }

    fn get(&self, tag: IndexTag) -> Option<String> {
        let (data, _) = self.entry(tag)?;
        let end = data.iter().position(|&c| c == 0)?;
        Some(latin1_fallback(&data[..end]))
    }

    fn get_array(&self, tag: IndexTag) -> Option<Vec<String>> {
        let (mut data, n) = self.entry(tag)?;
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let end = data.iter().position(|&c| c == 0)?;
            out.push(latin1_fallback(&data[..end]));
            data = &data[end + 1..];
        }
        Some(out)
    }
}

/// createrepo_c's conversion of a non-UTF-8 string: bytes below 0x80 stay, 0x80–0xBF
/// are dropped, 0xC0–0xFF become their Latin-1 character.
pub fn latin1_fallback(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        match b {
            0..=0x7f => out.push(b as char),
            0x80..=0xbf => {}
            _ => out.push(char::from(b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evr_split_follows_createrepo_c() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(split_evr(""), Some((None, None, None)));
        assert_eq!(split_evr("1.0"), Some((s("0"), s("1.0"), None)));
        assert_eq!(
            split_evr("2:1.0-3.fc40"),
            Some((s("2"), s("1.0"), s("3.fc40")))
        );
        assert_eq!(split_evr("1.0-1-2"), Some((s("0"), s("1.0"), s("1-2"))));
        assert_eq!(split_evr("x:1.0"), None);
    }

    #[test]
    fn libc_keeps_the_highest_glibc_version() {
        assert!(libc_version_higher(
            "libc.so.6(GLIBC_2.4)(64bit)",
            "libc.so.6(GLIBC_2.34)(64bit)"
        ));
        assert!(!libc_version_higher(
            "libc.so.6(GLIBC_2.34)(64bit)",
            "libc.so.6(GLIBC_2.4)(64bit)"
        ));
        assert!(libc_version_higher(
            "libc.so.6()(64bit)",
            "libc.so.6(GLIBC_2.2.5)(64bit)"
        ));
        assert!(!libc_version_higher(
            "libc.so.6(GLIBC_2.2.5)(64bit)",
            "libc.so.6()(64bit)"
        ));
    }

    #[test]
    fn latin1_fallback_matches_createrepo_c() {
        assert_eq!(latin1_fallback(b"Caf\xe9"), "Café");
        assert_eq!(latin1_fallback(b"a\xa9b"), "ab");
        assert_eq!(latin1_fallback("ümlaut".as_bytes()), "ümlaut");
    }
}
