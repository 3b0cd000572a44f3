//! `sluice-broker/3`: what clients say to a broker (what brokers say to each other is
//! [`crate::interbroker`], a protocol of its own).
//!
//! Record batches travel as opaque bytes in Kafka's RecordBatch v2 format: the producer
//! encodes them, the leader checks and stores them as they are (rewriting only the base
//! offset), and a fetch returns the stored bytes.
//!
//! Ordering: a producer sends its [`Produce`] and [`ProduceMany`] requests for one broker on
//! one ordered channel, and the broker hands them (a `ProduceMany`'s batches in list order)
//! to its partition leaders in arrival order, so a producer's batches for one partition are
//! applied in the order it sent them. Every other request is a plain call.
//!
//! Errors are [`BrokerError`]s with Kafka's codes. Per-partition results carry their own
//! error so one bad partition does not fail a whole fetch.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
pub use sluice_broker_core::acl::{self, AclBinding, AclFilter};
pub use sluice_broker_core::controller::ElectionType;
pub use sluice_broker_core::metadata::BrokerEndpoint;
pub use sluice_broker_core::topic::ConfigOp;
pub use sluice_broker_core::BrokerError;

/// `ListOffsets`' special timestamps: -1, the latest offset a consumer can read to (the high
/// watermark), and -2, the log start.
pub use sluice_broker_core::partition::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};

/// Asks for brokers, the controller and topics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataRequest {
    /// Topics to describe; `None` for all.
    pub topics: Option<Vec<String>>,
    /// Create named topics that do not exist, when the broker's
    /// `auto.create.topics.enable` allows it.
    pub allow_auto_create: bool,
}

/// The cluster as the answering broker knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// `/cluster/id`.
    pub cluster_id: String,
    /// The controller's broker id, if known.
    pub controller_id: Option<i32>,
    /// Live brokers.
    pub brokers: Vec<BrokerEndpoint>,
    /// The topics asked for (all when none were named), sorted by name.
    pub topics: Vec<TopicMetadata>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// The name.
    pub name: String,
    /// Why the topic cannot be described (unknown, being created, invalid name).
    pub error: Option<BrokerError>,
    /// One of the cluster's own topics.
    pub internal: bool,
    /// Partitions, by number.
    pub partitions: Vec<PartitionMetadata>,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMetadata {
    /// Its number.
    pub partition: i32,
    /// The leader, or `None` when offline or not yet elected.
    pub leader: Option<i32>,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// Assigned replicas (the first is preferred).
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Assigned replicas on brokers that are not live.
    pub offline_replicas: Vec<i32>,
}

/// Appends record batches to one partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Produce {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// 0: no acknowledgement wanted; 1: the leader has it; -1 (`all`): every in-sync replica
    /// has it.
    pub acks: i16,
    /// How long the leader may wait for the in-sync replicas (`acks=all`).
    pub timeout_ms: u32,
    /// One or more RecordBatch v2 batches, back to back.
    #[serde(with = "sluice_net::shared_bytes")]
    pub records: Bytes,
    /// A resend of a batch that failed. On an ordered channel a retriable failure holds the
    /// partition's later produces (`OutOfOrderSequence`) until its resend arrives, so the
    /// order sent is the order appended (see `sluice_broker_core::order`).
    pub retry: bool,
}

/// Appends record batches to several partitions in one request: Kafka's produce request
/// shape. A producer sends its batches for one broker that are ready together this way;
/// each is applied as its own [`Produce`] would be, in list order (so on an ordered channel
/// the order guard sees them in the order sent), and each gets its own answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProduceMany {
    /// As [`Produce::acks`], for every batch.
    pub acks: i16,
    /// As [`Produce::timeout_ms`].
    pub timeout_ms: u32,
    /// The batches, in the order sent.
    pub batches: Vec<ProduceBatch>,
}

/// One partition's batches in a [`ProduceMany`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProduceBatch {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// One or more RecordBatch v2 batches, back to back.
    #[serde(with = "sluice_net::shared_bytes")]
    pub records: Bytes,
    /// A resend of a batch that failed ([`Produce::retry`]).
    pub retry: bool,
}

impl ProduceMany {
    /// The batches as the single-partition produces they stand for, in order.
    pub fn split(self) -> impl Iterator<Item = Produce> {
        let (acks, timeout_ms) = (self.acks, self.timeout_ms);
        self.batches.into_iter().map(move |b| Produce {
            topic: b.topic,
            partition: b.partition,
            acks,
            timeout_ms,
            records: b.records,
            retry: b.retry,
        })
    }
}

