//! One keeper server's state machine: the replicated state plus what a server keeps for
//! itself (session liveness, watches), and the rules that tie them together.
//!
//! The actor shell around it (`actors/src/keeper/database.rs`) owns only I/O: the log
//! writer, the clients' channels and the clock. Here: applying a durable transaction fires
//! the watches its changes trigger and, for a closed session, forgets its watches and
//! liveness; reads leave watches by ZooKeeper's rules (a watch only when the read succeeds,
//! except that `exists` watches a missing node too).

use crate::acl::{self, perms, Acl, Id};
use crate::error::KeeperError;
use crate::path;
use crate::session::{Session, SessionConfig, SessionId, SessionTracker};
use crate::state::KeeperState;
use crate::tree::{Op, OpResult, Stat, Txn};
use crate::watch::{EventType, WatchEvent, WatchKind, WatchManager, WatchSet};

/// What applying one transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The operation's result.
    pub result: Result<OpResult, KeeperError>,
    /// Watch events to deliver, in order: (session, event).
    pub events: Vec<(SessionId, WatchEvent)>,
    /// A session this transaction ended (its channel gets "session expired").
    pub ended: Option<SessionId>,
}

/// One server's keeper state.
#[derive(Debug, Clone)]
pub struct ServerCore {
    state: KeeperState,
    tracker: SessionTracker,
    watches: WatchManager<SessionId>,
}

impl ServerCore {
    /// A server recovered to `state`; every recovered session gets a full timeout from
    /// `now_ms` to come back, as in ZooKeeper.
    pub fn recover(state: KeeperState, config: SessionConfig, server_id: u8, now_ms: u64) -> Self {
        let mut tracker = SessionTracker::new(config, server_id);
        for (id, s) in &state.sessions {
            tracker.restore(now_ms, *id, s.timeout_ms, s.password);
        }
        ServerCore { state, tracker, watches: WatchManager::new() }
    }

    /// The replicated state (for snapshots and status).
    pub fn state(&self) -> &KeeperState {
        &self.state
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.tracker.len()
    }

    /// Registered watches.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// Applies a durable transaction.
    pub fn apply(&mut self, txn: &Txn) -> Outcome {
        let applied = self.state.apply(txn);
        // A closing session's own watches go first: it hears nothing of its own ending.
        // A close through a member the session has left is refused and ends nothing.
        let closed = matches!(txn.op.unwrapped(), Op::CloseSession)
            && !matches!(applied.result, Err(KeeperError::SessionMoved { .. }));
        let ended = closed.then(|| {
            self.tracker.close(txn.session);
            self.watches.remove_watcher(&txn.session);
            txn.session
        });
        let mut events = Vec::new();
        for change in &applied.changes {
            events.extend(self.watches.trigger(change));
        }
        Outcome { result: applied.result, events, ended }
    }

    /// Opens a session (its `CreateSession` transaction is the caller's to log).
    pub fn open_session(&mut self, now_ms: u64, requested_timeout_ms: u32, password: [u8; 16]) -> Session {
        self.tracker.open(now_ms, requested_timeout_ms, password)
    }

    /// Resumes a session on reconnection.
    pub fn resume_session(
        &mut self,
        now_ms: u64,
        id: SessionId,
        password: &[u8; 16],
    ) -> Result<Session, KeeperError> {
        self.tracker.resume(now_ms, id, password)
    }

    /// Starts tracking a session that a committed `CreateSession` made on another server of
    /// the ensemble (it gets a full timeout from `now_ms`). No-op if already tracked.
    pub fn track(&mut self, now_ms: u64, id: SessionId) {
        if !self.tracker.contains(id) {
            if let Some(s) = self.state.sessions.get(&id) {
                self.tracker.restore(now_ms, id, s.timeout_ms, s.password);
            }
        }
    }

    /// Stops tracking a session whose `CreateSession` never committed.
    pub fn forget(&mut self, id: SessionId) {
        if !self.state.sessions.contains_key(&id) {
            self.tracker.close(id);
        }
    }

    /// A new leader takes over session expiry: every session in the replicated state gets a
    /// full timeout from `now_ms` (as ZooKeeper's new leader does), including any this server
    /// had dropped from its tracker while it was not deciding expiry.
    pub fn renew_all(&mut self, now_ms: u64) {
        for (id, s) in &self.state.sessions {
            self.tracker.restore(now_ms, *id, s.timeout_ms, s.password);
        }
    }

