//! Power cuts: what a SIGKILL cannot show. The keeper's and the brokers' data sit on a lazy
//! filesystem (`sluice_tests::lazyfs`, a FUSE layer in the manner of Jepsen's LazyFS) that
//! forgets, at a cut, every write that was never synced, or keeps a part of those writes, torn
//! and out of order, as the seed chooses. The processes are SIGKILLed, the power is cut, they
//! restart on what is left; every write they acknowledged as durable must be there.

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice_broker_core::metadata::PartitionState;
use sluice_broker_core::znodes;
use sluice_client::broker::proto::NewTopic;
use sluice_client::broker::{
    Acks, Admin, AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig,
    ProducerRecord,
};
use sluice_client::keeper::{KeeperClient, KeeperClientError, KeeperClientOptions};
use sluice_keeper_core::{CreateMode, KeeperError};
use sluice_tests::lazyfs::{Cut, LazyFs};
use sluice_tests::{
    poll_until, wait_for, BrokerCluster, BrokerProcess, KeeperEnsemble, KeeperProcess, TestPki,
};

const P: CreateMode = CreateMode::Persistent;

/// Rounds of kill, cut and restart: `default`, or `POWER_CUT_ROUNDS`. Round `r` cuts with seed
/// `POWER_CUT_SEED + r` (0 unless set), so a failing round replays alone with its seed and one round.
fn rounds(default: u64) -> std::ops::Range<u64> {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let first = env("POWER_CUT_SEED").unwrap_or(0);
    first..first + env("POWER_CUT_ROUNDS").unwrap_or(default)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The layer itself: synced bytes stay, unsynced ones go (or come back in part when the seed
/// says so), metadata stays.
#[test]
fn the_lazy_filesystem_forgets_unsynced_writes_and_keeps_synced_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = dir.path().join("disk");
    std::fs::create_dir(&at).expect("mount point");
    let fs = LazyFs::mount(&at);

    let log = at.join("log");
    let mut f = std::fs::File::create(&log).expect("create");
    f.write_all(b"synced-").expect("write");
    f.sync_data().expect("fdatasync");
    f.write_all(b"unsynced").expect("append");
    f.write_all_at(b"S", 0).expect("overwrite");
    drop(f);
    std::fs::write(at.join("never"), b"never synced").expect("write");
    let ckpt = at.join("checkpoint");
    std::fs::write(&ckpt, b"old, synced").expect("write");
    std::fs::File::open(&ckpt).and_then(|f| f.sync_all()).expect("fsync");
    // The classic: a new version written beside it and renamed over it, never synced.
    std::fs::write(at.join("checkpoint.tmp"), b"new, never synced").expect("write");
    std::fs::rename(at.join("checkpoint.tmp"), &ckpt).expect("rename");
    std::fs::create_dir(at.join("sub")).expect("mkdir");
    assert_eq!(read(&log), b"Synced-unsynced", "before the cut, reads see every write");

    let report = fs.power_cut(Cut::LoseAll);
    println!("{report}");
    assert_eq!(read(&log), b"synced-", "the synced bytes, and only those");
    assert_eq!(read(&at.join("never")), b"", "a file never synced survives empty");
    assert_eq!(read(&ckpt), b"", "renamed over the synced one, unsynced: empty");
    assert!(at.join("sub").is_dir(), "metadata is durable at once");
    assert_eq!(report.files, 3);
    assert_eq!(report.kept + report.torn, 0);

    // Seeded cuts of an append-only file: the synced prefix always, then each byte is either
    // the one written there or a hole (zero); the seeds do not all give the same state.
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..24 {
        let mut f = std::fs::File::create(&log).expect("create");
        f.write_all(b"base:").expect("write");
        f.sync_data().expect("fdatasync");
        for i in 0..8u8 {
            f.write_all(&[b'a' + i; 4]).expect("append");
        }
        drop(f);
        let report = fs.power_cut(Cut::Seeded(seed));
        let got = read(&log);
        assert!(got.starts_with(b"base:"), "seed {seed}: the synced prefix is gone: {got:?} ({report})");
        for (i, &b) in got[5..].iter().enumerate() {
            let written = b'a' + (i / 4) as u8;
            assert!(b == written || b == 0, "seed {seed}: byte {i} is {b}, neither written nor a hole");
        }
        outcomes.insert(got);
    }
    assert!(outcomes.len() > 3, "24 seeds gave only {} different states", outcomes.len());

    // A failed fsync: what it covered never reaches the disk, even after a later fsync
    // succeeds.
    let mut f = std::fs::File::create(&log).expect("create");
    f.write_all(b"aaaa").expect("write");
    f.sync_data().expect("fdatasync");
    f.write_all(b"bbbb").expect("write");
    fs.fail_syncs(true);
    let failed = f.sync_data().expect_err("the fsync fails");
    assert_eq!(failed.raw_os_error(), Some(5), "EIO: {failed}");
    assert_eq!(fs.fail_syncs(false), 1, "one fsync failed");
    f.write_all(b"cccc").expect("write");
    f.sync_data().expect("a later fsync succeeds");
    drop(f);
    assert_eq!(read(&log), b"aaaabbbbcccc", "before the cut, reads see every write");
    fs.power_cut(Cut::LoseAll);
    assert_eq!(read(&log), b"aaaa\0\0\0\0cccc", "the failed fsync's write is gone, the later one stays");
    drop(fs);
    assert!(!at.join("sub").exists(), "unmounted on drop");
}

/// What the writers were told, and what they tried.
#[derive(Debug, Default)]
struct Acked {
    /// Per writer: the last value its set was acknowledged for, the last one it sent.
    sets: Vec<(u64, u64)>,
    /// Nodes whose create was acknowledged.
    creates: Vec<String>,
}

/// `writers` sessions on `connect`, each setting `/k<w>` to `base + i` and creating
/// `/c<w>-<base + i>` for i = 1, 2, ..., one request in flight each, until a request fails or
/// gets no answer in 3 s (the server was killed). `count` counts acknowledged writes.
async fn write_until_killed(
    pki: &TestPki,
    connect: &str,
    writers: usize,
    base: u64,
    count: &AtomicU64,
) -> Acked {
    let mut sessions = Vec::new();
    for w in 0..writers {
        let opts = KeeperClientOptions { session_timeout: Duration::from_secs(30), ..Default::default() };
        let (c, ev) = KeeperClient::connect(connect, &pki.client("writer"), opts).await.expect("connect");
        match c.create(&format!("/k{w}"), b"0", P).await {
            Ok(_) | Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {}
            Err(e) => panic!("create /k{w}: {e}"),
        }
        sessions.push((c, ev));
    }
    let within = Duration::from_secs(3);
    let runs = sessions.iter().enumerate().map(|(w, (c, _))| async move {
        let (mut last_acked, mut sent, mut creates) = (0u64, 0u64, Vec::new());
        for i in 1u64.. {
            let v = base + i;
            sent = v;
            match tokio::time::timeout(within, c.set_data(&format!("/k{w}"), v.to_string().as_bytes(), -1))
                .await
            {
                Ok(Ok(_)) => last_acked = v,
                _ => break,
            }
            let path = format!("/c{w}-{v}");
            match tokio::time::timeout(within, c.create(&path, b"x", P)).await {
                Ok(Ok(_)) => creates.push(path),
                _ => break,
            }
            count.fetch_add(2, Ordering::Relaxed);
        }
        (last_acked, sent, creates)
    });
    let mut acked = Acked::default();
    for (last, sent, creates) in futures_util::future::join_all(runs).await {
        acked.sets.push((last, sent));
        acked.creates.extend(creates);
    }
    acked
}

/// Every acknowledged write is on `connect`: each `/k<w>` holds its last acknowledged value
/// or a later one it was sent, and every acknowledged create exists.
async fn check_acked(pki: &TestPki, connect: &str, acked: &Acked, what: &str) {
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(30), ..Default::default() };
    let (c, _ev) = KeeperClient::connect(connect, &pki.client("checker"), opts).await.expect("connect");
    for (w, &(last, sent)) in acked.sets.iter().enumerate() {
        let (data, _) =
            c.get_data(&format!("/k{w}"), false).await.unwrap_or_else(|e| panic!("{what}: /k{w}: {e}"));
        let v: u64 = String::from_utf8_lossy(&data).parse().expect("a number");
        assert!(
            v >= last,
            "{what}: /k{w} is {v}, but {last} was acknowledged: an acknowledged write was lost"
        );
        assert!(v <= sent, "{what}: /k{w} is {v}, never sent (last sent {sent})");
    }
    for p in &acked.creates {
        let found = c.exists(p, false).await.unwrap_or_else(|e| panic!("{what}: exists {p}: {e}"));
        assert!(found.is_some(), "{what}: acknowledged create {p} is lost");
    }
}

