//! Cluster metadata: what the controller tells every broker ([`ClusterUpdate`]) and what a
//! broker tells clients (the same brokers, topics and partition states).
//!
//! The controller sends the whole picture each time it changes; a broker keeps the newest by
//! controller epoch and derives its own roles from it (the partitions it leads). One message
//! instead of Kafka's LeaderAndIsr + UpdateMetadata + StopReplica trio: with a full picture a
//! lost or reordered update cannot leave a broker with a half-applied view.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A live broker and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// `broker.id`.
    pub id: i32,
    /// Host clients connect to.
    pub host: String,
    /// UDP port of its QUIC listener.
    pub port: u16,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Its Kafka-protocol listeners (`SSL`, `PLAINTEXT`), as advertised.
    pub listeners: Vec<ListenerEndpoint>,
}

/// One of a broker's Kafka-protocol listeners, as advertised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    /// The listener name (`SSL`, `PLAINTEXT`).
    pub name: String,
    /// Host clients connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl BrokerEndpoint {
    /// `host:port`.
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }

    /// Its listener named `name` (compared ignoring case), if it has one.
    pub fn listener(&self, name: &str) -> Option<&ListenerEndpoint> {
        self.listeners.iter().find(|l| l.name.eq_ignore_ascii_case(name))
    }
}

impl ListenerEndpoint {
    /// `host:port`.
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// Who leads a partition and who is in sync: the content of
/// `/brokers/topics/<t>/partitions/<p>/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The leader's broker id, or -1 when the partition is offline.
    pub leader: i32,
    /// Bumped on every leader change; fences requests meant for an older leader.
    pub leader_epoch: i32,
    /// In-sync replicas (the leader first).
    pub isr: Vec<i32>,
    /// The epoch of the controller that wrote it.
    pub controller_epoch: i32,
    /// The state znode's version (for conditional writes).
    pub zk_version: i32,
}

impl PartitionState {
    /// The leader, unless the partition is offline.
    pub fn leader(&self) -> Option<i32> {
        (self.leader >= 0).then_some(self.leader)
    }
}

/// One partition: its assigned replicas and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// Leader and ISR, once the controller has written them.
    pub state: Option<PartitionState>,
}

/// One topic as the controller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    /// The name.
    pub name: String,
    /// Partitions by number.
    pub partitions: BTreeMap<i32, PartitionInfo>,
    /// Per-topic config overrides (`/config/topics/<t>`).
    pub configs: BTreeMap<String, String>,
}

/// The controller's picture of the cluster, sent to every live broker whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterUpdate {
    /// The controller's broker id.
    pub controller_id: i32,
    /// Its epoch (`/controller_epoch`): a broker ignores updates from older epochs.
    pub controller_epoch: i32,
    /// Bumped by the controller for every update it sends within its epoch, so a broker
    /// can drop an update that arrives after a newer one.
    pub sequence: u64,
    /// `/cluster/id`.
    pub cluster_id: String,
    /// Live brokers.
    pub brokers: Vec<BrokerEndpoint>,
    /// Every topic, by name.
    pub topics: BTreeMap<String, TopicState>,
    /// Topics being deleted: brokers stop serving them and delete their data.
    pub deleting: Vec<String>,
    /// The cluster-wide dynamic defaults (`/config/brokers/<default>`, broker keys of
    /// [`crate::topic::DYNAMIC_BROKER_KEYS`]): under every topic's own overrides.
    pub broker_defaults: BTreeMap<String, String>,
    /// Each broker's own dynamic configs (`/config/brokers/<id>`, the same keys): over the
    /// cluster-wide defaults, on that broker only ([`ClusterUpdate::take_own_configs`]).
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// Replicas that live brokers hold on failed log directories, by broker (Kafka's offline
    /// replicas, KIP-112): what [`ClusterUpdate::offline_replicas`] adds to the dead brokers'.
    pub offline_on_live: BTreeMap<i32, BTreeSet<(String, i32)>>,
}

/// How many partitions of `topics` `broker` leads that another live replica could take
/// over — what a controlled shutdown waits for (a partition with no other live replica
/// cannot be handed over; Kafka likewise counts only replicated partitions).
pub fn handovers<'a>(
    topics: impl IntoIterator<Item = &'a TopicState>,
    broker: i32,
    live: impl Fn(i32) -> bool,
) -> usize {
    topics
        .into_iter()
        .flat_map(|t| t.partitions.values())
        .filter(|i| i.state.as_ref().is_some_and(|s| s.leader == broker))
        .filter(|i| i.replicas.iter().any(|r| *r != broker && live(*r)))
        .count()
}

impl ClusterUpdate {
    /// The replicas of `topic`'s `partition` (out of `replicas`) that cannot serve it: on a
    /// broker that is not live, or on a live broker's failed log directory. Metadata's
    /// `offline_replicas`, as Kafka's.
    pub fn offline_replicas(&self, topic: &str, partition: i32, replicas: &[i32]) -> Vec<i32> {
        replicas
            .iter()
            .copied()
            .filter(|r| {
                self.broker(*r).is_none()
                    || self
                        .offline_on_live
                        .get(r)
                        .is_some_and(|on| on.iter().any(|(t, p)| t == topic && *p == partition))
            })
            .collect()
    }

