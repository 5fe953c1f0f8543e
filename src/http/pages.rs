//! The web pages people read at the URLs dnf uses: the overview (`/`), a repository's
//! or view's page (snapshots, aliases, sync history, compare form and diff), a tree's
//! package table (searchable, paginated), and a package page.
//!
//! Pages need the catalog, which lives on the control runtime; file serving never
//! does. So pages are a separate route class: a worker sends a [`PageRequest`] over a
//! channel and awaits the rendered page, while the control runtime renders it with
//! askama (`templates/`, which escape everything they print). A slow page never holds
//! a worker's file requests back.

use std::time::{Duration, UNIX_EPOCH};

use askama::Template;
use tokio::sync::{mpsc, oneshot};

use crate::formats::diff::{Change, Nevra};
use crate::store::catalog::{Catalog, OwnerSummary, Space, SyncRun};

/// Packages per page of a tree's table.
pub const PAGE_SIZE: i64 = 100;

/// A page to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// `/`: repositories and views, but not those in `hidden`.
    Home { hidden: Hidden },
    /// `/repos/REPO/` or `/views/VIEW/`, optionally with a diff.
    Owner {
        space: Space,
        owner: String,
        diff: Option<(String, String)>,
    },
    /// `/repos/REPO/TREE/`: the package table.
    Tree {
        space: Space,
        owner: String,
        tree: String,
        search: String,
        /// Only the unsigned packages (`?unsigned=1`).
        unsigned: bool,
        page: i64,
        /// `http://host` the request came to (for the dnf instructions).
        base: String,
    },
    /// `/packages/SHA256`, naming no tree of an owner in `hidden`.
    Package { sha256: String, hidden: Hidden },
    /// `/audit`: the newest audit rows (older than row `before`), of one actor or
    /// operation when not empty.
    Audit {
        actor: String,
        operation: String,
        before: Option<i64>,
    },
}

/// Repositories and views public pages do not show (`access = "token"`): their names,
/// trees and contents are for token holders, through their own pages and the API.
/// Keyed by URL prefix (`repos`, `views`) and name.
pub type Hidden = std::sync::Arc<std::collections::HashSet<(&'static str, String)>>;

/// A rendered page.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub html: String,
}

/// Pages rendered at the same time, at most.
pub const CONCURRENT_RENDERS: usize = 8;
/// Page requests waiting for a renderer, at most; more are answered 503 at once.
pub const QUEUED_PAGES: usize = 256;

type Job = (PageRequest, oneshot::Sender<Page>);

/// The workers' handle on the page renderer.
#[derive(Clone)]
pub struct Pages {
    tx: mpsc::Sender<Job>,
}

impl Pages {
    /// Starts the renderer on the current (control) runtime. Rendering is bounded
    /// ([`CONCURRENT_RENDERS`] at a time, [`QUEUED_PAGES`] waiting), so a flood of page
    /// requests costs bounded memory and database work, and never touches file serving.
    pub fn start(catalog: Catalog) -> (Pages, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUED_PAGES);
        let renders = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_RENDERS));
        let task = tokio::spawn(async move {
            while let Some((req, reply)) = rx.recv().await {
                let Ok(permit) = renders.clone().acquire_owned().await else {
                    break;
                };
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    let _ = reply.send(render(&catalog, &req).await);
                    drop(permit);
                });
            }
        });
        (Pages { tx }, task)
    }

    /// Renders a page (from any runtime).
    pub async fn get(&self, req: PageRequest) -> Page {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send((req, reply)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return error_page(503, "Too many page requests at once; try again shortly.");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return error_page(503, "The server is shutting down.");
            }
        }
        rx.await
            .unwrap_or_else(|_| error_page(500, "The page could not be rendered."))
    }
}

