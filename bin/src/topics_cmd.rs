//! `sluice topics`: kafka-topics.sh — create, delete, list and describe topics, with Kafka's
//! arguments and output.
//!
//! - `--create --topic T [--partitions N] [--replication-factor N | --replica-assignment
//!   1:2,2:3] [--config K=V ...] [--if-not-exists]` prints `Created topic T.`
//! - `--delete --topic T [--if-exists]` prints `Topic T is marked for deletion.`
//! - `--alter --topic T --partitions N [--replica-assignment ...]` adds partitions (never
//!   removes any), printing nothing, as Kafka's does; configs change with `sluice configs`.
//! - `--list [--topic T] [--exclude-internal]` prints one name per line.
//! - `--describe [--topic T] [--if-exists] [--exclude-internal]
//!   [--under-replicated-partitions | --unavailable-partitions]` prints, per topic,
//!   `Topic: T\tPartitionCount: N\tReplicationFactor: N\tConfigs: k=v,...` and one
//!   `\tTopic: T\tPartition: P\tLeader: L\tReplicas: a,b\tIsr: a,b[\tOffline: c]` line per
//!   partition (`Leader: none` without one). With a partition filter only the matching
//!   partition lines are printed, as Kafka does.
//!
//! Unlike Kafka, `--topic` is a name, not a regular expression. A broker's refusal is
//! reported with the topic and the broker's own message, and the command exits non-zero.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use sluice_client::broker::proto::{BrokerError, PartitionMetadata};
use sluice_client::broker::{Admin, NewTopic, TopicMetadata};

use crate::client_args::{ClientArgs, KeyValue};

/// Arguments of `sluice topics`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["create", "delete", "describe", "list", "alter"])))]
pub struct TopicsArgs {
    /// Create a topic (needs --topic).
    #[arg(long)]
    pub create: bool,
    /// Delete a topic (needs --topic; the brokers must allow it: delete.topic.enable).
    #[arg(long)]
    pub delete: bool,
    /// Add partitions to a topic (needs --topic and --partitions, the new total; with
    /// --replica-assignment, the replicas of the new partitions only). Records with keys
    /// may map to other partitions afterwards. Config changes: `sluice configs --alter`.
    #[arg(long)]
    pub alter: bool,
    /// Describe a topic, or every topic without --topic: partitions, leaders, replicas,
    /// in-sync replicas and config overrides.
    #[arg(long)]
    pub describe: bool,
    /// List topic names, one per line.
    #[arg(long)]
    pub list: bool,
    /// The topic (an exact name; for --list and --describe optional: all topics).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Partitions of the new topic [default: the brokers' num.partitions]; with --alter,
    /// the topic's new partition count.
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// Replicas of each partition of the new topic [default: the brokers'
    /// default.replication.factor].
    #[arg(long, value_name = "N", conflicts_with = "replica_assignment")]
    pub replication_factor: Option<i16>,
    /// A topic config override for the new topic, e.g. --config retention.ms=86400000
    /// (repeat for more).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub configs: Vec<KeyValue>,
    /// Explicit replicas of the new topic: partitions separated by commas, each partition's
    /// broker ids by colons, the preferred leader first; e.g. 1:2,2:3,3:1 is 3 partitions
    /// with 2 replicas each.
    #[arg(long, value_name = "ASSIGNMENT")]
    pub replica_assignment: Option<String>,
    /// With --create: succeed silently if the topic exists already.
    #[arg(long)]
    pub if_not_exists: bool,
    /// With --delete or --describe: succeed silently if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// With --list or --describe: leave out the cluster's internal topics.
    #[arg(long)]
    pub exclude_internal: bool,
    /// With --describe: only partitions with fewer in-sync replicas than replicas.
    #[arg(long, conflicts_with = "unavailable_partitions")]
    pub under_replicated_partitions: bool,
    /// With --describe: only partitions without a leader.
    #[arg(long)]
    pub unavailable_partitions: bool,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `sluice topics`.
pub fn run(args: TopicsArgs) -> Result<()> {
    check_combinations(&args)?;
    let assignment = args.replica_assignment.as_deref().map(parse_replica_assignment).transpose()?;
    let configs = parse_configs(&args.configs)?;
    let config = args.client.client_config()?;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let admin = Admin::new(config)?;
        if args.create {
            let name = required_topic(&args, "--create")?;
            let topic = NewTopic {
                name: name.to_string(),
                partitions: args.partitions,
                replication_factor: args.replication_factor,
                assignment,
                configs,
            };
            create(&admin, topic, args.if_not_exists).await
        } else if args.delete {
            delete(&admin, required_topic(&args, "--delete")?, args.if_exists).await
        } else if args.alter {
            let name = required_topic(&args, "--alter")?;
            let count = args.partitions.context("--alter needs --partitions N (the new total)")?;
            let new = assignment.map(|a| a.into_values().collect());
            admin
                .create_partitions(name, count, new)
                .await
                .with_context(|| format!("cannot alter topic {name}"))?;
            Ok(())
        } else if args.list {
            let mut names = admin.list_topics(!args.exclude_internal).await?;
            if let Some(t) = &args.topic {
                names.retain(|n| n == t);
            }
            for n in names {
                println!("{n}");
            }
            Ok(())
        } else {
            describe(&admin, &args).await
        }
    })
}

