//! The messages of `sluice-broker/3` a client sends and receives (declared in
//! [`sluice_proto::broker`]). The server's handler trait and the inter-broker protocol are
//! not part of the SDK.
pub use sluice_proto::broker::{
    acl, AclBinding, AclFilter, AlterBrokerConfigs, AlterBrokerDefaults, AlterReassignments,
    AlterTopicConfigs, BrokerEndpoint, BrokerError, BrokerProtocol, CommitOffset, CommittedOffset, ConfigOp,
    CreateAcls, CreatePartitions, CreateTopics, DeleteAcls, DeleteGroups, DeleteRecords,
    DeleteRecordsPartition, DeleteTopics, DeletedRecords, DescribeAcls, DescribeBrokerConfigs,
    DescribeBrokerDefaults, DescribeConfigs, DescribeGroups, Election, ElectionResults, ElectionType, Fetch,
    FetchPartition, FetchResponse, FetchedPartition, FindCoordinator, GroupDescription, GroupOverview,
    GroupResults, Heartbeat, InitProducerId, JoinGroup, JoinResult, LeaveGroup, ListGroups, ListOffsets,
    ListOffsetsPartition, ListReassignments, ListedOffset, LogDirDescription, LogDirs, MemberDescription,
    Metadata, MetadataRequest, NewTopic, OffsetCommit, OffsetFetch, PartitionMetadata, PreferredElection,
    Produce, ProduceBatch, ProduceMany, ProduceResponse, ProducerIdAndEpoch, Reassigning,
    ReassignmentResults, SyncGroup, TopicConfigs, TopicMetadata, TopicResults, EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP, OFFSETS_TOPIC,
};
