//! Running a broker: bind the listener, start the actors, join the cluster, serve until
//! shut down, then leave cleanly (close the keeper session so the controller reacts at
//! once, flush and close every log, write the checkpoints).
//!
//! | actor / task | thread | owns |
//! |---|---|---|
//! | `Partition` (one per replica held here) | log thread | the partition's log; as leader its ISR and high watermark |
//! | `ReplicaManager` | log thread | each partition's role; the routing table |
//! | `FollowerFetcher` (`num.replica.fetchers` per leader broker) | main | replicating from that leader |
//! | `LogManager` | main | flush / retention timer, recovery-point checkpoints |
//! | `Controller` (while elected) | main | the controller core; update senders |
//! | membership task | main | the keeper session, registration, `/controller` election |
//! | QUIC connections | main | requests → actor messages |
//! | Kafka connections (`SSL`, `PLAINTEXT` listeners) | main | Kafka requests → the same service calls |

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sluice_broker_core::metadata::{BrokerEndpoint, ListenerEndpoint};
use sluice_net::{Access, ClientOptions, ClientTls, Routes, ServerOptions, TlsIdentity, Typed};
use sluice_proto::broker::BrokerProtocol;
use sluice_proto::interbroker::InterBrokerProtocol;
use tracing::{error, info, warn};

use crate::config::{BrokerConfig, KafkaSecurity};
use crate::service::{BrokerService, ServiceActors};
use sluice_actors::broker::acls::{load_into, SharedAcls};
use sluice_actors::broker::log_manager::LogManager;
use sluice_actors::broker::membership::{self, Leave, Membership, MembershipContext, SharedController};
use sluice_actors::broker::partition::{PartitionContext, StorageFailures};
use sluice_actors::broker::replica_manager::{
    current, DirFailed, DirFailure, ReplicaManager, ReplicationContext, SharedRouting, StopAll,
};
use sluice_actors::broker::{keeper_of, SharedKeeper};
use sluice_broker_core::acl::PatternType;

/// Why a broker could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listener could not be opened.
    #[error(transparent)]
    Listen(#[from] sluice_net::ServerError),
    /// A log directory is unusable.
    #[error("log directory {dir}: {reason}")]
    LogDir {
        /// The directory.
        dir: String,
        /// Why.
        reason: String,
    },
    /// The broker could not join the cluster.
    #[error(transparent)]
    Join(#[from] membership::JoinError),
    /// The transport client could not be built.
    #[error(transparent)]
    Client(#[from] sluice_net::ConnectError),
    /// A log's files failed while serving; the broker stopped (after moving its leaderships).
    #[error(
        "a log's files failed ({0}): the broker stopped so that other replicas lead; free the space or replace \
         the disk under log.dirs, then start it again"
    )]
    Storage(String),
    /// The ACLs could not be read from the keeper.
    #[error("cannot read the ACLs (/kafka-acl*) from the keeper at {connect}: {reason}")]
    Acls {
        /// `zookeeper.connect`.
        connect: String,
        /// Why.
        reason: String,
    },
    /// A Kafka listener could not be opened.
    #[error("the {listener} listener: {reason}")]
    Kafka {
        /// `SSL` or `PLAINTEXT`.
        listener: &'static str,
        /// Why.
        reason: String,
    },
}

/// Kafka's `meta.properties` in each log directory: which broker the data belongs to.
const META_FILE: &str = "meta.properties";

fn prepare_log_dir(dir: &Path, broker_id: i32) -> Result<(), RunError> {
    let err = |reason: String| RunError::LogDir { dir: dir.display().to_string(), reason };
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create it: {e}")))?;
    let meta = dir.join(META_FILE);
    match std::fs::read_to_string(&meta) {
        Ok(text) => {
            let stored = text
                .lines()
                .find_map(|l| l.strip_prefix("broker.id="))
                .and_then(|v| v.trim().parse::<i32>().ok());
            match stored {
                Some(id) if id == broker_id => Ok(()),
                Some(id) => Err(err(format!(
                    "holds data of broker {id} ({}), but this is broker {broker_id}; point log.dirs elsewhere or fix broker.id",
                    meta.display()
                ))),
                None => Err(err(format!("{} has no valid broker.id line", meta.display()))),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&meta, format!("version=0\nbroker.id={broker_id}\n"))
                .map_err(|e| err(format!("cannot write {}: {e}", meta.display())))
        }
        Err(e) => Err(err(format!("cannot read {}: {e}", meta.display()))),
    }
}

