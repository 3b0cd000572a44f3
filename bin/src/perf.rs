//! `sluice transport-perf-test` and `sluice transport-perf-server`: the transport measured
//! between two processes, the way `kafka-producer-perf-test` measures a broker.
//!
//! Bulk: `SinkRequest`s of `--frame-bytes` with `--bulk-in-flight` outstanding, until
//! `--bulk-bytes` have been acknowledged. Small RPCs: echo calls of `--rpc-bytes` with
//! 1, 8 and 32 (`--concurrency`) callers for `--rpc-seconds` each, with latency percentiles.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sluice_certs::{CertSpec, Role};
use sluice_net::perf::{EchoRequest, Perf, PerfServer, SinkRequest, WhoAmI};
use sluice_net::{Client, ClientOptions, ClientTls, Connection, Server, ServerOptions, Typed};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::credentials::{files_in, TlsArgs};

/// Arguments of `sluice transport-perf-test`.
#[derive(Debug, clap::Args)]
pub struct PerfTestArgs {
    /// Measure a running `sluice transport-perf-server` at HOST:PORT instead of starting one
    /// (then --tls-* / --command-config name this client's credentials).
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// Bytes to send in the bulk phase (suffix K, M or G: binary units; 0 skips the phase).
    #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = parse_size)]
    pub bulk_bytes: u64,
    /// Bytes per bulk frame.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    pub frame_bytes: u64,
    /// How bulk bytes travel: `call` as acknowledged `SinkRequest` frames (what services
    /// do); `raw` unframed on one stream to the server's discard sink (the transport's
    /// ceiling, for comparison).
    #[arg(long, value_enum, default_value_t = BulkVia::Call)]
    pub bulk_via: BulkVia,
    /// Bulk frames in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub bulk_in_flight: usize,
    /// Payload bytes of each small RPC.
    #[arg(long, value_name = "SIZE", default_value = "100", value_parser = parse_size)]
    pub rpc_bytes: u64,
    /// Concurrent callers in the small-RPC phase, one run per value (comma-separated).
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,
    /// Seconds each small-RPC run lasts (0 skips the phase).
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    pub rpc_seconds: f64,
    /// How small RPCs travel: `call` is `Connection::call` (small requests multiplexed on the
    /// connection's lane); `channel` pipelines them on an ordered channel (FIFO).
    #[arg(long, value_enum, default_value_t = RpcVia::Call)]
    pub rpc_via: RpcVia,
    /// Keep the certificates made for the test in DIR (reused if already there) instead of a
    /// temporary directory that is removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// Worker threads for this process [default: all cores with --connect, else half of them,
    /// the other half going to the server process it starts].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Client credentials for --connect.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// How the bulk phase sends its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BulkVia {
    /// Acknowledged `SinkRequest` calls.
    Call,
    /// Unframed bytes on one stream to the discard sink.
    Raw,
}

/// How the small-RPC phase sends its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RpcVia {
    /// `Connection::call`.
    Call,
    /// All calls pipelined on one ordered channel.
    Channel,
}

/// Arguments of `sluice transport-perf-server`.
#[derive(Debug, clap::Args)]
pub struct PerfServerArgs {
    /// Address to listen on (UDP); port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Server credentials.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Parses `100`, `64K`, `16M`, `1G` (binary units; a trailing `B` or `iB` is allowed).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("{s:?} is not a size like 100, 64K, 16M or 1G"))?;
    n.checked_mul(mult).ok_or_else(|| format!("{s} is too large"))
}

fn runtime_with(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build().context("cannot start the async runtime")
}

