//! Day-two tools on a live cluster, run as an operator runs them: `sluice configs`
//! (kafka-configs.sh) changes a topic's retention and every replica applies it without a
//! restart; `sluice topics --alter --partitions` grows a topic; both are refused to a
//! certificate without the ACLs for them.

use std::time::Duration;

use sluice_certs::{CertSpec, Role};
use sluice_net::TlsFiles;
use sluice_tests::{poll_until, BrokerCluster, Ran};

/// Retention runs every half second.
const EXTRA: &str = "log.retention.check.interval.ms=500\ndefault.replication.factor=3\n";

fn sluice(cluster: &BrokerCluster, files: &TlsFiles, args: &[&str]) -> Ran {
    sluice_tests::run_sluice(&cluster.bootstrap(), files, args, "")
}

/// `sluice configs --alter --entity-type topics --entity-name TOPIC FLAG VALUE` as `files`.
fn alter(cluster: &BrokerCluster, files: &TlsFiles, topic: &str, flag: &str, value: &str) -> Ran {
    sluice(
        cluster,
        files,
        &["configs", "--alter", "--entity-type", "topics", "--entity-name", topic, flag, value],
    )
}

/// Each broker's bytes of partition `t-0`, from `sluice log-dirs --describe`, in broker order.
fn sizes(cluster: &BrokerCluster, files: &TlsFiles, topic: &str) -> Vec<u64> {
    sizes_by_broker(cluster, files, topic).into_values().collect()
}

/// Each broker's bytes of partition `t-0`, by broker id.
fn sizes_by_broker(
    cluster: &BrokerCluster,
    files: &TlsFiles,
    topic: &str,
) -> std::collections::BTreeMap<i64, u64> {
    let out = sluice(cluster, files, &["log-dirs", "--describe", "--topic-list", topic]);
    let text = out.ok("log-dirs");
    let json = text.lines().find(|l| l.starts_with('{')).expect("log-dirs JSON line");
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
    let mut out = std::collections::BTreeMap::new();
    for b in v["brokers"].as_array().expect("brokers") {
        for d in b["logDirs"].as_array().expect("logDirs") {
            for p in d["partitions"].as_array().expect("partitions") {
                if p["partition"] == format!("{topic}-0") {
                    out.insert(b["broker"].as_i64().expect("broker id"), p["size"].as_u64().expect("size"));
                }
            }
        }
    }
    out
}

#[test]
fn one_brokers_own_dynamic_config_applies_on_that_broker_only() {
    let cluster = BrokerCluster::start(3, EXTRA);
    let admin = cluster.client_files();
    // Broker 1 leads; broker 2 follows (a follower's retention is its own).
    sluice(
        &cluster,
        &admin,
        &[
            "topics",
            "--create",
            "--topic",
            "local",
            "--replica-assignment",
            "1:2:3",
            "--config",
            "segment.bytes=1024",
        ],
    )
    .ok("create");
    let lines: String =
        (0..60).map(|i| format!("record number {i:03} with some padding to fill segments\n")).collect();
    sluice_tests::run_sluice(
        &cluster.bootstrap(),
        &admin,
        &["console-producer", "--topic", "local", "--sync"],
        &lines,
    )
    .ok("produce");
    let before = poll_until(Duration::from_secs(20), || {
        let s = sizes_by_broker(&cluster, &admin, "local");
        if s.len() == 3 && s.values().all(|&b| b > 4096) && s.values().all(|b| Some(b) == s.get(&1)) {
            Ok(s)
        } else {
            Err(format!("sizes {s:?}"))
        }
    })
    .expect("three equal replicas with several segments each");
    let broker2 = |args: &[&str]| {
        let mut all = vec!["configs", "--entity-type", "brokers", "--entity-name", "2"];
        all.extend_from_slice(args);
        sluice(&cluster, &admin, &all)
    };
    let altered = broker2(&["--alter", "--add-config", "log.retention.ms=1000"]);
    assert_eq!(
        altered.ok("configs --alter --entity-name 2").trim(),
        "Completed updating config for broker 2."
    );
    let after = poll_until(Duration::from_secs(30), || {
        let s = sizes_by_broker(&cluster, &admin, "local");
        if s.get(&2).is_some_and(|b| b * 2 < before[&2]) {
            Ok(s)
        } else {
            Err(format!("sizes {s:?} (before {before:?})"))
        }
    })
    .unwrap_or_else(|e| panic!("broker 2 did not take its own retention: {e}\n{}", cluster.log_tails(20)));
    assert_eq!(
        (after[&1], after[&3]),
        (before[&1], before[&3]),
        "brokers 1 and 3 keep everything: {after:?}"
    );
    let out = broker2(&["--describe"]);
    let out = out.ok("configs --describe --entity-name 2");
    assert!(
        out.contains("Dynamic configs for broker 2 are:\n")
            && out.contains(
                "  log.retention.ms=1000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=1000}"
            ),
        "{out}"
    );
    let not_live = [
        "configs",
        "--entity-type",
        "brokers",
        "--entity-name",
        "9",
        "--alter",
        "--add-config",
        "log.retention.ms=5",
    ];
    sluice(&cluster, &admin, &not_live).refused("a broker that is not live", "broker 9 is not a live broker");
    let not_id = ["configs", "--entity-type", "brokers", "--entity-name", "b2", "--describe"];
    sluice(&cluster, &admin, &not_id).refused("a name that is not an id", "give a broker id");
    broker2(&["--alter", "--add-config", "num.io.threads=4"]).refused("a static key", "restart");
    broker2(&["--alter", "--delete-config", "log.retention.ms"]).ok("--delete-config");
    assert!(!broker2(&["--describe"]).ok("describe after delete").contains("log.retention.ms"));
}

