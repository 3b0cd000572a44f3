//! The producer: records in, acknowledged offsets out.
//!
//! ```text
//! send ──> partitioner ──> accumulator (per-partition batches, linger, buffer.memory)
//!                               │  sender task: drains ready batches per leader
//!                               v
//!          broker task per leader: one ordered channel, Produce requests pipelined
//!                               │  replies (in order) back to the sender task
//!                               v
//!          futures completed: offset = base_offset + index in batch
//! ```
//!
//! [`Producer::send`] waits for the topic's metadata (creating the topic if the brokers
//! allow it) and for buffer space, both within `max.block.ms`, picks the partition (Kafka's
//! default partitioner, see [`super::partitioner`]), appends the record to the partition's
//! open batch and returns a [`DeliveryFuture`] at once. One *sender task* (on the runtime
//! `Producer::new` ran in) takes ready batches from the accumulator (full, lingered
//! `linger.ms`, or asked for by `flush`/`close`/a full buffer) and hands each to the task of
//! its partition's leader, which sends it as a `Produce` on that broker's ordered channel,
//! pipelining requests, so a partition's requests are applied in the order sent.
//!
//! Failures: a retriable error (the broker's `is_retriable`, a lost connection, a timeout)
//! refreshes metadata if it says the leader moved, and the batch is sent again to the
//! (new) leader after `retry.backoff.ms`, keeping the partition's order (see
//! `accumulator`), until `retries` or `delivery.timeout.ms` run out. Other errors
//! fail the batch's futures with the broker's error. With `acks=0` futures complete with
//! offset -1 once the request is written (the broker's answer is not awaited).
//!
//! Dropping every handle without [`Producer::close`] lets the sender task finish what is
//! buffered (within the delivery timeout) and stop, as long as the runtime runs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sluice_log::{Compression, Header};
use sluice_net::{OrderedCaller, PendingReply, RpcError};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn, Instrument};

use super::accumulator::{self, Accumulator, Batch, Limits, NewRecord, Retry};
use super::cluster::{rpc_is_retriable, Cluster, ClusterError};
use super::config::{ConfigError, ProducerConfig};
use super::partitioner::{partition_for_key, StickyPartitioner};
use super::proto::{
    BrokerError, BrokerProtocol, InitProducerId, PartitionMetadata, Produce, ProduceBatch, ProduceMany,
    ProduceResponse, ProducerIdAndEpoch,
};

/// A record to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` lets the partitioner choose (by key, or sticky without one).
    pub partition: Option<i32>,
    /// The key (hashed to choose the partition).
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone on compacted topics.
    pub value: Option<Bytes>,
    /// Headers: UTF-8 keys, optional values.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; `None` for the time of `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// With a key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// To this partition.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// With one more header.
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((key.into(), value));
        self
    }

    /// With this timestamp (ms since the epoch).
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Its offset (-1 with `acks=0`).
    pub offset: i64,
    /// Its timestamp: the broker's append time if the topic uses `LogAppendTime`, else the
    /// record's.
    pub timestamp: i64,
}

/// Why a send failed. Clonable: one batch's failure fails each of its records' futures.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(Arc<ConfigError>),
    /// Metadata could not be had (no broker answered, the topic did not appear in time, ...).
    #[error(transparent)]
    Cluster(Arc<ClusterError>),
    /// `Producer::new` was called outside a tokio runtime.
    #[error("Producer::new must run inside a tokio runtime: its sender runs as tasks on it")]
    NoRuntime,
    /// The record alone is larger than a limit.
    #[error("the record is {size} bytes when encoded, more than {key} = {max}")]
    RecordTooLarge {
        /// Its size as a batch of one (header included).
        size: usize,
        /// The limit.
        max: u64,
        /// The setting that sets it (`max.request.size` or `buffer.memory`).
        key: &'static str,
    },
    /// The record names a partition the topic does not have.
    #[error("topic {topic} has no partition {partition}: it has {partitions}")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many it has.
        partitions: usize,
    },
    /// The record's timestamp is negative.
    #[error("invalid timestamp {timestamp}: record timestamps are milliseconds since the epoch, 0 or more")]
    InvalidTimestamp {
        /// The timestamp given.
        timestamp: i64,
    },
    /// No buffer space freed up within `max.block.ms`.
    #[error(
        "no buffer space for a record of {size} bytes within max.block.ms ({waited:?}): all of \
         buffer.memory = {buffer_memory} bytes holds records not yet acknowledged; the brokers are not \
         keeping up (or raise buffer.memory)"
    )]
    BufferExhausted {
        /// The record's size.
        size: usize,
        /// `buffer.memory`.
        buffer_memory: u64,
        /// How long `send` waited.
        waited: Duration,
    },
    /// The broker refused the batch with an error retrying cannot fix, or kept refusing it
    /// until `retries` ran out.
    #[error("{topic}-{partition}: {error}")]
    Broker {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's error.
        error: BrokerError,
    },
    /// Sending failed in the transport (a refused certificate, a frame the broker refused,
    /// or a lost connection when `retries` ran out).
    #[error("{topic}-{partition}: sending to {broker} failed: {reason}")]
    Transport {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The leader's address.
        broker: String,
        /// What failed.
        reason: String,
    },
    /// The batch was not acknowledged within `delivery.timeout.ms`.
    #[error(
        "{topic}-{partition}: {records} record(s) expired: not acknowledged within delivery.timeout.ms \
         ({timeout:?}){}", last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default()
    )]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Records in the batch.
        records: usize,
        /// `delivery.timeout.ms`.
        timeout: Duration,
        /// Why the last attempt failed, if one was made.
        last_error: Option<String>,
    },
    /// The producer is closed (or closing).
    #[error("the producer is closed")]
    Closed,
    /// The producer's tasks stopped (the runtime shut down) before the record was acknowledged.
    #[error("the producer stopped before the record was acknowledged")]
    Aborted,
}

