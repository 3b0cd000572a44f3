//! A deterministic simulation of the ensemble: 3 or 5 Raft members, each with the keeper's
//! real log store and state machine (files in a temporary directory, written in the calling
//! task: [`Io::Simulated`]), over a simulated network that drops, delays and partitions
//! messages, while members crash (their Raft node is dropped mid-flight) and recover from
//! their files, and clients read, write and compare-and-set three keys through whoever leads.
//!
//! **Deterministic.** One thread (tokio's current-thread runtime) on tokio's paused clock:
//! time moves only when every task waits on a timer, so the schedule and every interleaving
//! follow from the seed. Each member's election timeout is drawn from the seed (openraft
//! would otherwise draw it from a thread-local generator), member-down errors are plain
//! network errors (openraft's backoff after `Unreachable` races a timer against a channel
//! in an unbiased `select!`), and every map the simulation iterates is ordered. So
//! `SIM_SEED=<n>` replays a failing run exactly, and a test runs seeds twice and compares
//! their full traces.
//!
//! Checked:
//! - at most one leader per term, over every metrics change of every member;
//! - no acknowledged write is lost: after healing, every member's state holds every
//!   acknowledged create, and all members' states are equal;
//! - ephemerals die with their session: no node is owned by a session that is not live,
//!   and sessions whose close was acknowledged own nothing;
//! - the clients' history (reads after `ensure_linearizable`, writes, compare-and-sets,
//!   timeouts as unknown outcomes) is linearizable (`sluice_tests::linearizability`).
//!
//! CI runs the fixed seeds and 1..=20; `SIM_SOAK=1000 cargo test --release -p
//! sluice-ensemble --test simulation` runs 1..=1000.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, ServerState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_ensemble::log_store::LogStore;
use sluice_ensemble::state_machine::{Sink, SmEvent, StateMachine};
use sluice_ensemble::{Batch, Io, KeeperRaft, Proposal};
use sluice_keeper_core::{CreateMode, KeeperError, KeeperState, Op, OpResult};
use sluice_tests::linearizability::{self, History, Outcome, Output};

type Id = u64;

/// The network's faults, drawn from the seeded generator.
struct Faults {
    rng: StdRng,
    /// Members in different groups cannot talk.
    group: BTreeMap<Id, u8>,
    drop_per_mille: u32,
    max_delay_ms: u64,
}

struct Net {
    nodes: Mutex<BTreeMap<Id, Raft<KeeperRaft>>>,
    faults: Mutex<Faults>,
    /// Fires whenever a member's metrics change (role, term, leader).
    changed: Notify,
}

impl Net {
    /// Whether a message from `from` to `to` gets through, and after how long.
    fn fate(&self, from: Id, to: Id) -> Option<Duration> {
        let mut f = self.faults.lock().expect("lock");
        if f.group.get(&from) != f.group.get(&to) {
            return None;
        }
        let dropped = f.rng.gen_range(0..1000) < f.drop_per_mille;
        let max_delay = f.max_delay_ms;
        let delay = f.rng.gen_range(0..=max_delay);
        (!dropped).then(|| Duration::from_millis(delay))
    }

    fn node(&self, id: Id) -> Option<Raft<KeeperRaft>> {
        self.nodes.lock().expect("lock").get(&id).cloned()
    }

    /// Whoever leads in the newest term, with its id and term (a member cut off while it led
    /// says it leads until it hears more).
    fn leader(&self) -> Option<Leader> {
        let nodes = self.nodes.lock().expect("lock");
        nodes
            .iter()
            .filter(|(_, r)| r.metrics().borrow().state == ServerState::Leader)
            .map(|(id, r)| (*id, r.metrics().borrow().current_term, r.clone()))
            .max_by_key(|(_, term, _)| *term)
    }

    /// A leader other than `failed` (the id and term of one a request just failed at):
    /// waits up to `within` for the members' metrics to show one, then settles for whoever
    /// leads (`failed` again, if nothing changed).
    async fn leader_other_than(&self, failed: Option<(Id, u64)>, within: Duration) -> Option<Leader> {
        let other = |l: &Leader| Some((l.0, l.1)) != failed;
        until(&self.changed, within, || self.leader().filter(other)).await.or_else(|| self.leader())
    }
}

