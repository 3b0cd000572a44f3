//! A consumer group member: reads a topic as a stream, processes each record, commits what
//! it processed, and leaves the group cleanly on Ctrl-C (or after `--max-records`).
//!
//! ```sh
//! export SLUICE_BOOTSTRAP_SERVER=127.0.0.1:9092 SLUICE_TLS_CA=certs/ca.pem \
//!        SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example consume_group -- --topic demo --group readers
//! ```

use clap::Parser;
use futures_util::StreamExt;
use sluice_client::broker::{AutoOffsetReset, ClientConfig, Consumer, ConsumerConfig};

/// Join GROUP, read TOPIC from the group's committed offsets (else from the beginning), print
/// each record, commit every 100 records and on the way out, and leave the group on Ctrl-C.
///
/// The cluster and this client's certificate come from SLUICE_BOOTSTRAP_SERVER,
/// SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY, as the `sluice` tools read them.
#[derive(Debug, Parser)]
struct Args {
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// Stop after this many records [default: run until Ctrl-C].
    #[arg(long)]
    max_records: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = ConsumerConfig::new(ClientConfig::from_env()?)
        .group_id(&args.group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .enable_auto_commit(false);
    let mut consumer = Consumer::new(config)?;
    consumer.subscribe([args.topic.as_str()])?;
    let mut processed = 0u64;
    {
        let mut records = consumer.stream();
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        while args.max_records.is_none_or(|max| processed < max) {
            let record = tokio::select! {
                _ = &mut ctrl_c => break,
                next = records.next() => match next {
                    Some(record) => record?,
                    None => break,
                },
            };
            let value = record.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            println!("{}-{}@{}: {value}", record.topic, record.partition, record.offset);
            processed += 1;
            if processed.is_multiple_of(100) {
                records.commit().await?;
            }
        }
        // What was processed; what the stream had fetched beyond it is read again next time.
        records.commit().await?;
    }
    consumer.close().await?;
    println!("processed {processed} records; committed and left the group");
    Ok(())
}
