//! Replica assignment for new topics, as Kafka's `AdminUtils.assignReplicasToBrokers`.
//!
//! Without racks: partition `p`'s first replica is broker `(p + start) % n` of the sorted
//! broker list, the others follow at a shift that grows every `n` partitions, so leaders and
//! followers both spread evenly. With racks (every broker has one): the broker list is first
//! interleaved by rack (`a1, b1, c1, a2, b2, ...`), and a partition's further replicas skip
//! brokers on racks that already hold one of its replicas until every rack holds one.
//! `start` is Kafka's random start index; the caller picks it (tests pass a fixed one).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::BrokerError;
use crate::metadata::BrokerEndpoint;

/// Assigns `partitions` partitions of `replication_factor` replicas each over `brokers`.
pub fn assign(
    brokers: &[BrokerEndpoint],
    partitions: i32,
    replication_factor: i16,
    start: usize,
) -> Result<BTreeMap<i32, Vec<i32>>, BrokerError> {
    if partitions < 1 {
        return Err(BrokerError::InvalidPartitions { reason: format!("{partitions}: must be at least 1") });
    }
    if replication_factor < 1 {
        return Err(BrokerError::InvalidReplicationFactor {
            reason: format!("{replication_factor}: must be at least 1"),
        });
    }
    let rf = replication_factor as usize;
    if rf > brokers.len() {
        return Err(BrokerError::InvalidReplicationFactor {
            reason: format!(
                "{replication_factor} is larger than the {} live broker(s); start more brokers or lower it",
                brokers.len()
            ),
        });
    }
    let racks_set = brokers.iter().filter(|b| b.rack.is_some()).count();
    if racks_set != 0 && racks_set != brokers.len() {
        return Err(BrokerError::InvalidReplicationFactor {
            reason: "some brokers have broker.rack and some do not; set it on all brokers or none".into(),
        });
    }
    if racks_set == 0 {
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        Ok(rack_unaware(&ids, partitions, rf, start))
    } else {
        Ok(rack_aware(brokers, partitions, rf, start))
    }
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let shift = 1 + (shift + j) % (n - 1);
    (first + shift) % n
}

fn rack_unaware(ids: &[i32], partitions: i32, rf: usize, start: usize) -> BTreeMap<i32, Vec<i32>> {
    let n = ids.len();
    let start = start % n;
    let mut shift = start;
    let mut out = BTreeMap::new();
    for p in 0..partitions as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![ids[first]];
        for j in 0..rf - 1 {
            replicas.push(ids[replica_index(first, shift, j, n)]);
        }
        out.insert(p as i32, replicas);
    }
    out
}

/// Brokers interleaved by rack: the first of each rack (racks in name order), then the
/// second of each, and so on.
fn rack_alternated(brokers: &[BrokerEndpoint]) -> Vec<(i32, String)> {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.clone().unwrap_or_default()).or_default().push(b.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let most = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..most {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(i) {
                out.push((*id, rack.clone()));
            }
        }
    }
    out
}

fn rack_aware(
    brokers: &[BrokerEndpoint],
    partitions: i32,
    rf: usize,
    start: usize,
) -> BTreeMap<i32, Vec<i32>> {
    let list = rack_alternated(brokers);
    let n = list.len();
    let racks = list.iter().map(|(_, r)| r.clone()).collect::<BTreeSet<_>>().len();
    let start = start % n;
    let mut shift = start;
    let mut out = BTreeMap::new();
    for p in 0..partitions as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = vec![list[first].0];
        let mut racks_used: BTreeSet<String> = [list[first].1.clone()].into();
        let mut brokers_used: BTreeSet<i32> = [list[first].0].into();
        let mut k = 0;
        while replicas.len() < rf {
            let (id, rack) = &list[replica_index(first, shift * racks, k, n)];
            k += 1;
            let all_racks_used = racks_used.len() == racks;
            if brokers_used.contains(id) || (!all_racks_used && racks_used.contains(rack)) {
                if k > n * n {
                    break; // cannot happen with rf <= n; a guard against an endless loop
                }
                continue;
            }
            replicas.push(*id);
            racks_used.insert(rack.clone());
            brokers_used.insert(*id);
        }
        out.insert(p as i32, replicas);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<BrokerEndpoint> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| BrokerEndpoint {
                id: i as i32 + 1,
                host: "h".into(),
                port: 1,
                rack: r.map(str::to_string),
                listeners: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn round_robin_spreads_leaders_and_followers_evenly() {
        let a = assign(&brokers(&[None, None, None]), 6, 2, 0).expect("valid");
        let leaders: Vec<i32> = a.values().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        let mut count = BTreeMap::new();
        for r in a.values() {
            assert_eq!(r.len(), 2);
            assert_ne!(r[0], r[1], "replicas are distinct");
            for b in r {
                *count.entry(*b).or_insert(0) += 1;
            }
        }
        assert!(count.values().all(|c| *c == 4), "{count:?}");
    }

    #[test]
    fn replication_factor_above_live_brokers_is_refused_with_advice() {
        let e = assign(&brokers(&[None, None]), 1, 3, 0).expect_err("too many");
        assert!(e.to_string().contains("start more brokers"), "{e}");
        assert!(assign(&brokers(&[None]), 0, 1, 0).is_err());
    }

    #[test]
    fn rack_aware_puts_each_partitions_replicas_on_distinct_racks() {
        let b = brokers(&[Some("a"), Some("a"), Some("b"), Some("b"), Some("c"), Some("c")]);
        let rack_of = |id: i32| b.iter().find(|x| x.id == id).and_then(|x| x.rack.clone());
        for start in 0..6 {
            let a = assign(&b, 12, 3, start).expect("valid");
            for replicas in a.values() {
                let racks: BTreeSet<_> = replicas.iter().map(|id| rack_of(*id)).collect();
                assert_eq!(racks.len(), 3, "start {start}: {replicas:?}");
            }
        }
    }

    #[test]
    fn rack_aware_with_more_replicas_than_racks_uses_every_rack_first() {
        let b = brokers(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        let a = assign(&b, 4, 3, 1).expect("valid");
        for replicas in a.values() {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "{replicas:?}");
        }
    }

    #[test]
    fn mixed_racks_are_refused() {
        assert!(assign(&brokers(&[Some("a"), None]), 1, 1, 0).is_err());
    }
}
