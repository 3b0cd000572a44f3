//! One segment: `<base offset, 20 digits>.log` holding whole batches back to back, with its
//! `.index` and `.timeindex` ([`crate::index`]). A [`Segment`] knows its size, its next
//! offset and its largest timestamp; it appends, finds the batch holding an offset or a
//! timestamp, reads whole batches, truncates at a batch boundary, loads and recovers
//! itself. Which segment to use, when to roll and when to delete are [`crate::Log`]'s
//! decisions.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{stored_crc, BatchHeader, CRC_START, HEADER_LEN};
use crate::error::{IoContext, LogError};
use crate::index::{offsets_look_sane, times_look_sane, IndexFile, OffsetEntry, TimeEntry};

pub(crate) use crate::index::NO_TIMESTAMP;

/// Bytes read at a time when stepping over batch headers.
const HEADER_SCAN_CHUNK: usize = 16 * 1024;
/// Bytes read at a time when verifying CRCs.
const VERIFY_CHUNK: usize = 1024 * 1024;
/// Positions and relative offsets in the indexes are 32-bit, and Kafka keeps both below
/// `i32::MAX`.
const MAX_POSITION: u64 = i32::MAX as u64;

/// Suffix of the files the cleaner writes before swapping them in.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of cleaned files that are committed to replace their segments.
pub(crate) const SWAP_SUFFIX: &str = ".swap";
/// Suffix of replaced files that are about to be removed.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";
/// The extensions of a segment's three files.
pub(crate) const SEGMENT_EXTS: [&str; 3] = ["log", "index", "timeindex"];

/// `<base offset, 20 digits>.<ext>`.
pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// A batch a scan stepped over.
#[derive(Debug, Clone)]
pub(crate) struct Scanned {
    /// Its byte position in the file.
    pub pos: u64,
    /// Its size in bytes.
    pub len: u64,
    /// Its header.
    pub header: BatchHeader,
}

/// Why a scan stopped early.
#[derive(Debug)]
pub(crate) enum ScanError {
    /// Reading failed.
    Io(LogError),
    /// The bytes at `pos` are not a valid batch.
    Invalid { pos: u64, reason: String },
}

impl From<LogError> for ScanError {
    fn from(e: LogError) -> Self {
        ScanError::Io(e)
    }
}

impl ScanError {
    /// For reads, where the bytes were already accepted at open: damage is an error.
    fn into_log_error(self, path: &Path) -> LogError {
        match self {
            ScanError::Io(e) => e,
            ScanError::Invalid { pos, reason } => {
                LogError::Corrupt { path: path.to_path_buf(), position: pos, reason }
            }
        }
    }
}

/// Steps from batch to batch through a segment file, reading in chunks, optionally
/// checking every CRC (without ever holding more than one chunk or one batch in memory).
pub(crate) struct Scanner<'a> {
    file: &'a File,
    path: &'a Path,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
    verify: bool,
}

impl<'a> Scanner<'a> {
    fn new(file: &'a File, path: &'a Path, size: u64, pos: u64, chunk: usize, verify: bool) -> Self {
        Scanner { file, path, size, pos, buf: Vec::new(), buf_start: 0, chunk, verify }
    }

