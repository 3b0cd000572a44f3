//! `sluice-peer/2`: what ensemble members say to each other over mutually authenticated
//! QUIC. Raft's own RPCs (append entries, vote, install snapshot) plus what a member that is
//! not the leader asks of the leader: commit this proposal, give me a read index (for
//! `sync`), these sessions were heard from.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use sluice_keeper_core::KeeperError;
use sluice_net::{Client, Peer, Rpc, RpcError};
use tracing::debug;

use super::{Applied, Ensemble, KeeperRaft, Proposal};

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

/// Serves a member's peer port.
pub struct PeerService {
    raft: Raft<KeeperRaft>,
    ensemble: Ensemble,
    on_touch: Arc<dyn Fn(Vec<u64>) + Send + Sync>,
    write_timeout: Duration,
}

impl std::fmt::Debug for PeerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerService").finish_non_exhaustive()
    }
}

impl PeerService {
    /// A service feeding `ensemble`'s Raft node; touches go to `on_touch`.
    pub fn new(
        ensemble: Ensemble,
        on_touch: Arc<dyn Fn(Vec<u64>) + Send + Sync>,
        write_timeout: Duration,
    ) -> Self {
        PeerService { raft: ensemble.raft.clone(), ensemble, on_touch, write_timeout }
    }
}

impl PeerHandler for PeerService {
    async fn append_entries(
        &self,
        _: &Peer,
        r: AppendEntries,
    ) -> Result<AppendEntriesResponse<u64>, RaftError<u64>> {
        // One `replicate` span per traced proposal the request carries, open until this
        // member has taken the entries: the write's trace shows every member's share.
        let _spans = replicate_spans(self.ensemble.my_id, &r.0);
        self.raft.append_entries(r.0).await
    }

    async fn vote(&self, _: &Peer, r: RequestVote) -> Result<VoteResponse<u64>, RaftError<u64>> {
        self.raft.vote(r.0).await
    }

    async fn install_snapshot(
        &self,
        _: &Peer,
        r: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        self.raft.install_snapshot(r.0).await
    }

    async fn propose(&self, _: &Peer, r: Propose) -> Result<(u64, Applied), Refusal> {
        self.ensemble.write_here(r.0, tokio::time::Instant::now() + self.write_timeout).await
    }

    async fn read_index(&self, _: &Peer, _: ReadIndex) -> Result<u64, Refusal> {
        super::read_index_as_leader(&self.raft, tokio::time::Instant::now() + self.write_timeout).await
    }

    async fn touch(&self, _: &Peer, r: Touch) {
        (self.on_touch)(r.0);
    }
}

/// A `replicate` span, child of the proposal's trace, for each traced proposal in `request`
/// (none when tracing is off or nothing in it is traced).
fn replicate_spans(member: u64, request: &AppendEntriesRequest<KeeperRaft>) -> Vec<tracing::Span> {
    if !sluice_net::trace::enabled() {
        return Vec::new();
    }
    let mut spans = Vec::new();
    for entry in &request.entries {
        if let openraft::EntryPayload::Normal(batch) = &entry.payload {
            for (i, p) in batch.0.iter().enumerate() {
                if let Some(parent) = &p.trace {
                    let span = tracing::info_span!(
                        parent: None,
                        "replicate",
                        member,
                        zxid = format_args!("0x{:x}", super::zxid(entry.log_id.index, i)),
                    );
                    sluice_net::trace::set_parent(&span, parent);
                    spans.push(span);
                }
            }
        }
    }
    spans
}

/// Opens links to the other members.
#[derive(Debug, Clone)]
pub struct PeerNetwork {
    client: Arc<Client<PeerProtocol>>,
}

impl PeerNetwork {
    /// Links made with `client`.
    pub fn new(client: Arc<Client<PeerProtocol>>) -> Self {
        PeerNetwork { client }
    }
}

/// The link to one member.
#[derive(Debug)]
pub struct PeerLink {
    target: u64,
    addr: String,
    client: Arc<Client<PeerProtocol>>,
}

impl RaftNetworkFactory<KeeperRaft> for PeerNetwork {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerLink {
        PeerLink { target, addr: node.addr.clone(), client: self.client.clone() }
    }
}

impl PeerLink {
    async fn call<R, T, E>(&self, request: R, option: &RPCOption) -> Result<T, RPCError<u64, BasicNode, E>>
    where
        R: Rpc<PeerProtocol, Reply = Result<T, E>>,
        E: std::error::Error,
    {
        match tokio::time::timeout(option.hard_ttl(), self.client.call(&self.addr, request)).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(remote))) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Ok(Err(RpcError::Connect(e))) => {
                debug!(target = self.target, addr = %self.addr, error = %e, "peer unreachable");
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(_) => Err(RPCError::Network(NetworkError::new(&std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reply from member {} within {:?}", self.target, option.hard_ttl()),
            )))),
        }
    }
}

impl RaftNetwork<KeeperRaft> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KeeperRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(AppendEntries(rpc), &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<KeeperRaft>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>>
    {
        self.call(InstallSnapshot(rpc), &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(RequestVote(rpc), &option).await
    }
}
