//! Faults that SIGKILL cannot show, between real processes on separate hosts as far as the
//! network goes: a keeper and three brokers, each in its own network namespace
//! ([`sluice_tests::nemesis::Lan`]), and the clients in a fifth. The brokers bind every
//! address and advertise their host's, as a multi-host deployment does.
//!
//! Every schedule comes from a seed and is printed before it runs, so a failure replays:
//!
//! ```sh
//! NEMESIS_SEED=7 cargo test -p sluice-tests --test nemesis -- --nocapture     # one seed
//! NEMESIS_SEEDS=100 cargo test -p sluice-tests --test nemesis -- --nocapture  # seeds 1..=100
//! ```
//!
//! Three seeded scenarios: replication (brokers, `acks=all`, a checker of the log read back),
//! the keeper ensemble (three members, clients checked for linearizability) and consumer
//! groups with the coordinator cut off. Two fixed cases: a keeper client moving off a member
//! that lost its quorum, and Kafka's own clients (librdkafka) on another host going through
//! the Kafka door while a leader is cut off.
//!
//! CI runs seeds 1 and 2 of the replication scenario, 1, 5 and 9 of the keeper's, and 1
//! and 14 of the groups'. Needs root, iproute2 and nftables (`.ci/run` installs them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_broker_core::znodes;
use sluice_certs::{CertSpec, Role};
use sluice_client::broker::proto::NewTopic;
use sluice_client::broker::{
    Acks, Admin, AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig,
    ProducerRecord,
};
use sluice_client::keeper::{KeeperClient, KeeperClientOptions, KeeperEvent};
use sluice_tests::dir_model::{self, DirCheck, DirWorkload};
use sluice_tests::linearizability::{self, Outcome, Workload};
use sluice_tests::nemesis::{seeds, weather_for, Lan, Rng, Weather};
use sluice_tests::{
    broker_config, wait_for, BrokerCluster, BrokerProcess, JsonLines, KeeperEnsemble, KeeperProcess, TestPki,
};

const BROKERS: [&str; 3] = ["b1", "b2", "b3"];
const PARTITIONS: i32 = 3;

/// One fault of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// The classic: a broker (a leader) cut off from the keeper and the other brokers while
    /// the clients still reach it.
    LeaderAlone(usize),
    /// A broker cut off from everyone.
    Isolated(usize),
    /// The keeper cut off from every broker.
    KeeperAway,
    /// A broker and the keeper on one side, the other two brokers on the other.
    Split(usize),
    /// 30% of a broker's packets lost.
    Lossy(usize),
    /// A broker SIGKILLed, restarted when the fault ends.
    Killed(usize),
    /// A broker SIGSTOPped, SIGCONTinued when the fault ends: a long pause it does not know
    /// about, after which it may act on a state the others have moved past.
    Paused(usize),
}

impl Fault {
    fn kind(self) -> &'static str {
        match self {
            Fault::LeaderAlone(_) => "broker cut from keeper and brokers, clients reach it",
            Fault::Isolated(_) => "broker isolated",
            Fault::KeeperAway => "keeper cut from the brokers",
            Fault::Split(_) => "split: keeper + 1 broker | 2 brokers",
            Fault::Lossy(_) => "30% packet loss on a broker",
            Fault::Killed(_) => "broker SIGKILLed and restarted",
            Fault::Paused(_) => "broker paused (SIGSTOP), then resumed",
        }
    }
}

/// The schedule for `seed`: (wait before, fault, how long it lasts).
fn schedule(seed: u64) -> Vec<(Duration, Fault, Duration)> {
    let mut rng = Rng::new(seed);
    (0..3)
        .map(|_| {
            let b = rng.range(0, 3) as usize;
            let fault = *rng.pick(&[
                Fault::LeaderAlone(b),
                Fault::LeaderAlone(b),
                Fault::Isolated(b),
                Fault::KeeperAway,
                Fault::Split(b),
                Fault::Lossy(b),
                Fault::Killed(b),
                Fault::Paused(b),
            ]);
            (Duration::from_millis(rng.range(500, 2000)), fault, Duration::from_millis(rng.range(2000, 7000)))
        })
        .collect()
}

/// What one seed's run saw.
#[derive(Debug, Default)]
struct Tally {
    faults: BTreeMap<&'static str, usize>,
    sent: usize,
    acked: usize,
    lost: Vec<String>,
    duplicated: Vec<String>,
    out_of_order: Vec<String>,
    /// The longest time one partition acknowledged nothing.
    unavailable: Duration,
    /// Each partition's leader epoch at the end.
    epochs: Vec<i32>,
}

/// The cluster: a keeper and three brokers on `lan`, files in a temporary directory, with
/// `extra` broker config lines. With `door`, each broker also has the Kafka door, `SSL` on
/// port 9093 of every address, advertised at its host's ([`door_bootstrap`]).
fn start(lan: &Lan, door: bool, extra: &str) -> BrokerCluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new("nemesis");
    let keeper = lan.host("keeper");
    let k = KeeperProcess::start_in(keeper, &pki, dir.path(), 1, 2181, 500, "");
    let connect = format!("{}:2181/sluice", keeper.ip);
    let brokers = BROKERS
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let host = lan.host(label);
            let id = i as i32 + 1;
            pki.issue(CertSpec::new(format!("broker-{id}"), Role::Node).with_sans([host.ip.to_string()]));
            let ip = host.ip;
            let (listeners, advertised) = if door {
                (
                    "quic://0.0.0.0:9092,SSL://0.0.0.0:9093".to_string(),
                    format!("quic://{ip}:9092,SSL://{ip}:9093"),
                )
            } else {
                ("quic://0.0.0.0:9092".to_string(), format!("quic://{ip}:9092"))
            };
            let extra = format!(
                "listeners={listeners}\nadvertised.listeners={advertised}\n\
                 zookeeper.session.timeout.ms=4000\nreplica.lag.time.max.ms=2000\n\
                 replica.fetch.backoff.ms=100\nmin.insync.replicas=2\n{extra}"
            );
            let mut b = BrokerProcess::placeholder();
            b.id = id;
            b.config = broker_config(&pki, dir.path(), id, &connect, &extra);
            b.log_dir = dir.path().join(format!("broker-{id}-logs"));
            b.log = dir.path().join(format!("broker-{id}.log"));
            b.netns = Some(host.netns.clone());
            if let Err(out) = b.launch() {
                let log = std::fs::read_to_string(&b.log).unwrap_or_default();
                panic!("broker {id} did not start in {}: {out:?}\n{log}", host.netns);
            }
            assert_eq!(b.addr, "0.0.0.0:9092", "it says where it listens");
            // Clients dial what it advertises.
            b.addr = format!("{}:9092", host.ip);
            b
        })
        .collect();
    BrokerCluster { pki, keepers: vec![k], brokers, dir }
}

fn client(cluster: &BrokerCluster) -> ClientConfig {
    ClientConfig::new(cluster.brokers.iter().map(|b| b.addr.clone()))
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(10))
        .retry_backoff(Duration::from_millis(100))
}

/// Creates `name`: three partitions, RF=3, `min.insync.replicas=2`, each broker the
/// preferred leader of one.
async fn create_topic(config: ClientConfig, name: &str) {
    let admin = Admin::new(config).expect("admin");
    let topic = NewTopic {
        name: name.into(),
        partitions: None,
        replication_factor: None,
        assignment: Some((0..PARTITIONS).map(|p| (p, (0..3).map(|r| (p + r) % 3 + 1).collect())).collect()),
        configs: [("min.insync.replicas".to_string(), "2".to_string())].into(),
    };
    let created = admin.create_topics(vec![topic], false).await.expect("create");
    assert!(created.iter().all(|(_, r)| r.is_ok()), "{created:?}");
}

