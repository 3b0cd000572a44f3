//! The replicated state machine: the keeper's [`KeeperState`], unchanged from the
//! standalone server, applied in log order on every member.
//!
//! openraft drives this copy: it applies committed entries (a transaction's zxid is its log
//! index), builds snapshots from it and installs the leader's snapshot on a member that fell
//! behind the purged log. Every applied entry, and every installed snapshot, is also handed
//! in order to the server's database actor through a [`Sink`]: the actor keeps the copy
//! that answers reads and fires watches (the same shadow-copy arrangement as the standalone
//! server's log writer, so building a snapshot never stops a client).
//!
//! Snapshots are files `snapshot-<index>.bin` in `dataDir/raft`: the snapshot's metadata and
//! the encoded state ([`encode_state`]: a version mark, then bincode), with a CRC-32C. The
//! newest is loaded on start. Snapshots from before session owners (`SLKS2`) and before
//! znode ACLs (no mark) are still read.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use sluice_keeper_core::{KeeperState, KeeperStateV1, KeeperStateV2, Txn};
use tracing::{info, warn};

use super::{zxid, BatchApplied, Io, KeeperRaft};

/// What the state machine tells the server, in log order.
#[derive(Debug)]
pub enum SmEvent {
    /// Entries were applied: each index with its transactions (none for Raft's own
    /// entries: a new leader's blank entry, a membership change).
    Committed(Vec<(u64, Vec<Txn>)>),
    /// A snapshot replaced the state; it is at `index`.
    Installed {
        /// The new state.
        state: Box<KeeperState>,
        /// Its last log index.
        index: u64,
    },
}

/// Where [`SmEvent`]s go.
pub type Sink = Arc<dyn Fn(SmEvent) + Send + Sync>;

/// Largest snapshot file accepted.
const MAX_SNAPSHOT: usize = 4 << 30;

#[derive(Serialize, Deserialize)]
struct SnapshotFileBody {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// The state machine of one member.
pub struct StateMachine {
    dir: PathBuf,
    state: KeeperState,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, openraft::BasicNode>,
    /// This member's id (for its spans).
    member: u64,
    sink: Sink,
    retain: usize,
    io: Io,
}

/// Runs `f` (file work) as `io` says: on tokio's blocking pool, or right here.
async fn run_io<T: Send + 'static>(
    io: Io,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match io {
        Io::Background => tokio::task::spawn_blocking(f).await.map_err(std::io::Error::other).and_then(|r| r),
        Io::Simulated => f(),
    }
}

impl StateMachine {
    /// The `apply` span of a traced proposal on this member, entered until dropped.
    fn apply_span(&self, parent: &sluice_net::TraceContext, zxid: i64) -> tracing::span::EnteredSpan {
        let span = tracing::info_span!(parent: None, "apply", member = self.member, zxid = format_args!("0x{zxid:x}"));
        sluice_net::trace::set_parent(&span, parent);
        span.entered()
    }
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine").field("last_applied", &self.last_applied).finish_non_exhaustive()
    }
}

