//! `PartitionLeader`: the actor that owns one partition's log while this broker leads it.
//!
//! Every produce to the partition is a message to this actor, so appends are applied in
//! mailbox order — the order the service handed them over, which is the order a producer
//! sent them on its ordered channel. Reads, offset lookups and the log manager's ticks go
//! through the same mailbox, so nobody else ever touches the log.
//!
//! The high watermark is published on a `watch` channel: fetches waiting for data (long
//! polls) wait on it without going through the mailbox. Until followers replicate, the ISR
//! is the leader alone and the high watermark is the log end offset
//! ([`sluice_broker_core::partition::high_watermark`] with no followers).

use std::sync::{Arc, Mutex, MutexGuard};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use sluice_broker_core::order::OrderGuard;
use sluice_broker_core::partition::high_watermark;
use sluice_broker_core::BrokerError;
use sluice_client::broker::proto::ProduceResponse;
use sluice_log::{Log, LogError, TickReport, TopicPartition};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clock::now_ms;

/// Where a partition's offsets stand; published after every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offsets {
    /// Consumers read below it.
    pub high_watermark: i64,
    /// First offset held.
    pub log_start_offset: i64,
    /// Next offset to be written.
    pub log_end_offset: i64,
}

/// One partition's log, as its leader.
#[derive(Debug)]
pub struct PartitionLeader {
    tp: TopicPartition,
    broker_id: i32,
    leader_epoch: i32,
    /// Shared only with the log cleaner (compacted topics), which locks it to plan a pass
    /// and to swap the cleaned segments in; everyone else goes through this actor.
    log: Option<Arc<Mutex<Log>>>,
    offsets: watch::Sender<Offsets>,
    /// Channels whose produce here failed retriably and was not resent yet.
    held: OrderGuard<u64>,
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Mailbox capacity: producers are bounded by their own in-flight limits, so the mailbox
/// itself must never refuse (actix's default of 16 would make `send` wait, which would
/// break the ordering of a producer's pipelined requests).
pub const MAILBOX: usize = 1 << 40;

impl PartitionLeader {
    /// A leader for `log` at `leader_epoch`; the receiver follows its offsets.
    pub fn new(log: Arc<Mutex<Log>>, broker_id: i32, leader_epoch: i32) -> (Self, watch::Receiver<Offsets>) {
        let (tp, offsets) = {
            let l = lock(&log);
            (l.topic_partition().clone(), offsets_of(&l))
        };
        let (tx, rx) = watch::channel(offsets);
        (
            PartitionLeader {
                tp,
                broker_id,
                leader_epoch,
                log: Some(log),
                offsets: tx,
                held: OrderGuard::default(),
            },
            rx,
        )
    }

    fn publish(&self) {
        if let Some(log) = &self.log {
            self.offsets.send_replace(offsets_of(&lock(log)));
        }
    }

    fn storage_error(&self, e: &LogError) -> BrokerError {
        BrokerError::StorageError {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
            reason: e.to_string(),
        }
    }

    fn log(&self) -> Result<MutexGuard<'_, Log>, BrokerError> {
        let broker = self.broker_id;
        let (topic, partition) = (self.tp.topic.clone(), self.tp.partition);
        self.log.as_deref().map(lock).ok_or(BrokerError::NotLeaderForPartition {
            topic,
            partition,
            broker,
            leader: None,
        })
    }

    /// Maps a log error on append to what the producer is told.
    fn append_error(&self, e: LogError) -> BrokerError {
        match e {
            LogError::RecordTooLarge { size, max } => BrokerError::MessageTooLarge { size, max },
            LogError::LargerThanSegment { size, segment_bytes } => {
                BrokerError::MessageTooLarge { size, max: segment_bytes }
            }
            LogError::InvalidBatch(_) | LogError::InconsistentBatch(_) | LogError::KeyRequired { .. } => {
                BrokerError::CorruptMessage { reason: e.to_string() }
            }
            other => {
                warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %other, "append failed");
                self.storage_error(&other)
            }
        }
    }
}

/// The longest prefix of `records` (whole batches, back to back) of at most `max_bytes`.
fn whole_batches_within(records: Bytes, max_bytes: usize) -> Bytes {
    let mut end = 0;
    while end < records.len() {
        let Ok(view) = sluice_log::BatchView::parse(&records[end..]) else { break };
        if end + view.len() > max_bytes {
            break;
        }
        end += view.len();
    }
    records.slice(..end)
}

