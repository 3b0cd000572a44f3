//! The keeper ensemble as a user runs it: 3 or 5 real `sluice keeper start` processes on
//! loopback, peer links over mTLS QUIC, SIGKILL for faults. Reference: ZooKeeper
//! Administrator's Guide (ensembles, majority quorum) and Programmer's Guide (consistency
//! guarantees, sessions across servers).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_client::keeper::{KeeperClient, KeeperClientError, KeeperClientOptions};
use sluice_keeper_core::{CreateMode, ErrorCode, KeeperError};
use sluice_tests::linearizability::{self, History, Op, Outcome, Output, Workload};
use sluice_tests::{wait_for, KeeperEnsemble, TestPki, Tmpfs};

const P: CreateMode = CreateMode::Persistent;
/// tickTime of every test ensemble: sessions may last 400 ms to 4 s; a write waits at most
/// syncLimit (5) ticks = 1 s for a quorum.
const TICK_MS: u32 = 200;
const SESSION_MS: u64 = 4000;

async fn client(pki: &TestPki, connect: &str) -> KeeperClient {
    let opts =
        KeeperClientOptions { session_timeout: Duration::from_millis(SESSION_MS), ..Default::default() };
    KeeperClient::connect(connect, &pki.client("app"), opts).await.expect("connect").0
}

/// Starts an ensemble of `n` members and waits for its leader. Bind every part: the
/// ensemble's processes stop before its directory goes.
async fn up(n: usize) -> (TestPki, tempfile::TempDir, KeeperEnsemble, sluice_net::ClientTls, usize) {
    up_with(n, "").await
}

/// [`up`] with more config lines for every member.
async fn up_with(
    n: usize,
    extra: &str,
) -> (TestPki, tempfile::TempDir, KeeperEnsemble, sluice_net::ClientTls, usize) {
    let pki = TestPki::new("ensemble");
    let dir = tempfile::tempdir().expect("tempdir");
    let ens = KeeperEnsemble::start(&pki, dir.path(), n, TICK_MS, extra);
    let tls = pki.client("status");
    let leader = ens.leader(&tls, Duration::from_secs(30)).await.expect("the ensemble elects a leader");
    (pki, dir, ens, tls, leader)
}

fn hosts(ens: &KeeperEnsemble, order: &[usize]) -> String {
    order.iter().map(|i| ens.members[*i].addr.as_str()).collect::<Vec<_>>().join(",")
}

/// The workload's seed: `LIN_SEED`, or one from the clock (printed, so a failure replays).
fn workload_seed() -> u64 {
    std::env::var("LIN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1
    })
}

/// How workload client `client_no` opens a session: on all three members, starting with
/// member `client_no % 3` (so that the clients start spread over the ensemble).
fn opener(
    pki: &TestPki,
    ens: &KeeperEnsemble,
    client_no: usize,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = KeeperClient> + Send>> + Send + 'static {
    let order: Vec<usize> = (0..3).map(|i| (i + client_no) % 3).collect();
    let (tls, connect) = (pki.client("app"), hosts(ens, &order));
    move || {
        let (tls, connect) = (tls.clone(), connect.clone());
        let opts =
            KeeperClientOptions { session_timeout: Duration::from_millis(SESSION_MS), ..Default::default() };
        Box::pin(async move { KeeperClient::connect(&connect, &tls, opts).await.expect("connect").0 })
    }
}

fn others(n: usize, but: usize) -> Vec<usize> {
    (0..n).filter(|i| *i != but).collect()
}

/// Writes `/load` as fast as acknowledgements come, recording when each was acknowledged.
struct Writer {
    acked: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(c: KeeperClient) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                if c.set_data("/load", i.to_string().as_bytes(), -1).await.is_ok() {
                    a.lock().expect("lock").push((Instant::now(), i));
                }
            }
        });
        Writer { acked, stop, task }
    }

    fn acked_after(&self, t: Instant) -> Option<Instant> {
        self.acked.lock().expect("lock").iter().find(|(at, _)| *at > t).map(|(at, _)| *at)
    }

    fn count(&self) -> usize {
        self.acked.lock().expect("lock").len()
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let last = self.acked.lock().expect("lock").last().map(|(_, i)| *i);
        last.expect("some writes were acknowledged")
    }
}

