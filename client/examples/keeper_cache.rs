//! The tree cache (Curator's `TreeCache`): a subtree kept current in memory by a persistent
//! recursive watch, read again whole when the session moves to another server; with
//! `--node`, the node cache (Curator's `NodeCache`): that one node.
//!
//! ```sh
//! export SLUICE_TLS_CA=certs/ca.pem SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example keeper_cache -- --zookeeper 127.0.0.1:2181 --path /config
//! ```

use clap::Parser;
use sluice_client::keeper::{CacheEvent, KeeperClient, KeeperClientOptions, NodeCache, TreeCache};

/// Cache the tree under --path (with --node: that node alone) and print each change as it
/// arrives: `synced: N nodes` after each whole read, `added P = V`, `updated P = V`, `removed P`. Ends after --max-events
/// changes, or on Ctrl-C.
///
/// This client's certificate comes from SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY.
#[derive(Debug, Parser)]
struct Args {
    /// The keeper ensemble, HOST:PORT[,HOST:PORT...][/chroot].
    #[arg(long)]
    zookeeper: String,
    /// The subtree's root (it may not exist yet).
    #[arg(long)]
    path: String,
    /// Cache --path alone (a node cache), not its subtree.
    #[arg(long)]
    node: bool,
    /// Stop after this many added/updated/removed events [default: run until Ctrl-C].
    #[arg(long)]
    max_events: Option<u64>,
    /// The keeper session's timeout: how long this process may be unreachable before its
    /// session (and its nodes) end.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: u64,
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
    // Either cache; `cached` counts what it holds.
    let (tree, node, mut changes) = if args.node {
        let (cache, changes) = NodeCache::start(keeper.clone(), events, args.path.as_str()).await?;
        (None, Some(cache), changes)
    } else {
        let (cache, changes) = TreeCache::start(keeper.clone(), events, args.path.as_str()).await?;
        (Some(cache), None, changes)
    };
    let cached = || match (&tree, &node) {
        (Some(tree), _) => tree.snapshot().len(),
        (None, Some(node)) => usize::from(node.get().is_some()),
        (None, None) => 0,
    };
    let mut seen = 0u64;
    while args.max_events.is_none_or(|max| seen < max) {
        let change = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            change = changes.recv() => change,
        };
        match change {
            Some(CacheEvent::Synced) => println!("synced: {} nodes", cached()),
            Some(CacheEvent::Added(p, node)) => {
                println!("added {p} = {}", String::from_utf8_lossy(&node.data));
                seen += 1;
            }
            Some(CacheEvent::Updated(p, node)) => {
                println!("updated {p} = {}", String::from_utf8_lossy(&node.data));
                seen += 1;
            }
            Some(CacheEvent::Removed(p)) => {
                println!("removed {p}");
                seen += 1;
            }
            Some(CacheEvent::SessionExpired) | None => return Err("the keeper session ended".into()),
        }
    }
    drop((tree, node));
    keeper.close().await?;
    Ok(())
}
