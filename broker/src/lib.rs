//! `sluice-broker`: the broker's configuration, network service and start-up, around the
//! actors in `sluice-actors` and the rules in `sluice-broker-core`.
//!
//! - [`config`]: `server.properties`, with Kafka's keys and defaults (the
//!   `sluice-broker-config` crate, below the actors that read it).
//! - [`server`]: running a broker (listener, actors, cluster membership, shutdown).
//! - [`service`]: the request handlers of `sluice-broker/3` and `sluice-interbroker/2`.
//! - [`kafka`]: the Kafka door: Kafka's wire protocol on the `SSL` / `PLAINTEXT` listeners,
//!   translated into the same service calls.
//! - [`stats`]: the broker's state as Prometheus gauges.
//!
//! The actors (membership, partitions, fetchers, controller, replica and log managers,
//! group coordinators, znode watchers) are in `sluice_actors::broker`.
pub use sluice_broker_config as config;
pub mod kafka;
pub mod server;
pub mod service;
pub mod stats;
