//! Storage: where state lives. The content-addressed blob [`pool`], the SQL
//! [`catalog`] (all SQL is there), and the data directory's layout and locks
//! ([`datadir`]). The store knows formats and the domain, never the operations that
//! combine them.

pub mod catalog;
pub mod datadir;
pub mod pool;
