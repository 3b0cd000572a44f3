//! The consumer: reads assigned partitions from their leaders.
//!
//! Partitions are [assigned](Consumer::assign) by the application, or by the consumer's
//! group after [`subscribe`](Consumer::subscribe) (`group.id`): `poll` joins and rejoins the
//! group as it rebalances (see [`group`](super::group)), positions newly assigned partitions
//! at the group's committed offsets, and with `enable.auto.commit` commits positions every
//! `auto.commit.interval.ms`, before each rebalance and on [`close`](Consumer::close).
//! Each assigned partition has a *position*: the
//! offset of the next record `poll` will return. A partition without one (newly assigned,
//! or after `seek_to_beginning` / `seek_to_end`, or an out-of-range fetch) gets one from the
//! leader with `ListOffsets` — the log start for `earliest`, the log end for `latest` — per
//! `auto.offset.reset` (`none`: `poll` fails with `NoOffsetForPartition`, or
//! `OffsetOutOfRange` after an out-of-range fetch).
//!
//! [`Consumer::poll`] returns buffered records first (at most `max.poll.records`, taking the
//! partitions in turn). Otherwise it groups the positioned partitions that have nothing
//! buffered by leader and sends one `Fetch` per leader at once (long poll:
//! `fetch.min.bytes` / `fetch.max.wait.ms`, never past the poll's timeout), decodes the
//! batches (skipping records before the position; nothing at or past the high watermark)
//! and buffers them. A partition whose leader is unknown or moved (`NotLeader`, unknown
//! topic) waits for refreshed metadata; the others go on meanwhile. The position advances as
//! records are returned, so [`Consumer::position`] is always the next record the
//! application will see.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_log::{BatchError, TimestampType};
use sluice_net::RpcError;
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use super::cluster::{rpc_is_retriable, Cluster, ClusterError, ClusterView, HEDGE_AFTER};
use super::config::{AutoOffsetReset, ConfigError, ConsumerConfig};
use super::fetch::extract;
use super::group::{GroupError, Link, Membership};
use super::proto::{
    BrokerError, Fetch, FetchPartition, FetchResponse, ListOffsets, ListOffsetsPartition, ListedOffset,
    PartitionMetadata, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};
use super::TopicPartition;

/// A record as `poll` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms since the epoch): the producer's, or the broker's append time for
    /// topics with `LogAppendTime`.
    pub timestamp: i64,
    /// Which of the two `timestamp` is (Kafka's `timestampType`).
    pub timestamp_type: TimestampType,
    /// The key.
    pub key: Option<Bytes>,
    /// The value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// An offset found by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The first offset whose timestamp is at least the time asked for.
    pub offset: i64,
    /// That record's timestamp.
    pub timestamp: i64,
}

/// How an asynchronous commit went ([`Consumer::commit_async`]): a future.
#[derive(Debug)]
pub struct CommitHandle(tokio::task::JoinHandle<Result<(), ConsumerError>>);

impl std::future::Future for CommitHandle {
    type Output = Result<(), ConsumerError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            Err(e) => Err(ConsumerError::CommitLost { reason: e.to_string() }),
        })
    }
}

type PollFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = (&'a mut Consumer, Result<Vec<ConsumerRecord>, ConsumerError>)>
            + Send
            + 'a,
    >,
>;

/// The records of a consumer's partitions as a stream ([`Consumer::stream`]).
pub struct RecordStream<'a> {
    /// The consumer, while no poll is running.
    consumer: Option<&'a mut Consumer>,
    /// Polled, not yet yielded.
    buffered: VecDeque<ConsumerRecord>,
    /// The poll running, which holds the consumer.
    polling: Option<PollFuture<'a>>,
}

impl std::fmt::Debug for RecordStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream").field("buffered", &self.buffered.len()).finish_non_exhaustive()
    }
}

impl RecordStream<'_> {
    /// Commits what the stream has yielded (each partition's position after its last
    /// yielded record, not after records fetched and still buffered here) and waits for the
    /// coordinator.
    pub async fn commit(&mut self) -> Result<(), ConsumerError> {
        if let Some(polling) = self.polling.take() {
            let (consumer, polled) = polling.await;
            self.consumer = Some(consumer);
            self.buffered.extend(polled?);
        }
        let Some(consumer) = self.consumer.as_mut() else { return Err(ConsumerError::NoAssignment) };
        let mut offsets = consumer.consumed();
        for r in &self.buffered {
            let tp = TopicPartition::new(r.topic.clone(), r.partition);
            offsets.entry(tp).and_modify(|o| *o = (*o).min(r.offset));
        }
        consumer.commit_offsets_sync(offsets).await
    }
}

/// How long one poll of a stream waits for records before it polls again.
const STREAM_POLL: Duration = Duration::from_millis(500);

impl futures_util::Stream for RecordStream<'_> {
    type Item = Result<ConsumerRecord, ConsumerError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if let Some(record) = this.buffered.pop_front() {
                return Poll::Ready(Some(Ok(record)));
            }
            if this.polling.is_none() {
                let Some(consumer) = this.consumer.take() else { return Poll::Ready(None) };
                this.polling = Some(Box::pin(async move {
                    let polled = consumer.poll(STREAM_POLL).await;
                    (consumer, polled)
                }));
            }
            let Some(polling) = this.polling.as_mut() else { return Poll::Ready(None) };
            match polling.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready((consumer, polled)) => {
                    this.polling = None;
                    this.consumer = Some(consumer);
                    match polled {
                        Ok(records) => this.buffered.extend(records),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }
}

impl Drop for RecordStream<'_> {
    fn drop(&mut self) {
        // The records not yielded are read again: each partition goes back to its first one.
        let Some(consumer) = self.consumer.as_mut() else { return };
        let mut first: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in &self.buffered {
            first.entry((r.topic.clone(), r.partition)).or_insert(r.offset);
        }
        for ((topic, partition), offset) in first {
            let _ = consumer.seek(&topic, partition, offset);
        }
    }
}

