//! A fetch's long poll, as rules: how many bytes each partition may take (Kafka's
//! `fetch.max.bytes` across the answer and `max.partition.fetch.bytes` per partition,
//! KIP-74), and when the broker answers instead of waiting.
//!
//! The service (`broker/src/service/fetch.rs`) reads the partitions, waits on their
//! offsets and the deadline, and asks these rules what to do.

/// How a partition of a fetch is read, given what the answer holds so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionRead {
    /// Read whole batches up to `max_bytes`. Not `strict`: the first batch is returned even
    /// when larger, so a consumer is never stuck behind a batch bigger than its limits
    /// (KIP-74); `strict` once the answer holds records.
    Read {
        /// Bytes this partition may add.
        max_bytes: usize,
        /// Only whole batches within `max_bytes`.
        strict: bool,
    },
    /// The answer is full: report where the partition stands, read nothing. (A follower's
    /// fetch still reads: its position is how the leader learns it has caught up.)
    Full,
}

/// The bytes one fetch answer may carry, spent partition by partition in request order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchBudget {
    limit: usize,
    taken: usize,
}

impl FetchBudget {
    /// An answer of at most `max_bytes` (the request's) and `reply_limit` (what the
    /// transport's frame can carry besides the envelope).
    pub fn new(max_bytes: u32, reply_limit: usize) -> Self {
        FetchBudget { limit: (max_bytes as usize).min(reply_limit), taken: 0 }
    }

    /// How the next partition, whose own limit is `partition_max_bytes`, is read; `follower`:
    /// a replica's fetch.
    pub fn plan(&self, partition_max_bytes: u32, follower: bool) -> PartitionRead {
        let budget = self.limit.saturating_sub(self.taken).min(partition_max_bytes as usize);
        let strict = self.taken > 0;
        if budget == 0 && strict && !follower {
            return PartitionRead::Full;
        }
        PartitionRead::Read { max_bytes: budget.max(1), strict }
    }

    /// A partition's read added `bytes` to the answer.
    pub fn took(&mut self, bytes: usize) {
        self.taken += bytes;
    }

    /// Bytes in the answer so far.
    pub fn taken(&self) -> usize {
        self.taken
    }
}

/// Whether the long poll answers now: it has `min_bytes` (at least one byte), a partition
/// failed (its error goes back at once), the wait is over, or nothing could wake it.
pub fn answer_now(
    taken: usize,
    min_bytes: u32,
    failed: bool,
    expired: bool,
    nothing_to_wait_for: bool,
) -> bool {
    taken >= (min_bytes as usize).max(1) || failed || expired || nothing_to_wait_for
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_partition_with_records_may_exceed_the_limits_and_later_ones_may_not() {
        // Step 1: 100 bytes for the whole answer, 60 per partition.
        let mut b = FetchBudget::new(100, 1 << 20);
        assert_eq!(b.plan(60, false), PartitionRead::Read { max_bytes: 60, strict: false });
        // A first batch of 80 bytes (over the partition's 60) is returned whole.
        b.took(80);
        assert_eq!(b.plan(60, false), PartitionRead::Read { max_bytes: 20, strict: true });
        b.took(20);
        // Step 2: full: a consumer's next partition reads nothing; a follower's still reads.
        assert_eq!(b.plan(60, false), PartitionRead::Full);
        assert_eq!(b.plan(60, true), PartitionRead::Read { max_bytes: 1, strict: true });
        assert_eq!(b.taken(), 100);
    }

    #[test]
    fn the_frame_caps_what_a_request_may_ask_for() {
        let b = FetchBudget::new(50 << 20, 16 << 20);
        assert_eq!(b.plan(u32::MAX, false), PartitionRead::Read { max_bytes: 16 << 20, strict: false });
    }

    #[test]
    fn the_long_poll_answers_on_min_bytes_a_failure_the_deadline_or_nothing_to_wait_for() {
        assert!(!answer_now(0, 1, false, false, false));
        assert!(answer_now(1, 0, false, false, false), "min_bytes 0 still waits for one byte");
        assert!(!answer_now(10, 11, false, false, false));
        assert!(answer_now(11, 11, false, false, false));
        assert!(answer_now(0, 1, true, false, false));
        assert!(answer_now(0, 1, false, true, false));
        assert!(answer_now(0, 1, false, false, true));
    }
}
