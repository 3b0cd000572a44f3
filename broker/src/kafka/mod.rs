//! The Kafka door: Kafka's wire protocol on the broker's `SSL://` and `PLAINTEXT://`
//! listeners, for Kafka's own clients (librdkafka and kcat, kafka-python, the Java client).
//!
//! Each TCP connection is one task reading requests and one writing answers. Requests are
//! read in order and pipelined: each is decoded and started at once (a produce is handed to
//! its partitions before the next request is read, so a connection's produces are appended
//! in the order sent), and the answers are written in request order, as Kafka does. The
//! handlers ([`apis`]) translate each request into the same calls the QUIC service makes
//! ([`crate::service::BrokerService`]), so every rule (acks, `min.insync.replicas`,
//! idempotent sequences, leader epochs, high-watermark visibility, group rebalances) is the
//! same whichever door a client uses.
//!
//! Bad input is treated as Kafka treats it: a size prefix over `socket.request.max.bytes`,
//! an unknown API key, a version not served (except ApiVersions, answered with version 0
//! and the versions served) or a body that does not decode closes that connection, with a
//! log line naming the client and the API; every other connection carries on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use sluice_broker_core::fetch_session::FetchSessions;
use sluice_net::tcp::{read_sized, PerIpLimit, Refused, SizedFrameError, TcpConn, TcpDoor};
use sluice_net::Peer;
use sluice_proto::kafka::{peek, read_head, HeadError};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn, Instrument};

use crate::config::KafkaSecurity;
use crate::service::BrokerService;

mod apis;

/// Answers started but not yet written, per connection (Kafka's clients keep at most
/// `max.in.flight.requests.per.connection`, 5 by default, in flight).
const MAX_IN_FLIGHT: usize = 64;
/// How long a client has for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Kafka's `max.incremental.fetch.session.cache.slots`.
const FETCH_SESSION_SLOTS: usize = 1000;

/// One Kafka listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `socket.request.max.bytes`.
    pub max_request: usize,
    /// `connections.max.idle.ms`.
    pub idle: Duration,
    /// `max.connections.per.ip`.
    pub per_ip: usize,
}

/// What every connection of one listener shares.
struct Shared {
    service: BrokerService,
    /// The listener's name (`SSL`, `PLAINTEXT`): Metadata and FindCoordinator answer with
    /// the brokers' addresses on it.
    listener: &'static str,
    limits: Limits,
    sessions: Arc<Mutex<FetchSessions>>,
    per_ip: Arc<PerIpLimit>,
}

/// A broker's fetch sessions, shared by its Kafka listeners.
pub fn fetch_sessions() -> Arc<Mutex<FetchSessions>> {
    Arc::new(Mutex::new(FetchSessions::new(FETCH_SESSION_SLOTS)))
}

/// Serves `door` until the returned task is aborted.
pub fn serve(
    door: TcpDoor,
    security: KafkaSecurity,
    service: BrokerService,
    limits: Limits,
    sessions: Arc<Mutex<FetchSessions>>,
) -> tokio::task::JoinHandle<()> {
    let shared = Arc::new(Shared {
        service,
        listener: security.name(),
        limits,
        sessions,
        per_ip: PerIpLimit::new(limits.per_ip),
    });
    let listener = shared.listener;
    let per_ip = shared.per_ip.clone();
    let turned_away = move |remote: SocketAddr, why: Refused| match why {
        Refused::PerIp { limit } => {
            refused(listener, "max.connections.per.ip");
            warn!(
                listener,
                %remote,
                limit,
                "Kafka listener: connection refused, its address holds max.connections.per.ip connections"
            );
        }
        Refused::Handshake(e) => {
            refused(listener, "handshake");
            info!(listener, "Kafka listener: {e}");
        }
    };
    tokio::spawn(door.serve(listener, Some(per_ip), HANDSHAKE_TIMEOUT, turned_away, move |peer, conn| {
        let span = tracing::info_span!("kafka", listener, peer = %peer.principal, remote = %peer.remote);
        serve_connection(shared.clone(), peer, conn).instrument(span)
    }))
}

/// An answer being made: `None` when the request gets none (a produce with `acks=0`); an
/// error closes the connection.
type Answer = tokio::task::JoinHandle<Result<Option<BytesMut>, String>>;

