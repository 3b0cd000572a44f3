//! `ReplicaManager`: the actor that turns the controller's [`ClusterUpdate`]s into this
//! broker's roles. For every partition the update gives this broker a replica of, it opens
//! the log and starts a [`Partition`] actor, then tells it its role (leader, or follower of
//! a given leader at a given epoch); a follower is handed to the
//! [`FollowerFetcher`] for its leader (`num.replica.fetchers` per leader, picked by
//! hashing the partition). Partitions no longer replicated here are stopped (their data
//! deleted when the topic is being deleted). It then publishes the new [`Routing`] that
//! the service reads to send each request to its partition's actor.
//!
//! Which updates to take and what role each gives is decided by
//! `sluice_broker_core::roles`; this actor carries the plan out.
//!
//! Runs on the log thread (its own arbiter), with the partition actors it starts, so that
//! appends and reads never compete with the network for a thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use actix::prelude::*;
use sluice_broker_config::BrokerConfig;
use sluice_broker_core::metadata::ClusterUpdate;
use sluice_broker_core::roles::{self, Role};
use sluice_broker_core::throttle;
use sluice_broker_core::BrokerError;
use sluice_log::{Log, LogCleaner, TopicPartition};
use sluice_proto::interbroker::InterBrokerProtocol;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::fetcher::{FetcherConfig, Follow, FollowerFetcher, SetThrottle, Unfollow};
use crate::broker::log_manager::{
    read_high_watermarks, DirOffline, Forget, LogManager, Register, Unregister,
};
use crate::broker::partition::{Assign, Offsets, Partition, PartitionContext, Reconfigure, Stop};
use crate::clock::now_ms;

/// A partition replicated on this broker.
#[derive(Debug, Clone)]
pub struct Hosted {
    /// Its actor.
    pub addr: Addr<Partition>,
    /// Its offsets (and whether it leads), updated after every change.
    pub offsets: watch::Receiver<Offsets>,
}

/// What the service routes by: the newest cluster picture and the partitions held here.
#[derive(Debug, Default)]
pub struct Routing {
    /// The newest update from the controller (`None` before the first).
    pub update: Option<Arc<ClusterUpdate>>,
    /// Partitions replicated on this broker, led or followed.
    pub partitions: HashMap<TopicPartition, Hosted>,
    /// Partitions whose replica here is on a failed log directory (that directory).
    pub offline: HashMap<TopicPartition, PathBuf>,
}

/// The routing table, replaced as a whole on every update.
pub type SharedRouting = Arc<RwLock<Arc<Routing>>>;

/// Reads the current routing table.
pub fn current(routing: &SharedRouting) -> Arc<Routing> {
    routing.read().map_or_else(|p| p.into_inner().clone(), |r| r.clone())
}

/// A fetcher: the leader it fetches from and its index among that leader's fetchers.
type FetcherKey = (i32, u32);

/// What the replica manager needs to start fetchers and partitions.
#[derive(Clone)]
pub struct ReplicationContext {
    /// Where fetchers run (the network thread).
    pub net_arbiter: ArbiterHandle,
    /// The broker-to-broker client.
    pub net: Arc<sluice_net::Client<InterBrokerProtocol>>,
    /// Every partition actor's settings.
    pub partition: PartitionContext,
}

impl std::fmt::Debug for ReplicationContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationContext").finish_non_exhaustive()
    }
}

