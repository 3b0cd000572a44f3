//! A segment's two sparse indexes, Kafka's files byte for byte:
//!
//! | file | entry | meaning |
//! |---|---|---|
//! | `.index` | relative offset u32 BE, position u32 BE | the batch at `position` ends at `base + relative offset` |
//! | `.timeindex` | timestamp i64 BE, relative offset u32 BE | records up to `base + relative offset` have timestamps up to `timestamp` |
//!
//! Entries are kept in memory (8 or 12 bytes per `log.index.interval.bytes` of log, about
//! 5 MiB per GiB) and appended to the file as they are made; files are never preallocated,
//! so they always have their exact length. The sans-IO rule of the crate does not extend
//! here: this module reads and writes files, but takes no clock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LogError};

/// Kafka's "no timestamp".
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// One fixed-size entry of an index file.
pub(crate) trait Entry: Copy + std::fmt::Debug {
    /// Bytes per entry.
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

/// An `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    /// Last offset of the batch, minus the segment's base offset.
    pub rel_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

/// A `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// The largest timestamp up to `rel_offset`.
    pub timestamp: i64,
    /// Offset (relative to the segment's base) of the batch that first had `timestamp`.
    pub rel_offset: u32,
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry { rel_offset: be_u32(&b[0..4]), position: be_u32(&b[4..8]) }
    }
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        TimeEntry { timestamp: i64::from_be_bytes(ts), rel_offset: be_u32(&b[8..12]) }
    }
}

/// An index file and its entries.
#[derive(Debug)]
pub(crate) struct IndexFile<E> {
    path: PathBuf,
    entries: Vec<E>,
    /// Open while entries are being appended (the active segment); closed when sealed so
    /// an old segment costs one descriptor (its `.log`), not three.
    writer: Option<File>,
    /// Written since the last fsync.
    dirty: bool,
}

impl<E: Entry> IndexFile<E> {
    /// An index with these entries, already on disk as they are.
    pub fn loaded(path: PathBuf, entries: Vec<E>) -> Self {
        IndexFile { path, entries, writer: None, dirty: false }
    }

