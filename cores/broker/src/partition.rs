//! A partition leader's rules, as pure functions: the high watermark, produce admission
//! (`min.insync.replicas`), what a consumer may read (below the high watermark), the range a
//! follower may fetch, `ListOffsets`' special timestamps, and `acks=all` completion. The
//! `Partition` actor (`actors/src/broker/partition.rs`) asks these and does the IO.

use crate::BrokerError;

/// The high watermark: the smallest log end offset over the in-sync replicas — the leader's
/// `leader_leo` and each in-sync follower's. With no in-sync follower it is the leader's log
/// end offset. A follower's unknown offset (-1) gives -1: callers keep the high watermark
/// they had when the result is below it ([`crate::replica::ReplicaSet`] does).
pub fn high_watermark(leader_leo: i64, isr_follower_leos: impl IntoIterator<Item = i64>) -> i64 {
    isr_follower_leos.into_iter().fold(leader_leo, i64::min)
}

/// Produce admission for `acks=all` (Kafka's `NotEnoughReplicas`): with `min_insync` set
/// (the produce wants every in-sync replica), the ISR must have at least that many members
/// before anything is appended. `acks=0/1` produces (`None`) are always admitted.
pub fn admit_produce(
    (topic, partition): (&str, i32),
    isr: usize,
    min_insync: Option<usize>,
) -> Result<(), BrokerError> {
    match min_insync {
        Some(min) if isr < min => {
            Err(BrokerError::NotEnoughReplicas { topic: topic.into(), partition, isr, min })
        }
        _ => Ok(()),
    }
}

/// Where a partition's log stands, as the read rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRange {
    /// First offset held.
    pub log_start_offset: i64,
    /// Consumers read below it.
    pub high_watermark: i64,
    /// Next offset to be written.
    pub log_end_offset: i64,
}

/// What a consumer's read at `offset` gets, before the log is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerRead {
    /// Nothing yet, and no error: the offset is the high watermark, or above it but written
    /// (not every in-sync replica has it yet).
    Nothing,
    /// Read from the log, handing out only whole batches below the high watermark; an
    /// offset outside the log is the log's `OffsetOutOfRange`.
    FromLog,
}

/// A consumer sees only what every in-sync replica has (Kafka's high watermark rule).
pub fn consumer_read(offset: i64, at: LogRange) -> ConsumerRead {
    let at_hw = offset == at.high_watermark && offset >= at.log_start_offset;
    let uncommitted = offset > at.high_watermark && offset <= at.log_end_offset;
    if at_hw || uncommitted {
        ConsumerRead::Nothing
    } else {
        ConsumerRead::FromLog
    }
}

/// A follower fetches from its log end offset, which must lie in the leader's log: above it
/// the follower has records the leader does not (it must truncate first), below the log
/// start it must start over from the log start. `Ok(true)`: the follower is at the leader's
/// log end (nothing to send).
pub fn follower_fetch_range(
    (topic, partition): (&str, i32),
    offset: i64,
    (log_start_offset, log_end_offset): (i64, i64),
) -> Result<bool, BrokerError> {
    if offset > log_end_offset || offset < log_start_offset {
        return Err(BrokerError::OffsetOutOfRange {
            topic: topic.into(),
            partition,
            offset,
            log_start_offset,
            log_end_offset,
        });
    }
    Ok(offset == log_end_offset)
}

/// `ListOffsets` timestamp meaning "the latest offset" (Kafka's -1).
pub const LATEST_TIMESTAMP: i64 = -1;
/// `ListOffsets` timestamp meaning "the log start offset" (Kafka's -2).
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// What a `ListOffsets` lookup needs from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOffsetsLookup {
    /// Answered from the offsets alone: `(offset, timestamp -1)`.
    Answer(i64),
    /// The first offset whose record timestamp is at least this; then [`list_offsets_found`].
    ByTime(i64),
}

/// `ListOffsets` for `timestamp`: -1 (Kafka's `LATEST`) is the high watermark, the end a
/// consumer can read to; -2 (`EARLIEST`) the log start; anything else a lookup by time.
pub fn list_offsets(timestamp: i64, at: LogRange) -> ListOffsetsLookup {
    match timestamp {
        LATEST_TIMESTAMP => ListOffsetsLookup::Answer(at.high_watermark),
        EARLIEST_TIMESTAMP => ListOffsetsLookup::Answer(at.log_start_offset),
        t => ListOffsetsLookup::ByTime(t),
    }
}

