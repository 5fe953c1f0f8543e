//! Merging carried-through metadata of several repositories into one (for views):
//! comps groups, categories and environments (the first repository's entry wins on an
//! id), advisories (the first wins on an id; then trimmed to the view's packages), and
//! module documents (concatenated).

use std::collections::HashSet;

use super::parse::{Element, ElementReader, ParseError};
use super::updateinfo::{self, Nevra};
use super::xml::write_element;

fn read_children(doc: &[u8], file: &str) -> Result<(Element, Vec<Element>), ParseError> {
    let mut reader = ElementReader::new(doc, file);
    let mut children = Vec::new();
    while let Some(el) = reader.next_element()? {
        children.push(el);
    }
    let root = reader.root().cloned().ok_or_else(|| ParseError::Invalid {
        file: file.to_string(),
        message: "the document is empty".into(),
    })?;
    Ok((root, children))
}

fn id_of(el: &Element) -> String {
    el.child("id")
        .map(|i| i.text.trim().to_string())
        .unwrap_or_default()
}

fn merge_xml(docs: &[&[u8]], file: &str) -> Result<(Element, Vec<Element>), ParseError> {
    let mut root = None;
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out = Vec::new();
    for doc in docs {
        let (r, children) = read_children(doc, file)?;
        root.get_or_insert(r);
        for c in children {
            let key = (c.name.clone(), id_of(&c));
            if key.1.is_empty() || seen.insert(key) {
                out.push(c);
            }
        }
    }
    let root = root.ok_or_else(|| ParseError::Invalid {
        file: file.to_string(),
        message: "nothing to merge".into(),
    })?;
    Ok((root, out))
}

fn write_doc(root: Element, children: Vec<Element>) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let doc = Element {
        children,
        text: String::new(),
        ..root
    };
    write_element(&doc, 0, &mut out);
    out.into_bytes()
}

/// One comps document holding every member's groups, categories and environments.
pub fn comps(docs: &[&[u8]]) -> Result<Vec<u8>, ParseError> {
    if docs.len() == 1 {
        return Ok(docs[0].to_vec());
    }
    let (root, children) = merge_xml(docs, "comps.xml")?;
    Ok(write_doc(root, children))
}

/// One updateinfo with every member's advisories, trimmed to `keep`.
pub fn updateinfo(docs: &[&[u8]], keep: &HashSet<Nevra>) -> Result<Vec<u8>, ParseError> {
    let (root, children) = merge_xml(docs, "updateinfo.xml")?;
    let merged = write_doc(root, children);
    Ok(updateinfo::trim(&merged[..], keep, "updateinfo.xml")?.0)
}

/// Module documents of every member, one YAML stream.
pub fn modules(docs: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in docs {
        out.extend_from_slice(d);
        if !d.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comps_merge_keeps_the_first_entry_per_id() {
        let a = br#"<comps><group><id>g1</id><name>One</name></group><group><id>g2</id><name>Two A</name></group></comps>"#;
        let b = br#"<comps><group><id>g2</id><name>Two B</name></group><category><id>c</id></category></comps>"#;
        let merged = String::from_utf8(comps(&[a, b]).unwrap()).unwrap();
        assert!(
            merged.contains("One") && merged.contains("Two A") && !merged.contains("Two B"),
            "{merged}"
        );
        assert!(merged.contains("<category>"), "{merged}");
    }
}
