//! The keeper's [`Database`] actor: one per server. It owns the replicated state (a
//! `ServerCore`), the session tracker, the watches and every connected session's outbound
//! queue. It assigns zxids, hands transactions to the log writer (standalone) or the
//! ensemble, and applies them once they are durable.
//!
//! Watches fire inside the database actor while it applies a transaction: the events go
//! straight onto the watching sessions' outbound queues, before any later reply can be
//! queued behind them. That is what makes "a client sees the watch event before any read
//! that reflects the change" hold. (Per-path watcher actors would put a mailbox hop between
//! the change and the event, and nothing would order that hop against read replies.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use sluice_ensemble::state_machine::SmEvent;
use sluice_ensemble::store::{Recovered, Store, StoreError};
use sluice_ensemble::{Ensemble, Proposal};
use sluice_keeper_core::{
    check_not_behind, expiry, Expiry, Id, KeeperError, KeeperState, Op, OpResult, ServerCore, SessionConfig,
    Txn, WatchEvent, WriteQueue,
};
use sluice_net::ChannelSender;
use sluice_proto::keeper::{
    Children, Connect, Connected, EnsembleStatus, Existence, KeeperProtocol, KeeperPush, KeeperRequest,
    KeeperResponse, NodeAcl, NodeData, ServerStatus,
};
use tokio::sync::oneshot;
use tracing::{debug, info, warn, Instrument};

use super::log_writer::log_writer;

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
    /// `znode.container.checkIntervalMs`: how often the server looks for container and TTL
    /// nodes to delete.
    pub container_check: Duration,
    /// `znode.container.maxPerMinute`: at most this many such deletions a minute.
    pub container_max_per_minute: usize,
}

type Reply<T> = oneshot::Sender<Result<T, KeeperError>>;

/// The log writer said: the log is durable up to this zxid.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Durable {
    pub(crate) upto: i64,
}

/// The log writer failed: the server must stop (it can no longer promise durability).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct WriterFailed(pub(crate) String);

/// The log refused the writes from `zxid` on and kept nothing of them (its disk is full):
/// they fail, and `zxid` is given out again; later writes may succeed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct WriteRefused {
    pub(crate) zxid: i64,
    pub(crate) error: String,
}

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

