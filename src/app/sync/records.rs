//! Fetching upstream's metadata: `repomd.xml`, the package records it names (primary,
//! filelists, other), the records a regenerated mirror carries through (comps,
//! updateinfo trimmed to what the mirror keeps, modules, opened; every other record
//! `repodata::carried` does not exclude, unchanged), and, in mirror mode, every record
//! byte for byte. Each file is verified against repomd's checksum (and a carried
//! record's open form against its open checksum) and bounded in size, compressed and
//! open.

use std::collections::HashSet;
use std::io::{BufRead, Read};

use sha2::{Digest, Sha256};

use super::upstream;
use super::SyncError;
use crate::formats::repodata::carried::{self, Fate};
use crate::formats::repodata::parse::{Checksum, ParseError, Repomd, RepomdRecord as Record};
use crate::formats::repodata::updateinfo::{self, Nevra};
use crate::formats::repodata::ExtraKind;
use crate::formats::repodata::{decompress, modules, Carried};

/// Largest repomd.xml accepted.
pub const MAX_REPOMD: u64 = 16 * 1024 * 1024;
/// Largest compressed metadata file accepted.
const MAX_METADATA: u64 = 4 * 1024 * 1024 * 1024;
/// Largest decompressed metadata file accepted (package records are streamed, so
/// this bounds work, not memory).
const MAX_OPEN_METADATA: u64 = 32 * 1024 * 1024 * 1024;
/// Largest decompressed comps or modules document accepted when repomd.xml does not
/// declare its open size (they are held in memory whole; real ones are a few MB).
const DEFAULT_OPEN_EXTRA: u64 = 48 * 1024 * 1024;
/// Largest decompressed comps or modules document accepted at all.
const MAX_OPEN_EXTRA: u64 = 2 * 1024 * 1024 * 1024;

/// GETs `url` from the source, naming the URL in the error.
pub async fn fetch(
    client: &super::source::Source,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, SyncError> {
    client
        .fetch(url, limit)
        .await
        .map_err(|source| SyncError::Upstream {
            url: url.to_string(),
            source,
        })
}

/// GETs `url` and checks it against `checksum`.
async fn fetch_verified(
    client: &super::source::Source,
    url: &str,
    limit: u64,
    checksum: &Checksum,
) -> Result<Vec<u8>, SyncError> {
    // A mirror that gives other bytes (one behind the others) is passed over.
    client
        .fetch_checked(url, limit, |bytes| upstream::verify(bytes, checksum))
        .await
        .map_err(|source| SyncError::Upstream {
            url: url.to_string(),
            source,
        })
}

/// One record's compressed bytes (verified), its URL and the most its open form may
/// hold.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub url: String,
    pub open_limit: u64,
}

impl Fetched {
    /// A reader of the open (decompressed) bytes.
    pub fn open(&self) -> Result<Box<dyn std::io::BufRead + '_>, ParseError> {
        crate::formats::repodata::decompress::decompress(&self.bytes, self.open_limit, &self.url)
    }
}

/// Fetches and verifies the record `record` of the repository at `base`.
async fn fetch_record(
    client: &super::source::Source,
    base: &str,
    record: &Record,
) -> Result<Fetched, SyncError> {
    let url = upstream::join(base, &record.href);
    let limit = record.size.map_or(MAX_METADATA, |s| s.min(MAX_METADATA));
    let bytes = fetch_verified(client, &url, limit, &record.checksum).await?;
    let open_limit = record
        .open_size
        .map_or(MAX_OPEN_METADATA, |s| s.min(MAX_OPEN_METADATA));
    Ok(Fetched {
        bytes,
        url,
        open_limit,
    })
}

/// primary, filelists and other, in that order.
pub async fn fetch_package_records(
    client: &super::source::Source,
    base: &str,
    repomd: &Repomd,
    repomd_url: &str,
) -> Result<[Fetched; 3], SyncError> {
    let record = |kind: &'static str| {
        repomd.record(kind).ok_or_else(|| SyncError::MissingRecord {
            url: repomd_url.to_string(),
            kind,
        })
    };
    Ok([
        fetch_record(client, base, record("primary")?).await?,
        fetch_record(client, base, record("filelists")?).await?,
        fetch_record(client, base, record("other")?).await?,
    ])
}

