//! The producer's record accumulator and per-partition send order, as a pure state machine:
//! no tasks, no clock (every rule takes `now`), no network. The producer's tasks feed it
//! records and replies and carry out what it returns.
//!
//! **Batching.** Records of a partition go into its open batch until the next one would
//! take it past `min(batch.size, max.request.size)` bytes (sizes are the exact encoded,
//! uncompressed sizes); then the batch is closed and a new one opened. A record larger than
//! that gets a batch of its own. A partition's front batch is *ready* when it is not the
//! last one (so it is closed), is full, has waited `linger.ms` since its first record, or a
//! flush, close or memory shortage asks for everything now.
//!
//! **Order.** A partition's batches are sent in the order they were made, up to
//! `max.in.flight` at a time. When one fails with a retriable error it goes back to its
//! place in the queue (batches are ordered by id), and the partition switches to *recovery*:
//! nothing more of it is sent until every request in flight has come back, then the failed
//! batches are sent again one at a time, each after `retry.backoff.ms` and only once the one
//! before has succeeded; normal pipelining resumes after the last of them. So a partition's
//! batches reach the log in order. A batch already in flight when an earlier one failed cannot
//! overtake that one's retry: the broker holds a channel's later produces to a partition after
//! a retriable failure until a produce marked as a resend arrives (every send after the first
//! is one: `attempts > 1`; see `sluice_broker_core::order`). What a lost connection leaves
//! unknown may be written twice, never out of order.
//!
//! **Deadlines.** A batch fails once `delivery.timeout.ms` has passed since it was opened
//! (queued batches are expired by [`Accumulator::expire`], failed ones on their failure), or
//! after `retries` retries.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_log::batch::HEADER_LEN;
use sluice_log::{BatchHeader, Compression, Header, Record, RecordBatch};

/// The rules' numbers.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// `batch.size`.
    pub batch_size: usize,
    /// `max.request.size`.
    pub max_request_size: usize,
    /// `linger.ms`.
    pub linger: Duration,
    /// `max.in.flight.requests.per.connection` (per partition).
    pub max_in_flight: usize,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// `delivery.timeout.ms`.
    pub delivery_timeout: Duration,
    /// `retries`.
    pub retries: u32,
}

impl Limits {
    /// Bytes after which a batch takes no more records.
    fn batch_limit(&self) -> usize {
        self.batch_size.min(self.max_request_size)
    }
}

pub(crate) use sluice_log::batch::record_size;

/// The size of a batch holding only this record: what `max.request.size` is checked against.
pub(crate) fn single_record_batch_size(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> usize {
    HEADER_LEN + record_size(0, 0, key, value, headers)
}

/// A record on its way into a batch.
#[derive(Debug, Clone)]
pub(crate) struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// One batch of one partition, with a completion handle `T` per record.
#[derive(Debug)]
pub(crate) struct Batch<T> {
    /// Order of creation across the accumulator.
    pub id: u64,
    pub topic: Arc<str>,
    pub partition: i32,
    records: Vec<Record>,
    /// Each record's timestamp.
    pub timestamps: Vec<i64>,
    /// Each record's completion handle.
    pub thunks: Vec<T>,
    size: usize,
    created: Instant,
    base_timestamp: i64,
    max_timestamp: i64,
    closed: bool,
    attempts: u32,
    retry_at: Option<Instant>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    encoded: Option<Bytes>,
    /// An idempotent producer's id, epoch and this batch's first sequence number.
    producer: Option<(i64, i16, i32)>,
}

impl<T> Batch<T> {
    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.thunks.len()
    }

    /// Encoded size before compression (header included).
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.size
    }

    /// How often it has been handed out for sending.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn is_full(&self, limit: usize) -> bool {
        self.closed || self.size >= limit
    }

    /// The idempotent producer's stamp, if set: `(producer id, epoch, first sequence)`.
    pub fn producer(&self) -> Option<(i64, i16, i32)> {
        self.producer
    }

    /// Stamps the batch for an idempotent producer (before it is first encoded; a batch
    /// keeps its stamp, and so its sequence, through every resend).
    pub fn stamp(&mut self, producer_id: i64, epoch: i16, base_sequence: i32) {
        if self.encoded.is_none() {
            self.producer = Some((producer_id, epoch, base_sequence));
        }
    }

    /// The RecordBatch v2 bytes, encoded (and compressed) on first use and kept for retries.
    pub fn encoded(&mut self, compression: Compression) -> Bytes {
        if let Some(b) = &self.encoded {
            return b.clone();
        }
        let mut header = BatchHeader::new(compression, self.base_timestamp, self.max_timestamp);
        if let Some((id, epoch, sequence)) = self.producer {
            header.producer_id = id;
            header.producer_epoch = epoch;
            header.base_sequence = sequence;
        }
        let batch = RecordBatch { header, records: std::mem::take(&mut self.records) };
        let bytes = Bytes::from(batch.encode());
        self.encoded = Some(bytes.clone());
        bytes
    }
}