    /// [`handovers`] of `broker` in this picture.
    pub fn handovers(&self, broker: i32) -> usize {
        handovers(self.topics.values(), broker, |id| self.broker(id).is_some())
    }

    /// Whether `self` is newer than `other` (epoch first, then sequence).
    pub fn supersedes(&self, other: &ClusterUpdate) -> bool {
        (self.controller_epoch, self.sequence) > (other.controller_epoch, other.sequence)
    }

    /// The configs `topic` runs with ([`crate::topic::effective_configs`]), if it is known.
    pub fn topic_configs(&self, topic: &str) -> Option<std::borrow::Cow<'_, BTreeMap<String, String>>> {
        self.topics.get(topic).map(|t| crate::topic::effective_configs(&self.broker_defaults, &t.configs))
    }

    /// One config `topic` runs with ([`crate::topic::effective_value`]), if the topic is
    /// known and the config set.
    pub fn topic_config(&self, topic: &str, topic_key: &str) -> Option<&str> {
        let t = self.topics.get(topic)?;
        crate::topic::effective_value(&self.broker_defaults, &t.configs, topic_key)
    }

    /// Makes this picture broker `id`'s: its own dynamic configs replace the cluster-wide
    /// defaults they name (Kafka's order: per-broker, then cluster default, then static), so
    /// everything that reads [`Self::broker_defaults`] on that broker sees them.
    pub fn take_own_configs(&mut self, id: i32) {
        if let Some(own) = self.broker_configs.get(&id) {
            self.broker_defaults.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    /// The broker with `id`, if live.
    pub fn broker(&self, id: i32) -> Option<&BrokerEndpoint> {
        self.brokers.iter().find(|b| b.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(epoch: i32, seq: u64) -> ClusterUpdate {
        ClusterUpdate {
            controller_id: 1,
            controller_epoch: epoch,
            sequence: seq,
            cluster_id: "c".into(),
            brokers: vec![],
            topics: BTreeMap::new(),
            deleting: vec![],
            broker_defaults: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            offline_on_live: BTreeMap::new(),
        }
    }

    #[test]
    fn offline_replicas_are_those_of_dead_brokers_and_those_on_a_live_brokers_failed_log_dir() {
        let mut u = update(1, 1);
        let endpoint =
            |id: i32| BrokerEndpoint { id, host: "h".into(), port: 1, rack: None, listeners: vec![] };
        u.brokers = vec![endpoint(1), endpoint(2)];
        u.offline_on_live = [(2, [("t".to_string(), 0)].into())].into();
        // 3 is dead; 2's copy of t-0 sits on a failed directory, its copy of t-1 does not.
        assert_eq!(u.offline_replicas("t", 0, &[1, 2, 3]), vec![2, 3]);
        assert_eq!(u.offline_replicas("t", 1, &[1, 2, 3]), vec![3]);
        assert_eq!(u.offline_replicas("u", 0, &[1, 2]), Vec::<i32>::new());
    }

    #[test]
    fn a_brokers_own_configs_win_over_the_defaults_on_that_broker_only() {
        let mut u = update(1, 1);
        u.broker_defaults = [("log.retention.ms".to_string(), "1000".to_string())].into();
        u.broker_configs = [(2, [("log.retention.ms".to_string(), "5".to_string())].into())].into();
        let mut on_1 = u.clone();
        on_1.take_own_configs(1);
        assert_eq!(on_1.broker_defaults["log.retention.ms"], "1000");
        u.take_own_configs(2);
        assert_eq!(u.broker_defaults["log.retention.ms"], "5");
    }

    #[test]
    fn a_newer_epoch_supersedes_any_sequence_of_an_older_one() {
        assert!(update(2, 0).supersedes(&update(1, 99)));
        assert!(update(1, 5).supersedes(&update(1, 4)));
        assert!(!update(1, 4).supersedes(&update(1, 4)));
        assert!(!update(1, 100).supersedes(&update(2, 0)));
    }

    #[test]
    fn handovers_count_led_partitions_another_live_replica_could_take() {
        let mut u = update(1, 1);
        let state = |leader| PartitionState {
            leader,
            leader_epoch: 0,
            isr: vec![leader],
            controller_epoch: 1,
            zk_version: 0,
        };
        let mut partitions = BTreeMap::new();
        // 0: led by 1 alone; 1: led by 2; 2: no state; 3: led by 1 with 2 as a replica.
        partitions.insert(0, PartitionInfo { replicas: vec![1], state: Some(state(1)) });
        partitions.insert(1, PartitionInfo { replicas: vec![2], state: Some(state(2)) });
        partitions.insert(2, PartitionInfo { replicas: vec![1], state: None });
        partitions.insert(3, PartitionInfo { replicas: vec![1, 2], state: Some(state(1)) });
        u.topics.insert("t".into(), TopicState { name: "t".into(), partitions, configs: BTreeMap::new() });
        assert_eq!(u.handovers(1), 0, "broker 2 is not live: nobody to hand over to");
        u.brokers.push(BrokerEndpoint {
            id: 2,
            host: "h".into(),
            port: 1,
            rack: None,
            listeners: Vec::new(),
        });
        assert_eq!(u.handovers(1), 1, "only partition 3 has another live replica");
    }
}
