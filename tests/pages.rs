//! The browsable web index: page handlers called in process on both catalog backends,
//! and the pages loaded over HTTP in headless Chromium (what a person sees, with a
//! screenshot kept under `target/test-output/`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn::http::pages::{render, PageRequest, PAGE_SIZE};
use cairn::store::catalog::{Catalog, Space};
use common::*;

/// An installation with a local repository of tricky, demo and generated packages (two
/// snapshots and an alias, an upgrade between them), a mirror, and a view over both.
struct Site {
    env: Env,
    _upstream: Upstream,
    _up_dir: tempfile::TempDir,
    tricky: PathBuf,
}

fn site(backend: &Backend) -> Site {
    let up_dir = tempfile::tempdir().unwrap();
    let up = up_dir.path().join("repo");
    cairn::formats::samples::demo_packages(&up).unwrap();
    createrepo_dir(&up, false);
    let upstream = Upstream::start(up_dir.path());
    let env = Env::with_repo_toml(
        backend,
        &format!(
            "[[repo]]\nid = \"local\"\n\
             [[repo]]\nid = \"mirror\"\nfeed = \"{}\"\n\
             [[view]]\nname = \"stack\"\nrepos = [\"local\", \"mirror\"]\n",
            upstream.url("/repo/")
        ),
    );
    let dir = env.dir.path().join("pkgs");
    let tricky = cairn::formats::samples::tricky_packages(&dir)
        .unwrap()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("tricky-escapes"))
        .unwrap();
    cairn::formats::samples::generate(&dir, PAGE_SIZE as usize + 30).unwrap();
    env.ok(&["import", "local", dir.to_str().unwrap()]);
    env.ok(&["snapshot", "create", "local", "--name", "one"]);
    // An upgrade and an addition for the diff.
    let more = env.dir.path().join("more");
    cairn::formats::samples::demo_packages(&more).unwrap();
    env.ok(&["import", "local", more.to_str().unwrap()]);
    env.ok(&["snapshot", "create", "local", "--name", "two"]);
    env.ok(&["publish", "local", "one", "--as", "prod"]);
    env.ok(&["repo", "sync", "mirror"]);
    env.ok(&["view", "snapshot", "stack", "--name", "v1"]);
    Site {
        env,
        _upstream: upstream,
        _up_dir: up_dir,
        tricky,
    }
}

fn tree(owner: &str, tree: &str, search: &str, page: i64) -> PageRequest {
    PageRequest::Tree {
        space: Space::Repos,
        owner: owner.into(),
        tree: tree.into(),
        search: search.into(),
        unsigned: false,
        page,
        base: "http://mirror.example:8080".into(),
    }
}

