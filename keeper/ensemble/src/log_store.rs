//! The Raft log in `dataDir/raft`: segment files of checksummed records, replayed on start.
//!
//! Every change to the log is a record appended to the current segment: entries, a
//! truncation (`truncate` from an index on), a purge (everything up to a log id is in a
//! snapshot), the vote, the committed id. Replaying the records in order gives the log, the
//! vote and the committed id back. One thread writes: it takes every record queued since
//! its last write, writes them with one `fdatasync` (group commit) and then tells openraft
//! the entries are durable (the [`LogFlushed`] callback) — `save_vote` waits for that too.
//! The entries themselves are also kept in memory (a snapshot bounds how many there are), so
//! reads never touch the disk.
//!
//! Under [`Io::Simulated`] (a deterministic simulation) there is no writer thread: each
//! record is written in the caller's task, without `fdatasync`.
//!
//! Segments roll at [`SEGMENT_BYTES`]; each new segment starts with the vote, the purge point
//! and the committed id, so a segment whose every entry is purged can be deleted without
//! losing them. A torn record at the end of the last segment (a crash mid-write) is cut off;
//! a bad record anywhere else stops start-up, naming the file and offset.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Io, KeeperRaft};

/// A segment is rolled after this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Largest record accepted on replay.
const MAX_RECORD: u32 = 256 * 1024 * 1024;

type Id = LogId<u64>;

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Entries(Vec<Entry<KeeperRaft>>),
    /// Entries from this index on are gone.
    Truncate(u64),
    Purge(Id),
    Vote(Vote<u64>),
    Committed(Option<Id>),
    /// First in every segment: the format of what follows ([`FORMAT`]).
    Format(u32),
}

/// The log's format, written first in every segment. 1: a proposal carries its trace
/// context. (Segments written before this record existed have no such first record.)
pub const FORMAT: u32 = 1;

enum Done {
    None,
    Flushed(LogFlushed<KeeperRaft>),
    Synced(oneshot::Sender<io::Result<()>>),
}

#[derive(Debug, Default)]
struct Mem {
    entries: BTreeMap<u64, Entry<KeeperRaft>>,
    vote: Option<Vote<u64>>,
    committed: Option<Id>,
    purged: Option<Id>,
}

impl Mem {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Entries(entries) => {
                if let Some(first) = entries.first() {
                    let _ = self.entries.split_off(&first.log_id.index);
                }
                for e in entries {
                    self.entries.insert(e.log_id.index, e);
                }
            }
            Record::Truncate(from) => {
                let _ = self.entries.split_off(&from);
            }
            Record::Purge(id) => {
                self.entries = self.entries.split_off(&(id.index + 1));
                self.purged = Some(id);
            }
            Record::Vote(v) => self.vote = Some(v),
            Record::Committed(c) => self.committed = c,
            Record::Format(_) => {}
        }
    }
}

/// The Raft log of one keeper (cheap to clone: clones share it).
#[derive(Clone)]
pub struct LogStore {
    mem: Arc<Mutex<Mem>>,
    writer: Writing,
    stopped: tokio::sync::watch::Receiver<bool>,
    /// Why the writer stopped, when it failed (set before `stopped` turns true).
    failure: Arc<Mutex<Option<String>>>,
}

/// Where records go to be written.
#[derive(Clone)]
enum Writing {
    /// To the writer thread.
    Thread(std_mpsc::Sender<(Record, Done)>),
    /// Written in the caller's task ([`Io::Simulated`]).
    Inline(Arc<Mutex<Inline>>),
}

/// The writer of an [`Io::Simulated`] log; `stopped` turns true when the last handle goes,
/// as the thread's does when it ends.
struct Inline {
    writer: Writer,
    failed: bool,
    stopped: tokio::sync::watch::Sender<bool>,
}

