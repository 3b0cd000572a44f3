//! `rdkafka-perf`: librdkafka's producer against any Kafka-protocol broker.
//!
//! Throughput: `--num-records N --record-size B` as fast as the library takes them (records
//! are queued with `BaseProducer::send`; when its queue is full the loop polls), then a
//! flush; prints records/s and MB/s. Latency: `--throughput R` paces the sends and prints
//! the delivery latency's percentiles (from the send call to the acknowledgement's callback).
//! `-X key=value` passes any librdkafka setting (acks, linger.ms, TLS files).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

#[derive(Parser, Debug)]
#[command(about = "librdkafka's producer against a Kafka-protocol broker: throughput, or latency at a fixed rate")]
struct Args {
    /// bootstrap.servers
    #[arg(long)]
    bootstrap: String,
    /// The topic (must exist).
    #[arg(long)]
    topic: String,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    num_records: usize,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per second; 0 for as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    throughput: f64,
    /// A librdkafka setting, key=value (repeatable).
    #[arg(short = 'X')]
    settings: Vec<String>,
}

struct Latencies {
    done: Mutex<(Vec<Duration>, usize)>,
}

impl ClientContext for Latencies {}

impl ProducerContext for Latencies {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Self::DeliveryOpaque) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => done.0.push(sent.elapsed()),
            Err(_) => done.1 += 1,
        }
    }
}

fn main() {
    let args = Args::parse();
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.bootstrap);
    for kv in &args.settings {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("-X {kv}: write key=value");
            std::process::exit(2);
        };
        config.set(k, v);
    }
    let context = Latencies { done: Mutex::new((Vec::with_capacity(args.num_records), 0)) };
    let producer: BaseProducer<Latencies> = match config.create_with_context(context) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot create the producer: {e}");
            std::process::exit(1);
        }
    };
    let payload: Vec<u8> = (0..args.record_size).map(|i| b'a' + (i % 26) as u8).collect();
    // Metadata and connections first.
    let warm = BaseRecord::with_opaque_to(&args.topic, Box::new(Instant::now())).payload(&payload[..]).key("warm");
    let _ = producer.send(warm);
    let _ = producer.flush(Duration::from_secs(30));
    producer.context().done.lock().unwrap_or_else(|p| p.into_inner()).0.clear();

    let start = Instant::now();
    for i in 0..args.num_records {
        if args.throughput > 0.0 {
            // Sleep, not spin, until the record is due: a spinning loop takes a core from
            // librdkafka's own threads and the broker, and its latency figures with it.
            let due = start + Duration::from_secs_f64(i as f64 / args.throughput);
            producer.poll(Duration::ZERO);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let mut record: BaseRecord<'_, (), [u8], Box<Instant>> =
            BaseRecord::with_opaque_to(&args.topic, Box::new(Instant::now())).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    eprintln!("send failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    if let Err(e) = producer.flush(Duration::from_secs(120)) {
        eprintln!("flush failed: {e}");
        std::process::exit(1);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (mut latencies, failed) = {
        let done = producer.context().done.lock().unwrap_or_else(|p| p.into_inner());
        (done.0.clone(), done.1)
    };
    if failed > 0 || latencies.len() != args.num_records {
        eprintln!("{failed} records failed, {} of {} acknowledged", latencies.len(), args.num_records);
        std::process::exit(1);
    }
    latencies.sort();
    let ms = |q: f64| latencies[((q * latencies.len() as f64) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{} records sent, {:.0} records/sec ({:.2} MB/sec), {:.2} ms p50, {:.2} ms p99, {:.2} ms p99.9, {:.2} ms max latency",
        args.num_records,
        args.num_records as f64 / elapsed,
        (args.num_records * args.record_size) as f64 / elapsed / 1e6,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}
