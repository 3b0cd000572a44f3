//! Power cuts: what a SIGKILL cannot show. The keeper's and the brokers' data sit on a lazy
//! filesystem (`sluice_tests::lazyfs`, a FUSE layer in the manner of Jepsen's LazyFS) that
//! forgets, at a cut, every write that was never synced, or keeps a part of those writes, torn
//! and out of order, as the seed chooses. The processes are SIGKILLed, the power is cut, they
//! restart on what is left; every write they acknowledged as durable must be there.

use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_client::keeper::{KeeperClient, KeeperClientError, KeeperClientOptions};
use sluice_keeper_core::{CreateMode, KeeperError};
use sluice_tests::lazyfs::{Cut, LazyFs};
use sluice_tests::{wait_for, KeeperEnsemble, KeeperProcess, TestPki};

const P: CreateMode = CreateMode::Persistent;

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
async fn write_until_killed(pki: &TestPki, connect: &str, writers: usize, base: u64, count: &AtomicU64) -> Acked {
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
            match tokio::time::timeout(within, c.set_data(&format!("/k{w}"), v.to_string().as_bytes(), -1)).await {
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
        assert!(v >= last, "{what}: /k{w} is {v}, but {last} was acknowledged: an acknowledged write was lost");
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

/// A standalone keeper (snapCount 1000, so snapshots and log rolls happen) whose dataDir is
/// on the lazy filesystem: four writers, SIGKILL mid-write, the power cut, restart. Three
/// rounds, each with its own seeded crash state; every acknowledged write survives them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_keeper_keeps_every_acknowledged_write_through_power_cuts() {
    let pki = TestPki::new("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keeper = KeeperProcess::start(&pki, dir.path(), 500);
    keeper.kill();
    let fs = LazyFs::take_over(&keeper.data_dir);
    keeper.restart();
    let mut all = Acked::default();
    for round in 0..3u64 {
        let count = AtomicU64::new(0);
        let addr = keeper.addr.clone();
        let (acked, ()) = tokio::join!(
            write_until_killed(&pki, &addr, 4, round * 1_000_000, &count),
            kill_after(&count, 1500, || keeper.kill())
        );
        let report = fs.power_cut(Cut::Seeded(round));
        println!("round {round}: {} sets, {} creates acknowledged; cut: {report}", acked.sets.len(), acked.creates.len());
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
    for round in 0..2u64 {
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
