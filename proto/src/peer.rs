//! `sluice-peer/2`: what keeper ensemble members say to each other over mutually
//! authenticated QUIC. Raft's own RPCs (append entries, vote, install snapshot) plus what a
//! member that is not the leader asks of the leader: commit this proposal, give me a read
//! index (for `sync`), these sessions were heard from. Served on the peer port, which takes
//! node certificates only.
//!
//! The Raft entry types ([`KeeperRaft`]: a [`Batch`] of [`Proposal`]s) are declared here too:
//! they are what `AppendEntries` carries.

use std::io::Cursor;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use sluice_keeper_core::{KeeperError, Op, OpResult};
use sluice_net::TraceContext;

/// A write as the log carries it; the zxid is the entry's index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    /// The session it belongs to.
    pub session: u64,
    /// Wall-clock time at the proposing member, ms (ctime / mtime).
    pub time_ms: i64,
    /// The change.
    pub op: Op,
    /// The trace context of the leader's span that proposed it, when the write is traced:
    /// every member's replication and apply of it join that trace.
    pub trace: Option<TraceContext>,
}

/// What applying one proposal gave (`None`: the entry carried no such proposal).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied(pub Option<Result<OpResult, KeeperError>>);

/// The proposals of one log entry. openraft 0.9 waits for the fsync of each `client_write`
/// before it takes the next, so the leader batches what arrives meanwhile into one entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch(pub Vec<Proposal>);

/// The results of one entry's proposals, in order (empty for Raft's own entries).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchApplied(pub Vec<Result<OpResult, KeeperError>>);

openraft::declare_raft_types!(
    /// The keeper's Raft types.
    pub KeeperRaft:
        D = Batch,
        R = BatchApplied,
);

/// Raft's AppendEntries (also the heartbeat).
#[derive(Debug, Serialize, Deserialize)]
pub struct AppendEntries(pub AppendEntriesRequest<KeeperRaft>);
/// Raft's RequestVote.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestVote(pub VoteRequest<u64>);
/// One chunk of a snapshot.
#[derive(Debug, Serialize, Deserialize)]
pub struct InstallSnapshot(pub InstallSnapshotRequest<KeeperRaft>);
/// A member forwards a client's write to the leader.
#[derive(Debug, Serialize, Deserialize)]
pub struct Propose(pub Proposal);
/// A member asks the leader for a linearizable read index (for `sync`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadIndex;
/// A member tells the leader which sessions it heard from.
#[derive(Debug, Serialize, Deserialize)]
pub struct Touch(pub Vec<u64>);

/// Why the leader did not take a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// This member is not the leader; it names the one it knows of.
    NotLeader {
        /// The leader, if known.
        leader: Option<u64>,
    },
    /// The leader could not commit it.
    Failed(KeeperError),
}

sluice_net::protocol! {
    /// The ensemble's peer protocol.
    pub protocol PeerProtocol {
        // 2: a proposal carries its trace context.
        alpn: "sluice-peer/2",
        request: PeerRequest,
        response: PeerResponse,
        push: (),
        handler: PeerHandler,
        rpcs: {
            append_entries: AppendEntries(AppendEntries) -> Result<AppendEntriesResponse<u64>, RaftError<u64>>;
            vote: RequestVote(RequestVote) -> Result<VoteResponse<u64>, RaftError<u64>>;
            install_snapshot: InstallSnapshot(InstallSnapshot)
                -> Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>;
            propose: Propose(Propose) -> Result<(u64, Applied), Refusal>;
            read_index: ReadIndex(ReadIndex) -> Result<u64, Refusal>;
            touch: Touch(Touch) -> ();
        }
    }
}
