//! Log compaction for `cleanup.policy=compact`: one cleaning pass over one [`Log`]. The
//! pool of worker threads that decides which log to clean lives in [`crate::LogCleaner`].
//!
//! As Kafka's cleaner, a pass looks at the log in three parts: the *clean* section (below
//! the cleaner checkpoint, already compacted), the *dirty* section (from the checkpoint to
//! the first uncleanable offset) and the rest, which is never touched: the active segment,
//! and every segment from the first one whose newest record is younger than
//! `min.compaction.lag.ms`. A pass
//!
//! 1. builds an offset map, key → offset of its latest record, over the dirty section;
//! 2. rewrites every segment of the clean and dirty sections, in groups of adjacent segments
//!    that fit in one (at most `log.segment.bytes`, relative offsets within 32 bits), keeping
//!    a record only if it has a key, no later record of its key is in the map, and it is not
//!    an expired tombstone;
//! 3. swaps each group's cleaned segment in for the old ones, crash-safely.
//!
//! **What a cleaned batch looks like.** Offsets never change: a batch keeps its base offset
//! and last offset delta, and every kept record its offset delta. A batch whose records are
//! all kept is copied byte for byte; one that lost some is re-encoded with the same header
//! fields (codec, producer id / epoch / base sequence, leader epoch, timestamp type, base
//! timestamp, so every record keeps its timestamp; and its last offset delta even when its
//! last records went, as Kafka's `overrideLastOffset`: the batch still covers its offsets
//! and its producer sequences stay `baseSequence..=baseSequence + lastOffsetDelta`) and its
//! max timestamp recomputed from the kept records (a
//! `LogAppendTime` batch keeps its own); one that lost all disappears — except the last batch
//! of a group, which stays as an empty batch covering its offsets, as Kafka keeps an empty
//! batch, so that a cleaned segment always ends where the segments it replaces ended (crash
//! recovery relies on it, see below), and the latest batch of an idempotent producer (as
//! the log's producer state knew it when the pass was planned), which stays as an empty
//! batch with its producer id, epoch and sequences, as Kafka's cleaner keeps it
//! (`BatchRetention.RETAIN_EMPTY`): the producer state is rebuilt from the batch headers
//! when the log is opened, and must find the producer's last sequence there. A read of a
//! removed offset therefore returns the next batch, as in Kafka.
//!
//! **Simplifications of Kafka's cleaner** (each deliberate):
//! - *Records without a key* cannot be appended to a log whose policy includes `compact`
//!   ([`LogError::KeyRequired`]); any that arrive anyway (replicated, or written before the
//!   policy changed) are removed by the cleaner, as Kafka's `shouldRetainRecord` does.
//! - *Tombstones* (a key with a null value) are kept while they are in the dirty section,
//!   and removed by a later pass once their segment is in the clean section and its newest
//!   record (the file's modification time if no record has a timestamp) is more than
//!   `delete.retention.ms` before `now`. That is Kafka's rule before KIP-534 ("the segment's
//!   last modification is older than the delete horizon"), with the segment's newest
//!   timestamp standing for its last modification so the rule works with a fake clock and
//!   survives cleaning. Kafka 3.1+ instead stamps the first cleaning time into the batch
//!   (KIP-534); ours can therefore remove a tombstone sooner after its first cleaning when
//!   cleaning runs far behind the writes, never sooner than `delete.retention.ms` after its
//!   segment's newest record.
//! - *Control batches* (transaction markers) are kept as they are, and transactional data is
//!   compacted like any other: the log has no transaction state (only the idempotent
//!   producers' sequences, see above).
//! - The *offset map* holds every key of the dirty section (Kafka bounds it by
//!   `log.cleaner.dedupe.buffer.size` and cleans less per pass); memory is proportional to
//!   the distinct keys of the dirty section.
//! - The dirty section ends at the active segment or the compaction lag; nothing bounds it at
//!   the high watermark, which the log does not know yet.
//! - The whole pass's cleaned segments are written before the first swap (Kafka swaps group
//!   by group), so a pass needs free space for its output, at most the size of its input.
//!
//! **Locking.** [`Log::plan_clean`] (`&self`, cheap: sizes, file handles) and
//! [`Log::install_clean`] (`&mut self`: the renames) are the only steps that need the log;
//! [`CleanPlan::prepare`] — reading, building the map, writing the cleaned files — works on
//! file handles taken by the plan and needs nothing else. The install swaps only if no
//! segment was removed, cut or replaced since the plan (retention, truncation, another
//! swap); otherwise it drops the cleaned files and reports that nothing was done. Appends
//! meanwhile only touch the active segment, which is never cleaned.
//!
//! **Crash safety.** Per group, in this order (each rename atomic, the directory fsynced at
//! the marked points):
//! 1. the cleaned segment is written as `<base>.log.cleaned`, `.index.cleaned`,
//!    `.timeindex.cleaned` and fsynced, then the directory (in [`CleanPlan::prepare`]);
//! 2. its index files are renamed to `.swap`, then its log file — **the commit point** — and
//!    the directory is fsynced;
//! 3. the old segments' files are renamed to `.deleted`;
//! 4. the `.swap` files are renamed to their live names, log first; directory fsynced;
//! 5. the `.deleted` files are removed.
//!
//! Opening the log ([`crate::recovery`]) rolls an interrupted swap forward if
//! `<base>.log.swap` exists (step 2 done): it becomes `<base>.log`, the live segments inside
//! its offsets are deleted and its indexes rebuilt. Otherwise the leftovers (`.cleaned`,
//! index `.swap`, `.deleted`) are removed, which rolls back before step 2 and finishes after
//! step 4. The cleaner checkpoint is written by the pool after the install, so a crash can
//! only make a pass run again.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::batch::{
    encode_empty, set_last_offset_delta, BatchHeader, BatchView, Record, RecordBatch, TimestampType,
    MAX_RECOMPRESS_BYTES,
};
use crate::config::LogConfig;
use crate::error::{IoContext, LogError};
use crate::recovery::{remove_if_present, sync_dir};
use crate::segment::{
    file_name, Loaded, Segment, SegmentSnapshot, CLEANED_SUFFIX, DELETED_SUFFIX, SEGMENT_EXTS, SWAP_SUFFIX,
};
use crate::Log;

