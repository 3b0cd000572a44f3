//! The docker-compose topology (`docker-compose.yml`, `deploy/`) without Docker.
//!
//! No Docker engine runs where the tests run, so the compose file is checked two ways:
//!
//! - *As processes.* Each keeper and broker service's command line and the config file it
//!   mounts from `deploy/` are taken from the compose file, compose host names and ports are
//!   rewritten to 127.0.0.1 and free ports, and the volume paths (`/certs`, `/data`, the
//!   mounted files) to a temporary directory; then the certs service's script makes the
//!   certificates, 3 keepers and 3 brokers start from those command lines with the real
//!   `sluice` binary, every service's health check (its own command, rewritten) passes, every
//!   broker is registered, and the `cli` service's environment creates an RF=3 topic,
//!   produces and consumes.
//! - *Statically.* Start order and health gating, published broker ports, certificate names
//!   against host names, and every Prometheus scrape target against a metrics port; and
//!   `docker-compose config -q` when the `docker-compose` binary is there (CI installs it).
//!
//! What this cannot show: the image build, Docker's DNS, volume ownership and UDP port
//! publishing. Those need an engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_tests::yaml::Yaml;
use sluice_tests::{free_udp_ports, http_get, poll_until, sluice_bin};

/// The image every sluice service runs.
const SLUICE_IMAGE: &str = "sluice:local";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root").to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn read_yaml(rel: &str) -> Yaml {
    Yaml::parse(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------
// The compose file, as far as these tests need it

/// One service of `docker-compose.yml`.
#[derive(Debug, Clone)]
struct Service {
    name: String,
    image: String,
    has_build: bool,
    /// The entrypoint (the service's, else the Dockerfile's for the sluice image) followed
    /// by the command.
    argv: Vec<String>,
    /// (source, target) of each volume, the `:ro` / `:rw` mode dropped.
    volumes: Vec<(String, String)>,
    environment: Vec<(String, String)>,
    ports: Vec<String>,
    /// `healthcheck.test`.
    healthcheck: Option<Vec<String>>,
    /// (service, condition); the list form's condition is `service_started`.
    depends_on: Vec<(String, String)>,
    profiles: Vec<String>,
}

impl Service {
    /// The host path mounted at `target`, when it is a file or directory of the repository.
    fn bind_source(&self, target: &str) -> Option<&str> {
        self.volumes.iter().find(|(s, t)| t == target && s.starts_with("./")).map(|(s, _)| s.as_str())
    }

    /// The config file a `keeper start` / `broker start` command names (its container path).
    fn config_target(&self, what: &str) -> String {
        let words: Vec<&str> = self.argv.iter().flat_map(|a| a.split_whitespace()).collect();
        let at = words
            .windows(2)
            .position(|w| w == [what, "start"])
            .unwrap_or_else(|| panic!("{}: no `{what} start CONFIG` in {:?}", self.name, self.argv));
        words
            .get(at + 2)
            .unwrap_or_else(|| panic!("{}: `{what} start` without a config", self.name))
            .to_string()
    }

    /// The repository file mounted as this service's `keeper start` / `broker start` config.
    fn config_source(&self, what: &str) -> String {
        let target = self.config_target(what);
        let source = self
            .bind_source(&target)
            .unwrap_or_else(|| panic!("{}: {target} is not a file mounted from the repository", self.name));
        assert!(source.starts_with("./deploy/"), "{}: {target} comes from {source}, not deploy/", self.name);
        source.trim_start_matches("./").to_string()
    }
}

#[derive(Debug)]
struct Compose {
    services: Vec<Service>,
    /// Top-level named volumes.
    volumes: Vec<String>,
}

fn strings(v: &Yaml, what: &str) -> Vec<String> {
    match v {
        Yaml::Str(s) => panic!("{what}: write it as a list (the string form {s:?} is split by a shell-like parser this test does not reproduce)"),
        _ => v.strings().unwrap_or_else(|| panic!("{what}: expected a list of strings, got {v:?}")),
    }
}

/// The exec-form ENTRYPOINT of the Dockerfile.
fn dockerfile_entrypoint() -> Vec<String> {
    let text = read("Dockerfile");
    let line = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENTRYPOINT "))
        .next_back()
        .expect("the Dockerfile has an ENTRYPOINT");
    let parsed = Yaml::parse(&format!("e: {line}")).expect("ENTRYPOINT in exec form");
    strings(parsed.get("e").expect("e"), "ENTRYPOINT")
}

fn load_compose() -> Compose {
    let y = read_yaml("docker-compose.yml");
    let entrypoint = dockerfile_entrypoint();
    let mut services = Vec::new();
    for (name, def) in y.get("services").and_then(Yaml::as_map).expect("services") {
        let what = |key: &str| format!("services.{name}.{key}");
        let image = def.get("image").and_then(Yaml::as_str).unwrap_or_else(|| panic!("{}", what("image")));
        let mut argv = match def.get("entrypoint") {
            Some(e) => strings(e, &what("entrypoint")),
            None if image == SLUICE_IMAGE => entrypoint.clone(),
            None => Vec::new(),
        };
        if let Some(c) = def.get("command") {
            argv.extend(strings(c, &what("command")));
        }
        let volumes = def
            .get("volumes")
            .map(|v| strings(v, &what("volumes")))
            .unwrap_or_default()
            .iter()
            .map(|v| {
                let parts: Vec<&str> = v.split(':').collect();
                match parts[..] {
                    [s, t] | [s, t, "ro" | "rw"] => (s.to_string(), t.to_string()),
                    _ => panic!("{}: cannot read volume {v:?}", what("volumes")),
                }
            })
            .collect();
        let environment = match def.get("environment") {
            None => Vec::new(),
            Some(Yaml::Map(m)) => {
                m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
            }
            Some(v) => strings(v, &what("environment"))
                .iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
        };
        let depends_on = match def.get("depends_on") {
            None => Vec::new(),
            Some(Yaml::Map(m)) => m
                .iter()
                .map(|(k, v)| {
                    let c = v.get("condition").and_then(Yaml::as_str).unwrap_or("service_started");
                    (k.clone(), c.to_string())
                })
                .collect(),
            Some(v) => strings(v, &what("depends_on"))
                .into_iter()
                .map(|s| (s, "service_started".to_string()))
                .collect(),
        };
        services.push(Service {
            name: name.clone(),
            image: image.to_string(),
            has_build: def.get("build").is_some(),
            argv,
            volumes,
            environment,
            ports: def.get("ports").map(|v| strings(v, &what("ports"))).unwrap_or_default(),
            healthcheck: def.at(&["healthcheck", "test"]).map(|v| strings(v, &what("healthcheck.test"))),
            depends_on,
            profiles: def.get("profiles").map(|v| strings(v, &what("profiles"))).unwrap_or_default(),
        });
    }
    let volumes = y.get("volumes").and_then(Yaml::as_map).map(|m| m.iter().map(|(k, _)| k.clone()).collect());
    Compose { services, volumes: volumes.unwrap_or_default() }
}

impl Compose {
    fn service(&self, name: &str) -> &Service {
        self.services.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no service {name}"))
    }

    fn runs(&self, what: &str) -> Vec<&Service> {
        self.services.iter().filter(|s| s.argv.join(" ").contains(what)).collect()
    }

    fn keepers(&self) -> Vec<&Service> {
        self.runs("sluice keeper start")
    }

    fn brokers(&self) -> Vec<&Service> {
        self.runs("broker start")
    }

    fn certs(&self) -> &Service {
        match &self.runs("sluice certs init")[..] {
            [s] => s,
            other => panic!("expected one service running `sluice certs init`, found {}", other.len()),
        }
    }

    /// The service the README's `docker-compose run --rm cli ...` uses.
    fn cli(&self) -> &Service {
        self.service("cli")
    }
}

/// `key=value` lines of a properties file (comments and blank lines skipped).
fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not key=value: {l:?}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

fn prop<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A compose host name and a port.
type HostPort = (String, u16);

/// `HOST:PORT` → (host, port).
/// The `HOST:PORT` of the `scheme://` entry of a `listeners`-style value.
fn listener<'a>(props: &'a [(String, String)], key: &str, scheme: &str) -> Option<&'a str> {
    prop(props, key)?.split(',').find_map(|entry| {
        let (name, addr) = entry.trim().split_once("://")?;
        name.eq_ignore_ascii_case(scheme).then_some(addr)
    })
}

