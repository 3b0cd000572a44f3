//! The Kafka door against Kafka's own clients: kcat (Debian's, on librdkafka), and the Python
//! clients confluent-kafka (its bundled librdkafka) and kafka-python, over the brokers'
//! `SSL` listeners with the cluster's certificates, on a three-member keeper ensemble.
//!
//! A missing client fails the test and names the install command (`.ci/run` installs them);
//! nothing here passes without having run its peer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_certs::{CertSpec, Role};
use sluice_client::broker::proto::NewTopic;
use sluice_client::broker::{
    Acks, Admin, AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig,
    ProducerRecord,
};
use sluice_net::TlsFiles;
use sluice_tests::{poll_until, wait_for, BrokerCluster, JsonLines, TestPki};

const SSL_LISTENERS: &str = "listeners=quic://127.0.0.1:0,SSL://127.0.0.1:0\n";

fn kcat() -> PathBuf {
    sluice_tests::peer("kcat", "apt-get install kcat")
}

/// librdkafka's TLS settings for `files`.
fn ssl_args(files: &TlsFiles) -> Vec<String> {
    vec![
        "-X".into(),
        "security.protocol=ssl".into(),
        "-X".into(),
        format!("ssl.ca.location={}", files.ca.display()),
        "-X".into(),
        format!("ssl.certificate.location={}", files.cert.display()),
        "-X".into(),
        format!("ssl.key.location={}", files.key.display()),
    ]
}

fn ssl_bootstrap(cluster: &BrokerCluster) -> String {
    cluster
        .brokers
        .iter()
        .filter_map(|b| b.kafka_addr("SSL").map(str::to_string))
        .collect::<Vec<_>>()
        .join(",")
}

fn run_kcat(args: &[String], stdin: Option<&[u8]>, timeout: Duration) -> std::process::Output {
    let mut child = Command::new(kcat())
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kcat");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write to kcat");
    }
    let pid = child.id();
    // Bounded: a kcat still running at the deadline is killed, and what it printed shown.
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match done.recv_timeout(timeout) {
        Ok(out) => out,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            done.recv().expect("kcat's output after the kill")
        }
    };
    out.expect("kcat output")
}

