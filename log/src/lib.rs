//! `sluice-log`: the partition log engine, storing Kafka's own formats so that operators
//! recognise the files and a Kafka-protocol front door can serve stored bytes as they are.
//!
//! - [`batch`]: RecordBatch v2 (magic 2): encode, parse, verify (CRC-32C), decode records.
//! - [`compression`]: per-batch codecs — gzip, snappy (xerial framing, as Kafka's Java client),
//!   lz4 (frame format), zstd — through well-kept crates, with a bound on what a batch may
//!   decompress to.
//! - [`Log`] (`log.rs`): one partition's segmented log in `<dir>/<topic>-<partition>/`:
//!   append (offsets assigned by rewriting the base-offset field, `message.max.bytes`
//!   enforced), read by offset (whole batches, bounded by `max_bytes`, across segments) and
//!   by timestamp, roll by size and age, flush (explicit and `log.flush.interval.*`),
//!   retention by time and size, truncate-to, leader epochs, idempotent producers' resends
//!   recognised (not written twice), and recovery on open.
//! - `segment.rs` / `index.rs`: a segment's `.log`, `.index` and `.timeindex` files, byte
//!   for byte Kafka's.
//! - [`recovery`]: what opening a log checks, cuts and rebuilds ([`RecoveryReport`]).
//! - [`checkpoint`]: Kafka's `recovery-point-offset-checkpoint` /
//!   `replication-offset-checkpoint` / `cleaner-offset-checkpoint` text files, replaced
//!   atomically.
//! - [`epoch`]: the leader-epoch cache ([`LeaderEpochCache`]), Kafka's
//!   `leader-epoch-checkpoint` in the partition directory: at which offset each leader
//!   epoch started, for a follower to find where its log diverges from its new leader's
//!   (OffsetsForLeaderEpoch). [`Log`] stamps the latest epoch into appended batches and
//!   keeps the cache in step with replication, truncation, retention and recovery.
//! - [`producer_state`]: the idempotent producers' state ([`ProducerStateManager`]):
//!   per producer id, its epoch and its last 5 batches' sequences and offsets
//!   ([`ProducerEntry`], [`BatchMetadata`]), with Kafka's rules for a leader's append —
//!   a resend is a duplicate answered with the original offsets, an older epoch is fenced,
//!   a sequence must follow the last one. In memory only: [`Log`] rebuilds it from the
//!   batch headers on open and keeps it in step with appends, replication and truncation.
//! - [`cleaner`]: compaction (`cleanup.policy=compact`) of one log, crash-safe swap of the
//!   cleaned segments; [`LogCleaner`] (`log_cleaner.rs`): the pool of `log.cleaner.threads`
//!   worker threads that picks the dirtiest log (the only threads in the crate).
//! - [`LogConfig`]: the settings, under Kafka's names and with Kafka's defaults.
//!
//! No actix, no sockets, no clock: callers pass `now_ms` in (the cleaner pool a clock
//! closure), and periodic work (flush of rolled segments, `log.flush.interval.ms`,
//! retention) happens in [`Log::tick`], called by the owner's timer. The log does use files
//! (std::fs) — that is its job.
pub mod batch;
pub mod checkpoint;
pub mod cleaner;
pub mod compression;
mod config;
pub mod dump;
pub mod epoch;
mod error;
mod index;
mod log;
mod log_cleaner;
pub mod producer_state;
pub mod recovery;
mod segment;
mod varint;

pub use batch::{BatchError, BatchHeader, BatchView, Header, Record, RecordBatch, TimestampType};
pub use cleaner::{CleanPlan, CleanReport, DirtyStats, PreparedClean};
pub use compression::Compression;
pub use config::{CleanupPolicy, CompressionType, ConfigError, LogConfig};
pub use epoch::{EpochEntry, LeaderEpochCache};
pub use error::LogError;
pub use log::{AppendInfo, Log, ReadResult, TickReport};
pub use log_cleaner::{CleanerConfig, CleanerEvent, LogCleaner, WorkerPanicked};
pub use producer_state::{AppendCheck, BatchMetadata, ProducerEntry, ProducerStateManager};
pub use recovery::{RecoveryReport, Truncation};
pub use sluice_broker_core::TopicPartition;
