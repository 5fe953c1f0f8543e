//! The application layer: every operation Cairn performs, written once and called by
//! every front end (the command line, the server's scheduler, the HTTP API).
//!
//! - [`context::App`]: one opened installation (config, catalog, pool, data dir);
//! - [`ingest`]: the one protocol by which packages enter a repository, used by
//!   [`import`] and [`sync`];
//! - [`publish`]: repodata publications and repository snapshots; [`view`]: views;
//!   [`retention`]: snapshots and retention after a sync; [`scheduler`]: syncs on a
//!   schedule;
//! - [`gc`], [`verify`]: pool and catalog maintenance;
//! - [`signing`]: the signatures on what is published;
//! - [`audit`]: who changed what (every change operation writes its row);
//!   [`tokens`]: API tokens, stored hashed; [`jobs`]: operations run without waiting;
//!   [`webhooks`]: events posted to receivers from a persistent queue;
//! - [`config`], [`metrics`], [`progress`]: what the operations are told and tell.

pub mod audit;
pub mod config;
pub mod context;
pub mod fetch;
pub mod gc;
pub mod import;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod ondemand;
pub mod progress;
pub mod publish;
pub mod reads;
pub mod repair;
pub mod retention;
pub mod scheduler;
pub mod signing;
pub mod sync;
pub mod tokens;
pub mod verify;
pub mod view;
pub mod webhooks;

/// Now, in unix seconds (0 if the clock is before 1970).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
