//! The SDK's examples (`client/examples/`) as a Rust developer runs them: real programs
//! against three real brokers, credentials from the same environment variables the `sluice`
//! tools read.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sluice_tests::{sluice_bin, BrokerCluster};

/// The built example `name` (beside the `sluice` binary).
fn example(name: &str) -> PathBuf {
    let path = sluice_bin().parent().map(|d| d.join("examples").join(name)).unwrap_or_default();
    assert!(
        path.exists(),
        "the example {name} is not built at {}: cargo build -p sluice-client --examples (cargo nextest run \
         --workspace builds them)",
        path.display()
    );
    path
}

/// Runs an example with `env`, bounded to 60 s (killed after).
fn run(name: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let child = Command::new(example(name))
        .args(args)
        .env_remove("SLUICE_BOOTSTRAP_SERVER")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let pid = child.id();
    let (tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match done.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("example output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the example {name} {args:?} did not finish within 60 s");
        }
    }
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_sdk_examples_produce_consume_administer_and_watch_a_real_cluster() {
    let mut cluster = BrokerCluster::start(
        3,
        "offsets.topic.replication.factor=3\noffsets.topic.num.partitions=3\ngroup.initial.rebalance.delay.ms=0\n\
         default.replication.factor=3\nnum.partitions=2\n",
    );
    let files = cluster.client_files();
    let env = [
        ("SLUICE_BOOTSTRAP_SERVER", cluster.bootstrap()),
        ("SLUICE_TLS_CA", files.ca.display().to_string()),
        ("SLUICE_TLS_CERT", files.cert.display().to_string()),
        ("SLUICE_TLS_KEY", files.key.display().to_string()),
    ];
    let needs: [(&str, &[&str]); 2] =
        [("produce", &["--topic", "demo"]), ("consume_group", &["--topic", "demo", "--group", "g"])];
    for (name, args) in needs {
        let (help, _) = text(&run(name, &["--help"], &[]));
        assert!(
            help.contains("--topic") && help.contains("SLUICE_BOOTSTRAP_SERVER"),
            "{name} --help:\n{help}"
        );
        let missing = run(name, args, &[]);
        let (_, err) = text(&missing);
        assert!(
            !missing.status.success() && err.contains("SLUICE_BOOTSTRAP_SERVER"),
            "{name} names what is missing: {err}"
        );
    }

    let produced = run("produce", &["--topic", "demo", "--count", "10"], &env);
    let (out, err) = text(&produced);
    assert!(produced.status.success(), "{out}{err}");
    assert!(out.contains("10 records acknowledged"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("record ") && l.contains(" -> demo-")).count(),
        10,
        "{out}"
    );

    // The group reads the ten, commits and leaves; a second run starts after them.
    let consumed =
        run("consume_group", &["--topic", "demo", "--group", "readers", "--max-records", "10"], &env);
    let (out, err) = text(&consumed);
    assert!(consumed.status.success(), "{out}{err}");
    let first: Vec<&str> = out.lines().filter(|l| l.starts_with("demo-")).collect();
    assert_eq!(first.len(), 10, "{out}");
    for i in 0..10 {
        assert!(first.iter().any(|l| l.ends_with(&format!(": record {i}"))), "record {i} read: {out}");
    }
    assert!(out.contains("processed 10 records; committed and left the group"), "{out}");
    let produced = run("produce", &["--topic", "demo", "--count", "4"], &env);
    assert!(produced.status.success(), "{:?}", text(&produced));
    let again = run("consume_group", &["--topic", "demo", "--group", "readers", "--max-records", "4"], &env);
    let (out, err) = text(&again);
    assert!(again.status.success(), "{out}{err}");
    let second: Vec<&str> = out.lines().filter(|l| l.starts_with("demo-")).collect();
    assert_eq!(second.len(), 4, "only the new records: {out}");
    for line in &second {
        let at = line.split(':').next().unwrap_or_default();
        assert!(
            !first.iter().any(|f| f.starts_with(&format!("{at}:"))),
            "{at} was read by the first run too"
        );
    }

    // The reliable producer rides through a broker's restart (its leaderships move).
    let topic =
        run("admin", &["--topic", "payments", "--partitions", "2", "--replication-factor", "3"], &env);
    assert!(topic.status.success(), "{:?}", text(&topic));
    let bootstrap = cluster.brokers[0].addr.clone();
    let env_one: Vec<(&str, String)> = env
        .iter()
        .map(|(k, v)| if *k == "SLUICE_BOOTSTRAP_SERVER" { (*k, bootstrap.clone()) } else { (*k, v.clone()) })
        .collect();
    let child = std::thread::spawn(move || {
        run("reliable_produce", &["--topic", "payments", "--count", "20000"], &env_one)
    });
    cluster.brokers[1].restart();
    let reliable = child.join().expect("reliable_produce");
    let (out, err) = text(&reliable);
    assert!(reliable.status.success(), "{out}{err}");
    assert!(out.contains("20000 delivered, 0 failed"), "{out}{err}");

    // The admin example: the cluster, a topic created once, its partitions.
    let admin = run("admin", &["--topic", "orders", "--partitions", "2", "--replication-factor", "3"], &env);
    let (out, err) = text(&admin);
    assert!(admin.status.success(), "{out}{err}");
    assert!(out.contains("brokers 1 (") && out.contains("created orders"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("orders-") && l.contains("isr [")).count(), 2, "{out}");
    let again = run("admin", &["--topic", "orders", "--partitions", "2", "--replication-factor", "3"], &env);
    assert!(text(&again).0.contains("orders exists already"), "{:?}", text(&again));

    // The keeper watch example follows /brokers/ids: broker 3 leaves, and it says so.
    let output = cluster.dir.path().join("watch.out");
    let mut watcher = Command::new(example("watch_brokers"))
        .args(["--zookeeper", &cluster.zookeeper_connect(), "--max-changes", "1"])
        .envs(env.iter().skip(1).map(|(k, v)| (*k, v.as_str())))
        .stdout(std::fs::File::create(&output).expect("output file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start watch_brokers");
    let printed = |want: &str| {
        sluice_tests::poll_until(Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&output).unwrap_or_default();
            if text.contains(want) {
                Ok(())
            } else {
                Err(text)
            }
        })
    };
    printed("brokers: [\"1\", \"2\", \"3\"]").expect("the registered brokers");
    assert!(cluster.brokers[2].terminate(Duration::from_secs(30)), "broker 3 stopped");
    printed("NodeChildrenChanged /brokers/ids: brokers now [\"1\", \"2\"]").expect("the change");
    let status = watcher.wait().expect("watch_brokers ends after one change");
    assert!(status.success(), "{status:?}");
}