/// Why a consumer call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The configuration is incomplete or its TLS files unusable.
    #[error(transparent)]
    Config(ConfigError),
    /// Metadata could not be had, or a request failed for a reason retrying cannot fix.
    #[error(transparent)]
    Cluster(ClusterError),
    /// `poll` with nothing assigned or subscribed.
    #[error("no partitions are assigned: call assign, or subscribe with a group.id")]
    NoAssignment,
    /// A group operation without `group.id`.
    #[error("{what} needs a group.id: set group.id in the consumer's settings")]
    NoGroupId {
        /// What was asked.
        what: &'static str,
    },
    /// The group refused, or could not be reached.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// A partition that is not assigned.
    #[error("{topic}-{partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A seek to a negative offset.
    #[error("cannot seek {topic}-{partition} to {offset}: offsets are 0 or more")]
    NegativeOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset given.
        offset: i64,
    },
    /// A partition has no position and `auto.offset.reset` is `none`.
    #[error(
        "{topic}-{partition} has no position and auto.offset.reset=none: seek first, or set \
         auto.offset.reset to earliest or latest"
    )]
    NoOffsetForPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The position is outside the log and `auto.offset.reset` is `none`.
    #[error(
        "{topic}-{partition}: offset {offset} is out of range [{log_start_offset}, {log_end_offset}] and \
         auto.offset.reset=none: seek to a valid offset"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The position.
        offset: i64,
        /// The first offset held.
        log_start_offset: i64,
        /// The next offset to be written.
        log_end_offset: i64,
    },
    /// A broker refused a partition's fetch or lookup with an error retrying cannot fix.
    #[error("{topic}-{partition}: {error}")]
    Broker {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's error.
        error: BrokerError,
    },
    /// An asynchronous commit's task ended without an answer (the runtime shut down).
    #[error("the commit did not finish: {reason}; commit again")]
    CommitLost {
        /// Why.
        reason: String,
    },
    /// A fetched batch does not decode.
    #[error("{topic}-{partition}: the batch at offset {offset} is invalid: {source}")]
    Corrupt {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Where.
        offset: i64,
        /// What is wrong.
        source: BatchError,
    },
    /// Offsets could not be looked up in time.
    #[error("{what} not available within request.timeout.ms ({after:?}){}", last_error_suffix(last_error))]
    Timeout {
        /// What was looked up.
        what: String,
        /// How long.
        after: Duration,
        /// The last reason.
        last_error: Option<String>,
    },
}

fn last_error_suffix(last_error: &Option<String>) -> String {
    last_error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
}

impl From<ClusterError> for ConsumerError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Config(c) => ConsumerError::Config(c),
            other => ConsumerError::Cluster(other),
        }
    }
}

impl From<ConfigError> for ConsumerError {
    fn from(e: ConfigError) -> Self {
        ConsumerError::Config(e)
    }
}

/// Where to go when a partition has no position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
}

impl Reset {
    fn timestamp(self) -> i64 {
        match self {
            Reset::Earliest => EARLIEST_TIMESTAMP,
            Reset::Latest => LATEST_TIMESTAMP,
        }
    }
}

#[derive(Debug, Default)]
struct PartitionState {
    /// The next offset `poll` returns; `None`: to be looked up.
    position: Option<i64>,
    /// An explicit `seek_to_beginning` / `seek_to_end` not yet carried out.
    reset: Option<Reset>,
    /// Fetched records not yet returned.
    buffered: VecDeque<ConsumerRecord>,
    /// Where the position goes once the buffer is empty (past gaps and control batches).
    fetched_to: Option<i64>,
}

impl PartitionState {
    fn clear(&mut self) {
        self.buffered.clear();
        self.fetched_to = None;
    }
}

/// The fetches to send: per leader address, the partitions with the offsets asked for.
#[derive(Debug, Default)]
struct FetchPlan {
    by_leader: BTreeMap<String, Vec<FetchPartition>>,
    /// Some positioned partition has no known leader.
    leaderless: bool,
}

/// Groups the partitions that have a position and nothing buffered by leader.
fn plan_fetches(positions: &Positions, view: &ClusterView, max_partition_bytes: u32) -> FetchPlan {
    let mut plan = FetchPlan::default();
    for tp in &positions.order {
        let Some(st) = positions.states.get(tp) else { continue };
        let Some(offset) = st.position else { continue };
        if !st.buffered.is_empty() {
            continue;
        }
        match view.leader_addr(&tp.topic, tp.partition) {
            Some(addr) => plan.by_leader.entry(addr.to_string()).or_default().push(FetchPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                max_bytes: max_partition_bytes,
            }),
            None => plan.leaderless = true,
        }
    }
    plan
}

/// The assigned partitions: positions, buffered records, and the rules that move them (no
/// network here).
#[derive(Debug, Default)]
struct Positions {
    /// In the order assigned.
    order: Vec<TopicPartition>,
    states: HashMap<TopicPartition, PartitionState>,
    /// Where the next drain of the buffer starts, so no partition starves.
    drain_from: usize,
}

/// What applying a fetch answer asks of the caller.
#[derive(Debug, Default, PartialEq, Eq)]
struct Applied {
    /// Some partition's leader moved or is unknown: refresh metadata.
    refresh: bool,
    /// Some partition failed with a retriable error: back off before fetching it again.
    failed: bool,
}

impl Positions {
    /// Assigns exactly `partitions` (deduplicated, in order); returns their topics.
    fn assign(&mut self, partitions: Vec<TopicPartition>) -> Vec<String> {
        let mut order: Vec<TopicPartition> = Vec::new();
        for tp in partitions {
            if !order.contains(&tp) {
                order.push(tp);
            }
        }
        self.states.retain(|tp, _| order.contains(tp));
        for tp in &order {
            self.states.entry(tp.clone()).or_default();
        }
        let mut topics: Vec<String> = order.iter().map(|tp| tp.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        self.order = order;
        self.drain_from = 0;
        topics
    }

    fn state_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState, ConsumerError> {
        self.states
            .get_mut(tp)
            .ok_or_else(|| ConsumerError::NotAssigned { topic: tp.topic.clone(), partition: tp.partition })
    }

    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), ConsumerError> {
        if offset < 0 {
            return Err(ConsumerError::NegativeOffset {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
            });
        }
        let st = self.state_mut(tp)?;
        st.clear();
        st.reset = None;
        st.position = Some(offset);
        Ok(())
    }

    /// Marks partitions (all assigned ones if `given` is empty) for a lookup.
    fn seek_to(&mut self, mut given: Vec<TopicPartition>, reset: Reset) -> Result<(), ConsumerError> {
        if given.is_empty() {
            given = self.order.clone();
        }
        for tp in &given {
            self.state_mut(tp)?;
        }
        for tp in &given {
            let st = self.state_mut(tp)?;
            st.clear();
            st.position = None;
            st.reset = Some(reset);
        }
        Ok(())
    }

    /// Up to `max` buffered records, taking the partitions in turn; positions advance past
    /// what is returned.
    fn drain(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let max = max.max(1);
        let n = self.order.len();
        let mut out = Vec::new();
        for i in 0..n {
            if out.len() >= max {
                break;
            }
            let tp = &self.order[(self.drain_from + i) % n];
            let Some(st) = self.states.get_mut(tp) else { continue };
            while out.len() < max {
                let Some(r) = st.buffered.pop_front() else { break };
                st.position = Some(r.offset + 1);
                out.push(r);
            }
            if st.buffered.is_empty() {
                if let Some(to) = st.fetched_to.take() {
                    st.position = Some(st.position.map_or(to, |p| p.max(to)));
                }
            }
        }
        if n > 0 {
            self.drain_from = (self.drain_from + 1) % n;
        }
        out
    }

