//! Reading repository metadata (repomd.xml, primary, filelists, other) with quick-xml.
//!
//! Parsing streams: one `<package>` element at a time is collected into a small tree,
//! checked against size limits and turned into fields, so memory follows the largest
//! package, not the repository. Hostile input gets a clear error instead of work or
//! memory: DTDs and entity declarations are ignored (only the five XML entities and
//! character references are understood), nesting depth and per-package size are
//! bounded (also while an event is read: see `Metered`), decompressed sizes are capped
//! (see `decompress`), and `location href`s that leave the repository are refused.

use std::io::{BufRead, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::domain::package::{Changelog, DepKind, Dependency, FileKind, Package, PackageFile};

/// Most bytes one `<package>` element may take (text and attributes together). Real
/// ones take kilobytes, a few megabytes for the largest file lists (a package of
/// 200,000 files: about 20 MB); what a hostile document can make a sync hold at once
/// is this much, with the allocator's own overhead, so it stays under 64 MiB.
pub const MAX_PACKAGE_BYTES: usize = 48 * 1024 * 1024;
/// Deepest element nesting accepted inside a document.
pub const MAX_DEPTH: usize = 16;

/// Metadata that cannot be read, with the file and position involved.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{file}: malformed XML at byte {position}: {message}")]
    Xml {
        file: String,
        position: u64,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{file}: decompressed data exceeds {limit} bytes")]
    TooLarge { file: String, limit: u64 },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

/// An XML element with its attributes, text and children (one package's worth).
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn child_text(&self, name: &str) -> String {
        self.child(name).map(|c| c.text.clone()).unwrap_or_default()
    }
}

/// What one element may take of its document, with what precedes it (whitespace,
/// comments): [`MAX_PACKAGE_BYTES`] and some room.
const ELEMENT_BUDGET: usize = MAX_PACKAGE_BYTES + 64 * 1024;

/// A reader that hands out at most `left` more bytes until it is given a new budget:
/// the XML reader copies a whole event (a text run, a comment) into memory before it
/// returns it, so the budget must hold while the event is read, not after.
struct Metered<R> {
    inner: R,
    left: usize,
    exhausted: bool,
}

impl<R: BufRead> Read for Metered<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Metered<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.left == 0 {
            self.exhausted = true;
            return Err(std::io::Error::other(format!(
                "more than {MAX_PACKAGE_BYTES} bytes without a complete element"
            )));
        }
        let left = self.left;
        let available = self.inner.fill_buf()?;
        Ok(&available[..available.len().min(left)])
    }

    fn consume(&mut self, n: usize) {
        self.left = self.left.saturating_sub(n);
        self.inner.consume(n);
    }
}

/// Streams the top-level children of a document's root element.
pub struct ElementReader<R: BufRead> {
    reader: Reader<Metered<R>>,
    buf: Vec<u8>,
    file: String,
    root: Option<Element>,
    done: bool,
}

impl<R: BufRead> ElementReader<R> {
    /// Reads `input`; `file` names it in errors.
    pub fn new(input: R, file: &str) -> Self {
        let mut reader = Reader::from_reader(Metered {
            inner: input,
            left: MAX_PACKAGE_BYTES,
            exhausted: false,
        });
        reader.config_mut().trim_text(false);
        reader.config_mut().check_end_names = true;
        ElementReader {
            reader,
            // Room for the largest event the budget lets through, reserved once (only
            // the pages written to are ever resident): a buffer that grew instead would
            // be copied into one twice its size at each step, and an event of nearly
            // the whole budget (a whitespace bomb) would hold both, about three times
            // the budget, at once.
            buf: Vec::with_capacity(ELEMENT_BUDGET),
            file: file.to_string(),
            root: None,
            done: false,
        }
    }

