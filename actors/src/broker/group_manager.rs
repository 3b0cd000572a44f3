//! The [`GroupManager`] actor: knows which consumer groups this broker coordinates and
//! hands requests to their [`GroupCoordinator`] actors.
//!
//! A group is coordinated by the leader of its `__consumer_offsets` partition
//! ([`group_log::partition_for`]). The manager follows this broker's leaderships of that
//! topic: when it starts leading a partition it reads the partition (up to the log end it
//! saw, once the high watermark has reached it) and starts an actor for every group found
//! there; when it stops leading, those actors tell their held requests `NotCoordinator`
//! and stop. Requests for a partition still loading get `CoordinatorLoadInProgress`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sluice_broker_config::BrokerConfig;
use sluice_broker_core::group::{Group, GroupRules};
use sluice_broker_core::group_log::{self, Loader};
use sluice_broker_core::BrokerError;
use sluice_proto::broker::{BrokerProtocol, OFFSETS_TOPIC};
use tracing::{debug, info, warn};

use super::group_coordinator::{
    committed_gauge, now, DropTopics, GroupCoordinator, OffsetsWriter, Stopped, Unload,
};
use crate::broker::partition::Read;
use crate::broker::replica_manager::{current, Hosted, SharedRouting};

/// A partition of `__consumer_offsets` this broker leads.
enum Slot {
    /// Being read; requests wait.
    Loading { epoch: i32 },
    /// Its groups, each with its actor.
    Ready { epoch: i32, groups: HashMap<String, Addr<GroupCoordinator>> },
}

/// Knows which groups this broker coordinates and hands requests to their actors.
pub struct GroupManager {
    config: Arc<BrokerConfig>,
    routing: SharedRouting,
    /// For asking partition leaders their high watermarks (the lag).
    net: Arc<sluice_net::Client<BrokerProtocol>>,
    /// The lag series set so far ([`crate::broker::lag`]).
    lag_series: std::collections::BTreeSet<crate::broker::lag::LagKey>,
    /// A lag measurement is running.
    measuring: bool,
    rules: GroupRules,
    slots: HashMap<i32, Slot>,
    /// The topics of the last cluster update seen (`None` before the first).
    topics: Option<std::collections::BTreeSet<String>>,
}

impl GroupManager {
    /// A manager following the leaderships in `routing`.
    pub fn new(
        config: Arc<BrokerConfig>,
        routing: SharedRouting,
        net: Arc<sluice_net::Client<BrokerProtocol>>,
    ) -> Self {
        let rules = GroupRules {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay.as_millis() as u64,
            offsets_retention_ms: config.offsets_retention.as_millis() as u64,
            min_session_timeout_ms: i32::try_from(config.group_min_session_timeout.as_millis())
                .unwrap_or(i32::MAX),
            max_session_timeout_ms: i32::try_from(config.group_max_session_timeout.as_millis())
                .unwrap_or(i32::MAX),
            ..GroupRules::default()
        };
        GroupManager {
            config,
            routing,
            net,
            lag_series: Default::default(),
            measuring: false,
            rules,
            slots: HashMap::new(),
            topics: None,
        }
    }

    /// The partitions of `__consumer_offsets` led here now, with their leader epochs.
    fn led(&self) -> BTreeMap<i32, (i32, Hosted)> {
        let routing = current(&self.routing);
        routing
            .partitions
            .iter()
            .filter(|(tp, _)| tp.topic == OFFSETS_TOPIC)
            .filter_map(|(tp, h)| h.offsets.borrow().leading.map(|epoch| (tp.partition, (epoch, h.clone()))))
            .collect()
    }

