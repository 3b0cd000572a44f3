//! `Partition`: the actor that owns one partition's log on this broker, as its leader or as
//! a follower.
//!
//! **As leader** it takes producers' appends (in mailbox order — the order the service
//! handed them over, which is the order a producer sent them on its ordered channel),
//! consumers' reads (only below the high watermark) and followers' fetches. Each follower
//! fetch reports how far that follower has got; the rules in
//! [`sluice_broker_core::replica::ReplicaSet`] turn those reports into the high watermark
//! and into ISR changes, which this actor writes to the keeper itself
//! ([`crate::broker::isr::write_isr`], conditional on the state's version). A timer every half
//! `replica.lag.time.max.ms` evicts followers that have not caught up for that long.
//!
//! **As follower** it takes what its [`crate::broker::fetcher::FollowerFetcher`] copies from the
//! leader (offsets as the leader gave them), keeps the high watermark the leader reports,
//! and cuts a divergent tail on a leader change ([`TruncateForLeader`], by leader epoch).
//! It serves no clients.
//!
//! The offsets (and whether it leads, and the ISR's size) are published on a `watch`
//! channel: long-poll fetches and `acks=all` produces wait on it without going through the
//! mailbox.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use sluice_broker_core::metadata::PartitionState;
use sluice_broker_core::order::OrderGuard;
use sluice_broker_core::partition::{self as partition_rules, ConsumerRead, ListOffsetsLookup, LogRange};
use sluice_broker_core::replica::{self, IsrChange, IsrConflict, ReplicaSet};
use sluice_broker_core::roles::{self, Doing, Role, Step};
use sluice_broker_core::BrokerError;
use sluice_log::{Log, LogError, TickReport, TopicPartition};
use sluice_net::TraceContext;
use sluice_proto::broker::ProduceResponse;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::isr::{write_isr, IsrWriteError};
use crate::broker::SharedKeeper;
use crate::clock::now_ms;

/// Where a partition's log stands, for the checkpoint files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// Everything below it is flushed (`recovery-point-offset-checkpoint`).
    pub recovery_point: i64,
    /// Its high watermark (`replication-offset-checkpoint`), so a restarted broker does not
    /// start from 0 — which would hide committed records from consumers until the
    /// followers had fetched again.
    pub high_watermark: i64,
    /// Its log start (`log-start-offset-checkpoint`), which DeleteRecords may have moved
    /// inside a segment.
    pub log_start_offset: i64,
}

/// Where a partition's offsets stand; published after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offsets {
    /// Consumers read below it.
    pub high_watermark: i64,
    /// First offset held.
    pub log_start_offset: i64,
    /// Next offset to be written.
    pub log_end_offset: i64,
    /// The leader epoch this broker leads at, or `None` while following (or stopped).
    pub leading: Option<i32>,
    /// The leader epoch this broker's unbroken run as leader began at, or `None` while
    /// following (or stopped). The controller bumps the epoch without moving the leader when
    /// it drops a dead follower from the ISR; the term stays, and `acks=all` produces waiting
    /// across that bump still complete ([`wait_replicated`]).
    pub term: Option<i32>,
    /// The size of the committed ISR (while leading).
    pub isr: usize,
    /// Bytes in the log's segments.
    pub size_bytes: u64,
}

impl Offsets {
    /// The offsets the core's read rules take.
    pub fn range(&self) -> LogRange {
        LogRange {
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
            log_end_offset: self.log_end_offset,
        }
    }
}

/// The role-specific state.
#[derive(Debug)]
enum State {
    Leader {
        set: ReplicaSet,
        /// The leader epoch this run as leader began at (the controller may have bumped the
        /// epoch since without moving the leader: see [`Offsets::term`]).
        term: i32,
        /// The state as last written (by the controller or by this leader). An ISR write is
        /// in flight while `set` has a proposal.
        written: PartitionState,
    },
    Follower {
        leader: Option<i32>,
        epoch: i32,
        high_watermark: i64,
    },
}

/// One partition's log on this broker.
#[derive(Debug)]
pub struct Partition {
    tp: TopicPartition,
    broker_id: i32,
    /// Shared only with the log cleaner (compacted topics), which locks it to plan a pass
    /// and to swap the cleaned segments in; everyone else goes through this actor.
    log: Option<Arc<Mutex<Log>>>,
    offsets: watch::Sender<Offsets>,
    /// Channels whose produce here failed retriably and was not resent yet.
    held: OrderGuard<u64>,
    state: State,
    lag_max_ms: i64,
    keeper: SharedKeeper,
    storage: StorageFailures,
    /// Traced appends not yet on every in-sync replica (base offset, end offset, the append
    /// span's context): the follower fetches that carry them are traced under them. Empty
    /// unless traces are exported.
    traced: VecDeque<(i64, i64, TraceContext)>,
}

/// Most traced appends remembered for their follower fetches.
const TRACED_MAX: usize = 1024;

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Mailbox capacity: producers are bounded by their own in-flight limits, so the mailbox
/// itself must never refuse (actix's default of 16 would make `send` wait, which would
/// break the ordering of a producer's pipelined requests).
pub const MAILBOX: usize = 1 << 40;

/// What a partition needs besides its log and role.
#[derive(Debug, Clone)]
pub struct PartitionContext {
    /// This broker.
    pub broker_id: i32,
    /// `replica.lag.time.max.ms`.
    pub lag_max: Duration,
    /// For ISR writes.
    pub keeper: SharedKeeper,
    /// Where a log's failing files are reported.
    pub storage: StorageFailures,
}

