//! The keeper's replicated state: the znode tree and the table of sessions.
//!
//! This is what the transaction log replays and what snapshots hold: applying the same
//! transactions to the same snapshot gives the same state on every server. Liveness (when a
//! session was last heard from) is not here: it is the [`crate::session::SessionTracker`]'s,
//! kept by whoever decides expiry, and restarts from "now" after a recovery as in ZooKeeper.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::KeeperError;
use crate::session::SessionId;
use crate::tree::{Applied, DataTree, DataTreeV1, Op, Txn};

/// A session as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableSession {
    /// Negotiated timeout, ms.
    pub timeout_ms: u32,
    /// The secret a client shows to resume it.
    pub password: [u8; 16],
}

/// Which ensemble member holds a session: the one its client last resumed it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The member's id.
    pub member: u64,
    /// The zxid of the move ([`Op::Claim`], or the session's creation) that made it so.
    pub since: i64,
}

/// Tree plus sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperState {
    /// The znodes.
    pub tree: DataTree,
    /// Live sessions.
    pub sessions: BTreeMap<SessionId, DurableSession>,
    /// The member holding each live session of an ensemble (a standalone server's sessions,
    /// and those from before sessions had owners, have none: any member may write for them
    /// until one claims them).
    pub owners: BTreeMap<SessionId, Owner>,
}

/// The state as snapshots before ACLs hold it (`SLKSNAP1` files, the ensemble's
/// unversioned snapshots): read, then converted with `From`; never written.
#[derive(Debug, Deserialize)]
pub struct KeeperStateV1 {
    tree: DataTreeV1,
    sessions: BTreeMap<SessionId, DurableSession>,
}

impl From<KeeperStateV1> for KeeperState {
    fn from(v1: KeeperStateV1) -> KeeperState {
        KeeperState { tree: v1.tree.into(), sessions: v1.sessions, owners: BTreeMap::new() }
    }
}

/// The state as snapshots before sessions had owners hold it (`SLKSNAP2` files, the
/// ensemble's `SLKS2` snapshots): read, then converted with `From`; never written.
#[derive(Debug, Deserialize)]
pub struct KeeperStateV2 {
    tree: DataTree,
    sessions: BTreeMap<SessionId, DurableSession>,
}

impl From<KeeperStateV2> for KeeperState {
    fn from(v2: KeeperStateV2) -> KeeperState {
        KeeperState { tree: v2.tree, sessions: v2.sessions, owners: BTreeMap::new() }
    }
}

impl KeeperState {
    /// An empty tree and no sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one transaction to the session table and the tree.
    pub fn apply(&mut self, txn: &Txn) -> Applied {
        let refused = |e: KeeperError| Applied { result: Err(e), changes: Vec::new() };
        // A client's write through a member: refused if the session has moved away from it
        // (ZooKeeper's leader refuses it the same way, before proposing). Without this, a
        // write the client gave up on (its connection lost) could be applied after the writes
        // it made since through another member.
        let (via, op) = match &txn.op {
            Op::Via { member, op } => (Some(*member), op.as_ref()),
            op => (None, op),
        };
        if let (Some(via), Some(owner)) = (via, self.owners.get(&txn.session)) {
            if owner.member != via && self.sessions.contains_key(&txn.session) {
                return refused(KeeperError::SessionMoved { session: txn.session, owner: owner.member, via });
            }
        }
        match op {
            Op::CreateSession { timeout_ms, password } => {
                self.sessions
                    .insert(txn.session, DurableSession { timeout_ms: *timeout_ms, password: *password });
                if let Some(member) = via {
                    self.owners.insert(txn.session, Owner { member, since: txn.zxid });
                }
            }
            Op::CloseSession if via.is_none() || self.sessions.contains_key(&txn.session) => {
                self.sessions.remove(&txn.session);
                self.owners.remove(&txn.session);
            }
            Op::Claim { member, after } if self.sessions.contains_key(&txn.session) => {
                let since = self.owners.get(&txn.session).map(|o| o.since).unwrap_or(0);
                if let Some(after) = after {
                    if *after != since {
                        let owner = self.owners.get(&txn.session).map(|o| o.member).unwrap_or(0);
                        return refused(KeeperError::SessionMoved {
                            session: txn.session,
                            owner,
                            via: *member,
                        });
                    }
                }
                self.owners.insert(txn.session, Owner { member: *member, since: txn.zxid });
            }
            // A write of a session that has ended is refused, as ZooKeeper's leader refuses
            // it before proposing. It can reach the log: a member that had not applied the
            // session's close yet let the client resume it and proposed its write. Applied,
            // an ephemeral would outlive its session for good (found by the nemesis's
            // directory workload: a second `create` of a client's ephemeral succeeded right
            // after its session was closed). Session 0 is the servers' own.
            _ if txn.session != 0 && !self.sessions.contains_key(&txn.session) => {
                return Applied {
                    result: Err(KeeperError::SessionExpired { session: txn.session }),
                    changes: Vec::new(),
                };
            }
            _ => {}
        }
        self.tree.apply_op(txn, op)
    }

