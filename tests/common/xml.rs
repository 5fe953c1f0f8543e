//! The XML oracle: a small DOM of repository metadata, compared element by element.

/// An XML element with sorted attributes, its text (whitespace-only text dropped) and
/// children in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    pub fn set_attr(&mut self, k: &str, v: &str) {
        if let Some(a) = self.attrs.iter_mut().find(|(a, _)| a == k) {
            a.1 = v.to_string();
        }
    }
}

/// Parses a whole document into its root element.
#[allow(deprecated)]
pub fn parse_xml(bytes: &[u8]) -> Node {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    let mut buf = Vec::new();
    let make = |e: &quick_xml::events::BytesStart| {
        let mut attrs: Vec<(String, String)> = e
            .attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    a.key.as_ref().to_string(),
                    a.unescape_value().unwrap().into_owned(),
                )
            })
            .collect();
        attrs.sort();
        Node {
            name: e.name().as_ref().to_string(),
            attrs,
            text: String::new(),
            children: Vec::new(),
        }
    };
    loop {
        match reader.read_event_into(&mut buf).unwrap() {
            Event::Start(e) => stack.push(make(&e)),
            Event::Empty(e) => {
                let n = make(&e);
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => root = Some(n),
                }
            }
            Event::End(_) => {
                let mut n = stack.pop().unwrap();
                if n.text.trim().is_empty() && !n.children.is_empty() {
                    n.text.clear();
                }
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => root = Some(n),
                }
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(n) = stack.last_mut() {
                    let name = r.xml10_content();
                    let s = match name.as_ref() {
                        "amp" => "&".to_string(),
                        "lt" => "<".to_string(),
                        "gt" => ">".to_string(),
                        "quot" => "\"".to_string(),
                        "apos" => "'".to_string(),
                        other => {
                            let code = other
                                .strip_prefix("#x")
                                .map(|h| u32::from_str_radix(h, 16).unwrap())
                                .or_else(|| other.strip_prefix('#').map(|d| d.parse().unwrap()))
                                .unwrap_or_else(|| panic!("unknown entity {other}"));
                            char::from_u32(code).unwrap().to_string()
                        }
                    };
                    n.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    root.expect("document has a root element")
}

/// Decompresses gzip (multi-member) or zstd by magic.
pub fn decompress(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        out = zstd::stream::decode_all(bytes).unwrap();
    } else {
        out = bytes.to_vec();
    }
    out
}

/// The `<package>` elements of a primary/filelists/other document, by pkgid, with the
/// location href removed (it differs by design).
pub fn packages_by_pkgid(doc: &Node) -> std::collections::BTreeMap<String, Node> {
    let mut out = std::collections::BTreeMap::new();
    for p in &doc.children {
        let mut p = p.clone();
        let id = match p.child("checksum") {
            Some(c) => c.text.clone(),
            None => p.attr("pkgid").unwrap().to_string(),
        };
        if let Some(loc) = p.child_mut("location") {
            loc.set_attr("href", "-");
        }
        out.insert(id, p);
    }
    out
}

/// Describes the first difference between two trees.
pub fn first_difference(a: &Node, b: &Node, path: &str) -> Option<String> {
    let here = format!("{path}/{}", a.name);
    if a.name != b.name {
        return Some(format!("{here}: element {} vs {}", a.name, b.name));
    }
    if a.attrs != b.attrs {
        return Some(format!("{here}: attributes {:?} vs {:?}", a.attrs, b.attrs));
    }
    if a.text != b.text {
        return Some(format!("{here}: text {:?} vs {:?}", a.text, b.text));
    }
    for (i, (x, y)) in a.children.iter().zip(&b.children).enumerate() {
        if let Some(d) = first_difference(x, y, &format!("{here}[{i}]")) {
            return Some(d);
        }
    }
    if a.children.len() != b.children.len() {
        return Some(format!(
            "{here}: {} children vs {} ({:?} vs {:?})",
            a.children.len(),
            b.children.len(),
            a.children.iter().map(|c| &c.name).collect::<Vec<_>>(),
            b.children.iter().map(|c| &c.name).collect::<Vec<_>>()
        ));
    }
    None
}

/// The location of the `kind` record of a repomd.xml.
pub fn repomd_href(repomd: &[u8], kind: &str) -> String {
    let doc = parse_xml(repomd);
    doc.children
        .iter()
        .find(|d| d.attr("type") == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} record"))
        .child("location")
        .unwrap()
        .attr("href")
        .unwrap()
        .to_string()
}