#[test]
fn page_handlers_render_what_the_catalog_holds_escaped() {
    for backend in backends() {
        let s = site(&backend);
        let name = backend.name();
        let facts = file_facts(&s.tricky);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let catalog = Catalog::connect(&s.env.database_url()).await.unwrap();

            // Overview: both repositories, the view, sync status, aliases.
            let home = render(&catalog, &PageRequest::Home { hidden: Default::default() }).await;
            assert_eq!(home.status, 200);
            for needle in [
                "href=\"/repos/local/\"",
                "href=\"/repos/mirror/\"",
                "href=\"/views/stack/\"",
                "<span class=\"status ok\">ok</span>",
                "href=\"/repos/local/prod/\">prod</a> → one",
            ] {
                assert!(home.html.contains(needle), "{name}: {needle} in\n{}", home.html);
            }

            // The overview's sizes follow content changes (they are remembered between
            // requests by content version).
            let local_count = |html: &str| -> i64 {
                let at = html.find("href=\"/repos/local/latest/\"").unwrap();
                let cell = &html[at..];
                let start = cell.find("<td class=\"num\">").unwrap() + "<td class=\"num\">".len();
                cell[start..start + cell[start..].find('<').unwrap()]
                    .parse()
                    .unwrap()
            };
            let before = local_count(&home.html);
            let again = render(&catalog, &PageRequest::Home { hidden: Default::default() }).await;
            assert_eq!(local_count(&again.html), before);
            let extra = s.env.dir.path().join("extra");
            // One more generated package than the site has: only the last is new.
            let extra_files = cairn::formats::samples::generate(&extra, PAGE_SIZE as usize + 31).unwrap();
            for f in &extra_files[..extra_files.len() - 1] {
                std::fs::remove_file(f).unwrap();
            }
            s.env.ok(&["import", "local", extra.to_str().unwrap()]);
            let after = render(&catalog, &PageRequest::Home { hidden: Default::default() }).await;
            assert_eq!(local_count(&after.html), before + 1, "{name}");

            // A repository: snapshots newest first with their aliases; a diff.
            let owner = render(
                &catalog,
                &PageRequest::Owner {
                    space: Space::Repos,
                    owner: "local".into(),
                    diff: Some(("one".into(), "two".into())),
                },
            )
            .await;
            assert_eq!(owner.status, 200);
            let two = owner.html.find("href=\"/repos/local/two/\"").unwrap();
            let one = owner.html.find("href=\"/repos/local/one/\"").unwrap();
            assert!(two < one, "{name}: newest first");
            assert!(owner.html.contains("Changes from one to two"));
            assert!(owner.html.contains("Added (4)"), "{name}: {}", owner.html);
            assert!(owner.html.contains("<td>demo-app</td><td>noarch</td><td>1:2.0.0-1</td>"));
            assert!(owner.html.contains("<form class=\"compare\""));
            let mirror = render(
                &catalog,
                &PageRequest::Owner {
                    space: Space::Repos,
                    owner: "mirror".into(),
                    diff: None,
                },
            )
            .await;
            assert!(mirror.html.contains("Sync history"));
            assert!(mirror.html.contains("<span class=\"status ok\">ok</span>"));

            // A tree: paginated, searchable, escaped, with the dnf instructions.
            let page1 = render(&catalog, &tree("local", "one", "", 1)).await;
            assert_eq!(page1.status, 200);
            let rows = |html: &str| html.matches("<a href=\"/packages/").count() as i64;
            assert_eq!(rows(&page1.html), PAGE_SIZE, "{name}");
            assert!(page1.html.contains("rel=\"next\" href=\"?page=2\""));
            assert!(page1.html.contains(
                "curl -o /etc/yum.repos.d/cairn-local-one.repo http://mirror.example:8080/repos/local/one.repo"
            ));
            let page2 = render(&catalog, &tree("local", "one", "", 2)).await;
            let on_one = rows(&page1.html) + rows(&page2.html);
            assert!(page2.html.contains("rel=\"prev\" href=\"?page=1\""));
            assert!(!page2.html.contains("rel=\"next\""));
            let found = render(&catalog, &tree("local", "one", "ESCAPES", 1)).await;
            assert_eq!(rows(&found.html), 1, "{name}: case-insensitive search");
            assert!(found.html.contains("Tools for &#60;xml&#62; &#38; &#34;quoted&#34;")
                || found.html.contains("Tools for &lt;xml&gt; &amp; &quot;quoted&quot;"),
                "{name}: {}", found.html);
            assert!(!found.html.contains("<xml>"));
            let none = render(&catalog, &tree("local", "one", "100%_", 1)).await;
            assert_eq!(rows(&none.html), 0, "{name}: LIKE wildcards are literal");
            let alias = render(&catalog, &tree("local", "prod", "", 2)).await;
            assert!(alias.html.contains("alias of snapshot one"));
            assert_eq!(rows(&alias.html), rows(&page2.html));
            let latest = render(&catalog, &tree("local", "latest", "", 1)).await;
            assert!(latest.html.contains("latest: the current content"));
            assert!(on_one > PAGE_SIZE);

            // The package page: everything from the header, escaped.
            let pkg = render(
                &catalog,
                &PageRequest::Package {
                    sha256: facts.sha256.clone(),
                    hidden: Default::default(),
                },
            )
            .await;
            assert_eq!(pkg.status, 200);
            for needle in [
                "tricky-escapes-7:1.2.3-4.fc40.x86_64",
                "Line one with &#60;tags&#62; &#38; ampersands.",
                "Example &#38; Sons",
                "bash &#62;= 4.0",
                "glibc &#60; 3:2.40-1",
                "requires (",
                "provides (",
                "/usr/bin/tricky",
                "href=\"/repos/local/one/\"",
                "Download tricky-escapes-1.2.3-4.fc40.x86_64.rpm",
            ] {
                let alt = needle
                    .replace("&#60;", "&lt;")
                    .replace("&#62;", "&gt;")
                    .replace("&#38;", "&amp;");
                assert!(
                    pkg.html.contains(needle) || pkg.html.contains(&alt),
                    "{name}: {needle} in\n{}",
                    pkg.html
                );
            }
            assert!(!pkg.html.contains("<tags>"));

            // A repository or view that needs a token is on no public page: not on the
            // home page; a package is shown with its public places only, and one that
            // only such owners hold is not found.
            let only_local: cairn::http::pages::Hidden =
                std::sync::Arc::new([("repos", "local".to_string())].into());
            let pkg = render(
                &catalog,
                &PageRequest::Package {
                    sha256: facts.sha256.clone(),
                    hidden: only_local,
                },
            )
            .await;
            assert_eq!(pkg.status, 200, "{name}");
            assert!(!pkg.html.contains("href=\"/repos/local/"), "{name}: {}", pkg.html);
            assert!(pkg.html.contains("href=\"/views/stack/"), "{name}: {}", pkg.html);
            let hidden: cairn::http::pages::Hidden = std::sync::Arc::new(
                [
                    ("repos", "local".to_string()),
                    ("views", "stack".to_string()),
                ]
                .into(),
            );
            let home = render(
                &catalog,
                &PageRequest::Home {
                    hidden: hidden.clone(),
                },
            )
            .await;
            assert_eq!(home.status, 200);
            assert!(!home.html.contains("/repos/local/"), "{name}: {}", home.html);
            let pkg = render(
                &catalog,
                &PageRequest::Package {
                    sha256: facts.sha256.clone(),
                    hidden,
                },
            )
            .await;
            assert_eq!(pkg.status, 404, "{name}");
            assert!(!pkg.html.contains("tricky-escapes"), "{name}");

            // Errors are pages too.
            for req in [
                tree("local", "nope", "", 1),
                PageRequest::Package {
                    sha256: "0".repeat(64),
                    hidden: Default::default(),
                },
                PageRequest::Package {
                    sha256: "../etc".into(),
                    hidden: Default::default(),
                },
                PageRequest::Owner {
                    space: Space::Views,
                    owner: "nope".into(),
                    diff: None,
                },
            ] {
                let p = render(&catalog, &req).await;
                assert_eq!(p.status, 404, "{req:?}");
                assert!(p.html.contains("404 Not Found"));
            }
            catalog.close().await;
        });
    }
}

