//! The keeper server (standalone): actors around the sans-IO core.
//!
//! - [`Database`] (one actor) owns the replicated state, the session tracker, the watches
//!   and every connected session's outbound queue. It assigns zxids, hands transactions to
//!   the log writer, and applies them once they are durable.
//! - The log writer (one OS thread) owns the [`Store`]: it takes every transaction queued
//!   since its last write, writes them with one fsync (group commit), and tells the database
//!   how far the log is durable. It also writes snapshots and purges old files.
//! - [`SessionActor`] (one per connected client) checks the session is live, touches it on
//!   every request and forwards requests to the database.
//!
//! Watches fire inside the database actor while it applies a transaction: the events go
//! straight onto the watching sessions' outbound queues, before any later reply can be
//! queued behind them. That is what makes "a client sees the watch event before any read
//! that reflects the change" hold. (Per-path watcher actors would put a mailbox hop between
//! the change and the event, and nothing would order that hop against read replies.)

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use sluice_keeper_core::{
    KeeperError, KeeperState, Op, OpResult, ServerCore, SessionConfig, Txn, WatchEvent,
};
use sluice_net::{ChannelSender, Peer, ServerChannel};
use sluice_proto::keeper::{
    Children, Connect, Connected, EnsembleStatus, Existence, KeeperProtocol, KeeperPush, KeeperRequest,
    KeeperResponse, NodeData, ServerStatus,
};
use tokio::sync::oneshot;
use tracing::{debug, info, warn, Instrument};

use crate::ensemble::state_machine::SmEvent;
use crate::ensemble::{Ensemble, Proposal};
use crate::store::{Recovered, SnapshotFile, Store, StoreError};

/// Settings of one keeper server (the zoo.cfg keys).
#[derive(Debug, Clone)]
pub struct KeeperSettings {
    /// `dataDir`.
    pub data_dir: PathBuf,
    /// `tickTime` and the session bounds.
    pub sessions: SessionConfig,
    /// `snapCount`: transactions between snapshots.
    pub snap_count: usize,
    /// `autopurge.snapRetainCount`.
    pub snap_retain_count: usize,
}

type Reply<T> = oneshot::Sender<Result<T, KeeperError>>;

/// The log writer said: the log is durable up to this zxid.
#[derive(Message)]
#[rtype(result = "()")]
struct Durable {
    upto: i64,
}

/// The log writer failed: the server must stop (it can no longer promise durability).
#[derive(Message)]
#[rtype(result = "()")]
struct WriterFailed(String);

/// What the keeper exports through the `metrics` facade (scraped at `/metrics` when the
/// process installs a recorder; no-ops otherwise). Handles are made once: recording is an
/// atomic add on the request path.
struct Metrics {
    reads: metrics::Counter,
    writes: metrics::Counter,
    write_latency: metrics::Histogram,
    sessions: metrics::Gauge,
    znodes: metrics::Gauge,
    watches: metrics::Gauge,
    outstanding: metrics::Gauge,
    last_zxid: metrics::Gauge,
}

impl Metrics {
    fn new(state: &'static str) -> Self {
        metrics::describe_counter!("sluice_keeper_requests_total", "Client requests answered, by type.");
        metrics::describe_histogram!(
            "sluice_keeper_write_latency_seconds",
            metrics::Unit::Seconds,
            "From a write's arrival to its acknowledgement (durable and applied)."
        );
        metrics::describe_histogram!(
            "sluice_keeper_commit_latency_seconds",
            metrics::Unit::Seconds,
            "One group commit: writing and fsyncing a batch of transactions."
        );
        metrics::describe_gauge!("sluice_keeper_sessions", "Live sessions.");
        metrics::describe_gauge!("sluice_keeper_znodes", "Znodes in the tree.");
        metrics::describe_gauge!("sluice_keeper_watches", "Registered watches.");
        metrics::describe_gauge!("sluice_keeper_outstanding_requests", "Writes waiting for their fsync.");
        metrics::describe_gauge!("sluice_keeper_last_zxid", "The last transaction applied.");
        metrics::describe_gauge!("sluice_keeper_server_state", "1 for the state this server is in.");
        metrics::gauge!("sluice_keeper_server_state", "state" => state).set(1.0);
        Metrics {
            reads: metrics::counter!("sluice_keeper_requests_total", "type" => "read"),
            writes: metrics::counter!("sluice_keeper_requests_total", "type" => "write"),
            write_latency: metrics::histogram!("sluice_keeper_write_latency_seconds"),
            sessions: metrics::gauge!("sluice_keeper_sessions"),
            znodes: metrics::gauge!("sluice_keeper_znodes"),
            watches: metrics::gauge!("sluice_keeper_watches"),
            outstanding: metrics::gauge!("sluice_keeper_outstanding_requests"),
            last_zxid: metrics::gauge!("sluice_keeper_last_zxid"),
        }
    }
}

struct Pending {
    txn: Txn,
    reply: Option<Reply<OpResult>>,
    started: Instant,
}

/// Something to do once this server has applied the log up to an index.
type AfterApply = Box<dyn FnOnce(&mut Database)>;

