//! Which upstream packages a mirror keeps: its `arch`, `include` and `exclude`
//! filters, and `keep_latest` (the newest N versions of each name.arch, in rpm version
//! order).

use std::collections::HashMap;

use super::Listed;
use crate::app::config::RepoConfig;
use crate::domain::package::Package;
use crate::formats::repodata::updateinfo::Nevra;

/// A glob in `include` or `exclude` that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("glob {glob:?}: {message}")]
pub struct BadGlob {
    pub glob: String,
    pub message: String,
}

/// Does the repository's config keep this package?
pub struct Filter {
    arch: Vec<String>,
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
}

impl Filter {
    pub fn new(repo: &RepoConfig) -> Result<Filter, BadGlob> {
        let set = |globs: &[String]| -> Result<Option<globset::GlobSet>, BadGlob> {
            if globs.is_empty() {
                return Ok(None);
            }
            let bad = |glob: &str, e: globset::Error| BadGlob {
                glob: glob.to_string(),
                message: e.to_string(),
            };
            let mut b = globset::GlobSetBuilder::new();
            for g in globs {
                b.add(globset::Glob::new(g).map_err(|e| bad(g, e))?);
            }
            b.build().map(Some).map_err(|e| bad(&globs.join(", "), e))
        };
        Ok(Filter {
            arch: repo.arch.clone(),
            include: set(&repo.include)?,
            exclude: set(&repo.exclude)?,
        })
    }

    pub fn keeps(&self, p: &Package) -> bool {
        (self.arch.is_empty() || self.arch.contains(&p.arch))
            && self.include.as_ref().is_none_or(|s| s.is_match(&p.name))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(&p.name))
    }
}

/// Keeps the newest `n` versions of each name.arch, in rpm version order; the kept
/// entries stay in upstream's order.
pub fn keep_newest(entries: Vec<Listed>, n: usize) -> Vec<Listed> {
    let evr = |p: &Nevra| format!("{}:{}-{}", p.epoch, p.version, p.release);
    let mut groups: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        groups
            .entry((e.nevra.name.as_str(), e.nevra.arch.as_str()))
            .or_default()
            .push(i);
    }
    let mut keep = vec![false; entries.len()];
    for (_, mut group) in groups {
        group.sort_by(|&a, &b| {
            rpm_version::rpm_evr_compare(&evr(&entries[b].nevra), &evr(&entries[a].nevra))
        });
        // Distinct versions: two builds of one EVR count once.
        let mut kept_versions: Vec<String> = Vec::new();
        for i in group {
            let v = evr(&entries[i].nevra);
            if !kept_versions.contains(&v) {
                if kept_versions.len() == n {
                    continue;
                }
                kept_versions.push(v);
            }
            keep[i] = true;
        }
    }
    entries
        .into_iter()
        .zip(keep)
        .filter_map(|(e, keep)| keep.then_some(e))
        .collect()
}

/// A package's name, epoch (empty read as "0"), version, release and arch, as
/// updateinfo and module artifacts name packages.
pub fn nevra_of(p: &Package) -> Nevra {
    Nevra {
        name: p.name.clone(),
        epoch: if p.epoch.is_empty() {
            "0".into()
        } else {
            p.epoch.clone()
        },
        version: p.version.clone(),
        release: p.release.clone(),
        arch: p.arch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::repodata::parse::Checksum;

    fn listed(name: &str, version: &str, sha: char, position: usize) -> Listed {
        Listed {
            href: format!("{name}-{version}.rpm"),
            location: format!("Packages/{name}-{version}-1.x86_64.rpm"),
            checksum: Checksum {
                algorithm: "sha256".into(),
                hex: sha.to_string().repeat(64),
            },
            size: 1,
            nevra: Nevra {
                name: name.into(),
                epoch: "0".into(),
                version: version.into(),
                release: "1".into(),
                arch: "x86_64".into(),
            },
            time_file: 0,
            list: 0,
            position,
        }
    }

    #[test]
    fn keep_newest_keeps_upstreams_order() {
        // Many names, each with an old and a new version, the new one listed first
        // for some: the kept entries must come out in upstream's order, not grouped.
        let mut entries = Vec::new();
        for i in 0..64 {
            let name = format!("p{i}");
            let (first, second) = if i % 2 == 0 {
                ("1.0", "2.0")
            } else {
                ("2.0", "1.0")
            };
            entries.push(listed(&name, first, 'a', entries.len()));
            entries.push(listed(&name, second, 'b', entries.len()));
        }
        let kept = keep_newest(entries, 1);
        assert_eq!(kept.len(), 64);
        assert!(kept.iter().all(|e| e.nevra.version == "2.0"));
        let positions: Vec<usize> = kept.iter().map(|e| e.position).collect();
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        assert_eq!(positions, sorted, "kept entries in upstream's order");
    }

    #[test]
    fn of_two_builds_of_one_version_both_are_kept_in_upstreams_order() {
        // Two builds of p-2.0 (different files, one location): both count as one
        // version, and their order decides which one the location gets (the later).
        let entries = vec![
            listed("p", "2.0", 'a', 0),
            listed("p", "1.0", 'c', 1),
            listed("p", "2.0", 'b', 2),
        ];
        let kept = keep_newest(entries, 1);
        let shas: Vec<&str> = kept.iter().map(|e| &e.checksum.hex[..1]).collect();
        assert_eq!(shas, ["a", "b"]);
    }
}
