//! The controller's decisions, as a state machine with no IO.
//!
//! The shell (the controller actor in `sluice-broker`) feeds it what it reads from the
//! keeper — live brokers, topics with their assignments, configs and partition states,
//! topics marked for deletion — and carries out the [`Effect`]s it returns: conditional
//! writes of partition states and the [`ClusterUpdate`] to send to every broker.
//!
//! Rules (Kafka's, ZooKeeper mode):
//! - A partition without a state gets one once a replica is live: the first live replica in
//!   assignment order leads, at leader epoch 0, with every live replica in the ISR (they all
//!   start empty, so all are in sync).
//! - A partition whose leader is dead (or that has none) gets a new leader: the first
//!   replica in assignment order that is live *and* in the ISR. The ISR keeps only live
//!   members. With no live ISR member the partition goes offline (leader -1) and keeps its
//!   last ISR, so that a returning ISR member can lead again without losing data — unless
//!   `unclean.leader.election.enable`, when any live replica may lead.
//! - A live leader whose ISR holds dead followers loses them from the ISR.
//! - **Controlled shutdown**: a broker that asks to shut down is treated as dead for
//!   leadership — each partition it leads moves to another live ISR member (if there is
//!   one) — and leaves the ISRs it follows in, before it exits, so producers only see a
//!   leader change.
//! - **Preferred leaders**: [`ControllerCore::preferred_elections`] moves leadership back to
//!   each partition's first assigned replica when a broker leads too few of the partitions
//!   it is preferred for (`leader.imbalance.per.broker.percentage`).
//! - ISR changes made by leaders (lag eviction, catching up) are written by the leaders
//!   themselves; the controller re-reads those states ([`ControllerCore::set_state`]) when
//!   notified and publishes them.
//! - Every change bumps the leader epoch and is written with the version the controller
//!   last read: a controller that has been replaced (its write fails on the version) cannot
//!   overwrite its successor's decisions.
//!

use std::collections::{BTreeMap, BTreeSet};

use crate::error::BrokerError;
use crate::metadata::{BrokerEndpoint, ClusterUpdate, PartitionInfo, PartitionState, TopicState};

/// Which election a client asks for (Kafka's ElectLeaders election type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionType {
    /// The first replica of the assignment leads again (Kafka's 0).
    Preferred,
    /// A partition without a live leader gets one, in sync or not (Kafka's 1).
    Unclean,
}

impl ElectionType {
    /// Kafka's code.
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }

    /// As Kafka's tool prints it.
    pub fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write a partition state: create the znode when `expected_version` is `None`, else a
    /// conditional set at that version. Report the outcome with
    /// [`ControllerCore::state_written`] or [`ControllerCore::state_conflict`].
    WriteState {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The new state.
        state: PartitionState,
        /// The version last read, or `None` to create.
        expected_version: Option<i32>,
    },
}

/// What the controller does next for the partitions being reassigned
/// ([`ControllerCore::reassign`]), Kafka's steps:
/// 1. the assignment becomes the target followed by the replicas leaving (RS = TRS + (ORS -
///    TRS)): the new replicas start fetching from the leader;
/// 2. wait until every target replica is in the ISR (the leader adds each once caught up);
/// 3. if the leader is leaving (or the ISR holds leaving replicas) a new state: a leader
///    from the target, the ISR less the leaving replicas, the next leader epoch;
/// 4. the assignment becomes the target: the leaving replicas stop and delete their data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassignStep {
    /// Topic assignments to write (steps 1 and 4), each topic's whole map; report with
    /// [`ControllerCore::assignment_written`].
    pub assignments: Vec<(String, BTreeMap<i32, Vec<i32>>)>,
    /// Partition states to write (step 3), as [`ControllerCore::elect`]'s.
    pub states: Vec<Effect>,
    /// Partitions whose move is complete (or can never be done: `refused` says why); they
    /// leave `/admin/reassign_partitions`.
    pub done: Vec<(String, i32)>,
    /// Moves refused, with the reason (an unknown partition, an empty or repeating target).
    pub refused: Vec<(String, i32, String)>,
}

impl ReassignStep {
    /// Nothing to write.
    pub fn is_idle(&self) -> bool {
        self.assignments.is_empty() && self.states.is_empty()
    }
}

/// The controller's view of the cluster.
#[derive(Debug, Clone)]
pub struct ControllerCore {
    broker_id: i32,
    epoch: i32,
    cluster_id: String,
    sequence: u64,
    unclean_default: bool,
    /// `/config/brokers/<default>`.
    broker_defaults: BTreeMap<String, String>,
    /// `/config/brokers/<id>`.
    broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    brokers: BTreeMap<i32, BrokerEndpoint>,
    topics: BTreeMap<String, TopicState>,
    deleting: BTreeSet<String>,
    shutting_down: BTreeSet<i32>,
    /// Per live broker, its replicas on failed log directories (from its registration).
    offline: BTreeMap<i32, BTreeSet<(String, i32)>>,
    /// `/admin/reassign_partitions`: target replicas per partition.
    reassigning: BTreeMap<(String, i32), Vec<i32>>,
}

impl ControllerCore {
    /// A controller for `epoch`. `unclean_default` is the broker's
    /// `unclean.leader.election.enable` (a topic's own config overrides it).
    pub fn new(broker_id: i32, epoch: i32, cluster_id: String, unclean_default: bool) -> Self {
        ControllerCore {
            broker_id,
            epoch,
            cluster_id,
            sequence: 0,
            unclean_default,
            broker_defaults: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            deleting: BTreeSet::new(),
            shutting_down: BTreeSet::new(),
            offline: BTreeMap::new(),
            reassigning: BTreeMap::new(),
        }
    }