fn required_topic<'a>(args: &'a TopicsArgs, action: &str) -> Result<&'a str> {
    args.topic.as_deref().ok_or_else(|| anyhow!("{action} needs --topic NAME"))
}

/// The flag combinations Kafka refuses (clap counts a flag's default as given, so these
/// are checked here).
fn check_combinations(args: &TopicsArgs) -> Result<()> {
    if args.partitions.is_some() && !(args.create || args.alter) {
        bail!("--partitions goes with --create or --alter");
    }
    if args.replica_assignment.is_some() && !(args.create || args.alter) {
        bail!("--replica-assignment goes with --create or --alter");
    }
    if args.create && args.partitions.is_some() && args.replica_assignment.is_some() {
        bail!("--partitions and --replica-assignment exclude each other with --create (the assignment sets the count)");
    }
    let create_only = [
        ("--replication-factor", args.replication_factor.is_some()),
        ("--config", !args.configs.is_empty()),
        ("--if-not-exists", args.if_not_exists),
    ];
    if let Some((flag, _)) = create_only.iter().find(|(_, given)| *given).filter(|_| !args.create) {
        bail!("{flag} goes with --create");
    }
    let describe_only = [
        ("--under-replicated-partitions", args.under_replicated_partitions),
        ("--unavailable-partitions", args.unavailable_partitions),
    ];
    if let Some((flag, _)) = describe_only.iter().find(|(_, given)| *given).filter(|_| !args.describe) {
        bail!("{flag} goes with --describe");
    }
    if args.if_exists && !(args.delete || args.describe) {
        bail!("--if-exists goes with --delete or --describe");
    }
    if args.exclude_internal && !(args.list || args.describe) {
        bail!("--exclude-internal goes with --list or --describe");
    }
    Ok(())
}

async fn create(admin: &Admin, topic: NewTopic, if_not_exists: bool) -> Result<()> {
    let name = topic.name.clone();
    let results = admin.create_topics(vec![topic], false).await?;
    let result = results.into_iter().find(|(n, _)| *n == name).map(|(_, r)| r);
    match result {
        Some(Ok(())) => {
            println!("Created topic {name}.");
            Ok(())
        }
        Some(Err(BrokerError::TopicAlreadyExists { .. })) if if_not_exists => Ok(()),
        Some(Err(e @ BrokerError::TopicAlreadyExists { .. })) => {
            bail!("cannot create topic {name}: {e} (pass --if-not-exists to accept an existing topic)")
        }
        Some(Err(e)) => bail!("cannot create topic {name}: {e}"),
        None => bail!("cannot create topic {name}: the controller's answer did not mention it"),
    }
}

