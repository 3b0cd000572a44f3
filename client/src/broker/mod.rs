//! The broker SDK: the `sluice-broker/3` protocol and async admin, producer and consumer
//! clients over mutually authenticated QUIC.
//!
//! - [`config`]: [`ClientConfig`], [`ProducerConfig`], [`ConsumerConfig`] under Kafka's key
//!   names and defaults, from builders or properties files.
//! - [`cluster`]: the shared metadata cache and transport ([`Cluster`]).
//! - [`admin`]: [`Admin`]: create, delete, list and describe topics; describe the cluster.
//! - [`producer`]: [`Producer`]: batching per partition, linger, compression, retries that
//!   keep a partition's order, `acks`, bounded buffer memory.
//! - [`consumer`]: [`Consumer`]: assigned or subscribed partitions, seeks, `poll` with one
//!   fetch per leader, group commits.
//! - [`group`]: the consumer's side of the group protocol: coordinator lookup, join / sync
//!   with the leader running the assignor, heartbeats, commits, leave.
//! - [`partitioner`]: Kafka's default partitioner (murmur2 for keys, sticky without).
//! - [`assignor`]: the consumer protocol's subscription and assignment bytes and Kafka's
//!   range, round-robin and sticky partition assignors.
//! - [`proto`]: the wire messages.
//!
//! ```no_run
//! # async fn sketch(files: sluice_net::TlsFiles) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use sluice_client::broker::*;
//!
//! let client = ClientConfig::new(["broker1:9092"]).tls_files(files);
//! let producer = Producer::new(ProducerConfig::new(client.clone()))?;
//! let delivered = producer.send(ProducerRecord::new("events", "hello")).await?.await?;
//! let mut consumer = Consumer::new(ConsumerConfig::new(client))?;
//! consumer.assign([("events", delivered.partition)]);
//! consumer.seek("events", delivered.partition, delivered.offset)?;
//! let records = consumer.poll(Duration::from_secs(1)).await?;
//! # Ok(()) }
//! ```
mod accumulator;
pub mod admin;
pub mod assignor;
pub mod cluster;
pub mod config;
pub mod consumer;
mod fetch;
pub mod group;
pub mod partitioner;
pub mod producer;
pub mod proto;

/// A client span (`otel.kind = client`) named `op` (`send`, `fetch`, `CreateTopics`) when
/// traces are exported, [`tracing::Span::none`] otherwise (a record's send makes no span
/// nobody reads). Requests made inside it carry its trace context.
pub(crate) fn client_span(op: &'static str, topic: &str) -> tracing::Span {
    if !sluice_net::trace::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "client",
        otel.name = op,
        otel.kind = "client",
        topic,
        trace_id = tracing::field::Empty,
    );
    sluice_net::trace::record_trace_id(&span);
    span
}

pub use admin::{Admin, AdminError, ClusterDescription};
pub use cluster::{Cluster, ClusterError, ClusterView, TopicView};
pub use config::{
    tls_files_from_env, tls_from_env, Acks, AutoOffsetReset, ClientConfig, ConfigError, ConsumerConfig,
    FromProperties, ProducerConfig,
};
pub use consumer::{
    CommitHandle, Consumer, ConsumerError, ConsumerRecord, OffsetAndTimestamp, RebalanceListener,
    RecordStream,
};
pub use group::GroupError;
pub use producer::{DeliveryFuture, Producer, ProducerError, ProducerRecord, RecordMetadata};
pub use proto::{NewTopic, TopicMetadata, TopicResults};
pub use sluice_log::TimestampType;

/// A partition of a topic (its `Display` is Kafka's `topic-partition`).
pub use sluice_proto::TopicPartition;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Compiles only if the clients and their futures can move between threads (so they
    /// work with `tokio::spawn`).
    #[allow(dead_code)]
    fn clients_and_their_futures_are_send(p: Producer, mut c: Consumer, a: Admin) {
        fn send<T: Send>(_: T) {}
        fn sync<T: Send + Sync>(_: &T) {}
        sync(&p);
        sync(&a);
        send(p.send(ProducerRecord::new("t", "v")));
        send(p.flush());
        send(p.close());
        send(a.create_topics(vec![], false));
        send(a.list_topics(false));
        send(c.poll(Duration::ZERO));
        send(c.position("t", 0));
        send(c);
    }

    #[test]
    fn topic_partitions_print_as_kafka_names_them() {
        assert_eq!(TopicPartition::new("orders", 3).to_string(), "orders-3");
        assert_eq!(TopicPartition::from(("a", 1)), TopicPartition { topic: "a".into(), partition: 1 });
    }
}