    /// Reads the entries of a file; `Ok(None)` when it is missing or its length is not a
    /// whole number of entries (the caller rebuilds it).
    pub fn read(path: &Path) -> Result<Option<Vec<E>>, LogError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read index", path),
        };
        if bytes.len() % E::SIZE != 0 {
            return Ok(None);
        }
        Ok(Some(bytes.chunks_exact(E::SIZE).map(E::decode).collect()))
    }

    /// Writes `entries` as the whole file, replacing what was there.
    pub fn create(path: PathBuf, entries: Vec<E>) -> Result<Self, LogError> {
        let mut bytes = Vec::with_capacity(entries.len() * E::SIZE);
        for e in &entries {
            e.encode(&mut bytes);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .ctx("create index", &path)?;
        file.write_all_at(&bytes, 0).ctx("write index", &path)?;
        Ok(IndexFile { path, entries, writer: Some(file), dirty: true })
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    fn writer(&mut self) -> Result<&File, LogError> {
        let file = match self.writer.take() {
            Some(file) => file,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .ctx("open index", &self.path)?,
        };
        Ok(self.writer.insert(file))
    }

    /// Appends one entry to memory and the file.
    pub fn push(&mut self, entry: E) -> Result<(), LogError> {
        let mut bytes = Vec::with_capacity(E::SIZE);
        entry.encode(&mut bytes);
        let at = (self.entries.len() * E::SIZE) as u64;
        let path = self.path.clone();
        self.writer()?.write_all_at(&bytes, at).ctx("append to index", &path)?;
        self.entries.push(entry);
        self.dirty = true;
        Ok(())
    }

    /// Keeps the first `keep` entries.
    pub fn truncate(&mut self, keep: usize) -> Result<(), LogError> {
        if keep >= self.entries.len() {
            return Ok(());
        }
        let path = self.path.clone();
        self.writer()?.set_len((keep * E::SIZE) as u64).ctx("truncate index", &path)?;
        self.entries.truncate(keep);
        self.dirty = true;
        Ok(())
    }

    /// fsyncs the file if it changed.
    pub fn sync(&mut self) -> Result<(), LogError> {
        if !self.dirty {
            return Ok(());
        }
        let path = self.path.clone();
        self.writer()?.sync_all().ctx("fsync index", &path)?;
        self.dirty = false;
        Ok(())
    }

    /// Closes the file handle (the segment will take no more entries); a later change
    /// reopens it.
    pub fn close_writer(&mut self) {
        self.writer = None;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl IndexFile<OffsetEntry> {
    /// The last entry at or below `rel_offset`: where to start scanning for it.
    pub fn floor(&self, rel_offset: u32) -> Option<OffsetEntry> {
        let n = self.entries.partition_point(|e| e.rel_offset <= rel_offset);
        n.checked_sub(1).map(|i| self.entries[i])
    }
}

impl IndexFile<TimeEntry> {
    /// The last entry whose timestamp is at or below `timestamp`.
    pub fn floor(&self, timestamp: i64) -> Option<TimeEntry> {
        let n = self.entries.partition_point(|e| e.timestamp <= timestamp);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// The largest timestamp the index knows (`-1`, Kafka's "no timestamp", if none).
    pub fn last_timestamp(&self) -> i64 {
        self.last().map_or(NO_TIMESTAMP, |e| e.timestamp)
    }
}

/// Whether the entries could belong to a segment of `log_size` bytes: offsets and positions
/// strictly increasing, every position inside the file.
pub(crate) fn offsets_look_sane(entries: &[OffsetEntry], log_size: u64) -> bool {
    entries.windows(2).all(|w| w[0].rel_offset < w[1].rel_offset && w[0].position < w[1].position)
        && entries.last().is_none_or(|e| u64::from(e.position) < log_size)
}

/// Whether time entries grow: timestamps strictly, offsets never backwards.
pub(crate) fn times_look_sane(entries: &[TimeEntry]) -> bool {
    entries.windows(2).all(|w| w[0].timestamp < w[1].timestamp && w[0].rel_offset <= w[1].rel_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kafkas_big_endian_layout_and_files_have_exact_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.index");
        let mut idx = IndexFile::<OffsetEntry>::create(path.clone(), vec![]).expect("create");
        idx.push(OffsetEntry { rel_offset: 3, position: 4100 }).expect("push");
        idx.push(OffsetEntry { rel_offset: 9, position: 8300 }).expect("push");
        idx.sync().expect("sync");
        assert_eq!(
            fs::read(&path).expect("read"),
            [0, 0, 0, 3, 0, 0, 0x10, 0x04, 0, 0, 0, 9, 0, 0, 0x20, 0x6c]
        );
        assert_eq!(idx.floor(2), None);
        assert_eq!(idx.floor(3).map(|e| e.position), Some(4100));
        assert_eq!(idx.floor(8).map(|e| e.position), Some(4100));
        assert_eq!(idx.floor(100).map(|e| e.position), Some(8300));
        idx.truncate(1).expect("truncate");
        assert_eq!(fs::metadata(&path).expect("meta").len(), 8);
        assert_eq!(IndexFile::<OffsetEntry>::read(&path).expect("read"), Some(vec![idx.entries()[0]]));

        let tpath = dir.path().join("00000000000000000000.timeindex");
        let mut t = IndexFile::<TimeEntry>::create(tpath.clone(), vec![]).expect("create");
        t.push(TimeEntry { timestamp: 1000, rel_offset: 2 }).expect("push");
        assert_eq!(fs::read(&tpath).expect("read"), [0, 0, 0, 0, 0, 0, 3, 0xe8, 0, 0, 0, 2]);
        assert_eq!((t.floor(999), t.floor(1000).map(|e| e.rel_offset)), (None, Some(2)));
        fs::write(&tpath, [0u8; 13]).expect("write");
        assert_eq!(IndexFile::<TimeEntry>::read(&tpath).expect("read"), None, "a torn entry");
    }

    #[test]
    fn sanity_checks_catch_disorder_and_positions_past_the_end() {
        let e = |rel_offset, position| OffsetEntry { rel_offset, position };
        assert!(offsets_look_sane(&[e(1, 0), e(5, 4096)], 5000));
        assert!(!offsets_look_sane(&[e(5, 0), e(5, 4096)], 5000));
        assert!(!offsets_look_sane(&[e(1, 4096), e(5, 0)], 5000));
        assert!(!offsets_look_sane(&[e(1, 0), e(5, 4096)], 4096));
        let t = |timestamp, rel_offset| TimeEntry { timestamp, rel_offset };
        assert!(times_look_sane(&[t(10, 1), t(20, 1)]));
        assert!(!times_look_sane(&[t(20, 1), t(20, 3)]));
        assert!(!times_look_sane(&[t(10, 3), t(20, 1)]));
    }
}