impl From<ConfigError> for ProducerError {
    fn from(e: ConfigError) -> Self {
        ProducerError::Config(Arc::new(e))
    }
}

impl From<ClusterError> for ProducerError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Config(c) => c.into(),
            other => ProducerError::Cluster(Arc::new(other)),
        }
    }
}

/// Resolves when the record is acknowledged (or has failed for good).
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata, ProducerError>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ProducerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(ProducerError::Aborted)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// One record's completion and its share of `buffer.memory`.
#[derive(Debug)]
struct Pending {
    tx: oneshot::Sender<Result<RecordMetadata, ProducerError>>,
    memory: OwnedSemaphorePermit,
    /// The record's `send` span (until it is delivered or fails), when traces are exported:
    /// its batch's produce request is traced under the first record's.
    span: tracing::Span,
}

#[derive(Debug)]
struct State {
    acc: Accumulator<Pending>,
    sticky: StickyPartitioner,
    rng: StdRng,
}

#[derive(Debug)]
struct Shared {
    config: ProducerConfig,
    cluster: Cluster,
    delivery_timeout: Duration,
    state: Mutex<State>,
    /// Something for the sender task: a new or full batch, a flush, a close, a blocked send.
    wake: Notify,
    /// Batches finished: for `flush` and `close`.
    done: Notify,
    memory: Arc<Semaphore>,
    /// `send`s waiting for buffer memory.
    blocked: AtomicUsize,
    closed: AtomicBool,
    /// The sender task has ended.
    stopped: AtomicBool,
    /// An idempotent producer's batch failed for good: its partition's sequence numbers have
    /// a gap the broker would refuse forever, so the sender takes a new producer id.
    new_producer_id: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin_close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.state().acc.close();
        self.memory.close();
        self.wake.notify_one();
    }

    /// Waits until `finished` holds (checked after every completion) or the sender stopped.
    async fn wait_until(&self, finished: impl Fn(&Accumulator<Pending>) -> bool) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if finished(&self.state().acc) || self.stopped.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// Ends the producer when the last user handle goes.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_close();
    }
}