async fn delete(admin: &Admin, name: &str, if_exists: bool) -> Result<()> {
    let results = admin.delete_topics(vec![name.to_string()]).await?;
    match results.into_iter().find(|(n, _)| n == name).map(|(_, r)| r) {
        Some(Ok(())) => {
            println!("Topic {name} is marked for deletion.");
            Ok(())
        }
        Some(Err(BrokerError::UnknownTopicOrPartition { .. })) if if_exists => Ok(()),
        Some(Err(BrokerError::UnknownTopicOrPartition { .. })) => Err(does_not_exist(name)),
        Some(Err(e)) => bail!("cannot delete topic {name}: {e}"),
        None => bail!("cannot delete topic {name}: the controller's answer did not mention it"),
    }
}

fn does_not_exist(name: &str) -> anyhow::Error {
    anyhow!(
        "topic {name} does not exist (see `sluice topics --list`; pass --if-exists to accept a missing topic)"
    )
}

/// Which partitions `--describe` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionFilter {
    All,
    UnderReplicated,
    Unavailable,
}

impl PartitionFilter {
    fn shows(self, p: &PartitionMetadata) -> bool {
        match self {
            PartitionFilter::All => true,
            PartitionFilter::UnderReplicated => p.isr.len() < p.replicas.len(),
            PartitionFilter::Unavailable => p.leader.is_none(),
        }
    }
}

async fn describe(admin: &Admin, args: &TopicsArgs) -> Result<()> {
    let names = match &args.topic {
        Some(t) => vec![t.clone()],
        None => admin.list_topics(!args.exclude_internal).await?,
    };
    if names.is_empty() {
        return Ok(());
    }
    let topics = admin.describe_topics(names.clone()).await?;
    let configs: BTreeMap<String, BTreeMap<String, String>> = admin
        .describe_configs(names.clone())
        .await?
        .into_iter()
        .filter_map(|(name, r)| r.ok().map(|c| (name, c)))
        .collect();
    let filter = if args.under_replicated_partitions {
        PartitionFilter::UnderReplicated
    } else if args.unavailable_partitions {
        PartitionFilter::Unavailable
    } else {
        PartitionFilter::All
    };
    let mut failed = Vec::new();
    for name in &names {
        let Some(t) = topics.iter().find(|t| t.name == *name) else {
            failed.push(format!("topic {name}: not in the brokers' answer"));
            continue;
        };
        if args.exclude_internal && t.internal {
            continue;
        }
        match &t.error {
            None => {}
            Some(BrokerError::UnknownTopicOrPartition { .. }) if args.if_exists => continue,
            Some(BrokerError::UnknownTopicOrPartition { .. }) => {
                failed.push(does_not_exist(name).to_string());
                continue;
            }
            Some(e) => {
                failed.push(format!("cannot describe topic {name}: {e}"));
                continue;
            }
        }
        let empty = BTreeMap::new();
        print!("{}", describe_topic(t, configs.get(name).unwrap_or(&empty), filter));
    }
    match failed.len() {
        0 => Ok(()),
        1 => Err(anyhow!("{}", failed[0])),
        _ => Err(anyhow!("{}", failed.join("\n"))),
    }
}

/// Kafka's `--describe` text for one topic: the header (unless only some partitions are
/// asked for) and one line per shown partition, each ending in a newline.
fn describe_topic(t: &TopicMetadata, configs: &BTreeMap<String, String>, filter: PartitionFilter) -> String {
    let mut out = String::new();
    if filter == PartitionFilter::All {
        let replication_factor = t.partitions.first().map_or(0, |p| p.replicas.len());
        let configs: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
            t.name,
            t.partitions.len(),
            replication_factor,
            configs.join(",")
        ));
    }
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in t.partitions.iter().filter(|p| filter.shows(p)) {
        let leader = p.leader.map_or_else(|| "none".to_string(), |l| l.to_string());
        out.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            t.name,
            p.partition,
            leader,
            ids(&p.replicas),
            ids(&p.isr)
        ));
        if !p.offline_replicas.is_empty() {
            out.push_str(&format!("\tOffline: {}", ids(&p.offline_replicas)));
        }
        out.push('\n');
    }
    out
}

