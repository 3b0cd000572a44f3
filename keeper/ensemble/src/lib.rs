//! `sluice-ensemble`: a keeper's durable state — the standalone store in `dataDir`
//! ([`store`]) and the ensemble, the keeper's transactions replicated by Raft (openraft) over
//! `sluice-peer/2` links. Below the keeper's actors, which drive it.
//!
//! - The log ([`log_store`]) and snapshots ([`state_machine`]) live in `dataDir/raft`.
//! - The state machine is the standalone keeper's [`sluice_keeper_core::KeeperState`]; a
//!   transaction's zxid is its Raft log index, so zxids only grow, across leaders too.
//! - Any member takes clients. Writes (and `sync`) go to the leader ([`Ensemble::propose`],
//!   [`Ensemble::read_index`]): the leader proposes them itself, any other member forwards
//!   them. The reply waits until the *connected* member has applied the write, so the
//!   client's next read there sees it. Reads are answered by the connected member.
//! - Sessions: the member a client is connected to records that it heard from it and tells
//!   the leader every half tick ([`Ensemble::touch`]); the leader decides expiry and commits
//!   it as a `CloseSession` transaction.
//! - Without a quorum, a write fails within `syncLimit × tickTime` (and never later than the
//!   session timeout) with [`KeeperError::NoQuorum`].

pub mod liveness;
pub mod log_store;
pub mod peer;
pub mod state_machine;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, ServerState};
use sluice_keeper_core::{KeeperError, OpResult};
use sluice_net::{Client, RpcError};
use tokio::time::Instant;

use peer::{PeerProtocol, Propose, ReadIndex, Refusal, Touch};

pub use sluice_proto::peer::{Applied, Batch, BatchApplied, KeeperRaft, Proposal};

/// A member's Raft metrics (openraft's), as [`role_of`] reads them.
pub type Metrics = openraft::RaftMetrics<u64, BasicNode>;

/// What a member's metrics say of its role: whether it leads, and whether it can commit
/// writes — a leader acknowledged by a majority within `lost_after_ms` (or alone in the
/// ensemble), a follower that knows its leader. A leader cut off from its majority learns
/// it only from time passing without acknowledgements, so this is asked on every change
/// and on a heartbeat tick too.
pub fn role_of(m: &Metrics, me: u64, lost_after_ms: u64) -> (bool, bool) {
    let leading = m.state == ServerState::Leader && m.current_leader == Some(me);
    let alone = m.membership_config.voter_ids().count() == 1;
    let quorum = match m.state {
        ServerState::Leader => alone || m.millis_since_quorum_ack.is_some_and(|ms| ms <= lost_after_ms),
        ServerState::Follower => m.current_leader.is_some(),
        _ => false,
    };
    (leading, quorum)
}

/// How a member's log and snapshot files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Off the calling task and synced: the log by a writer thread of its own (group
    /// commit, one `fdatasync` per batch), snapshots on tokio's blocking pool. What a server
    /// runs.
    Background,
    /// In the calling task and never synced: a deterministic simulation's disk. Writes
    /// still reach the files, so a simulated crash (the member dropped, as SIGKILL ends a
    /// process) leaves what a killed process would; nothing waits on another thread, so a
    /// seed replays exactly.
    Simulated,
}

/// Proposals in one entry, at most.
pub const MAX_BATCH: usize = 1024;
/// zxid = log index << ZXID_BATCH_BITS | position in the entry's batch.
pub const ZXID_BATCH_BITS: u32 = 16;

/// The zxid of the `i`-th proposal of entry `index`.
pub fn zxid(index: u64, i: usize) -> i64 {
    ((index << ZXID_BATCH_BITS) | i as u64) as i64
}

/// The largest zxid entry `index` can hold: a server that has applied `index` has seen
/// every zxid up to it.
pub fn zxid_through(index: u64) -> i64 {
    (((index + 1) << ZXID_BATCH_BITS) - 1) as i64
}

/// Proposals waiting for the leader's batcher, each with where its answer goes.
type Waiting = (Proposal, tokio::sync::oneshot::Sender<Result<(u64, Applied), Refusal>>);

