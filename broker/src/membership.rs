//! Cluster membership: the broker's keeper session, its registration at
//! `/brokers/ids/<id>`, and the competition for `/controller`.
//!
//! - **Registration.** An ephemeral `/brokers/ids/<id>` with the broker's endpoint and rack
//!   (Kafka's JSON). If the id is taken, the broker waits up to one session timeout — the
//!   holder may be this broker's own previous life, killed before its session expired —
//!   and then refuses to start, naming the holder's session.
//! - **Controller election.** Every broker tries to create the ephemeral `/controller`; the
//!   one that succeeds bumps `/controller_epoch` and starts the [`Controller`] actor. The
//!   others watch `/controller` and try again when it goes (its broker died or resigned).
//! - **Session loss.** If the keeper expires the session, the broker stops being
//!   controller, opens a new session and registers again.
//!
//! One task reads the session's events and hands each watch event to the
//! [`ZnodeWatcher`](sluice_actors::broker::znode_watcher::ZnodeWatcher)s of its path: the
//! election's on `/controller`, and the controller's own (it starts them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sluice_broker_core::controller::ControllerCore;
use sluice_broker_core::metadata::BrokerEndpoint;
use sluice_broker_core::znodes;
use sluice_client::keeper::{
    KeeperClient, KeeperClientError, KeeperClientOptions, KeeperEvent, KeeperEvents,
};
use sluice_keeper_core::{CreateMode, KeeperError};
use sluice_net::ClientTls;
use sluice_proto::interbroker::InterBrokerProtocol;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use sluice_actors::broker::controller::{Controller, ControllerSettings, Resign};
use sluice_actors::broker::znode_watcher::{StopWatching, WatchRoutes, Watching, ZnodeValue};
use sluice_actors::clock::now_ms;

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

pub use sluice_actors::broker::{keeper_of, SharedKeeper};

/// Connects to the keeper, creates the chroot and Kafka's persistent paths, reads (or
/// makes) the cluster id, and registers this broker.
pub async fn join(
    config: &BrokerConfig,
    endpoint: &BrokerEndpoint,
    tls: &ClientTls,
) -> Result<(KeeperClient, KeeperEvents, String), JoinError> {
    let keeper_err = |error| JoinError::Keeper { connect: config.zookeeper_connect.clone(), error };
    let opts =
        KeeperClientOptions { session_timeout: config.zookeeper_session_timeout, ..Default::default() };
    let (keeper, events) =
        KeeperClient::connect(&config.zookeeper_connect, tls, opts).await.map_err(keeper_err)?;
    keeper.ensure_chroot().await.map_err(keeper_err)?;
    for path in znodes::PERSISTENT_PATHS {
        create_if_missing(&keeper, path, &[]).await.map_err(keeper_err)?;
    }
    let cluster_id = cluster_id(&keeper).await.map_err(keeper_err)??;
    register(&keeper, config, endpoint).await?;
    info!(broker = endpoint.id, cluster_id, addr = %endpoint.addr(), "registered");
    Ok((keeper, events, cluster_id))
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
) -> Result<(), JoinError> {
    let path = znodes::broker_path(endpoint.id);
    let keeper_err = |error| JoinError::Keeper { connect: config.zookeeper_connect.clone(), error };
    let deadline = tokio::time::Instant::now() + config.zookeeper_session_timeout + Duration::from_secs(2);
    let mut warned = false;
    loop {
        let data = znodes::encode_broker(endpoint, now_ms());
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
}

/// The controller actor this broker runs, if it is the controller.
pub type SharedController = Arc<Mutex<Option<Addr<Controller>>>>;

/// Runs membership until `shutdown` turns true: competes for `/controller`, routes watch
/// events, re-registers after a session loss. Starts from a session that [`join`] opened.
pub async fn run(
    ctx: MembershipContext,
    first: (KeeperClient, KeeperEvents, String),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut session = Some(first);
    loop {
        let (keeper, events, cluster_id) = match session.take() {
            Some(s) => s,
            None => match rejoin(&ctx, &mut shutdown).await {
                Some(s) => s,
                None => return,
            },
        };
        if let Ok(mut slot) = ctx.keeper.lock() {
            *slot = Some(keeper.clone());
        }
        // A keeper call can wait out its timeout when the keeper is unreachable; shutdown
        // must not wait for it.
        let mut stop = shutdown.clone();
        let ended = tokio::select! {
            end = run_session(&ctx, keeper.clone(), events, cluster_id, &mut shutdown) => end,
            _ = stop.wait_for(|s| *s) => SessionEnd::Shutdown,
        };
        ctx.is_controller.store(false, std::sync::atomic::Ordering::Relaxed);
        match ended {
            SessionEnd::Shutdown => {
                // Closing the session deletes our registration (and /controller) at once,
                // so the cluster reacts now rather than after the session timeout. An
                // unreachable keeper gets a moment, not the session timeout: it will expire
                // the session by itself.
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, keeper.close()).await;
                return;
            }
            SessionEnd::Expired => {
                warn!(broker = ctx.endpoint.id, "keeper session expired; registering again");
            }
        }
    }
}

