//! `Controller`: the actor a broker runs while it holds `/controller`. A shell around
//! [`ControllerCore`]: it reads the cluster from the keeper, asks the core what to change,
//! writes partition states, and sends the resulting [`ClusterUpdate`] to every live broker.
//!
//! **Level-triggered.** The controller starts a [`ZnodeWatcher`] on each of [`WATCHED`]
//! (`/brokers/ids`, `/brokers/topics`, `/isr_change_notification`, `/admin/delete_topics`,
//! `/config/changes`, `/admin`);
//! every [`ZnodeChanged`] just asks for a pass: re-read what may have changed (the states
//! named by leaders' ISR change notifications are re-read and the notifications removed),
//! decide, write, publish. Changes that arrive during a pass are folded into one more pass,
//! so a burst of broker deaths costs two passes, not one per event. The watcher re-arms its
//! watch before it tells the controller, so a change after the pass's read fires again.
//!
//! **Fencing.** Every state write is a multi whose first op checks `/controller_epoch` at
//! the version this controller wrote it with. A controller that has been replaced (its
//! session expired and another broker won) fails that check and stops; it can never
//! overwrite its successor's decisions. Brokers also refuse updates from an older epoch.
//!
//! **Controlled shutdown.** A broker shutting down asks for [`BeginShutdown`]; the next
//! pass moves its leaderships to other in-sync replicas and takes it out of ISRs, and the
//! answer is how many partitions it still leads.
//!
//! **Reassignments.** `/admin/reassign_partitions` (Kafka's JSON) names partitions and
//! their target replicas; each pass takes every move as far as it can go
//! ([`ControllerCore::reassign`]: add the new replicas, wait for them to be in sync, move
//! the leader, drop the old replicas) and removes the finished moves from the node.
//!
//! **Preferred leaders.** With `auto.leader.rebalance.enable`, every
//! `leader.imbalance.check.interval.seconds` a pass also runs the core's preferred-leader
//! elections.
//!
//! **Sending updates.** One task per live broker holds the newest update (a `watch`
//! channel: a slow broker skips stale pictures instead of queueing them) and retries until
//! that broker acknowledges it or leaves the cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sluice_broker_core::controller::{ControllerCore, Effect, ElectionType};
use sluice_broker_core::metadata::{BrokerEndpoint, ClusterUpdate, PartitionState};
use sluice_broker_core::znodes::{self, ZnodeError};
use sluice_broker_core::BrokerError;
use sluice_client::keeper::{KeeperClient, KeeperClientError};
use sluice_keeper_core::{CreateMode, KeeperError, Op, OpResult};
use sluice_proto::interbroker::{InterBrokerProtocol, UpdateCluster};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::znode_watcher::{StopWatching, WatchRoutes, Watching, ZnodeChanged, ZnodeWatcher};

