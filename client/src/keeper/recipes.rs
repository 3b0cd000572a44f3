//! Recipes on the keeper client, with ZooKeeper's published algorithms and the znode names
//! kazoo uses, so a Rust process and a Python (kazoo) process contending on the same path
//! exclude each other.
//!
//! - [`Lock`]: the exclusive lock ("Locks" in ZooKeeper's recipes): each contender creates
//!   an ephemeral sequential node `<path>/<random hex>__lock__<sequence>`; the lowest
//!   sequence holds the lock; every other contender watches only the node just before its
//!   own (no herd effect) and looks again when that one goes. A holder's session ending
//!   (it closed, crashed, or expired) deletes its node, which frees the lock.
//! - [`Lock::read`]: the shared side of ZooKeeper's read/write lock: nodes
//!   `<hex>__rlock__<sequence>` in the same queue; a reader waits only for the writers
//!   before it, a writer (an exclusive [`Lock`]) for everyone before it (kazoo's
//!   `ReadLock` / `WriteLock`).
//! - Leader election is the exclusive lock, as kazoo's `Election`: the holder leads, each
//!   contender's node holds its identifier ([`Lock::with_identifier`]) and
//!   [`Lock::contenders`] lists them in the order they will lead.
//! - [`Counter`]: a shared counter changed by versioned sets (kazoo's `Counter`: the value
//!   as decimal text, empty meaning 0).
//! - [`DoubleBarrier`]: ZooKeeper's double barrier (kazoo's `DoubleBarrier`): members enter
//!   together once `n` have arrived (each an ephemeral `<path>/<hex>`, the last to arrive
//!   creates `<path>/ready`) and leave together (the lowest member waits for the highest,
//!   the others delete their node and wait for the lowest).
//! - [`TreeCache`] and [`NodeCache`]: a subtree (Curator's `TreeCache`), or one node
//!   (Curator's `NodeCache`), kept current in memory by a persistent (recursive) watch and
//!   read again whole when the session moves to another server.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sluice_keeper_core::{CreateMode, EventType, KeeperError, Stat};
use tokio::sync::mpsc;

use super::client::{KeeperClient, KeeperClientError, KeeperEvent, KeeperEvents};

/// The part of a contender's node name before its sequence: kazoo's lock and read-lock
/// markers (an exclusive lock waits for both).
const MARKERS: &[&str] = &["__lock__", "__rlock__"];

/// The sequence of a contender's node, if it is one.
fn sequence(name: &str) -> Option<&str> {
    MARKERS.iter().find_map(|m| name.find(m).map(|at| &name[at + m.len()..]))
}

/// The contenders among `children`, in the order they hold the lock.
pub fn contenders(children: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = children.iter().map(String::as_str).filter(|c| sequence(c).is_some()).collect();
    out.sort_by_key(|c| sequence(c).unwrap_or_default().to_string());
    out
}

/// An exclusive lock on a path, or the read side of a read/write lock ([`recipes`](self)). It owns a keeper client of its own and
/// that client's events (the lock's session is that client's: give it a client made for it).
#[derive(Debug)]
pub struct Lock {
    client: KeeperClient,
    events: KeeperEvents,
    path: String,
    /// This contender's node name before its marker (fixed, so that after a lost create
    /// it finds its node instead of making a second one, as kazoo does).
    prefix: String,
    /// This contender's node, once created.
    node: Option<String>,
    held: bool,
    /// The shared (read) side of a read/write lock.
    shared: bool,
    /// What this contender's node holds (kazoo's identifier).
    identifier: Vec<u8>,
}

impl Lock {
    /// A lock on `path` (created, with its parents, when first needed).
    pub fn new(client: KeeperClient, events: KeeperEvents, path: impl Into<String>) -> Lock {
        Lock {
            client,
            events,
            path: path.into(),
            prefix: format!("{:032x}", rand::random::<u128>()),
            node: None,
            held: false,
            shared: false,
            identifier: Vec::new(),
        }
    }

    /// This contender's identifier, kept in its node for [`Lock::contenders`] (kazoo's
    /// `identifier`: who leads, in an election).
    pub fn with_identifier(mut self, identifier: impl Into<String>) -> Lock {
        self.identifier = identifier.into().into_bytes();
        self
    }