    /// Call after deserializing a snapshot.
    pub fn rebuild_index(&mut self) {
        self.tree.rebuild_index();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::CreateMode;

    #[test]
    fn sessions_are_recorded_and_closing_one_deletes_its_ephemerals() {
        let mut s = KeeperState::new();
        let txn = |zxid, session, op| Txn { zxid, time_ms: 0, session, op };
        s.apply(&txn(1, 9, Op::CreateSession { timeout_ms: 4000, password: [1; 16] }));
        s.apply(&txn(2, 9, Op::Create { path: "/e".into(), data: vec![], mode: CreateMode::Ephemeral }));
        assert_eq!(s.sessions.get(&9).map(|d| d.timeout_ms), Some(4000));
        s.apply(&txn(3, 9, Op::CloseSession));
        assert!(s.sessions.is_empty());
        assert_eq!(s.tree.exists("/e"), Ok(None));
    }

    fn via(member: u64, op: Op) -> Op {
        Op::Via { member, op: Box::new(op) }
    }

    fn set(v: &str) -> Op {
        Op::SetData { path: "/x".into(), data: v.as_bytes().to_vec(), version: -1 }
    }

    #[test]
    fn a_write_left_behind_on_the_member_a_session_moved_from_is_refused_and_changes_nothing() {
        let mut s = KeeperState::new();
        let txn = |zxid, op| Txn { zxid, time_ms: 0, session: 9, op };
        s.apply(&txn(1, via(1, Op::CreateSession { timeout_ms: 4000, password: [1; 16] })));
        assert_eq!(s.owners.get(&9), Some(&Owner { member: 1, since: 1 }));
        let created = s.apply(&txn(
            2,
            via(1, Op::Create { path: "/x".into(), data: vec![], mode: CreateMode::Persistent }),
        ));
        assert!(created.result.is_ok(), "{created:?}");
        // The client moves to member 2 and writes there; then its old write through 1 lands.
        assert!(s.apply(&txn(3, Op::Claim { member: 2, after: None })).result.is_ok());
        assert!(s.apply(&txn(4, via(2, set("new")))).result.is_ok());
        let stale = s.apply(&txn(5, via(1, set("old"))));
        assert_eq!(stale.result, Err(KeeperError::SessionMoved { session: 9, owner: 2, via: 1 }));
        assert!(stale.changes.is_empty());
        assert_eq!(s.tree.get("/x").map(|(d, _)| d.to_vec()), Ok(b"new".to_vec()));
        // Nor does a close through the old member end the session.
        let close = s.apply(&txn(6, via(1, Op::CloseSession)));
        assert_eq!(close.result.map_err(|e| e.code()), Err(crate::ErrorCode::SessionMoved));
        assert!(s.sessions.contains_key(&9));
        // Through its owner it does, and the owner goes with the session.
        assert!(s.apply(&txn(7, via(2, Op::CloseSession))).result.is_ok());
        assert!(s.sessions.is_empty() && s.owners.is_empty());
    }

    #[test]
    fn a_claim_made_on_a_stale_view_does_not_undo_a_later_move() {
        let mut s = KeeperState::new();
        let txn = |zxid, op| Txn { zxid, time_ms: 0, session: 9, op };
        s.apply(&txn(1, via(1, Op::CreateSession { timeout_ms: 4000, password: [1; 16] })));
        // Member 3 resumed the session while it knew of the move at zxid 1, could not claim
        // it then; member 2 claimed it since (zxid 2). 3's late claim is refused.
        assert!(s.apply(&txn(2, Op::Claim { member: 2, after: None })).result.is_ok());
        let late = s.apply(&txn(3, Op::Claim { member: 3, after: Some(1) }));
        assert_eq!(late.result, Err(KeeperError::SessionMoved { session: 9, owner: 2, via: 3 }));
        assert_eq!(s.owners.get(&9), Some(&Owner { member: 2, since: 2 }));
        // One made on the current view holds.
        assert!(s.apply(&txn(4, Op::Claim { member: 3, after: Some(2) })).result.is_ok());
        assert_eq!(s.owners.get(&9), Some(&Owner { member: 3, since: 4 }));
    }

    #[test]
    fn sessions_without_an_owner_take_writes_from_any_member_and_claims_of_ended_ones_fail() {
        let mut s = KeeperState::new();
        let txn = |zxid, op| Txn { zxid, time_ms: 0, session: 9, op };
        // Created before owners existed (or by a standalone server): no owner.
        s.apply(&txn(1, Op::CreateSession { timeout_ms: 4000, password: [1; 16] }));
        let created = s.apply(&txn(
            2,
            via(3, Op::Create { path: "/x".into(), data: vec![], mode: CreateMode::Persistent }),
        ));
        assert!(created.result.is_ok(), "{created:?}");
        assert!(s.apply(&txn(3, via(1, set("a")))).result.is_ok());
        s.apply(&txn(4, Op::CloseSession));
        let claim = s.apply(&txn(5, Op::Claim { member: 2, after: None }));
        assert_eq!(claim.result, Err(KeeperError::SessionExpired { session: 9 }));
        assert!(s.owners.is_empty());
    }
}
