//! `sluice producer-perf-test`: kafka-producer-perf-test.sh — send `--num-records` records
//! of `--record-size` bytes, at most `--throughput` per second, and print Kafka's window and
//! total lines.
//!
//! Latency of a record: from the call to `send` (which may wait for buffer space, as in
//! Kafka) to its delivery future resolving. One collector task receives each record's start
//! time and future over a channel and awaits them in send order; a partition's deliveries
//! resolve in order and a producer's batches to one broker are answered in order, so a
//! record is seldom seen later than it completed (at most by the time an earlier batch to
//! another broker still took).
//!
//! Memory stays bounded: latencies are kept as `u32` microseconds, every record's until
//! [`MAX_SAMPLES`] (16 MB), and beyond that every `ceil(num_records / MAX_SAMPLES)`-th one,
//! as Kafka samples; percentiles come from the kept samples.
//!
//! The payload is Kafka's default: `--record-size` random uppercase letters, made once and
//! sent as every record's value (no key).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use rand::Rng;
use sluice_client::broker::{DeliveryFuture, Producer, ProducerConfig, ProducerError, ProducerRecord};
use tokio::sync::mpsc;

use crate::client_args::{apply_file, apply_key_values, ClientArgs, KeyValue};

/// Most latency samples kept (4 bytes each).
pub const MAX_SAMPLES: u64 = 4_000_000;

/// How often a window line is printed (Kafka's fixed 5 s).
pub const REPORTING_INTERVAL: Duration = Duration::from_secs(5);

/// Arguments of `sluice producer-perf-test`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Output (Kafka's): every 5 s a window line\n  \
    N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency.\n\
    and at the end\n  \
    N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency, P50 ms 50th, \
    P95 ms 95th, P99 ms 99th, P99.9 ms 99.9th.\n\
    Kafka prints whole milliseconds for the percentiles; they are printed with two decimals here \
    (latencies are measured in microseconds and are often below 1 ms). MB is 1024 * 1024 bytes; \
    only acknowledged records count. If any record failed, a last line on stderr gives the count \
    and the first error, and the exit status is non-zero.")]