/// The database actor: the shell around [`ServerCore`] that owns the I/O.
pub struct Database {
    core: ServerCore,
    /// In an ensemble: the Raft side. `None`: standalone, with its own log writer.
    ensemble: Option<Ensemble>,
    /// In an ensemble: the last log index applied here (every read is served at it).
    applied_index: u64,
    /// In an ensemble: replies waiting for this server to apply their write.
    waiters: BTreeMap<u64, Vec<AfterApply>>,
    /// In an ensemble: sessions heard from since the leader was last told.
    touched: HashSet<u64>,
    /// In an ensemble: whether this server leads (and so decides session expiry).
    leading: bool,
    /// In an ensemble: whether this server is in touch with a quorum.
    quorum: bool,
    /// In an ensemble: how long a write waits for a quorum.
    write_timeout: Duration,
    /// In an ensemble: transactions applied since the last snapshot, and `snapCount`.
    since_snapshot: (usize, usize),
    senders: HashMap<u64, (usize, ChannelSender<KeeperProtocol>)>,
    pending: VecDeque<Pending>,
    next_zxid: i64,
    writer: std_mpsc::Sender<Txn>,
    epoch: Instant,
    latency: (f64, f64, u64, f64),
    failed: Option<String>,
    metrics: Metrics,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("last_zxid", &self.core.state().tree.last_zxid())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens the store in `settings.data_dir`, recovers, and starts the database actor and
    /// its log writer. Must run inside an actix system.
    pub fn start(settings: &KeeperSettings) -> Result<(Addr<Database>, Recovered), StoreError> {
        let (store, recovered) = Store::open(&settings.data_dir, settings.snap_count)?;
        let shadow = recovered.state.clone();
        let epoch = Instant::now();
        let (tx, rx) = std_mpsc::channel();
        let db = Database {
            core: ServerCore::recover(recovered.state.clone(), settings.sessions, 1, 0),
            ensemble: None,
            applied_index: 0,
            waiters: BTreeMap::new(),
            touched: HashSet::new(),
            leading: false,
            quorum: true,
            write_timeout: Duration::ZERO,
            since_snapshot: (0, settings.snap_count),
            senders: HashMap::new(),
            pending: VecDeque::new(),
            next_zxid: recovered.last_zxid + 1,
            writer: tx,
            epoch,
            latency: (f64::MAX, 0.0, 0, 0.0),
            failed: None,
            metrics: Metrics::new("standalone"),
        };
        let retain = settings.snap_retain_count;
        let tick = Duration::from_millis(u64::from(settings.sessions.tick_ms.max(10)) / 2);
        let addr = Database::create(move |ctx| {
            ctx.run_interval(tick, |db, ctx| db.expire_sessions(ctx));
            db
        });
        let writer_addr = addr.clone();
        std::thread::Builder::new()
            .name("keeper-log-writer".into())
            .spawn(move || log_writer(store, rx, writer_addr, retain, shadow))
            .map_err(|source| StoreError::Io {
                action: "cannot start the log writer for",
                path: settings.data_dir.clone(),
                source,
            })?;
        Ok((addr, recovered))
    }

    /// Starts the database actor of an ensemble member from `state` (the state machine's
    /// snapshot, at log index `index`). Committed entries arrive through `events`; the
    /// [`Ensemble`] handle is attached once the Raft node runs. Must run inside an actix
    /// system.
    pub fn start_member(
        settings: &KeeperSettings,
        my_id: u64,
        state: KeeperState,
        index: u64,
        write_timeout: Duration,
        mut events: tokio::sync::mpsc::UnboundedReceiver<SmEvent>,
    ) -> Addr<Database> {
        let epoch = Instant::now();
        let (tx, _) = std_mpsc::channel();
        let mut core = ServerCore::recover(state, settings.sessions, my_id as u8, 0);
        // As ZooKeeper: ids count on from the clock, so a restarted member never reissues one.
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        core.start_ids_after(wall << 8);
        let db = Database {
            core,
            ensemble: None,
            applied_index: index,
            waiters: BTreeMap::new(),
            touched: HashSet::new(),
            leading: false,
            quorum: true,
            write_timeout,
            since_snapshot: (0, settings.snap_count),
            senders: HashMap::new(),
            pending: VecDeque::new(),
            next_zxid: 0,
            writer: tx,
            epoch,
            latency: (f64::MAX, 0.0, 0, 0.0),
            failed: None,
            metrics: Metrics::new("follower"),
        };
        let tick = Duration::from_millis(u64::from(settings.sessions.tick_ms.max(10)) / 2);
        let addr = Database::create(move |ctx| {
            ctx.run_interval(tick, |db, ctx| db.expire_sessions(ctx));
            db
        });
        let to = addr.clone();
        actix::spawn(async move {
            while let Some(ev) = events.recv().await {
                if to.send(Apply(ev)).await.is_err() {
                    return;
                }
            }
        });
        addr
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The zxid reads are served at.
    fn served_zxid(&self) -> i64 {
        match self.ensemble {
            Some(_) => crate::ensemble::zxid_through(self.applied_index),
            None => self.core.state().tree.last_zxid(),
        }
    }

    /// Runs `f` once the log is applied here up to `index` (now, if it already is).
    fn when_applied(&mut self, index: u64, f: AfterApply) {
        if self.applied_index >= index {
            f(self);
        } else {
            self.waiters.entry(index).or_default().push(f);
        }
    }

    fn release_waiters(&mut self) {
        let later = self.waiters.split_off(&(self.applied_index + 1));
        let ready = std::mem::replace(&mut self.waiters, later);
        for f in ready.into_values().flatten() {
            f(self);
        }
    }

    /// How long a session's write may wait for a quorum: the write timeout, and never more
    /// than the session's own timeout.
    fn deadline_for(&self, session: u64) -> tokio::time::Instant {
        let own = self
            .core
            .state()
            .sessions
            .get(&session)
            .map(|s| Duration::from_millis(u64::from(s.timeout_ms)))
            .unwrap_or(self.write_timeout);
        tokio::time::Instant::now() + self.write_timeout.min(own)
    }

    /// Commits a write through the ensemble; the reply goes once this server has applied it.
    fn propose(
        &mut self,
        ctx: &mut Context<Self>,
        ensemble: Ensemble,
        session: u64,
        op: Op,
        reply: Option<Reply<OpResult>>,
    ) {
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let deadline = self.deadline_for(session);
        let started = Instant::now();
        let p = Proposal { session, time_ms, op, trace: None };
        // Under the request's span when it is traced: a write forwarded to the leader carries
        // the trace there.
        let span = if tracing::Span::current().is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!("propose", session = format_args!("0x{session:x}"))
        };
        let fut = actix::fut::wrap_future::<_, Self>(
            async move { ensemble.propose(p, deadline).await }.instrument(span),
        );
        ctx.spawn(fut.map(move |res, db, _| match res {
            Err(e) => {
                if let Some(r) = reply {
                    let _ = r.send(Err(e));
                }
            }
            Ok((index, result)) => db.when_applied(
                index,
                Box::new(move |db: &mut Database| {
                    db.record_latency(started, reply.is_some());
                    if let Some(r) = reply {
                        let _ = r.send(result);
                    }
                }),
            ),
        }));
    }

