//! `sluice keeper start|stop|status` and `sluice keeper-shell`: zkServer.sh, the four-letter
//! words and zkCli.sh.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sluice_client::keeper::{KeeperClient, KeeperClientOptions};
use sluice_keeper::config::KeeperConfig;
use sluice_keeper_core::{acl, CreateMode, Stat, WatchKind};
use sluice_net::{ClientTls, TlsIdentity};

use crate::credentials::TlsArgs;

/// Name of the pid file in `dataDir`.
pub const PID_FILE: &str = "sluice-keeper.pid";

/// Keeper server commands.
#[derive(Debug, clap::Subcommand)]
pub enum KeeperCommand {
    /// Run a keeper server in the foreground with a zoo.cfg-style config file.
    ///
    /// Prints `keeper listening on HOST:PORT` once it serves (preceded by `keeper metrics at
    /// http://HOST:PORT/metrics` when metricsProvider.httpPort is set, and by `keeper
    /// ZooKeeper door (secureClientPort, TLS) on HOST:PORT` for each ZooKeeper door port);
    /// stops cleanly on SIGTERM or Ctrl-C. Keys: tickTime, dataDir, clientPort,
    /// clientPortAddress, secureClientPort, plaintextClientPort, 4lw.commands.whitelist,
    /// jute.maxbuffer, minSessionTimeout, maxSessionTimeout, snapCount,
    /// autopurge.snapRetainCount, autopurge.purgeInterval, tls.ca.file, tls.cert.file,
    /// tls.key.file, metricsProvider.httpPort, metricsProvider.httpHost, initLimit,
    /// syncLimit, raft.heartbeatMs, raft.electionTimeoutMs, ensemble.allowTwoServers,
    /// server.N.
    ///
    /// -daemon (or --daemon) runs it in the background: its output goes to
    /// sluice-keeper.out in dataDir, and the command returns once the keeper serves
    /// (printing its listening line), or fails showing why. --override key=value
    /// (repeatable) replaces the file's setting of that key.
    Start {
        /// The configuration file.
        config: PathBuf,
        /// Run in the background (also written -daemon).
        #[arg(long)]
        daemon: bool,
        /// A setting that replaces the file's, KEY=VALUE (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<crate::client_args::KeyValue>,
    },
    /// Stop the keeper running with this config (SIGTERM through the pid file in dataDir).
    Stop {
        /// The configuration file it was started with.
        config: PathBuf,
        /// The --override settings it was started with, if they moved dataDir.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<crate::client_args::KeyValue>,
    },
    /// Show each server's mode (standalone / leader / follower), and in an ensemble its id,
    /// term, leader, last committed zxid and the members; znode and session counts,
    /// outstanding requests and latency (ZooKeeper's ruok / stat / mntr).
    Status {
        /// The server, HOST:PORT, or several: HOST:PORT,HOST:PORT,...
        server: String,
        /// Client credentials.
        #[command(flatten)]
        tls: TlsArgs,
    },
}

/// `sluice keeper-shell` arguments.
#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// host:port[,host:port...][/chroot]
    pub connect: String,
    /// One command to run (else commands are read from stdin): ls [-R] PATH, get PATH,
    /// stat PATH, create [-e] [-s] PATH [DATA], set [-v VERSION] PATH DATA,
    /// delete [-v VERSION] PATH, deleteall PATH, sync PATH.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Session timeout to ask for, ms.
    #[arg(long, default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// Client credentials.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Runs a keeper command.
