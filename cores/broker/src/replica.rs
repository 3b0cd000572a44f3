//! Follower replication's rules, as pure functions: the leader's view of a partition's
//! replicas ([`ReplicaSet`]) and where a follower truncates before it fetches from a new
//! leader ([`truncation`]).
//!
//! The leader's rules (Kafka's):
//! - The *high watermark* is the smallest log end offset over the in-sync replicas, the
//!   leader's own included ([`crate::partition::high_watermark`]). It never moves backwards
//!   while one leader leads one epoch. An in-sync follower whose log end offset is not known
//!   yet (it has not fetched since the leader took over) holds it where it is.
//! - A follower's log end offset is the offset it fetches from. It is *caught up* at a fetch
//!   that reaches the leader's log end offset; one that reaches the leader's log end offset
//!   as of its previous fetch was caught up at that previous fetch's time.
//! - The ISR *shrinks* by every in-sync follower not caught up within `replica.lag.time.max.ms`,
//!   and *expands* by every other follower whose log end offset reached both the high
//!   watermark and the offset at which this leader epoch began.
//! - An ISR change is a conditional write to the keeper, one at a time. While it is in
//!   flight the high watermark is computed over the *maximal ISR* (the committed ISR and the
//!   proposed one together), as Kafka's AlterPartition does: a shrink does not advance it
//!   before the keeper has the smaller ISR, and a follower being added holds it back at once,
//!   so that whichever ISR the keeper ends up with holds every record below it.
//!
//! The shell carries the decisions out: it feeds appends and fetches in, writes the proposed
//! ISR to the keeper and reports the outcome. Time is the caller's `now_ms`.

use std::collections::BTreeMap;

use crate::partition::high_watermark;

/// A replication rule was broken by the caller's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// The broker is not a follower replica of the partition (not assigned, or the leader
    /// itself).
    #[error("broker {broker} is not a follower replica of this partition")]
    NotAReplica {
        /// The broker that fetched.
        broker: i32,
    },
    /// A follower fetched from beyond the leader's log end: it has records the leader does
    /// not, and must truncate (ask the leader for its epoch's end offset) before fetching.
    #[error(
        "follower {replica} fetched from offset {fetch_offset}, beyond the leader's log end offset \
         {leader_leo}: it must truncate first"
    )]
    AheadOfLeader {
        /// The follower.
        replica: i32,
        /// The offset it fetched from.
        fetch_offset: i64,
        /// The leader's log end offset.
        leader_leo: i64,
    },
    /// A fetch offset below zero.
    #[error("follower {replica} fetched from offset {fetch_offset}: offsets start at 0")]
    InvalidOffset {
        /// The follower.
        replica: i32,
        /// The offset it fetched from.
        fetch_offset: i64,
    },
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset (the offset of its last fetch), -1 until it fetches
    /// from this leader.
    pub log_end_offset: i64,
    /// When it was last caught up with the leader (see the module docs); 0 if never.
    pub last_caught_up_ms: i64,
    last_fetch_ms: i64,
    last_fetch_leader_leo: i64,
}

/// An ISR change the leader wants written to the keeper: the proposed full ISR, leader first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrChange {
    /// In-sync followers fell behind by more than `replica.lag.time.max.ms`.
    Shrink(Vec<i32>),
    /// Followers outside the ISR caught up.
    Expand(Vec<i32>),
}

impl IsrChange {
    /// The proposed ISR.
    pub fn isr(&self) -> &[i32] {
        match self {
            IsrChange::Shrink(isr) | IsrChange::Expand(isr) => isr,
        }
    }

    /// The proposed ISR, taken.
    pub fn into_isr(self) -> Vec<i32> {
        match self {
            IsrChange::Shrink(isr) | IsrChange::Expand(isr) => isr,
        }
    }
}

/// The leader's view of one partition's replicas, for one leader epoch.
#[derive(Debug, Clone)]
pub struct ReplicaSet {
    broker: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    pending: Option<Vec<i32>>,
    leader_leo: i64,
    high_watermark: i64,
    epoch_start_offset: i64,
    followers: BTreeMap<i32, FollowerState>,
}

