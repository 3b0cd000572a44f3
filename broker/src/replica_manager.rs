//! `ReplicaManager`: the actor that turns the controller's [`ClusterUpdate`]s into this
//! broker's roles. For every partition the update says this broker leads, it opens the log
//! and starts a [`PartitionLeader`]; for every partition it no longer leads, it stops the
//! actor (deleting the data when the topic is being deleted). It then publishes the new
//! [`Routing`] that the service reads to send each request to its partition's actor.
//!
//! Which updates to take and what each asks (start, re-epoch, stop) is decided by
//! `sluice_broker_core::roles`; this actor carries the plan out.
//!
//! Runs on the log thread (its own arbiter), with the partition actors it starts, so that
//! appends and reads never compete with the network for a thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use actix::prelude::*;
use sluice_broker_core::metadata::ClusterUpdate;
use sluice_broker_core::roles;
use sluice_broker_core::BrokerError;
use sluice_log::{Log, LogCleaner, TopicPartition};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::log_manager::{Forget, LogManager, Register, Unregister};
use crate::partition::{Offsets, PartitionLeader, SetEpoch, Stop};

/// A partition this broker leads.
#[derive(Debug, Clone)]
pub struct Leader {
    /// Its actor.
    pub addr: Addr<PartitionLeader>,
    /// Its offsets, updated after every append.
    pub offsets: watch::Receiver<Offsets>,
    /// The leader epoch it leads at.
    pub epoch: i32,
}

/// What the service routes by: the newest cluster picture and the partitions led here.
#[derive(Debug, Default)]
pub struct Routing {
    /// The newest update from the controller (`None` before the first).
    pub update: Option<Arc<ClusterUpdate>>,
    /// Partitions led by this broker.
    pub leaders: HashMap<TopicPartition, Leader>,
}

/// The routing table, replaced as a whole on every update.
pub type SharedRouting = Arc<RwLock<Arc<Routing>>>;

/// Reads the current routing table.
pub fn current(routing: &SharedRouting) -> Arc<Routing> {
    routing.read().map_or_else(|p| p.into_inner().clone(), |r| r.clone())
}

/// The replica manager.
#[derive(Debug)]
pub struct ReplicaManager {
    broker_id: i32,
    config: Arc<BrokerConfig>,
    routing: SharedRouting,
    log_manager: Addr<LogManager>,
    cleaner: Arc<LogCleaner>,
    current: Option<Arc<ClusterUpdate>>,
    leaders: HashMap<TopicPartition, Leader>,
    /// Directories of the led logs registered with the cleaner (compacted topics).
    cleaned: HashMap<TopicPartition, PathBuf>,
}

impl ReplicaManager {
    /// A replica manager publishing into `routing`; logs of compacted topics are handed to
    /// `cleaner` while led here.
    pub fn new(
        config: Arc<BrokerConfig>,
        routing: SharedRouting,
        log_manager: Addr<LogManager>,
        cleaner: Arc<LogCleaner>,
    ) -> Self {
        ReplicaManager {
            broker_id: config.broker_id,
            config,
            routing,
            log_manager,
            cleaner,
            current: None,
            leaders: HashMap::new(),
            cleaned: HashMap::new(),
        }
    }

    /// The directory for a partition: where it already is, else the `log.dirs` entry with
    /// the fewest partitions (Kafka's choice).
    fn dir_for(&self, tp: &TopicPartition) -> (PathBuf, PathBuf) {
        let name = format!("{}-{}", tp.topic, tp.partition);
        for root in &self.config.log_dirs {
            if root.join(&name).is_dir() {
                return (root.clone(), root.join(&name));
            }
        }
        let count =
            |root: &Path| std::fs::read_dir(root).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0);
        let root = self
            .config
            .log_dirs
            .iter()
            .min_by_key(|r| count(r))
            .cloned()
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = root.join(&name);
        (root, dir)
    }

    fn start_leader(&mut self, tp: &TopicPartition, epoch: i32, update: &ClusterUpdate) -> Option<Leader> {
        let overrides = update.topics.get(&tp.topic).map(|t| t.configs.clone()).unwrap_or_default();
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
        let (actor, offsets) = PartitionLeader::new(log, self.broker_id, epoch);
        let addr = actor.start();
        self.log_manager.do_send(Register { tp: tp.clone(), addr: addr.clone(), log_dir: root });
        Some(Leader { addr, offsets, epoch })
    }

    fn stop_leader(&mut self, tp: &TopicPartition, delete: bool) {
        let Some(leader) = self.leaders.remove(tp) else { return };
        if let Some(dir) = self.cleaned.remove(tp) {
            self.cleaner.unregister(&dir);
        }
        let log_manager = self.log_manager.clone();
        let tp = tp.clone();
        actix::spawn(async move {
            let point = leader.addr.send(Stop { delete }).await.ok().flatten();
            log_manager.do_send(Unregister { tp, recovery_point: point });
        });
    }

    /// Deletes the data of a deleted topic's partitions that no actor holds.
    fn delete_stray(&self, topics: &BTreeSet<String>) {
        for root in &self.config.log_dirs {
            let Ok(entries) = std::fs::read_dir(root) else { continue };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name();
                let Some(tp) = name.to_str().and_then(TopicPartition::from_dir_name) else { continue };
                if topics.contains(&tp.topic) && !self.leaders.contains_key(&tp) {
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
        let routing = Arc::new(Routing { update: self.current.clone(), leaders: self.leaders.clone() });
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
        let update = msg.0;
        if !roles::accept(self.current.as_deref(), &update)? {
            return Ok(());
        }
        let running: BTreeMap<roles::Partition, i32> =
            self.leaders.iter().map(|(tp, l)| ((tp.topic.clone(), tp.partition), l.epoch)).collect();
        let plan = roles::plan(&update, self.broker_id, &running);
        for ((topic, partition), delete) in plan.stop {
            self.stop_leader(&TopicPartition::new(topic, partition), delete);
        }
        if !plan.deleting.is_empty() {
            self.delete_stray(&plan.deleting);
        }
        for ((topic, partition), epoch) in plan.new_epoch {
            if let Some(l) = self.leaders.get_mut(&TopicPartition::new(topic, partition)) {
                l.epoch = epoch;
                l.addr.do_send(SetEpoch(epoch));
            }
        }
        for ((topic, partition), epoch) in plan.start {
            let tp = TopicPartition::new(topic, partition);
            if let Some(leader) = self.start_leader(&tp, epoch, &update) {
                self.leaders.insert(tp, leader);
            }
        }
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
        let leaders: Vec<_> = self.leaders.drain().collect();
        for (_, dir) in self.cleaned.drain() {
            self.cleaner.unregister(&dir);
        }
        self.current = None;
        self.publish();
        let log_manager = self.log_manager.clone();
        Box::pin(
            async move {
                for (tp, leader) in leaders {
                    let point = leader.addr.send(Stop { delete: false }).await.ok().flatten();
                    let _ = log_manager.send(Unregister { tp, recovery_point: point }).await;
                }
            }
            .into_actor(self),
        )
    }
}