/// Where a produce landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// The broker's append time when the topic uses `LogAppendTime`, else -1.
    pub log_append_time: i64,
    /// The partition's log start offset.
    pub log_start_offset: i64,
}

/// Reads records from partitions (a long poll).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fetch {
    /// The broker waits up to this long for `min_bytes` to be available.
    pub max_wait_ms: u32,
    /// Answer as soon as this many bytes are available.
    pub min_bytes: u32,
    /// Most bytes in the whole answer (at least one batch is returned even if larger).
    pub max_bytes: u32,
    /// What to read.
    pub partitions: Vec<FetchPartition>,
}

/// One partition to fetch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset wanted.
    pub offset: i64,
    /// Most bytes for this partition.
    pub max_bytes: u32,
}

/// What a fetch returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchResponse {
    /// One entry per partition asked for, in the same order.
    pub partitions: Vec<FetchedPartition>,
}

/// One partition's records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchedPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Why nothing was read, if so.
    pub error: Option<BrokerError>,
    /// The high watermark: consumers read below it.
    pub high_watermark: i64,
    /// The log start offset.
    pub log_start_offset: i64,
    /// Whole batches (the first may start before the offset asked for: skip its earlier
    /// records).
    #[serde(with = "sluice_net::shared_bytes")]
    pub records: Bytes,
    /// For a replica fetch while traces are exported: the context of the leader's
    /// `follower_fetch` span for each traced append these records carry, so the follower's
    /// own append joins each produce's trace. Empty otherwise.
    pub traces: Vec<sluice_net::TraceContext>,
}

/// Deletes the records below an offset in each partition (Kafka's DeleteRecords): each
/// partition's log start moves there. Sent to the partitions' leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteRecords {
    /// What to delete.
    pub partitions: Vec<DeleteRecordsPartition>,
}

/// One partition's deletion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteRecordsPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Delete the records below it; -1: below the high watermark (everything committed).
    pub offset: i64,
}

/// One partition's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedRecords {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The partition's new log start (Kafka's low watermark), or why not.
    pub result: Result<i64, BrokerError>,
}

/// Moves partitions' leadership to their preferred replica (the first of their replica
/// list), as kafka-leader-election.sh's `--election-type preferred`. Any broker takes it and
/// hands it to the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreferredElection {
    /// The partitions (topic, partition); `None`: every partition.
    pub partitions: Option<Vec<(String, i32)>>,
}

/// An election of `kind` (kafka-leader-election.sh's `--election-type preferred|unclean`):
/// preferred moves leadership back to each partition's first replica; unclean gives a
/// partition without a live leader the first live replica, in sync or not. Any broker takes
/// it and hands it to the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Election {
    /// Which election.
    pub kind: sluice_broker_core::controller::ElectionType,
    /// The partitions (topic, partition); `None`: every partition.
    pub partitions: Option<Vec<(String, i32)>>,
}

/// Moves partitions' replicas to other brokers (kafka-reassign-partitions.sh `--execute`,
/// Kafka's AlterPartitionReassignments): each partition's target replicas, the preferred
/// leader first. Any broker takes it and writes `/admin/reassign_partitions` for the
/// controller; the answer comes once the moves are recorded, not when they are done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterReassignments {
    /// (topic, partition, target replicas).
    pub moves: Vec<(String, i32, Vec<i32>)>,
}

/// Per-partition outcomes of [`AlterReassignments`], in request order.
pub type ReassignmentResults = Vec<(String, i32, Result<(), BrokerError>)>;

/// The partition moves in progress (Kafka's ListPartitionReassignments).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListReassignments {
    /// Only these partitions; `None`: all.
    pub partitions: Option<Vec<(String, i32)>>,
}

/// One partition move in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassigning {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The replicas assigned now (during a move: the target and the leaving ones).
    pub replicas: Vec<i32>,
    /// The replicas it moves to.
    pub target: Vec<i32>,
    /// Target replicas still joining: not assigned yet, or not yet in sync.
    pub adding: Vec<i32>,
    /// Assigned replicas that leave once the target is in sync.
    pub removing: Vec<i32>,
}

/// Per-partition outcomes of an election, in request order.
pub type ElectionResults = Vec<(String, i32, Result<(), BrokerError>)>;