pub fn run(cmd: KeeperCommand) -> Result<()> {
    match cmd {
        KeeperCommand::Start { config, daemon: false, overrides } => start(&config, &overrides),
        KeeperCommand::Start { config, daemon: true, overrides } => {
            let loaded = load(&config, &overrides)?;
            let out = loaded.settings.data_dir.join(OUT_FILE);
            crate::daemon::start("keeper", &config, &overrides, &out)
        }
        KeeperCommand::Stop { config, overrides } => stop(&config, &overrides),
        KeeperCommand::Status { server, tls } => {
            let tls = ClientTls::new(tls.load()?);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let hosts: Vec<&str> = server.split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
            let mut failed = 0;
            for (i, host) in hosts.iter().enumerate() {
                if hosts.len() > 1 {
                    if i > 0 {
                        println!();
                    }
                    println!("Server: {host}");
                }
                match rt.block_on(KeeperClient::status(host, &tls)) {
                    Ok(s) => print_status(&s),
                    Err(e) if hosts.len() > 1 => {
                        failed += 1;
                        println!("Mode: unreachable ({e})");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if failed == hosts.len() {
                return Err(anyhow!("no server of {server} answered"));
            }
            Ok(())
        }
    }
}

fn print_status(s: &sluice_client::keeper::proto::ServerStatus) {
    println!("Mode: {}", s.mode);
    if let Some(e) = &s.ensemble {
        println!("Server id: {}", e.my_id);
        println!("Term: {}", e.term);
        match e.leader {
            Some(l) => println!("Leader: {l}"),
            None => println!("Leader: none (no quorum: writes fail, reads may be stale)"),
        }
        println!("Last committed zxid: 0x{:x} (log index {})", e.last_committed, e.log_index);
        let members: Vec<String> = e.members.iter().map(|(id, addr)| format!("{id}={addr}")).collect();
        println!("Members: {}", members.join(", "));
    }
    println!("Zxid: 0x{:x}", s.last_zxid);
    println!("Node count: {}", s.znodes);
    println!("Sessions: {}", s.sessions);
    println!("Watches: {}", s.watches);
    println!("Outstanding: {}", s.outstanding);
    println!("Latency min/avg/max: {:.3}/{:.3}/{:.3} ms", s.latency_ms.0, s.latency_ms.1, s.latency_ms.2);
    println!("Version: {}", s.version);
}

/// Where a `-daemon` keeper's output goes, in dataDir.
pub const OUT_FILE: &str = "sluice-keeper.out";

/// The config file with `overrides` applied.
fn load(config_path: &Path, overrides: &[crate::client_args::KeyValue]) -> Result<KeeperConfig> {
    Ok(KeeperConfig::parse(&crate::daemon::config_text(config_path, overrides)?, config_path)?)
}

fn start(config_path: &Path, overrides: &[crate::client_args::KeyValue]) -> Result<()> {
    let config = load(config_path, overrides)?;
    if !config.notices.is_empty() {
        tracing::warn!(
            "{}: these ZooKeeper settings are accepted and have no effect here: {}",
            config_path.display(),
            config.notices.join("; ")
        );
    }
    let identity = TlsIdentity::load(&config.tls)?;
    let pid_file = config.settings.data_dir.join(PID_FILE);
    let system = actix::System::new();
    let result = system.block_on(async {
        if let Some(addr) = config.metrics {
            let bound = crate::metrics::serve(addr).await?;
            println!("keeper metrics at http://{bound}/metrics");
        }
        sluice_keeper::server::run(
            &config,
            &identity,
            |at| {
                let _ = std::fs::create_dir_all(&config.settings.data_dir);
                let _ = std::fs::write(&pid_file, std::process::id().to_string());
                if let Some(a) = at.zookeeper_secure {
                    println!("keeper ZooKeeper door (secureClientPort, TLS) on {a}");
                }
                if let Some(a) = at.zookeeper_plaintext {
                    println!("keeper ZooKeeper door (plaintextClientPort, no TLS) on {a}");
                }
                println!("keeper listening on {}", at.quic);
                let _ = std::io::stdout().flush();
            },
            crate::perf::shutdown_signal(),
        )
        .await
        .map_err(anyhow::Error::from)
    });
    let _ = std::fs::remove_file(&pid_file);
    result.with_context(|| format!("keeper with {} failed", config_path.display()))
}

fn stop(config_path: &Path, overrides: &[crate::client_args::KeyValue]) -> Result<()> {
    let config = load(config_path, overrides)?;
    let pid_file = config.settings.data_dir.join(PID_FILE);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .map_err(|_| {
            anyhow!(
                "no keeper is running with dataDir {} (no {})",
                config.settings.data_dir.display(),
                PID_FILE
            )
        })?
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a process id", pid_file.display()))?;
    stop_pid("keeper", pid, &pid_file)
}

/// Sends SIGTERM to `pid` (named by `pid_file`) and waits up to 30 s for it to exit.
pub(crate) fn stop_pid(what: &str, pid: u32, pid_file: &Path) -> Result<()> {
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    if !status.success() {
        let _ = std::fs::remove_file(pid_file);
        bail!("{what} pid {pid} is not running (removed the stale {})", pid_file.display());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(pid) {
        if Instant::now() > deadline {
            bail!("{what} pid {pid} did not stop within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("{what} (pid {pid}) stopped");
    Ok(())
}

/// Whether `pid` is a live process (an exited child its parent has not reaped yet is a
/// zombie: gone for our purposes).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(true)
        }
        Err(_) => false,
    }
}

/// `sluice keeper-shell`.
pub fn shell(args: ShellArgs) -> Result<()> {
    let tls = ClientTls::new(args.tls.load()?);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let opts = KeeperClientOptions {
            session_timeout: Duration::from_millis(args.session_timeout_ms),
            ..KeeperClientOptions::default()
        };
        let (client, mut events) = KeeperClient::connect(&args.connect, &tls, opts).await?;
        if !args.command.is_empty() {
            let result = execute(&client, &args.command).await;
            // Close whatever happened, so the session's ephemerals go now, not at expiry.
            let _ = client.close().await;
            print!("{}", result?);
            return Ok(());
        }
        // Input is read on its own thread: a person thinking must not stop the session's
        // pings (the runtime keeps running while the thread waits for a line).
        let tty = std::io::stdin().is_terminal();
        let (tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let prompt = format!("[keeper: {}] ", args.connect);
        std::thread::spawn(move || read_lines(tty, &prompt, tx, done_rx));
        let mut failed = false;
        loop {
            // Watch events are printed as they come, as zkCli prints them.
            let line = tokio::select! {
                line = lines.recv() => line,
                Some(event) = events.recv() => {
                    print!("{}", format_event(&event));
                    let _ = std::io::stdout().flush();
                    continue;
                }
            };
            let Some(line) = line else { break };
            // The reader shows the next prompt only after this line's output.
            let _done = Done(&done_tx);
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            match words.first().map(String::as_str) {
                None => continue,
                Some("quit" | "exit") => break,
                Some(_) => match execute(&client, &words).await {
                    Ok(out) => print!("{out}"),
                    Err(e) => {
                        failed = true;
                        println!("Error: {e:#}");
                    }
                },
            }
            let _ = std::io::stdout().flush();
        }
        let _ = client.close().await;
        if failed && !tty {
            bail!("a command failed");
        }
        Ok(())
    })
}

/// Tells the line reader, when dropped, that a line's output is complete.
struct Done<'a>(&'a std::sync::mpsc::Sender<()>);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Feeds stdin lines to the shell: with line editing and a history file
/// (`~/.sluice_keeper_history`) at a terminal, plain lines otherwise. After each line it waits
/// until the shell has printed that line's output.
fn read_lines(
    tty: bool,
    prompt: &str,
    tx: tokio::sync::mpsc::Sender<String>,
    done: std::sync::mpsc::Receiver<()>,
) {
    if tty {
        if let Ok(mut editor) = rustyline::DefaultEditor::new() {
            let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".sluice_keeper_history"));
            if let Some(h) = &history {
                let _ = editor.load_history(h);
            }
            while let Ok(line) = editor.readline(prompt) {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(h) = &history {
                        let _ = editor.save_history(h);
                    }
                }
                if tx.blocking_send(line).is_err() || done.recv().is_err() {
                    break;
                }
            }
            return;
        }
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if tx.blocking_send(line).is_err() || done.recv().is_err() {
            break;
        }
    }
}