/// A producer. Cheap to clone; clones share batches, connections and buffer memory.
#[derive(Debug, Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    /// A producer; its sender task runs on the current tokio runtime. Reads the TLS files
    /// now; connects on the first send.
    pub fn new(config: ProducerConfig) -> Result<Producer, ProducerError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ProducerError::NoRuntime)?;
        let cluster = Cluster::new(&config.client, true)?;
        let delivery_timeout = config.effective_delivery_timeout();
        if delivery_timeout > config.delivery_timeout {
            warn!(
                configured = ?config.delivery_timeout,
                used = ?delivery_timeout,
                "delivery.timeout.ms is shorter than linger.ms + request.timeout.ms; using their sum"
            );
        }
        let limits = Limits {
            batch_size: config.batch_size,
            max_request_size: config.max_request_size,
            linger: config.linger,
            max_in_flight: config.max_in_flight,
            retry_backoff: config.client.retry_backoff,
            delivery_timeout,
            retries: config.retries,
        };
        let permits = usize::try_from(config.buffer_memory).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            cluster,
            delivery_timeout,
            state: Mutex::new(State {
                acc: Accumulator::new(limits),
                sticky: StickyPartitioner::new(config.batch_size),
                rng: StdRng::from_entropy(),
            }),
            wake: Notify::new(),
            new_producer_id: AtomicBool::new(false),
            done: Notify::new(),
            memory: Arc::new(Semaphore::new(permits)),
            blocked: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            config,
        });
        runtime.spawn(run(shared.clone()));
        Ok(Producer { handle: Arc::new(Handle { shared }) })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared().config
    }

    /// The partitions of `topic` (creating it if the brokers allow it), waiting up to
    /// `max.block.ms` for it to appear.
    pub async fn partitions_for(&self, topic: &str) -> Result<Vec<PartitionMetadata>, ProducerError> {
        let s = self.shared();
        Ok(s.cluster.topic(topic, s.config.max_block).await?.metadata.partitions.clone())
    }

    /// Queues a record for sending. Waits (up to `max.block.ms` in all) for the topic's
    /// metadata and for buffer space; returns a future of the record's offset. Fails at once
    /// for a record too large for `max.request.size` or `buffer.memory`, a partition the
    /// topic does not have, a negative timestamp, or a closed producer.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ProducerError> {
        let s = self.shared();
        if s.closed.load(Ordering::SeqCst) {
            return Err(ProducerError::Closed);
        }
        let start = Instant::now();
        let ProducerRecord { topic, partition, key, value, headers, timestamp } = record;
        let span = super::client_span("send", &topic);
        let headers: Vec<Header> = headers.into_iter().map(|(key, value)| Header { key, value }).collect();
        let size = accumulator::single_record_batch_size(key.as_deref(), value.as_deref(), &headers);
        let config = &s.config;
        if size > config.max_request_size {
            let max = config.max_request_size as u64;
            return Err(ProducerError::RecordTooLarge { size, max, key: "max.request.size" });
        }
        if size as u64 > config.buffer_memory {
            return Err(ProducerError::RecordTooLarge {
                size,
                max: config.buffer_memory,
                key: "buffer.memory",
            });
        }
        if let Some(ts) = timestamp.filter(|&ts| ts < 0) {
            return Err(ProducerError::InvalidTimestamp { timestamp: ts });
        }
        let mut meta = match s.cluster.cached_topic(&topic).filter(|t| t.is_usable()) {
            Some(t) => t,
            None => s.cluster.topic(&topic, config.max_block).await?,
        };
        if partition.and_then(|p| usize::try_from(p).ok()).is_some_and(|p| p >= meta.num_partitions()) {
            // Partitions may have been added since the metadata was fetched: look once more.
            let remaining = config.max_block.saturating_sub(start.elapsed());
            if let Ok(Ok(view)) =
                tokio::time::timeout(remaining, s.cluster.refresh(std::slice::from_ref(&topic))).await
            {
                if let Some(t) = view.topic(&topic).filter(|t| t.is_usable()) {
                    meta = t.clone();
                }
            }
        }
        let partitions = meta.num_partitions();
        let chosen = match (partition, key.as_deref()) {
            (Some(p), _) if usize::try_from(p).map_or(true, |p| p >= partitions) => {
                return Err(ProducerError::InvalidPartition { topic, partition: p, partitions });
            }
            (Some(p), _) => Some(p),
            (None, Some(k)) => Some(partition_for_key(k, partitions)),
            (None, None) => None,
        };
        let memory = self.reserve(size, config.max_block.saturating_sub(start.elapsed())).await?;
        let (tx, rx) = oneshot::channel();
        let record = NewRecord { key, value, headers, timestamp: timestamp.unwrap_or_else(now_ms) };
        let wake = {
            let mut guard = s.state();
            let st = &mut *guard;
            let p = chosen
                .unwrap_or_else(|| st.sticky.partition(&topic, partitions, &meta.available, &mut st.rng));
            let appended = st.acc.append(&topic, p, record, Pending { tx, memory, span }, Instant::now());
            if chosen.is_none() {
                let switch = st.acc.all_batches_full(&topic, p);
                st.sticky.on_append(
                    &topic,
                    p,
                    appended.bytes,
                    switch,
                    partitions,
                    &meta.available,
                    &mut st.rng,
                );
            }
            appended.new_batch || appended.batch_full
        };
        if wake {
            s.wake.notify_one();
        }
        Ok(DeliveryFuture { rx })
    }

    /// Takes `size` bytes of buffer memory, waiting up to `timeout`; while it waits, the
    /// sender sends every batch at once (lingering would only prolong the wait).
    async fn reserve(&self, size: usize, timeout: Duration) -> Result<OwnedSemaphorePermit, ProducerError> {
        let s = self.shared();
        let n = u32::try_from(size).map_err(|_| ProducerError::RecordTooLarge {
            size,
            max: u64::from(u32::MAX),
            key: "max.request.size",
        })?;
        match s.memory.clone().try_acquire_many_owned(n) {
            Ok(p) => return Ok(p),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(ProducerError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        struct Blocked<'a>(&'a AtomicUsize);
        impl Drop for Blocked<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        s.blocked.fetch_add(1, Ordering::SeqCst);
        let _blocked = Blocked(&s.blocked);
        s.wake.notify_one();
        match tokio::time::timeout(timeout, s.memory.clone().acquire_many_owned(n)).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(ProducerError::Closed),
            Err(_) => Err(ProducerError::BufferExhausted {
                size,
                buffer_memory: s.config.buffer_memory,
                waited: timeout,
            }),
        }
    }

    /// Sends everything buffered now (ignoring `linger.ms`) and waits until every record
    /// sent before this call has succeeded or failed.
    pub async fn flush(&self) {
        let s = self.shared();
        let mark = s.state().acc.begin_flush();
        s.wake.notify_one();
        s.wait_until(|acc| acc.flushed(mark)).await;
    }

    /// Stops taking records, sends everything buffered and waits until it has succeeded or
    /// failed (each within the delivery timeout). Later sends fail with `Closed`.
    pub async fn close(&self) {
        let s = self.shared();
        s.begin_close();
        s.wait_until(Accumulator::is_empty).await;
    }
}

/// How a sent batch failed.
#[derive(Debug, Clone)]
enum Failure {
    Broker(BrokerError),
    Transport { reason: String, retriable: bool },
}

impl Failure {
    fn from_rpc(e: &RpcError) -> Self {
        Failure::Transport { reason: e.to_string(), retriable: rpc_is_retriable(e) }
    }

    fn is_retriable(&self) -> bool {
        match self {
            Failure::Broker(e) => e.is_retriable(),
            Failure::Transport { retriable, .. } => *retriable,
        }
    }

    /// Whether the leader may have moved (lost connections count: the broker may be gone).
    fn needs_metadata_refresh(&self) -> bool {
        match self {
            Failure::Broker(e) => e.needs_metadata_refresh(),
            Failure::Transport { .. } => true,
        }
    }

    fn to_error(&self, topic: &str, partition: i32, broker: &str) -> ProducerError {
        match self {
            Failure::Broker(error) => {
                ProducerError::Broker { topic: topic.to_string(), partition, error: error.clone() }
            }
            Failure::Transport { reason, .. } => ProducerError::Transport {
                topic: topic.to_string(),
                partition,
                broker: broker.to_string(),
                reason: reason.clone(),
            },
        }
    }
}

/// A batch back from a broker task.
#[derive(Debug)]
struct Outcome {
    batch: Batch<Pending>,
    broker: String,
    /// The broker's answer; `None` with `acks=0`.
    result: Result<Option<ProduceResponse>, Failure>,
}

/// What every broker task sends with.
#[derive(Debug)]
struct SendSettings {
    acks: i16,
    timeout_ms: u32,
    compression: Compression,
    /// `max.request.size`: the most batch bytes one request carries.
    max_request_size: usize,
}

