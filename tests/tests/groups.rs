//! Consumer groups as a user meets them: real `sluice broker` processes, real QUIC with
//! mTLS, consumers of the SDK subscribing with a `group.id`, SIGKILL for faults. Reference:
//! Kafka's group coordinator (join / sync / heartbeat / leave, the initial rebalance delay,
//! offsets in `__consumer_offsets`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sluice_client::broker::proto::*;
use sluice_client::broker::TopicPartition;
use sluice_client::broker::{
    Admin, AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig,
    ProducerRecord,
};
use sluice_tests::group_ledger::{run_member, Ledger};
use sluice_tests::{wait_for, BrokerCluster};

/// A single-server offsets topic that is quick to create, a 1 s initial delay, and sessions
/// down to 1 s.
const GROUPS: &str = "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=4\n\
                      group.initial.rebalance.delay.ms=1000\ngroup.min.session.timeout.ms=1000\n";

fn client(cluster: &BrokerCluster) -> ClientConfig {
    ClientConfig::new(cluster.brokers.iter().map(|b| b.addr.clone()))
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(20))
        .retry_backoff(Duration::from_millis(50))
}

async fn create(cluster: &BrokerCluster, name: &str, partitions: i32, rf: i16) {
    let admin = Admin::new(client(cluster)).expect("admin");
    let t = NewTopic::new(name, partitions, rf);
    let r = admin.create_topics(vec![t], false).await.expect("create");
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
}

