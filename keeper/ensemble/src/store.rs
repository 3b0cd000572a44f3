//! The keeper's durable store in `dataDir`: a transaction log and snapshots.
//!
//! ```text
//! dataDir/log.<zxid of its first txn, 16 hex digits>
//!     records: u32 BE payload length | u32 BE CRC-32C of the payload | payload (bincode Txn)
//! dataDir/snapshot.<zxid it reflects, 16 hex digits>
//!     "SLKSNAP3" | u32 BE CRC-32C of the rest | bincode KeeperState
//! ```
//!
//! `SLKSNAP2` snapshots (written before sessions had owners) are still read, and so are
//! `SLKSNAP1` ones (before znodes had ACLs): every node in them gets `world:anyone` with
//! every permission, the ACL all nodes had. The log's records need
//! no version: operations added since are new variants at the end of `Op`.
//!
//! [`Store::append`] writes a batch of transactions and makes them durable with one
//! `fdatasync` (group commit): callers acknowledge writes only after it returns. Recovery
//! loads the newest snapshot that passes its CRC and replays every later transaction. A
//! record cut short or failing its CRC at the end of the newest log segment is a write that
//! was never acknowledged (the server died mid-write): it is truncated away and reported.
//! The same damage anywhere else is corruption, and start-up stops with the file and offset.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sluice_keeper_core::{KeeperState, KeeperStateV1, KeeperStateV2, Txn};

const SNAPSHOT_MAGIC: &[u8; 8] = b"SLKSNAP3";
/// Snapshots from before session owners.
const SNAPSHOT_MAGIC_V2: &[u8; 8] = b"SLKSNAP2";
/// Snapshots from before znode ACLs.
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"SLKSNAP1";
const RECORD_HEADER: usize = 8;
/// Largest record accepted when reading (a txn holds at most ~1 MiB of data plus paths).
const MAX_RECORD: u32 = 64 * 1024 * 1024;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS reason.
        source: io::Error,
    },
    /// A log record before the end of the log is damaged.
    #[error("{path} is corrupt at byte {offset}: {reason}; the log after it cannot be trusted (restore this server from another member or a backup)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Writing to the log failed before anything of the write was synced, and what part of
    /// it reached the file was cut again: the log holds exactly what it held before, and a
    /// later append may succeed (a full disk that gets room again). Not an fsync failure:
    /// those are never retried.
    #[error("cannot write {path}: {source}; nothing of the write was kept, and writes resume once the disk has room (free space in dataDir)")]
    WriteRefused {
        /// The log segment.
        path: PathBuf,
        /// The OS reason.
        source: io::Error,
    },
    /// A transaction could not be encoded.
    #[error("cannot encode transaction {zxid}: {reason}")]
    Encode {
        /// Its zxid.
        zxid: i64,
        /// Why.
        reason: String,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { action, path: path.to_path_buf(), source }
}

/// What recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// The state: snapshot plus replayed log.
    pub state: KeeperState,
    /// zxid of the last transaction recovered (0 for a new store).
    pub last_zxid: i64,
    /// Transactions replayed from the log.
    pub replayed: usize,
    /// Bytes of an unfinished final record cut off the log.
    pub truncated_bytes: u64,
}

/// The open store: appends go to the newest log segment.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    log: File,
    log_path: PathBuf,
    since_snapshot: usize,
    snap_count: usize,
    last_appended: i64,
    /// The length of the active segment: the end of its last whole record.
    log_len: u64,
    buf: Vec<u8>,
}

impl StoreError {
    /// Whether the store is as it was before the failed call, so that a later one may
    /// succeed ([`StoreError::WriteRefused`]).
    pub fn is_resumable(&self) -> bool {
        matches!(self, StoreError::WriteRefused { .. })
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_RECORD as usize }>()
}

fn name_zxid(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|z| z as i64)
}