#[test]
fn a_retention_change_reaches_every_replica_live_and_topics_grow_with_alter() {
    let cluster = BrokerCluster::start(3, EXTRA);
    let admin = cluster.client_files();
    sluice(
        &cluster,
        &admin,
        &["topics", "--create", "--topic", "cfg", "--partitions", "1", "--config", "segment.bytes=1024"],
    )
    .ok("create");
    let lines: String =
        (0..60).map(|i| format!("record number {i:03} with some padding to fill segments\n")).collect();
    sluice_tests::run_sluice(
        &cluster.bootstrap(),
        &admin,
        &["console-producer", "--topic", "cfg", "--sync"],
        &lines,
    )
    .ok("produce");
    let before = poll_until(Duration::from_secs(20), || {
        let s = sizes(&cluster, &admin, "cfg");
        if s.len() == 3 && s.iter().all(|&b| b > 4096) {
            Ok(s)
        } else {
            Err(format!("sizes {s:?}"))
        }
    })
    .expect("three replicas with several segments each");

    let described = sluice(
        &cluster,
        &admin,
        &["configs", "--describe", "--entity-type", "topics", "--entity-name", "cfg"],
    );
    let out = described.ok("configs --describe");
    assert!(out.contains("Dynamic configs for topic cfg are:"), "{out}");
    assert!(
        out.contains(
            "  segment.bytes=1024 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:segment.bytes=1024}"
        ),
        "{out}"
    );

    // retention.ms on the live topic: every replica deletes its old segments, no restart.
    let altered = alter(&cluster, &admin, "cfg", "--add-config", "retention.ms=1000,cleanup.policy=[delete]");
    assert_eq!(altered.ok("configs --alter").trim(), "Completed updating config for topic cfg.");
    let after = poll_until(Duration::from_secs(30), || {
        let s = sizes(&cluster, &admin, "cfg");
        if s.len() == 3 && s.iter().zip(&before).all(|(a, b)| a * 2 < *b) {
            Ok(s)
        } else {
            Err(format!("sizes {s:?} (before {before:?})"))
        }
    })
    .unwrap_or_else(|e| panic!("retention did not reach every replica: {e}\n{}", cluster.log_tails(20)));
    eprintln!("replica sizes before {before:?}, after retention.ms=1000: {after:?}");
    let earliest = sluice(&cluster, &admin, &["get-offsets", "--topic", "cfg", "--time", "-2"]);
    let start: i64 =
        earliest.ok("get-offsets").trim().rsplit(':').next().and_then(|o| o.parse().ok()).expect("offset");
    assert!(start > 0, "the log start moved past deleted segments: {start}");

    // --delete-config takes the override away.
    alter(&cluster, &admin, "cfg", "--delete-config", "retention.ms").ok("configs --delete-config");
    let out = sluice(
        &cluster,
        &admin,
        &["configs", "--describe", "--entity-type", "topics", "--entity-name", "cfg"],
    );
    let text = out.ok("configs --describe after delete");
    assert!(!text.contains("retention.ms") && text.contains("segment.bytes=1024"), "{text}");
    alter(&cluster, &admin, "cfg", "--add-config", "retention.bytes=x")
        .refused("a bad value", "retention.bytes");
    sluice(&cluster, &admin, &["configs", "--describe", "--entity-type", "brokers"]).refused(
        "brokers without an entity",
        "--entity-default (the cluster-wide dynamic defaults) or --entity-name ID",
    );

    // topics --alter --partitions grows the topic; shrinking is refused.
    sluice(&cluster, &admin, &["topics", "--alter", "--topic", "cfg", "--partitions", "4"])
        .ok("topics --alter");
    poll_until(Duration::from_secs(20), || {
        let d = sluice(&cluster, &admin, &["topics", "--describe", "--topic", "cfg"]);
        if d.ok && d.stdout.contains("PartitionCount: 4") {
            Ok(())
        } else {
            Err(d.stdout)
        }
    })
    .expect("four partitions");
    sluice(&cluster, &admin, &["topics", "--alter", "--topic", "cfg", "--partitions", "2"])
        .refused("shrinking", "cannot alter topic cfg");

    // A certificate without AlterConfigs / Alter on the topic changes nothing.
    let alice = cluster.pki.issue(CertSpec::new("alice", Role::Client));
    alter(&cluster, &alice, "cfg", "--add-config", "retention.ms=5")
        .refused("alice's config change", "User:alice is not authorized to AlterConfigs topic cfg");
    sluice(&cluster, &alice, &["topics", "--alter", "--topic", "cfg", "--partitions", "8"])
        .refused("alice's partition growth", "User:alice is not authorized to Alter topic cfg");
}