fn host_port(s: &str) -> HostPort {
    let (h, p) = s.rsplit_once(':').unwrap_or_else(|| panic!("not host:port: {s:?}"));
    (h.to_string(), p.parse().unwrap_or_else(|_| panic!("bad port in {s:?}")))
}

/// Keys holding a port that the service itself listens on (TCP for metrics, UDP for QUIC).
const UDP_PORT_KEYS: &[&str] = &["clientPort"];
const TCP_PORT_KEYS: &[&str] = &["metricsProvider.httpPort", "metrics.port", "secureClientPort"];

/// Every (service, port) a keeper or broker listens on, from its config: (UDP ones, TCP ones).
fn listening_ports(compose: &Compose) -> (Vec<HostPort>, Vec<HostPort>) {
    let (mut udp, mut tcp) = (BTreeSet::new(), BTreeSet::new());
    for (svc, what) in compose
        .keepers()
        .into_iter()
        .map(|s| (s, "keeper"))
        .chain(compose.brokers().into_iter().map(|s| (s, "broker")))
    {
        let props = properties(&read(&svc.config_source(what)));
        for (k, v) in &props {
            let port = || v.parse::<u16>().unwrap_or_else(|_| panic!("{}: {k}={v} is not a port", svc.name));
            if UDP_PORT_KEYS.contains(&k.as_str()) {
                udp.insert((svc.name.clone(), port()));
            } else if TCP_PORT_KEYS.contains(&k.as_str()) {
                tcp.insert((svc.name.clone(), port()));
            } else if k.starts_with("server.") {
                udp.insert(host_port(v));
            } else if k == "listeners" {
                // quic:// is UDP; Kafka's SSL:// and PLAINTEXT:// are TCP.
                for entry in v.split(',') {
                    let (scheme, addr) = entry.split_once("://").expect("listeners=NAME://HOST:PORT,...");
                    let (_, p) = host_port(addr);
                    if scheme.eq_ignore_ascii_case("quic") {
                        udp.insert((svc.name.clone(), p));
                    } else {
                        tcp.insert((svc.name.clone(), p));
                    }
                }
            }
        }
    }
    (udp.into_iter().collect(), tcp.into_iter().collect())
}

