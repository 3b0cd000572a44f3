//! The Kafka door against Kafka's own clients: kcat (Debian's, on librdkafka), and the Python
//! clients confluent-kafka (its bundled librdkafka) and kafka-python, over the brokers'
//! `SSL` listeners with the cluster's certificates, on a three-member keeper ensemble.
//!
//! A missing client fails the test and names the install command (`.ci/run` installs them);
//! nothing here passes without having run its peer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_certs::{CertSpec, Role};
use sluice_net::TlsFiles;
use sluice_tests::{poll_until, BrokerCluster, TestPki};

const SSL_LISTENERS: &str = "listeners=quic://127.0.0.1:0,SSL://127.0.0.1:0\n";

fn kcat() -> PathBuf {
    match which("kcat") {
        Some(p) => p,
        None => panic!("this test runs kcat and none is on PATH: apt-get install kcat (.ci/run does)"),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
}

/// librdkafka's TLS settings for `files`.
fn ssl_args(files: &TlsFiles) -> Vec<String> {
    vec![
        "-X".into(),
        "security.protocol=ssl".into(),
        "-X".into(),
        format!("ssl.ca.location={}", files.ca.display()),
        "-X".into(),
        format!("ssl.certificate.location={}", files.cert.display()),
        "-X".into(),
        format!("ssl.key.location={}", files.key.display()),
    ]
}

fn ssl_bootstrap(cluster: &BrokerCluster) -> String {
    cluster
        .brokers
        .iter()
        .filter_map(|b| b.kafka_addr("SSL").map(str::to_string))
        .collect::<Vec<_>>()
        .join(",")
}

fn run_kcat(args: &[String], stdin: Option<&[u8]>, timeout: Duration) -> std::process::Output {
    let mut child = Command::new(kcat())
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kcat");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write to kcat");
    }
    let pid = child.id();
    // Bounded: a kcat that hangs is killed and its output shown.
    let watchdog = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::park_timeout(Duration::from_millis(100));
            } else {
                return;
            }
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let out = child.wait_with_output().expect("kcat output");
    drop(watchdog);
    out
}

#[test]
fn kcat_produces_and_reads_back_ten_thousand_lines_and_strangers_are_refused() {
    let kcat_path = kcat();
    let cluster = BrokerCluster::start_on(3, 3, SSL_LISTENERS, "");
    let client = cluster.client_files();
    let bootstrap = ssl_bootstrap(&cluster);
    assert_eq!(bootstrap.split(',').count(), 3, "every broker printed its SSL listener");

    // A topic of three partitions on three replicas, made through the door itself by
    // auto-creation is not what we want: create it with kcat's metadata request? kcat cannot
    // create topics, so the topic is auto-created by the first produce (the broker's
    // auto.create.topics.enable, default true) with num.partitions.
    let lines: Vec<String> = (0..10_000).map(|i| format!("line-{i:05}")).collect();
    let input = lines.join("\n") + "\n";
    let mut produce = vec!["-P".to_string(), "-b".into(), bootstrap.clone(), "-t".into(), "kcat".into()];
    produce.extend(ssl_args(&client));
    let out = run_kcat(&produce, Some(input.as_bytes()), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{} -P failed: {}\n{}",
        kcat_path.display(),
        String::from_utf8_lossy(&out.stderr),
        cluster.log_tails(30)
    );

    let mut consume = vec![
        "-C".to_string(),
        "-b".into(),
        bootstrap.clone(),
        "-t".into(),
        "kcat".into(),
        "-o".into(),
        "beginning".into(),
        "-e".into(),
        "-f".into(),
        "%s\n".into(),
    ];
    consume.extend(ssl_args(&client));
    let out = run_kcat(&consume, None, Duration::from_secs(60));
    assert!(out.status.success(), "kcat -C failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got.len(), lines.len(), "every line read back once");
    assert_eq!(got, lines);

    // No certificate: refused at the handshake.
    let mut no_cert = vec![
        "-L".to_string(),
        "-b".into(),
        bootstrap.clone(),
        "-m".into(),
        "5".into(),
        "-X".into(),
        "security.protocol=ssl".into(),
        "-X".into(),
        format!("ssl.ca.location={}", client.ca.display()),
    ];
    no_cert.push("-J".into());
    let out = run_kcat(&no_cert, None, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "a client without a certificate was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A certificate from another CA: refused too.
    let stranger_pki = TestPki::new("stranger");
    let mut stranger = stranger_pki.issue(CertSpec::new("mallory", Role::Client));
    stranger.ca = client.ca.clone();
    let mut other_ca = vec!["-L".to_string(), "-b".into(), bootstrap, "-m".into(), "5".into()];
    other_ca.extend(ssl_args(&stranger));
    let out = run_kcat(&other_ca, None, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "a certificate of another CA was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The brokers say why.
    let refused = poll_until(Duration::from_secs(10), || {
        let logs = cluster.log_tails(400);
        if logs.contains("TLS handshake") {
            Ok(())
        } else {
            Err("no broker logged a refused TLS handshake".to_string())
        }
    });
    refused.expect("refusals logged");
}
