//! The shared counter (kazoo's `Counter`): one znode holding a decimal value, changed by
//! versioned sets, so concurrent adds never lose one another.
//!
//! ```sh
//! export SLUICE_TLS_CA=certs/ca.pem SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example keeper_counter -- --zookeeper 127.0.0.1:2181 --path /counters/runs --add 1 --times 10
//! ```

use clap::Parser;
use sluice_client::keeper::{Counter, KeeperClient, KeeperClientOptions};

/// Add --add to the counter at --path, --times times, then print `<path> = <value>`.
///
/// This client's certificate comes from SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY.
#[derive(Debug, Parser)]
struct Args {
    /// The keeper ensemble, HOST:PORT[,HOST:PORT...][/chroot].
    #[arg(long)]
    zookeeper: String,
    /// The counter's node (created on the first add).
    #[arg(long)]
    path: String,
    /// What to add each time (negative subtracts).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    add: i64,
    /// How many times to add.
    #[arg(long, default_value_t = 1)]
    times: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tls = sluice_client::tls_from_env()?;
    let (keeper, _events) =
        KeeperClient::connect(&args.zookeeper, &tls, KeeperClientOptions::default()).await?;
    let counter = Counter::new(keeper.clone(), args.path.as_str());
    for _ in 0..args.times {
        counter.add(args.add).await?;
    }
    println!("{} = {}", args.path, counter.value().await?);
    keeper.close().await?;
    Ok(())
}