    /// Seeds session ids (see [`SessionTracker::start_ids_after`]).
    pub fn start_ids_after(&mut self, counter: u64) {
        self.tracker.start_ids_after(counter);
    }

    /// Replaces the replicated state wholesale (a follower installing the leader's snapshot).
    /// Registered watches stay; sessions are tracked as the new state says.
    pub fn install(&mut self, state: KeeperState, now_ms: u64) {
        let gone: Vec<SessionId> =
            self.state.sessions.keys().filter(|id| !state.sessions.contains_key(id)).copied().collect();
        self.state = state;
        for id in gone {
            self.tracker.close(id);
            self.watches.remove_watcher(&id);
        }
        self.renew_all(now_ms);
    }

    /// Records that a session was heard from; `SessionExpired` if it is not live.
    pub fn touch(&mut self, now_ms: u64, id: SessionId) -> Result<(), KeeperError> {
        self.tracker.touch(now_ms, id)
    }

    /// Sessions whose time is up; the caller logs a `CloseSession` for each.
    pub fn expired(&mut self, now_ms: u64) -> Vec<SessionId> {
        self.tracker.tick(now_ms)
    }

    /// Data and stat of a node, if `ids` may READ it; `watch` leaves a one-shot data watch
    /// if the node exists and may be read.
    pub fn get_data(
        &mut self,
        session: SessionId,
        ids: &[Id],
        path: &str,
        watch: bool,
    ) -> Result<(Vec<u8>, Stat), KeeperError> {
        let (data, stat) = self.state.tree.get_as(ids, path)?;
        let found = (data.to_vec(), stat);
        if watch {
            self.watches.add(path, WatchKind::Data, session);
        }
        Ok(found)
    }

    /// A node's stat if it exists; `watch` leaves a one-shot data watch either way (a missing
    /// node's watch fires when it is created).
    pub fn exists(
        &mut self,
        session: SessionId,
        path: &str,
        watch: bool,
    ) -> Result<Option<Stat>, KeeperError> {
        let stat = self.state.tree.exists(path)?;
        if watch {
            self.watches.add(path, WatchKind::Data, session);
        }
        Ok(stat)
    }

    /// A node's children and stat, if `ids` may READ it; `watch` leaves a one-shot child
    /// watch if the node exists and may be read.
    pub fn children(
        &mut self,
        session: SessionId,
        ids: &[Id],
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), KeeperError> {
        let found = self.state.tree.children_as(ids, path)?;
        if watch {
            self.watches.add(path, WatchKind::Child, session);
        }
        Ok(found)
    }

    /// ZooKeeper's getEphemerals: the ephemeral nodes `session` owns whose path starts with
    /// `prefix` (`/` for all), sorted.
    pub fn ephemerals(&self, session: SessionId, prefix: &str) -> Result<Vec<String>, KeeperError> {
        path::validate(prefix)?;
        let mut owned = self.state.tree.ephemerals(session);
        owned.retain(|p| p.starts_with(prefix));
        Ok(owned)
    }

    /// The container and TTL nodes due for deletion at `now_ms`, with their versions
    /// ([`crate::DataTree::reapable`]); whoever decides expiry deletes them, each with a
    /// conditional `Delete`.
    pub fn reapable(&self, now_ms: i64) -> Vec<(String, i32)> {
        self.state.tree.reapable(now_ms)
    }

    /// ZooKeeper's getAllChildrenNumber: how many nodes lie below `path`, if `ids` may READ
    /// it.
    pub fn descendants(&self, ids: &[Id], path: &str) -> Result<usize, KeeperError> {
        self.state.tree.descendants_as(ids, path)
    }

    /// ZooKeeper's getACL: a node's ACL and stat, for `ids` holding READ or ADMIN on it;
    /// digest hashes are hidden from a reader without ADMIN.
    pub fn get_acl(&self, ids: &[Id], path: &str) -> Result<(Vec<Acl>, Stat), KeeperError> {
        let (acl, stat) = self.state.tree.acl(path)?;
        acl::check(acl, perms::READ | perms::ADMIN, ids, path)?;
        if acl::allows(acl, perms::ADMIN, ids) {
            Ok((acl.to_vec(), stat))
        } else {
            Ok((acl::redacted(acl), stat))
        }
    }

