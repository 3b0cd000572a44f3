//! `sluice configs` (kafka-configs.sh) for topics: describe a topic's config overrides and
//! change them while the cluster runs, with Kafka's flags and output lines.
//!
//! - `--describe --entity-type topics [--entity-name T]` prints, per topic, `Dynamic configs
//!   for topic T are:` and one `  k=v sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:k=v}`
//!   line per override.
//! - `--alter --entity-type topics --entity-name T [--add-config k=v,k2=[a,b]]
//!   [--delete-config k,k2]` prints `Completed updating config for topic T.`
//!
//! - `--describe | --alter --entity-type brokers --entity-default` does the same for the
//!   cluster-wide dynamic broker defaults (`Default configs for brokers in the cluster are:`,
//!   synonyms `DYNAMIC_DEFAULT_BROKER_CONFIG`; `Completed updating default config for brokers
//!   in the cluster.`).
//! - `--describe | --alter --entity-type brokers --entity-name ID` does it for one broker's own
//!   dynamic configs, over the defaults on that broker only (`Dynamic configs for broker ID
//!   are:`, synonyms `DYNAMIC_BROKER_CONFIG`, then the default's; `Completed updating config
//!   for broker ID.`).

use anyhow::{bail, Context, Result};
use sluice_client::broker::proto::ConfigOp;
use sluice_client::broker::Admin;

use crate::client_args::ClientArgs;

