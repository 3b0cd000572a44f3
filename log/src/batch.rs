//! RecordBatch v2 (magic 2), byte for byte as Kafka stores and sends it.
//!
//! ```text
//! baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 (2)
//! crc uint32 (CRC-32C of everything after it)
//! attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64
//! producerId int64 | producerEpoch int16 | baseSequence int32 | recordsCount int32
//! records (compressed together when attributes bits 0-2 name a codec)
//!
//! record: length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
//!         keyLength varint (-1 null) | key | valueLength varint (-1 null) | value
//!         headersCount varint | (keyLength varint | key utf8 | valueLength varint | value)*
//! ```
//!
//! Integers are big-endian; varints are zig-zag. A batch that is cut short, fails its CRC,
//! has another magic, names an unknown codec or holds malformed records is a typed
//! [`BatchError`], never a panic.

use bytes::Bytes;

use crate::compression::{Compression, CompressionError};
use crate::varint;

/// Bytes before the records.
pub const HEADER_LEN: usize = 61;
/// Offset of the `partitionLeaderEpoch` field (before the CRC's range).
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Offset of the CRC field; the CRC covers everything from `CRC_START`.
const CRC_OFFSET: usize = 17;
pub(crate) const CRC_START: usize = 21;
/// Offset of the `lastOffsetDelta` field (under the CRC).
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Bytes of `baseOffset` and `batchLength` (not counted in `batchLength`).
pub const LOG_OVERHEAD: usize = 12;

/// How `baseTimestamp` / `maxTimestamp` were set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// By the producer.
    CreateTime,
    /// By the broker when appending.
    LogAppendTime,
}

/// Everything in a batch's fixed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Leader epoch of the partition leader that appended it.
    pub partition_leader_epoch: i32,
    /// Per-batch compression.
    pub compression: Compression,
    /// Timestamp type (attribute bit 3).
    pub timestamp_type: TimestampType,
    /// Part of a transaction (bit 4).
    pub is_transactional: bool,
    /// A control batch (bit 5).
    pub is_control: bool,
    /// Offset delta of the last record.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id (-1 if none).
    pub producer_id: i64,
    /// Producer epoch (-1 if none).
    pub producer_epoch: i16,
    /// Sequence number of the first record (-1 if none).
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

/// One record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// UTF-8 key.
    pub key: String,
    /// Value, or null.
    pub value: Option<Bytes>,
}

/// One record, as stored (deltas relative to the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Offset minus the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Key, or null.
    pub key: Option<Bytes>,
    /// Value, or null (a tombstone for compacted topics).
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
}

/// A whole batch: header and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    /// The fixed header. `records_count`, `last_offset_delta` and the CRC are computed by
    /// [`RecordBatch::encode`] from the records.
    pub header: BatchHeader,
    /// The records.
    pub records: Vec<Record>,
}

/// Why bytes are not a valid batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the batch needs.
    #[error("batch cut short: {need} bytes needed, {have} present")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// `batchLength` is impossible.
    #[error("batch length {0} is invalid")]
    BadLength(i32),
    /// Not magic 2.
    #[error("record batch magic {0} is not supported (only v2, magic 2)")]
    BadMagic(i8),
    /// The stored CRC does not match the bytes.
    #[error("batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The CRC in the batch.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// Compression failed.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The offsets the header claims are impossible: a negative last offset delta, or a
    /// last offset past the largest offset there can be.
    #[error("batch offsets are invalid: base offset {base_offset}, last offset delta {last_offset_delta}")]
    BadOffsets {
        /// `baseOffset`.
        base_offset: i64,
        /// `lastOffsetDelta`.
        last_offset_delta: i32,
    },
    /// A record is malformed.
    #[error("record {index} is malformed: {reason}")]
    BadRecord {
        /// Position in the batch.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The header's record count disagrees with the records.
    #[error("batch says {declared} records but holds {found}")]
    CountMismatch {
        /// `recordsCount`.
        declared: i32,
        /// Records decoded.
        found: usize,
    },
}

