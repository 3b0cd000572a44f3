//! [`LogConfig`]: the settings of one partition's log, named after Kafka's keys, with
//! Kafka's defaults in one place ([`LogConfig::default`]) and [`LogConfig::validate`] turning
//! a bad value into a [`ConfigError`] that names the key.

/// 1 GiB: `log.segment.bytes`.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;
/// 7 days: `log.roll.ms` (Kafka's `log.roll.hours` = 168).
pub const DEFAULT_ROLL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// `message.max.bytes`: 1 MiB plus a batch's overhead, as Kafka.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1_048_588;
/// 7 days: `log.retention.ms` (Kafka's `log.retention.hours` = 168).
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// `log.index.interval.bytes`.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4096;
/// 1 day: `delete.retention.ms` (Kafka's `log.cleaner.delete.retention.ms`).
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// `min.cleanable.dirty.ratio` (Kafka's `log.cleaner.min.cleanable.ratio`).
pub const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;

/// `cleanup.policy`: what happens to old segments. Kafka's value is a list of `delete` and
/// `compact`; both may be set (`compact,delete`: compacted, and old segments still go by
/// retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: `log.retention.ms` / `log.retention.bytes` delete whole old segments.
    pub delete: bool,
    /// `compact`: the cleaner keeps the latest record of every key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// `delete` (Kafka's default).
    pub const DELETE: CleanupPolicy = CleanupPolicy { delete: true, compact: false };
    /// `compact`.
    pub const COMPACT: CleanupPolicy = CleanupPolicy { delete: false, compact: true };
    /// `compact,delete`.
    pub const COMPACT_DELETE: CleanupPolicy = CleanupPolicy { delete: true, compact: true };
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy::DELETE
    }
}

impl std::str::FromStr for CleanupPolicy {
    type Err = ConfigError;
    /// Kafka's values: a comma-separated list of `delete` and `compact` (`compact,delete`,
    /// `delete, compact`, ...); an empty list, an unknown word or a repeated one is refused.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError { key: "cleanup.policy", value: s.to_string(), reason };
        let mut policy = CleanupPolicy { delete: false, compact: false };
        for word in s.split(',').map(str::trim) {
            let flag = match word {
                "delete" => &mut policy.delete,
                "compact" => &mut policy.compact,
                _ => return Err(bad("must be delete, compact or compact,delete")),
            };
            if std::mem::replace(flag, true) {
                return Err(bad("names the same policy twice"));
            }
        }
        Ok(policy)
    }
}

/// `compression.type`: what the broker stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionType {
    /// `producer`: each batch as the producer compressed it (Kafka's default).
    #[default]
    Producer,
    /// `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`: batches in any other codec are
    /// decompressed and compressed again with this one before they are stored.
    Codec(crate::Compression),
}

impl CompressionType {
    /// The codec every batch is stored in, if one is imposed.
    pub fn codec(self) -> Option<crate::Compression> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Codec(c) => Some(c),
        }
    }
}

impl std::str::FromStr for CompressionType {
    type Err = ConfigError;
    /// Kafka's values: `producer`, `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        use crate::Compression as C;
        Ok(match s {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Codec(C::None),
            "gzip" => CompressionType::Codec(C::Gzip),
            "snappy" => CompressionType::Codec(C::Snappy),
            "lz4" => CompressionType::Codec(C::Lz4),
            "zstd" => CompressionType::Codec(C::Zstd),
            other => {
                return Err(ConfigError {
                    key: "compression.type",
                    value: other.to_string(),
                    reason: "must be one of producer, uncompressed, gzip, snappy, lz4, zstd",
                })
            }
        })
    }
}

