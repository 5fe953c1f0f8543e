//! `.treeinfo`: the description of a kickstart / installation tree, in productmd's INI
//! format (`[header]`, `[release]`, `[tree]`, `[variant-*]`, `[addon-*]`,
//! `[images-ARCH]`, `[stage2]`, `[checksums]`) or the older `[general]`-only form.
//!
//! What a mirror needs from it: the repositories of the tree's variants and addons
//! (relative paths; the tree root when none is named), and every file it names (images,
//! stage2) with the checksum `[checksums]` gives it. The file itself is served
//! unchanged, so nothing here writes one.

use std::collections::BTreeMap;

use super::repodata::parse::{href_is_safe, Checksum};

/// Why a `.treeinfo` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TreeinfoError {
    #[error("{file}: not a valid .treeinfo: {message}")]
    Invalid { file: String, message: String },
}

/// A repository of the tree: a variant's or an addon's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRepo {
    /// The section's id (`BaseOS`, `BaseOS-HighAvailability`), or `tree` for the root.
    pub id: String,
    /// The display name, when given.
    pub name: Option<String>,
    /// The repository's directory relative to the tree root, `""` for the root itself.
    pub path: String,
}

/// A file the tree names: an image, the stage2 image, or one listed in `[checksums]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Relative to the tree root.
    pub path: String,
    /// What names it: `kernel@x86_64`, `mainimage`, or `checksums` only.
    pub role: String,
    /// From `[checksums]`, when listed there.
    pub checksum: Option<Checksum>,
}

/// What a mirror reads from a `.treeinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Treeinfo {
    /// `[release] name version`, or `[general] name`, when given.
    pub release: Option<String>,
    /// `[tree] arch` or `[general] arch`, when given.
    pub arch: Option<String>,
    /// The repositories to mirror, each path once, in the order the file lists them.
    pub repos: Vec<TreeRepo>,
    /// Every file named, each path once, sorted by path.
    pub files: Vec<TreeFile>,
}

/// A path of the tree normalised: no `./` prefix, no trailing `/`; `.` becomes `""`.
fn normalise(path: &str) -> String {
    let mut p = path.trim();
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.trim_end_matches('/');
    if p == "." {
        String::new()
    } else {
        p.to_string()
    }
}

