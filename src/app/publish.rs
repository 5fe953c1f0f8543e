//! Publishing: turning a set of placed packages into a durable `repodata/` and a
//! catalog publication; publishing a repository's `latest` and creating snapshots.
//!
//! A publication is identified by a content key (a hash over the metadata format, the
//! compression and every package's sha256 and location), so publishing a package set
//! that was published before costs one lookup and reuses the same bytes.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::app::signing::Signer;
use crate::domain::names;
use crate::formats::repodata::packed;
use crate::formats::repodata::{self, Carried, CarriedFile, Compression, Entry, Extra, ExtraKind};
use crate::store::catalog::{
    Catalog, CatalogError, ExtraRef, Placed, PublicationFile, SnapshotRow,
};
use crate::store::datadir::{DataDir, WriteLock};
use crate::store::pool::{Pool, PoolError, Staged};

/// Bump when the rendered metadata format changes, so old publications are not reused.
const FORMAT_VERSION: &str = "cairn-repodata-1";

/// Errors of publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("rendering metadata: {0}")]
    Render(#[from] std::io::Error),
    #[error("invalid snapshot name {0:?}: use letters, digits, '-', '_', '.', '+' or ':'")]
    BadName(String),
    #[error("{0:?} is reserved and cannot name a snapshot")]
    Reserved(String),
    #[error(transparent)]
    Sign(#[from] crate::app::signing::SignError),
    /// The rendering thread ended abnormally (a panic).
    #[error("rendering metadata ended abnormally: {0}")]
    Task(String),
    /// A package of the set has no rendered fragments in the catalog.
    #[error("package {0} has no metadata fragments in the catalog: run `cairn db verify`")]
    NoFragments(String),
}

/// What a publish did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub publication_id: i64,
    /// False when an identical publication already existed and was reused.
    pub rendered: bool,
    pub package_count: usize,
    pub seconds: f64,
    /// The repository content version this publication was made from, when known.
    pub content_version: Option<i64>,
}

/// How a publication's metadata is rendered: how it is compressed, and who signs its
/// `repomd.xml` (`repodata/repomd.xml.asc`, with the key beside it as
/// `repodata/repomd.xml.key`).
#[derive(Debug, Clone, Default)]
pub struct Format {
    pub compression: Compression,
    pub signer: Option<Arc<Signer>>,
}

impl Format {
    pub fn new(compression: Compression, signer: Option<Arc<Signer>>) -> Format {
        Format {
            compression,
            signer,
        }
    }
}

