//! The directory checker ([`sluice_checker::dir_model`], re-exported here) and the workload
//! that records its histories against a running keeper.

pub use sluice_checker::dir_model::*;

/// The directory workload: clients creating and deleting their own ephemeral, sequential
/// children and `multi` pairs, setting the shared child `p`, and reading (linearizably:
/// `sync` first) children and data, all in the directory [`DirWorkload::DIR`], until told
/// to stop or `max_ops` each. A client whose session expires records the expiry (its
/// ephemerals go) and opens a new session. After a write whose answer was lost a client
/// closes its session and opens a new one (the write then took effect before the close or
/// never), unless [`DirWorkload::keep_session_after_loss`] (its session's next op bounds it).
#[derive(Debug, Clone)]
pub struct DirWorkload {
    /// What every client did.
    pub history: std::sync::Arc<std::sync::Mutex<Vec<DirEvent>>>,
    /// Set to end the clients' loops.
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Operations answered so far.
    pub done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Sessions that expired.
    pub expired: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Sessions closed after a write whose outcome was lost.
    pub closed_after_loss: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Go on with the session after a lost write instead of closing it: the write is then
    /// bounded only by the session's next op (FIFO order), which this checks. Clients of one
    /// workload can differ: each runs on its own clone.
    pub keep_session_after_loss: bool,
    epoch: std::time::Instant,
}

impl Default for DirWorkload {
    fn default() -> Self {
        DirWorkload {
            history: Default::default(),
            stop: Default::default(),
            done: Default::default(),
            expired: Default::default(),
            closed_after_loss: Default::default(),
            keep_session_after_loss: false,
            epoch: std::time::Instant::now(),
        }
    }
}

/// The answer a client got, as the model says it: `None` when its effect is unknown
/// (connection loss, no quorum, a timeout).
fn answer_of<T>(
    r: Result<T, sluice_client::keeper::KeeperClientError>,
    ok: impl FnOnce(T) -> DirOut,
) -> Result<Option<DirOut>, ()> {
    use sluice_client::keeper::KeeperClientError;
    use sluice_keeper_core::KeeperError;
    let code = |e: &KeeperError| match e {
        KeeperError::NoNode { .. } => Some(DirError::NoNode),
        KeeperError::NodeExists { .. } => Some(DirError::NodeExists),
        KeeperError::BadVersion { .. } => Some(DirError::BadVersion),
        _ => None,
    };
    match r {
        Ok(v) => Ok(Some(ok(v))),
        // Refused for an ended session, or through a member the session had left: it did
        // nothing, and is left out.
        Err(KeeperClientError::Keeper(
            KeeperError::SessionExpired { .. } | KeeperError::SessionMoved { .. },
        )) => Err(()),
        Err(KeeperClientError::Keeper(KeeperError::MultiFailed { error, .. })) => {
            Ok(code(&error).map(DirOut::Failed))
        }
        Err(KeeperClientError::Keeper(e)) => Ok(code(&e).map(DirOut::Failed)),
        Err(_) => Ok(None),
    }
}

impl DirWorkload {
    /// The directory the clients work in; [`DirWorkload::initial`] is its state at the start.
    pub const DIR: &'static str = "/d";

    /// Nanoseconds since the workload began: the history's clock.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Creates the directory and its shared child `p` (data `0`); the state to check from.
    pub async fn prepare(c: &sluice_client::keeper::KeeperClient) -> Dir {
        use sluice_keeper_core::CreateMode;
        c.create(Self::DIR, b"", CreateMode::Persistent).await.expect("create the directory");
        c.create(&format!("{}/p", Self::DIR), b"0", CreateMode::Persistent).await.expect("create p");
        let mut dir = Dir { cversion: 1, ..Dir::default() };
        dir.children.insert("p".into(), Child { value: b"0".to_vec(), version: 0, owner: None });
        dir
    }

