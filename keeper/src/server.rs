//! Running a keeper: recover the store (standalone) or open the Raft log and state machine
//! and start the member (ensemble), bind the client port, serve until shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;

use sluice_actors::keeper::role_watcher::RoleWatcher;
use sluice_actors::keeper::{Attach, Database, Touched};
use sluice_ensemble::store::StoreError;
use sluice_ensemble::Ensemble;
use sluice_proto::keeper::KeeperProtocol;
use tokio::sync::oneshot;
use tracing::{debug, error, info};

use crate::service::KeeperService;
use crate::zookeeper;

/// Where a running keeper listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// `clientPort`: `sluice-keeper/1` over QUIC.
    pub quic: SocketAddr,
    /// `secureClientPort`: the ZooKeeper door over TLS.
    pub zookeeper_secure: Option<SocketAddr>,
    /// `plaintextClientPort`: the ZooKeeper door without TLS.
    pub zookeeper_plaintext: Option<SocketAddr>,
}

/// What the `conf` four-letter word prints: the settings in ZooKeeper's names.
fn conf_lines(
    config: &crate::config::KeeperConfig,
    listen: SocketAddr,
    door: &zookeeper::Door,
) -> Vec<(String, String)> {
    let s = &config.settings;
    let mut lines = vec![
        ("clientPort".to_string(), listen.port().to_string()),
        ("clientPortAddress".to_string(), listen.ip().to_string()),
    ];
    if let Some(a) = door.secure {
        lines.push(("secureClientPort".into(), a.port().to_string()));
    }
    if let Some(a) = door.plaintext {
        lines.push(("plaintextClientPort".into(), a.port().to_string()));
    }
    lines.push(("dataDir".into(), s.data_dir.display().to_string()));
    lines.push(("dataLogDir".into(), s.data_dir.display().to_string()));
    lines.push(("tickTime".into(), s.sessions.tick_ms.to_string()));
    lines.push(("minSessionTimeout".into(), s.sessions.min_timeout_ms.to_string()));
    lines.push(("maxSessionTimeout".into(), s.sessions.max_timeout_ms.to_string()));
    lines.push(("jute.maxbuffer".into(), config.zookeeper.max_buffer.to_string()));
    match &config.ensemble {
        None => lines.push(("serverId".into(), "0".into())),
        Some(e) => {
            lines.push(("serverId".into(), e.my_id.to_string()));
            for (id, addr) in &e.members {
                lines.push((format!("server.{id}"), addr.clone()));
            }
        }
    }
    lines
}

/// Opens the ZooKeeper door (if configured) and reports where everything listens.
async fn listening(
    config: &crate::config::KeeperConfig,
    identity: &sluice_net::TlsIdentity,
    db: &actix::Addr<Database>,
    quic: SocketAddr,
    on_listening: impl FnOnce(Listening),
) -> Result<zookeeper::Door, RunError> {
    let door = zookeeper::open(
        &config.zookeeper,
        identity,
        db.clone(),
        Arc::new(config.super_users.clone()),
        |door| conf_lines(config, quic, door),
    )
    .await
    .map_err(RunError::Listen)?;
    on_listening(Listening { quic, zookeeper_secure: door.secure, zookeeper_plaintext: door.plaintext });
    Ok(door)
}

