//! `sluice reassign-partitions` (kafka-reassign-partitions.sh): move partitions' replicas
//! between brokers, with Kafka's JSON files, flags and output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sluice_broker_core::metadata::BrokerEndpoint;
use sluice_broker_core::znodes::{self, PartitionMove, Reassignment};
use sluice_client::broker::proto::{ConfigOp, TopicMetadata};
use sluice_client::broker::Admin;

use crate::client_args::ClientArgs;

/// The topic configs naming the replicas a throttle applies to (Kafka's).
const LEADER_THROTTLED: &str = "leader.replication.throttled.replicas";
const FOLLOWER_THROTTLED: &str = "follower.replication.throttled.replicas";
/// The broker configs holding the throttle's rate, bytes per second (Kafka's).
const RATES: [&str; 2] = ["leader.replication.throttled.rate", "follower.replication.throttled.rate"];

/// Arguments of `sluice reassign-partitions`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["generate", "execute", "verify", "list"])))]
pub struct ReassignArgs {
    /// Propose a move of the topics in --topics-to-move-json-file onto --broker-list
    /// (prints the current and the proposed assignment; changes nothing).
    #[arg(long)]
    pub generate: bool,
    /// Start the moves in --reassignment-json-file (prints the current assignment first:
    /// save it to move back).
    #[arg(long)]
    pub execute: bool,
    /// Say which moves of --reassignment-json-file are complete; once all are, remove the
    /// throttle --execute set (unless --preserve-throttles).
    #[arg(long)]
    pub verify: bool,
    /// List the moves in progress.
    #[arg(long)]
    pub list: bool,
    /// Kafka's reassignment JSON: {"version":1,"partitions":[{"topic":"t","partition":0,
    /// "replicas":[2,3,4]}]}.
    #[arg(long, value_name = "FILE", required_if_eq_any([("execute", "true"), ("verify", "true")]))]
    pub reassignment_json_file: Option<PathBuf>,
    /// For --generate: {"version":1,"topics":[{"topic":"t"}]}.
    #[arg(long, value_name = "FILE", required_if_eq("generate", "true"))]
    pub topics_to_move_json_file: Option<PathBuf>,
    /// For --generate: the brokers to move onto, comma-separated ids.
    #[arg(long, value_name = "ID,ID,...", required_if_eq("generate", "true"))]
    pub broker_list: Option<String>,
    /// For --execute: limit the moving replicas' replication to this many bytes per second
    /// (Kafka's leader/follower.replication.throttled.rate, cluster-wide, applied to the
    /// moving partitions only); --verify removes it once every move is done.
    #[arg(long, value_name = "BYTES/S")]
    pub throttle: Option<u64>,
    /// For --verify: keep the throttle after the moves are done.
    #[arg(long)]
    pub preserve_throttles: bool,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicEntry>,
}

#[derive(Debug, Deserialize)]
struct TopicEntry {
    topic: String,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, example: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not Kafka's format {example}", path.display()))
}

fn read_reassignment(path: &Path) -> Result<Reassignment> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let r = znodes::decode_reassignment(&path.display().to_string(), &text).with_context(|| {
        format!(
            "{}: not Kafka's format {{\"version\":1,\"partitions\":[{{\"topic\":\"t\",\"partition\":0,\"replicas\":[1,2]}}]}}",
            path.display()
        )
    })?;
    if r.partitions.is_empty() {
        bail!("{}: names no partition to move", path.display());
    }
    Ok(r)
}

/// The assignment of `topics` as Kafka's JSON (each replica's log dir `any`).
fn assignment_json(topics: &[TopicMetadata], only: Option<&BTreeSet<(String, i32)>>) -> Reassignment {
    let mut partitions = Vec::new();
    for t in topics {
        for p in &t.partitions {
            if only.is_some_and(|o| !o.contains(&(t.name.clone(), p.partition))) {
                continue;
            }
            partitions.push(PartitionMove {
                topic: t.name.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
                log_dirs: vec!["any".to_string(); p.replicas.len()],
            });
        }
    }
    Reassignment { version: 1, partitions }
}

fn with_log_dirs(mut r: Reassignment) -> Reassignment {
    for m in &mut r.partitions {
        if m.log_dirs.len() != m.replicas.len() {
            m.log_dirs = vec!["any".to_string(); m.replicas.len()];
        }
    }
    r
}

fn to_json(r: &Reassignment) -> String {
    String::from_utf8_lossy(&znodes::encode_reassignment(r)).into_owned()
}

async fn describe(admin: &Admin, topics: BTreeSet<String>) -> Result<Vec<TopicMetadata>> {
    let described = admin.describe_topics(topics.into_iter().collect()).await?;
    for t in &described {
        if let Some(e) = &t.error {
            bail!("topic {}: {e}", t.name);
        }
    }
    Ok(described)
}

