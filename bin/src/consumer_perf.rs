//! `sluice consumer-perf-test`: kafka-consumer-perf-test.sh — read `--messages` records from
//! every partition of a topic as fast as possible and print Kafka's header and values line.
//!
//! ```text
//! start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
//! 2024-05-01 10:00:00:000, 2024-05-01 10:00:02:500, 95.3674, 38.1470, 1000000, 400000.0000, 0, 2500, 38.1470, 400000.0000
//! ```
//!
//! Data is the records' key and value bytes; MB is 1024 * 1024 bytes. Without `--group`
//! every partition is assigned and `rebalance.time.ms` is 0 (fetch figures equal the overall
//! ones). With `--group G` the consumers subscribe as members of group G (`--threads N`
//! members in this process, as Kafka's old `--threads`): `rebalance.time.ms` is the time
//! until every member has its first assignment, and the fetch figures cover the rest of the
//! run. With `--show-detailed-stats` one line per
//! `--reporting-interval` (`time, threadId, data.consumed.in.MB, MB.sec,
//! data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec,
//! fetch.nMsg.sec`, rates over the interval) replaces the final line, as in Kafka.
//!
//! Where this differs from Kafka: times are printed in UTC; when the run ends because
//! `--timeout` passed without a record, `end.time` is when the last record arrived (Kafka
//! counts the idle timeout too, which understates the rates), and the warning goes to
//! stderr; as Kafka's tool, it does not verify batch CRCs (`check.crcs=false`) unless the
//! `--consumer.config` file asks for it. On a terminal, stderr shows the records and MB read
//! so far, refreshed in place.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use sluice_client::broker::{AutoOffsetReset, Consumer, ConsumerConfig};

use crate::client_args::{apply_file, ClientArgs};
use crate::console::{assign_topic, StartOffset};