/// Runs a standalone keeper until `shutdown` completes: recovers the store, listens, serves.
/// Prints nothing; logs through tracing. Must run inside an actix system.
pub async fn run(
    config: &crate::config::KeeperConfig,
    identity: &sluice_net::TlsIdentity,
    on_listening: impl FnOnce(Listening),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), RunError> {
    if let Some(ensemble) = &config.ensemble {
        return run_member(config, ensemble, identity, on_listening, shutdown).await;
    }
    let raft_dir = config.settings.data_dir.join("raft");
    if raft_dir.is_dir() {
        return Err(RunError::Ensemble(format!(
            "{} holds an ensemble member's data (raft/), but this configuration has no server.N lines: \
             put them back, or move {} away to start a new standalone keeper",
            config.settings.data_dir.display(),
            raft_dir.display()
        )));
    }
    let (db, recovered) = Database::start(&config.settings)?;
    info!(
        last_zxid = recovered.last_zxid,
        replayed = recovered.replayed,
        truncated_bytes = recovered.truncated_bytes,
        sessions = recovered.state.sessions.len(),
        znodes = recovered.state.tree.node_count(),
        "recovered"
    );
    let opts = sluice_net::ServerOptions { name: "keeper".into(), ..Default::default() };
    let server = sluice_net::Server::<KeeperProtocol>::bind(config.listen, identity, opts)?;
    let addr = server.local_addr().map_err(|source| RunError::Listen(source.to_string()))?;
    let _door = listening(config, identity, &db, addr, on_listening).await?;
    server
        .serve(
            Arc::new(sluice_net::Typed(KeeperService::new(db, Arc::new(config.super_users.clone())))),
            shutdown,
        )
        .await;
    Ok(())
}