#[test]
fn kcat_produces_and_reads_back_ten_thousand_lines_and_strangers_are_refused() {
    let kcat_path = kcat();
    let cluster = BrokerCluster::start_on(3, 3, SSL_LISTENERS, "");
    let client = cluster.client_files();
    let bootstrap = ssl_bootstrap(&cluster);
    assert_eq!(bootstrap.split(',').count(), 3, "every broker printed its SSL listener");

    // A topic of three partitions on three replicas, made through the door itself by
    // auto-creation is not what we want: create it with kcat's metadata request? kcat cannot
    // create topics, so the topic is auto-created by the first produce (the broker's
    // auto.create.topics.enable, default true) with num.partitions.
    let lines: Vec<String> = (0..10_000).map(|i| format!("line-{i:05}")).collect();
    let input = lines.join("\n") + "\n";
    let mut produce = vec!["-P".to_string(), "-b".into(), bootstrap.clone(), "-t".into(), "kcat".into()];
    produce.extend(ssl_args(&client));
    let out = run_kcat(&produce, Some(input.as_bytes()), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{} -P failed: {}\n{}",
        kcat_path.display(),
        String::from_utf8_lossy(&out.stderr),
        cluster.log_tails(30)
    );

    let mut consume = vec![
        "-C".to_string(),
        "-b".into(),
        bootstrap.clone(),
        "-t".into(),
        "kcat".into(),
        "-o".into(),
        "beginning".into(),
        "-e".into(),
        "-f".into(),
        "%s\n".into(),
    ];
    consume.extend(ssl_args(&client));
    let out = run_kcat(&consume, None, Duration::from_secs(60));
    assert!(out.status.success(), "kcat -C failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got.len(), lines.len(), "every line read back once");
    assert_eq!(got, lines);

    // No certificate: refused at the handshake.
    let mut no_cert = vec![
        "-L".to_string(),
        "-b".into(),
        bootstrap.clone(),
        "-m".into(),
        "5".into(),
        "-X".into(),
        "security.protocol=ssl".into(),
        "-X".into(),
        format!("ssl.ca.location={}", client.ca.display()),
    ];
    no_cert.push("-J".into());
    let out = run_kcat(&no_cert, None, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "a client without a certificate was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A certificate from another CA: refused too.
    let stranger_pki = TestPki::new("stranger");
    let mut stranger = stranger_pki.issue(CertSpec::new("mallory", Role::Client));
    stranger.ca = client.ca.clone();
    let mut other_ca = vec!["-L".to_string(), "-b".into(), bootstrap, "-m".into(), "5".into()];
    other_ca.extend(ssl_args(&stranger));
    let out = run_kcat(&other_ca, None, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "a certificate of another CA was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The brokers say why.
    let refused = poll_until(Duration::from_secs(10), || {
        let logs = cluster.log_tails(400);
        if logs.contains("TLS handshake") {
            Ok(())
        } else {
            Err("no broker logged a refused TLS handshake".to_string())
        }
    });
    refused.expect("refusals logged");
}

/// `python3` with Kafka's Python clients, or a panic naming the install command.
fn python() -> PathBuf {
    sluice_tests::python_with(
        "confluent_kafka, kafka",
        "Kafka's Python clients",
        "pip install confluent-kafka kafka-python",
    )
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/kafka_clients.py")
}

/// A running `kafka_clients.py` command, its JSON lines arriving on a channel.
type Py = JsonLines;

/// Starts `kafka_clients.py <args[0]> --bootstrap ... --tls ... <args[1..]>`.
fn py(cluster: &BrokerCluster, args: &[&str]) -> Py {
    let client = cluster.client_files();
    let name = client.cert.file_stem().and_then(|s| s.to_str()).expect("cert name").to_string();
    let dir = client.cert.parent().expect("cert dir").display().to_string();
    let mut command = Command::new(python());
    command
        .arg(script())
        .args(&args[..1])
        .args(["--bootstrap", &ssl_bootstrap(cluster), "--tls", &format!("{dir}:{name}")])
        .args(&args[1..]);
    JsonLines::spawn(&mut command, args.join(" "))
}

fn sdk(cluster: &BrokerCluster) -> ClientConfig {
    ClientConfig::new(cluster.bootstrap().split(',').map(str::to_string))
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(20))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn create(cluster: &BrokerCluster, topic: NewTopic) {
    let name = topic.name.clone();
    runtime().block_on(async {
        let admin = Admin::new(sdk(cluster)).expect("admin");
        let r = admin.create_topics(vec![topic], false).await.expect("create");
        assert!(r.iter().all(|(_, r)| r.is_ok()), "creating {name}: {r:?}");
        // Wait for leaders everywhere.
        let led = wait_for(Duration::from_secs(30), || async {
            let t = admin.describe_topics(vec![name.clone()]).await.expect("describe");
            t.iter().all(|t| {
                t.error.is_none()
                    && !t.partitions.is_empty()
                    && t.partitions.iter().all(|p| p.leader.is_some())
            })
        })
        .await;
        assert!(led, "{name} got no leaders: {:?}", admin.describe_topics(vec![name.clone()]).await);
    });
}

/// The broker leading `topic`-`partition`.
fn leader_of(cluster: &BrokerCluster, topic: &str, partition: i32) -> i32 {
    runtime().block_on(async {
        let admin = Admin::new(sdk(cluster)).expect("admin");
        let t = admin.describe_topics(vec![topic.to_string()]).await.expect("describe");
        t[0].partitions.iter().find(|p| p.partition == partition).and_then(|p| p.leader).expect("a leader")
    })
}

#[test]
fn idempotent_librdkafka_producers_lose_and_repeat_nothing_when_the_leader_is_killed() {
    let mut cluster = BrokerCluster::start_on(3, 3, SSL_LISTENERS, "");
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("idempotent-{codec}");
        create(&cluster, NewTopic::new(&topic, 3, 3).with_config("min.insync.replicas", "2"));
        let count = 3000;
        let producer = py(
            &cluster,
            &[
                "produce",
                "--topic",
                &topic,
                "--count",
                &count.to_string(),
                "--acks",
                "all",
                "--idempotent",
                "--compression",
                codec,
                "--prefix",
                codec,
                "--pace-ms",
                "1",
            ],
        );
        // Kill partition 0's leader once a few hundred records are acknowledged.
        let mut acked = Vec::new();
        while acked.len() < 300 {
            let line = producer
                .next(Duration::from_secs(60))
                .unwrap_or_else(|| panic!("{codec}: no acknowledgements"));
            assert_ne!(line["event"], "failed", "{codec}: {line}");
            if line["event"] == "acked" {
                acked.push(line);
            }
        }
        let victim = leader_of(&cluster, &topic, 0);
        cluster.brokers[(victim - 1) as usize].kill();
        let (rest, ok) = producer.finish(Duration::from_secs(100));
        acked.extend(rest.iter().filter(|l| l["event"] == "acked").cloned());
        let failed: Vec<&Value> = rest.iter().filter(|l| l["event"] == "failed").collect();
        assert!(ok && failed.is_empty(), "{codec}: the producer failed: {failed:?} {:?}", rest.last());
        assert_eq!(acked.len(), count, "{codec}: every record acknowledged");

        // Read everything back through the door.
        let (read, ok) =
            py(&cluster, &["consume", "--topic", &topic, "--timeout", "60"]).finish(Duration::from_secs(90));
        assert!(ok, "{codec}: the consumer failed: {:?}", read.last());
        let records: Vec<&Value> = read.iter().filter(|l| l["event"] == "record").collect();
        let mut seen: HashMap<String, (i64, i64)> = HashMap::new();
        for r in &records {
            let value = r["value"].as_str().expect("value").to_string();
            let at = (r["partition"].as_i64().expect("p"), r["offset"].as_i64().expect("o"));
            if let Some(first) = seen.insert(value.clone(), at) {
                panic!(
                    "{codec}: {value} is in the log twice: (partition, offset) {first:?} and {at:?}\n{}",
                    cluster.log_tails(60)
                );
            }
        }
        for a in &acked {
            let value = a["value"].as_str().expect("value");
            let partition = a["partition"].as_i64().expect("p");
            match a["offset"].as_i64() {
                Some(offset) => assert_eq!(
                    seen.get(value),
                    Some(&(partition, offset)),
                    "{codec}: {value} acknowledged at {partition}/{offset}"
                ),
                // librdkafka acknowledges a resent batch without an offset when a later batch
                // of the same producer was acknowledged first (an implied ack): the record
                // must still be in the partition, once (checked above).
                None => assert_eq!(
                    seen.get(value).map(|at| at.0),
                    Some(partition),
                    "{codec}: {value} acknowledged (without an offset) in partition {partition}"
                ),
            }
        }
        assert_eq!(records.len(), count, "{codec}: nothing but the acknowledged records");
        // Per key, the records are in the order sent (one key, one partition).
        let mut by_key: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
        for r in &records {
            let n: i64 = r["headers"]["n"].as_str().and_then(|n| n.parse().ok()).expect("header n");
            by_key
                .entry(r["key"].as_str().expect("key").to_string())
                .or_default()
                .push((r["offset"].as_i64().expect("o"), n));
        }
        for (key, mut list) in by_key {
            list.sort();
            assert!(list.windows(2).all(|w| w[0].1 < w[1].1), "{codec}: key {key} out of order: {list:?}");
        }
        cluster.brokers[(victim - 1) as usize].restart();
        cluster.wait_until_every_broker_sees_all(Duration::from_secs(30));
    }
}

#[test]
fn kafka_python_consumers_split_six_partitions_and_take_over_a_killed_members() {
    let mut cluster = BrokerCluster::start_on(3, 3, SSL_LISTENERS, "");
    create(&cluster, NewTopic::new("grouped", 6, 3));
    let (out, ok) = py(&cluster, &["produce", "--topic", "grouped", "--count", "600", "--prefix", "first"])
        .finish(Duration::from_secs(60));
    assert!(ok, "producing failed: {:?}", out.last());

    let members: Vec<Py> = (1..=3)
        .map(|i| {
            py(
                &cluster,
                &[
                    "group",
                    "--topic",
                    "grouped",
                    "--group",
                    "g1",
                    "--name",
                    &format!("m{i}"),
                    "--timeout",
                    "100",
                ],
            )
        })
        .collect();
    let mut assigned: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut values: BTreeSet<String> = BTreeSet::new();
    let drain = |members: &[Py], assigned: &mut BTreeMap<String, Vec<i64>>, values: &mut BTreeSet<String>| {
        for m in members {
            while let Some(line) = m.next(Duration::from_millis(1)) {
                let name = line["name"].as_str().unwrap_or("").to_string();
                match line["event"].as_str() {
                    Some("assigned") => {
                        let ps = line["partitions"]
                            .as_array()
                            .expect("list")
                            .iter()
                            .filter_map(Value::as_i64)
                            .collect();
                        assigned.insert(name, ps);
                    }
                    Some("record") => {
                        values.insert(line["value"].as_str().expect("value").to_string());
                    }
                    _ => {}
                }
            }
        }
    };
    let split = poll_until(Duration::from_secs(60), || {
        drain(&members, &mut assigned, &mut values);
        let all: Vec<i64> = assigned.values().flatten().copied().collect();
        let set: BTreeSet<i64> = all.iter().copied().collect();
        if assigned.len() == 3 && assigned.values().all(|p| p.len() == 2) && set.len() == 6 && all.len() == 6
        {
            Ok(())
        } else {
            Err(format!("assignments: {assigned:?}"))
        }
    });
    split.unwrap_or_else(|e| {
        panic!("three members did not split six partitions: {e}\n{}", cluster.log_tails(20))
    });

    // SIGKILL one member: its partitions move once its session times out.
    let mut members = members;
    let mut gone = members.pop().expect("third member");
    gone.kill();
    assigned.remove("m3");
    let moved = poll_until(Duration::from_secs(60), || {
        drain(&members, &mut assigned, &mut values);
        let set: BTreeSet<i64> = assigned.values().flatten().copied().collect();
        if set.len() == 6 && values.len() == 600 {
            Ok(())
        } else {
            Err(format!("assignments {assigned:?}, {} of 600 records", values.len()))
        }
    });
    moved.unwrap_or_else(|e| panic!("the killed member's partitions did not move: {e}"));
    // Let the survivors commit what they read, then close them cleanly.
    for m in &mut members {
        m.terminate();
    }
    for m in members {
        let (lines, _) = m.finish(Duration::from_secs(30));
        assert!(lines.iter().any(|l| l["event"] == "closed"), "a member did not close: {:?}", lines.last());
    }

    // Restart every broker: the group's commits are in __consumer_offsets and survive.
    for b in &mut cluster.brokers {
        b.restart();
    }
    cluster.wait_until_every_broker_sees_all(Duration::from_secs(30));
    let (out, ok) = py(&cluster, &["produce", "--topic", "grouped", "--count", "60", "--prefix", "second"])
        .finish(Duration::from_secs(60));
    assert!(ok, "producing failed: {:?}", out.last());
    let late =
        py(&cluster, &["group", "--topic", "grouped", "--group", "g1", "--name", "late", "--timeout", "100"]);
    let mut got: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 60 && Instant::now() < deadline {
        if let Some(line) = late.next(Duration::from_millis(200)) {
            if line["event"] == "record" {
                got.insert(line["value"].as_str().expect("value").to_string());
            }
        }
    }
    assert_eq!(got.len(), 60, "the new member read the 60 new records");
    assert!(got.iter().all(|v| v.starts_with("second")), "a committed record was read again: {got:?}");
}

#[test]
fn records_cross_between_the_sdk_and_librdkafka_field_for_field() {
    let cluster = BrokerCluster::start(1, SSL_LISTENERS);
    create(&cluster, NewTopic::new("interop", 2, 1));
    // SDK → librdkafka.
    let sent: Vec<ProducerRecord> = (0..50)
        .map(|i| {
            ProducerRecord::new("interop", format!("sdk-{i}"))
                .with_key(format!("key-{}", i % 5))
                .with_header("origin", Some(bytes::Bytes::from_static(b"sdk")))
                .with_header("n", Some(bytes::Bytes::from(i.to_string())))
                .with_timestamp(1_700_000_000_000 + i)
        })
        .collect();
    let placed: Vec<(i32, i64)> = runtime().block_on(async {
        let producer = Producer::new(ProducerConfig::new(sdk(&cluster)).acks(Acks::All)).expect("producer");
        let mut acks = Vec::new();
        for r in sent.clone() {
            acks.push(producer.send(r).await.expect("send"));
        }
        let mut placed = Vec::new();
        for a in acks {
            let m = a.await.expect("acknowledged");
            placed.push((m.partition, m.offset));
        }
        producer.close().await;
        placed
    });
    let (read, ok) =
        py(&cluster, &["consume", "--topic", "interop", "--timeout", "60"]).finish(Duration::from_secs(90));
    assert!(ok, "librdkafka did not read: {:?}", read.last());
    let records: Vec<&Value> = read.iter().filter(|l| l["event"] == "record").collect();
    assert_eq!(records.len(), sent.len());
    for (i, (partition, offset)) in placed.iter().enumerate() {
        let r = records
            .iter()
            .find(|r| {
                r["partition"].as_i64() == Some(i64::from(*partition))
                    && r["offset"].as_i64() == Some(*offset)
            })
            .unwrap_or_else(|| panic!("record {i} at {partition}/{offset} not read"));
        assert_eq!(r["value"], format!("sdk-{i}"));
        assert_eq!(r["key"], format!("key-{}", i % 5));
        assert_eq!(r["headers"]["origin"], "sdk");
        assert_eq!(r["headers"]["n"], i.to_string());
        assert_eq!(r["timestamp"].as_i64(), Some(1_700_000_000_000 + i as i64));
    }

    // librdkafka → SDK.
    let (acks, ok) = py(&cluster, &["produce", "--topic", "interop", "--count", "40", "--prefix", "rd"])
        .finish(Duration::from_secs(60));
    assert!(ok, "librdkafka did not produce: {:?}", acks.last());
    let acked: Vec<&Value> = acks.iter().filter(|l| l["event"] == "acked").collect();
    assert_eq!(acked.len(), 40);
    let got = runtime().block_on(async {
        let mut consumer =
            Consumer::new(ConsumerConfig::new(sdk(&cluster)).auto_offset_reset(AutoOffsetReset::Earliest))
                .expect("consumer");
        consumer.assign([("interop".to_string(), 0), ("interop".to_string(), 1)]);
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while out.len() < 90 && Instant::now() < deadline {
            out.extend(consumer.poll(Duration::from_millis(500)).await.expect("poll"));
        }
        out
    });
    for a in acked {
        let (p, o) = (a["partition"].as_i64().expect("p") as i32, a["offset"].as_i64().expect("o"));
        let r = got
            .iter()
            .find(|r| r.partition == p && r.offset == o)
            .unwrap_or_else(|| panic!("{a} not read by the SDK"));
        assert_eq!(r.value.as_deref(), a["value"].as_str().map(str::as_bytes));
        assert_eq!(r.key.as_deref(), a["key"].as_str().map(str::as_bytes));
        let n = r.headers.iter().find(|(k, _)| k == "n").and_then(|(_, v)| v.clone()).expect("header n");
        let value = a["value"].as_str().expect("value");
        assert_eq!(format!("rd-{:06}", String::from_utf8_lossy(&n).parse::<u32>().expect("n")), value);
    }
}

/// A raw Kafka connection over TLS, for requests Kafka's clients would never send.
struct Raw {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    correlation: i32,
}

impl Raw {
    async fn connect(addr: &str, files: &TlsFiles) -> Raw {
        Raw::try_connect(addr, files).await.expect("TLS handshake")
    }

    /// A connection, or `None` when the broker closes it during the handshake.
    async fn try_connect(addr: &str, files: &TlsFiles) -> Option<Raw> {
        let identity = sluice_net::TlsIdentity::load(files).expect("client identity");
        let config =
            sluice_net::tls::tcp_client_config(&sluice_net::ClientTls::new(identity)).expect("tls config");
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_name("127.0.0.1");
        let stream = connector.connect(name, tcp).await.ok()?;
        Some(Raw { stream, correlation: 0 })
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// Sends `body` as `key` v`version`; the raw frame, size prefix included.
    fn frame<T: kafka_protocol::protocol::Encodable>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        body: &T,
    ) -> Vec<u8> {
        use kafka_protocol::protocol::Encodable;
        self.correlation += 1;
        let mut header = kafka_protocol::messages::RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(kafka_protocol::protocol::StrBytes::from_static_str("raw"));
        let mut b = bytes::BytesMut::new();
        header.encode(&mut b, key.request_header_version(version)).expect("header");
        body.encode(&mut b, version).expect("body");
        let mut out = (b.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&b);
        out
    }

    /// Reads one answer of `key` v`version`, or `None` when the broker closed the connection.
    async fn answer<T: kafka_protocol::protocol::Decodable>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
    ) -> Option<(i32, T)> {
        use kafka_protocol::protocol::Decodable;
        use tokio::io::AsyncReadExt;
        let read = async {
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size).await.ok()?;
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(body)
        };
        let body = tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("an answer or a close within 20 s")?;
        let mut body = bytes::Bytes::from(body);
        let header =
            kafka_protocol::messages::ResponseHeader::decode(&mut body, key.response_header_version(version))
                .expect("response header");
        Some((header.correlation_id, T::decode(&mut body, version).expect("response body")))
    }

    async fn call<Q: kafka_protocol::protocol::Encodable, A: kafka_protocol::protocol::Decodable>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        body: &Q,
    ) -> Option<A> {
        let frame = self.frame(key, version, body);
        self.send_bytes(&frame).await;
        let want = self.correlation;
        let (got, answer) = self.answer::<A>(key, version).await?;
        assert_eq!(got, want, "answers come back in order");
        Some(answer)
    }
}