impl ReplicaSet {
    /// `broker` leads at `leader_epoch`, starting at `leader_leo`; `high_watermark` is what it
    /// knew as a follower (clamped to `leader_leo`; with no other ISR member it is the log
    /// end at once). ISR members get `last_caught_up_ms` =
    /// `now_ms` (Kafka gives them a full lag window after a leader change), other followers 0;
    /// followers' log end offsets start unknown (-1). The followers are `replicas` and the
    /// ISR's members, less `broker`.
    pub fn new(
        broker: i32,
        leader_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        leader_leo: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> Self {
        let mut followers = BTreeMap::new();
        for r in replicas.iter().chain(isr).copied().filter(|r| *r != broker) {
            followers.entry(r).or_insert_with(|| FollowerState {
                log_end_offset: -1,
                last_caught_up_ms: if isr.contains(&r) { now_ms } else { 0 },
                last_fetch_ms: now_ms,
                last_fetch_leader_leo: leader_leo,
            });
        }
        let mut set = ReplicaSet {
            broker,
            leader_epoch,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            pending: None,
            leader_leo,
            high_watermark: high_watermark.min(leader_leo),
            epoch_start_offset: leader_leo,
            followers,
        };
        // A leader alone in the ISR has committed its whole log at once.
        set.advance();
        set
    }

    /// The leader's broker id.
    pub fn broker(&self) -> i32 {
        self.broker
    }

    /// The epoch this leader leads.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The assigned replicas.
    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    /// The assignment changed within this leader epoch (a reassignment added or removed
    /// replicas): a new replica starts as a follower whose position is unknown (it joins the
    /// ISR by [`ReplicaSet::isr_change`] once caught up); a removed one is forgotten unless
    /// it is still in the ISR (the controller takes it out first).
    pub fn set_replicas(&mut self, replicas: &[i32], now_ms: i64) {
        for r in replicas.iter().copied().filter(|r| *r != self.broker) {
            self.followers.entry(r).or_insert(FollowerState {
                log_end_offset: -1,
                last_caught_up_ms: 0,
                last_fetch_ms: now_ms,
                last_fetch_leader_leo: self.leader_leo,
            });
        }
        let isr = &self.isr;
        self.followers.retain(|r, _| replicas.contains(r) || isr.contains(r));
        self.replicas = replicas.to_vec();
    }

    /// The committed ISR, as written in the keeper.
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The leader's log end offset, as last told.
    pub fn leader_leo(&self) -> i64 {
        self.leader_leo
    }

    /// The offset at which this leader epoch began (the leader's log end offset then).
    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    /// What the leader knows of follower `replica`; `None` for the leader or a non-replica.
    pub fn follower(&self, replica: i32) -> Option<&FollowerState> {
        self.followers.get(&replica)
    }

    /// Is an ISR write in flight? The proposed ISR, if so.
    pub fn pending(&self) -> Option<&[i32]> {
        self.pending.as_deref()
    }

    /// The leader appended; its log end offset is now `leader_leo` (a smaller value than
    /// already known is ignored: a leader's log only grows). Returns whether the high
    /// watermark moved.
    pub fn on_append(&mut self, leader_leo: i64) -> bool {
        self.leader_leo = self.leader_leo.max(leader_leo);
        self.advance()
    }

    /// Follower `replica` fetched from `fetch_offset` (its log end offset) while the leader's
    /// log end offset was `leader_leo` (which also updates it, as [`ReplicaSet::on_append`]).
    ///
    /// `last_caught_up_ms` becomes `now_ms` if `fetch_offset` reached the leader's log end
    /// offset, else the previous fetch's time if it reached the leader's log end offset as of
    /// that fetch; it never goes back. Errors: `NotAReplica` for the leader itself or a broker
    /// not assigned; `AheadOfLeader` for a `fetch_offset` beyond the leader's log end (the
    /// follower must truncate first); `InvalidOffset` below 0. On error nothing changes.
    ///
    /// Returns whether the high watermark moved.
    pub fn on_follower_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: i64,
    ) -> Result<bool, ReplicaError> {
        let leader_leo = self.leader_leo.max(leader_leo);
        let Some(f) = self.followers.get_mut(&replica) else {
            return Err(ReplicaError::NotAReplica { broker: replica });
        };
        if fetch_offset < 0 {
            return Err(ReplicaError::InvalidOffset { replica, fetch_offset });
        }
        if fetch_offset > leader_leo {
            return Err(ReplicaError::AheadOfLeader { replica, fetch_offset, leader_leo });
        }
        if fetch_offset >= leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_leo = leader_leo;
        self.leader_leo = leader_leo;
        Ok(self.advance())
    }