/// Parses `bytes` (the `.treeinfo` at `file`, named in errors).
pub fn parse(bytes: &[u8], file: &str) -> Result<Treeinfo, TreeinfoError> {
    let invalid = |message: String| TreeinfoError::Invalid {
        file: file.to_string(),
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    let ini = ini::Ini::load_from_str_opt(
        text,
        ini::ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..ini::ParseOption::default()
        },
    )
    .map_err(|e| invalid(e.to_string()))?;
    let get = |section: &str, key: &str| {
        ini.section(Some(section))
            .and_then(|s| s.get(key))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if ini.section(Some("header")).is_none() && ini.section(Some("general")).is_none() {
        return Err(invalid(
            "it has neither a [header] nor a [general] section".into(),
        ));
    }
    let safe = |what: &str, path: &str| -> Result<String, TreeinfoError> {
        let p = normalise(path);
        if !p.is_empty() && !href_is_safe(&p) {
            return Err(invalid(format!("{what} {path:?} leaves the tree")));
        }
        Ok(p)
    };

    let mut repos: Vec<TreeRepo> = Vec::new();
    for (name, props) in ini.iter() {
        let Some(name) = name else { continue };
        let id = match name
            .strip_prefix("variant-")
            .or_else(|| name.strip_prefix("addon-"))
        {
            Some(id) => id,
            None => continue,
        };
        let Some(path) = props.get("repository") else {
            continue;
        };
        let path = safe(&format!("[{name}] repository"), path)?;
        if !repos.iter().any(|r| r.path == path) {
            repos.push(TreeRepo {
                id: id.to_string(),
                name: props.get("name").map(|n| n.trim().to_string()),
                path,
            });
        }
    }
    if repos.is_empty() {
        let path = match get("general", "repository") {
            Some(p) => safe("[general] repository", p)?,
            None => String::new(),
        };
        repos.push(TreeRepo {
            id: get("general", "variant").unwrap_or("tree").to_string(),
            name: None,
            path,
        });
    }

    let mut files: BTreeMap<String, TreeFile> = BTreeMap::new();
    for (name, props) in ini.iter() {
        let Some(name) = name else { continue };
        let arch = match name.strip_prefix("images-") {
            Some(arch) => Some(arch),
            None if name == "stage2" => None,
            None => continue,
        };
        for (key, value) in props.iter() {
            let path = safe(&format!("[{name}] {key}"), value)?;
            if path.is_empty() {
                continue;
            }
            let role = match arch {
                Some(arch) => format!("{key}@{arch}"),
                None => key.to_string(),
            };
            files.entry(path.clone()).or_insert(TreeFile {
                path,
                role,
                checksum: None,
            });
        }
    }
    if let Some(sums) = ini.section(Some("checksums")) {
        for (key, value) in sums.iter() {
            let path = safe("[checksums]", key)?;
            let (algorithm, hex) = value.trim().split_once(':').ok_or_else(|| {
                invalid(format!("[checksums] {key}: {value:?} is not TYPE:DIGEST"))
            })?;
            let checksum = Checksum {
                algorithm: algorithm.trim().to_ascii_lowercase(),
                hex: hex.trim().to_ascii_lowercase(),
            };
            if checksum.hex.is_empty() || !checksum.hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "[checksums] {key}: {value:?} is not TYPE:DIGEST"
                )));
            }
            files
                .entry(path.clone())
                .or_insert(TreeFile {
                    path,
                    role: "checksums".into(),
                    checksum: None,
                })
                .checksum = Some(checksum);
        }
    }
    let release = match (get("release", "name"), get("release", "version")) {
        (Some(n), Some(v)) => Some(format!("{n} {v}")),
        (Some(n), None) => Some(n.to_string()),
        _ => get("general", "name").map(str::to_string),
    };
    Ok(Treeinfo {
        release,
        arch: get("tree", "arch")
            .or_else(|| get("general", "arch"))
            .map(str::to_string),
        repos,
        files: files.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As productmd 1.x writes it (two variants, an addon, images, stage2).
    const PRODUCTMD: &str = "[checksums]
images/install.img = sha256:41bd766c5072c3c5237ba712ef3b10bc66cbfafb8cb4c5541e471688dc6878d4
images/pxeboot/vmlinuz = sha256:412bb25be01c8faf2409ce5a169358cb6b5263c984689e8e43e9494661d7d31d

[general]
; WARNING.0 = This section provides compatibility with pre-productmd treeinfos.
arch = x86_64
family = Demo Linux
name = Demo Linux 9.4
repository = AppStream
variants = AppStream,BaseOS

[header]
type = productmd.treeinfo
version = 1.2

[images-x86_64]
initrd = images/pxeboot/initrd.img
kernel = images/pxeboot/vmlinuz

[release]
name = Demo Linux
version = 9.4

[stage2]
mainimage = images/install.img

[tree]
arch = x86_64
variants = AppStream,BaseOS

[variant-AppStream]
id = AppStream
name = AppStream
packages = AppStream/Packages
repository = AppStream

[variant-BaseOS]
id = BaseOS
name = BaseOS
packages = BaseOS/Packages
repository = BaseOS/

[addon-BaseOS-HA]
id = HA
name = High Availability
repository = addons/HA
";

    #[test]
    fn a_productmd_treeinfo_gives_its_repositories_and_files() {
        let t = parse(PRODUCTMD.as_bytes(), ".treeinfo").unwrap();
        assert_eq!(t.release.as_deref(), Some("Demo Linux 9.4"));
        assert_eq!(t.arch.as_deref(), Some("x86_64"));
        let paths: Vec<&str> = t.repos.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["AppStream", "BaseOS", "addons/HA"]);
        let files: Vec<(&str, &str, bool)> = t
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.role.as_str(), f.checksum.is_some()))
            .collect();
        assert_eq!(
            files,
            [
                ("images/install.img", "mainimage", true),
                ("images/pxeboot/initrd.img", "initrd@x86_64", false),
                ("images/pxeboot/vmlinuz", "kernel@x86_64", true),
            ]
        );
    }

    #[test]
    fn a_legacy_treeinfo_is_its_own_repository() {
        let legacy = "[general]\nfamily = CentOS\nversion = 7\narch = x86_64\npackagedir = Packages\n\n[stage2]\nmainimage = LiveOS/squashfs.img\n\n[checksums]\nLiveOS/squashfs.img = sha256:ab01\n";
        let t = parse(legacy.as_bytes(), ".treeinfo").unwrap();
        assert_eq!(t.repos.len(), 1);
        assert_eq!(t.repos[0].path, "");
        assert_eq!(t.files.len(), 1);
        assert_eq!(t.files[0].checksum.as_ref().unwrap().hex, "ab01");
    }

    #[test]
    fn paths_that_leave_the_tree_and_broken_checksums_are_refused() {
        for bad in [
            "[header]\n[variant-X]\nrepository = ../../etc\n",
            "[header]\n[images-x86_64]\nkernel = /etc/passwd\n",
            "[header]\n[checksums]\nimages/a = abc\n",
            "[header]\n[checksums]\nimages/a = sha256:not-hex\n",
            "[tree]\narch = x86_64\n",
        ] {
            let err = parse(bad.as_bytes(), "up/.treeinfo")
                .unwrap_err()
                .to_string();
            assert!(err.contains("up/.treeinfo"), "{err}");
        }
    }
}
