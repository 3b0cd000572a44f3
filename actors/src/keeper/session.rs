//! The [`SessionActor`]: one per connected client session. It checks the session is live,
//! touches it on every request and forwards the requests, in order, to the [`Database`].

use actix::prelude::*;
use sluice_keeper_core::KeeperError;
use sluice_proto::keeper::{KeeperRequest, KeeperResponse};

use super::database::{Database, SessionRequest, UNPARKED_MAILBOX};

/// One connected client session: checks, touches and forwards its requests in order.
#[derive(Debug)]
pub struct SessionActor {
    session: u64,
    db: Addr<Database>,
}

impl SessionActor {
    /// The actor of `session`, forwarding to `db`.
    pub fn new(session: u64, db: Addr<Database>) -> Self {
        SessionActor { session, db }
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(UNPARKED_MAILBOX);
    }
}

/// One request from the client, answered in order.
#[derive(Debug, Message)]
#[rtype(result = "KeeperResponse")]
pub struct ClientRequest(pub KeeperRequest, pub tracing::Span);

impl Handler<ClientRequest> for SessionActor {
    type Result = ResponseFuture<KeeperResponse>;
    fn handle(&mut self, msg: ClientRequest, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("SessionActor", "ClientRequest");
        let req = self.db.send(SessionRequest { session: self.session, request: msg.0, span: msg.1 });
        Box::pin(async move { req.await.unwrap_or(KeeperResponse::Ping(Err(KeeperError::ConnectionLoss))) })
    }
}