    /// The identifiers of the contenders now queued, the holder first (kazoo's
    /// `contenders()`); nodes that go while being read are left out.
    pub async fn contenders(&self) -> Result<Vec<String>, KeeperClientError> {
        let children = match self.client.children(&self.path, false).await {
            Ok(c) => c,
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for name in contenders(&children) {
            match self.client.get_data(&format!("{}/{name}", self.path), false).await {
                Ok((data, _)) => out.push(String::from_utf8_lossy(&data).into_owned()),
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The read side of a read/write lock on `path`: held by any number of readers at once,
    /// never with a writer (an exclusive [`Lock::new`] on the same path).
    pub fn read(client: KeeperClient, events: KeeperEvents, path: impl Into<String>) -> Lock {
        Lock { shared: true, ..Lock::new(client, events, path) }
    }

    /// Whether this contender holds the lock.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Waits up to `timeout` for the lock: `true` once held, `false` when the time ran out
    /// (this contender then leaves the queue). The session's expiry is an error: the lock
    /// is not held then. Retriable failures (a server dying, an election in the ensemble:
    /// [`KeeperClientError::is_retriable`]) are retried until the time runs out.
    pub async fn acquire(&mut self, timeout: Duration) -> Result<bool, KeeperClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let outcome = self.try_acquire(deadline).await;
            match &outcome {
                Err(e) if pause_before_retry(e, &self.path, deadline).await => {}
                Err(e) if e.is_retriable() => {
                    self.leave().await.ok();
                    return Ok(false);
                }
                _ => return outcome,
            }
        }
    }

    async fn try_acquire(&mut self, deadline: Instant) -> Result<bool, KeeperClientError> {
        if self.node.is_none() {
            self.client.ensure_path(&self.path).await?;
            let marker = if self.shared { "__rlock__" } else { "__lock__" };
            let mine = format!("{}{marker}", self.prefix);
            // A create whose answer was lost may have made the node: look for it first.
            let children = self.client.children(&self.path, false).await?;
            self.node = match children.iter().find(|c| c.starts_with(&mine)) {
                Some(found) => Some(format!("{}/{found}", self.path)),
                None => {
                    let node = format!("{}/{mine}", self.path);
                    Some(self.client.create(&node, &self.identifier, CreateMode::EphemeralSequential).await?)
                }
            };
        }
        let me = self.node.as_deref().and_then(|n| n.rsplit('/').next()).unwrap_or_default().to_string();
        loop {
            let children = self.client.children(&self.path, false).await?;
            let queue = contenders(&children);
            let Some(place) = queue.iter().position(|c| *c == me) else {
                // Our node is gone: the session ended under us.
                self.node = None;
                return Err(KeeperError::NoNode { path: format!("{}/{me}", self.path) }.into());
            };
            // A reader waits for the last writer before it; a writer for whoever is before it.
            let blocker = queue[..place].iter().rev().find(|c| !self.shared || c.contains("__lock__"));
            let Some(blocker) = blocker else {
                self.held = true;
                return Ok(true);
            };
            let before = format!("{}/{blocker}", self.path);
            if self.client.exists(&before, true).await?.is_none() {
                continue;
            }
            // Wait for the node before ours to go (or the time to run out).
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, self.events.recv()).await {
                    Err(_) => {
                        self.leave().await?;
                        return Ok(false);
                    }
                    Ok(None) => return Err(KeeperClientError::ConnectionLoss("the client is gone".into())),
                    Ok(Some(KeeperEvent::Watch { path, .. })) if path == before => break,
                    Ok(Some(KeeperEvent::SessionExpired)) => {
                        self.node = None;
                        let session = self.client.session_id();
                        return Err(KeeperError::SessionExpired { session }.into());
                    }
                    Ok(Some(_)) => {}
                }
            }
        }
    }

    /// Gives the lock up (or leaves the queue).
    pub async fn release(&mut self) -> Result<(), KeeperClientError> {
        self.leave().await
    }

