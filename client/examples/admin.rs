//! The admin client: describes the cluster, creates a topic (if it is not there), and
//! describes its partitions.
//!
//! ```sh
//! export SLUICE_BOOTSTRAP_SERVER=127.0.0.1:9092 SLUICE_TLS_CA=certs/ca.pem \
//!        SLUICE_TLS_CERT=certs/cli.pem SLUICE_TLS_KEY=certs/cli.key
//! cargo run -p sluice-client --example admin -- --topic orders --partitions 6 --replication-factor 3
//! ```

use clap::Parser;
use sluice_client::broker::{Admin, ClientConfig, NewTopic};

/// Print the cluster's brokers and controller, create TOPIC with PARTITIONS partitions of
/// REPLICATION_FACTOR replicas (once: an existing topic is left as it is), and print each
/// partition's leader, replicas and in-sync replicas.
///
/// The cluster and this client's certificate come from SLUICE_BOOTSTRAP_SERVER,
/// SLUICE_TLS_CA, SLUICE_TLS_CERT and SLUICE_TLS_KEY, as the `sluice` tools read them.
#[derive(Debug, Parser)]
struct Args {
    /// The topic.
    #[arg(long)]
    topic: String,
    /// Its partitions.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Replicas of each partition.
    #[arg(long, default_value_t = 1)]
    replication_factor: i16,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let admin = Admin::new(ClientConfig::from_env()?)?;
    let cluster = admin.describe_cluster().await?;
    let brokers: Vec<String> = cluster.brokers.iter().map(|b| format!("{} ({})", b.id, b.addr())).collect();
    println!("cluster {}: brokers {}", cluster.cluster_id, brokers.join(", "));
    println!("controller: {}", cluster.controller.map_or("none".to_string(), |c| c.id.to_string()));
    let created = admin
        .create_topics(vec![NewTopic::new(&args.topic, args.partitions, args.replication_factor)], false)
        .await?;
    for (name, outcome) in created {
        match outcome {
            Ok(()) => println!("created {name}"),
            Err(e) if e.code() == 36 => println!("{name} exists already"),
            Err(e) => return Err(format!("cannot create {name}: {e}").into()),
        }
    }
    // Every broker learns of a new topic from the controller a moment after it is created
    // (as in Kafka): a broker asked at once may not know it yet, so ask again until its
    // partitions show, for up to 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let topics = loop {
        let topics = admin.describe_topics(vec![args.topic.clone()]).await?;
        let known = topics.iter().any(|t| t.name == args.topic && !t.partitions.is_empty());
        if known || std::time::Instant::now() >= deadline {
            break topics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for topic in topics {
        for p in topic.partitions {
            println!(
                "{}-{}: leader {} replicas {:?} isr {:?}",
                topic.name,
                p.partition,
                p.leader.map_or("none".to_string(), |l| l.to_string()),
                p.replicas,
                p.isr
            );
        }
    }
    Ok(())
}