    /// Starts loading newly led partitions; unloads those no longer led.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let groups: usize = self
            .slots
            .values()
            .map(|s| match s {
                Slot::Ready { groups, .. } => groups.len(),
                Slot::Loading { .. } => 0,
            })
            .sum();
        metrics::gauge!("sluice_group_count").set(groups as f64);
        self.drop_deleted_topics();
        let led = self.led();
        let lost: Vec<i32> = self
            .slots
            .iter()
            .filter(|(p, slot)| {
                let epoch = match slot {
                    Slot::Loading { epoch } | Slot::Ready { epoch, .. } => *epoch,
                };
                led.get(p).map(|(e, _)| *e) != Some(epoch)
            })
            .map(|(p, _)| *p)
            .collect();
        for p in lost {
            if let Some(Slot::Ready { groups, .. }) = self.slots.remove(&p) {
                info!(
                    partition = p,
                    groups = groups.len(),
                    "no longer coordinating this offsets partition's groups"
                );
                for addr in groups.values() {
                    addr.do_send(Unload);
                }
            }
        }
        for (p, (epoch, hosted)) in led {
            if self.slots.contains_key(&p) {
                continue;
            }
            self.slots.insert(p, Slot::Loading { epoch });
            let me = ctx.address();
            actix::spawn(async move {
                let started = std::time::Instant::now();
                let loaded = load(hosted, p).await;
                me.do_send(Loaded { partition: p, epoch, loaded, took: started.elapsed() });
            });
        }
    }

    /// Tells every group of topics that left the cluster picture since the last look.
    fn drop_deleted_topics(&mut self) {
        let routing = current(&self.routing);
        let Some(update) = &routing.update else { return };
        let now: std::collections::BTreeSet<String> = update.topics.keys().cloned().collect();
        let deleted: Vec<String> = match &self.topics {
            Some(before) => before.difference(&now).cloned().collect(),
            None => Vec::new(),
        };
        self.topics = Some(now);
        if deleted.is_empty() {
            return;
        }
        info!(topics = ?deleted, "dropping the deleted topics' committed offsets");
        let deleted = Arc::new(deleted);
        for slot in self.slots.values() {
            if let Slot::Ready { groups, .. } = slot {
                for g in groups.values() {
                    g.do_send(DropTopics(deleted.clone()));
                }
            }
        }
    }

    /// Starts measuring the lag of the groups coordinated here, unless a measurement runs.
    fn measure_lag(&mut self, ctx: &mut Context<Self>) {
        if self.measuring {
            return;
        }
        self.measuring = true;
        let groups: Vec<(String, Addr<GroupCoordinator>)> = self
            .slots
            .values()
            .flat_map(|s| match s {
                Slot::Ready { groups, .. } => groups.iter().map(|(g, a)| (g.clone(), a.clone())).collect(),
                Slot::Loading { .. } => Vec::new(),
            })
            .collect();
        let measured = crate::broker::lag::measure(groups, current(&self.routing), self.net.clone());
        ctx.spawn(actix::fut::wrap_future::<_, Self>(measured).map(|lags, act, _| {
            act.measuring = false;
            act.lag_series = crate::broker::lag::publish(&act.lag_series, &lags);
        }));
    }

    fn start_group(&self, group: Group, partition: i32, me: Addr<GroupManager>) -> Addr<GroupCoordinator> {
        let writer = OffsetsWriter { routing: self.routing.clone(), config: self.config.clone(), partition };
        GroupCoordinator::new(group, writer, me.recipient(), self.config.broker_id).start()
    }
}

impl std::fmt::Debug for GroupManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupManager").field("partitions", &self.slots.len()).finish_non_exhaustive()
    }
}

impl Actor for GroupManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Leadership changes reach the routing table; follow it closely (a new coordinator
        // is what a group waits for after a broker dies).
        ctx.run_interval(Duration::from_millis(200), |act, ctx| act.reconcile(ctx));
        ctx.run_interval(crate::broker::lag::REFRESH, |act, ctx| act.measure_lag(ctx));
    }
}

