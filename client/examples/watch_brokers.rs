//! A keeper watch: follows the brokers registered under `/brokers/ids`, printing each
//! change as it happens (a persistent watch: no re-arming, no missed change).
//!
//! ```sh
//! export SLUICE_TLS_CA=certs/ca.pem SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example watch_brokers -- --zookeeper 127.0.0.1:2181/sluice
//! ```

use clap::Parser;
use sluice_client::keeper::{KeeperClient, KeeperClientOptions, KeeperEvent};

/// Print the brokers registered in the keeper, then every change to them (a broker joining
/// or leaving), until Ctrl-C or --max-changes.
///
/// This client's certificate comes from SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY,
/// as the `sluice` tools read them.
#[derive(Debug, Parser)]
struct Args {
    /// The keeper ensemble and the cluster's chroot, HOST:PORT[,HOST:PORT...][/chroot].
    #[arg(long)]
    zookeeper: String,
    /// Stop after this many changes [default: run until Ctrl-C].
    #[arg(long)]
    max_changes: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tls = sluice_client::tls_from_env()?;
    let (keeper, mut events) =
        KeeperClient::connect(&args.zookeeper, &tls, KeeperClientOptions::default()).await?;
    // The watch first, then the read: a change between them is not missed.
    keeper.add_watch("/brokers/ids", false).await?;
    println!("brokers: {:?}", keeper.children("/brokers/ids", false).await?);
    let mut changes = 0u64;
    while args.max_changes.is_none_or(|max| changes < max) {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => event,
        };
        match event {
            Some(KeeperEvent::Watch { event, path }) => {
                println!("{event:?} {path}: brokers now {:?}", keeper.children("/brokers/ids", false).await?);
                changes += 1;
            }
            Some(KeeperEvent::SessionExpired) | None => return Err("the keeper session ended".into()),
            // On a new connection a persistent watch may have missed changes: read again.
            Some(KeeperEvent::Resumed) => {
                println!("reconnected: brokers now {:?}", keeper.children("/brokers/ids", false).await?);
            }
            Some(KeeperEvent::ReadOnly(_)) => {}
        }
    }
    keeper.close().await?;
    Ok(())
}
