//! The ZooKeeper door: ZooKeeper's client protocol (jute, [`sluice_zookeeper_proto`]) over
//! TCP — TLS with a client certificate on `secureClientPort`, plain on `plaintextClientPort`
//! — for the clients people already run (zkCli.sh and the Java client, Curator, kazoo, the C
//! client, the `zookeeper-client` crate).
//!
//! Each connection is a task that reads frames and a task that writes them. After the
//! connect handshake a connection carries one session, served by its own [`SessionActor`]
//! exactly as a `sluice-keeper/1` channel is (see [`crate::service`]): requests go into the
//! actor's mailbox in the order they arrive, replies leave in that order, and a read that
//! follows a write waits for the write's reply (a session reads its own writes). Watch
//! events are queued on the connection's writer by the database the moment their change is
//! applied, so an event always leaves before the reply to any later read that reflects it.
//!
//! Every request becomes one of the keeper's own requests; nothing here decides a rule.
//! A connection holds the identities of its certificate (`x509`), its address (`ip`) and its
//! `addauth digest` packets; the keeper checks every request against the znodes' ACLs with
//! them. What the keeper does not do is answered with ZooKeeper's UNIMPLEMENTED and the
//! session goes on: reconfig and SASL. A frame with a corrupt length, over `jute.maxbuffer`, with
//! an unknown op code or a malformed body closes that connection with a log line naming the
//! client; the session lives on until it expires, as in ZooKeeper.

mod fourlw;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use sluice_actors::keeper::{ClientRequest, Database, Detach, OpenSession, Outbox, SessionActor};
use sluice_keeper_core::{
    Acl, CreateMode, ErrorCode, KeeperError, Op, OpResult, SuperUsers, WatchKind, WatchSet,
};
use sluice_net::tcp::{
    read_body, read_prefix, read_sized, PerIpLimit, Refused, SizedFrameError, TcpConn, TcpDoor, TcpSecurity,
};
use sluice_net::Peer;
use sluice_proto::keeper::{
    AddAuth, AddWatch, Close, Connect, CountDescendants, Exists, GetAcl, GetChildren, GetData, GetEphemerals,
    KeeperPush, KeeperRequest, KeeperResponse, Ping, RemoveWatches, SetWatches, SyncRequest, Write,
};
use sluice_zookeeper_proto::{self as zk, code, op, ConnectRequest, MultiOp, MultiResult, ReadOp, Request};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn, Instrument};

use crate::config::ZooKeeperDoor;

/// How long a client has for the TLS handshake and its connect request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames a connection's writer holds (watch events are dropped with the connection beyond
/// it, as the QUIC door drops a client that does not read its events).
const OUTBOUND: usize = 16 * 1024;
/// Requests of one connection in the pipeline at once.
const PIPELINE_DEPTH: usize = 1024;
/// ZooKeeper's `jute.maxbuffer.extrasize`: room for headers above `jute.maxbuffer`.
const EXTRA_BUFFER: usize = 1024;

