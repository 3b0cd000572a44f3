//! Fixtures for Sluice's integration tests.
//!
//! - [`TestPki`]: a throwaway CA in a temporary directory that issues node and client
//!   certificates (and expired ones), deleted on drop.
//! - [`PerfServerHandle`]: a `sluice-perf/1` server on `127.0.0.1:0`, stopped on drop.
//! - [`wait_for`] (async) and [`poll_until`] (blocking): poll a condition until a deadline
//!   instead of sleeping.
//! - [`sluice_bin`]: the `sluice` executable built alongside the tests.
//! - [`KeeperProcess`]: a real `sluice keeper start` process on a free port, killable with
//!   SIGKILL and restartable on the same port and data directory.
//! - [`KeeperEnsemble`]: N such processes forming an ensemble on loopback.
//! - [`linearizability`], [`dir_model`]: the checkers of `sluice-checker`, re-exported, and the
//!   workloads that record keeper histories for them.
//! - [`yaml`]: a reader for the part of YAML the deployment files (docker-compose.yml,
//!   deploy/) use, refusing the rest.

pub mod dir_model;
pub mod group_ledger;
pub mod lazyfs;
pub mod linearizability;
pub mod nemesis;
pub mod yaml;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_certs::{CertAuthority, CertSpec, Role};
use sluice_net::perf::{Perf, PerfServer};
use sluice_net::{
    Client, ClientOptions, ClientTls, Connection, Server, ServerOptions, TlsFiles, TlsIdentity, Typed,
};

/// A throwaway CA and the certificates it issues, in a temporary directory.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca: CertAuthority,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").field("dir", &self.dir.path()).finish()
    }
}

impl TestPki {
    /// A new CA named `name`, written to a fresh temporary directory.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = CertAuthority::generate(name).expect("generate CA");
        ca.write(dir.path()).expect("write CA");
        TestPki { dir, ca }
    }

    /// The directory holding `ca.pem`, `ca.key` and every issued `NAME.pem` / `NAME.key`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Issues (and writes) a certificate made from `spec`; returns its files.
    pub fn issue(&self, spec: CertSpec) -> TlsFiles {
        let cert = self.ca.issue(&spec).expect("issue certificate");
        cert.write(self.dir()).expect("write certificate");
        self.files(&spec.name)
    }

    /// The file paths of certificate `name`.
    pub fn files(&self, name: &str) -> TlsFiles {
        TlsFiles {
            ca: self.dir().join(sluice_certs::CA_CERT_FILE),
            cert: sluice_certs::IssuedCert::cert_path(self.dir(), name),
            key: sluice_certs::IssuedCert::key_path(self.dir(), name),
        }
    }

    /// A node identity named `name`.
    pub fn node(&self, name: &str) -> TlsIdentity {
        TlsIdentity::load(&self.issue(CertSpec::new(name, Role::Node))).expect("load node identity")
    }

    /// A client identity named `name`.
    pub fn client(&self, name: &str) -> ClientTls {
        ClientTls::new(
            TlsIdentity::load(&self.issue(CertSpec::new(name, Role::Client))).expect("load client"),
        )
    }

    /// An identity whose certificate expired yesterday.
    pub fn expired(&self, name: &str, role: Role) -> TlsIdentity {
        let now = time::OffsetDateTime::now_utc();
        let spec = CertSpec::new(name, role)
            .valid_between(now - time::Duration::days(30), now - time::Duration::days(1));
        TlsIdentity::load(&self.issue(spec)).expect("load expired identity")
    }
}

/// A `sluice-perf/1` server running in this process, stopped when dropped.
#[derive(Debug)]
pub struct PerfServerHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PerfServerHandle {
    /// Starts a server with `identity` on `addr` (use port 0 for a free port).
    pub fn start_on(addr: SocketAddr, identity: &TlsIdentity, opts: ServerOptions) -> Self {
        Self::try_start_on(addr, identity, opts).expect("bind perf server")
    }

    /// [`start_on`](Self::start_on), returning a bind failure (the port still held by a
    /// server that is going away) instead of panicking.
    pub fn try_start_on(
        addr: SocketAddr,
        identity: &TlsIdentity,
        opts: ServerOptions,
    ) -> Result<Self, sluice_net::ServerError> {
        let server = Server::<Perf>::bind(addr, identity, opts)?;
        let addr = server.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(Arc::new(Typed(PerfServer::default())), async move {
            let _ = stopped.await;
        }));
        Ok(PerfServerHandle { addr, stop: Some(stop), task: Some(task) })
    }

    /// Starts a server named `name` with default options on a free loopback port.
    pub fn start(identity: &TlsIdentity, name: &str) -> Self {
        let opts = ServerOptions { name: name.into(), ..ServerOptions::default() };
        Self::start_on("127.0.0.1:0".parse().expect("addr"), identity, opts)
    }

    /// A client presenting `tls`, and its first connection to this server.
    pub async fn connect(&self, tls: &ClientTls, opts: ClientOptions) -> (Client<Perf>, Connection<Perf>) {
        let client = Client::<Perf>::new(tls, opts).expect("client");
        let conn = client.connect(&self.addr_string()).await.expect("connect");
        (client, conn)
    }

    /// `host:port` for clients.
    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the server and waits until its socket is closed.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for PerfServerHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The blocking twin of [`wait_for`], for tests without a runtime and conditions that say