    /// ZooKeeper's removeWatches (`check_only`: checkWatches): the session's watches of
    /// `kinds` on `path` go (or are only looked for). Fails with `NoWatcher` when the session
    /// has none of them there; nothing is removed then.
    pub fn remove_watches(
        &mut self,
        session: SessionId,
        path: &str,
        kinds: &[WatchKind],
        check_only: bool,
    ) -> Result<(), KeeperError> {
        path::validate(path)?;
        let held: Vec<WatchKind> =
            kinds.iter().copied().filter(|k| self.watches.has(path, *k, &session)).collect();
        if held.is_empty() {
            let kind = match kinds {
                [WatchKind::Data] => "data",
                [WatchKind::Child] => "child",
                _ => "",
            };
            return Err(KeeperError::NoWatcher { path: path.into(), kind: kind.into() });
        }
        if !check_only {
            for k in held {
                self.watches.remove(path, k, &session);
            }
        }
        Ok(())
    }

    /// `addWatch`: a persistent or persistent-recursive watch.
    pub fn add_watch(&mut self, session: SessionId, path: &str, kind: WatchKind) -> Result<(), KeeperError> {
        match kind {
            WatchKind::Persistent | WatchKind::PersistentRecursive => {
                path::validate(path)?;
                self.watches.add(path, kind, session);
                Ok(())
            }
            _ => Err(KeeperError::BadArguments {
                what: "addWatch takes Persistent or PersistentRecursive".into(),
            }),
        }
    }
}

