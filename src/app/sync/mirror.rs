//! Mirror mode's publication: upstream's metadata bytes, unchanged, recorded as a
//! publication whose content key names every file (so an unchanged upstream reuses it).

use sha2::Digest;

use super::SyncError;
use crate::app::publish;
use crate::store::catalog::{Catalog, PublicationFile};
use crate::store::pool::Pool;

/// Records a mirror-mode publication of `files` (path, kind, bytes) and of `blobs`
/// (files already durable in the pool: a tree's images) for `packages` packages, the
/// newest of which has the file time `revision`.
pub async fn publish_mirror(
    catalog: &Catalog,
    pool: &Pool,
    files: &[(String, String, Vec<u8>)],
    blobs: &[PublicationFile],
    packages: usize,
    revision: i64,
) -> Result<i64, SyncError> {
    let mut key = sha2::Sha256::new();
    key.update(b"mirror\n");
    let mut staged = Vec::new();
    let mut records = Vec::new();
    for (path, kind, bytes) in files {
        let s = pool.stage_bytes(bytes)?;
        key.update(path.as_bytes());
        key.update(b" ");
        key.update(s.sha256.as_bytes());
        key.update(b"\n");
        records.push(PublicationFile {
            path: path.clone(),
            kind: kind.clone(),
            sha256: s.sha256.clone(),
            size: s.size as i64,
        });
        staged.push(s);
    }
    for f in blobs {
        key.update(f.path.as_bytes());
        key.update(b" ");
        key.update(f.sha256.as_bytes());
        key.update(b"\n");
        records.push(f.clone());
    }
    pool.commit_async(staged).await?;
    let key = format!(
        "{}{}",
        publish::MIRROR_KEY_PREFIX,
        hex::encode(key.finalize())
    );
    Ok(catalog
        .insert_publication(&key, revision, packages as i64, &records)
        .await?)
}
