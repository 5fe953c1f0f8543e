//! Lists of mirrors of a repository, as distributions publish them: a yum mirrorlist
//! (one base URL per line) and a metalink (MirrorManager's metalink 3.0, or RFC 5854
//! metalink 4), which also gives repomd.xml's size and digests, so a stale or tampered
//! mirror's repomd.xml can be told apart from the real one.
//!
//! Parsing only: what is fetched and tried is the sync's business. Hostile input is
//! bounded the way other metadata is (no DTDs or entities, a size limit on the
//! document, a cap on the number of mirrors kept).

use quick_xml::events::Event;
use quick_xml::Reader;

/// Mirrors kept from one list at most.
pub const MAX_MIRRORS: usize = 64;

/// What a mirror list cannot give.
#[derive(Debug, thiserror::Error)]
pub enum MirrorsError {
    #[error("{source_url}: malformed metalink at byte {position}: {message}")]
    Xml {
        source_url: String,
        position: u64,
        message: String,
    },
    #[error("{source_url}: the metalink describes no repomd.xml (a <file name=\"repomd.xml\"> with a size and a sha256 or sha512 hash)")]
    NoRepomd { source_url: String },
    #[error("{source_url}: lists no usable mirror (http://, https:// or file:// URLs)")]
    NoMirrors { source_url: String },
}

/// One version of repomd.xml a metalink accepts: its size and digests (algorithm as
/// yum names it: `sha256`, `sha512`, `sha1`, `md5`; lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepomdVersion {
    pub size: Option<u64>,
    pub hashes: Vec<(String, String)>,
}

impl RepomdVersion {
    /// The strongest digest it gives.
    pub fn strongest(&self) -> Option<&(String, String)> {
        ["sha512", "sha384", "sha256"]
            .iter()
            .find_map(|want| self.hashes.iter().find(|(a, _)| a == want))
    }
}

/// What a metalink says: where the mirrors are (base URLs ending in `/`, best first)
/// and which repomd.xml versions are current (the newest first, then the alternates
/// MirrorManager still accepts while mirrors catch up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metalink {
    pub mirrors: Vec<String>,
    pub repomd: Vec<RepomdVersion>,
}

/// A mirror URL of a list turned into a repository base (ending in `/`); `None` for a
/// protocol a sync cannot use (rsync, ftp) or something that is not a URL.
fn usable_base(url: &str) -> Option<String> {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url).ok()?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some_and(|h| !h.is_empty()) => {}
        "file" => {}
        _ => return None,
    }
    let dir = url.strip_suffix("repodata/repomd.xml").unwrap_or(url);
    Some(if dir.ends_with('/') {
        dir.to_string()
    } else {
        format!("{dir}/")
    })
}

/// The mirrors of a yum mirrorlist: one URL per line, `#` comments and blank lines
/// skipped, unusable protocols left out, in the list's order.
pub fn parse_mirrorlist(text: &str, source_url: &str) -> Result<Vec<String>, MirrorsError> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(base) = usable_base(line) {
            if !out.contains(&base) {
                out.push(base);
            }
        }
        if out.len() >= MAX_MIRRORS {
            break;
        }
    }
    if out.is_empty() {
        return Err(MirrorsError::NoMirrors {
            source_url: source_url.to_string(),
        });
    }
    Ok(out)
}

/// The hash type as yum names it (`sha-256` in metalink 4, `sha256` in 3.0).
fn algorithm(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "")
}