/// A consumer of `group` with a 3 s session and heartbeats every 500 ms.
fn member(cluster: &BrokerCluster, group: &str) -> ConsumerConfig {
    ConsumerConfig::new(client(cluster).client_id(format!("{group}-member")))
        .group_id(group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .session_timeout(Duration::from_secs(3))
        .heartbeat_interval(Duration::from_millis(500))
        .max_poll_interval(Duration::from_secs(20))
}

async fn produce(cluster: &BrokerCluster, topic: &str, n: usize) {
    let producer = Producer::new(ProducerConfig::new(client(cluster))).expect("producer");
    let mut ds = Vec::new();
    for i in 0..n {
        ds.push(
            producer
                .send(ProducerRecord::new(topic, i.to_string()).with_key(i.to_string()))
                .await
                .expect("send"),
        );
    }
    for d in ds {
        d.await.expect("delivered");
    }
    producer.close().await;
}

fn partitions(c: &Consumer) -> BTreeSet<(String, i32)> {
    c.assignment().into_iter().map(|tp| (tp.topic, tp.partition)).collect()
}

/// Polls until the consumer has partitions (or `within` passes).
async fn until_assigned(c: &mut Consumer, within: Duration) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got.extend(c.poll(Duration::from_millis(200)).await.expect("poll"));
        if !c.assignment().is_empty() {
            break;
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_consumers_started_together_rebalance_once_and_share_six_partitions() {
    let cluster = BrokerCluster::start(1, GROUPS);
    create(&cluster, "shared", 6, 1).await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut c = Consumer::new(member(&cluster, "trio")).expect("consumer");
        c.subscribe(["shared"]).expect("subscribe");
        tasks.push(tokio::spawn(async move {
            until_assigned(&mut c, Duration::from_secs(30)).await;
            c
        }));
    }
    let mut consumers = Vec::new();
    for t in tasks {
        consumers.push(t.await.expect("task"));
    }
    let mut all = BTreeSet::new();
    for c in &consumers {
        let (generation, member) = c.group_generation().expect("in a group");
        assert_eq!(generation, 1, "member {member}: one rebalance for three consumers started together");
        let mine = partitions(c);
        assert_eq!(mine.len(), 2, "member {member} got {mine:?}");
        all.extend(mine);
    }
    assert_eq!(all.len(), 6, "every partition assigned once: {all:?}");
    // The group as an admin sees it.
    let admin = Admin::new(client(&cluster)).expect("admin");
    let described = admin.describe_groups(vec!["trio".into()]).await.expect("describe");
    let d = described[0].as_ref().expect("described");
    assert_eq!(d.state, "Stable");
    assert_eq!(d.generation_id, 1);
    assert_eq!(d.members.len(), 3);
    assert_eq!(d.protocol, "range");
}

/// A child process, SIGKILLed and reaped on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_members_partitions_move_after_its_session_and_a_closed_ones_at_once() {
    let cluster = BrokerCluster::start(1, GROUPS);
    create(&cluster, "moving", 4, 1).await;
    let mut a = Consumer::new(member(&cluster, "movers")).expect("a");
    a.subscribe(["moving"]).expect("subscribe");
    until_assigned(&mut a, Duration::from_secs(30)).await;
    assert_eq!(partitions(&a).len(), 4);
    // --- b: a console consumer process in the same group; it takes half
    let log = std::fs::File::create(cluster.dir.path().join("member-b.log")).expect("log");
    let mut b = Child(
        std::process::Command::new(sluice_tests::sluice_bin())
            .args(["console-consumer", "--bootstrap-server", &cluster.bootstrap()])
            .args(sluice_tests::tls_args(&cluster.client_files()))
            .args(["--topic", "moving", "--group", "movers"])
            .args([
                "--consumer-property",
                "session.timeout.ms=3000",
                "--consumer-property",
                "heartbeat.interval.ms=500",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("console-consumer"),
    );
    let shared = async {
        while partitions(&a).len() != 2 {
            a.poll(Duration::from_millis(100)).await.expect("poll");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), shared).await.expect("b joins and a keeps two");
    // --- SIGKILL b: no leave, no more heartbeats; its partitions come back after its session
    let killed = Instant::now();
    b.0.kill().expect("SIGKILL");
    let _ = b.0.wait();
    let moved = async {
        while partitions(&a).len() < 4 {
            a.poll(Duration::from_millis(100)).await.expect("poll");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), moved).await.expect("a takes over all four partitions");
    let took = killed.elapsed();
    println!("b's partitions moved {took:?} after its SIGKILL");
    assert!(
        took >= Duration::from_millis(2500),
        "moved after {took:?}: before the 3 s session timeout ran out?"
    );
    // --- a third member joins, then leaves cleanly: its partitions come back at once
    // (Each consumer polls on its own task, as separate applications would: a join waits
    // for the other members to rejoin from their own polls.)
    let mut c = Consumer::new(member(&cluster, "movers")).expect("c");
    c.subscribe(["moving"]).expect("subscribe");
    let c_task = tokio::spawn(async move {
        while partitions(&c).len() != 2 {
            c.poll(Duration::from_millis(100)).await.expect("poll");
        }
        c
    });
    let joined = async {
        while !(c_task.is_finished() && partitions(&a).len() == 2) {
            a.poll(Duration::from_millis(100)).await.expect("poll");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), joined).await.expect("c joins and gets two");
    let c = c_task.await.expect("c");
    let closed = Instant::now();
    c.close().await.expect("close");
    let back = async {
        while partitions(&a).len() < 4 {
            a.poll(Duration::from_millis(100)).await.expect("poll");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), back).await.expect("a gets them back at once after a leave");
    assert!(
        closed.elapsed() < Duration::from_secs(5),
        "a leave moves partitions without the session timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_offsets_are_where_a_new_member_starts() {
    let cluster = BrokerCluster::start(1, GROUPS);
    create(&cluster, "ledger", 2, 1).await;
    produce(&cluster, "ledger", 100).await;
    let mut a = Consumer::new(member(&cluster, "bookkeepers").enable_auto_commit(false)).expect("a");
    a.subscribe(["ledger"]).expect("subscribe");
    let mut seen = until_assigned(&mut a, Duration::from_secs(30)).await;
    while seen.len() < 60 {
        seen.extend(a.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    // Commit exactly what was processed: for each partition, one past the last record seen.
    let mut upto: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for r in &seen {
        let e = upto.entry(TopicPartition::new(r.topic.clone(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    a.commit_offsets_sync(upto.clone()).await.expect("commit");
    let keys: Vec<TopicPartition> = upto.keys().cloned().collect();
    let committed = a.committed(&keys).await.expect("committed");
    assert_eq!(committed, upto.iter().map(|(tp, o)| (tp.clone(), Some(*o))).collect());
    a.close().await.expect("close");
    // A new member of the group starts at the commits: it sees exactly the rest.
    let mut b = Consumer::new(member(&cluster, "bookkeepers")).expect("b");
    b.subscribe(["ledger"]).expect("subscribe");
    let mut rest = until_assigned(&mut b, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while rest.len() < 100 - upto.values().sum::<i64>() as usize && Instant::now() < deadline {
        rest.extend(b.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    for r in &rest {
        let from = upto.get(&TopicPartition::new(r.topic.clone(), r.partition)).copied().unwrap_or(0);
        assert!(
            r.offset >= from,
            "{}-{} offset {} was committed already (from {from})",
            r.topic,
            r.partition,
            r.offset
        );
    }
    assert_eq!(upto.values().sum::<i64>(), seen.len() as i64, "each partition was read from 0 without gaps");
    assert_eq!(rest.len(), 100 - seen.len(), "the new member read exactly what was not committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_offsets_survive_the_coordinators_death_and_only_uncommitted_records_repeat() {
    const N: usize = 600;
    let extra = "offsets.topic.replication.factor=3\noffsets.topic.num.partitions=3\n\
                 group.initial.rebalance.delay.ms=500\nzookeeper.session.timeout.ms=4000\n\
                 replica.lag.time.max.ms=2000\nmin.insync.replicas=2\ngroup.min.session.timeout.ms=1000\n";
    let mut cluster = BrokerCluster::start_on(3, 3, extra, "");
    create(&cluster, "work", 3, 3).await;
    produce(&cluster, "work", N).await;
    let ledger = std::sync::Arc::new(std::sync::Mutex::new(Ledger::default()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut members = Vec::new();
    for _ in 0..2 {
        let config = member(&cluster, "workers").enable_auto_commit(false).max_poll_records(10);
        let mut c = Consumer::new(config).expect("consumer");
        c.subscribe(["work"]).expect("subscribe");
        members.push(tokio::spawn(run_member(c, ledger.clone(), done.clone())));
    }
    let distinct = |l: &Ledger| l.distinct();
    // --- a third of the way through, SIGKILL the group coordinator's broker
    let third =
        wait_for(Duration::from_secs(60), || async { distinct(&ledger.lock().expect("ledger")) >= N / 3 })
            .await;
    assert!(third, "the group did not get a third through in 60 s");
    let net: sluice_net::Client<BrokerProtocol> =
        sluice_net::Client::new(&cluster.pki.client("raw"), sluice_net::ClientOptions::default())
            .expect("client");
    let coordinator = net
        .call(&cluster.brokers[0].addr, FindCoordinator { group_id: "workers".into() })
        .await
        .expect("call")
        .expect("coordinator");
    println!(
        "killing broker {} (the coordinator) after {} records",
        coordinator.id,
        distinct(&ledger.lock().expect("ledger"))
    );
    cluster.brokers[(coordinator.id - 1) as usize].kill();
    // --- every record is processed, by the survivors' group on the new coordinator
    let all =
        wait_for(Duration::from_secs(90), || async { distinct(&ledger.lock().expect("ledger")) >= N }).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for m in members {
        let _ = tokio::time::timeout(Duration::from_secs(30), m).await;
    }
    {
        let l = ledger.lock().expect("ledger");
        assert!(all, "only {} of {N} records processed within 90 s of the kill", distinct(&l));
        let duplicates = l.processed.len() - distinct(&l);
        println!(
            "processed {} deliveries of {N} records: {duplicates} duplicates, {} failed commits",
            l.processed.len(),
            l.commit_failures
        );
        assert!(
            l.violations.is_empty(),
            "records delivered again below a confirmed commit: {:?}",
            l.violations
        );
        // Duplicates are bounded by what can be uncommitted at a failure: per member one poll
        // (10 records) per failed commit or rebalance.
        assert!(duplicates <= 10 * 2 * (l.commit_failures + 4), "{duplicates} duplicates");
    }
    // The commits themselves survived: the new coordinator serves them.
    let admin = Admin::new(client(&cluster)).expect("admin");
    let committed = admin.list_group_offsets("workers").await.expect("offsets");
    let total: i64 = committed.iter().map(|c| c.offset).sum();
    assert_eq!(total, N as i64, "the committed offsets cover every record: {committed:?}");
}

/// Records what a rebalance listener is told.
#[derive(Debug, Clone, Default)]
struct Heard(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl sluice_client::broker::RebalanceListener for Heard {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let mut ps: Vec<i32> = partitions.iter().map(|tp| tp.partition).collect();
        ps.sort_unstable();
        self.0.lock().expect("heard").push(format!("revoked {ps:?}"));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let mut ps: Vec<i32> = partitions.iter().map(|tp| tp.partition).collect();
        ps.sort_unstable();
        self.0.lock().expect("heard").push(format!("assigned {ps:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_listener_hears_each_revocation_and_assignment_and_async_commits_land() {
    let cluster = BrokerCluster::start(1, GROUPS);
    create(&cluster, "heard", 4, 1).await;
    produce(&cluster, "heard", 40).await;
    let heard = Heard::default();
    let mut a = Consumer::new(member(&cluster, "listeners").enable_auto_commit(false)).expect("a");
    a.subscribe_with(["heard"], heard.clone()).expect("subscribe");
    let mut got = until_assigned(&mut a, Duration::from_secs(30)).await;
    assert_eq!(heard.0.lock().expect("heard").clone(), vec!["assigned [0, 1, 2, 3]"]);
    while got.len() < 40 {
        got.extend(a.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    // An asynchronous commit of every position; its handle says when it landed.
    a.commit_async().expect("commit_async").await.expect("committed");
    let all: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("heard", p)).collect();
    let committed = a.committed(&all).await.expect("committed");
    assert_eq!(committed.values().map(|o| o.unwrap_or(0)).sum::<i64>(), 40, "{committed:?}");
    // A second member: a hears the revocation of all four (eager protocol), then gets two.
    let b_task = tokio::spawn({
        let config = member(&cluster, "listeners").enable_auto_commit(false);
        async move {
            let mut b = Consumer::new(config).expect("b");
            b.subscribe(["heard"]).expect("subscribe");
            until_assigned(&mut b, Duration::from_secs(30)).await;
            b
        }
    });
    let rebalanced = async {
        while partitions(&a).len() != 2 {
            a.poll(Duration::from_millis(100)).await.expect("poll");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), rebalanced).await.expect("a keeps two");
    let b = b_task.await.expect("b");
    let told = heard.0.lock().expect("heard").clone();
    assert_eq!(told.len(), 3, "{told:?}");
    assert_eq!(told[1], "revoked [0, 1, 2, 3]");
    let mut mine: Vec<i32> = partitions(&a).into_iter().map(|(_, p)| p).collect();
    mine.sort_unstable();
    assert_eq!(told[2], format!("assigned {mine:?}"), "{told:?}");
    assert!(mine == [0, 1] || mine == [2, 3], "range gives each member a contiguous half: {mine:?}");
    assert_eq!(partitions(&b).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_drops_the_groups_offsets_for_it() {
    let cluster = BrokerCluster::start(1, GROUPS);
    create(&cluster, "doomed", 2, 1).await;
    create(&cluster, "kept", 1, 1).await;
    let admin = Admin::new(client(&cluster)).expect("admin");
    let offsets = vec![
        CommitOffset::new("doomed", 0, 5),
        CommitOffset::new("doomed", 1, 7),
        CommitOffset::new("kept", 0, 3),
    ];
    let r = admin.alter_group_offsets("keepers", offsets).await.expect("commit");
    assert!(r.iter().all(|(_, _, r)| r.is_ok()), "{r:?}");
    assert_eq!(admin.list_group_offsets("keepers").await.expect("offsets").len(), 3);
    let deleted = admin.delete_topics(vec!["doomed".into()]).await.expect("delete");
    assert!(deleted.iter().all(|(_, r)| r.is_ok()), "{deleted:?}");
    wait_for(Duration::from_secs(20), || async {
        admin.list_group_offsets("keepers").await.is_ok_and(|left| left.len() == 1)
    })
    .await;
    let left = admin.list_group_offsets("keepers").await.expect("offsets");
    assert_eq!(
        left.iter().map(|c| (c.topic.as_str(), c.partition, c.offset)).collect::<Vec<_>>(),
        vec![("kept", 0, 3)],
        "only the surviving topic's offset remains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cooperative_sticky_moves_only_what_must_move_and_never_revokes_everything() {
    let cluster = BrokerCluster::start(1, GROUPS);
    create(&cluster, "shared-coop", 4, 1).await;
    let coop = |c: ConsumerConfig| c.assignment_strategy(["cooperative-sticky"]).enable_auto_commit(false);
    let heard = Heard::default();
    let mut a = Consumer::new(coop(member(&cluster, "cooperators"))).expect("a");
    a.subscribe_with(["shared-coop"], heard.clone()).expect("subscribe");
    until_assigned(&mut a, Duration::from_secs(30)).await;
    let before = partitions(&a);
    assert_eq!(before.len(), 4);
    let b_task = tokio::spawn({
        let config = coop(member(&cluster, "cooperators"));
        async move {
            let mut b = Consumer::new(config).expect("b");
            b.subscribe(["shared-coop"]).expect("subscribe");
            let deadline = Instant::now() + Duration::from_secs(30);
            while partitions(&b).len() != 2 && Instant::now() < deadline {
                b.poll(Duration::from_millis(100)).await.expect("poll");
            }
            b
        }
    });
    let settled = async {
        while !(b_task.is_finished() && partitions(&a).len() == 2) {
            a.poll(Duration::from_millis(100)).await.expect("poll");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), settled).await.expect("two each");
    let b = b_task.await.expect("b");
    let (kept, given) = (partitions(&a), partitions(&b));
    assert_eq!(given.len(), 2);
    assert!(kept.is_subset(&before) && kept.is_disjoint(&given), "a kept {kept:?}, b got {given:?}");
    let told = heard.0.lock().expect("heard").clone();
    let revokes: Vec<&String> = told.iter().filter(|e| e.starts_with("revoked")).collect();
    assert_eq!(revokes.len(), 1, "one revocation, of what moved: {told:?}");
    let moved: Vec<i32> = given.iter().map(|(_, p)| *p).collect();
    assert_eq!(revokes[0], &format!("revoked {moved:?}"), "{told:?}");
    let generation = a.group_generation().expect("a").0;
    assert!(generation >= 3, "two rounds after the first: generation {generation}");
}

/// Records a member yielded: (partition, offset, member).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(i32, i64, &'static str)>>>;

/// A group member reading `topic` as a stream until `stop` says so, recording every record
/// it yields as (partition, offset) in `seen`; commits by auto-commit (before each
/// rebalance, every 500 ms, at close), after putting back what the stream had not yielded.
/// Its processing takes 20 ms per 500 records (so the other member's join and leave happen
/// while there is still work to share).
fn stream_member(
    config: ConsumerConfig,
    topic: &'static str,
    seen: Seen,
    name: &'static str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    tokio::spawn(async move {
        let mut consumer = Consumer::new(config).expect("consumer");
        consumer.subscribe([topic]).expect("subscribe");
        {
            let mut stop = stop;
            let mut records = consumer.stream();
            loop {
                let next = tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    next = records.next() => next,
                };
                match next {
                    Some(Ok(r)) => {
                        let n = {
                            let mut seen = seen.lock().expect("lock");
                            seen.push((r.partition, r.offset, name));
                            seen.len()
                        };
                        if n % 500 == 0 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    Some(Err(e)) => panic!("{name}: the stream failed: {e}"),
                    None => break,
                }
            }
        }
        consumer.close().await.expect("close");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_delivers_100k_records_once_in_order_while_a_member_joins_and_leaves() {
    const TOPIC: &str = "streamed";
    const TOTAL: usize = 100_000;
    let cluster = BrokerCluster::start(
        1,
        &GROUPS.replace("group.initial.rebalance.delay.ms=1000", "group.initial.rebalance.delay.ms=0"),
    );
    create(&cluster, TOPIC, 4, 1).await;
    let producer = Producer::new(ProducerConfig::new(client(&cluster)).linger(Duration::from_millis(5)))
        .expect("producer");
    let mut ds = Vec::with_capacity(TOTAL);
    for i in 0..TOTAL {
        ds.push(producer.send(ProducerRecord::new(TOPIC, i.to_string())).await.expect("send"));
    }
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for d in ds {
        let md = d.await.expect("delivered");
        let end = ends.entry(md.partition).or_default();
        *end = (*end).max(md.offset + 1);
    }
    producer.close().await;
    let config = || {
        member(&cluster, "streamers")
            .enable_auto_commit(true)
            .auto_commit_interval(Duration::from_millis(500))
    };
    let seen: Seen = std::sync::Arc::default();
    let count = |seen: &Seen, who: Option<&str>| {
        seen.lock().expect("lock").iter().filter(|r| who.is_none_or(|w| r.2 == w)).count()
    };
    // --- A alone; B joins once A has 20,000; B leaves once it has 10,000 of its own
    let (stop_a, a_stop) = tokio::sync::watch::channel(false);
    let a = stream_member(config(), TOPIC, seen.clone(), "a", a_stop);
    assert!(
        wait_for(Duration::from_secs(60), || async { count(&seen, None) >= 20_000 }).await,
        "a read 20,000 records ({})",
        count(&seen, None)
    );
    let (stop_b, b_stop) = tokio::sync::watch::channel(false);
    let b = stream_member(config(), TOPIC, seen.clone(), "b", b_stop);
    let b_read = wait_for(Duration::from_secs(60), || async {
        count(&seen, Some("b")) >= 10_000 || count(&seen, None) >= TOTAL
    })
    .await;
    assert!(b_read && count(&seen, Some("b")) > 0, "b joined and read records ({})", count(&seen, Some("b")));
    stop_b.send_replace(true);
    b.await.expect("b");
    // --- A takes B's partitions back and reads to the end
    let all = wait_for(Duration::from_secs(90), || async { count(&seen, None) >= TOTAL }).await;
    stop_a.send_replace(true);
    a.await.expect("a");
    let seen = seen.lock().expect("lock").clone();
    assert!(all, "{} of {TOTAL} records read", seen.len());
    // --- every record exactly once, and each member's records in order per partition
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o, _) in &seen {
        by_partition.entry(*p).or_default().push(*o);
    }
    for (p, end) in &ends {
        let mut offsets = by_partition.remove(p).unwrap_or_default();
        offsets.sort_unstable();
        let expected: Vec<i64> = (0..*end).collect();
        assert!(offsets == expected, "partition {p}: {} records read for offsets 0..{end}", offsets.len());
    }
    for who in ["a", "b"] {
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for (p, o, _) in seen.iter().filter(|r| r.2 == who) {
            if let Some(prev) = last.insert(*p, *o) {
                assert!(*o > prev, "{who} read {p}@{o} after {p}@{prev}");
            }
        }
    }
    assert_eq!(seen.len(), TOTAL, "no record twice");
    let b_count = seen.iter().filter(|r| r.2 == "b").count();
    eprintln!("a read {}, b read {b_count}", TOTAL - b_count);
}
