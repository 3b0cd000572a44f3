//! Issue 8's rebalance benchmark: how long a group of 10 consumers takes to complete a
//! rebalance when a member joins or leaves, on a real broker process (release build: run
//! `bash bench/group-perf.sh`, or `cargo build --release -p sluice-bin && cargo run
//! --release -p sluice-tests --example rebalance_time`).
//!
//! Members run Kafka's consumer defaults (`heartbeat.interval.ms` 3 s, `session.timeout.ms`
//! 45 s), each polling on its own task every 100 ms. A join is timed from the new member's
//! `subscribe` until every member is in the new generation with its assignment; a leave from
//! the member's `close` until the rest are. `ROUNDS` (default 5) joins and leaves;
//! `HEARTBEAT_MS` sets `heartbeat.interval.ms` (members hear of a rebalance on a heartbeat).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_client::broker::proto::NewTopic;
use sluice_client::broker::{Admin, ClientConfig, Consumer, ConsumerConfig};
use sluice_tests::BrokerCluster;
use tokio::sync::oneshot;

/// Each member's (generation, partitions), by member number.
type Board = Arc<Mutex<BTreeMap<usize, (i32, usize)>>>;

struct Member {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

fn start_member(config: ConsumerConfig, n: usize, board: Board) -> Member {
    let (stop, mut stopped) = oneshot::channel();
    let done = tokio::spawn(async move {
        let mut c = Consumer::new(config).expect("consumer");
        c.subscribe(["bench"]).expect("subscribe");
        loop {
            if stopped.try_recv().is_ok() {
                break;
            }
            if let Err(e) = c.poll(Duration::from_millis(100)).await {
                eprintln!("member {n}: {e}");
            }
            let generation = c.group_generation().map_or(-1, |(g, _)| g);
            board.lock().expect("board").insert(n, (generation, c.assignment().len()));
        }
        board.lock().expect("board").remove(&n);
        c.close().await.expect("close");
    });
    Member { stop, done }
}

/// Waits until `members` members are all in one generation above `after` and hold all 12
/// partitions between them; returns that generation.
async fn settled(board: &Board, members: usize, after: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "{members} members did not settle past generation {after} in 120 s"
        );
        {
            let b = board.lock().expect("board");
            let gens: Vec<i32> = b.values().map(|(g, _)| *g).collect();
            let total: usize = b.values().map(|(_, p)| *p).sum();
            if b.len() == members && gens.iter().all(|g| *g == gens[0] && *g > after) && total == 12 {
                return gens[0];
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: {} runs, min {:.0} ms, median {:.0} ms, max {:.0} ms",
        times.len(),
        ms(&times[0]),
        ms(&times[times.len() / 2]),
        ms(&times[times.len() - 1])
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let cluster = BrokerCluster::start(1, "offsets.topic.replication.factor=1\n");
    let client =
        ClientConfig::new(cluster.brokers.iter().map(|b| b.addr.clone())).tls_files(cluster.client_files());
    let admin = Admin::new(client.clone()).expect("admin");
    let topic = NewTopic::new("bench", 12, 1);
    admin.create_topics(vec![topic], false).await.expect("create");
    let mut config = ConsumerConfig::new(client).group_id("rebalance-bench");
    if let Some(ms) = std::env::var("HEARTBEAT_MS").ok().and_then(|v| v.parse().ok()) {
        config = config.heartbeat_interval(Duration::from_millis(ms));
    }
    println!("heartbeat.interval.ms = {}", config.heartbeat_interval.as_millis());
    let board: Board = Arc::default();
    let started = Instant::now();
    let mut members: Vec<Member> = (0..10).map(|n| start_member(config.clone(), n, board.clone())).collect();
    let mut generation = settled(&board, 10, 0).await;
    println!(
        "10 members started together: one rebalance (generation {generation}) in {:?} \
         (group.initial.rebalance.delay.ms = 3000 included)",
        started.elapsed()
    );
    let (mut joins, mut leaves) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let t = Instant::now();
        members.push(start_member(config.clone(), 100 + round, board.clone()));
        generation = settled(&board, 11, generation).await;
        joins.push(t.elapsed());
        let last = members.pop().expect("member");
        let t = Instant::now();
        let _ = last.stop.send(());
        generation = settled(&board, 10, generation).await;
        leaves.push(t.elapsed());
        let _ = last.done.await;
        println!(
            "round {round}: join {:?}, leave {:?} (generation {generation})",
            joins[round], leaves[round]
        );
    }
    summary("join of an 11th member", joins);
    summary("leave of a member (close)", leaves);
    for m in members {
        let _ = m.stop.send(());
        let _ = m.done.await;
    }
}
