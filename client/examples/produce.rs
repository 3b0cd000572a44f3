//! Produces keyed records with a header and waits for every acknowledgement.
//!
//! ```sh
//! export SLUICE_BOOTSTRAP_SERVER=127.0.0.1:9092 SLUICE_TLS_CA=certs/ca.pem \
//!        SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example produce -- --topic demo --count 10
//! ```

use std::time::Instant;

use clap::Parser;
use sluice_client::broker::{Acks, ClientConfig, Producer, ProducerConfig, ProducerRecord};

/// Produce COUNT keyed records (key `key-<i % 4>`, value `record <i>`, header `source:
/// example`) to TOPIC with acks=all, then print where each landed.
///
/// The cluster and this client's certificate come from SLUICE_BOOTSTRAP_SERVER,
/// SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY, as the `sluice` tools read them.
#[derive(Debug, Parser)]
struct Args {
    /// The topic (created on first use when the brokers allow it).
    #[arg(long)]
    topic: String,
    /// How many records.
    #[arg(long, default_value_t = 10)]
    count: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let producer = Producer::new(ProducerConfig::new(ClientConfig::from_env()?).acks(Acks::All))?;
    let started = Instant::now();
    // `send` queues the record and returns a future of its acknowledgement: queue them all,
    // then wait, so they travel in batches.
    let mut acknowledgements = Vec::new();
    for i in 0..args.count {
        let record = ProducerRecord::new(&args.topic, format!("record {i}"))
            .with_key(format!("key-{}", i % 4))
            .with_header("source", Some("example".into()));
        acknowledgements.push(producer.send(record).await?);
    }
    for (i, ack) in acknowledgements.into_iter().enumerate() {
        let landed = ack.await?;
        println!("record {i} -> {}-{} at offset {}", landed.topic, landed.partition, landed.offset);
    }
    producer.close().await;
    println!("{} records acknowledged in {:.1?}", args.count, started.elapsed());
    Ok(())
}
