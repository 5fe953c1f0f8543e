//! Shared helpers for the integration tests, by kind. Each test binary uses a part of
//! them, so unused ones are allowed here.
#![allow(dead_code)]

mod fixtures;
mod gpg;
mod harness;
mod tools;
mod upstream;
mod xml;

// Each test binary re-exports all of them and uses some.
#[allow(unused_imports)]
pub use {fixtures::*, gpg::*, harness::*, tools::*, upstream::*, xml::*};
