//! An async keeper client: one session, resumed across servers, with watch events.
//!
//! ```no_run
//! # async fn sketch(tls: sluice_net::ClientTls) -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_client::keeper::{CreateMode, KeeperClient, KeeperClientOptions};
//!
//! let opts = KeeperClientOptions::default();
//! let (client, mut events) = KeeperClient::connect("k1:2181,k2:2181/cluster-a", &tls, opts).await?;
//! client.create("/brokers/ids/1", b"..", CreateMode::Ephemeral).await?;
//! let ids = client.children("/brokers/ids", true).await?; // leaves a child watch
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}; children were {ids:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! Paths are the client's: with a chroot every path is prefixed on the way out and stripped
//! from results and events on the way in. A ping every third of the session timeout keeps
//! the session alive; when a server goes away the next request (or ping) reconnects to the
//! next server in the connect string and resumes the session, its ephemerals intact. The
//! client remembers the watches it holds and the highest zxid it has heard of, and re-sends
//! them on every resumed channel (ZooKeeper's `SetWatches`): a restarted or different server
//! registers them again and fires at once those whose nodes changed while the client was
//! away. (Persistent watches are registered again; what they would have heard meanwhile is
//! lost, as in ZooKeeper.) If the servers say the session expired, every request from then on fails with
//! `SessionExpired` and a [`KeeperEvent::SessionExpired`] is delivered: the client never
//! silently gets a new session.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_keeper_core::{
    Acl, CreateMode, EventType, Id, KeeperError, Op, OpResult, Stat, WatchKind, WatchSet,
};
use sluice_net::{Client, ClientOptions, ClientTls, OrderedCaller, Rpc, RpcError};
use tokio::sync::mpsc;
use tracing::{debug, info, Instrument};

use super::connect_string::ConnectString;
use super::proto::{
    AddAuth, AddWatch, Close, Connect, CountDescendants, Exists, GetAcl, GetChildren, GetData, GetEphemerals,
    KeeperProtocol, KeeperPush, Ping, RemoveWatches, ServerStatus, SetWatches, Status, SyncRequest, Write,
};

/// Why a keeper call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeeperClientError {
    /// The server answered with an error.
    #[error(transparent)]
    Keeper(#[from] KeeperError),
    /// No server could be reached, or the connection was lost during the call (the call may
    /// or may not have taken effect, as ZooKeeper's ConnectionLoss).
    #[error("connection loss: {0}")]
    ConnectionLoss(String),
    /// Transport-level refusal (certificates, protocol).
    #[error(transparent)]
    Transport(#[from] sluice_net::ConnectError),
}

impl KeeperClientError {
    /// Whether the same call may work if made again (kazoo's and Curator's retry policies
    /// retry these): the connection was lost or the server lost track of the call, the
    /// ensemble had no quorum, or the server was behind this client. A write that failed
    /// this way may have been applied (except after `SessionMoved`: that one was not).
    pub fn is_retriable(&self) -> bool {
        match self {
            KeeperClientError::ConnectionLoss(_) => true,
            KeeperClientError::Keeper(e) => {
                matches!(
                    e,
                    KeeperError::ConnectionLoss
                        | KeeperError::NoQuorum { .. }
                        | KeeperError::Behind { .. }
                        | KeeperError::SessionMoved { .. }
                )
            }
            KeeperClientError::Transport(c) => c.is_transient(),
        }
    }
}

/// What a client hears without asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperEvent {
    /// A watch fired.
    Watch {
        /// What happened.
        event: EventType,
        /// To which node (client path).
        path: String,
    },
    /// The session expired: its ephemerals are gone; make a new client.
    SessionExpired,
    /// The connected server lost (`true`) or regained (`false`) its ensemble's quorum:
    /// meanwhile reads may be stale and writes fail (ZooKeeper's ConnectedReadOnly).
    ReadOnly(bool),
    /// The session was resumed on a new connection (another server, or the same one after
    /// a break), its watches set again. One-shot watches whose nodes changed meanwhile fire;
    /// what persistent watches would have heard meanwhile is lost, so a cache reads its
    /// nodes again (ZooKeeper's reconnected `SyncConnected`).
    Resumed,
}