    fn invalid(&self, message: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            file: self.file.clone(),
            message: message.into(),
        }
    }

    fn start(e: &BytesStart<'_>, file: &str, position: u64) -> Result<Element, ParseError> {
        let err = |message: String| ParseError::Xml {
            file: file.to_string(),
            position,
            message,
        };
        let mut el = Element {
            name: e.name().as_ref().to_string(),
            ..Default::default()
        };
        for a in e.attributes() {
            let a = a.map_err(|x| err(x.to_string()))?;
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|x| err(x.to_string()))?;
            el.attrs
                .push((a.key.as_ref().to_string(), value.into_owned()));
        }
        Ok(el)
    }

    /// The root element (name and attributes), once the first child was requested.
    pub fn root(&self) -> Option<&Element> {
        self.root.as_ref()
    }

    /// The next top-level child element of the root, or `None` at the end.
    pub fn next_element(&mut self) -> Result<Option<Element>, ParseError> {
        if self.done {
            return Ok(None);
        }
        let mut stack: Vec<Element> = Vec::new();
        let mut bytes = 0usize;
        // Each element (with what precedes it) gets the per-element budget.
        self.reader.get_mut().left = ELEMENT_BUDGET;
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.next_element_with(&mut stack, &mut bytes, &mut buf);
        self.buf = buf;
        result
    }

    fn next_element_with(
        &mut self,
        stack: &mut Vec<Element>,
        bytes: &mut usize,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Element>, ParseError> {
        loop {
            buf.clear();
            let position = self.reader.buffer_position();
            let event = match self.reader.read_event_into(buf) {
                Ok(event) => event,
                Err(_) if self.reader.get_ref().exhausted => {
                    return Err(self.invalid(format!(
                        "an element is larger than {MAX_PACKAGE_BYTES} bytes (or as much text, whitespace or comment between elements)"
                    )));
                }
                Err(e) => {
                    return Err(ParseError::Xml {
                        file: self.file.clone(),
                        position,
                        message: e.to_string(),
                    })
                }
            };
            *bytes += (self.reader.buffer_position() - position) as usize;
            let bytes = *bytes;
            if bytes > MAX_PACKAGE_BYTES {
                return Err(self.invalid(format!(
                    "an element is larger than {MAX_PACKAGE_BYTES} bytes"
                )));
            }
            match event {
                Event::Start(e) => {
                    let el = Self::start(&e, &self.file, position)?;
                    if self.root.is_none() {
                        self.root = Some(el);
                        continue;
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.invalid("elements are nested too deeply"));
                    }
                    stack.push(el);
                }
                Event::Empty(e) => {
                    let el = Self::start(&e, &self.file, position)?;
                    if self.root.is_none() {
                        self.root = Some(el);
                        self.done = true;
                        return Ok(None);
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => return Ok(Some(el)),
                    }
                }
                Event::End(_) => match stack.pop() {
                    Some(el) => match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => return Ok(Some(el)),
                    },
                    None => {
                        // The root closed.
                        self.done = true;
                        return Ok(None);
                    }
                },
                Event::Text(t) => {
                    if let Some(el) = stack.last_mut() {
                        el.text.push_str(&t.xml10_content());
                    }
                }
                Event::CData(t) => {
                    if let Some(el) = stack.last_mut() {
                        el.text.push_str(&t.xml10_content());
                    }
                }
                Event::GeneralRef(r) => {
                    let name = r.xml10_content();
                    let resolved = resolve_reference(&name).ok_or_else(|| ParseError::Xml {
                        file: self.file.clone(),
                        position,
                        message: format!("unknown entity &{name};"),
                    })?;
                    if let Some(el) = stack.last_mut() {
                        el.text.push(resolved);
                    }
                }
                Event::Eof => {
                    if self.root.is_none() {
                        return Err(self.invalid("the document is empty"));
                    }
                    if !stack.is_empty() || !self.done {
                        return Err(self.invalid("the document ends early (truncated?)"));
                    }
                    return Ok(None);
                }
                // Declarations, comments, processing instructions and DOCTYPEs carry
                // nothing we use; entity declarations inside a DOCTYPE are never expanded.
                _ => {}
            }
        }
    }
}

/// The five predefined entities and character references.
pub(crate) fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => name.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// A checksum as written in metadata: algorithm and lower-case hex digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: String,
    pub hex: String,
}

/// One `<data>` record of repomd.xml.
#[derive(Debug, Clone)]
pub struct RepomdRecord {
    pub kind: String,
    pub checksum: Checksum,
    pub open_checksum: Option<Checksum>,
    pub href: String,
    pub size: Option<u64>,
    pub open_size: Option<u64>,
    pub timestamp: Option<i64>,
}

/// A parsed repomd.xml.
#[derive(Debug, Clone)]
pub struct Repomd {
    pub revision: String,
    pub records: Vec<RepomdRecord>,
}

impl Repomd {
    pub fn record(&self, kind: &str) -> Option<&RepomdRecord> {
        self.records.iter().find(|r| r.kind == kind)
    }
}

