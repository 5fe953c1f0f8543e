//! Routing: which request paths are safe to interpret, what each asks for
//! ([`Route`], with its metrics class), and query parameters.

use crate::app::metrics::RouteClass;
use crate::store::catalog::Space;

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/static/cairn.css";

/// Is the raw request path safe to interpret?
pub fn path_is_safe(raw: &str) -> bool {
    if !raw.starts_with('/') || raw.contains('\\') || raw.contains('\0') {
        return false;
    }
    let lower = raw.to_ascii_lowercase();
    // Encoded dot, slash, backslash, NUL, or percent: never needed by our URLs.
    if ["%2e", "%2f", "%5c", "%00", "%25"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return false;
    }
    !raw.split('/').any(|seg| seg == "." || seg == "..")
}

/// A request's query parameters (`application/x-www-form-urlencoded`).
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: &str) -> Query {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            raw.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(kv), String::new()),
                })
                .collect(),
        )
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a request path asks for: the one place that maps URLs to handlers and to the
/// route class the metrics count them under. Purely syntactic: whether the owner, tree
/// or file exists is the handler's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'p> {
    /// `/metrics`
    Metrics,
    /// `/healthz`
    Healthz,
    /// The stylesheet.
    Stylesheet,
    /// `/`, `/repos/`, `/views/`
    Home,
    /// `/audit`: the audit log (needs an admin token).
    Audit,
    /// `/packages/SHA256`
    Package(&'p str),
    /// `/keys/NAME`: the public keys that sign what Cairn publishes.
    Keys(&'p str),
    /// `/repos/OWNER/` (with `?from=&to=`: a comparison)
    Owner(Space, &'p str),
    /// `/repos/OWNER/TREE.repo`, or `/repos/OWNER/TREE` (redirected to the slash form).
    Short(Space, &'p str, &'p str),
    /// `/repos/OWNER/TREE/`: the tree's package page.
    Tree(Space, &'p str, &'p str),
    /// `/repos/OWNER/TREE/DIR/`: a directory listing.
    Listing(Space, &'p str, &'p str, &'p str),
    /// `/repos/OWNER/TREE/FILE`
    File(Space, &'p str, &'p str, &'p str),
    /// Anything else.
    Unknown,
}

/// The URL prefix of a namespace.
pub fn prefix(space: Space) -> &'static str {
    match space {
        Space::Repos => "repos",
        Space::Views => "views",
    }
}

impl<'p> Route<'p> {
    /// Resolves a decoded, safe request path.
    pub fn of(path: &'p str) -> Route<'p> {
        match path {
            "/metrics" => return Route::Metrics,
            "/healthz" => return Route::Healthz,
            "/" => return Route::Home,
            "/audit" | "/audit/" => return Route::Audit,
            p if p == STYLESHEET_PATH => return Route::Stylesheet,
            _ => {}
        }
        if let Some(sha) = path.strip_prefix("/packages/") {
            return Route::Package(sha);
        }
        if let Some(name) = path.strip_prefix("/keys/") {
            return Route::Keys(name);
        }
        let segs: Vec<&str> = path.trim_start_matches('/').splitn(4, '/').collect();
        let space = match segs.first() {
            Some(&"repos") => Space::Repos,
            Some(&"views") => Space::Views,
            _ => return Route::Unknown,
        };
        match segs[1..] {
            [] | [""] => Route::Home,
            [owner] | [owner, ""] => Route::Owner(space, owner),
            [owner, tree] => Route::Short(space, owner, tree),
            [owner, tree, ""] => Route::Tree(space, owner, tree),
            [owner, tree, rest] if rest.ends_with('/') => Route::Listing(space, owner, tree, rest),
            [owner, tree, rest] => Route::File(space, owner, tree, rest),
            _ => Route::Unknown,
        }
    }

    /// Does this request name a tree or something in it (what a just-published
    /// change can make appear)?
    pub fn in_trees(&self) -> bool {
        matches!(
            self,
            Route::Short(..) | Route::Tree(..) | Route::Listing(..) | Route::File(..)
        )
    }

    /// The repository or view the request is about, if any (its page, a tree, a file
    /// in a tree, a `.repo` file).
    pub fn owner(&self) -> Option<(Space, &'p str)> {
        match *self {
            Route::Owner(space, owner)
            | Route::Short(space, owner, _)
            | Route::Tree(space, owner, _)
            | Route::Listing(space, owner, _, _)
            | Route::File(space, owner, _, _) => Some((space, owner)),
            _ => None,
        }
    }

    /// Is it a file that names the tree's other files (`repomd.xml`, `.treeinfo`)?
    pub fn names_the_tree(&self) -> bool {
        matches!(self, Route::File(_, _, _, path)
            if path.ends_with("repodata/repomd.xml") || path.ends_with(".treeinfo"))
    }

    /// The class the metrics count this request under.
    pub fn class(&self) -> RouteClass {
        match self {
            Route::Metrics | Route::Healthz => RouteClass::Api,
            Route::File(_, _, _, path) if path.starts_with("repodata/") => RouteClass::Metadata,
            Route::Keys(_) => RouteClass::Metadata,
            Route::File(..) => RouteClass::Package,
            _ => RouteClass::Page,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{path_is_safe, Route};

    #[test]
    fn routes_and_their_classes() {
        use crate::app::metrics::RouteClass as C;
        use crate::store::catalog::Space::{Repos, Views};
        let cases = [
            ("/metrics", Route::Metrics, C::Api),
            ("/healthz", Route::Healthz, C::Api),
            ("/", Route::Home, C::Page),
            ("/audit", Route::Audit, C::Page),
            ("/repos/", Route::Home, C::Page),
            ("/static/cairn.css", Route::Stylesheet, C::Page),
            ("/packages/abc", Route::Package("abc"), C::Page),
            ("/keys/cairn.asc", Route::Keys("cairn.asc"), C::Metadata),
            ("/repos/a", Route::Owner(Repos, "a"), C::Page),
            ("/views/v/", Route::Owner(Views, "v"), C::Page),
            (
                "/repos/a/s.repo",
                Route::Short(Repos, "a", "s.repo"),
                C::Page,
            ),
            ("/repos/a/s/", Route::Tree(Repos, "a", "s"), C::Page),
            (
                "/repos/a/s/Packages/",
                Route::Listing(Repos, "a", "s", "Packages/"),
                C::Page,
            ),
            (
                "/repos/a/s/repodata/repomd.xml",
                Route::File(Repos, "a", "s", "repodata/repomd.xml"),
                C::Metadata,
            ),
            (
                "/views/v/s/Packages/x/x.rpm",
                Route::File(Views, "v", "s", "Packages/x/x.rpm"),
                C::Package,
            ),
            ("/other/x", Route::Unknown, C::Page),
        ];
        for (path, route, class) in cases {
            assert_eq!(Route::of(path), route, "{path}");
            assert_eq!(Route::of(path).class(), class, "{path}");
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(path_is_safe("/repos/a/b/Packages/x/y.rpm"));
        assert!(!path_is_safe("/repos/a/../../etc/passwd"));
        assert!(!path_is_safe("/repos/a/%2e%2e/x"));
        assert!(!path_is_safe("/repos/a/%2E%2E/x"));
        assert!(!path_is_safe("/repos/a/b%2fc"));
        assert!(!path_is_safe("/repos/a\\b"));
        assert!(!path_is_safe("/repos/a/%00"));
        assert!(!path_is_safe("/repos/./a"));
    }
}