    /// An ISR change to propose now, if any, and only while none is in flight.
    ///
    /// `Shrink` drops every in-sync follower not caught up within `lag_max_ms`
    /// (`replica.lag.time.max.ms`: `now_ms - last_caught_up_ms > lag_max_ms`), and any ISR
    /// member that is not a replica. Otherwise `Expand` adds every follower outside the ISR
    /// whose log end offset reached the high watermark and the offset at which this leader
    /// epoch began, and that is caught up by the same lag rule — so a follower that stopped
    /// fetching (dead) is not taken back on the strength of an old position, which would
    /// make the ISR flap between shrink and expansion. The proposal keeps the ISR's order,
    /// the leader first, additions last in assignment order.
    pub fn isr_change(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let followers = || self.isr.iter().copied().filter(|r| *r != self.broker);
        let lagging = |r: &i32| {
            self.followers.get(r).is_none_or(|f| now_ms.saturating_sub(f.last_caught_up_ms) > lag_max_ms)
        };
        if followers().any(|r| lagging(&r)) {
            let mut isr = vec![self.broker];
            isr.extend(followers().filter(|r| !lagging(r)));
            return Some(IsrChange::Shrink(isr));
        }
        let caught_up: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != self.broker && !self.isr.contains(r))
            .filter(|r| {
                self.followers.get(r).is_some_and(|f| {
                    f.log_end_offset >= 0
                        && f.log_end_offset >= self.high_watermark
                        && f.log_end_offset >= self.epoch_start_offset
                        && now_ms.saturating_sub(f.last_caught_up_ms) <= lag_max_ms
                })
            })
            .collect();
        if caught_up.is_empty() {
            return None;
        }
        let mut isr = vec![self.broker];
        isr.extend(followers());
        isr.extend(caught_up);
        Some(IsrChange::Expand(isr))
    }

    /// The shell is writing `proposed` to the keeper: until it answers
    /// ([`ReplicaSet::committed`] or [`ReplicaSet::rejected`]), the high watermark is
    /// computed over the maximal ISR (committed ∪ proposed).
    pub fn propose(&mut self, proposed: Vec<i32>) {
        self.pending = Some(proposed);
    }

    /// The write succeeded: `isr` is now committed (and nothing is in flight). Returns
    /// whether the high watermark moved.
    pub fn committed(&mut self, isr: Vec<i32>) -> bool {
        self.isr = isr;
        self.pending = None;
        self.advance()
    }

    /// The write failed and *did not happen*: drop the proposal; [`ReplicaSet::isr_change`]
    /// may propose again. Only for a definite no — the keeper refused the only attempt (a
    /// version conflict, an ineligible replica). When the outcome is unknown (the connection
    /// dropped, or a conflict answered a *retried* write, whose earlier attempt may have been
    /// applied) keep the proposal instead, as Kafka does, until the controller's ISR arrives
    /// ([`ReplicaSet::set_isr`]): if the write did happen, the keeper's ISR holds followers
    /// that a high watermark over the old ISR would no longer wait for.
    pub fn rejected(&mut self) {
        self.pending = None;
    }

    /// The controller published a new ISR for this leader epoch (it removed a dead follower,
    /// or it is the outcome of this leader's own write): adopt it and drop any proposal.
    /// Returns whether the high watermark moved.
    ///
    /// Only for an ISR *newer* than the leader knows (by the state's version), counting the
    /// version its own committed write produced: a state published before that write, arriving
    /// after it, would drop a newer proposal the keeper may be applying — and the high
    /// watermark would stop waiting for a follower the keeper's ISR then holds.
    pub fn set_isr(&mut self, isr: Vec<i32>) -> bool {
        self.committed(isr)
    }

    fn follower_leo(&self, replica: i32) -> i64 {
        self.followers.get(&replica).map_or(-1, |f| f.log_end_offset)
    }

    /// Recomputes the high watermark over the maximal ISR; it only moves forwards.
    fn advance(&mut self) -> bool {
        let members =
            self.isr.iter().chain(self.pending.iter().flatten()).copied().filter(|r| *r != self.broker);
        let hw = high_watermark(self.leader_leo, members.map(|r| self.follower_leo(r)));
        if hw > self.high_watermark {
            self.high_watermark = hw;
            true
        } else {
            false
        }
    }
}

/// What a leader makes of the partition state it finds after its conditional ISR write
/// failed on the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrConflict {
    /// The keeper holds exactly the proposal at this leader's epoch: an earlier attempt, whose
    /// answer was lost, committed it ([`ReplicaSet::committed`]).
    AlreadyWritten,
    /// Someone (the controller) changed the ISR at this leader's epoch: drop the proposal
    /// and adopt theirs ([`ReplicaSet::rejected`], then [`ReplicaSet::set_isr`]).
    Adopt,
    /// Another leader or epoch (or no state): this leader is being replaced; drop the
    /// proposal and wait for the controller's update.
    Superseded,
}

/// Classifies the state found after a failed ISR write by `broker` leading at
/// `leader_epoch`, which proposed `proposed`. `current` is `(leader, leader epoch, ISR)` as
/// the keeper holds it, if the state exists.
pub fn isr_conflict(
    broker: i32,
    leader_epoch: i32,
    proposed: &[i32],
    current: Option<(i32, i32, &[i32])>,
) -> IsrConflict {
    match current {
        Some((leader, epoch, isr)) if leader == broker && epoch == leader_epoch => {
            if isr == proposed {
                IsrConflict::AlreadyWritten
            } else {
                IsrConflict::Adopt
            }
        }
        _ => IsrConflict::Superseded,
    }
}

/// One round of a follower's truncation decision: where to truncate, and whether that is
/// final or the follower must ask the leader again (with its latest epoch after truncating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Truncate the log to this offset (its new log end offset); never above the log end.
    pub offset: i64,
    /// `false`: the follower does not have the epoch the leader answered with; truncate to
    /// `offset`, then ask the leader about the (new) latest local epoch and decide again.
    pub complete: bool,
}

