//! A keeper server's write rules that sit between a client and the replicated state.
//!
//! - [`WriteQueue`]: the standalone server's zxid assignment and durability queue. A write
//!   gets the next zxid when it is submitted, goes to the log writer, and is applied (result,
//!   watches) and answered only once the log is durable through its zxid — in zxid order.
//! - [`check_not_behind`]: a client never goes back in time: a server that has not applied
//!   the newest zxid the client has seen refuses its session.
//! - [`expiry`]: who decides session expiry (in an ensemble, only the leader).
//! - `sync` ([`WriteQueue::sync_barrier`] standalone; in an ensemble the leader's read
//!   index, `sluice_ensemble::zxid_through`): answered once the connected server has
//!   applied every write acknowledged before it, with the zxid the session has then seen.
//!
//! The ensemble's own zxids are Raft log positions (`sluice-ensemble`), and its quorum rule is
//! Raft's (openraft): neither is decided here.

use std::collections::VecDeque;

use crate::error::KeeperError;
use crate::tree::{Op, Txn};

/// Writes given zxids and waiting for the log to be durable through them. `R` is what the
/// shell keeps with each (its reply channel, its start time).
#[derive(Debug)]
pub struct WriteQueue<R> {
    next_zxid: i64,
    pending: VecDeque<(Txn, R)>,
}

impl<R> WriteQueue<R> {
    /// A queue whose first write follows `last_zxid` (the last one recovered).
    pub fn after(last_zxid: i64) -> Self {
        WriteQueue { next_zxid: last_zxid + 1, pending: VecDeque::new() }
    }

    /// The zxid the next write gets. Every write acknowledged so far has a smaller one, so a
    /// `sync` answered once the write submitted now is durable has seen them all.
    pub fn next_zxid(&self) -> i64 {
        self.next_zxid
    }

    /// A standalone `sync`: a no-op write (a version check of `/` at any version) queued
    /// behind every write submitted so far, and the zxid to answer it with once that no-op
    /// is durable and applied. The queue is answered in zxid order, so by then every write
    /// acknowledged before the `sync` has been applied here.
    pub fn sync_barrier(&self) -> (Op, i64) {
        (Op::Check { path: "/".into(), version: -1 }, self.next_zxid)
    }

    /// Writes waiting for durability.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no write is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Gives `op` the next zxid; returns the transaction to hand to the log writer.
    pub fn submit(&mut self, time_ms: i64, session: u64, op: Op, with: R) -> Txn {
        let txn = Txn { zxid: self.next_zxid, time_ms, session, op };
        self.next_zxid += 1;
        self.pending.push_back((txn.clone(), with));
        txn
    }

    /// The log is durable through `upto`: the writes to apply and answer now, in zxid order.
    pub fn durable(&mut self, upto: i64) -> Vec<(Txn, R)> {
        let n = self.pending.iter().take_while(|(t, _)| t.zxid <= upto).count();
        self.pending.drain(..n).collect()
    }

    /// The log writer failed: every waiting write, to be answered with an error.
    pub fn fail_all(&mut self) -> Vec<(Txn, R)> {
        self.pending.drain(..).collect()
    }

    /// The log refused the writes from `zxid` on and kept nothing of them (a full disk):
    /// every waiting write from `zxid` on, to be answered with an error. None of them was
    /// applied, so `zxid` is given out again: the log stays without gaps.
    pub fn refuse_from(&mut self, zxid: i64) -> Vec<(Txn, R)> {
        let kept = self.pending.iter().take_while(|(t, _)| t.zxid < zxid).count();
        let refused = self.pending.drain(kept..).collect();
        self.next_zxid = self.next_zxid.min(zxid);
        refused
    }
}

/// Refuses a session to a client that has seen a newer zxid than this server has applied
/// (`served_zxid`), so that it never reads older state than it already saw (ZooKeeper's
/// "client is ahead of the server" check).
pub fn check_not_behind(client_zxid: i64, served_zxid: i64) -> Result<(), KeeperError> {
    if client_zxid > served_zxid {
        return Err(KeeperError::Behind { client_zxid, server_zxid: served_zxid });
    }
    Ok(())
}

