//! The broker as a user runs it: real `sluice keeper start` and `sluice broker start`
//! processes from properties files, real QUIC + mTLS, real log files, SIGKILL for faults.
//! Reference: Kafka's ZooKeeper-mode design (broker registration, controller election,
//! znode layout) and its produce / fetch semantics.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use sluice_broker_core::znodes;
use sluice_client::broker::proto::*;
use sluice_client::keeper::{KeeperClient, KeeperClientOptions};
use sluice_net::{Client, ClientOptions, ClientTls};
use sluice_proto::interbroker::{InterBrokerProtocol, OffsetsForLeaderEpoch};
use sluice_tests::{sluice_bin, tls_args, wait_for, BrokerCluster, BrokerProcess};

async fn keeper(cluster: &BrokerCluster) -> KeeperClient {
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(10), ..Default::default() };
    let tls = cluster.pki.client("observer");
    KeeperClient::connect(&cluster.zookeeper_connect(), &tls, opts).await.expect("keeper").0
}

fn raw_client(cluster: &BrokerCluster) -> Client<BrokerProtocol> {
    Client::new(&cluster.pki.client("raw"), ClientOptions::default()).expect("client")
}

async fn controller_id(k: &KeeperClient) -> Option<i32> {
    let (data, _) = k.get_data(znodes::CONTROLLER, false).await.ok()?;
    znodes::decode_controller(&data).ok()
}