    /// Operations answered so far.
    pub fn completed(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the clients, waits for them, and returns the history.
    pub async fn finish(&self, workers: Vec<tokio::task::JoinHandle<()>>) -> Vec<DirEvent> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in workers {
            w.await.expect("workload client");
        }
        self.history.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Client `client_no`'s loop on sessions `connect` opens, its choices drawn from `seed`,
    /// for at most `max_ops` operations, `pace` apart (so that a bounded history spans a
    /// run's faults). Then it closes its session, or with `abandon` drops it unclosed, so
    /// that the session expires (with its ephemeral) at a time the history does not know.
    pub async fn run_client<F, Fut>(
        self,
        connect: F,
        client_no: usize,
        seed: u64,
        (max_ops, pace): (usize, std::time::Duration),
        abandon: bool,
    ) where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = sluice_client::keeper::KeeperClient>,
    {
        use sluice_keeper_core::{CreateMode, Op, OpResult};
        use std::sync::atomic::Ordering;
        let path = |name: &str| format!("{}/{name}", Self::DIR);
        let name_of = |p: &str| p.rsplit('/').next().unwrap_or_default().to_string();
        let mut rng =
            crate::nemesis::Rng::new(seed ^ (client_no as u64 + 7).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut c = connect().await;
        // The invocation time of the session's last answered operation: it expired after.
        let mut alive_at = self.now_ns();
        let mut seqs: Vec<String> = Vec::new();
        let (mine, q) = (format!("e{client_no}"), format!("q{client_no}"));
        let mut n = 0usize;
        while !self.stop.load(Ordering::Relaxed) && n < max_ops {
            if c.is_expired() {
                self.expired.fetch_add(1, Ordering::Relaxed);
                let ended = DirEvent {
                    client: client_no,
                    op: DirOp::Expire { owner: c.session_id() },
                    session: None,
                    invoked_ns: alive_at,
                    answer: Some((self.now_ns(), DirOut::Expired)),
                };
                self.history.lock().unwrap_or_else(|p| p.into_inner()).push(ended);
                c = connect().await;
                alive_at = self.now_ns();
            }
            n += 1;
            if !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            let value = format!("{client_no}-{n}").into_bytes();
            let session = Some(c.session_id());
            let invoked = self.now_ns();
            let (op, answer) = match rng.range(0, 9) {
                0 => {
                    let owner = c.session_id();
                    let r = c.create(&path(&mine), &value, CreateMode::Ephemeral).await;
                    let op = DirOp::Create { name: mine.clone(), value, owner: Some(owner) };
                    (op, answer_of(r, |p| DirOut::Created(name_of(&p))))
                }
                1 => {
                    let r = c.delete(&path(&mine), -1).await;
                    (DirOp::Delete { name: mine.clone(), version: -1 }, answer_of(r, |()| DirOut::Deleted))
                }
                2 => {
                    let r = c.create(&path("s-"), &value, CreateMode::PersistentSequential).await;
                    if let Ok(p) = &r {
                        seqs.push(name_of(p));
                    }
                    let op = DirOp::CreateSeq { prefix: "s-".into(), value };
                    (op, answer_of(r, |p| DirOut::Created(name_of(&p))))
                }
                3 if !seqs.is_empty() => {
                    let name = seqs.swap_remove(rng.range(0, seqs.len() as u64) as usize);
                    let r = c.delete(&path(&name), -1).await;
                    (DirOp::Delete { name, version: -1 }, answer_of(r, |()| DirOut::Deleted))
                }
                4 => {
                    let r = c.set_data(&path("p"), &value, -1).await;
                    let op = DirOp::Set { name: "p".into(), value, version: -1 };
                    (op, answer_of(r, |s| DirOut::Set(s.version)))
                }
                5 => {
                    // Create or delete q with a write of p, atomically.
                    let set = Op::SetData { path: path("p"), data: value.clone(), version: -1 };
                    let (first, model) = if rng.range(0, 2) == 0 {
                        let op =
                            Op::Create { path: path(&q), data: value.clone(), mode: CreateMode::Persistent };
                        (op, DirOp::Create { name: q.clone(), value: value.clone(), owner: None })
                    } else {
                        (
                            Op::Delete { path: path(&q), version: -1 },
                            DirOp::Delete { name: q.clone(), version: -1 },
                        )
                    };
                    let r = c.multi(vec![first, set]).await;
                    let op = DirOp::Multi(vec![model, DirOp::Set { name: "p".into(), value, version: -1 }]);
                    let answer = answer_of(r, |results| {
                        DirOut::Multi(
                            results
                                .into_iter()
                                .map(|r| match r {
                                    OpResult::Created { path, .. } => DirOut::Created(name_of(&path)),
                                    OpResult::Deleted => DirOut::Deleted,
                                    OpResult::DataSet { stat } => DirOut::Set(stat.version),
                                    _ => DirOut::Checked,
                                })
                                .collect(),
                        )
                    });
                    (op, answer)
                }
                k => {
                    // A linearizable read: `sync`, then the read; invoked when the `sync` was
                    // (a write answered meanwhile may come after the `sync` in the log).
                    if c.sync(Self::DIR).await.is_err() {
                        continue;
                    }
                    let (op, answer) = if k == 8 {
                        let r = c.children(Self::DIR, false).await;
                        (
                            DirOp::Children,
                            answer_of(r, |mut l| {
                                l.sort();
                                DirOut::Children(l)
                            }),
                        )
                    } else {
                        let name = if k == 6 { "p".to_string() } else { format!("e{}", rng.range(0, 4)) };
                        let r = c.get_data(&path(&name), false).await;
                        let answer = match answer_of(r, |(d, s)| DirOut::Got(Some((d, s.version)))) {
                            Ok(Some(DirOut::Failed(DirError::NoNode))) => Ok(Some(DirOut::Got(None))),
                            other => other,
                        };
                        (DirOp::Get { name }, answer)
                    };
                    // A read with no answer says nothing.
                    if let Ok(Some(out)) = answer {
                        self.push(client_no, op, session, invoked, Some(out));
                        self.done.fetch_add(1, Ordering::Relaxed);
                        alive_at = invoked;
                    }
                    continue;
                }
            };
            match answer {
                Ok(Some(out)) => {
                    self.push(client_no, op, session, invoked, Some(out));
                    self.done.fetch_add(1, Ordering::Relaxed);
                    alive_at = invoked;
                }
                Ok(None) => {
                    // The write may take effect at any later time, unless its session ends
                    // first: the keeper refuses a write of an ended session. So the session
                    // is closed, which bounds the write for the checker (left pending to the
                    // end of the run, each such write doubles what the checker explores).
                    self.push(client_no, op, session, invoked, None);
                    if self.keep_session_after_loss {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    }
                    self.closed_after_loss.fetch_add(1, Ordering::Relaxed);
                    self.end_session(&c, client_no, alive_at).await;
                    c = connect().await;
                    alive_at = self.now_ns();
                }
                Err(()) => {}
            }
        }
        if abandon && !c.is_expired() {
            // Dropped unclosed, the session expires at a time the history does not know.
            self.push(client_no, DirOp::Expire { owner: c.session_id() }, None, alive_at, None);
        } else {
            self.end_session(&c, client_no, alive_at).await;
        }
    }

    /// Closes `c`'s session and records its end, invoked at `alive_at` (the invocation of its
    /// last answered operation: it may have expired unnoticed since). A close that loses its
    /// connection is tried again until the session is confirmed closed or expired; after
    /// 30 s of failures, the end is recorded as unknown.
    async fn end_session(&self, c: &sluice_client::keeper::KeeperClient, client_no: usize, alive_at: u64) {
        use sluice_client::keeper::KeeperClientError;
        use sluice_keeper_core::KeeperError;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let owner = c.session_id();
        let ended = loop {
            let expired = c.is_expired()
                || match c.close().await {
                    Ok(()) => break true,
                    Err(e) => matches!(e, KeeperClientError::Keeper(KeeperError::SessionExpired { .. })),
                };
            if expired {
                self.expired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        self.push(client_no, DirOp::Expire { owner }, None, alive_at, ended.then_some(DirOut::Expired));
    }

    fn push(&self, client: usize, op: DirOp, session: Option<u64>, invoked_ns: u64, out: Option<DirOut>) {
        let answer = out.map(|o| (self.now_ns(), o));
        let event = DirEvent { client, op, session, invoked_ns, answer };
        self.history.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}