/// Where tests keep artefacts a person may want to look at.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `url` in headless Chromium: (the DOM after load, the screenshot's path).
fn chromium(url: &str, shot: &str) -> (String, PathBuf) {
    require_tool("chromium");
    let profile = tempfile::tempdir().unwrap();
    let png = output_dir().join(shot);
    let _ = std::fs::remove_file(&png);
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1200,1000",
    ];
    let run = |extra: &str| {
        Command::new("chromium")
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(extra)
            .arg(url)
            .output()
            .unwrap()
    };
    let dom = run("--dump-dom");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot_run = run(&format!("--screenshot={}", png.display()));
    assert!(shot_run.status.success());
    (String::from_utf8_lossy(&dom.stdout).into_owned(), png)
}

/// The text a person reads: the DOM without tags (entities decoded).
fn visible_text(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn pages_read_right_in_a_real_browser() {
    let backend = backends().remove(0);
    let s = site(&backend);
    let server = s.env.serve();
    let sha = file_facts(&s.tricky).sha256;

    let (dom, png) = chromium(&server.url("/"), "pages-home.png");
    let text = visible_text(&dom);
    for needle in [
        "Repositories",
        "local",
        "mirror",
        "Views",
        "stack",
        "prod → one",
    ] {
        assert!(text.contains(needle), "{needle} in: {text}");
    }
    assert!(std::fs::metadata(&png).unwrap().len() > 5_000);

    let (dom, png) = chromium(&server.url("/repos/local/one/?q=escapes"), "pages-tree.png");
    let text = visible_text(&dom);
    assert!(
        text.contains("Packages 1–1 of 1 matching “escapes”"),
        "{text}"
    );
    assert!(
        text.contains("Tools for <xml> & \"quoted\" 'apos'"),
        "{text}"
    );
    assert!(std::fs::metadata(&png).unwrap().len() > 5_000);

    let (dom, png) = chromium(
        &server.url(&format!("/packages/{sha}")),
        "pages-package.png",
    );
    let text = visible_text(&dom);
    for needle in [
        "tricky-escapes-7:1.2.3-4.fc40.x86_64",
        "Line one with <tags> & ampersands.",
        "Published in",
        "local / one",
    ] {
        assert!(text.contains(needle), "{needle} in: {text}");
    }
    assert!(std::fs::metadata(&png).unwrap().len() > 5_000);

    let (dom, _) = chromium(
        &server.url("/repos/local/?from=one&to=two"),
        "pages-diff.png",
    );
    let text = visible_text(&dom);
    assert!(text.contains("Changes from one to two"), "{text}");

    let (dom, _) = chromium(
        &server.url("/repos/local/one/Packages/"),
        "pages-listing.png",
    );
    assert!(visible_text(&dom).contains("/repos/local/one/Packages/"));

    let (dom, _) = chromium(&server.url("/repos/nope/x/"), "pages-404.png");
    assert!(visible_text(&dom).contains("404 Not Found"));

    // The stylesheet and the .repo file, over plain HTTP.
    let c = http();
    let css = c.get(server.url("/static/cairn.css")).send().unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let page = c.get(server.url("/repos/local/one/")).send().unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let repo = c
        .get(server.url("/repos/local/one.repo"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(repo.contains(&format!("baseurl={}", server.url("/repos/local/one/"))));
    assert!(repo.contains("metadata_expire=never"));
}

#[test]
fn the_served_repo_file_is_all_dnf_needs() {
    require_tool("dnf");
    let backend = backends().remove(0);
    let s = site(&backend);
    let server = s.env.serve();
    let repo = http()
        .get(server.url("/repos/local/two.repo"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    // As a user would: the file goes into a repos directory, nothing else is set.
    let dir = tempfile::tempdir().unwrap();
    let reposdir = dir.path().join("yum.repos.d");
    std::fs::create_dir_all(&reposdir).unwrap();
    std::fs::write(reposdir.join("cairn-local-two.repo"), repo).unwrap();
    let root = dir.path().join("root");
    let out = Command::new("dnf")
        .arg(format!("--installroot={}", root.display()))
        .arg("--releasever=1")
        .arg(format!("--setopt=reposdir={}", reposdir.display()))
        .arg(format!(
            "--setopt=cachedir={}",
            dir.path().join("cache").display()
        ))
        // Host plugins (a local-cache repository, say) are not part of this.
        .arg("--noplugins")
        .args(["-y", "install", "demo-app"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let q = Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args(["-q", "demo-app", "demo-lib"])
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stdout));
}
