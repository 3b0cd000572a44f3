//! [`ProducerStateManager`]: what the log knows of each idempotent producer — its epoch and
//! the sequence numbers and offsets of its last [`NUM_BATCHES_TO_RETAIN`] batches — so that
//! a leader can tell a resent batch from a new one (Kafka's `ProducerStateManager` /
//! `ProducerStateEntry`, without the transaction part).
//!
//! A producer with idempotence on (Kafka's `enable.idempotence`) stamps every batch with
//! its `producerId`, `producerEpoch` and `baseSequence`, the sequence number of the batch's
//! first record; the batch's records take consecutive sequences, so its last sequence is
//! `baseSequence + lastOffsetDelta`, wrapping past `i32::MAX` to 0 as Kafka's
//! `DefaultRecordBatch.incrementSequence` does ([`last_sequence`]). When the answer to a
//! produce request is lost the producer sends the batch again, with the same sequences; the
//! leader answers with the offsets the first copy got instead of writing it twice.
//!
//! The rules a leader applies ([`ProducerStateManager::check_append`], Kafka's
//! `ProducerAppendInfo` for a client's append):
//! - same epoch and the same first and last sequence as one of the retained batches: a
//!   *duplicate*, not written again;
//! - an epoch older than the producer's: [`LogError::InvalidProducerEpoch`] (a fenced
//!   "zombie" producer);
//! - a newer epoch: the producer starts its sequences again, so the first sequence must be
//!   0, else [`LogError::OutOfOrderSequence`];
//! - the same epoch: the first sequence must follow the last retained one (`last + 1`, or 0
//!   after `i32::MAX`), else [`LogError::OutOfOrderSequence`]. A resend of a batch older
//!   than the retained ones lands here too: it cannot be told from a gap, and Kafka answers
//!   it the same way (the producer allows at most 5 batches in flight, so it never resends
//!   one that old);
//! - a producer id the log does not know: any sequence is accepted (its state may have gone
//!   with retention; Kafka accepts too since KIP-360).
//!
//! Batches without a producer id (-1) and control batches (transaction markers; the log
//! keeps no transaction state) are neither checked nor recorded.
//!
//! The state is in memory only: [`crate::Log`] rebuilds it from the batch headers when it
//! opens, and keeps it in step with appends, replication and truncation.

use std::collections::{HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::error::LogError;

/// How many of a producer's latest batches are retained for duplicate detection: Kafka's
/// `NUM_BATCHES_TO_RETAIN`, the most batches an idempotent producer keeps in flight
/// (`max.in.flight.requests.per.connection` ≤ 5).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

/// `producerId` of a batch from a producer without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;

/// The sequence after `sequence`: `sequence + 1`, or 0 after `i32::MAX` (Kafka's
/// sequences wrap to 0, never to negative numbers).
pub fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

/// The sequence of a batch's last record: `base_sequence + last_offset_delta`, wrapping
/// past `i32::MAX` to 0 (Kafka's `DefaultRecordBatch.incrementSequence`). Both arguments
/// are expected to be non-negative.
pub fn last_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    let room = i32::MAX - base_sequence;
    if last_offset_delta > room {
        last_offset_delta - room - 1
    } else {
        base_sequence + last_offset_delta
    }
}

/// One batch of a producer, as retained: its sequences and its offsets in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchMetadata {
    /// Sequence of the batch's first record (`baseSequence`).
    pub first_seq: i32,
    /// Sequence of its last record.
    pub last_seq: i32,
    /// Offset of its first record (its base offset).
    pub first_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
}

impl BatchMetadata {
    /// The metadata of the batch with `header` (offsets as the header has them).
    pub fn of(header: &BatchHeader) -> Self {
        BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header.base_sequence, header.last_offset_delta),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        }
    }
}

/// What the log knows of one producer: its latest epoch and its last batches under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer epoch of the retained batches (the latest the log saw).
    pub epoch: i16,
    /// The last batches written under `epoch`, oldest first, at most
    /// [`NUM_BATCHES_TO_RETAIN`]; never empty while the entry is in a
    /// [`ProducerStateManager`].
    pub batches: VecDeque<BatchMetadata>,
}

impl ProducerEntry {
    /// An entry at `epoch` without batches.
    fn new(epoch: i16) -> Self {
        ProducerEntry { epoch, batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN) }
    }

    /// The last sequence written (that of the latest retained batch).
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    /// The last offset written (that of the latest retained batch).
    pub fn last_offset(&self) -> Option<i64> {
        self.batches.back().map(|b| b.last_offset)
    }

    /// The retained batch a batch of `epoch` with sequences `first_seq..=last_seq` repeats,
    /// if any (Kafka's `findDuplicateBatch`: same epoch, same first and last sequence).
    pub fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq).copied()
    }

    /// Records a batch of `epoch`: a different epoch drops the retained batches first
    /// (Kafka's `addBatch`), and the oldest one goes once [`NUM_BATCHES_TO_RETAIN`] are kept.
    fn add(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
        if self.batches.len() >= NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }
}

