//! `sluice-keeper`: the keeper server's configuration, network service and start-up, around
//! the actors in `sluice-actors` and the sans-IO core in `sluice-keeper-core`.
//!
//! - [`config`]: the configuration file (zoo.cfg's keys).
//! - [`service`]: the `sluice-keeper/1` service (sessions on ordered channels).
//! - [`server`]: start-up, standalone or as an ensemble member.
//! - [`zookeeper`]: the ZooKeeper door (ZooKeeper's client protocol over TCP).
//! - [`ensemble`], [`store`]: the durable state (the `sluice-ensemble` crate, below the
//!   actors that drive it).
pub use sluice_ensemble as ensemble;
pub use sluice_ensemble::store;
pub mod config;
pub mod server;
pub mod service;
pub mod zookeeper;