/// Kafka's `--replica-assignment`: partitions separated by commas, each partition's broker
/// ids by colons (`1:2,2:3`), numbered from 0. Every partition needs the same number of
/// replicas and no broker twice.
pub fn parse_replica_assignment(text: &str) -> Result<BTreeMap<i32, Vec<i32>>> {
    let mut out = BTreeMap::new();
    let mut factor = None;
    for (i, part) in text.split(',').enumerate() {
        let replicas = part
            .split(':')
            .map(|id| {
                id.trim().parse::<i32>().ok().filter(|&b| b >= 0).ok_or_else(|| {
                    anyhow!(
                        "--replica-assignment {text:?}: {id:?} (partition {i}) is not a broker id; expected \
                         broker ids, colons between a partition's replicas and commas between partitions, \
                         e.g. 1:2,2:3"
                    )
                })
            })
            .collect::<Result<Vec<i32>>>()?;
        if let Some(dup) = replicas.iter().enumerate().find(|(j, b)| replicas[..*j].contains(b)) {
            bail!(
                "--replica-assignment {text:?}: partition {i} lists broker {} twice; a partition's replicas \
                 must be on different brokers",
                dup.1
            );
        }
        match factor {
            None => factor = Some(replicas.len()),
            Some(f) if f != replicas.len() => bail!(
                "--replica-assignment {text:?}: partition {i} has {} replicas but partition 0 has {f}; every \
                 partition needs the same number",
                replicas.len()
            ),
            Some(_) => {}
        }
        let index = i32::try_from(i).context("--replica-assignment lists too many partitions")?;
        out.insert(index, replicas);
    }
    Ok(out)
}

