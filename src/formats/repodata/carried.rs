//! Records of upstream's repomd.xml that regenerated metadata carries unchanged:
//! `productid`, and any type Cairn neither regenerates nor deliberately drops.
//!
//! The rule, by record type (a type's base is its name without the `_db`, `_zck` and
//! compression suffixes createrepo_c and modifyrepo_c add):
//! - regenerated from the packages kept, so never carried: `primary`, `filelists`,
//!   `filelists_ext`, `other`, `group`, `updateinfo` and `modules`, with all their
//!   variants (`primary_db`, `group_gz`, `updateinfo_zck`, …);
//! - dropped: `prestodelta` and `deltainfo` (delta RPMs are not mirrored, so the
//!   deltas they describe would not be served);
//! - carried: every other type, byte for byte as upstream has it (compressed or not),
//!   listed with upstream's checksums, sizes and timestamp.

use super::parse::{Checksum, RepomdRecord};

/// Types whose records (and variants) are rendered by Cairn from the packages kept.
const REGENERATED: [&str; 7] = [
    "primary",
    "filelists",
    "filelists_ext",
    "other",
    "group",
    "updateinfo",
    "modules",
];
/// Types whose records are left out: delta RPMs are not mirrored.
const DROPPED: [&str; 2] = ["prestodelta", "deltainfo"];
/// Suffixes of a type's variants.
const VARIANT_SUFFIXES: [&str; 8] = [
    "_db", "_zck", "_gz", "_xz", "_bz2", "_zst", "_zstd", "_lzma",
];
/// Names the catalog uses for the opened documents: a carried type cannot take them.
const RESERVED: [&str; 1] = ["comps"];

/// What becomes of an upstream record in regenerated metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Rendered by Cairn (or opened and merged): not carried.
    Regenerated,
    /// Left out on purpose (delta RPMs are not mirrored).
    Dropped,
    /// Carried unchanged.
    Carried,
    /// Not carried: the type's name is not a plain name (letters, digits, `_`, `-`,
    /// `.`) or is one the catalog reserves. The sync warns.
    Refused,
}

/// The base of a record type: its name without variant suffixes.
fn base_of(kind: &str) -> &str {
    let mut base = kind;
    while let Some(stripped) = VARIANT_SUFFIXES
        .iter()
        .find_map(|s| base.strip_suffix(s).filter(|b| !b.is_empty()))
    {
        base = stripped;
    }
    base
}

/// What regenerated metadata does with upstream's record of type `kind`.
pub fn fate(kind: &str) -> Fate {
    let base = base_of(kind);
    if REGENERATED.contains(&base) {
        Fate::Regenerated
    } else if DROPPED.contains(&base) {
        Fate::Dropped
    } else if !plain_name(kind) || RESERVED.contains(&kind) {
        Fate::Refused
    } else {
        Fate::Carried
    }
}

fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
}

/// One carried record: what upstream's repomd.xml says of it, and the file name it is
/// published under in `repodata/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    pub kind: String,
    pub file_name: String,
    pub checksum: Checksum,
    pub open_checksum: Option<Checksum>,
    pub open_size: Option<u64>,
    pub timestamp: Option<i64>,
}

impl Carried {
    /// The carried form of upstream's `record` whose bytes have sha256 `sha256`:
    /// published under upstream's own file name when that is a plain name (modifyrepo_c
    /// names files `<checksum>-<type>.<ext>`), else under `<sha256>-<type>`.
    pub fn of(record: &RepomdRecord, sha256: &str) -> Carried {
        let upstream_name = record.href.rsplit('/').next().unwrap_or_default();
        let file_name = if plain_name(upstream_name) && !upstream_name.starts_with("repomd.xml") {
            upstream_name.to_string()
        } else {
            format!("{sha256}-{}", record.kind)
        };
        Carried {
            kind: record.kind.clone(),
            file_name,
            checksum: record.checksum.clone(),
            open_checksum: record.open_checksum.clone(),
            open_size: record.open_size,
            timestamp: record.timestamp,
        }
    }
}

/// A carried record and its bytes, as the renderer takes them.
pub struct CarriedFile<'a> {
    pub record: &'a Carried,
    pub bytes: &'a [u8],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_of_a_regenerated_type_is_regenerated() {
        for kind in [
            "primary",
            "primary_db",
            "primary_zck",
            "filelists_ext",
            "filelists_ext_db",
            "other_db",
            "group",
            "group_gz",
            "group_xz",
            "group_zck",
            "updateinfo",
            "updateinfo_zck",
            "modules",
            "modules_zck",
        ] {
            assert_eq!(fate(kind), Fate::Regenerated, "{kind}");
        }
        for kind in ["prestodelta", "prestodelta_zck", "deltainfo"] {
            assert_eq!(fate(kind), Fate::Dropped, "{kind}");
        }
        for kind in [
            "productid",
            "susedata",
            "suseinfo",
            "custom_thing",
            "appdata-icons",
        ] {
            assert_eq!(fate(kind), Fate::Carried, "{kind}");
        }
        for kind in ["", "comps", "a\"b", "x<y", ".hidden", "a/b"] {
            assert_eq!(fate(kind), Fate::Refused, "{kind:?}");
        }
    }

    #[test]
    fn upstream_file_names_are_kept_when_plain() {
        let record = |href: &str| RepomdRecord {
            kind: "productid".into(),
            checksum: Checksum {
                algorithm: "sha256".into(),
                hex: "ab".into(),
            },
            open_checksum: None,
            href: href.into(),
            size: None,
            open_size: None,
            timestamp: None,
        };
        assert_eq!(
            Carried::of(&record("repodata/1234-productid.gz"), "ff").file_name,
            "1234-productid.gz"
        );
        assert_eq!(
            Carried::of(&record("repodata/we%20ird"), "ff").file_name,
            "ff-productid"
        );
        assert_eq!(
            Carried::of(&record("repodata/repomd.xml.asc"), "ff").file_name,
            "ff-productid"
        );
    }
}
