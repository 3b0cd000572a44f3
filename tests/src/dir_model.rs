//! A linearizability checker for a *directory* of znodes, the model the register checker
//! ([`crate::linearizability`]) leaves out: creates (plain, sequential, ephemeral) and
//! deletes, the parent's children list and its `cversion` (which numbers sequential nodes),
//! `multi`, and session expiry deleting the session's ephemerals.
//!
//! **Model.** The state is one directory: its children (data, version, the session owning
//! an ephemeral) and its `cversion`, which every child create and delete bumps, as
//! ZooKeeper's. A sequential create takes the name `prefix` + the `cversion` before the
//! create, in ten digits. A `multi` applies all its ops or none, answering the first
//! failure's code. [`DirOp::Expire`] is a session's end: its ephemerals go (one delete, one
//! `cversion` bump each), and no create for it succeeds after. An operation whose outcome is
//! unknown may or may not have taken effect, at any instant after its invocation.
//!
//! **Algorithm.** Wing & Gong's search with Lowe's refinements, as the register checker:
//! calls and returns sorted by time in a linked list; an operation is linearized when the
//! model gives its recorded answer, the search backtracks at the return of one it has not
//! linearized, and every (linearized set, state) configuration is explored once. The whole
//! directory is one state (an op may touch several children at once), so histories should
//! stay in the hundreds of operations; [`check`] gives up past [`MAX_STATES`]
//! configurations.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Most configurations [`check`] explores before answering [`DirCheck::Inconclusive`].
pub const MAX_STATES: usize = 2_000_000;

/// An operation on the directory; names are children's names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DirOp {
    /// `create` of a child; `owner`: an ephemeral of that session.
    Create {
        /// The child's name.
        name: String,
        /// Its data.
        value: Vec<u8>,
        /// The session owning it, if ephemeral.
        owner: Option<u64>,
    },
    /// A sequential persistent create: the name is `prefix` + the directory's `cversion`.
    CreateSeq {
        /// The name before its ten digits.
        prefix: String,
        /// Its data.
        value: Vec<u8>,
    },
    /// `delete` at `version` (-1: any).
    Delete {
        /// The child.
        name: String,
        /// The version it must have.
        version: i32,
    },
    /// `setData` at `version` (-1: any).
    Set {
        /// The child.
        name: String,
        /// The new data.
        value: Vec<u8>,
        /// The version it must have.
        version: i32,
    },
    /// `check` at `version` (in a `multi`).
    Check {
        /// The child.
        name: String,
        /// The version it must have.
        version: i32,
    },
    /// `getData`.
    Get {
        /// The child.
        name: String,
    },
    /// `getChildren` of the directory.
    Children,
    /// Ops applied together or not at all.
    Multi(Vec<DirOp>),
    /// The session ended (expired or closed): its ephemerals are deleted.
    Expire {
        /// The session.
        owner: u64,
    },
}

impl DirOp {
    /// Whether it only reads (changes nothing).
    pub fn is_read(&self) -> bool {
        match self {
            DirOp::Get { .. } | DirOp::Children | DirOp::Check { .. } => true,
            DirOp::Multi(ops) => ops.iter().all(DirOp::is_read),
            _ => false,
        }
    }
}

/// A failed operation's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirError {
    /// The node is not there.
    NoNode,
    /// The node is there already.
    NodeExists,
    /// Its version differs.
    BadVersion,
    /// The creating session has ended.
    SessionExpired,
}

/// What an operation answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DirOut {
    /// Created, with this name.
    Created(String),
    /// Deleted.
    Deleted,
    /// Data set; the node's new version.
    Set(i32),
    /// Check passed.
    Checked,
    /// `getData`: data and version, or `None` for no node.
    Got(Option<(Vec<u8>, i32)>),
    /// The children, sorted.
    Children(Vec<String>),
    /// Every op of a multi succeeded, with these answers.
    Multi(Vec<DirOut>),
    /// The session's ephemerals are gone.
    Expired,
    /// The operation failed with this code (a multi: its first failure's).
    Failed(DirError),
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEvent {
    /// Who invoked it (informational).
    pub client: usize,
    /// What.
    pub op: DirOp,
    /// When it was invoked (ns on a clock shared by the clients).
    pub invoked_ns: u64,
    /// When it was answered and how; `None`: unknown (it may or may not have happened).
    pub answer: Option<(u64, DirOut)>,
}

