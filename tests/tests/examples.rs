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
