//! Keeping the served index current: the watcher that reloads it when the data dir's
//! generation marker changes (a command in another process published), and
//! [`Freshness`], by which a worker that is about to answer 404 makes sure its index
//! is not behind.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::index::Index;
use super::ServeError;
use crate::store::catalog::Catalog;
use crate::store::datadir::DataDir;

/// Watches the generation marker and reloads the index when it changes.
/// Reloads also when a worker asks ([`Freshness`]: a 404 while the marker says
/// something newer is published), and counts reloads on `reloaded`.
pub(super) fn watch_generation(
    datadir: &DataDir,
    catalog: Catalog,
    index: Arc<ArcSwap<Index>>,
    alias_grace: Duration,
    (tx, mut rx): (
        tokio::sync::mpsc::UnboundedSender<()>,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ),
    reloaded: watch::Sender<u64>,
) -> Result<notify::RecommendedWatcher, ServeError> {
    use notify::{RecursiveMode, Watcher};
    let marker = datadir.generation_path();
    let reload_marker = marker.clone();
    let marker_name = marker.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            // Only a change counts: every request that checks freshness opens the
            // marker, and an open is an event too.
            if !matches!(ev.kind, notify::EventKind::Access(_))
                && ev
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == marker_name)
            {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|source| ServeError::Watch {
        path: datadir.root().to_path_buf(),
        source,
    })?;
    watcher
        .watch(datadir.root(), RecursiveMode::NonRecursive)
        .map_err(|source| ServeError::Watch {
            path: datadir.root().to_path_buf(),
            source,
        })?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Coalesce bursts of events into one reload.
            tokio::time::sleep(Duration::from_millis(5)).await;
            while rx.try_recv().is_ok() {}
            let outcome = reload(&catalog, &index, alias_grace, &reload_marker).await;
            reloaded.send_modify(|n| *n += 1);
            if outcome == Reload::Stop {
                break;
            }
        }
    });
    Ok(watcher)
}

/// What the watcher does after a reload attempt.
#[derive(Debug, PartialEq, Eq)]
enum Reload {
    /// Swapped in, or failed and logged (the previous index keeps serving).
    Continue,
    /// The catalog is closed: the server is shutting down.
    Stop,
}

/// The generation marker's content ("" when there is none yet).
pub(super) fn read_generation(marker: &std::path::Path) -> String {
    std::fs::read_to_string(marker)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Loads the published index and swaps it in.
async fn reload(
    catalog: &Catalog,
    index: &ArcSwap<Index>,
    alias_grace: Duration,
    marker: &std::path::Path,
) -> Reload {
    // Read before loading: a change committed meanwhile leaves the marker newer than
    // what this index records, so the next check reloads again.
    let generation = read_generation(marker);
    match Index::load(catalog, alias_grace).await {
        Ok(mut new) => {
            new.generation = generation;
            tracing::info!(
                "published content changed: {} trees indexed",
                new.tree_count()
            );
            index.store(Arc::new(new));
            crate::app::metrics::metrics().index_loads.inc();
            Reload::Continue
        }
        Err(_) if catalog.is_closed() => {
            tracing::debug!("shutting down: the index is not reloaded");
            Reload::Stop
        }
        Err(e) => {
            tracing::error!("reloading the index failed (serving the previous one): {e}");
            Reload::Continue
        }
    }
}

/// How a worker tells whether its index is behind what is published, and gets a
/// newer one: before answering 404 for a tree or a file in it, a worker compares the
/// generation marker with its index's and, when they differ, asks for a reload and
/// waits for it (bounded), so a request sent right after a command returns sees
/// what the command published.
pub(crate) struct Freshness {
    pub(super) marker: std::path::PathBuf,
    pub(super) request: tokio::sync::mpsc::UnboundedSender<()>,
    pub(super) reloaded: watch::Receiver<u64>,
}

/// How long a request waits for a reload before answering with what it has.
const FRESHNESS_WAIT: Duration = Duration::from_secs(2);

impl Freshness {
    /// True when a newer index than `current`'s generation was swapped in.
    pub(crate) async fn newer(&self, index: &ArcSwap<Index>) -> bool {
        let seen = index.load().generation.clone();
        if read_generation(&self.marker) == seen {
            return false;
        }
        let mut reloaded = self.reloaded.clone();
        reloaded.mark_unchanged();
        if self.request.send(()).is_err() {
            return false;
        }
        let deadline = tokio::time::sleep(FRESHNESS_WAIT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                changed = reloaded.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                    // A reload finished. One that started before the change may
                    // still be behind the marker: then the one asked for follows.
                    let now = index.load().generation.clone();
                    if now == read_generation(&self.marker) {
                        return now != seen;
                    }
                }
                _ = &mut deadline => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reload_after_the_catalog_closed_stops_the_watcher_and_keeps_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::temp_sqlite(dir.path()).await;
        let grace = Duration::from_secs(60);
        let index = ArcSwap::from_pointee(Index::load(&catalog, grace).await.unwrap());
        let before = index.load_full();
        let marker = dir.path().join("generation");
        std::fs::write(&marker, "42\n").unwrap();
        // An open catalog: the index is loaded again and swapped in, with the
        // generation it was loaded at.
        assert_eq!(
            reload(&catalog, &index, grace, &marker).await,
            Reload::Continue
        );
        assert!(!Arc::ptr_eq(&before, &index.load_full()));
        assert_eq!(index.load().generation, "42");
        // A closed one: the watcher stops, the last index stays.
        let last = index.load_full();
        catalog.close().await;
        assert_eq!(reload(&catalog, &index, grace, &marker).await, Reload::Stop);
        assert!(Arc::ptr_eq(&last, &index.load_full()));
    }
}