/// Runs `sluice reassign-partitions`.
pub fn run(args: ReassignArgs) -> Result<()> {
    let config = args.client.client_config()?;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let admin = Admin::new(config)?;
        if args.generate {
            generate(&admin, &args).await
        } else if args.execute {
            execute(&admin, &args).await
        } else if args.verify {
            verify(&admin, &args).await
        } else {
            list(&admin).await
        }
    })
}

async fn generate(admin: &Admin, args: &ReassignArgs) -> Result<()> {
    let path =
        args.topics_to_move_json_file.as_deref().context("--generate needs --topics-to-move-json-file")?;
    let file: TopicsFile = read_json(path, r#"{"version":1,"topics":[{"topic":"t"}]}"#)?;
    let list = args.broker_list.as_deref().context("--generate needs --broker-list")?;
    let ids = crate::client_args::int_list("--broker-list", "a broker id", list)?;
    let cluster = admin.describe_cluster().await?;
    let brokers: Vec<BrokerEndpoint> = ids
        .iter()
        .map(|id| {
            cluster.brokers.iter().find(|b| b.id == *id).cloned().with_context(|| {
                format!(
                    "--broker-list: broker {id} is not live (live: {:?})",
                    cluster.brokers.iter().map(|b| b.id).collect::<Vec<_>>()
                )
            })
        })
        .collect::<Result<_>>()?;
    let topics = describe(admin, file.topics.into_iter().map(|t| t.topic).collect()).await?;
    let current = assignment_json(&topics, None);
    let mut proposed = Reassignment { version: 1, partitions: Vec::new() };
    for t in &topics {
        let rf = t.partitions.first().map_or(1, |p| p.replicas.len()) as i16;
        let placed = sluice_broker_core::assignment::assign(
            &brokers,
            t.partitions.len() as i32,
            rf,
            rand::random::<u16>() as usize,
        )
        .map_err(|e| anyhow::anyhow!("topic {}: {e}", t.name))?;
        for (partition, replicas) in placed {
            let log_dirs = vec!["any".to_string(); replicas.len()];
            proposed.partitions.push(PartitionMove { topic: t.name.clone(), partition, replicas, log_dirs });
        }
    }
    println!("Current partition replica assignment");
    println!("{}", to_json(&current));
    println!();
    println!("Proposed partition reassignment configuration");
    println!("{}", to_json(&proposed));
    Ok(())
}

async fn execute(admin: &Admin, args: &ReassignArgs) -> Result<()> {
    let path = args.reassignment_json_file.as_deref().context("--execute needs --reassignment-json-file")?;
    let wanted = with_log_dirs(read_reassignment(path)?);
    let targets = wanted.targets();
    let topics = describe(admin, targets.keys().map(|(t, _)| t.clone()).collect()).await?;
    let only: BTreeSet<(String, i32)> = targets.keys().cloned().collect();
    let current = assignment_json(&topics, Some(&only));
    for tp in &only {
        if !current.partitions.iter().any(|m| (&m.topic, m.partition) == (&tp.0, tp.1)) {
            bail!("{}-{} does not exist", tp.0, tp.1);
        }
    }
    println!("Current partition replica assignment");
    println!();
    println!("{}", to_json(&current));
    println!();
    println!("Save this to use as the --reassignment-json-file option during rollback");
    if let Some(rate) = args.throttle {
        set_throttle(admin, rate, &current, &targets).await?;
        println!(
            "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed."
        );
        println!("The inter-broker throttle limit was set to {rate} B/s");
    }
    let moves = targets.into_iter().map(|((t, p), r)| (t, p, r)).collect();
    let results = admin.alter_reassignments(moves).await?;
    let mut started = Vec::new();
    let mut failed = Vec::new();
    for (topic, partition, r) in results {
        match r {
            Ok(()) => started.push(format!("{topic}-{partition}")),
            Err(e) => failed.push(format!("{topic}-{partition}: {e}")),
        }
    }
    if !started.is_empty() {
        println!("Successfully started partition reassignments for {}", started.join(","));
    }
    if !failed.is_empty() {
        for f in &failed {
            println!("Error reassigning partition(s):\n{f}");
        }
        bail!("{} partition(s) could not be reassigned (see above)", failed.len());
    }
    Ok(())
}

/// `p:b` entries for each topic: the leaders' side lists the replicas now, the followers'
/// side the replicas being added.
fn throttled_replicas(
    current: &Reassignment,
    targets: &BTreeMap<(String, i32), Vec<i32>>,
) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut out: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for m in &current.partitions {
        let Some(target) = targets.get(&(m.topic.clone(), m.partition)) else { continue };
        let entry = out.entry(m.topic.clone()).or_default();
        entry.0.extend(m.replicas.iter().map(|b| format!("{}:{b}", m.partition)));
        entry.1.extend(
            target.iter().filter(|b| !m.replicas.contains(b)).map(|b| format!("{}:{b}", m.partition)),
        );
    }
    out
}