/// A producer that waits out faults: `acks=all`, a 60 s delivery timeout.
fn patient_producer(cluster: &BrokerCluster) -> Producer {
    Producer::new(
        ProducerConfig::new(client(cluster))
            .acks(Acks::All)
            .linger(Duration::from_millis(2))
            .delivery_timeout(Duration::from_secs(60)),
    )
    .expect("producer")
}

/// Applies `fault` (returns once it is in place).
fn inject(lan: &Lan, cluster: &mut BrokerCluster, fault: Fault) {
    let others = |b: usize| -> Vec<&str> {
        BROKERS.iter().enumerate().filter(|(i, _)| *i != b).map(|(_, l)| *l).collect()
    };
    match fault {
        Fault::LeaderAlone(b) => {
            let mut rest = others(b);
            rest.push("keeper");
            lan.cut(&[BROKERS[b]], &rest);
        }
        Fault::Isolated(b) => {
            let mut rest = others(b);
            rest.extend(["keeper", "client"]);
            lan.cut(&[BROKERS[b]], &rest);
        }
        Fault::KeeperAway => lan.cut(&["keeper"], &BROKERS),
        Fault::Split(b) => lan.cut(&[BROKERS[b], "keeper"], &others(b)),
        Fault::Lossy(b) => lan.lose(BROKERS[b], 30),
        Fault::Killed(b) => cluster.brokers[b].kill(),
        Fault::Paused(b) => sluice_tests::signal(cluster.brokers[b].pid().expect("the broker runs"), "STOP"),
    }
}

/// Ends `fault`.
fn repair(lan: &Lan, cluster: &mut BrokerCluster, fault: Fault) {
    lan.heal();
    match fault {
        Fault::Killed(b) => cluster.brokers[b].restart(),
        Fault::Paused(b) => {
            sluice_tests::signal(cluster.brokers[b].pid().expect("the paused broker"), "CONT")
        }
        _ => {}
    }
}

/// A record's delivery: its value, where it was acknowledged (if it was), and when.
type Delivery = tokio::task::JoinHandle<(String, Option<(i32, i64)>, Instant)>;

/// What the checker found wrong.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    lost: Vec<String>,
    duplicated: Vec<String>,
    out_of_order: Vec<String>,
}

/// The checks, given what was acknowledged (value → where) and what was read back: an
/// acknowledged record is where its acknowledgement said (so no leader acknowledged a write
/// that a later leader truncated: a fenced leader never acknowledged after its epoch ended),
/// no value is there twice, and each partition's values keep the order they were sent in
/// (values are sent in increasing order).
fn check(acked: &HashMap<String, (i32, i64)>, log: &BTreeMap<(i32, i64), String>) -> Findings {
    let mut f = Findings::default();
    let mut wrong: Vec<&String> = acked.keys().filter(|v| log.get(&acked[*v]) != Some(*v)).collect();
    wrong.sort_by_key(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    for value in wrong {
        let at = acked[value];
        f.lost.push(format!("{value} acknowledged at {at:?}, found {:?}", log.get(&at)));
    }
    let mut seen: HashMap<&str, (i32, i64)> = HashMap::new();
    let mut last: HashMap<i32, u64> = HashMap::new();
    for ((p, off), value) in log {
        if let Some(first) = seen.insert(value, (*p, *off)) {
            f.duplicated.push(format!("{value} at {first:?} and at {:?}", (p, off)));
        }
        let n: u64 = value.parse().unwrap_or(u64::MAX);
        if let Some(prev) = last.insert(*p, n) {
            if n <= prev {
                f.out_of_order.push(format!("partition {p}: {n} after {prev} at offset {off}"));
            }
        }
    }
    f
}

/// Sends values `from`, `from + 1`, ... to `topic` (value `n` to partition `n % 3`), one every
/// 3 ms until `until`; returns the next value.
async fn send_for(
    topic: &str,
    producer: &Producer,
    from: u64,
    until: Instant,
    sent: &mut Vec<Delivery>,
) -> u64 {
    let mut n = from;
    while Instant::now() < until {
        let value = n.to_string();
        let record = ProducerRecord::new(topic, value.clone()).with_partition((n % 3) as i32);
        match producer.send(record).await {
            Ok(d) => sent.push(tokio::spawn(async move {
                let at = d.await.ok().map(|md| (md.partition, md.offset));
                (value, at, Instant::now())
            })),
            Err(e) => panic!("send refused at once: {e}"),
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    n
}

/// One seed: the cluster, an `acks=all` idempotent producer sending throughout the
/// schedule, then a consumer reading every partition back; the checker's findings.
async fn run_seed(lan: Arc<Lan>, mut cluster: BrokerCluster, seed: u64) -> (Tally, BrokerCluster) {
    let plan = schedule(seed);
    let weather = weather_for(seed, &["keeper", "b1", "b2", "b3"]);
    println!("seed {seed}: schedule {plan:?}; weather throughout {weather:?}");
    cluster.wait_until_every_broker_sees_all(Duration::from_secs(30));
    create_topic(client(&cluster), "nemesis").await;

    let producer = patient_producer(&cluster);
    let mut tally = Tally::default();
    if let Some((host, w)) = weather {
        lan.weather(host, w);
        *tally.faults.entry(weather_kind(w)).or_default() += 1;
    }
    let mut pending: Vec<Delivery> = Vec::new();
    let mut i = 0u64;
    for (wait, fault, lasts) in plan {
        i = send_for("nemesis", &producer, i, Instant::now() + wait, &mut pending).await;
        println!("seed {seed}: {fault:?} for {lasts:?}");
        inject(&lan, &mut cluster, fault);
        *tally.faults.entry(fault.kind()).or_default() += 1;
        i = send_for("nemesis", &producer, i, Instant::now() + lasts, &mut pending).await;
        repair(&lan, &mut cluster, fault);
    }
    lan.calm();
    i = send_for("nemesis", &producer, i, Instant::now() + Duration::from_secs(1), &mut pending).await;
    tally.sent = i as usize;

    let mut acked: HashMap<String, (i32, i64)> = HashMap::new();
    let mut times: BTreeMap<i32, Vec<Instant>> = BTreeMap::new();
    for d in pending {
        if let Ok((value, Some(at), when)) = d.await {
            acked.insert(value, at);
            times.entry(at.0).or_default().push(when);
        }
    }
    // The longest time a partition acknowledged nothing while records waited.
    for t in times.values_mut() {
        t.sort_unstable();
        let gap = t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        tally.unavailable = tally.unavailable.max(gap);
    }
    producer.close().await;
    tally.acked = acked.len();

    // Read everything back, until every acknowledged record is there or 60 s.
    let mut consumer =
        Consumer::new(ConsumerConfig::new(client(&cluster)).auto_offset_reset(AutoOffsetReset::Earliest))
            .expect("consumer");
    consumer.assign((0..PARTITIONS).map(|p| ("nemesis", p)));
    let mut log: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let want: usize = acked.len();
    while Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(300)).await.expect("poll") {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            log.insert((r.partition, r.offset), value);
        }
        let found = acked.iter().filter(|(v, at)| log.get(at) == Some(v)).count();
        if found == want {
            break;
        }
    }

    let found = check(&acked, &log);
    tally.lost = found.lost;
    tally.duplicated = found.duplicated;
    tally.out_of_order = found.out_of_order;

    // The faults did something: the leader epochs moved (each is 0 at creation).
    let k = KeeperClient::connect(
        &cluster.zookeeper_connect(),
        &cluster.pki.client("observer"),
        KeeperClientOptions::default(),
    )
    .await
    .expect("keeper")
    .0;
    for p in 0..PARTITIONS {
        let (data, stat) = k.get_data(&znodes::state_path("nemesis", p), false).await.expect("state");
        let state = znodes::decode_state("nemesis", p, &data, stat.version).expect("decode");
        tally.epochs.push(state.leader_epoch);
    }
    (tally, cluster)
}

/// How a run's weather shows in the tally.
fn weather_kind(w: Weather) -> &'static str {
    match (w.delay.is_zero(), w.duplicate > 0) {
        (false, false) => "weather: one host's packets delayed and reordered",
        (true, _) => "weather: one host's packets duplicated",
        (false, true) => "weather: one host's packets delayed, reordered and duplicated",
    }
}