fn take_flag(words: &mut Vec<String>, flag: &str) -> bool {
    if let Some(i) = words.iter().position(|w| w == flag) {
        words.remove(i);
        true
    } else {
        false
    }
}

/// The value after `flag`, taking both out of `words`.
fn take_value(words: &mut Vec<String>, flag: &str) -> Result<Option<String>> {
    match words.iter().position(|w| w == flag) {
        Some(i) if i + 1 < words.len() => {
            let v = words.remove(i + 1);
            words.remove(i);
            Ok(Some(v))
        }
        Some(_) => bail!("{flag} takes a value"),
        None => Ok(None),
    }
}

fn take_version(words: &mut Vec<String>) -> Result<i32> {
    match words.iter().position(|w| w == "-v") {
        Some(i) if i + 1 < words.len() => {
            let v = words.remove(i + 1);
            words.remove(i);
            v.parse().map_err(|_| anyhow!("-v takes a version number, got {v:?}"))
        }
        Some(_) => bail!("-v takes a version number"),
        None => Ok(-1),
    }
}

/// A watch event as zkCli prints it.
fn format_event(event: &sluice_client::keeper::KeeperEvent) -> String {
    use sluice_client::keeper::KeeperEvent;
    let (state, kind, path) = match event {
        KeeperEvent::Watch { event, path } => ("SyncConnected", format!("{event:?}"), path.as_str()),
        KeeperEvent::SessionExpired => ("Expired", "None".to_string(), ""),
        KeeperEvent::ReadOnly(true) => ("ConnectedReadOnly", "None".to_string(), ""),
        KeeperEvent::ReadOnly(false) | KeeperEvent::Resumed => ("SyncConnected", "None".to_string(), ""),
    };
    let path = if path.is_empty() { "null" } else { path };
    format!("\nWATCHER::\n\nWatchedEvent state:{state} type:{kind} path:{path}\n")
}

