//! Rendering one package's `<package>` elements for primary, filelists and other.
//!
//! Output is byte-for-byte the layout createrepo_c 0.17 writes through libxml2: two-space
//! indentation, `<x></x>` for empty text, libxml2's escaping rules (text escapes `& < >`
//! and CR; attributes also escape `"`, TAB, LF and CR). Fragments are rendered once, when
//! a package enters the catalog; a publish only concatenates them. The primary fragment
//! leaves the `<location href>` value out and records where it goes, because the location
//! depends on where the package is published.
//!
//! These fragments are written with a small purpose-built renderer rather than
//! quick-xml's writer: quick-xml's escapers do not produce libxml2's output (a carriage
//! return must become `&#13;`, or every XML parser reads it back as a line feed, which
//! changes the field), and the fragments are rendered once per package, so there is no
//! stream to manage. quick-xml is used for reading repository metadata.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::domain::package::{is_primary_file, DepKind, FileKind, Package};

/// The three pre-rendered `<package>` elements of one package. Shared, not copied: a
/// sync hands the same fragments to the catalog rows and to the repodata it renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragments {
    /// primary.xml `<package>`, without the location href value.
    pub primary: Arc<str>,
    /// Byte offset in `primary` where the escaped href is inserted.
    pub href_at: usize,
    pub filelists: Arc<str>,
    pub other: Arc<str>,
}

impl Fragments {
    /// Appends the primary element with `href` in place to `out`.
    pub fn write_primary(&self, href: &str, out: &mut String) {
        out.push_str(&self.primary[..self.href_at]);
        escape_attr(href, out);
        out.push_str(&self.primary[self.href_at..]);
    }
}

/// Escapes element text the way libxml2 does: `& < >` and CR.
pub fn escape_text(s: &str, out: &mut String) {
    escape(s, out, false)
}

/// Escapes an attribute value the way libxml2 does: also `"`, TAB and LF.
pub fn escape_attr(s: &str, out: &mut String) {
    escape(s, out, true)
}

fn escape(s: &str, out: &mut String, attribute: bool) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\r' => "&#13;",
            b'"' if attribute => "&quot;",
            b'\n' if attribute => "&#10;",
            b'\t' if attribute => "&#9;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

fn text_elem(out: &mut String, indent: &str, name: &str, value: &str) {
    out.push_str(indent);
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_text(value, out);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escape_attr(value, out);
    out.push('"');
}

fn version_elem(out: &mut String, pkg: &Package) {
    out.push_str("  <version");
    attr(out, "epoch", &pkg.epoch);
    attr(out, "ver", &pkg.version);
    attr(out, "rel", &pkg.release);
    out.push_str("/>\n");
}

fn file_elem(out: &mut String, indent: &str, path: &str, kind: FileKind) {
    out.push_str(indent);
    match kind {
        FileKind::File => out.push_str("<file>"),
        FileKind::Dir => out.push_str("<file type=\"dir\">"),
        FileKind::Ghost => out.push_str("<file type=\"ghost\">"),
    }
    escape_text(path, out);
    out.push_str("</file>\n");
}

/// Renders the three fragments of `pkg`.
pub fn render(pkg: &Package) -> Fragments {
    let (primary, href_at) = render_primary(pkg);
    Fragments {
        primary: primary.into(),
        href_at,
        filelists: render_filelists(pkg).into(),
        other: render_other(pkg).into(),
    }
}