/// Where partitions report that their log's files failed (an I/O error reading or writing
/// them: a full or failing disk). The broker takes that log directory offline, as Kafka does
/// (KIP-112): its partitions lead elsewhere and this broker keeps serving its other
/// directories; when no directory is left it stops, moving its leaderships away first. Either
/// way producers see a leader change instead of every append failing here while their records
/// expire.
#[derive(Debug, Clone)]
pub struct StorageFailures(tokio::sync::mpsc::UnboundedSender<(TopicPartition, String)>);

impl StorageFailures {
    /// A channel; the receiver hears every failure, with the partition whose files failed.
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<(TopicPartition, String)>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (StorageFailures(tx), rx)
    }

    /// Reports a failure of `tp`'s files.
    pub fn report(&self, tp: &TopicPartition, what: String) {
        let _ = self.0.send((tp.clone(), what));
    }
}

impl Partition {
    /// A partition for `log` in `role` (taken before the actor starts, so the routing table
    /// published with it is true at once), from the high watermark last checkpointed; the
    /// receiver follows its offsets.
    pub fn new(
        log: Arc<Mutex<Log>>,
        ctx: &PartitionContext,
        high_watermark: i64,
        role: Role,
    ) -> (Self, watch::Receiver<Offsets>) {
        let (tp, leo) = {
            let l = lock(&log);
            (l.topic_partition().clone(), l.log_end_offset())
        };
        let mut p = Partition {
            tp,
            broker_id: ctx.broker_id,
            log: Some(log),
            offsets: watch::channel(Offsets::default()).0,
            held: OrderGuard::default(),
            traced: VecDeque::new(),
            // Never above its own log end (a checkpoint can be ahead of a log whose unflushed
            // tail was cut on recovery); the leader's fetch answers raise it.
            state: State::Follower {
                leader: None,
                epoch: -1,
                high_watermark: high_watermark.clamp(0, leo.max(0)),
            },
            lag_max_ms: ctx.lag_max.as_millis() as i64,
            keeper: ctx.keeper.clone(),
            storage: ctx.storage.clone(),
        };
        p.assign(role);
        let offsets = p.current_offsets();
        let rx;
        (p.offsets, rx) = watch::channel(offsets);
        (p, rx)
    }

    fn high_watermark(&self) -> i64 {
        match &self.state {
            State::Leader { set, .. } => set.high_watermark(),
            State::Follower { high_watermark, .. } => *high_watermark,
        }
    }

    fn current_offsets(&self) -> Offsets {
        let Some(log) = &self.log else { return Offsets::default() };
        let log = lock(log);
        let (leading, term, isr) = match &self.state {
            State::Leader { set, term, .. } => (Some(set.leader_epoch()), Some(*term), set.isr().len()),
            State::Follower { .. } => (None, None, 0),
        };
        Offsets {
            high_watermark: self.high_watermark().min(log.log_end_offset()),
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            leading,
            term,
            isr,
            size_bytes: log.size_bytes(),
        }
    }

    fn publish(&self) {
        self.offsets.send_replace(self.current_offsets());
    }

    fn storage_error(&self, e: &LogError) -> BrokerError {
        if matches!(e, LogError::Io { .. }) {
            self.storage.report(&self.tp, format!("{}-{}: {e}", self.tp.topic, self.tp.partition));
        }
        BrokerError::StorageError {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
            reason: e.to_string(),
        }
    }

    fn not_leader(&self) -> BrokerError {
        let leader = match &self.state {
            State::Follower { leader, .. } => *leader,
            State::Leader { .. } => None,
        };
        BrokerError::NotLeaderForPartition {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
            broker: self.broker_id,
            leader,
        }
    }

