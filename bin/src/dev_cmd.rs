//! `sluice dev up | down | status`: a whole local cluster in one command.
//!
//! `up` makes a cluster CA with a certificate per keeper, per broker and one client (`cli`),
//! writes each process's config file on free ports of 127.0.0.1, starts the processes in
//! the background (their own process groups, so a Ctrl-C in the shell that ran `up` does
//! not reach them), waits until the keeper ensemble serves and every broker has
//! registered, and prints how to connect. Everything lives in `--dir` (default
//! `./sluice-dev`): certificates, configs, data, logs (`NAME.log`), `client.properties`,
//! `env.sh` (the `SLUICE_*` variables the tools read), `librdkafka.properties` (Kafka's own
//! clients on every broker's `SSL` listener) and `dev.pids`.
//!
//! `up` on a directory whose cluster is stopped starts the same cluster again (same ports,
//! same data); on one whose cluster runs it says so. `down` stops brokers first (each hands
//! its leaderships over, which needs the keepers), then keepers: SIGTERM, then SIGKILL for
//! a process still running after `--timeout`. `down --purge` also deletes the directory.
//! `status` lists each process, whether it runs, and its address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sluice_client::keeper::{KeeperClient, KeeperClientOptions};
use sluice_net::{ClientTls, TlsFiles, TlsIdentity};

/// `sluice dev` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DevCommand {
    /// Start a local cluster: certificates, configs, keepers and brokers on free ports.
    ///
    /// Writes into --dir: certs/ (a CA, keeper-N, broker-N and the client `cli`),
    /// keeper-N.properties and broker-N.properties (127.0.0.1, free ports, metrics
    /// endpoints), data and logs under keeper-N/ and broker-N/, the processes' output in
    /// NAME.log, client.properties (the client's tls.* keys), env.sh (`source` it: the
    /// SLUICE_* variables every tool reads), librdkafka.properties (kcat -F, confluent-kafka:
    /// every broker's SSL listener, Kafka's protocol over TLS) and dev.pids. Waits until the keepers serve and
    /// every broker has registered, then prints the bootstrap servers, the keeper connect
    /// string and the metrics endpoints. On a directory whose cluster was stopped it starts
    /// the same cluster again; on one whose cluster runs it refuses.
    Up(UpArgs),
    /// Stop the local cluster in --dir (brokers first, then keepers).
    ///
    /// SIGTERM to each broker (it hands its leaderships over first), then each keeper;
    /// SIGKILL for one still running after --timeout. The files stay unless --purge.
    Down(DownArgs),
    /// Show which processes of the local cluster in --dir run, and where.
    Status(DirArg),
}

/// `--dir`.
#[derive(Debug, clap::Args)]
pub struct DirArg {
    /// The cluster's directory.
    #[arg(long, value_name = "DIR", default_value = "sluice-dev")]
    pub dir: PathBuf,
}

/// Arguments of `sluice dev up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Keeper servers: 1, or an ensemble of 3 or more (an odd number keeps a majority).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub keepers: usize,
    /// Brokers.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub brokers: usize,
    /// How long to wait for the cluster to come up.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    /// The cluster's directory (certificates, configs, data, logs).
    #[command(flatten)]
    pub dir: DirArg,
}

/// Arguments of `sluice dev down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Seconds to wait for each process after its SIGTERM before SIGKILL.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Also delete the directory (certificates, data, logs).
    #[arg(long)]
    pub purge: bool,
    /// The cluster's directory.
    #[command(flatten)]
    pub dir: DirArg,
}

/// Runs a `sluice dev` subcommand.
pub fn run(cmd: DevCommand) -> Result<()> {
    match cmd {
        DevCommand::Up(args) => up(args),
        DevCommand::Down(args) => down(args),
        DevCommand::Status(args) => status(&args.dir),
    }
}

/// One process of the cluster, as `dev.pids` and the configs describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Proc {
    /// `keeper-1`, `broker-2`, ...
    name: String,
    /// Its config file.
    config: PathBuf,
    /// Its pid when last started.
    pid: Option<u32>,
}

