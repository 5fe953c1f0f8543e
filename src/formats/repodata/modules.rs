//! `modules.yaml` (modulemd documents) kept consistent with the packages a filtered
//! mirror publishes.
//!
//! The rule: a module stream (`document: modulemd`) whose artifacts name a package that
//! upstream has but the mirror's filters removed is dropped from the published
//! document, and so is the module's defaults document (`document: modulemd-defaults`)
//! when its default stream was dropped; every other document is kept byte for byte.
//! dnf then never offers a stream whose packages are missing ("broken groups or
//! modules"); the packages of a dropped stream that the filters kept stay available
//! as ordinary packages.

use std::collections::{BTreeSet, HashSet};

use yaml_rust2::{Yaml, YamlLoader};

use super::parse::ParseError;
use super::updateinfo::Nevra;

/// A modules document after [`drop_broken_streams`].
#[derive(Debug)]
pub struct Trimmed {
    pub bytes: Vec<u8>,
    /// The streams dropped, as `name:stream`.
    pub dropped: Vec<String>,
}

/// Parses an artifact name, `name-epoch:version-release.arch` (epoch optional).
pub fn parse_artifact(s: &str) -> Option<Nevra> {
    let (rest, arch) = s.rsplit_once('.')?;
    let (rest, release) = rest.rsplit_once('-')?;
    let (name, evr) = rest.rsplit_once('-')?;
    let (epoch, version) = match evr.split_once(':') {
        Some((e, v)) => (e, v),
        None => ("0", evr),
    };
    if name.is_empty() || version.is_empty() || release.is_empty() || arch.is_empty() {
        return None;
    }
    Some(Nevra {
        name: name.to_string(),
        epoch: if epoch.is_empty() { "0" } else { epoch }.to_string(),
        version: version.to_string(),
        release: release.to_string(),
        arch: arch.to_string(),
    })
}

/// The documents of a YAML stream as text: each starts at a `---` line; text before
/// the first one (comments, directives) is its own part.
fn split_documents(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if offset > start && (trimmed == "---" || trimmed.starts_with("--- ")) {
            parts.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if start < text.len() {
        parts.push(&text[start..]);
    }
    parts
}

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Drops the streams whose artifacts include a package in `removed`, and the defaults
/// that point at a dropped stream (see the module header). `file` names the document
/// in errors.
pub fn drop_broken_streams(
    open: &[u8],
    removed: &HashSet<Nevra>,
    file: &str,
) -> Result<Trimmed, ParseError> {
    let invalid = |message: String| ParseError::Invalid {
        file: file.to_string(),
        message,
    };
    let text = std::str::from_utf8(open).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
    let parts = split_documents(text);
    let mut docs = Vec::with_capacity(parts.len());
    for part in &parts {
        let parsed =
            YamlLoader::load_from_str(part).map_err(|e| invalid(format!("malformed YAML: {e}")))?;
        docs.push(parsed.into_iter().next());
    }
    let mut dropped: BTreeSet<(String, String)> = BTreeSet::new();
    for doc in docs.iter().flatten() {
        if doc["document"].as_str() != Some("modulemd") {
            continue;
        }
        let data = &doc["data"];
        let broken = data["artifacts"]["rpms"].as_vec().is_some_and(|rpms| {
            rpms.iter()
                .filter_map(|a| a.as_str().and_then(parse_artifact))
                .any(|n| removed.contains(&n))
        });
        if broken {
            if let (Some(name), Some(stream)) = (scalar(&data["name"]), scalar(&data["stream"])) {
                dropped.insert((name, stream));
            }
        }
    }
    if dropped.is_empty() {
        return Ok(Trimmed {
            bytes: open.to_vec(),
            dropped: Vec::new(),
        });
    }
    let mut out = String::with_capacity(text.len());
    for (part, doc) in parts.iter().zip(&docs) {
        let keep = match doc {
            Some(doc) => {
                let data = &doc["data"];
                let pair = |module: &Yaml| scalar(module).zip(scalar(&data["stream"]));
                match doc["document"].as_str() {
                    Some("modulemd") => pair(&data["name"]).is_none_or(|p| !dropped.contains(&p)),
                    Some("modulemd-defaults") => {
                        pair(&data["module"]).is_none_or(|p| !dropped.contains(&p))
                    }
                    _ => true,
                }
            }
            None => true,
        };
        if keep {
            out.push_str(part);
        }
    }
    Ok(Trimmed {
        bytes: out.into_bytes(),
        dropped: dropped
            .into_iter()
            .map(|(name, stream)| format!("{name}:{stream}"))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "---
document: modulemd
version: 2
data:
  name: nodejs
  stream: \"10\"
  artifacts:
    rpms:
    - nodejs-1:10.21.0-3.module_el8.x86_64
    - npm-1:6.14.4-1.10.21.0.3.module_el8.x86_64
...
---
document: modulemd
version: 2
data:
  name: nodejs
  stream: 12
  artifacts:
    rpms:
    - nodejs-1:12.18.0-1.module_el8.x86_64
...
---
document: modulemd-defaults
version: 1
data:
  module: nodejs
  stream: \"10\"
...
---
document: modulemd-translations
version: 1
data:
  module: nodejs
...
";

    fn nevra(s: &str) -> Nevra {
        parse_artifact(s).unwrap()
    }

    #[test]
    fn artifacts_parse_with_and_without_an_epoch() {
        let n = nevra("npm-1:6.14.4-1.10.21.0.3.module_el8.x86_64");
        assert_eq!(
            (n.name.as_str(), n.epoch.as_str(), n.version.as_str()),
            ("npm", "1", "6.14.4")
        );
        assert_eq!(n.release, "1.10.21.0.3.module_el8");
        assert_eq!(n.arch, "x86_64");
        assert_eq!(nevra("demo-lib-1.2.0-1.noarch").epoch, "0");
        assert!(parse_artifact("nonsense").is_none());
    }

    #[test]
    fn a_stream_missing_a_package_goes_with_its_defaults_and_the_rest_stays_as_it_was() {
        let removed: HashSet<Nevra> = [nevra("npm-1:6.14.4-1.10.21.0.3.module_el8.x86_64")].into();
        let t = drop_broken_streams(DOC.as_bytes(), &removed, "modules.yaml").unwrap();
        assert_eq!(t.dropped, vec!["nodejs:10".to_string()]);
        let text = String::from_utf8(t.bytes).unwrap();
        assert!(!text.contains("nodejs-1:10.21.0"), "{text}");
        assert!(!text.contains("modulemd-defaults"), "{text}");
        assert!(text.contains("nodejs-1:12.18.0"), "{text}");
        assert!(text.contains("modulemd-translations"), "{text}");
        // What stays is byte for byte what was there.
        let parts = split_documents(DOC);
        assert_eq!(parts.len(), 4);
        assert_eq!(text, format!("{}{}", parts[1], parts[3]));
        // Nothing removed: the document is untouched.
        let t = drop_broken_streams(DOC.as_bytes(), &HashSet::new(), "m").unwrap();
        assert_eq!(t.bytes, DOC.as_bytes());
        assert!(t.dropped.is_empty());
        // Broken YAML names the file.
        let err = drop_broken_streams(b"---\n: [\n", &removed, "up/modules.yaml").unwrap_err();
        assert!(err.to_string().contains("up/modules.yaml"), "{err}");
    }
}