fn listed(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
        let entry = entry.map_err(io_err("cannot list", dir))?;
        if let Some(z) = entry.file_name().to_str().and_then(|n| name_zxid(n, prefix)) {
            out.push((z, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and recovers its state. A snapshot is
    /// suggested every `snap_count` transactions (zoo.cfg's `snapCount`).
    pub fn open(dir: &Path, snap_count: usize) -> Result<(Store, Recovered), StoreError> {
        fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        let (mut state, snap_zxid) = Self::load_snapshot(dir)?;
        let segments = listed(dir, "log.")?;
        let mut last_zxid = snap_zxid;
        let mut replayed = 0;
        let mut truncated_bytes = 0;
        for (i, (_, path)) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            let (txns, valid_len, file_len) = read_segment(path, is_last)?;
            for txn in txns {
                if txn.zxid > last_zxid {
                    state.apply(&txn);
                    last_zxid = txn.zxid;
                    replayed += 1;
                }
            }
            if valid_len < file_len {
                tracing::warn!(file = %path.display(), at = valid_len, cut = file_len - valid_len, "truncating an unfinished final log record");
                let f = OpenOptions::new().write(true).open(path).map_err(io_err("cannot open", path))?;
                f.set_len(valid_len).map_err(io_err("cannot truncate", path))?;
                f.sync_all().map_err(io_err("cannot sync", path))?;
                truncated_bytes = file_len - valid_len;
            }
        }
        // Every start writes to a fresh segment, so an old segment is never appended to
        // after a truncation.
        let (log, log_path, log_len) = Self::new_segment(dir, last_zxid + 1)?;
        let store = Store {
            dir: dir.to_path_buf(),
            log,
            log_path,
            since_snapshot: replayed,
            snap_count,
            last_appended: last_zxid,
            log_len,
            buf: Vec::new(),
        };
        Ok((store, Recovered { state, last_zxid, replayed, truncated_bytes }))
    }

    /// Opens the segment whose first transaction is `first_zxid` for appending, creating
    /// it if needed; returns it, its path and its length (it may exist already: recovered,
    /// and cut at its last whole record).
    fn new_segment(dir: &Path, first_zxid: i64) -> Result<(File, PathBuf, u64), StoreError> {
        let path = dir.join(format!("log.{:016x}", first_zxid as u64));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("cannot create", &path))?;
        let len = log.metadata().map_err(io_err("cannot stat", &path))?.len();
        sync_dir(dir)?;
        Ok((log, path, len))
    }

    fn load_snapshot(dir: &Path) -> Result<(KeeperState, i64), StoreError> {
        for (zxid, path) in listed(dir, "snapshot.")?.into_iter().rev() {
            match read_snapshot(&path).and_then(|s| s.tree.check_consistent().map(|()| s)) {
                Ok(mut state) => {
                    state.rebuild_index();
                    return Ok((state, zxid));
                }
                Err(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "skipping an unreadable snapshot")
                }
            }
        }
        Ok((KeeperState::new(), 0))
    }

    /// Writes `txns` to the log and syncs them to disk once. When this returns they survive
    /// a crash; acknowledge them only then.
    pub fn append(&mut self, txns: &[Txn]) -> Result<(), StoreError> {
        self.buf.clear();
        for txn in txns {
            let start = self.buf.len();
            self.buf.extend_from_slice(&[0; RECORD_HEADER]);
            bincode::serde::encode_into_std_write(txn, &mut self.buf, config())
                .map_err(|e| StoreError::Encode { zxid: txn.zxid, reason: e.to_string() })?;
            let payload = &self.buf[start + RECORD_HEADER..];
            let len = payload.len() as u32;
            let crc = crc32c::crc32c(payload);
            self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
            self.buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
        }
        if let Err(source) = self.log.write_all(&self.buf) {
            // A full disk, say: cut what part of the write reached the file, so the log ends
            // with its last whole record and the next append follows it. If even that fails
            // the log cannot be trusted any more.
            self.log
                .set_len(self.log_len)
                .map_err(io_err("cannot cut a failed write from", &self.log_path))?;
            return Err(StoreError::WriteRefused { path: self.log_path.clone(), source });
        }
        // An fsync that failed is not retried: the kernel may have dropped the pages it could
        // not write and a second fsync would succeed without them (the PostgreSQL lesson).
        self.log.sync_data().map_err(io_err("cannot sync", &self.log_path))?;
        self.log_len += self.buf.len() as u64;
        self.since_snapshot += txns.len();
        if let Some(last) = txns.last() {
            self.last_appended = last.zxid;
        }
        Ok(())
    }

    /// Whether `snap_count` transactions were logged since the last snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.since_snapshot >= self.snap_count
    }

    /// Writes a snapshot of `state` as of `last_zxid` (atomically: temp file, sync, rename)
    /// and starts a new log segment: [`Store::begin_snapshot`] then [`SnapshotFile::write`].
    pub fn snapshot(&mut self, state: &KeeperState, last_zxid: i64) -> Result<PathBuf, StoreError> {
        self.begin_snapshot(last_zxid)?.write(state)
    }

    /// Starts a snapshot as of `last_zxid`: a new log segment begins now, after the last
    /// transaction *written* (the state may lag the log, so no segment is ever mistaken for
    /// older than a snapshot while it holds newer transactions). The file itself may then be
    /// written later, on another thread, while appends go on; until it is, recovery uses the
    /// previous snapshot and the segments after it, all still there (purge runs after).
    pub fn begin_snapshot(&mut self, last_zxid: i64) -> Result<SnapshotFile, StoreError> {
        let (log, log_path, log_len) = Self::new_segment(&self.dir, self.last_appended.max(last_zxid) + 1)?;
        self.log = log;
        self.log_path = log_path;
        self.log_len = log_len;
        self.since_snapshot = 0;
        Ok(SnapshotFile { dir: self.dir.clone(), zxid: last_zxid })
    }

    /// Deletes all but the newest `retain` snapshots (at least 1) and the log segments that
    /// only hold transactions older than the oldest snapshot kept (zoo.cfg's autopurge).
    pub fn purge(&self, retain: usize) -> Result<usize, StoreError> {
        let snaps = listed(&self.dir, "snapshot.")?;
        let keep_from = snaps.len().saturating_sub(retain.max(1));
        let mut removed = 0;
        for (_, p) in &snaps[..keep_from] {
            fs::remove_file(p).map_err(io_err("cannot remove", p))?;
            removed += 1;
        }
        let Some(&(oldest_kept, _)) = snaps.get(keep_from) else { return Ok(removed) };
        let logs = listed(&self.dir, "log.")?;
        for (i, (_, p)) in logs.iter().enumerate() {
            // A segment is no longer needed when the next one starts at or before the
            // oldest kept snapshot's zxid + 1.
            let next_start = logs.get(i + 1).map(|(z, _)| *z);
            if matches!(next_start, Some(n) if n <= oldest_kept + 1) && p != &self.log_path {
                fs::remove_file(p).map_err(io_err("cannot remove", p))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A snapshot begun by [`Store::begin_snapshot`], to be written.
#[derive(Debug)]
pub struct SnapshotFile {
    dir: PathBuf,
    zxid: i64,
}

impl SnapshotFile {
    /// Writes `state` (which must be the state as of the snapshot's zxid) atomically: temp
    /// file, sync, rename, sync the directory.
    pub fn write(&self, state: &KeeperState) -> Result<PathBuf, StoreError> {
        let zxid = self.zxid;
        let path = self.dir.join(format!("snapshot.{:016x}", zxid as u64));
        let tmp = self.dir.join(format!(".snapshot.{:016x}.tmp", zxid as u64));
        let body = bincode::serde::encode_to_vec(state, config())
            .map_err(|e| StoreError::Encode { zxid, reason: e.to_string() })?;
        let mut f = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        f.write_all(SNAPSHOT_MAGIC).map_err(io_err("cannot write", &tmp))?;
        f.write_all(&crc32c::crc32c(&body).to_be_bytes()).map_err(io_err("cannot write", &tmp))?;
        f.write_all(&body).map_err(io_err("cannot write", &tmp))?;
        f.sync_all().map_err(io_err("cannot sync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("cannot rename", &tmp))?;
        sync_dir(&self.dir)?;
        Ok(path)
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("cannot sync directory", dir))
}

fn read_snapshot(path: &Path) -> Result<KeeperState, String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let magic = bytes.get(..8).unwrap_or_default();
    if bytes.len() < 12 || ![SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_V2, SNAPSHOT_MAGIC_V1].iter().any(|m| magic == *m)
    {
        return Err("not a snapshot (bad magic)".into());
    }
    let crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if crc32c::crc32c(&bytes[12..]) != crc {
        return Err("CRC mismatch".into());
    }
    if &bytes[..8] == SNAPSHOT_MAGIC_V1 {
        return bincode::serde::decode_from_slice::<KeeperStateV1, _>(&bytes[12..], config())
            .map(|(s, _)| s.into())
            .map_err(|e| e.to_string());
    }
    if &bytes[..8] == SNAPSHOT_MAGIC_V2 {
        return bincode::serde::decode_from_slice::<KeeperStateV2, _>(&bytes[12..], config())
            .map(|(s, _)| s.into())
            .map_err(|e| e.to_string());
    }
    bincode::serde::decode_from_slice::<KeeperState, _>(&bytes[12..], config())
        .map(|(s, _)| s)
        .map_err(|e| e.to_string())
}

/// Reads a segment's records. Returns them, the length of the valid prefix and the file's
/// length. Damage at the end of the last segment ends the read; anywhere else it is an error.
fn read_segment(path: &Path, is_last: bool) -> Result<(Vec<Txn>, u64, u64), StoreError> {
    let file = File::open(path).map_err(io_err("cannot open", path))?;
    let file_len = file.metadata().map_err(io_err("cannot stat", path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut txns = Vec::new();
    let mut offset = 0u64;
    let damaged = |offset: u64, reason: String| -> Result<(Vec<Txn>, u64, u64), StoreError> {
        Err(StoreError::Corrupt { path: path.to_path_buf(), offset, reason })
    };
    loop {
        let mut header = [0u8; RECORD_HEADER];
        let got = read_full(&mut r, &mut header).map_err(io_err("cannot read", path))?;
        if got == 0 {
            break;
        }
        let reason = if got < RECORD_HEADER {
            Some("record header cut short".to_string())
        } else {
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            if len > MAX_RECORD {
                Some(format!("record length {len} is over the limit"))
            } else {
                let mut payload = vec![0u8; len as usize];
                let got = read_full(&mut r, &mut payload).map_err(io_err("cannot read", path))?;
                if got < payload.len() {
                    Some("record cut short".to_string())
                } else if crc32c::crc32c(&payload) != crc {
                    Some("record CRC mismatch".to_string())
                } else {
                    match bincode::serde::decode_from_slice::<Txn, _>(&payload, config()) {
                        Ok((txn, _)) => {
                            txns.push(txn);
                            offset += (RECORD_HEADER + payload.len()) as u64;
                            None
                        }
                        Err(e) => Some(format!("record does not decode: {e}")),
                    }
                }
            }
        };
        if let Some(reason) = reason {
            if is_last {
                return Ok((txns, offset, file_len));
            }
            return damaged(offset, reason);
        }
    }
    Ok((txns, offset, file_len))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_keeper_core::{CreateMode, Op};

    fn create(zxid: i64, path: &str) -> Txn {
        Txn {
            zxid,
            time_ms: 1000 + zxid,
            // The servers' own session: no `CreateSession` needed before it.
            session: 0,
            op: Op::Create {
                path: path.into(),
                data: path.as_bytes().to_vec(),
                mode: CreateMode::Persistent,
            },
        }
    }

    fn apply_and_log(store: &mut Store, state: &mut KeeperState, txns: &[Txn]) {
        store.append(txns).expect("append");
        for t in txns {
            assert!(state.apply(t).result.is_ok());
        }
    }

    #[test]
    fn snapshots_from_before_session_owners_are_read_with_none_and_owners_survive_new_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut state = KeeperState::new();
        let via = |member, op| Op::Via { member, op: Box::new(op) };
        let session = |zxid, op| Txn { zxid, time_ms: 0, session: 7, op };
        state.apply(&session(1, via(2, Op::CreateSession { timeout_ms: 4000, password: [3; 16] })));
        assert!(state.apply(&create(2, "/a")).result.is_ok());
        // An `SLKSNAP2` file: the same state without its owners (bincode writes a struct as
        // the tuple of its fields).
        let body = bincode::serde::encode_to_vec((&state.tree, &state.sessions), config()).expect("encode");
        let mut bytes = SNAPSHOT_MAGIC_V2.to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        bytes.extend_from_slice(&body);
        let old = dir.path().join("snapshot.old");
        fs::write(&old, bytes).expect("write");
        let read = read_snapshot(&old).expect("an SLKSNAP2 snapshot reads");
        assert_eq!((&read.tree, &read.sessions), (&state.tree, &state.sessions));
        assert!(read.owners.is_empty());
        // A new one keeps them.
        let path = SnapshotFile { dir: dir.path().to_path_buf(), zxid: 2 }.write(&state).expect("snapshot");
        let read = read_snapshot(&path).expect("read");
        assert_eq!(read, state);
        assert_eq!(read.owners.get(&7).map(|o| o.member), Some(2));
    }

    #[test]
    fn a_reopened_store_has_every_appended_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, rec) = Store::open(dir.path(), 1000).expect("open");
        assert_eq!(rec.last_zxid, 0);
        let mut state = rec.state;
        apply_and_log(&mut store, &mut state, &[create(1, "/a"), create(2, "/b")]);
        apply_and_log(&mut store, &mut state, &[create(3, "/a/c")]);
        drop(store);
        let (_, rec) = Store::open(dir.path(), 1000).expect("reopen");
        assert_eq!((rec.last_zxid, rec.replayed, rec.truncated_bytes), (3, 3, 0));
        assert_eq!(rec.state, state);
    }

    #[test]
    fn a_torn_final_record_is_cut_off_at_every_possible_length_and_nothing_before_it_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = Store::open(dir.path(), 1000).expect("open");
        store.append(&[create(1, "/a"), create(2, "/b")]).expect("append");
        store.append(&[create(3, "/c")]).expect("append");
        let log = store.log_path.clone();
        drop(store);
        let full = fs::read(&log).expect("read");
        let third_len = {
            // The third record's length: everything after the first two.
            let mut s = Vec::new();
            for t in [create(1, "/a"), create(2, "/b")] {
                let body = bincode::serde::encode_to_vec(&t, config()).expect("enc");
                s.extend_from_slice(&[0; RECORD_HEADER]);
                s.extend_from_slice(&body);
            }
            full.len() - s.len()
        };
        for cut in 1..third_len {
            let d = tempfile::tempdir().expect("tempdir");
            let name = log.file_name().expect("name");
            fs::write(d.path().join(name), &full[..full.len() - cut]).expect("write torn copy");
            let (_, rec) = Store::open(d.path(), 1000).expect("recover");
            assert_eq!(rec.last_zxid, 2, "cut {cut}: the acknowledged first batch survives");
            assert_eq!(rec.truncated_bytes as usize, third_len - cut, "cut {cut}");
            assert_eq!(rec.state.tree.exists("/c"), Ok(None), "nothing half-applied");
            let (_, again) = Store::open(d.path(), 1000).expect("recover twice");
            assert_eq!((again.last_zxid, again.truncated_bytes), (2, 0), "the truncation stuck");
        }
    }

    #[test]
    fn a_flipped_bit_in_an_older_segment_stops_start_up_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = Store::open(dir.path(), 1000).expect("open");
        store.append(&[create(1, "/a"), create(2, "/b")]).expect("append");
        let first = store.log_path.clone();
        drop(store);
        let (mut store, _) = Store::open(dir.path(), 1000).expect("reopen makes a new segment");
        store.append(&[create(3, "/c")]).expect("append");
        drop(store);
        let mut bytes = fs::read(&first).expect("read");
        bytes[RECORD_HEADER + 2] ^= 0x40;
        fs::write(&first, bytes).expect("write");
        let err = Store::open(dir.path(), 1000).expect_err("corrupt");
        let msg = err.to_string();
        assert!(msg.contains(&first.display().to_string()) && msg.contains("CRC mismatch"), "{msg}");
    }

    #[test]
    fn snapshots_bound_replay_and_purge_keeps_what_recovery_needs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, rec) = Store::open(dir.path(), 3).expect("open");
        let mut state = rec.state;
        let mut zxid = 0;
        for round in 0..4 {
            for _ in 0..3 {
                zxid += 1;
                apply_and_log(&mut store, &mut state, &[create(zxid, &format!("/n{zxid}"))]);
            }
            assert!(store.wants_snapshot(), "round {round}");
            store.snapshot(&state, zxid).expect("snapshot");
            assert!(!store.wants_snapshot());
        }
        zxid += 1;
        apply_and_log(&mut store, &mut state, &[create(zxid, "/tail")]);
        let removed = store.purge(2).expect("purge");
        assert!(removed >= 2, "old snapshots and logs removed: {removed}");
        assert_eq!(listed(dir.path(), "snapshot.").expect("list").len(), 2);
        drop(store);
        let (_, rec) = Store::open(dir.path(), 3).expect("reopen");
        assert_eq!(rec.replayed, 1, "only the txn after the newest snapshot is replayed");
        assert_eq!(rec.last_zxid, zxid);
        assert_eq!(rec.state, state);
    }

    #[test]
    fn a_snapshot_that_lags_the_log_loses_nothing_to_purge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, rec) = Store::open(dir.path(), 1000).expect("open");
        let mut state = rec.state;
        apply_and_log(&mut store, &mut state, &[create(1, "/a")]);
        let lagging = state.clone(); // as of zxid 1
        apply_and_log(&mut store, &mut state, &[create(2, "/b"), create(3, "/c")]); // written, "not applied yet"
        store.snapshot(&lagging, 1).expect("snapshot at 1");
        store.purge(1).expect("purge");
        drop(store);
        let (_, rec) = Store::open(dir.path(), 1000).expect("recover");
        assert_eq!(rec.last_zxid, 3);
        assert_eq!(rec.state, state, "zxids 2 and 3 survived in the older segment");
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, rec) = Store::open(dir.path(), 1000).expect("open");
        let mut state = rec.state;
        apply_and_log(&mut store, &mut state, &[create(1, "/a")]);
        store.snapshot(&state, 1).expect("snap 1");
        apply_and_log(&mut store, &mut state, &[create(2, "/b")]);
        let newest = store.snapshot(&state, 2).expect("snap 2");
        drop(store);
        let mut bytes = fs::read(&newest).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&newest, bytes).expect("write");
        let (_, rec) = Store::open(dir.path(), 1000).expect("recover");
        assert_eq!(rec.last_zxid, 2, "snapshot 1 plus the log gives everything");
        assert_eq!(rec.state, state);
    }
}