fn rustls_pki_name(host: &str) -> tokio_rustls::rustls::pki_types::ServerName<'static> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string()).expect("server name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_kafkas_answer_or_close_and_other_connections_carry_on() {
    use kafka_protocol::messages::{self as k, ApiKey};
    let cluster = BrokerCluster::start(1, &format!("{SSL_LISTENERS}socket.request.max.bytes=1048576\n"));
    let addr = cluster.brokers[0].kafka_addr("SSL").expect("SSL listener").to_string();
    let files = cluster.client_files();
    {
        let admin = Admin::new(sdk(&cluster)).expect("admin");
        let r = admin
            .create_topics(
                vec![NewTopic::new("small", 1, 1).with_config("max.message.bytes", "10000")],
                false,
            )
            .await
            .expect("create");
        assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    }

    let mut healthy = Raw::connect(&addr, &files).await;
    let versions: k::ApiVersionsResponse =
        healthy.call(ApiKey::ApiVersions, 3, &k::ApiVersionsRequest::default()).await.expect("answered");
    assert_eq!(versions.error_code, 0);
    assert!(versions.api_keys.iter().any(|a| a.api_key == ApiKey::Produce as i16));

    // A size prefix over socket.request.max.bytes: the connection is closed.
    let mut oversize = Raw::connect(&addr, &files).await;
    oversize.send_bytes(&(8i32 << 20).to_be_bytes()).await;
    assert!(oversize.answer::<k::ApiVersionsResponse>(ApiKey::ApiVersions, 0).await.is_none(), "closed");

    // An unknown API key: closed.
    let mut unknown = Raw::connect(&addr, &files).await;
    let mut frame = unknown.frame(ApiKey::ApiVersions, 0, &k::ApiVersionsRequest::default());
    frame[4..6].copy_from_slice(&999i16.to_be_bytes());
    unknown.send_bytes(&frame).await;
    assert!(unknown.answer::<k::ApiVersionsResponse>(ApiKey::ApiVersions, 0).await.is_none(), "closed");

    // An ApiVersions newer than any served: answered with v0, UNSUPPORTED_VERSION and the
    // versions served, so the client can retry with one of them.
    let mut newer = Raw::connect(&addr, &files).await;
    let mut frame = newer.frame(ApiKey::ApiVersions, 3, &k::ApiVersionsRequest::default());
    frame[6..8].copy_from_slice(&42i16.to_be_bytes());
    newer.send_bytes(&frame).await;
    let (_, answer) = newer.answer::<k::ApiVersionsResponse>(ApiKey::ApiVersions, 0).await.expect("answered");
    assert_eq!(answer.error_code, 35);
    assert!(answer.api_keys.iter().any(|a| a.api_key == ApiKey::Fetch as i16));

    // A body that does not decode: closed.
    let mut garbled = Raw::connect(&addr, &files).await;
    let mut frame = garbled.frame(ApiKey::Metadata, 12, &k::MetadataRequest::default());
    frame.truncate(frame.len() - 1);
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    garbled.send_bytes(&frame).await;
    assert!(garbled.answer::<k::MetadataResponse>(ApiKey::Metadata, 12).await.is_none(), "closed");

    // A produce over the topic's max.message.bytes: MESSAGE_TOO_LARGE for its partition.
    let mut producer = Raw::connect(&addr, &files).await;
    let record = kafka_protocol::records::Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(bytes::Bytes::from(vec![b'x'; 20_000])),
        headers: Default::default(),
    };
    let mut records = bytes::BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut records,
        &[record],
        &kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: kafka_protocol::records::Compression::None,
        },
    )
    .expect("encode");
    let mut partition = k::produce_request::PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(records.freeze());
    let mut topic = k::produce_request::TopicProduceData::default();
    topic.name = k::TopicName(kafka_protocol::protocol::StrBytes::from_static_str("small"));
    topic.partition_data.push(partition);
    let mut produce = k::ProduceRequest::default();
    produce.acks = 1;
    produce.timeout_ms = 10_000;
    produce.topic_data.push(topic);
    let answer: k::ProduceResponse = producer.call(ApiKey::Produce, 9, &produce).await.expect("answered");
    let p = &answer.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 10, "MESSAGE_TOO_LARGE: {p:?}");

    // An acks=0 produce has no answer to carry its error: the connection is closed instead
    // (Kafka's way of telling the producer to refresh its metadata).
    let mut blind = Raw::connect(&addr, &files).await;
    produce.acks = 0;
    produce.topic_data[0].partition_data[0].index = 9;
    let frame = blind.frame(ApiKey::Produce, 9, &produce);
    blind.send_bytes(&frame).await;
    assert!(blind.answer::<k::ProduceResponse>(ApiKey::Produce, 9).await.is_none(), "closed");

    // The first connection never noticed.
    let mut all_topics = k::MetadataRequest::default();
    all_topics.topics = None;
    let metadata: k::MetadataResponse =
        healthy.call(ApiKey::Metadata, 12, &all_topics).await.expect("still served");
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(
        metadata.brokers[0].port,
        addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0)
    );
    assert!(metadata.topics.iter().any(|t| t.name.as_ref().is_some_and(|n| &*n.0 == "small")));

    // Each refusal is logged with the client's address and the API.
    let logs = cluster.log_tails(200);
    for want in ["larger than socket.request.max.bytes", "unknown API key 999", "does not decode"] {
        assert!(logs.contains(want), "no log line says {want:?}:\n{logs}");
    }
}