    fn log(&self) -> Result<MutexGuard<'_, Log>, BrokerError> {
        self.log.as_deref().map(lock).ok_or_else(|| self.not_leader())
    }

    /// Fails unless this broker leads the partition (and holds its log).
    fn check_leading(&self) -> Result<(), BrokerError> {
        match (&self.state, &self.log) {
            (State::Leader { .. }, Some(_)) => Ok(()),
            _ => Err(self.not_leader()),
        }
    }

    /// Checks a replica request's leader epoch against the current one.
    fn check_epoch(&self, got: i32, current: i32) -> Result<(), BrokerError> {
        let (topic, partition) = (self.tp.topic.clone(), self.tp.partition);
        match got.cmp(&current) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => {
                Err(BrokerError::FencedLeaderEpoch { topic, partition, got, current })
            }
            std::cmp::Ordering::Greater => {
                Err(BrokerError::UnknownLeaderEpoch { topic, partition, got, current })
            }
        }
    }

    /// Maps a log error on append to what the producer is told.
    fn append_error(&self, e: LogError) -> BrokerError {
        match e {
            LogError::RecordTooLarge { size, max } => BrokerError::MessageTooLarge { size, max },
            LogError::LargerThanSegment { size, segment_bytes } => {
                BrokerError::MessageTooLarge { size, max: segment_bytes }
            }
            LogError::InvalidBatch(_)
            | LogError::InconsistentBatch(_)
            | LogError::KeyRequired { .. }
            | LogError::DuplicateInMixedAppend { .. } => {
                BrokerError::CorruptMessage { reason: e.to_string() }
            }
            LogError::OutOfOrderSequence { .. } => {
                BrokerError::OutOfOrderSequence { topic: self.tp.topic.clone(), partition: self.tp.partition }
            }
            LogError::InvalidProducerEpoch { producer_id, epoch, current } => {
                BrokerError::InvalidProducerEpoch {
                    topic: self.tp.topic.clone(),
                    partition: self.tp.partition,
                    producer_id,
                    epoch,
                    current,
                }
            }
            other => {
                warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %other, "append failed");
                self.storage_error(&other)
            }
        }
    }

    /// Takes a role from the controller's update.
    fn assign(&mut self, role: Role) {
        let now = now_ms();
        match role {
            Role::Leader { replicas, state } => {
                let doing = match &self.state {
                    State::Leader { set, written, .. } => {
                        Doing::Leading { epoch: set.leader_epoch(), version: written.zk_version }
                    }
                    State::Follower { leader, epoch, .. } => {
                        Doing::Following { leader: *leader, epoch: *epoch }
                    }
                };
                match roles::step(
                    self.broker_id,
                    doing,
                    Some(state.leader),
                    state.leader_epoch,
                    state.zk_version,
                ) {
                    Step::AdoptIsr => {
                        if let State::Leader { set, written, .. } = &mut self.state {
                            if set.replicas() != replicas.as_slice() {
                                set.set_replicas(&replicas, now);
                            }
                            set.set_isr(state.isr.clone());
                            *written = state;
                        }
                        self.publish();
                        return;
                    }
                    Step::KeepLeading => {
                        // A reassignment may have changed the replicas within the epoch.
                        if let State::Leader { set, .. } = &mut self.state {
                            if set.replicas() != replicas.as_slice() {
                                info!(topic = %self.tp.topic, partition = self.tp.partition,
                                    from = ?set.replicas(), to = ?replicas, "replicas reassigned");
                                set.set_replicas(&replicas, now);
                            }
                        }
                        self.publish();
                        return;
                    }
                    Step::Lead | Step::Follow | Step::KeepFollowing => {}
                }
                let hw = self.high_watermark();
                let leo = {
                    let Ok(mut log) = self.log() else { return };
                    if let Err(e) = log.assign_leader_epoch(state.leader_epoch) {
                        warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %e,
                            "could not record the new leader epoch");
                    }
                    log.log_end_offset()
                };
                let set = ReplicaSet::new(
                    self.broker_id,
                    state.leader_epoch,
                    &replicas,
                    &state.isr,
                    leo,
                    hw.min(leo),
                    now,
                );
                info!(topic = %self.tp.topic, partition = self.tp.partition, epoch = state.leader_epoch,
                    isr = ?state.isr, log_end_offset = leo, high_watermark = set.high_watermark(), "leading");
                // Leading already (the controller bumped the epoch and kept this leader): the
                // same run as leader goes on, and so does its term.
                let term = match &self.state {
                    State::Leader { term, .. } => *term,
                    State::Follower { .. } => state.leader_epoch,
                };
                self.state = State::Leader { set, term, written: state };
            }
            Role::Follower { leader, leader_epoch } => {
                let hw = self.high_watermark();
                if !matches!(self.state, State::Follower { .. }) {
                    info!(topic = %self.tp.topic, partition = self.tp.partition, epoch = leader_epoch,
                        leader = ?leader, "following");
                }
                // Following a new leader or epoch, or the same again: the fetcher is told by the
                // replica manager; here only the state changes.
                self.state = State::Follower { leader, epoch: leader_epoch, high_watermark: hw };
            }
        }
        self.publish();
    }

    /// Proposes and writes an ISR change if the rules ask for one and none is in flight.
    fn maybe_change_isr(&mut self, ctx: &mut Context<Self>) {
        let State::Leader { set, written, .. } = &mut self.state else { return };
        // No proposal while one is in flight (the rules say so).
        let Some(change) = set.isr_change(now_ms(), self.lag_max_ms) else { return };
        let (isr, what) = match change {
            IsrChange::Shrink(isr) => (isr, "shrinking"),
            IsrChange::Expand(isr) => (isr, "expanding"),
        };
        info!(topic = %self.tp.topic, partition = self.tp.partition, from = ?set.isr(), to = ?isr, "{what} the ISR");
        set.propose(isr.clone());
        let state = PartitionState { isr, ..written.clone() };
        let expected = written.zk_version;
        self.write_isr(ctx, state, expected);
        self.publish();
    }

    /// Writes a proposed ISR (conditional on `expected`) and applies the outcome. A conflict
    /// is a definite "no" — unless the keeper already holds exactly the proposal (an earlier
    /// attempt whose answer was lost committed it). A keeper failure leaves the outcome
    /// unknown: the same write is retried, keeping the proposal (and so the maximal ISR)
    /// until it is settled.
    fn write_isr(&mut self, ctx: &mut Context<Self>, state: PartitionState, expected: i32) {
        let (keeper, tp) = (self.keeper.clone(), self.tp.clone());
        let epoch = state.leader_epoch;
        let write = async move {
            let r = write_isr(&keeper, &tp.topic, tp.partition, &state, expected).await;
            (state, r)
        };
        ctx.spawn(write.into_actor(self).map(move |(state, result), this, ctx| {
            let tp = this.tp.clone();
            let me = this.broker_id;
            let State::Leader { set, written, .. } = &mut this.state else { return };
            if set.leader_epoch() != epoch || set.pending() != Some(state.isr.as_slice()) {
                return; // re-assigned or overruled meanwhile; the controller's state rules
            }
            match result {
                Ok(version) => {
                    set.committed(state.isr.clone());
                    // Kafka's IsrExpandsPerSec / IsrShrinksPerSec.
                    let change = if state.isr.len() > written.isr.len() { "expand" } else { "shrink" };
                    *written = PartitionState { zk_version: version, ..state };
                    metrics::counter!("sluice_broker_isr_changes_total", "change" => change).increment(1);
                }
                Err(IsrWriteError::Conflict(current)) => {
                    let found = current.as_ref().map(|c| (c.leader, c.leader_epoch, c.isr.as_slice()));
                    match (replica::isr_conflict(me, epoch, &state.isr, found), current) {
                        (IsrConflict::AlreadyWritten, Some(current)) => {
                            set.committed(current.isr.clone());
                            *written = current;
                        }
                        (IsrConflict::Adopt, Some(current)) => {
                            set.rejected();
                            set.set_isr(current.isr.clone());
                            *written = current;
                        }
                        (_, other) => {
                            warn!(topic = %tp.topic, partition = tp.partition, state = ?other,
                                "ISR change refused: the partition state moved on");
                            set.rejected();
                        }
                    }
                }
                Err(e @ IsrWriteError::Keeper(_)) => {
                    warn!(topic = %tp.topic, partition = tp.partition, error = %e, "ISR change not settled; retrying");
                    ctx.run_later(Duration::from_millis(500), move |this, ctx| {
                        let still = matches!(&this.state, State::Leader { set, .. }
                            if set.leader_epoch() == epoch && set.pending() == Some(state.isr.as_slice()));
                        if still {
                            this.write_isr(ctx, state, expected);
                        }
                    });
                    return;
                }
            }
            this.publish();
            // A change that became due meanwhile is proposed at once.
            this.maybe_change_isr(ctx);
        }));
    }
}

