//! The broker's actors. Each is a shell: it owns its state (a sans-IO core from
//! `sluice-broker-core` where the rules are), turns messages and timers into calls on it,
//! and carries out what comes back (log appends, keeper writes, replies).
//!
//! | actor | file | owns | timers |
//! |---|---|---|---|
//! | `Partition` (one per replica held here) | [`partition`] | the partition's log; as leader its ISR and high watermark | lag eviction (`replica.lag.time.max.ms`) |
//! | `ReplicaManager` | [`replica_manager`] | each partition's role; the routing table | — |
//! | `FollowerFetcher` (`num.replica.fetchers` per leader broker) | [`fetcher`] | replicating from that leader | fetch backoff |
//! | `LogManager` | [`log_manager`] | flush / retention, recovery-point checkpoints | `log.retention.check.interval.ms`, `log.flush.interval.ms` |
//! | `Controller` (while elected) | [`controller`] | the controller core; update senders | leader imbalance check |
//! | `GroupManager` | [`group_manager`] | which groups this broker coordinates | lag refresh |
//! | `GroupCoordinator` (one per group) | [`group_coordinator`] | one group's core | join phases, initial rebalance delay, sessions |
//! | `Membership` | [`membership`] | the keeper session, the registration, the `/controller` election | rejoin backoff, retry of a failed election attempt |
//! | `AclWatcher` (one per keeper session) | [`acls`] | this broker's copy of the ACLs | — (its znode watchers re-read) |
//! | `ZnodeWatcher` (one per watched znode) | [`znode_watcher`] | one znode's watch; its subscribers | re-read every 5 s, read retry backoff |
//!
//! Helpers that belong to one actor: [`isr`] (the partition leader's conditional ISR
//! writes), [`lag`] (the group manager's lag measurement).

use std::sync::{Arc, Mutex};

use sluice_client::keeper::KeeperClient;

pub mod acls;
pub mod controller;
pub mod fetcher;
pub mod group_coordinator;
pub mod group_manager;
pub mod isr;
pub mod lag;
pub mod log_manager;
pub mod membership;
pub mod partition;
pub mod replica_manager;
pub mod znode_watcher;

/// The broker's keeper session in use, shared by its actors and its service (replaced after
/// a session loss).
pub type SharedKeeper = Arc<Mutex<Option<KeeperClient>>>;

/// Reads the shared keeper client.
pub fn keeper_of(shared: &SharedKeeper) -> Option<KeeperClient> {
    shared.lock().map_or_else(|p| p.into_inner().clone(), |k| k.clone())
}
