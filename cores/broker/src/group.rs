//! A consumer group's membership, generations and committed offsets: Kafka's group
//! coordinator rules as a sans-IO state machine.
//!
//! The shell (one actor per group) passes `now` (ms) into every call, parks requests the
//! rules hold (a join waits for the rebalance, a follower's sync for the leader's) under
//! [`Waiter`] ids of its own, and carries out the returned [`Effect`]s: answer these
//! waiters, write this group's metadata to `__consumer_offsets`, tombstone those offsets.
//!
//! States, as Kafka's:
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all rejoined / timeout──▶ CompletingRebalance
//!   ▲                 ▲        │ (no members left)                   │ leader's sync
//!   └─────────────────┼────────┘                                     ▼
//!                     └──── join / leave / session expiry ────── Stable
//! ```
//!
//! - **Initial rebalance delay** (`group.initial.rebalance.delay.ms`): when an empty group
//!   gets its first member the join phase lasts at least the delay; if more members joined
//!   during a delay window it is extended by another delay, never past the rebalance
//!   timeout — so consumers started together cause one rebalance, not one each.
//! - **Join phase** otherwise ends when every member has rejoined or the largest rebalance
//!   timeout has passed (members that did not rejoin are removed).
//! - **Sessions**: a member not parked in a join or sync that sends nothing for its
//!   session timeout is removed, which starts a rebalance.
//! - **Offsets** of an empty group expire `offsets.retention.minutes` after it became
//!   empty (KIP-211); offsets committed without a group (generation -1) expire that long
//!   after their commit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::BrokerError;

/// One partition's offset to commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the last record consumed, or -1.
    pub leader_epoch: i32,
    /// Free text kept with the offset (at most `offset.metadata.max.bytes`).
    pub metadata: String,
}

impl CommitOffset {
    /// `offset` for `topic`-`partition`, with no leader epoch (-1) and no metadata.
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        CommitOffset { topic: topic.into(), partition, offset, leader_epoch: -1, metadata: String::new() }
    }
}

/// A committed offset, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset, or -1 when the group has none for the partition.
    pub offset: i64,
    /// Its leader epoch, or -1.
    pub leader_epoch: i32,
    /// Its metadata.
    pub metadata: String,
}

/// The answer to a join: the generation, and for the leader every member's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResult {
    /// The new generation.
    pub generation_id: i32,
    /// The assignor the members agreed on.
    pub protocol: String,
    /// The leader's member id (it runs the assignor).
    pub leader: String,
    /// This member's id (new members learn theirs here).
    pub member_id: String,
    /// For the leader: every member's id and subscription for `protocol`, in join order.
    /// Empty for the others.
    pub members: Vec<(String, Vec<u8>)>,
}

/// A group in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOverview {
    /// The group id.
    pub group_id: String,
    /// "consumer" for consumer groups; empty for offsets committed without a group.
    pub protocol_type: String,
    /// Its state (`Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`, `Dead`).
    pub state: String,
}

/// A group described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: String,
    /// "consumer" for consumer groups.
    pub protocol_type: String,
    /// The assignor in use.
    pub protocol: String,
    /// The generation.
    pub generation_id: i32,
    /// The leader's member id.
    pub leader: String,
    /// The members, in join order.
    pub members: Vec<MemberDescription>,
}

/// A member described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDescription {
    /// Its member id.
    pub member_id: String,
    /// Its `client.id`.
    pub client_id: String,
    /// Who it is (the subject of its certificate and its address).
    pub client_host: String,
    /// Its subscription for the protocol in use.
    pub metadata: Vec<u8>,
    /// Its assignment (empty until the leader's sync).
    pub assignment: Vec<u8>,
}

/// A group's lag on a partition: the records at or above its committed offset and below the
/// partition's high watermark (0 when the commit is at or past it, as after a truncation).
pub fn lag(high_watermark: i64, committed: i64) -> i64 {
    (high_watermark - committed).max(0)
}

/// What a commit answers when its offsets could not be written, as Kafka's coordinator
/// does: the offsets partition moved (`NotCoordinator`: find the coordinator again) or is
/// short of replicas or slow (`CoordinatorNotAvailable`: retry later); anything else as is.
pub fn commit_write_error(group: &str, broker: i32, e: BrokerError) -> BrokerError {
    match e {
        BrokerError::NotLeaderForPartition { .. }
        | BrokerError::LeaderNotAvailable { .. }
        | BrokerError::StorageError { .. } => BrokerError::NotCoordinator { group: group.into(), broker },
        BrokerError::NotEnoughReplicas { .. }
        | BrokerError::NotEnoughReplicasAfterAppend { .. }
        | BrokerError::UnknownTopicOrPartition { .. }
        | BrokerError::RequestTimedOut { .. } => BrokerError::CoordinatorNotAvailable {
            group: group.into(),
            why: format!("the offsets could not be written: {e}"),
        },
        other => other,
    }
}

/// The shell's id for a request the rules hold (a join or a sync).
pub type Waiter = u64;

/// Broker settings the group rules follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRules {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: u64,
    /// `offset.metadata.max.bytes`.
    pub max_metadata_bytes: usize,
}

impl Default for GroupRules {
    /// Kafka's defaults.
    fn default() -> Self {
        GroupRules {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            max_metadata_bytes: 4096,
        }
    }
}

/// A group's state, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted or moved to another coordinator.
    Dead,
}