/// A child of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Child {
    /// Its data.
    pub value: Vec<u8>,
    /// Its data version.
    pub version: i32,
    /// The session owning it, if ephemeral.
    pub owner: Option<u64>,
}

/// The directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Dir {
    /// Its children by name.
    pub children: BTreeMap<String, Child>,
    /// Its `cversion`.
    pub cversion: i32,
    /// Sessions that have ended.
    pub ended: BTreeSet<u64>,
}

impl Dir {
    /// Applies `op`: its answer, and the state after (unchanged when it failed).
    pub fn apply(&self, op: &DirOp) -> (DirOut, Dir) {
        let mut next = self.clone();
        match next.step(op) {
            Ok(out) => (out, next),
            Err(e) => (DirOut::Failed(e), self.clone()),
        }
    }

    fn step(&mut self, op: &DirOp) -> Result<DirOut, DirError> {
        let version_ok = |have: i32, want: i32| want == -1 || have == want;
        match op {
            DirOp::Create { name, value, owner } => {
                if owner.is_some_and(|o| self.ended.contains(&o)) {
                    return Err(DirError::SessionExpired);
                }
                if self.children.contains_key(name) {
                    return Err(DirError::NodeExists);
                }
                self.children.insert(name.clone(), Child { value: value.clone(), version: 0, owner: *owner });
                self.cversion += 1;
                Ok(DirOut::Created(name.clone()))
            }
            DirOp::CreateSeq { prefix, value } => {
                let name = format!("{prefix}{:010}", self.cversion);
                if self.children.contains_key(&name) {
                    return Err(DirError::NodeExists);
                }
                self.children.insert(name.clone(), Child { value: value.clone(), version: 0, owner: None });
                self.cversion += 1;
                Ok(DirOut::Created(name))
            }
            DirOp::Delete { name, version } => {
                let child = self.children.get(name).ok_or(DirError::NoNode)?;
                if !version_ok(child.version, *version) {
                    return Err(DirError::BadVersion);
                }
                self.children.remove(name);
                self.cversion += 1;
                Ok(DirOut::Deleted)
            }
            DirOp::Set { name, value, version } => {
                let child = self.children.get_mut(name).ok_or(DirError::NoNode)?;
                if !version_ok(child.version, *version) {
                    return Err(DirError::BadVersion);
                }
                child.value = value.clone();
                child.version += 1;
                Ok(DirOut::Set(child.version))
            }
            DirOp::Check { name, version } => {
                let child = self.children.get(name).ok_or(DirError::NoNode)?;
                if !version_ok(child.version, *version) {
                    return Err(DirError::BadVersion);
                }
                Ok(DirOut::Checked)
            }
            DirOp::Get { name } => {
                Ok(DirOut::Got(self.children.get(name).map(|c| (c.value.clone(), c.version))))
            }
            DirOp::Children => Ok(DirOut::Children(self.children.keys().cloned().collect())),
            DirOp::Multi(ops) => {
                // `self` is a copy the caller drops on failure: all or nothing.
                let mut outs = Vec::with_capacity(ops.len());
                for op in ops {
                    outs.push(self.step(op)?);
                }
                Ok(DirOut::Multi(outs))
            }
            DirOp::Expire { owner } => {
                let before = self.children.len();
                self.children.retain(|_, c| c.owner != Some(*owner));
                self.cversion += (before - self.children.len()) as i32;
                self.ended.insert(*owner);
                Ok(DirOut::Expired)
            }
        }
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirCheck {
    /// The history is linearizable.
    Linearizable,
    /// It is not: no order of its operations explains every answer.
    Violation {
        /// The operation at whose answer the longest explained prefix of the history ends:
        /// no order of what came before explains it.
        stuck: DirEvent,
    },
    /// The search gave up after [`MAX_STATES`] configurations.
    Inconclusive,
}

/// Checks `history` against the model from `initial`.
pub fn check(history: &[DirEvent], initial: &Dir) -> DirCheck {
    // A read whose answer never came constrains nothing and changes nothing: it is left out
    // (kept in, each would double the configurations the search explores).
    let kept: Vec<DirEvent> =
        history.iter().filter(|e| e.answer.is_some() || !e.op.is_read()).cloned().collect();
    let history = &kept[..];
    // Entries: (time, is_return, op); calls before returns at the same instant.
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2);
    for (i, e) in history.iter().enumerate() {
        entries.push((e.invoked_ns, false, i));
        if let Some((at, _)) = &e.answer {
            entries.push(((*at).max(e.invoked_ns), true, i));
        }
    }
    entries.sort_unstable();
    // A doubly linked list over the entries, with a head sentinel at index `n`.
    let n = entries.len();
    let mut next: Vec<usize> = (1..=n).chain([if n == 0 { n } else { 0 }]).collect();
    let mut prev: Vec<usize> = std::iter::once(n).chain(0..n).collect();
    prev[n] = if n == 0 { n } else { n - 1 };
    let mut return_of = vec![usize::MAX; history.len()];
    for (at, &(_, is_return, op)) in entries.iter().enumerate() {
        if is_return {
            return_of[op] = at;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, at: usize| {
        let (p, q) = (prev[at], next[at]);
        next[p] = q;
        prev[q] = p;
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, at: usize| {
        let (p, q) = (prev[at], next[at]);
        next[p] = at;
        prev[q] = at;
    };
    let words = history.len().div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Dir)> = HashSet::new();
    let mut state = initial.clone();
    // (call entry, state before) of each linearized op, innermost last.
    let mut stack: Vec<(usize, Dir)> = Vec::new();
    let mut at = next[n];
    let mut deepest: Option<(usize, usize)> = None;
    while at != n {
        let (_, is_return, op) = entries[at];
        if !is_return {
            let event = &history[op];
            let (out, after) = state.apply(&event.op);
            let allowed = match &event.answer {
                Some((_, recorded)) => *recorded == out,
                None => true,
            };
            let mut tried = false;
            if allowed {
                linearized[op / 64] |= 1 << (op % 64);
                if seen.insert((linearized.clone(), after.clone())) {
                    tried = true;
                    if seen.len() > MAX_STATES {
                        return DirCheck::Inconclusive;
                    }
                    stack.push((at, std::mem::replace(&mut state, after)));
                    unlink(&mut next, &mut prev, at);
                    if return_of[op] != usize::MAX {
                        unlink(&mut next, &mut prev, return_of[op]);
                    }
                    at = next[n];
                } else {
                    linearized[op / 64] &= !(1 << (op % 64));
                }
            }
            if !tried {
                at = next[at];
            }
        } else {
            // The return of an op not linearized yet: undo the last choice. The deepest such
            // return is the one the report names.
            if deepest.is_none_or(|(depth, _)| stack.len() > depth) {
                deepest = Some((stack.len(), op));
            }
            let Some((call, before)) = stack.pop() else {
                let stuck = deepest.map_or(op, |(_, op)| op);
                return DirCheck::Violation { stuck: history[stuck].clone() };
            };
            let (_, _, undone) = entries[call];
            linearized[undone / 64] &= !(1 << (undone % 64));
            if return_of[undone] != usize::MAX {
                relink(&mut next, &mut prev, return_of[undone]);
            }
            relink(&mut next, &mut prev, call);
            state = before;
            at = next[call];
        }
    }
    DirCheck::Linearizable
}

/// The operations of `history` invoked before `until_ns`, by invocation time: what led up
/// to a violation, for its report.
pub fn before(history: &[DirEvent], until_ns: u64) -> String {
    let mut events: Vec<&DirEvent> = history.iter().filter(|e| e.invoked_ns <= until_ns).collect();
    events.sort_by_key(|e| e.invoked_ns);
    events
        .iter()
        .map(|e| {
            let answer = match &e.answer {
                Some((at, out)) => format!("{:.3} ms: {out:?}", *at as f64 / 1e6),
                None => "unknown".into(),
            };
            format!("  {:.3} ms client {}: {:?} -> {answer}\n", e.invoked_ns as f64 / 1e6, e.client, e.op)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(client: usize, op: DirOp, invoked: u64, answer: Option<(u64, DirOut)>) -> DirEvent {
        DirEvent { client, op, invoked_ns: invoked, answer }
    }

    fn create(name: &str, owner: Option<u64>) -> DirOp {
        DirOp::Create { name: name.into(), value: b"v".to_vec(), owner }
    }

    fn get(name: &str) -> DirOp {
        DirOp::Get { name: name.into() }
    }

    fn seq() -> DirOp {
        DirOp::CreateSeq { prefix: "s-".into(), value: b"v".to_vec() }
    }

    #[test]
    fn the_model_numbers_sequential_children_by_cversion_and_applies_a_multi_whole() {
        let d = Dir::default();
        let (out, d) = d.apply(&seq());
        assert_eq!(out, DirOut::Created("s-0000000000".into()));
        let (_, d) = d.apply(&DirOp::Delete { name: "s-0000000000".into(), version: -1 });
        let (out, d) = d.apply(&seq());
        assert_eq!(out, DirOut::Created("s-0000000002".into()), "a delete bumps the cversion too");
        let multi = DirOp::Multi(vec![create("a", None), DirOp::Check { name: "zzz".into(), version: 0 }]);
        let (out, after) = d.apply(&multi);
        assert_eq!(out, DirOut::Failed(DirError::NoNode));
        assert_eq!(after, d, "a failed multi changes nothing");
        let (_, d) = d.apply(&create("e", Some(7)));
        let (_, d) = d.apply(&DirOp::Expire { owner: 7 });
        assert_eq!(d.apply(&get("e")).0, DirOut::Got(None), "an ended session's ephemeral is gone");
        assert_eq!(d.apply(&create("e", Some(7))).0, DirOut::Failed(DirError::SessionExpired));
    }

    #[test]
    fn reads_that_were_never_answered_cost_the_search_nothing() {
        // 40 reads without an answer across a history: kept in, they would multiply the
        // configurations past the search's budget (2^40).
        let mut h = vec![ev(0, create("a", None), 0, Some((1000, DirOut::Created("a".into()))))];
        h.extend(
            (0..40)
                .map(|i| ev(1 + i, if i % 2 == 0 { get("a") } else { DirOp::Children }, 1 + i as u64, None)),
        );
        h.push(ev(99, get("a"), 2000, Some((2001, DirOut::Got(Some((b"v".to_vec(), 0)))))));
        assert_eq!(check(&h, &Dir::default()), DirCheck::Linearizable);
        // A violation makes the search try every placement before it answers: with the
        // unanswered reads kept that is every subset of them, and it would give up.
        let mut bad = h.clone();
        bad.push(ev(97, get("a"), 2500, Some((2501, DirOut::Got(None)))));
        assert!(matches!(check(&bad, &Dir::default()), DirCheck::Violation { .. }));
        // A write without an answer still counts: it may have happened.
        h.push(ev(50, DirOp::Delete { name: "a".into(), version: -1 }, 1500, None));
        h.push(ev(98, get("a"), 3000, Some((3001, DirOut::Got(None)))));
        assert_eq!(check(&h, &Dir::default()), DirCheck::Linearizable);
    }

    #[test]
    fn concurrent_sequential_creates_take_numbers_in_some_order() {
        let h = vec![
            ev(0, seq(), 0, Some((10, DirOut::Created("s-0000000001".into())))),
            ev(1, seq(), 1, Some((9, DirOut::Created("s-0000000000".into())))),
        ];
        assert_eq!(check(&h, &Dir::default()), DirCheck::Linearizable);
        // One after the other in real time: the later must not get the smaller number.
        let h = vec![
            ev(0, seq(), 0, Some((5, DirOut::Created("s-0000000001".into())))),
            ev(1, seq(), 6, Some((9, DirOut::Created("s-0000000000".into())))),
        ];
        assert!(matches!(check(&h, &Dir::default()), DirCheck::Violation { .. }));
    }

    #[test]
    fn an_ephemeral_that_came_back_after_its_session_ended_is_caught() {
        let h = vec![
            ev(0, create("e", Some(3)), 0, Some((1, DirOut::Created("e".into())))),
            ev(9, DirOp::Expire { owner: 3 }, 2, None),
            ev(1, get("e"), 3, Some((4, DirOut::Got(None)))),
            ev(2, get("e"), 5, Some((6, DirOut::Got(Some((b"v".to_vec(), 0)))))),
        ];
        assert!(matches!(check(&h, &Dir::default()), DirCheck::Violation { .. }));
        // Without the later read, the expiry explains the first.
        assert_eq!(check(&h[..3], &Dir::default()), DirCheck::Linearizable);
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let h = vec![
            ev(0, create("a", None), 0, None),
            ev(1, get("a"), 1, Some((2, DirOut::Got(None)))),
            ev(1, get("a"), 3, Some((4, DirOut::Got(Some((b"v".to_vec(), 0)))))),
            ev(2, DirOp::Children, 5, Some((6, DirOut::Children(vec!["a".into()])))),
        ];
        assert_eq!(check(&h, &Dir::default()), DirCheck::Linearizable);
        let mut gone = h.clone();
        gone.push(ev(2, get("a"), 7, Some((8, DirOut::Got(None)))));
        assert!(matches!(check(&gone, &Dir::default()), DirCheck::Violation { .. }));
    }

    #[test]
    fn a_multi_seen_half_applied_is_caught() {
        let multi = DirOp::Multi(vec![
            create("q", None),
            DirOp::Set { name: "p".into(), value: b"m".to_vec(), version: -1 },
        ]);
        let mut start = Dir::default();
        start.children.insert("p".into(), Child { value: b"0".to_vec(), version: 0, owner: None });
        let ok = DirOut::Multi(vec![DirOut::Created("q".into()), DirOut::Set(1)]);
        let h = vec![
            ev(0, multi.clone(), 0, Some((10, ok.clone()))),
            ev(1, DirOp::Children, 1, Some((2, DirOut::Children(vec!["p".into(), "q".into()])))),
            ev(1, get("p"), 3, Some((4, DirOut::Got(Some((b"0".to_vec(), 0)))))),
        ];
        assert!(matches!(check(&h, &start), DirCheck::Violation { .. }), "q without p's write");
        let h = vec![
            ev(0, multi, 0, Some((10, ok))),
            ev(1, DirOp::Children, 1, Some((2, DirOut::Children(vec!["p".into(), "q".into()])))),
            ev(1, get("p"), 3, Some((4, DirOut::Got(Some((b"m".to_vec(), 1)))))),
        ];
        assert_eq!(check(&h, &start), DirCheck::Linearizable);
    }
}

/// The directory workload: clients creating and deleting their own ephemeral, sequential
/// children and `multi` pairs, setting the shared child `p`, and reading (linearizably:
/// `sync` first) children and data, all in the directory [`DirWorkload::DIR`], until told
/// to stop or `max_ops` each. A client whose session expires records the expiry (its
/// ephemerals go) and opens a new session.
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
    epoch: std::time::Instant,
}

impl Default for DirWorkload {
    fn default() -> Self {
        DirWorkload {
            history: Default::default(),
            stop: Default::default(),
            done: Default::default(),
            expired: Default::default(),
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
        // Refused for an ended session: it did nothing, and is left out.
        Err(KeeperClientError::Keeper(KeeperError::SessionExpired { .. })) => Err(()),
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
                        self.push(client_no, op, invoked, Some(out));
                        self.done.fetch_add(1, Ordering::Relaxed);
                        alive_at = invoked;
                    }
                    continue;
                }
            };
            match answer {
                Ok(Some(out)) => {
                    self.push(client_no, op, invoked, Some(out));
                    self.done.fetch_add(1, Ordering::Relaxed);
                    alive_at = invoked;
                }
                Ok(None) => {
                    self.push(client_no, op, invoked, None);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(()) => {}
            }
        }
        // The session's end. It may have expired unnoticed already, at any time after the
        // last answer: so every end below is invoked then, not now.
        let owner = c.session_id();
        if c.is_expired() {
            self.expired.fetch_add(1, Ordering::Relaxed);
            self.push(client_no, DirOp::Expire { owner }, alive_at, Some(DirOut::Expired));
        } else if abandon {
            self.push(client_no, DirOp::Expire { owner }, alive_at, None);
        } else {
            let closed = c.close().await.is_ok().then_some(DirOut::Expired);
            self.push(client_no, DirOp::Expire { owner }, alive_at, closed);
        }
    }

    fn push(&self, client: usize, op: DirOp, invoked_ns: u64, out: Option<DirOut>) {
        let answer = out.map(|o| (self.now_ns(), o));
        let event = DirEvent { client, op, invoked_ns, answer };
        self.history.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}