/// Whether every partition of `topic` has a leader in `addr`'s metadata.
async fn all_led(net: &Client<BrokerProtocol>, addr: &str, topic: &str) -> bool {
    let req = MetadataRequest { topics: Some(vec![topic.into()]), allow_auto_create: false };
    match net.call(addr, req).await {
        Ok(Ok(m)) => m.topics.iter().any(|t| {
            t.name == topic
                && t.error.is_none()
                && !t.partitions.is_empty()
                && t.partitions.iter().all(|p| p.leader.is_some())
        }),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_register_under_the_chroot_and_a_duplicate_id_is_refused() {
    let mut cluster = BrokerCluster::start(3, "");
    // --- the seed's check: keeper-shell under the chroot lists the three ids
    let out = Command::new(sluice_bin())
        .args(["keeper-shell", &cluster.zookeeper_connect()])
        .args(tls_args(&cluster.client_files()))
        .args(["ls", "/brokers/ids"])
        .output()
        .expect("keeper-shell");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "[1, 2, 3]");
    // --- each registration holds Kafka's JSON with the broker's real endpoint
    let k = keeper(&cluster).await;
    let (data, stat) = k.get_data("/brokers/ids/2", false).await.expect("registration");
    let b = znodes::decode_broker(2, &data).expect("Kafka's JSON");
    assert_eq!(b.addr(), cluster.brokers[1].addr);
    assert_ne!(stat.ephemeral_owner, 0, "the registration is ephemeral");
    // --- a second broker with a live id is refused, naming the id and the fix
    let connect = cluster.zookeeper_connect();
    let dup_dir = cluster.dir.path().join("dup");
    std::fs::create_dir_all(&dup_dir).expect("dir");
    let config = sluice_tests::broker_config(&cluster.pki, &dup_dir, 2, &connect, "");
    let mut dup = BrokerProcess::placeholder();
    dup.id = 2;
    dup.config = config;
    dup.log_dir = dup_dir.join("broker-2-logs");
    dup.log = dup_dir.join("broker-2.log");
    assert!(dup.launch().is_err(), "a duplicate broker.id must not start");
    let log = std::fs::read_to_string(&dup.log).expect("log");
    assert!(log.contains("broker.id 2 is already registered"), "{log}");
    assert!(log.contains("give each broker its own broker.id"), "{log}");
    // The original broker 2 is untouched.
    let (_, stat2) = k.get_data("/brokers/ids/2", false).await.expect("still registered");
    assert_eq!(stat2.ephemeral_owner, stat.ephemeral_owner);
    cluster.brokers.clear();
}

/// Kafka keeps what brokers say to each other on `inter.broker.listener.name`; here it is a
/// protocol of its own (`sluice-interbroker/2`) beside the client protocol on the broker's
/// QUIC port, and only node certificates may open it: a client cannot even ask for a
/// replica fetch or send a cluster update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_cannot_open_the_inter_broker_protocol() {
    let cluster = BrokerCluster::start(1, "");
    let addr = cluster.brokers[0].addr.clone();
    let asks_nothing = || OffsetsForLeaderEpoch { partitions: vec![] };
    // --- a client certificate is refused at connect, and the error names the protocol
    let intruder =
        Client::<InterBrokerProtocol>::new(&cluster.pki.client("intruder"), ClientOptions::default())
            .expect("client");
    let err = intruder.connect(&addr).await.expect_err("a client certificate must be refused");
    assert!(err.to_string().contains("sluice-interbroker/2 is for cluster nodes only"), "{err}");
    match intruder.call(&addr, asks_nothing()).await {
        Err(sluice_net::RpcError::Connect(_)) => {}
        other => panic!("a client's inter-broker request must never reach the broker: {other:?}"),
    }
    // --- the same certificate still speaks the client protocol on the same port
    let req = MetadataRequest { topics: None, allow_auto_create: false };
    let meta = raw_client(&cluster).call(&addr, req).await.expect("call").expect("metadata");
    assert_eq!(meta.brokers.len(), 1);
    // --- a node certificate opens the inter-broker protocol and is answered
    let node = ClientTls::new(cluster.pki.node("broker-9"));
    let peer = Client::<InterBrokerProtocol>::new(&node, ClientOptions::default()).expect("client");
    let answer = peer.call(&addr, asks_nothing()).await.expect("a node connects").expect("answered");
    assert!(answer.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_properties_line_stops_start_up_naming_the_line() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = sluice_tests::TestPki::new("bad");
    let config = sluice_tests::broker_config(&pki, dir.path(), 1, "127.0.0.1:1/x", "num.partitions=lots\n");
    let text = std::fs::read_to_string(&config).expect("config");
    let line = text.lines().position(|l| l.starts_with("num.partitions")).expect("line") + 1;
    let out = Command::new(sluice_bin()).args(["broker", "start"]).arg(&config).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!(":{line}: num.partitions=lots")), "{stderr}");
    // An unknown key is named with its line too.
    std::fs::write(&config, format!("{text}log.retention.dayz=3\n")).expect("rewrite");
    let out = Command::new(sluice_bin()).args(["broker", "start"]).arg(&config).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unknown key \"log.retention.dayz\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_controllers_broker_dies_another_takes_over_and_topics_can_be_created() {
    let mut cluster = BrokerCluster::start(3, "");
    let k = keeper(&cluster).await;
    let net = raw_client(&cluster);
    assert!(wait_for(Duration::from_secs(10), || async { controller_id(&k).await.is_some() }).await);
    let first = controller_id(&k).await.expect("controller");
    let (epoch1, _) = k.get_data(znodes::CONTROLLER_EPOCH, false).await.expect("epoch");
    let epoch1 = znodes::decode_epoch(&epoch1).expect("number");
    // --- SIGKILL the controller's broker
    let started = std::time::Instant::now();
    cluster.brokers[(first - 1) as usize].kill();
    // The new controller creates /controller, then bumps the epoch: wait for both.
    let epoch_of = || async {
        let (d, _) = k.get_data(znodes::CONTROLLER_EPOCH, false).await.ok()?;
        znodes::decode_epoch(&d).ok()
    };
    let moved = wait_for(Duration::from_secs(15), || async {
        matches!(controller_id(&k).await, Some(c) if c != first) && epoch_of().await == Some(epoch1 + 1)
    })
    .await;
    assert!(moved, "no new controller with a bumped epoch within the session timeout (6 s) + 9 s");
    let took = started.elapsed();
    println!("controller moved from broker {first} in {took:?}");
    // --- topic creation works again, through a surviving broker
    let survivor = cluster.brokers.iter().find(|b| b.pid().is_some()).expect("survivor").addr.clone();
    let created = wait_for(Duration::from_secs(10), || async {
        let req = CreateTopics { topics: vec![NewTopic::new("after-failover", 4, 1)], validate_only: false };
        matches!(net.call(&survivor, req).await, Ok(Ok(r)) if r.iter().all(|(_, r)| r.is_ok() || matches!(r, Err(BrokerError::TopicAlreadyExists { .. }))))
    })
    .await;
    assert!(created, "topic creation failed after failover");
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &survivor, "after-failover")).await);
    // Leaders are only live brokers.
    let m = net
        .call(&survivor, MetadataRequest { topics: None, allow_auto_create: false })
        .await
        .expect("call")
        .expect("metadata");
    assert_eq!(m.brokers.len(), 2);
    assert!(m.topics[0].partitions.iter().all(|p| p.leader != Some(first)));
}