/// Where a broker serves, once bound.
#[derive(Debug, Clone)]
pub struct Listening {
    /// The QUIC listener.
    pub quic: SocketAddr,
    /// The Kafka listeners (`SSL`, `PLAINTEXT`), in `listeners` order.
    pub kafka: Vec<(KafkaSecurity, SocketAddr)>,
}

/// Runs a broker until `shutdown` completes. `on_listening` gets the bound addresses.
/// Must run inside an actix `System`.
pub async fn run(
    config: BrokerConfig,
    identity: TlsIdentity,
    on_listening: impl FnOnce(&Listening),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    if !config.no_effect.is_empty() {
        // One notice for all of them, as Kafka's "supplied but not used" line.
        let listed: Vec<String> = config.no_effect.iter().map(|(k, why)| format!("{k} ({why})")).collect();
        warn!("these Kafka settings are accepted and have no effect here: {}", listed.join("; "));
    }
    for dir in &config.log_dirs {
        prepare_log_dir(dir, config.broker_id)?;
    }
    let max_frame =
        (config.log.max_message_bytes as u32).saturating_add(64 << 10).max(sluice_net::DEFAULT_MAX_FRAME);
    let opts =
        ServerOptions { name: format!("broker-{}", config.broker_id), max_frame, ..Default::default() };
    let server = sluice_net::Server::<BrokerProtocol>::bind(config.listener, &identity, opts)?;
    let local =
        server.local_addr().map_err(|e| RunError::LogDir { dir: "-".into(), reason: e.to_string() })?;
    let port = if config.advertised_port == 0 { local.port() } else { config.advertised_port };
    // The Kafka listeners are bound before registering, so their ports are known.
    let mut kafka_doors = Vec::new();
    let mut listeners = Vec::new();
    for l in &config.kafka_listeners {
        let door = crate::kafka::bind(l.bind, l.security, &identity)
            .await
            .map_err(|reason| RunError::Kafka { listener: l.security.name(), reason })?;
        let bound = door
            .local_addr()
            .map_err(|e| RunError::Kafka { listener: l.security.name(), reason: e.to_string() })?;
        listeners.push(ListenerEndpoint {
            name: l.security.name().to_string(),
            host: l.advertised_host.clone(),
            port: if l.advertised_port == 0 { bound.port() } else { l.advertised_port },
        });
        kafka_doors.push((l.security, door, bound));
    }
    let endpoint = BrokerEndpoint {
        id: config.broker_id,
        host: config.advertised_host.clone(),
        port,
        rack: config.rack.clone(),
        listeners,
    };
    let config = Arc::new(config);
    let tls = ClientTls::new(identity.clone());
    let client_options =
        ClientOptions { max_frame, request_timeout: Duration::from_secs(10), ..Default::default() };
    let net = Arc::new(sluice_net::Client::<BrokerProtocol>::new(&tls, client_options.clone())?);
    let interbroker = Arc::new(sluice_net::Client::<InterBrokerProtocol>::new(&tls, client_options)?);
    let tick = config
        .log_retention_check_interval
        .min(config.log.flush_interval_ms.map_or(Duration::MAX, |ms| Duration::from_millis(ms.max(1) as u64)))
        .min(Duration::from_secs(60));
    let cleaner = Arc::new(sluice_log::LogCleaner::start(
        sluice_log::CleanerConfig { threads: config.log_cleaner_threads as usize, ..Default::default() },
        sluice_actors::clock::now_ms,
        |event| tracing::debug!(?event, "log cleaner"),
    ));
    let log_manager =
        LogManager::new(tick, config.log_retention_check_interval, &config.log_dirs, cleaner.clone()).start();
    let log_thread = Arbiter::new();
    let routing: SharedRouting = SharedRouting::default();
    let keeper = SharedKeeper::default();
    let controller = SharedController::default();
    let (storage, storage_failures) = StorageFailures::new();
    let offline = membership::SharedOffline::default();
    let replication = ReplicationContext {
        net_arbiter: Arbiter::current(),
        net: interbroker.clone(),
        partition: PartitionContext {
            broker_id: config.broker_id,
            lag_max: config.replica_lag_time_max,
            keeper: keeper.clone(),
            storage,
        },
    };
    let replicas = {
        let (config, routing, log_manager, cleaner) =
            (config.clone(), routing.clone(), log_manager.clone(), cleaner.clone());
        ReplicaManager::start_in_arbiter(&log_thread.handle(), move |_| {
            ReplicaManager::new(config, routing, log_manager, cleaner, replication)
        })
    };
    let first = membership::join(&config, &endpoint, &tls, &Default::default()).await?;
    // The ACLs are in place before the first request is served; the session's AclWatcher
    // keeps them current from here.
    let acls = SharedAcls::default();
    for pattern_type in [PatternType::Literal, PatternType::Prefixed] {
        let n = load_into(&first.0, &acls, pattern_type).await.map_err(|e| RunError::Acls {
            connect: config.zookeeper_connect.clone(),
            reason: e.to_string(),
        })?;
        info!(pattern_type = %pattern_type, acls = n, "ACLs loaded");
    }
    let groups =
        sluice_actors::broker::group_manager::GroupManager::new(config.clone(), routing.clone(), net).start();
    let service = BrokerService::new(
        config.clone(),
        routing.clone(),
        keeper.clone(),
        ServiceActors {
            replicas: replicas.clone(),
            controller: controller.clone(),
            groups,
            log_manager: log_manager.clone(),
            interbroker: interbroker.clone(),
            acls: acls.clone(),
        },
        max_frame,
    );
    let is_controller = Arc::new(std::sync::atomic::AtomicBool::new(false));
    crate::stats::spawn(config.clone(), routing.clone(), is_controller.clone());
    let ctx = MembershipContext {
        config: config.clone(),
        endpoint: endpoint.clone(),
        tls,
        net: interbroker,
        keeper: keeper.clone(),
        is_controller: is_controller.clone(),
        controller: controller.clone(),
        acls,
        offline: offline.clone(),
    };
    let net_for_shutdown = ctx.net.clone();
    // Why the broker stopped on its own: a log's files failed (see `StorageFailures`).
    let stopped_for = Arc::new(std::sync::Mutex::new(None::<String>));
    let membership = Membership::new(ctx, first).start();
    let mut storage_failed =
        watch_storage(storage_failures, replicas.clone(), keeper.clone(), endpoint.clone(), offline.clone());
    let limits = crate::kafka::Limits {
        max_request: config.socket_request_max_bytes,
        idle: config.connections_max_idle,
        per_ip: config.max_connections_per_ip,
    };
    let sessions = crate::kafka::fetch_sessions();
    let mut kafka_tasks = Vec::new();
    let mut kafka_bound = Vec::new();
    for (security, door, bound) in kafka_doors {
        info!(listener = security.name(), addr = %bound, "Kafka listener serving");
        kafka_bound.push((security, bound));
        kafka_tasks.push(crate::kafka::serve(door, security, service.clone(), limits, sessions.clone()));
    }
    on_listening(&Listening { quic: local, kafka: kafka_bound });
    info!(broker = endpoint.id, addr = %local, advertised = %endpoint.addr(), "broker serving");
    let shutdown_config = config.clone();
    // The client protocol and, on the same endpoint, the inter-broker protocol, which only
    // node certificates may open.
    let service = Arc::new(Typed(service));
    let routes = Routes::new().with::<InterBrokerProtocol, _>(service.clone(), Access::NodesOnly);
    server
        .serve_with(service, routes, {
            let stopped_for = stopped_for.clone();
            async move {
            tokio::select! {
                () = shutdown => info!("shutting down"),
                failed = storage_failed.wait_for(Option::is_some) => {
                    let what = failed.ok().and_then(|f| f.clone()).unwrap_or_default();
                    error!(failure = %what, "the last working log directory failed (a full or failing disk): this \
                        broker stops, moving its leaderships to the other replicas first; free the space or replace \
                        the disk, then start it again");
                    *stopped_for.lock().unwrap_or_else(|p| p.into_inner()) = Some(what);
                }
            }
            if shutdown_config.controlled_shutdown_enable {
                // Still serving: producers keep being answered while leadership moves.
                controlled_shutdown(&shutdown_config, &keeper, &controller, &routing, &net_for_shutdown)
                    .await;
            }
            }
        })
        .await?;
    for task in kafka_tasks {
        task.abort();
    }
    let _ = membership.send(Leave).await;
    let _ = replicas.send(StopAll).await;
    log_thread.stop();
    info!(broker = endpoint.id, "broker stopped");
    let failure = stopped_for.lock().unwrap_or_else(|p| p.into_inner()).take();
    match failure {
        Some(what) => Err(RunError::Storage(what)),
        None => Ok(()),
    }
}

