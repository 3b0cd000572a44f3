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
