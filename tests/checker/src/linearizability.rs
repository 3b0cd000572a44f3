//! A linearizability checker for histories recorded against the keeper.
//!
//! **Model.** Every key is one znode seen as a versioned register whose state is
//! `Option<(value, version)>` (`None`: the node does not exist; nothing creates or deletes nodes
//! during a run). [`Op::Read`] returns the state; [`Op::Write`] (unconditional `setData`) replaces
//! the value and bumps the version; [`Op::Cas`] (conditional `setData`) does the same only when
//! the version matches and answers `BadVersion` otherwise; both answer `NoNode` on a missing node.
//! An operation whose outcome is [`Outcome::Unknown`] may or may not have taken effect, at any
//! instant after its invocation.
//!
//! **Algorithm.** Keys are independent registers, so the history is split per key
//! (P-compositionality) and each sub-history is checked on its own with Wing & Gong's search as
//! refined by Lowe ("just-in-time linearization", as in Knossos and Porcupine): invocations and
//! completions sorted by time form a doubly linked list; the search linearizes a pending operation
//! when the model produces its recorded output, backtracks when it meets the completion of an
//! operation it has not linearized yet, and memoises every (set of linearized operations, model
//! state) configuration so that none is explored twice. Two sound reductions keep it fast: versions
//! never decrease, so a configuration whose version is already past the version some unlinearized
//! operation must have seen is dead; and an operation that does not change the state (a read, a
//! `BadVersion`) can be linearized as soon as it matches, without trying alternatives first. When a
//! key fails, a binary search over its completions finds the shortest prefix of its history that
//! cannot be linearized, and the [`Violation`] names the operation that prefix ends with.
//!
//! Record a history with [`History`] (or build [`Event`]s directly) and pass it to [`check`].
//! `sluice_tests::linearizability::Workload` is the clients that record one against a running
//! keeper.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// The state of one key: `None` when the node does not exist, else its data and version.
pub type NodeState = Option<(Vec<u8>, i32)>;

/// How many configurations [`check`] explores for one key before giving up with
/// [`CheckError::Inconclusive`] (each costs roughly 100 bytes of memory).
pub const DEFAULT_MAX_STATES: usize = 5_000_000;

/// At most this many configurations are explored to list the states in a [`Violation`].
const DIAGNOSTIC_MAX_STATES: usize = 200_000;

/// At most this many possible states are listed in a [`Violation`].
const MAX_REPORTED_STATES: usize = 16;

/// At most this many operations completed before the culprit are listed in a [`Violation`].
const MAX_PRECEDING: usize = 5;

/// At most this many concurrent operations are printed by [`Violation`]'s `Display`.
const MAX_PRINTED_CONCURRENT: usize = 20;

/// An operation a client invoked on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// `getData`: returns the value and version (or that the node does not exist).
    Read {
        /// The znode path.
        key: String,
    },
    /// Unconditional `setData` (version -1): the new version is the old one plus one.
    Write {
        /// The znode path.
        key: String,
        /// The data written.
        value: Vec<u8>,
    },
    /// Conditional `setData`: takes effect only when the node's version is `expected_version`.
    Cas {
        /// The znode path.
        key: String,
        /// The version the node must have for the write to happen.
        expected_version: i32,
        /// The data written.
        value: Vec<u8>,
    },
}

impl Op {
    /// The key (znode path) the operation is on.
    pub fn key(&self) -> &str {
        match self {
            Op::Read { key } | Op::Write { key, .. } | Op::Cas { key, .. } => key,
        }
    }
}

/// What a completed operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// A read's result: the value and version seen, or `None` when the node did not exist.
    ReadOk(NodeState),
    /// A write or CAS took effect; `version` is the node's new version.
    WriteOk {
        /// The version after the write.
        version: i32,
    },
    /// A CAS did not take effect because the node's version differed from the expected one.
    BadVersion,
    /// The node does not exist (for a read this is the same as `ReadOk(None)`).
    NoNode,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The client got this answer.
    Ok(Output),
    /// The client never learned the result (connection lost, timeout): the operation may or may
    /// not have taken effect, at any time after its invocation. Reads with this outcome are
    /// ignored.
    Unknown,
}

/// One operation of a history: who invoked what when, and how it ended.
///
/// Operations that certainly had no effect (the server refused them before proposing) should be
/// left out of the history altogether.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The client (session) that invoked it; informational only.
    pub client: usize,
    /// The operation.
    pub op: Op,
    /// When it was invoked, in nanoseconds on a clock shared by all clients.
    pub invoked_ns: u64,
    /// When its answer arrived; `None` when the outcome is [`Outcome::Unknown`] (for such an
    /// operation a completion time is ignored).
    pub completed_ns: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// A handle on an operation recorded by [`History::invoke`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(usize);

/// A history under construction: [`invoke`](Self::invoke) when a client sends a request,
/// [`complete`](Self::complete) when it learns the outcome. Operations never completed count
/// as [`Outcome::Unknown`].
#[derive(Debug, Clone, Default)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Records that `client` invoked `op` at `invoked_ns` (a timestamp on a clock shared by all
    /// clients, never going backwards).
    pub fn invoke(&mut self, client: usize, op: Op, invoked_ns: u64) -> OpId {
        self.events.push(Event { client, op, invoked_ns, completed_ns: None, outcome: Outcome::Unknown });
        OpId(self.events.len() - 1)
    }

    /// Records that operation `id` ended at `completed_ns` with `outcome` (an
    /// [`Outcome::Unknown`] keeps no completion time). Ids from another history are ignored.
    pub fn complete(&mut self, id: OpId, completed_ns: u64, outcome: Outcome) {
        if let Some(event) = self.events.get_mut(id.0) {
            event.completed_ns = match outcome {
                Outcome::Ok(_) => Some(completed_ns),
                Outcome::Unknown => None,
            };
            event.outcome = outcome;
        }
    }

    /// The operations recorded so far, in invocation order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The recorded operations.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// How many operations were recorded.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Why a history failed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// A key's history has no linearization.
    NotLinearizable(Box<Violation>),
    /// The search for one key explored more configurations than allowed, without an answer.
    Inconclusive {
        /// The key whose history was too hard.
        key: String,
        /// How many configurations were explored.
        states_explored: usize,
    },
    /// The history is malformed (a completed operation without completion time, a completion
    /// before the invocation, a key without initial state).
    InvalidHistory {
        /// What is wrong.
        reason: String,
    },
}