impl Proc {
    fn is_broker(&self) -> bool {
        self.name.starts_with("broker-")
    }
}

/// The cluster's layout: which processes, with which addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    keepers: Vec<(String, u16, u16, u16)>,
    /// Name, QUIC listener (UDP), metrics port (TCP), Kafka SSL listener (TCP).
    brokers: Vec<(String, u16, u16, u16)>,
}

impl Layout {
    /// `keepers` keeper servers (client port, peer port, metrics port each) and `brokers`
    /// brokers (QUIC listener, metrics port, Kafka SSL listener), on free ports.
    fn new(keepers: usize, brokers: usize) -> Result<Layout> {
        let udp = free_udp_ports(2 * keepers + brokers)?;
        let tcp = free_tcp_ports(keepers + 2 * brokers)?;
        // A keeper's client port number serves QUIC (UDP) and the ZooKeeper door (TCP).
        let client = free_udp_and_tcp_ports(keepers)?;
        Ok(Layout {
            keepers: (0..keepers)
                .map(|i| (format!("keeper-{}", i + 1), client[i], udp[2 * i + 1], tcp[i]))
                .collect(),
            brokers: (0..brokers)
                .map(|i| {
                    let name = format!("broker-{}", i + 1);
                    (name, udp[2 * keepers + i], tcp[keepers + i], tcp[keepers + brokers + i])
                })
                .collect(),
        })
    }

    fn connect(&self) -> String {
        self.keepers.iter().map(|(_, c, _, _)| format!("127.0.0.1:{c}")).collect::<Vec<_>>().join(",")
    }

    fn bootstrap(&self) -> String {
        self.brokers.iter().map(|(_, l, ..)| format!("127.0.0.1:{l}")).collect::<Vec<_>>().join(",")
    }
}

fn free_udp_ports(n: usize) -> Result<Vec<u16>> {
    let sockets = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free UDP ports on 127.0.0.1")?;
    sockets.iter().map(|s| Ok(s.local_addr()?.port())).collect()
}

/// `n` port numbers free for both UDP and TCP on 127.0.0.1 (held together while chosen).
fn free_udp_and_tcp_ports(n: usize) -> Result<Vec<u16>> {
    let mut held = Vec::new();
    for _ in 0..n * 20 {
        if held.len() == n {
            break;
        }
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").context("finding free UDP ports on 127.0.0.1")?;
        let port = udp.local_addr()?.port();
        if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push((udp, tcp, port));
        }
    }
    if held.len() < n {
        bail!("found only {} of {n} port numbers free for both UDP and TCP on 127.0.0.1", held.len());
    }
    Ok(held.into_iter().map(|(_, _, p)| p).collect())
}

fn free_tcp_ports(n: usize) -> Result<Vec<u16>> {
    let sockets = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free TCP ports on 127.0.0.1")?;
    sockets.iter().map(|s| Ok(s.local_addr()?.port())).collect()
}

fn tls_lines(certs: &Path, name: &str) -> String {
    format!(
        "tls.ca.file={}\ntls.cert.file={}\ntls.key.file={}\n",
        certs.join("ca.pem").display(),
        certs.join(format!("{name}.pem")).display(),
        certs.join(format!("{name}.key")).display()
    )
}

/// The keeper's config file text.
fn keeper_config(dir: &Path, layout: &Layout, i: usize) -> String {
    let (name, client, _, metrics) = &layout.keepers[i];
    let mut text = format!(
        "# {name} of `sluice dev up` (ZooKeeper's keys)\ntickTime=500\ndataDir={}\nclientPort={client}\n\
         clientPortAddress=127.0.0.1\nmetricsProvider.httpPort={metrics}\nmetricsProvider.httpHost=127.0.0.1\n\
         # ZooKeeper's own clients (zkCli.sh, kazoo, Curator): TLS on TCP, the same port number\n\
         secureClientPort={client}\n4lw.commands.whitelist=*\n",
        dir.join(name).join("data").display()
    );
    text.push_str(&tls_lines(&dir.join("certs"), name));
    if layout.keepers.len() > 1 {
        for (j, (_, _, peer, _)) in layout.keepers.iter().enumerate() {
            let _ = writeln!(text, "server.{}=127.0.0.1:{peer}", j + 1);
        }
    }
    text
}

