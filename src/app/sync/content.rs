//! A sync's new content, through the ingest protocol ([`crate::app::ingest`]): the
//! packages the catalog does not hold yet are read again from upstream's package lists,
//! this time whole (dependencies, files, changelogs), rendered, packed
//! ([`crate::formats::repodata::packed`]) and written to the catalog [`BATCH`] at a
//! time, each batch committed on its own once the downloads are durable. The repodata
//! is then rendered from the catalog
//! ([`crate::app::publish`]), and under the write lock the content is compared,
//! published and placed. Memory holds one batch of whole packages at a time, and for
//! every package only what [`super::Listed`] keeps, whatever the repository's size.

use std::collections::HashSet;

use super::{mirror, records, Cx, PackageLists, Plan, SideRecords, SyncError, SyncReport};
use crate::app::ingest;
use crate::app::publish;
use crate::domain::package::Package;
use crate::domain::status::RunStatus;
use crate::formats::repodata::packed::{self, Packed};
use crate::formats::repodata::parse::{PackageStream, ParseError};
use crate::store::catalog::{ExtraRef, PackageSignature, PackageWriter, Placed, PublicationFile};
use crate::store::pool::Staged;

/// How many packages are read, rendered and written to the catalog at a time (with
/// long file lists and changelogs, about 20 KB each while in flight; a batch is being
/// read, one waits and one is being written).
const BATCH: usize = 256;

/// A package the catalog lacks: where upstream lists it, and its sha256.
struct Wanted {
    list: usize,
    position: usize,
    sha256: String,
}

/// A batch of whole packages with their packed fragments, on its way to the catalog
/// (or the reading's error).
type Batch = std::io::Result<Vec<(Package, Packed)>>;