/// Why a reconcile pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The keeper refused or could not be reached.
    #[error("keeper: {0}")]
    Keeper(#[from] KeeperClientError),
    /// A znode holds something unreadable.
    #[error(transparent)]
    Znode(#[from] ZnodeError),
    /// Another controller has taken over (`/controller_epoch` moved on).
    #[error("controller epoch {0} has been superseded; resigning")]
    Fenced(i32),
}

/// How long the controller waits for live brokers to acknowledge a topic deletion before
/// removing its znodes anyway (a broker that misses it deletes the data when it next
/// hears of the deletion, or never sees the topic again).
const DELETE_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A sender of updates to one broker.
#[derive(Debug)]
struct Outbox {
    addr: String,
    newest: watch::Sender<Option<Arc<ClusterUpdate>>>,
    acked: watch::Receiver<u64>,
}

/// The controller's settings (from `server.properties`).
#[derive(Debug, Clone, Copy)]
pub struct ControllerSettings {
    /// `auto.leader.rebalance.enable`: how often to check
    /// (`leader.imbalance.check.interval.seconds`) and the threshold
    /// (`leader.imbalance.per.broker.percentage`).
    pub rebalance: Option<(Duration, u32)>,
}

/// A broker waiting for its controlled shutdown's pass.
type ShutdownWaiter = (i32, tokio::sync::oneshot::Sender<u32>);
/// Partitions asked to go back to their preferred replica, and where the outcomes go.
type ElectionWaiter = (ElectionType, Vec<(String, i32)>, tokio::sync::oneshot::Sender<Vec<ElectionOutcome>>);
/// One requested election's outcome.
pub type ElectionOutcome = (String, i32, Result<(), BrokerError>);

/// The controller actor.
pub struct Controller {
    keeper: KeeperClient,
    net: Arc<sluice_net::Client<InterBrokerProtocol>>,
    core: Option<ControllerCore>,
    epoch_version: i32,
    dirty: bool,
    outboxes: HashMap<i32, Outbox>,
    on_fenced: Option<tokio::sync::oneshot::Sender<()>>,
    settings: ControllerSettings,
    /// Preferred-leader elections are due in the next pass.
    rebalance_due: bool,
    /// Shutdown requests not yet taken into a pass.
    shutdowns: Vec<ShutdownWaiter>,
    /// Requested preferred-leader elections not yet taken into a pass.
    elections: Vec<ElectionWaiter>,
    /// Where the session's watch events go; the controller's watchers are added there.
    routes: WatchRoutes,
    /// The znodes it watches (while it is the controller).
    watchers: Vec<Addr<ZnodeWatcher>>,
}

/// The znodes the controller watches (their children): any change asks for a pass.
pub const WATCHED: [&str; 7] = [
    znodes::BROKER_IDS,
    znodes::BROKER_TOPICS,
    znodes::ISR_CHANGE_NOTIFICATION,
    // A broker's log directory failed: its registration lists its offline replicas.
    znodes::LOG_DIR_EVENT_NOTIFICATION,
    znodes::DELETE_TOPICS,
    znodes::CONFIG_CHANGES,
    // `/admin/reassign_partitions` appears (its progress is driven by ISR changes).
    znodes::ADMIN,
];

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("epoch_version", &self.epoch_version).finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller at `core.epoch()`, whose `/controller_epoch` znode is at
    /// `epoch_version`. `on_fenced` fires if it finds itself replaced.
    pub fn new(
        keeper: KeeperClient,
        net: Arc<sluice_net::Client<InterBrokerProtocol>>,
        core: ControllerCore,
        epoch_version: i32,
        on_fenced: tokio::sync::oneshot::Sender<()>,
        settings: ControllerSettings,
        routes: WatchRoutes,
    ) -> Self {
        Controller {
            keeper,
            net,
            core: Some(core),
            epoch_version,
            dirty: true,
            outboxes: HashMap::new(),
            on_fenced: Some(on_fenced),
            settings,
            rebalance_due: false,
            shutdowns: Vec::new(),
            elections: Vec::new(),
            routes,
            watchers: Vec::new(),
        }
    }

    fn run_pass(&mut self, ctx: &mut Context<Self>) {
        let Some(mut core) = self.core.take() else {
            // A pass is running; it will run again when it ends.
            self.dirty = true;
            return;
        };
        self.dirty = false;
        let keeper = self.keeper.clone();
        let epoch_version = self.epoch_version;
        let waiting = std::mem::take(&mut self.shutdowns);
        for (broker, _) in &waiting {
            core.begin_shutdown(*broker);
        }
        let rebalance =
            self.settings.rebalance.filter(|_| std::mem::take(&mut self.rebalance_due)).map(|(_, pct)| pct);
        // Requested elections are decided on the picture of the last pass and written in
        // this one's first round.
        let elections = std::mem::take(&mut self.elections);
        let mut requested = Vec::new();
        let mut outcomes: Vec<Vec<ElectionOutcome>> = Vec::new();
        for (kind, partitions, _) in &elections {
            let mut these = Vec::new();
            for (topic, partition) in partitions {
                let outcome =
                    core.requested_election(*kind, topic, *partition).map(|effect| requested.push(effect));
                these.push((topic.clone(), *partition, outcome));
            }
            outcomes.push(these);
        }
        let pass = async move {
            let result = reconcile(&keeper, &mut core, epoch_version, rebalance, requested).await;
            (core, result)
        };
        ctx.spawn(pass.into_actor(self).map(|(core, result), this, ctx| {
            for (broker, reply) in waiting {
                let _ = reply.send(core.led_by(broker) as u32);
            }
            let failed =
                result.as_ref().err().map(|e| BrokerError::KeeperUnavailable { reason: e.to_string() });
            for ((_, _, reply), these) in elections.into_iter().zip(outcomes) {
                let these = match &failed {
                    None => these,
                    Some(e) => these.into_iter().map(|(t, p, r)| (t, p, r.and(Err(e.clone())))).collect(),
                };
                let _ = reply.send(these);
            }
            this.core = Some(core);
            match result {
                Ok(deleted) => {
                    this.broadcast();
                    if !deleted.is_empty() {
                        this.finish_deletions(deleted, ctx);
                    }
                }
                Err(ControllerError::Fenced(epoch)) => {
                    warn!(epoch, "another controller has taken over; resigning");
                    if let Some(tx) = this.on_fenced.take() {
                        let _ = tx.send(());
                    }
                    ctx.stop();
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "controller pass failed; retrying");
                    ctx.run_later(Duration::from_millis(200), |this, ctx| this.run_pass(ctx));
                }
            }
            if this.dirty {
                this.run_pass(ctx);
            }
        }));
    }

    /// Sends the core's newest picture to every live broker.
    fn broadcast(&mut self) {
        let Some(core) = self.core.as_mut() else { return };
        let update = Arc::new(core.publish());
        let live: BTreeMap<i32, BrokerEndpoint> = update.brokers.iter().map(|b| (b.id, b.clone())).collect();
        self.outboxes.retain(|id, o| live.get(id).is_some_and(|b| b.addr() == o.addr));
        for (id, broker) in live {
            let outbox =
                self.outboxes.entry(id).or_insert_with(|| spawn_outbox(self.net.clone(), broker.addr()));
            outbox.newest.send_replace(Some(update.clone()));
        }
        debug!(
            sequence = update.sequence,
            brokers = update.brokers.len(),
            topics = update.topics.len(),
            "published"
        );
    }

    /// After the brokers have heard that `topics` are being deleted, removes their znodes.
    fn finish_deletions(&mut self, topics: Vec<String>, ctx: &mut Context<Self>) {
        let sequence = core_sequence(&self.outboxes);
        let acks: Vec<watch::Receiver<u64>> = self.outboxes.values().map(|o| o.acked.clone()).collect();
        let keeper = self.keeper.clone();
        let epoch_version = self.epoch_version;
        let work = async move {
            let waits = acks.into_iter().map(|mut rx| async move {
                let _ = rx.wait_for(|acked| *acked >= sequence).await;
            });
            let _ = tokio::time::timeout(DELETE_ACK_TIMEOUT, futures_util::future::join_all(waits)).await;
            let mut done = Vec::new();
            for topic in topics {
                match delete_topic_znodes(&keeper, &topic, epoch_version).await {
                    Ok(()) => done.push(topic),
                    Err(e) => {
                        warn!(topic, error = %e, "could not remove a deleted topic's znodes; will retry")
                    }
                }
            }
            done
        };
        ctx.spawn(work.into_actor(self).map(|done, this, ctx| {
            if let Some(core) = this.core.as_mut() {
                for topic in &done {
                    info!(topic, "topic deleted");
                    core.remove_topic(topic);
                }
            }
            if done.is_empty() {
                // Nothing could be removed (keeper trouble): try again shortly, not at once.
                ctx.run_later(Duration::from_millis(500), |this, ctx| this.run_pass(ctx));
            } else {
                this.run_pass(ctx);
            }
        }));
    }
}