impl CheckError {
    /// The key concerned, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            CheckError::NotLinearizable(violation) => Some(&violation.key),
            CheckError::Inconclusive { key, .. } => Some(key),
            CheckError::InvalidHistory { .. } => None,
        }
    }

    /// The violation, when the history is not linearizable.
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            CheckError::NotLinearizable(violation) => Some(violation),
            _ => None,
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NotLinearizable(violation) => violation.fmt(f),
            CheckError::Inconclusive { key, states_explored } => write!(
                f,
                "key {key:?}: inconclusive: gave up after exploring {states_explored} configurations"
            ),
            CheckError::InvalidHistory { reason } => write!(f, "invalid history: {reason}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// A key whose history cannot be linearized, and the shortest failing prefix of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: String,
    /// The operation without a valid linearization point: the key's operations invoked before it
    /// completed cannot be linearized, while every shorter prefix ending at a completion can.
    pub op: Event,
    /// How many of the key's operations were invoked before `op` completed (the failing prefix;
    /// reads with unknown outcome are not counted).
    pub prefix_len: usize,
    /// Whether `op` is known to end the shortest failing prefix (false when that search gave up:
    /// an earlier operation may then be the real culprit).
    pub minimal: bool,
    /// States the register could be in when `op` completed, over all linearizations of the
    /// other operations of the prefix (`op` can match none of them); those needing the fewest
    /// operations with unknown outcome to take effect come first (at most 16).
    pub possible_states: Vec<NodeState>,
    /// The last few operations on the key that completed before `op` was invoked, oldest first.
    pub preceding: Vec<Event>,
    /// The operations on the key whose intervals overlap `op`'s (unknown ones never end), by
    /// invocation time.
    pub concurrent: Vec<Event>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {:?}: not linearizable: no valid linearization point for", self.key)?;
        writeln!(f, "    {}", self.op)?;
        if self.minimal {
            writeln!(
                f,
                "  the key's first {} operations (those invoked before it completed) have no linearization; \
                 every shorter prefix has one",
                self.prefix_len
            )?;
        } else {
            writeln!(
                f,
                "  the key's first {} operations have no linearization (the search for a shorter failing \
                 prefix gave up)",
                self.prefix_len
            )?;
        }
        write!(f, "  register states possible when it completed: ")?;
        if self.possible_states.is_empty() {
            writeln!(f, "(none found)")?;
        } else {
            for (i, state) in self.possible_states.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{}", StateDisplay(state))?;
            }
            writeln!(f)?;
        }
        writeln!(f, "  last operations completed before it was invoked:")?;
        if self.preceding.is_empty() {
            writeln!(f, "    (none)")?;
        }
        for event in &self.preceding {
            writeln!(f, "    {event}")?;
        }
        writeln!(f, "  operations concurrent with it:")?;
        if self.concurrent.is_empty() {
            writeln!(f, "    (none)")?;
        }
        for event in self.concurrent.iter().take(MAX_PRINTED_CONCURRENT) {
            writeln!(f, "    {event}")?;
        }
        if self.concurrent.len() > MAX_PRINTED_CONCURRENT {
            writeln!(f, "    ... and {} more", self.concurrent.len() - MAX_PRINTED_CONCURRENT)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read { key } => write!(f, "read {key:?}"),
            Op::Write { key, value } => write!(f, "write {key:?} = {}", BytesDisplay(value)),
            Op::Cas { key, expected_version, value } => {
                write!(f, "cas {key:?} if v{expected_version} = {}", BytesDisplay(value))
            }
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::ReadOk(state) => write!(f, "ok {}", StateDisplay(state)),
            Output::WriteOk { version } => write!(f, "ok, version {version}"),
            Output::BadVersion => write!(f, "bad version"),
            Output::NoNode => write!(f, "no node"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(output) => output.fmt(f),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {}: {} -> {} [invoked {} ns, ",
            self.client, self.op, self.outcome, self.invoked_ns
        )?;
        match self.completed_ns {
            Some(t) if matches!(self.outcome, Outcome::Ok(_)) => write!(f, "completed {t} ns]"),
            _ => write!(f, "never completed]"),
        }
    }
}

/// Bytes as a quoted string when printable ASCII, else as hex; long values are cut.
struct BytesDisplay<'a>(&'a [u8]);

impl fmt::Display for BytesDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 48;
        let shown = &self.0[..self.0.len().min(SHOWN)];
        if shown.iter().all(|b| (0x20..0x7f).contains(b)) {
            write!(f, "{:?}", String::from_utf8_lossy(shown))?;
        } else {
            write!(f, "0x")?;
            for b in shown {
                write!(f, "{b:02x}")?;
            }
        }
        if self.0.len() > SHOWN {
            write!(f, "...({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// A register state: `"value" vN`, or `(no node)`.
struct StateDisplay<'a>(&'a NodeState);

impl fmt::Display for StateDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((value, version)) => write!(f, "{} v{version}", BytesDisplay(value)),
            None => write!(f, "(no node)"),
        }
    }
}

/// Checks that `history` is linearizable, key by key, each key starting in its state from
/// `initial`; explores at most [`DEFAULT_MAX_STATES`] configurations per key.
pub fn check(history: &[Event], initial: &HashMap<String, NodeState>) -> Result<(), CheckError> {
    check_with_limit(history, initial, DEFAULT_MAX_STATES)
}

/// [`check`], exploring at most `max_states` configurations per key before giving up with
/// [`CheckError::Inconclusive`].
///
/// Keys are checked in lexicographic order; the first failing one is reported.
pub fn check_with_limit(
    history: &[Event],
    initial: &HashMap<String, NodeState>,
    max_states: usize,
) -> Result<(), CheckError> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, event) in history.iter().enumerate() {
        if let (Outcome::Ok(_), None) = (&event.outcome, event.completed_ns) {
            return Err(CheckError::InvalidHistory {
                reason: format!("event {index} ({event}) has an outcome but no completion time"),
            });
        }
        if let (Outcome::Ok(_), Some(completed)) = (&event.outcome, event.completed_ns) {
            if completed < event.invoked_ns {
                return Err(CheckError::InvalidHistory {
                    reason: format!("event {index} ({event}) completed before it was invoked"),
                });
            }
        }
        by_key.entry(event.op.key()).or_default().push(index);
    }
    for (key, indices) in by_key {
        let Some(start) = initial.get(key) else {
            return Err(CheckError::InvalidHistory { reason: format!("no initial state for key {key:?}") });
        };
        check_key(key, history, &indices, start, max_states)?;
    }
    Ok(())
}

/// A register state inside the search: the value is interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Reg {
    value: u32,
    /// Wider than the wire's `i32` so that versions never wrap (the pruning relies on them
    /// only growing).
    version: i64,
}

/// The model's state for one key.
type State = Option<Reg>;