/// The replica manager.
#[derive(Debug)]
pub struct ReplicaManager {
    broker_id: i32,
    config: Arc<BrokerConfig>,
    routing: SharedRouting,
    log_manager: Addr<LogManager>,
    cleaner: Arc<LogCleaner>,
    replication: ReplicationContext,
    fetcher_config: Arc<FetcherConfig>,
    current: Option<Arc<ClusterUpdate>>,
    hosted: HashMap<TopicPartition, Hosted>,
    roles: BTreeMap<roles::Partition, Role>,
    fetchers: HashMap<FetcherKey, Addr<FollowerFetcher>>,
    following: HashMap<TopicPartition, FetcherKey>,
    /// Directories of the logs registered with the cleaner (compacted topics).
    cleaned: HashMap<TopicPartition, PathBuf>,
    /// High watermarks checkpointed before this start (where a partition opens from).
    high_watermarks: BTreeMap<TopicPartition, i64>,
    /// The `log.dirs` entry each hosted partition's log is in.
    roots: HashMap<TopicPartition, PathBuf>,
    /// `log.dirs` entries that failed: no log opens there until the broker restarts.
    offline_dirs: BTreeSet<PathBuf>,
    /// Partitions whose replica here is on a failed directory.
    offline: HashMap<TopicPartition, PathBuf>,
}

impl ReplicaManager {
    /// A replica manager publishing into `routing`; logs of compacted topics are handed to
    /// `cleaner` while held here.
    pub fn new(
        config: Arc<BrokerConfig>,
        routing: SharedRouting,
        log_manager: Addr<LogManager>,
        cleaner: Arc<LogCleaner>,
        replication: ReplicationContext,
    ) -> Self {
        let fetcher_config = Arc::new(FetcherConfig {
            broker_id: config.broker_id,
            max_wait: config.replica_fetch_wait_max,
            min_bytes: config.replica_fetch_min_bytes,
            partition_max_bytes: config.replica_fetch_max_bytes,
            max_bytes: config.replica_fetch_response_max_bytes,
            backoff: config.replica_fetch_backoff,
        });
        let high_watermarks = config.log_dirs.iter().flat_map(|d| read_high_watermarks(d)).collect();
        ReplicaManager {
            broker_id: config.broker_id,
            config,
            routing,
            log_manager,
            cleaner,
            replication,
            fetcher_config,
            current: None,
            hosted: HashMap::new(),
            roles: BTreeMap::new(),
            fetchers: HashMap::new(),
            following: HashMap::new(),
            cleaned: HashMap::new(),
            high_watermarks,
            roots: HashMap::new(),
            offline_dirs: BTreeSet::new(),
            offline: HashMap::new(),
        }
    }