fn core_sequence(outboxes: &HashMap<i32, Outbox>) -> u64 {
    outboxes.values().filter_map(|o| o.newest.borrow().as_ref().map(|u| u.sequence)).max().unwrap_or(0)
}

fn spawn_outbox(net: Arc<sluice_net::Client<InterBrokerProtocol>>, addr: String) -> Outbox {
    let (newest, mut rx) = watch::channel::<Option<Arc<ClusterUpdate>>>(None);
    let (acked_tx, acked) = watch::channel(0u64);
    let target = addr.clone();
    tokio::spawn(async move {
        let mut backoff = sluice_net::Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            let Some(update) = rx.borrow_and_update().clone() else {
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            };
            match net.call(&target, UpdateCluster((*update).clone())).await {
                Ok(Ok(())) => {
                    backoff.reset();
                    acked_tx.send_replace(update.sequence);
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    warn!(broker = %target, error = %e, "broker refused the cluster update");
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    debug!(broker = %target, error = %e, "cluster update not delivered; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        changed = rx.changed() => if changed.is_err() { return },
                    }
                    // The newest update is taken again at the top of the loop.
                    rx.mark_changed();
                }
            }
        }
    });
    Outbox { addr, newest, acked }
}

impl Actor for Controller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(core) = &self.core {
            info!(epoch = core.epoch(), "became the controller");
        }
        if let Some((every, _)) = self.settings.rebalance {
            ctx.run_interval(every, |this, ctx| {
                this.rebalance_due = true;
                this.run_pass(ctx);
            });
        }
        let me = ctx.address().recipient();
        for path in WATCHED {
            let (watcher, _) =
                self.routes.watch(self.keeper.clone(), path, Watching::Children, vec![me.clone()]);
            self.watchers.push(watcher);
        }
        self.run_pass(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for w in self.watchers.drain(..) {
            w.do_send(StopWatching);
        }
    }
}

