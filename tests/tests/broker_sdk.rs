//! The broker through the SDK, as an application uses it: `Admin`, `Producer` and `Consumer`
//! against real `sluice broker` processes over QUIC + mTLS.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use sluice_client::broker::partitioner::partition_for_key;
use sluice_client::broker::proto::{BrokerError, NewTopic, Produce};
use sluice_client::broker::{
    Acks, Admin, AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, Producer,
    ProducerConfig, ProducerRecord,
};
use sluice_log::Compression;
use sluice_tests::{wait_for, BrokerCluster};

fn client(cluster: &BrokerCluster) -> ClientConfig {
    ClientConfig::new(cluster.bootstrap().split(',').map(str::to_string))
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(20))
}

fn topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> NewTopic {
    configs.iter().fold(NewTopic::new(name, partitions, 1), |t, (k, v)| t.with_config(*k, *v))
}

async fn create(admin: &Admin, t: NewTopic) {
    let name = t.name.clone();
    let r = admin.create_topics(vec![t], false).await.expect("create");
    assert!(r.iter().all(|(_, r)| r.is_ok()), "creating {name}: {r:?}");
}

/// Polls until `n` records arrived (or 60 s passed).
async fn consume(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::with_capacity(n);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while out.len() < n && std::time::Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(500)).await.expect("poll"));
    }
    out
}

