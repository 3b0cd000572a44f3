//! `sluice dev up | status | down` as a newcomer runs them: the real binary, a temporary
//! directory, then the README's tools against the cluster it printed.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sluice_tests::{poll_until, sluice_bin};

fn sluice(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(sluice_bin())
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sluice")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Stops the cluster whatever happens to the test.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ =
            Command::new(sluice_bin()).args(["dev", "down", "--timeout", "10", "--dir"]).arg(self.0).output();
    }
}

fn pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("dev.pids"))
        .expect("dev.pids")
        .lines()
        .filter_map(|l| l.split(' ').nth(1).and_then(|p| p.parse().ok()))
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
fn dev_up_then_the_readme_tools_produce_and_consume_then_dev_down_stops_everything() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("cluster");
    let _down = Down(&dir);
    let dir_s = dir.to_str().expect("utf-8 path");
    let up = sluice(work.path(), &["dev", "up", "--dir", dir_s, "--timeout", "60"], &[]);
    assert!(up.status.success(), "{}", text(&up));
    let out = String::from_utf8_lossy(&up.stdout).to_string();
    assert!(out.contains("3 keepers, 3 brokers"), "{out}");
    assert!(out.contains("bootstrap servers: 127.0.0.1:"), "{out}");
    let started = pids(&dir);
    assert_eq!(started.len(), 6);
    assert!(started.iter().all(|&p| alive(p)), "every process runs: {started:?}");
    // --- the tools, configured by the env.sh it wrote
    let env: Vec<(String, String)> = std::fs::read_to_string(dir.join("env.sh"))
        .expect("env.sh")
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env.len(), 4, "{env:?}");
    let create = sluice(
        work.path(),
        &["topics", "--create", "--topic", "demo", "--partitions", "3", "--replication-factor", "3"],
        &env,
    );
    assert!(create.status.success(), "{}", text(&create));
    let mut produce = Command::new(sluice_bin())
        .args(["console-producer", "--topic", "demo"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("console-producer");
    {
        use std::io::Write;
        let mut stdin = produce.stdin.take().expect("stdin");
        stdin.write_all(b"one\ntwo\nthree\n").expect("write");
    }
    let produced = produce.wait_with_output().expect("producer");
    assert!(produced.status.success(), "{}", text(&produced));
    let consume = sluice(
        work.path(),
        &[
            "console-consumer",
            "--topic",
            "demo",
            "--group",
            "readers",
            "--from-beginning",
            "--max-messages",
            "3",
            "--timeout-ms",
            "30000",
        ],
        &env,
    );
    assert!(consume.status.success(), "{}", text(&consume));
    let mut lines: Vec<String> =
        String::from_utf8_lossy(&consume.stdout).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, vec!["one", "three", "two"]);
    // --- Kafka's own clients: the printed kcat line reads the same records over SSL
    assert!(out.contains("Kafka clients:     127.0.0.1:"), "{out}");
    let kcat_line = out.lines().find(|l| l.trim_start().starts_with("kcat -F")).expect("a kcat line").trim();
    let args: Vec<&str> = kcat_line.split_whitespace().skip(1).collect();
    let kcat = Command::new(sluice_tests::peer("kcat", "apt-get install kcat"))
        .args(&args)
        .args(["-f", "%s\n"])
        .output()
        .expect("run kcat");
    assert!(kcat.status.success(), "{}", text(&kcat));
    let mut read: Vec<String> = String::from_utf8_lossy(&kcat.stdout).lines().map(str::to_string).collect();
    read.sort();
    assert_eq!(read, vec!["one", "three", "two"], "kcat over the SSL listeners");
    // --- ZooKeeper's own clients: the door on every keeper's client port number, over TLS
    let zk_line =
        out.lines().find(|l| l.trim_start().starts_with("ZooKeeper clients:")).expect("a ZooKeeper line");
    let hosts = zk_line.split_whitespace().nth(2).expect("hosts").trim_end_matches("/sluice");
    let tls = |key: &str| {
        std::path::PathBuf::from(
            &env.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("{key} in env.sh")).1,
        )
    };
    let files = sluice_net::TlsFiles {
        ca: tls("SLUICE_TLS_CA"),
        cert: tls("SLUICE_TLS_CERT"),
        key: tls("SLUICE_TLS_KEY"),
    };
    for host in hosts.split(',') {
        let answer =
            sluice_tests::zookeeper_word(host, &files, "ruok").unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(answer, "imok", "{host}");
    }
    // --- status, then a second `up` is refused while it runs
    let status = sluice(work.path(), &["dev", "status", "--dir", dir_s], &[]);
    let st = String::from_utf8_lossy(&status.stdout).to_string();
    assert_eq!(st.matches(" running ").count(), 6, "{st}");
    assert!(st.contains("registered brokers: 1, 2, 3"), "{st}");
    let again = sluice(work.path(), &["dev", "up", "--dir", dir_s], &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already runs"), "{}", text(&again));
    // --- down stops every process, and `status` says so
    let down = sluice(work.path(), &["dev", "down", "--dir", dir_s, "--timeout", "20"], &[]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(String::from_utf8_lossy(&down.stdout).matches(") stopped").count(), 6, "{}", text(&down));
    let gone = poll_until(Duration::from_secs(5), || match started.iter().find(|&&p| alive(p)) {
        Some(p) => Err(format!("pid {p} still runs")),
        None => Ok(()),
    });
    assert_eq!(gone, Ok(()), "every process is gone");
    let status = sluice(work.path(), &["dev", "status", "--dir", dir_s], &[]);
    assert_eq!(String::from_utf8_lossy(&status.stdout).matches(" stopped ").count(), 6, "{}", text(&status));
}

#[test]
fn dev_up_refuses_two_keepers_and_down_without_a_cluster_says_how_to_start_one() {
    let work = tempfile::tempdir().expect("tempdir");
    let two = sluice(work.path(), &["dev", "up", "--keepers", "2", "--dir", "c"], &[]);
    assert!(!two.status.success());
    assert!(String::from_utf8_lossy(&two.stderr).contains("use 1, or 3 or more"), "{}", text(&two));
    let down = sluice(work.path(), &["dev", "down", "--dir", "nothing-here"], &[]);
    assert!(!down.status.success());
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("start one with `sluice dev up --dir nothing-here`"),
        "{}",
        text(&down)
    );
}
