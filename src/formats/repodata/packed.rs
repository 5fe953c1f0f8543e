//! A package's three fragments as the catalog keeps them: one zstd frame holding
//! primary, filelists and other back to back, with the three lengths that split it
//! again and the offset of the location in primary.
//!
//! Fragments are most of a catalog's bytes (about 8 KB a package with long file lists
//! and changelogs, 800 MB at 100,000 packages), and XML compresses several times over
//! (sixfold on generated distribution-like metadata). Writing them compressed is what
//! keeps a metadata-only sync of a large repository from being bound by the catalog's
//! writes; a publish decompresses them at a few hundred MB/s a core.
//! Compression contexts are kept per thread: making one for each package costs more
//! than compressing it.

use std::cell::RefCell;
use std::sync::Arc;

use super::xml::{self, Fragments};
use crate::domain::package::Package;

/// zstd's fastest regular level: the higher ones save a few percent on these small
/// inputs and take longer.
const LEVEL: i32 = 1;

/// The largest package a packed frame may unpack to (a package listing a million files
/// stays well below it); a larger length can only come from a damaged row.
const MAX_UNPACKED: usize = 1 << 30;

/// The packed fragments of one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Byte offset in the primary fragment where the escaped href is inserted.
    pub href_at: usize,
    /// The lengths of primary, filelists and other, in that order.
    pub lens: [usize; 3],
    /// One zstd frame of the three, back to back.
    pub bytes: Vec<u8>,
}

/// Why packed fragments cannot be unpacked (a damaged catalog row).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("their lengths add up to {0} bytes, more than a package can have")]
    TooLarge(usize),
    #[error("they do not decompress: {0}")]
    Decompress(std::io::Error),
    #[error("they decompress to {found} bytes where their lengths add up to {expected}")]
    Length { expected: usize, found: usize },
    #[error("the {0} fragment is not UTF-8 text")]
    NotText(&'static str),
    #[error("the location offset {href_at} is not a place in the primary fragment")]
    Location { href_at: usize },
}

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    /// The three fragments back to back, before compression.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Packs `fragments`.
pub fn pack(fragments: &Fragments) -> std::io::Result<Packed> {
    let parts = [
        fragments.primary.as_bytes(),
        fragments.filelists.as_bytes(),
        fragments.other.as_bytes(),
    ];
    let bytes = SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        for part in parts {
            scratch.extend_from_slice(part);
        }
        COMPRESSOR.with_borrow_mut(|slot| {
            let compressor = match slot {
                Some(c) => c,
                None => slot.insert(zstd::bulk::Compressor::new(LEVEL)?),
            };
            compressor.compress(scratch)
        })
    })?;
    Ok(Packed {
        href_at: fragments.href_at,
        lens: parts.map(<[u8]>::len),
        bytes,
    })
}

/// Unpacks `packed`, checking that the parts are what their lengths say.
pub fn unpack(packed: &Packed) -> Result<Fragments, UnpackError> {
    let expected = packed
        .lens
        .iter()
        .try_fold(0usize, |sum, &n| sum.checked_add(n))
        .filter(|&n| n <= MAX_UNPACKED)
        .ok_or(UnpackError::TooLarge(
            packed.lens.iter().fold(0usize, |a, &n| a.saturating_add(n)),
        ))?;
    let bytes = DECOMPRESSOR.with_borrow_mut(|slot| {
        let decompressor = match slot {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new().map_err(UnpackError::Decompress)?),
        };
        // One byte of room more than expected, so that a frame holding more shows as
        // a wrong length instead of a too-small buffer.
        decompressor
            .decompress(&packed.bytes, expected + 1)
            .map_err(UnpackError::Decompress)
    })?;
    if bytes.len() != expected {
        return Err(UnpackError::Length {
            expected,
            found: bytes.len(),
        });
    }
    let [p, f, _] = packed.lens;
    let text = |range: std::ops::Range<usize>, name| -> Result<Arc<str>, UnpackError> {
        std::str::from_utf8(&bytes[range])
            .map(Arc::from)
            .map_err(|_| UnpackError::NotText(name))
    };
    let primary = text(0..p, "primary")?;
    if !primary.is_char_boundary(packed.href_at) {
        return Err(UnpackError::Location {
            href_at: packed.href_at,
        });
    }
    Ok(Fragments {
        primary,
        href_at: packed.href_at,
        filelists: text(p..p + f, "filelists")?,
        other: text(p + f..expected, "other")?,
    })
}

