//! The domain: value types every layer shares and nothing else. No I/O, no SQL, no
//! formats; every module here depends only on the standard library and small crates.

pub mod actor;
pub mod names;
pub mod package;
pub mod schedule;
pub mod status;