/// Waits until `count` reaches `n` (within 60 s), then runs `kill`.
async fn kill_after(count: &AtomicU64, n: u64, kill: impl FnOnce()) {
    let reached = wait_for(Duration::from_secs(60), || async { count.load(Ordering::Relaxed) >= n }).await;
    assert!(reached, "only {} writes acknowledged in 60 s", count.load(Ordering::Relaxed));
    kill();
}

/// A standalone keeper whose dataDir is on the lazy filesystem (its files in the returned
/// directory).
fn keeper_on_lazy_disk() -> (TestPki, tempfile::TempDir, KeeperProcess, LazyFs) {
    let pki = TestPki::new("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keeper = KeeperProcess::start(&pki, dir.path(), 500);
    keeper.kill();
    let fs = LazyFs::take_over(&keeper.data_dir);
    keeper.restart();
    (pki, dir, keeper, fs)
}

/// A standalone keeper (snapCount 1000, so snapshots and log rolls happen) whose dataDir is
/// on the lazy filesystem: four writers, SIGKILL mid-write, the power cut, restart. Three
/// rounds, each with its own seeded crash state; every acknowledged write survives them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_keeper_keeps_every_acknowledged_write_through_power_cuts() {
    let (pki, _dir, mut keeper, fs) = keeper_on_lazy_disk();
    let mut all = Acked::default();
    for round in rounds(3) {
        let count = AtomicU64::new(0);
        let addr = keeper.addr.clone();
        let (acked, ()) = tokio::join!(
            write_until_killed(&pki, &addr, 4, round * 1_000_000, &count),
            kill_after(&count, 1500, || keeper.kill())
        );
        let report = fs.power_cut(Cut::Seeded(round));
        println!(
            "round {round}: {} sets, {} creates acknowledged; cut: {report}",
            acked.sets.len(),
            acked.creates.len()
        );
        all.sets = acked.sets;
        all.creates.extend(acked.creates);
        keeper.restart();
        check_acked(&pki, &keeper.addr, &all, &format!("after power cut {round}")).await;
    }
}