/// Arguments of `sluice consumer-perf-test`.
#[derive(Debug, clap::Args)]
pub struct ConsumerPerfArgs {
    /// The topic to read (every partition).
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// How many records to read.
    #[arg(long, value_name = "N")]
    pub messages: u64,
    /// Stop when no record arrived for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout: u64,
    /// Start at the end of each partition (only records produced from now on) instead of
    /// the beginning.
    #[arg(long)]
    pub from_latest: bool,
    /// Most bytes fetched per partition in one request (max.partition.fetch.bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 1_048_576)]
    pub fetch_size: u32,
    /// Print a line per --reporting-interval instead of the final summary.
    #[arg(long)]
    pub show_detailed_stats: bool,
    /// Milliseconds between detailed lines.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    pub reporting_interval: u64,
    /// Leave out the header line.
    #[arg(long)]
    pub hide_header: bool,
    /// Read as members of this consumer group (subscribing) instead of assigning every
    /// partition; the group starts at its committed offsets, else per --from-latest.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// With --group: how many members of the group to run in this process.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "group")]
    pub threads: u32,
    /// A consumer properties file (consumer and client keys).
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `sluice consumer-perf-test`.
pub fn run(args: ConsumerPerfArgs) -> Result<()> {
    if args.reporting_interval == 0 || args.timeout == 0 {
        bail!("--reporting-interval and --timeout must be at least 1 ms");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let mut config = ConsumerConfig::new(args.client.file_config()?).check_crcs(false);
    if let Some(path) = &args.consumer_config {
        apply_file(path, |k, v| config.set(k, v))?;
    }
    config.max_partition_fetch_bytes = args.fetch_size;
    config.auto_offset_reset =
        if args.from_latest { AutoOffsetReset::Latest } else { AutoOffsetReset::Earliest };
    args.client.finish(&mut config.client)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.group.clone() {
        Some(group) => rt.block_on(consume_group(args, config.group_id(group))),
        None => rt.block_on(consume(args, config)),
    }
}

/// What the members of a group run share.
#[derive(Debug, Default)]
struct Shared {
    messages: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    /// Partitions in the members' first assignments, summed.
    assigned: std::sync::atomic::AtomicU32,
    stop: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn totals(&self) -> Totals {
        use std::sync::atomic::Ordering::Relaxed;
        Totals { messages: self.messages.load(Relaxed), bytes: self.bytes.load(Relaxed) }
    }
}

/// `--group`: `--threads` members of the group read until `--messages` between them.
async fn consume_group(args: ConsumerPerfArgs, config: ConsumerConfig) -> Result<()> {
    use std::sync::atomic::Ordering::{Relaxed, SeqCst};
    if !args.hide_header {
        println!("{}", header(args.show_detailed_stats));
    }
    let start_wall = epoch_ms(SystemTime::now());
    let start = Instant::now();
    let shared = std::sync::Arc::new(Shared::default());
    // The rebalance is over when the members' first assignments cover every partition (a
    // member beyond the partition count gets none).
    let partitions = Consumer::new(config.clone())?
        .partitions_for(&args.topic, config.client.request_timeout)
        .await?
        .len() as u32;
    let mut members = tokio::task::JoinSet::new();
    for _ in 0..args.threads {
        let mut consumer = Consumer::new(config.clone())?;
        consumer.subscribe([args.topic.clone()])?;
        let (shared, wanted) = (shared.clone(), args.messages);
        members.spawn(async move {
            let mut counted_assignment = false;
            while !shared.stop.load(SeqCst) && shared.messages.load(Relaxed) < wanted {
                let records = consumer.poll(Duration::from_millis(100)).await?;
                if !counted_assignment && !consumer.assignment().is_empty() {
                    counted_assignment = true;
                    shared.assigned.fetch_add(consumer.assignment().len() as u32, SeqCst);
                }
                let bytes: u64 = records
                    .iter()
                    .map(|r| {
                        (r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()))
                            as u64
                    })
                    .sum();
                shared.messages.fetch_add(records.len() as u64, Relaxed);
                shared.bytes.fetch_add(bytes, Relaxed);
            }
            consumer.close().await?;
            anyhow::Ok(())
        });
    }
    let timeout = Duration::from_millis(args.timeout);
    let interval = Duration::from_millis(args.reporting_interval);
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let (mut last_report, mut reported) = (start, Totals::default());
    let (mut last_consumed, mut seen) = (Instant::now(), 0u64);
    let mut rebalance: Option<Duration> = None;
    let mut timed_out = false;
    let stop = crate::perf::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let totals = shared.totals();
        let now = Instant::now();
        if rebalance.is_none() && shared.assigned.load(SeqCst) >= partitions {
            rebalance = Some(now - start);
        }
        if totals.messages != seen {
            (seen, last_consumed) = (totals.messages, now);
        }
        if totals.messages >= args.messages || members.is_empty() {
            break;
        }
        if now - last_consumed >= timeout {
            timed_out = true;
            break;
        }
        if args.show_detailed_stats && now.saturating_duration_since(last_report) >= interval {
            progress.clear();
            let at = start_wall + (now - start).as_millis() as i64;
            println!("{}", detail_line(at, totals, reported, now - last_report));
            (last_report, reported) = (now, totals);
        }
        progress.show(totals);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
            Some(done) = members.join_next() => done??,
            () = &mut stop => break,
        }
    }
    let end = if timed_out { last_consumed } else { Instant::now() };
    shared.stop.store(true, SeqCst);
    while let Some(done) = members.join_next().await {
        done??;
    }
    progress.clear();
    let totals = shared.totals();
    let totals = Totals { messages: totals.messages.min(args.messages), ..totals };
    let elapsed = end.saturating_duration_since(start);
    report_end(&args, timed_out, start_wall, elapsed, rebalance.unwrap_or(elapsed), totals);
    Ok(())
}

