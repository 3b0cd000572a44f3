//! The keeper as a user runs it: a real `sluice keeper start` process, real QUIC + mTLS,
//! real files, SIGKILL for faults. Reference: ZooKeeper Programmer's Guide (data model,
//! sessions, watches, consistency guarantees).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_client::keeper::{
    KeeperClient, KeeperClientError, KeeperClientOptions, KeeperEvent, KeeperEvents,
};
use sluice_keeper_core::{CreateMode, ErrorCode, EventType, KeeperError, Op, OpResult, WatchKind};
use sluice_tests::{http_get, sluice_bin, tls_args, wait_for, KeeperProcess, TestPki, Tmpfs};

const P: CreateMode = CreateMode::Persistent;

struct Setup {
    pki: TestPki,
    dir: tempfile::TempDir,
    keeper: KeeperProcess,
}

fn setup(tick_ms: u32) -> Setup {
    let pki = TestPki::new("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let keeper = KeeperProcess::start(&pki, dir.path(), tick_ms);
    Setup { pki, dir, keeper }
}

async fn client(s: &Setup, connect: &str, timeout_ms: u64) -> (KeeperClient, KeeperEvents) {
    client_to(&s.pki, connect, timeout_ms).await
}

async fn client_to(pki: &TestPki, connect: &str, timeout_ms: u64) -> (KeeperClient, KeeperEvents) {
    let opts =
        KeeperClientOptions { session_timeout: Duration::from_millis(timeout_ms), ..Default::default() };
    KeeperClient::connect(connect, &pki.client("app"), opts).await.expect("connect")
}

fn code(r: Result<impl std::fmt::Debug, KeeperClientError>) -> ErrorCode {
    match r {
        Err(KeeperClientError::Keeper(e)) => e.code(),
        other => panic!("expected a keeper error, got {other:?}"),
    }
}

/// An interactive `sluice keeper-shell` process reading commands from a pipe.
fn shell(s: &Setup, timeout_ms: u32, stdout: Stdio, stderr: Stdio) -> std::process::Child {
    let files = s.pki.issue(sluice_certs::CertSpec::new("shell", sluice_certs::Role::Client));
    Command::new(sluice_bin())
        .args(["keeper-shell", &s.keeper.addr, "--session-timeout-ms", &timeout_ms.to_string()])
        .args(tls_args(&files))
        .env("RUST_LOG", "sluice_client=debug,sluice_net=debug")
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start keeper-shell")
}

/// Asserts that the next event, within 5 s, is `event` on `path`.
async fn expect_event(events: &mut KeeperEvents, event: EventType, path: &str) {
    let got = next_event(events, Duration::from_secs(5)).await;
    assert_eq!(got, Some(KeeperEvent::Watch { event, path: path.into() }), "expected {event:?} on {path}");
}

async fn next_event(events: &mut KeeperEvents, within: Duration) -> Option<KeeperEvent> {
    tokio::time::timeout(within, events.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_sequential_numbering_and_atomic_multi_over_the_wire() {
    let s = setup(500);
    let (c, _ev) = client(&s, &s.keeper.addr, 5000).await;
    c.create("/a", b"1", P).await.expect("create /a");
    c.create("/a/b", b"", P).await.expect("create /a/b");
    c.create("/eph", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    assert_eq!(code(c.get_data("/nope", false).await), ErrorCode::NoNode);
    assert_eq!(code(c.create("/a", b"", P).await), ErrorCode::NodeExists);
    assert_eq!(code(c.delete("/a", -1).await), ErrorCode::NotEmpty);
    assert_eq!(code(c.set_data("/a", b"x", 7).await), ErrorCode::BadVersion);
    assert_eq!(code(c.create("/eph/kid", b"", P).await), ErrorCode::NoChildrenForEphemerals);
    assert_eq!(code(c.create("/bad//path", b"", P).await), ErrorCode::BadArguments);
    assert_eq!(code(c.create("/big", &vec![0u8; 1024 * 1024 + 1], P).await), ErrorCode::BadArguments);

    // --- sequential names count up with 10 digits
    c.create("/q", b"", P).await.expect("create /q");
    for i in 0..3 {
        let p = c.create("/q/job-", b"", CreateMode::PersistentSequential).await.expect("sequential");
        assert_eq!(p, format!("/q/job-{i:010}"));
    }

    // --- multi: all or nothing, and the error says which op failed
    let err = c
        .multi(vec![
            Op::Create { path: "/m1".into(), data: vec![], mode: P },
            Op::SetData { path: "/a".into(), data: b"2".to_vec(), version: 0 },
            Op::Delete { path: "/missing".into(), version: -1 },
        ])
        .await
        .expect_err("third op fails");
    match err {
        KeeperClientError::Keeper(KeeperError::MultiFailed { index: 2, error }) => {
            assert_eq!(error.code(), ErrorCode::NoNode)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.exists("/m1", false).await.expect("exists"), None, "the first op was rolled back");
    assert_eq!(c.get_data("/a", false).await.expect("get").0, b"1", "the second too");
    let ok = c
        .multi(vec![
            Op::Create { path: "/m1".into(), data: vec![], mode: P },
            Op::Check { path: "/m1".into(), version: 0 },
        ])
        .await
        .expect("multi");
    assert!(matches!(&ok[0], OpResult::Created { path, .. } if path == "/m1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_fire_once_and_arrive_before_the_read_that_sees_the_change() {
    let s = setup(500);
    let (a, mut events) = client(&s, &s.keeper.addr, 5000).await;
    let (b, _) = client(&s, &s.keeper.addr, 5000).await;
    let quiet = Duration::from_millis(300);

    // --- data watch: fires on set, once
    b.create("/w", b"0", P).await.expect("create");
    a.get_data("/w", true).await.expect("get+watch");
    b.set_data("/w", b"1", -1).await.expect("set");
    expect_event(&mut events, EventType::NodeDataChanged, "/w").await;
    b.set_data("/w", b"2", -1).await.expect("set again");
    assert_eq!(next_event(&mut events, quiet).await, None, "one-shot: no second event");

    // --- child watch: a child's creation and deletion
    b.create("/p", b"", P).await.expect("create /p");
    a.children("/p", true).await.expect("children+watch");
    b.create("/p/c", b"", P).await.expect("create child");
    expect_event(&mut events, EventType::NodeChildrenChanged, "/p").await;
    a.children("/p", true).await.expect("children+watch");
    b.delete("/p/c", -1).await.expect("delete child");
    expect_event(&mut events, EventType::NodeChildrenChanged, "/p").await;

    // --- exists watch on a missing node fires on its creation; data watch on deletion
    assert_eq!(a.exists("/later", true).await.expect("exists+watch"), None);
    b.create("/later", b"", P).await.expect("create");
    expect_event(&mut events, EventType::NodeCreated, "/later").await;
    a.exists("/later", true).await.expect("exists+watch");
    b.delete("/later", -1).await.expect("delete");
    expect_event(&mut events, EventType::NodeDeleted, "/later").await;

    // --- the event is there before the read that sees the change (no waiting on events)
    for round in 0..20u32 {
        let value = format!("v{round}");
        a.get_data("/w", true).await.expect("watch");
        b.set_data("/w", value.as_bytes(), -1).await.expect("set");
        loop {
            let (data, _) = a.get_data("/w", false).await.expect("read");
            if data == value.as_bytes() {
                assert_eq!(
                    events.try_recv(),
                    Some(KeeperEvent::Watch { event: EventType::NodeDataChanged, path: "/w".into() }),
                    "round {round}: a read saw the change before its watch event arrived"
                );
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_process_loses_its_ephemerals_after_its_timeout_and_watchers_hear_it() {
    let s = setup(500);
    let (observer, mut events) = client(&s, &s.keeper.addr, 5000).await;
    let mut shell = shell(&s, 2000, Stdio::null(), Stdio::null());
    shell.stdin.as_mut().expect("stdin").write_all(b"create -e /eph held\n").expect("write command");
    assert!(
        wait_for(Duration::from_secs(10), || async {
            observer.exists("/eph", false).await.ok().flatten().is_some()
        })
        .await,
        "the shell created its ephemeral"
    );
    observer.exists("/eph", true).await.expect("watch");
    let killed = Instant::now();
    shell.kill().expect("SIGKILL the client");
    let _ = shell.wait();
    let ev = next_event(&mut events, Duration::from_secs(15)).await;
    assert_eq!(ev, Some(KeeperEvent::Watch { event: EventType::NodeDeleted, path: "/eph".into() }));
    let after = killed.elapsed();
    assert!(after >= Duration::from_millis(1500), "deleted after {after:?}: too early for a 2 s session");
    assert_eq!(observer.exists("/eph", false).await.expect("exists"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_within_the_timeout_keeps_the_session_and_its_ephemerals() {
    let mut s = setup(500);
    let (c, _ev) = client(&s, &s.keeper.addr, 8000).await;
    c.create("/mine", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    let session = c.session_id();
    s.keeper.kill();
    s.keeper.restart();
    // The next request reconnects and resumes the same session.
    let seen = c.exists("/mine", false).await;
    let seen = match seen {
        Ok(v) => v,
        Err(_) => c.exists("/mine", false).await.expect("second try after reconnect"),
    };
    assert!(seen.is_some(), "the ephemeral survived the restart");
    assert_eq!(c.session_id(), session, "same session");
    assert_eq!(seen.map(|st| st.ephemeral_owner as u64), Some(session));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sessions_client_is_told_session_expired() {
    let s = setup(500);
    let mut shell = shell(&s, 1000, Stdio::piped(), Stdio::piped());
    let pid = shell.id().to_string();
    shell.stdin.as_mut().expect("stdin").write_all(b"create -e /short x\n").expect("write");
    let (observer, _ev) = client(&s, &s.keeper.addr, 5000).await;
    assert!(
        wait_for(Duration::from_secs(10), || async {
            observer.exists("/short", false).await.ok().flatten().is_some()
        })
        .await
    );
    // Freeze the client past its timeout: the server expires the session.
    assert!(Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    assert!(
        wait_for(Duration::from_secs(15), || async {
            observer.exists("/short", false).await.ok().flatten().is_none()
        })
        .await,
        "the frozen client's session expired"
    );
    assert!(Command::new("kill").args(["-CONT", &pid]).status().expect("kill").success());
    let mut stdin = shell.stdin.take().expect("stdin");
    stdin.write_all(b"get /\n").expect("write");
    drop(stdin);
    let out = shell.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("has expired"), "the client was told its session expired:\n{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_write_load_loses_no_acknowledged_write_and_half_applies_nothing() {
    let mut s = setup(500);
    let (c, _ev) = client(&s, &s.keeper.addr, 5000).await;
    c.create("/d", b"", P).await.expect("create /d");
    let writer = c.clone();
    let load = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..100_000u32 {
            let ops = vec![
                Op::Create { path: format!("/d/a{i}"), data: vec![1; 100], mode: P },
                Op::Create { path: format!("/d/b{i}"), data: vec![2; 100], mode: P },
            ];
            match writer.multi(ops).await {
                Ok(_) => acked.push(i),
                Err(_) => break,
            }
        }
        acked
    });
    // Let a few hundred writes be acknowledged, then SIGKILL the server mid-load.
    assert!(
        wait_for(Duration::from_secs(30), || async {
            c.exists("/d", false).await.ok().flatten().is_some_and(|st| st.num_children >= 400)
        })
        .await
    );
    s.keeper.kill();
    let acked = load.await.expect("load task");
    assert!(acked.len() >= 200, "{} writes acknowledged before the kill", acked.len());
    s.keeper.restart();
    let (check, _ev) = client(&s, &s.keeper.addr, 5000).await;
    let children = check.children("/d", false).await.expect("children");
    for i in &acked {
        assert!(
            children.contains(&format!("a{i}")) && children.contains(&format!("b{i}")),
            "acknowledged write {i} lost"
        );
    }
    let last = acked.last().copied().unwrap_or(0);
    for i in 0..=last + 1 {
        let (a, b) = (children.contains(&format!("a{i}")), children.contains(&format!("b{i}")));
        assert_eq!(a, b, "multi {i} half-applied");
    }
    assert!(children.len() <= (acked.len() + 1) * 2, "nothing beyond the one in-flight write appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_written_while_serving_and_a_restart_recovers_from_them() {
    let mut s = setup(500);
    let config = std::fs::read_to_string(&s.keeper.config).expect("config");
    std::fs::write(&s.keeper.config, config.replace("snapCount=1000", "snapCount=50")).expect("config");
    s.keeper.restart();
    let (c, _ev) = client(&s, &s.keeper.addr, 5000).await;
    for i in 0..300 {
        c.create(&format!("/n{i}"), format!("{i}").as_bytes(), P).await.expect("create");
    }
    let snapshots = || {
        std::fs::read_dir(&s.keeper.data_dir)
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("snapshot.")).count())
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(10), || async { snapshots() >= 3 }).await,
        "snapshots every 50 transactions: {} after 300 creates",
        snapshots()
    );
    // Reads went on meanwhile; the server restarts from its newest snapshot plus the log.
    s.keeper.kill();
    s.keeper.restart();
    let (check, _ev) = client(&s, &s.keeper.addr, 5000).await;
    assert_eq!(check.children("/", false).await.expect("ls").len(), 300);
    assert_eq!(check.get_data("/n299", false).await.expect("get").0, b"299");
    let log = std::fs::read_to_string(&s.keeper.log).expect("keeper log");
    let replayed: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("recovered"))
        .filter_map(|l| l.split("replayed=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    let last = replayed.last().copied().unwrap_or(u64::MAX);
    assert!(last < 100, "recovery replayed {last} transactions: it did not start from a snapshot\n{log}");
}

/// A standalone keeper whose `dataDir` fills refuses writes, saying why and what to do, and
/// keeps serving reads. Once the disk has room again, writes resume without a restart.
/// Nothing it acknowledged is lost, and nothing it refused shows up. A restart afterwards
/// recovers every acknowledged write: a refused write leaves no torn record behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_dir_refuses_writes_keeps_serving_reads_and_resumes_when_room_returns() {
    let mut s = setup(500);
    s.keeper.kill();
    let disk = Tmpfs::take_over(&s.keeper.data_dir, "2m");
    s.keeper.restart();
    let (c, _ev) = client(&s, &s.keeper.addr, 10_000).await;
    let value = |i: usize| {
        let mut v = format!("{i}:").into_bytes();
        v.resize(100_000, b'x');
        v
    };
    // 100 KB nodes until the disk is full.
    let mut acked = Vec::new();
    let refusal = loop {
        let i = acked.len();
        match c.create(&format!("/n{i}"), &value(i), P).await {
            Ok(_) => acked.push(i),
            Err(e) => break e,
        }
        assert!(i < 100, "a 2 MB disk took 100 writes of 100 KB");
    };
    let text = refusal.to_string();
    assert!(
        text.contains("No space left on device") && text.contains("free space in dataDir"),
        "the refusal says what failed and the fix: {text}"
    );
    // Reads go on; what was acknowledged is there. Still full: refused again.
    for &i in &acked {
        assert_eq!(c.get_data(&format!("/n{i}"), false).await.expect("read").0, value(i));
    }
    assert!(c.create("/refused", &value(999), P).await.is_err(), "the disk is still full");
    // Room again: writes resume on the same session, no restart.
    disk.resize("64m");
    let resumed =
        wait_for(Duration::from_secs(10), || async { c.create("/after", b"room", P).await.is_ok() }).await;
    assert!(resumed, "writes did not resume once the disk had room");
    let log = std::fs::read_to_string(&s.keeper.log).expect("keeper log");
    assert!(log.contains("writes refused: the transaction log has no room"), "the keeper says why: {log}");
    // A restart recovers exactly what was acknowledged.
    s.keeper.kill();
    s.keeper.restart();
    let (check, _ev) = client(&s, &s.keeper.addr, 10_000).await;
    for &i in &acked {
        assert_eq!(check.get_data(&format!("/n{i}"), false).await.expect("recovered").0, value(i));
    }
    assert_eq!(check.get_data("/after", false).await.expect("recovered").0, b"room");
    assert!(check.exists("/refused", false).await.expect("exists").is_none(), "a refused write came back");
    println!("{} writes of 100 KB filled 2 MB; refused, then resumed once the disk had room", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroots_see_separate_trees() {
    let s = setup(500);
    let (a, _) = client(&s, &format!("{}/cluster-a", s.keeper.addr), 5000).await;
    let (b, _) = client(&s, &format!("{}/cluster-b", s.keeper.addr), 5000).await;
    let (root, _) = client(&s, &s.keeper.addr, 5000).await;
    a.ensure_chroot().await.expect("chroot a");
    b.ensure_chroot().await.expect("chroot b");
    assert_eq!(a.create("/brokers", b"A", P).await.expect("create"), "/brokers");
    b.create("/brokers", b"B", P).await.expect("create in b");
    assert_eq!(a.get_data("/brokers", false).await.expect("get").0, b"A");
    assert_eq!(b.get_data("/brokers", false).await.expect("get").0, b"B");
    assert_eq!(a.children("/", false).await.expect("ls"), vec!["brokers"]);
    assert_eq!(root.children("/", false).await.expect("ls"), vec!["cluster-a", "cluster-b"]);
    assert_eq!(root.get_data("/cluster-b/brokers", false).await.expect("get").0, b"B");
    let _ = &s.dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_recursive_watches_keep_firing() {
    let s = setup(500);
    let (a, mut events) = client(&s, &s.keeper.addr, 5000).await;
    let (b, _) = client(&s, &s.keeper.addr, 5000).await;
    b.create("/cfg", b"0", P).await.expect("create");
    a.add_watch("/cfg", true).await.expect("recursive watch");
    for i in 1..=3 {
        b.set_data("/cfg", format!("{i}").as_bytes(), -1).await.expect("set");
        // Every change, not just the first: the watch is persistent.
        expect_event(&mut events, EventType::NodeDataChanged, "/cfg").await;
    }
    b.create("/cfg/topic", b"", P).await.expect("create below");
    // Recursive watches see descendants (and never NodeChildrenChanged).
    expect_event(&mut events, EventType::NodeCreated, "/cfg/topic").await;
}

/// The next `n` events, within 10 s, as a set (the order between unrelated nodes is free).
async fn events_set(events: &mut KeeperEvents, n: usize) -> std::collections::BTreeSet<(String, String)> {
    let mut got = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_event(events, left).await {
            Some(KeeperEvent::Watch { event, path }) => {
                got.insert((format!("{event:?}"), path));
            }
            // The session moved to the restarted server: news, not a watch.
            Some(KeeperEvent::Resumed) => {}
            other => panic!("after {got:?}: expected more watch events, got {other:?}"),
        }
    }
    got
}

fn expected(list: &[(EventType, &str)]) -> std::collections::BTreeSet<(String, String)> {
    list.iter().map(|(e, p)| (format!("{e:?}"), p.to_string())).collect()
}

/// Retries `op` (a write a restarted server may first answer with ConnectionLoss) until it
/// gives a keeper answer or 10 s pass.
async fn settle<T, F, Fut>(mut op: F) -> Result<T, KeeperClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KeeperClientError>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match op().await {
            Err(KeeperClientError::ConnectionLoss(_)) if Instant::now() < deadline => continue,
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_survive_a_server_restart_and_changes_made_meanwhile_fire() {
    let mut s = setup(500);
    let (a, mut events) = client(&s, &s.keeper.addr, 12_000).await;
    let (b, _) = client(&s, &s.keeper.addr, 12_000).await;
    for p in ["/data", "/changed", "/gone", "/kids", "/tree"] {
        b.create(p, b"0", P).await.expect("create");
    }
    a.get_data("/data", true).await.expect("data watch");
    a.get_data("/changed", true).await.expect("data watch");
    a.exists("/gone", true).await.expect("exists watch on a node");
    a.children("/kids", true).await.expect("child watch");
    assert_eq!(a.exists("/later", true).await.expect("exists watch on no node"), None);
    a.add_watch("/tree", true).await.expect("recursive watch");
    // The restarted server has none of a's watches: they live in memory, per server.
    s.keeper.kill();
    s.keeper.restart();
    // b gets there first (a pings only every 4 s) and changes two watched nodes.
    settle(|| b.set_data("/changed", b"1", -1)).await.expect("set after restart");
    match settle(|| b.delete("/gone", -1)).await {
        Ok(()) | Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {}
        Err(e) => panic!("delete after restart: {e}"),
    }
    // However a comes back (its ping or this sync), it hears both changes, exactly once.
    settle(|| a.sync("/")).await.expect("a reconnects");
    assert_eq!(
        events_set(&mut events, 2).await,
        expected(&[(EventType::NodeDataChanged, "/changed"), (EventType::NodeDeleted, "/gone")])
    );
    // The others were registered again on the new server process.
    b.set_data("/data", b"1", -1).await.expect("set");
    b.create("/kids/k", b"", P).await.expect("create child");
    b.create("/later", b"", P).await.expect("create");
    b.create("/tree/t", b"", P).await.expect("create below");
    assert_eq!(
        events_set(&mut events, 4).await,
        expected(&[
            (EventType::NodeDataChanged, "/data"),
            (EventType::NodeChildrenChanged, "/kids"),
            (EventType::NodeCreated, "/later"),
            (EventType::NodeCreated, "/tree/t"),
        ])
    );
    // One-shot watches that fired are not re-registered by the next reconnect.
    s.keeper.restart();
    settle(|| a.sync("/")).await.expect("a reconnects again");
    settle(|| b.set_data("/data", b"2", -1)).await.expect("set after second restart");
    b.set_data("/tree", b"2", -1).await.expect("set");
    assert_eq!(events_set(&mut events, 1).await, expected(&[(EventType::NodeDataChanged, "/tree")]));
    assert_eq!(next_event(&mut events, Duration::from_millis(500)).await, None, "nothing else fired");
}

/// The value of an unlabelled (or exactly labelled) series in a Prometheus text exposition.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_reports_sessions_znodes_watches_and_latency() {
    let pki = TestPki::new("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "metricsProvider.httpPort=0\nmetricsProvider.httpHost=127.0.0.1\n";
    let keeper = KeeperProcess::start_with(&pki, dir.path(), 100, extra);
    let url = keeper.metrics.clone().expect("the keeper printed its metrics address");
    let (status, before) = scrape(&url).await;
    assert_eq!(status, 200);
    assert_eq!(series(&before, "sluice_keeper_server_state{state=\"standalone\"}"), Some(1.0), "{before}");

    let (a, _ev) = client_to(&pki, &keeper.addr, 5000).await;
    let (b, _ev2) = client_to(&pki, &keeper.addr, 5000).await;
    for i in 0..5 {
        a.create(&format!("/m{i}"), b"", P).await.expect("create");
    }
    b.get_data("/m0", true).await.expect("get + watch");
    b.children("/", true).await.expect("children + watch");
    // Gauges are sampled after applied writes and on the session tick (watches change with reads).
    let text = scrape_until(&url, Duration::from_secs(10), |t| {
        series(t, "sluice_keeper_sessions") == Some(2.0)
            && series(t, "sluice_keeper_znodes") == Some(6.0)
            && series(t, "sluice_keeper_watches") == Some(2.0)
    })
    .await;
    assert!(series(&text, "sluice_keeper_requests_total{type=\"read\"}") >= Some(2.0), "{text}");
    assert!(series(&text, "sluice_keeper_requests_total{type=\"write\"}") >= Some(5.0), "{text}");
    assert!(series(&text, "sluice_keeper_last_zxid") >= Some(7.0), "2 sessions + 5 creates: {text}");
    // Latency histograms: one observation per acknowledged write, one per group commit.
    scrape_until(&url, Duration::from_secs(15), |t| {
        series(t, "sluice_keeper_write_latency_seconds_count") >= Some(5.0)
            && series(t, "sluice_keeper_commit_latency_seconds_count") >= Some(1.0)
    })
    .await;
    let (status, body) = scrape(&url.replace("/metrics", "/nope")).await;
    assert_eq!((status, body.trim()), (404, "not found: metrics are at /metrics"));
}

async fn scrape(url: &str) -> (u16, String) {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || http_get(&url)).await.expect("join").expect("GET")
}

/// Scrapes `url` until `ok` holds of the text (returned), or panics with the last text.
async fn scrape_until(url: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (_, text) = scrape(url).await;
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "the metrics never showed what was expected:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_session_is_answered_in_order_and_reads_see_its_own_earlier_writes() {
    use sluice_client::keeper::proto::{Connect, GetData, KeeperProtocol, Write};
    let s = setup(500);
    let net =
        sluice_net::Client::<KeeperProtocol>::new(&s.pki.client("app"), Default::default()).expect("client");
    let conn = net.connection(&s.keeper.addr).await.expect("connect");
    let channel = conn.open_ordered().await.expect("ordered channel");
    let session = channel.caller();
    session
        .call(Connect { timeout_ms: 5000, resume: None, seen_zxid: 0 })
        .await
        .expect("call")
        .expect("session");
    session
        .call(Write(Op::Create { path: "/x".into(), data: b"-1".to_vec(), mode: P }))
        .await
        .expect("call")
        .expect("create");
    // 300 rounds of "set /x to i; get /x", all sent before the first reply is read.
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    for i in 0..300 {
        let set = Op::SetData { path: "/x".into(), data: i.to_string().into_bytes(), version: -1 };
        sets.push(session.send(Write(set)).await.expect("queue set"));
        gets.push(session.send(GetData { path: "/x".into(), watch: false }).await.expect("queue get"));
    }
    for (i, (set, get)) in sets.into_iter().zip(gets).enumerate() {
        let version = match set.reply().await.expect("set reply").expect("set") {
            OpResult::DataSet { stat } => stat.version,
            other => panic!("set {i}: {other:?}"),
        };
        let got = get.reply().await.expect("get reply").expect("get");
        assert_eq!(
            got.data,
            i.to_string().into_bytes(),
            "round {i}: the read did not see the write before it"
        );
        assert_eq!(got.stat.version, version, "round {i}");
    }
}

#[test]
fn keeper_stop_stops_it_and_a_bad_config_line_is_named() {
    let pki = TestPki::new("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keeper = KeeperProcess::start(&pki, dir.path(), 500);
    let out = Command::new(sluice_bin()).args(["keeper", "stop"]).arg(&keeper.config).output().expect("stop");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));
    assert!(!keeper.data_dir.join("sluice-keeper.pid").exists(), "pid file removed on a clean stop");
    keeper.kill();

    let bad = dir.path().join("bad.properties");
    std::fs::write(&bad, "dataDir=/tmp/x\ntickTime=often\n").expect("write");
    let out = Command::new(sluice_bin()).args(["keeper", "start"]).arg(&bad).output().expect("start");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.properties:2: tickTime=often: must be a whole number"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_perf_test_reports_every_run_and_cleans_up_after_itself() {
    let s = setup(500);
    let files = s.pki.issue(sluice_certs::CertSpec::new("perf", sluice_certs::Role::Client));
    let out = Command::new(sluice_bin())
        .args(["keeper-perf-test", "--connect", &s.keeper.addr, "--clients", "1,3", "--seconds", "0.3"])
        .args(tls_args(&files))
        .output()
        .expect("run keeper-perf-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for op in ["create", "set", "get"] {
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with(op) && l.contains("ops/s")).count(),
            2,
            "{op}: {stdout}"
        );
    }
    let (c, _) = client(&s, &s.keeper.addr, 5000).await;
    assert_eq!(c.children("/", false).await.expect("ls /"), Vec::<String>::new(), "nothing left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_interactive_shell_keeps_its_session_past_the_timeout() {
    let s = setup(500);
    let mut shell = shell(&s, 1000, Stdio::null(), Stdio::null());
    shell.stdin.as_mut().expect("stdin").write_all(b"create -e /idle x\n").expect("write");
    let (observer, _ev) = client(&s, &s.keeper.addr, 5000).await;
    assert!(
        wait_for(Duration::from_secs(10), || async {
            observer.exists("/idle", false).await.ok().flatten().is_some()
        })
        .await
    );
    // The shell now waits for input for three session timeouts; its pings must keep the
    // session (and so the ephemeral) alive all that time.
    let vanished = wait_for(Duration::from_secs(3), || async {
        observer.exists("/idle", false).await.ok().flatten().is_none()
    })
    .await;
    assert!(!vanished, "an idle shell lost its session");
    let _ = shell.kill();
    let _ = shell.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_subtree_sizes_watch_removal_containers_and_ttl_nodes_through_the_sdk_and_shell() {
    let s = {
        let pki = TestPki::new("cluster");
        let dir = tempfile::tempdir().expect("tempdir");
        let keeper =
            KeeperProcess::start_with(&pki, dir.path(), 500, "znode.container.checkIntervalMs=100\n");
        Setup { pki, dir, keeper }
    };
    let (c, mut events) = client(&s, &format!("{}/app", s.keeper.addr), 5000).await;
    c.ensure_chroot().await.expect("chroot");
    c.create("/a", b"", P).await.expect("create");
    c.create("/a/e", b"", CreateMode::Ephemeral).await.expect("ephemeral");
    c.create("/a/p", b"", P).await.expect("create");
    c.create("/a/p/q", b"", P).await.expect("create");
    // --- paths as the client sees them (chroot stripped); sizes of subtrees
    assert_eq!(c.ephemerals("/").await.expect("ephemerals"), vec!["/a/e".to_string()]);
    assert_eq!(c.ephemerals("/a/p").await.expect("ephemerals"), Vec::<String>::new());
    assert_eq!(c.count_descendants("/a").await.expect("count"), 3);
    assert_eq!(code(c.count_descendants("/nope").await), ErrorCode::NoNode);
    // --- a removed watch fires nothing and is not set again after a reconnect
    c.get_data("/a", true).await.expect("watch");
    assert_eq!(code(c.remove_watches("/a", &[WatchKind::Child], false).await), ErrorCode::NoWatcher);
    c.remove_watches("/a", &[WatchKind::Data], true).await.expect("check");
    c.remove_watches("/a", &[WatchKind::Data], false).await.expect("remove");
    c.set_data("/a", b"x", -1).await.expect("set");
    c.get_data("/a/p", true).await.expect("watch");
    c.set_data("/a/p", b"x", -1).await.expect("set");
    expect_event(&mut events, EventType::NodeDataChanged, "/a/p").await;
    // --- a container goes once emptied, a TTL node once idle past its TTL
    c.create("/box", b"", CreateMode::Container).await.expect("container");
    c.create("/box/x", b"", P).await.expect("child");
    c.create("/ttl", b"", CreateMode::PersistentWithTtl { ttl_ms: 200 }).await.expect("ttl");
    assert_eq!(c.exists("/ttl", false).await.expect("exists").map(|s| s.ephemeral_owner), Some(0));
    c.delete("/box/x", -1).await.expect("delete child");
    for gone in ["/box", "/ttl"] {
        let reaped =
            wait_for(Duration::from_secs(10), || async { matches!(c.exists(gone, false).await, Ok(None)) })
                .await;
        assert!(reaped, "{gone} is still there");
    }
    assert!(c.exists("/a", false).await.expect("exists").is_some(), "a plain node stays");
    // --- the shell's commands for the same
    let mut sh = shell(&s, 5000, Stdio::piped(), Stdio::piped());
    let script = b"create -e /sh-e x\ncreate -c /sh-box\ncreate -t 60000 /sh-ttl\ngetEphemerals /\n\
                   getAllChildrenNumber /app\nremovewatches /sh-box -d\n";
    sh.stdin.as_mut().expect("stdin").write_all(script).expect("write");
    drop(sh.stdin.take());
    let out = sh.wait_with_output().expect("shell");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("[/sh-e]\n"), "getEphemerals:\n{stdout}\n{stderr}");
    // /app holds a, a/e (c's ephemeral), a/p and a/p/q.
    assert!(stdout.contains("]\n4\n"), "getAllChildrenNumber /app:\n{stdout}");
    assert!(
        stdout.contains("no data watch") || stderr.contains("no data watch"),
        "removewatches without a watch says so:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shells_watches_print_their_events_as_zkcli_does() {
    let s = setup(500);
    let out_path = s.dir.path().join("shell.out");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut shell = shell(&s, 5000, Stdio::from(out), Stdio::null());
    let (other, _ev) = client(&s, &s.keeper.addr, 5000).await;
    let say = |shell: &mut std::process::Child, line: &str| {
        let stdin = shell.stdin.as_mut().expect("stdin");
        stdin.write_all(format!("{line}\n").as_bytes()).expect("write command");
        stdin.flush().expect("flush");
    };
    let printed = |want: &'static str| {
        let path = out_path.clone();
        async move {
            wait_for(Duration::from_secs(10), || async {
                std::fs::read_to_string(&path).unwrap_or_default().contains(want)
            })
            .await
        }
    };
    say(&mut shell, "create /w one");
    say(&mut shell, "get -s -w /w");
    assert!(printed("dataVersion = 0").await, "get -s prints the stat");
    other.set_data("/w", b"two", -1).await.expect("set by another client");
    assert!(
        printed("WATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/w\n").await,
        "the data watch's event: {}",
        std::fs::read_to_string(&out_path).unwrap_or_default()
    );
    say(&mut shell, "ls -w /w");
    assert!(printed("[]\n").await, "ls -w lists /w (no children yet): the watch is set");
    other.create("/w/kid", b"", P).await.expect("a child");
    assert!(printed("type:NodeChildrenChanged path:/w\n").await, "the child watch's event");
    say(&mut shell, "stat -w /later");
    // The shell runs its commands in order: once the next one printed, the watch is set.
    say(&mut shell, "get /w");
    assert!(printed("two\n").await, "get /w after stat -w");
    other.create("/later", b"", P).await.expect("create /later");
    assert!(
        printed("type:NodeCreated path:/later\n").await,
        "an exists watch on a missing node fires on create"
    );
    say(&mut shell, "addWatch -m PERSISTENT_RECURSIVE /w");
    assert!(
        wait_for(Duration::from_secs(10), || async {
            other.set_data("/w/kid", b"x", -1).await.is_ok()
                && std::fs::read_to_string(&out_path)
                    .unwrap_or_default()
                    .contains("type:NodeDataChanged path:/w/kid\n")
        })
        .await,
        "a recursive persistent watch hears the child's change"
    );
    say(&mut shell, "addWatch -m SOMETIMES /w");
    say(&mut shell, "quit");
    let status = shell.wait().expect("wait for the shell");
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(text.contains("-m SOMETIMES: give PERSISTENT or PERSISTENT_RECURSIVE"), "{text}");
    assert!(!status.success(), "a failed command makes a piped shell's exit status non-zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_recipe_holds_one_contender_at_a_time_and_a_holders_end_frees_it() {
    use sluice_client::keeper::Lock;
    let s = setup(200);
    let contender = |name: &'static str| {
        let pki = &s.pki;
        let addr = s.keeper.addr.clone();
        async move {
            let opts = KeeperClientOptions { session_timeout: Duration::from_secs(4), ..Default::default() };
            let (c, ev) = KeeperClient::connect(&addr, &pki.client(name), opts).await.expect("connect");
            (c.clone(), Lock::new(c, ev, "/recipes/lock"))
        }
    };
    let (a_client, mut a) = contender("lock-a").await;
    let (_b_client, mut b) = contender("lock-b").await;
    assert!(a.acquire(Duration::from_secs(5)).await.expect("a acquires"), "a free lock is taken");
    assert!(a.is_held());
    assert!(!b.acquire(Duration::from_millis(500)).await.expect("b tries"), "held by a");
    assert!(!b.is_held());
    // a's session ends (its process would be gone): its node goes, and b gets the lock.
    a_client.close().await.expect("close a's session");
    let started = std::time::Instant::now();
    assert!(b.acquire(Duration::from_secs(4)).await.expect("b acquires"), "a's end frees the lock");
    assert!(started.elapsed() < Duration::from_secs(4), "within the session timeout");
    b.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_the_read_write_lock_and_a_writer_waits_for_them_and_counters_count_every_add() {
    use sluice_client::keeper::{Counter, Lock};
    let s = setup(200);
    let connect = |name: &'static str| {
        let (pki, addr) = (&s.pki, s.keeper.addr.clone());
        async move {
            let opts = KeeperClientOptions { session_timeout: Duration::from_secs(4), ..Default::default() };
            KeeperClient::connect(&addr, &pki.client(name), opts).await.expect("connect")
        }
    };
    let (c1, e1) = connect("reader-1").await;
    let (c2, e2) = connect("reader-2").await;
    let (c3, e3) = connect("writer").await;
    let mut r1 = Lock::read(c1.clone(), e1, "/recipes/rw");
    let mut r2 = Lock::read(c2.clone(), e2, "/recipes/rw");
    let mut w = Lock::new(c3.clone(), e3, "/recipes/rw");
    assert!(r1.acquire(Duration::from_secs(5)).await.expect("r1"), "a free lock");
    assert!(r2.acquire(Duration::from_secs(5)).await.expect("r2"), "readers share it");
    assert!(!w.acquire(Duration::from_millis(500)).await.expect("w"), "a writer waits for the readers");
    r1.release().await.expect("release r1");
    assert!(!w.acquire(Duration::from_millis(500)).await.expect("w"), "one reader still holds it");
    r2.release().await.expect("release r2");
    assert!(w.acquire(Duration::from_secs(5)).await.expect("w"), "the last reader left");
    assert!(!r1.acquire(Duration::from_millis(500)).await.expect("r1"), "a reader waits for the writer");
    w.release().await.expect("release w");
    assert!(r1.acquire(Duration::from_secs(5)).await.expect("r1"), "the writer left");
    r1.release().await.expect("release r1");

    // Two clients add concurrently: every add counts (versioned sets, retried on conflict).
    let (a, b) = (Counter::new(c1.clone(), "/recipes/counter"), Counter::new(c2.clone(), "/recipes/counter"));
    assert_eq!(a.value().await.expect("value"), 0, "a missing counter is 0");
    let adds = |c: Counter| async move {
        for _ in 0..50 {
            c.add(1).await.expect("add");
        }
    };
    tokio::join!(adds(a.clone()), adds(b.clone()));
    assert_eq!(b.value().await.expect("value"), 100);
    assert_eq!(a.add(-10).await.expect("subtract"), 90);
    let (data, _) = c3.get_data("/recipes/counter", false).await.expect("get");
    assert_eq!(data, b"90", "kazoo's format: the value as decimal text");
}
