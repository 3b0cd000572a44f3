//! Keeper errors. Every error has a stable [`ErrorCode`] with ZooKeeper's number, so people
//! who know ZooKeeper read them at a glance and the numbers never change meaning on the wire.

use serde::{Deserialize, Serialize};

/// ZooKeeper's error codes (the subset the keeper produces). Numbers are ZooKeeper's own;
/// never renumber or reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i32)]
pub enum ErrorCode {
    /// A system or server-side error.
    SystemError = -1,
    /// A multi operation's later op was not run because an earlier one failed.
    RuntimeInconsistency = -2,
    /// The connection to the server was lost.
    ConnectionLoss = -4,
    /// Operation not implemented.
    Unimplemented = -6,
    /// Invalid arguments (bad path, data too large, bad flags).
    BadArguments = -8,
    /// The session id is unknown.
    UnknownSession = -12,
    /// The node does not exist.
    NoNode = -101,
    /// The connection's identities lack the permission the ACL asks.
    NoAuth = -102,
    /// The version does not match.
    BadVersion = -103,
    /// Ephemeral nodes may not have children.
    NoChildrenForEphemerals = -108,
    /// The node already exists.
    NodeExists = -110,
    /// The node has children.
    NotEmpty = -111,
    /// The session has expired.
    SessionExpired = -112,
    /// An ACL that cannot be stored (empty, unknown scheme, malformed id).
    InvalidAcl = -114,
    /// Authentication failed (a malformed or unknown `addauth`).
    AuthFailed = -115,
    /// A write reached a server that cannot commit it: in ZooKeeper, a read-only server; here,
    /// an ensemble member without a quorum.
    NotReadOnly = -119,
    /// The session has moved to another server: the server that sent this write no longer
    /// holds it (a write of the client's old connection, overtaken by its move).
    SessionMoved = -118,
    /// No such watch to remove or check (removeWatches, checkWatches).
    NoWatcher = -121,
}

impl ErrorCode {
    /// The numeric code.
    pub fn number(self) -> i32 {
        self as i32
    }
}

/// A keeper error: what failed, on which path, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KeeperError {
    /// The path is not a valid znode path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Data over the limit.
    #[error("data for {path} is {size} bytes; the limit is {max} bytes")]
    DataTooLarge {
        /// The node.
        path: String,
        /// Bytes given.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The node does not exist.
    #[error("no node {path}")]
    NoNode {
        /// The node (or, for create, its missing parent).
        path: String,
    },
    /// The node exists already.
    #[error("node {path} already exists")]
    NodeExists {
        /// The node.
        path: String,
    },
    /// The node still has children.
    #[error("node {path} has {children} children; delete them first")]
    NotEmpty {
        /// The node.
        path: String,
        /// How many children it has.
        children: usize,
    },
    /// A conditional operation's expected version differs.
    #[error("version mismatch on {path}: expected {expected}, node is at {actual}")]
    BadVersion {
        /// The node.
        path: String,
        /// The version asked for.
        expected: i32,
        /// The node's version.
        actual: i32,
    },
    /// The parent is ephemeral.
    #[error("cannot create {path}: its parent is ephemeral and ephemeral nodes have no children")]
    NoChildrenForEphemerals {
        /// The node that could not be created.
        path: String,
    },
    /// The root cannot be deleted or re-created.
    #[error("{what}")]
    BadArguments {
        /// What is wrong.
        what: String,
    },
    /// A multi's op that did not run because an earlier one failed.
    #[error("not run: an earlier operation in the same multi failed")]
    RuntimeInconsistency,
    /// An op of a multi failed, so none of them took effect.
    #[error("multi failed at op {index}: {error}; no op took effect")]
    MultiFailed {
        /// Position of the failing op.
        index: usize,
        /// Why it failed.
        error: Box<KeeperError>,
    },
    /// The session has expired (or been closed).
    #[error("session 0x{session:x} has expired")]
    SessionExpired {
        /// The session id.
        session: u64,
    },
    /// The server lost track of the request (it is stopping, or its log failed).
    #[error("connection loss: the server could not finish the request")]
    ConnectionLoss,
    /// The server cannot serve writes (its transaction log failed).
    #[error("server error: {what}")]
    SystemError {
        /// What failed.
        what: String,
    },
    /// The ensemble has no quorum (no leader, or the leader cannot reach a majority): the
    /// write was not committed within the bound. It was either never proposed, or it is in
    /// the log of a leader that lost its majority and commits only if that leader gets it
    /// back. Retry once a majority of servers is up.
    #[error("no quorum: {what}")]
    NoQuorum {
        /// What the server saw.
        what: String,
    },
    /// The client has seen a newer state than this server has (it talked to a server further
    /// ahead); it must try another server, or this one later, so it never goes back in time.
    #[error(
        "this server is behind the client (client has seen zxid 0x{client_zxid:x}, server is at \
         0x{server_zxid:x}); try another server"
    )]
    Behind {
        /// The newest zxid the client has seen.
        client_zxid: i64,
        /// The server's last applied zxid.
        server_zxid: i64,
    },
    /// The session id was never issued.
    #[error("unknown session 0x{session:x}")]
    UnknownSession {
        /// The session id.
        session: u64,
    },
    /// removeWatches / checkWatches found no such watch of the session (ZooKeeper's
    /// NOWATCHER). Last, so that the variants before it keep their wire numbers.
    #[error("no {kind} watch of this session on {path}")]
    NoWatcher {
        /// The node.
        path: String,
        /// Which watches were asked for (`data`, `child`, `any`).
        kind: String,
    },
    /// The connection's identities lack a permission the node's ACL asks.
    #[error("not authorized: {path} needs permission {perm} and the connection holds only [{ids}]; ask an owner to grant it (setAcl) or connect with an identity the ACL names")]
    NoAuth {
        /// The node whose ACL refused.
        path: String,
        /// The permission needed, as zkCli writes it (`r`, `w`, `c`, `d`, `a`).
        perm: String,
        /// Who asked.
        ids: String,
    },
    /// An ACL that cannot be stored.
    #[error("invalid ACL: {what}")]
    InvalidAcl {
        /// What is wrong.
        what: String,
    },
    /// Authentication failed.
    #[error("authentication failed: {what}")]
    AuthFailed {
        /// What is wrong.
        what: String,
    },
    /// The write came through an ensemble member the session has since left for another
    /// (ZooKeeper's SESSIONMOVED): it was not applied, so it cannot land after the writes the
    /// client made since. Last, so that the variants before it keep their wire numbers.
    #[error(
        "session 0x{session:x} has moved to another server (member {owner}); this write came \
         through member {via}, which the client has left, and was not applied"
    )]
    SessionMoved {
        /// The session id.
        session: u64,
        /// The member that holds the session now.
        owner: u64,
        /// The member the write came through.
        via: u64,
    },
}