/// One uncompressed batch of `values`, as a producer encodes it.
fn batch(values: &[&str]) -> bytes::Bytes {
    use sluice_log::{BatchHeader, Compression, Record, RecordBatch};
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            offset_delta: i as i32,
            timestamp_delta: 0,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![],
        })
        .collect();
    let header = BatchHeader::new(Compression::None, 1_000, 1_000);
    bytes::Bytes::from(RecordBatch { header, records }.encode())
}

fn values_of(records: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let b = sluice_log::RecordBatch::decode(&records[at..], 1 << 20).expect("valid batch");
        let view = sluice_log::BatchView::parse(&records[at..]).expect("view");
        at += view.len();
        out.extend(
            b.records
                .iter()
                .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_appends_in_order_serves_long_polls_and_names_errors() {
    let cluster = BrokerCluster::start(2, "message.max.bytes=2000\nauto.create.topics.enable=false\n");
    let net = raw_client(&cluster);
    let any = cluster.brokers[0].addr.clone();
    let created = wait_for(Duration::from_secs(10), || async {
        let req = CreateTopics { topics: vec![NewTopic::new("t", 2, 1)], validate_only: false };
        matches!(net.call(&any, req).await, Ok(Ok(r)) if r[0].1.is_ok())
    })
    .await;
    assert!(created);
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &any, "t")).await);
    let m = net
        .call(&any, MetadataRequest { topics: Some(vec!["t".into()]), allow_auto_create: false })
        .await
        .expect("call")
        .expect("metadata");
    let leader_of = |p: i32| {
        m.topics[0].partitions.iter().find(|x| x.partition == p).and_then(|x| x.leader).expect("leader")
    };
    let addr_of = |id: i32| m.brokers.iter().find(|b| b.id == id).expect("broker").addr();
    let (leader, other) =
        (addr_of(leader_of(0)), m.brokers.iter().find(|b| b.id != leader_of(0)).expect("other").addr());
    // --- appends get consecutive offsets
    let produce = |records| Produce {
        topic: "t".into(),
        partition: 0,
        acks: 1,
        timeout_ms: 1000,
        records,
        retry: false,
    };
    let r1 = net.call(&leader, produce(batch(&["a", "b"]))).await.expect("call").expect("produce");
    let r2 = net.call(&leader, produce(batch(&["c"]))).await.expect("call").expect("produce");
    assert_eq!((r1.base_offset, r2.base_offset), (0, 2));
    // --- a fetch returns them in order
    let fetch = |offset, wait| Fetch {
        max_wait_ms: wait,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition { topic: "t".into(), partition: 0, offset, max_bytes: 1 << 20 }],
    };
    let f = net.call(&leader, fetch(0, 0)).await.expect("call").expect("fetch");
    assert_eq!(f.partitions[0].high_watermark, 3);
    assert_eq!(values_of(&f.partitions[0].records), vec!["a", "b", "c"]);
    // --- a long poll at the end waits until a produce arrives, then answers at once
    let poll = {
        let leader = leader.clone();
        let net2 = raw_client(&cluster);
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let f = net2.call(&leader, fetch(3, 20_000)).await.expect("call").expect("fetch");
            (started.elapsed(), values_of(&f.partitions[0].records))
        })
    };
    // The poll is parked: it has not answered after the produce-free moment below.
    assert!(
        !wait_for(Duration::from_millis(300), || async { poll.is_finished() }).await,
        "the long poll answered without data"
    );
    net.call(&leader, produce(batch(&["d"]))).await.expect("call").expect("produce");
    let (took, values) = poll.await.expect("poll task");
    assert_eq!(values, vec!["d"]);
    assert!(took < Duration::from_secs(10), "the long poll waited {took:?} after data arrived");
    // --- ListOffsets: earliest, latest, by time
    let list = ListOffsets {
        partitions: [EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, 1_000, 9_999]
            .iter()
            .map(|t| ListOffsetsPartition { topic: "t".into(), partition: 0, timestamp: *t })
            .collect(),
    };
    let l = net.call(&leader, list).await.expect("call").expect("list");
    let offsets: Vec<i64> = l.iter().map(|x| x.result.as_ref().expect("offset").0).collect();
    assert_eq!(offsets, vec![0, 4, 0, 4]);
    // --- errors: not the leader (naming it), too large, unknown topic, bad acks, out of range
    match net.call(&other, produce(batch(&["x"]))).await.expect("call") {
        Err(BrokerError::NotLeaderForPartition { leader: Some(l), .. }) => assert_eq!(l, leader_of(0)),
        other => panic!("expected NotLeaderForPartition, got {other:?}"),
    }
    let big = "x".repeat(3000);
    match net.call(&leader, produce(batch(&[&big]))).await.expect("call") {
        Err(BrokerError::MessageTooLarge { max, .. }) => assert_eq!(max, 2000),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    let mut unknown = produce(batch(&["x"]));
    unknown.topic = "nope".into();
    assert!(matches!(
        net.call(&leader, unknown).await.expect("call"),
        Err(BrokerError::UnknownTopicOrPartition { .. })
    ));
    let mut bad_acks = produce(batch(&["x"]));
    bad_acks.acks = 2;
    assert!(matches!(
        net.call(&leader, bad_acks).await.expect("call"),
        Err(BrokerError::InvalidRequiredAcks { acks: 2 })
    ));
    let f = net.call(&leader, fetch(99, 0)).await.expect("call").expect("fetch");
    assert!(
        matches!(f.partitions[0].error, Some(BrokerError::OffsetOutOfRange { log_end_offset: 4, .. })),
        "{:?}",
        f.partitions[0].error
    );
    // Corrupt bytes are refused and nothing is appended.
    let mut corrupt = batch(&["y"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(matches!(
        net.call(&leader, produce(corrupt.into())).await.expect("call"),
        Err(BrokerError::CorruptMessage { .. })
    ));
    let f = net.call(&leader, fetch(0, 0)).await.expect("call").expect("fetch");
    assert_eq!(values_of(&f.partitions[0].records), vec!["a", "b", "c", "d"], "nothing lost, nothing added");
    // --- several partitions' batches in one request (Kafka's produce shape): each is applied in
    // list order and answered on its own
    let one = |topic: &str, partition, value: &str| ProduceBatch {
        topic: topic.into(),
        partition,
        records: batch(&[value]),
        retry: false,
    };
    let many = ProduceMany {
        acks: 1,
        timeout_ms: 1000,
        batches: vec![one("t", 0, "e"), one("nope", 0, "x"), one("t", 1, "p1"), one("t", 0, "f")],
    };
    let answers = net.call(&leader, many).await.expect("call").expect("produce many");
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(answers[0].as_ref().map(|r| r.base_offset), Ok(4));
    assert!(matches!(answers[1], Err(BrokerError::UnknownTopicOrPartition { .. })), "{:?}", answers[1]);
    if leader_of(1) == leader_of(0) {
        assert_eq!(answers[2].as_ref().map(|r| r.base_offset), Ok(0));
    } else {
        assert!(matches!(answers[2], Err(BrokerError::NotLeaderForPartition { .. })), "{:?}", answers[2]);
    }
    assert_eq!(answers[3].as_ref().map(|r| r.base_offset), Ok(5));
    let f = net.call(&leader, fetch(0, 0)).await.expect("call").expect("fetch");
    assert_eq!(values_of(&f.partitions[0].records), vec!["a", "b", "c", "d", "e", "f"]);
    // --- auto-create is off: metadata for an unknown topic says so and creates nothing
    let m = net
        .call(&any, MetadataRequest { topics: Some(vec!["auto".into()]), allow_auto_create: true })
        .await
        .expect("call")
        .expect("metadata");
    assert!(matches!(m.topics[0].error, Some(BrokerError::UnknownTopicOrPartition { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_are_auto_created_when_allowed_and_deleted_only_when_enabled() {
    let cluster = BrokerCluster::start(2, "num.partitions=3\n");
    let net = raw_client(&cluster);
    let any = cluster.brokers[0].addr.clone();
    let k = keeper(&cluster).await;
    assert!(wait_for(Duration::from_secs(10), || async { controller_id(&k).await.is_some() }).await);
    // --- auto-create: the first metadata request says "no leader yet", then it has num.partitions
    let ask = |auto| MetadataRequest { topics: Some(vec!["auto-1".into()]), allow_auto_create: auto };
    let first = wait_for(Duration::from_secs(10), || async {
        matches!(net.call(&any, ask(true)).await, Ok(Ok(m)) if m.topics[0].error.is_some() || m.topics[0].partitions.len() == 3)
    })
    .await;
    assert!(first);
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &any, "auto-1")).await);
    let m = net.call(&any, ask(false)).await.expect("call").expect("metadata");
    assert_eq!(m.topics[0].partitions.len(), 3, "num.partitions");
    let leader = m.topics[0].partitions[0].leader.expect("leader");
    let addr = m.brokers.iter().find(|b| b.id == leader).expect("broker").addr();
    let produce = Produce {
        topic: "auto-1".into(),
        partition: 0,
        acks: -1,
        timeout_ms: 1000,
        records: batch(&["v"]),
        retry: false,
    };
    net.call(&addr, produce).await.expect("call").expect("acks=all with the leader as the whole ISR");
    let dir = cluster.brokers[(leader - 1) as usize].log_dir.join("auto-1-0");
    assert!(dir.is_dir(), "{} holds the partition", dir.display());
    // --- delete: gone from metadata, from the keeper and from disk
    let r = net
        .call(&any, DeleteTopics { topics: vec!["auto-1".into(), "never-was".into()] })
        .await
        .expect("call")
        .expect("delete");
    assert!(r[0].1.is_ok(), "{r:?}");
    assert!(matches!(r[1].1, Err(BrokerError::UnknownTopicOrPartition { .. })), "{r:?}");
    let gone = wait_for(Duration::from_secs(15), || async {
        let m = net.call(&any, ask(false)).await;
        let unlisted = matches!(m, Ok(Ok(m)) if m.topics[0].error.is_some());
        let znode = k.exists(&znodes::topic_path("auto-1"), false).await.ok().flatten().is_none();
        let marker = k.exists(&znodes::delete_path("auto-1"), false).await.ok().flatten().is_none();
        unlisted && znode && marker && !dir.exists()
    })
    .await;
    assert!(gone, "the topic was not fully deleted (dir exists: {})", dir.exists());
    // --- with delete.topic.enable=false the request is refused with the fix named
    let strict = BrokerCluster::start(1, "delete.topic.enable=false\n");
    let strict_net = raw_client(&strict);
    let addr = strict.brokers[0].addr.clone();
    let ok = wait_for(Duration::from_secs(10), || async {
        let req = CreateTopics { topics: vec![NewTopic::new("keep", 1, 1)], validate_only: false };
        matches!(strict_net.call(&addr, req).await, Ok(Ok(r)) if r[0].1.is_ok())
    })
    .await;
    assert!(ok);
    match strict_net.call(&addr, DeleteTopics { topics: vec!["keep".into()] }).await.expect("call") {
        Err(e @ BrokerError::TopicDeletionDisabled { .. }) => {
            assert!(e.to_string().contains("delete.topic.enable=true"))
        }
        other => panic!("expected TopicDeletionDisabled, got {other:?}"),
    }
    assert!(
        wait_for(Duration::from_secs(5), || all_led(&strict_net, &addr, "keep")).await,
        "the topic is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stop_leaves_the_cluster_at_once_and_a_restart_keeps_the_data() {
    let mut cluster = BrokerCluster::start(1, "");
    let net = raw_client(&cluster);
    let k = keeper(&cluster).await;
    let addr = cluster.brokers[0].addr.clone();
    let created = wait_for(Duration::from_secs(10), || async {
        let req = CreateTopics { topics: vec![NewTopic::new("kept", 1, 1)], validate_only: false };
        matches!(net.call(&addr, req).await, Ok(Ok(r)) if r[0].1.is_ok())
    })
    .await;
    assert!(created);
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &addr, "kept")).await);
    for i in 0..10 {
        let p = Produce {
            topic: "kept".into(),
            partition: 0,
            acks: 1,
            timeout_ms: 1000,
            records: batch(&[&format!("r{i}")]),
            retry: false,
        };
        net.call(&addr, p).await.expect("call").expect("produce");
    }
    // --- `sluice broker stop CONFIG` signals the process through its pid file and waits
    let out = Command::new(sluice_bin())
        .args(["broker", "stop"])
        .arg(&cluster.brokers[0].config)
        .output()
        .expect("stop");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("broker (pid") && stdout.contains("stopped"), "{stdout}");
    // The registration is gone at once (the session was closed), not after the 6 s timeout.
    assert!(k.exists("/brokers/ids/1", false).await.expect("exists").is_none());
    // The clean stop flushed the log and recorded how far in the checkpoint.
    let checkpoint =
        std::fs::read_to_string(cluster.brokers[0].log_dir.join("recovery-point-offset-checkpoint"))
            .expect("checkpoint");
    assert!(checkpoint.lines().any(|l| l == "kept 0 10"), "{checkpoint}");
    // --- a second stop explains there is nothing to stop
    let out = Command::new(sluice_bin())
        .args(["broker", "stop"])
        .arg(&cluster.brokers[0].config)
        .output()
        .expect("stop");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no broker is running"));
    // --- restarted, it serves what it had
    cluster.brokers[0].restart();
    let addr = cluster.brokers[0].addr.clone();
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &addr, "kept")).await);
    let fetch = Fetch {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition {
            topic: "kept".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
        }],
    };
    let f = net.call(&addr, fetch).await.expect("call").expect("fetch");
    let expected: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    assert_eq!(values_of(&f.partitions[0].records), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_whose_epoch_moved_on_is_fenced_and_a_new_election_follows() {
    let cluster = BrokerCluster::start(2, "");
    let k = keeper(&cluster).await;
    let net = raw_client(&cluster);
    assert!(wait_for(Duration::from_secs(10), || async { controller_id(&k).await.is_some() }).await);
    let (data, stat) = k.get_data(znodes::CONTROLLER_EPOCH, false).await.expect("epoch");
    let epoch = znodes::decode_epoch(&data).expect("number");
    // --- someone else moves the epoch on (as a newer controller would)
    k.set_data(znodes::CONTROLLER_EPOCH, (epoch + 10).to_string().as_bytes(), stat.version)
        .await
        .expect("bump");
    // --- the controller's next write (a new topic's partition states) fails the epoch check;
    //     it resigns, a new election bumps the epoch past ours, and the topic gets its leaders
    let addr = cluster.brokers[0].addr.clone();
    let req = CreateTopics { topics: vec![NewTopic::new("fenced", 2, 1)], validate_only: false };
    let r = net.call(&addr, req).await.expect("call").expect("create");
    assert!(r[0].1.is_ok(), "{r:?}");
    let reelected = wait_for(Duration::from_secs(15), || async {
        match k.get_data(znodes::CONTROLLER_EPOCH, false).await {
            Ok((d, _)) => znodes::decode_epoch(&d).is_ok_and(|e| e == epoch + 11),
            Err(_) => false,
        }
    })
    .await;
    assert!(reelected, "no controller took over after the epoch moved on");
    assert!(wait_for(Duration::from_secs(15), || all_led(&net, &addr, "fenced")).await);
    // Every state was written by the new epoch's controller.
    for p in 0..2 {
        let (d, v) = k.get_data(&znodes::state_path("fenced", p), false).await.expect("state");
        let s = znodes::decode_state("fenced", p, &d, v.version).expect("state json");
        assert_eq!(s.controller_epoch, epoch + 11);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_asking_for_more_than_a_frame_holds_gets_whole_batches_under_the_limit() {
    let cluster = BrokerCluster::start(1, "");
    let net = raw_client(&cluster);
    let addr = cluster.brokers[0].addr.clone();
    let created = wait_for(Duration::from_secs(10), || async {
        let req = CreateTopics { topics: vec![NewTopic::new("big", 3, 1)], validate_only: false };
        matches!(net.call(&addr, req).await, Ok(Ok(r)) if r[0].1.is_ok())
    })
    .await;
    assert!(created);
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &addr, "big")).await);
    // 3 partitions x 7 batches of ~1 MB: 21 MB, more than one 16 MiB frame.
    let value = "x".repeat(1_000_000);
    for p in 0..3 {
        for _ in 0..7 {
            let req = Produce {
                topic: "big".into(),
                partition: p,
                acks: 1,
                timeout_ms: 5000,
                records: batch(&[&value]),
                retry: false,
            };
            net.call(&addr, req).await.expect("call").expect("produce");
        }
    }
    // --- Kafka's consumer asks for up to 50 MiB; the broker answers with what fits
    let fetch = Fetch {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 50 << 20,
        partitions: (0..3)
            .map(|p| FetchPartition { topic: "big".into(), partition: p, offset: 0, max_bytes: 16 << 20 })
            .collect(),
    };
    let f = net.call(&addr, fetch).await.expect("a reply, not ReplyTooLarge").expect("fetch");
    let sizes: Vec<usize> = f.partitions.iter().map(|p| p.records.len()).collect();
    let total: usize = sizes.iter().sum();
    assert!(total <= 16 << 20, "{sizes:?}");
    assert!(total > 8 << 20, "the reply is filled, not starved: {sizes:?}");
    for p in &f.partitions {
        assert!(p.error.is_none(), "{:?}", p.error);
        // Whole batches only: every one decodes.
        assert_eq!(
            values_of(&p.records).len() * 1_000_000,
            values_of(&p.records).iter().map(String::len).sum::<usize>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_manager_applies_retention_on_its_timer() {
    // Tick every 200 ms; the topic keeps about 4 KiB in 1 KiB segments.
    let cluster = BrokerCluster::start(1, "log.retention.check.interval.ms=200\n");
    let net = raw_client(&cluster);
    let addr = cluster.brokers[0].addr.clone();
    let mut t = NewTopic::new("short", 1, 1);
    t.configs =
        BTreeMap::from([("segment.bytes".into(), "1024".into()), ("retention.bytes".into(), "4096".into())]);
    let created = wait_for(Duration::from_secs(10), || async {
        let req = CreateTopics { topics: vec![t.clone()], validate_only: false };
        matches!(net.call(&addr, req).await, Ok(Ok(r)) if r[0].1.is_ok())
    })
    .await;
    assert!(created);
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &addr, "short")).await);
    let value = "v".repeat(600);
    for _ in 0..30 {
        let req = Produce {
            topic: "short".into(),
            partition: 0,
            acks: 1,
            timeout_ms: 1000,
            records: batch(&[&value]),
            retry: false,
        };
        net.call(&addr, req).await.expect("call").expect("produce");
    }
    let earliest = || async {
        let req = ListOffsets {
            partitions: vec![ListOffsetsPartition {
                topic: "short".into(),
                partition: 0,
                timestamp: EARLIEST_TIMESTAMP,
            }],
        };
        net.call(&addr, req).await.ok()?.ok()?.first()?.result.as_ref().ok().map(|(o, _)| *o)
    };
    // --- old segments go; the log start moves up; the newest records stay
    let trimmed =
        wait_for(Duration::from_secs(10), || async { earliest().await.is_some_and(|o| o >= 20) }).await;
    assert!(trimmed, "retention did not run: log start is {:?}", earliest().await);
    // A tick while the records were still arriving may have moved the log start past 20
    // already, with the later segments left for the next tick: wait for that one too.
    let segments = || {
        std::fs::read_dir(cluster.brokers[0].log_dir.join("short-0"))
            .expect("dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log")))
            .count()
    };
    let files_gone = wait_for(Duration::from_secs(10), || async { segments() <= 8 }).await;
    assert!(files_gone, "{} segments remain", segments());
    let fetch = Fetch {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition {
            topic: "short".into(),
            partition: 0,
            offset: 29,
            max_bytes: 1 << 20,
        }],
    };
    let f = net.call(&addr, fetch).await.expect("call").expect("fetch");
    assert_eq!(
        values_of(&f.partitions[0].records).last().map(String::len),
        Some(600),
        "the newest record stays"
    );
}