/// A three-member keeper ensemble, every member's dataDir on its own lazy filesystem: writers
/// spread over the members, then every member SIGKILLed at once and the power cut on all three
/// (a room losing power), each disk with its own seeded crash state. Two rounds; every write
/// the ensemble acknowledged survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_ensemble_keeps_every_acknowledged_write_when_every_member_loses_power() {
    let pki = TestPki::new("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ensemble = KeeperEnsemble::start(&pki, dir.path(), 3, 500, "");
    let tls = pki.client("observer");
    assert!(ensemble.leader(&tls, Duration::from_secs(20)).await.is_some(), "no leader");
    for m in &mut ensemble.members {
        m.kill();
    }
    let disks: Vec<LazyFs> = ensemble.members.iter().map(|m| LazyFs::take_over(&m.data_dir)).collect();
    for m in &mut ensemble.members {
        m.restart();
    }
    let mut all = Acked::default();
    for round in rounds(2) {
        assert!(ensemble.leader(&tls, Duration::from_secs(20)).await.is_some(), "round {round}: no leader");
        let count = AtomicU64::new(0);
        let connect = ensemble.connect_string();
        let (acked, ()) = tokio::join!(
            write_until_killed(&pki, &connect, 6, round * 1_000_000, &count),
            kill_after(&count, 1500, || ensemble.members.iter_mut().for_each(|m| m.kill()))
        );
        for (i, disk) in disks.iter().enumerate() {
            let report = disk.power_cut(Cut::Seeded(round * 10 + i as u64));
            println!("round {round}, keeper-{}: {report}", i + 1);
        }
        println!("round {round}: {} creates acknowledged", acked.creates.len());
        all.sets = acked.sets;
        all.creates.extend(acked.creates);
        for m in &mut ensemble.members {
            m.restart();
        }
        check_acked(&pki, &ensemble.connect_string(), &all, &format!("after power cut {round}")).await;
    }
}

fn client(cluster: &BrokerCluster) -> ClientConfig {
    ClientConfig::new(cluster.brokers.iter().map(|b| b.addr.clone()))
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(50))
}

