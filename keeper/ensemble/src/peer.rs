//! The ensemble's side of `sluice-peer/2` (declared in `sluice_proto::peer`): the service
//! that feeds a member's Raft node from its peer port, and the links openraft sends through.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use sluice_net::{Client, Peer, Rpc, RpcError};
pub use sluice_proto::peer::*;
use tracing::debug;

use super::Ensemble;

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
