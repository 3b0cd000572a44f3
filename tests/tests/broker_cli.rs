//! Kafka's command-line tools, Sluice's way: `sluice topics`, `console-producer`,
//! `console-consumer`, `producer-perf-test` and `consumer-perf-test` run as a user runs them,
//! against real keeper and broker processes.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use sluice_tests::{sluice_bin, tls_args, wait_for, BrokerCluster};

fn tool(cluster: &BrokerCluster, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(sluice_bin())
        .arg(args[0])
        .args(["--bootstrap-server", &cluster.bootstrap()])
        .args(tls_args(&cluster.client_files()))
        .args(&args[1..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_console_tools_and_perf_tests_work_as_kafkas() {
    let cluster = BrokerCluster::start(2, "");
    // --- topics: create, list, describe (Kafka's lines), duplicate refused
    let out = ok(&tool(
        &cluster,
        &[
            "topics",
            "--create",
            "--topic",
            "events",
            "--partitions",
            "3",
            "--config",
            "retention.ms=86400000",
        ],
        None,
    ));
    assert_eq!(out.trim(), "Created topic events.");
    let again = tool(&cluster, &["topics", "--create", "--topic", "events", "--partitions", "3"], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(ok(&tool(&cluster, &["topics", "--list"], None)).trim(), "events");
    let describe = ok(&tool(&cluster, &["topics", "--describe", "--topic", "events"], None));
    let lines: Vec<&str> = describe.lines().collect();
    assert!(
        lines[0].starts_with(
            "Topic: events\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=86400000"
        ),
        "{describe}"
    );
    for p in 0..3 {
        let line = lines.iter().find(|l| l.contains(&format!("\tPartition: {p}\t"))).expect("partition line");
        assert!(line.starts_with("\tTopic: events\tPartition:"), "{line}");
        assert!(
            line.contains("\tLeader: ") && line.contains("\tReplicas: ") && line.contains("\tIsr: "),
            "{line}"
        );
    }
    // --- console-producer with keys, console-consumer printing key, partition and offset
    let out = tool(
        &cluster,
        &[
            "console-producer",
            "--topic",
            "events",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--producer-property",
            "acks=all",
        ],
        Some("user-1:signed up\nuser-2:signed up\nuser-1:paid\n"),
    );
    ok(&out);
    let out = tool(
        &cluster,
        &[
            "console-consumer",
            "--topic",
            "events",
            "--from-beginning",
            "--max-messages",
            "3",
            "--property",
            "print.key=true",
            "--property",
            "print.partition=true",
        ],
        None,
    );
    let consumed = ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Processed a total of 3 messages"));
    let mut got: Vec<&str> = consumed.lines().collect();
    got.sort_unstable();
    let user1: Vec<&&str> = got.iter().filter(|l| l.contains("\tuser-1\t")).collect();
    assert_eq!(user1.len(), 2, "{consumed}");
    let partition_of = |l: &str| l.split('\t').next().map(str::to_string);
    assert_eq!(partition_of(user1[0]), partition_of(user1[1]), "a key stays in one partition: {consumed}");
    assert!(
        consumed.contains("\tuser-1\tsigned up")
            && consumed.contains("\tuser-1\tpaid")
            && consumed.contains("\tuser-2\tsigned up")
    );
    // --- producer-perf-test and consumer-perf-test: Kafka's output lines
    let out = ok(&tool(
        &cluster,
        &[
            "producer-perf-test",
            "--topic",
            "events",
            "--num-records",
            "5000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "acks=1",
        ],
        None,
    ));
    let last = out.lines().last().expect("summary");
    assert!(last.starts_with("5000 records sent, ") && last.contains(" ms 99.9th."), "{out}");
    // The same on one runtime thread (the send loop with the producer).
    let one_thread = [
        "producer-perf-test",
        "--topic",
        "events",
        "--num-records",
        "1000",
        "--record-size",
        "1024",
        "--throughput",
        "-1",
        "--threads",
        "1",
        "--producer-props",
        "acks=1",
    ];
    let out = ok(&tool(&cluster, &one_thread, None));
    let last = out.lines().last().expect("summary");
    assert!(last.starts_with("1000 records sent, ") && last.contains(" ms 99.9th."), "{out}");
    let out = ok(&tool(&cluster, &["consumer-perf-test", "--topic", "events", "--messages", "6003"], None));
    let mut lines = out.lines();
    assert!(lines.next().expect("header").starts_with("start.time, end.time, data.consumed.in.MB"), "{out}");
    let values: Vec<&str> = lines.next().expect("values").split(", ").collect();
    assert_eq!(values[4], "6003", "every record read back: {out}");
    // --- delete, then the topic is gone from --list
    assert_eq!(
        ok(&tool(&cluster, &["topics", "--delete", "--topic", "events"], None)).trim(),
        "Topic events is marked for deletion."
    );
    let gone = wait_for(std::time::Duration::from_secs(15), || async {
        ok(&tool(&cluster, &["topics", "--list"], None)).trim().is_empty()
    })
    .await;
    assert!(gone, "still listed: {}", ok(&tool(&cluster, &["topics", "--list"], None)));
    // --- a missing flag names the fix
    let out = Command::new(sluice_bin())
        .args(["topics", "--list"])
        .env_remove("SLUICE_BOOTSTRAP_SERVER")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--bootstrap-server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