/// A member that leads: its id, its term, its Raft.
type Leader = (Id, u64, Raft<KeeperRaft>);

/// Waits (at most `within` of simulated time) until `cond` gives something, checking it
/// again each time `notify` fires.
async fn until<T>(notify: &Notify, within: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let wait = async {
        loop {
            let fired = notify.notified();
            tokio::pin!(fired);
            // Registered before the check, so a change right after it is not missed.
            fired.as_mut().enable();
            if let Some(v) = cond() {
                return v;
            }
            fired.await;
        }
    };
    tokio::time::timeout(within, wait).await.ok()
}

/// How long a sender waits for a message that was lost.
const RPC_TIMEOUT: Duration = Duration::from_millis(50);
/// How long a connection to a member that is down takes to fail.
const REFUSED_AFTER: Duration = Duration::from_millis(2);

struct Factory {
    me: Id,
    net: Arc<Net>,
}

struct Link {
    from: Id,
    to: Id,
    net: Arc<Net>,
}

impl RaftNetworkFactory<KeeperRaft> for Factory {
    type Network = Link;
    async fn new_client(&mut self, target: Id, _: &BasicNode) -> Link {
        Link { from: self.me, to: target, net: self.net.clone() }
    }
}

fn lost<E: std::error::Error>(what: &str) -> RPCError<Id, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(what.to_string())))
}

impl Link {
    /// Delivers a request and its reply, each subject to the network's faults.
    async fn deliver<T, E, F, Fut>(&self, call: F) -> Result<T, RPCError<Id, BasicNode, E>>
    where
        E: std::error::Error,
        F: FnOnce(Raft<KeeperRaft>) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        // The simulated network: its delays are simulated time, the model's latency, not a
        // wait for anything. A lost message is noticed only when the sender gives up on it, and a refused
        // connection takes a moment too: on the paused clock an error that took no time
        // would let openraft retry in a loop that time never leaves.
        let Some(delay) = self.net.fate(self.from, self.to) else {
            tokio::time::sleep(RPC_TIMEOUT).await;
            return Err(lost("dropped"));
        };
        tokio::time::sleep(delay).await;
        // A plain network error, not `Unreachable`: see the module's doc.
        let Some(target) = self.net.node(self.to) else {
            tokio::time::sleep(REFUSED_AFTER).await;
            return Err(lost("member down"));
        };
        let reply = call(target).await;
        let Some(delay) = self.net.fate(self.to, self.from) else {
            tokio::time::sleep(RPC_TIMEOUT).await;
            return Err(lost("reply dropped"));
        };
        tokio::time::sleep(delay).await;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl RaftNetwork<KeeperRaft> for Link {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KeeperRaft>,
        _: RPCOption,
    ) -> Result<AppendEntriesResponse<Id>, RPCError<Id, BasicNode, RaftError<Id>>> {
        self.deliver(|r| async move { r.append_entries(rpc).await }).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<KeeperRaft>,
        _: RPCOption,
    ) -> Result<InstallSnapshotResponse<Id>, RPCError<Id, BasicNode, RaftError<Id, InstallSnapshotError>>>
    {
        self.deliver(|r| async move { r.install_snapshot(rpc).await }).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Id>,
        _: RPCOption,
    ) -> Result<VoteResponse<Id>, RPCError<Id, BasicNode, RaftError<Id>>> {
        self.deliver(|r| async move { r.vote(rpc).await }).await
    }
}

/// What each member's state machine handed its server: the copy a server reads from, with
/// the incarnation of the member it belongs to (a crashed incarnation's late events are
/// ignored, as a dead process's would be).
#[derive(Default)]
struct Replicas {
    members: Mutex<BTreeMap<Id, Replica>>,
    /// Fires whenever a member applies something.
    changed: Notify,
}

/// One member's copy.
#[derive(Default)]
struct Replica {
    /// Which life of the member it belongs to.
    incarnation: u64,
    state: KeeperState,
    /// The last log index applied.
    applied: u64,
}

