//! The znode tree and the operations that change it.
//!
//! [`DataTree::apply`] takes a [`Txn`] (zxid, time, session, [`Op`]) and returns the result
//! and the [`Change`]s it made. Applying the same transactions in the same order gives the
//! same tree, results and changes on every server: nothing here reads a clock or a random
//! number. Reads ([`DataTree::get`], [`DataTree::exists`], [`DataTree::children`]) never
//! change anything.
//!
//! `multi` is all-or-nothing: every node a multi touches is saved before its first change,
//! and if any op fails the saved nodes are put back, so the tree is as if nothing had run.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::acl::{self, perms, Acl, Id};
use crate::error::KeeperError;
use crate::path;

/// Largest data a znode may hold (1 MiB).
pub const MAX_DATA: usize = 1024 * 1024;

/// A znode's metadata, field for field as ZooKeeper's `Stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// zxid of the transaction that created the node.
    pub czxid: i64,
    /// zxid of the last transaction that changed the node's data.
    pub mzxid: i64,
    /// zxid of the last transaction that changed the node's children.
    pub pzxid: i64,
    /// Creation time, ms since the epoch.
    pub ctime: i64,
    /// Last data change, ms since the epoch.
    pub mtime: i64,
    /// Number of data changes.
    pub version: i32,
    /// Number of child changes (creations and deletions).
    pub cversion: i32,
    /// Number of ACL changes.
    pub aversion: i32,
    /// Owning session of an ephemeral node; [`CONTAINER_OWNER`] for a container node,
    /// [`TTL_MARKER`] `|` the TTL for a node with a TTL (ZooKeeper's `EphemeralType`
    /// encoding); 0 otherwise.
    pub ephemeral_owner: i64,
    /// Bytes of data.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
}

/// How a node is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateMode {
    /// Lives until deleted.
    Persistent,
    /// Deleted when its session ends.
    Ephemeral,
    /// Persistent, with a 10-digit counter appended to the name.
    PersistentSequential,
    /// Ephemeral, with a 10-digit counter appended to the name.
    EphemeralSequential,
    /// Deleted by the server once it has had children and has none left (ZooKeeper's
    /// container node; see [`DataTree::reapable`]).
    Container,
    /// Deleted by the server once it has had no children and no change for `ttl_ms`.
    PersistentWithTtl {
        /// The TTL, ms (1 to [`MAX_TTL_MS`]).
        ttl_ms: i64,
    },
    /// [`CreateMode::PersistentWithTtl`] with a counter appended to the name.
    PersistentSequentialWithTtl {
        /// The TTL, ms (1 to [`MAX_TTL_MS`]).
        ttl_ms: i64,
    },
}

/// `ephemeral_owner` of a container node (ZooKeeper's `EphemeralType.CONTAINER`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// The top byte of `ephemeral_owner` that marks a node with a TTL, the TTL in the rest
/// (ZooKeeper's `EphemeralType.TTL`). Session ids carry their server's id (1 to 254) there.
pub const TTL_MARKER: i64 = -0x0100_0000_0000_0000; // 0xFF00_0000_0000_0000
/// The longest TTL the encoding holds, ms (ZooKeeper's `EphemeralType.TTL.maxValue()`).
pub const MAX_TTL_MS: i64 = 0x00FF_FFFF_FFFF;

impl Stat {
    /// The stat as clients see it: `ephemeral_owner` is the owning session of an ephemeral
    /// node and 0 for every other kind, containers and TTL nodes included (ZooKeeper's
    /// `DataNode.getClientEphemeralOwner`).
    pub fn for_client(mut self) -> Stat {
        if NodeKind::of(self.ephemeral_owner).session().is_none() {
            self.ephemeral_owner = 0;
        }
        self
    }
}

/// What a node's `ephemeral_owner` says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A plain persistent node.
    Persistent,
    /// An ephemeral node of this session.
    Ephemeral(u64),
    /// A container node.
    Container,
    /// A node with this TTL, ms.
    Ttl(i64),
}

impl NodeKind {
    /// Reads `ephemeral_owner`.
    pub fn of(ephemeral_owner: i64) -> NodeKind {
        if ephemeral_owner == 0 {
            NodeKind::Persistent
        } else if ephemeral_owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if ephemeral_owner & TTL_MARKER == TTL_MARKER {
            NodeKind::Ttl(ephemeral_owner & MAX_TTL_MS)
        } else {
            NodeKind::Ephemeral(ephemeral_owner as u64)
        }
    }

    /// The owning session of an ephemeral node.
    pub fn session(self) -> Option<u64> {
        match self {
            NodeKind::Ephemeral(s) => Some(s),
            _ => None,
        }
    }
}

impl CreateMode {
    /// Whether the node dies with its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    /// Whether a counter is appended to the name.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl { .. }
        )
    }

    /// The node's `ephemeral_owner` when `session` creates it.
    fn owner(self, session: u64) -> Result<i64, KeeperError> {
        match self {
            CreateMode::Ephemeral | CreateMode::EphemeralSequential => Ok(session as i64),
            CreateMode::Container => Ok(CONTAINER_OWNER),
            CreateMode::PersistentWithTtl { ttl_ms } | CreateMode::PersistentSequentialWithTtl { ttl_ms } => {
                if !(1..=MAX_TTL_MS).contains(&ttl_ms) {
                    return Err(KeeperError::BadArguments {
                        what: format!("a TTL must be from 1 to {MAX_TTL_MS} ms, not {ttl_ms}"),
                    });
                }
                Ok(TTL_MARKER | ttl_ms)
            }
            CreateMode::Persistent | CreateMode::PersistentSequential => Ok(0),
        }
    }
}

