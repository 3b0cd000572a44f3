//! The broker's service of `sluice-broker/3` (clients) and `sluice-interbroker/2` (other
//! brokers): turns requests into messages to the partition actors and keeper writes, and
//! answers.
//!
//! Routing goes through the [`Routing`] table the replica manager publishes: a request for
//! a partition this broker leads goes to its actor; one for a partition led elsewhere gets
//! `NotLeaderForPartition` naming the leader, so the client refreshes its metadata.
//!
//! Produce requests arrive on producers' ordered channels and are handed to the partition
//! actors in arrival order before any reply is awaited (a mailbox send enqueues at once), so
//! a producer's pipelined requests to one partition are appended in the order it sent them.
//!
//! The handlers live by area — [`produce`], [`fetch`], [`admin`], [`groups`] — as inherent
//! methods of [`BrokerService`] named like the requests; the two handler trait impls below
//! only call them (an inherent method wins over the trait's in Rust's method resolution, and
//! `unconditional_recursion` would catch a missing one). Another door for clients (Kafka's
//! wire protocol) calls the same methods.

use std::future::Future;
use std::sync::Arc;

use actix::Addr;
use sluice_actors::broker::acls::SharedAcls;
use sluice_actors::broker::group_manager::GroupManager;
use sluice_actors::broker::replica_manager::{Hosted, ReplicaManager, Routing, SharedRouting};
use sluice_broker_core::acl::{Authorizer, Operation};
use sluice_broker_core::metadata::BrokerEndpoint;
use sluice_broker_core::order::OrderGuard;
use sluice_broker_core::BrokerError;
use sluice_client::keeper::{KeeperClient, KeeperClientError};
use sluice_net::{Peer, ServerChannel, Service, Typed};
use sluice_proto::broker::*;
use sluice_proto::interbroker::*;
use sluice_proto::TopicPartition;
use tracing::Instrument;

use crate::config::BrokerConfig;
use sluice_actors::broker::membership::SharedController;
use sluice_actors::broker::{keeper_of, SharedKeeper};

mod acls;
mod admin;
mod authz;
mod fetch;
mod groups;
mod produce;

/// The actors the service asks.
#[derive(Debug)]
pub struct ServiceActors {
    /// Partitions' roles and the routing table.
    pub replicas: Addr<ReplicaManager>,
    /// The controller, while this broker is it.
    pub controller: SharedController,
    /// The group coordinators.
    pub groups: Addr<GroupManager>,
    /// Retention, checkpoints, and what each log dir holds.
    pub log_manager: Addr<sluice_actors::broker::log_manager::LogManager>,
    /// Links to the other brokers (asking the controller for elections).
    pub interbroker: Arc<sluice_net::Client<InterBrokerProtocol>>,
    /// This broker's copy of the ACLs.
    pub acls: SharedAcls,
}

/// The broker's service; cheap to clone.
#[derive(Clone)]
pub struct BrokerService {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<BrokerConfig>,
    routing: SharedRouting,
    keeper: SharedKeeper,
    replicas: Addr<ReplicaManager>,
    controller: SharedController,
    groups: Addr<GroupManager>,
    /// Retention, checkpoints, and what each log dir holds (DescribeLogDirs).
    log_manager: Addr<sluice_actors::broker::log_manager::LogManager>,
    /// Links to the other brokers.
    interbroker: Arc<sluice_net::Client<InterBrokerProtocol>>,
    /// This broker's copy of the ACLs, and the rule's settings.
    acls: SharedAcls,
    authorizer: Authorizer,
    /// The rest of this broker's claimed block of producer ids: `(next, end)`, empty when
    /// `next > end`.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// The most record bytes one fetch reply may carry: the frame limit less room for the
    /// envelope, so a fetch asking for more (Kafka's default `fetch.max.bytes` is 50 MiB) is
    /// answered with less instead of failing as too large to send.
    fetch_reply_limit: usize,
}

impl std::fmt::Debug for BrokerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerService").field("broker", &self.inner.config.broker_id).finish_non_exhaustive()
    }
}

fn keeper_error(e: KeeperClientError) -> BrokerError {
    BrokerError::KeeperUnavailable { reason: e.to_string() }
}

