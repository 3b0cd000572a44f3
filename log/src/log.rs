//! [`Log`]: one partition's log, a directory of segments. It assigns offsets, rolls,
//! reads by offset and timestamp, flushes, applies retention, truncates, and recovers on
//! open (see [`crate::recovery`]).
//!
//! The log also keeps its leader-epoch cache ([`crate::epoch`]): which leader epoch
//! started at which offset, stamped into appended batches once an epoch is assigned and
//! kept in step with truncation, retention and recovery; see "Leader epochs" on [`Log`].
//!
//! And it keeps the state of its idempotent producers ([`crate::producer_state`]), with
//! which [`Log::append`] answers a producer's resent batch with the offsets of the first
//! copy instead of writing it twice; see "Idempotent producers" on [`Log`].
//!
//! Time comes in as `now_ms` arguments; the log reads no clock and starts no thread.
//! Periodic work — flushing segments that were rolled, `log.flush.interval.ms`, retention —
//! happens in [`Log::tick`], which the owner calls from its timer
//! (`log.retention.check.interval.ms`). Reads take `&self` and everything that deletes or
//! cuts takes `&mut self`, so a read can never see a segment disappear half-way: a read
//! after retention moved the log start is an [`LogError::OffsetOutOfRange`] that names the
//! new start.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::batch::{
    set_base_offset, set_partition_leader_epoch, BatchError, BatchHeader, BatchView, TimestampType,
};
use crate::checkpoint::{self, CheckpointError, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT};
use crate::compression::CompressionError;
use crate::config::LogConfig;
use crate::epoch::{EpochEntry, LeaderEpochCache, LEADER_EPOCH_CHECKPOINT};
use crate::error::LogError;
use crate::producer_state::{AppendCheck, ProducerEntry, ProducerStateManager};
use crate::recovery::{open_segments, RecoveryReport};
use crate::segment::{Scanned, Segment, NO_TIMESTAMP};
use crate::TopicPartition;

/// Largest decompressed batch [`Log::offset_for_timestamp`] decodes to find the exact
/// record; past it, the batch's first offset is the answer.
const TIMESTAMP_LOOKUP_LIMIT: usize = 64 << 20;

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest timestamp among the batches (`-1` if none carried one).
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Records appended (the batches' `recordsCount`).
    pub records: u64,
    /// Bytes appended.
    pub bytes: u64,
    /// Whether a new segment was rolled for it.
    pub rolled: bool,
    /// Whether the append ended in an fsync (`log.flush.interval.*`).
    pub flushed: bool,
    /// Whether the batches were a producer's resend of batches already in the log: nothing
    /// was written, `base_offset` / `last_offset` are the offsets the originals got, and
    /// `records` and `bytes` are 0 (see "Idempotent producers" on [`Log`]).
    pub duplicate: bool,
}

impl AppendInfo {
    /// Offsets `base_offset..=last_offset`, nothing counted yet (no records, bytes or
    /// timestamps); `duplicate` when they were written before.
    fn covering(base_offset: i64, last_offset: i64, duplicate: bool) -> Self {
        AppendInfo {
            base_offset,
            last_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: NO_TIMESTAMP,
            records: 0,
            bytes: 0,
            rolled: false,
            flushed: false,
            duplicate,
        }
    }
}

/// Whole batches read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Batches, back to back, exactly as stored. The first holds the requested offset (or
    /// is the first one after it); the first may start before it.
    pub records: Bytes,
    /// The offset after the last batch returned: where the next sequential read starts.
    pub next_offset: i64,
    /// The log's start offset at the time of the read.
    pub log_start_offset: i64,
    /// The log's end offset at the time of the read.
    pub log_end_offset: i64,
}

/// What [`Log::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Whether anything was fsynced.
    pub flushed: bool,
    /// Base offsets of the segments deleted by retention, oldest first.
    pub deleted_segments: Vec<i64>,
    /// Bytes those segments held.
    pub deleted_bytes: u64,
}

/// One batch of an append, checked and with its final base offset.
struct Planned {
    start: usize,
    len: usize,
    header: BatchHeader,
}

