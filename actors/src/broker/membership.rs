//! `Membership`: the broker's place in the cluster — its keeper session, its registration
//! at `/brokers/ids/<id>`, and the competition for `/controller`.
//!
//! - **Registration** ([`join`]). An ephemeral `/brokers/ids/<id>` with the broker's
//!   endpoint and rack (Kafka's JSON). If the id is taken, the broker waits up to one session
//!   timeout — the holder may be this broker's own previous life, killed before its session
//!   expired — and then refuses to start, naming the holder's session.
//! - **Controller election.** A [`ZnodeWatcher`] on `/controller` tells the actor what it
//!   holds. When it is absent the actor tries to create it; the winner bumps
//!   `/controller_epoch` and starts the [`Controller`] actor. A controller resigns when the
//!   watcher shows `/controller` (which it has seen held by its own session) gone or taken,
//!   or when the controller finds itself fenced by a newer epoch.
//! - **Session loss.** The session's events arrive as a stream: watch events go to the
//!   watchers of their path ([`WatchRoutes`]); on expiry the broker stops being controller,
//!   opens a new session (with backoff) and registers again. Late answers of an older
//!   session or controller term are dropped by generation.
//! - **Leaving** ([`Leave`]): resign, then close the session, so the registration and
//!   `/controller` vanish at once instead of after the session timeout.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sluice_broker_config::BrokerConfig;
use sluice_broker_core::controller::{election_step, ControllerCore, ControllerZnode, ElectionStep};
use sluice_broker_core::metadata::BrokerEndpoint;
use sluice_broker_core::znodes;
use sluice_client::keeper::{
    KeeperClient, KeeperClientError, KeeperClientOptions, KeeperEvent, KeeperEvents,
};
use sluice_keeper_core::acl::perms;
use sluice_keeper_core::{Acl, CreateMode, KeeperError};
use sluice_net::{Backoff, ClientTls};
use sluice_proto::interbroker::InterBrokerProtocol;
use tracing::{info, warn};

use super::acls::{AclWatcher, SharedAcls};
use super::controller::{Controller, ControllerSettings, Resign};
use super::znode_watcher::{StopWatching, WatchRoutes, Watching, ZnodeChanged, ZnodeValue, ZnodeWatcher};
use super::SharedKeeper;
use crate::clock::now_ms;

/// Why the broker could not join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The keeper could not be reached or refused.
    #[error("cannot use the keeper at {connect} (zookeeper.connect): {error}")]
    Keeper {
        /// `zookeeper.connect`.
        connect: String,
        /// Why.
        error: KeeperClientError,
    },
    /// Another live broker holds this id.
    #[error(
        "broker.id {id} is already registered at {path} by another live broker (keeper session 0x{owner:x}); \
         give each broker its own broker.id, or stop the other one"
    )]
    BrokerIdInUse {
        /// The id.
        id: i32,
        /// The znode.
        path: String,
        /// The session holding it.
        owner: i64,
    },
    /// A znode holds something unreadable.
    #[error(transparent)]
    Znode(#[from] znodes::ZnodeError),
}

/// How long a stopping broker waits for the keeper to close its session.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to the keeper, creates the chroot and Kafka's persistent paths, reads (or
/// makes) the cluster id, and registers this broker.
pub async fn join(
    config: &BrokerConfig,
    endpoint: &BrokerEndpoint,
    tls: &ClientTls,
    offline: &BTreeSet<(String, i32)>,
) -> Result<(KeeperClient, KeeperEvents, String), JoinError> {
    let keeper_err = |error| JoinError::Keeper { connect: config.zookeeper_connect.clone(), error };
    let opts = KeeperClientOptions {
        session_timeout: config.zookeeper_session_timeout,
        default_acl: znode_acl(config, tls),
        ..Default::default()
    };
    let (keeper, events) =
        KeeperClient::connect(&config.zookeeper_connect, tls, opts).await.map_err(keeper_err)?;
    keeper.ensure_chroot().await.map_err(keeper_err)?;
    for path in znodes::PERSISTENT_PATHS.iter().chain(sluice_broker_core::acl::ACL_PATHS) {
        create_if_missing(&keeper, path, &[]).await.map_err(keeper_err)?;
    }
    let cluster_id = cluster_id(&keeper).await.map_err(keeper_err)??;
    register(&keeper, config, endpoint, offline).await?;
    info!(broker = endpoint.id, cluster_id, addr = %endpoint.addr(), "registered");
    Ok((keeper, events, cluster_id))
}

