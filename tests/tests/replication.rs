//! Replication as a user meets it: real `sluice broker` processes (3 per cluster) on a
//! 3-server keeper ensemble, real QUIC with mTLS, real logs, SIGKILL / SIGSTOP / SIGTERM for
//! faults. Reference: Kafka's
//! replication design (leader epochs, ISR, high watermark, `acks=all`, controlled shutdown,
//! preferred leaders).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_broker_core::metadata::PartitionState;
use sluice_broker_core::znodes;
use sluice_client::broker::proto::*;
use sluice_client::broker::{
    Acks, Admin, AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, Producer,
    ProducerConfig, ProducerRecord,
};
use sluice_client::keeper::{KeeperClient, KeeperClientOptions};
use sluice_net::{Client, ClientOptions};
use sluice_tests::{wait_for, BrokerCluster, Tmpfs};

/// Fast failure detection for tests: a 4 s keeper session, followers evicted after 2 s.
const FAST: &str =
    "zookeeper.session.timeout.ms=4000\nreplica.lag.time.max.ms=2000\nreplica.fetch.backoff.ms=100\n\
                    controlled.shutdown.retry.backoff.ms=200\n";

/// Three brokers with `extra` config lines on a 3-server keeper ensemble.
fn start(extra: &str) -> BrokerCluster {
    BrokerCluster::start_on(3, 3, extra, "")
}

async fn keeper(cluster: &BrokerCluster) -> KeeperClient {
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(10), ..Default::default() };
    let tls = cluster.pki.client("observer");
    KeeperClient::connect(&cluster.zookeeper_connect(), &tls, opts).await.expect("keeper").0
}

async fn state(k: &KeeperClient, topic: &str, partition: i32) -> Option<PartitionState> {
    let (data, stat) = k.get_data(&znodes::state_path(topic, partition), false).await.ok()?;
    znodes::decode_state(topic, partition, &data, stat.version).ok()
}

fn client(cluster: &BrokerCluster) -> ClientConfig {
    ClientConfig::new(cluster.brokers.iter().map(|b| b.addr.clone()))
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(20))
        .retry_backoff(Duration::from_millis(50))
}

fn raw_client(cluster: &BrokerCluster) -> Client<BrokerProtocol> {
    Client::new(&cluster.pki.client("raw"), ClientOptions::default()).expect("client")
}

async fn create(cluster: &BrokerCluster, name: &str, assignment: &[&[i32]], configs: &[(&str, &str)]) {
    let admin = Admin::new(client(cluster)).expect("admin");
    let t = NewTopic {
        name: name.into(),
        partitions: None,
        replication_factor: None,
        assignment: Some(assignment.iter().enumerate().map(|(p, r)| (p as i32, r.to_vec())).collect()),
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let r = admin.create_topics(vec![t], false).await.expect("create");
    assert!(r.iter().all(|(_, r)| r.is_ok()), "creating {name}: {r:?}");
}

/// Waits until `topic`-`partition`'s state satisfies `cond`; returns it.
async fn wait_state(
    k: &KeeperClient,
    topic: &str,
    partition: i32,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&PartitionState) -> bool,
) -> PartitionState {
    let deadline = Instant::now() + timeout;
    loop {
        let s = state(k, topic, partition).await;
        if let Some(s) = s.as_ref().filter(|s| cond(s)) {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition}: waited {timeout:?} for {what}; state: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of counter `name` on a Prometheus endpoint (0 if absent).
async fn scrape(addr: &str, name: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("metrics endpoint");
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("response");
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends the numbers `values` to `topic` one at a time, each acknowledged before the next,
/// and records them in `acked`.
async fn send_each(producer: &Producer, topic: &str, values: std::ops::Range<u64>, acked: &mut Vec<u64>) {
    for v in values {
        producer
            .send(ProducerRecord::new(topic, v.to_string()))
            .await
            .expect("send")
            .await
            .expect("delivered");
        acked.push(v);
    }
}

fn text(b: &Option<Bytes>) -> String {
    String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
}

/// Reads `topic`'s partitions from the beginning until `n` records or 60 s.
async fn consume_all(cluster: &BrokerCluster, topic: &str, partitions: i32, n: usize) -> Vec<ConsumerRecord> {
    let config = ConsumerConfig::new(client(cluster)).auto_offset_reset(AutoOffsetReset::Earliest);
    let mut consumer = Consumer::new(config).expect("consumer");
    consumer.assign((0..partitions).map(|p| (topic, p)));
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n && Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(300)).await.expect("poll"));
    }
    out
}