    /// The directory for a partition: where it already is, else the working `log.dirs`
    /// entry with the fewest partitions (Kafka's choice).
    fn dir_for(&self, tp: &TopicPartition) -> (PathBuf, PathBuf) {
        let name = format!("{}-{}", tp.topic, tp.partition);
        let working = || self.config.log_dirs.iter().filter(|r| !self.offline_dirs.contains(*r));
        for root in working() {
            if root.join(&name).is_dir() {
                return (root.clone(), root.join(&name));
            }
        }
        let count =
            |root: &Path| std::fs::read_dir(root).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0);
        let root = working().min_by_key(|r| count(r)).cloned().unwrap_or_else(|| PathBuf::from("."));
        let dir = root.join(&name);
        (root, dir)
    }

    /// Hands the new log settings to every partition held here whose topic's config changed
    /// since the last update (an AlterConfigs).
    fn reconfigure(&self, update: &ClusterUpdate) {
        let Some(previous) = self.current.as_deref() else { return };
        for name in update.topics.keys() {
            let (Some(now), Some(before)) = (update.topic_configs(name), previous.topic_configs(name)) else {
                continue;
            };
            if now == before {
                continue;
            }
            let config = match self.config.topic_log_config(&now) {
                Ok(c) => c,
                Err(e) => {
                    warn!(topic = %name, error = %e, "the topic's new config is invalid; its logs keep theirs");
                    continue;
                }
            };
            info!(topic = %name, "the topic's config changed; its logs here take it");
            for hosted in self.hosted.iter().filter(|(tp, _)| &tp.topic == name).map(|(_, h)| h) {
                hosted.addr.do_send(Reconfigure(config.clone()));
            }
        }
    }

    /// Tells every fetcher the follower replication throttle: the cluster-wide rate and the
    /// partitions whose replica here their topic's `follower.replication.throttled.replicas`
    /// names.
    fn throttle_fetchers(&self, update: &ClusterUpdate) {
        let rate = throttle::follower_rate(&update.broker_defaults);
        let mut partitions = std::collections::HashSet::new();
        if rate.is_some() {
            for tp in self.following.keys() {
                let Some(configs) = update.topic_configs(&tp.topic) else { continue };
                let Some(value) = configs.get(throttle::FOLLOWER_REPLICAS) else { continue };
                match throttle::ThrottledReplicas::parse(throttle::FOLLOWER_REPLICAS, value) {
                    Ok(t) if t.includes(tp.partition, self.broker_id) => {
                        partitions.insert(tp.clone());
                    }
                    Ok(_) => {}
                    Err(e) => warn!(topic = %tp.topic, error = %e, "ignoring an invalid throttle"),
                }
            }
        }
        for fetcher in self.fetchers.values() {
            fetcher.do_send(SetThrottle { rate, partitions: partitions.clone() });
        }
    }

    fn open(&mut self, tp: &TopicPartition, update: &ClusterUpdate, role: Role) -> Option<Hosted> {
        let overrides = update.topic_configs(&tp.topic).map(|c| c.into_owned()).unwrap_or_default();
        let config = match self.config.topic_log_config(&overrides) {
            Ok(c) => c,
            Err(e) => {
                warn!(topic = %tp.topic, error = %e, "invalid topic config; using the broker's defaults");
                self.config.log.clone()
            }
        };
        let (root, dir) = self.dir_for(tp);
        let log = match Log::open(&dir, config, now_ms()) {
            Ok(log) => log,
            Err(e) => {
                warn!(topic = %tp.topic, partition = tp.partition, dir = %dir.display(), error = %e,
                    "cannot open the partition's log; it stays offline on this broker");
                return None;
            }
        };
        let report = log.recovery_report();
        if let Some(cut) = &report.truncation {
            warn!(topic = %tp.topic, partition = tp.partition, segment = cut.segment, bytes = cut.bytes,
                reason = %cut.reason, "cut the log's unfinished tail");
        }
        let compact = log.config().cleanup_policy.compact;
        let log = Arc::new(Mutex::new(log));
        if compact {
            self.cleaner.register(log.clone());
            self.cleaned.insert(tp.clone(), dir.clone());
        }
        let hw = self.high_watermarks.get(tp).copied().unwrap_or(0);
        let (actor, offsets) = Partition::new(log, &self.replication.partition, hw, role);
        let addr = actor.start();
        self.roots.insert(tp.clone(), root.clone());
        self.log_manager.do_send(Register { tp: tp.clone(), addr: addr.clone(), log_dir: root });
        Some(Hosted { addr, offsets })
    }

    /// Hands `tp` to the fetcher for `leader` (stopping any other fetcher's copy).
    fn follow(
        &mut self,
        tp: &TopicPartition,
        addr: Addr<Partition>,
        leader: i32,
        epoch: i32,
        update: &ClusterUpdate,
    ) {
        let Some(endpoint) = update.broker(leader) else {
            warn!(topic = %tp.topic, partition = tp.partition, leader, "the leader is not among the live brokers");
            self.unfollow(tp);
            return;
        };
        let index = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            tp.hash(&mut h);
            (h.finish() % u64::from(self.config.num_replica_fetchers.max(1))) as u32
        };
        let key = (leader, index);
        if self.following.get(tp).is_some_and(|k| *k != key) {
            self.unfollow(tp);
        }
        let fetcher = self.fetchers.entry(key).or_insert_with(|| {
            let (config, net, addr) =
                (self.fetcher_config.clone(), self.replication.net.clone(), endpoint.addr());
            FollowerFetcher::start_in_arbiter(&self.replication.net_arbiter, move |_| {
                FollowerFetcher::new(config, leader, addr, net)
            })
        });
        fetcher.do_send(Follow { tp: tp.clone(), addr, leader_epoch: epoch, leader_addr: endpoint.addr() });
        self.following.insert(tp.clone(), key);
    }

    fn unfollow(&mut self, tp: &TopicPartition) {
        if let Some(key) = self.following.remove(tp) {
            if let Some(fetcher) = self.fetchers.get(&key) {
                fetcher.do_send(Unfollow(tp.clone()));
            }
        }
    }

    /// Stops `tp`'s actor (deleting its data with `delete`; `failed`: its directory failed,
    /// so the log is closed without a flush).
    fn stop_partition(&mut self, tp: &TopicPartition, delete: bool, failed: bool) {
        self.unfollow(tp);
        self.roles.remove(&(tp.topic.clone(), tp.partition));
        self.roots.remove(tp);
        let Some(leader) = self.hosted.remove(tp) else { return };
        if let Some(dir) = self.cleaned.remove(tp) {
            self.cleaner.unregister(&dir);
        }
        let log_manager = self.log_manager.clone();
        let tp = tp.clone();
        actix::spawn(async move {
            let marks = leader.addr.send(Stop { delete, failed }).await.ok().flatten();
            log_manager.do_send(Unregister { tp, marks });
        });
    }

    /// Deletes the data of a deleted topic's partitions that no actor holds.
    fn delete_stray(&self, topics: &BTreeSet<String>) {
        for root in &self.config.log_dirs {
            let Ok(entries) = std::fs::read_dir(root) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name();
                let Some(tp) = name.to_str().and_then(TopicPartition::from_dir_name) else { continue };
                if topics.contains(&tp.topic) && !self.hosted.contains_key(&tp) {
                    info!(dir = %entry.path().display(), "deleting a deleted topic's partition");
                    if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                        warn!(dir = %entry.path().display(), error = %e, "could not delete");
                    }
                    self.log_manager.do_send(Forget(tp));
                }
            }
        }
    }

    fn publish(&self) {
        let routing = Arc::new(Routing {
            update: self.current.clone(),
            partitions: self.hosted.clone(),
            offline: self.offline.clone(),
        });
        match self.routing.write() {
            Ok(mut r) => *r = routing,
            Err(p) => *p.into_inner() = routing,
        }
    }
}

