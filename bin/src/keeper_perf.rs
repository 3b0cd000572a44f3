//! `sluice keeper-perf-test`: create / set / get throughput and latency against a keeper,
//! with 1, 8 and 64 concurrent sessions (one connection each), each with `--outstanding`
//! requests in flight (1: every session waits for each reply before its next request;
//! more: the session pipelines, as ZooKeeper's asynchronous API and load tools do).
//!
//! Every write is acknowledged only once it is durable, so the create and set figures are
//! durable writes per second. Everything the test creates lives under
//! `/sluice-keeper-perf-<pid>` and is deleted afterwards.
//!
//! `--zookeeper HOST:PORT` runs the same workload, with the same harness, against Apache
//! ZooKeeper (plain TCP, through the `zookeeper-client` crate), for comparison. ZooKeeper
//! also acknowledges a write only after its transaction log is fsynced (`forceSync=yes`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sluice_client::keeper::{KeeperClient, KeeperClientOptions};
use sluice_keeper_core::CreateMode;
use sluice_net::ClientTls;
use zookeeper_client as zk;

use crate::credentials::TlsArgs;

/// Arguments of `sluice keeper-perf-test`.
#[derive(Debug, clap::Args)]
pub struct KeeperPerfArgs {
    /// The keeper: host:port, or an ensemble host:port,host:port,... (session i starts on
    /// the i-th server, so sessions spread over the ensemble).
    #[arg(
        long,
        value_name = "HOST:PORT",
        required_unless_present = "zookeeper",
        conflicts_with = "zookeeper"
    )]
    pub connect: Option<String>,
    /// Measure Apache ZooKeeper at HOST:PORT[,HOST:PORT...] instead (plain TCP, no TLS).
    #[arg(long, value_name = "HOST:PORT")]
    pub zookeeper: Option<String>,
    /// Concurrent sessions, one run per value (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub clients: Vec<usize>,
    /// Requests in flight per session (pipelined on its connection, answered in order).
    #[arg(long, default_value_t = 1)]
    pub outstanding: usize,
    /// Operations to measure, in order (create, set, get).
    #[arg(long, value_delimiter = ',', default_value = "create,set,get")]
    pub ops: Vec<String>,
    /// Seconds per run.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Bytes of data per create / set.
    #[arg(long, default_value_t = 100)]
    pub data_bytes: usize,
    /// Keep going through errors (a server killed during the run): count them, and report
    /// the longest time without any acknowledgement (the failover time, when one server of
    /// an ensemble is killed mid-run).
    #[arg(long)]
    pub keep_going: bool,
    /// Worker threads [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Client credentials.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Runs the test.
pub fn run(args: KeeperPerfArgs) -> Result<()> {
    if args.clients.contains(&0) || !args.seconds.is_finite() || args.seconds <= 0.0 || args.outstanding == 0
    {
        bail!("--clients values and --outstanding must be at least 1, and --seconds above 0");
    }
    for op in &args.ops {
        if !["create", "set", "get"].contains(&op.as_str()) {
            bail!("unknown op {op:?}: use create, set or get");
        }
    }
    let tls = match args.connect {
        Some(_) => Some(ClientTls::new(args.tls.load()?)),
        None => None,
    };
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build()?.block_on(run_async(args, tls))
}

/// `a,b,c[/chroot]` started at its `i`-th host: `b,c,a[/chroot]` for i = 1.
fn rotated(connect: &str, i: usize) -> String {
    let (hosts, chroot) = match connect.find('/') {
        Some(at) => connect.split_at(at),
        None => (connect, ""),
    };
    let hosts: Vec<&str> = hosts.split(',').collect();
    let k = i % hosts.len();
    let order: Vec<&str> = hosts[k..].iter().chain(&hosts[..k]).copied().collect();
    format!("{}{chroot}", order.join(","))
}

/// One session of either server.
#[derive(Clone)]
enum Session {
    Sluice(KeeperClient),
    Zk(zk::Client),
}

impl Session {
    async fn open(args: &KeeperPerfArgs, tls: Option<&ClientTls>, i: usize) -> Result<Self> {
        match (
            &args.connect.as_deref().map(|a| rotated(a, i)),
            &args.zookeeper.as_deref().map(|a| rotated(a, i)),
            tls,
        ) {
            (Some(addr), _, Some(tls)) => {
                let (c, _events) = KeeperClient::connect(addr, tls, KeeperClientOptions::default())
                    .await
                    .with_context(|| format!("cannot open a session to {addr}"))?;
                Ok(Session::Sluice(c))
            }
            (_, Some(addr), _) => {
                let c = zk::Client::connect(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("ZooKeeper at {addr}: {e}"))?;
                Ok(Session::Zk(c))
            }
            _ => bail!("give --connect (a keeper) or --zookeeper (Apache ZooKeeper)"),
        }
    }

