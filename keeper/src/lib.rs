//! `sluice-keeper`: the keeper server around the sans-IO core in `sluice-keeper-core`.
//!
//! - [`store`]: the durable transaction log and snapshots in `dataDir`.
pub mod store;