/// Mirror mode: every record repomd.xml names (verified), repomd.xml itself and its
/// detached signature when upstream has one, as (path, kind, bytes).
pub async fn fetch_all_records(
    client: &super::source::Source,
    base: &str,
    repomd: &Repomd,
    repomd_bytes: &[u8],
) -> Result<Vec<(String, String, Vec<u8>)>, SyncError> {
    let mut out = Vec::new();
    for record in &repomd.records {
        let fetched = fetch_record(client, base, record).await?;
        out.push((record.href.clone(), record.kind.clone(), fetched.bytes));
    }
    out.push((
        "repodata/repomd.xml".to_string(),
        "repomd".to_string(),
        repomd_bytes.to_vec(),
    ));
    let asc_url = upstream::join(base, "repodata/repomd.xml.asc");
    match client.fetch_optional(&asc_url, MAX_REPOMD).await {
        Ok(Some(asc)) => out.push(("repodata/repomd.xml.asc".into(), "repomd_asc".into(), asc)),
        Ok(None) => {}
        Err(source) => {
            return Err(SyncError::Upstream {
                url: asc_url,
                source,
            })
        }
    }
    Ok(out)
}

/// The records of upstream's comps, updateinfo and modules that a publication carries
/// (those upstream has): plain "group" first, else a compressed `group_*` (not zchunk).
fn extra_records(repomd: &Repomd) -> Vec<(ExtraKind, &Record)> {
    ExtraKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let record = match kind {
                ExtraKind::Comps => repomd.record("group").or_else(|| {
                    repomd
                        .records
                        .iter()
                        .find(|r| r.kind.starts_with("group_") && !r.kind.ends_with("_zck"))
                }),
                ExtraKind::Updateinfo => repomd.record("updateinfo"),
                ExtraKind::Modules => repomd.record("modules"),
            };
            record.map(|r| (kind, r))
        })
        .collect()
}

/// The open bytes of one carried record; updateinfo trimmed to the packages in `keep`.
fn open_extra(
    kind: ExtraKind,
    record: &Record,
    mut fetched: Fetched,
    keep: &HashSet<Nevra>,
    removed: &HashSet<Nevra>,
) -> Result<Vec<u8>, SyncError> {
    if kind == ExtraKind::Updateinfo {
        // Streamed: only the advisories kept are held.
        let (trimmed, count) = updateinfo::trim(fetched.open()?, keep, &fetched.url)?;
        tracing::info!(
            "{}: {count} advisories apply to the mirrored packages",
            fetched.url
        );
        return Ok(trimmed);
    }
    // Held whole: bounded by the declared open size, or a few MB's worth.
    fetched.open_limit = record
        .open_size
        .map_or(DEFAULT_OPEN_EXTRA, |s| s.min(MAX_OPEN_EXTRA));
    // Room reserved at once, up to the undeclared limit (only the pages written to
    // become resident): a growing buffer is copied into one twice its size, and a
    // document of nearly the limit (a bomb) would hold both at once.
    let room = fetched.open_limit.min(DEFAULT_OPEN_EXTRA) as usize + 64 * 1024;
    let mut open = Vec::with_capacity(room);
    fetched
        .open()?
        .read_to_end(&mut open)
        .map_err(|source| ParseError::Io {
            file: fetched.url.clone(),
            source,
        })?;
    if kind == ExtraKind::Modules && !removed.is_empty() {
        // No stream may name a package the filters removed (see `modules`).
        let trimmed = modules::drop_broken_streams(&open, removed, &fetched.url)?;
        if !trimmed.dropped.is_empty() {
            tracing::info!(
                "{}: module streams left out because the filters removed some of their packages: {}",
                fetched.url,
                trimmed.dropped.join(", ")
            );
        }
        return Ok(trimmed.bytes);
    }
    Ok(open)
}

/// What regenerated metadata, and the views a repository is a member of, carry from
/// upstream besides the package lists.
#[derive(Default)]
pub struct Carry {
    /// comps, updateinfo and modules, open (updateinfo trimmed, modules consistent
    /// with the filters).
    pub opened: Vec<(ExtraKind, Vec<u8>)>,
    /// Records carried unchanged, with upstream's bytes.
    pub carried: Vec<(Carried, Vec<u8>)>,
    /// Upstream records that are not carried though no rule excludes them.
    pub warnings: Vec<String>,
}

/// Fetches, verifies and decompresses upstream's comps, updateinfo and modules (those it
/// has); updateinfo is trimmed to the packages in `keep`, and module streams naming a
/// package in `removed` (upstream's, left out by the filters) are dropped. Every record
/// `repodata::carried` carries is fetched and verified too.
pub async fn fetch_extras(
    client: &super::source::Source,
    base: &str,
    repomd: &Repomd,
    keep: &HashSet<Nevra>,
    removed: &HashSet<Nevra>,
) -> Result<Carry, SyncError> {
    let mut carry = Carry::default();
    for (kind, record) in extra_records(repomd) {
        let fetched = fetch_record(client, base, record).await?;
        carry
            .opened
            .push((kind, open_extra(kind, record, fetched, keep, removed)?));
    }
    let (records, warnings) = carried_records(repomd);
    carry.warnings = warnings;
    for record in records {
        let fetched = fetch_record(client, base, record).await?;
        carry
            .carried
            .push(carry_record(record, fetched.bytes, &fetched.url)?);
    }
    Ok(carry)
}