/// An example running in the background: its stdout lines arrive on a channel; killed when
/// dropped.
struct Background {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    fn start(name: &str, args: &[&str], env: &[(&str, String)]) -> Background {
        use std::io::BufRead;
        let mut child = Command::new(example(name))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // Error lines arrive marked, in the same stream.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx_err.send(format!("stderr: {line}")).is_err() {
                    return;
                }
            }
        });
        Background { child, lines, seen: Vec::new() }
    }

    /// Waits up to 30 s for a line containing `what`; returns it.
    fn expect(&mut self, what: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {what:?} within 30 s; printed: {:?}", self.seen),
            }
        }
    }

    /// Waits (up to 30 s) for the process to end; true on success.
    fn finish(mut self) -> (bool, Vec<String>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.seen.extend(self.lines.try_iter());
                return (status.success(), std::mem::take(&mut self.seen));
            }
            assert!(std::time::Instant::now() < deadline, "still running after 30 s: {:?}", self.seen);
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(line);
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `at ` in `line`.
fn at(line: &str) -> u128 {
    line.rsplit("at ")
        .next()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no time in {line:?}"))
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

#[test]
fn the_keeper_recipe_examples_lock_elect_wait_together_cache_and_count() {
    use sluice_certs::{CertSpec, Role};
    let pki = sluice_tests::TestPki::new("recipes");
    let dir = tempfile::tempdir().expect("tempdir");
    // tickTime 200 ms: sessions of 0.4 s to 4 s.
    let keeper = sluice_tests::KeeperProcess::start(&pki, dir.path(), 200);
    let files = pki.issue(CertSpec::new("recipes-cli", Role::Client));
    let env = [
        ("SLUICE_TLS_CA", files.ca.display().to_string()),
        ("SLUICE_TLS_CERT", files.cert.display().to_string()),
        ("SLUICE_TLS_KEY", files.key.display().to_string()),
    ];
    let zk = keeper.addr.clone();
    let zk = zk.as_str();
    for name in ["keeper_lock", "keeper_election", "keeper_barrier", "keeper_cache", "keeper_counter"] {
        let (help, _) = text(&run(name, &["--help"], &[]));
        assert!(help.contains("--zookeeper") && help.contains("SLUICE_TLS_CA"), "{name} --help:\n{help}");
    }

    // --- the counter: three processes add 20 each at once; none is lost
    let adders: Vec<Background> = (0..3)
        .map(|_| {
            Background::start(
                "keeper_counter",
                &["--zookeeper", zk, "--path", "/counters/c", "--times", "20"],
                &env,
            )
        })
        .collect();
    for a in adders {
        let (ok, out) = a.finish();
        assert!(ok, "{out:?}");
    }
    let total = run("keeper_counter", &["--zookeeper", zk, "--path", "/counters/c", "--times", "0"], &env);
    assert_eq!(text(&total).0.trim(), "/counters/c = 60", "{:?}", text(&total));

    // --- the lock: three holders in turn, never two at once (their logged intervals)
    let holders: Vec<Background> = (0..3)
        .map(|_| {
            Background::start(
                "keeper_lock",
                &["--zookeeper", zk, "--path", "/locks/l", "--hold-ms", "300"],
                &env,
            )
        })
        .collect();
    let mut held = Vec::new();
    for h in holders {
        let (ok, out) = h.finish();
        assert!(ok, "{out:?}");
        let acquired = out.iter().find(|l| l.starts_with("acquired")).expect("acquired");
        let released = out.iter().find(|l| l.starts_with("released")).expect("released");
        held.push((at(acquired), at(released)));
    }
    held.sort_unstable();
    for pair in held.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two holders at once: {held:?}");
    }
    // A holder that dies: its session's end frees the lock within the session timeout.
    let mut dead = Background::start(
        "keeper_lock",
        &["--zookeeper", zk, "--path", "/locks/l", "--hold-ms", "60000", "--session-timeout-ms", "2000"],
        &env,
    );
    dead.expect("acquired");
    let mut next =
        Background::start("keeper_lock", &["--zookeeper", zk, "--path", "/locks/l", "--hold-ms", "10"], &env);
    next.expect("waiting for");
    let killed = now_ms();
    let _ = dead.child.kill();
    let took = at(&next.expect("acquired")) - killed;
    assert!(took < 2000 + 2000, "the lock was freed {took} ms after its holder died (session timeout 2 s)");
    assert!(next.finish().0);

    // --- the election: the first leads alone; the others lead in turn after it resigns
    let mut first = Background::start(
        "keeper_election",
        &["--zookeeper", zk, "--path", "/election/e", "--id", "e1", "--lead-ms", "1000"],
        &env,
    );
    assert!(first.expect("e1 leads").ends_with(r#"contenders: ["e1"]"#));
    let others: Vec<Background> = ["e2", "e3"]
        .iter()
        .map(|id| {
            Background::start(
                "keeper_election",
                &["--zookeeper", zk, "--path", "/election/e", "--id", id, "--lead-ms", "100"],
                &env,
            )
        })
        .collect();
    assert!(first.finish().0);
    for (id, o) in ["e2", "e3"].iter().zip(others) {
        let (ok, out) = o.finish();
        assert!(ok, "{out:?}");
        let leads = out.iter().find(|l| l.contains(" leads; ")).expect("it led");
        assert!(leads.starts_with(&format!(r#"{id} leads; contenders: ["{id}""#)), "{leads}");
    }

    // --- the double barrier: nobody enters before the third member arrives
    let mut members = Vec::new();
    for id in ["b1", "b2"] {
        let mut m = Background::start(
            "keeper_barrier",
            &["--zookeeper", zk, "--path", "/barriers/b", "--members", "3", "--id", id],
            &env,
        );
        m.expect("arrived");
        members.push(m);
    }
    let third_arrives = now_ms();
    members.push(Background::start(
        "keeper_barrier",
        &["--zookeeper", zk, "--path", "/barriers/b", "--members", "3", "--id", "b3"],
        &env,
    ));
    let mut entered = Vec::new();
    let mut left = Vec::new();
    for m in members {
        let (ok, out) = m.finish();
        assert!(ok, "{out:?}");
        entered.push(at(out.iter().find(|l| l.contains(" entered at ")).expect("entered")));
        left.push(at(out.iter().find(|l| l.contains(" left at ")).expect("left")));
    }
    assert!(entered.iter().all(|e| *e >= third_arrives), "entered before the third arrived: {entered:?}");
    let last_entered = entered.iter().max().copied().unwrap_or_default();
    assert!(left.iter().all(|l| *l >= last_entered), "left {left:?} before all entered {entered:?}");

    // --- the tree cache follows creates, changes and deletes under its root
    let mut cache =
        Background::start("keeper_cache", &["--zookeeper", zk, "--path", "/cfg", "--max-events", "4"], &env);
    cache.expect("synced: 0 nodes");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    use sluice_client::keeper::{KeeperClient, KeeperClientOptions};
    use sluice_keeper_core::CreateMode;
    let tls = pki.client("recipes-writer");
    let (k, _events) =
        rt.block_on(KeeperClient::connect(zk, &tls, KeeperClientOptions::default())).expect("connect");
    // Each change, then the cache's line for it (a change made before the cache read the
    // last one may be folded into it: a watch event carries no data).
    rt.block_on(k.create("/cfg", b"", CreateMode::Persistent)).expect("create /cfg");
    assert_eq!(cache.expect("/cfg"), "added /cfg = ");
    rt.block_on(k.create("/cfg/a", b"1", CreateMode::Persistent)).expect("create /cfg/a");
    assert_eq!(cache.expect("/cfg/a"), "added /cfg/a = 1");
    rt.block_on(k.set_data("/cfg/a", b"2", -1)).expect("set /cfg/a");
    assert_eq!(cache.expect("updated"), "updated /cfg/a = 2");
    rt.block_on(k.delete("/cfg/a", -1)).expect("delete /cfg/a");
    assert_eq!(cache.expect("removed"), "removed /cfg/a");
    let (ok, out) = cache.finish();
    assert!(ok, "the example ends after its 4 events: {out:?}");
    // The node cache: one node, created, changed, deleted; its children are not its business.
    let mut node = Background::start(
        "keeper_cache",
        &["--zookeeper", zk, "--path", "/one", "--node", "--max-events", "3"],
        &env,
    );
    node.expect("synced: 0 nodes");
    rt.block_on(k.create("/one", b"a", CreateMode::Persistent)).expect("create /one");
    assert_eq!(node.expect("added"), "added /one = a");
    rt.block_on(k.create("/one/child", b"", CreateMode::Persistent)).expect("create /one/child");
    rt.block_on(k.set_data("/one", b"b", -1)).expect("set /one");
    assert_eq!(node.expect("updated"), "updated /one = b");
    rt.block_on(k.delete("/one/child", -1)).expect("delete /one/child");
    rt.block_on(k.delete("/one", -1)).expect("delete /one");
    assert_eq!(node.expect("removed"), "removed /one");
    let (ok, out) = node.finish();
    assert!(ok && !out.iter().any(|l| l.contains("/one/child")), "{out:?}");

    // --- session expiry: processes frozen past their session timeout are told, on waking,
    // that their session ended; a barrier member's node goes with it
    let mut cache = Background::start(
        "keeper_cache",
        &["--zookeeper", zk, "--path", "/cfg", "--session-timeout-ms", "600"],
        &env,
    );
    cache.expect("synced");
    let mut member = Background::start(
        "keeper_barrier",
        &[
            "--zookeeper",
            zk,
            "--path",
            "/barriers/x",
            "--members",
            "2",
            "--id",
            "x1",
            "--session-timeout-ms",
            "1000",
        ],
        &env,
    );
    member.expect("arrived");
    let members_now = || rt.block_on(k.children("/barriers/x", false)).map(|c| c.len()).unwrap_or(0);
    assert!(sluice_tests::poll_until(Duration::from_secs(10), || if members_now() == 1 {
        Ok(())
    } else {
        Err("no member node".to_string())
    })
    .is_ok());
    for pid in [cache.child.id(), member.child.id()] {
        assert!(Command::new("kill").args(["-STOP", &pid.to_string()]).status().expect("kill").success());
    }
    // The cache's session (600 ms) ends before the member's (1 s), whose node then goes.
    let expired = sluice_tests::poll_until(Duration::from_secs(15), || {
        if members_now() == 0 {
            Ok(())
        } else {
            Err("the frozen member's node is still there".to_string())
        }
    });
    for pid in [cache.child.id(), member.child.id()] {
        assert!(Command::new("kill").args(["-CONT", &pid.to_string()]).status().expect("kill").success());
    }
    expired.expect("the frozen member's session expired");
    let (ok, out) = member.finish();
    assert!(
        !ok && out.iter().any(|l| l.starts_with("stderr:") && l.to_lowercase().contains("expired")),
        "{out:?}"
    );
    let (ok, out) = cache.finish();
    assert!(!ok && out.iter().any(|l| l.contains("the keeper session ended")), "{out:?}");
    // Two live members pass the barrier without the expired one.
    let pair: Vec<Background> = ["x2", "x3"]
        .iter()
        .map(|id| {
            Background::start(
                "keeper_barrier",
                &["--zookeeper", zk, "--path", "/barriers/x", "--members", "2", "--id", id],
                &env,
            )
        })
        .collect();
    for m in pair {
        let (ok, out) = m.finish();
        assert!(ok && out.iter().any(|l| l.contains(" left at ")), "{out:?}");
    }
}