/// What [`Accumulator::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    /// The batch the record went into.
    pub batch_id: u64,
    /// The record's encoded size.
    pub bytes: usize,
    /// A new batch was opened for it.
    pub new_batch: bool,
    /// Its batch is now full.
    pub batch_full: bool,
}

/// What to send now.
#[derive(Debug)]
pub(crate) struct Drained<T, L> {
    /// Batches, with their leader, in the order to send them.
    pub sends: Vec<(L, Batch<T>)>,
    /// Some ready batch has no known leader: metadata should be refreshed.
    pub leaderless: bool,
    /// When something will next become ready or expire, if anything waits.
    pub next_wakeup: Option<Instant>,
}

/// What became of a batch that failed with a retriable error.
#[derive(Debug)]
pub(crate) enum Retry<T> {
    /// Back in its queue.
    Queued,
    /// `delivery.timeout.ms` has passed: fail it.
    Expired(Batch<T>),
    /// `retries` are used up: fail it with the error.
    OutOfRetries(Batch<T>),
}

#[derive(Debug)]
struct PartitionQueue<T> {
    queue: VecDeque<Batch<T>>,
    in_flight: usize,
    /// A batch sent again after a failure is in flight: nothing else may go meanwhile.
    retry_in_flight: bool,
}

impl<T> Default for PartitionQueue<T> {
    fn default() -> Self {
        PartitionQueue { queue: VecDeque::new(), in_flight: 0, retry_in_flight: false }
    }
}