/// Mirror mode: comps, updateinfo and modules opened, and the records regenerated
/// metadata carries, from the records already fetched (`files`, from
/// [`fetch_all_records`]), so that views composed of mirrored members carry them as
/// they carry a regenerated member's.
pub fn extras_of_mirror(
    base: &str,
    repomd: &Repomd,
    files: &[(String, String, Vec<u8>)],
    keep: &HashSet<Nevra>,
) -> Result<Carry, SyncError> {
    let bytes_of = |record: &Record| {
        files
            .iter()
            .find(|(href, _, _)| *href == record.href)
            .map(|(_, _, bytes)| bytes)
    };
    let mut carry = Carry::default();
    for (kind, record) in extra_records(repomd) {
        let Some(bytes) = bytes_of(record) else {
            continue;
        };
        let fetched = Fetched {
            bytes: bytes.clone(),
            url: upstream::join(base, &record.href),
            open_limit: MAX_OPEN_METADATA,
        };
        // A mirror has no filters: nothing was removed.
        carry.opened.push((
            kind,
            open_extra(kind, record, fetched, keep, &HashSet::new())?,
        ));
    }
    let (records, warnings) = carried_records(repomd);
    carry.warnings = warnings;
    for record in records {
        if let Some(bytes) = bytes_of(record) {
            let url = upstream::join(base, &record.href);
            carry
                .carried
                .push(carry_record(record, bytes.clone(), &url)?);
        }
    }
    Ok(carry)
}

/// The records of `repomd` that regenerated metadata carries unchanged (the first of
/// each type), and a warning for each one refused.
fn carried_records(repomd: &Repomd) -> (Vec<&Record>, Vec<String>) {
    let mut records: Vec<&Record> = Vec::new();
    let mut warnings = Vec::new();
    for record in &repomd.records {
        match carried::fate(&record.kind) {
            Fate::Carried if !records.iter().any(|r| r.kind == record.kind) => {
                records.push(record)
            }
            Fate::Refused => warnings.push(format!(
                "upstream's metadata record {:?} ({}) is not carried: a record type must be a plain name (letters, digits, '_', '-', '.', '+') other than \"comps\"",
                record.kind, record.href
            )),
            Fate::Dropped => tracing::info!(
                "upstream's metadata record {:?} is not carried: delta RPMs are not mirrored",
                record.kind
            ),
            _ => {}
        }
    }
    (records, warnings)
}

/// A carried record: `bytes` (verified against repomd's checksum already) are checked
/// against the open checksum when they are in a compression Cairn reads. A record
/// upstream checks with a weak algorithm (md5, sha1) is listed with sha256 instead.
fn carry_record(
    record: &Record,
    bytes: Vec<u8>,
    url: &str,
) -> Result<(Carried, Vec<u8>), SyncError> {
    let upstream_error = |source| SyncError::Upstream {
        url: url.to_string(),
        source,
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let mut carried = Carried::of(record, &sha256);
    if upstream::is_weak(&carried.checksum.algorithm) {
        carried.checksum = Checksum {
            algorithm: "sha256".into(),
            hex: sha256.clone(),
        };
    }
    let Some(open) = record.open_checksum.as_ref() else {
        return Ok((carried, bytes));
    };
    if decompress::compression_of(&bytes).is_none() {
        // Plain (its open form is itself), or a compression Cairn does not read: the
        // checksum of the bytes as served was verified.
        if upstream::is_weak(&open.algorithm) {
            carried.open_checksum = (upstream::verify(&bytes, open).is_ok()).then(|| Checksum {
                algorithm: "sha256".into(),
                hex: sha256.clone(),
            });
        }
        return Ok((carried, bytes));
    }
    let limit = record
        .open_size
        .map_or(MAX_OPEN_METADATA, |s| s.min(MAX_OPEN_METADATA));
    let mut reader = decompress::decompress(&bytes, limit, url)?;
    let mut hasher = upstream::Hasher::new(&open.algorithm).map_err(upstream_error)?;
    let mut open_sha256 = Sha256::new();
    loop {
        let chunk = reader.fill_buf().map_err(|source| ParseError::Io {
            file: url.to_string(),
            source,
        })?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        open_sha256.update(chunk);
        let n = chunk.len();
        reader.consume(n);
    }
    drop(reader);
    hasher.check(open).map_err(|source| SyncError::Upstream {
        url: format!("{url} (decompressed)"),
        source,
    })?;
    if upstream::is_weak(&open.algorithm) {
        carried.open_checksum = Some(Checksum {
            algorithm: "sha256".into(),
            hex: hex::encode(open_sha256.finalize()),
        });
    }
    Ok((carried, bytes))
}
