//! The broker's state as Prometheus gauges, refreshed every second from the routing table
//! (Kafka's `ReplicaManager` and `KafkaController` gauges, under Sluice's names):
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `sluice_broker_partitions` | | partitions with a replica here (Kafka's PartitionCount) |
//! | `sluice_broker_leader_partitions` | | partitions led here (LeaderCount) |
//! | `sluice_broker_under_replicated_partitions` | | led here with fewer in-sync replicas than replicas |
//! | `sluice_broker_under_min_isr_partitions` | | led here with fewer in-sync replicas than `min.insync.replicas` |
//! | `sluice_controller_active` | | 1 on the controller, else 0 (ActiveControllerCount) |
//! | `sluice_controller_offline_partitions` | | on the controller: partitions without a leader |
//! | `sluice_broker_log_size_bytes` | topic, partition | bytes in the segments of each replica here |
//! | `sluice_broker_log_end_offset` | topic, partition | each led partition's log end offset |
//! | `sluice_broker_high_watermark` | topic, partition | each led partition's high watermark |
//! | `sluice_broker_log_start_offset` | topic, partition | each led partition's first offset |
//!
//! A partition that leaves this broker keeps its last per-partition values (the metrics
//! facade does not drop series); its gauges are set to -1 so dashboards can filter them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_proto::TopicPartition;

use crate::config::BrokerConfig;
use sluice_actors::broker::replica_manager::{current, SharedRouting};

/// Refreshes the gauges every second until the runtime stops.
pub fn spawn(config: Arc<BrokerConfig>, routing: SharedRouting, is_controller: Arc<AtomicBool>) {
    // Rare events' counters exist from the start, at 0.
    metrics::counter!("sluice_controller_unclean_leader_elections_total").increment(0);
    for change in ["shrink", "expand"] {
        metrics::counter!("sluice_broker_isr_changes_total", "change" => change).increment(0);
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let (mut hosted, mut led) = (HashSet::new(), HashSet::new());
        loop {
            every.tick().await;
            refresh(&config, &routing, &is_controller, &mut hosted, &mut led);
        }
    });
}

fn refresh(
    config: &BrokerConfig,
    routing: &SharedRouting,
    is_controller: &AtomicBool,
    hosted_before: &mut HashSet<TopicPartition>,
    led_before: &mut HashSet<TopicPartition>,
) {
    let routing = current(routing);
    let (mut leaders, mut under, mut under_min) = (0u64, 0u64, 0u64);
    let (mut hosted_now, mut led_now) = (HashSet::new(), HashSet::new());
    for (tp, hosted) in &routing.partitions {
        let o = *hosted.offsets.borrow();
        let labels = [("topic", tp.topic.clone()), ("partition", tp.partition.to_string())];
        metrics::gauge!("sluice_broker_log_size_bytes", &labels).set(o.size_bytes as f64);
        if o.leading.is_some() {
            leaders += 1;
            // The topic's counters exist from its first led partition on (at 0), so a rate
            // or a dashboard finds them before the first byte.
            let topic = [("topic", tp.topic.clone())];
            for name in [
                "sluice_broker_bytes_in_total",
                "sluice_broker_bytes_out_total",
                "sluice_broker_messages_in_total",
                "sluice_broker_duplicate_batches_total",
            ] {
                metrics::counter!(name, &topic).increment(0);
            }
            let topic = routing.update.as_ref().and_then(|u| u.topics.get(&tp.topic));
            let replicas =
                topic.and_then(|t| t.partitions.get(&tp.partition)).map_or(0, |p| p.replicas.len());
            if o.isr < replicas {
                under += 1;
            }
            let set = routing.update.as_ref().and_then(|u| u.topic_config(&tp.topic, "min.insync.replicas"));
            let min = config.min_insync_replicas_of(set);
            if (o.isr as i64) < i64::from(min) {
                under_min += 1;
            }
            metrics::gauge!("sluice_broker_log_end_offset", &labels).set(o.log_end_offset as f64);
            metrics::gauge!("sluice_broker_high_watermark", &labels).set(o.high_watermark as f64);
            metrics::gauge!("sluice_broker_log_start_offset", &labels).set(o.log_start_offset as f64);
            led_now.insert(tp.clone());
        }
        hosted_now.insert(tp.clone());
    }
    for gone in led_before.difference(&led_now) {
        forget_led(gone);
    }
    for gone in hosted_before.difference(&hosted_now) {
        let labels = [("topic", gone.topic.clone()), ("partition", gone.partition.to_string())];
        metrics::gauge!("sluice_broker_log_size_bytes", &labels).set(-1.0);
    }
    *hosted_before = hosted_now;
    *led_before = led_now;
    metrics::gauge!("sluice_broker_partitions").set(routing.partitions.len() as f64);
    metrics::gauge!("sluice_broker_leader_partitions").set(leaders as f64);
    metrics::gauge!("sluice_broker_under_replicated_partitions").set(under as f64);
    metrics::gauge!("sluice_broker_under_min_isr_partitions").set(under_min as f64);
    let active = is_controller.load(Ordering::Relaxed);
    metrics::gauge!("sluice_controller_active").set(if active { 1.0 } else { 0.0 });
    let offline = match (&routing.update, active) {
        (Some(u), true) => u
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.state.as_ref().and_then(|s| s.leader()).is_none())
            .count(),
        _ => 0,
    };
    metrics::gauge!("sluice_controller_offline_partitions").set(offline as f64);
}

/// A partition no longer led here: its leader gauges go to -1.
fn forget_led(tp: &TopicPartition) {
    let labels = [("topic", tp.topic.clone()), ("partition", tp.partition.to_string())];
    metrics::gauge!("sluice_broker_log_end_offset", &labels).set(-1.0);
    metrics::gauge!("sluice_broker_high_watermark", &labels).set(-1.0);
    metrics::gauge!("sluice_broker_log_start_offset", &labels).set(-1.0);
}