fn succeed(batch: Batch<Pending>, response: Option<ProduceResponse>) {
    let topic = batch.topic.to_string();
    let (base, append_time) = response.map_or((-1, -1), |r| (r.base_offset, r.log_append_time));
    let mut memory = None;
    for (i, (pending, timestamp)) in batch.thunks.into_iter().zip(batch.timestamps).enumerate() {
        let offset = if base < 0 { -1 } else { base + i as i64 };
        let timestamp = if append_time >= 0 { append_time } else { timestamp };
        let metadata = RecordMetadata { topic: topic.clone(), partition: batch.partition, offset, timestamp };
        let _ = pending.tx.send(Ok(metadata));
        gather(&mut memory, pending.memory);
    }
}

fn fail(batch: Batch<Pending>, error: &ProducerError) {
    debug!(topic = %batch.topic, partition = batch.partition, records = batch.len(), %error, "batch failed");
    let mut memory = None;
    for pending in batch.thunks {
        let _ = pending.tx.send(Err(error.clone()));
        gather(&mut memory, pending.memory);
    }
}

/// Collects a batch's records' shares of `buffer.memory` into one permit, given back at once
/// when the caller drops it: given back record by record, each share would wake a `send`
/// waiting on a full buffer to add one record and wait again (one wake-up per record instead
/// of one per batch).
fn gather(memory: &mut Option<OwnedSemaphorePermit>, share: OwnedSemaphorePermit) {
    match memory {
        Some(all) => all.merge(share),
        None => *memory = Some(share),
    }
}

fn expired_error(batch: &Batch<Pending>, timeout: Duration) -> ProducerError {
    ProducerError::DeliveryTimeout {
        topic: batch.topic.to_string(),
        partition: batch.partition,
        records: batch.len(),
        timeout,
        last_error: batch.last_error.clone(),
    }
}

/// Applies a broker task's outcome to the accumulator and completes futures.
fn handle(shared: &Shared, outcome: Outcome) {
    let Outcome { batch, broker, result } = outcome;
    match result {
        Ok(response) => {
            shared.state().acc.complete(&batch);
            succeed(batch, response);
        }
        Err(failure) => {
            let error = failure.to_error(&batch.topic, batch.partition, &broker);
            if !failure.is_retriable() {
                shared.state().acc.complete(&batch);
                lost_sequence(shared, &batch);
                fail(batch, &error);
                return;
            }
            if failure.needs_metadata_refresh() {
                shared.cluster.refresh_in_background();
            }
            let (topic, partition, attempts) = (batch.topic.clone(), batch.partition, batch.attempts());
            let retry = shared.state().acc.retry(batch, error.to_string(), Instant::now());
            match retry {
                Retry::Queued => debug!(%topic, partition, attempts, %error, "retrying batch"),
                Retry::Expired(b) => {
                    let e = expired_error(&b, shared.delivery_timeout);
                    lost_sequence(shared, &b);
                    fail(b, &e);
                }
                Retry::OutOfRetries(b) => {
                    lost_sequence(shared, &b);
                    fail(b, &error);
                }
            }
        }
    }
}

/// How old metadata may get while produce requests are waiting for answers: how soon after
/// the controller names a dead leader's successor the producer moves its requests there.
const IN_FLIGHT_METADATA_AGE: Duration = Duration::from_millis(250);

/// A stamped batch will never be written: its sequence numbers leave a gap.
fn lost_sequence(shared: &Shared, batch: &Batch<Pending>) {
    if batch.producer().is_some() {
        shared.new_producer_id.store(true, Ordering::SeqCst);
    }
}

/// Kafka's sequence increment: past `i32::MAX` sequences wrap to 0.
fn next_sequence(sequence: i32, records: usize) -> i32 {
    let records = i32::try_from(records).unwrap_or(i32::MAX);
    if sequence > i32::MAX - records {
        records - (i32::MAX - sequence) - 1
    } else {
        sequence + records
    }
}

/// Marks the sender stopped (however it ends) and wakes `flush`/`close`.
struct Stopped(Arc<Shared>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.done.notify_waiters();
    }
}