/// why they are not met yet: polls `cond` every 50 ms until it returns `Ok` or `within`
/// passes, then gives the last `Err`.
pub fn poll_until<T>(within: Duration, mut cond: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + within;
    loop {
        match cond() {
            Ok(t) => return Ok(t),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Polls `cond` every 20 ms until it returns true or `timeout` passes; returns whether it did.
pub async fn wait_for<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A peer program the test runs (`kcat`, `prometheus`, `python3`), found on `PATH`; a
/// missing one fails the test naming the command that installs it (`.ci/run` runs it), so no
/// test passes without its peer.
pub fn peer(program: &str, install: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file()))
        .unwrap_or_else(|| panic!("this test runs {program} and none is on PATH: {install} (.ci/run does)"))
}

/// Sends process `pid` the signal named `name` (`STOP`, `CONT`, `TERM`, as `kill -NAME`).
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{}", name.trim_start_matches('-')), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// `python3` with the Python modules `modules` (comma-separated, as `import` takes them), or
/// a panic naming `what` and the command that installs it: `install` (`.ci/run` runs it).
pub fn python_with(modules: &str, what: &str, install: &str) -> PathBuf {
    let python = peer("python3", "apt-get install python3");
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "this test runs {what}, and it is missing: {install} (.ci/run does)");
    python
}

/// The `sluice` executable from the same build as the running test.
///
/// Cargo builds it whenever `sluice-bin`'s own integration tests are built, which every
/// workspace test run does.
pub fn sluice_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_sluice") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/sluice
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join(format!("sluice{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p sluice-bin` (or the whole workspace's tests)",
        bin.display()
    );
    bin
}

/// The `--tls-ca FILE --tls-cert FILE --tls-key FILE` arguments for `files`.
pub fn tls_args(files: &TlsFiles) -> Vec<std::ffi::OsString> {
    vec![
        "--tls-ca".into(),
        files.ca.clone().into(),
        "--tls-cert".into(),
        files.cert.clone().into(),
        "--tls-key".into(),
        files.key.clone().into(),
    ]
}

/// `GET` of an `http://host:port/path` URL over a plain TCP connection: (status, body).
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or_else(|| std::io::Error::other("not an http:// URL"))?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// A `sluice keeper start` process with its own config and data directory.
#[derive(Debug)]
pub struct KeeperProcess {
    /// `host:port` it listens on.
    pub addr: String,
    /// The config file.
    pub config: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
    child: Option<std::process::Child>,
    /// Everything the process printed on stderr, appended across restarts.
    pub log: PathBuf,
    /// `http://host:port/metrics`, when the config asks for a metrics endpoint.
    pub metrics: Option<String>,
    /// Environment variables the process gets on top of the test's.
    pub env: Vec<(String, String)>,
    /// `host:port` of the ZooKeeper door over TLS, when `secureClientPort` is set.
    pub zookeeper_tls: Option<String>,
    /// `host:port` of the ZooKeeper door without TLS, when `plaintextClientPort` is set.
    pub zookeeper_plain: Option<String>,
    /// The network namespace it runs in ([`nemesis::Lan`]), if not the test's own.
    pub netns: Option<String>,
}

impl KeeperProcess {
    /// Starts a keeper with certificates from `pki` (node certificate `keeper-1`), files in
    /// `dir`, `tickTime` as given, on a free port.
    pub fn start(pki: &TestPki, dir: &Path, tick_ms: u32) -> Self {
        Self::start_with(pki, dir, tick_ms, "")
    }

    /// [`start`](Self::start) with more config lines (`key=value\n` each).
    pub fn start_with(pki: &TestPki, dir: &Path, tick_ms: u32, extra: &str) -> Self {
        Self::unlaunched(pki, dir, "keeper", 1, 0, tick_ms, extra).launched(&[], None)
    }

    /// Writes `<name>.properties` (data in `<name>-data`, log in `<name>.log`) for server
    /// certificate `keeper-<id>` (see [`keeper_config`]); not started.
    fn unlaunched(
        pki: &TestPki,
        dir: &Path,
        name: &str,
        id: u64,
        client_port: u16,
        tick_ms: u32,
        extra: &str,
    ) -> Self {
        let (config, data_dir) = keeper_config(pki, dir, name, id, client_port, tick_ms, extra);
        KeeperProcess {
            addr: String::new(),
            config,
            data_dir,
            child: None,
            log: dir.join(format!("{name}.log")),
            metrics: None,
            env: Vec::new(),
            zookeeper_tls: None,
            zookeeper_plain: None,
            netns: None,
        }
    }

