//! `sluice-proto`: every Sluice wire protocol, below the SDK and the servers.
//!
//! Each module declares one protocol with [`sluice_net::protocol!`]: its ALPN (name and
//! version), its messages, the pairing of every request with its reply, and the handler
//! trait a server implements.
//!
//! | module | ALPN | between | who may open it |
//! |---|---|---|---|
//! | [`keeper`] | `sluice-keeper/1` | a keeper client (broker, SDK, CLI) and a keeper server | any certificate of the cluster CA |
//! | [`broker`] | `sluice-broker/3` | a client (SDK, CLI) and a broker | any certificate of the cluster CA |
//! | [`interbroker`] | `sluice-interbroker/2` | broker and broker (followers, the controller) | node certificates only |
//! | [`peer`] | `sluice-peer/2` | keeper ensemble members | node certificates only |
//! | [`kafka`] | Kafka's wire protocol over TCP (the broker's `SSL` / `PLAINTEXT` listeners) | Kafka's own clients and a broker | `SSL`: any certificate of the cluster CA; `PLAINTEXT`: anyone, as `User:ANONYMOUS` |
//!
//! The error codes the messages carry are the cores' ([`sluice_keeper_core::KeeperError`],
//! [`sluice_broker_core::BrokerError`]): the rules return them, so they live beside the
//! rules, and are re-exported here. So are the small shared types ([`TopicPartition`]).
//!
//! What may not live here: behaviour. A protocol module holds types and their documentation;
//! servers implement the handler traits in their own crates, and the SDK re-exports only
//! what a client uses (`sluice_client::broker::proto`, `sluice_client::keeper::proto`).

pub mod broker;
pub mod interbroker;
pub mod keeper;
pub mod peer;

pub use sluice_broker_core::{BrokerError, TopicPartition};
/// Kafka's wire protocol (its own crate, `sluice-kafka-proto`, so the fuzz build stays small).
pub use sluice_kafka_proto as kafka;
pub use sluice_keeper_core::KeeperError;