impl Replicas {
    /// A sink for a new incarnation of member `id`.
    fn sink(self: &Arc<Self>, id: Id) -> Sink {
        let me = self.clone();
        let incarnation = {
            let mut all = me.members.lock().expect("lock");
            let slot = all.entry(id).or_default();
            slot.incarnation += 1;
            slot.incarnation
        };
        Arc::new(move |ev| {
            {
                let mut all = me.members.lock().expect("lock");
                let Some(r) = all.get_mut(&id).filter(|r| r.incarnation == incarnation) else { return };
                match ev {
                    SmEvent::Committed(batch) => {
                        for (index, txns) in batch {
                            txns.iter().for_each(|txn| {
                                r.state.apply(txn);
                            });
                            r.applied = index;
                        }
                    }
                    SmEvent::Installed { state, index } => {
                        r.state = *state;
                        r.applied = index;
                    }
                }
            }
            me.changed.notify_waiters();
        })
    }

    /// Which incarnation of member `id` is live, and the last index it applied.
    fn applied(&self, id: Id) -> (u64, u64) {
        self.members.lock().expect("lock").get(&id).map_or((0, 0), |r| (r.incarnation, r.applied))
    }

    /// Member `id`'s copy of `path`: its data and version, or `None`.
    fn read(&self, id: Id, path: &str) -> linearizability::NodeState {
        let all = self.members.lock().expect("lock");
        let r = all.get(&id)?;
        r.state.tree.get(path).ok().map(|(data, stat)| (data.to_vec(), stat.version))
    }
}

/// What a run did, in order: compared between two runs of one seed.
#[derive(Default)]
struct Trace(Mutex<Vec<String>>);

impl Trace {
    fn push(&self, line: String) {
        self.0.lock().expect("lock").push(line);
    }
}

/// How long a client waits for a write's commit or a read's leadership check.
const CLIENT_WAIT: Duration = Duration::from_millis(800);
/// The keys clients read and write; each starts as `0` at version 0.
const KEYS: [&str; 3] = ["/k0", "/k1", "/k2"];
const CLIENTS: usize = 4;

struct Sim {
    seed: u64,
    net: Arc<Net>,
    dirs: BTreeMap<Id, PathBuf>,
    replicas: Arc<Replicas>,
    /// Each member's config: its election timeout is drawn from the seed.
    configs: BTreeMap<Id, Arc<openraft::Config>>,
    members: BTreeMap<Id, BasicNode>,
    /// term → the members that said they led it.
    leaders: Arc<Mutex<BTreeMap<u64, BTreeSet<Id>>>>,
    log_stopped: BTreeMap<Id, tokio::sync::watch::Receiver<bool>>,
    trace: Arc<Trace>,
}