fn snapshot_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("snapshot-"))
            .and_then(|n| n.strip_suffix(".bin"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((index, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn read_snapshot_file(path: &Path) -> Result<SnapshotFileBody, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < 4 {
        return Err("shorter than its checksum".into());
    }
    let (crc, body) = bytes.split_at(4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT>();
    bincode::serde::decode_from_slice(body, config).map(|(b, _)| b).map_err(|e| e.to_string())
}

/// Marks a state encoded with session owners ([`sluice_keeper_core::Owner`]).
const STATE_V3: &[u8; 6] = b"SLKS3\0";
/// Marks a state encoded with znode ACLs, before session owners. A state from before ACLs
/// starts with the varint count of its nodes and then a path, which starts with `/`: never
/// these bytes.
const STATE_V2: &[u8; 6] = b"SLKS2\0";

fn decode_state(data: &[u8]) -> Result<KeeperState, String> {
    let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT>();
    let mut state: KeeperState = if let Some(body) = data.strip_prefix(STATE_V3) {
        bincode::serde::decode_from_slice(body, config).map_err(|e| e.to_string())?.0
    } else if let Some(body) = data.strip_prefix(STATE_V2) {
        bincode::serde::decode_from_slice::<KeeperStateV2, _>(body, config)
            .map_err(|e| e.to_string())?
            .0
            .into()
    } else {
        bincode::serde::decode_from_slice::<KeeperStateV1, _>(data, config)
            .map_err(|e| e.to_string())?
            .0
            .into()
    };
    state.tree.check_consistent()?;
    state.rebuild_index();
    Ok(state)
}

/// The state as snapshots hold it: [`STATE_V3`], then bincode.
fn encode_state(state: &KeeperState) -> std::io::Result<Vec<u8>> {
    let mut out = STATE_V3.to_vec();
    bincode::serde::encode_into_std_write(state, &mut out, bincode::config::standard())
        .map_err(std::io::Error::other)?;
    Ok(out)
}

/// Writes `body` as the snapshot file for its index (synced unless `io` is simulated) and
/// deletes all but the newest `retain`.
fn write_snapshot_file(
    dir: &Path,
    body: &SnapshotFileBody,
    retain: usize,
    io: Io,
) -> std::io::Result<PathBuf> {
    let index = body.meta.last_log_id.map(|l| l.index).unwrap_or(0);
    let encoded =
        bincode::serde::encode_to_vec(body, bincode::config::standard()).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(encoded.len() + 4);
    bytes.extend_from_slice(&crc32c::crc32c(&encoded).to_le_bytes());
    bytes.extend_from_slice(&encoded);
    let path = dir.join(format!("snapshot-{index:020}.bin"));
    let tmp = dir.join(format!("snapshot-{index:020}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        if io == Io::Background {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, &path)?;
    if io == Io::Background {
        std::fs::File::open(dir)?.sync_all()?;
    }
    let files = snapshot_files(dir)?;
    for (_, old) in files.iter().take(files.len().saturating_sub(retain.max(1))) {
        if let Err(e) = std::fs::remove_file(old) {
            warn!(snapshot = %old.display(), error = %e, "cannot delete an old snapshot");
        }
    }
    Ok(path)
}

impl StateMachine {
    /// Loads the newest snapshot in `dir` (or starts empty). Returns the machine and the
    /// state it starts from, with its last log index, for the server's own copy.
    pub fn open(
        dir: &Path,
        member: u64,
        sink: Sink,
        retain: usize,
    ) -> Result<(StateMachine, KeeperState, u64), SnapshotDirError> {
        let io = |doing, source| SnapshotDirError { doing, dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
        let files = snapshot_files(dir).map_err(|e| io("list", e))?;
        let mut sm = StateMachine {
            dir: dir.to_path_buf(),
            state: KeeperState::new(),
            last_applied: None,
            membership: StoredMembership::default(),
            member,
            sink,
            retain,
            io: Io::Background,
        };
        // The newest readable snapshot wins; a damaged one is skipped (the log or the leader
        // has what it held).
        for (_, path) in files.iter().rev() {
            match read_snapshot_file(path).and_then(|b| decode_state(&b.data).map(|s| (b.meta, s))) {
                Ok((meta, state)) => {
                    info!(snapshot = %path.display(), nodes = state.tree.node_count(), "snapshot loaded");
                    sm.last_applied = meta.last_log_id;
                    sm.membership = meta.last_membership;
                    sm.state = state;
                    break;
                }
                Err(e) => warn!(snapshot = %path.display(), error = %e, "skipping an unreadable snapshot"),
            }
        }
        let index = sm.last_applied.map(|l| l.index).unwrap_or(0);
        let state = sm.state.clone();
        Ok((sm, state, index))
    }

    /// Writes snapshots as `io` says (the server's default is [`Io::Background`]).
    pub fn with_io(mut self, io: Io) -> StateMachine {
        self.io = io;
        self
    }
}

/// Why the snapshot directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot {doing} {}: {source}", dir.display())]
pub struct SnapshotDirError {
    /// What was being done ("create", "list").
    pub doing: &'static str,
    /// The directory.
    pub dir: PathBuf,
    /// The OS's reason.
    pub source: std::io::Error,
}

/// Builds a snapshot from a copy of the state, off the state machine's task.
pub struct Builder {
    dir: PathBuf,
    state: KeeperState,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, openraft::BasicNode>,
    retain: usize,
    io: Io,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("last_applied", &self.last_applied).finish_non_exhaustive()
    }
}

impl RaftSnapshotBuilder<KeeperRaft> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<KeeperRaft>, StorageError<u64>> {
        let state = std::mem::take(&mut self.state);
        let index = self.last_applied.map(|l| l.index).unwrap_or(0);
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{index}-{}", std::process::id()),
        };
        let (dir, retain, io, m) = (self.dir.clone(), self.retain, self.io, meta.clone());
        let started = std::time::Instant::now();
        let written = run_io(io, move || {
            let data = encode_state(&state)?;
            let body = SnapshotFileBody { meta: m, data };
            let path = write_snapshot_file(&dir, &body, retain, io)?;
            Ok((path, body.data))
        })
        .await;
        match written {
            Ok((path, data)) => {
                info!(
                    snapshot = %path.display(),
                    index,
                    bytes = data.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
                Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
            }
            Err(e) => Err(StorageIOError::write_snapshot(Some(meta.signature()), &e).into()),
        }
    }
}

impl RaftStateMachine<KeeperRaft> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, openraft::BasicNode>), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchApplied>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<KeeperRaft>> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        let mut applied = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {
                    replies.push(BatchApplied(Vec::new()));
                    applied.push((index, Vec::new()));
                }
                EntryPayload::Normal(batch) => {
                    let mut results = Vec::with_capacity(batch.0.len());
                    let mut txns = Vec::with_capacity(batch.0.len());
                    for (i, p) in batch.0.into_iter().enumerate() {
                        let txn =
                            Txn { zxid: zxid(index, i), time_ms: p.time_ms, session: p.session, op: p.op };
                        let _span = p.trace.map(|parent| self.apply_span(&parent, txn.zxid));
                        results.push(self.state.apply(&txn).result);
                        txns.push(txn);
                    }
                    replies.push(BatchApplied(results));
                    applied.push((index, txns));
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    replies.push(BatchApplied(Vec::new()));
                    applied.push((index, Vec::new()));
                }
            }
        }
        if !applied.is_empty() {
            (self.sink)(SmEvent::Committed(applied));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Builder {
            dir: self.dir.clone(),
            state: self.state.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            retain: self.retain,
            io: self.io,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let state = decode_state(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &std::io::Error::other(e)))?;
        let body = SnapshotFileBody { meta: meta.clone(), data };
        let (dir, retain, io) = (self.dir.clone(), self.retain, self.io);
        run_io(io, move || write_snapshot_file(&dir, &body, retain, io))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        info!(index, nodes = state.tree.node_count(), "installed the leader's snapshot");
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.state = state.clone();
        (self.sink)(SmEvent::Installed { state: Box::new(state), index });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<KeeperRaft>>, StorageError<u64>> {
        let files = snapshot_files(&self.dir).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        for (_, path) in files.iter().rev() {
            match read_snapshot_file(path) {
                Ok(body) => {
                    return Ok(Some(Snapshot { meta: body.meta, snapshot: Box::new(Cursor::new(body.data)) }))
                }
                Err(e) => warn!(snapshot = %path.display(), error = %e, "skipping an unreadable snapshot"),
            }
        }
        Ok(None)
    }
}