/// Batches being built and waiting, per partition.
#[derive(Debug)]
pub(crate) struct Accumulator<T> {
    limits: Limits,
    topics: HashMap<Arc<str>, BTreeMap<i32, PartitionQueue<T>>>,
    next_id: u64,
    incomplete: BTreeSet<u64>,
    flush_until: u64,
    closing: bool,
    /// Batches handed out and not returned, over every partition.
    in_flight: usize,
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl<T> Accumulator<T> {
    pub fn new(limits: Limits) -> Self {
        Accumulator {
            limits,
            topics: HashMap::new(),
            next_id: 0,
            incomplete: BTreeSet::new(),
            flush_until: 0,
            closing: false,
            in_flight: 0,
        }
    }

    /// The topic's shared name: the stored one when the topic is known (no allocation).
    fn topic_key(&self, topic: &str) -> Arc<str> {
        self.topics.get_key_value(topic).map(|(k, _)| k.clone()).unwrap_or_else(|| Arc::from(topic))
    }

    fn queue_mut(&mut self, topic: &str, partition: i32) -> &mut PartitionQueue<T> {
        let key = self.topic_key(topic);
        self.topics.entry(key).or_default().entry(partition).or_default()
    }

    fn existing_queue(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionQueue<T>> {
        self.topics.get_mut(topic)?.get_mut(&partition)
    }

    /// Adds a record to `topic`-`partition`'s open batch (opening one if needed).
    pub fn append(
        &mut self,
        topic: &str,
        partition: i32,
        record: NewRecord,
        thunk: T,
        now: Instant,
    ) -> Appended {
        let limit = self.limits.batch_limit();
        let id = self.next_id;
        let q = self.queue_mut(topic, partition);
        if let Some(b) = q.queue.back_mut().filter(|b| !b.closed) {
            let offset_delta = b.records.len() as i32;
            let size = record_size(
                offset_delta,
                record.timestamp.wrapping_sub(b.base_timestamp),
                record.key.as_deref(),
                record.value.as_deref(),
                &record.headers,
            );
            if b.size + size <= limit {
                b.push(offset_delta, record, thunk, size);
                return Appended {
                    batch_id: b.id,
                    bytes: size,
                    new_batch: false,
                    batch_full: b.is_full(limit),
                };
            }
            b.closed = true;
        }
        let size = record_size(0, 0, record.key.as_deref(), record.value.as_deref(), &record.headers);
        let mut b = Batch {
            id,
            topic: self.topic_key(topic),
            partition,
            records: Vec::new(),
            timestamps: Vec::new(),
            thunks: Vec::new(),
            size: HEADER_LEN,
            created: now,
            base_timestamp: record.timestamp,
            max_timestamp: record.timestamp,
            closed: false,
            attempts: 0,
            retry_at: None,
            last_error: None,
            encoded: None,
            producer: None,
        };
        b.push(0, record, thunk, size);
        let batch_full = b.is_full(limit);
        self.queue_mut(topic, partition).queue.push_back(b);
        self.next_id += 1;
        self.incomplete.insert(id);
        Appended { batch_id: id, bytes: size, new_batch: true, batch_full }
    }

    /// Whether every batch of the partition is full or sent (Kafka's `allBatchesFull`, which
    /// lets the sticky partitioner move on).
    pub fn all_batches_full(&self, topic: &str, partition: i32) -> bool {
        let limit = self.limits.batch_limit();
        self.topics
            .get(topic)
            .and_then(|parts| parts.get(&partition))
            .and_then(|q| q.queue.back())
            .is_none_or(|b| b.is_full(limit))
    }

    /// Takes the batches to send now, with their leaders (`leader` gives a partition's, if
    /// known). `urgent` makes every batch ready (senders are waiting for buffer memory).
    pub fn drain<L>(
        &mut self,
        now: Instant,
        urgent: bool,
        mut leader: impl FnMut(&str, i32) -> Option<L>,
    ) -> Drained<T, L> {
        let limits = &self.limits;
        let limit = limits.batch_limit();
        let all_ready = urgent || self.closing;
        let flush_until = self.flush_until;
        let mut out = Drained { sends: Vec::new(), leaderless: false, next_wakeup: None };
        for (topic, parts) in &mut self.topics {
            for (&partition, q) in parts.iter_mut() {
                while let Some(front) = q.queue.front() {
                    if q.retry_in_flight {
                        break;
                    }
                    let retried = front.retry_at.is_some();
                    if let Some(at) = front.retry_at {
                        // Recovery: alone, after everything in flight came back, after backoff.
                        if q.in_flight > 0 {
                            break;
                        }
                        if now < at {
                            out.next_wakeup = earliest(out.next_wakeup, at);
                            break;
                        }
                    } else {
                        if q.in_flight >= limits.max_in_flight {
                            break;
                        }
                        let linger_done = front.created + limits.linger;
                        let ready = all_ready
                            || q.queue.len() > 1
                            || front.is_full(limit)
                            || front.id < flush_until
                            || now >= linger_done;
                        if !ready {
                            out.next_wakeup = earliest(out.next_wakeup, linger_done);
                            break;
                        }
                    }
                    let Some(to) = leader(topic, partition) else {
                        out.leaderless = true;
                        break;
                    };
                    let Some(mut batch) = q.queue.pop_front() else { break };
                    batch.closed = true;
                    batch.attempts += 1;
                    q.in_flight += 1;
                    out.sends.push((to, batch));
                    if retried {
                        q.retry_in_flight = true;
                        break;
                    }
                }
                if let Some(front) = q.queue.front() {
                    out.next_wakeup = earliest(out.next_wakeup, front.created + limits.delivery_timeout);
                }
            }
        }
        self.in_flight += out.sends.len();
        out
    }

    /// Removes and returns queued batches (not those in flight) whose delivery timeout has
    /// passed.
    pub fn expire(&mut self, now: Instant) -> Vec<Batch<T>> {
        let timeout = self.limits.delivery_timeout;
        let mut expired = Vec::new();
        for parts in self.topics.values_mut() {
            for q in parts.values_mut() {
                // A queue is in creation order (a retried batch goes back to its place by id),
                // so its expired batches are at its front: a full buffer costs one look per
                // partition, not one per batch.
                while q.queue.front().is_some_and(|b| now >= b.created + timeout) {
                    expired.extend(q.queue.pop_front());
                }
            }
        }
        for b in &expired {
            self.incomplete.remove(&b.id);
        }
        expired
    }

    /// Removes and returns every queued batch (not those in flight): the producer cannot
    /// send them at all (it was refused its producer id).
    pub fn take_queued(&mut self) -> Vec<Batch<T>> {
        let mut taken = Vec::new();
        for parts in self.topics.values_mut() {
            for q in parts.values_mut() {
                taken.extend(q.queue.drain(..));
            }
        }
        for b in &taken {
            self.incomplete.remove(&b.id);
        }
        taken
    }

    fn returned(&mut self, batch: &Batch<T>) {
        let mut returned = false;
        if let Some(q) = self.existing_queue(&batch.topic, batch.partition) {
            if q.in_flight > 0 {
                q.in_flight -= 1;
                returned = true;
            }
            if batch.retry_at.is_some() {
                q.retry_in_flight = false;
            }
        }
        if returned {
            self.in_flight -= 1;
        }
    }

    /// A batch handed out by [`drain`](Self::drain) is done: acknowledged, or failed for good.
    pub fn complete(&mut self, batch: &Batch<T>) {
        self.returned(batch);
        self.incomplete.remove(&batch.id);
    }

    /// A batch handed out by [`drain`](Self::drain) failed with a retriable error.
    pub fn retry(&mut self, mut batch: Batch<T>, error: String, now: Instant) -> Retry<T> {
        self.returned(&batch);
        batch.last_error = Some(error);
        if now >= batch.created + self.limits.delivery_timeout {
            self.incomplete.remove(&batch.id);
            return Retry::Expired(batch);
        }
        if batch.attempts > self.limits.retries {
            self.incomplete.remove(&batch.id);
            return Retry::OutOfRetries(batch);
        }
        batch.retry_at = Some(now + self.limits.retry_backoff);
        let topic = batch.topic.clone();
        let q = self.queue_mut(&topic, batch.partition);
        let at = q.queue.iter().position(|b| b.id > batch.id).unwrap_or(q.queue.len());
        q.queue.insert(at, batch);
        Retry::Queued
    }

    /// Makes every batch that exists now ready; returns the mark to pass to
    /// [`flushed`](Self::flushed).
    pub fn begin_flush(&mut self) -> u64 {
        self.flush_until = self.flush_until.max(self.next_id);
        self.next_id
    }

    /// Whether every batch made before [`begin_flush`](Self::begin_flush) returned `mark` is
    /// done.
    pub fn flushed(&self, mark: u64) -> bool {
        self.incomplete.first().is_none_or(|&id| id >= mark)
    }

    /// From now on every batch is ready at once.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Whether no batch is waiting or in flight.
    pub fn is_empty(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// Batches sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl<T> Batch<T> {
    fn push(&mut self, offset_delta: i32, record: NewRecord, thunk: T, size: usize) {
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        self.records.push(Record {
            offset_delta,
            timestamp_delta: record.timestamp.wrapping_sub(self.base_timestamp),
            key: record.key,
            value: record.value,
            headers: record.headers,
        });
        self.timestamps.push(record.timestamp);
        self.thunks.push(thunk);
        self.size += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            batch_size: 200,
            max_request_size: 1000,
            linger: Duration::from_millis(10),
            max_in_flight: 2,
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(10),
            retries: 3,
        }
    }

    fn rec(value_len: usize) -> NewRecord {
        NewRecord {
            key: None,
            value: Some(Bytes::from(vec![7u8; value_len])),
            headers: vec![],
            timestamp: 1_000,
        }
    }

    fn leader(_: &str, _: i32) -> Option<u8> {
        Some(1)
    }

    fn ids<T>(d: &Drained<T, u8>) -> Vec<u64> {
        d.sends.iter().map(|(_, b)| b.id).collect()
    }

    #[test]
    fn record_sizes_are_the_encoded_sizes() {
        let headers = vec![
            Header { key: "h".into(), value: Some(Bytes::from("v")) },
            Header { key: "n".into(), value: None },
        ];
        let mut acc = Accumulator::new(Limits { batch_size: 1 << 20, max_request_size: 1 << 20, ..limits() });
        let t0 = Instant::now();
        for i in 0..50u8 {
            let r = NewRecord {
                key: (i % 2 == 0).then(|| Bytes::from(vec![i; i as usize])),
                value: (i % 3 != 0).then(|| Bytes::from(vec![i; 3 * i as usize])),
                headers: if i % 4 == 0 { headers.clone() } else { vec![] },
                timestamp: 1_700_000_000_000 + i64::from(i) * 1000 - 7000,
            };
            acc.append("t", 0, r, i, t0);
        }
        let mut d = acc.drain(t0 + Duration::from_secs(1), false, leader);
        let (_, mut batch) = d.sends.pop().expect("one batch");
        let size = batch.size();
        let bytes = batch.encoded(Compression::None);
        assert_eq!(bytes.len(), size, "estimate == encoding");
        let back = RecordBatch::decode(&bytes, 1 << 20).expect("decodes");
        assert_eq!(back.records.len(), 50);
        assert_eq!(back.header.base_timestamp, 1_700_000_000_000 - 7000);
        assert_eq!(back.header.max_timestamp, 1_700_000_000_000 + 42_000);
        assert_eq!(batch.timestamps[3], 1_700_000_000_000 - 4000);
    }

    #[test]
    fn a_batch_closes_when_the_next_record_would_pass_batch_size() {
        let mut acc = Accumulator::new(limits());
        let t0 = Instant::now();
        // Each record: 1 (attrs) + 1 + 1 + 1 (null key) + 1 + 50 + 1 = 56 bytes + 1 length byte = 57.
        let a = acc.append("t", 0, rec(50), 0, t0);
        assert_eq!(a.bytes, 57);
        assert!(a.new_batch && !a.batch_full);
        let b = acc.append("t", 0, rec(50), 1, t0);
        assert!(!b.new_batch, "61 + 57 + 57 = 175 <= 200");
        let c = acc.append("t", 0, rec(50), 2, t0);
        assert!(c.new_batch, "175 + 57 > 200: a new batch");
        assert_ne!(c.batch_id, a.batch_id);
        assert!(!acc.all_batches_full("t", 0), "the new batch is open");
        // Not ready: the first batch is closed (not last), the second lingers.
        let d = acc.drain(t0, false, leader);
        assert_eq!(ids(&d), vec![a.batch_id], "the closed batch goes at once");
        assert_eq!(d.next_wakeup, Some(t0 + Duration::from_millis(10)), "the open one after linger.ms");
        assert_eq!(d.sends[0].1.len(), 2);
    }

    #[test]
    fn a_record_larger_than_batch_size_gets_a_batch_of_its_own_that_is_full_at_once() {
        let mut acc = Accumulator::new(limits());
        let t0 = Instant::now();
        acc.append("t", 0, rec(10), 0, t0);
        let big = acc.append("t", 0, rec(500), 1, t0);
        assert!(big.new_batch && big.batch_full);
        assert!(acc.all_batches_full("t", 0));
        let after = acc.append("t", 0, rec(10), 2, t0);
        assert!(after.new_batch, "nothing joins a full batch");
        let d = acc.drain(t0, false, leader);
        assert_eq!(
            d.sends.iter().map(|(_, b)| b.len()).collect::<Vec<_>>(),
            vec![1, 1],
            "small, then big; the last lingers"
        );
    }

    #[test]
    fn batch_size_zero_sends_every_record_alone() {
        let mut acc = Accumulator::new(Limits { batch_size: 0, ..limits() });
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(acc.append("t", 0, rec(1), i, t0).batch_full);
        }
        let d = acc.drain(t0, false, leader);
        assert_eq!(d.sends.len(), 2, "max.in.flight = 2");
    }

    #[test]
    fn linger_readiness_is_a_matter_of_now() {
        let mut acc = Accumulator::new(limits());
        let t0 = Instant::now();
        acc.append("t", 0, rec(10), 0, t0);
        acc.append("t", 0, rec(10), 1, t0 + Duration::from_millis(8));
        let d = acc.drain(t0 + Duration::from_millis(9), false, leader);
        assert!(d.sends.is_empty());
        assert_eq!(
            d.next_wakeup,
            Some(t0 + Duration::from_millis(10)),
            "linger counts from the first record"
        );
        let d = acc.drain(t0 + Duration::from_millis(10), false, leader);
        assert_eq!(d.sends.len(), 1);
        assert_eq!(d.sends[0].1.len(), 2);
        assert_eq!(d.next_wakeup, None, "nothing left");
    }

    #[test]
    fn flush_close_and_memory_pressure_make_batches_ready_now() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(limits());
        acc.append("t", 0, rec(10), 0, t0);
        let mark = acc.begin_flush();
        let later = acc.append("t", 1, rec(10), 1, t0);
        let d = acc.drain(t0, false, leader);
        assert_eq!(d.sends.len(), 1, "the batch made before the flush goes; the later one lingers");
        assert!(!acc.flushed(mark));
        acc.complete(&d.sends[0].1);
        assert!(acc.flushed(mark), "the later batch does not hold up the flush");
        assert!(!acc.is_empty());
        let d = acc.drain(t0, true, leader);
        assert_eq!(ids(&d), vec![later.batch_id], "urgent");
        let mut acc = Accumulator::new(limits());
        acc.append("t", 0, rec(10), 0, t0);
        acc.close();
        assert_eq!(acc.drain(t0, false, leader).sends.len(), 1, "closing");
    }

