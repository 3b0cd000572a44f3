//! The broker's `ZnodeWatcher` actor against a real keeper process: it tells its
//! subscribers (an actor and a task) what its znode holds, re-arms its one-shot watch after
//! every event so that a series of changes is followed to the end, and keeps following
//! after the keeper is SIGKILLed and restarted under the session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use sluice_actors::broker::znode_watcher::{WatchRoutes, Watching, ZnodeChanged, ZnodeValue};
use sluice_client::keeper::{KeeperClient, KeeperClientError, KeeperClientOptions, KeeperEvent};
use sluice_keeper_core::{CreateMode, KeeperError};
use sluice_tests::{wait_for, KeeperProcess, TestPki};

const P: CreateMode = CreateMode::Persistent;

/// Keeps every `ZnodeChanged` it is sent.
struct Collector(Arc<Mutex<Vec<ZnodeChanged>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<ZnodeChanged> for Collector {
    type Result = ();
    fn handle(&mut self, msg: ZnodeChanged, _: &mut Context<Self>) {
        self.0.lock().expect("lock").push(msg);
    }
}

fn children(names: &[&str]) -> ZnodeValue {
    ZnodeValue::Children(names.iter().map(|s| s.to_string()).collect())
}

/// Waits until the collector's newest message says `want`.
async fn until_told(seen: &Arc<Mutex<Vec<ZnodeChanged>>>, want: &ZnodeValue, what: &str) {
    let told = wait_for(Duration::from_secs(10), || {
        let last = seen.lock().expect("lock").last().map(|m| m.value.clone());
        let ok = last.as_ref() == Some(want);
        async move { ok }
    })
    .await;
    let got: Vec<ZnodeValue> = seen.lock().expect("lock").iter().map(|m| m.value.clone()).collect();
    assert!(told, "{what}: the subscriber was never told {want:?}; it was told {got:?}");
}

/// Waits (10 s at most) until the watcher's newest answer satisfies `want`.
async fn node_until(
    node: &mut tokio::sync::watch::Receiver<Option<ZnodeValue>>,
    want: impl FnMut(&Option<ZnodeValue>) -> bool,
) -> bool {
    tokio::time::timeout(Duration::from_secs(10), node.wait_for(want)).await.is_ok_and(|r| r.is_ok())
}

#[actix_rt::test]
async fn a_watcher_follows_every_change_re_arming_its_watch_and_outlives_a_keeper_restart() {
    let pki = TestPki::new("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keeper = KeeperProcess::start(&pki, dir.path(), 200);
    let opts = KeeperClientOptions { session_timeout: Duration::from_secs(20), ..Default::default() };
    let (client, mut events) =
        KeeperClient::connect(&keeper.addr, &pki.client("broker"), opts).await.expect("connect");
    client.create("/w", b"", P).await.expect("create /w");

    // The session's events go to the watchers of their path, as the broker routes them.
    let routes = WatchRoutes::default();
    let router = {
        let routes = routes.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let KeeperEvent::Watch { path, .. } = event {
                    routes.fired(&path);
                }
            }
        })
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector(seen.clone()).start();
    let (_children_watcher, _) =
        routes.watch(client.clone(), "/w", Watching::Children, vec![collector.recipient()]);
    let (node_watcher, mut node) = routes.watch(client.clone(), "/n", Watching::Node, Vec::new());

    until_told(&seen, &children(&[]), "the first read").await;
    // A series of changes: each event is followed by a re-read that re-arms the watch.
    client.create("/w/a", b"", P).await.expect("create");
    until_told(&seen, &children(&["a"]), "after one create").await;
    client.create("/w/b", b"", P).await.expect("create");
    client.delete("/w/a", -1).await.expect("delete");
    until_told(&seen, &children(&["b"]), "after a create and a delete").await;
    assert!(seen.lock().expect("lock").iter().all(|m| m.path == "/w"), "messages name their path");

    // A task follows `/n` through the watch channel: absent, created, deleted.
    let absent = |v: &Option<ZnodeValue>| *v == Some(ZnodeValue::Node(None));
    assert!(
        node_until(&mut node, absent).await,
        "the node watcher never read /n as absent: {:?}",
        *node.borrow()
    );
    client.create("/n", b"x", P).await.expect("create /n");
    let created =
        |v: &Option<ZnodeValue>| matches!(v, Some(ZnodeValue::Node(Some(stat))) if stat.data_length == 1);
    assert!(
        node_until(&mut node, created).await,
        "the node watcher never saw /n created: {:?}",
        *node.borrow()
    );
    client.delete("/n", -1).await.expect("delete /n");
    assert!(
        node_until(&mut node, absent).await,
        "the node watcher never saw /n deleted: {:?}",
        *node.borrow()
    );

    // The keeper dies and comes back; the session (and the watchers on it) carry on.
    keeper.kill();
    keeper.restart();
    // The next request reconnects and resumes the session (a create whose answer was lost
    // on the way finds its node there).
    let reconnected = wait_for(Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            match client.create("/w/c", b"", P).await {
                Ok(_) | Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => true,
                Err(_) => false,
            }
        }
    })
    .await;
    assert!(reconnected, "the client never got back to the restarted keeper");
    until_told(&seen, &children(&["b", "c"]), "after the keeper's restart").await;

    // A stopped watcher is forgotten by the routes and tells nobody.
    node_watcher.do_send(sluice_actors::broker::znode_watcher::StopWatching);
    let stopped = wait_for(Duration::from_secs(5), || {
        let connected = node_watcher.connected();
        async move { !connected }
    })
    .await;
    assert!(stopped, "the watcher did not stop");
    router.abort();
}