impl Cx<'_> {
    /// The ingest protocol for the new content: once the blobs are durable, the
    /// packages the catalog lacks are written; then the repodata is rendered from the
    /// catalog and, under the write lock, the content is compared, published and
    /// placed.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn ingest(
        &self,
        up: &mut super::Upstream,
        plan: Plan,
        mut staged: Vec<Staged>,
        signatures: Vec<PackageSignature>,
        side: SideRecords,
        tree_refs: Vec<PublicationFile>,
        repomd_sha: &str,
        progress: &crate::app::progress::Progress,
    ) -> Result<SyncReport, SyncError> {
        let (carry, mirror_files) = match side {
            SideRecords::Extras(carry) => (carry, Vec::new()),
            SideRecords::Mirror(files, carry) => (carry, files),
        };
        // Every carried document and record, with its pool reference.
        let mut extras: Vec<(ExtraRef, Vec<u8>)> = Vec::new();
        for (kind, bytes) in carry.opened {
            let s = self.pool.stage_bytes(&bytes)?;
            extras.push((
                ExtraRef::opened(kind.name(), &s.sha256, s.size as i64),
                bytes,
            ));
            staged.push(s);
        }
        for (record, bytes) in carry.carried {
            let s = self.pool.stage_bytes(&bytes)?;
            extras.push((ExtraRef::carried(&record, &s.sha256, s.size as i64), bytes));
            staged.push(s);
        }
        let extra_refs: Vec<ExtraRef> = extras.iter().map(|(r, _)| r.clone()).collect();
        // The blobs become durable on a blocking thread while the content is planned.
        let committing = {
            let pool = self.pool.clone();
            tokio::spawn(async move { pool.commit_async(staged).await })
        };
        let durable = async {
            committing.await.map_err(|e| SyncError::Task {
                what: "making the downloads durable",
                message: e.to_string(),
            })??;
            self.phase("pool committed");
            Ok::<(), SyncError>(())
        };
        let sha_of = |i: usize| -> Result<&str, SyncError> {
            plan.known
                .get(&i)
                .map(String::as_str)
                .ok_or_else(|| SyncError::Task {
                    what: "planning the content",
                    message: format!("no sha256 for {}", up.entries[i].href),
                })
        };
        // The packages the catalog lacks (each once), in upstream's order.
        let mut writer = self.catalog.package_writer();
        let shas = up
            .by_location
            .values()
            .map(|&i| sha_of(i))
            .collect::<Result<Vec<&str>, SyncError>>()?;
        let in_catalog: HashSet<String> = writer.known(&shas).await?.into_iter().collect();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut wanted: Vec<Wanted> = Vec::new();
        for &i in up.by_location.values() {
            let sha = sha_of(i)?;
            if !in_catalog.contains(sha) && seen.insert(sha) {
                let e = &up.entries[i];
                wanted.push(Wanted {
                    list: e.list,
                    position: e.position,
                    sha256: sha.to_string(),
                });
            }
        }
        drop(seen);
        wanted.sort_unstable_by_key(|w| (w.list, w.position));
        tracing::debug!(
            "{}: {} of {} packages are new to the catalog",
            self.repo.id,
            wanted.len(),
            shas.len()
        );
        drop(shas);
        progress.set_closing_stage(format!(
            "{}: writing the catalog rows of {} new package(s)",
            self.repo.id,
            wanted.len()
        ));
        // No row may name a blob that is not durable; each batch of rows then commits
        // on its own, so that other writers of the catalog never wait long.
        durable.await?;
        let lists = std::mem::take(&mut up.lists);
        write_rows(lists, wanted, &mut writer).await?;
        let ids = writer.into_ids();
        // The header signatures read from the downloads, now that their rows exist.
        self.catalog.record_signatures(&signatures).await?;
        drop(signatures);
        self.remember_checksums(&up.entries, &plan.known).await?;
        if !plan.remote.is_empty() {
            // Where the packages left upstream are.
            let remote: Vec<(String, String, String, String, i64)> = plan
                .remote
                .iter()
                .map(|&i| {
                    let e = &up.entries[i];
                    Ok((
                        sha_of(i)?.to_string(),
                        e.href.clone(),
                        e.checksum.algorithm.clone(),
                        e.checksum.hex.clone(),
                        e.size as i64,
                    ))
                })
                .collect::<Result<_, SyncError>>()?;
            self.catalog.record_remote(self.repo_id, &remote).await?;
        }
        self.phase("catalog rows written");
        let placed = up
            .by_location
            .iter()
            .map(|(location, &i)| {
                let sha = sha_of(i)?;
                let package_id = *ids.get(sha).ok_or_else(|| SyncError::Task {
                    what: "writing the catalog rows",
                    message: format!("package {sha} has no row"),
                })?;
                Ok(Placed {
                    package_id,
                    sha256: sha.to_string(),
                    location: location.clone(),
                    time_file: up.entries[i].time_file,
                })
            })
            .collect::<Result<Vec<Placed>, SyncError>>()?;
        drop(ids);
        progress.set_closing_stage(format!(
            "{}: publishing {} package(s)",
            self.repo.id,
            placed.len()
        ));
        let placed = std::sync::Arc::new(placed);
        // Regenerated repodata is rendered (unless the same publication exists
        // already) from the catalog while the write lock is awaited.
        let pending = if self.mirror() {
            None
        } else {
            let extras = publish::ExtraBytes::Loaded(extras);
            let format = self.repo.format();
            Some(
                publish::begin(
                    self.catalog,
                    self.pool,
                    std::sync::Arc::clone(&placed),
                    &format,
                    extras,
                    false,
                )
                .await?,
            )
        };
        // From here the repository changes: snapshots and imports of it wait for this
        // part only, never for the downloads.
        let locked = ingest::lock(self.catalog, self.datadir, &self.repo.id).await?;
        let current = locked.current().await?;
        let comparison = ingest::compare(
            &current,
            placed
                .iter()
                .map(|p| (p.location.as_str(), p.sha256.as_str())),
        );
        let publication_id = match pending {
            None => {
                let revision = placed.iter().map(|p| p.time_file).max().unwrap_or(0);
                mirror::publish_mirror(
                    self.catalog,
                    self.pool,
                    &mirror_files,
                    &tree_refs,
                    placed.len(),
                    revision,
                )
                .await?
            }
            Some(pending) => {
                pending
                    .finish(self.catalog, self.pool)
                    .await?
                    .publication_id
            }
        };
        // Packages left upstream until asked for are not in the pool, by design.
        let left: HashSet<&str> = plan
            .remote
            .iter()
            .filter_map(|i| plan.known.get(i).map(String::as_str))
            .collect();
        ingest::check_blobs(
            self.pool,
            placed
                .iter()
                .map(|p| p.sha256.as_str())
                .filter(|sha| !left.contains(sha))
                .chain(extra_refs.iter().map(|e| e.sha256.as_str()))
                .chain(tree_refs.iter().map(|f| f.sha256.as_str())),
        )?;
        drop(left);
        let placements: Vec<(String, i64)> = placed
            .iter()
            .map(|p| (p.location.clone(), p.package_id))
            .collect();
        drop(placed);
        locked
            .replace(&placements, publication_id, repomd_sha, &extra_refs)
            .await?;
        self.phase("published");
        Ok(SyncReport {
            status: RunStatus::Ok,
            packages: placements.len(),
            added: comparison.added.len() + comparison.replaced.len(),
            removed: comparison.absent.len(),
            ..Default::default()
        })
    }
}