/// The answer to a lookup by time: the record found, if a consumer may read it (below the
/// high watermark); else the high watermark with timestamp -1.
pub fn list_offsets_found(found: Option<(i64, i64)>, at: LogRange) -> (i64, i64) {
    match found {
        Some((offset, ts)) if offset < at.high_watermark => (offset, ts),
        _ => (at.high_watermark, -1),
    }
}

/// `DeleteRecords`' offset meaning "up to the high watermark" (Kafka's -1).
pub const DELETE_TO_HIGH_WATERMARK: i64 = -1;

/// Kafka's DeleteRecords on the leader: where the log start moves for a request to delete
/// the records below `requested` (-1: below the high watermark). Only records every in-sync
/// replica has can go, so an offset above the high watermark (or negative) is out of range;
/// a log that is only compacted (`cleanup.policy=compact`) keeps its records (Kafka's
/// POLICY_VIOLATION). The answer is never below the current log start.
pub fn delete_records_before(
    (topic, partition): (&str, i32),
    requested: i64,
    at: LogRange,
    deletes: bool,
) -> Result<i64, BrokerError> {
    if !deletes {
        return Err(BrokerError::PolicyViolation {
            topic: topic.into(),
            partition,
            reason:
                "records of a compacted topic cannot be deleted (cleanup.policy=compact); add delete to its \
                     cleanup.policy first"
                    .into(),
        });
    }
    let offset = if requested == DELETE_TO_HIGH_WATERMARK { at.high_watermark } else { requested };
    if offset < 0 || offset > at.high_watermark {
        return Err(BrokerError::OffsetOutOfRange {
            topic: topic.into(),
            partition,
            offset: requested,
            log_start_offset: at.log_start_offset,
            log_end_offset: at.high_watermark,
        });
    }
    Ok(offset.max(at.log_start_offset))
}

/// Whether the log manager's tick now should apply retention: every
/// `log.retention.check.interval.ms` (`interval_ms`), as written, while it ticks for flushes
/// and checkpoints every `tick_ms` (at most 60 s). `since_last_ms` is the time since
/// retention last ran (`None`: never yet). Half a tick of slack keeps a timer that fires a
/// little early from skipping a whole round.
pub fn retention_due(since_last_ms: Option<u64>, interval_ms: u64, tick_ms: u64) -> bool {
    since_last_ms.is_none_or(|since| since.saturating_add(tick_ms / 2) >= interval_ms)
}

/// A follower's high watermark after appending what its leader sent: the leader's, but never
/// past the follower's own log end (`leo`) and never back from where it was.
pub fn follower_high_watermark(current: i64, leader_high_watermark: i64, leo: i64) -> i64 {
    current.max(leader_high_watermark.min(leo))
}

/// Where a follower's log start goes after a fetch (Kafka's follower, after DeleteRecords on
/// the leader): the leader's log start, but never past what the follower knows to be
/// committed (its high watermark). The log never moves its start back, so a lower answer
/// changes nothing.
pub fn follower_log_start(leader_log_start_offset: i64, follower_high_watermark: i64) -> i64 {
    leader_log_start_offset.min(follower_high_watermark)
}

/// Where an `acks=all` produce stands (Kafka's `DelayedProduce` completion check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcksAll {
    /// Not every in-sync replica has the records yet: wait for the next change.
    Waiting,
    /// Every in-sync replica has them, and the ISR was at least `min.insync.replicas`.
    Done,
    /// The produce fails with this error.
    Failed(BrokerError),
}

