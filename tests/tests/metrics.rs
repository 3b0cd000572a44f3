//! Every broker's Prometheus endpoint as an operator scrapes it: real processes, real
//! traffic, a SIGKILLed broker. The series the dashboards and alerts rely on exist and move.

use std::time::Duration;

use sluice_client::broker::proto::NewTopic;
use sluice_client::broker::{
    Admin, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
};
use sluice_tests::{http_get, poll_until, BrokerCluster};

const EXTRA: &str = "metrics.port=0\nmetrics.host=127.0.0.1\nzookeeper.session.timeout.ms=4000\n\
                     replica.lag.time.max.ms=2000\noffsets.topic.replication.factor=3\n\
                     offsets.topic.num.partitions=2\ngroup.initial.rebalance.delay.ms=0\n";

/// `(name, labels, value)` of every sample on `http://addr/metrics`.
fn scrape(addr: &str) -> Vec<(String, String, f64)> {
    let (status, body) = http_get(&format!("http://{addr}/metrics")).expect("scrape");
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name.to_string(), labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of `name`'s samples whose labels contain every one of `with` (`key="value"`).
fn sum(samples: &[(String, String, f64)], name: &str, with: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && with.iter().all(|w| l.contains(w)))
        .map(|(_, _, v)| v)
        .sum()
}

/// Every live broker's samples, scraped now.
fn cluster_samples(cluster: &BrokerCluster) -> Vec<(String, String, f64)> {
    cluster
        .brokers
        .iter()
        .filter(|b| b.pid().is_some())
        .flat_map(|b| scrape(b.metrics.as_deref().expect("metrics endpoint")))
        .collect()
}

/// `name` summed over every live broker.
fn cluster_sum(cluster: &BrokerCluster, name: &str, with: &[&str]) -> f64 {
    sum(&cluster_samples(cluster), name, with)
}

/// How many samples of `name` with every label of `with` the live brokers export, -1s
/// (series no longer meant) left out.
fn series_count(cluster: &BrokerCluster, name: &str, with: &[&str]) -> usize {
    cluster_samples(cluster)
        .iter()
        .filter(|(n, l, v)| n == name && *v >= 0.0 && with.iter().all(|w| l.contains(w)))
        .count()
}

/// Produces `n` records `{prefix}-{i}` to `topic`, each acknowledged before the next.
async fn produce(client: &ClientConfig, topic: &str, prefix: &str, n: usize) {
    let producer = Producer::new(ProducerConfig::new(client.clone())).expect("producer");
    for i in 0..n {
        producer
            .send(ProducerRecord::new(topic.to_string(), format!("{prefix}-{i}")))
            .await
            .expect("send")
            .await
            .expect("ack");
    }
    producer.close().await;
}

