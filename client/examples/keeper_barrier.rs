//! The double barrier (kazoo's `DoubleBarrier`): --members processes enter together, work,
//! and leave together.
//!
//! ```sh
//! export SLUICE_TLS_CA=certs/ca.pem SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example keeper_barrier -- --zookeeper 127.0.0.1:2181 --path /barriers/run --members 3 --id a
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use sluice_client::keeper::{DoubleBarrier, KeeperClient, KeeperClientOptions};

/// Arrive at the barrier on --path (`<id> arrived`), wait until --members have (`<id>
/// entered at <ms>`), work --work-ms, then leave and wait until all have (`<id> left at
/// <ms>`). Times are milliseconds since the Unix epoch.
///
/// This client's certificate comes from SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY.
#[derive(Debug, Parser)]
struct Args {
    /// The keeper ensemble, HOST:PORT[,HOST:PORT...][/chroot].
    #[arg(long)]
    zookeeper: String,
    /// The barrier's node.
    #[arg(long)]
    path: String,
    /// How many members the barrier waits for.
    #[arg(long)]
    members: usize,
    /// This member's name.
    #[arg(long)]
    id: String,
    /// How long to work between entering and leaving.
    #[arg(long, default_value_t = 200)]
    work_ms: u64,
    /// Give up on either wait after this long.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// The keeper session's timeout: how long this process may be unreachable before its
    /// session (and its nodes) end.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: u64,
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tls = sluice_client::tls_from_env()?;
    let opts = KeeperClientOptions {
        session_timeout: std::time::Duration::from_millis(args.session_timeout_ms),
        ..KeeperClientOptions::default()
    };
    let (keeper, events) = KeeperClient::connect(&args.zookeeper, &tls, opts).await?;
    let mut barrier = DoubleBarrier::new(keeper.clone(), events, args.path.as_str(), args.members)
        .with_identifier(args.id.as_str());
    let timeout = Duration::from_millis(args.timeout_ms);
    println!("{} arrived", args.id);
    if !barrier.enter(timeout).await? {
        return Err(
            format!("fewer than {} members arrived within {} ms", args.members, args.timeout_ms).into()
        );
    }
    println!("{} entered at {}", args.id, now_ms());
    tokio::time::sleep(Duration::from_millis(args.work_ms)).await;
    if !barrier.leave(timeout).await? {
        return Err(format!("the other members did not leave within {} ms", args.timeout_ms).into());
    }
    println!("{} left at {}", args.id, now_ms());
    keeper.close().await?;
    Ok(())
}