/// Keeps the batches (whole, back to back) that fit within `max_bytes` (when `strict`) and
/// end below `below` (the high watermark, for consumers).
fn whole_batches(records: Bytes, max_bytes: usize, strict: bool, below: i64) -> Bytes {
    let mut end = 0;
    while end < records.len() {
        let Ok(view) = sluice_log::BatchView::parse(&records[end..]) else { break };
        if (strict && end + view.len() > max_bytes) || view.last_offset() >= below {
            break;
        }
        end += view.len();
    }
    records.slice(..end)
}

impl Actor for Partition {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        // Kafka checks for laggards every half lag window.
        let every = Duration::from_millis((self.lag_max_ms / 2).max(10) as u64);
        ctx.run_interval(every, |this, ctx| this.maybe_change_isr(ctx));
        self.maybe_change_isr(ctx);
    }
}

/// Take the role the controller's update gives this broker.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Assign(pub Role);

impl Handler<Assign> for Partition {
    type Result = ();

    fn handle(&mut self, msg: Assign, ctx: &mut Context<Self>) {
        let _span = crate::handling!("Partition", "Assign");
        self.assign(msg.0);
        self.maybe_change_isr(ctx);
    }
}

/// What an append did: the producer's answer and the offset after the last record (which an
/// `acks=all` produce waits for the high watermark to reach).
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    /// The producer's answer.
    pub response: ProduceResponse,
    /// The last offset appended, plus one.
    pub end_offset: i64,
}

/// Append a producer's batches.
#[derive(Debug, Message)]
#[rtype(result = "Result<Appended, BrokerError>")]
pub struct Append {
    /// The batches, back to back (their base offsets are rewritten in place).
    pub records: BytesMut,
    /// The ordered channel it came on and whether it is a resend (see
    /// `sluice_broker_core::order`); `None` outside a channel and for `acks=0`.
    pub order: Option<(u64, bool)>,
    /// For `acks=all`: refuse (append nothing) when the ISR is smaller than this.
    pub min_insync: Option<usize>,
    /// The request's span (`Span::none()` when traces are off): the append's is its child.
    pub span: tracing::Span,
}

impl Handler<Append> for Partition {
    type Result = Result<Appended, BrokerError>;

    fn handle(&mut self, msg: Append, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "Append");
        let span = if msg.span.is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(parent: &msg.span, "append", topic = %self.tp.topic, partition = self.tp.partition)
        };
        span.in_scope(|| self.append(msg))
    }
}

impl Partition {
    fn append(&mut self, mut msg: Append) -> Result<Appended, BrokerError> {
        if let Some((channel, retry)) = msg.order {
            if !self.held.admit(&channel, retry) {
                return Err(BrokerError::OutOfOrderSequence {
                    topic: self.tp.topic.clone(),
                    partition: self.tp.partition,
                });
            }
        }
        let refuse = |this: &mut Self, e: BrokerError| {
            if let (Some((channel, _)), true) = (msg.order, e.is_retriable()) {
                this.held.failed(channel);
            }
            Err(e)
        };
        let isr = match &self.state {
            State::Leader { set, .. } => set.isr().len(),
            State::Follower { .. } => return refuse(self, self.not_leader()),
        };
        if let Err(e) =
            partition_rules::admit_produce((&self.tp.topic, self.tp.partition), isr, msg.min_insync)
        {
            return refuse(self, e);
        }
        let now = now_ms();
        let (result, leo, log_start) = {
            let mut log = self.log()?;
            let result = log.append(&mut msg.records, now);
            (result, log.log_end_offset(), log.log_start_offset())
        };
        let info = match result {
            Ok(info) => info,
            Err(e) => {
                let e = self.append_error(e);
                return refuse(self, e);
            }
        };
        if info.duplicate {
            // A resend of a batch already written (an idempotent producer whose answer was
            // lost): the original's offsets; `acks=all` still waits for them to commit.
            metrics::counter!("sluice_broker_duplicate_batches_total", "topic" => self.tp.topic.clone())
                .increment(1);
            return Ok(Appended {
                response: ProduceResponse {
                    base_offset: info.base_offset,
                    log_append_time: -1,
                    log_start_offset: log_start,
                },
                end_offset: info.last_offset + 1,
            });
        }
        if let State::Leader { set, .. } = &mut self.state {
            set.on_append(leo);
        }
        self.publish();
        metrics::counter!("sluice_broker_messages_in_total", "topic" => self.tp.topic.clone())
            .increment(info.records);
        metrics::counter!("sluice_broker_bytes_in_total", "topic" => self.tp.topic.clone())
            .increment(info.bytes);
        tracing::debug!(base_offset = info.base_offset, records = info.records, "appended");
        if let Some(ctx) = sluice_net::trace::current() {
            if self.traced.len() >= TRACED_MAX {
                self.traced.pop_front();
            }
            self.traced.push_back((info.base_offset, info.last_offset + 1, ctx));
        }
        Ok(Appended {
            response: ProduceResponse {
                base_offset: info.base_offset,
                log_append_time: -1,
                log_start_offset: log_start,
            },
            end_offset: info.last_offset + 1,
        })
    }
}