    /// The epoch this controller writes with.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Live brokers.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerEndpoint> {
        self.brokers.values()
    }

    /// Known topics.
    pub fn topics(&self) -> &BTreeMap<String, TopicState> {
        &self.topics
    }

    /// Topics being deleted.
    pub fn deleting(&self) -> &BTreeSet<String> {
        &self.deleting
    }

    /// Replaces the set of live brokers. A broker that has left is no longer shutting down.
    pub fn set_brokers(&mut self, brokers: Vec<BrokerEndpoint>) {
        self.brokers = brokers.into_iter().map(|b| (b.id, b)).collect();
        let brokers = &self.brokers;
        self.shutting_down.retain(|id| brokers.contains_key(id));
    }

    /// Replaces the replicas that live brokers hold on failed log directories: such a
    /// replica counts as dead for its partition (it leads no more and leaves the ISR), while
    /// its broker goes on with its other partitions (Kafka's offline replicas, KIP-112).
    pub fn set_offline_replicas(&mut self, offline: BTreeMap<i32, BTreeSet<(String, i32)>>) {
        self.offline = offline;
        self.offline.retain(|_, replicas| !replicas.is_empty());
    }

    /// `broker` asked for a controlled shutdown: the next [`ControllerCore::elect`] moves
    /// its leaderships away and takes it out of ISRs. Ignored for a broker that is not live.
    pub fn begin_shutdown(&mut self, broker: i32) {
        if self.brokers.contains_key(&broker) {
            self.shutting_down.insert(broker);
        }
    }

    /// How many partitions `broker` still leads that another live replica could take
    /// ([`crate::metadata::handovers`]: what a controlled shutdown waits for).
    pub fn led_by(&self, broker: i32) -> usize {
        crate::metadata::handovers(self.topics.values(), broker, |id| self.live(id))
    }

    /// Replaces one partition's state with what the keeper holds now (a leader changed
    /// its ISR). Unknown partitions are ignored.
    pub fn set_state(&mut self, topic: &str, partition: i32, state: Option<PartitionState>) {
        if let Some(info) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(&partition)) {
            info.state = state;
        }
    }

    /// Adds or replaces a topic as read from the keeper: its assignment, configs and the
    /// states that exist.
    pub fn set_topic(
        &mut self,
        name: &str,
        assignment: BTreeMap<i32, Vec<i32>>,
        configs: BTreeMap<String, String>,
        mut states: BTreeMap<i32, PartitionState>,
    ) {
        let partitions = assignment
            .into_iter()
            .map(|(p, replicas)| (p, PartitionInfo { replicas, state: states.remove(&p) }))
            .collect();
        self.topics.insert(name.to_string(), TopicState { name: name.to_string(), partitions, configs });
    }

    /// Forgets a topic (its znodes are gone).
    pub fn remove_topic(&mut self, name: &str) {
        self.topics.remove(name);
        self.deleting.remove(name);
    }

    /// Replaces the set of topics marked for deletion (only known topics count).
    pub fn set_deleting(&mut self, topics: BTreeSet<String>) {
        self.deleting = topics;
    }

    /// Whether `topic` is to be deleted and known.
    pub fn is_deleting(&self, topic: &str) -> bool {
        self.deleting.contains(topic)
    }

    fn unclean(&self, topic: &TopicState) -> bool {
        let key = "unclean.leader.election.enable";
        let set = topic.configs.get(key).or_else(|| self.broker_defaults.get(key));
        match set.map(|v| v.to_ascii_lowercase()) {
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            _ => self.unclean_default,
        }
    }

    /// Decides every partition's leader and ISR from the live brokers; returns the writes.
    /// States change only when the writes succeed ([`ControllerCore::state_written`]).
    pub fn elect(&self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for topic in self.topics.values() {
            if self.deleting.contains(&topic.name) {
                continue;
            }
            let unclean = self.unclean(topic);
            for (p, info) in &topic.partitions {
                if let Some((state, expected_version)) = self.decide(&topic.name, *p, info, unclean) {
                    effects.push(Effect::WriteState {
                        topic: topic.name.clone(),
                        partition: *p,
                        state,
                        expected_version,
                    });
                }
            }
        }
        effects
    }

    fn live(&self, id: i32) -> bool {
        self.brokers.contains_key(&id)
    }

    /// Live and not shutting down: may lead and stay in ISRs.
    fn serving(&self, id: i32) -> bool {
        self.live(id) && !self.shutting_down.contains(&id)
    }

    /// Whether broker `id`'s replica of `topic`-`partition` is up: the broker is live and
    /// the replica is not on a failed log directory.
    fn up(&self, id: i32, topic: &str, partition: i32) -> bool {
        self.live(id)
            && !self.offline.get(&id).is_some_and(|o| o.iter().any(|(t, p)| t == topic && *p == partition))
    }

    fn decide(
        &self,
        topic: &str,
        partition: i32,
        info: &PartitionInfo,
        unclean: bool,
    ) -> Option<(PartitionState, Option<i32>)> {
        let up = |id: i32| self.up(id, topic, partition);
        let serving = |id: i32| up(id) && self.serving(id);
        let Some(old) = &info.state else {
            let leader = *info.replicas.iter().find(|r| up(**r))?;
            let mut isr = vec![leader];
            isr.extend(info.replicas.iter().copied().filter(|r| *r != leader && up(*r)));
            let state =
                PartitionState { leader, leader_epoch: 0, isr, controller_epoch: self.epoch, zk_version: 0 };
            return Some((state, None));
        };
        let mut live_isr: Vec<i32> = old.isr.iter().copied().filter(|r| up(*r)).collect();
        let leader_leaving = self.shutting_down.contains(&old.leader);
        if leader_leaving && !live_isr.iter().any(|r| serving(*r)) {
            // Nobody in sync to hand over to: it keeps leading until it exits (Kafka's rule).
            return None;
        }
        // A broker shutting down leaves the ISRs it follows in.
        live_isr.retain(|r| *r == old.leader || serving(*r));
        if old.leader >= 0 && up(old.leader) && !leader_leaving {
            if live_isr.len() == old.isr.len() {
                return None;
            }
            let state = PartitionState {
                leader: old.leader,
                leader_epoch: old.leader_epoch + 1,
                isr: live_isr,
                controller_epoch: self.epoch,
                zk_version: old.zk_version,
            };
            return Some((state, Some(old.zk_version)));
        }
        let live_isr: Vec<i32> = live_isr.into_iter().filter(|r| serving(*r)).collect();
        let clean = info.replicas.iter().copied().find(|r| live_isr.contains(r));
        let (leader, isr) = match clean {
            Some(l) => {
                let mut isr = vec![l];
                isr.extend(live_isr.iter().copied().filter(|r| *r != l));
                (l, isr)
            }
            None => match info.replicas.iter().copied().find(|r| unclean && serving(*r)) {
                Some(l) => (l, vec![l]),
                None if old.leader == -1 => return None,
                // Offline: keep the last ISR so a returning member can lead without loss.
                None => (-1, old.isr.clone()),
            },
        };
        let state = PartitionState {
            leader,
            leader_epoch: old.leader_epoch + 1,
            isr,
            controller_epoch: self.epoch,
            zk_version: old.zk_version,
        };
        Some((state, Some(old.zk_version)))
    }

    /// Preferred-leader elections (`auto.leader.rebalance.enable`): for every broker whose
    /// share of not-led preferred partitions exceeds `imbalance_percent`, the partitions it
    /// is preferred for and could lead (live, in the ISR, not shutting down) move back to it
    /// at the next leader epoch.
    pub fn preferred_elections(&self, imbalance_percent: u32) -> Vec<Effect> {
        // Per preferred broker: how many partitions prefer it, and those it does not lead.
        type Misplaced<'a> = Vec<(&'a str, i32, &'a PartitionState)>;
        let mut preferred: BTreeMap<i32, (usize, Misplaced<'_>)> = BTreeMap::new();
        for topic in self.topics.values().filter(|t| !self.deleting.contains(&t.name)) {
            for (p, info) in &topic.partitions {
                let (Some(first), Some(state)) = (info.replicas.first(), info.state.as_ref()) else {
                    continue;
                };
                let entry = preferred.entry(*first).or_default();
                entry.0 += 1;
                if state.leader != *first {
                    entry.1.push((&topic.name, *p, state));
                }
            }
        }
        let mut effects = Vec::new();
        for (broker, (total, misplaced)) in preferred {
            let ratio = misplaced.len() * 100 / total.max(1);
            if misplaced.is_empty() || ratio <= imbalance_percent as usize || !self.serving(broker) {
                continue;
            }
            for (topic, partition, old) in misplaced {
                if !old.isr.contains(&broker) || !self.up(broker, topic, partition) {
                    continue;
                }
                let mut isr = vec![broker];
                isr.extend(old.isr.iter().copied().filter(|r| *r != broker));
                effects.push(Effect::WriteState {
                    topic: topic.to_string(),
                    partition,
                    state: PartitionState {
                        leader: broker,
                        leader_epoch: old.leader_epoch + 1,
                        isr,
                        controller_epoch: self.epoch,
                        zk_version: old.zk_version,
                    },
                    expected_version: Some(old.zk_version),
                });
            }
        }
        effects
    }

    /// A requested election of `kind` (Kafka's ElectLeaders) of `topic`-`partition`.
    pub fn requested_election(
        &self,
        kind: ElectionType,
        topic: &str,
        partition: i32,
    ) -> Result<Effect, BrokerError> {
        match kind {
            ElectionType::Preferred => self.preferred_election(topic, partition),
            ElectionType::Unclean => self.unclean_election(topic, partition),
        }
    }

    /// A requested unclean election (`kafka-leader-election.sh --election-type unclean`) of a
    /// partition without a live leader: the first live replica in assignment order leads,
    /// in sync or not (records it lacks are lost), whatever the topic's
    /// `unclean.leader.election.enable`. A partition with a live leader needs none
    /// (`ElectionNotNeeded`); one with no live replica cannot have one.
    pub fn unclean_election(&self, topic: &str, partition: i32) -> Result<Effect, BrokerError> {
        let unknown = || BrokerError::UnknownTopicOrPartition { topic: topic.to_string(), partition };
        let t = self.topics.get(topic).filter(|t| !self.deleting.contains(&t.name)).ok_or_else(unknown)?;
        let info = t.partitions.get(&partition).ok_or_else(unknown)?;
        let old = info.state.as_ref().ok_or_else(unknown)?;
        if old.leader >= 0 && self.up(old.leader, topic, partition) {
            return Err(BrokerError::ElectionNotNeeded { topic: topic.to_string(), partition });
        }
        // An in-sync replica first, if one is serving; else any serving replica.
        let serving = |r: i32| self.serving(r) && self.up(r, topic, partition);
        let leader = info
            .replicas
            .iter()
            .copied()
            .find(|r| old.isr.contains(r) && serving(*r))
            .or_else(|| info.replicas.iter().copied().find(|r| serving(*r)))
            .ok_or_else(|| BrokerError::EligibleLeadersNotAvailable {
                topic: topic.to_string(),
                partition,
                replicas: info.replicas.clone(),
            })?;
        Ok(Effect::WriteState {
            topic: topic.to_string(),
            partition,
            state: PartitionState {
                leader,
                leader_epoch: old.leader_epoch + 1,
                isr: vec![leader],
                controller_epoch: self.epoch,
                zk_version: old.zk_version,
            },
            expected_version: Some(old.zk_version),
        })
    }

    /// A requested preferred-leader election (Kafka's ElectLeaders, `kafka-leader-election.sh
    /// --election-type preferred`) of `topic`-`partition`: the state to write, or why there
    /// is none. Unlike [`Self::preferred_elections`] no imbalance threshold applies.
    pub fn preferred_election(&self, topic: &str, partition: i32) -> Result<Effect, BrokerError> {
        let unknown = || BrokerError::UnknownTopicOrPartition { topic: topic.to_string(), partition };
        let t = self.topics.get(topic).filter(|t| !self.deleting.contains(&t.name)).ok_or_else(unknown)?;
        let info = t.partitions.get(&partition).ok_or_else(unknown)?;
        let preferred = *info.replicas.first().ok_or_else(unknown)?;
        let not_available =
            || BrokerError::PreferredLeaderNotAvailable { topic: topic.to_string(), partition, preferred };
        let old = info.state.as_ref().ok_or_else(not_available)?;
        if old.leader == preferred {
            return Err(BrokerError::ElectionNotNeeded { topic: topic.to_string(), partition });
        }
        if !self.serving(preferred) || !old.isr.contains(&preferred) || !self.up(preferred, topic, partition)
        {
            return Err(not_available());
        }
        let mut isr = vec![preferred];
        isr.extend(old.isr.iter().copied().filter(|r| *r != preferred));
        Ok(Effect::WriteState {
            topic: topic.to_string(),
            partition,
            state: PartitionState {
                leader: preferred,
                leader_epoch: old.leader_epoch + 1,
                isr,
                controller_epoch: self.epoch,
                zk_version: old.zk_version,
            },
            expected_version: Some(old.zk_version),
        })
    }

    /// A state write succeeded; the znode is now at `version`.
    pub fn state_written(&mut self, topic: &str, partition: i32, mut state: PartitionState, version: i32) {
        state.zk_version = version;
        if let Some(info) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(&partition)) {
            info.state = Some(state);
        }
    }

    /// A state write failed on its version (or the node existed): someone else wrote it.
    /// `current` is what the keeper holds now; the next [`ControllerCore::elect`] starts
    /// from it.
    pub fn state_conflict(&mut self, topic: &str, partition: i32, current: Option<PartitionState>) {
        if let Some(info) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(&partition)) {
            info.state = current;
        }
    }

    /// The picture to send to every broker; each call gets the next sequence number.
    pub fn publish(&mut self) -> ClusterUpdate {
        self.sequence += 1;
        ClusterUpdate {
            controller_id: self.broker_id,
            controller_epoch: self.epoch,
            sequence: self.sequence,
            cluster_id: self.cluster_id.clone(),
            brokers: self.brokers.values().cloned().collect(),
            topics: self
                .topics
                .iter()
                .filter(|(n, _)| !self.deleting.contains(*n))
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect(),
            deleting: self.deleting.iter().cloned().collect(),
            broker_defaults: self.broker_defaults.clone(),
            broker_configs: self.broker_configs.clone(),
            offline_on_live: self.offline.clone(),
        }
    }

    /// The partition moves asked for (`/admin/reassign_partitions`) as the keeper holds them
    /// now.
    pub fn set_reassignments(&mut self, targets: BTreeMap<(String, i32), Vec<i32>>) {
        self.reassigning = targets;
    }

    /// The partition moves in progress.
    pub fn reassignments(&self) -> &BTreeMap<(String, i32), Vec<i32>> {
        &self.reassigning
    }

    /// An assignment write succeeded: `topic`'s replicas are now `assignment`.
    pub fn assignment_written(&mut self, topic: &str, assignment: &BTreeMap<i32, Vec<i32>>) {
        if let Some(t) = self.topics.get_mut(topic) {
            for (p, replicas) in assignment {
                if let Some(info) = t.partitions.get_mut(p) {
                    info.replicas = replicas.clone();
                }
            }
        }
    }

    /// The next writes of the moves in progress ([`ReassignStep`]). Each call decides from
    /// the assignment and states as they are now, so a new controller picks a move up where
    /// its predecessor left it.
    pub fn reassign(&self) -> ReassignStep {
        let mut step = ReassignStep::default();
        let mut assignments: BTreeMap<&str, BTreeMap<i32, Vec<i32>>> = BTreeMap::new();
        for ((topic, partition), target) in &self.reassigning {
            let refuse = |step: &mut ReassignStep, why: String| {
                step.done.push((topic.clone(), *partition));
                step.refused.push((topic.clone(), *partition, why));
            };
            let Some(info) = self
                .topics
                .get(topic)
                .filter(|t| !self.deleting.contains(&t.name))
                .and_then(|t| t.partitions.get(partition))
            else {
                refuse(&mut step, format!("{topic}-{partition} does not exist"));
                continue;
            };
            let distinct: BTreeSet<i32> = target.iter().copied().collect();
            if target.is_empty() || distinct.len() != target.len() || target.iter().any(|r| *r < 0) {
                refuse(&mut step, format!("the target replicas {target:?} must be distinct broker ids"));
                continue;
            }
            if &info.replicas == target {
                step.done.push((topic.clone(), *partition));
                continue;
            }
            let leaving: Vec<i32> = info.replicas.iter().copied().filter(|r| !distinct.contains(r)).collect();
            let mut moved = |replicas: Vec<i32>| {
                assignments.entry(topic).or_default().insert(*partition, replicas);
            };
            // Step 1: add the target replicas.
            if !target.iter().all(|r| info.replicas.contains(r)) {
                moved(target.iter().copied().chain(leaving).collect());
                continue;
            }
            let Some(state) = &info.state else {
                // Never led: nothing to move but the assignment.
                moved(target.clone());
                continue;
            };
            // Step 2: wait for every target replica to be in sync.
            if !target.iter().all(|r| state.isr.contains(r)) {
                continue;
            }
            // Step 3: a leader and ISR without the leaving replicas.
            let leader_stays = target.contains(&state.leader) && self.serving(state.leader);
            if !leader_stays || state.isr.iter().any(|r| !distinct.contains(r)) {
                let leader = if leader_stays {
                    Some(state.leader)
                } else {
                    target.iter().copied().find(|r| self.serving(*r))
                };
                // No target replica can lead now: wait for one to come back.
                let Some(leader) = leader else { continue };
                let mut isr = vec![leader];
                isr.extend(state.isr.iter().copied().filter(|r| *r != leader && distinct.contains(r)));
                step.states.push(Effect::WriteState {
                    topic: topic.clone(),
                    partition: *partition,
                    state: PartitionState {
                        leader,
                        leader_epoch: state.leader_epoch + 1,
                        isr,
                        controller_epoch: self.epoch,
                        zk_version: state.zk_version,
                    },
                    expected_version: Some(state.zk_version),
                });
                continue;
            }
            // Step 4: the leaving replicas go.
            moved(target.clone());
        }
        for (topic, moved) in assignments {
            let Some(t) = self.topics.get(topic) else { continue };
            let mut whole: BTreeMap<i32, Vec<i32>> =
                t.partitions.iter().map(|(p, i)| (*p, i.replicas.clone())).collect();
            whole.extend(moved);
            step.assignments.push((topic.to_string(), whole));
        }
        step
    }

    /// The cluster-wide dynamic defaults (`/config/brokers/<default>`) as the keeper holds
    /// them now.
    pub fn set_broker_defaults(&mut self, defaults: BTreeMap<String, String>) {
        self.broker_defaults = defaults;
    }

    /// Each broker's own dynamic configs (`/config/brokers/<id>`) as the keeper holds them now.
    pub fn set_broker_configs(&mut self, configs: BTreeMap<i32, BTreeMap<String, String>>) {
        self.broker_configs = configs;
    }
}

