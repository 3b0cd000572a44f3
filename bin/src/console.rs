//! `sluice console-producer` and `sluice console-consumer`: kafka-console-producer.sh and
//! kafka-console-consumer.sh, with Kafka's arguments, line format and output format.
//!
//! The producer sends each line of stdin as one record (`key<SEP>value` with
//! `--property parse.key=true`); at end of input it flushes, waits for every delivery,
//! reports each failed record on stderr with its number (its line) and the broker's error,
//! and exits non-zero if any failed.
//!
//! The consumer reads assigned partitions (every partition of the topic, or `--partition`),
//! or with `--group G` (or `group.id` in its properties) subscribes to the topic as a member
//! of that consumer group, which shares the topic's partitions among its members and starts
//! each at the group's committed offset. It prints each record with Kafka's
//! `DefaultMessageFormatter` fields, in its order: `CreateTime:TS`, `Partition:P`,
//! `Offset:O`, headers, key, value, separated by `key.separator` and ended by
//! `line.separator`. On exit (end of `--max-messages`, `--timeout-ms` without a record,
//! SIGINT/SIGTERM, or a closed stdout) a group member commits the offsets after the last
//! record it printed (with `enable.auto.commit`, the default; records fetched but not
//! printed are left for the next consumer) and leaves the group, so its partitions move at
//! once; then `Processed a total of N messages` is printed on stderr. In a group,
//! `--from-beginning` means `auto.offset.reset=earliest`: it applies only to partitions the
//! group has no committed offset for, as in Kafka.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use sluice_client::broker::{
    AutoOffsetReset, ConsumerConfig, ConsumerRecord, DeliveryFuture, Producer, ProducerConfig, ProducerError,
    ProducerRecord, TimestampType, TopicPartition,
};
use tokio::sync::mpsc;

use crate::client_args::{apply_file, apply_key_values, parse_bool, ClientArgs, KeyValue};