/// Where a log's cleaning stands: Kafka's `LogToClean`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirtyStats {
    /// The first offset not yet cleaned: the cleaner checkpoint, or the log start offset when
    /// the checkpoint is outside the log.
    pub first_dirty_offset: i64,
    /// Where the cleanable part ends: the active segment's base offset, or the base offset of
    /// the first segment younger than `min.compaction.lag.ms`.
    pub first_uncleanable_offset: i64,
    /// Bytes of the segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the segments from the first dirty offset to the first uncleanable one.
    pub dirty_bytes: u64,
}

impl DirtyStats {
    /// Dirty bytes over all cleanable bytes (0 when there are none).
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether the cleaner should take the log: it has dirty bytes and their share reaches
    /// `min.cleanable.dirty.ratio`.
    pub fn is_cleanable(&self, min_cleanable_dirty_ratio: f64) -> bool {
        self.dirty_bytes > 0 && self.dirty_ratio() >= min_cleanable_dirty_ratio
    }
}

/// What a cleaning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Where the dirty section began.
    pub first_dirty_offset: i64,
    /// Everything below this is now clean: the new cleaner checkpoint.
    pub end_offset: i64,
    /// Distinct keys found in the dirty section.
    pub keys: usize,
    /// Segments rewritten.
    pub segments_before: usize,
    /// Segments they became.
    pub segments_after: usize,
    /// Bytes of the segments rewritten.
    pub bytes_before: u64,
    /// Bytes of the cleaned segments.
    pub bytes_after: u64,
    /// Records removed (superseded, keyless or expired tombstones).
    pub records_removed: u64,
    /// Of those, tombstones removed because `delete.retention.ms` had passed.
    pub tombstones_removed: u64,
}

/// A pass decided under the log's lock: which segments, read through which handles.
#[derive(Debug)]
pub struct CleanPlan {
    dir: PathBuf,
    config: LogConfig,
    generation: u64,
    now_ms: i64,
    first_dirty: i64,
    end_offset: i64,
    groups: Vec<Vec<SegmentSnapshot>>,
    /// Producer id → last offset of its latest batch: the batches kept even when empty.
    producer_last_offsets: HashMap<i64, i64>,
}

/// A pass whose cleaned segments are written, waiting for [`Log::install_clean`]. Dropping
/// it removes the cleaned files.
#[derive(Debug)]
pub struct PreparedClean {
    dir: PathBuf,
    generation: u64,
    groups: Vec<CleanedGroup>,
    report: CleanReport,
}

/// One group's cleaned segment and the segments it replaces.
#[derive(Debug)]
struct CleanedGroup {
    base: i64,
    old_bases: Vec<i64>,
}

