//! The [`SessionActor`]: one per connected client session. It holds the identities its
//! connection proved (the certificate's `x509` principal, the `ip` address, and what
//! `addauth` added), and forwards the session's requests, in order and with those
//! identities, to the [`Database`], which checks them against the znodes' ACLs.

use std::sync::Arc;

use actix::prelude::*;
use base64::Engine as _;
use sluice_keeper_core::{acl, ErrorCode, Id, KeeperError, SuperUsers};
use sluice_proto::keeper::{AddAuth, KeeperRequest, KeeperResponse};
use tracing::{debug, info};

use super::database::{Database, SessionRequest, UNPARKED_MAILBOX};

/// One connected client session: forwards its requests in order with its identities.
#[derive(Debug)]
pub struct SessionActor {
    session: u64,
    db: Addr<Database>,
    ids: Arc<[Id]>,
    supers: Arc<SuperUsers>,
}

impl SessionActor {
    /// The actor of `session`, forwarding to `db`; its connection holds `ids`
    /// ([`SuperUsers::connection_ids`]), and `addauth` adds to them by `supers`' rules.
    pub fn new(session: u64, db: Addr<Database>, ids: Vec<Id>, supers: Arc<SuperUsers>) -> Self {
        SessionActor { session, db, ids: ids.into(), supers }
    }

    /// ZooKeeper's `addauth`: `digest user:password` adds `digest:user:<base64 SHA-1 of
    /// user:password>` (ZooKeeper's `DigestAuthenticationProvider`); other schemes fail.
    fn add_auth(&mut self, a: &AddAuth) -> Result<Vec<Id>, KeeperError> {
        if a.scheme != "digest" {
            return Err(KeeperError::AuthFailed {
                what: format!(
                    "scheme {:?} cannot be added: use addauth digest user:password (x509 and ip come from the connection)",
                    a.scheme
                ),
            });
        }
        let text = std::str::from_utf8(&a.auth).map_err(|_| KeeperError::AuthFailed {
            what: "addauth digest takes user:password as text".into(),
        })?;
        let user = acl::digest_input(text)?;
        let hash = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
        let id =
            Id::new("digest", &format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash)));
        let mut ids = self.ids.to_vec();
        self.supers.add(&mut ids, id);
        self.ids = ids.into();
        info!(session = format_args!("0x{:x}", self.session), user, "addauth digest");
        Ok(self.ids.to_vec())
    }
}

/// The audit line and count of a request an ACL refused.
fn refused(session: u64, ids: &[Id], e: &KeeperError) {
    metrics::counter!("sluice_keeper_authorization_refusals_total").increment(1);
    let who = ids.iter().map(Id::to_string).collect::<Vec<_>>().join(", ");
    info!(target: "sluice::authorizer", session = format_args!("0x{session:x}"), ids = %who, "refused: {e}");
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
        if let KeeperRequest::AddAuth(a) = &msg.0 {
            let added = self.add_auth(a);
            if let Err(e) = &added {
                debug!(session = format_args!("0x{:x}", self.session), error = %e, "addauth refused");
            }
            return Box::pin(async move { KeeperResponse::AddAuth(added) });
        }
        let (session, ids) = (self.session, self.ids.clone());
        let req = self.db.send(SessionRequest { session, ids: ids.clone(), request: msg.0, span: msg.1 });
        Box::pin(async move {
            let response = req.await.unwrap_or(KeeperResponse::Ping(Err(KeeperError::ConnectionLoss)));
            if let Some(e) = response.error().filter(|e| e.code() == ErrorCode::NoAuth) {
                refused(session, &ids, e);
            }
            response
        })
    }
}
