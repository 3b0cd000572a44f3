//! `sluice-keeper-core`: the keeper's state machines, with ZooKeeper's semantics.
//!
//! **No sockets, no clock, no actix.** Every input is a method call; time comes in as an
//! argument (`now_ms`), transaction ids come in with the operation, and outputs are returned
//! values (results, change events, expired sessions). That makes every rule here testable in
//! microseconds and lets the replicated state machine of the ensemble apply the same
//! operations in the same order on every server and reach the same tree.
//!
//! - [`path`]: path validation and helpers, as ZooKeeper's `PathUtils`.
//! - [`acl`]: znode ACLs with ZooKeeper's schemes, and who may do what.
//! - [`error`]: error codes with ZooKeeper's numbers.
//! - [`tree`]: the znode tree; applying an [`tree::Op`] yields its result and the
//!   [`tree::Change`]s it made.
//! - [`watch`]: which watchers a change fires (one-shot, persistent, persistent-recursive).
//!   Watches are per server, not replicated, as in ZooKeeper.
//! - [`session`]: session timeouts, liveness and expiry.
//! - [`state`]: the replicated state: the tree plus the durable session table.
//! - [`server`]: one server's state machine: applying transactions fires watches, reads
//!   leave watches, sessions live and expire.
//! - [`writes`]: zxid assignment and the durability queue (standalone), the
//!   behind-the-client check, who decides expiry.

pub mod acl;
pub mod error;
pub mod path;
pub mod server;
pub mod session;
pub mod state;
pub mod tree;
pub mod watch;
pub mod writes;

pub use acl::{Acl, Id, SuperUsers};
pub use error::{ErrorCode, KeeperError};
pub use server::{Outcome, ServerCore};
pub use session::{SessionConfig, SessionId, SessionTracker};
pub use state::{DurableSession, KeeperState, KeeperStateV1, KeeperStateV2, Owner};
pub use tree::{Applied, Change, CreateMode, DataTree, NodeKind, Op, OpResult, Stat, Txn, MAX_TTL_MS};
pub use watch::{EventType, WatchEvent, WatchKind, WatchManager, WatchSet};
pub use writes::{check_not_behind, expiry, Expiry, WriteQueue};
