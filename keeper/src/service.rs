//! The keeper's `sluice-keeper/1` service: a session per ordered channel, its requests
//! pipelined to its [`SessionActor`] and answered in order; `Status` as a plain call.

use std::sync::Arc;

use actix::prelude::*;
use sluice_actors::keeper::{ClientRequest, Database, Detach, GetStatus, OpenSession, Outbox, SessionActor};
use sluice_keeper_core::{Id, KeeperError, OpResult, SuperUsers};
use sluice_net::{ChannelSender, Peer, ServerChannel};
use sluice_proto::keeper::{
    Children, Connect, Connected, Existence, KeeperProtocol, KeeperRequest, KeeperResponse, NodeData,
    ServerStatus,
};
use tokio::sync::oneshot;
use tracing::{debug, Instrument};

/// The keeper's `sluice-keeper/1` service.
#[derive(Debug, Clone)]
pub struct KeeperService {
    db: Addr<Database>,
    /// Where session actors live: connections are served on plain tokio tasks, which
    /// cannot start actors themselves.
    arbiter: ArbiterHandle,
    /// Who passes every znode ACL check.
    supers: Arc<SuperUsers>,
}

impl KeeperService {
    /// A service answering from `db`. Must be created inside the actix system.
    pub fn new(db: Addr<Database>, supers: Arc<SuperUsers>) -> Self {
        KeeperService { db, arbiter: Arbiter::current(), supers }
    }
}

/// The identities a connection holds from the start: its certificate's principal (none on a
/// plaintext listener) and its address.
pub fn connection_ids(peer: &Peer, supers: &SuperUsers) -> Vec<Id> {
    let name = peer.principal.name.as_str();
    let principal = (name != sluice_net::tcp::ANONYMOUS).then_some(name);
    supers.connection_ids(principal, peer.remote.ip())
}

fn no_session<T>() -> Result<T, KeeperError> {
    Err(KeeperError::BadArguments {
        what: "requests need a session: open an ordered channel and send Connect first".into(),
    })
}

impl sluice_proto::keeper::KeeperHandler for KeeperService {
    async fn connect(&self, _: &Peer, _: Connect) -> Result<Connected, KeeperError> {
        no_session()
    }
    async fn ping(&self, _: &Peer, _: sluice_proto::keeper::Ping) -> Result<i64, KeeperError> {
        no_session()
    }
    async fn write(&self, _: &Peer, _: sluice_proto::keeper::Write) -> Result<OpResult, KeeperError> {
        no_session()
    }
    async fn get_data(&self, _: &Peer, _: sluice_proto::keeper::GetData) -> Result<NodeData, KeeperError> {
        no_session()
    }
    async fn exists(&self, _: &Peer, _: sluice_proto::keeper::Exists) -> Result<Existence, KeeperError> {
        no_session()
    }
    async fn get_children(
        &self,
        _: &Peer,
        _: sluice_proto::keeper::GetChildren,
    ) -> Result<Children, KeeperError> {
        no_session()
    }
    async fn sync(&self, _: &Peer, _: sluice_proto::keeper::SyncRequest) -> Result<i64, KeeperError> {
        no_session()
    }
    async fn add_watch(&self, _: &Peer, _: sluice_proto::keeper::AddWatch) -> Result<i64, KeeperError> {
        no_session()
    }
    async fn set_watches(&self, _: &Peer, _: sluice_proto::keeper::SetWatches) -> Result<i64, KeeperError> {
        no_session()
    }
    async fn close(&self, _: &Peer, _: sluice_proto::keeper::Close) -> Result<(), KeeperError> {
        no_session()
    }
    async fn get_ephemerals(
        &self,
        _: &Peer,
        _: sluice_proto::keeper::GetEphemerals,
    ) -> Result<Vec<String>, KeeperError> {
        no_session()
    }
    async fn count_descendants(
        &self,
        _: &Peer,
        _: sluice_proto::keeper::CountDescendants,
    ) -> Result<u64, KeeperError> {
        no_session()
    }
    async fn remove_watches(
        &self,
        _: &Peer,
        _: sluice_proto::keeper::RemoveWatches,
    ) -> Result<(), KeeperError> {
        no_session()
    }
    async fn get_acl(
        &self,
        _: &Peer,
        _: sluice_proto::keeper::GetAcl,
    ) -> Result<sluice_proto::keeper::NodeAcl, KeeperError> {
        no_session()
    }
    async fn add_auth(&self, _: &Peer, _: sluice_proto::keeper::AddAuth) -> Result<Vec<Id>, KeeperError> {
        no_session()
    }
    async fn status(&self, _: &Peer, _: sluice_proto::keeper::Status) -> ServerStatus {
        match self.db.send(GetStatus).await {
            Ok(s) => s,
            Err(_) => ServerStatus {
                mode: "stopping".into(),
                ensemble: None,
                last_zxid: 0,
                znodes: 0,
                sessions: 0,
                watches: 0,
                outstanding: 0,
                latency_ms: (0.0, 0.0, 0.0),
                version: sluice_net::SOFTWARE.into(),
            },
        }
    }