    async fn leave(&mut self) -> Result<(), KeeperClientError> {
        self.held = false;
        if let Some(node) = self.node.take() {
            match self.client.delete(&node, -1).await {
                Ok(()) | Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A counter shared through one znode ([`recipes`](self)): its value is decimal text (empty
/// or missing: 0), changed by sets conditional on the version read, retried on conflict.
#[derive(Debug, Clone)]
pub struct Counter {
    client: KeeperClient,
    path: String,
}

impl Counter {
    /// The counter at `path` (created, with its parents, on first change).
    pub fn new(client: KeeperClient, path: impl Into<String>) -> Counter {
        Counter { client, path: path.into() }
    }

    /// Its value now.
    pub async fn value(&self) -> Result<i64, KeeperClientError> {
        match self.client.get_data(&self.path, false).await {
            Ok((data, _)) => parse_count(&self.path, &data),
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Adds `delta` (negative: subtracts); returns the new value. A conflicting change is
    /// retried; a retriable failure ([`KeeperClientError::is_retriable`]) is returned, since
    /// the add may have been applied: read [`Counter::value`] before adding again.
    pub async fn add(&self, delta: i64) -> Result<i64, KeeperClientError> {
        loop {
            let (data, version) = match self.client.get_data(&self.path, false).await {
                Ok((data, stat)) => (data, stat.version),
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {
                    self.client.ensure_path(&self.path).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let new = parse_count(&self.path, &data)?.saturating_add(delta);
            match self.client.set_data(&self.path, new.to_string().as_bytes(), version).await {
                Ok(_) => return Ok(new),
                Err(KeeperClientError::Keeper(KeeperError::BadVersion { .. })) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// After a failure of a recipe's step on `path`: when it is retriable and time is left,
/// pauses a little (the ensemble may be electing a leader) and says to try again.
async fn pause_before_retry(e: &KeeperClientError, path: &str, deadline: Instant) -> bool {
    let now = Instant::now();
    if !e.is_retriable() || now >= deadline {
        return false;
    }
    tracing::debug!(%path, error = %e, "retrying");
    tokio::time::sleep(Duration::from_millis(100).min(deadline - now)).await;
    true
}

/// Waits up to `deadline` for a watch event on `path`. `Ok(false)`: the time ran out.
async fn wait_for_event(
    client: &KeeperClient,
    events: &mut KeeperEvents,
    path: &str,
    deadline: Instant,
) -> Result<bool, KeeperClientError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Err(_) => return Ok(false),
            Ok(None) => return Err(KeeperClientError::ConnectionLoss("the client is gone".into())),
            Ok(Some(KeeperEvent::Watch { path: p, .. })) if p == path => return Ok(true),
            Ok(Some(KeeperEvent::SessionExpired)) => {
                return Err(KeeperError::SessionExpired { session: client.session_id() }.into())
            }
            Ok(Some(_)) => {}
        }
    }
}

/// ZooKeeper's double barrier ([`recipes`](self)), with kazoo's `DoubleBarrier` layout: `n`
/// members [`enter`](DoubleBarrier::enter) together and [`leave`](DoubleBarrier::leave)
/// together. Like [`Lock`], it owns a keeper client of its own and that client's events.
#[derive(Debug)]
pub struct DoubleBarrier {
    client: KeeperClient,
    events: KeeperEvents,
    path: String,
    members: usize,
    name: String,
    data: Vec<u8>,
}

impl DoubleBarrier {
    /// A barrier on `path` for `members` members (this one included).
    pub fn new(client: KeeperClient, events: KeeperEvents, path: impl Into<String>, members: usize) -> Self {
        DoubleBarrier {
            client,
            events,
            path: path.into(),
            members: members.max(1),
            name: format!("{:032x}", rand::random::<u128>()),
            data: Vec::new(),
        }
    }

    /// What this member's node holds (kazoo's `identifier`).
    pub fn with_identifier(mut self, identifier: impl Into<String>) -> Self {
        self.data = identifier.into().into_bytes();
        self
    }

    fn node(&self) -> String {
        format!("{}/{}", self.path, self.name)
    }

    fn ready(&self) -> String {
        format!("{}/ready", self.path)
    }

    /// Enters: waits up to `timeout` until all the members have. `true` once they have;
    /// `false` when the time ran out (this member then leaves). Retriable failures (a server
    /// dying, an election: [`KeeperClientError::is_retriable`]) are retried until the time
    /// runs out; every step can be repeated (the member's node has a fixed name).
    pub async fn enter(&mut self, timeout: Duration) -> Result<bool, KeeperClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let outcome = self.try_enter(deadline).await;
            match &outcome {
                Err(e) if pause_before_retry(e, &self.path, deadline).await => {}
                _ => return outcome,
            }
        }
    }

    async fn try_enter(&mut self, deadline: Instant) -> Result<bool, KeeperClientError> {
        self.client.ensure_path(&self.path).await?;
        match self.client.create(&self.node(), &self.data, CreateMode::Ephemeral).await {
            Ok(_) | Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {}
            Err(e) => return Err(e),
        }
        let ready = self.ready();
        if self.client.exists(&ready, true).await?.is_some() {
            return Ok(true);
        }
        let arrived = self.client.children(&self.path, false).await?.iter().filter(|c| *c != "ready").count();
        if arrived >= self.members {
            self.client.ensure_path(&ready).await?;
            return Ok(true);
        }
        if wait_for_event(&self.client, &mut self.events, &ready, deadline).await? {
            return Ok(true);
        }
        match self.client.delete(&self.node(), -1).await {
            Ok(()) | Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Leaves: waits up to `timeout` until all the members have. `true` once they have;
    /// `false` when the time ran out. Retriable failures are retried, as by
    /// [`DoubleBarrier::enter`].
    pub async fn leave(&mut self, timeout: Duration) -> Result<bool, KeeperClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let outcome = self.try_leave(deadline).await;
            match &outcome {
                Err(e) if pause_before_retry(e, &self.path, deadline).await => {}
                _ => return outcome,
            }
        }
    }

    async fn try_leave(&mut self, deadline: Instant) -> Result<bool, KeeperClientError> {
        let ignore_gone = |r: Result<(), KeeperClientError>| match r {
            Ok(()) | Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => Ok(()),
            Err(e) => Err(e),
        };
        ignore_gone(self.client.delete(&self.ready(), -1).await)?;
        loop {
            let mut members: Vec<String> =
                self.client.children(&self.path, false).await?.into_iter().filter(|c| c != "ready").collect();
            members.sort();
            let (Some(lowest), Some(highest)) = (members.first(), members.last()) else { return Ok(true) };
            if members.len() == 1 && *lowest == self.name {
                ignore_gone(self.client.delete(&self.node(), -1).await)?;
                return Ok(true);
            }
            // The lowest waits for the highest to go; every other member goes, then waits
            // for the lowest.
            let awaited = if *lowest == self.name {
                format!("{}/{highest}", self.path)
            } else {
                ignore_gone(self.client.delete(&self.node(), -1).await)?;
                format!("{}/{lowest}", self.path)
            };
            if self.client.exists(&awaited, true).await?.is_none() {
                continue;
            }
            if !wait_for_event(&self.client, &mut self.events, &awaited, deadline).await? {
                return Ok(false);
            }
        }
    }
}

/// One node as a cache holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedNode {
    /// Its data.
    pub data: Vec<u8>,
    /// Its stat.
    pub stat: Stat,
}

/// What changed in a [`TreeCache`] or [`NodeCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheEvent {
    /// A node appeared: its path and what it held when read.
    Added(String, CachedNode),
    /// A node's data or stat changed: its path and what it holds now.
    Updated(String, CachedNode),
    /// A node went.
    Removed(String),
    /// The cache holds everything the keeper held when it (re)read the tree: after the first
    /// read, and after each read following a reconnection.
    Synced,
    /// The session expired: the cache stops changing (make a new client and cache).
    SessionExpired,
}

type Nodes = Arc<RwLock<BTreeMap<String, CachedNode>>>;

fn read_nodes(nodes: &Nodes) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, CachedNode>> {
    nodes.read().unwrap_or_else(|p| p.into_inner())
}

/// A subtree kept current in memory ([`recipes`](self), Curator's `TreeCache`): a persistent
/// recursive watch on the root, each event answered by reading the node it names, and the
/// whole tree read again when the session moves to another server (what the watch would have
/// heard meanwhile is lost). Reads ([`TreeCache::get`], [`TreeCache::children`]) are local.
/// It owns a keeper client of its own and that client's events; the changes arrive on the
/// receiver [`TreeCache::start`] returns.
#[derive(Debug)]
pub struct TreeCache {
    root: String,
    nodes: Nodes,
    task: tokio::task::JoinHandle<()>,
}

impl TreeCache {
    /// Starts caching the tree under `root` (which may not exist yet): sets the watch, reads
    /// the tree, then follows it. The receiver gets every change, [`CacheEvent::Synced`]
    /// after each whole read.
    pub async fn start(
        client: KeeperClient,
        events: KeeperEvents,
        root: impl Into<String>,
    ) -> Result<(TreeCache, mpsc::UnboundedReceiver<CacheEvent>), KeeperClientError> {
        Self::start_with(client, events, root.into(), true).await
    }

    async fn start_with(
        client: KeeperClient,
        mut events: KeeperEvents,
        root: String,
        recursive: bool,
    ) -> Result<(TreeCache, mpsc::UnboundedReceiver<CacheEvent>), KeeperClientError> {
        let nodes: Nodes = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        // The watch first, then the read: a change between them is not missed.
        client.add_watch(&root, recursive).await?;
        resync(&client, &root, recursive, &nodes, &tx).await?;
        let (r, n) = (root.clone(), nodes.clone());
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let outcome = match event {
                    KeeperEvent::Watch { event, path } if within(&r, &path, recursive) => {
                        refresh(&client, &path, event, &n, &tx).await
                    }
                    KeeperEvent::Watch { .. } | KeeperEvent::ReadOnly(_) => Ok(()),
                    KeeperEvent::Resumed => resync(&client, &r, recursive, &n, &tx).await,
                    KeeperEvent::SessionExpired => {
                        let _ = tx.send(CacheEvent::SessionExpired);
                        return;
                    }
                };
                if let Err(e) = outcome {
                    // A read failed (the connection dropped): the next Resumed reads it all.
                    tracing::debug!(root = %r, error = %e, "cache read failed; waiting for the session to resume");
                }
            }
        });
        Ok((TreeCache { root, nodes, task }, rx))
    }

    /// The root it caches.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// A node's data and stat, as last read.
    pub fn get(&self, path: &str) -> Option<CachedNode> {
        read_nodes(&self.nodes).get(path).cloned()
    }

    /// The names of a node's children, sorted (empty for an unknown node).
    pub fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" { "/".to_string() } else { format!("{path}/") };
        read_nodes(&self.nodes)
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| &p[prefix.len()..])
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_string)
            .collect()
    }