/// `--config K=V` arguments as a map; a key given twice is refused.
fn parse_configs(given: &[KeyValue]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for kv in given {
        if kv.value.trim().is_empty() {
            bail!("--config {}=: give a value", kv.key);
        }
        if out.insert(kv.key.clone(), kv.value.trim().to_string()).is_some() {
            bail!("--config {} is given twice", kv.key);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn partition(
        partition: i32,
        leader: Option<i32>,
        replicas: &[i32],
        isr: &[i32],
        offline: &[i32],
    ) -> PartitionMetadata {
        PartitionMetadata {
            partition,
            leader,
            leader_epoch: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline_replicas: offline.to_vec(),
        }
    }

    fn topic() -> TopicMetadata {
        TopicMetadata {
            name: "orders".into(),
            error: None,
            internal: false,
            partitions: vec![
                partition(0, Some(1), &[1, 2, 3], &[1, 2, 3], &[]),
                partition(1, Some(2), &[2, 3, 1], &[2, 1], &[3]),
                partition(2, None, &[3, 1, 2], &[], &[3, 1, 2]),
            ],
        }
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        topics: TopicsArgs,
    }

    fn parse(args: &[&str]) -> Result<TopicsArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("topics").chain(args.iter().copied())).map(|c| c.topics)
    }

    #[test]
    fn describe_prints_kafkas_header_and_partition_lines() {
        let configs: BTreeMap<String, String> = [("retention.ms", "1000"), ("cleanup.policy", "compact")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(
            describe_topic(&topic(), &configs, PartitionFilter::All),
            "Topic: orders\tPartitionCount: 3\tReplicationFactor: 3\tConfigs: cleanup.policy=compact,retention.ms=1000\n\
             \tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\n\
             \tTopic: orders\tPartition: 1\tLeader: 2\tReplicas: 2,3,1\tIsr: 2,1\tOffline: 3\n\
             \tTopic: orders\tPartition: 2\tLeader: none\tReplicas: 3,1,2\tIsr: \tOffline: 3,1,2\n"
        );
        let empty = TopicMetadata { partitions: vec![], ..topic() };
        assert_eq!(
            describe_topic(&empty, &BTreeMap::new(), PartitionFilter::All),
            "Topic: orders\tPartitionCount: 0\tReplicationFactor: 0\tConfigs: \n"
        );
    }

    #[test]
    fn partition_filters_print_only_matching_partitions_without_the_header() {
        let under = describe_topic(&topic(), &BTreeMap::new(), PartitionFilter::UnderReplicated);
        assert_eq!(under.lines().count(), 2, "{under}");
        assert!(under.starts_with("\tTopic: orders\tPartition: 1\t"), "{under}");
        let unavailable = describe_topic(&topic(), &BTreeMap::new(), PartitionFilter::Unavailable);
        assert_eq!(
            unavailable,
            "\tTopic: orders\tPartition: 2\tLeader: none\tReplicas: 3,1,2\tIsr: \tOffline: 3,1,2\n"
        );
    }

    #[test]
    fn replica_assignments_use_commas_between_partitions_and_colons_between_replicas() {
        let a = parse_replica_assignment("1:2, 2:3 ,3:1").expect("valid");
        assert_eq!(a, BTreeMap::from([(0, vec![1, 2]), (1, vec![2, 3]), (2, vec![3, 1])]));
        assert_eq!(parse_replica_assignment("5").expect("one replica"), BTreeMap::from([(0, vec![5])]));
        let err = parse_replica_assignment("1:2,3").expect_err("uneven").to_string();
        assert!(err.contains("partition 1 has 1 replicas but partition 0 has 2"), "{err}");
        let err = parse_replica_assignment("1:1").expect_err("twice").to_string();
        assert!(err.contains("partition 0 lists broker 1 twice"), "{err}");
        for bad in ["", "1,,2", "1:x", "1;2", "-1", "1:"] {
            let err = parse_replica_assignment(bad).expect_err(bad).to_string();
            assert!(err.contains("is not a broker id") && err.contains("e.g. 1:2,2:3"), "{bad}: {err}");
        }
    }

    #[test]
    fn configs_are_key_value_pairs_given_once_each() {
        let given: Vec<KeyValue> = ["retention.ms=5", "cleanup.policy=compact,delete"]
            .iter()
            .map(|s| s.parse().expect("kv"))
            .collect();
        let c = parse_configs(&given).expect("valid");
        assert_eq!(c.get("cleanup.policy").map(String::as_str), Some("compact,delete"));
        let twice: Vec<KeyValue> = ["a=1", "a=2"].iter().map(|s| s.parse().expect("kv")).collect();
        assert!(parse_configs(&twice).expect_err("twice").to_string().contains("given twice"));
        assert!(parse_configs(&["a=".parse().expect("kv")]).is_err());
    }

    #[test]
    fn exactly_one_action_and_only_the_flags_it_takes() {
        let a =
            parse(&["--create", "--topic", "t", "--partitions", "3", "--config", "a=1", "--config", "b=2"])
                .expect("valid");
        assert!(a.create && a.partitions == Some(3) && a.configs.len() == 2);
        assert!(parse(&["--topic", "t"]).is_err(), "no action");
        assert!(parse(&["--create", "--list"]).is_err(), "two actions");
        let a = parse(&["--list", "--partitions", "3"]).expect("clap accepts it");
        let err = check_combinations(&a).expect_err("--partitions needs --create").to_string();
        assert_eq!(err, "--partitions goes with --create or --alter");
        let a = parse(&["--delete", "--topic", "t", "--unavailable-partitions"]).expect("clap accepts it");
        assert!(check_combinations(&a).is_err(), "a describe filter");
        let a = parse(&["--create", "--topic", "t", "--partitions", "3", "--replica-assignment", "1"])
            .expect("clap accepts it");
        assert!(check_combinations(&a).is_err(), "an assignment fixes the partition count of a new topic");
        let a = parse(&["--alter", "--topic", "t", "--partitions", "3", "--replica-assignment", "1:2"])
            .expect("valid: the new partition's replicas");
        check_combinations(&a).expect("--alter takes both");
        let a = parse(&["--list", "--if-exists"]).expect("clap accepts it");
        assert!(check_combinations(&a).is_err(), "--if-exists is for --delete and --describe");
        let a = parse(&["--describe", "--if-exists", "--exclude-internal"]).expect("valid");
        check_combinations(&a).expect("fine");
    }
}