impl GroupState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer a held join.
    Join(Waiter, Result<JoinResult, BrokerError>),
    /// Answer a held sync with the member's assignment.
    Sync(Waiter, Result<Vec<u8>, BrokerError>),
    /// Write the group's metadata (membership, generation, assignments) to its offsets
    /// partition, so another coordinator can take it over.
    StoreGroup(GroupRecord),
    /// Write tombstones for these offsets (expired or deleted).
    DeleteOffsets(Vec<(String, i32)>),
    /// The group is gone (deleted, or expired with no offsets left): write its tombstone
    /// and stop its actor.
    Gone,
}

/// The topics of a consumer's `ConsumerProtocolSubscription` (every version starts with a
/// version, then the topic names as an array of strings); `None` when it does not parse.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    let mut b = metadata;
    take(&mut b, 2)?;
    let count = i32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?);
    if count < 0 || count as usize > b.len() / 2 {
        return None;
    }
    (0..count)
        .map(|_| {
            let len = i16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?);
            let name = take(&mut b, usize::try_from(len).ok()?)?;
            String::from_utf8(name.to_vec()).ok()
        })
        .collect()
}

/// A join request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The member id from an earlier join; empty for a new member.
    pub member_id: String,
    /// The id to give a new member (the shell makes it unique).
    pub new_member_id: String,
    /// `client.id`.
    pub client_id: String,
    /// Who the member is (certificate subject and address).
    pub client_host: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms`.
    pub rebalance_timeout_ms: i32,
    /// "consumer".
    pub protocol_type: String,
    /// Assignor names with this member's subscription for each, preferred first.
    pub protocols: Vec<(String, Vec<u8>)>,
}

/// A group's membership as written to `__consumer_offsets` (Kafka's GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// "consumer", or empty.
    pub protocol_type: String,
    /// The generation.
    pub generation: i32,
    /// The assignor in use.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// When the group entered its current state (ms).
    pub state_timestamp: i64,
    /// The members.
    pub members: Vec<MemberRecord>,
}

/// A member as written to `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Member id.
    pub member_id: String,
    /// `client.id`.
    pub client_id: String,
    /// Who it is.
    pub client_host: String,
    /// `max.poll.interval.ms`.
    pub rebalance_timeout_ms: i32,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// Its subscription for the protocol in use.
    pub subscription: Vec<u8>,
    /// Its assignment.
    pub assignment: Vec<u8>,
}

/// A committed offset as kept (Kafka's OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last record consumed, or -1.
    pub leader_epoch: i32,
    /// Metadata.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
    last_seen: u64,
    join_waiter: Option<Waiter>,
    sync_waiter: Option<Waiter>,
    /// Joined during the current join phase (counts towards extending the initial delay).
    new: bool,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Vec<u8> {
        self.protocols.iter().find(|(p, _)| p == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(p, _)| p == protocol)
    }
}