    /// Buffers one fetch answer's records (for the offsets in `asked`) and applies its
    /// per-partition errors.
    fn apply(
        &mut self,
        asked: &[(TopicPartition, i64)],
        response: FetchResponse,
        check_crcs: bool,
        auto_reset: AutoOffsetReset,
    ) -> Result<Applied, ConsumerError> {
        let mut applied = Applied::default();
        for fetched in response.partitions {
            let tp = TopicPartition::new(fetched.topic, fetched.partition);
            let Some(&(_, offset)) = asked.iter().find(|(a, _)| *a == tp) else { continue };
            let Some(st) = self.states.get_mut(&tp) else { continue };
            if st.position != Some(offset) || !st.buffered.is_empty() {
                continue; // moved meanwhile
            }
            match fetched.error {
                None => {
                    let e = extract(
                        &tp.topic,
                        tp.partition,
                        &fetched.records,
                        offset,
                        fetched.high_watermark,
                        check_crcs,
                    );
                    if e.records.is_empty() {
                        if let Some((at, source)) = e.error {
                            return Err(ConsumerError::Corrupt {
                                topic: tp.topic,
                                partition: tp.partition,
                                offset: at,
                                source,
                            });
                        }
                        st.position = Some(e.next_offset.max(offset));
                    } else {
                        st.buffered.extend(e.records);
                        st.fetched_to = Some(e.next_offset);
                    }
                }
                Some(BrokerError::OffsetOutOfRange { offset, log_start_offset, log_end_offset, .. }) => {
                    if st.reset.is_none() && auto_reset == AutoOffsetReset::None {
                        return Err(ConsumerError::OffsetOutOfRange {
                            topic: tp.topic,
                            partition: tp.partition,
                            offset,
                            log_start_offset,
                            log_end_offset,
                        });
                    }
                    let (start, end) = (log_start_offset, log_end_offset);
                    info!(%tp, offset, start, end, "offset out of range; resetting per auto.offset.reset");
                    st.position = None;
                }
                Some(e) if e.is_retriable() => {
                    debug!(%tp, error = %e, "fetch failed; will retry");
                    applied.failed = true;
                    applied.refresh |= e.needs_metadata_refresh();
                }
                Some(error) => {
                    return Err(ConsumerError::Broker { topic: tp.topic, partition: tp.partition, error })
                }
            }
        }
        Ok(applied)
    }

    /// Partitions without a position, with the `ListOffsets` timestamp that gives them one.
    fn unpositioned(
        &self,
        only: Option<&TopicPartition>,
        auto_reset: AutoOffsetReset,
    ) -> Result<Vec<(TopicPartition, i64)>, ConsumerError> {
        let mut wanted = Vec::new();
        for tp in &self.order {
            if only.is_some_and(|o| o != tp) {
                continue;
            }
            let Some(st) = self.states.get(tp) else { continue };
            if st.position.is_some() {
                continue;
            }
            let reset = match (st.reset, auto_reset) {
                (Some(r), _) => r,
                (None, AutoOffsetReset::Earliest) => Reset::Earliest,
                (None, AutoOffsetReset::Latest) => Reset::Latest,
                (None, AutoOffsetReset::None) => {
                    return Err(ConsumerError::NoOffsetForPartition {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    })
                }
            };
            wanted.push((tp.clone(), reset.timestamp()));
        }
        Ok(wanted)
    }

    /// A looked-up position.
    fn positioned(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(st) = self.states.get_mut(tp) {
            if st.position.is_none() {
                debug!(%tp, offset, "position reset");
                st.clear();
                st.position = Some(offset);
                st.reset = None;
            }
        }
    }
}

/// A consumer of assigned partitions. Not shared between tasks (`poll` takes `&mut self`),
/// as Kafka's consumer is not shared between threads.
#[derive(Debug)]
pub struct Consumer {
    cluster: Cluster,
    config: ConsumerConfig,
    positions: Positions,
    /// With `group.id`: the membership (used for commits even without `subscribe`).
    group: Option<Membership>,
    /// The topics subscribed to (`None`: partitions are assigned by hand).
    subscription: Option<Vec<String>>,
    listener: Option<Box<dyn RebalanceListener>>,
    next_auto_commit: Instant,
}

/// Told when a group rebalance takes partitions away and gives new ones (Kafka's
/// `ConsumerRebalanceListener`). With `enable.auto.commit` the consumer has committed the
/// revoked partitions' positions before `on_partitions_revoked`.
pub trait RebalanceListener: Send + Sync + std::fmt::Debug {
    /// These partitions are no longer this consumer's (every partition, before a rejoin).
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]);
    /// These partitions are now this consumer's, positioned at the group's committed offsets
    /// (or per `auto.offset.reset`).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]);
}

impl Consumer {
    /// A consumer for `config`'s cluster (reads the TLS files now, connects on first use).
    pub fn new(config: ConsumerConfig) -> Result<Consumer, ConsumerError> {
        config.validate()?;
        // Kafka's consumer asks for unknown topics to be created (allow.auto.create.topics,
        // on by default); the brokers decide (auto.create.topics.enable).
        let cluster = Cluster::new(&config.client, config.allow_auto_create_topics)?;
        let group = config.group_id.clone().map(|g| Membership::new(g, cluster.clone(), config.clone()));
        Ok(Consumer {
            cluster,
            next_auto_commit: Instant::now() + config.auto_commit_interval,
            config,
            positions: Positions::default(),
            group,
            subscription: None,
            listener: None,
        })
    }

    /// Joins `group.id`'s group reading `topics`: the group's members share the topics'
    /// partitions, rebalancing as members come and go. The first `poll` joins.
    pub fn subscribe<S: Into<String>>(
        &mut self,
        topics: impl IntoIterator<Item = S>,
    ) -> Result<(), ConsumerError> {
        let group = self.group.as_ref().ok_or(ConsumerError::NoGroupId { what: "subscribe" })?;
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        self.cluster.want(&topics);
        self.subscription = Some(topics);
        group.request_rejoin();
        Ok(())
    }

    /// [`subscribe`](Self::subscribe), telling `listener` of every revocation and
    /// assignment.
    pub fn subscribe_with<S: Into<String>>(
        &mut self,
        topics: impl IntoIterator<Item = S>,
        listener: impl RebalanceListener + 'static,
    ) -> Result<(), ConsumerError> {
        self.subscribe(topics)?;
        self.listener = Some(Box::new(listener));
        Ok(())
    }

