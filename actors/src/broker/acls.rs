//! `AclWatcher`: keeps this broker's copy of the ACLs ([`SharedAcls`]) equal to what the
//! keeper holds, and the keeper writes of CreateAcls/DeleteAcls ([`add`], [`remove`]).
//!
//! The store is Kafka's ZooKeeper-mode one (see `sluice_broker_core::acl`): one znode per
//! resource pattern, and a sequential change notification per write. The watcher holds a
//! child watch on both notification paths (through [`ZnodeWatcher`]s). The first answer of
//! a session loads everything of that pattern type; each later one re-reads the resources
//! named by the notifications newer than the last it handled. Work is done one answer at a
//! time (`ctx.wait`), so notifications are applied in order. Notifications older than
//! [`CHANGE_EXPIRY_MS`] are deleted by whichever broker sees them first, as Kafka does.

use std::sync::{Arc, RwLock};

use actix::prelude::*;
use futures_util::future::join_all;
use sluice_broker_core::acl::{
    self, change_prefix, change_sequence, AccessEntry, AclCache, AclFilter, PatternType, ResourcePattern,
    ResourceType, ACL_CHANGES, CHANGE_EXPIRY_MS, EXTENDED_ACL_CHANGES,
};
use sluice_client::keeper::{KeeperClient, KeeperClientError};
use sluice_keeper_core::{CreateMode, KeeperError};
use tracing::{debug, info, warn};

use super::znode_watcher::{StopWatching, WatchRoutes, Watching, ZnodeChanged, ZnodeValue, ZnodeWatcher};
use crate::clock::now_ms;

/// This broker's copy of the ACLs; cheap to clone (clones share). Readers take a snapshot
/// ([`SharedAcls::snapshot`]) and never wait for a writer for long.
#[derive(Debug, Clone, Default)]
pub struct SharedAcls(Arc<RwLock<Arc<AclCache>>>);

impl SharedAcls {
    /// The ACLs as they are now.
    pub fn snapshot(&self) -> Arc<AclCache> {
        self.0.read().map_or_else(|p| p.into_inner().clone(), |c| c.clone())
    }

    fn update(&self, f: impl FnOnce(&mut AclCache)) {
        let mut slot = self.0.write().unwrap_or_else(|p| p.into_inner());
        f(Arc::make_mut(&mut slot));
    }
}