impl RecordBatch {
    /// Encodes the batch; `records_count` and `last_offset_delta` come from the records.
    pub fn encode(&self) -> Vec<u8> {
        // Uncompressed records are encoded straight after the header (no intermediate
        // buffer: on a producer's hot path each copy of the payload counts).
        let compressed = match self.header.compression {
            Compression::None => None,
            codec => {
                let mut body = Vec::new();
                for r in &self.records {
                    encode_record(&mut body, r);
                }
                Some(codec.compress(&body))
            }
        };
        let h = &self.header;
        let capacity =
            compressed.as_ref().map_or_else(|| self.records.iter().map(encoded_len).sum(), Vec::len);
        let mut out = Vec::with_capacity(HEADER_LEN + capacity);
        out.extend_from_slice(&h.base_offset.to_be_bytes());
        out.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + capacity) as i32).to_be_bytes());
        out.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0; 4]); // CRC, filled below
        let mut attributes = i16::from(h.compression.id());
        if h.timestamp_type == TimestampType::LogAppendTime {
            attributes |= 1 << 3;
        }
        if h.is_transactional {
            attributes |= 1 << 4;
        }
        if h.is_control {
            attributes |= 1 << 5;
        }
        out.extend_from_slice(&attributes.to_be_bytes());
        let last_offset_delta = self.records.last().map(|r| r.offset_delta).unwrap_or(0);
        out.extend_from_slice(&last_offset_delta.to_be_bytes());
        out.extend_from_slice(&h.base_timestamp.to_be_bytes());
        out.extend_from_slice(&h.max_timestamp.to_be_bytes());
        out.extend_from_slice(&h.producer_id.to_be_bytes());
        out.extend_from_slice(&h.producer_epoch.to_be_bytes());
        out.extend_from_slice(&h.base_sequence.to_be_bytes());
        out.extend_from_slice(&(self.records.len() as i32).to_be_bytes());
        match &compressed {
            Some(records) => out.extend_from_slice(records),
            None => {
                for r in &self.records {
                    encode_record(&mut out, r);
                }
            }
        }
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[CRC_OFFSET..CRC_START].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses, verifies and decodes one batch from the front of `bytes`.
    pub fn decode(bytes: &[u8], max_uncompressed: usize) -> Result<RecordBatch, BatchError> {
        let view = BatchView::parse(bytes)?;
        let records = view.records(max_uncompressed)?;
        Ok(RecordBatch { header: view.header, records })
    }
}

/// A batch without records that still covers `header`'s offsets (`base_offset` to
/// `base_offset + last_offset_delta`), uncompressed, as Kafka's cleaner writes it when it
/// removes every record of a batch whose offsets must stay accounted for.
pub(crate) fn encode_empty(header: &BatchHeader) -> Vec<u8> {
    let last_offset_delta = header.last_offset_delta;
    let header = BatchHeader { compression: Compression::None, ..header.clone() };
    let mut out = RecordBatch { header, records: vec![] }.encode();
    set_last_offset_delta(&mut out, last_offset_delta);
    out
}

/// Sets the `lastOffsetDelta` of the encoded batch at the front of `bytes` and recomputes
/// its CRC (the field is under it). The cleaner keeps a batch's original last offset delta
/// when it removes the batch's last records, as Kafka's does (`overrideLastOffset`): the
/// batch still covers its offsets, and its last producer sequence
/// (`baseSequence + lastOffsetDelta`) stays what the producer sent, so that the producer
/// state rebuilt from the headers is right. `bytes` shorter than a header are left alone.
pub(crate) fn set_last_offset_delta(bytes: &mut [u8], last_offset_delta: i32) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    bytes[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&last_offset_delta.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[CRC_START..]);
    bytes[CRC_OFFSET..CRC_START].copy_from_slice(&crc.to_be_bytes());
}

/// Most bytes a batch may decompress to when it is recompressed for `compression.type`.
pub const MAX_RECOMPRESS_BYTES: usize = 64 << 20;

