//! Differences between two package sets (`cairn snapshot diff`), by name.arch in rpm
//! version order: added, removed, upgraded and downgraded.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A package's identity for comparisons.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Nevra {
    pub name: String,
    pub arch: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
}

impl Nevra {
    /// `[epoch:]version-release` (epoch shown when not 0).
    pub fn evr(&self) -> String {
        if self.epoch.is_empty() || self.epoch == "0" {
            format!("{}-{}", self.version, self.release)
        } else {
            format!("{}:{}-{}", self.epoch, self.version, self.release)
        }
    }

    fn full_evr(&self) -> String {
        let epoch = if self.epoch.is_empty() {
            "0"
        } else {
            &self.epoch
        };
        format!("{epoch}:{}-{}", self.version, self.release)
    }
}

/// rpm's ordering of two EVRs.
pub fn compare_evr(a: &Nevra, b: &Nevra) -> Ordering {
    rpm_version::rpm_evr_compare(&a.full_evr(), &b.full_evr())
}

/// One name.arch whose newest version changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Change {
    pub name: String,
    pub arch: String,
    pub from: String,
    pub to: String,
}

/// The differences from `a` to `b`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Diff {
    pub added: Vec<Nevra>,
    pub removed: Vec<Nevra>,
    pub upgraded: Vec<Change>,
    pub downgraded: Vec<Change>,
}

fn newest(list: &[Nevra]) -> Option<&Nevra> {
    list.iter().max_by(|x, y| compare_evr(x, y))
}

/// Compares two package sets by name.arch. A name.arch present in both whose newest
/// versions differ is an upgrade or a downgrade; other versions that appear or
/// disappear beside it are listed as added or removed.
pub fn diff(a: &[Nevra], b: &[Nevra]) -> Diff {
    let group = |set: &[Nevra]| {
        let mut m: BTreeMap<(String, String), Vec<Nevra>> = BTreeMap::new();
        for n in set {
            m.entry((n.name.clone(), n.arch.clone()))
                .or_default()
                .push(n.clone());
        }
        m
    };
    let (ga, gb) = (group(a), group(b));
    let mut out = Diff::default();
    let same = |x: &Nevra, y: &Nevra| compare_evr(x, y) == Ordering::Equal;
    for (key, old) in &ga {
        match gb.get(key) {
            None => out.removed.extend(old.iter().cloned()),
            Some(new) => {
                let (o, n) = (newest(old), newest(new));
                if let (Some(o), Some(n)) = (o, n) {
                    let change = Change {
                        name: key.0.clone(),
                        arch: key.1.clone(),
                        from: o.evr(),
                        to: n.evr(),
                    };
                    match compare_evr(n, o) {
                        Ordering::Greater => out.upgraded.push(change),
                        Ordering::Less => out.downgraded.push(change),
                        Ordering::Equal => {}
                    }
                    // Older versions kept beside the newest.
                    for x in old
                        .iter()
                        .filter(|x| !same(x, o) && !new.iter().any(|y| same(x, y)))
                    {
                        out.removed.push(x.clone());
                    }
                    for y in new
                        .iter()
                        .filter(|y| !same(y, n) && !old.iter().any(|x| same(x, y)))
                    {
                        out.added.push(y.clone());
                    }
                }
            }
        }
    }
    for (key, new) in &gb {
        if !ga.contains_key(key) {
            out.added.extend(new.iter().cloned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str, evr: &str) -> Nevra {
        let (epoch, rest) = evr.split_once(':').unwrap_or(("0", evr));
        let (version, release) = rest.split_once('-').unwrap_or((rest, "1"));
        Nevra {
            name: name.into(),
            arch: "x86_64".into(),
            epoch: epoch.into(),
            version: version.into(),
            release: release.into(),
        }
    }

    #[test]
    fn rpm_version_order_decides_up_and_down() {
        let a = vec![
            n("nine", "1.9-1"),
            n("tilde", "2.0-1"),
            n("caret", "2.0-1"),
            n("epoch", "1:1.0-1"),
            n("gone", "1-1"),
            n("same", "3-1"),
        ];
        let b = vec![
            n("nine", "1.10-1"),
            n("tilde", "2.0~rc1-1"),
            n("caret", "2.0^git1-1"),
            n("epoch", "9.9-1"),
            n("new", "1-1"),
            n("same", "3-1"),
        ];
        let d = diff(&a, &b);
        let names = |v: &[Change]| v.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d.upgraded), vec!["caret", "nine"]);
        assert_eq!(names(&d.downgraded), vec!["epoch", "tilde"]);
        assert_eq!(
            d.added.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
            vec!["new"]
        );
        assert_eq!(
            d.removed
                .iter()
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>(),
            vec!["gone"]
        );
        assert_eq!(d.downgraded[0].from, "1:1.0-1");
    }
}