impl BrokerService {
    /// A service routing by `routing`, writing to the keeper through `keeper`, asking
    /// `actors`. `max_frame` is the listener's frame limit.
    pub fn new(
        config: Arc<BrokerConfig>,
        routing: SharedRouting,
        keeper: SharedKeeper,
        actors: ServiceActors,
        max_frame: u32,
    ) -> Self {
        let fetch_reply_limit = (max_frame as usize).saturating_sub(fetch::FETCH_REPLY_OVERHEAD).max(1);
        let ServiceActors { replicas, controller, groups, log_manager, interbroker, acls } = actors;
        let authorizer = Authorizer::new(
            config.super_users.iter().map(String::as_str),
            config.allow_everyone_if_no_acl_found,
        );
        BrokerService {
            inner: Arc::new(Inner {
                config,
                routing,
                keeper,
                replicas,
                controller,
                groups,
                log_manager,
                interbroker,
                acls,
                authorizer,
                producer_ids: tokio::sync::Mutex::new((0, -1)),
                fetch_reply_limit,
            }),
        }
    }

    pub(crate) fn id(&self) -> i32 {
        self.inner.config.broker_id
    }

    /// The broker's configuration.
    pub(crate) fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Every log dir with the partitions it holds here and their sizes (DescribeLogDirs).
    pub(crate) async fn describe_log_dirs(
        &self,
        peer: &Peer,
    ) -> Result<Vec<(std::path::PathBuf, Vec<(TopicPartition, u64)>)>, BrokerError> {
        self.check_cluster(peer, Operation::Describe)?;
        self.inner
            .log_manager
            .send(sluice_actors::broker::log_manager::DescribeDirs)
            .await
            .map_err(|_| BrokerError::BrokerShuttingDown { broker: self.id() })
    }

    fn keeper(&self) -> Result<KeeperClient, BrokerError> {
        keeper_of(&self.inner.keeper)
            .ok_or_else(|| BrokerError::KeeperUnavailable { reason: "no keeper session yet".into() })
    }

    /// The actor leading `topic`-`partition` here, or why there is none.
    fn route(&self, routing: &Routing, topic: &str, partition: i32) -> Result<Hosted, BrokerError> {
        let tp = TopicPartition::new(topic, partition);
        if let Some(hosted) = routing.partitions.get(&tp).filter(|h| h.offsets.borrow().leading.is_some()) {
            return Ok(hosted.clone());
        }
        let unknown = || BrokerError::UnknownTopicOrPartition { topic: topic.to_string(), partition };
        let Some(update) = &routing.update else {
            return Err(BrokerError::LeaderNotAvailable { topic: topic.to_string(), partition });
        };
        let info = update.topics.get(topic).and_then(|t| t.partitions.get(&partition)).ok_or_else(unknown)?;
        match info.state.as_ref().and_then(|s| s.leader()) {
            Some(leader) if leader == self.id() && !routing.partitions.contains_key(&tp) => {
                let reason = match routing.offline.get(&tp) {
                    Some(dir) => format!(
                        "its log directory {} failed on this broker; the controller moves its leadership to \
                         another replica",
                        dir.display()
                    ),
                    None => {
                        "this broker leads the partition but could not open its log (see the broker's log)"
                            .into()
                    }
                };
                Err(BrokerError::StorageError { topic: topic.to_string(), partition, reason })
            }
            Some(leader) if leader == self.id() => {
                // Just elected; the partition takes its role in a moment.
                Err(BrokerError::LeaderNotAvailable { topic: topic.to_string(), partition })
            }
            Some(leader) => Err(BrokerError::NotLeaderForPartition {
                topic: topic.to_string(),
                partition,
                broker: self.id(),
                leader: Some(leader),
            }),
            None => Err(BrokerError::LeaderNotAvailable { topic: topic.to_string(), partition }),
        }
    }

    /// The answer when a partition's actor stopped under a request.
    fn gone(&self, topic: &str, partition: i32) -> BrokerError {
        BrokerError::NotLeaderForPartition {
            topic: topic.to_string(),
            partition,
            broker: self.id(),
            leader: None,
        }
    }
}

