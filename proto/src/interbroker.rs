//! `sluice-interbroker/2`: what brokers say to each other — follower fetches, leader-epoch
//! queries, the controller's cluster updates, controlled shutdown and requested leader
//! elections.
//!
//! A protocol of its own (its own ALPN) so that a client certificate can never even open
//! it: brokers serve it on their QUIC listener beside the client protocol, and take a
//! connection for it only from a certificate with the serverAuth usage, which `sluice certs`
//! gives nodes and never clients (`sluice_net::Access::NodesOnly`). The connection is
//! refused before any request is read.

use serde::{Deserialize, Serialize};
use sluice_broker_core::metadata::ClusterUpdate;
use sluice_broker_core::BrokerError;

use crate::broker::{FetchPartition, FetchResponse};

/// Follower → leader: replicate partitions from `offset` (each the follower's log end
/// offset, which tells the leader how far the follower has got).
/// The answer is not bounded by the high watermark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaFetch {
    /// The follower's broker id.
    pub replica_id: i32,
    /// The leader waits up to this long for `min_bytes` (`replica.fetch.wait.max.ms`).
    pub max_wait_ms: u32,
    /// Answer as soon as this many bytes are available (`replica.fetch.min.bytes`).
    pub min_bytes: u32,
    /// Most bytes in the whole answer (`replica.fetch.response.max.bytes`).
    pub max_bytes: u32,
    /// What to replicate.
    pub partitions: Vec<ReplicaFetchPartition>,
}

/// One partition a follower replicates: what a consumer would ask (the offset is the
/// follower's log end offset; `max_bytes` is `replica.fetch.max.bytes`), with the leader
/// epoch the follower believes current (a mismatch is refused with `FencedLeaderEpoch` /
/// `UnknownLeaderEpoch`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaFetchPartition {
    /// Topic, partition, offset and size.
    pub fetch: FetchPartition,
    /// The follower's leader epoch.
    pub leader_epoch: i32,
}

/// Follower → leader (Kafka's OffsetsForLeaderEpoch): where each epoch the follower has
/// ends in the leader's log, so the follower can cut a divergent tail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OffsetsForLeaderEpoch {
    /// The partitions asked about.
    pub partitions: Vec<EpochQuery>,
}

/// One partition's question.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochQuery {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The leader epoch the follower believes current (fences a stale leader).
    pub current_leader_epoch: i32,
    /// The epoch whose end is asked for (the follower's latest).
    pub leader_epoch: i32,
}

/// One partition's answer: `Some((epoch, end_offset))` — the largest epoch the leader has
/// that is at most the one asked for, and the offset where it ends — or `None` when the
/// leader's log has no such epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochEnd {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The answer.
    pub result: Result<Option<(i32, i64)>, BrokerError>,
}

/// Broker → controller: `broker_id` is shutting down; move its leaderships away. The answer
/// is how many partitions it still leads (0: it may go).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlledShutdown {
    /// The broker shutting down.
    pub broker_id: i32,
}

/// Any broker → the controller: move these partitions back to their preferred replicas
/// (Kafka's ElectLeaders, preferred); each partition's outcome comes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ElectLeaders {
    /// The partitions.
    pub partitions: Vec<(String, i32)>,
}

/// Any broker → the controller: an election of `kind` of these partitions (Kafka's
/// ElectLeaders, preferred or unclean); each partition's outcome comes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Elect {
    /// Which election.
    pub kind: sluice_broker_core::controller::ElectionType,
    /// The partitions.
    pub partitions: Vec<(String, i32)>,
}

/// Controller → broker: the whole cluster picture (a broker takes it only when it is newer
/// than what it has).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateCluster(pub ClusterUpdate);

sluice_net::protocol! {
    /// The inter-broker protocol.
    pub protocol InterBrokerProtocol {
        // 2: `UpdateCluster` carries the replicas on failed log directories.
        alpn: "sluice-interbroker/2",
        request: InterBrokerRequest,
        response: InterBrokerResponse,
        push: (),
        handler: InterBrokerHandler,
        rpcs: {
            update_cluster: UpdateCluster(UpdateCluster) -> Result<(), BrokerError>;
            replica_fetch: ReplicaFetch(ReplicaFetch) -> Result<FetchResponse, BrokerError>;
            offsets_for_leader_epoch: OffsetsForLeaderEpoch(OffsetsForLeaderEpoch) -> Result<Vec<EpochEnd>, BrokerError>;
            controlled_shutdown: ControlledShutdown(ControlledShutdown) -> Result<u32, BrokerError>;
            // Added last: the earlier requests keep their places on the wire.
            elect_leaders: ElectLeaders(ElectLeaders) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError>;
            elect: Elect(Elect) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError>;
        }
    }
}
