//! Watches: who hears about which change.
//!
//! Watches live on the server a client is connected to and are not replicated, as in
//! ZooKeeper. The rules, from ZooKeeper's `DataTree` and `WatchManager`:
//!
//! | change | one-shot data watch (get, exists) on the node | one-shot child watch (children) | persistent on the node | persistent-recursive on it or an ancestor |
//! |---|---|---|---|---|
//! | node created | NodeCreated | — (the parent's child watch gets NodeChildrenChanged) | NodeCreated | NodeCreated |
//! | node deleted | NodeDeleted | NodeDeleted (on the node itself) | NodeDeleted | NodeDeleted |
//! | data changed | NodeDataChanged | — | NodeDataChanged | NodeDataChanged |
//! | children changed | — | NodeChildrenChanged | NodeChildrenChanged | — (recursive watches never get it) |
//!
//! A one-shot watch is removed when it fires. A watcher hears one event per change even when
//! it watches the path in several ways.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::path;
use crate::tree::Change;

/// ZooKeeper's event types (numbers as in `Watcher.Event.EventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// The node was created.
    NodeCreated = 1,
    /// The node was deleted.
    NodeDeleted = 2,
    /// The node's data changed.
    NodeDataChanged = 3,
    /// The node's children changed.
    NodeChildrenChanged = 4,
}

/// One notification for one watcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// What happened.
    pub event: EventType,
    /// To which node.
    pub path: String,
}

/// How a watch was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WatchKind {
    /// One-shot, by get or exists.
    Data,
    /// One-shot, by children.
    Child,
    /// `addWatch(PERSISTENT)`: data and child events of the node, until removed.
    Persistent,
    /// `addWatch(PERSISTENT_RECURSIVE)`: data events of the node and all below it.
    PersistentRecursive,
}

/// The watches a client holds, as it re-sends them after reconnecting (ZooKeeper's
/// `SetWatches`): a server that restarted, or another server of the ensemble, has none of
/// them. Paths are server paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSet {
    /// One-shot data watches left by `get` (or by `exists` on a node that existed).
    pub data: Vec<String>,
    /// One-shot watches left by `exists` on a missing node: they wait for its creation.
    pub exist: Vec<String>,
    /// One-shot child watches left by `children`.
    pub child: Vec<String>,
    /// `addWatch(PERSISTENT)`.
    pub persistent: Vec<String>,
    /// `addWatch(PERSISTENT_RECURSIVE)`.
    pub persistent_recursive: Vec<String>,
}

impl WatchSet {
    /// Whether there is nothing to re-register.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.persistent_recursive.is_empty()
    }

    /// Number of watches.
    pub fn len(&self) -> usize {
        self.data.len()
            + self.exist.len()
            + self.child.len()
            + self.persistent.len()
            + self.persistent_recursive.len()
    }
}

/// Watches of one server; `W` identifies a watcher (its session).
#[derive(Debug, Clone)]
pub struct WatchManager<W: Ord + Clone> {
    by_kind: HashMap<(WatchKind, String), BTreeSet<W>>,
}

impl<W: Ord + Clone> Default for WatchManager<W> {
    fn default() -> Self {
        WatchManager { by_kind: HashMap::new() }
    }
}

impl<W: Ord + Clone> WatchManager<W> {
    /// No watches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `watcher` on `path`.
    pub fn add(&mut self, path: &str, kind: WatchKind, watcher: W) {
        self.by_kind.entry((kind, path.to_string())).or_default().insert(watcher);
    }

    /// Whether `watcher` has a watch of `kind` on `path`.
    pub fn has(&self, path: &str, kind: WatchKind, watcher: &W) -> bool {
        self.by_kind.get(&(kind, path.to_string())).is_some_and(|set| set.contains(watcher))
    }

    /// Removes one watch; returns whether it existed.
    pub fn remove(&mut self, path: &str, kind: WatchKind, watcher: &W) -> bool {
        let key = (kind, path.to_string());
        let Some(set) = self.by_kind.get_mut(&key) else { return false };
        let removed = set.remove(watcher);
        if set.is_empty() {
            self.by_kind.remove(&key);
        }
        removed
    }

    /// Removes every watch of `watcher` (its session ended).
    pub fn remove_watcher(&mut self, watcher: &W) {
        self.by_kind.retain(|_, set| {
            set.remove(watcher);
            !set.is_empty()
        });
    }

    /// Number of registered watches.
    pub fn len(&self) -> usize {
        self.by_kind.values().map(BTreeSet::len).sum()
    }

