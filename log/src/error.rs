//! [`LogError`]: everything an operation on a [`crate::Log`] can fail with.

use std::io;
use std::path::PathBuf;

use crate::batch::BatchError;
use crate::checkpoint::CheckpointError;
use crate::config::ConfigError;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file system refused.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS's error.
        source: io::Error,
    },
    /// The partition directory is not named `<topic>-<partition>`.
    #[error("{0} is not a partition directory (expected <topic>-<partition>)")]
    BadDirName(PathBuf),
    /// An appended batch does not parse or fails its CRC.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// An appended batch parses but its header contradicts itself.
    #[error("invalid batch: {0}")]
    InconsistentBatch(&'static str),
    /// A record without a key was appended to a log whose `cleanup.policy` includes
    /// `compact` (Kafka refuses these: compaction keeps records by key).
    #[error(
        "a compacted log takes only records with keys; the record at offset delta {offset_delta} has none"
    )]
    KeyRequired {
        /// The record's offset delta in its batch.
        offset_delta: i32,
    },
    /// An appended batch is larger than `message.max.bytes`.
    #[error("batch of {size} bytes exceeds message.max.bytes = {max}")]
    RecordTooLarge {
        /// The batch's size.
        size: u64,
        /// `message.max.bytes`.
        max: u64,
    },
    /// An appended batch could not fit in any segment.
    #[error("batch of {size} bytes exceeds log.segment.bytes = {segment_bytes}")]
    LargerThanSegment {
        /// The batch's size.
        size: u64,
        /// `log.segment.bytes`.
        segment_bytes: u64,
    },
    /// A replicated batch does not continue the log (its first offset is below the end).
    #[error("replicated batch starts at offset {first_offset}, below the log end offset {log_end_offset}")]
    UnexpectedAppendOffset {
        /// The batch's first offset.
        first_offset: i64,
        /// The log's end offset.
        log_end_offset: i64,
    },
    /// The offset is not in `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The first offset the log holds.
        log_start_offset: i64,
        /// The offset the next append gets.
        log_end_offset: i64,
    },
    /// A segment's bytes changed under the log since it was opened (recovery had accepted
    /// them), so a read cannot continue.
    #[error("{path} is damaged at position {position}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position in the file.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// A leader epoch below 0 was assigned (Kafka's epochs start at 0; -1 means none).
    #[error("leader epoch {0} is invalid (epochs start at 0)")]
    InvalidLeaderEpoch(i32),
    /// An idempotent producer's batch carries an epoch older than the one the log knows
    /// for its producer id: the producer was fenced by a newer instance (Kafka's
    /// `INVALID_PRODUCER_EPOCH`). Nothing was written.
    #[error("producer {producer_id} sent epoch {epoch}, older than its current epoch {current}")]
    InvalidProducerEpoch {
        /// The batch's `producerId`.
        producer_id: i64,
        /// The batch's `producerEpoch`.
        epoch: i16,
        /// The producer's latest epoch in the log.
        current: i16,
    },
    /// An idempotent producer's batch does not continue its sequence: a gap, an overlap, a
    /// new epoch not starting at 0, or a resend of a batch too old to be retained (Kafka's
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`). Nothing was written.
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        /// The batch's `producerId`.
        producer_id: i64,
        /// The first sequence the batch should have had.
        expected: i32,
        /// Its `baseSequence`.
        got: i32,
    },
    /// One append held both a batch that was written before (a producer's resend) and
    /// batches to write; a resend must come alone to be answered as a duplicate. Nothing
    /// was written.
    #[error(
        "the append mixes new batches with a resent one (producer {producer_id}, sequences {first_seq}..={last_seq})"
    )]
    DuplicateInMixedAppend {
        /// The resent batch's `producerId`.
        producer_id: i64,
        /// Its first sequence.
        first_seq: i32,
        /// Its last sequence.
        last_seq: i32,
    },
    /// A checkpoint file could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Adds the action and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: &std::path::Path) -> Result<T, LogError> {
        self.map_err(|source| LogError::Io { action, path: path.to_path_buf(), source })
    }
}
