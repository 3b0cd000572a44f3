//! A consumer group's members processing records and committing what they processed, with a
//! ledger of everything they did: the workload of the group fault tests
//! (`tests/tests/groups.rs`, `tests/tests/nemesis.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_client::broker::{Consumer, TopicPartition};

/// What the members did, shared between their tasks.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Every record processed, in order, with repeats.
    pub processed: Vec<(TopicPartition, i64)>,
    /// Per partition, the offset up to which a commit was confirmed.
    pub confirmed: BTreeMap<TopicPartition, i64>,
    /// Records delivered again although a confirmed commit covered them: a committed offset
    /// was lost.
    pub violations: Vec<(TopicPartition, i64)>,
    /// Commits that failed (their records may be delivered again).
    pub commit_failures: usize,
}

impl Ledger {
    /// How many distinct records were processed.
    pub fn distinct(&self) -> usize {
        self.processed.iter().collect::<BTreeSet<_>>().len()
    }
}

/// One member's loop until `done`: poll; process the records (note them in `ledger`, and any
/// delivered again below a confirmed commit); take a little while; commit what it processed
/// and, once the commit is confirmed, note that. A failed poll or commit is logged and the
/// member carries on (a coordinator may be gone for a while). Then it leaves the group.
pub async fn run_member(mut c: Consumer, ledger: Arc<Mutex<Ledger>>, done: Arc<AtomicBool>) {
    while !done.load(Ordering::SeqCst) {
        let records = match c.poll(Duration::from_millis(200)).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("poll: {e}");
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        let mut upto = BTreeMap::new();
        {
            let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            for r in &records {
                let tp = TopicPartition::new(r.topic.clone(), r.partition);
                if l.confirmed.get(&tp).is_some_and(|&c| r.offset < c) {
                    l.violations.push((tp.clone(), r.offset));
                }
                l.processed.push((tp.clone(), r.offset));
                upto.insert(tp, r.offset + 1);
            }
        }
        // Processing takes a little while; then commit what was processed.
        tokio::time::sleep(Duration::from_millis(20)).await;
        match c.commit_offsets_sync(upto.clone()).await {
            Ok(()) => {
                let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                for (tp, o) in upto {
                    let e = l.confirmed.entry(tp).or_insert(0);
                    *e = (*e).max(o);
                }
            }
            Err(e) => {
                eprintln!("commit: {e}");
                ledger.lock().unwrap_or_else(|p| p.into_inner()).commit_failures += 1;
            }
        }
    }
    let _ = c.close().await;
}