/// Reads the `wanted` packages whole from `lists` on a blocking thread, and writes
/// them with `writer` a batch at a time as they arrive.
async fn write_rows(
    lists: Vec<PackageLists>,
    wanted: Vec<Wanted>,
    writer: &mut PackageWriter<'_>,
) -> Result<(), SyncError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(1);
    let reading = tokio::task::spawn_blocking(move || read_wanted(&lists, &wanted, &tx));
    while let Some(batch) = rx.recv().await {
        let batch = batch.map_err(|e| SyncError::Task {
            what: "compressing the package metadata",
            message: e.to_string(),
        })?;
        writer.write(&batch).await?;
    }
    reading.await.map_err(|e| SyncError::Task {
        what: "reading the package lists",
        message: e.to_string(),
    })?
}

/// Reads `lists` again, in lockstep, and sends the `wanted` packages (sorted by list and
/// position) to `tx` with their fragments rendered, [`BATCH`] at a time. Stops without
/// an error when the receiver is gone (the writer failed, and says why).
fn read_wanted(
    lists: &[PackageLists],
    wanted: &[Wanted],
    tx: &tokio::sync::mpsc::Sender<Batch>,
) -> Result<(), SyncError> {
    let mut next = wanted.iter().peekable();
    let mut batch: Vec<Package> = Vec::with_capacity(BATCH);
    let send = |batch: Vec<Package>| tx.blocking_send(packed::render_all(batch)).is_ok();
    for (l, list) in lists.iter().enumerate() {
        if next.peek().is_none_or(|w| w.list != l) {
            continue;
        }
        let docs = &list.docs;
        let mut stream = PackageStream::new(docs[0].open()?, docs[1].open()?, docs[2].open()?);
        let mut position = 0;
        while let Some(w) = next.peek().filter(|w| w.list == l) {
            let Some(entry) = stream.next_package()? else {
                return Err(ends_early(&docs[0]));
            };
            if position == w.position {
                let mut package = entry.package;
                package.pkgid = w.sha256.clone();
                batch.push(package);
                next.next();
                if batch.len() == BATCH && !send(std::mem::take(&mut batch)) {
                    return Ok(());
                }
            }
            position += 1;
        }
    }
    if !batch.is_empty() {
        send(batch);
    }
    Ok(())
}

/// The error of a package list that lists fewer packages on the second reading than
/// on the first (its bytes were verified and kept: this is a defect, not upstream's).
fn ends_early(primary: &records::Fetched) -> SyncError {
    SyncError::from(ParseError::Invalid {
        file: primary.url.clone(),
        message: "fewer packages on a second reading than on the first".into(),
    })
}