impl Log {
    /// Where cleaning stands, given the cleaner checkpoint (`first_dirty`, 0 if none).
    pub fn dirty_stats(&self, first_dirty: i64, now_ms: i64) -> DirtyStats {
        let active_base = self.active().base_offset();
        let lag = self.config.min_compaction_lag_ms;
        let too_young = (lag > 0)
            .then(|| {
                self.segments
                    .iter()
                    .find(|s| s.max_timestamp() > now_ms.saturating_sub(lag))
                    .map(Segment::base_offset)
            })
            .flatten();
        let first_uncleanable = too_young.map_or(active_base, |b| b.min(active_base));
        // Kafka resets a checkpoint outside the log (after retention or truncation) to the start.
        let first_dirty = if first_dirty < self.log_start_offset() || first_dirty > self.log_end_offset() {
            self.log_start_offset()
        } else {
            first_dirty
        };
        let (mut clean_bytes, mut dirty_bytes) = (0, 0);
        for seg in self.segments.iter().take_while(|s| s.base_offset() < first_uncleanable) {
            if seg.next_offset() <= first_dirty {
                clean_bytes += seg.size();
            } else {
                dirty_bytes += seg.size();
            }
        }
        DirtyStats {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: first_uncleanable,
            clean_bytes,
            dirty_bytes,
        }
    }

    /// Plans a cleaning pass from the cleaner checkpoint `first_dirty`: which segments, in
    /// which groups. Cheap (no data is read), so it can run under the owner's lock. `None`
    /// when the policy has no `compact` or no segment is cleanable. Does not look at
    /// `min.cleanable.dirty.ratio`: that is for whoever picks the log ([`DirtyStats`]).
    pub fn plan_clean(&self, first_dirty: i64, now_ms: i64) -> Result<Option<CleanPlan>, LogError> {
        if !self.config.cleanup_policy.compact {
            return Ok(None);
        }
        let stats = self.dirty_stats(first_dirty, now_ms);
        let limit = stats.first_uncleanable_offset;
        let max_size = self.config.segment_bytes;
        let mut groups: Vec<Vec<SegmentSnapshot>> = Vec::new();
        let (mut group_size, mut group_base) = (0u64, 0i64);
        let last = self.segments.len() - 1;
        for seg in self.segments.iter().take(last).take_while(|s| s.base_offset() < limit) {
            let fits = groups.last().is_some_and(|g| !g.is_empty())
                && group_size + seg.size() <= max_size
                && seg.next_offset() - 1 - group_base <= i64::from(i32::MAX);
            if !fits {
                groups.push(Vec::new());
                (group_size, group_base) = (0, seg.base_offset());
            }
            group_size += seg.size();
            if let Some(g) = groups.last_mut() {
                g.push(seg.snapshot()?);
            }
        }
        groups.retain(|g| g.iter().any(|s| s.size > 0));
        if groups.is_empty() {
            return Ok(None);
        }
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            config: self.config.clone(),
            generation: self.generation,
            now_ms,
            first_dirty: stats.first_dirty_offset,
            end_offset: stats.first_dirty_offset.max(limit),
            groups,
            producer_last_offsets: self.producers.last_offsets(),
        }))
    }

    /// Swaps a prepared pass in (see the module docs for the order of the renames). `None`
    /// if a segment was removed, cut or replaced since the plan: nothing is swapped and the
    /// cleaned files are removed. After an I/O error here the log must be reopened (its
    /// recovery finishes or rolls back the swap), as Kafka takes a log directory offline.
    pub fn install_clean(
        &mut self,
        mut prepared: PreparedClean,
        now_ms: i64,
    ) -> Result<Option<CleanReport>, LogError> {
        if prepared.generation != self.generation {
            return Ok(None);
        }
        let dir = self.dir.clone();
        let interval = self.config.index_interval_bytes;
        for group in std::mem::take(&mut prepared.groups) {
            let Some(first) = self.segments.iter().position(|s| s.base_offset() == group.base) else {
                return Err(inconsistent(&dir, group.base));
            };
            let in_log: Vec<i64> = self
                .segments
                .iter()
                .skip(first)
                .take(group.old_bases.len())
                .map(Segment::base_offset)
                .collect();
            if in_log != group.old_bases || first + group.old_bases.len() >= self.segments.len() {
                return Err(inconsistent(&dir, group.base));
            }
            let base = group.base;
            for ext in ["index", "timeindex", "log"] {
                rename(&dir, base, ext, CLEANED_SUFFIX, SWAP_SUFFIX)?;
            }
            sync_dir(&dir)?;
            for &old in &group.old_bases {
                for ext in SEGMENT_EXTS {
                    rename_if_present(&dir, old, ext, "", DELETED_SUFFIX)?;
                }
            }
            for ext in SEGMENT_EXTS {
                rename(&dir, base, ext, SWAP_SUFFIX, "")?;
            }
            sync_dir(&dir)?;
            for &old in &group.old_bases {
                for ext in SEGMENT_EXTS {
                    remove_if_present(&dir.join(file_name(old, ext) + DELETED_SUFFIX))?;
                }
            }
            let mut seg = match Segment::load(&dir, base, now_ms, interval)? {
                Loaded::Ready(seg) => seg,
                Loaded::NeedsRecovery(_) => Segment::recover(&dir, base, None, now_ms, interval)?.0,
            };
            seg.seal()?;
            self.segments.drain(first..first + group.old_bases.len());
            self.segments.insert(first, seg);
            self.generation += 1;
        }
        self.dir_dirty = true;
        Ok(Some(std::mem::take(&mut prepared.report)))
    }

    /// One whole pass under `&mut self`: plan, prepare, install. For owners that clean from
    /// their own thread and for tests; the pool's workers hold the log's lock only to plan
    /// and to install.
    pub fn clean(&mut self, first_dirty: i64, now_ms: i64) -> Result<Option<CleanReport>, LogError> {
        let Some(plan) = self.plan_clean(first_dirty, now_ms)? else { return Ok(None) };
        let prepared = plan.prepare()?;
        self.install_clean(prepared, now_ms)
    }
}

