//! `FollowerFetcher`: an actor that replicates a set of partitions from one leader broker
//! (`num.replica.fetchers` of them per leader; a partition's is picked by hashing it).
//!
//! It runs rounds, one after another, while it has partitions:
//! 1. Partitions new to it (or whose leader changed) are first **truncated by leader
//!    epoch**: it asks its partition actor for the latest epoch it holds, asks the leader
//!    where that epoch ends (`OffsetsForLeaderEpoch`), and has the partition cut whatever
//!    lies past it (a tail the new leader never had).
//! 2. One `ReplicaFetch` for all the others, each from its log end offset — which is also
//!    how the leader learns how far this follower has got (Kafka's fetch-offset protocol).
//!    The leader holds the request up to `replica.fetch.wait.max.ms` for data.
//! 3. What came back is handed to each partition actor ([`ReplicaAppend`]) with the
//!    leader's high watermark.
//!
//! **Throttle** (a reassignment's `--throttle`): while the bytes fetched for the throttled
//! replicas ([`SetThrottle`]) exceed `follower.replication.throttled.rate`, those still
//! behind the leader are left out of the rounds (Kafka's follower quota); in-sync ones never
//! are.
//!
//! A partition refused with a leader-epoch mismatch or "not leader" waits for the
//! controller's next update (which re-assigns it here, with the new epoch); a failed round
//! waits `replica.fetch.backoff.ms`. The fetcher runs on the network thread and talks to
//! partition actors (on the log thread) only through messages.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sluice_broker_core::throttle::Throttle;
use sluice_broker_core::BrokerError;
use sluice_proto::broker::{FetchPartition, FetchResponse};
use sluice_proto::interbroker::{
    EpochQuery, InterBrokerProtocol, OffsetsForLeaderEpoch, ReplicaFetch, ReplicaFetchPartition,
};
use sluice_proto::TopicPartition;
use tracing::{debug, info, warn};

use crate::broker::partition::{FollowerPosition, Partition, ReplicaAppend, RestartAt, TruncateForLeader};

/// Settings of every fetcher (from `server.properties`).
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// This broker.
    pub broker_id: i32,
    /// `replica.fetch.wait.max.ms`.
    pub max_wait: Duration,
    /// `replica.fetch.min.bytes`.
    pub min_bytes: u32,
    /// `replica.fetch.max.bytes`.
    pub partition_max_bytes: u32,
    /// `replica.fetch.response.max.bytes`.
    pub max_bytes: u32,
    /// `replica.fetch.backoff.ms`.
    pub backoff: Duration,
}

/// One partition being followed.
#[derive(Debug, Clone)]
struct Followed {
    addr: Addr<Partition>,
    leader_epoch: i32,
    /// The next offset to fetch (the local log end offset).
    offset: i64,
    /// Truncate by leader epoch before the next fetch.
    truncate: bool,
    /// Refused by the leader at this epoch: wait for a new assignment.
    parked: bool,
    /// The leader's high watermark last handed to the partition.
    leader_hw: i64,
    /// The leader's log start last handed to the partition.
    leader_log_start: i64,
}

/// Replicates partitions from one leader.
pub struct FollowerFetcher {
    config: Arc<FetcherConfig>,
    leader_id: i32,
    leader_addr: String,
    net: Arc<sluice_net::Client<InterBrokerProtocol>>,
    partitions: HashMap<TopicPartition, Followed>,
    running: bool,
    /// The last round failed (the first failure of a streak is logged as a warning).
    failing: bool,
    /// The follower replication throttle and the partitions it applies to.
    throttle: Option<Throttle>,
    throttled: HashSet<TopicPartition>,
    /// A round is due when the throttle has refilled.
    throttle_wait: bool,
}

