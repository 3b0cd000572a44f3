//! [`LeaderEpochCache`]: at which offset each leader epoch of a partition started, kept in
//! `<partition dir>/leader-epoch-checkpoint` as Kafka keeps it (`LeaderEpochFileCache`), so
//! that a follower can ask its new leader where their logs diverge (Kafka's
//! OffsetsForLeaderEpoch, KIP-101 / KIP-279) and truncate its own tail there.
//!
//! ```text
//! 0                      version
//! 2                      number of entries
//! 1 0                    epoch start_offset
//! 3 10
//! ```
//!
//! Epochs are strictly increasing and start offsets non-decreasing. An epoch's data runs
//! from its start offset to the next entry's start offset (the log end offset for the
//! latest epoch). Every change is written at once, atomically (the offset checkpoints'
//! temporary file, fsync, rename, fsync of the directory: [`crate::checkpoint`]), and the
//! in-memory entries change only once the file is written, so the two never disagree.
//!
//! A negative epoch is Kafka's `NO_PARTITION_LEADER_EPOCH` (-1): batches carrying one are
//! not counted, and it is never recorded. Epoch 0 is a real epoch (the first leader's).
//!
//! The cache knows nothing about segments: [`crate::Log`] decides when to call it (on
//! append, truncation, retention and open).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::checkpoint::{read_entries, write_entries, CheckpointError};

/// File name of the leader-epoch checkpoint, in the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// One leader epoch and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The first offset written under it.
    pub start_offset: i64,
}

impl fmt::Display for EpochEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.epoch, self.start_offset)
    }
}