pub struct ProducerPerfArgs {
    /// The topic to send to.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// How many records to send.
    #[arg(long, value_name = "N")]
    pub num_records: u64,
    /// Bytes per record (random uppercase letters, as Kafka's default payload).
    #[arg(long, value_name = "BYTES")]
    pub record_size: usize,
    /// At most this many records per second (approximately; sends are paced, not
    /// busy-waited); -1 for no limit.
    #[arg(long, value_name = "RECORDS_PER_SEC", allow_negative_numbers = true)]
    pub throughput: f64,
    /// Producer settings, e.g. acks=1 linger.ms=5 batch.size=65536 (any producer or client
    /// key, bootstrap.servers too). Win over --producer.config and --command-config.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1..)]
    pub producer_props: Vec<KeyValue>,
    /// A producer properties file (producer and client keys).
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,
    /// Run the send loop on the producer's runtime, with N threads in all. Without it the
    /// records are sent from the main thread and the producer's sender and connections run on
    /// a runtime of one thread per core, as in Kafka's tool (the application's thread and the
    /// producer's). With 1 nothing crosses threads: on a 2-core machine shared with the
    /// broker that measured faster for 1 KiB records (fewer wake-ups per batch) and slower
    /// for 100 B ones (sending and sending out share one core); see docs/benchmarks.md.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Where the cluster is and this client's credentials.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `sluice producer-perf-test`.
pub fn run(args: ProducerPerfArgs) -> Result<()> {
    if args.throughput == 0.0 || !args.throughput.is_finite() {
        bail!("--throughput must be a positive number of records per second, or -1 for no limit");
    }
    let mut config = ProducerConfig::new(args.client.file_config()?);
    if let Some(path) = &args.producer_config {
        apply_file(path, |k, v| config.set(k, v))?;
    }
    apply_key_values(&args.producer_props, "--producer-props", |k, v| config.set(k, v))?;
    args.client.finish(&mut config.client)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    match args.threads {
        None => runtime.enable_all().build()?.block_on(send_all(args, config)),
        Some(n) => {
            let rt = runtime.worker_threads(usize::from(n)).enable_all().build()?;
            let sending = rt.spawn(send_all(args, config));
            rt.block_on(sending).context("the send loop panicked")?
        }
    }
}

/// Kafka's default payload: `size` random letters A to Z.
fn payload(size: usize) -> Bytes {
    let mut rng = rand::thread_rng();
    (0..size).map(|_| rng.gen_range(b'A'..=b'Z')).collect::<Vec<u8>>().into()
}

/// When record `i` (from 0) is due at `throughput` records per second (`None`: no limit).
fn due(start: Instant, i: u64, throughput: f64) -> Option<Instant> {
    (throughput > 0.0).then(|| start + Duration::from_secs_f64(i as f64 / throughput))
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What the collector found.
struct Collected {
    stats: Stats,
    failed: u64,
    first_error: Option<ProducerError>,
}

async fn collect(mut deliveries: mpsc::Receiver<(Instant, DeliveryFuture)>, mut stats: Stats) -> Collected {
    let mut failed = 0;
    let mut first_error = None;
    while let Some((sent_at, delivery)) = deliveries.recv().await {
        match delivery.await {
            Ok(_) => {
                let now = Instant::now();
                let micros =
                    u32::try_from(now.saturating_duration_since(sent_at).as_micros()).unwrap_or(u32::MAX);
                if let Some(line) = stats.record(micros, now) {
                    print_line(&line);
                }
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    Collected { stats, failed, first_error }
}

async fn send_all(args: ProducerPerfArgs, config: ProducerConfig) -> Result<()> {
    let producer = Producer::new(config)?;
    let value = payload(args.record_size);
    let start = Instant::now();
    let stats = Stats::new(args.num_records, args.record_size, start, REPORTING_INTERVAL);
    // Enough room for every record buffer.memory can hold at small sizes; a full channel
    // only slows sending down to what the collector sees complete.
    let (tx, rx) = mpsc::channel(1 << 17);
    let collector = tokio::spawn(collect(rx, stats));
    let mut send_error = None;
    for i in 0..args.num_records {
        if let Some(at) = due(start, i, args.throughput) {
            if at > Instant::now() {
                tokio::time::sleep_until(at.into()).await;
            }
        }
        let sent_at = Instant::now();
        match producer.send(ProducerRecord::new(args.topic.clone(), value.clone())).await {
            Ok(delivery) => {
                if tx.send((sent_at, delivery)).await.is_err() {
                    send_error = Some(anyhow!("the delivery collector stopped"));
                    break;
                }
            }
            Err(e) => {
                send_error = Some(anyhow!("record {} cannot be sent: {e}", i + 1));
                break;
            }
        }
    }
    drop(tx);
    producer.close().await;
    let Collected { mut stats, failed, first_error } = collector.await.context("the collector panicked")?;
    print_line(&stats.total(Instant::now()));
    if let Some(e) = send_error {
        return Err(e.context(format!("stopped after {} records", stats.count + failed)));
    }
    if let Some(e) = first_error {
        eprintln!("{failed} of {} records failed; the first error: {e}", args.num_records);
        bail!("{failed} records were not delivered");
    }
    Ok(())
}

/// Kafka's `ProducerPerformance.Stats`: totals, the current window and latency samples.
#[derive(Debug)]
pub struct Stats {
    start: Instant,
    record_size: usize,
    interval: Duration,
    count: u64,
    total_latency_us: u64,
    max_latency_us: u32,
    window_start: Instant,
    window_count: u64,
    window_latency_us: u64,
    window_max_us: u32,
    sampling: u64,
    samples: Vec<u32>,
}

const MB: f64 = 1024.0 * 1024.0;

impl Stats {
    /// Stats for a run of `num_records` of `record_size` bytes that started at `start`.
    pub fn new(num_records: u64, record_size: usize, start: Instant, interval: Duration) -> Self {
        let sampling = num_records.div_ceil(MAX_SAMPLES).max(1);
        let kept = (num_records / sampling + 1).min(MAX_SAMPLES + 1);
        Stats {
            start,
            record_size,
            interval,
            count: 0,
            total_latency_us: 0,
            max_latency_us: 0,
            window_start: start,
            window_count: 0,
            window_latency_us: 0,
            window_max_us: 0,
            sampling,
            samples: Vec::with_capacity(usize::try_from(kept).unwrap_or(0)),
        }
    }

    /// Counts an acknowledged record; returns the window line when the window is over.
    pub fn record(&mut self, latency_us: u32, now: Instant) -> Option<String> {
        if self.count.is_multiple_of(self.sampling) && (self.samples.len() as u64) <= MAX_SAMPLES {
            self.samples.push(latency_us);
        }
        self.count += 1;
        self.total_latency_us += u64::from(latency_us);
        self.max_latency_us = self.max_latency_us.max(latency_us);
        self.window_count += 1;
        self.window_latency_us += u64::from(latency_us);
        self.window_max_us = self.window_max_us.max(latency_us);
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < self.interval {
            return None;
        }
        let line = window_line(
            self.window_count,
            self.window_count * self.record_size as u64,
            elapsed,
            self.window_latency_us,
            self.window_max_us,
        );
        self.window_start = now;
        self.window_count = 0;
        self.window_latency_us = 0;
        self.window_max_us = 0;
        Some(line)
    }

    /// The total line, for a run that ended at `now`.
    pub fn total(&mut self, now: Instant) -> String {
        let elapsed = now.saturating_duration_since(self.start);
        let p = percentiles(&mut self.samples, &[0.5, 0.95, 0.99, 0.999]);
        total_line(
            self.count,
            self.count * self.record_size as u64,
            elapsed,
            self.total_latency_us,
            self.max_latency_us,
            [p[0], p[1], p[2], p[3]],
        )
    }
}

fn rates(count: u64, bytes: u64, elapsed: Duration) -> (f64, f64) {
    let secs = elapsed.as_secs_f64();
    (count as f64 / secs, bytes as f64 / MB / secs)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Kafka's window line: `N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms
/// max latency.`
fn window_line(count: u64, bytes: u64, elapsed: Duration, total_latency_us: u64, max_us: u32) -> String {
    let (per_sec, mb_per_sec) = rates(count, bytes, elapsed);
    format!(
        "{count} records sent, {per_sec:.1} records/sec ({mb_per_sec:.2} MB/sec), {:.1} ms avg latency, {:.1} ms \
         max latency.",
        ms(total_latency_us) / count as f64,
        ms(u64::from(max_us)),
    )
}

/// Kafka's total line, with the percentiles (given in ms) printed to two decimals.
fn total_line(
    count: u64,
    bytes: u64,
    elapsed: Duration,
    total_latency_us: u64,
    max_us: u32,
    p: [f64; 4],
) -> String {
    let (per_sec, mb_per_sec) = rates(count, bytes, elapsed);
    format!(
        "{count} records sent, {per_sec:.6} records/sec ({mb_per_sec:.2} MB/sec), {:.2} ms avg latency, {:.2} ms \
         max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
        ms(total_latency_us) / count as f64,
        ms(u64::from(max_us)),
        p[0],
        p[1],
        p[2],
        p[3],
    )
}

/// Kafka's percentiles of microsecond samples, in ms: the sample at index `p * len` of the
/// sorted samples (0 when there are none). Sorts `samples`.
fn percentiles(samples: &mut [u32], ps: &[f64]) -> Vec<f64> {
    samples.sort_unstable();
    ps.iter()
        .map(|p| {
            let i = ((p * samples.len() as f64) as usize).min(samples.len().saturating_sub(1));
            samples.get(i).map_or(0.0, |&us| ms(u64::from(us)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_line_is_kafkas() {
        let line = window_line(50_000, 50_000 * 100, Duration::from_secs(5), 50_000 * 1_500, 12_345);
        assert_eq!(
            line,
            "50000 records sent, 10000.0 records/sec (0.95 MB/sec), 1.5 ms avg latency, 12.3 ms max latency."
        );
    }

    #[test]
    fn the_total_line_is_kafkas_with_two_decimal_percentiles() {
        let line =
            total_line(1000, 1000 * 1024, Duration::from_secs(2), 1000 * 250, 4_000, [0.2, 0.3, 1.25, 4.0]);
        assert_eq!(
            line,
            "1000 records sent, 500.000000 records/sec (0.49 MB/sec), 0.25 ms avg latency, 4.00 ms max latency, \
             0.20 ms 50th, 0.30 ms 95th, 1.25 ms 99th, 4.00 ms 99.9th."
        );
    }

    #[test]
    fn percentiles_take_the_sample_at_p_times_the_count() {
        let mut samples: Vec<u32> = (1..=1000).rev().map(|i| i * 1000).collect();
        assert_eq!(percentiles(&mut samples, &[0.5, 0.95, 0.99, 0.999]), vec![501.0, 951.0, 991.0, 1000.0]);
        assert_eq!(percentiles(&mut [], &[0.5]), vec![0.0]);
        assert_eq!(percentiles(&mut [700], &[0.5, 0.999]), vec![0.7, 0.7]);
    }

    #[test]
    fn a_window_line_comes_once_the_interval_passed_and_the_window_restarts() {
        let t0 = Instant::now();
        let mut s = Stats::new(10, 100, t0, Duration::from_secs(5));
        assert_eq!(s.record(1_000, t0 + Duration::from_secs(1)), None);
        let line = s.record(3_000, t0 + Duration::from_secs(5)).expect("window over");
        assert!(
            line.starts_with("2 records sent, 0.4 records/sec")
                && line.contains("2.0 ms avg latency, 3.0 ms max"),
            "{line}"
        );
        assert_eq!(s.record(500, t0 + Duration::from_secs(6)), None, "a new window");
        let total = s.total(t0 + Duration::from_secs(10));
        assert!(total.starts_with("3 records sent, 0.300000 records/sec"), "{total}");
        assert!(total.contains("1.50 ms avg latency, 3.00 ms max latency, 1.00 ms 50th"), "{total}");
    }

    #[test]
    fn latency_samples_stay_bounded_by_sampling_like_kafka() {
        let t0 = Instant::now();
        let mut s = Stats::new(MAX_SAMPLES * 3, 1, t0, Duration::from_secs(3600));
        assert_eq!(s.sampling, 3);
        for i in 0..30u32 {
            s.record(i, t0);
        }
        assert_eq!(s.samples, vec![0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
        assert!(s.samples.capacity() as u64 <= MAX_SAMPLES + 1);
        let small = Stats::new(10, 1, t0, Duration::from_secs(1));
        assert_eq!(small.sampling, 1, "every record below the limit");
    }

    #[test]
    fn pacing_spreads_records_over_time_and_minus_one_means_no_limit() {
        let t0 = Instant::now();
        assert_eq!(due(t0, 0, 1000.0), Some(t0));
        assert_eq!(due(t0, 500, 1000.0), Some(t0 + Duration::from_millis(500)));
        assert_eq!(due(t0, 3, 0.5), Some(t0 + Duration::from_secs(6)));
        assert_eq!(due(t0, 500, -1.0), None);
    }

    #[test]
    fn producer_props_take_several_values_and_throughput_may_be_minus_one() {
        use clap::Parser;
        let args = [
            "sluice",
            "producer-perf-test",
            "--producer-props",
            "bootstrap.servers=b:1",
            "acks=1",
            "--topic",
            "t",
            "--num-records",
            "10",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ];
        let Ok(crate::Command::ProducerPerfTest(a)) = crate::Cli::try_parse_from(args).map(|c| c.command)
        else {
            panic!("producer-perf-test arguments refused")
        };
        let props: Vec<&str> = a.producer_props.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(props, vec!["bootstrap.servers", "acks"]);
        assert_eq!((a.topic.as_str(), a.num_records, a.record_size, a.throughput), ("t", 10, 100, -1.0));
    }

    #[test]
    fn the_payload_is_random_uppercase_letters_of_the_record_size() {
        let p = payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert!(p.iter().any(|&b| b != p[0]), "random, not constant");
        assert!(payload(0).is_empty());
    }
}