/// What the leader does with an append ([`ProducerStateManager::check_append`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendCheck {
    /// Write the batches.
    Write,
    /// Every batch was written before: write nothing and answer with the offsets the
    /// first copies got — from the first offset of the first to the last offset of the
    /// last.
    Duplicate {
        /// First offset of the first batch's original.
        first_offset: i64,
        /// Last offset of the last batch's original.
        last_offset: i64,
    },
}

/// Whether a batch's producer fields are tracked: it has a producer id and is not a
/// control batch.
fn tracked(header: &BatchHeader) -> bool {
    header.producer_id >= 0 && !header.is_control
}

/// The idempotent producers of one partition log: producer id → [`ProducerEntry`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    /// No producer known.
    pub fn new() -> Self {
        ProducerStateManager::default()
    }

    /// What is known of `producer_id`.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// How many producers are known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Each known producer's id and the last offset it wrote (that of its latest retained
    /// batch).
    pub fn last_offsets(&self) -> HashMap<i64, i64> {
        self.producers.iter().filter_map(|(&id, e)| Some((id, e.last_offset()?))).collect()
    }

    /// Checks a leader's append of batches with `headers` (offsets assigned, in order)
    /// against the state, as the rules in the module docs say, without changing it: each
    /// batch is checked against the state as the batches before it in the same append
    /// would leave it. Only checks: [`ProducerStateManager::record`] each batch once it is
    /// written.
    ///
    /// An append of duplicates only is [`AppendCheck::Duplicate`]; one mixing duplicates
    /// with batches to write is [`LogError::DuplicateInMixedAppend`] (Kafka's producer
    /// sends one batch per partition per request, so this never happens with it). A
    /// tracked batch without a base sequence (negative) is
    /// [`LogError::InconsistentBatch`], as Kafka's `LogValidator` refuses it.
    pub fn check_append<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a BatchHeader>,
    ) -> Result<AppendCheck, LogError> {
        // The entries the append changed so far; the others are read from `self`.
        let mut staged: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut duplicates: Vec<(i64, BatchMetadata)> = Vec::new();
        let mut new_batches = 0usize;
        for h in headers {
            if !tracked(h) {
                new_batches += 1;
                continue;
            }
            if h.base_sequence < 0 {
                return Err(LogError::InconsistentBatch("a batch with a producer id but no base sequence"));
            }
            let id = h.producer_id;
            let current = staged.get(&id).or_else(|| self.producers.get(&id));
            let batch = BatchMetadata::of(h);
            if let Some(original) = check(id, current, h.producer_epoch, batch)? {
                duplicates.push((id, original));
                continue;
            }
            new_batches += 1;
            let entry = match staged.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(
                    self.producers.get(&id).cloned().unwrap_or_else(|| ProducerEntry::new(h.producer_epoch)),
                ),
            };
            entry.add(h.producer_epoch, batch);
        }
        match (duplicates.first(), duplicates.last()) {
            (Some(&(producer_id, first)), Some(&(_, last))) => {
                if new_batches > 0 {
                    return Err(LogError::DuplicateInMixedAppend {
                        producer_id,
                        first_seq: first.first_seq,
                        last_seq: first.last_seq,
                    });
                }
                Ok(AppendCheck::Duplicate { first_offset: first.first_offset, last_offset: last.last_offset })
            }
            _ => Ok(AppendCheck::Write),
        }
    }

    /// Records a written batch (with its final offsets): a leader's after the write, a
    /// follower's as it is replicated (unchecked: the leader checked it), and every batch
    /// of the log when it is opened. A batch of another epoch than the producer's drops its
    /// retained batches first. Batches without a producer id, control batches and batches
    /// without a base sequence change nothing.
    pub fn record(&mut self, header: &BatchHeader) {
        if !tracked(header) || header.base_sequence < 0 {
            return;
        }
        self.producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::new(header.producer_epoch))
            .add(header.producer_epoch, BatchMetadata::of(header));
    }

    /// Forgets the retained batches at or past `end_offset` (the log was cut there).
    /// Returns whether a producer lost all its retained batches: its entry is removed, and
    /// only a scan of the remaining log can tell whether it has older batches (under the
    /// same or an older epoch) that should take their place — the caller then rebuilds.
    /// A producer that kept some batches is exact: they are its latest in the log.
    #[must_use = "a producer that lost every retained batch needs a rebuild"]
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let mut emptied = false;
        self.producers.retain(|_, entry| {
            while entry.batches.back().is_some_and(|b| b.last_offset >= end_offset) {
                entry.batches.pop_back();
            }
            emptied |= entry.batches.is_empty();
            !entry.batches.is_empty()
        });
        emptied
    }

    /// Forgets every producer.
    pub fn clear(&mut self) {
        self.producers.clear();
    }
}