/// The sender task.
async fn run(shared: Arc<Shared>) {
    let _stopped = Stopped(shared.clone());
    let (results_tx, mut results) = mpsc::unbounded_channel::<Outcome>();
    let mut brokers: HashMap<String, mpsc::UnboundedSender<Vec<Batch<Pending>>>> = HashMap::new();
    let mut updates = shared.cluster.updates();
    let config = &shared.config;
    let settings = Arc::new(SendSettings {
        acks: config.acks.as_i16(),
        timeout_ms: u32::try_from(config.client.request_timeout.as_millis()).unwrap_or(u32::MAX),
        compression: config.compression,
        max_request_size: config.max_request_size,
    });
    let (retry_backoff, max_age) = (config.client.retry_backoff, config.client.metadata_max_age);
    // Idempotence: the producer id, and each partition's next sequence number.
    let idempotent = config.idempotent();
    let mut identity: Option<ProducerIdAndEpoch> = None;
    let mut sequences: HashMap<(Arc<str>, i32), i32> = HashMap::new();
    let mut identity_retry_at = Instant::now();
    loop {
        let now = Instant::now();
        shared.cluster.refresh_if_stale();
        if shared.new_producer_id.swap(false, Ordering::SeqCst) && identity.is_some() {
            warn!("a batch was lost for good; taking a new producer id so later batches are accepted");
            identity = None;
        }
        if idempotent && identity.is_none() && now >= identity_retry_at {
            let ask = shared.cluster.call_any(InitProducerId {}, true);
            match tokio::time::timeout(config.client.request_timeout, ask).await {
                Ok(Ok(id)) => {
                    info!(producer_id = id.producer_id, epoch = id.producer_epoch, "idempotent producer id");
                    identity = Some(id);
                    sequences.clear();
                }
                Ok(Err(ClusterError::Broker(e))) if e.is_authorization_failure() => {
                    // Kafka's producer treats this as fatal: what is queued fails now with
                    // the broker's words (who lacks what), and later sends try again.
                    warn!(error = %e, "refused a producer id");
                    let queued = shared.state().acc.take_queued();
                    for b in queued {
                        let error = ProducerError::Broker {
                            topic: b.topic.to_string(),
                            partition: b.partition,
                            error: e.clone(),
                        };
                        fail(b, &error);
                    }
                    shared.done.notify_waiters();
                    identity_retry_at = now + retry_backoff;
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "could not get a producer id; retrying");
                    identity_retry_at = now + retry_backoff;
                }
                Err(_) => {
                    warn!("no broker answered for a producer id; retrying");
                    identity_retry_at = now + retry_backoff;
                }
            }
        }
        // An idempotent producer sends nothing until it has its id.
        let may_send = !idempotent || identity.is_some();
        let now = Instant::now();
        let view = shared.cluster.view();
        let urgent = shared.blocked.load(Ordering::SeqCst) > 0;
        let (expired, mut drained, empty, in_flight) = {
            let mut st = shared.state();
            let expired = st.acc.expire(now);
            let drained = if may_send {
                st.acc.drain(now, urgent, |t, p| view.leader_addr(t, p).map(str::to_string))
            } else {
                accumulator::Drained {
                    sends: Vec::new(),
                    leaderless: false,
                    next_wakeup: Some(identity_retry_at),
                }
            };
            let empty = st.acc.is_empty();
            (expired, drained, empty, st.acc.in_flight() > 0)
        };
        if in_flight {
            // A killed broker answers nothing (no reset comes over UDP from a dead process);
            // the cluster's broker list is how a producer learns it is gone — its
            // connections are then closed and the requests retried on the new leader — so
            // while requests wait, metadata is re-read every IN_FLIGHT_METADATA_AGE.
            shared.cluster.refresh_if_older(IN_FLIGHT_METADATA_AGE);
        }
        if let Some(id) = identity {
            // Sequence numbers are given in the order batches are first drained, which is
            // the order of their partition's queue.
            for (_, batch) in drained.sends.iter_mut().filter(|(_, b)| b.producer().is_none()) {
                let next = sequences.entry((batch.topic.clone(), batch.partition)).or_insert(0);
                batch.stamp(id.producer_id, id.producer_epoch, *next);
                *next = next_sequence(*next, batch.len());
            }
        }
        let finished = !expired.is_empty();
        for b in expired {
            let e = expired_error(&b, shared.delivery_timeout);
            lost_sequence(&shared, &b);
            fail(b, &e);
        }
        if finished {
            shared.done.notify_waiters();
        }
        if drained.leaderless {
            shared.cluster.refresh_in_background();
        }
        // Each broker's task gets this round's batches for it at once, in drain order, so
        // the batches ready together can go in one request.
        let mut per_broker: Vec<(String, Vec<Batch<Pending>>)> = Vec::new();
        for (addr, batch) in drained.sends {
            match per_broker.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, batches)) => batches.push(batch),
                None => per_broker.push((addr, vec![batch])),
            }
        }
        for (addr, batches) in per_broker {
            let tx = brokers.entry(addr.clone()).or_insert_with(|| {
                spawn_broker(addr.clone(), shared.cluster.clone(), settings.clone(), results_tx.clone())
            });
            if let Err(mpsc::error::SendError(batches)) = tx.send(batches) {
                // The task is gone (it cannot end while we hold its sender, but be safe).
                brokers.remove(&addr);
                let failure = Failure::Transport { reason: "broker task stopped".into(), retriable: true };
                fail_batches(&results_tx, &addr, batches, failure);
            }
        }
        if empty && shared.closed.load(Ordering::SeqCst) {
            break;
        }
        let mut wake_at = drained.next_wakeup;
        let mut wake_by = |at: Instant| wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
        if drained.leaderless {
            wake_by(now + retry_backoff);
        }
        if in_flight {
            wake_by(now + IN_FLIGHT_METADATA_AGE);
        }
        // Metadata is refreshed once it is metadata.max.age.ms old, even when idle (a
        // refresh already running wakes the loop through `updates`).
        if let Some(stale_at) = view.fetched_at.map(|at| at + max_age).filter(|&at| at > now) {
            wake_by(stale_at);
        }
        let sleep = async move {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.wake.notified() => {}
            Some(outcome) = results.recv() => {
                handle(&shared, outcome);
                while let Ok(outcome) = results.try_recv() {
                    handle(&shared, outcome);
                }
                shared.done.notify_waiters();
            }
            Ok(()) = updates.changed() => {}
            () = sleep => {}
        }
    }
    debug!(client_id = %shared.config.client.client_id, "producer sender stopped");
}

fn spawn_broker(
    addr: String,
    cluster: Cluster,
    settings: Arc<SendSettings>,
    results: mpsc::UnboundedSender<Outcome>,
) -> mpsc::UnboundedSender<Vec<Batch<Pending>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(broker_task(addr, cluster, settings, rx, results));
    tx
}

async fn open_channel(cluster: &Cluster, addr: &str) -> Result<OrderedCaller<BrokerProtocol>, RpcError> {
    let conn = cluster.net().connection(addr).await?;
    Ok(conn.open_ordered().await?.caller())
}

/// A request waiting for its answer: one batch's [`Produce`], or several batches'
/// [`ProduceMany`].
enum Sent {
    One(Box<Batch<Pending>>, PendingReply<BrokerProtocol, Produce>),
    Many(Vec<Batch<Pending>>, PendingReply<BrokerProtocol, ProduceMany>),
}

