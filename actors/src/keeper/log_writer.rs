//! The standalone keeper's log writer (one OS thread, not an actor) and its snapshot
//! thread: it owns the [`Store`], takes every transaction the [`Database`] queued since its
//! last write, writes them with one fsync (group commit), and tells the database how far the
//! log is durable. It also writes snapshots and purges old files.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use actix::prelude::*;
use sluice_ensemble::store::{SnapshotFile, Store, StoreError};
use sluice_keeper_core::{KeeperState, Txn};
use tracing::{info, warn};

use super::database::{Database, Durable, WriteRefused, WriterFailed};

/// The log writer thread: group commit, snapshots, purge.
///
/// It keeps its own copy of the replicated state (`shadow`), applying every transaction once
/// it is durable, and snapshots that copy: the database actor never stops for a snapshot
/// (copying a large tree on the actor's thread stalled every session for hundreds of ms).
/// The copy is handed to a snapshot thread, which serialises and fsyncs it while commits go
/// on; transactions committed meanwhile wait in a backlog and are applied when the copy
/// comes back. The price: a second apply per transaction and the tree's memory twice.
/// (ZooKeeper's "fuzzy" snapshot serialises the live tree while it changes instead.)
pub(crate) fn log_writer(
    mut store: Store,
    rx: std_mpsc::Receiver<Txn>,
    db: Addr<Database>,
    retain: usize,
    shadow: KeeperState,
) {
    type Written = (KeeperState, Result<PathBuf, StoreError>, Instant);
    let commit_latency = metrics::histogram!("sluice_keeper_commit_latency_seconds");
    let (done_tx, done_rx) = std_mpsc::channel::<Written>();
    let (job_tx, job_rx) = std_mpsc::channel::<(SnapshotFile, KeeperState, Instant)>();
    let snapshotter = std::thread::Builder::new().name("keeper-snapshot".into()).spawn(move || {
        while let Ok((file, state, started)) = job_rx.recv() {
            let written = file.write(&state);
            if done_tx.send((state, written, started)).is_err() {
                return;
            }
        }
    });
    if let Err(e) = snapshotter {
        // The job channel's receiver is gone with it: snapshots are then written here.
        warn!(error = %e, "cannot start the snapshot thread; snapshots will hold up writes");
    }
    let mut shadow = Some(shadow);
    let mut backlog: Vec<Txn> = Vec::new();
    // After a refused write: the zxid the database gives out again. What was queued with
    // later zxids before the database learnt of it is dropped (it was refused too).
    let mut refused_at: Option<i64> = None;
    while let Ok(first) = rx.recv() {
        // Group commit: everything queued since the last write goes in one fsync.
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        if let Some(zxid) = refused_at {
            let Some(again) = batch.iter().position(|t| t.zxid == zxid) else { continue };
            batch.drain(..again);
            refused_at = None;
        }
        let upto = batch.last().map(|t| t.zxid).unwrap_or_default();
        let started = Instant::now();
        if let Err(e) = store.append(&batch) {
            if e.is_resumable() {
                // Nothing of the batch is in the log (a full disk): the database answers
                // its writes with the error and gives their zxids out again.
                let zxid = batch.first().map(|t| t.zxid).unwrap_or_default();
                warn!(error = %e, zxid, "the transaction log refused a write; writes fail until it has room");
                db.do_send(WriteRefused { zxid, error: e.to_string() });
                refused_at = Some(zxid);
                continue;
            }
            db.do_send(WriterFailed(e.to_string()));
            return;
        }
        commit_latency.record(started.elapsed().as_secs_f64());
        db.do_send(Durable { upto });
        if let Ok((mut state, written, started)) = done_rx.try_recv() {
            finish_snapshot(&store, retain, written, started);
            for txn in backlog.drain(..) {
                state.apply(&txn);
            }
            shadow = Some(state);
        }
        match shadow.as_mut() {
            Some(state) => batch.iter().for_each(|txn| {
                state.apply(txn);
            }),
            None => backlog.extend(batch),
        }
        if store.wants_snapshot() {
            // The copy is at `upto` now; without it (a snapshot still being written) the
            // next batch asks again.
            if let Some(state) = shadow.take() {
                match store.begin_snapshot(upto) {
                    Ok(file) => {
                        if let Err(std_mpsc::SendError((file, state, started))) =
                            job_tx.send((file, state, Instant::now()))
                        {
                            finish_snapshot(&store, retain, file.write(&state), started);
                            shadow = Some(state);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot start a snapshot; will try again");
                        shadow = Some(state);
                    }
                }
            }
        }
    }
}

/// A snapshot file was written (or not): purge what it makes unnecessary, and say so.
fn finish_snapshot(store: &Store, retain: usize, written: Result<PathBuf, StoreError>, started: Instant) {
    match written.and_then(|p| store.purge(retain).map(|n| (p, n))) {
        Ok((path, purged)) => info!(
            snapshot = %path.display(),
            purged,
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        ),
        Err(e) => warn!(error = %e, "snapshot failed; the next one will try again"),
    }
}