    /// Every cached node, by path.
    pub fn snapshot(&self) -> BTreeMap<String, CachedNode> {
        read_nodes(&self.nodes).clone()
    }
}

impl Drop for TreeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One node kept current in memory ([`recipes`](self), Curator's `NodeCache`): a persistent
/// watch on it, its data read again on each event and when the session moves to another
/// server.
#[derive(Debug)]
pub struct NodeCache(TreeCache);

impl NodeCache {
    /// Starts caching `path` (which may not exist yet).
    pub async fn start(
        client: KeeperClient,
        events: KeeperEvents,
        path: impl Into<String>,
    ) -> Result<(NodeCache, mpsc::UnboundedReceiver<CacheEvent>), KeeperClientError> {
        let (cache, rx) = TreeCache::start_with(client, events, path.into(), false).await?;
        Ok((NodeCache(cache), rx))
    }

    /// The node's data and stat as last read; `None` while it does not exist.
    pub fn get(&self) -> Option<CachedNode> {
        self.0.get(&self.0.root)
    }
}

/// Whether an event on `path` concerns a cache of `root`.
fn within(root: &str, path: &str, recursive: bool) -> bool {
    path == root
        || (recursive && (root == "/" || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))))
}

/// Reads `path` again after `event` and records the difference.
async fn refresh(
    client: &KeeperClient,
    path: &str,
    event: EventType,
    nodes: &Nodes,
    tx: &mpsc::UnboundedSender<CacheEvent>,
) -> Result<(), KeeperClientError> {
    if event == EventType::NodeChildrenChanged {
        return Ok(()); // each child's own event follows (recursive), or no child is cached
    }
    let read = match client.get_data(path, false).await {
        Ok((data, stat)) => Some(CachedNode { data, stat }),
        Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => None,
        Err(e) => return Err(e),
    };
    let mut map = nodes.write().unwrap_or_else(|p| p.into_inner());
    match read {
        Some(node) => {
            let before = map.insert(path.to_string(), node.clone());
            match before {
                None => {
                    let _ = tx.send(CacheEvent::Added(path.to_string(), node));
                }
                Some(old) if old != node => {
                    let _ = tx.send(CacheEvent::Updated(path.to_string(), node));
                }
                Some(_) => {}
            }
        }
        None => {
            let prefix = format!("{path}/");
            let gone: Vec<String> =
                map.keys().filter(|p| *p == path || p.starts_with(&prefix)).cloned().collect();
            for p in gone.into_iter().rev() {
                map.remove(&p);
                let _ = tx.send(CacheEvent::Removed(p));
            }
        }
    }
    Ok(())
}

