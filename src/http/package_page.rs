//! A package's page (`/packages/SHA256`): its metadata, dependencies, files,
//! changelog, signer, and the public trees that serve it.

use askama::Template;

use super::pages::{
    error_page, human_size, ok, prefix, signature_text, when, Hidden, Page, Result,
};
use crate::domain::package::FileKind;
use crate::formats::diff::Nevra;
use crate::store::catalog::{Catalog, Space};

#[derive(Template)]
#[template(path = "package.html")]
struct PackageTemplate {
    p: crate::domain::package::Package,
    /// As [`signature_text`] writes it.
    signature: String,
    nevra: String,
    evr: String,
    size: String,
    installed: String,
    built: String,
    file_name: String,
    download: Option<String>,
    deps: Vec<(&'static str, Vec<String>)>,
    files: Vec<String>,
    changelog: Vec<(String, String, String)>,
    places: Vec<(String, String)>,
}

fn dep_text(d: &crate::domain::package::Dependency) -> String {
    let mut s = d.name.clone();
    if let Some(flags) = &d.flags {
        let op = match flags.as_str() {
            "EQ" => "=",
            "LT" => "<",
            "LE" => "<=",
            "GT" => ">",
            "GE" => ">=",
            other => other,
        };
        let mut v = String::new();
        if let Some(e) = d.epoch.as_deref().filter(|e| !e.is_empty() && *e != "0") {
            v.push_str(e);
            v.push(':');
        }
        v.push_str(d.ver.as_deref().unwrap_or(""));
        if let Some(r) = d.rel.as_deref().filter(|r| !r.is_empty()) {
            v.push('-');
            v.push_str(r);
        }
        s = format!("{s} {op} {v}");
    }
    if d.pre {
        s.push_str(" (pre)");
    }
    s
}

pub(super) async fn render(catalog: &Catalog, sha256: &str, hidden: &Hidden) -> Result<Page> {
    if !crate::store::pool::is_sha256(sha256) {
        return Ok(error_page(
            404,
            "Package pages are named by the package's SHA-256.",
        ));
    }
    let Some(p) = catalog.package(sha256).await? else {
        return Ok(error_page(
            404,
            "No package with that SHA-256 is in the catalog.",
        ));
    };
    let places: Vec<_> = catalog
        .package_places(sha256, 200)
        .await?
        .into_iter()
        .filter(|pl| !hidden.contains(&(prefix(pl.space), pl.owner.clone())))
        .collect();
    if places.is_empty() && !hidden.is_empty() {
        // Only in trees that need a token (or in none): nothing to show publicly,
        // not even that it exists.
        return Ok(error_page(
            404,
            "No package with that SHA-256 is in the catalog.",
        ));
    }
    let n = Nevra {
        name: p.name.clone(),
        arch: p.arch.clone(),
        epoch: p.epoch.clone(),
        version: p.version.clone(),
        release: p.release.clone(),
    };
    let download = places.first().map(|pl| {
        format!(
            "/{}/{}/{}/{}",
            prefix(pl.space),
            pl.owner,
            pl.tree,
            pl.location
        )
    });
    let mut deps = Vec::new();
    for kind in crate::domain::package::DepKind::ALL {
        let list: Vec<String> = p
            .deps
            .iter()
            .filter(|d| d.kind == kind)
            .map(dep_text)
            .collect();
        if !list.is_empty() {
            deps.push((kind.element(), list));
        }
    }
    let files = p
        .files
        .iter()
        .map(|f| match f.kind {
            FileKind::Dir => format!("{}/", f.path),
            FileKind::Ghost => format!("{} (ghost)", f.path),
            FileKind::File => f.path.clone(),
        })
        .collect();
    let changelog = p
        .changelogs
        .iter()
        .map(|c| (when(c.date), c.author.clone(), c.text.clone()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let places = places
        .into_iter()
        .filter(|pl| seen.insert((prefix(pl.space), pl.owner.clone(), pl.tree.clone())))
        .map(|pl| {
            let kind = if pl.space == Space::Views {
                "view "
            } else {
                ""
            };
            (
                format!("/{}/{}/{}/", prefix(pl.space), pl.owner, pl.tree),
                format!("{kind}{} / {}", pl.owner, pl.tree),
            )
        })
        .collect();
    let signature = catalog
        .package_signatures(&[sha256])
        .await?
        .remove(sha256)
        .flatten()
        .map(|s| signature_text(s.key_id.as_deref(), Some(&s.algorithm)))
        .unwrap_or_default();
    ok(PackageTemplate {
        signature,
        nevra: format!("{}-{}.{}", p.name, n.evr(), p.arch),
        evr: n.evr(),
        size: human_size(p.size_package),
        installed: human_size(p.size_installed),
        built: when(p.time_build),
        file_name: download
            .as_deref()
            .and_then(|d| d.rsplit('/').next())
            .unwrap_or("")
            .to_string(),
        download,
        deps,
        files,
        changelog,
        places,
        p,
    }
    .render()?)
}