/// The dev cluster's client certificate (a super user of its brokers).
const DEV_CLIENT: &str = "cli";

/// The broker's config file text.
fn broker_config(dir: &Path, layout: &Layout, i: usize) -> String {
    let (name, listener, metrics, ssl) = &layout.brokers[i];
    let replicas = layout.brokers.len().min(3);
    let mut text = format!(
        "# {name} of `sluice dev up` (Kafka's keys; see config/server.properties)\nbroker.id={}\n\
         listeners=quic://127.0.0.1:{listener},SSL://127.0.0.1:{ssl}\nlog.dirs={}\nzookeeper.connect={}/sluice\n\
         metrics.port={metrics}\nmetrics.host=127.0.0.1\noffsets.topic.replication.factor={replicas}\n",
        i + 1,
        dir.join(name).join("logs").display(),
        layout.connect(),
    );
    // Authorization is on: the brokers and the client `cli` are super users; a certificate
    // issued with `sluice certs issue` gets what `sluice acls --add` grants it.
    let brokers: Vec<String> = layout.brokers.iter().map(|(n, ..)| format!("User:{n}")).collect();
    let _ = writeln!(text, "super.users={};User:{DEV_CLIENT}", brokers.join(";"));
    text.push_str(&tls_lines(&dir.join("certs"), name));
    text
}

fn pids_path(dir: &Path) -> PathBuf {
    dir.join("dev.pids")
}

/// Reads `dev.pids`: one `NAME PID CONFIG` line per process, in start order.
fn read_procs(dir: &Path) -> Result<Vec<Proc>> {
    let path = pids_path(dir);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("no dev cluster in {}: start one with `sluice dev up --dir {}`", dir.display(), dir.display())
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            let mut parts = line.splitn(3, ' ');
            let bad = || anyhow!("{}:{}: expected `NAME PID CONFIG`, got {line:?}", path.display(), n + 1);
            let name = parts.next().ok_or_else(bad)?.to_string();
            let pid = parts.next().ok_or_else(bad)?;
            let pid = if pid == "-" { None } else { Some(pid.parse().map_err(|_| bad())?) };
            let config = PathBuf::from(parts.next().ok_or_else(bad)?);
            Ok(Proc { name, config, pid })
        })
        .collect()
}

fn write_procs(dir: &Path, procs: &[Proc]) -> Result<()> {
    let mut text = String::new();
    for p in procs {
        let pid = p.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
        let _ = writeln!(text, "{} {pid} {}", p.name, p.config.display());
    }
    std::fs::write(pids_path(dir), text).with_context(|| format!("writing {}", pids_path(dir).display()))
}

/// Whether `pid` is a live process (not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z"),
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `sluice <kind> start CONFIG` in its own process group, output to NAME.log.
fn spawn(dir: &Path, p: &Proc) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let kind = if p.is_broker() { "broker" } else { "keeper" };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.log", p.name)))
        .with_context(|| format!("opening {}.log", p.name))?;
    let exe = std::env::current_exe().context("finding the sluice executable")?;
    let child = Command::new(exe)
        .args([kind, "start"])
        .arg(&p.config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", p.name))?;
    Ok(child.id())
}

