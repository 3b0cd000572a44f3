//! Consumer groups: a [`GroupCoordinator`] actor per group, shells around
//! [`sluice_broker_core::group::Group`], and the [`GroupManager`] that knows which groups
//! this broker coordinates.
//!
//! A group is coordinated by the leader of its `__consumer_offsets` partition
//! ([`group_log::partition_for`]). The manager follows this broker's leaderships of that
//! topic: when it starts leading a partition it reads the partition (up to the log end it
//! saw, once the high watermark has reached it) and starts an actor for every group found
//! there; when it stops leading, those actors tell their held requests `NotCoordinator`
//! and stop. Requests for a partition still loading get `CoordinatorLoadInProgress`.
//!
//! A coordinator writes to its partition like an `acks=all` producer: offset commits are
//! answered once replicated; group metadata (after each completed rebalance, and when
//! the group empties) is written in the background, so a new coordinator finds the members
//! and their assignments and the group carries on without a rebalance.
//!
//! Timers: each coordinator ticks every 100 ms (join phases, the initial rebalance delay,
//! session expiry) and checks its offsets' retention every second.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;
use sluice_broker_core::group::{
    CommitOffset, CommittedOffset, Effect, Group, GroupDescription, GroupOverview, GroupRules, Join,
    JoinResult, Waiter,
};
use sluice_broker_core::group_log::{self, Loader};
use sluice_broker_core::BrokerError;
use sluice_log::{BatchHeader, Compression, Record, RecordBatch, TopicPartition};
use sluice_proto::broker::{BrokerProtocol, OFFSETS_TOPIC};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::partition::{Append, Read};
use crate::replica_manager::{current, Hosted, SharedRouting};

/// How long a coordinator's write may wait for the in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

fn now() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

/// Writes records to one partition of `__consumer_offsets` as an `acks=all` producer would.
#[derive(Clone)]
struct OffsetsWriter {
    routing: SharedRouting,
    config: Arc<BrokerConfig>,
    partition: i32,
}

impl OffsetsWriter {
    /// Appends `(key, value)` records (a `None` value is a tombstone) in one batch and waits
    /// until the in-sync replicas have them.
    fn write(
        &self,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> impl std::future::Future<Output = Result<(), BrokerError>> + 'static {
        let routing = current(&self.routing);
        let tp = TopicPartition::new(OFFSETS_TOPIC, self.partition);
        let broker = self.config.broker_id;
        let min_insync = routing
            .update
            .as_ref()
            .and_then(|u| u.topics.get(OFFSETS_TOPIC))
            .map_or(self.config.min_insync_replicas, |t| self.config.topic_min_insync_replicas(&t.configs))
            .max(1) as usize;
        let hosted = routing.partitions.get(&tp).filter(|h| h.offsets.borrow().leading.is_some()).cloned();
        let now = now_ms();
        let batch = RecordBatch {
            header: BatchHeader::new(Compression::None, now, now),
            records: records
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| Record {
                    offset_delta: i as i32,
                    timestamp_delta: 0,
                    key: Some(k.into()),
                    value: v.map(Into::into),
                    headers: vec![],
                })
                .collect(),
        };
        async move {
            let not_leader = || BrokerError::NotLeaderForPartition {
                topic: OFFSETS_TOPIC.into(),
                partition: tp.partition,
                broker,
                leader: None,
            };
            let Hosted { addr, offsets } = hosted.ok_or_else(not_leader)?;
            let append = Append {
                records: BytesMut::from(&batch.encode()[..]),
                order: None,
                min_insync: Some(min_insync),
                span: tracing::Span::current(),
            };
            let appended = addr.send(append).await.map_err(|_| not_leader())??;
            crate::service::wait_replicated(
                offsets,
                appended.end_offset,
                min_insync,
                COMMIT_TIMEOUT,
                OFFSETS_TOPIC,
                tp.partition,
                broker,
            )
            .await
        }
    }
}