impl std::fmt::Debug for FollowerFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerFetcher")
            .field("leader", &self.leader_id)
            .field("partitions", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

/// What one round changed, per partition: the new fetch offset, or parked.
type RoundResult = Vec<(TopicPartition, i32, Outcome)>;

#[derive(Debug)]
enum Outcome {
    /// Fetch from here next.
    At(i64),
    /// Truncate again before fetching (the offsets did not match the leader's log).
    Retruncate,
    /// The leader refused this epoch; wait for a new assignment.
    Park,
    /// The partition took what the leader sent: fetch from `offset` next; it knows the
    /// leader's high watermark `hw`.
    Replicated { offset: i64, hw: i64, log_start: i64, bytes: u64 },
    /// Nothing changed (not fetched this round, or a local error).
    Same,
}

impl FollowerFetcher {
    /// A fetcher from `leader_id` at `leader_addr`.
    pub fn new(
        config: Arc<FetcherConfig>,
        leader_id: i32,
        leader_addr: String,
        net: Arc<sluice_net::Client<InterBrokerProtocol>>,
    ) -> Self {
        FollowerFetcher {
            config,
            leader_id,
            leader_addr,
            net,
            partitions: HashMap::new(),
            running: false,
            failing: false,
            throttle: None,
            throttled: HashSet::new(),
            throttle_wait: false,
        }
    }

    /// Whether `tp` is held back by the throttle now: throttled, behind the leader, and the
    /// rate used up.
    fn held(&self, tp: &TopicPartition, f: &Followed, exceeded: bool) -> bool {
        exceeded && self.throttled.contains(tp) && f.offset < f.leader_hw
    }

    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.running || self.partitions.values().all(|p| p.parked) {
            return;
        }
        let now = crate::clock::now_ms();
        let exceeded = self.throttle.as_mut().is_some_and(|t| t.exceeded(now));
        let work: Vec<(TopicPartition, Followed)> = self
            .partitions
            .iter()
            .filter(|(tp, f)| !f.parked && !self.held(tp, f, exceeded))
            .map(|(tp, f)| (tp.clone(), f.clone()))
            .collect();
        if work.is_empty() {
            // Only throttled replicas are left: fetch again once the rate allows.
            if let Some(wait) = self.throttle.as_mut().map(|t| t.wait_ms(now)) {
                if !self.throttle_wait {
                    self.throttle_wait = true;
                    ctx.run_later(Duration::from_millis(wait.max(1)), |this, ctx| {
                        this.throttle_wait = false;
                        this.kick(ctx);
                    });
                }
            }
            return;
        }
        self.running = true;
        let round = run_round(self.config.clone(), self.leader_addr.clone(), self.net.clone(), work);
        ctx.spawn(round.into_actor(self).map(|(results, failed), this, ctx| {
            this.running = false;
            if failed != this.failing {
                if failed {
                    warn!(leader = this.leader_id, addr = %this.leader_addr, "replica fetching from this leader fails; retrying");
                } else {
                    info!(leader = this.leader_id, "replica fetching from this leader works again");
                }
                this.failing = failed;
            }
            for (tp, epoch, outcome) in results {
                let Some(f) = this.partitions.get_mut(&tp) else { continue };
                if f.leader_epoch != epoch {
                    continue; // re-assigned meanwhile
                }
                match outcome {
                    Outcome::At(offset) => {
                        f.offset = offset;
                        f.truncate = false;
                    }
                    Outcome::Retruncate => f.truncate = true,
                    Outcome::Replicated { offset, hw, log_start, bytes } => {
                        f.offset = offset;
                        f.leader_hw = hw;
                        f.leader_log_start = log_start;
                        if this.throttled.contains(&tp) {
                            if let Some(t) = this.throttle.as_mut() {
                                t.record(bytes, crate::clock::now_ms());
                            }
                        }
                    }
                    Outcome::Park => f.parked = true,
                    Outcome::Same => {}
                }
            }
            if failed {
                ctx.run_later(this.config.backoff, |this, ctx| this.kick(ctx));
            } else {
                this.kick(ctx);
            }
        }));
    }
}

/// Asks the leader where each partition's latest local epoch ends and truncates to it.
async fn truncate(
    config: &FetcherConfig,
    leader: &str,
    net: &sluice_net::Client<InterBrokerProtocol>,
    work: &[(TopicPartition, Followed)],
    out: &mut RoundResult,
) -> bool {
    let mut queries = Vec::new();
    let mut without_epoch = Vec::new();
    for (tp, f) in work.iter().filter(|(_, f)| f.truncate) {
        match f.addr.send(FollowerPosition { leader_epoch: f.leader_epoch }).await {
            Ok(Ok((Some(epoch), _))) => queries.push((tp, f, epoch)),
            Ok(Ok((None, _))) => without_epoch.push((tp, f)),
            Ok(Err(e)) => {
                debug!(topic = %tp.topic, partition = tp.partition, error = %e, "not following at this epoch");
                out.push((tp.clone(), f.leader_epoch, Outcome::Same));
            }
            Err(_) => out.push((tp.clone(), f.leader_epoch, Outcome::Park)),
        }
    }
    for (tp, f) in without_epoch {
        let r = f.addr.send(TruncateForLeader { leader_epoch: f.leader_epoch, answer: None }).await;
        out.push((tp.clone(), f.leader_epoch, truncated(tp, r)));
    }
    if queries.is_empty() {
        return false;
    }
    let request = OffsetsForLeaderEpoch {
        partitions: queries
            .iter()
            .map(|(tp, f, epoch)| EpochQuery {
                topic: tp.topic.clone(),
                partition: tp.partition,
                current_leader_epoch: f.leader_epoch,
                leader_epoch: *epoch,
            })
            .collect(),
    };
    let answers = match net.call(leader, request).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            debug!(leader, error = %e, broker = config.broker_id, "OffsetsForLeaderEpoch refused");
            return true;
        }
        Err(e) => {
            debug!(leader, error = %e, "OffsetsForLeaderEpoch failed");
            return true;
        }
    };
    for ((tp, f, _), answer) in queries.into_iter().zip(answers) {
        match answer.result {
            Ok(answer) => {
                let r = f.addr.send(TruncateForLeader { leader_epoch: f.leader_epoch, answer }).await;
                out.push((tp.clone(), f.leader_epoch, truncated(tp, r)));
            }
            Err(e) => out.push((tp.clone(), f.leader_epoch, refused(tp, &e))),
        }
    }
    false
}