    /// `len` bytes at `pos` (the caller has checked they are inside the file).
    fn fill(&mut self, pos: u64, len: usize) -> Result<&[u8], LogError> {
        let end = pos + len as u64;
        if pos < self.buf_start || end > self.buf_start + self.buf.len() as u64 {
            let n = (self.chunk.max(len) as u64).min(self.size - pos) as usize;
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, pos).ctx("read segment", self.path)?;
            self.buf_start = pos;
        }
        let at = (pos - self.buf_start) as usize;
        Ok(&self.buf[at..at + len])
    }

    /// The next batch, `None` at the end of the file.
    fn next_batch(&mut self) -> Result<Option<Scanned>, ScanError> {
        let pos = self.pos;
        if pos >= self.size {
            return Ok(None);
        }
        let remaining = self.size - pos;
        if remaining < HEADER_LEN as u64 {
            let reason = format!("{remaining} bytes at the end, fewer than a batch header");
            return Err(ScanError::Invalid { pos, reason });
        }
        let head = self.fill(pos, HEADER_LEN)?;
        let (header, total) =
            BatchHeader::parse_prefix(head).map_err(|e| ScanError::Invalid { pos, reason: e.to_string() })?;
        let stored = stored_crc(head);
        let head_crc = crc32c::crc32c(&head[CRC_START..]);
        if total as u64 > remaining {
            let reason = format!("a batch of {total} bytes runs past the end of the file ({remaining} left)");
            return Err(ScanError::Invalid { pos, reason });
        }
        if self.verify {
            let computed = if total <= self.chunk {
                crc32c::crc32c(&self.fill(pos, total)?[CRC_START..])
            } else {
                let mut crc = head_crc;
                let (mut at, end) = (pos + HEADER_LEN as u64, pos + total as u64);
                while at < end {
                    let n = (self.chunk as u64).min(end - at) as usize;
                    crc = crc32c::crc32c_append(crc, self.fill(at, n)?);
                    at += n as u64;
                }
                crc
            };
            if computed != stored {
                let reason = format!("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}");
                return Err(ScanError::Invalid { pos, reason });
            }
        }
        self.pos = pos + total as u64;
        Ok(Some(Scanned { pos, len: total as u64, header }))
    }
}

/// A segment as it was when the cleaner planned a pass: read through its own file handle,
/// up to the size it had then.
#[derive(Debug)]
pub(crate) struct SegmentSnapshot {
    pub base_offset: i64,
    pub size: u64,
    pub next_offset: i64,
    /// [`Segment::retention_timestamp`]: the newest record's timestamp, or the file's
    /// modification time if no record has one.
    pub last_modified_ms: i64,
    pub log_path: PathBuf,
    file: File,
}

impl SegmentSnapshot {
    /// Calls `f` with every batch (position, length and header known; bytes read and the
    /// CRC left to the caller's parse), in order.
    pub fn for_each_batch(
        &self,
        mut f: impl FnMut(&Scanned, &[u8]) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let mut scan = Scanner::new(&self.file, &self.log_path, self.size, 0, HEADER_SCAN_CHUNK, false);
        let mut buf = Vec::new();
        while let Some(s) = scan.next_batch().map_err(|e| e.into_log_error(&self.log_path))? {
            buf.resize(s.len as usize, 0);
            self.file.read_exact_at(&mut buf, s.pos).ctx("read segment", &self.log_path)?;
            f(&s, &buf)?;
        }
        Ok(())
    }
}

/// Outcome of [`Segment::load`].
#[derive(Debug)]
pub(crate) enum Loaded {
    /// The indexes were sound and the tail after the last index entry checked out.
    Ready(Segment),
    /// The segment must be recovered (scanned, and its indexes rebuilt), for this reason.
    NeedsRecovery(String),
}

/// What [`Segment::read_into`] added.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadPart {
    /// Last offset of the last batch added, if any.
    pub last_offset: Option<i64>,
    /// Whether the read reached the end of the segment.
    pub reached_end: bool,
}

/// A segment cut at its first invalid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment's base offset.
    pub segment: i64,
    /// Byte position of the cut.
    pub position: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// What was wrong at `position`.
    pub reason: String,
}

/// One segment and its indexes.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    log: File,
    size: u64,
    offsets: IndexFile<OffsetEntry>,
    times: IndexFile<TimeEntry>,
    /// One past the last offset held (the base offset when empty).
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch: `log.roll.ms` counts from it, as Kafka.
    first_batch_timestamp: Option<i64>,
    /// When the segment was created or opened, for `log.roll.ms` without timestamps.
    created_ms: i64,
    bytes_since_index: u64,
    /// Written since the last fsync.
    dirty: bool,
}