/// The log directories of the broker asked, with the partitions each holds
/// (kafka-log-dirs.sh).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogDirs {}

/// Changes a topic's config overrides (kafka-configs.sh `--alter --entity-type topics`):
/// Kafka's IncrementalAlterConfigs. Every broker applies the change without a restart.
/// Needs AlterConfigs on the topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterTopicConfigs {
    /// The topic.
    pub topic: String,
    /// The changes, applied in order.
    pub ops: Vec<ConfigOp>,
    /// Check only; change nothing.
    pub validate_only: bool,
}

/// Changes the cluster-wide dynamic broker defaults (kafka-configs.sh `--alter --entity-type
/// brokers --entity-default`), kept in `/config/brokers/<default>`: every broker applies them
/// without a restart, under each topic's own overrides. Keys: `DYNAMIC_BROKER_KEYS`. Needs
/// AlterConfigs on the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterBrokerDefaults {
    /// The changes, applied in order.
    pub ops: Vec<ConfigOp>,
    /// Check only; change nothing.
    pub validate_only: bool,
}

/// The cluster-wide dynamic broker defaults (DescribeConfigs on the cluster).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DescribeBrokerDefaults {}

/// Changes one broker's own dynamic configs (kafka-configs.sh `--alter --entity-type brokers
/// --entity-name ID`), kept in `/config/brokers/<id>`: the keys of [`AlterBrokerDefaults`],
/// over the cluster-wide defaults, on that broker only, without a restart. The broker must be
/// live. Needs AlterConfigs on the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterBrokerConfigs {
    /// The broker.
    pub broker: i32,
    /// The changes, applied in order.
    pub ops: Vec<ConfigOp>,
    /// Check only; change nothing.
    pub validate_only: bool,
}

/// One broker's own dynamic configs (DescribeConfigs on the cluster).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DescribeBrokerConfigs {
    /// The broker.
    pub broker: i32,
}

/// Grows a topic to `count` partitions (kafka-topics.sh `--alter --partitions`; never
/// shrinks). Needs Alter on the topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatePartitions {
    /// The topic.
    pub topic: String,
    /// The new partition count.
    pub count: i32,
    /// The new partitions' replicas (broker ids, preferred leader first), or `None` to let
    /// the cluster place them.
    pub assignment: Option<Vec<Vec<i32>>>,
    /// Check only; change nothing.
    pub validate_only: bool,
}

/// Adds ACLs (kafka-acls.sh `--add`): each one is added, or says why not. Needs Alter on
/// the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAcls {
    /// The ACLs.
    pub acls: Vec<AclBinding>,
}

/// The ACLs a filter takes (kafka-acls.sh `--list`). Needs Describe on the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DescribeAcls {
    /// The filter.
    pub filter: AclFilter,
}

/// Removes the ACLs each filter takes (kafka-acls.sh `--remove`); per filter, those removed
/// or why not. Needs Alter on the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteAcls {
    /// The filters.
    pub filters: Vec<AclFilter>,
}

/// One log directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDirDescription {
    /// Its path on the broker.
    pub path: String,
    /// (topic, partition, bytes on disk), sorted.
    pub partitions: Vec<(String, i32, u64)>,
}

/// Looks up offsets by time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListOffsets {
    /// What to look up.
    pub partitions: Vec<ListOffsetsPartition>,
}

/// One lookup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListOffsetsPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// [`LATEST_TIMESTAMP`], [`EARLIEST_TIMESTAMP`], or a time in ms: the first offset
    /// whose record timestamp is at least it.
    pub timestamp: i64,
}

/// One lookup's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// `(offset, timestamp)`; for a time with no later record, the log end offset and -1.
    pub result: Result<(i64, i64), BrokerError>,
}

/// Creates topics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTopics {
    /// The topics.
    pub topics: Vec<NewTopic>,
    /// Check only; create nothing.
    pub validate_only: bool,
}

/// One topic to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTopic {
    /// The name.
    pub name: String,
    /// Partitions; `None` for the broker's `num.partitions`.
    pub partitions: Option<i32>,
    /// Replication factor; `None` for the broker's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    /// Explicit replicas per partition (then `partitions` and `replication_factor` must be
    /// `None`).
    pub assignment: Option<BTreeMap<i32, Vec<i32>>>,
    /// Per-topic config overrides.
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic of `partitions` partitions with `replication_factor` replicas each (Kafka's
    /// `new NewTopic(name, numPartitions, replicationFactor)`), no config overrides.
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            partitions: Some(partitions),
            replication_factor: Some(replication_factor),
            assignment: None,
            configs: BTreeMap::new(),
        }
    }

    /// Adds the per-topic config override `key=value`.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// Deletes topics (when the cluster's `delete.topic.enable` allows it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteTopics {
    /// The topics.
    pub topics: Vec<String>,
}