/// Whether an `acks=all` produce whose records end below `end_offset` is complete, given
/// the partition's state now: the term of this broker's leadership (`leading`: the leader
/// epoch its unbroken run as leader began at; `None`: no longer leading), the high
/// watermark and the ISR's size. `appended_at` is the term it led in when the records were
/// appended: a leader that lost its leadership since (even if it regained it) cannot vouch
/// for them, so the answer is `NotLeaderForPartition`, and the producer retries with the new
/// leader. An epoch bump that kept the leader (the controller dropping a dead follower from
/// the ISR) keeps the term, and the produce goes on waiting: Kafka's `DelayedProduce` fails
/// only once the broker stops leading. Answering `NotLeaderForPartition` for records still in
/// the leader's log tells the producer they were not written (librdkafka marks them "not
/// persisted"), and a later epoch bump of an idempotent producer then writes them again. Once the high watermark covers the records, an ISR smaller than
/// `min_insync` fails them with `NotEnoughReplicasAfterAppend` (they were written, but not
/// to as many replicas as the topic demands).
pub fn acks_all(
    (topic, partition, broker): (&str, i32, i32),
    appended_at: Option<i32>,
    leading: Option<i32>,
    (high_watermark, isr): (i64, usize),
    end_offset: i64,
    min_insync: usize,
) -> AcksAll {
    if leading.is_none() || leading != appended_at {
        return AcksAll::Failed(BrokerError::NotLeaderForPartition {
            topic: topic.into(),
            partition,
            broker,
            leader: None,
        });
    }
    if high_watermark < end_offset {
        return AcksAll::Waiting;
    }
    if isr < min_insync {
        return AcksAll::Failed(BrokerError::NotEnoughReplicasAfterAppend {
            topic: topic.into(),
            partition,
            isr,
            min: min_insync,
        });
    }
    AcksAll::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_the_slowest_in_sync_replica() {
        assert_eq!(high_watermark(10, []), 10);
        assert_eq!(high_watermark(10, [7, 12]), 7);
        assert_eq!(high_watermark(3, [7]), 3);
    }

    #[test]
    fn acks_all_completes_when_the_high_watermark_covers_the_records_and_the_isr_is_big_enough() {
        let at = ("t", 0, 1);
        assert_eq!(acks_all(at, Some(3), Some(3), (9, 3), 10, 2), AcksAll::Waiting);
        assert_eq!(acks_all(at, Some(3), Some(3), (10, 3), 10, 2), AcksAll::Done);
        assert_eq!(acks_all(at, Some(3), Some(3), (12, 2), 10, 2), AcksAll::Done);
        // Replicated, but the ISR shrank below min.insync.replicas meanwhile.
        assert!(matches!(
            acks_all(at, Some(3), Some(3), (10, 1), 10, 2),
            AcksAll::Failed(BrokerError::NotEnoughReplicasAfterAppend { isr: 1, min: 2, .. })
        ));
        // Below the high watermark nothing is decided by the ISR's size yet.
        assert_eq!(acks_all(at, Some(3), Some(3), (9, 1), 10, 2), AcksAll::Waiting);
    }

    #[test]
    fn acks_all_fails_once_the_leader_that_appended_no_longer_leads_at_that_epoch() {
        let at = ("t", 0, 1);
        let not_leader = |r| matches!(r, AcksAll::Failed(BrokerError::NotLeaderForPartition { .. }));
        assert!(not_leader(acks_all(at, Some(3), None, (10, 3), 10, 1)));
        // Leading again at a later epoch does not vouch for what was appended at the old one.
        assert!(not_leader(acks_all(at, Some(3), Some(4), (10, 3), 10, 1)));
        assert!(not_leader(acks_all(at, None, None, (10, 3), 10, 1)));
    }

    const AT: LogRange = LogRange { log_start_offset: 10, high_watermark: 20, log_end_offset: 25 };

    #[test]
    fn an_acks_all_produce_needs_min_insync_replicas_and_others_do_not() {
        let tp = ("t", 0);
        assert_eq!(admit_produce(tp, 1, None), Ok(()));
        assert_eq!(admit_produce(tp, 2, Some(2)), Ok(()));
        assert!(matches!(
            admit_produce(tp, 1, Some(2)),
            Err(BrokerError::NotEnoughReplicas { isr: 1, min: 2, .. })
        ));
    }

    #[test]
    fn delete_records_moves_the_start_up_to_the_high_watermark_and_never_back() {
        let tp = ("t", 0);
        assert_eq!(delete_records_before(tp, 15, AT, true), Ok(15));
        assert_eq!(delete_records_before(tp, DELETE_TO_HIGH_WATERMARK, AT, true), Ok(20));
        assert_eq!(delete_records_before(tp, 20, AT, true), Ok(20));
        // Below the start: already gone, the start stays.
        assert_eq!(delete_records_before(tp, 3, AT, true), Ok(10));
        // Past the high watermark (not on every in-sync replica yet), or negative: out of range.
        for bad in [21, 25, -2] {
            assert!(matches!(
                delete_records_before(tp, bad, AT, true),
                Err(BrokerError::OffsetOutOfRange { offset, .. }) if offset == bad
            ));
        }
        assert!(matches!(delete_records_before(tp, 15, AT, false), Err(BrokerError::PolicyViolation { .. })));
    }

    #[test]
    fn a_consumer_reads_only_below_the_high_watermark() {
        assert_eq!(consumer_read(12, AT), ConsumerRead::FromLog);
        // At the high watermark, or written but not on every in-sync replica yet: nothing.
        assert_eq!(consumer_read(20, AT), ConsumerRead::Nothing);
        assert_eq!(consumer_read(23, AT), ConsumerRead::Nothing);
        assert_eq!(consumer_read(25, AT), ConsumerRead::Nothing);
        // Outside the log: the log's own OffsetOutOfRange.
        assert_eq!(consumer_read(26, AT), ConsumerRead::FromLog);
        assert_eq!(consumer_read(3, AT), ConsumerRead::FromLog);
        // An empty, truncated-from-the-start log: the high watermark below the log start.
        let empty = LogRange { log_start_offset: 5, high_watermark: 4, log_end_offset: 5 };
        assert_eq!(consumer_read(4, empty), ConsumerRead::FromLog);
    }

    #[test]
    fn a_follower_fetches_from_inside_the_leaders_log() {
        let tp = ("t", 0);
        assert_eq!(follower_fetch_range(tp, 22, (10, 25)), Ok(false));
        assert_eq!(follower_fetch_range(tp, 25, (10, 25)), Ok(true));
        for outside in [9, 26] {
            assert!(matches!(
                follower_fetch_range(tp, outside, (10, 25)),
                Err(BrokerError::OffsetOutOfRange { log_start_offset: 10, log_end_offset: 25, .. })
            ));
        }
    }

    #[test]
    fn list_offsets_knows_latest_earliest_and_hides_what_consumers_cannot_read() {
        assert_eq!(list_offsets(LATEST_TIMESTAMP, AT), ListOffsetsLookup::Answer(20));
        assert_eq!(list_offsets(EARLIEST_TIMESTAMP, AT), ListOffsetsLookup::Answer(10));
        assert_eq!(list_offsets(1_700_000_000_000, AT), ListOffsetsLookup::ByTime(1_700_000_000_000));
        assert_eq!(list_offsets_found(Some((15, 99)), AT), (15, 99));
        // Found above the high watermark, or not at all: the high watermark, timestamp -1.
        assert_eq!(list_offsets_found(Some((21, 99)), AT), (20, -1));
        assert_eq!(list_offsets_found(None, AT), (20, -1));
    }

    #[test]
    fn a_follower_follows_its_leaders_marks_no_further_than_it_has() {
        // The leader's high watermark, held to what the follower has.
        assert_eq!(follower_high_watermark(5, 10, 8), 8);
        assert_eq!(follower_high_watermark(5, 7, 8), 7);
        // Never back (a leader that restarted behind, or a stale answer).
        assert_eq!(follower_high_watermark(9, 7, 12), 9);
        // The log start follows the leader's deletes up to the follower's high watermark.
        assert_eq!(follower_log_start(50, 40), 40);
        assert_eq!(follower_log_start(30, 40), 30);
    }

    #[test]
    fn retention_runs_at_its_own_interval_not_at_every_tick() {
        // A 5-minute retention check with the 60 s tick: the first tick, then every fifth.
        assert!(retention_due(None, 300_000, 60_000));
        assert!(!retention_due(Some(60_000), 300_000, 60_000));
        assert!(!retention_due(Some(240_000), 300_000, 60_000));
        assert!(retention_due(Some(299_990), 300_000, 60_000), "a tick a little early still counts");
        // A 500 ms check ticks at 500 ms: every tick.
        assert!(retention_due(Some(490), 500, 500));
    }
}