enum Reply {
    Join(oneshot::Sender<Result<JoinResult, BrokerError>>),
    Sync(oneshot::Sender<Result<Vec<u8>, BrokerError>>),
}

/// One consumer group's coordinator.
pub struct GroupCoordinator {
    group: Group,
    writer: OffsetsWriter,
    manager: Addr<GroupManager>,
    waiting: HashMap<Waiter, Reply>,
    next_waiter: Waiter,
    ticks: u64,
    broker: i32,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator").field("group", &self.group.id()).finish_non_exhaustive()
    }
}

impl Actor for GroupCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_millis(100), |act, ctx| {
            let now = now();
            let mut effects = act.group.tick(now);
            act.ticks += 1;
            if act.ticks % 10 == 0 {
                effects.extend(act.group.expire_offsets(now));
                let group = act.group.id().to_string();
                metrics::gauge!("sluice_group_members", "group" => group.clone())
                    .set(act.group.member_ids().len() as f64);
                metrics::gauge!("sluice_group_generation", "group" => group)
                    .set(f64::from(act.group.generation()));
            }
            act.carry_out(effects, ctx);
        });
    }
}

impl GroupCoordinator {
    fn waiter(&mut self, reply: Reply) -> Waiter {
        self.next_waiter += 1;
        self.waiting.insert(self.next_waiter, reply);
        self.next_waiter
    }

    fn carry_out(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        for e in effects {
            match e {
                Effect::Join(w, r) => {
                    if let Some(Reply::Join(tx)) = self.waiting.remove(&w) {
                        let _ = tx.send(r);
                    }
                }
                Effect::Sync(w, r) => {
                    if let Some(Reply::Sync(tx)) = self.waiting.remove(&w) {
                        let _ = tx.send(r);
                    }
                }
                Effect::StoreGroup(record) => {
                    let id = self.group.id().to_string();
                    let generation = record.generation;
                    let write = self
                        .writer
                        .write(vec![(group_log::group_key(&id), Some(group_log::group_value(&record)))]);
                    actix::spawn(async move {
                        if let Err(e) = write.await {
                            warn!(group = %id, generation, error = %e, "could not write the group's metadata");
                        }
                    });
                }
                Effect::DeleteOffsets(tps) => {
                    let id = self.group.id().to_string();
                    let n = tps.len();
                    let write = self
                        .writer
                        .write(tps.iter().map(|(t, p)| (group_log::offset_key(&id, t, *p), None)).collect());
                    actix::spawn(async move {
                        match write.await {
                            Ok(()) => info!(group = %id, offsets = n, "offsets removed"),
                            Err(e) => warn!(group = %id, error = %e, "could not write offset tombstones"),
                        }
                    });
                }
                Effect::Gone => {
                    let id = self.group.id().to_string();
                    let write = self.writer.write(vec![(group_log::group_key(&id), None)]);
                    let group = id.clone();
                    actix::spawn(async move {
                        if let Err(e) = write.await {
                            warn!(%group, error = %e, "could not write the group's tombstone");
                        }
                    });
                    self.manager.do_send(Stopped { group: id });
                    ctx.stop();
                }
            }
        }
    }
}

/// Joins the group (the answer comes when the join phase ends).
#[derive(Debug, Message)]
#[rtype(result = "oneshot::Receiver<Result<JoinResult, BrokerError>>")]
pub struct JoinMsg(pub Join);

impl Handler<JoinMsg> for GroupCoordinator {
    type Result = MessageResult<JoinMsg>;

    fn handle(&mut self, msg: JoinMsg, ctx: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupCoordinator", "JoinMsg");
        let (tx, rx) = oneshot::channel();
        let w = self.waiter(Reply::Join(tx));
        let effects = self.group.join(now(), w, msg.0);
        self.carry_out(effects, ctx);
        MessageResult(rx)
    }
}

/// Syncs (the answer comes with the leader's assignment).
#[derive(Debug, Message)]
#[rtype(result = "oneshot::Receiver<Result<Vec<u8>, BrokerError>>")]
pub struct SyncMsg {
    /// The member.
    pub member: String,
    /// Its generation.
    pub generation: i32,
    /// The leader's assignments.
    pub assignments: Vec<(String, Vec<u8>)>,
}

