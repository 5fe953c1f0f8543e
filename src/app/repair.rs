//! `cairn db verify --repair`: verify, quarantine what is corrupt, restore what can be
//! restored (from files given, or by syncing the repositories that hold it), verify
//! again.

use std::sync::Arc;

use crate::app::audit::Change;
use crate::app::context::{App, AppError, RepairReport};
use crate::app::progress::Progress;
use crate::app::verify;
use crate::domain::actor::Actor;

impl App {
    /// Verifies, then repairs what it found: corrupt blobs are quarantined; missing
    /// and quarantined ones are restored from the files under `from` (any whose
    /// sha256 matches) and, for packages a mirrored repository holds, fetched again by
    /// a sync of it (verified as every download is); then verifies again.
    pub async fn repair(
        &self,
        by: &Actor,
        from: Option<&std::path::Path>,
        progress: &Arc<Progress>,
    ) -> Result<RepairReport, AppError> {
        let change = Change::new("repair", "").with(serde_json::json!({ "from": from }));
        self.audited(by, change, self.repair_unaudited(by, from, progress))
            .await
    }

    async fn repair_unaudited(
        &self,
        by: &Actor,
        from: Option<&std::path::Path>,
        progress: &Arc<Progress>,
    ) -> Result<RepairReport, AppError> {
        let before = self.verify(progress).await?;
        let mut report = RepairReport::default();
        for (sha, _) in &before.corrupt {
            let to = self.pool.quarantine(sha)?;
            tracing::warn!("quarantined corrupt blob {sha} as {}", to.display());
            report.quarantined.push((sha.clone(), to));
        }
        let mut bad: std::collections::HashSet<String> = before
            .missing
            .iter()
            .cloned()
            .chain(before.corrupt.iter().map(|(sha, _)| sha.clone()))
            .collect();
        if let Some(dir) = from.filter(|_| !bad.is_empty()) {
            let _lease = self.pool_lease().await?;
            let mut staged = Vec::new();
            for entry in walkdir::WalkDir::new(dir)
                .follow_links(true)
                .into_iter()
                .flatten()
            {
                if !entry.file_type().is_file() {
                    continue;
                }
                let Ok(sha) = verify::sha256_of(entry.path()) else {
                    continue;
                };
                if bad.contains(&sha) {
                    // Copied and hashed again: what lands is what was verified.
                    let s = self.pool.stage_file(entry.path())?;
                    if bad.remove(&s.sha256) {
                        report.restored.push(s.sha256.clone());
                        staged.push(s);
                    }
                }
            }
            self.pool.commit_async(staged).await?;
        }
        let left: Vec<&str> = bad.iter().map(String::as_str).collect();
        for repo in self.catalog.repos_holding(&left).await? {
            let Some(config) = self.config.repo(&repo).filter(|r| r.is_mirrored()) else {
                continue;
            };
            self.sync(by, config, &Progress::default()).await?;
            report.synced.push(repo);
        }
        self.published();
        report.after = self.verify(progress).await?;
        Ok(report)
    }
}