    /// Whether no watch is registered.
    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    /// The watchers `change` fires, each with its event, in watcher order; one-shot watches
    /// that fired are removed.
    pub fn trigger(&mut self, change: &Change) -> Vec<(W, WatchEvent)> {
        use EventType::*;
        use WatchKind::*;
        let (path, event, one_shot, recursive): (&str, EventType, &[WatchKind], bool) = match change {
            Change::Created(p) => (p, NodeCreated, &[Data], true),
            Change::Deleted(p) => (p, NodeDeleted, &[Data, Child], true),
            Change::DataChanged(p) => (p, NodeDataChanged, &[Data], true),
            Change::ChildrenChanged(p) => (p, NodeChildrenChanged, &[Child], false),
        };
        let mut fired: BTreeSet<W> = BTreeSet::new();
        for kind in one_shot {
            if let Some(set) = self.by_kind.remove(&(*kind, path.to_string())) {
                fired.extend(set);
            }
        }
        if let Some(set) = self.by_kind.get(&(Persistent, path.to_string())) {
            fired.extend(set.iter().cloned());
        }
        if recursive {
            let mut at = Some(path);
            while let Some(p) = at {
                if let Some(set) = self.by_kind.get(&(PersistentRecursive, p.to_string())) {
                    fired.extend(set.iter().cloned());
                }
                at = path::parent(p);
            }
        }
        fired.into_iter().map(|w| (w, WatchEvent { event, path: path.to_string() })).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: EventType, path: &str) -> WatchEvent {
        WatchEvent { event, path: path.into() }
    }

    #[test]
    fn one_shot_data_watch_fires_once_on_set_and_on_delete() {
        let mut w = WatchManager::new();
        w.add("/a", WatchKind::Data, 1u64);
        assert_eq!(
            w.trigger(&Change::DataChanged("/a".into())),
            vec![(1, ev(EventType::NodeDataChanged, "/a"))]
        );
        assert!(w.trigger(&Change::DataChanged("/a".into())).is_empty(), "one-shot: gone after firing");
        w.add("/a", WatchKind::Data, 1);
        assert_eq!(w.trigger(&Change::Deleted("/a".into())), vec![(1, ev(EventType::NodeDeleted, "/a"))]);
        assert!(w.is_empty());
    }

    #[test]
    fn exists_watch_on_a_missing_node_fires_on_create() {
        let mut w = WatchManager::new();
        w.add("/later", WatchKind::Data, 7u64);
        assert_eq!(
            w.trigger(&Change::Created("/later".into())),
            vec![(7, ev(EventType::NodeCreated, "/later"))]
        );
    }

    #[test]
    fn child_watch_fires_on_child_create_and_delete_and_on_its_own_deletion() {
        let mut w = WatchManager::new();
        w.add("/p", WatchKind::Child, 1u64);
        assert!(
            w.trigger(&Change::Created("/p/c".into())).is_empty(),
            "the child's creation is not the parent's"
        );
        assert_eq!(
            w.trigger(&Change::ChildrenChanged("/p".into())),
            vec![(1, ev(EventType::NodeChildrenChanged, "/p"))]
        );
        w.add("/p", WatchKind::Child, 1);
        assert!(w.trigger(&Change::DataChanged("/p".into())).is_empty(), "child watches ignore data changes");
        assert_eq!(w.trigger(&Change::Deleted("/p".into())), vec![(1, ev(EventType::NodeDeleted, "/p"))]);
    }

    #[test]
    fn a_watcher_hears_one_event_per_change_however_it_watches() {
        let mut w = WatchManager::new();
        w.add("/n", WatchKind::Data, 1u64);
        w.add("/n", WatchKind::Child, 1);
        w.add("/n", WatchKind::Persistent, 1);
        w.add("/", WatchKind::PersistentRecursive, 1);
        w.add("/n", WatchKind::Data, 2);
        assert_eq!(
            w.trigger(&Change::Deleted("/n".into())),
            vec![(1, ev(EventType::NodeDeleted, "/n")), (2, ev(EventType::NodeDeleted, "/n"))]
        );
    }

    #[test]
    fn persistent_watches_stay_and_recursive_ones_cover_descendants_but_not_child_lists() {
        let mut w = WatchManager::new();
        w.add("/a", WatchKind::Persistent, 1u64);
        w.add("/a", WatchKind::PersistentRecursive, 2u64);
        for _ in 0..3 {
            assert_eq!(
                w.trigger(&Change::DataChanged("/a".into())).len(),
                2,
                "persistent watches do not go away"
            );
        }
        assert_eq!(
            w.trigger(&Change::ChildrenChanged("/a".into())),
            vec![(1, ev(EventType::NodeChildrenChanged, "/a"))]
        );
        assert_eq!(
            w.trigger(&Change::Created("/a/b/c".into())),
            vec![(2, ev(EventType::NodeCreated, "/a/b/c"))]
        );
        assert!(w.trigger(&Change::Created("/ab".into())).is_empty(), "/ab is not below /a");
        w.remove_watcher(&2);
        assert!(w.trigger(&Change::Created("/a/x".into())).is_empty());
        assert!(w.remove("/a", WatchKind::Persistent, &1));
        assert!(w.is_empty());
    }
}