/// Per-topic outcomes of a create or delete, in request order.
pub type TopicResults = Vec<(String, Result<(), BrokerError>)>;

/// Reads topics' config overrides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DescribeConfigs {
    /// The topics.
    pub topics: Vec<String>,
}

/// A topic's overrides (keys not listed take the broker's defaults).
pub type TopicConfigs = Vec<(String, Result<BTreeMap<String, String>, BrokerError>)>;

/// Asks for a producer id (Kafka's InitProducerId, without transactions): an idempotent
/// producer stamps its batches with it, a per-partition sequence and epoch 0, and the
/// partition leaders drop a batch sent twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitProducerId {}

/// A producer id and its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdAndEpoch {
    /// Unique in the cluster (allocated in blocks through the keeper).
    pub producer_id: i64,
    /// The epoch (0 for a new id).
    pub producer_epoch: i16,
}

/// The name of the internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Asks any broker which broker coordinates a group (Kafka's FindCoordinator). The first
/// ask creates `__consumer_offsets` if it does not exist (and answers
/// `CoordinatorNotAvailable` until its partitions have leaders).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindCoordinator {
    /// The group id.
    pub group_id: String,
}

/// Joins a group, or rejoins it for a rebalance (Kafka's JoinGroup). The answer waits until
/// the rebalance's join phase completes: every known member has rejoined, the rebalance
/// timeout has passed, or (for an empty group) `group.initial.rebalance.delay.ms` has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinGroup {
    /// The group id.
    pub group_id: String,
    /// The member id from an earlier join; empty for a new member (the coordinator makes
    /// one).
    pub member_id: String,
    /// `client.id`, shown by `consumer-groups --describe`.
    pub client_id: String,
    /// A member that sends no heartbeat for this long is removed (`session.timeout.ms`).
    pub session_timeout_ms: i32,
    /// How long the coordinator waits for members to rejoin in a rebalance
    /// (`max.poll.interval.ms`).
    pub rebalance_timeout_ms: i32,
    /// "consumer" for consumers.
    pub protocol_type: String,
    /// The assignors this member supports, preferred first, each with its subscription.
    pub protocols: Vec<(String, Vec<u8>)>,
}

/// Sends the leader's assignment (from the leader) or asks for one's own (Kafka's
/// SyncGroup). The answer waits for the leader's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncGroup {
    /// The group id.
    pub group_id: String,
    /// The generation joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// From the leader: every member's assignment. Empty from the others.
    pub assignments: Vec<(String, Vec<u8>)>,
}

/// Keeps a member alive; the error `RebalanceInProgress` tells it to rejoin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The group id.
    pub group_id: String,
    /// The member's generation.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
}

/// Leaves a group at once (a clean close), so its partitions move without waiting for the
/// session timeout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaveGroup {
    /// The group id.
    pub group_id: String,
    /// The members leaving.
    pub member_ids: Vec<String>,
}

/// Commits offsets for a group (Kafka's OffsetCommit). A member of a group commits with its
/// generation; a consumer that assigns its partitions itself commits with generation -1 and
/// an empty member id, which the coordinator accepts only while the group has no members.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OffsetCommit {
    /// The group id.
    pub group_id: String,
    /// The member's generation, or -1.
    pub generation_id: i32,
    /// The member, or empty.
    pub member_id: String,
    /// What to commit.
    pub offsets: Vec<CommitOffset>,
}

pub use sluice_broker_core::group::{
    CommitOffset, CommittedOffset, GroupDescription, GroupOverview, JoinResult, MemberDescription,
};

/// Reads a group's committed offsets (Kafka's OffsetFetch).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OffsetFetch {
    /// The group id.
    pub group_id: String,
    /// The partitions; `None` for every partition the group has an offset for.
    pub partitions: Option<Vec<(String, i32)>>,
}

/// Lists the groups this broker coordinates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListGroups {}

/// Describes groups this broker coordinates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DescribeGroups {
    /// The group ids.
    pub groups: Vec<String>,
}

/// Deletes empty groups and their offsets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteGroups {
    /// The group ids.
    pub groups: Vec<String>,
}