async fn create_topic(cluster: &BrokerCluster, name: &str, replicas: &[i32], configs: &[(&str, &str)]) {
    let admin = Admin::new(client(cluster)).expect("admin");
    let t = NewTopic {
        name: name.into(),
        partitions: None,
        replication_factor: None,
        assignment: Some([(0, replicas.to_vec())].into_iter().collect()),
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let r = admin.create_topics(vec![t], false).await.expect("create");
    assert!(r.iter().all(|(_, r)| r.is_ok()), "creating {name}: {r:?}");
}

/// Sends `values` to partition 0 of `topic`, all in flight together; returns the values
/// acknowledged, in the order they were sent.
async fn send_all(producer: &Producer, topic: &str, values: std::ops::Range<u64>) -> Vec<u64> {
    let mut pending = Vec::new();
    for v in values {
        let record = ProducerRecord::new(topic, v.to_string()).with_partition(0);
        pending.push((v, producer.send(record).await.expect("send")));
    }
    let mut acked = Vec::new();
    for (v, d) in pending {
        if d.await.is_ok() {
            acked.push(v);
        }
    }
    acked
}

/// Partition 0 of `topic` from its start, as (offset, value), until `n` records or no new
/// record for 3 s.
async fn read_all(cluster: &BrokerCluster, topic: &str, n: usize) -> Vec<(i64, u64)> {
    let config = ConsumerConfig::new(client(cluster)).auto_offset_reset(AutoOffsetReset::Earliest);
    let mut consumer = Consumer::new(config).expect("consumer");
    consumer.assign([(topic, 0)]);
    let mut out = Vec::new();
    let mut quiet_since = Instant::now();
    while out.len() < n && quiet_since.elapsed() < Duration::from_secs(3) {
        let got = consumer.poll(Duration::from_millis(300)).await.expect("poll");
        if !got.is_empty() {
            quiet_since = Instant::now();
        }
        for r in got {
            let v = r.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
            out.push((r.offset, v.expect("a number")));
        }
    }
    out
}

/// The values of partition 0 of `topic` from its start ([`read_all`]), checking that their
/// offsets run from 0 without a gap.
async fn read_values(cluster: &BrokerCluster, topic: &str, n: usize) -> Vec<u64> {
    let log = read_all(cluster, topic, n).await;
    assert!(
        log.iter().enumerate().all(|(i, &(o, _))| o == i as i64),
        "{topic}: offsets are not consecutive from 0"
    );
    log.into_iter().map(|(_, v)| v).collect()
}

/// The broker's log on the lazy filesystem, the rest of the cluster on the ordinary disk.
fn on_lazy_disk(broker: &mut BrokerProcess) -> LazyFs {
    broker.kill();
    let fs = LazyFs::take_over(&broker.log_dir);
    broker.restart();
    fs
}

/// One broker with `log.flush.interval.messages=1`: each append is fsynced before it is
/// acknowledged, so every acknowledged record survives every crash state. Three rounds of
/// 1,000 records, SIGKILL, power cut, restart; the log is then exactly what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_flushes_every_message_keeps_every_acknowledged_record_through_power_cuts() {
    let mut cluster = BrokerCluster::start(1, "log.flush.interval.messages=1\n");
    create_topic(&cluster, "flushed", &[1], &[]).await;
    let fs = on_lazy_disk(&mut cluster.brokers[0]);
    let mut acked = Vec::new();
    for round in rounds(3) {
        let producer =
            Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::Leader)).expect("producer");
        let got = send_all(&producer, "flushed", round * 1000..(round + 1) * 1000).await;
        assert_eq!(got.len(), 1000, "round {round}: every send is acknowledged");
        acked.extend(got);
        producer.close().await;
        cluster.brokers[0].kill();
        let report = fs.power_cut(Cut::Seeded(round));
        println!("round {round}: {report}");
        cluster.brokers[0].restart();
        let values = read_values(&cluster, "flushed", acked.len()).await;
        assert_eq!(values, acked, "round {round}: the log is exactly what was acknowledged");
    }
}

/// One broker with Kafka's default flush policy (no fsync per append; a segment is synced when
/// it rolls or is recovered): a power cut loses acknowledged records, as Kafka's documentation
/// says of a single replica, but recovery always leaves a valid prefix of what was sent, and
/// the log goes on from there. This is also the proof that the lazy filesystem bites.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_flush_policy_a_cut_single_replica_recovers_a_valid_prefix() {
    let mut cluster = BrokerCluster::start(1, "");
    create_topic(&cluster, "unflushed", &[1], &[]).await;
    let fs = on_lazy_disk(&mut cluster.brokers[0]);
    let mut log: Vec<u64> = Vec::new();
    let mut lost = 0;
    for round in rounds(4) {
        let producer =
            Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::Leader)).expect("producer");
        let sent: Vec<u64> = (round * 1000..(round + 1) * 1000).collect();
        let got = send_all(&producer, "unflushed", round * 1000..(round + 1) * 1000).await;
        assert_eq!(got, sent, "round {round}: every send is acknowledged");
        producer.close().await;
        cluster.brokers[0].kill();
        let report = fs.power_cut(Cut::Seeded(round));
        cluster.brokers[0].restart();
        let expected: Vec<u64> = log.iter().chain(&sent).copied().collect();
        let values = read_values(&cluster, "unflushed", expected.len()).await;
        println!("round {round}: {} of {} records left; cut: {report}", values.len(), expected.len());
        assert!(expected.starts_with(&values), "round {round}: not a prefix of what was sent: {values:?}");
        lost += expected.len() - values.len();
        log = values;
    }
    assert!(lost > 0, "four power cuts lost nothing unsynced: the lazy filesystem is not cutting");
}