/// Renders and packs the fragments of many packages on all cores, keeping their order.
pub fn render_all(packages: Vec<Package>) -> std::io::Result<Vec<(Package, Packed)>> {
    let one = |p: &Package| pack(&xml::render(p));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || packages.len() < 256 {
        let packed = packages
            .iter()
            .map(one)
            .collect::<std::io::Result<Vec<_>>>()?;
        return Ok(packages.into_iter().zip(packed).collect());
    }
    let per = packages.len().div_ceil(threads);
    let packed: Vec<Packed> = std::thread::scope(|scope| {
        let parts: Vec<_> = packages
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    Ok(packages.into_iter().zip(packed).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(i: usize) -> Package {
        let s = |what: &str| format!("{what}-{i}");
        Package {
            pkgid: format!("{i:064x}"),
            name: s("name"),
            arch: "noarch".into(),
            epoch: "0".into(),
            version: s("1.0"),
            release: "1".into(),
            summary: s("summary"),
            description: s("description"),
            packager: String::new(),
            url: String::new(),
            time_file: i as i64,
            time_build: i as i64,
            size_package: 100,
            size_installed: 200,
            size_archive: 300,
            license: "MIT".into(),
            vendor: String::new(),
            group: String::new(),
            buildhost: String::new(),
            sourcerpm: String::new(),
            header_start: 0,
            header_end: 0,
            deps: vec![crate::domain::package::Dependency {
                kind: crate::domain::package::DepKind::Requires,
                name: s("needs"),
                flags: None,
                epoch: None,
                ver: None,
                rel: None,
                pre: false,
            }],
            files: vec![crate::domain::package::PackageFile {
                path: format!("/usr/bin/{}", s("tool")),
                kind: crate::domain::package::FileKind::File,
            }],
            changelogs: vec![crate::domain::package::Changelog {
                author: "José <jose@example.org>".into(),
                date: i as i64,
                text: s("- a change"),
            }],
        }
    }

    fn fragments() -> Fragments {
        xml::render(&package(7))
    }

    #[test]
    fn fragments_come_back_as_they_were_packed() {
        let f = fragments();
        let packed = pack(&f).unwrap();
        assert!(packed.bytes.len() < f.primary.len() + f.filelists.len() + f.other.len());
        assert_eq!(unpack(&packed).unwrap(), f);
    }

    #[test]
    fn a_damaged_row_is_an_error_never_other_fragments() {
        let good = pack(&fragments()).unwrap();
        let mut lens = good.clone();
        lens.lens[1] += 1;
        assert!(matches!(unpack(&lens), Err(UnpackError::Length { .. })));
        let mut shorter = good.clone();
        shorter.lens[2] -= 1;
        assert!(matches!(unpack(&shorter), Err(UnpackError::Length { .. })));
        let mut huge = good.clone();
        huge.lens[0] = usize::MAX;
        assert!(matches!(unpack(&huge), Err(UnpackError::TooLarge(_))));
        let mut bytes = good.clone();
        bytes.bytes.truncate(bytes.bytes.len() / 2);
        assert!(matches!(unpack(&bytes), Err(UnpackError::Decompress(_))));
        let mut at = good.clone();
        at.href_at = good.lens[0] + 1;
        assert!(matches!(unpack(&at), Err(UnpackError::Location { .. })));
    }

    #[test]
    fn a_split_inside_a_character_is_an_error() {
        let mut f = fragments();
        f.filelists = format!("é{}", f.filelists).into();
        let mut packed = pack(&f).unwrap();
        // Move the boundary between primary and filelists into the 2-byte 'é'.
        packed.lens[0] += 1;
        packed.lens[1] -= 1;
        assert!(matches!(unpack(&packed), Err(UnpackError::NotText(_))));
    }

    #[test]
    fn rendering_on_all_cores_keeps_every_package_with_its_own_fragments() {
        // Above the size where the work is split over threads.
        let packages: Vec<Package> = (0..1000).map(package).collect();
        let rendered = render_all(packages.clone()).unwrap();
        assert_eq!(rendered.len(), packages.len());
        for ((p, packed), original) in rendered.iter().zip(&packages) {
            assert_eq!(p, original, "everything the catalog rows need is kept");
            assert_eq!(unpack(packed).unwrap(), xml::render(original));
        }
    }
}
