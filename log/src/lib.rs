//! `sluice-log`: the partition log engine, storing Kafka's own formats so that operators
//! recognise the files and a Kafka-protocol front door can serve stored bytes as they are.
//!
//! - [`batch`]: RecordBatch v2 (magic 2): encode, parse, verify (CRC-32C), decode records.
//! - [`compression`]: per-batch codecs — gzip, snappy (xerial framing, as Kafka's Java client),
//!   lz4 (frame format), zstd — through well-kept crates, with a bound on what a batch may
//!   decompress to.
//!
//! No actix, no sockets, no clock: callers pass timestamps in.
pub mod batch;
pub mod compression;
mod varint;

pub use batch::{BatchError, BatchHeader, BatchView, Header, Record, RecordBatch, TimestampType};
pub use compression::Compression;