fn offsets_of(log: &Log) -> Offsets {
    let leo = log.log_end_offset();
    Offsets {
        high_watermark: high_watermark(leo, std::iter::empty()),
        log_start_offset: log.log_start_offset(),
        log_end_offset: leo,
    }
}

impl Actor for PartitionLeader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        info!(topic = %self.tp.topic, partition = self.tp.partition, epoch = self.leader_epoch, "leading");
    }
}

/// Append a producer's batches.
#[derive(Debug, Message)]
#[rtype(result = "Result<ProduceResponse, BrokerError>")]
pub struct Append {
    /// The batches, back to back (their base offsets are rewritten in place).
    pub records: BytesMut,
    /// The ordered channel it came on and whether it is a resend (see
    /// `sluice_broker_core::order`); `None` outside a channel and for `acks=0`.
    pub order: Option<(u64, bool)>,
}

impl Handler<Append> for PartitionLeader {
    type Result = Result<ProduceResponse, BrokerError>;

    fn handle(&mut self, mut msg: Append, _: &mut Context<Self>) -> Self::Result {
        if let Some((channel, retry)) = msg.order {
            if !self.held.admit(&channel, retry) {
                return Err(BrokerError::OutOfOrderSequence {
                    topic: self.tp.topic.clone(),
                    partition: self.tp.partition,
                });
            }
        }
        let now = now_ms();
        let (result, offsets) = {
            let mut log = self.log()?;
            let result = log.append(&mut msg.records, now);
            (result, offsets_of(&log))
        };
        let info = match result {
            Ok(info) => info,
            Err(e) => {
                let e = self.append_error(e);
                if let (Some((channel, _)), true) = (msg.order, e.is_retriable()) {
                    self.held.failed(channel);
                }
                return Err(e);
            }
        };
        self.offsets.send_replace(offsets);
        metrics::counter!("sluice_broker_messages_in_total", "topic" => self.tp.topic.clone())
            .increment(info.records);
        metrics::counter!("sluice_broker_bytes_in_total", "topic" => self.tp.topic.clone())
            .increment(info.bytes);
        Ok(ProduceResponse {
            base_offset: info.base_offset,
            log_append_time: -1,
            log_start_offset: offsets.log_start_offset,
        })
    }
}

/// Read whole batches from `offset`, below the high watermark.
#[derive(Debug, Message)]
#[rtype(result = "Result<(Bytes, Offsets), BrokerError>")]
pub struct Read {
    /// The first offset wanted.
    pub offset: i64,
    /// Most bytes. Unless `strict`, at least one batch is returned even if larger (so a
    /// consumer always makes progress); with `strict`, only whole batches that fit.
    pub max_bytes: usize,
    /// Return only whole batches within `max_bytes` (a later partition of a fetch whose
    /// answer already holds data: the reply must stay under its limit).
    pub strict: bool,
}

impl Handler<Read> for PartitionLeader {
    type Result = Result<(Bytes, Offsets), BrokerError>;

    fn handle(&mut self, msg: Read, _: &mut Context<Self>) -> Self::Result {
        let log = self.log()?;
        let offsets = offsets_of(&log);
        if msg.offset == offsets.high_watermark && msg.offset >= offsets.log_start_offset {
            return Ok((Bytes::new(), offsets));
        }
        let read = log.read(msg.offset, msg.max_bytes);
        drop(log);
        match read {
            Ok(r) => {
                let records =
                    if msg.strict { whole_batches_within(r.records, msg.max_bytes) } else { r.records };
                metrics::counter!("sluice_broker_bytes_out_total", "topic" => self.tp.topic.clone())
                    .increment(records.len() as u64);
                Ok((records, offsets))
            }
            Err(LogError::OffsetOutOfRange { offset, log_start_offset, log_end_offset }) => {
                Err(BrokerError::OffsetOutOfRange {
                    topic: self.tp.topic.clone(),
                    partition: self.tp.partition,
                    offset,
                    log_start_offset,
                    log_end_offset,
                })
            }
            Err(e) => Err(self.storage_error(&e)),
        }
    }
}