/// Re-encodes, with `target`, every batch in `bytes` (back to back) that is in another codec,
/// keeping every header field and record; control batches stay as they are (Kafka never
/// compresses them). `None` when every batch is already in `target`: nothing to rewrite.
/// Each batch is CRC-checked first; decompression is bounded by [`MAX_RECOMPRESS_BYTES`].
pub fn recompress(bytes: &[u8], target: Compression) -> Result<Option<Vec<u8>>, BatchError> {
    let mut at = 0;
    let mut out: Option<Vec<u8>> = None;
    while at < bytes.len() {
        let view = BatchView::parse(&bytes[at..])?;
        let len = view.len();
        let keep = view.header.compression == target || view.header.is_control;
        match (&mut out, keep) {
            (None, true) => {}
            (None, false) => {
                let mut o = Vec::with_capacity(bytes.len());
                o.extend_from_slice(&bytes[..at]);
                out = Some(o);
            }
            (Some(o), true) => o.extend_from_slice(view.bytes),
            (Some(_), false) => {}
        }
        if !keep {
            let records = view.records(MAX_RECOMPRESS_BYTES)?;
            let header = BatchHeader { compression: target, ..view.header };
            if let Some(o) = &mut out {
                o.extend_from_slice(&RecordBatch { header, records }.encode());
            }
        }
        at += len;
    }
    Ok(out)
}

/// A verified batch whose records have not been decoded (cheap: no decompression).
#[derive(Debug, Clone)]
pub struct BatchView<'a> {
    /// The header.
    pub header: BatchHeader,
    /// The whole batch's bytes.
    pub bytes: &'a [u8],
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// The header of a batch as a producer without idempotence or transactions writes it:
    /// offsets from 0 (the log assigns them), no leader epoch yet, `CreateTime` timestamps,
    /// no producer id, epoch or sequence. The record count and last offset delta are taken
    /// from the records when the batch is encoded.
    pub fn new(compression: Compression, base_timestamp: i64, max_timestamp: i64) -> Self {
        BatchHeader {
            base_offset: 0,
            partition_leader_epoch: 0,
            compression,
            timestamp_type: TimestampType::CreateTime,
            is_transactional: false,
            is_control: false,
            last_offset_delta: 0,
            base_timestamp,
            max_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 0,
        }
    }

    /// Reads the fixed header at the front of `bytes` without checking the CRC (which needs
    /// the whole batch) and returns it with the batch's total size in bytes, so a scan can
    /// step from batch to batch reading only headers. Needs [`HEADER_LEN`] bytes.
    pub fn parse_prefix(bytes: &[u8]) -> Result<(BatchHeader, usize), BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::Truncated { need: HEADER_LEN, have: bytes.len() });
        }
        let batch_length = be_i32(bytes, 8);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(batch_length));
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        let magic = bytes[16] as i8;
        if magic != 2 {
            return Err(BatchError::BadMagic(magic));
        }
        let b = bytes;
        let attributes = be_i16(b, 21);
        let header = BatchHeader {
            base_offset: be_i64(b, 0),
            partition_leader_epoch: be_i32(b, PARTITION_LEADER_EPOCH_OFFSET),
            compression: Compression::from_id((attributes & 0x07) as u8)?,
            timestamp_type: if attributes & (1 << 3) != 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            is_transactional: attributes & (1 << 4) != 0,
            is_control: attributes & (1 << 5) != 0,
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        };
        let (base_offset, last_offset_delta) = (header.base_offset, header.last_offset_delta);
        if last_offset_delta < 0 || base_offset.checked_add(i64::from(last_offset_delta)).is_none() {
            return Err(BatchError::BadOffsets { base_offset, last_offset_delta });
        }
        Ok((header, total))
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        // Parsing refuses headers where this overflows; saturate for hand-built ones.
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }
}

/// The CRC stored in a batch whose header is at the front of `bytes` (at least
/// [`HEADER_LEN`] bytes); it covers `bytes[CRC_START..]` up to the batch's end.
pub(crate) fn stored_crc(bytes: &[u8]) -> u32 {
    be_i32(bytes, CRC_OFFSET) as u32
}