/// What `/controller` holds, as a broker's watcher last read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerZnode {
    /// Nobody holds it.
    Absent,
    /// This broker's session holds it.
    Mine,
    /// Another session holds it.
    Theirs,
}

/// What a broker does about the controller election when its watcher reads `/controller`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionStep {
    /// Try to create `/controller`.
    Compete,
    /// Stop being the controller and try again.
    Resign,
    /// It is leading and has now seen `/controller` held by its own session.
    Held,
    /// Nothing to do.
    Wait,
}

/// The election rule on the watching side. `leading` is `None` for a broker that is not the
/// controller, else whether it has already seen `/controller` held by its own session (a
/// read from before its own create is old news, not a loss).
pub fn election_step(leading: Option<bool>, znode: ControllerZnode) -> ElectionStep {
    match (leading, znode) {
        (Some(_), ControllerZnode::Mine) => ElectionStep::Held,
        (Some(true), _) => ElectionStep::Resign,
        (Some(false), _) => ElectionStep::Wait,
        (None, ControllerZnode::Absent) => ElectionStep::Compete,
        (None, _) => ElectionStep::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32) -> BrokerEndpoint {
        BrokerEndpoint { id, host: "h".into(), port: 9092, rack: None, listeners: Vec::new() }
    }

    fn controller(live: &[i32]) -> ControllerCore {
        let mut c = ControllerCore::new(1, 3, "cluster".into(), false);
        c.set_brokers(live.iter().map(|id| broker(*id)).collect());
        c
    }

    fn apply(c: &mut ControllerCore) -> Vec<(String, i32, PartitionState)> {
        let effects = c.elect();
        let mut out = Vec::new();
        for Effect::WriteState { topic, partition, state, expected_version } in effects {
            let version = expected_version.map_or(0, |v| v + 1);
            c.state_written(&topic, partition, state.clone(), version);
            out.push((topic, partition, state));
        }
        out
    }

    fn state(leader: i32, epoch: i32, isr: &[i32]) -> PartitionState {
        PartitionState { leader, leader_epoch: epoch, isr: isr.to_vec(), controller_epoch: 3, zk_version: 0 }
    }

    #[test]
    fn a_new_partition_is_led_by_its_first_live_replica_with_every_live_replica_in_sync() {
        let mut c = controller(&[2, 3]);
        c.set_topic("t", [(0, vec![1, 2, 3])].into(), BTreeMap::new(), BTreeMap::new());
        let writes = c.elect();
        assert_eq!(
            writes,
            vec![Effect::WriteState {
                topic: "t".into(),
                partition: 0,
                state: state(2, 0, &[2, 3]),
                expected_version: None
            }]
        );
    }

    #[test]
    fn a_partition_with_no_live_replica_waits_without_a_state() {
        let mut c = controller(&[3]);
        c.set_topic("t", [(0, vec![1, 2])].into(), BTreeMap::new(), BTreeMap::new());
        assert!(c.elect().is_empty());
    }

    #[test]
    fn a_dead_leader_is_replaced_from_the_isr_in_assignment_order() {
        // Step 1: leader 1 with ISR [1, 3, 2]; broker 1 dies.
        let mut c = controller(&[2, 3]);
        c.set_topic("t", [(0, vec![1, 2, 3])].into(), BTreeMap::new(), [(0, state(1, 4, &[1, 3, 2]))].into());
        // Step 2: the first assigned replica in the live ISR is 2; epoch bumps; ISR loses 1.
        let writes = apply(&mut c);
        assert_eq!(writes, vec![("t".into(), 0, state(2, 5, &[2, 3]))]);
        // Step 3: nothing more to do.
        assert!(c.elect().is_empty());
    }

    #[test]
    fn a_replica_on_a_failed_log_dir_loses_its_leadership_and_isr_place_and_only_that_partition_moves() {
        // Broker 1 leads t-0 (on the directory that failed) and t-1 (on a healthy one).
        let mut c = controller(&[1, 2, 3]);
        let states = [(0, state(1, 4, &[1, 2, 3])), (1, state(1, 2, &[1, 3, 2]))].into();
        c.set_topic("t", [(0, vec![1, 2, 3]), (1, vec![1, 3, 2])].into(), BTreeMap::new(), states);
        // A follower's offline replica leaves the ISR too.
        c.set_topic("u", [(0, vec![2, 1])].into(), BTreeMap::new(), [(0, state(2, 0, &[2, 1]))].into());
        c.set_offline_replicas([(1, [("t".to_string(), 0), ("u".to_string(), 0)].into())].into());
        // No election, preferred or asked for, gives it back to the offline replica.
        assert!(c
            .preferred_elections(0)
            .iter()
            .all(|e| !matches!(e, Effect::WriteState { topic, partition: 0, .. } if topic == "t")));
        assert!(c.preferred_election("t", 0).is_err());
        let writes = apply(&mut c);
        assert_eq!(writes, vec![("t".into(), 0, state(2, 5, &[2, 3])), ("u".into(), 0, state(2, 1, &[2]))]);
        assert!(c.elect().is_empty(), "t-1 stays with broker 1, which is live");
        assert!(c.preferred_elections(0).is_empty(), "t-0's preferred replica is offline");
        // The replica cannot lead again while it is offline, even with nobody else left.
        c.set_brokers(vec![broker(1)]);
        let gone = apply(&mut c);
        assert_eq!(
            gone,
            vec![
                ("t".into(), 0, PartitionState { zk_version: 1, ..state(-1, 6, &[2, 3]) }),
                ("t".into(), 1, PartitionState { zk_version: 0, ..state(1, 3, &[1]) }),
                ("u".into(), 0, PartitionState { zk_version: 1, ..state(-1, 2, &[2]) })
            ]
        );
        assert!(
            matches!(c.unclean_election("t", 0), Err(BrokerError::EligibleLeadersNotAvailable { .. })),
            "an unclean election does not take an offline replica either"
        );
        // Restarted (its registration lists nothing offline): it is a replica like any other.
        c.set_offline_replicas(BTreeMap::new());
        c.set_brokers(vec![broker(1), broker(2)]);
        let back = apply(&mut c);
        assert!(back.iter().any(|(t, p, s)| t == "t" && *p == 0 && s.leader == 2), "{back:?}");
    }

    #[test]
    fn with_no_live_isr_member_the_partition_goes_offline_and_keeps_its_isr() {
        let mut c = controller(&[2]);
        c.set_topic("t", [(0, vec![1, 2])].into(), BTreeMap::new(), [(0, state(1, 0, &[1]))].into());
        assert_eq!(apply(&mut c), vec![("t".into(), 0, state(-1, 1, &[1]))]);
        // Still offline, no new write.
        assert!(c.elect().is_empty());
        // Broker 1 returns: it leads again.
        c.set_brokers(vec![broker(1), broker(2)]);
        let back = PartitionState { zk_version: 1, ..state(1, 2, &[1]) };
        assert_eq!(apply(&mut c), vec![("t".into(), 0, back)]);
    }

    #[test]
    fn unclean_election_takes_any_live_replica_when_the_topic_allows_it() {
        let mut c = controller(&[2]);
        let configs = [("unclean.leader.election.enable".to_string(), "true".to_string())].into();
        c.set_topic("t", [(0, vec![1, 2])].into(), configs, [(0, state(1, 0, &[1]))].into());
        assert_eq!(apply(&mut c), vec![("t".into(), 0, state(2, 1, &[2]))]);
    }

    #[test]
    fn a_dead_follower_leaves_the_isr_of_a_live_leader() {
        let mut c = controller(&[1, 2]);
        c.set_topic("t", [(0, vec![1, 2, 3])].into(), BTreeMap::new(), [(0, state(1, 0, &[1, 2, 3]))].into());
        assert_eq!(apply(&mut c), vec![("t".into(), 0, state(1, 1, &[1, 2]))]);
    }

    #[test]
    fn writes_carry_the_version_last_read_and_a_conflict_adopts_the_keepers_state() {
        let mut c = controller(&[2]);
        let mut old = state(1, 0, &[1, 2]);
        old.zk_version = 7;
        c.set_topic("t", [(0, vec![1, 2])].into(), BTreeMap::new(), [(0, old)].into());
        let Some(Effect::WriteState { expected_version, .. }) = c.elect().into_iter().next() else {
            panic!("a write is due");
        };
        assert_eq!(expected_version, Some(7));
        // Someone else already moved leadership to 2 (version 8): nothing left to do.
        let mut theirs = state(2, 1, &[2]);
        theirs.zk_version = 8;
        c.state_conflict("t", 0, Some(theirs));
        assert!(c.elect().is_empty());
    }

    #[test]
    fn topics_being_deleted_are_neither_elected_nor_published() {
        let mut c = controller(&[1]);
        c.set_topic("gone", [(0, vec![1])].into(), BTreeMap::new(), BTreeMap::new());
        c.set_deleting(["gone".to_string()].into());
        assert!(c.elect().is_empty());
        let u = c.publish();
        assert!(u.topics.is_empty());
        assert_eq!(u.deleting, vec!["gone".to_string()]);
        assert_eq!(c.publish().sequence, u.sequence + 1);
    }

    #[test]
    fn a_controlled_shutdown_moves_leadership_to_an_in_sync_replica_and_leaves_the_isrs() {
        // Step 1: broker 1 leads t-0 (ISR [1, 2, 3]) and follows in t-1 (led by 2).
        let mut c = controller(&[1, 2, 3]);
        let states = [(0, state(1, 4, &[1, 2, 3])), (1, state(2, 0, &[2, 1, 3]))].into();
        c.set_topic("t", [(0, vec![1, 2, 3]), (1, vec![2, 1, 3])].into(), BTreeMap::new(), states);
        assert_eq!(c.led_by(1), 1);
        // Step 2: broker 1 asks to shut down: t-0 moves to 2; 1 leaves t-1's ISR.
        c.begin_shutdown(1);
        let writes = apply(&mut c);
        assert_eq!(
            writes,
            vec![("t".into(), 0, state(2, 5, &[2, 3])), ("t".into(), 1, state(2, 1, &[2, 3]))]
        );
        assert_eq!(c.led_by(1), 0);
        // Step 3: its registration goes; when it returns it is an ordinary broker again.
        c.set_brokers(vec![broker(2), broker(3)]);
        c.set_brokers(vec![broker(1), broker(2), broker(3)]);
        assert!(
            c.elect().is_empty(),
            "a returning broker rejoins ISRs through its leaders, not the controller"
        );
    }

    #[test]
    fn a_broker_shutting_down_keeps_a_partition_nobody_else_has_in_sync() {
        let mut c = controller(&[1, 2]);
        let states = [(0, state(1, 0, &[1])), (1, state(1, 0, &[1]))].into();
        c.set_topic("t", [(0, vec![1, 2]), (1, vec![1])].into(), BTreeMap::new(), states);
        c.begin_shutdown(1);
        assert!(c.elect().is_empty());
        // t-0 could move once 2 catches up; t-1 has no other replica and does not count.
        assert_eq!(c.led_by(1), 1);
    }

    #[test]
    fn preferred_leaders_get_their_partitions_back_past_the_imbalance_threshold() {
        // Step 1: broker 1 is preferred for t-0 and t-1 but leads neither (it was away).
        let mut c = controller(&[1, 2]);
        let states = [(0, state(2, 3, &[2, 1])), (1, state(2, 1, &[2])), (2, state(2, 0, &[2, 1]))].into();
        c.set_topic("t", [(0, vec![1, 2]), (1, vec![1, 2]), (2, vec![2, 1])].into(), BTreeMap::new(), states);
        // Step 2: 100% of broker 1's preferred partitions are elsewhere: t-0 moves back; t-1
        // cannot (1 is not in its ISR yet); t-2 is already on its preferred leader.
        let writes = c.preferred_elections(10);
        assert_eq!(
            writes,
            vec![Effect::WriteState {
                topic: "t".into(),
                partition: 0,
                state: state(1, 4, &[1, 2]),
                expected_version: Some(0)
            }]
        );
        // Step 3: with a threshold above the imbalance (50% once t-0 is back) nothing moves.
        for Effect::WriteState { topic, partition, state, .. } in writes {
            c.state_written(&topic, partition, state, 1);
        }
        assert!(c.preferred_elections(50).is_empty());
        assert_eq!(c.preferred_elections(10).len(), 0, "t-1's preferred replica is still out of sync");
    }

    #[test]
    fn a_requested_preferred_election_moves_the_leader_when_it_can_and_says_why_not() {
        let mut c = controller(&[1, 2, 3]);
        c.set_topic(
            "t",
            [(0, vec![1, 2, 3]), (1, vec![2, 1, 3]), (2, vec![3, 1, 2])].into(),
            BTreeMap::new(),
            [(0, state(2, 3, &[2, 1, 3])), (1, state(2, 0, &[2, 1])), (2, state(1, 5, &[1, 2]))].into(),
        );
        assert_eq!(
            c.preferred_election("t", 0),
            Ok(Effect::WriteState {
                topic: "t".into(),
                partition: 0,
                state: state(1, 4, &[1, 2, 3]),
                expected_version: Some(0)
            })
        );
        assert!(matches!(c.preferred_election("t", 1), Err(BrokerError::ElectionNotNeeded { .. })));
        assert!(
            matches!(
                c.preferred_election("t", 2),
                Err(BrokerError::PreferredLeaderNotAvailable { preferred: 3, .. })
            ),
            "3 is live but not in the ISR"
        );
        assert!(matches!(c.preferred_election("t", 9), Err(BrokerError::UnknownTopicOrPartition { .. })));
        assert!(matches!(c.preferred_election("u", 0), Err(BrokerError::UnknownTopicOrPartition { .. })));
        c.begin_shutdown(1);
        assert!(matches!(c.preferred_election("t", 0), Err(BrokerError::PreferredLeaderNotAvailable { .. })));
    }

    #[test]
    fn a_leaders_isr_change_is_adopted_as_read() {
        let mut c = controller(&[1, 2, 3]);
        c.set_topic("t", [(0, vec![1, 2, 3])].into(), BTreeMap::new(), [(0, state(1, 0, &[1, 2, 3]))].into());
        let mut shrunk = state(1, 0, &[1, 2]);
        shrunk.zk_version = 1;
        c.set_state("t", 0, Some(shrunk.clone()));
        assert!(c.elect().is_empty(), "a live follower out of the ISR is the leader's business");
        assert_eq!(c.publish().topics["t"].partitions[&0].state, Some(shrunk));
    }

    /// Carries out a step as the shell would (every write succeeds).
    fn apply_reassign(c: &mut ControllerCore) -> ReassignStep {
        let step = c.reassign();
        for (topic, assignment) in &step.assignments {
            c.assignment_written(topic, assignment);
        }
        for Effect::WriteState { topic, partition, state, expected_version } in step.states.clone() {
            c.state_written(&topic, partition, state, expected_version.map_or(0, |v| v + 1));
        }
        step
    }

    fn replicas(c: &ControllerCore, p: i32) -> Vec<i32> {
        c.topics()["t"].partitions[&p].replicas.clone()
    }

    #[test]
    fn a_reassignment_adds_the_new_replicas_waits_for_them_moves_the_leader_then_drops_the_old() {
        // Step 1: t-0 on {1, 2, 3} led by 1; t-1 stays on {1, 2}. Move t-0 to {2, 3, 4}.
        let mut c = controller(&[1, 2, 3, 4]);
        c.set_topic(
            "t",
            [(0, vec![1, 2, 3]), (1, vec![1, 2])].into(),
            BTreeMap::new(),
            [(0, state(1, 4, &[1, 2, 3])), (1, state(1, 0, &[1, 2]))].into(),
        );
        c.set_reassignments([(("t".to_string(), 0), vec![2, 3, 4])].into());
        // Step 2: the target replicas join the assignment, the leaving one last.
        let step = apply_reassign(&mut c);
        assert_eq!(
            step.assignments,
            vec![("t".to_string(), [(0, vec![2, 3, 4, 1]), (1, vec![1, 2])].into())]
        );
        assert!(step.states.is_empty() && step.done.is_empty());
        // Step 3: broker 4 is not in sync yet: nothing to do.
        assert!(c.reassign().is_idle());
        // Step 4: the leader adds 4 to the ISR; leadership moves to 2 and 1 leaves the ISR.
        c.set_state("t", 0, Some(PartitionState { zk_version: 1, ..state(1, 4, &[1, 2, 3, 4]) }));
        let step = apply_reassign(&mut c);
        assert!(step.assignments.is_empty());
        assert_eq!(
            step.states,
            vec![Effect::WriteState {
                topic: "t".into(),
                partition: 0,
                state: PartitionState { zk_version: 1, ..state(2, 5, &[2, 3, 4]) },
                expected_version: Some(1)
            }]
        );
        // Step 5: the assignment becomes the target; then the move is done.
        let step = apply_reassign(&mut c);
        assert_eq!(step.assignments, vec![("t".to_string(), [(0, vec![2, 3, 4]), (1, vec![1, 2])].into())]);
        assert_eq!(replicas(&c, 0), vec![2, 3, 4]);
        let step = c.reassign();
        assert!(step.is_idle());
        assert_eq!(step.done, vec![("t".to_string(), 0)]);
        assert!(step.refused.is_empty());
    }

    #[test]
    fn a_reassignment_keeps_a_staying_leader_and_waits_while_no_target_replica_can_lead() {
        // Shrinking {1, 2, 3} to {1, 2}: the leader stays, the ISR loses 3, the epoch moves.
        let mut c = controller(&[1, 2, 3]);
        c.set_topic("t", [(0, vec![1, 2, 3])].into(), BTreeMap::new(), [(0, state(1, 0, &[1, 2, 3]))].into());
        c.set_reassignments([(("t".to_string(), 0), vec![1, 2])].into());
        let step = apply_reassign(&mut c);
        assert_eq!(step.states.len(), 1);
        assert_eq!(
            c.topics()["t"].partitions[&0].state.as_ref().map(|s| (s.leader, s.leader_epoch, s.isr.clone())),
            Some((1, 1, vec![1, 2]))
        );
        apply_reassign(&mut c);
        assert_eq!(replicas(&c, 0), vec![1, 2]);
        // Moving {1, 2} to {3} while 3 is in sync but shutting down: wait.
        c.set_state("t", 0, Some(state(1, 1, &[1, 2, 3])));
        c.assignment_written("t", &[(0, vec![3, 1, 2])].into());
        c.set_reassignments([(("t".to_string(), 0), vec![3])].into());
        c.begin_shutdown(3);
        assert!(c.reassign().is_idle());
    }

    #[test]
    fn a_reassignment_of_an_unknown_partition_or_to_repeated_brokers_is_refused() {
        let mut c = controller(&[1, 2]);
        c.set_topic("t", [(0, vec![1])].into(), BTreeMap::new(), [(0, state(1, 0, &[1]))].into());
        c.set_reassignments(
            [
                (("t".to_string(), 5), vec![1]),
                (("u".to_string(), 0), vec![1]),
                (("t".to_string(), 0), vec![2, 2]),
            ]
            .into(),
        );
        let step = c.reassign();
        assert!(step.is_idle());
        assert_eq!(step.done.len(), 3);
        let reasons: Vec<&str> = step.refused.iter().map(|(_, _, r)| r.as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("t-5 does not exist")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("distinct")), "{reasons:?}");
    }

    #[test]
    fn the_election_competes_when_controller_is_free_and_resigns_only_after_seeing_its_own() {
        use ControllerZnode::*;
        assert_eq!(election_step(None, Absent), ElectionStep::Compete);
        assert_eq!(election_step(None, Theirs), ElectionStep::Wait);
        // A read from before our own create: not a loss.
        assert_eq!(election_step(Some(false), Absent), ElectionStep::Wait);
        assert_eq!(election_step(Some(false), Mine), ElectionStep::Held);
        assert_eq!(election_step(Some(true), Mine), ElectionStep::Held);
        assert_eq!(election_step(Some(true), Absent), ElectionStep::Resign);
        assert_eq!(election_step(Some(true), Theirs), ElectionStep::Resign);
    }

    #[test]
    fn a_requested_unclean_election_takes_the_first_live_replica_of_an_offline_partition() {
        let mut c = controller(&[1, 2, 3]);
        c.set_topic("t", [(0, vec![1, 2, 3])].into(), BTreeMap::new(), [(0, state(1, 4, &[1]))].into());
        assert!(
            matches!(c.unclean_election("t", 0), Err(BrokerError::ElectionNotNeeded { .. })),
            "it has a leader"
        );
        // Broker 1 leads with ISR {1}; 1 dies: the partition goes offline (unclean off).
        c.set_brokers([2, 3].iter().map(|id| broker(*id)).collect());
        let offline = apply(&mut c);
        assert_eq!(offline, vec![("t".into(), 0, state(-1, 5, &[1]))]);
        match c.requested_election(ElectionType::Unclean, "t", 0) {
            Ok(Effect::WriteState { state, .. }) => {
                assert_eq!((state.leader, state.leader_epoch, state.isr), (2, 6, vec![2]))
            }
            other => panic!("unclean election: {other:?}"),
        }
        c.set_brokers(Vec::new());
        assert!(matches!(c.unclean_election("t", 0), Err(BrokerError::EligibleLeadersNotAvailable { .. })));
        assert!(matches!(c.unclean_election("t", 7), Err(BrokerError::UnknownTopicOrPartition { .. })));
        assert_eq!(ElectionType::from_code(1), Some(ElectionType::Unclean));
        assert_eq!(ElectionType::from_code(2), None);
    }
}