/// The leader epochs of one partition log with their start offsets, backed by its
/// `leader-epoch-checkpoint` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache for the partition directory `dir`; nothing is written until it
    /// changes (or [`LeaderEpochCache::flush`]).
    pub fn empty(dir: &Path) -> Self {
        LeaderEpochCache { path: dir.join(LEADER_EPOCH_CHECKPOINT), entries: Vec::new() }
    }

    /// Reads `dir`'s `leader-epoch-checkpoint`; `None` when there is no such file. A file
    /// that is not in the format above, or whose entries are negative or out of order, is
    /// [`CheckpointError::Malformed`], naming the line and what is wrong with it.
    pub fn read(dir: &Path) -> Result<Option<Self>, CheckpointError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let mut previous: Option<EpochEntry> = None;
        let entries = read_entries(&path, |line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [epoch, start_offset] = fields[..] else {
                return Err(format!("expected \"epoch start_offset\", found {line:?}"));
            };
            let epoch: i32 = epoch.parse().map_err(|e| format!("bad epoch {epoch:?}: {e}"))?;
            let start_offset: i64 =
                start_offset.parse().map_err(|e| format!("bad start offset {start_offset:?}: {e}"))?;
            if epoch < 0 || start_offset < 0 {
                return Err(format!("negative epoch or start offset in {line:?}"));
            }
            let entry = EpochEntry { epoch, start_offset };
            if let Some(p) = previous {
                if entry.epoch <= p.epoch {
                    return Err(format!("epoch {} does not follow epoch {}", entry.epoch, p.epoch));
                }
                if entry.start_offset < p.start_offset {
                    return Err(format!(
                        "start offset {} of epoch {} is below the {} of epoch {}",
                        entry.start_offset, entry.epoch, p.start_offset, p.epoch
                    ));
                }
            }
            previous = Some(entry);
            Ok(entry)
        })?;
        Ok(entries.map(|entries| LeaderEpochCache { path, entries }))
    }

    /// A cache for `dir` holding the epoch starts `starts` (applied in order as by
    /// [`LeaderEpochCache::assign_all`]), written to the file whatever they are: the cache
    /// a scan of the segments rebuilt.
    pub(crate) fn rebuilt(
        dir: &Path,
        starts: impl IntoIterator<Item = EpochEntry>,
    ) -> Result<Self, CheckpointError> {
        let mut cache = LeaderEpochCache::empty(dir);
        for entry in starts {
            if let Some(entries) = assigned(&cache.entries, entry) {
                cache.entries = entries;
            }
        }
        cache.flush()?;
        Ok(cache)
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries, oldest epoch first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Whether no epoch is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The latest entry.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The latest epoch.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Writes the file as the cache is now (atomically).
    pub fn flush(&self) -> Result<(), CheckpointError> {
        let lines: Vec<String> =
            self.entries.iter().map(|e| format!("{} {}", e.epoch, e.start_offset)).collect();
        write_entries(&self.path, &lines)
    }

    /// Records that `epoch` started at `start_offset`, if `epoch` is newer than the latest
    /// epoch (or the cache is empty); see [`LeaderEpochCache::assign_all`]. Whether the
    /// cache changed (and the file was written).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, CheckpointError> {
        self.assign_all([EpochEntry { epoch, start_offset }])
    }

    /// Records each entry in turn, then writes the file once if anything changed. An entry
    /// is recorded only if its epoch is newer than the latest one; an older or equal epoch,
    /// a negative epoch (no epoch) or a negative offset changes nothing. As in Kafka, a
    /// recorded entry first removes the latest entries whose start offset is at or past
    /// its own: those epochs hold no record, so the offsets they would claim belong to the
    /// new epoch (a leader elected twice without writing anything keeps only its newest
    /// epoch). Whether the cache changed.
    pub fn assign_all(
        &mut self,
        entries: impl IntoIterator<Item = EpochEntry>,
    ) -> Result<bool, CheckpointError> {
        let mut next: Option<Vec<EpochEntry>> = None;
        for entry in entries {
            let current = next.as_deref().unwrap_or(&self.entries);
            if let Some(updated) = assigned(current, entry) {
                next = Some(updated);
            }
        }
        self.replace(next)
    }

    /// What a follower's append of batches starting at `log_end_offset` (the log's end
    /// before the append) does to the cache: the entries starting at or past
    /// `log_end_offset` hold no record (an epoch assigned while leading, then left without
    /// writing), so the appended batches' epochs replace them; then `entries` (each
    /// batch's epoch and base offset) are recorded as by [`LeaderEpochCache::assign_all`].
    /// Written once, before the caller writes the batches, so no record is ever stored
    /// under an epoch the file lacks. Whether the cache changed.
    pub fn assign_appended(
        &mut self,
        log_end_offset: i64,
        entries: impl IntoIterator<Item = EpochEntry>,
    ) -> Result<bool, CheckpointError> {
        let keep = self.entries.partition_point(|e| e.start_offset < log_end_offset);
        let mut next = self.entries[..keep].to_vec();
        for entry in entries {
            if let Some(updated) = assigned(&next, entry) {
                next = updated;
            }
        }
        self.replace(Some(next))
    }

    /// Kafka's OffsetsForLeaderEpoch answer for a log ending at `log_end_offset`: for the
    /// latest epoch, `(epoch, log_end_offset)`; for an older one, the largest cached epoch
    /// at or below it and the start offset of the first cached epoch above it — where the
    /// data of `epoch` (or of the last epoch before it this log knows) ends. `None` when
    /// the cache is empty, `epoch` is newer than the latest epoch, or older than the first
    /// one (Kafka answers the last case with `(epoch, start offset of the first entry)`
    /// since 2.0; this log leaves it to the caller, as the request is for data it no longer
    /// knows the epochs of).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let latest = self.latest()?;
        if epoch == latest.epoch {
            return Some((epoch, log_end_offset));
        }
        if epoch > latest.epoch {
            return None;
        }
        let above = self.entries.partition_point(|e| e.epoch <= epoch);
        let floor = above.checked_sub(1).and_then(|i| self.entries.get(i))?;
        let next = self.entries.get(above)?;
        Some((floor.epoch, next.start_offset))
    }

    /// Kafka's `truncateFromEnd`: removes the entries starting at or after `end_offset`
    /// (the log was cut there, so those epochs hold nothing). Whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<bool, CheckpointError> {
        let keep = self.entries.partition_point(|e| e.start_offset < end_offset);
        let next = (keep < self.entries.len()).then(|| self.entries[..keep].to_vec());
        self.replace(next)
    }

    /// Kafka's `truncateFromStart`: the log now starts at `start_offset`, so the entries
    /// starting at or before it are removed except the latest of them, which is kept with
    /// `start_offset` as its start (its epoch still holds the log's first records).
    /// Whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<bool, CheckpointError> {
        let at_or_before = self.entries.partition_point(|e| e.start_offset <= start_offset);
        let Some(first) = at_or_before.checked_sub(1).and_then(|i| self.entries.get(i)) else {
            return Ok(false);
        };
        let mut next = Vec::with_capacity(self.entries.len() - at_or_before + 1);
        next.push(EpochEntry { epoch: first.epoch, start_offset });
        next.extend_from_slice(&self.entries[at_or_before..]);
        self.replace(Some(next))
    }

    /// Removes every entry and writes the (empty) file.
    pub fn clear(&mut self) -> Result<(), CheckpointError> {
        let was = std::mem::take(&mut self.entries);
        if let Err(e) = self.flush() {
            self.entries = was;
            return Err(e);
        }
        Ok(())
    }

    /// Writes `next` and takes it as the entries, if it differs from them.
    fn replace(&mut self, next: Option<Vec<EpochEntry>>) -> Result<bool, CheckpointError> {
        let Some(next) = next.filter(|n| *n != self.entries) else { return Ok(false) };
        let was = std::mem::replace(&mut self.entries, next);
        if let Err(e) = self.flush() {
            self.entries = was;
            return Err(e);
        }
        Ok(true)
    }
}