/// The timeout warning (on stderr) and, without `--show-detailed-stats`, the summary line.
fn report_end(
    args: &ConsumerPerfArgs,
    timed_out: bool,
    start_wall: i64,
    elapsed: Duration,
    rebalance: Duration,
    totals: Totals,
) {
    if timed_out {
        eprintln!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You \
             can use the --timeout option to increase the timeout.",
            args.timeout
        );
    }
    if !args.show_detailed_stats {
        let end_wall = start_wall + elapsed.as_millis() as i64;
        println!("{}", summary_line(start_wall, end_wall, elapsed, rebalance, totals));
    }
}

/// Records and bytes read so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    messages: u64,
    bytes: u64,
}

async fn consume(args: ConsumerPerfArgs, config: ConsumerConfig) -> Result<()> {
    if !args.hide_header {
        println!("{}", header(args.show_detailed_stats));
    }
    let start_wall = epoch_ms(SystemTime::now());
    let start = Instant::now();
    let mut consumer = Consumer::new(config)?;
    let from = if args.from_latest { StartOffset::Latest } else { StartOffset::Earliest };
    assign_topic(&mut consumer, &args.topic, None, from, None).await?;
    let timeout = Duration::from_millis(args.timeout);
    let interval = Duration::from_millis(args.reporting_interval);
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let mut totals = Totals::default();
    let mut last_consumed = Instant::now();
    let (mut last_report, mut reported) = (start, Totals::default());
    let mut timed_out = false;
    let stop = crate::perf::shutdown_signal();
    tokio::pin!(stop);
    while totals.messages < args.messages {
        let idle = last_consumed.elapsed();
        if idle >= timeout {
            timed_out = true;
            break;
        }
        let wait = (timeout - idle).min(Duration::from_millis(250));
        let records = tokio::select! {
            r = consumer.poll(wait) => r?,
            () = &mut stop => break,
        };
        let now = Instant::now();
        if !records.is_empty() {
            last_consumed = now;
        }
        for r in &records {
            if totals.messages >= args.messages {
                break;
            }
            totals.messages += 1;
            totals.bytes +=
                (r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len())) as u64;
        }
        if now.saturating_duration_since(last_report) >= interval {
            if args.show_detailed_stats {
                progress.clear();
                let at = start_wall + (now - start).as_millis() as i64;
                println!("{}", detail_line(at, totals, reported, now - last_report));
            }
            (last_report, reported) = (now, totals);
        }
        progress.show(totals);
    }
    progress.clear();
    let end = if timed_out { last_consumed } else { Instant::now() };
    report_end(&args, timed_out, start_wall, end.saturating_duration_since(start), Duration::ZERO, totals);
    Ok(())
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

const MB: f64 = 1024.0 * 1024.0;

/// Kafka's header line.
fn header(detailed: bool) -> String {
    let first = if detailed { "time, threadId" } else { "start.time, end.time" };
    format!(
        "{first}, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, \
         fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
    )
}

/// Kafka's date format, `yyyy-MM-dd HH:mm:ss:SSS`, in UTC.
fn format_time(ms_since_epoch: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms_since_epoch) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}:{:03}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => ms_since_epoch.to_string(),
    }
}

/// `amount` per second over `elapsed` (0 over no time).
fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Kafka's values line: overall rates, the rebalance time, and the rates over the fetch
/// time (the run less the rebalance).
fn summary_line(start_ms: i64, end_ms: i64, elapsed: Duration, rebalance: Duration, t: Totals) -> String {
    let mb = t.bytes as f64 / MB;
    let (mb_sec, msg_sec) = (per_sec(mb, elapsed), per_sec(t.messages as f64, elapsed));
    let fetch = elapsed.saturating_sub(rebalance);
    let (fetch_mb_sec, fetch_msg_sec) = (per_sec(mb, fetch), per_sec(t.messages as f64, fetch));
    format!(
        "{}, {}, {mb:.4}, {mb_sec:.4}, {}, {msg_sec:.4}, {}, {}, {fetch_mb_sec:.4}, {fetch_msg_sec:.4}",
        format_time(start_ms),
        format_time(end_ms),
        t.messages,
        rebalance.as_millis(),
        fetch.as_millis(),
    )
}