async fn rejoin(
    ctx: &MembershipContext,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(KeeperClient, KeeperEvents, String)> {
    let mut backoff = sluice_net::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        if *shutdown.borrow() {
            return None;
        }
        let mut stop = shutdown.clone();
        let joined = tokio::select! {
            r = join(&ctx.config, &ctx.endpoint, &ctx.tls) => r,
            _ = stop.wait_for(|s| *s) => return None,
        };
        match joined {
            Ok(s) => return Some(s),
            Err(e) => warn!(error = %e, "could not register again; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

enum SessionEnd {
    Shutdown,
    Expired,
}

async fn run_session(
    ctx: &MembershipContext,
    keeper: KeeperClient,
    mut events: KeeperEvents,
    cluster_id: String,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let controller = ctx.controller.clone();
    let routes = WatchRoutes::default();
    let (expired_tx, mut expired) = watch::channel(false);
    // The session's events: watch events to the watchers of their path.
    let router = {
        let routes = routes.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    KeeperEvent::Watch { path, .. } => routes.fired(&path),
                    KeeperEvent::SessionExpired => {
                        let _ = expired_tx.send(true);
                        return;
                    }
                    KeeperEvent::ReadOnly(ro) => {
                        warn!(read_only = ro, "the keeper server lost or regained its quorum");
                    }
                }
            }
        })
    };
    let (controller_watcher, mut controller_znode) =
        routes.watch(keeper.clone(), znodes::CONTROLLER, Watching::Node, Vec::new());
    let session = keeper.session_id() as i64;
    let end = loop {
        // Whatever the watcher saw before this attempt is old news.
        controller_znode.borrow_and_update();
        // Try to become the controller.
        match keeper
            .create(
                znodes::CONTROLLER,
                &znodes::encode_controller(ctx.endpoint.id, now_ms()),
                CreateMode::Ephemeral,
            )
            .await
        {
            Ok(_) => match bump_epoch(&keeper).await {
                Ok((epoch, version)) => {
                    let (fenced_tx, fenced_rx) = tokio::sync::oneshot::channel();
                    let core = ControllerCore::new(
                        ctx.endpoint.id,
                        epoch,
                        cluster_id.clone(),
                        ctx.config.unclean_leader_election_enable,
                    );
                    let settings = ControllerSettings {
                        rebalance: ctx.config.auto_leader_rebalance_enable.then_some((
                            ctx.config.leader_imbalance_check_interval,
                            ctx.config.leader_imbalance_per_broker_percentage,
                        )),
                    };
                    let actor = Controller::new(
                        keeper.clone(),
                        ctx.net.clone(),
                        core,
                        version,
                        fenced_tx,
                        settings,
                        routes.clone(),
                    );
                    let addr = actor.start();
                    if let Ok(mut c) = controller.lock() {
                        *c = Some(addr.clone());
                    }
                    ctx.is_controller.store(true, std::sync::atomic::Ordering::Relaxed);
                    let (end, fenced) = tokio::select! {
                        _ = fenced_rx => (None, true),
                        // Our /controller goes if our session does, or someone deletes it.
                        _ = held_then_lost(&mut controller_znode, session) => (None, false),
                        _ = expired.changed() => (Some(SessionEnd::Expired), false),
                        _ = shutdown.changed() => (Some(SessionEnd::Shutdown), false),
                    };
                    addr.do_send(Resign);
                    if fenced {
                        // Another controller moved the epoch on while /controller may still be
                        // ours (someone bumped it by hand): give it up, or nobody could win.
                        if let Ok(Some(stat)) = keeper.exists(znodes::CONTROLLER, false).await {
                            if stat.ephemeral_owner == session {
                                let _ = keeper.delete(znodes::CONTROLLER, stat.version).await;
                            }
                        }
                    }
                    if let Ok(mut c) = controller.lock() {
                        *c = None;
                    }
                    ctx.is_controller.store(false, std::sync::atomic::Ordering::Relaxed);
                    if let Some(end) = end {
                        break end;
                    }
                    info!(broker = ctx.endpoint.id, "no longer the controller");
                }
                Err(e) => {
                    warn!(error = %e, "could not bump the controller epoch; giving up /controller");
                    let _ = keeper.delete(znodes::CONTROLLER, -1).await;
                }
            },
            Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {
                // Someone else is the controller: try again once /controller is gone.
                tokio::select! {
                    _ = gone(&mut controller_znode) => {}
                    _ = expired.changed() => break SessionEnd::Expired,
                    _ = shutdown.changed() => break SessionEnd::Shutdown,
                }
                continue;
            }
            Err(e) => {
                warn!(error = %e, "could not reach the keeper to compete for /controller");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = expired.changed() => break SessionEnd::Expired,
            _ = shutdown.changed() => break SessionEnd::Shutdown,
        }
    };
    controller_watcher.do_send(StopWatching);
    router.abort();
    end
}

/// Whether the watcher last saw `/controller` held by `session`.
fn held_by(value: &Option<ZnodeValue>, session: i64) -> bool {
    matches!(value, Some(ZnodeValue::Node(Some(stat))) if stat.ephemeral_owner == session)
}

/// Returns once the watcher has seen `/controller` held by `session` and then not.
async fn held_then_lost(znode: &mut watch::Receiver<Option<ZnodeValue>>, session: i64) {
    if znode.wait_for(|v| held_by(v, session)).await.is_err()
        || znode.wait_for(|v| !held_by(v, session)).await.is_err()
    {
        // The watcher stopped: only the session's end (the caller's other branches) ends this.
        std::future::pending::<()>().await;
    }
}

/// Returns once a read newer than the last one marked seen finds `/controller` absent.
async fn gone(znode: &mut watch::Receiver<Option<ZnodeValue>>) {
    loop {
        if znode.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        if matches!(*znode.borrow_and_update(), Some(ZnodeValue::Node(None))) {
            return;
        }
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