    /// The group generation this consumer is in (-1 before it joins), and its member id.
    pub fn group_generation(&self) -> Option<(i32, String)> {
        self.group.as_ref().map(|g| (g.generation(), g.member_id().to_string()))
    }

    /// The positions of the assigned partitions that have one: what a commit writes.
    fn consumed(&self) -> BTreeMap<TopicPartition, i64> {
        self.positions
            .order
            .iter()
            .filter_map(|tp| self.positions.states.get(tp).and_then(|s| s.position).map(|p| (tp.clone(), p)))
            .collect()
    }

    /// Commits the positions of every assigned partition (the next offsets `poll` returns)
    /// and waits for the coordinator to have them replicated.
    pub async fn commit_sync(&mut self) -> Result<(), ConsumerError> {
        let offsets = self.consumed();
        self.commit_offsets_sync(offsets).await
    }

    /// Commits these offsets (each the next offset to read) and waits.
    pub async fn commit_offsets_sync(
        &mut self,
        offsets: BTreeMap<TopicPartition, i64>,
    ) -> Result<(), ConsumerError> {
        let group = self.group.as_ref().ok_or(ConsumerError::NoGroupId { what: "commit" })?;
        group.commit(&offsets).await?;
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        Ok(())
    }

    /// Commits the current positions in the background: the commit is sent at once and
    /// the returned [`CommitHandle`] is a future of how it went (dropping it does not
    /// cancel the commit). Must be called within a tokio runtime.
    pub fn commit_async(&mut self) -> Result<CommitHandle, ConsumerError> {
        let group = self.group.as_ref().ok_or(ConsumerError::NoGroupId { what: "commit" })?;
        let (link, generation, member): (Link, i32, String) = group.committer();
        let offsets = self.consumed();
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        Ok(CommitHandle(tokio::spawn(async move { Ok(link.commit(generation, &member, &offsets).await?) })))
    }