    /// Starts it with environment variables `env` on top of the test's, inside network
    /// namespace `netns` if given.
    fn launched(mut self, env: &[(&str, &str)], netns: Option<&str>) -> Self {
        self.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.netns = netns.map(str::to_string);
        self.launch();
        self
    }

    /// Starts keeper `keeper-<id>` (files named `keeper-<id>` in `dir`) on `host` (in its
    /// network namespace), serving clients on its address and `client_port`, `tickTime`
    /// `tick_ms`; `extra` carries its `server.N` lines and anything else. Its certificate
    /// names the host's address too.
    pub fn start_in(
        host: &nemesis::Host,
        pki: &TestPki,
        dir: &Path,
        id: u64,
        client_port: u16,
        tick_ms: u32,
        extra: &str,
    ) -> Self {
        let name = write_myid(dir, id);
        let extra = format!("clientPortAddress={}\n{extra}", host.ip);
        Self::unlaunched(pki, dir, &name, id, client_port, tick_ms, &extra).launched(&[], Some(&host.netns))
    }

    fn launch(&mut self) {
        use std::io::BufRead;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut child = sluice_command(self.netns.as_deref())
            .args(["keeper", "start"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start keeper");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = std::io::BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            stdout.read_line(&mut line).expect("read keeper output");
            let l = line.trim();
            if let Some(m) = l.strip_prefix("keeper metrics at ") {
                self.metrics = Some(m.to_string());
            } else if let Some(a) = l.strip_prefix("keeper ZooKeeper door (secureClientPort, TLS) on ") {
                self.zookeeper_tls = Some(a.to_string());
            } else if let Some(a) = l.strip_prefix("keeper ZooKeeper door (plaintextClientPort, no TLS) on ")
            {
                self.zookeeper_plain = Some(a.to_string());
            } else {
                break;
            }
        }
        let addr = line.trim().strip_prefix("keeper listening on ").unwrap_or_else(|| {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("keeper did not start: {line:?}\n{log}")
        });
        self.addr = addr.to_string();
        self.child = Some(child);
    }

    /// SIGKILLs the process and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.addr.rsplit_once(':').map(|(_, p)| p.to_string()).expect("port");
        let mut text = std::fs::read_to_string(&self.config)
            .expect("config")
            .replace("\nclientPort=0", &format!("\nclientPort={port}"));
        for (key, addr) in
            [("secureClientPort", &self.zookeeper_tls), ("plaintextClientPort", &self.zookeeper_plain)]
        {
            if let Some(p) = addr.as_ref().and_then(|a| a.rsplit_once(':')).map(|(_, p)| p.to_string()) {
                text = text.replace(&format!("{key}=0"), &format!("{key}={p}"));
            }
        }
        std::fs::write(&self.config, text).expect("rewrite config");
        self.launch();
    }

    /// The process id (to send signals).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// How the process ended, if it has ended on its own (it is reaped then).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        reap_if_exited(&mut self.child)
    }
}

/// Creates ensemble member `id`'s data directory `<dir>/keeper-<id>-data` with its `myid`;
/// returns the member's name, `keeper-<id>`.
fn write_myid(dir: &Path, id: u64) -> String {
    let name = format!("keeper-{id}");
    let data = dir.join(format!("{name}-data"));
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("myid"), format!("{id}\n")).expect("myid");
    name
}

/// A command running the `sluice` binary, inside network namespace `netns` if given
/// (`ip netns exec` enters it and executes the binary, so the child's pid is sluice's).
pub fn sluice_command(netns: Option<&str>) -> std::process::Command {
    match netns {
        None => std::process::Command::new(sluice_bin()),
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns]).arg(sluice_bin());
            c
        }
    }
}

/// How `child` ended, if it has ended on its own; it is reaped (and forgotten) then.
fn reap_if_exited(child: &mut Option<std::process::Child>) -> Option<std::process::ExitStatus> {
    let status = child.as_mut()?.try_wait().ok().flatten()?;
    *child = None;
    Some(status)
}