/// Where the join phase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct JoinPhase {
    /// The phase ends (or its initial delay is reconsidered) at this time.
    deadline: u64,
    /// For an empty group's first rebalance: how much more the delay may still be
    /// extended (the rebalance timeout minus the delays so far).
    initial_remaining: Option<u64>,
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    id: String,
    rules: GroupRules,
    state: GroupState,
    generation: i32,
    protocol_type: String,
    protocol: Option<String>,
    leader: Option<String>,
    /// In join order.
    members: Vec<Member>,
    join: Option<JoinPhase>,
    state_since: u64,
    offsets: BTreeMap<(String, i32), OffsetRecord>,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: impl Into<String>, rules: GroupRules, now: u64) -> Self {
        Group {
            id: id.into(),
            rules,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: Vec::new(),
            join: None,
            state_since: now,
            offsets: BTreeMap::new(),
        }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// Its generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Member ids, in join order.
    pub fn member_ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.id.clone()).collect()
    }

    /// The next time [`tick`](Self::tick) has something to do (a join deadline, a session
    /// expiry), if any — offsets expiry aside, which the shell checks on its own slow timer.
    pub fn next_deadline(&self) -> Option<u64> {
        let join = self.join.map(|j| j.deadline);
        let sessions = self
            .members
            .iter()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.last_seen + m.session_timeout_ms.max(0) as u64)
            .min();
        join.into_iter().chain(sessions).min()
    }

    fn err_unknown(&self, member: &str) -> BrokerError {
        BrokerError::UnknownMemberId { group: self.id.clone(), member: member.to_string() }
    }

    fn err_generation(&self, got: i32) -> BrokerError {
        BrokerError::IllegalGeneration { group: self.id.clone(), got, current: self.generation }
    }

    fn err_rebalancing(&self) -> BrokerError {
        BrokerError::RebalanceInProgress { group: self.id.clone() }
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    fn set_state(&mut self, state: GroupState, now: u64) {
        if self.state != state {
            self.state = state;
            self.state_since = now;
        }
    }

    /// The protocols every member supports.
    fn common_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.first() else { return Vec::new() };
        first
            .protocols
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| self.members.iter().all(|m| m.supports(p)))
            .collect()
    }

    /// Handles a join; answers it now (an error, or a rejoin the current generation
    /// already covers) or holds it under `waiter` until the join phase ends.
    pub fn join(&mut self, now: u64, waiter: Waiter, req: Join) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Err(e) = self.check_join(&req) {
            out.push(Effect::Join(waiter, Err(e)));
            return out;
        }
        if req.member_id.is_empty() {
            let member = Member {
                id: req.new_member_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Vec::new(),
                last_seen: now,
                join_waiter: Some(waiter),
                sync_waiter: None,
                // Joining a join phase already under way (the first member starts it).
                new: self.state == GroupState::PreparingRebalance,
            };
            if self.members.is_empty() {
                self.protocol_type = req.protocol_type;
            }
            self.members.push(member);
            self.prepare_rebalance(now, &mut out);
            self.maybe_complete_join(now, &mut out);
            return out;
        }
        let state = self.state;
        let Some(m) = self.member_mut(&req.member_id) else {
            let e = self.err_unknown(&req.member_id);
            out.push(Effect::Join(waiter, Err(e)));
            return out;
        };
        let same = m.protocols == req.protocols;
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.last_seen = now;
        if let Some(old) = m.join_waiter.replace(waiter) {
            // The member gave up on its earlier join (a client timeout) and asked again.
            out.push(Effect::Join(old, Err(BrokerError::RebalanceInProgress { group: self.id.clone() })));
        }
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        match state {
            GroupState::PreparingRebalance => {}
            GroupState::CompletingRebalance | GroupState::Stable if same && !is_leader => {
                // A rejoin the current generation already answers (its reply was lost).
                if let Some(m) = self.member_mut(&req.member_id) {
                    m.join_waiter = None;
                }
                let result = self.join_result(&req.member_id);
                out.push(Effect::Join(waiter, Ok(result)));
                return out;
            }
            _ => self.prepare_rebalance(now, &mut out),
        }
        self.maybe_complete_join(now, &mut out);
        out
    }

    fn check_join(&self, req: &Join) -> Result<(), BrokerError> {
        let r = &self.rules;
        if req.session_timeout_ms < r.min_session_timeout_ms
            || req.session_timeout_ms > r.max_session_timeout_ms
        {
            return Err(BrokerError::InvalidSessionTimeout {
                ms: req.session_timeout_ms,
                min: r.min_session_timeout_ms,
                max: r.max_session_timeout_ms,
            });
        }
        let inconsistent =
            |why: String| BrokerError::InconsistentGroupProtocol { group: self.id.clone(), why };
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(inconsistent("a member must name a protocol type and at least one protocol".into()));
        }
        if self.state == GroupState::Dead {
            return Err(BrokerError::CoordinatorNotAvailable {
                group: self.id.clone(),
                why: "the group is being removed from this coordinator".into(),
            });
        }
        let others: Vec<&Member> = self.members.iter().filter(|m| m.id != req.member_id).collect();
        if others.is_empty() {
            return Ok(());
        }
        if req.protocol_type != self.protocol_type {
            return Err(inconsistent(format!(
                "protocol type {:?} differs from the group's {:?}",
                req.protocol_type, self.protocol_type
            )));
        }
        let shared = req.protocols.iter().any(|(p, _)| others.iter().all(|m| m.supports(p)));
        if !shared {
            let mine: Vec<&str> = req.protocols.iter().map(|(p, _)| p.as_str()).collect();
            return Err(inconsistent(format!(
                "none of this member's assignors {mine:?} is supported by every member (partition.assignment.strategy)"
            )));
        }
        Ok(())
    }

    /// Starts (or keeps) a join phase.
    fn prepare_rebalance(&mut self, now: u64, out: &mut Vec<Effect>) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                m.assignment.clear();
                if let Some(w) = m.sync_waiter.take() {
                    out.push(Effect::Sync(
                        w,
                        Err(BrokerError::RebalanceInProgress { group: self.id.clone() }),
                    ));
                }
            }
        }
        let timeout = self.members.iter().map(|m| m.rebalance_timeout_ms.max(0) as u64).max().unwrap_or(0);
        self.join = Some(if self.state == GroupState::Empty {
            let delay = self.rules.initial_rebalance_delay_ms.min(timeout);
            JoinPhase { deadline: now + delay, initial_remaining: Some(timeout.saturating_sub(delay)) }
        } else {
            JoinPhase { deadline: now + timeout, initial_remaining: None }
        });
        self.set_state(GroupState::PreparingRebalance, now);
    }

    /// Ends the join phase when its rules say so.
    fn maybe_complete_join(&mut self, now: u64, out: &mut Vec<Effect>) {
        let Some(phase) = self.join else { return };
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(remaining) = phase.initial_remaining {
            if now < phase.deadline {
                return;
            }
            let newcomers = self.members.iter().any(|m| m.new);
            if newcomers && remaining > 0 {
                // Someone joined during this window: wait one more delay for the rest.
                let delay = self.rules.initial_rebalance_delay_ms.min(remaining);
                for m in &mut self.members {
                    m.new = false;
                }
                self.join =
                    Some(JoinPhase { deadline: now + delay, initial_remaining: Some(remaining - delay) });
                return;
            }
        } else {
            let all_in = self.members.iter().all(|m| m.join_waiter.is_some());
            if !all_in && now < phase.deadline {
                return;
            }
        }
        self.complete_join(now, out);
    }

    fn complete_join(&mut self, now: u64, out: &mut Vec<Effect>) {
        self.join = None;
        // Members that did not rejoin in time leave.
        self.members.retain(|m| m.join_waiter.is_some());
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now);
            out.push(Effect::StoreGroup(self.record(now)));
            return;
        }
        self.protocol = self.select_protocol();
        if !self.leader.as_ref().is_some_and(|l| self.members.iter().any(|m| &m.id == l)) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.set_state(GroupState::CompletingRebalance, now);
        let ids = self.member_ids();
        for id in ids {
            let result = self.join_result(&id);
            if let Some(m) = self.member_mut(&id) {
                m.new = false;
                m.last_seen = now;
                m.assignment.clear();
                if let Some(w) = m.join_waiter.take() {
                    out.push(Effect::Join(w, Ok(result)));
                }
            }
        }
    }

    /// Kafka's vote: among the protocols every member supports, each member votes for the
    /// first it lists; most votes wins, ties to the one listed first by the first member.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.common_protocols();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|p| (p.clone(), 0)).collect();
        for m in &self.members {
            if let Some((p, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(p)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == p) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(p, _)| p)
    }

    fn join_result(&self, member: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member {
            self.members.iter().map(|m| (m.id.clone(), m.metadata(&protocol))).collect()
        } else {
            Vec::new()
        };
        JoinResult {
            generation_id: self.generation,
            protocol,
            leader,
            member_id: member.to_string(),
            members,
        }
    }

    /// Handles a sync: the leader's carries every member's assignment and completes the
    /// rebalance; the others wait for it.
    pub fn sync(
        &mut self,
        now: u64,
        waiter: Waiter,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Vec<u8>)>,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let reply = |e| vec![Effect::Sync(waiter, Err(e))];
        if !self.members.iter().any(|m| m.id == member) {
            return reply(self.err_unknown(member));
        }
        if generation != self.generation {
            return reply(self.err_generation(generation));
        }
        match self.state {
            GroupState::PreparingRebalance => reply(self.err_rebalancing()),
            GroupState::Empty | GroupState::Dead => reply(self.err_unknown(member)),
            GroupState::Stable => {
                let m = self.member_mut(member).map(|m| {
                    m.last_seen = now;
                    m.assignment.clone()
                });
                vec![Effect::Sync(waiter, Ok(m.unwrap_or_default()))]
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.member_mut(member) {
                    m.last_seen = now;
                    if let Some(old) = m.sync_waiter.replace(waiter) {
                        out.push(Effect::Sync(
                            old,
                            Err(BrokerError::RebalanceInProgress { group: self.id.clone() }),
                        ));
                    }
                }
                if self.leader.as_deref() == Some(member) {
                    let mut given: BTreeMap<String, Vec<u8>> = assignments.into_iter().collect();
                    for m in &mut self.members {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                        if let Some(w) = m.sync_waiter.take() {
                            out.push(Effect::Sync(w, Ok(m.assignment.clone())));
                        }
                    }
                    self.set_state(GroupState::Stable, now);
                    out.push(Effect::StoreGroup(self.record(now)));
                }
                out
            }
        }
    }

    /// A heartbeat: keeps the member alive; during a join phase it says "rejoin".
    pub fn heartbeat(&mut self, now: u64, member: &str, generation: i32) -> Result<(), BrokerError> {
        let state = self.state;
        let current = self.generation;
        let Some(m) = self.member_mut(member) else { return Err(self.err_unknown(member)) };
        m.last_seen = now;
        match state {
            GroupState::PreparingRebalance => Err(self.err_rebalancing()),
            _ if generation != current => Err(self.err_generation(generation)),
            _ => Ok(()),
        }
    }

    /// Members leave (a clean close): their partitions move at once.
    pub fn leave(&mut self, now: u64, members: &[String]) -> (Result<(), BrokerError>, Vec<Effect>) {
        let mut out = Vec::new();
        let mut result = Ok(());
        for id in members {
            let Some(i) = self.members.iter().position(|m| &m.id == id) else {
                result = Err(self.err_unknown(id));
                continue;
            };
            self.remove_member(now, i, &mut out);
        }
        (result, out)
    }

    fn remove_member(&mut self, now: u64, i: usize, out: &mut Vec<Effect>) {
        let m = self.members.remove(i);
        if let Some(w) = m.join_waiter {
            out.push(Effect::Join(w, Err(self.err_unknown(&m.id))));
        }
        if let Some(w) = m.sync_waiter {
            out.push(Effect::Sync(w, Err(self.err_unknown(&m.id))));
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, out);
                self.maybe_complete_join(now, out);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, out),
            GroupState::Empty | GroupState::Dead => {}
        }
        if self.members.is_empty() && self.state == GroupState::PreparingRebalance {
            self.complete_join(now, out);
        }
    }

    /// The group's metadata as written to `__consumer_offsets`.
    pub fn record(&self, now: u64) -> GroupRecord {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupRecord {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: now as i64,
            members: self
                .members
                .iter()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Takes over a group from its records in `__consumer_offsets` (a new coordinator
    /// loading its partition): the last metadata record and the offsets. Members come back
    /// as they were, with a fresh session from `now`, so they carry on without a rebalance.
    pub fn restore(
        id: impl Into<String>,
        rules: GroupRules,
        now: u64,
        record: Option<GroupRecord>,
        offsets: BTreeMap<(String, i32), OffsetRecord>,
    ) -> Self {
        let mut g = Group::new(id, rules, now);
        g.offsets = offsets;
        if let Some(r) = record {
            g.protocol_type = r.protocol_type;
            g.generation = r.generation;
            g.protocol = r.protocol;
            g.leader = r.leader;
            g.members = r
                .members
                .into_iter()
                .map(|m| Member {
                    protocols: vec![(g.protocol.clone().unwrap_or_default(), m.subscription)],
                    id: m.member_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    assignment: m.assignment,
                    last_seen: now,
                    join_waiter: None,
                    sync_waiter: None,
                    new: false,
                })
                .collect();
            if g.members.is_empty() {
                // Empty since the record was written.
                g.state_since = u64::try_from(r.state_timestamp).unwrap_or(now).min(now);
            } else {
                g.state = GroupState::Stable;
            }
        }
        g
    }

    /// Checks a commit before it is written: from a member of the current generation (also
    /// while a rebalance is being prepared, so a revoking member can commit), or with
    /// generation -1 and no member id while the group has no members. Returns the records
    /// to write, or the error for every partition.
    pub fn check_commit(
        &mut self,
        now: u64,
        member: &str,
        generation: i32,
        offsets: &[CommitOffset],
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        if generation < 0 && member.is_empty() {
            if !self.members.is_empty() {
                return Err(self.err_unknown(member));
            }
        } else {
            let state = self.state;
            let current = self.generation;
            let Some(m) = self.member_mut(member) else { return Err(self.err_unknown(member)) };
            m.last_seen = now;
            if generation != current {
                return Err(self.err_generation(generation));
            }
            if state == GroupState::CompletingRebalance {
                return Err(self.err_rebalancing());
            }
        }
        let max = self.rules.max_metadata_bytes;
        Ok(offsets
            .iter()
            .map(|o| {
                if o.metadata.len() > max {
                    Err(BrokerError::OffsetMetadataTooLarge { len: o.metadata.len(), max })
                } else {
                    Ok(())
                }
            })
            .collect())
    }

    /// Takes in offsets that have been written.
    pub fn commit(&mut self, now: u64, offsets: Vec<CommitOffset>) {
        for o in offsets {
            let record = OffsetRecord {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata,
                commit_timestamp: now as i64,
            };
            self.offsets.insert((o.topic, o.partition), record);
        }
    }

    /// Committed offsets: of `partitions`, or all.
    pub fn fetch_offsets(&self, partitions: Option<&[(String, i32)]>) -> Vec<CommittedOffset> {
        let of = |(t, p): &(String, i32), r: Option<&OffsetRecord>| CommittedOffset {
            topic: t.clone(),
            partition: *p,
            offset: r.map_or(-1, |r| r.offset),
            leader_epoch: r.map_or(-1, |r| r.leader_epoch),
            metadata: r.map(|r| r.metadata.clone()).unwrap_or_default(),
        };
        match partitions {
            Some(ps) => ps.iter().map(|tp| of(tp, self.offsets.get(tp))).collect(),
            None => self.offsets.iter().map(|(tp, r)| of(tp, Some(r))).collect(),
        }
    }

    /// Whether the group has neither members nor offsets (nothing to keep).
    pub fn is_vacant(&self) -> bool {
        self.members.is_empty() && self.offsets.is_empty()
    }

    /// Offsets past `offsets.retention.minutes` (KIP-211): all of an empty consumer group's,
    /// counted from when it became empty; a memberless group's (offsets committed without
    /// a group) each from its commit. A group left with nothing is gone.
    pub fn expire_offsets(&mut self, now: u64) -> Vec<Effect> {
        if self.state != GroupState::Empty {
            return Vec::new();
        }
        let retention = self.rules.offsets_retention_ms;
        let since = self.state_since;
        let consumer_group = !self.protocol_type.is_empty();
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|(_, r)| {
                let base =
                    if consumer_group { since } else { u64::try_from(r.commit_timestamp).unwrap_or(0) };
                now >= base.saturating_add(retention)
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        let mut out = Vec::new();
        if !expired.is_empty() {
            for tp in &expired {
                self.offsets.remove(tp);
            }
            out.push(Effect::DeleteOffsets(expired));
        }
        if self.is_vacant() {
            self.set_state(GroupState::Dead, now);
            out.push(Effect::Gone);
        }
        out
    }

    /// Forgets the offsets of deleted topics (Kafka's `handleDeletedPartitions`); an empty
    /// group left with nothing is gone.
    pub fn drop_topics(&mut self, now: u64, deleted: &[String]) -> Vec<Effect> {
        let gone: Vec<(String, i32)> =
            self.offsets.keys().filter(|(t, _)| deleted.contains(t)).cloned().collect();
        if gone.is_empty() {
            return Vec::new();
        }
        for tp in &gone {
            self.offsets.remove(tp);
        }
        let mut out = vec![Effect::DeleteOffsets(gone)];
        if self.state == GroupState::Empty && self.is_vacant() {
            self.set_state(GroupState::Dead, now);
            out.push(Effect::Gone);
        }
        out
    }

    /// Deletes committed offsets (Kafka's OffsetDelete): each partition's outcome, in order.
    /// A partition of a topic some member subscribes to keeps its offset
    /// (`GroupSubscribedToTopic`); an empty group left with nothing is gone.
    pub fn delete_offsets(
        &mut self,
        now: u64,
        partitions: &[(String, i32)],
    ) -> (Vec<Result<(), BrokerError>>, Vec<Effect>) {
        let subscribed: Vec<String> = match &self.protocol {
            Some(p) if self.protocol_type == "consumer" => self
                .members
                .iter()
                .flat_map(|m| subscribed_topics(&m.metadata(p)).unwrap_or_default())
                .collect(),
            _ => Vec::new(),
        };
        let mut outcomes = Vec::with_capacity(partitions.len());
        let mut gone = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.iter().any(|t| t == topic) {
                outcomes.push(Err(BrokerError::GroupSubscribedToTopic {
                    group: self.id.clone(),
                    topic: topic.clone(),
                }));
                continue;
            }
            if self.offsets.remove(&(topic.clone(), *partition)).is_some() {
                gone.push((topic.clone(), *partition));
            }
            outcomes.push(Ok(()));
        }
        let mut effects = Vec::new();
        if !gone.is_empty() {
            effects.push(Effect::DeleteOffsets(gone));
        }
        if self.state == GroupState::Empty && self.is_vacant() {
            self.set_state(GroupState::Dead, now);
            effects.push(Effect::Gone);
        }
        (outcomes, effects)
    }

    /// Deletes an empty group and its offsets.
    pub fn delete(&mut self, now: u64) -> Result<Vec<Effect>, BrokerError> {
        if !self.members.is_empty() {
            return Err(BrokerError::NonEmptyGroup { group: self.id.clone(), members: self.members.len() });
        }
        let offsets: Vec<(String, i32)> = std::mem::take(&mut self.offsets).into_keys().collect();
        self.set_state(GroupState::Dead, now);
        let mut out = Vec::new();
        if !offsets.is_empty() {
            out.push(Effect::DeleteOffsets(offsets));
        }
        out.push(Effect::Gone);
        Ok(out)
    }

    /// The group moves to another coordinator (this broker lost its offsets partition):
    /// every held request is told to find the coordinator again.
    pub fn unload(&mut self, now: u64, broker: i32) -> Vec<Effect> {
        let mut out = Vec::new();
        let err = || BrokerError::NotCoordinator { group: self.id.clone(), broker };
        for m in &mut self.members {
            if let Some(w) = m.join_waiter.take() {
                out.push(Effect::Join(w, Err(err())));
            }
            if let Some(w) = m.sync_waiter.take() {
                out.push(Effect::Sync(w, Err(err())));
            }
        }
        self.set_state(GroupState::Dead, now);
        out
    }

    /// For listings.
    pub fn overview(&self) -> GroupOverview {
        GroupOverview {
            group_id: self.id.clone(),
            protocol_type: self.protocol_type.clone(),
            state: self.state.name().to_string(),
        }
    }

    /// For `consumer-groups --describe`.
    pub fn describe(&self) -> GroupDescription {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state.name().to_string(),
            protocol_type: self.protocol_type.clone(),
            protocol: protocol.clone(),
            generation_id: self.generation,
            leader: self.leader.clone().unwrap_or_default(),
            members: self
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Time passes: join phases end, silent members are removed.
    pub fn tick(&mut self, now: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        while let Some(i) = self.members.iter().position(|m| {
            m.join_waiter.is_none()
                && m.sync_waiter.is_none()
                && now >= m.last_seen + m.session_timeout_ms.max(0) as u64
        }) {
            self.remove_member(now, i, &mut out);
        }
        self.maybe_complete_join(now, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_what_is_below_the_high_watermark_and_is_never_negative() {
        assert_eq!(lag(100, 40), 60);
        assert_eq!(lag(100, 100), 0);
        // A commit past the high watermark (the log was truncated under it) is no lag.
        assert_eq!(lag(100, 130), 0);
    }

    const DELAY: u64 = 3_000;

    fn rules() -> GroupRules {
        GroupRules {
            initial_rebalance_delay_ms: DELAY,
            offsets_retention_ms: 60_000,
            ..GroupRules::default()
        }
    }

    fn join(member: &str, new_id: &str) -> Join {
        Join {
            member_id: member.into(),
            new_member_id: new_id.into(),
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), new_id.as_bytes().to_vec())],
        }
    }

    fn joins(effects: &[Effect]) -> Vec<(Waiter, JoinResult)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Join(w, Ok(r)) => Some((*w, r.clone())),
                _ => None,
            })
            .collect()
    }

    /// Three members join at t = 0, 1 s and 2.5 s with a 3 s delay: the first window ends
    /// at 3 s with newcomers, so one more delay; the second ends at 6 s with none: one
    /// rebalance, generation 1, all three in it.
    #[test]
    fn members_joining_within_the_initial_delay_rebalance_once() {
        let mut g = Group::new("g", rules(), 0);
        assert!(joins(&g.join(0, 1, join("", "a"))).is_empty());
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert!(joins(&g.join(1_000, 2, join("", "b"))).is_empty());
        assert!(joins(&g.join(2_500, 3, join("", "c"))).is_empty());
        assert!(joins(&g.tick(2_999)).is_empty());
        assert!(joins(&g.tick(3_000)).is_empty(), "newcomers in the first window extend it");
        assert_eq!(g.next_deadline(), Some(6_000));
        assert!(joins(&g.tick(5_999)).is_empty());
        let done = joins(&g.tick(6_000));
        assert_eq!(done.len(), 3);
        assert!(done.iter().all(|(_, r)| r.generation_id == 1 && r.leader == "a" && r.protocol == "range"));
        let leader = done.iter().find(|(w, _)| *w == 1).map(|(_, r)| r.clone()).expect("leader's answer");
        assert_eq!(leader.members.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(), vec!["a", "b", "c"]);
        assert!(done.iter().filter(|(w, _)| *w != 1).all(|(_, r)| r.members.is_empty()));
        assert_eq!(g.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn a_lone_member_waits_one_delay_and_the_delay_never_passes_the_rebalance_timeout() {
        let mut g = Group::new("g", rules(), 0);
        g.join(0, 1, join("", "a"));
        assert_eq!(joins(&g.tick(3_000)).len(), 1, "no newcomer: one delay only");
        // Someone joining every window: extended until the 30 s rebalance timeout, no more.
        let mut g = Group::new("g", rules(), 0);
        g.join(0, 1, join("", "m0"));
        let mut t = 0;
        let mut n = 1u64;
        let finished = loop {
            t += 1_000;
            n += 1;
            let id = format!("m{n}");
            let mut out = g.join(t, n, join("", &id));
            out.extend(g.tick(t));
            if !joins(&out).is_empty() {
                break t;
            }
            assert!(t <= 40_000, "never completed");
        };
        assert_eq!(finished, 30_000);
    }

    fn stable_pair() -> Group {
        let mut g = Group::new("g", rules(), 0);
        g.join(0, 1, join("", "a"));
        g.join(10, 2, join("", "b"));
        g.tick(DELAY);
        let r = g.tick(2 * DELAY);
        assert_eq!(joins(&r).len(), 2);
        let out = g.sync(2 * DELAY, 4, "b", 1, vec![]);
        assert!(out.is_empty(), "a follower waits for the leader");
        let out = g.sync(2 * DELAY, 3, "a", 1, vec![("a".into(), vec![1]), ("b".into(), vec![2])]);
        assert!(out.contains(&Effect::Sync(3, Ok(vec![1]))));
        assert!(out.contains(&Effect::Sync(4, Ok(vec![2]))));
        assert!(out
            .iter()
            .any(|e| matches!(e, Effect::StoreGroup(r) if r.generation == 1 && r.members.len() == 2)));
        assert_eq!(g.state(), GroupState::Stable);
        g
    }

    #[test]
    fn sync_hands_out_the_leaders_assignment_and_heartbeats_check_the_generation() {
        let mut g = stable_pair();
        let t = 2 * DELAY;
        assert_eq!(g.heartbeat(t, "a", 1), Ok(()));
        assert!(matches!(g.heartbeat(t, "a", 0), Err(BrokerError::IllegalGeneration { current: 1, .. })));
        assert!(matches!(g.heartbeat(t, "zz", 1), Err(BrokerError::UnknownMemberId { .. })));
        // A third member: the others hear "rebalance" on their next heartbeat and rejoin.
        assert!(joins(&g.join(t, 5, join("", "c"))).is_empty());
        assert!(matches!(g.heartbeat(t, "b", 1), Err(BrokerError::RebalanceInProgress { .. })));
        assert!(joins(&g.join(t, 6, join("a", ""))).is_empty());
        let done = joins(&g.join(t + 5, 7, join("b", "")));
        assert_eq!(done.len(), 3, "complete as soon as every member rejoined");
        assert!(done.iter().all(|(_, r)| r.generation_id == 2));
    }

    #[test]
    fn a_silent_member_is_removed_after_its_session_timeout_and_a_leaver_at_once() {
        let mut g = stable_pair();
        let t = 2 * DELAY;
        assert_eq!(g.next_deadline(), Some(t + 10_000));
        g.heartbeat(t + 9_000, "a", 1).expect("a alive");
        assert!(g.tick(t + 9_999).is_empty());
        g.tick(t + 10_000);
        assert_eq!(g.member_ids(), vec!["a"], "b said nothing for 10 s");
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        let done = joins(&g.join(t + 10_001, 9, join("a", "")));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1.generation_id, 2);
        // A clean leave empties the group at once.
        g.sync(t + 10_002, 10, "a", 2, vec![("a".into(), vec![])]);
        let (result, effects) = g.leave(t + 10_003, &["a".to_string()]);
        assert_eq!(result, Ok(()));
        assert_eq!(g.state(), GroupState::Empty);
        assert!(effects
            .iter()
            .any(|e| matches!(e, Effect::StoreGroup(r) if r.members.is_empty() && r.generation == 3)));
        assert!(matches!(g.leave(t, &["a".to_string()]).0, Err(BrokerError::UnknownMemberId { .. })));
    }

    #[test]
    fn a_member_that_does_not_rejoin_in_time_is_dropped_from_the_rebalance() {
        let mut g = stable_pair();
        let t = 2 * DELAY;
        g.join(t, 5, join("a", "")); // a rejoins (leader: starts a rebalance); b never does,
                                     // though it keeps heartbeating (a consumer stuck between polls)
        for s in 1..6 {
            assert!(matches!(
                g.heartbeat(t + s * 5_000, "b", 1),
                Err(BrokerError::RebalanceInProgress { .. })
            ));
            assert!(joins(&g.tick(t + s * 5_000)).is_empty());
        }
        assert!(joins(&g.tick(t + 29_999)).is_empty());
        let done = joins(&g.tick(t + 30_000));
        assert_eq!(done.len(), 1);
        assert_eq!(g.member_ids(), vec!["a"]);
    }

    #[test]
    fn commits_are_checked_against_membership_and_generation() {
        let mut g = stable_pair();
        let t = 2 * DELAY;
        let o = |offset| CommitOffset {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: String::new(),
        };
        assert_eq!(g.check_commit(t, "a", 1, &[o(5)]), Ok(vec![Ok(())]));
        g.commit(t, vec![o(5)]);
        assert!(matches!(g.check_commit(t, "a", 0, &[o(6)]), Err(BrokerError::IllegalGeneration { .. })));
        assert!(matches!(g.check_commit(t, "", -1, &[o(6)]), Err(BrokerError::UnknownMemberId { .. })));
        let long = CommitOffset { metadata: "x".repeat(5000), ..o(7) };
        assert!(matches!(
            g.check_commit(t, "a", 1, &[long]).expect("checked")[0],
            Err(BrokerError::OffsetMetadataTooLarge { .. })
        ));
        assert_eq!(
            g.fetch_offsets(Some(&[("t".into(), 0), ("t".into(), 1)]))[..]
                .iter()
                .map(|c| c.offset)
                .collect::<Vec<_>>(),
            vec![5, -1]
        );
        // During a rebalance a member of the current generation may still commit (it is
        // revoking); once the join phase ends the old generation may not.
        g.join(t, 6, join("", "c"));
        assert_eq!(g.check_commit(t, "b", 1, &[o(8)]), Ok(vec![Ok(())]));
    }

    #[test]
    fn offsets_of_an_empty_group_expire_after_retention_counted_from_when_it_emptied() {
        let mut g = stable_pair();
        let t = 2 * DELAY;
        let o = CommitOffset {
            topic: "t".into(),
            partition: 0,
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
        };
        g.commit(t, vec![o]);
        assert!(g.expire_offsets(t + 1_000_000).is_empty(), "a live group's offsets never expire");
        assert_eq!(g.leave(t + 100, &["a".into(), "b".into()]).0, Ok(()));
        assert_eq!(g.state(), GroupState::Empty);
        assert!(g.expire_offsets(t + 100 + 59_999).is_empty());
        let out = g.expire_offsets(t + 100 + 60_000);
        assert_eq!(out, vec![Effect::DeleteOffsets(vec![("t".into(), 0)]), Effect::Gone]);
        assert_eq!(g.state(), GroupState::Dead);
    }

    #[test]
    fn a_deleted_topics_offsets_go_and_an_empty_group_left_with_none_is_gone() {
        let mut g = stable_pair();
        let t = 2 * DELAY;
        g.commit(t, vec![CommitOffset::new("a", 0, 1), CommitOffset::new("b", 0, 2)]);
        assert!(g.drop_topics(t, &["zz".to_string()]).is_empty());
        assert_eq!(g.drop_topics(t, &["a".to_string()]), vec![Effect::DeleteOffsets(vec![("a".into(), 0)])]);
        assert_eq!(g.fetch_offsets(None).len(), 1);
        assert_eq!(g.leave(t, &["a".into(), "b".into()]).0, Ok(()));
        let out = g.drop_topics(t, &["b".to_string()]);
        assert_eq!(out, vec![Effect::DeleteOffsets(vec![("b".into(), 0)]), Effect::Gone]);
        assert_eq!(g.state(), GroupState::Dead);
    }

    /// A `ConsumerProtocolSubscription` v0 of `topics`.
    fn subscription(topics: &[&str]) -> Vec<u8> {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        b.extend_from_slice(&(-1i32).to_be_bytes()); // no user data
        b
    }

    #[test]
    fn offsets_of_topics_no_member_subscribes_to_can_be_deleted() {
        assert_eq!(
            subscribed_topics(&subscription(&["a", "orders"])),
            Some(vec!["a".into(), "orders".into()])
        );
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None, "a count beyond the bytes");
        assert_eq!(subscribed_topics(b"x"), None);

        let mut g = Group::new("g", rules(), 0);
        let mut j = join("", "a");
        j.protocols = vec![("range".into(), subscription(&["orders"]))];
        g.join(0, 1, j);
        g.tick(DELAY);
        let t = 2 * DELAY;
        g.tick(t);
        g.commit(t, vec![CommitOffset::new("orders", 0, 5), CommitOffset::new("old", 0, 7)]);
        let (outcomes, effects) =
            g.delete_offsets(t, &[("orders".into(), 0), ("old".into(), 0), ("old".into(), 9)]);
        assert!(
            matches!(&outcomes[0], Err(BrokerError::GroupSubscribedToTopic { topic, .. }) if topic == "orders")
        );
        assert_eq!(outcomes[1..], [Ok(()), Ok(())], "an offset that is not there is deleted all the same");
        assert_eq!(effects, vec![Effect::DeleteOffsets(vec![("old".into(), 0)])]);
        assert_eq!(g.fetch_offsets(None).len(), 1);
        // Once empty, everything may go, and the group with it.
        let members = g.member_ids();
        assert_eq!(g.leave(t, &members).0, Ok(()));
        let (outcomes, effects) = g.delete_offsets(t, &[("orders".into(), 0)]);
        assert_eq!(outcomes, vec![Ok(())]);
        assert_eq!(effects, vec![Effect::DeleteOffsets(vec![("orders".into(), 0)]), Effect::Gone]);
    }

    #[test]
    fn a_failed_offsets_write_tells_the_client_where_to_go() {
        let moved =
            BrokerError::NotLeaderForPartition { topic: "t".into(), partition: 0, broker: 1, leader: None };
        assert!(matches!(commit_write_error("g", 1, moved), BrokerError::NotCoordinator { broker: 1, .. }));
        let slow = BrokerError::RequestTimedOut { what: "w".into(), timeout_ms: 5 };
        let e = commit_write_error("g", 1, slow);
        assert!(
            matches!(e, BrokerError::CoordinatorNotAvailable { .. }) && e.needs_coordinator_lookup(),
            "{e}"
        );
        let other = BrokerError::MessageTooLarge { size: 2, max: 1 };
        assert_eq!(commit_write_error("g", 1, other.clone()), other);
    }

    #[test]
    fn a_restored_group_carries_on_with_its_members_and_offsets() {
        let g = stable_pair();
        let record = g.record(10);
        let mut offsets = BTreeMap::new();
        offsets.insert(
            ("t".to_string(), 0),
            OffsetRecord { offset: 9, leader_epoch: 1, metadata: "m".into(), commit_timestamp: 5 },
        );
        let mut h = Group::restore("g", rules(), 100, Some(record), offsets);
        assert_eq!(h.state(), GroupState::Stable);
        assert_eq!(h.generation(), 1);
        assert_eq!(h.heartbeat(101, "b", 1), Ok(()));
        assert_eq!(h.sync(101, 1, "b", 1, vec![]), vec![Effect::Sync(1, Ok(vec![2]))]);
        assert_eq!(h.fetch_offsets(None)[0].offset, 9);
    }

    #[test]
    fn joins_that_cannot_be_honoured_say_why() {
        let mut g = Group::new("g", rules(), 0);
        let short = Join { session_timeout_ms: 10, ..join("", "a") };
        assert!(matches!(
            g.join(0, 1, short).as_slice(),
            [Effect::Join(1, Err(BrokerError::InvalidSessionTimeout { .. }))]
        ));
        g.join(0, 2, join("", "a"));
        let other = Join { protocols: vec![("roundrobin".into(), vec![])], ..join("", "b") };
        assert!(matches!(
            g.join(0, 3, other).as_slice(),
            [Effect::Join(3, Err(BrokerError::InconsistentGroupProtocol { .. }))]
        ));
        assert!(matches!(
            g.join(0, 4, join("ghost", "")).as_slice(),
            [Effect::Join(4, Err(BrokerError::UnknownMemberId { .. }))]
        ));
        assert!(matches!(g.delete(0), Err(BrokerError::NonEmptyGroup { members: 1, .. })));
    }
}