impl Handler<SyncMsg> for GroupCoordinator {
    type Result = MessageResult<SyncMsg>;

    fn handle(&mut self, msg: SyncMsg, ctx: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupCoordinator", "SyncMsg");
        let (tx, rx) = oneshot::channel();
        let w = self.waiter(Reply::Sync(tx));
        let effects = self.group.sync(now(), w, &msg.member, msg.generation, msg.assignments);
        self.carry_out(effects, ctx);
        MessageResult(rx)
    }
}

/// A heartbeat.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct HeartbeatMsg {
    /// The member.
    pub member: String,
    /// Its generation.
    pub generation: i32,
}

impl Handler<HeartbeatMsg> for GroupCoordinator {
    type Result = Result<(), BrokerError>;

    fn handle(&mut self, msg: HeartbeatMsg, _: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupCoordinator", "HeartbeatMsg");
        self.group.heartbeat(now(), &msg.member, msg.generation)
    }
}

/// Members leave.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct LeaveMsg(pub Vec<String>);

impl Handler<LeaveMsg> for GroupCoordinator {
    type Result = Result<(), BrokerError>;

    fn handle(&mut self, msg: LeaveMsg, ctx: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupCoordinator", "LeaveMsg");
        let (result, effects) = self.group.leave(now(), &msg.0);
        self.carry_out(effects, ctx);
        result
    }
}

/// Commits offsets: answered once they are replicated.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError>")]
pub struct CommitMsg {
    /// The member (empty without a group).
    pub member: String,
    /// Its generation (-1 without a group).
    pub generation: i32,
    /// The offsets.
    pub offsets: Vec<CommitOffset>,
}

impl Handler<CommitMsg> for GroupCoordinator {
    type Result = ResponseActFuture<Self, Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError>>;

    fn handle(&mut self, msg: CommitMsg, _: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupCoordinator", "CommitMsg");
        let checked = match self.group.check_commit(now(), &msg.member, msg.generation, &msg.offsets) {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let now = now_ms();
        let id = self.group.id().to_string();
        let mut accepted = Vec::new();
        let mut results = Vec::new();
        for (o, ok) in msg.offsets.into_iter().zip(checked) {
            results.push((o.topic.clone(), o.partition, ok.clone()));
            if ok.is_ok() {
                accepted.push(o);
            }
        }
        let records = accepted
            .iter()
            .map(|o| {
                let value = sluice_broker_core::group::OffsetRecord {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    commit_timestamp: now,
                };
                (group_log::offset_key(&id, &o.topic, o.partition), Some(group_log::offset_value(&value)))
            })
            .collect::<Vec<_>>();
        let write = (!records.is_empty()).then(|| self.writer.write(records));
        Box::pin(
            async move {
                match write {
                    Some(w) => w.await,
                    None => Ok(()),
                }
            }
            .into_actor(self)
            .map(move |written, act, _| match written {
                Ok(()) => {
                    for o in &accepted {
                        committed_gauge(act.group.id(), &o.topic, o.partition, o.offset);
                    }
                    act.group.commit(u64::try_from(now).unwrap_or(0), accepted);
                    Ok(results)
                }
                Err(e) => {
                    let e = sluice_broker_core::group::commit_write_error(act.group.id(), act.broker, e);
                    Ok(results.into_iter().map(|(t, p, r)| (t, p, r.and(Err(e.clone())))).collect())
                }
            }),
        )
    }
}

/// `sluice_group_committed_offset{group, topic, partition}` (the lag itself is
/// `sluice_group_lag`, [`crate::lag`]).
fn committed_gauge(group: &str, topic: &str, partition: i32, offset: i64) {
    let labels =
        [("group", group.to_string()), ("topic", topic.to_string()), ("partition", partition.to_string())];
    metrics::gauge!("sluice_group_committed_offset", &labels).set(offset as f64);
}

/// Committed offsets.
#[derive(Debug, Message)]
#[rtype(result = "Vec<CommittedOffset>")]
pub struct FetchOffsetsMsg(pub Option<Vec<(String, i32)>>);

impl Handler<FetchOffsetsMsg> for GroupCoordinator {
    type Result = MessageResult<FetchOffsetsMsg>;