/// The leader's batcher: takes proposals as they come and hands them to Raft in batches,
/// at most [`IN_FLIGHT`] entries at a time; whatever arrives while those are committing
/// goes into the next entry.
async fn batcher(
    raft: Raft<KeeperRaft>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Waiting>,
    stalled_after: Duration,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let (proposals, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            // A write proposed by a leader that lost its leadership before the entry
            // committed may never be answered by Raft, even when this member leads again
            // later (found by the nemesis: tests/tests/nemesis.rs, keeper seeds 5, 7 and
            // 9). After the write timeout every waiter has given up (their deadlines are no
            // later), so the wait ends there and the permit goes back: such writes cannot
            // stall every later one. The entry itself may still commit and be applied.
            let Ok(outcome) = tokio::time::timeout(stalled_after, raft.client_write(Batch(proposals))).await
            else {
                tracing::warn!(
                    after_ms = stalled_after.as_millis() as u64,
                    "a write has not committed; no longer holding the batcher for it"
                );
                return;
            };
            for (i, reply) in replies.into_iter().enumerate() {
                let answer = match &outcome {
                    Ok(r) => Ok((r.log_id.index, Applied(r.data.0.get(i).cloned()))),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                        Err(Refusal::NotLeader { leader: f.leader_id })
                    }
                    Err(e) => Err(Refusal::Failed(KeeperError::SystemError { what: e.to_string() })),
                };
                let _ = reply.send(answer);
            }
            drop(permit);
        });
    }
}

/// Entries the batcher has in Raft at once.
const IN_FLIGHT: usize = 2;

/// Ensemble settings (from `server.N`, `myid` and the timing keys).
#[derive(Debug, Clone)]
pub struct EnsembleSettings {
    /// This member's id.
    pub my_id: u64,
    /// Every member: id → peer address (`host:port`).
    pub members: BTreeMap<u64, String>,
    /// Raft heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Election timeout t, ms. A follower that hears no leader waits out the leader's lease
    /// (openraft: the maximum election timeout, 1.5 t) and then a random time in [t, 1.5 t)
    /// before it stands: a dead leader is replaced 2.5 to 3 t after its last heartbeat.
    pub election_timeout_ms: u64,
    /// How long a write waits for a quorum (`syncLimit × tickTime`).
    pub write_timeout: Duration,
    /// How long installing a snapshot on a member may take (`initLimit × tickTime`).
    pub install_timeout: Duration,
}

impl EnsembleSettings {
    /// The openraft configuration these settings mean.
    pub fn raft_config(&self, snap_count: u64) -> Result<openraft::Config, Box<openraft::ConfigError>> {
        let config = openraft::Config {
            cluster_name: "sluice-keeper".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms * 3 / 2,
            install_snapshot_timeout: self.install_timeout.as_millis() as u64,
            // snapCount counts transactions, as ZooKeeper's: the database actor triggers the
            // snapshots (an entry holds a batch of up to MAX_BATCH of them).
            snapshot_policy: openraft::SnapshotPolicy::Never,
            // Entries kept behind a snapshot, so a member a little behind catches up by log.
            max_in_snapshot_log_to_keep: (snap_count / 10).clamp(100, 10_000),
            // Well under the peer link's 16 MiB frame.
            snapshot_max_chunk_size: 4 * 1024 * 1024,
            ..Default::default()
        };
        config.validate().map_err(Box::new)
    }
}

/// A member's handle on the ensemble (cheap to clone).
#[derive(Clone)]
pub struct Ensemble {
    /// This member's id.
    pub my_id: u64,
    /// The Raft node.
    pub raft: Raft<KeeperRaft>,
    peers: Arc<Client<PeerProtocol>>,
    members: Arc<BTreeMap<u64, String>>,
    batcher: tokio::sync::mpsc::UnboundedSender<Waiting>,
}

impl std::fmt::Debug for Ensemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ensemble").field("my_id", &self.my_id).finish_non_exhaustive()
    }
}