/// A tmpfs mounted on a directory (for a disk that fills); unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. "6m") on `at`, an existing directory.
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot mount a tmpfs on {} (this test needs root: mount -t tmpfs)", at.display());
        Tmpfs(at.to_path_buf())
    }

    /// Gives the filesystem a new size (`mount -o remount,size=`), keeping what it holds:
    /// space returning to a full disk.
    pub fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot resize the tmpfs on {}", self.0.display());
    }

    /// Moves what `dir` holds onto a new tmpfs of `size` mounted on it.
    pub fn take_over(dir: &Path, size: &str) -> Tmpfs {
        let saved = dir.with_extension("saved");
        std::fs::rename(dir, &saved).expect("set the directory aside");
        std::fs::create_dir(dir).expect("an empty mount point");
        let mounted = Tmpfs::mount(dir, size);
        let copied = std::process::Command::new("cp").arg("-a").arg(saved.join(".")).arg(dir).status();
        assert!(copied.is_ok_and(|s| s.success()), "copy {} onto the tmpfs", dir.display());
        mounted
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `<dir>/<name>.properties` for a keeper with certificate `keeper-<id>`, data in
/// `<dir>/<name>-data`, the given client port and `tickTime`, and `extra` lines; returns the
/// config file and the data directory (not created).
pub fn keeper_config(
    pki: &TestPki,
    dir: &Path,
    name: &str,
    id: u64,
    client_port: u16,
    tick_ms: u32,
    extra: &str,
) -> (PathBuf, PathBuf) {
    // A keeper on another address (in a network namespace) names it in its certificate.
    let address = extra.lines().find_map(|l| l.strip_prefix("clientPortAddress="));
    let files = pki.issue(CertSpec::new(format!("keeper-{id}"), Role::Node).with_sans(address));
    let data_dir = dir.join(format!("{name}-data"));
    let config = dir.join(format!("{name}.properties"));
    // snapCount 1000 unless the test sets its own.
    let snap = if extra.contains("snapCount=") { "" } else { "snapCount=1000\n" };
    let address = if address.is_some() { "" } else { "clientPortAddress=127.0.0.1\n" };
    let text = format!(
        "tickTime={tick_ms}\ndataDir={}\nclientPort={client_port}\n{address}{snap}tls.ca.file={}\ntls.cert.file={}\ntls.key.file={}\n{extra}",
        data_dir.display(),
        files.ca.display(),
        files.cert.display(),
        files.key.display()
    );
    std::fs::write(&config, text).expect("write keeper config");
    (config, data_dir)
}

/// `n` distinct free UDP ports on 127.0.0.1 (held together while chosen, then released),
/// for servers that must know their ports before they start (a keeper ensemble's members).
///
/// They are picked below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), at
/// random: a port the kernel handed out for `bind(0)` could be handed out again to another
/// test's client endpoint between being chosen here and being bound by its server ("Address
/// already in use"); the kernel never hands out one below the range.
pub fn free_udp_ports(n: usize) -> Vec<u16> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000u16, ephemeral_start);
    if high <= low + 1_000 {
        let sockets: Vec<std::net::UdpSocket> =
            (0..n).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a free port")).collect();
        return sockets.iter().map(|s| s.local_addr().expect("local addr").port()).collect();
    }
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut rng = nemesis::Rng::new(u64::from(std::process::id()) << 32 ^ u64::from(nanos));
    let mut held: Vec<std::net::UdpSocket> = Vec::with_capacity(n);
    for _ in 0..100_000 {
        if held.len() == n {
            break;
        }
        let port = rng.range(u64::from(low), u64::from(high)) as u16;
        if let Ok(s) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            held.push(s);
        }
    }
    assert_eq!(held.len(), n, "no {n} free UDP ports in {low}..{high}");
    held.iter().map(|s| s.local_addr().expect("local addr").port()).collect()
}

/// An ensemble of `sluice keeper start` processes on loopback: members 1..=N, each with
/// its own data directory (with `myid`), client port and peer port, all picked free.
#[derive(Debug)]
pub struct KeeperEnsemble {
    /// Member `i + 1` is `members[i]`.
    pub members: Vec<KeeperProcess>,
}

impl KeeperEnsemble {
    /// Starts `n` members in `dir` with `tickTime` and extra config lines.
    pub fn start(pki: &TestPki, dir: &Path, n: usize, tick_ms: u32, extra: &str) -> Self {
        Self::start_with_env(pki, dir, n, tick_ms, extra, &[])
    }

    /// [`start`](Self::start) with environment variables `env` for every member.
    pub fn start_with_env(
        pki: &TestPki,
        dir: &Path,
        n: usize,
        tick_ms: u32,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let ports = free_udp_ports(2 * n);
        let servers: String =
            (0..n).map(|i| format!("server.{}=127.0.0.1:{}\n", i + 1, ports[n + i])).collect();
        let members = (0..n)
            .map(|i| {
                let id = i as u64 + 1;
                let name = write_myid(dir, id);
                KeeperProcess::unlaunched(
                    pki,
                    dir,
                    &name,
                    id,
                    ports[i],
                    tick_ms,
                    &format!("{servers}{extra}"),
                )
                .launched(env, None)
            })
            .collect();
        KeeperEnsemble { members }
    }

