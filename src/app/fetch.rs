//! `cairn repo fetch` (and the API's fetch job): downloading what a tree of an
//! `on_demand` or `streamed` repository lacks, so it no longer depends on upstream.

use std::sync::Arc;

use crate::app::context::App;
use crate::app::sync::source;
use crate::app::sync::upstream;

/// What `cairn repo fetch` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FetchReport {
    /// Packages of the tree.
    pub packages: usize,
    /// Downloaded now, and their bytes.
    pub fetched: usize,
    pub bytes: u64,
    /// In the pool already.
    pub stored: usize,
}

/// Why `cairn repo fetch` did not complete a tree.
#[derive(Debug, thiserror::Error)]
#[error("{} of the tree's packages could not be fetched ({fetched} were):\n{}", .failures.len(), .failures.iter().map(|(p, e)| format!("  {p}: {e}")).collect::<Vec<_>>().join("\n"))]
pub struct FetchIncomplete {
    pub fetched: usize,
    /// (location, why) of each package not fetched.
    pub failures: Vec<(String, String)>,
}

impl App {
    /// Downloads every package tree `tree` (`latest`, a snapshot or an alias) of
    /// repository `repo` lists that the pool lacks, so the tree no longer depends on
    /// upstream (which may remove what a snapshot still names). Verified as a sync
    /// verifies; what is fetched is kept even when others fail.
    pub async fn fetch_tree(
        &self,
        by: &crate::domain::actor::Actor,
        repo: &str,
        tree: &str,
        progress: &Arc<crate::app::progress::Progress>,
    ) -> Result<FetchReport, crate::app::context::AppError> {
        use crate::app::context::AppError;
        let change = crate::app::audit::Change::new("repo.fetch", format!("repo:{repo}"))
            .with(serde_json::json!({ "tree": tree }));
        self.audited(by, change, async {
            let config = self
                .config
                .repo(repo)
                .ok_or_else(|| AppError::UndeclaredRepo(repo.to_string()))?;
            let spec = config
                .upstream()
                .ok_or_else(|| AppError::NoFeed(repo.to_string()))?;
            let space = crate::store::catalog::Space::Repos;
            let Some(t) = self.catalog.page_tree(space, repo, tree).await? else {
                return Err(crate::store::catalog::CatalogError::UnknownSnapshot {
                    repo: repo.to_string(),
                    snapshot: tree.to_string(),
                }
                .into());
            };
            let (_, rows) = self.catalog.page_packages(&t, "", false, 0, i64::MAX).await?;
            let mut report = FetchReport {
                packages: rows.len(),
                ..Default::default()
            };
            let mut failures = Vec::new();
            let mut wanted = Vec::new();
            for row in rows {
                if self.pool.contains(&row.sha256) {
                    report.stored += 1;
                    continue;
                }
                match self.catalog.remote_package(&row.sha256).await? {
                    Some(remote) => wanted.push((row.location, remote)),
                    None => failures.push((
                        row.location,
                        "not in the pool, and no upstream location is recorded for it (run `cairn db verify`)".to_string(),
                    )),
                }
            }
            progress
                .total
                .store(wanted.len(), std::sync::atomic::Ordering::Relaxed);
            progress.bytes_total.store(
                wanted.iter().map(|(_, r)| r.size as u64).sum(),
                std::sync::atomic::Ordering::Relaxed,
            );
            if !wanted.is_empty() {
                let (source, _) = source::resolve(config, &spec)
                    .await
                    .map_err(AppError::Sync)?;
                let stager = self.pool.stager()?;
                let downloads = crate::app::sync::download::Downloads {
                    source: &source,
                    pool: &self.pool,
                    stager: &stager,
                    received: &progress.bytes,
                };
                use futures_util::StreamExt;
                let results: Vec<_> = futures_util::stream::iter(wanted)
                    .map(|(location, remote)| {
                        let (d, source) = (&downloads, &source);
                        async move {
                            let url = upstream::join(source.base(), &remote.href);
                            let checksum = crate::formats::repodata::parse::Checksum {
                                algorithm: remote.algorithm.clone(),
                                hex: remote.checksum.clone(),
                            };
                            let key = format!("{}-{}-{}", config.id, remote.algorithm, remote.checksum);
                            let w = crate::app::sync::download::Wanted {
                                url: &url,
                                checksum: Some(&checksum),
                                size: remote.size as u64,
                                partial_key: &key,
                            };
                            let got = crate::app::sync::download::download(d, &w).await;
                            progress.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            (location, remote, got)
                        }
                    })
                    .buffer_unordered(config.downloads)
                    .take_until(progress.stop.requested())
                    .collect()
                    .await;
                let journal = tokio::task::spawn_blocking(move || stager.finish())
                    .await
                    .map_err(|e| AppError::Metadata(e.to_string()))??;
                let mut staged = Vec::new();
                let mut fetched = Vec::new();
                for (location, remote, got) in results {
                    match got {
                        Ok((blob, bytes)) if blob.sha256 == remote.sha256 => {
                            report.bytes += bytes;
                            fetched.push(remote.sha256.clone());
                            staged.push(blob);
                        }
                        Ok((blob, _)) => failures.push((
                            location,
                            format!("sha256 mismatch (published as {}, got {})", remote.sha256, blob.sha256),
                        )),
                        Err(e) => failures.push((location, e.to_string())),
                    }
                }
                self.pool.commit_async(staged).await?;
                journal.discard();
                for sha in &fetched {
                    self.catalog.mark_fetched(sha).await?;
                }
                report.fetched = fetched.len();
                if progress.stop.is_requested() {
                    failures.push((
                        String::new(),
                        "stopped on request: what was fetched is kept".into(),
                    ));
                }
            }
            if failures.is_empty() {
                Ok(report)
            } else {
                Err(AppError::Fetch(FetchIncomplete {
                    fetched: report.fetched,
                    failures,
                }))
            }
        })
        .await
    }
}