/// What a server does with its sessions' liveness on its tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Expire the sessions whose deadline passed (standalone, or the ensemble's leader).
    Decide,
    /// Tell the leader which sessions this server heard from; expire nothing.
    Report,
}

/// The ensemble, not each server, decides expiry: only its leader does. `ensemble`: this
/// server is a member; `leading`: it leads now.
pub fn expiry(ensemble: bool, leading: bool) -> Expiry {
    if ensemble && !leading {
        Expiry::Report
    } else {
        Expiry::Decide
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> Op {
        Op::Check { path: "/".into(), version: -1 }
    }

    #[test]
    fn writes_get_consecutive_zxids_and_are_released_in_order_once_durable() {
        let mut q = WriteQueue::after(41);
        let a = q.submit(1, 7, op(), "a");
        let b = q.submit(2, 7, op(), "b");
        let c = q.submit(3, 8, op(), "c");
        assert_eq!((a.zxid, b.zxid, c.zxid, q.next_zxid()), (42, 43, 44, 45));
        assert!(q.durable(41).is_empty(), "nothing is durable before its zxid");
        let ready: Vec<_> = q.durable(43).into_iter().map(|(t, r)| (t.zxid, r)).collect();
        assert_eq!(ready, [(42, "a"), (43, "b")]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.fail_all().len(), 1);
        assert!(q.is_empty());
        assert_eq!(q.submit(4, 8, op(), "d").zxid, 45, "zxids are never reused");
    }

    #[test]
    fn writes_the_log_refused_are_answered_and_their_zxids_given_out_again() {
        let mut q = WriteQueue::after(9);
        for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            q.submit(i as i64, 7, op(), name);
        }
        let durable: Vec<_> = q.durable(10).into_iter().map(|(t, r)| (t.zxid, r)).collect();
        assert_eq!(durable, [(10, "a")]);
        // The log kept nothing from 11 on (its disk is full).
        let refused: Vec<_> = q.refuse_from(11).into_iter().map(|(t, r)| (t.zxid, r)).collect();
        assert_eq!(refused, [(11, "b"), (12, "c"), (13, "d")]);
        assert!(q.is_empty());
        assert_eq!(q.submit(9, 7, op(), "e").zxid, 11, "the log stays without gaps");
    }

    #[test]
    fn a_client_that_saw_a_newer_zxid_is_refused() {
        assert_eq!(check_not_behind(10, 10), Ok(()));
        assert_eq!(check_not_behind(-1, 0), Ok(()));
        assert_eq!(check_not_behind(11, 10), Err(KeeperError::Behind { client_zxid: 11, server_zxid: 10 }));
    }

    #[test]
    fn only_a_standalone_server_or_the_leader_decides_expiry() {
        assert_eq!(expiry(false, false), Expiry::Decide);
        assert_eq!(expiry(true, true), Expiry::Decide);
        assert_eq!(expiry(true, false), Expiry::Report);
    }

    #[test]
    fn a_sync_barrier_queues_behind_every_pending_write_and_answers_with_its_own_zxid() {
        let mut q: WriteQueue<&str> = WriteQueue::after(10);
        q.submit(
            0,
            1,
            Op::Create { path: "/a".into(), data: vec![], mode: crate::CreateMode::Persistent },
            "a",
        );
        let (op, zxid) = q.sync_barrier();
        assert_eq!(zxid, 12, "the barrier gets the zxid after the pending write");
        let txn = q.submit(0, 2, op, "sync");
        assert_eq!(txn.zxid, zxid);
        assert_eq!(q.durable(11).into_iter().map(|(_, r)| r).collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(q.durable(12).into_iter().map(|(_, r)| r).collect::<Vec<_>>(), vec!["sync"]);
    }
}