/// Reads the whole tree under `root` again and records the differences, then `Synced`.
async fn resync(
    client: &KeeperClient,
    root: &str,
    recursive: bool,
    nodes: &Nodes,
    tx: &mpsc::UnboundedSender<CacheEvent>,
) -> Result<(), KeeperClientError> {
    let mut fresh = BTreeMap::new();
    let mut pending = vec![root.to_string()];
    while let Some(path) = pending.pop() {
        let (data, stat) = match client.get_data(&path, false).await {
            Ok(r) => r,
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => continue,
            Err(e) => return Err(e),
        };
        if recursive && stat.num_children > 0 {
            match client.children(&path, false).await {
                Ok(children) => {
                    let base = if path == "/" { String::new() } else { path.clone() };
                    pending.extend(children.into_iter().map(|c| format!("{base}/{c}")));
                }
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        fresh.insert(path, CachedNode { data, stat });
    }
    let mut map = nodes.write().unwrap_or_else(|p| p.into_inner());
    for (path, old) in map.iter() {
        match fresh.get(path) {
            None => {
                let _ = tx.send(CacheEvent::Removed(path.clone()));
            }
            Some(new) if new != old => {
                let _ = tx.send(CacheEvent::Updated(path.clone(), new.clone()));
            }
            Some(_) => {}
        }
    }
    for (path, node) in fresh.iter().filter(|(p, _)| !map.contains_key(*p)) {
        let _ = tx.send(CacheEvent::Added(path.clone(), node.clone()));
    }
    *map = fresh;
    let _ = tx.send(CacheEvent::Synced);
    Ok(())
}

fn parse_count(path: &str, data: &[u8]) -> Result<i64, KeeperClientError> {
    let text = String::from_utf8_lossy(data);
    if text.trim().is_empty() {
        return Ok(0);
    }
    text.trim().parse().map_err(|_| {
        KeeperError::BadArguments { what: format!("{path} holds {text:?}, not a counter's decimal value") }
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_takes_events_on_its_root_and_below_only() {
        assert!(within("/a", "/a", true) && within("/a", "/a/b/c", true));
        assert!(!within("/a", "/ab", true) && !within("/a", "/", true));
        assert!(within("/", "/x", true));
        assert!(within("/a", "/a", false) && !within("/a", "/a/b", false));
    }

    #[test]
    fn contenders_are_kazoos_lock_nodes_in_sequence_order() {
        let children: Vec<String> = [
            "b1__lock__0000000003",
            "other",
            "a9__lock__0000000001",
            "c0__rlock__0000000002",
            "0c2f3a4b__lock__0000000010",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            contenders(&children),
            [
                "a9__lock__0000000001",
                "c0__rlock__0000000002",
                "b1__lock__0000000003",
                "0c2f3a4b__lock__0000000010"
            ]
        );
    }
}
