//! `sluice-broker`: the broker around the sans-IO rules in `sluice-broker-core`.
//!
//! - [`config`]: `server.properties`, with Kafka's keys and defaults.
//! - [`server`]: running a broker (listener, actors, cluster membership, shutdown).
//! - [`membership`]: keeper session, `/brokers/ids/<id>`, the `/controller` election.
//! - [`controller`]: the controller actor (a shell around `ControllerCore`).
//! - [`replica_manager`]: turns cluster updates into partition leaders; the routing table.
//! - [`partition`]: the `PartitionLeader` actor that owns one partition's log.
//! - [`log_manager`]: flush / retention timers and recovery-point checkpoints.
//! - [`service`]: the `sluice-broker/1` request handlers.
pub mod clock;
pub mod config;
pub mod controller;
pub mod log_manager;
pub mod membership;
pub mod partition;
pub mod replica_manager;
pub mod server;
pub mod service;