/// A consumer's read: whole batches from `offset`, below the high watermark.
#[derive(Debug, Message)]
#[rtype(result = "Result<(Bytes, Offsets), BrokerError>")]
pub struct Read {
    /// The first offset wanted.
    pub offset: i64,
    /// Most bytes. Unless `strict`, at least one batch is returned even if larger (so a
    /// consumer always makes progress); with `strict`, only whole batches that fit.
    pub max_bytes: usize,
    /// Return only whole batches within `max_bytes` (a later partition of a fetch whose
    /// answer already holds data: the reply must stay under its limit).
    pub strict: bool,
}

fn read_error(
    tp: &TopicPartition,
    e: LogError,
    storage: impl FnOnce(&LogError) -> BrokerError,
) -> BrokerError {
    match e {
        LogError::OffsetOutOfRange { offset, log_start_offset, log_end_offset } => {
            BrokerError::OffsetOutOfRange {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                log_start_offset,
                log_end_offset,
            }
        }
        e => storage(&e),
    }
}

impl Handler<Read> for Partition {
    type Result = Result<(Bytes, Offsets), BrokerError>;

    fn handle(&mut self, msg: Read, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "Read");
        self.check_leading()?;
        let offsets = self.current_offsets();
        if partition_rules::consumer_read(msg.offset, offsets.range()) == ConsumerRead::Nothing {
            return Ok((Bytes::new(), offsets));
        }
        let read = self.log()?.read(msg.offset, msg.max_bytes);
        match read {
            Ok(r) => {
                let records = whole_batches(r.records, msg.max_bytes, msg.strict, offsets.high_watermark);
                metrics::counter!("sluice_broker_bytes_out_total", "topic" => self.tp.topic.clone())
                    .increment(records.len() as u64);
                Ok((records, offsets))
            }
            Err(e) => Err(read_error(&self.tp, e, |e| self.storage_error(e))),
        }
    }
}

/// A follower's fetch (leader side): `offset` is the follower's log end offset. Answers the
/// records, the offsets, and the `follower_fetch` span contexts of the traced appends the
/// records carry.
#[derive(Debug, Message)]
#[rtype(result = "Result<(Bytes, Offsets, Vec<TraceContext>), BrokerError>")]
pub struct FollowerFetch {
    /// The follower.
    pub replica: i32,
    /// Its log end offset.
    pub offset: i64,
    /// The leader epoch it fetches at.
    pub leader_epoch: i32,
    /// Most bytes (whole batches; at least one unless `strict`).
    pub max_bytes: usize,
    /// Only whole batches within `max_bytes`.
    pub strict: bool,
}

impl Handler<FollowerFetch> for Partition {
    type Result = Result<(Bytes, Offsets, Vec<TraceContext>), BrokerError>;

    fn handle(&mut self, msg: FollowerFetch, ctx: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "FollowerFetch");
        let State::Leader { set, .. } = &self.state else { return Err(self.not_leader()) };
        self.check_epoch(msg.leader_epoch, set.leader_epoch())?;
        let (leo, log_start) = {
            let log = self.log()?;
            (log.log_end_offset(), log.log_start_offset())
        };
        let at_end = partition_rules::follower_fetch_range(
            (&self.tp.topic, self.tp.partition),
            msg.offset,
            (log_start, leo),
        )?;
        let now = now_ms();
        if let State::Leader { set, .. } = &mut self.state {
            set.on_follower_fetch(msg.replica, msg.offset, leo, now).map_err(|e| {
                BrokerError::InvalidRequest {
                    reason: format!("{}-{}: {e}", self.tp.topic, self.tp.partition),
                }
            })?;
        }
        self.maybe_change_isr(ctx);
        self.publish();
        let offsets = self.current_offsets();
        if at_end {
            return Ok((Bytes::new(), offsets, Vec::new()));
        }
        let read = self.log()?.read(msg.offset, msg.max_bytes);
        match read {
            Ok(r) => {
                let records = whole_batches(r.records, msg.max_bytes, msg.strict, i64::MAX);
                let traces = self.trace_follower_fetch(&msg, &records, offsets.high_watermark);
                Ok((records, offsets, traces))
            }
            Err(e) => Err(read_error(&self.tp, e, |e| self.storage_error(e))),
        }
    }
}