fn render_primary(pkg: &Package) -> (String, usize) {
    let mut o = String::with_capacity(2048);
    o.push_str("<package type=\"rpm\">\n");
    text_elem(&mut o, "  ", "name", &pkg.name);
    text_elem(&mut o, "  ", "arch", &pkg.arch);
    version_elem(&mut o, pkg);
    o.push_str("  <checksum type=\"sha256\" pkgid=\"YES\">");
    escape_text(&pkg.pkgid, &mut o);
    o.push_str("</checksum>\n");
    text_elem(&mut o, "  ", "summary", &pkg.summary);
    text_elem(&mut o, "  ", "description", &pkg.description);
    text_elem(&mut o, "  ", "packager", &pkg.packager);
    text_elem(&mut o, "  ", "url", &pkg.url);
    let _ = writeln!(
        o,
        "  <time file=\"{}\" build=\"{}\"/>",
        pkg.time_file, pkg.time_build
    );
    let _ = writeln!(
        o,
        "  <size package=\"{}\" installed=\"{}\" archive=\"{}\"/>",
        pkg.size_package, pkg.size_installed, pkg.size_archive
    );
    o.push_str("  <location href=\"");
    let href_at = o.len();
    o.push_str("\"/>\n  <format>\n");
    text_elem(&mut o, "    ", "rpm:license", &pkg.license);
    text_elem(&mut o, "    ", "rpm:vendor", &pkg.vendor);
    text_elem(&mut o, "    ", "rpm:group", &pkg.group);
    text_elem(&mut o, "    ", "rpm:buildhost", &pkg.buildhost);
    text_elem(&mut o, "    ", "rpm:sourcerpm", &pkg.sourcerpm);
    let _ = writeln!(
        o,
        "    <rpm:header-range start=\"{}\" end=\"{}\"/>",
        pkg.header_start, pkg.header_end
    );
    for kind in DepKind::ALL {
        let mut entries = pkg.deps.iter().filter(|d| d.kind == kind).peekable();
        if entries.peek().is_none() {
            continue;
        }
        let _ = writeln!(o, "    <rpm:{}>", kind.element());
        for d in entries {
            o.push_str("      <rpm:entry");
            attr(&mut o, "name", &d.name);
            if let Some(flags) = &d.flags {
                attr(&mut o, "flags", flags);
                for (key, value) in [("epoch", &d.epoch), ("ver", &d.ver), ("rel", &d.rel)] {
                    if let Some(v) = value {
                        attr(&mut o, key, v);
                    }
                }
            }
            if d.pre {
                o.push_str(" pre=\"1\"");
            }
            o.push_str("/>\n");
        }
        let _ = writeln!(o, "    </rpm:{}>", kind.element());
    }
    for f in pkg.files.iter().filter(|f| is_primary_file(&f.path)) {
        file_elem(&mut o, "    ", &f.path, f.kind);
    }
    o.push_str("  </format>\n</package>\n");
    (o, href_at)
}

fn package_head(o: &mut String, pkg: &Package) {
    o.push_str("<package");
    attr(o, "pkgid", &pkg.pkgid);
    attr(o, "name", &pkg.name);
    attr(o, "arch", &pkg.arch);
    o.push_str(">\n");
    version_elem(o, pkg);
}

fn render_filelists(pkg: &Package) -> String {
    let mut o = String::with_capacity(256 + pkg.files.len() * 48);
    package_head(&mut o, pkg);
    for f in &pkg.files {
        file_elem(&mut o, "  ", &f.path, f.kind);
    }
    o.push_str("</package>\n");
    o
}

fn render_other(pkg: &Package) -> String {
    let mut o = String::with_capacity(256);
    package_head(&mut o, pkg);
    for c in &pkg.changelogs {
        o.push_str("  <changelog");
        attr(&mut o, "author", &c.author);
        let _ = write!(o, " date=\"{}\">", c.date);
        escape_text(&c.text, &mut o);
        o.push_str("</changelog>\n");
    }
    o.push_str("</package>\n");
    o
}

/// Writes a parsed element back as indented XML (used for metadata Cairn rewrites,
/// such as a trimmed updateinfo). Text of elements with children is whitespace and is
/// replaced by indentation.
pub fn write_element(
    el: &crate::formats::repodata::parse::Element,
    depth: usize,
    out: &mut String,
) {
    let indent = "  ".repeat(depth);
    out.push_str(&indent);
    out.push('<');
    out.push_str(&el.name);
    for (k, v) in &el.attrs {
        attr(out, k, v);
    }
    if el.children.is_empty() {
        if el.text.is_empty() {
            out.push_str("/>\n");
        } else {
            out.push('>');
            escape_text(&el.text, out);
            out.push_str("</");
            out.push_str(&el.name);
            out.push_str(">\n");
        }
        return;
    }
    out.push_str(">\n");
    for c in &el.children {
        write_element(c, depth + 1, out);
    }
    out.push_str(&indent);
    out.push_str("</");
    out.push_str(&el.name);
    out.push_str(">\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_libxml2() {
        let mut t = String::new();
        escape_text("a<b>&\"c'\r\n\t", &mut t);
        assert_eq!(t, "a&lt;b&gt;&amp;\"c'&#13;\n\t");
        let mut a = String::new();
        escape_attr("a<b>&\"c'\r\n\t", &mut a);
        assert_eq!(a, "a&lt;b&gt;&amp;&quot;c'&#13;&#10;&#9;");
    }
}