/// Kafka's controlled shutdown: asks the controller (itself, if this broker is the
/// controller) to move this broker's leaderships away, until it leads nothing or
/// `controlled.shutdown.max.retries` attempts have failed.
async fn controlled_shutdown(
    config: &BrokerConfig,
    keeper: &SharedKeeper,
    controller: &SharedController,
    routing: &SharedRouting,
    net: &sluice_net::Client<InterBrokerProtocol>,
) {
    use sluice_broker_core::znodes;
    use sluice_proto::interbroker::ControlledShutdown;
    let me = config.broker_id;
    let started = std::time::Instant::now();
    // Nothing to hand over (no partition led here has another live replica): no need to
    // ask — which also keeps a broker whose keeper is gone from waiting on it.
    if current(routing).update.as_ref().is_none_or(|u| u.handovers(me) == 0) {
        info!("controlled shutdown: nothing led here has another live replica");
        return;
    }
    // Each attempt is bounded: a keeper or controller that does not answer must not hold
    // the shutdown for long.
    const ATTEMPT: Duration = Duration::from_secs(5);
    for attempt in 0..=config.controlled_shutdown_max_retries {
        if attempt > 0 {
            tokio::time::sleep(config.controlled_shutdown_retry_backoff).await;
        }
        let own = controller.lock().map_or_else(|p| p.into_inner().clone(), |c| c.clone());
        let ask = async {
            if let Some(own) = own {
                return own
                    .send(sluice_actors::broker::controller::BeginShutdown(me))
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            let k = keeper_of(keeper)?;
            let (data, _) = k.get_data(znodes::CONTROLLER, false).await.ok()?;
            let id = znodes::decode_controller(&data).ok()?;
            let addr = current(routing).update.as_ref().and_then(|u| u.broker(id)).map(|b| b.addr())?;
            match net.call(&addr, ControlledShutdown { broker_id: me }).await {
                Ok(Ok(n)) => Some(n),
                Ok(Err(e)) => {
                    warn!(error = %e, "the controller refused the controlled shutdown");
                    None
                }
                Err(_) => None,
            }
        };
        let remaining = tokio::time::timeout(ATTEMPT, ask).await.ok().flatten();
        match remaining {
            Some(0) => {
                info!(
                    ms = started.elapsed().as_millis() as u64,
                    "controlled shutdown done: this broker leads nothing"
                );
                return;
            }
            Some(n) => info!(
                partitions = n,
                "controlled shutdown: partitions still led here (no other in-sync replica)"
            ),
            None => warn!(attempt, "controlled shutdown attempt failed"),
        }
    }
    warn!("controlled shutdown did not finish; shutting down anyway");
}

/// Takes each failed log directory offline ([`DirFailed`]) and tells the controller which
/// replicas went with it; the returned channel says why the broker must stop once the last
/// working directory has failed.
fn watch_storage(
    mut failures: tokio::sync::mpsc::UnboundedReceiver<(sluice_log::TopicPartition, String)>,
    replicas: Addr<ReplicaManager>,
    keeper: SharedKeeper,
    endpoint: BrokerEndpoint,
    offline: membership::SharedOffline,
) -> tokio::sync::watch::Receiver<Option<String>> {
    let (stop, stopped) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        while let Some((tp, what)) = failures.recv().await {
            match replicas.send(DirFailed(tp)).await {
                Ok(DirFailure::Offline { dir, replicas, newly }) => {
                    if newly {
                        error!(dir = %dir.display(), failure = %what, offline = replicas.len(),
                            "a log directory failed (a full or failing disk): its partitions go offline here and \
                            lead on their other replicas; this broker keeps serving its other directories. Free the \
                            space or replace the disk, then restart the broker to bring the directory back");
                    }
                    if let Ok(mut o) = offline.lock() {
                        *o = replicas.clone();
                    }
                    // Until the controller has heard (the keeper may be away for a moment).
                    let mut backoff =
                        sluice_net::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
                    loop {
                        let Some(k) = keeper_of(&keeper) else {
                            tokio::time::sleep(backoff.next_delay()).await;
                            continue;
                        };
                        match membership::report_offline_replicas(&k, &endpoint, &replicas).await {
                            Ok(()) => break,
                            Err(e) => {
                                warn!(error = %e, "cannot tell the controller of the offline replicas yet; retrying");
                                tokio::time::sleep(backoff.next_delay()).await;
                            }
                        }
                    }
                }
                Ok(DirFailure::AllFailed { dir }) => {
                    let _ = stop.send(Some(format!("{}: {what}", dir.display())));
                    return;
                }
                Err(_) => return,
            }
        }
    });
    stopped
}