fn inconsistent(dir: &Path, base: i64) -> LogError {
    LogError::Corrupt {
        path: dir.join(file_name(base, "log")),
        position: 0,
        reason: "the segments to replace changed under the cleaner".into(),
    }
}

impl CleanPlan {
    /// Where the dirty section begins.
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty
    }

    /// Builds the offset map and writes every group's cleaned segment (`*.cleaned`,
    /// fsynced). Reads through the plan's own file handles: the log need not be held.
    pub fn prepare(self) -> Result<PreparedClean, LogError> {
        let mut prepared = PreparedClean {
            dir: self.dir.clone(),
            generation: self.generation,
            groups: Vec::new(),
            report: CleanReport {
                first_dirty_offset: self.first_dirty,
                end_offset: self.end_offset,
                ..CleanReport::default()
            },
        };
        let map = self.offset_map()?;
        prepared.report.keys = map.len();
        for group in &self.groups {
            let base = group.first().map_or(0, |s| s.base_offset);
            // Registered before writing, so that dropping `prepared` on an error removes
            // whatever was written.
            prepared
                .groups
                .push(CleanedGroup { base, old_bases: group.iter().map(|s| s.base_offset).collect() });
            self.clean_group(group, &map, &mut prepared.report)?;
        }
        sync_dir(&self.dir)?;
        Ok(prepared)
    }

    /// Key → offset of its latest record in the dirty section (control batches and keyless
    /// records are not in it).
    fn offset_map(&self) -> Result<HashMap<Bytes, i64>, LogError> {
        let mut map = HashMap::new();
        for seg in self.groups.iter().flatten().filter(|s| s.next_offset > self.first_dirty) {
            seg.for_each_batch(|scanned, bytes| {
                let h = &scanned.header;
                if h.is_control || h.last_offset() < self.first_dirty {
                    return Ok(());
                }
                for r in decode(seg, scanned.pos, bytes)?.1 {
                    let offset = h.base_offset + i64::from(r.offset_delta);
                    if let (Some(key), true) = (r.key, offset >= self.first_dirty) {
                        map.insert(key, offset);
                    }
                }
                Ok(())
            })?;
        }
        Ok(map)
    }

    /// Writes one group's cleaned segment.
    fn clean_group(
        &self,
        group: &[SegmentSnapshot],
        map: &HashMap<Bytes, i64>,
        report: &mut CleanReport,
    ) -> Result<(), LogError> {
        let base = group.first().map_or(0, |s| s.base_offset);
        let end = group.iter().map(|s| s.next_offset).max().unwrap_or(base);
        let interval = self.config.index_interval_bytes;
        let mut out = Segment::create_cleaned(&self.dir, base, self.now_ms)?;
        let mut last_dropped: Option<BatchHeader> = None;
        for seg in group {
            report.segments_before += 1;
            report.bytes_before += seg.size;
            let drop_tombstones = seg.next_offset <= self.first_dirty
                && self.now_ms.saturating_sub(seg.last_modified_ms) > self.config.delete_retention_ms;
            seg.for_each_batch(|scanned, bytes| {
                let (view, records) = match scanned.header.is_control {
                    true => (parse(seg, scanned.pos, bytes)?, None),
                    false => decode(seg, scanned.pos, bytes).map(|(v, r)| (v, Some(r)))?,
                };
                let h = &view.header;
                let Some(records) = records else {
                    last_dropped = None;
                    return out.append(bytes, h, interval);
                };
                let total = records.len();
                let mut kept = Vec::with_capacity(total);
                for r in records {
                    let offset = h.base_offset + i64::from(r.offset_delta);
                    let superseded =
                        r.key.as_ref().and_then(|k| map.get(k)).is_some_and(|&latest| latest > offset);
                    let expired = r.value.is_none() && drop_tombstones;
                    if r.key.is_some() && !superseded && !expired {
                        kept.push(r);
                    } else if r.key.is_some() && !superseded {
                        report.tombstones_removed += 1;
                    }
                }
                report.records_removed += (total - kept.len()) as u64;
                // An empty batch an earlier pass left at a group's end goes too, unless it is
                // still at the end.
                if kept.len() == total && total > 0 {
                    last_dropped = None;
                    return out.append(bytes, h, interval);
                }
                if kept.is_empty() {
                    if h.producer_id >= 0
                        && self.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset())
                    {
                        // A producer's latest batch: kept, empty (see the module docs).
                        last_dropped = None;
                        return append_encoded(&mut out, &encode_empty(h), interval);
                    }
                    last_dropped = Some(h.clone());
                    return Ok(());
                }
                last_dropped = None;
                let header = BatchHeader { max_timestamp: max_timestamp(h, &kept), ..h.clone() };
                let mut encoded = RecordBatch { header, records: kept }.encode();
                set_last_offset_delta(&mut encoded, h.last_offset_delta);
                append_encoded(&mut out, &encoded, interval)
            })?;
        }
        // Keep the group's last offsets covered (see the module docs).
        if let Some(h) = last_dropped.filter(|h| h.last_offset() == end - 1) {
            append_encoded(&mut out, &encode_empty(&h), interval)?;
        }
        out.seal()?;
        out.flush()?;
        report.segments_after += 1;
        report.bytes_after += out.size();
        Ok(())
    }
}