impl Sim {
    async fn start_member(&mut self, id: Id) {
        let dir = &self.dirs[&id];
        // A crashed member's log is closed before its files are reopened.
        if let Some(stopped) = self.log_stopped.get_mut(&id) {
            let done = tokio::time::timeout(Duration::from_secs(10), stopped.wait_for(|s| *s)).await;
            assert!(matches!(done, Ok(Ok(_))), "seed {}: member {id}'s log was not closed", self.seed);
        }
        let log = LogStore::open_with(dir, Io::Simulated)
            .unwrap_or_else(|e| panic!("seed {}: reopen {id}: {e}", self.seed));
        self.log_stopped.insert(id, log.stopped());
        let (sm, state, applied) = StateMachine::open(dir, id, self.replicas.sink(id), 2)
            .unwrap_or_else(|e| panic!("seed {}: state machine {id}: {e}", self.seed));
        let sm = sm.with_io(Io::Simulated);
        if let Some(slot) = self.replicas.members.lock().expect("lock").get_mut(&id) {
            (slot.state, slot.applied) = (state, applied);
        }
        let factory = Factory { me: id, net: self.net.clone() };
        let raft = Raft::new(id, self.configs[&id].clone(), factory, log, sm).await.expect("raft");
        if !raft.is_initialized().await.unwrap_or(true) {
            let _ = raft.initialize(self.members.clone()).await;
        }
        let (leaders, trace, mut metrics) = (self.leaders.clone(), self.trace.clone(), raft.metrics());
        let net = self.net.clone();
        tokio::spawn(async move {
            loop {
                {
                    let m = metrics.borrow_and_update();
                    if m.state == ServerState::Leader {
                        let new = leaders.lock().expect("lock").entry(m.current_term).or_default().insert(id);
                        if new {
                            trace.push(format!("{:?} member {id} leads term {}", now(), m.current_term));
                        }
                    }
                }
                net.changed.notify_waiters();
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
        self.trace.push(format!("{:?} member {id} starts", now()));
        self.net.nodes.lock().expect("lock").insert(id, raft);
    }

    async fn crash(&mut self, id: Id) {
        let raft = self.net.nodes.lock().expect("lock").remove(&id);
        if let Some(raft) = raft {
            self.trace.push(format!("{:?} member {id} crashes", now()));
            let _ = raft.shutdown().await;
        }
    }

    /// Proposes through whoever leads now; `Some(result)` if the write was acknowledged.
    async fn write(&self, session: u64, op: Op) -> Option<Result<OpResult, KeeperError>> {
        write_at(&self.net, session, op).await.ok().map(|(_, r)| r)
    }
}

thread_local!(static START: std::cell::Cell<Option<tokio::time::Instant>> = const { std::cell::Cell::new(None) });

/// Virtual time since this run began.
fn now() -> Duration {
    START.with(|s| s.get().map(|start| start.elapsed()).unwrap_or_default())
}

/// Why a write has no answer.
enum NoAnswer {
    /// Nobody leads, or the one asked does not: it was never proposed.
    NotProposed,
    /// It may or may not have been committed (timeout, leader crashed, lost leadership).
    Unknown,
}

/// What a proposal answered, with the log index it committed at.
type Answer = (u64, Result<OpResult, KeeperError>);

/// Proposes `op` through whoever leads now.
async fn write_at(net: &Net, session: u64, op: Op) -> Result<Answer, NoAnswer> {
    let (_, _, leader) = net.leader().ok_or(NoAnswer::NotProposed)?;
    propose(&leader, session, op).await
}

/// Proposes `op` until it is answered, waiting after each failure for another leader;
/// `None` if none answered within `within`.
async fn write_until_answered(net: &Net, session: u64, op: Op, within: Duration) -> Option<Answer> {
    let deadline = tokio::time::Instant::now() + within;
    let mut failed = None;
    while tokio::time::Instant::now() < deadline {
        // With nobody leading, this waits CLIENT_WAIT of simulated time.
        let Some((id, term, leader)) = net.leader_other_than(failed, CLIENT_WAIT).await else { continue };
        match propose(&leader, session, op.clone()).await {
            Ok(answer) => return Some(answer),
            Err(_) => failed = Some((id, term)),
        }
    }
    None
}

/// Proposes `op` through `leader`.
async fn propose(leader: &Raft<KeeperRaft>, session: u64, op: Op) -> Result<Answer, NoAnswer> {
    let p = Batch(vec![Proposal { session, time_ms: 0, op, trace: None }]);
    match tokio::time::timeout(CLIENT_WAIT, leader.client_write(p)).await {
        Ok(Ok(r)) => r.data.0.into_iter().next().map(|res| (r.log_id.index, res)).ok_or(NoAnswer::Unknown),
        Ok(Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(_)))) => {
            Err(NoAnswer::NotProposed)
        }
        _ => Err(NoAnswer::Unknown),
    }
}

/// One client: reads (after the leader confirms it leads and has applied what it
/// committed), writes and compare-and-sets [`KEYS`] until `stop`, recording its history.
async fn client(
    no: usize,
    seed: u64,
    net: Arc<Net>,
    replicas: Arc<Replicas>,
    history: Arc<Mutex<History>>,
    clock: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    // Invocations and completions are stamped by a logical clock: the single thread's real
    // order, which the paused virtual clock (many events in one millisecond) cannot give.
    let tick = || clock.fetch_add(1, Ordering::Relaxed);
    let mut rng = StdRng::seed_from_u64(seed ^ (no as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut versions: BTreeMap<&str, i32> = BTreeMap::new();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = KEYS[rng.gen_range(0..KEYS.len())];
        let value = format!("{no}-{n}").into_bytes();
        match rng.gen_range(0..3) {
            0 => {
                // With nobody leading, this waits CLIENT_WAIT of simulated time.
                let Some((id, _, leader)) = net.leader_other_than(None, CLIENT_WAIT).await else { continue };
                let op = linearizability::Op::Read { key: key.into() };
                let h = history.lock().expect("lock").invoke(no, op, tick());
                let state =
                    tokio::time::timeout(CLIENT_WAIT, linearizable_read(&leader, id, &replicas, key)).await;
                let outcome = match state {
                    Ok(Some(state)) => {
                        if let Some((_, v)) = &state {
                            versions.insert(key, *v);
                        }
                        Outcome::Ok(Output::ReadOk(state))
                    }
                    _ => Outcome::Unknown,
                };
                history.lock().expect("lock").complete(h, tick(), outcome);
            }
            kind => {
                let (op, version) = match (kind, versions.get(key)) {
                    (1, Some(v)) => {
                        let op = linearizability::Op::Cas {
                            key: key.into(),
                            expected_version: *v,
                            value: value.clone(),
                        };
                        (op, *v)
                    }
                    _ => (linearizability::Op::Write { key: key.into(), value: value.clone() }, -1),
                };
                let Some((id, term, leader)) = net.leader_other_than(None, CLIENT_WAIT).await else {
                    continue;
                };
                let h = history.lock().expect("lock").invoke(no, op, tick());
                let set = Op::SetData { path: key.into(), data: value, version };
                let outcome = match propose(&leader, 0, set).await {
                    Ok((_, Ok(OpResult::DataSet { stat }))) => {
                        versions.insert(key, stat.version);
                        Outcome::Ok(Output::WriteOk { version: stat.version })
                    }
                    Ok((_, Err(KeeperError::BadVersion { .. }))) => Outcome::Ok(Output::BadVersion),
                    Ok((_, Err(KeeperError::NoNode { .. }))) => Outcome::Ok(Output::NoNode),
                    Ok((_, other)) => panic!("seed {seed}: client {no}: unexpected answer {other:?}"),
                    Err(NoAnswer::NotProposed) => {
                        // Refused by a member that no longer leads: try again once another
                        // does (or CLIENT_WAIT has passed).
                        history.lock().expect("lock").complete(h, tick(), Outcome::Unknown);
                        net.leader_other_than(Some((id, term)), CLIENT_WAIT).await;
                        continue;
                    }
                    Err(NoAnswer::Unknown) => Outcome::Unknown,
                };
                history.lock().expect("lock").complete(h, tick(), outcome);
            }
        }
        // The client's think time (simulated: the workload's pace, not a wait for anything).
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..10))).await;
    }
}

