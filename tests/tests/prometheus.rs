//! A real Prometheus (Debian's `prometheus`) scraping a `sluice dev up` cluster: every keeper
//! and broker target is up and their series are queryable. Without Prometheus on the PATH the
//! test fails and names the install command (`.ci/run` installs it): it never passes without
//! having run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_tests::{http_get, poll_until, sluice_bin};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ =
            Command::new(sluice_bin()).args(["dev", "down", "--timeout", "10", "--dir"]).arg(self.0).output();
    }
}

fn prometheus() -> std::path::PathBuf {
    sluice_tests::peer("prometheus", "apt-get install prometheus")
}

#[test]
fn a_real_prometheus_scrapes_every_keeper_and_broker_of_a_dev_cluster() {
    let prometheus = prometheus();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("cluster");
    let _down = Down(&dir);
    let up = Command::new(sluice_bin())
        .args(["dev", "up", "--timeout", "60", "--dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("dev up");
    let out = String::from_utf8_lossy(&up.stdout).to_string();
    assert!(up.status.success(), "{out}\n{}", String::from_utf8_lossy(&up.stderr));
    // The endpoints `dev up` printed: "  metrics keeper-1:  http://127.0.0.1:PORT/metrics".
    let targets: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("metrics "))
        .filter_map(|l| {
            let (name, url) = l.split_once(':')?;
            let addr = url.trim().strip_prefix("http://")?.strip_suffix("/metrics")?;
            Some((name.trim().to_string(), addr.to_string()))
        })
        .collect();
    assert_eq!(targets.len(), 6, "three keepers and three brokers: {out}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut config = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for kind in ["keeper", "broker"] {
        config.push_str(&format!("  - job_name: {kind}\n    static_configs:\n      - targets: ["));
        let list: Vec<String> =
            targets.iter().filter(|(n, _)| n.starts_with(kind)).map(|(_, a)| format!("'{a}'")).collect();
        config.push_str(&list.join(", "));
        config.push_str("]\n");
    }
    let config_path = work.path().join("prometheus.yml");
    std::fs::write(&config_path, &config).expect("config");
    let log = std::fs::File::create(work.path().join("prometheus.log")).expect("log");
    let _prom = Kill(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", work.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let api = |path: &str| {
        http_get(&format!("http://127.0.0.1:{port}{path}")).map(|(_, body)| body).unwrap_or_default()
    };
    let up = poll_until(Duration::from_secs(60), || {
        let body = api("/api/v1/targets?state=active");
        match body.matches("\"health\":\"up\"").count() {
            6 => Ok(()),
            up => Err(format!("{up} of 6 up:\n{body}")),
        }
    });
    if let Err(last) = up {
        let log = std::fs::read_to_string(work.path().join("prometheus.log")).unwrap_or_default();
        panic!("not every target up within 60 s: {last}\n{log}");
    }
    // The series are in Prometheus: three brokers report their partitions, the keepers their
    // quorum.
    let answered = poll_until(Duration::from_secs(20), || {
        let brokers = api("/api/v1/query?query=count(sluice_broker_partitions)");
        let keepers = api("/api/v1/query?query=sum(sluice_keeper_quorum)");
        if brokers.contains("\"3\"]") && keepers.contains("\"3\"]") {
            Ok(())
        } else {
            Err(format!("{brokers}\n{keepers}"))
        }
    });
    if let Err(last) = answered {
        panic!("queries did not answer 3 in time:\n{last}");
    }
}