/// One partition's log.
///
/// **Leader epochs.** The log keeps a [`LeaderEpochCache`] in its directory's
/// `leader-epoch-checkpoint`, Kafka's, for replication (OffsetsForLeaderEpoch, KIP-101 /
/// KIP-279):
/// - [`Log::assign_leader_epoch`] (becoming leader) records the epoch at the log end; from
///   then on [`Log::append`] stamps the latest epoch into every batch. Until an epoch is
///   assigned the cache stays empty and appends keep the producer's field.
/// - [`Log::append_replicated`] (a follower) records each batch epoch newer than the latest
///   one at the batch's base offset, writing the file before the batches.
/// - [`Log::truncate_to`] drops the epochs starting at or past the new log end,
///   [`Log::truncate_fully_and_start_at`] all of them, and retention moves the first one up
///   to the new log start (Kafka's `truncateFromEnd` / `truncateFromStart`).
/// - Opening reads the file, or — missing or malformed — rebuilds it from the batch headers
///   (where the epoch grows; a negative epoch is Kafka's "none" and is skipped, 0 is a real
///   epoch), then applies Kafka's load rules: epochs starting at or past the recovered log
///   end are dropped (Kafka's `truncateFromEnd(logEndOffset)`: data past a cut is gone, and
///   an epoch assigned at the end with nothing written under it is forgotten — a leader
///   assigns its epoch again when it takes the partition back), and the first one is moved
///   up to the log start.
///
/// **Idempotent producers.** The log keeps, per producer id, the producer's epoch and its
/// last 5 batches' sequences and offsets ([`ProducerStateManager`], Kafka's
/// `ProducerStateManager` without transactions), so that a producer's resend is not written
/// twice — even by a new leader, which learned the sequences from the batches it
/// replicated:
/// - [`Log::append`] (the leader) checks every batch with a producer id against the state
///   before anything is written (Kafka's rules: see [`crate::producer_state`]). A resend of
///   one of the retained batches (same epoch, same first and last sequence) writes nothing
///   and answers with the original offsets ([`AppendInfo::duplicate`]); an older epoch is
///   [`LogError::InvalidProducerEpoch`], a sequence that does not follow
///   [`LogError::OutOfOrderSequence`], and an append mixing a resend with new batches
///   [`LogError::DuplicateInMixedAppend`]. In every error case nothing is written.
/// - [`Log::append_replicated`] (a follower) records its batches without checks: the
///   leader checked them. A batch of a new producer epoch drops the retained batches of
///   the old one.
/// - Opening rebuilds the state by reading every batch header of every segment, oldest
///   first, in the same scan that rebuilds the leader-epoch cache when its file is missing
///   — one header read per batch (the scan reads 16 KiB at a time, so small batches share
///   a read). Kafka instead writes `<offset>.snapshot` files of the state at each roll and
///   reads only the batches after the latest one; this log keeps no such file, so opening
///   costs a header scan of the whole log.
/// - [`Log::truncate_to`] forgets the retained batches it cuts; if a producer is left with
///   none, the state is rebuilt from the remaining log (its older batches, possibly of an
///   older epoch, are its latest again). [`Log::truncate_fully_and_start_at`] forgets every
///   producer.
/// - Retention leaves the state as it is: a producer whose batches were all deleted is still
///   known until the log is reopened, which rebuilds from what remains (then it is unknown,
///   and its next sequence is accepted whatever it is). Kafka keeps producers across
///   retention in its snapshots and expires them by time (`producer.id.expiration.ms`);
///   this log has no expiry — a producer's entry is small (at most 5 batches).
/// - Compaction keeps the producer fields and the last offset delta — so the sequence
///   range — of the batches it rewrites, and keeps each producer's latest batch (empty if
///   all its records went), as Kafka's cleaner does, so that reopening finds the
///   producer's last sequence (see [`crate::cleaner`]).
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    topic_partition: TopicPartition,
    pub(crate) config: LogConfig,
    /// Never empty; the last one is the active segment.
    pub(crate) segments: VecDeque<Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    /// Bumped whenever a segment other than the active one is removed, cut or replaced
    /// (retention, truncation, a cleaner swap): the cleaner, which reads segments without
    /// holding the log, swaps its output in only if this did not change meanwhile.
    pub(crate) generation: u64,
    /// When the oldest unflushed append happened.
    unflushed_since_ms: Option<i64>,
    /// Segment files created or deleted since the directory was last fsynced.
    pub(crate) dir_dirty: bool,
    recovery: RecoveryReport,
    /// Which leader epoch started at which offset.
    epochs: LeaderEpochCache,
    /// The idempotent producers' epochs and last batches.
    pub(crate) producers: ProducerStateManager,
}