/// `sluice transport-perf-server`.
pub fn run_server(args: PerfServerArgs) -> Result<()> {
    let identity = args.tls.load()?;
    runtime_with(args.threads)?.block_on(async move {
        let opts =
            ServerOptions { name: "transport-perf-server".into(), discard: true, ..ServerOptions::default() };
        let server = Server::<Perf>::bind(args.listen, &identity, opts)?;
        let addr = server.local_addr()?;
        println!("listening on {addr}");
        std::io::stdout().flush()?;
        server.serve(Arc::new(Typed(PerfServer::default())), shutdown_signal()).await;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `sluice transport-perf-test`.
pub fn run_test(args: PerfTestArgs) -> Result<()> {
    if args.frame_bytes == 0 || args.bulk_in_flight == 0 || args.concurrency.contains(&0) {
        bail!("--frame-bytes, --bulk-in-flight and every --concurrency value must be at least 1");
    }
    if !args.rpc_seconds.is_finite() || args.rpc_seconds < 0.0 {
        bail!("--rpc-seconds must be a number of seconds, 0 or more");
    }
    let threads = args.threads.or_else(|| args.connect.is_none().then(half_the_cores));
    runtime_with(threads)?.block_on(run_test_async(args))
}

/// Half the machine's cores (at least one): the share of each process when the test runs
/// client and server on one machine.
fn half_the_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get() / 2).unwrap_or(1).max(1)
}

async fn run_test_async(args: PerfTestArgs) -> Result<()> {
    let _temp;
    let (addr, tls, child) = match &args.connect {
        Some(addr) => (addr.clone(), ClientTls::new(args.tls.load()?), None),
        None => {
            let dir = match &args.certs_dir {
                Some(d) => d.clone(),
                None => {
                    let t = tempfile::tempdir().context("cannot make a temporary directory")?;
                    let p = t.path().to_path_buf();
                    _temp = t;
                    p
                }
            };
            ensure_certs(&dir)?;
            let (child, addr) = spawn_server(&dir, half_the_cores()).await?;
            let tls = ClientTls::new(TlsArgs::from_files(&files_in(&dir, "perf-client")).load()?);
            (addr, tls, Some(child))
        }
    };
    let opts = ClientOptions { request_timeout: Duration::from_secs(60), ..ClientOptions::default() };
    let client = Client::<Perf>::new(&tls, opts)?;
    let conn = client.connection(&addr).await?;
    let me = conn.call(WhoAmI).await?;
    let server_pid = child.as_ref().and_then(|c| c.id()).map(|p| format!(", pid {p}")).unwrap_or_default();
    println!(
        "transport-perf-test: {} over QUIC, TLS 1.3 with client certificates; client {me:?} (pid {}) -> server {:?} at {addr}{server_pid}",
        <Perf as sluice_net::Protocol>::ALPN,
        std::process::id(),
        conn.server_name(),
    );
    if args.bulk_bytes > 0 {
        match args.bulk_via {
            BulkVia::Call => bulk(&conn, &args).await?,
            BulkVia::Raw => bulk_raw(&conn, &args).await?,
        }
    }
    if args.bulk_bytes > 0 {
        let p = conn.quic().stats().path;
        println!(
            "quic path: {} packets sent, {} lost ({} congestion events), rtt {:.3} ms (min {:.3}), cwnd {} KiB, mtu {}",
            p.sent_packets,
            p.lost_packets,
            p.congestion_events,
            p.rtt.as_secs_f64() * 1e3,
            p.min_rtt.as_secs_f64() * 1e3,
            p.cwnd >> 10,
            p.current_mtu,
        );
    }
    if args.rpc_seconds > 0.0 {
        for &c in &args.concurrency {
            small_rpcs(&conn, &args, c).await?;
        }
    }
    conn.close();
    if let Some(mut child) = child {
        let _ = child.kill().await;
    }
    Ok(())
}

/// Makes (or reuses) a CA with `perf-server` and `perf-client` certificates in `dir`.
fn ensure_certs(dir: &std::path::Path) -> Result<()> {
    if !dir.join(sluice_certs::CA_CERT_FILE).exists() {
        sluice_certs::init(dir, &["perf-server".into()], &["perf-client".into()], &[], false)?;
        return Ok(());
    }
    for (name, role) in [("perf-server", Role::Node), ("perf-client", Role::Client)] {
        if !sluice_certs::IssuedCert::cert_path(dir, name).exists() {
            sluice_certs::issue(dir, &CertSpec::new(name, role))?;
        }
    }
    Ok(())
}

async fn spawn_server(dir: &std::path::Path, threads: usize) -> Result<(tokio::process::Child, String)> {
    let exe = std::env::current_exe().context("cannot find the sluice executable")?;
    let files = files_in(dir, "perf-server");
    let mut child = tokio::process::Command::new(exe)
        .arg("transport-perf-server")
        .args(["--listen", "127.0.0.1:0"])
        .args(["--threads", &threads.to_string()])
        .arg("--tls-ca")
        .arg(&files.ca)
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start transport-perf-server")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("server stdout not captured"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .map_err(|_| anyhow!("transport-perf-server did not say where it listens within 20 s"))?
        .context("reading transport-perf-server output")?
        .ok_or_else(|| anyhow!("transport-perf-server exited before listening (see its error above)"))?;
    let addr = line
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow!("unexpected transport-perf-server output: {line:?}"))?
        .to_string();
    Ok((child, addr))
}

/// Prints a progress line every second while `done` is false.
fn progress(label: String, total: u64, count: Arc<AtomicU64>, done: Arc<AtomicBool>, unit: &'static str) {
    tokio::spawn(async move {
        let tty = std::io::stderr().is_terminal();
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if done.load(Ordering::Relaxed) {
                break;
            }
            let n = count.load(Ordering::Relaxed);
            let secs = start.elapsed().as_secs_f64();
            let line = if total > 0 {
                format!(
                    "{label}: {} of {} {unit} ({:.0}%), {:.0} s",
                    n,
                    total,
                    n as f64 * 100.0 / total as f64,
                    secs
                )
            } else {
                format!("{label}: {n} {unit}, {secs:.0} s")
            };
            if tty {
                eprint!("\r{line}    ");
            } else {
                eprintln!("{line}");
            }
        }
        if tty {
            eprint!("\r{:79}\r", "");
        }
    });
}