impl Partition {
    /// Puts a follower's fetch into the trace of each traced append it carries (a
    /// `follower_fetch` span under the append's), and forgets the appends every in-sync
    /// replica has (below the high watermark). Returns those spans' contexts, for the
    /// follower's own append.
    fn trace_follower_fetch(
        &mut self,
        msg: &FollowerFetch,
        records: &Bytes,
        high_watermark: i64,
    ) -> Vec<TraceContext> {
        self.traced.retain(|(_, end, _)| *end > high_watermark);
        if self.traced.is_empty() {
            return Vec::new();
        }
        let mut carried_to = msg.offset;
        let mut at = 0;
        while at < records.len() {
            let Ok(view) = sluice_log::BatchView::parse(&records[at..]) else { break };
            carried_to = view.last_offset() + 1;
            at += view.len();
        }
        let mut carried = Vec::new();
        for (base, _, ctx) in
            self.traced.iter().filter(|(base, _, _)| (msg.offset..carried_to).contains(base))
        {
            let span = tracing::info_span!(
                parent: None,
                "follower_fetch",
                topic = %self.tp.topic,
                partition = self.tp.partition,
                follower = msg.replica,
                fetch_offset = msg.offset,
                base_offset = *base,
            );
            sluice_net::trace::set_parent(&span, ctx);
            carried.extend(sluice_net::trace::context_of(&span));
        }
        carried
    }
}

/// Kafka's OffsetsForLeaderEpoch (leader side): where `epoch` ends in this log.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<(i32, i64)>, BrokerError>")]
pub struct EpochEndOffset {
    /// The epoch the asker believes current.
    pub current_leader_epoch: i32,
    /// The epoch asked about.
    pub epoch: i32,
}

impl Handler<EpochEndOffset> for Partition {
    type Result = Result<Option<(i32, i64)>, BrokerError>;

    fn handle(&mut self, msg: EpochEndOffset, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "EpochEndOffset");
        let State::Leader { set, .. } = &self.state else { return Err(self.not_leader()) };
        self.check_epoch(msg.current_leader_epoch, set.leader_epoch())?;
        Ok(self.log()?.end_offset_for_epoch(msg.epoch))
    }
}

/// Where a follower stands: its latest leader epoch and log end offset.
#[derive(Debug, Message)]
#[rtype(result = "Result<(Option<i32>, i64), BrokerError>")]
pub struct FollowerPosition {
    /// The leader epoch the fetcher follows at.
    pub leader_epoch: i32,
}

impl Handler<FollowerPosition> for Partition {
    type Result = Result<(Option<i32>, i64), BrokerError>;

    fn handle(&mut self, msg: FollowerPosition, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "FollowerPosition");
        self.follower_epoch(msg.leader_epoch)?;
        let log = self.log()?;
        Ok((log.leader_epoch(), log.log_end_offset()))
    }
}

impl Partition {
    /// Checks that this broker follows at `epoch`.
    fn follower_epoch(&self, epoch: i32) -> Result<(), BrokerError> {
        match &self.state {
            State::Follower { epoch: current, .. } => self.check_epoch(epoch, *current),
            State::Leader { set, .. } => Err(BrokerError::FencedLeaderEpoch {
                topic: self.tp.topic.clone(),
                partition: self.tp.partition,
                got: epoch,
                current: set.leader_epoch(),
            }),
        }
    }
}

/// Cut a follower's divergent tail before fetching from a new leader, given the leader's
/// answer for the follower's latest epoch. Answers the new log end offset, and whether the
/// truncation is complete (else ask the leader again about the new latest epoch: KIP-279).
#[derive(Debug, Message)]
#[rtype(result = "Result<(i64, bool), BrokerError>")]
pub struct TruncateForLeader {
    /// The leader epoch the fetcher follows at.
    pub leader_epoch: i32,
    /// The leader's OffsetsForLeaderEpoch answer.
    pub answer: Option<(i32, i64)>,
}

impl Handler<TruncateForLeader> for Partition {
    type Result = Result<(i64, bool), BrokerError>;

    fn handle(&mut self, msg: TruncateForLeader, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "TruncateForLeader");
        self.follower_epoch(msg.leader_epoch)?;
        let hw = self.high_watermark();
        let mut log = self.log()?;
        let leo = log.log_end_offset();
        let cut =
            replica::truncation(leo, hw, log.leader_epoch(), msg.answer, |e| log.end_offset_for_epoch(e));
        let target = cut.offset;
        if target < leo {
            warn!(topic = %self.tp.topic, partition = self.tp.partition, from = leo, to = target,
                "truncating a divergent tail before following the new leader");
            if let Err(e) = log.truncate_to(target, now_ms()) {
                return Err(self.storage_error(&e));
            }
        }
        let leo = log.log_end_offset();
        drop(log);
        if let State::Follower { high_watermark, .. } = &mut self.state {
            *high_watermark = (*high_watermark).min(leo);
        }
        self.publish();
        Ok((leo, cut.complete))
    }
}

/// Restart a follower's log at the leader's log start (it fell below what the leader keeps).
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, BrokerError>")]
pub struct RestartAt {
    /// The leader epoch the fetcher follows at.
    pub leader_epoch: i32,
    /// The leader's log start offset.
    pub offset: i64,
}

impl Handler<RestartAt> for Partition {
    type Result = Result<i64, BrokerError>;

