//! Lifecycle benchmark on a generated 100,000-package catalog (SQLite): snapshot
//! create, view snapshot, and diff of two 100k-package snapshots.
//!
//! The catalog is filled with synthetic package rows (no RPM files: these operations
//! never read packages). Run with `cargo bench --bench lifecycle`;
//! `CAIRN_BENCH_PACKAGES` changes the size.

use std::time::Instant;

use cairn::app::config::{Config, ViewConfig};
use cairn::app::publish::Format;
use cairn::domain::package::{DepKind, Dependency, FileKind, Package, PackageFile};
use cairn::formats::repodata::xml;
use cairn::store::catalog::Catalog;
use cairn::store::datadir::DataDir;
use cairn::store::pool::Pool;

fn synthetic(i: usize, version: &str) -> Package {
    let name = format!("pkg-{i:06}");
    Package {
        pkgid: format!(
            "{:064x}",
            (i as u128) * 1_000_003
                + version.len() as u128 * 7
                + version.as_bytes()[version.len() - 1] as u128
        ),
        name: name.clone(),
        arch: "x86_64".into(),
        epoch: "0".into(),
        version: version.into(),
        release: "1.el9".into(),
        summary: "A synthetic package".into(),
        description: "Synthetic package for lifecycle benchmarks.".into(),
        packager: "Bench".into(),
        url: "https://example.invalid".into(),
        time_file: 1_700_000_000 + i as i64,
        time_build: 1_700_000_000,
        size_package: 4096,
        size_installed: 8192,
        size_archive: 8192,
        license: "MIT".into(),
        vendor: "Bench".into(),
        group: "Unspecified".into(),
        buildhost: "bench".into(),
        sourcerpm: format!("{name}-{version}-1.el9.src.rpm"),
        header_start: 4504,
        header_end: 6000,
        deps: vec![Dependency {
            kind: DepKind::Requires,
            name: format!("pkg-{:06}", (i + 1) % 100_000),
            flags: None,
            epoch: None,
            ver: None,
            rel: None,
            pre: false,
        }],
        files: vec![PackageFile {
            path: format!("/usr/share/{name}/data"),
            kind: FileKind::File,
        }],
        changelogs: Vec::new(),
    }
}