/// Something the controller watches changed: a pass reads everything again (the
/// controller is level-triggered, so what changed does not matter).
impl Handler<ZnodeChanged> for Controller {
    type Result = ();

    fn handle(&mut self, msg: ZnodeChanged, ctx: &mut Context<Self>) {
        let _span = crate::handling!("Controller", "ZnodeChanged");
        debug!(path = %msg.path, "a watched znode changed");
        self.run_pass(ctx);
    }
}

/// A broker asks for a controlled shutdown; the answer (after the next pass) is how many
/// partitions it still leads.
#[derive(Debug, Message)]
#[rtype(result = "Result<u32, BrokerError>")]
pub struct BeginShutdown(pub i32);

impl Handler<BeginShutdown> for Controller {
    type Result = ResponseFuture<Result<u32, BrokerError>>;

    fn handle(&mut self, msg: BeginShutdown, ctx: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Controller", "BeginShutdown");
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shutdowns.push((msg.0, tx));
        self.run_pass(ctx);
        Box::pin(async move { rx.await.map_err(|_| BrokerError::BrokerShuttingDown { broker: msg.0 }) })
    }
}

/// Requested elections (Kafka's ElectLeaders): partitions moved back to their preferred
/// replicas, or offline ones given an unclean leader; answered after the next pass with each
/// partition's outcome.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<ElectionOutcome>, BrokerError>")]
pub struct Elect {
    /// Which election.
    pub kind: ElectionType,
    /// The partitions.
    pub partitions: Vec<(String, i32)>,
}

impl Handler<Elect> for Controller {
    type Result = ResponseFuture<Result<Vec<ElectionOutcome>, BrokerError>>;

    fn handle(&mut self, msg: Elect, ctx: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("Controller", "Elect");
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.elections.push((msg.kind, msg.partitions, tx));
        self.run_pass(ctx);
        let gone = BrokerError::NotController { broker: -1 };
        Box::pin(async move { rx.await.map_err(|_| gone) })
    }
}