/// The content key of a package set, given as (location, sha256) pairs, plus the
/// carried-through metadata and the signing key.
pub fn content_key<'a>(
    entries: impl Iterator<Item = (&'a str, &'a str)>,
    format: &Format,
    extras: &[ExtraRef],
) -> String {
    let compression = format.compression;
    let mut sorted: Vec<(&str, &str)> = entries.collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    h.update(FORMAT_VERSION.as_bytes());
    h.update(b"\n");
    h.update(compression.name().as_bytes());
    h.update(b"\n");
    for (loc, sha) in sorted {
        h.update(sha.as_bytes());
        h.update(b" ");
        h.update(loc.as_bytes());
        h.update(b"\n");
    }
    let mut extras: Vec<&ExtraRef> = extras.iter().collect();
    extras.sort_by(|a, b| a.kind.cmp(&b.kind));
    for e in extras {
        h.update(b"extra ");
        h.update(e.kind.as_bytes());
        h.update(b" ");
        h.update(e.sha256.as_bytes());
        if let Some(c) = e.as_carried() {
            // What repomd.xml says of a carried record is part of the content.
            h.update(
                format!(
                    " carried {} {}:{} {:?} {:?} {:?}",
                    c.file_name,
                    c.checksum.algorithm,
                    c.checksum.hex,
                    c.open_checksum
                        .map(|o| format!("{}:{}", o.algorithm, o.hex)),
                    c.open_size,
                    c.timestamp
                )
                .as_bytes(),
            );
        }
        h.update(b"\n");
    }
    if let Some(signer) = &format.signer {
        h.update(b"signed-by ");
        h.update(signer.id().as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Publishes `items` (reusing an identical earlier publication) and returns its id.
pub async fn publish_set(
    catalog: &Catalog,
    pool: &Pool,
    items: Vec<Placed>,
    format: &Format,
    extras: &[ExtraRef],
    force_render: bool,
) -> Result<Published, PublishError> {
    let extras = ExtraBytes::InPool(extras.to_vec());
    begin(catalog, pool, Arc::new(items), format, extras, force_render)
        .await?
        .finish(catalog, pool)
        .await
}

/// The carried-through records (comps, updateinfo, modules) of a publication.
pub enum ExtraBytes {
    /// Stored in the pool: read when the repodata is rendered.
    InPool(Vec<ExtraRef>),
    /// Already in memory (a sync that just fetched them), with their pool references.
    Loaded(Vec<(ExtraRef, Vec<u8>)>),
}

impl ExtraBytes {
    fn refs(&self) -> Vec<ExtraRef> {
        match self {
            ExtraBytes::InPool(refs) => refs.clone(),
            ExtraBytes::Loaded(loaded) => loaded.iter().map(|(r, _)| r.clone()).collect(),
        }
    }

    /// The opened documents by kind and the carried records, with their bytes
    /// (blocking: may read the pool).
    fn load(self, pool: &Pool) -> Result<Side, PublishError> {
        let loaded = match self {
            ExtraBytes::Loaded(loaded) => loaded,
            ExtraBytes::InPool(refs) => {
                let mut loaded = Vec::with_capacity(refs.len());
                for r in refs {
                    let path = pool.path_of(&r.sha256);
                    let bytes =
                        std::fs::read(&path).map_err(|source| PoolError::Io { path, source })?;
                    loaded.push((r, bytes));
                }
                loaded
            }
        };
        let mut side = Side::default();
        for (r, bytes) in loaded {
            if let Some(carried) = r.as_carried() {
                side.carried.push((carried, bytes));
                continue;
            }
            let kind = ExtraKind::from_name(&r.kind).ok_or_else(|| {
                PublishError::Render(std::io::Error::other(format!(
                    "unknown metadata kind {:?}",
                    r.kind
                )))
            })?;
            side.opened.push((kind, bytes));
        }
        Ok(side)
    }
}

/// What a publication carries besides the package lists, loaded.
#[derive(Default)]
struct Side {
    /// comps, updateinfo, modules: open bytes, compressed as the package lists are.
    opened: Vec<(ExtraKind, Vec<u8>)>,
    /// Upstream's records carried unchanged, with upstream's bytes.
    carried: Vec<(Carried, Vec<u8>)>,
}

/// A publication on its way: either one that exists already, or repodata being rendered,
/// compressed and staged on a blocking thread while the caller does other work (a sync
/// writes its catalog rows meanwhile). [`Pending::finish`] completes it.
pub enum Pending {
    Existing {
        id: i64,
        package_count: usize,
        started: Instant,
    },
    Rendering {
        /// The rendering thread.
        render: tokio::task::JoinHandle<Result<Prepared, PublishError>>,
        /// The task reading the fragments from the catalog for it.
        read: tokio::task::JoinHandle<Result<(), PublishError>>,
    },
}

/// How many packages' fragments are read from the catalog at a time while a
/// publication renders (a few MB for packages with long file lists and changelogs).
const FRAGMENT_WINDOW: usize = 512;

/// A window of fragments on its way to the rendering thread.
type Window = Result<Vec<crate::formats::repodata::packed::Packed>, PublishError>;

/// Looks the content of `items` up and, unless an identical publication exists (or
/// `force_render`), starts rendering its repodata. `items` is shared, not copied: a
/// sync keeps it to place the content once the publication is recorded.
pub async fn begin(
    catalog: &Catalog,
    pool: &Pool,
    items: Arc<Vec<Placed>>,
    format: &Format,
    extras: ExtraBytes,
    force_render: bool,
) -> Result<Pending, PublishError> {
    let started = Instant::now();
    let key = content_key(
        items
            .iter()
            .map(|i| (i.location.as_str(), i.sha256.as_str())),
        format,
        &extras.refs(),
    );
    let format = format.clone();
    if !force_render {
        if let Some(id) = catalog.publication_by_key(&key).await? {
            return Ok(Pending::Existing {
                id,
                package_count: items.len(),
                started,
            });
        }
    }
    let pool = pool.clone();
    // The packages in the order repodata lists them.
    let order: Vec<usize> = {
        let mut sorted: Vec<(usize, &Placed)> = items.iter().enumerate().collect();
        repodata::sort_by_href(&mut sorted, |(_, p)| p.location.as_str());
        sorted.into_iter().map(|(i, _)| i).collect()
    };
    // The fragments are read from the catalog a window at a time, in that order, while
    // the rendering thread concatenates and compresses the windows before (so memory
    // holds a few windows, whatever the number of packages).
    let ids: Vec<i64> = order.iter().map(|&i| items[i].package_id).collect();
    let (tx, rx) = tokio::sync::mpsc::channel::<Window>(2);
    let read = tokio::spawn(read_fragments(catalog.clone(), ids, tx));
    // Rendering and compression are CPU work on all cores: keep them off the runtime.
    let render = tokio::task::spawn_blocking(move || {
        let extras = extras.load(&pool)?;
        let sorted: Vec<&Placed> = order.iter().map(|&i| &items[i]).collect();
        prepare(&pool, key, &sorted, rx, &format, &extras, started)
    });
    Ok(Pending::Rendering { render, read })
}

/// Sends the fragments of the packages `ids` to `tx`, in that order, a window at a
/// time. Stops early when the receiver is gone (the rendering failed).
async fn read_fragments(
    catalog: Catalog,
    ids: Vec<i64>,
    tx: tokio::sync::mpsc::Sender<Window>,
) -> Result<(), PublishError> {
    for window in ids.chunks(FRAGMENT_WINDOW) {
        let read = async {
            let mut found = catalog.fragments_by_ids(window).await?;
            window
                .iter()
                .map(|id| {
                    found
                        .remove(id)
                        .ok_or_else(|| PublishError::NoFragments(format!("#{id}")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        match read.await {
            Ok(fragments) => {
                if tx.send(Ok(fragments)).await.is_err() {
                    return Ok(());
                }
            }
            Err(e) => {
                let message = e.to_string();
                let _ = tx.send(Err(e)).await;
                return Err(PublishError::Task(message));
            }
        }
    }
    Ok(())
}

impl Pending {
    /// Waits for the rendering, makes the files durable and records the publication.
    pub async fn finish(self, catalog: &Catalog, pool: &Pool) -> Result<Published, PublishError> {
        match self {
            Pending::Existing {
                id,
                package_count,
                started,
            } => Ok(Published {
                publication_id: id,
                rendered: false,
                package_count,
                seconds: started.elapsed().as_secs_f64(),
                content_version: None,
            }),
            Pending::Rendering { render, read } => {
                let prepared = render
                    .await
                    .map_err(|e| PublishError::Task(e.to_string()))??;
                // The reader's own failure reached the rendering thread as its error.
                read.await
                    .map_err(|e| PublishError::Task(e.to_string()))??;
                record(catalog, pool, prepared).await
            }
        }
    }
}

/// A publication's repodata, rendered and staged in the pool but not yet durable or
/// recorded. Dropping it removes the staged files.
#[derive(Debug)]
pub struct Prepared {
    key: String,
    revision: i64,
    package_count: usize,
    files: Vec<PublicationFile>,
    staged: Vec<Staged>,
    started: Instant,
}

/// Renders the repodata of `items` (in [`repodata::sort_by_href`] order, their fragments arriving
/// through `windows`) under the content `key` and stages its files.
fn prepare(
    pool: &Pool,
    key: String,
    items: &[&Placed],
    mut windows: tokio::sync::mpsc::Receiver<Window>,
    format: &Format,
    side: &Side,
    started: Instant,
) -> Result<Prepared, PublishError> {
    let extras: Vec<Extra<'_>> = side
        .opened
        .iter()
        .map(|(kind, bytes)| Extra {
            kind: *kind,
            open: bytes,
        })
        .collect();
    let carried: Vec<CarriedFile<'_>> = side
        .carried
        .iter()
        .map(|(record, bytes)| CarriedFile { record, bytes })
        .collect();
    let entries: Vec<Entry<'_>> = items
        .iter()
        .map(|i| Entry {
            href: &i.location,
            time_file: i.time_file,
        })
        .collect();
    // The reader's error (or a package whose fragments cannot be unpacked), kept apart
    // so that it is returned as itself.
    let mut failed: Option<PublishError> = None;
    let mut in_order = items.iter();
    let mut fragments = std::iter::from_fn(|| windows.blocking_recv())
        .map_while(|window| {
            let unpacked = window.and_then(|w| {
                w.iter()
                    .map(|p| {
                        let sha = in_order.next().map_or("", |i| i.sha256.as_str());
                        packed::unpack(p).map_err(|e| CatalogError::BadFragments {
                            sha256: sha.to_string(),
                            problem: e.to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(PublishError::from)
            });
            match unpacked {
                Ok(w) => Some(w),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        })
        .flatten()
        .map(Ok);
    let built = repodata::build(
        &entries,
        &mut fragments,
        format.compression,
        &extras,
        &carried,
    );
    drop(fragments);
    if let Some(e) = failed {
        return Err(e);
    }
    let mut data = built?;
    if let Some(signer) = &format.signer {
        let repomd = data
            .files
            .iter()
            .find(|f| f.kind == "repomd")
            .map(|f| f.bytes.clone())
            .unwrap_or_default();
        let signature = signer.sign(&repomd)?;
        for (path, kind, bytes) in [
            ("repodata/repomd.xml.asc", "repomd_asc", signature),
            (
                "repodata/repomd.xml.key",
                "repomd_key",
                signer.public_key().to_vec(),
            ),
        ] {
            data.files.push(repodata::MetadataFile {
                path: path.into(),
                kind: kind.into(),
                sha256: hex::encode(Sha256::digest(&bytes)),
                bytes,
            });
        }
    }
    let mut staged = Vec::with_capacity(data.files.len());
    let mut files = Vec::with_capacity(data.files.len());
    for f in &data.files {
        staged.push(pool.stage_bytes(&f.bytes)?);
        files.push(PublicationFile {
            path: f.path.clone(),
            kind: f.kind.clone(),
            sha256: f.sha256.clone(),
            size: f.bytes.len() as i64,
        });
    }
    Ok(Prepared {
        key,
        revision: data.revision,
        package_count: items.len(),
        files,
        staged,
        started,
    })
}

/// Makes a prepared publication's files durable, then records the publication.
async fn record(
    catalog: &Catalog,
    pool: &Pool,
    prepared: Prepared,
) -> Result<Published, PublishError> {
    let Prepared {
        key,
        revision,
        package_count,
        files,
        staged,
        started,
    } = prepared;
    pool.commit_async(staged).await?;
    let id = catalog
        .insert_publication(&key, revision, package_count as i64, &files)
        .await?;
    crate::app::metrics::metrics()
        .publish_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(Published {
        publication_id: id,
        rendered: true,
        package_count,
        seconds: started.elapsed().as_secs_f64(),
        content_version: None,
    })
}

/// Publishes a repository's current content. The content key is computed from the
/// (location, sha256) list alone, so an unchanged set never loads its fragments.
pub async fn publish_repo_content(
    catalog: &Catalog,
    pool: &Pool,
    repo_id: i64,
    format: &Format,
) -> Result<Published, PublishError> {
    let started = Instant::now();
    let content = catalog.versioned_content(repo_id).await?;
    let key = content_key(
        content
            .rows
            .iter()
            .map(|c| (c.location.as_str(), c.sha256.as_str())),
        format,
        &content.extras,
    );
    if let Some(id) = catalog.publication_by_key(&key).await? {
        return Ok(Published {
            publication_id: id,
            rendered: false,
            package_count: content.rows.len(),
            seconds: started.elapsed().as_secs_f64(),
            content_version: Some(content.version),
        });
    }
    // The caller holds the repository lock: the content cannot move between the reads.
    let items = catalog.repo_placed(repo_id).await?;
    let mut published = publish_set(catalog, pool, items, format, &content.extras, false).await?;
    published.content_version = Some(content.version);
    Ok(published)
}

/// The publication a snapshot of `repo`'s current content uses. A mirror-mode
/// repository serves upstream's own metadata, so its snapshot freezes that publication
/// rather than regenerating one. When `latest` was published from the current content
/// in the wanted compression, it is the snapshot's publication and the content is not
/// read at all.
pub async fn snapshot_publication(
    catalog: &Catalog,
    pool: &Pool,
    repo: &str,
    repo_id: i64,
    format: &Format,
) -> Result<Published, PublishError> {
    let mirrored = match catalog
        .repo(repo)
        .await?
        .and_then(|r| r.latest_publication_id)
    {
        Some(id)
            if catalog
                .publication_key(id)
                .await?
                .starts_with(MIRROR_KEY_PREFIX) =>
        {
            Some(id)
        }
        _ => None,
    };
    if let Some(id) = mirrored {
        return Ok(Published {
            publication_id: id,
            rendered: false,
            package_count: catalog.repo_content(repo_id).await?.len(),
            seconds: 0.0,
            content_version: None,
        });
    }
    if let Some(latest) = catalog.current_latest(repo_id).await? {
        let suffix = format!(".xml.{}", format.compression.suffix());
        if latest.primary_path.ends_with(&suffix)
            && signed_as(catalog, latest.publication_id, format).await?
        {
            return Ok(Published {
                publication_id: latest.publication_id,
                rendered: false,
                package_count: latest.package_count.max(0) as usize,
                seconds: 0.0,
                content_version: None,
            });
        }
    }
    publish_repo_content(catalog, pool, repo_id, format).await
}

/// Is the publication `id` signed as `format` signs (by its key, or not at all)?
async fn signed_as(catalog: &Catalog, id: i64, format: &Format) -> Result<bool, PublishError> {
    let files = catalog.publication_files(id).await?;
    let key = files.iter().find(|f| f.kind == "repomd_key");
    Ok(match (&format.signer, key) {
        (None, None) => true,
        (Some(signer), Some(key)) => key.sha256 == hex::encode(Sha256::digest(signer.public_key())),
        _ => false,
    })
}

/// Content keys of mirror-mode publications (upstream's metadata bytes) start so.
pub const MIRROR_KEY_PREFIX: &str = "mirror-";

/// Refuses names that are not URL-safe or that URLs reserve.
pub fn check_snapshot_name(name: &str) -> Result<(), PublishError> {
    if !names::valid_name(name) {
        return Err(PublishError::BadName(name.to_string()));
    }
    if names::RESERVED_NAMES.contains(&name) {
        return Err(PublishError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Freezes the current content of the repository `lock` holds as snapshot `name`.
pub async fn create_snapshot(
    catalog: &Catalog,
    pool: &Pool,
    datadir: &DataDir,
    lock: &WriteLock,
    name: &str,
    format: &Format,
) -> Result<(SnapshotRow, Published), PublishError> {
    check_snapshot_name(name)?;
    let repo = lock.repo();
    let repo_id = catalog.ensure_repo(repo).await?;
    let published = snapshot_publication(catalog, pool, repo, repo_id, format).await?;
    let snap = catalog
        .create_snapshot(repo_id, repo, name, published.publication_id)
        .await?;
    let _ = datadir.bump_generation();
    Ok((snap, published))
}

/// Gives the repository `lock` holds a `latest` when it has none yet (a repository
/// declared but never imported into or synced): its current content, which for a new
/// repository is empty, so that its `latest` URL serves a valid empty repository
/// instead of 404. Returns true when it published.
pub async fn ensure_latest(
    catalog: &Catalog,
    pool: &Pool,
    lock: &WriteLock,
    format: &Format,
) -> Result<bool, PublishError> {
    let repo = lock.repo();
    let repo_id = catalog.ensure_repo(repo).await?;
    let has_latest = catalog
        .repo(repo)
        .await?
        .is_some_and(|r| r.latest_publication_id.is_some());
    if has_latest {
        return Ok(false);
    }
    let published = publish_repo_content(catalog, pool, repo_id, format).await?;
    catalog
        .set_repo_latest(repo_id, published.publication_id, published.content_version)
        .await?;
    Ok(true)
}