fn main() {
    let n: usize = std::env::var("CAIRN_BENCH_PACKAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // CAIRN_LOG=cairn=debug shows the phases of each operation.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let data = DataDir::open(tmp.path().join("data")).unwrap();
        let lock = data.lock_repo("big").unwrap();
        let pool = Pool::open(data.pool_dir()).unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            data.root().join("catalog.db").display()
        );
        let catalog = Catalog::connect(&url).await.unwrap();
        catalog.migrate().await.unwrap();
        let repo_id = catalog.ensure_repo("big").await.unwrap();

        // Generation: version 1.0 for all, then 1% upgraded to 1.10.
        let t = Instant::now();
        let fill = |version_of: &dyn Fn(usize) -> &'static str| {
            (0..n)
                .map(|i| {
                    let p = synthetic(i, version_of(i));
                    let f = cairn::formats::repodata::packed::pack(&xml::render(&p)).unwrap();
                    (p, f)
                })
                .collect::<Vec<_>>()
        };
        let v1 = fill(&|_| "1.0");
        let ids = catalog.insert_packages(&v1).await.unwrap();
        let place = |pkgs: &[(Package, cairn::formats::repodata::packed::Packed)],
                     ids: &std::collections::HashMap<String, i64>| {
            pkgs.iter()
                .map(|(p, _)| (p.location(), ids[&p.pkgid]))
                .collect::<Vec<_>>()
        };
        let placements = place(&v1, &ids);
        let published =
            cairn::app::publish::publish_repo_content(&catalog, &pool, repo_id, &Format::default())
                .await
                .unwrap();
        catalog
            .place_in_repo(&lock, repo_id, &placements, published.publication_id)
            .await
            .unwrap();
        let latest =
            cairn::app::publish::publish_repo_content(&catalog, &pool, repo_id, &Format::default())
                .await
                .unwrap();
        catalog
            .set_repo_latest(repo_id, latest.publication_id, latest.content_version)
            .await
            .unwrap();
        eprintln!(
            "generated and published {n} packages in {:.1} s",
            t.elapsed().as_secs_f64()
        );

        let t = Instant::now();
        cairn::app::publish::create_snapshot(
            &catalog,
            &pool,
            &data,
            &lock,
            "one",
            &Format::default(),
        )
        .await
        .unwrap();
        let snapshot_s = t.elapsed().as_secs_f64();

        // 1% upgraded, then a second snapshot.
        let v2: Vec<_> = fill(&|i| if i % 100 == 0 { "1.10" } else { "1.0" })
            .into_iter()
            .filter(|(p, _)| p.version == "1.10")
            .collect();
        let ids2 = catalog.insert_packages(&v2).await.unwrap();
        let mut content =
            cairn::app::publish::publish_repo_content(&catalog, &pool, repo_id, &Format::default())
                .await
                .unwrap();
        let upgrades = place(&v2, &ids2);
        let t = Instant::now();
        catalog
            .place_in_repo(&lock, repo_id, &upgrades, content.publication_id)
            .await
            .unwrap();
        let place_s = t.elapsed().as_secs_f64();
        content =
            cairn::app::publish::publish_repo_content(&catalog, &pool, repo_id, &Format::default())
                .await
                .unwrap();
        catalog
            .set_repo_latest(repo_id, content.publication_id, content.content_version)
            .await
            .unwrap();
        cairn::app::publish::create_snapshot(
            &catalog,
            &pool,
            &data,
            &lock,
            "two",
            &Format::default(),
        )
        .await
        .unwrap();

        let t = Instant::now();
        let a = catalog.snapshot("big", "one").await.unwrap();
        let b = catalog.snapshot("big", "two").await.unwrap();
        let (left, right) = catalog.snapshot_diff_candidates(a.id, b.id).await.unwrap();
        let d = cairn::formats::diff::diff(&left, &right);
        let diff_s = t.elapsed().as_secs_f64();
        assert_eq!(d.upgraded.len(), n / 100);

        // A view snapshot takes its members' write locks itself.
        drop(lock);
        let mut config = Config::default();
        config.repos.push(toml::from_str("id = \"big\"").unwrap());
        let view: ViewConfig = toml::from_str("name = \"bigview\"\nrepos = [\"big\"]").unwrap();
        config.views.push(view.clone());
        // The view's own metadata is rendered once by its latest; the snapshot reuses it.
        let lease = data.lease_pool().unwrap();
        cairn::app::view::publish_latest(&catalog, &pool, &lease, &view)
            .await
            .unwrap();
        let t = Instant::now();
        let row = cairn::app::view::snapshot(&catalog, &pool, &data, &config, &view, "v1")
            .await
            .unwrap();
        let view_s = t.elapsed().as_secs_f64();
        assert_eq!(row.package_count as usize, n + n / 100);

        // The member moves on without the view's latest being recomposed (another 1%
        // upgraded): the next view snapshot composes the view from the member rows.
        let v3: Vec<_> = fill(&|i| if i % 100 == 50 { "1.11" } else { "1.0" })
            .into_iter()
            .filter(|(p, _)| p.version == "1.11")
            .collect();
        let ids3 = catalog.insert_packages(&v3).await.unwrap();
        let lock = data.lock_repo("big").unwrap();
        catalog
            .place_in_repo(&lock, repo_id, &place(&v3, &ids3), content.publication_id)
            .await
            .unwrap();
        let moved =
            cairn::app::publish::publish_repo_content(&catalog, &pool, repo_id, &Format::default())
                .await
                .unwrap();
        catalog
            .set_repo_latest(repo_id, moved.publication_id, moved.content_version)
            .await
            .unwrap();
        drop(lock);
        let t = Instant::now();
        let row = cairn::app::view::snapshot(&catalog, &pool, &data, &config, &view, "v2")
            .await
            .unwrap();
        let composed_s = t.elapsed().as_secs_f64();
        assert_eq!(row.package_count as usize, n + 2 * (n / 100));

        // Web pages of the 100k snapshot: the first and a deep page of its package
        // table, a search, and the repository page.
        let page = |tree: &str, search: &str, page: i64| cairn::http::pages::PageRequest::Tree {
            space: cairn::store::catalog::Space::Repos,
            owner: "big".into(),
            tree: tree.into(),
            search: search.into(),
            unsigned: false,
            page,
            base: "http://bench".into(),
        };
        let mut page_ms = Vec::new();
        for (label, req) in [
            ("page 1 of the package table", page("one", "", 1)),
            ("page 900 of the package table", page("one", "", 900)),
            ("search \"pkg-0999\"", page("one", "pkg-0999", 1)),
            (
                "repository page",
                cairn::http::pages::PageRequest::Owner {
                    space: cairn::store::catalog::Space::Repos,
                    owner: "big".into(),
                    diff: None,
                },
            ),
            (
                "overview page (sizes summed)",
                cairn::http::pages::PageRequest::Home {
                    hidden: Default::default(),
                },
            ),
            (
                "overview page (nothing changed since)",
                cairn::http::pages::PageRequest::Home {
                    hidden: Default::default(),
                },
            ),
        ] {
            // The first render after the writes above (cold caches), then the median
            // of five more.
            let mut runs = Vec::new();
            for _ in 0..6 {
                let t = Instant::now();
                let rendered = cairn::http::pages::render(&catalog, &req).await;
                assert_eq!(rendered.status, 200, "{label}");
                runs.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let first = runs.remove(0);
            runs.sort_by(f64::total_cmp);
            page_ms.push((label, first, runs[runs.len() / 2]));
        }

        println!("lifecycle benchmark: {n} packages (SQLite, generated catalog)");
        println!("{:<44} {:>9}", "operation", "seconds");
        println!(
            "{:<44} {:>9.3}",
            "snapshot create (unchanged metadata reused)", snapshot_s
        );
        println!(
            "{:<44} {:>9.3}",
            "view snapshot (latest current: copied)", view_s
        );
        println!(
            "{:<44} {:>9.3}",
            "view snapshot (members moved, view composed)", composed_s
        );
        println!(
            "{:<44} {:>9.3}",
            "diff of two snapshots (1% upgraded)", diff_s
        );
        println!(
            "{:<44} {:>9.3}",
            "place 1% upgrades into the 100k latest", place_s
        );
        println!(
            "{:<44} {:>9} {:>9}",
            "web page (render + queries)", "first", "warm"
        );
        for (label, first, warm) in page_ms {
            println!(
                "{:<44} {:>6.1} ms {:>6.1} ms",
                format!("web: {label}"),
                first,
                warm
            );
        }
    });
}