/// What the shell keeps with a write waiting for durability.
struct Pending {
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
    /// In an ensemble: sessions resumed here whose move here ([`Op::Claim`]) did not commit
    /// (no quorum then), with the zxid of the move this server knew of: the session's next
    /// write claims it first, unless it moved again meanwhile.
    unclaimed: HashMap<u64, i64>,
    /// In an ensemble: whether this server leads (and so decides session expiry).
    leading: bool,
    /// In an ensemble: whether this server is in touch with a quorum.
    quorum: bool,
    /// In an ensemble: how long a write waits for a quorum.
    write_timeout: Duration,
    /// In an ensemble: transactions applied since the last snapshot, and `snapCount`.
    since_snapshot: (usize, usize),
    senders: HashMap<u64, (usize, Outbox)>,
    /// Standalone: writes given zxids, waiting for the log writer (the core's rule).
    pending: WriteQueue<Pending>,
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
            unclaimed: HashMap::new(),
            leading: false,
            quorum: true,
            write_timeout: Duration::ZERO,
            since_snapshot: (0, settings.snap_count),
            senders: HashMap::new(),
            pending: WriteQueue::after(recovered.last_zxid),
            writer: tx,
            epoch,
            latency: (f64::MAX, 0.0, 0, 0.0),
            failed: None,
            metrics: Metrics::new("standalone"),
        };
        let retain = settings.snap_retain_count;
        let tick = Duration::from_millis(u64::from(settings.sessions.tick_ms.max(10)) / 2);
        let (check, per_minute) = (settings.container_check, settings.container_max_per_minute);
        let addr = Database::create(move |ctx| {
            ctx.run_interval(tick, |db, ctx| db.expire_sessions(ctx));
            ctx.run_interval(check, move |db, ctx| db.reap(ctx, check, per_minute));
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
            unclaimed: HashMap::new(),
            leading: false,
            quorum: true,
            write_timeout,
            since_snapshot: (0, settings.snap_count),
            senders: HashMap::new(),
            pending: WriteQueue::after(-1),
            writer: tx,
            epoch,
            latency: (f64::MAX, 0.0, 0, 0.0),
            failed: None,
            metrics: Metrics::new("follower"),
        };
        let tick = Duration::from_millis(u64::from(settings.sessions.tick_ms.max(10)) / 2);
        let (check, per_minute) = (settings.container_check, settings.container_max_per_minute);
        let addr = Database::create(move |ctx| {
            ctx.run_interval(tick, |db, ctx| db.expire_sessions(ctx));
            ctx.run_interval(check, move |db, ctx| db.reap(ctx, check, per_minute));
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
            Some(_) => sluice_ensemble::zxid_through(self.applied_index),
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

    /// In an ensemble, `op` as sent through this member ([`Op::Via`]): refused where it is
    /// applied if its session has moved to another member. Standalone, `op`.
    fn via(&self, op: Op) -> Op {
        match &self.ensemble {
            Some(e) => Op::Via { member: e.my_id, op: Box::new(op) },
            None => op,
        }
    }

    /// A client's write of `session` made fit to propose: [`via`](Self::via) this member,
    /// after a claim of the session (proposed first, in order) if its resume here could not
    /// claim it. The claim holds only if the session has not moved since that resume.
    fn fenced(&mut self, ctx: &mut Context<Self>, session: u64, op: Op) -> Op {
        if let (Some(known), Some(e)) = (self.unclaimed.remove(&session), &self.ensemble) {
            let claim = Op::Claim { member: e.my_id, after: Some(known) };
            self.submit(ctx, session, claim, None);
        }
        self.via(op)
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
        let created = matches!(txn.op.unwrapped(), Op::CreateSession { .. }).then_some(txn.session);
        let outcome = self.core.apply(&txn);
        if let Some(id) = created {
            self.core.track(now, id);
        }
        self.deliver(outcome.events, txn.zxid);
        if let Some(session) = outcome.ended {
            self.unclaimed.remove(&session);
            if let Some((_, tx)) = self.senders.remove(&session) {
                let _ = tx.push(KeeperPush::SessionExpired);
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
        let txn = self.pending.submit(time_ms, session, op, Pending { reply, started: Instant::now() });
        let _ = self.writer.send(txn);
    }

    fn apply_durable(&mut self, upto: i64) {
        for (txn, p) in self.pending.durable(upto) {
            let outcome = self.core.apply(&txn);
            self.deliver(outcome.events, txn.zxid);
            if let Some(session) = outcome.ended {
                if let Some((_, tx)) = self.senders.remove(&session) {
                    let _ = tx.push(KeeperPush::SessionExpired);
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
                if !tx.push(KeeperPush::Watch { event: ev.event, path: ev.path, zxid }) {
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

    /// Deletes the container and TTL nodes that are due (ZooKeeper's `ContainerManager`),
    /// where this server decides expiry (standalone, or the ensemble's leader with a quorum):
    /// each with a delete conditional on the version it had, at most `per_minute` a minute.
    fn reap(&mut self, ctx: &mut Context<Self>, every: Duration, per_minute: usize) {
        if expiry(self.ensemble.is_some(), self.leading) == Expiry::Report || !self.quorum {
            return;
        }
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let budget = (per_minute as u128 * every.as_millis() / 60_000).max(1) as usize;
        let due = self.core.reapable(wall);
        if !due.is_empty() {
            debug!(due = due.len(), budget, "deleting container and TTL nodes");
        }
        for (path, version) in due.into_iter().take(budget) {
            self.submit(ctx, 0, Op::Delete { path, version }, None);
        }
    }

    fn expire_sessions(&mut self, ctx: &mut Context<Self>) {
        self.sample_gauges();
        let now = self.now_ms();
        if expiry(self.ensemble.is_some(), self.leading) == Expiry::Report {
            // The others tell the leader whom they heard from.
            if let Some(ensemble) = &self.ensemble {
                if !self.touched.is_empty() {
                    let sessions: Vec<u64> = self.touched.drain().collect();
                    let ensemble = ensemble.clone();
                    actix::spawn(async move { ensemble.touch(sessions).await });
                }
            }
            return;
        }
        // A leader that has not heard from a quorum lately (one resumed from a long pause,
        // say) may be deposed already: its view of the sessions is stale, and its closes
        // could not commit anyway.
        if !self.quorum {
            return;
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
pub(crate) const UNPARKED_MAILBOX: usize = 1 << 40;

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
        let _span = crate::handling!("Database", "Durable");
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
        let _span = crate::handling!("Database", "Apply");
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
        let _span = crate::handling!("Database", "Attach");
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
        let _span = crate::handling!("Database", "Role");
        if msg.quorum != self.quorum {
            self.quorum = msg.quorum;
            if msg.quorum {
                info!("in touch with a quorum again: writes commit");
            } else {
                warn!("no quorum: writes fail, reads may be stale");
            }
            for (_, tx) in self.senders.values() {
                let _ = tx.push(KeeperPush::ReadOnly(!msg.quorum));
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
        let _span = crate::handling!("Database", "Touched");
        let now = self.now_ms();
        for id in msg.0 {
            let _ = self.core.touch(now, id);
        }
    }
}

/// A session's move to this member committed.
#[derive(Message)]
#[rtype(result = "()")]
struct Claimed(u64);

impl Handler<Claimed> for Database {
    type Result = ();
    fn handle(&mut self, msg: Claimed, _: &mut Context<Self>) {
        let _span = crate::handling!("Database", "Claimed");
        self.unclaimed.remove(&msg.0);
    }
}

/// A session whose `CreateSession` did not commit.
#[derive(Message)]
#[rtype(result = "()")]
struct Forget(u64);

impl Handler<Forget> for Database {
    type Result = ();
    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        let _span = crate::handling!("Database", "Forget");
        self.core.forget(msg.0);
        self.senders.remove(&msg.0);
    }
}

impl Handler<WriterFailed> for Database {
    type Result = ();
    fn handle(&mut self, msg: WriterFailed, _: &mut Context<Self>) {
        let _span = crate::handling!("Database", "WriterFailed");
        warn!(error = %msg.0, "the transaction log failed; refusing writes from now on");
        for (_, p) in self.pending.fail_all() {
            if let Some(r) = p.reply {
                let _ = r.send(Err(KeeperError::SystemError {
                    what: format!("the server cannot write: {}", msg.0),
                }));
            }
        }
        self.failed = Some(msg.0);
    }
}

impl Handler<WriteRefused> for Database {
    type Result = ();
    fn handle(&mut self, msg: WriteRefused, _: &mut Context<Self>) {
        let _span = crate::handling!("Database", "WriteRefused");
        let refused = self.pending.refuse_from(msg.zxid);
        warn!(error = %msg.error, writes = refused.len(), "writes refused: the transaction log has no room");
        for (_, p) in refused {
            if let Some(r) = p.reply {
                let _ = r.send(Err(KeeperError::SystemError {
                    what: format!("the server cannot write now: {}", msg.error),
                }));
            }
        }
    }
}

/// Where a session's pushes (watch events, expiry, quorum changes) go: the ordered QUIC
/// channel its replies share, or a door's callback that queues them on its connection
/// before any later reply. Either way a push is queued at once and never waits: `false`
/// means the queue is full or gone, and the session's connection is then dropped.
#[derive(Clone)]
pub enum Outbox {
    /// A `sluice-keeper/1` channel.
    Channel(ChannelSender<KeeperProtocol>),
    /// A door's queue (the ZooKeeper door's connection writer).
    Door(Arc<dyn Fn(KeeperPush) -> bool + Send + Sync>),
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outbox::Channel(_) => "Outbox::Channel",
            Outbox::Door(_) => "Outbox::Door",
        })
    }
}

impl Outbox {
    /// Queues `push` without waiting; whether it was queued.
    pub fn push(&self, push: KeeperPush) -> bool {
        match self {
            Outbox::Channel(tx) => tx.try_push(push).is_ok(),
            Outbox::Door(f) => f(push),
        }
    }
}

/// Open or resume a session for a connection.
#[derive(Debug, Message)]
#[rtype(result = "Result<Connected, KeeperError>")]
pub struct OpenSession {
    /// What the client asked.
    pub connect: Connect,
    /// Where its pushes go (its connection's outbound queue, shared with the replies).
    pub sender: Outbox,
    /// The connection, so a later detach from an older connection is ignored.
    pub connection: usize,
}

impl Handler<OpenSession> for Database {
    type Result = ResponseFuture<Result<Connected, KeeperError>>;
    fn handle(&mut self, msg: OpenSession, ctx: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Database", "OpenSession");
        let now = self.now_ms();
        if let Err(behind) = check_not_behind(msg.connect.seen_zxid, self.served_zxid()) {
            return Box::pin(async move { Err(behind) });
        }
        match msg.connect.resume {
            Some((id, password)) => {
                if self.ensemble.is_some() {
                    self.touched.insert(id);
                }
                let result = self.core.resume_session(now, id, &password).map(|s| {
                    if !self.quorum {
                        let _ = msg.sender.push(KeeperPush::ReadOnly(true));
                    }
                    self.senders.insert(id, (msg.connection, msg.sender));
                    Connected { session: s.id, password: s.password, timeout_ms: s.timeout_ms }
                });
                let (Ok(connected), Some(ensemble)) = (&result, &self.ensemble) else {
                    return Box::pin(async move { result });
                };
                // The session moves here before the client hears it is connected (ZooKeeper's
                // revalidation at the leader): a write it left behind on its old server
                // reaches the log after this, or before any it makes from here.
                let connected = connected.clone();
                let member = ensemble.my_id;
                let known = self.core.state().owners.get(&id).map(|o| o.since).unwrap_or(0);
                self.unclaimed.insert(id, known);
                if !self.quorum {
                    // It could not commit: no waiting for it (the client reads here, told
                    // this server has no quorum); the session's first write claims it.
                    return Box::pin(async move { Ok(connected) });
                }
                let (tx, rx) = oneshot::channel();
                self.submit(ctx, id, Op::Claim { member, after: None }, Some(tx));
                let me = ctx.address();
                Box::pin(async move {
                    match rx.await.map_err(|_| KeeperError::ConnectionLoss).and_then(|r| r) {
                        Ok(_) => {
                            me.do_send(Claimed(id));
                            Ok(connected)
                        }
                        Err(e @ KeeperError::SessionExpired { .. }) => Err(e),
                        // No quorum: the client may read here (and is told this server has no
                        // quorum); its first write claims the session.
                        Err(e) => {
                            debug!(session = format_args!("0x{id:x}"), error = %e, "session resumed unclaimed");
                            Ok(connected)
                        }
                    }
                })
            }
            None => {
                let s = self.core.open_session(now, msg.connect.timeout_ms, rand::random());
                self.senders.insert(s.id, (msg.connection, msg.sender));
                let (tx, rx) = oneshot::channel();
                let create = self.via(Op::CreateSession { timeout_ms: s.timeout_ms, password: s.password });
                self.submit(ctx, s.id, create, Some(tx));
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
    /// The identities its connection holds: reads are checked with them, and writes carry
    /// them ([`Op::As`]) to be checked where they are applied.
    pub ids: Arc<[Id]>,
    /// The request.
    pub request: KeeperRequest,
    /// The request's span (`Span::none()` unless traces are exported): a write's proposal
    /// is traced under it.
    pub span: tracing::Span,
}

impl Handler<SessionRequest> for Database {
    type Result = ResponseFuture<KeeperResponse>;
    fn handle(&mut self, msg: SessionRequest, ctx: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Database", "SessionRequest");
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
                    Q::GetEphemerals(_) => A::GetEphemerals(Err(e)),
                    Q::CountDescendants(_) => A::CountDescendants(Err(e)),
                    Q::RemoveWatches(_) => A::RemoveWatches(Err(e)),
                    Q::GetAcl(_) => A::GetAcl(Err(e)),
                    Q::AddAuth(_) => A::AddAuth(Err(e)),
                }
            };
            let reply = expired(e);
            return Box::pin(async move { reply });
        }
        let answer = |r: A| -> Self::Result { Box::pin(async move { r }) };
        if matches!(
            msg.request,
            Q::GetData(_)
                | Q::Exists(_)
                | Q::GetChildren(_)
                | Q::GetEphemerals(_)
                | Q::CountDescendants(_)
                | Q::GetAcl(_)
        ) {
            self.metrics.reads.increment(1);
        }
        if self.ensemble.is_some() {
            self.touched.insert(session);
        }
        // Reads answer from the applied state; they say how far it goes.
        let zxid = self.served_zxid();
        let ids = msg.ids;
        let core = &mut self.core;
        match msg.request {
            Q::Ping(_) => answer(A::Ping(Ok(zxid))),
            Q::GetData(r) => {
                let res = core.get_data(session, &ids, &r.path, r.watch).map(|(data, stat)| NodeData {
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
                let res = core.children(session, &ids, &r.path, r.watch).map(|(children, stat)| Children {
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
                                let _ = tx.send(Ok(sluice_ensemble::zxid_through(index)));
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
                let (barrier, synced) = self.pending.sync_barrier();
                self.submit(ctx, session, barrier, Some(tx));
                Box::pin(async move {
                    A::Sync(rx.await.map_err(|_| KeeperError::ConnectionLoss).and_then(|r| r.map(|_| synced)))
                })
            }
            Q::Write(w) => {
                if matches!(
                    w.0,
                    Op::CreateSession { .. }
                        | Op::CloseSession
                        | Op::As { .. }
                        | Op::Claim { .. }
                        | Op::Via { .. }
                ) {
                    return answer(A::Write(Err(KeeperError::BadArguments {
                        what: "session operations are not writes".into(),
                    })));
                }
                // Checked against the ACLs where it is applied, with the asker's identities.
                let op = self.fenced(ctx, session, Op::As { ids: ids.clone(), op: Box::new(w.0) });
                let (tx, rx) = oneshot::channel();
                self.submit(ctx, session, op, Some(tx));
                Box::pin(async move { A::Write(rx.await.unwrap_or(Err(KeeperError::ConnectionLoss))) })
            }
            Q::Close(_) => {
                let (tx, rx) = oneshot::channel();
                let close = self.fenced(ctx, session, Op::CloseSession);
                self.submit(ctx, session, close, Some(tx));
                Box::pin(
                    async move { A::Close(rx.await.unwrap_or(Err(KeeperError::ConnectionLoss)).map(|_| ())) },
                )
            }
            Q::Connect(_) => answer(A::Connect(Err(KeeperError::BadArguments {
                what: "this channel already has a session".into(),
            }))),
            Q::Status(_) => answer(A::Status(self.status())),
            Q::GetEphemerals(r) => answer(A::GetEphemerals(core.ephemerals(session, &r.prefix))),
            Q::CountDescendants(r) => {
                answer(A::CountDescendants(core.descendants(&ids, &r.path).map(|n| n as u64)))
            }
            Q::RemoveWatches(r) => {
                answer(A::RemoveWatches(core.remove_watches(session, &r.path, &r.kinds, r.check_only)))
            }
            Q::GetAcl(r) => {
                answer(A::GetAcl(core.get_acl(&ids, &r.path).map(|(acl, stat)| NodeAcl { acl, stat, zxid })))
            }
            // The session actor keeps its connection's identities and answers addauth itself.
            Q::AddAuth(_) => answer(A::AddAuth(Err(KeeperError::BadArguments {
                what: "addauth is answered by the session's connection".into(),
            }))),
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
        let _span = crate::handling!("Database", "Detach");
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
        let _span = crate::handling!("Database", "GetStatus");
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
