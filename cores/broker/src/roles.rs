//! What a broker does with a [`ClusterUpdate`]: whether to take it, and which role it now
//! holds for each partition it has a replica of — leader (with the ISR and the state's
//! version, which fences its own ISR writes) or follower of a given leader at a given epoch.
//! The replica manager (an actor) carries the plan out, and each partition takes its role
//! by [`step`]: the one role machine, shared by the `Partition` actor and the replication
//! simulation.
//!
//! Updates are taken in (controller epoch, sequence) order: one from an older epoch is
//! refused (`StaleControllerEpoch`: a replaced controller), one not newer within the epoch
//! is ignored (a late duplicate), so a stale picture can never undo a newer one.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::BrokerError;
use crate::metadata::{ClusterUpdate, PartitionState};

/// A partition: topic and number.
pub type Partition = (String, i32);

/// Whether to apply `update` over `current`: `Ok(true)` apply, `Ok(false)` ignore (not
/// newer), `Err` refuse (an older controller epoch).
pub fn accept(current: Option<&ClusterUpdate>, update: &ClusterUpdate) -> Result<bool, BrokerError> {
    let Some(current) = current else { return Ok(true) };
    if update.controller_epoch < current.controller_epoch {
        return Err(BrokerError::StaleControllerEpoch {
            got: update.controller_epoch,
            current: current.controller_epoch,
        });
    }
    Ok(update.supersedes(current))
}

/// The role a broker holds for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It leads, at `state.leader_epoch`, with `state.isr` in sync; `state.zk_version` is
    /// the version its ISR writes are conditional on.
    Leader {
        /// The assigned replicas (the first is preferred).
        replicas: Vec<i32>,
        /// The partition's state as the controller published it.
        state: PartitionState,
    },
    /// It follows `leader` (`None`: the partition is offline) at `leader_epoch`.
    Follower {
        /// Whom to fetch from.
        leader: Option<i32>,
        /// The epoch the leader leads at (fetches carry it; a mismatch is refused).
        leader_epoch: i32,
    },
}

impl Role {
    /// The leader epoch of the role.
    pub fn leader_epoch(&self) -> i32 {
        match self {
            Role::Leader { state, .. } => state.leader_epoch,
            Role::Follower { leader_epoch, .. } => *leader_epoch,
        }
    }
}

/// The roles `broker` holds according to `update`: one per partition that has a state and
/// lists `broker` among its replicas (topics being deleted have none).
pub fn roles_of(update: &ClusterUpdate, broker: i32) -> BTreeMap<Partition, Role> {
    let mut out = BTreeMap::new();
    for topic in update.topics.values().filter(|t| !update.deleting.contains(&t.name)) {
        for (p, info) in &topic.partitions {
            let Some(state) = &info.state else { continue };
            if !info.replicas.contains(&broker) && state.leader != broker {
                continue;
            }
            let role = if state.leader == broker {
                Role::Leader { replicas: info.replicas.clone(), state: state.clone() }
            } else {
                Role::Follower { leader: state.leader(), leader_epoch: state.leader_epoch }
            };
            out.insert((topic.name.clone(), *p), role);
        }
    }
    out
}

/// The changes one update asks of a broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePlan {
    /// Partitions this broker no longer has a replica of, and whether to delete their data:
    /// the topic is being deleted, or the partition's replicas were moved off this broker
    /// (a reassignment's last step).
    pub stop: Vec<(Partition, bool)>,
    /// Partitions whose role is new (not running here yet) or changed: become leader,
    /// follow another leader, take a new epoch or ISR.
    pub assign: Vec<(Partition, Role)>,
    /// Topics being deleted (their data goes, replicated here or not).
    pub deleting: BTreeSet<String>,
}

/// What `broker`, holding `running` roles, must change to match `update`.
pub fn plan(update: &ClusterUpdate, broker: i32, running: &BTreeMap<Partition, Role>) -> RolePlan {
    let wanted = roles_of(update, broker);
    let deleting: BTreeSet<String> = update.deleting.iter().cloned().collect();
    let mut out = RolePlan::default();
    for tp in running.keys().filter(|tp| !wanted.contains_key(*tp)) {
        let moved_away = update
            .topics
            .get(&tp.0)
            .and_then(|t| t.partitions.get(&tp.1))
            .is_some_and(|info| !info.replicas.contains(&broker));
        out.stop.push((tp.clone(), deleting.contains(&tp.0) || moved_away));
    }
    for (tp, role) in wanted {
        if running.get(&tp) != Some(&role) {
            out.assign.push((tp, role));
        }
    }
    out.deleting = deleting;
    out
}