    fn record_latency(&mut self, started: Instant, client_write: bool) {
        let took = started.elapsed().as_secs_f64();
        if client_write {
            self.metrics.writes.increment(1);
            self.metrics.write_latency.record(took);
        }
        let ms = took * 1000.0;
        let (min, max, n, sum) = &mut self.latency;
        *min = min.min(ms);
        *max = max.max(ms);
        *n += 1;
        *sum += ms;
    }

    /// Applies what the ensemble committed, in log order.
    fn apply_committed(&mut self, event: SmEvent) {
        let now = self.now_ms();
        match event {
            SmEvent::Committed(batch) => {
                for (index, txns) in batch {
                    self.applied_index = index;
                    self.since_snapshot.0 += txns.len();
                    for txn in txns {
                        self.apply_txn(now, txn);
                    }
                }
            }
            SmEvent::Installed { state, index } => {
                self.core.install(*state, now);
                self.applied_index = index;
            }
        }
        self.release_waiters();
        self.sample_gauges();
        let (since, every) = self.since_snapshot;
        if since >= every {
            if let Some(ensemble) = &self.ensemble {
                self.since_snapshot.0 = 0;
                let raft = ensemble.raft.clone();
                actix::spawn(async move {
                    if let Err(e) = raft.trigger().snapshot().await {
                        warn!(error = %e, "cannot start a snapshot");
                    }
                });
            }
        }
    }

    fn apply_txn(&mut self, now: u64, txn: Txn) {
        let created = matches!(txn.op, Op::CreateSession { .. }).then_some(txn.session);
        let outcome = self.core.apply(&txn);
        if let Some(id) = created {
            self.core.track(now, id);
        }
        self.deliver(outcome.events, txn.zxid);
        if let Some(session) = outcome.ended {
            if let Some((_, tx)) = self.senders.remove(&session) {
                let _ = tx.try_push(KeeperPush::SessionExpired);
            }
        }
    }

    fn submit(&mut self, ctx: &mut Context<Self>, session: u64, op: Op, reply: Option<Reply<OpResult>>) {
        if let Some(ensemble) = self.ensemble.clone() {
            return self.propose(ctx, ensemble, session, op, reply);
        }
        if let Some(why) = &self.failed {
            if let Some(r) = reply {
                let _ =
                    r.send(Err(KeeperError::SystemError { what: format!("the server cannot write: {why}") }));
            }
            return;
        }
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let txn = Txn { zxid: self.next_zxid, time_ms, session, op };
        self.next_zxid += 1;
        let _ = self.writer.send(txn.clone());
        self.pending.push_back(Pending { txn, reply, started: Instant::now() });
    }

    fn apply_durable(&mut self, upto: i64) {
        while self.pending.front().is_some_and(|p| p.txn.zxid <= upto) {
            let Some(p) = self.pending.pop_front() else { break };
            let outcome = self.core.apply(&p.txn);
            self.deliver(outcome.events, p.txn.zxid);
            if let Some(session) = outcome.ended {
                if let Some((_, tx)) = self.senders.remove(&session) {
                    let _ = tx.try_push(KeeperPush::SessionExpired);
                }
            }
            self.record_latency(p.started, p.reply.is_some());
            if let Some(r) = p.reply {
                let _ = r.send(outcome.result);
            }
        }
    }