/// Is `href` a relative path that stays inside the repository? Checked on the raw
/// text and after percent-decoding (an upstream server decodes `%2e%2e/` into `../`);
/// a query string or fragment is refused (it names something other than a file).
pub fn href_is_safe(href: &str) -> bool {
    let plain = |p: &str| {
        !p.is_empty()
            && !p.starts_with('/')
            && !p.contains("://")
            && !p.contains('\\')
            && !p.contains('\0')
            && !p.split('/').any(|s| s == ".." || s == "." || s.is_empty())
    };
    if href.contains(['?', '#']) || !plain(href) {
        return false;
    }
    match percent_encoding::percent_decode_str(href).decode_utf8() {
        Ok(decoded) => !decoded.contains(['?', '#']) && plain(&decoded),
        Err(_) => false,
    }
}

fn checksum(el: &Element, file: &str) -> Result<Checksum, ParseError> {
    let algorithm = el.attr("type").unwrap_or("sha256").to_ascii_lowercase();
    let algorithm = if algorithm == "sha" {
        "sha1".to_string()
    } else {
        algorithm
    };
    let hex = el.text.trim().to_ascii_lowercase();
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::Invalid {
            file: file.to_string(),
            message: format!("checksum {:?} is not hexadecimal", el.text),
        });
    }
    Ok(Checksum { algorithm, hex })
}

/// Parses repomd.xml.
pub fn parse_repomd(bytes: &[u8], file: &str) -> Result<Repomd, ParseError> {
    let mut r = ElementReader::new(bytes, file);
    let mut revision = String::new();
    let mut records = Vec::new();
    while let Some(el) = r.next_element()? {
        match el.name.as_str() {
            "revision" => revision = el.text.trim().to_string(),
            "data" => {
                let kind = el.attr("type").unwrap_or_default().to_string();
                let invalid = |m: String| ParseError::Invalid {
                    file: file.to_string(),
                    message: m,
                };
                let href = el
                    .child("location")
                    .and_then(|l| l.attr("href"))
                    .ok_or_else(|| invalid(format!("record {kind:?} has no location")))?
                    .to_string();
                if !href_is_safe(&href) {
                    return Err(invalid(format!(
                        "record {kind:?} location {href:?} leaves the repository"
                    )));
                }
                let num = |name: &str| {
                    el.child(name)
                        .and_then(|c| c.text.trim().parse::<u64>().ok())
                };
                records.push(RepomdRecord {
                    checksum: checksum(
                        el.child("checksum")
                            .ok_or_else(|| invalid(format!("record {kind:?} has no checksum")))?,
                        file,
                    )?,
                    open_checksum: el
                        .child("open-checksum")
                        .map(|c| checksum(c, file))
                        .transpose()?,
                    href,
                    size: num("size"),
                    open_size: num("open-size"),
                    timestamp: num("timestamp").map(|t| t as i64),
                    kind,
                });
            }
            _ => {}
        }
    }
    match r.root() {
        Some(root) if root.name == "repomd" => Ok(Repomd { revision, records }),
        _ => Err(ParseError::Invalid {
            file: file.to_string(),
            message: "not a repomd.xml document".into(),
        }),
    }
}

/// A package as primary.xml describes it (files: only the primary subset).
#[derive(Debug, Clone)]
pub struct PrimaryEntry {
    pub package: Package,
    /// The upstream checksum (pkgid) and its algorithm.
    pub checksum: Checksum,
    /// `<location href>`, checked to stay inside the repository.
    pub href: String,
}

fn num<T: std::str::FromStr + Default>(el: Option<&Element>, attr: &str) -> T {
    el.and_then(|e| e.attr(attr))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_default()
}

fn file_kind(el: &Element) -> FileKind {
    match el.attr("type") {
        Some("dir") => FileKind::Dir,
        Some("ghost") => FileKind::Ghost,
        _ => FileKind::File,
    }
}