/// `current` with `entry` recorded, `None` if that changes nothing.
fn assigned(current: &[EpochEntry], entry: EpochEntry) -> Option<Vec<EpochEntry>> {
    if entry.epoch < 0 || entry.start_offset < 0 {
        return None;
    }
    if current.last().is_some_and(|latest| latest.epoch >= entry.epoch) {
        return None;
    }
    let keep = current.partition_point(|e| e.start_offset < entry.start_offset);
    let mut updated = current[..keep].to_vec();
    updated.push(entry);
    Some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn entries(list: &[(i32, i64)]) -> Vec<EpochEntry> {
        list.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset }).collect()
    }

    fn cache_with(dir: &Path, list: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::empty(dir);
        cache.assign_all(entries(list)).expect("assign");
        assert_eq!(cache.entries(), entries(list), "assigned as given");
        cache
    }

    fn file_text(dir: &Path) -> String {
        fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT)).expect("read checkpoint")
    }

    #[test]
    fn round_trips_in_kafkas_text_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(LeaderEpochCache::read(dir.path()).expect("missing file"), None);
        let cache = cache_with(dir.path(), &[(0, 0), (1, 57), (7, 1_000_000_000_000)]);
        assert_eq!(file_text(dir.path()), "0\n3\n0 0\n1 57\n7 1000000000000\n");
        assert_eq!(LeaderEpochCache::read(dir.path()).expect("read"), Some(cache));
        assert!(!dir.path().join(format!("{LEADER_EPOCH_CHECKPOINT}.tmp")).exists());

        // A file written by Kafka reads back as written.
        let kafka = "0\n2\n1 0\n3 10\n";
        fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), kafka).expect("write");
        let cache = LeaderEpochCache::read(dir.path()).expect("read").expect("present");
        assert_eq!(cache.entries(), entries(&[(1, 0), (3, 10)]));
        cache.flush().expect("flush");
        assert_eq!(file_text(dir.path()), kafka, "byte for byte");

        let mut cache = cache;
        cache.clear().expect("clear");
        assert_eq!(file_text(dir.path()), "0\n0\n");
        assert_eq!(LeaderEpochCache::read(dir.path()).expect("read").map(|c| c.is_empty()), Some(true));
    }

    #[test]
    fn damage_names_the_file_and_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        for (text, line) in [
            ("", 1),
            ("1\n0\n", 1),
            ("0\n", 2),
            ("0\nx\n", 2),
            ("0\n2\n1 0\n", 4),
            ("0\n1\n1\n", 3),
            ("0\n1\n1 0 9\n", 3),
            ("0\n1\none 0\n", 3),
            ("0\n1\n1 zero\n", 3),
            ("0\n1\n-1 0\n", 3),
            ("0\n1\n1 -5\n", 3),
            ("0\n2\n1 0\n1 5\n", 4),
            ("0\n3\n1 0\n3 10\n2 12\n", 5),
            ("0\n2\n1 10\n2 5\n", 4),
            ("0\n1\n1 0\n2 5\n", 4),
        ] {
            fs::write(&path, text).expect("write");
            let err = LeaderEpochCache::read(dir.path()).expect_err(text);
            let message = err.to_string();
            match err {
                CheckpointError::Malformed { path: p, line: l, .. } => {
                    assert_eq!((p, l), (path.clone(), line), "{text:?}: {message}");
                    assert!(message.contains(LEADER_EPOCH_CHECKPOINT), "{message}");
                    assert!(message.contains(&format!("line {line}:")), "{message}");
                }
                other => panic!("{text:?}: expected Malformed, got {other:?}"),
            }
        }
        // Equal start offsets are allowed (an epoch that wrote nothing), as are trailing
        // blank lines.
        fs::write(&path, "0\n2\n1 5\n2 5\n\n").expect("write");
        let cache = LeaderEpochCache::read(dir.path()).expect("read").expect("present");
        assert_eq!(cache.entries(), entries(&[(1, 5), (2, 5)]));
    }

    #[test]
    fn only_newer_epochs_are_assigned_and_empty_epochs_give_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = cache_with(dir.path(), &[(1, 0), (3, 10)]);
        for (epoch, start) in [(3, 12), (2, 20), (-1, 30), (5, -1)] {
            assert!(!cache.assign(epoch, start).expect("assign"), "{epoch}@{start}");
        }
        assert_eq!(cache.entries(), entries(&[(1, 0), (3, 10)]));
        assert_eq!(cache.latest_epoch(), Some(3));
        // Epoch 4 starts where 3 did: 3 held nothing, so only 4 remains there.
        assert!(cache.assign(4, 10).expect("assign"));
        assert_eq!(cache.entries(), entries(&[(1, 0), (4, 10)]));
        assert_eq!(file_text(dir.path()), "0\n2\n1 0\n4 10\n");
        // Several at once: one write, the file as the cache.
        assert!(cache.assign_all(entries(&[(5, 12), (5, 13), (6, 15)])).expect("assign"));
        assert_eq!(cache.entries(), entries(&[(1, 0), (4, 10), (5, 12), (6, 15)]));
        assert_eq!(LeaderEpochCache::read(dir.path()).expect("read").as_ref(), Some(&cache));
    }

    #[test]
    fn an_appended_epoch_replaces_entries_that_hold_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Epoch 3 was assigned at the log end, 10, and nothing was written under it; then
        // batches of epoch 2 arrive from the new leader, from offset 10.
        let mut cache = cache_with(dir.path(), &[(1, 0), (3, 10)]);
        let appended = entries(&[(2, 10), (2, 12), (4, 15), (-1, 16)]);
        assert!(cache.assign_appended(10, appended).expect("assign"));
        assert_eq!(cache.entries(), entries(&[(1, 0), (2, 10), (4, 15)]));
        // Entries that hold records stay; an older epoch after them is not recorded.
        assert!(!cache.assign_appended(20, entries(&[(3, 20), (4, 21)])).expect("assign"));
        assert_eq!(file_text(dir.path()), "0\n3\n1 0\n2 10\n4 15\n");
    }

    #[test]
    fn end_offset_for_an_epoch_is_kafkas_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = LeaderEpochCache::empty(dir.path());
        assert_eq!(empty.end_offset_for(0, 10), None, "empty cache");
        let cache = cache_with(dir.path(), &[(1, 0), (3, 10), (4, 25)]);
        let end = 40;
        assert_eq!(cache.end_offset_for(4, end), Some((4, 40)), "latest epoch: the log end");
        assert_eq!(cache.end_offset_for(3, end), Some((3, 25)), "older: where the next begins");
        assert_eq!(cache.end_offset_for(1, end), Some((1, 10)));
        assert_eq!(cache.end_offset_for(2, end), Some((1, 10)), "between: the epoch below");
        assert_eq!(cache.end_offset_for(0, end), None, "older than the first");
        assert_eq!(cache.end_offset_for(-1, end), None, "no epoch");
        assert_eq!(cache.end_offset_for(5, end), None, "newer than the latest");
    }

    #[test]
    fn truncation_from_either_end_is_kafkas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = cache_with(dir.path(), &[(1, 0), (2, 5), (3, 10), (4, 20)]);
        assert!(!cache.truncate_from_end(21).expect("truncate"), "nothing starts at or after 21");
        assert!(cache.truncate_from_end(10).expect("truncate"));
        assert_eq!(cache.entries(), entries(&[(1, 0), (2, 5)]));
        assert_eq!(file_text(dir.path()), "0\n2\n1 0\n2 5\n");

        let mut cache = cache_with(dir.path(), &[(1, 0), (2, 5), (3, 10), (4, 20)]);
        assert!(!cache.truncate_from_start(0).expect("truncate"), "already starts there");
        assert!(cache.truncate_from_start(7).expect("truncate"));
        assert_eq!(cache.entries(), entries(&[(2, 7), (3, 10), (4, 20)]));
        assert!(cache.truncate_from_start(10).expect("truncate"));
        assert_eq!(cache.entries(), entries(&[(3, 10), (4, 20)]));
        assert!(cache.truncate_from_start(25).expect("truncate"));
        assert_eq!(cache.entries(), entries(&[(4, 25)]));
        assert_eq!(file_text(dir.path()), "0\n1\n4 25\n");
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = cache_with(dir.path(), &[(1, 0)]);
        // The temporary file cannot be created where a directory of its name stands.
        fs::create_dir(dir.path().join(format!("{LEADER_EPOCH_CHECKPOINT}.tmp"))).expect("mkdir");
        assert!(matches!(cache.assign(2, 5), Err(CheckpointError::Io { .. })));
        assert!(cache.truncate_from_end(0).is_err());
        assert!(cache.clear().is_err());
        assert_eq!(cache.entries(), entries(&[(1, 0)]));
    }
}