    /// The records of the assigned partitions as a [`futures_util::Stream`]
    /// ([`RecordStream`]): each record once, in order per partition. It polls only when its
    /// reader wants more and has none buffered (back-pressure: at most `max.poll.records`
    /// wait in it), and when dropped puts the positions of the records it had not yielded
    /// back, so the next `poll` or stream starts with them. Errors are yielded as items;
    /// the stream goes on after them.
    pub fn stream(&mut self) -> RecordStream<'_> {
        RecordStream { consumer: Some(self), buffered: VecDeque::new(), polling: None }
    }

    /// The group's committed offsets for `partitions` (`None`: nothing committed).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>, ConsumerError> {
        let group = self.group.as_ref().ok_or(ConsumerError::NoGroupId { what: "committed" })?;
        Ok(group.committed(partitions).await?)
    }

    /// Commits (with `enable.auto.commit`) and leaves the group, so its partitions move to
    /// the other members at once rather than after `session.timeout.ms`.
    pub async fn close(mut self) -> Result<(), ConsumerError> {
        let mut result = Ok(());
        if self.config.enable_auto_commit && self.subscription.is_some() {
            if let Err(e) = self.commit_sync().await {
                result = Err(e);
            }
        }
        if let Some(g) = self.group.as_mut() {
            g.leave().await;
        }
        result
    }

    /// Commits the positions when auto-commit is on and the interval has passed.
    async fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || Instant::now() < self.next_auto_commit {
            return;
        }
        if let Err(e) = self.commit_sync().await {
            warn!(error = %e, "auto-commit failed");
            self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        }
    }

    /// Rejoins the group if it asks: commits and revokes what this consumer has, joins, and
    /// positions the new partitions at the group's committed offsets.
    async fn ensure_group(&mut self) -> Result<(), ConsumerError> {
        let (Some(topics), Some(group)) = (self.subscription.clone(), self.group.as_ref()) else {
            return Ok(());
        };
        if !group.needs_rejoin() {
            return Ok(());
        }
        let owned = self.positions.order.clone();
        // Kafka's rule: incremental (cooperative) only when every configured assignor is.
        let cooperative = self.config.assignment_strategy.iter().all(|n| super::assignor::is_cooperative(n));
        if !owned.is_empty() && !cooperative {
            if self.config.enable_auto_commit && group.generation() >= 0 {
                if let Err(e) = self.commit_sync().await {
                    debug!(error = %e, "commit before the rebalance failed");
                }
            }
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&owned);
            }
        }
        let consumed = self.consumed();
        let Some(group) = self.group.as_mut() else { return Ok(()) };
        let assigned = group.join(&topics, &owned).await?;
        let mut added = assigned.clone();
        if cooperative {
            // Give up only what moves; keep consuming the rest. A member that gave something
            // up rejoins at once, so the next round hands it to its new owner.
            let revoked: Vec<TopicPartition> =
                owned.iter().filter(|tp| !assigned.contains(tp)).cloned().collect();
            added.retain(|tp| !owned.contains(tp));
            if !revoked.is_empty() {
                if self.config.enable_auto_commit {
                    let offsets: BTreeMap<TopicPartition, i64> =
                        consumed.into_iter().filter(|(tp, _)| revoked.contains(tp)).collect();
                    if let Err(e) = group.commit(&offsets).await {
                        debug!(error = %e, "commit of the revoked partitions failed");
                    }
                }
                if let Some(l) = self.listener.as_mut() {
                    l.on_partitions_revoked(&revoked);
                }
                group.request_rejoin();
            }
        }
        let topics = self.positions.assign(assigned.clone());
        if !topics.is_empty() {
            self.cluster.want(&topics);
        }
        // Partitions this consumer had before keep their positions; new ones start at the
        // group's committed offsets.
        let fresh: Vec<TopicPartition> = assigned
            .iter()
            .filter(|tp| self.positions.states.get(*tp).is_some_and(|s| s.position.is_none()))
            .cloned()
            .collect();
        if !fresh.is_empty() {
            let committed = group.committed(&fresh).await?;
            for (tp, offset) in committed {
                if let Some(offset) = offset {
                    self.positions.seek(&tp, offset)?;
                }
            }
        }
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        if let Some(l) = self.listener.as_mut() {
            // Eager: everything assigned (all was revoked); cooperative: what was added.
            l.on_partitions_assigned(&added);
        }
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Reads exactly these partitions from now on. Partitions already assigned keep their
    /// positions and buffered records; the others are forgotten.
    pub fn assign<P: Into<TopicPartition>>(&mut self, partitions: impl IntoIterator<Item = P>) {
        let topics = self.positions.assign(partitions.into_iter().map(Into::into).collect());
        if !topics.is_empty() {
            self.cluster.want(&topics);
            self.cluster.refresh_in_background();
        }
    }

    /// The partitions of `topic` (Kafka's `partitionsFor`), waiting up to `timeout` while it
    /// is unknown or has no partitions yet. Does not create the topic.
    pub async fn partitions_for(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Vec<PartitionMetadata>, ConsumerError> {
        Ok(self.cluster.topic(topic, timeout).await?.metadata.partitions.clone())
    }

    /// The assigned partitions, in the order given.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.order.clone()
    }

    /// Sets the next offset `poll` returns for an assigned partition.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<(), ConsumerError> {
        self.positions.seek(&TopicPartition::new(topic, partition), offset)
    }

    /// Moves the partitions (all assigned ones if none are given) to their log start; looked
    /// up on the next `poll` or `position`.
    pub fn seek_to_beginning<P: Into<TopicPartition>>(
        &mut self,
        partitions: impl IntoIterator<Item = P>,
    ) -> Result<(), ConsumerError> {
        self.positions.seek_to(partitions.into_iter().map(Into::into).collect(), Reset::Earliest)
    }

    /// Moves the partitions (all assigned ones if none are given) to their log end; looked
    /// up on the next `poll` or `position`.
    pub fn seek_to_end<P: Into<TopicPartition>>(
        &mut self,
        partitions: impl IntoIterator<Item = P>,
    ) -> Result<(), ConsumerError> {
        self.positions.seek_to(partitions.into_iter().map(Into::into).collect(), Reset::Latest)
    }

    /// The offset of the next record `poll` will return for an assigned partition, looking
    /// it up (per a pending seek or `auto.offset.reset`) if needed.
    pub async fn position(&mut self, topic: &str, partition: i32) -> Result<i64, ConsumerError> {
        let tp = TopicPartition::new(topic, partition);
        if let Some(p) = self.positions.state_mut(&tp)?.position {
            return Ok(p);
        }
        let timeout = self.config.client.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        loop {
            if let Some(e) = self.resolve_positions(Some(&tp)).await? {
                last_error = Some(e);
            }
            if let Some(p) = self.positions.state_mut(&tp)?.position {
                return Ok(p);
            }
            if Instant::now() >= deadline {
                return Err(ConsumerError::Timeout {
                    what: format!("the position of {tp}"),
                    after: timeout,
                    last_error,
                });
            }
            self.wait_for_metadata(deadline).await;
        }
    }

    /// Looks up positions for assigned partitions without one (only `only`, if given).
    /// Returns the last retriable failure, if any (those partitions stay without a position).
    async fn resolve_positions(
        &mut self,
        only: Option<&TopicPartition>,
    ) -> Result<Option<String>, ConsumerError> {
        let wanted = self.positions.unpositioned(only, self.config.auto_offset_reset)?;
        if wanted.is_empty() {
            return Ok(None);
        }
        let (answers, mut last_error) = self.list_offsets_once(&wanted).await?;
        for (tp, result) in answers {
            match result {
                Ok((offset, _)) => self.positions.positioned(&tp, offset),
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        Ok(last_error)
    }

    /// One round of `ListOffsets`, one request per leader at once. Returns the answers
    /// (retriable per-partition errors included, for the caller to retry) and the last
    /// retriable failure of a whole request; fails on anything retrying cannot fix.
    async fn list_offsets_once(
        &self,
        wanted: &[(TopicPartition, i64)],
    ) -> Result<(Vec<(TopicPartition, Result<(i64, i64), BrokerError>)>, Option<String>), ConsumerError> {
        let mut topics: Vec<String> = wanted.iter().map(|(tp, _)| tp.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        let mut view = self.cluster.view();
        if topics.iter().any(|t| view.topic(t).is_none()) {
            match self.cluster.refresh(&topics).await {
                Ok(v) => view = v,
                Err(e) if e.is_retriable() => return Ok((Vec::new(), Some(e.to_string()))),
                Err(e) => return Err(e.into()),
            }
        }
        let mut by_leader: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
        let mut last_error = None;
        for (tp, timestamp) in wanted {
            match view.leader_addr(&tp.topic, tp.partition) {
                Some(addr) => by_leader.entry(addr.to_string()).or_default().push(ListOffsetsPartition {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    timestamp: *timestamp,
                }),
                None => {
                    last_error = Some(format!("{tp} has no known leader"));
                    self.cluster.refresh_in_background();
                }
            }
        }
        let mut calls = JoinSet::new();
        for (addr, partitions) in by_leader {
            let cluster = self.cluster.clone();
            calls.spawn(async move {
                let asked: Vec<(String, i32)> =
                    partitions.iter().map(|p| (p.topic.clone(), p.partition)).collect();
                let moved = asked.iter().map(|(t, p)| (t.as_str(), *p));
                let r = cluster.call_leader(&addr, moved, ListOffsets { partitions }, HEDGE_AFTER).await;
                (addr, r)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = calls.join_next().await {
            let Ok((addr, result)) = joined else { continue };
            match result {
                None => last_error = Some(format!("the partitions asked of {addr} are led elsewhere now")),
                Some(Ok(Ok(listed))) => {
                    for ListedOffset { topic, partition, result } in listed {
                        let tp = TopicPartition { topic, partition };
                        match result {
                            Err(e) if !e.is_retriable() => {
                                return Err(ConsumerError::Broker { topic: tp.topic, partition, error: e })
                            }
                            Err(e) => {
                                if e.needs_metadata_refresh() {
                                    self.cluster.refresh_in_background();
                                }
                                answers.push((tp, Err(e)));
                            }
                            Ok(found) => answers.push((tp, Ok(found))),
                        }
                    }
                }
                Some(Ok(Err(e))) if e.is_retriable() => {
                    self.cluster.refresh_in_background();
                    last_error = Some(format!("{addr}: {e}"));
                }
                Some(Ok(Err(e))) => return Err(ClusterError::Broker(e).into()),
                Some(Err(e)) => last_error = Some(self.transport_failure(e)?),
            }
        }
        Ok((answers, last_error))
    }

    /// A failed call: retriable ones are noted (and metadata refreshed), others returned.
    fn transport_failure(&self, e: RpcError) -> Result<String, ConsumerError> {
        if rpc_is_retriable(&e) {
            debug!(error = %e, "request failed; will retry");
            self.cluster.refresh_in_background();
            Ok(e.to_string())
        } else {
            Err(ClusterError::Rpc(e).into())
        }
    }

    /// `ListOffsets` for these lookups, retried until every one is answered or
    /// `request.timeout.ms` passes.
    async fn list_offsets(
        &self,
        wanted: Vec<(TopicPartition, i64)>,
        what: &str,
    ) -> Result<HashMap<TopicPartition, (i64, i64)>, ConsumerError> {
        let timeout = self.config.client.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut found = HashMap::new();
        let mut pending = wanted;
        let mut last_error = None;
        loop {
            let (answers, error) = self.list_offsets_once(&pending).await?;
            last_error = error.or(last_error);
            for (tp, result) in answers {
                match result {
                    Ok(v) => {
                        found.insert(tp, v);
                    }
                    Err(e) => last_error = Some(e.to_string()),
                }
            }
            pending.retain(|(tp, _)| !found.contains_key(tp));
            if pending.is_empty() {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                let names: Vec<String> = pending.iter().map(|(tp, _)| tp.to_string()).collect();
                return Err(ConsumerError::Timeout {
                    what: format!("{what} of {}", names.join(", ")),
                    after: timeout,
                    last_error,
                });
            }
            self.wait_for_metadata(deadline).await;
        }
    }

    /// Waits for new metadata, at most `retry.backoff.ms` and never past `deadline`.
    async fn wait_for_metadata(&self, deadline: Instant) {
        let mut updates = self.cluster.updates();
        let until =
            deadline.min(Instant::now() + self.config.client.retry_backoff.max(Duration::from_millis(1)));
        let _ = tokio::time::timeout_at(until.into(), updates.changed()).await;
    }

    /// The log start offsets of these partitions (need not be assigned).
    pub async fn beginning_offsets<P: Into<TopicPartition>>(
        &self,
        partitions: impl IntoIterator<Item = P>,
    ) -> Result<HashMap<TopicPartition, i64>, ConsumerError> {
        let wanted = partitions.into_iter().map(|p| (p.into(), EARLIEST_TIMESTAMP)).collect();
        Ok(self
            .list_offsets(wanted, "the beginning offsets")
            .await?
            .into_iter()
            .map(|(tp, (o, _))| (tp, o))
            .collect())
    }

    /// The log end offsets (the offset the next record will get) of these partitions.
    pub async fn end_offsets<P: Into<TopicPartition>>(
        &self,
        partitions: impl IntoIterator<Item = P>,
    ) -> Result<HashMap<TopicPartition, i64>, ConsumerError> {
        let wanted = partitions.into_iter().map(|p| (p.into(), LATEST_TIMESTAMP)).collect();
        Ok(self
            .list_offsets(wanted, "the end offsets")
            .await?
            .into_iter()
            .map(|(tp, (o, _))| (tp, o))
            .collect())
    }

    /// For each partition, the first offset whose timestamp is at least the time given (ms
    /// since the epoch; negative times count as 0); `None` when no record is that recent.
    pub async fn offsets_for_times<P: Into<TopicPartition>>(
        &self,
        times: impl IntoIterator<Item = (P, i64)>,
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>, ConsumerError> {
        let wanted: Vec<(TopicPartition, i64)> =
            times.into_iter().map(|(p, t)| (p.into(), t.max(0))).collect();
        let found = self.list_offsets(wanted, "the offsets for times").await?;
        Ok(found
            .into_iter()
            .map(|(tp, (offset, timestamp))| {
                let hit = (timestamp >= 0).then_some(OffsetAndTimestamp { offset, timestamp });
                (tp, hit)
            })
            .collect())
    }

    /// Records from the assigned partitions: buffered ones at once, else what arrives within
    /// `timeout` (an empty list if nothing does). At most `max.poll.records`.
    ///
    /// When traces are exported, each call is a `poll` span (group, records returned) and the
    /// group calls and fetches it makes are its children.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ConsumerError> {
        if !sluice_net::trace::enabled() {
            return self.poll_inner(timeout).await;
        }
        let span = tracing::info_span!(
            "poll",
            group = self.config.group_id.as_deref().unwrap_or(""),
            records = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        sluice_net::trace::record_trace_id(&span);
        let polled = self.poll_inner(timeout).instrument(span.clone()).await;
        if let Ok(records) = &polled {
            span.record("records", records.len());
        }
        polled
    }

    async fn poll_inner(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ConsumerError> {
        let deadline = Instant::now() + timeout;
        if self.subscription.is_some() {
            self.ensure_group().await?;
            self.maybe_auto_commit().await;
            if self.positions.order.is_empty() {
                // A member with no partitions (more members than partitions): wait for a
                // rebalance that may give it some.
                while Instant::now() < deadline && !self.group.as_ref().is_some_and(Membership::needs_rejoin)
                {
                    tokio::time::sleep(
                        Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                return Ok(Vec::new());
            }
        } else if self.positions.order.is_empty() {
            return Err(ConsumerError::NoAssignment);
        }
        loop {
            if self.group.as_ref().is_some_and(|g| self.subscription.is_some() && g.needs_rejoin()) {
                // Rebalancing: hand back what is buffered; the next poll rejoins.
                return Ok(self.positions.drain(self.config.max_poll_records));
            }
            let records = self.positions.drain(self.config.max_poll_records);
            if !records.is_empty() {
                return Ok(records);
            }
            self.cluster.refresh_if_stale();
            self.resolve_positions(None).await?;
            let view = self.cluster.view();
            let plan = plan_fetches(&self.positions, &view, self.config.max_partition_fetch_bytes);
            if plan.leaderless {
                self.cluster.refresh_in_background();
            }
            if plan.by_leader.is_empty() {
                if Instant::now() >= deadline {
                    return Ok(Vec::new());
                }
                self.wait_for_metadata(deadline).await;
                continue;
            }
            let failed = self.fetch_round(plan, deadline).await?;
            let records = self.positions.drain(self.config.max_poll_records);
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
            if failed {
                // A broker answers at once when a partition fails: wait for new metadata (or
                // the backoff) instead of asking again at once.
                self.wait_for_metadata(deadline).await;
            }
        }
    }

    /// Sends the planned fetches at once and buffers what comes back. Returns whether some
    /// fetch or partition failed with a retriable error.
    async fn fetch_round(&mut self, plan: FetchPlan, deadline: Instant) -> Result<bool, ConsumerError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let max_wait = self.config.fetch_max_wait.min(remaining);
        let mut calls = JoinSet::new();
        for (addr, partitions) in plan.by_leader {
            let request = Fetch {
                max_wait_ms: u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX),
                min_bytes: self.config.fetch_min_bytes,
                max_bytes: self.config.fetch_max_bytes,
                partitions,
            };
            let cluster = self.cluster.clone();
            let topic = request.partitions.first().map(|p| p.topic.clone()).unwrap_or_default();
            let span = super::client_span("fetch", &topic);
            calls.spawn(
                async move {
                    let asked: Vec<(TopicPartition, i64)> = request
                        .partitions
                        .iter()
                        .map(|p| (TopicPartition::new(p.topic.clone(), p.partition), p.offset))
                        .collect();
                    // A fetch is only a read: once its partitions are led elsewhere it is
                    // dropped (`None`), and the next round asks the new leaders.
                    let moved = asked.iter().map(|(tp, _)| (tp.topic.as_str(), tp.partition));
                    let r = cluster.call_leader(&addr, moved, request, max_wait).await;
                    (addr, asked, r)
                }
                .instrument(span),
            );
        }
        let mut failed = false;
        while let Some(joined) = calls.join_next().await {
            let Ok((addr, asked, result)) = joined else { continue };
            match result {
                None => {
                    debug!(%addr, "the partitions fetched here are led elsewhere now; asking their new leaders");
                    failed = true;
                }
                Some(Ok(Ok(response))) => {
                    let (check_crcs, reset) = (self.config.check_crcs, self.config.auto_offset_reset);
                    let applied = self.positions.apply(&asked, response, check_crcs, reset)?;
                    if applied.refresh {
                        self.cluster.refresh_in_background();
                    }
                    failed |= applied.failed;
                }
                Some(Ok(Err(e))) if e.is_retriable() => {
                    debug!(%addr, error = %e, "fetch refused; will retry");
                    self.cluster.refresh_in_background();
                    failed = true;
                }
                Some(Ok(Err(e))) => return Err(ClusterError::Broker(e).into()),
                Some(Err(e)) => {
                    self.transport_failure(e)?;
                    failed = true;
                }
            }
        }
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_log::{BatchHeader, Compression, Record, RecordBatch};

    use super::super::cluster::TopicView;
    use super::super::proto::{BrokerEndpoint, FetchedPartition, Metadata, PartitionMetadata, TopicMetadata};
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    /// Batches of `count` records from `base`, `per_batch` records each.
    fn batches(base: i64, count: i64, per_batch: i64) -> Bytes {
        let mut out = Vec::new();
        let mut at = base;
        while at < base + count {
            let n = per_batch.min(base + count - at);
            let mut header = BatchHeader::new(Compression::Lz4, at, at + n);
            header.base_offset = at;
            let records = (0..n)
                .map(|i| Record {
                    offset_delta: i as i32,
                    timestamp_delta: i,
                    key: None,
                    value: Some(Bytes::from((at + i).to_string())),
                    headers: vec![],
                })
                .collect();
            out.extend(RecordBatch { header, records }.encode());
            at += n;
        }
        Bytes::from(out)
    }

    fn answer(p: i32, error: Option<BrokerError>, records: Bytes, high_watermark: i64) -> FetchedPartition {
        FetchedPartition {
            topic: "t".into(),
            partition: p,
            error,
            high_watermark,
            log_start_offset: 0,
            records,
            traces: Vec::new(),
        }
    }

    fn positioned(partitions: &[i32], at: i64) -> Positions {
        let mut ps = Positions::default();
        ps.assign(partitions.iter().map(|&p| tp(p)).collect());
        for &p in partitions {
            ps.seek(&tp(p), at).expect("assigned");
        }
        ps
    }

    fn offsets(records: &[ConsumerRecord]) -> Vec<(i32, i64)> {
        records.iter().map(|r| (r.partition, r.offset)).collect()
    }

    #[test]
    fn fetches_are_grouped_by_leader_and_skip_buffered_and_unpositioned_partitions() {
        let md = Metadata {
            cluster_id: "c".into(),
            controller_id: None,
            brokers: vec![
                BrokerEndpoint { id: 1, host: "b1".into(), port: 1, rack: None, listeners: Vec::new() },
                BrokerEndpoint { id: 2, host: "b2".into(), port: 2, rack: None, listeners: Vec::new() },
            ],
            topics: vec![TopicMetadata {
                name: "t".into(),
                error: None,
                internal: false,
                partitions: (0..5)
                    .map(|p| PartitionMetadata {
                        partition: p,
                        leader: (p != 4).then_some(1 + p % 2),
                        leader_epoch: 0,
                        replicas: vec![],
                        isr: vec![],
                        offline_replicas: vec![],
                    })
                    .collect(),
            }],
        };
        let mut view = ClusterView {
            brokers: md.brokers.iter().map(|b| (b.id, b.clone())).collect(),
            ..Default::default()
        };
        for t in md.topics {
            view.topics.insert(t.name.clone(), Arc::new(TopicView::new(t, &view.brokers)));
        }
        let mut ps = positioned(&[0, 1, 2, 3, 4], 10);
        let asked = [(tp(2), 10)];
        ps.apply(
            &asked,
            FetchResponse { partitions: vec![answer(2, None, batches(10, 1, 1), 100)] },
            true,
            AutoOffsetReset::Latest,
        )
        .expect("buffered");
        ps.seek_to(vec![tp(3)], Reset::Earliest).expect("assigned");
        let plan = plan_fetches(&ps, &view, 1000);
        let summary: Vec<(String, Vec<i32>)> = plan
            .by_leader
            .iter()
            .map(|(addr, ps)| (addr.clone(), ps.iter().map(|p| p.partition).collect()))
            .collect();
        assert_eq!(summary, vec![("b1:1".to_string(), vec![0]), ("b2:2".to_string(), vec![1])]);
        assert!(plan.leaderless, "partition 4 has no leader");
        assert!(plan.by_leader.values().flatten().all(|p| p.offset == 10 && p.max_bytes == 1000));
    }

    #[test]
    fn poll_returns_at_most_max_poll_records_and_keeps_the_rest_with_positions_following() {
        let mut ps = positioned(&[0, 1], 5);
        let asked = [(tp(0), 5), (tp(1), 5)];
        let response = FetchResponse {
            // Partition 0's first batch starts before the position (offsets 0..=9, 4 per batch).
            partitions: vec![answer(0, None, batches(0, 10, 4), 100), answer(1, None, batches(5, 3, 3), 100)],
        };
        ps.apply(&asked, response, true, AutoOffsetReset::Latest).expect("applied");
        let first = ps.drain(4);
        assert_eq!(offsets(&first), vec![(0, 5), (0, 6), (0, 7), (0, 8)]);
        assert_eq!(first[0].value.as_deref(), Some(&b"5"[..]));
        assert_eq!(ps.states[&tp(0)].position, Some(9), "the next record to be returned");
        assert_eq!(ps.states[&tp(1)].position, Some(5), "nothing of 1 returned yet");
        let second = ps.drain(4);
        assert_eq!(
            offsets(&second),
            vec![(1, 5), (1, 6), (1, 7), (0, 9)],
            "the other partition's turn first"
        );
        assert_eq!((ps.states[&tp(0)].position, ps.states[&tp(1)].position), (Some(10), Some(8)));
        assert!(ps.drain(4).is_empty());
    }

    #[test]
    fn a_fetch_with_no_records_past_the_position_still_moves_it_past_gaps() {
        let mut ps = positioned(&[0], 3);
        // Records 0..=2 only: all before the position; the batch ends at 2.
        ps.apply(
            &[(tp(0), 3)],
            FetchResponse { partitions: vec![answer(0, None, batches(0, 3, 3), 3)] },
            true,
            AutoOffsetReset::Latest,
        )
        .expect("applied");
        assert_eq!(ps.states[&tp(0)].position, Some(3));
        assert!(ps.drain(10).is_empty());
    }

    #[test]
    fn an_out_of_range_position_is_reset_per_auto_offset_reset_or_fails_with_none() {
        let out_of_range = || BrokerError::OffsetOutOfRange {
            topic: "t".into(),
            partition: 0,
            offset: 50,
            log_start_offset: 0,
            log_end_offset: 10,
        };
        let mut ps = positioned(&[0], 50);
        let response =
            || FetchResponse { partitions: vec![answer(0, Some(out_of_range()), Bytes::new(), 10)] };
        ps.apply(&[(tp(0), 50)], response(), true, AutoOffsetReset::Earliest).expect("reset");
        assert_eq!(ps.states[&tp(0)].position, None);
        assert_eq!(
            ps.unpositioned(None, AutoOffsetReset::Earliest).expect("ok"),
            vec![(tp(0), EARLIEST_TIMESTAMP)]
        );
        ps.positioned(&tp(0), 0);
        assert_eq!(ps.states[&tp(0)].position, Some(0));

        let mut ps = positioned(&[0], 50);
        let err = ps.apply(&[(tp(0), 50)], response(), true, AutoOffsetReset::None).expect_err("none");
        assert!(
            matches!(err, ConsumerError::OffsetOutOfRange { offset: 50, log_end_offset: 10, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("out of range [0, 10]"), "{err}");
    }

    #[test]
    fn a_partition_without_a_position_is_looked_up_per_seek_or_policy_and_none_is_an_error() {
        let mut ps = Positions::default();
        ps.assign(vec![tp(0), tp(1), tp(0)]);
        assert_eq!(ps.order, vec![tp(0), tp(1)], "deduplicated, in order");
        assert_eq!(
            ps.unpositioned(None, AutoOffsetReset::Latest).expect("ok"),
            vec![(tp(0), LATEST_TIMESTAMP), (tp(1), LATEST_TIMESTAMP)]
        );
        let err = ps.unpositioned(None, AutoOffsetReset::None).expect_err("none");
        assert!(matches!(err, ConsumerError::NoOffsetForPartition { partition: 0, .. }), "{err}");
        ps.seek_to(vec![], Reset::Earliest).expect("all assigned");
        assert_eq!(
            ps.unpositioned(None, AutoOffsetReset::None).expect("explicit seek wins"),
            vec![(tp(0), EARLIEST_TIMESTAMP), (tp(1), EARLIEST_TIMESTAMP)]
        );
        assert_eq!(
            ps.unpositioned(Some(&tp(1)), AutoOffsetReset::None).expect("ok"),
            vec![(tp(1), EARLIEST_TIMESTAMP)]
        );
    }

    #[test]
    fn seeks_need_an_assigned_partition_and_a_non_negative_offset_and_drop_buffered_records() {
        let mut ps = positioned(&[0], 0);
        ps.apply(
            &[(tp(0), 0)],
            FetchResponse { partitions: vec![answer(0, None, batches(0, 5, 5), 5)] },
            true,
            AutoOffsetReset::Latest,
        )
        .expect("applied");
        ps.seek(&tp(0), 3).expect("assigned");
        assert!(ps.drain(10).is_empty(), "buffered records from before the seek are gone");
        assert_eq!(ps.states[&tp(0)].position, Some(3));
        assert!(matches!(ps.seek(&tp(7), 0), Err(ConsumerError::NotAssigned { partition: 7, .. })));
        assert!(matches!(ps.seek(&tp(0), -1), Err(ConsumerError::NegativeOffset { .. })));
        assert!(ps.seek_to(vec![tp(0), tp(9)], Reset::Latest).is_err());
        assert_eq!(ps.states[&tp(0)].position, Some(3), "nothing changed by a refused seek");
        // Reassigning keeps the positions of partitions that stay.
        ps.assign(vec![tp(1), tp(0)]);
        assert_eq!(ps.states[&tp(0)].position, Some(3));
        assert_eq!(ps.states[&tp(1)].position, None);
        ps.assign(vec![tp(1)]);
        assert!(!ps.states.contains_key(&tp(0)));
    }

    #[test]
    fn fetch_errors_refresh_metadata_retry_or_fail() {
        let mut ps = positioned(&[0, 1], 0);
        let moved =
            BrokerError::NotLeaderForPartition { topic: "t".into(), partition: 0, broker: 1, leader: None };
        let response = FetchResponse {
            partitions: vec![answer(0, Some(moved), Bytes::new(), 0), answer(1, None, batches(0, 2, 2), 2)],
        };
        let applied =
            ps.apply(&[(tp(0), 0), (tp(1), 0)], response, true, AutoOffsetReset::Latest).expect("retriable");
        assert!(applied.refresh && applied.failed);
        assert_eq!(offsets(&ps.drain(10)), vec![(1, 0), (1, 1)], "the other partition is unaffected");
        let fatal = BrokerError::InvalidRequest { reason: "x".into() };
        let response = FetchResponse { partitions: vec![answer(0, Some(fatal), Bytes::new(), 0)] };
        let err = ps.apply(&[(tp(0), 0)], response, true, AutoOffsetReset::Latest).expect_err("fatal");
        assert!(matches!(err, ConsumerError::Broker { partition: 0, .. }), "{err}");
    }

    #[test]
    fn a_corrupt_batch_is_an_error_naming_the_partition_and_offset() {
        let mut ps = positioned(&[0], 0);
        let mut bytes = batches(0, 3, 3).to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let response = FetchResponse { partitions: vec![answer(0, None, Bytes::from(bytes), 3)] };
        let err = ps.apply(&[(tp(0), 0)], response, true, AutoOffsetReset::Latest).expect_err("corrupt");
        assert!(
            err.to_string().starts_with("t-0: the batch at offset 0 is invalid: batch CRC mismatch"),
            "{err}"
        );
    }
}