    #[test]
    fn at_most_max_in_flight_batches_per_partition_and_none_without_a_leader() {
        let mut acc = Accumulator::new(Limits { batch_size: 0, ..limits() });
        let t0 = Instant::now();
        for i in 0..5 {
            acc.append("t", 0, rec(1), i, t0);
            acc.append("u", 0, rec(1), i, t0);
        }
        let d = acc.drain(t0, false, |topic: &str, _| (topic == "t").then_some(1u8));
        assert_eq!(d.sends.len(), 2, "two of t; none of u");
        assert!(d.leaderless);
        assert_eq!(acc.in_flight(), 2);
        let d2 = acc.drain(t0, false, |topic: &str, _| (topic == "t").then_some(1u8));
        assert!(d2.sends.is_empty(), "t has two in flight");
        acc.complete(&d.sends[0].1);
        assert_eq!(acc.in_flight(), 1);
        let d3 = acc.drain(t0, false, |topic: &str, _| (topic == "t").then_some(1u8));
        assert_eq!(d3.sends.len(), 1);
        assert_eq!(acc.in_flight(), 2);
        assert!(d3.sends[0].1.id > d.sends[1].1.id, "in order");
    }

    #[test]
    fn after_a_retriable_failure_the_partition_resends_in_order_one_at_a_time() {
        let mut acc = Accumulator::new(Limits { batch_size: 0, max_in_flight: 5, ..limits() });
        let t0 = Instant::now();
        for i in 0..5 {
            acc.append("t", 0, rec(1), i, t0);
        }
        let mut d = acc.drain(t0, false, leader);
        assert_eq!(ids(&d), vec![0, 1, 2, 3, 4]);
        let mut flying: Vec<Batch<i32>> = d.sends.drain(..).map(|(_, b)| b).collect();
        let b4 = flying.pop().expect("4");
        let b3 = flying.pop().expect("3");
        let b2 = flying.pop().expect("2");
        let b1 = flying.pop().expect("1");
        let b0 = flying.pop().expect("0");
        // Batch 5, behind them all.
        acc.append("t", 0, rec(1), 5, t0);
        // Batch 1 fails; 0 succeeds; 2 and 3 fail; 4 succeeds (it was in flight already).
        let t1 = t0 + Duration::from_millis(1);
        assert!(matches!(acc.retry(b1, "not leader".into(), t1), Retry::Queued));
        assert!(
            acc.drain(t1 + Duration::from_secs(1), false, leader).sends.is_empty(),
            "wait for all in flight"
        );
        acc.complete(&b0);
        assert!(matches!(acc.retry(b3, "not leader".into(), t1), Retry::Queued));
        assert!(matches!(acc.retry(b2, "not leader".into(), t1), Retry::Queued));
        assert!(acc.drain(t1 + Duration::from_secs(1), false, leader).sends.is_empty(), "4 still in flight");
        acc.complete(&b4);
        let d = acc.drain(t1, false, leader);
        assert!(d.sends.is_empty(), "backoff");
        assert_eq!(d.next_wakeup, Some(t1 + Duration::from_millis(100)));
        let t2 = t1 + Duration::from_millis(100);
        let mut d = acc.drain(t2, false, leader);
        assert_eq!(ids(&d), vec![1], "the failed batch alone");
        let (_, r1) = d.sends.pop().expect("1");
        assert_eq!(r1.attempts(), 2);
        assert!(acc.drain(t2, false, leader).sends.is_empty(), "nothing until it succeeded");
        // It fails again: still first in line.
        let t3 = t2 + Duration::from_millis(5);
        assert!(matches!(acc.retry(r1, "not leader".into(), t3), Retry::Queued));
        let mut d = acc.drain(t3 + Duration::from_millis(100), false, leader);
        assert_eq!(ids(&d), vec![1]);
        acc.complete(&d.sends.pop().expect("1").1);
        let t4 = t3 + Duration::from_millis(100);
        let mut d = acc.drain(t4, false, leader);
        assert_eq!(ids(&d), vec![2], "then the next failed one, alone");
        acc.complete(&d.sends.pop().expect("2").1);
        let mut d = acc.drain(t4, false, leader);
        assert_eq!(ids(&d), vec![3]);
        acc.complete(&d.sends.pop().expect("3").1);
        let d = acc.drain(t4, false, leader);
        assert_eq!(ids(&d), vec![5], "then normal batches again");
    }

