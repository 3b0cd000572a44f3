//! `sluice delete-records` (kafka-delete-records.sh: delete the records below an offset in
//! each partition a JSON file lists) and `sluice get-offsets` (kafka-get-offsets.sh), with
//! Kafka's file formats and output.
//!
//! The file is Kafka's: `{"partitions": [{"topic": "t", "partition": 0, "offset": 3}],
//! "version": 1}`; an offset of -1 deletes everything committed (up to the high watermark).
//! The output is Kafka's: `Executing records delete operation`, then
//! `Records delete operation completed:` and one `partition: t-0<TAB>low_watermark: 3` or
//! `partition: t-0<TAB>error: ...` line per partition. Any partition that failed makes the
//! exit status non-zero.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sluice_client::broker::{Admin, Consumer, ConsumerConfig, TopicPartition};

use crate::client_args::ClientArgs;

/// Arguments of `sluice delete-records`.
#[derive(Debug, clap::Args)]
pub struct DeleteRecordsArgs {
    /// A JSON file saying, per partition, below which offset to delete:
    /// {"partitions": [{"topic": "t", "partition": 0, "offset": 3}], "version": 1}
    /// (offset -1: everything committed).
    #[arg(long, value_name = "FILE")]
    pub offset_json_file: PathBuf,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffsetFile {
    partitions: Vec<OffsetEntry>,
    #[serde(default = "one")]
    version: i32,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffsetEntry {
    topic: String,
    partition: i32,
    offset: i64,
}

/// The partitions and offsets `text` (the offset JSON file's content) asks for, checked as
/// Kafka's tool checks them: version 1, no partition twice, offsets -1 or above.
pub fn parse_offset_file(text: &str) -> Result<Vec<(TopicPartition, i64)>> {
    let file: OffsetFile = serde_json::from_str(text).context(
        "the offset file is not Kafka's format: {\"partitions\": [{\"topic\": \"t\", \"partition\": 0, \"offset\": 3}], \"version\": 1}",
    )?;
    if file.version != 1 {
        bail!("the offset file has version {}; only version 1 is known", file.version);
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(file.partitions.len());
    for e in file.partitions {
        let tp = TopicPartition::new(e.topic, e.partition);
        if e.offset < -1 {
            bail!(
                "{tp}: offset {} is not an offset (give one at or above 0, or -1 for everything committed)",
                e.offset
            );
        }
        if !seen.insert(tp.clone()) {
            bail!("the offset file lists {tp} more than once");
        }
        out.push((tp, e.offset));
    }
    if out.is_empty() {
        bail!("the offset file lists no partitions");
    }
    Ok(out)
}

/// Runs `sluice delete-records`.
pub fn run(args: DeleteRecordsArgs) -> Result<()> {
    let path = &args.offset_json_file;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let offsets = parse_offset_file(&text).with_context(|| format!("{}", path.display()))?;
    let config = args.client.client_config()?;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let admin = Admin::new(config)?;
        println!("Executing records delete operation");
        let results = admin.delete_records(offsets).await?;
        println!("Records delete operation completed:");
        let mut failed = 0;
        for (tp, r) in results {
            match r {
                Ok(low) => println!("partition: {tp}\tlow_watermark: {low}"),
                Err(e) => {
                    failed += 1;
                    println!("partition: {tp}\terror: {e}");
                }
            }
        }
        if failed > 0 {
            bail!("{failed} partition(s) kept their records (see above)");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_offsets_times_are_kafkas() {
        assert_eq!(parse_time("-1").ok(), Some(OffsetTime::Latest));
        assert_eq!(parse_time("earliest").ok(), Some(OffsetTime::Earliest));
        assert_eq!(parse_time("1700000000000").ok(), Some(OffsetTime::At(1_700_000_000_000)));
        assert!(format!("{:#}", parse_time("-3").expect_err("refused")).contains("not served"));
        assert!(format!("{:#}", parse_time("soon").expect_err("refused")).contains("time in ms"));
    }

    #[test]
    fn kafkas_offset_file_is_read_and_mistakes_are_named() {
        let ok = parse_offset_file(
            r#"{"partitions": [{"topic": "t", "partition": 0, "offset": 3}, {"topic": "t", "partition": 1, "offset": -1}], "version": 1}"#,
        )
        .expect("parses");
        assert_eq!(ok, vec![(TopicPartition::new("t", 0), 3), (TopicPartition::new("t", 1), -1)]);
        let err = |text: &str| format!("{:#}", parse_offset_file(text).expect_err("refused"));
        assert!(err(r#"{"partitions": [{"topic": "t", "partition": 0, "offset": 3}, {"topic": "t", "partition": 0, "offset": 4}]}"#)
            .contains("t-0 more than once"));
        assert!(err(r#"{"partitions": [{"topic": "t", "partition": 0, "offset": -5}]}"#)
            .contains("-1 for everything"));
        assert!(err(r#"{"partitions": [], "version": 1}"#).contains("no partitions"));
        assert!(err(r#"{"partitions": [{"topic": "t", "partition": 0, "offset": 1}], "version": 2}"#)
            .contains("version 2"));
        assert!(err(r#"{"partitons": []}"#).contains("Kafka's format"));
    }
}

/// Arguments of `sluice get-offsets`.
#[derive(Debug, clap::Args)]
pub struct GetOffsetsArgs {
    /// The topic (an exact name; Kafka's tool takes a regular expression). Without it, every
    /// topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Only these partitions, comma-separated (e.g. 0,2).
    #[arg(long, value_name = "P,P,...")]
    pub partitions: Option<String>,
    /// Which offset: -1 or latest (the end a consumer reads to), -2 or earliest (the log
    /// start), or a time in ms since the epoch (the first offset whose record is at least
    /// that old).
    #[arg(long, value_name = "TIME", default_value = "-1", allow_hyphen_values = true)]
    pub time: String,
    /// Leave out the cluster's internal topics (without --topic).
    #[arg(long)]
    pub exclude_internal_topics: bool,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `--time` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetTime {
    /// -1.
    Latest,
    /// -2.
    Earliest,
    /// A time in ms.
    At(i64),
}

/// Parses `--time` as Kafka's GetOffsetShell reads it.
pub fn parse_time(text: &str) -> Result<OffsetTime> {
    match text {
        "-1" | "latest" => Ok(OffsetTime::Latest),
        "-2" | "earliest" => Ok(OffsetTime::Earliest),
        "-3" | "max-timestamp" => bail!(
            "--time {text} (the offset of the largest timestamp) is not served; give -1, -2 or a time in ms"
        ),
        t => match t.parse::<i64>() {
            Ok(ms) if ms >= 0 => Ok(OffsetTime::At(ms)),
            _ => bail!("--time {t:?} is not -1 (latest), -2 (earliest) or a time in ms since the epoch"),
        },
    }
}

/// Runs `sluice get-offsets`: kafka-get-offsets.sh's `topic:partition:offset` lines (the
/// offset empty when no record is that new), sorted by topic and partition.
pub fn run_get_offsets(args: GetOffsetsArgs) -> Result<()> {
    let time = parse_time(&args.time)?;
    let only: Option<BTreeSet<i32>> = args
        .partitions
        .as_deref()
        .map(|list| crate::client_args::int_list("--partitions", "a partition number", list))
        .transpose()?
        .map(|ps| ps.into_iter().collect());
    let config = args.client.client_config()?;
    let timeout = config.request_timeout;
    let rt = crate::client_args::runtime()?;
    rt.block_on(async {
        let topics = match &args.topic {
            Some(t) => vec![t.clone()],
            None => Admin::new(config.clone())?.list_topics(!args.exclude_internal_topics).await?,
        };
        let consumer = Consumer::new(ConsumerConfig::new(config))?;
        let mut wanted = Vec::new();
        for t in &topics {
            let partitions = consumer
                .partitions_for(t, timeout)
                .await
                .with_context(|| format!("topic {t}: is it there? (sluice topics --list)"))?;
            wanted.extend(
                partitions
                    .iter()
                    .filter(|p| only.as_ref().is_none_or(|o| o.contains(&p.partition)))
                    .map(|p| TopicPartition::new(t.clone(), p.partition)),
            );
        }
        let found: BTreeMap<TopicPartition, Option<i64>> = match time {
            OffsetTime::Latest => {
                consumer.end_offsets(wanted).await?.into_iter().map(|(tp, o)| (tp, Some(o))).collect()
            }
            OffsetTime::Earliest => {
                consumer.beginning_offsets(wanted).await?.into_iter().map(|(tp, o)| (tp, Some(o))).collect()
            }
            OffsetTime::At(ms) => consumer
                .offsets_for_times(wanted.into_iter().map(|tp| (tp, ms)))
                .await?
                .into_iter()
                .map(|(tp, o)| (tp, o.map(|o| o.offset)))
                .collect(),
        };
        for (tp, offset) in found {
            println!("{}:{}:{}", tp.topic, tp.partition, offset.map(|o| o.to_string()).unwrap_or_default());
        }
        Ok(())
    })
}

/// Arguments of `sluice dump-log`.
#[derive(Debug, clap::Args)]
pub struct DumpLogArgs {
    /// The files, separated by commas: a partition directory's segments (`.log`), offset
    /// indexes (`.index`) and time indexes (`.timeindex`).
    #[arg(long, value_name = "FILE,FILE,...", required = true)]
    pub files: String,
    /// Each record's line too, with its key and value (as text).
    #[arg(long)]
    pub print_data_log: bool,
    /// Each record's line too (offset, timestamp, sizes, sequence, header keys).
    #[arg(long)]
    pub deep_iteration: bool,
}

/// Runs `sluice dump-log`: Kafka's DumpLogSegments text for each file, read from disk (no
/// broker needed; a running broker's files can be read too).
pub fn run_dump_log(args: DumpLogArgs) -> Result<()> {
    let options = sluice_log::dump::DumpOptions {
        deep_iteration: args.deep_iteration,
        print_data_log: args.print_data_log,
    };
    let mut failed = 0;
    for file in args.files.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match sluice_log::dump::dump_file(std::path::Path::new(file), options) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} file(s) could not be dumped (see above)");
    }
    Ok(())
}