impl Sent {
    fn into_batches(self) -> Vec<Batch<Pending>> {
        match self {
            Sent::One(b, _) => vec![*b],
            Sent::Many(bs, _) => bs,
        }
    }
}

type InFlight = (Sent, tracing::Span);

/// Reports each of `batches` as failed with `failure`; the sender retries it or fails it.
fn fail_batches(
    results: &mpsc::UnboundedSender<Outcome>,
    broker: &str,
    batches: impl IntoIterator<Item = Batch<Pending>>,
    failure: Failure,
) {
    for batch in batches {
        let _ = results.send(Outcome { batch, broker: broker.to_string(), result: Err(failure.clone()) });
    }
}

/// Waits for one request's answer and reports every batch in it.
async fn settle(sent: Sent, span: tracing::Span, broker: &str, results: &mpsc::UnboundedSender<Outcome>) {
    let report = |batch, result| {
        let _ = results.send(Outcome { batch, broker: broker.to_string(), result });
    };
    let fail_all = |batches, failure| fail_batches(results, broker, batches, failure);
    match sent {
        Sent::One(batch, pending) => {
            let result = match pending.reply().instrument(span).await {
                Ok(Ok(response)) => Ok(Some(response)),
                Ok(Err(e)) => Err(Failure::Broker(e)),
                Err(e) => Err(Failure::from_rpc(&e)),
            };
            report(*batch, result);
        }
        Sent::Many(batches, pending) => match pending.reply().instrument(span).await {
            Ok(Ok(answers)) if answers.len() == batches.len() => {
                for (batch, answer) in batches.into_iter().zip(answers) {
                    report(batch, answer.map(Some).map_err(Failure::Broker));
                }
            }
            Ok(Ok(answers)) => {
                let reason = format!("the broker answered {} of {} batches", answers.len(), batches.len());
                fail_all(batches, Failure::Transport { reason, retriable: true });
            }
            Ok(Err(e)) => fail_all(batches, Failure::Broker(e)),
            Err(e) => fail_all(batches, Failure::from_rpc(&e)),
        },
    }
}

/// One partition's batches waiting for requests.
type PartitionQueue = ((Arc<str>, i32), std::collections::VecDeque<Batch<Pending>>);

/// Puts the batches queued for one broker into requests, as Kafka's sender drains a node:
/// a request holds at most one batch of each partition (the first request each partition's
/// first batch, the next its second, …, so a partition's batches stay in order across the
/// requests of the channel) and at most `max.request.size` bytes (a batch alone may be
/// larger: the accumulator kept it within the limit when it could).
fn into_requests(
    batches: Vec<Batch<Pending>>,
    settings: &SendSettings,
) -> std::collections::VecDeque<Vec<(Batch<Pending>, Bytes)>> {
    // Each partition's batches, partitions in order of first appearance.
    let mut queues: Vec<PartitionQueue> = Vec::new();
    for b in batches {
        let key = (b.topic.clone(), b.partition);
        match queues.iter_mut().find(|(k, _)| *k == key) {
            Some((_, q)) => q.push_back(b),
            None => queues.push((key, std::collections::VecDeque::from([b]))),
        }
    }
    let mut requests = std::collections::VecDeque::new();
    loop {
        let mut request: Vec<(Batch<Pending>, Bytes)> = Vec::new();
        let mut size = 0;
        for (_, q) in queues.iter_mut() {
            let Some(mut b) = q.pop_front() else { continue };
            let bytes = b.encoded(settings.compression);
            if !request.is_empty() && size + bytes.len() > settings.max_request_size {
                requests.push_back(std::mem::take(&mut request));
                size = 0;
            }
            size += bytes.len();
            request.push((b, bytes));
        }
        if request.is_empty() {
            return requests;
        }
        requests.push_back(request);
    }
}

