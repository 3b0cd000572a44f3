//! Leader election (kazoo's `Election`): contenders queue on one path; the first leads until
//! it resigns or its session ends, then the next one leads.
//!
//! ```sh
//! export SLUICE_TLS_CA=certs/ca.pem SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example keeper_election -- --zookeeper 127.0.0.1:2181 --path /election/report --id worker-1
//! ```

use std::time::Duration;

use clap::Parser;
use sluice_client::keeper::{KeeperClient, KeeperClientOptions, Lock};

/// Campaign on --path as --id: wait to lead, print `<id> leads; contenders: [...]` (the
/// queue, the leader first), lead for --lead-ms, then resign (`<id> resigned`).
///
/// This client's certificate comes from SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY.
#[derive(Debug, Parser)]
struct Args {
    /// The keeper ensemble, HOST:PORT[,HOST:PORT...][/chroot].
    #[arg(long)]
    zookeeper: String,
    /// The election's node.
    #[arg(long)]
    path: String,
    /// This contender's identifier (what the others see in the queue).
    #[arg(long)]
    id: String,
    /// How long to lead before resigning.
    #[arg(long, default_value_t = 1000)]
    lead_ms: u64,
    /// Give up waiting to lead after this long.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tls = sluice_client::tls_from_env()?;
    let (keeper, events) =
        KeeperClient::connect(&args.zookeeper, &tls, KeeperClientOptions::default()).await?;
    let mut election =
        Lock::new(keeper.clone(), events, args.path.as_str()).with_identifier(args.id.as_str());
    println!("{} campaigns", args.id);
    if !election.acquire(Duration::from_millis(args.timeout_ms)).await? {
        return Err(format!("{} did not come to lead within {} ms", args.id, args.timeout_ms).into());
    }
    println!("{} leads; contenders: {:?}", args.id, election.contenders().await?);
    tokio::time::sleep(Duration::from_millis(args.lead_ms)).await;
    election.release().await?;
    println!("{} resigned", args.id);
    keeper.close().await?;
    Ok(())
}