fn up(args: UpArgs) -> Result<()> {
    let dir = &args.dir.dir;
    if args.keepers == 0 || args.keepers == 2 {
        bail!(
            "--keepers {}: use 1, or 3 or more (two servers survive no failure a single one would not)",
            args.keepers
        );
    }
    if args.brokers == 0 {
        bail!("--brokers must be at least 1");
    }
    let mut procs = if pids_path(dir).exists() {
        let procs = read_procs(dir)?;
        let running: Vec<String> =
            procs.iter().filter(|p| p.pid.is_some_and(alive)).map(|p| p.name.clone()).collect();
        if !running.is_empty() {
            bail!(
                "a dev cluster already runs in {} ({}): see `sluice dev status --dir {0}`, or stop it with \
                 `sluice dev down --dir {0}`",
                dir.display(),
                running.join(", ")
            );
        }
        println!("starting the stopped dev cluster in {} again (same ports and data)", dir.display());
        procs
    } else {
        create(dir, args.keepers, args.brokers)?
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    // Keepers first: brokers need them to register. `dev.pids` is rewritten after each
    // start, so a failed `up` can still be stopped with `down`.
    for i in 0..procs.len() {
        procs[i].pid = Some(spawn(dir, &procs[i])?);
        write_procs(dir, &procs)?;
    }
    let started = procs;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Err(e) = rt.block_on(wait_ready(dir, &started, deadline)) {
        let mut msg = format!("{e:#}\n");
        for p in &started {
            if !p.pid.is_some_and(alive) {
                let _ = writeln!(
                    msg,
                    "{} exited; the end of {}:",
                    p.name,
                    dir.join(format!("{}.log", p.name)).display()
                );
                let _ = writeln!(msg, "{}", tail(&dir.join(format!("{}.log", p.name)), 10));
            }
        }
        let _ = stop_all(dir, &started, Duration::from_secs(10));
        bail!(
            "{msg}the cluster was stopped; fix the cause and run `sluice dev up --dir {}` again",
            dir.display()
        );
    }
    print_connect(dir, &started)
}

/// Certificates, configs and `dev.pids` for a new cluster.
fn create(dir: &Path, keepers: usize, brokers: usize) -> Result<Vec<Proc>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = &dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    let layout = Layout::new(keepers, brokers)?;
    let nodes: Vec<String> = layout
        .keepers
        .iter()
        .map(|k| k.0.clone())
        .chain(layout.brokers.iter().map(|b| b.0.clone()))
        .collect();
    sluice_certs::init(&dir.join("certs"), &nodes, &[DEV_CLIENT.to_string()], &[], false)
        .with_context(|| format!("making certificates in {}", dir.join("certs").display()))?;
    let mut procs = Vec::new();
    for (i, (name, ..)) in layout.keepers.iter().enumerate() {
        let data = dir.join(name).join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        if keepers > 1 {
            std::fs::write(data.join("myid"), format!("{}\n", i + 1))?;
        }
        let config = dir.join(format!("{name}.properties"));
        std::fs::write(&config, keeper_config(dir, &layout, i))?;
        procs.push(Proc { name: name.clone(), config, pid: None });
    }
    for (i, (name, ..)) in layout.brokers.iter().enumerate() {
        let config = dir.join(format!("{name}.properties"));
        std::fs::write(&config, broker_config(dir, &layout, i))?;
        procs.push(Proc { name: name.clone(), config, pid: None });
    }
    let certs = dir.join("certs");
    std::fs::write(dir.join("client.properties"), tls_lines(&certs, DEV_CLIENT))?;
    std::fs::write(
        dir.join("env.sh"),
        format!(
            "# `source` this to point sluice's tools at the dev cluster\nexport SLUICE_BOOTSTRAP_SERVER={}\n\
             export SLUICE_TLS_CA={}\nexport SLUICE_TLS_CERT={}\nexport SLUICE_TLS_KEY={}\n",
            layout.bootstrap(),
            certs.join("ca.pem").display(),
            certs.join("cli.pem").display(),
            certs.join("cli.key").display()
        ),
    )?;
    let ssl: Vec<String> = layout.brokers.iter().map(|(_, _, _, ssl)| format!("127.0.0.1:{ssl}")).collect();
    std::fs::write(
        dir.join("librdkafka.properties"),
        format!(
            "# Kafka's own clients (librdkafka: kcat -F this-file, confluent-kafka) on the brokers' SSL listeners\n\
             bootstrap.servers={}\nsecurity.protocol=ssl\nssl.ca.location={}\nssl.certificate.location={}\n\
             ssl.key.location={}\n",
            ssl.join(","),
            certs.join("ca.pem").display(),
            certs.join("cli.pem").display(),
            certs.join("cli.key").display()
        ),
    )?;
    write_procs(dir, &procs)?;
    Ok(procs)
}