/// Where a follower truncates before fetching from a new leader (Kafka KIP-101/279), one
/// round of it; see [`truncation_offset`] for the rules.
///
/// When the leader answers with an epoch the follower does not have (it has an earlier one,
/// `e'`), the end of `e'` here is only an upper bound: the leader's `e'` may end sooner. The
/// follower truncates there and asks again (`complete: false`), as Kafka does; one round
/// would keep records of `e'` where the leader has others.
pub fn truncation(
    local_leo: i64,
    local_hw: i64,
    local_latest_epoch: Option<i32>,
    leader_answer: Option<(i32, i64)>,
    local_end_for: impl Fn(i32) -> Option<(i32, i64)>,
) -> Truncation {
    let done = |offset: i64| Truncation { offset: offset.clamp(0, local_leo.max(0)), complete: true };
    let Some(latest) = local_latest_epoch else {
        // No epoch information: nothing to check on an empty log; else the pre-KIP-101 rule.
        return done(if local_leo > 0 { local_hw } else { local_leo });
    };
    let Some((epoch, end)) = leader_answer else {
        // The leader has no epoch at or below ours.
        return done(local_hw);
    };
    if epoch == latest {
        return done(end.min(local_leo));
    }
    if epoch > latest {
        // Not a valid answer (the leader answers with the latest epoch at or below the one
        // asked about): trust only what was committed.
        return done(local_hw);
    }
    match local_end_for(epoch) {
        Some((local_epoch, local_end)) if local_epoch == epoch => done(end.min(local_end)),
        Some((_, local_end)) => {
            let t = done(end.min(local_end));
            Truncation { complete: false, ..t }
        }
        None => done(end.min(local_hw)),
    }
}