    /// Every member's client address, as a connect string.
    pub fn connect_string(&self) -> String {
        self.members.iter().map(|m| m.addr.as_str()).collect::<Vec<_>>().join(",")
    }

    /// The member (index) that says it leads and that every other live member follows,
    /// waiting up to `timeout`.
    pub async fn leader(&self, tls: &ClientTls, timeout: Duration) -> Option<usize> {
        let found = std::sync::Mutex::new(None);
        let agreed = wait_for(timeout, || async {
            let leader = self.agreed_leader(tls).await;
            *found.lock().unwrap_or_else(|p| p.into_inner()) = leader;
            leader.is_some()
        })
        .await;
        let leader = *found.lock().unwrap_or_else(|p| p.into_inner());
        leader.filter(|_| agreed)
    }

    /// The member that says it leads, if it is the only one and every other live member
    /// follows it.
    async fn agreed_leader(&self, tls: &ClientTls) -> Option<usize> {
        {
            let mut leaders = Vec::new();
            let mut followed = Vec::new();
            for (i, m) in self.members.iter().enumerate() {
                if m.pid().is_none() {
                    continue;
                }
                let status = tokio::time::timeout(
                    Duration::from_secs(2),
                    sluice_client::keeper::KeeperClient::status(&m.addr, tls),
                )
                .await;
                if let Ok(Ok(s)) = status {
                    if s.mode == "leader" {
                        leaders.push(i);
                    }
                    followed.push(s.ensemble.and_then(|e| e.leader));
                }
            }
            match leaders[..] {
                [l] if followed.iter().all(|f| *f == Some(l as u64 + 1)) => Some(l),
                _ => None,
            }
        }
    }
}

impl Drop for KeeperProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `sluice broker start` process with its own `server.properties` and log directory.
#[derive(Debug)]
pub struct BrokerProcess {
    /// `broker.id`.
    pub id: i32,
    /// `host:port` it listens on.
    pub addr: String,
    /// The config file.
    pub config: PathBuf,
    /// Its log directory.
    pub log_dir: PathBuf,
    /// Everything the process printed on stderr, appended across restarts.
    pub log: PathBuf,
    /// `host:port` of its Prometheus endpoint, when `metrics.port` is set.
    pub metrics: Option<String>,
    /// Its Kafka listeners, `(name, host:port)`, when `listeners` has any.
    pub kafka: Vec<(String, String)>,
    /// Environment variables the process gets on top of the test's (e.g.
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub env: Vec<(String, String)>,
    /// The network namespace it runs in ([`nemesis::Lan`]), if not the test's own.
    pub netns: Option<String>,
    child: Option<std::process::Child>,
}

/// The principals test brokers make super users: the brokers' own certificates
/// (`broker-<id>`) and the operator clients fixtures use (`admin`: [`BrokerCluster::client_files`];
/// `fixture`, `observer`, `raw`). Any other client name is an ordinary principal.
pub fn fixture_super_users() -> Vec<String> {
    let brokers = (0..=9).map(|id| format!("User:broker-{id}"));
    brokers.chain(["admin", "fixture", "observer", "raw"].map(|n| format!("User:{n}"))).collect()
}

/// Writes `<dir>/broker-<id>.properties` for a broker with node certificate `broker-<id>`
/// (issued by `pki` if missing), a free port, log directory `<dir>/broker-<id>-logs`,
/// `zookeeper.connect` as given, a 6 s keeper session (unless `extra` sets one), and `extra`
/// lines.
pub fn broker_config(pki: &TestPki, dir: &Path, id: i32, zookeeper_connect: &str, extra: &str) -> PathBuf {
    let name = format!("broker-{id}");
    let tls = if pki.files(&name).cert.exists() {
        pki.files(&name)
    } else {
        pki.issue(CertSpec::new(name.clone(), Role::Node))
    };
    let log_dir = dir.join(format!("{name}-logs"));
    let session = if extra.contains("zookeeper.session.timeout.ms") {
        ""
    } else {
        "zookeeper.session.timeout.ms=6000\n"
    };
    // `extra` may bring its own listeners (e.g. with an SSL:// one).
    let listeners = if extra.lines().any(|l| l.starts_with("listeners=")) {
        ""
    } else {
        "listeners=quic://127.0.0.1:0\n"
    };
    // Authorization is on in every test cluster: the brokers and the fixtures' operator
    // clients are super users (as a Kafka deployment lists its brokers); other
    // certificates get only what their test grants. `extra` may bring its own list.
    let super_users = if extra.lines().any(|l| l.starts_with("super.users=")) {
        String::new()
    } else {
        format!("super.users={}\n", fixture_super_users().join(";"))
    };
    let text = format!(
        "broker.id={id}\n{listeners}log.dirs={}\nzookeeper.connect={zookeeper_connect}\n\
         {session}{super_users}tls.ca.file={}\ntls.cert.file={}\ntls.key.file={}\n{extra}",
        log_dir.display(),
        tls.ca.display(),
        tls.cert.display(),
        tls.key.display(),
    );
    let config = dir.join(format!("{name}.properties"));
    std::fs::write(&config, text).expect("write broker config");
    config
}

