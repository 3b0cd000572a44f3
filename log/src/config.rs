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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    }
}