#[test]
fn admin_client_creates_describes_alters_grows_deletes_records_of_and_deletes_topics() {
    let cluster = BrokerCluster::start_on(3, 3, SSL_LISTENERS, "");
    let (lines, ok) = py(&cluster, &["admin", "--topic", "administered"]).finish(Duration::from_secs(110));
    let step = |name: &str| -> &Value {
        lines.iter().find(|l| l["step"] == name).unwrap_or_else(|| panic!("no step {name}: {lines:?}"))
    };
    assert!(ok, "the admin script failed: {lines:?}");
    assert_eq!(step("create")["result"]["administered"], Value::Null, "created");
    let again = step("create-again")["result"]["administered"].as_str().unwrap_or("");
    assert!(again.contains("TOPIC_ALREADY_EXISTS") || again.contains("already exists"), "{again}");
    let partitions = step("describe")["partitions"].as_object().expect("partitions");
    assert_eq!(partitions.len(), 2);
    assert!(partitions.values().all(|p| p["replicas"].as_array().map(Vec::len) == Some(3)));
    assert_eq!(step("describe-configs")["configs"]["retention.ms"], "3600000");
    assert_eq!(
        step("describe-configs")["configs"]["cleanup.policy"],
        "delete",
        "keys without an override show the broker's default"
    );
    assert_eq!(
        step("describe-configs")["configs"].as_object().map(|m| m.len()),
        Some(sluice_broker_core::topic::TOPIC_CONFIG_KEYS.len()),
        "every topic key"
    );
    assert_eq!(
        step("alter-configs")["result"].as_object().map(|m| m.values().all(Value::is_null)),
        Some(true)
    );
    assert_eq!(step("describe-configs-after")["configs"]["retention.ms"], "7200000");
    assert_eq!(step("describe-configs-after")["configs"]["max.message.bytes"], "2000");
    let refused = step("oversize-after-alter")["outcome"].as_str().unwrap_or("").to_string();
    assert!(
        refused.to_lowercase().contains("too large"),
        "a record over the new max.message.bytes: {refused}"
    );
    assert_eq!(step("create-partitions")["result"]["administered"], Value::Null);
    assert_eq!(step("partitions-after")["count"], 4);
    assert_eq!(step("produce-for-delete")["unsent"], 0);
    let deleted = &step("delete-records")["result"];
    assert_eq!(deleted["0"]["low_watermark"], 6, "{deleted}");
    let refused = deleted["1"]["error"].as_str().unwrap_or("");
    assert!(refused.contains("OFFSET_OUT_OF_RANGE") || refused.contains("out of range"), "{deleted}");
    assert_eq!(step("earliest-after-delete")["offset"], 6);
    let cluster_view = step("describe-cluster");
    assert_eq!(cluster_view["brokers"], serde_json::json!([1, 2, 3]));
    assert!((1..=3).contains(&cluster_view["controller"].as_i64().unwrap_or(0)), "{cluster_view}");
    assert!(cluster_view["cluster_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(step("delete")["result"]["administered"], Value::Null);
    assert_eq!(step("deleted")["gone"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_lists_this_brokers_partitions_and_offset_delete_removes_a_commit() {
    use kafka_protocol::messages::{self as k, ApiKey};
    use kafka_protocol::protocol::StrBytes;
    let cluster = BrokerCluster::start(1, &format!("{SSL_LISTENERS}offsets.topic.replication.factor=1\n"));
    let addr = cluster.brokers[0].kafka_addr("SSL").expect("SSL listener").to_string();
    {
        let admin = Admin::new(sdk(&cluster)).expect("admin");
        let r = admin.create_topics(vec![NewTopic::new("dirs", 2, 1)], false).await.expect("create");
        assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
        let producer = Producer::new(ProducerConfig::new(sdk(&cluster)).acks(Acks::All)).expect("producer");
        for i in 0..20 {
            let ack = producer
                .send(ProducerRecord::new("dirs", format!("v{i}")).with_partition(0))
                .await
                .expect("send");
            ack.await.expect("acknowledged");
        }
        producer.close().await;
    }
    let mut raw = Raw::connect(&addr, &cluster.client_files()).await;

    let mut every_topic = k::DescribeLogDirsRequest::default();
    every_topic.topics = None;
    let dirs: k::DescribeLogDirsResponse =
        raw.call(ApiKey::DescribeLogDirs, 4, &every_topic).await.expect("answered");
    assert_eq!(dirs.error_code, 0);
    let logs = &cluster.brokers[0].log_dir;
    let dir = dirs
        .results
        .iter()
        .find(|d| Path::new(d.log_dir.as_str()) == logs.as_path())
        .expect("the broker's log dir");
    let topic = dir
        .topics
        .iter()
        .find(|t| &*t.name.0 == "dirs")
        .unwrap_or_else(|| panic!("the topic is not listed: {dirs:?}"));
    let sizes: BTreeMap<i32, i64> =
        topic.partitions.iter().map(|p| (p.partition_index, p.partition_size)).collect();
    assert_eq!(sizes.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    assert!(sizes[&0] > 0 && sizes[&1] == 0, "partition 0 holds the records: {sizes:?}");

    // A standalone consumer's commit (generation -1), then OffsetDelete. As a client does,
    // find the coordinator first (the first ask creates __consumer_offsets).
    let mut find = k::FindCoordinatorRequest::default();
    find.key = StrBytes::from_static_str("cleanup");
    let files = cluster.client_files();
    let found = wait_for(Duration::from_secs(30), || async {
        let mut asking = Raw::connect(&addr, &files).await;
        let found: k::FindCoordinatorResponse =
            asking.call(ApiKey::FindCoordinator, 3, &find).await.expect("answered");
        assert!(
            found.error_code == 0 || found.error_code == 15,
            "COORDINATOR_NOT_AVAILABLE while __consumer_offsets is made, then none: {found:?}"
        );
        found.error_code == 0
    })
    .await;
    assert!(found, "no coordinator within 30 s");
    let coordinator: k::FindCoordinatorResponse =
        raw.call(ApiKey::FindCoordinator, 3, &find).await.expect("answered");
    assert_eq!((coordinator.error_code, coordinator.node_id.0), (0, 1));
    let tn = || k::TopicName(StrBytes::from_static_str("dirs"));
    let mut commit = k::OffsetCommitRequest::default();
    commit.group_id = k::GroupId(StrBytes::from_static_str("cleanup"));
    commit.generation_id_or_member_epoch = -1;
    let mut t = k::offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = tn();
    let mut p = k::offset_commit_request::OffsetCommitRequestPartition::default();
    p.committed_offset = 12;
    t.partitions.push(p);
    commit.topics.push(t);
    // COORDINATOR_LOAD_IN_PROGRESS while the coordinator reads its offsets partition: retry.
    let committed = wait_for(Duration::from_secs(30), || async {
        let mut committing = Raw::connect(&addr, &files).await;
        let committed: k::OffsetCommitResponse =
            committing.call(ApiKey::OffsetCommit, 8, &commit).await.expect("answered");
        match committed.topics[0].partitions[0].error_code {
            0 => true,
            14 => false,
            other => panic!("the commit failed with {other}"),
        }
    })
    .await;
    assert!(committed, "the commit was not taken within 30 s");

    let fetch_offsets = |raw_topics: Option<Vec<i32>>| {
        let mut f = k::OffsetFetchRequest::default();
        f.group_id = k::GroupId(StrBytes::from_static_str("cleanup"));
        f.topics = raw_topics.map(|ps| {
            let mut t = k::offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = tn();
            t.partition_indexes = ps;
            vec![t]
        });
        f
    };
    let before: k::OffsetFetchResponse =
        raw.call(ApiKey::OffsetFetch, 7, &fetch_offsets(Some(vec![0]))).await.expect("answered");
    assert_eq!(before.topics[0].partitions[0].committed_offset, 12);

    let mut delete = k::OffsetDeleteRequest::default();
    delete.group_id = k::GroupId(StrBytes::from_static_str("cleanup"));
    let mut dt = k::offset_delete_request::OffsetDeleteRequestTopic::default();
    dt.name = tn();
    dt.partitions.push(k::offset_delete_request::OffsetDeleteRequestPartition::default());
    delete.topics.push(dt);
    let deleted: k::OffsetDeleteResponse =
        raw.call(ApiKey::OffsetDelete, 0, &delete).await.expect("answered");
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0);
    let after: k::OffsetFetchResponse =
        raw.call(ApiKey::OffsetFetch, 7, &fetch_offsets(Some(vec![0]))).await.expect("answered");
    assert_eq!(after.topics[0].partitions[0].committed_offset, -1, "the commit is gone");

    // A group that does not exist: GROUP_ID_NOT_FOUND.
    delete.group_id = k::GroupId(StrBytes::from_static_str("never"));
    let missing: k::OffsetDeleteResponse =
        raw.call(ApiKey::OffsetDelete, 0, &delete).await.expect("answered");
    assert_eq!(missing.error_code, 69);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_per_ip_and_idle_ones_are_closed() {
    use kafka_protocol::messages::{self as k, ApiKey};
    let cluster = BrokerCluster::start(
        1,
        &format!(
            "{SSL_LISTENERS}max.connections.per.ip=2\nconnections.max.idle.ms=1000\n\
             metrics.port=0\nmetrics.host=127.0.0.1\n"
        ),
    );
    let addr = cluster.brokers[0].kafka_addr("SSL").expect("SSL listener").to_string();
    let files = cluster.client_files();
    let mut first = Raw::connect(&addr, &files).await;
    let mut second = Raw::connect(&addr, &files).await;
    for c in [&mut first, &mut second] {
        let v: k::ApiVersionsResponse =
            c.call(ApiKey::ApiVersions, 3, &k::ApiVersionsRequest::default()).await.expect("served");
        assert_eq!(v.error_code, 0);
    }
    // A third from the same address is closed at accept (the TLS handshake fails, or the
    // first request finds the connection closed).
    if let Some(mut third) = Raw::try_connect(&addr, &files).await {
        let answer: Option<k::ApiVersionsResponse> =
            third.call(ApiKey::ApiVersions, 3, &k::ApiVersionsRequest::default()).await;
        assert!(answer.is_none(), "a third connection from one address was served");
    }
    // Idle for longer than connections.max.idle.ms: closed by the broker.
    let closed = async {
        let mut byte = [0u8; 1];
        use tokio::io::AsyncReadExt;
        first.stream.read(&mut byte).await
    };
    match tokio::time::timeout(Duration::from_secs(20), closed).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        other => panic!("an idle connection was not closed: {other:?}"),
    }
    // Its place is free again: a new connection is served.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(mut again) = Raw::try_connect(&addr, &files).await {
            let v: Option<k::ApiVersionsResponse> =
                again.call(ApiKey::ApiVersions, 3, &k::ApiVersionsRequest::default()).await;
            if v.is_some() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no connection served after the idle one closed");
    }
    let logs = cluster.log_tails(100);
    assert!(logs.contains("max.connections.per.ip"), "the refusal is logged: {logs}");
    // And counted, beside the door's requests, on the broker's metrics endpoint.
    let metrics = cluster.brokers[0].metrics.clone().expect("a metrics endpoint");
    let scraped = poll_until(Duration::from_secs(10), || {
        let (_, body) =
            sluice_tests::http_get(&format!("http://{metrics}/metrics")).map_err(|e| e.to_string())?;
        let wanted = [
            r#"sluice_rpc_requests_total{protocol="kafka",rpc="ApiVersions"}"#,
            r#"sluice_kafka_connections_refused_total{listener="SSL",reason="max.connections.per.ip"}"#,
            r#"sluice_kafka_connections{listener="SSL"}"#,
        ];
        match wanted.iter().find(|w| !body.contains(*w)) {
            None => Ok(()),
            Some(w) => Err(format!("no {w} in:\n{body}")),
        }
    });
    scraped.expect("the door's series");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_through_the_controller_and_broker_defaults_through_the_door() {
    use kafka_protocol::messages::{self as k, ApiKey};
    use kafka_protocol::protocol::StrBytes;
    let mut cluster = BrokerCluster::start(3, SSL_LISTENERS);
    let admin = Admin::new(sdk(&cluster)).expect("admin");
    let topic = NewTopic {
        name: "elect".into(),
        partitions: None,
        replication_factor: None,
        assignment: Some([(0, vec![2, 1, 3])].into()),
        configs: BTreeMap::new(),
    };
    let r = admin.create_topics(vec![topic], false).await.expect("create");
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    let state = |admin: &Admin| {
        let admin = admin.clone();
        async move {
            let t = admin.describe_topics(vec!["elect".into()]).await.expect("describe");
            t[0].partitions.first().map(|p| (p.leader, p.isr.clone()))
        }
    };
    let leads_2 = || async { state(&admin).await.and_then(|s| s.0) == Some(2) };
    assert!(wait_for(Duration::from_secs(30), leads_2).await, "broker 2 never led elect-0");
    // Broker 2 stops cleanly (its leadership moves at once) and comes back as a follower.
    let b2 = &mut cluster.brokers[1];
    assert!(b2.terminate(Duration::from_secs(30)), "broker 2 stopped cleanly");
    b2.restart();
    let following = wait_for(Duration::from_secs(60), || async {
        matches!(state(&admin).await, Some((Some(leader), isr)) if leader != 2 && isr.contains(&2))
    })
    .await;
    assert!(following, "broker 2 did not rejoin the ISR as a follower: {:?}", state(&admin).await);
    // Ask a broker that is not the controller: it forwards to the controller.
    let controller = admin.describe_cluster().await.expect("cluster").controller.expect("a controller").id;
    let asked = cluster.brokers.iter().find(|b| b.id != controller && b.id != 2).expect("a third broker");
    let mut raw = Raw::connect(asked.kafka_addr("SSL").expect("SSL"), &cluster.client_files()).await;
    let mut req = k::ElectLeadersRequest::default();
    req.election_type = 0;
    let mut tp = k::elect_leaders_request::TopicPartitions::default();
    tp.topic = k::TopicName(StrBytes::from_static_str("elect"));
    tp.partitions = vec![0, 7];
    req.topic_partitions = Some(vec![tp]);
    req.timeout_ms = 10_000;
    let answer: k::ElectLeadersResponse = raw.call(ApiKey::ElectLeaders, 2, &req).await.expect("answered");
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let results: BTreeMap<i32, i16> = answer.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| (p.partition_id, p.error_code))
        .collect();
    assert_eq!(
        results,
        [(0, 0), (7, 3)].into(),
        "elected; and UNKNOWN_TOPIC_OR_PARTITION for a partition that is not there"
    );
    assert!(wait_for(Duration::from_secs(30), leads_2).await, "broker 2 did not get elect-0 back");
    // Again: nothing to do.
    let again: k::ElectLeadersResponse = raw.call(ApiKey::ElectLeaders, 2, &req).await.expect("answered");
    assert_eq!(again.replica_election_results[0].partition_result[0].error_code, 84, "ELECTION_NOT_NEEDED");
    // An unclean election (type 1) of a partition that has a live leader has nothing to do
    // either; an unknown type is refused.
    req.election_type = 1;
    let unclean: k::ElectLeadersResponse = raw.call(ApiKey::ElectLeaders, 2, &req).await.expect("answered");
    assert_eq!(unclean.error_code, 0, "{unclean:?}");
    assert_eq!(unclean.replica_election_results[0].partition_result[0].error_code, 84, "ELECTION_NOT_NEEDED");
    req.election_type = 5;
    let unknown: k::ElectLeadersResponse = raw.call(ApiKey::ElectLeaders, 2, &req).await.expect("answered");
    assert_eq!(unknown.error_code, 42, "INVALID_REQUEST: {unknown:?}");

    // The cluster-wide dynamic broker defaults are a broker resource with an empty name
    // (librdkafka will not send one; Kafka's Java admin and kafka-configs.sh do); one broker's
    // own dynamic configs a broker resource named by its id.
    let alter = |broker: &'static str, key: &'static str, value: &'static str| {
        let mut alter = k::IncrementalAlterConfigsRequest::default();
        let mut res = k::incremental_alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 4;
        res.resource_name = StrBytes::from_static_str(broker);
        let mut c = k::incremental_alter_configs_request::AlterableConfig::default();
        c.name = StrBytes::from_static_str(key);
        c.value = Some(StrBytes::from_static_str(value));
        res.configs = vec![c];
        alter.resources = vec![res];
        alter
    };
    let describe = |broker: &'static str| {
        let mut describe = k::DescribeConfigsRequest::default();
        let mut res = k::describe_configs_request::DescribeConfigsResource::default();
        res.resource_type = 4;
        res.resource_name = StrBytes::from_static_str(broker);
        res.configuration_keys = None;
        describe.resources = vec![res];
        describe
    };
    let found = |described: &k::DescribeConfigsResponse| -> Vec<(String, Option<String>, i8)> {
        described.results[0]
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()), c.config_source))
            .collect()
    };
    let retention_bytes = ("log.retention.bytes".to_string(), Some("1073741824".to_string()), 3);
    let altered: k::IncrementalAlterConfigsResponse = raw
        .call(ApiKey::IncrementalAlterConfigs, 1, &alter("", "log.retention.bytes", "1073741824"))
        .await
        .expect("answered");
    assert_eq!(altered.responses[0].error_code, 0, "{altered:?}");
    let described: k::DescribeConfigsResponse =
        raw.call(ApiKey::DescribeConfigs, 1, &describe("")).await.expect("answered");
    assert_eq!(
        found(&described),
        std::slice::from_ref(&retention_bytes),
        "the default, as DYNAMIC_DEFAULT_BROKER_CONFIG"
    );
    let altered: k::IncrementalAlterConfigsResponse = raw
        .call(ApiKey::IncrementalAlterConfigs, 1, &alter("2", "log.retention.ms", "86400000"))
        .await
        .expect("answered");
    assert_eq!(altered.responses[0].error_code, 0, "{altered:?}");
    let described: k::DescribeConfigsResponse =
        raw.call(ApiKey::DescribeConfigs, 1, &describe("2")).await.expect("answered");
    assert_eq!(
        found(&described),
        [retention_bytes, ("log.retention.ms".to_string(), Some("86400000".to_string()), 2)],
        "the default under broker 2's own (DYNAMIC_BROKER_CONFIG)"
    );
}