fn eventually(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let met = poll_until(within, || if ok() { Ok(()) } else { Err(what.to_string()) });
    assert!(met.is_ok(), "not within {within:?}: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_series_exist_and_move_with_traffic_failures_and_groups() {
    let mut cluster = BrokerCluster::start(3, EXTRA);
    let client = ClientConfig::new(cluster.brokers.iter().map(|b| b.addr.clone()))
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(20));
    let admin = Admin::new(client.clone()).expect("admin");
    let topic = NewTopic::new("watched", 3, 3);
    admin.create_topics(vec![topic], false).await.expect("create");
    // --- exactly one active controller; 3 partitions led, 9 replicas hosted
    eventually(Duration::from_secs(10), "one controller, 3 leaders, 9 replicas", || {
        cluster_sum(&cluster, "sluice_controller_active", &[]) == 1.0
            && cluster_sum(&cluster, "sluice_broker_leader_partitions", &[]) == 3.0
            && cluster_sum(&cluster, "sluice_broker_partitions", &[]) == 9.0
    });
    let before = cluster_sum(&cluster, "sluice_broker_bytes_in_total", &["topic=\"watched\""]);
    // --- produce: bytes and messages in grow, Produce requests are counted with latencies
    produce(&client, "watched", "value", 100).await;
    eventually(Duration::from_secs(5), "the high watermarks reach 100 in all", || {
        cluster_sum(&cluster, "sluice_broker_high_watermark", &["topic=\"watched\""]) == 100.0
    });
    let after = cluster_sum(&cluster, "sluice_broker_bytes_in_total", &["topic=\"watched\""]);
    assert!(after > before + 600.0, "bytes in grew from {before} to {after}");
    assert_eq!(cluster_sum(&cluster, "sluice_broker_messages_in_total", &["topic=\"watched\""]), 100.0);
    assert!(cluster_sum(&cluster, "sluice_rpc_requests_total", &["rpc=\"Produce\""]) >= 1.0);
    assert!(cluster_sum(&cluster, "sluice_rpc_request_duration_seconds_count", &["rpc=\"Metadata\""]) >= 1.0);
    assert!(cluster_sum(&cluster, "sluice_broker_log_size_bytes", &["topic=\"watched\""]) > 3.0 * 600.0);
    assert_eq!(cluster_sum(&cluster, "sluice_broker_under_replicated_partitions", &[]), 0.0);
    // --- a group commits: its offsets and member count show on its coordinator
    let mut consumer = Consumer::new(
        ConsumerConfig::new(client.clone())
            .group_id("watchers")
            .auto_offset_reset(sluice_client::broker::AutoOffsetReset::Earliest),
    )
    .expect("consumer");
    consumer.subscribe(["watched"]).expect("subscribe");
    let mut read = 0;
    while read < 100 {
        read += consumer.poll(Duration::from_millis(500)).await.expect("poll").len();
    }
    consumer.commit_sync().await.expect("commit");
    eventually(Duration::from_secs(5), "the group's committed offsets add up to 100", || {
        cluster_sum(&cluster, "sluice_group_committed_offset", &["group=\"watchers\""]) == 100.0
            && cluster_sum(&cluster, "sluice_group_count", &[]) >= 1.0
            && cluster_sum(&cluster, "sluice_group_members", &["group=\"watchers\""]) == 1.0
    });
    consumer.close().await.expect("close");
    // --- the group's lag, measured by its coordinator: 0 on each partition, then what was
    // produced since the commit
    eventually(Duration::from_secs(15), "a lag of 0 on each of the 3 partitions", || {
        series_count(&cluster, "sluice_group_lag", &["group=\"watchers\""]) == 3
            && cluster_sum(&cluster, "sluice_group_lag", &["group=\"watchers\""]) == 0.0
    });
    produce(&client, "watched", "late", 30).await;
    eventually(Duration::from_secs(15), "a lag of the 30 records produced after the commit", || {
        cluster_sum(&cluster, "sluice_group_lag", &["group=\"watchers\""]) == 30.0
    });
    // --- SIGKILL a broker: the survivors report under-replicated partitions; after its
    // restart, none
    cluster.brokers[2].kill();
    eventually(Duration::from_secs(20), "under-replicated partitions after a SIGKILL", || {
        cluster_sum(&cluster, "sluice_broker_under_replicated_partitions", &[]) > 0.0
    });
    assert!(cluster_sum(&cluster, "sluice_broker_isr_changes_total", &["change=\"shrink\""]) >= 1.0);
    cluster.brokers[2].restart();
    eventually(Duration::from_secs(30), "no under-replicated partition after the restart", || {
        cluster_sum(&cluster, "sluice_broker_under_replicated_partitions", &[]) == 0.0
            && cluster_sum(&cluster, "sluice_broker_partitions", &[]) >= 9.0
    });
    assert!(cluster_sum(&cluster, "sluice_broker_isr_changes_total", &["change=\"expand\""]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_ready_together_for_one_broker_go_in_one_produce_request() {
    let cluster = BrokerCluster::start(1, "metrics.port=0\nmetrics.host=127.0.0.1\n");
    let client = ClientConfig::new([cluster.brokers[0].addr.clone()]).tls_files(cluster.client_files());
    let admin = Admin::new(client.clone()).expect("admin");
    let topic = NewTopic::new("together", 3, 1);
    admin.create_topics(vec![topic], false).await.expect("create");
    // Nothing goes before the flush (a long linger); the flush makes the three partitions'
    // batches ready in the same moment.
    let producer =
        Producer::new(ProducerConfig::new(client.clone()).linger(Duration::from_secs(60))).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..30 {
        let record = ProducerRecord::new("together", format!("v{i}")).with_partition(i % 3);
        deliveries.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await;
    let mut offsets = Vec::new();
    for d in deliveries {
        let m = d.await.expect("delivered");
        offsets.push((m.partition, m.offset));
    }
    producer.close().await;
    // Every partition got its 10 records at offsets 0..10, in the order sent.
    for p in 0..3 {
        let got: Vec<i64> = offsets.iter().filter(|(q, _)| *q == p).map(|(_, o)| *o).collect();
        assert_eq!(got, (0..10).collect::<Vec<i64>>(), "partition {p}");
    }
    let addr = cluster.brokers[0].metrics.clone().expect("metrics endpoint");
    let many = sum(&scrape(&addr), "sluice_rpc_requests_total", &["rpc=\"ProduceMany\""]);
    assert!(many >= 1.0, "no ProduceMany request was served: {many}");
}