/// An operation that changes the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Create a node.
    Create {
        /// The path (for a sequential node, the prefix).
        path: String,
        /// Its data.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Persistent / ephemeral, sequential or not.
        mode: CreateMode,
    },
    /// Delete a childless node; `version` -1 matches any version.
    Delete {
        /// The node.
        path: String,
        /// Expected version, or -1.
        version: i32,
    },
    /// Replace a node's data; `version` -1 matches any version.
    SetData {
        /// The node.
        path: String,
        /// New data.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Expected version, or -1.
        version: i32,
    },
    /// Fail unless the node exists at `version` (-1: any); changes nothing. For multi.
    Check {
        /// The node.
        path: String,
        /// Expected version, or -1.
        version: i32,
    },
    /// All of these or none.
    Multi(Vec<Op>),
    /// Start the txn's session (recorded so sessions survive a restart).
    CreateSession {
        /// Negotiated timeout, ms.
        timeout_ms: u32,
        /// The secret a client shows to resume it.
        password: [u8; 16],
    },
    /// End a session: delete its ephemeral nodes.
    CloseSession,
    /// Create a node with an ACL ([`Op::Create`] gives `world:anyone` every permission).
    CreateWithAcl {
        /// The path (for a sequential node, the prefix).
        path: String,
        /// Its data.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Persistent / ephemeral, sequential or not.
        mode: CreateMode,
        /// Its ACL, as the client wrote it (`auth` entries are expanded when applied).
        acl: Vec<Acl>,
    },
    /// Replace a node's ACL; `version` (the node's `aversion`) -1 matches any.
    SetAcl {
        /// The node.
        path: String,
        /// The new ACL.
        acl: Vec<Acl>,
        /// Expected ACL version, or -1.
        version: i32,
    },
    /// `op` asked by a client connection holding `ids`, checked against the nodes' ACLs.
    /// Operations not wrapped are the servers' own (a session's end, the deletion of
    /// container and TTL nodes, a `sync`'s barrier), and the transactions logged before ACLs
    /// existed: nothing checks them.
    As {
        /// The identities of the connection that asked (shared with its session: a write
        /// copies no strings).
        ids: Arc<[Id]>,
        /// What it asked.
        op: Box<Op>,
    },
    /// The session moves to ensemble member `member` (a client resumed it there): from now
    /// on only writes that come [`Via`](Op::Via) that member are applied. With `after`, only
    /// if the session's last move is still the one at that zxid (0: none recorded), so a move
    /// decided on a stale view cannot undo a later one.
    Claim {
        /// The member that holds the session now.
        member: u64,
        /// The zxid of the move this one replaces, when it must be that one.
        after: Option<i64>,
    },
    /// `op`, a client's write that came through ensemble member `member`: applied only if the
    /// session has not moved to another member since (ZooKeeper's `SessionMovedException`).
    Via {
        /// The member the client's connection is on.
        member: u64,
        /// The write.
        op: Box<Op>,
    },
}

impl Op {
    /// The operation with its [`Op::Via`] taken off.
    pub fn unwrapped(&self) -> &Op {
        match self {
            Op::Via { op, .. } => op,
            op => op,
        }
    }
}

/// A transaction: an operation with the context every server applies it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// Its transaction id (increasing).
    pub zxid: i64,
    /// When it was accepted, ms since the epoch (chosen once, by whoever orders the log).
    pub time_ms: i64,
    /// The session that asked (owner of any ephemeral it creates).
    pub session: u64,
    /// What to do.
    pub op: Op,
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// The node was created at `path` (with its sequence suffix, if any).
    Created {
        /// The actual path.
        path: String,
        /// Its stat.
        stat: Stat,
    },
    /// The node was deleted.
    Deleted,
    /// The data was set.
    DataSet {
        /// The node's new stat.
        stat: Stat,
    },
    /// The check passed.
    Checked,
    /// Every op of a multi succeeded, with these results in order.
    Multi(Vec<OpResult>),
    /// The session was recorded.
    SessionCreated,
    /// The session's ephemeral nodes were deleted.
    SessionClosed {
        /// Their paths.
        deleted: Vec<String>,
    },
    /// The ACL was replaced.
    AclSet {
        /// The node's new stat.
        stat: Stat,
    },
}

/// A change to the tree, for firing watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A node was created.
    Created(String),
    /// A node was deleted.
    Deleted(String),
    /// A node's data changed.
    DataChanged(String),
    /// A node's set of children changed.
    ChildrenChanged(String),
}

/// The outcome of applying one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// What the operation returned.
    pub result: Result<OpResult, KeeperError>,
    /// What changed (empty when it failed).
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Node {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    stat: Stat,
    children: BTreeSet<String>,
    acl: Arc<[Acl]>,
}

/// A node as snapshots before ACLs (`SLKSNAP1`, the ensemble's unversioned snapshots)
/// hold it.
#[derive(Debug, Deserialize)]
struct NodeV1 {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    stat: Stat,
    children: BTreeSet<String>,
}

/// A tree as snapshots before ACLs hold it: read (then converted with `From`), never
/// written. Every node gets `world:anyone` with every permission, the ACL every node had.
#[derive(Debug, Deserialize)]
pub struct DataTreeV1 {
    nodes: HashMap<String, NodeV1>,
    last_zxid: i64,
}

impl From<DataTreeV1> for DataTree {
    fn from(v1: DataTreeV1) -> DataTree {
        let open = open_acl();
        let nodes = v1
            .nodes
            .into_iter()
            .map(|(p, n)| (p, Node { data: n.data, stat: n.stat, children: n.children, acl: open.clone() }))
            .collect();
        let mut tree = DataTree { nodes, ephemerals: HashMap::new(), last_zxid: v1.last_zxid, open };
        tree.rebuild_index();
        tree
    }
}

fn open_acl() -> Arc<[Acl]> {
    Arc::from(vec![Acl::open()])
}

/// Nodes saved before a multi changed them: path → the node as it was (`None`: absent).
#[derive(Default)]
struct Journal {
    active: bool,
    saved: HashMap<String, Option<Node>>,
}