/// Converts one primary `<package>` element.
pub fn primary_entry(el: &Element, file: &str) -> Result<PrimaryEntry, ParseError> {
    let invalid = |m: String| ParseError::Invalid {
        file: file.to_string(),
        message: m,
    };
    let name = el.child_text("name");
    if name.is_empty() {
        return Err(invalid("a package has no name".into()));
    }
    let sum = checksum(
        el.child("checksum")
            .ok_or_else(|| invalid(format!("package {name} has no checksum")))?,
        file,
    )?;
    let href = el
        .child("location")
        .and_then(|l| l.attr("href"))
        .ok_or_else(|| invalid(format!("package {name} has no location")))?
        .to_string();
    if !href_is_safe(&href) {
        return Err(invalid(format!(
            "package {name}: location {href:?} leaves the repository"
        )));
    }
    let version = el.child("version");
    let format = el.child("format");
    let fmt_text = |n: &str| format.map(|f| f.child_text(n)).unwrap_or_default();
    let mut deps = Vec::new();
    let mut files = Vec::new();
    if let Some(format) = format {
        for kind in DepKind::ALL {
            let Some(list) = format.child(&format!("rpm:{}", kind.element())) else {
                continue;
            };
            for e in list.children.iter().filter(|c| c.name == "rpm:entry") {
                let get = |k: &str| e.attr(k).map(str::to_string);
                deps.push(Dependency {
                    kind,
                    name: get("name").unwrap_or_default(),
                    flags: get("flags"),
                    epoch: get("epoch"),
                    ver: get("ver"),
                    rel: get("rel"),
                    pre: matches!(e.attr("pre"), Some("1") | Some("true")),
                });
            }
        }
        for f in format.children.iter().filter(|c| c.name == "file") {
            files.push(PackageFile {
                path: f.text.clone(),
                kind: file_kind(f),
            });
        }
    }
    let time = el.child("time");
    let size = el.child("size");
    let range = format.and_then(|f| f.child("rpm:header-range"));
    Ok(PrimaryEntry {
        package: Package {
            pkgid: sum.hex.clone(),
            name,
            arch: el.child_text("arch"),
            epoch: version
                .and_then(|v| v.attr("epoch"))
                .unwrap_or("0")
                .to_string(),
            version: version
                .and_then(|v| v.attr("ver"))
                .unwrap_or_default()
                .to_string(),
            release: version
                .and_then(|v| v.attr("rel"))
                .unwrap_or_default()
                .to_string(),
            summary: el.child_text("summary"),
            description: el.child_text("description"),
            packager: el.child_text("packager"),
            url: el.child_text("url"),
            time_file: num(time, "file"),
            time_build: num(time, "build"),
            size_package: num(size, "package"),
            size_installed: num(size, "installed"),
            size_archive: num(size, "archive"),
            license: fmt_text("rpm:license"),
            vendor: fmt_text("rpm:vendor"),
            group: fmt_text("rpm:group"),
            buildhost: fmt_text("rpm:buildhost"),
            sourcerpm: fmt_text("rpm:sourcerpm"),
            header_start: num(range, "start"),
            header_end: num(range, "end"),
            deps,
            files,
            changelogs: Vec::new(),
        },
        checksum: sum,
        href,
    })
}

/// The pkgid and full file list of one filelists `<package>`.
pub fn filelists_entry(el: &Element) -> (String, Vec<PackageFile>) {
    let files = el
        .children
        .iter()
        .filter(|c| c.name == "file")
        .map(|f| PackageFile {
            path: f.text.clone(),
            kind: file_kind(f),
        })
        .collect();
    (
        el.attr("pkgid").unwrap_or_default().to_ascii_lowercase(),
        files,
    )
}

/// The pkgid and changelogs of one other.xml `<package>`.
pub fn other_entry(el: &Element) -> (String, Vec<Changelog>) {
    let logs = el
        .children
        .iter()
        .filter(|c| c.name == "changelog")
        .map(|c| Changelog {
            author: c.attr("author").unwrap_or_default().to_string(),
            date: c.attr("date").and_then(|d| d.parse().ok()).unwrap_or(0),
            text: c.text.clone(),
        })
        .collect();
    (
        el.attr("pkgid").unwrap_or_default().to_ascii_lowercase(),
        logs,
    )
}

/// Reads primary, filelists and other in lockstep (createrepo_c writes all three in
/// the same package order) and yields complete packages. The pkgid of a yielded
/// package is upstream's checksum; callers replace it once the file's sha256 is known.
pub struct PackageStream<P: BufRead, F: BufRead, O: BufRead> {
    primary: ElementReader<P>,
    filelists: ElementReader<F>,
    other: ElementReader<O>,
}

impl<P: BufRead, F: BufRead, O: BufRead> PackageStream<P, F, O> {
    pub fn new(primary: P, filelists: F, other: O) -> Self {
        PackageStream {
            primary: ElementReader::new(primary, "primary.xml"),
            filelists: ElementReader::new(filelists, "filelists.xml"),
            other: ElementReader::new(other, "other.xml"),
        }
    }

