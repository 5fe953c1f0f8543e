//! Repository metadata: rendering `repodata/` from pre-rendered package fragments.
//!
//! A publish is an ordered concatenation of fragments ([`xml::Fragments`]) plus
//! compression. Each metadata file is cut into chunks at package boundaries (about
//! [`CHUNK_BYTES`] of XML each); chunks are compressed independently on all cores and
//! concatenated (gzip members or zstd frames, both of which dnf reads as one stream).
//! The result is deterministic: the same packages at the same locations give the same
//! bytes, and `repomd.xml`'s revision and timestamps come from the packages' own file
//! times, never from the clock.

pub mod carried;
pub mod decompress;
pub mod merge;
pub mod modules;
pub mod packed;
pub mod parse;
pub mod updateinfo;
pub mod xml;

use std::io::Write;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::domain::package::Package;

pub use carried::{Carried, CarriedFile};
pub use xml::Fragments;

/// Uncompressed bytes per independently compressed chunk.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// How metadata files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `.xml.gz`, what createrepo_c 0.17 writes and every yum/dnf reads.
    #[default]
    Gzip,
    /// `.xml.zst`: smaller and faster; dnf reads it, EL7 yum does not.
    Zstd,
}

impl Compression {
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// One package as it is placed into a published tree (its fragments come separately,
/// in the same order: see [`build`]).
pub struct Entry<'a> {
    /// `<location href>`, relative to the tree root.
    pub href: &'a str,
    /// The package's recorded file time (feeds the revision).
    pub time_file: i64,
}

/// Metadata carried into a published tree besides the package lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtraKind {
    /// comps.xml: package groups and environments.
    Comps,
    /// updateinfo.xml: advisories.
    Updateinfo,
    /// modules.yaml: modularity metadata.
    Modules,
}

impl ExtraKind {
    pub const ALL: [ExtraKind; 3] = [ExtraKind::Comps, ExtraKind::Updateinfo, ExtraKind::Modules];

    /// The name stored in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            ExtraKind::Comps => "comps",
            ExtraKind::Updateinfo => "updateinfo",
            ExtraKind::Modules => "modules",
        }
    }

    pub fn from_name(name: &str) -> Option<ExtraKind> {
        ExtraKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One carried-through metadata document, uncompressed.
pub struct Extra<'a> {
    pub kind: ExtraKind,
    pub open: &'a [u8],
}

/// One `<data>` record being assembled.
struct Record {
    kind: String,
    /// File name after `<sha>-`, before the compression suffix.
    base: String,
    suffix: Option<&'static str>,
    /// open-checksum and open-size, for compressed records.
    open: Option<(String, u64)>,
    bytes: Vec<u8>,
}

