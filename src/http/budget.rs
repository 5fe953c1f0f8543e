//! The per-worker budget of file bytes in flight (read, not yet written to a socket):
//! responses wait for room instead of growing memory with their number.
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::blob::Blob;

/// Per-worker memory for file bytes in flight (read, not yet written to a socket).
pub const IN_FLIGHT_BYTES: usize = 16 * 1024 * 1024;

/// Waits until the worker's in-flight budget has room for `n` bytes and takes it.
pub(super) async fn reserve(
    budget: &Arc<tokio::sync::Semaphore>,
    n: usize,
) -> io::Result<tokio::sync::OwnedSemaphorePermit> {
    let kib = n.div_ceil(1024).clamp(1, IN_FLIGHT_BYTES / 1024) as u32;
    budget
        .clone()
        .acquire_many_owned(kib)
        .await
        .map_err(io::Error::other)
}

/// Reads `n` bytes at `off` once the worker's in-flight budget has room for them; the
/// room is given back when the bytes are dropped (after hyper has written them).
pub(super) async fn read_budgeted(
    budget: &Arc<tokio::sync::Semaphore>,
    blob: &Blob,
    off: u64,
    n: usize,
) -> io::Result<Bytes> {
    let permit = reserve(budget, n).await?;
    let bytes = blob.read_exact_at(off, n).await?;
    Ok(holding(bytes, permit))
}

/// `bytes` that keep `permit` (their share of the in-flight budget) until dropped.
pub(super) fn holding(bytes: Bytes, permit: tokio::sync::OwnedSemaphorePermit) -> Bytes {
    Bytes::from_owner(Budgeted {
        bytes,
        _permit: permit,
    })
}

/// Bytes that hold their share of the in-flight budget until dropped.
pub(super) struct Budgeted {
    bytes: Bytes,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}