/// The door's listeners, served until this is dropped.
#[derive(Debug)]
pub struct Door {
    /// Where `secureClientPort` listens.
    pub secure: Option<SocketAddr>,
    /// Where `plaintextClientPort` listens.
    pub plaintext: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Door {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What a connection has sent and been sent (for `cons`, `stat`, `mntr`).
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
}

/// A connection with a session, as `cons` lists it.
#[derive(Debug)]
struct ConnInfo {
    remote: SocketAddr,
    session: u64,
    timeout_ms: u32,
    established: SystemTime,
    counters: Arc<Counters>,
}

struct Shared {
    db: Addr<Database>,
    /// Where session actors live (connections are served on tokio tasks).
    arbiter: ArbiterHandle,
    settings: ZooKeeperDoor,
    /// `conf`'s lines.
    conf: Vec<(String, String)>,
    conns: Mutex<BTreeMap<usize, ConnInfo>>,
    totals: Counters,
    /// `maxClientCnxns` (`None`: no limit).
    per_ip: Option<Arc<PerIpLimit>>,
    /// Who passes every znode ACL check.
    supers: Arc<SuperUsers>,
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, ConnInfo>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens the door's listeners (those `settings` names) and serves them on the actix
/// system's tokio runtime; `conf` gives what the `conf` four-letter word prints, once the
/// ports are known. Must be called inside the actix system.
pub async fn open(
    settings: &ZooKeeperDoor,
    identity: &sluice_net::TlsIdentity,
    db: Addr<Database>,
    supers: Arc<SuperUsers>,
    conf: impl FnOnce(&Door) -> Vec<(String, String)>,
) -> Result<Door, String> {
    let mut door = Door { secure: None, plaintext: None, tasks: Vec::new() };
    let mut listeners = Vec::new();
    if let Some(addr) = settings.secure {
        let tls = sluice_net::tls::tcp_server_config(identity).map_err(|e| e.to_string())?;
        let listener = TcpDoor::bind(addr, TcpSecurity::Tls(Arc::new(tls)))
            .await
            .map_err(|e| format!("secureClientPort: cannot listen on {addr} (TCP): {e}"))?;
        door.secure = Some(listener.local_addr().map_err(|e| e.to_string())?);
        listeners.push((listener, "secure"));
    }
    if let Some(addr) = settings.plaintext {
        let listener = TcpDoor::bind(addr, TcpSecurity::Plaintext)
            .await
            .map_err(|e| format!("plaintextClientPort: cannot listen on {addr} (TCP): {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        warn!(
            addr = %bound,
            "plaintextClientPort: ZooKeeper's protocol without TLS; anyone who reaches it is served and nothing \
             is encrypted. Use secureClientPort outside a trusted network."
        );
        door.plaintext = Some(bound);
        listeners.push((listener, "plaintext"));
    }
    let shared = Arc::new(Shared {
        db,
        arbiter: Arbiter::current(),
        settings: settings.clone(),
        conf: conf(&door),
        conns: Mutex::new(BTreeMap::new()),
        totals: Counters::default(),
        per_ip: (settings.max_client_cnxns > 0).then(|| PerIpLimit::new(settings.max_client_cnxns)),
        supers,
    });
    for (listener, name) in listeners {
        door.tasks.push(tokio::spawn(accept(listener, name, shared.clone())));
    }
    Ok(door)
}

async fn accept(listener: TcpDoor, name: &'static str, shared: Arc<Shared>) {
    let turned_away = move |remote: SocketAddr, why: Refused| {
        metrics::counter!("sluice_zookeeper_connections_refused_total", "listener" => name).increment(1);
        match why {
            Refused::PerIp { limit } => warn!(
                listener = name,
                %remote,
                "ZooKeeper door: too many connections from {} - max is {limit} (maxClientCnxns)",
                remote.ip(),
            ),
            Refused::Handshake(e) => info!(listener = name, %remote, "ZooKeeper door: {e}"),
        }
    };
    let per_ip = shared.per_ip.clone();
    listener
        .serve(name, per_ip, HANDSHAKE_TIMEOUT, turned_away, move |peer, conn| {
            let span =
                tracing::info_span!("zookeeper", listener = name, peer = %peer.principal, remote = %peer.remote);
            connection(shared.clone(), peer, conn).instrument(span)
        })
        .await
}

/// What a connection's writer sends.
enum Out {
    Frame(Vec<u8>),
    /// Close the connection (after what is queued before it).
    Close,
}

/// The database's pushes for this connection's session, as frames on its writer.
/// `closing`: the client asked to close the session, whose end then comes as the answer to
/// that request rather than as a closed connection.
fn outbox(tx: mpsc::Sender<Out>, closing: Arc<AtomicBool>) -> Outbox {
    Outbox::Door(Arc::new(move |push| {
        let out = match push {
            KeeperPush::Watch { event, path, zxid } => Out::Frame(zk::watch_event(event as i32, &path, zxid)),
            KeeperPush::SessionExpired if closing.load(Ordering::Relaxed) => return true,
            // ZooKeeper closes the connection of an expired session (the client learns of the
            // expiry when it reconnects) and of a server that lost its quorum (the client
            // moves to another server).
            KeeperPush::SessionExpired => Out::Close,
            KeeperPush::ReadOnly(true) => {
                info!(
                    "this server has no quorum and the keeper offers no read-only mode: closing the \
                     ZooKeeper connection so that its client moves to a server with one"
                );
                Out::Close
            }
            KeeperPush::ReadOnly(false) => return true,
        };
        tx.try_send(out).is_ok()
    }))
}

async fn write_loop(
    mut wr: WriteHalf<TcpConn>,
    mut rx: mpsc::Receiver<Out>,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
    done: watch::Sender<bool>,
) {
    while let Some(out) = rx.recv().await {
        let Out::Frame(frame) = out else { break };
        if let Err(e) = wr.write_all(&frame).await {
            debug!("connection lost while answering: {e}");
            break;
        }
        counters.sent.fetch_add(1, Ordering::Relaxed);
        shared.totals.sent.fetch_add(1, Ordering::Relaxed);
        if rx.is_empty() && wr.flush().await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
    let _ = done.send(true);
}

async fn connection(shared: Arc<Shared>, peer: Peer, conn: TcpConn) {
    let client = peer.remote;
    let (mut rd, wr) = tokio::io::split(conn);
    let max = shared.settings.max_buffer + EXTRA_BUFFER;
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_prefix(&mut rd)).await {
        Ok(Ok(Some(p))) => p,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return debug!("connection lost before its connect request: {e}"),
        Err(_) => return debug!("no connect request within {HANDSHAKE_TIMEOUT:?}; closing"),
    };
    if let Some(word) = zk::four_letter_word(first) {
        let text = fourlw::answer(&shared, word).await;
        let mut wr = wr;
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.shutdown().await;
        return;
    }
    let frame = match read_body(&mut rd, first, max).await {
        Ok(f) => f,
        Err(e) => return warn!(%client, "closing the connection: its connect request: {e}"),
    };
    let connect = match ConnectRequest::decode(&frame) {
        Ok(c) => c,
        Err(e) => return warn!(%client, "closing the connection: its connect request is {e}"),
    };
    let counters = Arc::new(Counters::default());
    counters.received.fetch_add(1, Ordering::Relaxed);
    shared.totals.received.fetch_add(1, Ordering::Relaxed);
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND);
    let (done_tx, mut done) = watch::channel(false);
    let writer =
        tokio::spawn(write_loop(wr, out_rx, counters.clone(), shared.clone(), done_tx).in_current_span());
    let closing = Arc::new(AtomicBool::new(false));
    let Some(session) = open_session(&shared, &peer, &connect, &out_tx, &closing).await else {
        let _ = out_tx.send(Out::Close).await;
        let _ = writer.await;
        return;
    };
    let (session_id, timeout_ms) = session;
    shared.conns().insert(
        peer.connection_id,
        ConnInfo {
            remote: client,
            session: session_id,
            timeout_ms,
            established: SystemTime::now(),
            counters: counters.clone(),
        },
    );
    let open = metrics::gauge!("sluice_zookeeper_connections");
    open.increment(1.0);
    let db = shared.db.clone();
    let (ids, supers) = (crate::service::connection_ids(&peer, &shared.supers), shared.supers.clone());
    let actor = SessionActor::start_in_arbiter(&shared.arbiter, move |_| {
        SessionActor::new(session_id, db, ids, supers)
    });
    let conn = Conn { actor, zxid: Arc::new(AtomicI64::new(connect.last_zxid_seen)), peer: peer.clone() };
    let (inflight_tx, inflight_rx) = mpsc::channel(PIPELINE_DEPTH);
    let replier = tokio::spawn(reply_in_order(inflight_rx, out_tx.clone()).in_current_span());
    let mut write_in_flight = false;
    loop {
        let read = tokio::select! {
            r = read_sized(&mut rd, max) => r,
            _ = done.changed() => break,
        };
        let frame = match read {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(SizedFrameError::Oversize { size, max }) => {
                warn!(%client, "closing the connection: a request of {size} bytes is over jute.maxbuffer ({max} with headers)");
                break;
            }
            Err(SizedFrameError::Io(e)) => {
                debug!("connection lost: {e}");
                break;
            }
        };
        counters.received.fetch_add(1, Ordering::Relaxed);
        shared.totals.received.fetch_add(1, Ordering::Relaxed);
        let framed = match zk::decode_request(&frame) {
            Ok(f) => f,
            Err(e) => {
                warn!(%client, session = format_args!("0x{session_id:x}"), "closing the connection: {e}");
                break;
            }
        };
        let close = matches!(framed.request, Request::CloseSession);
        if close {
            closing.store(true, Ordering::Relaxed);
        }
        let (kind, reply) = conn.start(framed);
        if kind == Kind::Read && write_in_flight {
            let (tx, drained) = oneshot::channel();
            if inflight_tx.send(InFlight::Barrier(tx)).await.is_err() || drained.await.is_err() {
                break;
            }
        }
        if kind != Kind::Local {
            write_in_flight = kind == Kind::Write;
        }
        if inflight_tx.send(InFlight::Reply(reply)).await.is_err() || close {
            break;
        }
    }
    drop(inflight_tx);
    let _ = replier.await;
    let _ = out_tx.send(Out::Close).await;
    drop(out_tx);
    drop(conn);
    let _ = writer.await;
    shared.conns().remove(&peer.connection_id);
    open.decrement(1.0);
    shared.db.do_send(Detach { session: session_id, connection: peer.connection_id });
    debug!(session = format_args!("0x{session_id:x}"), "disconnected");
}

/// Opens or resumes the connect request's session and answers it; `None` when the
/// connection is to close (the answer, if any, is queued).
async fn open_session(
    shared: &Shared,
    peer: &Peer,
    connect: &ConnectRequest,
    out: &mpsc::Sender<Out>,
    closing: &Arc<AtomicBool>,
) -> Option<(u64, u32)> {
    let client = peer.remote;
    let expired = || Out::Frame(zk::connect_response(0, 0, &[0; 16]));
    let resume = match (connect.session_id, <[u8; 16]>::try_from(connect.password.as_slice())) {
        (0, _) => None,
        (id, Ok(password)) => Some((id as u64, password)),
        (id, Err(_)) => {
            info!(%client, session = format_args!("0x{id:x}"), "a resume with a password that is not 16 bytes: expired");
            let _ = out.send(expired()).await;
            return None;
        }
    };
    if connect.read_only {
        debug!(%client, "the client accepts a read-only server; the keeper offers none (a server without quorum closes its connections)");
    }
    let request = Connect {
        timeout_ms: u32::try_from(connect.timeout_ms).unwrap_or(0),
        resume,
        seen_zxid: connect.last_zxid_seen,
    };
    let opened = shared
        .db
        .send(OpenSession {
            connect: request,
            sender: outbox(out.clone(), closing.clone()),
            connection: peer.connection_id,
        })
        .await;
    match opened {
        Ok(Ok(c)) => {
            let answer = zk::connect_response(c.timeout_ms as i32, c.session as i64, &c.password);
            out.send(Out::Frame(answer)).await.ok()?;
            debug!(
                session = format_args!("0x{:x}", c.session),
                timeout_ms = c.timeout_ms,
                "session connected"
            );
            Some((c.session, c.timeout_ms))
        }
        Ok(Err(e @ KeeperError::Behind { .. })) => {
            // No answer: the client tries the next server, as with ZooKeeper.
            info!(%client, "refusing the connection: {e}");
            None
        }
        Ok(Err(e @ (KeeperError::SessionExpired { .. } | KeeperError::UnknownSession { .. }))) => {
            info!(%client, "session not resumed: {e}");
            let _ = out.send(expired()).await;
            None
        }
        Ok(Err(e)) => {
            warn!(%client, "closing the connection: could not open a session: {e}");
            None
        }
        Err(_) => None,
    }
}

/// How a request is ordered against the session's others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Goes through the log (a later read waits for its reply).
    Write,
    /// Answered from the applied state.
    Read,
    /// Answered by the door itself.
    Local,
}

/// What writes an answer's body (after its reply header).
type Body = Box<dyn FnOnce(&mut zk::jute::Writer) + Send>;

/// A reply being made: the frame (if any), and whether the connection closes after it.
type Reply = Pin<Box<dyn Future<Output = (Option<Vec<u8>>, bool)> + Send>>;

enum InFlight {
    Reply(Reply),
    /// Every request before this one has been answered.
    Barrier(oneshot::Sender<()>),
}

async fn reply_in_order(mut inflight: mpsc::Receiver<InFlight>, out: mpsc::Sender<Out>) {
    while let Some(item) = inflight.recv().await {
        match item {
            InFlight::Reply(reply) => {
                let (frame, close) = reply.await;
                if let Some(frame) = frame {
                    if out.send(Out::Frame(frame)).await.is_err() {
                        return;
                    }
                }
                if close {
                    let _ = out.send(Out::Close).await;
                    return;
                }
            }
            InFlight::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// One connection's session: where its requests go.
struct Conn {
    actor: Addr<SessionActor>,
    /// The newest zxid this connection has answered with (the reply header's).
    zxid: Arc<AtomicI64>,
    peer: Peer,
}

type Asked = Pin<Box<dyn Future<Output = KeeperResponse> + Send>>;

fn lost() -> KeeperError {
    KeeperError::ConnectionLoss
}

impl Conn {
    /// Hands `req` to the session actor now (so the actor sees requests in arrival order).
    fn ask(&self, req: KeeperRequest) -> Asked {
        let sent = self.actor.send(ClientRequest(req, tracing::Span::none()));
        Box::pin(async move { sent.await.unwrap_or(KeeperResponse::Ping(Err(lost()))) })
    }

    /// Starts `f`: its kind and its reply.
    fn start(&self, f: zk::Framed) -> (Kind, Reply) {
        let xid = f.xid;
        let zxid = self.zxid.clone();
        // An answer with no body, or an error.
        let done = move |r: Result<Option<i64>, i32>, body: Option<Body>| finish(xid, &zxid, r, body);
        let local = |err: i32| -> (Kind, Reply) {
            let z = self.zxid.load(Ordering::Relaxed);
            let frame = zk::reply(xid, z, err, |_| {});
            (Kind::Local, Box::pin(async move { (Some(frame), false) }))
        };
        match f.request {
            Request::Create(c) => {
                let Some(mode) = create_mode(&c) else {
                    debug!(flags = c.flags, op = c.op, path = %c.path, "create flags that do not fit the op: BAD_ARGUMENTS");
                    return local(code::BAD_ARGUMENTS);
                };
                let with_stat = c.op != op::CREATE;
                let asked = self.ask(KeeperRequest::Write(Write(create_op(c, mode))));
                (
                    Kind::Write,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::Write(Ok(OpResult::Created { path, stat })) => done(
                                Ok(Some(stat.czxid)),
                                Some(Box::new(move |w| {
                                    w.string(&path);
                                    if with_stat {
                                        zk::write_stat(w, &stat);
                                    }
                                })),
                            ),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::Delete { path, version } => self.write(Op::Delete { path, version }, done),
            Request::Check { path, version } => self.write(Op::Check { path, version }, done),
            Request::SetData { path, data, version } => {
                let asked = self.ask(KeeperRequest::Write(Write(Op::SetData { path, data, version })));
                (
                    Kind::Write,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::Write(Ok(OpResult::DataSet { stat })) => {
                                done(Ok(Some(stat.mzxid)), Some(Box::new(move |w| zk::write_stat(w, &stat))))
                            }
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::Exists { path, watch } => self.stat(path, watch, done),
            Request::GetData { path, watch } => {
                let asked = self.ask(KeeperRequest::GetData(GetData { path, watch }));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::GetData(Ok(d)) => done(
                                Ok(Some(d.zxid)),
                                Some(Box::new(move |w| {
                                    w.buffer(&d.data);
                                    zk::write_stat(w, &d.stat);
                                })),
                            ),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::GetChildren { path, watch, with_stat } => {
                let asked = self.ask(KeeperRequest::GetChildren(GetChildren { path, watch }));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::GetChildren(Ok(c)) => done(
                                Ok(Some(c.zxid)),
                                Some(Box::new(move |w| {
                                    w.strings(&c.children);
                                    if with_stat {
                                        zk::write_stat(w, &c.stat);
                                    }
                                })),
                            ),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::GetAcl(path) => {
                let asked = self.ask(KeeperRequest::GetAcl(GetAcl { path }));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::GetAcl(Ok(a)) => done(
                                Ok(Some(a.zxid)),
                                Some(Box::new(move |w| {
                                    zk::write_acl(w, &a.acl);
                                    zk::write_stat(w, &a.stat);
                                })),
                            ),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::SetAcl { path, acl, version } => {
                let asked = self.ask(KeeperRequest::Write(Write(Op::SetAcl { path, acl, version })));
                (
                    Kind::Write,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::Write(Ok(OpResult::AclSet { stat })) => {
                                done(Ok(None), Some(Box::new(move |w| zk::write_stat(w, &stat))))
                            }
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::Sync(path) => {
                let asked = self.ask(KeeperRequest::Sync(SyncRequest { path: path.clone() }));
                (
                    Kind::Write,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::Sync(Ok(z)) => done(
                                Ok(Some(z)),
                                Some(Box::new(move |w| {
                                    w.string(&path);
                                })),
                            ),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::Ping => {
                let asked = self.ask(KeeperRequest::Ping(Ping));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::Ping(Ok(z)) => done(Ok(Some(z)), None),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::Multi(ops) => self.multi(ops, done),
            Request::MultiRead(ops) => {
                let asked: Vec<(bool, Asked)> = ops
                    .into_iter()
                    .map(|o| match o {
                        ReadOp::GetChildren(path) => {
                            (true, self.ask(KeeperRequest::GetChildren(GetChildren { path, watch: false })))
                        }
                        ReadOp::GetData(path) => {
                            (false, self.ask(KeeperRequest::GetData(GetData { path, watch: false })))
                        }
                    })
                    .collect();
                (
                    Kind::Read,
                    Box::pin(async move {
                        let mut results = Vec::with_capacity(asked.len());
                        let mut newest = None;
                        for (_, a) in asked {
                            results.push(match a.await {
                                KeeperResponse::GetChildren(Ok(c)) => {
                                    newest = newest.max(Some(c.zxid));
                                    MultiResult::Children(c.children)
                                }
                                KeeperResponse::GetData(Ok(d)) => {
                                    newest = newest.max(Some(d.zxid));
                                    MultiResult::Data(d.data, d.stat)
                                }
                                other => MultiResult::Error(error_code(other)),
                            });
                        }
                        done(Ok(newest), Some(Box::new(move |w| zk::write_multi(w, &results))))
                    }),
                )
            }
            Request::SetWatches(sw) => {
                let watches = WatchSet {
                    data: sw.data,
                    exist: sw.exist,
                    child: sw.child,
                    persistent: sw.persistent,
                    persistent_recursive: sw.persistent_recursive,
                };
                let asked =
                    self.ask(KeeperRequest::SetWatches(SetWatches { seen_zxid: sw.relative_zxid, watches }));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::SetWatches(Ok(z)) => done(Ok(Some(z)), None),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::AddWatch { path, mode } => {
                let kind = match mode {
                    0 => WatchKind::Persistent,
                    1 => WatchKind::PersistentRecursive,
                    _ => return local(code::BAD_ARGUMENTS),
                };
                let asked = self.ask(KeeperRequest::AddWatch(AddWatch { path, kind }));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::AddWatch(Ok(z)) => done(Ok(Some(z)), None),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::CloseSession => {
                let asked = self.ask(KeeperRequest::Close(Close));
                (
                    Kind::Write,
                    Box::pin(async move {
                        let (frame, _) = match asked.await {
                            KeeperResponse::Close(Ok(())) => done(Ok(None), None),
                            other => done(Err(error_code(other)), None),
                        };
                        (frame, true)
                    }),
                )
            }
            Request::Auth { scheme, auth } => {
                // The connection's identities grow (ZooKeeper's addauth); a scheme the keeper
                // does not take fails authentication and, as in ZooKeeper, ends the connection.
                let asked = self.ask(KeeperRequest::AddAuth(AddAuth { scheme, auth }));
                let client = self.peer.remote;
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::AddAuth(Ok(_)) => done(Ok(None), None),
                            other => {
                                let e = error_of(other);
                                warn!(%client, error = %e, "closing the connection: authentication failed");
                                let (frame, _) = done(Err(e.code().number()), None);
                                (frame, true)
                            }
                        }
                    }),
                )
            }
            Request::WhoAmI => {
                let (scheme, user) = match self.peer.principal.to_string().as_str() {
                    "ANONYMOUS" => ("ip".to_string(), self.peer.remote.ip().to_string()),
                    p => ("x509".to_string(), p.to_string()),
                };
                let z = self.zxid.load(Ordering::Relaxed);
                let frame = zk::reply(xid, z, 0, |w| {
                    w.int(1).string(&scheme).string(&user);
                });
                (Kind::Local, Box::pin(async move { (Some(frame), false) }))
            }
            Request::GetEphemerals(prefix) => {
                let asked = self.ask(KeeperRequest::GetEphemerals(GetEphemerals { prefix }));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::GetEphemerals(Ok(paths)) => done(
                                Ok(None),
                                Some(Box::new(move |w| {
                                    w.strings(&paths);
                                })),
                            ),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::GetAllChildrenNumber(path) => {
                let asked = self.ask(KeeperRequest::CountDescendants(CountDescendants { path }));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::CountDescendants(Ok(n)) => {
                                let n = i32::try_from(n).unwrap_or(i32::MAX);
                                done(
                                    Ok(None),
                                    Some(Box::new(move |w| {
                                        w.int(n);
                                    })),
                                )
                            }
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::RemoveWatches { path, kind, check_only } => {
                // ZooKeeper's WatcherType: 1 children, 2 data, 3 any.
                let kinds = match kind {
                    1 => vec![WatchKind::Child],
                    2 => vec![WatchKind::Data],
                    3 => vec![
                        WatchKind::Data,
                        WatchKind::Child,
                        WatchKind::Persistent,
                        WatchKind::PersistentRecursive,
                    ],
                    _ => return local(code::BAD_ARGUMENTS),
                };
                let asked = self.ask(KeeperRequest::RemoveWatches(RemoveWatches { path, kinds, check_only }));
                (
                    Kind::Read,
                    Box::pin(async move {
                        match asked.await {
                            KeeperResponse::RemoveWatches(Ok(())) => done(Ok(None), None),
                            other => done(Err(error_code(other)), None),
                        }
                    }),
                )
            }
            Request::Unsupported(o) => {
                info!(op = o, "an operation the keeper does not offer (reconfig, SASL): UNIMPLEMENTED");
                local(code::UNIMPLEMENTED)
            }
        }
    }

    /// An exists (leaving a watch if asked): the node's stat, or NO_NODE.
    fn stat<D>(&self, path: String, watch: bool, done: D) -> (Kind, Reply)
    where
        D: FnOnce(Result<Option<i64>, i32>, Option<Body>) -> (Option<Vec<u8>>, bool) + Send + 'static,
    {
        let asked = self.ask(KeeperRequest::Exists(Exists { path, watch }));
        (
            Kind::Read,
            Box::pin(async move {
                match asked.await {
                    KeeperResponse::Exists(Ok(e)) => match e.stat {
                        Some(stat) => {
                            done(Ok(Some(e.zxid)), Some(Box::new(move |w| zk::write_stat(w, &stat))))
                        }
                        None => done(Err(code::NO_NODE), None),
                    },
                    other => done(Err(error_code(other)), None),
                }
            }),
        )
    }

    fn write<D>(&self, op: Op, done: D) -> (Kind, Reply)
    where
        D: FnOnce(Result<Option<i64>, i32>, Option<Body>) -> (Option<Vec<u8>>, bool) + Send + 'static,
    {
        let asked = self.ask(KeeperRequest::Write(Write(op)));
        let actor = self.actor.clone();
        (
            Kind::Write,
            Box::pin(async move {
                match asked.await {
                    KeeperResponse::Write(Ok(_)) => done(Ok(applied_zxid(&actor).await), None),
                    other => done(Err(error_code(other)), None),
                }
            }),
        )
    }

    fn multi<D>(&self, ops: Vec<MultiOp>, done: D) -> (Kind, Reply)
    where
        D: FnOnce(Result<Option<i64>, i32>, Option<Body>) -> (Option<Vec<u8>>, bool) + Send + 'static,
    {
        let codes: Vec<i32> = ops.iter().map(MultiOp::op).collect();
        let mut keeper_ops = Vec::with_capacity(ops.len());
        for o in ops {
            keeper_ops.push(match o {
                MultiOp::Create(c) => match create_mode(&c) {
                    Some(mode) => create_op(c, mode),
                    None => {
                        return (Kind::Local, Box::pin(async move { done(Err(code::BAD_ARGUMENTS), None) }))
                    }
                },
                MultiOp::Delete { path, version } => Op::Delete { path, version },
                MultiOp::SetData { path, data, version } => Op::SetData { path, data, version },
                MultiOp::Check { path, version } => Op::Check { path, version },
            });
        }
        let asked = self.ask(KeeperRequest::Write(Write(Op::Multi(keeper_ops))));
        let actor = self.actor.clone();
        (
            Kind::Write,
            Box::pin(async move {
                let results: Vec<MultiResult> = match asked.await {
                    KeeperResponse::Write(Ok(OpResult::Multi(results))) => codes
                        .iter()
                        .zip(results)
                        .map(|(&code, r)| match r {
                            OpResult::Created { path, stat } => MultiResult::Created { op: code, path, stat },
                            OpResult::Deleted => MultiResult::Deleted,
                            OpResult::DataSet { stat } => MultiResult::DataSet(stat),
                            _ => MultiResult::Checked,
                        })
                        .collect(),
                    // As ZooKeeper: the ops before the failure say 0, the failed one its error,
                    // the rest RUNTIME_INCONSISTENCY; the reply itself succeeds.
                    KeeperResponse::Write(Err(KeeperError::MultiFailed { index, error })) => (0..codes.len())
                        .map(|i| match i.cmp(&index) {
                            std::cmp::Ordering::Less => MultiResult::Error(0),
                            std::cmp::Ordering::Equal => MultiResult::Error(error.code().number()),
                            std::cmp::Ordering::Greater => MultiResult::Error(code::RUNTIME_INCONSISTENCY),
                        })
                        .collect(),
                    other => return done(Err(error_code(other)), None),
                };
                let newest = match results
                    .iter()
                    .filter_map(|r| match r {
                        MultiResult::Created { stat, .. } => Some(stat.czxid),
                        MultiResult::DataSet(stat) => Some(stat.mzxid),
                        _ => None,
                    })
                    .max()
                {
                    Some(z) => Some(z),
                    None => applied_zxid(&actor).await,
                };
                done(Ok(newest), Some(Box::new(move |w| zk::write_multi(w, &results))))
            }),
        )
    }
}

/// The zxid the session's server has applied, asked after a write whose result carries no
/// stat (delete, check, a multi of those): at least the write's own, so a client that
/// reconnects with it is never served by a server that has not applied the write.
async fn applied_zxid(actor: &Addr<SessionActor>) -> Option<i64> {
    match actor.send(ClientRequest(KeeperRequest::Ping(Ping), tracing::Span::none())).await {
        Ok(KeeperResponse::Ping(Ok(z))) => Some(z),
        _ => None,
    }
}

/// The answer frame: the reply header with the newest zxid, then the body on success; an
/// expired session closes the connection after its answer.
fn finish(
    xid: i32,
    zxid: &AtomicI64,
    r: Result<Option<i64>, i32>,
    body: Option<Body>,
) -> (Option<Vec<u8>>, bool) {
    match r {
        Ok(z) => {
            if let Some(z) = z {
                zxid.fetch_max(z, Ordering::Relaxed);
            }
            let z = zxid.load(Ordering::Relaxed);
            (
                Some(zk::reply(xid, z, 0, |w| {
                    if let Some(b) = body {
                        b(w)
                    }
                })),
                false,
            )
        }
        Err(err) => {
            let close = err == ErrorCode::SessionExpired.number();
            (Some(zk::reply(xid, zxid.load(Ordering::Relaxed), err, |_| {})), close)
        }
    }
}

/// The keeper's create mode for a create request: ZooKeeper's flags (0 persistent, 1
/// ephemeral, 2 persistent sequential, 3 ephemeral sequential, 4 container, 5 persistent with
/// a TTL, 6 persistent sequential with a TTL), which must match the op (createContainer for a
/// container, createTTL for a TTL, as ZooKeeper requires); `None`: BAD_ARGUMENTS.
fn create_mode(c: &zk::Create) -> Option<CreateMode> {
    let ttl_ms = c.ttl.unwrap_or(0);
    let mode = match c.flags {
        0 => CreateMode::Persistent,
        1 => CreateMode::Ephemeral,
        2 => CreateMode::PersistentSequential,
        3 => CreateMode::EphemeralSequential,
        4 => CreateMode::Container,
        5 => CreateMode::PersistentWithTtl { ttl_ms },
        6 => CreateMode::PersistentSequentialWithTtl { ttl_ms },
        _ => return None,
    };
    let container = matches!(mode, CreateMode::Container);
    let ttl =
        matches!(mode, CreateMode::PersistentWithTtl { .. } | CreateMode::PersistentSequentialWithTtl { .. });
    let fits = match c.op {
        op::CREATE_CONTAINER => container,
        op::CREATE_TTL => ttl,
        _ => !container && !ttl,
    };
    fits.then_some(mode)
}

/// The keeper's create for a create request: a plain create for `world:anyone` with every
/// permission (what most clients send), else a create with the ACL.
fn create_op(c: zk::Create, mode: CreateMode) -> Op {
    if c.acl == [Acl::open()] {
        Op::Create { path: c.path, data: c.data, mode }
    } else {
        Op::CreateWithAcl { path: c.path, data: c.data, mode, acl: c.acl }
    }
}

/// ZooKeeper's code for the error a response carries.
fn error_code(r: KeeperResponse) -> i32 {
    error_of(r).code().number()
}

/// The error a response carries (or why it is not the one asked for).
fn error_of(r: KeeperResponse) -> KeeperError {
    match r.error() {
        Some(e) => e.clone(),
        None => KeeperError::SystemError { what: format!("unexpected answer {r:?}") },
    }
}
