//! `sluice-keeper/1`: what a keeper client and server say to each other.
//!
//! A session runs on one ordered channel: the first request is [`Connect`], then requests
//! are answered in order and watch events arrive as pushes, each before any reply that
//! reflects its change. [`Status`] is a plain call (no session needed), for
//! `sluice keeper status`.
//!
//! Every read reply carries the zxid the server had applied when it answered, and every
//! watch event the zxid that fired it: the client keeps the highest it has seen and, after
//! reconnecting, re-sends its watches with it ([`SetWatches`]) so that the server fires what
//! the client missed and registers the rest.

use serde::{Deserialize, Serialize};
use sluice_keeper_core::{
    Acl, CreateMode, EventType, Id, KeeperError, Op, OpResult, Stat, WatchKind, WatchSet,
};

/// Opens or resumes a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connect {
    /// The timeout the client asks for, ms.
    pub timeout_ms: u32,
    /// A session to resume: id and password.
    pub resume: Option<(u64, [u8; 16])>,
    /// The newest zxid the client has seen; a server that has not applied it yet refuses
    /// the connection ([`KeeperError::Behind`]) so the client never goes back in time.
    pub seen_zxid: i64,
}

/// The session the server gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connected {
    /// Session id.
    pub session: u64,
    /// The secret for resuming it.
    pub password: [u8; 16],
    /// The negotiated timeout, ms.
    pub timeout_ms: u32,
}

/// Keeps the session alive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ping;

/// A change: create, delete, setData, check or multi (as [`Op`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Write(pub Op);

/// Read a node's data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetData {
    /// The node.
    pub path: String,
    /// Leave a one-shot data watch.
    pub watch: bool,
}

/// Data and stat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeData {
    /// The data.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The stat.
    pub stat: Stat,
    /// The zxid the server had applied when it answered.
    pub zxid: i64,
}

/// Whether a node exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exists {
    /// The node.
    pub path: String,
    /// Leave a one-shot data watch (fires on creation if the node is missing).
    pub watch: bool,
}

/// A node's children.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetChildren {
    /// The node.
    pub path: String,
    /// Leave a one-shot child watch.
    pub watch: bool,
}

/// Children names (sorted) and the node's stat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Children {
    /// Names.
    pub children: Vec<String>,
    /// The node's stat.
    pub stat: Stat,
    /// The zxid the server had applied when it answered.
    pub zxid: i64,
}

/// Whether a node exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Existence {
    /// Its stat, if it exists.
    pub stat: Option<Stat>,
    /// The zxid the server had applied when it answered.
    pub zxid: i64,
}

/// Re-registers a reconnected client's watches; sent first on a resumed session's channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetWatches {
    /// The highest zxid the client has heard of: watches whose nodes changed after it fire
    /// at once instead of being registered.
    pub seen_zxid: i64,
    /// The watches.
    pub watches: WatchSet,
}

/// Waits until the server has applied every write committed before it; the reply is the
/// zxid it has applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The path (as ZooKeeper's; it scopes nothing on one server).
    pub path: String,
}

/// Adds a persistent or persistent-recursive watch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddWatch {
    /// The node.
    pub path: String,
    /// `Persistent` or `PersistentRecursive`.
    pub kind: WatchKind,
}

/// The session's ephemeral nodes under a prefix (ZooKeeper's getEphemerals).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetEphemerals {
    /// Only paths starting with it (`/` for all).
    pub prefix: String,
}

/// How many nodes lie below a node (ZooKeeper's getAllChildrenNumber).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountDescendants {
    /// The node.
    pub path: String,
}

/// Removes (or with `check_only`, looks for) the session's watches on a node (ZooKeeper's
/// removeWatches / checkWatches); `KeeperError::NoWatcher` when it has none of `kinds`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveWatches {
    /// The node.
    pub path: String,
    /// Which watches.
    pub kinds: Vec<WatchKind>,
    /// Only check.
    pub check_only: bool,
}

/// Ends the session (its ephemeral nodes go at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Close;

/// The server's health and load (`ruok`, `stat`, `mntr`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status;

/// What `Status` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerStatus {
    /// `standalone`, `leader`, `follower` or `candidate`.
    pub mode: String,
    /// zxid of the last transaction applied.
    pub last_zxid: i64,
    /// Number of znodes.
    pub znodes: usize,
    /// Live sessions.
    pub sessions: usize,
    /// Registered watches.
    pub watches: usize,
    /// Writes waiting for their fsync.
    pub outstanding: usize,
    /// Request latency since start, ms: min, average, max.
    pub latency_ms: (f64, f64, f64),
    /// Software version.
    pub version: String,
    /// The ensemble as this server sees it (`None` for a standalone server).
    pub ensemble: Option<EnsembleStatus>,
}