// ---------------------------------------------------------------------------------------
// The topology on this machine

/// Where the compose topology lives as local processes: ports, volumes, mounted files.
#[derive(Debug)]
struct Local {
    dir: tempfile::TempDir,
    /// (compose host, container port) → local port on 127.0.0.1.
    ports: HashMap<HostPort, u16>,
    /// Service → (container path → local path), longest container path first.
    paths: HashMap<String, Vec<(String, PathBuf)>>,
    /// The directory holding `sluice` (first on every child's PATH).
    bin_dir: PathBuf,
}

fn free_tcp_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr").port()).collect()
}

/// Replaces `from` in `text` where it is not part of a longer word or path (`/data` in
/// `/data/myid` yes, in `/database` no; `keeper-1:2181` in `keeper-1:21810` no).
fn replace_bounded(text: &str, from: &str, to: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let mut out = String::new();
    let mut copied = 0;
    for (at, _) in text.match_indices(from) {
        let before = text[..at].chars().last();
        let after = text[at + from.len()..].chars().next();
        let part_of_path = from.starts_with('/') && before == Some('/');
        if !word(before) && !word(after) && !part_of_path {
            out.push_str(&text[copied..at]);
            out.push_str(to);
            copied = at + from.len();
        }
    }
    out.push_str(&text[copied..]);
    out
}