/// Proposes on this member as the leader (through its batcher); waits for the commit
/// until `deadline`.
pub(crate) async fn write_as_leader(
    batcher: &tokio::sync::mpsc::UnboundedSender<Waiting>,
    mut p: Proposal,
    deadline: Instant,
) -> Result<(u64, Applied), Refusal> {
    // The leader's own span (its `propose`, or its `rpc` span for a forwarded proposal) is
    // what the members' replication and apply of the entry hang under.
    if let Some(here) = sluice_net::trace::current() {
        p.trace = Some(here);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if batcher.send((p, tx)).is_err() {
        return Err(Refusal::Failed(KeeperError::SystemError { what: "the member is stopping".into() }));
    }
    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => {
            Err(Refusal::Failed(KeeperError::SystemError { what: "the member is stopping".into() }))
        }
        Err(_) => Err(Refusal::Failed(KeeperError::NoQuorum {
            what: "the leader could not reach a majority of the ensemble in time".into(),
        })),
    }
}

/// A linearizable read index from the leader (leadership confirmed by a quorum).
pub(crate) async fn read_index_as_leader(raft: &Raft<KeeperRaft>, deadline: Instant) -> Result<u64, Refusal> {
    match tokio::time::timeout_at(deadline, raft.ensure_linearizable()).await {
        Ok(Ok(id)) => Ok(id.map(|l| l.index).unwrap_or(0)),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
            Err(Refusal::NotLeader { leader: f.leader_id })
        }
        Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)))) => {
            Err(Refusal::Failed(KeeperError::NoQuorum { what: q.to_string() }))
        }
        Ok(Err(e)) => Err(Refusal::Failed(KeeperError::SystemError { what: e.to_string() })),
        Err(_) => Err(Refusal::Failed(KeeperError::NoQuorum {
            what: "the leader could not confirm its leadership with a majority in time".into(),
        })),
    }
}

fn no_quorum(what: impl Into<String>) -> KeeperError {
    KeeperError::NoQuorum { what: what.into() }
}

impl Ensemble {
    /// A handle on `raft`, reaching the other members through `peers`. Starts the
    /// leader-side batcher on the current runtime; it stops waiting for an entry that has
    /// not committed after `write_timeout` (every write's waiters have given up by then).
    pub fn new(
        my_id: u64,
        raft: Raft<KeeperRaft>,
        peers: Arc<Client<PeerProtocol>>,
        members: BTreeMap<u64, String>,
        write_timeout: Duration,
    ) -> Self {
        let (batcher_tx, batcher_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(batcher(raft.clone(), batcher_rx, write_timeout));
        Ensemble { my_id, raft, peers, members: Arc::new(members), batcher: batcher_tx }
    }

    /// Proposes `p` as the leader (the peer service's side of a forwarded write).
    pub(crate) async fn write_here(&self, p: Proposal, deadline: Instant) -> Result<(u64, Applied), Refusal> {
        write_as_leader(&self.batcher, p, deadline).await
    }

    /// The members: id → peer address.
    pub fn members(&self) -> &BTreeMap<u64, String> {
        &self.members
    }

    /// The leader as this member knows it.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.my_id)
    }