    /// A session: `Connect` first, then requests in order until the client goes.
    async fn ordered(&self, peer: Peer, mut channel: ServerChannel<KeeperProtocol>) {
        let tx = channel.sender();
        let connection = peer.connection_id;
        let Ok(Some(first)) = channel.next_request().await else { return };
        let KeeperRequest::Connect(connect) = first.request else {
            let _ = tx.reply(first.correlation_id, KeeperResponse::Connect(no_session())).await;
            return;
        };
        let opened =
            self.db.send(OpenSession { connect, sender: Outbox::Channel(tx.clone()), connection }).await;
        let connected = match opened {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let _ = tx.reply(first.correlation_id, KeeperResponse::Connect(Err(e))).await;
                return;
            }
            Err(_) => return,
        };
        let session = connected.session;
        debug!(peer = %peer.principal, session = format_args!("0x{session:x}"), "session connected");
        if tx.reply(first.correlation_id, KeeperResponse::Connect(Ok(connected))).await.is_err() {
            return;
        }
        let db = self.db.clone();
        let (ids, supers) = (connection_ids(&peer, &self.supers), self.supers.clone());
        let actor = SessionActor::start_in_arbiter(&self.arbiter, move |_| {
            SessionActor::new(session, db, ids, supers)
        });
        // Requests are pipelined: each goes into the actors' mailboxes (which keep their order)
        // as soon as it arrives, and a replier task answers them in order. The one wait is
        // ZooKeeper's rule that a session's read sees its own earlier writes: a read (or
        // ping, watch registration) that follows a write waits until that write's reply.
        let (inflight_tx, inflight_rx) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
        let replier = tokio::spawn(reply_in_order(inflight_rx, tx.clone()));
        let mut write_in_flight = false;
        while let Ok(Some(req)) = channel.next_request().await {
            let is_write = req.request.is_write();
            if !is_write && write_in_flight {
                let (done, drained) = oneshot::channel();
                if inflight_tx.send(InFlight::Barrier(done)).await.is_err() || drained.await.is_err() {
                    break;
                }
            }
            write_in_flight = is_write;
            let closing = matches!(req.request, KeeperRequest::Close(_));
            let span =
                sluice_net::trace::request_span::<KeeperProtocol>(&peer, &req.request, req.trace.as_ref());
            let reply = actor.send(ClientRequest(req.request, span.clone()));
            if inflight_tx.send(InFlight::Reply(req.correlation_id, reply, span)).await.is_err() || closing {
                break;
            }
        }
        drop(inflight_tx);
        let _ = replier.await;
        self.db.do_send(Detach { session, connection });
    }
}

/// Requests of one session in the pipeline at once (beyond it, the session's reader waits).
const PIPELINE_DEPTH: usize = 1024;

// Nearly every item is a `Reply`; boxing it would add an allocation per request to spare a
// rare barrier some bytes.
#[allow(clippy::large_enum_variant)]
enum InFlight {
    /// A request handed to the session actor (and its span); its reply comes in order.
    Reply(u64, actix::dev::Request<SessionActor, ClientRequest>, tracing::Span),
    /// Every request before this one has been answered.
    Barrier(oneshot::Sender<()>),
}

/// Sends the replies of a session's pipelined requests in the order the requests came.
async fn reply_in_order(
    mut inflight: tokio::sync::mpsc::Receiver<InFlight>,
    tx: ChannelSender<KeeperProtocol>,
) {
    while let Some(item) = inflight.recv().await {
        match item {
            InFlight::Reply(correlation_id, reply, span) => {
                let Ok(response) = reply.instrument(span).await else { return };
                if tx.reply(correlation_id, response).await.is_err() {
                    return;
                }
            }
            InFlight::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}