/// Checks a partition's records against what the producer was told: every acknowledged
/// value is there, the values' first appearances keep the order they were sent in, and
/// offsets are consecutive. Returns how many records are duplicates.
fn check_partition(records: &[&ConsumerRecord], acked: &[u64]) -> usize {
    let mut seen: HashMap<u64, i64> = HashMap::new();
    let mut last_first = None;
    let mut duplicates = 0;
    let first = records.first().map_or(0, |r| r.offset);
    for (expected_offset, r) in (first..).zip(records) {
        assert_eq!(r.offset, expected_offset, "offsets are consecutive");
        // Other records (written with acks=1 by the test itself) only take their offset.
        let Ok(v) = text(&r.value).parse::<u64>() else { continue };
        if seen.insert(v, r.offset).is_some() {
            duplicates += 1;
            continue;
        }
        if let Some(prev) = last_first {
            assert!(v > prev, "value {v} first appears after {prev}: out of order");
        }
        last_first = Some(v);
    }
    for v in acked {
        assert!(seen.contains_key(v), "acknowledged value {v} is missing");
    }
    duplicates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_survives_ten_leader_kills_with_every_acknowledged_record_exactly_once() {
    let mut cluster = start(&format!("{FAST}min.insync.replicas=2\n"));
    let k = keeper(&cluster).await;
    create(&cluster, "ledger", &[&[1, 2, 3]], &[]).await;
    wait_state(&k, "ledger", 0, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3).await;
    // A killed broker answers nothing (no reset over QUIC from a dead process): requests in
    // flight to it fail after request.timeout.ms, here 5 s, and are retried on the new leader.
    let producer = Producer::new(
        ProducerConfig::new(client(&cluster).request_timeout(Duration::from_secs(5)))
            .acks(Acks::All)
            .linger(Duration::from_millis(1))
            .delivery_timeout(Duration::from_secs(60)),
    )
    .expect("producer");
    let mut acked = Vec::new();
    let mut next = 0u64;
    for kill in 0..10 {
        let s = wait_state(&k, "ledger", 0, Duration::from_secs(30), "a leader and an ISR of 2+", |s| {
            s.leader > 0 && s.isr.len() >= 2
        })
        .await;
        // Produce while the leader is killed part-way.
        let mut pending = Vec::new();
        for i in 0..400 {
            if i == 200 {
                cluster.brokers[(s.leader - 1) as usize].kill();
            }
            let d = producer.send(ProducerRecord::new("ledger", next.to_string())).await.expect("send");
            pending.push((next, d));
            next += 1;
        }
        let started = Instant::now();
        for (v, d) in pending {
            match d.await {
                Ok(_) => acked.push(v),
                Err(e) => panic!("kill {kill}: value {v} failed: {e}"),
            }
        }
        eprintln!("kill {kill}: leader {} killed; 400 sends settled {:?} after", s.leader, started.elapsed());
        // The killed broker comes back and catches up before the next round.
        cluster.brokers[(s.leader - 1) as usize].restart();
        wait_state(&k, "ledger", 0, Duration::from_secs(30), "the restarted broker back in the ISR", |st| {
            st.isr.contains(&s.leader)
        })
        .await;
    }
    producer.close().await;
    let records = consume_all(&cluster, "ledger", 1, acked.len()).await;
    let refs: Vec<&ConsumerRecord> = records.iter().collect();
    let duplicates = check_partition(&refs, &acked);
    eprintln!("{} acknowledged, {} read back, {duplicates} duplicates", acked.len(), records.len());
    assert_eq!(acked.len(), 4000);
    // The producer is idempotent (acks=all): a batch resent after its answer was lost with
    // the leader is recognised by the new leader, which replicated the producer's sequences.
    assert_eq!(duplicates, 0, "every acknowledged record exactly once");
    assert_eq!(records.len(), 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_follower_leaves_the_isr_and_rejoins_after_sigcont() {
    // A long session, so the follower's eviction is the leader's lag timer, not an expiry.
    let mut cluster = BrokerCluster::start_on(
        3,
        3,
        "zookeeper.session.timeout.ms=30000\nreplica.lag.time.max.ms=2000\n",
        "maxSessionTimeout=60000\n",
    );
    let k = keeper(&cluster).await;
    create(&cluster, "lag", &[&[1, 2, 3]], &[]).await;
    let s = wait_state(&k, "lag", 0, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3).await;
    let follower = *s.isr.iter().find(|r| **r != s.leader).expect("a follower");
    let pid = cluster.brokers[(follower - 1) as usize].pid().expect("running");
    // --- SIGSTOP: the follower stops fetching; the leader evicts it after the lag window
    sluice_tests::signal(pid, "STOP");
    let frozen = Instant::now();
    let shrunk =
        wait_state(&k, "lag", 0, Duration::from_secs(15), "the frozen follower out of the ISR", |st| {
            !st.isr.contains(&follower)
        })
        .await;
    let took = frozen.elapsed();
    eprintln!("evicted after {took:?}: {shrunk:?}");
    assert!(took >= Duration::from_millis(1500), "evicted before the lag window: {took:?}");
    assert_eq!(shrunk.leader, s.leader, "the leader wrote the change; no election");
    assert_eq!(shrunk.leader_epoch, s.leader_epoch, "an ISR change is not a new epoch");
    let (_, stat) = k.get_data(&znodes::broker_path(follower), false).await.expect("still registered");
    assert_ne!(stat.ephemeral_owner, 0, "the frozen broker's session is alive: this was the lag timer");
    // Records produced meanwhile are committed without it.
    let net = raw_client(&cluster);
    let leader_addr = cluster.brokers[(s.leader - 1) as usize].addr.clone();
    let produce = Produce {
        topic: "lag".into(),
        partition: 0,
        acks: -1,
        timeout_ms: 5000,
        records: one_record("while frozen", None),
        retry: false,
    };
    net.call(&leader_addr, produce).await.expect("call").expect("acks=all with 2 in sync");
    // --- SIGCONT: it fetches, catches up and is taken back
    sluice_tests::signal(pid, "CONT");
    let back = wait_state(&k, "lag", 0, Duration::from_secs(15), "the follower back in the ISR", |st| {
        st.isr.contains(&follower)
    })
    .await;
    assert_eq!(back.leader, s.leader);
    cluster.brokers[(follower - 1) as usize].kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_of_three_brokers_down_acks_all_is_refused_and_nothing_acknowledged_is_lost() {
    let mut cluster = start(&format!("{FAST}min.insync.replicas=2\n"));
    let k = keeper(&cluster).await;
    create(&cluster, "quorum", &[&[1, 2, 3]], &[]).await;
    wait_state(&k, "quorum", 0, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3 && s.leader == 1)
        .await;
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::All)).expect("producer");
    let mut acked = Vec::new();
    send_each(&producer, "quorum", 0..100, &mut acked).await;
    // --- the two followers die: the ISR shrinks to the leader alone
    cluster.brokers[1].kill();
    cluster.brokers[2].kill();
    wait_state(&k, "quorum", 0, Duration::from_secs(20), "ISR of the leader alone", |s| s.isr == vec![1])
        .await;
    let net = raw_client(&cluster);
    let one = Produce {
        topic: "quorum".into(),
        partition: 0,
        acks: -1,
        timeout_ms: 2000,
        records: one_record("refused", None),
        retry: false,
    };
    let refused = net.call(&cluster.brokers[0].addr, one.clone()).await.expect("call");
    match refused {
        Err(BrokerError::NotEnoughReplicas { isr: 1, min: 2, .. }) => {}
        other => panic!("expected NotEnoughReplicas, got {other:?}"),
    }
    // acks=1 still works (and is not counted as acknowledged by acks=all).
    let leader_only = Produce { acks: 1, ..one.clone() };
    let landed = net.call(&cluster.brokers[0].addr, leader_only).await.expect("call").expect("acks=1");
    assert_eq!(landed.base_offset, 100, "the refused acks=all batch was not appended");
    // --- they return and catch up; acks=all works again and nothing acknowledged is lost
    cluster.brokers[1].restart();
    cluster.brokers[2].restart();
    wait_state(&k, "quorum", 0, Duration::from_secs(30), "ISR of 3 again", |s| s.isr.len() == 3).await;
    send_each(&producer, "quorum", 100..150, &mut acked).await;
    producer.close().await;
    // Every replica holds the same records: read from each one after making it leader is
    // beyond this test; the consumer reads the leader, which holds all of them.
    let records = consume_all(&cluster, "quorum", 1, 151).await;
    let all: Vec<&ConsumerRecord> = records.iter().collect();
    assert_eq!(check_partition(&all, &acked), 0);
    assert!(records.iter().any(|r| text(&r.value) == "refused"), "the acks=1 copy is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_election_off_keeps_the_partition_offline_and_on_elects_the_stale_replica() {
    let mut cluster = start(&format!("{FAST}metrics.port=0\nmetrics.host=127.0.0.1\n"));
    let k = keeper(&cluster).await;
    create(&cluster, "careful", &[&[1, 2]], &[]).await;
    create(&cluster, "reckless", &[&[1, 2]], &[("unclean.leader.election.enable", "true")]).await;
    create(&cluster, "asked", &[&[1, 2]], &[]).await;
    for t in ["careful", "reckless", "asked"] {
        wait_state(&k, t, 0, Duration::from_secs(20), "ISR [1, 2]", |s| s.isr.len() == 2 && s.leader == 1)
            .await;
    }
    // --- broker 2 dies: it leaves the ISRs; broker 1 takes more records alone
    cluster.brokers[1].kill();
    for t in ["careful", "reckless", "asked"] {
        wait_state(&k, t, 0, Duration::from_secs(20), "ISR [1]", |s| s.isr == vec![1]).await;
    }
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::Leader)).expect("producer");
    for t in ["careful", "reckless", "asked"] {
        producer.send(ProducerRecord::new(t, "only on 1")).await.expect("send").await.expect("delivered");
    }
    producer.close().await;
    // --- broker 1 dies, broker 2 returns: only a stale replica lives
    cluster.brokers[0].kill();
    cluster.brokers[1].restart();
    let reckless =
        wait_state(&k, "reckless", 0, Duration::from_secs(20), "broker 2 elected", |s| s.leader == 2).await;
    assert_eq!(reckless.isr, vec![2]);
    // The election that may lose records is counted (on the controller that made it).
    let mut unclean = 0.0;
    for b in cluster.brokers.iter().filter(|b| b.pid().is_some()) {
        let addr = b.metrics.clone().expect("metrics endpoint");
        unclean += scrape(&addr, "sluice_controller_unclean_leader_elections_total").await;
    }
    assert_eq!(unclean, 1.0, "one unclean election counted");
    let careful = state(&k, "careful", 0).await.expect("state");
    assert_eq!(careful.leader, -1, "unclean election is off: the partition stays offline: {careful:?}");
    assert_eq!(careful.isr, vec![1], "it keeps its last ISR so broker 1 can lead it again");
    // --- an unclean election asked for (kafka-leader-election.sh) elects the stale replica
    let elect = || {
        sluice_tests::run_sluice(
            &cluster.bootstrap(),
            &cluster.client_files(),
            &["leader-election", "--election-type", "unclean", "--topic", "asked", "--partition", "0"],
            "",
        )
    };
    let ran = elect();
    ran.ok("leader-election --election-type unclean");
    assert!(
        ran.stdout.contains("Successfully completed leader election (UNCLEAN) for partitions asked-0"),
        "{}",
        ran.stdout
    );
    let asked =
        wait_state(&k, "asked", 0, Duration::from_secs(20), "broker 2 elected", |s| s.leader == 2).await;
    assert_eq!(asked.isr, vec![2]);
    let again = elect();
    again.ok("a second unclean election");
    assert!(
        again.stdout.contains("Valid replica already elected for partitions asked-0"),
        "{}",
        again.stdout
    );
    // --- broker 1 returns: it leads "careful" again, with the record only it had
    cluster.brokers[0].restart();
    wait_state(&k, "careful", 0, Duration::from_secs(20), "broker 1 leading again", |s| s.leader == 1).await;
    let records = consume_all(&cluster, "careful", 1, 1).await;
    assert_eq!(records.iter().map(|r| text(&r.value)).collect::<Vec<_>>(), vec!["only on 1".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_leader_moves_its_leaderships_first_and_no_delivery_fails() {
    let mut cluster = start(&format!("{FAST}min.insync.replicas=2\n"));
    let k = keeper(&cluster).await;
    let assignment: Vec<&[i32]> =
        vec![&[1, 2, 3], &[1, 3, 2], &[2, 1, 3], &[1, 2, 3], &[3, 1, 2], &[1, 3, 2]];
    create(&cluster, "moving", &assignment, &[]).await;
    for p in 0..6 {
        wait_state(&k, "moving", p, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3).await;
    }
    let led_by_1: Vec<i32> = {
        let mut v = Vec::new();
        for p in 0..6 {
            if state(&k, "moving", p).await.is_some_and(|s| s.leader == 1) {
                v.push(p);
            }
        }
        v
    };
    assert_eq!(led_by_1.len(), 4, "broker 1 leads the partitions it is preferred for");
    // A long connection setup timeout: a producer that tried to reconnect to the stopping
    // broker (it refuses handshakes, then answers none) would wait it out, far past the
    // bound below, instead of following the new leaders.
    let setup = Duration::from_secs(60);
    let producer = Producer::new(
        ProducerConfig::new(client(&cluster).connection_setup_timeout(setup))
            .acks(Acks::All)
            .linger(Duration::from_millis(1)),
    )
    .expect("producer");
    // A consumer reads along, with the same long setup timeout: a fetch sent to the stopping
    // broker on stale metadata must not hold its polls until that timeout either.
    let mut consumer = Consumer::new(
        ConsumerConfig::new(client(&cluster).connection_setup_timeout(setup))
            .auto_offset_reset(AutoOffsetReset::Earliest),
    )
    .expect("consumer");
    consumer.assign((0..6).map(|p| ("moving", p)));
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        let deadline = Instant::now() + setup * 2;
        while got < 3000 && Instant::now() < deadline {
            got += consumer.poll(Duration::from_millis(200)).await.expect("poll").len();
        }
        (got, Instant::now())
    });
    let mut pending = Vec::new();
    let mut terminated = None;
    for i in 0..3000u64 {
        if i == 1000 {
            let broker = &mut cluster.brokers[0];
            let pid = broker.pid().expect("running");
            sluice_tests::signal(pid, "TERM");
            terminated = Some(Instant::now());
        }
        let r = ProducerRecord::new("moving", i.to_string()).with_partition((i % 6) as i32);
        pending.push(producer.send(r).await.expect("send"));
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for (i, d) in pending.into_iter().enumerate() {
        if let Err(e) = d.await {
            panic!("record {i} failed across the controlled shutdown: {e}");
        }
    }
    let took = terminated.expect("terminated").elapsed();
    assert!(
        took < setup / 3,
        "the deliveries took {took:?} after SIGTERM: the producer waited on the stopped broker"
    );
    producer.close().await;
    let (got, done) = reader.await.expect("reader");
    assert!(got >= 3000, "the consumer read {got} of 3000 records");
    // Within the QUIC idle timeout (10 s) too: a fetch left waiting on the stopped broker's
    // connection would only end there.
    let read_in = done - terminated.expect("terminated");
    assert!(
        read_in < Duration::from_secs(10),
        "the consumer read everything {read_in:?} after SIGTERM: it waited on the stopped broker"
    );
    // The broker left after handing over: its log says so and every partition it led has
    // a new leader among the others.
    assert!(
        wait_for(Duration::from_secs(20), || async {
            std::fs::read_to_string(&cluster.brokers[0].log).is_ok_and(|l| l.contains("broker stopped"))
        })
        .await
    );
    let log = std::fs::read_to_string(&cluster.brokers[0].log).expect("log");
    assert!(log.contains("controlled shutdown done"), "{log}");
    for p in led_by_1 {
        let s = state(&k, "moving", p).await.expect("state");
        assert!(s.leader == 2 || s.leader == 3, "partition {p}: {s:?}");
        assert!(!s.isr.contains(&1), "partition {p}: the stopped broker left the ISR: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_broker_gets_its_preferred_leaderships_back() {
    let mut cluster = start(&format!(
        "{FAST}leader.imbalance.check.interval.seconds=1\nleader.imbalance.per.broker.percentage=10\n"
    ));
    let k = keeper(&cluster).await;
    create(&cluster, "home", &[&[2, 1, 3], &[2, 3, 1], &[1, 2, 3]], &[]).await;
    for p in 0..3 {
        wait_state(&k, "home", p, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3).await;
    }
    // --- broker 2 dies: its partitions move away
    cluster.brokers[1].kill();
    for p in 0..2 {
        wait_state(&k, "home", p, Duration::from_secs(20), "a new leader", |s| s.leader > 0 && s.leader != 2)
            .await;
    }
    // --- it returns, catches up, and the controller's imbalance check moves them back
    cluster.brokers[1].restart();
    for p in 0..2 {
        let s =
            wait_state(&k, "home", p, Duration::from_secs(30), "broker 2 leading again", |s| s.leader == 2)
                .await;
        assert!(s.isr.len() == 3, "{s:?}");
    }
    let other = state(&k, "home", 2).await.expect("state");
    assert_eq!(other.leader, 1, "a partition on its preferred leader does not move");
}

/// One record in a batch, stamped for an idempotent producer `(id, sequence)` if given.
fn one_record(value: &str, producer: Option<(i64, i32)>) -> Bytes {
    let mut header = sluice_log::BatchHeader::new(sluice_log::Compression::None, 0, 0);
    if let Some((id, sequence)) = producer {
        header.producer_id = id;
        header.producer_epoch = 0;
        header.base_sequence = sequence;
    }
    let record = sluice_log::Record {
        offset_delta: 0,
        timestamp_delta: 0,
        key: None,
        value: Some(Bytes::from(value.to_string())),
        headers: vec![],
    };
    Bytes::from(sluice_log::RecordBatch { header, records: vec![record] }.encode())
}

/// One record stamped for an idempotent producer.
fn stamped(value: &str, producer_id: i64, sequence: i32) -> Bytes {
    one_record(value, Some((producer_id, sequence)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_idempotent_batch_is_written_once_even_by_a_new_leader() {
    let mut cluster = start(&format!("{FAST}min.insync.replicas=2\n"));
    let k = keeper(&cluster).await;
    create(&cluster, "once", &[&[1, 2, 3]], &[]).await;
    wait_state(&k, "once", 0, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3).await;
    let net = raw_client(&cluster);
    // --- a producer id from any broker; ids are unique across brokers (blocks in the keeper)
    let id = net.call(&cluster.brokers[1].addr, InitProducerId {}).await.expect("call").expect("an id");
    let other = net.call(&cluster.brokers[2].addr, InitProducerId {}).await.expect("call").expect("an id");
    assert_ne!(id.producer_id, other.producer_id);
    let produce = |records: Bytes| Produce {
        topic: "once".into(),
        partition: 0,
        acks: -1,
        timeout_ms: 5000,
        records,
        retry: false,
    };
    let addrs: Vec<String> = cluster.brokers.iter().map(|b| b.addr.clone()).collect();
    let leader = |n: i32| addrs[(n - 1) as usize].clone();
    // --- sequence 0, then the same batch again (its answer "lost"): one copy, same offset
    let first =
        net.call(&leader(1), produce(stamped("a", id.producer_id, 0))).await.expect("call").expect("ok");
    let again =
        net.call(&leader(1), produce(stamped("a", id.producer_id, 0))).await.expect("call").expect("ok");
    assert_eq!((first.base_offset, again.base_offset), (0, 0), "a duplicate gets the original offset");
    let next =
        net.call(&leader(1), produce(stamped("b", id.producer_id, 1))).await.expect("call").expect("ok");
    assert_eq!(next.base_offset, 1, "the duplicate took no offset");
    // --- a gap in the sequence is refused (retriable: the missing batch may be on its way)
    let gap = net.call(&leader(1), produce(stamped("z", id.producer_id, 5))).await.expect("call");
    assert!(matches!(gap, Err(BrokerError::OutOfOrderSequence { .. })), "{gap:?}");
    // --- the leader dies; its successor learned the producer's sequences by replicating
    cluster.brokers[0].kill();
    let s = wait_state(&k, "once", 0, Duration::from_secs(20), "a new leader", |s| s.leader > 1).await;
    let resent = wait_for(Duration::from_secs(20), || async {
        matches!(
            net.call(&leader(s.leader), produce(stamped("b", id.producer_id, 1))).await,
            Ok(Ok(ProduceResponse { base_offset: 1, .. }))
        )
    })
    .await;
    assert!(resent, "the new leader recognises the resend of sequence 1 as already written at offset 1");
    let c = net
        .call(&leader(s.leader), produce(stamped("c", id.producer_id, 2)))
        .await
        .expect("call")
        .expect("ok");
    assert_eq!(c.base_offset, 2);
    let records = consume_all(&cluster, "once", 1, 3).await;
    let values: Vec<String> = records.iter().map(|r| text(&r.value)).collect();
    assert_eq!(values, vec!["a", "b", "c"], "every batch exactly once");
}

/// A follower dies while an `acks=all` produce waits for it. The controller drops it from the
/// ISR at a new leader epoch and keeps the leader (Kafka's controller does the same), and the
/// produce completes. It used to fail with `NotLeaderForPartition` across that bump, which
/// tells librdkafka the records were not persisted while they were in the log; after its next
/// epoch bump an idempotent librdkafka producer wrote them again (a duplicate seen in
/// `kafka_door::idempotent_librdkafka_producers_lose_and_repeat_nothing_when_the_leader_is_killed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_all_produce_waiting_on_a_dead_follower_completes_once_the_controller_drops_it() {
    // Only the controller drops the dead follower (after its 4 s session), not the leader's lag
    // timer: that one changes the ISR without a new epoch.
    let mut cluster = start(
        "zookeeper.session.timeout.ms=4000\nreplica.lag.time.max.ms=60000\nreplica.fetch.backoff.ms=100\n\
         min.insync.replicas=2\n",
    );
    let k = keeper(&cluster).await;
    create(&cluster, "bump", &[&[1, 2, 3]], &[]).await;
    let before = wait_state(&k, "bump", 0, Duration::from_secs(20), "broker 1 leading an ISR of 3", |s| {
        s.leader == 1 && s.isr.len() == 3
    })
    .await;
    let opts = ClientOptions { request_timeout: Duration::from_secs(60), ..ClientOptions::default() };
    let net = Client::<BrokerProtocol>::new(&cluster.pki.client("raw"), opts).expect("client");
    let leader = cluster.brokers[0].addr.clone();
    cluster.brokers[2].kill();
    let produce = Produce {
        topic: "bump".into(),
        partition: 0,
        acks: -1,
        timeout_ms: 40_000,
        records: one_record("x", None),
        retry: false,
    };
    let answer = net.call(&leader, produce).await.expect("call");
    let after = state(&k, "bump", 0).await.expect("state");
    assert_eq!(
        (after.leader, after.isr.as_slice()),
        (1, &[1, 2][..]),
        "the dead follower left the ISR and the leader stayed: {after:?}"
    );
    assert!(
        after.leader_epoch > before.leader_epoch,
        "the controller bumped the epoch: {before:?} -> {after:?}"
    );
    let answer = answer.unwrap_or_else(|e| {
        panic!(
            "the produce waiting across the epoch bump must complete, not fail: {e}\n{}",
            cluster.log_tails(30)
        )
    });
    assert_eq!(answer.base_offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_see_only_what_every_in_sync_replica_has() {
    // A long session, so only the lag timer takes the frozen follower out of the ISR.
    let cluster = BrokerCluster::start_on(
        3,
        3,
        "zookeeper.session.timeout.ms=30000\nreplica.lag.time.max.ms=3000\n",
        "maxSessionTimeout=60000\n",
    );
    let k = keeper(&cluster).await;
    create(&cluster, "visible", &[&[1, 2, 3]], &[]).await;
    wait_state(&k, "visible", 0, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3 && s.leader == 1)
        .await;
    let net = raw_client(&cluster);
    let leader = cluster.brokers[0].addr.clone();
    let produce = |value: &str| Produce {
        topic: "visible".into(),
        partition: 0,
        acks: 1,
        timeout_ms: 5000,
        records: one_record(value, None),
        retry: false,
    };
    let fetch = || Fetch {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition {
            topic: "visible".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
        }],
    };
    // --- replicated everywhere: visible
    net.call(&leader, produce("first")).await.expect("call").expect("acks=1");
    let committed = wait_for(Duration::from_secs(10), || async {
        matches!(net.call(&leader, fetch()).await, Ok(Ok(f)) if f.partitions[0].high_watermark == 1)
    })
    .await;
    assert!(committed, "the first record reaches every replica");
    // --- follower 3 frozen: a new record is on the leader (acks=1) but not committed
    let pid = cluster.brokers[2].pid().expect("running");
    sluice_tests::signal(pid, "STOP");
    let landed = net.call(&leader, produce("second")).await.expect("call").expect("acks=1");
    assert_eq!(landed.base_offset, 1);
    let f = net.call(&leader, fetch()).await.expect("call").expect("fetch");
    assert_eq!(f.partitions[0].high_watermark, 1, "the high watermark waits for the frozen ISR member");
    let seen: Vec<Option<Bytes>> = sluice_log::batch::batches(&f.partitions[0].records)
        .flat_map(|b| b.expect("batch").records(1 << 20).expect("records"))
        .map(|r| r.value)
        .collect();
    assert_eq!(
        seen,
        vec![Some(Bytes::from_static(b"first"))],
        "a consumer reads only below the high watermark"
    );
    let latest = ListOffsets {
        partitions: vec![ListOffsetsPartition {
            topic: "visible".into(),
            partition: 0,
            timestamp: LATEST_TIMESTAMP,
        }],
    };
    let listed = net.call(&leader, latest.clone()).await.expect("call").expect("list");
    assert_eq!(listed[0].result, Ok((1, -1)), "latest is the high watermark, not the log end");
    // --- the lag timer takes it out of the ISR; then the record is committed and visible
    wait_state(&k, "visible", 0, Duration::from_secs(15), "the frozen follower out of the ISR", |s| {
        !s.isr.contains(&3)
    })
    .await;
    let visible = wait_for(Duration::from_secs(10), || async {
        matches!(net.call(&leader, fetch()).await, Ok(Ok(f)) if f.partitions[0].high_watermark == 2)
    })
    .await;
    assert!(
        visible,
        "with the ISR shrunk, the leader and follower 2 have everything: the high watermark moves"
    );
    sluice_tests::signal(pid, "CONT");
}

/// The log start offset of `topic`-`partition` in `log_dir`'s `log-start-offset-checkpoint`.
fn checkpointed_start(log_dir: &std::path::Path, topic: &str, partition: i32) -> Option<i64> {
    let text = std::fs::read_to_string(log_dir.join("log-start-offset-checkpoint")).ok()?;
    text.lines().skip(2).find_map(|l| {
        let mut f = l.split(' ');
        (f.next()? == topic && f.next()? == partition.to_string()).then_some(())?;
        f.next()?.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_on_every_replica_and_it_survives_a_leader_kill() {
    let mut cluster = start(&format!("{FAST}log.retention.check.interval.ms=300\n"));
    let k = keeper(&cluster).await;
    // Small segments, so that the deletion removes whole segment files too.
    create(&cluster, "trim", &[&[1, 2, 3], &[2, 3, 1]], &[("segment.bytes", "1000")]).await;
    for p in 0..2 {
        wait_state(&k, "trim", p, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3).await;
    }
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::All)).expect("producer");
    for v in 0..100u64 {
        producer
            .send(ProducerRecord::new("trim", v.to_string()).with_partition(0))
            .await
            .expect("send")
            .await
            .expect("delivered");
    }

    // --- kafka-delete-records.sh's file and output; an offset past the high watermark is
    // refused for its partition and the exit status says so
    let file = cluster.dir.path().join("offsets.json");
    std::fs::write(
        &file,
        r#"{"partitions": [{"topic": "trim", "partition": 0, "offset": 40}, {"topic": "trim", "partition": 1, "offset": 5}], "version": 1}"#,
    )
    .expect("write offsets");
    let out = std::process::Command::new(sluice_tests::sluice_bin())
        .args(["delete-records", "--bootstrap-server", &cluster.bootstrap()])
        .args(sluice_tests::tls_args(&cluster.client_files()))
        .arg("--offset-json-file")
        .arg(&file)
        .output()
        .expect("run sluice delete-records");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "partition 1 has no offset 5, so the run fails: {stdout}");
    assert!(
        stdout.starts_with("Executing records delete operation\nRecords delete operation completed:\n"),
        "{stdout}"
    );
    assert!(stdout.contains("partition: trim-0\tlow_watermark: 40\n"), "{stdout}");
    assert!(stdout.contains("partition: trim-1\terror: ") && stdout.contains("out of range"), "{stdout}");

    // --- every replica's log start follows, kept in its checkpoint file, and the segment
    // files wholly below it are gone
    for b in &cluster.brokers {
        let dir = b.log_dir.clone();
        sluice_tests::poll_until(Duration::from_secs(20), || match checkpointed_start(&dir, "trim", 0) {
            Some(40) => Ok(()),
            other => Err(format!("broker {}: trim-0 checkpointed at {other:?}", b.id)),
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(20)));
        let first = dir.join("trim-0").join(format!("{:020}.log", 0));
        assert!(
            !first.exists(),
            "broker {}: {} is below the log start and should be gone",
            b.id,
            first.display()
        );
    }
    let read = consume_all(&cluster, "trim", 1, 60).await;
    assert_eq!(
        read.first().map(|r| r.offset),
        Some(40),
        "reading from the beginning starts at the new start"
    );
    assert_eq!(read.len(), 60);
    // kafka-get-offsets.sh's lines agree: the log start and the end of each partition.
    let offsets = |extra: &[&str]| {
        let out = std::process::Command::new(sluice_tests::sluice_bin())
            .args(["get-offsets", "--bootstrap-server", &cluster.bootstrap(), "--topic", "trim"])
            .args(sluice_tests::tls_args(&cluster.client_files()))
            .args(extra)
            .output()
            .expect("run sluice get-offsets");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(offsets(&["--time", "-2"]), "trim:0:40\ntrim:1:0\n");
    assert_eq!(offsets(&[]), "trim:0:100\ntrim:1:0\n");
    assert_eq!(offsets(&["--time", "latest", "--partitions", "0"]), "trim:0:100\n");
    assert_eq!(offsets(&["--time", "4102444800000"]), "trim:0:\ntrim:1:\n", "no record is that new");

    // --- the leader dies: the new leader starts where the old one did
    cluster.brokers[0].kill();
    let s = wait_state(&k, "trim", 0, Duration::from_secs(20), "a new leader", |s| s.leader > 1).await;
    let consumer = Consumer::new(ConsumerConfig::new(client(&cluster))).expect("consumer");
    let starts = consumer.beginning_offsets([("trim", 0)]).await.expect("beginning offsets");
    assert_eq!(
        starts.get(&sluice_client::broker::TopicPartition::new("trim", 0)),
        Some(&40),
        "leader {} after the kill",
        s.leader
    );
    // --- and the killed broker, restarted, still starts there (its checkpoint)
    cluster.brokers[0].restart();
    wait_state(&k, "trim", 0, Duration::from_secs(30), "broker 1 back in the ISR", |s| s.isr.contains(&1))
        .await;
    assert_eq!(checkpointed_start(&cluster.brokers[0].log_dir, "trim", 0), Some(40));
}

/// Runs `sluice <args>` against the cluster; (success, stdout, stderr).
fn tool(cluster: &BrokerCluster, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(sluice_tests::sluice_bin())
        .arg(args[0])
        .args(["--bootstrap-server", &cluster.bootstrap()])
        .args(sluice_tests::tls_args(&cluster.client_files()))
        .args(&args[1..])
        .output()
        .expect("run sluice");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_moves_leadership_back_as_asked_and_log_dirs_lists_the_partitions() {
    let mut cluster = start(&format!("{FAST}auto.leader.rebalance.enable=false\n"));
    let k = keeper(&cluster).await;
    create(&cluster, "home", &[&[2, 1, 3]], &[]).await;
    wait_state(&k, "home", 0, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3).await;
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::All)).expect("producer");
    let mut acked = Vec::new();
    send_each(&producer, "home", 0..10, &mut acked).await;
    // --- broker 2 goes and comes back; without the controller's rebalancing, 1 keeps leading
    cluster.brokers[1].kill();
    wait_state(&k, "home", 0, Duration::from_secs(20), "a new leader", |s| s.leader > 0 && s.leader != 2)
        .await;
    cluster.brokers[1].restart();
    let s =
        wait_state(&k, "home", 0, Duration::from_secs(30), "broker 2 in sync", |s| s.isr.contains(&2)).await;
    assert_ne!(s.leader, 2, "no automatic rebalance here: {s:?}");
    // --- kafka-leader-election.sh's command and lines
    let (ok, out, err) = tool(
        &cluster,
        &["leader-election", "--election-type", "preferred", "--topic", "home", "--partition", "0"],
    );
    assert!(ok, "{out}\n{err}");
    assert_eq!(out, "Successfully completed leader election (PREFERRED) for partitions home-0\n");
    wait_state(&k, "home", 0, Duration::from_secs(20), "broker 2 leading", |s| s.leader == 2).await;
    let (ok, out, _) =
        tool(&cluster, &["leader-election", "--election-type", "preferred", "--all-topic-partitions"]);
    assert!(ok, "{out}");
    assert!(out.contains("Valid replica already elected for partitions") && out.contains("home-0"), "{out}");
    // An unclean election of a partition that has a live leader has nothing to do.
    let (ok, out, err) = tool(
        &cluster,
        &["leader-election", "--election-type", "unclean", "--topic", "home", "--partition", "0"],
    );
    assert!(ok && out.contains("Valid replica already elected for partitions home-0"), "{out}\n{err}");
    // --- kafka-log-dirs.sh: broker 1's directory holds home-0, with its bytes
    let (ok, out, err) =
        tool(&cluster, &["log-dirs", "--describe", "--broker-list", "1", "--topic-list", "home"]);
    assert!(ok, "{out}\n{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Querying brokers for log directories information"));
    assert_eq!(lines.next(), Some("Received log directory information from brokers 1"));
    let json: serde_json::Value = serde_json::from_str(lines.next().expect("json")).expect("Kafka's JSON");
    let dirs = &json["brokers"][0]["logDirs"];
    assert_eq!(json["brokers"][0]["broker"], 1);
    assert_eq!(dirs[0]["logDir"], cluster.brokers[0].log_dir.display().to_string());
    let home = &dirs[0]["partitions"][0];
    assert_eq!(home["partition"], "home-0", "{json}");
    assert!(home["size"].as_u64().is_some_and(|n| n > 0), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_raised_live_refuses_acks_all_with_a_replica_down_and_lowered_admits_it() {
    let mut cluster = start(FAST);
    let k = keeper(&cluster).await;
    create(&cluster, "live-isr", &[&[1, 2, 3]], &[]).await;
    wait_state(&k, "live-isr", 0, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3 && s.leader == 1)
        .await;
    cluster.brokers[2].kill();
    wait_state(&k, "live-isr", 0, Duration::from_secs(20), "ISR without broker 3", |s| s.isr == vec![1, 2])
        .await;
    let net = raw_client(&cluster);
    let leader = cluster.brokers[0].addr.clone();
    let produce = |value: &str| Produce {
        topic: "live-isr".into(),
        partition: 0,
        acks: -1,
        timeout_ms: 2000,
        records: one_record(value, None),
        retry: false,
    };
    net.call(&leader, produce("min 1"))
        .await
        .expect("call")
        .expect("acks=all with the default min.insync.replicas");
    // --- raised live (kafka-configs.sh's flags): the running leader refuses acks=all
    let alter = |flag: &str, value: &str| {
        sluice_tests::run_sluice(
            &cluster.bootstrap(),
            &cluster.client_files(),
            &["configs", "--alter", "--entity-type", "topics", "--entity-name", "live-isr", flag, value],
            "",
        )
        .ok("configs --alter");
    };
    alter("--add-config", "min.insync.replicas=3");
    let refused = wait_for(Duration::from_secs(10), || async {
        matches!(
            net.call(&leader, produce("min 3")).await,
            Ok(Err(BrokerError::NotEnoughReplicas { isr: 2, min: 3, .. }))
        )
    })
    .await;
    assert!(refused, "acks=all with 2 in sync was not refused within 10 s of min.insync.replicas=3");
    // --- back to the default, without a restart either
    alter("--delete-config", "min.insync.replicas");
    let admitted = wait_for(Duration::from_secs(10), || async {
        matches!(net.call(&leader, produce("min 1 again")).await, Ok(Ok(_)))
    })
    .await;
    assert!(admitted, "acks=all was not admitted again within 10 s of deleting the override");
    // --- the same through the cluster-wide default (no topic override): refused, then admitted
    let default = |flag: &str, value: &str| {
        sluice_tests::run_sluice(
            &cluster.bootstrap(),
            &cluster.client_files(),
            &["configs", "--alter", "--entity-type", "brokers", "--entity-default", flag, value],
            "",
        )
        .ok("configs --alter --entity-default");
    };
    default("--add-config", "min.insync.replicas=3");
    let refused = wait_for(Duration::from_secs(10), || async {
        matches!(
            net.call(&leader, produce("default 3")).await,
            Ok(Err(BrokerError::NotEnoughReplicas { isr: 2, min: 3, .. }))
        )
    })
    .await;
    assert!(refused, "the cluster-wide min.insync.replicas=3 did not reach the leader within 10 s");
    default("--delete-config", "min.insync.replicas");
    let admitted = wait_for(Duration::from_secs(10), || async {
        matches!(net.call(&leader, produce("default gone")).await, Ok(Ok(_)))
    })
    .await;
    assert!(admitted, "acks=all was not admitted again within 10 s of deleting the default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_disk_fills_stops_and_the_other_replicas_take_over_losing_no_acknowledged_record() {
    let mut cluster = start(&format!("{FAST}min.insync.replicas=2\n"));
    // Broker 1's log directory on a 6 MB filesystem, with what it already held.
    let b1 = &mut cluster.brokers[0];
    b1.kill();
    let _small = Tmpfs::take_over(&b1.log_dir, "6m");
    cluster.brokers[0].restart();
    cluster.wait_until_every_broker_sees_all(Duration::from_secs(30));
    let k = keeper(&cluster).await;
    create(&cluster, "full", &[&[1, 2, 3]], &[]).await;
    wait_state(&k, "full", 0, Duration::from_secs(20), "ISR of 3 led by 1", |s| {
        s.isr.len() == 3 && s.leader == 1
    })
    .await;
    // --- 12 MB of acks=all records: twice what broker 1's disk holds
    let producer = Producer::new(
        ProducerConfig::new(client(&cluster)).acks(Acks::All).delivery_timeout(Duration::from_secs(60)),
    )
    .expect("producer");
    let pad = Bytes::from(vec![b'k'; 1000]);
    let (mut acked, mut failed) = (Vec::new(), Vec::new());
    for chunk in (0..12_000u64).collect::<Vec<_>>().chunks(500) {
        let mut pending = Vec::new();
        for &v in chunk {
            let record = ProducerRecord::new("full", v.to_string()).with_key(pad.clone());
            pending.push((v, producer.send(record).await.expect("send")));
        }
        for (v, delivery) in pending {
            match delivery.await {
                Ok(_) => acked.push(v),
                Err(e) => failed.push((v, e.to_string())),
            }
        }
    }
    producer.close().await;
    // --- broker 1 stopped on its own, saying why; the others lead and took every record
    let status = cluster.brokers[0].exited();
    let log = std::fs::read_to_string(&cluster.brokers[0].log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| !s.success()),
        "broker 1 stopped with a failure status: {status:?}\n{log}"
    );
    assert!(log.contains("a log's files failed"), "its log says why:\n{log}");
    assert!(failed.is_empty(), "{} records were not delivered, e.g. {:?}", failed.len(), failed.first());
    let state = wait_state(&k, "full", 0, Duration::from_secs(20), "led by 2 or 3", |s| {
        s.leader == 2 || s.leader == 3
    })
    .await;
    assert!(!state.isr.contains(&1), "{state:?}");
    let records = consume_all(&cluster, "full", 1, acked.len()).await;
    let all: Vec<&ConsumerRecord> = records.iter().collect();
    assert_eq!(check_partition(&all, &acked), 0, "no duplicates");
    assert_eq!(acked.len(), 12_000);
}

/// A reassignment file (Kafka's JSON) in `dir`.
fn reassignment_file(dir: &std::path::Path, name: &str, moves: &[(&str, i32, &[i32])]) -> String {
    let partitions: Vec<String> = moves
        .iter()
        .map(|(t, p, r)| format!(r#"{{"topic":"{t}","partition":{p},"replicas":{r:?}}}"#))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, format!(r#"{{"version":1,"partitions":[{}]}}"#, partitions.join(",")))
        .expect("write reassignment file");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignment_moves_replicas_with_their_data_under_an_acks_all_producer_and_deletes_the_old_ones() {
    let cluster = BrokerCluster::start_on(1, 4, FAST, "");
    let k = keeper(&cluster).await;
    create(&cluster, "moving", &[&[1, 2, 3], &[2, 3, 1]], &[]).await;
    for p in 0..2 {
        wait_state(&k, "moving", p, Duration::from_secs(20), "ISR of 3", |s| s.isr.len() == 3).await;
    }
    // --- an acks=all producer runs throughout; it keeps every acknowledged (partition, value)
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::All)).expect("producer");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (stop, count) = (stop.clone(), count.clone());
        tokio::spawn(async move {
            let mut acked: Vec<(i32, u64)> = Vec::new();
            let mut v = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = producer.send(ProducerRecord::new("moving", v.to_string())).await.expect("send");
                // A record may fail while leadership moves; only acknowledged ones count.
                if let Ok(md) = sent.await {
                    acked.push((md.partition, v));
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                v += 1;
            }
            producer.close().await;
            acked
        })
    };
    let written = |n: usize| {
        let count = count.clone();
        move || {
            let count = count.clone();
            async move { count.load(std::sync::atomic::Ordering::Relaxed) >= n }
        }
    };
    assert!(wait_for(Duration::from_secs(30), written(500)).await, "the producer wrote 500 records");
    // --- --generate proposes a placement on the brokers given, changing nothing
    let dir = tempfile::tempdir().expect("tempdir");
    let topics = dir.path().join("topics.json");
    std::fs::write(&topics, r#"{"version":1,"topics":[{"topic":"moving"}]}"#).expect("write");
    let (ok, out, err) = tool(
        &cluster,
        &[
            "reassign-partitions",
            "--generate",
            "--topics-to-move-json-file",
            &topics.display().to_string(),
            "--broker-list",
            "2,3,4",
        ],
    );
    assert!(ok, "{out}\n{err}");
    let proposed = out.split("Proposed partition reassignment configuration\n").nth(1).expect(&out);
    let proposed = znodes::decode_reassignment("proposed", proposed.trim().as_bytes())
        .expect("the proposal is Kafka's JSON");
    assert_eq!(proposed.partitions.len(), 2);
    assert!(proposed.partitions.iter().all(|m| m.replicas.len() == 3 && !m.replicas.contains(&1)), "{out}");
    assert!(out.starts_with("Current partition replica assignment\n"), "{out}");
    // --- a file naming a partition that does not exist is refused, and nothing moves
    let bad = reassignment_file(dir.path(), "bad.json", &[("moving", 7, &[2, 3, 4])]);
    let (ok, out, err) =
        tool(&cluster, &["reassign-partitions", "--execute", "--reassignment-json-file", &bad]);
    assert!(!ok && err.contains("moving-7 does not exist"), "{out}\n{err}");
    // --- --execute moves both partitions off broker 1
    let plan =
        reassignment_file(dir.path(), "plan.json", &[("moving", 0, &[2, 3, 4]), ("moving", 1, &[3, 4, 2])]);
    let (ok, out, err) =
        tool(&cluster, &["reassign-partitions", "--execute", "--reassignment-json-file", &plan]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Save this to use as the --reassignment-json-file option during rollback"), "{out}");
    assert!(out.contains("Successfully started partition reassignments for moving-0,moving-1"), "{out}");
    assert!(out.contains(r#""replicas":[1,2,3]"#), "the rollback file holds the old assignment: {out}");
    // --- --verify until both are complete
    let mut last = String::new();
    let done = wait_for(Duration::from_secs(60), || {
        let (ok, out, err) =
            tool(&cluster, &["reassign-partitions", "--verify", "--reassignment-json-file", &plan]);
        assert!(ok, "{out}\n{err}");
        last = out.clone();
        async move { out.matches("is completed.").count() == 2 }
    })
    .await;
    assert!(done, "the moves completed within 60 s; last --verify:\n{last}");
    assert!(last.starts_with("Status of partition reassignment:\n"), "{last}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.await.expect("producer task");
    // --- the ISRs are the targets, led from them; --list has nothing left
    for (p, target) in [(0, [2, 3, 4]), (1, [3, 4, 2])] {
        let s = wait_state(&k, "moving", p, Duration::from_secs(20), "ISR = target", |s| {
            let mut isr = s.isr.clone();
            isr.sort_unstable();
            isr == vec![2, 3, 4]
        })
        .await;
        assert!(target.contains(&s.leader), "moving-{p}: leader {} is a target replica", s.leader);
    }
    let (ok, out, _) = tool(&cluster, &["reassign-partitions", "--list"]);
    assert!(ok && out.contains("No partition reassignments found."), "{out}");
    // --- broker 1's copies are deleted; broker 4 holds both
    let gone = wait_for(Duration::from_secs(20), || async {
        (0..2).all(|p| !cluster.brokers[0].log_dir.join(format!("moving-{p}")).exists())
    })
    .await;
    assert!(gone, "broker 1's moving-0 and moving-1 directories were deleted");
    for p in 0..2 {
        assert!(cluster.brokers[3].log_dir.join(format!("moving-{p}")).exists(), "broker 4 holds moving-{p}");
    }
    // --- no acknowledged record is lost
    let total = acked.len();
    let records = consume_all(&cluster, "moving", 2, total).await;
    for p in 0..2 {
        let mine: Vec<&ConsumerRecord> = records.iter().filter(|r| r.partition == p).collect();
        let want: Vec<u64> = acked.iter().filter(|(ap, _)| *ap == p).map(|(_, v)| *v).collect();
        let values: std::collections::HashSet<u64> =
            mine.iter().filter_map(|r| text(&r.value).parse().ok()).collect();
        let lost: Vec<&u64> = want.iter().filter(|v| !values.contains(v)).collect();
        assert!(lost.is_empty(), "moving-{p}: acknowledged records lost: {lost:?}");
    }
    assert!(total >= 500, "the producer kept writing ({total} acknowledged)");
    println!("{total} records acknowledged during the move; last --verify:\n{last}");
}

/// Bytes in `dir`'s segment files (`*.log`).
fn segment_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_reassignment_replicates_at_the_rate_and_verify_removes_the_throttle() {
    // Small fetches, so one fetch overdraws the rate by little.
    let cluster = BrokerCluster::start_on(1, 3, &format!("{FAST}replica.fetch.max.bytes=65536\n"), "");
    let k = keeper(&cluster).await;
    create(&cluster, "slow", &[&[1]], &[]).await;
    wait_state(&k, "slow", 0, Duration::from_secs(20), "a leader", |s| s.leader == 1).await;
    // --- 3 MB on broker 1
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::Leader)).expect("producer");
    let value = "x".repeat(8 * 1024);
    let mut pending = Vec::new();
    for _ in 0..384 {
        pending.push(producer.send(ProducerRecord::new("slow", value.clone())).await.expect("send"));
    }
    for p in pending {
        p.await.expect("delivered");
    }
    producer.close().await;
    // --- moved to broker 2 at 200 kB/s
    let rate = 200_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = reassignment_file(dir.path(), "plan.json", &[("slow", 0, &[2])]);
    let started = Instant::now();
    let (ok, out, err) = tool(
        &cluster,
        &[
            "reassign-partitions",
            "--execute",
            "--reassignment-json-file",
            &plan,
            "--throttle",
            &rate.to_string(),
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("The inter-broker throttle limit was set to {rate} B/s")), "{out}");
    // Broker 2's copy grows, never faster than the rate allows: one second's burst, the
    // elapsed time's worth and one fetch's overdraft.
    let copy = cluster.brokers[1].log_dir.join("slow-0");
    let mut samples = Vec::new();
    let grew = wait_for(Duration::from_secs(20), || {
        let size = segment_bytes(&copy);
        let elapsed = started.elapsed().as_secs_f64();
        samples.push((elapsed, size));
        let bound = rate as f64 * (elapsed + 1.0) + 65_536.0 + 16_384.0;
        assert!(
            (size as f64) <= bound,
            "{size} bytes after {elapsed:.1} s at {rate} B/s; samples: {samples:?}"
        );
        async move { size >= 600_000 }
    })
    .await;
    assert!(grew, "the throttled copy made progress: {samples:?}");
    let (ok, out, _) =
        tool(&cluster, &["reassign-partitions", "--verify", "--reassignment-json-file", &plan]);
    assert!(ok && out.contains("Reassignment of partition slow-0 is still in progress."), "{out}");
    assert!(!out.contains("Clearing"), "the throttle stays while a move is in progress: {out}");
    // --- the rate lifted while it runs (a dynamic broker config): the move completes
    let (ok, out, err) = tool(
        &cluster,
        &[
            "configs",
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-default",
            "--add-config",
            &format!("follower.replication.throttled.rate={}", rate * 1000),
        ],
    );
    assert!(ok, "{out}\n{err}");
    let mut last = String::new();
    let done = wait_for(Duration::from_secs(60), || {
        let (_, out, _) =
            tool(&cluster, &["reassign-partitions", "--verify", "--reassignment-json-file", &plan]);
        last = out.clone();
        async move { out.contains("is completed.") }
    })
    .await;
    assert!(done, "the move completed once the rate was lifted; last --verify:\n{last}");
    assert!(last.contains("Clearing broker-level throttles"), "{last}");
    assert!(last.contains("Clearing topic-level throttles on topic slow"), "{last}");
    // --- the throttle is gone: no broker default, no topic override
    let admin = Admin::new(client(&cluster)).expect("admin");
    let defaults = admin.describe_broker_defaults().await.expect("defaults");
    assert!(!defaults.keys().any(|k| k.contains("throttled")), "{defaults:?}");
    let configs = admin.describe_configs(vec!["slow".into()]).await.expect("configs");
    let slow =
        configs.into_iter().find(|(n, _)| n == "slow").and_then(|(_, c)| c.ok()).expect("slow's configs");
    assert!(!slow.keys().any(|k| k.contains("throttled")), "{slow:?}");
    assert!(segment_bytes(&copy) >= 3 * 1024 * 1024, "broker 2 holds the whole log");
}

/// JBOD (Kafka's failed log directory, KIP-112): broker 1 keeps its logs in two directories,
/// one of them a 2 MB tmpfs. An idempotent `acks=all` producer fills it: the append fails
/// with `No space left on device`, broker 1 answers KAFKA_STORAGE_ERROR, takes that directory
/// offline and tells the controller, which moves the partition's leadership to another
/// in-sync replica and drops broker 1 from its ISR. The producer goes on there: every record
/// is acknowledged, once, in order. Broker 1 keeps running and keeps leading the partition in
/// its other directory. Restarted with room again, it brings the directory back and rejoins
/// the ISR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_dir_goes_offline_alone_its_partitions_lead_elsewhere_and_the_broker_serves_the_rest() {
    let mut cluster = BrokerCluster::start_on(1, 3, &format!("{FAST}min.insync.replicas=2\n"), "");
    let broker = &mut cluster.brokers[0];
    broker.kill();
    let small = cluster.dir.path().join("broker-1-small");
    std::fs::create_dir_all(&small).expect("mount point");
    let disk = Tmpfs::mount(&small, "2m");
    // A partition goes to the directory that already holds it: one on each.
    std::fs::create_dir_all(small.join("filling-0")).expect("partition dir");
    std::fs::create_dir_all(broker.log_dir.join("healthy-0")).expect("partition dir");
    let config = std::fs::read_to_string(&broker.config).expect("config");
    let dirs = format!("log.dirs={},{}", broker.log_dir.display(), small.display());
    let config: String = config
        .lines()
        .map(|l| if l.starts_with("log.dirs=") { dirs.clone() } else { l.to_string() } + "\n")
        .collect();
    std::fs::write(&broker.config, config).expect("config");
    broker.restart();
    cluster.wait_until_every_broker_sees_all(Duration::from_secs(20));
    let k = keeper(&cluster).await;
    create(&cluster, "filling", &[&[1, 2, 3]], &[]).await;
    create(&cluster, "healthy", &[&[1, 2, 3]], &[]).await;
    for topic in ["filling", "healthy"] {
        wait_state(&k, topic, 0, Duration::from_secs(20), "led by broker 1 with an ISR of 3", |s| {
            s.leader == 1 && s.isr.len() == 3
        })
        .await;
    }
    let producer = Producer::new(
        ProducerConfig::new(client(&cluster).request_timeout(Duration::from_secs(5)))
            .acks(Acks::All)
            .delivery_timeout(Duration::from_secs(60)),
    )
    .expect("producer");
    // 4 MB of 1 KiB records into a 2 MB directory.
    let value = |v: u64| format!("{v:0>1024}");
    let mut pending = Vec::new();
    for v in 0..4000u64 {
        pending.push((v, producer.send(ProducerRecord::new("filling", value(v))).await.expect("send")));
    }
    let mut acked = Vec::new();
    for (v, d) in pending {
        d.await.unwrap_or_else(|e| panic!("record {v} failed: {e}"));
        acked.push(v);
    }
    let moved = wait_state(
        &k,
        "filling",
        0,
        Duration::from_secs(20),
        "led elsewhere, broker 1 out of the ISR",
        |s| s.leader > 1 && !s.isr.contains(&1),
    )
    .await;
    assert!(cluster.brokers[0].exited().is_none(), "broker 1 stopped; only its directory should have");
    let log = std::fs::read_to_string(&cluster.brokers[0].log).expect("broker log");
    assert!(log.contains("No space left on device"), "the append's failure is in the log");
    assert!(log.contains("a log directory failed"), "broker 1 says what happened and the fix");
    // The other directory's partition stays with broker 1, which still takes writes for it.
    let healthy = state(&k, "healthy", 0).await.expect("state");
    assert_eq!((healthy.leader, healthy.isr.len()), (1, 3), "healthy-0 moved: {healthy:?}");
    // Metadata names broker 1's copy of filling-0 offline (Kafka's offline replicas), and
    // only that one: every broker answers so once the controller's update reaches it.
    let admin = Admin::new(client(&cluster)).expect("admin");
    let seen = std::sync::Mutex::new(None);
    let offline_are = |filling: Vec<i32>| {
        let (admin, seen) = (&admin, &seen);
        move || {
            let want = (Some(filling.clone()), Some(Vec::new()));
            async move {
                let Ok(topics) = admin.describe_topics(vec!["filling".into(), "healthy".into()]).await else {
                    return false;
                };
                let offline = |name: &str| {
                    let t = topics.iter().find(|t| t.name == name)?;
                    t.partitions.first().map(|p| p.offline_replicas.clone())
                };
                let got = (offline("filling"), offline("healthy"));
                let done = got == want;
                *seen.lock().expect("seen") = Some(got);
                done
            }
        }
    };
    let named = wait_for(Duration::from_secs(20), offline_are(vec![1])).await;
    assert!(named, "metadata's offline replicas (filling-0, healthy-0): {seen:?}; want [1] and []");
    let mut more = Vec::new();
    for v in 0..100u64 {
        let d = producer.send(ProducerRecord::new("healthy", v.to_string())).await.expect("send");
        d.await.unwrap_or_else(|e| panic!("healthy record {v} failed: {e}"));
        more.push(v);
    }
    producer.close().await;
    let records = consume_all(&cluster, "filling", 1, acked.len()).await;
    let values: Vec<u64> = records.iter().map(|r| text(&r.value).parse().expect("a number")).collect();
    assert_eq!(
        values, acked,
        "every acknowledged record once, in order (now led by broker {})",
        moved.leader
    );
    let records = consume_all(&cluster, "healthy", 1, more.len()).await;
    let refs: Vec<&ConsumerRecord> = records.iter().collect();
    assert_eq!(check_partition(&refs, &more), 0);
    // Room again and a restart: the directory is back and broker 1 catches up.
    disk.resize("64m");
    cluster.brokers[0].restart();
    wait_state(&k, "filling", 0, Duration::from_secs(30), "broker 1 back in the ISR", |s| s.isr.contains(&1))
        .await;
    let back = wait_for(Duration::from_secs(20), offline_are(vec![])).await;
    assert!(back, "after the restart no replica should be offline: {seen:?}");
}
