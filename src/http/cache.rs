//! The per-worker memory cache of small blobs (FIFO eviction within a byte budget).

use bytes::Bytes;

use super::blob::SMALL_FILE;

/// A per-worker cache of blob contents up to [`CACHEABLE`] with a byte budget (FIFO
/// eviction).
pub struct SmallCache {
    map: std::collections::HashMap<String, Bytes>,
    order: std::collections::VecDeque<String>,
    bytes: usize,
    budget: usize,
}

/// Blobs up to this size (those read in one read) are kept in the worker's memory cache.
pub const CACHEABLE: u64 = SMALL_FILE;

/// Responses up to this size are sent without taking in-flight budget (their memory
/// is small next to the connection's own buffers).
pub(super) const UNBUDGETED: usize = 64 * 1024;

impl SmallCache {
    pub fn new(budget: usize) -> SmallCache {
        SmallCache {
            map: Default::default(),
            order: Default::default(),
            bytes: 0,
            budget,
        }
    }

    pub(super) fn get(&self, sha: &str) -> Option<Bytes> {
        self.map.get(sha).cloned()
    }

    pub(super) fn put(&mut self, sha: &str, data: Bytes) {
        if data.len() > self.budget || self.map.contains_key(sha) {
            return;
        }
        while self.bytes + data.len() > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.map.remove(&old) {
                self.bytes -= b.len();
            }
        }
        self.bytes += data.len();
        self.order.push_back(sha.to_string());
        self.map.insert(sha.to_string(), data);
    }
}
