//! An idempotent `acks=all` producer that rides through broker failures: every record is
//! acknowledged by all in-sync replicas, exactly once and in order per partition, and the
//! records that could not be delivered are reported by what to do about them.
//!
//! ```sh
//! export SLUICE_BOOTSTRAP_SERVER=127.0.0.1:9092 SLUICE_TLS_CA=certs/ca.pem \
//!        SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example reliable_produce -- --topic payments --count 100000
//! ```

use std::time::Duration;

use clap::Parser;
use sluice_client::broker::{Acks, ClientConfig, Producer, ProducerConfig, ProducerError, ProducerRecord};

/// Produce COUNT records to TOPIC with acks=all and idempotence: the producer retries
/// retriable errors (a leader moving, a broker restarting) by itself, without duplicates or
/// reordering, for up to --delivery-timeout-ms; what still fails is printed with why.
///
/// The cluster and this client's certificate come from SLUICE_BOOTSTRAP_SERVER,
/// SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY, as the `sluice` tools read them.
#[derive(Debug, Parser)]
struct Args {
    /// The topic.
    #[arg(long)]
    topic: String,
    /// How many records.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// How long a record may take to be acknowledged, retries included.
    #[arg(long, default_value_t = 120_000)]
    delivery_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = ProducerConfig::new(ClientConfig::from_env()?)
        .acks(Acks::All)
        .idempotence(true)
        .delivery_timeout(Duration::from_millis(args.delivery_timeout_ms));
    let producer = Producer::new(config)?;
    let mut pending = Vec::new();
    for i in 0..args.count {
        // `send` waits only when the producer's buffer is full (back-pressure).
        pending.push(producer.send(ProducerRecord::new(&args.topic, format!("payment {i}"))).await?);
    }
    let (mut delivered, mut failed) = (0u64, 0u64);
    for ack in pending {
        match ack.await {
            Ok(_) => delivered += 1,
            Err(e) => {
                failed += 1;
                // Retriable errors were retried until the delivery timeout; what is left
                // needs a person: a refused certificate or ACL, a record too large, ...
                match &e {
                    ProducerError::DeliveryTimeout { .. } => {
                        eprintln!("gave up after the delivery timeout: {e}")
                    }
                    other => eprintln!("not delivered: {other}"),
                }
            }
        }
    }
    producer.close().await;
    println!("{delivered} delivered, {failed} failed");
    if failed > 0 {
        return Err(format!("{failed} records were not delivered").into());
    }
    Ok(())
}