/// The version of a state; a missing node never gets one, so it is below every requirement.
fn version_of(state: State) -> i64 {
    state.map_or(i64::MIN, |reg| reg.version)
}

/// What an operation does, with its value interned.
#[derive(Debug, Clone, Copy)]
enum Action {
    Read,
    Write { value: u32 },
    Cas { expected: i64, value: u32 },
}

/// What the model answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    Sees(State),
    Written(i64),
    BadVersion,
    NoNode,
}

/// Which model responses match what the client recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Unknown outcome: anything.
    Any,
    Sees(State),
    Written(i64),
    BadVersion,
    NoNode,
    /// An output the operation can never produce (e.g. a read answered `WriteOk`).
    Never,
}

impl Expect {
    fn allows(self, response: Response) -> bool {
        match self {
            Expect::Any => true,
            Expect::Sees(state) => response == Response::Sees(state),
            Expect::Written(version) => response == Response::Written(version),
            Expect::BadVersion => response == Response::BadVersion,
            Expect::NoNode => response == Response::NoNode,
            Expect::Never => false,
        }
    }

    /// The version the node must have when an operation expecting this is linearized
    /// (`i64::MAX`: no constraint).
    fn required_version(self) -> i64 {
        match self {
            Expect::Sees(Some(reg)) => reg.version,
            Expect::Written(version) => version - 1,
            _ => i64::MAX,
        }
    }
}

/// The model's transition: the response and the new state.
fn apply(action: Action, state: State) -> (Response, State) {
    match (action, state) {
        (Action::Read, _) => (Response::Sees(state), state),
        (_, None) => (Response::NoNode, None),
        (Action::Write { value }, Some(reg)) => {
            let version = reg.version + 1;
            (Response::Written(version), Some(Reg { value, version }))
        }
        (Action::Cas { expected, value }, Some(reg)) if reg.version == expected => {
            let version = reg.version + 1;
            (Response::Written(version), Some(Reg { value, version }))
        }
        (Action::Cas { .. }, Some(_)) => (Response::BadVersion, state),
    }
}

/// Values of one key, numbered.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Vec<u8>, u32>,
    values: Vec<Vec<u8>>,
}

impl Interner {
    fn id(&mut self, value: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.to_vec());
        self.ids.insert(value.to_vec(), id);
        id
    }

    fn state(&mut self, state: &NodeState) -> State {
        state.as_ref().map(|(value, version)| Reg { value: self.id(value), version: i64::from(*version) })
    }

    fn decode(&self, state: State) -> NodeState {
        state.map(|reg| {
            let value = self.values.get(reg.value as usize).cloned().unwrap_or_default();
            (value, i32::try_from(reg.version).unwrap_or(i32::MAX))
        })
    }
}

/// An operation of one key, ready for the search.
#[derive(Debug, Clone, Copy)]
struct CompiledOp {
    /// Index of its [`Event`] in the history.
    event: usize,
    invoked: u64,
    /// `None`: unknown outcome (never has to be linearized).
    completed: Option<u64>,
    action: Action,
    expect: Expect,
}

/// Orders invocations and completions: by time, invocations before completions at the same
/// instant (so operations touching in time count as concurrent), then by operation.
type EntryKey = (u64, u8, usize);

fn call_key(op: &CompiledOp, index: usize) -> EntryKey {
    (op.invoked, 0, index)
}

fn return_key(op: &CompiledOp, index: usize) -> Option<EntryKey> {
    op.completed.map(|t| (t, 1, index))
}

/// Compiles one event; reads with unknown outcome are dropped (`None`).
fn compile(index: usize, event: &Event, interner: &mut Interner) -> Option<CompiledOp> {
    let action = match &event.op {
        Op::Read { .. } => Action::Read,
        Op::Write { value, .. } => Action::Write { value: interner.id(value) },
        Op::Cas { expected_version, value, .. } => {
            Action::Cas { expected: i64::from(*expected_version), value: interner.id(value) }
        }
    };
    let expect = match (&event.outcome, action) {
        (Outcome::Unknown, Action::Read) => return None,
        (Outcome::Unknown, _) => Expect::Any,
        (Outcome::Ok(Output::ReadOk(state)), Action::Read) => Expect::Sees(interner.state(state)),
        (Outcome::Ok(Output::NoNode), Action::Read) => Expect::Sees(None),
        (Outcome::Ok(_), Action::Read) | (Outcome::Ok(Output::ReadOk(_)), _) => Expect::Never,
        (Outcome::Ok(Output::WriteOk { version }), _) => Expect::Written(i64::from(*version)),
        (Outcome::Ok(Output::BadVersion), Action::Cas { .. }) => Expect::BadVersion,
        (Outcome::Ok(Output::BadVersion), _) => Expect::Never,
        (Outcome::Ok(Output::NoNode), _) => Expect::NoNode,
    };
    let completed = match event.outcome {
        Outcome::Ok(_) => event.completed_ns,
        Outcome::Unknown => None,
    };
    Some(CompiledOp { event: index, invoked: event.invoked_ns, completed, action, expect })
}

/// "No entry" in the linked list.
const NIL: usize = usize::MAX;

/// A (sub-)history of one key laid out for the search.
#[derive(Debug)]
struct Prepared {
    /// Completed operations first (by invocation), then unknown ones: keeps the bitsets of
    /// configurations compressible (a long run of leading ones).
    ops: Vec<CompiledOp>,
    /// For each of `ops`, its index in the key's full list of operations.
    base: Vec<usize>,
    /// How many of `ops` have completed (must be linearized).
    completed_count: usize,
    /// Entry positions: 0 is the list head, then invocations and completions in time order.
    entry_op: Vec<usize>,
    entry_is_call: Vec<bool>,
    /// For each op, the position of its completion entry (`NIL` if unknown).
    return_entry: Vec<usize>,
}

impl Prepared {
    /// `selected`: (index in the key's full list, operation).
    fn new(mut selected: Vec<(usize, CompiledOp)>) -> Self {
        selected.sort_by_key(|(index, op)| (op.completed.is_none(), op.invoked, *index));
        let mut entries: Vec<(EntryKey, usize, bool)> = Vec::with_capacity(2 * selected.len());
        for (position, (index, op)) in selected.iter().enumerate() {
            entries.push((call_key(op, *index), position, true));
            if let Some(key) = return_key(op, *index) {
                entries.push((key, position, false));
            }
        }
        entries.sort_unstable_by_key(|entry| entry.0);
        let mut entry_op = vec![NIL];
        let mut entry_is_call = vec![false];
        let mut return_entry = vec![NIL; selected.len()];
        for (_, op, is_call) in entries {
            if !is_call {
                return_entry[op] = entry_op.len();
            }
            entry_op.push(op);
            entry_is_call.push(is_call);
        }
        let completed_count = selected.iter().filter(|(_, op)| op.completed.is_some()).count();
        let (base, ops) = selected.into_iter().unzip();
        Prepared { ops, base, completed_count, entry_op, entry_is_call, return_entry }
    }
}

