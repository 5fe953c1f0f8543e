//! Formats: what Cairn reads and writes, as pure transformations over the domain types.
//! `.rpm` headers in ([`rpmread`]), repository metadata out and in ([`repodata`]),
//! package-set differences ([`diff`]), OpenPGP keys and signatures ([`openpgp`]), installation trees' `.treeinfo` ([`treeinfo`]),
//! and sample `.rpm` files built for the demo, the
//! tests and the benchmarks ([`samples`]). Nothing here touches the pool or the catalog.

pub mod diff;
pub mod mirrors;
pub mod openpgp;
pub mod repodata;
pub mod rpmcheck;
pub mod rpmread;
pub mod samples;
pub mod treeinfo;