/// Arguments of `sluice configs`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["describe", "alter"])))]
pub struct ConfigsArgs {
    /// Print the entity's config overrides.
    #[arg(long)]
    pub describe: bool,
    /// Change the entity's configs (--add-config, --delete-config).
    #[arg(long)]
    pub alter: bool,
    /// `topics`, or `brokers` with --entity-default (the cluster-wide dynamic defaults) or
    /// --entity-name ID (one broker's own).
    #[arg(long, value_name = "TYPE")]
    pub entity_type: String,
    /// The topic [with --describe optional: every topic], or the broker id.
    #[arg(long, value_name = "NAME")]
    pub entity_name: Option<String>,
    /// With --entity-type brokers: the defaults every broker takes without a restart
    /// (log.retention.ms, log.segment.bytes, min.insync.replicas, ...).
    #[arg(long)]
    pub entity_default: bool,
    /// Configs to set: k=v pairs separated by commas; a list value in square brackets,
    /// e.g. cleanup.policy=[compact,delete],retention.ms=86400000.
    #[arg(long, value_name = "K=V,...")]
    pub add_config: Option<String>,
    /// Config overrides to remove (the brokers' defaults apply again), separated by commas.
    #[arg(long, value_name = "K,...")]
    pub delete_config: Option<String>,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `k=v,k2=[a,b]` as Kafka's `--add-config` reads it: commas inside brackets belong to the
/// value (and the brackets go).
pub fn parse_add_config(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth = depth
                    .checked_sub(1)
                    .with_context(|| format!("--add-config {text:?}: a ] without its ["))?
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        bail!("--add-config {text:?}: a [ without its ]");
    }
    parts.push(&text[start..]);
    for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
        let (key, value) = part
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .with_context(|| format!("--add-config: {part:?} is not KEY=VALUE"))?;
        let value = value.trim();
        let value = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
        pairs.push((key.trim().to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// Runs `sluice configs`.
pub fn run(args: ConfigsArgs) -> Result<()> {
    // None: topics; Some(None): the brokers' defaults; Some(Some(id)): one broker.
    let brokers: Option<Option<i32>> = match args.entity_type.as_str() {
        "topics" if args.entity_default => bail!("--entity-default goes with --entity-type brokers"),
        "topics" => None,
        "brokers" if args.entity_default && args.entity_name.is_some() => {
            bail!("--entity-type brokers takes --entity-default or --entity-name ID, not both")
        }
        "brokers" if args.entity_default => Some(None),
        "brokers" => {
            let name = args.entity_name.as_deref().context(
                "--entity-type brokers takes --entity-default (the cluster-wide dynamic defaults) or --entity-name ID",
            )?;
            let id = name
                .trim()
                .parse::<i32>()
                .with_context(|| format!("--entity-name {name:?}: give a broker id"))?;
            Some(Some(id))
        }
        "broker-loggers" => bail!("--entity-type broker-loggers: log levels are set with RUST_LOG at start"),
        other => bail!("--entity-type {other:?}: give topics or brokers"),
    };
    let mut ops = Vec::new();
    if let Some(add) = &args.add_config {
        ops.extend(parse_add_config(add)?.into_iter().map(|(k, v)| ConfigOp::Set(k, v)));
    }
    if let Some(delete) = &args.delete_config {
        ops.extend(
            delete
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| ConfigOp::Delete(k.to_string())),
        );
    }
    if args.alter && ops.is_empty() {
        bail!("--alter needs --add-config or --delete-config");
    }
    if args.describe && !ops.is_empty() {
        bail!("--add-config and --delete-config go with --alter");
    }
    let config = args.client.client_config()?;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let admin = Admin::new(config)?;
        if let Some(Some(id)) = brokers {
            if args.alter {
                admin
                    .alter_broker_configs(id, ops)
                    .await
                    .with_context(|| format!("cannot change the config of broker {id}"))?;
                println!("Completed updating config for broker {id}.");
            } else {
                let own = admin.describe_broker_configs(id).await?;
                let defaults = admin.describe_broker_defaults().await?;
                println!("Dynamic configs for broker {id} are:");
                for (k, v) in &own {
                    let default = defaults
                        .get(k)
                        .map(|d| format!(", DYNAMIC_DEFAULT_BROKER_CONFIG:{k}={d}"))
                        .unwrap_or_default();
                    println!("  {k}={v} sensitive=false synonyms={{DYNAMIC_BROKER_CONFIG:{k}={v}{default}}}");
                }
            }
            return Ok(());
        }
        if brokers.is_some() {
            if args.alter {
                admin
                    .alter_broker_defaults(ops)
                    .await
                    .context("cannot change the default config for brokers in the cluster")?;
                println!("Completed updating default config for brokers in the cluster.");
            } else {
                let defaults = admin.describe_broker_defaults().await?;
                println!("Default configs for brokers in the cluster are:");
                for (k, v) in defaults {
                    println!("  {k}={v} sensitive=false synonyms={{DYNAMIC_DEFAULT_BROKER_CONFIG:{k}={v}}}");
                }
            }
            return Ok(());
        }
        if args.alter {
            let name = args.entity_name.as_deref().context("--alter needs --entity-name TOPIC")?;
            admin
                .alter_topic_configs(name, ops)
                .await
                .with_context(|| format!("cannot change the configs of topic {name}"))?;
            println!("Completed updating config for topic {name}.");
            return Ok(());
        }
        let names = match &args.entity_name {
            Some(n) => vec![n.clone()],
            None => admin.list_topics(true).await?,
        };
        let configs = admin.describe_configs(names.clone()).await?;
        for name in names {
            let found = configs.iter().find(|(n, _)| *n == name).map(|(_, r)| r);
            match found {
                Some(Ok(overrides)) => {
                    println!("Dynamic configs for topic {name} are:");
                    for (k, v) in overrides {
                        println!("  {k}={v} sensitive=false synonyms={{DYNAMIC_TOPIC_CONFIG:{k}={v}}}");
                    }
                }
                Some(Err(e)) => bail!("cannot describe the configs of topic {name}: {e}"),
                None => bail!(
                    "cannot describe the configs of topic {name}: the broker's answer did not mention it"
                ),
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_reads_kafkas_bracketed_lists() {
        let pairs = parse_add_config("cleanup.policy=[compact,delete],retention.ms=1000").expect("parses");
        assert_eq!(
            pairs,
            [
                ("cleanup.policy".to_string(), "compact,delete".to_string()),
                ("retention.ms".into(), "1000".into())
            ]
        );
        assert!(parse_add_config("a=[1,2").is_err());
        assert!(parse_add_config("novalue").is_err());
    }
}