/// Runs one ensemble member until `shutdown` completes: opens the Raft log and state
/// machine in `dataDir/raft`, starts the Raft node, its peer port and the client port.
async fn run_member(
    config: &crate::config::KeeperConfig,
    ens: &sluice_ensemble::EnsembleSettings,
    identity: &sluice_net::TlsIdentity,
    on_listening: impl FnOnce(Listening),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), RunError> {
    use sluice_ensemble::log_store::LogStore;
    use sluice_ensemble::peer::{PeerNetwork, PeerProtocol, PeerService};
    use sluice_ensemble::state_machine::StateMachine;
    use std::sync::Arc;

    let data_dir = &config.settings.data_dir;
    let standalone = std::fs::read_dir(data_dir).into_iter().flatten().flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("log.") || name.starts_with("snapshot.")
    });
    if standalone {
        return Err(RunError::Ensemble(format!(
            "{} holds a standalone keeper's transaction log (log.*, snapshot.*); an ensemble member keeps \
             its data in raft/ and would start empty: move those files away (their data does not move into \
             the ensemble), or remove the server.N lines to run standalone",
            data_dir.display()
        )));
    }
    let dir = data_dir.join("raft");
    let log = LogStore::open(&dir).map_err(|e| RunError::Ensemble(e.to_string()))?;
    let log_failed = log.clone();
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let sink: sluice_ensemble::state_machine::Sink = Arc::new(move |ev| {
        let _ = events_tx.send(ev);
    });
    let (sm, state, index) = StateMachine::open(&dir, ens.my_id, sink, config.settings.snap_retain_count)
        .map_err(|e| RunError::Ensemble(e.to_string()))?;
    info!(
        my_id = ens.my_id,
        snapshot_index = index,
        znodes = state.tree.node_count(),
        sessions = state.sessions.len(),
        "ensemble member recovering"
    );
    let db = Database::start_member(&config.settings, ens.my_id, state, index, ens.write_timeout, events_rx);
    let raft_config =
        ens.raft_config(config.settings.snap_count as u64).map_err(|e| RunError::Ensemble(e.to_string()))?;
    let peer_opts = sluice_net::ClientOptions {
        connect_timeout: Duration::from_millis(ens.heartbeat_ms.max(200)),
        request_timeout: ens.install_timeout.max(Duration::from_secs(5)),
        ..Default::default()
    };
    let peers = Arc::new(sluice_net::Client::<PeerProtocol>::new(
        &sluice_net::ClientTls::new(identity.clone()),
        peer_opts,
    )?);
    let raft =
        openraft::Raft::new(ens.my_id, Arc::new(raft_config), PeerNetwork::new(peers.clone()), log, sm)
            .await
            .map_err(|e| RunError::Ensemble(format!("cannot start the raft node: {e}")))?;
    let ensemble = Ensemble::new(ens.my_id, raft.clone(), peers, ens.members.clone(), ens.write_timeout);
    // Every member bootstraps with the same membership; openraft makes that safe, and a
    // member that already has a log ignores it.
    if !raft.is_initialized().await.unwrap_or(true) {
        if let Err(e) = raft.initialize(ensemble.initial_members()).await {
            debug!(error = %e, "initialize: already formed");
        }
    }
    let touch_db = db.clone();
    let service = PeerService::new(
        ensemble.clone(),
        Arc::new(move |sessions| touch_db.do_send(Touched(sessions))),
        ens.write_timeout,
    );
    let my_peer = ens.members.get(&ens.my_id).cloned().unwrap_or_default();
    let peer_listen = crate::config::listen_addr(&my_peer).map_err(|e| RunError::Ensemble(e.to_string()))?;
    let opts =
        sluice_net::ServerOptions { name: "keeper-peer".into(), nodes_only: true, ..Default::default() };
    let peer_server = sluice_net::Server::<PeerProtocol>::bind(peer_listen, identity, opts)?;
    // A dead leader's closed TCP link starts the next election at once (QUIC hears nothing).
    let liveness = sluice_ensemble::liveness::listen(peer_listen).await;
    let follower = tokio::spawn(sluice_ensemble::liveness::follow_leader(
        raft.clone(),
        ens.my_id,
        Arc::new(ens.members.clone()),
    ));
    db.do_send(Attach(ensemble.clone()));
    // Role changes reach the database (it decides expiry while it leads, and tells its
    // clients when it has no quorum).
    let heartbeat = Duration::from_millis(ens.heartbeat_ms);
    let lost_after = ens.election_timeout_ms * 2;
    RoleWatcher::new(raft.metrics(), ens.my_id, lost_after, heartbeat, db.clone().recipient()).start();

    let opts = sluice_net::ServerOptions { name: "keeper".into(), ..Default::default() };
    let server = sluice_net::Server::<KeeperProtocol>::bind(config.listen, identity, opts)?;
    let addr = server.local_addr().map_err(|source| RunError::Listen(source.to_string()))?;
    info!(%addr, peer = %peer_listen, members = ens.members.len(), "ensemble member listening");
    let _door = listening(config, identity, &db, addr, on_listening).await?;
    let (stop_peers, peers_stopped) = oneshot::channel::<()>();
    let peer_task = tokio::spawn(async move {
        peer_server
            .serve(Arc::new(sluice_net::Typed(service)), async move {
                let _ = peers_stopped.await;
            })
            .await
    });
    // A log that cannot be written (a full disk, a failed fsync) takes the member out: it
    // stops and says why; restarted once the disk is fixed, it recovers and catches up.
    let storage_failure = std::sync::OnceLock::new();
    server
        .serve(
            Arc::new(sluice_net::Typed(KeeperService::new(db, Arc::new(config.super_users.clone())))),
            async {
                tokio::select! {
                    () = shutdown => {}
                    why = log_failed.failed() => {
                        error!(error = %why, "this member stops");
                        let _ = storage_failure.set(why);
                    }
                }
            },
        )
        .await;
    follower.abort();
    if let Some(l) = liveness {
        l.abort();
    }
    let _ = raft.shutdown().await;
    let _ = stop_peers.send(());
    let _ = peer_task.await;
    match storage_failure.into_inner() {
        Some(why) => Err(RunError::Storage(why)),
        None => Ok(()),
    }
}

/// Why the keeper could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data directory could not be opened or recovered.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listener could not start.
    #[error(transparent)]
    Server(#[from] sluice_net::ServerError),
    /// The listener's address could not be read.
    #[error("listener: {0}")]
    Listen(String),
    /// The ensemble side could not start.
    #[error("ensemble: {0}")]
    Ensemble(String),
    /// The data directory could no longer be written (a full disk, a failed fsync).
    #[error("{0}")]
    Storage(String),
    /// The peer client could not be made.
    #[error(transparent)]
    Connect(#[from] sluice_net::ConnectError),
}