fn open_log(path: &Path, create: bool) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)
        .ctx(if create { "create segment" } else { "open segment" }, path)
}

impl Segment {
    fn with_files(dir: &Path, base_offset: i64, log: File, size: u64, now_ms: i64) -> Self {
        Segment::with_named_files(dir, base_offset, "", log, size, now_ms)
    }

    /// A segment whose three file names end in `suffix` after the usual extension.
    fn with_named_files(
        dir: &Path,
        base_offset: i64,
        suffix: &str,
        log: File,
        size: u64,
        now_ms: i64,
    ) -> Self {
        let path = |ext: &str| dir.join(file_name(base_offset, ext) + suffix);
        Segment {
            base_offset,
            log_path: path("log"),
            log,
            size,
            offsets: IndexFile::loaded(path("index"), vec![]),
            times: IndexFile::loaded(path("timeindex"), vec![]),
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: NO_TIMESTAMP,
            first_batch_timestamp: None,
            created_ms: now_ms,
            bytes_since_index: 0,
            dirty: false,
        }
    }

    /// A new, empty segment (replacing any files of that name).
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        Segment::create_named(dir, base_offset, "", now_ms)
    }

    /// A new, empty segment whose files are named `<base>.log.cleaned`, `.index.cleaned`,
    /// `.timeindex.cleaned`: the cleaner's output before it is swapped in. Appends build
    /// its indexes exactly as they build a live segment's.
    pub fn create_cleaned(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, LogError> {
        Segment::create_named(dir, base_offset, CLEANED_SUFFIX, now_ms)
    }

    fn create_named(dir: &Path, base_offset: i64, suffix: &str, now_ms: i64) -> Result<Self, LogError> {
        let log = open_log(&dir.join(file_name(base_offset, "log") + suffix), true)?;
        let mut seg = Segment::with_named_files(dir, base_offset, suffix, log, 0, now_ms);
        seg.offsets = IndexFile::create(seg.offsets.path().to_path_buf(), vec![])?;
        seg.times = IndexFile::create(seg.times.path().to_path_buf(), vec![])?;
        seg.dirty = true;
        Ok(seg)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The timestamp retention judges the segment by: its largest record timestamp, or —
    /// when no record carried one — the file's modification time, as Kafka does.
    pub fn retention_timestamp(&self) -> Result<i64, LogError> {
        if self.max_timestamp >= 0 {
            return Ok(self.max_timestamp);
        }
        let modified = self.log.metadata().and_then(|m| m.modified()).ctx("stat segment", &self.log_path)?;
        Ok(modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
    }

    /// Kafka's `timeWaitedForRoll`: the new batch's timestamp minus the first batch's, or
    /// the time since the segment was created when there are no timestamps.
    pub fn time_waited_for_roll(&self, now_ms: i64, batch_max_timestamp: i64) -> i64 {
        match self.first_batch_timestamp {
            Some(t) if t >= 0 => batch_max_timestamp.saturating_sub(t),
            _ => now_ms.saturating_sub(self.created_ms),
        }
    }

    /// Appends one validated batch whose base offset is already final.
    pub fn append(
        &mut self,
        bytes: &[u8],
        header: &BatchHeader,
        index_interval: u64,
    ) -> Result<(), LogError> {
        let pos = self.size;
        self.log.write_all_at(bytes, pos).ctx("append to segment", &self.log_path)?;
        self.size += bytes.len() as u64;
        self.dirty = true;
        self.track(pos, bytes.len() as u64, header, index_interval, true)
    }

    /// Accounts for the batch at `pos`, adding index entries as Kafka does: an entry is
    /// made for a batch once more than `log.index.interval.bytes` were appended since the
    /// last one; the time index gets one at the same moment if the max timestamp grew.
    fn track(
        &mut self,
        pos: u64,
        len: u64,
        header: &BatchHeader,
        index_interval: u64,
        may_index: bool,
    ) -> Result<(), LogError> {
        let last = header.last_offset();
        if pos == 0 {
            self.first_batch_timestamp = Some(header.max_timestamp);
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = last;
        }
        if may_index && self.bytes_since_index > index_interval {
            let rel_offset = (last - self.base_offset) as u32;
            self.offsets.push(OffsetEntry { rel_offset, position: pos as u32 })?;
            self.maybe_index_time()?;
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += len;
        self.next_offset = last + 1;
        Ok(())
    }

    /// Adds a time-index entry if the max timestamp grew since the last one.
    fn maybe_index_time(&mut self) -> Result<(), LogError> {
        if self.max_timestamp > self.times.last_timestamp() {
            let rel_offset = (self.offset_of_max_timestamp - self.base_offset) as u32;
            self.times.push(TimeEntry { timestamp: self.max_timestamp, rel_offset })?;
        }
        Ok(())
    }

    /// The segment takes no more appends: record its max timestamp in the time index (so
    /// it survives a restart, as Kafka does on roll) and close the index files.
    pub fn seal(&mut self) -> Result<(), LogError> {
        self.maybe_index_time()?;
        self.offsets.close_writer();
        self.times.close_writer();
        Ok(())
    }

    /// fsyncs the log and indexes if they changed; whether anything was written.
    pub fn flush(&mut self) -> Result<bool, LogError> {
        let was_dirty = self.dirty;
        if self.dirty {
            self.log.sync_data().ctx("fsync segment", &self.log_path)?;
            self.dirty = false;
        }
        self.offsets.sync()?;
        self.times.sync()?;
        Ok(was_dirty)
    }

    /// Removes the segment's files (a missing index is not an error: it may never have
    /// been written, or a crash may have removed it already).
    pub fn delete(self) -> Result<(), LogError> {
        fs::remove_file(&self.log_path).ctx("delete segment", &self.log_path)?;
        for path in [self.offsets.path(), self.times.path()] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).ctx("delete index", path),
                _ => {}
            }
        }
        Ok(())
    }

    /// What the cleaner needs to read the segment without holding the log: its identity
    /// and a second handle on its file (which stays readable even if the segment is
    /// deleted meanwhile).
    pub fn snapshot(&self) -> Result<SegmentSnapshot, LogError> {
        Ok(SegmentSnapshot {
            base_offset: self.base_offset,
            size: self.size,
            next_offset: self.next_offset,
            last_modified_ms: self.retention_timestamp()?,
            log_path: self.log_path.clone(),
            file: self.log.try_clone().ctx("open segment", &self.log_path)?,
        })
    }

    fn scanner(&self, pos: u64, chunk: usize, verify: bool) -> Scanner<'_> {
        Scanner::new(&self.log, &self.log_path, self.size, pos, chunk, verify)
    }

    /// The first batch whose last offset is at least `target` (the batch holding it, or
    /// the next one after a gap), starting from the offset index.
    pub fn find(&self, target: i64) -> Result<Option<Scanned>, LogError> {
        let start = if target <= self.base_offset {
            0
        } else {
            let rel = (target - self.base_offset).min(i64::from(u32::MAX)) as u32;
            self.offsets.floor(rel).map_or(0, |e| u64::from(e.position))
        };
        let mut scan = self.scanner(start, HEADER_SCAN_CHUNK, false);
        while let Some(s) = scan.next_batch().map_err(|e| e.into_log_error(&self.log_path))? {
            if s.header.last_offset() >= target {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// The first batch whose max timestamp is at least `timestamp`, starting from the time
    /// index.
    pub fn find_timestamp(&self, timestamp: i64) -> Result<Option<Scanned>, LogError> {
        let start = self
            .times
            .floor(timestamp)
            .and_then(|t| self.offsets.floor(t.rel_offset))
            .map_or(0, |e| u64::from(e.position));
        let mut scan = self.scanner(start, HEADER_SCAN_CHUNK, false);
        while let Some(s) = scan.next_batch().map_err(|e| e.into_log_error(&self.log_path))? {
            if s.header.max_timestamp >= timestamp {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch, oldest first, reading headers only (no
    /// CRC: the segment was checked when the log was opened).
    pub fn for_each_header(&self, mut f: impl FnMut(&BatchHeader)) -> Result<(), LogError> {
        let mut scan = self.scanner(0, HEADER_SCAN_CHUNK, false);
        while let Some(s) = scan.next_batch().map_err(|e| e.into_log_error(&self.log_path))? {
            f(&s.header);
        }
        Ok(())
    }

    /// The bytes of one batch found by a scan.
    pub fn batch_bytes(&self, s: &Scanned) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0; s.len as usize];
        self.log.read_exact_at(&mut buf, s.pos).ctx("read segment", &self.log_path)?;
        Ok(buf)
    }

    /// Appends to `out` the whole batches from `pos` that fit in `budget` bytes; when none
    /// fits and `need_one`, the first batch anyway (Kafka's rule, so a consumer is never
    /// stuck behind a batch larger than its fetch size).
    pub fn read_into(
        &self,
        pos: u64,
        budget: usize,
        need_one: bool,
        out: &mut Vec<u8>,
    ) -> Result<ReadPart, LogError> {
        let avail = self.size.saturating_sub(pos);
        let want = (budget as u64).min(avail) as usize;
        let start = out.len();
        out.resize(start + want, 0);
        self.log.read_exact_at(&mut out[start..], pos).ctx("read segment", &self.log_path)?;
        let (mut p, mut last_offset) = (0usize, None);
        while want - p >= HEADER_LEN {
            let (header, total) =
                BatchHeader::parse_prefix(&out[start + p..]).map_err(|e| LogError::Corrupt {
                    path: self.log_path.clone(),
                    position: pos + p as u64,
                    reason: e.to_string(),
                })?;
            if p + total > want {
                break;
            }
            p += total;
            last_offset = Some(header.last_offset());
        }
        out.truncate(start + p);
        if p == 0 && need_one && avail > 0 {
            let first = self
                .scanner(pos, HEADER_LEN, false)
                .next_batch()
                .map_err(|e| e.into_log_error(&self.log_path))?
                .ok_or_else(|| LogError::Corrupt {
                    path: self.log_path.clone(),
                    position: pos,
                    reason: "no batch where the index points".into(),
                })?;
            out.extend_from_slice(&self.batch_bytes(&first)?);
            return Ok(ReadPart {
                last_offset: Some(first.header.last_offset()),
                reached_end: first.len == avail,
            });
        }
        Ok(ReadPart { last_offset, reached_end: p as u64 == avail })
    }

    /// Removes every batch whose last offset is at least `target`: the file is cut at the
    /// start of the batch holding `target` (or the first batch after it). Returns the
    /// bytes removed.
    pub fn truncate_to(&mut self, target: i64, index_interval: u64) -> Result<u64, LogError> {
        let Some(cut) = self.find(target)? else { return Ok(0) };
        let removed = self.size - cut.pos;
        let keep = self.offsets.entries().partition_point(|e| u64::from(e.position) < cut.pos);
        self.offsets.truncate(keep)?;
        let base = self.base_offset;
        let cut_base = cut.header.base_offset;
        let keep = self.times.entries().partition_point(|e| base + i64::from(e.rel_offset) < cut_base);
        self.times.truncate(keep)?;
        self.log.set_len(cut.pos).ctx("truncate segment", &self.log_path)?;
        // Durable at once: a follower that truncated must not see the old tail come back.
        self.log.sync_all().ctx("fsync segment", &self.log_path)?;
        self.size = cut.pos;
        self.offsets.sync()?;
        self.times.sync()?;
        if let Err(reason) = self.rescan_tail(index_interval, false)? {
            return Err(LogError::Corrupt { path: self.log_path.clone(), position: 0, reason });
        }
        Ok(removed)
    }

    /// Recomputes the in-memory state (next offset, max timestamp, bytes since the last
    /// index entry) from the indexes plus a scan of the batches from the last offset-index
    /// entry to the end. `Ok(Err(reason))`: the indexes and the log disagree.
    fn rescan_tail(&mut self, index_interval: u64, verify: bool) -> Result<Result<(), String>, LogError> {
        let last_entry = self.offsets.last();
        let start = last_entry.map_or(0, |e| u64::from(e.position));
        (self.max_timestamp, self.offset_of_max_timestamp) = match self.times.last() {
            Some(t) => (t.timestamp, self.base_offset + i64::from(t.rel_offset)),
            None => (NO_TIMESTAMP, NO_TIMESTAMP),
        };
        self.next_offset = self.base_offset;
        self.bytes_since_index = 0;
        self.first_batch_timestamp = None;
        if start > 0 {
            match self.scanner(0, HEADER_LEN, false).next_batch() {
                Ok(Some(first)) => self.first_batch_timestamp = Some(first.header.max_timestamp),
                Ok(None) => return Ok(Err("the index points past the end of the log".into())),
                Err(ScanError::Io(e)) => return Err(e),
                Err(ScanError::Invalid { pos, reason }) => return Ok(Err(format!("at {pos}: {reason}"))),
            }
        }
        let reader = self.log.try_clone().ctx("open segment", &self.log_path)?;
        let path = self.log_path.clone();
        let mut scan = Scanner::new(&reader, &path, self.size, start, VERIFY_CHUNK, verify);
        let mut prev_last = self.base_offset - 1;
        loop {
            let s = match scan.next_batch() {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(ScanError::Io(e)) => return Err(e),
                Err(ScanError::Invalid { pos, reason }) => return Ok(Err(format!("at {pos}: {reason}"))),
            };
            if let Err(reason) = self.check_batch(&s, prev_last, None) {
                return Ok(Err(reason));
            }
            prev_last = s.header.last_offset();
            let indexed = s.pos == start && start > 0;
            if indexed && last_entry.is_some_and(|e| self.base_offset + i64::from(e.rel_offset) != prev_last)
            {
                return Ok(Err(format!("the last index entry does not match the batch at {start}")));
            }
            // The batch at the last entry was indexed when it was appended: count its bytes
            // without indexing it again.
            self.track(s.pos, s.len, &s.header, index_interval, !indexed)?;
        }
        if self.times.last().is_some_and(|t| self.base_offset + i64::from(t.rel_offset) >= self.next_offset) {
            return Ok(Err("the time index names an offset past the end of the log".into()));
        }
        // The scan appended entries for the batches after the loaded ones: together they
        // must still grow. And an entry holds the largest timestamp up to its offset, so none
        // is below the first batch's: an entry below every batch's timestamp (found by the
        // `log_dir_files` fuzz target) sent timestamp lookups to its offset, past the records
        // they were looking for.
        let below_first = self
            .times
            .entries()
            .first()
            .is_some_and(|t| self.first_batch_timestamp.is_some_and(|first| t.timestamp < first));
        if below_first || !times_look_sane(self.times.entries()) {
            return Ok(Err("the time index entries disagree with the log's batches".into()));
        }
        Ok(Ok(()))
    }

    /// Whether the batch `s` can follow `prev_last` in this segment (and stay below the
    /// next segment's base offset).
    fn check_batch(&self, s: &Scanned, prev_last: i64, next_base: Option<i64>) -> Result<(), String> {
        let h = &s.header;
        let last = h.last_offset();
        if h.base_offset <= prev_last || h.base_offset < self.base_offset {
            return Err(format!("at {}: batch offset {} does not follow {prev_last}", s.pos, h.base_offset));
        }
        if h.last_offset_delta < 0 || last - self.base_offset > i64::from(i32::MAX) {
            return Err(format!("at {}: last offset {last} is outside the segment's range", s.pos));
        }
        if next_base.is_some_and(|n| last >= n) {
            return Err(format!("at {}: last offset {last} reaches into the next segment", s.pos));
        }
        if s.pos > MAX_POSITION {
            return Err(format!("at {}: position beyond the largest segment size", s.pos));
        }
        Ok(())
    }

    /// Opens a segment whose data is believed to be on disk: checks the indexes and the
    /// batches after the last offset-index entry (CRC included), rebuilding nothing.
    pub fn load(dir: &Path, base_offset: i64, now_ms: i64, index_interval: u64) -> Result<Loaded, LogError> {
        let path = dir.join(file_name(base_offset, "log"));
        let log = open_log(&path, false)?;
        let size = log.metadata().ctx("stat segment", &path)?.len();
        let mut seg = Segment::with_files(dir, base_offset, log, size, now_ms);
        let Some(offsets) = IndexFile::<OffsetEntry>::read(seg.offsets.path())? else {
            return Ok(Loaded::NeedsRecovery("the .index file is missing or torn".into()));
        };
        let Some(times) = IndexFile::<TimeEntry>::read(seg.times.path())? else {
            return Ok(Loaded::NeedsRecovery("the .timeindex file is missing or torn".into()));
        };
        if size > MAX_POSITION || !offsets_look_sane(&offsets, size) {
            return Ok(Loaded::NeedsRecovery("the .index entries are out of order or past the log".into()));
        }
        if !times_look_sane(&times) {
            return Ok(Loaded::NeedsRecovery("the .timeindex entries are out of order".into()));
        }
        seg.offsets = IndexFile::loaded(seg.offsets.path().to_path_buf(), offsets);
        seg.times = IndexFile::loaded(seg.times.path().to_path_buf(), times);
        Ok(match seg.rescan_tail(index_interval, true)? {
            Ok(()) => Loaded::Ready(seg),
            Err(reason) => Loaded::NeedsRecovery(reason),
        })
    }

    /// Scans a whole segment checking every batch (CRC, length, offsets in order and below
    /// `next_base`), cuts the file at the first bad one and rebuilds both indexes. Returns
    /// the segment and, if it was cut, where, how many bytes went and why.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        next_base: Option<i64>,
        now_ms: i64,
        index_interval: u64,
    ) -> Result<(Segment, Option<Truncation>), LogError> {
        let path = dir.join(file_name(base_offset, "log"));
        let log = open_log(&path, false)?;
        let size = log.metadata().ctx("stat segment", &path)?.len();
        // A second handle for the scanner, so `track` can update the segment meanwhile.
        let reader = log.try_clone().ctx("open segment", &path)?;
        let mut seg = Segment::with_files(dir, base_offset, log, size, now_ms);
        seg.offsets = IndexFile::create(seg.offsets.path().to_path_buf(), vec![])?;
        seg.times = IndexFile::create(seg.times.path().to_path_buf(), vec![])?;
        let (mut cut, mut valid, mut prev_last) = (None, 0u64, base_offset - 1);
        let mut scan = Scanner::new(&reader, &path, size, 0, VERIFY_CHUNK, true);
        loop {
            match scan.next_batch() {
                Ok(Some(s)) => {
                    if let Err(reason) = seg.check_batch(&s, prev_last, next_base) {
                        cut = Some((s.pos, reason));
                        break;
                    }
                    prev_last = s.header.last_offset();
                    valid = s.pos + s.len;
                    seg.track(s.pos, s.len, &s.header, index_interval, true)?;
                }
                Ok(None) => break,
                Err(ScanError::Io(e)) => return Err(e),
                Err(ScanError::Invalid { pos, reason }) => {
                    cut = Some((pos, reason));
                    break;
                }
            }
        }
        if valid < size {
            seg.log.set_len(valid).ctx("truncate segment", &path)?;
            seg.log.sync_all().ctx("fsync segment", &path)?;
            seg.size = valid;
        }
        let cut = cut.map(|(position, reason)| Truncation {
            segment: base_offset,
            position,
            bytes: size - valid,
            reason,
        });
        Ok((seg, cut))
    }
}
