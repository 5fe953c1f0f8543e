//! `cairn demo`: a self-contained tour that works offline. It builds a few sample
//! packages with dependencies between them, imports them into a fresh data dir,
//! snapshots the repository, serves it and prints the `dnf` command to try.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::actor;
use crate::app::config::{Config, RepoConfig};
use crate::app::context::App;

/// Runs the demo until Ctrl-C.
pub async fn run(listen: SocketAddr, dir: Option<PathBuf>) -> Result<ExitCode> {
    let (_tmp, root) = match dir {
        Some(d) => (None, d),
        None => {
            let t = tempfile::Builder::new()
                .prefix("cairn-demo-")
                .tempdir()
                .context("creating a temporary directory")?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let rpms = root.join("rpms");
    let files = crate::formats::samples::demo_packages(&rpms)?;
    out!(
        "built {} sample packages in {}",
        files.len(),
        rpms.display()
    );

    let mut config = Config::default();
    config.server.data_dir = root.join("data");
    config.server.listen = listen;
    config
        .repos
        .push(toml::from_str::<RepoConfig>("id = \"demo\"").context("the demo repo definition")?);
    let app = App::open(config).await?;
    let report = app
        .import(
            &actor(),
            "demo",
            std::slice::from_ref(&rpms),
            None,
            Default::default(),
        )
        .await?;
    out!("imported {} packages into repo 'demo'", report.added.len());
    let (snap, _) = app
        .snapshot_repo(&actor(), "demo", Some("first".into()))
        .await?;
    out!(
        "created snapshot demo/{} ({} packages)",
        snap.name,
        snap.package_count
    );
    let shutdown = super::Shutdown::install();
    let server = crate::http::Server::for_app(&app, listen).await?;
    let base = format!("http://{}/repos/demo/first/", server.addr);
    out!("\nServing on http://{}/  (Ctrl-C to stop)\n", server.addr);
    out!("Browse:   {base}");
    out!("Install with dnf (as root, into a scratch root):\n");
    out!(
        "  dnf --installroot=/tmp/cairn-demo-root --releasever=1 --setopt=reposdir=/dev/null \\\n      \
         --setopt=cachedir=/tmp/cairn-demo-root-cache --repofrompath=demo,{base} \\\n      \
         --repo=demo --nogpgcheck -y install demo-app\n"
    );
    out!(
        "Or give a machine the repository:\n\n  \
         curl -o /etc/yum.repos.d/cairn-demo-first.repo http://{}/repos/demo/first.repo\n",
        server.addr
    );
    shutdown.wait().await;
    tokio::task::spawn_blocking(move || server.stop()).await?;
    Ok(ExitCode::SUCCESS)
}