/// Waits until member `i`, read alone, has `/load` = `value`.
async fn caught_up(pki: &TestPki, ens: &KeeperEnsemble, i: usize, value: u64) -> bool {
    let c = client(pki, &ens.members[i].addr).await;
    let want = value.to_string().into_bytes();
    wait_for(Duration::from_secs(30), || {
        let c = &c;
        let want = &want;
        async move { c.get_data("/load", false).await.map(|(d, _)| d == *want).unwrap_or(false) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_the_leader_under_write_load_writes_resume_on_the_survivors_and_it_catches_up() {
    let (pki, _dir, mut ens, tls, leader) = up(3).await;
    // The writer talks to the followers, so the kill takes its leader, not its connection.
    let c = client(&pki, &hosts(&ens, &others(3, leader))).await;
    c.create("/load", b"0", P).await.expect("create /load");
    let writer = Writer::start(c);
    assert!(wait_for(Duration::from_secs(20), || async { writer.count() >= 100 }).await, "writes flow");

    let killed_at = Instant::now();
    ens.members[leader].kill();
    assert!(
        wait_for(Duration::from_secs(20), || async { writer.acked_after(killed_at).is_some() }).await,
        "writes resumed on the survivors"
    );
    let resumed = writer.acked_after(killed_at).expect("a write after the kill") - killed_at;
    eprintln!("leader SIGKILL -> first acknowledged write: {} ms", resumed.as_millis());
    assert!(resumed < Duration::from_secs(10), "failover took {resumed:?}");
    let new_leader = ens.leader(&tls, Duration::from_secs(10)).await.expect("a new leader");
    assert_ne!(new_leader, leader);
    // The survivors learnt of the death from their liveness links closing (the kernel closes a
    // killed process's TCP sockets), not from the dead leader's lease running out.
    for i in others(3, leader) {
        let log = &ens.members[i].log;
        assert!(
            wait_for(Duration::from_secs(10), || async {
                std::fs::read_to_string(log).is_ok_and(|l| l.contains("the leader's liveness link closed"))
            })
            .await,
            "member {} stood for election when its leader's link closed: {}",
            i + 1,
            log.display()
        );
    }
    // Some more writes under the new leader, then the killed member comes back and catches up.
    let before = writer.count();
    assert!(wait_for(Duration::from_secs(20), || async { writer.count() >= before + 100 }).await);
    let last = writer.finish().await;
    ens.members[leader].restart();
    assert!(caught_up(&pki, &ens, leader, last).await, "the restarted member catches up to /load={last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_across_snapshots_catches_up_from_the_leaders_snapshot() {
    let (pki, _dir, mut ens, _, leader) = up(3).await;
    let down = others(3, leader)[0];
    let c = client(&pki, &hosts(&ens, &[leader])).await;
    c.create("/load", b"0", P).await.expect("create /load");
    ens.members[down].kill();
    // snapCount is 1000 transactions and the leader keeps 100 log entries behind a snapshot
    // (an entry holds a batch of writes): 3,000 writes leave the member behind the purged
    // log, so only a snapshot can bring it back.
    let c = Arc::new(c);
    let next = Arc::new(AtomicUsize::new(1));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (c, next) = (c.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i > 3000 {
                        return;
                    }
                    c.create(&format!("/n{i}"), b"x", P).await.expect("create with a quorum of 2");
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("writer");
    }
    c.set_data("/load", b"3000", -1).await.expect("last write");
    ens.members[down].restart();
    assert!(caught_up(&pki, &ens, down, 3000).await, "the restarted member catches up");
    let log = std::fs::read_to_string(&ens.members[down].log).expect("log");
    assert!(log.contains("installed the leader's snapshot"), "it caught up by snapshot:\n{log}");
    let back = client(&pki, &ens.members[down].addr).await;
    assert_eq!(back.children("/", false).await.expect("ls /").len(), 3000 + 1, "/n1../n3000 and /load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_server_dies_keeps_its_session_and_ephemeral_on_another() {
    let (pki, _dir, mut ens, _, leader) = up(3).await;
    // The client lands on the leader (first in its list): the hardest case, since the
    // server it is connected to is also the one deciding expiry.
    let mut order = vec![leader];
    order.extend(others(3, leader));
    let c = client(&pki, &hosts(&ens, &order)).await;
    let session = c.session_id();
    c.create("/eph", b"mine", CreateMode::Ephemeral).await.expect("ephemeral");
    ens.members[leader].kill();
    // Its next call moves it to another member, within its timeout, same session.
    let stat = c.exists("/eph", false).await.expect("exists after failover");
    assert_eq!(stat.map(|s| s.ephemeral_owner as u64), Some(session), "the ephemeral is still its own");
    assert_eq!(c.session_id(), session);
    // And it stays alive: watched from another client for two session timeouts (the new
    // leader gives it a full timeout, the client's pings reach it through its member).
    // A data watch hears any deletion (or change) of the node; none may come.
    let opts =
        KeeperClientOptions { session_timeout: Duration::from_millis(SESSION_MS), ..Default::default() };
    let (watcher, mut events) =
        KeeperClient::connect(&hosts(&ens, &others(3, leader)), &pki.client("app"), opts)
            .await
            .expect("connect");
    assert!(watcher.exists("/eph", true).await.expect("exists").is_some());
    let heard = tokio::time::timeout(Duration::from_millis(2 * SESSION_MS), events.recv()).await;
    assert!(heard.is_err(), "the ephemeral changed or vanished although its client lives: {heard:?}");
    c.set_data("/eph", b"still", -1).await.expect("the session still writes");
    // Closing it deletes the ephemeral everywhere.
    c.close().await.expect("close");
    assert!(
        wait_for(Duration::from_secs(5), || async {
            matches!(watcher.exists("/eph", false).await, Ok(None))
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_of_three_down_writes_fail_fast_with_no_quorum_and_work_once_one_returns() {
    let metrics_on = "metricsProvider.httpPort=0\nmetricsProvider.httpHost=127.0.0.1\n";
    let (pki, _dir, mut ens, tls, leader) = up_with(3, metrics_on).await;
    let survivor = others(3, leader)[0];
    let metrics = ens.members[survivor].metrics.clone().expect("a metrics endpoint");
    let quorum_is = |v: &'static str| {
        let url = metrics.clone();
        move || {
            let url = url.clone();
            async move {
                let body = sluice_tests::http_get(&url).map(|(_, b)| b).unwrap_or_default();
                body.lines().any(|l| l == format!("sluice_keeper_quorum {v}"))
            }
        }
    };
    assert!(wait_for(Duration::from_secs(10), quorum_is("1")).await, "the gauge says it has a quorum");
    let c = client(&pki, &hosts(&ens, &[survivor])).await;
    c.create("/a", b"before", P).await.expect("write with a quorum");
    assert!(!c.may_be_stale());
    for i in others(3, survivor) {
        ens.members[i].kill();
    }
    // The member tells its clients once it has no leader: reads may be stale from then on.
    assert!(
        wait_for(Duration::from_secs(10), || async { c.may_be_stale() }).await,
        "told of the lost quorum"
    );
    assert!(wait_for(Duration::from_secs(10), quorum_is("0")).await, "the gauge says so too");
    let started = Instant::now();
    let err = c.set_data("/a", b"lost", -1).await;
    let took = started.elapsed();
    match err {
        Err(KeeperClientError::Keeper(e @ KeeperError::NoQuorum { .. })) => {
            assert_eq!(e.code(), ErrorCode::NotReadOnly);
            eprintln!("write without a quorum failed in {} ms: {e}", took.as_millis());
        }
        other => panic!("expected NoQuorum, got {other:?}"),
    }
    assert!(took <= Duration::from_millis(SESSION_MS), "failed within the session timeout: {took:?}");
    // Reads still answer, from the member's own (possibly stale) state.
    assert_eq!(c.get_data("/a", false).await.expect("read").0, b"before");
    let status =
        sluice_client::keeper::KeeperClient::status(&ens.members[survivor].addr, &tls).await.expect("status");
    assert_ne!(status.mode, "leader", "a lone member does not lead");
    // One member back: a majority again, writes work.
    ens.members[leader].restart();
    assert!(
        wait_for(Duration::from_secs(30), || async { c.set_data("/a", b"after", -1).await.is_ok() }).await,
        "writes work once a majority is back"
    );
    assert_eq!(c.get_data("/a", false).await.expect("read").0, b"after");
    assert!(wait_for(Duration::from_secs(10), || async { !c.may_be_stale() }).await, "told of the quorum");
    assert!(wait_for(Duration::from_secs(10), quorum_is("1")).await, "the gauge says so too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_survive_two_sigkills() {
    let (pki, _dir, mut ens, _, leader) = up(5).await;
    let c = client(&pki, &ens.connect_string()).await;
    c.create("/five", b"0", P).await.expect("write with 5");
    let follower = others(5, leader)[0];
    ens.members[leader].kill();
    ens.members[follower].kill();
    let survivors: Vec<usize> = (0..5).filter(|i| *i != leader && *i != follower).collect();
    let w = client(&pki, &hosts(&ens, &survivors)).await;
    assert!(
        wait_for(Duration::from_secs(30), || async { w.set_data("/five", b"3", -1).await.is_ok() }).await,
        "3 of 5 still commit"
    );
    for i in survivors {
        let r = client(&pki, &ens.members[i].addr).await;
        r.sync("/five").await.expect("sync");
        assert_eq!(r.get_data("/five", false).await.expect("read").0, b"3", "member {}", i + 1);
    }
}

/// The directory model ([`sluice_tests::dir_model`]): ephemeral, sequential and plain
/// creates, deletes, `multi` pairs and linearizable reads of data and children, from four
/// clients while the leader is SIGKILLed; one client drops its session unclosed, so its
/// ephemeral goes when the session expires, at a time the history does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_deletes_sequential_ephemerals_and_multis_stay_linearizable_while_a_leader_dies() {
    use sluice_tests::dir_model::{self, DirCheck, DirWorkload};
    const CLIENTS: usize = 4;
    let seed = workload_seed();
    eprintln!("directory workload seed {seed} (rerun with LIN_SEED={seed})");
    let (pki, _dir, mut ens, tls, _) = up(3).await;
    let setup = client(&pki, &ens.connect_string()).await;
    let initial = DirWorkload::prepare(&setup).await;
    let workload = DirWorkload::default();
    let mut workers = Vec::new();
    for client_no in 0..CLIENTS {
        let open = opener(&pki, &ens, client_no);
        // The last client stops early and abandons its session.
        let (max_ops, abandon) = if client_no == CLIENTS - 1 { (40, true) } else { (150, false) };
        let ops = (max_ops, Duration::ZERO);
        // The second goes on with its session after a lost write; the others close theirs.
        let mut w = workload.clone();
        w.keep_session_after_loss = client_no == 1;
        workers.push(tokio::spawn(w.run_client(open, client_no, seed, ops, abandon)));
    }
    let done = workload.done.clone();
    assert!(wait_for(Duration::from_secs(30), || async { done.load(Ordering::Relaxed) >= 100 }).await);
    let leader = ens.leader(&tls, Duration::from_secs(20)).await.expect("a leader");
    eprintln!("SIGKILL leader {}", leader + 1);
    ens.members[leader].kill();
    let before = done.load(Ordering::Relaxed);
    assert!(
        wait_for(Duration::from_secs(30), || async { done.load(Ordering::Relaxed) >= before + 100 }).await,
        "the workload goes on without the leader"
    );
    ens.members[leader].restart();
    // Every client runs out of operations; the abandoned session expires meanwhile.
    let all_done =
        wait_for(Duration::from_secs(60), || async { workers.iter().all(|w| w.is_finished()) }).await;
    assert!(all_done, "the clients did not finish their operations");
    let mut events = workload.finish(workers).await;
    // Reads after the abandoned session's expiry: its ephemeral is gone.
    let reader = client(&pki, &ens.connect_string()).await;
    let gone = wait_for(Duration::from_secs(30), || async {
        reader
            .exists(&format!("{}/e{}", DirWorkload::DIR, CLIENTS - 1), false)
            .await
            .is_ok_and(|s| s.is_none())
    })
    .await;
    assert!(gone, "the abandoned session's ephemeral outlived its session");
    let invoked = workload.now_ns();
    reader.sync(DirWorkload::DIR).await.expect("sync");
    let children = reader.children(DirWorkload::DIR, false).await.expect("children");
    let mut sorted = children.clone();
    sorted.sort();
    events.push(dir_model::DirEvent {
        client: CLIENTS,
        op: dir_model::DirOp::Children,
        session: None,
        invoked_ns: invoked,
        answer: Some((workload.now_ns(), dir_model::DirOut::Children(sorted))),
    });
    let unknown = events.iter().filter(|e| e.answer.is_none()).count();
    eprintln!("history: {} operations ({unknown} with unknown outcome)", events.len());
    let checked = Instant::now();
    match dir_model::check(&events, &initial) {
        DirCheck::Linearizable => {}
        other => panic!("seed {seed}: {other:?}"),
    }
    eprintln!("checked in {} ms", checked.elapsed().as_millis());
    // The checker is not blind: the abandoned ephemeral seen again after all that is caught.
    let mut planted = events.clone();
    let t = workload.now_ns();
    planted.push(dir_model::DirEvent {
        client: CLIENTS,
        op: dir_model::DirOp::Get { name: format!("e{}", CLIENTS - 1) },
        session: None,
        invoked_ns: t,
        answer: Some((t + 1, dir_model::DirOut::Got(Some((b"ghost".to_vec(), 0))))),
    });
    assert!(
        matches!(dir_model::check(&planted, &initial), DirCheck::Violation { .. }),
        "a planted read must fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_and_compare_and_set_stay_linearizable_while_leaders_die() {
    const KEYS: [&str; 3] = ["/k0", "/k1", "/k2"];
    const CLIENTS: usize = 5;
    let seed = workload_seed();
    eprintln!("linearizability workload seed {seed} (rerun with LIN_SEED={seed})");
    let (pki, _dir, mut ens, tls, _) = up(3).await;
    let setup = client(&pki, &ens.connect_string()).await;
    for k in KEYS {
        setup.create(k, b"0", P).await.expect("create key");
    }
    let workload = Workload::default();
    let mut workers = Vec::new();
    for client_no in 0..CLIENTS {
        let open = opener(&pki, &ens, client_no);
        workers.push(tokio::spawn(workload.clone().run_client(open, client_no, &KEYS, seed)));
    }
    let done = workload.done.clone();
    let ns = || workload.now_ns();
    // Kill the leader three times, each time letting the workload run on without it and
    // then with it back.
    for round in 0..3 {
        let before = done.load(Ordering::Relaxed);
        assert!(
            wait_for(Duration::from_secs(30), || async { done.load(Ordering::Relaxed) >= before + 150 })
                .await
        );
        let leader = ens.leader(&tls, Duration::from_secs(20)).await.expect("a leader");
        eprintln!("round {round}: SIGKILL leader {}", leader + 1);
        ens.members[leader].kill();
        let before = done.load(Ordering::Relaxed);
        assert!(
            wait_for(Duration::from_secs(30), || async { done.load(Ordering::Relaxed) >= before + 150 })
                .await,
            "the workload goes on without the leader"
        );
        ens.members[leader].restart();
    }
    let (events, initial, unknown) = workload.finish(workers, &KEYS, b"0").await;
    eprintln!("history: {} operations ({unknown} with unknown outcome)", events.len());
    let checked = Instant::now();
    if let Err(e) = linearizability::check(&events, &initial) {
        panic!("seed {seed}: not linearizable: {e}");
    }
    eprintln!("checked in {} ms", checked.elapsed().as_millis());
    // The checker is not blind: a read after everything, seeing a key's first value, is caught.
    let mut planted = History::new();
    for e in &events {
        let id = planted.invoke(e.client, e.op.clone(), e.invoked_ns);
        if let Some(t) = e.completed_ns {
            planted.complete(id, t, e.outcome.clone());
        }
    }
    let written = KEYS
        .iter()
        .find(|k| {
            events
                .iter()
                .any(|e| e.op.key() == **k && matches!(e.outcome, Outcome::Ok(Output::WriteOk { .. })))
        })
        .expect("some key was written");
    let end = ns();
    let stale = planted.invoke(99, Op::Read { key: written.to_string() }, end + 1);
    planted.complete(stale, end + 2, Outcome::Ok(Output::ReadOk(Some((b"0".to_vec(), 0)))));
    let caught =
        linearizability::check(planted.events(), &initial).expect_err("a planted stale read is caught");
    assert_eq!(caught.key(), Some(*written));
}

#[test]
fn a_member_whose_myid_is_not_listed_or_a_two_server_ensemble_refuses_to_start_saying_why() {
    let pki = TestPki::new("ensemble");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, data) = sluice_tests::keeper_config(&pki, dir.path(), "k", 4, 0, TICK_MS, "");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("myid"), "4\n").expect("myid");
    let start = |servers: &str| {
        let (config, _) = sluice_tests::keeper_config(&pki, dir.path(), "k", 4, 0, TICK_MS, servers);
        let out = std::process::Command::new(sluice_tests::sluice_bin())
            .args(["keeper", "start"])
            .arg(&config)
            .output()
            .expect("run keeper start");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = start("server.1=127.0.0.1:1\nserver.2=127.0.0.1:2\nserver.3=127.0.0.1:3\n");
    assert!(!ok);
    assert!(err.contains("says this is server 4, but there is no server.4 line (servers: 1, 2, 3)"), "{err}");
    let (ok, err) = start("server.4=127.0.0.1:4\nserver.5=127.0.0.1:5\n");
    assert!(!ok);
    assert!(err.contains("ensemble.allowTwoServers=true"), "{err}");
    // A standalone keeper's data is not silently left behind by a member, nor the reverse.
    std::fs::write(data.join("log.0000000000000001"), b"").expect("a standalone log");
    let (ok, err) = start("server.4=127.0.0.1:4\n");
    assert!(!ok);
    assert!(err.contains("holds a standalone keeper's transaction log"), "{err}");
    std::fs::remove_file(data.join("log.0000000000000001")).expect("rm");
    std::fs::create_dir_all(data.join("raft")).expect("raft dir");
    let (ok, err) = start("");
    assert!(!ok);
    assert!(err.contains("holds an ensemble member's data (raft/)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_expires_a_silent_session_held_on_a_follower_and_its_ephemeral_goes_everywhere() {
    let (pki, _dir, ens, _, leader) = up(3).await;
    let (f, g) = (others(3, leader)[0], others(3, leader)[1]);
    let short = KeeperClientOptions { session_timeout: Duration::from_millis(1000), ..Default::default() };
    let (dying, _) =
        KeeperClient::connect(&ens.members[f].addr, &pki.client("app"), short).await.expect("connect");
    dying.create("/gone", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    let opts =
        KeeperClientOptions { session_timeout: Duration::from_millis(SESSION_MS), ..Default::default() };
    let (watcher, mut events) =
        KeeperClient::connect(&ens.members[g].addr, &pki.client("app"), opts).await.expect("connect");
    assert!(watcher.exists("/gone", true).await.expect("exists").is_some());
    // The client dies without closing: no more pings reach its follower, so no more
    // touches reach the leader, which expires the session and deletes its ephemeral.
    let silent_from = Instant::now();
    drop(dying);
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("an event in time");
    let took = silent_from.elapsed();
    assert_eq!(
        event,
        Some(sluice_client::keeper::KeeperEvent::Watch {
            event: sluice_keeper_core::EventType::NodeDeleted,
            path: "/gone".into()
        })
    );
    eprintln!("silent session expired and its ephemeral deleted after {} ms", took.as_millis());
    assert!(took >= Duration::from_millis(800), "expired before its 1 s timeout: {took:?}");
    assert_eq!(watcher.exists("/gone", false).await.expect("exists"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_what_the_client_has_seen_refuses_it_so_the_client_never_goes_back_in_time() {
    let (pki, _dir, mut ens, _, leader) = up(3).await;
    let (b, stale) = (others(3, leader)[0], others(3, leader)[1]);
    let c = client(&pki, &ens.connect_string()).await;
    c.create("/x", b"0", P).await.expect("create");
    // One member misses the next writes; the client sees them.
    ens.members[stale].kill();
    for i in 1..=20 {
        c.set_data("/x", i.to_string().as_bytes(), -1).await.expect("write with 2 of 3");
    }
    assert_eq!(c.get_data("/x", false).await.expect("read").0, b"20");
    // Only the stale member is up now: it has not applied what the client has seen, so it
    // refuses the client rather than answer from the past.
    ens.members[leader].kill();
    ens.members[b].kill();
    ens.members[stale].restart();
    match c.get_data("/x", false).await {
        Err(KeeperClientError::ConnectionLoss(why)) => {
            assert!(why.contains("this server is behind the client"), "{why}")
        }
        other => panic!("a stale member answered a client that has seen newer: {other:?}"),
    }
    // With a member that has the writes back, the stale one catches up and both serve.
    ens.members[b].restart();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            matches!(c.get_data("/x", false).await, Ok((d, _)) if d == b"20")
        })
        .await,
        "the client reads its last write again"
    );
}

/// Runs `op` until it is done, for up to 20 s: a keeper error that says an earlier attempt
/// was applied (NodeExists, NoNode) counts as done.
async fn settle<F, Fut>(what: &str, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), KeeperClientError>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match op().await {
            Ok(()) => return,
            Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. } | KeeperError::NoNode { .. })) => {
                return
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "{what}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_cache_catches_up_on_what_changed_while_its_server_was_dying() {
    use sluice_client::keeper::{CacheEvent, TreeCache};
    let (pki, _dir, mut ens, _, leader) = up(3).await;
    let writer = client(&pki, &hosts(&ens, &others(3, leader))).await;
    writer.create("/tree", b"", P).await.expect("create /tree");
    writer.create("/tree/a", b"1", P).await.expect("create /tree/a");
    // The cache's client lands on the leader, which then dies.
    let mut order = vec![leader];
    order.extend(others(3, leader));
    let opts =
        KeeperClientOptions { session_timeout: Duration::from_millis(SESSION_MS), ..Default::default() };
    let (c, events) =
        KeeperClient::connect(&hosts(&ens, &order), &pki.client("cache"), opts).await.expect("connect");
    let (cache, mut changes) = TreeCache::start(c, events, "/tree").await.expect("cache");
    assert_eq!(cache.get("/tree/a").map(|n| n.data), Some(b"1".to_vec()));
    assert_eq!(cache.children("/tree"), ["a"]);
    ens.members[leader].kill();
    // Changes while the cache's watch is on a dead server: what it would have heard is lost;
    // the resumed session reads the tree again.
    // (Each write is retried while the survivors elect a leader; a retry that finds its
    // own earlier attempt applied, NodeExists or NoNode, is done.)
    settle("set /tree/a", || async { writer.set_data("/tree/a", b"2", -1).await.map(|_| ()) }).await;
    settle("create /tree/b", || async { writer.create("/tree/b", b"x", P).await.map(|_| ()) }).await;
    settle("create /tree/b/deep", || async { writer.create("/tree/b/deep", b"y", P).await.map(|_| ()) })
        .await;
    settle("create /tree/gone", || async { writer.create("/tree/gone", b"", P).await.map(|_| ()) }).await;
    settle("delete /tree/gone", || async { writer.delete("/tree/gone", -1).await }).await;
    let want: Vec<(String, Vec<u8>)> =
        [("/tree", ""), ("/tree/a", "2"), ("/tree/b", "x"), ("/tree/b/deep", "y")]
            .iter()
            .map(|(p, d)| (p.to_string(), d.as_bytes().to_vec()))
            .collect();
    let now = || cache.snapshot().into_iter().map(|(p, n)| (p, n.data)).collect::<Vec<_>>();
    let caught_up = wait_for(Duration::from_secs(20), || {
        let same = now() == want;
        async move { same }
    })
    .await;
    assert!(caught_up, "the cache holds {:?}, the keeper {want:?}", now());
    let mut synced = 0;
    while let Ok(event) = changes.try_recv() {
        synced += usize::from(event == CacheEvent::Synced);
    }
    assert!(synced >= 2, "a whole read at start and another once the session resumed ({synced})");
    // And it goes on following: a change after the failover arrives by the watch.
    writer.set_data("/tree/b", b"z", -1).await.expect("set /tree/b");
    let followed = wait_for(Duration::from_secs(10), || {
        let got = cache.get("/tree/b").map(|n| n.data) == Some(b"z".to_vec());
        async move { got }
    })
    .await;
    assert!(followed, "the change after the failover: {:?}", now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_barrier_passes_while_a_members_server_dies() {
    use sluice_client::keeper::DoubleBarrier;
    let (pki, _dir, mut ens, _, leader) = up(3).await;
    let opts =
        KeeperClientOptions { session_timeout: Duration::from_millis(SESSION_MS), ..Default::default() };
    // The first member's client lands on the leader; it arrives and waits for the second.
    let mut order = vec![leader];
    order.extend(others(3, leader));
    let (a, a_events) = KeeperClient::connect(&hosts(&ens, &order), &pki.client("member-a"), opts.clone())
        .await
        .expect("connect");
    let (b, b_events) =
        KeeperClient::connect(&hosts(&ens, &others(3, leader)), &pki.client("member-b"), opts)
            .await
            .expect("connect");
    let first = tokio::spawn(async move {
        let mut barrier = DoubleBarrier::new(a, a_events, "/barriers/b", 2);
        let entered = barrier.enter(Duration::from_secs(30)).await;
        (barrier, entered)
    });
    assert!(
        wait_for(Duration::from_secs(10), || async {
            b.children("/barriers/b", false).await.is_ok_and(|c| c.len() == 1)
        })
        .await,
        "the first member arrived"
    );
    // Its server dies; the second member arrives meanwhile, during the ensemble's election.
    ens.members[leader].kill();
    let mut second = DoubleBarrier::new(b, b_events, "/barriers/b", 2);
    assert!(second.enter(Duration::from_secs(30)).await.expect("second enters"), "the second member entered");
    let (mut first, entered) = first.await.expect("first member");
    assert!(entered.expect("first enters"), "the first member entered, its session resumed elsewhere");
    // And both leave together.
    let leaving = tokio::spawn(async move { first.leave(Duration::from_secs(30)).await });
    assert!(second.leave(Duration::from_secs(30)).await.expect("second leaves"));
    assert!(leaving.await.expect("first member").expect("first leaves"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_stays_held_while_its_holders_server_dies_and_goes_to_the_next_on_release() {
    use sluice_client::keeper::Lock;
    let (pki, _dir, mut ens, _, leader) = up(3).await;
    let opts =
        KeeperClientOptions { session_timeout: Duration::from_millis(SESSION_MS), ..Default::default() };
    // The holder's client lands on the leader, which dies while it holds the lock.
    let mut order = vec![leader];
    order.extend(others(3, leader));
    let (h, h_events) = KeeperClient::connect(&hosts(&ens, &order), &pki.client("holder"), opts.clone())
        .await
        .expect("connect");
    let mut holder = Lock::new(h, h_events, "/locks/l");
    assert!(holder.acquire(Duration::from_secs(10)).await.expect("acquire"), "the lock is free");
    let (c, c_events) =
        KeeperClient::connect(&hosts(&ens, &others(3, leader)), &pki.client("contender"), opts)
            .await
            .expect("connect");
    let mut contender = Lock::new(c, c_events, "/locks/l");
    ens.members[leader].kill();
    // For two session timeouts the contender waits: the holder's session (and its node) live
    // on through another member.
    let got = contender.acquire(Duration::from_millis(2 * SESSION_MS)).await.expect("contend");
    assert!(!got, "the contender took a lock its holder still holds");
    assert!(holder.is_held());
    // Released: the contender, asking again, has it at once.
    holder.release().await.expect("release");
    assert!(contender.acquire(Duration::from_secs(10)).await.expect("contend again"), "freed by the release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_disk_fills_stops_saying_why_and_catches_up_once_it_has_room_again() {
    let (pki, _dir, mut ens, _tls, leader) = up(3).await;
    // A follower's dataDir on a 3 MB filesystem, with what it already held.
    let f = others(3, leader)[0];
    ens.members[f].kill();
    let disk = Tmpfs::take_over(&ens.members[f].data_dir, "3m");
    ens.members[f].restart();
    // 100 KB writes through the two others until the follower's log has filled its disk.
    let c = client(&pki, &hosts(&ens, &others(3, f))).await;
    c.create("/big", b"", P).await.expect("create /big");
    let value = |i: u64| {
        let mut v = format!("{i}:").into_bytes();
        v.resize(100_000, b'x');
        v
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = 0u64;
    let status = loop {
        last += 1;
        c.set_data("/big", &value(last), -1).await.expect("the two others keep acknowledging writes");
        if let Some(status) = ens.members[f].exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "member {} did not stop as its 3 MB disk filled", f + 1);
    };
    assert!(!status.success(), "a member that cannot write its log exits with an error: {status}");
    let log = std::fs::read_to_string(&ens.members[f].log).expect("log");
    assert!(
        log.contains("the raft log cannot be written") && log.contains("No space left on device"),
        "the member says what failed and where: {}",
        ens.members[f].log.display()
    );
    assert!(log.contains("start this server again"), "and the fix");
    // The ensemble goes on without it.
    for _ in 0..5 {
        last += 1;
        c.set_data("/big", &value(last), -1).await.expect("writes on the two others");
    }
    // Room again: restarted, it recovers what its log held and catches up.
    disk.resize("64m");
    ens.members[f].restart();
    let alone = client(&pki, &ens.members[f].addr).await;
    let want = format!("{last}:").into_bytes();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            alone.get_data("/big", false).await.is_ok_and(|(d, _)| d.starts_with(&want))
        })
        .await,
        "member {} caught up to write {last} after its restart",
        f + 1
    );
}