/// The doubly linked list of entries, with Knuth's dancing-links removal and restoration.
#[derive(Debug)]
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Links {
    fn new(len: usize) -> Self {
        let next = (0..len).map(|i| if i + 1 < len { i + 1 } else { NIL }).collect();
        let prev = (0..len).map(|i| if i == 0 { NIL } else { i - 1 }).collect();
        Links { next, prev }
    }

    fn unlink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = entry;
        if next != NIL {
            self.prev[next] = entry;
        }
    }

    /// Removes an invocation and its completion (if any).
    fn lift(&mut self, call: usize, ret: usize) {
        self.unlink(call);
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes [`lift`](Self::lift); must be called in reverse order of the lifts.
    fn unlift(&mut self, call: usize, ret: usize) {
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// A segment tree keeping the minimum required version over unlinearized operations.
#[derive(Debug)]
struct MinTree {
    leaves: usize,
    nodes: Vec<i64>,
}

impl MinTree {
    fn new(values: &[i64]) -> Self {
        let leaves = values.len().max(1).next_power_of_two();
        let mut nodes = vec![i64::MAX; 2 * leaves];
        nodes[leaves..leaves + values.len()].copy_from_slice(values);
        for i in (1..leaves).rev() {
            nodes[i] = nodes[2 * i].min(nodes[2 * i + 1]);
        }
        MinTree { leaves, nodes }
    }

    fn set(&mut self, index: usize, value: i64) {
        let mut i = index + self.leaves;
        self.nodes[i] = value;
        while i > 1 {
            i /= 2;
            self.nodes[i] = self.nodes[2 * i].min(self.nodes[2 * i + 1]);
        }
    }

    fn min(&self) -> i64 {
        self.nodes[1]
    }
}

/// SplitMix64's finalizer: a cheap, well-mixed 64-bit hash.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The Zobrist key of an operation: a set's hash is the XOR of its members' keys.
fn zobrist(op: usize) -> u64 {
    mix64(op as u64 ^ 0x5151_ce5e_7000_0000)
}

fn state_hash(state: State) -> u64 {
    match state {
        None => 0x6e6f_6e6f_6465_0000,
        Some(reg) => mix64(((u64::from(reg.value) << 1) | 1) ^ mix64(reg.version as u64)),
    }
}

/// A hasher for keys that are already hashes.
#[derive(Debug, Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// One remembered configuration; its bitset is stored compressed in [`Visited::words`].
#[derive(Debug)]
struct VisitedEntry {
    /// Next entry with the same hash (`u32::MAX`: none).
    next: u32,
    /// How many leading words of the bitset are all ones (not stored).
    full_words: u32,
    /// The stored words run from there up to the last non-zero word.
    start: usize,
    len: u32,
    state: State,
}

/// The memo: every (linearized set, state) configuration seen.
#[derive(Debug, Default)]
struct Visited {
    heads: HashMap<u64, u32, BuildHasherDefault<PassThroughHasher>>,
    entries: Vec<VisitedEntry>,
    words: Vec<u64>,
}

impl Visited {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Remembers the configuration; false if it was already there.
    fn insert(&mut self, hash: u64, bits: &[u64], state: State) -> bool {
        let full_words = bits.iter().take_while(|&&w| w == u64::MAX).count();
        let end = bits.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1).max(full_words);
        let body = &bits[full_words..end];
        let head = self.heads.get(&hash).copied().unwrap_or(u32::MAX);
        let mut cursor = head;
        while let Some(entry) = self.entries.get(cursor as usize) {
            if entry.state == state
                && entry.full_words as usize == full_words
                && self.words[entry.start..entry.start + entry.len as usize] == *body
            {
                return false;
            }
            cursor = entry.next;
        }
        self.entries.push(VisitedEntry {
            next: head,
            full_words: full_words as u32,
            start: self.words.len(),
            len: body.len() as u32,
            state,
        });
        self.words.extend_from_slice(body);
        self.heads.insert(hash, (self.entries.len() - 1) as u32);
        true
    }
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchEnd {
    Linearizable,
    /// `frontier`: the operation (index in the key's full list) whose completion is the latest
    /// any explored configuration got stuck at.
    NotLinearizable {
        frontier: Option<usize>,
    },
    Inconclusive {
        explored: usize,
    },
    /// Exhaustive mode: every configuration explored.
    Exhausted,
}

/// What a search found.
#[derive(Debug)]
struct SearchResult {
    end: SearchEnd,
    /// Exhaustive mode: distinct states of configurations with every completed operation
    /// linearized, those needing the fewest unknown operations first (at most
    /// [`MAX_REPORTED_STATES`]).
    end_states: Vec<State>,
}

/// A linearized operation on the search stack.
#[derive(Debug, Clone, Copy)]
struct Frame {
    call: usize,
    previous: State,
    /// It matched without changing the state, so trying alternatives to it is pointless.
    forced: bool,
}

/// End states by fewest unknown operations applied, then by version and value; the first
/// [`MAX_REPORTED_STATES`].
fn ranked(end_states: HashMap<State, usize>) -> Vec<State> {
    let mut ranked: Vec<(usize, State)> = end_states.into_iter().map(|(state, n)| (n, state)).collect();
    ranked.sort_unstable_by_key(|&(n, state)| (n, state.map(|reg| (reg.version, reg.value))));
    ranked.into_iter().take(MAX_REPORTED_STATES).map(|(_, state)| state).collect()
}

/// Lowe's just-in-time linearization search over one prepared sub-history.
///
/// Stops at the first full linearization, or, when `exhaustive`, explores every configuration
/// and collects the states in which all completed operations are linearized.
fn search(p: &Prepared, initial: State, max_states: usize, exhaustive: bool) -> SearchResult {
    let op_count = p.ops.len();
    let mut links = Links::new(p.entry_op.len());
    let mut bits = vec![0u64; op_count.div_ceil(64)];
    let mut set_hash = 0u64;
    let requirements: Vec<i64> = p
        .ops
        .iter()
        .map(|op| if op.completed.is_some() { op.expect.required_version() } else { i64::MAX })
        .collect();
    let mut min_required = MinTree::new(&requirements);
    let mut visited = Visited::default();
    let mut state = initial;
    let mut stack: Vec<Frame> = Vec::new();
    let mut linearized_completed = 0;
    let mut frontier = 0;
    // End state -> fewest unknown operations linearized to reach it.
    let mut end_states: HashMap<State, usize> = HashMap::new();

    visited.insert(state_hash(state), &bits, state);
    if p.completed_count == 0 {
        if !exhaustive {
            return SearchResult { end: SearchEnd::Linearizable, end_states: Vec::new() };
        }
        end_states.insert(state, 0);
    }
    let mut entry = links.next[0];
    loop {
        if entry == NIL || !p.entry_is_call[entry] {
            // The completion of an operation not linearized yet (or the end of the list): this
            // configuration is dead; undo linearizations until one has an alternative.
            if entry != NIL {
                frontier = frontier.max(entry);
            }
            loop {
                let Some(frame) = stack.pop() else {
                    let end = if exhaustive {
                        SearchEnd::Exhausted
                    } else {
                        let frontier = (frontier != 0).then(|| p.base[p.entry_op[frontier]]);
                        SearchEnd::NotLinearizable { frontier }
                    };
                    return SearchResult { end, end_states: ranked(end_states) };
                };
                let op = p.entry_op[frame.call];
                state = frame.previous;
                bits[op / 64] &= !(1u64 << (op % 64));
                set_hash ^= zobrist(op);
                min_required.set(op, requirements[op]);
                if p.ops[op].completed.is_some() {
                    linearized_completed -= 1;
                }
                links.unlift(frame.call, p.return_entry[op]);
                if !frame.forced {
                    entry = links.next[frame.call];
                    break;
                }
            }
            continue;
        }

        let op = p.entry_op[entry];
        let compiled = &p.ops[op];
        let (response, new_state) = apply(compiled.action, state);
        let completed = compiled.completed.is_some();
        // An unknown operation without effect is the same as one that never happened.
        if !compiled.expect.allows(response) || (!completed && new_state == state) {
            entry = links.next[entry];
            continue;
        }
        // Versions only grow: if some other unlinearized operation needs an older version, the
        // new configuration is dead.
        min_required.set(op, i64::MAX);
        if version_of(new_state) > version_of(state) && version_of(new_state) > min_required.min() {
            min_required.set(op, requirements[op]);
            entry = links.next[entry];
            continue;
        }
        bits[op / 64] |= 1u64 << (op % 64);
        set_hash ^= zobrist(op);
        if !visited.insert(set_hash ^ state_hash(new_state), &bits, new_state) {
            bits[op / 64] &= !(1u64 << (op % 64));
            set_hash ^= zobrist(op);
            min_required.set(op, requirements[op]);
            entry = links.next[entry];
            continue;
        }
        if visited.len() > max_states {
            let end = SearchEnd::Inconclusive { explored: visited.len() };
            return SearchResult { end, end_states: ranked(end_states) };
        }
        stack.push(Frame { call: entry, previous: state, forced: completed && new_state == state });
        state = new_state;
        if completed {
            linearized_completed += 1;
        }
        links.lift(entry, p.return_entry[op]);
        if linearized_completed == p.completed_count {
            if !exhaustive {
                return SearchResult { end: SearchEnd::Linearizable, end_states: Vec::new() };
            }
            let unknown_applied = stack.len() - linearized_completed;
            let fewest = end_states.entry(state).or_insert(unknown_applied);
            *fewest = (*fewest).min(unknown_applied);
        }
        entry = links.next[0];
    }
}

/// The key's operations invoked before `culprit` completed (without `culprit` itself when
/// `exclude`); those completing later become unknown (reads are dropped).
fn prefix(base: &[CompiledOp], culprit: usize, exclude: bool) -> Prepared {
    let cut = return_key(&base[culprit], culprit);
    let selected = base
        .iter()
        .enumerate()
        .filter(|&(index, op)| !(exclude && index == culprit) && Some(call_key(op, index)) < cut)
        .filter_map(|(index, op)| {
            if return_key(op, index).is_some_and(|r| Some(r) <= cut) {
                Some((index, *op))
            } else if matches!(op.action, Action::Read) {
                None
            } else {
                Some((index, CompiledOp { completed: None, expect: Expect::Any, ..*op }))
            }
        })
        .collect();
    Prepared::new(selected)
}

/// Checks one key's sub-history; on failure finds the shortest failing prefix and explains it.
fn check_key(
    key: &str,
    history: &[Event],
    indices: &[usize],
    initial: &NodeState,
    max_states: usize,
) -> Result<(), CheckError> {
    let mut interner = Interner::default();
    let initial = interner.state(initial);
    let base: Vec<CompiledOp> =
        indices.iter().filter_map(|&i| compile(i, &history[i], &mut interner)).collect();
    let full = Prepared::new(base.iter().copied().enumerate().collect());
    let frontier = match search(&full, initial, max_states, false).end {
        SearchEnd::Linearizable | SearchEnd::Exhausted => return Ok(()),
        SearchEnd::Inconclusive { explored } => {
            return Err(CheckError::Inconclusive { key: key.to_string(), states_explored: explored })
        }
        SearchEnd::NotLinearizable { frontier } => frontier,
    };

    // Prefixes ending at a completion, shortest first. The frontier is a lower bound: every
    // configuration the search reached is genuine, so the prefixes before it are linearizable.
    let mut completions: Vec<usize> = (0..base.len()).filter(|&i| base[i].completed.is_some()).collect();
    completions.sort_by_key(|&i| return_key(&base[i], i));
    let Some(mut high) = completions.len().checked_sub(1) else {
        return Ok(());
    };
    let mut low = frontier.and_then(|f| completions.iter().position(|&c| c == f)).unwrap_or(0).min(high);
    let mut minimal = true;
    let mut probe = low;
    while low < high {
        match search(&prefix(&base, completions[probe], false), initial, max_states, false).end {
            SearchEnd::NotLinearizable { .. } => high = probe,
            SearchEnd::Linearizable | SearchEnd::Exhausted => low = probe + 1,
            SearchEnd::Inconclusive { .. } => {
                minimal = false;
                break;
            }
        }
        probe = low + (high - low) / 2;
    }
    let culprit = completions[high];

    let others = prefix(&base, culprit, true);
    let states = search(&others, initial, max_states.min(DIAGNOSTIC_MAX_STATES), true).end_states;
    let op = &base[culprit];
    let cut = return_key(op, culprit);
    let done_at = op.completed.unwrap_or(u64::MAX);
    let prefix_len = (0..base.len()).filter(|&i| Some(call_key(&base[i], i)) < cut).count();
    let mut preceding: Vec<usize> =
        (0..base.len()).filter(|&i| base[i].completed.is_some_and(|t| t < op.invoked)).collect();
    preceding.sort_by_key(|&i| return_key(&base[i], i));
    let preceding = preceding[preceding.len().saturating_sub(MAX_PRECEDING)..].to_vec();
    let mut concurrent: Vec<usize> = (0..base.len())
        .filter(|&i| {
            i != culprit && base[i].invoked <= done_at && base[i].completed.is_none_or(|t| t >= op.invoked)
        })
        .collect();
    concurrent.sort_by_key(|&i| call_key(&base[i], i));
    let event = |i: usize| history[base[i].event].clone();
    Err(CheckError::NotLinearizable(Box::new(Violation {
        key: key.to_string(),
        op: history[op.event].clone(),
        prefix_len,
        minimal,
        possible_states: states.into_iter().map(|s| interner.decode(s)).collect(),
        preceding: preceding.into_iter().map(event).collect(),
        concurrent: concurrent.into_iter().map(event).collect(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn read(key: &str) -> Op {
        Op::Read { key: key.to_string() }
    }

    fn write(key: &str, value: &str) -> Op {
        Op::Write { key: key.to_string(), value: value.as_bytes().to_vec() }
    }

    fn cas(key: &str, expected_version: i32, value: &str) -> Op {
        Op::Cas { key: key.to_string(), expected_version, value: value.as_bytes().to_vec() }
    }

    fn seen(value: &str, version: i32) -> Output {
        Output::ReadOk(Some((value.as_bytes().to_vec(), version)))
    }

    fn written(version: i32) -> Output {
        Output::WriteOk { version }
    }

    /// A completed operation.
    fn done(client: usize, op: Op, invoked_ns: u64, completed_ns: u64, output: Output) -> Event {
        Event { client, op, invoked_ns, completed_ns: Some(completed_ns), outcome: Outcome::Ok(output) }
    }

    /// An operation with unknown outcome.
    fn lost(client: usize, op: Op, invoked_ns: u64) -> Event {
        Event { client, op, invoked_ns, completed_ns: None, outcome: Outcome::Unknown }
    }

    fn initial(keys: &[&str]) -> HashMap<String, NodeState> {
        keys.iter().map(|k| (k.to_string(), Some((b"0".to_vec(), 0)))).collect()
    }

    fn violation(result: Result<(), CheckError>) -> Violation {
        match result {
            Err(CheckError::NotLinearizable(v)) => *v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn sequential_history_is_accepted() {
        let mut history = History::new();
        let steps = [
            (read("/a"), seen("0", 0)),
            (write("/a", "x"), written(1)),
            (read("/a"), seen("x", 1)),
            (cas("/a", 1, "y"), written(2)),
            (cas("/a", 1, "z"), Output::BadVersion),
            (read("/a"), seen("y", 2)),
            (write("/a", "w"), written(3)),
            (read("/a"), seen("w", 3)),
        ];
        for (i, (op, output)) in steps.into_iter().enumerate() {
            let t = 10 * i as u64;
            let id = history.invoke(i % 2, op, t);
            history.complete(id, t + 5, Outcome::Ok(output));
        }
        assert_eq!(history.len(), 8);
        assert_eq!(check(history.events(), &initial(&["/a"])), Ok(()));
    }

    #[test]
    fn concurrent_writes_with_reads_seeing_either_order_are_accepted() {
        let init = initial(&["/a"]);
        // x then y.
        let history = vec![
            done(0, write("/a", "x"), 0, 100, written(1)),
            done(1, write("/a", "y"), 10, 110, written(2)),
            done(2, read("/a"), 20, 30, seen("0", 0)),
            done(3, read("/a"), 40, 50, seen("x", 1)),
            done(2, read("/a"), 60, 70, seen("y", 2)),
            done(3, read("/a"), 120, 130, seen("y", 2)),
        ];
        assert_eq!(check(&history, &init), Ok(()));
        // y then x, and a read overlapping everything that sees the intermediate state.
        let history = vec![
            done(0, write("/a", "x"), 0, 100, written(2)),
            done(1, write("/a", "y"), 10, 110, written(1)),
            done(2, read("/a"), 5, 200, seen("y", 1)),
            done(3, read("/a"), 120, 130, seen("x", 2)),
        ];
        assert_eq!(check(&history, &init), Ok(()));
        // But a version that does not go with the value is caught.
        let history = vec![
            done(0, write("/a", "x"), 0, 100, written(1)),
            done(1, write("/a", "y"), 10, 110, written(2)),
            done(3, read("/a"), 120, 130, seen("x", 2)),
        ];
        let v = violation(check(&history, &init));
        assert_eq!(v.op, history[2]);
    }

    #[test]
    fn planted_stale_read_is_caught() {
        let history =
            vec![done(0, write("/a", "x"), 0, 100, written(1)), done(1, read("/a"), 150, 160, seen("0", 0))];
        let v = violation(check(&history, &initial(&["/a"])));
        eprintln!("{v}");
        assert_eq!(v.key, "/a");
        assert_eq!(v.op, history[1]);
        assert!(v.minimal);
        assert_eq!(v.prefix_len, 2);
        assert_eq!(v.possible_states, vec![Some((b"x".to_vec(), 1))]);
        assert_eq!(v.preceding, vec![history[0].clone()]);
        assert!(v.concurrent.is_empty());
        let text = v.to_string();
        assert!(text.contains("\"/a\"") && text.contains("invoked 150 ns"), "{text}");
        // The same read overlapping the write is fine.
        let overlapping = vec![history[0].clone(), done(1, read("/a"), 90, 160, seen("0", 0))];
        assert_eq!(check(&overlapping, &initial(&["/a"])), Ok(()));
    }

    #[test]
    fn new_old_inversion_is_caught() {
        // A write overlaps two reads; the first sees the new value, the later one the old.
        let history = vec![
            done(0, write("/a", "x"), 0, 1000, written(1)),
            done(1, read("/a"), 100, 200, seen("x", 1)),
            done(2, read("/a"), 300, 400, seen("0", 0)),
        ];
        let v = violation(check(&history, &initial(&["/a"])));
        assert_eq!(v.op, history[2]);
        assert_eq!(v.concurrent, vec![history[0].clone()]);
    }

    #[test]
    fn cas_succeeding_on_a_version_that_was_not_current_is_caught() {
        let history = vec![
            done(0, write("/a", "x"), 0, 10, written(1)),
            done(1, cas("/a", 0, "y"), 20, 30, written(1)),
        ];
        let v = violation(check(&history, &initial(&["/a"])));
        assert_eq!((v.key.as_str(), &v.op), ("/a", &history[1]));
        // A BadVersion when the version certainly matched is caught too.
        let history = vec![
            done(0, write("/a", "x"), 0, 10, written(1)),
            done(1, cas("/a", 1, "y"), 20, 30, Output::BadVersion),
        ];
        assert_eq!(violation(check(&history, &initial(&["/a"]))).op, history[1]);
        // A concurrent CAS may win (then the write comes second) ...
        let history = vec![
            done(0, write("/a", "x"), 0, 100, written(2)),
            done(1, cas("/a", 0, "y"), 20, 30, written(1)),
            done(2, read("/a"), 200, 210, seen("x", 2)),
        ];
        assert_eq!(check(&history, &initial(&["/a"])), Ok(()));
        // ... or lose.
        let history = vec![
            done(0, write("/a", "x"), 0, 100, written(1)),
            done(1, cas("/a", 0, "y"), 20, 30, Output::BadVersion),
            done(2, read("/a"), 200, 210, seen("x", 1)),
        ];
        assert_eq!(check(&history, &initial(&["/a"])), Ok(()));
    }

    #[test]
    fn unknown_writes_may_or_may_not_take_effect() {
        let init = initial(&["/a"]);
        // Observed later (even long after it was invoked).
        let history = vec![
            lost(0, write("/a", "u"), 0),
            done(1, read("/a"), 10, 20, seen("0", 0)),
            done(1, read("/a"), 500, 510, seen("u", 1)),
            done(2, write("/a", "w"), 600, 610, written(2)),
        ];
        assert_eq!(check(&history, &init), Ok(()));
        // Observed only through the version gap it left.
        let history = vec![lost(0, write("/a", "u"), 0), done(2, write("/a", "w"), 600, 610, written(2))];
        assert_eq!(check(&history, &init), Ok(()));
        // Never observed.
        let history = vec![
            lost(0, write("/a", "u"), 0),
            lost(0, cas("/a", 0, "c"), 5),
            done(1, read("/a"), 500, 510, seen("0", 0)),
            done(2, write("/a", "w"), 600, 610, written(1)),
            done(1, read("/a"), 700, 710, seen("w", 1)),
            lost(3, read("/a"), 720),
        ];
        assert_eq!(check(&history, &init), Ok(()));
        // But not both observed and then undone.
        let history = vec![
            lost(0, write("/a", "u"), 0),
            done(1, read("/a"), 10, 20, seen("u", 1)),
            done(2, read("/a"), 30, 40, seen("0", 0)),
        ];
        assert_eq!(violation(check(&history, &init)).op, history[2]);
        // Nor observed before it was invoked.
        let history = vec![done(1, read("/a"), 10, 20, seen("u", 1)), lost(0, write("/a", "u"), 30)];
        assert_eq!(violation(check(&history, &init)).op, history[0]);
    }

    #[test]
    fn missing_node_answers_no_node() {
        let init: HashMap<String, NodeState> = [("/gone".to_string(), None)].into_iter().collect();
        let history = vec![
            done(0, read("/gone"), 0, 10, Output::ReadOk(None)),
            done(0, write("/gone", "x"), 20, 30, Output::NoNode),
            done(1, cas("/gone", 0, "x"), 25, 35, Output::NoNode),
            done(1, read("/gone"), 40, 50, Output::NoNode),
        ];
        assert_eq!(check(&history, &init), Ok(()));
        let history = vec![done(0, write("/gone", "x"), 20, 30, written(1))];
        assert_eq!(violation(check(&history, &init)).key, "/gone");
    }

    #[test]
    fn violation_is_reported_for_its_own_key() {
        let init = initial(&["/a", "/b"]);
        let good_a = vec![
            done(0, write("/a", "x"), 0, 100, written(1)),
            done(1, read("/a"), 50, 60, seen("0", 0)),
            done(1, read("/a"), 150, 160, seen("x", 1)),
        ];
        let bad_b = [
            done(2, write("/b", "y"), 10, 20, written(1)),
            done(3, read("/b"), 30, 40, seen("y", 1)),
            done(2, read("/b"), 170, 180, seen("0", 0)),
        ];
        let mut both = good_a.clone();
        both.extend(bad_b.iter().cloned());
        let error = check(&both, &init).expect_err("the /b history is stale");
        assert_eq!(error.key(), Some("/b"));
        let v = error.violation().expect("a violation");
        assert_eq!(v.op, bad_b[2]);
        assert!(error.to_string().contains("key \"/b\""), "{error}");
        assert_eq!(check(&good_a, &init), Ok(()));
    }

    #[test]
    fn malformed_histories_are_rejected() {
        let history = vec![done(0, read("/nope"), 0, 10, seen("0", 0))];
        assert!(matches!(check(&history, &initial(&["/a"])), Err(CheckError::InvalidHistory { .. })));
        let mut history = vec![done(0, read("/a"), 0, 10, seen("0", 0))];
        history[0].completed_ns = None;
        assert!(matches!(check(&history, &initial(&["/a"])), Err(CheckError::InvalidHistory { .. })));
        let history = vec![done(0, read("/a"), 20, 10, seen("0", 0))];
        assert!(matches!(check(&history, &initial(&["/a"])), Err(CheckError::InvalidHistory { .. })));
    }

    /// xorshift64*: small, deterministic, good enough for tests.
    struct XorShift(u64);

    impl XorShift {
        fn new(seed: u64) -> Self {
            XorShift(mix64(seed) | 1)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn percent(&mut self, p: u64) -> bool {
            self.below(100) < p
        }
    }

    struct Generated {
        events: Vec<Event>,
        initial: HashMap<String, NodeState>,
        /// Per key, the value the register held at each version.
        values: HashMap<String, Vec<Vec<u8>>>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Read,
        Write,
        Cas,
    }

    struct Plan {
        client: usize,
        key: usize,
        kind: Kind,
        invoked: u64,
        effect: u64,
        completed: u64,
        lost: bool,
        applies: bool,
        cas_matches: bool,
        expected: i32,
    }

    /// A linearizable history: every operation takes effect at a random instant inside its
    /// interval (lost ones maybe never), applied to a real register in that order.
    fn generate(seed: u64, clients: usize, ops: usize, keys: usize) -> Generated {
        let mut rng = XorShift::new(seed);
        let names: Vec<String> = (0..keys).map(|k| format!("/k{k}")).collect();
        let mut free_at: Vec<u64> = (0..clients).map(|_| rng.below(100)).collect();
        let mut plans = Vec::with_capacity(ops);
        for _ in 0..ops {
            let client = (0..clients).min_by_key(|&c| (free_at[c], c)).unwrap_or(0);
            let invoked = free_at[client] + 1 + rng.below(50);
            let effect = invoked + rng.below(300);
            let completed = effect + rng.below(300);
            free_at[client] = completed;
            let kind = match rng.below(100) {
                0..=39 => Kind::Read,
                40..=74 => Kind::Write,
                _ => Kind::Cas,
            };
            let lost = rng.percent(4);
            let applies = !lost || rng.percent(50);
            let cas_matches = rng.percent(60);
            let expected = rng.below(5) as i32 - 2;
            let key = rng.below(keys as u64) as usize;
            plans.push(Plan {
                client,
                key,
                kind,
                invoked,
                effect,
                completed,
                lost,
                applies,
                cas_matches,
                expected,
            });
        }
        let mut order: Vec<usize> = (0..plans.len()).collect();
        order.sort_by_key(|&i| (plans[i].effect, i));
        let mut registers: Vec<(Vec<u8>, i32)> = vec![(b"0".to_vec(), 0); keys];
        let mut values: Vec<Vec<Vec<u8>>> = vec![vec![b"0".to_vec()]; keys];
        let mut outputs: Vec<Option<Output>> = vec![None; plans.len()];
        let mut written_values: Vec<Vec<u8>> = vec![Vec::new(); plans.len()];
        for (i, plan) in plans.iter().enumerate() {
            written_values[i] = format!("c{}-{i}", plan.client).into_bytes();
        }
        for i in order {
            let plan = &mut plans[i];
            if !plan.applies {
                if plan.kind == Kind::Cas {
                    plan.expected += registers[plan.key].1;
                }
                continue;
            }
            let register = &mut registers[plan.key];
            outputs[i] = Some(match plan.kind {
                Kind::Read => Output::ReadOk(Some(register.clone())),
                Kind::Write => {
                    *register = (written_values[i].clone(), register.1 + 1);
                    values[plan.key].push(register.0.clone());
                    written(register.1)
                }
                Kind::Cas => {
                    plan.expected = if plan.cas_matches { register.1 } else { register.1 + plan.expected };
                    if plan.expected == register.1 {
                        *register = (written_values[i].clone(), register.1 + 1);
                        values[plan.key].push(register.0.clone());
                        written(register.1)
                    } else {
                        Output::BadVersion
                    }
                }
            });
        }
        let events = plans
            .iter()
            .zip(outputs)
            .zip(written_values)
            .map(|((plan, output), value)| {
                let key = names[plan.key].clone();
                let op = match plan.kind {
                    Kind::Read => Op::Read { key },
                    Kind::Write => Op::Write { key, value },
                    Kind::Cas => Op::Cas { key, expected_version: plan.expected, value },
                };
                match output {
                    Some(output) if !plan.lost => done(plan.client, op, plan.invoked, plan.completed, output),
                    _ => lost(plan.client, op, plan.invoked),
                }
            })
            .collect();
        let initial = names.iter().map(|n| (n.clone(), Some((b"0".to_vec(), 0)))).collect();
        let values = names.iter().cloned().zip(values).collect();
        Generated { events, initial, values }
    }

    /// Makes a read that started after a write completed see the state before that write;
    /// returns the index of the read, or `None` if no read qualifies.
    fn plant_stale_read(g: &mut Generated, rng: &mut XorShift) -> Option<usize> {
        let mut candidates = Vec::new();
        for (r, read_event) in g.events.iter().enumerate() {
            let Outcome::Ok(Output::ReadOk(Some(_))) = read_event.outcome else { continue };
            let newest = g
                .events
                .iter()
                .filter(|w| w.op.key() == read_event.op.key())
                .filter(|w| w.completed_ns.is_some_and(|t| t < read_event.invoked_ns))
                .filter_map(|w| match w.outcome {
                    Outcome::Ok(Output::WriteOk { version }) => Some(version),
                    _ => None,
                })
                .max();
            if let Some(version) = newest {
                candidates.push((r, version));
            }
        }
        if candidates.is_empty() {
            return None;
        }
        let (r, version) = candidates[rng.below(candidates.len() as u64) as usize];
        let key = g.events[r].op.key().to_string();
        let old = g.values[&key][(version - 1) as usize].clone();
        g.events[r].outcome = Outcome::Ok(Output::ReadOk(Some((old, version - 1))));
        Some(r)
    }

    fn random_round(seed: u64, clients: usize, ops: usize, keys: usize) {
        let mut g = generate(seed, clients, ops, keys);
        let lost = g.events.iter().filter(|e| e.outcome == Outcome::Unknown).count();
        let started = Instant::now();
        let result = check(&g.events, &g.initial);
        let elapsed = started.elapsed();
        eprintln!(
            "seed {seed}: {ops} ops ({lost} unknown), {clients} clients, {keys} keys: checked in {elapsed:?}"
        );
        if let Err(error) = &result {
            panic!("seed {seed}: generated history rejected: {error}");
        }

        let mut rng = XorShift::new(seed ^ 0xbad);
        let Some(r) = plant_stale_read(&mut g, &mut rng) else {
            panic!("seed {seed}: no read to make stale");
        };
        let started = Instant::now();
        let result = check(&g.events, &g.initial);
        let elapsed = started.elapsed();
        let v = match result {
            Err(CheckError::NotLinearizable(v)) => v,
            other => panic!("seed {seed}: stale read {} not caught: {other:?}", g.events[r]),
        };
        eprintln!("seed {seed}: stale read caught in {elapsed:?}");
        assert_eq!(v.key, g.events[r].op.key(), "seed {seed}: {v}");
        assert_eq!(v.op, g.events[r], "seed {seed}: {v}");
        assert!(v.minimal, "seed {seed}: {v}");
    }

    #[test]
    fn random_linearizable_histories_pass_and_planted_stale_reads_fail() {
        for seed in [1, 2, 3, 0x5eed, 20240601] {
            random_round(seed, 6, 2000, 3);
        }
        let mut g = generate(77, 6, 2000, 3);
        eprintln!("example violation:\n{}", {
            let mut rng = XorShift::new(77);
            plant_stale_read(&mut g, &mut rng);
            check(&g.events, &g.initial).map_or_else(|e| e.to_string(), |()| "none".into())
        });
    }

    #[test]
    fn performance_on_larger_histories() {
        random_round(42, 6, 2000, 3);
        random_round(43, 10, 5000, 5);
        random_round(44, 10, 5000, 3);
    }

    #[test]
    fn state_limit_makes_the_check_inconclusive() {
        let g = generate(9, 6, 500, 2);
        match check_with_limit(&g.events, &g.initial, 10) {
            Err(CheckError::Inconclusive { key, states_explored }) => {
                assert_eq!(key, "/k0");
                assert!(states_explored > 10);
            }
            other => panic!("seed 9: expected inconclusive, got {other:?}"),
        }
    }
}