impl ServerCore {
    /// Re-registers the watches a reconnecting client holds (ZooKeeper's `SetWatches`).
    /// `seen_zxid` is the last transaction the client had heard of: a watch whose node
    /// changed after it fires now (the event the client missed while it was away) instead of
    /// being registered, exactly as it would have fired had the client stayed:
    ///
    /// - data watch: node gone → NodeDeleted; node changed (mzxid > seen) → NodeDataChanged;
    /// - exist watch: node now there → NodeCreated;
    /// - child watch: node gone → NodeDeleted; children changed (pzxid > seen) →
    ///   NodeChildrenChanged;
    /// - persistent and persistent-recursive watches are registered again; what they would
    ///   have heard meanwhile is lost, as in ZooKeeper.
    ///
    /// Returns the events to deliver, in the order above. Invalid paths are skipped (a client
    /// only holds watches on paths it read successfully).
    pub fn set_watches(&mut self, session: SessionId, seen_zxid: i64, set: &WatchSet) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        let mut fire =
            |event: EventType, path: &str| events.push(WatchEvent { event, path: path.to_string() });
        for path in &set.data {
            match self.state.tree.exists(path) {
                Ok(None) => fire(EventType::NodeDeleted, path),
                Ok(Some(stat)) if stat.mzxid > seen_zxid => fire(EventType::NodeDataChanged, path),
                Ok(Some(_)) => self.watches.add(path, WatchKind::Data, session),
                Err(_) => {}
            }
        }
        for path in &set.exist {
            match self.state.tree.exists(path) {
                Ok(Some(_)) => fire(EventType::NodeCreated, path),
                Ok(None) => self.watches.add(path, WatchKind::Data, session),
                Err(_) => {}
            }
        }
        for path in &set.child {
            match self.state.tree.exists(path) {
                Ok(None) => fire(EventType::NodeDeleted, path),
                Ok(Some(stat)) if stat.pzxid > seen_zxid => fire(EventType::NodeChildrenChanged, path),
                Ok(Some(_)) => self.watches.add(path, WatchKind::Child, session),
                Err(_) => {}
            }
        }
        for (paths, kind) in [
            (&set.persistent, WatchKind::Persistent),
            (&set.persistent_recursive, WatchKind::PersistentRecursive),
        ] {
            for path in paths {
                if path::validate(path).is_ok() {
                    self.watches.add(path, kind, session);
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::CreateMode;
    use crate::watch::EventType;

    const A: SessionId = 0xa;
    const B: SessionId = 0xb;

    fn txn(zxid: i64, session: SessionId, op: Op) -> Txn {
        Txn { zxid, time_ms: 0, session, op }
    }

    /// A state in which sessions A and B are open (their writes are applied).
    fn with_sessions() -> KeeperState {
        let mut state = KeeperState::new();
        for id in [A, B] {
            state.sessions.insert(id, crate::state::DurableSession { timeout_ms: 10_000, password: [0; 16] });
        }
        state
    }

    #[test]
    fn a_write_of_a_closed_session_is_refused_and_leaves_no_ephemeral() {
        let mut s = ServerCore::recover(with_sessions(), SessionConfig::default(), 1, 0);
        s.apply(&txn(1, B, create("/e", CreateMode::Ephemeral)));
        s.apply(&txn(2, B, Op::CloseSession));
        assert_eq!(s.state().tree.exists("/e"), Ok(None), "the close deleted its ephemeral");
        // A write the session sent before learning of its close, ordered after it.
        let late = s.apply(&txn(3, B, create("/e", CreateMode::Ephemeral)));
        assert_eq!(late.result, Err(KeeperError::SessionExpired { session: B }));
        assert_eq!(s.state().tree.exists("/e"), Ok(None), "no ephemeral outlives its session");
        assert!(
            s.apply(&txn(4, 0, create("/server", CreateMode::Persistent))).result.is_ok(),
            "session 0 is the servers'"
        );
    }

    fn create(path: &str, mode: CreateMode) -> Op {
        Op::Create { path: path.into(), data: vec![], mode }
    }

    #[test]
    fn a_close_through_a_member_the_session_left_ends_nothing_and_one_through_its_owner_ends_it() {
        let mut s = ServerCore::recover(with_sessions(), SessionConfig::default(), 1, 0);
        let via = |member, op| Op::Via { member, op: Box::new(op) };
        s.apply(&txn(1, B, Op::Claim { member: 2, after: None }));
        let stale = s.apply(&txn(2, B, via(1, Op::CloseSession)));
        assert_eq!(stale.ended, None, "{:?}", stale.result);
        assert!(s.state().sessions.contains_key(&B));
        assert_eq!(s.apply(&txn(3, B, via(2, Op::CloseSession))).ended, Some(B));
        assert!(!s.state().sessions.contains_key(&B));
        // A close of a session already gone still ends what this server tracks of it.
        assert_eq!(s.apply(&txn(4, B, via(2, Op::CloseSession))).ended, Some(B));
    }

    #[test]
    fn reads_leave_watches_only_by_zookeepers_rules() {
        let mut s = ServerCore::recover(with_sessions(), SessionConfig::default(), 1, 0);
        assert!(s.get_data(A, &[], "/missing", true).is_err());
        assert!(s.children(A, &[], "/missing", true).is_err());
        assert_eq!(s.watch_count(), 0, "failed reads leave no watch");
        assert_eq!(s.exists(A, "/later", true), Ok(None));
        assert_eq!(s.watch_count(), 1, "exists watches a missing node");
        let out = s.apply(&txn(1, B, create("/later", CreateMode::Persistent)));
        assert_eq!(
            out.events,
            vec![(A, WatchEvent { event: EventType::NodeCreated, path: "/later".into() })]
        );
        assert!(s.add_watch(A, "/later", WatchKind::Data).is_err(), "addWatch is for persistent kinds");
    }

    #[test]
    fn closing_a_session_fires_watchers_of_its_ephemerals_and_forgets_its_own_watches() {
        let mut s = ServerCore::recover(with_sessions(), SessionConfig::from_tick(1000), 1, 0);
        s.apply(&txn(1, A, Op::CreateSession { timeout_ms: 2000, password: [0; 16] }));
        s.apply(&txn(2, A, create("/eph", CreateMode::Ephemeral)));
        s.add_watch(A, "/", WatchKind::PersistentRecursive).expect("A watches everything");
        assert_eq!(s.exists(B, "/eph", true).expect("exists").map(|st| st.ephemeral_owner), Some(A as i64));
        let out = s.apply(&txn(3, A, Op::CloseSession));
        assert_eq!(out.ended, Some(A));
        assert_eq!(
            out.events,
            vec![(B, WatchEvent { event: EventType::NodeDeleted, path: "/eph".into() })],
            "B hears of the deletion; A's own watches went with its session"
        );
        assert_eq!(s.watch_count(), 0);
    }

    #[test]
    fn ephemerals_descendants_and_watch_removal_as_zookeeper_answers_them() {
        let mut s = ServerCore::recover(with_sessions(), SessionConfig::from_tick(1000), 1, 0);
        s.apply(&txn(1, A, Op::CreateSession { timeout_ms: 2000, password: [0; 16] }));
        s.apply(&txn(2, B, create("/a", CreateMode::Persistent)));
        s.apply(&txn(3, A, create("/a/e1", CreateMode::Ephemeral)));
        s.apply(&txn(4, A, create("/e2", CreateMode::Ephemeral)));
        s.apply(&txn(5, B, create("/a/p", CreateMode::Persistent)));
        s.apply(&txn(6, B, create("/a/p/q", CreateMode::Persistent)));
        assert_eq!(s.ephemerals(A, "/"), Ok(vec!["/a/e1".to_string(), "/e2".to_string()]));
        assert_eq!(s.ephemerals(A, "/a"), Ok(vec!["/a/e1".to_string()]));
        assert_eq!(s.ephemerals(B, "/"), Ok(vec![]));
        assert_eq!(s.descendants(&[], "/a"), Ok(3));
        assert_eq!(s.descendants(&[], "/"), Ok(5));
        assert_eq!(s.descendants(&[], "/a/p/q"), Ok(0));
        assert!(matches!(s.descendants(&[], "/nope"), Err(KeeperError::NoNode { .. })));

        s.get_data(A, &[], "/a", true).expect("data watch");
        s.children(A, &[], "/a", true).expect("child watch");
        s.add_watch(A, "/a", WatchKind::Persistent).expect("persistent watch");
        let missing = s.remove_watches(B, "/a", &[WatchKind::Data], false);
        assert!(matches!(missing, Err(KeeperError::NoWatcher { .. })), "B has none: {missing:?}");
        assert_eq!(s.remove_watches(A, "/a", &[WatchKind::Child], true), Ok(()));
        assert_eq!(s.watch_count(), 3, "checking removes nothing");
        assert_eq!(s.remove_watches(A, "/a", &[WatchKind::Child], false), Ok(()));
        assert_eq!(s.watch_count(), 2);
        let any = [WatchKind::Data, WatchKind::Child, WatchKind::Persistent, WatchKind::PersistentRecursive];
        assert_eq!(s.remove_watches(A, "/a", &any, false), Ok(()));
        assert_eq!(s.watch_count(), 0);
        let out = s.apply(&txn(7, B, Op::SetData { path: "/a".into(), data: b"x".to_vec(), version: -1 }));
        assert!(out.events.is_empty(), "removed watches fire nothing: {:?}", out.events);
    }

    #[test]
    fn containers_go_once_emptied_and_ttl_nodes_once_idle_for_their_ttl() {
        use crate::tree::{NodeKind, CONTAINER_OWNER, MAX_TTL_MS};
        let mut s = ServerCore::recover(with_sessions(), SessionConfig::from_tick(1000), 1, 0);
        let at = |zxid: i64, time_ms: i64, op: Op| Txn { zxid, time_ms, session: B, op };
        s.apply(&at(1, 0, create("/c", CreateMode::Container)));
        s.apply(&at(2, 0, create("/t", CreateMode::PersistentWithTtl { ttl_ms: 1000 })));
        s.apply(&at(3, 0, create("/tp", CreateMode::PersistentWithTtl { ttl_ms: 1000 })));
        s.apply(&at(4, 0, create("/tp/kid", CreateMode::Persistent)));
        assert_eq!(s.state().tree.kind("/c"), Some(NodeKind::of(CONTAINER_OWNER)));
        assert_eq!(s.state().tree.kind("/t"), Some(NodeKind::Ttl(1000)));
        let seen = s.exists(A, "/t", false).expect("exists").expect("there");
        assert_eq!(seen.ephemeral_owner, 0, "clients see 0 for a container or TTL node, as ZooKeeper shows");
        // A container that never had a child stays; a TTL node stays for its TTL.
        assert_eq!(s.reapable(1000), vec![]);
        s.apply(&at(5, 0, create("/c/x", CreateMode::Persistent)));
        assert_eq!(s.reapable(1000), vec![], "a container with a child stays");
        s.apply(&at(6, 0, Op::Delete { path: "/c/x".into(), version: -1 }));
        assert_eq!(s.reapable(1000), vec![("/c".to_string(), 0)]);
        // A change restarts the TTL; a TTL node with a child stays.
        s.apply(&at(7, 900, Op::SetData { path: "/t".into(), data: b"x".to_vec(), version: -1 }));
        assert_eq!(s.reapable(1500), vec![("/c".to_string(), 0)]);
        assert_eq!(s.reapable(1901), vec![("/c".to_string(), 0), ("/t".to_string(), 1)]);
        // Children of a container or TTL node are allowed; bad TTLs are refused.
        for bad in [0, -5, MAX_TTL_MS + 1] {
            let r = s.apply(&at(8, 0, create("/bad", CreateMode::PersistentWithTtl { ttl_ms: bad })));
            assert!(matches!(r.result, Err(KeeperError::BadArguments { .. })), "ttl {bad}: {:?}", r.result);
        }
        let r = s.apply(&at(9, 0, create("/t/kid-", CreateMode::PersistentSequentialWithTtl { ttl_ms: 5 })));
        assert!(
            matches!(r.result, Ok(OpResult::Created { ref path, .. }) if path == "/t/kid-0000000000"),
            "{:?}",
            r.result
        );
        assert!(
            s.ephemerals(B, "/").expect("ephemerals").is_empty(),
            "containers and TTL nodes are no one's"
        );
    }

    #[test]
    fn recovered_sessions_get_a_full_timeout_from_recovery() {
        let mut state = KeeperState::new();
        state.apply(&txn(1, A, Op::CreateSession { timeout_ms: 4000, password: [7; 16] }));
        let mut s = ServerCore::recover(state, SessionConfig::from_tick(1000), 1, 10_000);
        assert!(s.expired(13_999).is_empty());
        assert_eq!(s.resume_session(13_999, A, &[7; 16]).map(|x| x.timeout_ms), Ok(4000));
        assert!(s.expired(17_998).is_empty(), "the resume restarted the clock");
        assert_eq!(s.expired(17_999), vec![A]);
    }

    #[test]
    fn set_watches_fires_what_the_client_missed_and_registers_the_rest() {
        let mut s = ServerCore::recover(with_sessions(), SessionConfig::default(), 1, 0);
        for (zxid, path) in [(1, "/same"), (2, "/changed"), (3, "/gone"), (4, "/p"), (5, "/q"), (6, "/born")]
        {
            s.apply(&txn(zxid, B, create(path, CreateMode::Persistent)));
        }
        s.apply(&txn(7, B, create("/q/kid", CreateMode::Persistent)));
        // The client last heard of zxid 5; then these happened without it.
        s.apply(&txn(8, B, Op::SetData { path: "/changed".into(), data: b"x".to_vec(), version: -1 }));
        s.apply(&txn(9, B, Op::Delete { path: "/gone".into(), version: -1 }));
        let set = WatchSet {
            data: vec!["/same".into(), "/changed".into(), "/gone".into()],
            exist: vec!["/born".into(), "/unborn".into()],
            child: vec!["/p".into(), "/q".into(), "/gone".into()],
            persistent: vec!["/same".into()],
            persistent_recursive: vec!["/".into(), "bad path".into()],
        };
        let ev = |event, path: &str| WatchEvent { event, path: path.into() };
        assert_eq!(
            s.set_watches(A, 5, &set),
            vec![
                ev(EventType::NodeDataChanged, "/changed"),
                ev(EventType::NodeDeleted, "/gone"),
                ev(EventType::NodeCreated, "/born"),
                ev(EventType::NodeChildrenChanged, "/q"),
                ev(EventType::NodeDeleted, "/gone"),
            ]
        );
        // Registered: data /same, exist /unborn, child /p, persistent /same, recursive /.
        assert_eq!(s.watch_count(), 5);
        let out = s.apply(&txn(10, B, create("/unborn", CreateMode::Persistent)));
        assert_eq!(
            out.events,
            vec![(A, ev(EventType::NodeCreated, "/unborn"))],
            "the exist watch waits for its node; the recursive watch hears it as well, once"
        );
        let out = s.apply(&txn(11, B, create("/p/kid", CreateMode::Persistent)));
        assert_eq!(
            out.events,
            vec![(A, ev(EventType::NodeCreated, "/p/kid")), (A, ev(EventType::NodeChildrenChanged, "/p"))],
            "the recursive watch hears the new node, the child watch its parent's list"
        );
        let out = s.apply(&txn(12, B, Op::Delete { path: "/p/kid".into(), version: -1 }));
        assert_eq!(out.events, vec![(A, ev(EventType::NodeDeleted, "/p/kid"))], "child watch was one-shot");
    }
}