impl Drop for Inline {
    fn drop(&mut self) {
        self.stopped.send_replace(true);
    }
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// Why the Raft log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// A file could not be read or written.
    #[error("raft log: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A record in the middle of the log is damaged.
    #[error(
        "raft log: {} is damaged at byte {offset} ({why}) and it is not the last segment; \
         move the data directory aside and let this server catch up from the others",
        path.display()
    )]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// A segment was written in another format than this build's.
    #[error(
        "raft log: {} was written in log format {} and this sluice reads format {FORMAT} only; \
         run the sluice that wrote it, or move the data directory aside and let this member \
         catch up from the others",
        path.display(),
        found.map_or_else(|| "0 (before formats were recorded)".to_string(), |f| f.to_string())
    )]
    Format {
        /// The segment.
        path: PathBuf,
        /// The format it records (`None`: no format record, i.e. format 0).
        found: Option<u32>,
    },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn segment_name(seq: u64) -> String {
    format!("log-{seq:010}.seg")
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogStoreError> {
    let io = |source| LogStoreError::Io { action: "list", path: dir.to_path_buf(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_prefix("log-"))
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    // Encoding our own types into a Vec cannot fail.
    let _ = bincode::serde::encode_into_std_write(record, out, bincode::config::standard());
    let len = (out.len() - start - 8) as u32;
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads a segment's records; returns them and the length of its valid prefix, or why the
/// first bad record is bad.
fn read_segment(path: &Path) -> Result<(Vec<Record>, u64, Option<String>), LogStoreError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|source| LogStoreError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut records = Vec::new();
    let mut at = 0usize;
    let bad = loop {
        if at == bytes.len() {
            break None;
        }
        if bytes.len() - at < 8 {
            break Some("a record header is cut short".to_string());
        }
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if len > MAX_RECORD || bytes.len() - at - 8 < len as usize {
            break Some(format!("a record of {len} bytes runs past the end"));
        }
        let body = &bytes[at + 8..at + 8 + len as usize];
        if crc32c::crc32c(body) != crc {
            break Some("checksum mismatch".to_string());
        }
        let config = bincode::config::standard().with_limit::<{ MAX_RECORD as usize }>();
        match bincode::serde::decode_from_slice::<Record, _>(body, config) {
            // Nothing past the first record is read in a format this build does not know.
            Ok((Record::Format(FORMAT), _)) if at == 0 => {}
            Ok((Record::Format(f), _)) if at == 0 => {
                return Err(LogStoreError::Format { path: path.to_path_buf(), found: Some(f) })
            }
            Ok(_) if at == 0 => return Err(LogStoreError::Format { path: path.to_path_buf(), found: None }),
            Ok((r, _)) => records.push(r),
            Err(_) if at == 0 => return Err(LogStoreError::Format { path: path.to_path_buf(), found: None }),
            Err(e) => break Some(format!("undecodable record: {e}")),
        }
        at += 8 + len as usize;
    };
    Ok((records, at as u64, bad))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LogStore {
    /// Opens (or creates) the log in `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<LogStore, LogStoreError> {
        LogStore::open_with(dir, Io::Background)
    }

    /// [`open`](Self::open), writing as `io` says.
    pub fn open_with(dir: &Path, io: Io) -> Result<LogStore, LogStoreError> {
        std::fs::create_dir_all(dir).map_err(|source| LogStoreError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        let found = segments(dir)?;
        let mut mem = Mem::default();
        let mut last_entries: Vec<(u64, PathBuf, Option<u64>)> = Vec::new();
        for (i, (seq, path)) in found.iter().enumerate() {
            let (records, valid, bad) = read_segment(path)?;
            let mut max_index = None;
            for r in records {
                if let Record::Entries(es) = &r {
                    max_index = es.last().map(|e| e.log_id.index).or(max_index);
                }
                mem.apply(r);
            }
            if let Some(why) = bad {
                if i + 1 != found.len() {
                    return Err(LogStoreError::Corrupt { path: path.clone(), offset: valid, why });
                }
                warn!(segment = %path.display(), at = valid, %why, "cutting a torn tail off the raft log");
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(valid))
                    .map_err(|source| LogStoreError::Io { action: "truncate", path: path.clone(), source })?;
            }
            last_entries.push((*seq, path.clone(), max_index));
        }
        info!(
            dir = %dir.display(),
            entries = mem.entries.len(),
            first = mem.entries.keys().next().copied(),
            last = mem.entries.keys().next_back().copied(),
            "raft log recovered"
        );
        let next_seq = found.last().map(|(s, _)| s + 1).unwrap_or(1);
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            segments: last_entries,
            file: None,
            written: 0,
            next_seq,
            vote: mem.vote,
            purged: mem.purged,
            committed: mem.committed,
            sync: io == Io::Background,
            buf: Vec::new(),
        };
        writer.roll().map_err(|source| LogStoreError::Io {
            action: "create a segment in",
            path: dir.into(),
            source,
        })?;
        let (flag, stopped) = tokio::sync::watch::channel(false);
        let mem = Arc::new(Mutex::new(mem));
        let failure = Arc::new(Mutex::new(None));
        if io == Io::Simulated {
            let inline = Inline { writer, failed: false, stopped: flag };
            let writer = Writing::Inline(Arc::new(Mutex::new(inline)));
            return Ok(LogStore { mem, writer, stopped, failure });
        }
        let (tx, rx) = std_mpsc::channel();
        let why = failure.clone();
        std::thread::Builder::new()
            .name("keeper-raft-log".into())
            .spawn(move || {
                if let Err(e) = writer.run(rx) {
                    *lock(&why) = Some(e);
                }
                let _ = flag.send(true);
            })
            .map_err(|source| LogStoreError::Io {
                action: "start the writer for",
                path: dir.into(),
                source,
            })?;
        Ok(LogStore { mem, writer: Writing::Thread(tx), stopped, failure })
    }

    // openraft's trait methods return its StorageError; this helper returns what they do.
    #[allow(clippy::result_large_err)]
    fn send(&self, record: Record, done: Done) -> Result<(), StorageError<u64>> {
        let stopped =
            || StorageIOError::write_logs(&io::Error::other("the raft log writer has stopped")).into();
        match &self.writer {
            Writing::Thread(tx) => tx.send((record, done)).map_err(|_| stopped()),
            Writing::Inline(inline) => {
                let mut inline = inline.lock().unwrap_or_else(|e| e.into_inner());
                if inline.failed {
                    return Err(stopped());
                }
                inline.failed = inline.writer.write(vec![(record, done)]).is_err();
                Ok(())
            }
        }
    }

    /// Turns true once the writer thread has written everything queued and stopped, which
    /// it does when the last handle on the log is dropped (so the directory may be opened
    /// again).
    pub fn stopped(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopped.clone()
    }

    /// Completes, with the reason (naming the file and the fix), once the writer has stopped
    /// because the log could not be written: a full disk, a failed `fsync`. Never completes
    /// while the log is written, nor when it stops only because every handle went.
    pub async fn failed(&self) -> String {
        let mut stopped = self.stopped.clone();
        loop {
            let ended = *stopped.borrow_and_update();
            if ended || stopped.changed().await.is_err() {
                let why = lock(&self.failure).clone();
                return match why {
                    Some(why) => why,
                    None => std::future::pending().await,
                };
            }
        }
    }

    /// The last index in the log (for status).
    pub fn last_index(&self) -> Option<u64> {
        lock(&self.mem).entries.keys().next_back().copied()
    }
}

struct Writer {
    dir: PathBuf,
    /// Every segment: sequence, path, largest entry index in it.
    segments: Vec<(u64, PathBuf, Option<u64>)>,
    file: Option<File>,
    written: u64,
    next_seq: u64,
    vote: Option<Vote<u64>>,
    purged: Option<Id>,
    committed: Option<Id>,
    /// Whether writes are synced (not under [`Io::Simulated`]).
    sync: bool,
    /// The encoding buffer, kept between batches.
    buf: Vec<u8>,
}

impl Writer {
    fn roll(&mut self) -> io::Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.dir.join(segment_name(seq));
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut buf = Vec::new();
        encode(&Record::Format(FORMAT), &mut buf);
        if let Some(v) = self.vote {
            encode(&Record::Vote(v), &mut buf);
        }
        if let Some(p) = self.purged {
            encode(&Record::Purge(p), &mut buf);
        }
        encode(&Record::Committed(self.committed), &mut buf);
        file.write_all(&buf)?;
        if self.sync {
            file.sync_data()?;
            sync_dir(&self.dir)?;
        }
        self.written = buf.len() as u64;
        self.file = Some(file);
        self.segments.push((seq, path, None));
        self.delete_purged();
        Ok(())
    }

    /// Deletes every segment but the current one whose entries are all purged.
    fn delete_purged(&mut self) {
        let purged = self.purged.map(|p| p.index);
        let current = self.segments.len().saturating_sub(1);
        let mut keep = Vec::new();
        for (i, (seq, path, max)) in std::mem::take(&mut self.segments).into_iter().enumerate() {
            let done = i < current && purged.is_some_and(|p| max.is_none_or(|m| m <= p));
            if done {
                if let Err(e) = std::fs::remove_file(&path) {
                    warn!(segment = %path.display(), error = %e, "cannot delete a purged raft log segment");
                    keep.push((seq, path, max));
                }
            } else {
                keep.push((seq, path, max));
            }
        }
        self.segments = keep;
    }

    /// Writes until every handle is gone; the error, naming the file and the fix, if the log
    /// could no longer be written. A failed write or fsync is never retried: what the kernel
    /// kept of the failed pages is unknown, so only a restart, recovering from the files,
    /// knows what the log holds.
    fn run(mut self, rx: std_mpsc::Receiver<(Record, Done)>) -> Result<(), String> {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            if let Err(why) = self.write(batch) {
                let file = self.segments.last().map(|(_, p, _)| p.display().to_string()).unwrap_or_default();
                return Err(format!(
                    "the raft log cannot be written ({why}: {file}); free space on or repair that disk, then \
                     start this server again: it recovers what its log holds and catches up from the others"
                ));
            }
        }
        Ok(())
    }

    /// Writes `batch` (with one sync if anyone waits on it) and tells the waiters; the error
    /// if the log can no longer be written.
    fn write(&mut self, batch: Vec<(Record, Done)>) -> Result<(), String> {
        // The ensemble's group commit: the same series a standalone server's writer records.
        let commit_latency = metrics::histogram!("sluice_keeper_commit_latency_seconds");
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for (record, _) in &batch {
            match record {
                Record::Entries(es) => {
                    if let (Some(last), Some(seg)) = (es.last(), self.segments.last_mut()) {
                        seg.2 = Some(last.log_id.index);
                    }
                }
                Record::Vote(v) => self.vote = Some(*v),
                Record::Purge(p) => self.purged = Some(*p),
                Record::Committed(c) => self.committed = *c,
                Record::Truncate(_) | Record::Format(_) => {}
            }
            encode(record, &mut buf);
        }
        // Only a batch someone waits on is fsynced. The others (truncate, purge, committed)
        // may be lost in a crash without harm: a truncation is always followed by entries
        // whose flush covers it; a lost purge or committed id is only a step back.
        let wanted = self.sync && batch.iter().any(|(_, done)| !matches!(done, Done::None));
        let started = std::time::Instant::now();
        let result = match self.file.as_mut() {
            Some(f) => f.write_all(&buf).and_then(|()| if wanted { f.sync_data() } else { Ok(()) }),
            None => Err(io::Error::other("no open segment")),
        };
        if wanted {
            commit_latency.record(started.elapsed().as_secs_f64());
        }
        self.written += buf.len() as u64;
        self.buf = buf;
        let failed = result.as_ref().err().map(|e| e.to_string());
        for (_, done) in batch {
            let result = match &failed {
                None => Ok(()),
                Some(e) => Err(io::Error::other(e.clone())),
            };
            match done {
                Done::None => {}
                Done::Flushed(cb) => cb.log_io_completed(result),
                Done::Synced(tx) => {
                    let _ = tx.send(result);
                }
            }
        }
        if let Some(e) = failed {
            warn!(error = %e, "the raft log cannot be written; this server stops accepting entries");
            return Err(e);
        }
        if self.written >= SEGMENT_BYTES {
            if let Err(e) = self.roll() {
                warn!(error = %e, "cannot roll the raft log; this server stops accepting entries");
                return Err(e.to_string());
            }
        }
        Ok(())
    }
}