fn format_stat(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\ndataLength = {}\nnumChildren = {}\n",
        s.czxid, s.ctime, s.mzxid, s.mtime, s.pzxid, s.cversion, s.version, s.aversion, s.ephemeral_owner, s.data_length, s.num_children
    )
}

/// Runs one shell command; returns what to print.
pub async fn execute(client: &KeeperClient, words: &[String]) -> Result<String> {
    let mut w: Vec<String> = words.to_vec();
    let cmd = w.remove(0);
    let usage = || anyhow!("usage: {}", usage_of(&cmd));
    let out = match cmd.as_str() {
        "ls" => {
            let recursive = take_flag(&mut w, "-R");
            let watch = take_flag(&mut w, "-w");
            let with_stat = take_flag(&mut w, "-s");
            let path = w.first().ok_or_else(usage)?.clone();
            if recursive && (watch || with_stat) {
                bail!("-R goes with neither -w nor -s (as zkCli)");
            }
            if recursive {
                let mut out = String::new();
                let mut stack = vec![path];
                while let Some(p) = stack.pop() {
                    out.push_str(&p);
                    out.push('\n');
                    let mut kids = client.children(&p, false).await?;
                    kids.reverse();
                    for k in kids {
                        stack.push(if p == "/" { format!("/{k}") } else { format!("{p}/{k}") });
                    }
                }
                out
            } else {
                let mut out = format!("[{}]\n", client.children(&path, watch).await?.join(", "));
                if with_stat {
                    match client.exists(&path, false).await? {
                        Some(s) => out.push_str(&format_stat(&s)),
                        None => bail!("Node does not exist: {path}"),
                    }
                }
                out
            }
        }
        "get" => {
            let watch = take_flag(&mut w, "-w");
            let with_stat = take_flag(&mut w, "-s");
            let path = w.first().ok_or_else(usage)?;
            let (data, stat) = client.get_data(path, watch).await?;
            let mut out = format!("{}\n", String::from_utf8_lossy(&data));
            if with_stat {
                out.push_str(&format_stat(&stat));
            }
            out
        }
        "stat" => {
            let watch = take_flag(&mut w, "-w");
            let path = w.first().ok_or_else(usage)?;
            match client.exists(path, watch).await? {
                Some(s) => format_stat(&s),
                // An exists watch is set on a missing node too: it fires when it is created.
                None => bail!("Node does not exist: {path}"),
            }
        }
        "addWatch" => {
            let mode = take_value(&mut w, "-m")?.unwrap_or_else(|| "PERSISTENT_RECURSIVE".into());
            let recursive = match mode.to_ascii_uppercase().as_str() {
                "PERSISTENT" => false,
                "PERSISTENT_RECURSIVE" => true,
                other => bail!("-m {other}: give PERSISTENT or PERSISTENT_RECURSIVE"),
            };
            client.add_watch(w.first().ok_or_else(usage)?, recursive).await?;
            String::new()
        }
        "create" => {
            let e = take_flag(&mut w, "-e");
            let s = take_flag(&mut w, "-s");
            let c = take_flag(&mut w, "-c");
            let ttl = take_value(&mut w, "-t")?
                .map(|t| t.parse::<i64>().map_err(|_| anyhow!("-t takes a TTL in ms, got {t:?}")))
                .transpose()?;
            let path = w.first().ok_or_else(usage)?.clone();
            let data = w.get(1).cloned().unwrap_or_default();
            let acl = w.get(2).map(|a| acl::parse_acl(a)).transpose()?;
            let mode = match (e, s, c, ttl) {
                (false, false, false, None) => CreateMode::Persistent,
                (true, false, false, None) => CreateMode::Ephemeral,
                (false, true, false, None) => CreateMode::PersistentSequential,
                (true, true, false, None) => CreateMode::EphemeralSequential,
                (false, false, true, None) => CreateMode::Container,
                (false, false, false, Some(ttl_ms)) => CreateMode::PersistentWithTtl { ttl_ms },
                (false, true, false, Some(ttl_ms)) => CreateMode::PersistentSequentialWithTtl { ttl_ms },
                _ => bail!("-c and -t go with no other kind: a container or TTL node is persistent"),
            };
            let created = match acl {
                Some(acl) => client.create_with_acl(&path, data.as_bytes(), mode, acl).await?,
                None => client.create(&path, data.as_bytes(), mode).await?,
            };
            format!("Created {created}\n")
        }
        "getAcl" => {
            let with_stat = take_flag(&mut w, "-s");
            let (acl, stat) = client.get_acl(w.first().ok_or_else(usage)?).await?;
            // As zkCli prints it.
            let mut out: String = acl
                .iter()
                .map(|a| format!("'{},'{}\n: {}\n", a.scheme, a.id, acl::perms_text(a.perms)))
                .collect();
            if with_stat {
                out.push_str(&format_stat(&stat));
            }
            out
        }
        "setAcl" => {
            let with_stat = take_flag(&mut w, "-s");
            let recursive = take_flag(&mut w, "-R");
            let v = take_version(&mut w)?;
            let (path, text) = (w.first().ok_or_else(usage)?.clone(), w.get(1).ok_or_else(usage)?);
            let acl = acl::parse_acl(text)?;
            let mut paths = vec![path.clone()];
            if recursive {
                // zkCli's -R: the node and everything below it (any version).
                let mut stack = vec![path];
                while let Some(p) = stack.pop() {
                    for k in client.children(&p, false).await? {
                        let child = if p == "/" { format!("/{k}") } else { format!("{p}/{k}") };
                        paths.push(child.clone());
                        stack.push(child);
                    }
                }
            }
            let mut out = String::new();
            for p in paths {
                let stat = client.set_acl(&p, acl.clone(), if recursive { -1 } else { v }).await?;
                if with_stat {
                    out.push_str(&format_stat(&stat));
                }
            }
            out
        }
        "addauth" => {
            let (scheme, auth) = (w.first().ok_or_else(usage)?, w.get(1).ok_or_else(usage)?);
            client.add_auth(scheme, auth.as_bytes()).await?;
            String::new()
        }
        "set" => {
            let v = take_version(&mut w)?;
            let (path, data) = (w.first().ok_or_else(usage)?, w.get(1).ok_or_else(usage)?);
            let stat = client.set_data(path, data.as_bytes(), v).await?;
            format!("dataVersion = {}\n", stat.version)
        }
        "delete" => {
            let v = take_version(&mut w)?;
            client.delete(w.first().ok_or_else(usage)?, v).await?;
            String::new()
        }
        "deleteall" => {
            let root = w.first().ok_or_else(usage)?.clone();
            // Depth first: children before their parent.
            let mut order = Vec::new();
            let mut stack = vec![root];
            while let Some(p) = stack.pop() {
                for k in client.children(&p, false).await? {
                    stack.push(if p == "/" { format!("/{k}") } else { format!("{p}/{k}") });
                }
                order.push(p);
            }
            for p in order.into_iter().rev() {
                if p != "/" {
                    client.delete(&p, -1).await?;
                }
            }
            String::new()
        }
        "sync" => {
            client.sync(w.first().ok_or_else(usage)?).await?;
            "Sync is OK\n".to_string()
        }
        "getEphemerals" => {
            let prefix = w.first().map_or("/", String::as_str);
            format!("[{}]\n", client.ephemerals(prefix).await?.join(", "))
        }
        "getAllChildrenNumber" => {
            format!("{}\n", client.count_descendants(w.first().ok_or_else(usage)?).await?)
        }
        "removewatches" => {
            let child = take_flag(&mut w, "-c");
            let data = take_flag(&mut w, "-d");
            let any = take_flag(&mut w, "-a");
            let kinds = match (child, data, any) {
                (true, false, false) => vec![WatchKind::Child],
                (false, true, false) => vec![WatchKind::Data],
                (false, false, _) => {
                    vec![
                        WatchKind::Data,
                        WatchKind::Child,
                        WatchKind::Persistent,
                        WatchKind::PersistentRecursive,
                    ]
                }
                _ => bail!("usage: {}", usage_of("removewatches")),
            };
            client.remove_watches(w.first().ok_or_else(usage)?, &kinds, false).await?;
            String::new()
        }
        "help" => HELP.to_string(),
        other => bail!("unknown command {other:?}\n{HELP}"),
    };
    Ok(out)
}