/// Reads a partition of `__consumer_offsets` from its start to the log end it has when the
/// read starts (waiting, bounded, for the high watermark to reach it), folding the records
/// into groups.
async fn load(hosted: Hosted, partition: i32) -> Result<BTreeMap<String, group_log::Loaded>, BrokerError> {
    let mut offsets = hosted.offsets.clone();
    let end = offsets.borrow().log_end_offset;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while offsets.borrow().high_watermark < end {
        tokio::select! {
            changed = offsets.changed() => if changed.is_err() {
                return Err(BrokerError::CoordinatorNotAvailable { group: String::new(), why: "the offsets partition stopped".into() });
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Err(BrokerError::CoordinatorNotAvailable { group: String::new(), why: format!("__consumer_offsets-{partition}'s high watermark did not reach {end}") });
            }
        }
    }
    let mut at = offsets.borrow().log_start_offset;
    let mut loader = Loader::default();
    while at < end {
        let read = hosted.addr.send(Read { offset: at, max_bytes: 1 << 20, strict: false }).await.map_err(
            |_| BrokerError::CoordinatorNotAvailable {
                group: String::new(),
                why: "the offsets partition stopped".into(),
            },
        )??;
        let bytes = read.0;
        if bytes.is_empty() {
            break;
        }
        for view in sluice_log::batch::batches(&bytes) {
            let view = view.map_err(|e| BrokerError::CorruptMessage { reason: e.to_string() })?;
            let base = view.header.base_offset;
            for r in
                view.records(64 << 20).map_err(|e| BrokerError::CorruptMessage { reason: e.to_string() })?
            {
                let offset = base + i64::from(r.offset_delta);
                if offset < at || offset >= end {
                    continue;
                }
                let Some(key) = r.key.as_deref() else { continue };
                match group_log::decode(key, r.value.as_deref()) {
                    Ok(entry) => loader.apply(entry),
                    Err(e) => warn!(partition, offset, error = %e, "skipping a record of __consumer_offsets"),
                }
            }
            at = at.max(view.last_offset() + 1);
        }
    }
    Ok(loader.finish())
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Loaded {
    partition: i32,
    epoch: i32,
    loaded: Result<BTreeMap<String, group_log::Loaded>, BrokerError>,
    took: Duration,
}

impl Handler<Loaded> for GroupManager {
    type Result = ();

    fn handle(&mut self, msg: Loaded, ctx: &mut Context<Self>) {
        let _span = crate::handling!("GroupManager", "Loaded");
        if !matches!(self.slots.get(&msg.partition), Some(Slot::Loading { epoch }) if *epoch == msg.epoch) {
            return;
        }
        match msg.loaded {
            Ok(loaded) => {
                let now = now();
                let known = current(&self.routing).update.as_ref().map(|u| u.topics.clone());
                let n = loaded.len();
                let groups = loaded
                    .into_iter()
                    .map(|(id, l)| {
                        for ((topic, partition), o) in &l.offsets {
                            committed_gauge(&id, topic, *partition, o.offset);
                        }
                        // Offsets of topics deleted before this load go too.
                        let deleted: Vec<String> = match &known {
                            Some(known) => l
                                .offsets
                                .keys()
                                .map(|(t, _)| t.clone())
                                .filter(|t| !known.contains_key(t))
                                .collect(),
                            None => Vec::new(),
                        };
                        let group = Group::restore(id.clone(), self.rules, now, l.group, l.offsets);
                        let addr = self.start_group(group, msg.partition, ctx.address());
                        if !deleted.is_empty() {
                            addr.do_send(DropTopics(Arc::new(deleted)));
                        }
                        (id, addr)
                    })
                    .collect();
                info!(partition = msg.partition, groups = n, took = ?msg.took, "coordinating the groups of __consumer_offsets-{}", msg.partition);
                self.slots.insert(msg.partition, Slot::Ready { epoch: msg.epoch, groups });
            }
            Err(e) => {
                warn!(partition = msg.partition, error = %e, "could not load the groups; trying again");
                self.slots.remove(&msg.partition);
            }
        }
    }
}

impl Handler<Stopped> for GroupManager {
    type Result = ();

    fn handle(&mut self, msg: Stopped, _: &mut Context<Self>) {
        let _span = crate::handling!("GroupManager", "Stopped");
        let p = group_log::partition_for(&msg.group, self.config.offsets_topic_num_partitions);
        if let Some(Slot::Ready { groups, .. }) = self.slots.get_mut(&p) {
            groups.remove(&msg.group);
            debug!(group = %msg.group, "group removed");
        }
    }
}

/// The actor of `group`, started if `create` and it does not exist; or why there is none
/// here.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Addr<GroupCoordinator>>, BrokerError>")]
pub struct Route {
    /// The group id.
    pub group: String,
    /// Start an empty group if there is none (joins and commits).
    pub create: bool,
}

impl Handler<Route> for GroupManager {
    type Result = Result<Option<Addr<GroupCoordinator>>, BrokerError>;

    fn handle(&mut self, msg: Route, ctx: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("GroupManager", "Route");
        if msg.group.is_empty() {
            return Err(BrokerError::InvalidGroupId {
                group: msg.group,
                why: "a group id must not be empty".into(),
            });
        }
        let p = group_log::partition_for(&msg.group, self.config.offsets_topic_num_partitions);
        if !self.slots.contains_key(&p) {
            // Perhaps just elected: look now rather than at the next timer.
            self.reconcile(ctx);
        }
        let me = ctx.address();
        let (rules, broker) = (self.rules, self.config.broker_id);
        match self.slots.get(&p) {
            None => Err(BrokerError::NotCoordinator { group: msg.group, broker }),
            Some(Slot::Loading { .. }) => Err(BrokerError::CoordinatorLoadInProgress { group: msg.group }),
            Some(Slot::Ready { groups, .. }) => {
                if let Some(addr) = groups.get(&msg.group).filter(|a| a.connected()) {
                    return Ok(Some(addr.clone()));
                }
                if !msg.create {
                    return Ok(None);
                }
                let addr = self.start_group(Group::new(msg.group.clone(), rules, now()), p, me);
                if let Some(Slot::Ready { groups, .. }) = self.slots.get_mut(&p) {
                    groups.insert(msg.group, addr.clone());
                }
                Ok(Some(addr))
            }
        }
    }
}

/// Every group this broker coordinates.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Addr<GroupCoordinator>>")]
pub struct AllGroups;

impl Handler<AllGroups> for GroupManager {
    type Result = MessageResult<AllGroups>;

    fn handle(&mut self, _: AllGroups, _: &mut Context<Self>) -> Self::Result {
        let _span = crate::handling!("GroupManager", "AllGroups");
        MessageResult(
            self.slots
                .values()
                .filter_map(|s| match s {
                    Slot::Ready { groups, .. } => Some(groups.values().cloned()),
                    Slot::Loading { .. } => None,
                })
                .flatten()
                .collect(),
        )
    }
}