#[test]
fn the_cluster_wide_broker_defaults_change_live_under_each_topics_own_overrides() {
    let cluster = BrokerCluster::start(3, EXTRA);
    let admin = cluster.client_files();
    let lines: String =
        (0..60).map(|i| format!("record number {i:03} with some padding to fill segments\n")).collect();
    // "plain" takes the defaults; "kept" overrides retention itself (forever).
    for (topic, retention) in [("plain", None), ("kept", Some("retention.ms=-1"))] {
        let mut args = vec![
            "topics",
            "--create",
            "--topic",
            topic,
            "--partitions",
            "1",
            "--config",
            "segment.bytes=1024",
        ];
        if let Some(r) = retention {
            args.extend(["--config", r]);
        }
        sluice(&cluster, &admin, &args).ok("create");
        sluice_tests::run_sluice(
            &cluster.bootstrap(),
            &admin,
            &["console-producer", "--topic", topic, "--sync"],
            &lines,
        )
        .ok("produce");
    }
    let filled = |topic: &str| {
        poll_until(Duration::from_secs(20), || {
            let s = sizes(&cluster, &admin, topic);
            if s.len() == 3 && s.iter().all(|&b| b > 4096) {
                Ok(s)
            } else {
                Err(format!("{topic} sizes {s:?}"))
            }
        })
        .expect("three replicas with several segments each")
    };
    let (plain, kept) = (filled("plain"), filled("kept"));

    let defaults = |args: &[&str]| {
        let mut all = vec!["configs", "--entity-type", "brokers", "--entity-default"];
        all.extend_from_slice(args);
        sluice(&cluster, &admin, &all)
    };
    let altered = defaults(&["--alter", "--add-config", "log.retention.ms=1000"]);
    assert_eq!(
        altered.ok("configs --alter --entity-default").trim(),
        "Completed updating default config for brokers in the cluster."
    );
    let after = poll_until(Duration::from_secs(30), || {
        let s = sizes(&cluster, &admin, "plain");
        if s.len() == 3 && s.iter().zip(&plain).all(|(a, b)| a * 2 < *b) {
            Ok(s)
        } else {
            Err(format!("sizes {s:?} (before {plain:?})"))
        }
    })
    .unwrap_or_else(|e| {
        panic!("the default retention did not reach every replica: {e}\n{}", cluster.log_tails(20))
    });
    eprintln!("plain's replicas before {plain:?}, after log.retention.ms=1000: {after:?}");
    assert_eq!(sizes(&cluster, &admin, "kept"), kept, "a topic's own retention.ms wins over the default");
    let described = defaults(&["--describe"]);
    let out = described.ok("configs --describe --entity-default");
    assert!(
        out.contains("Default configs for brokers in the cluster are:\n")
            && out.contains(
                "  log.retention.ms=1000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=1000}"
            ),
        "{out}"
    );
    defaults(&["--alter", "--add-config", "num.io.threads=4"]).refused("a static key", "restart");
    defaults(&["--alter", "--add-config", "log.segment.bytes=x"]).refused("a bad value", "segment.bytes");
    let alice = cluster.pki.issue(CertSpec::new("alice", Role::Client));
    sluice(
        &cluster,
        &alice,
        &[
            "configs",
            "--entity-type",
            "brokers",
            "--entity-default",
            "--alter",
            "--add-config",
            "log.retention.ms=5",
        ],
    )
    .refused("alice's default change", "User:alice is not authorized");
    defaults(&["--alter", "--delete-config", "log.retention.ms"]).ok("--delete-config");
    let described = defaults(&["--describe"]);
    let out = described.ok("describe after delete");
    assert!(!out.contains("log.retention.ms"), "{out}");
}