impl KeeperError {
    /// The ZooKeeper error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            KeeperError::InvalidPath { .. }
            | KeeperError::DataTooLarge { .. }
            | KeeperError::BadArguments { .. } => ErrorCode::BadArguments,
            KeeperError::NoNode { .. } => ErrorCode::NoNode,
            KeeperError::NodeExists { .. } => ErrorCode::NodeExists,
            KeeperError::NotEmpty { .. } => ErrorCode::NotEmpty,
            KeeperError::BadVersion { .. } => ErrorCode::BadVersion,
            KeeperError::NoChildrenForEphemerals { .. } => ErrorCode::NoChildrenForEphemerals,
            KeeperError::RuntimeInconsistency => ErrorCode::RuntimeInconsistency,
            // As ZooKeeper: a failed multi reports its failing op's code.
            KeeperError::MultiFailed { error, .. } => error.code(),
            KeeperError::SessionExpired { .. } => ErrorCode::SessionExpired,
            KeeperError::UnknownSession { .. } => ErrorCode::UnknownSession,
            KeeperError::ConnectionLoss => ErrorCode::ConnectionLoss,
            KeeperError::SystemError { .. } => ErrorCode::SystemError,
            KeeperError::NoQuorum { .. } => ErrorCode::NotReadOnly,
            KeeperError::Behind { .. } => ErrorCode::ConnectionLoss,
            KeeperError::NoWatcher { .. } => ErrorCode::NoWatcher,
            KeeperError::NoAuth { .. } => ErrorCode::NoAuth,
            KeeperError::InvalidAcl { .. } => ErrorCode::InvalidAcl,
            KeeperError::AuthFailed { .. } => ErrorCode::AuthFailed,
            KeeperError::SessionMoved { .. } => ErrorCode::SessionMoved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_zookeepers_numbers() {
        assert_eq!(ErrorCode::NoNode.number(), -101);
        assert_eq!(ErrorCode::BadVersion.number(), -103);
        assert_eq!(ErrorCode::NoChildrenForEphemerals.number(), -108);
        assert_eq!(ErrorCode::NodeExists.number(), -110);
        assert_eq!(ErrorCode::NotEmpty.number(), -111);
        assert_eq!(ErrorCode::SessionExpired.number(), -112);
        assert_eq!(ErrorCode::BadArguments.number(), -8);
        assert_eq!(ErrorCode::RuntimeInconsistency.number(), -2);
        assert_eq!(ErrorCode::NoAuth.number(), -102);
        assert_eq!(ErrorCode::InvalidAcl.number(), -114);
        assert_eq!(ErrorCode::AuthFailed.number(), -115);
    }
}