fn text(b: &Option<Bytes>) -> String {
    String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_come_back_in_order_and_each_key_stays_in_its_partition() {
    let cluster = BrokerCluster::start(3, "");
    let admin = Admin::new(client(&cluster)).expect("admin");
    create(&admin, topic("orders", 6, &[])).await;
    // --- produce 100,000 keyed records (1,000 keys); value = the record's sequence number
    const N: usize = 100_000;
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::Leader)).expect("producer");
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let record = ProducerRecord::new("orders", i.to_string()).with_key(format!("key-{}", i % 1000));
        deliveries.push(producer.send(record).await.expect("send"));
    }
    let mut acked = Vec::with_capacity(N);
    for d in deliveries {
        acked.push(d.await.expect("delivered"));
    }
    producer.close().await;
    // Each key went where Kafka's partitioner sends it.
    for (i, m) in acked.iter().enumerate().take(1000) {
        assert_eq!(m.partition, partition_for_key(format!("key-{}", i % 1000).as_bytes(), 6));
    }
    // --- consume everything back from the beginning
    let mut consumer =
        Consumer::new(ConsumerConfig::new(client(&cluster)).auto_offset_reset(AutoOffsetReset::Earliest))
            .expect("consumer");
    consumer.assign((0..6).map(|p| ("orders", p)));
    let records = consume(&mut consumer, N).await;
    assert_eq!(records.len(), N, "every record comes back");
    let mut next_offset: HashMap<i32, i64> = HashMap::new();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    let mut key_partition: HashMap<String, i32> = HashMap::new();
    for r in &records {
        // Offsets of a partition are consecutive from 0: in order, none missing, none twice.
        let expected = next_offset.entry(r.partition).or_insert(0);
        assert_eq!(r.offset, *expected, "partition {}", r.partition);
        *expected += 1;
        let key = text(&r.key);
        let seq: i64 = text(&r.value).parse().expect("a number");
        // A key's records come back in the order they were sent...
        if let Some(prev) = last_seq.insert(key.clone(), seq) {
            assert!(seq > prev, "{key}: {seq} after {prev}");
        }
        // ...and all from one partition.
        assert_eq!(*key_partition.entry(key).or_insert(r.partition), r.partition);
    }
    assert_eq!(next_offset.values().sum::<i64>(), N as i64);
    assert_eq!(next_offset.len(), 6, "1,000 keys spread over all 6 partitions");
    // The delivery reports name the offsets the consumer saw.
    let by_seq: HashMap<i64, (i32, i64)> =
        records.iter().map(|r| (text(&r.value).parse().expect("n"), (r.partition, r.offset))).collect();
    for (i, m) in acked.iter().enumerate().step_by(997) {
        assert_eq!(by_seq[&(i as i64)], (m.partition, m.offset));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_codec_round_trips_from_producer_through_the_broker_to_the_consumer() {
    let cluster = BrokerCluster::start(1, "");
    let admin = Admin::new(client(&cluster)).expect("admin");
    for codec in
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
    {
        let name = format!("codec-{codec:?}").to_lowercase();
        create(&admin, topic(&name, 1, &[])).await;
        let producer =
            Producer::new(ProducerConfig::new(client(&cluster)).compression(codec)).expect("producer");
        let mut sent = Vec::new();
        for i in 0..300 {
            // Repetitive values compress; the header and the key survive as they are.
            let record = ProducerRecord::new(name.clone(), format!("value {i} {}", "abc".repeat(i % 40)))
                .with_key(format!("k{i}"))
                .with_header("h", Some(Bytes::from(format!("{i}"))))
                .with_timestamp(1_700_000_000_000 + i as i64);
            sent.push(producer.send(record).await.expect("send"));
        }
        for d in sent {
            d.await.expect("delivered");
        }
        producer.close().await;
        // The stored batches carry the codec: the broker kept the producer's bytes.
        let dir = cluster.brokers[0].log_dir.join(format!("{name}-0"));
        let seg = std::fs::read(dir.join(format!("{:020}.log", 0))).expect("segment");
        let header = sluice_log::BatchView::parse(&seg).expect("a batch").header;
        assert_eq!(header.compression, codec, "{name}");
        let mut consumer =
            Consumer::new(ConsumerConfig::new(client(&cluster)).auto_offset_reset(AutoOffsetReset::Earliest))
                .expect("consumer");
        consumer.assign([(name.as_str(), 0)]);
        let got = consume(&mut consumer, 300).await;
        assert_eq!(got.len(), 300, "{name}");
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(text(&r.key), format!("k{i}"));
            assert_eq!(text(&r.value), format!("value {i} {}", "abc".repeat(i % 40)));
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
            assert_eq!(r.headers, vec![("h".to_string(), Some(Bytes::from(format!("{i}"))))]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_rides_through_a_leader_change_and_the_old_leader_answers_not_leader() {
    let mut cluster = BrokerCluster::start(2, "");
    let admin = Admin::new(client(&cluster)).expect("admin");
    // Two replicas, both in sync: the follower has every acknowledged record when it takes
    // over.
    let t = NewTopic {
        name: "moving".into(),
        partitions: None,
        replication_factor: None,
        assignment: Some(BTreeMap::from([(0, vec![1, 2])])),
        configs: BTreeMap::new(),
    };
    create(&admin, t).await;
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::All)).expect("producer");
    let send_all = |from: usize, to: usize| {
        let producer = producer.clone();
        async move {
            let mut ds = Vec::new();
            for i in from..to {
                ds.push(producer.send(ProducerRecord::new("moving", i.to_string())).await.expect("send"));
            }
            let mut metas = Vec::new();
            for d in ds {
                metas.push(d.await.expect("delivered despite the leader change"));
            }
            metas
        }
    };
    let before = send_all(0, 200).await;
    assert!(before.iter().all(|m| m.partition == 0));
    // --- SIGKILL the leader (broker 1); the controller moves leadership to broker 2
    cluster.brokers[0].kill();
    let after = send_all(200, 400).await;
    assert_eq!(after.first().map(|m| m.offset), Some(200), "broker 2 continues the replicated log");
    // --- the old leader comes back as a non-leader and says who leads now
    cluster.brokers[0].restart();
    let old = cluster.brokers[0].addr.clone();
    let net = sluice_net::Client::<sluice_client::broker::proto::BrokerProtocol>::new(
        &cluster.pki.client("raw"),
        Default::default(),
    )
    .expect("client");
    let produce = || Produce {
        topic: "moving".into(),
        partition: 0,
        acks: 1,
        timeout_ms: 1000,
        records: Bytes::new(),
        retry: false,
    };
    let told = wait_for(Duration::from_secs(15), || async {
        matches!(
            net.call(&old, produce()).await,
            Ok(Err(BrokerError::NotLeaderForPartition { leader: Some(2), .. }))
        )
    })
    .await;
    assert!(told, "the restarted old leader must answer NotLeaderForPartition naming broker 2");
    // The producer keeps going, against broker 2.
    let more = send_all(400, 450).await;
    assert_eq!(more.first().map(|m| m.offset), Some(400));
    let mut consumer =
        Consumer::new(ConsumerConfig::new(client(&cluster)).auto_offset_reset(AutoOffsetReset::Earliest))
            .expect("consumer");
    consumer.assign([("moving", 0)]);
    let got: Vec<String> = consume(&mut consumer, 450).await.iter().map(|r| text(&r.value)).collect();
    let expected: Vec<String> = (0..450).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "everything acknowledged, by either leader, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_last_value_of_every_key() {
    // Tick (and wake the cleaner) every 200 ms, with one cleaner thread.
    let cluster = BrokerCluster::start(1, "log.retention.check.interval.ms=200\nlog.cleaner.threads=1\n");
    let admin = Admin::new(client(&cluster)).expect("admin");
    let configs =
        [("cleanup.policy", "compact"), ("segment.bytes", "4096"), ("min.cleanable.dirty.ratio", "0.01")];
    create(&admin, topic("latest", 1, &configs)).await;
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).batch_size(512)).expect("producer");
    const N: usize = 3000;
    let mut ds = Vec::new();
    for i in 0..N {
        ds.push(
            producer
                .send(ProducerRecord::new("latest", i.to_string()).with_key(format!("k{}", i % 10)))
                .await
                .expect("send"),
        );
    }
    for d in ds {
        d.await.expect("delivered");
    }
    producer.close().await;
    let read_all = || async {
        let mut consumer =
            Consumer::new(ConsumerConfig::new(client(&cluster)).auto_offset_reset(AutoOffsetReset::Earliest))
                .expect("consumer");
        consumer.assign([("latest", 0)]);
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        let mut count = 0;
        loop {
            let got = consumer.poll(Duration::from_millis(300)).await.expect("poll");
            if got.is_empty() {
                break;
            }
            count += got.len();
            for r in got {
                last.insert(text(&r.key), text(&r.value).parse().expect("n"));
            }
        }
        (count, last)
    };
    // --- the cleaner removes superseded values; the newest of each key stays
    let expected: BTreeMap<String, i64> = (N - 10..N).map(|i| (format!("k{}", i % 10), i as i64)).collect();
    let cleaned = wait_for(Duration::from_secs(30), || async {
        let (count, last) = read_all().await;
        count < N / 2 && last == expected
    })
    .await;
    let (count, last) = read_all().await;
    assert!(cleaned, "after compaction {count} of {N} records remain; last values {last:?}");
    assert_eq!(last, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_and_every_auto_offset_reset_behave_as_kafkas_and_admin_describes_the_cluster() {
    let cluster = BrokerCluster::start(2, "");
    let admin = Admin::new(client(&cluster)).expect("admin");
    let described = admin.describe_cluster().await.expect("describe cluster");
    let mut ids: Vec<i32> = described.brokers.iter().map(|b| b.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
    assert!(described.controller.is_some_and(|c| ids.contains(&c.id)));
    assert_eq!(described.cluster_id.len(), 32, "the id made once in /cluster/id");
    create(&admin, topic("seekable", 1, &[])).await;
    let producer = Producer::new(ProducerConfig::new(client(&cluster))).expect("producer");
    let mut ds = Vec::new();
    for i in 0..100 {
        ds.push(producer.send(ProducerRecord::new("seekable", i.to_string())).await.expect("send"));
    }
    for d in ds {
        d.await.expect("delivered");
    }
    let consumer_with = |reset| {
        let mut c =
            Consumer::new(ConsumerConfig::new(client(&cluster)).auto_offset_reset(reset)).expect("consumer");
        c.assign([("seekable", 0)]);
        c
    };
    // --- seek: reading starts exactly there
    let mut c = consumer_with(AutoOffsetReset::Earliest);
    c.seek("seekable", 0, 42).expect("seek");
    let got = consume(&mut c, 58).await;
    assert_eq!(got.first().map(|r| (r.offset, text(&r.value))), Some((42, "42".to_string())));
    assert_eq!(got.len(), 58);
    // --- latest: only what is produced from now on
    let mut c = consumer_with(AutoOffsetReset::Latest);
    assert_eq!(c.position("seekable", 0).await.expect("position"), 100);
    producer.send(ProducerRecord::new("seekable", "new")).await.expect("send").await.expect("delivered");
    let got = consume(&mut c, 1).await;
    assert_eq!(
        got.iter().map(|r| (r.offset, text(&r.value))).collect::<Vec<_>>(),
        vec![(100, "new".to_string())]
    );
    // --- none: no position is an error that says so; so is a seek past the end
    let mut c = consumer_with(AutoOffsetReset::None);
    assert!(matches!(
        c.poll(Duration::from_millis(500)).await,
        Err(sluice_client::broker::ConsumerError::NoOffsetForPartition { .. })
    ));
    c.seek("seekable", 0, 5_000).expect("seek");
    assert!(matches!(
        c.poll(Duration::from_secs(2)).await,
        Err(sluice_client::broker::ConsumerError::OffsetOutOfRange { .. })
    ));
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stream_yields_each_record_once_in_order_and_puts_back_what_it_did_not_yield() {
    use futures_util::StreamExt;
    let cluster = BrokerCluster::start(1, "");
    let admin = Admin::new(client(&cluster)).expect("admin");
    create(&admin, topic("streamed", 1, &[])).await;
    let producer = Producer::new(ProducerConfig::new(client(&cluster))).expect("producer");
    let mut ds = Vec::new();
    for i in 0..300 {
        ds.push(producer.send(ProducerRecord::new("streamed", i.to_string())).await.expect("send"));
    }
    for d in ds {
        d.await.expect("delivered");
    }
    let config = ConsumerConfig::new(client(&cluster)).auto_offset_reset(AutoOffsetReset::Earliest);
    let mut consumer = Consumer::new(config).expect("consumer");
    consumer.assign([("streamed", 0)]);
    let first: Vec<i64> = {
        let stream = consumer.stream();
        // Ten records, while a poll fetched more into the stream.
        stream.take(10).map(|r| r.expect("record").offset).collect().await
    };
    assert_eq!(first, (0..10).collect::<Vec<i64>>());
    // The stream is gone: what it had fetched and not yielded comes again, from offset 10.
    let rest: Vec<i64> = consumer.stream().take(290).map(|r| r.expect("record").offset).collect().await;
    assert_eq!(rest, (10..300).collect::<Vec<i64>>(), "each record once, in order");
    let values: Vec<String> = consume(&mut consumer, 0).await.iter().map(|r| text(&r.value)).collect();
    assert!(values.is_empty(), "nothing after the last: {values:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_first_in_the_list_does_not_hold_up_metadata() {
    let cluster = BrokerCluster::start(1, "");
    // A UDP port that takes datagrams and never answers: a SIGKILLed broker, as QUIC sees it.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr").to_string();
    let config = ClientConfig::new([silent_addr.clone(), cluster.brokers[0].addr.clone()])
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(20));
    let admin = Admin::new(config).expect("admin");
    let started = std::time::Instant::now();
    let described = admin.describe_cluster().await.expect("answered by the live broker");
    let took = started.elapsed();
    assert_eq!(described.brokers.len(), 1);
    // Hedged after 250 ms rather than waiting out the silent one (the previous rule gave it
    // request.timeout.ms / 4, here 5 s, clamped to 2 s).
    assert!(
        took < Duration::from_millis(1500),
        "the metadata took {took:?} with {silent_addr} silent first in the list"
    );
    drop(silent);
}