#[test]
fn console_consumer_creates_an_unknown_topic_or_ends_at_its_timeout_naming_it() {
    // Auto-creation on (the brokers' default): the consumer's metadata request creates it.
    let cluster = BrokerCluster::start(1, "");
    let admin = cluster.client_files();
    let started = std::time::Instant::now();
    let read = sluice(&cluster, &admin, &["console-consumer", "--topic", "fresh", "--timeout-ms", "3000"]);
    read.ok("console-consumer of a new topic");
    assert!(read.stderr.contains("Processed a total of 0 messages"), "{}", read.stderr);
    assert!(started.elapsed() < Duration::from_secs(15), "ended by its timeout: {:?}", started.elapsed());
    let listed = sluice(&cluster, &admin, &["topics", "--list"]);
    assert!(listed.ok("list").lines().any(|l| l == "fresh"), "the consumer created it: {}", listed.stdout);

    // allow.auto.create.topics=false: nothing is created and the run ends at --timeout-ms,
    // naming the topic and Kafka's error.
    let started = std::time::Instant::now();
    let refused = sluice(
        &cluster,
        &admin,
        &[
            "console-consumer",
            "--topic",
            "absent",
            "--timeout-ms",
            "2000",
            "--consumer-property",
            "allow.auto.create.topics=false",
        ],
    );
    refused.refused("console-consumer of a missing topic", "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(refused.stderr.contains("absent"), "{}", refused.stderr);
    assert!(started.elapsed() < Duration::from_secs(15), "ended by its timeout: {:?}", started.elapsed());
    let listed = sluice(&cluster, &admin, &["topics", "--list"]);
    assert!(!listed.ok("list").lines().any(|l| l == "absent"), "{}", listed.stdout);

    // The same with a group.
    let refused = sluice(
        &cluster,
        &admin,
        &[
            "console-consumer",
            "--topic",
            "absent",
            "--group",
            "g",
            "--timeout-ms",
            "2000",
            "--consumer-property",
            "allow.auto.create.topics=false",
        ],
    );
    refused.refused("a group's console-consumer of a missing topic", "UNKNOWN_TOPIC_OR_PARTITION");
}

#[test]
fn dump_log_prints_a_live_brokers_segment_and_indexes_as_kafkas_tool_does() {
    let cluster = BrokerCluster::start(1, "");
    let admin = cluster.client_files();
    sluice(
        &cluster,
        &admin,
        &["topics", "--create", "--topic", "dump", "--partitions", "1", "--config", "index.interval.bytes=1"],
    )
    .ok("create");
    let lines = "k1\tfirst value\nk2\tsecond value\n";
    sluice_tests::run_sluice(
        &cluster.bootstrap(),
        &admin,
        &["console-producer", "--topic", "dump", "--sync", "--property", "parse.key=true"],
        lines,
    )
    .ok("produce");
    let dir = cluster.brokers[0].log_dir.join("dump-0");
    let file = |ext: &str| dir.join(format!("00000000000000000000.{ext}")).display().to_string();
    let files = [file("log"), file("index"), file("timeindex")].join(",");
    // The broker writes the index entries as batches arrive; the segment file is read as it
    // stands, without the broker.
    let out = poll_until(Duration::from_secs(10), || {
        let run = std::process::Command::new(sluice_tests::sluice_bin())
            .args(["dump-log", "--files", &files, "--print-data-log"])
            .output()
            .expect("run dump-log");
        let text = String::from_utf8_lossy(&run.stdout).into_owned();
        if run.status.success() && text.contains("offset: 1 position:") {
            Ok(text)
        } else {
            Err(format!("{text}\n{}", String::from_utf8_lossy(&run.stderr)))
        }
    })
    .expect("dump-log of the three files");
    assert!(out.contains(&format!("Dumping {}\nLog starting offset: 0\n", file("log"))), "{out}");
    assert!(out.contains("baseOffset: 0 lastOffset: 0 count: 1 "), "{out}");
    assert!(out.contains("baseOffset: 1 lastOffset: 1 count: 1 "), "{out}");
    assert!(
        out.contains(" keySize: 2 valueSize: 11 sequence: 0 headerKeys: [] key: k1 payload: first value\n"),
        "{out}"
    );
    assert!(out.contains(" key: k2 payload: second value\n"), "{out}");
    assert!(out.contains("isvalid: true"), "{out}");
    // As Kafka's log: an index entry once index.interval.bytes were appended since the last,
    // so the first batch has none and the second (at byte 81) has one.
    assert!(out.contains(&format!("Dumping {}\noffset: 1 position: 81\n", file("index"))), "{out}");
    assert!(out.contains(&format!("Dumping {}\ntimestamp: ", file("timeindex"))), "{out}");

    // A file it cannot read is named, and the others are still dumped.
    let bad = std::process::Command::new(sluice_tests::sluice_bin())
        .args([
            "dump-log",
            "--files",
            &format!("{},{}", dir.join("leader-epoch-checkpoint").display(), file("log")),
        ])
        .output()
        .expect("run dump-log");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains(".log, .index or .timeindex"));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("baseOffset: 0"));
}

