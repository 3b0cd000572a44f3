//! The controller's decisions, as a state machine with no IO.
//!
//! The shell (the controller actor in `sluice-broker`) feeds it what it reads from the
//! keeper — live brokers, topics with their assignments, configs and partition states,
//! topics marked for deletion — and carries out the [`Effect`]s it returns: conditional
//! writes of partition states and the [`ClusterUpdate`] to send to every broker.
//!
//! Rules (Kafka's, ZooKeeper mode):
//! - A partition without a state gets one once a replica is live: the first live replica in
//!   assignment order leads, at leader epoch 0.
//! - A partition whose leader is dead (or that has none) gets a new leader: the first
//!   replica in assignment order that is live *and* in the ISR. The ISR keeps only live
//!   members. With no live ISR member the partition goes offline (leader -1) and keeps its
//!   last ISR, so that a returning ISR member can lead again without losing data — unless
//!   `unclean.leader.election.enable`, when any live replica may lead.
//! - A live leader whose ISR holds dead followers loses them from the ISR.
//! - Every change bumps the leader epoch and is written with the version the controller
//!   last read: a controller that has been replaced (its write fails on the version) cannot
//!   overwrite its successor's decisions.
//!
//! Until followers replicate, a new partition's ISR is its leader alone, so that `acks=all`
//! means what it says (see `docs/architecture.md`).

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::{BrokerEndpoint, ClusterUpdate, PartitionInfo, PartitionState, TopicState};

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

/// The controller's view of the cluster.
#[derive(Debug, Clone)]
pub struct ControllerCore {
    broker_id: i32,
    epoch: i32,
    cluster_id: String,
    sequence: u64,
    unclean_default: bool,
    brokers: BTreeMap<i32, BrokerEndpoint>,
    topics: BTreeMap<String, TopicState>,
    deleting: BTreeSet<String>,
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
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            deleting: BTreeSet::new(),
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

    /// Replaces the set of live brokers.
    pub fn set_brokers(&mut self, brokers: Vec<BrokerEndpoint>) {
        self.brokers = brokers.into_iter().map(|b| (b.id, b)).collect();
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
        match topic.configs.get("unclean.leader.election.enable").map(String::as_str) {
            Some("true") => true,
            Some("false") => false,
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
                if let Some((state, expected_version)) = self.decide(info, unclean) {
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

    fn decide(&self, info: &PartitionInfo, unclean: bool) -> Option<(PartitionState, Option<i32>)> {
        let Some(old) = &info.state else {
            let leader = *info.replicas.iter().find(|r| self.live(**r))?;
            let state = PartitionState {
                leader,
                leader_epoch: 0,
                isr: vec![leader],
                controller_epoch: self.epoch,
                zk_version: 0,
            };
            return Some((state, None));
        };
        let live_isr: Vec<i32> = old.isr.iter().copied().filter(|r| self.live(*r)).collect();
        if old.leader >= 0 && self.live(old.leader) {
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
        let clean = info.replicas.iter().copied().find(|r| live_isr.contains(r));
        let (leader, isr) = match clean {
            Some(l) => {
                let mut isr = vec![l];
                isr.extend(live_isr.iter().copied().filter(|r| *r != l));
                (l, isr)
            }
            None => match info.replicas.iter().copied().find(|r| unclean && self.live(*r)) {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(id: i32) -> BrokerEndpoint {
        BrokerEndpoint { id, host: "h".into(), port: 9092, rack: None }
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
    fn a_new_partition_is_led_by_its_first_live_replica() {
        let mut c = controller(&[2, 3]);
        c.set_topic("t", [(0, vec![1, 2, 3])].into(), BTreeMap::new(), BTreeMap::new());
        let writes = c.elect();
        assert_eq!(
            writes,
            vec![Effect::WriteState {
                topic: "t".into(),
                partition: 0,
                state: state(2, 0, &[2]),
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
}