/// Why an ACL write failed.
#[derive(Debug, thiserror::Error)]
pub enum AclStoreError {
    /// The keeper could not be reached or refused.
    #[error("keeper: {0}")]
    Keeper(#[from] KeeperClientError),
    /// A znode holds something unreadable.
    #[error(transparent)]
    Znode(#[from] sluice_broker_core::znodes::ZnodeError),
    /// Other writers kept changing the same resource.
    #[error("{0}: changed by others {1} times in a row; try again")]
    Contended(String, usize),
}

/// How many times a write retries a version conflict.
const CONFLICT_RETRIES: usize = 20;

async fn read_entries(
    keeper: &KeeperClient,
    pattern: &ResourcePattern,
) -> Result<(Vec<AccessEntry>, Option<i32>), AclStoreError> {
    let path = acl::acl_path(pattern);
    match keeper.get_data(&path, false).await {
        Ok((data, stat)) => Ok((acl::decode_acls(&path, &data)?, Some(stat.version))),
        Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => Ok((Vec::new(), None)),
        Err(e) => Err(e.into()),
    }
}

/// Rewrites `pattern`'s ACL znode with `edit`'s answer (conditional on the version read,
/// retried on conflict), applies it to `acls`, then announces the change. `edit` gets the entries there and
/// returns the new list, or `None` to leave it alone. Returns what `edit` saw.
async fn edit(
    keeper: &KeeperClient,
    acls: &SharedAcls,
    pattern: &ResourcePattern,
    edit: impl Fn(&[AccessEntry]) -> Option<Vec<AccessEntry>>,
) -> Result<Vec<AccessEntry>, AclStoreError> {
    let path = acl::acl_path(pattern);
    for _ in 0..CONFLICT_RETRIES {
        let (existing, version) = read_entries(keeper, pattern).await?;
        let Some(new) = edit(&existing) else { return Ok(existing) };
        let written = match (version, new.is_empty()) {
            (None, true) => return Ok(existing),
            (None, false) => {
                keeper.create(&path, &acl::encode_acls(&new), CreateMode::Persistent).await.map(|_| ())
            }
            (Some(v), true) => keeper.delete(&path, v).await,
            (Some(v), false) => keeper.set_data(&path, &acl::encode_acls(&new), v).await.map(|_| ()),
        };
        match written {
            Ok(()) => {
                // This broker's copy has the write at once (a client reads its own write
                // here); the notification brings it to the others.
                acls.update(|cache| cache.set(pattern, new));
                let prefix = change_prefix(pattern.pattern_type);
                keeper
                    .create(&prefix, &acl::encode_change(pattern), CreateMode::PersistentSequential)
                    .await?;
                return Ok(existing);
            }
            Err(KeeperClientError::Keeper(
                KeeperError::BadVersion { .. } | KeeperError::NodeExists { .. } | KeeperError::NoNode { .. },
            )) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AclStoreError::Contended(path, CONFLICT_RETRIES))
}

/// Adds `entries` to `pattern`'s ACLs (those present already are kept once).
pub async fn add(
    keeper: &KeeperClient,
    acls: &SharedAcls,
    pattern: &ResourcePattern,
    entries: &[AccessEntry],
) -> Result<(), AclStoreError> {
    edit(keeper, acls, pattern, |existing| acl::with_added(existing, entries)).await.map(|_| ())
}

/// Removes the ACLs `filter` matches; returns those removed.
pub async fn remove(
    keeper: &KeeperClient,
    acls: &SharedAcls,
    filter: &AclFilter,
) -> Result<Vec<acl::AclBinding>, AclStoreError> {
    let cache = acls.snapshot();
    // The patterns come from this broker's copy; each one's entries are read again from
    // the keeper, so an entry added since is judged too.
    let mut patterns: Vec<ResourcePattern> = cache.matching(filter).into_iter().map(|b| b.pattern).collect();
    patterns.dedup();
    let mut removed = Vec::new();
    for pattern in patterns {
        let replaced = edit(keeper, acls, &pattern, |existing| {
            let (kept, gone) = acl::without(existing, filter);
            (!gone.is_empty()).then_some(kept)
        })
        .await?;
        // What went is what the filter takes of the entries the write replaced.
        let (_, gone) = acl::without(&replaced, filter);
        removed.extend(gone.into_iter().map(|entry| acl::AclBinding { pattern: pattern.clone(), entry }));
    }
    Ok(removed)
}

/// Every ACL of `pattern_type` in the keeper.
pub async fn load(
    keeper: &KeeperClient,
    pattern_type: PatternType,
) -> Result<Vec<(ResourcePattern, Vec<AccessEntry>)>, AclStoreError> {
    let mut out = Vec::new();
    for &resource_type in ResourceType::ALL {
        let parent = acl::acl_type_path(pattern_type, resource_type);
        let names = match keeper.children(&parent, false).await {
            Ok(names) => names,
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => continue,
            Err(e) => return Err(e.into()),
        };
        let patterns: Vec<ResourcePattern> =
            names.into_iter().map(|name| ResourcePattern { resource_type, name, pattern_type }).collect();
        // Pipelined: the keeper client sends them all before the first answer arrives.
        let read = join_all(patterns.iter().map(|p| read_entries(keeper, p))).await;
        for (p, r) in patterns.into_iter().zip(read) {
            out.push((p, r?.0));
        }
    }
    Ok(out)
}

/// Replaces every ACL of `pattern_type` in `acls` with what the keeper holds; returns
/// how many there are.
pub async fn load_into(
    keeper: &KeeperClient,
    acls: &SharedAcls,
    pattern_type: PatternType,
) -> Result<usize, AclStoreError> {
    let loaded = load(keeper, pattern_type).await?;
    let n = loaded.iter().map(|(_, e)| e.len()).sum();
    acls.update(|cache| {
        for b in cache.bindings().into_iter().filter(|b| b.pattern.pattern_type == pattern_type) {
            cache.set(&b.pattern, Vec::new());
        }
        for (p, entries) in loaded {
            cache.set(&p, entries);
        }
    });
    Ok(n)
}

/// The actor.
pub struct AclWatcher {
    keeper: KeeperClient,
    acls: SharedAcls,
    routes: WatchRoutes,
    watchers: Vec<Addr<ZnodeWatcher>>,
    /// The newest notification handled, per pattern type (`None`: nothing loaded yet this
    /// session).
    literal_seq: Option<i64>,
    prefixed_seq: Option<i64>,
}

impl std::fmt::Debug for AclWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclWatcher").finish_non_exhaustive()
    }
}

impl AclWatcher {
    /// A watcher on `keeper`'s session, keeping `acls`; its znode watches go through
    /// `routes`.
    pub fn new(keeper: KeeperClient, acls: SharedAcls, routes: WatchRoutes) -> Self {
        AclWatcher { keeper, acls, routes, watchers: Vec::new(), literal_seq: None, prefixed_seq: None }
    }
}

impl Actor for AclWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient::<ZnodeChanged>();
        for path in [ACL_CHANGES, EXTENDED_ACL_CHANGES] {
            let (w, _) = self.routes.watch(self.keeper.clone(), path, Watching::Children, vec![me.clone()]);
            self.watchers.push(w);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for w in &self.watchers {
            w.do_send(StopWatching);
        }
    }
}