/// `sluice_kafka_connections_refused_total{listener, reason}`.
fn refused(listener: &'static str, reason: &'static str) {
    metrics::counter!("sluice_kafka_connections_refused_total", "listener" => listener, "reason" => reason)
        .increment(1);
}

async fn serve_connection(shared: Arc<Shared>, peer: Peer, conn: TcpConn) {
    debug!("connected");
    let open = metrics::gauge!("sluice_kafka_connections", "listener" => shared.listener);
    open.increment(1.0);
    let (mut reader, mut writer) = tokio::io::split(conn);
    let (answers, mut queue) = tokio::sync::mpsc::channel::<Answer>(MAX_IN_FLIGHT);
    let write = async move {
        while let Some(answer) = queue.recv().await {
            let frame = match answer.await {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => continue,
                Ok(Err(reason)) => {
                    warn!("closing the connection: {reason}");
                    break;
                }
                Err(e) => {
                    warn!("closing the connection: a request's handler failed: {e}");
                    break;
                }
            };
            if let Err(e) = writer.write_all(&frame).await {
                debug!("connection lost while answering: {e}");
                break;
            }
            if queue.is_empty() {
                if let Err(e) = writer.flush().await {
                    debug!("connection lost while answering: {e}");
                    break;
                }
            }
        }
        let _ = writer.shutdown().await;
    };
    let writer_task = tokio::spawn(write.in_current_span());
    let client = peer.remote;
    loop {
        let frame = match tokio::time::timeout(
            shared.limits.idle,
            read_sized(&mut reader, shared.limits.max_request),
        )
        .await
        {
            Err(_) => {
                debug!(idle = ?shared.limits.idle, "closing an idle connection (connections.max.idle.ms)");
                break;
            }
            Ok(Ok(Some(frame))) => frame.freeze(),
            Ok(Ok(None)) => break,
            Ok(Err(SizedFrameError::Oversize { size, max })) => {
                warn!(
                    %client,
                    "closing the connection: a request of {size} bytes is larger than socket.request.max.bytes ({max})"
                );
                break;
            }
            Ok(Err(SizedFrameError::Io(e))) => {
                debug!("connection lost: {e}");
                break;
            }
        };
        let mut body = frame.clone();
        let head = match read_head(&mut body) {
            Ok(head) => head,
            Err(e) => {
                let api = match &e {
                    HeadError::UnknownApi(k) => format!("API key {k}"),
                    _ => peek(&frame).map_or_else(|| "?".into(), |(k, v)| format!("API key {k} v{v}")),
                };
                warn!(%client, %api, "closing the connection: {e}");
                break;
            }
        };
        let api = head.key;
        let version = head.version;
        match apis::start(&shared, &peer, head, body) {
            Ok(answer) => {
                if answers.send(answer).await.is_err() {
                    break;
                }
            }
            Err(reason) => {
                warn!(%client, ?api, version, "closing the connection: {reason}");
                break;
            }
        }
    }
    drop(answers);
    let _ = writer_task.await;
    open.decrement(1.0);
    debug!("disconnected");
}

/// Binds one Kafka listener: TLS with the node's identity for `SSL`, plain TCP for
/// `PLAINTEXT` (with a warning: anyone who reaches it is served).
pub async fn bind(
    bind: SocketAddr,
    security: KafkaSecurity,
    identity: &sluice_net::TlsIdentity,
) -> Result<TcpDoor, String> {
    let tcp = match security {
        KafkaSecurity::Ssl => {
            let config = sluice_net::tls::tcp_server_config(identity).map_err(|e| e.to_string())?;
            sluice_net::tcp::TcpSecurity::Tls(Arc::new(config))
        }
        KafkaSecurity::Plaintext => {
            warn!(
                %bind,
                "PLAINTEXT listener: Kafka's protocol without TLS; every client is User:ANONYMOUS and \
                 nothing is encrypted. Remove it from listeners outside a trusted network."
            );
            sluice_net::tcp::TcpSecurity::Plaintext
        }
    };
    TcpDoor::bind(bind, tcp).await.map_err(|e| format!("cannot listen on {bind} (TCP): {e}"))
}