/// Kafka's `--show-detailed-stats` line: the time, thread 0, the totals so far and the rates
/// over the interval since the previous line.
fn detail_line(at_ms: i64, now: Totals, before: Totals, interval: Duration) -> String {
    let mb = now.bytes as f64 / MB;
    let mb_sec = per_sec(now.bytes.saturating_sub(before.bytes) as f64 / MB, interval);
    let msg_sec = per_sec(now.messages.saturating_sub(before.messages) as f64, interval);
    format!(
        "{}, 0, {mb:.4}, {mb_sec:.4}, {}, {msg_sec:.4}, 0, {}, {mb_sec:.4}, {msg_sec:.4}",
        format_time(at_ms),
        now.messages,
        interval.as_millis(),
    )
}

/// The progress text: records and MB so far.
fn progress_text(t: Totals) -> String {
    format!("consumed {} records, {:.1} MB", t.messages, t.bytes as f64 / MB)
}

/// A one-line progress display on stderr, refreshed in place at most 4 times a second;
/// nothing when stderr is not a terminal.
struct Progress {
    enabled: bool,
    shown_at: Option<Instant>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress { enabled, shown_at: None }
    }

    fn show(&mut self, t: Totals) {
        if !self.enabled || self.shown_at.is_some_and(|at| at.elapsed() < Duration::from_millis(250)) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", progress_text(t));
        let _ = err.flush();
        self.shown_at = Some(Instant::now());
    }

    /// Erases the line, so what follows starts on a clean one.
    fn clear(&mut self) {
        if self.enabled && self.shown_at.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_kafkas() {
        assert_eq!(
            header(false),
            "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
             rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
        );
        assert!(header(true).starts_with("time, threadId, data.consumed.in.MB, MB.sec,"));
    }

    #[test]
    fn times_print_as_kafkas_date_format_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00:000");
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14 22:13:20:123");
    }

    #[test]
    fn the_summary_has_kafkas_fields_and_precision() {
        let t = Totals { messages: 1_000_000, bytes: 100_000_000 };
        let line = summary_line(
            1_700_000_000_000,
            1_700_000_002_500,
            Duration::from_millis(2_500),
            Duration::ZERO,
            t,
        );
        assert_eq!(
            line,
            "2023-11-14 22:13:20:000, 2023-11-14 22:13:22:500, 95.3674, 38.1470, 1000000, 400000.0000, 0, 2500, \
             38.1470, 400000.0000"
        );
        let none = summary_line(0, 0, Duration::ZERO, Duration::ZERO, Totals::default());
        assert_eq!(
            none,
            "1970-01-01 00:00:00:000, 1970-01-01 00:00:00:000, 0.0000, 0.0000, 0, 0.0000, 0, 0, 0.0000, 0.0000"
        );
    }

    #[test]
    fn a_group_runs_fetch_figures_leave_out_the_rebalance() {
        let t = Totals { messages: 1_000_000, bytes: 100_000_000 };
        let line = summary_line(0, 2_500, Duration::from_millis(2_500), Duration::from_millis(500), t);
        assert!(line.ends_with("400000.0000, 500, 2000, 47.6837, 500000.0000"), "{line}");
    }

    #[test]
    fn detailed_lines_give_totals_and_the_intervals_rates() {
        let before = Totals { messages: 1000, bytes: 1 << 20 };
        let now = Totals { messages: 3000, bytes: 3 << 20 };
        assert_eq!(
            detail_line(1_000, now, before, Duration::from_secs(2)),
            "1970-01-01 00:00:01:000, 0, 3.0000, 1.0000, 3000, 1000.0000, 0, 2000, 1.0000, 1000.0000"
        );
    }

    #[test]
    fn progress_shows_records_and_megabytes() {
        assert_eq!(progress_text(Totals { messages: 12, bytes: 3 << 19 }), "consumed 12 records, 1.5 MB");
    }
}