/// What a replica of one partition is doing, as the role machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    /// Nothing yet (just opened, or restarted).
    Idle,
    /// Leading at `epoch`; its ISR is at state version `version` (its own committed ISR
    /// writes included).
    Leading {
        /// The leader epoch.
        epoch: i32,
        /// The state version its ISR is at.
        version: i32,
    },
    /// Following `leader` (`None`: waiting for one) at `epoch`.
    Following {
        /// Whom it fetches from.
        leader: Option<i32>,
        /// The leader epoch.
        epoch: i32,
    },
}

/// What a replica does with a partition state it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Start leading at the state's epoch: a new replica set from the state's ISR (and the
    /// epoch recorded in the log's epoch cache).
    Lead,
    /// Go on leading this epoch with the state's ISR: it is newer than what this leader
    /// knows.
    AdoptIsr,
    /// Go on leading this epoch as it is: the state is not newer than what it knows (an
    /// older state arriving late must not undo an ISR change the keeper has committed).
    KeepLeading,
    /// Follow the state's leader (or wait for one) at its epoch, truncating first.
    Follow,
    /// Already following that leader at that epoch: nothing changes.
    KeepFollowing,
}

/// The role machine: what replica `me`, doing `doing`, does with a state naming `leader`
/// at leader epoch `epoch` and state version `version`.
pub fn step(me: i32, doing: Doing, leader: Option<i32>, epoch: i32, version: i32) -> Step {
    match (leader == Some(me), doing) {
        (true, Doing::Leading { epoch: e, version: v }) if e == epoch => {
            if version > v {
                Step::AdoptIsr
            } else {
                Step::KeepLeading
            }
        }
        (true, _) => Step::Lead,
        (false, Doing::Following { leader: l, epoch: e }) if (l, e) == (leader, epoch) => Step::KeepFollowing,
        (false, _) => Step::Follow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{PartitionInfo, TopicState};

    /// (topic, partition, replicas, leader, leader epoch, isr)
    type Spec<'a> = (&'a str, i32, &'a [i32], i32, i32, &'a [i32]);

    fn update(epoch: i32, seq: u64, parts: &[Spec<'_>], deleting: &[&str]) -> ClusterUpdate {
        let mut topics: BTreeMap<String, TopicState> = BTreeMap::new();
        for (t, p, replicas, leader, leader_epoch, isr) in parts {
            let state = PartitionState {
                leader: *leader,
                leader_epoch: *leader_epoch,
                isr: isr.to_vec(),
                controller_epoch: epoch,
                zk_version: 0,
            };
            topics
                .entry(t.to_string())
                .or_insert_with(|| TopicState {
                    name: t.to_string(),
                    partitions: BTreeMap::new(),
                    configs: BTreeMap::new(),
                })
                .partitions
                .insert(*p, PartitionInfo { replicas: replicas.to_vec(), state: Some(state) });
        }
        ClusterUpdate {
            controller_id: 1,
            controller_epoch: epoch,
            sequence: seq,
            cluster_id: "c".into(),
            brokers: vec![],
            topics,
            deleting: deleting.iter().map(|s| s.to_string()).collect(),
            broker_defaults: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            offline_on_live: BTreeMap::new(),
        }
    }

    fn tp(t: &str, p: i32) -> Partition {
        (t.to_string(), p)
    }

    #[test]
    fn updates_are_taken_in_epoch_and_sequence_order() {
        let current = update(2, 5, &[], &[]);
        assert_eq!(accept(None, &current), Ok(true));
        assert_eq!(accept(Some(&current), &update(2, 6, &[], &[])), Ok(true));
        assert_eq!(accept(Some(&current), &update(2, 5, &[], &[])), Ok(false), "a duplicate is ignored");
        assert_eq!(
            accept(Some(&current), &update(3, 0, &[], &[])),
            Ok(true),
            "a new epoch restarts sequences"
        );
        assert!(matches!(
            accept(Some(&current), &update(1, 99, &[], &[])),
            Err(BrokerError::StaleControllerEpoch { got: 1, current: 2 })
        ));
    }

    #[test]
    fn a_broker_leads_what_it_leads_and_follows_the_rest_of_its_replicas() {
        let u = update(
            1,
            1,
            &[("a", 0, &[1, 2], 1, 0, &[1, 2]), ("a", 1, &[2, 1], 2, 3, &[2]), ("a", 2, &[2, 3], 2, 0, &[2])],
            &[],
        );
        let roles = roles_of(&u, 1);
        assert_eq!(roles.len(), 2, "a-2 has no replica on broker 1");
        assert!(matches!(&roles[&tp("a", 0)], Role::Leader { state, .. } if state.isr == vec![1, 2]));
        assert_eq!(roles[&tp("a", 1)], Role::Follower { leader: Some(2), leader_epoch: 3 });
        let offline = update(1, 2, &[("a", 1, &[2, 1], -1, 4, &[2])], &[]);
        assert_eq!(roles_of(&offline, 1)[&tp("a", 1)], Role::Follower { leader: None, leader_epoch: 4 });
    }

    #[test]
    fn the_plan_assigns_new_and_changed_roles_and_stops_the_rest() {
        // Step 1: broker 1 leads a-0 and follows a-1 (leader 2) and b-0.
        let first = update(
            1,
            1,
            &[
                ("a", 0, &[1, 2], 1, 0, &[1, 2]),
                ("a", 1, &[2, 1], 2, 0, &[2, 1]),
                ("b", 0, &[2, 1], 2, 0, &[2, 1]),
            ],
            &[],
        );
        let p = plan(&first, 1, &BTreeMap::new());
        assert_eq!(p.assign.len(), 3, "everything is new");
        let running = roles_of(&first, 1);
        // Step 2: a-0 unchanged; a-1's leader died and broker 1 now leads it (epoch 1); b-0
        // was reassigned away from broker 1; c is being deleted.
        let second = update(
            1,
            2,
            &[
                ("a", 0, &[1, 2], 1, 0, &[1, 2]),
                ("a", 1, &[2, 1], 1, 1, &[1]),
                ("b", 0, &[2, 3], 2, 1, &[2, 3]),
            ],
            &["c"],
        );
        let p = plan(&second, 1, &running);
        assert_eq!(p.stop, vec![(tp("b", 0), true)], "a replica moved away loses its data");
        assert_eq!(p.assign.len(), 1);
        assert!(
            matches!(&p.assign[0], (t, Role::Leader { state, .. }) if *t == tp("a", 1) && state.leader_epoch == 1)
        );
        assert_eq!(p.deleting, ["c".to_string()].into());
        // Step 3: the same update again changes nothing.
        assert_eq!(
            plan(&second, 1, &roles_of(&second, 1)),
            RolePlan { deleting: ["c".to_string()].into(), ..Default::default() }
        );
    }

    #[test]
    fn a_deleted_topics_partitions_stop_and_lose_their_data() {
        let running: BTreeMap<Partition, Role> =
            [(tp("gone", 0), Role::Follower { leader: Some(2), leader_epoch: 0 })].into();
        let p = plan(&update(1, 2, &[("gone", 0, &[2, 1], 2, 0, &[2, 1])], &["gone"]), 1, &running);
        assert_eq!(p.stop, vec![(tp("gone", 0), true)]);
        assert!(p.assign.is_empty());
    }

    #[test]
    fn the_role_machine_leads_adopts_newer_isrs_only_and_follows_each_new_leader_once() {
        let leading = Doing::Leading { epoch: 4, version: 7 };
        // Step 1: the same epoch, a newer version: adopt its ISR; an older or equal one: keep.
        assert_eq!(step(1, leading, Some(1), 4, 8), Step::AdoptIsr);
        assert_eq!(step(1, leading, Some(1), 4, 7), Step::KeepLeading);
        assert_eq!(step(1, leading, Some(1), 4, 5), Step::KeepLeading);
        // Step 2: a new epoch, even led by the same broker, is a new leadership.
        assert_eq!(step(1, leading, Some(1), 5, 9), Step::Lead);
        assert_eq!(step(1, Doing::Idle, Some(1), 0, 0), Step::Lead);
        assert_eq!(step(1, Doing::Following { leader: Some(2), epoch: 3 }, Some(1), 4, 8), Step::Lead);
        // Step 3: another leader: follow it (a leader losing leadership too), once per epoch.
        assert_eq!(step(1, leading, Some(2), 5, 9), Step::Follow);
        let following = Doing::Following { leader: Some(2), epoch: 5 };
        assert_eq!(step(1, following, Some(2), 5, 10), Step::KeepFollowing);
        assert_eq!(step(1, following, Some(3), 6, 11), Step::Follow);
        // Offline (no leader): wait, once.
        assert_eq!(step(1, following, None, 6, 11), Step::Follow);
        assert_eq!(step(1, Doing::Following { leader: None, epoch: 6 }, None, 6, 12), Step::KeepFollowing);
    }
}