async fn bulk(conn: &Connection<Perf>, args: &PerfTestArgs) -> Result<()> {
    let frames = args.bulk_bytes.div_ceil(args.frame_bytes);
    let frame = usize::try_from(args.frame_bytes).context("--frame-bytes too large")?;
    let next = Arc::new(AtomicU64::new(0));
    let sent_mib = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    progress("bulk".into(), (frames * args.frame_bytes) >> 20, sent_mib.clone(), done.clone(), "MiB");
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.bulk_in_flight {
        let (conn, next, sent_mib) = (conn.clone(), next.clone(), sent_mib.clone());
        let payload = bytes::Bytes::from((0..frame).map(|i| i as u8).collect::<Vec<u8>>());
        tasks.spawn(async move {
            let mut acked = 0u64;
            while next.fetch_add(1, Ordering::Relaxed) < frames {
                let reply = conn.call(SinkRequest { data: payload.clone() }).await?;
                if reply.received != payload.len() as u64 {
                    bail!("server acknowledged {} bytes of a {} byte frame", reply.received, payload.len());
                }
                acked += reply.received;
                sent_mib.store(
                    ((next.load(Ordering::Relaxed).min(frames)) * payload.len() as u64) >> 20,
                    Ordering::Relaxed,
                );
            }
            Ok(acked)
        });
    }
    let mut total = 0u64;
    while let Some(r) = tasks.join_next().await {
        total += r.context("bulk task panicked")??;
    }
    done.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bulk       {:>6} MiB in {} KiB frames, {} in flight: {:>7.2} s {:>8.1} MB/s ({:.1} MiB/s)",
        total >> 20,
        args.frame_bytes >> 10,
        args.bulk_in_flight,
        secs,
        total as f64 / secs / 1e6,
        total as f64 / secs / (1u64 << 20) as f64,
    );
    Ok(())
}

async fn bulk_raw(conn: &Connection<Perf>, args: &PerfTestArgs) -> Result<()> {
    let frame = usize::try_from(args.frame_bytes).context("--frame-bytes too large")?;
    let chunk = bytes::Bytes::from((0..frame).map(|i| i as u8).collect::<Vec<u8>>());
    let start = Instant::now();
    let received = conn.discard(chunk, args.bulk_bytes).await?;
    let secs = start.elapsed().as_secs_f64();
    if received != args.bulk_bytes {
        bail!("server received {received} of {} bytes", args.bulk_bytes);
    }
    println!(
        "bulk raw   {:>6} MiB unframed on one stream:   {:>7.2} s {:>8.1} MB/s ({:.1} MiB/s)",
        received >> 20,
        secs,
        received as f64 / secs / 1e6,
        received as f64 / secs / (1u64 << 20) as f64,
    );
    Ok(())
}

async fn small_rpcs(conn: &Connection<Perf>, args: &PerfTestArgs, concurrency: usize) -> Result<()> {
    let payload = vec![7u8; usize::try_from(args.rpc_bytes).context("--rpc-bytes too large")?];
    let run_for = Duration::from_secs_f64(args.rpc_seconds);
    let calls = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    progress(format!("rpc concurrency {concurrency}"), 0, calls.clone(), done.clone(), "calls");
    let start = Instant::now();
    let deadline = start + run_for;
    let channel = match args.rpc_via {
        RpcVia::Call => None,
        RpcVia::Channel => Some(conn.open_ordered().await?),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (conn, calls, payload) = (conn.clone(), calls.clone(), payload.clone());
        let caller = channel.as_ref().map(|c| c.caller());
        tasks.spawn(async move {
            let mut latencies_us = Vec::with_capacity(1 << 16);
            let mut id = (w as u64) << 40;
            while Instant::now() < deadline {
                id += 1;
                let t = Instant::now();
                let req = EchoRequest::new(id, payload.clone());
                let reply = match &caller {
                    Some(c) => c.call(req).await?,
                    None => conn.call(req).await?,
                };
                latencies_us.push(t.elapsed().as_micros() as u64);
                if reply.id != id || reply.payload.len() != payload.len() {
                    bail!("echo {id} answered with id {} and {} bytes", reply.id, reply.payload.len());
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
            Ok(latencies_us)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.context("rpc task panicked")??);
    }
    done.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    println!(
        "rpc {:>4} B {:<7} concurrency {:>3}: {:>9} calls in {:>5.2} s {:>9.0} calls/s   p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        args.rpc_bytes,
        match args.rpc_via {
            RpcVia::Call => "call",
            RpcVia::Channel => "channel",
        },
        concurrency,
        all.len(),
        secs,
        all.len() as f64 / secs,
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        all.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_junk() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }
}