/// The znode tree. Serializes (for snapshots) without its ephemeral index, which
/// [`DataTree::rebuild_index`] recomputes from the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataTree {
    nodes: HashMap<String, Node>,
    #[serde(skip)]
    ephemerals: HashMap<u64, BTreeSet<String>>,
    last_zxid: i64,
    /// `world:anyone` ALL, shared by every node created with [`Op::Create`].
    #[serde(skip, default = "open_acl")]
    open: Arc<[Acl]>,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A tree holding only the root `/`.
    pub fn new() -> Self {
        let open = open_acl();
        let mut nodes = HashMap::new();
        nodes.insert(
            "/".to_string(),
            Node { data: Vec::new(), stat: Stat::default(), children: BTreeSet::new(), acl: open.clone() },
        );
        DataTree { nodes, ephemerals: HashMap::new(), last_zxid: 0, open }
    }

    /// Recomputes the ephemeral index from the nodes (after loading a snapshot).
    pub fn rebuild_index(&mut self) {
        self.ephemerals.clear();
        for (path, node) in &self.nodes {
            if let Some(owner) = NodeKind::of(node.stat.ephemeral_owner).session() {
                self.ephemerals.entry(owner).or_default().insert(path.clone());
            }
        }
    }

    /// Whether the nodes form a tree (for a snapshot just read): the root is there, every
    /// path is valid, every node but the root is listed by its parent, and every listed
    /// child is one valid segment naming a node. A snapshot that passes its checksum but
    /// not this (found by the `keeper_snapshot` fuzz target: a child named "" made the root
    /// its own child, and getAllChildrenNumber never returned) is refused like a damaged one.
    pub fn check_consistent(&self) -> Result<(), String> {
        if !self.nodes.contains_key("/") {
            return Err("no root node".into());
        }
        for (p, node) in &self.nodes {
            path::validate(p).map_err(|e| e.to_string())?;
            if let Some(parent) = path::parent(p) {
                let listed = self.nodes.get(parent).is_some_and(|n| n.children.contains(path::name(p)));
                if !listed {
                    return Err(format!("{p} is not among its parent's children"));
                }
            }
            for c in &node.children {
                let child = path::join(p, c);
                if c.is_empty() || c.contains('/') || path::validate(&child).is_err() {
                    return Err(format!("{p} lists a child named {c:?}"));
                }
                if !self.nodes.contains_key(&child) {
                    return Err(format!("{p} lists {c:?}, which is not a node"));
                }
            }
        }
        Ok(())
    }

    /// Number of nodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// zxid of the last transaction applied.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// A node's data and stat (as clients see it: [`Stat::for_client`]).
    pub fn get(&self, path: &str) -> Result<(&[u8], Stat), KeeperError> {
        self.read(path, None, perms::READ).map(|n| (n.data.as_slice(), n.stat.for_client()))
    }

    /// [`DataTree::get`] for a client holding `ids`: READ on the node (NoNode first, then
    /// NoAuth, as ZooKeeper checks a read).
    pub fn get_as(&self, ids: &[Id], path: &str) -> Result<(&[u8], Stat), KeeperError> {
        self.read(path, Some(ids), perms::READ).map(|n| (n.data.as_slice(), n.stat.for_client()))
    }

    /// The node at `path`, if `who` (`None`: the server itself) may `perm` it.
    fn read(&self, path: &str, who: Option<&[Id]>, perm: i32) -> Result<&Node, KeeperError> {
        path::validate(path)?;
        let n = self.nodes.get(path).ok_or_else(|| KeeperError::NoNode { path: path.into() })?;
        allowed(who, &n.acl, perm, path)?;
        Ok(n)
    }

    /// A node's stat, if it exists.
    pub fn exists(&self, path: &str) -> Result<Option<Stat>, KeeperError> {
        path::validate(path)?;
        Ok(self.nodes.get(path).map(|n| n.stat.for_client()))
    }

    /// A node's children (names, sorted) and its stat.
    pub fn children(&self, path: &str) -> Result<(Vec<String>, Stat), KeeperError> {
        self.read(path, None, perms::READ)
            .map(|n| (n.children.iter().cloned().collect(), n.stat.for_client()))
    }

    /// [`DataTree::children`] for a client holding `ids`: READ on the node.
    pub fn children_as(&self, ids: &[Id], path: &str) -> Result<(Vec<String>, Stat), KeeperError> {
        self.read(path, Some(ids), perms::READ)
            .map(|n| (n.children.iter().cloned().collect(), n.stat.for_client()))
    }

    /// A node's ACL and stat.
    pub fn acl(&self, path: &str) -> Result<(&[Acl], Stat), KeeperError> {
        self.read(path, None, perms::READ).map(|n| (&*n.acl, n.stat.for_client()))
    }

    /// What kind of node `path` is (a container's or TTL node's `ephemeral_owner` is not
    /// shown to clients).
    pub fn kind(&self, path: &str) -> Option<NodeKind> {
        self.nodes.get(path).map(|n| NodeKind::of(n.stat.ephemeral_owner))
    }

    /// How many nodes lie below `path` (children, their children, ...), the node itself
    /// not counted (ZooKeeper's getAllChildrenNumber).
    pub fn descendants(&self, path: &str) -> Result<usize, KeeperError> {
        self.descendants_of(path, None)
    }

    /// [`DataTree::descendants`] for a client holding `ids`: READ on the node.
    pub fn descendants_as(&self, ids: &[Id], path: &str) -> Result<usize, KeeperError> {
        self.descendants_of(path, Some(ids))
    }

    fn descendants_of(&self, path: &str, who: Option<&[Id]>) -> Result<usize, KeeperError> {
        let n = self.read(path, who, perms::READ)?;
        let mut count = 0;
        let mut todo: Vec<String> = n.children.iter().map(|c| path::join(path, c)).collect();
        while let Some(p) = todo.pop() {
            count += 1;
            if let Some(node) = self.nodes.get(&p) {
                todo.extend(node.children.iter().map(|c| path::join(&p, c)));
            }
        }
        Ok(count)
    }

    /// The nodes the server deletes now (ZooKeeper's `ContainerManager`): containers that
    /// have had children (cversion > 0) and have none left, and nodes with a TTL that have
    /// no children and whose last change (mtime) is more than their TTL before `now_ms`.
    /// Each comes with its data version, for a conditional delete: a node changed or given a
    /// child meanwhile then stays. Sorted by path.
    pub fn reapable(&self, now_ms: i64) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.children.is_empty())
            .filter(|(_, n)| match NodeKind::of(n.stat.ephemeral_owner) {
                NodeKind::Container => n.stat.cversion > 0,
                NodeKind::Ttl(ttl) => now_ms.saturating_sub(n.stat.mtime) > ttl,
                _ => false,
            })
            .map(|(p, n)| (p.clone(), n.stat.version))
            .collect();
        out.sort();
        out
    }

    /// The ephemeral nodes a session owns, sorted.
    pub fn ephemerals(&self, session: u64) -> Vec<String> {
        self.ephemerals.get(&session).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Applies one transaction.
    pub fn apply(&mut self, txn: &Txn) -> Applied {
        self.apply_op(txn, &txn.op)
    }

    /// Applies `op` in the context of `txn` (its zxid, time and session): `txn`'s own op
    /// with its [`Op::Via`] taken off.
    pub fn apply_op(&mut self, txn: &Txn, op: &Op) -> Applied {
        self.last_zxid = self.last_zxid.max(txn.zxid);
        let mut changes = Vec::new();
        // A client's operation is checked against the ACLs with its identities; the
        // servers' own are not.
        let (who, op) = match op {
            Op::As { ids, op } => (Some(&**ids), op.as_ref()),
            op => (None, op),
        };
        let result = match op {
            Op::Multi(ops) => self.multi(txn, who, ops, &mut changes),
            op => self.apply_one(txn, who, op, &mut Journal::default(), &mut changes),
        };
        if result.is_err() {
            changes.clear();
        }
        Applied { result, changes }
    }

    fn multi(
        &mut self,
        txn: &Txn,
        who: Option<&[Id]>,
        ops: &[Op],
        changes: &mut Vec<Change>,
    ) -> Result<OpResult, KeeperError> {
        let mut journal = Journal { active: true, saved: HashMap::new() };
        let mut results = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            let outcome = match op {
                Op::Create { .. }
                | Op::CreateWithAcl { .. }
                | Op::Delete { .. }
                | Op::SetData { .. }
                | Op::Check { .. } => self.apply_one(txn, who, op, &mut journal, changes),
                _ => Err(KeeperError::BadArguments {
                    what: "multi may hold only create, delete, setData and check".into(),
                }),
            };
            match outcome {
                Ok(r) => results.push(r),
                Err(error) => {
                    self.roll_back(journal);
                    return Err(KeeperError::MultiFailed { index, error: Box::new(error) });
                }
            }
        }
        Ok(OpResult::Multi(results))
    }

    fn apply_one(
        &mut self,
        txn: &Txn,
        who: Option<&[Id]>,
        op: &Op,
        journal: &mut Journal,
        changes: &mut Vec<Change>,
    ) -> Result<OpResult, KeeperError> {
        match op {
            Op::Create { path, data, mode } => {
                let open = self.open.clone();
                self.create(txn, who, path, data, *mode, Acls::Stored(open), journal, changes)
            }
            Op::CreateWithAcl { path, data, mode, acl } => {
                self.create(txn, who, path, data, *mode, Acls::Written(acl), journal, changes)
            }
            Op::Delete { path, version } => self.delete(txn, who, path, *version, journal, changes),
            Op::SetData { path, data, version } => {
                self.set_data(txn, who, path, data, *version, journal, changes)
            }
            Op::Check { path, version } => {
                path::validate(path)?;
                let n = self.nodes.get(path).ok_or_else(|| KeeperError::NoNode { path: path.clone() })?;
                allowed(who, &n.acl, perms::READ, path)?;
                check_version(path, *version, n.stat.version)?;
                Ok(OpResult::Checked)
            }
            Op::SetAcl { path, acl, version } => self.set_acl(who, path, acl, *version),
            Op::CloseSession if who.is_none() => {
                let deleted = self.ephemerals(txn.session);
                for p in &deleted {
                    self.delete(txn, None, p, -1, journal, changes)?;
                }
                Ok(OpResult::SessionClosed { deleted })
            }
            Op::CreateSession { .. } if who.is_none() => Ok(OpResult::SessionCreated),
            Op::CreateSession { .. } | Op::CloseSession => {
                Err(KeeperError::BadArguments { what: "session operations are not a client's writes".into() })
            }
            Op::Multi(_) => Err(KeeperError::BadArguments { what: "nested multi".into() }),
            // The session table's (see `KeeperState::apply`); nothing changes in the tree.
            Op::Claim { .. } if who.is_none() => Ok(OpResult::Checked),
            Op::Claim { .. } | Op::Via { .. } => {
                Err(KeeperError::BadArguments { what: "session moves are not a client's writes".into() })
            }
            Op::As { .. } => {
                Err(KeeperError::BadArguments { what: "an operation is asked by one connection".into() })
            }
        }
    }

    fn set_acl(
        &mut self,
        who: Option<&[Id]>,
        path: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<OpResult, KeeperError> {
        path::validate(path)?;
        let acl = acl::fixup(acl, who.unwrap_or_default(), path)?;
        let node = self.nodes.get_mut(path).ok_or_else(|| KeeperError::NoNode { path: path.into() })?;
        allowed(who, &node.acl, perms::ADMIN, path)?;
        check_version(path, version, node.stat.aversion)?;
        node.acl = if acl == [Acl::open()] { self.open.clone() } else { Arc::from(acl) };
        node.stat.aversion += 1;
        Ok(OpResult::AclSet { stat: node.stat.for_client() })
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        txn: &Txn,
        who: Option<&[Id]>,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        acl: Acls<'_>,
        journal: &mut Journal,
        changes: &mut Vec<Change>,
    ) -> Result<OpResult, KeeperError> {
        if path == "/" {
            return Err(KeeperError::NodeExists { path: path.into() });
        }
        // A sequential prefix may end with '/' (ZooKeeper checks it with a digit appended).
        path::validate(&if mode.is_sequential() { format!("{path}0") } else { path.to_string() })?;
        if data.len() > MAX_DATA {
            return Err(KeeperError::DataTooLarge { path: path.into(), size: data.len(), max: MAX_DATA });
        }
        // As ZooKeeper's PrepRequestProcessor: the ACL is fixed up, then the parent must
        // exist and let the connection create.
        let acl = match acl {
            Acls::Stored(a) => a,
            Acls::Written(a) => {
                let fixed = acl::fixup(a, who.unwrap_or_default(), path)?;
                if fixed == [Acl::open()] {
                    self.open.clone()
                } else {
                    Arc::from(fixed)
                }
            }
        };
        let parent_path = path::parent(path).unwrap_or("/").to_string();
        let parent =
            self.nodes.get(&parent_path).ok_or_else(|| KeeperError::NoNode { path: parent_path.clone() })?;
        allowed(who, &parent.acl, perms::CREATE, path)?;
        if NodeKind::of(parent.stat.ephemeral_owner).session().is_some() {
            return Err(KeeperError::NoChildrenForEphemerals { path: path.into() });
        }
        let actual = if mode.is_sequential() {
            path::sequential(path, parent.stat.cversion)
        } else {
            path.to_string()
        };
        if self.nodes.contains_key(&actual) {
            return Err(KeeperError::NodeExists { path: actual });
        }
        let owner = mode.owner(txn.session)?;
        let stat = Stat {
            czxid: txn.zxid,
            mzxid: txn.zxid,
            pzxid: txn.zxid,
            ctime: txn.time_ms,
            mtime: txn.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            data_length: data.len() as i32,
            num_children: 0,
        };
        self.save(journal, &parent_path);
        self.save(journal, &actual);
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.children.insert(path::name(&actual).to_string());
            parent.stat.cversion += 1;
            parent.stat.pzxid = txn.zxid;
            parent.stat.num_children = parent.children.len() as i32;
        }
        self.nodes.insert(actual.clone(), Node { data: data.to_vec(), stat, children: BTreeSet::new(), acl });
        if let Some(session) = NodeKind::of(owner).session() {
            self.ephemerals.entry(session).or_default().insert(actual.clone());
        }
        changes.push(Change::Created(actual.clone()));
        changes.push(Change::ChildrenChanged(parent_path));
        Ok(OpResult::Created { path: actual, stat: stat.for_client() })
    }

    fn delete(
        &mut self,
        txn: &Txn,
        who: Option<&[Id]>,
        path: &str,
        version: i32,
        journal: &mut Journal,
        changes: &mut Vec<Change>,
    ) -> Result<OpResult, KeeperError> {
        path::validate(path)?;
        if path == "/" {
            return Err(KeeperError::BadArguments { what: "the root node cannot be deleted".into() });
        }
        let parent_path = path::parent(path).unwrap_or("/").to_string();
        if let Some(parent) = self.nodes.get(&parent_path) {
            allowed(who, &parent.acl, perms::DELETE, path)?;
        }
        let node = self.nodes.get(path).ok_or_else(|| KeeperError::NoNode { path: path.into() })?;
        check_version(path, version, node.stat.version)?;
        if !node.children.is_empty() {
            return Err(KeeperError::NotEmpty { path: path.into(), children: node.children.len() });
        }
        self.save(journal, &parent_path);
        self.save(journal, path);
        if let Some(node) = self.nodes.remove(path) {
            self.forget_ephemeral(path, &node);
        }
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.children.remove(path::name(path));
            parent.stat.cversion += 1;
            parent.stat.pzxid = txn.zxid;
            parent.stat.num_children = parent.children.len() as i32;
        }
        changes.push(Change::Deleted(path.to_string()));
        changes.push(Change::ChildrenChanged(parent_path));
        Ok(OpResult::Deleted)
    }

    #[allow(clippy::too_many_arguments)]
    fn set_data(
        &mut self,
        txn: &Txn,
        who: Option<&[Id]>,
        path: &str,
        data: &[u8],
        version: i32,
        journal: &mut Journal,
        changes: &mut Vec<Change>,
    ) -> Result<OpResult, KeeperError> {
        path::validate(path)?;
        if data.len() > MAX_DATA {
            return Err(KeeperError::DataTooLarge { path: path.into(), size: data.len(), max: MAX_DATA });
        }
        let node = self.nodes.get(path).ok_or_else(|| KeeperError::NoNode { path: path.into() })?;
        allowed(who, &node.acl, perms::WRITE, path)?;
        check_version(path, version, node.stat.version)?;
        self.save(journal, path);
        let node = self.nodes.get_mut(path).ok_or_else(|| KeeperError::NoNode { path: path.into() })?;
        node.data = data.to_vec();
        node.stat.version += 1;
        node.stat.mzxid = txn.zxid;
        node.stat.mtime = txn.time_ms;
        node.stat.data_length = data.len() as i32;
        changes.push(Change::DataChanged(path.to_string()));
        Ok(OpResult::DataSet { stat: node.stat.for_client() })
    }

    /// Remembers `path` as it is now, the first time a multi touches it.
    fn save(&self, journal: &mut Journal, path: &str) {
        if journal.active && !journal.saved.contains_key(path) {
            journal.saved.insert(path.to_string(), self.nodes.get(path).cloned());
        }
    }

    /// Puts every node a failed multi touched back as it was.
    fn roll_back(&mut self, journal: Journal) {
        for (path, before) in journal.saved {
            if let Some(now) = self.nodes.remove(&path) {
                self.forget_ephemeral(&path, &now);
            }
            if let Some(node) = before {
                if let Some(owner) = NodeKind::of(node.stat.ephemeral_owner).session() {
                    self.ephemerals.entry(owner).or_default().insert(path.clone());
                }
                self.nodes.insert(path, node);
            }
        }
    }

    fn forget_ephemeral(&mut self, path: &str, node: &Node) {
        if let Some(owner) = NodeKind::of(node.stat.ephemeral_owner).session() {
            if let Some(set) = self.ephemerals.get_mut(&owner) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&owner);
                }
            }
        }
    }
}