    #[test]
    fn a_batch_fails_after_its_retries_or_its_delivery_timeout() {
        let mut acc = Accumulator::new(Limits { batch_size: 0, retries: 1, ..limits() });
        let t0 = Instant::now();
        acc.append("t", 0, rec(1), 0, t0);
        let (_, b) = acc.drain(t0, false, leader).sends.pop().expect("first attempt");
        assert!(matches!(acc.retry(b, "e".into(), t0), Retry::Queued), "one retry allowed");
        let (_, b) = acc.drain(t0 + Duration::from_secs(1), false, leader).sends.pop().expect("retry");
        match acc.retry(b, "e2".into(), t0 + Duration::from_secs(1)) {
            Retry::OutOfRetries(b) => assert_eq!(b.last_error.as_deref(), Some("e2")),
            other => panic!("expected OutOfRetries, got {other:?}"),
        }
        assert!(acc.is_empty());
        acc.append("t", 0, rec(1), 1, t0);
        let (_, b) = acc.drain(t0, false, leader).sends.pop().expect("sent");
        assert!(matches!(acc.retry(b, "late".into(), t0 + Duration::from_secs(10)), Retry::Expired(_)));
        assert!(acc.is_empty());
    }

    #[test]
    fn queued_batches_expire_after_the_delivery_timeout_and_wake_the_sender_for_it() {
        let mut acc = Accumulator::new(limits());
        let t0 = Instant::now();
        acc.append("t", 0, rec(1), 0, t0);
        acc.append("t", 1, rec(1), 1, t0 + Duration::from_secs(5));
        let d = acc.drain(t0 + Duration::from_secs(6), false, |_, _| None::<u8>);
        assert!(d.leaderless);
        assert_eq!(d.next_wakeup, Some(t0 + Duration::from_secs(10)), "the first expiry");
        assert!(acc.expire(t0 + Duration::from_millis(9_999)).is_empty());
        let gone = acc.expire(t0 + Duration::from_secs(10));
        assert_eq!(gone.iter().map(|b| b.thunks.clone()).collect::<Vec<_>>(), vec![vec![0]]);
        assert!(!acc.is_empty());
        assert_eq!(acc.expire(t0 + Duration::from_secs(15)).len(), 1);
        assert!(acc.is_empty());
    }