impl BrokerProcess {
    /// A process that has not been started (fill in `config` and paths, then
    /// [`launch`](Self::launch)).
    pub fn placeholder() -> Self {
        BrokerProcess {
            id: 0,
            addr: String::new(),
            config: PathBuf::new(),
            log_dir: PathBuf::new(),
            log: PathBuf::new(),
            metrics: None,
            kafka: Vec::new(),
            env: Vec::new(),
            netns: None,
            child: None,
        }
    }

    /// Writes a config with [`broker_config`] and starts the broker; panics with its log if
    /// it does not come up.
    pub fn start(pki: &TestPki, dir: &Path, id: i32, zookeeper_connect: &str, extra: &str) -> Self {
        Self::start_with_env(pki, dir, id, zookeeper_connect, extra, &[])
    }

    /// [`start`](Self::start) with environment variables `env` for the process.
    pub fn start_with_env(
        pki: &TestPki,
        dir: &Path,
        id: i32,
        zookeeper_connect: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let config = broker_config(pki, dir, id, zookeeper_connect, extra);
        let mut b = BrokerProcess {
            id,
            addr: String::new(),
            log_dir: dir.join(format!("broker-{id}-logs")),
            log: dir.join(format!("broker-{id}.log")),
            config,
            metrics: None,
            kafka: Vec::new(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            netns: None,
            child: None,
        };
        if let Err(out) = b.launch() {
            let log = std::fs::read_to_string(&b.log).unwrap_or_default();
            panic!("broker {id} did not start: {out:?}\n{log}");
        }
        b
    }

    /// Starts the process; on failure returns what it printed (and the process has exited).
    pub fn launch(&mut self) -> Result<(), String> {
        use std::io::BufRead;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut child = sluice_command(self.netns.as_deref())
            .args(["broker", "start"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start broker");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = std::io::BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read broker output");
        if let Some(m) = line.trim().strip_prefix("broker metrics at ") {
            self.metrics = Some(m.trim_start_matches("http://").trim_end_matches("/metrics").to_string());
            line.clear();
            stdout.read_line(&mut line).expect("read broker output");
        }
        self.kafka.clear();
        while let Some((name, addr)) =
            line.trim().strip_prefix("broker ").and_then(|rest| rest.split_once(" listener on "))
        {
            self.kafka.push((name.to_string(), addr.to_string()));
            line.clear();
            stdout.read_line(&mut line).expect("read broker output");
        }
        match line.trim().strip_prefix("broker listening on ") {
            Some(addr) => {
                self.addr = addr.to_string();
                self.child = Some(child);
                Ok(())
            }
            None => {
                let _ = child.wait();
                Err(line)
            }
        }
    }

    /// SIGKILLs the process and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns whether it exited
    /// successfully.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        let _ = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }

    /// Its Kafka listener `name` (`SSL`, `PLAINTEXT`), `host:port`, if it has one.
    pub fn kafka_addr(&self, name: &str) -> Option<&str> {
        self.kafka.iter().find(|(n, _)| n == name).map(|(_, a)| a.as_str())
    }

    /// Starts it again with the same config, on the same ports.
    pub fn restart(&mut self) {
        self.kill();
        let mut listeners = format!("listeners=quic://{}", self.addr);
        for (name, addr) in &self.kafka {
            listeners.push_str(&format!(",{name}://{addr}"));
        }
        let text: String = std::fs::read_to_string(&self.config)
            .expect("config")
            .lines()
            .map(|l| if l.starts_with("listeners=") { listeners.clone() } else { l.to_string() })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(&self.config, text).expect("rewrite config");
        if let Err(out) = self.launch() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("broker {} did not restart: {out:?}\n{log}", self.id);
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// How the process ended, if it has ended on its own (it is reaped then).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        reap_if_exited(&mut self.child)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One keeper and `n` brokers (ids 1..=n) in a temporary directory, brokers under the chroot
/// `/sluice`. A test that panics while holding one gets the tail of every broker's log on
/// stderr; with `SLUICE_KEEP_TEST_DIR` set the directory is kept (and named on stderr).
#[derive(Debug)]
pub struct BrokerCluster {
    /// Certificates (node certificates `keeper-N`, `broker-N`; client `admin`).
    pub pki: TestPki,
    /// The keeper: one server, or the members of an ensemble.
    pub keepers: Vec<KeeperProcess>,
    /// The brokers, in id order.
    pub brokers: Vec<BrokerProcess>,
    /// The temporary directory holding everything.
    pub dir: tempfile::TempDir,
}

impl BrokerCluster {
    /// Starts the keeper and `n` brokers, each with `extra` config lines.
    pub fn start(n: usize, extra: &str) -> Self {
        Self::start_with_keeper(n, extra, "")
    }

    /// [`start`](Self::start) with more keeper config lines (e.g. a longer
    /// `maxSessionTimeout`).
    pub fn start_with_keeper(n: usize, extra: &str, keeper_extra: &str) -> Self {
        Self::start_on(1, n, extra, keeper_extra)
    }

    /// `n` brokers on a keeper ensemble of `keepers` members (1: a single server), with
    /// `extra` broker and `keeper_extra` keeper config lines.
    pub fn start_on(keepers: usize, n: usize, extra: &str, keeper_extra: &str) -> Self {
        Self::start_on_with_env(keepers, n, extra, keeper_extra, &[])
    }

    /// [`start_on`](Self::start_on), the brokers with environment variables `env`.
    pub fn start_on_with_env(
        keepers: usize,
        n: usize,
        extra: &str,
        keeper_extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut dir = tempfile::tempdir().expect("tempdir");
        if std::env::var_os("SLUICE_KEEP_TEST_DIR").is_some() {
            // For investigating a failure: the logs and data stay.
            dir.disable_cleanup(true);
            eprintln!("cluster directory (kept): {}", dir.path().display());
        }
        let pki = TestPki::new("cluster");
        let keepers = if keepers <= 1 {
            vec![KeeperProcess::start_with(&pki, dir.path(), 500, keeper_extra)]
        } else {
            KeeperEnsemble::start(&pki, dir.path(), keepers, 500, keeper_extra).members
        };
        let addrs: Vec<&str> = keepers.iter().map(|k| k.addr.as_str()).collect();
        let connect = format!("{}/sluice", addrs.join(","));
        let brokers = (1..=n as i32)
            .map(|id| BrokerProcess::start_with_env(&pki, dir.path(), id, &connect, extra, env))
            .collect();
        let cluster = BrokerCluster { pki, keepers, brokers, dir };
        cluster.wait_until_every_broker_sees_all(Duration::from_secs(20));
        cluster
    }

    /// Waits until every running broker's metadata lists every running broker: the
    /// controller has seen each registration and told everyone. A broker serves as soon as
    /// it has registered, so without this a test's first request could see a cluster of
    /// fewer brokers (or a topic with fewer live replicas) than it started. Panics with the
    /// brokers' logs after `within`.
    pub fn wait_until_every_broker_sees_all(&self, within: Duration) {
        let running: Vec<(i32, String)> =
            self.brokers.iter().filter(|b| b.pid().is_some()).map(|b| (b.id, b.addr.clone())).collect();
        let mut want: Vec<i32> = running.iter().map(|(id, _)| *id).collect();
        want.sort_unstable();
        let tls = self.pki.client("fixture");
        // The fixture is called from inside tests' runtimes too: a thread of its own.
        let seen = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    let net: Client<sluice_client::broker::proto::BrokerProtocol> =
                        Client::new(&tls, ClientOptions::default()).expect("client");
                    let deadline = Instant::now() + within;
                    'poll: loop {
                        for (id, addr) in &running {
                            let request = sluice_client::broker::proto::MetadataRequest {
                                topics: Some(Vec::new()),
                                allow_auto_create: false,
                            };
                            let mut ids: Vec<i32> = match net.call(addr, request).await {
                                Ok(Ok(m)) => m.brokers.iter().map(|b| b.id).collect(),
                                _ => Vec::new(),
                            };
                            ids.sort_unstable();
                            if ids != want {
                                if Instant::now() >= deadline {
                                    break 'poll (false, Some((*id, ids)));
                                }
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue 'poll;
                            }
                        }
                        break (true, None);
                    }
                })
            })
            .join()
            .expect("fixture thread")
        });
        if !seen.0 {
            // (The cluster's drop prints the brokers' logs.)
            panic!("within {within:?} not every broker saw brokers {want:?} (broker, saw): {:?}", seen.1);
        }
    }

    /// `zookeeper.connect` of the brokers.
    pub fn zookeeper_connect(&self) -> String {
        let addrs: Vec<&str> = self.keepers.iter().map(|k| k.addr.as_str()).collect();
        format!("{}/sluice", addrs.join(","))
    }

    /// Every live broker's address, comma-separated (`--bootstrap-server`).
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .filter(|b| b.pid().is_some())
            .map(|b| b.addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The last `lines` lines of every broker's log (for a failing test's report).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for b in &self.brokers {
            let log = std::fs::read_to_string(&b.log).unwrap_or_default();
            let all: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- broker {} ({}) ---\n", b.id, b.log.display()));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// The TLS files of a client certificate `admin` (issued on first use).
    pub fn client_files(&self) -> TlsFiles {
        if self.pki.files("admin").cert.exists() {
            return self.pki.files("admin");
        }
        self.pki.issue(CertSpec::new("admin", Role::Client))
    }
}

