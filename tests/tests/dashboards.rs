//! The Grafana dashboards in `deploy/grafana/dashboards/` query only series the processes
//! export: every metric name in every panel's PromQL is on a keeper's or a broker's
//! `/metrics` after ordinary traffic (a produce, a consumer group's commit).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sluice_client::broker::proto::NewTopic;
use sluice_client::broker::{
    Admin, AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
};
use sluice_tests::{http_get, poll_until, BrokerCluster};

/// Metric names in a scrape (histogram series under their base name too).
fn exported(url: &str) -> BTreeSet<String> {
    let (status, body) = http_get(url).expect("scrape");
    assert_eq!(status, 200, "{url}");
    let mut names = BTreeSet::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap_or_default().to_string();
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                names.insert(base.to_string());
            }
        }
        names.insert(name);
    }
    names
}

/// The metric names a PromQL expression reads: identifiers starting `sluice_` (label names,
/// functions and label values are not).
fn queried(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_string = false;
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
            word.clear();
            continue;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
        } else {
            if word.starts_with("sluice_") {
                out.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    out
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/grafana/dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read");
            let json: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            out.push((path.display().to_string(), json));
        }
    }
    out
}

#[test]
fn queried_names_are_found_in_expressions() {
    let q = queried(
        "sum by (group, topic) ((max by (topic, partition) (sluice_broker_high_watermark >= 0)) - on (topic, partition) \
         group_right max by (group) (sluice_group_committed_offset{group=\"sluice_not_a_metric\"}))",
    );
    assert_eq!(
        q.into_iter().collect::<Vec<_>>(),
        vec!["sluice_broker_high_watermark", "sluice_group_committed_offset"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_a_dashboard_queries_is_exported() {
    let all = dashboards();
    assert!(
        all.len() >= 3,
        "the overview, topics-and-groups and keeper dashboards: {:?}",
        all.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    let mut uids = BTreeSet::new();
    for (file, d) in &all {
        assert!(uids.insert(d["uid"].as_str().expect("uid").to_string()), "{file}: duplicate uid");
        let panels = d["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{file}: no panels");
        for p in panels {
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: panel {} has no targets", p["title"]));
            for t in targets {
                let expr = t["expr"].as_str().expect("expr");
                for name in queried(expr) {
                    wanted.insert((name, format!("{file}: {}", p["title"])));
                }
            }
        }
    }
    // A keeper ensemble (its members export the Raft series) and a broker, all with metrics
    // endpoints; some traffic and a group.
    let cluster = BrokerCluster::start_on(
        3,
        1,
        "metrics.port=0\nmetrics.host=127.0.0.1\noffsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=1\ngroup.initial.rebalance.delay.ms=0\n",
        "metricsProvider.httpPort=0\nmetricsProvider.httpHost=127.0.0.1\n",
    );
    let client = ClientConfig::new([cluster.brokers[0].addr.clone()]).tls_files(cluster.client_files());
    let admin = Admin::new(client.clone()).expect("admin");
    let topic = NewTopic::new("shown", 1, 1);
    admin.create_topics(vec![topic], false).await.expect("create");
    let producer = Producer::new(ProducerConfig::new(client.clone())).expect("producer");
    producer.send(ProducerRecord::new("shown", "v")).await.expect("send").await.expect("ack");
    producer.close().await;
    let mut consumer = Consumer::new(
        ConsumerConfig::new(client).group_id("viewers").auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .expect("consumer");
    consumer.subscribe(["shown"]).expect("subscribe");
    while consumer.poll(Duration::from_millis(500)).await.expect("poll").is_empty() {}
    consumer.commit_sync().await.expect("commit");
    let keeper_urls: Vec<String> =
        cluster.keepers.iter().map(|k| k.metrics.clone().expect("keeper metrics")).collect();
    let broker_url =
        format!("http://{}/metrics", cluster.brokers[0].metrics.clone().expect("broker metrics"));
    // Gauges refresh every second: wait until the group's series are there, then compare.
    let found = poll_until(Duration::from_secs(15), || {
        let mut have = exported(&broker_url);
        for url in &keeper_urls {
            have.extend(exported(url));
        }
        let missing: Vec<&(String, String)> = wanted.iter().filter(|(n, _)| !have.contains(n)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{missing:#?}"))
        }
    });
    consumer.close().await.expect("close");
    if let Err(missing) = found {
        panic!("dashboards query series no process exports: {missing}");
    }
    assert!(wanted.len() >= 20, "the dashboards cover the cluster: only {} series", wanted.len());
}