/// Fast failure detection: a 4 s keeper session, followers evicted after 2 s.
const FAST: &str =
    "zookeeper.session.timeout.ms=4000\nreplica.lag.time.max.ms=2000\nreplica.fetch.backoff.ms=100\n";

/// Waits (up to `within`) until partition 0 of `topic` has a state that satisfies `cond`.
async fn wait_state(
    k: &KeeperClient,
    topic: &str,
    within: Duration,
    what: &str,
    cond: impl Fn(&PartitionState) -> bool,
) -> PartitionState {
    let found = std::sync::Mutex::new(None);
    let ok = wait_for(within, || async {
        let s = k.get_data(&znodes::state_path(topic, 0), false).await.ok();
        let s = s.and_then(|(data, stat)| znodes::decode_state(topic, 0, &data, stat.version).ok());
        let ok = s.as_ref().is_some_and(&cond);
        *found.lock().unwrap_or_else(|p| p.into_inner()) = s;
        ok
    })
    .await;
    let s = found.lock().unwrap_or_else(|p| p.into_inner()).take();
    assert!(ok, "{topic}-0: waited {within:?} for {what}; state: {s:?}");
    s.expect("a state")
}

/// RF=3 with Kafka's default flush policy, every broker's log on its own lazy filesystem: the
/// leader is SIGKILLed while an idempotent `acks=all` producer sends, and its disk loses all
/// it never synced. The others take over; the cut broker recovers a
/// valid prefix, rejoins and fetches the rest. Then the two others are killed, so the cut
/// broker leads alone: it serves every acknowledged record, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_flush_policy_a_cut_leader_gets_back_all_it_acknowledged_from_its_followers() {
    let mut cluster = BrokerCluster::start_on(1, 3, &format!("{FAST}min.insync.replicas=2\n"), "");
    create_topic(&cluster, "replicated", &[1, 2, 3], &[]).await;
    let disks: Vec<LazyFs> = cluster.brokers.iter_mut().map(on_lazy_disk).collect();
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(10), ..Default::default() };
    let k = KeeperClient::connect(&cluster.zookeeper_connect(), &cluster.pki.client("observer"), opts)
        .await
        .expect("keeper")
        .0;
    let s = wait_state(&k, "replicated", Duration::from_secs(30), "a leader and an ISR of 3", |s| {
        s.leader > 0 && s.isr.len() == 3
    })
    .await;
    let cut = s.leader;
    let producer = Producer::new(
        ProducerConfig::new(client(&cluster)).acks(Acks::All).delivery_timeout(Duration::from_secs(60)),
    )
    .expect("producer");
    // The first 1,000 are acknowledged before the kill, so they sit in the leader's page
    // cache; the next 1,000 are in flight when it dies.
    let mut acked = send_all(&producer, "replicated", 0..1000).await;
    assert_eq!(acked.len(), 1000, "every send before the kill is acknowledged");
    let mut pending = Vec::new();
    for v in 1000..2000u64 {
        let record = ProducerRecord::new("replicated", v.to_string()).with_partition(0);
        pending.push((v, producer.send(record).await.expect("send")));
        if v == 1100 {
            cluster.brokers[(cut - 1) as usize].kill();
        }
    }
    // The harshest cut for a leader: all it never synced is gone.
    let report = disks[(cut - 1) as usize].power_cut(Cut::LoseAll);
    println!("broker {cut} cut: {report}");
    assert!(
        report.names.iter().any(|n| n.ends_with(".log")),
        "the leader had synced its whole log: nothing for the cut to lose ({report})"
    );
    for (v, d) in pending {
        d.await.unwrap_or_else(|e| panic!("value {v} failed: {e}"));
        acked.push(v);
    }
    producer.close().await;
    wait_state(&k, "replicated", Duration::from_secs(30), "another leader", |s| {
        s.leader > 0 && s.leader != cut
    })
    .await;
    cluster.brokers[(cut - 1) as usize].restart();
    wait_state(&k, "replicated", Duration::from_secs(30), "the cut broker back in the ISR", |s| {
        s.isr.contains(&cut)
    })
    .await;
    for b in cluster.brokers.iter_mut().filter(|b| b.id != cut) {
        b.kill();
    }
    wait_state(&k, "replicated", Duration::from_secs(30), "the cut broker leading alone", |s| {
        s.leader == cut
    })
    .await;
    let values = read_values(&cluster, "replicated", acked.len()).await;
    assert_eq!(values, acked, "the cut broker serves every acknowledged record, once, in order");
}