/// Per-group outcomes, in request order.
pub type GroupResults = Vec<(String, Result<(), BrokerError>)>;

sluice_net::protocol! {
    /// The broker's client protocol.
    pub protocol BrokerProtocol {
        // 2: a replica fetch's partitions carry the trace contexts of their traced appends;
        // ProduceMany. 3: what brokers say to each other moved to `sluice-interbroker/1`.
        alpn: "sluice-broker/3",
        request: BrokerRequest,
        response: BrokerResponse,
        push: (),
        handler: BrokerHandler,
        rpcs: {
            metadata: Metadata(MetadataRequest) -> Result<Metadata, BrokerError>;
            produce: Produce(Produce) -> Result<ProduceResponse, BrokerError>;
            produce_many: ProduceMany(ProduceMany) -> Result<Vec<Result<ProduceResponse, BrokerError>>, BrokerError>;
            fetch: Fetch(Fetch) -> Result<FetchResponse, BrokerError>;
            list_offsets: ListOffsets(ListOffsets) -> Result<Vec<ListedOffset>, BrokerError>;
            create_topics: CreateTopics(CreateTopics) -> Result<TopicResults, BrokerError>;
            delete_topics: DeleteTopics(DeleteTopics) -> Result<TopicResults, BrokerError>;
            describe_configs: DescribeConfigs(DescribeConfigs) -> Result<TopicConfigs, BrokerError>;
            init_producer_id: InitProducerId(InitProducerId) -> Result<ProducerIdAndEpoch, BrokerError>;
            find_coordinator: FindCoordinator(FindCoordinator) -> Result<BrokerEndpoint, BrokerError>;
            join_group: JoinGroup(JoinGroup) -> Result<JoinResult, BrokerError>;
            sync_group: SyncGroup(SyncGroup) -> Result<Vec<u8>, BrokerError>;
            heartbeat: Heartbeat(Heartbeat) -> Result<(), BrokerError>;
            leave_group: LeaveGroup(LeaveGroup) -> Result<(), BrokerError>;
            offset_commit: OffsetCommit(OffsetCommit) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError>;
            offset_fetch: OffsetFetch(OffsetFetch) -> Result<Vec<CommittedOffset>, BrokerError>;
            list_groups: ListGroups(ListGroups) -> Result<Vec<GroupOverview>, BrokerError>;
            describe_groups: DescribeGroups(DescribeGroups) -> Result<Vec<Result<GroupDescription, BrokerError>>, BrokerError>;
            delete_groups: DeleteGroups(DeleteGroups) -> Result<GroupResults, BrokerError>;
            delete_records: DeleteRecords(DeleteRecords) -> Result<Vec<DeletedRecords>, BrokerError>;
            preferred_election: PreferredElection(PreferredElection) -> Result<ElectionResults, BrokerError>;
            log_dirs: LogDirs(LogDirs) -> Result<Vec<LogDirDescription>, BrokerError>;
            create_acls: CreateAcls(CreateAcls) -> Result<Vec<Result<(), BrokerError>>, BrokerError>;
            describe_acls: DescribeAcls(DescribeAcls) -> Result<Vec<AclBinding>, BrokerError>;
            delete_acls: DeleteAcls(DeleteAcls) -> Result<Vec<Result<Vec<AclBinding>, BrokerError>>, BrokerError>;
            alter_topic_configs: AlterTopicConfigs(AlterTopicConfigs) -> Result<(), BrokerError>;
            create_partitions: CreatePartitions(CreatePartitions) -> Result<(), BrokerError>;
            election: Election(Election) -> Result<ElectionResults, BrokerError>;
            alter_broker_defaults: AlterBrokerDefaults(AlterBrokerDefaults) -> Result<(), BrokerError>;
            describe_broker_defaults: DescribeBrokerDefaults(DescribeBrokerDefaults) -> Result<BTreeMap<String, String>, BrokerError>;
            alter_reassignments: AlterReassignments(AlterReassignments) -> Result<ReassignmentResults, BrokerError>;
            list_reassignments: ListReassignments(ListReassignments) -> Result<Vec<Reassigning>, BrokerError>;
            alter_broker_configs: AlterBrokerConfigs(AlterBrokerConfigs) -> Result<(), BrokerError>;
            describe_broker_configs: DescribeBrokerConfigs(DescribeBrokerConfigs) -> Result<BTreeMap<String, String>, BrokerError>;
        }
    }
}