    fn handle(&mut self, msg: FetchOffsetsMsg, _: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupCoordinator", "FetchOffsetsMsg");
        MessageResult(self.group.fetch_offsets(msg.0.as_deref()))
    }
}

/// The group described (and its overview).
#[derive(Debug, Message)]
#[rtype(result = "(GroupOverview, GroupDescription)")]
pub struct DescribeMsg;

impl Handler<DescribeMsg> for GroupCoordinator {
    type Result = MessageResult<DescribeMsg>;

    fn handle(&mut self, _: DescribeMsg, _: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupCoordinator", "DescribeMsg");
        MessageResult((self.group.overview(), self.group.describe()))
    }
}

/// Deletes the group (only when it has no members).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct DeleteMsg;

impl Handler<DeleteMsg> for GroupCoordinator {
    type Result = Result<(), BrokerError>;

    fn handle(&mut self, _: DeleteMsg, ctx: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupCoordinator", "DeleteMsg");
        let effects = self.group.delete(now())?;
        self.carry_out(effects, ctx);
        Ok(())
    }
}

/// Topics were deleted: their offsets go.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct DropTopics(Arc<Vec<String>>);

impl Handler<DropTopics> for GroupCoordinator {
    type Result = ();

    fn handle(&mut self, msg: DropTopics, ctx: &mut Context<Self>) {
        let _span = sluice_actors::handling!("GroupCoordinator", "DropTopics");
        let effects = self.group.drop_topics(now(), &msg.0);
        self.carry_out(effects, ctx);
    }
}

/// This broker no longer coordinates the group.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Unload;

impl Handler<Unload> for GroupCoordinator {
    type Result = ();

    fn handle(&mut self, _: Unload, ctx: &mut Context<Self>) {
        let _span = sluice_actors::handling!("GroupCoordinator", "Unload");
        let effects = self.group.unload(now(), self.broker);
        // Only replies: nothing is written by a coordinator that lost its partition.
        for e in effects {
            match e {
                Effect::Join(..) | Effect::Sync(..) => self.carry_out(vec![e], ctx),
                _ => {}
            }
        }
        ctx.stop();
    }
}

/// A partition of `__consumer_offsets` this broker leads.
enum Slot {
    /// Being read; requests wait.
    Loading { epoch: i32 },
    /// Its groups, each with its actor.
    Ready { epoch: i32, groups: HashMap<String, Addr<GroupCoordinator>> },
}

/// Knows which groups this broker coordinates and hands requests to their actors.
pub struct GroupManager {
    config: Arc<BrokerConfig>,
    routing: SharedRouting,
    /// For asking partition leaders their high watermarks (the lag).
    net: Arc<sluice_net::Client<BrokerProtocol>>,
    /// The lag series set so far ([`crate::lag`]).
    lag_series: std::collections::BTreeSet<crate::lag::LagKey>,
    /// A lag measurement is running.
    measuring: bool,
    rules: GroupRules,
    slots: HashMap<i32, Slot>,
    /// The topics of the last cluster update seen (`None` before the first).
    topics: Option<std::collections::BTreeSet<String>>,
}

impl GroupManager {
    /// A manager following the leaderships in `routing`.
    pub fn new(
        config: Arc<BrokerConfig>,
        routing: SharedRouting,
        net: Arc<sluice_net::Client<BrokerProtocol>>,
    ) -> Self {
        let rules = GroupRules {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay.as_millis() as u64,
            offsets_retention_ms: config.offsets_retention.as_millis() as u64,
            min_session_timeout_ms: i32::try_from(config.group_min_session_timeout.as_millis())
                .unwrap_or(i32::MAX),
            max_session_timeout_ms: i32::try_from(config.group_max_session_timeout.as_millis())
                .unwrap_or(i32::MAX),
            ..GroupRules::default()
        };
        GroupManager {
            config,
            routing,
            net,
            lag_series: Default::default(),
            measuring: false,
            rules,
            slots: HashMap::new(),
            topics: None,
        }
    }

