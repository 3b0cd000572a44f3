//! `sluice consumer-groups` (kafka-consumer-groups.sh) and `sluice console-consumer --group`
//! run as a user runs them: real `sluice` processes against a real broker and keeper, a
//! consumer SIGKILLed mid-group, Kafka's tables parsed back.
//!
//! Every wait has a deadline, and every child process is killed when its guard drops, on
//! every path out of a test.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice_client::broker::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
use sluice_tests::{poll_until, sluice_bin, tls_args, BrokerCluster};

/// A single-server offsets topic that is quick to create, and a short initial rebalance
/// delay.
const GROUPS: &str = "offsets.topic.replication.factor=1\noffsets.topic.num.partitions=4\n\
                      group.initial.rebalance.delay.ms=500\n";

/// The longest one tool run may take.
const STEP: Duration = Duration::from_secs(60);

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A running `sluice` process, its output going to files; killed and reaped on drop.
struct Proc {
    child: Option<Child>,
    what: String,
    out: PathBuf,
    err: PathBuf,
}

/// How a finished tool run went.
#[derive(Debug)]
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(&self) -> &str {
        assert!(self.status.success(), "failed ({}):\n{}\n{}", self.status, self.stdout, self.stderr);
        &self.stdout
    }
}

impl Proc {
    /// Starts `sluice ARGS[0] --bootstrap-server ... TLS ARGS[1..]`.
    fn spawn(cluster: &BrokerCluster, args: &[&str]) -> Proc {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let out = cluster.dir.path().join(format!("tool-{n}.out"));
        let err = cluster.dir.path().join(format!("tool-{n}.err"));
        let child = Command::new(sluice_bin())
            .arg(args[0])
            .args(["--bootstrap-server", &cluster.bootstrap()])
            .args(tls_args(&cluster.client_files()))
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("run sluice");
        Proc { child: Some(child), what: args.join(" "), out, err }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for the process to exit; kills it and panics after `within`.
    fn wait(&mut self, within: Duration) -> Ran {
        let child = self.child.as_mut().expect("running");
        match poll_until(within, || child.try_wait().expect("try_wait").ok_or_else(String::new)) {
            Ok(status) => {
                self.child = None;
                Ran { status, stdout: self.stdout(), stderr: self.stderr() }
            }
            Err(_) => {
                self.kill();
                panic!(
                    "`sluice {}` still running after {within:?}:\n{}\n{}",
                    self.what,
                    self.stdout(),
                    self.stderr()
                );
            }
        }
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (a clean stop).
    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(status.success(), "kill -TERM failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a tool to the end (at most [`STEP`]).
fn tool(cluster: &BrokerCluster, args: &[&str]) -> Ran {
    Proc::spawn(cluster, args).wait(STEP)
}

/// [`poll_until`], panicking with `what` and the last failure after `within`.
fn eventually<T>(within: Duration, what: &str, cond: impl FnMut() -> Result<T, String>) -> T {
    poll_until(within, cond).unwrap_or_else(|last| panic!("not within {within:?}: {what}; last:\n{last}"))
}

fn create_topic(cluster: &BrokerCluster, topic: &str, partitions: u32) {
    let out =
        tool(cluster, &["topics", "--create", "--topic", topic, "--partitions", &partitions.to_string()]);
    assert_eq!(out.ok().trim(), format!("Created topic {topic}."));
}

/// Produces `n` records, alternating between partitions 0 and 1, and waits for them.
fn produce(cluster: &BrokerCluster, topic: &str, n: usize) {
    let config = ClientConfig::new(cluster.brokers.iter().map(|b| b.addr.clone()))
        .tls_files(cluster.client_files())
        .request_timeout(Duration::from_secs(20));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let producer = Producer::new(ProducerConfig::new(config)).expect("producer");
        let mut deliveries = Vec::new();
        for i in 0..n {
            let record = ProducerRecord::new(topic, format!("value-{i}")).with_partition((i % 2) as i32);
            deliveries.push(producer.send(record).await.expect("send"));
        }
        for d in deliveries {
            tokio::time::timeout(STEP, d).await.expect("delivered in time").expect("delivered");
        }
        producer.close().await;
    });
}

/// One row of Kafka's `--describe` offsets table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    group: String,
    topic: String,
    partition: i32,
    current: Option<i64>,
    end: Option<i64>,
    lag: Option<i64>,
    consumer: String,
}

/// `consumer-groups --describe --group G`: the run and its rows.
fn describe(cluster: &BrokerCluster, group: &str) -> (Ran, Vec<Row>) {
    let ran = tool(cluster, &["consumer-groups", "--describe", "--group", group]);
    let rows = table_rows(
        &ran.stdout,
        "GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG",
    )
    .into_iter()
    .map(|cols| {
        let num = |s: &str| (s != "-").then(|| s.parse::<i64>().expect("a number or -"));
        Row {
            group: cols[0].clone(),
            topic: cols[1].clone(),
            partition: cols[2].parse().expect("partition"),
            current: num(&cols[3]),
            end: num(&cols[4]),
            lag: num(&cols[5]),
            consumer: cols[6].clone(),
        }
    })
    .collect();
    (ran, rows)
}

/// The rows of a table printed after a blank line and a header starting with `header`.
fn table_rows(stdout: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = stdout.lines();
    let mut rows = Vec::new();
    while let Some(l) = lines.next() {
        if l.starts_with(header) {
            for row in lines.by_ref().take_while(|l| !l.trim().is_empty()) {
                rows.push(row.split_whitespace().map(str::to_string).collect());
            }
        }
    }
    rows
}

fn total(rows: &[Row], field: impl Fn(&Row) -> Option<i64>) -> i64 {
    rows.iter().map(|r| field(r).unwrap_or_else(|| panic!("no value in {r:?}"))).sum()
}

/// Every row's CURRENT-OFFSET + LAG is its LOG-END-OFFSET.
fn assert_consistent(rows: &[Row], stdout: &str) {
    for r in rows {
        let (Some(c), Some(e), Some(l)) = (r.current, r.end, r.lag) else {
            panic!("a - in {r:?}:\n{stdout}")
        };
        assert_eq!(c + l, e, "CURRENT-OFFSET + LAG != LOG-END-OFFSET in {r:?}:\n{stdout}");
    }
}

#[test]
fn a_console_consumers_group_is_described_reset_and_deleted() {
    let cluster = BrokerCluster::start(1, GROUPS);
    create_topic(&cluster, "events", 2);
    produce(&cluster, "events", 100);

    // --- a console consumer in group g prints 40 records, commits them and leaves
    let consumed = tool(
        &cluster,
        &[
            "console-consumer",
            "--topic",
            "events",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            "40",
        ],
    );
    assert_eq!(consumed.ok().lines().count(), 40, "{}", consumed.stdout);
    assert!(consumed.stderr.contains("Processed a total of 40 messages"), "{}", consumed.stderr);

    // --- describe: no active members, 40 committed, 60 to go
    let (ran, rows) = describe(&cluster, "g");
    let out = ran.ok().to_string();
    assert!(ran.stderr.contains("Consumer group 'g' has no active members."), "{}", ran.stderr);
    assert!(
        out.starts_with("\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  "),
        "{out}"
    );
    assert!(
        out.lines().nth(1).is_some_and(|h| h.ends_with("CONSUMER-ID     HOST            CLIENT-ID")),
        "{out}"
    );
    let partitions: Vec<(String, String, i32)> =
        rows.iter().map(|r| (r.group.clone(), r.topic.clone(), r.partition)).collect();
    assert_eq!(partitions, vec![("g".into(), "events".into(), 0), ("g".into(), "events".into(), 1)], "{out}");
    assert_consistent(&rows, &out);
    assert!(rows.iter().all(|r| r.end == Some(50) && r.consumer == "-"), "{out}");
    assert_eq!(total(&rows, |r| r.current), 40, "committed exactly what was printed:\n{out}");
    assert_eq!(total(&rows, |r| r.lag), 60, "{out}");

    // --- the other views of an inactive group
    let state = tool(&cluster, &["consumer-groups", "--describe", "--group", "g", "--state"]);
    let state_rows = table_rows(state.ok(), "GROUP           COORDINATOR (ID)");
    assert_eq!(state_rows.len(), 1, "{}", state.stdout);
    assert_eq!((state_rows[0][4].as_str(), state_rows[0][5].as_str()), ("Empty", "0"), "{}", state.stdout);
    let members = tool(&cluster, &["consumer-groups", "--describe", "--group", "g", "--members"]);
    assert_eq!(members.ok().trim(), "", "no members, no table");
    assert!(members.stderr.contains("Consumer group 'g' has no active members."));

    // --- a dry run changes nothing
    let dry = tool(
        &cluster,
        &["consumer-groups", "--reset-offsets", "--to-earliest", "--group", "g", "--topic", "events"],
    );
    assert_eq!(
        dry.ok(),
        "\nGROUP           TOPIC           PARTITION  NEW-OFFSET\n\
         g               events          0          0\n\
         g               events          1          0\n"
    );
    let (ran, rows) = describe(&cluster, "g");
    assert_eq!(total(&rows, |r| r.current), 40, "a dry run committed:\n{}", ran.stdout);

    // --- --execute moves both partitions to 0
    let executed = tool(
        &cluster,
        &[
            "consumer-groups",
            "--reset-offsets",
            "--to-earliest",
            "--group",
            "g",
            "--topic",
            "events",
            "--execute",
        ],
    );
    assert_eq!(executed.ok(), dry.stdout, "the same plan, carried out");
    let (ran, rows) = describe(&cluster, "g");
    assert_consistent(&rows, &ran.stdout);
    assert_eq!(rows.iter().map(|r| r.current).collect::<Vec<_>>(), vec![Some(0), Some(0)], "{}", ran.stdout);
    assert_eq!(total(&rows, |r| r.lag), 100, "{}", ran.stdout);

    // --- delete; then it is not listed, and describing it says it does not exist
    assert_eq!(tool(&cluster, &["consumer-groups", "--list"]).ok().trim(), "g");
    let deleted = tool(&cluster, &["consumer-groups", "--delete", "--group", "g"]);
    assert_eq!(deleted.ok().trim(), "Deletion of requested consumer groups ('g') was successful.");
    eventually(Duration::from_secs(15), "g gone from --list", || {
        let listed = tool(&cluster, &["consumer-groups", "--list"]);
        if listed.ok().lines().any(|l| l == "g") {
            Err(listed.stdout)
        } else {
            Ok(())
        }
    });
    let (gone, rows) = describe(&cluster, "g");
    assert!(!gone.status.success() && rows.is_empty(), "{gone:?}");
    assert!(gone.stderr.contains("Consumer group 'g' does not exist."), "{}", gone.stderr);
}

#[test]
fn a_killed_members_lag_grows_and_an_active_group_cannot_be_reset() {
    let cluster = BrokerCluster::start(1, GROUPS);
    create_topic(&cluster, "orders", 2);
    produce(&cluster, "orders", 50);
    let member_args = [
        "console-consumer",
        "--topic",
        "orders",
        "--group",
        "g",
        "--from-beginning",
        "--consumer-property",
        "session.timeout.ms=6000",
        "--consumer-property",
        "heartbeat.interval.ms=500",
        "--consumer-property",
        "auto.commit.interval.ms=500",
    ];

    // --- a member reads everything and auto-commits it; describe shows it assigned
    let mut first = Proc::spawn(&cluster, &member_args);
    let rows = eventually(Duration::from_secs(30), "the member commits all 50", || {
        let (ran, rows) = describe(&cluster, "g");
        let done = rows.len() == 2
            && rows.iter().all(|r| r.lag == Some(0) && r.consumer != "-")
            && !ran.stderr.contains("no active members")
            && !ran.stderr.contains("rebalancing");
        if done {
            Ok(rows)
        } else {
            Err(format!("{}{}\nconsumer: {}", ran.stdout, ran.stderr, first.stderr()))
        }
    });
    assert_eq!(total(&rows, |r| r.current), 50);
    assert_eq!(rows[0].consumer, rows[1].consumer, "one member has both partitions");
    let members =
        tool(&cluster, &["consumer-groups", "--describe", "--group", "g", "--members", "--verbose"]);
    let member_rows = table_rows(members.ok(), "GROUP           CONSUMER-ID");
    assert_eq!(member_rows.len(), 1, "{}", members.stdout);
    let m = &member_rows[0];
    assert_eq!(
        (m[1].as_str(), m[3].as_str(), m[4].as_str(), m[5].as_str()),
        (rows[0].consumer.as_str(), "console-consumer", "2", "orders(0,1)"),
        "{}",
        members.stdout
    );
    assert_eq!(first.stdout().lines().count(), 50, "it printed every record");

    // --- SIGKILL: no leave, no last commit. What is produced meanwhile is its lag.
    first.kill();
    let killed_at = Instant::now();
    produce(&cluster, "orders", 30);
    let (ran, rows) = describe(&cluster, "g");
    assert_consistent(&rows, &ran.stdout);
    assert_eq!(total(&rows, |r| r.lag), 30, "{}", ran.stdout);
    // Its session (6 s) times out: no active members, the same lag.
    let (ran, rows) = eventually(Duration::from_secs(30), "the killed member's session times out", || {
        let (ran, rows) = describe(&cluster, "g");
        if ran.stderr.contains("Consumer group 'g' has no active members.") {
            Ok((ran, rows))
        } else {
            Err(format!("{}{}", ran.stdout, ran.stderr))
        }
    });
    assert!(killed_at.elapsed() >= Duration::from_secs(4), "gone before its session could time out");
    assert_consistent(&rows, &ran.stdout);
    assert!(rows.iter().all(|r| r.consumer == "-" && r.end == Some(40)), "{}", ran.stdout);
    assert_eq!(total(&rows, |r| r.lag), 30, "{}", ran.stdout);

    // --- a second member joins and starts at the commits; the active group is not reset
    let mut second = Proc::spawn(&cluster, &member_args);
    eventually(Duration::from_secs(30), "the second member reads the 30 new records", || {
        let printed = second.stdout().lines().count();
        if printed == 30 {
            Ok(())
        } else {
            Err(format!("{printed} printed\n{}", second.stderr()))
        }
    });
    let state = eventually(Duration::from_secs(30), "the group is Stable", || {
        let ran = tool(&cluster, &["consumer-groups", "--describe", "--group", "g", "--state"]);
        let rows = table_rows(&ran.stdout, "GROUP           COORDINATOR (ID)");
        match rows.first() {
            Some(r) if r[4] == "Stable" => Ok(r.clone()),
            _ => Err(format!("{}{}", ran.stdout, ran.stderr)),
        }
    });
    assert_eq!(state[5], "1", "#MEMBERS: {state:?}");
    let refused = tool(
        &cluster,
        &[
            "consumer-groups",
            "--reset-offsets",
            "--to-earliest",
            "--group",
            "g",
            "--topic",
            "orders",
            "--execute",
        ],
    );
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused.stderr.contains(
            "Assignments can only be reset if the group 'g' is inactive, but the current state is Stable."
        ),
        "{}",
        refused.stderr
    );
    let not_deleted = tool(&cluster, &["consumer-groups", "--delete", "--group", "g"]);
    assert!(!not_deleted.status.success(), "{not_deleted:?}");
    assert!(
        not_deleted.stderr.contains("Deletion of some consumer groups failed:")
            && not_deleted.stderr.contains("* Group 'g' could not be deleted due to: The group is not empty"),
        "{}",
        not_deleted.stderr
    );
    let (ran, rows) = describe(&cluster, "g");
    assert_ne!(
        rows.iter().map(|r| r.current).collect::<Vec<_>>(),
        vec![Some(0), Some(0)],
        "reset anyway:\n{}",
        ran.stdout
    );

    // --- SIGTERM: the member commits what it printed, leaves, and exits cleanly
    second.terminate();
    let ran = second.wait(STEP);
    assert!(ran.status.success(), "{ran:?}");
    assert!(ran.stderr.contains("Processed a total of 30 messages"), "{}", ran.stderr);
    let (ran, rows) = describe(&cluster, "g");
    assert!(ran.stderr.contains("has no active members"), "left at once: {}", ran.stderr);
    assert_eq!((total(&rows, |r| r.current), total(&rows, |r| r.lag)), (80, 0), "{}", ran.stdout);
}
