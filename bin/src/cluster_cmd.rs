//! `sluice leader-election` (kafka-leader-election.sh) and `sluice log-dirs`
//! (kafka-log-dirs.sh), with Kafka's arguments and output.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sluice_client::broker::proto::{BrokerError, ElectionType};
use sluice_client::broker::{Admin, TopicPartition};

use crate::client_args::ClientArgs;

/// Arguments of `sluice leader-election`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["all_topic_partitions", "topic", "path_to_json_file"])))]
pub struct LeaderElectionArgs {
    /// `preferred` (each partition's first replica leads again) or `unclean` (a partition
    /// without a live leader gets its first live replica, in sync or not: what that replica
    /// lacks is lost).
    #[arg(long, value_name = "TYPE")]
    pub election_type: String,
    /// Every partition of every topic.
    #[arg(long)]
    pub all_topic_partitions: bool,
    /// The topic (needs --partition).
    #[arg(long, value_name = "TOPIC", requires = "partition")]
    pub topic: Option<String>,
    /// The partition of --topic.
    #[arg(long, value_name = "P")]
    pub partition: Option<i32>,
    /// Kafka's JSON file: {"partitions": [{"topic": "t", "partition": 0}]}.
    #[arg(long, value_name = "FILE")]
    pub path_to_json_file: Option<PathBuf>,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionsFile {
    partitions: Vec<PartitionEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionEntry {
    topic: String,
    partition: i32,
}

/// Runs `sluice leader-election`.
pub fn run_leader_election(args: LeaderElectionArgs) -> Result<()> {
    let kind = match args.election_type.to_ascii_lowercase().as_str() {
        "preferred" => ElectionType::Preferred,
        "unclean" => ElectionType::Unclean,
        other => bail!("--election-type {other:?}: give preferred or unclean"),
    };
    let partitions = if args.all_topic_partitions {
        None
    } else if let Some(path) = &args.path_to_json_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file: PartitionsFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not Kafka's format {{\"partitions\": [{{\"topic\": \"t\", \"partition\": 0}}]}}",
                path.display()
            )
        })?;
        Some(file.partitions.into_iter().map(|p| TopicPartition::new(p.topic, p.partition)).collect())
    } else {
        let topic = args.topic.clone().unwrap_or_default();
        let partition = args.partition.context("--topic needs --partition")?;
        Some(vec![TopicPartition::new(topic, partition)])
    };
    let config = args.client.client_config()?;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let admin = Admin::new(config)?;
        let results = admin.elect_leaders(kind, partitions).await?;
        let name = kind.name();
        let (mut done, mut already, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for (topic, partition, r) in results {
            let tp = TopicPartition::new(topic, partition).to_string();
            match r {
                Ok(()) => done.push(tp),
                Err(BrokerError::ElectionNotNeeded { .. }) => already.push(tp),
                Err(e) => failed.push((tp, e)),
            }
        }
        if !done.is_empty() {
            println!("Successfully completed leader election ({name}) for partitions {}", done.join(", "));
        }
        if !already.is_empty() {
            println!("Valid replica already elected for partitions {}", already.join(", "));
        }
        for (tp, e) in &failed {
            println!("Error completing leader election ({name}) for partition: {tp}: {e}");
        }
        if !failed.is_empty() {
            bail!("{} partition(s) could not be elected (see above)", failed.len());
        }
        Ok(())
    })
}

/// Arguments of `sluice log-dirs`.
#[derive(Debug, clap::Args)]
pub struct LogDirsArgs {
    /// Describe the brokers' log directories (the only action, as in Kafka).
    #[arg(long, required = true)]
    pub describe: bool,
    /// Only these brokers, comma-separated ids [default: every live broker].
    #[arg(long, value_name = "ID,ID,...")]
    pub broker_list: Option<String>,
    /// Only these topics' partitions, comma-separated.
    #[arg(long, value_name = "TOPIC,TOPIC,...")]
    pub topic_list: Option<String>,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `sluice log-dirs --describe`: Kafka's two lines, then one JSON object.
pub fn run_log_dirs(args: LogDirsArgs) -> Result<()> {
    let brokers: Option<Vec<i32>> = args
        .broker_list
        .as_deref()
        .map(|l| crate::client_args::int_list("--broker-list", "a broker id", l))
        .transpose()?;
    let topics: Option<BTreeSet<String>> =
        args.topic_list.as_deref().map(|l| l.split(',').map(|t| t.trim().to_string()).collect());
    let config = args.client.client_config()?;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let admin = Admin::new(config)?;
        println!("Querying brokers for log directories information");
        let dirs = admin.describe_log_dirs(brokers.as_deref()).await?;
        let ids: Vec<String> = dirs.keys().map(i32::to_string).collect();
        println!("Received log directory information from brokers {}", ids.join(","));
        let json = serde_json::json!({
            "version": 1,
            "brokers": dirs.iter().map(|(id, dirs)| serde_json::json!({
                "broker": id,
                "logDirs": dirs.iter().map(|d| serde_json::json!({
                    "logDir": d.path,
                    "error": null,
                    "partitions": d.partitions.iter()
                        .filter(|(t, _, _)| topics.as_ref().is_none_or(|ts| ts.contains(t)))
                        .map(|(t, p, size)| serde_json::json!({
                            "partition": format!("{t}-{p}"),
                            "size": size,
                            "offsetLag": 0,
                            "isFuture": false,
                        }))
                        .collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{json}");
        Ok(())
    })
}