/// The weather itself, measured: 300 numbered datagrams from host a to host b, 1 ms apart,
/// calm, then with a's packets delayed 30 ms plus up to 20 ms of jitter (they arrive late
/// and out of order), then with half of them duplicated, then calm again.
#[test]
fn the_lan_delays_reorders_and_duplicates_a_hosts_packets() {
    let lan = Arc::new(Lan::new(&["a", "b"]).unwrap_or_else(|e| panic!("{e}")));
    let b = lan.host("b").ip;
    // Per datagram received, in arrival order: its number and how long it took.
    let measure = |lan: &Arc<Lan>| -> Vec<(u32, Duration)> {
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let sent: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
        let (l, s) = (lan.clone(), sent.clone());
        let receiver = std::thread::spawn(move || {
            l.run_in("b", move || async move {
                let sock = tokio::net::UdpSocket::bind("0.0.0.0:7000").await.expect("bind");
                let _ = ready_tx.send(());
                let mut got = Vec::new();
                let mut buf = [0u8; 16];
                while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await
                {
                    let seq = u32::from_be_bytes(buf[..4.min(n)].try_into().unwrap_or([0; 4]));
                    got.push((seq, Instant::now()));
                }
                got
            })
        });
        ready.recv().expect("the receiver is ready");
        lan.run_in("a", move || async move {
            let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.expect("bind");
            for seq in 0..300u32 {
                s.lock().expect("sent").push(Instant::now());
                sock.send_to(&seq.to_be_bytes(), (b, 7000)).await.expect("send");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let got = receiver.join().expect("receiver");
        let sent = sent.lock().expect("sent");
        got.into_iter().map(|(seq, at)| (seq, at - sent[seq as usize])).collect()
    };
    let median = |got: &[(u32, Duration)]| {
        let mut d: Vec<Duration> = got.iter().map(|g| g.1).collect();
        d.sort();
        d[d.len() / 2]
    };
    let overtaken = |got: &[(u32, Duration)]| {
        let mut highest = 0;
        got.iter()
            .filter(|(seq, _)| {
                let before = highest;
                highest = highest.max(*seq);
                before > *seq
            })
            .count()
    };
    let twice = |got: &[(u32, Duration)]| got.len() - got.iter().map(|g| g.0).collect::<BTreeSet<_>>().len();

    let calm = measure(&lan);
    assert_eq!((calm.len(), overtaken(&calm)), (300, 0), "a calm link delivers everything once, in order");
    lan.weather(
        "a",
        Weather { delay: Duration::from_millis(30), jitter: Duration::from_millis(20), duplicate: 0 },
    );
    let slow = measure(&lan);
    println!(
        "calm: median {:?}; slow: median {:?}, {} overtaken",
        median(&calm),
        median(&slow),
        overtaken(&slow)
    );
    assert_eq!(slow.len(), 300, "delayed, not lost");
    assert!(median(&slow) >= Duration::from_millis(30), "median {:?}", median(&slow));
    assert!(overtaken(&slow) > 10, "jitter reorders: only {} overtaken", overtaken(&slow));
    lan.calm();
    lan.weather("a", Weather { duplicate: 50, ..Weather::default() });
    let doubled = measure(&lan);
    println!("duplicated: {} of 300 arrived twice", twice(&doubled));
    assert!((90..=210).contains(&twice(&doubled)), "{} of 300 duplicated at 50%", twice(&doubled));
    lan.calm();
    let after = measure(&lan);
    assert_eq!((after.len(), twice(&after), overtaken(&after)), (300, 0, 0), "calm again");
    assert!(median(&after) < Duration::from_millis(10), "median {:?} once calm", median(&after));
}

#[test]
fn replication_under_partitions_loses_no_acknowledged_record_and_duplicates_none() {
    // Fails naming what the machine lacks (root, ip, nft).
    let lan = Arc::new(Lan::new(&["keeper", "b1", "b2", "b3", "client"]).unwrap_or_else(|e| panic!("{e}")));
    for seed in seeds(&[1, 2]) {
        let cluster = start(&lan, false, "");
        let l = lan.clone();
        let (tally, cluster) = lan.run_in("client", move || run_seed(l, cluster, seed));
        println!(
            "seed {seed}: faults {:?}; leader epochs {:?}; longest unavailability {:?}; sent {}, acknowledged {}, \
             lost {}, duplicated {}, out of order {}",
            tally.faults,
            tally.epochs,
            tally.unavailable,
            tally.sent,
            tally.acked,
            tally.lost.len(),
            tally.duplicated.len(),
            tally.out_of_order.len()
        );
        // A broker cut off for longer than its keeper session (4 s) loses its leaderships.
        let long = schedule(seed)
            .iter()
            .any(|(_, f, lasts)| *lasts > Duration::from_secs(5) && !matches!(f, Fault::Lossy(_)));
        if long {
            assert!(
                tally.epochs.iter().any(|e| *e > 0),
                "seed {seed}: no leader changed: {:?}",
                tally.epochs
            );
        }
        let bad = !tally.lost.is_empty() || !tally.duplicated.is_empty() || !tally.out_of_order.is_empty();
        if bad {
            eprintln!("{}", cluster.log_tails(40));
        }
        assert!(
            tally.lost.is_empty(),
            "seed {seed}: acknowledged records lost: {:?}",
            &tally.lost[..tally.lost.len().min(10)]
        );
        assert!(
            tally.duplicated.is_empty(),
            "seed {seed}: duplicated: {:?}",
            &tally.duplicated[..tally.duplicated.len().min(10)]
        );
        assert!(
            tally.out_of_order.is_empty(),
            "seed {seed}: out of order: {:?}",
            &tally.out_of_order[..tally.out_of_order.len().min(10)]
        );
        assert!(
            tally.acked > tally.sent / 2,
            "seed {seed}: only {} of {} acknowledged",
            tally.acked,
            tally.sent
        );
        drop(cluster);
    }
}

#[test]
fn the_checker_finds_a_lost_a_moved_a_duplicated_and_a_reordered_record() {
    let acked: HashMap<String, (i32, i64)> = [("0", (0, 0)), ("3", (0, 1)), ("6", (0, 2)), ("1", (1, 0))]
        .map(|(v, at)| (v.to_string(), at))
        .into();
    let log: BTreeMap<(i32, i64), String> = [((0, 0), "0"), ((0, 1), "3"), ((0, 2), "6"), ((1, 0), "1")]
        .map(|(at, v)| (at, v.to_string()))
        .into();
    assert_eq!(check(&acked, &log), Findings::default(), "a faithful log");
    let mut truncated = log.clone();
    truncated.remove(&(0, 2));
    assert_eq!(check(&acked, &truncated).lost.len(), 1, "an acknowledged record missing");
    let mut replaced = log.clone();
    replaced.insert((0, 2), "9".into());
    assert_eq!(check(&acked, &replaced).lost.len(), 1, "its offset holds another record");
    let mut twice = log.clone();
    twice.insert((0, 3), "3".into());
    assert_eq!(check(&acked, &twice).duplicated.len(), 1);
    let mut reordered = log.clone();
    reordered.insert((0, 3), "5".into());
    assert_eq!(check(&acked, &reordered).out_of_order.len(), 1);
}

/// One fault of the keeper scenario's schedule; members are 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeeperFault {
    /// The leader cut off from the other members, its clients still reaching it.
    LeaderAlone,
    /// A member cut off from everyone.
    Isolated(usize),
    /// 30% of a member's packets lost.
    Lossy(usize),
    /// The leader SIGKILLed, restarted when the fault ends.
    LeaderKilled,
    /// Each member cut from the next one around (1-2, 2-3, 3-1 in turn): a bridge.
    Bridge(usize),
    /// The leader SIGSTOPped, SIGCONTinued when the fault ends: a long pause (a GC, a
    /// stalled VM) it does not know about.
    LeaderPaused,
}

impl KeeperFault {
    fn kind(self) -> &'static str {
        match self {
            KeeperFault::LeaderAlone => "leader cut from the members, clients reach it",
            KeeperFault::Isolated(_) => "member isolated",
            KeeperFault::Lossy(_) => "30% packet loss on a member",
            KeeperFault::LeaderKilled => "leader SIGKILLed and restarted",
            KeeperFault::Bridge(_) => "bridge: two members cut from each other, both reach the third",
            KeeperFault::LeaderPaused => "leader paused (SIGSTOP), then resumed",
        }
    }
}

/// The keeper schedule for `seed`: (wait before, fault, how long it lasts).
fn keeper_schedule(seed: u64) -> Vec<(Duration, KeeperFault, Duration)> {
    let mut rng = Rng::new(seed ^ 0x6b65_6570);
    (0..3)
        .map(|_| {
            let m = rng.range(0, 3) as usize;
            let fault = *rng.pick(&[
                KeeperFault::LeaderAlone,
                KeeperFault::LeaderAlone,
                KeeperFault::Isolated(m),
                KeeperFault::Lossy(m),
                KeeperFault::LeaderKilled,
                KeeperFault::Bridge(m),
                KeeperFault::LeaderPaused,
            ]);
            (Duration::from_millis(rng.range(500, 2000)), fault, Duration::from_millis(rng.range(2000, 6000)))
        })
        .collect()
}

const KEEPERS: [&str; 3] = ["k1", "k2", "k3"];
/// Most operations of each directory-workload client (the directory's history is checked as
/// one state, so it is bounded), and the pause between them, so that they span the faults.
const DIR_OPS: usize = 1500;
const DIR_PACE: Duration = Duration::from_millis(10);
const KEYS: [&str; 3] = ["/k0", "/k1", "/k2"];

/// One keeper seed, run on the client host: five clients on the register workload and two on
/// the directory workload ([`DirWorkload`]) while the schedule runs; after each fault the
/// register workload must go on, and both histories must be linearizable. Returns the
/// findings line and the ensemble.
async fn keeper_seed(
    lan: Arc<Lan>,
    mut ens: KeeperEnsemble,
    pki: TestPki,
    seed: u64,
) -> (String, KeeperEnsemble) {
    let plan = keeper_schedule(seed);
    // One host's weather throughout, as the replication scenario (`NEMESIS_WEATHER=0` runs
    // it calm). It once ran calm only: the directory checker gave up on lost writes, and a
    // member more than a heartbeat away never caught up (both fixed; the ensemble still
    // stalls longer under weather than calm, docs/reliability.md).
    let calm = std::env::var("NEMESIS_WEATHER").is_ok_and(|v| v == "0");
    let weather = if calm { None } else { weather_for(seed, &KEEPERS) };
    println!("keeper seed {seed}: schedule {plan:?}; weather throughout {weather:?}");
    let status = pki.client("status");
    ens.leader(&status, Duration::from_secs(30)).await.expect("the ensemble elects a leader");
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(4), ..Default::default() };
    let connect = |first: usize| -> String {
        (0..3).map(|i| ens.members[(first + i) % 3].addr.clone()).collect::<Vec<_>>().join(",")
    };
    let (setup, _) =
        KeeperClient::connect(&connect(0), &pki.client("app"), opts.clone()).await.expect("connect");
    for k in KEYS {
        setup.create(k, b"0", sluice_keeper_core::CreateMode::Persistent).await.expect("create key");
    }
    let dir_initial = DirWorkload::prepare(&setup).await;
    let dir_workload = DirWorkload::default();
    let workload = Workload::default();
    let mut workers = Vec::new();
    let mut dir_workers = Vec::new();
    let tls = pki.client("app");
    for client_no in 0..5 {
        let (hosts, tls, opts) = (connect(client_no), tls.clone(), opts.clone());
        let open = move || {
            let (hosts, tls, opts) = (hosts.clone(), tls.clone(), opts.clone());
            // As an application would: try again until a server takes the session.
            async move {
                loop {
                    match KeeperClient::connect(&hosts, &tls, opts.clone()).await {
                        Ok((c, _)) => break c,
                        Err(e) => {
                            println!("connect: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        };
        workers.push(tokio::spawn(workload.clone().run_client(open.clone(), client_no, &KEYS, seed)));
        // Two of them also run the directory workload, on sessions of their own. After a
        // lost write the first closes its session, the second goes on with it (which checks
        // that a session's ops take effect in the order it sent them).
        if client_no < 2 {
            let mut w = dir_workload.clone();
            w.keep_session_after_loss = client_no == 1;
            let dir = w.run_client(open, client_no, seed, (DIR_OPS, DIR_PACE), false);
            dir_workers.push(tokio::spawn(dir));
        }
    }
    let mut faults: BTreeMap<&'static str, usize> = BTreeMap::new();
    if let Some((host, w)) = weather {
        lan.weather(host, w);
        *faults.entry(weather_kind(w)).or_default() += 1;
    }
    for (wait, fault, lasts) in plan {
        let before = workload.completed();
        tokio::time::sleep(wait).await;
        let leader = ens.leader(&status, Duration::from_secs(30)).await.expect("a leader before the fault");
        let at = Duration::from_nanos(workload.now_ns());
        println!("keeper seed {seed}: at {at:.1?}: {fault:?} for {lasts:?} (leader k{})", leader + 1);
        match fault {
            KeeperFault::LeaderAlone => {
                let others: Vec<&str> = (0..3).filter(|i| *i != leader).map(|i| KEEPERS[i]).collect();
                lan.cut(&[KEEPERS[leader]], &others);
            }
            KeeperFault::Isolated(m) => {
                let rest: Vec<&str> =
                    (0..3).filter(|i| *i != m).map(|i| KEEPERS[i]).chain(["client"]).collect();
                lan.cut(&[KEEPERS[m]], &rest);
            }
            KeeperFault::Lossy(m) => lan.lose(KEEPERS[m], 30),
            KeeperFault::LeaderKilled => ens.members[leader].kill(),
            KeeperFault::Bridge(m) => lan.cut(&[KEEPERS[m]], &[KEEPERS[(m + 1) % 3]]),
            KeeperFault::LeaderPaused => {
                let pid = ens.members[leader].pid().expect("the leader runs");
                sluice_tests::signal(pid, "STOP");
            }
        }
        *faults.entry(fault.kind()).or_default() += 1;
        tokio::time::sleep(lasts).await;
        lan.heal();
        if fault == KeeperFault::LeaderKilled {
            ens.members[leader].restart();
        }
        if fault == KeeperFault::LeaderPaused {
            let pid = ens.members[leader].pid().expect("the paused leader");
            sluice_tests::signal(pid, "CONT");
        }
        // Healed, the ensemble serves again.
        let at = workload.completed();
        assert!(
            wait_for(Duration::from_secs(30), || async { workload.completed() >= at.max(before) + 100 })
                .await,
            "keeper seed {seed}: the workload stopped after {fault:?} was healed; errors: {:?}",
            workload.errors.lock().expect("errors")
        );
    }
    lan.calm();
    let (events, initial, unknown) = workload.finish(workers, &KEYS, b"0").await;
    let dir_events = dir_workload.finish(dir_workers).await;
    let dir_unknown = dir_events.iter().filter(|e| e.answer.is_none()).count();
    match dir_model::check(&dir_events, &dir_initial) {
        DirCheck::Linearizable => {}
        DirCheck::Violation { stuck } => panic!(
            "keeper seed {seed}: the directory history is not linearizable at {stuck:?}; before it:\n{}",
            dir_model::before(&dir_events, stuck.answer.as_ref().map_or(stuck.invoked_ns, |a| a.0))
        ),
        DirCheck::Inconclusive => panic!(
            "keeper seed {seed}: the directory history was too much to check ({} operations, {dir_unknown} unknown)",
            dir_events.len()
        ),
    }
    let mut answered: Vec<u64> = events
        .iter()
        .filter_map(|e| e.completed_ns.filter(|_| !matches!(e.outcome, Outcome::Unknown)))
        .collect();
    answered.sort_unstable();
    let (longest, longest_from) = answered.windows(2).map(|w| (w[1] - w[0], w[0])).max().unwrap_or((0, 0));
    if let Err(e) = linearizability::check(&events, &initial) {
        panic!("keeper seed {seed}: not linearizable: {e}");
    }
    let line = format!(
        "keeper seed {seed}: faults {faults:?}; {} operations, {} answered, {unknown} unknown; linearizable; \
         longest time without an answer {:?} (from {:.1?}); {} sessions expired; directory: {} operations, {dir_unknown} \
         unknown, {} sessions expired, {} closed after a lost write, linearizable",
        events.len(),
        events.len() - unknown,
        Duration::from_nanos(longest),
        Duration::from_nanos(longest_from),
        workload.expired.load(std::sync::atomic::Ordering::Relaxed),
        dir_events.len(),
        dir_workload.expired.load(std::sync::atomic::Ordering::Relaxed),
        dir_workload.closed_after_loss.load(std::sync::atomic::Ordering::Relaxed)
    );
    (line, ens)
}

#[test]
fn keeper_ensemble_under_partitions_stays_linearizable() {
    // RUST_LOG=sluice_client=debug shows what the clients go through.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // Fails naming what the machine lacks (root, ip, nft).
    let lan = keeper_lan();
    // Seeds 5 and 9 stalled every write before the batcher stopped waiting on entries a
    // deposed leader never heard back about (keeper/ensemble/src/lib.rs, `batcher`).
    for seed in seeds(&[1, 5, 9]) {
        let mut dir = tempfile::tempdir().expect("tempdir");
        if std::env::var_os("SLUICE_KEEP_TEST_DIR").is_some() {
            dir.disable_cleanup(true);
            println!("keeper seed {seed}: files kept in {}", dir.path().display());
        }
        let pki = TestPki::new("nemesis-keeper");
        let servers: String =
            (0..3).map(|i| format!("server.{}={}:2888\n", i + 1, lan.host(KEEPERS[i]).ip)).collect();
        let members = (0..3)
            .map(|i| {
                let h = lan.host(KEEPERS[i]);
                KeeperProcess::start_in(h, &pki, dir.path(), i as u64 + 1, 2181, 200, &servers)
            })
            .collect();
        let ens = KeeperEnsemble { members };
        let l = lan.clone();
        let (line, ens) = lan.run_in("client", move || keeper_seed(l, ens, pki, seed));
        println!("{line}");
        drop(ens);
    }
}

/// A follower is cut off from the other members while its client still reaches it. The
/// server says it has no quorum ([`KeeperEvent::ReadOnly`]), and the client moves its session
/// to a member that has one: writes go through again well inside the session timeout, and the
/// session, with its ephemeral, survives. Found by the keeper scenario: the client used to
/// stay on the cut-off server, read-only, until its session expired.
#[test]
fn a_client_whose_server_loses_its_quorum_moves_its_session_to_one_that_has_it() {
    let lan = keeper_lan();
    let (_dir, pki, ens) = ensemble_on(&lan, "nemesis-move", "");
    let l = lan.clone();
    let ens = lan.run_in("client", move || async move {
        let status = pki.client("status");
        let leader = ens.leader(&status, Duration::from_secs(30)).await.expect("a leader");
        let f = (leader + 1) % 3;
        // The follower first in the list: the client connects to it.
        let hosts: Vec<String> = (0..3).map(|i| ens.members[(f + i) % 3].addr.clone()).collect();
        let timeout = Duration::from_secs(6);
        let opts = KeeperClientOptions { session_timeout: timeout, ..Default::default() };
        let (client, mut events) =
            KeeperClient::connect(&hosts.join(","), &pki.client("app"), opts).await.expect("connect");
        client.create("/mine", b"x", sluice_keeper_core::CreateMode::Ephemeral).await.expect("ephemeral");
        let session = client.session_id();
        let others: Vec<&str> = (0..3).filter(|i| *i != f).map(|i| KEEPERS[i]).collect();
        l.cut(&[KEEPERS[f]], &others);
        let cut_at = Instant::now();
        let wrote = wait_for(Duration::from_secs(20), || async {
            client.set_data("/mine", b"moved", -1).await.is_ok()
        })
        .await;
        let took = cut_at.elapsed();
        let mut heard = Vec::new();
        while let Some(e) = events.try_recv() {
            heard.push(e);
        }
        assert!(wrote, "no write went through in 20 s after k{} lost its quorum; events {heard:?}", f + 1);
        assert!(took < timeout, "the write took {took:?}, past the session timeout {timeout:?}");
        assert!(
            heard.contains(&KeeperEvent::ReadOnly(true)),
            "the server said it lost its quorum: {heard:?}"
        );
        assert!(heard.contains(&KeeperEvent::Resumed), "the session was resumed elsewhere: {heard:?}");
        assert_eq!(client.session_id(), session, "the same session");
        assert!(!client.is_expired());
        l.heal();
        // Healed, every member agrees: the ephemeral is the session's, with the moved write.
        for m in &ens.members {
            let (reader, _) =
                KeeperClient::connect(&m.addr, &pki.client("reader"), KeeperClientOptions::default())
                    .await
                    .expect("connect");
            let seen = wait_for(Duration::from_secs(20), || async {
                matches!(reader.get_data("/mine", false).await,
                    Ok((data, stat)) if data == b"moved" && stat.ephemeral_owner as u64 == session)
            })
            .await;
            assert!(seen, "{}: /mine is the session's ephemeral with the moved write", m.addr);
        }
        println!("k{} lost its quorum; its client wrote on another member {took:?} after the cut", f + 1);
        ens
    });
    drop(ens);
}

/// A follower 60 ms away each way (a round trip past the 100 ms heartbeat interval) still
/// counts toward the quorum: with the other follower SIGKILLed, the leader and it commit
/// writes and answer `sync`. Found under the keeper scenario's weather: openraft 0.9 gave
/// every AppendEntries (and every read's leadership check) one heartbeat interval to be
/// answered, so a member that far away never caught up, and one more failure stalled the
/// ensemble (vendor/openraft/PATCHES.md).
#[test]
fn a_follower_a_round_trip_slower_than_the_heartbeat_still_counts_toward_the_quorum() {
    let lan = keeper_lan();
    let (_dir, pki, ens) = ensemble_on(&lan, "nemesis-far", "");
    let l = lan.clone();
    let ens = lan.run_in("client", move || async move {
        let mut ens = ens;
        let status = pki.client("status");
        let leader = ens.leader(&status, Duration::from_secs(30)).await.expect("a leader");
        let (far, other) = ((leader + 1) % 3, (leader + 2) % 3);
        let delay = Duration::from_millis(60);
        l.weather(KEEPERS[far], Weather { delay, ..Weather::default() });
        let (client, _) = KeeperClient::connect(
            &ens.members[leader].addr,
            &pki.client("app"),
            KeeperClientOptions::default(),
        )
        .await
        .expect("connect");
        client.create("/far", b"0", sluice_keeper_core::CreateMode::Persistent).await.expect("create");
        ens.members[other].kill();
        // Only the far follower can make a quorum with the leader now.
        let mut written = 0;
        let mut slowest = Duration::ZERO;
        let mut last_error = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while written < 20 && Instant::now() < deadline {
            let started = Instant::now();
            match client.set_data("/far", format!("{written}").as_bytes(), -1).await {
                Ok(_) => {
                    written += 1;
                    slowest = slowest.max(started.elapsed());
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        assert_eq!(
            written,
            20,
            "k{} (60 ms away) and the leader k{} committed {written} of 20 writes in 20 s with k{} \
             dead; last error: {last_error:?}",
            far + 1,
            leader + 1,
            other + 1
        );
        assert!(slowest >= 2 * delay, "a write waited for the far follower's round trip: {slowest:?}");
        client.sync("/far").await.expect("sync: the far follower confirms the leadership");
        let (data, _) = client.get_data("/far", false).await.expect("read");
        assert_eq!(data, b"19");
        println!("k{} 60 ms away made the quorum: 20 writes, the slowest {slowest:?}", far + 1);
        l.calm();
        ens
    });
    drop(ens);
}

/// A member 70 ms away each way from the start (every connection to it made across that):
/// it joins, and when a nearer member is SIGKILLed (the leader, unless the far one leads)
/// the two left elect a leader if need be and commit writes.
#[test]
fn a_member_far_away_from_the_start_joins_and_makes_the_quorum_when_another_dies() {
    let lan = keeper_lan();
    lan.weather("k3", Weather { delay: Duration::from_millis(70), ..Weather::default() });
    let (_dir, pki, ens) = ensemble_on(&lan, "nemesis-far-start", "");
    let l = lan.clone();
    let ens = lan.run_in("client", move || async move {
        let mut ens = ens;
        let status = pki.client("status");
        let leader = ens.leader(&status, Duration::from_secs(30)).await.expect("a leader");
        let victim = if leader == 2 { 0 } else { leader };
        // The client's session starts on the member about to die, then moves.
        let mut hosts: Vec<String> = ens.members.iter().map(|m| m.addr.clone()).collect();
        hosts.rotate_left(victim);
        let (client, _) =
            KeeperClient::connect(&hosts.join(","), &pki.client("app"), KeeperClientOptions::default())
                .await
                .expect("connect");
        client.create("/far", b"0", sluice_keeper_core::CreateMode::Persistent).await.expect("create");
        // k3 has the write too: it follows across the delay.
        let (reader, _) = KeeperClient::connect(
            &ens.members[2].addr,
            &pki.client("reader"),
            KeeperClientOptions::default(),
        )
        .await
        .expect("connect to k3");
        let followed = wait_for(Duration::from_secs(20), || async {
            reader.exists("/far", false).await.is_ok_and(|s| s.is_some())
        })
        .await;
        assert!(followed, "k3, 70 ms away, never had /far");
        ens.members[victim].kill();
        let killed = Instant::now();
        let mut written = 0;
        let mut last_error = None;
        let mut first = None;
        // The client was on the dead member (or sent through it) and must move its session
        // before the session's 4 s (maxSessionTimeout: 20 ticks of 200 ms) run out.
        while written < 20 && killed.elapsed() < Duration::from_secs(30) && !client.is_expired() {
            match client.set_data("/far", format!("{written}").as_bytes(), -1).await {
                Ok(_) => {
                    written += 1;
                    first.get_or_insert_with(|| killed.elapsed());
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        assert_eq!(
            written,
            20,
            "with k{} (leader k{}) SIGKILLed, k3 70 ms away and the other member committed {written} \
             of 20 writes in 30 s; last error: {last_error:?}",
            victim + 1,
            leader + 1
        );
        println!(
            "k{} SIGKILLed (leader k{}): the first write {:?} after, 20 writes with k3 70 ms away in {:?}",
            victim + 1,
            leader + 1,
            first.unwrap_or_default(),
            killed.elapsed()
        );
        l.calm();
        ens
    });
    drop(ens);
}

/// A write the client gave up on while its server was slow reaches the leader after the
/// client moved its session to another member and wrote again there: it is refused
/// (ZooKeeper's SESSIONMOVED), so the later write stands. Without the fence the old write
/// landed last and undid it.
#[test]
fn a_write_left_behind_on_a_slow_member_is_refused_once_the_session_has_moved() {
    let lan = keeper_lan();
    // Elections slow enough that a member 1 s away each way keeps its leader: the leader's
    // AppendEntries wait up to the election timeout for their answer.
    let (_dir, pki, ens) = ensemble_on(&lan, "nemesis-moved", "raft.electionTimeoutMs=3000\n");
    let l = lan.clone();
    let ens = lan.run_in("client", move || async move {
        let ens = ens;
        let status = pki.client("status");
        let leader = ens.leader(&status, Duration::from_secs(30)).await.expect("a leader");
        let slow = (leader + 1) % 3;
        // The session starts on a follower, and moves to the leader.
        let hosts = format!("{},{}", ens.members[slow].addr, ens.members[leader].addr);
        let opts = KeeperClientOptions { session_timeout: Duration::from_secs(2), ..Default::default() };
        let (client, _) = KeeperClient::connect(&hosts, &pki.client("app"), opts).await.expect("connect");
        client.create("/moved", b"0", sluice_keeper_core::CreateMode::Persistent).await.expect("create");
        // Every packet to or from the follower now waits 1 s: the next write reaches it 1 s
        // after it is sent and the leader 1 s later, while the client gives up on it after
        // its read timeout (2/3 of the 2 s session, 1.33 s) and moves.
        l.weather(KEEPERS[slow], Weather { delay: Duration::from_secs(1), ..Weather::default() });
        let leader_addr = ens.members[leader].addr.clone();
        let term = |s: &sluice_proto::keeper::ServerStatus| s.ensemble.as_ref().map(|e| e.term);
        let term_before = term(&KeeperClient::status(&leader_addr, &status).await.expect("status"));
        let left_behind = client.set_data("/moved", b"old", -1).await;
        assert!(left_behind.is_err(), "the write through the slow member was answered: {left_behind:?}");
        let stat = client.set_data("/moved", b"new", -1).await.expect("the write after the move");
        // The next entry of the log is the write left behind (nothing else writes, and the
        // leader stays in its term): wait for the leader to apply it, refused or not.
        let reached = wait_for(Duration::from_secs(20), || async {
            KeeperClient::status(&leader_addr, &status).await.is_ok_and(|s| s.last_zxid > stat.mzxid)
        })
        .await;
        assert!(reached, "the write left behind on k{} never reached the leader's log", slow + 1);
        let after = KeeperClient::status(&leader_addr, &status).await.expect("status");
        assert_eq!(
            term(&after),
            term_before,
            "k{} stayed leader in one term (else the entry after the write could be its own)",
            leader + 1
        );
        let (data, _) = client.get_data("/moved", false).await.expect("read on the leader");
        assert_eq!(
            String::from_utf8_lossy(&data),
            "new",
            "the write the client gave up on (through k{}) was applied after the one it made since \
             through the leader k{}",
            slow + 1,
            leader + 1
        );
        l.calm();
        ens
    });
    drop(ens);
}

/// A LAN of the three keeper hosts and the client's.
fn keeper_lan() -> Arc<Lan> {
    Arc::new(Lan::new(&["k1", "k2", "k3", "client"]).unwrap_or_else(|e| panic!("{e}")))
}

/// A keeper ensemble on the LAN's hosts k1–k3 (tick 200 ms), each with the config lines
/// `extra` too, with certificates named for `name`. Returns its directory (deleted when
/// dropped), the certificates and the ensemble.
fn ensemble_on(lan: &Lan, name: &str, extra: &str) -> (tempfile::TempDir, TestPki, KeeperEnsemble) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(name);
    let servers: String =
        (0..3).map(|i| format!("server.{}={}:2888\n", i + 1, lan.host(KEEPERS[i]).ip)).collect();
    let config = format!("{servers}{extra}");
    let members = (0..3)
        .map(|i| {
            KeeperProcess::start_in(lan.host(KEEPERS[i]), &pki, dir.path(), i as u64 + 1, 2181, 200, &config)
        })
        .collect();
    (dir, pki, KeeperEnsemble { members })
}

/// The brokers' Kafka door addresses, as advertised (see [`start`] with `door`).
fn door_bootstrap(lan: &Lan) -> String {
    BROKERS.iter().map(|b| format!("{}:9093", lan.host(b).ip)).collect::<Vec<_>>().join(",")
}

/// `tests/python/kafka_clients.py <args[0]> --bootstrap ... --tls ... <args[1..]>`, run on
/// the client host.
fn kafka_clients(lan: &Lan, cluster: &BrokerCluster, args: &[&str]) -> JsonLines {
    let python = sluice_tests::python_with(
        "confluent_kafka",
        "confluent-kafka, Kafka's Python client",
        "pip install confluent-kafka",
    );
    let files = cluster.client_files();
    let name = files.cert.file_stem().and_then(|s| s.to_str()).expect("cert name").to_string();
    let dir = files.cert.parent().expect("cert dir").display().to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/kafka_clients.py");
    let mut command = std::process::Command::new("ip");
    command
        .args(["netns", "exec", &lan.host("client").netns])
        .arg(python)
        .arg(script)
        .arg(args[0])
        .args(["--bootstrap", &door_bootstrap(lan), "--tls", &format!("{dir}:{name}")])
        .args(&args[1..]);
    JsonLines::spawn(&mut command, format!("kafka_clients.py {}", args.join(" ")))
}

/// A multi-host deployment through the Kafka door. The brokers bind every address and
/// advertise their host's; librdkafka (confluent-kafka) runs on another host and can reach
/// only those addresses, so every connection after the bootstrap follows the advertised
/// listeners. An idempotent `acks=all` producer sends while the leader of partition 0 is cut
/// off from the keeper and the other brokers (its clients still reach it), then a consumer
/// reads everything back: every acknowledged record once, at the offset it was acknowledged
/// at, nothing else.
#[test]
fn kafka_clients_on_another_host_ride_through_a_cut_off_leader_via_advertised_listeners() {
    let lan = Arc::new(Lan::new(&["keeper", "b1", "b2", "b3", "client"]).unwrap_or_else(|e| panic!("{e}")));
    let cluster = start(&lan, true, "");
    let topic = "door";
    let config = client(&cluster);
    lan.run_in("client", move || async move {
        create_topic(config.clone(), topic).await;
        let admin = Admin::new(config).expect("admin");
        // Each partition led by its preferred replica: partition 0 by broker 1.
        let led = wait_for(Duration::from_secs(30), || async {
            matches!(admin.describe_topics(vec![topic.to_string()]).await,
                Ok(d) if d.first().is_some_and(|t| t.partitions.len() == PARTITIONS as usize
                    && t.partitions.iter().all(|p| p.leader == Some(p.partition + 1))))
        })
        .await;
        assert!(led, "each partition led by its preferred replica");
    });
    let count = 2000;
    let producer = kafka_clients(
        &lan,
        &cluster,
        &[
            "produce",
            "--topic",
            topic,
            "--count",
            &count.to_string(),
            "--acks",
            "all",
            "--idempotent",
            "--compression",
            "lz4",
            "--prefix",
            "door",
            "--pace-ms",
            "2",
        ],
    );
    let mut acked = Vec::new();
    while acked.len() < 300 {
        let line = producer.next(Duration::from_secs(60)).expect("acknowledgements through the door");
        assert_ne!(line["event"], "failed", "{line}");
        if line["event"] == "acked" {
            acked.push(line);
        }
    }
    // Broker 1, partition 0's leader, cut off from the keeper and the other brokers.
    lan.cut(&["b1"], &["keeper", "b2", "b3"]);
    let healed_at = Instant::now() + Duration::from_secs(8);
    while Instant::now() < healed_at {
        if let Some(line) = producer.next(Duration::from_millis(100)) {
            assert_ne!(line["event"], "failed", "{line}");
            if line["event"] == "acked" {
                acked.push(line);
            }
        }
    }
    lan.heal();
    let (rest, ok) = producer.finish(Duration::from_secs(150));
    let failed: Vec<&serde_json::Value> = rest.iter().filter(|l| l["event"] == "failed").collect();
    assert!(
        ok && failed.is_empty(),
        "the producer failed: {failed:?} {:?}\n{}",
        rest.last(),
        cluster.log_tails(30)
    );
    acked.extend(rest.into_iter().filter(|l| l["event"] == "acked"));
    assert_eq!(acked.len(), count, "every record acknowledged");

    let (read, ok) = kafka_clients(&lan, &cluster, &["consume", "--topic", topic, "--timeout", "60"])
        .finish(Duration::from_secs(90));
    assert!(ok, "the consumer failed: {:?}", read.last());
    let mut seen: HashMap<String, (i64, i64)> = HashMap::new();
    for r in read.iter().filter(|l| l["event"] == "record") {
        let value = r["value"].as_str().expect("value").to_string();
        let at = (r["partition"].as_i64().expect("partition"), r["offset"].as_i64().expect("offset"));
        if let Some(first) = seen.insert(value.clone(), at) {
            panic!("{value} is in the log twice: {first:?} and {at:?}\n{}", cluster.log_tails(40));
        }
    }
    for a in &acked {
        let value = a["value"].as_str().expect("value");
        let partition = a["partition"].as_i64().expect("partition");
        let found = seen.get(value);
        match a["offset"].as_i64() {
            Some(offset) => {
                assert_eq!(found, Some(&(partition, offset)), "{value} acknowledged at {partition}/{offset}")
            }
            // An implied acknowledgement (librdkafka): in the partition, once.
            None => assert_eq!(found.map(|at| at.0), Some(partition), "{value} acknowledged in {partition}"),
        }
    }
    assert_eq!(seen.len(), count, "nothing but the acknowledged records");
    println!("{count} records through the Kafka door from another host, broker 1 cut off for 8 s; none lost or repeated");
}

/// The group scenario's faults, each on the group coordinator's broker at the time.
const GROUP_FAULTS: [fn(usize) -> Fault; 5] =
    [Fault::LeaderAlone, Fault::Isolated, Fault::Killed, Fault::Split, Fault::Paused];

/// The group schedule for `seed`: (wait before, which of [`GROUP_FAULTS`], how long).
fn group_schedule(seed: u64) -> Vec<(Duration, usize, Duration)> {
    let mut rng = Rng::new(seed ^ 0x0067_726f_7570);
    (0..2)
        .map(|_| {
            let wait = Duration::from_millis(rng.range(1000, 2500));
            (
                wait,
                rng.range(0, GROUP_FAULTS.len() as u64) as usize,
                Duration::from_millis(rng.range(2000, 6000)),
            )
        })
        .collect()
}

/// One group seed, run on the client host: records produced throughout; two members of a
/// group process and commit them while the coordinator's broker is cut off, isolated,
/// split away, killed or paused. Returns the findings line and the cluster.
async fn group_seed(lan: Arc<Lan>, mut cluster: BrokerCluster, seed: u64) -> (String, BrokerCluster) {
    use sluice_tests::group_ledger::{run_member, Ledger};
    let plan = group_schedule(seed);
    println!("group seed {seed}: schedule {plan:?} (faults {:?})", GROUP_FAULTS.map(|f| f(0).kind()));
    cluster.wait_until_every_broker_sees_all(Duration::from_secs(30));
    create_topic(client(&cluster), "work").await;
    let producer = patient_producer(&cluster);
    let mut pending: Vec<Delivery> = Vec::new();
    let mut i = send_for("work", &producer, 0, Instant::now() + Duration::from_secs(1), &mut pending).await;
    let ledger = Arc::new(std::sync::Mutex::new(Ledger::default()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut members = Vec::new();
    for _ in 0..2 {
        let config = ConsumerConfig::new(client(&cluster).client_id("workers-member"))
            .group_id("workers")
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .session_timeout(Duration::from_secs(3))
            .heartbeat_interval(Duration::from_millis(500))
            .max_poll_interval(Duration::from_secs(20))
            .enable_auto_commit(false)
            .max_poll_records(10);
        let mut c = Consumer::new(config).expect("consumer");
        c.subscribe(["work"]).expect("subscribe");
        members.push(tokio::spawn(run_member(c, ledger.clone(), done.clone())));
    }
    let net: sluice_net::Client<sluice_client::broker::proto::BrokerProtocol> =
        sluice_net::Client::new(&cluster.pki.client("raw"), sluice_net::ClientOptions::default())
            .expect("client");
    let mut faults: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (wait, which, lasts) in plan {
        i = send_for("work", &producer, i, Instant::now() + wait, &mut pending).await;
        let mut coordinator = None;
        for b in &cluster.brokers {
            let ask = sluice_client::broker::proto::FindCoordinator { group_id: "workers".into() };
            if let Ok(Ok(Ok(c))) = tokio::time::timeout(Duration::from_secs(3), net.call(&b.addr, ask)).await
            {
                coordinator = Some(c.id);
                break;
            }
        }
        let coordinator = coordinator.expect("some broker names the coordinator");
        let fault = GROUP_FAULTS[which](coordinator as usize - 1);
        println!("group seed {seed}: {fault:?} for {lasts:?} (the coordinator is broker {coordinator})");
        inject(&lan, &mut cluster, fault);
        *faults.entry(fault.kind()).or_default() += 1;
        i = send_for("work", &producer, i, Instant::now() + lasts, &mut pending).await;
        repair(&lan, &mut cluster, fault);
    }
    i = send_for("work", &producer, i, Instant::now() + Duration::from_secs(1), &mut pending).await;
    let mut acked: BTreeSet<(i32, i64)> = BTreeSet::new();
    for d in pending {
        if let Ok((_, Some(at), _)) = d.await {
            acked.insert(at);
        }
    }
    producer.close().await;
    // Every acknowledged record gets processed, by whichever member.
    let processed = |l: &Ledger| -> BTreeSet<(i32, i64)> {
        l.processed.iter().map(|(tp, o)| (tp.partition, *o)).collect()
    };
    let all = wait_for(Duration::from_secs(90), || async {
        let seen = processed(&ledger.lock().expect("ledger"));
        acked.is_subset(&seen)
    })
    .await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for m in members {
        let _ = tokio::time::timeout(Duration::from_secs(30), m).await;
    }
    let (seen, violations, confirmed, deliveries, distinct, commit_failures) = {
        let l = ledger.lock().expect("ledger");
        (
            processed(&l),
            l.violations.clone(),
            l.confirmed.clone(),
            l.processed.len(),
            l.distinct(),
            l.commit_failures,
        )
    };
    let skipped: Vec<&(i32, i64)> = acked.difference(&seen).collect();
    assert!(
        all && skipped.is_empty(),
        "group seed {seed}: {} acknowledged records never processed, e.g. {:?}",
        skipped.len(),
        &skipped[..skipped.len().min(10)]
    );
    assert!(
        violations.is_empty(),
        "group seed {seed}: records delivered again below a confirmed commit: {violations:?}"
    );
    // The confirmed commits survived: the coordinator now serves at least as much.
    let admin = Admin::new(client(&cluster)).expect("admin");
    let committed = admin.list_group_offsets("workers").await.expect("offsets");
    for (tp, confirmed) in &confirmed {
        let now = committed.iter().find(|c| c.partition == tp.partition).map_or(-1, |c| c.offset);
        assert!(
            now >= *confirmed,
            "group seed {seed}: {tp} was committed up to {confirmed}, the group now has {now}"
        );
    }
    let line = format!(
        "group seed {seed}: faults {faults:?}; sent {i}, acknowledged {}, processed {deliveries} deliveries ({} again), \
         {commit_failures} failed commits; skipped 0, committed offsets lost 0",
        acked.len(),
        deliveries - distinct,
    );
    (line, cluster)
}

#[test]
fn a_consumer_group_whose_coordinator_is_cut_off_skips_nothing_and_loses_no_commit() {
    // Fails naming what the machine lacks (root, ip, nft).
    let lan = Arc::new(Lan::new(&["keeper", "b1", "b2", "b3", "client"]).unwrap_or_else(|e| panic!("{e}")));
    let extra = "offsets.topic.replication.factor=3\noffsets.topic.num.partitions=3\n\
                 group.initial.rebalance.delay.ms=500\ngroup.min.session.timeout.ms=1000\n";
    // Seed 1 draws a split and a kill, seed 14 a cut-off coordinator and a pause.
    for seed in seeds(&[1, 14]) {
        let cluster = start(&lan, false, extra);
        let l = lan.clone();
        let (line, cluster) = lan.run_in("client", move || group_seed(l, cluster, seed));
        println!("{line}");
        drop(cluster);
    }
}
