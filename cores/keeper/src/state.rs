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

/// Tree plus sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperState {
    /// The znodes.
    pub tree: DataTree,
    /// Live sessions.
    pub sessions: BTreeMap<SessionId, DurableSession>,
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
        KeeperState { tree: v1.tree.into(), sessions: v1.sessions }
    }
}

impl KeeperState {
    /// An empty tree and no sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one transaction to the session table and the tree.
    pub fn apply(&mut self, txn: &Txn) -> Applied {
        match &txn.op {
            Op::CreateSession { timeout_ms, password } => {
                self.sessions
                    .insert(txn.session, DurableSession { timeout_ms: *timeout_ms, password: *password });
            }
            Op::CloseSession => {
                self.sessions.remove(&txn.session);
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
        self.tree.apply(txn)
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
}