/// A config file's `key=value` entries (enough to find addresses).
fn config_of(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// Where a process serves: a keeper's client address, a broker's listener.
/// The `NAME://` entry of a broker's `listeners`, as `host:port`.
fn listener_of(p: &Proc, scheme: &str) -> Result<Option<String>> {
    let c = config_of(&p.config)?;
    let listeners =
        c.get("listeners").ok_or_else(|| anyhow!("{} has no listeners line", p.config.display()))?;
    Ok(listeners.split(',').find_map(|l| {
        let (name, rest) = l.trim().split_once("://")?;
        name.eq_ignore_ascii_case(scheme).then(|| rest.to_string())
    }))
}

fn address(p: &Proc) -> Result<String> {
    let c = config_of(&p.config)?;
    if p.is_broker() {
        listener_of(p, "quic")?.ok_or_else(|| anyhow!("{} has no quic:// listener", p.config.display()))
    } else {
        let port = c.get("clientPort").ok_or_else(|| anyhow!("{} has no clientPort", p.config.display()))?;
        Ok(format!("{}:{port}", c.get("clientPortAddress").map_or("127.0.0.1", String::as_str)))
    }
}

fn metrics_url(p: &Proc) -> Option<String> {
    let c = config_of(&p.config).ok()?;
    let (port, host) = if p.is_broker() {
        (c.get("metrics.port")?, c.get("metrics.host"))
    } else {
        (c.get("metricsProvider.httpPort")?, c.get("metricsProvider.httpHost"))
    };
    Some(format!("http://{}:{port}/metrics", host.map_or("127.0.0.1", String::as_str)))
}

fn client_tls(dir: &Path) -> Result<ClientTls> {
    let certs = dir.join("certs");
    let files =
        TlsFiles { ca: certs.join("ca.pem"), cert: certs.join("cli.pem"), key: certs.join("cli.key") };
    Ok(ClientTls::new(
        TlsIdentity::load(&files)
            .with_context(|| format!("loading the cli certificate from {}", certs.display()))?,
    ))
}

fn connect_string(procs: &[Proc]) -> Result<String> {
    let keepers: Vec<String> = procs.iter().filter(|p| !p.is_broker()).map(address).collect::<Result<_>>()?;
    Ok(keepers.join(","))
}

/// Registered broker ids, asked of the keepers.
async fn registered(tls: &ClientTls, connect: &str) -> Result<Vec<String>> {
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(6), ..Default::default() };
    let (k, _) = KeeperClient::connect(&format!("{connect}/sluice"), tls, opts).await?;
    let ids = k.children("/brokers/ids", false).await;
    let _ = k.close().await;
    Ok(ids.unwrap_or_default())
}