    /// The partitions of `__consumer_offsets` led here now, with their leader epochs.
    fn led(&self) -> BTreeMap<i32, (i32, Hosted)> {
        let routing = current(&self.routing);
        routing
            .partitions
            .iter()
            .filter(|(tp, _)| tp.topic == OFFSETS_TOPIC)
            .filter_map(|(tp, h)| h.offsets.borrow().leading.map(|epoch| (tp.partition, (epoch, h.clone()))))
            .collect()
    }

    /// Starts loading newly led partitions; unloads those no longer led.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let groups: usize = self
            .slots
            .values()
            .map(|s| match s {
                Slot::Ready { groups, .. } => groups.len(),
                Slot::Loading { .. } => 0,
            })
            .sum();
        metrics::gauge!("sluice_group_count").set(groups as f64);
        self.drop_deleted_topics();
        let led = self.led();
        let lost: Vec<i32> = self
            .slots
            .iter()
            .filter(|(p, slot)| {
                let epoch = match slot {
                    Slot::Loading { epoch } | Slot::Ready { epoch, .. } => *epoch,
                };
                led.get(p).map(|(e, _)| *e) != Some(epoch)
            })
            .map(|(p, _)| *p)
            .collect();
        for p in lost {
            if let Some(Slot::Ready { groups, .. }) = self.slots.remove(&p) {
                info!(
                    partition = p,
                    groups = groups.len(),
                    "no longer coordinating this offsets partition's groups"
                );
                for addr in groups.values() {
                    addr.do_send(Unload);
                }
            }
        }
        for (p, (epoch, hosted)) in led {
            if self.slots.contains_key(&p) {
                continue;
            }
            self.slots.insert(p, Slot::Loading { epoch });
            let me = ctx.address();
            actix::spawn(async move {
                let started = std::time::Instant::now();
                let loaded = load(hosted, p).await;
                me.do_send(Loaded { partition: p, epoch, loaded, took: started.elapsed() });
            });
        }
    }

    /// Tells every group of topics that left the cluster picture since the last look.
    fn drop_deleted_topics(&mut self) {
        let routing = current(&self.routing);
        let Some(update) = &routing.update else { return };
        let now: std::collections::BTreeSet<String> = update.topics.keys().cloned().collect();
        let deleted: Vec<String> = match &self.topics {
            Some(before) => before.difference(&now).cloned().collect(),
            None => Vec::new(),
        };
        self.topics = Some(now);
        if deleted.is_empty() {
            return;
        }
        info!(topics = ?deleted, "dropping the deleted topics' committed offsets");
        let deleted = Arc::new(deleted);
        for slot in self.slots.values() {
            if let Slot::Ready { groups, .. } = slot {
                for g in groups.values() {
                    g.do_send(DropTopics(deleted.clone()));
                }
            }
        }
    }

    /// Starts measuring the lag of the groups coordinated here, unless a measurement runs.
    fn measure_lag(&mut self, ctx: &mut Context<Self>) {
        if self.measuring {
            return;
        }
        self.measuring = true;
        let groups: Vec<(String, Addr<GroupCoordinator>)> = self
            .slots
            .values()
            .flat_map(|s| match s {
                Slot::Ready { groups, .. } => groups.iter().map(|(g, a)| (g.clone(), a.clone())).collect(),
                Slot::Loading { .. } => Vec::new(),
            })
            .collect();
        let measured = crate::lag::measure(groups, current(&self.routing), self.net.clone());
        ctx.spawn(actix::fut::wrap_future::<_, Self>(measured).map(|lags, act, _| {
            act.measuring = false;
            act.lag_series = crate::lag::publish(&act.lag_series, &lags);
        }));
    }