impl Drop for BrokerCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(60));
        }
    }
}

/// A child process that prints JSON lines (the Python client drivers), its lines arriving on
/// a channel; killed when dropped.
#[derive(Debug)]
pub struct JsonLines {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
    what: String,
}

impl JsonLines {
    /// Spawns `command` (stdout piped, stderr inherited; stdin piped, for [`Self::say`]);
    /// `what` names it in panics. Lines that are not JSON are echoed on stderr.
    pub fn spawn(command: &mut std::process::Command, what: String) -> JsonLines {
        use std::io::BufRead;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("child: {line}"),
                }
            }
        });
        JsonLines { child, lines, what }
    }

    /// The next line, within `within`.
    pub fn next(&self, within: Duration) -> Option<serde_json::Value> {
        self.lines.recv_timeout(within).ok()
    }

    /// The next line whose `step` is `step`, within `within` (earlier lines are dropped); a
    /// panic naming the last lines seen otherwise.
    pub fn expect_step(&self, step: &str, within: Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) if v["step"] == step => return v,
                Ok(v) => seen.push(v),
                Err(_) => break,
            }
        }
        panic!("{}: no step {step:?} within {within:?}; lines meanwhile: {seen:?}", self.what)
    }

    /// Writes `line` to the process's stdin (a driver waiting for the test's go-ahead).
    pub fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("write to the child's stdin");
    }

    /// Every line until the process ends (bounded by `within`), and whether it succeeded.
    pub fn finish(mut self, within: Duration) -> (Vec<serde_json::Value>, bool) {
        let deadline = std::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(v) => out.push(v),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if std::time::Instant::now() > deadline => {
                    let _ = self.child.kill();
                    panic!(
                        "{} did not finish within {within:?}; its last lines: {:?}",
                        self.what,
                        out.iter().rev().take(5).collect::<Vec<_>>()
                    );
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let ok = self.child.wait().is_ok_and(|s| s.success());
        (out, ok)
    }

    /// SIGKILLs it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends it SIGTERM.
    pub fn terminate(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends the four-letter word `word` to a ZooKeeper door over TLS with `files`' certificate
/// and returns the report (everything until the server closes the connection).
pub fn zookeeper_word(addr: &str, files: &TlsFiles, word: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let identity = TlsIdentity::load(files).map_err(std::io::Error::other)?;
    let config =
        sluice_net::tls::tcp_client_config(&ClientTls::new(identity)).map_err(std::io::Error::other)?;
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host).map_err(std::io::Error::other)?;
    let conn =
        tokio_rustls::rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = tokio_rustls::rustls::StreamOwned::new(conn, tcp);
    tls.write_all(word.as_bytes())?;
    tls.flush()?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // A server that closes without TLS's close_notify still said everything.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// How a finished `sluice` run went ([`run_sluice`]).
#[derive(Debug)]
pub struct Ran {
    /// It exited 0.
    pub ok: bool,
    /// What it printed.
    pub stdout: String,
    /// Its error output.
    pub stderr: String,
}

impl Ran {
    /// Its output, after asserting it succeeded (`what` names it in the panic).
    pub fn ok(&self, what: &str) -> &str {
        assert!(self.ok, "{what} failed:\n{}\n{}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts it failed and its error output says `says`.
    pub fn refused(&self, what: &str, says: &str) {
        assert!(!self.ok, "{what} should have been refused; it printed:\n{}\n{}", self.stdout, self.stderr);
        assert!(
            self.stderr.contains(says),
            "{what}: the error should say {says:?}; it said:\n{}",
            self.stderr
        );
    }
}

/// Runs `sluice ARGS[0] --bootstrap-server BOOTSTRAP <files' TLS> ARGS[1..]` with `stdin`;
/// a run still going after 60 s is killed (and reported as it stood).
pub fn run_sluice(bootstrap: &str, files: &TlsFiles, args: &[&str], stdin: &str) -> Ran {
    use std::io::Write;
    let mut child = std::process::Command::new(sluice_bin())
        .arg(args[0])
        .args(["--bootstrap-server", bootstrap])
        .args(tls_args(files))
        .args(&args[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sluice");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.as_bytes()).expect("write stdin");
    drop(pipe);
    let pid = child.id();
    let (tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match done.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out,
        Err(_) => {
            let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            done.recv().expect("output after the kill")
        }
    }
    .expect("sluice output");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