async fn set_throttle(
    admin: &Admin,
    rate: u64,
    current: &Reassignment,
    targets: &BTreeMap<(String, i32), Vec<i32>>,
) -> Result<()> {
    let ops = RATES.iter().map(|k| ConfigOp::Set(k.to_string(), rate.to_string())).collect();
    admin.alter_broker_defaults(ops).await.context("setting the throttle's rate")?;
    for (topic, (leaders, followers)) in throttled_replicas(current, targets) {
        let mut ops = vec![ConfigOp::Set(LEADER_THROTTLED.into(), leaders.join(","))];
        if !followers.is_empty() {
            ops.push(ConfigOp::Set(FOLLOWER_THROTTLED.into(), followers.join(",")));
        }
        admin
            .alter_topic_configs(&topic, ops)
            .await
            .with_context(|| format!("throttling {topic}'s replicas"))?;
    }
    Ok(())
}

async fn verify(admin: &Admin, args: &ReassignArgs) -> Result<()> {
    let path = args.reassignment_json_file.as_deref().context("--verify needs --reassignment-json-file")?;
    let targets = read_reassignment(path)?.targets();
    let topic_names: BTreeSet<String> = targets.keys().map(|(t, _)| t.clone()).collect();
    let in_progress: BTreeSet<(String, i32)> = admin
        .list_reassignments(Some(targets.keys().cloned().collect()))
        .await?
        .into_iter()
        .map(|r| (r.topic, r.partition))
        .collect();
    let topics = describe(admin, topic_names.clone()).await?;
    println!("Status of partition reassignment:");
    let mut all_done = true;
    for ((topic, partition), target) in &targets {
        let replicas = topics
            .iter()
            .find(|t| &t.name == topic)
            .and_then(|t| t.partitions.iter().find(|p| p.partition == *partition))
            .map(|p| p.replicas.clone());
        if in_progress.contains(&(topic.clone(), *partition)) {
            all_done = false;
            println!("Reassignment of partition {topic}-{partition} is still in progress.");
        } else if replicas.as_ref() == Some(target) {
            println!("Reassignment of partition {topic}-{partition} is completed.");
        } else {
            all_done = false;
            println!(
                "There is no active reassignment of partition {topic}-{partition}, but replica set is {} rather than {}.",
                replicas.map_or_else(|| "unknown".to_string(), |r| format!("{r:?}").replace(' ', "")),
                format!("{target:?}").replace(' ', "")
            );
        }
    }
    if all_done && !args.preserve_throttles {
        println!();
        let defaults = admin.describe_broker_defaults().await?;
        if RATES.iter().any(|k| defaults.contains_key(*k)) {
            println!("Clearing broker-level throttles");
            let ops = RATES.iter().map(|k| ConfigOp::Delete(k.to_string())).collect();
            admin.alter_broker_defaults(ops).await.context("removing the throttle's rate")?;
        }
        let configs = admin.describe_configs(topic_names.iter().cloned().collect()).await?;
        for topic in &topic_names {
            let set = configs
                .iter()
                .find(|(name, _)| name == topic)
                .and_then(|(_, r)| r.as_ref().ok())
                .is_some_and(|c| c.contains_key(LEADER_THROTTLED) || c.contains_key(FOLLOWER_THROTTLED));
            if set {
                println!("Clearing topic-level throttles on topic {topic}");
                let ops = [LEADER_THROTTLED, FOLLOWER_THROTTLED]
                    .iter()
                    .map(|k| ConfigOp::Delete(k.to_string()))
                    .collect();
                admin
                    .alter_topic_configs(topic, ops)
                    .await
                    .with_context(|| format!("removing {topic}'s throttle"))?;
            }
        }
    }
    Ok(())
}

async fn list(admin: &Admin) -> Result<()> {
    let moving = admin.list_reassignments(None).await?;
    if moving.is_empty() {
        println!("No partition reassignments found.");
        return Ok(());
    }
    println!("Current partition reassignments:");
    for r in moving {
        println!(
            "{}-{}: replicas: {}. target: {}. adding: {}. removing: {}.",
            r.topic,
            r.partition,
            ints(&r.replicas),
            ints(&r.target),
            ints(&r.adding),
            ints(&r.removing)
        );
    }
    Ok(())
}

fn ints(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}
