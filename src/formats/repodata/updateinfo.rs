//! updateinfo.xml (advisories) carried from upstream, trimmed to the packages a mirror
//! actually holds: package entries of other packages are dropped, and an advisory
//! left with no package at all is dropped with them.

use std::collections::HashSet;

use super::parse::{Element, ElementReader, ParseError};
use super::xml::write_element;

/// A package identity as updateinfo names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nevra {
    pub name: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    pub arch: String,
}

fn package_nevra(p: &Element) -> Nevra {
    let a = |k: &str| p.attr(k).unwrap_or_default().to_string();
    let epoch = p.attr("epoch").filter(|e| !e.is_empty()).unwrap_or("0");
    Nevra {
        name: a("name"),
        epoch: epoch.to_string(),
        version: a("version"),
        release: a("release"),
        arch: a("arch"),
    }
}

/// One advisory as listed: what updateinfo says of it, and its packages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Advisory {
    pub id: String,
    /// `security`, `bugfix`, `enhancement`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `Critical`, `Important`, `Moderate`, `Low`, or empty.
    pub severity: String,
    pub title: String,
    /// As updateinfo writes it (`2026-11-23 00:00:00`), or empty.
    pub issued: String,
    /// `name-[epoch:]version-release.arch` of each package it names.
    pub packages: Vec<String>,
}

/// The advisories of an updateinfo document, in document order. Read as a stream.
pub fn advisories(input: impl std::io::BufRead, file: &str) -> Result<Vec<Advisory>, ParseError> {
    let mut reader = ElementReader::new(input, file);
    let mut out = Vec::new();
    while let Some(update) = reader.next_element()? {
        if update.name != "update" {
            continue;
        }
        let text = |name: &str| {
            update
                .child(name)
                .map(|c| c.text.trim().to_string())
                .unwrap_or_default()
        };
        let mut packages = Vec::new();
        for collection in update
            .child("pkglist")
            .into_iter()
            .flat_map(|l| l.children.iter().filter(|c| c.name == "collection"))
        {
            for p in collection.children.iter().filter(|c| c.name == "package") {
                let n = package_nevra(p);
                let epoch = if n.epoch == "0" {
                    String::new()
                } else {
                    format!("{}:", n.epoch)
                };
                packages.push(format!(
                    "{}-{epoch}{}-{}.{}",
                    n.name, n.version, n.release, n.arch
                ));
            }
        }
        out.push(Advisory {
            id: text("id"),
            kind: update.attr("type").unwrap_or_default().to_string(),
            severity: text("severity"),
            title: text("title"),
            issued: update
                .child("issued")
                .and_then(|i| i.attr("date"))
                .unwrap_or_default()
                .to_string(),
            packages,
        });
    }
    Ok(out)
}

/// Keeps, in every `<update>`, only the `<package>` entries in `keep`; drops updates
/// that end up with none. Returns the rewritten document and how many updates remain.
/// The document is read as a stream: memory follows the updates kept, not the input.
pub fn trim(
    input: impl std::io::BufRead,
    keep: &HashSet<Nevra>,
    file: &str,
) -> Result<(Vec<u8>, usize), ParseError> {
    let mut reader = ElementReader::new(input, file);
    let mut updates = Vec::new();
    while let Some(mut update) = reader.next_element()? {
        if update.name != "update" {
            continue;
        }
        let mut kept = 0usize;
        if let Some(pkglist) = update.children.iter_mut().find(|c| c.name == "pkglist") {
            for collection in pkglist
                .children
                .iter_mut()
                .filter(|c| c.name == "collection")
            {
                collection
                    .children
                    .retain(|c| c.name != "package" || keep.contains(&package_nevra(c)));
                kept += collection
                    .children
                    .iter()
                    .filter(|c| c.name == "package")
                    .count();
            }
            pkglist.children.retain(|c| {
                c.name != "collection" || c.children.iter().any(|p| p.name == "package")
            });
        }
        if kept > 0 {
            updates.push(update);
        }
    }
    let root = reader.root().cloned().unwrap_or_else(|| Element {
        name: "updates".into(),
        ..Default::default()
    });
    if root.name != "updates" {
        return Err(ParseError::Invalid {
            file: file.to_string(),
            message: "not an updateinfo document".into(),
        });
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let count = updates.len();
    let doc = Element {
        children: updates,
        text: String::new(),
        ..root
    };
    if doc.children.is_empty() {
        out.push_str("<updates/>\n");
    } else {
        write_element(&doc, 0, &mut out);
    }
    Ok((out.into_bytes(), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_packages_and_empty_advisories() {
        let doc = br#"<?xml version="1.0"?>
<updates>
  <update type="security" status="final"><id>ADV-1</id><title>Fix &lt;x&gt;</title>
    <pkglist><collection short="c"><name>c</name>
      <package name="a" version="1" release="1" epoch="0" arch="noarch"><filename>a-1-1.noarch.rpm</filename></package>
      <package name="b" version="1" release="1" epoch="0" arch="noarch"><filename>b-1-1.noarch.rpm</filename></package>
    </collection></pkglist></update>
  <update type="bugfix"><id>ADV-2</id>
    <pkglist><collection short="c"><name>c</name>
      <package name="b" version="1" release="1" arch="noarch"><filename>b-1-1.noarch.rpm</filename></package>
    </collection></pkglist></update>
</updates>"#;
        let keep: HashSet<Nevra> = [Nevra {
            name: "a".into(),
            epoch: "0".into(),
            version: "1".into(),
            release: "1".into(),
            arch: "noarch".into(),
        }]
        .into();
        let (out, count) = trim(&doc[..], &keep, "updateinfo.xml").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(count, 1);
        assert!(text.contains("ADV-1") && !text.contains("ADV-2"), "{text}");
        assert!(
            text.contains("a-1-1.noarch.rpm") && !text.contains("b-1-1"),
            "{text}"
        );
        assert!(text.contains("Fix &lt;x&gt;"), "{text}");
        // The result parses again.
        let mut again = ElementReader::new(text.as_bytes(), "x");
        assert_eq!(again.next_element().unwrap().unwrap().name, "update");
    }
}