impl Local {
    fn new(compose: &Compose) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (udp, tcp) = listening_ports(compose);
        let mut ports = HashMap::new();
        for (key, port) in udp.iter().zip(free_udp_ports(udp.len())) {
            ports.insert(key.clone(), port);
        }
        // A port a service serves on UDP and TCP both (a keeper's clientPort and
        // secureClientPort) keeps its UDP number, which must then be free for TCP too.
        let tcp_only: Vec<&HostPort> = tcp.iter().filter(|k| !ports.contains_key(*k)).collect();
        for (key, port) in tcp_only.into_iter().zip(free_tcp_ports(tcp.len())) {
            ports.insert(key.clone(), port);
        }
        for key in tcp.iter().filter(|k| udp.contains(k)) {
            let port = ports[key];
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "{key:?}: local port {port} is free for UDP but not for TCP; run the test again"
            );
        }
        let volumes: HashMap<&str, PathBuf> = compose
            .volumes
            .iter()
            .map(|v| {
                let p = dir.path().join("volumes").join(v);
                std::fs::create_dir_all(&p).expect("volume directory");
                (v.as_str(), p)
            })
            .collect();
        let mut local = Local {
            paths: HashMap::new(),
            ports,
            bin_dir: sluice_bin().parent().expect("bin dir").to_path_buf(),
            dir,
        };
        let sluice: Vec<&Service> = compose.services.iter().filter(|s| s.image == SLUICE_IMAGE).collect();
        // Named volumes first, so mounted files can be rewritten with every path known.
        for svc in &sluice {
            let mut paths = Vec::new();
            for (source, target) in &svc.volumes {
                if let Some(v) = volumes.get(source.as_str()) {
                    paths.push((target.clone(), v.clone()));
                } else {
                    assert!(
                        source.starts_with("./"),
                        "{}: volume {source} is neither named nor a repository path",
                        svc.name
                    );
                    let file = local.dir.path().join(&svc.name).join(target.trim_start_matches('/'));
                    paths.push((target.clone(), file));
                }
            }
            paths.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
            local.paths.insert(svc.name.clone(), paths);
        }
        for svc in &sluice {
            for (source, target) in &svc.volumes {
                if !source.starts_with("./") {
                    continue;
                }
                let text = local.rewrite_config(svc, &read(source.trim_start_matches("./")));
                let file = local.path(svc, target);
                std::fs::create_dir_all(file.parent().expect("parent")).expect("mount directory");
                std::fs::write(&file, text).expect("write mounted file");
            }
        }
        local
    }

    fn path(&self, svc: &Service, target: &str) -> PathBuf {
        self.paths[&svc.name].iter().find(|(t, _)| t == target).map(|(_, p)| p.clone()).expect("mounted path")
    }

    fn port(&self, host: &str, port: u16) -> u16 {
        *self
            .ports
            .get(&(host.to_string(), port))
            .unwrap_or_else(|| panic!("no local port for {host}:{port}"))
    }

    /// A command-line word, an environment value or a line of a mounted file of `svc`, with
    /// compose host names, this service's listening addresses and mounted paths made local.
    fn rewrite(&self, svc: &Service, text: &str) -> String {
        let mut out = text.to_string();
        let mut ports: Vec<(&HostPort, &u16)> = self.ports.iter().collect();
        ports.sort_by_key(|((h, _), _)| std::cmp::Reverse(h.len()));
        for ((host, port), local) in ports {
            out = replace_bounded(&out, &format!("{host}:{port}"), &format!("127.0.0.1:{local}"));
            if *host == svc.name {
                out = replace_bounded(&out, &format!("0.0.0.0:{port}"), &format!("127.0.0.1:{local}"));
            }
        }
        for (target, local) in self.paths.get(&svc.name).into_iter().flatten() {
            out = replace_bounded(&out, target, &local.display().to_string());
        }
        out
    }

    /// A mounted properties file of `svc`: [`rewrite`](Self::rewrite), the ports it
    /// listens on made local, and every address it binds made 127.0.0.1 (this machine is
    /// shared with other tests).
    fn rewrite_config(&self, svc: &Service, text: &str) -> String {
        let mut out = String::new();
        for line in text.lines() {
            let line = match line.split_once('=') {
                Some((k, v))
                    if !line.starts_with('#')
                        && (UDP_PORT_KEYS.contains(&k) || TCP_PORT_KEYS.contains(&k)) =>
                {
                    format!("{k}={}", self.port(&svc.name, v.parse().expect("port")))
                }
                _ => self.rewrite(svc, line),
            };
            out.push_str(&replace_bounded(&line, "0.0.0.0", "127.0.0.1"));
            out.push('\n');
        }
        for other in self.ports.keys().map(|(h, _)| h) {
            assert!(
                !out.contains(&format!("={other}:"))
                    && !out.contains(&format!(",{other}:"))
                    && !out.contains(&format!("//{other}:")),
                "{}: {other} left in\n{out}",
                svc.name
            );
        }
        out
    }

    fn argv(&self, svc: &Service, argv: &[String]) -> Vec<String> {
        argv.iter().map(|a| self.rewrite(svc, a)).collect()
    }

    fn env(&self, svc: &Service) -> Vec<(String, String)> {
        svc.environment.iter().map(|(k, v)| (k.clone(), self.rewrite(svc, v))).collect()
    }

    /// A command as the container would run it: a clean environment with `sluice` first on
    /// PATH, the service's environment, its own process group (so a shell and what it
    /// started are killed together).
    fn command(&self, argv: &[String], env: &[(String, String)]) -> Command {
        let mut program = argv[0].clone();
        if program == "sluice" {
            program = sluice_bin().display().to_string();
        }
        let mut cmd = Command::new(program);
        cmd.args(&argv[1..])
            .env_clear()
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin_dir.display()))
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .process_group(0);
        cmd
    }

    /// A service's health check command (CMD or CMD-SHELL), rewritten.
    fn healthcheck(&self, svc: &Service) -> Vec<String> {
        let test = svc.healthcheck.as_ref().unwrap_or_else(|| panic!("{} has no healthcheck", svc.name));
        match test.first().map(String::as_str) {
            Some("CMD") => self.argv(svc, &test[1..]),
            Some("CMD-SHELL") => {
                assert_eq!(test.len(), 2, "{}: CMD-SHELL takes one string", svc.name);
                vec!["/bin/sh".into(), "-c".into(), self.rewrite(svc, &test[1])]
            }
            other => panic!("{}: healthcheck test {other:?}", svc.name),
        }
    }
}

/// Kills the process group `pid` leads (a process this test started with `process_group(0)`).
fn kill_group(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
}