/// Where a follower truncates before fetching from a new leader (Kafka KIP-101/279).
/// `leader_answer` is the leader's OffsetsForLeaderEpoch reply for the follower's latest
/// epoch: `Some((epoch, end_offset))` (its latest epoch at or below the one asked about,
/// and where that epoch ends in its log), or `None` (the leader does not know the epoch).
/// `local_end_for` answers the same question from the follower's own epoch cache.
/// `local_leo`, `local_hw`: the follower's log end offset and high watermark.
///
/// - No local epoch: an empty log stays; a non-empty one goes to `local_hw` (the pre-KIP-101
///   rule).
/// - The leader does not know the epoch: `local_hw`.
/// - The leader has the follower's latest epoch, ending at `o`: `min(o, local_leo)`.
/// - The leader's latest epoch at or below it is an earlier `e`, ending at `o`:
///   `min(o, the follower's end of e)`, or `min(o, local_hw)` if the follower has no epoch at
///   or below `e`. If the follower has an earlier epoch than `e` but not `e` itself, this is
///   one round of several ([`truncation`] says so; truncate and ask again).
///
/// Never above `local_leo`, never below 0.
pub fn truncation_offset(
    local_leo: i64,
    local_hw: i64,
    local_latest_epoch: Option<i32>,
    leader_answer: Option<(i32, i64)>,
    local_end_for: impl Fn(i32) -> Option<(i32, i64)>,
) -> i64 {
    truncation(local_leo, local_hw, local_latest_epoch, leader_answer, local_end_for).offset
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broker 1 leads epoch 5 of replicas [1, 2, 3] with ISR [1, 2, 3], LEO 10, HW 4, at t=1000.
    fn leader() -> ReplicaSet {
        ReplicaSet::new(1, 5, &[1, 2, 3], &[1, 2, 3], 10, 4, 1000)
    }

    #[test]
    fn a_new_leader_gives_isr_followers_a_lag_window_and_knows_no_follower_offset() {
        // Step 1: replicas [1, 2, 3], ISR [1, 2]: 3 is out of sync.
        let rs = ReplicaSet::new(1, 5, &[1, 2, 3], &[1, 2], 10, 4, 1000);
        assert_eq!((rs.leader_epoch(), rs.isr(), rs.high_watermark()), (5, &[1, 2][..], 4));
        assert_eq!(rs.epoch_start_offset(), 10);
        // Step 2: the in-sync follower was "caught up" now; the other never.
        let f2 = rs.follower(2).expect("a follower");
        assert_eq!((f2.log_end_offset, f2.last_caught_up_ms), (-1, 1000));
        let f3 = rs.follower(3).expect("a follower");
        assert_eq!((f3.log_end_offset, f3.last_caught_up_ms), (-1, 0));
        // Step 3: the leader is not its own follower; nothing is in flight.
        assert!(rs.follower(1).is_none());
        assert!(rs.pending().is_none());
        // Step 4: a high watermark above the log end is clamped to it.
        assert_eq!(ReplicaSet::new(1, 0, &[1], &[1], 3, 7, 0).high_watermark(), 3);
        // Step 5: a leader alone in the ISR has committed its whole log (a restart that
        // lost its high watermark does not hide the log from consumers).
        assert_eq!(ReplicaSet::new(1, 0, &[1, 2], &[1], 9, 0, 0).high_watermark(), 9);
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_follower_to_fetch_after_a_leader_change() {
        // Step 1: appends alone do not move it: followers' offsets are unknown.
        let mut rs = leader();
        assert!(!rs.on_append(12));
        assert_eq!(rs.high_watermark(), 4);
        // Step 2: follower 2 fetches from 12 — still held by 3, unknown.
        assert_eq!(rs.on_follower_fetch(2, 12, 12, 1001), Ok(false));
        assert_eq!(rs.high_watermark(), 4);
        // Step 3: follower 3 fetches from 8: the HW is the slowest ISR member, 8.
        assert_eq!(rs.on_follower_fetch(3, 8, 12, 1002), Ok(true));
        assert_eq!(rs.high_watermark(), 8);
        // Step 4: 3 catches up: the HW is the leader's LEO.
        assert_eq!(rs.on_follower_fetch(3, 12, 12, 1003), Ok(true));
        assert_eq!(rs.high_watermark(), 12);
    }

    #[test]
    fn the_high_watermark_never_moves_backwards() {
        // Step 1: both followers at 10 — HW 10.
        let mut rs = leader();
        rs.on_follower_fetch(2, 10, 10, 1001).expect("fetch");
        rs.on_follower_fetch(3, 10, 10, 1001).expect("fetch");
        assert_eq!(rs.high_watermark(), 10);
        // Step 2: a follower reporting less (a restarted one that truncated) does not lower it.
        assert_eq!(rs.on_follower_fetch(3, 6, 10, 1002), Ok(false));
        assert_eq!(rs.high_watermark(), 10);
        // Step 3: re-adopting the same ISR recomputes over 3's 6: the HW stays at 10.
        assert!(!rs.set_isr(vec![1, 2, 3]));
        assert_eq!(rs.high_watermark(), 10);
    }

    #[test]
    fn followers_outside_the_isr_do_not_hold_the_high_watermark() {
        // Step 1: ISR [1, 2]; 3 is far behind.
        let mut rs = ReplicaSet::new(1, 5, &[1, 2, 3], &[1, 2], 10, 4, 1000);
        rs.on_follower_fetch(3, 0, 10, 1001).expect("fetch");
        // Step 2: 2 catches up: the HW goes to the leader's LEO.
        assert_eq!(rs.on_follower_fetch(2, 10, 10, 1001), Ok(true));
        assert_eq!(rs.high_watermark(), 10);
        // Step 3: with only the leader in the ISR, an append moves it at once.
        let mut alone = ReplicaSet::new(1, 5, &[1, 2], &[1], 10, 4, 1000);
        assert!(alone.on_append(11));
        assert_eq!(alone.high_watermark(), 11);
    }

    #[test]
    fn fetches_from_strangers_from_beyond_the_log_end_or_below_zero_are_errors() {
        let mut rs = leader();
        // Step 1: broker 9 is not a replica; the leader is not its own follower.
        assert_eq!(rs.on_follower_fetch(9, 0, 10, 1001), Err(ReplicaError::NotAReplica { broker: 9 }));
        assert_eq!(rs.on_follower_fetch(1, 0, 10, 1001), Err(ReplicaError::NotAReplica { broker: 1 }));
        // Step 2: a follower ahead of its leader must truncate first.
        assert_eq!(
            rs.on_follower_fetch(2, 11, 10, 1001),
            Err(ReplicaError::AheadOfLeader { replica: 2, fetch_offset: 11, leader_leo: 10 })
        );
        assert_eq!(
            rs.on_follower_fetch(2, -1, 10, 1001),
            Err(ReplicaError::InvalidOffset { replica: 2, fetch_offset: -1 })
        );
        // Step 3: nothing changed.
        assert_eq!(rs.follower(2).map(|f| f.log_end_offset), Some(-1));
    }

    #[test]
    fn last_caught_up_follows_kafkas_two_rules() {
        let mut rs = leader();
        // Step 1: a fetch reaching the leader's LEO is caught up now.
        rs.on_follower_fetch(2, 10, 10, 1100).expect("fetch");
        assert_eq!(rs.follower(2).map(|f| f.last_caught_up_ms), Some(1100));
        // Step 2: the leader appends to 15; 2 fetches from 10 (< 15) at 1200: 10 reaches the
        // leader's LEO at 2's previous fetch (10), so 2 was caught up then, at 1100.
        rs.on_append(15);
        rs.on_follower_fetch(2, 10, 15, 1200).expect("fetch");
        assert_eq!(rs.follower(2).map(|f| f.last_caught_up_ms), Some(1100));
        // Step 3: appends to 20; 2 fetches from 15 at 1300: it reached 15, the leader's LEO at
        // its previous fetch (1200) — caught up at 1200.
        rs.on_append(20);
        rs.on_follower_fetch(2, 15, 20, 1300).expect("fetch");
        assert_eq!(rs.follower(2).map(|f| f.last_caught_up_ms), Some(1200));
        // Step 4: appends to 30; 2 fetches from 18 (< 20, its previous view): no change.
        rs.on_append(30);
        rs.on_follower_fetch(2, 18, 30, 1400).expect("fetch");
        assert_eq!(rs.follower(2).map(|f| f.last_caught_up_ms), Some(1200));
        // Step 5: the first fetch after a leader change counts against the leader's LEO when
        // it took over (10), at the takeover time (1000) — an out-of-sync follower (0 before).
        let mut rs = ReplicaSet::new(1, 5, &[1, 2, 3], &[1, 2], 10, 4, 1000);
        rs.on_append(12);
        rs.on_follower_fetch(3, 10, 12, 1050).expect("fetch");
        assert_eq!(rs.follower(3).map(|f| f.last_caught_up_ms), Some(1000));
    }

    #[test]
    fn lagging_isr_followers_are_shrunk_all_at_once_leader_first() {
        // Step 1: at t=1000 everyone gets a window; 100 ms later nobody lags (100 is not > 100).
        let mut rs = ReplicaSet::new(2, 5, &[1, 2, 3], &[3, 2, 1], 10, 4, 1000);
        assert_eq!(rs.isr_change(1100, 100), None);
        // Step 2: at 1101 both followers lag: one proposal drops both; leader first.
        assert_eq!(rs.isr_change(1101, 100), Some(IsrChange::Shrink(vec![2])));
        // Step 3: follower 1 catches up at 1050: only 3 lags at 1101.
        rs.on_follower_fetch(1, 10, 10, 1050).expect("fetch");
        assert_eq!(rs.isr_change(1101, 100), Some(IsrChange::Shrink(vec![2, 1])));
        // Step 4: no proposal while one is in flight.
        rs.propose(vec![2, 1]);
        assert_eq!(rs.pending(), Some(&[2, 1][..]));
        assert_eq!(rs.isr_change(5000, 100), None);
    }

    #[test]
    fn a_follower_joins_once_it_reaches_the_high_watermark_and_the_epochs_start() {
        // Step 1: ISR [1]; leader at 10 (the epoch started there), HW 10 since it is alone.
        let mut rs = ReplicaSet::new(1, 5, &[1, 2, 3], &[1], 10, 10, 1000);
        rs.on_append(14);
        assert_eq!(rs.high_watermark(), 14);
        // Step 2: 2 at 12: below the HW (14) — not yet.
        rs.on_follower_fetch(2, 12, 14, 1001).expect("fetch");
        assert_eq!(rs.isr_change(1001, 100), None);
        // Step 3: 2 and 3 at 14: both at once, in assignment order.
        rs.on_follower_fetch(2, 14, 14, 1002).expect("fetch");
        rs.on_follower_fetch(3, 14, 14, 1002).expect("fetch");
        assert_eq!(rs.isr_change(1002, 100), Some(IsrChange::Expand(vec![1, 2, 3])));
        // Step 4: the epoch's start counts too. A new leader at LEO 10 (where its epoch
        // starts) with HW 6, ISR [1, 3]: follower 2 at 8 is past the HW, not at the start.
        let mut rs = ReplicaSet::new(1, 6, &[1, 2, 3], &[1, 3], 10, 6, 1000);
        rs.on_follower_fetch(2, 8, 10, 1001).expect("fetch");
        assert_eq!(rs.high_watermark(), 6, "3 has not fetched: the HW stays");
        assert_eq!(rs.isr_change(1001, 100), None);
        // Step 5: at 10 it joins, after the ISR's members.
        rs.on_follower_fetch(2, 10, 10, 1002).expect("fetch");
        assert_eq!(rs.isr_change(1002, 100), Some(IsrChange::Expand(vec![1, 3, 2])));
    }

    #[test]
    fn a_follower_that_stopped_fetching_is_not_taken_back_on_its_old_position() {
        // Step 1: ISR [1, 2]; 2 fetched up to the log end (10) at t=1000, then died.
        let mut rs = ReplicaSet::new(1, 5, &[1, 2], &[1, 2], 10, 10, 1000);
        rs.on_follower_fetch(2, 10, 10, 1000).expect("fetch");
        // Step 2: past the lag window it is shrunk away...
        assert_eq!(rs.isr_change(1101, 100), Some(IsrChange::Shrink(vec![1])));
        rs.propose(vec![1]);
        rs.committed(vec![1]);
        // Step 3: ...and its old position (at the HW) does not bring it back: no flapping.
        assert_eq!(rs.isr_change(1102, 100), None);
        // Step 4: once it fetches again at the log end, it rejoins.
        rs.on_follower_fetch(2, 10, 10, 5000).expect("fetch");
        assert_eq!(rs.isr_change(5000, 100), Some(IsrChange::Expand(vec![1, 2])));
    }

    #[test]
    fn shrinking_comes_before_expanding() {
        // Step 1: 2 in the ISR lags; 3 outside it caught up.
        let mut rs = ReplicaSet::new(1, 5, &[1, 2, 3], &[1, 2], 10, 10, 1000);
        rs.on_follower_fetch(3, 10, 10, 1150).expect("fetch");
        // Step 2: the shrink is proposed first; the expansion after it is committed.
        assert_eq!(rs.isr_change(1150, 100), Some(IsrChange::Shrink(vec![1])));
        rs.propose(vec![1]);
        rs.committed(vec![1]);
        assert_eq!(rs.isr_change(1150, 100), Some(IsrChange::Expand(vec![1, 3])));
    }

    #[test]
    fn a_pending_shrink_does_not_advance_the_high_watermark_until_committed() {
        // Step 1: ISR [1, 2, 3]: 2 is caught up, 3 stuck at 4. HW 4.
        let mut rs = leader();
        rs.on_follower_fetch(2, 10, 10, 1001).expect("fetch");
        rs.on_follower_fetch(3, 4, 10, 1001).expect("fetch");
        assert_eq!(rs.high_watermark(), 4);
        // Step 2: the leader proposes dropping 3; while the write is in flight, 3 still counts.
        rs.propose(vec![1, 2]);
        assert!(!rs.on_append(11));
        assert_eq!(rs.high_watermark(), 4);
        // Step 3: the keeper has [1, 2]: the HW moves to 10 (2's LEO).
        assert!(rs.committed(vec![1, 2]));
        assert_eq!((rs.isr(), rs.high_watermark(), rs.pending()), (&[1, 2][..], 10, None));
    }

    #[test]
    fn a_pending_expansion_holds_the_high_watermark_back_at_once() {
        // Step 1: ISR [1] alone: appends move the HW; 2 caught up to 12.
        let mut rs = ReplicaSet::new(1, 5, &[1, 2], &[1], 10, 10, 1000);
        rs.on_append(12);
        rs.on_follower_fetch(2, 12, 12, 1001).expect("fetch");
        assert_eq!(rs.isr_change(1001, 100), Some(IsrChange::Expand(vec![1, 2])));
        rs.propose(vec![1, 2]);
        // Step 2: the leader appends: the HW waits for 2 already, though the keeper has not
        // answered — whichever ISR the keeper ends up with has every record below the HW.
        assert!(!rs.on_append(15));
        assert_eq!(rs.high_watermark(), 12);
        // Step 3: 2 fetches 15: the HW moves (maximal ISR [1, 2]).
        assert_eq!(rs.on_follower_fetch(2, 15, 15, 1002), Ok(true));
        assert_eq!(rs.high_watermark(), 15);
    }

    #[test]
    fn a_rejected_write_is_dropped_and_may_be_proposed_again() {
        // Step 1: 3 lags; the leader proposes [1, 2].
        let mut rs = leader();
        rs.on_follower_fetch(2, 10, 10, 1150).expect("fetch");
        let change = rs.isr_change(1200, 100).expect("a shrink");
        assert_eq!(change, IsrChange::Shrink(vec![1, 2]));
        rs.propose(change.into_isr());
        // Step 2: the keeper refuses (conflict): nothing in flight, the committed ISR stands.
        rs.rejected();
        assert_eq!((rs.pending(), rs.isr()), (None, &[1, 2, 3][..]));
        // Step 3: it may be proposed again.
        assert_eq!(rs.isr_change(1201, 100), Some(IsrChange::Shrink(vec![1, 2])));
    }

    #[test]
    fn the_controllers_isr_replaces_the_committed_one_and_any_proposal() {
        // Step 1: 2 caught up to 10, 3 unknown (dead): the HW is held at 4.
        let mut rs = leader();
        rs.on_follower_fetch(2, 10, 10, 1001).expect("fetch");
        rs.propose(vec![1, 2]);
        // Step 2: the controller removed 3 itself (for the same epoch): adopted, the proposal
        // dropped, and the HW moves to 10.
        assert!(rs.set_isr(vec![1, 2]));
        assert_eq!((rs.isr(), rs.pending(), rs.high_watermark()), (&[1, 2][..], None, 10));
    }

    #[test]
    fn a_replica_added_within_the_epoch_follows_unknown_and_joins_the_isr_once_caught_up() {
        // Step 1: leader of [1, 2] at LEO 10, HW 10; a reassignment adds 4.
        let mut rs = ReplicaSet::new(1, 0, &[1, 2], &[1, 2], 10, 10, 0);
        rs.on_follower_fetch(2, 10, 10, 1).expect("fetch");
        assert_eq!(rs.on_follower_fetch(4, 0, 10, 1), Err(ReplicaError::NotAReplica { broker: 4 }));
        rs.set_replicas(&[2, 4, 1], 2);
        assert_eq!(rs.replicas(), &[2, 4, 1][..]);
        assert_eq!(rs.follower(4).map(|f| f.log_end_offset), Some(-1));
        // Step 2: 4 fetching from 0 is behind: not taken into the ISR, the HW does not wait.
        assert_eq!(rs.on_follower_fetch(4, 0, 10, 3), Ok(false));
        assert_eq!(rs.isr_change(3, 100), None);
        // Step 3: caught up, it joins.
        rs.on_follower_fetch(4, 10, 10, 4).expect("fetch");
        assert_eq!(rs.isr_change(4, 100), Some(IsrChange::Expand(vec![1, 2, 4])));
        // Step 4: a replica removed while out of the ISR is forgotten.
        rs.set_replicas(&[1, 2], 5);
        assert!(rs.follower(4).is_none());
    }

    #[test]
    fn an_isr_member_that_is_not_a_replica_is_shrunk_and_holds_the_high_watermark() {
        // Step 1: the controller's ISR names 7, not assigned: its offset is unknown.
        let mut rs = ReplicaSet::new(1, 0, &[1, 2], &[1, 2], 5, 5, 0);
        rs.set_isr(vec![1, 2, 7]);
        rs.on_follower_fetch(2, 6, 6, 1).expect("fetch");
        assert_eq!(rs.on_follower_fetch(7, 6, 6, 1), Err(ReplicaError::NotAReplica { broker: 7 }));
        // Step 2: the HW waits; the leader proposes removing 7 at once.
        assert_eq!(rs.high_watermark(), 5);
        assert_eq!(rs.isr_change(1, 100), Some(IsrChange::Shrink(vec![1, 2])));
    }

    /// A follower's epoch cache: (epoch, start offset), ascending, with its log end offset.
    #[test]
    fn a_failed_isr_write_is_read_as_committed_overruled_or_superseded() {
        // Step 1: broker 1 leads at epoch 4 and proposed [1, 2].
        let proposed = [1, 2];
        // Step 2: the keeper holds exactly that: an earlier attempt's answer was lost.
        assert_eq!(isr_conflict(1, 4, &proposed, Some((1, 4, &[1, 2]))), IsrConflict::AlreadyWritten);
        // Step 3: the controller changed the ISR at the same epoch: adopt it.
        assert_eq!(isr_conflict(1, 4, &proposed, Some((1, 4, &[1]))), IsrConflict::Adopt);
        // Step 4: a new epoch or leader, or no state at all: this leader is on its way out.
        assert_eq!(isr_conflict(1, 4, &proposed, Some((1, 5, &[1, 2]))), IsrConflict::Superseded);
        assert_eq!(isr_conflict(1, 4, &proposed, Some((2, 5, &[2]))), IsrConflict::Superseded);
        assert_eq!(isr_conflict(1, 4, &proposed, None), IsrConflict::Superseded);
    }

    fn end_for(cache: &[(i32, i64)], leo: i64) -> impl Fn(i32) -> Option<(i32, i64)> + '_ {
        move |epoch| {
            let i = cache.iter().rposition(|(e, _)| *e <= epoch)?;
            let end = cache.get(i + 1).map_or(leo, |(_, start)| *start);
            Some((cache[i].0, end))
        }
    }

    #[test]
    fn with_no_epoch_information_an_empty_log_stays_and_a_full_one_goes_to_its_high_watermark() {
        // Step 1: an empty log, no epochs: nothing to truncate.
        assert_eq!(truncation_offset(0, 0, None, None, |_| None), 0);
        // Step 2: records but no epochs (pre-KIP-101 data): back to the high watermark.
        assert_eq!(truncation_offset(10, 6, None, Some((3, 20)), |_| None), 6);
    }

    #[test]
    fn a_leader_that_does_not_know_the_epoch_sends_the_follower_to_its_high_watermark() {
        let cache = [(2, 0), (4, 5)];
        assert_eq!(truncation_offset(10, 3, Some(4), None, end_for(&cache, 10)), 3);
    }

    #[test]
    fn the_same_latest_epoch_truncates_to_where_the_leaders_epoch_ends() {
        let cache = [(2, 0), (4, 5)];
        // Step 1: the leader's epoch 4 ends at 8: the follower's 8..10 diverge.
        assert_eq!(truncation_offset(10, 3, Some(4), Some((4, 8)), end_for(&cache, 10)), 8);
        // Step 2: the leader's epoch 4 goes on past the follower's end: nothing to cut.
        let t = truncation(10, 3, Some(4), Some((4, 12)), end_for(&cache, 10));
        assert_eq!(t, Truncation { offset: 10, complete: true });
    }

    #[test]
    fn an_earlier_epoch_truncates_to_the_smaller_end_of_the_two() {
        // Step 1: follower epochs 2 (0..5) and 4 (5..10); the leader never had 4 — its latest
        // at or below 4 is 2, ending at 7. The follower's 2 ends at 5: truncate to 5.
        let cache = [(2, 0), (4, 5)];
        assert_eq!(truncation_offset(10, 3, Some(4), Some((2, 7)), end_for(&cache, 10)), 5);
        // Step 2: the leader's 2 ends at 4, before the follower's: truncate to 4.
        let t = truncation(10, 3, Some(4), Some((2, 4)), end_for(&cache, 10));
        assert_eq!(t, Truncation { offset: 4, complete: true });
        // Step 3: the follower has no epoch at or below the leader's: its high watermark.
        let cache = [(5, 0)];
        assert_eq!(truncation_offset(10, 3, Some(5), Some((2, 7)), end_for(&cache, 10)), 3);
        // Step 4: never above the follower's own log end.
        assert_eq!(truncation_offset(4, 3, Some(2), Some((2, 9)), end_for(&[(2, 0)], 4)), 4);
    }

    #[test]
    fn an_epoch_the_follower_lacks_takes_another_round() {
        // Step 1: follower: epoch 0 (0..5), epoch 2 (5..8). Leader: epoch 0 (0..3), epoch 1
        // (3..10). Asked about 2, the leader answers (1, 10). The follower has no epoch 1; its
        // latest below is 0, ending at 5 — an upper bound only (the leader's 0 may end sooner).
        let follower = [(0, 0), (2, 5)];
        let t = truncation(8, 0, Some(2), Some((1, 10)), end_for(&follower, 8));
        assert_eq!(t, Truncation { offset: 5, complete: false });
        // Step 2: truncated to 5, its latest epoch is 0; asked about 0 the leader answers
        // (0, 3): truncate to 3, done — offsets 3 and 4 were epoch 1's on the leader.
        let follower = [(0, 0)];
        let t = truncation(5, 0, Some(0), Some((0, 3)), end_for(&follower, 5));
        assert_eq!(t, Truncation { offset: 3, complete: true });
    }

    #[test]
    fn an_answer_for_a_later_epoch_than_asked_is_not_trusted() {
        let cache = [(2, 0)];
        assert_eq!(truncation_offset(10, 3, Some(2), Some((5, 10)), end_for(&cache, 10)), 3);
    }
}
