//! The keeper's actors.
//!
//! | actor / thread | file | owns | timers |
//! |---|---|---|---|
//! | `Database` (one actor) | [`database`] | the `ServerCore`, each session's outbound queue, writes waiting for durability | session expiry tick (tickTime / 2) |
//! | log writer (OS thread) | [`log_writer`] | the standalone `Store`: group commit, snapshots, purge | — |
//! | `RoleWatcher` (ensemble) | [`role_watcher`] | what the Raft metrics say of this member's role; the role gauges | heartbeat tick |
//! | `SessionActor` (one per connection) | [`session`] | the session id; checks, touches and forwards requests in order | — |
//!
//! The network service that starts session actors, and start-up, are in `sluice-keeper`.

pub mod database;
pub mod log_writer;
pub mod role_watcher;
pub mod session;

pub use database::{
    Attach, Database, Detach, GetStatus, KeeperSettings, OpenSession, Outbox, Role, SessionRequest, Touched,
};
pub use session::{ClientRequest, SessionActor};
