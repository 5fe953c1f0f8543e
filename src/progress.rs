//! Live counters of long work (import, sync) that the command line turns into a
//! progress bar on a terminal or periodic log lines otherwise.

use std::sync::atomic::{AtomicU64, AtomicUsize};

/// Counters updated by the worker and read by whoever displays them.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items (files, packages) to process; 0 until known.
    pub total: AtomicUsize,
    /// Items processed, successfully or not.
    pub done: AtomicUsize,
    /// Bytes read or transferred.
    pub bytes: AtomicU64,
}
