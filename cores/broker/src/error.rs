//! Broker errors, each with Kafka's error code.
//!
//! Stable on the wire: bincode encodes the variant index, so variants are only ever
//! appended, never reordered or removed (a retired variant stays, documented as retired).
//! [`BrokerError::code`] gives Kafka's number, so people who know Kafka's codes recognise
//! them, and a Kafka-protocol front door could answer with them.

use serde::{Deserialize, Serialize};

/// What went wrong with a broker request: what, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BrokerError {
    /// The topic or partition does not exist (Kafka 3).
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition {
        /// The topic.
        topic: String,
        /// The partition (-1 when the whole topic is unknown).
        partition: i32,
    },
    /// This broker does not lead the partition; refresh metadata and go to the leader
    /// (Kafka 6).
    #[error("broker {broker} is not the leader of {topic}-{partition} (leader: {})", fmt_leader(*.leader))]
    NotLeaderForPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker that answered.
        broker: i32,
        /// The leader this broker knows of, if any.
        leader: Option<i32>,
    },
    /// The partition has no leader right now (election in progress, or a new topic);
    /// retry after refreshing metadata (Kafka 5).
    #[error("{topic}-{partition} has no leader at the moment")]
    LeaderNotAvailable {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A batch is larger than `message.max.bytes` (Kafka 10).
    #[error(
        "a batch of {size} bytes exceeds the limit of {max} bytes (message.max.bytes, or the topic's \
         max.message.bytes); send smaller batches (batch.size) or raise the limit"
    )]
    MessageTooLarge {
        /// The batch's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The records do not parse or fail their CRC (Kafka 2).
    #[error("corrupt record batch: {reason}")]
    CorruptMessage {
        /// What is wrong.
        reason: String,
    },
    /// The offset is outside the log (Kafka 1).
    #[error("offset {offset} of {topic}-{partition} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset asked for.
        offset: i64,
        /// The first offset held.
        log_start_offset: i64,
        /// The next offset to be written.
        log_end_offset: i64,
    },
    /// The request did not finish in time (Kafka 7).
    #[error("request timed out after {timeout_ms} ms: {what}")]
    RequestTimedOut {
        /// What was waited for.
        what: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The topic name is invalid (Kafka 17).
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopic {
        /// The name given.
        topic: String,
        /// Why.
        reason: String,
    },
    /// Fewer in-sync replicas than `min.insync.replicas` for `acks=all` (Kafka 19).
    #[error("{topic}-{partition} has {isr} in-sync replicas; acks=all needs min.insync.replicas = {min}")]
    NotEnoughReplicas {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// In-sync replicas now.
        isr: usize,
        /// `min.insync.replicas`.
        min: usize,
    },
    /// `acks` is not -1, 0 or 1 (Kafka 21).
    #[error("acks = {acks} is invalid: use 0, 1 or all (-1)")]
    InvalidRequiredAcks {
        /// The value given.
        acks: i16,
    },
    /// The topic exists already (Kafka 36).
    #[error("topic {topic} already exists")]
    TopicAlreadyExists {
        /// The topic.
        topic: String,
    },
    /// The partition count is invalid (Kafka 37).
    #[error("invalid number of partitions: {reason}")]
    InvalidPartitions {
        /// Why.
        reason: String,
    },
    /// The replication factor is invalid (Kafka 38).
    #[error("invalid replication factor: {reason}")]
    InvalidReplicationFactor {
        /// Why.
        reason: String,
    },
    /// A topic config is invalid (Kafka 40).
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Topic deletion is disabled on this cluster (Kafka 73).
    #[error(
        "topic deletion is disabled (delete.topic.enable=false on broker {broker}); set delete.topic.enable=true \
         in server.properties to allow it"
    )]
    TopicDeletionDisabled {
        /// The broker that refused.
        broker: i32,
    },
    /// A controller request from a controller that has been replaced (Kafka 11).
    #[error("controller epoch {got} is older than the current {current}")]
    StaleControllerEpoch {
        /// The epoch in the request.
        got: i32,
        /// The newest this broker has seen.
        current: i32,
    },
    /// The caller may not do this to the cluster (Kafka 31).
    #[error(
        "{principal} is not authorized to {action} on the cluster (an admin grants it: \
         sluice acls --add --allow-principal {principal} --operation {action} --cluster)"
    )]
    ClusterAuthorizationFailed {
        /// Who asked.
        principal: String,
        /// What.
        action: String,
    },
    /// The broker's disk failed for this partition (Kafka 56).
    #[error("storage error on {topic}-{partition}: {reason}")]
    StorageError {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The failure.
        reason: String,
    },
    /// The broker cannot reach the keeper for this request (Kafka's unknown server error, -1).
    #[error("the broker could not reach the keeper: {reason}")]
    KeeperUnavailable {
        /// Why.
        reason: String,
    },
    /// The request is malformed (Kafka 42).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// Why.
        reason: String,
    },
    /// The broker is shutting down.
    #[error("broker {broker} is shutting down")]
    BrokerShuttingDown {
        /// The broker.
        broker: i32,
    },
    /// An earlier produce of this channel to the partition failed and has not been resent
    /// yet; this one is held back so the partition's order stays the order sent (Kafka 45,
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`). Resend the failed batch first, then this one.
    #[error("{topic}-{partition}: an earlier batch of this producer failed and was not resent yet; resend in order")]
    OutOfOrderSequence {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The batch was appended on the leader, but the ISR shrank below
    /// `min.insync.replicas` before every in-sync replica had it (Kafka 20). It may or may
    /// not survive a leader change; a resend may duplicate it.
    #[error(
        "{topic}-{partition}: appended on the leader, but the ISR shrank to {isr} (below min.insync.replicas = {min}) before it was replicated"
    )]
    NotEnoughReplicasAfterAppend {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// In-sync replicas now.
        isr: usize,
        /// `min.insync.replicas`.
        min: usize,
    },
    /// A replica request carried an older leader epoch than the leader's (Kafka 74): the
    /// asker missed a leader change and must refresh.
    #[error("{topic}-{partition}: leader epoch {got} is older than the current {current}")]
    FencedLeaderEpoch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The epoch in the request.
        got: i32,
        /// The leader's epoch.
        current: i32,
    },
    /// A batch from a producer epoch older than the partition has seen (Kafka 47): a
    /// producer that was replaced; it must not write.
    #[error("{topic}-{partition}: producer {producer_id} epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The newest epoch seen.
        current: i16,
    },
    /// The broker asked is not the controller (Kafka 41): look up `/controller` again.
    #[error("broker {broker} is not the controller")]
    NotController {
        /// The broker asked.
        broker: i32,
    },
    /// A replica request carried a newer leader epoch than this broker knows (Kafka 75):
    /// this broker has not heard of the change yet; retry shortly.
    #[error("{topic}-{partition}: leader epoch {got} is newer than this broker's {current}")]
    UnknownLeaderEpoch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The epoch in the request.
        got: i32,
        /// This broker's epoch.
        current: i32,
    },
    /// No coordinator for the group yet (Kafka 15): `__consumer_offsets` is being created or
    /// its partition has no leader. Retry shortly.
    #[error("no coordinator is available for group {group} yet: {why}")]
    CoordinatorNotAvailable {
        /// The group.
        group: String,
        /// Why not.
        why: String,
    },
    /// This broker is not the group's coordinator (Kafka 16): find the coordinator again.
    #[error("broker {broker} is not the coordinator of group {group}")]
    NotCoordinator {
        /// The group.
        group: String,
        /// The broker asked.
        broker: i32,
    },
    /// The coordinator is still reading the group from `__consumer_offsets` (Kafka 14).
    #[error("group {group}'s coordinator is still loading it from __consumer_offsets")]
    CoordinatorLoadInProgress {
        /// The group.
        group: String,
    },
    /// The member's generation is not the group's (Kafka 22): it missed a rebalance and
    /// must join again.
    #[error("group {group}: generation {got} is not the current {current}; join the group again")]
    IllegalGeneration {
        /// The group.
        group: String,
        /// The generation asked with.
        got: i32,
        /// The group's generation.
        current: i32,
    },
    /// The member's protocols share none with the group's (Kafka 23).
    #[error("group {group}: {why}")]
    InconsistentGroupProtocol {
        /// The group.
        group: String,
        /// What does not match.
        why: String,
    },
    /// The group id is empty or otherwise unusable (Kafka 24).
    #[error("invalid group id {group:?}: {why}")]
    InvalidGroupId {
        /// The group.
        group: String,
        /// Why.
        why: String,
    },
    /// The member is not in the group (Kafka 25): it was removed (session timeout, leave,
    /// coordinator change); join again with no member id.
    #[error("group {group}: unknown member {member}; join the group again")]
    UnknownMemberId {
        /// The group.
        group: String,
        /// The member id asked with.
        member: String,
    },
    /// The session timeout is outside the broker's allowed range (Kafka 26).
    #[error("session timeout {ms} ms is outside the broker's range [{min}, {max}] ms (group.min/max.session.timeout.ms)")]
    InvalidSessionTimeout {
        /// The timeout asked for.
        ms: i32,
        /// `group.min.session.timeout.ms`.
        min: i32,
        /// `group.max.session.timeout.ms`.
        max: i32,
    },
    /// The group is rebalancing (Kafka 27): join again.
    #[error("group {group} is rebalancing; join again")]
    RebalanceInProgress {
        /// The group.
        group: String,
    },
    /// The group still has members (Kafka 68): it cannot be deleted or reset.
    #[error("group {group} is not empty ({members} members): stop its consumers first")]
    NonEmptyGroup {
        /// The group.
        group: String,
        /// Members now.
        members: usize,
    },
    /// No such group (Kafka 69).
    #[error("group {group} does not exist")]
    GroupIdNotFound {
        /// The group.
        group: String,
    },
    /// Offset metadata longer than `offset.metadata.max.bytes` (Kafka 12).
    #[error("offset metadata of {len} bytes is longer than offset.metadata.max.bytes = {max}")]
    OffsetMetadataTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The partition's leader is its preferred replica already (Kafka 84).
    #[error("{topic}-{partition} is led by its preferred replica already")]
    ElectionNotNeeded {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The preferred replica is not live or not in sync, so it cannot lead (Kafka 80).
    #[error("{topic}-{partition}: its preferred replica, broker {preferred}, is not live and in sync; elect again once it is")]
    PreferredLeaderNotAvailable {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The preferred replica.
        preferred: i32,
    },
    /// A member of the group subscribes to the topic, so its offsets stay (Kafka 86).
    #[error(
        "group {group} subscribes to {topic}: its offsets can be deleted once no member subscribes to it"
    )]
    GroupSubscribedToTopic {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
    },
    /// The topic's policy forbids what was asked, e.g. deleting records of a log that is
    /// only compacted (Kafka 44).
    #[error("{topic}-{partition}: {reason}")]
    PolicyViolation {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What the policy forbids and what to do instead.
        reason: String,
    },
    /// The caller may not do this to the topic (Kafka 29).
    #[error(
        "{principal} is not authorized to {operation} topic {topic} (an admin grants it: \
         sluice acls --add --allow-principal {principal} --operation {operation} --topic {topic})"
    )]
    TopicAuthorizationFailed {
        /// Who asked.
        principal: String,
        /// The operation it lacks (Kafka's name).
        operation: String,
        /// The topic.
        topic: String,
    },
    /// The caller may not do this to the group (Kafka 30).
    #[error(
        "{principal} is not authorized to {operation} group {group} (an admin grants it: \
         sluice acls --add --allow-principal {principal} --operation {operation} --group {group})"
    )]
    GroupAuthorizationFailed {
        /// Who asked.
        principal: String,
        /// The operation it lacks (Kafka's name).
        operation: String,
        /// The group.
        group: String,
    },
    /// The caller may not use this transactional id (Kafka 53).
    #[error("{principal} is not authorized to {operation} transactional id {id}")]
    TransactionalIdAuthorizationFailed {
        /// Who asked.
        principal: String,
        /// The operation it lacks (Kafka's name).
        operation: String,
        /// The transactional id.
        id: String,
    },
    /// An unclean election found no live replica to lead (Kafka 83).
    #[error("{topic}-{partition}: no live replica can lead it (replicas {replicas:?}); start one of them, then elect again")]
    EligibleLeadersNotAvailable {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Its replicas.
        replicas: Vec<i32>,
    },
    /// A replica assignment names a broker that is not live, or one twice (Kafka 39).
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment {
        /// Why.
        reason: String,
    },
}

fn fmt_leader(leader: Option<i32>) -> String {
    leader.map_or_else(|| "none".to_string(), |l| l.to_string())
}

impl BrokerError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        use BrokerError::*;
        match self {
            UnknownTopicOrPartition { .. } => 3,
            NotLeaderForPartition { .. } => 6,
            LeaderNotAvailable { .. } => 5,
            MessageTooLarge { .. } => 10,
            CorruptMessage { .. } => 2,
            OffsetOutOfRange { .. } => 1,
            RequestTimedOut { .. } => 7,
            InvalidTopic { .. } => 17,
            NotEnoughReplicas { .. } => 19,
            InvalidRequiredAcks { .. } => 21,
            TopicAlreadyExists { .. } => 36,
            InvalidPartitions { .. } => 37,
            InvalidReplicationFactor { .. } => 38,
            InvalidConfig { .. } => 40,
            TopicDeletionDisabled { .. } => 73,
            StaleControllerEpoch { .. } => 11,
            ClusterAuthorizationFailed { .. } => 31,
            StorageError { .. } => 56,
            KeeperUnavailable { .. } => -1,
            InvalidRequest { .. } => 42,
            BrokerShuttingDown { .. } => 6,
            OutOfOrderSequence { .. } => 45,
            NotEnoughReplicasAfterAppend { .. } => 20,
            FencedLeaderEpoch { .. } => 74,
            UnknownLeaderEpoch { .. } => 75,
            NotController { .. } => 41,
            InvalidProducerEpoch { .. } => 47,
            CoordinatorNotAvailable { .. } => 15,
            NotCoordinator { .. } => 16,
            CoordinatorLoadInProgress { .. } => 14,
            IllegalGeneration { .. } => 22,
            InconsistentGroupProtocol { .. } => 23,
            InvalidGroupId { .. } => 24,
            UnknownMemberId { .. } => 25,
            InvalidSessionTimeout { .. } => 26,
            RebalanceInProgress { .. } => 27,
            NonEmptyGroup { .. } => 68,
            GroupIdNotFound { .. } => 69,
            OffsetMetadataTooLarge { .. } => 12,
            GroupSubscribedToTopic { .. } => 86,
            ElectionNotNeeded { .. } => 84,
            PreferredLeaderNotAvailable { .. } => 80,
            EligibleLeadersNotAvailable { .. } => 83,
            InvalidReplicaAssignment { .. } => 39,
            PolicyViolation { .. } => 44,
            TopicAuthorizationFailed { .. } => 29,
            GroupAuthorizationFailed { .. } => 30,
            TransactionalIdAuthorizationFailed { .. } => 53,
        }
    }

    /// Whether a client should refresh metadata and try again (Kafka's
    /// `RetriableException`s).
    pub fn is_retriable(&self) -> bool {
        use BrokerError::*;
        matches!(
            self,
            UnknownTopicOrPartition { .. }
                | NotLeaderForPartition { .. }
                | LeaderNotAvailable { .. }
                | RequestTimedOut { .. }
                | NotEnoughReplicas { .. }
                | KeeperUnavailable { .. }
                | BrokerShuttingDown { .. }
                | StorageError { .. }
                | OutOfOrderSequence { .. }
                | NotEnoughReplicasAfterAppend { .. }
                | FencedLeaderEpoch { .. }
                | UnknownLeaderEpoch { .. }
                | NotController { .. }
                | CoordinatorNotAvailable { .. }
                | NotCoordinator { .. }
                | CoordinatorLoadInProgress { .. }
        )
    }

    /// Whether the ACLs refused the request (Kafka's *_AUTHORIZATION_FAILED codes):
    /// retrying cannot help until an admin grants the operation.
    pub fn is_authorization_failure(&self) -> bool {
        use BrokerError::*;
        matches!(
            self,
            TopicAuthorizationFailed { .. }
                | GroupAuthorizationFailed { .. }
                | ClusterAuthorizationFailed { .. }
                | TransactionalIdAuthorizationFailed { .. }
        )
    }

    /// Whether a group client should look its coordinator up again (Kafka's
    /// `markCoordinatorUnknown` cases).
    pub fn needs_coordinator_lookup(&self) -> bool {
        use BrokerError::*;
        matches!(self, CoordinatorNotAvailable { .. } | NotCoordinator { .. } | RequestTimedOut { .. })
    }

    /// Whether the client's view of who leads what is out of date.
    pub fn needs_metadata_refresh(&self) -> bool {
        use BrokerError::*;
        matches!(
            self,
            UnknownTopicOrPartition { .. }
                | NotLeaderForPartition { .. }
                | LeaderNotAvailable { .. }
                | BrokerShuttingDown { .. }
                | StorageError { .. }
                | FencedLeaderEpoch { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kafkas() {
        let e = BrokerError::NotLeaderForPartition {
            topic: "t".into(),
            partition: 0,
            broker: 1,
            leader: Some(2),
        };
        assert_eq!(e.code(), 6);
        assert!(e.is_retriable());
        assert_eq!(e.to_string(), "broker 1 is not the leader of t-0 (leader: 2)");
        let e = BrokerError::MessageTooLarge { size: 10, max: 5 };
        assert_eq!(e.code(), 10);
        assert!(!e.is_retriable());
    }
}