impl RaftLogReader<KeeperRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<KeeperRaft>>, StorageError<u64>> {
        Ok(lock(&self.mem).entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<KeeperRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<KeeperRaft>, StorageError<u64>> {
        let mem = lock(&self.mem);
        let last = mem.entries.values().next_back().map(|e| e.log_id).or(mem.purged);
        Ok(LogState { last_purged_log_id: mem.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        lock(&self.mem).vote = Some(*vote);
        let (tx, rx) = oneshot::channel();
        self.send(Record::Vote(*vote), Done::Synced(tx))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageIOError::write_vote(&e).into()),
            Err(_) => {
                Err(StorageIOError::write_vote(&io::Error::other("the raft log writer has stopped")).into())
            }
        }
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(lock(&self.mem).vote)
    }

    async fn save_committed(&mut self, committed: Option<Id>) -> Result<(), StorageError<u64>> {
        lock(&self.mem).committed = committed;
        self.send(Record::Committed(committed), Done::None)
    }

    async fn read_committed(&mut self) -> Result<Option<Id>, StorageError<u64>> {
        Ok(lock(&self.mem).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<KeeperRaft>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<KeeperRaft>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        lock(&self.mem).apply(Record::Entries(entries.clone()));
        self.send(Record::Entries(entries), Done::Flushed(callback))
    }

    async fn truncate(&mut self, log_id: Id) -> Result<(), StorageError<u64>> {
        lock(&self.mem).apply(Record::Truncate(log_id.index));
        self.send(Record::Truncate(log_id.index), Done::None)
    }

    async fn purge(&mut self, log_id: Id) -> Result<(), StorageError<u64>> {
        lock(&self.mem).apply(Record::Purge(log_id));
        self.send(Record::Purge(log_id), Done::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry<KeeperRaft> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    fn id(term: u64, index: u64) -> Id {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    async fn flushed(store: &mut LogStore, entries: Vec<Entry<KeeperRaft>>) {
        use openraft::storage::RaftLogStorageExt;
        store.blocking_append(entries).await.expect("append and flush");
    }

    #[tokio::test]
    async fn the_log_vote_and_purge_point_survive_a_restart_and_truncation_sticks() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = LogStore::open(dir.path()).expect("open");
            flushed(&mut s, (1..=10).map(|i| entry(1, i)).collect()).await;
            s.save_vote(&Vote::new(3, 2)).await.expect("vote");
            s.truncate(id(1, 8)).await.expect("truncate");
            flushed(&mut s, vec![entry(3, 8)]).await;
            s.purge(id(1, 3)).await.expect("purge");
            s.save_committed(Some(id(1, 5))).await.expect("committed");
            flushed(&mut s, vec![entry(3, 9)]).await;
        }
        let mut s = LogStore::open(dir.path()).expect("reopen");
        let state = s.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(id(1, 3)));
        assert_eq!(state.last_log_id, Some(id(3, 9)));
        assert_eq!(s.read_vote().await.expect("vote"), Some(Vote::new(3, 2)));
        assert_eq!(s.read_committed().await.expect("committed"), Some(id(1, 5)));
        let got: Vec<_> =
            s.try_get_log_entries(0..100).await.expect("read").iter().map(|e| e.log_id).collect();
        let want: Vec<_> = (4..=7).map(|i| id(1, i)).chain([id(3, 8), id(3, 9)]).collect();
        assert_eq!(got, want, "purged entries gone, 8.. replaced by term 3");
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_damage_in_an_older_segment_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = LogStore::open(dir.path()).expect("open");
            flushed(&mut s, (1..=3).map(|i| entry(1, i)).collect()).await;
        }
        let (_, last) = segments(dir.path()).expect("list").pop().expect("a segment");
        let mut f = OpenOptions::new().append(true).open(&last).expect("open segment");
        f.write_all(&[200, 0, 0, 0, 1, 2]).expect("tear");
        drop(f);
        let mut s = LogStore::open(dir.path()).expect("a torn tail is cut");
        assert_eq!(s.get_log_state().await.expect("state").last_log_id, Some(id(1, 3)));
        drop(s);
        // Damage the first segment (it now has a successor): start-up must refuse.
        let (_, first) = segments(dir.path()).expect("list").into_iter().next().expect("a segment");
        let mut bytes = std::fs::read(&first).expect("read");
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&first, bytes).expect("write");
        match LogStore::open(dir.path()) {
            Err(LogStoreError::Corrupt { path, .. }) => assert_eq!(path, first),
            other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_segment_of_another_format_is_refused_naming_both_formats() {
        for (first, found) in
            [(Record::Format(FORMAT + 1), Some(FORMAT + 1)), (Record::Vote(Vote::new(1, 1)), None)]
        {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut buf = Vec::new();
            encode(&first, &mut buf);
            encode(&Record::Committed(None), &mut buf);
            let path = dir.path().join(segment_name(1));
            std::fs::write(&path, buf).expect("write");
            match LogStore::open(dir.path()) {
                Err(e @ LogStoreError::Format { .. }) => {
                    let LogStoreError::Format { path: p, found: f } = &e else { unreachable!() };
                    assert_eq!((p, *f), (&path, found));
                    let text = e.to_string();
                    assert!(text.contains(&format!("reads format {FORMAT} only")), "{text}");
                }
                other => panic!("expected Format, got {:?}", other.map(|_| ())),
            }
        }
    }
}