    fn handle(&mut self, msg: RestartAt, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "RestartAt");
        self.follower_epoch(msg.leader_epoch)?;
        let mut log = self.log()?;
        warn!(topic = %self.tp.topic, partition = self.tp.partition, offset = msg.offset,
            "the leader no longer holds this follower's offsets; restarting the log at its log start");
        if let Err(e) = log.truncate_fully_and_start_at(msg.offset, now_ms()) {
            return Err(self.storage_error(&e));
        }
        let leo = log.log_end_offset();
        drop(log);
        if let State::Follower { high_watermark, .. } = &mut self.state {
            *high_watermark = leo;
        }
        self.publish();
        Ok(leo)
    }
}

/// What a follower's fetcher copied from the leader.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, BrokerError>")]
pub struct ReplicaAppend {
    /// The leader epoch it was fetched at.
    pub leader_epoch: i32,
    /// The leader's batches (offsets set), possibly empty.
    pub records: Bytes,
    /// The leader's high watermark at the fetch.
    pub leader_high_watermark: i64,
    /// The leader's log start at the fetch: the follower's moves up to it (DeleteRecords).
    pub leader_log_start_offset: i64,
}

impl Handler<ReplicaAppend> for Partition {
    type Result = Result<i64, BrokerError>;

    fn handle(&mut self, msg: ReplicaAppend, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "ReplicaAppend");
        self.follower_epoch(msg.leader_epoch)?;
        let leo = {
            let mut log = self.log()?;
            if !msg.records.is_empty() {
                if let Err(e) = log.append_replicated(&msg.records, now_ms()) {
                    warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %e,
                        "could not append what the leader sent");
                    return Err(self.storage_error(&e));
                }
            }
            log.log_end_offset()
        };
        if let State::Follower { high_watermark, .. } = &mut self.state {
            *high_watermark =
                partition_rules::follower_high_watermark(*high_watermark, msg.leader_high_watermark, leo);
        }
        let start = partition_rules::follower_log_start(msg.leader_log_start_offset, self.high_watermark());
        let moved = self.log()?.advance_log_start(start);
        match moved {
            Ok(true) => {
                info!(topic = %self.tp.topic, partition = self.tp.partition, log_start_offset = start,
                "the log start followed the leader's")
            }
            Ok(false) => {}
            Err(e) => return Err(self.storage_error(&e)),
        }
        self.publish();
        Ok(leo)
    }
}

/// Kafka's DeleteRecords on the leader: moves the log start to `offset` (-1: the high
/// watermark), deleting the segments wholly below it; the followers follow on their next
/// fetch. The rule is [`partition_rules::delete_records_before`]; the answer is the new log
/// start (Kafka's low watermark, as the leader has it).
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, BrokerError>")]
pub struct DeleteRecords {
    /// Delete the records below it.
    pub offset: i64,
}

impl Handler<DeleteRecords> for Partition {
    type Result = Result<i64, BrokerError>;

    fn handle(&mut self, msg: DeleteRecords, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "DeleteRecords");
        self.check_leading()?;
        let at = self.current_offsets().range();
        let deletes = self.log()?.config().cleanup_policy.delete;
        let start = partition_rules::delete_records_before(
            (&self.tp.topic, self.tp.partition),
            msg.offset,
            at,
            deletes,
        )?;
        let moved = self.log()?.advance_log_start(start);
        match moved {
            Ok(true) => {
                info!(topic = %self.tp.topic, partition = self.tp.partition, log_start_offset = start,
                "records deleted: the log start moved")
            }
            Ok(false) => {}
            Err(e) => return Err(self.storage_error(&e)),
        }
        self.publish();
        Ok(start)
    }
}

/// Kafka's ListOffsets for one partition: `-1` latest, `-2` earliest, else by timestamp.
#[derive(Debug, Message)]
#[rtype(result = "Result<(i64, i64), BrokerError>")]
pub struct ListOffset {
    /// The timestamp (or -1 / -2).
    pub timestamp: i64,
}

impl Handler<ListOffset> for Partition {
    type Result = Result<(i64, i64), BrokerError>;

    fn handle(&mut self, msg: ListOffset, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "ListOffset");
        self.check_leading()?;
        let at = self.current_offsets().range();
        match partition_rules::list_offsets(msg.timestamp, at) {
            ListOffsetsLookup::Answer(offset) => Ok((offset, -1)),
            ListOffsetsLookup::ByTime(t) => {
                let found = self.log()?.offset_for_timestamp(t);
                match found {
                    Ok(found) => Ok(partition_rules::list_offsets_found(found, at)),
                    Err(e) => Err(self.storage_error(&e)),
                }
            }
        }
    }
}

/// The bytes of the partition's log on disk (for DescribeLogDirs); `None` when closed.
#[derive(Debug, Message)]
#[rtype(result = "Option<u64>")]
pub struct LogSize;

impl Handler<LogSize> for Partition {
    type Result = Option<u64>;

    fn handle(&mut self, _: LogSize, _: &mut Context<Self>) -> Option<u64> {
        self.log.as_deref().map(|log| lock(log).size_bytes())
    }
}

/// The topic's config changed: the log takes the new settings ([`Log::set_config`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub sluice_log::LogConfig);

impl Handler<Reconfigure> for Partition {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, _: &mut Context<Self>) {
        let _span = crate::handling!("Partition", "Reconfigure");
        let Some(log) = self.log.as_deref() else { return };
        if let Err(e) = lock(log).set_config(msg.0) {
            warn!(error = %e, "the topic's new config does not apply to this log; keeping the old one");
        }
    }
}