impl Log {
    /// Opens (or creates) the log in `dir`, which must be named `<topic>-<partition>`,
    /// recovering from the recovery point recorded for it in the parent directory's
    /// `recovery-point-offset-checkpoint` (from the start if there is none), and starting
    /// it where the parent's `log-start-offset-checkpoint` says, if that is further on.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        let dir = dir.as_ref();
        let tp = topic_partition(dir)?;
        let read = |name: &str| match dir.parent() {
            Some(parent) => match checkpoint::read(&parent.join(name)) {
                Ok(points) => (points.get(&tp).copied(), None),
                Err(e) => (None, Some(e.to_string())),
            },
            None => (None, None),
        };
        let (recovery_point, recovery_error) = read(RECOVERY_POINT_CHECKPOINT);
        let (log_start, start_error) = read(LOG_START_OFFSET_CHECKPOINT);
        let mut log = Log::open_with_recovery_point(dir, config, recovery_point.unwrap_or(0), now_ms)?;
        log.recovery.checkpoint_error = recovery_error.or(start_error);
        if let Some(start) = log_start {
            // A checkpoint past the end (the data it described is gone) is not followed.
            if start <= log.log_end_offset() {
                log.advance_log_start(start)?;
            }
        }
        Ok(log)
    }

    /// Opens (or creates) the log in `dir`, taking data below `recovery_point` as durable
    /// (0: check everything).
    pub fn open_with_recovery_point(
        dir: impl AsRef<Path>,
        config: LogConfig,
        recovery_point: i64,
        now_ms: i64,
    ) -> Result<Log, LogError> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let topic_partition = topic_partition(&dir)?;
        let (segments, mut recovery) = open_segments(&dir, &config, recovery_point, now_ms)?;
        let log_start_offset = segments.front().map_or(0, Segment::base_offset);
        let log_end_offset = segments.back().map_or(0, Segment::next_offset);
        let recovery_point = recovery_point.clamp(log_start_offset, log_end_offset.max(log_start_offset));
        recovery.recovery_point = recovery_point;
        // One scan of the batch headers: the producer state always needs it, the
        // leader-epoch cache only without a usable file.
        let mut producers = ProducerStateManager::new();
        let mut epoch_starts: Vec<EpochEntry> = Vec::new();
        for_each_header(&segments, |h| {
            producers.record(h);
            let epoch = h.partition_leader_epoch;
            if epoch >= 0 && epoch_starts.last().is_none_or(|latest| epoch > latest.epoch) {
                epoch_starts.push(EpochEntry { epoch, start_offset: h.base_offset });
            }
        })?;
        let (mut epochs, rebuilt) = load_epochs(&dir, &segments, epoch_starts)?;
        recovery.epoch_cache_rebuilt = rebuilt;
        epochs.truncate_from_end(log_end_offset)?;
        epochs.truncate_from_start(log_start_offset)?;
        Ok(Log {
            dir,
            topic_partition,
            config,
            segments,
            log_start_offset,
            recovery_point,
            generation: 0,
            unflushed_since_ms: None,
            dir_dirty: true,
            recovery,
            epochs,
            producers,
        })
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The topic and partition, from the directory's name.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the log's settings (its topic's config changed), checked as at open. Each
    /// takes effect at its next use: a segment size or roll time at the next roll, retention
    /// at the next tick, `max.message.bytes` at the next append. Turning compaction on for an
    /// open log starts cleaning it only when the log is next opened.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// What opening the log found and did.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The first offset the log holds.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next append gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Everything below this offset has been fsynced (what the owner writes to
    /// `recovery-point-offset-checkpoint`).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    /// Base offsets of the segments, oldest first (the last one is active).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }

    /// The latest leader epoch in the cache: the one [`Log::append`] stamps into batches.
    /// `None` until an epoch is assigned or replicated.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// What the log knows of the idempotent producer `producer_id`: its epoch and its last
    /// batches (at most 5), `None` if it is unknown (see "Idempotent producers" on [`Log`]).
    pub fn producer_entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.entry(producer_id)
    }

    /// The leader-epoch cache's entries, oldest epoch first.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// Called when this broker becomes the partition's leader at `epoch`: if `epoch` is
    /// newer than the latest cached epoch (or none is cached), records that it starts at the
    /// log end offset and writes `leader-epoch-checkpoint`; from then on [`Log::append`]
    /// stamps it into every batch. An epoch that is not newer changes nothing (the same
    /// leadership announced again; an older one is logged and ignored). A negative epoch
    /// is [`LogError::InvalidLeaderEpoch`].
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        if epoch < 0 {
            return Err(LogError::InvalidLeaderEpoch(epoch));
        }
        if let Some(latest) = self.epochs.latest_epoch().filter(|&latest| latest >= epoch) {
            if latest > epoch {
                tracing::warn!(
                    dir = %self.dir.display(), epoch, latest,
                    "a leader epoch older than the latest one was assigned; ignored"
                );
            }
            return Ok(());
        }
        let end = self.log_end_offset();
        self.epochs.assign(epoch, end)?;
        Ok(())
    }

    /// Kafka's OffsetsForLeaderEpoch answer, `(epoch, end offset)`, as a leader gives it to
    /// a follower that last wrote under `epoch`: for the latest cached epoch, it and the log
    /// end offset; for an older one, the largest cached epoch at or below it and the start
    /// offset of the first cached epoch above it (where the follower must truncate). `None`
    /// when the cache is empty or `epoch` is newer than the latest or older than the first
    /// cached epoch (see [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    pub(crate) fn active(&self) -> &Segment {
        match self.segments.back() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn active_mut(&mut self) -> &mut Segment {
        match self.segments.back_mut() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    /// Appends one or more batches (back to back) as the leader: checks each (CRC, size
    /// against `message.max.bytes`, header consistency), gives them the next offsets by
    /// rewriting their base-offset field in `batches` (outside the CRC's range, so the
    /// producer's bytes stay valid), and writes them, rolling first when the active
    /// segment is full or old. Nothing is written unless every batch passes.
    ///
    /// With a `compression.type` other than `producer`, batches in another codec are first
    /// recompressed (see [`crate::batch::recompress`]) and the stored bytes are those; size
    /// limits apply to what is stored.
    ///
    /// Once a leader epoch was assigned ([`Log::assign_leader_epoch`]), the latest one is
    /// stamped into every batch's `partitionLeaderEpoch` the same way (the field is outside
    /// the CRC's range too); before that, the producer's value is kept.
    ///
    /// Batches from idempotent producers are checked against what the log knows of their
    /// producers first (see "Idempotent producers" on [`Log`]): an append of resent batches
    /// only writes nothing and answers with the originals' offsets and
    /// [`AppendInfo::duplicate`] set; an append that breaks a producer's epoch or sequence
    /// fails and writes nothing.
    pub fn append(&mut self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        if let Some(target) = self.config.compression_type.codec() {
            if let Some(mut converted) = crate::batch::recompress(batches, target)? {
                return self.append_as_is(&mut converted, now_ms);
            }
        }
        self.append_as_is(batches, now_ms)
    }

    fn append_as_is(&mut self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut plan = self.plan(batches, true)?;
        if let AppendCheck::Duplicate { first_offset, last_offset } =
            self.producers.check_append(plan.iter().map(|p| &p.header))?
        {
            return Ok(AppendInfo::covering(first_offset, last_offset, true));
        }
        let epoch = self.epochs.latest_epoch();
        for p in &mut plan {
            set_base_offset(&mut batches[p.start..], p.header.base_offset);
            if let Some(epoch) = epoch {
                set_partition_leader_epoch(&mut batches[p.start..], epoch);
                p.header.partition_leader_epoch = epoch;
            }
        }
        self.write(batches, &plan, now_ms)
    }

    /// Appends batches that already carry their offsets (a follower copying its leader):
    /// the same checks as [`Log::append`], and the offsets must continue the log.
    ///
    /// Each batch whose `partitionLeaderEpoch` is newer than the latest cached epoch
    /// starts that epoch at its base offset; cached epochs starting at or past the log end
    /// hold no record and give way to the batches' (see
    /// [`LeaderEpochCache::assign_appended`]). `leader-epoch-checkpoint` is written before
    /// the batches, so a crash never leaves records under an epoch the file lacks.
    ///
    /// The batches of idempotent producers are recorded in the producer state unchecked
    /// (the leader checked them), so that this log, once leader, recognises a resend. Nor is
    /// a batch's size checked against `max.message.bytes`: the leader took it.
    pub fn append_replicated(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let plan = self.plan(batches, false)?;
        let starts = plan.iter().map(|p| EpochEntry {
            epoch: p.header.partition_leader_epoch,
            start_offset: p.header.base_offset,
        });
        self.epochs.assign_appended(self.log_end_offset(), starts)?;
        self.write(batches, &plan, now_ms)
    }

    fn plan(&self, bytes: &[u8], assign: bool) -> Result<Vec<Planned>, LogError> {
        if bytes.is_empty() {
            return Err(LogError::InconsistentBatch("no batches to append"));
        }
        let mut plan = Vec::new();
        let (mut at, mut next) = (0, self.log_end_offset());
        while at < bytes.len() {
            let view = BatchView::parse(&bytes[at..])?;
            let len = view.len();
            let size = len as u64;
            // Only the leader's append checks the size: a replica takes what its leader took
            // (Kafka's `ignoreRecordSize` for followers), or a replica whose topic config
            // changed before its leader's would stop following.
            if assign && size > self.config.max_message_bytes {
                return Err(LogError::RecordTooLarge { size, max: self.config.max_message_bytes });
            }
            if size > self.config.segment_bytes {
                return Err(LogError::LargerThanSegment { size, segment_bytes: self.config.segment_bytes });
            }
            let mut header = view.header.clone();
            if header.last_offset_delta < 0
                || header.records_count < 0
                || i64::from(header.records_count) > i64::from(header.last_offset_delta) + 1
            {
                return Err(LogError::InconsistentBatch("records count and last offset delta disagree"));
            }
            if assign {
                if header.records_count == 0 {
                    return Err(LogError::InconsistentBatch("a batch without records"));
                }
                if self.config.cleanup_policy.compact && !header.is_control {
                    require_keys(&view)?;
                }
                header.base_offset = next;
            } else if header.base_offset < next {
                return Err(LogError::UnexpectedAppendOffset {
                    first_offset: header.base_offset,
                    log_end_offset: next,
                });
            }
            next = header
                .base_offset
                .checked_add(i64::from(header.last_offset_delta) + 1)
                .ok_or(LogError::InconsistentBatch("offsets overflow"))?;
            plan.push(Planned { start: at, len, header });
            at += len;
        }
        Ok(plan)
    }

    fn write(&mut self, bytes: &[u8], plan: &[Planned], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut info = AppendInfo::covering(
            plan.first().map_or(0, |p| p.header.base_offset),
            plan.last().map_or(0, |p| p.header.last_offset()),
            false,
        );
        for p in plan {
            let h = &p.header;
            if self.should_roll(p.len as u64, h, now_ms) {
                self.roll(h.base_offset, now_ms)?;
                info.rolled = true;
            }
            let interval = self.config.index_interval_bytes;
            self.active_mut().append(&bytes[p.start..p.start + p.len], h, interval)?;
            // Batch by batch, so that after a failed write the state holds exactly what was
            // written.
            self.producers.record(h);
            self.unflushed_since_ms.get_or_insert(now_ms);
            if h.max_timestamp > info.max_timestamp {
                info.max_timestamp = h.max_timestamp;
                info.offset_of_max_timestamp = h.last_offset();
            }
            info.records += h.records_count as u64;
            info.bytes += p.len as u64;
        }
        info.flushed = self.flush_if_due(now_ms, true)?;
        Ok(info)
    }

    /// Kafka's `shouldRoll`: the batch would take the segment past `log.segment.bytes`, the
    /// segment spans `log.roll.ms`, or the batch's offsets do not fit the segment's 32-bit
    /// relative offsets.
    fn should_roll(&self, len: u64, h: &BatchHeader, now_ms: i64) -> bool {
        let seg = self.active();
        let offsets_overflow = h.last_offset() - seg.base_offset() > i64::from(i32::MAX);
        offsets_overflow
            || seg.size() > 0
                && (seg.size() + len > self.config.segment_bytes
                    || seg.time_waited_for_roll(now_ms, h.max_timestamp) > self.config.roll_ms)
    }

    fn roll(&mut self, base_offset: i64, now_ms: i64) -> Result<(), LogError> {
        if self.active().size() == 0 {
            // Only a follower's jump in offsets rolls an empty segment: replace it.
            if let Some(empty) = self.segments.pop_back() {
                empty.delete()?;
            }
        } else {
            self.active_mut().seal()?;
        }
        self.segments.push_back(Segment::create(&self.dir, base_offset, now_ms)?);
        self.dir_dirty = true;
        if self.segments.len() == 1 {
            self.log_start_offset = base_offset;
            self.epochs.truncate_from_start(base_offset)?;
        }
        Ok(())
    }

    /// Reads whole batches from the one holding `offset` on, across segments, stopping
    /// before `max_bytes` would be exceeded — but always returning at least one batch when
    /// there is one, even a larger one. Reading at the log end gives no batches.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        let log_end_offset = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        let mut out = Vec::new();
        let mut next_offset = offset;
        let first = self.segments.partition_point(|s| s.base_offset() <= offset).saturating_sub(1);
        for seg in self.segments.iter().skip(first) {
            let Some(found) = seg.find(offset)? else { continue };
            let budget = max_bytes.saturating_sub(out.len());
            let part = seg.read_into(found.pos, budget, out.is_empty(), &mut out)?;
            if let Some(last) = part.last_offset {
                next_offset = last + 1;
            }
            if !part.reached_end {
                break;
            }
        }
        Ok(ReadResult {
            records: Bytes::from(out),
            next_offset,
            log_start_offset: self.log_start_offset,
            log_end_offset,
        })
    }

    /// Kafka's offset-for-timestamp: the first record, in offset order, whose timestamp is
    /// at least `timestamp`, as `(offset, its timestamp)`; `None` if there is none. Found
    /// through the time index to the first batch whose max timestamp reaches `timestamp`,
    /// then to the record inside it (a `LogAppendTime` batch answers with its first offset).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        for seg in &self.segments {
            if seg.size() == 0 || seg.max_timestamp() < timestamp {
                continue;
            }
            if let Some(found) = seg.find_timestamp(timestamp)? {
                return Ok(Some(record_at_timestamp(seg, &found, timestamp)?));
            }
        }
        Ok(None)
    }

    /// fsyncs everything written so far (segments, indexes, the directory); afterwards
    /// [`Log::recovery_point`] is the log end offset.
    pub fn flush(&mut self) -> Result<(), LogError> {
        for seg in self.segments.iter_mut() {
            seg.flush()?;
        }
        self.sync_dir()?;
        self.recovery_point = self.log_end_offset();
        self.unflushed_since_ms = None;
        Ok(())
    }

    fn sync_dir(&mut self) -> Result<(), LogError> {
        if self.dir_dirty {
            crate::recovery::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// `log.flush.interval.messages` (on append) and `log.flush.interval.ms`.
    fn flush_if_due(&mut self, now_ms: i64, count_messages: bool) -> Result<bool, LogError> {
        let unflushed = self.log_end_offset() - self.recovery_point;
        let by_count = count_messages
            && self
                .config
                .flush_interval_messages
                .is_some_and(|n| unflushed >= n.min(i64::MAX as u64) as i64);
        let by_time = self
            .config
            .flush_interval_ms
            .zip(self.unflushed_since_ms)
            .is_some_and(|(interval, since)| now_ms.saturating_sub(since) >= interval);
        if unflushed > 0 && (by_count || by_time) {
            self.flush()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Periodic work, called from the owner's timer: fsync segments rolled since the last
    /// tick (Kafka flushes a segment once it is rolled), fsync once unflushed data is
    /// `log.flush.interval.ms` old, and delete segments by retention. Retention deletes
    /// whole segments, oldest first, never the active one: while the oldest segment's
    /// newest timestamp (its file's modification time if no record had one) is more than
    /// `log.retention.ms` before `now_ms`, and while the log exceeds `log.retention.bytes`
    /// by at least the oldest segment's size. Retention applies only when `cleanup.policy`
    /// includes `delete`. When it moved the log start, the leader-epoch cache follows
    /// (Kafka's `truncateFromStart`: the epoch holding the new first offset now starts
    /// there, older ones are dropped).
    pub fn tick(&mut self, now_ms: i64) -> Result<TickReport, LogError> {
        self.tick_with(now_ms, true)
    }

    /// [`Log::tick`], applying retention only when `retention` (the broker runs it every
    /// `log.retention.check.interval.ms`, and flushes and checkpoints more often).
    pub fn tick_with(&mut self, now_ms: i64, retention: bool) -> Result<TickReport, LogError> {
        let mut report = TickReport::default();
        let active_base = self.active().base_offset();
        if self.recovery_point < active_base {
            let last = self.segments.len() - 1;
            for seg in self.segments.iter_mut().take(last) {
                seg.flush()?;
            }
            self.sync_dir()?;
            self.recovery_point = active_base;
            report.flushed = true;
        }
        report.flushed |= self.flush_if_due(now_ms, false)?;
        if !retention {
            return Ok(report);
        }
        if !self.config.cleanup_policy.delete {
            // Kafka: retention by time and size applies only to `cleanup.policy` with
            // `delete`; a compact-only log keeps every segment and is shrunk by the cleaner.
            return Ok(report);
        }
        if let Some(retention_ms) = self.config.retention_ms {
            while self.segments.len() > 1 {
                let Some(oldest) = self.segments.front() else { break };
                if now_ms.saturating_sub(oldest.retention_timestamp()?) <= retention_ms {
                    break;
                }
                self.delete_oldest(&mut report)?;
            }
        }
        if let Some(retention_bytes) = self.config.retention_bytes {
            let mut excess = i128::from(self.size_bytes()) - i128::from(retention_bytes);
            while self.segments.len() > 1
                && self.segments.front().is_some_and(|s| excess - i128::from(s.size()) >= 0)
            {
                excess -= i128::from(self.segments.front().map_or(0, Segment::size));
                self.delete_oldest(&mut report)?;
            }
        }
        if !report.deleted_segments.is_empty() {
            // After the segments: a crash in between leaves epochs below the log start,
            // which opening drops again.
            self.epochs.truncate_from_start(self.log_start_offset)?;
        }
        Ok(report)
    }

    fn delete_oldest(&mut self, report: &mut TickReport) -> Result<(), LogError> {
        let Some(seg) = self.segments.pop_front() else { return Ok(()) };
        report.deleted_segments.push(seg.base_offset());
        report.deleted_bytes += seg.size();
        let next_base = self.segments.front().map_or(seg.next_offset(), Segment::base_offset);
        self.log_start_offset = self.log_start_offset.max(next_base);
        self.recovery_point = self.recovery_point.max(self.log_start_offset);
        self.dir_dirty = true;
        self.generation += 1;
        seg.delete()
    }

    /// Moves the log start forward to `offset` (Kafka's DeleteRecords, or a follower
    /// following its leader's): reads below it fail with `OffsetOutOfRange`, and segments
    /// wholly below it are deleted (the active segment stays, even if all of it is below).
    /// `offset` may fall inside a segment or a batch; the caller bounds it by the high
    /// watermark, and the owner of the directory keeps it in `log-start-offset-checkpoint`.
    /// Returns whether the start moved (it never moves back, nor past the log end).
    pub fn advance_log_start(&mut self, offset: i64) -> Result<bool, LogError> {
        let offset = offset.min(self.log_end_offset());
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        self.log_start_offset = offset;
        self.recovery_point = self.recovery_point.max(offset);
        while self.segments.len() > 1 && self.segments.get(1).is_some_and(|next| next.base_offset() <= offset)
        {
            let Some(seg) = self.segments.pop_front() else { break };
            self.dir_dirty = true;
            self.generation += 1;
            seg.delete()?;
        }
        self.epochs.truncate_from_start(offset)?;
        Ok(true)
    }

    /// Removes everything at and after `offset` (a follower whose log diverged from its
    /// new leader's): later segments are deleted and the segment holding `offset` is cut
    /// at the start of the batch holding it, as Kafka does — so when `offset` falls inside
    /// a batch, the log ends before it, at that batch's base offset. Truncating below the
    /// first segment empties the log and restarts it at `offset`. Nothing happens when
    /// `offset` is at or past the end.
    ///
    /// The leader-epoch cache loses the epochs starting at or past the new log end (Kafka's
    /// `truncateFromEnd`), and its file is rewritten if that changed it — after the data is
    /// cut, so a crash in between leaves only epochs past the end, which opening drops.
    ///
    /// The producer state forgets the batches cut; if a producer is left with none, the
    /// state is rebuilt from the remaining log's batch headers (see "Idempotent producers"
    /// on [`Log`]).
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.generation += 1;
        if self.segments.front().is_some_and(|s| s.base_offset() > offset) || offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset, now_ms);
        }
        while self.segments.len() > 1 && self.segments.back().is_some_and(|s| s.base_offset() > offset) {
            if let Some(seg) = self.segments.pop_back() {
                seg.delete()?;
                self.dir_dirty = true;
            }
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut().truncate_to(offset, interval)?;
        let end = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(end);
        if self.recovery_point == end {
            self.unflushed_since_ms = None;
        }
        if self.producers.truncate_from_end(end) {
            let mut producers = ProducerStateManager::new();
            for_each_header(&self.segments, |h| producers.record(h))?;
            self.producers = producers;
        }
        self.epochs.truncate_from_end(end)?;
        Ok(())
    }

    /// Deletes every segment and starts the log again, empty, at `offset` (a follower
    /// whose leader no longer holds what it has). The leader-epoch cache is emptied and its
    /// file rewritten, and every idempotent producer is forgotten.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        self.generation += 1;
        while let Some(seg) = self.segments.pop_back() {
            seg.delete()?;
        }
        self.segments.push_back(Segment::create(&self.dir, offset, now_ms)?);
        self.dir_dirty = true;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.unflushed_since_ms = None;
        self.producers.clear();
        self.epochs.clear()?;
        Ok(())
    }

    /// Flushes everything and closes the log.
    pub fn close(mut self) -> Result<(), LogError> {
        self.flush()
    }
}