/// With `zookeeper.set.acl`, the ACL of every znode the broker creates: every permission for
/// this broker and the super users (their certificates' `x509` ids), read for everyone
/// (Kafka's defaults for what it does not hold secret).
fn znode_acl(config: &BrokerConfig, tls: &ClientTls) -> Option<Vec<Acl>> {
    if !config.zookeeper_set_acl {
        return None;
    }
    let own = tls.principal().map(|p| p.name).unwrap_or_default();
    let mut acl: Vec<Acl> = sluice_broker_core::acl::znode_owners(&own, &config.super_users)
        .iter()
        .filter(|n| !n.is_empty())
        .map(|name| Acl::new(perms::ALL, "x509", name))
        .collect();
    acl.push(Acl::read_only());
    Some(acl)
}

async fn create_if_missing(
    keeper: &KeeperClient,
    path: &str,
    data: &[u8],
) -> Result<bool, KeeperClientError> {
    match keeper.create(path, data, CreateMode::Persistent).await {
        Ok(_) => Ok(true),
        Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn cluster_id(keeper: &KeeperClient) -> Result<Result<String, znodes::ZnodeError>, KeeperClientError> {
    let fresh = format!("{:032x}", rand::random::<u128>());
    create_if_missing(keeper, znodes::CLUSTER_ID, &znodes::encode_cluster_id(&fresh)).await?;
    let (data, _) = keeper.get_data(znodes::CLUSTER_ID, false).await?;
    Ok(znodes::decode_cluster_id(&data))
}

async fn register(
    keeper: &KeeperClient,
    config: &BrokerConfig,
    endpoint: &BrokerEndpoint,
    offline: &BTreeSet<(String, i32)>,
) -> Result<(), JoinError> {
    let path = znodes::broker_path(endpoint.id);
    let keeper_err = |error| JoinError::Keeper { connect: config.zookeeper_connect.clone(), error };
    let deadline = tokio::time::Instant::now() + config.zookeeper_session_timeout + Duration::from_secs(2);
    let mut warned = false;
    loop {
        let data = znodes::encode_broker(endpoint, now_ms(), offline);
        match keeper.create(&path, &data, CreateMode::Ephemeral).await {
            Ok(_) => return Ok(()),
            Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {
                let owner = match keeper.exists(&path, false).await.map_err(keeper_err)? {
                    Some(stat) => stat.ephemeral_owner,
                    None => continue,
                };
                if tokio::time::Instant::now() >= deadline {
                    return Err(JoinError::BrokerIdInUse { id: endpoint.id, path, owner });
                }
                if !warned {
                    warn!(
                        broker = endpoint.id,
                        owner = format!("0x{owner:x}"),
                        "broker.id is registered by another session; waiting up to the session timeout for it \
                         to expire (a previous run of this broker that was killed)"
                    );
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(keeper_err(e)),
        }
    }
}

/// Tells the controller which of this broker's replicas are on failed log directories: the
/// registration lists them (so a new controller reads them too) and a log directory event
/// (Kafka's `/log_dir_event_notification`) asks the controller for a pass.
pub async fn report_offline_replicas(
    keeper: &KeeperClient,
    endpoint: &BrokerEndpoint,
    offline: &BTreeSet<(String, i32)>,
) -> Result<(), KeeperClientError> {
    let data = znodes::encode_broker(endpoint, now_ms(), offline);
    keeper.set_data(&znodes::broker_path(endpoint.id), &data, -1).await?;
    keeper
        .create(
            znodes::LOG_DIR_EVENT_PREFIX,
            &znodes::encode_log_dir_event(endpoint.id),
            CreateMode::PersistentSequential,
        )
        .await?;
    Ok(())
}

/// This broker's replicas on failed log directories, as its registration lists them.
pub type SharedOffline = Arc<Mutex<BTreeSet<(String, i32)>>>;

/// What membership needs to run.
#[derive(Debug, Clone)]
pub struct MembershipContext {
    /// The broker's configuration.
    pub config: Arc<BrokerConfig>,
    /// Its registration.
    pub endpoint: BrokerEndpoint,
    /// TLS for the keeper and for talking to brokers.
    pub tls: ClientTls,
    /// For the controller to reach brokers.
    pub net: Arc<sluice_net::Client<InterBrokerProtocol>>,
    /// The session in use, for the service.
    pub keeper: SharedKeeper,
    /// The controller this broker runs, if any (for metrics and status).
    pub is_controller: Arc<std::sync::atomic::AtomicBool>,
    /// The controller actor while this broker is the controller (for controlled shutdown
    /// requests).
    pub controller: SharedController,
    /// This broker's copy of the ACLs, kept by the session's [`AclWatcher`].
    pub acls: SharedAcls,
    /// Its replicas on failed log directories (a new session registers with them).
    pub offline: SharedOffline,
}

/// The controller actor this broker runs, if it is the controller.
pub type SharedController = Arc<Mutex<Option<Addr<Controller>>>>;

/// A session in use.
struct Session {
    keeper: KeeperClient,
    cluster_id: String,
    routes: WatchRoutes,
    /// The `/controller` watcher.
    watcher: Addr<ZnodeWatcher>,
    /// The ACL cache's keeper.
    acl_watcher: Addr<AclWatcher>,
    /// The session's event stream, as added to the actor.
    events: SpawnHandle,
}

/// The controller this broker runs.
struct Leading {
    addr: Addr<Controller>,
    /// Which term of this broker's it is (a fencing notice of an older one is ignored).
    term: u64,
    /// Whether the watcher has shown `/controller` held by this session since.
    seen_held: bool,
}

/// The actor.
pub struct Membership {
    cx: MembershipContext,
    /// The session [`join`] opened, until the actor starts.
    first: Option<Joined>,
    session: Option<Session>,
    leading: Option<Leading>,
    /// A create of `/controller` is in flight.
    competing: bool,
    /// Bumped for every session: answers meant for an older one are dropped.
    generation: u64,
    /// Bumped every time this broker becomes the controller.
    terms: u64,
    rejoin: Backoff,
    leaving: bool,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").field("broker", &self.cx.endpoint.id).finish_non_exhaustive()
    }
}

/// How long a failed attempt at `/controller` waits before the next.
const COMPETE_RETRY: Duration = Duration::from_millis(500);

impl Membership {
    /// Membership starting from a session that [`join`] opened.
    pub fn new(cx: MembershipContext, first: Joined) -> Self {
        Membership {
            cx,
            first: Some(first),
            session: None,
            leading: None,
            competing: false,
            generation: 0,
            terms: 0,
            rejoin: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
            leaving: false,
        }
    }

    /// Takes a new session into use: events, the `/controller` watcher, the shared client.
    fn use_session(&mut self, (keeper, events, cluster_id): Joined, ctx: &mut Context<Self>) {
        self.generation += 1;
        self.rejoin.reset();
        let generation = self.generation;
        if let Ok(mut slot) = self.cx.keeper.lock() {
            *slot = Some(keeper.clone());
        }
        let stream = futures_util::stream::unfold(events, |mut events| async move {
            events.recv().await.map(|event| (event, events))
        });
        let events =
            ctx.add_stream(futures_util::StreamExt::map(stream, move |e| SessionEvent(generation, e)));
        let routes = WatchRoutes::default();
        let me = ctx.address().recipient();
        let (watcher, _) = routes.watch(keeper.clone(), znodes::CONTROLLER, Watching::Node, vec![me]);
        let acl_watcher = AclWatcher::new(keeper.clone(), self.cx.acls.clone(), routes.clone()).start();
        self.session = Some(Session { keeper, cluster_id, routes, watcher, acl_watcher, events });
    }

    /// Lets go of the session in use (its events, its watcher); returns its client.
    fn drop_session(&mut self, ctx: &mut Context<Self>) -> Option<KeeperClient> {
        self.resign();
        let session = self.session.take()?;
        ctx.cancel_future(session.events);
        session.watcher.do_send(StopWatching);
        session.acl_watcher.do_send(StopWatching);
        Some(session.keeper)
    }

    /// Tries to create `/controller`; the winner becomes the controller.
    fn compete(&mut self, ctx: &mut Context<Self>) {
        if self.competing || self.leading.is_some() || self.leaving {
            return;
        }
        let Some(session) = &self.session else { return };
        self.competing = true;
        let (keeper, generation, id) = (session.keeper.clone(), self.generation, self.cx.endpoint.id);
        let attempt = async move {
            let data = znodes::encode_controller(id, now_ms());
            match keeper.create(znodes::CONTROLLER, &data, CreateMode::Ephemeral).await {
                Ok(_) => match bump_epoch(&keeper).await {
                    Ok(epoch) => Attempt::Won(epoch),
                    Err(e) => {
                        warn!(error = %e, "could not bump the controller epoch; giving up /controller");
                        let _ = keeper.delete(znodes::CONTROLLER, -1).await;
                        Attempt::Failed
                    }
                },
                Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => Attempt::Taken,
                Err(e) => {
                    warn!(error = %e, "could not reach the keeper to compete for /controller");
                    Attempt::Failed
                }
            }
        };
        ctx.spawn(attempt.into_actor(self).map(move |attempt, this, ctx| {
            this.competing = false;
            if this.generation != generation {
                return;
            }
            match attempt {
                Attempt::Won((epoch, version)) => this.lead(epoch, version, ctx),
                // The watcher says when it goes.
                Attempt::Taken => {}
                Attempt::Failed => {
                    ctx.run_later(COMPETE_RETRY, |this, ctx| this.compete(ctx));
                }
            }
        }));
    }

    /// Starts the controller at `epoch` (`/controller_epoch` at `version`).
    fn lead(&mut self, epoch: i32, version: i32, ctx: &mut Context<Self>) {
        let Some(session) = &self.session else { return };
        let config = &self.cx.config;
        let core = ControllerCore::new(
            self.cx.endpoint.id,
            epoch,
            session.cluster_id.clone(),
            config.unclean_leader_election_enable,
        );
        let settings = ControllerSettings {
            rebalance: config.auto_leader_rebalance_enable.then_some((
                config.leader_imbalance_check_interval,
                config.leader_imbalance_per_broker_percentage,
            )),
        };
        let (fenced_tx, fenced_rx) = tokio::sync::oneshot::channel();
        let actor = Controller::new(
            session.keeper.clone(),
            self.cx.net.clone(),
            core,
            version,
            fenced_tx,
            settings,
            session.routes.clone(),
        );
        let addr = actor.start();
        if let Ok(mut c) = self.cx.controller.lock() {
            *c = Some(addr.clone());
        }
        self.cx.is_controller.store(true, std::sync::atomic::Ordering::Relaxed);
        self.terms += 1;
        let term = self.terms;
        self.leading = Some(Leading { addr, term, seen_held: false });
        ctx.spawn(async move { fenced_rx.await.is_ok() }.into_actor(self).map(move |fenced, this, ctx| {
            if fenced && this.leading.as_ref().is_some_and(|l| l.term == term) {
                this.fenced(ctx);
            }
        }));
    }

    /// Stops the controller this broker runs, if any.
    fn resign(&mut self) {
        if let Some(leading) = self.leading.take() {
            leading.addr.do_send(Resign);
            info!(broker = self.cx.endpoint.id, "no longer the controller");
        }
        if let Ok(mut c) = self.cx.controller.lock() {
            *c = None;
        }
        self.cx.is_controller.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Another controller moved the epoch on while `/controller` may still be ours (someone
    /// bumped it by hand): give it up, or nobody could win; then compete again.
    fn fenced(&mut self, ctx: &mut Context<Self>) {
        self.resign();
        let Some(session) = &self.session else { return };
        let keeper = session.keeper.clone();
        let give_up = async move {
            if let Ok(Some(stat)) = keeper.exists(znodes::CONTROLLER, false).await {
                if stat.ephemeral_owner as u64 == keeper.session_id() {
                    let _ = keeper.delete(znodes::CONTROLLER, stat.version).await;
                }
            }
        };
        ctx.spawn(give_up.into_actor(self).map(|(), this, ctx| this.compete(ctx)));
    }

    /// The session expired: register again on a new one.
    fn rejoin(&mut self, ctx: &mut Context<Self>) {
        if self.leaving {
            return;
        }
        let (config, endpoint, tls) = (self.cx.config.clone(), self.cx.endpoint.clone(), self.cx.tls.clone());
        let offline = self.cx.offline.lock().map(|o| o.clone()).unwrap_or_default();
        let joining = async move { join(&config, &endpoint, &tls, &offline).await };
        ctx.spawn(joining.into_actor(self).map(|joined, this, ctx| match joined {
            Ok(joined) if this.leaving => {
                // Stopping meanwhile: this session is not wanted.
                tokio::spawn(async move {
                    let _ = joined.0.close().await;
                });
            }
            Ok(joined) => this.use_session(joined, ctx),
            Err(e) => {
                let delay = this.rejoin.next_delay();
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "could not register again");
                ctx.run_later(delay, |this, ctx| this.rejoin(ctx));
            }
        }));
    }
}

/// What an attempt at `/controller` came to.
enum Attempt {
    /// Created it and bumped the epoch: (epoch, its znode's version).
    Won((i32, i32)),
    /// Someone else holds it.
    Taken,
    /// The keeper could not be reached, or the epoch not bumped: try again.
    Failed,
}

/// A session from [`join`]: its client, its events, the cluster id.
pub type Joined = (KeeperClient, KeeperEvents, String);

/// An event of the session of `generation`.
#[derive(Debug)]
struct SessionEvent(u64, KeeperEvent);

/// The broker is stopping: resign, close the session; answered once it is closed (or
/// [`CLOSE_TIMEOUT`] has passed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave;

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(first) = self.first.take() {
            self.use_session(first, ctx);
        }
    }
}

impl StreamHandler<SessionEvent> for Membership {
    fn handle(&mut self, SessionEvent(generation, event): SessionEvent, ctx: &mut Context<Self>) {
        if generation != self.generation {
            return;
        }
        match event {
            KeeperEvent::Watch { path, .. } => {
                if let Some(session) = &self.session {
                    session.routes.fired(&path);
                }
            }
            KeeperEvent::SessionExpired => {
                warn!(broker = self.cx.endpoint.id, "keeper session expired; registering again");
                self.drop_session(ctx);
                self.rejoin(ctx);
            }
            KeeperEvent::ReadOnly(ro) => {
                warn!(read_only = ro, "the keeper server lost or regained its quorum");
            }
            // The watchers' one-shot watches were set again on the new connection.
            KeeperEvent::Resumed => {}
        }
    }

    // The stream ends with its client; the actor goes on (a new session brings a new one).
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<ZnodeChanged> for Membership {
    type Result = ();

    /// What the `/controller` watcher read.
    fn handle(&mut self, msg: ZnodeChanged, ctx: &mut Context<Self>) {
        let _span = crate::handling!("Membership", "ZnodeChanged");
        let (Some(session), ZnodeValue::Node(stat)) = (&self.session, msg.value) else { return };
        let znode = match stat {
            None => ControllerZnode::Absent,
            Some(s) if s.ephemeral_owner as u64 == session.keeper.session_id() => ControllerZnode::Mine,
            Some(_) => ControllerZnode::Theirs,
        };
        match election_step(self.leading.as_ref().map(|l| l.seen_held), znode) {
            ElectionStep::Compete => self.compete(ctx),
            ElectionStep::Resign => {
                self.resign();
                self.compete(ctx);
            }
            ElectionStep::Held => {
                if let Some(leading) = &mut self.leading {
                    leading.seen_held = true;
                }
            }
            ElectionStep::Wait => {}
        }
    }
}

impl Handler<Leave> for Membership {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Leave, ctx: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Membership", "Leave");
        self.leaving = true;
        let keeper = self.drop_session(ctx);
        // Closing the session deletes our registration (and /controller) at once, so the
        // cluster reacts now rather than after the session timeout. An unreachable keeper
        // gets a moment, not the session timeout: it will expire the session by itself.
        let close = async move {
            if let Some(keeper) = keeper {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, keeper.close()).await;
            }
        };
        Box::pin(close.into_actor(self).map(|(), _, ctx| ctx.stop()))
    }
}

/// Increments `/controller_epoch` (creating it at 1); returns the new epoch and the znode's
/// version, which fences this controller's writes.
async fn bump_epoch(keeper: &KeeperClient) -> Result<(i32, i32), KeeperClientError> {
    loop {
        match keeper.get_data(znodes::CONTROLLER_EPOCH, false).await {
            Ok((data, stat)) => {
                let epoch = znodes::decode_epoch(&data).unwrap_or(0) + 1;
                match keeper
                    .set_data(znodes::CONTROLLER_EPOCH, epoch.to_string().as_bytes(), stat.version)
                    .await
                {
                    Ok(stat) => return Ok((epoch, stat.version)),
                    Err(KeeperClientError::Keeper(KeeperError::BadVersion { .. })) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {
                match keeper.create(znodes::CONTROLLER_EPOCH, b"1", CreateMode::Persistent).await {
                    Ok(_) => return Ok((1, 0)),
                    Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}