/// Renders a page from the catalog (also what the handler tests call).
pub async fn render(catalog: &Catalog, req: &PageRequest) -> Page {
    let result = match req {
        PageRequest::Home { hidden } => home(catalog, hidden).await,
        PageRequest::Owner { space, owner, diff } => {
            owner_page(catalog, *space, owner, diff.as_ref()).await
        }
        PageRequest::Tree {
            space,
            owner,
            tree,
            search,
            unsigned,
            page,
            base,
        } => {
            let filter = Filter {
                search,
                unsigned: *unsigned,
            };
            tree_page(catalog, *space, owner, tree, &filter, *page, base).await
        }
        PageRequest::Package { sha256, hidden } => {
            super::package_page::render(catalog, sha256, hidden).await
        }
        PageRequest::Audit {
            actor,
            operation,
            before,
        } => super::audit_page::render(catalog, actor, operation, *before).await,
    };
    match result {
        Ok(page) => page,
        Err(e) => {
            tracing::error!("rendering {req:?}: {e}");
            error_page(
                500,
                "The page could not be rendered; the server log has the cause.",
            )
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub(super) fn ok(html: String) -> Result<Page> {
    Ok(Page { status: 200, html })
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    status: String,
    message: &'a str,
}

/// A page in the house style for an error status.
pub fn error_page(status: u16, message: &str) -> Page {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let html = ErrorTemplate {
        status: format!("{status} {reason}"),
        message,
    }
    .render()
    .unwrap_or_else(|_| format!("{status} {reason}"));
    Page { status, html }
}

/// `1.5 MiB`.
pub fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `2026-11-23 14:05` (UTC).
pub fn when(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    let dt = time::OffsetDateTime::from(t);
    dt.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]"
    ))
    .unwrap_or_else(|_| unix.to_string())
}