    fn start_group(&self, group: Group, partition: i32, me: Addr<GroupManager>) -> Addr<GroupCoordinator> {
        let writer = OffsetsWriter { routing: self.routing.clone(), config: self.config.clone(), partition };
        GroupCoordinator {
            group,
            writer,
            manager: me,
            waiting: HashMap::new(),
            next_waiter: 0,
            ticks: 0,
            broker: self.config.broker_id,
        }
        .start()
    }
}

impl std::fmt::Debug for GroupManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupManager").field("partitions", &self.slots.len()).finish_non_exhaustive()
    }
}

impl Actor for GroupManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Leadership changes reach the routing table; follow it closely (a new coordinator
        // is what a group waits for after a broker dies).
        ctx.run_interval(Duration::from_millis(200), |act, ctx| act.reconcile(ctx));
        ctx.run_interval(crate::lag::REFRESH, |act, ctx| act.measure_lag(ctx));
    }
}

/// Reads a partition of `__consumer_offsets` from its start to the log end it has when the
/// read starts (waiting, bounded, for the high watermark to reach it), folding the records
/// into groups.
async fn load(hosted: Hosted, partition: i32) -> Result<BTreeMap<String, group_log::Loaded>, BrokerError> {
    let mut offsets = hosted.offsets.clone();
    let end = offsets.borrow().log_end_offset;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while offsets.borrow().high_watermark < end {
        tokio::select! {
            changed = offsets.changed() => if changed.is_err() {
                return Err(BrokerError::CoordinatorNotAvailable { group: String::new(), why: "the offsets partition stopped".into() });
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Err(BrokerError::CoordinatorNotAvailable { group: String::new(), why: format!("__consumer_offsets-{partition}'s high watermark did not reach {end}") });
            }
        }
    }
    let mut at = offsets.borrow().log_start_offset;
    let mut loader = Loader::default();
    while at < end {
        let read = hosted.addr.send(Read { offset: at, max_bytes: 1 << 20, strict: false }).await.map_err(
            |_| BrokerError::CoordinatorNotAvailable {
                group: String::new(),
                why: "the offsets partition stopped".into(),
            },
        )??;
        let bytes = read.0;
        if bytes.is_empty() {
            break;
        }
        for view in sluice_log::batch::batches(&bytes) {
            let view = view.map_err(|e| BrokerError::CorruptMessage { reason: e.to_string() })?;
            let base = view.header.base_offset;
            for r in
                view.records(64 << 20).map_err(|e| BrokerError::CorruptMessage { reason: e.to_string() })?
            {
                let offset = base + i64::from(r.offset_delta);
                if offset < at || offset >= end {
                    continue;
                }
                let Some(key) = r.key.as_deref() else { continue };
                match group_log::decode(key, r.value.as_deref()) {
                    Ok(entry) => loader.apply(entry),
                    Err(e) => warn!(partition, offset, error = %e, "skipping a record of __consumer_offsets"),
                }
            }
            at = at.max(view.last_offset() + 1);
        }
    }
    Ok(loader.finish())
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Loaded {
    partition: i32,
    epoch: i32,
    loaded: Result<BTreeMap<String, group_log::Loaded>, BrokerError>,
    took: Duration,
}

impl Handler<Loaded> for GroupManager {
    type Result = ();

    fn handle(&mut self, msg: Loaded, ctx: &mut Context<Self>) {
        let _span = sluice_actors::handling!("GroupManager", "Loaded");
        if !matches!(self.slots.get(&msg.partition), Some(Slot::Loading { epoch }) if *epoch == msg.epoch) {
            return;
        }
        match msg.loaded {
            Ok(loaded) => {
                let now = now();
                let known = current(&self.routing).update.as_ref().map(|u| u.topics.clone());
                let n = loaded.len();
                let groups = loaded
                    .into_iter()
                    .map(|(id, l)| {
                        for ((topic, partition), o) in &l.offsets {
                            committed_gauge(&id, topic, *partition, o.offset);
                        }
                        // Offsets of topics deleted before this load go too.
                        let deleted: Vec<String> = match &known {
                            Some(known) => l
                                .offsets
                                .keys()
                                .map(|(t, _)| t.clone())
                                .filter(|t| !known.contains_key(t))
                                .collect(),
                            None => Vec::new(),
                        };
                        let group = Group::restore(id.clone(), self.rules, now, l.group, l.offsets);
                        let addr = self.start_group(group, msg.partition, ctx.address());
                        if !deleted.is_empty() {
                            addr.do_send(DropTopics(Arc::new(deleted)));
                        }
                        (id, addr)
                    })
                    .collect();
                info!(partition = msg.partition, groups = n, took = ?msg.took, "coordinating the groups of __consumer_offsets-{}", msg.partition);
                self.slots.insert(msg.partition, Slot::Ready { epoch: msg.epoch, groups });
            }
            Err(e) => {
                warn!(partition = msg.partition, error = %e, "could not load the groups; trying again");
                self.slots.remove(&msg.partition);
            }
        }
    }
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Stopped {
    group: String,
}

impl Handler<Stopped> for GroupManager {
    type Result = ();

    fn handle(&mut self, msg: Stopped, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("GroupManager", "Stopped");
        let p = group_log::partition_for(&msg.group, self.config.offsets_topic_num_partitions);
        if let Some(Slot::Ready { groups, .. }) = self.slots.get_mut(&p) {
            groups.remove(&msg.group);
            debug!(group = %msg.group, "group removed");
        }
    }
}

/// The actor of `group`, started if `create` and it does not exist; or why there is none
/// here.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Addr<GroupCoordinator>>, BrokerError>")]
pub struct Route {
    /// The group id.
    pub group: String,
    /// Start an empty group if there is none (joins and commits).
    pub create: bool,
}

impl Handler<Route> for GroupManager {
    type Result = Result<Option<Addr<GroupCoordinator>>, BrokerError>;

    fn handle(&mut self, msg: Route, ctx: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupManager", "Route");
        if msg.group.is_empty() {
            return Err(BrokerError::InvalidGroupId {
                group: msg.group,
                why: "a group id must not be empty".into(),
            });
        }
        let p = group_log::partition_for(&msg.group, self.config.offsets_topic_num_partitions);
        if !self.slots.contains_key(&p) {
            // Perhaps just elected: look now rather than at the next timer.
            self.reconcile(ctx);
        }
        let me = ctx.address();
        let (rules, broker) = (self.rules, self.config.broker_id);
        match self.slots.get(&p) {
            None => Err(BrokerError::NotCoordinator { group: msg.group, broker }),
            Some(Slot::Loading { .. }) => Err(BrokerError::CoordinatorLoadInProgress { group: msg.group }),
            Some(Slot::Ready { groups, .. }) => {
                if let Some(addr) = groups.get(&msg.group).filter(|a| a.connected()) {
                    return Ok(Some(addr.clone()));
                }
                if !msg.create {
                    return Ok(None);
                }
                let addr = self.start_group(Group::new(msg.group.clone(), rules, now()), p, me);
                if let Some(Slot::Ready { groups, .. }) = self.slots.get_mut(&p) {
                    groups.insert(msg.group, addr.clone());
                }
                Ok(Some(addr))
            }
        }
    }
}

/// Every group this broker coordinates.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Addr<GroupCoordinator>>")]
pub struct AllGroups;

impl Handler<AllGroups> for GroupManager {
    type Result = MessageResult<AllGroups>;

    fn handle(&mut self, _: AllGroups, _: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("GroupManager", "AllGroups");
        MessageResult(
            self.slots
                .values()
                .filter_map(|s| match s {
                    Slot::Ready { groups, .. } => Some(groups.values().cloned()),
                    Slot::Loading { .. } => None,
                })
                .flatten()
                .collect(),
        )
    }
}
