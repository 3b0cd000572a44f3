//! `sluice-client`: the TLS-secured client SDK.
//!
//! # A two-minute tour
//!
//! Every client speaks QUIC with mutual TLS: it needs the cluster's CA certificate and a
//! certificate of its own (`sluice certs issue`, or `sluice dev up`'s `sluice-dev/certs`). The
//! tools and the examples (`client/examples/`) read them from `SLUICE_TLS_CA`,
//! `SLUICE_TLS_CERT` and `SLUICE_TLS_KEY`, and the brokers from `SLUICE_BOOTSTRAP_SERVER`.
//!
//! Produce, and wait for the acknowledgement:
//!
//! ```no_run
//! # async fn tour() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_client::broker::{Acks, ClientConfig, Producer, ProducerConfig, ProducerRecord};
//!
//! let client = ClientConfig::from_env()?;
//! let producer = Producer::new(ProducerConfig::new(client).acks(Acks::All))?;
//! let delivery = producer.send(ProducerRecord::new("orders", "42 apples").with_key("alice")).await?;
//! let landed = delivery.await?;
//! println!("orders-{} at offset {}", landed.partition, landed.offset);
//! producer.close().await;
//! # Ok(()) }
//! ```
//!
//! Consume as a member of a group, as a [`futures_util::Stream`], committing what was
//! processed:
//!
//! ```no_run
//! # async fn tour() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use sluice_client::broker::{ClientConfig, Consumer, ConsumerConfig};
//!
//! let config = ConsumerConfig::new(ClientConfig::from_env()?).group_id("billing").enable_auto_commit(false);
//! let mut consumer = Consumer::new(config)?;
//! consumer.subscribe(["orders"])?;
//! let mut records = consumer.stream();
//! while let Some(record) = records.next().await {
//!     let record = record?;
//!     println!("{}-{}@{}", record.topic, record.partition, record.offset);
//!     records.commit().await?; // what was yielded so far, not what is buffered
//! }
//! # Ok(()) }
//! ```
//!
//! Administer topics:
//!
//! ```no_run
//! # async fn tour() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_client::broker::{Admin, ClientConfig};
//! use sluice_client::broker::proto::NewTopic;
//!
//! let admin = Admin::new(ClientConfig::from_env()?)?;
//! for (topic, result) in admin.create_topics(vec![NewTopic::new("orders", 6, 3)], false).await? {
//!     println!("{topic}: {result:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! Coordinate through the keeper: a lock shared with kazoo's `Lock` on the same path (see
//! [`keeper::recipes`] for the read/write lock, election, barrier, caches and counter):
//!
//! ```no_run
//! # async fn tour() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use sluice_client::keeper::{CreateMode, KeeperClient, KeeperClientOptions, Lock};
//!
//! let tls = sluice_client::tls_from_env()?;
//! let (keeper, events) = KeeperClient::connect("127.0.0.1:2181/app", &tls, KeeperClientOptions::default()).await?;
//! keeper.ensure_path("/jobs").await?;
//! keeper.create("/jobs/job-", b"resize", CreateMode::PersistentSequential).await?;
//! let mut lock = Lock::new(keeper.clone(), events, "/locks/resize");
//! if lock.acquire(Duration::from_secs(10)).await? {
//!     // ... only one process at a time gets here ...
//!     lock.release().await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! - [`keeper`]: the keeper protocol (`sluice-keeper/1`) and an async keeper client with
//!   chroot, session resumption across servers and watch events.
//!
//! The protocols themselves are declared in `sluice-proto`; this crate re-exports only the
//! messages a client sends and receives (no server handler traits, nothing brokers say to
//! each other).
//! - [`broker`]: the broker protocol (`sluice-broker/3`) and the admin, producer and
//!   consumer clients (Kafka's settings, partitioner and delivery rules), with their
//!   configuration.
#![warn(missing_docs)]

pub mod broker;
pub mod keeper;

pub use broker::{tls_files_from_env, tls_from_env};