    /// Queues watch events on the watching sessions' channels, now (before any later reply).
    fn deliver(&mut self, events: Vec<(u64, WatchEvent)>, zxid: i64) {
        for (session, ev) in events {
            if let Some((_, tx)) = self.senders.get(&session) {
                if tx.try_push(KeeperPush::Watch { event: ev.event, path: ev.path, zxid }).is_err() {
                    warn!(
                        session = format_args!("0x{session:x}"),
                        "client not reading its watch events; dropping its connection"
                    );
                    self.senders.remove(&session);
                }
            }
        }
    }

    /// Samples the gauges: at start, after every batch of applied writes and on every tick
    /// (watches change with reads too).
    fn sample_gauges(&self) {
        let m = &self.metrics;
        m.sessions.set(self.core.session_count() as f64);
        m.znodes.set(self.core.state().tree.node_count() as f64);
        m.watches.set(self.core.watch_count() as f64);
        m.outstanding.set(self.pending.len() as f64);
        m.last_zxid.set(self.core.state().tree.last_zxid() as f64);
    }

    fn expire_sessions(&mut self, ctx: &mut Context<Self>) {
        self.sample_gauges();
        let now = self.now_ms();
        if let Some(ensemble) = &self.ensemble {
            // Only the leader decides expiry; the others tell it whom they heard from.
            if !self.leading {
                if !self.touched.is_empty() {
                    let sessions: Vec<u64> = self.touched.drain().collect();
                    let ensemble = ensemble.clone();
                    actix::spawn(async move { ensemble.touch(sessions).await });
                }
                return;
            }
        }
        for session in self.core.expired(now) {
            info!(session = format_args!("0x{session:x}"), "session expired");
            self.submit(ctx, session, Op::CloseSession, None);
        }
    }
}

/// Mailboxes that never park a sender. actix's `send` on a mailbox past its capacity holds
/// the message back until its reply is polled, and a later message from the same session
/// could then overtake it. Sessions pipeline (up to [`PIPELINE_DEPTH`] requests each), so
/// order matters more than the mailbox bound: the pipeline depth is the back-pressure.
/// (Not larger: actix's channel leaves room for senders above the bound, and refuses every
/// sender when the bound takes all of it.)
const UNPARKED_MAILBOX: usize = 1 << 40;

impl Actor for Database {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(UNPARKED_MAILBOX);
        self.sample_gauges();
    }
}

impl Handler<Durable> for Database {
    type Result = ();
    fn handle(&mut self, msg: Durable, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("Database", "Durable");
        self.apply_durable(msg.upto);
        self.sample_gauges();
    }
}

/// Entries the ensemble committed (or a snapshot it installed), in log order.
#[derive(Message)]
#[rtype(result = "()")]
struct Apply(SmEvent);

impl Handler<Apply> for Database {
    type Result = ();
    fn handle(&mut self, msg: Apply, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("Database", "Apply");
        self.apply_committed(msg.0);
    }
}

/// The Raft node runs: writes go through it from now on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Attach(pub Ensemble);

impl Handler<Attach> for Database {
    type Result = ();
    fn handle(&mut self, msg: Attach, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("Database", "Attach");
        self.ensemble = Some(msg.0);
    }
}

/// This member's role changed: whether it leads, and whether it is in touch with a quorum
/// (a leader acknowledged by a majority lately; a follower with a leader).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Role {
    /// It leads.
    pub leading: bool,
    /// It can commit writes.
    pub quorum: bool,
}

impl Handler<Role> for Database {
    type Result = ();
    fn handle(&mut self, msg: Role, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("Database", "Role");
        if msg.quorum != self.quorum {
            self.quorum = msg.quorum;
            if msg.quorum {
                info!("in touch with a quorum again: writes commit");
            } else {
                warn!("no quorum: writes fail, reads may be stale");
            }
            for (_, tx) in self.senders.values() {
                let _ = tx.try_push(KeeperPush::ReadOnly(!msg.quorum));
            }
        }
        let leading = msg.leading;
        if leading && !self.leading {
            // A new leader gives every session a full timeout before it expires any.
            let now = self.now_ms();
            self.core.renew_all(now);
            info!(sessions = self.core.session_count(), "leading: deciding session expiry from now on");
        }
        self.leading = leading;
        let state = if leading { "leader" } else { "follower" };
        let (l, f) = if leading { (1.0, 0.0) } else { (0.0, 1.0) };
        metrics::gauge!("sluice_keeper_server_state", "state" => "leader").set(l);
        metrics::gauge!("sluice_keeper_server_state", "state" => "follower").set(f);
        debug!(state, "role changed");
    }
}

/// Another member heard from these sessions (this member leads).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Touched(pub Vec<u64>);

impl Handler<Touched> for Database {
    type Result = ();
    fn handle(&mut self, msg: Touched, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("Database", "Touched");
        let now = self.now_ms();
        for id in msg.0 {
            let _ = self.core.touch(now, id);
        }
    }
}

/// A session whose `CreateSession` did not commit.
#[derive(Message)]
#[rtype(result = "()")]
struct Forget(u64);