/// What a partition actor's answer to a follower message means for the fetcher.
fn applied(tp: &TopicPartition, r: Result<Result<i64, BrokerError>, MailboxError>) -> Outcome {
    match r {
        Ok(Ok(offset)) => Outcome::At(offset),
        Ok(Err(e)) => {
            debug!(topic = %tp.topic, partition = tp.partition, error = %e, "the partition refused");
            Outcome::Park
        }
        Err(_) => Outcome::Park,
    }
}

/// What a truncation's answer means: fetch from the new end, or ask again (KIP-279: the
/// leader's answer named an epoch this follower does not hold).
fn truncated(tp: &TopicPartition, r: Result<Result<(i64, bool), BrokerError>, MailboxError>) -> Outcome {
    match r {
        Ok(Ok((_, false))) => Outcome::Retruncate,
        Ok(Ok((offset, true))) => Outcome::At(offset),
        Ok(Err(e)) => applied(tp, Ok(Err(e))),
        Err(e) => applied(tp, Err(e)),
    }
}

/// What a leader's refusal for one partition means.
///
/// Only a fenced epoch (this follower missed a leader change) parks the partition until the
/// controller's update re-assigns it; "not leader (yet)", an epoch the leader has not heard
/// of yet and the like are retried after the back-off — the leader may simply not have taken
/// its role yet.
fn refused(tp: &TopicPartition, e: &BrokerError) -> Outcome {
    match e {
        BrokerError::OffsetOutOfRange { .. } => Outcome::Retruncate,
        BrokerError::FencedLeaderEpoch { .. } => {
            debug!(topic = %tp.topic, partition = tp.partition, error = %e, "fenced; waiting for the controller's update");
            Outcome::Park
        }
        _ => {
            debug!(topic = %tp.topic, partition = tp.partition, error = %e, "the leader refused; retrying");
            Outcome::Same
        }
    }
}

