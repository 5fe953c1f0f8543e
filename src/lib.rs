//! Cairn: an RPM mirror appliance in one process.
//!
//! Layers, each depending only on those above it in this list:
//! - [`package`]: the package model shared by all layers;
//! - [`pool`]: sha256 content-addressed blob storage with batched durability;
//! - [`rpmread`]: `.rpm` headers → [`package::Package`], createrepo_c's rules;
//! - [`repodata`]: repository metadata rendering (primary, filelists, other, repomd);
//! - [`catalog`]: the SQL catalog (SQLite or PostgreSQL), all SQL lives here;
//! - [`config`], [`datadir`]: configuration and data-directory layout;
//! - [`publish`], [`import`]: operations combining pool, catalog and repodata;
//! - [`serve`]: the HTTP server (hyper on io_uring runtimes);
//! - [`cli`], [`demo`]: the command line.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod demo;
pub mod diff;
pub mod gc;
pub mod import;
pub mod metrics;
pub mod package;
pub mod pool;
pub mod progress;
pub mod publish;
pub mod repodata;
pub mod retention;
pub mod rpmread;
pub mod samples;
pub mod schedule;
pub mod serve;
pub mod sync;
pub mod verify;
pub mod view;