impl Handler<Forget> for Database {
    type Result = ();
    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("Database", "Forget");
        self.core.forget(msg.0);
        self.senders.remove(&msg.0);
    }
}

impl Handler<WriterFailed> for Database {
    type Result = ();
    fn handle(&mut self, msg: WriterFailed, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("Database", "WriterFailed");
        warn!(error = %msg.0, "the transaction log failed; refusing writes from now on");
        for p in self.pending.drain(..) {
            if let Some(r) = p.reply {
                let _ = r.send(Err(KeeperError::SystemError {
                    what: format!("the server cannot write: {}", msg.0),
                }));
            }
        }
        self.failed = Some(msg.0);
    }
}

/// The log writer thread: group commit, snapshots, purge.
///
/// It keeps its own copy of the replicated state (`shadow`), applying every transaction once
/// it is durable, and snapshots that copy: the database actor never stops for a snapshot
/// (copying a large tree on the actor's thread stalled every session for hundreds of ms).
/// The copy is handed to a snapshot thread, which serialises and fsyncs it while commits go
/// on; transactions committed meanwhile wait in a backlog and are applied when the copy
/// comes back. The price: a second apply per transaction and the tree's memory twice.
/// (ZooKeeper's "fuzzy" snapshot serialises the live tree while it changes instead.)
fn log_writer(
    mut store: Store,
    rx: std_mpsc::Receiver<Txn>,
    db: Addr<Database>,
    retain: usize,
    shadow: KeeperState,
) {
    type Written = (KeeperState, Result<PathBuf, StoreError>, Instant);
    let commit_latency = metrics::histogram!("sluice_keeper_commit_latency_seconds");
    let (done_tx, done_rx) = std_mpsc::channel::<Written>();
    let (job_tx, job_rx) = std_mpsc::channel::<(SnapshotFile, KeeperState, Instant)>();
    let snapshotter = std::thread::Builder::new().name("keeper-snapshot".into()).spawn(move || {
        while let Ok((file, state, started)) = job_rx.recv() {
            let written = file.write(&state);
            if done_tx.send((state, written, started)).is_err() {
                return;
            }
        }
    });
    if let Err(e) = snapshotter {
        // The job channel's receiver is gone with it: snapshots are then written here.
        warn!(error = %e, "cannot start the snapshot thread; snapshots will hold up writes");
    }
    let mut shadow = Some(shadow);
    let mut backlog: Vec<Txn> = Vec::new();
    while let Ok(first) = rx.recv() {
        // Group commit: everything queued since the last write goes in one fsync.
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let upto = batch.last().map(|t| t.zxid).unwrap_or_default();
        let started = Instant::now();
        if let Err(e) = store.append(&batch) {
            db.do_send(WriterFailed(e.to_string()));
            return;
        }
        commit_latency.record(started.elapsed().as_secs_f64());
        db.do_send(Durable { upto });
        if let Ok((mut state, written, started)) = done_rx.try_recv() {
            finish_snapshot(&store, retain, written, started);
            for txn in backlog.drain(..) {
                state.apply(&txn);
            }
            shadow = Some(state);
        }
        match shadow.as_mut() {
            Some(state) => batch.iter().for_each(|txn| {
                state.apply(txn);
            }),
            None => backlog.extend(batch),
        }
        if store.wants_snapshot() {
            // The copy is at `upto` now; without it (a snapshot still being written) the
            // next batch asks again.
            if let Some(state) = shadow.take() {
                match store.begin_snapshot(upto) {
                    Ok(file) => {
                        if let Err(std_mpsc::SendError((file, state, started))) =
                            job_tx.send((file, state, Instant::now()))
                        {
                            finish_snapshot(&store, retain, file.write(&state), started);
                            shadow = Some(state);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot start a snapshot; will try again");
                        shadow = Some(state);
                    }
                }
            }
        }
    }
}

/// A snapshot file was written (or not): purge what it makes unnecessary, and say so.
fn finish_snapshot(store: &Store, retain: usize, written: Result<PathBuf, StoreError>, started: Instant) {
    match written.and_then(|p| store.purge(retain).map(|n| (p, n))) {
        Ok((path, purged)) => info!(
            snapshot = %path.display(),
            purged,
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        ),
        Err(e) => warn!(error = %e, "snapshot failed; the next one will try again"),
    }
}

/// Open or resume a session for a connection.
#[derive(Debug, Message)]
#[rtype(result = "Result<Connected, KeeperError>")]
pub struct OpenSession {
    /// What the client asked.
    pub connect: Connect,
    /// Its outbound queue (replies and pushes).
    pub sender: ChannelSender<KeeperProtocol>,
    /// The connection, so a later detach from an older connection is ignored.
    pub connection: usize,
}

impl Handler<OpenSession> for Database {
    type Result = ResponseFuture<Result<Connected, KeeperError>>;
    fn handle(&mut self, msg: OpenSession, ctx: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("Database", "OpenSession");
        let now = self.now_ms();
        let served = self.served_zxid();
        if msg.connect.seen_zxid > served {
            let behind = KeeperError::Behind { client_zxid: msg.connect.seen_zxid, server_zxid: served };
            return Box::pin(async move { Err(behind) });
        }
        match msg.connect.resume {
            Some((id, password)) => {
                if self.ensemble.is_some() {
                    self.touched.insert(id);
                }
                let result = self.core.resume_session(now, id, &password).map(|s| {
                    if !self.quorum {
                        let _ = msg.sender.try_push(KeeperPush::ReadOnly(true));
                    }
                    self.senders.insert(id, (msg.connection, msg.sender));
                    Connected { session: s.id, password: s.password, timeout_ms: s.timeout_ms }
                });
                Box::pin(async move { result })
            }
            None => {
                let s = self.core.open_session(now, msg.connect.timeout_ms, rand::random());
                self.senders.insert(s.id, (msg.connection, msg.sender));
                let (tx, rx) = oneshot::channel();
                self.submit(
                    ctx,
                    s.id,
                    Op::CreateSession { timeout_ms: s.timeout_ms, password: s.password },
                    Some(tx),
                );
                let connected = Connected { session: s.id, password: s.password, timeout_ms: s.timeout_ms };
                let me = ctx.address();
                Box::pin(async move {
                    match rx.await.map_err(|_| KeeperError::ConnectionLoss).and_then(|r| r) {
                        Ok(_) => Ok(connected),
                        Err(e) => {
                            me.do_send(Forget(connected.session));
                            Err(e)
                        }
                    }
                })
            }
        }
    }
}

/// A request of a live session.
#[derive(Debug, Message)]
#[rtype(result = "KeeperResponse")]
pub struct SessionRequest {
    /// The session.
    pub session: u64,
    /// The request.
    pub request: KeeperRequest,
    /// The request's span (`Span::none()` unless traces are exported): a write's proposal
    /// is traced under it.
    pub span: tracing::Span,
}

impl Handler<SessionRequest> for Database {
    type Result = ResponseFuture<KeeperResponse>;
    fn handle(&mut self, msg: SessionRequest, ctx: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("Database", "SessionRequest");
        use KeeperRequest as Q;
        use KeeperResponse as A;
        let session = msg.session;
        let span = msg.span.clone();
        let _in_request = span.enter();
        let now = self.now_ms();
        if let Err(e) = self.core.touch(now, session) {
            let expired = |e: KeeperError| -> A {
                match msg.request {
                    Q::Ping(_) => A::Ping(Err(e)),
                    Q::Write(_) => A::Write(Err(e)),
                    Q::GetData(_) => A::GetData(Err(e)),
                    Q::Exists(_) => A::Exists(Err(e)),
                    Q::GetChildren(_) => A::GetChildren(Err(e)),
                    Q::Sync(_) => A::Sync(Err(e)),
                    Q::AddWatch(_) => A::AddWatch(Err(e)),
                    Q::SetWatches(_) => A::SetWatches(Err(e)),
                    Q::Close(_) => A::Close(Err(e)),
                    Q::Connect(_) => A::Connect(Err(e)),
                    Q::Status(_) => A::Status(self.status()),
                }
            };
            let reply = expired(e);
            return Box::pin(async move { reply });
        }
        let answer = |r: A| -> Self::Result { Box::pin(async move { r }) };
        if matches!(msg.request, Q::GetData(_) | Q::Exists(_) | Q::GetChildren(_)) {
            self.metrics.reads.increment(1);
        }
        if self.ensemble.is_some() {
            self.touched.insert(session);
        }
        // Reads answer from the applied state; they say how far it goes.
        let zxid = self.served_zxid();
        let core = &mut self.core;
        match msg.request {
            Q::Ping(_) => answer(A::Ping(Ok(zxid))),
            Q::GetData(r) => {
                let res = core.get_data(session, &r.path, r.watch).map(|(data, stat)| NodeData {
                    data,
                    stat,
                    zxid,
                });
                answer(A::GetData(res))
            }
            Q::Exists(r) => {
                answer(A::Exists(core.exists(session, &r.path, r.watch).map(|stat| Existence { stat, zxid })))
            }
            Q::GetChildren(r) => {
                let res = core.children(session, &r.path, r.watch).map(|(children, stat)| Children {
                    children,
                    stat,
                    zxid,
                });
                answer(A::GetChildren(res))
            }
            Q::AddWatch(r) => answer(A::AddWatch(core.add_watch(session, &r.path, r.kind).map(|()| zxid))),
            Q::SetWatches(r) => {
                // The events it fires are queued before its reply, like any other event.
                let events = core.set_watches(session, r.seen_zxid, &r.watches);
                let fired = events.len();
                self.deliver(events.into_iter().map(|ev| (session, ev)).collect(), zxid);
                debug!(
                    session = format_args!("0x{session:x}"),
                    watches = r.watches.len(),
                    fired,
                    "watches re-registered"
                );
                answer(A::SetWatches(Ok(zxid)))
            }
            Q::Sync(_) if self.ensemble.is_some() => {
                // The leader's read index covers every write committed before this request;
                // once this server has applied it, the session's next read sees them all.
                let (tx, rx) = oneshot::channel();
                let deadline = self.deadline_for(session);
                if let Some(ensemble) = self.ensemble.clone() {
                    let fut =
                        actix::fut::wrap_future::<_, Self>(
                            async move { ensemble.read_index(deadline).await },
                        );
                    ctx.spawn(fut.map(move |res, db, _| match res {
                        Ok(index) => db.when_applied(
                            index,
                            Box::new(move |_: &mut Database| {
                                let _ = tx.send(Ok(crate::ensemble::zxid_through(index)));
                            }),
                        ),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }));
                }
                Box::pin(async move { A::Sync(rx.await.unwrap_or(Err(KeeperError::ConnectionLoss))) })
            }
            Q::Sync(_) => {
                // Every write acknowledged before this request has been applied; a write
                // still waiting for its fsync is not acknowledged yet, so wait for it too.
                let (tx, rx) = oneshot::channel();
                let synced = self.next_zxid;
                self.submit(ctx, session, Op::Check { path: "/".into(), version: -1 }, Some(tx));
                Box::pin(async move {
                    A::Sync(rx.await.map_err(|_| KeeperError::ConnectionLoss).and_then(|r| r.map(|_| synced)))
                })
            }
            Q::Write(w) => {
                if matches!(w.0, Op::CreateSession { .. } | Op::CloseSession) {
                    return answer(A::Write(Err(KeeperError::BadArguments {
                        what: "session operations are not writes".into(),
                    })));
                }
                let (tx, rx) = oneshot::channel();
                self.submit(ctx, session, w.0, Some(tx));
                Box::pin(async move { A::Write(rx.await.unwrap_or(Err(KeeperError::ConnectionLoss))) })
            }
            Q::Close(_) => {
                let (tx, rx) = oneshot::channel();
                self.submit(ctx, session, Op::CloseSession, Some(tx));
                Box::pin(
                    async move { A::Close(rx.await.unwrap_or(Err(KeeperError::ConnectionLoss)).map(|_| ())) },
                )
            }
            Q::Connect(_) => answer(A::Connect(Err(KeeperError::BadArguments {
                what: "this channel already has a session".into(),
            }))),
            Q::Status(_) => answer(A::Status(self.status())),
        }
    }
}

/// A connection ended; the session lives on until it expires.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Detach {
    /// The session.
    pub session: u64,
    /// The connection that ended.
    pub connection: usize,
}