/// The outcome of a bounded command.
#[derive(Debug)]
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// A child killed (with its process group) when dropped, on every path.
#[derive(Debug)]
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            kill_group(self.0.id());
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to its end, feeding `stdin`; kills it (and its group) after `within`.
fn run(mut cmd: Command, stdin: Option<&str>, within: Duration) -> Ran {
    let mut child = Reaped(
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
    );
    if let Some(text) = stdin {
        let mut input = child.0.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    let collect = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = collect(Box::new(child.0.stdout.take().expect("stdout")));
    let err = collect(Box::new(child.0.stderr.take().expect("stderr")));
    let status = poll_until(within, || child.0.try_wait().expect("wait").ok_or_else(String::new)).ok();
    // A command still running is killed here, so its output pipes close.
    drop(child);
    let (stdout, mut stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if status.is_none() {
        stderr.push_str(&format!("\n(killed after {within:?})"));
    }
    Ran { ok: status.is_some_and(|s| s.success()), stdout, stderr }
}

/// Runs `make()`'s command until it succeeds; panics with the last outcome after `within`.
fn until_ok(what: &str, within: Duration, mut make: impl FnMut() -> Command) -> Ran {
    let deadline = Instant::now() + within;
    let mut last = None;
    let ok = poll_until(within, || {
        let left = deadline.saturating_duration_since(Instant::now());
        let ran = run(make(), None, left.clamp(Duration::from_secs(1), Duration::from_secs(10)));
        if ran.ok {
            Ok(ran)
        } else {
            last = Some(ran);
            Err(String::new())
        }
    });
    ok.unwrap_or_else(|_| {
        let ran = last.unwrap_or(Ran { ok: false, stdout: String::new(), stderr: String::new() });
        panic!("{what}: still failing after {within:?}\nstdout: {}\nstderr: {}", ran.stdout, ran.stderr)
    })
}

/// A keeper or broker started from its service's command line; SIGKILLed (with its process
/// group) when dropped, on every path.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(local: &Local, svc: &Service) -> Self {
        let log = local.dir.path().join(format!("{}.log", svc.name));
        let mut cmd = local.command(&local.argv(svc, &svc.argv), &local.env(svc));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", svc.name));
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { name: svc.name.clone(), child: Some(child), log, lines }
    }

    /// The rest of the first line starting with `prefix`; panics with the log if the process
    /// exits or `within` passes first.
    fn wait_line(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{}: no line starting {prefix:?} within {within:?} (its log follows)", self.name)
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited before a line starting {prefix:?} (its log follows)", self.name)
                }
            }
        }
    }

    /// `http://host:port/metrics` from the line it prints before it listens.
    fn start_up(&self, what: &str, within: Duration) -> (String, Option<String>) {
        let first = self.wait_line("", within);
        let (metrics, listen) = match first.strip_prefix(&format!("{what} metrics at ")) {
            Some(m) => (Some(m.to_string()), self.wait_line(&format!("{what} listening on "), within)),
            None => {
                let addr = first.strip_prefix(&format!("{what} listening on ")).unwrap_or_else(|| {
                    panic!("{}: unexpected first line {first:?}", self.name);
                });
                (None, addr.to_string())
            }
        };
        (listen, metrics)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- {} ---\n{}", self.name, tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tests

/// The whole topology from the compose file's own command lines, config files and health
/// checks: certificates, a 3-member keeper ensemble, 3 brokers, an RF=3 topic through the
/// `cli` service's environment, and every metrics endpoint.
#[test]
fn the_compose_topology_runs_from_its_own_command_lines_and_configs() {
    let compose = load_compose();
    let local = Local::new(&compose);
    let (keepers, brokers) = (compose.keepers(), compose.brokers());
    assert_eq!((keepers.len(), brokers.len()), (3, 3), "3 keepers and 3 brokers");

    // Certificates: the certs service's script. Each node certificate carries its name (the
    // compose host name) and, from `certs init` itself, localhost, 127.0.0.1 and ::1: that
    // is why the processes here can be dialled as 127.0.0.1 without a --san.
    let certs = compose.certs();
    let cmd = || local.command(&local.argv(certs, &certs.argv), &local.env(certs));
    let first = run(cmd(), None, Duration::from_secs(60));
    assert!(first.ok, "certs: {}\n{}", first.stdout, first.stderr);
    let ca = local.path(certs, "/certs").join("ca.pem");
    let ca_pem = std::fs::read(&ca).expect("ca.pem");
    // Idempotent: `docker-compose up` runs it again on every start.
    let again = run(cmd(), None, Duration::from_secs(60));
    assert!(again.ok, "certs again: {}\n{}", again.stdout, again.stderr);
    assert_eq!(std::fs::read(&ca).expect("ca.pem"), ca_pem, "a second run kept the CA");

    // Keepers: started together (as compose starts them once certs has completed), then
    // each one's health check must pass: it follows a leader.
    let keeper_procs: Vec<Proc> = keepers.iter().map(|k| Proc::spawn(&local, k)).collect();
    let mut metrics = Vec::new();
    for p in &keeper_procs {
        let (_, m) = p.start_up("keeper", Duration::from_secs(30));
        metrics.push((p.name.clone(), m.expect("keeper metrics endpoint")));
    }
    for k in &keepers {
        until_ok(&format!("{} healthcheck", k.name), Duration::from_secs(40), || {
            local.command(&local.healthcheck(k), &local.env(k))
        });
    }

    // Brokers: after every keeper is healthy (their depends_on), then their health checks.
    let broker_procs: Vec<Proc> = brokers.iter().map(|b| Proc::spawn(&local, b)).collect();
    for p in &broker_procs {
        let (_, m) = p.start_up("broker", Duration::from_secs(40));
        metrics.push((p.name.clone(), m.expect("broker metrics endpoint")));
    }
    for b in &brokers {
        until_ok(&format!("{} healthcheck", b.name), Duration::from_secs(40), || {
            local.command(&local.healthcheck(b), &local.env(b))
        });
    }

    // The `cli` service as `docker-compose run --rm cli ...` runs it.
    let cli = compose.cli();
    let tool = |args: &[&str]| {
        let mut argv = local.argv(cli, &cli.argv);
        argv.extend(args.iter().map(|a| local.rewrite(cli, a)));
        local.command(&argv, &local.env(cli))
    };

    // Every broker registered, seen through the keeper connect string the brokers use.
    let broker_props = properties(&read(&brokers[0].config_source("broker")));
    let connect = prop(&broker_props, "zookeeper.connect").expect("zookeeper.connect");
    let want: BTreeSet<String> = brokers
        .iter()
        .map(|b| {
            prop(&properties(&read(&b.config_source("broker"))), "broker.id").expect("broker.id").to_string()
        })
        .collect();
    let registered = poll_until(Duration::from_secs(40), || {
        let ran = run(tool(&["keeper-shell", connect, "ls", "/brokers/ids"]), None, Duration::from_secs(10));
        let ids: BTreeSet<String> = ran
            .stdout
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if ran.ok && ids == want {
            Ok(())
        } else {
            Err(format!("brokers registered: {ids:?}, want {want:?}\n{}", ran.stderr))
        }
    });
    if let Err(last) = registered {
        panic!("{last}");
    }

    // ZooKeeper's own clients: the door on every keeper's secureClientPort, the same number
    // as its QUIC clientPort (as the seed's `nc -v keeper-1 2181` finds it).
    let certs_dir = local.path(compose.certs(), "/certs");
    let cli_tls = sluice_net::TlsFiles {
        ca: certs_dir.join("ca.pem"),
        cert: certs_dir.join("cli.pem"),
        key: certs_dir.join("cli.key"),
    };
    for k in &keepers {
        let props = properties(&read(&k.config_source("keeper")));
        let secure =
            prop(&props, "secureClientPort").expect("secureClientPort").parse::<u16>().expect("port");
        assert_eq!(
            prop(&props, "clientPort"),
            Some(secure.to_string().as_str()),
            "{}: one port number",
            k.name
        );
        let port = local.ports[&(k.name.clone(), secure)];
        let answer = sluice_tests::zookeeper_word(&format!("127.0.0.1:{port}"), &cli_tls, "ruok")
            .unwrap_or_else(|e| panic!("{}: ruok over TLS: {e}", k.name));
        assert_eq!(answer, "imok", "{}", k.name);
    }

    // A topic on all three brokers (retried while the controller is still learning of
    // them), records in with acks=all and out again.
    until_ok("create an RF=3 topic", Duration::from_secs(40), || {
        tool(&[
            "topics",
            "--create",
            "--if-not-exists",
            "--topic",
            "compose",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ])
    });
    let in_sync = poll_until(Duration::from_secs(40), || {
        let ran = run(tool(&["topics", "--describe", "--topic", "compose"]), None, Duration::from_secs(10));
        let partitions: Vec<&str> = ran.stdout.lines().filter(|l| l.contains("\tPartition: ")).collect();
        let full = |l: &&str| l.split("\tIsr: ").nth(1).is_some_and(|isr| isr.trim().split(',').count() == 3);
        if ran.ok && partitions.len() == 3 && partitions.iter().all(full) {
            Ok(())
        } else {
            Err(format!("{}\n{}", ran.stdout, ran.stderr))
        }
    });
    if let Err(last) = in_sync {
        panic!("every partition with 3 in-sync replicas:\n{last}");
    }
    let records = "k1:one\nk2:two\nk3:three\nk4:four\nk5:five\n";
    let produced = run(
        tool(&[
            "console-producer",
            "--topic",
            "compose",
            "--producer-property",
            "acks=all",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ]),
        Some(records),
        Duration::from_secs(30),
    );
    assert!(produced.ok, "produce: {}\n{}", produced.stdout, produced.stderr);
    let consumed = run(
        tool(&[
            "console-consumer",
            "--topic",
            "compose",
            "--from-beginning",
            "--max-messages",
            "5",
            "--timeout-ms",
            "20000",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=:",
        ]),
        None,
        Duration::from_secs(40),
    );
    assert!(consumed.ok, "consume: {}\n{}", consumed.stdout, consumed.stderr);
    let mut got: Vec<&str> = consumed.stdout.lines().collect();
    let mut want: Vec<&str> = records.lines().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);

    // Kafka's own clients: kcat reads the same records through the SSL listener broker-1
    // advertises, with the cli certificate.
    let kcat = sluice_tests::peer("kcat", "apt-get install kcat");
    let ssl = listener(&broker_props, "advertised.listeners", "SSL").expect("broker-1 advertises SSL");
    let certs_dir = local.path(compose.certs(), "/certs");
    let mut kcat_cmd = Command::new(kcat);
    kcat_cmd.args([
        "-C",
        "-b",
        &local.rewrite(cli, ssl),
        "-t",
        "compose",
        "-o",
        "beginning",
        "-e",
        "-f",
        "%k:%s\n",
    ]);
    for (k, file) in [
        ("ssl.ca.location", "ca.pem"),
        ("ssl.certificate.location", "cli.pem"),
        ("ssl.key.location", "cli.key"),
    ] {
        kcat_cmd.args(["-X", &format!("{k}={}", certs_dir.join(file).display())]);
    }
    kcat_cmd.args(["-X", "security.protocol=ssl"]);
    let read = run(kcat_cmd, None, Duration::from_secs(40));
    assert!(read.ok, "kcat over SSL: {}\n{}", read.stdout, read.stderr);
    let mut got: Vec<&str> = read.stdout.lines().collect();
    got.sort_unstable();
    assert_eq!(got, want, "kcat read what the console tools wrote");

    // Every endpoint Prometheus scrapes answers, with Prometheus text.
    for (name, url) in &metrics {
        let (status, body) = http_get(url).unwrap_or_else(|e| panic!("{name}: GET {url}: {e}"));
        assert_eq!(status, 200, "{name}: GET {url}: {body}");
        if name.starts_with("keeper") {
            assert!(body.contains("sluice_keeper_quorum 1"), "{name}: {body}");
        }
    }
    drop(broker_procs);
    drop(keeper_procs);
}