/// Sends `answer` on the ordered channel once it is ready (on its own task, under the
/// request's span), counting the request as served (`rpc`, since `started`).
fn reply_when_done(
    sender: sluice_net::ChannelSender<BrokerProtocol>,
    id: u64,
    span: tracing::Span,
    (rpc, started): (&'static str, std::time::Instant),
    answer: impl Future<Output = BrokerResponse> + Send + 'static,
) {
    tokio::spawn(
        async move {
            let response = answer.await;
            sluice_net::protocol::served(<BrokerProtocol as sluice_net::Protocol>::ALPN, rpc, started);
            let _ = sender.reply(id, response).await;
        }
        .instrument(span),
    );
}

/// The answers of produces already handed to their partitions, in order. They are polled
/// together, so each one's wait for its replicas (`acks=all`) runs from the start and a slow
/// partition does not push the others' timeouts back.
async fn answers<F>(started: Vec<F>) -> Vec<Result<ProduceResponse, BrokerError>>
where
    F: Future<Output = Result<ProduceResponse, BrokerError>>,
{
    futures_util::future::join_all(started).await
}

/// Ids of ordered channels, for the partitions' order guards.
static NEXT_CHANNEL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl BrokerHandler for BrokerService {
    async fn metadata(&self, peer: &Peer, req: MetadataRequest) -> Result<Metadata, BrokerError> {
        self.metadata(peer, req).await
    }

    async fn produce(&self, peer: &Peer, req: Produce) -> Result<ProduceResponse, BrokerError> {
        self.start_produce(peer, req, None).await
    }

    async fn produce_many(
        &self,
        peer: &Peer,
        req: ProduceMany,
    ) -> Result<Vec<Result<ProduceResponse, BrokerError>>, BrokerError> {
        let started: Vec<_> = req.split().map(|p| self.start_produce(peer, p, None)).collect();
        Ok(answers(started).await)
    }

    async fn fetch(&self, peer: &Peer, req: Fetch) -> Result<FetchResponse, BrokerError> {
        let wanted = req.partitions.into_iter().map(|p| (p, None)).collect();
        self.fetch_loop(peer, wanted, req.max_wait_ms, req.min_bytes, req.max_bytes, None).await
    }

    async fn find_coordinator(
        &self,
        peer: &Peer,
        req: FindCoordinator,
    ) -> Result<BrokerEndpoint, BrokerError> {
        self.find_coordinator(peer, req).await
    }

    async fn join_group(&self, peer: &Peer, req: JoinGroup) -> Result<JoinResult, BrokerError> {
        self.join_group(peer, req).await
    }

    async fn sync_group(&self, peer: &Peer, req: SyncGroup) -> Result<Vec<u8>, BrokerError> {
        self.sync_group(peer, req).await
    }

    async fn heartbeat(&self, peer: &Peer, req: Heartbeat) -> Result<(), BrokerError> {
        self.heartbeat(peer, req).await
    }

    async fn leave_group(&self, peer: &Peer, req: LeaveGroup) -> Result<(), BrokerError> {
        self.leave_group(peer, req).await
    }

    async fn offset_commit(
        &self,
        peer: &Peer,
        req: OffsetCommit,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError> {
        self.offset_commit(peer, req).await
    }

    async fn offset_fetch(&self, peer: &Peer, req: OffsetFetch) -> Result<Vec<CommittedOffset>, BrokerError> {
        self.offset_fetch(peer, req).await
    }

    async fn list_groups(&self, peer: &Peer, req: ListGroups) -> Result<Vec<GroupOverview>, BrokerError> {
        self.list_groups(peer, req).await
    }

    async fn describe_groups(
        &self,
        peer: &Peer,
        req: DescribeGroups,
    ) -> Result<Vec<Result<GroupDescription, BrokerError>>, BrokerError> {
        self.describe_groups(peer, req).await
    }

    async fn delete_groups(&self, peer: &Peer, req: DeleteGroups) -> Result<GroupResults, BrokerError> {
        self.delete_groups(peer, req).await
    }

    async fn init_producer_id(
        &self,
        peer: &Peer,
        req: InitProducerId,
    ) -> Result<ProducerIdAndEpoch, BrokerError> {
        self.init_producer_id(peer, req).await
    }

    async fn list_offsets(&self, peer: &Peer, req: ListOffsets) -> Result<Vec<ListedOffset>, BrokerError> {
        self.list_offsets(peer, req).await
    }
    async fn delete_records(
        &self,
        peer: &Peer,
        req: DeleteRecords,
    ) -> Result<Vec<DeletedRecords>, BrokerError> {
        self.delete_records(peer, req).await
    }
    async fn preferred_election(
        &self,
        peer: &Peer,
        req: PreferredElection,
    ) -> Result<ElectionResults, BrokerError> {
        self.elect_leaders(peer, ElectionType::Preferred, req.partitions).await
    }
    async fn election(&self, peer: &Peer, req: Election) -> Result<ElectionResults, BrokerError> {
        self.elect_leaders(peer, req.kind, req.partitions).await
    }
    async fn log_dirs(&self, peer: &Peer, _: LogDirs) -> Result<Vec<LogDirDescription>, BrokerError> {
        let dirs = self.describe_log_dirs(peer).await?;
        Ok(dirs
            .into_iter()
            .map(|(path, parts)| LogDirDescription {
                path: path.display().to_string(),
                partitions: parts.into_iter().map(|(tp, size)| (tp.topic, tp.partition, size)).collect(),
            })
            .collect())
    }

    async fn create_topics(&self, peer: &Peer, req: CreateTopics) -> Result<TopicResults, BrokerError> {
        self.create_topics(peer, req).await
    }

    async fn delete_topics(&self, peer: &Peer, req: DeleteTopics) -> Result<TopicResults, BrokerError> {
        self.delete_topics(peer, req).await
    }

    async fn describe_configs(&self, peer: &Peer, req: DescribeConfigs) -> Result<TopicConfigs, BrokerError> {
        self.describe_configs(peer, req).await
    }

    async fn alter_topic_configs(&self, peer: &Peer, req: AlterTopicConfigs) -> Result<(), BrokerError> {
        self.alter_topic_configs(peer, &req.topic, Err(req.ops), req.validate_only).await
    }

    async fn alter_broker_defaults(&self, peer: &Peer, req: AlterBrokerDefaults) -> Result<(), BrokerError> {
        self.alter_broker_configs(peer, None, &req.ops, req.validate_only).await
    }

    async fn alter_broker_configs(&self, peer: &Peer, req: AlterBrokerConfigs) -> Result<(), BrokerError> {
        self.alter_broker_configs(peer, Some(req.broker), &req.ops, req.validate_only).await
    }

    async fn describe_broker_configs(
        &self,
        peer: &Peer,
        req: DescribeBrokerConfigs,
    ) -> Result<std::collections::BTreeMap<String, String>, BrokerError> {
        self.describe_broker_configs(peer, Some(req.broker)).await
    }

    async fn describe_broker_defaults(
        &self,
        peer: &Peer,
        _: DescribeBrokerDefaults,
    ) -> Result<std::collections::BTreeMap<String, String>, BrokerError> {
        self.describe_broker_configs(peer, None).await
    }

    async fn alter_reassignments(
        &self,
        peer: &Peer,
        req: AlterReassignments,
    ) -> Result<ReassignmentResults, BrokerError> {
        self.alter_reassignments(peer, req.moves).await
    }

    async fn list_reassignments(
        &self,
        peer: &Peer,
        req: ListReassignments,
    ) -> Result<Vec<Reassigning>, BrokerError> {
        self.list_reassignments(peer, req.partitions).await
    }

    async fn create_partitions(&self, peer: &Peer, req: CreatePartitions) -> Result<(), BrokerError> {
        self.create_partitions(peer, &req.topic, req.count, req.assignment, req.validate_only).await
    }

    async fn create_acls(
        &self,
        peer: &Peer,
        req: CreateAcls,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        self.create_acls(peer, req.acls).await
    }

    async fn describe_acls(&self, peer: &Peer, req: DescribeAcls) -> Result<Vec<AclBinding>, BrokerError> {
        self.describe_acls(peer, &req.filter)
    }

    async fn delete_acls(
        &self,
        peer: &Peer,
        req: DeleteAcls,
    ) -> Result<Vec<Result<Vec<AclBinding>, BrokerError>>, BrokerError> {
        self.delete_acls(peer, req.filters).await
    }

    fn ordered(
        &self,
        peer: Peer,
        mut channel: ServerChannel<BrokerProtocol>,
    ) -> impl Future<Output = ()> + Send {
        let this = self.clone();
        async move {
            let sender = channel.sender();
            let channel_id = NEXT_CHANNEL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut guard = OrderGuard::default();
            while let Ok(Some(req)) = channel.next_request().await {
                let sender = sender.clone();
                let id = req.correlation_id;
                // The request's span (none unless traces are exported), under the caller's
                // trace context from the envelope.
                let span = sluice_net::trace::request_span::<BrokerProtocol>(
                    &peer,
                    &req.request,
                    req.trace.as_ref(),
                );
                match req.request {
                    BrokerRequest::Produce(p) => {
                        let started = std::time::Instant::now();
                        let pending =
                            span.in_scope(|| this.start_produce(&peer, p, Some((channel_id, &mut guard))));
                        let answer = async move { BrokerResponse::Produce(pending.await) };
                        reply_when_done(sender, id, span, ("Produce", started), answer);
                    }
                    BrokerRequest::ProduceMany(many) => {
                        let started = std::time::Instant::now();
                        // Handed to the partitions in list order, through the channel's
                        // order guard, before any answer is awaited.
                        let pending: Vec<_> = span.in_scope(|| {
                            many.split()
                                .map(|p| this.start_produce(&peer, p, Some((channel_id, &mut guard))))
                                .collect()
                        });
                        let answer = async move { BrokerResponse::ProduceMany(Ok(answers(pending).await)) };
                        reply_when_done(sender, id, span, ("ProduceMany", started), answer);
                    }
                    other => {
                        let typed = Typed(this.clone());
                        let peer = peer.clone();
                        tokio::spawn(
                            async move {
                                let response = Service::<BrokerProtocol>::call(&typed, &peer, other).await;
                                let _ = sender.reply(id, response).await;
                            }
                            .instrument(span),
                        );
                    }
                }
            }
        }
    }
}

/// What brokers ask of each other (`sluice-interbroker/2`). Only node certificates can open
/// that protocol (the listener's route for it is `Access::NodesOnly`), and each request
/// needs ClusterAction on the cluster as in Kafka (a node certificate is a principal like
/// any other: list it in `super.users`, or grant it ClusterAction).
impl InterBrokerHandler for BrokerService {
    async fn update_cluster(&self, peer: &Peer, req: UpdateCluster) -> Result<(), BrokerError> {
        self.check_cluster(peer, Operation::ClusterAction)?;
        self.update_cluster(peer, req).await
    }
    async fn replica_fetch(&self, peer: &Peer, req: ReplicaFetch) -> Result<FetchResponse, BrokerError> {
        self.check_cluster(peer, Operation::ClusterAction)?;
        let wanted = req.partitions.into_iter().map(|p| (p.fetch, Some(p.leader_epoch))).collect();
        self.fetch_loop(peer, wanted, req.max_wait_ms, req.min_bytes, req.max_bytes, Some(req.replica_id))
            .await
    }
    async fn offsets_for_leader_epoch(
        &self,
        peer: &Peer,
        req: OffsetsForLeaderEpoch,
    ) -> Result<Vec<EpochEnd>, BrokerError> {
        self.check_cluster(peer, Operation::ClusterAction)?;
        self.offsets_for_leader_epoch(peer, req).await
    }
    async fn controlled_shutdown(&self, peer: &Peer, req: ControlledShutdown) -> Result<u32, BrokerError> {
        self.check_cluster(peer, Operation::ClusterAction)?;
        self.controlled_shutdown(peer, req).await
    }
    async fn elect_leaders(
        &self,
        peer: &Peer,
        req: ElectLeaders,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError> {
        self.check_cluster(peer, Operation::ClusterAction)?;
        self.elect_here(ElectionType::Preferred, req.partitions).await
    }
    async fn elect(
        &self,
        peer: &Peer,
        req: Elect,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError> {
        self.check_cluster(peer, Operation::ClusterAction)?;
        self.elect_here(req.kind, req.partitions).await
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::time::Duration;

    use super::*;

    fn at(base_offset: i64) -> Result<ProduceResponse, BrokerError> {
        Ok(ProduceResponse { base_offset, log_append_time: -1, log_start_offset: 0 })
    }

    #[tokio::test]
    async fn a_requests_produces_are_awaited_together_and_answered_in_order() {
        // The first answer comes only once the second has been polled: awaited one after
        // the other, they would never finish.
        let second_polled = Arc::new(tokio::sync::Notify::new());
        let first: Pin<Box<dyn Future<Output = _> + Send>> = {
            let n = second_polled.clone();
            Box::pin(async move {
                n.notified().await;
                at(10)
            })
        };
        let second: Pin<Box<dyn Future<Output = _> + Send>> = {
            let n = second_polled.clone();
            Box::pin(async move {
                n.notify_one();
                Err(BrokerError::UnknownTopicOrPartition { topic: "t".into(), partition: 1 })
            })
        };
        let got = tokio::time::timeout(Duration::from_secs(10), answers(vec![first, second]))
            .await
            .expect("answered together, not one after the other");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().map(|r| r.base_offset), Ok(10));
        assert!(matches!(got[1], Err(BrokerError::UnknownTopicOrPartition { partition: 1, .. })));
    }
}