/// The settings of one partition's log.
// Not `Eq`: `min.cleanable.dirty.ratio` is a float.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `log.segment.bytes`: a segment is rolled before an append would take it past this.
    pub segment_bytes: u64,
    /// `log.roll.ms`: a segment is rolled once its records span this long (measured as
    /// Kafka does: the appended batch's max timestamp minus that of the segment's first
    /// batch).
    pub roll_ms: i64,
    /// `message.max.bytes`: the largest batch an append accepts.
    pub max_message_bytes: u64,
    /// `log.flush.interval.messages`: fsync once this many records are unflushed. `None`
    /// leaves flushing to the OS (Kafka's default).
    pub flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms`: fsync once unflushed data is this old. `None` leaves
    /// flushing to the OS (Kafka's default).
    pub flush_interval_ms: Option<i64>,
    /// `log.retention.ms`: delete a segment once its newest record is older than this.
    /// `None` keeps segments forever (Kafka's `-1`).
    pub retention_ms: Option<i64>,
    /// `log.retention.bytes`: delete the oldest segments while the log exceeds this by at
    /// least a whole segment. `None`: no size limit (Kafka's `-1`, the default).
    pub retention_bytes: Option<u64>,
    /// `log.index.interval.bytes`: bytes of batches between two offset-index entries.
    pub index_interval_bytes: u64,
    /// `compression.type`: keep the producer's codec, or store every batch in one codec.
    pub compression_type: CompressionType,
    /// `cleanup.policy`: retention deletes old segments only with `delete`; the cleaner
    /// compacts only logs with `compact`, and `append` then refuses records without a key.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone (a record whose value is null) outlives
    /// the cleaning pass that first found it in the clean part of the log (see
    /// [`crate::cleaner`]).
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: the cleaner takes a log once its dirty bytes are at
    /// least this share of its cleanable bytes.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a segment whose newest record is younger than this stays
    /// uncompacted (as does everything after it).
    pub min_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            roll_ms: DEFAULT_ROLL_MS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            flush_interval_messages: None,
            flush_interval_ms: None,
            retention_ms: Some(DEFAULT_RETENTION_MS),
            retention_bytes: None,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            compression_type: CompressionType::Producer,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            min_cleanable_dirty_ratio: DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
            min_compaction_lag_ms: 0,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value} is invalid: {reason}")]
pub struct ConfigError {
    /// The Kafka key.
    pub key: &'static str,
    /// The value given.
    pub value: String,
    /// Why it cannot work.
    pub reason: &'static str,
}

impl LogConfig {
    /// Checks every setting; the first bad one is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, value: &dyn std::fmt::Display, reason| {
            Err(ConfigError { key, value: value.to_string(), reason })
        };
        // Positions in the offset index are 32-bit, and Kafka caps segments at i32::MAX.
        if self.segment_bytes < crate::batch::HEADER_LEN as u64 || self.segment_bytes > i32::MAX as u64 {
            return bad("log.segment.bytes", &self.segment_bytes, "must be between 61 and 2147483647");
        }
        if self.roll_ms < 1 {
            return bad("log.roll.ms", &self.roll_ms, "must be at least 1");
        }
        if self.max_message_bytes > i32::MAX as u64 {
            return bad("message.max.bytes", &self.max_message_bytes, "must be at most 2147483647");
        }
        if self.flush_interval_messages == Some(0) {
            return bad("log.flush.interval.messages", &0, "must be at least 1 (or unset)");
        }
        if let Some(ms) = self.flush_interval_ms.filter(|ms| *ms < 0) {
            return bad("log.flush.interval.ms", &ms, "must not be negative (or unset)");
        }
        if let Some(ms) = self.retention_ms.filter(|ms| *ms < 0) {
            return bad("log.retention.ms", &ms, "must not be negative (unset keeps data forever)");
        }
        if self.index_interval_bytes > i32::MAX as u64 {
            return bad("log.index.interval.bytes", &self.index_interval_bytes, "must be at most 2147483647");
        }
        if self.delete_retention_ms < 0 {
            return bad("delete.retention.ms", &self.delete_retention_ms, "must not be negative");
        }
        let ratio = self.min_cleanable_dirty_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return bad("min.cleanable.dirty.ratio", &ratio, "must be between 0 and 1");
        }
        if self.min_compaction_lag_ms < 0 {
            return bad("min.compaction.lag.ms", &self.min_compaction_lag_ms, "must not be negative");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let c = LogConfig::default();
        assert_eq!(
            (c.segment_bytes, c.max_message_bytes, c.index_interval_bytes),
            (1 << 30, 1_048_588, 4096)
        );
        assert_eq!((c.flush_interval_messages, c.flush_interval_ms, c.retention_bytes), (None, None, None));
        assert_eq!(c.retention_ms, Some(604_800_000));
        assert_eq!(c.cleanup_policy, CleanupPolicy::DELETE);
        assert_eq!(
            (c.delete_retention_ms, c.min_cleanable_dirty_ratio, c.min_compaction_lag_ms),
            (86_400_000, 0.5, 0)
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn compression_type_takes_kafkas_values() {
        use crate::Compression;
        assert_eq!("producer".parse(), Ok(CompressionType::Producer));
        assert_eq!("uncompressed".parse(), Ok(CompressionType::Codec(Compression::None)));
        assert_eq!(
            "zstd".parse::<CompressionType>().map(CompressionType::codec),
            Ok(Some(Compression::Zstd))
        );
        let e = "brotli".parse::<CompressionType>().expect_err("not a codec");
        assert_eq!(
            e.to_string(),
            "compression.type = brotli is invalid: must be one of producer, uncompressed, gzip, snappy, lz4, zstd"
        );
    }

    #[test]
    fn cleanup_policy_takes_kafkas_lists() {
        assert_eq!("delete".parse(), Ok(CleanupPolicy::DELETE));
        assert_eq!("compact".parse(), Ok(CleanupPolicy::COMPACT));
        assert_eq!("compact,delete".parse(), Ok(CleanupPolicy::COMPACT_DELETE));
        assert_eq!("delete, compact".parse(), Ok(CleanupPolicy::COMPACT_DELETE));
        for bad in ["", "remove", "compact,", "delete,delete"] {
            let e = bad.parse::<CleanupPolicy>().expect_err(bad);
            assert_eq!(e.key, "cleanup.policy", "{bad:?}");
        }
        assert_eq!(
            "purge".parse::<CleanupPolicy>().map_err(|e| e.to_string()),
            Err("cleanup.policy = purge is invalid: must be delete, compact or compact,delete".into())
        );
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let c = LogConfig { segment_bytes: 10, ..LogConfig::default() };
        assert_eq!(c.validate().map_err(|e| e.key), Err("log.segment.bytes"));
        let c = LogConfig { flush_interval_messages: Some(0), ..LogConfig::default() };
        assert_eq!(c.validate().map_err(|e| e.key), Err("log.flush.interval.messages"));
        let c = LogConfig { retention_ms: Some(-5), ..LogConfig::default() };
        let e = c.validate().expect_err("negative retention");
        assert_eq!(
            e.to_string(),
            "log.retention.ms = -5 is invalid: must not be negative (unset keeps data forever)"
        );
        let c = LogConfig { min_cleanable_dirty_ratio: 1.5, ..LogConfig::default() };
        assert_eq!(c.validate().map_err(|e| e.key), Err("min.cleanable.dirty.ratio"));
        let c = LogConfig { min_cleanable_dirty_ratio: f64::NAN, ..LogConfig::default() };
        assert_eq!(c.validate().map_err(|e| e.key), Err("min.cleanable.dirty.ratio"));
        let c = LogConfig { delete_retention_ms: -1, ..LogConfig::default() };
        assert_eq!(c.validate().map_err(|e| e.key), Err("delete.retention.ms"));
        let c = LogConfig { min_compaction_lag_ms: -1, ..LogConfig::default() };
        assert_eq!(c.validate().map_err(|e| e.key), Err("min.compaction.lag.ms"));
    }
}
