//! The lock recipe: waits for an exclusive lock (or, with --read, the shared side of a
//! read/write lock), holds it, releases it. Its nodes are kazoo's, so a Python process
//! using kazoo's `Lock` on the same path takes turns with this one.
//!
//! ```sh
//! export SLUICE_TLS_CA=certs/ca.pem SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example keeper_lock -- --zookeeper 127.0.0.1:2181 --path /locks/report --hold-ms 2000
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use sluice_client::keeper::{KeeperClient, KeeperClientOptions, Lock};

/// Take a lock on --path, hold it --hold-ms, release it. Prints `acquired <path> at <ms>`
/// and `released <path> at <ms>` (milliseconds since the Unix epoch). If this process dies
/// while holding the lock, its session's end (within --session-timeout-ms) frees it.
///
/// This client's certificate comes from SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY,
/// as the `sluice` tools read them.
#[derive(Debug, Parser)]
struct Args {
    /// The keeper ensemble, HOST:PORT[,HOST:PORT...][/chroot].
    #[arg(long)]
    zookeeper: String,
    /// The lock's node.
    #[arg(long)]
    path: String,
    /// Take the shared (read) side of a read/write lock.
    #[arg(long)]
    read: bool,
    /// How long to hold the lock.
    #[arg(long, default_value_t = 1000)]
    hold_ms: u64,
    /// Give up waiting after this long.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// The keeper session's timeout: how soon a dead holder's lock is freed.
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
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        ..KeeperClientOptions::default()
    };
    let (keeper, events) = KeeperClient::connect(&args.zookeeper, &tls, opts).await?;
    let mut lock = if args.read {
        Lock::read(keeper.clone(), events, args.path.as_str())
    } else {
        Lock::new(keeper.clone(), events, args.path.as_str())
    };
    println!("waiting for {}", args.path);
    if !lock.acquire(Duration::from_millis(args.timeout_ms)).await? {
        return Err(format!("{} was not free within {} ms", args.path, args.timeout_ms).into());
    }
    println!("acquired {} at {}", args.path, now_ms());
    tokio::time::sleep(Duration::from_millis(args.hold_ms)).await;
    // The time first: once released, another holder may print before this line.
    let at = now_ms();
    lock.release().await?;
    println!("released {} at {at}", args.path);
    keeper.close().await?;
    Ok(())
}