    /// Waits (until `deadline`) for a leader other than `not`, the member that just refused:
    /// after 50 ms it may be named again (this member's knowledge may have been stale).
    async fn next_leader(&self, not: Option<u64>, deadline: Instant) -> Option<u64> {
        let mut rx = self.raft.metrics();
        let same_again = Instant::now() + Duration::from_millis(50);
        loop {
            let leader = rx.borrow_and_update().current_leader;
            if let Some(l) = leader {
                if Some(l) != not || Instant::now() >= same_again {
                    return Some(l);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            let wake = if leader.is_some() { same_again.min(deadline) } else { deadline };
            let _ = tokio::time::timeout_at(wake, rx.changed()).await;
        }
    }

    /// Completes once this member no longer takes `leader` for the leader (it died, or
    /// another won an election): a call to it that has not been answered by then may never be.
    async fn deposed(&self, leader: u64) {
        let mut rx = self.raft.metrics();
        loop {
            if rx.borrow_and_update().current_leader != Some(leader) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Commits `p` through the leader. Returns its log index (= zxid) and result. Fails with
    /// [`KeeperError::NoQuorum`] when no leader commits it by `deadline`, and with
    /// [`KeeperError::ConnectionLoss`] when the leader was deposed or went away while it had
    /// the write (it may have committed: the client decides whether to retry, as after any
    /// ZooKeeper connection loss).
    pub async fn propose(
        &self,
        p: Proposal,
        deadline: Instant,
    ) -> Result<(u64, Result<OpResult, KeeperError>), KeeperError> {
        let mut refused_by = None;
        loop {
            let Some(leader) = self.next_leader(refused_by, deadline).await else {
                return Err(no_quorum(format!(
                    "no leader within the write timeout (members: {})",
                    self.members.keys().map(u64::to_string).collect::<Vec<_>>().join(",")
                )));
            };
            let answer = if leader == self.my_id {
                write_as_leader(&self.batcher, p.clone(), deadline).await
            } else {
                let Some(addr) = self.members.get(&leader) else {
                    return Err(KeeperError::SystemError {
                        what: format!("leader {leader} is not a member"),
                    });
                };
                let call = tokio::time::timeout_at(deadline, self.peers.call(addr, Propose(p.clone())));
                let answered = tokio::select! {
                    answered = call => answered,
                    () = self.deposed(leader) => return Err(KeeperError::ConnectionLoss),
                };
                match answered {
                    Ok(Ok(answer)) => answer,
                    // Never reached the leader: safe to try again.
                    Ok(Err(RpcError::Connect(_))) => Err(Refusal::NotLeader { leader: None }),
                    Ok(Err(e)) => {
                        tracing::debug!(leader, error = %e, "lost the leader while it had a write");
                        return Err(KeeperError::ConnectionLoss);
                    }
                    Err(_) => {
                        return Err(no_quorum("the leader did not commit the write within the write timeout"))
                    }
                }
            };
            match answer {
                Ok((index, Applied(Some(result)))) => return Ok((index, result)),
                Ok((index, Applied(None))) => {
                    return Err(KeeperError::SystemError {
                        what: format!("entry {index} carried no transaction"),
                    })
                }
                Err(Refusal::NotLeader { .. }) => refused_by = Some(leader),
                Err(Refusal::Failed(e)) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(no_quorum("the leader changed and no new one took the write in time"));
            }
        }
    }

    /// A read index from the leader: every write committed before this call is at or below
    /// it. Errors as [`propose`](Self::propose).
    pub async fn read_index(&self, deadline: Instant) -> Result<u64, KeeperError> {
        let mut refused_by = None;
        loop {
            let Some(leader) = self.next_leader(refused_by, deadline).await else {
                return Err(no_quorum("no leader within the write timeout"));
            };
            let answer = if leader == self.my_id {
                read_index_as_leader(&self.raft, deadline).await
            } else {
                let Some(addr) = self.members.get(&leader) else {
                    return Err(KeeperError::SystemError {
                        what: format!("leader {leader} is not a member"),
                    });
                };
                let call = tokio::time::timeout_at(deadline, self.peers.call(addr, ReadIndex));
                let answered = tokio::select! {
                    answered = call => answered,
                    // A read index asks for nothing to change: ask the new leader.
                    () = self.deposed(leader) => Ok(Ok(Err(Refusal::NotLeader { leader: None }))),
                };
                match answered {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) => Err(Refusal::NotLeader { leader: None }),
                    Err(_) => {
                        return Err(no_quorum("the leader gave no read index within the write timeout"))
                    }
                }
            };
            match answer {
                Ok(index) => return Ok(index),
                Err(Refusal::NotLeader { .. }) => refused_by = Some(leader),
                Err(Refusal::Failed(e)) => return Err(e),
            }
        }
    }

    /// Tells the leader these sessions were heard from (best effort: the next round repeats).
    pub async fn touch(&self, sessions: Vec<u64>) {
        let Some(leader) = self.leader() else { return };
        if leader == self.my_id {
            return;
        }
        if let Some(addr) = self.members.get(&leader) {
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.peers.call(addr, Touch(sessions))).await;
        }
    }

    /// Role, term and leader, for status.
    pub fn view(&self) -> (String, u64, Option<u64>) {
        let m = self.raft.metrics();
        let m = m.borrow();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "stopping",
        };
        (role.into(), m.current_term, m.current_leader)
    }

    /// The initial membership.
    pub fn initial_members(&self) -> BTreeMap<u64, BasicNode> {
        self.members.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect()
    }
}