/// The log manager's periodic work: flush, and retention when `retention`
/// ([`Log::tick_with`]).
#[derive(Debug, Message)]
#[rtype(result = "Option<(TickReport, Marks)>")]
pub struct Tick {
    /// Apply retention this time (every `log.retention.check.interval.ms`).
    pub retention: bool,
}

impl Handler<Tick> for Partition {
    type Result = Option<(TickReport, Marks)>;

    fn handle(&mut self, msg: Tick, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Partition", "Tick");
        let now = now_ms();
        let mut log = lock(self.log.as_deref()?);
        let report = match log.tick_with(now, msg.retention) {
            Ok(r) => r,
            Err(e) => {
                warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %e, "log tick failed");
                return None;
            }
        };
        let recovery_point = log.recovery_point();
        let log_start_offset = log.log_start_offset();
        drop(log);
        let marks = Marks { recovery_point, high_watermark: self.high_watermark(), log_start_offset };
        if !report.deleted_segments.is_empty() {
            info!(
                topic = %self.tp.topic, partition = self.tp.partition,
                segments = report.deleted_segments.len(), bytes = report.deleted_bytes, "retention deleted segments"
            );
            self.publish();
        }
        Some((report, marks))
    }
}

/// Stop holding the partition: flush and close the log (and delete it when the topic is
/// deleted). The reply is where the log stands (for the checkpoint files), or `None` if
/// deleted.
#[derive(Debug, Message)]
#[rtype(result = "Option<Marks>")]
pub struct Stop {
    /// Delete the partition's directory.
    pub delete: bool,
    /// Its directory failed: close without flushing (an fsync that failed is never tried
    /// again: the kernel may have dropped the pages it could not write) and report no marks.
    pub failed: bool,
}

impl Handler<Stop> for Partition {
    type Result = Option<Marks>;

    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) -> Option<Marks> {
        let _span = crate::handling!("Partition", "Stop");
        ctx.stop();
        let high_watermark = self.high_watermark();
        let shared = self.log.take()?;
        self.offsets.send_replace(Offsets::default());
        let mut log = lock(&shared);
        let dir = log.dir().to_path_buf();
        let end = log.log_end_offset();
        let log_start_offset = log.log_start_offset();
        if msg.failed {
            info!(topic = %self.tp.topic, partition = self.tp.partition, "closed the partition on a failed directory");
            return None;
        }
        let closed = log.flush();
        drop(log);
        if let Err(e) = closed {
            warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %e, "closing the log failed");
        }
        info!(topic = %self.tp.topic, partition = self.tp.partition, delete = msg.delete, "closed the partition");
        if msg.delete {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(dir = %dir.display(), error = %e, "could not delete the partition's data");
            }
            return None;
        }
        Some(Marks { recovery_point: end, high_watermark, log_start_offset })
    }
}

/// Waits until the in-sync replicas have everything below `end_offset` (`acks=all`): the
/// high watermark reaches it. Fails if this broker stops leading, if `timeout` passes, or
/// if by then the ISR has shrunk below `min_insync` (the rule:
/// [`sluice_broker_core::partition::acks_all`]).
pub async fn wait_replicated(
    mut offsets: watch::Receiver<Offsets>,
    end_offset: i64,
    min_insync: usize,
    timeout: Duration,
    topic: &str,
    partition: i32,
    broker: i32,
) -> Result<(), BrokerError> {
    use sluice_broker_core::partition::{acks_all, AcksAll};
    let appended_at = offsets.borrow().term;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let o = *offsets.borrow_and_update();
        let now = acks_all(
            (topic, partition, broker),
            appended_at,
            o.term,
            (o.high_watermark, o.isr),
            end_offset,
            min_insync,
        );
        match now {
            AcksAll::Done => return Ok(()),
            AcksAll::Failed(e) => return Err(e),
            AcksAll::Waiting => {}
        }
        tokio::select! {
            changed = offsets.changed() => if changed.is_err() {
                // The partition's actor stopped: it leads nothing.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, base_offset: i64) -> Vec<u8> {
        use sluice_log::{BatchHeader, Compression, Record, RecordBatch};
        let record = Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: None,
            value: Some(vec![b'x'; n].into()),
            headers: vec![],
        };
        let mut header = BatchHeader::new(Compression::None, 0, 0);
        header.base_offset = base_offset;
        RecordBatch { header, records: vec![record] }.encode()
    }

    #[test]
    fn a_strict_read_keeps_only_whole_batches_that_fit() {
        let (a, b) = (batch(100, 0), batch(300, 1));
        let both = Bytes::from([a.clone(), b.clone()].concat());
        let all = a.len() + b.len();
        assert_eq!(whole_batches(both.clone(), all, true, i64::MAX).len(), all);
        assert_eq!(whole_batches(both.clone(), all - 1, true, i64::MAX), Bytes::from(a.clone()));
        assert!(whole_batches(both.clone(), a.len() - 1, true, i64::MAX).is_empty());
        assert_eq!(whole_batches(both, 1, false, i64::MAX).len(), all, "not strict: the size is not a bound");
    }

    #[test]
    fn consumers_get_only_batches_below_the_high_watermark() {
        let (a, b) = (batch(10, 0), batch(10, 1));
        let both = Bytes::from([a.clone(), b.clone()].concat());
        assert_eq!(whole_batches(both.clone(), usize::MAX, false, 2).len(), a.len() + b.len());
        assert_eq!(whole_batches(both.clone(), usize::MAX, false, 1), Bytes::from(a));
        assert!(whole_batches(both, usize::MAX, false, 0).is_empty());
    }
}
