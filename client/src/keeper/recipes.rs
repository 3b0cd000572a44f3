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

use std::time::{Duration, Instant};

use sluice_keeper_core::{CreateMode, KeeperError};

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
    /// is not held then.
    pub async fn acquire(&mut self, timeout: Duration) -> Result<bool, KeeperClientError> {
        let deadline = Instant::now() + timeout;
        if self.node.is_none() {
            self.client.ensure_path(&self.path).await?;
            let marker = if self.shared { "__rlock__" } else { "__lock__" };
            let prefix = format!("{}/{:032x}{marker}", self.path, rand::random::<u128>());
            self.node =
                Some(self.client.create(&prefix, &self.identifier, CreateMode::EphemeralSequential).await?);
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

    /// Adds `delta` (negative: subtracts); returns the new value.
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