/// Rewrites the base offset of the batch at the front of `bytes` (at least 8 bytes). The
/// field lies before the CRC's range, so the batch stays valid: this is how a log assigns
/// offsets without re-encoding what the producer sent.
pub fn set_base_offset(bytes: &mut [u8], base_offset: i64) {
    bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch of the batch at the front of `bytes` (at least 16
/// bytes). Like the base offset, the field lies before the CRC's range (which starts at the
/// attributes), so the batch stays valid: this is how a leader stamps its epoch into what
/// a producer sent.
pub fn set_partition_leader_epoch(bytes: &mut [u8], epoch: i32) {
    bytes[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Iterates over the batches packed one after another in `bytes` (a fetch response's
/// records, a segment's contents), verifying each. Stops after the first error.
pub fn batches(bytes: &[u8]) -> Batches<'_> {
    Batches { rest: bytes }
}

/// The iterator returned by [`batches`].
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<BatchView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match BatchView::parse(self.rest) {
            Ok(view) => {
                self.rest = &self.rest[view.len()..];
                Some(Ok(view))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl<'a> BatchView<'a> {
    /// Parses and CRC-checks the batch at the front of `bytes` (which may hold more after
    /// it: [`BatchView::len`] says where it ends).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        let (header, total) = BatchHeader::parse_prefix(bytes)?;
        if bytes.len() < total {
            return Err(BatchError::Truncated { need: total, have: bytes.len() });
        }
        let b = &bytes[..total];
        let stored = stored_crc(b);
        let computed = crc32c::crc32c(&b[CRC_START..]);
        if stored != computed {
            return Err(BatchError::CrcMismatch { stored, computed });
        }
        Ok(BatchView { header, bytes: b })
    }

    /// Bytes the batch occupies.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the batch has no bytes (never true for a parsed batch).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }

    /// Decompresses and decodes the records.
    pub fn records(&self, max_uncompressed: usize) -> Result<Vec<Record>, BatchError> {
        let raw = &self.bytes[HEADER_LEN..];
        let body = self.header.compression.decompress(raw, max_uncompressed)?;
        let declared = self.header.records_count;
        if declared < 0 {
            return Err(BatchError::CountMismatch { declared, found: 0 });
        }
        // Each record takes at least 7 bytes: a bound before trusting the count.
        let mut records = Vec::with_capacity((declared as usize).min(body.len() / 7 + 1));
        let mut input = &body[..];
        let mut previous = -1;
        for index in 0..declared as usize {
            let record = decode_record(&mut input, index)?;
            // Offsets grow within a batch (with gaps after compaction) and end at the last
            // offset the header claims; anything else would make the offsets of the batch
            // mean nothing (found by the batch_decode fuzz target: such a batch re-encoded
            // to one that does not parse).
            if record.offset_delta <= previous || record.offset_delta > self.header.last_offset_delta {
                return Err(BatchError::BadRecord {
                    index,
                    reason: "offset delta not increasing or past the batch's last offset delta",
                });
            }
            previous = record.offset_delta;
            records.push(record);
        }
        if !input.is_empty() {
            return Err(BatchError::CountMismatch { declared, found: records.len() + 1 });
        }
        Ok(records)
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => varint::put_i32(buf, -1),
        Some(b) => {
            varint::put_i32(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
    }
}

/// Bytes of a zigzag varint.
fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// Bytes of a length-prefixed (or null) byte string.
fn bytes_len(b: Option<&[u8]>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i64) + b.len(),
    }
}

fn record_body_len(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> usize {
    let mut body = 1 + varint_len(timestamp_delta) + varint_len(i64::from(offset_delta));
    body += bytes_len(key) + bytes_len(value) + varint_len(headers.len() as i64);
    for h in headers {
        body += bytes_len(Some(h.key.as_bytes())) + bytes_len(h.value.as_deref());
    }
    body
}

/// The encoded size of one record in a batch (uncompressed), its length prefix included:
/// what a producer adds to a batch's size for it.
pub fn record_size(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> usize {
    let body = record_body_len(offset_delta, timestamp_delta, key, value, headers);
    varint_len(body as i64) + body
}

fn encoded_len(r: &Record) -> usize {
    record_size(r.offset_delta, r.timestamp_delta, r.key.as_deref(), r.value.as_deref(), &r.headers)
}

/// Appends one record: its length (computed first, so the record is written in place
/// with no intermediate buffer), then its fields.
fn encode_record(out: &mut Vec<u8>, r: &Record) {
    let body =
        record_body_len(r.offset_delta, r.timestamp_delta, r.key.as_deref(), r.value.as_deref(), &r.headers);
    varint::put_i32(out, body as i32);
    let start = out.len();
    out.push(0); // attributes (unused)
    varint::put_i64(out, r.timestamp_delta);
    varint::put_i32(out, r.offset_delta);
    put_bytes(out, r.key.as_deref());
    put_bytes(out, r.value.as_deref());
    varint::put_i32(out, r.headers.len() as i32);
    for h in &r.headers {
        put_bytes(out, Some(h.key.as_bytes()));
        put_bytes(out, h.value.as_deref());
    }
    debug_assert_eq!(out.len() - start, body, "record length computed as written");
}

fn decode_record(input: &mut &[u8], index: usize) -> Result<Record, BatchError> {
    let bad = |reason| BatchError::BadRecord { index, reason };
    let len = varint::get_i32(input).ok_or(bad("record length is not a varint"))?;
    let len = usize::try_from(len).map_err(|_| bad("negative record length"))?;
    if input.len() < len {
        return Err(bad("record cut short"));
    }
    let (mut r, rest) = input.split_at(len);
    *input = rest;
    let (_attributes, after) = r.split_first().ok_or(bad("empty record"))?;
    r = after;
    let timestamp_delta = varint::get_i64(&mut r).ok_or(bad("timestamp delta is not a varlong"))?;
    let offset_delta = varint::get_i32(&mut r).ok_or(bad("offset delta is not a varint"))?;
    let key = get_bytes(&mut r).ok_or(bad("key length or key bytes invalid"))?;
    let value = get_bytes(&mut r).ok_or(bad("value length or value bytes invalid"))?;
    let count = varint::get_i32(&mut r).ok_or(bad("header count is not a varint"))?;
    let count = usize::try_from(count).map_err(|_| bad("negative header count"))?;
    let mut headers = Vec::with_capacity(count.min(r.len() / 2 + 1));
    for _ in 0..count {
        let key = get_bytes(&mut r).ok_or(bad("header key invalid"))?.ok_or(bad("null header key"))?;
        let key = String::from_utf8(key.to_vec()).map_err(|_| bad("header key is not UTF-8"))?;
        let value = get_bytes(&mut r).ok_or(bad("header value invalid"))?;
        headers.push(Header { key, value });
    }
    if !r.is_empty() {
        return Err(bad("bytes left over after the headers"));
    }
    Ok(Record { offset_delta, timestamp_delta, key, value, headers })
}

/// Reads a varint-length-prefixed byte string; `Some(None)` for null (-1).
fn get_bytes(input: &mut &[u8]) -> Option<Option<Bytes>> {
    let len = varint::get_i32(input)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    if input.len() < len {
        return None;
    }
    let (b, rest) = input.split_at(len);
    *input = rest;
    Some(Some(Bytes::copy_from_slice(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(compression: Compression) -> BatchHeader {
        BatchHeader {
            base_offset: 1000,
            partition_leader_epoch: 7,
            ..BatchHeader::new(compression, 1_700_000_000_000, 1_700_000_000_000)
        }
    }

    fn record(i: i32) -> Record {
        Record {
            offset_delta: i,
            timestamp_delta: i64::from(i) * 3,
            key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
            value: (i % 5 != 4).then(|| Bytes::from(vec![i as u8; (i as usize * 37) % 300])),
            headers: (0..(i % 3))
                .map(|h| Header { key: format!("h{h}"), value: (h == 0).then(|| Bytes::from("v")) })
                .collect(),
        }
    }

    #[test]
    fn record_offsets_must_grow_and_end_at_the_last_offset_delta() {
        let with_deltas = |deltas: &[i32]| {
            let records = deltas.iter().map(|&d| Record { offset_delta: d, ..record(1) }).collect();
            RecordBatch { header: header(Compression::None), records }.encode()
        };
        let gaps = with_deltas(&[0, 2, 5]);
        assert_eq!(
            RecordBatch::decode(&gaps, 1 << 20).map(|b| b.records.len()).ok(),
            Some(3),
            "gaps are fine"
        );
        for bad in [&[3, 1][..], &[0, 0], &[-2, 0]] {
            let bytes = with_deltas(bad);
            assert!(
                matches!(RecordBatch::decode(&bytes, 1 << 20), Err(BatchError::BadRecord { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn a_last_offset_past_i64_max_is_a_typed_error_not_an_overflow() {
        // Found by the batch_decode fuzz target: the base offset is outside the CRC, so a
        // valid batch can claim offsets that overflow.
        let mut bytes =
            RecordBatch { header: header(Compression::None), records: (0..6).map(record).collect() }.encode();
        set_base_offset(&mut bytes, i64::MAX - 2);
        match BatchView::parse(&bytes) {
            Err(BatchError::BadOffsets { base_offset, last_offset_delta }) => {
                assert_eq!((base_offset, last_offset_delta), (i64::MAX - 2, 5))
            }
            other => panic!("expected BadOffsets, got {other:?}"),
        }
        set_base_offset(&mut bytes, i64::MAX - 5);
        assert_eq!(
            BatchView::parse(&bytes).map(|v| v.last_offset()).ok(),
            Some(i64::MAX),
            "the edge is fine"
        );
    }

    #[test]
    fn the_leader_epoch_is_rewritten_in_place_and_the_crc_still_holds() {
        let mut bytes =
            RecordBatch { header: header(Compression::Zstd), records: (0..4).map(record).collect() }.encode();
        let original = bytes.clone();
        set_partition_leader_epoch(&mut bytes, 42);
        let view = BatchView::parse(&bytes).expect("still valid");
        assert_eq!(view.header.partition_leader_epoch, 42);
        assert_eq!(BatchHeader { partition_leader_epoch: 7, ..view.header }, header_of(&original));
        assert_eq!(bytes[CRC_START..], original[CRC_START..], "nothing under the CRC changed");
        set_partition_leader_epoch(&mut bytes, -1);
        assert_eq!(BatchView::parse(&bytes).expect("valid").header.partition_leader_epoch, -1);
    }

    fn header_of(bytes: &[u8]) -> BatchHeader {
        BatchView::parse(bytes).expect("valid").header
    }

    #[test]
    fn the_layout_is_kafkas_field_for_field() {
        let mut b = RecordBatch { header: header(Compression::None), records: vec![record(0), record(1)] };
        b.header.producer_id = 42;
        b.header.producer_epoch = 3;
        b.header.base_sequence = 9;
        let bytes = b.encode();
        assert_eq!(be_i64(&bytes, 0), 1000, "baseOffset");
        assert_eq!(be_i32(&bytes, 8) as usize, bytes.len() - LOG_OVERHEAD, "batchLength");
        assert_eq!(be_i32(&bytes, 12), 7, "partitionLeaderEpoch");
        assert_eq!(bytes[16], 2, "magic");
        assert_eq!(be_i32(&bytes, 17) as u32, crc32c::crc32c(&bytes[21..]), "crc covers attributes..end");
        assert_eq!(be_i32(&bytes, 23), 1, "lastOffsetDelta");
        assert_eq!(
            (be_i64(&bytes, 43), be_i16(&bytes, 51), be_i32(&bytes, 53)),
            (42, 3, 9),
            "producer fields"
        );
        assert_eq!(be_i32(&bytes, 57), 2, "recordsCount");
        // First record (null key, empty value, no headers): body = attributes 0, tsDelta 0,
        // offsetDelta 0, keyLength -1 (zig-zag 1), valueLength 0, headerCount 0 = 6 bytes,
        // so its length varint is zig-zag(6) = 12.
        assert_eq!(&bytes[61..68], &[12, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn every_codec_round_trips_a_batch_and_flags_survive() {
        for c in
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        {
            let mut h = header(c);
            h.timestamp_type = TimestampType::LogAppendTime;
            h.is_transactional = true;
            let b = RecordBatch { header: h, records: (0..50).map(record).collect() };
            let bytes = b.encode();
            let back = RecordBatch::decode(&bytes, 1 << 20).expect("decode");
            assert_eq!(back.records, b.records, "{c:?}");
            assert_eq!(back.header.compression, c);
            assert_eq!(back.header.timestamp_type, TimestampType::LogAppendTime);
            assert!(back.header.is_transactional && !back.header.is_control);
            assert_eq!((back.header.records_count, back.header.last_offset_delta), (50, 49));
        }
    }

    #[test]
    fn damage_is_a_typed_error() {
        let bytes =
            RecordBatch { header: header(Compression::Lz4), records: (0..10).map(record).collect() }.encode();
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(BatchView::parse(&flipped), Err(BatchError::CrcMismatch { .. })));
        assert!(matches!(BatchView::parse(&bytes[..bytes.len() - 1]), Err(BatchError::Truncated { .. })));
        let mut magic = bytes.clone();
        magic[16] = 1;
        assert!(matches!(BatchView::parse(&magic), Err(BatchError::BadMagic(1))));
        let view = BatchView::parse(&bytes).expect("valid");
        assert_eq!((view.len(), view.last_offset()), (bytes.len(), 1009));
        let err = view.records(10).expect_err("over the decompression limit");
        assert!(matches!(err, BatchError::Compression(CompressionError::TooLarge { .. })), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_batches_round_trip_with_every_codec(
            codec in 0u8..5,
            records in proptest::collection::vec(
                (any::<i64>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..512)),
                 proptest::collection::vec(("[a-z]{0,8}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16))), 0..3)),
                0..40),
        ) {
            let c = Compression::from_id(codec).expect("codec");
            let records: Vec<Record> = records.into_iter().enumerate().map(|(i, (ts, k, v, hs))| Record {
                offset_delta: i as i32,
                timestamp_delta: ts,
                key: k.map(Bytes::from),
                value: v.map(Bytes::from),
                headers: hs.into_iter().map(|(key, value)| Header { key, value: value.map(Bytes::from) }).collect(),
            }).collect();
            let b = RecordBatch { header: header(c), records };
            let back = RecordBatch::decode(&b.encode(), 1 << 22).expect("decode");
            prop_assert_eq!(back.records, b.records);
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = RecordBatch::decode(&bytes, 1 << 16);
        }

        #[test]
        fn decoding_a_valid_header_with_random_records_never_panics(
            codec in 0u8..5,
            tail in proptest::collection::vec(any::<u8>(), 0..300),
            count in -2i32..50,
        ) {
            // A correct header and CRC around junk records: only the record decoder is tested.
            let mut bytes = RecordBatch { header: header(Compression::from_id(codec).expect("codec")), records: vec![] }.encode();
            bytes.truncate(HEADER_LEN);
            bytes.extend_from_slice(&tail);
            let len = (bytes.len() - LOG_OVERHEAD) as i32;
            bytes[8..12].copy_from_slice(&len.to_be_bytes());
            bytes[57..61].copy_from_slice(&count.to_be_bytes());
            let crc = crc32c::crc32c(&bytes[CRC_START..]);
            bytes[CRC_OFFSET..CRC_START].copy_from_slice(&crc.to_be_bytes());
            let _ = RecordBatch::decode(&bytes, 1 << 16);
        }
    }
}