    async fn create(&self, path: &str, data: &[u8]) -> Result<()> {
        match self {
            Session::Sluice(c) => c.create(path, data, CreateMode::Persistent).await.map(|_| ())?,
            Session::Zk(c) => {
                let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                c.create(path, data, &opts)
                    .await
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("create {path}: {e}"))?
            }
        }
        Ok(())
    }

    async fn set(&self, path: &str, data: &[u8]) -> Result<()> {
        match self {
            Session::Sluice(c) => c.set_data(path, data, -1).await.map(|_| ())?,
            Session::Zk(c) => c
                .set_data(path, data, None)
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("set {path}: {e}"))?,
        }
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<()> {
        match self {
            Session::Sluice(c) => c.get_data(path, false).await.map(|_| ())?,
            Session::Zk(c) => {
                c.get_data(path).await.map(|_| ()).map_err(|e| anyhow::anyhow!("get {path}: {e}"))?
            }
        }
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        match self {
            Session::Sluice(c) => c.delete(path, -1).await?,
            Session::Zk(c) => {
                c.delete(path, None).await.map_err(|e| anyhow::anyhow!("delete {path}: {e}"))?
            }
        }
        Ok(())
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        Ok(match self {
            Session::Sluice(c) => c.children(path, false).await?,
            Session::Zk(c) => {
                c.list_children(path).await.map_err(|e| anyhow::anyhow!("children {path}: {e}"))?
            }
        })
    }

    async fn close(self) {
        if let Session::Sluice(c) = self {
            let _ = c.close().await;
        }
    }
}

async fn run_async(args: KeeperPerfArgs, tls: Option<ClientTls>) -> Result<()> {
    let root = format!("/sluice-keeper-perf-{}", std::process::id());
    let target =
        args.connect.clone().or(args.zookeeper.clone().map(|z| format!("ZooKeeper {z}"))).unwrap_or_default();
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    eprintln!("opening {max_clients} sessions to {target} ...");
    let mut sessions = Vec::with_capacity(max_clients);
    for i in 0..max_clients {
        sessions.push(Session::open(&args, tls.as_ref(), i).await?);
    }
    let admin = sessions[0].clone();
    admin.create(&root, b"").await?;
    let data = vec![b'x'; args.data_bytes];
    for i in 0..max_clients {
        admin.create(&format!("{root}/s{i}"), &data).await?;
    }
    println!(
        "keeper-perf-test: {target} ({} B data), {:.1} s per run, {} in flight per session; \
         every write acknowledged after fsync",
        args.data_bytes, args.seconds, args.outstanding
    );
    let mut run = 0u32;
    for op in &args.ops {
        for &n in &args.clients {
            run += 1;
            let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            let keep_going = args.keep_going;
            for j in 0..n * args.outstanding {
                let i = j % n;
                let c = sessions[i].clone();
                let (op, root, data) = (op.clone(), root.clone(), data.clone());
                tasks.spawn(async move {
                    let mut lat = Vec::with_capacity(1 << 14);
                    let mut acked = Vec::new();
                    let mut errors = 0u64;
                    let mut k = 0u64;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let done = match op.as_str() {
                            "create" => c.create(&format!("{root}/c{run}-{j}-{k}"), &data).await,
                            "set" => c.set(&format!("{root}/s{i}"), &data).await,
                            _ => c.get(&format!("{root}/s{i}")).await,
                        };
                        k += 1;
                        match done {
                            Ok(()) => {
                                lat.push(t.elapsed().as_micros() as u64);
                                if keep_going {
                                    acked.push(start.elapsed().as_micros() as u64);
                                }
                            }
                            Err(_) if keep_going => {
                                errors += 1;
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    Ok::<_, anyhow::Error>((lat, acked, errors))
                });
            }
            let mut all = Vec::new();
            let mut acked = Vec::new();
            let mut errors = 0;
            while let Some(r) = tasks.join_next().await {
                let (lat, at, errs) = r.context("client task panicked")??;
                all.extend(lat);
                acked.extend(at);
                errors += errs;
            }
            let secs = start.elapsed().as_secs_f64();
            all.sort_unstable();
            let pct = |p: f64| {
                all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(0) as f64
                    / 1000.0
            };
            println!(
                "{op:<6} clients {n:>3}: {:>8} ops in {secs:.2} s {:>9.0} ops/s   p50 {:.3} ms  p99 {:.3} ms",
                all.len(),
                all.len() as f64 / secs,
                pct(0.50),
                pct(0.99)
            );
            if keep_going {
                acked.sort_unstable();
                let (gap, at) = acked
                    .windows(2)
                    .map(|w| (w[1] - w[0], w[0]))
                    .max()
                    .unwrap_or((secs as u64 * 1_000_000, 0));
                println!(
                    "{:<6} {errors} errors; longest time without an acknowledgement: {:.0} ms (from {:.2} s)",
                    "",
                    gap as f64 / 1000.0,
                    at as f64 / 1e6
                );
            }
        }
    }
    let children = admin.children(&root).await?;
    eprintln!("cleaning up {} nodes under {root} ...", children.len() + 1);
    let chunk = children.len().div_ceil(sessions.len()).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for (c, names) in sessions.iter().zip(children.chunks(chunk)) {
        let (c, root, names) = (c.clone(), root.clone(), names.to_vec());
        tasks.spawn(async move {
            for name in names {
                c.delete(&format!("{root}/{name}")).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("clean-up task panicked")??;
    }
    admin.delete(&root).await?;
    for c in sessions {
        c.close().await;
    }
    Ok(())
}