/// One file of a generated `repodata/`.
#[derive(Debug, Clone)]
pub struct MetadataFile {
    /// Path relative to the tree root, e.g. `repodata/<sha>-primary.xml.gz`.
    pub path: String,
    /// The record type in repomd.xml (`primary`, …); `repomd` for repomd.xml itself.
    pub kind: String,
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`, hex.
    pub sha256: String,
}

/// A complete generated `repodata/`: the compressed files and repomd.xml (last).
#[derive(Debug, Clone)]
pub struct Repodata {
    pub revision: i64,
    pub files: Vec<MetadataFile>,
}

/// Sorts packages into createrepo_c's package order by their `href`: by file name, then
/// by full href.
pub fn sort_by_href<T>(items: &mut [T], href: impl Fn(&T) -> &str) {
    fn base(h: &str) -> &str {
        h.rsplit('/').next().unwrap_or(h)
    }
    items.sort_by(|a, b| {
        let (a, b) = (href(a), href(b));
        base(a).cmp(base(b)).then(a.cmp(b))
    });
}

const PRIMARY_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"";
const FILELISTS_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"";
const OTHER_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"";

/// The dependency, file and changelog lists of a package, read back from its rendered
/// fragments through the parser upstream metadata goes through (so they come out as a
/// sync reads them). The other fields of the result are those the fragments carry.
pub fn package_from_fragments(fragments: &Fragments) -> Result<Package, parse::ParseError> {
    let mut primary = String::from(PRIMARY_HEAD);
    primary.push_str("1\">\n");
    fragments.write_primary("Packages/p.rpm", &mut primary);
    primary.push_str("</metadata>");
    let mut filelists = String::from(FILELISTS_HEAD);
    filelists.push_str("1\">\n");
    filelists.push_str(&fragments.filelists);
    filelists.push_str("</filelists>");
    let mut other = String::from(OTHER_HEAD);
    other.push_str("1\">\n");
    other.push_str(&fragments.other);
    other.push_str("</otherdata>");
    let mut stream =
        parse::PackageStream::new(primary.as_bytes(), filelists.as_bytes(), other.as_bytes());
    match stream.next_package()? {
        Some(entry) => Ok(entry.package),
        None => Err(parse::ParseError::Invalid {
            file: "primary.xml".into(),
            message: "no package in the stored fragments".into(),
        }),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Primary,
    Filelists,
    Other,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Primary => "primary",
            Kind::Filelists => "filelists",
            Kind::Other => "other",
        }
    }
}

/// One compressed chunk: its place in the sequence, the file it belongs to, its bytes.
type Compressed = (usize, usize, std::io::Result<Vec<u8>>);

/// Builds `repodata/` for `entries`, which must already be in [`sort_by_href`] order,
/// with the opened `extras` compressed as the packages' files and the `carried`
/// records as upstream had them. `fragments` yields each entry's fragments, in the
/// entries' order; it is read once, so they need not all be in memory at a time.
pub fn build(
    entries: &[Entry<'_>],
    fragments: &mut dyn Iterator<Item = std::io::Result<Fragments>>,
    compression: Compression,
    extras: &[Extra<'_>],
    carried: &[CarriedFile<'_>],
) -> std::io::Result<Repodata> {
    let revision = entries.iter().map(|e| e.time_file).max().unwrap_or(0);
    let kinds = [Kind::Primary, Kind::Filelists, Kind::Other];
    let compressed = package_files(entries, fragments, compression)?;
    let mut records: Vec<Record> = kinds
        .iter()
        .zip(compressed)
        .map(|(kind, (bytes, open))| Record {
            kind: kind.name().to_string(),
            base: format!("{}.xml", kind.name()),
            suffix: Some(compression.suffix()),
            open: Some(open),
            bytes,
        })
        .collect();
    records.extend(extra_records(extras, compression)?);
    Ok(Repodata {
        revision,
        files: with_repomd(records, carried, revision),
    })
}

/// A compressed metadata file and the sha256 and size of its open form.
type CompressedFile = (Vec<u8>, (String, u64));

/// primary, filelists and other of `entries`, compressed, in one pass over their
/// `fragments`.
///
/// Every file is cut into chunks of whole packages, in order, hashing the open bytes on
/// this thread while the workers compress; at most a few chunks wait at a time, so
/// memory holds the compressed files, not the open ones nor every fragment.
fn package_files(
    entries: &[Entry<'_>],
    fragments: &mut dyn Iterator<Item = std::io::Result<Fragments>>,
    compression: Compression,
) -> std::io::Result<[CompressedFile; 3]> {
    let n = entries.len();
    let kinds = [Kind::Primary, Kind::Filelists, Kind::Other];
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, usize, String)>(workers);
    let rx = Mutex::new(rx);
    let done: Mutex<Vec<Compressed>> = Mutex::new(Vec::new());
    let mut files = Assembler::default();
    let mut sent = 0;
    let mut open = [
        (Sha256::new(), 0u64),
        (Sha256::new(), 0u64),
        (Sha256::new(), 0u64),
    ];
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let next = rx.lock().ok().and_then(|r| r.recv().ok());
                let Some((i, k, text)) = next else { break };
                let out = compress(text.as_bytes(), compression);
                drop(text);
                if let Ok(mut done) = done.lock() {
                    done.push((i, k, out));
                }
            });
        }
        // Fed by this thread until the fragments end or fail; the workers end when
        // `tx` is dropped below, whichever way the feeding ended.
        let fed = (|| -> std::io::Result<()> {
            let mut send = |k: usize, text: String| {
                open[k].0.update(text.as_bytes());
                open[k].1 += text.len() as u64;
                // Fails only if every worker is gone; the missing chunk then fails below.
                let _ = tx.send((sent, k, text));
                sent += 1;
                files.take(&done);
            };
            let mut cur: [String; 3] = std::array::from_fn(|k| {
                let head = match kinds[k] {
                    Kind::Primary => PRIMARY_HEAD,
                    Kind::Filelists => FILELISTS_HEAD,
                    Kind::Other => OTHER_HEAD,
                };
                let mut cur = String::with_capacity(CHUNK_BYTES + 64 * 1024);
                cur.push_str(head);
                cur.push_str(&n.to_string());
                cur.push_str("\">\n");
                cur
            });
            for e in entries {
                let f = match fragments.next() {
                    Some(Ok(f)) => f,
                    Some(Err(err)) => return Err(err),
                    None => {
                        return Err(std::io::Error::other(format!(
                            "fewer fragments were given than the {n} packages"
                        )))
                    }
                };
                f.write_primary(e.href, &mut cur[0]);
                cur[1].push_str(&f.filelists);
                cur[2].push_str(&f.other);
                for (k, text) in cur.iter_mut().enumerate() {
                    if text.len() >= CHUNK_BYTES {
                        let full =
                            std::mem::replace(text, String::with_capacity(CHUNK_BYTES + 64 * 1024));
                        send(k, full);
                    }
                }
            }
            if fragments.next().is_some() {
                return Err(std::io::Error::other(format!(
                    "more fragments were given than the {n} packages"
                )));
            }
            for (k, mut text) in cur.into_iter().enumerate() {
                text.push_str(match kinds[k] {
                    Kind::Primary => "</metadata>",
                    Kind::Filelists => "</filelists>",
                    Kind::Other => "</otherdata>",
                });
                send(k, text);
            }
            Ok(())
        })();
        drop(tx);
        fed
    })?;
    files.take(&done);
    if let Some(e) = files.failed {
        return Err(e);
    }
    if files.next != sent {
        return Err(std::io::Error::other("a compression worker failed"));
    }
    let mut stored = files.files;

    Ok(std::array::from_fn(|k| {
        let (hasher, open_size) = std::mem::replace(&mut open[k], (Sha256::new(), 0));
        (
            std::mem::take(&mut stored[k]),
            (hex::encode(hasher.finalize()), open_size),
        )
    }))
}

/// The compressed files being assembled: each chunk is appended to its file as soon as
/// every chunk before it is, so only the chunks that finished early wait in memory.
#[derive(Default)]
struct Assembler {
    /// The sequence number of the next chunk to append.
    next: usize,
    /// Chunks that finished before an earlier one: sequence → (file, bytes).
    waiting: std::collections::BTreeMap<usize, (usize, std::io::Result<Vec<u8>>)>,
    files: [Vec<u8>; 3],
    /// The first chunk that failed to compress.
    failed: Option<std::io::Error>,
}

impl Assembler {
    /// Takes the chunks the workers finished and appends those whose turn it is.
    fn take(&mut self, done: &Mutex<Vec<Compressed>>) {
        if let Ok(mut done) = done.lock() {
            for (i, k, part) in done.drain(..) {
                self.waiting.insert(i, (k, part));
            }
        }
        while let Some((k, part)) = self.waiting.remove(&self.next) {
            match part {
                Ok(bytes) => self.files[k].extend_from_slice(&bytes),
                Err(e) => {
                    self.failed.get_or_insert(e);
                }
            }
            self.next += 1;
        }
    }
}

/// The records of the carried-through metadata, by type name (the order createrepo_c
/// uses after the three package files): group, group_<suffix>, modules, updateinfo.
fn extra_records(extras: &[Extra<'_>], compression: Compression) -> std::io::Result<Vec<Record>> {
    let mut extra_records: Vec<Record> = Vec::new();
    for extra in extras {
        let open_sha = hex::encode(Sha256::digest(extra.open));
        let open = Some((open_sha, extra.open.len() as u64));
        let compressed = compress(extra.open, compression)?;
        match extra.kind {
            ExtraKind::Comps => {
                // EL7 yum reads only an uncompressed "group"; dnf prefers group_<suffix>.
                extra_records.push(Record {
                    kind: "group".into(),
                    base: "comps.xml".into(),
                    suffix: None,
                    open: None,
                    bytes: extra.open.to_vec(),
                });
                extra_records.push(Record {
                    kind: format!("group_{}", compression.suffix()),
                    base: "comps.xml".into(),
                    suffix: Some(compression.suffix()),
                    open,
                    bytes: compressed,
                });
            }
            ExtraKind::Updateinfo => extra_records.push(Record {
                kind: "updateinfo".into(),
                base: "updateinfo.xml".into(),
                suffix: Some(compression.suffix()),
                open,
                bytes: compressed,
            }),
            ExtraKind::Modules => extra_records.push(Record {
                kind: "modules".into(),
                base: "modules.yaml".into(),
                suffix: Some(compression.suffix()),
                open,
                bytes: compressed,
            }),
        }
    }
    extra_records.sort_by(|a, b| a.kind.cmp(&b.kind));
    Ok(extra_records)
}

/// The files of `records` under their content-addressed names, the `carried` records
/// under their own (each listed as upstream listed it), and `repomd.xml` describing
/// them all.
fn with_repomd(
    records: Vec<Record>,
    carried: &[CarriedFile<'_>],
    revision: i64,
) -> Vec<MetadataFile> {
    let mut files = Vec::with_capacity(records.len() + carried.len() + 1);
    let mut repomd = String::with_capacity(2048);
    repomd.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n");
    repomd.push_str(&format!("  <revision>{revision}</revision>\n"));
    for r in records {
        let sha = hex::encode(Sha256::digest(&r.bytes));
        let path = match r.suffix {
            Some(suffix) => format!("repodata/{sha}-{}.{suffix}", r.base),
            None => format!("repodata/{sha}-{}", r.base),
        };
        let open = r.open.as_ref().map(|(open_sha, open_size)| {
            (
                parse::Checksum {
                    algorithm: "sha256".into(),
                    hex: open_sha.clone(),
                },
                Some(*open_size),
            )
        });
        let listed = Listed {
            kind: &r.kind,
            checksum: &parse::Checksum {
                algorithm: "sha256".into(),
                hex: sha.clone(),
            },
            open_checksum: open.as_ref().map(|(c, _)| c),
            path: &path,
            timestamp: revision,
            size: r.bytes.len(),
            open_size: open.as_ref().and_then(|(_, s)| *s),
        };
        listed.write(&mut repomd);
        files.push(MetadataFile {
            path,
            kind: r.kind,
            bytes: r.bytes,
            sha256: sha,
        });
    }
    for c in carried {
        let sha = hex::encode(Sha256::digest(c.bytes));
        let mut path = format!("repodata/{}", c.record.file_name);
        if files.iter().any(|f| f.path == path) {
            // Two members' records under one file name: the later one is renamed.
            path = format!("repodata/{sha}-{}", c.record.file_name);
        }
        let listed = Listed {
            kind: &c.record.kind,
            checksum: &c.record.checksum,
            open_checksum: c.record.open_checksum.as_ref(),
            path: &path,
            timestamp: c.record.timestamp.unwrap_or(revision),
            size: c.bytes.len(),
            open_size: c.record.open_size,
        };
        listed.write(&mut repomd);
        files.push(MetadataFile {
            path,
            kind: c.record.kind.clone(),
            bytes: c.bytes.to_vec(),
            sha256: sha,
        });
    }
    repomd.push_str("</repomd>\n");
    let bytes = repomd.into_bytes();
    files.push(MetadataFile {
        path: "repodata/repomd.xml".to_string(),
        kind: "repomd".to_string(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes,
    });
    files
}

/// One `<data>` entry of repomd.xml.
struct Listed<'a> {
    kind: &'a str,
    checksum: &'a parse::Checksum,
    open_checksum: Option<&'a parse::Checksum>,
    path: &'a str,
    timestamp: i64,
    size: usize,
    open_size: Option<u64>,
}

impl Listed<'_> {
    /// Appends the entry; every value from upstream is escaped.
    fn write(&self, out: &mut String) {
        let attr = |s: &str| {
            let mut e = String::with_capacity(s.len());
            xml::escape_attr(s, &mut e);
            e
        };
        let text = |s: &str| {
            let mut e = String::with_capacity(s.len());
            xml::escape_text(s, &mut e);
            e
        };
        out.push_str(&format!(
            "  <data type=\"{}\">\n    <checksum type=\"{}\">{}</checksum>\n",
            attr(self.kind),
            attr(&self.checksum.algorithm),
            text(&self.checksum.hex)
        ));
        if let Some(open) = self.open_checksum {
            out.push_str(&format!(
                "    <open-checksum type=\"{}\">{}</open-checksum>\n",
                attr(&open.algorithm),
                text(&open.hex)
            ));
        }
        out.push_str(&format!(
            "    <location href=\"{}\"/>\n    <timestamp>{}</timestamp>\n    <size>{}</size>\n",
            attr(self.path),
            self.timestamp,
            self.size
        ));
        if let Some(open_size) = self.open_size {
            out.push_str(&format!("    <open-size>{open_size}</open-size>\n"));
        }
        out.push_str("  </data>\n");
    }
}

fn compress(data: &[u8], compression: Compression) -> std::io::Result<Vec<u8>> {
    let mut out = match compression {
        Compression::Gzip => {
            let mut enc = flate2::GzBuilder::new().write(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::default(),
            );
            enc.write_all(data)?;
            enc.finish()?
        }
        Compression::Zstd => zstd::bulk::compress(data, 3)?,
    };
    // The chunks wait until every one is done: without this, each would hold the room
    // reserved for it (a quarter of its open size; metadata compresses tenfold), and a
    // 100,000-package repository's chunks would hold hundreds of megabytes.
    out.shrink_to_fit();
    Ok(out)
}
