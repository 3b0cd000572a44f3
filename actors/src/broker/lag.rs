//! Consumer lag as one Prometheus series, `sluice_group_lag{group, topic, partition}`: how
//! many records of a partition a group has not committed yet (the partition's high
//! watermark minus the group's committed offset, never below 0).
//!
//! The broker that coordinates a group measures it every [`REFRESH`], the way Kafka's lag
//! exporters do it from outside: it asks its coordinators for their committed offsets, then
//! each partition's leader for its high watermark (`ListOffsets` latest, read straight from
//! the partition's published offsets when it is led here). A partition whose leader is
//! unknown or does not answer keeps its last value until the next round. A series whose
//! group or commit is gone here (group deleted, coordination moved to another broker) is set
//! to -1, as the broker's per-partition gauges are, so dashboards filter it (`>= 0`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use sluice_broker_core::group::lag;
use sluice_proto::broker::{BrokerProtocol, ListOffsets, ListOffsetsPartition, LATEST_TIMESTAMP};
use sluice_proto::TopicPartition;
use tracing::debug;

use crate::broker::group_coordinator::{FetchOffsetsMsg, GroupCoordinator};
use crate::broker::replica_manager::Routing;

/// How often a broker measures the lag of the groups it coordinates.
pub const REFRESH: Duration = Duration::from_secs(5);

/// How long a leader has to answer one round's `ListOffsets`.
const ASK_WITHIN: Duration = Duration::from_secs(4);

/// One series: group, topic, partition.
pub type LagKey = (String, String, i32);

/// Measures the lag of `groups` (name, coordinator) against the leaders in `routing`:
/// every committed partition, with `None` where its high watermark could not be learned.
pub async fn measure(
    groups: Vec<(String, Addr<GroupCoordinator>)>,
    routing: Arc<Routing>,
    net: Arc<sluice_net::Client<BrokerProtocol>>,
) -> BTreeMap<LagKey, Option<i64>> {
    let mut committed: BTreeMap<LagKey, i64> = BTreeMap::new();
    for (group, addr) in groups {
        let Ok(offsets) = addr.send(FetchOffsetsMsg(None)).await else { continue };
        for c in offsets.into_iter().filter(|c| c.offset >= 0) {
            committed.insert((group.clone(), c.topic, c.partition), c.offset);
        }
    }
    let wanted: BTreeSet<TopicPartition> =
        committed.keys().map(|(_, t, p)| TopicPartition::new(t.clone(), *p)).collect();
    let high = high_watermarks(&wanted, &routing, &net).await;
    committed
        .into_iter()
        .map(|(key, offset)| {
            let hw = high.get(&TopicPartition::new(key.1.clone(), key.2));
            (key, hw.map(|hw| lag(*hw, offset)))
        })
        .collect()
}

/// The high watermark of each partition in `wanted` that its leader told.
async fn high_watermarks(
    wanted: &BTreeSet<TopicPartition>,
    routing: &Routing,
    net: &sluice_net::Client<BrokerProtocol>,
) -> BTreeMap<TopicPartition, i64> {
    let mut out = BTreeMap::new();
    let mut remote: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
    let Some(update) = &routing.update else { return out };
    for tp in wanted {
        if let Some(offsets) = routing.partitions.get(tp).map(|h| *h.offsets.borrow()) {
            if offsets.leading.is_some() {
                out.insert(tp.clone(), offsets.high_watermark);
                continue;
            }
        }
        let leader = update
            .topics
            .get(&tp.topic)
            .and_then(|t| t.partitions.get(&tp.partition))
            .and_then(|p| p.state.as_ref())
            .and_then(|s| s.leader());
        let Some(endpoint) = leader.and_then(|l| update.brokers.iter().find(|b| b.id == l)) else { continue };
        remote.entry(endpoint.addr()).or_default().push(ListOffsetsPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            timestamp: LATEST_TIMESTAMP,
        });
    }
    for (addr, partitions) in remote {
        match net.call_within(&addr, ListOffsets { partitions }, ASK_WITHIN).await {
            Ok(Ok(listed)) => {
                for l in listed {
                    if let Ok((offset, _)) = l.result {
                        out.insert(TopicPartition::new(l.topic, l.partition), offset);
                    }
                }
            }
            Ok(Err(e)) => debug!(leader = %addr, error = %e, "ListOffsets for lag refused"),
            Err(e) => debug!(leader = %addr, error = %e, "ListOffsets for lag failed"),
        }
    }
    out
}

/// Sets the gauges `now` measured (leaving those it could not measure), and -1 for the
/// series of `before` that `now` lacks; returns the series set now (to pass as `before`
/// next time).
pub fn publish(before: &BTreeSet<LagKey>, now: &BTreeMap<LagKey, Option<i64>>) -> BTreeSet<LagKey> {
    let set = |(group, topic, partition): &LagKey, value: f64| {
        let labels =
            [("group", group.clone()), ("topic", topic.clone()), ("partition", partition.to_string())];
        metrics::gauge!("sluice_group_lag", &labels).set(value);
    };
    for (key, lag) in now {
        if let Some(lag) = lag {
            set(key, *lag as f64);
        }
    }
    for gone in before.iter().filter(|k| !now.contains_key(*k)) {
        set(gone, -1.0);
    }
    now.keys().cloned().collect()
}