/// Keeper client settings.
#[derive(Debug, Clone)]
pub struct KeeperClientOptions {
    /// The session timeout asked for (the server clamps it).
    pub session_timeout: Duration,
    /// Transport settings.
    pub transport: ClientOptions,
    /// The ACL every create of this client gives its node unless it names one
    /// ([`KeeperClient::create_with_acl`]); `None`: `world:anyone` with every permission,
    /// ZooKeeper's `OPEN_ACL_UNSAFE`. (What a broker with Kafka's `zookeeper.set.acl` uses.)
    pub default_acl: Option<Vec<Acl>>,
    /// Stay on a server that lost its ensemble's quorum (ZooKeeper's `canBeReadOnly`): reads
    /// go on there, possibly stale, and writes fail until it has a quorum again. Off (the
    /// default), the client moves its session to another server as soon as its server says
    /// it has none ([`KeeperEvent::ReadOnly`]), then at most once a ping interval while it
    /// keeps landing on such servers; ZooKeeper's servers close their clients' connections
    /// when they lose the quorum, to the same end. A session left on such a server expires:
    /// the server cannot tell the leader it is alive.
    pub can_be_read_only: bool,
}

impl Default for KeeperClientOptions {
    fn default() -> Self {
        KeeperClientOptions {
            session_timeout: Duration::from_secs(10),
            transport: ClientOptions { connect_timeout: Duration::from_secs(3), ..ClientOptions::default() },
            default_acl: None,
            can_be_read_only: false,
        }
    }
}

struct Session {
    id: u64,
    password: [u8; 16],
    timeout: Duration,
}

/// A kind of watch the client holds; each goes back to the server in its own `SetWatches`
/// list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Left by `get` (or by `exists` on a node that existed).
    Data,
    /// Left by `exists` on a missing node.
    Exist,
    /// Left by `children`.
    Child,
    /// `addWatch(PERSISTENT)`.
    Persistent,
    /// `addWatch(PERSISTENT_RECURSIVE)`.
    Recursive,
}

impl Held {
    const ALL: [Held; 5] = [Held::Data, Held::Exist, Held::Child, Held::Persistent, Held::Recursive];

    /// Its list in a `SetWatches`.
    fn list(self, w: &mut WatchSet) -> &mut Vec<String> {
        match self {
            Held::Data => &mut w.data,
            Held::Exist => &mut w.exist,
            Held::Child => &mut w.child,
            Held::Persistent => &mut w.persistent,
            Held::Recursive => &mut w.persistent_recursive,
        }
    }

    /// The one-shot kinds an event fires (and so removes), by the server's table.
    fn fired_by(event: EventType) -> &'static [Held] {
        match event {
            EventType::NodeCreated | EventType::NodeDataChanged => &[Held::Data, Held::Exist],
            EventType::NodeDeleted => &[Held::Data, Held::Exist, Held::Child],
            EventType::NodeChildrenChanged => &[Held::Child],
        }
    }
}

/// The watches this client holds (server paths, by [`Held`] kind) and the highest zxid it
/// has heard of.
#[derive(Debug, Default)]
struct Watches {
    held: [BTreeSet<String>; 5],
    seen_zxid: i64,
}

/// Paths per `SetWatches` message, so that each stays a small call.
const SET_WATCHES_CHUNK_BYTES: usize = 32 * 1024;

impl Watches {
    fn of(&mut self, kind: Held) -> &mut BTreeSet<String> {
        &mut self.held[kind as usize]
    }

    fn saw(&mut self, zxid: i64) {
        self.seen_zxid = self.seen_zxid.max(zxid);
    }

    /// A reply served at `zxid` came back, having left the watch `left` (if any).
    fn answered(&mut self, zxid: i64, left: Option<(Held, String)>) {
        self.saw(zxid);
        if let Some((kind, path)) = left {
            self.of(kind).insert(path);
        }
    }

    /// A push arrived: a one-shot watch that fired is gone.
    fn on_push(&mut self, push: &KeeperPush) {
        let KeeperPush::Watch { event, path, zxid } = push else { return };
        self.saw(*zxid);
        for kind in Held::fired_by(*event) {
            self.of(*kind).remove(path);
        }
    }

    /// What to re-send, in messages of bounded size.
    fn to_resend(&self) -> Vec<WatchSet> {
        let mut sets = vec![WatchSet::default()];
        let mut bytes = 0;
        for kind in Held::ALL {
            for path in &self.held[kind as usize] {
                if bytes + path.len() > SET_WATCHES_CHUNK_BYTES && bytes > 0 {
                    sets.push(WatchSet::default());
                    bytes = 0;
                }
                bytes += path.len() + 8;
                if let Some(last) = sets.last_mut() {
                    kind.list(last).push(path.clone());
                }
            }
        }
        sets.retain(|w| !w.is_empty());
        sets
    }
}

