//! `sluice-keeper`: the keeper server around the sans-IO core in `sluice-keeper-core`.
//!
//! - [`store`]: the durable transaction log and snapshots in `dataDir`.
//! - [`config`]: the configuration file (zoo.cfg's keys).
//! - [`server`]: the database and session actors and the `sluice-keeper/1` service.
pub mod config;
pub mod ensemble;
pub mod server;
pub mod store;