/// Sends one broker's batches on one ordered channel, in the order they come (the batches
/// waiting together go as one request); a second task waits for the replies (which come in
/// the same order) and reports them.
async fn broker_task(
    addr: String,
    cluster: Cluster,
    settings: Arc<SendSettings>,
    mut jobs: mpsc::UnboundedReceiver<Vec<Batch<Pending>>>,
    results: mpsc::UnboundedSender<Outcome>,
) {
    let (replies_tx, mut replies) = mpsc::unbounded_channel::<InFlight>();
    let reader_results = results.clone();
    let reader_addr = addr.clone();
    tokio::spawn(async move {
        while let Some((sent, span)) = replies.recv().await {
            settle(sent, span, &reader_addr, &reader_results).await;
        }
    });
    let mut channel: Option<OrderedCaller<BrokerProtocol>> = None;
    let report = |batch, result| {
        let _ = results.send(Outcome { batch, broker: addr.clone(), result });
    };
    let fail_all = |batches: &mut dyn Iterator<Item = Batch<Pending>>, failure| {
        fail_batches(&results, &addr, batches, failure)
    };
    let mut ready: std::collections::VecDeque<Vec<(Batch<Pending>, Bytes)>> = Default::default();
    loop {
        if ready.is_empty() {
            let Some(mut batches) = jobs.recv().await else { break };
            while let Ok(more) = jobs.try_recv() {
                batches.extend(more);
            }
            ready = into_requests(batches, &settings);
        }
        let caller = match channel.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            // A broker that went away answers no handshake (or refuses it while it shuts
            // down, which the connection retries): the metadata naming other leaders for
            // everything waiting here ends the wait.
            None => match tokio::select! {
                opened = open_channel(&cluster, &addr) => Ok(opened),
                () = cluster.led_elsewhere(&addr, ready.iter().flatten().map(|(b, _)| (&*b.topic, b.partition))) => Err(()),
            } {
                Ok(Ok(c)) => {
                    channel = Some(c.clone());
                    c
                }
                Err(()) => {
                    debug!(%addr, "the partitions waiting to be sent here are led elsewhere now; not connecting");
                    let failure = Failure::Transport {
                        reason: format!("their leadership moved away from {addr} while connecting to it"),
                        retriable: true,
                    };
                    fail_all(&mut ready.drain(..).flatten().map(|(b, _)| b), failure.clone());
                    continue;
                }
                Ok(Err(e)) => {
                    // Everything queued behind it would wait for the same connection: fail
                    // them all now and let the sender retry after its backoff.
                    warn!(%addr, error = %e, "cannot reach the partition leader; will retry its batches");
                    let failure = Failure::from_rpc(&e);
                    fail_all(&mut ready.drain(..).flatten().map(|(b, _)| b), failure.clone());
                    while let Ok(more) = jobs.try_recv() {
                        fail_all(&mut more.into_iter(), failure.clone());
                    }
                    continue;
                }
            },
        };
        let Some(mut taken) = ready.pop_front() else { continue };
        // The request's span: a child of its first record's `send` span (none when traces
        // are off); its context travels in the envelope.
        let span = match taken.first().and_then(|(b, _)| b.thunks.first()) {
            Some(p) if !p.span.is_none() => {
                let (b, _) = &taken[0];
                tracing::info_span!(
                    parent: &p.span,
                    "produce",
                    otel.kind = "client",
                    topic = %b.topic,
                    partition = b.partition,
                    records = b.len(),
                    batches = taken.len(),
                )
            }
            _ => tracing::Span::none(),
        };
        let trace = sluice_net::trace::context_of(&span);
        let sent = if taken.len() == 1 {
            let Some((batch, records)) = taken.pop() else { continue };
            let request = Produce {
                topic: batch.topic.to_string(),
                partition: batch.partition,
                acks: settings.acks,
                timeout_ms: settings.timeout_ms,
                records,
                retry: batch.attempts() > 1,
            };
            match caller.send_traced(request, trace).await {
                Ok(p) => Ok(Sent::One(Box::new(batch), p)),
                Err(e) => Err((vec![batch], e)),
            }
        } else {
            let mut batches = Vec::with_capacity(taken.len());
            let mut request =
                ProduceMany { acks: settings.acks, timeout_ms: settings.timeout_ms, batches: Vec::new() };
            for (batch, records) in taken {
                request.batches.push(ProduceBatch {
                    topic: batch.topic.to_string(),
                    partition: batch.partition,
                    records,
                    retry: batch.attempts() > 1,
                });
                batches.push(batch);
            }
            match caller.send_traced(request, trace).await {
                Ok(p) => Ok(Sent::Many(batches, p)),
                Err(e) => Err((batches, e)),
            }
        };
        match sent {
            // acks=0: written is done. (The net layer still takes the broker's answer, if
            // one comes, off the channel.)
            Ok(sent) if settings.acks == 0 => {
                sent.into_batches().into_iter().for_each(|b| report(b, Ok(None)))
            }
            Ok(sent) => {
                if let Err(mpsc::error::SendError((sent, _))) = replies_tx.send((sent, span)) {
                    let failure =
                        Failure::Transport { reason: "reply reader stopped".into(), retriable: true };
                    fail_all(&mut sent.into_batches().into_iter(), failure);
                }
            }
            Err((batches, e)) => {
                // The channel broke: what was to follow it on this channel is retried too,
                // in its partitions' order, by the sender.
                channel = None;
                let rest = ready.drain(..).flatten().map(|(b, _)| b);
                fail_all(&mut batches.into_iter().chain(rest), Failure::from_rpc(&e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(n: usize) -> (Batch<Pending>, Vec<oneshot::Receiver<Result<RecordMetadata, ProducerError>>>) {
        batch_in(3, n)
    }

    fn batch_in(
        partition: i32,
        n: usize,
    ) -> (Batch<Pending>, Vec<oneshot::Receiver<Result<RecordMetadata, ProducerError>>>) {
        let limits = Limits {
            batch_size: 1 << 20,
            max_request_size: 1 << 20,
            linger: Duration::ZERO,
            max_in_flight: 1,
            retry_backoff: Duration::ZERO,
            delivery_timeout: Duration::from_secs(1),
            retries: 0,
        };
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc = Accumulator::new(limits);
        let mut rxs = Vec::new();
        let t0 = Instant::now();
        for i in 0..n {
            let (tx, rx) = oneshot::channel();
            let permit = memory.clone().try_acquire_many_owned(10).expect("memory");
            let r = NewRecord { key: None, value: None, headers: vec![], timestamp: 100 + i as i64 };
            acc.append("t", partition, r, Pending { tx, memory: permit, span: tracing::Span::none() }, t0);
            rxs.push(rx);
        }
        let mut d = acc.drain(t0, false, |_, _| Some(()));
        let (_, b) = d.sends.pop().expect("one batch");
        (b, rxs)
    }

    /// (partition, records) of each batch of each request.
    fn shape(requests: &std::collections::VecDeque<Vec<(Batch<Pending>, Bytes)>>) -> Vec<Vec<(i32, usize)>> {
        requests.iter().map(|r| r.iter().map(|(b, _)| (b.partition, b.len())).collect()).collect()
    }

    #[test]
    fn queued_batches_go_one_per_partition_per_request_in_each_partitions_order() {
        // Partition 0's batches hold 1, 2, 3 records, partition 1's 4, 5, partition 2's 6, queued
        // as the accumulator drains them (a partition's batches together).
        let queued = [(0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (2, 6)];
        let batches = || queued.iter().map(|&(p, n)| batch_in(p, n).0).collect::<Vec<_>>();
        let settings = |max_request_size| SendSettings {
            acks: 1,
            timeout_ms: 1000,
            compression: Compression::None,
            max_request_size,
        };
        let requests = into_requests(batches(), &settings(1 << 20));
        assert_eq!(shape(&requests), vec![vec![(0, 1), (1, 4), (2, 6)], vec![(0, 2), (1, 5)], vec![(0, 3)]]);
        // The encoded bytes travel with their batch.
        for (_, bytes) in requests.iter().flatten() {
            assert_eq!(sluice_log::BatchView::parse(bytes).expect("a batch").len(), bytes.len());
        }
        // max.request.size bounds a request; a batch alone may pass it.
        let requests = into_requests(batches(), &settings(1));
        let one_each: Vec<Vec<(i32, usize)>> =
            [(0, 1), (1, 4), (2, 6), (0, 2), (1, 5), (0, 3)].iter().map(|&b| vec![b]).collect();
        assert_eq!(shape(&requests), one_each);
    }

    #[test]
    fn record_i_of_a_batch_gets_base_offset_plus_i() {
        let (b, rxs) = batch_of(3);
        succeed(b, Some(ProduceResponse { base_offset: 40, log_append_time: -1, log_start_offset: 0 }));
        let got: Vec<_> = rxs.into_iter().map(|mut rx| rx.try_recv().expect("done").expect("ok")).collect();
        assert_eq!(got.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![40, 41, 42]);
        assert_eq!(got.iter().map(|m| m.timestamp).collect::<Vec<_>>(), vec![100, 101, 102]);
        assert_eq!((got[0].topic.as_str(), got[0].partition), ("t", 3));
    }

    #[test]
    fn acks_zero_gives_offset_minus_one_and_log_append_time_replaces_timestamps() {
        let (b, rxs) = batch_of(2);
        succeed(b, None);
        for mut rx in rxs {
            assert_eq!(rx.try_recv().expect("done").expect("ok").offset, -1);
        }
        let (b, rxs) = batch_of(2);
        succeed(b, Some(ProduceResponse { base_offset: 0, log_append_time: 777, log_start_offset: 0 }));
        for mut rx in rxs {
            assert_eq!(rx.try_recv().expect("done").expect("ok").timestamp, 777);
        }
    }

    #[test]
    fn a_failed_batch_fails_every_record_with_the_brokers_error() {
        let (b, rxs) = batch_of(2);
        let failure = Failure::Broker(BrokerError::MessageTooLarge { size: 10, max: 5 });
        assert!(!failure.is_retriable());
        let error = failure.to_error("t", 3, "b1:9092");
        fail(b, &error);
        for mut rx in rxs {
            let e = rx.try_recv().expect("done").expect_err("failed");
            assert!(
                matches!(e, ProducerError::Broker { error: BrokerError::MessageTooLarge { .. }, .. }),
                "{e}"
            );
            assert!(e.to_string().starts_with("t-3: a batch of 10 bytes exceeds"), "{e}");
        }
    }

    #[test]
    fn lost_connections_and_leader_changes_are_retried_with_a_metadata_refresh() {
        let lost = Failure::from_rpc(&RpcError::ChannelClosed { addr: "b".into(), reason: "gone".into() });
        assert!(lost.is_retriable() && lost.needs_metadata_refresh());
        let moved = Failure::Broker(BrokerError::NotLeaderForPartition {
            topic: "t".into(),
            partition: 0,
            broker: 1,
            leader: Some(2),
        });
        assert!(moved.is_retriable() && moved.needs_metadata_refresh());
        let slow = Failure::Broker(BrokerError::NotEnoughReplicas {
            topic: "t".into(),
            partition: 0,
            isr: 1,
            min: 2,
        });
        assert!(slow.is_retriable() && !slow.needs_metadata_refresh());
        let refused = Failure::from_rpc(&RpcError::UnexpectedReply { rpc: "Produce", got: "x".into() });
        assert!(!refused.is_retriable());
    }

    #[test]
    fn errors_say_what_and_which_limit() {
        let e = ProducerError::RecordTooLarge { size: 2_000_000, max: 1_048_576, key: "max.request.size" };
        assert_eq!(
            e.to_string(),
            "the record is 2000000 bytes when encoded, more than max.request.size = 1048576"
        );
        let e = ProducerError::DeliveryTimeout {
            topic: "t".into(),
            partition: 1,
            records: 4,
            timeout: Duration::from_secs(120),
            last_error: Some("t-1: no leader".into()),
        };
        assert_eq!(
            e.to_string(),
            "t-1: 4 record(s) expired: not acknowledged within delivery.timeout.ms (120s); last error: \
             t-1: no leader"
        );
    }

    #[test]
    fn a_producer_needs_a_runtime_and_a_complete_configuration() {
        let err = Producer::new(ProducerConfig::default()).expect_err("no servers");
        assert!(matches!(err, ProducerError::Config(_)), "{err}");
        let config = ProducerConfig::new(super::super::config::ClientConfig::new(["b:9092"]).tls_files(
            sluice_net::TlsFiles {
                ca: "/nonexistent/ca.pem".into(),
                cert: "/nonexistent/c.pem".into(),
                key: "/nonexistent/c.key".into(),
            },
        ));
        let err = Producer::new(config.clone()).expect_err("no runtime");
        assert!(matches!(err, ProducerError::NoRuntime), "{err}");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let err = rt.block_on(async { Producer::new(config) }).expect_err("unreadable TLS files");
        assert!(err.to_string().contains("tls.ca.file"), "{err}");
    }
}