/// One round: truncations, then one fetch. Returns the outcomes and whether the round
/// failed as a whole (back off before the next).
async fn run_round(
    config: Arc<FetcherConfig>,
    leader: String,
    net: Arc<sluice_net::Client<InterBrokerProtocol>>,
    work: Vec<(TopicPartition, Followed)>,
) -> (RoundResult, bool) {
    let mut out = RoundResult::new();
    let failed = truncate(&config, &leader, &net, &work, &mut out).await;
    let fetching: Vec<&(TopicPartition, Followed)> = work.iter().filter(|(_, f)| !f.truncate).collect();
    if fetching.is_empty() {
        // Only truncations: go on at once if they all worked, else back off.
        let stuck = out.iter().any(|(_, _, o)| !matches!(o, Outcome::At(_)));
        return (out, failed || stuck);
    }
    let request = ReplicaFetch {
        replica_id: config.broker_id,
        max_wait_ms: config.max_wait.as_millis() as u32,
        min_bytes: config.min_bytes,
        max_bytes: config.max_bytes,
        partitions: fetching
            .iter()
            .map(|(tp, f)| ReplicaFetchPartition {
                fetch: FetchPartition {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: f.offset,
                    max_bytes: config.partition_max_bytes,
                },
                leader_epoch: f.leader_epoch,
            })
            .collect(),
    };
    let response: FetchResponse = match net.call(&leader, request).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            warn!(leader, error = %e, "replica fetch refused");
            return (out, true);
        }
        Err(e) => {
            warn!(leader, error = %e, "replica fetch failed");
            return (out, true);
        }
    };
    let mut errors = 0;
    let asked = fetching.len();
    for ((tp, f), fetched) in fetching.into_iter().zip(response.partitions) {
        if let Some(e) = fetched.error {
            errors += 1;
            if let BrokerError::OffsetOutOfRange { offset, log_start_offset, .. } = &e {
                if offset < log_start_offset {
                    let r = f
                        .addr
                        .send(RestartAt { leader_epoch: f.leader_epoch, offset: *log_start_offset })
                        .await;
                    out.push((tp.clone(), f.leader_epoch, applied(tp, r)));
                    continue;
                }
            }
            out.push((tp.clone(), f.leader_epoch, refused(tp, &e)));
            continue;
        }
        if fetched.records.is_empty()
            && fetched.high_watermark == f.leader_hw
            && fetched.log_start_offset == f.leader_log_start
        {
            // Nothing new: no need to bother the partition.
            out.push((tp.clone(), f.leader_epoch, Outcome::Same));
            continue;
        }
        let (hw, log_start) = (fetched.high_watermark, fetched.log_start_offset);
        let bytes = fetched.records.len() as u64;
        let append = ReplicaAppend {
            leader_epoch: f.leader_epoch,
            records: fetched.records,
            leader_high_watermark: hw,
            leader_log_start_offset: log_start,
        };
        // Open while the partition appends: one per traced produce the records carry, in
        // that produce's trace (under the leader's `follower_fetch`).
        let _spans: Vec<tracing::Span> = fetched
            .traces
            .iter()
            .map(|parent| {
                let span = tracing::info_span!(
                    parent: None,
                    "follower_append",
                    topic = %tp.topic,
                    partition = tp.partition,
                    follower = config.broker_id,
                    leader = %leader,
                );
                sluice_net::trace::set_parent(&span, parent);
                span
            })
            .collect();
        let r = f.addr.send(append).await;
        let outcome = match applied(tp, r) {
            Outcome::At(offset) => Outcome::Replicated { offset, hw, log_start, bytes },
            other => other,
        };
        out.push((tp.clone(), f.leader_epoch, outcome));
    }
    // Every partition refused: the leader answered at once, so back off rather than spin.
    (out, failed || errors == asked)
}

impl Actor for FollowerFetcher {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        info!(leader = self.leader_id, addr = %self.leader_addr, "replica fetcher started");
    }
}

/// Follow a partition (or follow it at a new epoch): truncate, then fetch.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Follow {
    /// The partition.
    pub tp: TopicPartition,
    /// Its actor.
    pub addr: Addr<Partition>,
    /// The leader's epoch.
    pub leader_epoch: i32,
    /// The leader's address (it may have moved).
    pub leader_addr: String,
}

impl Handler<Follow> for FollowerFetcher {
    type Result = ();

    fn handle(&mut self, msg: Follow, ctx: &mut Context<Self>) {
        let _span = crate::handling!("FollowerFetcher", "Follow");
        self.leader_addr = msg.leader_addr;
        let followed = Followed {
            addr: msg.addr,
            leader_epoch: msg.leader_epoch,
            offset: 0,
            leader_hw: -1,
            leader_log_start: -1,
            truncate: true,
            parked: false,
        };
        self.partitions.insert(msg.tp, followed);
        self.kick(ctx);
    }
}

/// The follower replication throttle: its rate (`None`: no throttle) and the partitions
/// whose replica here it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct SetThrottle {
    /// `follower.replication.throttled.rate`, bytes per second.
    pub rate: Option<u64>,
    /// The throttled partitions (`follower.replication.throttled.replicas` naming this broker).
    pub partitions: HashSet<TopicPartition>,
}

impl Handler<SetThrottle> for FollowerFetcher {
    type Result = ();

    fn handle(&mut self, msg: SetThrottle, ctx: &mut Context<Self>) {
        let _span = crate::handling!("FollowerFetcher", "SetThrottle");
        let before = self.throttle.as_ref().map(Throttle::rate);
        if before != msg.rate {
            info!(leader = self.leader_id, rate = ?msg.rate, "follower replication throttle");
            self.throttle = msg.rate.map(|r| Throttle::new(r, crate::clock::now_ms()));
        }
        self.throttled = msg.partitions;
        // Partitions no longer throttled may fetch at once.
        self.kick(ctx);
    }
}

/// Stop following a partition. Answers how many partitions the fetcher still follows.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Unfollow(pub TopicPartition);

impl Handler<Unfollow> for FollowerFetcher {
    type Result = usize;

    fn handle(&mut self, msg: Unfollow, _: &mut Context<Self>) -> usize {
        let _span = crate::handling!("FollowerFetcher", "Unfollow");
        if self.partitions.remove(&msg.0).is_none() {
            warn!(topic = %msg.0.topic, partition = msg.0.partition, "unfollowing a partition this fetcher did not follow");
        }
        self.partitions.len()
    }
}