/// One ensemble member's view of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleStatus {
    /// This server's id (`myid`).
    pub my_id: u64,
    /// The Raft term (ZooKeeper's epoch).
    pub term: u64,
    /// The leader this server follows (or is), if any.
    pub leader: Option<u64>,
    /// The zxid of the last committed transaction this server has applied.
    pub last_committed: i64,
    /// The Raft log index this server has applied up to (a zxid is `index << 16 | position`:
    /// one log entry carries a batch of transactions).
    pub log_index: u64,
    /// The members: id and peer address.
    pub members: Vec<(u64, String)>,
}

/// Read a node's ACL (ZooKeeper's getACL).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetAcl {
    /// The node.
    pub path: String,
}

/// A node's ACL and stat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeAcl {
    /// The ACL (digest hashes hidden unless the reader holds ADMIN).
    pub acl: Vec<Acl>,
    /// The node's stat (`aversion` counts ACL changes).
    pub stat: Stat,
    /// The zxid the server had applied.
    pub zxid: i64,
}

/// Adds an identity to the connection (ZooKeeper's `addauth`): scheme `digest` with
/// `user:password`. The certificate's `x509` identity and the address's `ip` identity are
/// held from the start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddAuth {
    /// The scheme (`digest`).
    pub scheme: String,
    /// What proves the identity (`user:password`).
    #[serde(with = "serde_bytes")]
    pub auth: Vec<u8>,
}

/// Pushed to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeeperPush {
    /// A watch fired.
    Watch {
        /// What happened.
        event: EventType,
        /// To which node (server-side path; the client strips its chroot).
        path: String,
        /// The transaction that did it.
        zxid: i64,
    },
    /// The session expired; the channel ends after this.
    SessionExpired,
    /// The server lost (`true`) or regained (`false`) its ensemble's quorum. Without one,
    /// reads answer from what the server has (they may be stale) and writes fail with "no
    /// quorum" (ZooKeeper's read-only mode).
    ReadOnly(bool),
}

sluice_net::protocol! {
    /// The keeper protocol.
    pub protocol KeeperProtocol {
        alpn: "sluice-keeper/1",
        request: KeeperRequest,
        response: KeeperResponse,
        push: KeeperPush,
        handler: KeeperHandler,
        rpcs: {
            connect: Connect(Connect) -> Result<Connected, KeeperError>;
            ping: Ping(Ping) -> Result<i64, KeeperError>;
            write: Write(Write) -> Result<OpResult, KeeperError>;
            get_data: GetData(GetData) -> Result<NodeData, KeeperError>;
            exists: Exists(Exists) -> Result<Existence, KeeperError>;
            get_children: GetChildren(GetChildren) -> Result<Children, KeeperError>;
            sync: Sync(SyncRequest) -> Result<i64, KeeperError>;
            add_watch: AddWatch(AddWatch) -> Result<i64, KeeperError>;
            set_watches: SetWatches(SetWatches) -> Result<i64, KeeperError>;
            close: Close(Close) -> Result<(), KeeperError>;
            status: Status(Status) -> ServerStatus;
            get_ephemerals: GetEphemerals(GetEphemerals) -> Result<Vec<String>, KeeperError>;
            count_descendants: CountDescendants(CountDescendants) -> Result<u64, KeeperError>;
            remove_watches: RemoveWatches(RemoveWatches) -> Result<(), KeeperError>;
            get_acl: GetAcl(GetAcl) -> Result<NodeAcl, KeeperError>;
            add_auth: AddAuth(AddAuth) -> Result<Vec<Id>, KeeperError>;
        }
    }
}

impl KeeperRequest {
    /// Whether the request goes through the transaction log (a write, `sync`, `close`)
    /// rather than being answered from the server's applied state. A session's later reads
    /// wait for its writes; in an ensemble, these are what a follower forwards.
    pub fn is_write(&self) -> bool {
        matches!(self, KeeperRequest::Write(_) | KeeperRequest::Sync(_) | KeeperRequest::Close(_))
    }
}

impl KeeperResponse {
    /// The error the response carries, if it is one.
    pub fn error(&self) -> Option<&KeeperError> {
        use KeeperResponse as A;
        match self {
            A::Connect(Err(e))
            | A::Ping(Err(e))
            | A::Write(Err(e))
            | A::GetData(Err(e))
            | A::Exists(Err(e))
            | A::GetChildren(Err(e))
            | A::Sync(Err(e))
            | A::AddWatch(Err(e))
            | A::SetWatches(Err(e))
            | A::Close(Err(e))
            | A::GetEphemerals(Err(e))
            | A::CountDescendants(Err(e))
            | A::RemoveWatches(Err(e))
            | A::GetAcl(Err(e))
            | A::AddAuth(Err(e)) => Some(e),
            _ => None,
        }
    }
}

/// Shorthand for a create op.
pub fn create(path: impl Into<String>, data: impl Into<Vec<u8>>, mode: CreateMode) -> Op {
    Op::Create { path: path.into(), data: data.into(), mode }
}