    #[test]
    fn a_retried_batch_goes_back_to_the_front_and_expires_first() {
        // `expire` looks at each queue's front only: that needs the queue in creation order,
        // a retried batch included.
        let mut acc = Accumulator::new(limits());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        acc.append("t", 0, rec(150), 0, t0);
        let (_, a) = acc.drain(t0 + Duration::from_millis(10), false, leader).sends.pop().expect("sent");
        acc.append("t", 0, rec(150), 1, t0 + s(1));
        acc.append("t", 0, rec(150), 2, t0 + s(2));
        assert!(matches!(acc.retry(a, "e".into(), t0 + s(3)), Retry::Queued));
        let thunks = |bs: Vec<Batch<i32>>| bs.into_iter().flat_map(|b| b.thunks).collect::<Vec<_>>();
        assert!(acc.expire(t0 + Duration::from_millis(9_999)).is_empty());
        assert_eq!(thunks(acc.expire(t0 + s(10))), vec![0]);
        assert_eq!(thunks(acc.expire(t0 + s(11))), vec![1]);
        assert_eq!(thunks(acc.expire(t0 + s(12))), vec![2]);
        assert!(acc.is_empty());
    }

    #[test]
    fn a_failed_batch_takes_no_new_records() {
        let mut acc = Accumulator::new(limits());
        let t0 = Instant::now();
        let first = acc.append("t", 0, rec(1), 0, t0);
        let (_, b) = acc.drain(t0 + Duration::from_millis(10), false, leader).sends.pop().expect("sent");
        assert!(matches!(acc.retry(b, "e".into(), t0), Retry::Queued));
        let next = acc.append("t", 0, rec(1), 1, t0);
        assert!(next.new_batch && next.batch_id != first.batch_id);
    }
}
