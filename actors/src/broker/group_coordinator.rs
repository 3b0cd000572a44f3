//! The [`GroupCoordinator`] actor: one consumer group, a shell around
//! [`sluice_broker_core::group::Group`]. The [`GroupManager`](super::group_manager) starts
//! one for every group of a `__consumer_offsets` partition this broker leads.
//!
//! A coordinator writes to its partition like an `acks=all` producer: offset commits are
//! answered once replicated; group metadata (after each completed rebalance, and when
//! the group empties) is written in the background, so a new coordinator finds the members
//! and their assignments and the group carries on without a rebalance.
//!
//! Timers: each coordinator ticks every 100 ms (join phases, the initial rebalance delay,
//! session expiry) and checks its offsets' retention every second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;
use sluice_broker_config::BrokerConfig;
use sluice_broker_core::group::{
    CommitOffset, CommittedOffset, Effect, Group, GroupDescription, GroupOverview, Join, JoinResult, Waiter,
};
use sluice_broker_core::group_log::{self};
use sluice_broker_core::BrokerError;
use sluice_log::{BatchHeader, Compression, Record, RecordBatch, TopicPartition};
use sluice_proto::broker::OFFSETS_TOPIC;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::broker::partition::Append;
use crate::broker::replica_manager::{current, Hosted, SharedRouting};
use crate::clock::now_ms;

/// How long a coordinator's write may wait for the in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn now() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

/// Writes records to one partition of `__consumer_offsets` as an `acks=all` producer would.
#[derive(Clone)]
pub(crate) struct OffsetsWriter {
    pub(crate) routing: SharedRouting,
    pub(crate) config: Arc<BrokerConfig>,
    pub(crate) partition: i32,
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
        let set = routing.update.as_ref().and_then(|u| u.topic_config(OFFSETS_TOPIC, "min.insync.replicas"));
        let min_insync = self.config.min_insync_replicas_of(set).max(1) as usize;
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
            crate::broker::partition::wait_replicated(
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

/// A coordinator stopped because its group is gone (deleted, or empty with nothing left to
/// keep): its manager forgets it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Stopped {
    pub(crate) group: String,
}

/// One consumer group's coordinator.
pub struct GroupCoordinator {
    group: Group,
    writer: OffsetsWriter,
    /// Told when this coordinator stops (the group manager).
    manager: Recipient<Stopped>,
    waiting: HashMap<Waiter, Reply>,
    next_waiter: Waiter,
    ticks: u64,
    broker: i32,
}

impl GroupCoordinator {
    /// The coordinator of `group`, writing to `writer`'s partition, telling `manager` when it
    /// stops.
    pub(crate) fn new(group: Group, writer: OffsetsWriter, manager: Recipient<Stopped>, broker: i32) -> Self {
        GroupCoordinator { group, writer, manager, waiting: HashMap::new(), next_waiter: 0, ticks: 0, broker }
    }
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
        let _span = crate::handling!("GroupCoordinator", "JoinMsg");
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
        let _span = crate::handling!("GroupCoordinator", "SyncMsg");
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
        let _span = crate::handling!("GroupCoordinator", "HeartbeatMsg");
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
        let _span = crate::handling!("GroupCoordinator", "LeaveMsg");
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
        let _span = crate::handling!("GroupCoordinator", "CommitMsg");
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
/// `sluice_group_lag`, [`crate::broker::lag`]).
pub(crate) fn committed_gauge(group: &str, topic: &str, partition: i32, offset: i64) {
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
        let _span = crate::handling!("GroupCoordinator", "FetchOffsetsMsg");
        MessageResult(self.group.fetch_offsets(msg.0.as_deref()))
    }
}

/// Deletes committed offsets (Kafka's OffsetDelete): each partition's outcome, in order.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Result<(), BrokerError>>")]
pub struct DeleteOffsetsMsg(pub Vec<(String, i32)>);

impl Handler<DeleteOffsetsMsg> for GroupCoordinator {
    type Result = MessageResult<DeleteOffsetsMsg>;

    fn handle(&mut self, msg: DeleteOffsetsMsg, ctx: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("GroupCoordinator", "DeleteOffsetsMsg");
        let (outcomes, effects) = self.group.delete_offsets(now(), &msg.0);
        self.carry_out(effects, ctx);
        MessageResult(outcomes)
    }
}

/// The group described (and its overview).
#[derive(Debug, Message)]
#[rtype(result = "(GroupOverview, GroupDescription)")]
pub struct DescribeMsg;

impl Handler<DescribeMsg> for GroupCoordinator {
    type Result = MessageResult<DescribeMsg>;

    fn handle(&mut self, _: DescribeMsg, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("GroupCoordinator", "DescribeMsg");
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
        let _span = crate::handling!("GroupCoordinator", "DeleteMsg");
        let effects = self.group.delete(now())?;
        self.carry_out(effects, ctx);
        Ok(())
    }
}

/// Topics were deleted: their offsets go.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct DropTopics(pub(crate) Arc<Vec<String>>);

impl Handler<DropTopics> for GroupCoordinator {
    type Result = ();

    fn handle(&mut self, msg: DropTopics, ctx: &mut Context<Self>) {
        let _span = crate::handling!("GroupCoordinator", "DropTopics");
        let effects = self.group.drop_topics(now(), &msg.0);
        self.carry_out(effects, ctx);
    }
}

/// This broker no longer coordinates the group.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Unload;

impl Handler<Unload> for GroupCoordinator {
    type Result = ();

    fn handle(&mut self, _: Unload, ctx: &mut Context<Self>) {
        let _span = crate::handling!("GroupCoordinator", "Unload");
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