const HELP: &str = "commands:\n  ls [-s] [-w] [-R] PATH\n  get [-s] [-w] PATH\n  stat [-w] PATH\n  addWatch [-m PERSISTENT|PERSISTENT_RECURSIVE] PATH\n  create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA] [ACL]\n  getAcl [-s] PATH\n  setAcl [-s] [-v VERSION] [-R] PATH ACL\n  addauth SCHEME AUTH\n  set [-v VERSION] PATH DATA\n  delete [-v VERSION] PATH\n  deleteall PATH\n  sync PATH\n  getEphemerals [PATH]\n  getAllChildrenNumber PATH\n  removewatches PATH [-c|-d|-a]\n  quit\n";

fn usage_of(cmd: &str) -> &'static str {
    match cmd {
        "ls" => "ls [-s] [-w] [-R] PATH",
        "get" => "get [-s] [-w] PATH",
        "stat" => "stat [-w] PATH",
        "addWatch" => "addWatch [-m PERSISTENT|PERSISTENT_RECURSIVE] PATH",
        "create" => "create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA] [ACL]   (ACL: scheme:id:perms,... e.g. x509:alice:cdrwa,world:anyone:r)",
        "getAcl" => "getAcl [-s] PATH",
        "setAcl" => "setAcl [-s] [-v VERSION] [-R] PATH ACL   (ACL: scheme:id:perms,... e.g. x509:alice:cdrwa,world:anyone:r)",
        "addauth" => "addauth digest USER:PASSWORD",
        "set" => "set [-v VERSION] PATH DATA",
        "delete" => "delete [-v VERSION] PATH",
        "deleteall" => "deleteall PATH",
        "sync" => "sync PATH",
        "getEphemerals" => "getEphemerals [PATH]",
        "getAllChildrenNumber" => "getAllChildrenNumber PATH",
        "removewatches" => "removewatches PATH [-c|-d|-a]",
        _ => "help",
    }
}