/// A standalone keeper whose fsync fails: the write it covered is refused, reads go on, and
/// the keeper never retries the fsync: later writes are refused too, even once fsyncs work
/// again, until a restart. After a power cut and the restart, every acknowledged write is
/// there and the refused one is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_whose_fsync_fails_refuses_writes_until_restarted_and_loses_nothing_it_acknowledged() {
    let (pki, _dir, mut keeper, fs) = keeper_on_lazy_disk();
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(30), ..Default::default() };
    let (c, _ev) =
        KeeperClient::connect(&keeper.addr, &pki.client("app"), opts.clone()).await.expect("connect");
    for i in 0..20 {
        c.create(&format!("/acked-{i}"), b"x", P).await.expect("create");
    }
    fs.fail_syncs(true);
    let refused = c.create("/refused", b"x", P).await.expect_err("a write whose fsync failed is refused");
    println!("refused: {refused}");
    assert!(fs.fail_syncs(false) >= 1, "the keeper's fsync failed");
    assert_eq!(c.get_data("/acked-3", false).await.expect("reads go on").0, b"x");
    let again = c.create("/after", b"x", P).await;
    assert!(
        again.is_err(),
        "a failed fsync is not retried: writes stay refused until a restart, got {again:?}"
    );
    keeper.kill();
    let report = fs.power_cut(Cut::LoseAll);
    println!("cut: {report}");
    keeper.restart();
    let (c, _ev) = KeeperClient::connect(&keeper.addr, &pki.client("app"), opts).await.expect("connect");
    for i in 0..20 {
        assert!(c.exists(&format!("/acked-{i}"), false).await.expect("exists").is_some(), "/acked-{i} lost");
    }
    assert!(c.exists("/refused", false).await.expect("exists").is_none(), "the refused write came back");
    c.create("/restarted", b"x", P).await.expect("writes again after the restart");
}

/// A broker whose only log directory cannot fsync (`log.flush.interval.messages=1`): the
/// append's fsync fails, the broker takes the directory out of service and, having no other,
/// stops, saying why. After a power cut and a restart every acknowledged record is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_fsync_fails_stops_and_keeps_every_record_it_acknowledged() {
    let mut cluster = BrokerCluster::start(1, "log.flush.interval.messages=1\n");
    create_topic(&cluster, "synced", &[1], &[]).await;
    let fs = on_lazy_disk(&mut cluster.brokers[0]);
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).acks(Acks::Leader)).expect("producer");
    let acked = send_all(&producer, "synced", 0..500).await;
    assert_eq!(acked.len(), 500);
    fs.fail_syncs(true);
    let late = Producer::new(
        ProducerConfig::new(client(&cluster)).acks(Acks::Leader).delivery_timeout(Duration::from_secs(5)),
    )
    .expect("producer");
    let failed = send_all(&late, "synced", 500..510).await;
    assert!(failed.is_empty(), "records whose fsync failed were acknowledged: {failed:?}");
    let broker = &mut cluster.brokers[0];
    let stopped = poll_until(Duration::from_secs(20), || broker.exited().ok_or_else(String::new));
    assert!(stopped.is_ok(), "the broker kept serving from a directory whose fsync failed");
    let log = std::fs::read_to_string(&cluster.brokers[0].log).expect("broker log");
    assert!(log.contains("the last working log directory failed"), "it says why: {log}");
    assert!(fs.fail_syncs(false) >= 1);
    producer.close().await;
    let report = fs.power_cut(Cut::LoseAll);
    println!("cut: {report}");
    cluster.brokers[0].restart();
    let values = read_values(&cluster, "synced", acked.len()).await;
    assert!(
        values.starts_with(&acked),
        "every acknowledged record, in order: {} of {}",
        values.len(),
        acked.len()
    );
}