/// Arguments of `sluice console-producer`.
#[derive(Debug, clap::Args)]
pub struct ConsoleProducerArgs {
    /// The topic to send to (created with the brokers' defaults if it does not exist and
    /// auto.create.topics.enable allows it).
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// How lines are read, as Kafka's line reader: parse.key=true (each line is
    /// KEY<key.separator>VALUE), key.separator=SEP [default: a tab], ignore.error=true (send
    /// a line without the separator with no key instead of stopping), null.marker=TEXT (a key
    /// or value equal to it is sent as null, e.g. a tombstone). Repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<KeyValue>,
    /// A producer setting, e.g. acks=all, linger.ms=0, batch.size=65536 (any producer or
    /// client key; repeatable). Wins over --producer.config and --command-config.
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub producer_properties: Vec<KeyValue>,
    /// A producer properties file (producer and client keys).
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,
    /// Compress batches: none, gzip, snappy, lz4 or zstd (gzip when given without a value,
    /// as Kafka's). Wins over compression.type in the properties.
    #[arg(long, value_name = "CODEC", num_args = 0..=1, default_missing_value = "gzip")]
    pub compression_codec: Option<String>,
    /// Wait for each record to be acknowledged before reading the next line.
    #[arg(long)]
    pub sync: bool,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `sluice console-consumer`.
#[derive(Debug, clap::Args)]
pub struct ConsoleConsumerArgs {
    /// The topic to read.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Read only this partition [default: every partition of the topic].
    #[arg(long, value_name = "P")]
    pub partition: Option<i32>,
    /// Where to start in --partition: earliest, latest, or an offset (0 or more) [default:
    /// latest].
    #[arg(long, value_name = "OFFSET", requires = "partition", conflicts_with = "from_beginning")]
    pub offset: Option<StartOffset>,
    /// Start at the earliest record instead of the end (in a group: where the group has no
    /// committed offset, as auto.offset.reset=earliest).
    #[arg(long)]
    pub from_beginning: bool,
    /// Exit after this many records.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit (successfully) when no record arrived for this long.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Output format, as Kafka's DefaultMessageFormatter: print.timestamp, print.partition,
    /// print.offset, print.headers, print.key, print.value (true/false; only print.value
    /// defaults to true), key.separator [default: a tab, between fields], line.separator
    /// [default: a newline], headers.separator [default: ","], null.literal [default:
    /// null]. Repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<KeyValue>,
    /// A consumer setting, e.g. fetch.max.wait.ms=100 (any consumer or client key;
    /// repeatable). Wins over --consumer.config and --command-config.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub consumer_properties: Vec<KeyValue>,
    /// A consumer properties file (consumer and client keys).
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,
    /// Read as a member of this consumer group (Kafka's group.id): the group's members share
    /// the topic's partitions, each starting at the group's committed offset; offsets are
    /// committed as records are printed (enable.auto.commit) and on exit. Wins over group.id
    /// in --consumer-property / --consumer.config (they must agree). Not with --partition.
    #[arg(long, value_name = "GROUP", conflicts_with = "partition")]
    pub group: Option<String>,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `--offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The log start.
    Earliest,
    /// The log end: only records produced from now on.
    Latest,
    /// This offset.
    At(i64),
}

impl FromStr for StartOffset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" => Ok(StartOffset::Earliest),
            "latest" => Ok(StartOffset::Latest),
            n => n
                .parse::<i64>()
                .ok()
                .filter(|&o| o >= 0)
                .map(StartOffset::At)
                .ok_or_else(|| format!("expected earliest, latest or an offset (0 or more), got {s:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// console-producer

/// How stdin lines become records (Kafka's `LineMessageReader` properties).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LineFormat {
    parse_key: bool,
    key_separator: Vec<u8>,
    ignore_error: bool,
    null_marker: Option<Vec<u8>>,
}

impl Default for LineFormat {
    fn default() -> Self {
        LineFormat { parse_key: false, key_separator: b"\t".to_vec(), ignore_error: false, null_marker: None }
    }
}

const LINE_PROPERTIES: &str = "parse.key, key.separator, ignore.error, null.marker";

impl LineFormat {
    fn from_properties(given: &[KeyValue]) -> Result<Self> {
        let mut f = LineFormat::default();
        for KeyValue { key, value } in given {
            match key.as_str() {
                "parse.key" => f.parse_key = parse_bool(key, value).map_err(|e| anyhow!("--property {e}"))?,
                "ignore.error" => {
                    f.ignore_error = parse_bool(key, value).map_err(|e| anyhow!("--property {e}"))?
                }
                "key.separator" if value.is_empty() => bail!("--property key.separator= needs a separator"),
                "key.separator" => f.key_separator = value.as_bytes().to_vec(),
                "null.marker" if value.is_empty() => bail!("--property null.marker= needs a marker"),
                "null.marker" => f.null_marker = Some(value.as_bytes().to_vec()),
                _ => bail!("--property {key}: unknown; the console producer knows {LINE_PROPERTIES}"),
            }
        }
        if f.parse_key && f.null_marker.as_deref() == Some(&f.key_separator[..]) {
            bail!("--property null.marker must differ from key.separator");
        }
        Ok(f)
    }

    /// The key and value of input line `number` (1-based; the line without its end).
    fn parse(&self, line: &[u8], number: u64) -> Result<(Option<Bytes>, Option<Bytes>), String> {
        let field = |b: &[u8]| match &self.null_marker {
            Some(m) if m.as_slice() == b => None,
            _ => Some(Bytes::copy_from_slice(b)),
        };
        if !self.parse_key {
            return Ok((None, field(line)));
        }
        match find(line, &self.key_separator) {
            Some(at) => Ok((field(&line[..at]), field(&line[at + self.key_separator.len()..]))),
            None if self.ignore_error => Ok((None, field(line))),
            None => Err(format!(
                "no key separator {:?} on line {number}: {:?}; with parse.key=true every line is \
                 KEY<key.separator>VALUE (set --property ignore.error=true to send such lines without a key)",
                String::from_utf8_lossy(&self.key_separator),
                String::from_utf8_lossy(line)
            )),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A line without its `\n` or `\r\n`.
fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// Reads stdin on its own thread (a blocking read must not stop the runtime), one line at a
/// time, into `tx`; ends at end of input, a read error, or when the receiver is gone.
fn read_stdin(tx: mpsc::Sender<io::Result<Vec<u8>>>) {
    std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    strip_line_end(&mut line);
                    if tx.blocking_send(Ok(line)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
}

/// A send that failed for this record alone (the next may well go through).
fn only_this_record(e: &ProducerError) -> bool {
    matches!(
        e,
        ProducerError::RecordTooLarge { .. }
            | ProducerError::InvalidPartition { .. }
            | ProducerError::InvalidTimestamp { .. }
    )
}

fn report_failure(number: u64, e: &ProducerError) {
    eprintln!("error: record {number} (line {number}) was not delivered: {e}");
}

/// Awaits deliveries in send order and reports each failure; returns how many failed.
async fn collect_deliveries(mut deliveries: mpsc::Receiver<(u64, DeliveryFuture)>) -> u64 {
    let mut failed = 0;
    while let Some((number, delivery)) = deliveries.recv().await {
        if let Err(e) = delivery.await {
            report_failure(number, &e);
            failed += 1;
        }
    }
    failed
}

/// `sluice console-producer`.
pub fn run_producer(args: ConsoleProducerArgs) -> Result<()> {
    let format = LineFormat::from_properties(&args.properties)?;
    let mut config = ProducerConfig::new(args.client.file_config()?);
    if let Some(path) = &args.producer_config {
        apply_file(path, |k, v| config.set(k, v))?;
    }
    apply_key_values(&args.producer_properties, "--producer-property", |k, v| config.set(k, v))?;
    if let Some(codec) = &args.compression_codec {
        config.set("compression.type", codec).map_err(|e| anyhow!("--compression-codec: {e}"))?;
    }
    args.client.finish(&mut config.client)?;
    crate::client_args::runtime()?.block_on(produce(args.topic, args.sync, format, config))
}

/// How reading input ended.
enum InputEnd {
    /// End of input.
    Eof,
    /// SIGINT / SIGTERM.
    Interrupted,
    /// A bad line, an unreadable stdin, or a send that cannot succeed.
    Failed(anyhow::Error),
}

async fn produce(topic: String, sync: bool, format: LineFormat, config: ProducerConfig) -> Result<()> {
    let producer = Producer::new(config)?;
    let (lines_tx, mut lines) = mpsc::channel(1024);
    read_stdin(lines_tx);
    let (deliveries_tx, deliveries) = mpsc::channel(1 << 16);
    let collector = tokio::spawn(collect_deliveries(deliveries));
    let mut sent = 0u64;
    let mut failed_at_send = 0u64;
    let stop = crate::perf::shutdown_signal();
    tokio::pin!(stop);
    let read = async {
        while let Some(line) = lines.recv().await {
            let line = match line {
                Ok(line) => line,
                Err(e) => return InputEnd::Failed(anyhow!("cannot read stdin: {e}")),
            };
            sent += 1;
            let (key, value) = match format.parse(&line, sent) {
                Ok(kv) => kv,
                Err(e) => return InputEnd::Failed(anyhow!(e)),
            };
            let record = ProducerRecord { key, value, ..ProducerRecord::new(topic.clone(), Bytes::new()) };
            match producer.send(record).await {
                Ok(delivery) if sync => {
                    if let Err(e) = delivery.await {
                        report_failure(sent, &e);
                        failed_at_send += 1;
                    }
                }
                Ok(delivery) => {
                    if deliveries_tx.send((sent, delivery)).await.is_err() {
                        return InputEnd::Failed(anyhow!("the delivery reporter stopped"));
                    }
                }
                Err(e) if only_this_record(&e) => {
                    report_failure(sent, &e);
                    failed_at_send += 1;
                }
                Err(e) => {
                    return InputEnd::Failed(anyhow!("record {sent} (line {sent}) cannot be sent: {e}"))
                }
            }
        }
        InputEnd::Eof
    };
    let end = tokio::select! {
        end = read => end,
        () = &mut stop => InputEnd::Interrupted,
    };
    drop(deliveries_tx);
    // Everything sent is flushed and waited for; a second Ctrl-C stops waiting.
    let interrupted_again = tokio::select! {
        () = producer.close() => false,
        () = crate::perf::shutdown_signal() => true,
    };
    if interrupted_again {
        bail!("interrupted before every record was acknowledged: some of the {sent} records may be lost");
    }
    let failed = failed_at_send + collector.await.context("the delivery reporter panicked")?;
    let summary =
        (failed > 0).then(|| format!("{failed} of {sent} records were not delivered (errors above)"));
    match (end, summary) {
        (InputEnd::Failed(e), Some(s)) => Err(e.context(s)),
        (InputEnd::Failed(e), None) => Err(e),
        (_, Some(s)) => Err(anyhow!(s)),
        (InputEnd::Eof | InputEnd::Interrupted, None) => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// console-consumer

/// How records are printed (Kafka's `DefaultMessageFormatter` properties).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MessageFormat {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    print_key: bool,
    print_value: bool,
    key_separator: String,
    line_separator: String,
    headers_separator: String,
    null_literal: String,
}

impl Default for MessageFormat {
    fn default() -> Self {
        MessageFormat {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: "\t".into(),
            line_separator: "\n".into(),
            headers_separator: ",".into(),
            null_literal: "null".into(),
        }
    }
}

const FORMAT_PROPERTIES: &str = "print.timestamp, print.partition, print.offset, print.headers, print.key, \
                                 print.value, key.separator, line.separator, headers.separator, null.literal";

impl MessageFormat {
    fn from_properties(given: &[KeyValue]) -> Result<Self> {
        let mut f = MessageFormat::default();
        for KeyValue { key, value } in given {
            let flag = |slot: &mut bool| -> Result<()> {
                *slot = parse_bool(key, value).map_err(|e| anyhow!("--property {e}"))?;
                Ok(())
            };
            match key.as_str() {
                "print.timestamp" => flag(&mut f.print_timestamp)?,
                "print.partition" => flag(&mut f.print_partition)?,
                "print.offset" => flag(&mut f.print_offset)?,
                "print.headers" => flag(&mut f.print_headers)?,
                "print.key" => flag(&mut f.print_key)?,
                "print.value" => flag(&mut f.print_value)?,
                "key.separator" => f.key_separator = value.clone(),
                "line.separator" => f.line_separator = value.clone(),
                "headers.separator" => f.headers_separator = value.clone(),
                "null.literal" => f.null_literal = value.clone(),
                _ => bail!("--property {key}: unknown; the console consumer knows {FORMAT_PROPERTIES}"),
            }
        }
        Ok(f)
    }

    fn bytes(&self, b: &Option<Bytes>, out: &mut String) {
        match b {
            Some(b) => out.push_str(&String::from_utf8_lossy(b)),
            None => out.push_str(&self.null_literal),
        }
    }

    /// Appends one record as Kafka prints it: the fields asked for, in Kafka's order,
    /// separated by `key.separator`, the last followed by `line.separator` when it is the
    /// value (as Kafka does: without print.value no line ends).
    fn write(&self, r: &ConsumerRecord, out: &mut String) {
        let fields = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_headers,
            self.print_key,
            self.print_value,
        ];
        // After field i, a separator if a later field is printed.
        let more_after = |i: usize| fields[i + 1..].iter().any(|&f| f);
        let sep = |i: usize, out: &mut String| {
            if more_after(i) {
                out.push_str(&self.key_separator);
            } else {
                out.push_str(&self.line_separator);
            }
        };
        if self.print_timestamp {
            let kind = match r.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            };
            out.push_str(&format!("{kind}:{}", r.timestamp));
            sep(0, out);
        }
        if self.print_partition {
            out.push_str(&format!("Partition:{}", r.partition));
            sep(1, out);
        }
        if self.print_offset {
            out.push_str(&format!("Offset:{}", r.offset));
            sep(2, out);
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.push_str("NO_HEADERS");
            }
            for (i, (key, value)) in r.headers.iter().enumerate() {
                if i > 0 {
                    out.push_str(&self.headers_separator);
                }
                out.push_str(key);
                out.push(':');
                self.bytes(value, out);
            }
            sep(3, out);
        }
        if self.print_key {
            self.bytes(&r.key, out);
            sep(4, out);
        }
        if self.print_value {
            self.bytes(&r.value, out);
            out.push_str(&self.line_separator);
        }
    }
}

/// The group to read in: `--group`, else `group.id` from the properties; Kafka refuses the
/// two when they differ.
fn choose_group(flag: Option<&str>, configured: Option<&str>) -> Result<Option<String>> {
    match (flag.map(str::trim), configured) {
        (Some(""), _) => bail!("--group needs a group id"),
        (Some(g), Some(c)) if g != c => bail!(
            "The group ids provided in different places (directly using '--group', via \
             '--consumer-property', or via '--consumer.config') do not match: {g} and {c}; give one"
        ),
        (Some(g), _) => Ok(Some(g.to_string())),
        (None, c) => Ok(c.map(str::to_string)),
    }
}

/// `auto.offset.reset` of a group member: earliest with `--from-beginning` (which Kafka
/// refuses alongside another explicit setting), else as set, else latest.
fn group_offset_reset(from_beginning: bool, explicit: Option<&str>) -> Result<AutoOffsetReset> {
    match (from_beginning, explicit) {
        (true, Some(v)) if !v.trim().eq_ignore_ascii_case("earliest") => bail!(
            "Can't simultaneously specify --from-beginning and 'auto.offset.reset={v}': leave out one of them"
        ),
        (true, _) => Ok(AutoOffsetReset::Earliest),
        (false, Some(v)) => Ok(v.parse()?),
        (false, None) => Ok(AutoOffsetReset::Latest),
    }
}

/// `sluice console-consumer`.
pub fn run_consumer(args: ConsoleConsumerArgs) -> Result<()> {
    let format = MessageFormat::from_properties(&args.properties)?;
    let mut config = ConsumerConfig::new(args.client.file_config()?);
    // What auto.offset.reset was set to by hand, if it was (the file first, then the flags).
    let mut explicit_reset: Option<String> = None;
    let mut set = |config: &mut ConsumerConfig, k: &str, v: &str| {
        if k == "auto.offset.reset" {
            explicit_reset = Some(v.to_string());
        }
        config.set(k, v)
    };
    if let Some(path) = &args.consumer_config {
        apply_file(path, |k, v| set(&mut config, k, v))?;
    }
    apply_key_values(&args.consumer_properties, "--consumer-property", |k, v| set(&mut config, k, v))?;
    args.client.finish(&mut config.client)?;
    let group = choose_group(args.group.as_deref(), config.group_id.as_deref())?;
    if group.is_some() && args.partition.is_some() {
        bail!(
            "--partition cannot be used with a group (group.id is set in the consumer properties): a group's \
             members share the topic's partitions; leave out --partition, or group.id to read one partition"
        );
    }
    let start = match (args.offset, args.from_beginning) {
        (Some(o), _) => o,
        (None, true) => StartOffset::Earliest,
        (None, false) => StartOffset::Latest,
    };
    if group.is_some() {
        config.auto_offset_reset = group_offset_reset(args.from_beginning, explicit_reset.as_deref())?;
        if config.client.client_id.is_empty() {
            // Kafka's console consumer names itself so in a group's description.
            config.client.client_id = "console-consumer".into();
        }
    } else if args.from_beginning {
        // Kafka's console consumer: an offset found out of range goes back to the start too.
        config.auto_offset_reset = AutoOffsetReset::Earliest;
    }
    config.group_id.clone_from(&group);
    let run = ConsumeRun {
        topic: args.topic,
        partition: args.partition,
        start,
        group: group.is_some(),
        max_messages: args.max_messages,
        idle_timeout: args.timeout_ms.map(Duration::from_millis),
        format,
        started: Instant::now(),
    };
    crate::client_args::runtime()?.block_on(consume(run, config))
}

struct ConsumeRun {
    topic: String,
    partition: Option<i32>,
    start: StartOffset,
    /// Subscribe with the config's group.id rather than assign.
    group: bool,
    max_messages: Option<u64>,
    idle_timeout: Option<Duration>,
    format: MessageFormat,
    /// When the run began: `--timeout-ms` counts from here, so a topic that never appears
    /// cannot hold the run past it.
    started: Instant,
}

/// The partitions of `topic`, waiting at most `request.timeout.ms` (or `within`, if
/// shorter) for it to be known; the consumer asks the brokers to create a missing topic
/// (`allow.auto.create.topics`), which they do under `auto.create.topics.enable`.
async fn find_topic(
    consumer: &sluice_client::broker::Consumer,
    topic: &str,
    within: Option<Duration>,
) -> Result<Vec<sluice_client::broker::proto::PartitionMetadata>> {
    let mut timeout = consumer.config().client.request_timeout;
    if let Some(w) = within {
        timeout = timeout.min(w);
    }
    consumer.partitions_for(topic, timeout).await.with_context(|| {
        format!(
            "cannot find the partitions of topic {topic} within {timeout:?} (UNKNOWN_TOPIC_OR_PARTITION when it \
             does not exist and the brokers do not create it: create it with sluice topics --create --topic {topic})"
        )
    })
}

/// Assigns `partition` (or every partition of `topic`) and moves to `start`; waits for the
/// topic at most `within` (and `request.timeout.ms`).
pub(crate) async fn assign_topic(
    consumer: &mut sluice_client::broker::Consumer,
    topic: &str,
    partition: Option<i32>,
    start: StartOffset,
    within: Option<Duration>,
) -> Result<Vec<i32>> {
    let partitions = find_topic(consumer, topic, within).await?;
    let mut all: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
    all.sort_unstable();
    let chosen = match partition {
        Some(p) if all.contains(&p) => vec![p],
        Some(p) => bail!(
            "topic {topic} has no partition {p}: it has {} (0 to {})",
            all.len(),
            all.len().saturating_sub(1)
        ),
        None => all,
    };
    consumer.assign(chosen.iter().map(|&p| (topic, p)));
    let none = std::iter::empty::<TopicPartition>();
    match (start, partition) {
        (StartOffset::Earliest, _) => consumer.seek_to_beginning(none)?,
        (StartOffset::Latest, _) => consumer.seek_to_end(none)?,
        (StartOffset::At(offset), Some(p)) => consumer.seek(topic, p, offset)?,
        (StartOffset::At(_), None) => bail!("--offset needs --partition"),
    }
    Ok(chosen)
}

/// Subscribes to `topic` with the consumer's group (checking first that the topic exists,
/// for a clear error rather than a member that waits for ever).
async fn subscribe_topic(
    consumer: &mut sluice_client::broker::Consumer,
    topic: &str,
    within: Option<Duration>,
) -> Result<()> {
    find_topic(consumer, topic, within).await?;
    consumer.subscribe([topic])?;
    Ok(())
}

async fn consume(run: ConsumeRun, config: ConsumerConfig) -> Result<()> {
    let mut consumer = sluice_client::broker::Consumer::new(config)?;
    let within = run.idle_timeout.map(|t| t.saturating_sub(run.started.elapsed()));
    if run.group {
        subscribe_topic(&mut consumer, &run.topic, within).await?;
    } else {
        assign_topic(&mut consumer, &run.topic, run.partition, run.start, within).await?;
    }
    let mut count = 0u64;
    let mut unprinted = BTreeMap::new();
    let mut result = print_records(&mut consumer, &run, &mut count, &mut unprinted).await;
    if run.group {
        // Records handed out but not printed go back, so the commit on close covers exactly
        // what was printed and the next member starts at the first of them.
        for (tp, offset) in unprinted {
            let _ = consumer.seek(&tp.topic, tp.partition, offset);
        }
        // Commit and leave; a second Ctrl-C stops waiting.
        let closed = tokio::select! {
            r = consumer.close() => Some(r),
            () = crate::perf::shutdown_signal() => None,
        };
        let problem = match closed {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(anyhow!("could not commit the group's offsets and leave the group: {e}")),
            None => Some(anyhow!(
                "interrupted while committing and leaving the group: the group may not have the offsets of \
                 the last records printed, and it waits for this member's session to time out"
            )),
        };
        if let Some(p) = problem {
            result = match result {
                Ok(()) => Err(p),
                Err(e) => Err(e.context(p.to_string())),
            };
        }
    }
    eprintln!("Processed a total of {count} messages");
    result
}

/// Of records handed out by a poll, the first offset not printed in each partition
/// (`printed` of them were, in order).
fn first_unprinted(records: &[ConsumerRecord], printed: usize) -> BTreeMap<TopicPartition, i64> {
    let mut out = BTreeMap::new();
    for r in records.iter().skip(printed) {
        out.entry(TopicPartition::new(r.topic.clone(), r.partition)).or_insert(r.offset);
    }
    out
}

async fn print_records(
    consumer: &mut sluice_client::broker::Consumer,
    run: &ConsumeRun,
    count: &mut u64,
    unprinted: &mut BTreeMap<TopicPartition, i64>,
) -> Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut last_record = run.started;
    let stop = crate::perf::shutdown_signal();
    tokio::pin!(stop);
    let mut text = String::new();
    loop {
        if run.max_messages.is_some_and(|m| *count >= m) {
            return Ok(());
        }
        let wait = match run.idle_timeout {
            Some(t) => match t.checked_sub(last_record.elapsed()) {
                Some(left) if !left.is_zero() => left,
                _ => return Ok(()),
            },
            None => Duration::from_secs(1),
        };
        let records = tokio::select! {
            r = consumer.poll(wait) => r?,
            () = &mut stop => return Ok(()),
        };
        if records.is_empty() {
            continue;
        }
        last_record = Instant::now();
        text.clear();
        let mut printed = 0;
        for r in &records {
            if run.max_messages.is_some_and(|m| *count >= m) {
                break;
            }
            run.format.write(r, &mut text);
            *count += 1;
            printed += 1;
        }
        *unprinted = first_unprinted(&records, printed);
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            // A reader that went away (`| head`): stop, as Kafka's does.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(anyhow!("cannot write to stdout: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kvs(given: &[&str]) -> Vec<KeyValue> {
        given.iter().map(|s| s.parse().expect("KEY=VALUE")).collect()
    }

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 5,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(Bytes::from("k")),
            value: Some(Bytes::from("v")),
            headers: vec![],
        }
    }

    fn printed(props: &[&str], r: &ConsumerRecord) -> String {
        let f = MessageFormat::from_properties(&kvs(props)).expect("valid");
        let mut out = String::new();
        f.write(r, &mut out);
        out
    }

    #[test]
    fn the_consumer_prints_the_value_alone_by_default() {
        assert_eq!(printed(&[], &record()), "v\n");
        let tombstone = ConsumerRecord { value: None, ..record() };
        assert_eq!(printed(&[], &tombstone), "null\n");
        assert_eq!(printed(&["null.literal=<nil>"], &tombstone), "<nil>\n");
    }

    #[test]
    fn the_consumer_prints_fields_in_kafkas_order_with_the_key_separator() {
        let all = ["print.key=true", "print.offset=true", "print.partition=true", "print.timestamp=true"];
        assert_eq!(printed(&all, &record()), "CreateTime:1700000000000\tPartition:2\tOffset:5\tk\tv\n");
        let mut custom = all.to_vec();
        custom.push("key.separator= | ");
        custom.push("line.separator=;");
        assert_eq!(printed(&custom, &record()), "CreateTime:1700000000000 | Partition:2 | Offset:5 | k | v;");
        let appended = ConsumerRecord { timestamp_type: TimestampType::LogAppendTime, key: None, ..record() };
        assert_eq!(
            printed(&["print.timestamp=true", "print.key=TRUE"], &appended),
            "LogAppendTime:1700000000000\tnull\tv\n"
        );
        assert_eq!(printed(&["print.key=true", "print.value=false"], &record()), "k\n");
    }

    #[test]
    fn headers_print_as_key_colon_value_or_no_headers() {
        assert_eq!(printed(&["print.headers=true"], &record()), "NO_HEADERS\tv\n");
        let with = ConsumerRecord {
            headers: vec![("a".into(), Some(Bytes::from("1"))), ("b".into(), None)],
            ..record()
        };
        assert_eq!(printed(&["print.headers=true"], &with), "a:1,b:null\tv\n");
        assert_eq!(printed(&["print.headers=true", "headers.separator=;"], &with), "a:1;b:null\tv\n");
    }

    #[test]
    fn invalid_utf8_is_printed_lossily() {
        let r = ConsumerRecord { value: Some(Bytes::from_static(b"a\xffb")), ..record() };
        assert_eq!(printed(&[], &r), "a\u{fffd}b\n");
    }

    #[test]
    fn unknown_or_malformed_format_properties_are_refused_with_the_known_ones() {
        let err = MessageFormat::from_properties(&kvs(&["print.keys=true"])).expect_err("typo").to_string();
        assert!(err.contains("print.keys: unknown") && err.contains("print.key,"), "{err}");
        let err = MessageFormat::from_properties(&kvs(&["print.key=yes"])).expect_err("not bool").to_string();
        assert_eq!(err, "--property print.key=yes: must be true or false");
        let err = LineFormat::from_properties(&kvs(&["print.key=true"])).expect_err("consumer's").to_string();
        assert!(err.contains("parse.key, key.separator"), "{err}");
    }

    #[test]
    fn lines_are_values_unless_keys_are_parsed_at_the_first_separator() {
        let plain = LineFormat::default();
        assert_eq!(plain.parse(b"a\tb", 1), Ok((None, Some(Bytes::from("a\tb")))));
        assert_eq!(plain.parse(b"", 1), Ok((None, Some(Bytes::new()))), "an empty line is an empty record");
        let keyed = LineFormat::from_properties(&kvs(&["parse.key=true"])).expect("valid");
        assert_eq!(keyed.parse(b"k\tv\tw", 1), Ok((Some(Bytes::from("k")), Some(Bytes::from("v\tw")))));
        assert_eq!(keyed.parse(b"\tv", 1), Ok((Some(Bytes::new()), Some(Bytes::from("v")))));
        let sep = LineFormat::from_properties(&kvs(&["parse.key=true", "key.separator=::"])).expect("valid");
        assert_eq!(sep.parse(b"a:b::c", 1), Ok((Some(Bytes::from("a:b")), Some(Bytes::from("c")))));
    }

    #[test]
    fn a_line_without_the_separator_stops_unless_errors_are_ignored() {
        let keyed = LineFormat::from_properties(&kvs(&["parse.key=true"])).expect("valid");
        let err = keyed.parse(b"novalue", 7).expect_err("no separator");
        assert!(err.starts_with("no key separator \"\\t\" on line 7: \"novalue\""), "{err}");
        assert!(err.contains("ignore.error=true"), "{err}");
        let lenient =
            LineFormat::from_properties(&kvs(&["parse.key=true", "ignore.error=true"])).expect("valid");
        assert_eq!(lenient.parse(b"novalue", 7), Ok((None, Some(Bytes::from("novalue")))));
    }

    #[test]
    fn the_null_marker_makes_a_key_or_value_null() {
        let f = LineFormat::from_properties(&kvs(&["parse.key=true", "null.marker=NULL"])).expect("valid");
        assert_eq!(f.parse(b"k\tNULL", 1), Ok((Some(Bytes::from("k")), None)), "a tombstone");
        assert_eq!(f.parse(b"NULL\tv", 1), Ok((None, Some(Bytes::from("v")))));
        assert_eq!(f.parse(b"k\tNULLx", 1), Ok((Some(Bytes::from("k")), Some(Bytes::from("NULLx")))));
        assert!(LineFormat::from_properties(&kvs(&["parse.key=true", "null.marker=\t"])).is_err());
    }

    #[test]
    fn line_ends_are_stripped_whether_unix_or_windows() {
        for (raw, want) in
            [(&b"a\n"[..], &b"a"[..]), (b"a\r\n", b"a"), (b"a", b"a"), (b"a\r", b"a\r"), (b"\n", b"")]
        {
            let mut line = raw.to_vec();
            strip_line_end(&mut line);
            assert_eq!(line, want, "{raw:?}");
        }
    }

    #[test]
    fn start_offsets_are_earliest_latest_or_non_negative_numbers() {
        assert_eq!("earliest".parse(), Ok(StartOffset::Earliest));
        assert_eq!("LATEST".parse(), Ok(StartOffset::Latest));
        assert_eq!("42".parse(), Ok(StartOffset::At(42)));
        assert!("-1".parse::<StartOffset>().is_err());
        assert!("first".parse::<StartOffset>().expect_err("word").contains("earliest, latest or an offset"));
    }

    #[test]
    fn only_record_specific_send_errors_let_the_producer_go_on() {
        assert!(only_this_record(&ProducerError::RecordTooLarge {
            size: 2,
            max: 1,
            key: "max.request.size"
        }));
        assert!(!only_this_record(&ProducerError::Closed));
        assert!(!only_this_record(&ProducerError::BufferExhausted {
            size: 1,
            buffer_memory: 1,
            waited: Duration::ZERO
        }));
    }

    fn parse(args: &[&str]) -> Result<crate::Command, clap::Error> {
        use clap::Parser;
        crate::Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn a_bare_compression_codec_means_gzip_and_properties_repeat() {
        let Ok(crate::Command::ConsoleProducer(a)) = parse(&[
            "console-producer",
            "--topic",
            "t",
            "--compression-codec",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--producer-property",
            "acks=1",
        ]) else {
            panic!("console-producer arguments refused")
        };
        assert_eq!(a.compression_codec.as_deref(), Some("gzip"));
        assert_eq!((a.properties.len(), a.producer_properties.len(), a.sync), (2, 1, false));
        let Ok(crate::Command::ConsoleProducer(a)) =
            parse(&["console-producer", "--topic", "t", "--compression-codec", "zstd", "--sync"])
        else {
            panic!("console-producer arguments refused")
        };
        assert_eq!((a.compression_codec.as_deref(), a.sync), (Some("zstd"), true));
    }

    #[test]
    fn an_offset_needs_a_partition_and_excludes_from_beginning() {
        assert!(parse(&["console-consumer", "--topic", "t", "--offset", "5"]).is_err());
        assert!(parse(&[
            "console-consumer",
            "--topic",
            "t",
            "--partition",
            "0",
            "--offset",
            "5",
            "--from-beginning"
        ])
        .is_err());
        let Ok(crate::Command::ConsoleConsumer(a)) =
            parse(&["console-consumer", "--topic", "t", "--partition", "1", "--offset", "earliest"])
        else {
            panic!("console-consumer arguments refused")
        };
        assert_eq!((a.partition, a.offset), (Some(1), Some(StartOffset::Earliest)));
        assert!(parse(&["console-consumer", "--topic", "t", "--partition", "1", "--offset", "-2"]).is_err());
    }

    #[test]
    fn a_group_comes_from_the_flag_or_the_properties_and_they_must_agree() {
        assert_eq!(choose_group(Some("g"), None).expect("flag"), Some("g".to_string()));
        assert_eq!(choose_group(None, Some("p")).expect("property"), Some("p".to_string()));
        assert_eq!(choose_group(Some("g"), Some("g")).expect("the same"), Some("g".to_string()));
        assert_eq!(choose_group(None, None).expect("none"), None);
        let err = choose_group(Some("g"), Some("p")).expect_err("differ").to_string();
        assert!(err.starts_with("The group ids provided in different places"), "{err}");
        assert!(choose_group(Some(" "), None).is_err());
        assert!(parse(&["console-consumer", "--topic", "t", "--group", "g", "--partition", "0"]).is_err());
        let Ok(crate::Command::ConsoleConsumer(a)) =
            parse(&["console-consumer", "--topic", "t", "--group", "g", "--from-beginning"])
        else {
            panic!("console-consumer arguments refused")
        };
        assert_eq!((a.group.as_deref(), a.from_beginning), (Some("g"), true));
    }

    #[test]
    fn from_beginning_is_earliest_for_a_group_and_clashes_with_another_reset() {
        assert_eq!(group_offset_reset(true, None).expect("earliest"), AutoOffsetReset::Earliest);
        assert_eq!(group_offset_reset(true, Some("EARLIEST")).expect("agrees"), AutoOffsetReset::Earliest);
        assert_eq!(group_offset_reset(false, None).expect("default"), AutoOffsetReset::Latest);
        assert_eq!(group_offset_reset(false, Some("none")).expect("as set"), AutoOffsetReset::None);
        let err = group_offset_reset(true, Some("latest")).expect_err("clash").to_string();
        assert!(
            err.starts_with("Can't simultaneously specify --from-beginning and 'auto.offset.reset=latest'")
        );
    }

    #[test]
    fn records_handed_out_but_not_printed_are_rewound_per_partition() {
        let r = |partition, offset| ConsumerRecord { partition, offset, ..record() };
        let batch = [r(0, 10), r(1, 3), r(0, 11), r(1, 4), r(0, 12)];
        assert_eq!(
            first_unprinted(&batch, 2),
            BTreeMap::from([(TopicPartition::new("t", 0), 11), (TopicPartition::new("t", 1), 4)])
        );
        assert_eq!(first_unprinted(&batch, 4), BTreeMap::from([(TopicPartition::new("t", 0), 12)]));
        assert!(first_unprinted(&batch, 5).is_empty(), "everything printed");
    }
}