impl Handler<Detach> for Database {
    type Result = ();
    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        let _span = sluice_actors::handling!("Database", "Detach");
        if self.senders.get(&msg.session).is_some_and(|(c, _)| *c == msg.connection) {
            self.senders.remove(&msg.session);
        }
    }
}

/// Asks for the server's status.
#[derive(Debug, Message)]
#[rtype(result = "ServerStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for Database {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        let _span = sluice_actors::handling!("Database", "GetStatus");
        MessageResult(self.status())
    }
}

impl Database {
    fn status(&self) -> ServerStatus {
        let (min, max, n, sum) = self.latency;
        let (mode, ensemble) = match &self.ensemble {
            None => ("standalone".to_string(), None),
            Some(e) => {
                let (role, term, leader) = e.view();
                let members = e.members().iter().map(|(id, addr)| (*id, addr.clone())).collect();
                (
                    role,
                    Some(EnsembleStatus {
                        my_id: e.my_id,
                        term,
                        leader,
                        last_committed: self.core.state().tree.last_zxid(),
                        log_index: self.applied_index,
                        members,
                    }),
                )
            }
        };
        ServerStatus {
            mode,
            ensemble,
            last_zxid: self.served_zxid(),
            znodes: self.core.state().tree.node_count(),
            sessions: self.core.session_count(),
            watches: self.core.watch_count(),
            outstanding: self.pending.len(),
            latency_ms: if n == 0 { (0.0, 0.0, 0.0) } else { (min, sum / n as f64, max) },
            version: sluice_net::SOFTWARE.into(),
        }
    }
}

