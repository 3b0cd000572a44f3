//! `sluice-broker`: the broker around the sans-IO rules in `sluice-broker-core`.
//!
//! - [`config`]: `server.properties`, with Kafka's keys and defaults.
//! - [`server`]: running a broker (listener, actors, cluster membership, shutdown).
//! - [`membership`]: keeper session, `/brokers/ids/<id>`, the `/controller` election.
//! - [`controller`]: the controller actor (a shell around `ControllerCore`).
//! - [`replica_manager`]: turns cluster updates into partition roles (leader / follower);
//!   the routing table.
//! - [`partition`]: the `Partition` actor that owns one partition's log, as leader (ISR,
//!   high watermark, lag eviction) or follower.
//! - [`fetcher`]: the `FollowerFetcher` actors that replicate from leaders.
//! - [`isr`]: a leader's conditional ISR writes to the keeper.
//! - [`log_manager`]: flush / retention timers and recovery-point checkpoints.
//! - [`service`]: the `sluice-broker/2` request handlers.
//! - [`group`]: consumer groups: the `GroupManager` and a `GroupCoordinator` actor per group.
//! - [`stats`]: the broker's state as Prometheus gauges.
pub mod clock;
pub mod config;
pub mod controller;
pub mod fetcher;
pub mod group;
pub mod isr;
pub mod lag;
pub mod log_manager;
pub mod membership;
pub mod partition;
pub mod replica_manager;
pub mod server;
pub mod service;
pub mod stats;