/// Reads `key` at member `id` once it has confirmed that it leads and applied everything
/// committed before: openraft's `ensure_linearizable`, except that the wait for the state
/// machine is on the replicas' own notification instead of openraft's metrics channel (whose
/// waiters tokio wakes in a random order). `None` if `id` stopped leading or crashed
/// meanwhile.
async fn linearizable_read(
    leader: &Raft<KeeperRaft>,
    id: Id,
    replicas: &Replicas,
    key: &str,
) -> Option<linearizability::NodeState> {
    let (incarnation, _) = replicas.applied(id);
    let (read, _) = leader.get_read_log_id().await.ok()?;
    let wanted = read.map_or(0, |l| l.index);
    let caught_up = until(&replicas.changed, CLIENT_WAIT, || {
        let (now, applied) = replicas.applied(id);
        (now != incarnation || applied >= wanted).then_some(now == incarnation)
    })
    .await;
    caught_up?.then(|| replicas.read(id, key))
}

/// Runs seed `seed` on a fresh single-threaded runtime with paused time; returns its trace.
fn run(seed: u64) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(simulate(seed))
}

async fn simulate(seed: u64) -> Vec<String> {
    START.with(|s| s.set(Some(tokio::time::Instant::now())));
    let mut rng = StdRng::seed_from_u64(seed);
    let n: Id = if rng.gen_bool(0.5) { 3 } else { 5 };
    let root = tempfile::tempdir().expect("tempdir");
    let dirs: BTreeMap<Id, PathBuf> = (1..=n).map(|id| (id, root.path().join(format!("m{id}")))).collect();
    let faults = Faults {
        rng: StdRng::seed_from_u64(seed.wrapping_mul(31)),
        group: (1..=n).map(|id| (id, 0)).collect(),
        drop_per_mille: 0,
        max_delay_ms: 2,
    };
    // Election timeouts fixed per member by the seed (a range of one value, so openraft's own
    // draw has nothing to choose), 150..600 ms and at least 50 ms apart: openraft checks them
    // on a tick every 1.5 heartbeats (45 ms), and members started together tick together,
    // so timeouts closer than a tick would expire on the same tick every round, split the
    // vote every time and never elect anyone (seed 44 did, with 10 ms apart).
    let mut timeouts: Vec<u64> = (0..10).map(|i| 150 + i * 50).collect();
    let configs = (1..=n)
        .map(|id| {
            let timeout = timeouts.swap_remove(rng.gen_range(0..timeouts.len()));
            let config = openraft::Config {
                heartbeat_interval: 30,
                election_timeout_min: timeout,
                election_timeout_max: timeout + 1,
                // Snapshots and purges often, so lagging members catch up by snapshot too.
                snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(40),
                max_in_snapshot_log_to_keep: 5,
                purge_batch_size: 1,
                ..Default::default()
            };
            (id, Arc::new(config.validate().expect("config")))
        })
        .collect();
    let trace = Arc::new(Trace::default());
    let mut sim = Sim {
        seed,
        net: Arc::new(Net { nodes: Mutex::default(), faults: Mutex::new(faults), changed: Notify::new() }),
        dirs,
        replicas: Arc::default(),
        configs,
        members: (1..=n).map(|id| (id, BasicNode { addr: format!("m{id}") })).collect(),
        leaders: Arc::default(),
        log_stopped: BTreeMap::new(),
        trace: trace.clone(),
    };
    for id in 1..=n {
        sim.start_member(id).await;
    }
    // The clients' keys, created before any fault.
    for key in KEYS {
        let op = Op::Create { path: key.into(), data: b"0".to_vec(), mode: CreateMode::Persistent };
        let created = write_until_answered(&sim.net, 0, op, Duration::from_secs(30)).await;
        // NodeExists: an earlier attempt that timed out did commit.
        let done = matches!(created, Some((_, Ok(_) | Err(KeeperError::NodeExists { .. }))));
        assert!(done, "seed {seed}: creating {key}: {created:?}");
    }
    let history = Arc::new(Mutex::new(History::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clock = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|no| {
            let (net, replicas) = (sim.net.clone(), sim.replicas.clone());
            let (history, clock, stop) = (history.clone(), clock.clone(), stop.clone());
            tokio::spawn(client(no, seed, net, replicas, history, clock, stop))
        })
        .collect();

    let mut acked_creates = BTreeSet::new();
    let mut open_sessions: Vec<u64> = Vec::new();
    let mut closed_sessions = BTreeSet::new();
    let mut down: BTreeMap<Id, u32> = BTreeMap::new();
    let mut next = 1u64;
    for step in 0..60u32 {
        match rng.gen_range(0..100) {
            0..=44 => {
                // A few writes: a plain create, or a session's life.
                for _ in 0..rng.gen_range(1..6) {
                    next += 1;
                    match rng.gen_range(0..4) {
                        0 => {
                            let session = next;
                            let op = Op::CreateSession { timeout_ms: 10_000, password: [1; 16] };
                            if let Some(Ok(_)) = sim.write(session, op).await {
                                open_sessions.push(session);
                                let path = format!("/e{session}");
                                let op = Op::Create { path, data: vec![], mode: CreateMode::Ephemeral };
                                let _ = sim.write(session, op).await;
                            }
                        }
                        1 if !open_sessions.is_empty() => {
                            let session = open_sessions.swap_remove(rng.gen_range(0..open_sessions.len()));
                            if let Some(Ok(_)) = sim.write(session, Op::CloseSession).await {
                                closed_sessions.insert(session);
                            }
                        }
                        _ => {
                            let path = format!("/w{next}");
                            let op =
                                Op::Create { path: path.clone(), data: vec![], mode: CreateMode::Persistent };
                            if let Some(Ok(_)) = sim.write(0, op).await {
                                trace.push(format!("{:?} create {path} acknowledged", now()));
                                acked_creates.insert(path);
                            }
                        }
                    }
                }
            }
            45..=59 => {
                // Partition: every member into one of two groups.
                let mut f = sim.net.faults.lock().expect("lock");
                for id in 1..=n {
                    let g = rng.gen_range(0..2);
                    f.group.insert(id, g);
                }
                trace.push(format!("{:?} partition {:?}", now(), f.group));
            }
            60..=74 => {
                let mut f = sim.net.faults.lock().expect("lock");
                f.group.values_mut().for_each(|g| *g = 0);
                f.drop_per_mille = rng.gen_range(0..150);
                f.max_delay_ms = rng.gen_range(0..40);
                trace.push(format!(
                    "{:?} heal; drop {}‰, delay ≤{} ms",
                    now(),
                    f.drop_per_mille,
                    f.max_delay_ms
                ));
            }
            75..=84 => {
                let id = rng.gen_range(1..=n);
                if let std::collections::btree_map::Entry::Vacant(slot) = down.entry(id) {
                    sim.crash(id).await;
                    slot.insert(step + rng.gen_range(2..10));
                }
            }
            _ => {}
        }
        let due: Vec<Id> = down.iter().filter(|(_, at)| **at <= step).map(|(id, _)| *id).collect();
        for id in due {
            down.remove(&id);
            sim.start_member(id).await;
        }
        // Simulated time between two steps of the fault schedule (the clients and the
        // ensemble run meanwhile).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Heal everything, stop the clients and let the ensemble converge.
    {
        let mut f = sim.net.faults.lock().expect("lock");
        f.group.values_mut().for_each(|g| *g = 0);
        f.drop_per_mille = 0;
        f.max_delay_ms = 1;
    }
    for id in std::mem::take(&mut down).into_keys() {
        sim.start_member(id).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    // A last write through a leader: once every member has applied it, all are level.
    // (A member cut off while it led may still say it leads until it hears the new term:
    // the committed index of this write, not any "leader's" applied index, is the target.)
    let end = Op::Create { path: "/end".into(), data: vec![], mode: CreateMode::Persistent };
    let (marker, target) = match write_until_answered(&sim.net, 0, end, Duration::from_secs(30)).await {
        // NodeExists: an earlier attempt that timed out did commit; this one's index is later.
        Some((index, Ok(_) | Err(KeeperError::NodeExists { .. }))) => ("/end", index),
        other => panic!("seed {seed}: no leader took a write after healing: {other:?}"),
    };
    trace.push(format!("{:?} /end committed at {target}", now()));
    for id in 1..=n {
        let node = sim.net.node(id).expect("up");
        let caught_up =
            node.wait(Some(Duration::from_secs(30))).applied_index_at_least(Some(target), "converge").await;
        assert!(caught_up.is_ok(), "seed {seed}: member {id} did not catch up to {target}");
    }

    // At most one leader per term.
    for (term, ids) in sim.leaders.lock().expect("lock").iter() {
        assert!(ids.len() <= 1, "seed {seed}: term {term} had leaders {ids:?}");
    }
    check_replicas(&sim, n, marker, &acked_creates, &closed_sessions);
    // The clients' history.
    let events = std::mem::take(&mut *history.lock().expect("lock")).into_events();
    let initial: HashMap<String, linearizability::NodeState> =
        KEYS.iter().map(|k| (k.to_string(), Some((b"0".to_vec(), 0)))).collect();
    if let Err(e) = linearizability::check(&events, &initial) {
        panic!("seed {seed}: the clients' history is not linearizable: {e}");
    }
    let answered = events.iter().filter(|e| matches!(e.outcome, Outcome::Ok(_))).count();
    for e in &events {
        trace.push(e.to_string());
    }
    eprintln!(
        "seed {seed}: {n} members, {} acknowledged creates, {} sessions closed, {} terms led, \
         {answered} of {} client operations answered, {:?} simulated",
        acked_creates.len(),
        closed_sessions.len(),
        sim.leaders.lock().expect("lock").len(),
        events.len(),
        now(),
    );
    for id in 1..=n {
        sim.crash(id).await;
    }
    let lines = std::mem::take(&mut *trace.0.lock().expect("lock"));
    lines
}

fn check_replicas(
    sim: &Sim,
    n: Id,
    marker: &str,
    acked_creates: &BTreeSet<String>,
    closed_sessions: &BTreeSet<u64>,
) {
    let seed = sim.seed;
    let replicas = sim.replicas.members.lock().expect("lock");
    let first = replicas.get(&1).expect("member 1").state.clone();
    for id in 1..=n {
        let state = &replicas.get(&id).unwrap_or_else(|| panic!("seed {seed}: no state for {id}")).state;
        let metrics = sim.net.node(id).map(|r| {
            let m = r.metrics().borrow().clone();
            format!(
                "applied {:?} snapshot {:?} purged {:?} state {:?}",
                m.last_applied, m.snapshot, m.purged, m.state
            )
        });
        assert!(
            state.tree.exists(marker).ok().flatten().is_some(),
            "seed {seed}: member {id} lacks {marker}: its copy is at zxid {:x} with {} nodes; raft: {metrics:?}",
            state.tree.last_zxid(),
            state.tree.node_count()
        );
        // No acknowledged write lost.
        for path in acked_creates {
            assert!(
                state.tree.exists(path).ok().flatten().is_some(),
                "seed {seed}: member {id} lost the acknowledged create of {path}"
            );
        }
        // Ephemerals die with their session.
        for session in closed_sessions {
            assert!(
                !state.sessions.contains_key(session),
                "seed {seed}: closed session {session} lives on {id}"
            );
            assert!(
                state.tree.ephemerals(*session).is_empty(),
                "seed {seed}: closed session {session} still owns nodes on member {id}"
            );
        }
        let (children, _) = state.tree.children("/").expect("root");
        for child in children {
            let stat = state.tree.exists(&format!("/{child}")).ok().flatten().expect("listed child exists");
            if stat.ephemeral_owner != 0 {
                assert!(
                    state.sessions.contains_key(&(stat.ephemeral_owner as u64)),
                    "seed {seed}: /{child} on member {id} is owned by a dead session"
                );
            }
        }
        // Every member reached the same state.
        assert!(*state == first, "seed {seed}: member {id}'s state differs from member 1's");
    }
}

/// Seeds that once found a bug, run before the counted ones (44: members whose election
/// timeouts expired on the same tick split every vote; 313: a create retried after a timeout
/// that had committed).
const FIXED_SEEDS: [u64; 2] = [44, 313];

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("SIM_SOAK").ok().and_then(|s| s.parse().ok()).unwrap_or(20u64);
    FIXED_SEEDS.into_iter().chain(1..=count).collect()
}

#[test]
fn seeded_faults_keep_one_leader_per_term_every_acknowledged_write_and_a_linearizable_history() {
    for seed in seeds() {
        eprintln!("simulating seed {seed} (rerun with SIM_SEED={seed})");
        run(seed);
    }
}

#[test]
fn a_seed_replays_exactly() {
    let seeds = match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => vec![3, 11],
    };
    for seed in seeds {
        let (first, second) = (run(seed), run(seed));
        assert!(first.len() > 10, "seed {seed}: the trace is too short to mean anything: {first:?}");
        if let Some(i) = (0..first.len().max(second.len())).find(|&i| first.get(i) != second.get(i)) {
            panic!(
                "seed {seed} ran differently the second time, from line {i}:\nfirst:  {:?}\nsecond: {:?}",
                first.get(i),
                second.get(i)
            );
        }
    }
}
