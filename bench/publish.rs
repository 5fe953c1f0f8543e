//! Publish benchmark: Cairn vs createrepo_c on the same generated packages.
//!
//! Generates N small valid RPMs (default 10,000; `CAIRN_BENCH_PACKAGES` overrides),
//! imports them into a fresh SQLite installation, then times on the same machine in one
//! run:
//! - `createrepo_c --no-database` (cold) and `createrepo_c --update --no-database` on the
//!   unchanged directory;
//! - Cairn's full publish of the repository from the catalog (fragments → repodata,
//!   compressed on all cores, written to the pool, recorded in the catalog);
//! - Cairn's snapshot create of the unchanged set (reuses the existing publication).
//!
//! Run with `cargo bench --bench publish`. Prints a table and the ratios.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cairn::app::publish::Format;
use cairn::store::catalog::Catalog;
use cairn::store::datadir::DataDir;
use cairn::store::pool::Pool;

fn time_cmd(args: &[&str], dir: &Path) -> f64 {
    let t = Instant::now();
    let out = Command::new(args[0])
        .args(&args[1..])
        .arg(dir)
        .output()
        .expect("command runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

/// The best of 3 full publishes (rendered, never reused) of the repository's content.
async fn full_publish(catalog: &Catalog, pool: &Pool, repo_id: i64, format: &Format) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let items = catalog.repo_placed(repo_id).await.unwrap();
        let p = cairn::app::publish::publish_set(catalog, pool, items, format, &[], true)
            .await
            .unwrap();
        assert!(p.rendered);
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// A signer with a fresh RSA 3072 key made by gpg in `dir`.
fn test_signer(dir: &Path) -> cairn::app::signing::Signer {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .expect("gpg runs");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    gpg(&[
        "--quick-gen-key",
        "Bench <bench@example.org>",
        "rsa3072",
        "sign",
        "never",
    ]);
    let key = dir.join("bench.sec.asc");
    gpg(&[
        "--output",
        key.to_str().unwrap(),
        "--armor",
        "--export-secret-keys",
        "bench@example.org",
    ]);
    let config: cairn::app::config::SigningConfig =
        toml::from_str(&format!("key = \"{}\"", key.display())).unwrap();
    cairn::app::signing::Signer::load(&config).unwrap()
}

fn best_of(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..n).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let n: usize = std::env::var("CAIRN_BENCH_PACKAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let rpms = tmp.path().join("rpms");
    let t = Instant::now();
    cairn::formats::samples::generate(&rpms, n).unwrap();
    eprintln!(
        "generated {n} packages in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // createrepo_c: cold, then --update on the unchanged directory.
    let cr_cold = best_of(3, || {
        let _ = std::fs::remove_dir_all(rpms.join("repodata"));
        time_cmd(&["createrepo_c", "--no-database", "--quiet"], &rpms)
    });
    let cr_update = best_of(3, || {
        time_cmd(
            &["createrepo_c", "--update", "--no-database", "--quiet"],
            &rpms,
        )
    });
    let _ = std::fs::remove_dir_all(rpms.join("repodata"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (import_s, full, signed, reuse) = rt.block_on(async {
        let data = DataDir::open(tmp.path().join("data")).unwrap();
        let pool = Pool::open(data.pool_dir()).unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            data.root().join("catalog.db").display()
        );
        let catalog = Catalog::connect(&url).await.unwrap();
        catalog.migrate().await.unwrap();
        let t = Instant::now();
        let report = cairn::app::import::import(
            &catalog,
            &pool,
            &data,
            &cairn::app::import::Into {
                repo: "bench",
                format: &Format::default(),
                trust: &cairn::app::import::Trust::off(),
            },
            std::slice::from_ref(&rpms),
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(report.added.len(), n);
        let import_s = t.elapsed().as_secs_f64();
        let repo_id = catalog.ensure_repo("bench").await.unwrap();
        let full = full_publish(&catalog, &pool, repo_id, &Format::default()).await;
        // The same full publish, signing repomd.xml with an RSA 3072 key made by gpg.
        let signed_format = Format::new(
            cairn::formats::repodata::Compression::Gzip,
            Some(std::sync::Arc::new(test_signer(tmp.path()))),
        );
        let signed = full_publish(&catalog, &pool, repo_id, &signed_format).await;
        // Snapshots are made under the repository's write lock (the import took and
        // released it).
        let lock = data.lock_repo("bench").unwrap();
        let mut reuse = f64::INFINITY;
        for i in 0..3 {
            let t = Instant::now();
            let (_, p) = cairn::app::publish::create_snapshot(
                &catalog,
                &pool,
                &data,
                &lock,
                &format!("s{i}"),
                &Format::default(),
            )
            .await
            .unwrap();
            assert!(!p.rendered);
            reuse = reuse.min(t.elapsed().as_secs_f64());
        }
        (import_s, full, signed, reuse)
    });

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("publish benchmark: {n} packages, {cores} cores (best of 3)");
    println!("{:<52} {:>9}", "operation", "seconds");
    println!(
        "{:<52} {:>9.3}",
        "createrepo_c --no-database (cold)", cr_cold
    );
    println!(
        "{:<52} {:>9.3}",
        "createrepo_c --update --no-database (unchanged)", cr_update
    );
    println!(
        "{:<52} {:>9.3}",
        "cairn import (hash, pool, parse, catalog, publish)", import_s
    );
    println!(
        "{:<52} {:>9.3}",
        "cairn full publish from the catalog", full
    );
    println!(
        "{:<52} {:>9.3}",
        "cairn full publish, signed (RSA 3072)", signed
    );
    println!(
        "{:<52} {:>9.3}",
        "cairn snapshot create, unchanged set (reuse)", reuse
    );
    println!(
        "ratio: full publish vs createrepo_c --update: {:.1}x faster",
        cr_update / full
    );
    println!(
        "ratio: full publish vs createrepo_c cold:     {:.1}x faster",
        cr_cold / full
    );
    println!(
        "ratio: import vs createrepo_c cold:            {:.2}x",
        cr_cold / import_s
    );
    println!(
        "ratio: signed full publish vs unsigned:        {:.3}x the time",
        signed / full
    );
    println!(
        "ratio: unchanged snapshot vs createrepo_c --update: {:.0}x faster",
        cr_update / reuse
    );
}