    /// The next complete package, or `None` when primary ends (the other two must end
    /// there too).
    pub fn next_package(&mut self) -> Result<Option<PrimaryEntry>, ParseError> {
        // primary first: its entry is validated (hrefs, checksums) before anything else.
        let entry = match next_package_element(&mut self.primary)? {
            Some(p) => Some(primary_entry(&p, "primary.xml")?),
            None => None,
        };
        let f = next_package_element(&mut self.filelists)?;
        let o = next_package_element(&mut self.other)?;
        match (entry, f, o) {
            (None, None, None) => Ok(None),
            (Some(mut entry), Some(f), Some(o)) => {
                let (fid, files) = filelists_entry(&f);
                let (oid, logs) = other_entry(&o);
                if fid != entry.checksum.hex || oid != entry.checksum.hex {
                    return Err(ParseError::Invalid {
                        file: "filelists.xml/other.xml".into(),
                        message: format!(
                            "package order differs from primary.xml at {} ({})",
                            entry.package.name, entry.checksum.hex
                        ),
                    });
                }
                entry.package.files = files;
                entry.package.changelogs = logs;
                Ok(Some(entry))
            }
            _ => Err(ParseError::Invalid {
                file: "primary/filelists/other".into(),
                message: "the three files list different numbers of packages".into(),
            }),
        }
    }
}

/// Reads primary alone: each package as primary.xml describes it, without the full
/// file lists and changelogs of filelists and other (what deciding which packages to
/// fetch needs, at a fraction of the work and memory).
pub struct PrimaryStream<P: BufRead> {
    primary: ElementReader<P>,
}

impl<P: BufRead> PrimaryStream<P> {
    pub fn new(primary: P) -> Self {
        PrimaryStream {
            primary: ElementReader::new(primary, "primary.xml"),
        }
    }

    /// The next package, or `None` when primary ends.
    pub fn next_entry(&mut self) -> Result<Option<PrimaryEntry>, ParseError> {
        match next_package_element(&mut self.primary)? {
            Some(p) => Ok(Some(primary_entry(&p, "primary.xml")?)),
            None => Ok(None),
        }
    }
}

fn next_package_element<R: BufRead>(
    r: &mut ElementReader<R>,
) -> Result<Option<Element>, ParseError> {
    loop {
        match r.next_element()? {
            Some(e) if e.name == "package" => return Ok(Some(e)),
            Some(_) => continue,
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_that_leave_the_repository_are_refused() {
        assert!(href_is_safe("Packages/a/a.rpm"));
        assert!(href_is_safe("repodata/x-primary.xml.gz"));
        assert!(href_is_safe("Packages/l/libstdc%2B%2B-1.rpm"));
        for bad in [
            "../x.rpm",
            "a/../../x",
            "/etc/passwd",
            "http://evil/x",
            "a//b",
            "a\\b",
            "./a",
            "",
            "%2e%2e/%2e%2e/etc/passwd",
            "%2E%2E/escaped-pkgs/x.rpm",
            "a/%2e%2e/%2e%2e/x.rpm",
            "%2fetc/passwd",
            "a%2f..%2f..%2fx",
            "x.rpm?x=1",
            "x.rpm#frag",
            "a%3fb.rpm",
            "a%00.rpm",
            "a%5c..%5cx",
            "a%ff.rpm",
        ] {
            assert!(!href_is_safe(bad), "{bad}");
        }
    }

    #[test]
    fn entities_are_not_expanded() {
        let doc = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<metadata><package><name>&lol2;</name></package></metadata>"#;
        let mut r = ElementReader::new(&doc[..], "primary.xml");
        let err = r.next_element().unwrap_err().to_string();
        assert!(err.contains("primary.xml") && err.contains("lol2"), "{err}");
        let doc = br#"<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><metadata><package><name>&xxe;</name></package></metadata>"#;
        let err = ElementReader::new(&doc[..], "p")
            .next_element()
            .unwrap_err()
            .to_string();
        assert!(err.contains("xxe"), "{err}");
    }

    #[test]
    fn truncated_and_malformed_documents_are_errors() {
        let mut r =
            ElementReader::new(&b"<metadata><package><name>a</name></package>"[..], "p.xml");
        assert!(r.next_element().unwrap().is_some());
        let err = r.next_element().unwrap_err().to_string();
        assert!(err.contains("ends early"), "{err}");
        let mut r = ElementReader::new(
            &b"<metadata><package><name>a</nam></package></metadata>"[..],
            "p.xml",
        );
        assert!(r.next_element().is_err());
        let deep = format!("<m>{}{}</m>", "<a>".repeat(100), "</a>".repeat(100));
        let err = ElementReader::new(deep.as_bytes(), "d.xml")
            .next_element()
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested too deeply"), "{err}");
    }
}
