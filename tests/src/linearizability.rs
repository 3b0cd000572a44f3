//! The register checker ([`sluice_checker::linearizability`], re-exported here) and the
//! workload that records its histories against a running keeper.

pub use sluice_checker::linearizability::*;

use std::collections::{BTreeMap, HashMap};

/// The register workload: clients reading (linearizably: `sync`, then `getData`), writing
/// and compare-and-setting a few keys at random until told to stop, every operation recorded
/// in one [`History`]. The keys must exist before it starts.
#[derive(Debug, Clone)]
pub struct Workload {
    /// What every client did.
    pub history: std::sync::Arc<std::sync::Mutex<History>>,
    /// Set to end the clients' loops.
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Operations answered so far (not failed), by all clients.
    pub done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Sessions that expired (each client then opens a new one).
    pub expired: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The errors operations failed with, by message (up to its first digit), and how often.
    pub errors: std::sync::Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    epoch: std::time::Instant,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            history: Default::default(),
            stop: Default::default(),
            done: Default::default(),
            expired: Default::default(),
            errors: Default::default(),
            epoch: std::time::Instant::now(),
        }
    }
}

impl Workload {
    /// Nanoseconds since the workload began: the history's clock.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Stops the clients and waits for `workers` (their tasks); returns the history, the
    /// state every one of `keys` started in (`initial`, version 0) for [`check`], and how
    /// many operations have an unknown outcome.
    pub async fn finish(
        &self,
        workers: Vec<tokio::task::JoinHandle<()>>,
        keys: &[&str],
        initial: &[u8],
    ) -> (Vec<Event>, HashMap<String, NodeState>, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in workers {
            w.await.expect("workload client");
        }
        let events = self.history.lock().unwrap_or_else(|p| p.into_inner()).events().to_vec();
        let start: HashMap<String, NodeState> =
            keys.iter().map(|k| (k.to_string(), Some((initial.to_vec(), 0)))).collect();
        let unknown = events.iter().filter(|e| matches!(e.outcome, Outcome::Unknown)).count();
        (events, start, unknown)
    }

    fn note_error(&self, e: &str) {
        let kind: String = e.chars().take_while(|c| !c.is_ascii_digit()).take(80).collect();
        *self.errors.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += 1;
    }

    /// Operations answered so far.
    pub fn completed(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Client `client_no`'s loop over `keys` on a session `connect` opens, its choices drawn
    /// from `seed`; returns once [`stop`](Self::stop) is set. An operation that fails in a
    /// way that leaves its effect unknown (connection loss, no quorum) is recorded as
    /// [`Outcome::Unknown`], and the client waits a little before the next. When its session
    /// expires it opens a new one, as an application would.
    pub async fn run_client<F, Fut>(
        self,
        connect: F,
        client_no: usize,
        keys: &'static [&'static str],
        seed: u64,
    ) where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = sluice_client::keeper::KeeperClient>,
    {
        use sluice_client::keeper::KeeperClientError;
        use sluice_keeper_core::KeeperError;
        use std::sync::atomic::Ordering;
        let mut c = connect().await;
        let mut rng =
            crate::nemesis::Rng::new(seed ^ (client_no as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut versions: HashMap<&str, i32> = HashMap::new();
        let mut n = 0u64;
        let record = |op: Op| {
            self.history.lock().unwrap_or_else(|p| p.into_inner()).invoke(client_no, op, self.now_ns())
        };
        let finish = |id: OpId, outcome: Outcome| {
            self.history.lock().unwrap_or_else(|p| p.into_inner()).complete(id, self.now_ns(), outcome)
        };
        while !self.stop.load(Ordering::Relaxed) {
            if c.is_expired() {
                self.expired.fetch_add(1, Ordering::Relaxed);
                c = connect().await;
            }
            let key = *rng.pick(keys);
            n += 1;
            let value = format!("{client_no}-{n}").into_bytes();
            let answered = match rng.range(0, 3) {
                0 => {
                    let id = record(Op::Read { key: key.into() });
                    let read = match c.sync(key).await {
                        Ok(()) => c.get_data(key, false).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = &read {
                        self.note_error(e);
                    }
                    let outcome = match read {
                        Ok((data, stat)) => {
                            versions.insert(key, stat.version);
                            Outcome::Ok(Output::ReadOk(Some((data, stat.version))))
                        }
                        Err(_) => Outcome::Unknown,
                    };
                    finish(id, outcome.clone());
                    outcome
                }
                op => {
                    let expected = if op == 1 {
                        -1
                    } else {
                        versions.get(key).copied().unwrap_or(0) + rng.range(0, 2) as i32
                    };
                    let id = if expected == -1 {
                        record(Op::Write { key: key.into(), value: value.clone() })
                    } else {
                        record(Op::Cas { key: key.into(), expected_version: expected, value: value.clone() })
                    };
                    let outcome = match c.set_data(key, &value, expected).await {
                        Ok(stat) => {
                            versions.insert(key, stat.version);
                            Outcome::Ok(Output::WriteOk { version: stat.version })
                        }
                        Err(KeeperClientError::Keeper(KeeperError::BadVersion { .. })) => {
                            Outcome::Ok(Output::BadVersion)
                        }
                        // Connection loss, no quorum: it may or may not have happened.
                        Err(e) => {
                            self.note_error(&e.to_string());
                            Outcome::Unknown
                        }
                    };
                    finish(id, outcome.clone());
                    outcome
                }
            };
            if matches!(answered, Outcome::Unknown) {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            } else {
                self.done.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