#[test]
fn kafka_python_moves_a_partition_with_alter_partition_reassignments() {
    let cluster = BrokerCluster::start_on(1, 3, SSL_LISTENERS, "");
    let topic = NewTopic {
        name: "moved".into(),
        partitions: None,
        replication_factor: None,
        assignment: Some([(0, vec![1])].into()),
        configs: BTreeMap::new(),
    };
    create(&cluster, topic);
    let (out, ok) =
        py(&cluster, &["produce", "--topic", "moved", "--count", "300"]).finish(Duration::from_secs(60));
    assert!(ok, "producing failed: {:?}", out.last());
    // --- kafka-python's AlterPartitionReassignments, then ListPartitionReassignments until empty
    let (out, ok) = py(&cluster, &["reassign", "--topic", "moved", "--target", "2,3", "--timeout", "60"])
        .finish(Duration::from_secs(90));
    assert!(ok, "kafka-python failed: {:?}", out.last());
    let alter = out.iter().find(|l| l["step"] == "alter").expect("the alter step");
    assert_eq!(alter["result"]["0"], Value::Null, "moved-0 accepted: {alter}");
    assert_eq!(alter["result"]["9"], "UnknownTopicOrPartitionError", "moved-9 does not exist: {alter}");
    for list in out.iter().filter(|l| l["step"] == "list") {
        if let Some(m) = list["ongoing"].get("moved-0") {
            assert!(
                m["adding_replicas"].is_array() && m["removing_replicas"] == serde_json::json!([1]),
                "{list}"
            );
        }
    }
    let done = out.iter().find(|l| l["step"] == "done").expect("the done step");
    assert_eq!(done["complete"], true, "the move ended within 60 s: {:?}", out.last());
    // --- the partition lives on brokers 2 and 3 with every record
    let replicas = runtime().block_on(async {
        let admin = Admin::new(sdk(&cluster)).expect("admin");
        let t = admin.describe_topics(vec!["moved".into()]).await.expect("describe");
        t[0].partitions[0].replicas.clone()
    });
    assert_eq!(replicas, vec![2, 3]);
    let (read, ok) =
        py(&cluster, &["consume", "--topic", "moved", "--timeout", "60"]).finish(Duration::from_secs(90));
    assert!(ok, "the consumer failed: {:?}", read.last());
    assert_eq!(read.iter().filter(|l| l["event"] == "record").count(), 300, "every record moved");
}