/// One tracked batch (`batch`, of `epoch`) against what is known of its producer: the
/// original if it is a duplicate, `None` if it is new and in order.
fn check(
    producer_id: i64,
    current: Option<&ProducerEntry>,
    epoch: i16,
    batch: BatchMetadata,
) -> Result<Option<BatchMetadata>, LogError> {
    let Some(entry) = current else { return Ok(None) };
    if let Some(original) = entry.find_duplicate(epoch, batch.first_seq, batch.last_seq) {
        return Ok(Some(original));
    }
    if epoch < entry.epoch {
        return Err(LogError::InvalidProducerEpoch { producer_id, epoch, current: entry.epoch });
    }
    let expected = match entry.last_seq() {
        Some(last) if epoch == entry.epoch => next_sequence(last),
        _ => 0,
    };
    if batch.first_seq != expected {
        return Err(LogError::OutOfOrderSequence { producer_id, expected, got: batch.first_seq });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::Compression;

    /// The header of a batch of `records` records from producer `id` at `epoch`, first
    /// sequence `seq`, at offset `base`.
    fn header(id: i64, epoch: i16, seq: i32, records: i32, base: i64) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            producer_id: id,
            producer_epoch: epoch,
            base_sequence: seq,
            last_offset_delta: records - 1,
            records_count: records,
            ..BatchHeader::new(Compression::None, 0, 0)
        }
    }

    fn meta(first_seq: i32, last_seq: i32, first_offset: i64, last_offset: i64) -> BatchMetadata {
        BatchMetadata { first_seq, last_seq, first_offset, last_offset }
    }

    #[test]
    fn sequences_wrap_past_i32_max_to_zero() {
        assert_eq!(last_sequence(0, 0), 0);
        assert_eq!(last_sequence(10, 4), 14);
        assert_eq!(last_sequence(i32::MAX - 2, 2), i32::MAX);
        assert_eq!(last_sequence(i32::MAX - 2, 3), 0);
        assert_eq!(last_sequence(i32::MAX - 2, 5), 2);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, i32::MAX), i32::MAX - 1);
        assert_eq!(next_sequence(i32::MAX), 0);
        assert_eq!(next_sequence(41), 42);
    }

    #[test]
    fn the_last_five_batches_of_the_latest_epoch_are_retained() {
        let mut state = ProducerStateManager::new();
        for i in 0..7 {
            state.record(&header(9, 0, i * 3, 3, i64::from(i) * 3));
        }
        let entry = state.entry(9).expect("known");
        assert_eq!(entry.epoch, 0);
        let firsts: Vec<i32> = entry.batches.iter().map(|b| b.first_seq).collect();
        assert_eq!(firsts, [6, 9, 12, 15, 18]);
        assert_eq!(entry.batches.back().copied(), Some(meta(18, 20, 18, 20)));
        assert_eq!((entry.last_seq(), entry.last_offset()), (Some(20), Some(20)));

        // A new epoch drops them.
        state.record(&header(9, 1, 0, 2, 21));
        let entry = state.entry(9).expect("known");
        assert_eq!((entry.epoch, entry.batches.len()), (1, 1));
        assert_eq!(state.last_offsets(), HashMap::from([(9, 22)]));

        // Non-idempotent, control and sequence-less batches are not recorded.
        state.record(&header(-1, -1, -1, 1, 23));
        state.record(&BatchHeader { is_control: true, ..header(5, 0, 0, 1, 24) });
        state.record(&header(6, 0, -1, 1, 25));
        assert_eq!(state.len(), 1);
    }

    #[test]
    fn kafkas_rules_for_a_leaders_append() {
        let mut state = ProducerStateManager::new();
        for (i, seq) in [0, 5, 10].into_iter().enumerate() {
            state.record(&header(1, 3, seq, 5, i as i64 * 5));
        }
        let one = |h: BatchHeader| state.check_append([&h]);
        // Duplicates answer with the original offsets.
        assert_eq!(
            one(header(1, 3, 10, 5, 99)).ok(),
            Some(AppendCheck::Duplicate { first_offset: 10, last_offset: 14 })
        );
        assert_eq!(
            one(header(1, 3, 0, 5, 99)).ok(),
            Some(AppendCheck::Duplicate { first_offset: 0, last_offset: 4 })
        );
        // The next one is written; a gap, an overlap or a different length is out of order.
        assert_eq!(one(header(1, 3, 15, 2, 15)).ok(), Some(AppendCheck::Write));
        for (seq, records) in [(16, 1), (14, 1), (10, 4)] {
            match one(header(1, 3, seq, records, 15)) {
                Err(LogError::OutOfOrderSequence { producer_id: 1, expected: 15, got }) => {
                    assert_eq!(got, seq)
                }
                other => panic!("seq {seq}: expected OutOfOrderSequence, got {other:?}"),
            }
        }
        // Older epoch: fenced, even with a sequence that would be a duplicate.
        assert!(matches!(
            one(header(1, 2, 10, 5, 15)),
            Err(LogError::InvalidProducerEpoch { producer_id: 1, epoch: 2, current: 3 })
        ));
        // Newer epoch: from 0 only.
        assert_eq!(one(header(1, 4, 0, 1, 15)).ok(), Some(AppendCheck::Write));
        assert!(matches!(
            one(header(1, 4, 15, 1, 15)),
            Err(LogError::OutOfOrderSequence { producer_id: 1, expected: 0, got: 15 })
        ));
        // Unknown producers and producers without idempotence: anything goes.
        assert_eq!(one(header(2, 0, 77, 1, 15)).ok(), Some(AppendCheck::Write));
        assert_eq!(one(header(-1, -1, -1, 1, 15)).ok(), Some(AppendCheck::Write));
        assert!(matches!(one(header(2, 0, -1, 1, 15)), Err(LogError::InconsistentBatch(_))));
    }

    #[test]
    fn batches_of_one_append_are_checked_in_order_and_duplicates_do_not_mix() {
        let mut state = ProducerStateManager::new();
        state.record(&header(1, 0, 0, 2, 0));
        state.record(&header(1, 0, 2, 2, 2));
        // Two new batches in a row: the second follows the first.
        let (a, b) = (header(1, 0, 4, 2, 4), header(1, 0, 6, 1, 6));
        assert_eq!(state.check_append([&a, &b]).ok(), Some(AppendCheck::Write));
        let skipped = header(1, 0, 7, 1, 6);
        assert!(matches!(
            state.check_append([&a, &skipped]),
            Err(LogError::OutOfOrderSequence { expected: 6, got: 7, .. })
        ));
        // An epoch bump then its next batch.
        let (c, d) = (header(1, 1, 0, 3, 4), header(1, 1, 3, 1, 7));
        assert_eq!(state.check_append([&c, &d]).ok(), Some(AppendCheck::Write));
        // Both resent: a duplicate spanning both originals.
        let (r0, r1) = (header(1, 0, 0, 2, 50), header(1, 0, 2, 2, 52));
        assert_eq!(
            state.check_append([&r0, &r1]).ok(),
            Some(AppendCheck::Duplicate { first_offset: 0, last_offset: 3 })
        );
        // A resend with a new batch, in either order.
        for pair in [[&r1, &a], [&a, &r1]] {
            assert!(matches!(
                state.check_append(pair),
                Err(LogError::DuplicateInMixedAppend { producer_id: 1, first_seq: 2, last_seq: 3 })
            ));
        }
        let plain = header(-1, -1, -1, 1, 4);
        assert!(matches!(state.check_append([&r1, &plain]), Err(LogError::DuplicateInMixedAppend { .. })));
        assert_eq!(state.entry(1).map(|e| e.batches.len()), Some(2), "checks change nothing");
    }

    #[test]
    fn truncation_forgets_the_batches_it_cuts_and_asks_for_a_rebuild_when_one_empties() {
        let mut state = ProducerStateManager::new();
        state.record(&header(1, 0, 0, 2, 0));
        state.record(&header(2, 0, 0, 2, 2));
        state.record(&header(1, 0, 2, 2, 4));
        state.record(&header(2, 1, 0, 2, 6));
        assert!(!state.truncate_from_end(8), "nothing at or past 8");
        // Producer 2 loses its only retained batch (its epoch-0 batch at 2..3 was dropped
        // by the bump, so only a scan of the log finds it again).
        assert!(state.truncate_from_end(6));
        assert_eq!((state.entry(2), state.len()), (None, 1));
        // Producer 1 keeps its first batch: exact, it is its latest one left.
        assert!(!state.truncate_from_end(4));
        let kept: Option<Vec<BatchMetadata>> = state.entry(1).map(|e| e.batches.iter().copied().collect());
        assert_eq!(kept, Some(vec![meta(0, 1, 0, 1)]));
        assert!(state.truncate_from_end(1), "a batch holding the new end goes too");
        assert!(state.is_empty());
        state.record(&header(3, 0, 0, 1, 0));
        state.clear();
        assert!(state.is_empty());
    }
}