impl Actor for ReplicaManager {
    type Context = Context<Self>;
}

/// Apply the controller's picture of the cluster.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct Apply(pub ClusterUpdate);

impl Handler<Apply> for ReplicaManager {
    type Result = Result<(), BrokerError>;

    fn handle(&mut self, msg: Apply, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("ReplicaManager", "Apply");
        let mut update = msg.0;
        if !roles::accept(self.current.as_deref(), &update)? {
            return Ok(());
        }
        // This broker's own dynamic configs over the cluster-wide defaults, for everything
        // here that reads them (logs, throttles, the produce and fetch paths).
        update.take_own_configs(self.broker_id);
        let plan = roles::plan(&update, self.broker_id, &self.roles);
        for ((topic, partition), delete) in plan.stop {
            let tp = TopicPartition::new(topic, partition);
            self.offline.remove(&tp);
            self.stop_partition(&tp, delete, false);
        }
        if !plan.deleting.is_empty() {
            self.delete_stray(&plan.deleting);
        }
        for ((topic, partition), role) in plan.assign {
            let tp = TopicPartition::new(topic.clone(), partition);
            if self.offline.contains_key(&tp) {
                // Its directory failed: it stays closed here (the controller leads it elsewhere).
                continue;
            }
            let addr = match self.hosted.get(&tp) {
                Some(h) => {
                    // The role first: the fetcher's first question to the partition must
                    // find it.
                    h.addr.do_send(Assign(role.clone()));
                    h.addr.clone()
                }
                None => match self.open(&tp, &update, role.clone()) {
                    Some(h) => {
                        let addr = h.addr.clone();
                        self.hosted.insert(tp.clone(), h);
                        addr
                    }
                    None => continue,
                },
            };
            match &role {
                Role::Follower { leader: Some(leader), leader_epoch } => {
                    self.follow(&tp, addr, *leader, *leader_epoch, &update);
                }
                Role::Follower { leader: None, .. } | Role::Leader { .. } => self.unfollow(&tp),
            }
            self.roles.insert((topic, partition), role);
        }
        self.reconfigure(&update);
        self.throttle_fetchers(&update);
        self.current = Some(Arc::new(update));
        self.publish();
        Ok(())
    }
}