/// Reads a metalink (3.0 or 4): the `repomd.xml` file's sizes and digests (its own and
/// its alternates') and its mirrors, best first (3.0 `preference`, highest first; 4
/// `priority`, lowest first).
pub fn parse_metalink(xml: &[u8], source_url: &str) -> Result<Metalink, MirrorsError> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let fail = |reader: &Reader<&[u8]>, message: String| MirrorsError::Xml {
        source_url: source_url.to_string(),
        position: reader.buffer_position(),
        message,
    };
    // The elements open around the cursor (local names), and the text of the
    // innermost one so far.
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut in_repomd = false;
    let mut current = RepomdVersion::default();
    let mut alternate: Option<RepomdVersion> = None;
    let mut versions: Vec<RepomdVersion> = Vec::new();
    let mut hash_type: Option<String> = None;
    // (rank: smaller is better, order seen, base)
    let mut urls: Vec<(i64, usize, String)> = Vec::new();
    let mut url_rank: Option<i64> = None;
    let mut buf = Vec::new();
    let local = |name: &str| name.rsplit(':').next().unwrap_or(name).to_string();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| fail(&reader, e.to_string()))?;
        match event {
            Event::Start(e) => {
                let name = local(e.name().as_ref());
                if path.len() >= crate::formats::repodata::parse::MAX_DEPTH {
                    return Err(fail(&reader, "nested too deeply".into()));
                }
                let mut attrs: Vec<(String, String)> = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|x| fail(&reader, x.to_string()))?;
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|x| fail(&reader, x.to_string()))?;
                    attrs.push((local(a.key.as_ref()), value.into_owned()));
                }
                let attr = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                match name.as_str() {
                    "file" => in_repomd = attr("name").as_deref() == Some("repomd.xml"),
                    "alternate" if in_repomd => alternate = Some(RepomdVersion::default()),
                    "hash" if in_repomd => hash_type = attr("type").map(|t| algorithm(&t)),
                    "url" if in_repomd => {
                        url_rank = match (attr("preference"), attr("priority")) {
                            (Some(p), _) => p.trim().parse::<i64>().ok().map(|p| -p),
                            (None, Some(p)) => p.trim().parse::<i64>().ok(),
                            (None, None) => Some(0),
                        };
                    }
                    _ => {}
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let name = r.xml10_content();
                let c = crate::formats::repodata::parse::resolve_reference(&name)
                    .ok_or_else(|| fail(&reader, format!("unknown entity &{name};")))?;
                text.push(c);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let value = std::mem::take(&mut text);
                let value = value.trim();
                let target = alternate.as_mut().unwrap_or(&mut current);
                match name.as_str() {
                    "size" if in_repomd => target.size = value.parse().ok(),
                    "hash" if in_repomd => {
                        if let Some(t) = hash_type.take() {
                            target.hashes.push((t, value.to_ascii_lowercase()));
                        }
                    }
                    "url" if in_repomd => {
                        if let (Some(rank), Some(base)) = (url_rank.take(), usable_base(value)) {
                            if urls.len() < MAX_MIRRORS * 4 {
                                urls.push((rank, urls.len(), base));
                            }
                        }
                    }
                    "alternate" => {
                        if let Some(a) = alternate.take() {
                            versions.push(a);
                        }
                    }
                    "file" if in_repomd => {
                        in_repomd = false;
                        versions.insert(0, std::mem::take(&mut current));
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    versions.retain(|v| v.size.is_some() && v.strongest().is_some());
    if versions.is_empty() {
        return Err(MirrorsError::NoRepomd {
            source_url: source_url.to_string(),
        });
    }
    urls.sort();
    let mut mirrors: Vec<String> = Vec::new();
    for (_, _, base) in urls {
        if !mirrors.contains(&base) {
            mirrors.push(base);
        }
        if mirrors.len() >= MAX_MIRRORS {
            break;
        }
    }
    if mirrors.is_empty() {
        return Err(MirrorsError::NoMirrors {
            source_url: source_url.to_string(),
        });
    }
    Ok(Metalink {
        mirrors,
        repomd: versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirrorlist_gives_usable_bases_in_order() {
        let text = "# generated\n\nhttps://a.example/pub/epel/9/x86_64/\n\
                    rsync://b.example/epel/\nhttp://c.example/epel/9/x86_64\n\
                    https://a.example/pub/epel/9/x86_64/\nfile:///mnt/epel/\nnot a url\n";
        assert_eq!(
            parse_mirrorlist(text, "m").unwrap(),
            [
                "https://a.example/pub/epel/9/x86_64/",
                "http://c.example/epel/9/x86_64/",
                "file:///mnt/epel/"
            ]
        );
        assert!(matches!(
            parse_mirrorlist("# nothing\nftp://x/\n", "m"),
            Err(MirrorsError::NoMirrors { .. })
        ));
    }

    const METALINK3: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/" type="dynamic" xmlns:mm0="http://fedorahosted.org/mirrormanager">
 <files>
  <file name="repomd.xml">
   <mm0:timestamp>1700000000</mm0:timestamp>
   <size>4527</size>
   <verification>
    <hash type="md5">00112233445566778899aabbccddeeff</hash>
    <hash type="sha256">AAAA</hash>
   </verification>
   <mm0:alternates>
    <mm0:alternate>
     <mm0:timestamp>1690000000</mm0:timestamp>
     <size>4400</size>
     <verification><hash type="sha512">bbbb</hash></verification>
    </mm0:alternate>
   </mm0:alternates>
   <resources maxconnections="1">
    <url protocol="rsync" type="rsync" location="US" preference="100">rsync://r.example/epel/9/x86_64/repodata/repomd.xml</url>
    <url protocol="https" type="https" location="DE" preference="90">https://low.example/epel/9/x86_64/repodata/repomd.xml</url>
    <url protocol="https" type="https" location="US" preference="100">https://high.example/epel/9/x86_64/repodata/repomd.xml</url>
   </resources>
  </file>
 </files>
</metalink>"#;

    #[test]
    fn a_metalink_gives_mirrors_best_first_and_the_repomd_versions_it_accepts() {
        let m = parse_metalink(METALINK3.as_bytes(), "ml").unwrap();
        assert_eq!(
            m.mirrors,
            [
                "https://high.example/epel/9/x86_64/",
                "https://low.example/epel/9/x86_64/"
            ]
        );
        assert_eq!(m.repomd.len(), 2);
        assert_eq!(m.repomd[0].size, Some(4527));
        assert_eq!(
            m.repomd[0].strongest(),
            Some(&("sha256".to_string(), "aaaa".to_string()))
        );
        assert_eq!(m.repomd[1].size, Some(4400));
        assert_eq!(m.repomd[1].strongest().unwrap().0, "sha512");
    }

    #[test]
    fn metalink_4_uses_priorities_and_hyphenated_hash_names() {
        let xml = r#"<?xml version="1.0"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
 <file name="repomd.xml">
  <size>10</size>
  <hash type="sha-256">cc</hash>
  <url location="de" priority="2">https://second.example/r/repodata/repomd.xml</url>
  <url location="us" priority="1">https://first.example/r/repodata/repomd.xml</url>
 </file>
</metalink>"#;
        let m = parse_metalink(xml.as_bytes(), "ml").unwrap();
        assert_eq!(
            m.mirrors,
            ["https://first.example/r/", "https://second.example/r/"]
        );
        assert_eq!(m.repomd[0].strongest().unwrap().0, "sha256");
    }

    #[test]
    fn a_metalink_without_a_strong_repomd_digest_or_mirrors_is_refused() {
        let weak = METALINK3
            .replace("<hash type=\"sha256\">AAAA</hash>", "")
            .replace("sha512", "sha1");
        assert!(matches!(
            parse_metalink(weak.as_bytes(), "ml"),
            Err(MirrorsError::NoRepomd { .. })
        ));
        let none = METALINK3.replace("https://", "ftp://");
        assert!(matches!(
            parse_metalink(none.as_bytes(), "ml"),
            Err(MirrorsError::NoMirrors { .. })
        ));
        assert!(matches!(
            parse_metalink(b"<metalink><file name=\"repomd.xml\"><size>1</size", "ml"),
            Err(MirrorsError::Xml { .. }) | Err(MirrorsError::NoRepomd { .. })
        ));
    }
}