struct Inner {
    net: Client<KeeperProtocol>,
    connect: ConnectString,
    opts: KeeperClientOptions,
    live: tokio::sync::Mutex<Option<OrderedCaller<KeeperProtocol>>>,
    session: Mutex<Option<Session>>,
    pushes: mpsc::UnboundedSender<Pushed>,
    watches: Arc<Mutex<Watches>>,
    next_host: AtomicUsize,
    expired: AtomicBool,
    closed: AtomicBool,
    read_only: Arc<AtomicBool>,
    /// Wakes the pinger when the server says it lost its quorum (it then moves the session).
    no_quorum: Arc<tokio::sync::Notify>,
    /// What `add_auth` added: sent again on every new connection, as ZooKeeper's clients
    /// do (identities belong to a connection, not to the session).
    auth: Mutex<Vec<AddAuth>>,
}

/// A keeper session. Cheap to clone.
#[derive(Clone)]
pub struct KeeperClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeeperClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeeperClient").field("hosts", &self.inner.connect.hosts).finish_non_exhaustive()
    }
}

/// Watch events and session state, in the order the server sent them.
#[derive(Debug)]
pub struct KeeperEvents {
    rx: mpsc::UnboundedReceiver<Pushed>,
    connect: ConnectString,
}

/// What reaches [`KeeperEvents`]: the servers' pushes, and the client's own news.
#[derive(Debug)]
enum Pushed {
    Server(KeeperPush),
    Resumed,
}

impl KeeperEvents {
    /// The next event; `None` when the client is gone.
    pub async fn recv(&mut self) -> Option<KeeperEvent> {
        loop {
            let push = self.rx.recv().await?;
            if let Some(ev) = self.translate(push) {
                return Some(ev);
            }
        }
    }

    /// An event that has already arrived, if any.
    pub fn try_recv(&mut self) -> Option<KeeperEvent> {
        while let Ok(push) = self.rx.try_recv() {
            if let Some(ev) = self.translate(push) {
                return Some(ev);
            }
        }
        None
    }

    fn translate(&self, push: Pushed) -> Option<KeeperEvent> {
        match push {
            Pushed::Server(KeeperPush::Watch { event, path, .. }) => {
                self.connect.to_client(&path).map(|path| KeeperEvent::Watch { event, path })
            }
            Pushed::Server(KeeperPush::SessionExpired) => Some(KeeperEvent::SessionExpired),
            Pushed::Server(KeeperPush::ReadOnly(b)) => Some(KeeperEvent::ReadOnly(b)),
            Pushed::Resumed => Some(KeeperEvent::Resumed),
        }
    }
}