/// Kafka's ListOffsets for one partition: `-1` latest, `-2` earliest, else by timestamp.
#[derive(Debug, Message)]
#[rtype(result = "Result<(i64, i64), BrokerError>")]
pub struct ListOffset {
    /// The timestamp (or -1 / -2).
    pub timestamp: i64,
}

impl Handler<ListOffset> for PartitionLeader {
    type Result = Result<(i64, i64), BrokerError>;

    fn handle(&mut self, msg: ListOffset, _: &mut Context<Self>) -> Self::Result {
        let log = self.log()?;
        let offsets = offsets_of(&log);
        match msg.timestamp {
            -1 => Ok((offsets.high_watermark, -1)),
            -2 => Ok((offsets.log_start_offset, -1)),
            t => {
                let found = log.offset_for_timestamp(t);
                drop(log);
                match found {
                    Ok(Some((offset, ts))) if offset < offsets.high_watermark => Ok((offset, ts)),
                    Ok(_) => Ok((offsets.high_watermark, -1)),
                    Err(e) => Err(self.storage_error(&e)),
                }
            }
        }
    }
}

/// The log manager's periodic work: flush and retention ([`Log::tick`]).
#[derive(Debug, Message)]
#[rtype(result = "Option<(TickReport, i64)>")]
pub struct Tick;

impl Handler<Tick> for PartitionLeader {
    type Result = Option<(TickReport, i64)>;

    fn handle(&mut self, _: Tick, _: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let mut log = lock(self.log.as_deref()?);
        let report = match log.tick(now) {
            Ok(r) => r,
            Err(e) => {
                warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %e, "log tick failed");
                return None;
            }
        };
        let recovery_point = log.recovery_point();
        drop(log);
        if !report.deleted_segments.is_empty() {
            info!(
                topic = %self.tp.topic, partition = self.tp.partition,
                segments = report.deleted_segments.len(), bytes = report.deleted_bytes, "retention deleted segments"
            );
            self.publish();
        }
        Some((report, recovery_point))
    }
}

/// A new leader epoch for the same leader.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetEpoch(pub i32);

impl Handler<SetEpoch> for PartitionLeader {
    type Result = ();

    fn handle(&mut self, msg: SetEpoch, _: &mut Context<Self>) {
        self.leader_epoch = msg.0;
    }
}

/// Stop leading: flush and close the log (and delete it when the topic is deleted). The
/// reply is the recovery point reached (for the checkpoint file), or `None` if deleted.
#[derive(Debug, Message)]
#[rtype(result = "Option<i64>")]
pub struct Stop {
    /// Delete the partition's directory.
    pub delete: bool,
}

impl Handler<Stop> for PartitionLeader {
    type Result = Option<i64>;

    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) -> Option<i64> {
        ctx.stop();
        let shared = self.log.take()?;
        let mut log = lock(&shared);
        let dir = log.dir().to_path_buf();
        let end = log.log_end_offset();
        let closed = log.flush();
        drop(log);
        if let Err(e) = closed {
            warn!(topic = %self.tp.topic, partition = self.tp.partition, error = %e, "closing the log failed");
        }
        info!(topic = %self.tp.topic, partition = self.tp.partition, delete = msg.delete, "stopped leading");
        if msg.delete {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(dir = %dir.display(), error = %e, "could not delete a deleted topic's partition");
            }
            return None;
        }
        Some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Vec<u8> {
        use sluice_log::{BatchHeader, Compression, Record, RecordBatch};
        let record = Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: None,
            value: Some(vec![b'x'; n].into()),
            headers: vec![],
        };
        RecordBatch { header: BatchHeader::new(Compression::None, 0, 0), records: vec![record] }.encode()
    }

    #[test]
    fn a_strict_read_keeps_only_whole_batches_that_fit() {
        let (a, b) = (batch(100), batch(300));
        let both = Bytes::from([a.clone(), b.clone()].concat());
        assert_eq!(whole_batches_within(both.clone(), a.len() + b.len()).len(), a.len() + b.len());
        assert_eq!(whole_batches_within(both.clone(), a.len() + b.len() - 1), Bytes::from(a.clone()));
        assert!(whole_batches_within(both, a.len() - 1).is_empty());
    }
}
