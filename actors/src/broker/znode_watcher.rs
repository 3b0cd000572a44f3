//! `ZnodeWatcher`: one znode the broker watches (`/controller`, `/brokers/ids`,
//! `/brokers/topics`, `/admin/delete_topics`, `/isr_change_notification`).
//!
//! The watcher reads its znode with a watch set (its children, or whether it exists), sends
//! what it read to its subscribers as a typed [`ZnodeChanged`], and reads again — re-arming
//! the watch — each time the watch fires. A keeper watch is one-shot and a change between
//! the event and the re-read is seen by the re-read, so no change is missed.
//!
//! - **Events.** A session has one event stream; [`WatchRoutes::fired`] hands each watch
//!   event to the watchers of its path.
//! - **Session moves.** The keeper client re-registers its watches on every server it
//!   resumes the session on (ZooKeeper's `SetWatches`), so a watcher lives as long as its
//!   session; after a session loss the broker starts new watchers on the new session.
//! - **Lost watches.** A read that fails (connection trouble) is retried with backoff, and
//!   every [`RECHECK`] the watcher reads again and tells its subscribers if the answer
//!   changed: a watch lost with a connection cannot leave anyone waiting forever.
//!
//! Subscribers are actors (a [`Recipient`]) or tasks ([`tokio::sync::watch`] receivers of
//! the newest answer).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sluice_client::keeper::{KeeperClient, KeeperClientError};
use sluice_keeper_core::Stat;
use sluice_net::Backoff;
use tokio::sync::watch;
use tracing::{debug, warn};

/// How often a watcher reads its znode again without an event.
pub const RECHECK: Duration = Duration::from_secs(5);

/// What a watcher reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watching {
    /// The znode's children (a child watch).
    Children,
    /// Whether the znode exists, and its stat (an exists watch: fires on create, delete and
    /// data change).
    Node,
}

/// What a watcher read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZnodeValue {
    /// The children's names, sorted.
    Children(Vec<String>),
    /// The znode's stat, or `None` if it does not exist.
    Node(Option<Stat>),
}

/// A watched znode changed (or was read for the first time): `value` is what it holds now.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ZnodeChanged {
    /// The znode (client path).
    pub path: String,
    /// What it holds now.
    pub value: ZnodeValue,
}

/// The session reported that this watcher's watch fired.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatchFired;

/// Stop watching (the subscriber is going away).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopWatching;

/// The actor.
pub struct ZnodeWatcher {
    keeper: KeeperClient,
    path: String,
    watching: Watching,
    subscribers: Vec<Recipient<ZnodeChanged>>,
    newest: watch::Sender<Option<ZnodeValue>>,
    /// A read is in flight.
    reading: bool,
    /// The watch fired while a read was in flight: read again when it ends.
    again: bool,
    backoff: Backoff,
}

impl std::fmt::Debug for ZnodeWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZnodeWatcher")
            .field("path", &self.path)
            .field("watching", &self.watching)
            .finish_non_exhaustive()
    }
}

impl ZnodeWatcher {
    /// A watcher of `path` on `keeper`'s session that tells `subscribers`; the receiver
    /// sees every answer too (`None` until the first read).
    pub fn new(
        keeper: KeeperClient,
        path: &str,
        watching: Watching,
        subscribers: Vec<Recipient<ZnodeChanged>>,
    ) -> (ZnodeWatcher, watch::Receiver<Option<ZnodeValue>>) {
        let (newest, rx) = watch::channel(None);
        let watcher = ZnodeWatcher {
            keeper,
            path: path.to_string(),
            watching,
            subscribers,
            newest,
            reading: false,
            again: false,
            backoff: Backoff::new(Duration::from_millis(100), RECHECK),
        };
        (watcher, rx)
    }

    /// Reads the znode with a watch set; `fired`: tell the subscribers even if the answer
    /// is the same (the event says something changed, e.g. a child came and went).
    fn read(&mut self, fired: bool, ctx: &mut Context<Self>) {
        if self.reading {
            self.again |= fired;
            return;
        }
        self.reading = true;
        let (keeper, path, watching) = (self.keeper.clone(), self.path.clone(), self.watching);
        let read = async move {
            match watching {
                Watching::Children => keeper.children(&path, true).await.map(|mut c| {
                    c.sort();
                    ZnodeValue::Children(c)
                }),
                Watching::Node => keeper.exists(&path, true).await.map(ZnodeValue::Node),
            }
        };
        ctx.spawn(read.into_actor(self).map(move |result: Result<ZnodeValue, KeeperClientError>, this, ctx| {
            this.reading = false;
            match result {
                Ok(value) => {
                    this.backoff.reset();
                    let changed = this.newest.borrow().as_ref() != Some(&value);
                    if fired || changed {
                        debug!(path = %this.path, ?value, "watched znode changed");
                        for s in &this.subscribers {
                            s.do_send(ZnodeChanged { path: this.path.clone(), value: value.clone() });
                        }
                        this.newest.send_replace(Some(value));
                    }
                    if std::mem::take(&mut this.again) {
                        this.read(true, ctx);
                    }
                }
                Err(e) => {
                    let delay = this.backoff.next_delay();
                    warn!(path = %this.path, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot watch a znode");
                    // The event (if any) is not lost: the retry tells the subscribers.
                    let fired = fired || std::mem::take(&mut this.again);
                    ctx.run_later(delay, move |this, ctx| this.read(fired, ctx));
                }
            }
        }));
    }
}

impl Actor for ZnodeWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.read(true, ctx);
        ctx.run_interval(RECHECK, |this, ctx| this.read(false, ctx));
    }
}

impl Handler<WatchFired> for ZnodeWatcher {
    type Result = ();

    fn handle(&mut self, _: WatchFired, ctx: &mut Context<Self>) {
        let _span = crate::handling!("ZnodeWatcher", "WatchFired");
        self.read(true, ctx);
    }
}

impl Handler<StopWatching> for ZnodeWatcher {
    type Result = ();

    fn handle(&mut self, _: StopWatching, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Which watchers a session's watch events go to, by path. Cheap to clone: clones share.
#[derive(Debug, Clone, Default)]
pub struct WatchRoutes(Arc<Mutex<BTreeMap<String, Vec<Addr<ZnodeWatcher>>>>>);

impl WatchRoutes {
    /// Starts a [`ZnodeWatcher`] of `path` on `keeper`'s session and routes the path's
    /// events to it.
    pub fn watch(
        &self,
        keeper: KeeperClient,
        path: &str,
        watching: Watching,
        subscribers: Vec<Recipient<ZnodeChanged>>,
    ) -> (Addr<ZnodeWatcher>, watch::Receiver<Option<ZnodeValue>>) {
        let (watcher, rx) = ZnodeWatcher::new(keeper, path, watching, subscribers);
        let addr = watcher.start();
        let mut routes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        routes.entry(path.to_string()).or_default().push(addr.clone());
        (addr, rx)
    }

    /// A watch on `path` fired: tells its watchers (and forgets stopped ones).
    pub fn fired(&self, path: &str) {
        let mut routes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(watchers) = routes.get_mut(path) {
            watchers.retain(|w| w.connected());
            for w in watchers.iter() {
                w.do_send(WatchFired);
            }
            if watchers.is_empty() {
                routes.remove(path);
            }
        }
    }
}
