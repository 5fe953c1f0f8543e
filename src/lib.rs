//! Cairn: an RPM mirror appliance in one process.
//!
//! The module tree is the architecture. Each layer uses only the layers above it in
//! this list (`tests/layers.rs` checks it):
//! - [`domain`]: value types every layer shares (the package model, names, schedules);
//! - [`formats`]: `.rpm` headers, repository metadata, diffs, sample packages;
//! - [`store`]: the blob pool, the SQL catalog, the data directory and its locks;
//! - [`app`]: the operations (import, sync, publish, snapshots, views, retention,
//!   scheduling, gc, verify), written once for every front end;
//! - [`http`]: the HTTP server (hyper on io_uring runtimes) and its pages;
//! - [`cli`]: the command line and the demo.

pub mod app;
pub mod cli;
pub mod domain;
pub mod formats;
pub mod http;
pub mod store;