/// Stop being the controller (the broker is shutting down or lost its session).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resign;

impl Handler<Resign> for Controller {
    type Result = ();

    fn handle(&mut self, _: Resign, ctx: &mut Context<Self>) {
        let _span = crate::handling!("Controller", "Resign");
        self.outboxes.clear();
        ctx.stop();
    }
}

fn is_no_node(e: &KeeperClientError) -> bool {
    matches!(e, KeeperClientError::Keeper(KeeperError::NoNode { .. }))
}

/// Deletes `path` (any version); one that is already gone is not an error.
async fn delete_if_present(keeper: &KeeperClient, path: &str) -> Result<(), KeeperClientError> {
    match keeper.delete(path, -1).await {
        Err(e) if is_no_node(&e) => Ok(()),
        r => r,
    }
}

async fn get_optional(
    keeper: &KeeperClient,
    path: &str,
) -> Result<Option<(Vec<u8>, i32)>, KeeperClientError> {
    match keeper.get_data(path, false).await {
        Ok((data, stat)) => Ok(Some((data, stat.version))),
        Err(e) if is_no_node(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn read_state(
    keeper: &KeeperClient,
    topic: &str,
    partition: i32,
) -> Result<Option<PartitionState>, ControllerError> {
    match get_optional(keeper, &znodes::state_path(topic, partition)).await? {
        Some((data, version)) => Ok(Some(znodes::decode_state(topic, partition, &data, version)?)),
        None => Ok(None),
    }
}

/// Reads topic `name` (assignment, config overrides, partition states) into the core; a
/// topic whose assignment does not read is skipped with a warning.
async fn read_topic(
    keeper: &KeeperClient,
    core: &mut ControllerCore,
    name: &str,
) -> Result<(), ControllerError> {
    let Some((data, _)) = get_optional(keeper, &znodes::topic_path(name)).await? else { return Ok(()) };
    let assignment = match znodes::decode_assignment(name, &data) {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "ignoring a topic with an unreadable assignment");
            return Ok(());
        }
    };
    let configs = match get_optional(keeper, &znodes::config_path(name)).await? {
        Some((data, _)) => znodes::decode_topic_config(name, &data).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let mut states = BTreeMap::new();
    for p in assignment.keys() {
        if let Some(s) = read_state(keeper, name, *p).await? {
            states.insert(*p, s);
        }
    }
    core.set_topic(name, assignment, configs, states);
    Ok(())
}

/// One pass: read, decide, write. Returns the topics whose deletion brokers have now been
/// told of (their znodes go once the brokers acknowledge).
async fn reconcile(
    keeper: &KeeperClient,
    core: &mut ControllerCore,
    epoch_version: i32,
    rebalance: Option<u32>,
    mut requested: Vec<Effect>,
) -> Result<Vec<String>, ControllerError> {
    // Log directory events first: the registrations read next hold what they announce.
    let mut events = match keeper.children(znodes::LOG_DIR_EVENT_NOTIFICATION, false).await {
        Ok(c) => c,
        Err(e) if is_no_node(&e) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    events.sort();
    for event in events {
        delete_if_present(keeper, &format!("{}/{event}", znodes::LOG_DIR_EVENT_NOTIFICATION)).await?;
    }
    // Brokers, and their replicas on failed log directories.
    let mut brokers = Vec::new();
    let mut offline = BTreeMap::new();
    for id in keeper.children(znodes::BROKER_IDS, false).await? {
        let Ok(id) = id.parse::<i32>() else { continue };
        if let Some((data, _)) = get_optional(keeper, &znodes::broker_path(id)).await? {
            match znodes::decode_broker(id, &data) {
                Ok(b) => brokers.push(b),
                Err(e) => warn!(error = %e, "ignoring an unreadable broker registration"),
            }
            match znodes::decode_offline_replicas(id, &data) {
                Ok(o) if !o.is_empty() => {
                    debug!(broker = id, replicas = o.len(), "replicas on a failed log directory");
                    offline.insert(id, o);
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "ignoring an unreadable broker registration"),
            }
        }
    }
    core.set_brokers(brokers);
    core.set_offline_replicas(offline);
    // Topics.
    let names: BTreeSet<String> = keeper.children(znodes::BROKER_TOPICS, false).await?.into_iter().collect();
    let known: BTreeSet<String> = core.topics().keys().cloned().collect();
    for gone in known.difference(&names) {
        core.remove_topic(gone);
    }
    for name in names.difference(&known) {
        read_topic(keeper, core, name).await?;
    }
    // The dynamic broker configs: `<default>` (cluster-wide) and each broker's own, under
    // `/config/brokers` (a notification says when they change; read on every pass, so a new
    // controller starts with them).
    let mut defaults = BTreeMap::new();
    let mut own = BTreeMap::new();
    let entries = match keeper.children(znodes::CONFIG_BROKERS, false).await {
        Ok(c) => c,
        Err(e) if is_no_node(&e) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let broker = entry.parse::<i32>().ok();
        if broker.is_none() && entry != "<default>" {
            continue;
        }
        let path = format!("{}/{entry}", znodes::CONFIG_BROKERS);
        let Some((data, _)) = get_optional(keeper, &path).await? else { continue };
        match (znodes::decode_broker_config(&path, &data), broker) {
            (Ok(c), Some(id)) => {
                own.insert(id, c);
            }
            (Ok(c), None) => defaults = c,
            (Err(e), _) => warn!(error = %e, "ignoring unreadable dynamic broker configs"),
        }
    }
    core.set_broker_defaults(defaults);
    core.set_broker_configs(own);
    // Topics whose config or partitions changed: read again, then drop the notifications.
    let mut changes = match keeper.children(znodes::CONFIG_CHANGES, false).await {
        Ok(c) => c,
        Err(e) if is_no_node(&e) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    changes.sort();
    for change in changes {
        let path = format!("{}/{change}", znodes::CONFIG_CHANGES);
        let Some((data, _)) = get_optional(keeper, &path).await? else { continue };
        match znodes::decode_topic_change(&path, &data) {
            Ok(Some(name)) if names.contains(&name) => read_topic(keeper, core, &name).await?,
            Ok(_) => {}
            Err(e) => warn!(error = %e, "ignoring an unreadable config change notification"),
        }
        delete_if_present(keeper, &path).await?;
    }
    // Leaders' ISR changes: re-read the states they name, then drop the notifications.
    let mut notes = keeper.children(znodes::ISR_CHANGE_NOTIFICATION, false).await?;
    notes.sort();
    for note in notes {
        let path = format!("{}/{note}", znodes::ISR_CHANGE_NOTIFICATION);
        let Some((data, _)) = get_optional(keeper, &path).await? else { continue };
        match znodes::decode_isr_change(&path, &data) {
            Ok(partitions) => {
                for (topic, partition) in partitions {
                    if core.topics().get(&topic).is_some_and(|t| t.partitions.contains_key(&partition)) {
                        let state = read_state(keeper, &topic, partition).await?;
                        core.set_state(&topic, partition, state);
                    }
                }
            }
            Err(e) => warn!(error = %e, "ignoring an unreadable ISR change notification"),
        }
        delete_if_present(keeper, &path).await?;
    }
    // Deletions.
    let marked: BTreeSet<String> = keeper.children(znodes::DELETE_TOPICS, false).await?.into_iter().collect();
    for stray in marked.difference(&names) {
        let _ = keeper.delete(&znodes::delete_path(stray), -1).await;
    }
    let deleting: BTreeSet<String> = marked.intersection(&names).cloned().collect();
    let newly_deleting: Vec<String> = deleting.difference(core.deleting()).cloned().collect();
    core.set_deleting(deleting.clone());
    // Elections, until the core is satisfied (a conflict re-reads and decides again).
    for round in 0..5 {
        let mut effects = core.elect();
        if round == 0 {
            if let Some(pct) = rebalance {
                effects.extend(core.preferred_elections(pct));
            }
            // A requested election of a partition this round elects anyway is dropped.
            requested.retain(|Effect::WriteState { topic, partition, .. }| {
                !effects
                    .iter()
                    .any(|Effect::WriteState { topic: t, partition: p, .. }| t == topic && p == partition)
            });
            effects.append(&mut requested);
        }
        if effects.is_empty() {
            break;
        }
        for Effect::WriteState { topic, partition, state, expected_version } in effects {
            let old = core
                .topics()
                .get(&topic)
                .and_then(|t| t.partitions.get(&partition))
                .and_then(|i| i.state.clone());
            if let Some(old) = old.filter(|o| state.leader >= 0 && !o.isr.contains(&state.leader)) {
                warn!(topic, partition, leader = state.leader, isr = ?old.isr,
                    "unclean leader election: the new leader was not in sync; records it lacks are lost");
                metrics::counter!("sluice_controller_unclean_leader_elections_total").increment(1);
            }
            write_state(keeper, core, &topic, partition, state, expected_version, epoch_version).await?;
        }
    }
    reassign(keeper, core, epoch_version).await?;
    // Topics marked earlier whose znodes are still there are retried too.
    let _ = newly_deleting;
    Ok(deleting.into_iter().collect())
}

/// Moves the partitions `/admin/reassign_partitions` names as far as they can go now
/// ([`ControllerCore::reassign`]'s steps), then removes the finished ones from it (the node
/// goes when none is left). Each ISR change brings another pass, so a move proceeds as its
/// new replicas catch up.
async fn reassign(
    keeper: &KeeperClient,
    core: &mut ControllerCore,
    epoch_version: i32,
) -> Result<(), ControllerError> {
    let Some((data, version)) = get_optional(keeper, znodes::REASSIGN_PARTITIONS).await? else {
        core.set_reassignments(BTreeMap::new());
        return Ok(());
    };
    let asked = match znodes::decode_reassignment(znodes::REASSIGN_PARTITIONS, &data) {
        Ok(r) => r.targets(),
        Err(e) => {
            warn!(error = %e, "removing an unreadable reassignment request");
            let _ = keeper.delete(znodes::REASSIGN_PARTITIONS, version).await;
            return Ok(());
        }
    };
    if core.reassignments() != &asked {
        info!(partitions = asked.len(), "partition reassignment asked for");
    }
    core.set_reassignments(asked.clone());
    let mut done = Vec::new();
    for _ in 0..4 {
        let step = core.reassign();
        for (topic, partition, why) in &step.refused {
            warn!(topic, partition, reason = %why, "partition reassignment refused");
        }
        done.extend(step.done.iter().cloned());
        if step.is_idle() {
            break;
        }
        for (topic, assignment) in &step.assignments {
            let write = Op::SetData {
                path: znodes::topic_path(topic),
                data: znodes::encode_assignment(assignment),
                version: -1,
            };
            match fenced(keeper, epoch_version, write).await {
                Ok(_) => {}
                Err(KeeperClientError::Keeper(KeeperError::MultiFailed { index: 0, .. })) => {
                    return Err(ControllerError::Fenced(core.epoch()))
                }
                Err(e) => return Err(e.into()),
            }
            info!(topic, assignment = ?assignment, "replicas reassigned");
            core.assignment_written(topic, assignment);
        }
        for Effect::WriteState { topic, partition, state, expected_version } in step.states {
            write_state(keeper, core, &topic, partition, state, expected_version, epoch_version).await?;
        }
    }
    if done.is_empty() {
        return Ok(());
    }
    for (topic, partition) in &done {
        info!(topic, partition, "partition reassignment complete");
    }
    let mut left = asked;
    for tp in &done {
        left.remove(tp);
    }
    // Conditional on the version read: a request added meanwhile is kept for the next pass.
    let outcome = if left.is_empty() {
        keeper.delete(znodes::REASSIGN_PARTITIONS, version).await
    } else {
        let data = znodes::encode_reassignment(&znodes::Reassignment::from_targets(&left));
        keeper.set_data(znodes::REASSIGN_PARTITIONS, &data, version).await.map(|_| ())
    };
    match outcome {
        Ok(()) => {}
        Err(KeeperClientError::Keeper(KeeperError::BadVersion { .. } | KeeperError::NoNode { .. })) => {}
        Err(e) => return Err(e.into()),
    }
    core.set_reassignments(left);
    Ok(())
}

/// `op` as a multi whose first op checks `/controller_epoch` at `epoch_version`: a replaced
/// controller's write fails at index 0 and changes nothing.
async fn fenced(
    keeper: &KeeperClient,
    epoch_version: i32,
    op: Op,
) -> Result<Vec<OpResult>, KeeperClientError> {
    let fence = Op::Check { path: znodes::CONTROLLER_EPOCH.into(), version: epoch_version };
    keeper.multi(vec![fence, op]).await
}

async fn write_state(
    keeper: &KeeperClient,
    core: &mut ControllerCore,
    topic: &str,
    partition: i32,
    state: PartitionState,
    expected_version: Option<i32>,
    epoch_version: i32,
) -> Result<(), ControllerError> {
    let path = znodes::state_path(topic, partition);
    let data = znodes::encode_state(&state);
    if expected_version.is_none() {
        for parent in [znodes::partitions_path(topic), znodes::partition_path(topic, partition)] {
            match keeper.create(&parent, &[], CreateMode::Persistent).await {
                Ok(_) => {}
                Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let write = match expected_version {
        None => Op::Create { path: path.clone(), data, mode: CreateMode::Persistent },
        Some(version) => Op::SetData { path: path.clone(), data, version },
    };
    match fenced(keeper, epoch_version, write).await {
        Ok(results) => {
            let version = match results.get(1) {
                Some(OpResult::DataSet { stat }) | Some(OpResult::Created { stat, .. }) => stat.version,
                _ => expected_version.map_or(0, |v| v + 1),
            };
            info!(topic, partition, leader = state.leader, epoch = state.leader_epoch, isr = ?state.isr, "partition state");
            core.state_written(topic, partition, state, version);
            Ok(())
        }
        Err(KeeperClientError::Keeper(KeeperError::MultiFailed { index: 0, .. })) => {
            Err(ControllerError::Fenced(core.epoch()))
        }
        Err(KeeperClientError::Keeper(KeeperError::MultiFailed { .. })) => {
            let current = read_state(keeper, topic, partition).await?;
            core.state_conflict(topic, partition, current);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes a deleted topic's znodes (fenced by the controller epoch at the end).
async fn delete_topic_znodes(
    keeper: &KeeperClient,
    topic: &str,
    epoch_version: i32,
) -> Result<(), ControllerError> {
    let partitions = match keeper.children(&znodes::partitions_path(topic), false).await {
        Ok(p) => p,
        Err(e) if is_no_node(&e) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    for p in partitions {
        let Ok(p) = p.parse::<i32>() else { continue };
        delete_if_present(keeper, &znodes::state_path(topic, p)).await?;
        delete_if_present(keeper, &znodes::partition_path(topic, p)).await?;
    }
    delete_if_present(keeper, &znodes::partitions_path(topic)).await?;
    match fenced(keeper, epoch_version, Op::Delete { path: znodes::topic_path(topic), version: -1 }).await {
        Ok(_) => {}
        Err(KeeperClientError::Keeper(KeeperError::MultiFailed { index: 0, .. })) => {
            return Err(ControllerError::Fenced(-1));
        }
        Err(KeeperClientError::Keeper(KeeperError::MultiFailed { index: 1, error }))
            if matches!(*error, KeeperError::NoNode { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    delete_if_present(keeper, &znodes::config_path(topic)).await?;
    delete_if_present(keeper, &znodes::delete_path(topic)).await?;
    Ok(())
}