/// Stops a `-daemon` service on every path out of the test: `sluice ... stop`, then SIGKILL
/// through its pid file if that did not do it.
struct Daemon {
    stop: Vec<String>,
    pid_file: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new(sluice_tests::sluice_bin()).args(&self.stop).output();
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = std::process::Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }
}

fn sluice_cmd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(sluice_tests::sluice_bin()).args(args).output().expect("run sluice")
}

#[test]
fn daemon_starts_serve_in_the_background_with_overrides_and_stop_ends_them() {
    let pki = sluice_tests::TestPki::new("daemon");
    let dir = tempfile::tempdir().expect("dir");
    let port = sluice_tests::free_udp_ports(1)[0];
    let (keeper_conf, keeper_data) = sluice_tests::keeper_config(&pki, dir.path(), "keeper", 1, 0, 500, "");
    let keeper_conf = keeper_conf.display().to_string();
    let port_override = format!("clientPort={port}");
    // -daemon, as zkServer.sh / kafka-server-start.sh take it; the port comes from --override.
    let started = sluice_cmd(&["keeper", "start", "-daemon", &keeper_conf, "--override", &port_override]);
    let _keeper = Daemon {
        stop: vec![
            "keeper".into(),
            "stop".into(),
            keeper_conf.clone(),
            "--override".into(),
            port_override.clone(),
        ],
        pid_file: keeper_data.join("sluice-keeper.pid"),
    };
    let said = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(started.status.success(), "{said}\n{}", String::from_utf8_lossy(&started.stderr));
    assert!(said.contains(&format!("keeper listening on 127.0.0.1:{port}")), "{said}");
    assert!(said.contains("running in the background") && said.contains("sluice-keeper.out"), "{said}");

    // The broker's file says broker.id=1; --override makes it 7.
    let connect = format!("127.0.0.1:{port}/sluice");
    let broker_conf = sluice_tests::broker_config(&pki, dir.path(), 1, &connect, "");
    let broker_conf = broker_conf.display().to_string();
    let started = sluice_cmd(&["broker", "start", "--daemon", &broker_conf, "--override", "broker.id=7"]);
    let _broker = Daemon {
        stop: vec!["broker".into(), "stop".into(), broker_conf.clone()],
        pid_file: dir.path().join("broker-1-logs/sluice-broker.pid"),
    };
    let said = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(started.status.success(), "{said}\n{}", String::from_utf8_lossy(&started.stderr));
    let addr = said
        .lines()
        .find_map(|l| l.strip_prefix("broker listening on "))
        .expect("the listening line")
        .to_string();
    let admin = pki.issue(CertSpec::new("admin", Role::Client));
    let described = sluice_tests::run_sluice(
        &addr,
        &admin,
        &["topics", "--create", "--topic", "d", "--partitions", "1"],
        "",
    );
    described.ok("a topic on the daemon broker");
    let shell = std::process::Command::new(sluice_tests::sluice_bin())
        .args(["keeper-shell", &connect])
        .args(sluice_tests::tls_args(&admin))
        .args(["ls", "/brokers/ids"])
        .output()
        .expect("keeper-shell");
    assert!(
        String::from_utf8_lossy(&shell.stdout).contains("[7]"),
        "{}",
        String::from_utf8_lossy(&shell.stdout)
    );

    // A bad override is refused before anything runs in the background.
    let refused = sluice_cmd(&["broker", "start", "-daemon", &broker_conf, "--override", "broker.id=x"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("broker.id"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // stop ends both.
    let stopped = sluice_cmd(&["broker", "stop", &broker_conf]);
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    let stopped = sluice_cmd(&["keeper", "stop", &keeper_conf, "--override", &port_override]);
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    assert!(
        !keeper_data.join("sluice-keeper.pid").exists(),
        "the keeper removed its pid file on its way out"
    );
}

/// A stock file from tests/data with `replace` (key → new value; commented settings are
/// switched on) and `extra` lines added.
fn stock(name: &str, replace: &[(&str, String)], extra: &str) -> String {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name))
            .expect("stock file");
    let mut out = String::new();
    for line in text.lines() {
        let bare = line.trim_start_matches('#');
        match bare.split_once('=').and_then(|(k, _)| replace.iter().find(|(r, _)| *r == k)) {
            Some((k, v)) => out.push_str(&format!("{k}={v}\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out + extra
}

/// One PEM file holding `files`' certificate and key: a Java-style PEM key store.
fn pem_store(files: &TlsFiles) -> std::path::PathBuf {
    let store = files.cert.with_extension("keystore.pem");
    let text = std::fs::read_to_string(&files.cert).expect("cert")
        + &std::fs::read_to_string(&files.key).expect("key");
    std::fs::write(&store, text).expect("write the key store");
    store
}

#[test]
fn kafkas_and_zookeepers_stock_files_start_a_cluster_and_name_what_has_no_effect() {
    let pki = sluice_tests::TestPki::new("stock");
    let dir = tempfile::tempdir().expect("dir");
    let port = sluice_tests::free_udp_ports(1)[0];
    let keeper_data = dir.path().join("zookeeper");
    let keeper_tls = pki.issue(CertSpec::new("keeper-1", Role::Node));
    let zoo = stock(
        "zoo_sample.cfg",
        &[
            ("dataDir", keeper_data.display().to_string()),
            ("clientPort", port.to_string()),
            ("maxClientCnxns", "60".into()),
            ("autopurge.snapRetainCount", "3".into()),
            ("autopurge.purgeInterval", "1".into()),
            (
                "metricsProvider.className",
                "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider".into(),
            ),
            ("metricsProvider.httpPort", "0".into()),
            ("metricsProvider.exportJvmInfo", "true".into()),
        ],
        // The TLS block as a ZooKeeper operator writes it: PEM key and trust stores.
        &format!(
            "clientPortAddress=127.0.0.1\nssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
             ssl.trustStore.location={}\nssl.trustStore.type=PEM\nssl.clientAuth=need\n",
            pem_store(&keeper_tls).display(),
            keeper_tls.ca.display()
        ),
    );
    let zoo_path = dir.path().join("zoo.cfg");
    std::fs::write(&zoo_path, zoo).expect("write zoo.cfg");
    let zoo_path = zoo_path.display().to_string();
    let started = sluice_cmd(&["keeper", "start", "-daemon", &zoo_path]);
    let _keeper = Daemon {
        stop: vec!["keeper".into(), "stop".into(), zoo_path.clone()],
        pid_file: keeper_data.join("sluice-keeper.pid"),
    };
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let keeper_out = std::fs::read_to_string(keeper_data.join("sluice-keeper.out")).unwrap_or_default();
    assert!(
        keeper_out.contains("accepted and have no effect here: metricsProvider.className (")
            && keeper_out.contains("metricsProvider.exportJvmInfo (there is no JVM)"),
        "{keeper_out}"
    );

    let logs = dir.path().join("kafka-logs");
    let broker_tls = pki.issue(CertSpec::new("broker-0", Role::Node));
    // The TLS block as a Kafka operator writes it: PEM stores, protocols, no host name check.
    let extra = format!(
        "listeners=quic://127.0.0.1:0\nsuper.users=User:broker-0;User:admin\nssl.keystore.type=PEM\n\
         ssl.keystore.location={}\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
         ssl.enabled.protocols=TLSv1.2,TLSv1.3\nssl.endpoint.identification.algorithm=\n",
        pem_store(&broker_tls).display(),
        broker_tls.ca.display()
    );
    let server = stock(
        "kafka-server.properties",
        &[("log.dirs", logs.display().to_string()), ("zookeeper.connect", format!("127.0.0.1:{port}/kafka"))],
        &extra,
    );
    let server_path = dir.path().join("server.properties");
    std::fs::write(&server_path, &server).expect("write server.properties");
    let server_path = server_path.display().to_string();
    let started = sluice_cmd(&["broker", "start", "-daemon", &server_path]);
    let _broker = Daemon {
        stop: vec!["broker".into(), "stop".into(), server_path.clone()],
        pid_file: logs.join("sluice-broker.pid"),
    };
    let said = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(started.status.success(), "{said}\n{}", String::from_utf8_lossy(&started.stderr));
    let broker_out = std::fs::read_to_string(logs.join("sluice-broker.out")).unwrap_or_default();
    for key in [
        "num.network.threads",
        "num.io.threads",
        "socket.send.buffer.bytes",
        "num.recovery.threads.per.data.dir",
        "transaction.state.log.min.isr",
        "zookeeper.connection.timeout.ms",
    ] {
        assert!(broker_out.contains(&format!("{key} (")), "the notice names {key}: {broker_out}");
    }
    // It works: a record goes in and comes out.
    let addr = said
        .lines()
        .find_map(|l| l.strip_prefix("broker listening on "))
        .expect("listening line")
        .to_string();
    let admin = pki.issue(CertSpec::new("admin", Role::Client));
    sluice_tests::run_sluice(
        &addr,
        &admin,
        &["console-producer", "--topic", "stock"],
        "from the stock files\n",
    )
    .ok("produce");
    let read = sluice_tests::run_sluice(
        &addr,
        &admin,
        &[
            "console-consumer",
            "--topic",
            "stock",
            "--from-beginning",
            "--max-messages",
            "1",
            "--timeout-ms",
            "20000",
        ],
        "",
    );
    assert_eq!(read.ok("consume").trim(), "from the stock files");

    // A typo is refused with the key it most likely meant.
    let typo_path = dir.path().join("typo.properties");
    std::fs::write(&typo_path, server.replace("num.network.threads", "num.netwrok.threads")).expect("write");
    let refused = sluice_cmd(&["broker", "start", &typo_path.display().to_string()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("unknown key \"num.netwrok.threads\" (did you mean \"num.network.threads\"?)"),
        "{err}"
    );
}