/// The topic and partition a directory's name says.
fn topic_partition(dir: &Path) -> Result<TopicPartition, LogError> {
    dir.file_name()
        .and_then(|n| n.to_str())
        .and_then(TopicPartition::from_dir_name)
        .ok_or_else(|| LogError::BadDirName(dir.to_path_buf()))
}

/// Calls `f` with the header of every batch of `segments`, oldest first, reading headers
/// only (see [`Segment::for_each_header`]).
fn for_each_header(segments: &VecDeque<Segment>, mut f: impl FnMut(&BatchHeader)) -> Result<(), LogError> {
    for seg in segments {
        seg.for_each_header(&mut f)?;
    }
    Ok(())
}

/// The leader-epoch cache of a log being opened: its `leader-epoch-checkpoint`, or, if the
/// file is missing or malformed, `starts`, the epochs the batches carry (read from the
/// headers by the caller, oldest first, an entry wherever the epoch grows; a negative
/// epoch — Kafka's `NO_PARTITION_LEADER_EPOCH` — counts as none), written to a new file.
/// Returns the reason for a rebuild, for the [`RecoveryReport`]; a missing file in a log
/// without batches (a new one) is no reason. A file that cannot be read at all is an error.
fn load_epochs(
    dir: &Path,
    segments: &VecDeque<Segment>,
    starts: Vec<EpochEntry>,
) -> Result<(LeaderEpochCache, Option<String>), LogError> {
    let reason = match LeaderEpochCache::read(dir) {
        Ok(Some(cache)) => return Ok((cache, None)),
        Ok(None) if segments.iter().all(|s| s.size() == 0) => None,
        Ok(None) => Some(format!("{} is missing", dir.join(LEADER_EPOCH_CHECKPOINT).display())),
        Err(e @ CheckpointError::Malformed { .. }) => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    if let Some(reason) = &reason {
        tracing::warn!(
            dir = %dir.display(), %reason, epochs = starts.len(),
            "rebuilt the leader-epoch cache from the batch headers"
        );
    }
    Ok((LeaderEpochCache::rebuilt(dir, starts)?, reason))
}

/// Kafka's rule for compacted topics: every record of an appended (non-control) batch has
/// a key, since the cleaner keeps records by key.
fn require_keys(view: &BatchView<'_>) -> Result<(), LogError> {
    let records = view.records(crate::batch::MAX_RECOMPRESS_BYTES)?;
    match records.iter().find(|r| r.key.is_none()) {
        Some(r) => Err(LogError::KeyRequired { offset_delta: r.offset_delta }),
        None => Ok(()),
    }
}

/// The first record of the batch `found` with a timestamp of at least `timestamp`.
fn record_at_timestamp(seg: &Segment, found: &Scanned, timestamp: i64) -> Result<(i64, i64), LogError> {
    let h = &found.header;
    let batch_level = (h.base_offset, h.max_timestamp);
    if h.timestamp_type == TimestampType::LogAppendTime {
        return Ok(batch_level);
    }
    let bytes = seg.batch_bytes(found)?;
    let corrupt = |e: BatchError| LogError::Corrupt {
        path: seg.log_path().to_path_buf(),
        position: found.pos,
        reason: e.to_string(),
    };
    let view = BatchView::parse(&bytes).map_err(corrupt)?;
    let records = match view.records(TIMESTAMP_LOOKUP_LIMIT) {
        Ok(records) => records,
        Err(BatchError::Compression(CompressionError::TooLarge { .. })) => return Ok(batch_level),
        Err(e) => return Err(corrupt(e)),
    };
    Ok(records
        .iter()
        .map(|r| {
            (h.base_offset + i64::from(r.offset_delta), h.base_timestamp.saturating_add(r.timestamp_delta))
        })
        .find(|(_, t)| *t >= timestamp)
        .unwrap_or(batch_level))
}