fn took(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

struct SyncView {
    status: String,
    when: String,
    took: String,
    added: i64,
    removed: i64,
    downloaded: i64,
    bytes: String,
    error: String,
}

impl From<&SyncRun> for SyncView {
    fn from(s: &SyncRun) -> SyncView {
        SyncView {
            status: s.status.to_string(),
            when: when(s.started_at),
            took: s
                .finished_at
                .map(|f| took(f - s.started_at))
                .unwrap_or_default(),
            added: s.packages_added,
            removed: s.packages_removed,
            downloaded: s.packages_downloaded,
            bytes: human_size(s.bytes_downloaded),
            error: s.error.clone().unwrap_or_default(),
        }
    }
}

struct OwnerRow {
    name: String,
    packages: i64,
    size: String,
    snapshots: i64,
    newest: Option<String>,
    aliases: Vec<(String, String)>,
    sync: Option<SyncView>,
}

impl From<OwnerSummary> for OwnerRow {
    fn from(o: OwnerSummary) -> OwnerRow {
        OwnerRow {
            sync: o.last_sync.as_ref().map(SyncView::from),
            name: o.name,
            packages: o.packages,
            size: human_size(o.size),
            snapshots: o.snapshots,
            newest: o.newest_snapshot,
            aliases: o.aliases,
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomeTemplate {
    repos: Vec<OwnerRow>,
    views: Vec<OwnerRow>,
}

async fn home(catalog: &Catalog, hidden: &Hidden) -> Result<Page> {
    let repos = catalog.page_owners(Space::Repos).await?;
    let views = catalog.page_owners(Space::Views).await?;
    let shown = |space: Space, list: Vec<OwnerSummary>| -> Vec<OwnerRow> {
        list.into_iter()
            .filter(|o| !hidden.contains(&(prefix(space), o.name.clone())))
            .map(OwnerRow::from)
            .collect()
    };
    ok(HomeTemplate {
        repos: shown(Space::Repos, repos),
        views: shown(Space::Views, views),
    }
    .render()?)
}

struct SnapshotView {
    name: String,
    created: String,
    packages: i64,
    size: String,
    aliases: Vec<String>,
}

struct DiffView {
    from: String,
    to: String,
    empty: bool,
    added: Vec<Nevra>,
    removed: Vec<Nevra>,
    upgraded: Vec<Change>,
    downgraded: Vec<Change>,
}

#[derive(Template)]
#[template(path = "owner.html")]
struct OwnerTemplate {
    kind: &'static str,
    prefix: &'static str,
    name: String,
    snapshots: Vec<SnapshotView>,
    syncs: Vec<SyncView>,
    mirror: bool,
    diff: Option<DiffView>,
}

pub(super) fn prefix(space: Space) -> &'static str {
    match space {
        Space::Repos => "repos",
        Space::Views => "views",
    }
}

async fn owner_page(
    catalog: &Catalog,
    space: Space,
    owner: &str,
    diff: Option<&(String, String)>,
) -> Result<Page> {
    let kind = match space {
        Space::Repos => "Repository",
        Space::Views => "View",
    };
    let Some(snapshots) = catalog.page_snapshots(space, owner).await? else {
        return Ok(error_page(
            404,
            &format!("There is no {} named {owner:?}.", kind.to_lowercase()),
        ));
    };
    let diff = match diff {
        None => None,
        Some((from, to)) => {
            let a = catalog.page_tree(space, owner, from).await?;
            let b = catalog.page_tree(space, owner, to).await?;
            let (Some(a), Some(b)) = (a, b) else {
                return Ok(error_page(
                    404,
                    &format!("{owner} has no snapshot {from:?} or {to:?} to compare."),
                ));
            };
            let (left, right) = catalog.tree_diff_candidates(&a, &b).await?;
            let d = crate::formats::diff::diff(&left, &right);
            Some(DiffView {
                from: from.clone(),
                to: to.clone(),
                empty: d.added.is_empty()
                    && d.removed.is_empty()
                    && d.upgraded.is_empty()
                    && d.downgraded.is_empty(),
                added: d.added,
                removed: d.removed,
                upgraded: d.upgraded,
                downgraded: d.downgraded,
            })
        }
    };
    let syncs = if space == Space::Repos {
        catalog.page_sync_runs(owner, 20).await?
    } else {
        Vec::new()
    };
    let mirror = !syncs.is_empty();
    ok(OwnerTemplate {
        kind,
        prefix: prefix(space),
        name: owner.to_string(),
        snapshots: snapshots
            .into_iter()
            .map(|s| SnapshotView {
                created: when(s.created_at),
                packages: s.package_count,
                size: human_size(s.total_size),
                name: s.name,
                aliases: s.aliases,
            })
            .collect(),
        syncs: syncs.iter().map(SyncView::from).collect(),
        mirror,
        diff,
    }
    .render()?)
}

struct PackageLine {
    sha256: String,
    name: String,
    evr: String,
    arch: String,
    size: String,
    summary: String,
    /// "RSA 0123456789abcdef", "unsigned", or empty while not read.
    signature: String,
}

/// How a package's signature reads on a page.
pub(super) fn signature_text(key_id: Option<&str>, algorithm: Option<&str>) -> String {
    match (algorithm, key_id) {
        (None, _) => String::new(),
        (Some("none"), _) => "unsigned".into(),
        (Some("unverified"), Some(k)) => format!("key {k} (not verified)"),
        (Some(a), Some(k)) => format!("{a} {k}"),
        (Some(a), None) => a.to_string(),
    }
}

#[derive(Template)]
#[template(path = "tree.html")]
struct TreeTemplate {
    /// Set for an installation tree (one with a `.treeinfo`).
    install: Option<InstallTree>,
    prefix: &'static str,
    owner: String,
    tree: String,
    what: String,
    created: Option<String>,
    base: String,
    q: String,
    /// Only unsigned packages are listed.
    unsigned: bool,
    total: i64,
    total_all: i64,
    /// Packages of the tree left upstream until a client asks.
    not_stored: i64,
    first: i64,
    last: i64,
    page: i64,
    pages: i64,
    prev: Option<String>,
    next: Option<String>,
    packages: Vec<PackageLine>,
}

/// What a tree page lists: names containing `search`, only unsigned packages.
struct Filter<'a> {
    search: &'a str,
    unsigned: bool,
}

fn page_href(filter: &Filter<'_>, page: i64) -> String {
    let mut href = String::from("?");
    if !filter.search.is_empty() {
        let q = percent_encoding::utf8_percent_encode(
            filter.search,
            percent_encoding::NON_ALPHANUMERIC,
        );
        href.push_str(&format!("q={q}&"));
    }
    if filter.unsigned {
        href.push_str("unsigned=1&");
    }
    href.push_str(&format!("page={page}"));
    href
}

async fn tree_page(
    catalog: &Catalog,
    space: Space,
    owner: &str,
    tree: &str,
    filter: &Filter<'_>,
    page: i64,
    base: &str,
) -> Result<Page> {
    let search = filter.search;
    let Some(t) = catalog.page_tree(space, owner, tree).await? else {
        return Ok(error_page(
            404,
            &format!("{owner} has no snapshot, alias or latest named {tree:?}."),
        ));
    };
    let page = page.max(1);
    let filtered = !search.is_empty() || filter.unsigned;
    let (total_all, _) = if filtered {
        catalog.page_packages(&t, "", false, 0, 0).await?
    } else {
        (0, Vec::new())
    };
    let (total, rows) = catalog
        .page_packages(
            &t,
            search,
            filter.unsigned,
            (page - 1) * PAGE_SIZE,
            PAGE_SIZE,
        )
        .await?;
    let total_all = if filtered { total_all } else { total };
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let what = match (&t.alias_of, tree) {
        (Some(s), _) => format!("alias of snapshot {s}"),
        (None, "latest") => "latest: the current content, republished on every change".to_string(),
        (None, _) => "snapshot: immutable".to_string(),
    };
    let first = if rows.is_empty() {
        0
    } else {
        (page - 1) * PAGE_SIZE + 1
    };
    let install = InstallTree::of(catalog.page_tree_files(&t).await?);
    ok(TreeTemplate {
        install,
        prefix: prefix(space),
        owner: owner.to_string(),
        tree: tree.to_string(),
        what,
        created: t.created_at.map(when),
        base: base.to_string(),
        q: search.to_string(),
        total,
        total_all,
        not_stored: catalog.not_stored(&t).await?,
        first,
        last: first + rows.len() as i64 - 1,
        page,
        pages,
        unsigned: filter.unsigned,
        prev: (page > 1).then(|| page_href(filter, page - 1)),
        next: (page < pages).then(|| page_href(filter, page + 1)),
        packages: rows
            .into_iter()
            .map(|p| PackageLine {
                evr: Nevra {
                    name: String::new(),
                    arch: String::new(),
                    epoch: p.epoch,
                    version: p.version,
                    release: p.release,
                }
                .evr(),
                sha256: p.sha256,
                name: p.name,
                arch: p.arch,
                size: human_size(p.size),
                signature: signature_text(p.sig_key_id.as_deref(), p.sig_algorithm.as_deref()),
                summary: p.summary,
            })
            .collect(),
    }
    .render()?)
}

/// An installation tree's parts, for its page: the variants' repositories (their
/// directories), the images and the other files, with sizes.
struct InstallTree {
    variants: Vec<String>,
    images: Vec<(String, String)>,
    files: Vec<(String, String)>,
}

impl InstallTree {
    /// `None` when `files` (from `page_tree_files`) is empty: not an installation tree.
    fn of(files: Vec<crate::store::catalog::PublicationFile>) -> Option<InstallTree> {
        if files.is_empty() {
            return None;
        }
        let mut tree = InstallTree {
            variants: Vec::new(),
            images: Vec::new(),
            files: Vec::new(),
        };
        for f in files {
            match f.kind.as_str() {
                "image" => tree.images.push((f.path, human_size(f.size))),
                "tree" | "treeinfo" => tree.files.push((f.path, human_size(f.size))),
                _ => {
                    if let Some(dir) = f.path.strip_suffix("repodata/repomd.xml") {
                        tree.variants.push(dir.to_string());
                    }
                }
            }
        }
        Some(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(when(0), "1970-01-01 00:00");
        assert_eq!(took(75), "1 min 15 s");
    }

    #[test]
    fn error_pages_escape_their_message() {
        let p = error_page(404, "no <script>alert(1)</script> here");
        assert_eq!(p.status, 404);
        assert!(p.html.contains("404 Not Found"));
        assert!(p.html.contains("&#60;script&#62;") || p.html.contains("&lt;script&gt;"));
        assert!(!p.html.contains("<script>"));
    }

    #[tokio::test]
    async fn a_flood_of_page_requests_is_refused_beyond_the_queue() {
        use futures_util::FutureExt;
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::temp_sqlite(dir.path()).await;
        let (pages, task) = Pages::start(catalog);
        // The renderer has not run yet (one thread, no await): the queue fills up.
        for _ in 0..QUEUED_PAGES {
            assert!(pages
                .get(PageRequest::Home {
                    hidden: Default::default()
                })
                .now_or_never()
                .is_none());
        }
        let refused = pages
            .get(PageRequest::Home {
                hidden: Default::default(),
            })
            .now_or_never()
            .unwrap();
        assert_eq!(refused.status, 503);
        // Once the renderer runs, pages are served again.
        tokio::task::yield_now().await;
        let page = pages
            .get(PageRequest::Home {
                hidden: Default::default(),
            })
            .await;
        assert_eq!(page.status, 200);
        task.abort();
    }

    #[test]
    fn page_links_keep_the_search() {
        let plain = Filter {
            search: "",
            unsigned: false,
        };
        assert_eq!(page_href(&plain, 2), "?page=2");
        let searched = Filter {
            search: "a b&c",
            unsigned: true,
        };
        assert_eq!(page_href(&searched, 3), "?q=a%20b%26c&unsigned=1&page=3");
    }
}
