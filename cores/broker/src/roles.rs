//! What a broker does with a [`ClusterUpdate`]: whether to take it, and which partitions to
//! start leading, re-epoch or stop. The replica manager (an actor) carries the plan out.
//!
//! Updates are taken in (controller epoch, sequence) order: one from an older epoch is
//! refused (`StaleControllerEpoch`: a replaced controller), one not newer within the epoch
//! is ignored (a late duplicate), so a stale picture can never undo a newer one.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::BrokerError;
use crate::metadata::ClusterUpdate;

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

/// The changes one update asks of a broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePlan {
    /// Partitions to stop leading, and whether to delete their data (topic being deleted).
    pub stop: Vec<(Partition, bool)>,
    /// Partitions led now at a new leader epoch.
    pub new_epoch: Vec<(Partition, i32)>,
    /// Partitions to start leading, at their leader epoch.
    pub start: Vec<(Partition, i32)>,
    /// Topics being deleted (their data goes, led here or not).
    pub deleting: BTreeSet<String>,
}

/// What `broker`, leading `running` (partition → leader epoch), must change to match
/// `update`.
pub fn plan(update: &ClusterUpdate, broker: i32, running: &BTreeMap<Partition, i32>) -> RolePlan {
    let wanted: BTreeMap<Partition, i32> =
        update.led_by(broker).map(|(t, p, s)| ((t.name.clone(), p), s.leader_epoch)).collect();
    let deleting: BTreeSet<String> = update.deleting.iter().cloned().collect();
    let mut out = RolePlan::default();
    for tp in running.keys().filter(|tp| !wanted.contains_key(*tp)) {
        out.stop.push((tp.clone(), deleting.contains(&tp.0)));
    }
    for (tp, epoch) in wanted {
        match running.get(&tp) {
            Some(e) if *e == epoch => {}
            Some(_) => out.new_epoch.push((tp, epoch)),
            None => out.start.push((tp, epoch)),
        }
    }
    out.deleting = deleting;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{PartitionInfo, PartitionState, TopicState};

    fn update(epoch: i32, seq: u64, leaders: &[(&str, i32, i32, i32)], deleting: &[&str]) -> ClusterUpdate {
        let mut topics: BTreeMap<String, TopicState> = BTreeMap::new();
        for (t, p, leader, leader_epoch) in leaders {
            let state = PartitionState {
                leader: *leader,
                leader_epoch: *leader_epoch,
                isr: vec![*leader],
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
                .insert(*p, PartitionInfo { replicas: vec![*leader], state: Some(state) });
        }
        ClusterUpdate {
            controller_id: 1,
            controller_epoch: epoch,
            sequence: seq,
            cluster_id: "c".into(),
            brokers: vec![],
            topics,
            deleting: deleting.iter().map(|s| s.to_string()).collect(),
        }
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
    fn the_plan_starts_re_epochs_and_stops_what_the_update_says() {
        // Step 1: broker 1 leads a-0 (epoch 0) and a-1 (epoch 0), and b-0.
        let running: BTreeMap<Partition, i32> =
            [(("a".into(), 0), 0), (("a".into(), 1), 0), (("b".into(), 0), 3)].into();
        // Step 2: a-0 stays, a-1 gets a new epoch, a-2 is new, b-0 moved to broker 2, c is
        // being deleted (so b-0's data stays: b is not being deleted).
        let u = update(1, 1, &[("a", 0, 1, 0), ("a", 1, 1, 1), ("a", 2, 1, 0), ("b", 0, 2, 4)], &["c"]);
        let p = plan(&u, 1, &running);
        assert_eq!(p.stop, vec![(("b".into(), 0), false)]);
        assert_eq!(p.new_epoch, vec![(("a".into(), 1), 1)]);
        assert_eq!(p.start, vec![(("a".into(), 2), 0)]);
        assert_eq!(p.deleting, ["c".to_string()].into());
    }

    #[test]
    fn a_deleted_topics_partitions_stop_and_lose_their_data() {
        let running: BTreeMap<Partition, i32> = [(("gone".into(), 0), 0)].into();
        let p = plan(&update(1, 2, &[], &["gone"]), 1, &running);
        assert_eq!(p.stop, vec![(("gone".into(), 0), true)]);
    }
}