/// Sends `signal` (e.g. "STOP", "CONT") to a process.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_whose_session_expired_registers_again_and_leads_partitions() {
    let mut cluster = BrokerCluster::start(2, "");
    let k = keeper(&cluster).await;
    let net = raw_client(&cluster);
    assert!(wait_for(Duration::from_secs(10), || async { controller_id(&k).await.is_some() }).await);
    let first = controller_id(&k).await.expect("controller");
    let stopped = &cluster.brokers[(first - 1) as usize];
    let pid = stopped.pid().expect("running");
    let (_, before) = k.get_data(&znodes::broker_path(first), false).await.expect("registered");
    // --- freeze the controller's broker past its 6 s session: the keeper expires it
    sluice_tests::signal(pid, "STOP");
    let expired = wait_for(Duration::from_secs(20), || async {
        k.exists(&znodes::broker_path(first), false).await.ok().flatten().is_none()
            && matches!(controller_id(&k).await, Some(c) if c != first)
    })
    .await;
    sluice_tests::signal(pid, "CONT");
    assert!(expired, "the frozen broker's registration and control should have moved on");
    // --- thawed, it learns its session expired and registers again with a new session
    let back = wait_for(Duration::from_secs(20), || async {
        matches!(k.exists(&znodes::broker_path(first), false).await, Ok(Some(s)) if s.ephemeral_owner != before.ephemeral_owner)
    })
    .await;
    assert!(back, "broker {first} did not register again after its session expired");
    // The other broker stays controller (the thawed one's writes would fail the epoch check).
    assert_ne!(controller_id(&k).await, Some(first));
    // --- and the cluster works with both: a topic over two brokers gets its leaders
    let other = cluster.brokers.iter().find(|b| b.id != first).expect("other").addr.clone();
    let created = wait_for(Duration::from_secs(10), || async {
        let req = CreateTopics { topics: vec![NewTopic::new("after-expiry", 4, 1)], validate_only: false };
        matches!(net.call(&other, req).await, Ok(Ok(r)) if r[0].1.is_ok())
    })
    .await;
    assert!(created);
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &other, "after-expiry")).await);
    let req = MetadataRequest { topics: Some(vec!["after-expiry".into()]), allow_auto_create: false };
    let m = net.call(&other, req).await.expect("call").expect("metadata");
    let leaders: std::collections::BTreeSet<i32> =
        m.topics[0].partitions.iter().filter_map(|p| p.leader).collect();
    assert_eq!(leaders.len(), 2, "both brokers lead partitions: {m:?}");
    // Produce through the re-registered broker's partitions works.
    let p = m.topics[0].partitions.iter().find(|p| p.leader == Some(first)).expect("one led by it");
    let addr = m.brokers.iter().find(|b| b.id == first).expect("listed").addr();
    let req = Produce {
        topic: "after-expiry".into(),
        partition: p.partition,
        acks: 1,
        timeout_ms: 1000,
        records: batch(&["x"]),
        retry: false,
    };
    net.call(&addr, req).await.expect("call").expect("produce to the re-registered broker");
    cluster.brokers.iter_mut().for_each(|b| b.kill());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_retriable_failure_a_channels_later_produces_wait_for_the_resend() {
    let cluster = BrokerCluster::start(1, "");
    let net = raw_client(&cluster);
    let addr = cluster.brokers[0].addr.clone();
    // acks=all needs 2 in-sync replicas here: with the leader alone it fails, retriably.
    let mut t = NewTopic::new("ordered", 1, 1);
    t.configs = BTreeMap::from([("min.insync.replicas".into(), "2".into())]);
    let created = wait_for(Duration::from_secs(10), || async {
        let req = CreateTopics { topics: vec![t.clone()], validate_only: false };
        matches!(net.call(&addr, req).await, Ok(Ok(r)) if r[0].1.is_ok())
    })
    .await;
    assert!(created);
    assert!(wait_for(Duration::from_secs(10), || all_led(&net, &addr, "ordered")).await);
    let channel = net.connection(&addr).await.expect("connect").open_ordered().await.expect("channel");
    let produce = |value: &str, acks: i16, retry: bool| Produce {
        topic: "ordered".into(),
        partition: 0,
        acks,
        timeout_ms: 1000,
        records: batch(&[value]),
        retry,
    };
    // --- batch "a" fails retriably; "b", sent right behind it, must not overtake it
    let a = channel.call(produce("a", -1, false)).await.expect("call");
    assert!(matches!(a, Err(BrokerError::NotEnoughReplicas { .. })), "{a:?}");
    let b = channel.call(produce("b", 1, false)).await.expect("call");
    assert!(matches!(b, Err(BrokerError::OutOfOrderSequence { .. })), "{b:?}");
    // --- the producer resends in order, marked as retries (here "a" with acks=1)
    channel.call(produce("a", 1, true)).await.expect("call").expect("the resend of a");
    channel.call(produce("b", 1, true)).await.expect("call").expect("then b");
    channel.call(produce("c", 1, false)).await.expect("call").expect("and on as usual");
    // acks=0 produces are never held (their producer hears of no failure).
    let d = channel.call(produce("d", -1, false)).await.expect("call");
    assert!(matches!(d, Err(BrokerError::NotEnoughReplicas { .. })), "{d:?}");
    channel.call(produce("e", 0, false)).await.expect("call").expect("acks=0 goes through");
    let f = Fetch {
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition {
            topic: "ordered".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
        }],
    };
    let got = net.call(&addr, f).await.expect("call").expect("fetch");
    assert_eq!(values_of(&got.partitions[0].records), vec!["a", "b", "c", "e"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_keeper_is_gone_still_stops_promptly_on_sigterm() {
    let mut cluster = BrokerCluster::start_with_keeper(
        1,
        "zookeeper.session.timeout.ms=30000\n",
        "maxSessionTimeout=30000\n",
    );
    let k = keeper(&cluster).await;
    assert!(wait_for(Duration::from_secs(10), || async { controller_id(&k).await.is_some() }).await);
    // --- the keeper dies; the broker's session calls now wait out their timeouts
    for k in &mut cluster.keepers {
        k.kill();
    }
    let started = std::time::Instant::now();
    // --- SIGTERM: the broker gives the unreachable keeper a moment, not its 20 s session
    assert!(
        cluster.brokers[0].terminate(Duration::from_secs(8)),
        "the broker did not exit cleanly within 8 s"
    );
    println!("stopped in {:?}", started.elapsed());
}
