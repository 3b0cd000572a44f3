//! The broker's service of `sluice-broker/3` (clients) and `sluice-interbroker/1` (other
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

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::Addr;
use bytes::Bytes;
use sluice_broker_core::metadata::{BrokerEndpoint, ClusterUpdate};
use sluice_broker_core::order::OrderGuard;
use sluice_broker_core::{assignment, topic, znodes, BrokerError};
use sluice_client::keeper::{KeeperClient, KeeperClientError};
use sluice_keeper_core::{CreateMode, KeeperError};
use sluice_net::{Peer, ServerChannel, Service, Typed};
use sluice_proto::broker::*;
use sluice_proto::interbroker::*;
use sluice_proto::TopicPartition;
use tracing::{debug, info, Instrument};

use crate::config::BrokerConfig;
use crate::group::{
    AllGroups, CommitMsg, DeleteMsg, DescribeMsg, FetchOffsetsMsg, GroupCoordinator, GroupManager,
    HeartbeatMsg, JoinMsg, LeaveMsg, Route, SyncMsg,
};
use crate::membership::{keeper_of, SharedController, SharedKeeper};
use crate::partition::{Append, EpochEndOffset, FollowerFetch, ListOffset, Offsets, Read};
use crate::replica_manager::{current, Apply, Hosted, ReplicaManager, Routing, SharedRouting};

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
    /// A service routing by `routing`, writing to the keeper through `keeper`.
    /// `max_frame` is the listener's frame limit.
    pub fn new(
        config: Arc<BrokerConfig>,
        routing: SharedRouting,
        keeper: SharedKeeper,
        replicas: Addr<ReplicaManager>,
        controller: SharedController,
        groups: Addr<GroupManager>,
        max_frame: u32,
    ) -> Self {
        let fetch_reply_limit = (max_frame as usize).saturating_sub(FETCH_REPLY_OVERHEAD).max(1);
        BrokerService {
            inner: Arc::new(Inner {
                config,
                routing,
                keeper,
                replicas,
                controller,
                groups,
                producer_ids: tokio::sync::Mutex::new((0, -1)),
                fetch_reply_limit,
            }),
        }
    }

    fn id(&self) -> i32 {
        self.inner.config.broker_id
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
                Err(BrokerError::StorageError {
                    topic: topic.to_string(),
                    partition,
                    reason:
                        "this broker leads the partition but could not open its log (see the broker's log)"
                            .into(),
                })
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

    fn min_insync(&self, update: Option<&ClusterUpdate>, topic: &str) -> i32 {
        match update.and_then(|u| u.topics.get(topic)) {
            Some(t) => self.inner.config.topic_min_insync_replicas(&t.configs),
            None => self.inner.config.min_insync_replicas,
        }
    }

    /// Checks a produce and hands it to the partition's actor; the returned future waits for
    /// the append. Everything up to the hand-over happens before this returns, which is what
    /// keeps a channel's produces in order.
    ///
    /// `order` is the ordered channel's id and its guard (`None` for a plain call): a
    /// produce held back by an earlier failure on the channel is refused here, and a
    /// retriable refusal here holds the partition's later produces (`acks=0` ones are never
    /// held, nor hold anything: their producer hears of no failure).
    fn start_produce(
        &self,
        req: Produce,
        order: Option<(u64, &mut OrderGuard<(String, i32)>)>,
    ) -> impl Future<Output = Result<ProduceResponse, BrokerError>> + Send {
        let order = order.filter(|_| req.acks != 0);
        let (topic, partition, broker, retry) = (&req.topic, req.partition, self.id(), req.retry);
        let channel = order.as_ref().map(|(id, _)| *id);
        let attempt = || {
            if !matches!(req.acks, -1..=1) {
                return Err(BrokerError::InvalidRequiredAcks { acks: req.acks });
            }
            let routing = current(&self.inner.routing);
            let leader = self.route(&routing, &req.topic, req.partition)?;
            let min_insync = (req.acks == -1)
                .then(|| self.min_insync(routing.update.as_deref(), &req.topic).max(1) as usize);
            // The records are a slice of the received frame (`shared_bytes`), and the append
            // rewrites their offsets in place: this is their one copy on the way in (the
            // decoder makes none).
            let records =
                req.records.try_into_mut().unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
            // Actors run outside the caller's span: the append's span is made under this one.
            let span = tracing::Span::current();
            let append = Append { records, order: channel.map(|id| (id, retry)), min_insync, span };
            Ok((leader.addr.send(append), leader.offsets, min_insync))
        };
        let ready = match order {
            None => attempt(),
            Some((_, guard)) => {
                // Nothing held (the usual case): no key to build.
                if !guard.is_clear() && !guard.admit(&(topic.clone(), partition), retry) {
                    Err(BrokerError::OutOfOrderSequence { topic: topic.clone(), partition })
                } else {
                    let r = attempt();
                    if r.as_ref().is_err_and(BrokerError::is_retriable) {
                        guard.failed((topic.clone(), partition));
                    }
                    r
                }
            }
        };
        let topic = topic.clone();
        let timeout = Duration::from_millis(u64::from(req.timeout_ms));
        async move {
            let (append, offsets, min_insync) = ready?;
            let not_leader = || BrokerError::NotLeaderForPartition {
                topic: topic.clone(),
                partition,
                broker,
                leader: None,
            };
            let appended = append.await.map_err(|_| not_leader())??;
            match min_insync {
                None => Ok(appended.response),
                Some(min) => {
                    let span = if tracing::Span::current().is_none() {
                        tracing::Span::none()
                    } else {
                        tracing::info_span!("wait_replicated", %topic, partition, end_offset = appended.end_offset)
                    };
                    wait_replicated(offsets, appended.end_offset, min, timeout, &topic, partition, broker)
                        .instrument(span)
                        .await?;
                    Ok(appended.response)
                }
            }
        }
    }

    /// Claims the next block of producer ids in the keeper (a conditional write on
    /// `/latest_producer_id_block`, so two brokers never get the same block).
    async fn claim_producer_ids(&self) -> Result<(i64, i64), BrokerError> {
        let keeper = self.keeper()?;
        let size = znodes::PRODUCER_ID_BLOCK_SIZE;
        for _ in 0..100 {
            match keeper.get_data(znodes::PRODUCER_ID_BLOCK, false).await {
                Ok((data, stat)) => {
                    let (_, end) = znodes::decode_producer_id_block(&data)
                        .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?;
                    let (start, end) = (end + 1, end + size);
                    let block = znodes::encode_producer_id_block(self.id(), start, end);
                    match keeper.set_data(znodes::PRODUCER_ID_BLOCK, &block, stat.version).await {
                        Ok(_) => return Ok((start, end)),
                        Err(KeeperClientError::Keeper(KeeperError::BadVersion { .. })) => continue,
                        Err(e) => return Err(keeper_error(e)),
                    }
                }
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {
                    let block = znodes::encode_producer_id_block(self.id(), 0, size - 1);
                    match keeper.create(znodes::PRODUCER_ID_BLOCK, &block, CreateMode::Persistent).await {
                        Ok(_) => return Ok((0, size - 1)),
                        Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => continue,
                        Err(e) => return Err(keeper_error(e)),
                    }
                }
                Err(e) => return Err(keeper_error(e)),
            }
        }
        Err(BrokerError::KeeperUnavailable { reason: "too much contention for producer id blocks".into() })
    }

    /// Creates `__consumer_offsets` (Kafka creates it on the first FindCoordinator):
    /// `offsets.topic.num.partitions` partitions, `offsets.topic.replication.factor`
    /// replicas, compacted.
    async fn create_offsets_topic(&self, update: Option<&ClusterUpdate>) -> Result<(), BrokerError> {
        let keeper = self.keeper()?;
        let c = &self.inner.config;
        let live = live_brokers(&keeper).await?.len();
        let unavailable = |why: String| BrokerError::CoordinatorNotAvailable { group: String::new(), why };
        if live < c.offsets_topic_replication_factor.max(1) as usize {
            return Err(unavailable(format!(
                "{live} live brokers do not meet the replication factor {} of {OFFSETS_TOPIC} \
                 (offsets.topic.replication.factor; a single-broker cluster needs 1)",
                c.offsets_topic_replication_factor
            )));
        }
        let t = NewTopic {
            name: OFFSETS_TOPIC.into(),
            partitions: Some(c.offsets_topic_num_partitions),
            replication_factor: Some(c.offsets_topic_replication_factor),
            assignment: None,
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect(),
        };
        match self.create_topic(&keeper, update, &t, false).await {
            Ok(()) | Err(BrokerError::TopicAlreadyExists { .. }) => Ok(()),
            Err(e) => Err(unavailable(format!("creating {OFFSETS_TOPIC}: {e}"))),
        }
    }

    /// The actor of `group` on this broker (`create`: start an empty one if there is none).
    async fn group(&self, group: &str, create: bool) -> Result<Option<Addr<GroupCoordinator>>, BrokerError> {
        let gone = || BrokerError::CoordinatorNotAvailable {
            group: group.into(),
            why: "the broker is stopping".into(),
        };
        self.inner.groups.send(Route { group: group.into(), create }).await.map_err(|_| gone())?
    }

    /// The actor of an existing `group`; a member of a group that is not here is unknown.
    async fn member_group(&self, group: &str, member: &str) -> Result<Addr<GroupCoordinator>, BrokerError> {
        self.group(group, false)
            .await?
            .ok_or_else(|| BrokerError::UnknownMemberId { group: group.into(), member: member.into() })
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

    /// A consumer's (`replica` `None`) or a follower's fetch: a long poll over the
    /// partitions asked for, answered once `min_bytes` are there, one partition fails, or
    /// `max_wait_ms` passes. A follower's read is not bounded by the high watermark, and
    /// reports its position to the leader (which is how the high watermark moves). Each
    /// partition comes with the follower's leader epoch (`None` for a consumer).
    async fn fetch_loop(
        &self,
        wanted: Vec<(FetchPartition, Option<i32>)>,
        max_wait_ms: u32,
        min_bytes: u32,
        max_bytes: u32,
        replica: Option<i32>,
    ) -> Result<FetchResponse, BrokerError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(max_wait_ms));
        // Each partition's last answer with nothing to read, and where it stood then: while
        // it has not moved, a later pass of the long poll answers the same without asking
        // its actor again (a wake-up for one partition does not cost a read of every other).
        let mut idle: Vec<Option<(Offsets, FetchedPartition)>> = vec![None; wanted.len()];
        loop {
            let routing = current(&self.inner.routing);
            let mut out = Vec::with_capacity(wanted.len());
            let mut total = 0usize;
            let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
            let mut failed = false;
            for (i, (p, leader_epoch)) in wanted.iter().enumerate() {
                let mut fetched = FetchedPartition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    error: None,
                    high_watermark: -1,
                    log_start_offset: -1,
                    records: Bytes::new(),
                    traces: Vec::new(),
                };
                let leader = match self.route(&routing, &p.topic, p.partition) {
                    Ok(l) => l,
                    Err(e) => {
                        fetched.error = Some(e);
                        failed = true;
                        out.push(fetched);
                        continue;
                    }
                };
                let mut rx = leader.offsets.clone();
                let now = *rx.borrow_and_update();
                if let Some((_, same)) = idle[i].as_ref().filter(|(o, _)| *o == now) {
                    out.push(same.clone());
                    waits.push(Box::pin(async move {
                        let _ = rx.changed().await;
                    }));
                    continue;
                }
                let limit = (max_bytes as usize).min(self.inner.fetch_reply_limit);
                let budget = limit.saturating_sub(total).min(p.max_bytes as usize);
                let strict = total > 0;
                let read = if budget == 0 && strict && replica.is_none() {
                    // The answer is full: report where the partition stands, read nothing
                    // (a read always returns at least one batch).
                    let o = *rx.borrow();
                    Ok(Ok((Bytes::new(), o, Vec::new())))
                } else if let (Some(replica), Some(leader_epoch)) = (replica, *leader_epoch) {
                    let ask = FollowerFetch {
                        replica,
                        offset: p.offset,
                        leader_epoch,
                        max_bytes: budget.max(1),
                        strict,
                    };
                    leader.addr.send(ask).await
                } else {
                    let read =
                        leader.addr.send(Read { offset: p.offset, max_bytes: budget.max(1), strict }).await;
                    read.map(|r| r.map(|(records, offsets)| (records, offsets, Vec::new())))
                };
                match read {
                    Ok(Ok((records, offsets, traces))) => {
                        fetched.high_watermark = offsets.high_watermark;
                        fetched.log_start_offset = offsets.log_start_offset;
                        total += records.len();
                        fetched.records = records;
                        fetched.traces = traces;
                        idle[i] = fetched.records.is_empty().then(|| (offsets, fetched.clone()));
                    }
                    Ok(Err(e)) => {
                        fetched.error = Some(e);
                        failed = true;
                    }
                    Err(_) => {
                        fetched.error = Some(self.gone(&p.topic, p.partition));
                        failed = true;
                    }
                }
                waits.push(Box::pin(async move {
                    let _ = rx.changed().await;
                }));
                out.push(fetched);
            }
            let enough = total >= (min_bytes as usize).max(1) || failed;
            if enough || tokio::time::Instant::now() >= deadline || waits.is_empty() {
                return Ok(FetchResponse { partitions: out });
            }
            tokio::select! {
                _ = AnyOf(waits) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn create_topic(
        &self,
        keeper: &KeeperClient,
        update: Option<&ClusterUpdate>,
        t: &NewTopic,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        topic::validate_name(&t.name)?;
        if topic::is_internal(&t.name) && t.name != OFFSETS_TOPIC {
            return Err(BrokerError::InvalidRequest {
                reason: format!("{} is an internal topic; the cluster creates it itself", t.name),
            });
        }
        topic::validate_config_keys(&t.configs)?;
        self.inner.config.topic_log_config(&t.configs)?;
        // Live brokers as the keeper has them now (Kafka's AdminZkClient reads them from
        // ZooKeeper too): right after a broker died, this broker's cached picture may still
        // list it, and a partition assigned to it would have no leader.
        let brokers = live_brokers(keeper).await?;
        let assignment = match &t.assignment {
            Some(a) => {
                if t.partitions.is_some() || t.replication_factor.is_some() {
                    return Err(BrokerError::InvalidRequest {
                        reason: "give either a replica assignment or partitions and replication factor"
                            .into(),
                    });
                }
                check_assignment(a, &brokers)?;
                a.clone()
            }
            None => {
                let partitions = t.partitions.unwrap_or(self.inner.config.num_partitions);
                let rf = t.replication_factor.unwrap_or(self.inner.config.default_replication_factor);
                assignment::assign(&brokers, partitions, rf, rand::random::<u16>() as usize)?
            }
        };
        if validate_only {
            return Ok(());
        }
        if update.is_some_and(|u| u.topics.contains_key(&t.name)) {
            return Err(BrokerError::TopicAlreadyExists { topic: t.name.clone() });
        }
        let config_data = znodes::encode_topic_config(&t.configs);
        match keeper.create(&znodes::config_path(&t.name), &config_data, CreateMode::Persistent).await {
            Ok(_) => {}
            Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {
                keeper
                    .set_data(&znodes::config_path(&t.name), &config_data, -1)
                    .await
                    .map_err(keeper_error)?;
            }
            Err(e) => return Err(keeper_error(e)),
        }
        let data = znodes::encode_assignment(&assignment);
        match keeper.create(&znodes::topic_path(&t.name), &data, CreateMode::Persistent).await {
            Ok(_) => {
                info!(topic = %t.name, partitions = assignment.len(), "topic created");
                Ok(())
            }
            Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {
                Err(BrokerError::TopicAlreadyExists { topic: t.name.clone() })
            }
            Err(e) => Err(keeper_error(e)),
        }
    }

    fn partition_metadata(update: &ClusterUpdate, t: &sluice_broker_core::TopicState) -> TopicMetadata {
        let live: BTreeSet<i32> = update.brokers.iter().map(|b| b.id).collect();
        TopicMetadata {
            name: t.name.clone(),
            error: None,
            internal: topic::is_internal(&t.name),
            partitions: t
                .partitions
                .iter()
                .map(|(p, info)| PartitionMetadata {
                    partition: *p,
                    leader: info.state.as_ref().and_then(|s| s.leader()),
                    leader_epoch: info.state.as_ref().map_or(-1, |s| s.leader_epoch),
                    replicas: info.replicas.clone(),
                    isr: info.state.as_ref().map_or_else(Vec::new, |s| s.isr.clone()),
                    offline_replicas: info.replicas.iter().copied().filter(|r| !live.contains(r)).collect(),
                })
                .collect(),
        }
    }
}

/// The brokers registered in the keeper now.
async fn live_brokers(keeper: &KeeperClient) -> Result<Vec<BrokerEndpoint>, BrokerError> {
    let mut out = Vec::new();
    for id in keeper.children(znodes::BROKER_IDS, false).await.map_err(keeper_error)? {
        let Ok(id) = id.parse::<i32>() else { continue };
        match keeper.get_data(&znodes::broker_path(id), false).await {
            Ok((data, _)) => out.push(
                znodes::decode_broker(id, &data)
                    .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?,
            ),
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {}
            Err(e) => return Err(keeper_error(e)),
        }
    }
    Ok(out)
}

fn check_assignment(a: &BTreeMap<i32, Vec<i32>>, brokers: &[BrokerEndpoint]) -> Result<(), BrokerError> {
    let invalid = |reason: String| Err(BrokerError::InvalidRequest { reason });
    if a.is_empty() {
        return invalid("the replica assignment is empty".into());
    }
    let rf = a.values().next().map_or(0, Vec::len);
    for (i, (p, replicas)) in a.iter().enumerate() {
        if *p != i as i32 {
            return invalid(format!("partitions must be numbered 0..{} without gaps", a.len()));
        }
        if replicas.len() != rf || replicas.is_empty() {
            return invalid("every partition needs the same number (at least 1) of replicas".into());
        }
        let distinct: BTreeSet<_> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return invalid(format!("partition {p} lists a broker twice"));
        }
        if let Some(r) = replicas.iter().find(|r| !brokers.iter().any(|b| b.id == **r)) {
            return invalid(format!("partition {p}: broker {r} is not a live broker"));
        }
    }
    Ok(())
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

/// Room left in a fetch reply's frame for everything but record bytes (envelope, topic
/// names, offsets, errors).
const FETCH_REPLY_OVERHEAD: usize = 64 << 10;

/// Waits until the in-sync replicas have everything below `end_offset` (`acks=all`): the
/// high watermark reaches it. Fails if this broker stops leading, if `timeout` passes, or
/// if by then the ISR has shrunk below `min_insync`.
pub(crate) async fn wait_replicated(
    mut offsets: tokio::sync::watch::Receiver<Offsets>,
    end_offset: i64,
    min_insync: usize,
    timeout: Duration,
    topic: &str,
    partition: i32,
    broker: i32,
) -> Result<(), BrokerError> {
    let epoch = offsets.borrow().leading;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let o = *offsets.borrow_and_update();
        if o.leading.is_none() || o.leading != epoch {
            return Err(BrokerError::NotLeaderForPartition {
                topic: topic.into(),
                partition,
                broker,
                leader: None,
            });
        }
        if o.high_watermark >= end_offset {
            if o.isr < min_insync {
                return Err(BrokerError::NotEnoughReplicasAfterAppend {
                    topic: topic.into(),
                    partition,
                    isr: o.isr,
                    min: min_insync,
                });
            }
            return Ok(());
        }
        tokio::select! {
            changed = offsets.changed() => if changed.is_err() {
                return Err(BrokerError::NotLeaderForPartition { topic: topic.into(), partition, broker, leader: None });
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Err(BrokerError::RequestTimedOut {
                    what: format!("{topic}-{partition}: the in-sync replicas to have offset {}", end_offset - 1),
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
        }
    }
}

/// Resolves when any of its futures does.
struct AnyOf(Vec<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Future for AnyOf {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        for f in self.0.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

impl BrokerHandler for BrokerService {
    async fn metadata(&self, _: &Peer, req: MetadataRequest) -> Result<Metadata, BrokerError> {
        let routing = current(&self.inner.routing);
        let Some(update) = routing.update.clone() else {
            return Ok(Metadata {
                cluster_id: String::new(),
                controller_id: None,
                brokers: vec![],
                topics: vec![],
            });
        };
        let names: Vec<String> = match &req.topics {
            Some(names) => names.clone(),
            None => update.topics.keys().cloned().collect(),
        };
        let mut topics = Vec::new();
        for name in names {
            if let Some(t) = update.topics.get(&name) {
                topics.push(Self::partition_metadata(&update, t));
                continue;
            }
            let unknown = BrokerError::UnknownTopicOrPartition { topic: name.clone(), partition: -1 };
            let error = if update.deleting.contains(&name) {
                unknown
            } else if req.allow_auto_create && self.inner.config.auto_create_topics_enable {
                let new = NewTopic {
                    name: name.clone(),
                    partitions: None,
                    replication_factor: None,
                    assignment: None,
                    configs: BTreeMap::new(),
                };
                let keeper = self.keeper()?;
                match self.create_topic(&keeper, Some(&update), &new, false).await {
                    Ok(()) | Err(BrokerError::TopicAlreadyExists { .. }) => {
                        BrokerError::LeaderNotAvailable { topic: name.clone(), partition: -1 }
                    }
                    Err(e) => e,
                }
            } else {
                unknown
            };
            topics.push(TopicMetadata { name, error: Some(error), internal: false, partitions: vec![] });
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Metadata {
            cluster_id: update.cluster_id.clone(),
            controller_id: Some(update.controller_id),
            brokers: update.brokers.clone(),
            topics,
        })
    }

    async fn produce(&self, _: &Peer, req: Produce) -> Result<ProduceResponse, BrokerError> {
        self.start_produce(req, None).await
    }

    async fn produce_many(
        &self,
        _: &Peer,
        req: ProduceMany,
    ) -> Result<Vec<Result<ProduceResponse, BrokerError>>, BrokerError> {
        let started: Vec<_> = req.split().map(|p| self.start_produce(p, None)).collect();
        Ok(answers(started).await)
    }

    async fn fetch(&self, _: &Peer, req: Fetch) -> Result<FetchResponse, BrokerError> {
        let wanted = req.partitions.into_iter().map(|p| (p, None)).collect();
        self.fetch_loop(wanted, req.max_wait_ms, req.min_bytes, req.max_bytes, None).await
    }

    async fn find_coordinator(&self, _: &Peer, req: FindCoordinator) -> Result<BrokerEndpoint, BrokerError> {
        let group = req.group_id;
        if group.is_empty() {
            return Err(BrokerError::InvalidGroupId { group, why: "a group id must not be empty".into() });
        }
        let unavailable = |why: String| BrokerError::CoordinatorNotAvailable { group: group.clone(), why };
        let routing = current(&self.inner.routing);
        let Some(update) = routing.update.as_deref() else {
            return Err(unavailable("this broker has no cluster metadata yet".into()));
        };
        let Some(t) = update.topics.get(OFFSETS_TOPIC) else {
            self.create_offsets_topic(Some(update)).await.map_err(|e| match e {
                BrokerError::CoordinatorNotAvailable { why, .. } => unavailable(why),
                e => e,
            })?;
            return Err(unavailable(format!("{OFFSETS_TOPIC} is being created")));
        };
        let p = sluice_broker_core::group_log::partition_for(
            &group,
            self.inner.config.offsets_topic_num_partitions,
        );
        let leader = t.partitions.get(&p).and_then(|i| i.state.as_ref()).and_then(|s| s.leader());
        let Some(leader) = leader else {
            return Err(unavailable(format!("{OFFSETS_TOPIC}-{p} has no leader yet")));
        };
        update
            .brokers
            .iter()
            .find(|b| b.id == leader)
            .cloned()
            .ok_or_else(|| unavailable(format!("{OFFSETS_TOPIC}-{p}'s leader {leader} is not live")))
    }

    async fn join_group(&self, peer: &Peer, req: JoinGroup) -> Result<JoinResult, BrokerError> {
        let addr =
            self.group(&req.group_id, true).await?.ok_or_else(|| BrokerError::CoordinatorNotAvailable {
                group: req.group_id.clone(),
                why: "the group could not be started".into(),
            })?;
        let join = sluice_broker_core::group::Join {
            member_id: req.member_id,
            new_member_id: format!("{}-{:032x}", req.client_id, rand::random::<u128>()),
            client_id: req.client_id,
            client_host: format!("{}@{}", peer.principal.name, peer.remote),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
        };
        let moved = || BrokerError::NotCoordinator { group: req.group_id.clone(), broker: self.id() };
        let rx = addr.send(JoinMsg(join)).await.map_err(|_| moved())?;
        rx.await.map_err(|_| moved())?
    }

    async fn sync_group(&self, _: &Peer, req: SyncGroup) -> Result<Vec<u8>, BrokerError> {
        let addr = self.member_group(&req.group_id, &req.member_id).await?;
        let moved = || BrokerError::NotCoordinator { group: req.group_id.clone(), broker: self.id() };
        let msg = SyncMsg {
            member: req.member_id.clone(),
            generation: req.generation_id,
            assignments: req.assignments,
        };
        let rx = addr.send(msg).await.map_err(|_| moved())?;
        rx.await.map_err(|_| moved())?
    }

    async fn heartbeat(&self, _: &Peer, req: Heartbeat) -> Result<(), BrokerError> {
        let addr = self.member_group(&req.group_id, &req.member_id).await?;
        let msg = HeartbeatMsg { member: req.member_id, generation: req.generation_id };
        addr.send(msg)
            .await
            .map_err(|_| BrokerError::NotCoordinator { group: req.group_id, broker: self.id() })?
    }

    async fn leave_group(&self, _: &Peer, req: LeaveGroup) -> Result<(), BrokerError> {
        let first = req.member_ids.first().cloned().unwrap_or_default();
        let addr = self.member_group(&req.group_id, &first).await?;
        addr.send(LeaveMsg(req.member_ids))
            .await
            .map_err(|_| BrokerError::NotCoordinator { group: req.group_id, broker: self.id() })?
    }

    async fn offset_commit(
        &self,
        _: &Peer,
        req: OffsetCommit,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError> {
        let Some(addr) = self.group(&req.group_id, true).await? else {
            return Err(BrokerError::CoordinatorNotAvailable {
                group: req.group_id,
                why: "the group could not be started".into(),
            });
        };
        let msg = CommitMsg { member: req.member_id, generation: req.generation_id, offsets: req.offsets };
        addr.send(msg)
            .await
            .map_err(|_| BrokerError::NotCoordinator { group: req.group_id, broker: self.id() })?
    }

    async fn offset_fetch(&self, _: &Peer, req: OffsetFetch) -> Result<Vec<CommittedOffset>, BrokerError> {
        match self.group(&req.group_id, false).await? {
            Some(addr) => addr
                .send(FetchOffsetsMsg(req.partitions))
                .await
                .map_err(|_| BrokerError::NotCoordinator { group: req.group_id, broker: self.id() }),
            None => Ok(req
                .partitions
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partition)| CommittedOffset {
                    topic,
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                })
                .collect()),
        }
    }

    async fn list_groups(&self, _: &Peer, _: ListGroups) -> Result<Vec<GroupOverview>, BrokerError> {
        let stopping = || BrokerError::CoordinatorNotAvailable {
            group: String::new(),
            why: "the broker is stopping".into(),
        };
        let groups = self.inner.groups.send(AllGroups).await.map_err(|_| stopping())?;
        let mut out = Vec::new();
        for g in groups {
            if let Ok((overview, _)) = g.send(DescribeMsg).await {
                if overview.state != "Dead" {
                    out.push(overview);
                }
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    async fn describe_groups(
        &self,
        _: &Peer,
        req: DescribeGroups,
    ) -> Result<Vec<Result<GroupDescription, BrokerError>>, BrokerError> {
        let mut out = Vec::new();
        for group in req.groups {
            let described = match self.group(&group, false).await {
                Err(e) => Err(e),
                Ok(Some(addr)) => addr
                    .send(DescribeMsg)
                    .await
                    .map(|(_, d)| d)
                    .map_err(|_| BrokerError::NotCoordinator { group: group.clone(), broker: self.id() }),
                // Kafka describes a group it does not have as Dead with no members.
                Ok(None) => Ok(GroupDescription {
                    group_id: group.clone(),
                    state: "Dead".into(),
                    protocol_type: String::new(),
                    protocol: String::new(),
                    generation_id: -1,
                    leader: String::new(),
                    members: vec![],
                }),
            };
            out.push(described);
        }
        Ok(out)
    }

    async fn delete_groups(&self, _: &Peer, req: DeleteGroups) -> Result<GroupResults, BrokerError> {
        let mut out = Vec::new();
        for group in req.groups {
            let r = match self.group(&group, false).await {
                Err(e) => Err(e),
                Ok(None) => Err(BrokerError::GroupIdNotFound { group: group.clone() }),
                Ok(Some(addr)) => addr
                    .send(DeleteMsg)
                    .await
                    .map_err(|_| BrokerError::NotCoordinator { group: group.clone(), broker: self.id() })
                    .and_then(|r| r),
            };
            out.push((group, r));
        }
        Ok(out)
    }

    async fn init_producer_id(&self, _: &Peer, _: InitProducerId) -> Result<ProducerIdAndEpoch, BrokerError> {
        let mut ids = self.inner.producer_ids.lock().await;
        if ids.0 > ids.1 {
            *ids = self.claim_producer_ids().await?;
            info!(start = ids.0, end = ids.1, "claimed a block of producer ids");
        }
        let producer_id = ids.0;
        ids.0 += 1;
        Ok(ProducerIdAndEpoch { producer_id, producer_epoch: 0 })
    }

    async fn list_offsets(&self, _: &Peer, req: ListOffsets) -> Result<Vec<ListedOffset>, BrokerError> {
        let routing = current(&self.inner.routing);
        let mut out = Vec::new();
        for p in req.partitions {
            let result = match self.route(&routing, &p.topic, p.partition) {
                Err(e) => Err(e),
                Ok(leader) => match leader.addr.send(ListOffset { timestamp: p.timestamp }).await {
                    Ok(r) => r,
                    Err(_) => Err(BrokerError::NotLeaderForPartition {
                        topic: p.topic.clone(),
                        partition: p.partition,
                        broker: self.id(),
                        leader: None,
                    }),
                },
            };
            out.push(ListedOffset { topic: p.topic, partition: p.partition, result });
        }
        Ok(out)
    }

    async fn create_topics(&self, _: &Peer, req: CreateTopics) -> Result<TopicResults, BrokerError> {
        let keeper = self.keeper()?;
        let routing = current(&self.inner.routing);
        let mut out = Vec::new();
        for t in &req.topics {
            if t.name == OFFSETS_TOPIC {
                let reason = format!("{OFFSETS_TOPIC} is an internal topic; the cluster creates it itself");
                out.push((t.name.clone(), Err(BrokerError::InvalidRequest { reason })));
                continue;
            }
            let r = self.create_topic(&keeper, routing.update.as_deref(), t, req.validate_only).await;
            out.push((t.name.clone(), r));
        }
        Ok(out)
    }

    async fn delete_topics(&self, _: &Peer, req: DeleteTopics) -> Result<TopicResults, BrokerError> {
        if !self.inner.config.delete_topic_enable {
            return Err(BrokerError::TopicDeletionDisabled { broker: self.id() });
        }
        let keeper = self.keeper()?;
        let mut out = Vec::new();
        for name in req.topics {
            let r = async {
                topic::validate_name(&name)?;
                if topic::is_internal(&name) {
                    return Err(BrokerError::InvalidRequest {
                        reason: format!("{name} is an internal topic"),
                    });
                }
                if keeper.exists(&znodes::topic_path(&name), false).await.map_err(keeper_error)?.is_none() {
                    return Err(BrokerError::UnknownTopicOrPartition { topic: name.clone(), partition: -1 });
                }
                match keeper.create(&znodes::delete_path(&name), &[], CreateMode::Persistent).await {
                    Ok(_) | Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {
                        info!(topic = %name, "topic marked for deletion");
                        Ok(())
                    }
                    Err(e) => Err(keeper_error(e)),
                }
            }
            .await;
            out.push((name, r));
        }
        Ok(out)
    }

    async fn describe_configs(&self, _: &Peer, req: DescribeConfigs) -> Result<TopicConfigs, BrokerError> {
        let keeper = self.keeper()?;
        let mut out = Vec::new();
        for name in req.topics {
            let r = match keeper.get_data(&znodes::config_path(&name), false).await {
                Ok((data, _)) => znodes::decode_topic_config(&name, &data)
                    .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() }),
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {
                    match keeper.exists(&znodes::topic_path(&name), false).await {
                        Ok(Some(_)) => Ok(BTreeMap::new()),
                        Ok(None) => {
                            Err(BrokerError::UnknownTopicOrPartition { topic: name.clone(), partition: -1 })
                        }
                        Err(e) => Err(keeper_error(e)),
                    }
                }
                Err(e) => Err(keeper_error(e)),
            };
            out.push((name, r));
        }
        Ok(out)
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
                        let pending = span.in_scope(|| this.start_produce(p, Some((channel_id, &mut guard))));
                        let answer = async move { BrokerResponse::Produce(pending.await) };
                        reply_when_done(sender, id, span, ("Produce", started), answer);
                    }
                    BrokerRequest::ProduceMany(many) => {
                        let started = std::time::Instant::now();
                        // Handed to the partitions in list order, through the channel's
                        // order guard, before any answer is awaited.
                        let pending: Vec<_> = span.in_scope(|| {
                            many.split()
                                .map(|p| this.start_produce(p, Some((channel_id, &mut guard))))
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

/// What brokers ask of each other (`sluice-interbroker/1`). Only node certificates can open
/// that protocol (the listener's route for it is `Access::NodesOnly`), so nothing here
/// checks the caller again.
impl InterBrokerHandler for BrokerService {
    async fn update_cluster(&self, _: &Peer, req: UpdateCluster) -> Result<(), BrokerError> {
        debug!(epoch = req.0.controller_epoch, sequence = req.0.sequence, "cluster update");
        self.inner
            .replicas
            .send(Apply(req.0))
            .await
            .map_err(|_| BrokerError::BrokerShuttingDown { broker: self.id() })?
    }
    async fn replica_fetch(&self, _: &Peer, req: ReplicaFetch) -> Result<FetchResponse, BrokerError> {
        let wanted = req.partitions.into_iter().map(|p| (p.fetch, Some(p.leader_epoch))).collect();
        self.fetch_loop(wanted, req.max_wait_ms, req.min_bytes, req.max_bytes, Some(req.replica_id)).await
    }
    async fn offsets_for_leader_epoch(
        &self,
        _: &Peer,
        req: OffsetsForLeaderEpoch,
    ) -> Result<Vec<EpochEnd>, BrokerError> {
        let routing = current(&self.inner.routing);
        let mut out = Vec::with_capacity(req.partitions.len());
        for q in req.partitions {
            let result = match self.route(&routing, &q.topic, q.partition) {
                Err(e) => Err(e),
                Ok(leader) => {
                    let ask = EpochEndOffset {
                        current_leader_epoch: q.current_leader_epoch,
                        epoch: q.leader_epoch,
                    };
                    leader.addr.send(ask).await.unwrap_or_else(|_| Err(self.gone(&q.topic, q.partition)))
                }
            };
            out.push(EpochEnd { topic: q.topic, partition: q.partition, result });
        }
        Ok(out)
    }
    async fn controlled_shutdown(&self, _: &Peer, req: ControlledShutdown) -> Result<u32, BrokerError> {
        let controller = self.inner.controller.lock().map_or_else(|p| p.into_inner().clone(), |c| c.clone());
        let Some(controller) = controller else {
            return Err(BrokerError::NotController { broker: self.id() });
        };
        info!(broker = req.broker_id, "controlled shutdown asked for");
        controller
            .send(crate::controller::BeginShutdown(req.broker_id))
            .await
            .map_err(|_| BrokerError::NotController { broker: self.id() })?
    }
}

#[cfg(test)]
mod tests {
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