/// Start order, health gating, published ports, certificate names and the `cli` service.
#[test]
fn services_start_in_order_and_name_what_they_dial() {
    let compose = load_compose();
    let (keepers, brokers) = (compose.keepers(), compose.brokers());
    let certs = compose.certs();
    let certs_script = certs.argv.join(" ");
    for svc in compose.services.iter().filter(|s| s.image == SLUICE_IMAGE) {
        assert!(svc.has_build, "{}: builds {SLUICE_IMAGE} from the Dockerfile", svc.name);
    }
    // Node certificates are named after the keeper and broker services (their host names).
    let words: Vec<&str> = certs_script.split_whitespace().collect();
    let named = |flag: &str| -> BTreeSet<String> {
        words.windows(2).filter(|w| w[0] == flag).map(|w| w[1].trim_end_matches(';').to_string()).collect()
    };
    let nodes: BTreeSet<String> = keepers.iter().chain(&brokers).map(|s| s.name.clone()).collect();
    assert_eq!(named("--node"), nodes, "{certs_script}");
    assert!(named("--client").contains("cli"), "{certs_script}");
    for k in &keepers {
        assert!(
            k.depends_on.contains(&(certs.name.clone(), "service_completed_successfully".into())),
            "{}: waits for the certificates: {:?}",
            k.name,
            k.depends_on
        );
        let props = properties(&read(&k.config_source("keeper")));
        let cert = prop(&props, "tls.cert.file").expect("tls.cert.file");
        assert_eq!(cert, format!("/certs/{}.pem", k.name));
        // myid: the command writes the id that this member's server.N line names.
        let script = k.argv.join(" ");
        let id = script
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(4)
            .find(|w| w[0] == "echo" && w[2] == ">" && w[3] == "/data/myid")
            .map(|w| w[1].to_string())
            .unwrap_or_else(|| panic!("{}: writes /data/myid: {script}", k.name));
        let own = prop(&props, &format!("server.{id}")).unwrap_or_else(|| panic!("{}: server.{id}", k.name));
        assert_eq!(host_port(own).0, k.name);
        assert_eq!(prop(&props, "dataDir"), Some("/data"));
    }
    for b in &brokers {
        for k in &keepers {
            assert!(
                b.depends_on.contains(&(k.name.clone(), "service_healthy".into())),
                "{}: waits for {} to be healthy: {:?}",
                b.name,
                k.name,
                b.depends_on
            );
        }
        let props = properties(&read(&b.config_source("broker")));
        assert_eq!(prop(&props, "tls.cert.file"), Some(format!("/certs/{}.pem", b.name).as_str()));
        let listen = listener(&props, "listeners", "quic").expect("a quic:// listener");
        let advertised = listener(&props, "advertised.listeners", "quic").expect("an advertised quic://");
        let (lport, (ahost, aport)) = (host_port(listen).1, host_port(advertised));
        assert_eq!((ahost.as_str(), aport), (b.name.as_str(), lport), "{}: advertises its host name", b.name);
        // Kafka's own clients: the SSL listener, advertised the same way.
        let ssl = listener(&props, "listeners", "SSL").expect("an SSL:// listener");
        let advertised_ssl = listener(&props, "advertised.listeners", "SSL").expect("an advertised SSL://");
        let (sport, (shost, sadv)) = (host_port(ssl).1, host_port(advertised_ssl));
        assert_eq!(
            (shost.as_str(), sadv),
            (b.name.as_str(), sport),
            "{}: advertises SSL under its host name",
            b.name
        );
        // Published under the same numbers, so the advertised addresses work from the host too.
        assert_eq!(b.ports, vec![format!("{lport}:{lport}/udp"), format!("{sport}:{sport}")], "{}", b.name);
        let connect = prop(&props, "zookeeper.connect").expect("zookeeper.connect");
        let hosts: BTreeSet<String> =
            connect.split('/').next().expect("hosts").split(',').map(|h| host_port(h).0).collect();
        assert_eq!(hosts, keepers.iter().map(|k| k.name.clone()).collect(), "{}", b.name);
        assert_eq!(prop(&props, "default.replication.factor"), Some("3"));
        assert_eq!(prop(&props, "offsets.topic.replication.factor"), Some("3"));
    }
    // The cli service reaches every broker at its advertised address.
    let cli = compose.cli();
    assert!(cli.profiles.contains(&"tools".to_string()), "cli is not started by `up`");
    let env: BTreeMap<&str, &str> = cli.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let bootstrap: BTreeSet<String> = env["SLUICE_BOOTSTRAP_SERVER"].split(',').map(str::to_string).collect();
    let advertised: BTreeSet<String> = brokers
        .iter()
        .map(|b| {
            let props = properties(&read(&b.config_source("broker")));
            listener(&props, "advertised.listeners", "quic").expect("advertised").to_string()
        })
        .collect();
    assert_eq!(bootstrap, advertised);
    assert_eq!(env["SLUICE_TLS_CERT"], "/certs/cli.pem");
}