/// The ACL a create gives its node: one already stored (shared), or one a client wrote.
enum Acls<'a> {
    Stored(Arc<[Acl]>),
    Written(&'a [Acl]),
}

/// A client's operation (`who`: its identities) must be allowed `perm` by `acl`; the
/// servers' own operations (`None`) are not checked.
fn allowed(who: Option<&[Id]>, acl: &[Acl], perm: i32, path: &str) -> Result<(), KeeperError> {
    match who {
        Some(ids) => acl::check(acl, perm, ids, path),
        None => Ok(()),
    }
}

fn check_version(path: &str, expected: i32, actual: i32) -> Result<(), KeeperError> {
    if expected != -1 && expected != actual {
        return Err(KeeperError::BadVersion { path: path.into(), expected, actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    /// Applies ops with increasing zxids at time 1000 + zxid, as session 0x5e55.
    struct T {
        tree: DataTree,
        zxid: i64,
    }

    const S1: u64 = 0x5e55;
    const S2: u64 = 0x7e57;

    impl T {
        fn new() -> Self {
            T { tree: DataTree::new(), zxid: 0 }
        }
        fn as_session(&mut self, session: u64, op: Op) -> Applied {
            self.zxid += 1;
            self.tree.apply(&Txn { zxid: self.zxid, time_ms: 1000 + self.zxid, session, op })
        }
        fn run(&mut self, op: Op) -> Result<OpResult, KeeperError> {
            self.as_session(S1, op).result
        }
        fn create(&mut self, path: &str, mode: CreateMode) -> Result<OpResult, KeeperError> {
            self.run(Op::Create { path: path.into(), data: b"d".to_vec(), mode })
        }
        fn created_path(&mut self, path: &str, mode: CreateMode) -> String {
            match self.create(path, mode) {
                Ok(OpResult::Created { path, .. }) => path,
                other => panic!("create {path}: {other:?}"),
            }
        }
    }

    fn p() -> CreateMode {
        CreateMode::Persistent
    }

    #[test]
    fn a_tree_made_by_transactions_is_consistent_and_a_damaged_one_is_not() {
        let mut t = T::new();
        t.create("/a", p()).expect("create /a");
        t.create("/a/b", CreateMode::Ephemeral).expect("create /a/b");
        t.created_path("/a/seq-", CreateMode::PersistentSequential);
        assert_eq!(t.tree.check_consistent(), Ok(()));
        // A child named "" makes the root its own child (getAllChildrenNumber never ended).
        let mut looped = t.tree.clone();
        looped.nodes.get_mut("/").expect("root").children.insert(String::new());
        assert!(looped.check_consistent().is_err_and(|e| e.contains("a child named \"\"")));
        // A node its parent does not list, and a listed child that is not a node.
        let mut orphan = t.tree.clone();
        orphan.nodes.get_mut("/a").expect("/a").children.remove("b");
        assert!(orphan.check_consistent().is_err_and(|e| e.contains("/a/b is not among")));
        let mut ghost = t.tree.clone();
        ghost.nodes.get_mut("/a").expect("/a").children.insert("ghost".into());
        assert!(ghost.check_consistent().is_err_and(|e| e.contains("not a node")));
    }

    #[test]
    fn create_sets_the_nodes_stat_and_bumps_the_parents_cversion_and_pzxid() {
        let mut t = T::new();
        t.create("/a", p()).expect("create /a");
        let (data, stat) = t.tree.get("/a").expect("get");
        assert_eq!(data, b"d");
        assert_eq!(
            stat,
            Stat {
                czxid: 1,
                mzxid: 1,
                pzxid: 1,
                ctime: 1001,
                mtime: 1001,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: 0,
                data_length: 1,
                num_children: 0
            }
        );
        let (children, root) = t.tree.children("/").expect("children");
        assert_eq!(children, vec!["a"]);
        assert_eq!((root.cversion, root.pzxid, root.num_children), (1, 1, 1));
    }

    #[test]
    fn each_error_code_is_produced_with_its_reason() {
        let mut t = T::new();
        t.create("/a", p()).expect("create");
        t.create("/a/b", p()).expect("create");
        t.create("/e", CreateMode::Ephemeral).expect("create");
        let cases: Vec<(Op, ErrorCode)> = vec![
            (Op::Create { path: "/x/y".into(), data: vec![], mode: p() }, ErrorCode::NoNode),
            (Op::Create { path: "/a".into(), data: vec![], mode: p() }, ErrorCode::NodeExists),
            (Op::Create { path: "/".into(), data: vec![], mode: p() }, ErrorCode::NodeExists),
            (
                Op::Create { path: "/e/child".into(), data: vec![], mode: p() },
                ErrorCode::NoChildrenForEphemerals,
            ),
            (
                Op::Create { path: "/big".into(), data: vec![0; MAX_DATA + 1], mode: p() },
                ErrorCode::BadArguments,
            ),
            (Op::Create { path: "bad".into(), data: vec![], mode: p() }, ErrorCode::BadArguments),
            (Op::Delete { path: "/a".into(), version: -1 }, ErrorCode::NotEmpty),
            (Op::Delete { path: "/a/b".into(), version: 3 }, ErrorCode::BadVersion),
            (Op::Delete { path: "/nope".into(), version: -1 }, ErrorCode::NoNode),
            (Op::Delete { path: "/".into(), version: -1 }, ErrorCode::BadArguments),
            (Op::SetData { path: "/a".into(), data: vec![], version: 9 }, ErrorCode::BadVersion),
            (Op::SetData { path: "/nope".into(), data: vec![], version: -1 }, ErrorCode::NoNode),
            (Op::Check { path: "/a".into(), version: 1 }, ErrorCode::BadVersion),
        ];
        let before = t.tree.clone();
        for (op, code) in cases {
            let applied = t.as_session(S1, op.clone());
            let err = applied.result.expect_err(&format!("{op:?} must fail"));
            assert_eq!(err.code(), code, "{op:?}: {err}");
            assert!(applied.changes.is_empty(), "a failed op changes nothing");
        }
        assert_eq!(t.tree.nodes, before.nodes, "failed ops left the tree as it was");
        let err = t
            .run(Op::Create { path: "/big".into(), data: vec![0; MAX_DATA + 1], mode: p() })
            .expect_err("big");
        assert_eq!(
            err.to_string(),
            format!("data for /big is {} bytes; the limit is {MAX_DATA} bytes", MAX_DATA + 1)
        );
    }

    #[test]
    fn set_bumps_version_and_conditional_writes_use_it() {
        let mut t = T::new();
        t.create("/v", p()).expect("create");
        let s1 = match t.run(Op::SetData { path: "/v".into(), data: b"one".to_vec(), version: 0 }) {
            Ok(OpResult::DataSet { stat }) => stat,
            other => panic!("{other:?}"),
        };
        assert_eq!((s1.version, s1.mzxid, s1.czxid, s1.data_length), (1, 2, 1, 3));
        let err =
            t.run(Op::SetData { path: "/v".into(), data: b"two".to_vec(), version: 0 }).expect_err("stale");
        assert_eq!(err, KeeperError::BadVersion { path: "/v".into(), expected: 0, actual: 1 });
        t.run(Op::SetData { path: "/v".into(), data: b"two".to_vec(), version: 1 }).expect("current version");
        t.run(Op::Delete { path: "/v".into(), version: 2 }).expect("delete at version");
    }

    #[test]
    fn sequential_names_count_from_the_parents_cversion_with_ten_digits() {
        let mut t = T::new();
        t.create("/q", p()).expect("create");
        assert_eq!(t.created_path("/q/item-", CreateMode::PersistentSequential), "/q/item-0000000000");
        t.create("/q/other", p()).expect("create");
        assert_eq!(t.created_path("/q/item-", CreateMode::EphemeralSequential), "/q/item-0000000002");
        t.run(Op::Delete { path: "/q/other".into(), version: -1 }).expect("delete");
        // Deletions count too: the counter never goes back.
        assert_eq!(t.created_path("/q/", CreateMode::PersistentSequential), "/q/0000000004");
    }

    #[test]
    fn closing_a_session_deletes_exactly_its_ephemerals_with_their_changes() {
        let mut t = T::new();
        t.create("/brokers", p()).expect("create");
        t.as_session(S1, Op::Create { path: "/brokers/1".into(), data: vec![], mode: CreateMode::Ephemeral });
        t.as_session(S2, Op::Create { path: "/brokers/2".into(), data: vec![], mode: CreateMode::Ephemeral });
        t.as_session(
            S1,
            Op::Create { path: "/controller".into(), data: vec![], mode: CreateMode::Ephemeral },
        );
        assert_eq!(t.tree.ephemerals(S1), vec!["/brokers/1", "/controller"]);
        let applied = t.as_session(S1, Op::CloseSession);
        assert_eq!(
            applied.result,
            Ok(OpResult::SessionClosed { deleted: vec!["/brokers/1".into(), "/controller".into()] })
        );
        assert_eq!(
            applied.changes,
            vec![
                Change::Deleted("/brokers/1".into()),
                Change::ChildrenChanged("/brokers".into()),
                Change::Deleted("/controller".into()),
                Change::ChildrenChanged("/".into()),
            ]
        );
        assert_eq!(t.tree.children("/brokers").expect("children").0, vec!["2"]);
        assert!(t.tree.ephemerals(S1).is_empty());
        assert_eq!(t.tree.ephemerals(S2), vec!["/brokers/2"]);
    }

    #[test]
    fn a_failed_multi_changes_nothing_and_says_which_op_failed() {
        let mut t = T::new();
        t.create("/a", p()).expect("create");
        t.as_session(S1, Op::Create { path: "/eph".into(), data: vec![], mode: CreateMode::Ephemeral });
        let before = t.tree.clone();
        let applied = t.as_session(
            S1,
            Op::Multi(vec![
                Op::Create { path: "/a/x".into(), data: b"1".to_vec(), mode: p() },
                Op::SetData { path: "/a".into(), data: b"changed".to_vec(), version: 0 },
                Op::Delete { path: "/eph".into(), version: -1 },
                Op::Create { path: "/a/x/y".into(), data: vec![], mode: CreateMode::Ephemeral },
                Op::Check { path: "/a".into(), version: 0 }, // fails: the set above made it 1
                Op::Create { path: "/never".into(), data: vec![], mode: p() },
            ]),
        );
        match applied.result {
            Err(KeeperError::MultiFailed { index, error }) => {
                assert_eq!(index, 4);
                assert_eq!(error.code(), ErrorCode::BadVersion);
            }
            other => panic!("expected MultiFailed, got {other:?}"),
        }
        assert!(applied.changes.is_empty());
        assert_eq!(t.tree.nodes, before.nodes, "every node is back as it was");
        assert_eq!(t.tree.ephemerals, before.ephemerals, "the ephemeral index too");
    }

    #[test]
    fn a_successful_multi_sees_its_own_earlier_ops() {
        let mut t = T::new();
        let applied = t.run(Op::Multi(vec![
            Op::Create { path: "/m".into(), data: vec![], mode: p() },
            Op::Create { path: "/m/child".into(), data: vec![], mode: p() },
            Op::SetData { path: "/m".into(), data: b"x".to_vec(), version: 0 },
            Op::Check { path: "/m".into(), version: 1 },
        ]));
        match applied {
            Ok(OpResult::Multi(r)) => assert_eq!(r.len(), 4),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.tree.get("/m").expect("get").1.num_children, 1);
    }

    #[test]
    fn multi_refuses_nested_multi_and_session_ops() {
        let mut t = T::new();
        let err = t.run(Op::Multi(vec![Op::Multi(vec![])])).expect_err("nested");
        assert!(matches!(err, KeeperError::MultiFailed { index: 0, .. }), "{err}");
        assert_eq!(err.code(), ErrorCode::BadArguments);
    }

    #[test]
    fn reads_validate_paths_and_report_missing_nodes() {
        let t = T::new();
        assert_eq!(t.tree.exists("/none"), Ok(None));
        assert_eq!(t.tree.get("/none").expect_err("none").code(), ErrorCode::NoNode);
        assert_eq!(t.tree.children("a/b").expect_err("bad").code(), ErrorCode::BadArguments);
    }

    #[test]
    fn the_same_transactions_give_the_same_tree() {
        let ops = |t: &mut T| {
            t.create("/a", p()).expect("a");
            t.created_path("/a/s-", CreateMode::EphemeralSequential);
            t.run(Op::SetData { path: "/a".into(), data: b"z".to_vec(), version: -1 }).expect("set");
            t.as_session(S1, Op::CloseSession);
        };
        let (mut x, mut y) = (T::new(), T::new());
        ops(&mut x);
        ops(&mut y);
        assert_eq!(x.tree, y.tree);
        assert_eq!(x.tree.last_zxid(), 4);
    }

    fn alice() -> Vec<Id> {
        vec![Id::new("ip", "127.0.0.1"), Id::new("x509", "alice")]
    }

    fn bob() -> Vec<Id> {
        vec![Id::new("ip", "127.0.0.1"), Id::new("x509", "bob")]
    }

    fn as_(ids: Vec<Id>, op: Op) -> Op {
        Op::As { ids: ids.into(), op: Box::new(op) }
    }

    fn code(r: Result<OpResult, KeeperError>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }

    /// `/owned` belongs to alice (all permissions), everyone may read it.
    fn owned() -> T {
        let mut t = T::new();
        let acl = vec![Acl::new(perms::ALL, "auth", ""), Acl::read_only()];
        let create = Op::CreateWithAcl { path: "/owned".into(), data: b"d".to_vec(), mode: p(), acl };
        t.run(as_(alice(), create)).expect("alice creates /owned");
        t
    }

    #[test]
    fn a_clients_writes_need_zookeepers_permissions() {
        let mut t = owned();
        let (acl, _) = t.tree.acl("/owned").expect("acl");
        assert_eq!(acl, [Acl::new(perms::ALL, "x509", "alice"), Acl::read_only()], "auth became alice");
        let child = || Op::Create { path: "/owned/c".into(), data: vec![], mode: p() };
        let set = || Op::SetData { path: "/owned".into(), data: b"x".to_vec(), version: -1 };
        let del = || Op::Delete { path: "/owned/c".into(), version: -1 };
        assert_eq!(
            code(t.run(as_(bob(), child()))),
            Some(ErrorCode::NoAuth),
            "create needs CREATE on the parent"
        );
        assert_eq!(code(t.run(as_(bob(), set()))), Some(ErrorCode::NoAuth), "setData needs WRITE");
        assert_eq!(
            code(t.run(as_(bob(), Op::Check { path: "/owned".into(), version: 0 }))),
            None,
            "check needs READ"
        );
        t.run(as_(alice(), child())).expect("alice creates a child");
        assert_eq!(
            code(t.run(as_(bob(), del()))),
            Some(ErrorCode::NoAuth),
            "delete needs DELETE on the parent"
        );
        t.run(as_(alice(), del())).expect("alice deletes it");
        assert_eq!(
            code(t.run(as_(bob(), Op::Delete { path: "/owned".into(), version: -1 }))),
            None,
            "the root lets everyone"
        );
        let mut t = owned();
        t.run(child()).expect("the servers' own operations are not checked");
        t.run(as_(vec![crate::acl::super_id()], set())).expect("a super user may do anything");
        assert_eq!(t.tree.get("/owned").expect("get").0, b"x");
    }

    #[test]
    fn set_acl_needs_admin_and_the_acl_version() {
        let mut t = owned();
        let set =
            |version| Op::SetAcl { path: "/owned".into(), acl: vec![Acl::new(31, "x509", "bob")], version };
        assert_eq!(code(t.run(as_(bob(), set(-1)))), Some(ErrorCode::NoAuth));
        assert_eq!(code(t.run(as_(alice(), set(3)))), Some(ErrorCode::BadVersion), "a stale version fails");
        match t.run(as_(alice(), set(0))) {
            Ok(OpResult::AclSet { stat }) => assert_eq!((stat.aversion, stat.version), (1, 0)),
            other => panic!("setAcl: {other:?}"),
        }
        assert_eq!(code(t.run(as_(alice(), set(1)))), Some(ErrorCode::NoAuth), "alice gave it away");
        let bad = Op::SetAcl { path: "/owned".into(), acl: vec![Acl::new(31, "digest", "x")], version: -1 };
        assert_eq!(code(t.run(as_(bob(), bad))), Some(ErrorCode::InvalidAcl));
        assert_eq!(
            code(t.run(as_(bob(), Op::Multi(vec![set(-1)])))),
            Some(ErrorCode::BadArguments),
            "not in a multi"
        );
    }

    #[test]
    fn a_multi_with_one_forbidden_op_applies_nothing() {
        let mut t = owned();
        let before = t.tree.clone();
        let multi = Op::Multi(vec![
            Op::Create { path: "/free".into(), data: vec![], mode: p() },
            Op::SetData { path: "/owned".into(), data: b"x".to_vec(), version: -1 },
        ]);
        match t.run(as_(bob(), multi)) {
            Err(KeeperError::MultiFailed { index: 1, error }) => assert_eq!(error.code(), ErrorCode::NoAuth),
            other => panic!("multi: {other:?}"),
        }
        assert_eq!(t.tree.nodes, before.nodes, "the first op was rolled back");
        let nested = as_(bob(), as_(alice(), Op::Create { path: "/x".into(), data: vec![], mode: p() }));
        assert_eq!(code(t.run(nested)), Some(ErrorCode::BadArguments), "one connection asks");
        assert_eq!(code(t.run(as_(bob(), Op::CloseSession))), Some(ErrorCode::BadArguments));
    }

    #[test]
    fn a_tree_from_before_acls_gives_every_node_the_open_acl() {
        let mut t = T::new();
        t.create("/a", CreateMode::Ephemeral).expect("create");
        #[derive(Serialize)]
        struct NodeV1<'a> {
            #[serde(with = "serde_bytes")]
            data: &'a [u8],
            stat: Stat,
            children: &'a BTreeSet<String>,
        }
        #[derive(Serialize)]
        struct TreeV1<'a> {
            nodes: HashMap<&'a str, NodeV1<'a>>,
            last_zxid: i64,
        }
        let v1 = TreeV1 {
            nodes: t
                .tree
                .nodes
                .iter()
                .map(|(p, n)| (p.as_str(), NodeV1 { data: &n.data, stat: n.stat, children: &n.children }))
                .collect(),
            last_zxid: t.tree.last_zxid,
        };
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&v1, config).expect("encode");
        let (read, _): (DataTreeV1, _) = bincode::serde::decode_from_slice(&bytes, config).expect("decode");
        let tree = DataTree::from(read);
        assert_eq!(tree, t.tree, "same nodes, the open ACL, the ephemeral index rebuilt");
        assert_eq!(tree.ephemerals(S1), ["/a"]);
    }
}
