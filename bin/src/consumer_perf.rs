//! `sluice consumer-perf-test`: kafka-consumer-perf-test.sh — read `--messages` records from
//! every partition of a topic as fast as possible and print Kafka's header and values line.
//!
//! ```text
//! start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
//! 2024-05-01 10:00:00:000, 2024-05-01 10:00:02:500, 95.3674, 38.1470, 1000000, 400000.0000, 0, 2500, 38.1470, 400000.0000
//! ```
//!
//! Data is the records' key and value bytes; MB is 1024 * 1024 bytes. There are no consumer
//! groups yet (issue 8), so every partition is assigned and `rebalance.time.ms` is always 0
//! (fetch figures equal the overall ones). With `--show-detailed-stats` one line per
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
    let mut config = ConsumerConfig::new(args.client.file_config()?).check_crcs(false);
    if let Some(path) = &args.consumer_config {
        apply_file(path, |k, v| config.set(k, v))?;
    }
    config.max_partition_fetch_bytes = args.fetch_size;
    config.auto_offset_reset =
        if args.from_latest { AutoOffsetReset::Latest } else { AutoOffsetReset::Earliest };
    args.client.finish(&mut config.client)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(consume(args, config))
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
    assign_topic(&mut consumer, &args.topic, None, from).await?;
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
    if timed_out {
        eprintln!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You \
             can use the --timeout option to increase the timeout.",
            args.timeout
        );
    }
    if !args.show_detailed_stats {
        let elapsed = end.saturating_duration_since(start);
        let end_wall = start_wall + elapsed.as_millis() as i64;
        println!("{}", summary_line(start_wall, end_wall, elapsed, totals));
    }
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

/// Kafka's values line. Without consumer groups there is no rebalance, so the fetch time is
/// the whole time.
fn summary_line(start_ms: i64, end_ms: i64, elapsed: Duration, t: Totals) -> String {
    let mb = t.bytes as f64 / MB;
    let (mb_sec, msg_sec) = (per_sec(mb, elapsed), per_sec(t.messages as f64, elapsed));
    format!(
        "{}, {}, {mb:.4}, {mb_sec:.4}, {}, {msg_sec:.4}, 0, {}, {mb_sec:.4}, {msg_sec:.4}",
        format_time(start_ms),
        format_time(end_ms),
        t.messages,
        elapsed.as_millis(),
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
        let line = summary_line(1_700_000_000_000, 1_700_000_002_500, Duration::from_millis(2_500), t);
        assert_eq!(
            line,
            "2023-11-14 22:13:20:000, 2023-11-14 22:13:22:500, 95.3674, 38.1470, 1000000, 400000.0000, 0, 2500, \
             38.1470, 400000.0000"
        );
        let none = summary_line(0, 0, Duration::ZERO, Totals::default());
        assert_eq!(
            none,
            "1970-01-01 00:00:00:000, 1970-01-01 00:00:00:000, 0.0000, 0.0000, 0, 0.0000, 0, 0, 0.0000, 0.0000"
        );
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