/// Stop every partition (broker shutdown): flush and close every log, record the recovery
/// points. Answers when all are closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopAll;

impl Handler<StopAll> for ReplicaManager {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopAll, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("ReplicaManager", "StopAll");
        let leaders: Vec<_> = self.hosted.drain().collect();
        self.roles.clear();
        for tp in self.following.keys().cloned().collect::<Vec<_>>() {
            self.unfollow(&tp);
        }
        for (_, dir) in self.cleaned.drain() {
            self.cleaner.unregister(&dir);
        }
        self.current = None;
        self.publish();
        let log_manager = self.log_manager.clone();
        Box::pin(
            async move {
                for (tp, leader) in leaders {
                    let marks = leader.addr.send(Stop { delete: false, failed: false }).await.ok().flatten();
                    let _ = log_manager.send(Unregister { tp, marks }).await;
                }
            }
            .into_actor(self),
        )
    }
}

/// What a log directory failure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirFailure {
    /// The directory is offline; every replica here on a failed directory is listed.
    Offline {
        /// The directory that failed.
        dir: PathBuf,
        /// Every replica on a failed directory (this one and earlier ones).
        replicas: BTreeSet<(String, i32)>,
        /// Whether this report took the directory offline (false: it already was).
        newly: bool,
    },
    /// It was the last working directory: the broker has nothing left to serve from.
    AllFailed {
        /// The directory that failed.
        dir: PathBuf,
    },
}

/// A partition's log files failed: take its `log.dirs` entry offline (Kafka's failed log
/// directory): every partition there is closed and stays closed, new partitions go to the
/// other directories, and the answer lists what is offline, for the broker to tell the
/// controller.
#[derive(Debug, Message)]
#[rtype(result = "DirFailure")]
pub struct DirFailed(pub TopicPartition);

impl Handler<DirFailed> for ReplicaManager {
    type Result = MessageResult<DirFailed>;

    fn handle(&mut self, DirFailed(tp): DirFailed, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("ReplicaManager", "DirFailed");
        let listed = |offline: &HashMap<TopicPartition, PathBuf>| -> BTreeSet<(String, i32)> {
            offline.keys().map(|tp| (tp.topic.clone(), tp.partition)).collect()
        };
        let Some(root) = self.roots.get(&tp).or_else(|| self.offline.get(&tp)).cloned() else {
            // Already stopped (deleted or moved away): nothing is held there any more.
            let dir = self.dir_for(&tp).0;
            return MessageResult(DirFailure::Offline { dir, replicas: listed(&self.offline), newly: false });
        };
        if self.offline_dirs.contains(&root) {
            return MessageResult(DirFailure::Offline {
                dir: root,
                replicas: listed(&self.offline),
                newly: false,
            });
        }
        if self.config.log_dirs.iter().all(|d| *d == root || self.offline_dirs.contains(d)) {
            return MessageResult(DirFailure::AllFailed { dir: root });
        }
        self.offline_dirs.insert(root.clone());
        self.log_manager.do_send(DirOffline(root.clone()));
        let on_it: Vec<TopicPartition> =
            self.roots.iter().filter(|(_, r)| **r == root).map(|(tp, _)| tp.clone()).collect();
        for tp in on_it {
            warn!(topic = %tp.topic, partition = tp.partition, dir = %root.display(),
                "the partition's log directory failed; its replica here goes offline");
            self.stop_partition(&tp, false, true);
            self.offline.insert(tp, root.clone());
        }
        self.publish();
        MessageResult(DirFailure::Offline { dir: root, replicas: listed(&self.offline), newly: true })
    }
}