/// Prometheus scrapes exactly the keepers' and brokers' metrics ports; Grafana's data
/// sources and dashboard folder point at the compose services and mounts.
#[test]
fn prometheus_scrapes_every_metrics_port_and_grafana_finds_its_sources() {
    let compose = load_compose();
    let mut want = BTreeSet::new();
    for k in compose.keepers() {
        let props = properties(&read(&k.config_source("keeper")));
        let port = prop(&props, "metricsProvider.httpPort")
            .unwrap_or_else(|| panic!("{} has no metrics port", k.name));
        want.insert(format!("{}:{port}", k.name));
    }
    for b in compose.brokers() {
        let props = properties(&read(&b.config_source("broker")));
        let port = prop(&props, "metrics.port").unwrap_or_else(|| panic!("{} has no metrics port", b.name));
        want.insert(format!("{}:{port}", b.name));
    }
    let prometheus = compose.service("prometheus");
    let config = prometheus.bind_source("/etc/prometheus/prometheus.yml").expect("prometheus.yml mounted");
    let y = read_yaml(config.trim_start_matches("./"));
    let mut targets = BTreeSet::new();
    for job in y.get("scrape_configs").and_then(Yaml::as_seq).expect("scrape_configs") {
        for sc in job.get("static_configs").and_then(Yaml::as_seq).expect("static_configs") {
            for t in sc.get("targets").and_then(Yaml::strings).expect("targets") {
                assert!(targets.insert(t.clone()), "{t} scraped twice");
            }
        }
    }
    assert_eq!(targets, want, "{config}: scrape targets against the services' metrics ports");

    // Grafana: data sources by compose service name and container port.
    let grafana = compose.service("grafana");
    let provisioning = grafana.bind_source("/etc/grafana/provisioning").expect("provisioning mounted");
    let container_ports = |name: &str| -> Vec<u16> {
        compose
            .service(name)
            .ports
            .iter()
            .map(|p| {
                p.split('/')
                    .next()
                    .and_then(|p| p.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                    .expect("port")
            })
            .collect()
    };
    let sources =
        read_yaml(&format!("{}/datasources/datasources.yml", provisioning.trim_start_matches("./")));
    let mut types = BTreeSet::new();
    for ds in sources.get("datasources").and_then(Yaml::as_seq).expect("datasources") {
        let url = ds.get("url").and_then(Yaml::as_str).expect("url");
        let (host, port) = host_port(url.strip_prefix("http://").expect("http URL"));
        assert!(
            container_ports(&host).contains(&port),
            "{url}: {host} serves on {:?}",
            container_ports(&host)
        );
        types.insert(ds.get("type").and_then(Yaml::as_str).expect("type").to_string());
    }
    assert_eq!(types, BTreeSet::from(["jaeger".to_string(), "prometheus".to_string()]));
    let dashboards =
        read_yaml(&format!("{}/dashboards/dashboards.yml", provisioning.trim_start_matches("./")));
    let providers = dashboards.get("providers").and_then(Yaml::as_seq).expect("providers");
    let path = providers[0].at(&["options", "path"]).and_then(Yaml::as_str).expect("options.path");
    let source = grafana.bind_source(path).unwrap_or_else(|| panic!("{path} is not mounted into grafana"));
    assert!(repo().join(source).is_dir(), "{source}");
    // Jaeger takes OTLP.
    let jaeger = compose.service("jaeger");
    assert!(jaeger.environment.contains(&("COLLECTOR_OTLP_ENABLED".into(), "true".into())));
    assert!(container_ports("jaeger").contains(&4317));
}

/// `docker-compose config -q` accepts the file. Without `docker-compose` the test fails and
/// names the install command (`.ci/run` installs it): it never passes unchecked.
#[test]
fn docker_compose_accepts_the_file() {
    let present = Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        present,
        "this test runs `docker-compose config -q` and docker-compose is not installed: \
         apt-get install docker-compose (.ci/run does)"
    );
    let mut cmd = Command::new("docker-compose");
    cmd.args(["-f", "docker-compose.yml", "config", "-q"]).current_dir(repo());
    let ran = run(cmd, None, Duration::from_secs(60));
    assert!(ran.ok, "docker-compose config -q: {}\n{}", ran.stdout, ran.stderr);
}