impl KeeperClient {
    /// Connects to the first server of `connect` that answers and opens a session.
    pub async fn connect(
        connect: &str,
        tls: &ClientTls,
        opts: KeeperClientOptions,
    ) -> Result<(KeeperClient, KeeperEvents), KeeperClientError> {
        let connect = ConnectString::parse(connect)?;
        // A dead server must be noticed well inside the session timeout, or the session
        // expires while the client still waits on the old connection (ZooKeeper's client
        // uses 2/3 of the timeout the same way).
        let mut opts = opts;
        let budget = opts.session_timeout * 2 / 3;
        let t = &mut opts.transport;
        t.transport.idle_timeout = t.transport.idle_timeout.min(budget).max(MIN_WAIT);
        t.transport.keep_alive = t.transport.idle_timeout / 4;
        t.request_timeout = t.request_timeout.min(budget).max(MIN_WAIT);
        t.connect_timeout = t.connect_timeout.min(opts.session_timeout / connect.hosts.len().max(1) as u32);
        let net = Client::<KeeperProtocol>::new(tls, opts.transport.clone())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            net,
            connect: connect.clone(),
            opts,
            live: tokio::sync::Mutex::new(None),
            session: Mutex::new(None),
            pushes: tx,
            watches: Arc::default(),
            next_host: AtomicUsize::new(0),
            expired: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            auth: Mutex::new(Vec::new()),
            read_only: Arc::default(),
            no_quorum: Arc::default(),
        });
        let client = KeeperClient { inner };
        client.caller().await?;
        client.spawn_pinger();
        Ok((client, KeeperEvents { rx, connect }))
    }

    /// The session id (0 before the first connection).
    pub fn session_id(&self) -> u64 {
        lock(&self.inner.session).as_ref().map(|s| s.id).unwrap_or(0)
    }

    /// Whether the connected server has said it has no quorum: reads may be stale and
    /// writes fail until it has one again (or the client moves to a server that does).
    pub fn may_be_stale(&self) -> bool {
        self.inner.read_only.load(Ordering::Relaxed)
    }

    /// The negotiated session timeout.
    pub fn session_timeout(&self) -> Duration {
        let s = lock(&self.inner.session);
        s.as_ref().map(|s| s.timeout).unwrap_or(self.inner.opts.session_timeout)
    }

    /// Pings every third of the session timeout, and moves the session off a server that
    /// lost its quorum (see [`KeeperClientOptions::can_be_read_only`]).
    fn spawn_pinger(&self) {
        let weak = Arc::downgrade(&self.inner);
        let no_quorum = self.inner.no_quorum.clone();
        tokio::spawn(async move {
            let mut moved_at: Option<Instant> = None;
            loop {
                let Some(inner) = weak.upgrade() else { return };
                if inner.closed.load(Ordering::Relaxed) || inner.expired.load(Ordering::Relaxed) {
                    return;
                }
                let client = KeeperClient { inner };
                let every = client.session_timeout() / 3;
                let may_move = !client.inner.opts.can_be_read_only;
                drop(client);
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = no_quorum.notified(), if may_move => {
                        // Once a ping interval at most: every server may be without one.
                        if let Some(wait) = moved_at.and_then(|t| (t + every).checked_duration_since(Instant::now())) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
                let Some(inner) = weak.upgrade() else { return };
                let client = KeeperClient { inner };
                if may_move && client.inner.read_only.load(Ordering::Relaxed) {
                    moved_at = Some(Instant::now());
                    let mut live = client.inner.live.lock().await;
                    if let Some(old) = live.take() {
                        info!(
                            server = %old.addr(),
                            "the keeper server lost its ensemble's quorum; moving the session to another server"
                        );
                    }
                }
                // Reconnects (to the next server) if the session was moved.
                match client.read(Ping).await {
                    Ok(Ok(zxid)) => lock(&client.inner.watches).saw(zxid),
                    Ok(Err(e)) => debug!(error = %e, "ping refused"),
                    Err(e) => debug!(error = %e, "ping failed"),
                }
            }
        });
    }

    /// The live channel, connecting (and resuming the session) if there is none.
    async fn caller(&self) -> Result<OrderedCaller<KeeperProtocol>, KeeperClientError> {
        let inner = &self.inner;
        if inner.expired.load(Ordering::Relaxed) {
            return Err(KeeperError::SessionExpired { session: self.session_id() }.into());
        }
        let mut live = inner.live.lock().await;
        if let Some(c) = live.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *live = None;
        // Try every server in turn until the session's time is up.
        let deadline = Instant::now() + self.session_timeout();
        let mut last_error = String::from("no server tried");
        // A server that answered and refused says more than one that did not answer.
        let mut refused: Option<String> = None;
        loop {
            for _ in 0..inner.connect.hosts.len() {
                let i = inner.next_host.fetch_add(1, Ordering::Relaxed) % inner.connect.hosts.len();
                let host = &inner.connect.hosts[i];
                let opened = match tokio::time::timeout(self.connect_timeout(), self.open_session(host)).await
                {
                    Ok(opened) => opened,
                    Err(_) => {
                        // Half-open, or answering too slowly to keep the session: drop it.
                        inner.net.forget(host);
                        Err(KeeperClientError::ConnectionLoss(format!(
                            "no session from {host} within {:?}",
                            self.connect_timeout()
                        )))
                    }
                };
                match opened {
                    Ok(caller) => {
                        *live = Some(caller.clone());
                        return Ok(caller);
                    }
                    Err(KeeperClientError::Keeper(e @ KeeperError::SessionExpired { .. })) => {
                        self.mark_expired();
                        return Err(e.into());
                    }
                    Err(e @ KeeperClientError::Transport(_)) if !transient(&e) => return Err(e),
                    Err(e) => {
                        debug!(%host, error = %e, "server unavailable; trying the next");
                        if matches!(e, KeeperClientError::Keeper(_)) {
                            refused = Some(format!("{host}: {e}"));
                        }
                        last_error = format!("{host}: {e}");
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(KeeperClientError::ConnectionLoss(format!(
                    "no keeper server of {} answered within the session timeout (last: {})",
                    inner.connect.hosts.join(","),
                    refused.unwrap_or(last_error)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn open_session(&self, host: &str) -> Result<OrderedCaller<KeeperProtocol>, KeeperClientError> {
        let inner = &self.inner;
        let conn = inner.net.connection(host).await?;
        // Each push is noted (a one-shot watch that fired is gone) on the channel's reader,
        // before the reply that follows it completes; then it goes to the application.
        let (watches, pushes) = (inner.watches.clone(), inner.pushes.clone());
        // A new server says at once if it has no quorum; until then, assume it has.
        inner.read_only.store(false, Ordering::Relaxed);
        let read_only = inner.read_only.clone();
        let no_quorum = inner.no_quorum.clone();
        let caller = conn
            .open_ordered_with(move |push| {
                if let KeeperPush::ReadOnly(b) = push {
                    read_only.store(b, Ordering::Relaxed);
                    if b {
                        no_quorum.notify_one();
                    }
                }
                lock(&watches).on_push(&push);
                let _ = pushes.send(Pushed::Server(push));
            })
            .await
            .map_err(loss)?;
        let resume = lock(&inner.session).as_ref().map(|s| (s.id, s.password));
        let timeout_ms = inner.opts.session_timeout.as_millis().min(u128::from(u32::MAX)) as u32;
        let seen_zxid = lock(&inner.watches).seen_zxid;
        let connected = caller.call(Connect { timeout_ms, resume, seen_zxid }).await.map_err(loss)??;
        let auth = lock(&inner.auth).clone();
        for a in auth {
            caller.call(a).await.map_err(loss)??;
        }
        if resume.is_some() {
            // Watches first, before any request of the application: the server may fire some
            // at once, and they must arrive before replies that reflect their changes.
            let (seen_zxid, sets) = {
                let w = lock(&inner.watches);
                (w.seen_zxid, w.to_resend())
            };
            let count: usize = sets.iter().map(WatchSet::len).sum();
            for watches in sets {
                let zxid = caller.call(SetWatches { seen_zxid, watches }).await.map_err(loss)??;
                lock(&inner.watches).saw(zxid);
            }
            info!(
                %host,
                session = format_args!("0x{:x}", connected.session),
                watches = count,
                "session resumed"
            );
            let _ = inner.pushes.send(Pushed::Resumed);
        }
        *lock(&inner.session) = Some(Session {
            id: connected.session,
            password: connected.password,
            timeout: Duration::from_millis(u64::from(connected.timeout_ms)),
        });
        Ok(caller)
    }

    /// Whether the servers said this session expired (ZooKeeper's `EXPIRED` state): every
    /// request fails from then on, and its ephemerals are gone; make a new client.
    pub fn is_expired(&self) -> bool {
        self.inner.expired.load(Ordering::Relaxed)
    }

    fn mark_expired(&self) {
        if !self.inner.expired.swap(true, Ordering::Relaxed) {
            let _ = self.inner.pushes.send(Pushed::Server(KeeperPush::SessionExpired));
        }
    }

    /// One request. A write that fails with the connection is reported as ConnectionLoss
    /// (it may or may not have been applied, as in ZooKeeper); a read is sent once more on a
    /// new connection, which is also how a client that was cut off learns that its session
    /// expired meanwhile.
    async fn call<R: Rpc<KeeperProtocol> + Clone>(&self, req: R) -> Result<R::Reply, KeeperClientError> {
        self.call_with(req, false).await
    }

    async fn read<R: Rpc<KeeperProtocol> + Clone>(&self, req: R) -> Result<R::Reply, KeeperClientError> {
        self.call_with(req, true).await
    }

    async fn call_with<R: Rpc<KeeperProtocol> + Clone>(
        &self,
        req: R,
        retry: bool,
    ) -> Result<R::Reply, KeeperClientError> {
        let caller = self.caller().await?;
        match self.call_on(&caller, req.clone()).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // The channel is gone: the next call reconnects.
                *self.inner.live.lock().await = None;
                if !retry {
                    return Err(loss(e));
                }
                debug!(error = %e, "read failed with its connection; retrying on a new one");
                let caller = self.caller().await?;
                self.call_on(&caller, req).await.map_err(loss)
            }
        }
    }

    /// How long the client waits to hear from its server before it takes the server for
    /// gone: two thirds of the *negotiated* session timeout (ZooKeeper's read timeout), so
    /// that the session moves to another server before it can expire, however far below
    /// the asked-for timeout the servers capped it (`maxSessionTimeout`).
    fn read_timeout(&self) -> Duration {
        (self.session_timeout() * 2 / 3).max(MIN_WAIT)
    }

    /// How long one server may take to connect and open the session: the negotiated
    /// timeout shared among the servers (ZooKeeper's connect timeout), so that trying them
    /// all fits in it.
    fn connect_timeout(&self) -> Duration {
        let hosts = self.inner.connect.hosts.len().max(1) as u32;
        (self.session_timeout() / hosts).max(MIN_WAIT)
    }

    /// One request on `caller`, waiting at most the [read timeout](Self::read_timeout).
    /// A server silent that long is forgotten (its connection closed, so every other call
    /// waiting on it fails at once and none reuses it).
    async fn call_on<R: Rpc<KeeperProtocol>>(
        &self,
        caller: &OrderedCaller<KeeperProtocol>,
        req: R,
    ) -> Result<R::Reply, RpcError> {
        let result = match caller.send(req).await {
            Ok(pending) => pending.reply_within(self.read_timeout()).await,
            Err(e) => Err(e),
        };
        if let Err(RpcError::Timeout { .. }) = &result {
            info!(
                server = %caller.addr(),
                after = ?self.read_timeout(),
                "the keeper server did not answer within the read timeout; moving the session"
            );
            self.inner.net.forget(caller.addr());
        }
        result
    }

    async fn checked<T>(&self, r: Result<T, KeeperError>) -> Result<T, KeeperClientError> {
        match &r {
            Err(KeeperError::SessionExpired { .. }) => self.mark_expired(),
            // The servers hold the session elsewhere than this connection (a move here that
            // could not commit when it was made): the next request reconnects, which moves
            // the session again.
            Err(KeeperError::SessionMoved { .. }) => *self.inner.live.lock().await = None,
            _ => {}
        }
        Ok(r?)
    }

    /// Creates a node; returns its path (with the sequence suffix, if sequential).
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<String, KeeperClientError> {
        let c = &self.inner.connect;
        let op = self.create_op(c.to_server(path), data.to_vec(), mode);
        match self.write(op).await? {
            OpResult::Created { path, .. } => Ok(c.to_client(&path).unwrap_or(path)),
            other => Err(KeeperClientError::ConnectionLoss(format!("unexpected reply {other:?}"))),
        }
    }

    /// A create of this client: with its default ACL, if it has one.
    fn create_op(&self, path: String, data: Vec<u8>, mode: CreateMode) -> Op {
        match &self.inner.opts.default_acl {
            Some(acl) => Op::CreateWithAcl { path, data, mode, acl: acl.clone() },
            None => Op::Create { path, data, mode },
        }
    }

    /// Creates a node with an ACL (see [`sluice_keeper_core::acl`]); returns its path.
    pub async fn create_with_acl(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        acl: Vec<Acl>,
    ) -> Result<String, KeeperClientError> {
        let c = &self.inner.connect;
        let op = Op::CreateWithAcl { path: c.to_server(path), data: data.to_vec(), mode, acl };
        match self.write(op).await? {
            OpResult::Created { path, .. } => Ok(c.to_client(&path).unwrap_or(path)),
            other => Err(KeeperClientError::ConnectionLoss(format!("unexpected reply {other:?}"))),
        }
    }

    /// A node's ACL and stat (ZooKeeper's getACL; needs READ or ADMIN on it).
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), KeeperClientError> {
        let r = self.read(GetAcl { path: self.inner.connect.to_server(path) }).await?;
        let a = self.checked(r).await?;
        lock(&self.inner.watches).saw(a.zxid);
        Ok((a.acl, a.stat))
    }

    /// Replaces a node's ACL if its ACL version is `version` (-1: any); returns the new stat.
    pub async fn set_acl(&self, path: &str, acl: Vec<Acl>, version: i32) -> Result<Stat, KeeperClientError> {
        let op = Op::SetAcl { path: self.inner.connect.to_server(path), acl, version };
        match self.write(op).await? {
            OpResult::AclSet { stat } => Ok(stat),
            other => Err(KeeperClientError::ConnectionLoss(format!("unexpected reply {other:?}"))),
        }
    }

    /// Adds an identity to this client's connections (ZooKeeper's `addauth`; `digest` with
    /// `user:password`), kept for every later connection; returns the identities the
    /// connection now holds.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<Vec<Id>, KeeperClientError> {
        let a = AddAuth { scheme: scheme.into(), auth: auth.to_vec() };
        let r = self.call(a.clone()).await?;
        let ids = self.checked(r).await?;
        lock(&self.inner.auth).push(a);
        Ok(ids)
    }

    /// Deletes a node (`version` -1: any).
    pub async fn delete(&self, path: &str, version: i32) -> Result<(), KeeperClientError> {
        self.write(Op::Delete { path: self.inner.connect.to_server(path), version }).await.map(|_| ())
    }

    /// Sets a node's data (`version` -1: any); returns the new stat.
    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<Stat, KeeperClientError> {
        let op = Op::SetData { path: self.inner.connect.to_server(path), data: data.to_vec(), version };
        match self.write(op).await? {
            OpResult::DataSet { stat } => Ok(stat),
            other => Err(KeeperClientError::ConnectionLoss(format!("unexpected reply {other:?}"))),
        }
    }

    /// Runs ops atomically; paths inside are client paths.
    pub async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, KeeperClientError> {
        let c = &self.inner.connect;
        let ops = ops
            .into_iter()
            .map(|op| match op {
                Op::Create { path, data, mode } => self.create_op(c.to_server(&path), data, mode),
                Op::CreateWithAcl { path, data, mode, acl } => {
                    Op::CreateWithAcl { path: c.to_server(&path), data, mode, acl }
                }
                Op::Delete { path, version } => Op::Delete { path: c.to_server(&path), version },
                Op::SetData { path, data, version } => {
                    Op::SetData { path: c.to_server(&path), data, version }
                }
                Op::Check { path, version } => Op::Check { path: c.to_server(&path), version },
                other => other,
            })
            .collect();
        match self.write(Op::Multi(ops)).await? {
            OpResult::Multi(results) => Ok(results
                .into_iter()
                .map(|r| match r {
                    OpResult::Created { path, stat } => {
                        OpResult::Created { path: c.to_client(&path).unwrap_or(path), stat }
                    }
                    other => other,
                })
                .collect()),
            other => Err(KeeperClientError::ConnectionLoss(format!("unexpected reply {other:?}"))),
        }
    }

    async fn write(&self, op: Op) -> Result<OpResult, KeeperClientError> {
        // Traced (when traces are exported): the keeper servers' spans join this one's trace.
        let span = if sluice_net::trace::enabled() {
            tracing::info_span!("keeper_write", otel.kind = "client", trace_id = tracing::field::Empty)
        } else {
            tracing::Span::none()
        };
        sluice_net::trace::record_trace_id(&span);
        let r = self.call(Write(op)).instrument(span).await?;
        self.checked(r).await
    }

    /// A node's data and stat; `watch` leaves a one-shot data watch.
    pub async fn get_data(&self, path: &str, watch: bool) -> Result<(Vec<u8>, Stat), KeeperClientError> {
        let path = self.inner.connect.to_server(path);
        let r = self.read(GetData { path: path.clone(), watch }).await?;
        let d = self.checked(r).await?;
        lock(&self.inner.watches).answered(d.zxid, watch.then_some((Held::Data, path)));
        Ok((d.data, d.stat))
    }

    /// A node's stat if it exists; `watch` leaves a one-shot watch (fires on creation too).
    pub async fn exists(&self, path: &str, watch: bool) -> Result<Option<Stat>, KeeperClientError> {
        let path = self.inner.connect.to_server(path);
        let r = self.read(Exists { path: path.clone(), watch }).await?;
        let e = self.checked(r).await?;
        let kind = if e.stat.is_some() { Held::Data } else { Held::Exist };
        lock(&self.inner.watches).answered(e.zxid, watch.then_some((kind, path)));
        Ok(e.stat)
    }

    /// A node's children, sorted; `watch` leaves a one-shot child watch.
    pub async fn children(&self, path: &str, watch: bool) -> Result<Vec<String>, KeeperClientError> {
        let path = self.inner.connect.to_server(path);
        let r = self.read(GetChildren { path: path.clone(), watch }).await?;
        let c = self.checked(r).await?;
        lock(&self.inner.watches).answered(c.zxid, watch.then_some((Held::Child, path)));
        Ok(c.children)
    }

    /// A persistent (or persistent-recursive) watch on `path`.
    pub async fn add_watch(&self, path: &str, recursive: bool) -> Result<(), KeeperClientError> {
        let kind = if recursive { WatchKind::PersistentRecursive } else { WatchKind::Persistent };
        let path = self.inner.connect.to_server(path);
        let r = self.call(AddWatch { path: path.clone(), kind }).await?;
        let zxid = self.checked(r).await?;
        let kind = if recursive { Held::Recursive } else { Held::Persistent };
        lock(&self.inner.watches).answered(zxid, Some((kind, path)));
        Ok(())
    }

    /// This session's ephemeral nodes whose path starts with `prefix` (`/` for all), sorted
    /// (ZooKeeper's getEphemerals).
    pub async fn ephemerals(&self, prefix: &str) -> Result<Vec<String>, KeeperClientError> {
        let r = self.read(GetEphemerals { prefix: self.inner.connect.to_server(prefix) }).await?;
        let paths = self.checked(r).await?;
        Ok(paths.iter().filter_map(|p| self.inner.connect.to_client(p)).collect())
    }

    /// How many nodes lie below `path` (ZooKeeper's getAllChildrenNumber).
    pub async fn count_descendants(&self, path: &str) -> Result<u64, KeeperClientError> {
        let r = self.read(CountDescendants { path: self.inner.connect.to_server(path) }).await?;
        self.checked(r).await
    }

    /// Removes this session's watches of `kinds` on `path` (with `check_only`, only checks
    /// that it has one: ZooKeeper's removeWatches / checkWatches); fails with `NoWatcher`
    /// when it has none. Removed watches are not set again after a reconnect.
    pub async fn remove_watches(
        &self,
        path: &str,
        kinds: &[WatchKind],
        check_only: bool,
    ) -> Result<(), KeeperClientError> {
        let server_path = self.inner.connect.to_server(path);
        let request = RemoveWatches { path: server_path.clone(), kinds: kinds.to_vec(), check_only };
        let r = self.call(request).await?;
        self.checked(r).await?;
        if !check_only {
            let mut held = lock(&self.inner.watches);
            for kind in kinds {
                let local: &[Held] = match kind {
                    WatchKind::Data => &[Held::Data, Held::Exist],
                    WatchKind::Child => &[Held::Child],
                    WatchKind::Persistent => &[Held::Persistent],
                    WatchKind::PersistentRecursive => &[Held::Recursive],
                };
                for h in local {
                    held.of(*h).remove(&server_path);
                }
            }
        }
        Ok(())
    }

    /// Waits until the server has every write committed before this call.
    pub async fn sync(&self, path: &str) -> Result<(), KeeperClientError> {
        let r = self.read(SyncRequest { path: self.inner.connect.to_server(path) }).await?;
        let zxid = self.checked(r).await?;
        lock(&self.inner.watches).saw(zxid);
        Ok(())
    }

    /// Creates the chroot (and its parents) if it does not exist.
    pub async fn ensure_chroot(&self) -> Result<(), KeeperClientError> {
        let Some(chroot) = self.inner.connect.chroot.clone() else { return Ok(()) };
        self.ensure_server_path(&chroot).await
    }

    /// Creates `path` and its parents (persistent, empty, with this client's default ACL);
    /// those that exist stay as they are.
    pub async fn ensure_path(&self, path: &str) -> Result<(), KeeperClientError> {
        self.ensure_server_path(&self.inner.connect.to_server(path)).await
    }

    /// [`Self::ensure_path`] of a server path (the chroot not added again).
    async fn ensure_server_path(&self, path: &str) -> Result<(), KeeperClientError> {
        let mut at = String::new();
        for seg in path.trim_start_matches('/').split('/').filter(|s| !s.is_empty()) {
            at.push('/');
            at.push_str(seg);
            let op = self.create_op(at.clone(), Vec::new(), CreateMode::Persistent);
            match self.write(op).await {
                Ok(_) | Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Ends the session: its ephemeral nodes are deleted at once.
    pub async fn close(&self) -> Result<(), KeeperClientError> {
        self.inner.closed.store(true, Ordering::Relaxed);
        let r = self.call(Close).await?;
        self.checked(r).await
    }

    /// The status of one server (no session needed).
    pub async fn status(host: &str, tls: &ClientTls) -> Result<ServerStatus, KeeperClientError> {
        let net = Client::<KeeperProtocol>::new(tls, ClientOptions::default())?;
        net.call(host, Status).await.map_err(loss)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shortest read and connect timeouts, whatever the session timeout.
const MIN_WAIT: Duration = Duration::from_millis(300);

fn loss(e: RpcError) -> KeeperClientError {
    match e {
        RpcError::Connect(c) => KeeperClientError::Transport(c),
        other => KeeperClientError::ConnectionLoss(other.to_string()),
    }
}

fn transient(e: &KeeperClientError) -> bool {
    match e {
        KeeperClientError::Transport(c) => c.is_transient(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fired_one_shot_watches_are_forgotten_and_the_rest_resent_in_bounded_pieces() {
        let mut w = Watches::default();
        for i in 0..3000 {
            w.of(Held::Data).insert(format!("/data/{i:040}"));
        }
        w.of(Held::Exist).insert("/later".into());
        w.of(Held::Child).insert("/kids".into());
        w.of(Held::Recursive).insert("/tree".into());
        w.on_push(&KeeperPush::Watch { event: EventType::NodeCreated, path: "/later".into(), zxid: 9 });
        w.on_push(&KeeperPush::Watch { event: EventType::NodeCreated, path: "/tree/x".into(), zxid: 11 });
        w.on_push(&KeeperPush::Watch {
            event: EventType::NodeChildrenChanged,
            path: "/kids".into(),
            zxid: 10,
        });
        assert_eq!(w.seen_zxid, 11, "the highest zxid heard");
        let sets = w.to_resend();
        assert!(sets.len() > 1, "3000 long paths do not fit one message");
        for set in &sets {
            let bytes: usize = set.data.iter().map(String::len).sum();
            assert!(bytes <= SET_WATCHES_CHUNK_BYTES, "a piece of {bytes} bytes");
        }
        let resent: Vec<_> = sets.iter().flat_map(|s| s.data.iter()).collect();
        assert_eq!(resent.len(), 3000, "every data watch, once");
        assert!(sets.iter().all(|s| s.exist.is_empty() && s.child.is_empty()), "fired one-shots are gone");
        assert_eq!(sets.iter().map(|s| s.persistent_recursive.len()).sum::<usize>(), 1, "persistent stays");
    }
}