/// One connected client session: checks, touches and forwards its requests in order.
#[derive(Debug)]
pub struct SessionActor {
    session: u64,
    db: Addr<Database>,
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
        let _span = sluice_actors::handling!("SessionActor", "ClientRequest");
        let req = self.db.send(SessionRequest { session: self.session, request: msg.0, span: msg.1 });
        Box::pin(async move { req.await.unwrap_or(KeeperResponse::Ping(Err(KeeperError::ConnectionLoss))) })
    }
}

/// The keeper's `sluice-keeper/1` service.
#[derive(Debug, Clone)]
pub struct KeeperService {
    db: Addr<Database>,
    /// Where session actors live: connections are served on plain tokio tasks, which
    /// cannot start actors themselves.
    arbiter: ArbiterHandle,
}

impl KeeperService {
    /// A service answering from `db`. Must be created inside the actix system.
    pub fn new(db: Addr<Database>) -> Self {
        KeeperService { db, arbiter: Arbiter::current() }
    }
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
        let opened = self.db.send(OpenSession { connect, sender: tx.clone(), connection }).await;
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
        let actor = SessionActor::start_in_arbiter(&self.arbiter, move |_| SessionActor { session, db });
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

/// Runs a standalone keeper until `shutdown` completes: recovers the store, listens, serves.
/// Prints nothing; logs through tracing. Must run inside an actix system.
pub async fn run(
    config: &crate::config::KeeperConfig,
    identity: &sluice_net::TlsIdentity,
    on_listening: impl FnOnce(std::net::SocketAddr),
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
    on_listening(addr);
    server.serve(std::sync::Arc::new(sluice_net::Typed(KeeperService::new(db))), shutdown).await;
    Ok(())
}

/// Runs one ensemble member until `shutdown` completes: opens the Raft log and state
/// machine in `dataDir/raft`, starts the Raft node, its peer port and the client port.
async fn run_member(
    config: &crate::config::KeeperConfig,
    ens: &crate::ensemble::EnsembleSettings,
    identity: &sluice_net::TlsIdentity,
    on_listening: impl FnOnce(std::net::SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), RunError> {
    use crate::ensemble::log_store::LogStore;
    use crate::ensemble::peer::{PeerNetwork, PeerProtocol, PeerService};
    use crate::ensemble::state_machine::StateMachine;
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
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let sink: crate::ensemble::state_machine::Sink = Arc::new(move |ev| {
        let _ = events_tx.send(ev);
    });
    let (sm, state, index) = StateMachine::open(&dir, ens.my_id, sink, config.settings.snap_retain_count)
        .map_err(RunError::Ensemble)?;
    info!(
        my_id = ens.my_id,
        snapshot_index = index,
        znodes = state.tree.node_count(),
        sessions = state.sessions.len(),
        "ensemble member recovering"
    );
    let db = Database::start_member(&config.settings, ens.my_id, state, index, ens.write_timeout, events_rx);
    let raft_config = ens.raft_config(config.settings.snap_count as u64).map_err(RunError::Ensemble)?;
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
    let ensemble = Ensemble::new(ens.my_id, raft.clone(), peers, ens.members.clone());
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
    let peer_listen = crate::config::listen_addr(&my_peer).map_err(RunError::Ensemble)?;
    let opts =
        sluice_net::ServerOptions { name: "keeper-peer".into(), nodes_only: true, ..Default::default() };
    let peer_server = sluice_net::Server::<PeerProtocol>::bind(peer_listen, identity, opts)?;
    db.do_send(Attach(ensemble.clone()));
    // Role changes reach the database (it decides expiry while it leads, and tells its
    // clients when it has no quorum). Checked on every change and every heartbeat: a leader
    // cut off from its majority learns it only from time passing without acknowledgements.
    let (role_db, mut metrics) = (db.clone(), raft.metrics());
    let (my_id, heartbeat) = (ens.my_id, Duration::from_millis(ens.heartbeat_ms));
    let lost_after = ens.election_timeout_ms * 2;
    metrics::describe_gauge!(
        "sluice_keeper_raft_term",
        "The Raft term (ZooKeeper's epoch) this member is in."
    );
    metrics::describe_gauge!("sluice_keeper_raft_leader", "The member this one follows (or is), 0 for none.");
    metrics::describe_gauge!(
        "sluice_keeper_quorum",
        "1 while this member can commit writes, 0 without a quorum."
    );
    let (term_gauge, leader_gauge, quorum_gauge) = (
        metrics::gauge!("sluice_keeper_raft_term"),
        metrics::gauge!("sluice_keeper_raft_leader"),
        metrics::gauge!("sluice_keeper_quorum"),
    );
    actix::spawn(async move {
        let mut was = None;
        loop {
            let role = {
                let m = metrics.borrow_and_update();
                term_gauge.set(m.current_term as f64);
                leader_gauge.set(m.current_leader.unwrap_or(0) as f64);
                let leading = m.state == openraft::ServerState::Leader && m.current_leader == Some(my_id);
                let alone = m.membership_config.voter_ids().count() == 1;
                let quorum = match m.state {
                    openraft::ServerState::Leader => {
                        alone || m.millis_since_quorum_ack.is_some_and(|ms| ms <= lost_after)
                    }
                    openraft::ServerState::Follower => m.current_leader.is_some(),
                    _ => false,
                };
                (leading, quorum)
            };
            quorum_gauge.set(if role.1 { 1.0 } else { 0.0 });
            if was != Some(role) {
                was = Some(role);
                role_db.do_send(Role { leading: role.0, quorum: role.1 });
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(heartbeat) => {}
            }
        }
    });

    let opts = sluice_net::ServerOptions { name: "keeper".into(), ..Default::default() };
    let server = sluice_net::Server::<KeeperProtocol>::bind(config.listen, identity, opts)?;
    let addr = server.local_addr().map_err(|source| RunError::Listen(source.to_string()))?;
    info!(%addr, peer = %peer_listen, members = ens.members.len(), "ensemble member listening");
    on_listening(addr);
    let (stop_peers, peers_stopped) = oneshot::channel::<()>();
    let peer_task = tokio::spawn(async move {
        peer_server
            .serve(std::sync::Arc::new(sluice_net::Typed(service)), async move {
                let _ = peers_stopped.await;
            })
            .await
    });
    server.serve(std::sync::Arc::new(sluice_net::Typed(KeeperService::new(db))), shutdown).await;
    let _ = raft.shutdown().await;
    let _ = stop_peers.send(());
    let _ = peer_task.await;
    Ok(())
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
    /// The peer client could not be made.
    #[error(transparent)]
    Connect(#[from] sluice_net::ConnectError),
}
