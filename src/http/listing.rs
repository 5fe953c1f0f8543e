//! Directory listings of trees and the `.repo` files that point dnf at them.

use hyper::body::Incoming;
use hyper::header::{self};
use hyper::{Request, Response, StatusCode};

use super::handler::ResBody;
use super::index::Tree;
use super::keys::OwnerKeys;
use super::respond::{not_found, text, uncached};

/// `http://HOST` from the request's Host header (only host-name characters kept).
pub(super) fn base_url(req: &Request<Incoming>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The `.repo` lines that make dnf check what the tree at `dir` of `t` is signed
/// with: `repo_gpgcheck=1` when its repomd.xml is signed by Cairn's key (its
/// `repomd.xml.key` beside it) or, for a mirror that checks upstream's, by the keys its
/// repository trusts; `gpgcheck=1` when every package is signed by one of those keys;
/// `gpgkey=` listing the keys served under `keys` (a URL ending in `/keys/`).
fn trust_lines(
    t: Option<&Tree>,
    dir: &str,
    keys: &str,
    signer_file: &str,
    owner: Option<(&str, &str, &OwnerKeys)>,
) -> String {
    let cairn_signed =
        t.is_some_and(|t| t.file(&format!("{dir}repodata/repomd.xml.key")).is_some());
    let upstream_signed = owner.is_some_and(|(_, _, k)| k.upstream_signed)
        && t.is_some_and(|t| t.file(&format!("{dir}repodata/repomd.xml.asc")).is_some());
    let packages_signed = match (t.and_then(|t| t.files.signers.as_ref()), owner) {
        (Some(signers), Some((_, _, k))) => signers.iter().all(|id| k.key_ids.contains(id)),
        _ => false,
    };
    let mut urls = Vec::new();
    if cairn_signed {
        urls.push(format!("{keys}{signer_file}"));
    }
    if let Some((prefix, owner, _)) = owner {
        urls.push(format!("{keys}{prefix}/{owner}.asc"));
    }
    let mut out = String::new();
    if cairn_signed || upstream_signed {
        out.push_str("repo_gpgcheck=1\n");
    }
    if !urls.is_empty() {
        out.push_str(&format!("gpgkey={}\n", urls.join(" ")));
    }
    if packages_signed {
        out.push_str("gpgcheck=1\n");
    } else {
        out.push_str(
            "# Not every package is signed by a key this server knows of: set gpgcheck=1 and\n\
             # add the vendor's key to gpgkey when they are.\n\
             gpgcheck=0\n",
        );
    }
    out
}

/// A `.repo` file for `/etc/yum.repos.d/` pointing at a tree; `owner_keys` are the
/// keys its repository (or a view's members) trusts.
/// How a repository or view is served, as its `.repo` file tells dnf.
pub(super) struct Serving<'a> {
    /// Its own keys (the vendor keys of a repository), if any.
    pub owner_keys: Option<&'a OwnerKeys>,
    /// The file under `/keys/` of the key that signs it.
    pub signer_file: &'a str,
    /// Its trees need a token (`access = "token"`).
    pub guarded: bool,
}

pub(super) fn repo_file(
    prefix: &str,
    owner: &str,
    tree: &str,
    base: &str,
    t: Option<&Tree>,
    serving: &Serving<'_>,
) -> Response<ResBody> {
    let Serving {
        owner_keys,
        signer_file,
        guarded,
    } = *serving;
    let id = format!("cairn-{owner}-{tree}");
    let expire = match t {
        Some(t) if t.immutable => "metadata_expire=never\n",
        _ => "",
    };
    // An installation tree has a repository per variant (`BaseOS/`, `AppStream/`):
    // one section each.
    let mut dirs: Vec<&str> = match t {
        Some(t) if t.file(".treeinfo").is_some() => t
            .files
            .files
            .keys()
            .filter_map(|p| p.strip_suffix("repodata/repomd.xml"))
            .collect(),
        _ => vec![""],
    };
    dirs.sort_unstable();
    let mut body = format!(
        "# {owner} {tree}, served by Cairn.\n\
         # curl -o /etc/yum.repos.d/{id}.repo {base}/{prefix}/{owner}/{tree}.repo\n"
    );
    // A guarded tree needs a token of read scope: dnf sends it as the password.
    let credentials = if guarded {
        body.push_str(
            "# Fetching needs a token of read scope for it: put the token in place of\n\
             # TOKEN below (and keep this file readable by root only).\n",
        );
        "username=cairn\npassword=TOKEN\n"
    } else {
        ""
    };
    for dir in dirs {
        let suffix: String = dir
            .trim_end_matches('/')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let (section, name) = if suffix.is_empty() {
            (id.clone(), format!("Cairn {owner} {tree}"))
        } else {
            (
                format!("{id}-{suffix}"),
                format!("Cairn {owner} {tree} {suffix}"),
            )
        };
        let trust = trust_lines(
            t,
            dir,
            &format!("{base}/keys/"),
            signer_file,
            owner_keys.map(|k| (prefix, owner, k)),
        );
        body.push_str(&format!(
            "[{section}]\n\
             name={name}\n\
             baseurl={base}/{prefix}/{owner}/{tree}/{dir}\n\
             enabled=1\n\
             {expire}\
             {credentials}\
             {trust}"
        ));
    }
    uncached(body, "text/plain; charset=utf-8")
}

/// One link of a directory page.
pub struct Link {
    pub href: String,
    pub label: String,
}

/// A directory page (`templates/listing.html`). Askama escapes every value.
#[derive(askama::Template)]
#[template(path = "listing.html")]
pub(super) struct Listing<'a> {
    title: &'a str,
    parent: Option<String>,
    items: Vec<Link>,
}

pub(super) fn html(title: &str, parent: Option<String>, items: Vec<Link>) -> Response<ResBody> {
    use askama::Template;
    let page = Listing {
        title,
        parent,
        items,
    };
    let body = match page.render() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("rendering a listing failed: {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "page error");
        }
    };
    uncached(body, "text/html; charset=utf-8")
}

/// `/repos/`, `/views/` (the owners) or one owner's trees.
pub(super) fn tree_listing(
    prefix: &str,
    repo: &str,
    tree_name: &str,
    tree: &Tree,
    dir: &str,
) -> Response<ResBody> {
    let mut entries: Vec<String> = tree
        .files
        .files
        .keys()
        .filter_map(|p| p.strip_prefix(dir))
        .map(|rest| match rest.find('/') {
            Some(i) => rest[..=i].to_string(),
            None => rest.to_string(),
        })
        .collect();
    if entries.is_empty() {
        return not_found("This tree has no such directory.");
    }
    entries.sort();
    entries.dedup();
    let base = format!("/{prefix}/{repo}/{tree_name}/{dir}");
    let parent = match base.trim_end_matches('/').rfind('/') {
        Some(i) => base[..=i].to_string(),
        None => "/".to_string(),
    };
    let items: Vec<_> = entries
        .into_iter()
        .map(|e| Link {
            href: format!("{base}{e}"),
            label: e,
        })
        .collect();
    html(&base, Some(parent), items)
}