/// The max timestamp of a batch that kept only `kept`.
fn max_timestamp(h: &BatchHeader, kept: &[Record]) -> i64 {
    match h.timestamp_type {
        TimestampType::LogAppendTime => h.max_timestamp,
        TimestampType::CreateTime => kept
            .iter()
            .map(|r| h.base_timestamp.saturating_add(r.timestamp_delta))
            .max()
            .unwrap_or(h.max_timestamp),
    }
}

fn append_encoded(out: &mut Segment, bytes: &[u8], interval: u64) -> Result<(), LogError> {
    let (header, _) = BatchHeader::parse_prefix(bytes)?;
    out.append(bytes, &header, interval)
}

fn corrupt(seg: &SegmentSnapshot, pos: u64, e: impl ToString) -> LogError {
    LogError::Corrupt { path: seg.log_path.clone(), position: pos, reason: e.to_string() }
}

fn parse<'a>(seg: &SegmentSnapshot, pos: u64, bytes: &'a [u8]) -> Result<BatchView<'a>, LogError> {
    BatchView::parse(bytes).map_err(|e| corrupt(seg, pos, e))
}

fn decode<'a>(
    seg: &SegmentSnapshot,
    pos: u64,
    bytes: &'a [u8],
) -> Result<(BatchView<'a>, Vec<Record>), LogError> {
    let view = parse(seg, pos, bytes)?;
    let records = view.records(MAX_RECOMPRESS_BYTES).map_err(|e| corrupt(seg, pos, e))?;
    Ok((view, records))
}

impl Drop for PreparedClean {
    fn drop(&mut self) {
        for group in &self.groups {
            for ext in SEGMENT_EXTS {
                let path = self.dir.join(file_name(group.base, ext) + CLEANED_SUFFIX);
                if let Err(e) = remove_if_present(&path) {
                    tracing::warn!(error = %e, "could not remove an abandoned cleaned segment (reopening removes it)");
                }
            }
        }
    }
}

fn rename(dir: &Path, base: i64, ext: &str, from: &str, to: &str) -> Result<(), LogError> {
    let name = file_name(base, ext);
    let src = dir.join(format!("{name}{from}"));
    fs::rename(&src, dir.join(format!("{name}{to}"))).ctx("rename segment file", &src)
}

fn rename_if_present(dir: &Path, base: i64, ext: &str, from: &str, to: &str) -> Result<(), LogError> {
    match rename(dir, base, ext, from, to) {
        Err(LogError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