/// What one notification path's new children call for.
enum Work {
    /// Load every ACL of the pattern type (first answer of the session).
    LoadAll,
    /// Re-read these resources (from these notifications).
    Reload(Vec<String>),
}

impl Handler<StopWatching> for AclWatcher {
    type Result = ();

    fn handle(&mut self, _: StopWatching, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<ZnodeChanged> for AclWatcher {
    type Result = ();

    fn handle(&mut self, msg: ZnodeChanged, ctx: &mut Context<Self>) {
        let _span = crate::handling!("AclWatcher", "ZnodeChanged");
        let ZnodeValue::Children(children) = msg.value else { return };
        let pattern_type = if msg.path == ACL_CHANGES { PatternType::Literal } else { PatternType::Prefixed };
        let seen = match pattern_type {
            PatternType::Literal => &mut self.literal_seq,
            PatternType::Prefixed => &mut self.prefixed_seq,
        };
        let mut numbered: Vec<(i64, String)> =
            children.into_iter().filter_map(|c| change_sequence(&c).map(|n| (n, c))).collect();
        numbered.sort();
        let newest = numbered.last().map_or(-1, |(n, _)| *n);
        let work = match *seen {
            None => Work::LoadAll,
            Some(last) => {
                Work::Reload(numbered.iter().filter(|(n, _)| *n > last).map(|(_, c)| c.clone()).collect())
            }
        };
        *seen = Some(newest.max(seen.unwrap_or(-1)));
        let all: Vec<String> = numbered.into_iter().map(|(_, c)| c).collect();
        let (keeper, acls, parent) = (self.keeper.clone(), self.acls.clone(), msg.path.clone());
        let job = async move {
            let result = match work {
                Work::LoadAll => load_into(&keeper, &acls, pattern_type).await.map(|n| {
                    info!(pattern_type = %pattern_type, acls = n, "ACLs loaded");
                }),
                Work::Reload(changes) => reload(&keeper, &acls, &parent, pattern_type, &changes).await,
            };
            if let Err(e) = result {
                // The next answer (an event, or the watcher's periodic re-read) tries again
                // from the start: forget what this session loaded.
                warn!(error = %e, path = %parent, "cannot read the ACLs; loading them again");
                return false;
            }
            purge_expired(&keeper, &parent, &all).await;
            true
        };
        ctx.wait(job.into_actor(self).map(move |ok, this, _| {
            if !ok {
                match pattern_type {
                    PatternType::Literal => this.literal_seq = None,
                    PatternType::Prefixed => this.prefixed_seq = None,
                }
            }
        }));
    }
}

/// Re-reads the resources the notifications `changes` (children of `parent`) name.
async fn reload(
    keeper: &KeeperClient,
    acls: &SharedAcls,
    parent: &str,
    pattern_type: PatternType,
    changes: &[String],
) -> Result<(), AclStoreError> {
    for child in changes {
        let path = format!("{parent}/{child}");
        let data = match keeper.get_data(&path, false).await {
            Ok((data, _)) => data,
            // Purged by another broker: it was old, and a full load follows a long absence.
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => continue,
            Err(e) => return Err(e.into()),
        };
        let pattern = match acl::decode_change(&path, pattern_type, &data) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "skipping an unreadable ACL change notification");
                continue;
            }
        };
        let (entries, _) = read_entries(keeper, &pattern).await?;
        debug!(%pattern, acls = entries.len(), "ACLs changed");
        acls.update(|cache| cache.set(&pattern, entries));
    }
    Ok(())
}

/// Deletes the notifications among `children` of `parent` older than
/// [`CHANGE_EXPIRY_MS`] (errors are left for the next time).
async fn purge_expired(keeper: &KeeperClient, parent: &str, children: &[String]) {
    let cutoff = now_ms() - CHANGE_EXPIRY_MS as i64;
    // Notifications are in order: stop at the first young one.
    for child in children {
        let path = format!("{parent}/{child}");
        match keeper.exists(&path, false).await {
            Ok(Some(stat)) if stat.ctime < cutoff => {
                let _ = keeper.delete(&path, -1).await;
            }
            _ => break,
        }
    }
}
