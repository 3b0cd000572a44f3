//! `sluice-broker-core`: the broker's rules, with Kafka's semantics.
//!
//! **No sockets, no clock, no actix, no files.** Inputs are method calls, outputs are
//! returned values (effects for the shell to carry out), so every rule is testable in
//! microseconds.
//!
//! - [`error`]: broker error codes with Kafka's numbers, stable on the wire.
//! - [`metadata`]: what the controller tells brokers and brokers tell clients: brokers,
//!   topics, partition states.
//! - [`znodes`]: Kafka's znode layout and JSON formats (`/brokers/ids/<id>`,
//!   `/brokers/topics/<t>`, `.../partitions/<p>/state`, `/controller`, ...).
//! - [`assignment`]: replica assignment, round-robin and rack-aware (Kafka's algorithm).
//! - [`controller`]: the controller's decisions: which partitions need a leader, whom to
//!   elect, which partition states to write (with the versions that fence a stale
//!   controller).
//! - [`topic`]: topic names and per-topic configuration keys.
//! - [`roles`]: which updates a broker takes, the role each gives it per partition
//!   (leader with its ISR, or follower of a leader at an epoch), and the role machine
//!   ([`roles::step`]) a partition takes it by.
//! - [`partition`]: a partition leader's rules: the high watermark, produce admission,
//!   read visibility, the follower fetch range, `ListOffsets`, `acks=all` completion.
//! - [`fetch`]: a fetch's long poll: each partition's byte budget, when to answer.
//! - [`fetch_session`]: Kafka's incremental fetch sessions (KIP-227): what a session's
//!   fetch reads and which partitions its answer carries.
//! - [`replica`]: follower replication's rules: the leader's view of its replicas (high
//!   watermark, ISR shrink and expansion) and where a follower truncates on a leader change.
//! - [`group`]: a consumer group's membership, generations, initial rebalance delay,
//!   sessions and committed offsets (Kafka's group coordinator rules).
//! - [`group_log`]: `__consumer_offsets` in Kafka's formats: a group's partition, offset and
//!   group-metadata records, and folding them back into groups.
//! - [`order`]: holding a partition's later produces after a failure until the resend,
//!   so a producer's order survives retries.

pub mod acl;
pub mod assignment;
pub mod controller;
pub mod error;
pub mod fetch;
pub mod fetch_session;
pub mod group;
pub mod group_log;
pub mod metadata;
pub mod order;
pub mod partition;
pub mod replica;
pub mod roles;
pub mod throttle;
pub mod topic;
pub mod znodes;

pub use error::BrokerError;
pub use metadata::{BrokerEndpoint, ClusterUpdate, PartitionState, TopicState};
pub use topic::TopicPartition;