/// Waits until every broker is registered (which needs a serving keeper ensemble), showing
/// progress on a terminal; fails early when a process exits.
async fn wait_ready(dir: &Path, procs: &[Proc], deadline: Instant) -> Result<()> {
    let tls = client_tls(dir)?;
    let connect = connect_string(procs)?;
    let want = procs.iter().filter(|p| p.is_broker()).count();
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        if let Some(dead) = procs.iter().find(|p| !p.pid.is_some_and(alive)) {
            bail!("{} stopped while the cluster was starting", dead.name);
        }
        let ids = tokio::time::timeout(Duration::from_secs(5), registered(&tls, &connect)).await;
        let n = match &ids {
            Ok(Ok(ids)) => ids.len(),
            _ => 0,
        };
        let now = if matches!(ids, Ok(Ok(_))) {
            format!("keepers serving; {n} of {want} brokers registered")
        } else {
            "waiting for the keepers to elect a leader".to_string()
        };
        if now != last {
            if tty {
                eprint!("\r\x1b[2K{now}");
            } else {
                eprintln!("{now}");
            }
            last = now;
        }
        if n >= want {
            if tty {
                eprintln!();
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            if tty {
                eprintln!();
            }
            bail!("the cluster did not come up in time ({last}); the logs are {}/*.log", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_connect(dir: &Path, procs: &[Proc]) -> Result<()> {
    let brokers: Vec<&Proc> = procs.iter().filter(|p| p.is_broker()).collect();
    let bootstrap = brokers.iter().map(|p| address(p)).collect::<Result<Vec<_>>>()?.join(",");
    let keepers = procs.len() - brokers.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Sluice dev cluster up in {}: {keepers} keepers, {} brokers",
        dir.display(),
        brokers.len()
    );
    let _ = writeln!(out, "  bootstrap servers: {bootstrap}");
    let _ = writeln!(out, "  keeper connect:    {}/sluice", connect_string(procs)?);
    let _ = writeln!(
        out,
        "  ZooKeeper clients: {}/sluice (TLS on TCP, the same ports; zkCli.sh, kazoo: README)",
        connect_string(procs)?
    );
    let _ =
        writeln!(out, "  client TLS files:  {} (the tls.* keys)", dir.join("client.properties").display());
    let ssl: Vec<String> = brokers.iter().filter_map(|p| listener_of(p, "SSL").ok().flatten()).collect();
    if !ssl.is_empty() {
        let rdkafka = dir.join("librdkafka.properties");
        let _ = writeln!(
            out,
            "  Kafka clients:     {} (SSL; librdkafka config: {})",
            ssl.join(","),
            rdkafka.display()
        );
    }
    let _ = writeln!(out, "  logs:              {}/<name>.log", dir.display());
    for p in procs {
        if let Some(url) = metrics_url(p) {
            let _ = writeln!(out, "  metrics {:<10} {url}", format!("{}:", p.name));
        }
    }
    let _ = writeln!(out, "Try:");
    let _ = writeln!(out, "  source {}", dir.join("env.sh").display());
    let _ = writeln!(
        out,
        "  sluice topics --create --topic demo --partitions 3 --replication-factor {}",
        brokers.len().min(3)
    );
    let _ = writeln!(out, "  echo hello | sluice console-producer --topic demo");
    let _ = writeln!(
        out,
        "  sluice console-consumer --topic demo --group readers --from-beginning --max-messages 1"
    );
    if !ssl.is_empty() {
        let _ = writeln!(
            out,
            "  kcat -F {} -t demo -C -e -o beginning",
            dir.join("librdkafka.properties").display()
        );
    }
    let _ = writeln!(
        out,
        "Authorization is on: the client `{DEV_CLIENT}` above is a super user; any other certificate may do only what an ACL grants it:"
    );
    let _ = writeln!(out, "  sluice certs issue --dir {} --client alice", dir.join("certs").display());
    let _ = writeln!(
        out,
        "  sluice acls --add --allow-principal User:alice --consumer --topic demo --group readers"
    );
    let _ = writeln!(out, "Stop it with: sluice dev down --dir {}", dir.display());
    print!("{out}");
    std::io::stdout().flush()?;
    Ok(())
}

/// Stops brokers (last started first), then keepers; returns what it did per process.
fn stop_all(dir: &Path, procs: &[Proc], timeout: Duration) -> Result<Vec<String>> {
    let order: Vec<&Proc> = procs
        .iter()
        .rev()
        .filter(|p| p.is_broker())
        .chain(procs.iter().rev().filter(|p| !p.is_broker()))
        .collect();
    let mut report = Vec::new();
    for p in order {
        let Some(pid) = p.pid.filter(|&pid| alive(pid)) else {
            report.push(format!("{} was not running", p.name));
            continue;
        };
        signal(pid, "-TERM");
        let deadline = Instant::now() + timeout;
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            signal(pid, "-KILL");
            report.push(format!(
                "{} (pid {pid}) killed: still running {}s after SIGTERM",
                p.name,
                timeout.as_secs()
            ));
        } else {
            report.push(format!("{} (pid {pid}) stopped", p.name));
        }
    }
    let stopped: Vec<Proc> = procs.iter().map(|p| Proc { pid: None, ..p.clone() }).collect();
    write_procs(dir, &stopped)?;
    Ok(report)
}

fn down(args: DownArgs) -> Result<()> {
    let dir = &args.dir.dir;
    let procs = read_procs(dir)?;
    for line in stop_all(dir, &procs, Duration::from_secs(args.timeout))? {
        println!("{line}");
    }
    if args.purge {
        std::fs::remove_dir_all(dir).with_context(|| format!("deleting {}", dir.display()))?;
        println!("deleted {}", dir.display());
    } else {
        println!("files kept in {} (`sluice dev up --dir {0}` starts the same cluster again)", dir.display());
    }
    Ok(())
}

fn status(dir: &Path) -> Result<()> {
    let procs = read_procs(dir)?;
    println!("{:<10} {:<8} {:<9} ADDRESS", "NAME", "PID", "STATE");
    let mut running = 0;
    for p in &procs {
        let live = p.pid.is_some_and(alive);
        running += usize::from(live);
        let pid = p.pid.filter(|_| live).map_or_else(|| "-".to_string(), |p| p.to_string());
        let state = if live { "running" } else { "stopped" };
        println!("{:<10} {pid:<8} {state:<9} {}", p.name, address(p).unwrap_or_else(|e| e.to_string()));
    }
    if running > 0 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let tls = client_tls(dir)?;
        let connect = connect_string(&procs)?;
        let ids = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), registered(&tls, &connect)).await
        });
        match ids {
            Ok(Ok(mut ids)) => {
                ids.sort();
                println!(
                    "registered brokers: {}",
                    if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
                );
            }
            _ => println!("the keepers do not answer (no quorum?): see {}/keeper-*.log", dir.display()),
        }
    }
    Ok(())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_every_port_and_the_ensemble() {
        let layout = Layout {
            keepers: vec![
                ("keeper-1".into(), 2181, 2881, 7001),
                ("keeper-2".into(), 2182, 2882, 7002),
                ("keeper-3".into(), 2183, 2883, 7003),
            ],
            brokers: vec![("broker-1".into(), 9092, 9401, 9093)],
        };
        let dir = Path::new("/d");
        let k = keeper_config(dir, &layout, 1);
        assert!(k.contains("clientPort=2182\n") && k.contains("dataDir=/d/keeper-2/data\n"), "{k}");
        assert!(
            k.contains("server.1=127.0.0.1:2881\nserver.2=127.0.0.1:2882\nserver.3=127.0.0.1:2883\n"),
            "{k}"
        );
        assert!(k.contains("tls.cert.file=/d/certs/keeper-2.pem\n"), "{k}");
        let b = broker_config(dir, &layout, 0);
        assert!(
            b.contains("broker.id=1\n")
                && b.contains("listeners=quic://127.0.0.1:9092,SSL://127.0.0.1:9093\n"),
            "{b}"
        );
        assert!(b.contains("zookeeper.connect=127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183/sluice\n"), "{b}");
        assert!(b.contains("offsets.topic.replication.factor=1\n"), "one broker: one replica: {b}");
        let single = Layout { keepers: vec![("keeper-1".into(), 2181, 2881, 7001)], ..layout };
        assert!(!keeper_config(dir, &single, 0).contains("server."), "a single server is standalone");
    }

    #[test]
    fn the_pid_file_round_trips_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let procs = vec![
            Proc { name: "keeper-1".into(), config: "/d/keeper-1.properties".into(), pid: Some(42) },
            Proc { name: "broker-1".into(), config: "/d/b 1.properties".into(), pid: None },
        ];
        write_procs(dir.path(), &procs).expect("write");
        assert_eq!(read_procs(dir.path()).expect("read"), procs);
        std::fs::write(pids_path(dir.path()), "keeper-1 forty-two /x\n").expect("write");
        let e = read_procs(dir.path()).expect_err("bad pid").to_string();
        assert!(e.contains("dev.pids:1: expected `NAME PID CONFIG`"), "{e}");
        let none = tempfile::tempdir().expect("tempdir");
        let e = format!("{:#}", read_procs(none.path()).expect_err("no cluster"));
        assert!(e.contains("start one with `sluice dev up --dir"), "{e}");
    }
}
